"""Finished runs as data: a results file with its per-example samples file, and which runs can be compared.

The bottom layer of ``winoeval compare`` / ``winoeval calibrate``: the statistics
(:mod:`winoeval.comparison`, :mod:`winoeval.calibration`) work on what this module loads, the renderers
(:mod:`winoeval.report`, :mod:`winoeval.html_report`, :mod:`winoeval.plot`) on what the statistics return,
and the commands (:mod:`winoeval.compare`) sit on top. No module here imports one above it.

Only click and the standard library are imported at module level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

from .errors import CompareError  # noqa: F401  (public here too)

WINOGROUND_METRICS = ("text", "image", "group")
CLASSIFICATION_METRICS = ("accuracy", "mean_per_class")
METRIC_TITLES = {"text": "text", "image": "image", "group": "group", "accuracy": "accuracy",
                 "mean_per_class": "mean per-class"}
BINARY = {"text", "image", "group", "accuracy"}
ID_LIMIT = 5  # ids shown per table cell; CSV and JSON hold them all


# --------------------------------------------------------------------------------------------- loading

@dataclass
class Run:
    """One finished run: its results file, and its per-example records keyed by id (scored ones only)."""

    path: Path
    samples_path: Path
    results: dict[str, Any]
    records: dict[str, dict]
    skipped: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def task(self) -> str:
        return self.results["task"]["name"]

    @property
    def task_metrics(self) -> dict[str, Any]:
        res = self.results.get("results", {})
        return res.get(self.task) or (next(iter(res.values())) if res else {})

    @property
    def metric(self) -> str:
        return self.task_metrics.get("metric") or _guess_metric(self.records)

    @property
    def breakdowns(self) -> list[str]:
        return list(self.task_metrics.get("by", {}))

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config", {})


def _guess_metric(records: dict[str, dict]) -> str:
    for r in records.values():
        return "classification" if "correct" in r.get("verdicts", {}) else "winoground"
    return "winoground"


def samples_path_for(results_path: Path, task: str | None = None) -> Path:
    """``samples_<stamp>.jsonl`` beside ``results_<stamp>.json``; for one task of a run of several tasks
    ``samples_<task>_<stamp>.jsonl``."""
    name = results_path.name
    if not (name.startswith("results_") and name.endswith(".json")):
        raise CompareError(f"{results_path}: expected a results_<stamp>.json file written by `winoeval run`")
    stamp = name[len("results_"):-len(".json")]
    if task is None:
        return results_path.with_name(f"samples_{stamp}.jsonl")
    return results_path.with_name(f"samples_{safe_name(task)}_{stamp}.jsonl")


def _model_of(results_path: Path) -> str:
    try:
        return str(json.loads(results_path.read_text(encoding="utf-8"))["model"]["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"(unreadable: {results_path.name})"


def pick_results(path: Path) -> list[Path]:
    """A results file → itself. A folder (an ``--output-path``, or one model's folder in it) → the newest
    results file of each model found in it and its model sub-folders, saying which it took: never a
    silent choice among several runs of one model."""
    if not path.is_dir():
        return [path]
    found = sorted([*path.glob("results_*.json"), *path.glob("*/results_*.json")])
    if not found:
        raise CompareError(f"{path}: no results_<stamp>.json in this folder or its model folders (winoeval run "
                           f"writes OUTPUT/<model>/results_<stamp>.json)")
    by_model: dict[str, list[Path]] = {}
    for f in found:
        by_model.setdefault(_model_of(f), []).append(f)
    picked = []
    for model, files in by_model.items():
        files.sort(key=lambda f: (f.stat().st_mtime_ns, f.name))
        logged = [f for f in files if any(f.parent.glob("samples_" + f.name[len("results_"):-len(".json")] + "*"))]
        choice = (logged or files)[-1]  # the newest run with per-example samples, which compare needs
        picked.append(choice)
        if len(files) > 1:
            others = ", ".join(str(f.relative_to(path)) for f in files if f != choice)
            which = "newest" if choice == files[-1] else "newest with --log-samples"
            click.echo(f"note: {path} holds {len(files)} runs of {model}; comparing the {which}, "
                       f"{choice.relative_to(path)} (pass a results file to choose another: {others})", err=True)
    # the models in the order they were run (not alphabetical): `winoeval run -m a ...; winoeval run -m b ...;
    # winoeval compare OUT` compares like `compare OUT/a OUT/b` (the first is the reference of every Δ)
    picked.sort(key=lambda f: (_run_date(f), f.stat().st_mtime_ns, str(f)))
    if len(picked) > 1:
        click.echo(f"note: {path} holds runs of {len(picked)} models; compared in the order they were run: "
                   f"{', '.join(_model_of(f) for f in picked)} (Δ = each − the first; pass the files or folders "
                   f"one by one to choose the order)", err=True)
    return picked


def _run_date(path: Path) -> str:
    """When a results file's run finished (its ``run.date``), else its modification time, as sortable text."""
    import datetime as _dt

    try:
        date = json.loads(path.read_text(encoding="utf-8")).get("run", {}).get("date")
        if date:
            return _dt.datetime.fromisoformat(date).astimezone(_dt.timezone.utc).isoformat()
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).isoformat()


def task_names(results: dict[str, Any]) -> list[str]:
    """The tasks a results file holds: ``tasks`` (a run of several tasks) or ``task`` (one)."""
    if isinstance(results.get("tasks"), dict):
        return list(results["tasks"])
    return [results["task"]["name"]]


def _read_samples(samples: Path, results_path: Path, results: dict[str, Any]) -> tuple[dict[str, dict], list[str]]:
    if not samples.exists():
        if results.get("config", {}).get("log_samples"):
            raise CompareError(f"{results_path}: its per-example samples file {samples.name} is missing (moved or "
                               f"deleted?); put it back next to the results file, or rerun with --log-samples")
        raise CompareError(
            f"{results_path}: no per-example samples file ({samples.name}) next to it: the run was made "
            f"without --log-samples. Rerun the same `winoeval run` command with --log-samples (finished "
            f"examples come from the cache, so it is quick) and pass the new results file instead.")
    records: dict[str, dict] = {}
    skipped: list[str] = []
    with open(samples, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CompareError(f"{samples}:{n}: not valid JSON ({exc.msg})") from None
            problem = sample_problem(record)
            if problem:
                raise CompareError(f"{samples}:{n}: not a sample record written by `winoeval run` ({problem}); "
                                   f"rerun the run with --log-samples to write it again")
            eid = str(record["id"])
            if "skipped" in record:
                skipped.append(eid)
                records.pop(eid, None)
            else:
                records[eid] = record
    return records, skipped


def results_problem(results: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a results file's top level, or None."""
    model = results.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        return "'model' is not an object with a 'name'"
    if isinstance(results.get("tasks"), dict):
        if not results["tasks"] or not all(isinstance(v, dict) for v in results["tasks"].values()):
            return "'tasks' is not an object of task objects"
    else:
        task = results.get("task")
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            return "'task' is not an object with a 'name'"
    for key in ("results", "config"):
        if key in results and not isinstance(results[key], dict):
            return f"{key!r} is not an object"
    if isinstance(results.get("results"), dict) and not all(isinstance(v, dict) for v in results["results"].values()):
        return "'results' is not an object of per-task objects"
    return None


def _is_number_or_null(v: Any) -> bool:
    import math

    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def sample_problem(record: Any) -> str | None:
    """What is wrong with one line of a samples file, or None: an object with a string ``id`` and either
    ``skipped`` or ``scores`` (rows of finite numbers or null for pruned) and ``verdicts`` (an object)."""
    if not isinstance(record, dict):
        kind = {type(None): "null", bool: "true/false", int: "number", float: "number", str: "string",
                list: "list"}.get(type(record), type(record).__name__)
        return f"a JSON {kind}, not an object"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return f"its id is {record.get('id')!r}, not a non-empty string"
    if "skipped" in record:
        return None
    scores = record.get("scores")
    if not isinstance(scores, list) or not scores or not all(
            isinstance(row, list) and row and all(_is_number_or_null(v) for v in row) for row in scores):
        return f"example {record['id']!r}: 'scores' is not a list of rows of finite numbers"
    if len({len(row) for row in scores}) != 1:
        return f"example {record['id']!r}: the rows of 'scores' have different lengths"
    verdicts = record.get("verdicts")
    if not isinstance(verdicts, dict):
        return f"example {record['id']!r}: 'verdicts' is not an object"
    wrong = [k for k in ("correct", *WINOGROUND_METRICS) if k in verdicts and not isinstance(verdicts[k], bool)]
    if wrong:
        return f"example {record['id']!r}: 'verdicts' has non-true/false values for {', '.join(wrong)}"
    label = record.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)
                              or not 0 <= label < len(scores[0])):
        return f"example {record['id']!r}: label {label!r} is not a class index in 0 … {len(scores[0]) - 1}"
    return None


def load_runs(path: str | Path) -> list[Run]:
    """One :class:`Run` per task of a results file (a run of several tasks holds several), each with its
    samples file; a run without ``--log-samples`` is an error that says to rerun with it. A folder gives
    the runs of the newest results file of each model in it (:func:`pick_results`)."""
    return [run for results_path in pick_results(Path(path)) for run in load_file_runs(results_path)]


def load_file_runs(results_path: Path) -> list[Run]:
    """The runs of one results file, one per task."""
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"{results_path}: cannot read the results file ({exc})") from None
    if not isinstance(results, dict) or "model" not in results or not ("task" in results or "tasks" in results):
        raise CompareError(f"{results_path}: not a winoeval results file (no 'model', or no 'task'/'tasks')")
    problem = results_problem(results)
    if problem:
        raise CompareError(f"{results_path}: not a results file written by `winoeval run` ({problem}); pass the "
                           f"results_<stamp>.json a run wrote")
    several = isinstance(results.get("tasks"), dict)
    runs = []
    for task in task_names(results):
        view = results
        if several:  # the view of one task, shaped as a one-task results file
            view = {**results, "task": {**results["tasks"][task], "name": task},
                    "results": {task: results.get("results", {}).get(task, {})}}
            if "data_dir" in results["tasks"][task]:  # a task group: each task read its own folder
                view["config"] = {**results.get("config", {}), "data_dir": results["tasks"][task]["data_dir"]}
        samples = samples_path_for(results_path, task if several else None)
        records, skipped = _read_samples(samples, results_path, results)
        runs.append(Run(results_path, samples, view, records, skipped, label=str(results["model"]["name"])))
    return runs


def load_run(path: str | Path) -> Run:
    """The run of a one-task results file (see :func:`load_runs` for files of several tasks)."""
    runs = load_runs(path)
    if len(runs) != 1:
        raise CompareError(f"{runs[0].path}: holds {len(runs)} tasks ({', '.join(r.task for r in runs)}); "
                           f"pick one with --task")
    return runs[0]


def unique_labels(runs: Sequence[Run], labels: Sequence[str] = ()) -> None:
    if labels:
        if len(labels) != len(runs):
            raise CompareError(f"--label was given {len(labels)} time(s) for {len(runs)} runs: give one per run")
        for run, label in zip(runs, labels):
            run.label = label
    seen: dict[str, int] = {}
    for run in runs:
        base = run.label
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            run.label = f"{base} #{seen[base]}"


# ------------------------------------------------------------------------------------- compatibility

@dataclass
class Shared:
    ids: list[str]
    notes: list[str]


def fmt_ids(ids: Sequence[str], limit: int = ID_LIMIT) -> str:
    if not ids:
        return "—"
    shown = ", ".join(ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


def check_runs(runs: Sequence[Run], strict: bool = False) -> Shared:
    """Same task (and subset) and metric, or an error; the examples scored in every run, with notes."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two results files")
    tasks = {run.task for run in runs}
    if len(tasks) > 1:
        listing = "; ".join(f"{run.path.name} ({run.label}) is on {run.task!r}" for run in runs)
        raise CompareError(f"cannot compare runs on different tasks or subsets: {listing}. Paired tests need "
                           f"the same examples: compare runs of one task (name and ':subset' alike).")
    metrics = {run.metric for run in runs}
    if len(metrics) > 1:
        raise CompareError(f"runs of task {runs[0].task!r} use different metrics ({', '.join(sorted(metrics))})")
    notes = []
    paths = [run.path.resolve() for run in runs]
    for path in sorted({p for p in paths if paths.count(p) > 1}):
        notes.append(f"the same results file is given {paths.count(path)} times ({path.name}): it is compared "
                     f"with itself")
    by_model: dict[str, set[str]] = {}
    for run in runs:
        model = run.results.get("model", {})
        by_model.setdefault(str(model.get("name")), set()).add(json.dumps(model.get("fingerprint")))
    for name, fps in sorted(by_model.items()):
        if len(fps) > 1:
            notes.append(f"runs of the same model name {name!r} have different model fingerprints ({len(fps)} "
                         f"different weights): they did not evaluate the same model")
    task_fps = {json.dumps(run.results.get("task", {}).get("fingerprint"), sort_keys=True) for run in runs}
    if len(task_fps) > 1:
        notes.append("the runs' task fingerprints differ: they may not have evaluated the same data")
    for key in ("task_args", "data_dir"):
        values = {json.dumps(run.config.get(key), sort_keys=True) for run in runs}
        if len(values) > 1:
            notes.append(f"the runs differ in {key} ({', '.join(sorted(values))}): check that they saw the same data")
    first = runs[0]
    in_all = set(first.records)
    for run in runs[1:]:
        in_all &= set(run.records)
    ids = [i for i in first.records if i in in_all]
    differ = []
    for run in runs:
        extra = [i for i in run.records if i not in in_all]
        if extra:
            differ.append(f"{run.label} has {len(extra)} scored example(s) not scored in every run ({fmt_ids(extra)})")
        if run.skipped:
            differ.append(f"{run.label} skipped {len(run.skipped)} example(s) ({fmt_ids(run.skipped)})")
    if differ:
        if strict:
            raise CompareError("the runs' example sets differ (--strict): " + "; ".join(differ)
                               + f". Without --strict only the {len(ids)} shared example(s) are compared.")
        notes.append(f"the example sets differ: comparing only the {len(ids)} example(s) scored in every run; "
                     + "; ".join(differ))
    if not ids:
        raise CompareError("the runs share no scored example: nothing to compare")
    for run in runs[1:]:
        labels = [i for i in ids if run.records[i].get("label") != first.records[i].get("label")]
        if labels:
            raise CompareError(f"{run.label} and {first.label} give {len(labels)} shared example(s) different true "
                               f"labels ({fmt_ids(labels)}): the runs did not see the same data")
        texts = [i for i in ids if run.records[i].get("texts") != first.records[i].get("texts")]
        if texts:
            notes.append(f"{run.label} and {first.label} have different captions for {len(texts)} example(s) "
                         f"({fmt_ids(texts)})")
    return Shared(ids, notes)


# --------------------------------------------------------------------------------------------- writing
# The writer of the results layout lives beside its reader (above): `winoeval run` writes
# OUTPUT/<model>/results_<stamp>.json (+ samples_<stamp>.jsonl), `compare` and `calibrate` read them.

def safe_name(name: str) -> str:
    """A model or task name as a file or folder name: ``sd:/data/sd2-base`` → ``sd_data_sd2-base``."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"


def versions() -> dict[str, str]:
    """The versions of Python and of the packages that change a score."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("winoeval", "torch", "diffusers", "transformers", "open_clip_torch", "datasets", "accelerate",
                 "pluggy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_hash() -> str | None:
    """The commit of the winoeval checkout running (None for an installed wheel)."""
    import subprocess

    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def build_results(config, scorer, task, records: list[dict], *, model_plugin: str, task_plugin: str,
                  model_fp: str | None = None, task_fp: dict[str, Any] | None = None,
                  run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results dict of one model on one task (``config`` a RunConfig, ``scorer`` the resolved
    ScorerConfig, ``task`` the TaskData, ``records`` the examples' records in task order)."""
    import dataclasses

    from . import metrics

    scored = [r for r in records if "skipped" not in r]
    task_metrics = metrics.compute(task.metric, scored, task.class_names, task.breakdowns,
                                   macro=getattr(task, "macro", None))
    task_metrics["metric"] = task.metric
    skipped = [{"id": r["id"], "reason": r["skipped"]} for r in records if "skipped" in r]
    task_metrics["skipped"] = len(skipped)
    cfg = config.to_dict()
    cfg["scorer"] = dataclasses.asdict(scorer)
    cfg.pop("scorer_args", None)
    return metrics.json_safe({  # NaN (a metric over zero examples) becomes null: strict JSON
        "config": cfg,
        "model": {"name": config.model, "plugin": model_plugin, "fingerprint": model_fp},
        "task": {"name": config.task, "dataset": task.name, "plugin": task_plugin, "size": task.size,
                 "examples": len(records), "class_names": task.class_names, "fingerprint": task_fp or {},
                 "breakdowns": list(task.breakdowns)},
        "results": {config.task: task_metrics},
        "skipped": skipped,
        "run": run_info or {},
        "versions": versions(),
        "git_hash": git_hash(),
    })


def write_outputs(results: dict[str, Any], records_by_task: dict[str, list[dict]], output_dir: Path,
                  log_samples: bool) -> tuple[Path, dict[str, Path]]:
    """``results_<stamp>.json`` (+ with ``log_samples`` ``samples_<stamp>.jsonl``, or for a run of several
    tasks one ``samples_<task>_<stamp>.jsonl`` per task), never overwriting: each name is claimed
    atomically, so two runs finishing in the same second both keep their files. The samples files are
    written first: a results file never exists without its samples files. Returns the paths."""
    import datetime as _dt

    from .storage import claim_new

    results_text = json.dumps(results, indent=2, sort_keys=True, allow_nan=False) + "\n"
    samples = {task: "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records)
               for task, records in records_by_task.items()} if log_samples else {}
    several = len(records_by_task) > 1
    base = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    for n in range(1, 10_000):
        stamp = base if n == 1 else f"{base}-{n}"
        results_path = output_dir / f"results_{stamp}.json"
        samples_paths = {task: output_dir / (f"samples_{safe_name(task)}_{stamp}.jsonl" if several
                                             else f"samples_{stamp}.jsonl") for task in samples}
        if results_path.exists() or any(p.exists() for p in samples_paths.values()):
            continue
        claimed: list[Path] = []
        for task, path in samples_paths.items():
            if not claim_new(path, samples[task]):
                break
            claimed.append(path)
        else:
            if claim_new(results_path, results_text):
                return results_path, samples_paths
        for path in claimed:  # lost a race for one of the names: give ours back, try the next stamp
            path.unlink(missing_ok=True)
    raise RuntimeError(f"could not find a free results file name in {output_dir}")


def summarize_groups(results_by_task: dict[str, Any], groups: dict[str, list[str]]) -> dict[str, Any]:
    """The per-group summary rows of a run of task groups (see :mod:`winoeval.groups`)."""
    from .groups import summarize

    return summarize(results_by_task, groups)


def merge_task_results(tasks: list[str], parts: list[dict[str, Any]], data_dir: str | None,
                       groups: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One results dict for one model on several tasks (lm-evaluation-harness's layout): ``results`` holds
    every task, ``tasks`` each task's description, fingerprint and run; counts and wall time are summed."""
    import os

    merged = dict(parts[0])
    merged["config"] = {**merged["config"], "task": ",".join(tasks)}
    merged["results"] = {t: r["results"][t] for t, r in zip(tasks, parts)}
    merged["tasks"] = {t: {**r["task"], "run": r["run"]} for t, r in zip(tasks, parts)}
    dirs = {t: r["config"].get("data_dir") for t, r in zip(tasks, parts)}
    if len(set(dirs.values())) > 1:  # a task group: one --data-dir folder per dataset, kept per task
        for t in tasks:
            merged["tasks"][t]["data_dir"] = dirs[t]
        merged["config"]["data_dir"] = os.path.abspath(os.path.expanduser(data_dir)) if data_dir else None
    merged["skipped"] = [{**s, "task": t} for t, r in zip(tasks, parts) for s in r["skipped"]]
    merged.pop("task", None)
    if groups:
        merged["groups"] = summarize_groups(merged["results"], groups)
    merged["run"] = {**parts[-1]["run"], "examples_computed": sum(r["run"]["examples_computed"] for r in parts),
                     "examples_reused": sum(r["run"]["examples_reused"] for r in parts),
                     "wall_time_s": round(sum(r["run"]["wall_time_s"] for r in parts), 3)}
    merged["run"].pop("run_key", None)
    return merged
