"""timestep_bands: which timesteps decide? Accuracy per timestep band and under three weightings, from one
``--log-errors`` run per model (``winoeval rescore``'s code, no extra model call).

Runs (fixed budget, even timesteps, so every example has the same t grid and every band the same samples):

* ``mnist-unet`` on ``mnist`` (held-out digits; T = 400), N = 40: t = 5, 15, …, 395;
* ``winodigits-sd`` on ``winodigits`` (Winoground metric, normalised; T = 1000), N = 40: t = 12, 37, …, 987.

Each band keeps only its samples (``range:a-b``: 8 bands, 5 samples each); the weightings use all 40:
``uniform`` (the run), ``snr``, ``min-snr:5``. A picture: ``benchmarks/results/timestep_bands.png``.

    python -m benchmarks --only timestep_bands            # 200 digits + 200 pairs (~25 min on a busy 2-core CPU)
    python -m benchmarks --only timestep_bands --quick    # 50 + 50
"""

from __future__ import annotations

from typing import Any

from .common import RESULTS, WORK, log, md_table, pct

NAME = "timestep_bands"
TITLE = "Which timesteps decide? Accuracy per timestep band and per weighting"
N = 40
BANDS = 8
WEIGHTINGS = ["uniform", "snr", "min-snr:5"]
RUNS = [("mnist-unet", "mnist", 400, ["accuracy"]), ("winodigits-sd", "winodigits", 1000, ["text", "image", "group"])]


def _metrics(records, metric, class_names, weighting):
    from winoeval import metrics
    from winoeval.rescore import parse_weighting, rescore_record

    weight = None if weighting == "uniform" else parse_weighting(weighting)
    rescored = [rescore_record(r, metric, weight) for r in records if "skipped" not in r]
    return metrics.compute(metric, rescored, class_names, [])


def run(quick: bool = False, limit: int | None = None) -> dict[str, Any]:
    import torch

    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    torch.set_num_threads(1)  # a shared CPU: one thread per process is the faster setting here
    limit = limit or (50 if quick else 200)
    out_dir = WORK / NAME
    data: dict[str, Any] = {"n_samples": N, "limit": limit, "models": {}}
    for model, task, T, keys in RUNS:
        config = RunConfig(model, task, scorer_args={"n_samples": (N,), "timesteps": "even"}, limit=limit,
                           output_path=str(out_dir), log_errors=True)
        out = evaluate(config, progress=False, write=False)
        metric = out.results["results"][task]["metric"]
        class_names = out.results["task"].get("class_names")
        width = T // BANDS
        rows = []
        for b in range(BANDS):
            lo, hi = b * width, (b + 1) * width - 1
            m = _metrics(out.records, metric, class_names, f"range:{lo}-{hi}")
            rows.append({"band": [lo, hi], **{k: m[k] for k in keys}})
        weighted = {w: {k: _metrics(out.records, metric, class_names, w)[k] for k in keys} for w in WEIGHTINGS}
        assert all(weighted["uniform"][k] == out.results["results"][task][k] for k in keys)  # rescore = the run
        data["models"][model] = {"task": task, "T": T, "n": out.results["results"][task]["n"], "keys": keys,
                                 "bands": rows, "weightings": weighted}
        log(f"{NAME}: {model}: " + ", ".join(f"{w} {pct(v[keys[0]])}" for w, v in weighted.items()))
    plot(data)
    return data


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = data["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, (model, d) in zip(axes[0], models.items()):
        centres = [(r["band"][0] + r["band"][1] + 1) / 2 for r in d["bands"]]
        for key, style in zip(d["keys"], ["-o", "-s", "-^"]):
            ax.plot(centres, [100 * r[key] for r in d["bands"]], style, label=f"{key}, band only")
        colours = {"uniform": "black", "snr": "tab:red", "min-snr:5": "tab:green"}
        main = d["keys"][0]
        for w, values in d["weightings"].items():
            ax.axhline(100 * values[main], ls="--", lw=1, color=colours[w], label=f"all t, {w} ({main})")
        ax.set_xlabel(f"timestep band (centre; T = {d['T']}, {data['n_samples'] // BANDS} samples per band)")
        ax.set_ylabel("%")
        ax.set_title(f"{model} on {d['task']} (n = {d['n']}, N = {data['n_samples']} even)")
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / f"{NAME}.png", dpi=90)
    plt.close(fig)


def render(data: dict[str, Any]) -> str:
    parts = []
    for model, d in data["models"].items():
        keys = d["keys"]
        parts.append(f"**{model} on {d['task']}** (n = {d['n']}, N = {data['n_samples']} even timesteps, "
                     f"T = {d['T']}):")
        parts.append("")
        header = ["timesteps used", *keys]
        rows = [[f"band {r['band'][0]}–{r['band'][1]} only ({data['n_samples'] // BANDS} samples)",
                 *[pct(r[k]) for k in keys]] for r in d["bands"]]
        rows += [[f"all {data['n_samples']}, weighting `{w}`", *[pct(v[k]) for k in keys]]
                 for w, v in d["weightings"].items()]
        parts.append(md_table(header, rows, align="l" + "r" * len(keys)))
        parts.append("")
    parts.append(f"![accuracy per timestep band](benchmarks/results/{NAME}.png)")
    parts.append("")
    parts.append("`uniform` is the run itself (rescore reproduces its numbers exactly; the benchmark asserts it). "
                 "`snr` weights each sample's ε-error by SNR(t) = ᾱ/(1−ᾱ) (the x₀ error: low noise dominates), "
                 "`min-snr:5` by min(SNR, 5)/SNR (high-SNR samples down-weighted). Bands are disjoint; each uses "
                 "only its 5 samples, so its numbers are noisier than the full runs'.")
    return "\n".join(parts)
