"""Scoring: turn a model's outputs into one score per (image, text) of an example.

- :mod:`.plans` — the (t, ε) of an example, from (seed, example id) alone, shared by all its candidates;
- :mod:`.decisions` — the stopping rules: fixed budgets with adaptive pruning, early decision;
- :mod:`.scheduler` — several examples in flight, their rows packed into full model batches;
- :mod:`.diffusion` — the diffusion scorer (noising, the model forward, the error table, the scores);
- :mod:`.matcher` — CLIP-like matchers, whose scores are their similarities;
- :mod:`.result` — what a scorer returns, and the one place where a plugin's outputs are checked.
"""

from __future__ import annotations

from typing import Any

from ..config import ScorerConfig
from .decisions import drop_confidently_worse, paired_standard_error, timestep_order
from .diffusion import DiffusionScorer, tune_cpu_allocator
from .matcher import MatcherScorer
from .plans import (SamplePlan, draw_timesteps, example_seed, low_discrepancy_order, make_plan, plan_seed,
                    van_der_corput)
from .result import ScoreResult, elementwise_loss

__all__ = ["DiffusionScorer", "MatcherScorer", "SamplePlan", "ScoreResult", "draw_timesteps", "drop_confidently_worse",
           "elementwise_loss", "example_seed", "low_discrepancy_order", "make_plan", "make_scorer",
           "paired_standard_error", "plan_seed", "timestep_order", "tune_cpu_allocator", "van_der_corput"]


def make_scorer(model: Any, config: ScorerConfig):
    """The scorer for a model's kind: ``denoiser`` → :class:`DiffusionScorer`, ``matcher`` →
    :class:`MatcherScorer`."""
    kind = getattr(model, "kind", None)
    if kind == "denoiser":
        return DiffusionScorer(model, config)
    if kind == "matcher":
        return MatcherScorer(model)
    raise TypeError(f"model {type(model).__name__} has kind {kind!r}; expected 'denoiser' or 'matcher'")
