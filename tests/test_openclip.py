"""The OpenCLIP matcher plugin, on a tiny random-weight OpenCLIP model built offline (no hub)."""

from __future__ import annotations

import collections
import time

import pytest

from winoeval import registry
from winoeval.config import ConfigError, RunConfig
from winoeval.hub import HubUnavailableError

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from winoeval.plugins import openclip as ocp  # noqa: E402
from winoeval.testing.models import TINY_OPENCLIP_ARCH, make_tiny_openclip, register_tiny_openclip_arch  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread", "isolated_datasets_cache")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return make_tiny_openclip(tmp_path_factory.mktemp("tiny-openclip"))


@pytest.fixture(autouse=True)
def _arch_registered(tiny):
    register_tiny_openclip_arch(tiny.directory)  # idempotent; other tests may reset open_clip's registry


@pytest.fixture(scope="session")
def winoground(tmp_path_factory):
    """(task, data_dir): ``winoground`` on a tiny on-disk copy, else the in-memory ``toy-winoground``."""
    try:
        from winoeval.testing.data import make_winoground_dataset
    except ImportError:  # pragma: no cover
        return "toy-winoground", None
    registry.reset()
    if "winoground" not in registry.tasks():  # pragma: no cover
        return "toy-winoground", None
    return "winoground", make_winoground_dataset(tmp_path_factory.mktemp("wg") / "data", n=6)


def config(spec="openclip", **kw):
    return RunConfig(model=spec, task="-", device="cpu", **kw)


def load(spec, **kw):
    entry, argument = registry.resolve("model", spec)
    return entry.loader(argument, config(spec, **kw))


def images(n=3):
    from PIL import Image

    gen = torch.Generator().manual_seed(1)
    return [Image.fromarray((torch.rand(20 + 7 * k, 33, 3, generator=gen) * 255).to(torch.uint8).numpy(), "RGB")
            for k in range(n)]


# --- names and module -------------------------------------------------------------------------
def test_registered_names():
    models = registry.models()
    assert models["openclip"].takes_argument and "ViT-H-14" in models["openclip"].description
    assert models["openclip"].plugin == "winoeval.plugins.openclip"
    assert not models["clip-vit-l-14"].takes_argument and "ViT-L-14/openai" in models["clip-vit-l-14"].description
    entry, argument = registry.resolve("model", "openclip")
    assert entry.name == "openclip" and argument is None
    assert registry.resolve("model", "openclip:ViT-H-14//data/ckpt.bin")[1] == "ViT-H-14//data/ckpt.bin"


def test_parse_argument(tiny):
    assert ocp.parse_argument(None) == ("ViT-H-14", "laion2b_s32b_b79k")
    assert ocp.parse_argument("ViT-L-14/openai") == ("ViT-L-14", "openai")
    assert ocp.parse_argument(f"{TINY_OPENCLIP_ARCH}/{tiny.checkpoint}") == (TINY_OPENCLIP_ARCH, str(tiny.checkpoint))
    assert ocp.parse_argument(str(tiny.directory)) == (f"local-dir:{tiny.directory}", None)
    assert ocp.parse_argument("hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K")[1] is None
    with pytest.raises(ConfigError, match="unknown architecture.*ViT-H-14"):
        ocp.parse_argument("ViT-H-41/laion2b_s32b_b79k")
    with pytest.raises(ConfigError, match="unknown pretrained tag.*laion2b_s32b_b79k"):
        ocp.parse_argument("ViT-H-14/laion9b")
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        ocp.parse_argument("ViT-H-14//no/such/file.bin")
    with pytest.raises(ConfigError, match="openclip:ViT-H-14/TAG"):
        ocp.parse_argument("ViT-H-14")


def test_builtin_names_pass_the_right_open_clip_arguments(monkeypatch):
    """No download: capture what create_model_and_transforms would be called with."""
    seen = []

    def fake_create(name, **kw):
        seen.append((name, kw))
        raise RuntimeError("Failed to download weights for tag (test)")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    monkeypatch.setattr(ocp, "_not_cached", lambda arch, pretrained: False)
    for spec in ("openclip", "clip-vit-l-14"):
        with pytest.raises(HubUnavailableError):
            load(spec)
    (h_name, h_kw), (l_name, l_kw) = seen
    assert (h_name, h_kw["pretrained"], h_kw["force_quick_gelu"]) == ("ViT-H-14", "laion2b_s32b_b79k", False)
    assert (l_name, l_kw["pretrained"], l_kw["force_quick_gelu"]) == ("ViT-L-14", "openai", True)  # OpenAI's QuickGELU
    assert h_kw["precision"] == "fp32" and str(h_kw["device"]) == "cpu"


# --- offline ----------------------------------------------------------------------------------
@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize("spec, fetch", [
    ("openclip", "hf download laion/CLIP-ViT-H-14-laion2B-s32B-b79K open_clip_pytorch_model.bin"),
    ("clip-vit-l-14", "hf download timm/vit_large_patch14_clip_224.openai open_clip_pytorch_model.bin"),
])
def test_offline_tag_fails_fast_with_instructions(spec, fetch, empty_hub_cache):
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as info:
        load(spec)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert fetch in message and "HF_HUB_OFFLINE" in message
    assert "--model openclip:ViT-" in message and "//path/to/open_clip_pytorch_model.bin" in message
    assert ("--model-arg quick_gelu=true" in message) == (spec == "clip-vit-l-14")


def fake_hub_cache(cache, repo: str, files: dict) -> None:
    """The layout huggingface_hub leaves: models--ORG--NAME/{refs/main, snapshots/SHA/...}."""
    import shutil

    root = cache / f"models--{repo.replace('/', '--')}"
    sha = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    for name, source in files.items():
        target = root / "snapshots" / sha / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)


def test_offline_tag_loads_from_the_cache(tiny, empty_hub_cache, monkeypatch):
    """A tag whose weights are in the hub cache loads offline (the real download path, no network)."""
    from open_clip import pretrained as oc_pretrained
    from huggingface_hub import constants

    from pathlib import Path

    fake_hub_cache(Path(constants.HF_HUB_CACHE), "winoeval/tiny-openclip",
                   {"open_clip_pytorch_model.bin": tiny.checkpoint})
    tags = dict(oc_pretrained._PRETRAINED.get(TINY_OPENCLIP_ARCH, {}))
    tags["tinytag"] = oc_pretrained._pcfg(hf_hub="winoeval/tiny-openclip/")
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY_OPENCLIP_ARCH, tags)
    model = load(f"openclip:{TINY_OPENCLIP_ARCH}/tinytag")
    assert torch.allclose(model.similarity(images(2), ["a", "b"]),
                          load(tiny.model).similarity(images(2), ["a", "b"]), atol=1e-6)


# --- the matcher --------------------------------------------------------------------------------
def test_similarity_is_cosine_of_open_clip_embeddings(tiny):
    model = load(tiny.model_arch_checkpoint)
    assert isinstance(model, ocp.OpenCLIPMatcher) and model.kind == "matcher"
    ims, texts = images(3), ["a dog on a sofa", "a sofa on a dog"]
    sims = model.similarity(ims, texts)
    assert sims.shape == (3, 2)
    ref, _, preprocess = open_clip.create_model_and_transforms(TINY_OPENCLIP_ARCH, pretrained=str(tiny.checkpoint))
    tokenizer = open_clip.get_tokenizer(TINY_OPENCLIP_ARCH)
    with torch.no_grad():
        fi = ref.eval().encode_image(torch.stack([preprocess(im) for im in ims]))
        ft = ref.encode_text(tokenizer(texts))
    expected = torch.nn.functional.cosine_similarity(fi[:, None], ft[None], dim=-1)
    assert torch.allclose(sims, expected, atol=1e-5)
    # the local-dir layout loads the same weights
    assert torch.allclose(load(tiny.model).similarity(ims, texts), sims, atol=1e-6)


def test_text_embeddings_cached_per_model(tiny):
    model = load(tiny.model)
    calls = collections.Counter()
    tokenizer = model.tokenizer

    def counting(texts):
        calls.update(texts)
        return tokenizer(texts)

    model.tokenizer = counting
    first = model.similarity(images(2), ["x", "y", "x"])
    second = model.similarity(images(2), ["y", "z"])
    assert calls == collections.Counter({"x": 1, "y": 1, "z": 1})
    assert torch.allclose(first[:, 1], second[:, 0]) and torch.allclose(first[:, 0], first[:, 2])


def test_float16_on_cpu_falls_back(tiny):
    with pytest.warns(UserWarning, match="float32"):
        model = load(tiny.model, dtype="float16")
    assert model.dtype == torch.float32


def test_bfloat16(tiny):
    model = load(tiny.model, dtype="bfloat16")
    sims = model.similarity(images(1), ["a", "b"])
    assert sims.dtype == torch.float32 and torch.isfinite(sims).all() and sims.abs().max() <= 1 + 1e-3


def test_model_args(tiny):
    with pytest.raises(ConfigError, match="unknown --model-arg"):
        load(tiny.model, model_args={"nope": "1"})
    assert load(tiny.model, model_args={"batch_size": "1"}).batch_size == 1


def test_bad_local_folder_is_named(tmp_path):
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(ConfigError) as info:
        load(f"openclip:{tmp_path}")
    assert str(tmp_path) in str(info.value)


# --- end to end -------------------------------------------------------------------------------
def test_end_to_end_winoground(tiny, winoground, tmp_path):
    from winoeval.runner import evaluate

    task, data_dir = winoground
    encoded = collections.Counter()

    def wrap(model):
        tokenizer = model.tokenizer

        def counting(texts):
            encoded.update(texts)
            return tokenizer(texts)

        model.tokenizer = counting

    for spec in (tiny.model, tiny.model_arch_checkpoint):
        encoded.clear()
        out = evaluate(RunConfig(model=spec, task=task, data_dir=data_dir, output_path=str(tmp_path / "out"),
                                 device="cpu"), progress=False, on_model=wrap)
        metrics = out.results["results"][task]
        assert metrics["n"] == 6 and metrics["skipped"] == 0
        assert all(0.0 <= metrics[k] <= 1.0 for k in ("text", "image", "group"))
        captions = [t for r in out.records for t in r["texts"]]
        assert set(encoded) == set(captions) and set(encoded.values()) == {1}
        for record in out.records:
            assert len(record["scores"]) == 2 and all(-1 <= v <= 1 for row in record["scores"] for v in row)


def test_openclip_offline_without_cached_weights_fails_before_importing_open_clip(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    code = ("import sys\nfrom winoeval import registry\nfrom winoeval.config import RunConfig\n"
            "try:\n    registry.models()['clip-vit-l-14'].fingerprint(None, RunConfig('clip-vit-l-14', 'x'))\n"
            "except Exception as exc:\n    print(type(exc).__name__, str(exc)[:80])\n"
            "print('open_clip imported:', 'open_clip' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HubUnavailableError could not load OpenCLIP weights clip-vit-l-14: HF_HUB_OFFLINE is set" in res.stdout
    assert "open_clip imported: False" in res.stdout
