"""The statistics of ``winoeval compare``: each model's value with a 95 % interval, and paired tests.

For every metric (Winoground text/image/group; classification accuracy and mean per-class accuracy),
overall and per breakdown tag, each model's value with a 95 % interval (Wilson for proportions,
bootstrap for mean per-class accuracy) and, for each pair of models, the difference B − A with

* an exact McNemar test: a two-sided binomial test of the discordant counts (A right and B wrong vs
  A wrong and B right) against Bin(n_discordant, ½);
* a paired bootstrap 95 % interval: the same resampled examples for both models, seeded.
  For a per-example 0/1 metric the difference of a resample depends only on how many discordant
  examples of each kind it drew, so those counts are drawn directly (a multinomial draw has exactly the
  distribution of resampling the examples); mean per-class accuracy resamples example indices.

Works on :class:`winoeval.results.Run` objects; returns plain JSON-ready data that the renderers
(:mod:`winoeval.report`, :mod:`winoeval.html_report`, :mod:`winoeval.plot`) draw. numpy and scipy are
imported inside the functions.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

from .results import BINARY, CLASSIFICATION_METRICS, WINOGROUND_METRICS, Run, Shared


def metric_names(metric: str) -> tuple[str, ...]:
    if metric == "choice":  # K captions of each image's own: no classes, so no mean per-class accuracy
        return CLASSIFICATION_METRICS[:1]
    return WINOGROUND_METRICS if metric == "winoground" else CLASSIFICATION_METRICS


def correct_vector(run: Run, ids: Sequence[str], metric: str):
    """Per-example 0/1 verdicts of one binary metric, in ``ids`` order."""
    import numpy as np

    key = "correct" if metric in ("accuracy", "mean_per_class") else metric
    return np.array([bool(run.records[i]["verdicts"][key]) for i in ids], dtype=bool)


def labels_vector(run: Run, ids: Sequence[str]):
    import numpy as np

    return np.array([int(run.records[i]["label"]) for i in ids], dtype=np.int64)


def mean_per_class(correct, labels) -> float:
    import numpy as np

    classes = np.unique(labels)
    return float(np.mean([correct[labels == c].mean() for c in classes])) if len(classes) else float("nan")


def _rng(seed: int, *parts: str):
    """A generator seeded by ``seed`` and the names of what it is for: results do not depend on order."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32("\x1f".join(parts).encode())])


def _mpc_resamples(vectors, labels, n_boot: int, rng):
    """Mean per-class accuracy of each 0/1 vector over ``n_boot`` paired resamples of the examples.

    Resampling n examples with replacement draws the class counts from Multinomial(n, class shares)
    and, within a class, how many of each joint outcome (which vectors are right) from a multinomial
    over that class's examples: drawing those counts directly has exactly the distribution of index
    resampling, at a cost independent of n.
    """
    import numpy as np

    n = len(labels)
    classes, lab = np.unique(labels, return_inverse=True)
    code = np.zeros(n, dtype=np.int64)
    for j, vec in enumerate(vectors):
        code |= np.asarray(vec, dtype=np.int64) << j
    n_codes = 1 << len(vectors)
    table = np.zeros((len(classes), n_codes))
    np.add.at(table, (lab, code), 1)
    class_n = table.sum(axis=1)
    drawn = rng.multinomial(n, class_n / n, size=n_boot)  # (n_boot, K) class counts
    acc = np.zeros((len(vectors), n_boot, len(classes)))
    for c in range(len(classes)):
        outcomes = rng.multinomial(drawn[:, c], table[c] / class_n[c])  # (n_boot, n_codes)
        for j in range(len(vectors)):
            hits = outcomes[:, [k for k in range(n_codes) if k >> j & 1]].sum(axis=1)
            acc[j, :, c] = hits / np.maximum(drawn[:, c], 1)
    present = drawn > 0
    return [(a * present).sum(axis=1) / present.sum(axis=1) for a in acc]


def _percentile_ci(samples) -> list[float]:
    import numpy as np

    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def value_with_ci(run: Run, ids: Sequence[str], metric: str, n_boot: int, seed: int, subset: str) -> dict:
    """One model's value on ``ids`` with a 95 % interval (Wilson; bootstrap for mean per-class)."""
    from .metrics import wilson_interval

    correct = correct_vector(run, ids, metric)
    if metric in BINARY:
        k = int(correct.sum())
        return {"value": k / len(ids), "ci95": list(wilson_interval(k, len(ids))), "ci_method": "wilson"}
    labels = labels_vector(run, ids)
    (boot,) = _mpc_resamples([correct], labels, n_boot, _rng(seed, "value", run.label, subset, metric))
    return {"value": mean_per_class(correct, labels), "ci95": _percentile_ci(boot), "ci_method": "bootstrap"}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of ``a_only`` out of the discordant pairs, p = ½."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap_binary(a, b, n_boot: int, rng) -> list[float]:
    """Percentile 95 % interval of mean(b) − mean(a) under resampling of the (paired) examples."""
    import numpy as np

    n = len(a)
    plus = int(np.sum(b & ~a))
    minus = int(np.sum(a & ~b))
    if plus == 0 and minus == 0:
        return [0.0, 0.0]
    counts = rng.multinomial(n, [plus / n, minus / n, (n - plus - minus) / n], size=n_boot)
    return _percentile_ci((counts[:, 0] - counts[:, 1]) / n)


def pair_stats(a_run: Run, b_run: Run, ids: Sequence[str], metric: str, n_boot: int, seed: int,
               subset: str) -> dict[str, Any]:
    """B − A on the same examples: difference, bootstrap interval, McNemar, discordant counts and ids."""
    import numpy as np

    a = correct_vector(a_run, ids, metric)
    b = correct_vector(b_run, ids, metric)
    rng = _rng(seed, "pair", a_run.label, b_run.label, subset, metric)
    ids_arr = np.array(ids, dtype=object)
    a_only = [str(i) for i in ids_arr[a & ~b]]
    b_only = [str(i) for i in ids_arr[b & ~a]]
    out: dict[str, Any] = {"a": a_run.label, "b": b_run.label, "subset": subset, "metric": metric, "n": len(ids)}
    if metric in BINARY:
        out.update(a_value=float(a.mean()), b_value=float(b.mean()), diff=float(b.mean() - a.mean()),
                   ci95=paired_bootstrap_binary(a, b, n_boot, rng),
                   mcnemar_p=mcnemar_exact(len(a_only), len(b_only)),
                   a_only=len(a_only), b_only=len(b_only), a_only_ids=a_only, b_only_ids=b_only)
    else:
        labels = labels_vector(a_run, ids)
        ra, rb = _mpc_resamples([a, b], labels, n_boot, rng)
        va, vb = mean_per_class(a, labels), mean_per_class(b, labels)
        out.update(a_value=va, b_value=vb, diff=vb - va, ci95=_percentile_ci(rb - ra), mcnemar_p=None,
                   a_only=len(a_only), b_only=len(b_only), a_only_ids=a_only, b_only_ids=b_only)
    return out


def subsets(runs: Sequence[Run], ids: Sequence[str]) -> list[tuple[str, list[str]]]:
    """("all", ids) then ("key=value", ids) for every breakdown tag the runs' results break down by
    (including a tag that every example has: :func:`build_comparison` leaves those out). The values
    of a key come in the task's own order (first appearance in the task's example order, which ``ids``
    follows), not alphabetically."""
    from .metrics import _groups

    first = runs[0]
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.breakdowns if k not in keys]
    # the results file keeps its breakdowns in sorted order: Winoground's own breakdown first, then the rest
    # (a results file that records the task's order, as task.breakdowns, is followed exactly)
    declared = first.results.get("task", {}).get("breakdowns") or ["collapsed_tag"]
    keys.sort(key=lambda k: declared.index(k) if k in declared else len(declared))
    records = [first.records[i] for i in ids]
    out = [("all", list(ids))]
    for key in keys:
        groups = _groups(records, key)
        position = {}
        for n, r in enumerate(records):
            value = r.get("meta", {}).get(key)
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                position.setdefault(str(v), n)
        for value in sorted(groups, key=lambda v: position.get(v, len(records))):
            out.append((f"{key}={value}", [str(r["id"]) for r in groups[value]]))
    return out


def same_examples(groups: Sequence[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """Subsets holding exactly the examples of an earlier one (WinoDigits' ``contrast=object`` is
    ``collapsed_tag=object``): {later: earlier}. A figure shows each set of examples once."""
    seen: dict[frozenset, str] = {}
    out = {}
    for name, ids in groups:
        key = frozenset(ids)
        if key in seen:
            out[name] = seen[key]
        else:
            seen[key] = name
    return out


def per_class(runs: Sequence[Run], ids: Sequence[str], class_names: Sequence[str] | None) -> list[dict[str, Any]]:
    """Classification: each class's accuracy (recall: right among the examples of that true class) per
    model with a Wilson 95 % interval, and the exact McNemar p of each later model against the first."""
    from .metrics import wilson_interval

    import numpy as np

    labels = labels_vector(runs[0], ids)
    correct = {run.label: correct_vector(run, ids, "accuracy") for run in runs}
    out = []
    for k in sorted(set(labels.tolist())):
        mask = labels == k
        n = int(mask.sum())
        values = {}
        for run in runs:
            hits = int(correct[run.label][mask].sum())
            values[run.label] = {"value": hits / n, "ci95": list(wilson_interval(hits, n))}
        a = correct[runs[0].label][mask]
        p = {run.label: mcnemar_exact(int(np.sum(a & ~correct[run.label][mask])),
                                      int(np.sum(correct[run.label][mask] & ~a))) for run in runs[1:]}
        name = str(class_names[k]) if class_names and 0 <= k < len(class_names) else str(k)
        out.append({"class": int(k), "name": name, "n": n, "values": values, "mcnemar_p_vs_first": p})
    return out


def pairs_of(runs: Sequence[Run], mode: str) -> list[tuple[Run, Run]]:
    if mode == "all":
        return [(runs[i], runs[j]) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return [(runs[0], run) for run in runs[1:]]


def build_comparison(runs: Sequence[Run], shared: Shared, pairs: str = "first", n_boot: int = 10_000,
                     seed: int = 0) -> dict[str, Any]:
    """Everything the outputs show, as plain JSON-ready data (full id lists included).

    A breakdown tag that every shared example has (``collapsed_tag=Relation`` on ``winoground:relation``)
    would repeat ``all``: it is left out and named in ``same_as_all``. ``n_classes`` (classification)
    is the number of candidate classes, for the chance level."""
    metric = runs[0].metric
    names = metric_names(metric)
    groups = subsets(runs, shared.ids)
    same_as_all = [name for name, ids in groups[1:] if len(ids) == len(shared.ids)]
    groups = [g for g in groups if g[0] not in same_as_all]
    same_as = same_examples(groups)
    scores = []
    for subset, ids in groups:
        for m in names:
            scores.append({"subset": subset, "n": len(ids), "metric": m,
                           "values": {run.label: value_with_ci(run, ids, m, n_boot, seed, subset) for run in runs}})
    pair_rows = [pair_stats(a, b, ids, m, n_boot, seed, subset)
                 for a, b in pairs_of(runs, pairs) for subset, ids in groups for m in names]
    return {
        "task": runs[0].task, "metric": metric, "n_shared": len(shared.ids), "notes": list(shared.notes),
        "runs": [{"label": run.label, "model": run.results["model"]["name"], "results": str(run.path),
                  "samples": str(run.samples_path), "n_scored": len(run.records), "n_skipped": len(run.skipped)}
                 for run in runs],
        "bootstrap": {"resamples": n_boot, "seed": seed}, "same_as_all": same_as_all, "same_as": same_as,
        "n_classes": (len(runs[0].records[shared.ids[0]]["scores"][0])
                      if metric == "classification" and shared.ids else None),
        "scores": scores, "pairs": pair_rows,
        "per_class": (per_class(runs, shared.ids, runs[0].results.get("task", {}).get("class_names"))
                      if metric == "classification" and shared.ids else None),
        "chance": (sum(1 / len(runs[0].records[i]["scores"][0]) for i in shared.ids) / len(shared.ids)
                   if metric == "choice" and shared.ids else None),
    }
