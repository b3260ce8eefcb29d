"""``winoeval compare``: paired tests on fake runs with hand-computed answers, outputs, and real runs."""

from __future__ import annotations

import base64
import csv
import json
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from winoeval.comparison import paired_bootstrap_binary
from winoeval.compare import compare_command
from winoeval.metrics import winoground_verdicts

# Score matrices (rows = images, cols = captions) with known verdicts.
BOTH = [[1.0, 0.0], [0.0, 1.0]]        # text ✓ image ✓
IMAGE_ONLY = [[1.0, 1.5], [0.0, 2.0]]  # text ✗ (s00 < s01) image ✓
assert winoground_verdicts(BOTH) == {"text": True, "image": True, "group": True}
assert winoground_verdicts(IMAGE_ONLY) == {"text": False, "image": True, "group": False}

IDS = [f"ex{k:02d}" for k in range(20)]
# Text verdicts: A right / B wrong on ex00–ex07 (8), A wrong / B right on ex08–ex09 (2),
# both right on ex10–ex14, both wrong on ex15–ex19. Image is right everywhere, so group = text.
A_TEXT = {i: k < 8 or 10 <= k < 15 for k, i in enumerate(IDS)}
B_TEXT = {i: 8 <= k < 15 for k, i in enumerate(IDS)}
P_8_VS_2 = 0.109375  # 2·P(Bin(10, ½) ≤ 2) = 2·(1 + 10 + 45)/1024
P_7_VS_2 = 0.1796875  # 2·P(Bin(9, ½) ≤ 2) = 2·(1 + 9 + 36)/512
P_4_VS_1 = 0.375  # 2·P(Bin(5, ½) ≤ 1) = 2·(1 + 5)/32


def _tag(eid: str) -> str:
    return "Object" if int(eid[2:]) % 2 == 0 else "Relation"


def wino_record(eid: str, text_ok: bool) -> dict:
    scores = BOTH if text_ok else IMAGE_ONLY
    return {"id": eid, "scores": scores, "errors": [[-v for v in row] for row in scores],
            "verdicts": winoground_verdicts(scores), "label": None, "n_evals": 4,
            "meta": {"collapsed_tag": _tag(eid)}, "texts": [f"caption a {eid}", f"caption b {eid}"]}


def write_run(directory: Path, model: str, task: str, records: list[dict], *, metric: str = "winoground",
              stamp: str = "2026-01-01T00-00-00", samples: bool = True, by=("collapsed_tag",)) -> Path:
    """A results file (only the fields compare reads, plus what a real one has around them) and its samples."""
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        "config": {"model": model, "task": task, "data_dir": None, "task_args": {}, "log_samples": samples},
        "model": {"name": model, "plugin": "fake"},
        "task": {"name": task, "plugin": "fake", "size": len(records), "examples": len(records)},
        "results": {task: {"metric": metric, "n": len(records), "by": {k: {} for k in by}}},
        "skipped": [],
    }
    path = directory / f"results_{stamp}.json"
    path.write_text(json.dumps(results))
    if samples:
        (directory / f"samples_{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", "model-a", "fake-wino", [wino_record(i, A_TEXT[i]) for i in IDS])
    b = write_run(tmp_path / "b", "model-b", "fake-wino", [wino_record(i, B_TEXT[i]) for i in IDS])
    return a, b


def invoke(*args):
    result = CliRunner().invoke(compare_command, [str(a) for a in args], catch_exceptions=False)
    return result


def pair_row(comp: dict, subset: str, metric: str, a: str = "model-a", b: str = "model-b") -> dict:
    (row,) = [r for r in comp["pairs"] if r["subset"] == subset and r["metric"] == metric and r["a"] == a
              and r["b"] == b]
    return row


def test_mcnemar_counts_ids_and_differences(two_runs, tmp_path):
    out_json = tmp_path / "cmp.json"
    result = invoke(*two_runs, "--json", out_json)
    assert result.exit_code == 0, result.output
    comp = json.loads(out_json.read_text())
    text = pair_row(comp, "all", "text")
    assert text["n"] == 20
    assert (text["a_only"], text["b_only"]) == (8, 2)
    assert text["a_only_ids"] == IDS[:8] and text["b_only_ids"] == ["ex08", "ex09"]
    assert text["mcnemar_p"] == pytest.approx(P_8_VS_2, abs=1e-12)
    assert text["a_value"] == pytest.approx(13 / 20) and text["b_value"] == pytest.approx(7 / 20)
    assert text["diff"] == pytest.approx(-0.30)
    lo, hi = text["ci95"]
    # normal approximation of the paired difference: SE = sqrt((p+ + p- − d²)/n) = sqrt(0.41/20) ≈ 0.143
    assert -0.30 - 1.96 * 0.143 - 0.06 < lo < -0.30 < hi < -0.30 + 1.96 * 0.143 + 0.06
    group = pair_row(comp, "all", "group")
    assert (group["a_only"], group["b_only"], group["mcnemar_p"]) == (8, 2, pytest.approx(P_8_VS_2))
    image = pair_row(comp, "all", "image")  # identical verdicts: nothing discordant
    assert (image["a_only"], image["b_only"], image["mcnemar_p"], image["ci95"]) == (0, 0, 1.0, [0.0, 0.0])
    # per tag: Object holds ex00, 02, 04, 06 (A only) and ex08 (B only): 4 vs 1
    for tag, a_ids, b_ids in (("Object", ["ex00", "ex02", "ex04", "ex06"], ["ex08"]),
                              ("Relation", ["ex01", "ex03", "ex05", "ex07"], ["ex09"])):
        row = pair_row(comp, f"collapsed_tag={tag}", "text")
        assert row["n"] == 10 and row["a_only_ids"] == a_ids and row["b_only_ids"] == b_ids
        assert row["mcnemar_p"] == pytest.approx(P_4_VS_1)
    # the per-model scores: Wilson interval of 13/20 (z = 1.96: centre (0.65 + z²/40)/(1 + z²/20))
    (score,) = [s for s in comp["scores"] if s["subset"] == "all" and s["metric"] == "text"]
    assert score["values"]["model-a"]["value"] == pytest.approx(0.65)
    assert score["values"]["model-a"]["ci95"] == pytest.approx([0.4329, 0.8188], abs=1e-4)  # centre 0.6258 ± 0.1930
    # the markdown table: p-value, counts, ids truncated to five
    line = next(ln for ln in result.output.splitlines() if ln.startswith("| all | 20 | text | -30.0"))
    assert "| 0.1094 | 8 | 2 |" in line
    assert "ex00, ex01, ex02, ex03, ex04 … (+3)" in line and "ex08, ex09" in line
    assert "| all | 20 | text | 65.0 [43.3, 81.9] | 35.0 [18.1, 56.7] |" in result.output


def test_bootstrap_is_seeded_and_matches_index_resampling():
    rng = np.random.default_rng(1)
    a = rng.random(60) < 0.7
    b = rng.random(60) < 0.5
    r1 = paired_bootstrap_binary(a, b, 20_000, np.random.default_rng(5))
    r2 = paired_bootstrap_binary(a, b, 20_000, np.random.default_rng(5))
    assert r1 == r2
    idx = np.random.default_rng(7).integers(0, 60, size=(20_000, 60))  # the textbook paired bootstrap
    naive = np.percentile(b[idx].mean(1) - a[idx].mean(1), [2.5, 97.5])
    assert r1 == pytest.approx(list(naive), abs=0.02)


def test_refuses_different_tasks_and_subsets(tmp_path):
    recs = [wino_record(i, True) for i in IDS]
    a = write_run(tmp_path / "a", "m1", "winoground", recs)
    b = write_run(tmp_path / "b", "m2", "winoground:relation", recs)
    result = invoke(a, b)
    assert result.exit_code == 2  # bad input: a usage error, as the README promises
    assert "different tasks or subsets" in result.output and "'winoground:relation'" in result.output
    assert result.output.count("Error:") == 1


def test_refuses_runs_with_different_labels(tmp_path):
    a = write_run(tmp_path / "a", "A", "fake-cls", [class_record("c0", 0, 0), class_record("c1", 1, 1)],
                  metric="classification", by=())
    b = write_run(tmp_path / "b", "B", "fake-cls", [class_record("c0", 0, 0), class_record("c1", 2, 1)],
                  metric="classification", by=())
    result = invoke(a, b)
    assert result.exit_code != 0 and "different true labels (c1)" in result.output


def test_run_without_log_samples_says_to_rerun(tmp_path, two_runs):
    bare = write_run(tmp_path / "c", "m3", "fake-wino", [], samples=False)
    result = invoke(two_runs[0], bare)
    assert result.exit_code != 0
    assert "--log-samples" in result.output and "rerun" in result.output.lower()


def test_partially_overlapping_examples(tmp_path):
    # B lacks ex07 (an A-only example) and ex19, has an extra ex20, and skipped ex18.
    a = write_run(tmp_path / "a", "model-a", "fake-wino", [wino_record(i, A_TEXT[i]) for i in IDS])
    b_recs = [wino_record(i, B_TEXT[i]) for i in IDS if i not in ("ex07", "ex18", "ex19")]
    b_recs += [wino_record("ex20", True), {"id": "ex18", "skipped": "unreadable image"}]
    b = write_run(tmp_path / "b", "model-b", "fake-wino", b_recs)
    out_json, out_csv = tmp_path / "c.json", tmp_path / "c.csv"
    result = invoke(a, b, "--json", out_json, "--csv", out_csv)
    assert result.exit_code == 0, result.output
    assert "comparing only the 17 example(s)" in result.output
    comp = json.loads(out_json.read_text())
    assert comp["n_shared"] == 17
    text = pair_row(comp, "all", "text")
    assert (text["n"], text["a_only"], text["b_only"]) == (17, 7, 2)
    assert "ex07" not in text["a_only_ids"]
    assert text["mcnemar_p"] == pytest.approx(P_7_VS_2)
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 17 * 2
    assert {r["id"] for r in rows} == set(IDS) - {"ex07", "ex18", "ex19"}
    strict = invoke(a, b, "--strict")
    assert strict.exit_code != 0 and "--strict" in strict.output and "17 shared" in strict.output


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections: list[dict] = []
        self.imgs: list[tuple[int, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "example" in (attrs.get("class") or "").split():
            self.sections.append(attrs)
        if tag == "img":
            self.imgs.append((len(self.sections), attrs.get("src", "")))
        for key in ("src", "href"):
            if (attrs.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(attrs[key])


def parse_html(path: Path) -> _Sections:
    parser = _Sections()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_html_plot_csv_outputs(two_runs, tmp_path):
    html_path, png, csv_path = tmp_path / "r.html", tmp_path / "p.png", tmp_path / "r.csv"
    result = invoke(*two_runs, "--html", html_path, "--plot", png, "--csv", csv_path)
    assert result.exit_code == 0, result.output
    parsed = parse_html(html_path)
    assert [s["data-id"] for s in parsed.sections] == IDS  # exactly one block per example
    disagree_text = {s["data-id"] for s in parsed.sections if s["data-disagree-text"] == "1"}
    assert disagree_text == set(IDS[:10])
    assert not parsed.external
    page = html_path.read_text()
    assert "<script>" in page and "<script src" not in page and "<link" not in page  # inline JS/CSS, no CDN
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 0 and im.size[1] > 0
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 * 2
    row = next(r for r in rows if r["id"] == "ex00" and r["model"] == "model-b")
    assert (row["text"], row["image"], row["group"], row["s01"]) == ("0", "1", "0", "1.5")


def class_record(eid: str, label: int, prediction: int) -> dict:
    scores = [0.0, 0.0, 0.0]
    scores[prediction] = 1.0
    return {"id": eid, "scores": [scores], "verdicts": {"prediction": prediction, "correct": prediction == label},
            "label": label, "meta": {}, "n_evals": 3}


def test_classification_accuracy_and_mean_per_class(tmp_path):
    labels = [0, 0, 0, 0, 1, 1, 2, 2]
    a_pred = [0, 0, 0, 1, 1, 1, 2, 0]  # right on 0,1,2,4,5,6: class acc 3/4, 1, 1/2 → mean 3/4
    b_pred = [0, 1, 2, 1, 1, 1, 2, 2]  # right on 0,4,5,6,7: class acc 1/4, 1, 1 → mean 3/4
    ids = [f"c{k}" for k in range(8)]
    a = write_run(tmp_path / "a", "A", "fake-cls", [class_record(i, y, p) for i, y, p in zip(ids, labels, a_pred)],
                  metric="classification", by=())
    b = write_run(tmp_path / "b", "B", "fake-cls", [class_record(i, y, p) for i, y, p in zip(ids, labels, b_pred)],
                  metric="classification", by=())
    out_json, html_path, csv_path = tmp_path / "c.json", tmp_path / "c.html", tmp_path / "c.csv"
    result = invoke(a, b, "--json", out_json, "--html", html_path, "--csv", csv_path, "--no-images")
    assert result.exit_code == 0, result.output
    comp = json.loads(out_json.read_text())
    acc = pair_row(comp, "all", "accuracy", "A", "B")
    assert (acc["a_only_ids"], acc["b_only_ids"]) == (["c1", "c2"], ["c7"])
    assert acc["mcnemar_p"] == pytest.approx(1.0)  # 2 vs 1: 2·P(Bin(3, ½) ≤ 1) = 1
    mpc = pair_row(comp, "all", "mean_per_class", "A", "B")
    assert mpc["a_value"] == pytest.approx(0.75) and mpc["b_value"] == pytest.approx(0.75)
    assert mpc["mcnemar_p"] is None and mpc["ci95"][0] <= 0 <= mpc["ci95"][1]
    parsed = parse_html(html_path)
    assert len(parsed.sections) == 8
    assert {s["data-id"] for s in parsed.sections if s["data-disagree"] == "1"} == {"c1", "c2", "c7"}
    assert "true label" in html_path.read_text()
    with open(csv_path, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 16


def test_all_pairs_and_duplicate_names(two_runs, tmp_path):
    third = write_run(tmp_path / "c", "model-a", "fake-wino", [wino_record(i, True) for i in IDS])
    out_json = tmp_path / "c.json"
    result = invoke(*two_runs, third, "--pairs", "all", "--json", out_json, "--n-boot", "500")
    assert result.exit_code == 0, result.output
    comp = json.loads(out_json.read_text())
    assert [r["label"] for r in comp["runs"]] == ["model-a", "model-b", "model-a #2"]
    assert {(r["a"], r["b"]) for r in comp["pairs"]} == {("model-a", "model-b"), ("model-a", "model-a #2"),
                                                          ("model-b", "model-a #2")}
    row = pair_row(comp, "all", "text", "model-b", "model-a #2")
    assert (row["a_only"], row["b_only"]) == (0, 13)  # B right on 7 of 20; the third run on all 20


def test_light_imports():
    """``winoeval --help`` imports these modules: nothing heavy at module level."""
    code = ("import sys, winoeval.compare, winoeval.calibration, winoeval.report, winoeval.html_report, "
            "winoeval.plot, winoeval.comparison, winoeval.results; "
            "print(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'PIL', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("task,models", [("toy-winoground", ("analytic", "analytic:0.9")),
                                         ("toy-winoground:3", ("analytic", "analytic:10"))])
def test_end_to_end_real_runs(tmp_path, task, models):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    paths = []
    for k, model in enumerate(models):
        out = evaluate(RunConfig(model=model, task=task, scorer_args={"n_samples": (8,)}, log_samples=True,
                                 output_path=str(tmp_path / f"run{k}")), progress=False)
        paths.append(out.results_path)
    html_path, png, out_json = tmp_path / "r.html", tmp_path / "r.png", tmp_path / "r.json"
    result = invoke(*paths, "--html", html_path, "--plot", png, "--json", out_json)
    assert result.exit_code == 0, result.output
    assert f"## {task}: 2 runs on 6 shared examples" in result.output
    assert "| all | 6 | text |" in result.output
    comp = json.loads(out_json.read_text())
    # the paired counts agree with the two samples files
    records = []
    for path in paths:
        samples = path.with_name(path.name.replace("results_", "samples_").replace(".json", ".jsonl"))
        records.append({r["id"]: r for r in map(json.loads, samples.read_text().splitlines())})
    for metric in ("text", "image", "group"):
        row = pair_row(comp, "all", metric, models[0], models[1])
        ok = [{i for i, r in recs.items() if r["verdicts"][metric]} for recs in records]
        a_only, b_only = sorted(ok[0] - ok[1]), sorted(ok[1] - ok[0])
        assert sorted(row["a_only_ids"]) == a_only and sorted(row["b_only_ids"]) == b_only
        n, k_min = len(a_only) + len(b_only), min(len(a_only), len(b_only))
        expected_p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, k) for k in range(k_min + 1)) / 2 ** n)
        assert row["mcnemar_p"] == pytest.approx(expected_p)
    parsed = parse_html(html_path)
    assert [s["data-id"] for s in parsed.sections] == [str(k) for k in range(6)]
    for k in range(1, 7):  # two embedded PNG thumbnails per example
        srcs = [src for sec, src in parsed.imgs if sec == k]
        assert len(srcs) == 2
        for src in srcs:
            assert src.startswith("data:image/png;base64,")
            assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_modules_are_layered():
    """Loading at the bottom, statistics above it, rendering above those, the commands on top."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_import_graph", Path(__file__).with_name("test_import_graph.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = module.import_graph()
    layers = [{"winoeval.results"}, {"winoeval.comparison", "winoeval.calibration"},
              {"winoeval.report", "winoeval.plot", "winoeval.html_report"}, {"winoeval.compare"}]
    for k, layer in enumerate(layers):
        above = set().union(*layers[k + 1:])
        for module in layer:
            assert not graph[module] & above, f"{module} imports {sorted(graph[module] & above)} from a layer above"
    assert not any("winoeval.compare" in deps for m, deps in graph.items() if m != "winoeval.cli")


def test_plot_names_chance_and_subsets_that_repeat_all(tmp_path):
    from winoeval.plot import chance_level, short_label, short_labels

    assert short_label("sd:/data/models/stable-diffusion-2-base") == "sd:…/stable-diffusion-2-base"
    assert short_label("openclip:ViT-H-14//data/vit-h-14/open_clip_pytorch_model.bin") == "openclip:ViT-H-14"
    assert short_label("analytic:10") == "analytic:10"
    # two runs that would shorten to the same name keep their full names
    long_a, long_b = "sd:/data/one/place/models/sd2", "sd:/data/another/place/models/sd2"
    assert short_labels([long_a, long_b]) == {long_a: long_a, long_b: long_b}
    assert [chance_level({"metric": "winoground"}, m) for m in ("text", "image", "group")] == \
        [0.25, 0.25, pytest.approx(1 / 6)]
    assert chance_level({"metric": "classification", "n_classes": 37}, "accuracy") == pytest.approx(1 / 37)
    # every example tagged Object: that subset repeats `all` and is left out (and said so)
    recs = [dict(wino_record(i, A_TEXT[i]), meta={"collapsed_tag": "Object"}) for i in IDS]
    a = write_run(tmp_path / "a", "model-a", "fake-wino", recs)
    b = write_run(tmp_path / "b", "model-b", "fake-wino", [dict(r, verdicts=dict(r["verdicts"])) for r in recs])
    out_json, png = tmp_path / "c.json", tmp_path / "c.png"
    result = invoke(a, b, "--json", out_json, "--plot", png)
    assert result.exit_code == 0, result.output
    comp = json.loads(out_json.read_text())
    assert comp["same_as_all"] == ["collapsed_tag=Object"]
    assert {s["subset"] for s in comp["scores"]} == {"all"} and {p["subset"] for p in comp["pairs"]} == {"all"}
    assert "every example has collapsed_tag=Object" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_summary_pairs_legend_and_labels(two_runs, tmp_path):
    import re

    from winoeval.html_report import class_name

    html_path = tmp_path / "r.html"
    result = invoke(*two_runs, "--html", html_path, "--no-images")
    assert result.exit_code == 0, result.output
    page = html_path.read_text()
    summary = re.search(r'<table class="summary">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", summary, re.S)
    assert len(rows) == 2 + 3  # two header rows; all, Object, Relation
    assert [m for m in re.findall(r'<th colspan="2">(\w+)</th>', rows[0])] == ["text", "image", "group"]
    assert re.findall(r"<th[^>]*>(model-[ab])</th>", rows[1]) == ["model-a", "model-b"] * 3
    first = re.findall(r"<td( class=\"best\")?>([\d.]+)<br>", rows[2])
    # all: text 65.0 vs 35.0 (A bold), image 100 vs 100 (a tie: neither bold), group as text
    assert first == [(' class="best"', "65.0"), ("", "35.0"), ("", "100.0"),
                     ("", "100.0"), (' class="best"', "65.0"), ("", "35.0")]
    pairs = re.search(r'<table class="pairs">(.*?)</table>', page, re.S).group(1)
    text_object = next(r for r in re.findall(r"<tr>(.*?)</tr>", pairs, re.S) if "collapsed_tag=Object" in r
                       and ">text<" in r)
    assert re.findall(r'<a href="#ex-(ex\d+)">', text_object) == ["ex00", "ex02", "ex04", "ex06", "ex08"]
    for eid in ("ex00", "ex08"):
        assert f'<section id="ex-{eid}"' in page
    assert "Orange stripe" in page and "<b class=\"best\">Bold</b>" in page and "#show=disagree" in page
    assert class_name(7, [str(d) for d in range(10)]) == "7"  # mnist: the label once, not "7 (7)"
    assert class_name(1, ["cat", "dog"]) == "dog (1)" and class_name(3, None) == "3"


def test_report_images_large_shrunk_to_256_small_upscaled_and_a_larger_stored_copy():
    from PIL import Image

    from winoeval.html_report import DISPLAY, STORED, _figures, image_uri

    photo = Image.effect_noise((1000, 800), 40).convert("RGB")  # a photo-like 1000×800 image
    uri = image_uri(photo)
    assert uri.startswith("data:image/jpeg;base64,")
    stored = Image.open(__import__("io").BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert stored.size == (STORED, round(STORED * 800 / 1000))  # shrunk, aspect kept
    html = _figures([(uri, *stored.size)], 1, ["I0"])
    assert f'width="{DISPLAY}" height="{round(DISPLAY * 800 / 1000)}"' in html and 'class="small"' not in html
    digit = Image.new("L", (28, 28), 0)
    uri = image_uri(digit)
    assert uri.startswith("data:image/png;base64,")  # small images stay lossless, at their own size
    html = _figures([(uri, 28, 28)], 1, ["image"])
    # upscaled by a whole factor to about SMALL_TARGET px (5× → 140 px), drawn pixelated
    assert 'width="140" height="140"' in html and 'class="small"' in html
    assert _figures([(uri, 32, 32)], 1, ["image"]).count('width="160" height="160"') == 1  # WinoDigits: 5×
    assert _figures([(uri, 200, 100)], 1, ["image"]).count('width="200" height="100"') == 1  # no whole factor fits


def write_multi_run(directory: Path, model: str, by_task: dict[str, tuple[str, list[dict]]],
                    stamp: str = "2026-01-01T00-00-00") -> Path:
    """A results file of a run of several tasks (``tasks`` + ``results`` keyed by task) and one
    ``samples_<task>_<stamp>.jsonl`` per task."""
    directory.mkdir(parents=True, exist_ok=True)
    results = {"config": {"model": model, "data_dir": None, "task_args": {}, "log_samples": True},
               "model": {"name": model, "plugin": "fake"},
               "tasks": {t: {"plugin": "fake", "size": len(recs)} for t, (metric, recs) in by_task.items()},
               "results": {t: {"metric": metric, "n": len(recs), "by": {}} for t, (metric, recs) in by_task.items()}}
    path = directory / f"results_{stamp}.json"
    path.write_text(json.dumps(results))
    for t, (_, recs) in by_task.items():
        (directory / f"samples_{t}_{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_results_files_of_several_tasks_are_compared_task_by_task(tmp_path):
    labels = [0, 0, 1, 1]
    a = write_multi_run(tmp_path / "a", "A", {
        "fake-wino": ("winoground", [wino_record(i, A_TEXT[i]) for i in IDS]),
        "fake-cls": ("classification", [class_record(f"c{k}", y, y) for k, y in enumerate(labels)])})
    b = write_multi_run(tmp_path / "b", "B", {
        "fake-wino": ("winoground", [wino_record(i, B_TEXT[i]) for i in IDS]),
        "fake-cls": ("classification", [class_record(f"c{k}", y, 1 - y) for k, y in enumerate(labels)])})
    out_json = tmp_path / "c.json"
    result = invoke(a, b, "--json", out_json, "--n-boot", "200")
    assert result.exit_code == 0, result.output
    assert "# task fake-wino" in result.output and "# task fake-cls" in result.output
    wino = json.loads((tmp_path / "c_fake-wino.json").read_text())
    cls = json.loads((tmp_path / "c_fake-cls.json").read_text())
    assert pair_row(wino, "all", "text", "A", "B")["a_only_ids"] == IDS[:8]
    assert pair_row(cls, "all", "accuracy", "A", "B")["a_only_ids"] == ["c0", "c1", "c2", "c3"]
    only = invoke(a, b, "--task", "fake-cls", "--json", out_json, "--n-boot", "200")
    assert only.exit_code == 0 and "fake-wino" not in only.output and json.loads(out_json.read_text())["task"] == "fake-cls"
    missing = invoke(a, b, "--task", "nope")
    assert missing.exit_code != 0 and "has no such task" in missing.output and "fake-wino, fake-cls" in missing.output
    # calibrate takes the classification task of such a file
    from winoeval.compare import calibrate_command

    cal = CliRunner().invoke(calibrate_command, [str(a)])
    assert cal.exit_code == 0, cal.output
    assert "| A / fake-cls |" in cal.output
