"""Stable Diffusion 3 / 3.5 (rectified-flow MMDiT) as a winoeval denoiser with the ``flow`` objective.

Models: ``sd3-medium`` (stabilityai/stable-diffusion-3-medium-diffusers), ``sd3.5-medium``,
``sd3.5-large`` and ``sd3:<hub id or local folder>`` of any ``StableDiffusion3Pipeline``. What the
scorer gets:

* images: RGB, bicubic shorter-side resize to the model resolution (transformer sample size × VAE
  scale factor: 1024 for SD 3), centre crop, [−1, 1]; latent = (VAE posterior mean − shift_factor) ×
  scaling_factor (16 channels);
* texts: the pipeline's own ``encode_prompt`` (CLIP-L and CLIP-G penultimate states, padded to the T5
  width, then the T5 states of ``max_sequence_length`` tokens; pooled = both CLIP pooled outputs), packed
  into one row per text; ``""`` is the pipeline's negative/unconditional prompt;
* ``predict_noise`` = the transformer's output, the velocity v ≈ ε − x₀, at timestep σ_t·T (what the
  pipeline passes); ``objective = "flow"``, ``sigmas`` = the scheduler's training σ grid with its shift
  (3.0 for SD 3), see :mod:`winoeval.scoring.objectives`.

Options: ``--model-arg t5=off`` drops the T5 encoder (diffusers then feeds zeros in its place, as
``text_encoder_3=None`` does; saves ~9 GB), ``max_sequence_length=N`` (T5 tokens, default 256),
``revision=``, ``variant=fp16``. ``--dtype`` applies (float16 on CPU falls back to float32); the VAE runs
in float32 (it encodes each image once).

Offline: hub names are looked up in the local cache only when the hub is unreachable or
``HF_HUB_OFFLINE=1``; a name that is not cached fails at once naming the download command.
"""

from __future__ import annotations

from typing import Any

from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

from . import _diffusers_common as common

PLUGIN = "sd3"
CLASSES = ("StableDiffusion3Pipeline",)
NEEDED = ("transformer", "vae", "scheduler", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
COMPONENTS = NEEDED + ("text_encoder_3", "tokenizer_3")
MODELS = {
    "sd3-medium": ("stabilityai/stable-diffusion-3-medium-diffusers", "Stable Diffusion 3 medium (1024 px, flow)"),
    "sd3.5-medium": ("stabilityai/stable-diffusion-3.5-medium", "Stable Diffusion 3.5 medium (1024 px, flow)"),
    "sd3.5-large": ("stabilityai/stable-diffusion-3.5-large", "Stable Diffusion 3.5 large (1024 px, flow)"),
}
MODEL_OPTIONS = {
    "t5": "on (default) or off: drop the T5 text encoder (zeros in its place, as diffusers allows)",
    "max_sequence_length": "T5 tokens per prompt (default 256)",
    "revision": "hub revision (branch, tag or commit) of the pipeline",
    "variant": "weight file variant, e.g. fp16 (half-size files)",
}
TEXT_BATCH = 16


class SD3Denoiser:
    """The :class:`winoeval.api.Denoiser` protocol (flow objective) over a StableDiffusion3Pipeline."""

    kind = "denoiser"
    objective = "flow"

    def __init__(self, pipe, *, device=None, dtype=None, source: str = "", max_sequence_length: int = 256):
        import torch

        from winoeval.scoring.objectives import flow_sigmas

        self.pipe = pipe
        self.device = torch.device(device) if device is not None else pipe.transformer.device
        self.dtype = dtype or pipe.transformer.dtype
        self.source = source
        self.max_sequence_length = int(max_sequence_length)
        for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3"):
            module = getattr(pipe, name, None)
            if module is not None:
                torch.nn.Module.to(module, device=self.device, dtype=self.dtype).eval()
        torch.nn.Module.to(pipe.vae, device=self.device, dtype=torch.float32).eval()
        self.transformer, self.vae, self.scheduler = pipe.transformer, pipe.vae, pipe.scheduler
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.sigmas = flow_sigmas(self.scheduler).float()  # float32, as the scheduler holds them
        self._sigmas_device = self.sigmas.to(self.device)
        sample = self.transformer.config.sample_size
        self.resolution = int(sample[0] if isinstance(sample, (list, tuple)) else sample) * pipe.vae_scale_factor
        self._shapes = None

    def encode_images(self, images: list) -> "Any":
        import torch

        return common.vae_latents(self.vae, common.to_pm1(images, self.resolution), device=self.device,
                                  dtype=torch.float32)

    def encode_texts(self, texts: list[str]) -> "Any":
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), TEXT_BATCH):
                chunk = list(texts[start:start + TEXT_BATCH])
                embeds, _, pooled, _ = self.pipe.encode_prompt(
                    prompt=chunk, prompt_2=None, prompt_3=None, device=self.device, do_classifier_free_guidance=False,
                    max_sequence_length=self.max_sequence_length)
                self._shapes = [tuple(embeds.shape[1:]), tuple(pooled.shape[1:])]
                rows.append(common.flat_pack(embeds.to(self.dtype), pooled.to(self.dtype)))
        return torch.cat(rows)

    def predict_noise(self, x_t, t, cond):
        """The velocity v̂ ≈ ε − x₀ (flow objective) at σ_t: the transformer called as the pipeline calls it."""
        import torch

        if self._shapes is None:
            self.encode_texts([""])
        embeds, pooled = common.flat_unpack(cond.to(device=self.device, dtype=self.dtype), self._shapes)
        # the pipeline passes the scheduler's float32 timestep σ·T
        timestep = self._sigmas_device[t.to(self.device).long()] * self.num_train_timesteps
        with torch.inference_mode():
            return self.transformer(hidden_states=x_t.to(device=self.device, dtype=self.dtype),
                                    timestep=timestep, encoder_hidden_states=embeds,
                                    pooled_projections=pooled, return_dict=False)[0]


    def sample(self, label: str, n: int, guidance: float = 2.0, seed: int = 0, steps: int = 28) -> list:
        """``n`` images of the prompt ``label``: the pipeline's own flow-matching Euler sampler (``steps``
        steps) with classifier-free guidance v̂ = (1 + w)·v(c) − w·v(∅) (diffusers' guidance_scale = 1 + w),
        then the VAE decoder in float32."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = self.pipe(prompt=[label] * n, num_inference_steps=int(steps), guidance_scale=1.0 + float(guidance),
                            height=self.resolution, width=self.resolution, generator=gen, output_type="latent",
                            max_sequence_length=self.max_sequence_length).images
        return common.decode_to_pil(self.vae, latents)


def load(source: str | None, config) -> SD3Denoiser:
    if not source:
        raise ConfigError("sd3 needs a hub id or a local folder: --model sd3:stabilityai/stable-diffusion-3-medium-"
                          "diffusers or --model sd3:/path/to/pipeline (or use sd3-medium, sd3.5-medium, sd3.5-large)")
    args = common.model_args(config, MODEL_OPTIONS, PLUGIN)
    t5 = str(args.get("t5", "on")).lower()
    if t5 not in ("on", "off"):
        raise ConfigError(f"--model-arg t5={args['t5']!r}: choose on or off")
    try:
        max_len = int(args.get("max_sequence_length", 256))
    except ValueError:
        raise ConfigError(f"--model-arg max_sequence_length needs an integer, "
                          f"got {args['max_sequence_length']!r}") from None
    device = config.torch_device()
    dtype = common.dtype_for(config, device)
    from diffusers import StableDiffusion3Pipeline

    parts = {"text_encoder_3": None, "tokenizer_3": None} if t5 == "off" else {}
    pipe = common.load_pipeline(StableDiffusion3Pipeline, source, plugin=PLUGIN, classes=CLASSES, needed=NEEDED,
                                components=[c for c in COMPONENTS if t5 == "on" or not c.endswith("_3")],
                                dtype=dtype, revision=args.get("revision") or None,
                                variant=args.get("variant") or None, **parts)
    return SD3Denoiser(pipe, device=device, dtype=dtype, source=source, max_sequence_length=max_len)


def fingerprint(source: str | None, config) -> str:
    if not source:
        raise ConfigError("sd3 needs a hub id or a local folder (see `winoeval info sd3`)")
    args = dict(getattr(config, "model_args", None) or {})
    extra = f":t5={args.get('t5', 'on')}:L={args.get('max_sequence_length', 256)}"
    return common.fingerprint(source, config, plugin=PLUGIN, classes=CLASSES, needed=NEEDED, components=COMPONENTS,
                              extra=extra)


@hookimpl
def winoeval_register_models(register):
    common.register_family(register, "sd3", MODELS, load, fingerprint, MODEL_OPTIONS, COMPONENTS,
                           "any Stable Diffusion 3 / 3.5 diffusers pipeline (rectified flow): "
                           "sd3:HUB_ID or sd3:/folder")
