"""EqBen's published subset and the generic Winoground-format loader (Winoground's examples.jsonl)."""

from __future__ import annotations

import json

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.errors import HubUnavailableError
from winoeval.testing import check_task
from winoeval.testing.published import _colour, make_eqben, make_winoground_jsonl


def load(spec, data_dir, **task_args):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="-", task=spec, data_dir=str(data_dir), task_args=task_args))


def test_eqben_subset_pairs_and_youcook2_npy_frames(tmp_path):
    rows = make_eqben(tmp_path, n=3)
    task = load("eqben", tmp_path)
    assert (task.name, task.metric, task.size, task.breakdowns) == ("eqben", "winoground", 3, [])
    assert task.defaults == {"normalize": True}
    examples = list(task.examples())
    assert [e.id for e in examples] == ["0", "1", "2"]
    assert examples[1].texts == [rows[1]["caption0"], rows[1]["caption1"]] and examples[1].label is None
    png = examples[0].images()
    assert [im.getpixel((0, 0)) for im in png] == [_colour(0), _colour(1)]
    npy = examples[2].images()  # BGR arrays become RGB images
    assert [im.getpixel((0, 0)) for im in npy] == [_colour(4), _colour(5)] and npy[0].size == (16, 12)
    assert check_task("eqben", config=RunConfig(model="-", task="eqben", data_dir=str(tmp_path))) == []


def test_eqben_missing_files(tmp_path):
    with pytest.raises(HubUnavailableError, match="eqben_subset_10percent_final.json is missing; download https://"):
        load("eqben", tmp_path)


def test_generic_loader_reads_winogrounds_own_jsonl(tmp_path):
    rows = make_winoground_jsonl(tmp_path, n=2)
    task = load("winoground-format", tmp_path)
    assert (task.metric, task.size) == ("winoground", 2)
    assert task.breakdowns == ["collapsed_tag", "secondary_tag", "num_main_preds"]
    first, second = task.examples()
    assert first.texts == [rows[0]["caption_0"], rows[0]["caption_1"]]
    assert first.meta == {"collapsed_tag": "Object", "tag": "Noun", "secondary_tag": [], "num_main_preds": 1}
    assert second.meta["secondary_tag"] == ["Symbolic"]
    assert [im.getpixel((0, 0)) for im in second.images()] == [_colour(2), _colour(3)]  # ex_1_img_0 → .png
    assert check_task(task) == []


def test_generic_loader_options_and_errors(tmp_path):
    make_winoground_jsonl(tmp_path, n=1)
    (tmp_path / "other.json").write_text(json.dumps([{"image0": "images/ex_0_img_0.png", "caption0": "a",
                                                      "image1": "images/ex_0_img_1.png", "caption1": "b"}]))
    with pytest.raises(ConfigError, match="exactly one .json/.jsonl annotation file.*examples.jsonl, other.json"):
        load("winoground-format", tmp_path)
    task = load("winoground-format", tmp_path, annotations="other.json", images=".")
    assert task.size == 1 and next(iter(task.examples())).images()[0].size == (16, 12)
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "x", "caption": "y"}]))
    with pytest.raises(HubUnavailableError, match="record 0 of bad.json has neither image_0"):
        load("winoground-format", tmp_path, annotations="bad.json")
    with pytest.raises(HubUnavailableError, match="no such file inside"):
        load("winoground-format", tmp_path, annotations="../outside.json")
    with pytest.raises(ConfigError, match="takes no --task-arg"):
        load("eqben", tmp_path, images="x")
