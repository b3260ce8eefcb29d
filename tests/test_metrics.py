"""Winoground and classification metrics on hand-computed fixtures."""

from __future__ import annotations

import pytest

from winoeval.metrics import (classification_metrics, classification_verdict, wilson_interval,
                              winoground_metrics, winoground_verdicts)


@pytest.mark.parametrize("S, expected", [
    # rows = images, columns = captions; s_ij = s(C_j, I_i)
    ([[0.9, 0.1], [0.2, 0.8]], (True, True, True)),
    ([[0.5, 0.1], [0.6, 0.8]], (True, False, False)),     # caption 0 prefers image 1: image fails
    ([[0.5, 0.6], [0.1, 0.7]], (False, True, False)),    # image 0 prefers caption 1: text fails
    ([[0.5, 0.5], [0.1, 0.7]], (False, True, False)),    # a tie fails the text score
    ([[0.5, 0.1], [0.5, 0.7]], (True, False, False)),    # a tie fails the image score
    ([[0.1, 0.9], [0.8, 0.2]], (False, False, False)),   # everything swapped
])
def test_winoground_verdicts(S, expected):
    v = winoground_verdicts(S)
    assert (v["text"], v["image"], v["group"]) == expected


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)


def _wg(id_, text, image, tag, secondary=()):
    return {"id": id_, "verdicts": {"text": text, "image": image, "group": text and image},
            "meta": {"collapsed_tag": tag, "secondary_tag": list(secondary)}}


def test_winoground_aggregates_overall_and_by_tag():
    records = [_wg("0", True, True, "Object"), _wg("1", True, False, "Object", ["Symbolic"]),
               _wg("2", False, True, "Relation"), _wg("3", False, False, "Relation", ["Symbolic", "Series"]),
               _wg("4", True, True, "Both")]
    m = winoground_metrics(records, ["collapsed_tag", "secondary_tag"])
    assert (m["n"], m["text"], m["image"], m["group"]) == (5, 3 / 5, 3 / 5, 2 / 5)
    by = m["by"]["collapsed_tag"]
    assert (by["Object"]["text"], by["Object"]["image"], by["Object"]["group"]) == (1.0, 0.5, 0.5)
    assert (by["Relation"]["n"], by["Relation"]["text"], by["Relation"]["image"]) == (2, 0.0, 0.5)
    assert by["Both"]["group"] == 1.0
    sec = m["by"]["secondary_tag"]
    assert set(sec) == {"Symbolic", "Series"} and sec["Symbolic"]["n"] == 2 and sec["Symbolic"]["text"] == 0.5
    assert m["text_ci95"][0] < 0.6 < m["text_ci95"][1]


def test_classification_accuracy_and_mean_per_class():
    assert classification_verdict([0.1, 0.9, 0.3], 1) == {"prediction": 1, "correct": True}
    assert classification_verdict([0.9, 0.9, 0.3], 0)["correct"] is False  # a tie for the best fails
    # class 0: 3 of 4 right, class 1: 0 of 1 → accuracy 3/5, mean per class (0.75 + 0)/2
    correct = [True, True, True, False, False]
    labels = [0, 0, 0, 0, 1]
    records = [{"id": str(i), "label": l, "verdicts": {"correct": c}} for i, (c, l) in enumerate(zip(correct, labels))]
    m = classification_metrics(records, ["cat", "dog"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["mean_per_class_accuracy"] == pytest.approx(0.375)
    assert m["per_class_accuracy"] == {"cat": 0.75, "dog": 0.0}


def test_mean_per_class_accuracy_has_a_bootstrap_interval():
    from winoeval.metrics import mean_per_class_interval

    def records(correct_per_class, n=10):
        return [{"label": k, "verdicts": {"correct": i < c}} for k, c in enumerate(correct_per_class) for i in range(n)]

    m = classification_metrics(records([10, 0]))
    assert m["mean_per_class_accuracy"] == 0.5 and m["mean_per_class_accuracy_ci95"] == [0.5, 0.5]  # no spread
    m = classification_metrics(records([5, 10]))
    lo, hi = m["mean_per_class_accuracy_ci95"]
    # only class 0 varies: acc0 ~ Binomial(10, .5)/10, so mpc = (acc0 + 1)/2 has sd sqrt(.025)/2 ≈ 0.079;
    # the discrete percentiles of Binomial(10, .5) are 2 and 8 → [0.6, 0.9]
    assert (lo, hi) == pytest.approx((0.6, 0.9))
    assert all(v != v for v in mean_per_class_interval({}))
