"""winodigits: the shipped ``winodigits-sd`` (diffusion scorer) against ``winodigits-clip`` on WinoDigits.

Runs (through :func:`winoeval.runner.evaluate`, resumable caches in ``WORK/winodigits/``):

* ``winodigits-clip`` (one forward per image and caption);
* ``winodigits-sd``, N even timesteps, normalised image score (the task's default), ``--log-samples``:
  the raw (unnormalised) image score is read off the same run's logged errors (same t, ε);
* ``winodigits-sd`` on the first ``--early-limit`` examples with a budget of ``--early-n`` timesteps, once
  in full and once with ``--early-stop``: verdict agreement and U-Net evaluations per example.

Then ``winoeval compare`` of the SD and CLIP runs (McNemar, bootstrap). Writes
``benchmarks/results/winodigits.json`` and ``benchmarks/results/winodigits_compare.txt``.

    python -m benchmarks.winodigits [--limit 400] [--n 20] [--early-limit 100] [--early-n 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import RESULTS, WORK, log, machine

TAGS = ("object", "attribute", "relation", "control")


def _evaluate(model: str, limit: int, out: Path, **scorer: Any):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    started = time.time()
    res = evaluate(RunConfig(model, "winodigits", scorer_args=scorer, limit=limit, log_samples=True,
                             output_path=str(out)), progress=True)
    return res, time.time() - started


def _samples(res) -> dict[str, dict]:
    rows = [json.loads(line) for line in Path(res.samples_path).read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def _table(rows: dict[str, dict], verdict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for tag in (*TAGS, "all"):
        sel = [r for r in rows.values() if tag == "all" or r["meta"]["collapsed_tag"] == tag]
        v = [verdict(r) for r in sel]
        out[tag] = {k: round(100 * sum(x[k] for x in v) / len(v), 1) for k in ("text", "image", "group")}
        out[tag]["n"] = len(v)
    return out


def _raw(r: dict) -> dict[str, bool]:
    from winoeval.metrics import winoground_verdicts

    s = [[-e for e in row] for row in r["errors"]]
    return winoground_verdicts(s)


def learning_curve(recipe: dict) -> str:
    """The recipe's held-out learning curve as a markdown table (text score per tag, %)."""
    sd = "vae_training" in recipe
    head = ["epoch", "step", "loss"] + [f"text {t}" for t in TAGS] + (["image (norm.) all"] if sd else ["image all"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for h in recipe["history"]:
        ho = h.get("heldout")
        if not ho:
            continue
        cells = [str(h["epoch"]), str(h["step"]), f"{h['loss']:.4f}"] + [f"{100 * ho[t]['text']:.0f}" for t in TAGS]
        cells.append(f"{100 * ho['all']['image_norm' if sd else 'image']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--n", type=int, default=20, help="timesteps per image of the main SD run")
    ap.add_argument("--early-limit", type=int, default=100, help="examples of the early-decision study")
    ap.add_argument("--early-n", type=int, default=100, help="the full budget of the early-decision study")
    ap.add_argument("--curves", action="store_true", help="only print the shipped models' learning curves")
    args = ap.parse_args(argv)
    if args.curves:
        from winoeval.plugins import winodigits

        for folder in (winodigits.SD_DIR, winodigits.CLIP_DIR):
            print(f"{folder.name}:\n{learning_curve(json.loads((folder / 'recipe.json').read_text()))}\n")
        return {}
    work = WORK / "winodigits"
    result: dict[str, Any] = {"machine": machine(), "limit": args.limit, "n": args.n,
                              "early_limit": args.early_limit, "early_n": args.early_n}
    log("winodigits-clip")
    clip, t_clip = _evaluate("winodigits-clip", args.limit, work)
    log("winodigits-sd, full budget")
    sd, t_sd = _evaluate("winodigits-sd", args.limit, work, n_samples=(args.n,), timesteps="even")
    log("winodigits-sd, full budget of the early-decision study")
    full, t_full = _evaluate("winodigits-sd", args.early_limit, work / "full", n_samples=(args.early_n,),
                             timesteps="even")
    log("winodigits-sd, early decision")
    early, t_early = _evaluate("winodigits-sd", args.early_limit, work / "early", n_samples=(args.early_n,),
                               timesteps="even", early_stop=True)
    s_clip, s_sd, s_full, s_early = _samples(clip), _samples(sd), _samples(full), _samples(early)
    result["clip"] = {"table": _table(s_clip, lambda r: r["verdicts"]), "seconds": round(t_clip, 1)}
    result["sd_normalised"] = {"table": _table(s_sd, lambda r: r["verdicts"]), "seconds": round(t_sd, 1),
                               "evals_per_example": sd.results["results"]["winodigits"]["evals_per_example"]}
    result["sd_raw"] = {"table": _table(s_sd, _raw)}
    result["sd_full"] = {"table": _table(s_full, lambda r: r["verdicts"]), "raw_table": _table(s_full, _raw),
                         "seconds": round(t_full, 1),
                         "evals_per_example": full.results["results"]["winodigits"]["evals_per_example"]}
    result["sd_early"] = {"table": _table(s_early, lambda r: r["verdicts"]), "seconds": round(t_early, 1),
                          "evals_per_example": early.results["results"]["winodigits"]["evals_per_example"]}
    agree = {k: sum(s_full[i]["verdicts"][k] == s_early[i]["verdicts"][k] for i in s_full) / len(s_full)
             for k in ("text", "image", "group")}
    result["early_vs_full"] = {"verdict_agreement": agree,
                               "evals_fraction": round(result["sd_early"]["evals_per_example"]
                                                       / result["sd_full"]["evals_per_example"], 4)}
    cmp = subprocess.run([sys.executable, "-m", "winoeval", "compare", str(Path(sd.results_path).parent),
                          str(Path(clip.results_path).parent)], capture_output=True, text=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.limit == 400 else f"_limit{args.limit}"
    (RESULTS / f"winodigits_compare{suffix}.txt").write_text(cmp.stdout + cmp.stderr)
    (RESULTS / f"winodigits{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
