"""Zero-shot classification tasks (pets, cifar10): one builder, presets, class names, prompt files."""

from __future__ import annotations

import json
import time

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.hub import HubUnavailableError
from winoeval.config import ScorerConfig
from winoeval.errors import BadExampleError
from winoeval.runner import evaluate
from winoeval.tasks import zeroshot
from winoeval.tasks.zeroshot import CIFAR10_CLASSES, PETS_CLASSES, SPECS
from winoeval.testing.data import FORMATS, make_classification_dataset

COLOURS = ["red", "green", "blue", "yellow"]


pytestmark = pytest.mark.usefixtures("isolated_datasets_cache")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """CIFAR-10's schema (img, ClassLabel with its 10 names), 2 images per class, every format."""
    root = tmp_path_factory.mktemp("cifar")
    return {fmt: make_classification_dataset(root / fmt, CIFAR10_CLASSES, 2, fmt=fmt) for fmt in FORMATS}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """Four palette colours (the analytic model knows them), 3 per class; a copy with row 5 corrupt."""
    root = tmp_path_factory.mktemp("colours")
    return {"ok": make_classification_dataset(root / "ok", COLOURS, 3, fmt="parquet"),
            "broken": make_classification_dataset(root / "broken", COLOURS, 3, fmt="parquet", broken_ids=[5])}


def config(task: str, data_dir=None, **kw) -> RunConfig:
    return RunConfig(model="analytic", task=task, data_dir=data_dir, **kw)


def load(task: str, data_dir=None, **kw):
    entry, argument = registry.resolve("task", task)
    return entry.loader(argument, config(task, data_dir, **kw))


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_specs_match_the_hub_datasets_and_the_paper():
    pets, cifar = SPECS["pets"], SPECS["cifar10"]
    assert (pets.repo_id, pets.split, pets.image_field, pets.label_field) == ("timm/oxford-iiit-pet", "test", "image",
                                                                             "label")
    assert (cifar.repo_id, cifar.split, cifar.image_field, cifar.label_field) == ("uoft-cs/cifar10", "test", "img",
                                                                                 "label")
    assert len(pets.class_names) == 37 and len(cifar.class_names) == 10
    assert pets.templates == ("a photo of a {}, a type of pet.",) and cifar.templates == ("a photo of a {}.",)
    assert pets.defaults == {"n_samples": (25, 250), "to_keep": (5, 1), "loss": "l1"}
    assert cifar.defaults == {"n_samples": (50, 500), "to_keep": (5, 1), "loss": "l1"}
    tasks = registry.tasks()
    assert tasks["pets"].plugin == tasks["cifar10"].plugin == "winoeval.tasks.zeroshot"


@pytest.mark.parametrize("fmt", FORMATS)
def test_cifar10_loads_from_every_format(cifar, fmt):
    task = load("cifar10", cifar[fmt])
    assert (task.name, task.metric, task.size) == ("cifar10", "classification", 20)
    assert task.class_names == list(CIFAR10_CLASSES)
    assert task.texts[0] == "a photo of a airplane." and task.texts[9] == "a photo of a truck."
    examples = list(task.examples())
    assert [e.label for e in examples] == [i % 10 for i in range(20)]
    assert [e.id for e in examples[:3]] == ["0", "1", "2"]
    assert examples[4].texts == task.texts
    (image,) = examples[4].images()
    assert image.mode == "RGB" and image.size == (32, 32)


def test_presets_reach_the_scorer(cifar, tmp_path):
    pets = load("pets", make_classification_dataset(tmp_path / "p", PETS_CLASSES, 1, fmt="dataset"))
    def resolve(cfg, task):
        return ScorerConfig.resolve(cfg.scorer_args, task.metric, task.defaults)

    scorer = resolve(config("pets"), pets)
    assert (scorer.n_samples, scorer.to_keep, scorer.loss, scorer.normalize) == ((25, 250), (5, 1), "l1", False)
    task = load("cifar10", cifar["parquet"])
    scorer = resolve(config("cifar10"), task)
    assert (scorer.n_samples, scorer.to_keep, scorer.loss) == ((50, 500), (5, 1), "l1")
    scorer = resolve(config("cifar10", scorer_args={"n_samples": (8,), "loss": "l2"}), task)
    assert (scorer.n_samples, scorer.to_keep, scorer.loss) == ((8,), (), "l2")


def test_pets_dataset_spelling_maps_to_readable_names(tmp_path):
    timm_names = [n.lower().replace(" ", "_") for n in PETS_CLASSES]  # as in timm/oxford-iiit-pet
    task = load("pets", make_classification_dataset(tmp_path / "p", timm_names, 1, image_field="image"))
    assert task.class_names == list(PETS_CLASSES)
    assert task.texts[2] == "a photo of a American Pit Bull Terrier, a type of pet."


def test_dataset_class_order_wins_over_the_shipped_list(tmp_path):
    names = list(reversed(CIFAR10_CLASSES))
    names[0] = "pickup_truck"
    task = load("cifar10", make_classification_dataset(tmp_path / "c", names, 1))
    assert task.class_names[0] == "pickup truck" and task.class_names[9] == "airplane"


def test_without_classlabel_the_shipped_names_are_used_and_labels_checked(tmp_path):
    task = load("cifar10", make_classification_dataset(tmp_path / "c", CIFAR10_CLASSES, 1, class_label=False))
    assert task.class_names == list(CIFAR10_CLASSES) and [e.label for e in task.examples()] == list(range(10))
    path = make_classification_dataset(tmp_path / "c12", [f"c{i}" for i in range(12)], 1, class_label=False)
    with pytest.raises(ConfigError, match=r"label\(s\) 10, 11 outside 0 … 9"):
        load("cifar10", path)


def test_image_column_found_when_named_differently(tmp_path):
    path = make_classification_dataset(tmp_path / "c", CIFAR10_CLASSES, 1, image_field="image")
    assert len(list(load("cifar10", path).examples())[0].images()) == 1


@pytest.mark.parametrize("name, text, expected", [
    ("t.txt", "# comment\n\na blurry photo of a {}.\n", "a blurry photo of a airplane."),
    ("t.json", json.dumps(["art of a {}"]), "art of a airplane"),
    ("t.json", json.dumps({"templates": "{}"}), "airplane"),
    ("t.txt", "{} in the wild\n", "airplane in the wild"),
])
def test_template_files(cifar, tmp_path, name, text, expected):
    task = load("cifar10", cifar["parquet"], task_args={"templates": write(tmp_path / name, text)})
    assert task.texts[0] == expected and len(task.texts) == 10


def test_per_class_templates_and_inline_template(cifar, tmp_path):
    lines = [f"photo number {i} of a {{}}" for i in range(10)]
    task = load("cifar10", cifar["parquet"], task_args={"templates": write(tmp_path / "t.txt", "\n".join(lines))})
    assert task.texts[3] == "photo number 3 of a cat"
    task = load("cifar10", cifar["parquet"], task_args={"templates": "a sketch of a {}."})
    assert task.texts[1] == "a sketch of a automobile."


@pytest.mark.parametrize("text, match", [
    ("one {}\ntwo {}\n", "2 templates given; cifar10 needs one template for all classes or exactly one per class"),
    ("no placeholder\n", "has no '{}'"),
    ("\n# only a comment\n", "empty"),
])
def test_bad_template_files(cifar, tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load("cifar10", cifar["parquet"], task_args={"templates": write(tmp_path / "t.txt", text)})


def test_missing_option_files_and_unknown_options(cifar, tmp_path):
    with pytest.raises(ConfigError, match="templates=.*nope.txt: no such file"):
        load("cifar10", cifar["parquet"], task_args={"templates": str(tmp_path / "nope.txt")})
    with pytest.raises(ConfigError, match="classes=.*nope.txt: no such file"):
        load("cifar10", cifar["parquet"], task_args={"classes": str(tmp_path / "nope.txt")})
    with pytest.raises(ConfigError, match="unknown --task-arg template "):
        load("cifar10", cifar["parquet"], task_args={"template": "x"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        load("cifar10", cifar["parquet"], task_args={"classes": write(tmp_path / "c.json", "[oops")})


@pytest.mark.parametrize("name, text", [
    ("c.txt", "\n".join(f"thing {i}" for i in range(10))),
    ("c.json", json.dumps([f"thing {i}" for i in range(10)])),
    ("c.json", json.dumps({str(i): f"thing {i}" for i in reversed(range(10))})),
])
def test_class_name_files(cifar, tmp_path, name, text):
    task = load("cifar10", cifar["parquet"], task_args={"classes": write(tmp_path / name, text)})
    assert task.class_names == [f"thing {i}" for i in range(10)] and task.texts[7] == "a photo of a thing 7."


def test_class_name_file_with_the_wrong_count(cifar, tmp_path):
    with pytest.raises(ConfigError, match=r"9 class name\(s\) given, cifar10 has 10 classes"):
        load("cifar10", cifar["parquet"], task_args={"classes": write(tmp_path / "c.txt", "a\n" * 8 + "b\n")})
    with pytest.raises(ConfigError, match="same prompt"):
        load("cifar10", cifar["parquet"], task_args={"classes": write(tmp_path / "d.txt", "a\n" * 10)})


def test_end_to_end_accuracy_and_a_wrong_class_order(colours, tmp_path):
    base = dict(model="analytic", data_dir=colours["ok"], output_path=str(tmp_path / "out"),
                scorer_args={"n_samples": (4,)})
    with pytest.warns(UserWarning, match="4 classes, not the expected 10"):
        out = evaluate(RunConfig(task="cifar10", task_args={"templates": "{}"}, **base), progress=False)
    m = out.results["results"]["cifar10"]
    assert (m["n"], m["accuracy"], m["skipped"]) == (12, 1.0, 0)
    assert m["per_class_accuracy"] == {c: 1.0 for c in COLOURS}
    assert out.results["config"]["scorer"]["loss"] == "l1"  # the preset, not the default l2
    wrong = write(tmp_path / "classes.txt", "\n".join(reversed(COLOURS)))
    out = evaluate(RunConfig(task="cifar10", task_args={"templates": "{}", "classes": wrong}, **base),
                   progress=False)  # an explicit class list of the right count: no warning
    assert out.results["results"]["cifar10"]["accuracy"] == 0.0


def test_bad_record_names_the_id_and_skip_counts_it(colours, tmp_path):
    base = dict(model="analytic", task="pets", data_dir=colours["broken"], output_path=str(tmp_path / "out"),
                scorer_args={"n_samples": (4,)}, task_args={"templates": "{}"})
    with pytest.warns(UserWarning), pytest.raises(BadExampleError) as info:
        evaluate(RunConfig(**base), progress=False)
    assert info.value.example_id == "5" and "img is unreadable" in str(info.value)
    with pytest.warns(UserWarning):
        out = evaluate(RunConfig(**base, skip_bad=True), progress=False)
    m = out.results["results"]["pets"]
    assert (m["skipped"], m["n"], m["accuracy"]) == (1, 11, 1.0)
    assert [s["id"] for s in out.results["skipped"]] == ["5"]


def test_offline_without_data_dir_fails_fast(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    import winoeval.hub as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    for module, attr in ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
                         (huggingface_hub.constants, "HF_HUB_OFFLINE")):
        monkeypatch.setattr(module, attr, getattr(module, attr))
    empty = str(tmp_path / "empty-hub-cache")  # a copy cached on this machine must not satisfy the load
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", empty)
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_HUB_CACHE", empty)
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match=r"uoft-cs/cifar10.*--data-dir"):
        load("cifar10")
    assert time.monotonic() - start < 5


def test_builder_serves_new_specs(tmp_path):
    spec = zeroshot.ZeroShotSpec(name="colours", repo_id="nobody/colours", split="test", image_field="img",
                                 label_field="label", class_names=tuple(COLOURS), templates=("{}",),
                                 defaults={"n_samples": (4,)})
    task = spec.loader(None, config("colours", make_classification_dataset(tmp_path / "c", COLOURS, 1)))
    assert task.texts == COLOURS and task.defaults == {"n_samples": (4,)} and task.size == 4
