"""``--log-errors`` and ``winoeval rescore``: per-timestep errors kept, verdicts recomputed without a model call."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from winoeval.cli import cli

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(tmp_path, *args):
    res = CliRunner().invoke(cli, ["run", *args, "-o", str(tmp_path), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    return folder


def _rescore(path, weighting):
    res = CliRunner().invoke(cli, ["rescore", str(path), "--weighting", weighting], catch_exceptions=False)
    return res


@pytest.mark.parametrize("args", [
    ["--model", "analytic", "--task", "toy-winoground", "--n-samples", "12"],
    ["--model", "analytic:0.5", "--task", "colors", "--n-samples", "10,30", "--to-keep", "3,1"],
    ["--model", "mnist-unet", "--task", "mnist", "--limit", "8", "--n-samples", "6"],
])
def test_uniform_rescore_reproduces_the_run_exactly(tmp_path, args):
    folder = _run(tmp_path, *args, "--log-errors", "--log-samples")
    (results_file,) = folder.glob("results_*.json")
    (errors_file,) = folder.glob("errors_*.jsonl")
    assert errors_file.name == results_file.name.replace("results_", "errors_").replace(".json", ".jsonl")
    res = _rescore(results_file, "uniform")
    assert res.exit_code == 0, res.output
    new_file = max(folder.glob("results_*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert new_file != results_file
    old, new = json.loads(results_file.read_text()), json.loads(new_file.read_text())
    assert new["results"] == old["results"]
    assert new["run"]["run_key"] != old["run"]["run_key"] and new["run"]["weighting"] == "uniform"
    # per example: the same scores, bit for bit, as the samples file of the run
    from winoeval.rescore import read_errors_file, rescore_record

    header, records = read_errors_file(errors_file)
    samples = [json.loads(line) for line in next(folder.glob("samples_*.jsonl")).read_text().splitlines()]
    assert [r["id"] for r in records] == [s["id"] for s in samples]
    for record, sample in zip(records, samples):
        again = rescore_record(record, header["metric"], None)
        assert again["scores"] == sample["scores"] and again["verdicts"] == sample["verdicts"]
        assert "per_sample" not in sample


def test_weightings_change_scores_as_computed_by_hand(tmp_path):
    folder = _run(tmp_path, "--model", "analytic", "--task", "colors", "--n-samples", "8", "--log-errors")
    (errors_file,) = folder.glob("errors_*.jsonl")
    from winoeval.rescore import decode, parse_weighting, read_errors_file, rescore_record

    header, records = read_errors_file(errors_file)
    record = records[0]
    field = decode(record["per_sample"])
    t, e = field["t"], field["errors"][0, :field["texts"]]
    keep = (t >= 0) & (t <= 499)
    assert 0 < int(keep.sum()) < len(t)
    out = rescore_record(record, header["metric"], parse_weighting("range:0-499"))
    expected = -(e[:, keep].mean(dim=1))
    assert out["scores"][0] == pytest.approx(expected.tolist(), rel=1e-12)
    snr = field["snr"]
    out = rescore_record(record, header["metric"], parse_weighting("snr"))
    assert out["scores"][0] == pytest.approx((-(e * snr).sum(dim=1) / snr.sum()).tolist(), rel=1e-12)
    w = torch.clamp(snr, max=5.0) / snr
    out = rescore_record(record, header["metric"], parse_weighting("min-snr:5"))
    assert out["scores"][0] == pytest.approx((-(e * w).sum(dim=1) / w.sum()).tolist(), rel=1e-12)


def test_rescore_errors_are_one_clear_line(tmp_path):
    folder = _run(tmp_path, "--model", "analytic", "--task", "colors", "--n-samples", "4")
    (results_file,) = folder.glob("results_*.json")
    res = _rescore(results_file, "uniform")
    assert res.exit_code == 2 and "--log-errors" in res.output
    folder2 = _run(tmp_path / "b", "--model", "analytic", "--task", "colors", "--n-samples", "4", "--log-errors")
    for bad in ("min-snr:-1", "range:9-2", "bogus", f"file:{tmp_path}/missing.json"):
        res = _rescore(folder2, bad)
        assert res.exit_code == 2 and "--weighting" in res.output, (bad, res.output)


def test_log_errors_recomputes_cached_examples_that_lack_them(tmp_path):
    _run(tmp_path, "--model", "analytic", "--task", "colors", "--n-samples", "4")
    folder = _run(tmp_path, "--model", "analytic", "--task", "colors", "--n-samples", "4", "--log-errors")
    (errors_file,) = folder.glob("errors_*.jsonl")
    lines = errors_file.read_text().splitlines()[1:]
    assert lines and all("per_sample" in json.loads(line) for line in lines)


def test_a_run_of_two_tasks_logs_and_rescores_both(tmp_path):
    folder = _run(tmp_path, "--model", "analytic", "-t", "colors,toy-winoground", "--n-samples", "6", "--log-errors")
    assert sorted(p.name.split("_20")[0] for p in folder.glob("errors_*.jsonl")) == ["errors_colors",
                                                                                   "errors_toy-winoground"]
    (results_file,) = folder.glob("results_*.json")
    res = _rescore(results_file, "uniform")
    assert res.exit_code == 0, res.output
    new_file = max(folder.glob("results_*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert json.loads(new_file.read_text())["results"] == json.loads(results_file.read_text())["results"]
    res = _rescore(results_file, "range:500-999")
    assert res.exit_code == 0, res.output
