"""VALSE from its published files: valid foils only, per-instrument files and image folders, offline."""

from __future__ import annotations

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.errors import HubUnavailableError
from winoeval.testing import check_task
from winoeval.testing.published import VALSE_LAYOUT, make_valse


def load(spec, data_dir):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="-", task=spec, data_dir=str(data_dir)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("valse")
    return root, make_valse(root)


def test_only_valid_foils_are_scored(data):
    root, _ = data
    task = load("valse", root)
    # 11 instruments with one valid foil each, plus existence's third and counting_hard's second foil;
    # existence's second foil has mturk.caption = 1 (not valid)
    assert (task.metric, task.size, task.breakdowns) == ("choice", 13, ["piece", "instrument"])
    ids = [e.id for e in task.examples()]
    assert ids[:3] == ["existence/existence_0", "existence/existence_2", "plurals/plurals_0"]
    assert "existence/existence_1" not in ids


def test_caption_foil_label_meta_and_a_list_caption(data):
    root, files = data
    examples = {e.id: e for e in load("valse:counting-hard", root).examples()}
    assert list(examples) == ["counting-hard/counting_hard_0", "counting-hard/counting_hard_1"]
    second = examples["counting-hard/counting_hard_1"]
    assert second.texts == ["counting_hard caption 1", "counting_hard foil 1"] and second.label == 0  # list → first
    assert second.meta == {"piece": "counting", "instrument": "counting-hard", "dataset": "source"}
    assert second.images()[0].size == (16, 12)


def test_pieces_and_instruments(data):
    root, _ = data
    assert {e.meta["instrument"] for e in load("valse:counting", root).examples()} == \
        {"counting-hard", "counting-small", "counting-adversarial"}
    assert load("valse:actions", root).size == 2  # action-replacement + actant-swap (in actions/)
    assert load("valse:coreference,existence", root).size == 4
    with pytest.raises(ConfigError, match="unknown VALSE instrument or piece 'colour'.*pieces: existence"):
        load("valse:colour", root)


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(HubUnavailableError, match=r"existence.json is missing; download .*VALSE/blob/main/data"):
        load("valse:existence", tmp_path)
    make_valse(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / VALSE_LAYOUT["relation.json"])
    with pytest.raises(HubUnavailableError, match="relations/test_images is missing"):
        load("valse:relations", tmp_path)


def test_check_plugin_passes(data):
    root, _ = data
    assert check_task("valse", config=RunConfig(model="-", task="valse", data_dir=str(root))) == []
