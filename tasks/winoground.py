"""Winoground (Thrush et al., CVPR 2022): 400 pairs of images and captions made of the same words.

Data: ``facebook/winoground``, split ``test`` (gated: accept the licence on the hub and run
``huggingface-cli login``, or pass ``--data-dir`` with a local copy — a ``save_to_disk`` folder, a
folder of parquet files or a hub snapshot; see README, "Offline data"). Fields: ``id``,
``image_0``, ``image_1``, ``caption_0``, ``caption_1``, ``tag``, ``secondary_tag``,
``num_main_preds``, ``collapsed_tag`` (Object 141, Relation 233, Both 26).

Usage: ``winoground`` (all 400) or one collapsed tag, ``winoground:object``, ``winoground:relation``,
``winoground:both`` (case-insensitive).

Each example scores both images against both captions (a 2×2 matrix, rows = images). Results give
the text, image and group scores overall and broken down by ``collapsed_tag``, ``num_main_preds``
and each secondary tag (``secondary_tag`` is split into a list of tags; an example without one has
an empty list and is in no secondary-tag group).

Scoring with diffusion models: image and group scores use the **unconditional normalisation** by
default — score(x, c) = −(err(x, c) − err(x, ∅)), with the same (t, ε) draws for both images of a
pair — because raw denoising errors of two different images are not comparable (one image is a
priori easier to denoise). ``--no-normalize`` switches it off (the official code's raw errors).
Text scores are unaffected either way: both captions of one image share the subtracted term.
Direct matchers (CLIP) ignore the setting.

Images are decoded lazily, one example at a time, when the runner scores it; an unreadable or
missing image stops the run with an error naming the example id, or with ``--skip-bad`` is
skipped and counted (``skipped`` in the results).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

REPO_ID = "facebook/winoground"
SPLIT = "test"
WHAT = "Winoground"
SUBSETS = {"object": "Object", "relation": "Relation", "both": "Both"}
BREAKDOWNS = ["collapsed_tag", "num_main_preds", "secondary_tag"]
COLUMNS = ("id", "image_0", "image_1", "caption_0", "caption_1", "tag", "secondary_tag", "num_main_preds",
           "collapsed_tag")
IMAGE_COLUMNS = ("image_0", "image_1")


def parse_subset(argument: str | None) -> str | None:
    """``None``/``""``/``all`` → None (everything); ``object|relation|both`` (any case) → the tag value."""
    if argument is None or argument.strip().lower() in ("", "all"):
        return None
    key = argument.strip().lower()
    if key not in SUBSETS:
        from winoeval.config import ConfigError

        raise ConfigError(f"unknown Winoground subset {argument!r}; valid subsets: "
                          f"{', '.join(SUBSETS)} (e.g. winoground:relation), or none for all 400 examples")
    return SUBSETS[key]


def secondary_tags(value: Any) -> list[str]:
    """``secondary_tag`` as a list: ``""``/None → ``[]``; ``"Symbolic"`` → ``["Symbolic"]``; several tags
    separated by commas, semicolons or spaces → each of them."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [t for t in re.split(r"[,;\s]+", str(value)) if t]


def _check_columns(ds, where: str) -> None:
    missing = [c for c in COLUMNS if c not in ds.column_names]
    if missing:
        from winoeval.config import ConfigError

        raise ConfigError(f"{where} does not look like Winoground: no column(s) {', '.join(missing)} "
                          f"(it has {', '.join(ds.column_names)})")


def _images(row: dict, features: dict, root=None):
    """A zero-argument callable that decodes the pair (the runner calls it inside its guard)."""
    from winoeval.localdata import open_image

    values = [row[c] for c in IMAGE_COLUMNS]

    def images() -> list:
        return [open_image(v, features[c], name=c, root=root) for v, c in zip(values, IMAGE_COLUMNS)]

    return images


def load(argument: str | None, config: Any):
    """``winoground`` / ``winoground:object|relation|both`` → TaskData (see the module docstring)."""
    from winoeval.api import Example, TaskData
    from winoeval.config import ConfigError
    from winoeval.hub import load_hf_dataset
    from winoeval.localdata import data_fingerprint, undecoded

    subset = parse_subset(argument)
    task_args = dict(getattr(config, "task_args", None) or {})
    if task_args:
        raise ConfigError(f"winoground takes no --task-arg (got {', '.join(sorted(task_args))})")
    data_dir = getattr(config, "data_dir", None)
    ds = load_hf_dataset(REPO_ID, SPLIT, data_dir=data_dir, gated=True, what=WHAT)
    _check_columns(ds, repr(data_dir) if data_dir else REPO_ID)
    ds, features = undecoded(ds, IMAGE_COLUMNS)
    if subset is not None:
        tags = [str(t).strip().lower() for t in ds["collapsed_tag"]]
        keep = [i for i, t in enumerate(tags) if t == subset.lower()]
        if not keep:
            found = sorted({t for t in tags})
            raise ConfigError(f"no Winoground examples with collapsed_tag {subset!r} in the data "
                              f"(collapsed tags found: {', '.join(found) or 'none'})")
        ds = ds.select(keep)

    def examples() -> Iterator[Example]:
        for index, row in enumerate(ds):
            eid = str(row["id"]) if row["id"] is not None else f"row-{index}"
            meta = {
                "collapsed_tag": row["collapsed_tag"],
                "num_main_preds": int(row["num_main_preds"]) if row["num_main_preds"] is not None else None,
                "secondary_tag": secondary_tags(row["secondary_tag"]),
                "tag": row["tag"],
            }
            yield Example(id=eid, images=_images(row, features, data_dir), texts=[row["caption_0"], row["caption_1"]],
                          meta=meta)

    name = "winoground" + (f":{subset.lower()}" if subset else "")
    return TaskData(name=name, metric="winoground", examples=examples, size=len(ds),
                    defaults={"normalize": True}, breakdowns=list(BREAKDOWNS),
                    fingerprint=data_fingerprint(ds, data_dir))


@hookimpl
def winoeval_register_tasks(register):
    register("winoground", load, takes_argument=True, options={},
             description="Winoground (facebook/winoground, gated; 400 pairs): text/image/group scores; "
                         "winoground:object|relation|both for one collapsed tag",
             licence="research use only (gated on the hub: accept its licence)",
             citation="Thrush, Jiang, Bartolo, Singh, Williams, Kiela, Ross. Winoground: Probing Vision and "
                      "Language Models for Visio-Linguistic Compositionality. CVPR 2022. arXiv:2204.03162",
             source="https://huggingface.co/datasets/facebook/winoground (gated)", group="compositional")
