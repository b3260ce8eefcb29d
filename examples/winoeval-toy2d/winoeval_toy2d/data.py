"""Two interleaved spirals in the plane; each class is a text.

A point of class k (k = 0, 1) lies at angle θ ∈ [π/2, 3π] on the spiral r = θ, turned by k·π, plus
Gaussian noise of standard deviation ``NOISE``; coordinates are divided by ``SCALE`` so that the data
spread about ±2.5. The training and held-out splits are drawn with different fixed seeds.
"""

from __future__ import annotations

import math

CLASS_TEXTS = ("spiral a", "spiral b")
NOISE = 0.5
SCALE = 4.0
SPLITS = {"train": (2000, 1), "test": (200, 2)}  # points per class, seed


def spirals(per_class: int, seed: int):
    """(points (2·per_class, 2) float32, labels (2·per_class,) int64), classes interleaved 0, 1, 0, 1, …"""
    import numpy as np

    rng = np.random.default_rng(seed)
    theta = math.pi / 2 + np.sqrt(rng.random((per_class, 2))) * 2.5 * math.pi  # denser further out
    turn = np.array([0.0, math.pi])
    x = np.stack([theta * np.cos(theta + turn), theta * np.sin(theta + turn)], axis=-1)  # (n, 2 classes, 2)
    x = (x + NOISE * rng.standard_normal(x.shape)) / SCALE
    labels = np.tile(np.arange(2), per_class)
    return x.reshape(-1, 2).astype(np.float32), labels.astype(np.int64)


def split(name: str):
    if name not in SPLITS:
        from winoeval.config import ConfigError  # a bad name the user typed: one line, exit status 2

        raise ConfigError(f"unknown spirals split {name!r}; use spirals (the test split) or spirals:train")
    return spirals(*SPLITS[name])
