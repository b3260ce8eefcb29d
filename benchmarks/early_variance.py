"""Early decision when errors depend on t: the stratified standard error vs the old i.i.d. one.

The early-decision rule drops a candidate once its mean paired difference to the best, minus z
standard errors, is above 0. The samples are a stratified design over t (prefix order of the
timestep grid), so the default rule (``variance="stratified"``) estimates the variance from
successive differences along t; ``variance="iid"`` is the old rule (sample variance). Compared on:

- MNIST (`mnist-unet`, held-out digits): the full 400-timestep protocol's per-sample errors are
  computed once (resumable, kept in the work folder), both rules are replayed over them (a sweep),
  and the real scorer is checked against the replay on the first digits;
- the ideal point-mass denoiser (`winoeval.testing.point_mass`, error = ᾱ_t/(1−ᾱ_t)·‖x−μ_c‖²/D
  exactly), where every paired difference has one sign but spans eight orders of magnitude over t;
- the analytic toy Winoground (normalised 2×2 examples).
"""

from __future__ import annotations

import os
import time
from typing import Any

from .common import WORK, file_sha256, log, md_table, pct, quiet_libraries

NAME = "early_variance"
TITLE = "Early decision with t-dependent errors: stratified vs i.i.d. standard error"
BUDGET = 400


def full_errors(digits: int) -> dict[str, Any]:
    """(digits, 10, 400) per-sample errors of the full protocol, computed once and resumed."""
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.scoring import DiffusionScorer

    from .early_decision import held_out_sample

    sample, stride = held_out_sample(False, digits)
    path = WORK / f"mnist_full_errors_stride{stride}.pt"
    saved = (torch.load(path, weights_only=True) if path.exists()
             else {"ids": [], "labels": [], "errors": torch.empty(0, 10, BUDGET)})
    have = len(saved["ids"])
    if have < len(sample) and not os.environ.get("WINOEVAL_BENCH_SAVED_ONLY"):  # =1: use the digits already computed
        torch.set_grad_enabled(False)
        scorer = DiffusionScorer(MnistDenoiser(device="cpu"), ScorerConfig(n_samples=(BUDGET,), timesteps="even"))
        E = list(saved["errors"])
        started = time.time()
        for n, (eid, image, label) in enumerate(sample[have:], start=have):
            res = scorer.score(eid, [image], [str(d) for d in range(10)])
            E.append(res.sample_errors[0].float().clone())
            saved["ids"].append(eid)
            saved["labels"].append(label)
            saved["t"] = res.t
            saved["errors"] = torch.stack(E)
            WORK.mkdir(parents=True, exist_ok=True)
            torch.save(saved, path)
            log(f"early_variance: full protocol {n + 1}/{len(sample)} digits ({time.time() - started:.0f} s)")
    saved["stride"] = stride
    saved["n"] = min(len(saved["ids"]), len(sample))
    return saved


def mnist_part(digits: int, check: int) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import WEIGHTS, MnistDenoiser
    from winoeval.scoring import DiffusionScorer

    from .early_decision import held_out_sample, simulate

    data = full_errors(digits)
    n = data["n"]
    E, t, labels = data["errors"][:n], data["t"], data["labels"][:n]
    full_pred = [int(E[i].mean(dim=1).argmin()) for i in range(n)]

    def sim_row(variance, conf, chunk, min_samples, growth=0.0):
        res = [simulate(E[i], conf, chunk, min_samples, growth=growth, t=t, variance=variance) for i in range(n)]
        return {"variance": variance, "confidence": conf, "chunk": chunk, "min_samples": min_samples, "growth": growth,
                "agreement": sum(p == f for (p, _, _), f in zip(res, full_pred)) / n,
                "accuracy": sum(p == y for (p, _, _), y in zip(res, labels)) / n,
                "evals_per_image": sum(e for _, e, _ in res) / n,
                "fraction_of_full": sum(e for _, e, _ in res) / n / (10 * BUDGET),
                "max_evals": max(e for _, e, _ in res),
                "disagreements": [data["ids"][i] for i, ((p, _, _), f) in enumerate(zip(res, full_pred)) if p != f]}

    sweep = []
    for variance in ("iid", "stratified"):
        sweep += [sim_row(variance, c, 5, 10) for c in (0.9, 0.95, 0.99, 0.995, 0.999)]
    sweep += [sim_row("stratified", 0.99, ch, m) for ch, m in ((1, 10), (10, 10), (5, 5), (5, 20))]
    sweep += [sim_row(v, 0.95, ch, m) for v in ("iid", "stratified") for ch, m in ((5, 5), (2, 6))]
    sweep += [sim_row("stratified", 0.99, 5, 10, growth=g) for g in (0.25, 0.5)]
    fixed = []
    for N in (10, 20, 50, 100, 200, 400):
        preds = [int(E[i, :, :N].mean(dim=1).argmin()) for i in range(n)]
        fixed.append({"n_samples": N, "evals_per_image": 10 * N, "fraction_of_full": N / BUDGET,
                      "agreement": sum(p == f for p, f in zip(preds, full_pred)) / n,
                      "accuracy": sum(p == y for p, y in zip(preds, labels)) / n})

    # the real scorer against the replay, first `check` digits, both rules
    torch.set_grad_enabled(False)
    model = MnistDenoiser(device="cpu")
    sample, _ = held_out_sample(False, digits)
    real = {}
    for variance in ("stratified", "iid"):
        scorer = DiffusionScorer(model, ScorerConfig(n_samples=(BUDGET,), timesteps="even", early_stop=True,
                                                     variance=variance))
        same_pred = same_evals = 0
        for i, (eid, image, _) in enumerate(sample[:min(check, n)]):
            assert eid == data["ids"][i]
            res = scorer.score(eid, [image], [str(d) for d in range(10)])
            p, e, _ = simulate(E[i], 0.99, 5, 10, t=t, variance=variance)
            same_pred += int(res.scores[0].argmax()) == p
            same_evals += res.n_evals == e
        real[variance] = {"same_prediction": same_pred, "same_evals": same_evals, "of": min(check, n)}
    return {"digits": n, "stride": data["stride"], "checkpoint_sha256": file_sha256(WEIGHTS)[:16],
            "sweep": sweep, "fixed_prefix": fixed, "real_check": real}


def point_mass_part() -> list[dict[str, Any]]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer
    from winoeval.testing.point_mass import PointMassDenoiser

    g = torch.Generator().manual_seed(0)
    rows = []
    examples = []
    for e in range(20):  # random means and images: ‖x−μ‖²/D differs per candidate and example
        mu = {"a": torch.randn(1, 8, 8, generator=g), "b": torch.randn(1, 8, 8, generator=g)}
        x = mu["a"] + 0.8 * torch.randn(1, 8, 8, generator=g)
        examples.append((f"pm{e}", x, mu))
    for N in (100, 1000):
        for timesteps in ("even", "stratified"):
            for variance in ("iid", "stratified"):
                used, agree = [], 0
                for eid, x, mu in examples:
                    model = PointMassDenoiser(mu)
                    cfg = ScorerConfig(n_samples=(N,), timesteps=timesteps, early_stop=True, variance=variance)
                    res = DiffusionScorer(model, cfg).score(eid, [x], ["a", "b"])
                    full = DiffusionScorer(model, ScorerConfig(n_samples=(N,), timesteps=timesteps)).score(
                        eid, [x], ["a", "b"])
                    agree += int(res.scores[0].argmax()) == int(full.scores[0].argmax())
                    used.append(int(res.n_used[0].max()))
                rows.append({"budget": N, "timesteps": timesteps, "variance": variance,
                             "mean_samples": sum(used) / len(used), "max_samples": max(used),
                             "fraction": sum(used) / len(used) / N, "agreement": agree / len(examples),
                             "examples": len(examples)})
    return rows


def winoground_part() -> list[dict[str, Any]]:
    from .early_decision import _run_task, _wino_comparisons

    out = []
    full, t_full = _run_task("analytic", "toy-winoground", {"n_samples": (1000,)})
    for variance in ("iid", "stratified"):
        early, t_early = _run_task("analytic", "toy-winoground", {"n_samples": (1000,), "early_stop": True,
                                                                 "variance": variance})
        m = len(full)
        comps_f = [c for r in full for c in _wino_comparisons(r["scores"])]
        comps_e = [c for r in early for c in _wino_comparisons(r["scores"])]
        out.append({"variance": variance, "examples": m,
                    "verdict_agreement": sum(f["verdicts"] == e["verdicts"] for f, e in zip(full, early)) / m,
                    "comparison_agreement": sum(a == b for a, b in zip(comps_f, comps_e)) / len(comps_f),
                    "evals_full": sum(r["n_evals"] for r in full) / m,
                    "evals_early": sum(r["n_evals"] for r in early) / m})
    return out


def run(quick: bool = False, digits: int | None = None) -> dict[str, Any]:
    quiet_libraries()
    digits = digits or (20 if quick else 100)
    mnist = mnist_part(digits, check=5 if quick else 10)
    pm = point_mass_part()
    wino = winoground_part()
    best = next(s for s in mnist["sweep"] if s["variance"] == "stratified" and s["confidence"] == 0.99
                and s["chunk"] == 5 and s["min_samples"] == 10 and not s["growth"])
    pm1000 = next(r for r in pm if r["budget"] == 1000 and r["timesteps"] == "even" and r["variance"] == "stratified")
    targets = [
        {"name": "stratified early decision: agreement with the full protocol (MNIST)", "target": ">= 99 %",
         "measured": f"{pct(best['agreement'])} ({mnist['digits']} digits)", "met": best["agreement"] >= 0.99},
        {"name": "stratified early decision: evaluations vs the full protocol (MNIST)", "target": "<= 5 %",
         "measured": pct(best["fraction_of_full"], 2), "met": best["fraction_of_full"] <= 0.05},
        {"name": "point-mass denoiser, N = 1000 even: samples used, verdicts = full budget",
         "target": "well under half, 100 %",
         "measured": f"{pct(pm1000['fraction'], 1)}, {pct(pm1000['agreement'])}",
         "met": pm1000["fraction"] < 0.4 and pm1000["agreement"] == 1.0},
    ]
    return {"mnist": mnist, "point_mass": pm, "winoground": wino, "targets": targets}


def render(res: dict[str, Any]) -> str:
    m = res["mnist"]
    lines = [f"MNIST, `mnist-unet` (checkpoint sha256 `{m['checkpoint_sha256']}`), {m['digits']} held-out digits "
             f"(every {m['stride']}th). Reference: the full protocol (400 even timesteps × 10 classes = 4,000 "
             "evaluations per digit); both rules replayed over its per-sample errors (`benchmarks.early_decision."
             "simulate`), budget 400, even timesteps. (The `early_decision` section's runs predate the "
             "stratified default: its `early_stop=True` rows used what is now `variance=\"iid\"`.)", ""]
    rows = [[s["variance"], s["confidence"], s["chunk"] if not s["growth"] else f"max(5, ⌈{s['growth']}·n⌉)",
             s["min_samples"], pct(s["agreement"]), pct(s["accuracy"]), f"{s['evals_per_image']:.0f}",
             pct(s["fraction_of_full"], 2), s["max_evals"]] for s in m["sweep"]]
    lines.append(md_table(["variance", "confidence", "chunk", "min samples", "agreement", "accuracy", "evals/image",
                           "of full", "max evals"], rows))
    dis = [f"{s['variance']} {s['confidence']} chunk {s['chunk']}/{s['min_samples']}: {', '.join(s['disagreements'])}"
           for s in m["sweep"] if s["disagreements"]]
    if dis:
        lines += ["", "Disagreements with the full protocol: " + "; ".join(dis) + "."]
    rc = m["real_check"]
    lines += ["", "Real scorer vs the replay (first digits, default chunk 5 / min 10 / 0.99): " + "; ".join(
        f"{v}: same prediction {c['same_prediction']}/{c['of']}, same evaluations {c['same_evals']}/{c['of']}"
        for v, c in rc.items()) + ".", "", "Fixed budgets (first N samples of the same runs):", ""]
    lines.append(md_table(["N", "evals/image", "of full", "agreement", "accuracy"],
                          [[f["n_samples"], f["evals_per_image"], pct(f["fraction_of_full"], 1), pct(f["agreement"]),
                            pct(f["accuracy"])] for f in m["fixed_prefix"]]))
    pm = res["point_mass"]
    lines += ["", f"Point-mass denoiser (`winoeval.testing.point_mass`, closed form ᾱ_t/(1−ᾱ_t)·‖x−μ_c‖²/D; "
                  f"{pm[0]['examples']} random 1×8×8 examples, 2 candidates; agreement with the same budget run "
                  f"in full):", ""]
    lines.append(md_table(["budget N", "timesteps", "variance", "samples used (mean)", "max", "of budget", "agreement"],
                          [[r["budget"], r["timesteps"], r["variance"], f"{r['mean_samples']:.0f}", r["max_samples"],
                            pct(r["fraction"], 1), pct(r["agreement"])] for r in pm]))
    lines += ["", "Analytic toy Winoground (normalised 2×2, budget 1000):", ""]
    lines.append(md_table(["variance", "examples", "verdict agreement", "comparison agreement",
                           "evals full", "evals early",
                           "fraction"],
                          [[w["variance"], w["examples"], pct(w["verdict_agreement"]), pct(w["comparison_agreement"]),
                            f"{w['evals_full']:.0f}", f"{w['evals_early']:.0f}",
                            pct(w["evals_early"] / w["evals_full"], 1)]
                           for w in res["winoground"]]))
    return "\n".join(lines)
