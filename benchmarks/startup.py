"""startup: wall time of ``winoeval --help`` and ``winoeval list``, and ``winoeval run`` up to its first
progress-bar tick (fresh subprocesses, interleaved).

``winoeval run`` to first tick: the child's stderr is read as it comes; "bar" is the moment the
progress bar appears (task and model loaded, scoring starts), "tick" the first update that shows at
least one example done; the child is killed there and its CPU time (user + system, from ``wait4``)
is what the start-up cost on a shared machine. Variants, alternated round by round:

* ``array cache warm``: this checkout, the parsed-MNIST cache (``WINOEVAL_CACHE_DIR``) filled;
* ``array cache cold``: this checkout with an empty cache each time — the CSV is parsed as before the
  cache existed (and the cache file written);
* ``baseline``: when ``WINOEVAL_STARTUP_BASELINE`` names another checkout's Python (e.g.
  ``/work/main/.venv/bin/python``), the same command run by it (its git hash is recorded).
"""

from __future__ import annotations

import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import interleaved, md_table, med, spread

NAME = "startup"
TITLE = "CLI start-up time"
RUN_COMMANDS = {
    "winodigits-sd on winodigits (README main command)": ["--model", "winodigits-sd", "--task", "winodigits"],
    "mnist-unet on mnist": ["--model", "mnist-unet", "--task", "mnist"],
}
BAR = re.compile(rb"\|\s*\d+/\d+ \[")  # tqdm: "desc:   0%|     | 0/400 [00:00<?, ?ex/s]"
TICK = re.compile(rb"\|\s*([1-9]\d*)/\d+ \[")


def _winoeval() -> str:
    exe = Path(sys.executable).with_name("winoeval")
    return str(exe) if exe.exists() else (shutil.which("winoeval") or "winoeval")


def first_tick(python: str, args: list[str], env: dict, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m winoeval run ARGS -o TMP`` until its first progress tick; seconds to the bar and
    to the tick, and CPU seconds used by then."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        # cwd: a neutral folder, so that `-m` finds the interpreter's own installed winoeval, not one in cwd
        proc = subprocess.Popen([python, "-m", "winoeval", "run", *args, "-o", out], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, start_new_session=True, cwd=out)
        buf, bar, tick = b"", None, None
        fd = proc.stderr.fileno()
        while tick is None and time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            now = time.perf_counter() - t0
            if bar is None and BAR.search(buf):
                bar = now
            if TICK.search(buf):
                tick = now
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, usage = os.wait4(proc.pid, 0)
        proc.stderr.close()
    if tick is None:
        raise RuntimeError(f"no progress tick from {' '.join(args)} (exit status {status}): "
                           f"{buf.decode(errors='replace')[-1500:]}")
    return {"bar_s": round(bar if bar is not None else tick, 3), "tick_s": round(tick, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def _git_hash_of(python: str) -> str | None:
    try:
        root = subprocess.run([python, "-c", "import winoeval, os; print(os.path.dirname(os.path.dirname("
                                             "winoeval.__file__)))"], capture_output=True, text=True, timeout=60,
                              cwd=tempfile.gettempdir())
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root.stdout.strip(), capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_to_first_tick(repeats: int) -> dict[str, Any]:
    base_env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    warm_dir = tempfile.mkdtemp(prefix="winoeval-array-cache-")
    pythons = {"array cache warm": sys.executable, "array cache cold": sys.executable}
    baseline = os.environ.get("WINOEVAL_STARTUP_BASELINE")
    if baseline:
        pythons["baseline"] = baseline
    out: dict[str, Any] = {"repeats": repeats, "baseline": baseline,
                           "baseline_git": _git_hash_of(baseline) if baseline else None, "commands": {}}
    try:
        for label, args in RUN_COMMANDS.items():
            results: dict[str, list[dict]] = {v: [] for v in pythons}
            variants = list(pythons)
            first_tick(sys.executable, args, dict(base_env, WINOEVAL_CACHE_DIR=warm_dir))  # untimed warm-up
            for r in range(repeats):
                for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                    cold = tempfile.mkdtemp(prefix="winoeval-array-cache-cold-")
                    env = dict(base_env, WINOEVAL_CACHE_DIR=cold if v == "array cache cold" else warm_dir)
                    try:
                        results[v].append(first_tick(pythons[v], args, env))
                    finally:
                        shutil.rmtree(cold, ignore_errors=True)
            out["commands"][label] = {"command": "winoeval run " + " ".join(args), "runs": results}
    finally:
        shutil.rmtree(warm_dir, ignore_errors=True)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    exe = _winoeval()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    commands = {
        "winoeval --help": [exe, "--help"],
        "winoeval list": [exe, "list"],
        "python -c 'import winoeval' (floor)": [sys.executable, "-c", "import winoeval"],
    }

    cpu: dict[str, list[float]] = {k: [] for k in commands}

    def call(name, argv):
        def go():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=tempfile.gettempdir())
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 4))
        return go

    times = interleaved({k: call(k, v) for k, v in commands.items()}, repeats=5 if quick else 9)
    cpu = {k: v[-len(times[k]):] for k, v in cpu.items()}  # the timed rounds (not the warm-up)
    targets = [{"name": f"`{k}` CPU time (median; wall on this shared machine beside it)", "target": "< 0.5 s",
                "measured": f"{med(cpu[k]):.3f} s CPU ({med(times[k]):.3f} s wall)", "met": med(cpu[k]) < 0.5}
               for k in ("winoeval --help", "winoeval list")]
    data = {"times": times, "cpu": cpu, "executable": exe, "targets": targets}
    data["first_tick"] = run_to_first_tick(3)
    return data


def render(res: dict[str, Any]) -> str:
    cpu = res.get("cpu") or {}
    rows = [[f"`{k}`", len(v), spread(cpu[k]) if cpu.get(k) else "-", spread(v)] for k, v in res["times"].items()]
    text = ("Fresh subprocess each time (warm file cache: one untimed round first), interleaved; seconds.\n\n"
            + md_table(["command", "runs", "CPU s, median [min–max]", "wall s, median [min–max]"], rows))
    ft = res.get("first_tick")
    if ft:
        rows = []
        for label, c in ft["commands"].items():
            for v, runs in c["runs"].items():
                rows.append([f"`{c['command']}`", v + (f" ({ft['baseline_git']})" if v == "baseline" else ""),
                             len(runs),
                             spread([r["cpu_s"] for r in runs]), spread([r["bar_s"] for r in runs]),
                             spread([r["tick_s"] for r in runs])])
        text += ("\n\n`winoeval run` to its first progress-bar tick (fresh subprocess, 1 torch thread, killed at "
                 "the tick; "
                 "variants alternated round by round after one untimed run; median [min–max]). CPU seconds are the "
                 "figure to compare on this shared machine; wall seconds include waiting for the cores.\n\n"
                 + md_table(["command", "variant", "runs", "CPU s to tick", "wall s to bar", "wall s to tick"], rows,
                            align="llrrrr"))
    return text
