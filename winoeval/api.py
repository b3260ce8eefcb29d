"""The two model kinds and the task shape that plugins implement.

Nothing here imports torch: plugins are loaded by ``winoeval --help`` and must stay light.
Type hints name torch types as strings only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@runtime_checkable
class Denoiser(Protocol):
    """A conditional ε-prediction model; the core scorer turns it into an image–text matcher.

    ``kind`` is ``"denoiser"``. Timesteps are integer indices into ``alphas_cumprod``.
    """

    kind: str
    alphas_cumprod: "torch.Tensor"  # (T,) float, on CPU is fine
    device: "torch.device"
    dtype: "torch.dtype"

    def encode_images(self, images: list["Image.Image"]) -> "torch.Tensor":
        """Images → clean latents z0, shape (B, C, H, W)."""

    def encode_texts(self, texts: list[str]) -> "torch.Tensor":
        """Texts → conditions, first dimension indexes the texts. ``""`` is the unconditional one."""

    def predict_noise(self, x_t: "torch.Tensor", t: "torch.Tensor", cond: "torch.Tensor") -> "torch.Tensor":
        """ε_θ(x_t, t, cond) for a batch: x_t (B, C, H, W), t (B,) long, cond (B, ...)."""


@runtime_checkable
class Matcher(Protocol):
    """A direct image–text matcher (CLIP-like). ``kind`` is ``"matcher"``."""

    kind: str

    def similarity(self, images: list["Image.Image"], texts: list[str]) -> "torch.Tensor":
        """Scores of shape (len(images), len(texts)); higher = better match."""


@dataclass
class Example:
    """One scoring problem: every image against every candidate text.

    ``label`` is the index of the true text for classification tasks. ``meta`` holds what the
    metrics break results down by (tags and so on); it must be JSON-serialisable.
    """

    id: str
    images: list[Any]
    texts: list[str]
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    """What a task hands the runner: examples (lazily), their count and scoring defaults."""

    name: str
    metric: str  # "winoground" | "classification"
    examples: Callable[[], Iterator[Example]]
    size: int
    texts: list[str] | None = None  # the shared candidate texts of a classification task
    class_names: list[str] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # scorer presets, e.g. stages, loss
    breakdowns: list[str] = field(default_factory=list)  # meta keys the metrics break results down by
    fingerprint: str | None = None  # what the examples are made of (e.g. a hash of the data); keys the cache
