"""early_levers_mnist: MNIST early decision (budget 400) vs fixed N = 20, in CPU time, with lower minimum
sample counts.

The first 100 held-out digits of the task's class-interleaved order (10 per class), `mnist-unet`, \
`winoeval`'s runner (the scheduler packs
several digits per forward, batch 128), 1 torch thread, one process; each setting is one run over all
digits, the runs alternated in a rotating order over 2 rounds (CPU time, ``time.process_time``,
median). Accuracy and agreement are against fixed N = 20's predictions; agreement with the full
400-timestep protocol is not measured here (section ``scheduler``'s note says why).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from .common import WORK, log, md_table, pct

NAME = "early_levers_mnist"
TITLE = "MNIST early decision vs fixed N = 20 in CPU time: minimum sample count and chunk"
SETTINGS = [
    ("fixed N = 20", {"n_samples": (20,)}),
    ("early, budget 400 (default: min 10, chunk 5)", {"n_samples": (400,), "early_stop": True}),
    ("early, budget 400, min 5", {"n_samples": (400,), "early_stop": True, "min_samples": 5}),
    ("early, budget 400, min 6, chunk 2", {"n_samples": (400,), "early_stop": True, "min_samples": 6, "chunk": 2}),
]


def run(quick: bool = False) -> dict[str, Any]:
    import json
    import shutil
    from pathlib import Path

    import torch

    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    torch.set_num_threads(1)
    digits, rounds = (20, 1) if quick else (100, 2)
    work = WORK / "early_levers_mnist"
    shutil.rmtree(work, ignore_errors=True)
    cpu: dict[str, list[float]] = {label: [] for label, _ in SETTINGS}
    preds: dict[str, dict] = {}
    evals: dict[str, float] = {}
    acc: dict[str, float] = {}
    for r in range(rounds):
        order = SETTINGS[r % len(SETTINGS):] + SETTINGS[:r % len(SETTINGS)]
        for label, fields in order:
            out = work / f"r{r}-{SETTINGS.index((label, fields))}"
            log(f"early_levers_mnist: round {r}, {label}")
            c0 = time.process_time()
            res = evaluate(RunConfig("mnist-unet", "mnist", scorer_args=dict(fields, timesteps="even"), limit=digits,
                                     log_samples=True, output_path=str(out)), progress=False)
            cpu[label].append(time.process_time() - c0)
            metrics = next(iter(res.results["results"].values()))
            evals[label], acc[label] = metrics["evals_per_example"], metrics["accuracy"]
            rows = [json.loads(x) for x in Path(res.samples_path).read_text().splitlines() if x.strip()]
            preds[label] = {x["id"]: x["verdicts"]["prediction"] for x in rows}
            shutil.rmtree(out, ignore_errors=True)
    base = SETTINGS[0][0]
    table = [{"setting": label, "evals_per_image": evals[label], "accuracy": acc[label],
              "agreement_with_n20": sum(preds[label][i] == preds[base][i] for i in preds[base]) / len(preds[base]),
              "cpu_seconds": [round(c, 2) for c in cpu[label]],
              "cpu_ratio_vs_n20": statistics.median(cpu[label]) / statistics.median(cpu[base])}
             for label, _ in SETTINGS]
    return {"digits": digits, "rounds": rounds, "rows": table}


def render(res: dict[str, Any]) -> str:
    rows = [[r["setting"], f"{r['evals_per_image']:.0f}", pct(r["accuracy"]), pct(r["agreement_with_n20"]),
             ", ".join(f"{c:.1f}" for c in r["cpu_seconds"]), f"**{r['cpu_ratio_vs_n20']:.2f}×**"] for r in res["rows"]]
    return (__doc__.split("\n\n", 1)[1].strip() + f"\n\n{res['digits']} digits, {res['rounds']} rounds.\n\n"
            + md_table(["setting", "evals/image", "accuracy", "same prediction as N = 20", "CPU s per run",
                        "CPU time vs N = 20"], rows, align="lrrrrr"))
