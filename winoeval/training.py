"""Conventions every ``winoeval train`` command follows, so that no trainer has its own traps.

* An output folder that already holds a checkpoint is never trained into by accident: without
  ``--resume`` the command refuses unless ``--overwrite`` is given (which deletes the old run's files first).
* ``--resume`` into a folder without a checkpoint says it starts fresh, and does.
* A resume may only change the number of epochs (extending a finished run); any other changed setting
  is refused, naming it. A resume with nothing left to do says so, and the command exits 0.
* Files are written atomically (a temporary file, then ``os.replace``) with the permissions of an
  ordinary file under the user's umask (0644 under the usual 022), not the 0600 that safetensors gives.

Only click and the standard library are imported here (plugin modules import it at start).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import click

from .storage import publish  # noqa: F401  (the trainers publish checkpoints through winoeval.storage)


def start_mode(out: str | os.PathLike, checkpoint_files: Iterable[str], *, resume: bool, overwrite: bool,
               log: Callable[[str], None] = print, run_files: Iterable[str] = ()) -> str:
    """``"resume"`` or ``"fresh"`` for a trainer writing into ``out``; refuses what would lose work.

    ``checkpoint_files`` are the names whose presence means "a run is here" (all of them must exist to
    resume); ``run_files`` are the other files a run writes, deleted with the checkpoint on ``--overwrite``.
    """
    out = Path(out)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other: --resume continues the run in "
                               "--out, --overwrite starts it again from scratch; give one")
    names = list(checkpoint_files)
    present = [n for n in names if (out / n).exists()]
    if resume:
        if len(present) == len(names):
            return "resume"
        if present:
            missing = [n for n in names if n not in present]
            raise click.UsageError(f"{out} holds an incomplete checkpoint ({', '.join(missing)} missing): cannot "
                                   f"resume; pass --overwrite to start again from scratch")
        log(f"--resume: no checkpoint in {out} yet; starting fresh")
        return "fresh"
    if present:
        if not overwrite:
            raise click.UsageError(f"{out} already holds a training checkpoint ({', '.join(present)}): pass "
                                   f"--resume to continue it, --overwrite to start again from scratch (deleting "
                                   f"it), or choose another --out")
        for name in [*names, *run_files]:
            path = out / name
            if path.is_file():
                path.unlink()
        log(f"--overwrite: deleted the previous run's checkpoint in {out}; starting fresh")
    return "fresh"


def check_resume_settings(saved: Mapping[str, Any], now: Mapping[str, Any], may_change: Iterable[str] = ("epochs",),
                          option: Callable[[str], str] = lambda key: "--" + key.replace("_", "-")) -> None:
    """Refuse a resume whose settings differ from the saved run's, except those in ``may_change``."""
    free = set(may_change)
    changed = [f"{option(k)} {saved[k]!r} → {now[k]!r}" for k in now
               if k in saved and k not in free and saved[k] != now[k]]
    if changed:
        raise click.UsageError(f"--resume with different settings than the saved run: {'; '.join(changed)}. Resume "
                               f"with the saved settings (only {', '.join(option(k) for k in sorted(free))} may "
                               f"change), or pass --overwrite to start a new run")


def nothing_left(done: int, epochs: int, out: str | os.PathLike, log: Callable[[str], None] = print) -> bool:
    """True (after saying so) when ``done`` epochs already reach ``epochs``."""
    if done >= epochs:
        log(f"nothing to do: {out} already holds {done} finished epoch(s) and --epochs is {epochs}; "
            f"pass a larger --epochs to train longer")
        return True
    return False

