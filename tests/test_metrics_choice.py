"""The 1×K choice metric: accuracy with a Wilson interval, breakdowns and ARO-style macro accuracy, by hand."""

from __future__ import annotations

import pytest

from winoeval import metrics


def _records():
    # relation: on ✓ ✓ ✗, next to ✓ ✗, eating ✗  → 3 of 6 right
    flags = [("on", True), ("on", True), ("on", False), ("next to", True), ("next to", False), ("eating", False)]
    return [{"id": str(i), "verdicts": {"correct": ok}, "meta": {"relation": rel}, "label": 1}
            for i, (rel, ok) in enumerate(flags)]


def test_accuracy_and_wilson_interval_worked_by_hand():
    out = metrics.compute("choice", _records(), breakdowns=["relation"])
    assert out["n"] == 6 and out["accuracy"] == 0.5
    # p = 1/2, n = 6, z = 1.959964: centre 0.5, half-width z·sqrt(1/24 + z²/144) / (1 + z²/6) = 0.312384
    assert out["accuracy_ci95"] == pytest.approx([0.187616, 0.812384], abs=1e-6)
    assert out["by"]["relation"]["on"]["accuracy"] == pytest.approx(2 / 3)
    assert out["by"]["relation"]["next to"] == {"n": 2, "accuracy": 0.5,
                                                "accuracy_ci95": pytest.approx(metrics.wilson_interval(1, 2))}
    assert "macro_accuracy" not in out


def test_macro_accuracy_excludes_listed_groups_and_small_groups():
    out = metrics.compute("choice", _records(), macro={"relation": {"exclude": ["next to"]}})
    assert out["macro_accuracy"]["relation"] == {"value": pytest.approx((2 / 3 + 0) / 2), "groups": 2, "n": 4,
                                                 "groups_dropped": 1, "min_count": 1}
    out = metrics.compute("choice", _records(), macro={"relation": {"min_count": 2}})
    assert out["macro_accuracy"]["relation"]["value"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # eating (1) dropped
    assert out["macro_accuracy"]["relation"]["groups_dropped"] == 1


def test_a_tie_for_the_best_caption_is_wrong():
    assert metrics.verdicts("choice", [[0.3, 0.3]], 0) == {"prediction": 0, "correct": False}
    assert metrics.verdicts("choice", [[0.1, 0.7, 0.2, 0.0, 0.0]], 1) == {"prediction": 1, "correct": True}
