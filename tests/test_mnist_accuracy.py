"""The shipped MNIST checkpoint through the whole product: real digits, the core scorer, the runner.

If the scorer, the model plugin, the task or the checkpoint breaks, accuracy falls towards chance (10 %).
"""

from __future__ import annotations

import pytest

from winoeval.config import RunConfig
from winoeval.runner import evaluate

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # 165 s at load ~9


def test_shipped_checkpoint_classifies_100_heldout_digits_at_n20(tmp_path):
    out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args={"n_samples": (20,), "timesteps": "even"},
                             limit=100, output_path=str(tmp_path)), progress=False)
    m = out.results["results"]["mnist"]
    assert m["n"] == 100 and sorted(m["per_class_accuracy"]) == [str(k) for k in range(10)]
    assert m["accuracy"] >= 0.95, m
    assert m["evals_per_example"] == 20 * 10
