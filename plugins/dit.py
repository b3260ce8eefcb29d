"""DiT (class-conditional ImageNet diffusion transformer, Peebles & Xie 2023) as a winoeval denoiser.

Models: ``dit-xl-2-256`` (facebook/DiT-XL-2-256), ``dit-xl-2-512`` and ``dit:<hub id or local folder>``
of any ``DiTPipeline``. What the scorer gets, as ``eval_prob_dit.py`` of the original repository does it:

* images: ADM's centre crop (halve with a box filter while the shorter side is ≥ 2× the size, bicubic
  resize of the shorter side to the size, centre crop), RGB, [−1, 1]; latent = VAE posterior mean ×
  ``scaling_factor`` (0.18215);
* texts → class ids: ``""`` is the null class (``num_embeds_ada_norm``, 1000 for DiT-XL/2); a text is
  one of the standard ImageNet class names of :mod:`winoeval.tasks.imagenet` (index order; 1000-class
  models), else one of the comma-separated names of the pipeline's ``id2label``, or ``"class N"``. The
  condition row is the class id (a float tensor of shape (1,));
* ``predict_noise`` = the first C channels of the transformer's output (learned σ: the second half is
  the variance, unused by the ε loss), at the integer timestep; ``alphas_cumprod`` from the pipeline's
  scheduler (DiT: linear betas 1e-4…0.02, 1000 steps). Objective ε.

Options: ``revision=``, ``variant=``. ``--dtype`` applies (float16 on CPU falls back to float32); the VAE
runs in float32.
"""

from __future__ import annotations

import re
from typing import Any

from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

from . import _diffusers_common as common

PLUGIN = "dit"
CLASSES = ("DiTPipeline",)
NEEDED = ("transformer", "vae", "scheduler")
MODELS = {
    "dit-xl-2-256": ("facebook/DiT-XL-2-256",
                     "DiT-XL/2 256 px, class-conditional ImageNet (ε half of a learned-σ output)"),
    "dit-xl-2-512": ("facebook/DiT-XL-2-512",
                     "DiT-XL/2 512 px, class-conditional ImageNet (ε half of a learned-σ output)"),
}
MODEL_OPTIONS = {
    "revision": "hub revision (branch, tag or commit) of the pipeline",
    "variant": "weight file variant, e.g. fp16",
}


def adm_center_crop(image, size: int):
    """ADM's (and DiT's) centre crop: box-halve while min side ≥ 2·size, bicubic to min side = size, crop."""
    from PIL import Image

    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


class DiTDenoiser:
    """The :class:`winoeval.api.Denoiser` protocol (ε objective) over a DiTPipeline."""

    kind = "denoiser"
    objective = "epsilon"

    def __init__(self, pipe, *, device=None, dtype=None, source: str = ""):
        import torch

        self.pipe = pipe
        self.device = torch.device(device) if device is not None else pipe.transformer.device
        self.dtype = dtype or pipe.transformer.dtype
        self.source = source
        self.transformer = torch.nn.Module.to(pipe.transformer, device=self.device, dtype=self.dtype).eval()
        self.vae = torch.nn.Module.to(pipe.vae, device=self.device, dtype=torch.float32).eval()
        cfg = self.transformer.config
        self.latent_channels = int(cfg.in_channels)
        self.learned_sigma = int(cfg.out_channels) == 2 * self.latent_channels
        self.num_classes = int(cfg.num_embeds_ada_norm)
        self.resolution = int(cfg.sample_size) * 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.alphas_cumprod = torch.as_tensor(pipe.scheduler.alphas_cumprod).detach().float().cpu()
        self._abar = self.alphas_cumprod
        self.names = self._class_names(pipe)

    def _class_names(self, pipe) -> dict[str, int]:
        """Text → class id: every comma-separated name of the pipeline's ``id2label`` (its ``labels``), then
        — for a 1000-class model, taking precedence — the standard ImageNet names (unique, unlike WordNet's)."""
        names = {str(k): int(v) for k, v in (getattr(pipe, "labels", None) or {}).items()}
        if self.num_classes == 1000:
            from winoeval.tasks.imagenet import class_names

            names.update({name: index for index, name in enumerate(class_names())})
        return names

    def class_id(self, text: str) -> int:
        if text == "":
            return self.num_classes  # the null class (classifier-free guidance's unconditional label)
        if text in self.names:
            return self.names[text]
        match = re.fullmatch(r"class (\d+)", text.strip())
        if match and int(match.group(1)) < self.num_classes:
            return int(match.group(1))
        raise ValueError(f"{text!r} is not a class of this DiT ({self.num_classes} classes); use an ImageNet class "
                         f"name, one of its id2label names, or 'class N'")

    def encode_images(self, images: list) -> "Any":
        import numpy as np
        import torch

        pix = [np.asarray(adm_center_crop(im, self.resolution).convert("RGB"), dtype=np.float32) for im in images]
        x = torch.from_numpy(np.stack(pix)).permute(0, 3, 1, 2) / 127.5 - 1.0
        return common.vae_latents(self.vae, x, device=self.device, dtype=torch.float32)

    def encode_texts(self, texts: list[str]) -> "Any":
        import torch

        return torch.tensor([[float(self.class_id(t))] for t in texts])

    def predict_noise(self, x_t, t, cond):
        """ε̂: the first C channels of the output (the rest is the learned variance)."""
        import torch

        labels = cond.reshape(-1).round().long().to(self.device)
        with torch.inference_mode():
            out = self.transformer(x_t.to(device=self.device, dtype=self.dtype), timestep=t.to(self.device).long(),
                                   class_labels=labels).sample
        return out[:, :self.latent_channels] if self.learned_sigma else out


def load(source: str | None, config) -> DiTDenoiser:
    if not source:
        raise ConfigError("dit needs a hub id or a local folder: --model dit:facebook/DiT-XL-2-256 or "
                          "--model dit:/path/to/pipeline (or use dit-xl-2-256, dit-xl-2-512)")
    args = common.model_args(config, MODEL_OPTIONS, PLUGIN)
    device = config.torch_device()
    dtype = common.dtype_for(config, device)
    from diffusers import DiTPipeline

    pipe = common.load_pipeline(DiTPipeline, source, plugin=PLUGIN, classes=CLASSES, needed=NEEDED, components=NEEDED,
                                dtype=dtype, revision=args.get("revision") or None, variant=args.get("variant") or None)
    return DiTDenoiser(pipe, device=device, dtype=dtype, source=source)


def fingerprint(source: str | None, config) -> str:
    if not source:
        raise ConfigError("dit needs a hub id or a local folder (see `winoeval info dit`)")
    return common.fingerprint(source, config, plugin=PLUGIN, classes=CLASSES, needed=NEEDED, components=NEEDED)


@hookimpl
def winoeval_register_models(register):
    common.register_family(register, "dit", MODELS, load, fingerprint, MODEL_OPTIONS, NEEDED,
                           "any class-conditional DiTPipeline: dit:HUB_ID or dit:/folder")
