"""Run orchestration: ``prepare`` checks a run, ``evaluate`` scores one task, ``run_tasks`` several.

``evaluate`` reads as its steps: shard, scan the ids, key the run by what it evaluates, lock and load
the resume cache, load the model only if something is left, score (appending each finished example to
the cache), gather the shards, write the results. The pieces live in their own modules: durable files
and caches in :mod:`winoeval.storage`, sharding in :mod:`winoeval.distributed`, the results layout in
:mod:`winoeval.results`, scoring in :mod:`winoeval.scoring`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

from . import __version__, distributed, fingerprint, registry
from .api import Example, TaskData
from .config import RunConfig, ScorerConfig, check_device
from .errors import BadExampleError, ConfigError, UserError
from .records import score_records
from .results import build_results, merge_task_results, safe_name, summarize_groups, write_outputs
from .storage import ShardedCache, check_output_dir, remove_created, remove_stale_tmp
from .validate import check_example, check_vocabulary

CACHE_DIR = ".cache"


@dataclass
class Prepared:
    """A run whose names, settings, task and output directory were checked; no model is loaded yet.
    ``scorer`` holds the scorer settings resolved once (task presets, the user's flags, normalisation)."""

    config: RunConfig
    model_entry: registry.Entry
    model_arg: str | None
    task_entry: registry.Entry
    task_arg: str | None
    output_dir: Path
    task: TaskData | None = None
    scorer: ScorerConfig | None = None
    created: list[Path] = field(default_factory=list)  # folders this run made (removed again if left empty)


@dataclass
class RunOutput:
    results: dict[str, Any]
    records: list[dict]
    results_path: Path | None = None
    samples_path: Path | None = None
    cache_path: Path | None = None
    computed: int = 0
    reused: int = 0
    records_by_task: dict[str, list[dict]] = field(default_factory=dict)  # runs of several tasks
    samples_paths: dict[str, Path] = field(default_factory=dict)
    errors_paths: list[Path] = field(default_factory=list)  # --log-errors


# -- checks that need no model ------------------------------------------------------------------
def remove_if_empty(prep: Prepared) -> None:
    """After a failed run: remove the folders this run created, if empty (never another run's)."""
    remove_created(prep.created)


def prepare(config: RunConfig) -> Prepared:
    """Every check that needs no model: names, options, numbers, device, output directory; then the
    task is loaded (lazily: its examples are not read) and the scorer settings resolved, once."""
    model_entry, model_arg = registry.resolve("model", config.model)
    task_entry, task_arg = registry.resolve("task", config.task)
    model_entry.check_options(config.model_args, "--model-arg")
    task_entry.check_options(config.task_args, "--task-arg")
    ScorerConfig(**config.scorer_args)  # the user's own settings, checked before anything loads
    check_device(config.device)
    config.resolve_paths()
    root = Path(config.output_path or "winoeval-out")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--output-path {str(root)!r} is a file; pass a folder (winoeval writes "
                          f"<folder>/<model>/results_<date>.json)")
    from . import verbosity

    with verbosity.status(f"loading task {config.task}", f"task {config.task} loaded"):
        task = task_entry.loader(task_arg, config)  # before any folder is made: a data error leaves none behind
    prep = Prepared(config, model_entry, model_arg, task_entry, task_arg, root / safe_name(config.model), task,
                    ScorerConfig.resolve(config.scorer_args, task.metric, task.defaults))
    check_output_dir(prep.output_dir, prep.created)
    return prep


def run_key(config: RunConfig, scorer: ScorerConfig, device_type: str,
            model_fp: str | None = None, task_fp: dict[str, Any] | None = None) -> str:
    """What changes a score: the model, its options and the *content* of its weights; the task, its
    options and the content of its data; the scorer; dtype; device type.

    Not the batch size: a run resumed with a smaller batch (say after running out of memory) reuses
    what was finished; on CPU, conv kernels chosen per batch size can move scores in the 7th digit.
    Not ``--skip-bad``: a rerun with it reuses every scored example (skipped ones are retried)."""
    ident = {
        "model": config.model, "model_args": config.model_args, "model_fingerprint": model_fp,
        "task": config.task, "task_args": config.task_args, "task_fingerprint": task_fp or {},
        "scorer": scorer.key_fields(), "normalize": bool(scorer.normalize), "dtype": config.dtype,
        "device": device_type, "version": __version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


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


def scan_ids(task: TaskData, limit: int | None) -> list[str]:
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
        check_example(task.name, task.metric, example, position)  # labels and texts (winoeval.validate)
        first[example.id] = position
        order.append(example.id)
    return order


def _load_model(prep: Prepared, on_model):
    from . import verbosity

    with verbosity.status(f"loading model {prep.config.model}", f"model {prep.config.model} loaded"):
        model = prep.model_entry.loader(prep.model_arg, prep.config)
    if on_model is not None:
        on_model(model)
    return model


def _score_shard(prep: Prepared, cache: ShardedCache, done: dict[str, dict], mine: list[str], todo: set[str],
                 slot: dict, shard: tuple[int, int], progress: bool, limit: int | None) -> tuple[int, int]:
    """Score this shard's unfinished examples, appending each record to the cache as it finishes.
    Returns (computed, reused)."""
    from tqdm.auto import tqdm

    config, task = prep.config, prep.task
    scorer = None
    if todo:
        from .scoring import make_scorer

        check_vocabulary(slot["model"], task, config)
        scorer = make_scorer(slot["model"], prep.scorer)
        if config.log_errors:  # keep every per-(t, ε) error in the records (winoeval.errorlog)
            if getattr(slot["model"], "kind", None) != "denoiser":
                raise ConfigError(f"--log-errors: {config.model!r} is a matcher, it has no per-timestep errors; "
                                  f"drop --log-errors or use a diffusion model")
            scorer.log_errors = True
    counts = {"computed": 0, "reused": 0}
    rank, world = shard
    with tqdm(total=len(mine), desc=f"{config.model} on {config.task}" + (f" [{rank}/{world}]" if world > 1 else ""),
              unit="ex", disable=not progress, dynamic_ncols=True, position=rank) as bar:
        def todo_examples():
            for position, example in enumerate(iter_examples(task, limit)):
                if position % world != rank:
                    continue
                if example.id not in todo:
                    counts["reused"] += 1
                    bar.update(1)
                    continue
                yield example

        # the scorer keeps several examples in flight and packs their evaluations into full batches
        try:
            for record in score_records(scorer, task, todo_examples(), config.skip_bad):
                cache.own.append(record)
                done[record["id"]] = record
                counts["computed"] += 1
                bar.update(1)
        except BadExampleError:
            if counts["computed"] == 0:  # the very first example failed: can the model read this task at all?
                check_vocabulary(slot["model"], task, config, captions=True)
            raise
    return counts["computed"], counts["reused"]



# -- one task, several tasks ----------------------------------------------------------------------
def evaluate(config: RunConfig, *, progress: bool = True, write: bool = True,
             on_model: Callable[[Any], None] | None = None, prepared: Prepared | None = None,
             model_slot: dict | None = None, workers_since: float | None = None) -> RunOutput:
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
    task = prep.task
    # 1. which examples this process scores
    rank, world = distributed.detect_shard()
    if world > 1 and not distributed.is_worker():
        distributed.join_launch()
    limit = resolve_limit(config.limit, task.size)
    from . import verbosity

    with verbosity.status(f"reading the examples of task {config.task}", f"task {config.task} ready"):
        order = scan_ids(task, limit)  # also refuses duplicate ids before any model loads
    mine = [i for p, i in enumerate(order) if p % world == rank]
    # 2. the run key: what is evaluated, by content
    model_fp = fingerprint.of_model(prep.model_entry, prep.model_arg, config)
    task_fp = fingerprint.of_task(config, task)
    key = run_key(config, prep.scorer, config.device_type(), model_fp, task_fp)
    # 3. lock this run's shard of the cache and read what is finished
    cache = ShardedCache(prep.output_dir / CACHE_DIR / key, rank, world)
    prep.created[:0] = cache.created
    cache.lock.acquire()
    failed = True
    try:
        remove_stale_tmp(prep.output_dir)
        done = cache.load(repair=True)
        if cache.damaged:
            warnings.warn(f"{cache.damaged} damaged line(s) in the resume cache {cache.directory} were skipped "
                          f"(those examples are recomputed)", stacklevel=2)
        todo = {i for i in mine if i not in done or "skipped" in done[i]}  # skipped examples are retried
        if config.log_errors:  # records cached without per-sample errors are recomputed
            todo |= {i for i in mine if i in done and "skipped" not in done[i] and "per_sample" not in done[i]}
        # 4. the model, only if something is left (before the progress bar: a weights error comes first)
        slot = model_slot if model_slot is not None else {}
        if todo and "model" not in slot:
            slot["model"] = _load_model(prep, on_model)
        # 5. score, appending each finished example to the cache
        computed, reused = _score_shard(prep, cache, done, mine, todo, slot, (rank, world), progress, limit)
        out = RunOutput({}, [], cache_path=cache.own.path, computed=computed, reused=reused)
        model = slot.get("model")
        device = str(getattr(model, "device", None)) if model is not None else None
        dtype = str(getattr(model, "dtype", None)).replace("torch.", "") if model is not None else None
        # 6. gather the shards
        if world > 1:
            if distributed.is_worker():  # a worker of `winoeval run --num-processes`: the parent gathers
                distributed.write_worker_stats(cache.own.path, computed, reused, device, dtype)
                failed = False
                return out
            gathered = distributed.gather_records({i: done[i] for i in mine if i in done})
            computed_everywhere = distributed.gather_count(computed)
            if rank != 0:
                failed = False
                return out
            done = {**cache.load(), **gathered}
            # every rank's examples: each one was either computed or reused by the rank that holds it
            computed, reused = computed_everywhere, len(order) - computed_everywhere
            out.computed, out.reused = computed, reused
        missing = [i for i in order if i not in done]
        if missing:
            raise UserError(f"{len(missing)} example(s) were not scored by any process (first: {missing[0]!r}); "
                            f"rerun the same command to finish them")
        out.records = [done[i] for i in order]
        if workers_since is not None:  # what this run's worker processes did
            for stats in distributed.read_worker_stats(cache.directory, workers_since):
                computed += int(stats.get("computed", 0))
                reused -= int(stats.get("computed", 0))
                device, dtype = device or stats.get("device"), dtype or stats.get("dtype")
            out.computed, out.reused = computed, reused
        # 7. the results
        run_info = {
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - started, 3),
            "examples_computed": computed, "examples_reused": reused, "run_key": key,
            "device": device, "dtype": dtype,
        }
        out.results = build_results(config, prep.scorer, task, out.records, model_plugin=prep.model_entry.plugin,
                                    task_plugin=prep.task_entry.plugin, model_fp=model_fp, task_fp=task_fp,
                                    run_info=run_info)
        if write:
            _write(out, prep.output_dir, config.log_samples, {config.task: out.records}, config.log_errors)
        failed = False
        return out
    finally:
        cache.release(failed)


def _write(out: RunOutput, output_dir: Path, log_samples: bool, by_task: dict[str, list[dict]],
           log_errors: bool = False) -> None:
    from .errorlog import without_per_sample, write_error_files

    out.results_path, out.samples_paths = write_outputs(out.results, without_per_sample(by_task), output_dir,
                                                        log_samples)
    out.samples_path = next(iter(out.samples_paths.values()), None)
    if log_errors:  # errors_<stamp>.jsonl beside results_<stamp>.json (winoeval.errorlog)
        out.errors_paths = write_error_files(out.results_path, out.results, by_task)


def run_tasks(config: RunConfig, tasks: list[str], *, progress: bool = True,
              prepared: list[Prepared] | None = None, workers_since: float | None = None,
              groups: dict[str, list[str]] | None = None) -> RunOutput:
    """One model on several tasks: the model loads once; one results file whose ``results`` holds every
    task (lm-evaluation-harness's layout) and ``tasks`` each task's description and fingerprint.
    ``groups`` (from ``--task GROUP``): {group: its tasks}, summarised under ``groups`` (winoeval.groups)."""
    preps = prepared or [prepare(dataclasses.replace(config, task=t)) for t in tasks]
    slot: dict = {}
    outs = [evaluate(p.config, progress=progress, write=False, prepared=p, model_slot=slot,
                     workers_since=workers_since) for p in preps]
    if len(outs) == 1 or not outs[0].results:  # one task, or a worker process (the parent gathers)
        first = outs[0]
        if first.results and groups:
            first.results["groups"] = summarize_groups(first.results["results"], groups)
        if first.results and len(outs) == 1:
            _write(first, preps[0].output_dir, preps[0].config.log_samples, {preps[0].config.task: first.records},
                   preps[0].config.log_errors)
        return first
    merged = merge_task_results(tasks, [o.results for o in outs], config.data_dir, groups)
    computed, reused = sum(o.computed for o in outs), sum(o.reused for o in outs)
    out = RunOutput(merged, outs[0].records, computed=computed, reused=reused,
                    records_by_task={t: o.records for t, o in zip(tasks, outs)})
    out.cache_path = outs[0].cache_path
    _write(out, preps[0].output_dir, config.log_samples, out.records_by_task, config.log_errors)
    return out
