"""The plugin system: fake plugins through the real manager, entry points, broken plugins, light imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from winoeval import registry
from winoeval.hookspecs import hookimpl


class FakePlugin:
    """A third-party-style plugin object: one model, one task."""

    @hookimpl
    def winoeval_register_models(self, register):
        register("fake-model", lambda arg, config: ("loaded", arg), description="a fake", takes_argument=True)

    @hookimpl
    def winoeval_register_tasks(self, register):
        register("fake-task", lambda arg, config: None, description="a fake task")


def test_fake_plugin_registered_through_the_real_manager():
    pm = registry.get_plugin_manager()
    plugin = FakePlugin()
    pm.register(plugin, name="fake")
    try:
        models = registry.models()
        assert models["fake-model"].plugin == "fake"
        assert "analytic" in models  # built-ins are still there
        entry, arg = registry.resolve("model", "fake-model:xyz")
        assert entry.loader(arg, None) == ("loaded", "xyz")
        assert registry.resolve("task", "fake-task")[0].description == "a fake task"
    finally:
        pm.unregister(plugin)
    assert "fake-model" not in registry.models()


def test_unknown_names_suggest_close_matches():
    with pytest.raises(registry.UnknownNameError, match=r"unknown model 'analytc'.*did you mean analytic"):
        registry.resolve("model", "analytc")
    with pytest.raises(registry.UnknownNameError, match="unknown task 'nothing-like-it'"):
        registry.resolve("task", "nothing-like-it")
    with pytest.raises(registry.UnknownNameError, match="takes no ':argument'"):
        registry.resolve("model", "mnist-unet:foo")


def test_a_hook_that_raises_is_reported_and_the_rest_still_work():
    class Crashing:
        @hookimpl
        def winoeval_register_models(self, register):
            raise RuntimeError("boom")

    pm = registry.get_plugin_manager()
    pm.register(Crashing(), name="crashing")
    with pytest.warns(registry.PluginLoadWarning, match="crashing.*boom"):
        models = registry.models()
    assert "analytic" in models
    assert "crashing" in registry.load_errors


def test_environment_variable_limits_plugins(monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, "winoeval.plugins.analytic,winoeval.tasks.synthetic")
    registry.reset()
    assert set(registry.models()) == {"analytic"}
    assert set(registry.tasks()) == {"colors", "toy-winoground"}
    monkeypatch.setenv(registry.ENV_VAR, "none")
    registry.reset()
    assert registry.models() == {}


def _write_dist(root, name, module_source, entry_name):
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[winoeval]\n{entry_name} = {name}\n")


@pytest.fixture
def third_party(tmp_path):
    _write_dist(tmp_path, "winoeval_good", """
        from winoeval.hookspecs import hookimpl

        @hookimpl
        def winoeval_register_models(register):
            register("good-model", lambda arg, config: None, description="from a pip package")
        """, "good")
    _write_dist(tmp_path, "winoeval_broken", "raise ImportError('this plugin is broken')\n", "broken")
    return tmp_path


def test_entry_points_load_and_a_broken_one_does_not_break_list(third_party, cli_env):
    env = dict(cli_env, PYTHONPATH=str(third_party))
    res = subprocess.run([sys.executable, "-m", "winoeval", "list"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "good-model" in res.stdout and "[good]" in res.stdout
    assert "analytic" in res.stdout
    broken_lines = [line for line in res.stderr.splitlines() if "broken" in line]
    assert len(broken_lines) == 1 and "this plugin is broken" in broken_lines[0]
    res = subprocess.run([sys.executable, "-m", "winoeval", "plugins"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert "good  1.2.3 (winoeval_good)" in res.stdout
    assert "broken  FAILED: ImportError: this plugin is broken" in res.stdout


@pytest.mark.parametrize("args", [["--help"], ["list"], ["plugins"], ["run", "--help"]])
def test_light_commands_import_no_torch(args, cli_env):
    code = ("import sys, runpy; sys.argv = ['winoeval', *sys.argv[1:]]\n"
            "from winoeval.cli import cli\n"
            "try:\n    cli(prog_name='winoeval')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'datasets') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=cli_env, timeout=60)
    assert "HEAVY []" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("module", [*registry.DEFAULT_PLUGINS, "winoeval.compare", "winoeval.calibration"])
def test_builtin_modules_import_no_heavy_library(module, cli_env):
    code = (f"import sys, {module}\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'datasets', 'PIL', 'scipy',\n"
            "                     'matplotlib', 'numpy', 'safetensors', 'mlxtend') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, timeout=60)
    assert res.returncode == 0, res.stderr


def test_every_hook_is_documented_in_contributing():
    from pathlib import Path

    from winoeval import hookspecs

    text = (Path(__file__).resolve().parent.parent / "CONTRIBUTING.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("winoeval_")]
    assert hooks, "no hooks found"
    for name in hooks:
        assert name in text, f"hook {name} is not documented in CONTRIBUTING.md"
