"""Winoground text/image/group scores, classification and 1×K choice accuracy, confidence intervals.

A score matrix ``S[i][j]`` holds s(caption j, image i): rows are images, columns captions.
Ties count as failures (strict comparisons), as in Thrush et al. 2022.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

Z95 = 1.959963984540054


def winoground_verdicts(S: Sequence[Sequence[float]]) -> dict[str, bool]:
    """Text, image and group verdicts of one 2×2 example."""
    (s00, s01), (s10, s11) = S  # s_ij = s(C_j, I_i)
    text = s00 > s01 and s11 > s10  # each image prefers its own caption
    image = s00 > s10 and s11 > s01  # each caption prefers its own image
    return {"text": bool(text), "image": bool(image), "group": bool(text and image)}


def classification_verdict(scores: Sequence[float], label: int) -> dict[str, Any]:
    """Top-1 prediction; a tie for the best score counts as wrong."""
    best = max(scores)
    winners = [k for k, s in enumerate(scores) if s == best]
    prediction = winners[0]
    return {"prediction": prediction, "correct": bool(len(winners) == 1 and prediction == label)}


def pct(v: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.385`` → ``"38.5"``); ``—`` for a missing value
    (None or NaN, e.g. a metric over zero examples). Every table and report prints percentages this way."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def json_safe(value: Any) -> Any:
    """NaN and infinities become None, in nested dicts and lists: results files are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # rounded to 12 digits: 80/80 gives an upper bound of 1.0, not 0.9999999999999999
    return (max(0.0, round(centre - half, 12)), min(1.0, round(centre + half, 12)))


def proportion(flags: Sequence[bool]) -> dict[str, Any]:
    k, n = sum(bool(f) for f in flags), len(flags)
    lo, hi = wilson_interval(k, n)
    return {"value": k / n if n else float("nan"), "ci95": [lo, hi], "n": n}


def _groups(records: Sequence[dict], key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        value = r.get("meta", {}).get(key)
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and v != "":
                groups[str(v)].append(r)
    return dict(sorted(groups.items()))


def _winoground_summary(records: Sequence[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(records)}
    for name in ("text", "image", "group"):
        p = proportion([r["verdicts"][name] for r in records])
        out[name], out[f"{name}_ci95"] = p["value"], p["ci95"]
    return out


def winoground_metrics(records: Sequence[dict], breakdowns: Iterable[str] = ()) -> dict[str, Any]:
    """Overall and per-breakdown text/image/group fractions with Wilson 95 % intervals."""
    out = _winoground_summary(records)
    by = {}
    for key in breakdowns:
        groups = _groups(records, key)
        if groups:
            by[key] = {value: _winoground_summary(rs) for value, rs in groups.items()}
    if by:
        out["by"] = by
    return out


def mean_per_class_interval(per_class: dict[Any, list[bool]], n_boot: int = 10_000, seed: int = 0) -> list[float]:
    """95 % stratified bootstrap interval of the mean per-class accuracy: each class's examples are
    resampled within the class (its accuracy redrawn as Binomial(n_k, acc_k) / n_k), the class means
    averaged; the 2.5th and 97.5th percentiles. Seeded, so a results file is reproducible."""
    import numpy as np

    if not per_class:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    draws = np.zeros(n_boot)
    for flags in per_class.values():
        n = len(flags)
        draws += rng.binomial(n, sum(flags) / n, size=n_boot) / n
    draws /= len(per_class)
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def classification_metrics(records: Sequence[dict], class_names: Sequence[str] | None = None,
                           breakdowns: Iterable[str] = ()) -> dict[str, Any]:
    """Top-1 accuracy (Wilson 95 % interval) and mean per-class accuracy."""
    p = proportion([r["verdicts"]["correct"] for r in records])
    per_class: dict[int, list[bool]] = defaultdict(list)
    for r in records:
        per_class[r["label"]].append(r["verdicts"]["correct"])
    class_acc = {k: sum(v) / len(v) for k, v in sorted(per_class.items())}
    out: dict[str, Any] = {
        "n": len(records), "accuracy": p["value"], "accuracy_ci95": p["ci95"],
        "mean_per_class_accuracy": sum(class_acc.values()) / len(class_acc) if class_acc else float("nan"),
        "mean_per_class_accuracy_ci95": mean_per_class_interval(per_class),
        "per_class_accuracy": {(class_names[k] if class_names else str(k)): v for k, v in class_acc.items()},
    }
    by = {}
    for key in breakdowns:
        groups = _groups(records, key)
        if groups:
            by[key] = {v: {"n": len(rs), "accuracy": sum(r["verdicts"]["correct"] for r in rs) / len(rs)}
                       for v, rs in groups.items()}
    if by:
        out["by"] = by
    return out


def choice_metrics(records: Sequence[dict], breakdowns: Iterable[str] = (),
                   macro: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """1×K choice (one image, K captions of its own, ``label`` = the true caption): accuracy with a
    Wilson 95 % interval, overall and per breakdown (each group with its interval). ``macro`` adds,
    per meta key, the mean over the key's groups of the group accuracy (ARO's macro accuracy):
    ``{key: {"exclude": [values left out], "min_count": n}}``; a group with fewer than ``min_count``
    examples, or one in ``exclude``, does not count."""
    p = proportion([r["verdicts"]["correct"] for r in records])
    out: dict[str, Any] = {"n": len(records), "accuracy": p["value"], "accuracy_ci95": p["ci95"]}
    by = {}
    for key in breakdowns:
        groups = _groups(records, key)
        if groups:
            by[key] = {}
            for value, rs in groups.items():
                g = proportion([r["verdicts"]["correct"] for r in rs])
                by[key][value] = {"n": g["n"], "accuracy": g["value"], "accuracy_ci95": g["ci95"]}
    if by:
        out["by"] = by
    for key, rule in (macro or {}).items():
        exclude = {str(v) for v in rule.get("exclude", ())}
        min_count = int(rule.get("min_count", 1))
        groups = _groups(records, key)
        kept = {v: rs for v, rs in groups.items() if v not in exclude and len(rs) >= min_count}
        accs = [sum(r["verdicts"]["correct"] for r in rs) / len(rs) for rs in kept.values()]
        out.setdefault("macro_accuracy", {})[key] = {
            "value": sum(accs) / len(accs) if accs else float("nan"), "groups": len(accs),
            "n": sum(len(rs) for rs in kept.values()), "groups_dropped": len(groups) - len(kept),
            "min_count": min_count}
    return out


def compute(metric: str, records: Sequence[dict], class_names=None, breakdowns: Iterable[str] = (),
            macro: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    if metric == "winoground":
        out = winoground_metrics(records, breakdowns)
    elif metric == "choice":
        out = choice_metrics(records, breakdowns, macro)
    elif metric == "classification":
        out = classification_metrics(records, class_names, breakdowns)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    evals = [r["n_evals"] for r in records if r.get("n_evals")]
    if evals:
        out["evals_per_example"] = sum(evals) / len(evals)
    return out


def verdicts(metric: str, scores: Sequence[Sequence[float]], label: int | None) -> dict[str, Any]:
    if metric == "winoground":
        return winoground_verdicts(scores)
    return classification_verdict(scores[0], label)
