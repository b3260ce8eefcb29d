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
import re
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

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
    created: list[Path] = field(default_factory=list)  # folders this run made (removed again if left empty)


def check_output_dir(path: str | os.PathLike, created: list[Path] | None = None) -> Path:
    out = Path(path)
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--output-path {str(out)!r} is not writable ({exc.strerror or exc}); "
                          f"pass a directory you can write to") from None
    if created is not None:
        created.extend(missing)  # innermost first
    return out


def remove_if_empty(prep: Prepared) -> None:
    """After a failed run: remove the cache and output folders this run created and left empty."""
    candidates = [*sorted(prep.output_dir.glob(f"{CACHE_DIR}/*"), reverse=True), prep.output_dir / CACHE_DIR,
                  *prep.created]
    for folder in candidates:
        try:
            if folder.is_dir():
                for lock in folder.glob("*.lock"):  # our own lock files only mark a folder as in use
                    lock.unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            pass  # not empty: finished work stays


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


def prepare(config: RunConfig) -> Prepared:
    """Every check that needs no model: names, options, numbers, device, output directory."""
    model_entry, model_arg = registry.resolve("model", config.model)
    task_entry, task_arg = registry.resolve("task", config.task)
    model_entry.check_options(config.model_args, "--model-arg")
    task_entry.check_options(config.task_args, "--task-arg")
    ScorerConfig(**{k: v for k, v in config.scorer_args.items() if k != "normalize"})
    check_device(config.device)
    config.resolve_paths()
    root = Path(config.output_path or "winoeval-out")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--output-path {str(root)!r} is a file; pass a folder (winoeval writes "
                          f"<folder>/<model>/results_<date>.json)")
    created: list[Path] = []
    out = check_output_dir(Path(config.output_path or "winoeval-out") / safe_name(config.model), created)
    return Prepared(config, model_entry, model_arg, task_entry, task_arg, out, created)


def model_fingerprint(prep: Prepared) -> str | None:
    """What the model runs: the plugin's own fingerprint, else the content of local files it names."""
    from . import fingerprint

    fn = prep.model_entry.fingerprint or fingerprint.default_model_fingerprint
    try:
        return fn(prep.model_arg, prep.config)
    except OSError as exc:
        raise ConfigError(f"model {prep.config.model!r}: cannot read its weights to fingerprint them "
                          f"({exc})") from None


def task_fingerprint(config: RunConfig, task: TaskData) -> dict[str, Any]:
    """What the task evaluates: the task's own fingerprint, the content of ``--data-dir`` and of every
    file named by a ``--task-arg``."""
    from . import fingerprint

    out: dict[str, Any] = {}
    if task.fingerprint:
        out["task"] = task.fingerprint
    if config.data_dir:
        out["data_dir"] = fingerprint.hash_path(config.data_dir)
    files = fingerprint.of_values(config.task_args)
    if files:
        out["task_args"] = files
    return out


def scorer_settings(config: RunConfig, task: TaskData) -> tuple[ScorerConfig, bool]:
    """Task presets, overridden by what the user set explicitly.

    Normalisation defaults to on for every ``metric="winoground"`` task (built-in or third-party) and
    off otherwise; a task's ``defaults["normalize"]`` overrides that, ``--[no-]normalize`` overrides both."""
    defaults = {"normalize": task.metric == "winoground", **task.defaults}
    if "n_samples" in config.scorer_args and "to_keep" not in config.scorer_args:
        defaults.pop("to_keep", None)  # the user's own stages replace the preset's pruning schedule
    merged = {**defaults, **config.scorer_args}
    normalize = bool(merged.pop("normalize", False))
    return ScorerConfig(**merged), normalize


def run_key(config: RunConfig, scorer: ScorerConfig, normalize: bool, device_type: str,
            model_fp: str | None = None, task_fp: dict[str, Any] | None = None) -> str:
    """What changes a score: the model, its options and the *content* of its weights; the task, its
    options and the content of its data; the scorer; dtype; device type.

    Not the batch size: a run resumed with a smaller batch (say after running out of memory) reuses
    what was finished; on CPU, conv kernels chosen per batch size can move scores in the 7th digit.
    Not ``--skip-bad``: a rerun with it reuses every scored example (skipped ones are retried)."""
    ident = {
        "model": config.model, "model_args": config.model_args, "model_fingerprint": model_fp,
        "task": config.task, "task_args": config.task_args, "task_fingerprint": task_fp or {},
        "scorer": {k: v for k, v in dataclasses.asdict(scorer).items() if k != "batch_size"},
        "normalize": normalize, "dtype": config.dtype,
        "device": device_type, "version": __version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _valid_record(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return False
    return "skipped" in record or ("scores" in record and "verdicts" in record)


class RecordCache:
    """Append-only JSONL of finished examples. Damaged lines (a torn tail from a killed process,
    garbage, records of the wrong shape) are skipped and counted in ``damaged``; the rest is used."""

    def __init__(self, path: Path):
        self.path = path
        self.damaged = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        self.damaged = 0
        if not self.path.exists():
            return done
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    record = json.loads(line.decode("utf-8"))
                    if not _valid_record(record):
                        raise ValueError("not a record")
                except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    self.damaged += 1
                    continue
                done[record["id"]] = record
        return done

    def rewrite(self, records: Iterable[dict]) -> None:
        """Replace the file by exactly ``records`` (atomically): drops damaged lines for good."""
        atomic_write(self.path, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records))

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


TMP_SUFFIX = ".tmp"


def _write_tmp(path: Path, text: str) -> Path:
    """A fsync'd temporary file beside ``path``, named ``.<name>.<pid>.<random>.tmp`` so that a later run
    can tell the litter of a killed process from a live run's file (see :func:`remove_stale_tmp`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    tmp = _write_tmp(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(directory: Path) -> int:
    """Delete temporary files left by killed processes (their pid is gone); returns how many."""
    removed = 0
    for tmp in directory.glob(f".*{TMP_SUFFIX}"):
        parts = tmp.name.split(".")
        pid = next((int(p) for p in parts[2:] if p.isdigit()), None)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def claim_new(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` only if it does not exist, atomically (a fully written temporary
    file hard-linked into place: two processes can never both claim one name). False if taken."""
    tmp = _write_tmp(path, text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


class RunLock:
    """An exclusive ``flock`` per run key and shard, so two identical runs never compute the same
    examples; the holder's pid is written in the lock file for the refusal message."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise ConfigError(f"another winoeval process (pid {pid}) is running this same evaluation into "
                              f"{self.path.parent.parent.parent}; wait for it to finish (then rerun: its "
                              f"results are reused) or use another --output-path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def _json_scores(matrix) -> list[list[float | None]]:
    """Score matrices for JSON: floats, with ±inf and NaN (pruned candidates) as null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in matrix.tolist()]


def _uncond_errors(result) -> list[list[float | None]] | None:
    """When normalised: per (image, text) the unconditional error over the samples that text used, so
    that ``scores == -(errors - uncond_errors)``; None (left out of the record) otherwise."""
    per_sample = getattr(result, "uncond_errors", None)
    if per_sample is None:
        return None
    import torch

    n_used = result.n_used
    return _json_scores(torch.stack([torch.stack([per_sample[i, : int(n_used[i, k])].mean()
                                                  for k in range(n_used.shape[1])])
                                     for i in range(n_used.shape[0])]))


def resolve_images(example: Example) -> list[Any]:
    """An example's images, decoding them when ``images`` is a zero-argument callable."""
    images = example.images() if callable(example.images) else example.images
    return list(images)


def score_records(scorer, task: TaskData, examples: Iterable[Example], skip_bad: bool) -> Iterator[dict]:
    """Score ``examples`` through the scorer's ``score_stream`` (several examples in flight, their
    evaluations packed into full model batches); yields one record per example as it finishes, not
    necessarily in input order. Images are read when an example is admitted, so an unreadable one
    is blamed on its own example."""
    waiting: dict[int, Example] = {}

    def items():
        for n, example in enumerate(examples):
            waiting[n] = example
            yield n, example.id, (lambda example=example: resolve_images(example)), example.texts

    if scorer is None:  # nothing to score: just walk the examples
        for _ in items():
            pass
        return
    for n, result in scorer.score_stream(items()):
        yield example_record(task, waiting.pop(n), result, skip_bad)


def gather_records(mine: dict[str, dict]) -> dict[str, dict]:
    """Under a torchrun/accelerate launch: every rank's finished records, gathered on rank 0 through
    ``torch.distributed.gather_object`` (so ranks on different machines need no shared filesystem);
    other ranks get an empty dict. Waits for every rank (the process group's long timeout)."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":  # object collectives of NCCL run on the current device
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(mine, parts, dst=0)
    merged: dict[str, dict] = {}
    for part in parts or []:
        merged.update(part or {})
    return merged


def example_record(task: TaskData, example: Example, result: Any, skip_bad: bool) -> dict:
    """A JSON-ready record from a ScoreResult, or a skipped record (``skip_bad``) when ``result`` is the
    exception scoring raised (unreadable image) or the scores are not finite."""
    try:
        if isinstance(result, BaseException):
            raise result
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
        "uncond_errors": _uncond_errors(result),
        "n_evals": result.n_evals,
        "verdicts": metrics.verdicts(task.metric, raw, example.label),  # scores are finite or -inf (pruned)
        "label": example.label,
        "meta": example.meta,
        "per_sample": getattr(result, "per_sample", None),  # --log-errors only
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
    records_by_task: dict[str, list[dict]] = field(default_factory=dict)  # runs of several tasks
    samples_paths: dict[str, Path] = field(default_factory=dict)
    errors_paths: list[Path] = field(default_factory=list)  # --log-errors


def resolve_limit(limit: int | float | None, size: int) -> int | None:
    """``--limit``: a count (an integer ≥ 1) or a fraction of the task (a number in (0, 1), rounded up,
    as lm-evaluation-harness does): 0.1 of 500 examples is the first 50."""
    if limit is None:
        return None
    if isinstance(limit, float) and 0 < limit < 1:
        return max(1, math.ceil(size * limit))
    return int(limit)


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
    so a run resumed with another number of processes still reuses every finished example.

    A scored record wins over a skipped one for the same id. Damaged lines are skipped and counted
    (``damaged``); ``load`` rewrites this process's own part without them."""

    def __init__(self, directory: Path, rank: int, world: int):
        self.directory = directory
        self.own = RecordCache(directory / f"part-{rank:03d}-of-{world:03d}.jsonl")
        self.lock = RunLock(directory / f"part-{rank:03d}-of-{world:03d}.lock")
        self.damaged = 0

    def load(self, repair: bool = False) -> dict[str, dict]:
        done: dict[str, dict] = {}
        self.damaged = 0
        for part in sorted(self.directory.glob("part-*.jsonl")):
            cache = self.own if part == self.own.path else RecordCache(part)
            records = cache.load()
            self.damaged += cache.damaged
            if repair and cache is self.own and cache.damaged:
                cache.rewrite(records.values())
            for rid, record in records.items():
                if "skipped" not in record or rid not in done:
                    done[rid] = record
        return done


def _scan_ids(task: TaskData, limit: int | None) -> list[str]:
    """The example ids in order, refusing a repeated id (it would silently share scores and tags)."""
    first: dict[str, int] = {}
    order: list[str] = []
    for position, example in enumerate(iter_examples(task, limit)):
        if not isinstance(example.id, str) or not example.id:
            raise ConfigError(f"task {task.name!r}: the example at position {position} has id {example.id!r}; "
                              f"example ids must be non-empty strings (fix the task plugin)")
        if example.id in first:
            raise ConfigError(f"task {task.name!r}: example id {example.id!r} occurs twice (positions "
                              f"{first[example.id]} and {position}); ids must be unique (fix the task plugin "
                              f"or its data)")
        first[example.id] = position
        order.append(example.id)
    return order


def _join_launch() -> None:
    """Join the process group of an ``accelerate launch``/torchrun launch (gloo on CPU, nccl on GPUs)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        import datetime

        # shards can take hours longer than each other: rank 0 waits in the gather for them
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(days=7))


def evaluate(config: RunConfig, *, progress: bool = True, write: bool = True,
             on_model: Callable[[Any], None] | None = None, shard: tuple[int, int] | None = None,
             prepared: Prepared | None = None, model_slot: dict | None = None,
             workers_since: float | None = None) -> RunOutput:
    """Run one model on one task; returns the results (and writes them when ``write``).

    Sharding: under ``accelerate launch``/torchrun each process scores every world-th example and
    rank 0 waits for the others and gathers one results file, identical to a single-process run.
    ``WINOEVAL_SHARD=rank/world`` (set by ``winoeval run --num-processes``) only scores the shard; the
    parent gathers. The model is loaded only when an example still needs scoring, so gathering a
    finished run loads nothing. ``model_slot`` (a dict) shares one loaded model between the tasks of a run.
    ``workers_since``: the time `--num-processes` workers were started; their counts join this run's.
    """
    started = workers_since or time.time()
    prep = prepared or prepare(config)
    rank, world = shard or detect_shard()
    if world > 1 and not os.environ.get("WINOEVAL_SHARD") and shard is None:
        _join_launch()
    task: TaskData = prep.task_entry.loader(prep.task_arg, config)
    limit = resolve_limit(config.limit, task.size)
    order = _scan_ids(task, limit)  # also refuses duplicate ids before any model loads
    scorer_cfg, normalize = scorer_settings(config, task)
    model_fp = model_fingerprint(prep)
    task_fp = task_fingerprint(config, task)
    key = run_key(config, scorer_cfg, normalize, _device_type(config), model_fp, task_fp)
    cache = ShardedCache(prep.output_dir / CACHE_DIR / key, rank, world)
    cache.lock.acquire()
    try:
        remove_stale_tmp(prep.output_dir)
        done = cache.load(repair=True)
        if cache.damaged:
            warnings.warn(f"{cache.damaged} damaged line(s) in the resume cache {cache.directory} were skipped "
                          f"(those examples are recomputed)", stacklevel=2)
        mine = [i for p, i in enumerate(order) if p % world == rank]
        todo = {i for i in mine if i not in done or "skipped" in done[i]}  # skipped examples are retried
        if config.log_errors:  # records cached without per-sample errors are recomputed
            todo |= {i for i in mine if i in done and "skipped" not in done[i] and "per_sample" not in done[i]}
        slot = model_slot if model_slot is not None else {}
        if todo and "model" not in slot:  # load before the progress bar: a weights error comes first
            slot["model"] = _load_model(prep, config, on_model)
        scorer = None
        if todo:
            from .scoring import make_scorer

            check_vocabulary(slot["model"], task, config)
            scorer = make_scorer(slot["model"], scorer_cfg, normalize=normalize)
            if config.log_errors:
                if getattr(slot["model"], "kind", None) != "denoiser":
                    raise ConfigError(f"--log-errors: {config.model!r} is a matcher, it has no per-timestep errors; "
                                      f"drop --log-errors or use a diffusion model")
                scorer.log_errors = True
        computed = reused = 0
        from tqdm.auto import tqdm

        with tqdm(total=len(mine), desc=f"{config.model} on {config.task}" + (f" [{rank}/{world}]" if world > 1 else ""),
                  unit="ex", disable=not progress, dynamic_ncols=True, position=rank) as bar:
            def todo_examples():
                nonlocal reused
                for position, example in enumerate(iter_examples(task, limit)):
                    if position % world != rank:
                        continue
                    if example.id not in todo:
                        reused += 1
                        bar.update(1)
                        continue
                    yield example

            # the scorer keeps several examples in flight and packs their evaluations into full batches
            for record in score_records(scorer, task, todo_examples(), config.skip_bad):
                cache.own.append(record)
                done[record["id"]] = record
                computed += 1
                bar.update(1)
        out = RunOutput({}, [], cache_path=cache.own.path, computed=computed, reused=reused)
        model = slot.get("model")
        device = str(getattr(model, "device", None)) if model is not None else None
        dtype = str(getattr(model, "dtype", None)).replace("torch.", "") if model is not None else None
        if world > 1:
            if os.environ.get("WINOEVAL_SHARD"):  # a worker of `winoeval run --num-processes`: the parent gathers
                atomic_write(cache.own.path.with_suffix(".stats.json"), json.dumps(
                    {"computed": computed, "reused": reused, "device": device, "dtype": dtype,
                     "finished": time.time()}))
                return out
            gathered = gather_records({i: done[i] for i in mine if i in done})  # no shared filesystem needed
            if rank != 0:
                return out
            done = {**cache.load(), **gathered}
        missing = [i for i in order if i not in done]
        if missing:
            raise RuntimeError(f"{len(missing)} example(s) were not scored by any process (first: {missing[0]!r}); "
                               f"rerun the same command to finish them")
        out.records = [done[i] for i in order]
        if workers_since is not None:  # what this run's worker processes did
            for stats_file in cache.directory.glob("part-*.stats.json"):
                try:
                    stats = json.loads(stats_file.read_text())
                except (OSError, ValueError):
                    continue
                if stats.get("finished", 0) >= workers_since:
                    computed += int(stats.get("computed", 0))
                    reused -= int(stats.get("computed", 0))
                    device, dtype = device or stats.get("device"), dtype or stats.get("dtype")
            out.computed, out.reused = computed, reused
        run_info = {
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - started, 3),
            "examples_computed": computed, "examples_reused": reused, "run_key": key,
            "device": device, "dtype": dtype,
        }
        out.results = build_results(config, prep, task, scorer_cfg, normalize, out.records,
                                    model_fp=model_fp, task_fp=task_fp, run_info=run_info)
        if write:
            write_outputs(out, prep.output_dir, config)
        return out
    finally:
        cache.lock.release()


def _device_type(config: RunConfig) -> str:
    if config.device != "auto":
        return config.device.split(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_vocabulary(model: Any, task: TaskData, config: RunConfig) -> None:
    """A model that cannot read a classification task's texts (mnist-unet on colour names) is a
    mismatch of model and task, not a bad example: one error before anything is scored."""
    encode = getattr(model, "encode_texts", None)
    if not task.texts or not callable(encode):
        return
    try:
        encode(list(task.texts))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"model {config.model!r} cannot read the texts of task {config.task!r} ({exc}); "
                          f"pick a task whose texts it knows (`winoeval info {config.model.partition(':')[0]}`)") from None


def _load_model(prep: Prepared, config: RunConfig, on_model):
    model = prep.model_entry.loader(prep.model_arg, config)
    if on_model is not None:
        on_model(model)
    return model


def build_results(config: RunConfig, prep: Prepared, task: TaskData, scorer_cfg: ScorerConfig,
                  normalize: bool, records: list[dict], *, model_fp: str | None = None,
                  task_fp: dict[str, Any] | None = None, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    scored = [r for r in records if "skipped" not in r]
    task_metrics = metrics.compute(task.metric, scored, task.class_names, task.breakdowns)
    task_metrics["metric"] = task.metric
    skipped = [{"id": r["id"], "reason": r["skipped"]} for r in records if "skipped" in r]
    task_metrics["skipped"] = len(skipped)
    cfg = config.to_dict()
    cfg["scorer"] = {**dataclasses.asdict(scorer_cfg), "normalize": normalize}
    cfg.pop("scorer_args", None)
    return metrics.json_safe({  # NaN (a metric over zero examples) becomes null: strict JSON
        "config": cfg,
        "model": {"name": config.model, "plugin": prep.model_entry.plugin, "fingerprint": model_fp},
        "task": {"name": config.task, "dataset": task.name, "plugin": prep.task_entry.plugin, "size": task.size,
                 "examples": len(records), "class_names": task.class_names, "fingerprint": task_fp or {}},
        "results": {config.task: task_metrics},
        "skipped": skipped,
        "run": run_info or {},
        "versions": versions(),
        "git_hash": git_hash(),
    })


def safe_name(name: str) -> str:
    """A model or task name as a file or folder name: ``sd:/data/sd2-base`` → ``sd_data_sd2-base``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"


def write_outputs(out: RunOutput, output_dir: Path, config: RunConfig) -> None:
    """``results_<stamp>.json`` (+ with ``--log-samples`` ``samples_<stamp>.jsonl``, or for a run of several
    tasks one ``samples_<task>_<stamp>.jsonl`` per task), never overwriting: each name is claimed
    atomically, so two runs finishing in the same second both keep their files. The samples files are
    written first: a results file never exists without its samples files."""
    results_text = json.dumps(out.results, indent=2, sort_keys=True, allow_nan=False) + "\n"
    by_task = out.records_by_task or {config.task: out.records}
    samples = {task: "".join(json.dumps({k: v for k, v in r.items() if k != "per_sample"}, sort_keys=True,
                                        allow_nan=False) + "\n" for r in records)
               for task, records in by_task.items()} if config.log_samples else {}
    several = len(by_task) > 1
    if config.log_errors:  # errors_<stamp>.jsonl beside the samples, claimed the same way (winoeval.rescore)
        from .errorlog import error_files

        samples.update(error_files(out.results, by_task))
    base = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    for n in range(1, 10_000):
        stamp = base if n == 1 else f"{base}-{n}"
        results_path = output_dir / f"results_{stamp}.json"
        samples_paths = {task: output_dir / (f"samples_{safe_name(task)}_{stamp}.jsonl" if several
                                             else f"samples_{stamp}.jsonl") for task in samples
                         if not isinstance(task, tuple)}
        samples_paths.update({key: output_dir / (f"errors_{safe_name(key[1])}_{stamp}.jsonl" if several else
                                                 f"errors_{stamp}.jsonl") for key in samples if isinstance(key, tuple)})
        if results_path.exists() or any(p.exists() for p in samples_paths.values()):
            continue
        claimed: list[Path] = []
        for task, path in samples_paths.items():
            if not claim_new(path, samples[task]):
                break
            claimed.append(path)
        else:
            if claim_new(results_path, results_text):
                out.results_path = results_path
                out.samples_paths = {k: p for k, p in samples_paths.items() if not isinstance(k, tuple)}
                out.errors_paths = [p for k, p in samples_paths.items() if isinstance(k, tuple)]
                out.samples_path = next(iter(out.samples_paths.values())) if out.samples_paths else None
                return
        for path in claimed:  # lost a race for one of the names: give ours back, try the next stamp
            path.unlink(missing_ok=True)
    raise RuntimeError(f"could not find a free results file name in {output_dir}")


def run_tasks(config: RunConfig, tasks: list[str], *, progress: bool = True,
              prepared: list[Prepared] | None = None, workers_since: float | None = None) -> RunOutput:
    """One model on several tasks: the model loads once; one results file whose ``results`` holds every
    task (lm-evaluation-harness's layout) and ``tasks`` each task's description and fingerprint."""
    preps = prepared or [prepare(dataclasses.replace(config, task=t)) for t in tasks]
    slot: dict = {}
    outs = [evaluate(p.config, progress=progress, write=False, prepared=p, model_slot=slot,
                     workers_since=workers_since) for p in preps]
    if len(outs) == 1 or not outs[0].results:  # one task, or a worker process (the parent gathers)
        first = outs[0]
        if first.results and len(outs) == 1:
            write_outputs(first, preps[0].output_dir, preps[0].config)
        return first
    merged = dict(outs[0].results)
    merged["config"] = {**merged["config"], "task": ",".join(tasks)}
    merged["results"] = {t: o.results["results"][t] for t, o in zip(tasks, outs)}
    merged["tasks"] = {t: {**o.results["task"], "run": o.results["run"]} for t, o in zip(tasks, outs)}
    merged["skipped"] = [{**s, "task": t} for t, o in zip(tasks, outs) for s in o.results["skipped"]]
    merged.pop("task", None)
    computed, reused = sum(o.computed for o in outs), sum(o.reused for o in outs)
    merged["run"] = {**outs[-1].results["run"], "examples_computed": computed, "examples_reused": reused,
                     "wall_time_s": round(sum(o.results["run"]["wall_time_s"] for o in outs), 3), "run_key": None}
    merged["run"].pop("run_key")
    out = RunOutput(merged, outs[0].records, computed=computed, reused=reused,
                    records_by_task={t: o.records for t, o in zip(tasks, outs)})
    out.cache_path = outs[0].cache_path
    write_outputs(out, preps[0].output_dir, config)
    return out


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
                if len(groups) == 1 and next(iter(groups.values()))["n"] == m["n"]:
                    continue  # a tag every example has would only repeat `all`
                for value, s in groups.items():
                    lines.append(row(f"{key}={value}", s))
        else:
            lines += ["| model | task | n | accuracy | mean per-class | evals/example |",
                      "|---|---|---:|---:|---:|---:|"]
            lo, hi = m["accuracy_ci95"]
            evals = f"{m['evals_per_example']:.0f}" if "evals_per_example" in m else "—"
            mlo, mhi = m.get("mean_per_class_accuracy_ci95") or (None, None)
            lines.append(f"| {model} | {task_name} | {m['n']} | {_pct(m['accuracy'])} [{_pct(lo)}, {_pct(hi)}] | "
                         f"{_pct(m['mean_per_class_accuracy'])} [{_pct(mlo)}, {_pct(mhi)}] | {evals} |")
        if m.get("skipped"):
            lines.append(f"\n{m['skipped']} example(s) skipped (see 'skipped' in the results file).")
    return "\n".join(lines)
