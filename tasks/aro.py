"""ARO (Yuksekgonul et al., ICLR 2023, "When and why vision-language models behave like bags-of-words"):
four 1×K choice sets, one task each — ``aro:vg-relation``, ``aro:vg-attribution``, ``aro:coco-order``,
``aro:flickr-order`` (``aro`` alone is refused: the four are scored differently).

Published files (https://github.com/mertyg/vision-language-models-are-bows, ``dataset_zoo/aro_datasets.py``):

* **VG-Relation**: ``visual_genome_relation.json`` — a list of ``{image_path, bbox_x, bbox_y, bbox_w, bbox_h,
  relation_name, true_caption, false_caption, ...}``; images in ``images/`` (the ``vgr_vga_images.zip``
  of the repository's README). The image is cropped to the box, as the original does. Texts are
  ``[false_caption, true_caption]`` and the label is 1, in the original's order. Besides accuracy the
  results give the paper's **macro accuracy**: the mean over relations of the per-relation accuracy,
  leaving out the symmetric relations the repository's notebook lists (``SYMMETRIC_RELATIONS``).
* **VG-Attribution**: ``visual_genome_attribution.json`` — the same fields with ``attributes: [a, b]``
  instead of ``relation_name``; macro accuracy over the ``a_b`` attribute pairs that have at least 25
  examples (the original's ``evaluate_scores``).
* **COCO-Order** / **Flickr30k-Order**: the Karpathy test splits ``coco_karpathy_test.json`` /
  ``flickr30k_test.json`` (``[{image, caption: [5 captions]}]``, from
  https://storage.googleapis.com/sfr-vision-language-research/datasets/); every caption is one example:
  the caption and four re-orderings of it — nouns and adjectives shuffled, everything but nouns and
  adjectives shuffled, words shuffled within trigrams, trigrams shuffled — all passed through BLIP's
  ``pre_caption`` (lower case, ``.!"()*#:;~`` removed, 30 words at most); label 0. Images: COCO
  ``val2014/`` (the Karpathy test images) under the data folder, Flickr30k ``flickr30k-images/``.
  The two part-of-speech shuffles need spaCy with ``en_core_web_sm``; the original draws the
  permutations unseeded at load time, winoeval draws them from (example id) so a run is reproducible —
  its numbers match the paper's protocol in distribution, not caption for caption.

Local layout (``--data-dir ROOT``): the JSON file(s) in ``ROOT``, images as above under ``ROOT``.

The ``compositional`` task group holds VG-Relation and VG-Attribution; the two Order sets need spaCy,
COCO 2014 and a Flickr30k sign-up, so they join a run by name (``-t compositional,aro:coco-order``)
or through a suite file.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Callable, Iterator

from winoeval.hookspecs import hookimpl

from . import _local

REPO = "https://github.com/mertyg/vision-language-models-are-bows"
KARPATHY = "https://storage.googleapis.com/sfr-vision-language-research/datasets"
LICENCE = ("MIT (the repository); images: Visual Genome CC BY 4.0, COCO (Flickr terms), Flickr30k "
           "(non-commercial research, sign-up)")
CITATION = ("Yuksekgonul, Bianchi, Kalluri, Jurafsky, Zou. When and Why Vision-Language Models Behave like "
            "Bags-Of-Words, and What to Do About It? ICLR 2023. arXiv:2210.01936")
SOURCE = f"{REPO} (README: VG-R/VG-A JSON + vgr_vga_images.zip; Karpathy test JSONs)"

# The relations the repository's "Replicate ARO!" notebook leaves out of VG-Relation's macro accuracy.
SYMMETRIC_RELATIONS = (
    "adjusting", "attached to", "between", "bigger than", "biting", "boarding", "brushing", "chewing", "cleaning",
    "climbing", "close to", "coming from", "coming out of", "contain", "crossing", "dragging", "draped over",
    "drinking", "drinking from", "driving", "driving down", "driving on", "eating from", "eating in", "enclosing",
    "exiting", "facing", "filled with", "floating in", "floating on", "flying", "flying above", "flying in",
    "flying over", "flying through", "full of", "going down", "going into", "going through", "grazing in",
    "growing in", "growing on", "guiding", "hanging from", "hanging in", "hanging off", "hanging over",
    "higher than", "holding onto", "hugging", "in between", "jumping off", "jumping on", "jumping over", "kept in",
    "larger than", "leading", "leaning over", "leaving", "licking", "longer than", "looking in", "looking into",
    "looking out", "looking over", "looking through", "lying next to", "lying on top of", "making", "mixed with",
    "mounted on", "moving", "on the back of", "on the edge of", "on the front of", "on the other side of",
    "opening", "painted on", "parked at", "parked beside", "parked by", "parked in", "parked in front of",
    "parked near", "parked next to", "perched on", "petting", "piled on", "playing", "playing in", "playing on",
    "playing with", "pouring", "reaching for", "reading", "reflected on", "riding on", "running in", "running on",
    "running through", "seen through", "sitting behind", "sitting beside", "sitting by", "sitting in front of",
    "sitting near", "sitting next to", "sitting under", "skiing down", "skiing on", "sleeping in", "sleeping on",
    "smiling at", "sniffing", "splashing", "sprinkled on", "stacked on", "standing against", "standing around",
    "standing behind", "standing beside", "standing in front of", "standing near", "standing next to",
    "staring at", "stuck in", "surrounding", "swimming in", "swinging", "talking to", "topped with", "touching",
    "traveling down", "traveling on", "tying", "typing on", "underneath", "wading in", "waiting for",
    "walking across", "walking by", "walking down", "walking next to", "walking through", "working in",
    "working on", "worn on", "wrapped around", "wrapped in", "by", "of", "near", "next to", "with", "beside",
    "on the side of", "around",
)
ATTRIBUTE_MIN_COUNT = 25
MAX_WORDS = 30
SUBSETS = {"vg-relation": "VG-Relation", "vg-attribution": "VG-Attribution", "coco-order": "COCO-Order",
           "flickr-order": "Flickr30k-Order"}
NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}
ADJ_TAGS = {"JJ", "JJR", "JJS"}


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """BLIP's caption normalisation, as ARO applies it to every Order caption."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


def _tokens(text: str) -> list[str]:
    """Words and punctuation marks (what the trigram shuffles permute)."""
    return re.findall(r"\w+(?:'\w+)?|[^\w\s]", text)


def _trigrams(tokens: list[str]) -> list[list[str]]:
    return [tokens[i:i + 3] for i in range(0, len(tokens), 3)]


def shuffle_within_trigrams(text: str, rng: random.Random) -> str:
    groups = _trigrams(_tokens(text))
    for g in groups:
        rng.shuffle(g)
    return " ".join(" ".join(g) for g in groups)


def shuffle_trigrams(text: str, rng: random.Random) -> str:
    groups = _trigrams(_tokens(text))
    rng.shuffle(groups)
    return " ".join(" ".join(g) for g in groups)


def _shuffle_positions(tokens: list[str], positions: list[int], rng: random.Random) -> None:
    values = [tokens[i] for i in positions]
    rng.shuffle(values)
    for i, v in zip(positions, values):
        tokens[i] = v


def shuffle_nouns_and_adj(tagged: list[tuple[str, str]], rng: random.Random) -> str:
    tokens = [t for t, _ in tagged]
    _shuffle_positions(tokens, [i for i, (_, tag) in enumerate(tagged) if tag in NOUN_TAGS], rng)
    _shuffle_positions(tokens, [i for i, (_, tag) in enumerate(tagged) if tag in ADJ_TAGS], rng)
    return " ".join(tokens)


def shuffle_allbut_nouns_and_adj(tagged: list[tuple[str, str]], rng: random.Random) -> str:
    tokens = [t for t, _ in tagged]
    _shuffle_positions(tokens, [i for i, (_, tag) in enumerate(tagged) if tag not in NOUN_TAGS | ADJ_TAGS], rng)
    return " ".join(tokens)


def spacy_tagger() -> Callable[[str], list[tuple[str, str]]]:
    """(token, Penn Treebank tag) pairs from spaCy's ``en_core_web_sm``, as the original uses."""
    try:
        import spacy

        nlp = spacy.load("en_core_web_sm")
    except Exception as exc:  # ImportError, OSError (model not installed)
        raise _local._unavailable(f"the ARO Order sets need spaCy's English tagger to shuffle nouns and adjectives "
                                  f"({type(exc).__name__}: {exc}); install it: pip install spacy && python -m spacy "
                                  f"download en_core_web_sm") from None
    return lambda text: [(t.text, t.tag_) for t in nlp(text)]


def order_options(caption: str, seed_key: str, tag: Callable[[str], list[tuple[str, str]]]) -> list[str]:
    """The caption and its four re-orderings, each through ``pre_caption``; permutations seeded by ``seed_key``."""
    rng = random.Random(int.from_bytes(hashlib.sha256(seed_key.encode()).digest()[:8], "little"))
    tagged = tag(caption)
    shuffled = [shuffle_nouns_and_adj(tagged, rng), shuffle_allbut_nouns_and_adj(tagged, rng),
                shuffle_within_trigrams(caption, rng), shuffle_trigrams(caption, rng)]
    return [pre_caption(caption)] + [pre_caption(s) for s in shuffled]


def _vg(subset: str, root, config):
    from winoeval.api import Example, TaskData

    relation = subset == "vg-relation"
    stem = "visual_genome_relation" if relation else "visual_genome_attribution"
    path = _local.find_file(root, [f"{stem}.json"], f"aro:{subset}", f"{stem}.json (the Google Drive link in "
                                                                      f"{REPO}#readme)")
    images = _local.need_folder(root, "images", f"aro:{subset}", f"unzip vgr_vga_images.zip (the Google Drive link in "
                                                                  f"{REPO}#readme) there")
    data = _local.read_json(path, f"aro:{subset}")
    if not isinstance(data, list):
        raise _local._unavailable(f"aro:{subset}: {path} is a {type(data).__name__}, not the published list")
    rows = []
    for n, item in enumerate(data):
        where, task = f"{path.name} item {n}", f"aro:{subset}"

        def get(key, item=item, where=where, task=task):
            return _local.field(item, key, where, task)

        crop = tuple(float(get(k)) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        if relation:
            group = {"relation": str(get("relation_name"))}
        else:
            attrs = get("attributes")
            group = {"attributes": f"{attrs[0]}_{attrs[1]}"}
        rows.append((str(n), get("image_path"), crop, [get("false_caption"), get("true_caption")], group))

    def examples() -> Iterator[Example]:
        for eid, image_path, crop, texts, group in rows:
            yield Example(id=eid, images=_local.lazy_images(images, [image_path], ["image"], crop=crop), texts=texts,
                          label=1, meta={**group, "image_path": image_path})

    key = "relation" if relation else "attributes"
    macro = {key: {"exclude": list(SYMMETRIC_RELATIONS)} if relation else {"min_count": ATTRIBUTE_MIN_COUNT}}
    return TaskData(name="aro", metric="choice", examples=examples, size=len(rows), breakdowns=[key],
                    macro=macro, fingerprint=_local.fingerprint(path))


def _order(subset: str, root, config, tagger=None):
    from winoeval.api import Example, TaskData

    coco = subset == "coco-order"
    name = "coco_karpathy_test.json" if coco else "flickr30k_test.json"
    path = _local.find_file(root, [name], f"aro:{subset}", f"{KARPATHY}/{name}")
    data = _local.read_json(path, f"aro:{subset}")
    if not isinstance(data, list):
        raise _local._unavailable(f"aro:{subset}: {path} is a {type(data).__name__}, not the published list")
    tag = tagger or spacy_tagger()
    rows = []
    for n, item in enumerate(data):
        where = f"{path.name} item {n}"
        image = _local.field(item, "image", where, f"aro:{subset}")
        captions = _local.field(item, "caption", where, f"aro:{subset}")
        for k, caption in enumerate(captions if isinstance(captions, list) else [captions]):
            eid = f"{n}/{k}"
            rows.append((eid, image, order_options(caption, f"aro:{subset}/{eid}", tag)))
    folder = "val2014" if coco else "flickr30k-images"
    if rows and not (root / rows[0][1]).parent.is_dir():
        how = ("unzip http://images.cocodataset.org/zips/val2014.zip" if coco else
               "request Flickr30k at https://forms.illinois.edu/sec/229675 and extract flickr30k-images/")
        raise _local._unavailable(f"aro:{subset}: the image folder {(root / rows[0][1]).parent} is missing; {how} "
                                  f"into {root} (the JSON names images as {rows[0][1]!r}; expected {folder}/)")

    def examples() -> Iterator[Example]:
        for eid, image, texts in rows:
            yield Example(id=eid, images=_local.lazy_images(root, [image], ["image"]), texts=texts, label=0,
                          meta={"image": image})

    return TaskData(name="aro", metric="choice", examples=examples, size=len(rows),
                    fingerprint=_local.fingerprint(path))


def load(argument: str | None, config: Any, tagger=None):
    if not argument:
        raise _local.config_error(f"aro needs a subset: {', '.join('aro:' + s for s in SUBSETS)} (they are scored "
                                  f"differently, so each is its own task; --task compositional runs all four)")
    if "," in argument:
        raise _local.config_error("aro takes one subset per task; list several tasks instead "
                                  "(-t aro:vg-relation,aro:vg-attribution)")
    (subset,) = _local.parse_choice(argument, SUBSETS, "aro", "aro:vg-relation")
    if getattr(config, "task_args", None):
        raise _local.config_error(f"aro takes no --task-arg (got {', '.join(sorted(config.task_args))})")
    root = _local.need_data_dir(config, f"aro:{subset}", f"download the files named in {REPO}#readme")
    if subset.startswith("vg-"):
        return _vg(subset, root, config)
    return _order(subset, root, config, tagger)


@hookimpl
def winoeval_register_tasks(register):
    register("aro", load, takes_argument=True, options={},
             description="ARO (local files): aro:vg-relation|vg-attribution (2 captions, macro accuracy) and "
                         "aro:coco-order|flickr-order (5 captions)", licence=LICENCE, citation=CITATION,
             source=SOURCE, group="compositional", members=["aro:vg-relation", "aro:vg-attribution"])
