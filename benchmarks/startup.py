"""startup: wall time of ``winoeval --help`` and ``winoeval list`` (fresh subprocesses, interleaved)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import interleaved, md_table, med, spread

NAME = "startup"
TITLE = "CLI start-up time"


def _winoeval() -> str:
    exe = Path(sys.executable).with_name("winoeval")
    return str(exe) if exe.exists() else (shutil.which("winoeval") or "winoeval")


def run(quick: bool = False) -> dict[str, Any]:
    exe = _winoeval()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    commands = {
        "winoeval --help": [exe, "--help"],
        "winoeval list": [exe, "list"],
        "python -c 'import winoeval' (floor)": [sys.executable, "-c", "import winoeval"],
    }

    def call(argv):
        def go():
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return go

    times = interleaved({k: call(v) for k, v in commands.items()}, repeats=5 if quick else 9)
    targets = [{"name": f"`{k}` wall time (median)", "target": "< 0.5 s", "measured": f"{med(times[k]):.3f} s",
                "met": med(times[k]) < 0.5} for k in ("winoeval --help", "winoeval list")]
    return {"times": times, "executable": exe, "targets": targets}


def render(res: dict[str, Any]) -> str:
    rows = [[f"`{k}`", len(v), spread(v)] for k, v in res["times"].items()]
    return ("Fresh subprocess each time (warm file cache: one untimed round first), interleaved; seconds.\n\n"
            + md_table(["command", "runs", "seconds, median [min–max]"], rows))
