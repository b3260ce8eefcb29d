"""Flux (rectified-flow transformer) as a winoeval denoiser with the ``flow`` objective.

Models: ``flux-schnell`` (black-forest-labs/FLUX.1-schnell), ``flux-dev`` (FLUX.1-dev, gated) and
``flux:<hub id or local folder>`` of any ``FluxPipeline``. What the scorer gets:

* images: RGB, bicubic shorter-side resize to ``--model-arg resolution`` (default 1024, a multiple of
  16), centre crop, [−1, 1]; latent = (VAE posterior mean − shift_factor) × scaling_factor, unpacked
  (B, 16, H/8, W/8): the 2×2 packing into tokens happens inside ``predict_noise``, with the pipeline's
  own ``_pack_latents`` / ``_unpack_latents`` / ``_prepare_latent_image_ids``;
* texts: the pipeline's own ``encode_prompt`` (T5 states of ``max_sequence_length`` tokens + the CLIP
  pooled output), one packed row per text; ``""`` is the empty prompt;
* ``predict_noise`` = the transformer's velocity v ≈ ε − x₀ at timestep σ_t (the pipeline passes
  t/1000 in the latents' dtype), with ``guidance`` = ``--model-arg guidance=G`` (default 1.0: the
  conditional prediction) when the transformer has a guidance embedding (dev) and none otherwise
  (schnell); ``objective = "flow"``, ``sigmas`` = the scheduler's training σ grid, with the pipeline's
  resolution-dependent shift when the scheduler uses dynamic shifting (dev; μ from the image's token count).

Options: ``resolution=``, ``guidance=``, ``max_sequence_length=`` (default 512 for dev, 256 for schnell, as
the pipeline allows), ``revision=``, ``variant=``. ``--dtype`` applies; the VAE runs in float32.
"""

from __future__ import annotations

from typing import Any

from winoeval.config import ConfigError
from winoeval.hookspecs import hookimpl

from . import _diffusers_common as common

PLUGIN = "flux"
CLASSES = ("FluxPipeline",)
NEEDED = ("transformer", "vae", "scheduler", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
MODELS = {
    "flux-schnell": ("black-forest-labs/FLUX.1-schnell", "FLUX.1 schnell (flow, timestep-distilled, no guidance)"),
    "flux-dev": ("black-forest-labs/FLUX.1-dev", "FLUX.1 dev (flow, guidance-distilled; gated)"),
}
MODEL_OPTIONS = {
    "resolution": "image side in pixels, a multiple of 16 (default 1024)",
    "guidance": "guidance embedding value for models that have one (default 1.0)",
    "max_sequence_length": "T5 tokens per prompt (default 512; at most 256 for schnell)",
    "revision": "hub revision (branch, tag or commit) of the pipeline",
    "variant": "weight file variant, e.g. fp16",
}
TEXT_BATCH = 16


class FluxDenoiser:
    """The :class:`winoeval.api.Denoiser` protocol (flow objective) over a FluxPipeline."""

    kind = "denoiser"
    objective = "flow"

    def __init__(self, pipe, *, device=None, dtype=None, source: str = "", resolution: int = 1024,
                 guidance: float = 1.0, max_sequence_length: int = 512):
        import torch

        from winoeval.scoring.objectives import flow_sigmas

        self.pipe = pipe
        self.device = torch.device(device) if device is not None else pipe.transformer.device
        self.dtype = dtype or pipe.transformer.dtype
        self.source = source
        for name in ("transformer", "text_encoder", "text_encoder_2"):
            torch.nn.Module.to(getattr(pipe, name), device=self.device, dtype=self.dtype).eval()
        torch.nn.Module.to(pipe.vae, device=self.device, dtype=torch.float32).eval()
        self.transformer, self.vae, self.scheduler = pipe.transformer, pipe.vae, pipe.scheduler
        step = pipe.vae_scale_factor * 2
        if resolution <= 0 or resolution % step:
            raise ConfigError(f"--model-arg resolution={resolution}: must be a positive multiple of {step} "
                              f"(VAE factor × 2×2 packing)")
        self.resolution = int(resolution)
        self.latent_side = 2 * (self.resolution // step)
        self.image_seq_len = (self.latent_side // 2) ** 2
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.sigmas = flow_sigmas(self.scheduler, self.image_seq_len).float()
        self._sigmas_device = self.sigmas.to(self.device)
        self.has_guidance = bool(getattr(self.transformer.config, "guidance_embeds", False))
        self.guidance = float(guidance)
        self.max_sequence_length = int(max_sequence_length)
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
                embeds, pooled, _ = self.pipe.encode_prompt(prompt=list(texts[start:start + TEXT_BATCH]), prompt_2=None,
                                                            device=self.device,
                                                            max_sequence_length=self.max_sequence_length)
                self._shapes = [tuple(embeds.shape[1:]), tuple(pooled.shape[1:])]
                rows.append(common.flat_pack(embeds.to(self.dtype), pooled.to(self.dtype)))
        return torch.cat(rows)

    def predict_noise(self, x_t, t, cond):
        """The velocity v̂ ≈ ε − x₀ (flow objective) at σ_t, through the pipeline's packing and ids."""
        import torch

        if self._shapes is None:
            self.encode_texts([""])
        pipe = type(self.pipe)
        B, C, H, W = x_t.shape
        embeds, pooled = common.flat_unpack(cond.to(device=self.device, dtype=self.dtype), self._shapes)
        latents = pipe._pack_latents(x_t.to(device=self.device, dtype=self.dtype), B, C, H, W)
        img_ids = pipe._prepare_latent_image_ids(B, H // 2, W // 2, self.device, self.dtype)
        txt_ids = torch.zeros(embeds.shape[1], 3, device=self.device, dtype=self.dtype)
        timestep = (self._sigmas_device[t.to(self.device).long()] * self.num_train_timesteps).to(self.dtype)
        guidance = (torch.full((B,), self.guidance, device=self.device, dtype=torch.float32)
                    if self.has_guidance else None)
        with torch.inference_mode():
            out = self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                   pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=txt_ids,
                                   img_ids=img_ids, return_dict=False)[0]
        return pipe._unpack_latents(out, H * self.pipe.vae_scale_factor, W * self.pipe.vae_scale_factor,
                                    self.pipe.vae_scale_factor)


    def sample(self, label: str, n: int, guidance: float = 2.0, seed: int = 0, steps: int = 28) -> list:
        """``n`` images of ``label`` from the pipeline's own sampler (``steps`` steps; schnell is made for 4).
        Guidance: for a model with a guidance embedding (dev) its value is 1 + ``guidance``; schnell has none
        and ignores it. The VAE decodes in float32."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        packed = self.pipe(prompt=[label] * n, num_inference_steps=int(steps), guidance_scale=1.0 + float(guidance),
                           height=self.resolution, width=self.resolution, generator=gen, output_type="latent",
                           max_sequence_length=self.max_sequence_length).images
        latents = type(self.pipe)._unpack_latents(packed, self.resolution, self.resolution, self.pipe.vae_scale_factor)
        return common.decode_to_pil(self.vae, latents)


def _number(args: dict, key: str, default, kind=int):
    try:
        return kind(args.get(key, default))
    except ValueError:
        raise ConfigError(f"--model-arg {key} needs a number, got {args[key]!r}") from None


def load(source: str | None, config) -> FluxDenoiser:
    if not source:
        raise ConfigError("flux needs a hub id or a local folder: --model flux:black-forest-labs/FLUX.1-schnell or "
                          "--model flux:/path/to/pipeline (or use flux-schnell, flux-dev)")
    args = common.model_args(config, MODEL_OPTIONS, PLUGIN)
    device = config.torch_device()
    dtype = common.dtype_for(config, device)
    from diffusers import FluxPipeline

    pipe = common.load_pipeline(FluxPipeline, source, plugin=PLUGIN, classes=CLASSES, needed=NEEDED, components=NEEDED,
                                dtype=dtype, revision=args.get("revision") or None,
                                variant=args.get("variant") or None)
    return FluxDenoiser(pipe, device=device, dtype=dtype, source=source,
                        resolution=_number(args, "resolution", 1024), guidance=_number(args, "guidance", 1.0, float),
                        max_sequence_length=_number(args, "max_sequence_length", 512))


def fingerprint(source: str | None, config) -> str:
    if not source:
        raise ConfigError("flux needs a hub id or a local folder (see `winoeval info flux`)")
    args = dict(getattr(config, "model_args", None) or {})
    extra = ":" + ",".join(f"{k}={args[k]}" for k in ("resolution", "guidance", "max_sequence_length") if k in args)
    return common.fingerprint(source, config, plugin=PLUGIN, classes=CLASSES, needed=NEEDED, components=NEEDED,
                              extra=extra)


@hookimpl
def winoeval_register_models(register):
    common.register_family(register, "flux", MODELS, load, fingerprint, MODEL_OPTIONS, NEEDED,
                           "any FluxPipeline (rectified flow): flux:HUB_ID or flux:/folder")
