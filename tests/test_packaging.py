"""The package as a whole: the wheel installs plugins/ and tasks/ inside the winoeval package, with no
top-level names; torch is new enough for weights-only loading, and no source loads weights unsafely."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_builtins_under_winoeval_and_imports(tmp_path, cli_env):
    res = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                          str(REPO)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    [wheel] = tmp_path.glob("winoeval-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "winoeval/plugins/analytic.py" in names and "winoeval/tasks/synthetic.py" in names
    assert "winoeval/testing/data.py" in names and "winoeval/testing/models.py" in names
    assert not any(n.startswith(("plugins/", "tasks/")) for n in names)
    # every shipped weight file travels in the wheel: MNIST, and both WinoDigits models (SD folder, OpenCLIP)
    shipped = [p.relative_to(REPO / "plugins").as_posix() for p in (REPO / "plugins").rglob("*")
               if p.is_file() and p.suffix in (".safetensors", ".json", ".txt") and "__pycache__" not in p.parts]
    assert any(s.startswith("winodigits_sd/unet/") for s in shipped) and any(s.startswith("winodigits_clip/") for s in shipped)
    missing = [s for s in shipped if f"winoeval/plugins/{s}" not in names]
    assert not missing, f"shipped files missing from the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "winoeval = winoeval.cli:entry" in zipfile.ZipFile(wheel).read(entry_points).decode()
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


def test_torch_requirement_has_weights_only_loading():
    text = (REPO / "pyproject.toml").read_text()
    version = re.search(r'"torch>=(\d+)\.(\d+)"', text)
    assert version and (int(version.group(1)), int(version.group(2))) >= (2, 6)


def test_weights_are_loaded_safely():
    """No pickle loading without weights_only=True, and never trust_remote_code."""
    offenders = []
    for path in [*REPO.glob("winoeval/**/*.py"), *REPO.glob("plugins/*.py"), *REPO.glob("tasks/*.py"),
                 *REPO.glob("benchmarks/*.py")]:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{path.name}: torch.load without weights_only=True")
        if re.search(r"trust_remote_code\s*=\s*True", text):
            offenders.append(f"{path.name}: trust_remote_code=True")
    assert not offenders, offenders
