"""The batch scheduler: several examples in flight, their pending rows packed into full model batches.

Each example in flight (:class:`InFlight`) runs its own stopping rule, which asks for (image, text,
sample) rows; the scheduler takes ``batch_size`` rows from the queue of pending jobs, first come first
served, runs one forward through the scorer, hands each example its losses and admits new examples
while fewer than ``batch_size`` rows are pending. Only the composition of a forward changes with the
schedule: every example still decides from its own (t, ε) and its own errors.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..errors import BadExampleError
from .result import result_from_errors

if TYPE_CHECKING:  # pragma: no cover
    from .diffusion import DiffusionScorer


class InFlight:
    """One example inside the scheduler: its inputs, its (t, ε), its error table, its stopping rule (a
    generator of job lists ``[(image, cond, sample)]``) and the losses of its current jobs."""

    __slots__ = ("key", "example_id", "texts", "latents", "conds", "plan", "errs", "normalize", "proc", "jobs", "idx",
                 "values", "filled", "result")

    def __init__(self, key, example_id, texts, latents, conds, plan, errs, normalize: bool):
        self.key, self.example_id, self.texts = key, example_id, texts
        self.latents, self.conds, self.plan, self.errs, self.normalize = latents, conds, plan, errs, normalize
        self.proc = None
        self.jobs: list = []
        self.idx = None
        self.values = None
        self.filled = 0
        self.result = None

    def advance(self, values) -> None:
        """Store the losses of the last jobs, then run the stopping rule until it asks for a non-empty job
        list or ends (``result`` set; a non-finite mean error raises :class:`BadExampleError`)."""
        import torch

        if values is not None and self.jobs:
            self.errs[self.idx[:, 0], self.idx[:, 1], self.idx[:, 2]] = values.double()
        while True:
            try:
                jobs = next(self.proc)
            except StopIteration as stop:
                self.jobs = []
                self.result = result_from_errors(self.example_id, self.texts, self.errs, stop.value, self.normalize,
                                                 self.plan.t)
                return
            if jobs:
                self.jobs = jobs
                self.idx = torch.tensor(jobs, dtype=torch.long).reshape(-1, 3)
                self.values = torch.empty(len(jobs), dtype=torch.float32)
                self.filled = 0
                return

    def stacks_with(self, other: "InFlight") -> bool:
        """Rows of one forward must stack (a model may keep each image's own size)."""
        return self.latents.shape[1:] == other.latents.shape[1:] and self.conds.shape[1:] == other.conds.shape[1:]

    def non_finite(self, lo: int, hi: int, finite) -> BadExampleError | None:
        """The error for the first of rows lo … hi−1 whose prediction was not finite, if any."""
        bad = (~finite).nonzero()
        if not len(bad):
            return None
        i, k, j = (int(v) for v in self.idx[lo + int(bad[0])])
        text = "the unconditional text ''" if k == len(self.texts) else f"text {self.texts[k]!r}"
        return BadExampleError(self.example_id, f"the model's predict_noise returned a non-finite value for image "
                                                f"{i}, {text} at timestep {int(self.plan.t[j])} (sample {j})")


def _next_batch(queue: deque, batch_size: int) -> list[tuple[InFlight, int, int]]:
    """Up to ``batch_size`` pending rows, first come first served: [(example, first job, end job)]."""
    segments, need = [], batch_size
    head = queue[0]
    for w in queue:
        if not w.stacks_with(head):
            continue
        take = min(need, len(w.jobs) - w.filled)
        segments.append((w, w.filled, w.filled + take))
        need -= take
        if not need:
            break
    return segments


def stream(scorer: "DiffusionScorer",
           items: Iterable[tuple[Any, str, Any, Sequence[str]]]) -> Iterator[tuple[Any, Any]]:
    """Score many examples with ``scorer``, packing their pending evaluations into full model batches.

    ``items``: (key, example id, images or a function returning them, texts). Yields (key, ScoreResult)
    as each example finishes (not necessarily in input order), or (key, exception) when its images could
    not be read or encoded or the model's outputs for it failed the checks. Examples are admitted while
    fewer than ``batch_size`` evaluations are pending (bounded by ``scorer.plan_memory``); only the last
    forwards of the stream are smaller. On CUDA out-of-memory the batch size is halved (once per
    occurrence, for the rest of the run) and the same rows are retried."""
    import torch

    queue: deque[InFlight] = deque()  # examples with pending jobs, in arrival order
    state = {"pending": 0, "in_flight": 0, "limit": scorer.batch_size}
    source = iter(items)
    exhausted = False

    def drop(w: InFlight) -> None:
        queue.remove(w)
        state["pending"] -= len(w.jobs) - w.filled
        state["in_flight"] -= 1

    with torch.inference_mode():
        while True:
            # 1. admit examples while the queue is short of a full batch
            while not exhausted and state["pending"] < scorer.batch_size and state["in_flight"] < state["limit"]:
                try:
                    key, example_id, images, texts = next(source)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    w = scorer.start(key, example_id, images, texts)
                except Exception as exc:  # unreadable images, bad encoder outputs: the caller decides
                    yield key, exc
                    continue
                if w.result is not None:
                    yield key, w.result
                    continue
                plan_bytes = w.plan.noise.element_size() * w.plan.noise.nelement()
                state["limit"] = max(2, min(scorer.batch_size, scorer.plan_memory // max(1, plan_bytes)))
                queue.append(w)
                state["pending"] += len(w.jobs) - w.filled
                state["in_flight"] += 1
            if not queue:
                return
            # 2. one forward over the next batch of rows
            segments = _next_batch(queue, scorer.batch_size)
            try:
                losses, finite = scorer.forward(segments)
            except BadExampleError as exc:  # a mis-shaped output: every example of this batch fails with it
                for w, _, _ in segments:
                    drop(w)
                    yield w.key, BadExampleError(w.example_id, exc.reason)
                continue
            except Exception as exc:
                if not _is_out_of_memory(exc) or scorer.batch_size == 1:
                    raise
                halve_batch(scorer)
                continue
            # 3. hand each example its losses; a finished example leaves, a continuing one queues again
            pos = 0
            for w, lo, hi in segments:
                w.values[lo:hi] = losses[pos:pos + hi - lo]
                error = w.non_finite(lo, hi, finite[pos:pos + hi - lo])
                pos += hi - lo
                if error is not None:
                    drop(w)
                    yield w.key, error
                    continue
                w.filled = hi
                state["pending"] -= hi - lo
                if w.filled < len(w.jobs):
                    continue
                queue.remove(w)
                try:
                    w.advance(w.values)
                except BadExampleError as exc:
                    state["in_flight"] -= 1
                    yield w.key, exc
                    continue
                if w.result is not None:
                    state["in_flight"] -= 1
                    yield w.key, w.result
                else:
                    queue.append(w)
                    state["pending"] += len(w.jobs)


def halve_batch(scorer) -> None:
    """After a CUDA out-of-memory error: half the batch size for the rest of the run, and say so."""
    import warnings

    import torch

    new = max(1, scorer.batch_size // 2)
    warnings.warn(f"out of memory at batch size {scorer.batch_size}; continuing with {new} "
                  f"(pass --batch-size {new} next time)", RuntimeWarning, stacklevel=3)
    scorer.batch_size = new
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))
