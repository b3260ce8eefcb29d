"""winoeval.localdata: every local layout loads offline; bad paths fail with one clear error."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from winoeval.hub import HubUnavailableError, load_hf_dataset
from winoeval.localdata import load_local_dataset, offline, open_image, split_files
from winoeval.testing.data import (
    CORRUPT_BYTES,
    FORMATS,
    make_classification_dataset,
    make_winoground_dataset,
    winoground_rows,
    write_dataset,
)


@pytest.fixture(autouse=True)
def _hermetic(tmp_path_factory, monkeypatch):
    """Datasets' Arrow cache in a temporary folder, and any network connection attempt recorded."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
    attempts: list = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network disabled in tests")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_winoground_formats_load_offline(tmp_path, fmt):
    path = make_winoground_dataset(tmp_path / fmt, n=5, fmt=fmt)
    ds = load_local_dataset(path, "test", "Winoground")
    assert len(ds) == 5
    assert set(ds.column_names) == {"id", "image_0", "image_1", "caption_0", "caption_1", "tag", "secondary_tag",
                                    "num_main_preds", "collapsed_tag"}
    expected = winoground_rows(5)
    assert list(ds["id"]) == [0, 1, 2, 3, 4]
    assert list(ds["caption_0"]) == [r["caption_0"] for r in expected]
    assert list(ds["collapsed_tag"]) == ["Object", "Relation", "Both", "Object", "Relation"]
    image = ds[0]["image_0"]  # the Image feature survives every format
    assert image.size == (32, 32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_classification_formats_keep_class_names(tmp_path, fmt):
    path = make_classification_dataset(tmp_path / fmt, ["red", "green", "blue"], per_class=2, fmt=fmt)
    ds = load_local_dataset(path, "test", "colours")
    assert len(ds) == 6
    assert ds.features["label"].names == ["red", "green", "blue"]
    assert list(ds["label"]) == [0, 1, 2, 0, 1, 2]
    assert ds[1]["img"].convert("RGB").getpixel((0, 0)) == (0, 255, 0)


def test_offline_mode_is_restored(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    import datasets

    before = datasets.config.HF_HUB_OFFLINE
    with offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and datasets.config.HF_DATASETS_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["HF_DATASETS_OFFLINE"] == "0"
    assert datasets.config.HF_HUB_OFFLINE == before
    load_local_dataset(make_winoground_dataset(tmp_path / "w", n=2, fmt="snapshot"), "test")
    assert "HF_HUB_OFFLINE" not in os.environ


def _two_split_parquet(root: Path, layout: str) -> Path:
    from datasets import Dataset

    from winoeval.testing.data import winoground_features

    for split, n in (("train", 3), ("test", 2)):
        ds = Dataset.from_list(winoground_rows(n), features=winoground_features())
        target = root / layout.format(split=split)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(target))
    return root


@pytest.mark.parametrize("layout", ["{split}-00000-of-00001.parquet", "data/{split}-00000-of-00002.parquet",
                                    "plain_text/{split}-00000-of-00001.parquet", "default/{split}/0000.parquet"])
def test_parquet_split_chosen_by_name(tmp_path, layout):
    root = _two_split_parquet(tmp_path, layout)
    assert len(load_local_dataset(root, "test")) == 2
    assert len(load_local_dataset(root, "train")) == 3
    with pytest.raises(HubUnavailableError) as info:
        load_local_dataset(root, "validation", "Winoground")
    msg = str(info.value)
    assert str(root) in msg and "'validation'" in msg and "test, train" in msg


def test_unnamed_parquet_files_are_one_split(tmp_path):
    path = make_winoground_dataset(tmp_path / "w", n=3, fmt="parquet")
    (Path(path) / "test-00000-of-00001.parquet").rename(Path(path) / "winoground.parquet")
    assert len(load_local_dataset(path, "test")) == 3
    assert len(load_local_dataset(Path(path) / "winoground.parquet", "test")) == 3  # a file given directly


def test_split_files_tokens():
    root = Path("/d")
    files = [root / "data/test-0.parquet", root / "data/contest-0.parquet", root / "train/0.parquet"]
    chosen, seen = split_files(root, files, "test")
    assert chosen == [root / "data/test-0.parquet"] and seen == {"test", "train"}


def test_dataset_dict_split_selection(tmp_path):
    from datasets import Dataset, DatasetDict

    from winoeval.testing.data import winoground_features

    rows = winoground_rows(4)
    dd = DatasetDict({"test": Dataset.from_list(rows[:3], features=winoground_features()),
                      "train": Dataset.from_list(rows[3:], features=winoground_features())})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(load_local_dataset(tmp_path / "dd", "test")) == 3
    assert len(load_local_dataset(tmp_path / "dd", "train")) == 1
    with pytest.raises(HubUnavailableError, match=r"no split 'validation' \(it has test, train\)"):
        load_local_dataset(tmp_path / "dd", "validation")
    only = make_winoground_dataset(tmp_path / "only", n=2, fmt="save_to_disk")  # one split: used with a warning
    with pytest.warns(UserWarning, match="only split 'test'"):
        assert len(load_local_dataset(only, "train")) == 2


@pytest.mark.parametrize("case", ["missing", "empty", "unrecognised", "file"])
def test_bad_paths_fail_with_one_clear_error(tmp_path, case):
    path = tmp_path / "data"
    if case == "empty":
        path.mkdir()
    elif case == "unrecognised":
        path.mkdir()
        (path / "notes.md").write_text("hello")
    elif case == "file":
        path.write_text("hello")
    with pytest.raises(HubUnavailableError) as info:
        load_local_dataset(path, "test", "Winoground")
    msg = str(info.value)
    assert "Winoground" in msg and str(path) in msg and "save_to_disk" in msg and "parquet" in msg
    assert {"missing": "does not exist", "empty": "empty", "unrecognised": "no dataset files",
            "file": "not a folder"}[case] in msg


def test_hub_loader_delegates_to_local_data(tmp_path, monkeypatch):
    import winoeval.hub as hub

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: pytest.fail("data_dir must not probe the hub"))
    path = make_winoground_dataset(tmp_path / "w", n=2, fmt="parquet")
    assert len(load_hf_dataset("facebook/winoground", "test", data_dir=path, gated=True)) == 2


def test_open_image(tmp_path):
    from PIL import Image

    Image.new("L", (4, 4), 200).save(tmp_path / "grey.png")
    image = open_image(str(tmp_path / "grey.png"))
    # decoded in its own mode: each model converts (SD resizes before converting, as the original does)
    assert image.mode == "L" and image.getpixel((0, 0)) == 200
    with pytest.raises(ValueError, match="image_0 is missing"):
        open_image(None, name="image_0")
    with pytest.raises(OSError, match=r"image_1 is unreadable \(UnidentifiedImageError"):
        open_image({"bytes": CORRUPT_BYTES, "path": None}, name="image_1")
    with pytest.raises(OSError, match="image_1 is unreadable"):
        open_image({"bytes": None, "path": str(tmp_path / "gone.png")}, name="image_1")


def test_write_dataset_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown fmt"):
        write_dataset(None, tmp_path, fmt="zip")


def test_image_paths_in_local_data_stay_inside_the_data_dir(tmp_path):
    from winoeval.tasks.synthetic import render

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    render("red", 0, "x").save(data / "img" / "a.png")
    render("red", 0, "y").save(tmp_path / "secret.png")
    assert open_image({"bytes": None, "path": "img/a.png"}, root=data).size[0] > 0
    for outside in ("../secret.png", str(tmp_path / "secret.png")):
        with pytest.raises(ValueError, match="points outside --data-dir"):
            open_image({"bytes": None, "path": outside}, root=data)
