"""What the sd3, flux and dit plugins share: finding a diffusers pipeline (local folder or hub id, offline
errors through :mod:`winoeval.hub`), loading it without remote code, its fingerprint, the dtype rule and
the images → [−1, 1] preprocessing of the sd plugin.

No torch/diffusers import at module level: ``winoeval --help`` loads every plugin.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable

from winoeval.config import ConfigError


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.count("/") > 1 or "\\" in source


def check_index(index: dict, where: str, classes: Iterable[str], needed: Iterable[str], plugin: str) -> dict:
    """A model_index.json of one of ``classes`` holding every ``needed`` component."""
    classes = tuple(classes)
    name = index.get("_class_name")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: model_index.json names custom pipeline code; winoeval never runs remote code")
    if name not in classes:
        raise ConfigError(f"{where}: a {name}, not a {' or '.join(classes)}; the {plugin} plugin takes only those "
                          f"(Stable Diffusion 1.x/2.x: --model sd:...; SD 3: sd3:...; Flux: flux:...; DiT: dit:...)")
    missing = [c for c in needed if not (isinstance(index.get(c), list) and index[c][0] is not None)]
    if missing:
        raise ConfigError(f"{where}: this {name} lacks {', '.join(missing)} in model_index.json")
    return index


def download_command(repo_id: str, components: Iterable[str]) -> str:
    include = " ".join(f'--include "{c}/*"' for c in components)
    return f'hf download {repo_id} --include "model_index.json" {include} --exclude "*.bin"'


def hub_help(repo_id: str, components: Iterable[str], plugin: str) -> str:
    return (f"on a machine with network access run `{download_command(repo_id, components)}` and copy the Hugging "
            f"Face cache (~/.cache/huggingface or $HF_HOME) here, or add `--local-dir DIR` and pass --model "
            f"{plugin}:DIR; for a gated repo (SD 3, Flux dev) accept its licence on the hub and run `hf auth login` "
            f"first")


def cached(repo_id: str, components: Iterable[str]) -> bool:
    from winoeval.hub import cached_files

    files = cached_files(repo_id)
    return "model_index.json" in files and all(any(f.startswith(c + "/") for f in files) for c in components)


def fetch_model_index(source: str, *, revision: str | None, what: str, fix: str) -> dict:
    """A hub id's ``model_index.json`` (offline: from the local cache only). Any failure — a cache miss
    offline, an unknown or gated repo, the network — is one :class:`HubUnavailableError` at once, saying
    why and ``fix``: never a retry storm."""
    from winoeval.hub import HubUnavailableError, go_offline_if_unreachable, offline_requested

    requested = offline_requested()  # (go_offline_if_unreachable sets HF_HUB_OFFLINE itself)
    offline = go_offline_if_unreachable()
    try:
        from huggingface_hub import hf_hub_download

        index_file = hf_hub_download(source, "model_index.json", revision=revision)
    except Exception as exc:  # offline cache miss, unknown repo, gated, network: one clear error
        why = "HF_HUB_OFFLINE is set" if requested else "the Hugging Face Hub is not reachable"
        reason = (f"{why} and it is not in the local cache" if offline
                  else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise HubUnavailableError(f"could not load {what} weights {source!r}: {reason}. To fix: {fix}") from None
    return json.loads(Path(index_file).read_text())


def resolve_source(source: str, *, plugin: str, classes: Iterable[str], needed: Iterable[str],
                   components: Iterable[str], revision: str | None = None, example: str = "") -> tuple[str, bool]:
    """→ (what to pass to from_pretrained, is_local). A folder is checked here; a hub id by fetching its
    model_index.json (offline: from the local cache only), which fails fast with one clear error."""
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            raise ConfigError(f"{path} is a file, not a diffusers pipeline folder (convert a single-file checkpoint "
                              f"with <Pipeline>.from_single_file(...).save_pretrained(DIR) first)")
        index_path = path / "model_index.json"
        if not index_path.is_file():
            raise ConfigError(f"{path} is not a diffusers pipeline folder (no model_index.json); pass a folder "
                              f"saved with save_pretrained or downloaded with `hf download REPO --local-dir DIR`")
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{index_path} is not readable JSON ({exc})") from None
        check_index(index, str(path), classes, needed, plugin)
        return str(path), True
    if looks_like_path(source):
        raise ConfigError(f"{plugin}:{source}: no such directory (pass a diffusers pipeline folder or a hub id"
                          f"{', e.g. ' + example if example else ''})")
    index = fetch_model_index(source, revision=revision, what=plugin, fix=hub_help(source, components, plugin))
    check_index(index, source, classes, needed, plugin)
    return source, False


def dtype_kwarg() -> str:
    """diffusers ≥ 0.37 calls it ``dtype`` (``torch_dtype`` is deprecated there), older ones ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def load_pipeline(pipeline_cls, source: str, *, plugin: str, classes, needed, components, dtype,
                  revision: str | None = None, variant: str | None = None, **parts: Any):
    """``pipeline_cls.from_pretrained`` (no remote code, safetensors when a folder has them) with one clear
    error for a bad folder or an incomplete offline cache. ``parts`` override components (None drops one)."""
    from winoeval.hub import HubUnavailableError, offline_requested

    where, local = resolve_source(source, plugin=plugin, classes=classes, needed=needed, components=components,
                                  revision=revision)
    try:
        return pipeline_cls.from_pretrained(where, **{dtype_kwarg(): dtype}, revision=revision, variant=variant,
                                            trust_remote_code=False, **parts)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise ConfigError(f"could not load the diffusers pipeline in {where}: {first}") from exc
        if offline_requested():
            raise HubUnavailableError(f"could not load {plugin} weights {source!r}: offline, and the local cache "
                                      f"lacks some of its files ({first}). To fix: "
                                      f"{hub_help(source, components, plugin)}") from None
        raise


def fingerprint(source: str, config, *, plugin: str, classes, needed, components, extra: str = "") -> str:
    """A local folder's content hash, or the hub snapshot commit ``from_pretrained`` resolves."""
    args = dict(getattr(config, "model_args", None) or {})
    revision = args.get("revision") or None
    where, local = resolve_source(source, plugin=plugin, classes=classes, needed=needed, components=components,
                                  revision=revision)
    variant = args.get("variant") or ""
    if local:
        from winoeval.fingerprint import hash_path

        return f"{hash_path(where)}:{variant}{extra}"
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(source, "model_index.json", revision=revision)
    commit = Path(index).parent.name if isinstance(index, str) else (revision or "unresolved")
    return f"hub:{source}@{commit}:{variant}{extra}"


def model_args(config, known: dict[str, str], plugin: str) -> dict[str, str]:
    args = dict(getattr(config, "model_args", None) or {})
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ConfigError(f"unknown --model-arg {', '.join(unknown)} for {plugin}; known: {', '.join(sorted(known))}")
    return args


def dtype_for(config, device):
    """``--dtype`` (auto: float16 on CUDA, float32 on CPU); float16 on a CPU falls back to float32."""
    import torch

    dtype = config.torch_dtype(device)
    if device.type == "cpu" and dtype == torch.float16:
        warnings.warn("float16 is not supported well on CPU; using float32 (pass --dtype float32 to silence this)")
        dtype = torch.float32
    return dtype


def to_pm1(images: list, size: int) -> "Any":
    """PIL images → (B, 3, size, size) float32 in [−1, 1]: bicubic resize of the shorter side to ``size``,
    centre crop (torchvision's Resize + CenterCrop arithmetic), *then* RGB — the paper's code's order,
    which differs from converting first for palette (resized nearest-neighbour by PIL) and RGBA images.
    Every diffusers-based plugin (sd, sd3, flux, dit) prepares images this way."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    for im in images:
        w, h = im.size
        if (w, h) != (size, size):
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(size * long / short)
            new_w, new_h = (size, new_long) if w <= h else (new_long, size)
            im = im.resize((new_w, new_h), Image.BICUBIC)
            left = int(round((new_w - size) / 2.0))
            top = int(round((new_h - size) / 2.0))
            im = im.crop((left, top, left + size, top + size))
        out.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2) / 255.0
    return x * 2.0 - 1.0


def vae_latents(vae, x, *, device, dtype, batch: int = 8) -> "Any":
    """The VAE posterior mean, (z − shift_factor)·scaling_factor, float32 (no sampling: deterministic)."""
    import torch

    shift = getattr(vae.config, "shift_factor", None) or 0.0
    scale = float(vae.config.scaling_factor)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            z = vae.encode(x[start:start + batch].to(device=device, dtype=dtype)).latent_dist.mean
            out.append(((z.float() - shift) * scale))
    return torch.cat(out)


def flat_pack(*parts) -> "Any":
    """Several per-text tensors (B, ...) as one (B, D) row each (the Denoiser's one condition tensor)."""
    import torch

    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)


def flat_unpack(cond, shapes: list[tuple[int, ...]]) -> list:
    out, start = [], 0
    for shape in shapes:
        n = 1
        for s in shape:
            n *= s
        out.append(cond[:, start:start + n].reshape(cond.shape[0], *shape))
        start += n
    return out


def decode_to_pil(vae, latents) -> list:
    """VAE latents (scaled, shifted) → RGB PIL images, decoded in float32."""
    import numpy as np
    import torch
    from PIL import Image

    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.inference_mode():
        z = latents.float().to(next(vae.parameters()).device) / float(vae.config.scaling_factor) + shift
        x = vae.decode(z.to(next(vae.parameters()).dtype)).sample.float()
    pix = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(p), mode="RGB") for p in pix]


def register_family(register, family: str, models: dict[str, tuple[str, str]], load, fingerprint,
                    options: dict[str, str], components: Iterable[str], description: str) -> None:
    """Register a pipeline family: each named hub model (``models``: name → (repo id, description)) and the
    generic ``FAMILY:HUB_ID_OR_FOLDER``, with the family's options, fingerprint and hub-cache state."""
    components = list(components)
    for name, (repo_id, text) in models.items():
        register(name, lambda argument, config, r=repo_id: load(r, config), description=f"{text} [{repo_id}]",
                 options=options, fingerprint=lambda argument, config, r=repo_id: fingerprint(r, config),
                 weights=(repo_id, lambda r=repo_id: cached(r, components)))
    register(family, load, takes_argument=True, options=options, fingerprint=fingerprint, description=description)
