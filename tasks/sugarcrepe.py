"""SugarCrepe (Hsieh et al., NeurIPS 2023 Datasets and Benchmarks): one COCO image, its caption and a
hard negative; the model must prefer the caption.

Published files (https://github.com/RAIVNLab/sugar-crepe, folder ``data/``, MIT licence): seven JSON
files, one per subset — ``replace_obj``, ``replace_att``, ``replace_rel``, ``swap_obj``, ``swap_att``,
``add_obj``, ``add_att`` — each a dict ``{"0": {"filename", "caption", "negative_caption"}, ...}``
over COCO val2017 images. Older copies of the repository name the object files ``*_ent.json``; both
names are read.

Local layout (``--data-dir ROOT``): the seven JSON files in ``ROOT`` or ``ROOT/data`` (a clone of the
repository works), and the COCO val2017 images in ``ROOT/val2017/`` (unzip
http://images.cocodataset.org/zips/val2017.zip there, or make it a symlink to an existing copy).

Usage: ``sugarcrepe`` (every pair, results broken down by subset) or one or more subsets,
``sugarcrepe:swap-att``, ``sugarcrepe:replace-obj,replace-att`` (``_`` or ``-``).

Results are broken down by subset and by kind (replace, swap, add), as the paper's tables group them.

Metric ``choice``: texts = [caption, negative caption], label 0; correct when the caption scores
strictly higher (the original ``main_eval.py`` counts a tie as wrong too). Per-subset accuracy is what
the paper's tables report; the diffusion scorer shares (t, ε) between the two captions of an image.
"""

from __future__ import annotations

from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

from . import _local

SUBSETS = {  # our name → the file stems it may have
    "replace-obj": ("replace_obj", "replace_ent"), "replace-att": ("replace_att",), "replace-rel": ("replace_rel",),
    "swap-obj": ("swap_obj", "swap_ent"), "swap-att": ("swap_att",), "add-obj": ("add_obj", "add_ent"),
    "add-att": ("add_att",),
}
REPO = "https://github.com/RAIVNLab/sugar-crepe/tree/main/data"
LICENCE = "MIT (annotations); images: COCO val2017 (Flickr terms of use)"
CITATION = ("Hsieh, Zhang, Ma, Kembhavi, Krishna. SugarCrepe: Fixing Hackable Benchmarks for Vision-Language "
            "Compositionality. NeurIPS 2023 Datasets and Benchmarks. arXiv:2306.14610")
SOURCE = f"{REPO} (7 JSON files) + http://images.cocodataset.org/zips/val2017.zip"


def load(argument: str | None, config: Any):
    from winoeval.api import Example, TaskData

    subsets = _local.parse_choice(argument, SUBSETS, "sugarcrepe", "sugarcrepe:swap-att")
    if getattr(config, "task_args", None):
        raise _local.config_error(f"sugarcrepe takes no --task-arg (got {', '.join(sorted(config.task_args))})")
    root = _local.need_data_dir(config, "sugarcrepe", f"clone {REPO.split('/tree')[0]} (its data/ folder) and "
                                                      f"unzip COCO val2017 into DIR/val2017")
    files = {s: _local.find_file(root, [f"{stem}.json" for stem in SUBSETS[s]], "sugarcrepe", f"{REPO}/"
                                 f"{SUBSETS[s][0]}.json", subdirs=("", "data")) for s in subsets}
    images = _local.need_folder(root, "val2017", "sugarcrepe", "unzip http://images.cocodataset.org/zips/val2017.zip "
                                                              "there (or symlink an existing COCO val2017 folder)")
    rows = []
    for subset, path in files.items():
        data = _local.read_json(path, "sugarcrepe")
        if not isinstance(data, dict):
            raise _local._unavailable(f"sugarcrepe: {path} is a {type(data).__name__}, not the published "
                                      f"{{index: {{filename, caption, negative_caption}}}} object")
        for key, item in data.items():
            where = f"{path.name} entry {key!r}"
            rows.append((f"{subset}/{key}", subset, _local.field(item, "filename", where, "sugarcrepe"),
                         _local.field(item, "caption", where, "sugarcrepe"),
                         _local.field(item, "negative_caption", where, "sugarcrepe")))

    def examples() -> Iterator[Example]:
        for eid, subset, filename, caption, negative in rows:
            yield Example(id=eid, images=_local.lazy_images(images, [filename], ["image"]), texts=[caption, negative],
                          label=0, meta={"subset": subset, "kind": subset.split("-")[0], "filename": filename})

    return TaskData(name="sugarcrepe", metric="choice", examples=examples, size=len(rows),
                    breakdowns=["subset", "kind"],
                    fingerprint=_local.fingerprint(*files.values()))


@hookimpl
def winoeval_register_tasks(register):
    register("sugarcrepe", load, takes_argument=True, options={},
             description="SugarCrepe (7 subsets, COCO val2017; local files): caption vs hard negative, accuracy; "
                         "sugarcrepe:swap-att etc.", licence=LICENCE, citation=CITATION, source=SOURCE,
             group="compositional")
