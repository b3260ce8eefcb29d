"""Training objectives of denoisers: how the scorer noises a clean latent and what the prediction is
compared with. A property of the model (its ``objective`` attribute), not of the scorer.

======================  =================================  ==========================  =====================
objective               noised input at timestep index t   target of ``predict_noise``  noise grid (T values)
======================  =================================  ==========================  =====================
``"epsilon"`` (default) x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε          ε                           ``alphas_cumprod``
``"v_prediction"``      x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε          v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀    ``alphas_cumprod``
``"flow"``              x_σ = (1−σ_t)·x₀ + σ_t·ε            ε − x₀ (the velocity)       ``sigmas``
======================  =================================  ==========================  =====================

``t`` is always an integer index 0 … T−1 into the grid, growing with the noise: ᾱ_t falls, σ_t
rises. A flow model's ``sigmas[t]`` is the σ of its scheduler's training timestep t, *shift
included* (for diffusers' ``FlowMatchEulerDiscreteScheduler``: s = (t+1)/T, σ = shift·s/(1+(shift−1)·s)).
So ``--timesteps even`` takes the integer grid floor((k+½)·T/n) — evenly spaced in the unshifted
time s — and maps it through the model's own shift, as the model's sampler spaces its steps;
``uniform`` draws t uniformly (σ then follows the shifted law), ``stratified`` one t per equal bin.

Signal-to-noise ratio (for ``winoeval rescore`` weightings): ᾱ/(1−ᾱ) for ε and v, ((1−σ)/σ)² for flow.

Models that predict v but declare ``epsilon`` (the Stable Diffusion plugin converts v to ε itself,
as the original implementation compares ε's) keep doing so: the objective says what
``predict_noise`` returns, nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

OBJECTIVES = ("epsilon", "v_prediction", "flow")


class EpsilonObjective:
    """ε-prediction on a discrete schedule ᾱ_0 … ᾱ_{T−1} (``alphas_cumprod``, read once in float64)."""

    name = "epsilon"

    def __init__(self, alphas_cumprod: "torch.Tensor"):
        self.alphas_cumprod = alphas_cumprod.detach().double().cpu()
        self.grid = self.alphas_cumprod
        self.num_train_timesteps = len(self.grid)

    def noised(self, z0: "torch.Tensor", t: "torch.Tensor",
               eps: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """(x_t, target) of rows with clean latents z0, timesteps t and noise ε, in float32."""
        return noised_and_target(self.name, self.grid, z0, t, eps)

    def snr(self, t: "torch.Tensor") -> "torch.Tensor":
        return snr(self.name, self.grid, t)


class VPredictionObjective(EpsilonObjective):
    """v-prediction: the same x_t, target v = √ᾱ_t·ε − √(1−ᾱ_t)·z0."""

    name = "v_prediction"


class FlowObjective(EpsilonObjective):
    """Rectified flow: x_σ = (1−σ_t)·z0 + σ_t·ε, target ε − z0; ``sigmas`` (T,) rise with t."""

    name = "flow"

    def __init__(self, sigmas: "torch.Tensor"):
        self.sigmas = sigmas.detach().double().cpu()
        self.grid = self.sigmas
        self.num_train_timesteps = len(self.grid)


def objective_for(model: Any) -> EpsilonObjective:
    """The objective object of a model, from its ``objective`` attribute and its noise grid."""
    name = objective_of(model)
    grid = noise_grid(model, name)
    return {"epsilon": EpsilonObjective, "v_prediction": VPredictionObjective, "flow": FlowObjective}[name](grid)


def objective_of(model: Any) -> str:
    """The model's declared objective (``"epsilon"`` when it declares none)."""
    objective = getattr(model, "objective", "epsilon") or "epsilon"
    if objective not in OBJECTIVES:
        raise ValueError(f"model {type(model).__name__} declares objective {objective!r}; "
                         f"expected one of {', '.join(OBJECTIVES)}")
    return objective


def noise_grid(model: Any, objective: str | None = None) -> "torch.Tensor":
    """The model's (T,) noise grid on the CPU in float64: ``alphas_cumprod`` (ε, v) or ``sigmas`` (flow)."""
    objective = objective or objective_of(model)
    name = "sigmas" if objective == "flow" else "alphas_cumprod"
    grid = getattr(model, name, None)
    if grid is None:
        raise ValueError(f"model {type(model).__name__} has objective {objective!r} but no {name} attribute "
                         f"(a (T,) float tensor indexed by the training timestep)")
    return grid.detach().double().cpu()


def noised_and_target(objective: str, grid: "torch.Tensor", x0: "torch.Tensor", t: "torch.Tensor",
                      eps: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(x_t, target) in float32 for clean latents x0 (B, ...), timestep indices t (B,) and noise eps."""
    shape = [-1] + [1] * (x0.dim() - 1)
    if objective == "flow":
        sigma = grid[t].float().view(shape)
        return (1 - sigma) * x0 + sigma * eps, eps - x0
    ab = grid
    a, s = ab[t].sqrt().float().view(shape), (1 - ab[t]).sqrt().float().view(shape)
    x_t = a * x0 + s * eps  # (the scorer's ε expression before objectives existed, operation for operation)
    if objective == "epsilon":
        return x_t, eps
    if objective == "v_prediction":
        return x_t, a * eps - s * x0
    raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")


def snr(objective: str, grid: "torch.Tensor", t: "torch.Tensor") -> "torch.Tensor":
    """Signal-to-noise ratio at timestep indices t (float64)."""
    g = grid.double()[t]
    if objective == "flow":
        return ((1 - g) / g).square()
    return g / (1 - g)


def flow_sigmas(scheduler: Any, image_seq_len: int | None = None) -> "torch.Tensor":
    """The training-time σ grid (T,) of a diffusers ``FlowMatchEulerDiscreteScheduler``, indexed by
    t = 0 … T−1 with σ rising: the σ's a freshly built scheduler holds (s = (t+1)/T with its static
    ``shift``), reversed; with ``use_dynamic_shifting`` (Flux dev) the resolution-dependent shift the
    pipeline applies, μ = ``calculate_shift(image_seq_len, ...)``, through the scheduler's own ``time_shift``."""
    import torch

    fresh = type(scheduler).from_config(scheduler.config)
    sigma = torch.as_tensor(fresh.sigmas, dtype=torch.float64).flip(0)
    cfg = fresh.config
    if cfg.get("use_dynamic_shifting", False):
        if image_seq_len is None:
            raise ValueError("a dynamically shifted flow scheduler needs the image sequence length")
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        mu = calculate_shift(int(image_seq_len), cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                             cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        sigma = torch.as_tensor(fresh.time_shift(mu, 1.0, sigma.float()), dtype=torch.float64)
    return sigma
