"""Per-timestep errors (``winoeval run --log-errors``) and ``winoeval rescore``: new verdicts from them,
without a model call.

**The errors file.** ``--log-errors`` writes ``errors_<stamp>.jsonl`` beside ``results_<stamp>.json`` (for
a run of several tasks ``errors_<task>_<stamp>.jsonl``). Line 1 is a header ``{"format":
"winoeval-errors/1", "task": ..., "metric": ..., "class_names": ..., "breakdowns": ...}``; every other line
is one example's record (what the samples file holds: id, scores, verdicts, label, meta, …) plus
``per_sample``::

    {"n": N, "images": I, "texts": K, "normalized": bool, "objective": "epsilon" | "v_prediction" | "flow",
     "t": <base64 int32 (N,)>, "snr": <base64 float64 (N,)>, "errors": <base64 float32 (I, K+1, N)>}

``errors[i, k, j]`` is the loss of image i under text k at sample j = (t_j, ε_j), row K the unconditional
text (NaN where not evaluated: pruned or early-stopped candidates, or no normalisation). Little-endian.
The losses are float32 when computed, so float32 storage is exact: ``rescore --weighting uniform``
reproduces the run bit for bit. ~4·I·(K+1)·N bytes per example before base64 (Winoground at N = 100: 2.4 kB).

**Weightings** (w_j multiplies sample j's logged loss; an error is Σ w_j·e_j / Σ w_j over the samples the
candidate used, the unconditional error over the same samples; SNR as :mod:`winoeval.scoring.objectives` defines it):

- ``uniform``: w = 1 (the run itself);
- ``snr``: w = SNR(t) (for an ε-loss: the x₀ error);
- ``min-snr:γ``: w = min(SNR(t), γ) / SNR(t) (Hang et al.'s min-SNR-γ, written on the logged loss);
- ``range:a-b``: w = 1 for timestep indices a ≤ t ≤ b, else 0 (which timesteps decide?);
- ``file:PATH``: a JSON list (or one number a line) of T weights, w = weights[t].

Pruning and early stopping chose what to evaluate under the uniform weighting: their pruned candidates
stay pruned (score −inf) whatever the weighting. Compare weightings on fixed-budget runs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

import click

from .errorlog import FORMAT, decode, errors_path_for
from .errors import ConfigError


class RescoreError(ConfigError):
    """A bad weighting, run or errors file (exit 2)."""


# --- weightings ---------------------------------------------------------------------------------------
def parse_weighting(spec: str) -> Callable[[Any, Any], Any]:
    """A weighting name → w(t, snr) on tensors (see the module docstring)."""
    import torch

    spec = spec.strip()
    if spec == "uniform":
        return lambda t, s: torch.ones_like(s)
    if spec == "snr":
        return lambda t, s: s.clone()
    if spec.startswith("min-snr:"):
        try:
            gamma = float(spec.split(":", 1)[1])
            assert gamma > 0 and math.isfinite(gamma)
        except (ValueError, AssertionError):
            raise RescoreError(f"--weighting {spec}: min-snr needs a positive number γ, e.g. min-snr:5") from None
        return lambda t, s: torch.clamp(s, max=gamma) / s
    if spec.startswith("range:"):
        try:
            a, b = (int(v) for v in spec.split(":", 1)[1].split("-"))
            assert 0 <= a <= b
        except (ValueError, AssertionError):
            raise RescoreError(f"--weighting {spec}: range needs two timestep indices a ≤ b, "
                               f"e.g. range:0-249") from None
        return lambda t, s: ((t >= a) & (t <= b)).double()
    if spec.startswith("file:"):
        path = Path(spec.split(":", 1)[1])
        try:
            text = path.read_text()
            values = json.loads(text) if text.lstrip().startswith("[") else [float(v) for v in text.split()]
            weights = torch.tensor([float(v) for v in values], dtype=torch.float64)
        except (OSError, ValueError, TypeError) as exc:
            raise RescoreError(f"--weighting {spec}: cannot read weights from {path} ({exc}); give a JSON list or "
                               f"one number a line, one per timestep") from None
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise RescoreError(f"--weighting {spec}: weights must be finite and ≥ 0")

        def from_file(t, s):
            if int(t.max()) >= len(weights):
                raise RescoreError(f"--weighting {spec}: {len(weights)} weights, but the run has timestep "
                                   f"{int(t.max())}; give one weight per training timestep")
            return weights[t]
        return from_file
    raise RescoreError(f"unknown --weighting {spec!r}; use uniform, snr, min-snr:γ, range:a-b or file:PATH")


# --- rescoring ----------------------------------------------------------------------------------------
def rescore_record(record: dict, metric: str, weight: Callable | None) -> dict:
    """A record with scores, errors and verdicts recomputed from its per-sample errors (``weight`` None:
    uniform, with exactly the scorer's own operations)."""
    import torch

    from . import metrics
    from .records import _json_scores

    field = decode(record["per_sample"])
    full = field["errors"]
    I, K = field["images"], field["texts"]
    errs = full[:, :K]
    n_used = (~errs.isnan()).sum(dim=2)
    if weight is None:
        errors = torch.nanmean(errs, dim=2)
        uncond = full[:, K]
        base = (torch.stack([torch.stack([uncond[i, : n_used[i, k]].mean() for k in range(K)]) for i in range(I)])
                if field["normalized"] else None)
    else:
        w = weight(field["t"], field["snr"]).double()
        used = ~errs.isnan()
        total = (w * used).sum(dim=2)
        if bool((total <= 0).any()):
            raise RescoreError(f"example {record['id']!r}: the weighting gives zero weight to every sample a candidate "
                               f"used (its timesteps: {sorted(set(field['t'].tolist()))[:8]}…); choose one that "
                               f"covers some of the run's timesteps")
        errors = (torch.nan_to_num(errs) * w).sum(dim=2) / total
        base = None
        if field["normalized"]:
            uncond = full[:, K]
            base = torch.stack([torch.stack([(uncond[i, :n_used[i, k]] * w[:n_used[i, k]]).sum()
                                             / w[:n_used[i, k]].sum() for k in range(K)]) for i in range(I)])
    scores = -(errors - base) if base is not None else -errors.clone()
    for i, row in enumerate(record["scores"]):
        for k, value in enumerate(row):
            if value is None:  # pruned under the original run: stays pruned
                scores[i, k] = -math.inf
    raw = scores.tolist()
    out = dict(record)
    out["scores"] = _json_scores(scores)
    out["errors"] = _json_scores(errors)
    if base is not None:
        out["uncond_errors"] = _json_scores(base)
    out["verdicts"] = metrics.verdicts(metric, raw, record.get("label"))
    return out


def read_errors_file(path: Path) -> tuple[dict, list[dict]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        records = [json.loads(line) for line in lines[1:] if line.strip()]
    except (OSError, ValueError, IndexError) as exc:
        raise RescoreError(f"{path}: not a readable errors file ({exc}); it is written by "
                           f"`winoeval run --log-errors`") from None
    if header.get("format") != FORMAT:
        raise RescoreError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    return header, records


def find_errors_files(results_path: Path, results: dict) -> dict[str, Path]:
    tasks = list(results.get("results", {}))
    if len(tasks) == 1:
        candidates = {tasks[0]: errors_path_for(results_path)}
    else:
        candidates = {t: errors_path_for(results_path, t) for t in tasks}
    missing = [str(p) for p in candidates.values() if not p.is_file()]
    if missing:
        raise RescoreError(f"{results_path}: no per-timestep errors ({', '.join(missing)} missing); rerun the "
                           f"evaluation with --log-errors (it reuses its cache only for examples that have them)")
    return candidates


def rescore(results_path: str | Path, weighting: str) -> tuple[dict, Path]:
    """Recompute a run's verdicts and metrics under ``weighting``; write and return a new results file."""
    from . import metrics
    from .storage import claim_new

    results_path = Path(results_path)
    if results_path.is_dir():  # the newest run of the folder that logged its errors
        found = [p for p in sorted(results_path.glob("results_*.json"))
                 if any(p.parent.glob(p.name.replace("results_", "errors_*").replace(".json", ".jsonl")))]
        if not found:
            raise RescoreError(f"{results_path}: no results_*.json with an errors file in this folder; run "
                               f"`winoeval run ... --log-errors` first")
        results_path = found[-1]
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError) as exc:
        raise RescoreError(f"{results_path}: not a readable results file ({exc})") from None
    weight = parse_weighting(weighting)
    exact_uniform = weighting.strip() == "uniform"
    new = json.loads(json.dumps(results))
    for task, path in find_errors_files(results_path, results).items():
        header, records = read_errors_file(path)
        metric = header["metric"]
        rescored = [r if "skipped" in r else rescore_record(r, metric, None if exact_uniform else weight)
                    for r in records]
        scored = [r for r in rescored if "skipped" not in r]
        task_metrics = metrics.compute(metric, scored, header.get("class_names"), header.get("breakdowns") or [])
        task_metrics["metric"] = metric
        task_metrics["skipped"] = len(records) - len(scored)
        new["results"][task] = metrics.json_safe(task_metrics)
    digest = ""
    if weighting.startswith("file:"):
        from .fingerprint import hash_path

        digest = hash_path(weighting.split(":", 1)[1])
    old_key = (results.get("run") or {}).get("run_key")
    key = hashlib.sha256(json.dumps([old_key, weighting, digest, str(results_path.name)]).encode()).hexdigest()[:16]
    new.setdefault("config", {}).setdefault("scorer", {})["weighting"] = weighting
    new["run"] = {**(results.get("run") or {}), "run_key": key, "weighting": weighting,
                  "rescored_from": {"results": results_path.name, "run_key": old_key},
                  "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "examples_computed": 0, "wall_time_s": None}
    text = json.dumps(new, indent=2, sort_keys=True, allow_nan=False) + "\n"
    base = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    for n in range(1, 10_000):
        out = results_path.with_name(f"results_{base if n == 1 else f'{base}-{n}'}.json")
        if not out.exists() and claim_new(out, text):
            return new, out
    raise RuntimeError(f"could not find a free results file name in {results_path.parent}")  # pragma: no cover


@click.command("rescore")
@click.argument("run", type=click.Path(exists=True))
@click.option("--weighting", "-w", default="uniform", show_default=True,
              help="uniform, snr, min-snr:γ, range:a-b (timestep indices) or file:PATH (one weight per timestep).")
def rescore_command(run: str, weighting: str) -> None:
    """Recompute the verdicts and results of RUN (a results_*.json written with --log-errors, or its folder)
    from its per-timestep errors under another timestep weighting, without a model call; writes a new
    results file (new run key, the weighting recorded) beside it."""
    from .report import markdown_table

    try:
        results, path = rescore(run, weighting)
    except RescoreError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(markdown_table(results))
    click.echo(f"\nresults: {path} (weighting {weighting})", err=True)
