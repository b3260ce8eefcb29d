"""``winoeval compare``: runs of the same task side by side, with paired tests on the shared examples.

Each run is a ``results_<stamp>.json`` with its sibling ``samples_<stamp>.jsonl`` (``--log-samples``).
For every metric (Winoground text/image/group; classification accuracy and mean per-class accuracy),
overall and per breakdown tag, it reports each model's value with a 95 % interval (Wilson for
proportions, bootstrap for mean per-class accuracy) and, for each pair of models, the difference
B − A with

* an exact McNemar test: a two-sided binomial test of the discordant counts (A right and B wrong vs
  A wrong and B right) against Bin(n_discordant, ½);
* a paired bootstrap 95 % interval: the same resampled examples for both models, seeded.
  For a per-example 0/1 metric the difference of a resample depends only on how many discordant
  examples of each kind it drew, so those counts are drawn directly (a multinomial draw has exactly the
  distribution of resampling the examples); mean per-class accuracy resamples example indices.

Only click and the standard library are imported at module level (``winoeval --help`` imports this
module); numpy, scipy, matplotlib and PIL are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

WINOGROUND_METRICS = ("text", "image", "group")
CLASSIFICATION_METRICS = ("accuracy", "mean_per_class")
METRIC_TITLES = {"text": "text", "image": "image", "group": "group", "accuracy": "accuracy",
                 "mean_per_class": "mean per-class"}
BINARY = {"text", "image", "group", "accuracy"}
ID_LIMIT = 5  # ids shown per table cell; CSV and JSON hold them all


class CompareError(ValueError):
    """Runs that cannot be compared, or a run that cannot be read; the message says what to do."""


# --------------------------------------------------------------------------------------------- loading

@dataclass
class Run:
    """One finished run: its results file, and its per-example records keyed by id (scored ones only)."""

    path: Path
    samples_path: Path
    results: dict[str, Any]
    records: dict[str, dict]
    skipped: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def task(self) -> str:
        return self.results["task"]["name"]

    @property
    def task_metrics(self) -> dict[str, Any]:
        res = self.results.get("results", {})
        return res.get(self.task) or (next(iter(res.values())) if res else {})

    @property
    def metric(self) -> str:
        return self.task_metrics.get("metric") or _guess_metric(self.records)

    @property
    def breakdowns(self) -> list[str]:
        return list(self.task_metrics.get("by", {}))

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config", {})


def _guess_metric(records: dict[str, dict]) -> str:
    for r in records.values():
        return "classification" if "correct" in r.get("verdicts", {}) else "winoground"
    return "winoground"


def samples_path_for(results_path: Path) -> Path:
    name = results_path.name
    if not (name.startswith("results_") and name.endswith(".json")):
        raise CompareError(f"{results_path}: expected a results_<stamp>.json file written by `winoeval run`")
    return results_path.with_name("samples_" + name[len("results_"):-len(".json")] + ".jsonl")


def _pick_results(path: Path) -> Path:
    if not path.is_dir():
        return path
    found = sorted(path.glob("results_*.json"))
    if not found:
        raise CompareError(f"{path}: no results_<stamp>.json in this directory")
    if len(found) > 1:
        click.echo(f"note: {path} holds {len(found)} results files; using the newest, {found[-1].name}", err=True)
    return found[-1]


def load_run(path: str | Path) -> Run:
    """Read a results file and its samples file; a run without ``--log-samples`` is an error that says so."""
    results_path = _pick_results(Path(path))
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"{results_path}: cannot read the results file ({exc})") from None
    if not isinstance(results, dict) or "task" not in results or "model" not in results:
        raise CompareError(f"{results_path}: not a winoeval results file (no 'task'/'model')")
    samples = samples_path_for(results_path)
    if not samples.exists():
        if results.get("config", {}).get("log_samples"):
            raise CompareError(f"{results_path}: its per-example samples file {samples.name} is missing (moved or "
                               f"deleted?); put it back next to the results file, or rerun with --log-samples")
        raise CompareError(
            f"{results_path}: no per-example samples file ({samples.name}) next to it; the run was made "
            f"without --log-samples. Rerun the same command with --log-samples (finished examples come "
            f"from the cache, so it is quick) and compare the new results file.")
    records: dict[str, dict] = {}
    skipped: list[str] = []
    with open(samples, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CompareError(f"{samples}:{n}: not valid JSON ({exc.msg})") from None
            eid = str(record["id"])
            if "skipped" in record:
                skipped.append(eid)
                records.pop(eid, None)
            else:
                records[eid] = record
    return Run(results_path, samples, results, records, skipped, label=str(results["model"]["name"]))


def _unique_labels(runs: Sequence[Run], labels: Sequence[str] = ()) -> None:
    if labels:
        if len(labels) != len(runs):
            raise CompareError(f"--label was given {len(labels)} time(s) for {len(runs)} runs: give one per run")
        for run, label in zip(runs, labels):
            run.label = label
    seen: dict[str, int] = {}
    for run in runs:
        base = run.label
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            run.label = f"{base} #{seen[base]}"


# ------------------------------------------------------------------------------------- compatibility

@dataclass
class Shared:
    ids: list[str]
    notes: list[str]


def _fmt_ids(ids: Sequence[str], limit: int = ID_LIMIT) -> str:
    if not ids:
        return "—"
    shown = ", ".join(ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


def check_runs(runs: Sequence[Run], strict: bool = False) -> Shared:
    """Same task (and subset) and metric, or an error; the examples scored in every run, with notes."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two results files")
    tasks = {run.task for run in runs}
    if len(tasks) > 1:
        listing = "; ".join(f"{run.path.name} ({run.label}) is on {run.task!r}" for run in runs)
        raise CompareError(f"cannot compare runs on different tasks or subsets: {listing}. Paired tests need "
                           f"the same examples: compare runs of one task (name and ':subset' alike).")
    metrics = {run.metric for run in runs}
    if len(metrics) > 1:
        raise CompareError(f"runs of task {runs[0].task!r} use different metrics ({', '.join(sorted(metrics))})")
    notes = []
    for key in ("task_args", "data_dir"):
        values = {json.dumps(run.config.get(key), sort_keys=True) for run in runs}
        if len(values) > 1:
            notes.append(f"the runs differ in {key} ({', '.join(sorted(values))}): check that they saw the same data")
    first = runs[0]
    in_all = set(first.records)
    for run in runs[1:]:
        in_all &= set(run.records)
    ids = [i for i in first.records if i in in_all]
    differ = []
    for run in runs:
        extra = [i for i in run.records if i not in in_all]
        if extra:
            differ.append(f"{run.label} has {len(extra)} scored example(s) not scored in every run ({_fmt_ids(extra)})")
        if run.skipped:
            differ.append(f"{run.label} skipped {len(run.skipped)} example(s) ({_fmt_ids(run.skipped)})")
    if differ:
        if strict:
            raise CompareError("the runs' example sets differ (--strict): " + "; ".join(differ)
                               + f". Without --strict only the {len(ids)} shared example(s) are compared.")
        notes.append(f"the example sets differ: comparing only the {len(ids)} example(s) scored in every run; "
                     + "; ".join(differ))
    if not ids:
        raise CompareError("the runs share no scored example: nothing to compare")
    for run in runs[1:]:
        labels = [i for i in ids if run.records[i].get("label") != first.records[i].get("label")]
        if labels:
            raise CompareError(f"{run.label} and {first.label} give {len(labels)} shared example(s) different true "
                               f"labels ({_fmt_ids(labels)}): the runs did not see the same data")
        texts = [i for i in ids if run.records[i].get("texts") != first.records[i].get("texts")]
        if texts:
            notes.append(f"{run.label} and {first.label} have different captions for {len(texts)} example(s) "
                         f"({_fmt_ids(texts)})")
    return Shared(ids, notes)


# ------------------------------------------------------------------------------------------ statistics

def metric_names(metric: str) -> tuple[str, ...]:
    return WINOGROUND_METRICS if metric == "winoground" else CLASSIFICATION_METRICS


def correct_vector(run: Run, ids: Sequence[str], metric: str):
    """Per-example 0/1 verdicts of one binary metric, in ``ids`` order."""
    import numpy as np

    key = "correct" if metric in ("accuracy", "mean_per_class") else metric
    return np.array([bool(run.records[i]["verdicts"][key]) for i in ids], dtype=bool)


def labels_vector(run: Run, ids: Sequence[str]):
    import numpy as np

    return np.array([int(run.records[i]["label"]) for i in ids], dtype=np.int64)


def mean_per_class(correct, labels) -> float:
    import numpy as np

    classes = np.unique(labels)
    return float(np.mean([correct[labels == c].mean() for c in classes])) if len(classes) else float("nan")


def _rng(seed: int, *parts: str):
    """A generator seeded by ``seed`` and the names of what it is for: results do not depend on order."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32("\x1f".join(parts).encode())])


def _mpc_resamples(vectors, labels, n_boot: int, rng):
    """Mean per-class accuracy of each 0/1 vector over ``n_boot`` paired resamples of the examples.

    Resampling n examples with replacement draws the class counts from Multinomial(n, class shares)
    and, within a class, how many of each joint outcome (which vectors are right) from a multinomial
    over that class's examples: drawing those counts directly has exactly the distribution of index
    resampling, at a cost independent of n.
    """
    import numpy as np

    n = len(labels)
    classes, lab = np.unique(labels, return_inverse=True)
    code = np.zeros(n, dtype=np.int64)
    for j, vec in enumerate(vectors):
        code |= np.asarray(vec, dtype=np.int64) << j
    n_codes = 1 << len(vectors)
    table = np.zeros((len(classes), n_codes))
    np.add.at(table, (lab, code), 1)
    class_n = table.sum(axis=1)
    drawn = rng.multinomial(n, class_n / n, size=n_boot)  # (n_boot, K) class counts
    acc = np.zeros((len(vectors), n_boot, len(classes)))
    for c in range(len(classes)):
        outcomes = rng.multinomial(drawn[:, c], table[c] / class_n[c])  # (n_boot, n_codes)
        for j in range(len(vectors)):
            hits = outcomes[:, [k for k in range(n_codes) if k >> j & 1]].sum(axis=1)
            acc[j, :, c] = hits / np.maximum(drawn[:, c], 1)
    present = drawn > 0
    return [(a * present).sum(axis=1) / present.sum(axis=1) for a in acc]


def _percentile_ci(samples) -> list[float]:
    import numpy as np

    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def value_with_ci(run: Run, ids: Sequence[str], metric: str, n_boot: int, seed: int, subset: str) -> dict:
    """One model's value on ``ids`` with a 95 % interval (Wilson; bootstrap for mean per-class)."""
    from .metrics import wilson_interval

    correct = correct_vector(run, ids, metric)
    if metric in BINARY:
        k = int(correct.sum())
        return {"value": k / len(ids), "ci95": list(wilson_interval(k, len(ids))), "ci_method": "wilson"}
    labels = labels_vector(run, ids)
    (boot,) = _mpc_resamples([correct], labels, n_boot, _rng(seed, "value", run.label, subset, metric))
    return {"value": mean_per_class(correct, labels), "ci95": _percentile_ci(boot), "ci_method": "bootstrap"}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of ``a_only`` out of the discordant pairs, p = ½."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap_binary(a, b, n_boot: int, rng) -> list[float]:
    """Percentile 95 % interval of mean(b) − mean(a) under resampling of the (paired) examples."""
    import numpy as np

    n = len(a)
    plus = int(np.sum(b & ~a))
    minus = int(np.sum(a & ~b))
    if plus == 0 and minus == 0:
        return [0.0, 0.0]
    counts = rng.multinomial(n, [plus / n, minus / n, (n - plus - minus) / n], size=n_boot)
    return _percentile_ci((counts[:, 0] - counts[:, 1]) / n)


def pair_stats(a_run: Run, b_run: Run, ids: Sequence[str], metric: str, n_boot: int, seed: int,
               subset: str) -> dict[str, Any]:
    """B − A on the same examples: difference, bootstrap interval, McNemar, discordant counts and ids."""
    import numpy as np

    a = correct_vector(a_run, ids, metric)
    b = correct_vector(b_run, ids, metric)
    rng = _rng(seed, "pair", a_run.label, b_run.label, subset, metric)
    ids_arr = np.array(ids, dtype=object)
    a_only = [str(i) for i in ids_arr[a & ~b]]
    b_only = [str(i) for i in ids_arr[b & ~a]]
    out: dict[str, Any] = {"a": a_run.label, "b": b_run.label, "subset": subset, "metric": metric, "n": len(ids)}
    if metric in BINARY:
        out.update(a_value=float(a.mean()), b_value=float(b.mean()), diff=float(b.mean() - a.mean()),
                   ci95=paired_bootstrap_binary(a, b, n_boot, rng),
                   mcnemar_p=mcnemar_exact(len(a_only), len(b_only)),
                   a_only=len(a_only), b_only=len(b_only), a_only_ids=a_only, b_only_ids=b_only)
    else:
        labels = labels_vector(a_run, ids)
        ra, rb = _mpc_resamples([a, b], labels, n_boot, rng)
        va, vb = mean_per_class(a, labels), mean_per_class(b, labels)
        out.update(a_value=va, b_value=vb, diff=vb - va, ci95=_percentile_ci(rb - ra), mcnemar_p=None,
                   a_only=len(a_only), b_only=len(b_only), a_only_ids=a_only, b_only_ids=b_only)
    return out


def subsets(runs: Sequence[Run], ids: Sequence[str]) -> list[tuple[str, list[str]]]:
    """("all", ids) then ("key=value", ids) for every breakdown tag the runs' results break down by."""
    from .metrics import _groups

    first = runs[0]
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.breakdowns if k not in keys]
    records = [first.records[i] for i in ids]
    out = [("all", list(ids))]
    for key in keys:
        for value, rs in _groups(records, key).items():
            out.append((f"{key}={value}", [str(r["id"]) for r in rs]))
    return out


def pairs_of(runs: Sequence[Run], mode: str) -> list[tuple[Run, Run]]:
    if mode == "all":
        return [(runs[i], runs[j]) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return [(runs[0], run) for run in runs[1:]]


def build_comparison(runs: Sequence[Run], shared: Shared, pairs: str = "first", n_boot: int = 10_000,
                     seed: int = 0) -> dict[str, Any]:
    """Everything the outputs show, as plain JSON-ready data (full id lists included)."""
    metric = runs[0].metric
    names = metric_names(metric)
    groups = subsets(runs, shared.ids)
    scores = []
    for subset, ids in groups:
        for m in names:
            scores.append({"subset": subset, "n": len(ids), "metric": m,
                           "values": {run.label: value_with_ci(run, ids, m, n_boot, seed, subset) for run in runs}})
    pair_rows = [pair_stats(a, b, ids, m, n_boot, seed, subset)
                 for a, b in pairs_of(runs, pairs) for subset, ids in groups for m in names]
    return {
        "task": runs[0].task, "metric": metric, "n_shared": len(shared.ids), "notes": list(shared.notes),
        "runs": [{"label": run.label, "model": run.results["model"]["name"], "results": str(run.path),
                  "samples": str(run.samples_path), "n_scored": len(run.records), "n_skipped": len(run.skipped)}
                 for run in runs],
        "bootstrap": {"resamples": n_boot, "seed": seed},
        "scores": scores, "pairs": pair_rows,
    }


# ---------------------------------------------------------------------------------------------- output

def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


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
    lines += ["", "Scores in % with 95 % intervals (Wilson; bootstrap for mean per-class):", "",
              "| subset | n | metric | " + " | ".join(_cell(x) for x in labels) + " |",
              "|---|---:|---|" + "---:|" * len(labels)]
    for row in comp["scores"]:
        cells = [f"{_pct(v['value'])} [{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]"
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
                + (f"{r['a_only']} | {r['b_only']} | {_cell(_fmt_ids(r['a_only_ids']))} | "
                   f"{_cell(_fmt_ids(r['b_only_ids']))} |" if binary else "— | — | — | — |"))
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


def write_plot(path: str | Path, comp: dict[str, Any]) -> None:
    """Grouped bars: one panel per metric, one group per subset, one bar per model, 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [r["label"] for r in comp["runs"]]
    metrics = list(dict.fromkeys(row["metric"] for row in comp["scores"]))
    subset_names = list(dict.fromkeys(row["subset"] for row in comp["scores"]))
    by = {(row["subset"], row["metric"]): row for row in comp["scores"]}
    width_in = max(6.0, 1.0 + len(subset_names) * max(1.3, 0.35 * len(labels) + 0.4))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width_in, 2.8 * len(metrics) + 0.6), squeeze=False)
    x = np.arange(len(subset_names))
    bar = 0.8 / len(labels)
    for ax, metric in zip(axes[:, 0], metrics):
        for k, label in enumerate(labels):
            vals = np.array([100 * by[(s, metric)]["values"][label]["value"] for s in subset_names])
            lo = np.array([100 * by[(s, metric)]["values"][label]["ci95"][0] for s in subset_names])
            hi = np.array([100 * by[(s, metric)]["values"][label]["ci95"][1] for s in subset_names])
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            ax.bar(x + (k - (len(labels) - 1) / 2) * bar, vals, bar, yerr=err, capsize=3, label=label)
        ax.set_ylabel(f"{METRIC_TITLES[metric]} (%)")
        ax.set_ylim(0, 105)
        ax.set_xticks(x)
        ax.set_xticklabels([s.replace("=", "=\n", 1) + f"\n(n={by[(s, metric)]['n']})" for s in subset_names],
                           fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(f"{comp['task']}: {comp['n_shared']} shared examples, 95 % intervals")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- command

@click.command(name="compare")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--pairs", type=click.Choice(["first", "all"]), default="first", show_default=True,
              help="Test the first run against each other one, or every pair.")
@click.option("--strict", is_flag=True,
              help="Refuse when the runs' example sets differ (default: compare the shared ones).")
@click.option("--label", "labels", multiple=True,
              help="Name of each run in the tables (repeat once per run, in order).")
@click.option("--n-boot", default=10_000, show_default=True, type=click.IntRange(min=100),
              help="Paired bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write grouped bars with 95 % intervals (PNG).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report: every example, its images, captions, scores and verdicts.")
@click.option("--data-dir", type=click.Path(),
              help="Where the task's data is, for the HTML images [the run's --data-dir].")
@click.option("--no-images", is_flag=True, help="HTML report without images (no dataset access).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per example × model (CSV).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the whole comparison as JSON (full id lists).")
@click.option("--calibrate", is_flag=True,
              help="Classification runs: also fit a softmax temperature per run and report ECE/NLL before and after.")
def compare_command(results, pairs, strict, labels, n_boot, seed, plot_path, html_path, data_dir, no_images,
                    csv_path, json_path, calibrate) -> None:
    """Compare runs of one task: scores side by side and paired tests on the shared examples.

    RESULTS are results_<stamp>.json files (or output directories) of runs made with --log-samples.
    Prints markdown: each metric overall and per tag with 95 % intervals, then for each pair of runs
    the difference with an exact McNemar test, a paired bootstrap interval, and the examples that
    one model gets right and the other wrong.
    """
    try:
        runs = [load_run(p) for p in results]
        _unique_labels(runs, labels)
        shared = check_runs(runs, strict=strict)
    except CompareError as exc:
        raise click.ClickException(str(exc)) from None
    comp = build_comparison(runs, shared, pairs=pairs, n_boot=n_boot, seed=seed)
    click.echo(markdown_report(comp))
    if calibrate:
        from .calibration import CalibrationError, calibrate as fit, markdown as cal_markdown

        if comp["metric"] != "classification":
            click.echo("\nnote: --calibrate applies to classification runs only; skipped", err=True)
        else:
            try:
                reps = [(run.label, fit([run.records[i] for i in shared.ids], seed=seed)) for run in runs]
            except CalibrationError as exc:
                raise click.ClickException(f"--calibrate: {exc}") from None
            comp["calibration"] = {name: rep.to_dict() for name, rep in reps}
            click.echo("\nCalibration (temperature fitted on a seeded half of the shared examples):\n")
            click.echo(cal_markdown(reps))
    if csv_path:
        n = write_csv(csv_path, runs, shared.ids)
        click.echo(f"wrote {csv_path} ({n} rows)", err=True)
    if json_path:
        Path(json_path).write_text(json.dumps(_json_safe(comp), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    if plot_path:
        write_plot(plot_path, comp)
        click.echo(f"wrote {plot_path}", err=True)
    if html_path:
        from .report import load_images, write_html

        images, class_names, warning = ({}, None, None) if no_images else load_images(runs[0], shared.ids, data_dir)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        write_html(html_path, comp, runs, shared.ids, images, class_names)
        click.echo(f"wrote {html_path}", err=True)
