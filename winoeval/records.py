"""An example's record: what a scorer returned, as the JSON line the resume cache and the samples file
hold (scores, errors, evaluations, verdicts, tags), or a skipped record naming why."""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

from . import metrics
from .api import Example, TaskData
from .errors import BadExampleError, ConfigError, WinoevalError


def resolve_images(example: Example) -> list[Any]:
    """An example's images, decoding them when ``images`` is a zero-argument callable. Any failure of a
    loader (decoders also raise RuntimeError, MemoryError, KeyError, …) is a ValueError naming the
    example's images, so that it is a bad example (skippable with --skip-bad), not an unforeseen error."""
    try:
        images = example.images() if callable(example.images) else example.images
        return list(images)
    except (OSError, ValueError, SyntaxError, WinoevalError):
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party task's own image loader
        raise ValueError(f"its images could not be loaded ({type(exc).__name__}: {exc})") from None


def _json_scores(matrix) -> list[list[float | None]]:
    """Score matrices for JSON: floats, with ±inf and NaN (pruned candidates) as null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in matrix.tolist()]


def _uncond_errors(result) -> list[list[float | None]] | None:
    """When normalised: per (image, text) the unconditional error over the samples that text used, so
    that ``scores == -(errors - uncond_errors)``; None (left out of the record) otherwise."""
    per_sample = getattr(result, "uncond_errors", None)
    if per_sample is None:
        return None
    import torch

    n_used = result.n_used
    return _json_scores(torch.stack([torch.stack([per_sample[i, : int(n_used[i, k])].mean()
                                                  for k in range(n_used.shape[1])])
                                     for i in range(n_used.shape[0])]))


def example_record(task: TaskData, example: Example, result: Any, skip_bad: bool) -> dict:
    """A JSON-ready record from a ScoreResult, or a skipped record (``skip_bad``) when ``result`` is the
    exception scoring raised (an unreadable image; a model output that failed the scorer's checks)."""
    try:
        if isinstance(result, BaseException):
            raise result
        raw = result.scores.tolist()
        if any(math.isnan(v) or v == math.inf for row in raw for v in row) or \
                all(v == -math.inf for row in raw for v in row):  # a scorer bug, not a plugin's value
            raise BadExampleError(example.id, "the scores are not finite (NaN or inf)")
    except BadExampleError as exc:
        if not skip_bad:
            raise
        return {"id": example.id, "skipped": exc.reason}
    except ConfigError:
        raise  # a bad setting, not a bad example
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for unreadable images
        error = BadExampleError(example.id, f"{type(exc).__name__}: {exc}")
        if not skip_bad:
            raise error from exc
        return {"id": example.id, "skipped": error.reason}
    record = {
        "id": example.id,
        "texts": list(example.texts) if task.texts is None else None,
        "scores": _json_scores(result.scores),
        "errors": _json_scores(result.errors),
        "uncond_errors": _uncond_errors(result),
        "n_evals": result.n_evals,
        "verdicts": metrics.verdicts(task.metric, raw, example.label),  # scores are finite or -inf (pruned)
        "label": example.label,
        "meta": example.meta,
    }
    return {k: v for k, v in record.items() if v is not None or k == "label"}


def score_records(scorer, task: TaskData, examples: Iterable[Example], skip_bad: bool) -> Iterator[dict]:
    """Score ``examples`` through the scorer's ``score_stream`` (several examples in flight, their
    evaluations packed into full model batches); yields one record per example as it finishes, not
    necessarily in input order. Images are read when an example is admitted, so an unreadable one
    is blamed on its own example. Without ``skip_bad`` a bad example stops the admission of new ones;
    the examples already in flight still finish (and are yielded, so the caller caches them) before
    the first error is raised."""
    waiting: dict[int, Example] = {}
    failure: list[BaseException] = []

    def items():
        for n, example in enumerate(examples):
            if failure:
                return
            waiting[n] = example
            yield n, example.id, (lambda example=example: resolve_images(example)), example.texts

    if scorer is None:  # nothing to score: just walk the examples
        for _ in items():
            pass
        return
    for n, result in scorer.score_stream(items()):
        try:
            record = example_record(task, waiting.pop(n), result, skip_bad)
        except BadExampleError as exc:
            failure.append(exc)
            continue
        if getattr(scorer, "log_errors", False) and "skipped" not in record:  # --log-errors
            from .errorlog import per_sample

            record["per_sample"] = per_sample(scorer, result)
        yield record
    if failure:
        raise failure[0]
