"""The wheel installs plugins/ and tasks/ inside the winoeval package, with no top-level names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_builtins_under_winoeval_and_imports(tmp_path, cli_env):
    res = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                          str(REPO)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    [wheel] = tmp_path.glob("winoeval-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "winoeval/plugins/analytic.py" in names and "winoeval/tasks/synthetic.py" in names
    assert "winoeval/testing/data.py" in names and "winoeval/testing/models.py" in names
    assert not any(n.startswith(("plugins/", "tasks/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "winoeval = winoeval.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import winoeval, winoeval.plugins.analytic, winoeval.tasks.synthetic\n"
            "from winoeval import registry\n"
            "assert winoeval.__file__.startswith(%r), winoeval.__file__\n"
            "print(sorted(registry.models()), sorted(registry.tasks()))\n"
            "import importlib.util\n"
            "print('toplevel', importlib.util.find_spec('plugins'), importlib.util.find_spec('tasks'))\n") % str(site)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(cli_env, PYTHONPATH=str(site)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "'analytic'" in res.stdout and "'toy-winoground'" in res.stdout
    assert "toplevel None None" in res.stdout
