"""mnist_heldout: the shipped ``mnist-unet`` on all 500 held-out digits, one real run per protocol.

Each protocol is a plain ``winoeval run --model mnist-unet --task mnist`` with its scorer options,
through :func:`winoeval.runner.evaluate` (resumable: the runs cache in ``WORK/mnist_heldout/``, so an
interrupted benchmark continues where it stopped). Seconds per image are wall time over the digits a
run computed (a resumed run's reused digits do not count), on whatever this machine was doing.

    python -m benchmarks --only mnist_heldout            # all protocols (~1 h on 2 free cores)
    python -m benchmarks --only mnist_heldout --quick    # N = 20 and the fast protocols only
"""

from __future__ import annotations

import time
from typing import Any

from .common import WORK, log, md_table, pct

NAME = "mnist_heldout"
TITLE = "MNIST held-out digits: accuracy, evaluations and time per protocol"

PROTOCOLS: list[tuple[str, dict[str, Any]]] = [
    ("even N=20", {"n_samples": (20,), "timesteps": "even"}),
    ("early decision, budget 400 (even)", {"n_samples": (400,), "timesteps": "even", "early_stop": True}),
    ("prune 10,50 / keep 3,1 (even)", {"n_samples": (10, 50), "to_keep": (3, 1), "timesteps": "even"}),
    ("stratified N=20", {"n_samples": (20,), "timesteps": "stratified"}),
    ("uniform N=20", {"n_samples": (20,), "timesteps": "uniform"}),
    ("even N=50", {"n_samples": (50,), "timesteps": "even"}),
    ("even N=100", {"n_samples": (100,), "timesteps": "even"}),
    ("stratified N=50", {"n_samples": (50,), "timesteps": "stratified"}),
    ("uniform N=50", {"n_samples": (50,), "timesteps": "uniform"}),
    ("stratified N=100", {"n_samples": (100,), "timesteps": "stratified"}),
    ("uniform N=100", {"n_samples": (100,), "timesteps": "uniform"}),
]
QUICK = 5


def run(quick: bool = False, budget_seconds: float | None = None) -> dict[str, Any]:
    """Protocols in order; with ``budget_seconds`` (env WINOEVAL_BENCH_BUDGET) stop starting new ones
    once it is spent. Wall time per computed digit is kept in ``timings.json`` beside the cache, so a
    resumed benchmark still reports the time of digits computed earlier."""
    import json
    import os

    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    budget_seconds = budget_seconds or float(os.environ.get("WINOEVAL_BENCH_BUDGET", "inf"))
    out_dir = WORK / "mnist_heldout"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    suite_start = time.perf_counter()
    rows = []
    for label, scorer_args in PROTOCOLS[:QUICK] if quick else PROTOCOLS:
        if time.perf_counter() - suite_start > budget_seconds:
            log(f"{NAME}: budget spent, not starting {label!r}")
            break
        started = time.perf_counter()
        out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args=dict(scorer_args), output_path=str(out_dir)),
                       progress=False, write=False)
        t = timings.setdefault(label, {"seconds": 0.0, "computed": 0})
        t["seconds"] += time.perf_counter() - started
        t["computed"] += out.computed
        timings_path.write_text(json.dumps(timings, indent=1))
        m = out.results["results"]["mnist"]
        rows.append({"protocol": label, "scorer_args": {k: list(v) if isinstance(v, tuple) else v
                                                        for k, v in scorer_args.items()},
                     "accuracy": m["accuracy"], "ci95": m["accuracy_ci95"], "n": m["n"],
                     "evals_per_image": m["evals_per_example"], "computed": t["computed"],
                     "seconds_per_image": t["seconds"] / t["computed"] if t["computed"] else None,
                     "wrong": [r["id"] for r in out.records if not r["verdicts"]["correct"]]})
        log(f"{NAME}: {label}: {pct(m['accuracy'])} at {m['evals_per_example']:.0f} evals/image")
    return {"rows": rows}


def markdown(result: dict[str, Any]) -> str:
    rows = result["data"]["rows"]
    table = [[r["protocol"], f"{pct(r['accuracy'])} [{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]",
              f"{r['evals_per_image']:.0f}", "—" if r["seconds_per_image"] is None else f"{r['seconds_per_image']:.2f}"]
             for r in rows]
    return "\n".join([
        f"All {rows[0]['n'] if rows else 500} held-out digits, the shipped checkpoint, "
        "`winoeval run --model mnist-unet "
        "--task mnist` with the options of each row. Anchor (a public implementation trained on 60k digits): "
        "98.27 / 98.98 / 99.23 % at N = 20 / 50 / 100. Seconds per image on the shared 2-core machine, other jobs "
        "running.", "",
        md_table(["protocol", "accuracy (95 % CI)", "U-Net evals / image", "s / image"], table)])
