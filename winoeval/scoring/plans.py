"""The (t, ε) of an example: seeds, timestep designs and noise, drawn once and shared by every
candidate text and image of the example.

Samples are kept in a *prefix order*: the first n of the N drawn samples are spread over [0, T)
(van der Corput order over the timestep grid), so adaptive pruning stages and early stopping can
reuse earlier samples and still look at every noise level.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..config import ScorerConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch


def example_seed(seed: int, example_id: str) -> int:
    """A 63-bit seed from the run seed and an example id (stable across processes and versions)."""
    digest = hashlib.sha256(f"{seed}\x00{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def van_der_corput(i: int, base: int = 2) -> float:
    """The i-th element of the van der Corput sequence in [0, 1)."""
    value, denom = 0.0, 1.0
    while i:
        i, digit = divmod(i, base)
        denom *= base
        value += digit / denom
    return value


def low_discrepancy_order(n: int) -> list[int]:
    """A permutation of range(n) whose every prefix is spread evenly over it."""
    order, seen, j = [], set(), 0
    while len(order) < n:
        k = min(int(van_der_corput(j) * n), n - 1)
        if k not in seen:
            seen.add(k)
            order.append(k)
        j += 1
    return order


def draw_timesteps(n: int, num_train_timesteps: int, mode: str, generator: "torch.Generator") -> "torch.Tensor":
    """n timesteps in [0, T), in prefix order.

    ``even``: floor((k + ½)·T/n), the official protocol's grid; ``stratified``: one uniform draw in
    each of n equal bins; ``uniform``: independent uniform draws.
    """
    import torch

    T = num_train_timesteps
    if mode == "uniform":
        return torch.randint(0, T, (n,), generator=generator)
    k = torch.arange(n, dtype=torch.float64)
    offset = torch.full((n,), 0.5, dtype=torch.float64) if mode == "even" else \
        torch.rand(n, generator=generator, dtype=torch.float64)
    grid = torch.floor((k + offset) * T / n).long().clamp_(0, T - 1)
    return grid[torch.tensor(low_discrepancy_order(n))]


@dataclass
class SamplePlan:
    """The shared (t, ε) of one example: t (N,) long, noise (N, *latent_shape) float32 on CPU."""

    t: "torch.Tensor"
    noise: "torch.Tensor"


SHARED_PLAN_ID = "\x01shared-noise"  # not a possible example id of any built-in task


def plan_seed(config: ScorerConfig, example_id: str) -> int:
    """The seed of an example's (t, ε): from (seed, example id) with ``noise="per-example"`` (the
    default), from the seed alone with ``noise="shared"`` (every example gets the same (t, ε), as
    the original protocol's single saved noise tensor)."""
    return example_seed(config.seed, SHARED_PLAN_ID if config.noise == "shared" else example_id)


def make_plan(example_id: str, latent_shape: Sequence[int], num_train_timesteps: int,
              config: ScorerConfig) -> SamplePlan:
    import torch

    gen = torch.Generator().manual_seed(plan_seed(config, example_id))
    n = config.max_samples
    t = draw_timesteps(n, num_train_timesteps, config.timesteps, gen)
    noise = torch.randn((n, *latent_shape), generator=gen, dtype=torch.float32)
    return SamplePlan(t, noise)


