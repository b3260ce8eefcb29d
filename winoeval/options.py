"""Parsing of repeatable ``KEY=VALUE`` options and of task lists, shared by ``winoeval run`` and
``winoeval check-plugin`` (a leaf module: click and the standard library only).

Every mistake is a usage error naming the option and the fix, never a silent choice:

- ``--model-arg checkpoint`` (no ``=``) or ``=value`` (no key);
- ``--model-arg checkpoint=`` (an empty value: it would otherwise be read as "not given" by some
  plugins and silently fall back to a default);
- the same key given twice (which one wins would be an accident of the parser).
"""

from __future__ import annotations

import re
from typing import Iterable

import click


def key_values(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``("a=1", "b=x=y")`` → ``{"a": "1", "b": "x=y"}`` (the value is everything after the first ``=``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        if not value.strip():
            raise click.BadParameter(f"{key}= has an empty value; give a value ({option} {key}=VALUE) or leave "
                                     f"the option out to use the default", param_hint=option)
        if key in out:
            raise click.BadParameter(f"{key} is given twice ({key}={out[key]} and {key}={value}); give it once",
                                     param_hint=option)
        out[key] = value
    return out


def task_identity(name: str) -> str:
    """What makes two task names the same task: blanks around the name and its ``:argument`` do not count."""
    base, sep, arg = name.partition(":")
    return base.strip() + (":" + arg.strip() if sep else "")


def split_tasks(values: Iterable[str]) -> list[str]:
    """The task names of ``-t a -t b,c`` (blanks around each name dropped), refusing a task given twice
    after normalisation (``toy-winoground:0.2`` and ``toy-winoground: 0.2``): both would compute, then
    fight for the same output file names."""
    names = [t.strip() for value in values for t in str(value).split(",") if t.strip()]
    seen: dict[str, str] = {}
    for name in names:
        key = task_identity(name)
        file_key = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")  # as runner.safe_name names files
        for other_key in (key, "file:" + file_key):
            if other_key in seen:
                raise click.UsageError(f"--task: {seen[other_key]!r} and {name!r} are the same task once blanks "
                                       f"are ignored (or would write the same output file names); give each "
                                       f"task once")
            seen[other_key] = name
    return names


class FiniteFloat(click.ParamType):
    """A float option that refuses ``nan`` and ``inf`` (Python's float() accepts both, and a NaN weight
    would silently turn every output into NaN)."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


def set_run_env(*, rehash: bool = False, max_pixels: int | None = None) -> None:
    """``--rehash`` and ``--max-pixels`` as the environment variables that :mod:`winoeval.fingerprint` and
    :mod:`winoeval.localdata` read (so worker processes of ``--num-processes`` inherit them)."""
    import os

    if rehash:
        os.environ["WINOEVAL_REHASH"] = "1"
    if max_pixels is not None:
        os.environ["WINOEVAL_MAX_PIXELS"] = str(max_pixels)
    value = os.environ.get("WINOEVAL_MAX_PIXELS", "").strip()
    if value and not value.isdigit():  # checked now, not at the first image
        raise click.UsageError(f"WINOEVAL_MAX_PIXELS={value!r}: expected a whole number of pixels (0 = no limit); "
                               f"use --max-pixels N or unset it")


def check_output_file(path: str | None, option: str) -> None:
    """Refuse an output file that cannot be written, before any work: its folder missing, not a folder
    or not writable, or the path itself a folder (a usage error naming the option and the fix)."""
    if not path:
        return
    import os
    from pathlib import Path

    p = Path(path).expanduser()
    folder = p.resolve().parent
    if p.is_dir():
        raise click.BadParameter(f"{path} is a folder; give a file name, e.g. {p / ('report' + (p.suffix or '.out'))}",
                                 param_hint=option)
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {str(folder)!r} of {path} does not exist (or is not a folder); create "
                                 f"it or pick another path", param_hint=option)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"the folder {str(folder)!r} of {path} is not writable; pick another path",
                                 param_hint=option)
