"""Shared helpers of the benchmark suite: machine description, interleaved timing, fixtures.

Timing rule of the suite (the machine is shared and noisy): every comparison runs its variants in
one process, interleaved (the order rotates each round), repeated; we report medians and the
ratio of medians, never two numbers taken at different moments.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(os.environ.get("WINOEVAL_BENCH_TMP", Path(tempfile.gettempdir()) / "winoeval-bench"))


def log(msg: str) -> None:
    print(f"[{_dt.datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "memory_gib": mem_gib,
        "load_average_at_start": load, "gpu": "none (no GPU lent to this session)" if not torch.cuda.is_available()
        else torch.cuda.get_device_name(0),
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    from winoeval.results import versions as _v

    return _v()


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return (out.stdout.strip() + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each variant, ``repeats`` times, interleaved; the order rotates each round."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """median [min–max], 3 significant digits."""
    return f"{med(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tiny_sd(sample_size: int) -> Path:
    """A tiny random-weight SD pipeline folder (built once per machine, reused)."""
    from winoeval.testing.models import make_tiny_sd_pipeline

    path = WORK / f"tiny-sd-{sample_size}"
    if not (path / "model_index.json").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):
            make_tiny_sd_pipeline(path, sample_size=sample_size)
    return path


def tiny_winoground(n: int) -> Path:
    """A tiny Winoground-format dataset (winoeval.testing.data) with ``n`` examples."""
    from winoeval.testing.data import make_winoground_dataset

    path = WORK / f"winoground-{n}"
    if not path.exists():
        make_winoground_dataset(path, n=n)
    return path


def load_sd(path: Path):
    """The tiny pipeline through the sd plugin's own loader, as ``--model sd:DIR`` gets it."""
    import contextlib
    import io
    import logging
    import warnings

    from winoeval.config import RunConfig
    from winoeval.plugins.stable_diffusion import load

    logging.getLogger("diffusers").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return load(str(path), RunConfig(model=f"sd:{path}", task="-", device="cpu"))


def quiet_libraries() -> None:
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("diffusers", "transformers", "datasets", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        from diffusers.utils import logging as dlog

        dlog.disable_progress_bar()
        dlog.set_verbosity_error()
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass


def md_table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"
