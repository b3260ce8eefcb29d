"""Text renderings of a comparison: the markdown tables ``winoeval compare`` prints, the calibration
table, the per-example CSV and strict JSON.

Rendering only: the numbers come from :mod:`winoeval.comparison` and :mod:`winoeval.calibration`
(what is rendered), the examples from :mod:`winoeval.results`. Standard library only at module level.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

from . import metrics
from .metrics import pct
from .calibration import MIN_PART, N_BINS, CalibrationReport
from .results import BINARY, METRIC_TITLES, Run, fmt_ids

def _pp(v: float) -> str:
    """A difference in percentage points, signed; no "-0.0"."""
    text = f"{100 * v:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def _p(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.4f}" if v >= 1e-4 else f"{v:.1e}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(comp: dict[str, Any]) -> str:
    """The comparison as markdown: scores side by side, then one table of paired differences per pair."""
    labels = [r["label"] for r in comp["runs"]]
    lines = [f"## {comp['task']}: {len(labels)} runs on {comp['n_shared']} shared examples", ""]
    for r in comp["runs"]:
        lines.append(f"- {_cell(r['label'])}: {r['results']}")
    for note in comp["notes"]:
        lines += ["", f"> note: {note}"]
    if comp.get("same_as_all"):
        lines += ["", f"> note: every example has {', '.join(comp['same_as_all'])}: those rows would repeat `all`, "
                      f"left out"]
    lines += ["", "Scores in % with 95 % intervals (Wilson; bootstrap for mean per-class):", "",
              "| subset | n | metric | " + " | ".join(_cell(x) for x in labels) + " |",
              "|---|---:|---|" + "---:|" * len(labels)]
    for row in comp["scores"]:
        cells = [f"{pct(v['value'])} [{pct(v['ci95'][0])}, {pct(v['ci95'][1])}]"
                 for v in (row["values"][x] for x in labels)]
        lines.append(f"| {_cell(row['subset'])} | {row['n']} | {METRIC_TITLES[row['metric']]} | "
                     + " | ".join(cells) + " |")
    pairs: dict[tuple[str, str], list[dict]] = {}
    for row in comp["pairs"]:
        pairs.setdefault((row["a"], row["b"]), []).append(row)
    boot = comp["bootstrap"]
    for (a, b), rows in pairs.items():
        A, B = _cell(a), _cell(b)
        lines += ["", f"Paired: {B} − {A}, in percentage points; 95 % CI from {boot['resamples']:,} paired "
                      f"bootstrap resamples (seed {boot['seed']}); exact McNemar p on the discordant examples "
                      f"(per row, not corrected for multiple comparisons):", "",
                  f"| subset | n | metric | Δ | 95 % CI | McNemar p | {A} ✓ {B} ✗ | {A} ✗ {B} ✓ | "
                  f"ids {A} ✓ {B} ✗ | ids {A} ✗ {B} ✓ |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---|---|"]
        for r in rows:
            binary = r["metric"] in BINARY
            lines.append(
                f"| {_cell(r['subset'])} | {r['n']} | {METRIC_TITLES[r['metric']]} | {_pp(r['diff'])} | "
                f"[{_pp(r['ci95'][0])}, {_pp(r['ci95'][1])}] | {_p(r['mcnemar_p'])} | "
                + (f"{r['a_only']} | {r['b_only']} | {_cell(fmt_ids(r['a_only_ids']))} | "
                   f"{_cell(fmt_ids(r['b_only_ids']))} |" if binary else "— | — | — | — |"))
    return "\n".join(lines)


def write_csv(path: str | Path, runs: Sequence[Run], ids: Sequence[str]) -> int:
    """One row per shared example × model: id, model, tags, verdicts, scores. Returns the row count."""
    metric = runs[0].metric
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.breakdowns if k not in keys]
    if metric == "winoground":
        fields = ["id", "model", *keys, "text", "image", "group", "s00", "s01", "s10", "s11", "caption_0",
                  "caption_1", "n_evals", "results"]
    else:
        fields = ["id", "model", *keys, "label", "prediction", "correct", "scores", "n_evals", "results"]
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for eid in ids:
            for run in runs:
                r = run.records[eid]
                row: dict[str, Any] = {"id": eid, "model": run.label, "n_evals": r.get("n_evals"),
                                       "results": run.path.name}
                for k in keys:
                    v = r.get("meta", {}).get(k)
                    row[k] = ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                v = r["verdicts"]
                if metric == "winoground":
                    (s00, s01), (s10, s11) = r["scores"]
                    texts = r.get("texts") or [None, None]
                    row.update(text=int(v["text"]), image=int(v["image"]), group=int(v["group"]), s00=s00,
                               s01=s01, s10=s10, s11=s11, caption_0=texts[0], caption_1=texts[1])
                else:
                    row.update(label=r.get("label"), prediction=v.get("prediction"), correct=int(v["correct"]),
                               scores=json.dumps(r["scores"][0]))
                writer.writerow(row)
                rows += 1
    return rows


json_safe = metrics.json_safe  # NaN and infinities become None (strict JSON)


def calibration_markdown(reports: Sequence[tuple[str, CalibrationReport]]) -> str:
    """A markdown table of calibration reports, one row per run."""

    def f(v: float) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    lines = ["| model | τ | n fit / held out | held-out accuracy | ECE τ=1 | ECE τ fitted | NLL τ=1 "
             "| NLL τ fitted |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in reports:
        tau = f"{r.tau:.4g}" if r.status == "fitted" else f"none ({r.status}, see note)"
        lines.append(f"| {name} | {tau} | {r.n_fit} / {r.n_eval} | {100 * r.accuracy_eval:.1f} | "
                     f"{f(r.ece_before)} | {f(r.ece_after)} | {f(r.nll_before)} | {f(r.nll_after)} |")
    notes = [f"- {name}: {n}" for name, r in reports for n in r.notes]
    if notes:
        lines += ["", *notes]
    lines += ["", f"p = softmax(score / τ); τ fitted on a seeded part of the examples (NLL over log τ), "
                  f"ECE ({reports[0][1].n_bins if reports else N_BINS} equal-width bins) and NLL on the other part. "
                  f"A τ is shown only when each part holds at least {MIN_PART} examples, the fitting part has "
                  f"misclassified examples and the held-out NLL does not get worse."]
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    """A results file's numbers as the markdown table ``winoeval run`` prints (percentages, 95 %
    intervals in brackets)."""
    lines = []
    model = results["model"]["name"]
    for task_name, m in results["results"].items():
        if lines:
            lines.append("")  # a blank line between two tasks' tables (markdown needs it to end a table)
        if m["metric"] == "winoground":
            lines += ["| model | task | subset | n | text | image | group |", "|---|---|---|---:|---:|---:|---:|"]

            def row(subset: str, s: dict) -> str:
                cells = [f"{pct(s[k])} [{pct(s[k + '_ci95'][0])}, {pct(s[k + '_ci95'][1])}]"
                         for k in ("text", "image", "group")]
                return f"| {model} | {task_name} | {subset} | {s['n']} | " + " | ".join(cells) + " |"

            lines.append(row("all", m))
            for key, groups in m.get("by", {}).items():
                if len(groups) == 1 and next(iter(groups.values()))["n"] == m["n"]:
                    continue  # a tag every example has would only repeat `all`
                for value, s in groups.items():
                    lines.append(row(f"{key}={value}", s))
        elif m["metric"] == "choice":
            from .groups import choice_table_lines

            lines += choice_table_lines(model, task_name, m)
        else:
            lines += ["| model | task | n | accuracy | mean per-class | evals/example |",
                      "|---|---|---:|---:|---:|---:|"]
            lo, hi = m["accuracy_ci95"]
            evals = f"{m['evals_per_example']:.0f}" if "evals_per_example" in m else "—"
            mlo, mhi = m.get("mean_per_class_accuracy_ci95") or (None, None)
            lines.append(f"| {model} | {task_name} | {m['n']} | {pct(m['accuracy'])} [{pct(lo)}, {pct(hi)}] | "
                         f"{pct(m['mean_per_class_accuracy'])} [{pct(mlo)}, {pct(mhi)}] | {evals} |")
        if m.get("skipped"):
            lines.append(f"\n{m['skipped']} example(s) skipped (see 'skipped' in the results file).")
    if results.get("groups"):
        from .groups import group_table_lines

        lines += group_table_lines(results)
    return "\n".join(lines)
