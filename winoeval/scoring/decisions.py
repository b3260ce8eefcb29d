"""When an example has seen enough samples: the stopping rules, each a small generator.

A rule is a generator over one example's error table ``errs[i, k, j]`` (image i, candidate k — the last
column is the unconditional row when normalising — sample j; NaN where not yet evaluated). It yields job
lists ``[(i, k, j), ...]``, is sent nothing back (the scheduler fills ``errs`` in place before resuming
it), and returns the candidates still alive per image. Rules never see a model, a batch or another
example: the batch scheduler (:mod:`winoeval.scoring.scheduler`) runs them.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Generator

from ..config import ScorerConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

Jobs = list[tuple[int, int, int]]
Rule = Generator[Jobs, None, list[list[int]]]


def evaluate(errs: "torch.Tensor", cells, start: int, stop: int, normalize: bool) -> Generator[Jobs, None, None]:
    """Ask for samples start … stop−1 of the (image, candidate) ``cells`` (and of every image's
    unconditional row when normalising)."""
    I, K = errs.shape[0], errs.shape[1] - 1
    jobs = [(i, k, j) for i, k in cells for j in range(start, stop)]
    if normalize:
        jobs += [(i, K, j) for i in range(I) for j in range(start, stop)]
    yield jobs


def fixed_stages(errs: "torch.Tensor", config: ScorerConfig) -> Rule:
    """Fixed budgets, optionally with the paper's adaptive pruning: after each (n_samples, to_keep)
    stage keep the to_keep lowest-error candidates of each image; later stages reuse the samples."""
    import torch

    I, K = errs.shape[0], errs.shape[1] - 1
    alive = [list(range(K)) for _ in range(I)]
    done = 0
    for n_stage, keep in zip(config.n_samples, config.to_keep or (None,) * len(config.n_samples)):
        yield from evaluate(errs, [(i, k) for i in range(I) for k in alive[i]], done, n_stage, bool(config.normalize))
        done = n_stage
        if keep is not None:
            for i in range(I):
                if keep < len(alive[i]):
                    means = errs[i, alive[i], :n_stage].mean(dim=1)
                    order = torch.argsort(means, stable=True)[:keep].tolist()
                    alive[i] = sorted(alive[i][o] for o in order)
    return alive


def early_decision(errs: "torch.Tensor", t: "torch.Tensor", config: ScorerConfig) -> Rule:
    """Sequential paired stopping. Samples are taken in chunks (prefix order: every prefix covers
    [0, T)); after each chunk, from ``min_samples`` on, a candidate is dropped once its mean paired
    difference to the current best, minus z standard errors, is above 0 (z from ``confidence``).

    The standard error is the stratified one (``variance="stratified"``, the default: successive
    differences of the paired differences in timestep order, so a difference that changes smoothly
    with t is not read as noise; with ``timesteps="uniform"`` the t are independent draws and the
    i.i.d. estimate is the right one, so it is used) or the i.i.d. one (``variance="iid"``).
    One image: dropped candidates stop being evaluated (the fixed to_keep schedule, made adaptive).
    Several images (Winoground): the example stops once every row comparison (texts of an image) and
    every column comparison (images of a text, normalised when enabled) is decided, or at the budget;
    all cells keep the same samples so the 2×2 matrix stays paired."""
    normalize = bool(config.normalize)
    I, K, N = errs.shape[0], errs.shape[1] - 1, errs.shape[2]
    z = NormalDist().inv_cdf(1 - (1 - config.confidence) / 2)
    stratified = config.variance == "stratified" and config.timesteps != "uniform"
    rows = [list(range(K)) for _ in range(I)]
    cols = [list(range(I)) for _ in range(K)] if I > 1 else [[0] for _ in range(K)]
    done = 0
    while done < N:
        stop = min(N, max(done + config.chunk, config.min_samples))
        cells = [(i, k) for i in range(I) for k in (range(K) if I > 1 else rows[i])]
        yield from evaluate(errs, cells, done, stop, normalize)
        done = stop
        order = timestep_order(t[:done]) if stratified else None
        for i in range(I):
            rows[i] = drop_confidently_worse(errs[i, :, :done], rows[i], z, order)
        if I > 1:
            q = errs[:, :K, :done] - (errs[:, K:, :done] if normalize else 0)
            for k in range(K):
                cols[k] = drop_confidently_worse(q[:, k], cols[k], z, order)
        if all(len(r) == 1 for r in rows) and all(len(c) == 1 for c in cols):
            break
    return rows if I == 1 else [list(range(K)) for _ in range(I)]


def decide(errs: "torch.Tensor", t: "torch.Tensor", config: ScorerConfig) -> Rule:
    """The rule the configuration selects."""
    return early_decision(errs, t, config) if config.early_stop else fixed_stages(errs, config)


def timestep_order(t: "torch.Tensor") -> "torch.Tensor":
    """The samples of a prefix sorted by timestep (stable): neighbours in it are neighbouring strata."""
    import torch

    return torch.argsort(t, stable=True)


def paired_standard_error(d: "torch.Tensor", order: "torch.Tensor | None" = None) -> float:
    """Standard error of the mean of paired differences d (n,).

    ``order`` None: i.i.d. samples, sd/√n. ``order`` (the samples sorted by timestep): the
    stratified estimator from successive differences along t (von Neumann), whose variance
    Σ(d₍ᵢ₊₁₎ − d₍ᵢ₎)² / (2(n−1)) ignores any smooth dependence of d on t — the spread that a design
    with one sample per timestep stratum does not pay for — and equals the sample variance in
    expectation when d does not depend on t."""
    n = d.shape[-1]
    if n < 2:
        return math.inf
    if order is None:
        return float(d.std(unbiased=True)) / math.sqrt(n)
    diffs = d[order].diff()
    return math.sqrt(float(diffs.square().sum()) / (2 * (n - 1)) / n)


def drop_confidently_worse(values: "torch.Tensor", alive: list[int], z: float,
                            order: "torch.Tensor | None" = None) -> list[int]:
    """values[c, j]: per-sample errors of candidates c (lower = better) on shared samples j. Keep the
    current best and every candidate whose paired difference to it is not confidently above 0
    (standard error i.i.d., or stratified along t when ``order`` is given)."""
    if len(alive) < 2:
        return alive
    means = values[alive].mean(dim=1)
    best = alive[int(means.argmin())]
    keep = []
    for c in alive:
        if c == best:
            keep.append(c)
            continue
        d = values[c] - values[best]
        se = paired_standard_error(d, order)
        if not float(d.mean()) - z * se > 0:
            keep.append(c)
    return keep


