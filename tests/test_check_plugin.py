"""The plugin conformance checker: every built-in plugin passes, and each rule catches a broken fake."""

from __future__ import annotations

import re

import pytest

from winoeval.api import Example, TaskData
from winoeval.config import RunConfig
from winoeval.testing import check_model, check_task
from winoeval.testing.check import MODEL_RULES, TASK_RULES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LINE = re.compile(r"^(?P<rule>[a-z_]+): .+ — fix: .+$")


def rules(failures: list[str]) -> set[str]:
    """The rule of each failure line (and every line has the one-line 'rule: problem — fix: ...' form)."""
    for line in failures:
        assert LINE.match(line) and "\n" not in line, line
    return {LINE.match(line)["rule"] for line in failures}


# --- built-in plugins pass -------------------------------------------------------------------------

@pytest.mark.parametrize("model, task", [("analytic", "colors"), ("analytic:0.3", "toy-winoground"),
                                         ("mnist-unet", "mnist")])
def test_builtin_models_pass(model, task):
    assert check_model(model, task) == []


@pytest.mark.parametrize("task", ["colors", "toy-winoground", "mnist", "mnist:train"])
def test_builtin_tasks_pass(task):
    assert check_task(task) == []


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    pytest.importorskip("datasets")
    from winoeval.tasks.zeroshot import CIFAR10_CLASSES
    from winoeval.testing.data import make_classification_dataset, make_winoground_dataset

    root = tmp_path_factory.mktemp("check-data")
    return {"winoground": make_winoground_dataset(root / "wino", n=4),
            "cifar10": make_classification_dataset(root / "cifar", CIFAR10_CLASSES, 1, fmt="parquet")}


@pytest.mark.usefixtures("isolated_datasets_cache")
@pytest.mark.parametrize("task", ["winoground", "winoground:relation", "cifar10"])
def test_builtin_hub_tasks_pass_on_local_data(task, tiny_data):
    data_dir = tiny_data[task.partition(":")[0]]
    assert check_task(task, config=RunConfig(model="-", task=task, data_dir=data_dir)) == []


@pytest.mark.usefixtures("isolated_datasets_cache")
def test_stable_diffusion_and_openclip_pass_on_tiny_models(tmp_path, tiny_data):
    pytest.importorskip("diffusers")
    pytest.importorskip("open_clip")
    from winoeval.testing.check import load_task
    from winoeval.testing.models import make_tiny_openclip, make_tiny_sd_pipeline

    task = load_task("winoground", RunConfig(model="-", task="winoground", data_dir=tiny_data["winoground"]))
    sd = make_tiny_sd_pipeline(tmp_path / "sd", sample_size=8)
    assert check_model(f"sd:{sd}", task) == []
    clip = make_tiny_openclip(tmp_path / "clip")
    assert check_model(clip.model, task) == []


# --- a well-behaved fake, then one break per rule ----------------------------------------------------

def _points_task(**changes):
    """A classification task over 2-D points (no PIL at all): the checker must not assume images."""
    texts = ["left", "right"]

    def examples():
        for i in range(6):
            yield Example(f"pt{i}", [(float(i % 2) * 2 - 1, 0.5)], texts, i % 2, {"i": i})

    fields = dict(name="points", metric="classification", examples=examples, size=6, texts=texts, class_names=texts)
    fields.update(changes)
    return TaskData(**fields)


class GoodDenoiser:
    kind = "denoiser"

    def __init__(self):
        import torch

        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.alphas_cumprod = torch.linspace(0.999, 0.01, 50)
        self.centres = {"": torch.zeros(2), "left": torch.tensor([-1.0, 0.0]), "right": torch.tensor([1.0, 0.0])}

    def encode_images(self, images):
        import torch

        return torch.tensor([list(p) for im in images for p in [im]], dtype=torch.float32).view(-1, 2, 1, 1)

    def encode_texts(self, texts):
        import torch

        return torch.stack([self.centres[t] for t in texts])

    def predict_noise(self, x_t, t, cond):
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * cond.view(-1, 2, 1, 1)) / (1 - ab).sqrt()


class GoodMatcher:
    kind = "matcher"

    def similarity(self, images, texts):
        import torch

        xs = torch.tensor([p[0] for p in images])
        signs = torch.tensor([-1.0 if t == "left" else 1.0 for t in texts])
        return xs[:, None] * signs[None, :]


def test_the_good_fakes_pass():
    assert check_model(GoodDenoiser(), _points_task()) == []
    assert check_model(GoodMatcher(), _points_task()) == []
    assert check_task(_points_task()) == []


def _denoiser(**overrides):
    model = GoodDenoiser()
    for name, value in overrides.items():
        setattr(model, name, value.__get__(model) if callable(value) and not isinstance(value, type) else value)
    return model


def _noisy(self, x_t, t, cond):
    import torch

    return GoodDenoiser.predict_noise(self, x_t, t, cond) + 0.01 * torch.randn_like(x_t)


def _batch_norm(self, x_t, t, cond):
    out = GoodDenoiser.predict_noise(self, x_t, t, cond)
    return out - out.mean(dim=0, keepdim=True)


def _wrong_shape(self, x_t, t, cond):
    return GoodDenoiser.predict_noise(self, x_t, t, cond).flatten(1)


def _nan_at_zero(self, x_t, t, cond):
    out = GoodDenoiser.predict_noise(self, x_t, t, cond)
    return out / (t.view(-1, 1, 1, 1) > 0)


def _no_uncond(self, texts):
    if "" in texts:
        raise KeyError("''")
    return GoodDenoiser.encode_texts(self, texts)


def _pads_to_longest(self, texts):
    import torch

    rows = GoodDenoiser.encode_texts(self, texts)
    return rows + 0.001 * len(texts) * torch.ones_like(rows)


def _bad_latents(self, images):
    return GoodDenoiser.encode_images(self, images).flatten(1)


def _one_text_row(self, texts):
    return GoodDenoiser.encode_texts(self, texts[:1])


def _sampled_latents(self, images):
    import torch

    return GoodDenoiser.encode_images(self, images) + 0.1 * torch.randn(len(images), 2, 1, 1)


def _float64_only(self, x_t, t, cond):
    import torch

    if x_t.dtype != torch.float64:
        raise TypeError(f"expected float64 input, got {x_t.dtype}")
    return GoodDenoiser.predict_noise(self, x_t, t, cond)


@pytest.mark.parametrize("overrides, rule", [
    ({"kind": "diffusion"}, "kind"),
    ({"predict_noise": None}, "protocol"),
    ({"alphas_cumprod": [0.9, 0.5]}, "alphas_cumprod"),
    ({"alphas_cumprod": "increasing"}, "alphas_cumprod"),
    ({"alphas_cumprod": "above-one"}, "alphas_cumprod"),
    ({"objective": "x0"}, "objective"),
    ({"objective": "flow", "sigmas": "decreasing"}, "alphas_cumprod"),
    ({"encode_images": _bad_latents}, "encode_images"),
    ({"encode_texts": _one_text_row}, "encode_texts"),
    ({"encode_texts": _no_uncond}, "unconditional"),
    ({"predict_noise": _wrong_shape}, "predict_noise"),
    ({"predict_noise": _nan_at_zero}, "predict_noise"),
    ({"predict_noise": _float64_only}, "predict_noise"),
    ({"device": "cpu"}, "dtype_device"),
    ({"predict_noise": _noisy}, "deterministic"),
    ({"encode_images": _sampled_latents}, "deterministic"),
    ({"predict_noise": _batch_norm}, "batch_independent"),
    ({"encode_texts": _pads_to_longest}, "batch_independent"),
])
def test_each_model_rule_catches_a_broken_denoiser(overrides, rule):
    import torch

    if overrides.get("alphas_cumprod") == "increasing":
        overrides = {"alphas_cumprod": torch.linspace(0.01, 0.999, 50)}
    elif overrides.get("alphas_cumprod") == "above-one":
        overrides = {"alphas_cumprod": torch.linspace(1.5, 0.01, 50)}
    elif overrides.get("sigmas") == "decreasing":  # a flow model's σ grid must rise with t
        overrides = {"objective": "flow", "sigmas": torch.linspace(0.999, 0.01, 50)}
    found = rules(check_model(_denoiser(**overrides), _points_task()))
    assert rule in found, found


def test_each_model_rule_catches_a_broken_matcher():
    import torch

    class Softmaxed(GoodMatcher):  # normalises over the call's texts: a pair's score depends on the others
        def similarity(self, images, texts):
            return torch.softmax(super().similarity(images, texts), dim=1)

    class Transposed(GoodMatcher):
        def similarity(self, images, texts):
            return super().similarity(images, texts).T

    class Dropout(GoodMatcher):
        def similarity(self, images, texts):
            return super().similarity(images, texts) + 0.01 * torch.randn(len(images), len(texts))

    class Nan(GoodMatcher):
        def similarity(self, images, texts):
            return super().similarity(images, texts) / 0 * 0

    task = _points_task()
    assert "batch_independent" in rules(check_model(Softmaxed(), task))
    assert "similarity" in rules(check_model(Transposed(), task))
    assert "deterministic" in rules(check_model(Dropout(), task))
    assert "similarity" in rules(check_model(Nan(), task))
    assert rules(check_model(object(), task)) == {"kind"}

    class ScaledEmbeddings(GoodMatcher):  # similarity = 100·(image · text), encoders without the scale
        def encode_images(self, images):
            return torch.tensor([[p[0], 1.0] for p in images])

        def encode_texts(self, texts):
            return torch.tensor([[-1.0 if t == "left" else 1.0, 0.0] for t in texts])

        def similarity(self, images, texts):
            return 100 * self.encode_images(images) @ self.encode_texts(texts).T

    class Consistent(ScaledEmbeddings):
        def similarity(self, images, texts):
            return self.encode_images(images) @ self.encode_texts(texts).T

    assert rules(check_model(ScaledEmbeddings(), task)) == {"embeddings"}
    assert check_model(Consistent(), task) == []
    assert "protocol" in rules(check_model(type("NoSim", (), {"kind": "matcher"})(), task))


def _examples(rows):
    return lambda: iter(rows)


def _ex(i, images=None, texts=("left", "right"), label=0, meta=None):
    return Example(f"pt{i}" if isinstance(i, int) else i, images if images is not None else [(0.0, 0.0)],
                   list(texts), label, meta if meta is not None else {})


def test_each_task_rule_catches_a_broken_task():
    import itertools

    counter = itertools.count()

    def unstable_ids():
        start = next(counter)
        for i in range(3):
            yield _ex(start + i)

    def unstable_pixels():
        start = next(counter)
        for i in range(3):
            yield _ex(i, images=[(float(start), 0.0)])

    def crashing():
        yield _ex(0)
        raise OSError("shard 2 missing")

    wino_ok = [Example("w0", [(0.0, 0.0), (1.0, 0.0)], ["a b", "b a"]),
               Example("w1", [(0.0, 1.0), (1.0, 1.0)], ["c d", "d c"])]
    cases = {
        "load": "not a task",
        "metric": _points_task(metric="retrieval"),
        "examples": _points_task(examples=[_ex(0)]),
        "size": _points_task(size=7),
        "ids": _points_task(examples=_examples([_ex(0), _ex(0)]), size=2),
        "stable": _points_task(examples=unstable_ids, size=3),
        "images": _points_task(examples=_examples([_ex(0, images=[])]), size=1),
        "texts": _points_task(examples=_examples([_ex(0, texts=["left", ""])]), size=1, texts=None),
        "winoground": TaskData("w", "winoground", _examples([*wino_ok, Example("w2", [(0.0, 0.0)], ["x", "y"], 0)]), 3),
        "label": _points_task(examples=_examples([_ex(0, label=2)]), size=1),
        "class_names": _points_task(class_names=["left"]),
        "meta": _points_task(examples=_examples([_ex(0, meta={"x": {1, 2}})]), size=1),
        "defaults": _points_task(defaults={"n_sample": 10}),
        "breakdowns": _points_task(breakdowns=[3]),
        "choice": TaskData("c", "choice", _examples([_ex(0, texts=["only one"])]), 1),
    }
    assert set(cases) == set(TASK_RULES)
    for rule, task in cases.items():
        found = rules(check_task(task))
        assert rule in found, (rule, found)
    assert "stable" in rules(check_task(_points_task(examples=unstable_pixels, size=3)))
    assert "examples" in rules(check_task(_points_task(examples=crashing, size=1)))
    assert "defaults" in rules(check_task(_points_task(defaults={"n_samples": (0,)})))
    assert "label" in rules(check_task(_points_task(examples=_examples([_ex(0, texts=["right", "left"])]), size=1)))
    assert check_task(TaskData("w", "winoground", _examples(wino_ok), 2)) == []


def test_every_model_rule_has_a_failing_fake():
    """Keeps the parametrised list above complete when a rule is added."""
    covered = {"kind", "protocol", "alphas_cumprod", "objective", "encode_images", "encode_texts", "unconditional",
               "predict_noise", "dtype_device", "deterministic", "batch_independent", "similarity", "load",
               "embeddings"}
    assert covered == set(MODEL_RULES)
    assert rules(check_model(lambda: None, None)) == {"kind"}


# --- the command ------------------------------------------------------------------------------------

def test_check_plugin_command(cli_env):
    from click.testing import CliRunner

    from winoeval.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["check-plugin", "analytic", "--task", "colors"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"model analytic: ok ({len(MODEL_RULES)} rules, on the first examples of colors)"
    res = runner.invoke(cli, ["check-plugin", "toy-winoground"])
    assert res.exit_code == 0 and res.output.strip() == f"task toy-winoground: ok ({len(TASK_RULES)} rules)"
    res = runner.invoke(cli, ["check-plugin", "analytc"])
    assert res.exit_code == 2 and "no model or task 'analytc'; did you mean analytic?" in res.output
    res = runner.invoke(cli, ["check-plugin", "analytic"])
    assert res.exit_code == 2 and "pass --task TASK" in res.output
    res = runner.invoke(cli, ["check-plugin", "mnist-unet", "--task", "mnist", "--model-arg", "checkpont=x"])
    assert res.exit_code == 2 and "has no option 'checkpont'" in res.output and "checkpoint" in res.output


def test_check_plugin_command_reports_failures_with_exit_status_1():
    from click.testing import CliRunner

    from winoeval import registry
    from winoeval.cli import cli
    from winoeval.hookspecs import hookimpl

    class Broken:
        @hookimpl
        def winoeval_register_models(self, register):
            register("broken-den", lambda arg, config: _denoiser(predict_noise=_batch_norm), options={})

        @hookimpl
        def winoeval_register_tasks(self, register):
            register("broken-points", lambda arg, config: _points_task(size=9), options={})

    pm = registry.get_plugin_manager()
    plugin = Broken()
    pm.register(plugin, name="broken-fakes")
    try:
        res = CliRunner().invoke(cli, ["check-plugin", "broken-den"])
        assert res.exit_code == 1, res.output
        lines = res.output.strip().splitlines()
        assert any(line.startswith("model broken-den: batch_independent: ") for line in lines), lines
        res = CliRunner().invoke(cli, ["check-plugin", "broken-points"])
        assert res.exit_code == 1
        assert res.output.strip() == ("task broken-points: size: size is 9 but examples() yields 6 — fix: set size to "
                                      "the number of examples examples() yields")
    finally:
        pm.unregister(plugin)


def test_batch_independence_tolerance_follows_the_precision():
    import torch

    from winoeval.testing.check import _close

    half = torch.tensor([1.0, 2.0], dtype=torch.float16)
    assert _close(half, half.float() + 0.004)  # float16 kernels differ by ~1e-3 relative between batch sizes
    assert not _close(half.float(), half.float() + 0.004)  # float32: 1e-4 relative
    assert not _close(half, half.float() + 0.1)
    assert not _close(torch.zeros(2), torch.zeros(3))
