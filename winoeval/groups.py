"""Task groups: ``--task compositional``, ``--task zeroshot``, ``--task @my_suite.txt``.

A group expands into its tasks, which run through the ordinary several-task path (one model load, one
results file); the results file gains a ``groups`` entry with one summary per group, after
lm-evaluation-harness's groups, and the printed table a summary row per group.

* Built-in groups are made of registrations: a task registered with ``group="compositional"`` joins
  that group with its ``members`` (default: its own name; ``aro`` contributes its four subsets).
* ``@FILE``: a text file of task names (``sugarcrepe:swap-att``), group names or both, one per line
  (``#`` starts a comment); the group is named after the file's stem.
* ``--data-dir ROOT`` with a group: each task of the group reads ``ROOT/<task name before the colon>``
  (``ROOT/sugarcrepe``, ``ROOT/aro``, ``ROOT/valse``, …). A task whose folder is missing loads from its
  default source (the hub, built-in data), with a note on stderr. Tasks named directly keep ``ROOT``.

The summary of a group: for every task its headline number — accuracy for ``choice`` and
``classification`` tasks, the text score for ``winoground`` tasks (the image picking its caption,
the question a 1×K choice asks) — then their plain mean over tasks (``mean``, lm-evaluation-harness's
unweighted group score) and their mean weighted by each task's example count (``weighted``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from .errors import UsageError
from .metrics import pct

HEADLINE = {"choice": "accuracy", "classification": "accuracy", "winoground": "text"}


class GroupError(UsageError, ValueError):
    """A bad group file (a usage error: exit status 2)."""


def builtin_groups() -> dict[str, list[str]]:
    """group name → its task names, from the registrations (tasks sorted by name, members in their order)."""
    from . import registry

    groups: dict[str, list[str]] = {}
    for name, entry in sorted(registry.tasks().items()):
        group = entry.extras.get("group")
        if group:
            groups.setdefault(str(group), []).extend(entry.extras.get("members") or [name])
    return groups


def _read_suite(path: str, known: dict[str, list[str]]) -> list[str]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise GroupError(f"--task @{path}: no such file (a suite file lists task or group names, one per line)")
    names = []
    for n, line in enumerate(file.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            raise GroupError(f"--task @{path}, line {n}: a suite file cannot include another one ({line})")
        names += [p.strip() for p in line.split(",") if p.strip()]
    if not names:
        raise GroupError(f"--task @{path}: the file lists no task")
    return names


def expand(names: list[str], data_dir: str | None = None) -> tuple[list[str], dict[str, list[str]], dict[str, Any]]:
    """(tasks in order without repeats, {group: its tasks}, {task: its --data-dir}) for the names given
    to ``--task``. Names that are no group pass through unchanged."""
    known = builtin_groups()
    tasks: list[str] = []
    groups: dict[str, list[str]] = {}
    dirs: dict[str, Any] = {}

    def add(task: str, group: str | None) -> None:
        if task not in tasks:
            tasks.append(task)
        if group is not None:
            groups.setdefault(group, [])
            if task not in groups[group]:
                groups[group].append(task)

    for name in names:
        if name.startswith("@"):
            group = Path(name[1:]).stem or name
            for item in _read_suite(name[1:], known):
                for task in known.get(item, [item]):
                    add(task, group)
        elif name in known:
            for task in known[name]:
                add(task, name)
        else:
            add(name, None)
    if data_dir:
        root = Path(data_dir).expanduser()
        grouped = {t for members in groups.values() for t in members}
        for task in tasks:
            if task in grouped:
                folder = root / task.partition(":")[0]
                dirs[task] = str(folder) if folder.is_dir() else None
                if not folder.is_dir():
                    print(f"note: {folder} does not exist; {task} loads from its default source", file=sys.stderr)
    return tasks, groups, dirs


def headline(m: dict[str, Any]) -> tuple[str, float | None, int]:
    key = HEADLINE.get(m.get("metric"), "accuracy")
    value = m.get(key)
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return key, (None if missing else value), int(m.get("n") or 0)


def summarize(results: dict[str, Any], groups: dict[str, list[str]]) -> dict[str, Any]:
    """One summary per group from the per-task metrics (see the module docstring)."""
    out = {}
    for group, tasks in groups.items():
        rows = {t: headline(results[t]) for t in tasks if t in results}
        valid = {t: (k, v, n) for t, (k, v, n) in rows.items() if v is not None}
        n = sum(r[2] for r in valid.values())
        out[group] = {
            "tasks": list(tasks),
            "headline": {t: {"metric": k, "value": v, "n": c} for t, (k, v, c) in rows.items()},
            "mean": sum(v for _, v, _ in valid.values()) / len(valid) if valid else None,
            "weighted": sum(v * c for _, v, c in valid.values()) / n if n else None,
            "n": n,
        }
    return out


def group_table_lines(results: dict[str, Any]) -> list[str]:
    """The per-group summary rows of the printed table."""
    lines = ["", "| model | group | tasks | n | mean (over tasks) | weighted (by examples) |",
             "|---|---|---:|---:|---:|---:|"]
    model = results["model"]["name"]
    for group, s in results.get("groups", {}).items():
        lines.append(f"| {model} | {group} | {len(s['tasks'])} | {s['n']} | {pct(s['mean'])} | "
                     f"{pct(s['weighted'])} |")
    lines.append("(each task's headline: accuracy; text score for Winoground-format tasks)")
    return lines


def choice_table_lines(model: str, task: str, m: dict[str, Any]) -> list[str]:
    """A ``choice`` task's rows: accuracy overall and per breakdown group, then any macro accuracy."""
    lines = ["| model | task | subset | n | accuracy |", "|---|---|---|---:|---:|"]

    def cell(s: dict) -> str:
        lo, hi = s.get("accuracy_ci95") or (None, None)
        return f"{pct(s['accuracy'])} [{pct(lo)}, {pct(hi)}]"

    lines.append(f"| {model} | {task} | all | {m['n']} | {cell(m)} |")
    for key, groups in m.get("by", {}).items():
        if len(groups) > 20:
            lines.append(f"| {model} | {task} | {key}: {len(groups)} groups (in the results file) | | |")
            continue
        for value, s in groups.items():
            lines.append(f"| {model} | {task} | {key}={value} | {s['n']} | {cell(s)} |")
    for key, s in m.get("macro_accuracy", {}).items():
        lines.append(f"| {model} | {task} | macro over {s['groups']} {key} groups | {s['n']} | {pct(s['value'])} |")
    return lines


def overview(per_task: list[tuple[str, dict[str, Any]]], chance_level=None) -> dict[str, Any]:
    """For ``compare`` over several tasks: each task's headline per run and the first pair's paired test.
    ``chance_level(comp, metric)`` gives each task's chance line (``winoeval.plot.chance_level``)."""
    rows = []
    for task, comp in per_task:
        metric = HEADLINE.get(comp["metric"], "accuracy")
        score = next((r for r in comp["scores"] if r["subset"] == "all" and r["metric"] == metric), None)
        pair = next((p for p in comp["pairs"] if p["subset"] == "all" and p["metric"] == metric), None)
        if score is None:
            continue
        rows.append({"task": task, "metric": metric, "n": score["n"], "values": score["values"],
                     "pair": pair, "chance": chance_level(comp, metric) if chance_level else None})
    return {"labels": [r["label"] for r in per_task[0][1]["runs"]] if per_task else [], "rows": rows}


def overview_markdown(ov: dict[str, Any]) -> str:
    labels = ov["labels"]
    head = "| task | metric | n | " + " | ".join(labels) + " | Δ (2nd − 1st) | McNemar p |"
    lines = ["# all tasks: headline per task", "", head, "|---|---|---:|" + "---:|" * (len(labels) + 2)]
    for r in ov["rows"]:
        cells = [f"{pct(r['values'][x]['value'])} [{pct(r['values'][x]['ci95'][0])}, "
                 f"{pct(r['values'][x]['ci95'][1])}]" for x in labels]
        p = r["pair"] or {}
        diff = "—" if p.get("diff") is None else f"{100 * p['diff']:+.1f}"
        pval = "—" if p.get("mcnemar_p") is None else f"{p['mcnemar_p']:.3g}"
        lines.append(f"| {r['task']} | {r['metric']} | {r['n']} | " + " | ".join(cells) + f" | {diff} | {pval} |")
    lines.append("")
    for x in labels:
        vals = [r["values"][x]["value"] for r in ov["rows"] if r["values"][x]["value"] is not None]
        mean = sum(vals) / len(vals) if vals else None
        lines.append(f"mean over the {len(vals)} tasks, {x}: {pct(mean)}")
    return "\n".join(lines)


def write_overview_plot(path: str, ov: dict[str, Any]) -> None:
    """One panel: a group of bars per task (its headline), one bar per run, 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    labels, rows = ov["labels"], ov["rows"]
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(min(24.0, max(6.0, 1.2 * len(rows) + 2)), 4.0))
    x = np.arange(len(rows))
    for k, label in enumerate(labels):
        vals = np.array([100 * (r["values"][label]["value"] or 0) for r in rows])
        lo = np.array([100 * r["values"][label]["ci95"][0] for r in rows])
        hi = np.array([100 * r["values"][label]["ci95"][1] for r in rows])
        ax.bar(x + (k - (len(labels) - 1) / 2) * width, vals, width, yerr=[vals - lo, hi - vals], capsize=2,
               label=label)
    for i, r in enumerate(rows):
        if r.get("chance"):
            ax.hlines(100 * r["chance"], i - 0.45, i + 0.45, colors="grey", linestyles="dashed", linewidth=1)
    ax.set_xticks(x, [f"{r['task']}\n{r['metric']}, n={r['n']}" for r in rows], fontsize=7)
    ax.set_ylabel("headline score (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title("all tasks (dashed: chance)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
