"""Readers of the published files of the original protocol's zero-shot sets (what torchvision downloads),
written here so that no checksum, network access or torchvision dataset class is needed.

Each reader takes ``--data-dir ROOT`` (the folder torchvision would be given as ``root``; the dataset's
own folder works too) and returns ``(rows, names)``: rows ``(id, image, label)`` in the dataset's order,
where ``image`` is a zero-argument callable returning the PIL image, and ``names`` the class names the
files hold in label order (or None). Labels follow torchvision's conventions, as the original does.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

from . import _local

Rows = list[tuple[str, Callable[[], Any], int]]


def _folder(root: Path, name: str, task: str, how: str, marker: str) -> Path:
    """``root/name`` or ``root`` itself when it is that folder; else the error saying what to download."""
    for candidate in (root / name, root):
        if (candidate / marker).exists():
            return candidate
    raise _local._unavailable(f"{task}: {root / name / marker} is missing; {how} so that {root / name / marker} "
                              f"exists (--data-dir {root})")


def _one(fn: Callable[[], list]) -> Callable[[], Any]:
    return lambda: fn()[0]


def food101(root: Path) -> tuple[Rows, list[str] | None]:
    """``food-101/meta/test.json`` ({class: ["class/id", ...]}), images ``food-101/images/<class>/<id>.jpg``;
    classes sorted by name (torchvision's order; the original's prompt file has the same order)."""
    base = _folder(root, "food-101", "food101", "download http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz and "
                                                "extract it into the --data-dir", "meta/test.json")
    meta = _local.read_json(base / "meta" / "test.json", "food101")
    classes = sorted(meta)
    rows = [(item, _one(_local.lazy_images(base / "images", [f"{item}.jpg"], ["image"])), k)
            for k, c in enumerate(classes) for item in meta[c]]
    return rows, classes


def cifar100(root: Path) -> tuple[Rows, list[str] | None]:
    """``cifar-100-python/test`` and ``meta`` (Python pickles: ``data`` N×3072 uint8, ``fine_labels``,
    ``fine_label_names``)."""
    import numpy as np
    from PIL import Image

    base = _folder(root, "cifar-100-python", "cifar100", "download https://www.cs.toronto.edu/~kriz/"
                                                         "cifar-100-python.tar.gz and extract it into the --data-dir",
                   "test")

    def unpickle(path: Path) -> dict:
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh, encoding="latin1")  # the published files are Python 2 pickles
        except Exception as exc:  # noqa: BLE001 - a damaged download
            raise _local._unavailable(f"cifar100: cannot read {path} ({type(exc).__name__}: {exc}); download it "
                                      f"again") from None

    test, meta = unpickle(base / "test"), unpickle(base / "meta")
    data = np.asarray(test["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = [int(v) for v in test["fine_labels"]]
    rows = [(str(i), (lambda i=i: Image.fromarray(data[i], "RGB")), labels[i]) for i in range(len(labels))]
    return rows, list(meta["fine_label_names"])


def aircraft(root: Path) -> tuple[Rows, list[str] | None]:
    """FGVC-Aircraft 2013b, variant level: ``data/variants.txt`` (the 100 class names in label order),
    ``data/images_variant_test.txt`` (``<image id> <variant>`` per line), ``data/images/<id>.jpg``."""
    base = _folder(root, "fgvc-aircraft-2013b", "aircraft", "download https://www.robots.ox.ac.uk/~vgg/data/"
                                                            "fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz and "
                                                            "extract it into the --data-dir", "data/variants.txt")
    data = base / "data"
    variants = [v.strip() for v in (data / "variants.txt").read_text(encoding="utf-8").splitlines() if v.strip()]
    index = {v: k for k, v in enumerate(variants)}
    split = data / "images_variant_test.txt"
    if not split.is_file():
        raise _local._unavailable(f"aircraft: {split} is missing; extract the whole fgvc-aircraft-2013b.tar.gz")
    rows = []
    for n, line in enumerate(split.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        image_id, _, variant = line.strip().partition(" ")
        if variant not in index:
            raise _local._unavailable(f"aircraft: {split.name} line {n} names variant {variant!r}, which is not in "
                                      f"variants.txt")
        rows.append((image_id, _one(_local.lazy_images(data / "images", [f"{image_id}.jpg"], ["image"])),
                     index[variant]))
    return rows, variants


def flowers102(root: Path) -> tuple[Rows, list[str] | None]:
    """Oxford Flowers-102: ``imagelabels.mat`` (``labels``, 1…102), ``setid.mat`` (``tstid``: the test images'
    1-based numbers, in order), ``jpg/image_%05d.jpg``; labels − 1 as torchvision. No class names in the files."""
    base = _folder(root, "flowers-102", "flowers102", "download https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
                                                      "102flowers.tgz, imagelabels.mat and setid.mat and put them "
                                                      "in DATA/flowers-102 (the tgz gives jpg/)", "setid.mat")
    from scipy.io import loadmat

    try:
        labels = loadmat(str(base / "imagelabels.mat"))["labels"].ravel()
        test_ids = loadmat(str(base / "setid.mat"))["tstid"].ravel()
    except (OSError, KeyError, ValueError) as exc:
        raise _local._unavailable(f"flowers102: cannot read {base}/imagelabels.mat or setid.mat "
                                  f"({type(exc).__name__}: {exc}); download them again") from None
    rows = [(f"image_{int(i):05d}", _one(_local.lazy_images(base / "jpg", [f"image_{int(i):05d}.jpg"], ["image"])),
             int(labels[int(i) - 1]) - 1) for i in test_ids]
    return rows, None


def stl10(root: Path) -> tuple[Rows, list[str] | None]:
    """STL-10 binary files: ``stl10_binary/test_X.bin`` (uint8, N×3×96×96, column-major images),
    ``test_y.bin`` (labels 1…10), ``class_names.txt``."""
    import numpy as np
    from PIL import Image

    base = _folder(root, "stl10_binary", "stl10", "download http://ai.stanford.edu/~acoates/stl10/"
                                                  "stl10_binary.tar.gz and extract it into the --data-dir",
                   "test_X.bin")
    labels = np.fromfile(base / "test_y.bin", dtype=np.uint8).astype(int) - 1
    images = np.memmap(base / "test_X.bin", dtype=np.uint8, mode="r")
    if images.size != len(labels) * 3 * 96 * 96:
        raise _local._unavailable(f"stl10: {base / 'test_X.bin'} holds {images.size} bytes, not {len(labels)} "
                                  f"images of 3×96×96; download it again")
    images = images.reshape(-1, 3, 96, 96)
    names_file = base / "class_names.txt"
    names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()] if names_file.is_file() else None
    rows = [(str(i), (lambda i=i: Image.fromarray(np.ascontiguousarray(images[i].transpose(2, 1, 0)), "RGB")),
             int(labels[i])) for i in range(len(labels))]
    return rows, names


READERS = {"food101": food101, "cifar100": cifar100, "aircraft": aircraft, "flowers102": flowers102, "stl10": stl10}
