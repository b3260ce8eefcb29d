"""One verbosity switch for every command, and the status lines of slow phases.

``-q`` (quiet): no progress bars and no status lines, winoeval's or the libraries' (diffusers'
"Loading pipeline components", transformers' weight-loading bars, datasets' bars and their info logs);
warnings and errors still print. ``-v`` (verbose): the libraries' info logs too. Default: winoeval's
bars and status lines, the libraries' warnings only.

The libraries read their settings from environment variables when they are imported, so
:func:`configure` sets those first (before any heavy import) and also calls the libraries' own
setters for any that are already imported. Only the standard library is imported here.

:func:`status` prints one line on stderr when a phase that can take more than a couple of seconds
(loading a model, building a dataset, rendering a plot, sampling) has lasted :data:`DELAY_S` (a fast
phase stays silent), and a second one with the elapsed time when it took longer than :data:`SLOW_S`, so
no minute passes in silence.

:func:`exit_now` ends the process once its outputs are written and closed, skipping the interpreter's
teardown of torch and friends (which took 9–30 s on a loaded machine). It acts only in the real
command-line entry point (:func:`winoeval.cli.entry` calls :func:`enable_fast_exit`), never under
click's ``CliRunner`` in tests.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator

QUIET, NORMAL, VERBOSE = -1, 0, 1
SLOW_S = 2.0  # a phase that took longer than this says how long it took
DELAY_S = 0.5  # a phase says it started only once it has lasted this long (fast phases stay silent)

_level = NORMAL
_fast_exit = False

# environment variables the libraries read at import: (name, value when quiet, normal, verbose)
_ENV = (
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1", None, None),  # hub downloads; diffusers and transformers follow it
    ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1", None, None),
    ("DIFFUSERS_VERBOSITY", "error", "warning", "info"),
    ("TRANSFORMERS_VERBOSITY", "error", "warning", "info"),
    ("DATASETS_VERBOSITY", "error", "warning", "info"),
    ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1", None, None),
    ("TQDM_DISABLE", "1", None, None),  # any other tqdm bar (tqdm ≥ 4.66 reads TQDM_* defaults)
)


def level() -> int:
    return _level


def quiet() -> bool:
    return _level <= QUIET


def configure(new_level: int) -> None:
    """Set the verbosity of winoeval and of the libraries it drives (call before heavy imports)."""
    global _level
    _level = QUIET if new_level < 0 else VERBOSE if new_level > 0 else NORMAL
    column = {QUIET: 1, NORMAL: 2, VERBOSE: 3}[_level]
    for name, value in list(_set_by_us.items()):  # undo what an earlier configure() set
        if os.environ.get(name) == value:
            del os.environ[name]
        del _set_by_us[name]
    for row in _ENV:
        name, value = row[0], row[column]
        if value is not None and name not in os.environ:  # a value the user exported wins
            os.environ[name] = _set_by_us[name] = value
    _apply_to_imported()


_set_by_us: dict[str, str] = {}


def _apply_to_imported() -> None:
    """The same settings for libraries already imported (their env variables are read only at import)."""
    word = {QUIET: "error", NORMAL: "warning", VERBOSE: "info"}[_level]
    for module, bars in (("diffusers.utils.logging", True), ("transformers.utils.logging", True),
                         ("datasets.utils.logging", False)):
        mod = sys.modules.get(module)
        if mod is None:
            continue
        with contextlib.suppress(Exception):
            getattr(mod, f"set_verbosity_{word}")()
            if bars:
                (mod.disable_progress_bar if _level == QUIET else mod.enable_progress_bar)()
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        with contextlib.suppress(Exception):
            (hub.disable_progress_bars if _level == QUIET else hub.enable_progress_bars)()
    ds = sys.modules.get("datasets")
    if ds is not None:
        with contextlib.suppress(Exception):
            (ds.disable_progress_bars if _level == QUIET else ds.enable_progress_bars)()


def echo(message: str) -> None:
    """A status line on stderr (nothing when quiet)."""
    if _level > QUIET:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def status(what: str, done: str | None = None) -> Iterator[None]:
    """``what …`` once the phase has lasted :data:`DELAY_S` (a fast phase prints nothing; ``-v``: at once),
    and ``done (12.3 s)`` after it when it took over :data:`SLOW_S`."""
    import threading

    start = time.perf_counter()
    said = threading.Event()

    def announce() -> None:
        said.set()
        echo(f"{what} …")

    timer = None
    if _level >= VERBOSE or DELAY_S <= 0:
        announce()
    elif _level > QUIET:
        timer = threading.Timer(DELAY_S, announce)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
    elapsed = time.perf_counter() - start
    if said.is_set() and (elapsed > SLOW_S or _level >= VERBOSE):
        echo(f"{done or what + ': done'} ({elapsed:.1f} s)")


def enable_fast_exit() -> None:
    global _fast_exit
    _fast_exit = True


def disable_fast_exit() -> None:
    global _fast_exit
    _fast_exit = False


def exit_now(code: int = 0) -> None:
    """In the command-line entry point: flush and end the process at once (outputs are written and
    closed by now); elsewhere (tests, library use) return and let the caller finish normally."""
    if not _fast_exit:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def options(func):
    """``-q/--quiet`` and ``-v/--verbose`` for a click command; the verbosity is set while parsing,
    before the command's body imports anything heavy. ``--quiet`` stays a parameter of the command."""
    import click

    def set_level(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        # click calls this for both options: first for those given on the command line, then the others
        chosen = ctx.meta.setdefault("winoeval.verbosity", {})
        if value:
            chosen[param.name] = True
            if len(chosen) > 1:
                raise click.UsageError("give -q/--quiet or -v/--verbose, not both")
            configure(QUIET if param.name == "quiet" else VERBOSE)
        elif not chosen:
            configure(NORMAL)  # an earlier command in the same process (tests) set something else
        return value

    func = click.option("--verbose", "-v", is_flag=True, expose_value=False, callback=set_level,
                        help="Also the libraries' info logs (diffusers, transformers, datasets).")(func)
    return click.option("--quiet", "-q", is_flag=True, callback=set_level,
                        help="No progress bars or status lines, the libraries' included; warnings and "
                             "errors still print.")(func)
