"""Stable Diffusion 1.x/2.x as a winoeval denoiser (Li et al. 2023, "Your Diffusion Model is Secretly
a Zero-Shot Classifier").

Models: ``sd1.5``, ``sd2`` (stabilityai/stable-diffusion-2-base, the paper's model), ``sd2.1`` and
``sd:<hub id or local diffusers folder>``. What the scorer gets, as the paper's code does it:

* images: RGB, bicubic resize of the shorter side to the model resolution (U-Net sample size × VAE
  scale factor, 512 for SD 2 base), centre crop, scaled to [−1, 1]; latent = the VAE posterior *mean*
  × ``vae.config.scaling_factor`` (no sampling: the latent is deterministic);
* texts: CLIP text-encoder hidden states of the prompt padded to 77 tokens (``""`` is the
  unconditional embedding of classifier-free guidance);
* ``predict_noise`` = ``unet(x_t, t, encoder_hidden_states=cond).sample``. For a v-prediction
  scheduler (e.g. SD 2.1 768 px) the output v is turned into ε = √ᾱ_t·v + √(1−ᾱ_t)·x_t (for
  ``sample`` prediction ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t)), so the scorer always compares ε's. The
  base (512 px) models named here all predict ε.
* ``alphas_cumprod`` from the pipeline's own scheduler.

Only unet, vae, text_encoder, tokenizer and scheduler are loaded (never the safety checker), from
safetensors where offered, never with ``trust_remote_code``. ``--dtype`` (float16 on CPU falls back
to float32) and ``--device`` apply; the VAE runs in float32 when its config asks for it
(``force_upcast``; it encodes each image once, so this costs nothing). Attention is PyTorch SDPA
(diffusers' default); ``--model-arg attention=xformers`` asks for xformers, and ``auto`` uses it
when it is installed on a CUDA device. Other options: ``--model-arg revision=...``,
``--model-arg variant=fp16`` (download/load the half-size fp16 weight files).

Offline: hub names are looked up in the local Hugging Face cache only when the hub is unreachable
or ``HF_HUB_OFFLINE=1``; a name that is not cached fails at once with a
:class:`winoeval.hub.HubUnavailableError` saying how to get it.

No torch/diffusers import at module level: ``winoeval --help`` loads every plugin.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

from ._diffusers_common import fetch_model_index, looks_like_path, to_pm1

MODELS = {
    "sd1.5": ("stable-diffusion-v1-5/stable-diffusion-v1-5", "Stable Diffusion 1.5 (512 px, ε-prediction)"),
    "sd2": ("stabilityai/stable-diffusion-2-base",
            "Stable Diffusion 2.0 base (512 px, ε-prediction): the paper's model"),
    "sd2.1": ("stabilityai/stable-diffusion-2-1-base", "Stable Diffusion 2.1 base (512 px, ε-prediction)"),
}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")
MODEL_OPTIONS = {
    "revision": "hub revision (branch, tag or commit) of the pipeline",
    "variant": "weight file variant, e.g. fp16 (half-size files)",
    "attention": "auto (default), sdpa or xformers",
    "text_batch_size": "captions encoded per text-encoder call (default 64)",
}
MODEL_ARGS = set(MODEL_OPTIONS)
TEXT_BATCH = 64
IMAGE_BATCH = 8


class StableDiffusionDenoiser:
    """The :class:`winoeval.api.Denoiser` protocol over the components of an SD 1.x/2.x pipeline."""

    kind = "denoiser"

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, device=None, dtype=None,
                 source: str = "", text_batch_size: int = TEXT_BATCH, upcast_vae: bool | None = None):
        import torch

        self.device = torch.device(device) if device is not None else unet.device
        self.dtype = dtype or unet.dtype
        self.source = source
        if upcast_vae is None:
            upcast_vae = bool(getattr(vae.config, "force_upcast", True))
        self.vae_dtype = torch.float32 if upcast_vae else self.dtype
        # nn.Module.to: diffusers' own .to(dtype=...) logs a warning on every cast
        self.unet = torch.nn.Module.to(unet, device=self.device, dtype=self.dtype).eval()
        if self.device.type == "cuda":  # NHWC convolutions: faster with cuDNN tensor cores
            self.unet = self.unet.to(memory_format=torch.channels_last)
        self.vae = torch.nn.Module.to(vae, device=self.device, dtype=self.vae_dtype).eval()
        self.text_encoder = torch.nn.Module.to(text_encoder, device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.text_batch_size = int(text_batch_size)
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ConfigError(f"{source or 'pipeline'}: unsupported scheduler prediction_type "
                              f"{self.prediction_type!r} (expected epsilon, v_prediction or sample)")
        abar = getattr(scheduler, "alphas_cumprod", None)
        if abar is None:  # every SD scheduler has it; derive it from the betas otherwise
            abar = torch.cumprod(1 - torch.as_tensor(scheduler.betas, dtype=torch.float64), dim=0)
        self.alphas_cumprod = torch.as_tensor(abar).detach().float().cpu()
        self._abar_device = self.alphas_cumprod.to(self.device)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        sample_size = unet.config.sample_size
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        self.resolution = int(sample_size) * self.vae_scale_factor
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = getattr(vae.config, "shift_factor", None)
        self.max_length = min(int(getattr(tokenizer, "model_max_length", 77) or 77),
                              int(text_encoder.config.max_position_embeddings))

    @classmethod
    def from_pipeline(cls, pipe, **kwargs) -> "StableDiffusionDenoiser":
        """Wrap a loaded ``StableDiffusionPipeline`` (its unet, vae, text encoder, tokenizer, scheduler)."""
        return cls(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, **kwargs)

    # --- preprocessing ------------------------------------------------------------------------
    def preprocess(self, images: list) -> "Any":
        """PIL images → (B, 3, R, R) float32 in [−1, 1] (:func:`._diffusers_common.to_pm1`)."""
        return to_pm1(images, self.resolution)

    # --- Denoiser protocol --------------------------------------------------------------------
    def encode_images(self, images: list) -> "Any":
        import torch

        x = self.preprocess(images)
        latents = []
        with torch.inference_mode():
            for start in range(0, len(x), IMAGE_BATCH):
                batch = x[start:start + IMAGE_BATCH].to(device=self.device, dtype=self.vae_dtype)
                z = self.vae.encode(batch).latent_dist.mean
                if self.shift_factor is not None:
                    z = z - self.shift_factor
                latents.append((z * self.scaling_factor).float())
        return torch.cat(latents)

    def encode_texts(self, texts: list[str]) -> "Any":
        import torch

        use_mask = bool(getattr(self.text_encoder.config, "use_attention_mask", False))
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.text_batch_size):
                tok = self.tokenizer(list(texts[start:start + self.text_batch_size]), padding="max_length",
                                     max_length=self.max_length, truncation=True, return_tensors="pt")
                mask = tok.attention_mask.to(self.device) if use_mask else None
                hidden = self.text_encoder(tok.input_ids.to(self.device), attention_mask=mask)[0]
                out.append(hidden.to(self.dtype))
        return torch.cat(out)

    def predict_noise(self, x_t, t, cond):
        import torch

        x_t = x_t.to(device=self.device, dtype=self.dtype)
        t = t.to(self.device).long()
        with torch.inference_mode():
            out = self.unet(x_t, t, encoder_hidden_states=cond.to(device=self.device, dtype=self.dtype)).sample
            if self.prediction_type == "epsilon":
                return out
            ab = self._abar_device[t].view(-1, *[1] * (x_t.dim() - 1))
            a, s = ab.sqrt(), (1 - ab).sqrt()
            if self.prediction_type == "v_prediction":  # v = a·ε − s·x0  ⇒  ε = a·v + s·x_t
                eps = a * out.float() + s * x_t.float()
            else:  # "sample": the model predicts x0
                eps = (x_t.float() - a * out.float()) / s.clamp_min(1e-8)
            return eps.to(self.dtype)

    def sample(self, label: str, n: int, guidance: float = 2.0, seed: int = 0, steps: int = 50,
               progress: bool = False) -> list:
        """``n`` images of the prompt ``label``: DDIM (η = 0, ``steps`` steps, on the pipeline's own
        schedule) with classifier-free guidance ε̂ = (1 + w)·ε(z, c) − w·ε(z, ∅), then the VAE decoder."""
        import numpy as np
        import torch
        from diffusers import DDIMScheduler
        from PIL import Image

        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(int(steps))
        cond = self.encode_texts([label, ""])
        c, null = cond[:1].expand(n, -1, -1), cond[1:].expand(n, -1, -1)
        size = self.resolution // self.vae_scale_factor
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn((n, self.unet.config.in_channels, size, size), generator=gen).to(self.device)
        with torch.inference_mode():
            from tqdm.auto import tqdm

            for t in tqdm(scheduler.timesteps, desc=f"sampling {label!r}", unit="step", disable=not progress):
                tt = torch.full((n,), int(t), dtype=torch.long)
                if guidance:
                    eps2 = self.predict_noise(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([c, null])).float()
                    eps = (1 + guidance) * eps2[:n] - guidance * eps2[n:]
                else:
                    eps = self.predict_noise(z, tt, c).float()
                z = scheduler.step(eps, t, z.float()).prev_sample
            z = z / self.scaling_factor + (self.shift_factor or 0.0)
            x = self.vae.decode(z.to(self.vae_dtype)).sample.float()
        pix = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(np.ascontiguousarray(p), mode="RGB") for p in pix]

    def enable_attention(self, mode: str = "auto") -> str:
        """``sdpa`` (PyTorch's fused attention, diffusers' default), ``xformers`` (required), or
        ``auto`` (xformers if installed on CUDA, else SDPA). Returns what is in use."""
        if mode not in ("auto", "sdpa", "xformers"):
            raise ConfigError(f"--model-arg attention={mode!r}: choose auto, sdpa or xformers")
        if mode == "sdpa" or (mode == "auto" and self.device.type != "cuda"):
            return "sdpa"
        import importlib.util

        if importlib.util.find_spec("xformers") is None:
            if mode == "xformers":
                raise ConfigError("--model-arg attention=xformers: xformers is not installed "
                                  "(pip install xformers), or use the default SDPA attention")
            return "sdpa"
        try:
            self.unet.enable_xformers_memory_efficient_attention()
            return "xformers"
        except Exception as exc:  # a broken xformers build must not stop the run
            if mode == "xformers":
                raise
            warnings.warn(f"xformers attention unavailable ({type(exc).__name__}: {exc}); using SDPA")
            return "sdpa"


# --- loading ----------------------------------------------------------------------------------
def check_pipeline_dir(path: Path) -> dict:
    """Validate a local diffusers folder for SD 1.x/2.x; returns its model_index.json."""
    if path.is_file():
        raise ConfigError(f"{path} is a file, not a diffusers pipeline folder (a single-file .ckpt/.safetensors "
                          f"checkpoint needs converting first: StableDiffusionPipeline.from_single_file(...)"
                          f".save_pretrained(DIR), then --model sd:DIR)")
    index_path = path / "model_index.json"
    if not index_path.is_file():
        raise ConfigError(f"{path} is not a diffusers pipeline folder (no model_index.json); "
                          f"pass a folder saved with save_pretrained or downloaded with `hf download REPO "
                          f"--local-dir DIR`")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{index_path} is not readable JSON ({exc})") from None
    return check_model_index(index, str(path))


def check_model_index(index: dict, where: str) -> dict:
    if not isinstance(index.get("_class_name"), str):
        raise ConfigError(f"{where}: model_index.json names custom pipeline code; winoeval never runs remote code")
    if "text_encoder_2" in index or "transformer" in index:
        hint = {"StableDiffusion3Pipeline": "; for SD 3 use --model sd3:...", "FluxPipeline": "; for Flux use --model "
                "flux:...", "DiTPipeline": "; for DiT use --model dit:..."}.get(index.get("_class_name"), "")
        raise ConfigError(f"{where}: a {index.get('_class_name')} (SDXL/SD3-style, two text encoders or a "
                          f"transformer) is not supported; the sd plugin takes Stable Diffusion 1.x/2.x "
                          f"pipelines{hint}")
    missing = [c for c in COMPONENTS if not (isinstance(index.get(c), list) and index[c][0] is not None)]
    if missing:
        raise ConfigError(f"{where}: not a Stable Diffusion pipeline ({index.get('_class_name')}); "
                          f"model_index.json lacks {', '.join(missing)}")
    return index


def _has_safetensors(path: Path) -> bool:
    return all(any((path / c).glob("*.safetensors")) for c in WEIGHT_COMPONENTS)


def download_command(repo_id: str) -> str:
    """The targeted download of the README: only the components winoeval loads, safetensors only."""
    include = " ".join(f'--include "{c}/*"' for c in ("scheduler", "tokenizer", "text_encoder", "unet", "vae"))
    return f'hf download {repo_id} --include "model_index.json" {include} --exclude "*.bin" --exclude "*fp16*"'


def cached(repo_id: str) -> bool:
    """Whether the local hub cache holds what :func:`download_command` fetches (no network)."""
    from winoeval.hub import cached_files

    files = cached_files(repo_id)
    return "model_index.json" in files and all(any(f.startswith(c + "/") for f in files) for c in COMPONENTS)


def hub_help(repo_id: str) -> str:
    return (f"on a machine with network access run `{download_command(repo_id)}` (older huggingface_hub: "
            f"`huggingface-cli download` with the same options) and copy the Hugging Face cache "
            f"(~/.cache/huggingface or $HF_HOME) here, or add `--local-dir DIR` and pass --model sd:DIR; for a "
            f"gated or private repo run `hf auth login` first")


def resolve_source(source: str, revision: str | None = None) -> tuple[str, bool, bool | None]:
    """→ (what to pass to from_pretrained, is_local, use_safetensors). Hub ids are checked against the
    hub (or, offline, the local cache) by fetching model_index.json, which fails fast."""
    path = Path(source).expanduser()
    if path.exists():
        check_pipeline_dir(path)
        return str(path), True, (True if _has_safetensors(path) else None)
    if looks_like_path(source):
        raise ConfigError(f"sd:{source}: no such directory (pass a diffusers pipeline folder or a hub id "
                          f"such as stabilityai/stable-diffusion-2-base)")
    check_model_index(fetch_model_index(source, revision=revision, what="Stable Diffusion", fix=hub_help(source)),
                      source)
    builtin = source in {repo for repo, _ in MODELS.values()}
    return source, False, (True if builtin else None)


def _refuse_missing_weights(pipe, where: str) -> None:
    """A component file that lacks some tensors leaves them uninitialised on the meta device (diffusers
    only warns); refuse it here, naming the component and the tensors, instead of failing later."""
    for name, component in getattr(pipe, "components", {}).items():
        params = getattr(component, "named_parameters", None)
        if not callable(params):
            continue
        missing = [n for n, t in params() if getattr(t, "is_meta", False)]
        if missing:
            raise ConfigError(f"could not load the diffusers pipeline in {where}: its {name} lacks {len(missing)} "
                              f"weight(s) (first: {missing[0]}); the folder's {name} files are damaged or from "
                              f"another model")


def load_pipeline(source: str, *, dtype, revision: str | None = None, variant: str | None = None):
    """``StableDiffusionPipeline.from_pretrained`` with only the components winoeval needs."""
    from winoeval.hub import HubUnavailableError, offline_requested

    where, local, use_safetensors = resolve_source(source, revision)
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            where, **{_dtype_kwarg(): dtype}, use_safetensors=use_safetensors, revision=revision, variant=variant,
            safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
            trust_remote_code=False)
        _refuse_missing_weights(pipe, where)
        return pipe
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:  # EnvironmentError and the hub's not-found errors are OSErrors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise ConfigError(f"could not load the diffusers pipeline in {where}: {first}") from exc
        if offline_requested():  # set by the user or by go_offline_if_unreachable
            raise HubUnavailableError(f"could not load Stable Diffusion weights {source!r}: offline, and the local "
                                      f"cache lacks some of its files ({first}). To fix: {hub_help(source)}") from None
        raise
    except Exception as exc:  # a damaged local file: safetensors, torch and json raise many types
        if not local or isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"could not load the diffusers pipeline in {where}: {type(exc).__name__}: {first}") from None


def _dtype_kwarg() -> str:
    """diffusers ≥ 0.37 calls it ``dtype`` (``torch_dtype`` is deprecated there), older ones ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _dtype_for(config, device):
    import torch

    dtype = config.torch_dtype(device)
    if device.type == "cpu" and dtype == torch.float16:
        warnings.warn("float16 is not supported well on CPU; using float32 (pass --dtype float32 to silence this)")
        dtype = torch.float32
    return dtype


def load(source: str | None, config) -> StableDiffusionDenoiser:
    if not source:
        raise ConfigError("sd needs a hub id or a local folder: --model sd:stabilityai/stable-diffusion-2-base "
                          "or --model sd:/path/to/pipeline (or use sd1.5, sd2, sd2.1)")
    args = dict(getattr(config, "model_args", None) or {})
    unknown = sorted(set(args) - MODEL_ARGS)
    if unknown:
        raise ConfigError(f"unknown --model-arg {', '.join(unknown)} for sd; known: {', '.join(sorted(MODEL_ARGS))}")
    try:
        text_batch = int(args.get("text_batch_size", TEXT_BATCH))
    except ValueError:
        raise ConfigError(f"--model-arg text_batch_size needs an integer, got {args['text_batch_size']!r}") from None
    device = config.torch_device()
    dtype = _dtype_for(config, device)
    pipe = load_pipeline(source, dtype=dtype, revision=args.get("revision") or None,
                         variant=args.get("variant") or None)
    model = StableDiffusionDenoiser.from_pipeline(pipe, device=device, dtype=dtype, source=source,
                                                  text_batch_size=text_batch)
    model.attention = model.enable_attention(args.get("attention", "auto"))
    return model


def fingerprint(source: str | None, config) -> str:
    """What the run evaluates: a local folder's content hash, or the hub snapshot commit that
    ``from_pretrained`` resolves (found by fetching ``model_index.json``, which fails fast offline)."""
    if not source:
        raise ConfigError("sd needs a hub id or a local folder: --model sd:stabilityai/stable-diffusion-2-base "
                          "or --model sd:/path/to/pipeline (or use sd1.5, sd2, sd2.1)")
    args = dict(getattr(config, "model_args", None) or {})
    where, local, _ = resolve_source(source, args.get("revision") or None)
    variant = args.get("variant") or ""
    if local:
        from winoeval.fingerprint import hash_path

        return f"{hash_path(where)}:{variant}"
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(source, "model_index.json", revision=args.get("revision") or None)
    commit = Path(index).parent.name if isinstance(index, str) else (args.get("revision") or "unresolved")
    return f"hub:{source}@{commit}:{variant}"


def _named_loader(repo_id: str):
    def loader(argument, config):
        return load(repo_id, config)

    return loader


def _named_fingerprint(repo_id: str):
    return lambda argument, config: fingerprint(repo_id, config)


@hookimpl
def winoeval_register_models(register):
    for name, (repo_id, description) in MODELS.items():
        register(name, _named_loader(repo_id), description=f"{description} [{repo_id}]", options=MODEL_OPTIONS,
                 fingerprint=_named_fingerprint(repo_id), weights=(repo_id, lambda r=repo_id: cached(r)))
    register("sd", load, takes_argument=True, options=MODEL_OPTIONS, fingerprint=fingerprint,
             description="any Stable Diffusion 1.x/2.x diffusers pipeline: sd:HUB_ID or sd:/local/folder")
