"""What a user sees while a command works: one -q/-v switch that also governs the libraries' bars and
logs, a status line for each slow phase, a prompt exit once the results are written, and the smaller
output fixes (a blank line between two tasks' tables; no --skip-bad suggestion that would skip all)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from winoeval import verbosity
from winoeval.cli import cli


@pytest.fixture(autouse=True)
def _normal_afterwards():
    yield
    verbosity.configure(verbosity.NORMAL)


def test_quiet_sets_the_libraries_switches_and_normal_undoes_only_ours(monkeypatch, capsys):
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATASETS_VERBOSITY", "debug")  # the user's own setting wins
    verbosity.configure(verbosity.QUIET)
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TQDM_DISABLE"] == "1"
    assert os.environ["DIFFUSERS_VERBOSITY"] == os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert os.environ["DATASETS_VERBOSITY"] == "debug"
    with verbosity.status("loading model x"):
        pass
    assert capsys.readouterr().err == ""  # quiet: no status lines
    verbosity.configure(verbosity.VERBOSE)
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ and "TQDM_DISABLE" not in os.environ
    assert os.environ["DIFFUSERS_VERBOSITY"] == "info" and os.environ["DATASETS_VERBOSITY"] == "debug"
    verbosity.configure(verbosity.NORMAL)
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "warning"


def test_a_status_line_says_when_a_slow_phase_starts_and_how_long_it_took(monkeypatch, capsys):
    import time

    verbosity.configure(verbosity.NORMAL)
    with verbosity.status("building task t", "task t ready"):
        pass
    assert capsys.readouterr().err == ""  # a fast phase stays silent
    monkeypatch.setattr(verbosity, "DELAY_S", 0.05)
    with verbosity.status("building task t", "task t ready"):
        time.sleep(0.3)
    assert capsys.readouterr().err == "building task t …\n"  # started, but not slow: no second line
    monkeypatch.setattr(verbosity, "SLOW_S", 0.1)
    with verbosity.status("loading model m", "model m loaded"):
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "loading model m …" and err[1].startswith("model m loaded (") and err[1].endswith(" s)")


def test_quiet_and_verbose_together_are_refused():
    res = CliRunner().invoke(cli, ["run", "-m", "analytic", "-t", "colors", "-q", "-v"])
    assert res.exit_code == 2 and "not both" in res.output


def _run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "winoeval", *args], env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.slow  # two interpreters, each loading a diffusers pipeline: 9.5 s at load ~1
def test_quiet_silences_diffusers_and_transformers_loading_bars(tmp_path, cli_env):
    base = ["run", "-m", "winodigits-sd", "-t", "winodigits:control", "--limit", "1", "--n-samples", "1",
            "-o", str(tmp_path)]
    loud = _run(base, cli_env)
    assert loud.returncode == 0, loud.stderr[-2000:]
    # default: winoeval's status lines, and the libraries' bars (the load is slow on a real pipeline)
    assert "loading model winodigits-sd …" in loud.stderr  # the load lasts over DELAY_S
    assert "Loading pipeline components" in loud.stderr
    quiet = _run([*base, "--limit", "2", "-q"], cli_env)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Loading" not in quiet.stderr and "…" not in quiet.stderr and "%|" not in quiet.stderr
    assert "results:" in quiet.stderr  # where the results went is still said


ATEXIT = """
import atexit, sys
atexit.register(lambda: print("TEARDOWN RAN", flush=True))
sys.argv = ["winoeval", *sys.argv[1:]]
from winoeval.cli import entry
entry()
"""


def test_the_command_ends_right_after_writing_its_results(tmp_path, cli_env):
    script = tmp_path / "entry.py"
    script.write_text(ATEXIT)
    res = subprocess.run([sys.executable, str(script), "run", "-m", "analytic", "-t", "toy-winoground",
                          "--n-samples", "2", "-q", "-o", str(tmp_path / "out")],
                         env={**cli_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| analytic | toy-winoground | all | 6 |" in res.stdout  # the table was flushed before exiting
    assert "TEARDOWN RAN" not in res.stdout  # interpreter teardown skipped (os._exit)
    assert len(list((tmp_path / "out" / "analytic").glob("results_*.json"))) == 1


def test_main_in_process_never_ends_the_process(tmp_path, monkeypatch):
    """main() called in-process (tests, scripts) must return: a fast exit there once ended this very test
    session with status 0, silently skipping every test after it."""
    from winoeval import verbosity
    from winoeval.cli import main

    monkeypatch.setattr(sys, "argv", ["winoeval", "run", "-m", "analytic", "-t", "toy-winoground", "--n-samples",
                                      "2", "-q", "-o", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None) and not verbosity._fast_exit
    assert len(list((tmp_path / "analytic").glob("results_*.json"))) == 1
    # and a command run after it in the same process returns normally as well
    res = CliRunner().invoke(cli, ["run", "-m", "analytic", "-t", "colors", "--limit", "2", "--n-samples", "2",
                                   "-q", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output


def test_two_tasks_tables_are_separated_by_a_blank_line(tmp_path):
    res = CliRunner().invoke(cli, ["run", "-m", "analytic", "-t", "toy-winoground,colors", "--limit", "0.1",
                                   "--n-samples", "2", "-q", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    second = next(i for i, line in enumerate(lines) if line.startswith("| model | task | n | accuracy"))
    assert lines[second - 1] == "" and lines[second - 2].startswith("| analytic | toy-winoground |")


def test_a_model_that_cannot_read_any_caption_stops_without_suggesting_skip_bad(tmp_path):
    res = CliRunner().invoke(cli, ["run", "-m", "mnist-unet", "-t", "winodigits", "--limit", "3", "-q",
                                   "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert "cannot read the texts of task 'winodigits'" in res.output and "--skip-bad" not in res.output
