"""mnist_protocols: accuracy against U-Net evaluations per image for every sampling protocol.

One full-protocol run of the shipped ``mnist-unet`` (every one of the T = 400 timesteps once, its own
ε per timestep, all 10 classes: 4,000 evaluations per digit, made by the ``early_decision``
benchmark and saved as ``mnist_full_errors_stride*.pt``) holds the per-sample errors of every
(digit, class, timestep). Each protocol below is a choice of which of those samples to average, so
its accuracy is read off exactly, without running the U-Net again:

* ``even N``: t = ⌊(k + ½)·400/N⌋, the official grid (the scorer's ``--timesteps even``);
* ``stratified N``: one t drawn in each of N equal bins (seeded per digit);
* ``uniform N``: N distinct t drawn uniformly (seeded per digit);
* ``prune a,b / k,1``: the paper's adaptive schedule: all classes on the first a samples of the
  scorer's N = b even plan (prefix order), keep the k best, finish them on all b;
* ``early decision``: the scorer's sequential paired stopping over the full plan's prefix order.

Seconds per image = evaluations × the full run's measured seconds per evaluation (same machine, same
batching). The headline N = 20 number on all 500 held-out digits comes from a real scorer run
(``benchmarks/results/mnist_heldout_n20_scorer.json``).

    python -m benchmarks --only mnist_protocols
"""

from __future__ import annotations

import json
from typing import Any

from .common import RESULTS, WORK, log, md_table, pct

NAME = "mnist_protocols"
TITLE = "MNIST: accuracy against U-Net evaluations per image"


def _full_errors():
    import torch

    files = sorted(WORK.glob("mnist_full_errors_stride*.pt"), key=lambda p: int(p.stem.rsplit("stride", 1)[1]))
    if not files:
        raise FileNotFoundError(f"no full-protocol errors in {WORK}: "
                                "run `python -m benchmarks --only early_decision` first")
    data = torch.load(files[0], weights_only=True)  # the smallest stride = the most digits
    return files[0], data


def protocols(T: int = 400) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for n in (20, 50, 100):
        for mode in ("even", "stratified", "uniform"):
            out.append((f"{mode} N={n}", "fixed", (mode, n)))
    out.append(("prune 10,50 / 3,1", "prune", ((10, 50), (3, 1))))
    out.append(("prune 20,100 / 3,1", "prune", ((20, 100), (3, 1))))
    out.append(("early decision (budget 400, even)", "early", (400, 0.99, 5, 10)))
    out.append(("early decision (budget 100, even)", "early", (100, 0.99, 5, 10)))
    return out


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    from winoeval.scoring import drop_confidently_worse, draw_timesteps, low_discrepancy_order

    path, data = _full_errors()
    E = data["errors"].double()  # (digits, 10, 400): column j holds timestep t_of_col[j]
    labels = torch.tensor(data["labels"])
    n_img, K, T = E.shape
    t_of_col = torch.tensor(low_discrepancy_order(T))  # the even N = T plan: every t, in prefix order
    col_of_t = torch.empty(T, dtype=torch.long)
    col_of_t[t_of_col] = torch.arange(T)
    full_pred = E.mean(-1).argmin(-1)

    def columns(mode: str, n: int, image: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1_000 + image)
        if mode == "uniform":
            return col_of_t[torch.randperm(T, generator=gen)[:n]]
        return col_of_t[draw_timesteps(n, T, mode, gen)]  # even or stratified, in prefix order

    seconds_per_eval = None
    ed = RESULTS / "early_decision.json"
    if ed.exists():
        full = json.loads(ed.read_text())["data"]["mnist"]["runs"]["full"]
        seconds_per_eval = full["seconds_per_image"] / full["evals_per_image"]

    rows = []
    for label, kind, arg in protocols(T):
        preds, evals = [], []
        for i in range(n_img):
            if kind == "fixed":
                cols = columns(*arg, image=i)
                preds.append(int(E[i][:, cols].mean(-1).argmin()))
                evals.append(K * len(cols))
            elif kind == "prune":
                (a, b), (keep, _) = arg
                cols = columns("even", b, i)
                first = E[i][:, cols[:a]].mean(-1)
                kept = torch.argsort(first, stable=True)[:keep]
                preds.append(int(kept[E[i][kept][:, cols].mean(-1).argmin()]))
                evals.append(K * a + keep * (b - a))
            else:
                budget, conf, chunk, min_samples = arg
                from statistics import NormalDist

                z = NormalDist().inv_cdf(1 - (1 - conf) / 2)
                cols = columns("even", budget, i)
                alive, done, used = list(range(K)), 0, 0
                while done < budget and len(alive) > 1:
                    stop = min(budget, max(done + chunk, min_samples))
                    used += len(alive) * (stop - done)
                    done = stop
                    alive = drop_confidently_worse(E[i][:, cols[:done]], alive, z)
                means = E[i][alive][:, cols[:done]].mean(-1)
                preds.append(alive[int(means.argmin())])
                evals.append(used)
        preds_t = torch.tensor(preds)
        mean_evals = sum(evals) / n_img
        rows.append({
            "protocol": label, "accuracy": float((preds_t == labels).double().mean()),
            "agreement_with_full": float((preds_t == full_pred).double().mean()),
            "evals_per_image": mean_evals,
            "seconds_per_image": mean_evals * seconds_per_eval if seconds_per_eval else None,
        })
        log(f"{NAME}: {label}: {rows[-1]['accuracy']:.3f} at {mean_evals:.0f} evals")
    rows.append({"protocol": "full (all 400 t)", "accuracy": float((full_pred == labels).double().mean()),
                 "agreement_with_full": 1.0, "evals_per_image": float(K * T),
                 "seconds_per_image": K * T * seconds_per_eval if seconds_per_eval else None})
    headline = None
    real = RESULTS / "mnist_heldout_n20_scorer.json"
    if real.exists():
        r = json.loads(real.read_text())
        headline = {"accuracy": r["accuracy"], "images": r["images"], "seconds_per_image": r["seconds"] / r["images"]}
    return {"digits": n_img, "source": str(path.name), "seconds_per_eval": seconds_per_eval, "rows": rows,
            "headline_n20_all_500": headline}


def markdown(result: dict[str, Any]) -> str:
    m = result["data"]
    lines = [f"{m['digits']} held-out digits (10 per class), the shipped checkpoint; accuracy read off one "
             "full-protocol run (see the module docstring). The anchor (a public implementation, 60k training "
             "digits): 98.27 / 98.98 / 99.23 % at N = 20 / 50 / 100.", ""]
    if m.get("headline_n20_all_500"):
        h = m["headline_n20_all_500"]
        lines += [f"Real scorer run, all {h['images']} held-out digits, even N = 20: **{pct(h['accuracy'])}** "
                  f"({h['seconds_per_image']:.2f} s per image on the shared 2-core machine).", ""]
    table = [[r["protocol"], pct(r["accuracy"]), pct(r["agreement_with_full"]), f"{r['evals_per_image']:.0f}",
              "—" if r["seconds_per_image"] is None else f"{r['seconds_per_image']:.2f}"] for r in m["rows"]]
    lines.append(md_table(["protocol", "accuracy %", "agrees with full %", "U-Net evals / image", "s / image"], table))
    return "\n".join(lines)
