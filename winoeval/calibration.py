"""Calibrated probabilities for classification runs: p = softmax(score / τ).

The diffusion scorer's scores (−error) are on an arbitrary scale, so softmax(score) is not a
probability anyone should trust. ``calibrate`` fits the temperature τ on a seeded part of the examples
(minimising the negative log-likelihood over log τ) and reports, on the other part, the expected
calibration error (equal-width confidence bins) and the NLL before (τ = 1) and after.

The fit is presented only when it can be trusted (``status == "fitted"``): each part holds at least
:data:`MIN_PART` examples, the fitting part is not separable (τ would run to 0), and the fitted τ does not
worsen the held-out NLL. Otherwise ``status`` says why, ``tau`` is None (keep τ = 1) and ``tau_fit`` holds
what the optimiser found, for the record.

Pruned candidates (null scores in the samples file) count as −inf: probability 0 under every τ.
An example whose true class was pruned has p(true) = 0 whatever τ is: it is left out of the fit and
of the NLL (and counted); it still counts in the ECE, where only the confidence matters.

Statistics only: :mod:`winoeval.report` renders a report as markdown and :mod:`winoeval.compare` holds
the ``winoeval calibrate`` command. Only the standard library is imported at module level; numpy and
scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .errors import CalibrationError  # noqa: F401  (public here too)

N_BINS = 15
# The least data a fit is presented on: this many examples in each part. A fit also needs misclassified
# examples in its part (otherwise the NLL falls for ever as τ → 0): at 98 % accuracy that takes ~50 fitting
# examples for one error on average, and a stable τ several errors, so a few hundred examples in all.
MIN_PART = 20


def score_matrix(records: Sequence[dict]):
    """Classification sample records → (scores (n, K) float with −inf for null, labels (n,) int)."""
    import numpy as np

    rows, labels = [], []
    for r in records:
        if "skipped" in r:
            continue
        if r.get("label") is None:
            raise CalibrationError(f"example {r.get('id')!r} has no label: calibration needs a classification run")
        scores = r["scores"]
        if len(scores) != 1:
            raise CalibrationError(f"example {r.get('id')!r} has {len(scores)} images: calibration needs a "
                                   f"classification run (one image, K candidate texts)")
        row = [-math.inf if v is None else float(v) for v in scores[0]]
        label = r["label"]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(row):
            raise CalibrationError(f"example {r.get('id')!r} has label {label!r}, not a class index in "
                                   f"0..{len(row) - 1} "
                                   f"(its {len(row)} candidate texts); fix the task's data and rerun it")
        if any(math.isnan(v) or v == math.inf for v in row):
            raise CalibrationError(f"example {r.get('id')!r} has a NaN or +inf score; rerun it (the runner refuses "
                                   f"non-finite scores)")
        rows.append(row)
        labels.append(label)
    if not rows:
        return np.zeros((0, 0)), np.zeros(0, dtype=int)
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise CalibrationError(f"examples have different numbers of candidates ({sorted(widths)})")
    return np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def log_softmax(scores, tau: float):
    """log softmax(scores / τ) per row; −inf scores get log-probability −inf (probability 0)."""
    import numpy as np

    z = np.asarray(scores, dtype=np.float64) / float(tau)
    m = np.max(z, axis=-1, keepdims=True)  # finite: a row always has at least one unpruned candidate
    with np.errstate(invalid="ignore"):
        shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(scores, tau: float = 1.0):
    """Probabilities p = softmax(scores / τ) per row (null/−inf scores → 0)."""
    import numpy as np

    return np.exp(log_softmax(scores, tau))


def nll(scores, labels, tau: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels (rows whose label has p = 0 give inf: filter them first)."""
    import numpy as np

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    lp = log_softmax(scores, tau)[np.arange(len(labels)), labels]
    return max(0.0, float(-np.mean(lp)))  # ≥ 0; clips rounding to −0


def expected_calibration_error(confidences, correct, n_bins: int = N_BINS) -> float:
    """ECE with ``n_bins`` equal-width bins over (0, 1]: Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|.

    Bin b holds the confidences in (b/n_bins, (b+1)/n_bins] (a confidence of 0 goes to the first bin).
    """
    import numpy as np

    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    n = len(conf)
    if n == 0:
        return float("nan")
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() / n * abs(ok[mask].mean() - conf[mask].mean())
    return float(total)


def predictions(scores):
    """Top-1 prediction per row and whether it is unique (a tie for the best counts as wrong, as in the metrics)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    pred = np.argmax(scores, axis=1)
    best = scores[np.arange(len(scores)), pred]
    unique = (scores == best[:, None]).sum(axis=1) == 1
    return pred, unique


def ece_of(scores, labels, tau: float = 1.0, n_bins: int = N_BINS) -> float:
    """ECE of softmax(scores/τ): confidence = top probability, correct = unique top-1 equals the label."""
    import numpy as np

    probs = softmax(scores, tau)
    pred, unique = predictions(scores)
    correct = unique & (pred == np.asarray(labels))
    return expected_calibration_error(probs.max(axis=1), correct, n_bins)


def _log_tau_bounds(scores) -> tuple[float, float]:
    """A search interval for log τ that spans the scale of the score gaps by e^±12."""
    import numpy as np

    finite = np.where(np.isfinite(scores), scores, np.nan)
    with np.errstate(all="ignore"):
        spread = np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)
    spread = spread[np.isfinite(spread) & (spread > 0)]
    scale = float(np.median(spread)) if len(spread) else 1.0
    return math.log(scale) - 12.0, math.log(scale) + 12.0


def fit_temperature(scores, labels, bounds: tuple[float, float] | None = None) -> tuple[float, bool]:
    """The τ minimising the NLL of softmax(scores/τ), searched over log τ (bounded Brent).

    The NLL is convex in 1/τ, so it is unimodal in log τ. Returns (τ, at_bound): at_bound is True when
    the optimum sits at the edge of the search interval (e.g. perfectly separated scores, where the
    NLL keeps falling as τ → 0).
    """
    import numpy as np
    from scipy.optimize import minimize_scalar

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise CalibrationError("no examples to fit the temperature on")
    lo, hi = bounds if bounds is not None else _log_tau_bounds(scores)
    res = minimize_scalar(lambda lt: nll(scores, labels, math.exp(lt)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-6})
    log_tau = float(res.x)
    at_bound = min(log_tau - lo, hi - log_tau) < 1e-3 * (hi - lo)
    return math.exp(log_tau), bool(at_bound)


def split_indices(n: int, fit_fraction: float = 0.5, seed: int = 0):
    """A seeded random split of range(n) into (fit, held-out) index arrays, both non-empty when n ≥ 2."""
    import numpy as np

    if not 0 < fit_fraction < 1:
        raise CalibrationError(f"--fit-fraction must be strictly between 0 and 1, got {fit_fraction}")
    if n < 2:
        raise CalibrationError(f"need at least 2 examples to fit on one part and evaluate on the other, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(fit_fraction * n)), 1), n - 1)
    return np.sort(perm[:k]), np.sort(perm[k:])


@dataclass
class CalibrationReport:
    """What ``calibrate`` found. NLL values leave out the examples whose true class was pruned."""

    tau: float  # the temperature to use: the fit when status == "fitted", else NaN (keep τ = 1)
    at_bound: bool
    n_fit: int
    n_eval: int
    n_bins: int
    seed: int
    accuracy_eval: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    nll_fit_before: float
    nll_fit_after: float
    true_pruned_fit: int = 0
    true_pruned_eval: int = 0
    single_candidate: int = 0  # examples with one unpruned candidate: p = 1 under any τ
    notes: list[str] = field(default_factory=list)
    status: str = "fitted"  # or "not fitted" (too little data, separable, nothing to fit) or "rejected"
    tau_fit: float = float("nan")  # what the optimiser found, whether or not it is presented

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (nothing to report) becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def calibrate(records: Sequence[dict], fit_fraction: float = 0.5, seed: int = 0,
              n_bins: int = N_BINS) -> CalibrationReport:
    """Fit τ on a seeded ``fit_fraction`` of the records; ECE and NLL before/after on the rest."""
    import numpy as np

    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise CalibrationError(f"--bins must be a whole number of bins, at least 1, got {n_bins!r}")
    scores, labels = score_matrix(records)
    fit_idx, eval_idx = split_indices(len(labels), fit_fraction, seed)
    finite = np.isfinite(scores)
    true_ok = finite[np.arange(len(labels)), labels] if len(labels) else np.zeros(0, bool)
    single = int((finite.sum(axis=1) == 1).sum())
    fit_ok = fit_idx[true_ok[fit_idx]]
    eval_ok = eval_idx[true_ok[eval_idx]]
    informative = fit_ok[finite[fit_ok].sum(axis=1) > 1]  # one candidate left: p = 1 under any τ
    notes = []
    separable = False
    if len(informative) == 0:
        tau, at_bound = float("nan"), False
        notes.append("no fitting example has two or more unpruned candidates with the true class among them: "
                     "τ cannot be fitted")
    else:
        tau, at_bound = fit_temperature(scores[informative], labels[informative])
        fit_pred, fit_unique = predictions(scores[informative])
        separable = bool(np.all(fit_unique & (fit_pred == labels[informative])))
        at_bound = at_bound or separable
    pred, unique = predictions(scores[eval_idx])
    if separable:
        notes.append("every fitting example is classified correctly: the NLL keeps falling as τ → 0, so τ is "
                     "set by the search's tolerance, not the data, and the probabilities will be over-confident")
    elif at_bound:
        notes.append(f"τ = {tau:.4g} is at the edge of the search interval: the scores of the fitting part "
                     f"are (nearly) separable, so the fitted probabilities are over-confident")
    if single:
        notes.append(f"{single} of {len(labels)} examples have a single unpruned candidate: their top "
                     f"probability is 1 under any τ (rerun without adaptive pruning for calibrated probabilities)")
    pruned = int((~true_ok).sum())
    if pruned:
        notes.append(f"{pruned} example(s) had the true class pruned (p = 0 under any τ): left out of the "
                     f"fit and of the NLL, kept in the ECE")
    nan = float("nan")
    fitted = math.isfinite(tau)
    report = CalibrationReport(
        tau=tau, at_bound=at_bound, n_fit=len(fit_idx), n_eval=len(eval_idx), n_bins=n_bins, seed=seed,
        accuracy_eval=float(np.mean(unique & (pred == labels[eval_idx]))),
        ece_before=ece_of(scores[eval_idx], labels[eval_idx], 1.0, n_bins),
        ece_after=ece_of(scores[eval_idx], labels[eval_idx], tau, n_bins) if fitted else nan,
        nll_before=nll(scores[eval_ok], labels[eval_ok], 1.0),
        nll_after=nll(scores[eval_ok], labels[eval_ok], tau) if fitted else nan,
        nll_fit_before=nll(scores[fit_ok], labels[fit_ok], 1.0),
        nll_fit_after=nll(scores[fit_ok], labels[fit_ok], tau) if fitted else nan,
        true_pruned_fit=int(len(fit_idx) - len(fit_ok)), true_pruned_eval=int(len(eval_idx) - len(eval_ok)),
        single_candidate=single, notes=notes, tau_fit=tau)
    return _judge(report)


def _judge(r: CalibrationReport) -> CalibrationReport:
    """Present the fit only when it can be trusted; otherwise say why as the result (τ = 1 is kept)."""
    reasons = []
    if min(r.n_fit, r.n_eval) < MIN_PART:
        reasons.append(f"too few examples: {r.n_fit} to fit on and {r.n_eval} held out, at least {MIN_PART} "
                       f"each are needed (and misclassified examples among the fitting ones)")
    if not math.isfinite(r.tau_fit):
        reasons.append("nothing to fit on")
    elif r.at_bound:
        reasons.append(f"the fitting part is (nearly) separable, so τ runs to the edge of the search "
                       f"(τ = {r.tau_fit:.3g}): it needs misclassified examples to fit on")
    worse = math.isfinite(r.nll_after) and math.isfinite(r.nll_before) and r.nll_after > r.nll_before
    if worse:
        reasons.append(f"τ = {r.tau_fit:.3g} worsens the held-out NLL ({r.nll_before:.3f} → {r.nll_after:.3f}) "
                       f"and ECE {r.ece_before:.3f} → {r.ece_after:.3f}")
    if not reasons:
        return r
    r.status = "rejected" if worse and len(reasons) == 1 else "not fitted"
    r.notes.insert(0, f"no temperature presented ({'; '.join(reasons)}): keep τ = 1, or calibrate on more "
                      f"examples (a few hundred, with errors among them)")
    r.tau = r.ece_after = r.nll_after = r.nll_fit_after = float("nan")
    return r
