"""early_levers: what lowering early decision's minimum sample count does on winodigits-sd.

The first 100 WinoDigits test examples, `winodigits-sd`, budget N = 100 even timesteps, normalised
scores (the task default) — the setting of section ``winodigits``'s early-decision row. The full
budget is the reference; each early-decision setting is compared with it on the per-example
text/image/group verdicts, and on U-Net evaluations per example. Settings are ``ScorerConfig``
fields (``min_samples``, ``confidence``, ``chunk``), passed through ``RunConfig.scorer_args``; nothing else changes.
"""

from __future__ import annotations

import time
from typing import Any

from .common import WORK, log, md_table, pct

NAME = "early_levers"
TITLE = "Early decision levers on winodigits-sd: minimum sample count and confidence"
SETTINGS = [  # (label, scorer fields)
    ("default (min 10, confidence 0.99)", {}),
    ("min 5, confidence 0.99", {"min_samples": 5}),
    ("min 5, confidence 0.995", {"min_samples": 5, "confidence": 0.995}),
    ("min 6, chunk 2, confidence 0.99", {"min_samples": 6, "chunk": 2}),
]


def run(quick: bool = False) -> dict[str, Any]:
    import shutil

    import torch

    from .winodigits import _evaluate, _samples

    torch.set_num_threads(1)
    limit, n = (20, 40) if quick else (100, 100)
    work = WORK / "early_levers"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.process_time()
    full, _ = _evaluate("winodigits-sd", limit, work / "full", n_samples=(n,), timesteps="even")
    full_cpu = time.process_time() - t0
    ref = _samples(full)
    per = lambda res: next(iter(res.results["results"].values()))["evals_per_example"]  # noqa: E731
    rows = []
    for label, fields in SETTINGS:
        log(f"early_levers: {label}")
        c0 = time.process_time()
        res, _ = _evaluate("winodigits-sd", limit, work / f"early{len(rows)}",
                           n_samples=(n,), timesteps="even", early_stop=True, **fields)
        cpu = time.process_time() - c0
        got = _samples(res)
        agree = {k: sum(ref[i]["verdicts"][k] == got[i]["verdicts"][k] for i in ref) / len(ref)
                 for k in ("text", "image", "group")}
        rows.append({"setting": label, "fields": fields, "agreement": agree, "evals_per_example": per(res),
                     "fraction": per(res) / per(full), "cpu_seconds": round(cpu, 1),
                     "changed": sorted(i for i in ref if ref[i]["verdicts"] != got[i]["verdicts"])})
    return {"examples": limit, "budget": n, "evals_full": per(full), "cpu_seconds_full": round(full_cpu, 1),
            "rows": rows}


def render(res: dict[str, Any]) -> str:
    rows = [[r["setting"], f"{r['evals_per_example']:.0f}", pct(r["fraction"]),
             " / ".join(pct(r["agreement"][k], 0) for k in ("text", "image", "group")),
             ", ".join(r["changed"]) or "—", r["cpu_seconds"]] for r in res["rows"]]
    return (__doc__.split("\n\n", 1)[1].strip()
            + f"\n\nFull budget: {res['evals_full']:.0f} evaluations per example "
              f"({res['cpu_seconds_full']} s of CPU for "
              f"{res['examples']} examples, 1 thread).\n\n"
            + md_table(["early decision", "evals/example", "of full", "agreement text / image / group",
                        "examples whose verdicts changed", "CPU s"], rows, align="lrrrlr"))
