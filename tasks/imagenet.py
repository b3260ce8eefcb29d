"""ImageNet-family classification from local ImageNet-style folders: ``imagenet``, ``imagenet-v2``,
``imagenet-a`` and ``objectnet`` (``--data-dir DIR``; these datasets cannot be downloaded by winoeval).

Folder layout: ``DIR/<class>/<image files>`` (or the same under ``DIR/val/``), where ``<class>`` is an
ImageNet WordNet id (``n01440764``; ImageNet val, ImageNet-A) or a class index ``0`` … ``999``
(ImageNet-V2's folders). ObjectNet has its own folder names: arrange (or link) its images by the ImageNet
wnid of each class first; only classes with an ImageNet counterpart can be scored by an ImageNet model.
The 1000 wnids and their order are timm's ``imagenet_synsets.txt`` (the standard class index); a class's
text is the CLIP-style ImageNet class name (open_clip's list; the two duplicated names take their
WordNet lemma: 657 missile / 744 projectile, 836 sunglass / 837 sunglasses).

The candidates are the classes that have a folder: 1000 for ImageNet and ImageNet-V2, 200 for ImageNet-A
(scoring only among a subset's classes, as its papers do). Examples are the images in sorted order of
(class folder, file name); ids are ``<class>/<file>``; ``meta`` = {"wnid": ...}.
``--task-arg per_class=N`` keeps the first N images of each class (a balanced subset);
``--task-arg classes=FILE`` restricts the candidates to the wnids listed in FILE (one per line).

Presets (the original DiT classifier, ``eval_prob_dit.py`` of the original repository with
``--t_interval 4``): 250 evenly spaced timesteps t = 2, 6, …, 998 (winoeval's ``even`` grid equals
t_interval/2 + k·t_interval), l2 loss, one noise plan shared by every image (``--noise shared``, as the
saved noise tensor), a new noise per timestep (its ``--randomize_noise``), no normalisation. Not
reproduced: its one-class-per-run loop and its ``--save_vb`` ELBO terms.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from winoeval.api import Example, TaskData
from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
PRESET = {"n_samples": (250,), "timesteps": "even", "loss": "l2", "noise": "shared", "normalize": False}
TASK_OPTIONS = {"per_class": "keep the first N images of each class", "classes": "FILE of wnids to use as candidates"}
SPECS = {
    "imagenet": "ImageNet (val) from an ImageNet-style folder: --data-dir DIR (DIR/<wnid>/*.JPEG)",
    "imagenet-v2": "ImageNet-V2 from its folder layout: --data-dir DIR (DIR/0 … DIR/999)",
    "imagenet-a": "ImageNet-A (200 classes): --data-dir DIR (DIR/<wnid>/*.jpg)",
    "objectnet": "ObjectNet, images arranged by ImageNet wnid: --data-dir DIR (DIR/<wnid>/*)",
}


@lru_cache(maxsize=1)
def wnids() -> tuple[str, ...]:
    """The 1000 ImageNet WordNet ids in class-index order (timm's copy)."""
    from importlib.resources import files

    text = files("timm").joinpath("data/_info/imagenet_synsets.txt").read_text()
    ids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(ids) != 1000:  # pragma: no cover - a broken timm install
        raise RuntimeError(f"timm's imagenet_synsets.txt has {len(ids)} ids, expected 1000")
    return ids


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """One unique, readable name per ImageNet class, in class-index order."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    names = list(IMAGENET_CLASSNAMES)
    names[744], names[836] = "projectile", "sunglass"  # the two duplicated names: their WordNet lemmas
    assert len(set(names)) == 1000
    return tuple(names)


def _root(data_dir: str | None, name: str) -> Path:
    if not data_dir:
        raise ConfigError(f"{name} needs --data-dir DIR, a local ImageNet-style folder (DIR/<class>/<images>); "
                          f"winoeval cannot download it")
    root = Path(data_dir)
    if (root / "val").is_dir() and not any(_class_index(p.name) is not None for p in root.iterdir() if p.is_dir()):
        root = root / "val"
    return root


def _class_index(folder: str) -> int | None:
    if folder.isdigit() and int(folder) < 1000:
        return int(folder)
    try:
        return _wnid_index()[folder]
    except KeyError:
        return None


@lru_cache(maxsize=1)
def _wnid_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def load(name: str, argument: str | None, config: Any) -> TaskData:
    root = _root(getattr(config, "data_dir", None), name)
    args = dict(getattr(config, "task_args", None) or {})
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if _class_index(p.name) is None]
    if unknown:
        raise ConfigError(f"--data-dir {root}: folder(s) {', '.join(unknown[:5])} are neither ImageNet wnids "
                          f"(n01440764) nor class indices 0…999; arrange the images as DIR/<wnid>/<file>")
    if not folders:
        raise ConfigError(f"--data-dir {root}: no class folders (expected DIR/<wnid>/<images>)")
    indices = sorted({_class_index(p.name) for p in folders})
    if "classes" in args:
        try:
            wanted = [w.strip() for w in Path(args["classes"]).read_text().splitlines() if w.strip()]
        except OSError as exc:
            raise ConfigError(f"--task-arg classes={args['classes']}: cannot read it ({exc})") from None
        bad = [w for w in wanted if w not in _wnid_index()]
        if bad:
            raise ConfigError(f"--task-arg classes: {', '.join(bad[:5])} are not ImageNet wnids")
        indices = sorted({_wnid_index()[w] for w in wanted} & set(indices))
    per_class = None
    if "per_class" in args:
        try:
            per_class = int(args["per_class"])
            assert per_class > 0
        except (ValueError, AssertionError):
            raise ConfigError(f"--task-arg per_class needs a positive integer, got {args['per_class']!r}") from None
    position = {index: k for k, index in enumerate(indices)}
    names = class_names()
    texts = [names[i] for i in indices]
    items: list[tuple[str, Path, int]] = []
    for folder in folders:
        index = _class_index(folder.name)
        if index not in position:
            continue
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if per_class:
            files = files[:per_class]
        items += [(f"{folder.name}/{f.name}", f, index) for f in files]

    def examples() -> Iterator[Example]:
        from PIL import Image

        for example_id, path, index in items:
            def images(path=path):
                with Image.open(path) as im:
                    im.load()
                    return [im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()]

            yield Example(example_id, images, list(texts), label=position[index], meta={"wnid": wnids()[index]})

    from winoeval.fingerprint import hash_text

    listing = hash_text("\n".join(f"{i}:{f.name}" for i, f, _ in items) + "|" + ",".join(map(str, indices)))
    return TaskData(name=name, metric="classification", examples=examples, size=len(items), texts=list(texts),
                    class_names=list(texts), defaults=dict(PRESET), breakdowns=[], fingerprint=listing)


def _loader(name: str):
    return lambda argument, config: load(name, argument, config)


@hookimpl
def winoeval_register_tasks(register):
    for name, description in SPECS.items():
        register(name, _loader(name), description=f"{description}; DiT protocol presets (250 even t, l2, shared "
                                                  f"noise)", options=dict(TASK_OPTIONS))
