"""winoeval-toy2d: registered through its entry point, keeps the plugin contract, classifies, guides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from winoeval import registry
from winoeval.config import RunConfig
from winoeval.runner import evaluate
from winoeval.testing import check_model, check_task
from winoeval_toy2d.data import CLASS_TEXTS, split
from winoeval_toy2d.model import Toy2DDenoiser


@pytest.fixture(scope="module")
def model():
    return Toy2DDenoiser()


def test_registered_through_the_entry_point():
    registry.reset()
    assert registry.models()["toy2d"].plugin == "toy2d"
    assert registry.tasks()["spirals"].plugin == "toy2d"
    assert ("toy2d", "0.1.0 (winoeval-toy2d)") in registry.plugin_versions()
    res = subprocess.run([sys.executable, "-m", "winoeval", "list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[toy2d]" in res.stdout and "spirals:…" in res.stdout


def test_it_keeps_the_plugin_contract():
    assert check_task("spirals") == []
    assert check_task("spirals:train") == []
    assert check_model("toy2d", "spirals") == []
    res = subprocess.run([sys.executable, "-m", "winoeval", "check-plugin", "toy2d"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("model toy2d: ok")


def test_the_shipped_checkpoint_classifies_held_out_points(tmp_path):
    out = evaluate(RunConfig("toy2d", "spirals", scorer_args={"n_samples": (20,)}, output_path=str(tmp_path)),
                   progress=False)
    result = out.results["results"]["spirals"]
    assert result["n"] == 400
    assert result["accuracy"] >= 0.95, result
    assert result["evals_per_example"] == 2 * 20  # 2 class texts × 20 timesteps


def test_points_are_the_images_and_unknown_texts_are_refused(model):
    latents = model.encode_images([(0.5, -1.0), [2.0, 3.0]])
    assert tuple(latents.shape) == (2, 2, 1, 1) and latents[1].flatten().tolist() == [2.0, 3.0]
    assert model.encode_texts(["spiral b", "", "spiral a"]).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="toy2d knows the texts 'spiral a', 'spiral b'"):
        model.encode_texts(["spiral c"])


def test_guidance_at_scale_4_puts_samples_in_their_class(model):
    """s = 4: ≥ 90 % of the points drawn for class c are classified c by the diffusion classifier itself,
    with either guidance. s = 0 with classifier guidance is unconditional sampling: about half and half."""
    from winoeval_toy2d.plots import classify

    for method in ("cfg", "classifier"):
        for c, label in enumerate(CLASS_TEXTS):
            points = model.sample_points(label, 100, 4.0, method, seed=c).numpy()
            share = float((classify(model, points) == c).mean())
            assert share >= 0.9, (method, label, share)
    unguided = model.sample_points(CLASS_TEXTS[0], 100, 0.0, "classifier", seed=7).numpy()
    assert 0.25 <= float((classify(model, unguided) == 0).mean()) <= 0.75


def test_train_command_writes_a_checkpoint_the_model_loads(tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    res = CliRunner().invoke(cli, ["train", "toy2d", "--out", str(tmp_path), "--steps", "20",
                                   "--classifier-steps", "10", "--batch-size", "32"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "toy2d.safetensors"
    recipe = json.loads((tmp_path / "toy2d.json").read_text())
    assert recipe["steps"] == 20 and len(recipe["losses"]["eps"]) == 1 and len(recipe["losses"]["clf"]) == 1
    entry, argument = registry.resolve("model", "toy2d")
    loaded = entry.loader(argument, RunConfig("toy2d", "spirals", model_args={"checkpoint": str(path)}))
    assert loaded.checkpoint == path
    trained = RunConfig("toy2d", "spirals", model_args={"checkpoint": str(path)})
    assert entry.fingerprint(None, trained) != entry.fingerprint(None, RunConfig("toy2d", "spirals"))
    res = CliRunner().invoke(cli, ["train", "toy2d", "--out", str(tmp_path), "--steps", "0"])
    assert res.exit_code == 2 and "must be positive" in res.output


def test_pictures(model):
    from winoeval_toy2d.plots import decision_figure, guidance_figure

    image, accuracy, tau = decision_figure(model, grid=6, n_samples=10)
    assert image.size[0] > 300 and accuracy >= 0.95 and 0 < tau
    picture = guidance_figure(model, CLASS_TEXTS, [0, 4], n=20)
    assert picture.size[0] > picture.size[1] / 2
    points, labels = split("test")
    assert points.shape == (400, 2) and labels.tolist()[:4] == [0, 1, 0, 1]


def test_the_boundary_plot_reports_the_accuracy_winoeval_run_reports(model, tmp_path):
    from winoeval_toy2d.plots import held_out_accuracy

    out = evaluate(RunConfig("toy2d", "spirals", scorer_args={"n_samples": (10,)}, output_path=str(tmp_path)),
                   progress=False)
    assert held_out_accuracy(model, 10) == out.results["results"]["spirals"]["accuracy"]


def test_the_decision_map_is_smooth_with_one_shared_noise_plan(model):
    """Per-point noise draws speckle the map; one shared plan makes it a smooth function of x: along a
    line of nearby points the scores change little from one point to the next."""
    import numpy as np

    from winoeval_toy2d.plots import score_points

    line = np.stack([np.linspace(-1.0, -0.9, 20), np.full(20, 2.0)], axis=1)
    shared = score_points(model, line, 10, noise="shared")
    own = score_points(model, line, 10)
    step = lambda s: float(np.abs(np.diff(s[:, 0] - s[:, 1])).max())  # noqa: E731
    assert step(shared) < step(own) / 3


def test_sample_titles_count_the_points_drawn(tmp_path):
    from click.testing import CliRunner
    from winoeval.cli import cli

    out = tmp_path / "s4.png"
    res = CliRunner().invoke(cli, ["sample", "--model", "toy2d", "--label", "spiral a", "--guidance", "4",
                                   "--n", "12", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "wrote 12 samples in 1 figure(s) of 'spiral a'" in res.output and out.exists()
