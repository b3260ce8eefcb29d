"""SugarCrepe from its published files: 7 JSON files + COCO val2017 images, offline."""

from __future__ import annotations

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.errors import HubUnavailableError
from winoeval.testing import check_task
from winoeval.testing.published import SUGARCREPE_FILES, make_sugarcrepe


def load(spec, data_dir, **kw):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="-", task=spec, data_dir=str(data_dir) if data_dir else None, **kw))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sugarcrepe")
    return root, make_sugarcrepe(root, per_subset=2)


def test_every_subset_file_is_read_in_order(data):
    root, entries = data
    task = load("sugarcrepe", root)
    assert (task.name, task.metric, task.size, task.breakdowns) == ("sugarcrepe", "choice", 14, ["subset", "kind"])
    examples = list(task.examples())
    assert [e.id for e in examples[:3]] == ["replace-obj/0", "replace-obj/1", "replace-att/0"]
    first = examples[0]
    item = entries["replace_obj"]["0"]
    assert first.texts == [item["caption"], item["negative_caption"]] and first.label == 0
    assert first.meta == {"subset": "replace-obj", "kind": "replace", "filename": item["filename"]}
    (image,) = first.images()
    assert image.size == (16, 12)
    assert {e.meta["subset"] for e in examples} == {s.replace("_", "-") for s in SUGARCREPE_FILES}


def test_one_or_several_subsets(data):
    root, entries = data
    task = load("sugarcrepe:swap_att", root)
    assert task.size == 2 and [e.texts[1] for e in task.examples()] == ["swap_att negative 0", "swap_att negative 1"]
    assert load("sugarcrepe:Swap-Att,add-obj", root).size == 4
    with pytest.raises(ConfigError, match="unknown sugarcrepe subset 'swap-rel'.*replace-obj"):
        load("sugarcrepe:swap-rel", root)


def test_older_ent_file_names_and_files_at_the_top_level(tmp_path):
    make_sugarcrepe(tmp_path, per_subset=1, old_names=True, in_data=False)
    assert (tmp_path / "swap_ent.json").is_file()
    assert load("sugarcrepe:swap-obj", tmp_path).size == 1 and load("sugarcrepe", tmp_path).size == 7


def test_missing_pieces_name_the_file_and_where_it_goes(tmp_path, data):
    with pytest.raises(HubUnavailableError, match="local copy of its published files.*--data-dir"):
        load("sugarcrepe", None)
    with pytest.raises(HubUnavailableError) as info:
        load("sugarcrepe:add-att", tmp_path)
    assert f"{tmp_path}/add_att.json is missing" in str(info.value)
    assert "raw.githubusercontent" in str(info.value) or "RAIVNLab/sugar-crepe" in str(info.value)
    make_sugarcrepe(tmp_path, per_subset=1)
    import shutil

    shutil.rmtree(tmp_path / "val2017")
    with pytest.raises(HubUnavailableError, match="val2017.*val2017.zip"):
        load("sugarcrepe", tmp_path)


def test_a_missing_image_is_the_examples_error(tmp_path):
    make_sugarcrepe(tmp_path, per_subset=1)
    first = next(iter(load("sugarcrepe", tmp_path).examples()))
    (tmp_path / "val2017" / first.meta["filename"]).unlink()
    with pytest.raises((OSError, ValueError), match="image"):
        first.images()


def test_check_plugin_passes(data):
    root, _ = data
    assert check_task("sugarcrepe", config=RunConfig(model="-", task="sugarcrepe", data_dir=str(root))) == []
