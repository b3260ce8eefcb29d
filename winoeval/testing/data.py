"""Tiny on-disk datasets in the formats winoeval reads, built in well under a second (no hub needed).

* :func:`make_winoground_dataset` — Winoground's exact schema (``id``, ``image_0``, ``image_1``,
  ``caption_0``, ``caption_1``, ``tag``, ``secondary_tag``, ``num_main_preds``, ``collapsed_tag``),
  with 32×32 two-colour images: ``image_0`` is "A left of B" (left half A, right half B) and
  ``image_1`` the swap, captioned ``"A left of B"`` / ``"B left of A"`` with colours of the built-in
  ``analytic`` model's palette, so that model gets every example right.
* :func:`make_classification_dataset` — an image + ``ClassLabel`` dataset (solid colour per class;
  palette colours for palette class names, so ``analytic`` classifies them exactly).

``fmt`` picks the layout on disk, one of :data:`FORMATS`:

``"save_to_disk"``  a ``DatasetDict`` with the one split, ``DatasetDict.save_to_disk(path)``
``"dataset"``       a single ``Dataset.save_to_disk(path)`` (no split names)
``"parquet"``       ``path/<split>-00000-of-00001.parquet``
``"snapshot"``      what ``huggingface-cli download REPO --repo-type dataset --local-dir path`` leaves:
                    ``README.md`` with a YAML ``configs`` header, ``data/<split>-00000-of-00001.parquet``,
                    ``.gitattributes`` and a ``.cache/huggingface`` folder

``broken_ids`` replaces those examples' second image with bytes that are no image (a corrupt
record); reading it raises ``PIL.UnidentifiedImageError`` (an ``OSError``).

Every builder returns the path as a ``str`` (ready for ``RunConfig(data_dir=...)``).
"""

from __future__ import annotations

import io
import itertools
import json
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Sequence

FORMATS = ("save_to_disk", "dataset", "parquet", "snapshot")
WINOGROUND_COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLLAPSED_TAGS = ("Object", "Relation", "Both")
_TAGS = {"Object": "Noun", "Relation": "Preposition", "Both": "Adjective-Color, Noun"}
SECONDARY_TAGS = ("", "Symbolic", "", "Pragmatics", "", "Series")
CORRUPT_BYTES = b"this is not an image\x00\x01\x02"
IMAGE_SIZE = 32


def _rgb(name: str, index: int = 0) -> tuple[int, int, int]:
    from winoeval.plugins.analytic import PALETTE

    if name.strip().lower() in PALETTE:
        return PALETTE[name.strip().lower()]
    rng = random.Random(f"class-colour-{index}")  # a fixed colour per class index for other names
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _png(left: tuple[int, int, int], right: tuple[int, int, int], size: int = IMAGE_SIZE) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (size, size), left)
    image.paste(Image.new("RGB", (size - size // 2, size), right), (size // 2, 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def winoground_rows(n: int = 6, seed: int = 0, broken_ids: Iterable[int | str] = ()) -> list[dict[str, Any]]:
    """The rows :func:`make_winoground_dataset` writes (images as ``{"bytes", "path"}`` dicts).

    Row ``i`` has id ``i``, collapsed_tag ``COLLAPSED_TAGS[i % 3]``, num_main_preds ``1 + i % 2`` and
    secondary_tag ``SECONDARY_TAGS[i % 6]``; the colour pairs are a seeded shuffle of all pairs.
    """
    broken = {str(b) for b in broken_ids}
    pairs = list(itertools.combinations(WINOGROUND_COLOURS, 2))
    random.Random(seed).shuffle(pairs)
    rows = []
    for i in range(n):
        a, b = pairs[i % len(pairs)]
        collapsed = COLLAPSED_TAGS[i % len(COLLAPSED_TAGS)]
        image_1 = CORRUPT_BYTES if str(i) in broken else _png(_rgb(b), _rgb(a))
        rows.append({
            "id": i,
            "image_0": {"bytes": _png(_rgb(a), _rgb(b)), "path": None},
            "image_1": {"bytes": image_1, "path": None},
            "caption_0": f"{a} left of {b}",
            "caption_1": f"{b} left of {a}",
            "tag": _TAGS[collapsed],
            "secondary_tag": SECONDARY_TAGS[i % len(SECONDARY_TAGS)],
            "num_main_preds": 1 + i % 2,
            "collapsed_tag": collapsed,
        })
    return rows


def winoground_features():
    """The features of ``facebook/winoground`` (as its dataset card lists them)."""
    from datasets import Features, Image, Value

    return Features({
        "id": Value("int32"), "image_0": Image(), "image_1": Image(), "caption_0": Value("string"),
        "caption_1": Value("string"), "tag": Value("string"), "secondary_tag": Value("string"),
        "num_main_preds": Value("int32"), "collapsed_tag": Value("string"),
    })


def _card(features, split: str, n: int, nbytes: int, pretty_name: str) -> str:
    """A hub dataset card header (YAML) like the ones ``push_to_hub`` writes."""
    lines = ["---", f"pretty_name: {pretty_name}", "dataset_info:", "  features:"]
    for name, feature in features.items():
        kind = type(feature).__name__
        lines.append(f"  - name: {name}")
        if kind == "Image":
            lines.append("    dtype: image")
        elif kind == "ClassLabel":
            lines += ["    dtype:", "      class_label:", "        names:"]
            lines += [f"          '{k}': {json.dumps(v)}" for k, v in enumerate(feature.names)]
        else:
            lines.append(f"    dtype: {feature.dtype}")
    lines += ["  splits:", f"  - name: {split}", f"    num_bytes: {nbytes}",
              f"    num_examples: {n}",
              "configs:", "- config_name: default", "  data_files:", f"  - split: {split}",
              f"    path: data/{split}-*", "---", "", f"# {pretty_name} (a tiny synthetic copy for tests)", ""]
    return "\n".join(lines)


def write_dataset(ds, path: str | Path, fmt: str = "save_to_disk", split: str = "test",
                  pretty_name: str = "synthetic") -> str:
    """Write a ``datasets.Dataset`` to ``path`` in one of :data:`FORMATS`; returns ``str(path)``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with _quiet():
        _write(ds, path, fmt, split, pretty_name)
    return str(path)


@contextmanager
def _quiet():
    """No progress bars while writing (restored afterwards)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _write(ds, path: Path, fmt: str, split: str, pretty_name: str) -> None:
    from datasets import DatasetDict

    shard = f"{split}-00000-of-00001.parquet"
    if fmt == "save_to_disk":
        DatasetDict({split: ds}).save_to_disk(str(path))
    elif fmt == "dataset":
        ds.save_to_disk(str(path))
    elif fmt == "parquet":
        ds.to_parquet(str(path / shard))
    else:  # snapshot
        (path / "data").mkdir(exist_ok=True)
        ds.to_parquet(str(path / "data" / shard))
        card = _card(ds.features, split, len(ds), ds.data.nbytes, pretty_name)
        (path / "README.md").write_text(card, encoding="utf-8")
        (path / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8")
        meta = path / ".cache" / "huggingface" / "download" / "data"
        meta.mkdir(parents=True, exist_ok=True)
        (meta / f"{shard}.metadata").write_text("0000000000000000000000000000000000000000\n0\n0\n", encoding="utf-8")
        (path / ".cache" / "huggingface" / ".gitignore").write_text("*\n", encoding="utf-8")


def make_winoground_dataset(path: str | Path, n: int = 6, fmt: str = "save_to_disk", seed: int = 0,
                            broken_ids: Iterable[int | str] = (), split: str = "test") -> str:
    """Write a tiny Winoground-format dataset (see the module docstring) and return its path."""
    from datasets import Dataset

    ds = Dataset.from_list(winoground_rows(n, seed, broken_ids), features=winoground_features())
    return write_dataset(ds, path, fmt, split, pretty_name="Winoground")


def make_classification_dataset(path: str | Path, class_names: Sequence[str], per_class: int,
                                fmt: str = "save_to_disk", image_field: str = "img", label_field: str = "label",
                                split: str = "test", class_label: bool = True,
                                broken_ids: Iterable[int | str] = ()) -> str:
    """Write ``per_class`` solid-colour images per class (row ``r`` has label ``r % len(class_names)``).

    ``class_label=False`` stores plain integer labels (no class names in the dataset) to exercise
    the shipped class-name lists. ``broken_ids`` are row indices whose image is corrupt.
    """
    from datasets import ClassLabel, Dataset, Features, Image, Value

    broken = {str(b) for b in broken_ids}
    k = len(class_names)
    rows = []
    for r in range(per_class * k):
        label = r % k
        colour = _rgb(class_names[label], label)
        data = CORRUPT_BYTES if str(r) in broken else _png(colour, colour)
        rows.append({image_field: {"bytes": data, "path": None}, label_field: label})
    features = Features({image_field: Image(),
                         label_field: ClassLabel(names=list(class_names)) if class_label else Value("int64")})
    ds = Dataset.from_list(rows, features=features)
    return write_dataset(ds, path, fmt, split, pretty_name="classification")
