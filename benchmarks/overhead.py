"""overhead: DiffusionScorer vs the same number of bare ``unet(...)`` forwards.

Tiny random-weight SD pipeline (``winoeval.testing.models.make_tiny_sd_pipeline``), loaded through
the sd plugin as ``--model sd:DIR`` loads it. One image, K texts, N samples: ``scorer.score`` makes
K·N U-Net evaluations (texts already encoded by a warm-up call, as in a run where the class texts
repeat; the image's VAE encoding, the plan, x_t, the losses and the bookkeeping are all inside the
timed call). The bare loop runs ``unet(x_t, t, encoder_hidden_states=c).sample`` over the same K·N
precomputed inputs at the fastest batch size of a sweep. Ratio = scorer / bare (target ≤ 1.05).

A breakdown of one scorer call (forward hooks on the U-Net) says where the time outside the U-Net
goes.
"""

from __future__ import annotations

import time
from typing import Any

from .common import interleaved, log, md_table, med, quiet_libraries, spread, tiny_sd, load_sd

NAME = "overhead"
TITLE = "Scorer overhead vs bare U-Net forwards"

TEXTS = ["a red cube left of a blue ball", "a blue ball left of a red cube", "a dog on a sofa",
         "a sofa on a dog", "two cats and one mouse", "one cat and two mice", "a tall tree behind a house",
         "a house behind a tall tree", "the plant eats the insect", "the insect eats the plant"]


def _image(size: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


def measure(sample_size: int, K: int, N: int, batches: list[int], repeats: int) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer, make_plan

    torch.set_grad_enabled(False)
    model = load_sd(tiny_sd(sample_size))
    unet = model.unet
    texts = TEXTS[:K]
    image = _image(model.resolution)
    eid = "overhead-0"

    def scorer_for(bs):
        s = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=bs))
        s.encode_texts(texts)  # a run encodes each distinct text once
        return s

    auto = scorer_for("auto")
    # the bare loop's inputs: exactly what the scorer feeds the U-Net, in the scorer's job order
    latents = auto.encode_images([image]).float()
    conds = auto.encode_texts(texts)
    plan = make_plan(eid, latents.shape[1:], auto.num_train_timesteps, auto.config)
    ab = auto.alphas_cumprod
    a = ab[plan.t].sqrt().float().view(-1, 1, 1, 1)
    s = (1 - ab[plan.t]).sqrt().float().view(-1, 1, 1, 1)
    x_t = (a * latents[0] + s * plan.noise).repeat(K, 1, 1, 1)
    t = plan.t.repeat(K)
    c = conds.repeat_interleave(N, dim=0)
    total = K * N

    def bare(bs):
        def go():
            with torch.inference_mode():
                for i in range(0, total, bs):
                    unet(x_t[i:i + bs], t[i:i + bs], encoder_hidden_states=c[i:i + bs]).sample
        return go

    # 1. batch-size sweep of the bare loop (one interleaved round after a warm-up round)
    sweep = interleaved({b: bare(b) for b in batches}, repeats=1)
    best = min(batches, key=lambda b: sweep[b][0])
    log(f"overhead {sample_size}x{sample_size}: bare sweep " +
        ", ".join(f"{b}: {sweep[b][0]:.2f}s" for b in batches) + f" -> best {best}")
    # 2. scorer (auto batch, and at the bare loop's best batch) vs bare(best), interleaved
    variants = {"bare": bare(best), "scorer_auto": lambda: auto.score(eid, [image], texts)}
    tuned = None
    if best != auto.batch_size:
        tuned = scorer_for(best)
        variants["scorer_best_batch"] = lambda: tuned.score(eid, [image], texts)
    times = interleaved(variants, repeats=repeats)
    # 3. where the scorer's time goes (one call, hooks on the U-Net)
    unet_time = [0.0]
    marks = []
    h1 = unet.register_forward_pre_hook(lambda mod, inp: marks.append(time.perf_counter()))
    h2 = unet.register_forward_hook(lambda mod, inp, out: unet_time.__setitem__(
        0, unet_time[0] + time.perf_counter() - marks.pop()))
    try:
        t0 = time.perf_counter()
        res = auto.score(eid, [image], texts)
        call = time.perf_counter() - t0
    finally:
        h1.remove()
        h2.remove()
    assert res.n_evals == total
    out = {
        "sample_size": sample_size, "K": K, "N": N, "evals": total, "auto_batch": auto.batch_size,
        "bare_sweep_seconds": {str(b): sweep[b][0] for b in batches}, "best_bare_batch": best,
        "times": times, "ratio_auto": med(times["scorer_auto"]) / med(times["bare"]),
        "ms_per_eval_bare": 1000 * med(times["bare"]) / total,
        "breakdown": {"call_seconds": call, "unet_seconds": unet_time[0], "outside_unet_seconds": call - unet_time[0],
                      "outside_fraction": (call - unet_time[0]) / call},
    }
    if tuned is not None:
        out["ratio_best_batch"] = med(times["scorer_best_batch"]) / med(times["bare"])
    else:
        out["ratio_best_batch"] = out["ratio_auto"]
    return out


def run(quick: bool = False) -> dict[str, Any]:
    quiet_libraries()
    cases = []
    if quick:
        cases.append(measure(32, 4, 25, [32, 64, 100], repeats=2))
        cases.append(measure(8, 10, 50, [32, 128, 500], repeats=3))
    else:
        cases.append(measure(32, 4, 50, [32, 64, 128, 200], repeats=3))
        cases.append(measure(8, 10, 100, [32, 64, 128, 256, 500, 1000], repeats=5))
    main = cases[0]
    targets = [{"name": "scorer time / bare U-Net forwards (tiny SD, 32×32 latents, auto batch)",
                "target": "<= 1.05", "measured": f"{main['ratio_auto']:.3f}", "met": main["ratio_auto"] <= 1.05}]
    return {"cases": cases, "targets": targets}


def render(res: dict[str, Any]) -> str:
    rows = []
    for c in res["cases"]:
        rows.append([f"{c['sample_size']}×{c['sample_size']}", c["K"], c["N"], c["evals"],
                     f"{c['best_bare_batch']}", f"{c['ms_per_eval_bare']:.2f}", spread(c["times"]["bare"]),
                     spread(c["times"]["scorer_auto"]) + f" (batch {c['auto_batch']})",
                     f"**{c['ratio_auto']:.3f}**",
                     f"{c['ratio_best_batch']:.3f}",
                     f"{100 * c['breakdown']['outside_fraction']:.1f} %"])
    lines = ["Tiny random-weight SD pipeline (`make_tiny_sd_pipeline(dir, sample_size=S)`, loaded by the sd "
             "plugin), one 2S-px image, K texts × N samples. Bare = `unet(x_t, t, encoder_hidden_states=c).sample` "
             "over the same precomputed inputs at the fastest batch size of a sweep. Seconds per K·N evaluations, "
             "median [min–max] of interleaved repeats.", "",
             md_table(["latents", "K", "N", "evals", "best bare batch", "bare ms/eval", "bare s", "scorer s",
                       "ratio (auto batch)", "ratio (scorer at best batch)", "scorer time outside the U-Net"], rows),
             "", "Bare-loop batch sweep (seconds for all K·N evaluations, one interleaved round):", ""]
    for c in res["cases"]:
        lines.append(f"- {c['sample_size']}×{c['sample_size']}: " +
                     ", ".join(f"batch {b}: {v:.2f} s" for b, v in c["bare_sweep_seconds"].items()))
    if res.get("profile_note"):
        lines += ["", res["profile_note"]]
    return "\n".join(lines)
