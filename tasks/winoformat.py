"""2×2 image–caption sets in Winoground's file format, and EqBen's published subset through it.

**The generic loader** (task ``winoground-format``; third-party plugins reuse it through
:class:`PairSpec`): an annotation file — a JSON list, or JSON lines — of records with two images and
two captions, image i matching caption i. Both spellings of the keys are read:

* ``image_0``, ``image_1``, ``caption_0``, ``caption_1`` (Winoground's ``examples.jsonl``, whose image
  names carry no extension: ``ex_0_img_0`` is read as ``images/ex_0_img_0.png``);
* ``image0``, ``image1``, ``caption0``, ``caption1`` (EqBen's files).

``id`` is used when present (else the record's position); ``collapsed_tag``, ``tag``, ``secondary_tag``
and ``num_main_preds`` are kept in ``meta`` and results break down by those present. Image paths are
relative to the image folder; ``.npy`` images are H×W×3 BGR arrays (EqBen's YouCook2 frames).
Scored as Winoground: text, image and group scores (metric ``winoground``, with the unconditional
normalisation for diffusion models by default).

``winoground-format`` reads ``--data-dir ROOT``: the annotation file is ``--task-arg annotations=NAME``
(a path inside ROOT) or else the only ``.json``/``.jsonl`` file in ROOT; images are in ``--task-arg
images=SUBDIR`` (inside ROOT), else ``ROOT/images`` when it exists, else ROOT.

**Adding another 2×2 set** is one registration in a plugin::

    from winoeval.tasks.winoformat import PairSpec
    SPEC = PairSpec(name="my-pairs", annotations=("my_pairs.json",), image_dirs=("images", ""),
                    how="download my_pairs.json and images.zip from https://…", licence="CC BY 4.0")
    @hookimpl
    def winoeval_register_tasks(register):
        register(SPEC.name, SPEC.loader, description="…", options={}, licence=SPEC.licence)

**EqBen** (Wang et al., ICCV 2023): the 10 % subset the authors publish with open labels
(``eqben_subset_10percent_final.json``, a JSON list of ``{image0, caption0, image1, caption1}``, and
``subset_image.tar.gz``; https://github.com/Wangt-CN/EqBen#eqben). ``--data-dir ROOT``: the JSON in
ROOT, the extracted images in ``ROOT/image_subset/`` (the tarball's folder), ``ROOT/images/`` or ROOT.
The subset is randomly sorted and carries no category, so results have no breakdown. The full
benchmark's scores come from the authors' server or their private annotation file; numbers on the
subset are not the paper's full-benchmark numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

from . import _local

META_KEYS = ("collapsed_tag", "tag", "secondary_tag", "num_main_preds")
KEYS = (("image_0", "image_1", "caption_0", "caption_1"), ("image0", "image1", "caption0", "caption1"))
EQBEN_LICENCE = "no licence stated by the authors (a research benchmark; check with them before redistributing)"
EQBEN_CITATION = ("Wang, Lin, Li, Lin, Yang, Zhang, Liu, Wang. Equivariant Similarity for Vision-Language Foundation "
                  "Models. ICCV 2023. arXiv:2303.14465")
EQBEN_SOURCE = ("https://storage.googleapis.com/eqben-data/eqben_subset/eqben_subset_10percent_final.json + "
                "subset_image.tar.gz (https://github.com/Wangt-CN/EqBen#eqben)")
GENERIC_OPTIONS = {"annotations": "the annotation file (JSON list or JSON lines) inside --data-dir",
                   "images": "the image folder inside --data-dir [images/ if present, else --data-dir]"}


@dataclass(frozen=True)
class PairSpec:
    """A 2×2 set in Winoground's format: where its files are and how to get them."""

    name: str
    annotations: tuple[str, ...] = ()  # candidate file names inside --data-dir; () = the only .json/.jsonl
    image_dirs: tuple[str, ...] = ("images", "")  # candidate image folders inside --data-dir, in order
    how: str = "put the annotation file and its images in one folder"
    url: str = ""
    licence: str = ""
    options: bool = False  # accept --task-arg annotations=/images=

    def loader(self, argument: str | None, config: Any):
        return load_pairs(self, argument, config)


def _annotation_file(spec: PairSpec, root: Path, task_args: dict) -> Path:
    if task_args.get("annotations"):
        path = (root / task_args["annotations"]).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            raise _local._unavailable(f"{spec.name}: --task-arg annotations={task_args['annotations']}: no such file "
                                      f"inside {root}")
        return path
    if spec.annotations:
        return _local.find_file(root, list(spec.annotations), spec.name, spec.url or spec.how)
    found = sorted(p for p in root.iterdir() if p.suffix.lower() in (".json", ".jsonl") and p.is_file())
    if len(found) != 1:
        listing = ", ".join(p.name for p in found) or "none"
        raise _local.config_error(f"{spec.name}: expected exactly one .json/.jsonl annotation file in {root} (found "
                                  f"{listing}); name it with --task-arg annotations=FILE")
    return found[0]


def _image_root(spec: PairSpec, root: Path, task_args: dict) -> Path:
    if task_args.get("images"):
        return _local.need_folder(root, task_args["images"], spec.name, "pass the folder holding the images")
    for sub in spec.image_dirs:
        if (root / sub).is_dir():
            return root / sub
    wanted = " or ".join(str(root / s) for s in spec.image_dirs)
    raise _local._unavailable(f"{spec.name}: no image folder ({wanted}); {spec.how}")


def _records(path: Path, task: str) -> list:
    if path.suffix.lower() == ".jsonl":
        return _local.read_jsonl(path, task)
    data = _local.read_json(path, task)
    if isinstance(data, dict):  # {id: record}
        return [{"id": k, **v} if isinstance(v, dict) else v for k, v in data.items()]
    if not isinstance(data, list):
        raise _local._unavailable(f"{task}: {path} holds a {type(data).__name__}, not a list of 2×2 records")
    return data


def _image_name(images: Path, name: str) -> str:
    """Winoground's ``examples.jsonl`` names images without an extension: ``ex_0_img_0`` → ``ex_0_img_0.png``."""
    if Path(name).suffix == "" and not (images / name).exists() and (images / f"{name}.png").exists():
        return f"{name}.png"
    return name


def load_pairs(spec: PairSpec, argument: str | None, config: Any):
    from winoeval.api import Example, TaskData
    from winoeval.tasks.winoground import secondary_tags

    if argument:
        raise _local.config_error(f"{spec.name} takes no ':argument' (got {argument!r})")
    task_args = dict(getattr(config, "task_args", None) or {})
    allowed = set(GENERIC_OPTIONS) if spec.options else set()
    if set(task_args) - allowed:
        raise _local.config_error(f"{spec.name} takes no --task-arg {', '.join(sorted(set(task_args) - allowed))}"
                                  + (f" (it takes {', '.join(sorted(allowed))})" if allowed else ""))
    root = _local.need_data_dir(config, spec.name, spec.how)
    path = _annotation_file(spec, root, task_args)
    images = _image_root(spec, root, task_args)
    rows, present = [], []
    for n, record in enumerate(_records(path, spec.name)):
        keys = next((k for k in KEYS if isinstance(record, dict) and all(x in record for x in k)), None)
        if keys is None:
            have = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
            raise _local._unavailable(f"{spec.name}: record {n} of {path.name} has neither image_0/image_1/caption_0/"
                                      f"caption_1 nor image0/image1/caption0/caption1 (it has {have})")
        i0, i1, c0, c1 = (record[k] for k in keys)
        meta = {k: record[k] for k in META_KEYS if k in record}
        if "secondary_tag" in meta:
            meta["secondary_tag"] = secondary_tags(meta["secondary_tag"])
        present += [k for k in meta if k not in present]
        eid = str(record["id"]) if record.get("id") is not None else str(n)
        rows.append((eid, [_image_name(images, str(i0)), _image_name(images, str(i1))], [c0, c1], meta))

    def examples() -> Iterator[Example]:
        for eid, names, texts, meta in rows:
            yield Example(id=eid, images=_local.lazy_images(images, names, ["image_0", "image_1"]), texts=texts,
                          meta=meta)

    return TaskData(name=spec.name, metric="winoground", examples=examples, size=len(rows),
                    defaults={"normalize": True}, breakdowns=[k for k in META_KEYS if k in present and k != "tag"],
                    fingerprint=_local.fingerprint(path))


GENERIC = PairSpec(name="winoground-format", how="pass --data-dir with the annotation file and an images/ folder",
                   options=True)
EQBEN = PairSpec(name="eqben", annotations=("eqben_subset_10percent_final.json",),
                 image_dirs=("image_subset", "images", ""),
                 how="download eqben_subset_10percent_final.json and subset_image.tar.gz "
                     "(https://github.com/Wangt-CN/EqBen#eqben) and extract the images next to it",
                 url="https://storage.googleapis.com/eqben-data/eqben_subset/eqben_subset_10percent_final.json",
                 licence=EQBEN_LICENCE)


@hookimpl
def winoeval_register_tasks(register):
    register(GENERIC.name, GENERIC.loader, options=dict(GENERIC_OPTIONS),
             description="any 2×2 set in Winoground's file format (JSON/JSONL + images; --data-dir): text/image/"
                         "group scores", licence="that of the data you point it at",
             source="README, 'Tasks': the generic Winoground-format loader")
    register(EQBEN.name, EQBEN.loader, options={},
             description="EqBen, the published 10 % subset (2×2, local files): text/image/group scores",
             licence=EQBEN_LICENCE, citation=EQBEN_CITATION, source=EQBEN_SOURCE, group="compositional")
