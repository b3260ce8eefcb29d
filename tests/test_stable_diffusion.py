"""The Stable Diffusion denoiser plugin, on a tiny random-weight pipeline built offline (no hub).

Checks: names, the light module import, an end-to-end Winoground run, encode-once (texts and
images), shared (t, ε) across the 2×2 comparisons, a numbers check against plain diffusers calls,
v-prediction, dtype/device handling and the error paths (offline hub, bad local folders).
"""

from __future__ import annotations

import dataclasses

import collections
import json
import time
import types

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig, ScorerConfig
from winoeval.hub import HubUnavailableError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from winoeval.plugins import stable_diffusion as sdp  # noqa: E402
from winoeval.testing.models import make_tiny_sd_pipeline  # noqa: E402


# --- fixtures ---------------------------------------------------------------------------------
pytestmark = pytest.mark.usefixtures("one_torch_thread", "isolated_datasets_cache")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    return make_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd") / "pipe", sample_size=8)


@pytest.fixture(scope="session")
def tiny_sd_v(tmp_path_factory):
    return make_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd-v") / "pipe", prediction_type="v_prediction")


@pytest.fixture(scope="session")
def winoground(tmp_path_factory):
    """(task, data_dir): the ``winoground`` task on a tiny on-disk copy, or the in-memory
    ``toy-winoground`` task when the winoground task or the dataset builder is not installed."""
    try:
        from winoeval.testing.data import make_winoground_dataset
    except ImportError:  # pragma: no cover - the builder ships with winoeval
        make_winoground_dataset = None
    registry.reset()
    has_task = "winoground" in registry.tasks()
    if make_winoground_dataset is None or not has_task:  # pragma: no cover
        return "toy-winoground", None
    return "winoground", make_winoground_dataset(tmp_path_factory.mktemp("wg") / "data", n=6)


def load_model(path, **kw) -> sdp.StableDiffusionDenoiser:
    return sdp.load(str(path), RunConfig(model=f"sd:{path}", task="-", device="cpu", **kw))


def images(n=2):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    out = []
    for k in range(n):
        arr = (torch.rand(24 + 8 * k, 40, 3, generator=gen) * 255).to(torch.uint8).numpy()  # not square
        out.append(Image.fromarray(arr, "RGB"))
    return out


# --- names and module -------------------------------------------------------------------------
def test_registered_names():
    models = registry.models()
    for name, repo in [("sd1.5", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
                       ("sd2", "stabilityai/stable-diffusion-2-base"),
                       ("sd2.1", "stabilityai/stable-diffusion-2-1-base")]:
        assert models[name].plugin == "winoeval.plugins.stable_diffusion"
        assert not models[name].takes_argument and repo in models[name].description
    assert models["sd"].takes_argument
    entry, argument = registry.resolve("model", "sd:/some/dir")
    assert entry.name == "sd" and argument == "/some/dir"


# --- end to end -------------------------------------------------------------------------------
def test_end_to_end_winoground(tiny_sd, winoground, tmp_path):
    from winoeval.runner import evaluate

    task, data_dir = winoground
    calls = collections.Counter()

    def wrap(model):
        assert isinstance(model, sdp.StableDiffusionDenoiser) and model.kind == "denoiser"
        encode, tokenizer = model.vae.encode, model.tokenizer

        def counting_encode(x, *a, **k):
            calls["vae_images"] += x.shape[0]
            return encode(x, *a, **k)

        def counting_tokenizer(texts, *a, **k):
            calls.update(f"text:{t}" for t in texts)
            return tokenizer(texts, *a, **k)

        model.vae.encode = counting_encode
        model.tokenizer = counting_tokenizer

    config = RunConfig(model=f"sd:{tiny_sd}", task=task, data_dir=data_dir, output_path=str(tmp_path / "out"),
                       scorer_args={"n_samples": (4,), "batch_size": 24}, device="cpu")
    out = evaluate(config, progress=False, on_model=wrap)
    metrics = out.results["results"][task]
    assert metrics["metric"] == "winoground" and metrics["n"] == 6 and metrics["skipped"] == 0
    for key in ("text", "image", "group"):
        assert 0.0 <= metrics[key] <= 1.0
    for record in out.records:
        assert record["n_evals"] == 2 * 3 * 4  # 2 images × (2 captions + the unconditional) × 4 samples
        assert all(v is not None for row in record["scores"] for v in row)
    # every image VAE-encoded once, every distinct text (and "") text-encoded once per run
    captions = [t for r in out.records for t in r["texts"]]
    assert calls["vae_images"] == 2 * len(out.records)
    text_calls = {k[5:]: v for k, v in calls.items() if k.startswith("text:")}
    assert set(text_calls) == set(captions) | {""}
    assert set(text_calls.values()) == {1}
    assert out.results_path is not None and json.loads(out.results_path.read_text())["model"]["name"].startswith("sd:")


def test_each_text_encoded_once_across_examples(tiny_sd, tmp_path):
    """A task whose examples repeat captions: still one text-encoder pass per distinct caption."""
    from winoeval.api import Example, TaskData
    from winoeval.hookspecs import hookimpl
    from winoeval.runner import evaluate

    ims = images(2)
    captions = [["a red cube", "a blue cube"], ["a blue cube", "a red cube"], ["a red cube", "a green ball"]]

    class RepeatPlugin:
        @hookimpl
        def winoeval_register_tasks(self, register):
            def load(argument, config):
                def examples():
                    for n, texts in enumerate(captions):
                        yield Example(str(n), list(ims), texts, meta={"collapsed_tag": "Object"})

                return TaskData("repeat", "winoground", examples, len(captions), defaults={"normalize": True})

            register("sd-test-repeat", load)

    encoded = collections.Counter()

    def wrap(model):
        original = model.encode_texts

        def counting(texts):
            encoded.update(texts)
            return original(texts)

        model.encode_texts = counting

    pm = registry.get_plugin_manager()
    plugin = RepeatPlugin()
    pm.register(plugin, name="sd-test-repeat")
    try:
        evaluate(RunConfig(model=f"sd:{tiny_sd}", task="sd-test-repeat", output_path=str(tmp_path),
                           scorer_args={"n_samples": (2,)}, device="cpu"), progress=False, write=False,
                 on_model=wrap)
    finally:
        pm.unregister(plugin)
    assert encoded == collections.Counter({"a red cube": 1, "a blue cube": 1, "a green ball": 1, "": 1})


# --- the scorer sees shared (t, ε), and the numbers are plain diffusers ------------------------
def test_four_errors_share_t_and_eps(tiny_sd):
    from winoeval.scoring import DiffusionScorer, make_plan

    model = load_model(tiny_sd)
    seen = []
    original = model.predict_noise

    def recording(x_t, t, cond):
        seen.extend(zip(x_t.clone(), t.tolist()))
        return original(x_t, t, cond)

    model.predict_noise = recording
    cfg = ScorerConfig(n_samples=(5,), batch_size=7)
    ims, texts = images(2), ["a cat on a mat", "a mat on a cat"]
    result = DiffusionScorer(model, dataclasses.replace(cfg, normalize=True)).score("ex-7", ims, texts)
    z0 = model.encode_images(ims)
    plan = make_plan("ex-7", z0.shape[1:], len(model.alphas_cumprod), cfg)
    ab = model.alphas_cumprod.double()
    assert len(seen) == 2 * 3 * 5 and len(set(plan.t.tolist())) == 5
    for j, t in enumerate(plan.t.tolist()):
        rows = [x for x, tt in seen if tt == t]
        assert len(rows) == 6  # 2 images × (2 texts + unconditional), all at this sample's t
        for i in range(2):  # x_t = √ᾱ z0_i + √(1−ᾱ) ε_j for the same ε_j: 3 rows per image
            expected = ab[t].sqrt().float() * z0[i] + (1 - ab[t]).sqrt().float() * plan.noise[j]
            assert sum(torch.allclose(x, expected, atol=1e-5) for x in rows) == 3
    assert torch.equal(result.t, plan.t)


def test_sample_errors_match_plain_diffusers(tiny_sd):
    """Per-sample errors from the scorer = a direct re-computation with diffusers calls (float32)."""
    import torchvision.transforms as T
    from diffusers import StableDiffusionPipeline

    from winoeval.scoring import DiffusionScorer, make_plan

    model = load_model(tiny_sd)
    cfg = ScorerConfig(n_samples=(4,), batch_size=5, loss="l2")
    ims, texts = images(2), ["two dogs chase a ball", "a ball chases two dogs", ""]
    result = DiffusionScorer(model, cfg).score("numbers", ims, texts)

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    transform = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                           T.ToTensor(), T.Normalize([0.5], [0.5])])  # the paper's code
    with torch.no_grad():
        x = torch.stack([transform(im) for im in ims])
        z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        emb = pipe.encode_prompt(texts, "cpu", 1, False)[0]
        plan = make_plan("numbers", z0.shape[1:], pipe.scheduler.config.num_train_timesteps, cfg)
        expected = torch.empty(2, len(texts), 4, dtype=torch.float64)
        for i in range(2):
            for k in range(len(texts)):
                for j in range(4):
                    t = plan.t[j:j + 1]
                    x_t = pipe.scheduler.add_noise(z0[i:i + 1], plan.noise[j:j + 1], t)
                    pred = pipe.unet(x_t, t, encoder_hidden_states=emb[k:k + 1]).sample
                    expected[i, k, j] = torch.nn.functional.mse_loss(pred, plan.noise[j:j + 1]).item()
    assert torch.allclose(model.encode_images(ims), z0, atol=1e-6)
    assert result.sample_errors.shape == expected.shape
    assert torch.allclose(result.sample_errors, expected, atol=1e-5, rtol=0)
    assert torch.allclose(result.errors, expected.mean(dim=2), atol=1e-5, rtol=0)


def test_v_prediction_is_converted_to_eps(tiny_sd_v):
    model = load_model(tiny_sd_v)
    assert model.prediction_type == "v_prediction"
    sched = model.scheduler
    z0, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([10, 500, 990])
    x_t = sched.add_noise(z0, eps, t)
    cond = model.encode_texts(["a", "b", ""])
    ab = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    v = model.unet(x_t, t, encoder_hidden_states=cond).sample
    assert torch.allclose(model.predict_noise(x_t, t, cond), ab.sqrt() * v + (1 - ab).sqrt() * x_t, atol=1e-5)
    # a perfect v-model gives back exactly the noise
    perfect = sched.get_velocity(z0, eps, t)
    model.unet = lambda *a, **k: types.SimpleNamespace(sample=perfect)
    assert torch.allclose(model.predict_noise(x_t, t, cond), eps, atol=1e-4)


# --- preprocessing, dtypes, options -------------------------------------------------------------
def test_preprocess_resizes_shorter_side_and_centre_crops(tiny_sd):
    from PIL import Image

    model = load_model(tiny_sd)
    assert model.resolution == 16
    im = Image.new("RGB", (64, 32), (0, 0, 0))
    im.paste(Image.new("RGB", (8, 32), (255, 255, 255)), (0, 0))  # a white band on the far left
    x = model.preprocess([im, Image.new("L", (5, 9), 128)])
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0), atol=0.02)  # the band is cropped away


def test_float16_on_cpu_falls_back_to_float32(tiny_sd):
    with pytest.warns(UserWarning, match="float32"):
        model = load_model(tiny_sd, dtype="float16")
    assert model.dtype == torch.float32 and model.unet.dtype == torch.float32


def test_bfloat16_runs_with_float32_vae(tiny_sd):
    from winoeval.scoring import DiffusionScorer

    model = load_model(tiny_sd, dtype="bfloat16")
    assert model.unet.dtype == torch.bfloat16 and model.text_encoder.dtype == torch.bfloat16
    assert model.vae.dtype == torch.float32  # force_upcast
    result = DiffusionScorer(model, ScorerConfig(n_samples=(2,))).score("bf16", images(1), ["x", "y"])
    assert torch.isfinite(result.errors).all()


def test_model_args_checked(tiny_sd):
    with pytest.raises(ConfigError, match="unknown --model-arg"):
        load_model(tiny_sd, model_args={"nope": "1"})
    with pytest.raises(ConfigError, match="attention"):
        load_model(tiny_sd, model_args={"attention": "flash9"})
    assert load_model(tiny_sd, model_args={"attention": "auto"}).attention == "sdpa"  # CPU
    with pytest.raises(ConfigError, match="sd2"):
        sdp.load(None, RunConfig(model="sd", task="-"))


# --- errors: offline hub, bad folders ----------------------------------------------------------
@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("name", ["sd2", "sd1.5", "sd:someone/some-sd-model"])
def test_offline_hub_name_fails_fast_with_instructions(name, empty_hub_cache):
    entry, argument = registry.resolve("model", name)
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as info:
        entry.loader(argument, RunConfig(model=name, task="-", device="cpu"))
    assert time.monotonic() - start < 5
    message = str(info.value)
    repo = argument or sdp.MODELS[name][0]
    assert f"hf download {repo}" in message and "--model sd:" in message and "HF_HUB_OFFLINE" in message


def test_hub_id_loads_offline_from_the_cache(tiny_sd, empty_hub_cache):
    """``sd:ORG/NAME`` through the real hub code path, served from a (fake) local hub cache."""
    import shutil

    root = empty_hub_cache / "models--winoeval--tiny-sd"
    sha = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    shutil.copytree(tiny_sd, root / "snapshots" / sha)
    model = sdp.load("winoeval/tiny-sd", RunConfig(model="sd:winoeval/tiny-sd", task="-", device="cpu"))
    reference = load_model(tiny_sd)
    ims = images(1)
    assert torch.allclose(model.encode_images(ims), reference.encode_images(ims))
    assert torch.allclose(model.encode_texts(["a b c"]), reference.encode_texts(["a b c"]))


@pytest.mark.parametrize("make, match", [
    (lambda p: p.mkdir(), "no model_index.json"),
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: (p.mkdir(), (p / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
         "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}))), "not supported"),
    (lambda p: (p.mkdir(), (p / "model_index.json").write_text(json.dumps(
        {"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"],
         "scheduler": ["diffusers", "DDPMScheduler"]}))), "lacks vae, text_encoder, tokenizer"),
])
def test_local_folder_that_is_not_a_pipeline(tmp_path, make, match):
    path = tmp_path / "weights"
    make(path)
    with pytest.raises(ConfigError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such directory") as info:
        load_model(tmp_path / "nope" / "pipe")
    assert str(tmp_path / "nope" / "pipe") in str(info.value)


def test_cli_reports_a_bad_folder_in_one_line(tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    result = CliRunner().invoke(cli, ["run", "--model", f"sd:{tmp_path}", "--task", "toy-winoground",
                                      "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code != 0
    assert "not a diffusers pipeline folder" in result.output and str(tmp_path) in result.output
    assert "Traceback" not in result.output
