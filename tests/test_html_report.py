"""The HTML report reads as a person needs: bold only for a strict best, all-zero difference rows behind a
toggle, small images enlarged with sharp pixels, a line saying what each score matrix holds.

Rendered in headless Chromium on WinoDigits (sd vs clip) and looked at; these tests pin the rules."""

from __future__ import annotations

import re

from winoeval.html_report import display_scale, no_difference, pairs_tables, score_meaning, strict_best


def test_only_a_strict_best_is_bold():
    assert strict_best([0.94, 0.929]) == 0
    assert strict_best([1.0, 1.0]) is None  # a tie of 100.0: nothing bold
    assert strict_best([None, 0.2, 0.1]) == 1 and strict_best([None, None]) is None
    assert strict_best([0.5, 0.7, 0.7]) is None


def test_difference_rows_with_no_discordant_example_go_behind_a_toggle():
    def row(subset, a_only, b_only, diff):
        return {"a": "A", "b": "B", "subset": subset, "metric": "text", "n": 10, "diff": diff, "ci95": [0.0, 0.0],
                "mcnemar_p": 1.0, "a_only": a_only, "b_only": b_only, "a_only_ids": [], "b_only_ids": []}

    rows = [row("all", 1, 3, 0.2), row("tag=x", 0, 0, 0.0), row("tag=y", 0, 0, 0.0),
            row("tag=z", 2, 2, 0.0)]  # Δ = 0 with 2 vs 2 discordant: a real (cancelling) difference stays shown
    assert [no_difference(r) for r in rows] == [False, True, True, False]
    page = pairs_tables({"pairs": rows, "bootstrap": {"resamples": 100, "seed": 0}}, {"A": "A", "B": "B"})
    shown, hidden = page.split("<details")
    assert "tag=z" in shown and "all" in shown and "tag=x" not in shown
    assert re.search(r"<summary>2 more row\(s\) with no difference", hidden) and "tag=x" in hidden and "tag=y" in hidden


def test_small_images_are_enlarged_by_a_whole_factor():
    assert display_scale(32, 32) == 5.0  # WinoDigits: 160 px
    assert display_scale(28, 28) == 5.0  # MNIST: 140 px
    assert display_scale(16, 16) == 10.0
    assert display_scale(1000, 500) == 256 / 1000  # photos shrink to 256 px
    assert display_scale(200, 100) == 1.0


def test_each_score_matrix_says_what_its_numbers_are():
    normalised = {"scores": [[0.003]], "uncond_errors": [[0.01]], "n_evals": 40}
    raw = {"scores": [[-0.005]], "n_evals": 40}
    clip = {"scores": [[0.8]], "n_evals": 0}
    assert "unconditional error" in score_meaning(normalised) and "higher (better)" in score_meaning(normalised)
    assert score_meaning(raw).startswith("score = −(denoising error") and "higher = better" in score_meaning(raw)
    assert "similarity" in score_meaning(clip) and "higher = better" in score_meaning(clip)
