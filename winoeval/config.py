"""One dataclass holds everything a run is configured by (what the CLI flags set)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError  # noqa: F401  (public here too)

TIMESTEP_MODES = ("even", "uniform", "stratified")
LOSSES = ("l2", "l1", "huber")
DTYPES = ("auto", "float32", "float16", "bfloat16")
VARIANCES = ("stratified", "iid")
NOISES = ("per-example", "shared")


@dataclass
class ScorerConfig:
    """How the diffusion scorer estimates errors. ``stages`` are (n_samples, to_keep) pairs; a single
    stage with to_keep None means every candidate gets every sample."""

    n_samples: tuple[int, ...] = (20,)
    to_keep: tuple[int, ...] = ()
    timesteps: str = "even"
    loss: str = "l2"
    normalize: bool | None = None  # None = the task's default
    batch_size: int | str = "auto"  # "auto": 512 on GPUs, 128 on CPUs; halves itself on out-of-memory
    seed: int = 0
    early_stop: bool = False  # sequential paired stopping; n_samples is then the budget
    confidence: float = 0.99
    chunk: int = 5
    min_samples: int = 10
    compile: bool = False  # torch.compile the model's predict_noise
    variance: str = "stratified"  # early stop's standard error: along t (stratified) or i.i.d. (the old rule)
    noise: str = "per-example"  # (t, ε) from (seed, example id), or "shared": one plan for every example

    def __post_init__(self) -> None:
        self.n_samples = tuple(int(n) for n in self.n_samples)
        self.to_keep = tuple(int(k) for k in self.to_keep)
        if not self.n_samples or any(n <= 0 for n in self.n_samples):
            raise ConfigError(f"--n-samples must be positive integers, got {list(self.n_samples)}")
        if any(b <= a for a, b in zip(self.n_samples, self.n_samples[1:])):
            raise ConfigError(f"--n-samples stages must increase, got {list(self.n_samples)}")
        if self.to_keep:
            if len(self.to_keep) != len(self.n_samples):
                raise ConfigError(f"--to-keep needs one value per --n-samples stage: "
                                  f"{list(self.to_keep)} vs {list(self.n_samples)}")
            if any(k <= 0 for k in self.to_keep) or any(b >= a for a, b in zip(self.to_keep, self.to_keep[1:])):
                raise ConfigError(f"--to-keep must be positive and strictly decreasing, got {list(self.to_keep)}")
            if len(self.n_samples) == 1:
                raise ConfigError("--to-keep needs several --n-samples stages (e.g. --n-samples 25,250 --to-keep 5,1): "
                                  "with one stage every candidate gets every sample, so it would change nothing")
        elif len(self.n_samples) > 1:
            raise ConfigError("several --n-samples stages need --to-keep (one value per stage)")
        if self.timesteps not in TIMESTEP_MODES:
            raise ConfigError(f"unknown --timesteps {self.timesteps!r}; choose from {', '.join(TIMESTEP_MODES)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown --loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.variance not in VARIANCES:
            raise ConfigError(f"unknown --early-variance {self.variance!r}; choose from {', '.join(VARIANCES)}")
        if self.noise not in NOISES:
            raise ConfigError(f"unknown --noise {self.noise!r}; choose from {', '.join(NOISES)}")
        if self.early_stop:
            if len(self.n_samples) > 1 or self.to_keep:
                raise ConfigError("--early-stop replaces pruning stages: give one --n-samples budget and no --to-keep")
            if not 0.5 < self.confidence < 1:
                raise ConfigError(f"--confidence must be in (0.5, 1), got {self.confidence}")
            if self.chunk <= 0 or self.min_samples <= 1:
                raise ConfigError("--chunk must be positive and --min-samples at least 2")
        if self.batch_size != "auto":
            try:
                self.batch_size = int(self.batch_size)
            except (TypeError, ValueError):
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', "
                                  f"got {self.batch_size!r}") from None
            if self.batch_size <= 0:
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {self.batch_size}")

    @property
    def max_samples(self) -> int:
        return self.n_samples[-1]

    @classmethod
    def resolve(cls, scorer_args: dict[str, Any], metric: str, task_defaults: dict[str, Any]) -> "ScorerConfig":
        """The run's scorer settings, resolved once: the task's presets, overridden by what the user set.

        Normalisation defaults to on for every ``metric="winoground"`` task (built-in or third-party) and
        off otherwise; a task's ``defaults["normalize"]`` overrides that, ``--[no-]normalize`` overrides
        both. The user's own ``--n-samples`` without ``--to-keep`` drops the preset's pruning schedule."""
        defaults = {"normalize": metric == "winoground", **task_defaults}
        if "n_samples" in scorer_args and "to_keep" not in scorer_args:
            defaults.pop("to_keep", None)
        merged = {**defaults, **scorer_args}
        merged["normalize"] = bool(merged.get("normalize", False))
        return cls(**merged)

    def key_fields(self) -> dict[str, Any]:
        """What of the scorer enters the run key: every field but the batch size, in the key's original
        layout (normalisation is keyed beside it, so here it stays null and existing caches stay valid)."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "batch_size"}
        fields["normalize"] = None
        return fields


@dataclass
class RunConfig:
    """A whole run: model, task, data, scorer and output settings."""

    model: str
    task: str
    scorer_args: dict[str, Any] = field(default_factory=dict)  # explicit ScorerConfig fields (+ normalize)
    device: str = "auto"
    dtype: str = "auto"
    limit: int | float | None = None  # a count, or a fraction of the task in (0, 1)
    data_dir: str | None = None
    output_path: str | None = None
    log_samples: bool = False
    skip_bad: bool = False
    log_errors: bool = False  # per-(t, ε) errors in errors_<stamp>.jsonl (winoeval.rescore)
    model_args: dict[str, Any] = field(default_factory=dict)  # --model-arg KEY=VALUE
    task_args: dict[str, Any] = field(default_factory=dict)  # --task-arg KEY=VALUE

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown --dtype {self.dtype!r}; choose from {', '.join(DTYPES)}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not (
                self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ConfigError(f"unknown --device {self.device!r}; use auto, cpu, cuda or cuda:N (N a GPU index, "
                              f"e.g. cuda:0)")
        if self.limit is not None:
            if isinstance(self.limit, float) and self.limit.is_integer() and self.limit >= 1:
                self.limit = int(self.limit)
            fraction = isinstance(self.limit, float) and 0 < self.limit < 1
            if not fraction and not (isinstance(self.limit, int) and 1 <= self.limit <= 2**63 - 1):
                shown = f"{self.limit:g}" if isinstance(self.limit, (int, float)) else repr(self.limit)
                raise ConfigError(f"--limit must be a count (1, 2, …, at most 2**63-1) or a fraction in (0, 1) "
                                  f"such as 0.1, got {shown}")

    def resolve_paths(self) -> None:
        """``--data-dir`` as an absolute path (a results file must find it from anywhere), checked."""
        if self.data_dir:
            import os

            path = os.path.abspath(os.path.expanduser(str(self.data_dir)))
            if not os.path.isdir(path):
                what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
                raise ConfigError(f"--data-dir {self.data_dir}: {what}; pass the folder of a local copy of the "
                                  f"dataset (save_to_disk, parquet or hub snapshot; README, 'Offline data')")
            self.data_dir = path

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out.get("log_errors"):  # recorded only when set (results of other runs stay as they were)
            out.pop("log_errors", None)
        return out

    def device_type(self) -> str:
        """``cpu``, ``cuda`` or ``mps``: what the run key records (``auto`` resolved on this machine)."""
        if self.device != "auto":
            return self.device.split(":")[0]
        from .verbosity import status

        with status("importing torch"):  # the first import takes seconds on a loaded machine
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"

    def torch_device(self):
        import torch

        import os

        if self.device == "auto":
            if torch.cuda.is_available():  # one GPU per process under accelerate launch / torchrun
                return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            return torch.device("cpu")
        return torch.device(self.device)

    def torch_dtype(self, device=None):
        import torch

        if self.dtype == "auto":
            device = device or self.torch_device()
            return torch.float16 if device.type == "cuda" else torch.float32
        return getattr(torch, self.dtype)


def check_device(device: str) -> None:
    """Refuse a device that this machine does not have, before anything loads."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is available here (torch "
                              f"{torch.__version__}, cuda {torch.version.cuda or 'not built'}); "
                              f"use --device cpu or auto")
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s) "
                              f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: Apple MPS is not available here; use --device cpu or auto")
