"""The networks, the winoeval Denoiser, guided sampling and training (torch is imported here only).

* ``EpsNet``: ε_θ(x_t, t, c) — an MLP on the point, a sinusoidal embedding of t and an embedding of
  the class (index 2 = the null class, so the same network predicts ε unconditionally; the class is
  dropped with probability ``P_UNCOND`` in training).
* ``NoisyClassifier``: p_φ(c | x_t, t) — the same MLP body, trained with cross-entropy on noisy points;
  used for classifier guidance only (winoeval's scorer never sees it).
* ``Toy2DDenoiser``: the winoeval Denoiser protocol. Examples carry points ``(x, y)`` instead of
  pictures; ``encode_images`` turns them into latents of shape (B, 2, 1, 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .data import CLASS_TEXTS

T = 200
BETA_START, BETA_END = 1e-4, 0.05
NULL = len(CLASS_TEXTS)
P_UNCOND = 0.15
HIDDEN, EMB = 128, 32
WEIGHTS = Path(__file__).with_name("toy2d.safetensors")


def alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


def time_embedding(t: torch.Tensor) -> torch.Tensor:
    freqs = torch.exp(torch.arange(EMB // 2, dtype=torch.float32) * (-math.log(1000.0) / (EMB // 2 - 1)))
    angles = t.float()[:, None] * freqs[None] * (1000.0 / T)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Body(nn.Module):
    """x (B, 2) and an embedding e (B, E) → features; the embedding enters every residual block."""

    def __init__(self, emb_dim: int, out: int):
        super().__init__()
        self.inp = nn.Linear(2, HIDDEN)
        self.emb = nn.ModuleList([nn.Linear(emb_dim, HIDDEN) for _ in range(4)])
        self.blocks = nn.ModuleList([nn.Sequential(nn.SiLU(), nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
                                                   nn.Linear(HIDDEN, HIDDEN)) for _ in range(3)])
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(HIDDEN, out))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.emb[0](e)
        for block, emb in zip(self.blocks, self.emb[1:]):
            h = h + block(h + emb(e))
        return self.out(h)


class EpsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.classes = nn.Embedding(NULL + 1, EMB)
        self.body = _Body(2 * EMB, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.body(x, torch.cat([time_embedding(t), self.classes(c)], dim=1))


class NoisyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = _Body(EMB, NULL)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(x, time_embedding(t))


def _to_points(images: Sequence[Any]) -> torch.Tensor:
    rows = []
    for p in images:
        values = [float(v) for v in (p.tolist() if hasattr(p, "tolist") else p)]
        if len(values) != 2:
            raise ValueError(f"toy2d reads 2-D points (x, y), got {p!r}")
        rows.append(values)
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 2)


class Toy2DDenoiser:
    """winoeval's Denoiser protocol over :class:`EpsNet`; texts are ``CLASS_TEXTS`` and ``""``."""

    kind = "denoiser"

    def __init__(self, checkpoint: str | Path | None = None, device: Any = "cpu"):
        from safetensors.torch import load_file

        self.checkpoint = Path(checkpoint) if checkpoint else WEIGHTS
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"toy2d weights not found: {self.checkpoint} (train some with "
                                    f"`winoeval train toy2d --out DIR`)")
        state = load_file(str(self.checkpoint))
        self.device, self.dtype = torch.device(device), torch.float32
        self.net = EpsNet()
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("eps.")})
        self.net.to(self.device).eval()
        self.classifier = NoisyClassifier()
        self.classifier.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("clf.")})
        self.classifier.to(self.device).eval()
        self.alphas_cumprod = alphas_cumprod()

    # --- Denoiser protocol ---------------------------------------------------------------------
    def encode_images(self, images: Sequence[Any]) -> torch.Tensor:
        return _to_points(images).view(-1, 2, 1, 1).to(self.device)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for text in texts:
            if not text.strip():
                out.append(NULL)
            elif text in CLASS_TEXTS:
                out.append(CLASS_TEXTS.index(text))
            else:
                raise ValueError(f"toy2d knows the texts {', '.join(map(repr, CLASS_TEXTS))} and '' (unconditional), "
                                 f"got {text!r}")
        return torch.tensor(out, dtype=torch.long, device=self.device)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            eps = self.net(x_t.reshape(-1, 2).to(self.device, torch.float32), t.to(self.device), cond.to(self.device))
        return eps.view(-1, 2, 1, 1)

    # --- guided sampling -----------------------------------------------------------------------
    def guided_noise(self, x: torch.Tensor, t: torch.Tensor, c: int, scale: float, method: str) -> torch.Tensor:
        """ε̂ with classifier-free guidance, (1 + s)·ε(x, c) − s·ε(x, ∅), or classifier guidance,
        ε(x, ∅) − s·√(1 − ᾱ_t)·∇ₓ log p_φ(c | x, t)."""
        n = x.shape[0]
        null = torch.full((n,), NULL, dtype=torch.long)
        if method == "cfg":
            with torch.no_grad():
                both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full((n,), c), null]))
            return (1 + scale) * both[:n] - scale * both[n:]
        if method != "classifier":
            raise ValueError(f"unknown guidance {method!r}; use cfg or classifier")
        with torch.no_grad():
            eps = self.net(x, t, null)
        if scale == 0:
            return eps
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            log_p = torch.log_softmax(self.classifier(xg, t), dim=1)[:, c].sum()
            (grad,) = torch.autograd.grad(log_p, xg)
        return eps - scale * (1 - self.alphas_cumprod[t]).sqrt()[:, None] * grad

    def sample_points(self, label: str, n: int, scale: float, method: str, seed: int = 0) -> torch.Tensor:
        """(n, 2) points of class ``label`` by DDPM ancestral sampling with the guided ε̂."""
        c = CLASS_TEXTS.index(label) if label in CLASS_TEXTS else None
        if c is None:
            raise ValueError(f"toy2d samples the classes {', '.join(map(repr, CLASS_TEXTS))}, got {label!r}")
        gen = torch.Generator().manual_seed(int(seed))
        abar = self.alphas_cumprod.double()
        alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
        betas = 1 - alphas
        x = torch.randn((n, 2), generator=gen)
        for i in reversed(range(T)):
            t = torch.full((n,), i, dtype=torch.long)
            eps = self.guided_noise(x, t, c, scale, method).double()
            mean = (x.double() - betas[i] / (1 - abar[i]).sqrt() * eps) / alphas[i].sqrt()
            if i > 0:
                var = betas[i] * (1 - abar[i - 1]) / (1 - abar[i])
                x = (mean + var.sqrt() * torch.randn((n, 2), generator=gen, dtype=torch.float64)).float()
            else:
                x = mean.float()
        return x

    def sample(self, label: str, n: int, guidance: float = 2.0, seed: int = 0) -> list:
        """For ``winoeval sample``: one PNG-ready image with two scatter plots of ``n`` points of
        ``label`` at guidance scale ``guidance``: classifier-free guidance and classifier guidance."""
        from .plots import guidance_figure

        return [guidance_figure(self, [label], [float(guidance)], n=n, seed=seed)]


# --- training ------------------------------------------------------------------------------------
def train(out: Path, *, steps: int = 4000, classifier_steps: int = 2000, batch_size: int = 512,
          lr: float = 2e-3, seed: int = 0, log=print) -> Path:
    """Train ε_θ and p_φ on the training spirals; write ``out/toy2d.safetensors`` (+ ``toy2d.json``)."""
    from safetensors.torch import save_file

    from .data import SPLITS, split

    torch.manual_seed(seed)
    points, labels = (torch.from_numpy(a) for a in split("train"))
    abar = alphas_cumprod()
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"eps": [], "clf": []}

    def noisy_batch():
        idx = torch.randint(0, len(points), (batch_size,), generator=gen)
        t = torch.randint(0, T, (batch_size,), generator=gen)
        eps = torch.randn((batch_size, 2), generator=gen)
        a = abar[t][:, None]
        return a.sqrt() * points[idx] + (1 - a).sqrt() * eps, t, eps, labels[idx]

    def fit(net: nn.Module, n_steps: int, loss_fn, name: str) -> None:
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=n_steps,
                                                    pct_start=min(0.5, max(0.1, 2 / n_steps)))
        running = 0.0
        for step in range(1, n_steps + 1):
            loss = loss_fn(*noisy_batch())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            if step % 500 == 0 or step == n_steps:
                history[name].append(running / (step % 500 or 500))
                log(f"{name} step {step}/{n_steps}: loss {history[name][-1]:.4f}")
                running = 0.0

    eps_net, clf = EpsNet(), NoisyClassifier()

    def eps_loss(x_t, t, eps, c):
        drop = torch.rand(len(c), generator=gen) < P_UNCOND
        return (eps_net(x_t, t, torch.where(drop, torch.full_like(c, NULL), c)) - eps).square().mean()

    fit(eps_net, steps, eps_loss, "eps")
    fit(clf, classifier_steps, lambda x_t, t, eps, c: nn.functional.cross_entropy(clf(x_t, t), c), "clf")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"eps.{k}": v.contiguous() for k, v in eps_net.state_dict().items()}
    state.update({f"clf.{k}": v.contiguous() for k, v in clf.state_dict().items()})
    path = out / "toy2d.safetensors"
    save_file(state, str(path))
    recipe = {"steps": steps, "classifier_steps": classifier_steps, "batch_size": batch_size, "lr": lr,
              "seed": seed, "T": T, "betas": [BETA_START, BETA_END], "p_uncond": P_UNCOND,
              "train_split": {"per_class": SPLITS["train"][0], "seed": SPLITS["train"][1]}, "losses": history}
    (out / "toy2d.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return path
