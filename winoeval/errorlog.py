"""The per-timestep errors of ``--log-errors``: how the scorer encodes them into a record and how the runner
writes ``errors_<stamp>.jsonl``. The format and what reads it: :mod:`winoeval.rescore`. Nothing here imports
the runner (the runner and the scorer import this module).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

FORMAT = "winoeval-errors/1"


def _b64(array) -> str:
    return base64.b64encode(array.tobytes()).decode("ascii")


def per_sample(scorer: Any, result: Any) -> dict | None:
    """The ``per_sample`` field of a record from a ScoreResult (None when it holds no per-sample errors)."""
    import numpy as np
    import torch

    errs, t = getattr(result, "sample_errors", None), getattr(result, "t", None)
    if errs is None or t is None:
        return None
    I, K, N = errs.shape
    uncond = result.uncond_errors if result.uncond_errors is not None else torch.full((I, N), float("nan"))
    full = torch.cat([errs, uncond.view(I, 1, N).to(errs.dtype)], dim=1)
    return {"n": N, "images": I, "texts": K, "normalized": result.uncond_errors is not None,
            "objective": scorer.objective.name, "t": _b64(t.numpy().astype("<i4")),
            "snr": _b64(scorer.objective.snr(t).numpy().astype("<f8")),
            "errors": _b64(full.numpy().astype(np.float32).astype("<f4"))}


def decode(field: dict) -> dict:
    """``per_sample`` → {"t": (N,) long, "snr": (N,) float64, "errors": (I, K+1, N) float64, ...}."""
    import numpy as np
    import torch

    I, K, N = field["images"], field["texts"], field["n"]
    return {**field,
            "t": torch.from_numpy(np.frombuffer(base64.b64decode(field["t"]), dtype="<i4").astype(np.int64)),
            "snr": torch.from_numpy(np.frombuffer(base64.b64decode(field["snr"]), dtype="<f8").copy()),
            "errors": torch.from_numpy(np.frombuffer(base64.b64decode(field["errors"]), dtype="<f4")
                                       .reshape(I, K + 1, N).astype(np.float64))}


def errors_text(records: list[dict], header: dict) -> str:
    lines = [json.dumps({"format": FORMAT, **header}, sort_keys=True)]
    lines += [json.dumps(r, sort_keys=True, allow_nan=False) for r in records]
    return "\n".join(lines) + "\n"


def without_per_sample(by_task: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The records as the samples file holds them: without ``per_sample``."""
    return {task: [{k: v for k, v in r.items() if k != "per_sample"} for r in records]
            for task, records in by_task.items()}


def errors_path_for(results_path: Path, task: str | None = None) -> Path:
    """``errors_<stamp>.jsonl`` beside ``results_<stamp>.json`` (``errors_<task>_<stamp>.jsonl`` in a run of
    several tasks)."""
    from .results import safe_name

    stamp = results_path.name[len("results_"):-len(".json")]
    return results_path.with_name(f"errors_{safe_name(task)}_{stamp}.jsonl" if task else f"errors_{stamp}.jsonl")


def write_error_files(results_path: Path, results: dict, by_task: dict[str, list[dict]]) -> list[Path]:
    """Write each task's errors file beside the just-claimed results file (its stamp makes the names free);
    the header comes from the results file."""
    from .storage import claim_new

    paths = []
    for task, records in by_task.items():
        m = results["results"][task]
        info = results["task"] if "task" in results else results["tasks"][task]
        header = {"task": task, "metric": m["metric"], "class_names": info.get("class_names"),
                  "breakdowns": sorted(m.get("by", {}))}
        path = errors_path_for(results_path, task if len(by_task) > 1 else None)
        if not claim_new(path, errors_text(records, header)):
            raise FileExistsError(f"{path} exists already; it belongs to another run")
        paths.append(path)
    return paths
