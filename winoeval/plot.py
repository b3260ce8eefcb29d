"""The ``winoeval compare --plot`` figure: grouped bars with 95 % intervals and chance lines.

One panel per metric; one group of bars per subset (``all`` first, then each breakdown tag, with the
tag's key written once under its groups); one bar per model, named by :func:`short_label`. Every bar
has an outline and its value written above it, so a 0 % bar is still visible; a dashed line marks
chance (Winoground: text and image 25 %, group 1/6 ≈ 16.7 %; classification: 1/K).

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


def write_plot(path: str | Path, comp: dict[str, Any]) -> None:
    """Grouped bars: one panel per metric, one group per subset, one bar per model, 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import blended_transform_factory

    labels = [r["label"] for r in comp["runs"]]
    names = short_labels(labels)
    metrics = list(dict.fromkeys(row["metric"] for row in comp["scores"]))
    subset_names = list(dict.fromkeys(row["subset"] for row in comp["scores"]))
    by = {(row["subset"], row["metric"]): row for row in comp["scores"]}
    n_models = len(labels)
    group_w = max(1.0, 0.45 * n_models + 0.3)
    width_in = min(24.0, max(5.0, 1.6 + len(subset_names) * group_w))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width_in, 3.0 * len(metrics) + 0.8), squeeze=False)
    x = np.arange(len(subset_names))
    bar = min(0.8 / n_models, 0.3)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # subsets "key=value": tick shows the value and n; the key is written once under its run of groups
    keys = [s.split("=", 1)[0] if "=" in s else None for s in subset_names]
    for ax, metric in zip(axes[:, 0], metrics):
        for k, label in enumerate(labels):
            vals = np.array([100 * by[(s, metric)]["values"][label]["value"] for s in subset_names])
            lo = np.array([100 * by[(s, metric)]["values"][label]["ci95"][0] for s in subset_names])
            hi = np.array([100 * by[(s, metric)]["values"][label]["ci95"][1] for s in subset_names])
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            pos = x + (k - (n_models - 1) / 2) * bar
            color = colors[k % len(colors)]
            ax.bar(pos, vals, bar * 0.92, yerr=err, capsize=3, label=names[label], color=color, alpha=0.85,
                   edgecolor=color, linewidth=1.5, error_kw={"elinewidth": 1, "ecolor": "#333"}, zorder=2)
            for px, v, top in zip(pos, vals, hi):
                ax.text(px, top + 1.5, f"{v:.1f}".rstrip("0").rstrip("."), ha="center", va="bottom", fontsize=7, color="#333")
        chance = chance_level(comp, metric)
        if chance is not None:
            ax.axhline(100 * chance, color="#555", linestyle="--", linewidth=1, zorder=1)
            ax.text(1.0, 100 * chance, f" chance {100 * chance:.1f} %", transform=blended_transform_factory(
                ax.transAxes, ax.transData), va="center", ha="left", fontsize=8, color="#555")
        ax.set_ylabel(f"{METRIC_TITLES[metric]} (%)")
        ax.set_ylim(-2, 112)
        ax.set_xlim(-0.6, len(subset_names) - 0.4)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_xticks(x)
        ticks = []
        for s in subset_names:
            value = s.split("=", 1)[1] if "=" in s else s
            ticks.append(f"{value}\nn={by[(s, metric)]['n']}")
        ax.set_xticklabels(ticks, fontsize=8)
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.spines[["top", "right"]].set_visible(False)
        # separators and key names under each run of the same breakdown key
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        start = 0
        for i in range(1, len(subset_names) + 1):
            if i == len(subset_names) or keys[i] != keys[start]:
                if i < len(subset_names):
                    ax.axvline(i - 0.5, color="#bbb", linewidth=0.8, zorder=0)
                if keys[start] is not None:
                    ax.text((start + i - 1) / 2, -0.19, keys[start].replace("_", " "), transform=trans,
                            ha="center", va="top", fontsize=8, color="#555", style="italic")
                start = i
    axes[0, 0].set_title(f"{comp['task']}: {comp['n_shared']} shared examples; bars with 95 % intervals",
                         fontsize=10)
    handles, legend_names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, legend_names, fontsize=9, loc="upper center", ncol=min(len(labels), 4),
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.tight_layout(h_pad=2.5)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
