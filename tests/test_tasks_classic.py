"""The original protocol's zero-shot sets read from their published files: labels, order, prompts, presets."""

from __future__ import annotations

import pytest

from winoeval import registry
from winoeval.config import RunConfig
from winoeval.errors import HubUnavailableError
from winoeval.tasks import zeroshot as Z
from winoeval.testing import check_task
from winoeval.testing import published as P


def load(spec, data_dir):
    entry, argument = registry.resolve("task", spec)
    return entry.loader(argument, RunConfig(model="-", task=spec, data_dir=str(data_dir) if data_dir else None))


def test_food101_sorted_classes_and_the_originals_prompt(tmp_path):
    rows = P.make_food101(tmp_path, Z.FOOD101_CLASSES, per_class=2)
    task = load("food101", tmp_path)
    examples = list(task.examples())
    assert task.size == 202 and [(e.id, e.label) for e in examples] == rows
    assert examples[0].id == "apple_pie/1000" and examples[-1].label == 100
    assert task.texts[0] == "a photo of apple pie, a type of food."  # the original's prompts/food_prompts.csv
    assert task.texts[38] == "a photo of fish and chips, a type of food."
    assert task.defaults == {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1)}  # commands.md, l2
    assert load("food101", tmp_path / "food-101").size == 202  # the dataset's own folder works too


def test_cifar100_pickles_and_the_blurry_prompt(tmp_path):
    rows = P.make_cifar100(tmp_path, Z.CIFAR100_CLASSES, [3, 99, 1])
    task = load("cifar100", tmp_path)
    examples = list(task.examples())
    assert [(e.id, e.label) for e in examples] == rows
    assert task.texts[1] == "a blurry photo of a aquarium fish." and task.texts[99] == "a blurry photo of a worm."
    assert examples[0].images()[0].getpixel((5, 7)) == P._colour(3)  # channel-major rows decoded right
    assert task.defaults == {}  # the original gives no CIFAR-100 command


def test_aircraft_variants_with_slashes(tmp_path):
    rows = P.make_aircraft(tmp_path, Z.AIRCRAFT_CLASSES, [72, 73, 0])
    task = load("aircraft", tmp_path)
    assert [(e.id, e.label) for e in task.examples()] == rows
    assert task.texts[72] == "a photo of a F-16A/B, a type of aircraft."
    assert task.texts[73] == "a photo of a F/A-18, a type of aircraft."
    assert task.defaults["to_keep"] == (20, 10, 5, 1) and "loss" not in task.defaults


def test_aircraft_in_another_class_order_is_refused(tmp_path):
    names = list(Z.AIRCRAFT_CLASSES)
    names[0], names[1] = names[1], names[0]
    P.make_aircraft(tmp_path, tuple(names), [0])
    with pytest.raises(HubUnavailableError, match="not the 100 expected ones in order"):
        load("aircraft", tmp_path)


def test_flowers102_mat_files_one_based_labels_in_tstid_order(tmp_path):
    rows = P.make_flowers102(tmp_path, labels_1based=[5, 1, 102, 7], test_ids=[3, 1])
    task = load("flowers102", tmp_path)
    assert [(e.id, e.label) for e in task.examples()] == rows == [("image_00003", 101), ("image_00001", 4)]
    assert task.texts[0] == "a photo of a pink primrose, a type of flower."
    assert task.defaults == {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1), "loss": "l1"}


def test_stl10_column_major_images(tmp_path):
    rows = P.make_stl10(tmp_path, Z.STL10_CLASSES, [7, 0])
    task = load("stl10", tmp_path)
    examples = list(task.examples())
    assert [(e.id, e.label) for e in examples] == rows and task.texts[7] == "a photo of a monkey."
    image = examples[0].images()[0]
    assert image.size == (96, 96)
    assert image.getpixel((1, 0)) == (255, 255, 255) and image.getpixel((0, 1)) == P._colour(7)  # x=1, y=0
    assert task.defaults == {"n_samples": (100, 500), "to_keep": (5, 1), "loss": "l1"}


@pytest.mark.parametrize("name,file", [("food101", "food-101/meta/test.json"), ("cifar100", "cifar-100-python/test"),
                                       ("aircraft", "fgvc-aircraft-2013b/data/variants.txt"),
                                       ("flowers102", "flowers-102/setid.mat"), ("stl10", "stl10_binary/test_X.bin")])
def test_missing_copy_names_the_file_and_the_download(tmp_path, name, file):
    with pytest.raises(HubUnavailableError, match=f"{name} is read from a local copy"):
        load(name, None)
    with pytest.raises(HubUnavailableError) as info:
        load(name, tmp_path)
    assert f"{tmp_path / file} is missing; download http" in str(info.value)


def test_check_plugin_passes(tmp_path):
    P.make_stl10(tmp_path / "stl", Z.STL10_CLASSES, [1, 2])
    P.make_cifar100(tmp_path / "c", Z.CIFAR100_CLASSES, [5, 6])
    for name, folder in (("stl10", "stl"), ("cifar100", "c")):
        assert check_task(name, config=RunConfig(model="-", task=name, data_dir=str(tmp_path / folder))) == []
