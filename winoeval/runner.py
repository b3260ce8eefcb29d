"""``evaluate(config)``: resolve plugins, score every example, cache as it goes, write results.

Finished examples are appended, flushed and fsync'd to a per-run cache file in the output
directory, keyed by everything that changes a score; a rerun of the same command skips them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

from . import __version__, metrics, registry
from .api import Example, TaskData
from .config import ConfigError, RunConfig, ScorerConfig

CACHE_DIR = ".cache"


class BadExampleError(RuntimeError):
    """An example that cannot be scored (unreadable image, non-finite score). Names the example."""

    def __init__(self, example_id: str, reason: str):
        super().__init__(f"example {example_id!r}: {reason} (rerun with --skip-bad to skip and count such "
                         f"examples; finished examples are kept in the cache)")
        self.example_id, self.reason = example_id, reason


@dataclass
class Prepared:
    """A run whose names, settings and output directory were checked; nothing heavy is loaded yet."""

    config: RunConfig
    model_entry: registry.Entry
    model_arg: str | None
    task_entry: registry.Entry
    task_arg: str | None
    output_dir: Path


def check_output_dir(path: str | os.PathLike) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--output-path {str(out)!r} is not writable ({exc.strerror or exc}); "
                          f"pass a directory you can write to") from None
    return out


def prepare(config: RunConfig) -> Prepared:
    """Every check that needs no model: names, numbers, output directory."""
    model_entry, model_arg = registry.resolve("model", config.model)
    task_entry, task_arg = registry.resolve("task", config.task)
    ScorerConfig(**{k: v for k, v in config.scorer_args.items() if k != "normalize"})
    out = check_output_dir(config.output_path or "winoeval-out")
    return Prepared(config, model_entry, model_arg, task_entry, task_arg, out)


def scorer_settings(config: RunConfig, task: TaskData) -> tuple[ScorerConfig, bool]:
    """Task presets, overridden by what the user set explicitly."""
    defaults = dict(task.defaults)
    if "n_samples" in config.scorer_args and "to_keep" not in config.scorer_args:
        defaults.pop("to_keep", None)  # the user's own stages replace the preset's pruning schedule
    merged = {**defaults, **config.scorer_args}
    normalize = bool(merged.pop("normalize", False))
    return ScorerConfig(**merged), normalize


def run_key(config: RunConfig, scorer: ScorerConfig, normalize: bool, device_type: str) -> str:
    """What changes a score: model and its options, task and data, scorer, dtype, device type.

    Not the batch size: a run resumed with a smaller batch (say after running out of memory) reuses
    what was finished; on CPU, conv kernels chosen per batch size can move scores in the 7th digit."""
    ident = {
        "model": config.model, "model_args": config.model_args, "task": config.task,
        "task_args": config.task_args,
        "data_dir": str(Path(config.data_dir).resolve()) if config.data_dir else None,
        "scorer": {k: v for k, v in dataclasses.asdict(scorer).items() if k != "batch_size"},
        "normalize": normalize, "dtype": config.dtype,
        "device": device_type, "skip_bad": config.skip_bad, "version": __version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


class RecordCache:
    """Append-only JSONL of finished examples; a torn last line (a killed process) is ignored."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        if not self.path.exists():
            return done
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # torn write: recompute that example
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                done[record["id"]] = record
        return done

    def truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_scores(matrix) -> list[list[float | None]]:
    """Score matrices for JSON: floats, with ±inf and NaN (pruned candidates) as null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in matrix.tolist()]


def _resolve_images(example: Example) -> list[Any]:
    images = example.images() if callable(example.images) else example.images
    return list(images)


def score_example(scorer, task: TaskData, example: Example, skip_bad: bool) -> dict:
    """Score one example into a JSON-ready record (or a skipped record with its reason)."""
    try:
        images = _resolve_images(example)
        result = scorer.score(example.id, images, example.texts)
        raw = result.scores.tolist()
        if any(math.isnan(v) or v == math.inf for row in raw for v in row) or \
                all(v == -math.inf for row in raw for v in row):
            raise BadExampleError(example.id, "the model produced non-finite scores (NaN or inf)")
    except BadExampleError as exc:
        if not skip_bad:
            raise
        return {"id": example.id, "skipped": exc.reason}
    except ConfigError:
        raise  # a bad setting, not a bad example
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for unreadable images
        error = BadExampleError(example.id, f"{type(exc).__name__}: {exc}")
        if not skip_bad:
            raise error from exc
        return {"id": example.id, "skipped": error.reason}
    record = {
        "id": example.id,
        "texts": list(example.texts) if task.texts is None else None,
        "scores": _json_scores(result.scores),
        "errors": _json_scores(result.errors),
        "n_evals": result.n_evals,
        "verdicts": metrics.verdicts(task.metric, raw, example.label),  # scores are finite or -inf (pruned)
        "label": example.label,
        "meta": example.meta,
    }
    return {k: v for k, v in record.items() if v is not None or k == "label"}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("winoeval", "torch", "diffusers", "transformers", "open_clip_torch", "datasets", "accelerate",
                 "pluggy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_hash() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


@dataclass
class RunOutput:
    results: dict[str, Any]
    records: list[dict]
    results_path: Path | None = None
    samples_path: Path | None = None
    cache_path: Path | None = None
    computed: int = 0
    reused: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def iter_examples(task: TaskData, limit: int | None) -> Iterable[Example]:
    return islice(task.examples(), limit) if limit else task.examples()


def detect_shard() -> tuple[int, int]:
    """(rank, world size) from ``--shard``-style env (WINOEVAL_SHARD=i/N) or a torchrun/accelerate launch."""
    value = os.environ.get("WINOEVAL_SHARD")
    if value:
        rank, _, world = value.partition("/")
        return int(rank), int(world)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


class ShardedCache:
    """One append-only file per process under ``.cache/<run key>/``; reading takes the union of all,
    so a run resumed with another number of processes still reuses every finished example."""

    def __init__(self, directory: Path, rank: int, world: int):
        self.directory = directory
        self.own = RecordCache(directory / f"part-{rank:03d}-of-{world:03d}.jsonl")

    def load(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        for part in sorted(self.directory.glob("part-*.jsonl")):
            done.update(RecordCache(part).load())
        return done


def _join_launch() -> None:
    """Join the process group of an ``accelerate launch``/torchrun launch (gloo on CPU, nccl on GPUs)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        import datetime

        # shards can take hours longer than each other: rank 0 waits at the barrier for them
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(days=7))


def _barrier() -> None:
    """Wait for every process of the launch."""
    import torch.distributed as dist

    dist.barrier()


def evaluate(config: RunConfig, *, progress: bool = True, write: bool = True,
             on_model: Callable[[Any], None] | None = None, shard: tuple[int, int] | None = None) -> RunOutput:
    """Run one model on one task; returns the results (and writes them when ``write``).

    Sharding: under ``accelerate launch``/torchrun each process scores every world-th example and
    rank 0 waits for the others and gathers one results file, identical to a single-process run.
    ``WINOEVAL_SHARD=rank/world`` (set by ``winoeval run --num-processes``) only scores the shard; the
    parent gathers. The model is loaded only when an example still needs scoring, so gathering a
    finished run loads nothing.
    """
    prep = prepare(config)
    rank, world = shard or detect_shard()
    if world > 1 and not os.environ.get("WINOEVAL_SHARD") and shard is None:
        _join_launch()
    task: TaskData = prep.task_entry.loader(prep.task_arg, config)
    scorer_cfg, normalize = scorer_settings(config, task)
    key = run_key(config, scorer_cfg, normalize, _device_type(config))
    cache = ShardedCache(prep.output_dir / CACHE_DIR / key, rank, world)
    cache.own.truncate_torn_tail()
    done = cache.load()
    total = min(task.size, config.limit) if config.limit else task.size
    order: list[str] = []
    computed = reused = 0
    scorer = None
    from tqdm.auto import tqdm

    with tqdm(total=-(-total // world), desc=f"{config.model} on {config.task}" + (f" [{rank}/{world}]" if world > 1 else ""),
              unit="ex", disable=not progress, dynamic_ncols=True, position=rank) as bar:
        for position, example in enumerate(iter_examples(task, config.limit)):
            order.append(example.id)
            if position % world != rank:
                continue
            if example.id in done:
                reused += 1
            else:
                if scorer is None:
                    scorer = _load_scorer(prep, config, scorer_cfg, normalize, on_model)
                record = score_example(scorer, task, example, config.skip_bad)
                cache.own.append(record)
                done[example.id] = record
                computed += 1
            bar.update(1)
    out = RunOutput({}, [], cache_path=cache.own.path, computed=computed, reused=reused)
    if world > 1:
        if os.environ.get("WINOEVAL_SHARD"):
            return out  # a worker of `winoeval run --num-processes`: the parent gathers
        _barrier()
        if rank != 0:
            return out
        done = cache.load()
    missing = [i for i in order if i not in done]
    if missing:
        raise RuntimeError(f"{len(missing)} example(s) were not scored by any process (first: {missing[0]!r}); "
                           f"rerun the same command to finish them")
    out.records = [done[i] for i in order]
    out.results = build_results(config, prep, task, scorer_cfg, normalize, out.records)
    if write:
        write_outputs(out, prep.output_dir, config)
    return out


def _device_type(config: RunConfig) -> str:
    if config.device != "auto":
        return config.device.split(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_scorer(prep: Prepared, config: RunConfig, scorer_cfg: ScorerConfig, normalize: bool, on_model):
    from .scoring import make_scorer

    model = prep.model_entry.loader(prep.model_arg, config)
    if on_model is not None:
        on_model(model)
    return make_scorer(model, scorer_cfg, normalize=normalize)


def build_results(config: RunConfig, prep: Prepared, task: TaskData, scorer_cfg: ScorerConfig,
                  normalize: bool, records: list[dict]) -> dict[str, Any]:
    scored = [r for r in records if "skipped" not in r]
    task_metrics = metrics.compute(task.metric, scored, task.class_names, task.breakdowns)
    task_metrics["metric"] = task.metric
    skipped = [{"id": r["id"], "reason": r["skipped"]} for r in records if "skipped" in r]
    task_metrics["skipped"] = len(skipped)
    cfg = config.to_dict()
    cfg["scorer"] = {**dataclasses.asdict(scorer_cfg), "normalize": normalize}
    cfg.pop("scorer_args", None)
    return {
        "config": cfg,
        "model": {"name": config.model, "plugin": prep.model_entry.plugin},
        "task": {"name": config.task, "plugin": prep.task_entry.plugin, "size": task.size,
                 "examples": len(records), "class_names": task.class_names},
        "results": {config.task: task_metrics},
        "skipped": skipped,
        "versions": versions(),
        "git_hash": git_hash(),
    }


def write_outputs(out: RunOutput, output_dir: Path, config: RunConfig) -> None:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    base, n = stamp, 1
    while (output_dir / f"results_{stamp}.json").exists():  # two runs in one second: never overwrite
        n += 1
        stamp = f"{base}-{n}"
    results_path = output_dir / f"results_{stamp}.json"
    atomic_write(results_path, json.dumps(out.results, indent=2, sort_keys=True, allow_nan=False) + "\n")
    out.results_path = results_path
    if config.log_samples:
        samples_path = output_dir / f"samples_{stamp}.jsonl"
        text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in out.records)
        atomic_write(samples_path, text)
        out.samples_path = samples_path


def _pct(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a markdown table (percentages, 95 % intervals in brackets)."""
    lines = []
    model = results["model"]["name"]
    for task_name, m in results["results"].items():
        if m["metric"] == "winoground":
            lines += ["| model | task | subset | n | text | image | group |", "|---|---|---|---:|---:|---:|---:|"]

            def row(subset: str, s: dict) -> str:
                cells = [f"{_pct(s[k])} [{_pct(s[k + '_ci95'][0])}, {_pct(s[k + '_ci95'][1])}]"
                         for k in ("text", "image", "group")]
                return f"| {model} | {task_name} | {subset} | {s['n']} | " + " | ".join(cells) + " |"

            lines.append(row("all", m))
            for key, groups in m.get("by", {}).items():
                for value, s in groups.items():
                    lines.append(row(f"{key}={value}", s))
        else:
            lines += ["| model | task | n | accuracy | mean per-class | evals/example |",
                      "|---|---|---:|---:|---:|---:|"]
            lo, hi = m["accuracy_ci95"]
            evals = f"{m['evals_per_example']:.0f}" if "evals_per_example" in m else "—"
            lines.append(f"| {model} | {task_name} | {m['n']} | {_pct(m['accuracy'])} [{_pct(lo)}, {_pct(hi)}] | "
                         f"{_pct(m['mean_per_class_accuracy'])} | {evals} |")
        if m.get("skipped"):
            lines.append(f"\n{m['skipped']} example(s) skipped (see 'skipped' in the results file).")
    return "\n".join(lines)
