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

import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..config import ScorerConfig
from ..errors import BadExampleError
from .decisions import decide
from .scheduler import InFlight, stream
from .plans import SamplePlan, make_plan
from .objectives import objective_for
from .result import ScoreResult, check_tensor, elementwise_loss

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
        self.objective = objective_for(model)  # ε, v or flow: how to noise and what to compare with
        self.num_train_timesteps = self.objective.num_train_timesteps
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

    # -- one example in -----------------------------------------------------------------------
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
        w = InFlight(key, example_id, texts, latents, conds, plan, errs, self.normalize)
        w.proc = decide(errs, plan.t, self.config)
        w.advance(None)
        return w

    # -- model forwards over packed rows -----------------------------------------------------
    def forward(self, segments) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Losses of the rows ``segments`` = [(example in flight, first job, end job)] in one forward, and
        per row whether the prediction was finite. Each row's x_t comes from its own example's latent, t
        and ε, exactly as when scored alone. A prediction not of x_t's shape raises BadExampleError."""
        import torch

        model = self.model
        device, dtype = model.device, model.dtype
        xs, ts, cs, targets = [], [], [], []
        for w, lo, hi in segments:
            i, k, j = w.idx[lo:hi].unbind(1)
            t = w.plan.t[j]
            x_t, target = self.objective.noised(w.latents[i], t, w.plan.noise[j])
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

    # -- many examples ------------------------------------------------------------------------
    def score_stream(self, items: Iterable[tuple[Any, str, Any, Sequence[str]]]) -> Iterator[tuple[Any, Any]]:
        """Many examples, their rows packed into full batches: see :func:`winoeval.scoring.scheduler.stream`."""
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
