"""Zero-shot image classification: each image against one prompt per class ("a photo of a {}.").

One builder serves every dataset: a :class:`ZeroShotSpec` names the hub dataset, its split and
fields, the class names, the prompt template(s) and the scorer presets, and :func:`load_zeroshot`
turns it into a :class:`winoeval.api.TaskData`. Built in (presets: the official diffusion-classifier ones):

=========  =====================  =====  ==================  ==========================================
task       hub dataset            split  fields              prompt
=========  =====================  =====  ==================  ==========================================
pets       timm/oxford-iiit-pet   test   image, label (37)   "a photo of a {}, a type of pet."
cifar10    uoft-cs/cifar10        test   img, label (10)     "a photo of a {}."
=========  =====================  =====  ==================  ==========================================

Presets (``TaskData.defaults``; explicit ``--n-samples``/``--to-keep``/``--loss`` win): pets
``n_samples (25, 250), to_keep (5, 1), loss l1``; cifar10 ``n_samples (50, 500), to_keep (5, 1), loss l1``.

Class names: label ``k`` is the dataset's own class ``k``. When the label column is a ``ClassLabel``
its names fix the order; if they are the shipped names in another spelling (``american_bulldog``
for "American Bulldog") the shipped, readable names are used, otherwise the dataset's names with
``_`` as spaces. Without a ``ClassLabel`` the shipped list is used (labels may then also be the
class names as strings).

Options (``--task-arg KEY=VALUE``):

* ``templates=FILE`` — prompt templates: a text file (one per line; blank lines and ``#`` lines
  ignored) or a ``.json`` file (a string, a list, or ``{"templates": [...]}``). One template is used for every
  class and must contain ``{}``; otherwise there must be one per class (in label order; ``{}``
  optional). ``templates="a blurry photo of a {}."`` (no such file, contains ``{}``) is taken as
  the template itself.
* ``classes=FILE`` — class names in label order: a text file (one per line) or a ``.json`` file (a
  list, ``{"0": name, ...}`` or ``{"classes": [...]}``); exactly one per class.

Third-party plugins can reuse the builder: ``register(name, spec.loader, description=...)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from winoeval.hookspecs import hookimpl

PETS_CLASSES = (
    "Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal", "Birman",
    "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel",
    "English Setter", "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond",
    "Leonberger", "Maine Coon", "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug", "Ragdoll",
    "Russian Blue", "Saint Bernard", "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese", "Sphynx",
    "Staffordshire Bull Terrier", "Wheaten Terrier", "Yorkshire Terrier",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TASK_OPTIONS = {
    "templates": "FILE of prompt templates, one per line with {} (or a JSON list); replaces the paper's",
    "classes": "FILE of class names, one per line (or a JSON list), in label order",
}
TASK_ARGS = tuple(TASK_OPTIONS)


@dataclass(frozen=True, eq=False)
class ZeroShotSpec:
    """Everything that distinguishes one zero-shot classification task from another."""

    name: str
    repo_id: str
    split: str
    image_field: str
    label_field: str
    class_names: tuple[str, ...]  # in the dataset's label order; readable names used in prompts
    templates: tuple[str, ...]  # one for all classes, or one per class
    defaults: dict[str, Any] = field(default_factory=dict)
    what: str = ""  # the dataset's name in messages
    description: str = ""
    id_field: str | None = None  # a column kept in each example's meta (e.g. the image file id)
    gated: bool = False

    def loader(self, argument: str | None, config: Any):
        """The registry's ``loader(argument, config)``."""
        return load_zeroshot(self, config, argument)


SPECS: dict[str, ZeroShotSpec] = {
    spec.name: spec for spec in (
        ZeroShotSpec(
            name="pets", repo_id="timm/oxford-iiit-pet", split="test", image_field="image", label_field="label",
            class_names=PETS_CLASSES, templates=("a photo of a {}, a type of pet.",),
            defaults={"n_samples": (25, 250), "to_keep": (5, 1), "loss": "l1"}, what="Oxford-IIIT Pets",
            description="Oxford-IIIT Pets, 37 breeds, test split (3,669 images; timm/oxford-iiit-pet)",
            id_field="image_id"),
        ZeroShotSpec(
            name="cifar10", repo_id="uoft-cs/cifar10", split="test", image_field="img", label_field="label",
            class_names=CIFAR10_CLASSES, templates=("a photo of a {}.",),
            defaults={"n_samples": (50, 500), "to_keep": (5, 1), "loss": "l1"}, what="CIFAR-10",
            description="CIFAR-10, 10 classes, test split (10,000 images; uoft-cs/cifar10)"),
    )
}


def _config_error(message: str):
    from winoeval.config import ConfigError

    return ConfigError(message)


def normalise(name: str) -> str:
    """Spelling-insensitive key of a class name: lower case, ``_``/``-`` as spaces, single spaces."""
    return " ".join(re.split(r"[\s_\-]+", str(name).strip().lower()))


def fill(template: str, name: str) -> str:
    """``template`` with ``{}`` replaced by ``name`` (no other brace is interpreted)."""
    return template.replace("{}", name)


def _read_list(value: str, key: str, allow_inline: bool = False) -> list[str]:
    """Entries of a ``--task-arg KEY=FILE`` file: one per line, or JSON (string, list, dict)."""
    path = Path(value).expanduser()
    if not path.is_file():
        if allow_inline and "{}" in value:
            return [value]
        raise _config_error(f"--task-arg {key}={value}: no such file" +
                            (" (an inline template must contain '{}')" if allow_inline else ""))
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.strip()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _config_error(f"--task-arg {key}={value}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and key in data:
            data = data[key]
        if isinstance(data, str):
            data = [data]
        elif isinstance(data, dict):
            try:
                order = sorted(data, key=int)
            except ValueError:
                raise _config_error(f"--task-arg {key}={value}: a JSON object must map indices (0, 1, …) "
                                    f"to strings, or hold a list under {key!r}") from None
            if [int(k) for k in order] != list(range(len(order))):
                raise _config_error(f"--task-arg {key}={value}: class indices must be 0 … {len(order) - 1}")
            data = [data[k] for k in order]
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise _config_error(f"--task-arg {key}={value}: expected a list of strings")
        entries = [x.strip() for x in data]
    else:
        entries = [line.strip() for line in text.splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    if not entries or any(not e for e in entries):
        raise _config_error(f"--task-arg {key}={value}: empty entries")
    return entries


def resolve_class_names(spec: ZeroShotSpec, label_feature, override: Sequence[str] | None,
                        where: str) -> list[str]:
    """The class names in the dataset's label order (see the module docstring)."""
    dataset_names = list(getattr(label_feature, "names", None) or [])
    k = len(dataset_names) or len(spec.class_names)
    if override is not None:
        if len(override) != k:
            raise _config_error(f"--task-arg classes: {len(override)} class name(s) given, {spec.name} has {k} "
                                f"classes ({where})")
        return list(override)
    if not dataset_names:
        return list(spec.class_names)
    if [normalise(n) for n in dataset_names] == [normalise(n) for n in spec.class_names]:
        return list(spec.class_names)
    if len(dataset_names) != len(spec.class_names):
        import warnings

        warnings.warn(f"{spec.name}: {where} has {len(dataset_names)} classes, not the expected "
                      f"{len(spec.class_names)}; using its own class names", stacklevel=3)
    return [re.sub(r"_+", " ", n).strip() for n in dataset_names]


def resolve_texts(spec: ZeroShotSpec, class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """One candidate text per class."""
    k = len(class_names)
    if len(templates) == 1:
        if "{}" not in templates[0]:
            raise _config_error(f"template {templates[0]!r} has no '{{}}' for the class name")
        texts = [fill(templates[0], n) for n in class_names]
    elif len(templates) == k:
        texts = [fill(t, n) for t, n in zip(templates, class_names)]
    else:
        raise _config_error(f"--task-arg templates: {len(templates)} templates given; {spec.name} needs one "
                            f"template for all classes or exactly one per class ({k})")
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text in seen:
            raise _config_error(f"classes {seen[text]} and {i} get the same prompt {text!r}; every class needs "
                                f"its own")
        seen[text] = i
    return texts


def _labels(ds, spec: ZeroShotSpec, class_names: Sequence[str], where: str) -> list[int]:
    """Every row's label index, checked against the class count (string labels are looked up)."""
    raw = list(ds[spec.label_field])
    k = len(class_names)
    if raw and all(isinstance(v, str) for v in raw):
        index = {normalise(n): i for i, n in enumerate(class_names)}
        index.update({normalise(n): i for i, n in enumerate(spec.class_names) if len(spec.class_names) == k})
        unknown = sorted({v for v in raw if normalise(v) not in index})
        if unknown:
            raise _config_error(f"{where}: label(s) {', '.join(map(repr, unknown[:5]))} are not among the "
                                f"{k} class names")
        return [index[normalise(v)] for v in raw]
    bad = sorted({v for v in raw if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < k},
                 key=repr)
    if bad:
        raise _config_error(f"{where}: label(s) {', '.join(map(repr, bad[:5]))} outside 0 … {k - 1} "
                            f"({k} classes)")
    return raw


def _column(ds, preferred: str, kind: str, where: str) -> str:
    """``preferred`` if the dataset has it, else its only column of ``kind`` ("Image" / "ClassLabel")."""
    if preferred in ds.column_names:
        return preferred
    matches = [c for c, f in ds.features.items() if type(f).__name__ == kind]
    if len(matches) == 1:
        return matches[0]
    raise _config_error(f"{where} has no column {preferred!r} (it has {', '.join(ds.column_names)})")


def load_zeroshot(spec: ZeroShotSpec, config: Any, argument: str | None = None):
    """Build the TaskData of ``spec`` (data from the hub or ``config.data_dir``)."""
    from dataclasses import replace

    from winoeval.api import Example, TaskData
    from winoeval.hub import load_hf_dataset
    from winoeval.localdata import data_fingerprint, open_image, undecoded

    if argument:
        raise _config_error(f"{spec.name} takes no ':argument' (got {argument!r})")
    task_args = dict(getattr(config, "task_args", None) or {})
    unknown = sorted(set(task_args) - set(TASK_ARGS))
    if unknown:
        raise _config_error(f"unknown --task-arg {', '.join(unknown)} for {spec.name}; it takes "
                            f"{', '.join(k + '=FILE' for k in TASK_ARGS)}")
    # read the option files before any data loads, so a typo fails at once
    templates = _read_list(task_args["templates"], "templates", allow_inline=True) if "templates" in task_args \
        else list(spec.templates)
    classes = _read_list(task_args["classes"], "classes") if "classes" in task_args else None

    data_dir = getattr(config, "data_dir", None)
    where = repr(data_dir) if data_dir else spec.repo_id
    ds = load_hf_dataset(spec.repo_id, spec.split, data_dir=data_dir, gated=spec.gated, what=spec.what or spec.name)
    image_field = _column(ds, spec.image_field, "Image", where)
    label_field = _column(ds, spec.label_field, "ClassLabel", where)
    spec = replace(spec, image_field=image_field, label_field=label_field)
    class_names = resolve_class_names(spec, ds.features.get(label_field), classes, where)
    texts = resolve_texts(spec, class_names, templates)
    labels = _labels(ds, spec, class_names, where)
    id_field = spec.id_field if spec.id_field in ds.column_names else None
    ds, features = undecoded(ds.select_columns([c for c in (image_field, id_field) if c]), [image_field])
    feature = features[image_field]

    def examples() -> Iterator[Example]:
        for index, (row, label) in enumerate(zip(ds, labels)):
            value = row[image_field]
            meta = {id_field: row[id_field]} if id_field else {}
            yield Example(id=str(index), images=lambda value=value: [open_image(value, feature, image_field, root=data_dir)],
                          texts=texts, label=label, meta=meta)

    return TaskData(name=spec.name, metric="classification", examples=examples, size=len(ds), texts=list(texts),
                    class_names=list(class_names), defaults=dict(spec.defaults),
                    fingerprint=data_fingerprint(ds, data_dir))


@hookimpl
def winoeval_register_tasks(register):
    for spec in SPECS.values():
        register(spec.name, spec.loader, description=spec.description, options=dict(TASK_OPTIONS))
