"""The winoeval plugin: model ``toy2d``, task ``spirals``, and ``winoeval train toy2d``.

This module is imported by every ``winoeval`` command (``--help`` included), so it imports only the
standard library, click and ``winoeval`` light modules; torch is imported inside the loaders.
"""

from __future__ import annotations

from pathlib import Path

import click

from winoeval.hookspecs import hookimpl

SHIPPED_WEIGHTS = Path(__file__).with_name("toy2d.safetensors")

MODEL_OPTIONS = {"checkpoint": "weights written by `winoeval train toy2d` (default: the shipped toy2d.safetensors)"}


def load_model(argument, config):
    from .model import Toy2DDenoiser

    return Toy2DDenoiser(checkpoint=config.model_args.get("checkpoint"), device=config.torch_device())


def fingerprint(argument, config) -> str:
    """What the model runs: the content hash of its weights file (keys winoeval's resume cache)."""
    from winoeval.fingerprint import hash_path

    return hash_path(config.model_args.get("checkpoint") or SHIPPED_WEIGHTS)


def load_task(argument, config):
    from winoeval.api import Example, TaskData

    from .data import CLASS_TEXTS, split

    part = argument or "test"
    points, labels = split(part)  # raises for an unknown split, naming the known ones

    def examples():
        for i, (point, label) in enumerate(zip(points.tolist(), labels.tolist())):
            # an "image" here is one 2-D point; the model's encode_images reads it
            yield Example(f"{part}-{i}", [tuple(point)], list(CLASS_TEXTS), int(label), {"class": CLASS_TEXTS[label]})

    return TaskData(f"spirals:{part}", "classification", examples, len(labels), texts=list(CLASS_TEXTS),
                    class_names=list(CLASS_TEXTS), breakdowns=["class"])


@click.command(name="toy2d")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for toy2d.safetensors and toy2d.json.")
@click.option("--steps", default=4000, show_default=True, help="Denoiser training steps.")
@click.option("--classifier-steps", default=2000, show_default=True, help="Noisy-classifier training steps.")
@click.option("--batch-size", default=512, show_default=True)
@click.option("--lr", default=2e-3, show_default=True, help="Peak learning rate (one-cycle schedule).")
@click.option("--seed", default=0, show_default=True)
def train_command(out, steps, classifier_steps, batch_size, lr, seed) -> None:
    """Train the toy2d denoiser and its noisy classifier on the training spirals (seconds on a CPU)."""
    from .model import train

    if min(steps, classifier_steps, batch_size) <= 0 or lr <= 0:
        raise click.UsageError("--steps, --classifier-steps, --batch-size and --lr must be positive")
    path = train(out, steps=steps, classifier_steps=classifier_steps, batch_size=batch_size, lr=lr, seed=seed,
                 log=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {path}; use it with --model-arg checkpoint={path}")


@hookimpl
def winoeval_register_models(register):
    register("toy2d", load_model, description="diffusion MLP on 2-D points (two spirals), shipped weights",
             train=train_command, options=MODEL_OPTIONS, fingerprint=fingerprint)


@hookimpl
def winoeval_register_tasks(register):
    register("spirals", load_task, takes_argument=True, options={},
             description="two interleaved spirals, 400 held-out points (spirals:train = 4,000 training points)")
