"""The WinoDigits models, trained here on the ``winodigits`` training scenes and shipped in the package.

* ``winodigits-sd``: a tiny latent diffusion model in the diffusers ``StableDiffusionPipeline`` format
  (``winodigits_sd/``: AutoencoderKL with 4× down-sampling, UNet2DConditionModel with cross-attention,
  a CLIPTextModel — the text tower of ``winodigits-clip``, frozen while the U-Net trained — with the CLIP BPE
  tokenizer, DDPM scheduler). It is loaded by the
  ``sd`` plugin's own code: ``winodigits-sd`` is exactly ``sd:<that folder>``.
* ``winodigits-clip``: a tiny OpenCLIP model (``winodigits_clip/``: ``open_clip_config.json`` +
  ``open_clip_model.safetensors``), loaded by the ``openclip`` plugin: ``openclip:<that folder>``.

Training: ``winoeval train winodigits-sd --out DIR`` and ``winoeval train winodigits-clip --out DIR``
(resumable with ``--resume``; recipes with the learning curve in ``DIR/recipe.json``; the shipped
recipes are ``winodigits_sd/recipe.json`` and ``winodigits_clip/recipe.json``). ``--grammar 2`` trains on the
``winodigits2`` stream instead (held-out colour–digit pairings never shown; learning curve on its validation
seed): the WinoDigits-2 recipe is ``benchmarks/winodigits2_train.sh``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from winoeval.hookspecs import hookimpl

HERE = Path(__file__).resolve().parent
SD_DIR = HERE / "winodigits_sd"
CLIP_DIR = HERE / "winodigits_clip"
SD_OPTIONS = {"text_batch_size": "texts per text-encoder batch [64]", "attention": "auto, sdpa or xformers"}
CLIP_OPTIONS = {"batch_size": "images/texts per forward batch [64]", "quick_gelu": "force QuickGELU (not needed)"}


def _missing(what: str, folder: Path, train: str) -> Exception:
    from winoeval.config import ConfigError

    return ConfigError(f"{what}: the shipped weights are missing ({folder}); reinstall winoeval, or train them "
                       f"with `winoeval train {train} --out DIR` and pass --model "
                       f"{'sd' if 'sd' in train else 'openclip'}:DIR/{'pipeline' if 'sd' in train else 'model'}")


def load_sd(argument, config):
    from . import stable_diffusion

    if not (SD_DIR / "model_index.json").is_file():
        raise _missing("winodigits-sd", SD_DIR, "winodigits-sd")
    model = stable_diffusion.load(str(SD_DIR), config)
    model.source = "winodigits-sd"
    return model


def load_clip(argument, config):
    from . import openclip

    if not (CLIP_DIR / "open_clip_config.json").is_file():
        raise _missing("winodigits-clip", CLIP_DIR, "winodigits-clip")
    return openclip.load(str(CLIP_DIR), config)


def _fingerprint(folder: Path):
    def fingerprint(argument=None, config=None):
        try:
            from winoeval.fingerprint import hash_path
        except ImportError:
            return None
        return hash_path(folder) if folder.exists() else None

    return fingerprint


def _command() -> str:
    return "winoeval " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _run_options(command):
    """The options both trainers share (grammar, seed, resume/overwrite, threads, progress)."""
    for option in reversed((
            click.option("--grammar", type=click.IntRange(1, 2), default=1, show_default=True,
                         help="Training stream: 1 = winodigits (v1, the shipped models), 2 = winodigits2 (no "
                              "held-out colour-digit pairing anywhere; learning curve on the validation seed)."),
            click.option("--eval-per-tag", type=click.IntRange(min=1), default=20, show_default=True,
                         help="Learning-curve examples per tag (v1: test ids; v2: the validation seed)."),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option("--resume", is_flag=True, help="Continue the run saved in --out."),
            click.option("--overwrite", is_flag=True,
                         help="Start again from scratch in an --out that holds a run (deleting it)."),
            click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads."),
            click.option("--no-progress", is_flag=True, help="No tqdm bar (one log line per epoch)."))):
        command = option(command)
    return command


@click.command(name="winodigits-sd")
@click.option("--out", "out", type=click.Path(file_okay=False), default="runs/winodigits-sd", show_default=True,
              help="Folder for checkpoints (resumable), the exported pipeline (OUT/pipeline) and recipe.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW peak learning rate (cosine).")
@click.option("--ema-decay", type=float, default=0.999, show_default=True)
@click.option("--p-uncond", type=float, default=0.1, show_default=True, help="Caption dropout (to '').")
@click.option("--pool", type=click.IntRange(min=100), default=30_000, show_default=True,
              help="Training scenes rendered and VAE-encoded once.")
@click.option("--vae-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--vae-batch", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Held-out per-tag scores every N epochs (0: never).")
@click.option("--eval-n-t", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timesteps per held-out evaluation.")
@click.option("--warmup", type=click.IntRange(min=1), default=500, show_default=True,
              help="Linear warm-up steps of the U-Net learning rate (then cosine).")
@click.option("--vae-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Reuse the finished VAE stage of this earlier run folder instead of training one.")
@click.option("--frozen-text", type=click.Path(exists=True, file_okay=False), default=None,
              help="Use the text tower of this trained OpenCLIP folder (e.g. winodigits-clip's), frozen, as the "
                   "text encoder (SD 2 style) instead of training one jointly.")
@_run_options
def train_sd_command(out, epochs, steps_per_epoch, batch_size, lr, ema_decay, p_uncond, pool, vae_steps, vae_batch,
                     eval_every, eval_n_t, warmup, vae_from, frozen_text, grammar, eval_per_tag, seed, resume,
                     overwrite, threads, no_progress):
    """Train winodigits-sd: VAE, then the U-Net (+ a text encoder jointly, unless --frozen-text). The shipped
    model: --frozen-text with winodigits-clip's folder (defaults = the shipped recipe; BENCHMARKS.md has times)."""
    from . import _winodigits_train as tr

    tr.train_sd(out, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                ema_decay=ema_decay, p_uncond=p_uncond, pool=pool, vae_steps=vae_steps, vae_batch=vae_batch,
                eval_every=eval_every, eval_n_t=eval_n_t, seed=seed, resume=resume, overwrite=overwrite,
                threads=threads, progress=not no_progress, command=_command(), log=_log, frozen_text=frozen_text,
                grammar=grammar, warmup=warmup, vae_from=vae_from, eval_per_tag=eval_per_tag)


@click.command(name="winodigits-clip")
@click.option("--out", "out", type=click.Path(file_okay=False), default="runs/winodigits-clip", show_default=True,
              help="Folder for checkpoints (resumable), the exported model (OUT/model) and recipe.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW peak learning rate (cosine).")
@click.option("--pool", type=click.IntRange(min=100), default=30_000, show_default=True,
              help="Training scenes rendered once.")
@click.option("--warmup", type=click.IntRange(min=1), default=200, show_default=True,
              help="Linear warm-up steps of the learning rate (then cosine).")
@_run_options
def train_clip_command(out, epochs, steps_per_epoch, batch_size, lr, pool, warmup, grammar, eval_per_tag, seed, resume,
                       overwrite, threads, no_progress):
    """Train winodigits-clip: a tiny OpenCLIP, contrastive with in-batch negatives only."""
    from . import _winodigits_train as tr

    if pool < batch_size:
        raise click.UsageError(f"--pool ({pool}) must be at least --batch-size ({batch_size})")
    tr.train_clip(out, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr, pool=pool,
                  seed=seed, resume=resume, overwrite=overwrite, threads=threads, progress=not no_progress,
                  command=_command(), log=_log, grammar=grammar, warmup=warmup, eval_per_tag=eval_per_tag)


@hookimpl
def winoeval_register_models(register):
    register("winodigits-sd", load_sd, train=train_sd_command, options=dict(SD_OPTIONS),
             fingerprint=_fingerprint(SD_DIR),
             description="tiny latent diffusion model trained on WinoDigits scenes, text encoder = winodigits-clip's "
                         "text tower (shipped; SD pipeline format, runs through the sd plugin)")
    register("winodigits-clip", load_clip, train=train_clip_command, options=dict(CLIP_OPTIONS),
             fingerprint=_fingerprint(CLIP_DIR),
             description="tiny OpenCLIP trained contrastively on WinoDigits scenes (shipped; openclip plugin)")
