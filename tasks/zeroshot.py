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

The original protocol's other sets (its ``commands.md`` and ``prompts/*.csv``), read from their published
files with ``--data-dir`` (the folder torchvision would download into; readers in ``tasks/_classic.py``):

==========  =============================================  =====================================  =========
task        files under --data-dir                         prompt                                 preset
==========  =============================================  =====================================  =========
food101     food-101/meta/test.json, food-101/images/      "a photo of {}, a type of food."       A, l2
cifar100    cifar-100-python/test, meta                    "a blurry photo of a {}."              none
aircraft    fgvc-aircraft-2013b/data/ (variant level)      "a photo of a {}, a type of aircraft."  A, l2
flowers102  flowers-102/ (jpg/, imagelabels.mat, setid)    "a photo of a {}, a type of flower."    A, l1
stl10       stl10_binary/test_X.bin, test_y.bin            "a photo of a {}."                      B, l1
==========  =============================================  =====================================  =========

A: ``n_samples (20, 50, 100, 500), to_keep (20, 10, 5, 1)``; B: ``n_samples (100, 500), to_keep (5, 1)``. The
original gives no command for CIFAR-100 (only its "blurry" prompt file), so cifar100 has no preset.

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
# The original protocol's sets (its prompts/*.csv list the same names in the same order; "_" read as spaces).
FOOD101_CLASSES = tuple(n.replace("_", " ") for n in """
apple_pie baby_back_ribs baklava beef_carpaccio beef_tartare beet_salad beignets bibimbap bread_pudding
breakfast_burrito bruschetta caesar_salad cannoli caprese_salad carrot_cake ceviche cheese_plate cheesecake
chicken_curry chicken_quesadilla chicken_wings chocolate_cake chocolate_mousse churros clam_chowder club_sandwich
crab_cakes creme_brulee croque_madame cup_cakes deviled_eggs donuts dumplings edamame eggs_benedict escargots
falafel filet_mignon fish_and_chips foie_gras french_fries french_onion_soup french_toast fried_calamari fried_rice
frozen_yogurt garlic_bread gnocchi greek_salad grilled_cheese_sandwich grilled_salmon guacamole gyoza hamburger
hot_and_sour_soup hot_dog huevos_rancheros hummus ice_cream lasagna lobster_bisque lobster_roll_sandwich
macaroni_and_cheese macarons miso_soup mussels nachos omelette onion_rings oysters pad_thai paella pancakes
panna_cotta peking_duck pho pizza pork_chop poutine prime_rib pulled_pork_sandwich ramen ravioli red_velvet_cake
risotto samosa sashimi scallops seaweed_salad shrimp_and_grits spaghetti_bolognese spaghetti_carbonara spring_rolls
steak strawberry_shortcake sushi tacos takoyaki tiramisu tuna_tartare waffles""".split())
CIFAR100_CLASSES = tuple(n.replace("_", " ") for n in """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle
wardrobe whale willow_tree wolf woman worm""".split())
AIRCRAFT_CLASSES = tuple(n.strip() for n in """
707-320|727-200|737-200|737-300|737-400|737-500|737-600|737-700|737-800|737-900|747-100|747-200|747-300|747-400|
757-200|757-300|767-200|767-300|767-400|777-200|777-300|A300B4|A310|A318|A319|A320|A321|A330-200|A330-300|A340-200|
A340-300|A340-500|A340-600|A380|ATR-42|ATR-72|An-12|BAE 146-200|BAE 146-300|BAE-125|Beechcraft 1900|Boeing 717|
C-130|C-47|CRJ-200|CRJ-700|CRJ-900|Cessna 172|Cessna 208|Cessna 525|Cessna 560|Challenger 600|DC-10|DC-3|DC-6|
DC-8|DC-9-30|DH-82|DHC-1|DHC-6|DHC-8-100|DHC-8-300|DR-400|Dornier 328|E-170|E-190|E-195|EMB-120|ERJ 135|ERJ 145|
Embraer Legacy 600|Eurofighter Typhoon|F-16A/B|F/A-18|Falcon 2000|Falcon 900|Fokker 100|Fokker 50|Fokker 70|
Global Express|Gulfstream IV|Gulfstream V|Hawk T1|Il-76|L-1011|MD-11|MD-80|MD-87|MD-90|Metroliner|Model B200|PA-28|
SR-20|Saab 2000|Saab 340|Spitfire|Tornado|Tu-134|Tu-154|Yak-42""".split("|"))
FLOWERS102_CLASSES = tuple(n.strip() for n in """
pink primrose|hard-leaved pocket orchid|canterbury bells|sweet pea|english marigold|tiger lily|moon orchid|
bird of paradise|monkshood|globe thistle|snapdragon|colt's foot|king protea|spear thistle|yellow iris|globe flower|
purple coneflower|peruvian lily|balloon flower|giant white arum lily|fire lily|pincushion flower|fritillary|
red ginger|grape hyacinth|corn poppy|prince of wales feathers|stemless gentian|artichoke|sweet william|carnation|
garden phlox|love in the mist|mexican aster|alpine sea holly|ruby-lipped cattleya|cape flower|great masterwort|
siam tulip|lenten rose|barbeton daisy|daffodil|sword lily|poinsettia|bolero deep blue|wallflower|marigold|buttercup|
oxeye daisy|common dandelion|petunia|wild pansy|primula|sunflower|pelargonium|bishop of llandaff|gaura|geranium|
orange dahlia|pink and yellow dahlia|cautleya spicata|japanese anemone|black-eyed susan|silverbush|
californian poppy|osteospermum|spring crocus|bearded iris|windflower|tree poppy|gazania|azalea|water lily|rose|
thorn apple|morning glory|passion flower|lotus|toad lily|anthurium|frangipani|clematis|hibiscus|columbine|
desert-rose|tree mallow|magnolia|cyclamen|watercress|canna lily|hippeastrum|bee balm|air plant|foxglove|
bougainvillea|camellia|mallow|mexican petunia|bromelia|blanket flower|trumpet creeper|blackberry lily""".split("|"))
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
ADAPTIVE_FINE = {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1)}  # the original's 4-stage schedule
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
    reader: str | None = None  # a reader of the published files in tasks/_classic.py (then --data-dir is needed)
    licence: str = ""
    citation: str = ""
    source: str = ""

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
            id_field="image_id", licence="CC BY-SA 4.0",
            citation="Parkhi, Vedaldi, Zisserman, Jawahar. Cats and Dogs. CVPR 2012",
            source="https://huggingface.co/datasets/timm/oxford-iiit-pet"),
        ZeroShotSpec(
            name="cifar10", repo_id="uoft-cs/cifar10", split="test", image_field="img", label_field="label",
            class_names=CIFAR10_CLASSES, templates=("a photo of a {}.",),
            defaults={"n_samples": (50, 500), "to_keep": (5, 1), "loss": "l1"}, what="CIFAR-10",
            description="CIFAR-10, 10 classes, test split (10,000 images; uoft-cs/cifar10)",
            licence="no licence stated (free for research, per the dataset page)",
            citation="Krizhevsky. Learning Multiple Layers of Features from Tiny Images. 2009",
            source="https://huggingface.co/datasets/uoft-cs/cifar10"),
        ZeroShotSpec(
            name="food101", repo_id="", split="test", image_field="", label_field="", class_names=FOOD101_CLASSES,
            templates=("a photo of {}, a type of food.",), defaults=dict(ADAPTIVE_FINE), what="Food-101",
            description="Food-101, 101 dishes, test split (25,250 images; local copy of the published files)",
            reader="food101", licence="research use (images from foodspotting.com; see the dataset page)",
            citation="Bossard, Guillaumin, Van Gool. Food-101 – Mining Discriminative Components with Random "
                     "Forests. ECCV 2014",
            source="http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"),
        ZeroShotSpec(
            name="cifar100", repo_id="", split="test", image_field="", label_field="", class_names=CIFAR100_CLASSES,
            templates=("a blurry photo of a {}.",), what="CIFAR-100",
            description="CIFAR-100, 100 classes, test split (10,000 images; local copy of the published files)",
            reader="cifar100", licence="no licence stated (free for research, per the dataset page)",
            citation="Krizhevsky. Learning Multiple Layers of Features from Tiny Images. 2009",
            source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
        ZeroShotSpec(
            name="aircraft", repo_id="", split="test", image_field="", label_field="", class_names=AIRCRAFT_CLASSES,
            templates=("a photo of a {}, a type of aircraft.",), defaults=dict(ADAPTIVE_FINE), what="FGVC-Aircraft",
            description="FGVC-Aircraft 2013b, 100 variants, test split (3,333 images; local copy of the published "
                        "files)",
            reader="aircraft", licence="non-commercial research only (the dataset page's terms)",
            citation="Maji, Rahtu, Kannala, Blaschko, Vedaldi. Fine-Grained Visual Classification of Aircraft. "
                     "arXiv:1306.5151, 2013",
            source="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"),
        ZeroShotSpec(
            name="flowers102", repo_id="", split="test", image_field="", label_field="",
            class_names=FLOWERS102_CLASSES, templates=("a photo of a {}, a type of flower.",),
            defaults={**ADAPTIVE_FINE, "loss": "l1"}, what="Oxford Flowers-102",
            description="Oxford Flowers-102, 102 species, test split (6,149 images; local copy of the published "
                        "files)",
            reader="flowers102", licence="no licence stated (research use, per the dataset page)",
            citation="Nilsback, Zisserman. Automated Flower Classification over a Large Number of Classes. "
                     "ICVGIP 2008",
            source="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat, setid.mat)"),
        ZeroShotSpec(
            name="stl10", repo_id="", split="test", image_field="", label_field="", class_names=STL10_CLASSES,
            templates=("a photo of a {}.",), defaults={"n_samples": (100, 500), "to_keep": (5, 1), "loss": "l1"},
            what="STL-10", reader="stl10",
            description="STL-10, 10 classes, test split (8,000 images; local copy of the published files)",
            licence="no licence stated (research use; images from ImageNet)",
            citation="Coates, Lee, Ng. An Analysis of Single-Layer Networks in Unsupervised Feature Learning. "
                     "AISTATS 2011",
            source="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
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

    if spec.reader:
        return _load_published(spec, config, templates, classes)
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
            yield Example(id=str(index),
                          images=lambda value=value: [open_image(value, feature, image_field, root=data_dir)],
                          texts=texts, label=label, meta=meta)

    return TaskData(name=spec.name, metric="classification", examples=examples, size=len(ds), texts=list(texts),
                    class_names=list(class_names), defaults=dict(spec.defaults),
                    fingerprint=data_fingerprint(ds, data_dir))


def _load_published(spec: ZeroShotSpec, config: Any, templates: Sequence[str], classes: Sequence[str] | None):
    """A set read from its published files (``tasks/_classic.py``); the files' own class names, when they have
    them, must be the shipped ones in the same order (a different order would mislabel every prompt)."""
    from winoeval.api import Example, TaskData

    from . import _classic, _local

    root = _local.need_data_dir(config, spec.name, f"download {spec.source} and extract it into a folder")
    rows, names = _classic.READERS[spec.reader](root)
    if names is not None and [normalise(n) for n in names] != [normalise(n) for n in spec.class_names]:
        raise _local._unavailable(f"{spec.name}: the class names in {root} are not the {len(spec.class_names)} "
                                  f"expected ones in order (first: {names[:3]}); is this the published dataset?")
    class_names = list(classes) if classes is not None else list(spec.class_names)
    if len(class_names) != len(spec.class_names):
        raise _config_error(f"--task-arg classes: {len(class_names)} class name(s) given, {spec.name} has "
                            f"{len(spec.class_names)} classes")
    texts = resolve_texts(spec, class_names, templates)
    bad = sorted({label for _, _, label in rows if not 0 <= label < len(texts)})
    if bad:
        raise _local._unavailable(f"{spec.name}: label(s) {bad[:5]} outside 0 … {len(texts) - 1} in {root}")

    def examples() -> Iterator[Example]:
        for eid, image, label in rows:
            yield Example(id=eid, images=lambda image=image: [image()], texts=texts, label=label)

    return TaskData(name=spec.name, metric="classification", examples=examples, size=len(rows), texts=list(texts),
                    class_names=class_names, defaults=dict(spec.defaults))


@hookimpl
def winoeval_register_tasks(register):
    for spec in SPECS.values():
        extras = {k: getattr(spec, k) for k in ("licence", "citation", "source") if getattr(spec, k)}
        register(spec.name, spec.loader, description=spec.description, options=dict(TASK_OPTIONS), group="zeroshot",
                 **extras)
