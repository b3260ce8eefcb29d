"""Tiny copies of the compositional and zero-shot sets in their exact published layouts (file names, JSON
keys, image folders, each set's quirks), for offline tests and demos. Nothing is downloaded.

Every builder writes under ``root`` and returns what a test needs to check the loader against. Images
are small solid-colour PNG/JPEG files (a colour per image, so a test can tell which file was read).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

SUGARCREPE_FILES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def _colour(k: int) -> tuple[int, int, int]:
    return ((37 * k + 11) % 256, (91 * k + 53) % 256, (173 * k + 7) % 256)


def _image(path: Path, k: int, size: tuple[int, int] = (16, 12)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, _colour(k)).save(path)


def make_sugarcrepe(root: str | Path, per_subset: int = 2, old_names: bool = False, in_data: bool = True) -> dict:
    """``data/<subset>.json`` ({"0": {filename, caption, negative_caption}}) + ``val2017/*.jpg``.
    ``old_names``: the object files as ``*_ent.json`` (older copies of the repository)."""
    root = Path(root)
    folder = root / "data" if in_data else root
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    out = {}
    for stem in SUGARCREPE_FILES:
        name = stem.replace("_obj", "_ent") if old_names else stem
        entries = {}
        for i in range(per_subset):
            filename = f"{k:012d}.jpg"
            _image(root / "val2017" / filename, k)
            entries[str(i)] = {"filename": filename, "caption": f"{stem} caption {i}",
                               "negative_caption": f"{stem} negative {i}"}
            k += 1
        (folder / f"{name}.json").write_text(json.dumps(entries, indent=4), encoding="utf-8")
        out[stem] = entries
    return out


def make_aro_vg(root: str | Path, kind: str = "relation") -> list[dict]:
    """``visual_genome_relation.json`` / ``visual_genome_attribution.json`` + ``images/``. Relations:
    ``on`` ×3, ``next to`` ×2 (symmetric: left out of the macro accuracy), ``eating`` ×1. Attributes:
    ``white_black`` ×26 (kept: ≥ 25) and ``red_blue`` ×2 (dropped). Images are 40×30 with a
    (5, 6, 20, 10) box: the crop is 20×10."""
    root = Path(root)
    items = []
    groups = ([("on", 3), ("next to", 2), ("eating", 1)] if kind == "relation"
              else [(("white", "black"), 26), (("red", "blue"), 2)])
    n = 0
    for value, count in groups:
        for _ in range(count):
            path = f"{2300000 + n}.jpg"
            _image(root / "images" / path, n, size=(40, 30))
            item = {"image_id": str(2300000 + n), "image_path": path, "bbox_x": 5, "bbox_y": 6, "bbox_w": 20,
                    "bbox_h": 10, "true_caption": f"the cat is {n} true", "false_caption": f"the cat is {n} false"}
            if kind == "relation":
                item["relation_name"] = value
            else:
                item["attributes"] = list(value)
            items.append(item)
            n += 1
    name = "visual_genome_relation.json" if kind == "relation" else "visual_genome_attribution.json"
    (root / name).write_text(json.dumps(items), encoding="utf-8")
    return items


def make_aro_order(root: str | Path, coco: bool = True, n_images: int = 2) -> list[dict]:
    """Karpathy test split ``coco_karpathy_test.json`` (images ``val2014/…``) or ``flickr30k_test.json``
    (images ``flickr30k-images/…``): ``[{image, caption: [5 captions], image_id}]``."""
    root = Path(root)
    rows = []
    for i in range(n_images):
        image = (f"val2014/COCO_val2014_{i:012d}.jpg" if coco else f"flickr30k-images/{1000 + i}.jpg")
        _image(root / image, i)
        rows.append({"image": image, "image_id": str(i),
                     "caption": [f"A red bus parked near the old station number {i}{k}." for k in range(5)]})
    (root / ("coco_karpathy_test.json" if coco else "flickr30k_test.json")).write_text(json.dumps(rows))
    return rows


# file → image folder, as the VALSE repository's config.py names them (with its "data/" prefix dropped)
VALSE_LAYOUT = {
    "existence.json": "visual7w/images", "plurals.json": "plurals/test_images",
    "counting_hard.json": "visual7w/images", "counting-small-quant.json": "visual7w/images",
    "counting_adversarial.json": "visual7w/images", "relation.json": "relations/test_images",
    "action-replacement.json": "actions/images_512", "actions/actant-swap.json": "actions/images_512",
    "coreference-standard.json": "coref/release_too_many_is_this_in_color/images",
    "coreference-hard.json": "coref/release_v18/test_images", "foil-it.json": "val2014",
}


def make_valse(root: str | Path) -> dict[str, dict]:
    """Every instrument's JSON (``actant-swap.json`` inside ``actions/``, as config.py has it), one valid foil
    each, except ``existence.json``: 3 foils, the second with ``mturk.caption`` 1 (not valid), and
    ``counting_hard.json``: 2 valid foils, the second's ``caption`` stored as a list."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    k = 0
    out = {}
    votes = {"existence.json": [3, 1, 2], "counting_hard.json": [2, 3]}
    for file, folder in VALSE_LAYOUT.items():
        data = {}
        stem = Path(file).stem
        for i, vote in enumerate(votes.get(file, [3])):
            image = f"{stem}_{k}.jpg"
            _image(root / folder / image, k)
            caption = f"{stem} caption {i}"
            data[f"{stem}_{i}"] = {
                "dataset": "source", "original_split": "test", "dataset_idx": image, "image_file": image,
                "caption": [caption] if file == "counting_hard.json" and i == 1 else caption,
                "foil": f"{stem} foil {i}", "classes": "x", "classes_foil": "y",
                "mturk": {"foil": 0, "caption": vote, "other": 3 - vote}, "linguistic_phenomena": stem}
            k += 1
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_text(json.dumps(data), encoding="utf-8")
        out[file] = data
    return out


def make_eqben(root: str | Path, n: int = 3) -> list[dict]:
    """``eqben_subset_10percent_final.json`` (a list of {image0, caption0, image1, caption1}) and
    ``image_subset/`` — the last pair's images are YouCook2-style ``.npy`` BGR arrays."""
    import numpy as np

    root = Path(root)
    rows = []
    for i in range(n):
        if i == n - 1:
            names = [f"eqbenyoucook2/clip_{i}/frame_{j}.npy" for j in range(2)]
            for j, name in enumerate(names):
                (root / "image_subset" / name).parent.mkdir(parents=True, exist_ok=True)
                r, g, b = _colour(2 * i + j)
                np.save(root / "image_subset" / name, np.full((12, 16, 3), (b, g, r), dtype=np.uint8))
        else:
            names = [f"eqbenag/video_{i}/frame_{j}.png" for j in range(2)]
            for j, name in enumerate(names):
                _image(root / "image_subset" / name, 2 * i + j)
        rows.append({"image0": names[0], "caption0": f"the person holds the cup {i}",
                     "image1": names[1], "caption1": f"the person puts down the cup {i}"})
    (root / "eqben_subset_10percent_final.json").write_text(json.dumps(rows), encoding="utf-8")
    return rows


def make_winoground_jsonl(root: str | Path, n: int = 2) -> list[dict]:
    """Winoground's own ``examples.jsonl`` + ``images/ex_<i>_img_<j>.png`` (names without extension)."""
    root = Path(root)
    rows = []
    tags = ["Object", "Relation"]
    for i in range(n):
        for j in range(2):
            _image(root / "images" / f"ex_{i}_img_{j}.png", 2 * i + j)
        rows.append({"id": i, "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1",
                     "caption_0": f"a mug in some grass {i}", "caption_1": f"some grass in a mug {i}",
                     "tag": "Noun", "secondary_tag": "Symbolic" if i else "", "num_main_preds": 1,
                     "collapsed_tag": tags[i % 2]})
    with open(root / "examples.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return rows


# ---- the zero-shot sets: (id, label) rows in the loader's order --------------------------------------------

def make_food101(root: str | Path, classes: tuple[str, ...], per_class: int = 1) -> list[tuple[str, int]]:
    base = Path(root) / "food-101"
    names = sorted(n.replace(" ", "_") for n in classes)
    meta = {c: [f"{c}/{1000 + k}" for k in range(per_class)] for c in names}
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "meta" / "test.json").write_text(json.dumps(meta))
    (base / "meta" / "classes.txt").write_text("\n".join(names) + "\n")
    rows = []
    for label, c in enumerate(names):
        for item in meta[c]:
            _image(base / "images" / f"{item}.jpg", label)
            rows.append((item, label))
    return rows


def make_cifar100(root: str | Path, classes: tuple[str, ...], labels: list[int]) -> list[tuple[str, int]]:
    import numpy as np

    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    data = np.zeros((len(labels), 3072), dtype=np.uint8)
    for i, label in enumerate(labels):
        r, g, b = _colour(label)
        data[i, :1024], data[i, 1024:2048], data[i, 2048:] = r, g, b  # channel-major rows, as published
    with open(base / "test", "wb") as fh:
        pickle.dump({"data": data, "fine_labels": labels, "coarse_labels": [0] * len(labels),
                     "filenames": [f"img_{i}.png" for i in range(len(labels))]}, fh, protocol=2)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [c.replace(" ", "_") for c in classes], "coarse_label_names": []}, fh,
                    protocol=2)
    return [(str(i), label) for i, label in enumerate(labels)]


def make_aircraft(root: str | Path, classes: tuple[str, ...], picks: list[int]) -> list[tuple[str, int]]:
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("\n".join(classes) + "\n")
    lines, rows = [], []
    for k, label in enumerate(picks):
        image_id = f"{1000000 + k:07d}"
        _image(data / "images" / f"{image_id}.jpg", label)
        lines.append(f"{image_id} {classes[label]}")
        rows.append((image_id, label))
    (data / "images_variant_test.txt").write_text("\n".join(lines) + "\n")
    return rows


def make_flowers102(root: str | Path, labels_1based: list[int], test_ids: list[int]) -> list[tuple[str, int]]:
    import numpy as np
    from scipy.io import savemat

    base = Path(root) / "flowers-102"
    base.mkdir(parents=True, exist_ok=True)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels_1based], dtype=np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[1]]),
                                 "tstid": np.array([test_ids], dtype=np.uint16)})
    for i in range(1, len(labels_1based) + 1):
        _image(base / "jpg" / f"image_{i:05d}.jpg", i)
    return [(f"image_{i:05d}", labels_1based[i - 1] - 1) for i in test_ids]


def make_stl10(root: str | Path, classes: tuple[str, ...], labels: list[int]) -> list[tuple[str, int]]:
    """``stl10_binary/test_X.bin``: each image stored column-major (x fastest after the channel: a pixel
    (row y, column x) of channel c at c·9216 + x·96 + y); image i has pixel (row 0, column 1) white."""
    import numpy as np

    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    images = np.zeros((len(labels), 3, 96, 96), dtype=np.uint8)  # [c][x][y], as stored
    for i, label in enumerate(labels):
        images[i] = np.array(_colour(label), dtype=np.uint8)[:, None, None]
        images[i, :, 1, 0] = 255  # column 1, row 0
    images.tofile(base / "test_X.bin")
    np.array([label + 1 for label in labels], dtype=np.uint8).tofile(base / "test_y.bin")
    (base / "class_names.txt").write_text("\n".join(classes) + "\n")
    return [(str(i), label) for i, label in enumerate(labels)]


def make_compositional_root(root: str | Path) -> Path:
    """One ``--data-dir`` for ``--task compositional``: ``winoground/`` (hub layout), ``sugarcrepe/``,
    ``aro/`` (VG-Relation and VG-Attribution), ``valse/``, ``eqben/``."""
    from .data import make_winoground_dataset

    root = Path(root)
    make_winoground_dataset(root / "winoground", n=4, fmt="parquet")
    make_sugarcrepe(root / "sugarcrepe", per_subset=1)
    make_aro_vg(root / "aro", "relation")
    make_aro_vg(root / "aro", "attribution")
    make_valse(root / "valse")
    make_eqben(root / "eqben")
    return root
