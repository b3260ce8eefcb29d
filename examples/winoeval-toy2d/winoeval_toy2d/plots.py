"""Pictures of the toy2d model: the diffusion classifier's decision map over the plane, and guided samples.

    python -m winoeval_toy2d.plots --out figures/          # boundary.png, guidance_s0.png, _s1, _s4

The decision map scores every point of a grid with winoeval's own scorer and shows
p(spiral a | x) = softmax(score / τ), with τ fitted on training points (maximum likelihood); the black
line is the decision boundary p = ½. The grid uses one shared (t, ε) plan for every point
(``noise="shared"``), so the map is a smooth function of x and not speckled by each point's own noise
draw. The held-out accuracy in its title is computed exactly as ``winoeval run --model toy2d --task
spirals`` computes it (each point's (t, ε) from (seed, its example id)), so the two agree. The guidance
plots draw points of each class with classifier-free guidance and with classifier guidance at one scale s
each, over the training data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click

COLOURS = ("#d95f02", "#1b9e77")  # spiral a, spiral b
MARKERS = ("o", "^")
TRAIN_GREY = "#c8c8c8"


def score_points(model, points, n_samples: int = 20, seed: int = 0, ids=None, noise: str = "per-example"):
    """winoeval scores (len(points), 2): −(denoising error) of each point under each class text.

    ``ids``: the example ids that seed each point's (t, ε) (default ``p0``, ``p1``, …); the task's own ids
    (``test-0``, …) reproduce ``winoeval run`` exactly. ``noise="shared"``: one (t, ε) plan for every point."""
    import numpy as np

    from winoeval.config import ScorerConfig
    from winoeval.scoring import make_scorer

    from .data import CLASS_TEXTS

    scorer = make_scorer(model, ScorerConfig(n_samples=(n_samples,), seed=seed, batch_size=4096, noise=noise))
    out = np.zeros((len(points), len(CLASS_TEXTS)))
    ids = list(ids) if ids is not None else [f"p{i}" for i in range(len(points))]
    items = ((i, ids[i], [tuple(map(float, p))], list(CLASS_TEXTS)) for i, p in enumerate(points))
    if hasattr(scorer, "score_stream"):
        for i, result in scorer.score_stream(items):
            if isinstance(result, BaseException):
                raise result
            out[i] = result.scores[0].numpy()
    else:
        for i, eid, images, texts in items:
            out[i] = scorer.score(eid, images, texts).scores[0].numpy()
    return out


def classify(model, points, n_samples: int = 20, ids=None):
    """The diffusion classifier's verdict (class index) for each point (a tie counts for neither class
    in :func:`accuracy`, as in winoeval's metrics)."""
    return score_points(model, points, n_samples, ids=ids).argmax(axis=1)


def held_out_accuracy(model, n_samples: int = 20) -> float:
    """The accuracy ``winoeval run --model toy2d --task spirals --n-samples N`` reports: the same ids,
    so the same (t, ε) per point, and ties counted wrong."""
    from .data import split

    test_x, test_y = split("test")
    scores = score_points(model, test_x, n_samples, ids=[f"test-{i}" for i in range(len(test_x))])
    pred = scores.argmax(axis=1)
    unique = (scores == scores.max(axis=1, keepdims=True)).sum(axis=1) == 1
    return float(((pred == test_y) & unique).mean())


def fit_temperature(scores, labels) -> float:
    """τ maximising the likelihood of ``labels`` under softmax(scores / τ)."""
    import numpy as np
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_tau: float) -> float:
        return -float(np.mean(log_softmax(scores / np.exp(log_tau), axis=1)[np.arange(len(labels)), labels]))

    return float(np.exp(minimize_scalar(nll, bounds=(-12, 4), method="bounded").x))


def _figure_to_image(fig):
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)
    buf.seek(0)
    image = Image.open(buf)
    image.load()
    return image.convert("RGB")


def decision_figure(model, grid: int = 60, n_samples: int = 20):
    """(PIL image, held-out accuracy, τ): p(spiral a | x) over the plane, held-out points on top.

    The map uses one shared (t, ε) plan for every grid point (smooth); the accuracy is ``winoeval run``'s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .data import CLASS_TEXTS, split

    train_x, train_y = split("train")
    pick = np.random.default_rng(0).choice(len(train_x), 400, replace=False)
    tau = fit_temperature(score_points(model, train_x[pick], n_samples, noise="shared"), train_y[pick])
    test_x, test_y = split("test")
    accuracy = held_out_accuracy(model, n_samples)
    lo, hi = -3.0, 3.0
    axis = np.linspace(lo, hi, grid)
    gx, gy = np.meshgrid(axis, axis)
    scores = score_points(model, np.stack([gx.ravel(), gy.ravel()], axis=1), n_samples, noise="shared")
    z = scores / tau
    p_a = np.exp(z[:, 0] - np.logaddexp(z[:, 0], z[:, 1])).reshape(grid, grid)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    # pale background (the class colours at low saturation), so that the points on it stay visible
    from matplotlib.colors import LinearSegmentedColormap

    pale = LinearSegmentedColormap.from_list("pale", ["#bfe3d8", "#f7f7f7", "#f9d2b4"])  # spiral b … a
    mesh = ax.contourf(gx, gy, p_a, levels=np.linspace(0, 1, 21), cmap=pale)
    ax.contour(gx, gy, p_a, levels=[0.5], colors="black", linewidths=1.5)
    for k, name in enumerate(CLASS_TEXTS):
        sel = test_y == k
        ax.scatter(test_x[sel, 0], test_x[sel, 1], s=16, c=COLOURS[k], marker=MARKERS[k], edgecolors="black",
                   linewidths=0.4, label=f"held-out {name}")
    fig.colorbar(mesh, ax=ax, label=f"p({CLASS_TEXTS[0]} | x) = softmax(score / τ), τ = {tau:.2g}")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal",
           title=f"toy2d diffusion classifier (N = {n_samples})\nheld-out accuracy {100 * accuracy:.1f} % "
                 f"({len(test_y)} points, as `winoeval run`)")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    image = _figure_to_image(fig)
    plt.close(fig)
    return image, accuracy, tau


def guidance_figure(model, labels: Sequence[str], scales: Sequence[float], n: int = 300, seed: int = 0):
    """One panel per guidance method (classifier-free, classifier) and scale, side by side: ``n`` sampled
    points of each label, over the training data in grey (labelled in each panel's legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data import CLASS_TEXTS, split

    train_x, _ = split("train")
    methods = (("cfg", "classifier-free: (1+s)·ε(x,c) − s·ε(x)"),
               ("classifier", "classifier: ε(x) − s·√(1−ᾱ)·∇log p(c|x,t)"))
    fig, axes = plt.subplots(1, len(methods) * len(scales),
                             figsize=(5.0 * len(methods) * len(scales) + 0.4, 5.6), squeeze=False)
    for row, (method, title) in enumerate(methods):
        for col, scale in enumerate(scales):
            ax = axes[0][row * len(scales) + col]
            ax.scatter(train_x[:, 0], train_x[:, 1], s=3, c=TRAIN_GREY, label="training data (both spirals)")
            for label in labels:
                k = CLASS_TEXTS.index(label)
                pts = model.sample_points(label, n, scale, method, seed=seed + 1000 * k).numpy()
                ax.scatter(pts[:, 0], pts[:, 1], s=14, c=COLOURS[k], marker=MARKERS[k], edgecolors="black",
                           linewidths=0.3, label=f"{n} samples of {label!r}")
            ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{title}\nguidance scale s = {scale:g}", fontsize=10)
            ax.legend(loc="lower left", fontsize=8, markerscale=1.5, framealpha=0.9)
    fig.tight_layout()
    image = _figure_to_image(fig)
    plt.close(fig)
    return image


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNG files.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True), help="Weights [the shipped ones].")
@click.option("--grid", default=60, show_default=True, help="Decision map resolution (grid × grid points).")
@click.option("--n-samples", default=20, show_default=True, help="Scorer samples per point and class.")
@click.option("--n", default=300, show_default=True, help="Sampled points per class and scale.")
def main(out, checkpoint, grid, n_samples, n) -> None:
    """Write boundary.png and guidance_s0.png, guidance_s1.png, guidance_s4.png."""
    from .data import CLASS_TEXTS
    from .model import Toy2DDenoiser

    from winoeval.verbosity import status

    model = Toy2DDenoiser(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with status(f"decision map: scoring {grid}×{grid} grid points, 400 held-out and 400 training points "
                f"(N = {n_samples})"):
        image, accuracy, tau = decision_figure(model, grid=grid, n_samples=n_samples)
    image.save(out / "boundary.png")
    click.echo(f"{out / 'boundary.png'}: held-out accuracy {100 * accuracy:.1f} %, τ = {tau:.3g}")
    for scale in (0, 1, 4):
        with status(f"guidance s = {scale}: sampling {n} points per class with both methods"):
            guidance_figure(model, CLASS_TEXTS, [scale], n=n).save(out / f"guidance_s{scale}.png")
        click.echo(f"{out / f'guidance_s{scale}.png'}")


if __name__ == "__main__":  # pragma: no cover
    main()
