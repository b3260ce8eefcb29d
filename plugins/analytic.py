"""``analytic``: the Bayes-optimal denoiser for a toy world of coloured images, in closed form.

Every text names an image mean μ(text): a colour (``"red"``), or two colours side by side
(``"red left of blue"``: left half red, right half blue). Data of text c is x0 ~ N(μ(c), σ²I), so the
ideal ε-prediction at noise level ᾱ_t (a = √ᾱ_t, s = √(1−ᾱ_t)) is

    ε̂(x_t, t, c) = s · (x_t − a·μ(c)) / (a²σ² + s²)       (σ = 0: (x_t − a·μ(c)) / s)

and the unconditional one (``""``) is the posterior-weighted mixture over the palette's solid colours.
No training, no weights: it lets the tests check the scorer against numbers worked out by hand, and
it is the built-in demo model (``analytic``, or ``analytic:sigma=S`` for a world of pixel noise σ = S:
a blurred, less certain denoiser; the older ``analytic:S`` means the same) for the built-in ``colors`` and
``toy-winoground`` tasks.
"""

from __future__ import annotations

from typing import Any

from winoeval.hookspecs import hookimpl

PALETTE = {
    "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "magenta": (255, 0, 255), "cyan": (0, 255, 255), "white": (255, 255, 255),
}
SIZE = 16


def mean_image(text: str) -> list[list[tuple[int, int, int]]] | None:
    """The mean of a text as rows of RGB pixels (0–255), or None for the unconditional text."""
    text = text.strip().lower()
    if not text:
        return None
    left, sep, right = text.partition(" left of ")
    names = (left, right) if sep else (text, text)
    for name in names:
        if name not in PALETTE:
            raise ValueError(f"analytic model: no colour {name!r} in {text!r}; "
                             f"known colours: {', '.join(PALETTE)}")
    half = SIZE // 2
    row = [PALETTE[names[0]]] * half + [PALETTE[names[1]]] * (SIZE - half)
    return [row] * SIZE


class AnalyticDenoiser:
    kind = "denoiser"

    def __init__(self, sigma: float = 0.0, num_train_timesteps: int = 1000, device: str = "cpu"):
        import torch

        self.sigma = float(sigma)
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, num_train_timesteps, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0).float()
        self.device = torch.device(device)
        self.dtype = torch.float32
        names = list(PALETTE)
        self._mixture = self._means(names)  # (P, 3, H, W): the unconditional prior's components
        self.forward_calls = 0

    @staticmethod
    def _to_tensor(rows) -> Any:
        import torch

        return torch.tensor(rows, dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1

    def _means(self, texts: list[str]):
        import torch

        return torch.stack([self._to_tensor(mean_image(t)) for t in texts])

    def encode_images(self, images):
        import numpy as np
        import torch

        arrays = [np.asarray(im.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1

    def encode_texts(self, texts: list[str]):
        """Each text becomes its mean image; the unconditional text becomes NaNs (a marker)."""
        import torch

        return torch.stack([torch.full((3, SIZE, SIZE), float("nan")) if not t.strip()
                            else self._to_tensor(mean_image(t)) for t in texts])

    def predict_noise(self, x_t, t, cond):
        import torch

        self.forward_calls += x_t.shape[0]
        ab = self.alphas_cumprod.to(x_t.device)[t].view(-1, 1, 1, 1)
        a, s2 = ab.sqrt(), 1 - ab
        var = a * a * self.sigma ** 2 + s2
        uncond = torch.isnan(cond.flatten(1)).any(dim=1)
        mu = torch.where(uncond.view(-1, 1, 1, 1), torch.zeros_like(cond), cond)
        if uncond.any():
            # posterior over the palette's solid colours, each N(μ_p, σ²) a priori, equally likely
            xu = x_t[uncond]
            comps = self._mixture.to(x_t.device)
            diff = xu[:, None] - a[uncond, None] * comps[None]
            logw = -(diff.square().flatten(2).sum(-1)) / (2 * var[uncond].view(-1, 1))
            w = torch.softmax(logw, dim=1)
            mu[uncond] = torch.einsum("bp,pchw->bchw", w, comps)
        return s2.sqrt() * (x_t - a * mu) / var


def parse_sigma(argument: str | None, default: float, name: str) -> float:
    """The noise sigma after ``NAME:``: ``sigma=0.3`` (the documented spelling) or a bare ``0.3`` (the
    older one, still accepted); anything else is refused naming the spelling."""
    from winoeval.config import ConfigError

    text = (argument or "").strip()
    key, sep, value = text.partition("=")
    if sep:
        if key.strip().lower() != "sigma":
            raise ConfigError(f"{name}:{text}: the only argument is the noise sigma, written {name}:sigma=S "
                              f"(e.g. {name}:sigma=0.3), not {key.strip()!r}")
        text = value.strip()
        if not text:
            raise ConfigError(f"{name}:sigma= needs a number (the noise sigma, e.g. {name}:sigma=0.3)")
    if not text:
        return default
    try:
        sigma = float(text)
    except ValueError:
        raise ConfigError(f"{name}:{argument}: the argument is the noise sigma, a number, written {name}:sigma=S "
                          f"(e.g. {name}:sigma=0.3)") from None
    if not 0 <= sigma < float("inf"):
        raise ConfigError(f"{name}:{argument}: the noise sigma must be a finite number >= 0, written "
                          f"{name}:sigma=S (e.g. {name}:sigma=0.3)")
    return sigma


def _sigma(argument: str | None) -> float:
    return parse_sigma(argument, 0.0, "analytic")


def load(argument: str | None, config) -> AnalyticDenoiser:
    return AnalyticDenoiser(sigma=_sigma(argument))


def fingerprint(argument: str | None, config) -> str:
    """A closed form has no weights: its parameter is the whole model (checked here, before any load)."""
    return f"closed-form:sigma={_sigma(argument)!r}"


@hookimpl
def winoeval_register_models(register):
    register("analytic", load, takes_argument=True, options={}, fingerprint=fingerprint,
             description="closed-form ideal denoiser for the toy colour world (demo); analytic:sigma=S: its world's "
                         "pixel noise sigma S (default 0; a bare analytic:S is read the same)")
