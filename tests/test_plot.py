"""``compare --plot``: which groups are drawn, in which order, with which marks, sizes and formats.

The figure itself was looked at (WinoDigits sd vs clip, MNIST N=20 vs N=3, the toy colour task); these
tests pin what it is built from, by hand-made comparisons whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from winoeval.compare import compare_command
from winoeval.comparison import same_examples, subsets
from winoeval.metrics import winoground_verdicts
from winoeval.plot import check_by, plot_groups, stars, value_label, write_plot
from winoeval.results import load_file_runs

BOTH = [[1.0, 0.0], [0.0, 1.0]]
NONE = [[0.0, 1.0], [1.0, 0.0]]  # text ✗ image ✗


def _record(eid, ok, meta, texts=("a", "b")):
    scores = BOTH if ok else NONE
    return {"id": eid, "scores": scores, "errors": [[-v for v in row] for row in scores],
            "verdicts": winoground_verdicts(scores), "label": None, "n_evals": 4, "meta": meta, "texts": list(texts)}


def _write(directory: Path, model: str, records, breakdowns=("collapsed_tag", "contrast"), declared=None):
    directory.mkdir(parents=True, exist_ok=True)
    results = {"config": {"model": model, "task": "wd", "log_samples": True},
               "model": {"name": model, "plugin": "fake"},
               "task": {"name": "wd", "plugin": "fake", "breakdowns": list(declared or breakdowns)},
               "results": {"wd": {"metric": "winoground", "by": {k: {} for k in sorted(breakdowns)}}}, "skipped": []}
    (directory / "results_s.json").write_text(json.dumps(results))
    (directory / "samples_s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory / "results_s.json"


# the task's order: swap tags first (object, attribute), then control; control splits by contrast into
# digit and colour; contrast=object holds exactly the collapsed_tag=object examples
def _meta(k):
    if k < 4:
        return {"collapsed_tag": "object", "contrast": "object"}
    if k < 8:
        return {"collapsed_tag": "attribute", "contrast": "colour"}
    return {"collapsed_tag": "control", "contrast": "digit" if k < 16 else "colour"}


IDS = [f"e{k:02d}" for k in range(20)]


@pytest.fixture
def runs(tmp_path):
    # A right everywhere; B wrong on the 8 digit contrasts (e08–e15) only: McNemar 8 vs 0, p = 2/2^8
    a = _write(tmp_path / "a", "A", [_record(i, True, _meta(k)) for k, i in enumerate(IDS)])
    b = _write(tmp_path / "b", "B", [_record(i, not 8 <= k < 16, _meta(k)) for k, i in enumerate(IDS)])
    return a, b


def _comparison(paths, tmp_path):
    out = tmp_path / "c.json"
    res = CliRunner().invoke(compare_command, [*map(str, paths), "--json", str(out), "--n-boot", "200", "-q"])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_groups_follow_the_task_order_and_show_each_example_set_once(runs, tmp_path):
    comp = _comparison(runs, tmp_path)
    assert comp["same_as"] == {"contrast=object": "collapsed_tag=object"}
    groups = plot_groups(comp)
    assert [g["subset"] for g in groups] == ["all", "collapsed_tag=object", "collapsed_tag=attribute",
                                             "collapsed_tag=control", "contrast=colour", "contrast=digit"]
    assert groups[1]["aliases"] == ["contrast=object"] and [g["n"] for g in groups] == [20, 4, 4, 12, 8, 8]
    # --by picks breakdowns; none: only all; an unknown one is refused naming the known ones
    assert [g["subset"] for g in plot_groups(comp, ["contrast"])] == ["all", "contrast=object", "contrast=colour",
                                                                     "contrast=digit"]
    assert [g["subset"] for g in plot_groups(comp, ["none"])] == ["all"]
    with pytest.raises(ValueError, match="breaks down by collapsed_tag, contrast"):
        check_by(comp, ["colour"])


def test_tag_values_keep_first_appearance_order_not_alphabetical(runs):
    run = load_file_runs(runs[0])[0]
    names = [name for name, _ in subsets([run], IDS)]
    assert names.index("collapsed_tag=object") < names.index("collapsed_tag=attribute")  # o before a: task order
    assert names.index("contrast=object") < names.index("contrast=colour") < names.index("contrast=digit")
    assert same_examples([("x", ["1", "2"]), ("y", ["3"]), ("z", ["2", "1"])]) == {"z": "x"}


def test_significance_marks_and_labels(runs, tmp_path):
    comp = _comparison(runs, tmp_path)
    (digit,) = [r for r in comp["pairs"] if r["subset"] == "contrast=digit" and r["metric"] == "text"]
    assert (digit["a_only"], digit["b_only"]) == (8, 0) and digit["mcnemar_p"] == pytest.approx(2 / 256)
    assert stars(digit["mcnemar_p"]) == "**"  # 0.0078
    assert (stars(0.0009), stars(0.04), stars(0.05), stars(None)) == ("***", "*", "", "")
    assert value_label(0.94) == "94.0" and value_label(0.9286) == "92.9"  # one decimal, always


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_formats_and_sizes(runs, tmp_path, suffix, magic):
    from PIL import Image

    comp = _comparison(runs, tmp_path)
    path = tmp_path / f"f{suffix}"
    write_plot(path, comp, by=["collapsed_tag"], size="column")
    assert path.read_bytes()[:len(magic)] == magic
    if suffix == ".png":  # 300 dpi, 3.4 in wide (tight bounding box: within a few percent)
        width = Image.open(path).size[0] / 300
        assert 3.0 < width < 3.9
        write_plot(path, comp, size="slide")
        assert 11 < Image.open(path).size[0] / 300 < 13 and Image.open(path).size[1] / 300 < 8  # fits 16:9


def test_bad_plot_options_are_usage_errors_before_any_output(runs, tmp_path):
    res = CliRunner().invoke(compare_command, [*map(str, runs), "--plot", str(tmp_path / "p.jpg")])
    assert res.exit_code == 2 and ".png, .pdf or .svg" in res.output
    res = CliRunner().invoke(compare_command, [*map(str, runs), "--plot", str(tmp_path / "p.png"), "--by", "axis"])
    assert res.exit_code == 2 and "--by axis" in res.output and not (tmp_path / "p.png").exists()


def test_classification_gets_a_per_class_panel_and_no_duplicate_mean_per_class(tmp_path):
    def rec(eid, label, pred):
        scores = [[1.0 if j == pred else 0.0 for j in range(3)]]
        return {"id": eid, "scores": scores, "label": label, "n_evals": 3, "meta": {},
                "verdicts": {"prediction": pred, "correct": pred == label}}

    paths = []
    for name, wrong in (("A", set()), ("B", {0, 3, 6, 9})):  # B misses four of class 0's examples (k % 3 == 0)
        d = tmp_path / name
        d.mkdir()
        recs = [rec(f"x{k}", k % 3, (k % 3 + 1) % 3 if k in wrong else k % 3) for k in range(12)]
        results = {"config": {"model": name, "task": "cls", "log_samples": True}, "model": {"name": name},
                   "task": {"name": "cls", "class_names": ["zero", "one", "two"]},
                   "results": {"cls": {"metric": "classification", "by": {}}}, "skipped": []}
        (d / "results_s.json").write_text(json.dumps(results))
        (d / "samples_s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        paths.append(d / "results_s.json")
    comp = _comparison(paths, tmp_path)
    per = comp["per_class"]
    assert [(c["name"], c["n"]) for c in per] == [("zero", 4), ("one", 4), ("two", 4)]
    assert per[0]["values"]["B"]["value"] == 0.0 and per[1]["values"]["B"]["value"] == 1.0
    assert per[0]["mcnemar_p_vs_first"]["B"] == pytest.approx(2 / 16)  # 4 discordant, all one way
    path = tmp_path / "cls.png"
    write_plot(path, comp)
    assert path.stat().st_size > 10_000


def test_a_folder_of_runs_is_compared_in_the_order_the_runs_were_made(tmp_path):
    """`winoeval compare runs` after `run -m zeta` then `run -m alpha`: zeta is the reference (Δ = alpha − zeta),
    as with `compare runs/zeta runs/alpha`, not alphabetical (which would flip the sign of Δ)."""
    recs_good = [_record(i, True, _meta(k)) for k, i in enumerate(IDS)]
    recs_bad = [_record(i, k >= 8, _meta(k)) for k, i in enumerate(IDS)]
    for model, recs, date in (("zeta", recs_good, "2026-01-01T10:00:00+00:00"),
                              ("alpha", recs_bad, "2026-01-01T11:00:00+00:00")):
        path = _write(tmp_path / "runs" / model, model, recs)
        data = json.loads(path.read_text())
        data["run"] = {"date": date}
        path.write_text(json.dumps(data))
    out = tmp_path / "c.json"
    res = CliRunner().invoke(compare_command, [str(tmp_path / "runs"), "--json", str(out), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "in the order they were run: zeta, alpha" in res.output
    comp = json.loads(out.read_text())
    assert [r["label"] for r in comp["runs"]] == ["zeta", "alpha"]
    (row,) = [r for r in comp["pairs"] if r["subset"] == "all" and r["metric"] == "text"]
    assert (row["a"], row["b"]) == ("zeta", "alpha") and row["diff"] == pytest.approx(-8 / 20)
