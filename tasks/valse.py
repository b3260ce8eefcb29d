"""VALSE (Parcalabescu et al., ACL 2022): one image, a caption and a *foil* that differs in one linguistic
phenomenon; the model must prefer the caption (the paper's pairwise ranking accuracy acc_r for
image–text matchers).

Published files (https://github.com/Heidelberg-NLP/VALSE, folder ``data/``; the repository has no licence
file): one JSON per
instrument, a dict ``{foil_id: {dataset, image_file, caption, foil, mturk: {caption, foil, other},
linguistic_phenomena, ...}}``. Only the *valid* foils are scored — ``mturk.caption >= 2``, as the
repository's README and evaluation scripts require. A ``caption`` stored as a list (older files) is
read as its first entry, as the repository's LXMERT script does.

Local layout (``--data-dir ROOT`` = the repository's ``data/`` folder): the JSON files in ``ROOT`` and
each instrument's images in the folder the repository's ``config.py`` names (from each source dataset's
own site; VALSE does not redistribute images):

=====================  ==============================  ===============================================
instrument             file                            images
=====================  ==============================  ===============================================
existence              existence.json                  visual7w/images/
plurals                plurals.json                    plurals/test_images/
counting-hard          counting_hard.json              visual7w/images/
counting-small         counting-small-quant.json       visual7w/images/
counting-adversarial   counting_adversarial.json       visual7w/images/
relations              relation.json                   relations/test_images/
action-replacement     action-replacement.json         actions/images_512/
actant-swap            actant-swap.json                actions/images_512/
coreference-standard   coreference-standard.json       coref/release_too_many_is_this_in_color/images/
coreference-hard       coreference-hard.json           coref/release_v18/test_images/
foil-it                foil-it.json                    val2014/ (COCO)
=====================  ==============================  ===============================================

Usage: ``valse`` (every instrument) or ``valse:existence``, ``valse:counting-hard,counting-small``, or
a whole piece: ``valse:counting``, ``valse:actions``, ``valse:coreference``, ``valse:plurality``.
Results are broken down by piece (existence, plurality, counting, relations, actions, coreference,
foil-it) and by instrument.
"""

from __future__ import annotations

from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

from . import _local

REPO = "https://github.com/Heidelberg-NLP/VALSE"
LICENCE = ("no licence file in the repository (ask the authors before redistributing); images under their source "
           "datasets' terms (Visual7W, SWiG, VisDial, COCO, ...)")
CITATION = ("Parcalabescu, Cafagna, Muradjan, Frank, Calixto, Gatt. VALSE: A Task-Independent Benchmark for "
            "Vision and Language Models Centered on Linguistic Phenomena. ACL 2022. arXiv:2112.07566")
SOURCE = f"{REPO}/tree/main/data (JSON) + each source dataset's images"
INSTRUMENTS = {  # name → (piece, file names, image folder)
    "existence": ("existence", ("existence.json",), "visual7w/images"),
    "plurals": ("plurality", ("plurals.json",), "plurals/test_images"),
    "counting-hard": ("counting", ("counting_hard.json",), "visual7w/images"),
    "counting-small": ("counting", ("counting-small-quant.json",), "visual7w/images"),
    "counting-adversarial": ("counting", ("counting_adversarial.json",), "visual7w/images"),
    "relations": ("relations", ("relation.json",), "relations/test_images"),
    "action-replacement": ("actions", ("action-replacement.json",), "actions/images_512"),
    "actant-swap": ("actions", ("actant-swap.json", "actions/actant-swap.json"), "actions/images_512"),
    "coreference-standard": ("coreference", ("coreference-standard.json",),
                             "coref/release_too_many_is_this_in_color/images"),
    "coreference-hard": ("coreference", ("coreference-hard.json",), "coref/release_v18/test_images"),
    "foil-it": ("foil-it", ("foil-it.json",), "val2014"),
}
PIECES = {piece: [i for i, (p, _, _) in INSTRUMENTS.items() if p == piece]
          for piece in dict.fromkeys(p for p, _, _ in INSTRUMENTS.values())}


def parse(argument: str | None) -> list[str]:
    """Instrument names from ``valse:…`` (instruments or whole pieces, comma-separated)."""
    if argument is None or argument.strip().lower() in ("", "all"):
        return list(INSTRUMENTS)
    out: list[str] = []
    for part in argument.split(","):
        key = part.strip().lower().replace("_", "-")
        names = PIECES.get(key) or ([key] if key in INSTRUMENTS else None)
        if names is None:
            raise _local.config_error(f"unknown VALSE instrument or piece {part.strip()!r}; instruments: "
                                      f"{', '.join(INSTRUMENTS)}; pieces: {', '.join(PIECES)}")
        out += [n for n in names if n not in out]
    return out


def load(argument: str | None, config: Any):
    from winoeval.api import Example, TaskData

    instruments = parse(argument)
    if getattr(config, "task_args", None):
        raise _local.config_error(f"valse takes no --task-arg (got {', '.join(sorted(config.task_args))})")
    root = _local.need_data_dir(config, "valse", f"clone {REPO} (--data-dir is its data/ folder) and download "
                                                 f"each source dataset's images")
    rows, files = [], []
    for name in instruments:
        piece, names, folder = INSTRUMENTS[name]
        path = _local.find_file(root, list(names), f"valse:{name}", f"{REPO}/blob/main/data/{names[0]}")
        images = _local.need_folder(root, folder, f"valse:{name}", "download the images of the source dataset "
                                                                   "(the JSON's 'dataset' field) into it")
        files.append(path)
        data = _local.read_json(path, "valse")
        if not isinstance(data, dict):
            raise _local._unavailable(f"valse: {path} is a {type(data).__name__}, not the published "
                                      f"{{foil_id: {{...}}}} object")
        for foil_id, item in data.items():
            where = f"{path.name} entry {foil_id!r}"
            mturk = _local.field(item, "mturk", where, "valse")
            if not isinstance(mturk, dict) or int(mturk.get("caption", 0)) < 2:
                continue  # not a valid foil (fewer than 2 of 3 annotators preferred the caption)
            caption = _local.field(item, "caption", where, "valse")
            caption = caption[0] if isinstance(caption, list) else caption
            rows.append((f"{name}/{foil_id}", images, _local.field(item, "image_file", where, "valse"),
                         [caption, _local.field(item, "foil", where, "valse")],
                         {"piece": piece, "instrument": name, "dataset": item.get("dataset")}))

    def examples() -> Iterator[Example]:
        for eid, images, image_file, texts, meta in rows:
            yield Example(id=eid, images=_local.lazy_images(images, [image_file], ["image"]), texts=texts, label=0,
                          meta=meta)

    return TaskData(name="valse", metric="choice", examples=examples, size=len(rows),
                    breakdowns=["piece", "instrument"], fingerprint=_local.fingerprint(*files))


@hookimpl
def winoeval_register_tasks(register):
    register("valse", load, takes_argument=True, options={},
             description="VALSE (11 instruments, valid foils; local files): caption vs foil, accuracy by piece; "
                         "valse:counting, valse:existence, ...", licence=LICENCE, citation=CITATION, source=SOURCE,
             group="compositional")
