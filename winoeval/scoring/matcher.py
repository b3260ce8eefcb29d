"""Direct matchers (CLIP-like) through the scorer interface: scores = similarity(images, texts)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from ..errors import BadExampleError
from .result import ScoreResult, check_similarity, check_tensor

Item = tuple[Any, str, Any, Sequence[str]]  # (key, example id, images or a function returning them, texts)


class MatcherScorer:
    """Scores = the matcher's similarities, checked (shape images × texts, finite).

    ``score_stream`` encodes the images of many examples and their distinct texts in shared forwards
    when the model offers ``encode_images``/``encode_texts`` (embeddings whose dot product is the
    similarity, as :class:`winoeval.plugins.openclip.OpenCLIPMatcher`), then takes each example's
    block; otherwise it calls ``similarity`` per example."""

    def __init__(self, model: Any, examples_per_forward: int | None = None):
        self.model = model
        self.batched = all(callable(getattr(model, name, None)) for name in ("encode_images", "encode_texts"))
        self.examples_per_forward = examples_per_forward or max(1, int(getattr(model, "batch_size", 64)) // 2)

    @staticmethod
    def _result(example_id: str, sims, n_images: int, texts: Sequence[str]) -> ScoreResult:
        import torch

        sims = check_similarity(example_id, sims, n_images, texts).double().cpu()
        return ScoreResult(sims, -sims, torch.zeros(sims.shape, dtype=torch.long), 0)

    def score(self, example_id: str, images: Sequence[Any], texts: Sequence[str]) -> ScoreResult:
        import torch

        images, texts = list(images), list(texts)
        with torch.inference_mode():
            return self._result(example_id, self.model.similarity(images, texts), len(images), texts)

    def _one_by_one(self, group) -> Iterator[tuple[Any, Any]]:
        """Score each example of ``group`` alone; an unreadable or badly scored one yields its exception."""
        for key, example_id, images, texts in group:
            try:
                yield key, self.score(example_id, images, texts)
            except (OSError, ValueError, SyntaxError, BadExampleError) as exc:
                yield key, exc

    def _admit(self, source: Iterator[Item], group: list) -> Iterator[tuple[Any, Any]]:
        """Fill ``group`` with the next up to ``examples_per_forward`` examples, their images read; an
        example whose images cannot be read is yielded as (key, exception) at once."""
        for key, example_id, images, texts in source:
            try:
                images = list(images() if callable(images) else images)
            except Exception as exc:
                yield key, exc
                continue
            group.append((key, example_id, images, list(texts)))
            if len(group) >= self.examples_per_forward:
                break

    def score_stream(self, items: Iterable[Item]) -> Iterator[tuple[Any, Any]]:
        """Like :meth:`DiffusionScorer.score_stream`: yields (key, ScoreResult or exception)."""
        import torch

        source = iter(items)
        while True:
            group: list = []
            yield from self._admit(source, group)
            if not group:
                return
            if not self.batched or len(group) == 1:
                yield from self._one_by_one(group)
                continue
            distinct = list(dict.fromkeys(t for g in group for t in g[3]))
            n_images = sum(len(g[2]) for g in group)
            try:
                with torch.inference_mode():
                    feats = self.model.encode_images([im for g in group for im in g[2]])
                    text_feats = self.model.encode_texts(distinct)
                check_tensor(group[0][1], "encode_images", feats, n_images)
                check_tensor(group[0][1], "encode_texts", text_feats, len(distinct), row_names=distinct)
            except (OSError, ValueError, SyntaxError, BadExampleError):
                yield from self._one_by_one(group)  # find the example at fault, one by one
                continue
            row = {t: n for n, t in enumerate(distinct)}
            start = 0
            for key, example_id, images, texts in group:
                img = feats[start:start + len(images)]
                start += len(images)
                txt = text_feats[[row[t] for t in texts]]
                try:
                    yield key, self._result(example_id, (img @ txt.T).cpu(), len(images), texts)
                except BadExampleError as exc:
                    yield key, exc
