"""Today's families on tiny random pipelines built offline: SD 3 and Flux (rectified flow), DiT (class-conditional,
learned σ), the imagenet folder tasks, and the scorer's objectives.

The equivalence tests rebuild every per-sample error with a hand-written loop that noises with diffusers' own
scheduler functions (``FlowMatchEulerDiscreteScheduler.scale_noise``, ``DDIMScheduler.add_noise``) and calls the
pipeline's own transformer and prompt encoder, at the scorer's (t, ε).
"""

from __future__ import annotations

import pytest

from winoeval.config import RunConfig, ScorerConfig

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from winoeval.scoring.objectives import noised_and_target  # noqa: E402
from winoeval.tasks.imagenet import class_names  # noqa: E402
from winoeval.scoring import DiffusionScorer  # noqa: E402
from winoeval.testing import check_model, check_task  # noqa: E402
from winoeval.testing.models import (make_tiny_dit_pipeline, make_tiny_flux_pipeline,  # noqa: E402
                                     make_tiny_sd3_pipeline)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "isolated_datasets_cache")


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {"sd3": make_tiny_sd3_pipeline(root / "sd3"),
            "flux": make_tiny_flux_pipeline(root / "flux"),
            "flux-dev": make_tiny_flux_pipeline(root / "flux-dev", guidance_embeds=True, dynamic_shift=True),
            "dit": make_tiny_dit_pipeline(root / "dit", class_names=list(class_names()[:10]))}


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    """Two images in each of the first three ImageNet classes, by wnid."""
    import numpy as np
    from PIL import Image

    from winoeval.tasks.imagenet import wnids

    root = tmp_path_factory.mktemp("imagenet")
    for c in range(3):
        (root / wnids()[c]).mkdir()
        for k in range(2):
            pix = (np.random.RandomState(10 * c + k).rand(20, 28, 3) * 255).astype("uint8")
            Image.fromarray(pix).save(root / wnids()[c] / f"img{k}.png")
    return root


def _images(n=2):
    import numpy as np
    from PIL import Image

    return [Image.fromarray((np.random.RandomState(i).rand(20, 24, 3) * 255).astype("uint8")) for i in range(n)]


def _load(kind, path, **args):
    from importlib import import_module

    plugin = "flux" if kind.startswith("flux") else kind
    if plugin == "flux":
        args.setdefault("resolution", "16")
    module = import_module(f"winoeval.plugins.{plugin}")
    return module.load(str(path), RunConfig(model=plugin, task="-", device="cpu", model_args=args))


# --- objectives, by hand ------------------------------------------------------------------------
def test_objectives_noise_and_targets_by_hand():
    x0, eps = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    t = torch.tensor([1])
    abar = torch.tensor([0.9, 0.64], dtype=torch.float64)  # √ᾱ = 0.8, √(1−ᾱ) = 0.6 at t = 1
    x, target = noised_and_target("epsilon", abar, x0, t, eps)
    assert x.item() == pytest.approx(0.8 * 2 - 0.6) and target.item() == -1.0
    x, target = noised_and_target("v_prediction", abar, x0, t, eps)
    assert x.item() == pytest.approx(1.0) and target.item() == pytest.approx(0.8 * -1 - 0.6 * 2)
    sigmas = torch.tensor([0.1, 0.25], dtype=torch.float64)
    x, target = noised_and_target("flow", sigmas, x0, t, eps)
    assert x.item() == pytest.approx(0.75 * 2 + 0.25 * -1) and target.item() == -3.0


class _FlowOracle:
    """A flow model that knows each image: it returns the exact velocity (x_σ − x₀)/σ. A trap
    ``alphas_cumprod`` is there too: an ε-path scorer would noise with it and compare with ε."""

    kind, objective = "denoiser", "flow"

    def __init__(self):
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.sigmas = torch.linspace(0.01, 1.0, 100)
        self.alphas_cumprod = torch.linspace(0.999, 0.01, 100)
        self.seen = []

    def encode_images(self, images):
        return torch.stack([torch.full((1, 2, 2), float(v)) for v in images])

    def encode_texts(self, texts):
        return torch.tensor([[float(len(t))] for t in texts])

    def predict_noise(self, x_t, t, cond):
        self.seen.append((x_t.clone(), t.clone()))
        x0 = torch.where(cond.view(-1, 1, 1, 1) > 0, torch.full_like(x_t, 0.5), torch.full_like(x_t, -0.5))
        return (x_t - x0) / self.sigmas[t].view(-1, 1, 1, 1)


def test_a_flow_model_never_goes_through_the_epsilon_path():
    model = _FlowOracle()
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(8,)))
    res = scorer.score("ex", [0.5], ["a", ""])  # text "a" → x0 = 0.5 (right), "" → x0 = −0.5 (wrong)
    errs = res.sample_errors[0]
    assert float(errs[0].abs().max()) < 1e-10  # the exact velocity of the right image: zero error
    # the wrong image's velocity (x_σ − x0')/σ misses ε − x0 by (x0' − x0)/σ = −1/σ: error 1/σ² per sample
    sigma = model.sigmas.double()[res.t]
    assert torch.allclose(errs[1], 1 / sigma.square(), rtol=1e-5)
    plan = scorer.plan("ex", (1, 2, 2))  # even timesteps: distinct t, so t names the sample
    row_of_t = {int(t): j for j, t in enumerate(plan.t)}
    for x_t, t in model.seen:
        for x, ti in zip(x_t, t.tolist()):
            sigma = float(model.sigmas.double()[ti])
            assert torch.allclose(x, (1 - sigma) * 0.5 + sigma * plan.noise[row_of_t[ti]], atol=1e-6)


def test_flow_even_grid_is_even_in_unshifted_time_then_shifted(pipes):
    model = _load("sd3", pipes["sd3"])
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(4,), timesteps="even"))
    t = sorted(scorer.plan("x", (16, 8, 8)).t.tolist())
    assert t == [125, 375, 625, 875]
    for ti in t:
        s = (ti + 1) / 1000
        assert float(scorer.objective.grid[ti]) == pytest.approx(3 * s / (1 + 2 * s), rel=1e-6)  # SD 3's shift 3.0


# --- the plugins keep the contract ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sd3", "flux", "flux-dev"])
def test_flow_plugins_pass_check_plugin(pipes, kind):
    model = _load(kind, pipes[kind])
    assert model.objective == "flow"
    assert check_model(model, task="toy-winoground") == []


def test_sd3_t5_off_feeds_zeros_for_t5(pipes):
    on, off = _load("sd3", pipes["sd3"]), _load("sd3", pipes["sd3"], t5="off")
    assert off.pipe.text_encoder_3 is None and on.pipe.text_encoder_3 is not None
    c_on, c_off = on.encode_texts(["a red cube"]), off.encode_texts(["a red cube"])
    assert c_on.shape == c_off.shape and not torch.equal(c_on, c_off)
    assert check_model(off, task="toy-winoground") == []


def test_dit_and_imagenet_pass_the_checks(pipes, imagenet_dir):
    config = RunConfig(model="dit", task="imagenet", device="cpu", data_dir=str(imagenet_dir))
    assert check_task("imagenet", config=config) == []
    model = _load("dit", pipes["dit"])
    assert check_model(model, task="imagenet", config=config) == []
    assert model.encode_texts(["", "tench", "goldfish", "class 4"]).ravel().tolist() == [10.0, 0.0, 1.0, 4.0]


def test_imagenet_task_reads_folders_and_keeps_the_dit_preset(imagenet_dir):
    from winoeval.tasks.imagenet import load

    task = load("imagenet", None, RunConfig(model="-", task="imagenet", data_dir=str(imagenet_dir),
                                            task_args={"per_class": "1"}))
    examples = list(task.examples())
    assert task.texts == ["tench", "goldfish", "great white shark"] and task.size == 3
    assert [e.label for e in examples] == [0, 1, 2] and examples[0].id == "n01440764/img0.png"
    assert task.defaults["n_samples"] == (250,) and task.defaults["noise"] == "shared"
    from winoeval.scoring import draw_timesteps

    t = sorted(draw_timesteps(250, 1000, "even", torch.Generator().manual_seed(0)).tolist())
    assert t == list(range(2, 1000, 4))  # eval_prob_dit.py's t_interval 4: t = 2, 6, …, 998


# --- the scorer's errors equal a hand-written diffusers loop ----------------------------------------
def _scorer_errors(model, images, texts, n=6):
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(n,), timesteps="stratified", batch_size=5))
    res = scorer.score("example-0", images, texts)
    latents = model.encode_images(images).float()
    return res.sample_errors, scorer.plan("example-0", latents.shape[1:]), latents


@pytest.mark.parametrize("kind", ["sd3", "flux", "flux-dev"])
@torch.no_grad()
def test_flow_errors_equal_a_loop_over_diffusers_scale_noise(pipes, kind):
    from diffusers import FlowMatchEulerDiscreteScheduler

    model = _load(kind, pipes[kind])
    images, texts = _images(2), ["a red cube", "a blue ball"]
    errors, plan, z0 = _scorer_errors(model, images, texts)
    pipe = model.pipe
    sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if kind == "flux-dev":  # the pipeline's resolution-dependent shift, set as the pipeline sets it
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        cfg = sched.config
        mu = calculate_shift(16, cfg.base_image_seq_len, cfg.max_image_seq_len, cfg.base_shift, cfg.max_shift)
        sched.set_timesteps(sigmas=(torch.arange(1000, 0, -1) / 1000).numpy(), mu=mu)
    # the scheduler's own σ at training index t: ascending t ↔ its descending list
    sched_sigmas = sched.sigmas[:1000].flip(0)
    worst = 0.0
    for i, image_z in enumerate(z0):
        for k, text in enumerate(texts):
            for j in range(len(plan.t)):
                t = int(plan.t[j])
                sigma = sched_sigmas[t]
                x = sched.scale_noise(image_z[None], sched.timesteps[999 - t][None], plan.noise[j][None])
                if kind == "sd3":
                    emb, _, pooled, _ = pipe.encode_prompt(text, None, None, device="cpu",
                                                           do_classifier_free_guidance=False)
                    v = pipe.transformer(hidden_states=x, timestep=(sigma * 1000)[None], encoder_hidden_states=emb,
                                         pooled_projections=pooled, return_dict=False)[0]
                else:
                    emb, pooled, text_ids = pipe.encode_prompt(text, None, device="cpu", max_sequence_length=512)
                    packed = pipe._pack_latents(x, 1, 4, 8, 8)
                    ids = pipe._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
                    g = torch.full((1,), 1.0) if kind == "flux-dev" else None
                    out = pipe.transformer(hidden_states=packed, timestep=(sigma * 1000)[None] / 1000, guidance=g,
                                           pooled_projections=pooled, encoder_hidden_states=emb, txt_ids=text_ids,
                                           img_ids=ids, return_dict=False)[0]
                    v = pipe._unpack_latents(out, 16, 16, pipe.vae_scale_factor)
                expected = float(((plan.noise[j] - image_z) - v[0]).square().mean())
                worst = max(worst, abs(float(errors[i, k, j]) - expected) / expected)
    print(f"{kind}: worst relative difference {worst:.2e}")
    assert worst < 1e-6, worst


@torch.no_grad()
def test_dit_errors_equal_a_loop_over_diffusers_add_noise(pipes):
    model = _load("dit", pipes["dit"])
    images, texts = _images(2), ["tench", "goldfish", "great white shark"]
    errors, plan, z0 = _scorer_errors(model, images, texts)
    pipe = model.pipe
    worst = 0.0
    for i, image_z in enumerate(z0):
        for k in range(len(texts)):
            for j in range(len(plan.t)):
                t = plan.t[j:j + 1]
                x = pipe.scheduler.add_noise(image_z[None], plan.noise[j][None], t)
                out = pipe.transformer(x, timestep=t, class_labels=torch.tensor([k])).sample
                eps_hat, _ = torch.split(out, 4, dim=1)  # learned σ: the ε half
                expected = float((plan.noise[j] - eps_hat[0]).square().mean())
                worst = max(worst, abs(float(errors[i, k, j]) - expected) / expected)
    print(f"dit: worst relative difference {worst:.2e}")
    assert worst < 1e-6, worst


@pytest.mark.parametrize("kind", ["sd3", "flux", "dit"])
def test_fp32_bf16_fp16_forwards_run_and_agree_roughly(pipes, kind):
    model = _load(kind, pipes[kind])
    texts = ["tench", "goldfish"] if kind == "dit" else ["a red cube", "a blue ball"]
    images = _images(1)
    ref = DiffusionScorer(model, ScorerConfig(n_samples=(4,))).score("e", images, texts).errors
    for dtype in (torch.bfloat16, torch.float16):
        cls = type(model)
        kwargs = {"resolution": 16} if kind == "flux" else {}
        low = cls(model.pipe, device="cpu", dtype=dtype, **kwargs)
        assert low.dtype == dtype
        errors = DiffusionScorer(low, ScorerConfig(n_samples=(4,))).score("e", images, texts).errors
        assert torch.isfinite(errors).all()
        assert torch.allclose(errors, ref, rtol=0.1), (dtype, errors, ref)
        cls(model.pipe, device="cpu", dtype=torch.float32, **kwargs)  # back to float32 for the next dtype


def test_cli_runs_sd3_end_to_end(pipes, tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    res = CliRunner().invoke(cli, ["run", "--model", f"sd3:{pipes['sd3']}", "--model-arg", "t5=off", "--task",
                                   "toy-winoground", "--limit", "2", "--n-samples", "3", "-o", str(tmp_path),
                                   "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "toy-winoground" in res.output


def test_offline_hub_names_fail_fast_with_the_download_command(monkeypatch):
    from winoeval.hub import HubUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for kind, repo in [("sd3", "stabilityai/stable-diffusion-3-medium-diffusers"),
                       ("flux", "black-forest-labs/FLUX.1-schnell"), ("dit", "facebook/DiT-XL-2-256")]:
        with pytest.raises(HubUnavailableError, match="hf download " + repo):
            _load(kind, repo)


def test_a_folder_of_the_wrong_pipeline_is_refused(pipes):
    from winoeval.config import ConfigError

    with pytest.raises(ConfigError, match="not a StableDiffusion3Pipeline"):
        _load("sd3", pipes["flux"])
    with pytest.raises(ConfigError, match="not a DiTPipeline"):
        _load("dit", pipes["sd3"])


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_flow_models_sample_through_their_pipeline(pipes, kind):
    model = _load(kind, pipes[kind])
    images = model.sample("a red cube", n=2, guidance=1.0, seed=3, steps=2)
    again = model.sample("a red cube", n=2, guidance=1.0, seed=3, steps=2)
    assert [im.size for im in images] == [(16, 16)] * 2 and all(im.mode == "RGB" for im in images)
    assert [im.tobytes() for im in images] == [im.tobytes() for im in again]  # seeded
