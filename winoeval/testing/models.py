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
