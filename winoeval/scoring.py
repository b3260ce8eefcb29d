"""The diffusion scorer: Monte-Carlo denoising error of every image under every candidate text.

    error(x, c) = E_{t, ε} loss(ε, ε_θ(√ᾱ_t·x + √(1−ᾱ_t)·ε, t, c))

One set of (t, ε) is drawn per example, from (seed, example id) alone, and shared by all of that
example's images and texts: comparisons between candidates are paired, and a score never depends on
batch size, example order or ``--limit``. The scorer knows no concrete model: it talks to the
:class:`winoeval.api.Denoiser` protocol.

Samples are kept in a *prefix order*: the first n of the N drawn samples are spread over [0, T)
(van der Corput order over the timestep grid), so adaptive pruning stages and early stopping can
reuse earlier samples and still look at every noise level.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

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


def make_plan(example_id: str, latent_shape: Sequence[int], num_train_timesteps: int,
              config: ScorerConfig) -> SamplePlan:
    import torch

    gen = torch.Generator().manual_seed(example_seed(config.seed, example_id))
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


class DiffusionScorer:
    """Scores examples with a Denoiser. Text conditions are encoded once per scorer (per run)."""

    def __init__(self, model: Any, config: ScorerConfig, normalize: bool = False):
        self.model = model
        self.config = config
        self.normalize = normalize
        self._conds: dict[str, "torch.Tensor"] = {}
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
        self.alphas_cumprod = model.alphas_cumprod.double().cpu()
        self.num_train_timesteps = len(self.alphas_cumprod)

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

    # -- the Monte-Carlo estimate ------------------------------------------------------------
    def _run(self, latents, conds, plan, jobs):
        """Evaluate ``jobs`` = [(image index, cond index, sample index)]; returns a float32 tensor of losses.

        On CUDA out-of-memory the batch size is halved (once per occurrence, for the rest of the run)
        and the same batch is retried, so a long run goes on instead of dying."""
        import torch

        model = self.model
        device, dtype = model.device, model.dtype
        ab = self.alphas_cumprod
        out = torch.empty(len(jobs), dtype=torch.float32)
        idx = torch.tensor(jobs, dtype=torch.long).reshape(-1, 3)
        shape = [-1] + [1] * (latents.dim() - 1)
        start = 0
        with torch.inference_mode():
            while start < len(jobs):
                bs = self.batch_size
                i, k, j = idx[start:start + bs].unbind(1)
                t = plan.t[j]
                eps = plan.noise[j]
                x_t = ab[t].sqrt().float().view(shape) * latents[i] + (1 - ab[t]).sqrt().float().view(shape) * eps
                try:
                    pred = self._predict(x_t.to(device=device, dtype=dtype), t.to(device), conds[k].to(device))
                except Exception as exc:
                    if not _is_out_of_memory(exc) or bs == 1:
                        raise
                    self._halve_batch(exc)
                    continue
                out[start:start + len(i)] = elementwise_loss(pred, eps.to(device), self.config.loss).cpu()
                start += len(i)
        return out

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

    def _evaluate(self, latents, conds, plan, errs, cells, start: int, stop: int) -> None:
        """Fill errs[i, k, start:stop] for the (image, candidate) cells (+ the unconditional ones)."""
        I, K = errs.shape[0], errs.shape[1] - 1
        jobs = [(i, k, j) for i, k in cells for j in range(start, stop)]
        if self.normalize:
            jobs += [(i, K, j) for i in range(I) for j in range(start, stop)]
        for (i, k, j), value in zip(jobs, self._run(latents, conds, plan, jobs).tolist()):
            errs[i, k, j] = value

    def _stages(self, latents, conds, plan, errs) -> list[list[int]]:
        """Fixed budgets, optionally with the paper's adaptive pruning: after each (n_samples, to_keep)
        stage keep the to_keep lowest-error candidates of each image; later stages reuse the samples."""
        import torch

        cfg = self.config
        I, K = errs.shape[0], errs.shape[1] - 1
        alive = [list(range(K)) for _ in range(I)]
        done = 0
        for n_stage, keep in zip(cfg.n_samples, cfg.to_keep or (None,) * len(cfg.n_samples)):
            self._evaluate(latents, conds, plan, errs, [(i, k) for i in range(I) for k in alive[i]], done, n_stage)
            done = n_stage
            if keep is not None:
                for i in range(I):
                    if keep < len(alive[i]):
                        means = errs[i, alive[i], :n_stage].mean(dim=1)
                        order = torch.argsort(means, stable=True)[:keep].tolist()
                        alive[i] = sorted(alive[i][o] for o in order)
        return alive

    def _early_decision(self, latents, conds, plan, errs) -> list[list[int]]:
        """Sequential paired stopping. Samples are taken in chunks (prefix order: every prefix covers
        [0, T)); after each chunk, from ``min_samples`` on, a candidate is dropped once its mean paired
        difference to the current best, minus z standard errors, is above 0 (z from ``confidence``).
        One image: dropped candidates stop being evaluated (the fixed to_keep schedule, made
        adaptive). Several images (Winoground): the example stops once every row comparison (texts
        of an image) and every column comparison (images of a text, normalised when enabled) is
        decided, or at the budget; all cells keep the same samples so the 2×2 matrix stays paired."""
        from statistics import NormalDist

        cfg = self.config
        I, K, N = errs.shape[0], errs.shape[1] - 1, errs.shape[2]
        z = NormalDist().inv_cdf(1 - (1 - cfg.confidence) / 2)
        rows = [list(range(K)) for _ in range(I)]
        cols = [list(range(I)) for _ in range(K)] if I > 1 else [[0] for _ in range(K)]
        done = 0
        while done < N:
            stop = min(N, max(done + cfg.chunk, cfg.min_samples))
            cells = [(i, k) for i in range(I) for k in (range(K) if I > 1 else rows[i])]
            self._evaluate(latents, conds, plan, errs, cells, done, stop)
            done = stop
            for i in range(I):
                rows[i] = _drop_confidently_worse(errs[i, :, :done], rows[i], z)
            if I > 1:
                q = errs[:, :K, :done] - (errs[:, K:, :done] if self.normalize else 0)
                for k in range(K):
                    cols[k] = _drop_confidently_worse(q[:, k], cols[k], z)
            if all(len(r) == 1 for r in rows) and all(len(c) == 1 for c in cols):
                break
        return rows if I == 1 else [list(range(K)) for _ in range(I)]

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        import torch

        cfg = self.config
        texts = list(texts)
        latents = self.encode_images(images).float().cpu()
        all_texts = texts + ([""] if self.normalize else [])
        conds = self.encode_texts(all_texts)
        I, K, N = latents.shape[0], len(texts), cfg.max_samples
        plan = make_plan(example_id, latents.shape[1:], self.num_train_timesteps, cfg)
        errs = torch.full((I, K + 1, N), float("nan"), dtype=torch.float64)
        if cfg.early_stop:
            alive = self._early_decision(latents, conds, plan, errs)
        else:
            alive = self._stages(latents, conds, plan, errs)
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
        return ScoreResult(scores, errors, n_used, n_evals, errs[:, :K], errs[:, K] if self.normalize else None, plan.t)


class MatcherScorer:
    """Direct matchers (CLIP-like) through the same path: scores = similarity(images, texts)."""

    def __init__(self, model: Any):
        self.model = model

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        import torch

        with torch.inference_mode():
            sims = self.model.similarity(list(images), list(texts)).double().cpu()
        n_used = torch.zeros(sims.shape, dtype=torch.long)
        return ScoreResult(sims, -sims, n_used, 0)


def _drop_confidently_worse(values: "torch.Tensor", alive: list[int], z: float) -> list[int]:
    """values[c, j]: per-sample errors of candidates c (lower = better) on shared samples j. Keep the
    current best and every candidate whose paired difference to it is not confidently above 0."""
    if len(alive) < 2:
        return alive
    n = values.shape[-1]
    means = values[alive].mean(dim=1)
    best = alive[int(means.argmin())]
    keep = []
    for c in alive:
        if c == best:
            keep.append(c)
            continue
        d = values[c] - values[best]
        se = float(d.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.inf
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
