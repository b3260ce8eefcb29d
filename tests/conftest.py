"""Shared test set-up: never touch the network, and rebuild the plugin manager around each test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from winoeval import registry

    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    registry.reset()
    yield
    registry.reset()


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path_factory, monkeypatch):
    """winoeval's user cache (the parsed MNIST arrays) lives in the test session's folder, never in ~/.cache."""
    monkeypatch.setenv("WINOEVAL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "winoeval-cache"))


@pytest.fixture(autouse=True)
def _private_hash_memo(tmp_path_factory, monkeypatch):
    """Content hashes are remembered per test session, never in the user's ~/.cache."""
    from winoeval import fingerprint

    monkeypatch.setenv("WINOEVAL_HASH_CACHE", str(tmp_path_factory.getbasetemp() / "hashes.json"))
    monkeypatch.setattr(fingerprint, "_memo", None)


@pytest.fixture(autouse=True)
def _isolated_verbosity_and_environment():
    """A command run in this process (``CliRunner``, ``main()``) configures winoeval's verbosity, and
    with it the variables the libraries read (``-q`` sets HF_HUB_DISABLE_PROGRESS_BARS=1, TQDM_DISABLE=1,
    ...): put both back after each test, so that later tests, and the subprocesses they start with
    ``cli_env`` (a copy of this environment), see the session's own."""
    from winoeval import verbosity

    environ, level, ours = dict(os.environ), verbosity.level(), dict(verbosity._set_by_us)
    yield
    if verbosity.level() != level or verbosity._set_by_us != ours:
        verbosity.configure(level)  # also resets the progress bars of libraries already imported
        verbosity._set_by_us.clear()
        verbosity._set_by_us.update(ours)
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture
def cli_env():
    """Environment for ``winoeval`` subprocesses: offline, and this interpreter's scripts on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a CPU shared with other work OpenMP's spin-waiting
    made a 2-thread U-Net batch ~30x slower here than a 1-thread one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def isolated_datasets_cache(tmp_path_factory, monkeypatch):
    """An empty datasets cache, so that nothing cached on this machine can make a loading test pass."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))


@pytest.fixture
def register_plugin():
    """Register plugin objects (classes with ``@hookimpl`` methods) on the real plugin manager for one
    test: ``register_plugin(obj)``; they are gone again after the test (the registry is rebuilt)."""
    from winoeval import registry

    added = []

    def register(plugin, name: str | None = None):
        registry.get_plugin_manager().register(plugin, name=name or f"test-{type(plugin).__name__}-{len(added)}")
        added.append(plugin)
        return plugin

    yield register
    manager = registry.get_plugin_manager()
    for plugin in added:
        if manager.is_registered(plugin):
            manager.unregister(plugin)


@pytest.fixture
def run_winoeval(cli_env):
    """Run ``python -m winoeval ARGS`` in a subprocess (offline, output captured as text):
    ``run_winoeval(args, env=None, **subprocess_kw)``; ``env`` defaults to :func:`cli_env`."""
    import subprocess

    def run(args, env=None, **kw):
        return subprocess.run([sys.executable, "-m", "winoeval", *args], env=cli_env if env is None else env,
                              capture_output=True, text=True, timeout=600, **kw)

    return run


class RunFiles:
    """What a run leaves in its output folder, read the way the tests that compare two runs need it."""

    @staticmethod
    def results(out_dir: Path) -> list[Path]:
        return sorted(out_dir.glob("*/results_*.json"))

    @staticmethod
    def cache_lines(out_dir: Path) -> int:
        """Records in the resume cache, over every part."""
        return sum(len(p.read_bytes().splitlines()) for p in out_dir.glob("*/.cache/*/part-*.jsonl"))

    @staticmethod
    def comparable(path: Path) -> bytes:
        """A results or samples file without what belongs to the run, not to the results: its ``run``
        section (date, wall time, computed/reused counts) and the git hash (which moves when anyone commits)."""
        import json

        if path.suffix != ".json":
            return path.read_bytes()
        data = json.loads(path.read_text())
        data.pop("run")
        data.pop("git_hash")
        return json.dumps(data, sort_keys=True).encode()


@pytest.fixture
def run_files():
    """:class:`RunFiles`: ``run_files.results(dir)``, ``.cache_lines(dir)``, ``.comparable(path)``."""
    return RunFiles


@pytest.fixture
def file_sigma_model(register_plugin):
    """Registers ``file-sigma``, a third-party model that declares no fingerprint: its 'weights' are the
    sigma in a text file named by ``--model-arg weights=FILE`` (the default fingerprint hashes that file)."""
    from winoeval.hookspecs import hookimpl
    from winoeval.plugins.analytic import AnalyticDenoiser

    class FileSigmaPlugin:
        @hookimpl
        def winoeval_register_models(self, register):
            def load(argument, config):
                return AnalyticDenoiser(float(Path(config.model_args["weights"]).read_text()))

            register("file-sigma", load)

    register_plugin(FileSigmaPlugin(), name="file-sigma")
    return "file-sigma"


@pytest.fixture(autouse=True)
def _no_process_exit_in_tests(monkeypatch):
    """``os._exit`` in the test process would end the session with whatever status it is given — a
    green run that silently skipped every later test. Here it fails the test that reached it instead."""

    def refuse(code=0):
        raise AssertionError(f"os._exit({code}) was called inside the test process")

    monkeypatch.setattr(os, "_exit", refuse)
