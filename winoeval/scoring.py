"""The diffusion scorer: Monte-Carlo denoising error of every image under every candidate text.

    error(x, c) = E_{t, ε} loss(ε, ε_θ(√ᾱ_t·x + √(1−ᾱ_t)·ε, t, c))

One set of (t, ε) is drawn per example, from (seed, example id) alone, and shared by all of that
example's images and texts: comparisons between candidates are paired, and a score never depends on
batch size, example order or ``--limit``. The scorer knows no concrete model: it talks to the
:class:`winoeval.api.Denoiser` protocol.

Samples are kept in a *prefix order*: the first n of the N drawn samples are spread over [0, T)
(van der Corput order over the timestep grid), so adaptive pruning stages and early stopping can
reuse earlier samples and still look at every noise level.

Scheduling: :meth:`DiffusionScorer.score_stream` keeps several examples in flight and packs their
pending evaluations (fixed-budget stages, early-decision chunks, unconditional rows) into full model
batches. Each example is a small procedure that asks for the losses of (image, text, sample) jobs and
decides from them alone; only which rows share a forward changes. ``score`` is the same procedure
with one example in flight.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .config import ScorerConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch


def example_seed(seed: int, example_id: str) -> int:
    """A 63-bit seed from the run seed and an example id (stable across processes and versions)."""
    digest = hashlib.sha256(f"{seed}\x00{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def van_der_corput(i: int, base: int = 2) -> float:
    """The i-th element of the van der Corput sequence in [0, 1)."""
    value, denom = 0.0, 1.0
    while i:
        i, digit = divmod(i, base)
        denom *= base
        value += digit / denom
    return value


def low_discrepancy_order(n: int) -> list[int]:
    """A permutation of range(n) whose every prefix is spread evenly over it."""
    order, seen, j = [], set(), 0
    while len(order) < n:
        k = min(int(van_der_corput(j) * n), n - 1)
        if k not in seen:
            seen.add(k)
            order.append(k)
        j += 1
    return order


def draw_timesteps(n: int, num_train_timesteps: int, mode: str, generator: "torch.Generator") -> "torch.Tensor":
    """n timesteps in [0, T), in prefix order.

    ``even``: floor((k + ½)·T/n), the official protocol's grid; ``stratified``: one uniform draw in
    each of n equal bins; ``uniform``: independent uniform draws.
    """
    import torch

    T = num_train_timesteps
    if mode == "uniform":
        return torch.randint(0, T, (n,), generator=generator)
    k = torch.arange(n, dtype=torch.float64)
    offset = torch.full((n,), 0.5, dtype=torch.float64) if mode == "even" else \
        torch.rand(n, generator=generator, dtype=torch.float64)
    grid = torch.floor((k + offset) * T / n).long().clamp_(0, T - 1)
    return grid[torch.tensor(low_discrepancy_order(n))]


@dataclass
class SamplePlan:
    """The shared (t, ε) of one example: t (N,) long, noise (N, *latent_shape) float32 on CPU."""

    t: "torch.Tensor"
    noise: "torch.Tensor"


SHARED_PLAN_ID = "\x01shared-noise"  # not a possible example id of any built-in task


def plan_seed(config: ScorerConfig, example_id: str) -> int:
    """The seed of an example's (t, ε): from (seed, example id) with ``noise="per-example"`` (the
    default), from the seed alone with ``noise="shared"`` (every example gets the same (t, ε), as
    the original protocol's single saved noise tensor)."""
    return example_seed(config.seed, SHARED_PLAN_ID if config.noise == "shared" else example_id)


def make_plan(example_id: str, latent_shape: Sequence[int], num_train_timesteps: int,
              config: ScorerConfig) -> SamplePlan:
    import torch

    gen = torch.Generator().manual_seed(plan_seed(config, example_id))
    n = config.max_samples
    t = draw_timesteps(n, num_train_timesteps, config.timesteps, gen)
    noise = torch.randn((n, *latent_shape), generator=gen, dtype=torch.float32)
    return SamplePlan(t, noise)


def elementwise_loss(pred: "torch.Tensor", target: "torch.Tensor", loss: str) -> "torch.Tensor":
    """Per-item loss, averaged over every non-batch dimension, in float32."""
    import torch.nn.functional as F

    pred, target = pred.float(), target.float()
    if loss == "l2":
        per = (pred - target).square()
    elif loss == "l1":
        per = (pred - target).abs()
    elif loss == "huber":
        per = F.huber_loss(pred, target, reduction="none", delta=1.0)
    else:  # ScorerConfig validates; this guards direct callers
        raise ValueError(f"unknown loss {loss!r}")
    return per.flatten(1).mean(dim=1)


@dataclass
class ScoreResult:
    """Scores of one example.

    ``scores[i, k]`` is higher for a better match of image i and text k (−error, or −(error − the
    unconditional error) when normalised); candidates pruned before the last stage get −inf.
    ``sample_errors[i, k, j]`` is the loss of sample j (NaN where not evaluated); ``uncond_errors[i, j]``
    is present when normalised. ``n_evals`` counts model forward items (one per image, text, sample).
    """

    scores: "torch.Tensor"
    errors: "torch.Tensor"
    n_used: "torch.Tensor"
    n_evals: int
    sample_errors: "torch.Tensor | None" = None
    uncond_errors: "torch.Tensor | None" = None
    t: "torch.Tensor | None" = None
    per_sample: "dict | None" = None  # with log_errors: winoeval.rescore's encoding of the errors above


class _InFlight:
    """One example inside the scheduler: its inputs, its (t, ε), its error table and its procedure
    (a generator that yields job lists ``[(image, cond, sample)]`` and is sent their losses)."""

    __slots__ = ("key", "example_id", "latents", "conds", "plan", "errs", "proc", "jobs", "idx", "values",
                 "filled", "result")

    def __init__(self, key, example_id, latents, conds, plan, errs):
        self.key, self.example_id = key, example_id
        self.latents, self.conds, self.plan, self.errs = latents, conds, plan, errs
        self.proc = None
        self.jobs: list = []
        self.idx = None
        self.values = None
        self.filled = 0
        self.result = None


class DiffusionScorer:
    """Scores examples with a Denoiser. Text conditions are encoded once per scorer (per run)."""

    #: memory the (t, ε) plans of the examples in flight may take together (CPU RAM)
    plan_memory = 1 << 30
    log_errors = False  # set by the runner for --log-errors

    def __init__(self, model: Any, config: ScorerConfig, normalize: bool = False):
        self.model = model
        self.config = config
        self.normalize = normalize
        self._conds: dict[str, "torch.Tensor"] = {}
        self._shared_plan: SamplePlan | None = None
        device = getattr(model, "device", None)
        on_gpu = getattr(device, "type", "cpu") == "cuda"
        auto = 512 if on_gpu else 128
        self.batch_size = auto if config.batch_size == "auto" else config.batch_size  # shrinks on OOM
        if not on_gpu:
            tune_cpu_allocator()
        self._predict = model.predict_noise
        if config.compile:
            import torch

            self._predict = torch.compile(model.predict_noise, dynamic=True)
        from .objectives import noise_grid, objective_of

        self.objective = objective_of(model)  # what predict_noise returns: ε, v or the flow velocity
        self.grid = noise_grid(model, self.objective)  # alphas_cumprod, or sigmas for flow (CPU float64)
        if self.objective != "flow":
            self.alphas_cumprod = self.grid
        self.num_train_timesteps = len(self.grid)
        self.forward_rows: list[int] = []  # rows of every model forward (for tests and benchmarks)

    # -- encoding, cached per run ------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> "torch.Tensor":
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._conds))
        if missing:
            with torch.inference_mode():
                encoded = self.model.encode_texts(missing)
            for text, row in zip(missing, encoded):
                self._conds[text] = row
        return torch.stack([self._conds[t] for t in texts])

    def encode_images(self, images: Sequence[Any]) -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            return self.model.encode_images(list(images))

    def plan(self, example_id: str, latent_shape: Sequence[int]) -> SamplePlan:
        if self.config.noise == "shared":
            if self._shared_plan is None or tuple(self._shared_plan.noise.shape[1:]) != tuple(latent_shape):
                self._shared_plan = make_plan(example_id, latent_shape, self.num_train_timesteps, self.config)
            return self._shared_plan
        return make_plan(example_id, latent_shape, self.num_train_timesteps, self.config)

    # -- model forwards over packed rows -----------------------------------------------------
    def _forward(self, segments) -> "torch.Tensor":
        """Losses of the rows ``segments`` = [(example in flight, first job, end job)], one forward.

        Each row's x_t is computed from its own example's latent, t and ε exactly as when scored
        alone; the rows of several examples are concatenated into one batch."""
        import torch

        from .objectives import noised_and_target

        model = self.model
        device, dtype = model.device, model.dtype
        xs, ts, cs, es = [], [], [], []
        for w, lo, hi in segments:
            i, k, j = w.idx[lo:hi].unbind(1)
            t = w.plan.t[j]
            # x_t and the target of the model's objective (ε, v or flow: see winoeval.objectives)
            x_t, target = noised_and_target(self.objective, self.grid, w.latents[i], t, w.plan.noise[j])
            xs.append(x_t)
            ts.append(t)
            cs.append(w.conds[k])
            es.append(target)
        cat = (lambda parts: parts[0]) if len(segments) == 1 else torch.cat
        x_t, t, cond, eps = cat(xs), cat(ts), cat(cs), cat(es)
        pred = self._predict(x_t.to(device=device, dtype=dtype), t.to(device), cond.to(device))
        self.forward_rows.append(len(t))
        return elementwise_loss(pred, eps.to(device), self.config.loss).cpu()

    def _halve_batch(self, exc: BaseException) -> None:
        import warnings

        new = max(1, self.batch_size // 2)
        warnings.warn(f"out of memory at batch size {self.batch_size}; continuing with {new} "
                      f"(pass --batch-size {new} next time)", RuntimeWarning, stacklevel=3)
        self.batch_size = new
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass

    # -- one example's procedure (a generator: yields job lists, is sent their losses) -----------
    def _evaluate(self, errs, cells, start: int, stop: int):
        """Fill errs[i, k, start:stop] for the (image, candidate) cells (+ the unconditional ones)."""
        I, K = errs.shape[0], errs.shape[1] - 1
        jobs = [(i, k, j) for i, k in cells for j in range(start, stop)]
        if self.normalize:
            jobs += [(i, K, j) for i in range(I) for j in range(start, stop)]
        values = yield jobs
        if jobs:
            import torch

            idx = torch.tensor(jobs, dtype=torch.long)
            errs[idx[:, 0], idx[:, 1], idx[:, 2]] = values.double()

    def _stages(self, w):
        """Fixed budgets, optionally with the paper's adaptive pruning: after each (n_samples, to_keep)
        stage keep the to_keep lowest-error candidates of each image; later stages reuse the samples."""
        import torch

        cfg, errs = self.config, w.errs
        I, K = errs.shape[0], errs.shape[1] - 1
        alive = [list(range(K)) for _ in range(I)]
        done = 0
        for n_stage, keep in zip(cfg.n_samples, cfg.to_keep or (None,) * len(cfg.n_samples)):
            yield from self._evaluate(errs, [(i, k) for i in range(I) for k in alive[i]], done, n_stage)
            done = n_stage
            if keep is not None:
                for i in range(I):
                    if keep < len(alive[i]):
                        means = errs[i, alive[i], :n_stage].mean(dim=1)
                        order = torch.argsort(means, stable=True)[:keep].tolist()
                        alive[i] = sorted(alive[i][o] for o in order)
        return alive

    def _early_decision(self, w):
        """Sequential paired stopping. Samples are taken in chunks (prefix order: every prefix covers
        [0, T)); after each chunk, from ``min_samples`` on, a candidate is dropped once its mean paired
        difference to the current best, minus z standard errors, is above 0 (z from ``confidence``).
        The standard error is the stratified one (``variance="stratified"``, the default: successive
        differences of the paired differences in timestep order, so a difference that changes
        smoothly with t is not read as noise; with ``timesteps="uniform"`` the t are independent draws
        and the i.i.d. estimate is the right one, so it is used) or the i.i.d. one (``variance="iid"``).
        One image: dropped candidates stop being evaluated (the fixed to_keep schedule, made
        adaptive). Several images (Winoground): the example stops once every row comparison (texts
        of an image) and every column comparison (images of a text, normalised when enabled) is
        decided, or at the budget; all cells keep the same samples so the 2×2 matrix stays paired."""
        from statistics import NormalDist

        cfg, errs = self.config, w.errs
        I, K, N = errs.shape[0], errs.shape[1] - 1, errs.shape[2]
        z = NormalDist().inv_cdf(1 - (1 - cfg.confidence) / 2)
        # successive differences along t estimate the variance of a stratified/systematic design's mean; with
        # independent uniform t the spread across t is part of the mean's variance: the i.i.d. estimate is right
        stratified = cfg.variance == "stratified" and cfg.timesteps != "uniform"
        rows = [list(range(K)) for _ in range(I)]
        cols = [list(range(I)) for _ in range(K)] if I > 1 else [[0] for _ in range(K)]
        done = 0
        while done < N:
            stop = min(N, max(done + cfg.chunk, cfg.min_samples))
            cells = [(i, k) for i in range(I) for k in (range(K) if I > 1 else rows[i])]
            yield from self._evaluate(errs, cells, done, stop)
            done = stop
            order = timestep_order(w.plan.t[:done]) if stratified else None
            for i in range(I):
                rows[i] = _drop_confidently_worse(errs[i, :, :done], rows[i], z, order)
            if I > 1:
                q = errs[:, :K, :done] - (errs[:, K:, :done] if self.normalize else 0)
                for k in range(K):
                    cols[k] = _drop_confidently_worse(q[:, k], cols[k], z, order)
            if all(len(r) == 1 for r in rows) and all(len(c) == 1 for c in cols):
                break
        return rows if I == 1 else [list(range(K)) for _ in range(I)]

    def _procedure(self, w):
        alive = yield from (self._early_decision(w) if self.config.early_stop else self._stages(w))
        result = self._result(w, alive)
        if self.log_errors:  # --log-errors: keep every per-(t, ε) error in the record (winoeval.rescore)
            from .errorlog import per_sample

            result.per_sample = per_sample(self, result)
        return result

    def _result(self, w, alive) -> ScoreResult:
        import torch

        errs = w.errs
        I, K = errs.shape[0], errs.shape[1] - 1
        n_used = (~errs[:, :K].isnan()).sum(dim=2)
        errors = torch.nanmean(errs[:, :K], dim=2)
        if self.normalize:
            uncond = errs[:, K]
            # the unconditional error over the same samples each candidate used
            base = torch.stack([torch.stack([uncond[i, : n_used[i, k]].mean() for k in range(K)]) for i in range(I)])
            scores = -(errors - base)
        else:
            scores = -errors.clone()
        for i in range(I):
            dead = [k for k in range(K) if k not in alive[i]]
            scores[i, dead] = -math.inf
        n_evals = int((~errs.isnan()).sum())
        return ScoreResult(scores, errors, n_used, n_evals, errs[:, :K], errs[:, K] if self.normalize else None,
                           w.plan.t)

    # -- the scheduler ------------------------------------------------------------------------
    def _start(self, key, example_id: str, images, texts) -> _InFlight:
        import torch

        if callable(images):
            images = images()
        texts = list(texts)
        latents = self.encode_images(list(images)).float().cpu()
        conds = self.encode_texts(texts + ([""] if self.normalize else []))
        I, K, N = latents.shape[0], len(texts), self.config.max_samples
        plan = self.plan(example_id, latents.shape[1:])
        errs = torch.full((I, K + 1, N), float("nan"), dtype=torch.float64)
        w = _InFlight(key, example_id, latents, conds, plan, errs)
        w.proc = self._procedure(w)
        self._advance(w, None)
        return w

    def _advance(self, w: _InFlight, values) -> None:
        """Send ``values`` (None to start) until the procedure asks for a non-empty job list or ends."""
        import torch

        while True:
            try:
                jobs = w.proc.send(values)
            except StopIteration as stop:
                w.result, w.jobs = stop.value, []
                return
            if jobs:
                w.jobs = jobs
                w.idx = torch.tensor(jobs, dtype=torch.long).reshape(-1, 3)
                w.values = torch.empty(len(jobs), dtype=torch.float32)
                w.filled = 0
                return
            values = torch.empty(0, dtype=torch.float32)

    def score_stream(self, items: Iterable[tuple[Any, str, Any, Sequence[str]]]) -> Iterator[tuple[Any, Any]]:
        """Score many examples, packing their pending evaluations into full model batches.

        ``items``: (key, example id, images or a function returning them, texts). Yields (key,
        :class:`ScoreResult`) as each example finishes (not necessarily in input order), or (key,
        exception) when its images could not be read or encoded. Examples are admitted while fewer
        than ``batch_size`` evaluations are pending (bounded by ``plan_memory``); every forward takes
        ``batch_size`` rows from the queue of pending jobs (first come, first served), and only the
        last forwards of the stream are smaller. On CUDA out-of-memory the batch size is halved (once
        per occurrence, for the rest of the run) and the same rows are retried."""
        import torch

        queue: deque[_InFlight] = deque()  # examples with pending jobs, in arrival order
        pending = 0
        in_flight = 0
        limit = self.batch_size
        source = iter(items)
        exhausted = False
        with torch.inference_mode():
            while True:
                while not exhausted and pending < self.batch_size and in_flight < limit:
                    try:
                        key, example_id, images, texts = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    try:
                        w = self._start(key, example_id, images, texts)
                    except Exception as exc:  # unreadable images and the like: the caller decides
                        yield key, exc
                        continue
                    if w.result is not None:
                        yield key, w.result
                        continue
                    plan_bytes = w.plan.noise.element_size() * w.plan.noise.nelement()
                    limit = max(2, min(self.batch_size, self.plan_memory // max(1, plan_bytes)))
                    queue.append(w)
                    pending += len(w.jobs) - w.filled
                    in_flight += 1
                if not queue:
                    return
                bs = self.batch_size
                segments, need = [], bs
                head = queue[0]
                for w in queue:
                    if w.latents.shape[1:] != head.latents.shape[1:] or w.conds.shape[1:] != head.conds.shape[1:]:
                        continue  # rows of one forward must stack (a model that keeps each image's size)
                    take = min(need, len(w.jobs) - w.filled)
                    segments.append((w, w.filled, w.filled + take))
                    need -= take
                    if not need:
                        break
                try:
                    losses = self._forward(segments)
                except Exception as exc:
                    if not _is_out_of_memory(exc) or bs == 1:
                        raise
                    self._halve_batch(exc)
                    continue
                pos = 0
                for w, lo, hi in segments:
                    w.values[lo:hi] = losses[pos:pos + hi - lo]
                    pos += hi - lo
                    w.filled = hi
                    pending -= hi - lo
                    if w.filled < len(w.jobs):
                        continue
                    queue.remove(w)
                    self._advance(w, w.values)
                    if w.result is not None:
                        in_flight -= 1
                        yield w.key, w.result
                    else:
                        queue.append(w)
                        pending += len(w.jobs)

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        """One example alone (its jobs in forwards of ``batch_size`` rows, nothing else in them)."""
        for _, result in self.score_stream([(None, example_id, images, texts)]):
            if isinstance(result, BaseException):
                raise result
            return result
        raise AssertionError("unreachable")  # pragma: no cover


class MatcherScorer:
    """Direct matchers (CLIP-like) through the same path: scores = similarity(images, texts).

    ``score_stream`` encodes the images of many examples and their distinct texts in shared forwards
    when the model offers ``encode_images``/``encode_texts`` (embeddings whose dot product is the
    similarity, as :class:`winoeval.plugins.openclip.OpenCLIPMatcher`), then takes each example's
    block; otherwise it calls ``similarity`` per example."""

    def __init__(self, model: Any, examples_per_forward: int | None = None):
        self.model = model
        self.batched = callable(getattr(model, "encode_images", None)) and callable(getattr(model, "encode_texts", None))
        self.examples_per_forward = examples_per_forward or max(1, int(getattr(model, "batch_size", 64)) // 2)

    def _result(self, sims) -> ScoreResult:
        import torch

        sims = sims.double().cpu()
        return ScoreResult(sims, -sims, torch.zeros(sims.shape, dtype=torch.long), 0)

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        import torch

        with torch.inference_mode():
            return self._result(self.model.similarity(list(images), list(texts)))

    def _one_by_one(self, group) -> Iterator[tuple[Any, Any]]:
        """Score each example of ``group`` alone; an unreadable one yields its exception."""
        for key, example_id, images, texts in group:
            try:
                yield key, self.score(example_id, images, texts)
            except (OSError, ValueError, SyntaxError) as exc:
                yield key, exc

    def score_stream(self, items: Iterable[tuple[Any, str, Any, Sequence[str]]]) -> Iterator[tuple[Any, Any]]:
        """Like :meth:`DiffusionScorer.score_stream`: yields (key, ScoreResult or exception)."""
        import torch

        source = iter(items)
        while True:
            group = []
            for key, example_id, images, texts in source:
                try:
                    images = list(images() if callable(images) else images)
                except Exception as exc:
                    yield key, exc
                    continue
                group.append((key, example_id, images, list(texts)))
                if len(group) >= self.examples_per_forward:
                    break
            if not group:
                return
            if not self.batched or len(group) == 1:
                yield from self._one_by_one(group)
                continue
            try:
                with torch.inference_mode():
                    feats = self.model.encode_images([im for g in group for im in g[2]])
                    distinct = list(dict.fromkeys(t for g in group for t in g[3]))
                    text_feats = self.model.encode_texts(distinct)
            except (OSError, ValueError, SyntaxError):  # one unreadable image: find it example by example
                yield from self._one_by_one(group)
                continue
            row = {t: n for n, t in enumerate(distinct)}
            start = 0
            for key, example_id, images, texts in group:
                img = feats[start:start + len(images)]
                start += len(images)
                txt = text_feats[[row[t] for t in texts]]
                yield key, self._result((img @ txt.T).cpu())


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


def _drop_confidently_worse(values: "torch.Tensor", alive: list[int], z: float,
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


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> None:
    """Keep glibc from returning big tensor buffers to the OS after every batch.

    Large CPU batches otherwise pay for mmap/munmap and page faults on every forward (measured here:
    raising the mmap and trim thresholds halved the time at batch 1000). Same effect as the
    MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ environment variables, applied at run time."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("WINOEVAL_NO_MALLOPT"):
        return
    _ALLOCATOR_TUNED = True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def make_scorer(model: Any, config: ScorerConfig, normalize: bool = False):
    kind = getattr(model, "kind", None)
    if kind == "denoiser":
        return DiffusionScorer(model, config, normalize=normalize)
    if kind == "matcher":
        return MatcherScorer(model)
    raise TypeError(f"model {type(model).__name__} has kind {kind!r}; expected 'denoiser' or 'matcher'")
