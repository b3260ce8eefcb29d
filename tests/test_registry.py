"""winoeval.registry: declared options (misspellings caught, close matches offered, undeclared ones passed
through) and what ``register`` warns about."""

from __future__ import annotations

import pytest

from winoeval import registry
from winoeval.hookspecs import hookimpl


def test_misspelt_options_fail_with_close_matches(tmp_path, run_winoeval):
    res = run_winoeval(["run", "-m", "mnist-unet", "-t", "mnist", "--model-arg", "chekpoint=x",
                        "-o", str(tmp_path / "o")])
    assert res.returncode == 2
    assert "has no option 'chekpoint'" in res.stderr and "did you mean checkpoint" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()
    res = run_winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--task-arg", "templates=t.txt"])
    assert res.returncode == 2 and "'toy-winoground' has no option 'templates'" in res.stderr


def test_undeclared_options_pass_through_and_info_lists_declared_ones(run_winoeval):
    entry = registry.models()["analytic"]
    with pytest.raises(registry.UnknownNameError):
        entry.check_options({"x": "1"}, "--model-arg")
    free = registry.Entry("free", lambda a, c: None, "p")  # declares nothing: today's behaviour
    free.check_options({"anything": "1"}, "--model-arg")
    res = run_winoeval(["info", "mnist-unet"])
    assert res.returncode == 0 and "--model-arg checkpoint=" in res.stdout and "--model-arg weights=" in res.stdout
    res = run_winoeval(["list", "--options"])
    assert "--task-arg templates=" in res.stdout


def test_register_warns_about_an_unknown_keyword(register_plugin):
    class Typo:
        @hookimpl
        def winoeval_register_models(self, register):
            register("typo-model", lambda a, c: None, optons={"x": "y"})

    register_plugin(Typo(), name="typo")
    with pytest.warns(registry.PluginLoadWarning, match=r"unknown keyword\(s\) optons \(did you mean options\?\)"):
        registry.models()
