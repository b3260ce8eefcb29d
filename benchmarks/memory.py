"""memory: peak RSS of real ``winoeval run`` commands (each in a fresh subprocess).

Peak RSS = ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by a small wrapper process whose
only child is the command (so every figure is that command's own peak).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import md_table, quiet_libraries, tiny_sd, tiny_winoground

NAME = "memory"
TITLE = "Peak memory (RSS)"

WRAPPER = ("import json, resource, subprocess, sys, time\n"
           "t = time.perf_counter()\n"
           "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode\n"
           "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t,"
           " 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")


def peak(argv: list[str], env: dict | None = None) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True,
                         env=env or dict(os.environ, HF_HUB_OFFLINE="1"))
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {out['rc']})")
    return out


def run(quick: bool = False) -> dict[str, Any]:
    quiet_libraries()
    exe = [sys.executable, "-m", "winoeval"]
    sd8, sd32 = tiny_sd(8), tiny_sd(32)
    wino = tiny_winoground(6)
    lim = 10 if quick else 50
    cases = [
        ("python -c 'import torch' (floor)", [sys.executable, "-c", "import torch"]),
        (f"winoeval run --model mnist-unet --task mnist --limit {lim}",
         exe + ["run", "--model", "mnist-unet", "--task", "mnist", "--limit", str(lim), "-q"]),
        ("winoeval run --model mnist-unet --task mnist --limit 5 --n-samples 400 --early-stop",
         exe + ["run", "--model", "mnist-unet", "--task", "mnist", "--limit", "5", "--n-samples", "400",
                "--early-stop", "-q"]),
        ("winoeval run --model mnist-unet --task mnist --limit 2 --n-samples 400 --batch-size 1000",
         exe + ["run", "--model", "mnist-unet", "--task", "mnist", "--limit", "2", "--n-samples", "400",
                "--batch-size", "1000", "-q"]),
        ("winoeval run --model sd:TINY8 --task winoground --data-dir WINO6",
         exe + ["run", "--model", f"sd:{sd8}", "--task", "winoground", "--data-dir", str(wino), "-q"]),
        ("winoeval run --model sd:TINY32 --task winoground --data-dir WINO6 --limit 2",
         exe + ["run", "--model", f"sd:{sd32}", "--task", "winoground", "--data-dir", str(wino), "--limit", "2",
                "-q"]),
    ]
    rows = []
    for label, argv in cases:
        with tempfile.TemporaryDirectory() as out:
            if argv[:len(exe)] == exe:
                argv = argv + ["-o", out]
            t0 = time.perf_counter()
            r = peak(argv)
            rows.append({"command": label, "peak_rss_mib": r["maxrss_kib"] / 1024, "seconds": time.perf_counter() - t0})
    return {"runs": rows, "tiny_sd_8": "make_tiny_sd_pipeline(dir, sample_size=8) (8×8 latents, 16 px images)",
            "tiny_sd_32": "make_tiny_sd_pipeline(dir, sample_size=32) (32×32 latents, 64 px images)",
            "wino6": "winoeval.testing.data.make_winoground_dataset(dir, n=6)"}


def render(res: dict[str, Any]) -> str:
    rows = [[f"`{r['command']}`", f"{r['peak_rss_mib']:.0f}",
             "withdrawn" if res.get("withdrawn") else f"{r['seconds']:.1f}"] for r in res["runs"]]
    return "\n".join([
        "Each command in a fresh process (`-q -o TMPDIR` appended to the `winoeval run` ones); defaults unless "
        "given: N = 20 samples, batch auto (128 on CPU). TINY8 = " + res["tiny_sd_8"] + ", TINY32 = "
        + res["tiny_sd_32"] + ", WINO6 = " + res["wino6"] + ".", "",
        md_table(["command", "peak RSS (MiB)", "wall s"], rows)])
