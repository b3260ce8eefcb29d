"""The scorer's scheduler: many examples in flight, their evaluations packed into full batches,
results identical to scoring each example alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from winoeval.config import ScorerConfig
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.scoring import DiffusionScorer, MatcherScorer
from winoeval.tasks.synthetic import render

COLOURS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "black"]


def _examples(n: int):
    out = []
    for e in range(n):
        truth = COLOURS[e % len(COLOURS)]
        texts = COLOURS if e % 3 else ["red left of blue", "blue left of red"]  # mixed shapes of work
        images = [render(truth, 0.6, f"s{e}")] if e % 3 else [render(t, 0.6, f"s{e}{t}") for t in texts]
        out.append((f"ex{e}", images, texts))
    return out


CONFIGS = [
    ScorerConfig(n_samples=(24,), batch_size=16),
    ScorerConfig(n_samples=(6, 20), to_keep=(3, 1), batch_size=16),
    ScorerConfig(n_samples=(200,), early_stop=True, batch_size=16, timesteps="stratified"),
    ScorerConfig(n_samples=(200,), early_stop=True, batch_size=16, variance="iid"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["fixed", "pruning", "early", "early-iid"])
@pytest.mark.parametrize("normalize", [False, True])
def test_stream_gives_bit_identical_results_to_one_example_at_a_time(config, normalize):
    model = AnalyticDenoiser(sigma=0.6)  # each row's prediction depends on that row alone
    examples = _examples(10)
    alone = {eid: DiffusionScorer(model, dataclasses.replace(config, normalize=normalize)).score(eid, ims, texts) for eid, ims, texts in examples}
    scorer = DiffusionScorer(model, dataclasses.replace(config, normalize=normalize))
    streamed = dict(scorer.score_stream((eid, eid, ims, texts) for eid, ims, texts in examples))
    assert set(streamed) == set(alone)
    for eid, a in alone.items():
        s = streamed[eid]
        assert torch.equal(a.scores, s.scores) and a.n_evals == s.n_evals
        assert torch.equal(a.sample_errors.nan_to_num(-1), s.sample_errors.nan_to_num(-1))
    # every forward but the stream's last ones is full: the point of packing
    rows = scorer.forward_rows
    assert sum(rows) == sum(a.n_evals for a in alone.values())
    full = [r for r in rows if r == 16]
    assert len(rows) - len(full) <= 3, rows


def test_a_lone_example_is_evaluated_in_its_own_batches_as_before():
    model = AnalyticDenoiser(sigma=0.6)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(10,), batch_size=16))
    scorer.score("x", [render("red", 0.6, "x")], COLOURS)  # 8 texts × 10 samples = 80 = 5 × 16
    assert scorer.forward_rows == [16] * 5


def test_stream_reports_an_unreadable_example_and_scores_the_others():
    model = AnalyticDenoiser(sigma=0.6)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(8,), batch_size=16))

    def broken():
        raise OSError("cannot identify image file 'b.png'")

    items = [("a", "a", [render("red", 0.6, "a")], COLOURS), ("b", "b", broken, COLOURS),
             ("c", "c", [render("blue", 0.6, "c")], COLOURS)]
    out = dict(scorer.score_stream(items))
    assert isinstance(out["b"], OSError)
    assert int(out["a"].scores[0].argmax()) == COLOURS.index("red")
    assert int(out["c"].scores[0].argmax()) == COLOURS.index("blue")


class _CountingMatcher:
    """A matcher with embeddings: image i's embedding is a one-hot on its colour, text's too."""

    kind = "matcher"
    batch_size = 8

    def __init__(self):
        self.image_calls = []
        self.text_calls = []

    def _onehot(self, name):
        v = torch.zeros(len(COLOURS))
        v[COLOURS.index(name)] = 1
        return v

    def encode_images(self, images):
        self.image_calls.append(len(images))
        return torch.stack([self._onehot(im) for im in images])  # "images" are colour names here

    def encode_texts(self, texts):
        self.text_calls.append(len(texts))
        return torch.stack([self._onehot(t) for t in texts])

    def similarity(self, images, texts):
        return self.encode_images(images) @ self.encode_texts(texts).T


def test_matcher_stream_encodes_many_examples_per_forward_and_picks_each_block():
    model = _CountingMatcher()
    items = [(n, f"m{n}", [COLOURS[n % 8], COLOURS[(n + 1) % 8]], [COLOURS[n % 8], COLOURS[(n + 3) % 8]])
             for n in range(12)]
    alone = {n: MatcherScorer(_CountingMatcher()).score(eid, ims, texts) for n, eid, ims, texts in items}
    out = dict(MatcherScorer(model).score_stream(items))
    for n, a in alone.items():
        assert torch.equal(out[n].scores, a.scores)
        # image 0 matches text 0 (same colour), image 1 matches neither
        assert out[n].scores.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # 12 examples × 2 images in forwards of 4 examples (batch_size 8 // 2), not 12 forwards
    assert model.image_calls == [8, 8, 8]
    assert len(model.text_calls) == 3
