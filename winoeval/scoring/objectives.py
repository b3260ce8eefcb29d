"""How the scorer noises a clean latent and what the model's output is compared with: the training
objective of the model family, a property of the model, not of the scorer.

- ε-prediction (Stable Diffusion 1.x/2.x, DDPM): x_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε, target ε. Plugins of
  v-prediction models convert their output to ε before returning it (see the sd plugin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


class EpsilonObjective:
    """ε-prediction on a discrete schedule ᾱ_0 … ᾱ_{T−1} (``alphas_cumprod``, read once in float64)."""

    def __init__(self, alphas_cumprod: "torch.Tensor"):
        self.alphas_cumprod = alphas_cumprod.double().cpu()
        self.num_train_timesteps = len(self.alphas_cumprod)

    def noised(self, z0: "torch.Tensor", t: "torch.Tensor", eps: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """(x_t, target) of rows with clean latents z0, timesteps t and noise ε, in float32."""
        ab = self.alphas_cumprod
        shape = [-1] + [1] * (z0.dim() - 1)
        return ab[t].sqrt().float().view(shape) * z0 + (1 - ab[t]).sqrt().float().view(shape) * eps, eps
