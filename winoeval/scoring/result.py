"""What a scorer returns, and the one place where what a plugin returns is checked.

A plugin's outputs (latents, conditions, predicted noise, similarities) must have the shape the
contract in :mod:`winoeval.api` gives and be finite: NaN and ±inf are never legal values. A value that
breaks this is a :class:`~winoeval.errors.BadExampleError` naming the example, the image–text pair and
the value (skippable with ``--skip-bad``); it is never averaged away, and never read as a pruned
candidate. Pruning is the scorer's own decision: only it writes −inf into a score matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import BadExampleError

if TYPE_CHECKING:  # pragma: no cover
    import torch


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




def _first_bad(values: "torch.Tensor") -> str:
    import torch

    bad = values[~torch.isfinite(values)]
    return str(float(bad.flatten()[0])) if bad.numel() else "?"


def check_tensor(example_id: str, what: str, value: Any, rows: int, row_names: Sequence[str] | None = None,
                 shape: Sequence[int] | None = None, finite: bool = True) -> "torch.Tensor":
    """``value`` must be a tensor with ``rows`` rows (and exactly ``shape`` when given) and, with
    ``finite``, a floating-point one whose every entry is finite. Returns it; raises
    :class:`BadExampleError` naming the example, the row and the value."""
    import torch

    if not isinstance(value, torch.Tensor) or (finite and not value.is_floating_point()):
        kind = type(value).__name__ if not isinstance(value, torch.Tensor) else f"a tensor of {value.dtype}"
        raise BadExampleError(example_id, f"the model's {what} returned {kind}, not a floating-point tensor")
    expected = tuple(shape) if shape is not None else None
    if value.dim() == 0 or value.shape[0] != rows or (expected is not None and tuple(value.shape) != expected):
        want = f"shape {expected}" if expected is not None else f"{rows} row(s)"
        raise BadExampleError(example_id, f"the model's {what} returned shape {tuple(value.shape)}, expected {want}")
    if not finite:
        return value
    ok = torch.isfinite(value.detach().reshape(rows, -1)).all(dim=1)
    if not bool(ok.all()):
        row = int((~ok).nonzero()[0])
        name = f" ({row_names[row]})" if row_names is not None else f" (row {row})"
        raise BadExampleError(example_id, f"the model's {what} returned a non-finite value "
                                          f"({_first_bad(value[row].float())}){name}")
    return value


def check_similarity(example_id: str, sims: Any, n_images: int, texts: Sequence[str]) -> "torch.Tensor":
    """A matcher's score block: (images, texts), finite (−inf included: a matcher never prunes)."""
    import torch

    if not isinstance(sims, torch.Tensor):
        try:
            sims = torch.as_tensor(sims, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise BadExampleError(example_id, f"the matcher's similarity returned {type(sims).__name__}, not a "
                                              f"tensor of shape ({n_images}, {len(texts)})") from None
    if tuple(sims.shape) != (n_images, len(texts)):
        raise BadExampleError(example_id, f"the matcher's similarity returned shape {tuple(sims.shape)}, expected "
                                          f"({n_images}, {len(texts)}) (images × texts)")
    if not sims.is_floating_point():
        sims = sims.double()
    bad = ~torch.isfinite(sims)
    if bool(bad.any()):
        i, k = (int(v) for v in bad.nonzero()[0])
        raise BadExampleError(example_id, f"the matcher returned a non-finite similarity "
                                          f"({float(sims[i, k])}) for image {i} and text {texts[k]!r}")
    return sims


def check_errors(example_id: str, errors: "torch.Tensor", alive: Sequence[Sequence[int]],
                 texts: Sequence[str]) -> None:
    """The Monte-Carlo mean error of every candidate still alive must be finite (a loss can overflow
    even from finite predictions, e.g. in float16)."""
    for i, row in enumerate(alive):
        for k in row:
            v = float(errors[i, k])
            if not math.isfinite(v):
                raise BadExampleError(example_id, f"the denoising error of image {i} and text {texts[k]!r} is "
                                                  f"not finite ({v})")


def result_from_errors(example_id: str, texts: Sequence[str], errs: "torch.Tensor", alive: Sequence[Sequence[int]],
                       normalize: bool, t: "torch.Tensor") -> ScoreResult:
    """An example's scores from its error table ``errs[i, k, j]`` (the last column the unconditional row;
    NaN where not evaluated) and the candidates its stopping rule kept alive per image."""
    import torch

    I, K = errs.shape[0], errs.shape[1] - 1
    n_used = (~errs[:, :K].isnan()).sum(dim=2)
    errors = torch.nanmean(errs[:, :K], dim=2)  # the mean over the samples each candidate was given
    check_errors(example_id, errors, alive, texts)
    if normalize:
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
    return ScoreResult(scores, errors, n_used, n_evals, errs[:, :K], errs[:, K] if normalize else None, t)
