"""OpenCLIP contrastive models as winoeval matchers: the paper's CLIP baselines.

Models:

* ``openclip``: ViT-H-14 trained on LAION-2B (``laion2b_s32b_b79k``), the paper's baseline
  (Winoground text score 33.0);
* ``clip-vit-l-14``: OpenAI's CLIP ViT-L/14 (``ViT-L-14`` / ``openai``, with its QuickGELU);
* ``openclip:ARCH/PRETRAINED``: any open_clip architecture with a pretrained tag
  (``openclip:ViT-B-32/laion2b_s34b_b79k``) or a local checkpoint file
  (``openclip:ViT-H-14//data/open_clip_pytorch_model.bin``); ``openclip:DIR`` for a folder with
  ``open_clip_config.json`` and weights (open_clip's ``local-dir:`` layout, as on the hub);
  ``openclip:hf-hub:ORG/REPO`` for an OpenCLIP repo on the hub.

Score: cosine similarity of the L2-normalised image and text embeddings, images preprocessed by
the model's own eval transform. Text embeddings are cached per run (per loaded model), so each
distinct text is encoded once. ``--dtype``/``--device`` apply (float16 on CPU falls back to float32).
Pretrained tags trained with QuickGELU (OpenAI's) get it automatically; ``--model-arg quick_gelu=true``
forces it for such weights loaded from a file (or use the ``ARCH-quickgelu`` architecture).

Offline: tags are looked up in the local cache only when the hub is unreachable or
``HF_HUB_OFFLINE=1``; a tag that is not cached fails at once with a
:class:`winoeval.hub.HubUnavailableError` saying how to get the weights.
"""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path
from typing import Any

from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

DEFAULT = ("ViT-H-14", "laion2b_s32b_b79k")
MODELS = {
    "clip-vit-l-14": (("ViT-L-14", "openai"), "OpenAI CLIP ViT-L/14 (paper baseline)"),
}
MODEL_OPTIONS = {
    "quick_gelu": "true/false: force QuickGELU activations (OpenAI-trained weights need them)",
    "batch_size": "images or texts per forward pass (default 64)",
}
MODEL_ARGS = set(MODEL_OPTIONS)
BATCH = 64
PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
TRUE = {"1", "true", "yes", "on"}


class OpenCLIPMatcher:
    """:class:`winoeval.api.Matcher` over an open_clip model: cosine similarity of embeddings."""

    kind = "matcher"

    def __init__(self, model, preprocess, tokenizer, *, device, dtype, name: str = "", batch_size: int = BATCH):
        import torch

        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.dtype = dtype  # the input dtype (weights are in it too, apart from open_clip's fp32 norms)
        self.name = name
        self.batch_size = int(batch_size)
        self._texts: dict[str, Any] = {}

    def encode_images(self, images: list) -> "Any":
        """L2-normalised image embeddings (float32, on the model's device)."""
        import torch

        feats = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = torch.stack([self.preprocess(im.convert("RGB")) for im in images[start:start + self.batch_size]])
                f = self.model.encode_image(x.to(device=self.device, dtype=self.dtype)).float()
                feats.append(torch.nn.functional.normalize(f, dim=-1))
        return torch.cat(feats)

    def encode_texts(self, texts: list[str]) -> "Any":
        """L2-normalised text embeddings (float32); each distinct text is encoded once per model."""
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        with torch.inference_mode():
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start:start + self.batch_size]
                f = self.model.encode_text(self.tokenizer(chunk).to(self.device)).float()
                for text, row in zip(chunk, torch.nn.functional.normalize(f, dim=-1)):
                    self._texts[text] = row
        return torch.stack([self._texts[t] for t in texts])

    def similarity(self, images: list, texts: list[str]) -> "Any":
        """(n_images, n_texts) cosine similarities."""
        return (self.encode_images(list(images)) @ self.encode_texts(list(texts)).T).cpu()


# --- loading ----------------------------------------------------------------------------------
def parse_argument(argument: str | None) -> tuple[str, str | None]:
    """``openclip`` argument → (open_clip model name, pretrained tag or file, or None for schemas)."""
    import open_clip

    if not argument:
        return DEFAULT
    if argument.startswith(("hf-hub:", "local-dir:")):
        return argument, None
    if Path(argument).expanduser().is_dir():
        return f"local-dir:{Path(argument).expanduser()}", None
    arch, sep, pretrained = argument.partition("/")
    arch_key = arch.replace("/", "-")
    if open_clip.get_model_config(arch_key) is None:
        close = difflib.get_close_matches(arch_key, open_clip.list_models(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (open_clip.list_models() lists them)"
        raise ConfigError(f"openclip:{argument}: unknown architecture {arch!r}{hint}")
    tags = open_clip.list_pretrained_tags_by_model(arch_key)
    if not pretrained:
        raise ConfigError(f"openclip:{argument}: give weights as openclip:{arch}/TAG (tags for {arch}: "
                          f"{', '.join(tags) or 'none'}) or openclip:{arch}//path/to/checkpoint")
    if os.path.isfile(os.path.expanduser(pretrained)):
        return arch_key, os.path.expanduser(pretrained)
    if pretrained in tags:
        return arch_key, pretrained
    if "/" in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors")):
        raise ConfigError(f"openclip:{argument}: no such checkpoint file {pretrained!r}")
    raise ConfigError(f"openclip:{argument}: unknown pretrained tag {pretrained!r} for {arch} "
                      f"(known: {', '.join(tags) or 'none'}; or pass a checkpoint file path)")


def hub_source(arch: str, pretrained: str | None) -> str | None:
    """The hub file (``ORG/REPO/FILE``) or URL that a pretrained tag downloads, for messages."""
    import open_clip

    if pretrained is None or os.path.isfile(pretrained):
        return None
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        return f"{repo} {filename or 'open_clip_pytorch_model.bin'}"
    return cfg.get("url") or None


def offline_message(name: str, arch: str, pretrained: str | None, reason: str) -> str:
    source = arch.removeprefix("hf-hub:") if arch.startswith("hf-hub:") else hub_source(arch, pretrained)
    if source and not source.startswith("http"):
        fetch = (f"on a machine with network access run `hf download {source}` (older huggingface_hub: "
                 f"`huggingface-cli download {source}`) and copy the Hugging Face cache (~/.cache/huggingface "
                 f"or $HF_HOME) here; for a gated or private repo run `hf auth login` first")
    else:
        fetch = f"download {source or 'the weights'} on a machine with network access"
    hint = f"--model openclip:{arch if ':' not in arch else 'ARCH'}//path/to/open_clip_pytorch_model.bin"
    if pretrained and ":" not in arch and _tag_cfg(arch, pretrained).get("quick_gelu"):
        hint += " --model-arg quick_gelu=true"  # a file does not say it was trained with QuickGELU
    return f"could not load OpenCLIP weights {name}: {reason}. To fix: {fetch}; or pass a local checkpoint file: {hint}"


def _tag_cfg(arch: str, pretrained: str) -> dict:
    import open_clip

    return {} if os.path.isfile(pretrained) else dict(open_clip.get_pretrained_cfg(arch, pretrained))


def _not_cached(arch: str, pretrained: str | None) -> bool:
    """True when the hub file(s) a tag or ``hf-hub:`` name needs are surely not in the local cache."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    if arch.startswith("hf-hub:"):
        repo, files = arch.removeprefix("hf-hub:"), ["open_clip_config.json"]
    elif pretrained and not os.path.isfile(pretrained):
        hub = open_clip.get_pretrained_cfg(arch, pretrained).get("hf_hub", "")
        if not hub:
            return False  # a plain URL download, not the hub
        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        files = [filename]
        if filename == "open_clip_pytorch_model.bin":
            files.append("open_clip_model.safetensors")
        elif filename.endswith((".bin", ".pth")):
            files.append(filename[:-4] + ".safetensors")
    else:
        return False
    return not any(isinstance(try_to_load_from_cache(repo, f), str) for f in files)


def load_model(arch: str, pretrained: str | None, config, *, quick_gelu: bool | None = None,
               batch_size: int = BATCH, name: str = "") -> OpenCLIPMatcher:
    import open_clip
    import torch

    from winoeval.hub import HubUnavailableError, go_offline_if_unreachable, offline_requested

    device = config.torch_device()
    dtype = config.torch_dtype(device)
    if device.type == "cpu" and dtype == torch.float16:
        warnings.warn("float16 is not supported well on CPU; using float32 (pass --dtype float32 to silence this)")
        dtype = torch.float32
    precision = PRECISION[str(dtype).removeprefix("torch.")]
    needs_hub = arch.startswith("hf-hub:") or (pretrained is not None and not os.path.isfile(pretrained))
    requested = offline_requested()  # (go_offline_if_unreachable sets HF_HUB_OFFLINE itself)
    offline = go_offline_if_unreachable() if needs_hub else False
    why = "HF_HUB_OFFLINE is set" if requested else "the Hugging Face Hub is not reachable"
    if quick_gelu is None and pretrained:
        quick_gelu = bool(_tag_cfg(arch, pretrained).get("quick_gelu", False))
    name = name or (f"{arch}/{pretrained}" if pretrained else arch)
    if offline:
        missing = _not_cached(arch, pretrained)
        if missing:  # fail here, before open_clip logs its own download errors
            raise HubUnavailableError(offline_message(name, arch, pretrained,
                                                      f"{why} and they are not in the local cache"))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, precision=precision, device=device, force_quick_gelu=bool(quick_gelu))
        tokenizer = open_clip.get_tokenizer(arch)
    except (RuntimeError, OSError, ValueError) as exc:
        text = str(exc)
        hub_failure = needs_hub and ("download" in text.lower() or "hf hub" in text.lower()
                                     or isinstance(exc, OSError))
        if hub_failure:
            reason = (f"{why} and they are not in the local cache" if offline
                      else f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
            raise HubUnavailableError(offline_message(name, arch, pretrained, reason)) from None
        if isinstance(exc, (FileNotFoundError, ValueError)) or "local-dir" in arch:
            raise ConfigError(f"could not load OpenCLIP model {name}: {' '.join(text.split())[:300] or exc}") from exc
        if not needs_hub and "out of memory" not in text.lower():  # a local file of the wrong shapes or keys
            raise ConfigError(f"could not load OpenCLIP model {name}: {type(exc).__name__}: "
                              f"{' '.join(text.split())[:300]}") from None
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged local file (safetensors' own error type, ...)
        if needs_hub or isinstance(exc, MemoryError):
            raise
        raise ConfigError(f"could not load OpenCLIP model {name}: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}") from None
    return OpenCLIPMatcher(model, preprocess, tokenizer, device=device, dtype=dtype, name=name,
                           batch_size=batch_size)


def _options(config) -> dict[str, Any]:
    args = dict(getattr(config, "model_args", None) or {})
    unknown = sorted(set(args) - MODEL_ARGS)
    if unknown:
        raise ConfigError(f"unknown --model-arg {', '.join(unknown)} for openclip; "
                          f"known: {', '.join(sorted(MODEL_ARGS))}")
    out: dict[str, Any] = {}
    if "quick_gelu" in args:
        out["quick_gelu"] = str(args["quick_gelu"]).strip().lower() in TRUE
    if "batch_size" in args:
        try:
            out["batch_size"] = int(args["batch_size"])
        except ValueError:
            raise ConfigError(f"--model-arg batch_size needs an integer, got {args['batch_size']!r}") from None
    return out


def load(argument: str | None, config) -> OpenCLIPMatcher:
    options = _options(config)  # checked before open_clip (slow to import) loads
    arch, pretrained = parse_argument(argument)
    return load_model(arch, pretrained, config, name=f"openclip:{argument}" if argument else "openclip", **options)


def _fingerprint_of(arch: str, pretrained: str | None) -> str:
    from winoeval.fingerprint import hash_path, local_path

    if arch.startswith("local-dir:"):
        return hash_path(arch[len("local-dir:"):])
    if pretrained is not None and local_path(pretrained) is not None:
        return f"{arch}:{hash_path(pretrained)}"
    return f"open_clip:{arch}/{pretrained}"  # a released tag names fixed weights


def fail_fast(arch_tag: tuple[str, str], name: str) -> None:
    """Offline (``HF_HUB_OFFLINE`` or an unreachable hub) and the weights of a shipped name are not in the
    local cache: say so at once, before ``import open_clip`` (seconds) or any data loads."""
    from winoeval.hub import HubUnavailableError, go_offline_if_unreachable, offline_requested

    requested = offline_requested()
    if not go_offline_if_unreachable() or cached(arch_tag):
        return
    repo = HUB_WEIGHTS[arch_tag][0]
    why = "HF_HUB_OFFLINE is set" if requested else "the Hugging Face Hub is not reachable"
    raise HubUnavailableError(
        f"could not load OpenCLIP weights {name}: {why} and they are not in the local cache. To fix: on a machine "
        f"with network access run `hf download {repo} open_clip_pytorch_model.bin` (older huggingface_hub: "
        f"`huggingface-cli download` with the same arguments) and copy the Hugging Face cache (~/.cache/huggingface "
        f"or $HF_HOME) here; or pass a local checkpoint file: --model openclip:{arch_tag[0]}//path/to/"
        f"open_clip_pytorch_model.bin")


def fingerprint(argument: str | None, config) -> str:
    """A local checkpoint or folder by content; a released ``ARCH/TAG`` by name (checked before loading)."""
    _options(config)
    if not argument:
        fail_fast(DEFAULT, "openclip")
        return _fingerprint_of(*DEFAULT)
    return _fingerprint_of(*parse_argument(argument))


HUB_WEIGHTS = {  # the hub repository and file each shipped name downloads (open_clip's pretrained table)
    DEFAULT: ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "open_clip"),
    ("ViT-L-14", "openai"): ("timm/vit_large_patch14_clip_224.openai", "open_clip"),
}


def cached(arch_tag: tuple[str, str]) -> bool:
    """Whether the local hub cache holds the weights of ``(arch, tag)`` (no network)."""
    from winoeval.hub import cached_files

    repo, prefix = HUB_WEIGHTS[arch_tag]
    return any(f.startswith(prefix) for f in cached_files(repo))


def _named_loader(arch: str, pretrained: str, name: str):
    def loader(argument, config):
        return load_model(arch, pretrained, config, name=name, **_options(config))

    return loader


@hookimpl
def winoeval_register_models(register):
    register("openclip", load, takes_argument=True, options=MODEL_OPTIONS, fingerprint=fingerprint,
             weights=(HUB_WEIGHTS[DEFAULT][0], lambda: cached(DEFAULT)),
             description="OpenCLIP ViT-H-14 laion2b_s32b_b79k, the paper's baseline; "
                         "openclip:ARCH/TAG, openclip:ARCH//CHECKPOINT, openclip:DIR")
    for name, ((arch, tag), description) in MODELS.items():
        register(name, _named_loader(arch, tag, name), description=f"{description} [{arch}/{tag}]",
                 options=MODEL_OPTIONS, fingerprint=lambda argument, config, a=arch, t=tag, n=name: (
                     fail_fast((a, t), n) or _fingerprint_of(a, t)),
                 weights=(HUB_WEIGHTS[(arch, tag)][0], lambda a=arch, t=tag: cached((a, t))))
