"""The ``winoeval compare --plot`` figure: grouped bars with 95 % intervals, significance marks and chance lines.

One panel per metric (Winoground: text, image, group); one group of bars per subset (``all`` first,
then each breakdown's values in the task's own order, the breakdown's name written once under its
groups, n under each group); one bar per model. A subset holding exactly the examples of an earlier one
(WinoDigits' ``contrast=object`` is ``collapsed_tag=object``) is drawn once, its other name under it.
``by`` picks the breakdowns (``--by collapsed_tag``; ``none``: only ``all``).

Above each bar of a later model, stars give the exact McNemar p against the first model on that
group's examples (* < 0.05, ** < 0.01, *** < 0.001; per group, not corrected for multiple comparisons).
Every value label has one decimal. A dashed line marks chance (Winoground: text and image 25 %, group
1/6 ≈ 16.7 %; classification: 1/K).

Classification: one panel of overall accuracy (with mean per-class accuracy only where it differs from
accuracy, i.e. unbalanced classes, and any breakdowns) and one panel of per-class accuracy.

Sizes (``size``): ``column`` (3.4 in wide: one column of a two-column paper), ``page`` (7 in: the full
text width) and ``slide`` (12 in wide, 12 pt type: three panels fit a 16:9 slide). The format follows the file's suffix
(``.png`` at 300 dpi, ``.pdf``, ``.svg``).

Rendering only (matplotlib is imported inside :func:`write_plot`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .results import METRIC_TITLES

# Chance of a scorer with i.i.d. continuous scores: text and image each need two independent pairwise
# comparisons right (1/2 · 1/2); group needs s00 and s11 to be the two largest of the four scores:
# 2!·2!/4! = 1/6.
WINOGROUND_CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}

# (width in inches, height of one panel in inches, base font size in points)
SIZES = {"column": (3.4, 1.9, 7.0), "page": (7.0, 2.2, 8.0), "slide": (12.0, 2.05, 12.0)}
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
PALETTE = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB")  # colour-blind safe


def short_label(label: str, keep: int = 28) -> str:
    """A model name fit for a legend: ``sd:/data/models/sd2`` → ``sd:…/sd2``,
    ``openclip:ViT-H-14//data/x/open_clip.bin`` → ``openclip:ViT-H-14``; short names stay as they are."""
    if len(label) <= keep:
        return label
    prefix, sep, arg = label.partition(":")
    if not sep:
        return label[: keep - 1] + "…"
    if "//" in arg:  # openclip:ARCH//PATH
        return f"{prefix}:{arg.split('//', 1)[0]}"
    parts = [p for p in arg.replace("\\", "/").split("/") if p]
    if len(parts) > 1:
        return f"{prefix}:…/{parts[-1]}"
    return label[: keep - 1] + "…"


def short_labels(labels: Sequence[str]) -> dict[str, str]:
    """:func:`short_label` of each label, or the full labels when shortening would make two the same."""
    short = {x: short_label(x) for x in labels}
    return short if len(set(short.values())) == len(short) else {x: x for x in labels}


def chance_level(comp: dict[str, Any], metric: str) -> float | None:
    if comp["metric"] == "winoground":
        return WINOGROUND_CHANCE.get(metric)
    if comp.get("chance") is not None:  # choice: the mean of 1/K over the examples
        return comp["chance"]
    k = comp.get("n_classes")
    return 1.0 / k if k else None


def stars(p: float | None) -> str:
    """Significance mark of a p-value: *** < 0.001, ** < 0.01, * < 0.05, else nothing."""
    if p is None:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def value_label(v: float) -> str:
    """A bar's value in % with one decimal, always (``94.0``, never ``94``)."""
    return f"{100 * v:.1f}"


def breakdown_keys(comp: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(row["subset"].split("=", 1)[0] for row in comp["scores"] if "=" in row["subset"]))


def check_by(comp: dict[str, Any], by: Sequence[str] | None) -> list[str] | None:
    """The breakdowns ``--by`` names, checked against the comparison's; ``none`` → []; None → all."""
    if by is None:
        return None
    wanted = [k.strip() for item in by for k in str(item).split(",") if k.strip()]
    if wanted == ["none"]:
        return []
    known = breakdown_keys(comp)
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise ValueError(f"--by {', '.join(unknown)}: {comp['task']} breaks down by "
                         f"{', '.join(known) or 'nothing'} (or none: only all)")
    return wanted


def plot_groups(comp: dict[str, Any], by: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The groups of bars: [{subset, key, value, n, aliases}], ``all`` first, then the chosen breakdowns in
    the comparison's order (the task's), each set of examples once (its other names as ``aliases``)."""
    keys = check_by(comp, by)
    same_as = comp.get("same_as") or {}
    seen: dict[str, dict[str, Any]] = {}
    out = []
    for row in comp["scores"]:
        subset = row["subset"]
        if subset in seen:
            continue
        key, _, value = subset.partition("=") if "=" in subset else (None, "", subset)
        if key is not None and keys is not None and key not in keys:
            seen[subset] = {}
            continue
        original = same_as.get(subset)
        if original is not None and original in seen and seen[original]:
            seen[original]["aliases"].append(subset)  # the same examples, already drawn
            seen[subset] = {}
            continue
        group = {"subset": subset, "key": key, "value": value, "n": row["n"], "aliases": []}
        seen[subset] = group
        out.append(group)
    return out


def _p_values(comp: dict[str, Any]) -> dict[tuple[str, str, str], float | None]:
    """(subset, metric, later model) → McNemar p against the first model."""
    first = comp["runs"][0]["label"]
    return {(r["subset"], r["metric"], r["b"]): r["mcnemar_p"] for r in comp["pairs"] if r["a"] == first}


def _group_label(group: dict[str, Any]) -> str:
    text = group["value"]
    for alias in group["aliases"]:
        key, _, value = alias.partition("=")
        name = key.replace('_', ' ')
        text += f"\n(= {name} {value})" if value != group["value"] else f"\n(= {name})"
    return f"{text}\nn={group['n']}"


def label_mode(panel_width_in: float, n_groups: int, n_models: int, fs: float, at_least: int = 3) -> str:
    """How value labels fit over bars: ``flat`` when "100.0" is narrower than a bar's slot, ``rotated``
    when a rotated one (its line height) still fits, else ``none`` (the axis gives the values; the stars
    stay)."""
    slot_in = panel_width_in / max(n_groups, at_least) * min(0.8 / n_models, 0.34)
    if 5 * 0.55 * (fs - 1.5) / 72 <= slot_in:
        return "flat"
    return "rotated" if 1.15 * (fs - 1.5) / 72 <= slot_in else "none"


def _bars(ax, groups, labels, names, values_of, p_of, fs: float, colors, mode: str) -> None:
    """One group of bars per entry of ``groups``; ``values_of(group, label)`` → {value, ci95}."""
    import numpy as np

    n_models = len(labels)
    x = np.arange(len(groups))
    bar = min(0.8 / n_models, 0.34)
    for k, label in enumerate(labels):
        vals = np.array([100 * values_of(g, label)["value"] for g in groups], dtype=float)
        lo = np.array([100 * values_of(g, label)["ci95"][0] for g in groups], dtype=float)
        hi = np.array([100 * values_of(g, label)["ci95"][1] for g in groups], dtype=float)
        err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
        pos = x + (k - (n_models - 1) / 2) * bar
        color = colors[k % len(colors)]
        ax.bar(pos, vals, bar * 0.9, yerr=err, label=names[label], color=color, edgecolor="#222",
               linewidth=0.4, error_kw={"elinewidth": 0.7, "ecolor": "#222", "capsize": 1.5}, zorder=2)
        for g, px, v, top in zip(groups, pos, vals, hi):
            mark = stars(p_of(g, label)) if k > 0 else ""
            rotate = mode == "rotated"
            if mode == "none":
                text = mark
            else:
                text = (f"{v:.1f} {mark}".rstrip() if rotate else (f"{mark}\n{v:.1f}" if mark else f"{v:.1f}"))
            if text:
                ax.text(px, top + (2.0 if rotate else 1.0), text, ha="center", va="bottom", fontsize=fs - 1.5,
                        color="#222", rotation=90 if rotate else 0, linespacing=0.9)


def write_plot(path: str | Path, comp: dict[str, Any], by: Sequence[str] | None = None, size: str = "page") -> None:
    """Grouped bars: one panel per metric, one group per subset, one bar per model, 95 % intervals,
    significance marks against the first model; classification adds a per-class panel."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--plot {path}: write .png, .pdf or .svg (the format follows the suffix)")
    if size not in SIZES:
        raise ValueError(f"unknown plot size {size!r}; use {', '.join(SIZES)}")
    width_in, panel_h, fs = SIZES[size]
    labels = [r["label"] for r in comp["runs"]]
    names = short_labels(labels)
    groups = plot_groups(comp, by)
    by_row = {(row["subset"], row["metric"]): row for row in comp["scores"]}
    p_values = _p_values(comp)
    classification = comp["metric"] == "classification"
    metrics = list(dict.fromkeys(row["metric"] for row in comp["scores"]))
    if classification:  # mean per-class only where it is not the accuracy again (balanced classes)
        differs = any(abs(by_row[(g["subset"], "mean_per_class")]["values"][x]["value"]
                          - by_row[(g["subset"], "accuracy")]["values"][x]["value"]) > 5e-4
                      for g in groups for x in labels if (g["subset"], "mean_per_class") in by_row)
        metrics = ["accuracy"] + (["mean_per_class"] if differs else [])
    panels: list[tuple[str, Any]] = [("metric", m) for m in metrics]
    per_class = comp.get("per_class") or []
    if classification and per_class:
        panels.append(("per_class", None))
    panel_w = width_in
    n_overall = len(groups) * (len(metrics) if classification else 1)
    plt.rcParams.update({"font.size": fs, "axes.titlesize": fs, "axes.labelsize": fs, "xtick.labelsize": fs - 1,
                         "ytick.labelsize": fs - 1, "legend.fontsize": fs, "pdf.fonttype": 42, "svg.fonttype": "none"})
    extra_rows = max((len(g["aliases"]) for g in groups), default=0)
    # classification with a small overall panel (all, and a few tags): overall and per class side by side,
    # each as wide as its groups need, instead of one wide panel holding a single pair of bars
    side = classification and len(panels) == 2 and n_overall <= 3
    rows = 1 if side else len(panels)
    fig_h = panel_h * rows + 0.6 + 0.12 * fs / 8 * extra_rows * rows
    if side:
        fig, grid = plt.subplots(1, 2, figsize=(width_in, fig_h + 0.3), sharey=True, squeeze=False,
                                 gridspec_kw={"width_ratios": [n_overall + 1.2, len(per_class)]})
        axes = grid.reshape(-1, 1)
    else:
        fig, axes = plt.subplots(rows, 1, figsize=(width_in, fig_h), squeeze=False)
    tops: list[int] = []
    colors = PALETTE if len(labels) <= len(PALETTE) else plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ctx = dict(groups=groups, metrics=metrics, classification=classification, by_row=by_row, p_values=p_values,
               labels=labels, names=names, fs=fs, colors=colors, side=side, extra_rows=extra_rows, comp=comp,
               per_class=per_class, n_overall=n_overall, panel_w=panel_w)
    for ax, (kind, metric) in zip(axes[:, 0], panels):
        if kind == "metric":
            chance, n_x, mode = _metric_panel(ax, metric, ctx)
        else:
            chance, n_x, mode = _class_panel(ax, ctx)
        _finish_axis(ax, kind, chance, n_x, mode, side, tops, fs)
    _legend_and_save(fig, axes, path, comp, labels, names, side, fs)


def _metric_panel(ax, metric, ctx) -> tuple[float | None, int, str]:
    """One metric's panel: a group of bars per subset, the breakdowns' names under their groups."""
    import numpy as np
    from matplotlib.transforms import blended_transform_factory

    groups, metrics, classification, by_row = ctx["groups"], ctx["metrics"], ctx["classification"], ctx["by_row"]
    p_values, labels, names, fs, colors = ctx["p_values"], ctx["labels"], ctx["names"], ctx["fs"], ctx["colors"]
    side, extra_rows, comp, per_class = ctx["side"], ctx["extra_rows"], ctx["comp"], ctx["per_class"]
    n_overall, panel_w = ctx["n_overall"], ctx["panel_w"]
    if classification:  # one panel: accuracy (and mean per-class) as groups
        shown = [dict(g, metric=m) for m in metrics for g in groups]
    else:
        shown = [dict(g, metric=metric) for g in groups]

    def values_of(g, label):
        return by_row[(g["subset"], g["metric"])]["values"][label]

    def p_of(g, label):
        return p_values.get((g["subset"], g["metric"], label))

    width = (panel_w - 0.9) * ((n_overall + 1.2) / (n_overall + 1.2 + len(per_class)) if side else 1)
    mode = label_mode(width, len(shown), len(labels), fs, at_least=1 if side else 3)
    _bars(ax, shown, labels, names, values_of, p_of, fs, colors, mode)
    ticks = []
    for g in shown:
        tick = _group_label(g)
        if classification and len(metrics) > 1:
            tick = f"{METRIC_TITLES[g['metric']]}\n{tick}"
        ticks.append(tick)
    ax.set_xticks(np.arange(len(shown)))
    ax.set_xticklabels(ticks)
    ax.set_ylabel(f"{METRIC_TITLES[metric]} (%)" if not classification else "accuracy (%)")
    # separators and the breakdown's name under each run of its groups
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    keys = [g["key"] for g in shown]
    start = 0
    for i in range(1, len(shown) + 1):
        if i == len(shown) or keys[i] != keys[start]:
            if i < len(shown):
                ax.axvline(i - 0.5, color="#bbb", linewidth=0.6, zorder=0)
            if keys[start] is not None:  # under the tick labels (value, aliases, n)
                lines = 2 + extra_rows + (1 if classification and len(metrics) > 1 else 0)
                ax.annotate(keys[start].replace("_", " "), xy=((start + i - 1) / 2, 0), xycoords=trans,
                            xytext=(0, -(lines * (fs - 1) * 1.2 + 6)), textcoords="offset points",
                            ha="center", va="top", fontsize=fs - 1, color="#444", style="italic")
            start = i
    chance = chance_level(comp, metric if not classification else "accuracy")
    n_x = len(shown)
    return chance, n_x, mode


def _class_panel(ax, ctx) -> tuple[float | None, int, str]:
    """Classification's per-class panel (one group per true class)."""
    import numpy as np

    labels, names, fs, colors = ctx["labels"], ctx["names"], ctx["fs"], ctx["colors"]
    side, comp = ctx["side"], ctx["comp"]
    per_class, n_overall, panel_w = ctx["per_class"], ctx["n_overall"], ctx["panel_w"]
    def values_of(g, label):
        return g["values"][label]

    def p_of(g, label):
        return g["mcnemar_p_vs_first"].get(label)

    width = (panel_w - 0.9) * (len(per_class) / (n_overall + 1.2 + len(per_class)) if side else 1)
    mode = label_mode(width, len(per_class), len(labels), fs)
    _bars(ax, per_class, labels, names, values_of, p_of, fs, colors, mode)
    ax.set_xticks(np.arange(len(per_class)))
    sizes = {c["n"] for c in per_class}
    # class names that would run into each other are tilted
    tilt = max(len(c["name"]) for c in per_class) * 0.6 * (fs - 1) / 72 > width / len(per_class)
    same_n = len(sizes) == 1  # the same n for every class: said once, under the axis
    ax.set_xticklabels([c["name"] if same_n else f"{c['name']}\nn={c['n']}" for c in per_class],
                       rotation=45 if tilt else 0, ha="right" if tilt else "center",
                       rotation_mode="anchor" if tilt else "default")
    ax.set_xlabel(f"true class (n = {sizes.pop()} each)" if same_n else "true class")
    if side:
        ax.set_title("per class", fontsize=fs, loc="left")
    else:
        ax.set_ylabel("per-class accuracy (%)")
    chance = chance_level(comp, "accuracy")
    n_x = len(per_class)
    return chance, n_x, mode


def _finish_axis(ax, kind, chance, n_x, mode, side, tops, fs) -> None:
    """Chance line, limits, ticks and grid of one panel."""
    from matplotlib.transforms import blended_transform_factory

    if chance is not None:
        ax.axhline(100 * chance, color="#555", linestyle="--", linewidth=0.8, zorder=1)
        if not side or kind == "per_class":  # side by side: the label once, right of the last panel
            ax.text(1.0, 100 * chance, f" chance\n {100 * chance:.1f}", transform=blended_transform_factory(
                ax.transAxes, ax.transData), va="center", ha="left", fontsize=fs - 1.5, color="#555")
    tops.append(128 if mode == "rotated" else 118)
    ax.set_ylim(0, max(tops))  # side by side the axes share y: the roomiest panel sets it
    pad = 0.0 if side else max(0.0, (3 - n_x) / 2)  # one or two groups: narrower bars, not a wall of colour
    ax.set_xlim(-0.6 - pad, n_x - 0.4 + pad)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.grid(axis="y", alpha=0.3, zorder=0, linewidth=0.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="x", length=0)


def _legend_and_save(fig, axes, path, comp, labels, names, side, fs) -> None:
    """Title, legend, the note on intervals and marks; write the file in the suffix's format."""
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lower()
    title = f"{comp['task']}: {comp['n_shared']} shared examples"
    if side:
        fig.suptitle(title, fontsize=fs, x=0.02, ha="left")
    else:
        axes[0, 0].set_title(title, fontsize=fs, loc="left")
    handles, legend_names = axes[0, 0].get_legend_handles_labels()
    note = (f"bars: 95 % intervals (Wilson); * p < 0.05, ** p < 0.01, *** p < 0.001: exact McNemar against "
            f"{names[labels[0]]} on the same examples, per group, uncorrected")
    if len(labels) < 2:
        note = "bars: 95 % intervals (Wilson)"
    legend = fig.legend(handles, legend_names, loc="upper center", ncol=min(len(labels), 4),
                        bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=fs)
    fig.tight_layout(h_pad=1.2)
    fig.canvas.draw()
    bbox = legend.get_window_extent().transformed(fig.transFigure.inverted())
    fig.text(0.5, bbox.y0 - 0.005, note, ha="center", va="top", fontsize=fs - 2, color="#444", wrap=True)
    fig.savefig(path, format=FORMATS[suffix], dpi=300 if suffix == ".png" else None, bbox_inches="tight")
    plt.close(fig)
