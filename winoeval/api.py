"""The two model kinds and the task shape that plugins implement: the contract, in full.

Nothing here imports torch: plugins are loaded by ``winoeval --help`` and must stay light.
Type hints name torch types as strings only. ``winoeval check-plugin NAME`` (and
:func:`winoeval.testing.check_model` / :func:`winoeval.testing.check_task`) checks a plugin against
every rule written here.

**Call granularity.** The scorers batch across examples: ``encode_images``, ``encode_texts`` and
``similarity`` may be called with the images or texts of several examples at once (or of one, or
with a single text), and ``predict_noise`` gets rows of several examples, texts and timesteps in one
batch. Never assume one example per call; the output for one item must not depend on what else is
in the call (no batch statistics, no padding to the longest text of the call). The diffusion
scorer encodes each distinct text once per run and caches its row.

**Determinism.** The same inputs must give the same outputs (eval mode, no dropout, no unseeded
randomness): scores are reproducible from (seed, example id), and a resumed run reuses cached scores.

**Ties.** Scores are compared strictly (``>``): a tie counts as wrong, for Winoground text, image
and group scores and for classification (a tie for the best score is an error).

**Values.** Every tensor a plugin returns is checked in one place (``winoeval.scoring.result``): the
documented shape, and finite values — NaN, +inf and −inf are never legal (a matcher's −inf is not a
pruned candidate: only the scorer prunes). A value that breaks this is a ``BadExampleError`` naming the
example and the pair; ``--skip-bad`` skips and counts such examples. ``encode_texts`` output is opaque
to the scorer: only its number of rows is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch


@runtime_checkable
class Denoiser(Protocol):
    """A conditional denoiser (ε-, v- or flow-prediction); the core scorer turns it into an image–text matcher.

    ``kind`` is ``"denoiser"``. Timesteps are integer indices 0 … T−1 into the model's noise grid.

    Objective (optional attribute ``objective``, see :mod:`winoeval.scoring.objectives`): what
    ``predict_noise`` returns, and so how the scorer noises and what it compares with.

    - ``"epsilon"`` (the default when absent): x_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε, target ε; the grid is
      ``alphas_cumprod``. A v-predicting network may convert its output to ε itself and stay here
      (the ``sd`` plugin does, as the original implementation compares ε's).
    - ``"v_prediction"``: the same x_t, target v = √ᾱ_t·ε − √(1−ᾱ_t)·z0.
    - ``"flow"`` (rectified flow: SD 3, Flux): x_σ = (1−σ_t)·z0 + σ_t·ε, target the velocity ε − z0;
      the grid is ``sigmas`` (T,), σ of training timestep t with the scheduler's shift applied,
      rising with t in (0, 1]; a flow model needs no ``alphas_cumprod``, and the scorer never
      reads it for one.

    Devices and dtypes: what the scorer does with each method's output.

    - ``encode_images`` may return latents on any device and in any float dtype: the scorer
      converts them to float32 on the CPU, draws ε there in float32 and computes
      x_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε in float32 (ᾱ from ``alphas_cumprod`` in float64; for flow
      x_σ = (1−σ)·z0 + σ·ε, σ from ``sigmas`` in float64), and the objective's target beside it.
    - x_t is then cast to ``dtype`` and moved to ``device``; t (B,) long and the condition rows
      (``encode_texts`` output, dtype unchanged) are moved to ``device``; ``predict_noise`` runs
      under ``torch.inference_mode()``.
    - The loss (l2, l1 or huber, mean over every non-batch dimension) is computed in float32 on
      ``device``, then kept on the CPU in float64 for the Monte-Carlo means.

    So ``dtype`` only changes the precision of the model's own forward (what ``--dtype`` selects
    through ``config.torch_dtype()``); x_t, ε and the loss are float32 whatever it is.
    """

    kind: str
    alphas_cumprod: "torch.Tensor"  # (T,) float, strictly decreasing, in (0, 1]; read once (CPU float64)
    # optional: objective = "epsilon" | "v_prediction" | "flow"; a flow model has sigmas (T,) instead of
    # alphas_cumprod: strictly increasing, in (0, 1]
    device: "torch.device"  # where predict_noise's inputs are sent
    dtype: "torch.dtype"  # the dtype x_t is cast to before predict_noise

    def encode_images(self, images: list[Any]) -> "torch.Tensor":
        """Images → clean latents z0, a float tensor of shape (len(images), C, H, W).

        ``images`` are what the task's examples carry (PIL images for the built-in tasks; any
        object the model can read, e.g. 2-D points in examples/winoeval-toy2d), possibly of
        several examples. Latent models return the VAE latent (its mean, scaled), pixel models the
        pixels scaled to the training range. Deterministic: no sampling from the posterior."""

    def encode_texts(self, texts: list[str]) -> "torch.Tensor":
        """Texts → conditions: a tensor whose first dimension indexes ``texts`` (any trailing shape).

        ``""`` must work: it is the unconditional condition (null class, empty prompt) used when
        normalising. Row i must not depend on the other texts of the call."""

    def predict_noise(self, x_t: "torch.Tensor", t: "torch.Tensor", cond: "torch.Tensor") -> "torch.Tensor":
        """The model's prediction for a batch — ε̂ (``epsilon``), v̂ (``v_prediction``) or the velocity
        v̂ ≈ ε − z0 (``flow``): x_t (B, C, H, W) in ``dtype`` on ``device``, t (B,) long grid indices,
        cond (B, ...) rows of ``encode_texts`` output. Returns a tensor of x_t's shape, on ``device``,
        any float dtype; finite for every t. The rows may come from several examples, texts and t."""


@runtime_checkable
class Matcher(Protocol):
    """A direct image–text matcher (CLIP-like). ``kind`` is ``"matcher"``.

    Its scores are ``similarity`` itself; the results log ``errors`` = −similarity and
    ``n_evals`` = 0 for matchers. Optional: ``encode_images(images)`` (n_images, D) and
    ``encode_texts(texts)`` (n_texts, D) embeddings. When a matcher has both, the scorer encodes the
    images and distinct texts of several examples in shared calls and takes each example's block of
    ``encode_images(...) @ encode_texts(...).T`` instead of calling ``similarity``: that product
    must equal ``similarity`` (normalise the embeddings inside the encoders, fold any scale in)."""

    kind: str

    def similarity(self, images: list[Any], texts: list[str]) -> "torch.Tensor":
        """Scores of shape (len(images), len(texts)), finite; higher = better match. ``images`` and
        ``texts`` may belong to several examples: score each pair on its own terms (no softmax over
        the call's texts)."""


@dataclass
class Example:
    """One scoring problem: every image against every candidate text.

    - ``id``: a non-empty string, unique within the task and stable across runs: the noise of an
      example is derived from (seed, id), and the resume cache is keyed by it.
    - ``images``: a list, or a zero-argument callable returning one (decode lazily; the runner
      calls it inside a guard, so an unreadable image — any exception of the loader — becomes an
      error naming the example, or a counted skip with ``--skip-bad``). Iterating the task twice must
      give the same images.
    - ``texts``: non-empty strings (``""`` is reserved for the unconditional condition).
    - ``metric="winoground"``: exactly 2 images and 2 texts, image i matches text i, ``label=None``.
      Scores s[i][j] = s(text j, image i); text score: s[0][0] > s[0][1] and s[1][1] > s[1][0];
      image score: s[0][0] > s[1][0] and s[1][1] > s[0][1]; group: both. Strict: ties are wrong.
    - ``metric="classification"``: one image (the runner scores row 0), ``label`` is the index of
      the true text in ``texts``, and ``texts`` equals ``TaskData.texts``. A tie for the best score
      counts as wrong.
    - ``metric="choice"``: one image, its own K ≥ 2 candidate texts (K may differ between examples; the
      runner scores row 0), ``label`` the index of the true text. A tie for the best score counts as
      wrong. The diffusion scorer shares one (t, ε) across the K texts, as for classification.
    - ``meta``: a dict of JSON values (what ``TaskData.breakdowns`` breaks results down by: tags
      and so on); copied into each line of the samples JSONL.
    """

    id: str
    images: list[Any]
    texts: list[str]
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    """What a task hands the runner: examples (lazily), their count and scoring defaults.

    - ``name``: the task's own name for its data, the same for every ``name:argument`` variant
      (``"winoground"`` for ``winoground:relation``). Results are keyed by the task string given on
      the command line (``config.task``); ``name`` is recorded beside it as ``task.dataset`` in the
      results file.
    - ``metric``: ``"winoground"``, ``"classification"`` or ``"choice"`` (see :class:`Example` for each contract).
      Winoground tasks are scored with the unconditional normalisation by default (for denoisers;
      ``defaults={"normalize": False}`` or ``--no-normalize`` turn it off); classification tasks without.
    - ``examples``: a zero-argument callable returning an iterator of :class:`Example`; called once
      or more times per run (and by ``check-plugin``): same ids, same order, same images every time.
    - ``size``: the number of examples ``examples()`` yields (progress bars and ``--limit`` use it).
    - ``texts`` / ``class_names`` (classification): the shared candidate texts, one class name each.
    - ``defaults``: scorer presets, ``winoeval.config.ScorerConfig`` field names (``n_samples``,
      ``to_keep``, ``loss``, ``timesteps``, …) or ``normalize``; flags the user sets override them.
    - ``breakdowns``: the ``meta`` keys the metrics are broken down by (list values count in each group).
    - ``fingerprint``: what the examples are made of (e.g. a hash of the data), for the cache key.
    - ``macro`` (``metric="choice"``): ``{meta key: {"exclude": [...], "min_count": n}}`` adds the mean of
      the per-group accuracies over that key (ARO's macro accuracy) as ``macro_accuracy`` in the results.
    """

    name: str
    metric: str  # "winoground" | "classification" | "choice"
    examples: Callable[[], Iterator[Example]]
    size: int
    texts: list[str] | None = None  # the shared candidate texts of a classification task
    class_names: list[str] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # scorer presets, e.g. stages, loss
    breakdowns: list[str] = field(default_factory=list)  # meta keys the metrics break results down by
    fingerprint: str | None = None  # what the examples are made of (e.g. a hash of the data); keys the cache
    macro: dict[str, dict[str, Any]] = field(default_factory=dict)  # choice: macro accuracy over a meta key
