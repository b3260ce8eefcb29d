"""Shortcut oracles for WinoDigits: matchers that read the **scene metadata**, not the pixels.

``--model winodigits-oracle:RULE`` scores an image against a caption with a perfect-perception rule
that ignores part of the scene or of the caption. They are not models: they show what a shortcut
would score on each tag, so a tag where an oracle beats chance does not need what the oracle ignores.
They work only on ``winodigits`` / ``winodigits2`` images (the tasks put each scene's content in
``image.info["winodigits_scene"]``); on any other image they stop with an error.

Captions are parsed by the WinoDigits grammar: ``a C D REL a C D [not REL2]`` or ``a C D and a C D``.
A caption is *true* of a scene under a rule when its two things can be matched to the scene's two
things on the features the rule perceives, and the relation holds between them (and the ``not``
relation does not); score 1 if true, else 0 — so two captions true of the same image tie, and a tie
fails the Winoground rule (chance or below).

=============  ================================================================================
rule           perceives
=============  ================================================================================
perfect        everything (a check that every item is solvable: 100 % on every tag)
digit-blind    colours and positions, no digits ("a red 3 left of a blue 7" → "red left of blue")
colour-blind   digits and positions, no colours
bag-of-words   everything, but compares the caption's word multiset with those of the scene's
               true captions (either order, every true "not R", and the "and" form): no order
axis-only      only whether the relation is side-by-side or one-over-the-other
=============  ================================================================================

``RULE1+RULE2`` adds the second as a tie-break (score = rule1 + rule2 / 2), e.g.
``digit-blind+bag-of-words`` (the shortcut that scores 100 % on every v1 tag).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from winoeval.hookspecs import hookimpl

RULES = ("perfect", "digit-blind", "colour-blind", "bag-of-words", "axis-only")
_VIEW = {"perfect": (0, 1), "digit-blind": (0,), "colour-blind": (1,)}  # perceived (colour, digit) fields


def parse_caption(caption: str) -> dict[str, Any]:
    """{"things": [(colour, digit), (colour, digit)], "relation": str | None ("and"), "not": str | None}."""
    from winoeval.config import ConfigError
    from winoeval.tasks.winodigits import COLOURS, RELATIONS

    words = caption.split()
    try:
        if words[0] != "a" or words[1] not in COLOURS:
            raise ValueError
        first = (words[1], int(words[2]))
        rest = words[3:]
        j = next(i for i in range(len(rest) - 2) if rest[i] == "a" and rest[i + 1] in COLOURS)
        relation = " ".join(rest[:j])
        second = (rest[j + 1], int(rest[j + 2]))
        tail = rest[j + 3:]
        negated = " ".join(tail[1:]) if tail else None
        if (tail and tail[0] != "not") or (relation != "and" and relation not in RELATIONS) \
                or (negated is not None and negated not in RELATIONS) or (relation == "and" and negated):
            raise ValueError
    except (ValueError, IndexError, StopIteration):
        raise ConfigError(f"winodigits-oracle: {caption!r} is not a WinoDigits caption ('a C D REL a C D [not R]' "
                          f"or 'a C D and a C D'); the oracles run only on the winodigits and winodigits2 tasks") \
            from None
    return {"things": [first, second], "relation": None if relation == "and" else relation, "not": negated}


def _holds(scene: dict, x: int, y: int, relation: str) -> bool:
    """Does scene thing x (0 = first, 1 = second) stand ``relation`` to thing y?"""
    from winoeval.tasks.winodigits import INVERSE

    if x == y:
        return False
    return relation == (scene["relation"] if x == 0 else INVERSE[scene["relation"]])


def true_of(scene: dict, parsed: dict, fields: tuple[int, ...]) -> bool:
    """Is the caption true of the scene when only ``fields`` of each thing are perceived?"""
    things = [tuple(scene["first"]), tuple(scene["second"])]
    for x, y in ((0, 1), (1, 0)):
        if all(things[s][f] == parsed["things"][k][f] for k, s in ((0, x), (1, y)) for f in fields):
            if parsed["relation"] is None:
                return True
            if _holds(scene, x, y, parsed["relation"]) and not (parsed["not"] and _holds(scene, x, y, parsed["not"])):
                return True
    return False


def true_captions(scene: dict) -> list[str]:
    """Every caption of the WinoDigits grammars that is true of the scene."""
    from winoeval.tasks.winodigits import INVERSE, RELATIONS

    a = "a {} {}".format(*scene["first"])
    b = "a {} {}".format(*scene["second"])
    out = [f"{a} and {b}", f"{b} and {a}"]
    for x, y, rel in ((a, b, scene["relation"]), (b, a, INVERSE[scene["relation"]])):
        out.append(f"{x} {rel} {y}")
        out += [f"{x} {rel} {y} not {r}" for r in RELATIONS if r != rel]
    return out


def rule_score(rule: str, scene: dict, caption: str) -> float:
    from winoeval.tasks.winodigits import _axis

    parsed = parse_caption(caption)
    if rule in _VIEW:
        return float(true_of(scene, parsed, _VIEW[rule]))
    if rule == "bag-of-words":
        bag = Counter(caption.split())
        return float(any(Counter(t.split()) == bag for t in true_captions(scene)))
    if rule == "axis-only":
        return float(parsed["relation"] is not None and _axis(parsed["relation"]) == _axis(scene["relation"]))
    raise ValueError(rule)


class WinoDigitsOracle:
    """A shortcut rule as a matcher (``kind = "matcher"``); ``rules`` are summed with weights 1, 1/2, 1/4…"""

    kind = "matcher"

    def __init__(self, rules: tuple[str, ...]):
        self.rules = rules
        self.source = "winodigits-oracle:" + "+".join(rules)

    def scene(self, image) -> dict:
        from winoeval.config import ConfigError

        scene = getattr(image, "info", {}).get("winodigits_scene")
        if scene is None:
            raise ConfigError("winodigits-oracle reads the scene metadata that the winodigits and winodigits2 tasks "
                              "attach to their images; this image has none: run it with --task winodigits2 "
                              "(or winodigits)")
        return scene

    def score(self, image, caption: str) -> float:
        scene = self.scene(image)
        return sum(rule_score(r, scene, caption) / 2 ** k for k, r in enumerate(self.rules))

    def similarity(self, images: list, texts: list[str]):
        import torch

        return torch.tensor([[self.score(im, t) for t in texts] for im in images], dtype=torch.float64)


def parse_rules(argument: str | None) -> tuple[str, ...]:
    import difflib

    from winoeval.config import ConfigError

    if not argument:
        raise ConfigError(f"winodigits-oracle needs a rule: winodigits-oracle:RULE with RULE one of {', '.join(RULES)} "
                          f"(or RULE+RULE for a tie-break)")
    rules = tuple(r.strip().lower() for r in argument.split("+"))
    for r in rules:
        if r not in RULES:
            close = difflib.get_close_matches(r, RULES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown winodigits-oracle rule {r!r}{hint} (choose from {', '.join(RULES)})")
    return rules


def load(argument, config):
    return WinoDigitsOracle(parse_rules(argument))


def fingerprint(argument=None, config=None):
    return "winodigits-oracle-v1:" + "+".join(parse_rules(argument))


@hookimpl
def winoeval_register_models(register):
    register("winodigits-oracle", load, takes_argument=True, options={}, fingerprint=fingerprint,
             description="shortcut ORACLES (not models) for winodigits/winodigits2, reading scene metadata: "
                         "winodigits-oracle:perfect|digit-blind|colour-blind|bag-of-words|axis-only[+RULE]")
