"""The diffusion scorer: Monte-Carlo denoising error of every image under every candidate text.

    error(x, c) = E_{t, ε} loss(ε, ε_θ(√ᾱ_t·x + √(1−ᾱ_t)·ε, t, c))

One set of (t, ε) is drawn per example (:mod:`~winoeval.scoring.plans`) and shared by all of that
example's images and texts, so comparisons between candidates are paired. Each example runs a stopping
rule (:mod:`~winoeval.scoring.decisions`) that asks for (image, text, sample) losses; the batch
scheduler (:mod:`~winoeval.scoring.scheduler`) packs the pending rows of several examples into full
model forwards, which this module computes and checks (:mod:`~winoeval.scoring.result`). The scorer
knows no concrete model: it talks to the :class:`winoeval.api.Denoiser` protocol.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..config import ScorerConfig
from ..errors import BadExampleError
from .decisions import decide
from .scheduler import InFlight, stream
from .plans import SamplePlan, make_plan
from .result import ScoreResult, check_errors, check_tensor, elementwise_loss

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DiffusionScorer:
    """Scores examples with a Denoiser. Text conditions are encoded once per scorer (per run).

    ``config.normalize`` (resolved by the runner; None counts as off) subtracts each image's
    unconditional error over the same samples."""

    #: memory the (t, ε) plans of the examples in flight may take together (CPU RAM)
    plan_memory = 1 << 30

    def __init__(self, model: Any, config: ScorerConfig):
        self.model = model
        self.config = config
        self.normalize = bool(config.normalize)
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
        self.alphas_cumprod = model.alphas_cumprod.double().cpu()
        self.num_train_timesteps = len(self.alphas_cumprod)
        self.forward_rows: list[int] = []  # rows of every model forward (for tests and benchmarks)

    # -- encoding, cached per run ------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str], example_id: str = "?") -> "torch.Tensor":
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._conds))
        if missing:
            with torch.inference_mode():
                encoded = self.model.encode_texts(missing)
            # conditions are opaque to the scorer (a plugin may mark the unconditional one with NaN):
            # only their number is checked
            check_tensor(example_id, "encode_texts", encoded, len(missing), finite=False)
            for text, row in zip(missing, encoded):
                self._conds[text] = row
        return torch.stack([self._conds[t] for t in texts])

    def encode_images(self, images: Sequence[Any], example_id: str = "?") -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            latents = self.model.encode_images(list(images))
        return check_tensor(example_id, "encode_images", latents, len(images),
                            row_names=[f"image {i}" for i in range(len(images))])

    def plan(self, example_id: str, latent_shape: Sequence[int]) -> SamplePlan:
        if self.config.noise == "shared":
            if self._shared_plan is None or tuple(self._shared_plan.noise.shape[1:]) != tuple(latent_shape):
                self._shared_plan = make_plan(example_id, latent_shape, self.num_train_timesteps, self.config)
            return self._shared_plan
        return make_plan(example_id, latent_shape, self.num_train_timesteps, self.config)

    # -- one example: start, advance, finish ---------------------------------------------------
    def start(self, key, example_id: str, images, texts) -> InFlight:
        """Read and encode an example, draw its plan and start its stopping rule."""
        import torch

        if callable(images):
            images = images()
        texts = list(texts)
        latents = self.encode_images(list(images), example_id).float().cpu()
        conds = self.encode_texts(texts + ([""] if self.normalize else []), example_id)
        I, K, N = latents.shape[0], len(texts), self.config.max_samples
        plan = self.plan(example_id, latents.shape[1:])
        errs = torch.full((I, K + 1, N), float("nan"), dtype=torch.float64)
        w = InFlight(key, example_id, texts, latents, conds, plan, errs)
        w.proc = decide(errs, plan.t, self.config)
        self.advance(w, None)
        return w

    def advance(self, w: InFlight, values) -> None:
        """Store the losses of ``w``'s last jobs, then run its rule until it asks for a non-empty job
        list or ends (``w.result`` set)."""
        import torch

        if values is not None and w.jobs:
            w.errs[w.idx[:, 0], w.idx[:, 1], w.idx[:, 2]] = values.double()
        while True:
            try:
                jobs = next(w.proc)
            except StopIteration as stop:
                w.result, w.jobs = self.result(w, stop.value), []
                return
            if jobs:
                w.jobs = jobs
                w.idx = torch.tensor(jobs, dtype=torch.long).reshape(-1, 3)
                w.values = torch.empty(len(jobs), dtype=torch.float32)
                w.filled = 0
                return

    def result(self, w: InFlight, alive) -> ScoreResult:
        import torch

        errs = w.errs
        I, K = errs.shape[0], errs.shape[1] - 1
        n_used = (~errs[:, :K].isnan()).sum(dim=2)
        errors = torch.nanmean(errs[:, :K], dim=2)  # the mean over the samples each candidate was given
        check_errors(w.example_id, errors, alive, w.texts)
        if self.normalize:
            uncond = errs[:, K]
            # the unconditional error over the same samples each candidate used
            base = torch.stack([torch.stack([uncond[i, : n_used[i, k]].mean() for k in range(K)]) for i in range(I)])
            scores = -(errors - base)
        else:
            scores = -errors.clone()
        for i in range(I):
            dead = [k for k in range(K) if k not in alive[i]]
            scores[i, dead] = -math.inf  # pruned by the scorer's own rule, never by a model's value
        n_evals = int((~errs.isnan()).sum())
        return ScoreResult(scores, errors, n_used, n_evals, errs[:, :K], errs[:, K] if self.normalize else None,
                           w.plan.t)

    # -- model forwards over packed rows -----------------------------------------------------
    def noised(self, z0: "torch.Tensor", t: "torch.Tensor", eps: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """(x_t, target) of rows with clean latents z0, timesteps t and noise ε (ε-prediction:
        x_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε, target ε), in float32."""
        ab = self.alphas_cumprod
        shape = [-1] + [1] * (z0.dim() - 1)
        return ab[t].sqrt().float().view(shape) * z0 + (1 - ab[t]).sqrt().float().view(shape) * eps, eps

    def forward(self, segments) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Losses of the rows ``segments`` = [(example in flight, first job, end job)] in one forward,
        and a per-row flag: True where the model's prediction was finite.

        Each row's x_t is computed from its own example's latent, t and ε exactly as when scored
        alone; the rows of several examples are concatenated into one batch. A prediction whose shape
        is not x_t's raises :class:`BadExampleError` (for the batch's first example: the scheduler
        fails every example of the batch with it)."""
        import torch

        model = self.model
        device, dtype = model.device, model.dtype
        xs, ts, cs, targets = [], [], [], []
        for w, lo, hi in segments:
            i, k, j = w.idx[lo:hi].unbind(1)
            t = w.plan.t[j]
            x_t, target = self.noised(w.latents[i], t, w.plan.noise[j])
            xs.append(x_t)
            ts.append(t)
            cs.append(w.conds[k])
            targets.append(target)
        cat = (lambda parts: parts[0]) if len(segments) == 1 else torch.cat
        x_t, t, cond, target = cat(xs), cat(ts), cat(cs), cat(targets)
        pred = self._predict(x_t.to(device=device, dtype=dtype), t.to(device), cond.to(device))
        self.forward_rows.append(len(t))
        if not isinstance(pred, torch.Tensor) or tuple(pred.shape) != tuple(x_t.shape):
            got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
            raise BadExampleError(segments[0][0].example_id, f"the model's predict_noise returned {got} for x_t of "
                                                             f"shape {tuple(x_t.shape)}: it must return x_t's shape")
        finite = torch.isfinite(pred.detach().reshape(len(t), -1)).all(dim=1).cpu()
        return elementwise_loss(pred, target.to(device), self.config.loss).cpu(), finite

    def halve_batch(self) -> None:
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

    # -- many examples ------------------------------------------------------------------------
    def score_stream(self, items: Iterable[tuple[Any, str, Any, Sequence[str]]]) -> Iterator[tuple[Any, Any]]:
        """Score many examples, packing their pending evaluations into full model batches (see
        :func:`winoeval.scoring.scheduler.stream`). Yields (key, :class:`ScoreResult`) as each example
        finishes, or (key, exception) when it could not be read or its model outputs failed the checks."""
        return stream(self, items)

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        """One example alone (its jobs in forwards of ``batch_size`` rows, nothing else in them)."""
        for _, result in self.score_stream([(None, example_id, images, texts)]):
            if isinstance(result, BaseException):
                raise result
            return result
        raise AssertionError("unreachable")  # pragma: no cover


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
