"""WinoDigits 2: every trained seed and every shortcut oracle on the ``winodigits2`` test set.

    bash benchmarks/winodigits2_train.sh runs/v2          # the 9 training runs (3 recipes x 3 seeds) + VAE
    python -m benchmarks --only winodigits2               # this evaluation -> results/winodigits2.json, BENCHMARKS.md
    WINODIGITS2_RUNS=runs/v2 WINODIGITS2_LIMIT=400 WINODIGITS2_N=10 python -m benchmarks --only winodigits2

Reads the runs of ``benchmarks/winodigits2_train.sh`` (``RUNS/clip-sK/model``, ``RUNS/sd-frozen-sK/pipeline``,
``RUNS/sd-joint-sK/pipeline``), scores each with :func:`winoeval.runner.evaluate` on the first ``--limit``
test examples (generator seed 0; a multiple of 16 keeps every tag × split balanced), diffusion models at
N = ``--n-samples`` even timesteps (normalised image score, the task default), and the oracles
(``winodigits-oracle:RULE``) on the same examples. Writes ``winodigits2.json`` (per model, per seed, per tag ×
split: text / image / group with Wilson 95 % intervals; per recipe the mean and min–max over seeds; McNemar
between each SD recipe and CLIP per seed on the group verdicts) and ``winodigits2.png`` (per-tag group score:
models as mean with the seeds' range, oracles, chance line) into benchmarks/results.
Nothing is selected on these test items: each run's last checkpoint is used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "winodigits2"
TITLE = "WinoDigits 2: binding tags, seen/unseen pairings, 3 seeds per recipe, shortcut oracles"
ORACLES = ("perfect", "digit-blind", "colour-blind", "bag-of-words", "axis-only", "digit-blind+bag-of-words")
RECIPES = {"clip": "openclip:{run}/model", "sd-frozen": "sd:{run}/pipeline", "sd-joint": "sd:{run}/pipeline"}
METRICS = ("text", "image", "group")
SHIPPED = ("winodigits-clip", "winodigits-sd")
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
    extras = [(f"{k} ({v['samples_seen']:,} images, 1 seed)", v["cells"])
              for k, v in (summary.get("extra") or {}).items()]
    extras += [(f"shipped v1 {k}", v["cells"]) for k, v in (summary.get("shipped") or {}).items()]
    n = len(rows) + len(extras) + len(oracles)
    width = 0.8 / n
    x = np.arange(len(TAGS2))
    fig, ax = plt.subplots(figsize=(12, 6))
    colours = plt.get_cmap("tab10")
    for j, (name, s) in enumerate(rows):
        mean = [100 * s["mean"][t]["group"] for t in TAGS2]
        lo = [100 * (s["mean"][t]["group"] - s["min"][t]["group"]) for t in TAGS2]
        hi = [100 * (s["max"][t]["group"] - s["mean"][t]["group"]) for t in TAGS2]
        ax.bar(x - 0.4 + (j + 0.5) * width, mean, width, yerr=[lo, hi], capsize=2, color=colours(j),
               label=f"{name} (mean of {s['seeds']} seeds, bar = range)")
    for j, (name, cells) in enumerate(extras):
        k = len(rows) + j
        ax.bar(x - 0.4 + (k + 0.5) * width, [100 * cells[t]["group"]["rate"] for t in TAGS2], width,
               color=colours(len(rows) + j), edgecolor="black", linewidth=0.5, label=name)
    greys = ["#222222", "#555555", "#777777", "#999999", "#bbbbbb", "#dddddd"]
    for j, (name, cells) in enumerate(oracles):
        k = len(rows) + len(extras) + j
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
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False, runs: str | None = None, limit: int | None = None, n_samples: int | None = None,
        work: str | None = None, out: str | None = None) -> dict:
    runs = Path(runs or os.environ.get("WINODIGITS2_RUNS", "runs/v2"))
    limit = int(limit or os.environ.get("WINODIGITS2_LIMIT", 32 if quick else 400))
    n_samples = int(n_samples or os.environ.get("WINODIGITS2_N", 4 if quick else 10))
    if limit % 16:
        raise SystemExit("WINODIGITS2_LIMIT must be a multiple of 16 (8 tags x seen/unseen) so every cell is balanced")
    import torch

    torch.set_num_threads(int(os.environ.get("WINOEVAL_THREADS", "1")))
    work = Path(work or os.environ.get("WINODIGITS2_WORK", "runs/v2-eval"))
    out = Path(out or HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"limit": limit, "n_samples": n_samples, "runs": str(runs), "recipes": {},
                     "per_seed": {}, "oracles": {}, "mcnemar": {}, "seconds": {}}
    samples: dict[str, dict] = {}
    for oracle in ORACLES:
        rows, sec, _ = _evaluate(f"winodigits-oracle:{oracle}", limit, work / f"oracle-{oracle}", n_samples)
        summary["oracles"][oracle] = {"cells": _cells(rows)}
    vae = runs / "vae" / "vae_history.json"
    if vae.exists():
        v = json.loads(vae.read_text())
        summary["vae"] = {k: v.get(k) for k in ("steps", "batch_size", "seconds", "recon_mse_posterior_mean",
                                                 "recon_mse_heldout_scenes")}
    for recipe, spec in RECIPES.items():
        for run_dir in sorted(runs.glob(f"{recipe}-s*")):
            done = json.loads((run_dir / "recipe.json").read_text()) if (run_dir / "recipe.json").exists() else {}
            hp = done.get("hyperparameters", {})
            if not done or done.get("epochs_done") != hp.get("epochs"):
                print(f"skipping {run_dir}: not finished ({done.get('epochs_done')}/{hp.get('epochs')} epochs)",
                      file=sys.stderr)
                continue
            name = run_dir.name
            rows, sec, results_path = _evaluate(spec.format(run=run_dir), limit, work / name, n_samples)
            samples[name] = rows
            summary["per_seed"][name] = {"recipe": recipe, "cells": _cells(rows), "results": str(results_path),
                                         "train_seconds": done.get("train_seconds"), "train_date": done.get("date"),
                                         "validation": (done.get("history") or [{}])[-1].get("heldout"),
                                         "final_loss": (done.get("history") or [{}])[-1].get("loss"),
                                         "samples_seen": hp.get("epochs", 0) * hp.get("steps_per_epoch", 0)
                                         * hp.get("batch_size", 0)}
            summary["seconds"][name] = round(sec, 1)
            print(f"{name}: " + " ".join(f"{t}={100 * c['group']['rate']:.0f}" for t, c in
                                         summary["per_seed"][name]["cells"].items() if "/" not in t), file=sys.stderr)
    for recipe in RECIPES:
        seeds = [s for s in summary["per_seed"].values() if s["recipe"] == recipe]
        if not seeds:
            continue
        agg = {"seeds": len(seeds), "mean": {}, "min": {}, "max": {}}
        for key in seeds[0]["cells"]:
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
    for folder in [Path(x) for x in os.environ.get("WINODIGITS2_EXTRA", "runs/v2-long").split(",") if x]:
        for run_dir in sorted(folder.glob("*-s*")):
            done = json.loads((run_dir / "recipe.json").read_text()) if (run_dir / "recipe.json").exists() else {}
            hp = done.get("hyperparameters", {})
            recipe = run_dir.name.rsplit("-s", 1)[0]
            if not done or done.get("epochs_done") != hp.get("epochs") or recipe not in RECIPES:
                continue
            name = f"{folder.name}/{run_dir.name}"
            rows, sec, _ = _evaluate(RECIPES[recipe].format(run=run_dir), limit, work / folder.name / run_dir.name,
                                     n_samples)
            summary.setdefault("extra", {})[name] = {
                "cells": _cells(rows), "samples_seen": hp["epochs"] * hp["steps_per_epoch"] * hp["batch_size"],
                "train_seconds": done.get("train_seconds")}
            summary["seconds"][name] = round(sec, 1)
    for model in SHIPPED:  # the shipped v1 models (trained on the v1 stream: no pairing held out, no "and" captions)
        rows, sec, _ = _evaluate(model, limit, work / model, n_samples)
        summary.setdefault("shipped", {})[model] = {"cells": _cells(rows)}
        summary["seconds"][model] = round(sec, 1)
    curve_dirs = os.environ.get("WINODIGITS2_CURVES", "runs/v2-8k,runs/v2-long").split(",")
    summary["curves"] = _curves([runs, *[Path(x) for x in curve_dirs if x and Path(x).is_dir()]])
    summary["load_at_end"] = list(os.getloadavg())
    _plot(summary, out / "winodigits2.png")
    return summary


def _curves(folders: list[Path]) -> list[dict]:
    """Validation-set learning-curve points of every run in ``folders`` (from each recipe.json)."""
    from winoeval.tasks.winodigits import BINDING_TAGS

    out = []
    for folder in folders:
        for recipe_path in sorted(folder.glob("*-s*/recipe.json")):
            r = json.loads(recipe_path.read_text())
            hp = r.get("hyperparameters", {})
            for h in r.get("history", []):
                ho = h.get("heldout")
                if not ho:
                    continue
                out.append({"run": f"{folder.name}/{recipe_path.parent.name}", "epoch": h["epoch"],
                            "samples": h["step"] * hp.get("batch_size", 0), "loss": h["loss"],
                            "all": ho["all"]["group"], "text_all": ho["all"]["text"],
                            "binding": sum(ho[t]["group"] for t in BINDING_TAGS) / len(BINDING_TAGS),
                            "v1_tags": sum(ho[t]["group"] for t in ("object", "attribute", "relation", "control")) / 4})
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def render(data: dict) -> str:
    from winoeval.tasks.winodigits import BINDING_TAGS, TAGS2

    lines = [f"First {data['limit']} examples of the `winodigits2` test set (generator seed 0; {data['limit'] // 16} "
             f"per tag × split), diffusion models at N = {data['n_samples']} even timesteps, normalised image score. "
             "Group score in %; chance 16.7 (text and image 25). Models: mean over seeds [min–max]; each run's last "
             "checkpoint (nothing selected on test items). Oracles read the scene metadata (perfect perception) — "
             "shortcut references, not models. Plot: `benchmarks/results/winodigits2.png`.", ""]
    for recipe, agg in data["recipes"].items():
        seeds = [v for v in data["per_seed"].values() if v["recipe"] == recipe]
        above = sum(v["cells"]["binding"]["group"]["ci95"][0] > CHANCE["group"] for v in seeds)
        gap = agg["mean"]["binding/seen"]["group"] - agg["mean"]["binding/unseen"]["group"]
        lines.append(f"- **{recipe}**: binding tags {_pct(agg['mean']['binding']['group'])} % group (mean of "
                     f"{len(seeds)} seeds), v1 tags {_pct(sum(agg['mean'][t]['group'] for t in TAGS2[:4]) / 4)} %; "
                     f"{above} of {len(seeds)} seeds have the binding group score's Wilson lower bound above chance; "
                     f"seen − unseen on binding tags {100 * gap:+.0f} points.")
    seeds = list(data["per_seed"].values())
    if seeds:
        best = max(v["cells"]["binding"]["group"]["ci95"][0] for v in seeds)
        sig = sum(m["all"]["p"] < 0.05 and m["all"]["b_only"] > m["all"]["a_only"] for m in data["mcnemar"].values())
        text = (f"- Reading: no trained run's binding-tag group score is above chance (highest Wilson lower bound "
                f"{_pct(best)} % vs 16.7 %), so at this budget the comparison cannot say which scorer binds better; "
                f"CLIP beats the SD run of the same seed on the group verdicts of all items in {sig} of "
                f"{len(data['mcnemar'])} pairs (McNemar p < 0.05).")
        for name, e in (data.get("extra") or {}).items():
            c = e["cells"]
            g = {k: _pct(v["group"]["rate"]) for k, v in c.items()}
            text += (f" With {e['samples_seen']:,} images ({name}) CLIP binds digits to colours (conjunction "
                     f"{g['conjunction']} %, seen/unseen {g['conjunction/seen']}/{g['conjunction/unseen']}; "
                     f"digit-trade {g['digit-trade']} %)"
                     f" but not digits to positions (same-colour {_pct(c['same-colour']['group']['rate'])} %, one-axis "
                     f"{_pct(c['one-axis']['group']['rate'])} %).")
        for name, e in (data.get("shipped") or {}).items():
            c = e["cells"]
            v1 = sum(c[t]["group"]["rate"] for t in TAGS2[:4]) / 4
            text += (f" Shipped v1 {name}: v1 tags {_pct(v1)} %, binding tags {_pct(c['binding']['group']['rate'])} %"
                     f" (same-colour {_pct(c['same-colour']['group']['rate'])} %).")
        lines.append(text)
    lines.append("")
    cols = [*TAGS2, "binding", "all"]
    head = "| scorer | " + " | ".join(cols) + " |"
    lines += [head, "|---|" + "---:|" * len(cols)]
    for recipe, agg in data["recipes"].items():
        cells = [f"{_pct(agg['mean'][c]['group'])} [{_pct(agg['min'][c]['group'])}–{_pct(agg['max'][c]['group'])}]"
                 for c in cols]
        lines.append(f"| {recipe} ({agg['seeds']} seeds) | " + " | ".join(cells) + " |")
    for name, e in (data.get("extra") or {}).items():
        lines.append(f"| extra: {name} ({e['samples_seen']:,} images, 1 seed; not equal-budget) | "
                     + " | ".join(_pct(e["cells"][c]["group"]["rate"]) for c in cols) + " |")
    for name, e in (data.get("shipped") or {}).items():
        lines.append(f"| shipped v1 model: {name} (v1 stream: seen every pairing, no 'and' captions) | "
                     + " | ".join(_pct(e["cells"][c]["group"]["rate"]) for c in cols) + " |")
    for oracle, o in data["oracles"].items():
        lines.append(f"| oracle: {oracle} | " + " | ".join(_pct(o["cells"][c]["group"]["rate"]) for c in cols) + " |")
    lines += ["", "Seen vs unseen colour–digit pairings (group %, mean over seeds [min–max]); `unseen` items show at "
              "least one pairing that no training scene or caption held:", ""]
    cols2 = [f"{t}/{s}" for t in (*BINDING_TAGS, "object", "attribute", "relation", "control")
             for s in ("seen", "unseen")]
    lines += ["| scorer | " + " | ".join(c.replace("/", " ") for c in cols2) + " | binding seen | binding unseen |",
              "|---|" + "---:|" * (len(cols2) + 2)]
    for recipe, agg in data["recipes"].items():
        cells = [f"{_pct(agg['mean'][c]['group'])} [{_pct(agg['min'][c]['group'])}–{_pct(agg['max'][c]['group'])}]"
                 for c in (*cols2, "binding/seen", "binding/unseen")]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    lines += ["", "Every seed (text / image / group %, Wilson 95 % interval on group; validation = the run's own "
              "learning-curve point on the validation seed, 10 per tag, N = 10):", "",
              "| run | image samples | train s | all (text / image / group) | group 95 % | binding group | "
              "binding 95 % | validation group all / binding-tags mean |", "|---|---:|---:|---|---|---:|---|---|"]
    for name, s in data["per_seed"].items():
        a, b = s["cells"]["all"], s["cells"]["binding"]
        val = s.get("validation") or {}
        vb = [val[t]["group"] for t in BINDING_TAGS if t in val]
        vtxt = f"{_pct(val['all']['group'])} / {_pct(sum(vb) / len(vb))}" if val and vb else "—"
        lines.append(f"| {name} | {s['samples_seen']:,} | {s['train_seconds']} | {_pct(a['text']['rate'])} / "
                     f"{_pct(a['image']['rate'])} / {_pct(a['group']['rate'])} | "
                     f"[{_pct(a['group']['ci95'][0])}, {_pct(a['group']['ci95'][1])}] | {_pct(b['group']['rate'])} | "
                     f"[{_pct(b['group']['ci95'][0])}, {_pct(b['group']['ci95'][1])}] | {vtxt} |")
    if data["mcnemar"]:
        lines += ["", "McNemar (exact, two-sided) on the group verdicts, each SD run against the CLIP run of the same "
                  "seed (SD-only / CLIP-only correct):", "", "| pair | all: SD-only / CLIP-only, p | binding tags: "
                  "SD-only / CLIP-only, p |", "|---|---|---|"]
        for pair, m in data["mcnemar"].items():
            lines.append(f"| {pair} | {m['all']['a_only']} / {m['all']['b_only']}, p = {m['all']['p']:.2g} | "
                         f"{m['binding']['a_only']} / {m['binding']['b_only']}, p = {m['binding']['p']:.2g} |")
    if data.get("curves"):
        lines += ["", "Learning curves on the **validation** seed (winodigits2 `--task-arg seed=1`, 10 per tag = 80 "
                  "examples, N = 10, the trainers' own evaluation through winoeval's scorer), group %:", "",
                  "| run | epoch | image samples | loss | text all | group all | group v1 tags | group binding tags |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in data["curves"]:
            lines.append(f"| {c['run']} | {c['epoch']} | {c['samples']:,} | {c['loss']:.4f} | {_pct(c['text_all'])} | "
                         f"{_pct(c['all'])} | {_pct(c['v1_tags'])} | {_pct(c['binding'])} |")
    if data.get("vae"):
        v = data["vae"]
        lines += ["", f"Shared VAE: {v['steps']} steps × batch {v['batch_size']} ({v['seconds']} s); reconstruction "
                  f"MSE (pixels in [−1, 1], posterior mean) {v['recon_mse_posterior_mean']:.4f} on training scenes, "
                  f"{v['recon_mse_heldout_scenes']:.4f} on validation scenes (held-out digits)."]
    lines += ["", f"Evaluation seconds in this invocation (a run read from its cache shows ~0): {data['seconds']}; "
              f"load average at the end {[round(x, 1) for x in data.get('load_at_end', [])]}."]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--work", default=None, help="resumable evaluation caches")
    args = p.parse_args(argv)
    data = run(runs=args.runs, limit=args.limit, n_samples=args.n_samples, work=args.work, out=args.out)
    out = Path(args.out or HERE / "results")
    (out / "winodigits2_direct.json").write_text(json.dumps(data, indent=1) + "\n")
    print(render(data))


if __name__ == "__main__":
    main()
