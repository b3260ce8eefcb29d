"""Refactors change no number: a fixed set of runs on tiny models, compared byte for byte with files
recorded before the refactor (``tests/golden/``).

Compared: the results JSON (without the fields that depend on when and where a run happened: the date,
wall time, output path, package versions and git hash), every samples line, every resume-cache line and
the run key (the cache folder's name). Regenerate only for an intended change of output:
``WINOEVAL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` — and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from winoeval.cli import cli

GOLDEN = Path(__file__).parent / "golden"

RUNS = {
    "analytic-toy": ["--model", "analytic", "--task", "toy-winoground", "--log-samples"],
    "analytic-two-tasks-early": ["--model", "analytic:0.5", "-t", "colors,toy-winoground", "--early-stop",
                                 "--n-samples", "60", "--log-samples", "--batch-size", "7"],
    "analytic-stages": ["--model", "analytic", "--task", "colors", "--n-samples", "10,30", "--to-keep", "3,1",
                        "--loss", "l1", "--timesteps", "stratified", "--seed", "3", "--log-samples"],
    "analytic-shared-noise": ["--model", "analytic", "--task", "toy-winoground", "--noise", "shared",
                              "--no-normalize", "--timesteps", "uniform", "--log-samples"],
    "mnist-unet": ["--model", "mnist-unet", "--task", "mnist", "--limit", "6", "--n-samples", "4",
                   "--log-samples"],
    "winodigits-sd": ["--model", "winodigits-sd", "--task", "winodigits", "--limit", "3", "--n-samples", "3",
                      "--log-samples"],
    "winodigits-clip": ["--model", "winodigits-clip", "--task", "winodigits", "--limit", "6", "--log-samples"],
}

VOLATILE_RUN = ("date", "wall_time_s")


def _normalise(results: dict) -> dict:
    results = json.loads(json.dumps(results))
    for key in ("versions", "git_hash"):
        results.pop(key, None)
    results["config"].pop("output_path", None)
    for section in [results.get("run", {}), *(t.get("run", {}) for t in results.get("tasks", {}).values())]:
        for key in VOLATILE_RUN:
            section.pop(key, None)
    return results


def _snapshot(out: Path) -> dict:
    (model_dir,) = [p for p in out.iterdir() if p.is_dir()]
    (results_file,) = model_dir.glob("results_*.json")
    snap = {"results": _normalise(json.loads(results_file.read_text()))}
    snap["samples"] = {p.name.split("_20")[0]: p.read_text().splitlines()
                       for p in sorted(model_dir.glob("samples_*.jsonl"))}
    caches = sorted((model_dir / ".cache").glob("*/part-*.jsonl"))
    snap["cache"] = {f"{p.parent.name}/{p.name}": sorted(p.read_text().splitlines()) for p in caches}
    return snap


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_output_is_byte_identical_to_the_recorded_one(name, tmp_path, one_torch_thread, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", *RUNS[name], "-o", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    snap = _snapshot(out)
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("WINOEVAL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden file written")
    expected = json.loads(golden.read_text())
    assert snap["cache"].keys() == expected["cache"].keys(), "the run key (cache folder name) changed"
    assert snap["samples"] == expected["samples"]
    assert snap["cache"] == expected["cache"]
    assert snap["results"] == expected["results"]
