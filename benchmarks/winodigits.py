"""winodigits: the shipped ``winodigits-sd`` (diffusion scorer) against ``winodigits-clip`` on WinoDigits.

Runs (through :func:`winoeval.runner.evaluate`, resumable caches in ``WORK/winodigits/``):

* ``winodigits-clip`` on the first ``LIMIT`` examples (one forward per image and caption);
* ``winodigits-sd`` on the same examples, ``N`` even timesteps, normalised image score (the task's
  default), logged per example: the raw (unnormalised) image score is read off the same run's logged
  errors (same t, ε, so the two differ only by the normalisation);
* ``winodigits-sd`` on the first ``EARLY_LIMIT`` examples with a budget of ``EARLY_N`` timesteps, once in
  full and once with ``--early-stop``: verdict agreement and U-Net evaluations per example;
* ``winoeval compare`` of the SD and CLIP runs (McNemar, paired bootstrap).

The learning curves are read from the shipped recipes (``winodigits_sd/recipe.json``,
``winodigits_clip/recipe.json``).

    python -m benchmarks --only winodigits            # LIMIT 400, N 20, EARLY_LIMIT 100, EARLY_N 100
    python -m benchmarks --only winodigits --quick    # 40 / 10 / 20 / 40
    WINODIGITS_LIMIT=100 python -m benchmarks --only winodigits   # (also WINODIGITS_N, _EARLY_LIMIT, _EARLY_N)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import WORK, log

NAME = "winodigits"
TITLE = "WinoDigits: winodigits-sd (diffusion scorer) vs winodigits-clip, learning curves"
TAGS = ("object", "attribute", "relation", "control")
CHANCE = {"text": 25.0, "image": 25.0, "group": 16.7}


def _evaluate(model: str, limit: int, out: Path, **scorer: Any):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    started = time.time()
    res = evaluate(RunConfig(model, "winodigits", scorer_args=scorer, limit=limit, log_samples=True,
                             output_path=str(out)), progress=False)
    return res, time.time() - started


def _samples(res) -> dict[str, dict]:
    rows = [json.loads(line) for line in Path(res.samples_path).read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def _table(rows: dict[str, dict], verdict) -> dict[str, dict[str, Any]]:
    from winoeval.metrics import wilson_interval

    out: dict[str, dict[str, Any]] = {}
    for tag in (*TAGS, "all"):
        sel = [r for r in rows.values() if tag == "all" or r["meta"]["collapsed_tag"] == tag]
        v = [verdict(r) for r in sel]
        out[tag] = {"n": len(v)}
        for k in ("text", "image", "group"):
            hits = sum(x[k] for x in v)
            lo, hi = wilson_interval(hits, len(v))
            out[tag][k] = round(100 * hits / len(v), 1)
            out[tag][f"{k}_ci95"] = [round(100 * lo, 1), round(100 * hi, 1)]
    return out


def _raw(r: dict) -> dict[str, bool]:
    from winoeval.metrics import winoground_verdicts

    return winoground_verdicts([[-e for e in row] for row in r["errors"]])


def _recipes() -> dict[str, dict]:
    from winoeval.plugins import winodigits

    return {name: json.loads((folder / "recipe.json").read_text())
            for name, folder in (("winodigits-sd", winodigits.SD_DIR), ("winodigits-clip", winodigits.CLIP_DIR))}


def run(quick: bool = False) -> dict[str, Any]:
    env = os.environ.get
    limit = int(env("WINODIGITS_LIMIT", 40 if quick else 400))
    n = int(env("WINODIGITS_N", 10 if quick else 20))
    early_limit = int(env("WINODIGITS_EARLY_LIMIT", 20 if quick else 100))
    early_n = int(env("WINODIGITS_EARLY_N", 40 if quick else 100))
    work = WORK / "winodigits"
    data: dict[str, Any] = {"limit": limit, "n": n, "early_limit": early_limit, "early_n": early_n}
    log("winodigits: winodigits-clip")
    clip, t_clip = _evaluate("winodigits-clip", limit, work)
    log(f"winodigits: winodigits-sd, N={n}")
    sd, t_sd = _evaluate("winodigits-sd", limit, work, n_samples=(n,), timesteps="even")
    log(f"winodigits: winodigits-sd, N={early_n} on {early_limit} examples")
    full, t_full = _evaluate("winodigits-sd", early_limit, work / "full", n_samples=(early_n,), timesteps="even")
    log("winodigits: winodigits-sd, early decision")
    early, t_early = _evaluate("winodigits-sd", early_limit, work / "early", n_samples=(early_n,),
                               timesteps="even", early_stop=True)
    s_clip, s_sd, s_full, s_early = _samples(clip), _samples(sd), _samples(full), _samples(early)
    per = lambda res: res.results["results"]["winodigits"]["evals_per_example"]  # noqa: E731
    data["clip"] = {"table": _table(s_clip, lambda r: r["verdicts"]), "seconds": round(t_clip, 1)}
    data["sd"] = {"table": _table(s_sd, lambda r: r["verdicts"]), "raw_table": _table(s_sd, _raw),
                  "seconds": round(t_sd, 1), "evals_per_example": per(sd)}
    data["sd_full"] = {"table": _table(s_full, lambda r: r["verdicts"]), "raw_table": _table(s_full, _raw),
                       "seconds": round(t_full, 1), "evals_per_example": per(full)}
    data["sd_early"] = {"table": _table(s_early, lambda r: r["verdicts"]), "seconds": round(t_early, 1),
                        "evals_per_example": per(early)}
    agree = {k: round(sum(s_full[i]["verdicts"][k] == s_early[i]["verdicts"][k] for i in s_full) / len(s_full), 4)
             for k in ("text", "image", "group")}
    data["early_vs_full"] = {"verdict_agreement": agree, "evals_fraction": round(per(early) / per(full), 4)}
    cmp = subprocess.run([sys.executable, "-m", "winoeval", "compare", str(Path(sd.results_path).parent),
                          str(Path(clip.results_path).parent)], capture_output=True, text=True)
    data["compare"] = cmp.stdout
    data["recipes"] = {}
    for name, r in _recipes().items():
        text = (r.get("hyperparameters") or {}).get("text_encoder", "")
        label = f"{name} (shipped{'; text encoder: frozen winodigits-clip text tower' if 'frozen' in text else ''})"
        data["recipes"][label] = {"history": r["history"], "train_seconds": r.get("train_seconds"),
                                  "command": r.get("command"), "params": r.get("params"), "sd": name.endswith("sd")}
        for vname, v in (r.get("variants") or {}).items():
            data["recipes"][f"{name}, {vname}"] = {**v, "sd": True}
    t = data["sd"]["table"]
    data["targets"] = [
        {"name": "winodigits-sd: control text score", "target": ">= 90 %", "measured": f"{t['control']['text']} %",
         "met": t["control"]["text"] >= 90},
        *[{"name": f"winodigits-sd: {tag} text score, 95 % interval above chance", "target": "> 25 %",
           "measured": f"{t[tag]['text']} % [{t[tag]['text_ci95'][0]}, {t[tag]['text_ci95'][1]}]",
           "met": t[tag]["text_ci95"][0] > 25} for tag in ("object", "attribute", "relation")],
        {"name": "winodigits-sd: image score, normalised vs raw (all)", "target": "normalised > raw",
         "measured": f"{t['all']['image']} % vs {data['sd']['raw_table']['all']['image']} %",
         "met": t["all"]["image"] > data["sd"]["raw_table"]["all"]["image"]},
        {"name": "winodigits-sd: early decision, verdict agreement (text, image, group)", "target": ">= 99 %",
         "measured": ", ".join(f"{100 * v:.0f} %" for v in agree.values()), "met": min(agree.values()) >= 0.99},
        {"name": "winodigits-sd: early decision, U-Net evaluations vs full budget", "target": "<= 15 %",
         "measured": f"{100 * data['early_vs_full']['evals_fraction']:.1f} %",
         "met": data["early_vs_full"]["evals_fraction"] <= 0.15},
    ]
    return data


def learning_curve(history: list[dict], sd: bool) -> str:
    """A held-out learning curve as a markdown table (text score per tag, %)."""
    head = ["epoch", "step", "loss"] + [f"text {t}" for t in TAGS] + (["image (norm.) all"] if sd else ["image all"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for h in history:
        ho = h.get("heldout")
        if not ho:
            continue
        cells = [str(h["epoch"]), str(h["step"]), f"{h['loss']:.4f}"] + [f"{100 * ho[t]['text']:.0f}" for t in TAGS]
        cells.append(f"{100 * ho['all']['image_norm' if sd else 'image']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _score_table(rows: list[tuple[str, dict]]) -> str:
    head = ["model", "subset", "n", "text", "image", "group"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|---|---|"]
    for label, table in rows:
        for tag in (*TAGS, "all"):
            c = table[tag]
            lines.append(f"| {label} | {tag} | {c['n']} | " + " | ".join(
                f"{c[k]} [{c[k + '_ci95'][0]}, {c[k + '_ci95'][1]}]" for k in ("text", "image", "group")) + " |")
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    sd, rec = data["sd"], data["recipes"]
    parts = [
        f"Scores in % with Wilson 95 % intervals; chance is {CHANCE['text']:.0f} / {CHANCE['image']:.0f} / "
        f"{CHANCE['group']} (text / image / group). First {data['limit']} test examples; winodigits-sd with "
        f"N = {data['n']} even timesteps ({sd['evals_per_example']:.0f} U-Net evaluations per example, "
        f"{sd['seconds']:.0f} s for the run), winodigits-clip {data['clip']['seconds']:.0f} s. The raw image score "
        "is the same run without the normalisation (read off its logged errors: same t, ε).",
        "",
        _score_table([("winodigits-sd (normalised)", sd["table"]), ("winodigits-sd (raw image)", sd["raw_table"]),
                      ("winodigits-clip", data["clip"]["table"])]),
        "",
        f"Early decision on the first {data['early_limit']} examples, budget N = {data['early_n']}: verdict "
        "agreement with the full budget " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in
                                                      data["early_vs_full"]["verdict_agreement"].items())
        + f"; {data['sd_early']['evals_per_example']:.0f} vs {data['sd_full']['evals_per_example']:.0f} U-Net "
        f"evaluations per example ({100 * data['early_vs_full']['evals_fraction']:.1f} %); "
        f"{data['sd_early']['seconds']:.0f} s vs {data['sd_full']['seconds']:.0f} s.",
        "",
        _score_table([(f"winodigits-sd N={data['early_n']} (normalised)", data["sd_full"]["table"]),
                      (f"winodigits-sd N={data['early_n']} (raw image)", data["sd_full"]["raw_table"]),
                      (f"winodigits-sd N={data['early_n']}, early decision", data["sd_early"]["table"])]),
        "",
    ]
    for name, r in rec.items():
        sdm = r["sd"]
        parts += [f"Learning curve of {name} (held-out: the first 20 test examples of each tag; "
                  + ("N = 10 even timesteps, EMA weights" if sdm else "cosine similarity") + f"). Training: "
                  f"`{r['command']}`, {r['train_seconds']:.0f} s of wall time on the shared CPU.", "",
                  learning_curve(r["history"], sdm), ""]
    parts += ["`winoeval compare` of the two runs:", "", "```", data["compare"].strip(), "```"]
    return "\n".join(parts)
