"""The synthetic tasks (``colors``, ``toy-winoground``): a bad argument is a usage error."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("task", ["colors:abc", "toy-winoground:-1"])
def test_bad_synthetic_task_arguments_are_usage_errors(tmp_path, run_winoeval, task):
    res = run_winoeval(["run", "-m", "analytic", "-t", task, "-o", str(tmp_path / "o")])
    assert res.returncode == 2 and "noise sigma" in res.stderr and "report it" not in res.stderr
