"""The core scorer against numbers worked out by hand (analytic denoisers, closed forms)."""

from __future__ import annotations

import dataclasses

import math

import pytest
import torch

from winoeval.config import ConfigError, ScorerConfig
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.scoring import (DiffusionScorer, draw_timesteps, elementwise_loss, example_seed,
                              low_discrepancy_order, make_plan)
from winoeval.tasks.synthetic import render

COLOURS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "black"]


def test_even_timesteps_are_the_official_grid():
    gen = torch.Generator().manual_seed(0)
    t = draw_timesteps(20, 400, "even", gen)
    # floor((k + 1/2) * 400 / 20) = 10, 30, ..., 390: the official code's range(10, 400, 20)
    assert sorted(t.tolist()) == list(range(10, 400, 20))
    # prefix order: the first two halves of [0, 400), the first four quarters
    assert sorted(t[:2].tolist()) == [10, 210]
    assert sorted((x // 100) for x in t[:4].tolist()) == [0, 1, 2, 3]


def test_stratified_has_one_timestep_per_bin_and_uniform_is_in_range():
    gen = torch.Generator().manual_seed(1)
    t = draw_timesteps(50, 1000, "stratified", gen)
    assert sorted((t // 20).tolist()) == list(range(50))
    u = draw_timesteps(500, 1000, "uniform", gen)
    assert 0 <= int(u.min()) and int(u.max()) < 1000 and len(set(u.tolist())) > 300


@pytest.mark.parametrize("n", [1, 2, 5, 7, 16, 100])
def test_low_discrepancy_order_is_a_spread_permutation(n):
    order = low_discrepancy_order(n)
    assert sorted(order) == list(range(n))
    for m in (2, 4, 8):  # every prefix of length m leaves no gap wider than about 2n/m
        if m <= n:
            points = sorted(order[:m])
            gaps = [b - a for a, b in zip(points, points[1:])] + [n - points[-1] + points[0]]
            assert max(gaps) <= math.ceil(2 * n / m), (m, points)


def test_losses_match_hand_values():
    pred = torch.tensor([[0.0, 2.0, -3.0, 0.5]])
    target = torch.zeros(1, 4)
    assert elementwise_loss(pred, target, "l2").item() == pytest.approx((0 + 4 + 9 + 0.25) / 4)
    assert elementwise_loss(pred, target, "l1").item() == pytest.approx((0 + 2 + 3 + 0.5) / 4)
    # huber(δ=1): ½x² for |x|≤1, |x|−½ otherwise
    assert elementwise_loss(pred, target, "huber").item() == pytest.approx((0 + 1.5 + 2.5 + 0.125) / 4)


def test_seed_depends_on_seed_and_id_only():
    assert example_seed(0, "a") == example_seed(0, "a")
    assert len({example_seed(0, "a"), example_seed(1, "a"), example_seed(0, "b")}) == 3


def test_ideal_denoiser_gives_zero_error_to_the_true_class_and_classifies_perfectly():
    model = AnalyticDenoiser(sigma=0.0)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(10,), batch_size=7))
    for label, colour in enumerate(COLOURS):
        image = render(colour, 0.0, f"x{label}")
        res = scorer.score(f"x{label}", [image], COLOURS)
        errors = res.errors[0]
        assert errors[label].item() == pytest.approx(0.0, abs=1e-10)
        assert all(errors[k] > 1e-3 for k in range(len(COLOURS)) if k != label)
        assert int(torch.argmax(res.scores[0])) == label
        assert res.n_evals == 10 * len(COLOURS)


def test_wrong_class_error_matches_closed_form_for_sigma_zero():
    # σ=0: ε̂ = (x_t − aμ_c)/s, and x_t = a·x + s·ε, so ε − ε̂ = −a(x − μ_c)/s exactly (no ε left):
    # per-sample l2 = (a²/s²)·mean((x − μ_c)²)
    model = AnalyticDenoiser(sigma=0.0)
    cfg = ScorerConfig(n_samples=(8,))
    scorer = DiffusionScorer(model, cfg)
    image = render("red", 0.0, "r")
    res = scorer.score("r", [image], ["red", "blue"])
    plan = make_plan("r", (3, 16, 16), 1000, cfg)
    ab = model.alphas_cumprod.double()[plan.t]
    # red = (1,−1,−1), blue = (−1,−1,1) per pixel: mean squared difference = (4 + 0 + 4)/3
    expected = (ab / (1 - ab) * 8 / 3).tolist()
    assert torch.allclose(res.sample_errors[0, 1], torch.tensor(expected, dtype=torch.float64), rtol=1e-4)


def test_gaussian_monte_carlo_error_converges_to_its_closed_form():
    # x0 ~ N(μ_c, σ²): ε̂ = g(x_t − aμ_c), g = s/(a²σ² + s²). For a fixed image x and x_t = a·x + s·ε,
    # ε − ε̂ = (1 − g s)ε − g a (x − μ_c), so E_ε l2 = (1 − g s)² + g² a² mean((x − μ_c)²).
    sigma, n = 0.3, 400
    model = AnalyticDenoiser(sigma=sigma)
    cfg = ScorerConfig(n_samples=(n,), timesteps="stratified", batch_size=128)
    image = render("green", sigma, "g")
    res = DiffusionScorer(model, cfg).score("g", [image], ["green", "cyan"])
    x = model.encode_images([image])[0].double()
    plan = make_plan("g", x.shape, 1000, cfg)
    ab = model.alphas_cumprod.double()[plan.t]
    a, s = ab.sqrt(), (1 - ab).sqrt()
    g = s / (a * a * sigma ** 2 + s * s)
    for k, text in enumerate(["green", "cyan"]):
        mu = model.encode_texts([text])[0].double()
        d2 = (x - mu).square().mean()
        closed = ((1 - g * s) ** 2 + g * g * a * a * d2).mean().item()
        mc = res.errors[0, k].item()
        # each sample's loss averages 768 pixels: the Monte-Carlo error is within a few 0.1 % here
        assert mc == pytest.approx(closed, rel=0.02), (text, mc, closed)
    assert res.errors[0, 0] < res.errors[0, 1]


def test_all_candidates_and_images_share_the_same_t_and_noise():
    seen = []

    class Recorder(AnalyticDenoiser):
        def predict_noise(self, x_t, t, cond):
            seen.append((x_t.clone(), t.clone(), cond.clone()))
            return super().predict_noise(x_t, t, cond)

    model = Recorder(sigma=0.1)
    cfg = ScorerConfig(n_samples=(6,), batch_size=5)
    images = [render("red left of blue", 0.1, "a"), render("blue left of red", 0.1, "b")]
    texts = ["red left of blue", "blue left of red"]
    DiffusionScorer(model, dataclasses.replace(cfg, normalize=True)).score("ex", images, texts)
    x_t = torch.cat([s[0] for s in seen])
    t = torch.cat([s[1] for s in seen])
    assert len(t) == 2 * 3 * 6  # 2 images × (2 texts + unconditional) × 6 samples
    plan = make_plan("ex", (3, 16, 16), 1000, cfg)
    z = model.encode_images(images)
    ab = model.alphas_cumprod
    # jobs are ordered image, candidate, sample: reconstruct each x_t from the one shared plan
    for n, (i, k, j) in enumerate((i, k, j) for i in range(2) for k in range(2) for j in range(6)):
        assert t[n] == plan.t[j]
        expected = ab[plan.t[j]].sqrt() * z[i] + (1 - ab[plan.t[j]]).sqrt() * plan.noise[j]
        assert torch.allclose(x_t[n], expected, atol=1e-6)


def test_scores_do_not_depend_on_batch_size_or_other_examples():
    model = AnalyticDenoiser(sigma=0.2)
    image = render("yellow", 0.2, "y")
    a = DiffusionScorer(model, ScorerConfig(n_samples=(12,), batch_size=1)).score("y", [image], COLOURS)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(12,), batch_size=50))
    scorer.score("other", [render("red", 0.2, "o")], COLOURS)  # a different example first
    b = scorer.score("y", [image], COLOURS)
    assert torch.equal(a.sample_errors, b.sample_errors)
    c = DiffusionScorer(model, ScorerConfig(n_samples=(12,), seed=1)).score("y", [image], COLOURS)
    assert not torch.equal(a.sample_errors, c.sample_errors)


def test_normalisation_leaves_text_comparisons_unchanged():
    model = AnalyticDenoiser(sigma=0.3)
    images = [render("red left of green", 0.3, "p"), render("green left of red", 0.3, "q")]
    texts = ["red left of green", "green left of red"]
    raw = DiffusionScorer(model, ScorerConfig(n_samples=(8,))).score("e", images, texts)
    norm = DiffusionScorer(model, ScorerConfig(n_samples=(8,), normalize=True)).score("e", images, texts)
    # within an image row, normalisation subtracts one constant: differences are equal
    assert torch.allclose(raw.scores[:, 0] - raw.scores[:, 1], norm.scores[:, 0] - norm.scores[:, 1], atol=1e-9)
    # and the constant is that image's unconditional error over the same samples
    assert torch.allclose(norm.scores - raw.scores, norm.uncond_errors.mean(dim=1, keepdim=True).expand(2, 2))


def test_adaptive_pruning_reuses_samples_and_keeps_the_best():
    model = AnalyticDenoiser(sigma=0.0)
    cfg = ScorerConfig(n_samples=(4, 10), to_keep=(3, 1))
    res = DiffusionScorer(model, cfg).score("c", [render("cyan", 0.0, "c")], COLOURS)
    # stage 1: 8 candidates × 4 samples; stage 2: the 3 kept × 6 new samples
    assert res.n_evals == 8 * 4 + 3 * 6
    assert sorted(res.n_used[0].tolist()) == [4] * 5 + [10] * 3
    assert int(torch.argmax(res.scores[0])) == COLOURS.index("cyan")
    assert sum(math.isfinite(v) for v in res.scores[0].tolist()) == 1


@pytest.mark.parametrize("kwargs", [
    {"n_samples": (0,)}, {"n_samples": (10, 5), "to_keep": (3, 1)}, {"n_samples": (5, 10), "to_keep": (1, 3)},
    {"n_samples": (5, 10)}, {"loss": "l3"}, {"timesteps": "random"}, {"batch_size": 0},
    {"n_samples": (5, 10), "to_keep": (2,)},
])
def test_bad_scorer_settings_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        ScorerConfig(**kwargs)


EARLY = ScorerConfig(n_samples=(200,), early_stop=True, chunk=5, min_samples=10, timesteps="stratified")


def test_early_decision_drops_clear_losers_at_the_first_check():
    model = AnalyticDenoiser(sigma=0.5)  # σ > 0 keeps per-sample errors bounded (σ = 0 explodes as t → 0)
    res = DiffusionScorer(model, EARLY).score("e", [render("blue", 0.5, "e")], COLOURS)
    # every wrong colour is far from blue: all 7 are dropped at the first check, after min_samples = 10
    assert res.n_evals == 8 * 10
    assert int(torch.argmax(res.scores[0])) == COLOURS.index("blue")
    assert sum(math.isfinite(v) for v in res.scores[0].tolist()) == 1


def test_early_decision_runs_an_undecidable_comparison_to_the_budget():
    model = AnalyticDenoiser(sigma=0.5)
    # "red" and "red left of red" have the same mean: their paired difference is exactly 0, never decided
    texts = ["red", "red left of red", "blue"]
    res = DiffusionScorer(model, EARLY).score("u", [render("red", 0.5, "u")], texts)
    assert res.n_used[0].tolist() == [200, 200, 10]
    assert res.n_evals == 3 * 10 + 2 * 190


def test_early_decision_on_a_winoground_pair_keeps_the_matrix_paired():
    model = AnalyticDenoiser(sigma=0.5)
    texts = ["red left of blue", "blue left of red"]
    images = [render(t, 0.5, f"w{k}") for k, t in enumerate(texts)]
    res = DiffusionScorer(model, dataclasses.replace(EARLY, normalize=True)).score("w", images, texts)
    assert res.n_evals == 2 * 3 * 10  # 2 images × (2 captions + unconditional) × 10, all decided at once
    assert res.n_used.tolist() == [[10, 10], [10, 10]]
    assert res.scores[0, 0] > res.scores[0, 1] and res.scores[1, 1] > res.scores[1, 0]
    assert res.scores[0, 0] > res.scores[1, 0] and res.scores[1, 1] > res.scores[0, 1]


def test_early_decision_rejects_pruning_stages():
    with pytest.raises(ConfigError, match="early-stop"):
        ScorerConfig(n_samples=(10, 20), to_keep=(2, 1), early_stop=True)


# -- the stratified early-decision variance and the point-mass denoiser ------------------------------
from winoeval.scoring import paired_standard_error, timestep_order  # noqa: E402
from winoeval.testing.point_mass import PointMassDenoiser  # noqa: E402


def test_paired_standard_errors_match_hand_values():
    d = torch.tensor([3.0, 1.0, 4.0, 2.0], dtype=torch.float64)
    t = torch.tensor([30, 10, 40, 20])
    # i.i.d.: sample variance of 1..4 is 5/3, se = sqrt(5/3 / 4)
    assert paired_standard_error(d) == pytest.approx(math.sqrt(5 / 3 / 4))
    # stratified: in t order the values are 1, 2, 3, 4; successive differences 1, 1, 1:
    # variance 3 / (2·3) = 1/2, se = sqrt(1/2 / 4) — a trend along t is not noise
    assert paired_standard_error(d, timestep_order(t)) == pytest.approx(math.sqrt(0.5 / 4))
    # no dependence on t: the two estimators agree in expectation (checked on many i.i.d. draws)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, generator=g, dtype=torch.float64)
    ratio = paired_standard_error(x, timestep_order(torch.randperm(4000, generator=g))) / paired_standard_error(x)
    assert ratio == pytest.approx(1.0, abs=0.05)
    assert paired_standard_error(d[:1]) == math.inf


def _point_mass():
    mu = {"near": torch.zeros(1, 4, 4), "far": torch.full((1, 4, 4), 0.5)}
    x = torch.full((1, 4, 4), 0.1)
    return PointMassDenoiser(mu), x


def test_point_mass_errors_are_the_closed_form_at_every_sample():
    model, x = _point_mass()
    res = DiffusionScorer(model, ScorerConfig(n_samples=(50,), timesteps="uniform")).score("p", [x], ["near", "far"])
    for k, text in enumerate(["near", "far"]):
        # ᾱ/(1−ᾱ)·‖x−μ‖²/D: ‖x−μ‖²/D = 0.01 (near) and 0.16 (far), whatever ε was drawn
        expected = model.weight(res.t) * (0.01 if text == "near" else 0.16)
        # (x_t is formed in float32 by the scorer: 1e-4 relative covers its rounding at large t)
        torch.testing.assert_close(res.sample_errors[0, k], expected, rtol=1e-4, atol=0)


def test_point_mass_is_decided_early_by_the_stratified_rule_and_late_by_the_iid_one():
    model, x = _point_mass()
    used = {}
    for variance in ("stratified", "iid"):
        cfg = ScorerConfig(n_samples=(1000,), timesteps="even", early_stop=True, variance=variance)
        res = DiffusionScorer(model, cfg).score("p", [x], ["far", "near"])
        assert int(res.scores[0].argmax()) == 1  # the full budget's verdict: every paired difference favours "near"
        used[variance] = int(res.n_used[0].max())
    # every difference has one sign, but its size spans 8 orders of magnitude over t: read as
    # i.i.d. noise it needs a long prefix; along t it is a smooth trend and decided well under half the budget
    assert used["stratified"] < 500
    assert used["iid"] > 2 * used["stratified"]


def test_shared_noise_gives_every_example_the_same_plan_and_per_example_does_not():
    shape = (1, 4, 4)
    shared = ScorerConfig(n_samples=(8,), timesteps="uniform", noise="shared")
    a, b = make_plan("a", shape, 1000, shared), make_plan("b", shape, 1000, shared)
    assert torch.equal(a.t, b.t) and torch.equal(a.noise, b.noise)
    own = ScorerConfig(n_samples=(8,), timesteps="uniform")
    c, d = make_plan("a", shape, 1000, own), make_plan("b", shape, 1000, own)
    assert not torch.equal(c.noise, d.noise)
    assert not torch.equal(a.noise, c.noise)  # the shared plan is not some example's own
    # scored through the scheduler, two examples see identical (t, ε): equal images give equal errors
    model, x = _point_mass()
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(8,), timesteps="uniform", noise="shared"))
    r1, r2 = scorer.score("a", [x], ["far"]), scorer.score("b", [x], ["far"])
    assert torch.equal(r1.t, r2.t) and torch.equal(r1.errors, r2.errors)


@pytest.mark.parametrize("kwargs,match", [({"variance": "pairs"}, "early-variance"), ({"noise": "global"}, "--noise")])
def test_bad_variance_and_noise_settings_name_the_option(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ScorerConfig(**kwargs)


def test_noise_mode_is_part_of_the_cache_key(tmp_path):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    def run(**scorer):
        cfg = RunConfig("analytic:0.6", "colors:0.6", scorer_args={"n_samples": (6,), **scorer}, limit=3,
                        output_path=str(tmp_path))
        return evaluate(cfg, progress=False, write=False)

    own, shared = run(), run(noise="shared")
    assert shared.computed == 3 and shared.reused == 0 and own.cache_path != shared.cache_path
    assert [r["errors"] for r in own.records] != [r["errors"] for r in shared.records]
    again = run(noise="shared")
    assert again.reused == 3 and again.records == shared.records


def test_uniform_timesteps_use_the_iid_standard_error():
    # independent uniform t: the spread across t is part of the mean's variance, so the stratified
    # setting falls back to the i.i.d. estimate (identical decisions, sample for sample)
    model, x = _point_mass()
    used = {v: DiffusionScorer(model, ScorerConfig(n_samples=(400,), timesteps="uniform", early_stop=True,
                                                   variance=v)).score("u", [x], ["far", "near"]).n_used.tolist()
            for v in ("stratified", "iid")}
    assert used["stratified"] == used["iid"]
