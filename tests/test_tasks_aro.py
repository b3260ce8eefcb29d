"""ARO from its published files: VG-Relation / VG-Attribution (crop, caption order, macro accuracy) and
the Order sets (BLIP's pre_caption, four seeded re-orderings), offline."""

from __future__ import annotations

import pytest

from winoeval import metrics, registry
from winoeval.config import ConfigError, RunConfig
from winoeval.errors import HubUnavailableError
from winoeval.tasks import aro
from winoeval.testing import check_task
from winoeval.testing.published import _colour, make_aro_order, make_aro_vg


def load(spec, data_dir):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="-", task=spec, data_dir=str(data_dir)))


@pytest.fixture(scope="module")
def vg(tmp_path_factory):
    root = tmp_path_factory.mktemp("aro")
    return root, make_aro_vg(root, "relation"), make_aro_vg(root, "attribution")


def test_vg_relation_crops_to_the_box_and_keeps_the_original_caption_order(vg):
    root, relation, _ = vg
    task = load("aro:vg-relation", root)
    assert (task.metric, task.size, task.breakdowns) == ("choice", 6, ["relation"])
    first = next(iter(task.examples()))
    assert first.texts == [relation[0]["false_caption"], relation[0]["true_caption"]] and first.label == 1
    assert first.meta["relation"] == "on"
    (image,) = first.images()
    assert image.size == (20, 10)  # the (5, 6, 20, 10) box of a 40×30 image
    assert image.getpixel((0, 0)) == pytest.approx(_colour(0), abs=8)  # JPEG


def test_vg_relation_macro_accuracy_leaves_out_the_symmetric_relations(vg):
    root, _, _ = vg
    task = load("aro:vg-relation", root)
    assert "next to" in aro.SYMMETRIC_RELATIONS and "on" not in aro.SYMMETRIC_RELATIONS
    correct = [True, True, False, True, True, False]  # on ✓✓✗, next to ✓✓ (symmetric), eating ✗
    records = [{"id": e.id, "verdicts": {"correct": c}, "meta": e.meta} for e, c in zip(task.examples(), correct)]
    out = metrics.compute("choice", records, breakdowns=task.breakdowns, macro=task.macro)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_accuracy"]["relation"]["value"] == pytest.approx((2 / 3 + 0) / 2)  # on, eating
    assert out["macro_accuracy"]["relation"]["groups"] == 2


def test_vg_attribution_macro_accuracy_needs_25_examples_per_pair(vg):
    root, _, attribution = vg
    task = load("aro:vg-attribution", root)
    examples = list(task.examples())
    assert task.size == 28 and examples[0].meta["attributes"] == "white_black" and examples[-1].meta["attributes"] == "red_blue"
    correct = [i < 13 for i in range(26)] + [True, True]  # white_black 13/26, red_blue 2/2 (too few: dropped)
    records = [{"id": e.id, "verdicts": {"correct": c}, "meta": e.meta} for e, c in zip(examples, correct)]
    out = metrics.compute("choice", records, breakdowns=task.breakdowns, macro=task.macro)
    assert out["macro_accuracy"]["attributes"]["value"] == 0.5 and out["macro_accuracy"]["attributes"]["groups"] == 1
    assert out["accuracy"] == pytest.approx(15 / 28)


def test_pre_caption_as_blip():
    assert aro.pre_caption('A man, riding a "horse"!  Fast.') == "a man, riding a horse fast"
    assert aro.pre_caption(" ".join(["w"] * 40)) == " ".join(["w"] * 30)


def _fake_tagger(text):  # nouns: bus, station, number; adjectives: red, old
    tags = {"bus": "NN", "station": "NN", "number": "NN", "red": "JJ", "old": "JJ"}
    return [(t, tags.get(t.lower(), "DT")) for t in aro._tokens(text)]


@pytest.mark.parametrize("coco", [True, False])
def test_order_sets_give_the_caption_and_four_reorderings(tmp_path, monkeypatch, coco):
    rows = make_aro_order(tmp_path, coco=coco, n_images=2)
    monkeypatch.setattr(aro, "spacy_tagger", lambda: _fake_tagger)
    spec = "aro:coco-order" if coco else "aro:flickr-order"
    task = load(spec, tmp_path)
    examples = list(task.examples())
    assert task.size == 10 and [e.id for e in examples[:6]] == ["0/0", "0/1", "0/2", "0/3", "0/4", "1/0"]
    first = examples[0]
    assert first.label == 0 and len(first.texts) == 5
    assert first.texts[0] == "a red bus parked near the old station number 00"
    words = sorted(aro.pre_caption(rows[0]["caption"][0]).replace(",", " ").split())
    for option in first.texts[1:]:  # each a re-ordering of the same words
        assert sorted(option.replace(",", " ").split()) == words
    assert len(set(first.texts)) > 1
    nouns_adjs_moved = first.texts[1].split()
    assert [w for w in nouns_adjs_moved if w not in ("red", "old", "bus", "station", "number")] == \
        [w for w in first.texts[0].split() if w not in ("red", "old", "bus", "station", "number")]
    again = list(load(spec, tmp_path).examples())
    assert [e.texts for e in again] == [e.texts for e in examples]  # seeded by the example id
    assert first.images()[0].size == (16, 12)


def test_order_sets_without_spacy_say_how_to_install_it(tmp_path):
    try:
        import spacy  # noqa: F401
        pytest.skip("spaCy is installed here")
    except ImportError:
        pass
    make_aro_order(tmp_path, coco=True, n_images=1)
    with pytest.raises(HubUnavailableError, match="spacy download en_core_web_sm"):
        load("aro:coco-order", tmp_path)


def test_aro_needs_one_subset_and_its_files(tmp_path):
    with pytest.raises(ConfigError, match="aro needs a subset: aro:vg-relation"):
        load("aro", tmp_path)
    with pytest.raises(ConfigError, match="one subset per task"):
        load("aro:vg-relation,vg-attribution", tmp_path)
    with pytest.raises(HubUnavailableError, match="visual_genome_relation.json is missing; download"):
        load("aro:vg-relation", tmp_path)
    make_aro_vg(tmp_path, "relation")
    import shutil

    shutil.rmtree(tmp_path / "images")
    with pytest.raises(HubUnavailableError, match="vgr_vga_images.zip"):
        load("aro:vg-relation", tmp_path)
    with pytest.raises(HubUnavailableError, match="coco_karpathy_test.json is missing"):
        load("aro:coco-order", tmp_path)


def test_check_plugin_passes(vg):
    root, _, _ = vg
    for spec in ("aro:vg-relation", "aro:vg-attribution"):
        assert check_task(spec, config=RunConfig(model="-", task=spec, data_dir=str(root))) == []
