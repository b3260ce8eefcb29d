"""The winoground task: local formats, subsets, meta and breakdowns, bad records, fail-fast offline."""

from __future__ import annotations

import time

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.hub import HubUnavailableError
from winoeval.config import ScorerConfig
from winoeval.errors import BadExampleError
from winoeval.runner import evaluate
from winoeval.testing.data import FORMATS, make_winoground_dataset, winoground_rows, write_dataset
from winoeval.tasks import winoground


pytestmark = pytest.mark.usefixtures("isolated_datasets_cache")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """9 examples (3 per collapsed tag) in every format, and a copy with a corrupt image in example 4."""
    root = tmp_path_factory.mktemp("winoground")
    paths = {fmt: make_winoground_dataset(root / fmt, n=9, fmt=fmt) for fmt in FORMATS}
    paths["broken"] = make_winoground_dataset(root / "broken", n=6, fmt="parquet", broken_ids=[4])
    return paths


def load(spec: str, data_dir, **kw):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="analytic", task=spec, data_dir=data_dir, **kw))


def run(tmp_path, data_dir, task="winoground", **kw):
    config = RunConfig(model="analytic", task=task, data_dir=data_dir, output_path=str(tmp_path / "out"),
                       scorer_args=kw.pop("scorer_args", {"n_samples": (4,)}), **kw)
    return evaluate(config, progress=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_local_format_gives_the_same_examples(data, fmt):
    task = load("winoground", data[fmt])
    assert (task.name, task.metric, task.size) == ("winoground", "winoground", 9)
    assert task.defaults == {"normalize": True}
    assert task.breakdowns == ["collapsed_tag", "num_main_preds", "secondary_tag"]
    examples = list(task.examples())
    rows = winoground_rows(9)
    assert [e.id for e in examples] == [str(i) for i in range(9)]
    assert [e.texts for e in examples] == [[r["caption_0"], r["caption_1"]] for r in rows]
    assert examples[3].meta == {"collapsed_tag": "Object", "num_main_preds": 2, "secondary_tag": ["Pragmatics"],
                                "tag": "Noun"}
    assert examples[2].meta["secondary_tag"] == [] and examples[5].meta["secondary_tag"] == ["Series"]
    assert callable(examples[0].images)
    images = examples[0].images()
    a, b = rows[0]["caption_0"].split(" left of ")
    from winoeval.plugins.analytic import PALETTE

    assert [im.mode for im in images] == ["RGB", "RGB"] and images[0].size == (32, 32)
    assert images[0].getpixel((0, 0)) == PALETTE[a] and images[0].getpixel((31, 0)) == PALETTE[b]
    assert images[1].getpixel((0, 0)) == PALETTE[b] and images[1].getpixel((31, 0)) == PALETTE[a]


@pytest.mark.parametrize("spec, ids", [("winoground:object", ["0", "3", "6"]),
                                       ("winoground:Relation", ["1", "4", "7"]),
                                       ("winoground:BOTH", ["2", "5", "8"])])
def test_subsets_filter_by_collapsed_tag(data, spec, ids):
    task = load(spec, data["save_to_disk"])
    examples = list(task.examples())
    assert task.size == 3 and [e.id for e in examples] == ids
    assert {e.meta["collapsed_tag"] for e in examples} == {spec.split(":")[1].capitalize()}


def test_unknown_subset_names_the_valid_ones(data):
    with pytest.raises(ValueError, match="object, relation, both"):
        load("winoground:objects", data["parquet"])
    assert winoground.parse_subset("all") is None and winoground.parse_subset(" Relation ") == "Relation"


def test_secondary_tags():
    assert winoground.secondary_tags("") == [] and winoground.secondary_tags(None) == []
    assert winoground.secondary_tags("Symbolic") == ["Symbolic"]
    assert winoground.secondary_tags("Pragmatics, Symbolic") == ["Pragmatics", "Symbolic"]


def test_images_are_decoded_lazily(tmp_path):
    path = make_winoground_dataset(tmp_path / "w", n=3, fmt="parquet", broken_ids=[0, 1, 2])
    examples = list(load("winoground", path).examples())  # nothing decoded yet: no error
    assert len(examples) == 3
    with pytest.raises(OSError, match="image_1 is unreadable"):
        examples[1].images()


def test_not_winoground_data_is_rejected(tmp_path):
    from winoeval.testing.data import make_classification_dataset

    path = make_classification_dataset(tmp_path / "c", ["red", "blue"], 1, fmt="parquet")
    with pytest.raises(ConfigError, match="does not look like Winoground: no column"):
        load("winoground", path)
    with pytest.raises(ConfigError, match="no --task-arg"):
        load("winoground", make_winoground_dataset(tmp_path / "w", n=1), task_args={"templates": "x"})


def test_end_to_end_scores_meta_and_breakdowns(tmp_path, data):
    out = run(tmp_path, data["snapshot"])
    m = out.results["results"]["winoground"]
    assert (m["n"], m["text"], m["image"], m["group"], m["skipped"]) == (9, 1.0, 1.0, 1.0, 0)
    by = m["by"]
    assert {k: v["n"] for k, v in by["collapsed_tag"].items()} == {"Object": 3, "Relation": 3, "Both": 3}
    assert {k: v["n"] for k, v in by["num_main_preds"].items()} == {"1": 5, "2": 4}
    assert {k: v["n"] for k, v in by["secondary_tag"].items()} == {"Pragmatics": 1, "Series": 1, "Symbolic": 2}
    assert out.results["config"]["scorer"]["normalize"] is True
    assert out.records[3]["meta"]["secondary_tag"] == ["Pragmatics"]


def test_swapped_captions_score_zero(tmp_path):
    """The same images with each pair's captions swapped: every verdict must flip to a failure."""
    from datasets import Dataset

    from winoeval.testing.data import winoground_features

    rows = winoground_rows(6)
    for r in rows:
        r["caption_0"], r["caption_1"] = r["caption_1"], r["caption_0"]
    path = write_dataset(Dataset.from_list(rows, features=winoground_features()), tmp_path / "swapped", "parquet")
    m = run(tmp_path, path, scorer_args={"n_samples": (4,), "normalize": False}).results["results"]["winoground"]
    assert (m["n"], m["text"], m["image"], m["group"]) == (6, 0.0, 0.0, 0.0)


def test_normalisation_default_and_switch(data):
    task = load("winoground", data["parquet"])
    base = dict(model="analytic", task="winoground")
    assert ScorerConfig.resolve(RunConfig(**base).scorer_args, task.metric, task.defaults).normalize is True
    assert ScorerConfig.resolve({"normalize": False}, task.metric, task.defaults).normalize is False


def test_bad_record_names_the_id_and_skip_counts_it(tmp_path, data):
    with pytest.raises(BadExampleError) as info:
        run(tmp_path, data["broken"])
    assert info.value.example_id == "4" and "'4'" in str(info.value) and "image_1" in str(info.value)
    out = run(tmp_path, data["broken"], skip_bad=True)
    m = out.results["results"]["winoground"]
    assert m["skipped"] == 1 and m["n"] == 5 and m["text"] == 1.0
    assert [s["id"] for s in out.results["skipped"]] == ["4"]


def test_offline_without_data_dir_fails_fast(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    import winoeval.hub as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # hub sets it too; monkeypatch restores it afterwards
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    for module, attr in ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
                         (huggingface_hub.constants, "HF_HUB_OFFLINE")):
        monkeypatch.setattr(module, attr, getattr(module, attr))  # restored after the test
    empty = str(tmp_path / "empty-hub-cache")  # a copy cached on this machine must not satisfy the load
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", empty)
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_HUB_CACHE", empty)
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as info:
        load("winoground", None)
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert "huggingface-cli login" in msg and "--data-dir" in msg and "facebook/winoground" in msg
