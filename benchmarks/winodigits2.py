"""WinoDigits 2: every trained seed and every shortcut oracle on the ``winodigits2`` test set.

    python -m benchmarks.winodigits2 [--runs runs/v2] [--limit 400] [--n-samples 10] [--out DIR]

Reads the runs of ``benchmarks/winodigits2_train.sh`` (``RUNS/clip-sK/model``, ``RUNS/sd-frozen-sK/pipeline``,
``RUNS/sd-joint-sK/pipeline``), scores each with :func:`winoeval.runner.evaluate` on the first ``--limit``
test examples (generator seed 0; a multiple of 16 keeps every tag × split balanced), diffusion models at
N = ``--n-samples`` even timesteps (normalised image score, the task default), and the oracles
(``winodigits-oracle:RULE``) on the same examples. Writes ``winodigits2.json`` (per model, per seed, per tag ×
split: text / image / group with Wilson 95 % intervals; per recipe the mean and min–max over seeds; McNemar
between each SD recipe and CLIP per seed on the group verdicts) and ``winodigits2.png`` (per-tag group score:
models as mean with the seeds' range, oracles, chance line) into ``--out`` (default benchmarks/results).
Nothing is selected on these test items: each run's last checkpoint is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORACLES = ("perfect", "digit-blind", "colour-blind", "bag-of-words", "axis-only", "digit-blind+bag-of-words")
RECIPES = {"clip": "openclip:{run}/model", "sd-frozen": "sd:{run}/pipeline", "sd-joint": "sd:{run}/pipeline"}
METRICS = ("text", "image", "group")
CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}


def _evaluate(model: str, limit: int, out: Path, n_samples: int):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    t0 = time.time()
    res = evaluate(RunConfig(model, "winodigits2", scorer_args={"n_samples": (n_samples,), "timesteps": "even"},
                             limit=limit, log_samples=True, output_path=str(out)), progress=False)
    rows = [json.loads(line) for line in Path(res.samples_path).read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}, time.time() - t0, res.results_path


def _cells(rows: dict[str, dict]) -> dict[str, dict]:
    """{tag | tag/split | split | binding | all: {metric: {k, n, rate, ci95}}}."""
    from winoeval.metrics import wilson_interval
    from winoeval.tasks.winodigits import BINDING_TAGS, TAGS2

    keys: dict[str, list[dict]] = {}
    for r in rows.values():
        tag, split = r["meta"]["collapsed_tag"], r["meta"]["split"]
        for key in (tag, f"{tag}/{split}", split, "all", *(["binding", f"binding/{split}"] if tag in BINDING_TAGS
                                                           else [])):
            keys.setdefault(key, []).append(r)
    order = [*TAGS2, *[f"{t}/{s}" for t in TAGS2 for s in ("seen", "unseen")], "binding", "binding/seen",
             "binding/unseen", "seen", "unseen", "all"]
    out = {}
    for key in order:
        sel = keys.get(key, [])
        if not sel:
            continue
        out[key] = {}
        for m in METRICS:
            k = sum(bool(r["verdicts"][m]) for r in sel)
            out[key][m] = {"k": k, "n": len(sel), "rate": k / len(sel), "ci95": list(wilson_interval(k, len(sel)))}
    return out


def _mcnemar(a: dict[str, dict], b: dict[str, dict], ids: list[str]) -> dict:
    from winoeval.comparison import mcnemar_exact

    a_only = sum(bool(a[i]["verdicts"]["group"]) and not b[i]["verdicts"]["group"] for i in ids)
    b_only = sum(bool(b[i]["verdicts"]["group"]) and not a[i]["verdicts"]["group"] for i in ids)
    return {"a_only": a_only, "b_only": b_only, "p": mcnemar_exact(a_only, b_only), "n": len(ids)}


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from winoeval.tasks.winodigits import TAGS2

    rows = [(name, s) for name, s in summary["recipes"].items()]
    oracles = [(f"oracle:{o}", summary["oracles"][o]["cells"]) for o in ORACLES if o in summary["oracles"]]
    n = len(rows) + len(oracles)
    width = 0.8 / n
    x = np.arange(len(TAGS2))
    fig, ax = plt.subplots(figsize=(12, 4.8))
    colours = plt.get_cmap("tab10")
    for j, (name, s) in enumerate(rows):
        mean = [100 * s["mean"][t]["group"] for t in TAGS2]
        lo = [100 * (s["mean"][t]["group"] - s["min"][t]["group"]) for t in TAGS2]
        hi = [100 * (s["max"][t]["group"] - s["mean"][t]["group"]) for t in TAGS2]
        ax.bar(x - 0.4 + (j + 0.5) * width, mean, width, yerr=[lo, hi], capsize=2, color=colours(j),
               label=f"{name} (mean of {s['seeds']} seeds, bar = range)")
    greys = ["#222222", "#555555", "#777777", "#999999", "#bbbbbb", "#dddddd"]
    for j, (name, cells) in enumerate(oracles):
        k = len(rows) + j
        vals = [100 * cells[t]["group"]["rate"] for t in TAGS2]
        ax.bar(x - 0.4 + (k + 0.5) * width, vals, width, color=greys[j % len(greys)], hatch="//", edgecolor="white",
               label=name)
    ax.axhline(100 / 6, color="red", linestyle="--", linewidth=1, label="chance (group 16.7 %)")
    ax.axvspan(3.5, 7.5, color="#f3f3ff", zorder=-1)
    ax.text(5.5, 103, "binding tags (new in v2)", ha="center", fontsize=9)
    ax.set_xticks(x, TAGS2)
    ax.set_ylim(0, 110)
    ax.set_ylabel("group score (%)")
    ax.set_title(f"WinoDigits 2 test set (first {summary['limit']} examples), group score per tag; "
                 f"diffusion N = {summary['n_samples']}")
    ax.legend(fontsize=7, ncol=2, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/v2")
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--n-samples", type=int, default=10)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--work", default="runs/v2-eval", help="resumable evaluation caches")
    p.add_argument("--only", default=None, help="comma list of recipes/oracles to score (others are read if cached)")
    args = p.parse_args(argv)
    if args.limit % 16:
        raise SystemExit("--limit must be a multiple of 16 (8 tags x seen/unseen) so every cell is balanced")
    import torch

    torch.set_num_threads(int(os.environ.get("WINOEVAL_THREADS", "1")))
    runs, work, out = Path(args.runs), Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"limit": args.limit, "n_samples": args.n_samples, "runs": str(runs), "recipes": {},
                     "per_seed": {}, "oracles": {}, "mcnemar": {}, "seconds": {}}
    samples: dict[str, dict] = {}
    for oracle in ORACLES:
        rows, sec, _ = _evaluate(f"winodigits-oracle:{oracle}", args.limit, work / f"oracle-{oracle}", args.n_samples)
        summary["oracles"][oracle] = {"cells": _cells(rows)}
    for recipe, spec in RECIPES.items():
        for run in sorted(runs.glob(f"{recipe}-s*")):
            done = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").exists() else {}
            hp = done.get("hyperparameters", {})
            if done.get("epochs_done") != hp.get("epochs"):
                print(f"skipping {run}: not finished ({done.get('epochs_done')}/{hp.get('epochs')} epochs)",
                      file=sys.stderr)
                continue
            name = run.name
            rows, sec, results_path = _evaluate(spec.format(run=run), args.limit, work / name, args.n_samples)
            samples[name] = rows
            summary["per_seed"][name] = {"recipe": recipe, "cells": _cells(rows), "results": str(results_path),
                                         "train_seconds": done.get("train_seconds"),
                                         "validation": (done.get("history") or [{}])[-1].get("heldout"),
                                         "samples_seen": hp.get("epochs", 0) * hp.get("steps_per_epoch", 0)
                                         * hp.get("batch_size", 0)}
            summary["seconds"][name] = round(sec, 1)
            print(f"{name}: " + " ".join(f"{t}={100 * c['group']['rate']:.0f}" for t, c in
                                         summary["per_seed"][name]["cells"].items() if "/" not in t), file=sys.stderr)
    for recipe in RECIPES:
        seeds = [s for s in summary["per_seed"].values() if s["recipe"] == recipe]
        if not seeds:
            continue
        keys = seeds[0]["cells"].keys()
        agg = {"seeds": len(seeds), "mean": {}, "min": {}, "max": {}}
        for key in keys:
            for stat, fn in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
                agg[stat][key] = {m: fn([s["cells"][key][m]["rate"] for s in seeds]) for m in METRICS}
        summary["recipes"][recipe] = agg
    from winoeval.tasks.winodigits import BINDING_TAGS

    for name, rows in samples.items():
        if name.startswith("sd-"):
            clip = f"clip-{name.split('-')[-1]}"
            if clip in samples:
                ids = sorted(rows)
                binding = [i for i in ids if rows[i]["meta"]["collapsed_tag"] in BINDING_TAGS]
                summary["mcnemar"][f"{name} vs {clip}"] = {"all": _mcnemar(rows, samples[clip], ids),
                                                            "binding": _mcnemar(rows, samples[clip], binding)}
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary["provenance"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git": git,
                             "threads": torch.get_num_threads(), "machine": platform.machine(),
                             "load": os.getloadavg(), "command": "python -m benchmarks.winodigits2 " + " ".join(
                                 argv if argv is not None else sys.argv[1:])}
    (out / "winodigits2.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot(summary, out / "winodigits2.png")
    print(f"wrote {out / 'winodigits2.json'} and {out / 'winodigits2.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
