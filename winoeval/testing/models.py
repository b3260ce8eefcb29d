"""Tiny random-weight models for tests, benchmarks and plugin authors: no hub, no download.

* :func:`make_tiny_sd_pipeline` saves a diffusers ``StableDiffusionPipeline`` (UNet, VAE, CLIP text
  encoder, a real CLIP BPE tokenizer, scheduler; no safety checker) that ``--model sd:DIR`` loads.
* :func:`make_tiny_openclip` writes an OpenCLIP model folder (``open_clip_config.json`` + weights)
  that ``--model openclip:DIR`` loads, and registers its architecture in this process so that
  ``openclip:ARCH/CHECKPOINT`` works too.

Both build in well under a second on a CPU. The weights are random: scores mean nothing, but every
shape, dtype and code path is the real one.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TINY_OPENCLIP_ARCH = "winoeval-tiny-clip"


@lru_cache(maxsize=1)
def clip_bpe() -> tuple[dict[str, int], list[str]]:
    """The CLIP BPE vocabulary (49,408 tokens) and merges, from the copy that open_clip ships.

    Built exactly like ``open_clip.tokenizer.SimpleTokenizer``: byte characters, the same with
    ``</w>``, the 48,894 merges, then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    from importlib.resources import files

    from open_clip.tokenizer import bytes_to_unicode

    raw = files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()
    merges = gzip.decompress(raw).decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def make_clip_tokenizer(model_max_length: int = 77):
    """A ``transformers.CLIPTokenizer`` with the real CLIP vocabulary, built offline.

    (``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently yields a 2-token vocabulary in
    transformers 5, and without ``model_max_length`` prompts are not truncated to 77 tokens.)
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe()
    return CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges],
                         model_max_length=model_max_length, pad_token="<|endoftext|>")


def make_tiny_sd_pipeline(path: str | Path, sample_size: int = 8, *, prediction_type: str = "epsilon",
                          seed: int = 0, safetensors: bool = True) -> Path:
    """Save a tiny random-weight ``StableDiffusionPipeline`` to ``path`` and return ``path``.

    Latents are 4 × ``sample_size``²; the VAE halves the resolution once, so images are
    (2·``sample_size``)² pixels. Scheduler: ``DDPMScheduler`` with SD's scaled-linear betas
    (0.00085–0.012, 1000 steps) and the given ``prediction_type`` (``epsilon`` or ``v_prediction``).
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    tokenizer = make_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=32)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=2 * sample_size,
        norm_num_groups=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=32,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              num_train_timesteps=1000, prediction_type=prediction_type, clip_sample=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=safetensors)
    return path


@dataclass(frozen=True)
class TinyOpenCLIP:
    """Where :func:`make_tiny_openclip` put things, and the model names that load them."""

    directory: Path  # open_clip_config.json + open_clip_model.safetensors (open_clip's local-dir layout)
    arch: str  # registered in this process by open_clip.add_model_config
    checkpoint: Path  # a state-dict file for openclip:ARCH/CHECKPOINT

    @property
    def model(self) -> str:
        """``openclip:DIR``: works in any process."""
        return f"openclip:{self.directory}"

    @property
    def model_arch_checkpoint(self) -> str:
        """``openclip:ARCH/CHECKPOINT``: needs :func:`register_tiny_openclip_arch` in this process."""
        return f"openclip:{self.arch}/{self.checkpoint}"


TINY_OPENCLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def register_tiny_openclip_arch(directory: str | Path, arch: str = TINY_OPENCLIP_ARCH) -> Path:
    """Write ``ARCH.json`` (the tiny model config) into ``directory`` and register it with open_clip."""
    import open_clip

    cfg_path = Path(directory) / f"{arch}.json"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(TINY_OPENCLIP_CFG, indent=2))
    open_clip.add_model_config(cfg_path)
    return cfg_path


def make_tiny_openclip(path: str | Path, *, seed: int = 0) -> TinyOpenCLIP:
    """A tiny random-weight OpenCLIP model (ViT 32 px / patch 8 / 2 layers, text width 32 / 2 layers,
    the real CLIP tokenizer) saved under ``path``; see :class:`TinyOpenCLIP` for the names to use."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    register_tiny_openclip_arch(path)
    torch.manual_seed(seed)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # open_clip warns that no pretrained weights were loaded: intended here
    try:
        model = open_clip.create_model(TINY_OPENCLIP_ARCH, pretrained=None)
    finally:
        logger.setLevel(level)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    checkpoint = path / "tiny_openclip.pt"
    torch.save(state, checkpoint)
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    preprocess = {"mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD), "interpolation": "bicubic",
                  "resize_mode": "shortest"}
    (path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": TINY_OPENCLIP_CFG, "preprocess_cfg": preprocess}, indent=2))
    return TinyOpenCLIP(path, TINY_OPENCLIP_ARCH, checkpoint)


# --- today's families: SD 3 and Flux (rectified flow), DiT (class-conditional) ------------------
def make_tiny_t5_tokenizer(model_max_length: int = 256):
    """A ``transformers.T5Tokenizer`` over a tiny unigram vocabulary (pad, eos, unk, the letters and
    ▁), built offline; real T5 code paths, meaningless token ids."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    return T5Tokenizer(vocab=pieces, unk_id=2, model_max_length=model_max_length, extra_ids=0)


def _tiny_t5(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_ff=37, d_kv=8, num_layers=1,
                                   num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def _tiny_clip(tokenizer, *, projection: bool, hidden: int = 32, projection_dim: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(hidden_size=hidden, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=projection_dim,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def _tiny_vae(latent_channels: int, sample_size: int, *, scaling: float, shift: float | None):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(32, 64),
                         layers_per_block=1, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=sample_size,
                         norm_num_groups=32, scaling_factor=scaling, shift_factor=shift,
                         use_quant_conv=shift is None, use_post_quant_conv=shift is None)


def make_tiny_sd3_pipeline(path: str | Path, sample_size: int = 8, *, shift: float = 3.0, seed: int = 0) -> Path:
    """Save a tiny random-weight ``StableDiffusion3Pipeline`` (1-layer MMDiT, patch 1, 16 latent channels, VAE
    with SD 3's scaling and shift factors, two CLIP-with-projection encoders, a tiny T5, the flow-matching
    scheduler with ``shift``) to ``path``. Latents 16 × ``sample_size``²; images (2·``sample_size``)² px."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    path = Path(path)
    tok = make_clip_tokenizer()
    t5_tok = make_tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(sample_size=sample_size, patch_size=1, in_channels=16, out_channels=16,
                                        num_layers=1, attention_head_dim=8, num_attention_heads=4,
                                        joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64,
                                        pos_embed_max_size=max(16, sample_size))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=_tiny_vae(16, 2 * sample_size, scaling=1.5305, shift=0.0609),
        text_encoder=_tiny_clip(tok, projection=True), tokenizer=tok,
        text_encoder_2=_tiny_clip(tok, projection=True), tokenizer_2=make_clip_tokenizer(),
        text_encoder_3=_tiny_t5(t5_tok, 64), tokenizer_3=t5_tok)
    pipe.save_pretrained(path)
    return path


def make_tiny_flux_pipeline(path: str | Path, sample_size: int = 8, *, guidance_embeds: bool = False,
                            dynamic_shift: bool = False, seed: int = 0) -> Path:
    """Save a tiny random-weight ``FluxPipeline`` (1 double + 1 single block, 4 latent channels packed 2×2,
    a CLIP encoder for the pooled vector, a tiny T5) to ``path``. ``guidance_embeds`` and ``dynamic_shift``
    give a dev-like model (guidance embedding, resolution-dependent shift), else a schnell-like one.
    Latents 4 × ``sample_size``² (``sample_size`` even); images (2·``sample_size``)² px."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    path = Path(path)
    tok = make_clip_tokenizer()
    t5_tok = make_tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=(4, 4, 8),
                                         guidance_embeds=guidance_embeds)
    scheduler = (FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                 base_image_seq_len=256, max_image_seq_len=4096)
                 if dynamic_shift else FlowMatchEulerDiscreteScheduler(shift=1.0))
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler,
                        vae=_tiny_vae(4, 2 * sample_size, scaling=0.3611, shift=0.1159),
                        text_encoder=_tiny_clip(tok, projection=False), tokenizer=tok,
                        text_encoder_2=_tiny_t5(t5_tok, 32), tokenizer_2=t5_tok)
    pipe.save_pretrained(path)
    return path


def make_tiny_dit_pipeline(path: str | Path, sample_size: int = 8, *, num_classes: int = 10,
                           class_names: list[str] | None = None, seed: int = 0) -> Path:
    """Save a tiny random-weight ``DiTPipeline`` (2-layer DiT, patch 2, learned σ: 8 output channels for 4
    latent channels, ``num_classes`` classes + the null class, DDIM scheduler with DiT's linear betas,
    ``id2label`` = ``class_names`` (e.g. the first ImageNet names of :func:`winoeval.tasks.imagenet.class_names`;
    default "class N"), each with a synonym "dit-class-N") to ``path``. Latents 4 × ``sample_size``²;
    images (2·``sample_size``)² px."""
    import torch
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    path = Path(path)
    torch.manual_seed(seed)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8,
                                        num_layers=2, sample_size=sample_size, patch_size=2,
                                        num_embeds_ada_norm=num_classes, norm_type="ada_norm_zero")
    vae = _tiny_vae(4, 2 * sample_size, scaling=0.18215, shift=None)
    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, num_train_timesteps=1000,
                              clip_sample=False)
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler)
    pipe.save_pretrained(path)
    # the hub's DiT folders carry id2label in model_index.json (DiTPipeline.__init__ reads it from there)
    names = list(class_names or [f"class {i}" for i in range(num_classes)])
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text())
    index["id2label"] = {str(i): f"{names[i]}, dit-class-{i}" for i in range(num_classes)}
    index_path.write_text(json.dumps(index, indent=2))
    return path


# --- full-size architectures with random weights (for a GPU benchmark; nothing is downloaded) -----------
def sd3_medium_transformer_config() -> dict:
    """Keyword arguments of ``SD3Transformer2DModel`` for the Stable Diffusion 3 medium architecture (24 joint
    blocks of 24 heads × 64 = 1536 wide, patch 2, 16 latent channels, 128² latents at 1024 px). Its inputs:
    hidden_states (B, 16, 128, 128), timestep (B,) float σ·1000, encoder_hidden_states (B, 333, 4096) (77 CLIP +
    256 T5 tokens), pooled_projections (B, 2048)."""
    return dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24, attention_head_dim=64,
                num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                pooled_projection_dim=2048, pos_embed_max_size=192)


def dit_xl_2_config(resolution: int = 256) -> dict:
    """Keyword arguments of ``DiTTransformer2DModel`` for DiT-XL/2 (28 blocks of 16 heads × 72 = 1152 wide, patch
    2, learned σ: 8 output channels, 1000 classes + null) at ``resolution`` 256 or 512 px (latents /8). Its inputs:
    hidden_states (B, 4, R/8, R/8), timestep (B,) long, class_labels (B,) long. Built with diffusers 0.42 (on the
    meta device) it has 749.8 M parameters, the paper counts 675 M: diffusers' ``AdaLayerNormZero`` gives every
    block its own timestep/class embedding. (SD 3 medium, the same way: 2.03 B.)"""
    if resolution not in (256, 512):
        raise ValueError("DiT-XL/2 was released for 256 and 512 px")
    return dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
                sample_size=resolution // 8, patch_size=2, num_embeds_ada_norm=1000, norm_type="ada_norm_zero",
                activation_fn="gelu-approximate", norm_elementwise_affine=False)
