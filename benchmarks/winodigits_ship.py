"""Copy the trained WinoDigits models from their run folders into the package (float16, <= 20 MB).

    python -m benchmarks.winodigits_ship [SD_RUN] [CLIP_RUN]   (defaults: runs/winodigits-sd runs/winodigits-clip)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> None:
    from winoeval.plugins import _winodigits_train as tr
    from winoeval.plugins import winodigits

    sd_run = Path(argv[0]) if argv else REPO / "runs/winodigits-sd"
    clip_run = Path(argv[1]) if len(argv) > 1 else REPO / "runs/winodigits-clip"
    sizes = tr.ship(sd_run, clip_run, winodigits.SD_DIR, winodigits.CLIP_DIR)
    for name, size in sizes.items():
        print(f"{name}: {size / 2**20:.2f} MB of float16 weights")
    print(f"together: {sum(sizes.values()) / 2**20:.2f} MB (limit 20 MB)")


if __name__ == "__main__":
    main(sys.argv[1:])
