"""The per-timestep errors of ``--log-errors``: how the scorer encodes them into a record and how the runner
writes ``errors_<stamp>.jsonl``. The format and what reads it: :mod:`winoeval.rescore`. Nothing here imports
the runner (the runner and the scorer import this module).
"""

from __future__ import annotations

import base64
import json
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
    from .objectives import snr

    I, K, N = errs.shape
    uncond = result.uncond_errors if result.uncond_errors is not None else torch.full((I, N), float("nan"))
    full = torch.cat([errs, uncond.view(I, 1, N).to(errs.dtype)], dim=1)
    return {"n": N, "images": I, "texts": K, "normalized": result.uncond_errors is not None,
            "objective": scorer.objective, "t": _b64(t.numpy().astype("<i4")),
            "snr": _b64(snr(scorer.objective, scorer.grid, t).numpy().astype("<f8")),
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


def error_files(results: dict, by_task: dict[str, list[dict]]) -> dict[tuple[str, str], str]:
    """The errors files' texts of a finished run, keyed ("errors", task): header from the results file."""
    out = {}
    for task, records in by_task.items():
        m = results["results"][task]
        info = results["task"] if "task" in results else results["tasks"][task]
        header = {"task": task, "metric": m["metric"], "class_names": info.get("class_names"),
                  "breakdowns": sorted(m.get("by", {}))}
        out[("errors", task)] = errors_text(records, header)
    return out


