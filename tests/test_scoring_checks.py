"""The one validation point for what a plugin returns (winoeval.scoring.result): a non-finite or
mis-shaped value is an error naming the example, skippable with --skip-bad, never averaged away and
never read as a pruned candidate."""

from __future__ import annotations

import pytest
import torch

from winoeval.config import RunConfig, ScorerConfig
from winoeval.errors import BadExampleError
from winoeval.hookspecs import hookimpl
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.runner import evaluate
from winoeval.scoring import DiffusionScorer, MatcherScorer
from winoeval.tasks.synthetic import render

TEXTS = ["red left of green", "green left of red"]


def _images():
    return [render(TEXTS[0], 0.3, "p"), render(TEXTS[1], 0.3, "q")]


class NaNOnSomeSamples(AnalyticDenoiser):
    """NaN predictions at large timesteps only: the old scorer averaged them away (nanmean)."""

    def predict_noise(self, x_t, t, cond):
        out = super().predict_noise(x_t, t, cond)
        return torch.where((t > 500).view(-1, 1, 1, 1), torch.full_like(out, float("nan")), out)


class InfOnOneCaption(AnalyticDenoiser):
    """+inf for the second caption only: the old scorer turned its score into null ("pruned")."""

    def __init__(self, sigma):
        super().__init__(sigma)
        self.bad = None

    def predict_noise(self, x_t, t, cond):
        out = super().predict_noise(x_t, t, cond)
        if self.bad is None:
            return out
        rows = (cond.flatten(1) == self.bad.flatten()).all(dim=1)
        return torch.where(rows.view(-1, 1, 1, 1), torch.full_like(out, float("inf")), out)


class OneChannel(AnalyticDenoiser):
    """Returns (B, 1, H, W) for x_t of shape (B, 3, H, W): the old scorer broadcast it silently."""

    def predict_noise(self, x_t, t, cond):
        return super().predict_noise(x_t, t, cond)[:, :1]


def test_nan_on_some_samples_is_an_error_naming_the_example_pair_and_timestep():
    scorer = DiffusionScorer(NaNOnSomeSamples(0.3), ScorerConfig(n_samples=(10,)))
    with pytest.raises(BadExampleError, match=r"example 'e1'.*non-finite value for image \d, text .* timestep \d+"):
        scorer.score("e1", _images(), TEXTS)


def test_inf_on_one_caption_is_an_error_not_a_pruned_candidate():
    model = InfOnOneCaption(0.3)
    model.bad = model.encode_texts([TEXTS[1]])[0]
    with pytest.raises(BadExampleError, match=r"example 'e2'.*text 'green left of red'"):
        DiffusionScorer(model, ScorerConfig(n_samples=(4,))).score("e2", _images(), TEXTS)


def test_a_mis_shaped_prediction_is_refused():
    with pytest.raises(BadExampleError, match=r"predict_noise returned \(\d+, 1, \d+, \d+\).*must return x_t's shape"):
        DiffusionScorer(OneChannel(0.3), ScorerConfig(n_samples=(4,))).score("e3", _images(), TEXTS)


def test_only_the_bad_example_of_a_packed_batch_fails():
    """Rows of several examples share a forward: the NaN rows blame their own example only."""
    model = NaNOnSomeSamples(0.3)
    good = AnalyticDenoiser(0.3)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(10,), batch_size=64))
    bad_t = scorer.plan("bad", (3, 8, 8)).t
    assert (bad_t > 500).any()
    # a plan whose timesteps all stay below 500 never sees NaN: find two such ids
    calm = [eid for eid in (f"c{i}" for i in range(400)) if not (scorer.plan(eid, (3, 8, 8)).t > 500).any()]
    if len(calm) < 1:  # with 10 even-grid timesteps over [0, 1000) every plan reaches t > 500
        scorer = DiffusionScorer(model, ScorerConfig(n_samples=(10,), batch_size=64, timesteps="uniform"))
        calm = [eid for eid in (f"c{i}" for i in range(4000)) if not (scorer.plan(eid, (3, 8, 8)).t > 500).any()]
    items = [(eid, eid, _images(), TEXTS) for eid in [calm[0], "bad"]]
    out = dict(scorer.score_stream(items))
    assert isinstance(out["bad"], BadExampleError) and "example 'bad'" in str(out["bad"])
    reference = DiffusionScorer(good, scorer.config).score(calm[0], _images(), TEXTS)
    assert torch.equal(out[calm[0]].scores, reference.scores)


class MinusInfMatcher:
    kind = "matcher"

    def similarity(self, images, texts):
        return torch.tensor([[0.5, float("-inf")], [float("-inf"), 0.5]])


class WrongShapeMatcher:
    kind = "matcher"

    def similarity(self, images, texts):
        return torch.zeros(len(texts), len(images) + 1)


def test_a_matcher_minus_inf_is_an_error_not_a_group_score_of_100():
    with pytest.raises(BadExampleError, match=r"example 'm'.*non-finite similarity \(-inf\) for image 0 and text 'b'"):
        MatcherScorer(MinusInfMatcher()).score("m", ["x", "y"], ["a", "b"])


def test_a_matcher_of_the_wrong_shape_is_refused():
    with pytest.raises(BadExampleError, match=r"shape \(2, 3\), expected \(2, 2\)"):
        MatcherScorer(WrongShapeMatcher()).score("m", ["x", "y"], ["a", "b"])


class Plugin:
    @hookimpl
    def winoeval_register_models(self, register):
        register("nan-sometimes", lambda arg, config: NaNOnSomeSamples(0.3))
        register("minus-inf", lambda arg, config: MinusInfMatcher())


@pytest.mark.parametrize("model", ["nan-sometimes", "minus-inf"])
def test_through_a_run_bad_values_stop_or_are_skipped_and_counted(model, tmp_path, register_plugin):
    register_plugin(Plugin())
    config = RunConfig(model, "toy-winoground", scorer_args={"n_samples": (10,)}, output_path=str(tmp_path))
    with pytest.raises(BadExampleError, match=r"non-finite"):
        evaluate(config, progress=False)
    config.skip_bad = True
    out = evaluate(config, progress=False)
    m = out.results["results"]["toy-winoground"]
    assert m["n"] == 0 and m["skipped"] == 6 and m["group"] is None  # never a 100 % from −inf
