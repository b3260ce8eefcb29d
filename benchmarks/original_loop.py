"""original_loop: winoeval vs a re-implementation of the original scripts' loop, on the same work.

The original diffusion-classifier / Winoground scripts score one image–caption pair at a time:
for each pair they encode the caption (tokenizer + text encoder) and the image (VAE posterior mean
× scaling factor), then walk the timesteps 32 at a time — x_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε, the U-Net with
the caption embedding repeated over the batch, per-sample MSE — sharing nothing across pairs.
Here that loop gets exactly winoeval's (t, ε) (from :func:`winoeval.scoring.make_plan`), so its
errors must equal winoeval's per-sample errors (``ScoreResult.sample_errors``) to float tolerance;
then the two are timed, interleaved, on the same examples. End to end, winoeval with early decision
(same budget) is timed against the original full loop too.
"""

from __future__ import annotations

import dataclasses

from typing import Any

from .common import interleaved, load_sd, log, md_table, med, pct, quiet_libraries, spread, tiny_sd

NAME = "original_loop"
TITLE = "Original per-pair loop vs winoeval"
ORIGINAL_BATCH = 32


def examples(n: int):
    import io

    from PIL import Image

    from winoeval.testing.data import winoground_rows

    out = []
    for row in winoground_rows(n):
        images = [Image.open(io.BytesIO(row[f"image_{i}"]["bytes"])).convert("RGB") for i in (0, 1)]
        out.append((str(row["id"]), images, [row["caption_0"], row["caption_1"]]))
    return out


def original_loop(model, exs, N: int, cfg) -> dict[str, Any]:
    """The per-pair loop. Returns {example id: (2, 2, N) errors} (image, caption, sample)."""
    import torch
    import torch.nn.functional as F

    from winoeval.scoring import make_plan

    unet, vae, text_encoder, tokenizer = model.unet, model.vae, model.text_encoder, model.tokenizer
    dev, dtype, vae_dtype = model.device, model.dtype, model.vae_dtype  # on a GPU: the scripts' fp16
    alphas_cumprod = model.scheduler.alphas_cumprod.to(dev)  # float32, as the scripts use it
    T = len(alphas_cumprod)
    out = {}
    with torch.inference_mode():
        for eid, images, captions in exs:
            errs = torch.empty(len(images), len(captions), N)
            for i, image in enumerate(images):
                for k, caption in enumerate(captions):
                    x0 = model.preprocess([image]).to(dev, vae_dtype)
                    z0 = vae.encode(x0).latent_dist.mean.float() * model.scaling_factor
                    tok = tokenizer([caption], padding="max_length", max_length=tokenizer.model_max_length,
                                    truncation=True, return_tensors="pt")
                    text_embed = text_encoder(tok.input_ids.to(dev))[0]
                    plan = make_plan(eid, z0.shape[1:], T, cfg)  # the same (t, ε) as winoeval
                    for start in range(0, N, ORIGINAL_BATCH):
                        ts = plan.t[start:start + ORIGINAL_BATCH].to(dev)
                        noise = plan.noise[start:start + ORIGINAL_BATCH].to(dev)
                        noised = z0 * (alphas_cumprod[ts] ** 0.5).view(-1, 1, 1, 1) + \
                            noise * ((1 - alphas_cumprod[ts]) ** 0.5).view(-1, 1, 1, 1)
                        text_input = text_embed.repeat(len(ts), 1, 1)
                        pred = unet(noised.to(dtype), ts, encoder_hidden_states=text_input).sample
                        errs[i, k, start:start + len(ts)] = F.mse_loss(noise, pred.float(), reduction="none").mean(
                            dim=(1, 2, 3)).cpu()
            out[eid] = errs
    return out


def original_loop_mnist(model, digits, N: int, cfg) -> dict[str, Any]:
    """The same per-pair loop for the MNIST U-Net: per (digit, class) pair, encode the image and the
    class, then the timesteps 32 at a time. Returns {example id: (1, 10, N) errors}."""
    import torch
    import torch.nn.functional as F

    from winoeval.scoring import make_plan

    alphas_cumprod = model.alphas_cumprod
    T = len(alphas_cumprod)
    out = {}
    with torch.inference_mode():
        for eid, image, _ in digits:
            errs = torch.empty(1, 10, N)
            for k in range(10):
                x0 = model.encode_images([image])
                c = model.encode_texts([str(k)])
                plan = make_plan(eid, x0.shape[1:], T, cfg)
                for start in range(0, N, ORIGINAL_BATCH):
                    ts = plan.t[start:start + ORIGINAL_BATCH]
                    noise = plan.noise[start:start + ORIGINAL_BATCH]
                    noised = x0 * (alphas_cumprod[ts] ** 0.5).view(-1, 1, 1, 1) + \
                        noise * ((1 - alphas_cumprod[ts]) ** 0.5).view(-1, 1, 1, 1)
                    pred = model.net(noised, ts, c.repeat(len(ts)))
                    errs[0, k, start:start + len(ts)] = F.mse_loss(noise, pred, reduction="none").mean(dim=(1, 2, 3))
            out[eid] = errs
    return out


def measure_mnist(n_digits: int, repeats: int) -> dict[str, Any]:
    """The full protocol (N = T = 400) on held-out digits: original loop vs winoeval, and vs winoeval
    with early decision (the end-to-end speed-up on a trained model)."""
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.scoring import DiffusionScorer

    from .early_decision import held_out_sample

    torch.set_grad_enabled(False)
    model = MnistDenoiser(device="cpu")
    sample, _ = held_out_sample(False)
    digits = sample[::max(1, len(sample) // n_digits)][:n_digits]  # spread over the classes
    N, texts = 400, [str(d) for d in range(10)]
    cfg = ScorerConfig(n_samples=(N,), timesteps="even")
    early_cfg = ScorerConfig(n_samples=(N,), timesteps="even", early_stop=True)

    def ours(c):
        scorer = DiffusionScorer(model, c)
        return {eid: scorer.score(eid, [image], texts) for eid, image, _ in digits}

    ref = original_loop_mnist(model, digits, N, cfg)
    full = ours(cfg)
    diffs = [(ref[e] - full[e].sample_errors.float()).abs() for e, _, _ in digits]
    max_rel = max(float((d / ref[e].abs().clamp_min(1e-12)).max()) for d, (e, _, _) in zip(diffs, digits))
    identical = all(torch.allclose(ref[e], full[e].sample_errors.float(), rtol=1e-4, atol=1e-6) for e, _, _ in digits)
    times = interleaved({"original": lambda: original_loop_mnist(model, digits, N, cfg),
                         "winoeval": lambda: ours(cfg), "winoeval_early": lambda: ours(early_cfg)},
                        repeats=repeats, warmup=0)
    early = ours(early_cfg)
    agree = sum(int(early[e].scores[0].argmax()) == int(ref[e][0].mean(dim=1).argmin()) for e, _, _ in digits)
    o = med(times["original"])
    res = {"digits": len(digits), "N": N, "evals_per_example": 10 * N, "identical": identical, "max_rel_diff": max_rel,
           "times": times, "speed_ratio": o / med(times["winoeval"]), "speedup_early": o / med(times["winoeval_early"]),
           "evals_early": sum(r.n_evals for r in early.values()) / len(digits), "early_agreement": agree / len(digits)}
    log(f"original_loop mnist: identical={identical} (max rel {max_rel:.2g}), speed ratio {res['speed_ratio']:.2f}, "
        f"early speed-up {res['speedup_early']:.1f}")
    return res


def winoeval_loop(model, exs, cfg, normalize: bool = False) -> dict[str, Any]:
    from winoeval.scoring import DiffusionScorer

    # fresh: no text cache carried across runs
    scorer = DiffusionScorer(model, dataclasses.replace(cfg, normalize=normalize))
    return {eid: scorer.score(eid, images, captions) for eid, images, captions in exs}


def _verdicts(S):
    from winoeval.metrics import winoground_verdicts

    return winoground_verdicts([[float(v) for v in row] for row in S])


def measure(sample_size: int, n_examples: int, N: int, repeats: int, early: bool = True) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig

    torch.set_grad_enabled(False)
    model = load_sd(tiny_sd(sample_size))
    exs = examples(n_examples)
    cfg = ScorerConfig(n_samples=(N,))
    early_cfg = ScorerConfig(n_samples=(N,), early_stop=True)

    # 1. identical errors
    ref = original_loop(model, exs, N, cfg)
    ours = winoeval_loop(model, exs, cfg)
    diffs = [(ref[e] - ours[e].sample_errors.float()).abs() for e, _, _ in exs]
    max_abs = max(float(d.max()) for d in diffs)
    max_rel = max(float((d / ref[e].abs().clamp_min(1e-12)).max()) for d, (e, _, _) in zip(diffs, exs))
    from winoeval.scoring import make_plan

    shape = (4, sample_size, sample_size)
    same_t = all(torch.equal(ours[e].t, make_plan(e, shape, len(model.alphas_cumprod), cfg).t) for e, _, _ in exs)
    identical = all(torch.allclose(ref[e], ours[e].sample_errors.float(), rtol=1e-4, atol=1e-6) for e, _, _ in exs)

    # 2. speed, interleaved
    variants = {
        "original": lambda: original_loop(model, exs, N, cfg),
        "winoeval": lambda: winoeval_loop(model, exs, cfg),
    }
    if early:
        variants["winoeval_early"] = lambda: winoeval_loop(model, exs, early_cfg)
        variants["winoeval_early_normalized"] = lambda: winoeval_loop(model, exs, early_cfg, normalize=True)
    times = interleaved(variants, repeats=repeats, warmup=1 if sample_size <= 16 else 0)
    o = med(times["original"])
    res = {
        "sample_size": sample_size, "examples": n_examples, "N": N, "evals_per_example": 4 * N,
        "identical": identical, "max_abs_diff": max_abs, "max_rel_diff": max_rel, "same_t": same_t,
        "times": times, "speed_ratio": o / med(times["winoeval"]),
    }
    log(f"original_loop {sample_size}x{sample_size}: identical={identical} (max rel {max_rel:.2g}), "
        f"speed ratio {res['speed_ratio']:.2f}")
    if not early:
        return res
    early = winoeval_loop(model, exs, early_cfg)
    early_n = winoeval_loop(model, exs, early_cfg, normalize=True)
    ref_v = [_verdicts(-ref[e].mean(dim=2)) for e, _, _ in exs]
    agree = {k: sum(_verdicts(early[e].scores)[k] == r[k] for (e, _, _), r in zip(exs, ref_v)) / len(exs)
             for k in ("text", "image", "group")}
    res.update({
        "speedup_early": o / med(times["winoeval_early"]),
        "speedup_early_normalized": o / med(times["winoeval_early_normalized"]),
        "evals_early": sum(r.n_evals for r in early.values()) / n_examples,
        "evals_early_normalized": sum(r.n_evals for r in early_n.values()) / n_examples,
        "early_verdict_agreement_raw": agree,
    })
    return res


def run(quick: bool = False) -> dict[str, Any]:
    quiet_libraries()
    if quick:
        cases = [measure(8, 2, 100, repeats=2)]
        mnist = measure_mnist(1, repeats=1)
    else:
        cases = [measure(8, 4, 200, repeats=5), measure(32, 1, 50, repeats=5, early=False)]
        mnist = measure_mnist(2, repeats=2)
    targets = [{"name": "original loop: identical errors (same t, ε)", "target": "to float tolerance",
                "measured": ", ".join(f"max rel diff {c['max_rel_diff']:.1g}" for c in cases),
                "met": all(c["identical"] for c in cases)}]
    targets += [{"name": f"winoeval speed / original loop ({c['sample_size']}×{c['sample_size']} latents, "
                         f"same work)", "target": ">= 1.0×", "measured": f"{c['speed_ratio']:.2f}×",
                 "met": c["speed_ratio"] >= 1.0} for c in cases]
    targets.append({"name": "winoeval speed / original loop (mnist-unet, full protocol N = 400)", "target": ">= 1.0×",
                    "measured": f"{mnist['speed_ratio']:.2f}× "
                                f"(identical errors: {'yes' if mnist['identical'] else 'NO'})",
                    "met": mnist["speed_ratio"] >= 1.0 and mnist["identical"]})
    return {"cases": cases, "mnist": mnist, "targets": targets}


def render(res: dict[str, Any]) -> str:
    rows, rows2 = [], []
    m = res.get("mnist")
    mnist_lines = []
    if m:
        mnist_lines = [
            "", f"Trained model: `mnist-unet`, the full protocol (N = T = {m['N']} even timesteps, "
            f"{m['evals_per_example']} "
            f"evaluations per digit) on {m['digits']} held-out digits; original = the same per-pair loop (per digit × "
            f"class: encode, x_t, {ORIGINAL_BATCH} timesteps per forward); winoeval = `DiffusionScorer.score` "
            f"(auto batch "
            "128); early = `early_stop=True` with the same budget. Interleaved; seconds for all digits.", "",
            md_table(["", "original s", "winoeval s", "winoeval early s", "identical errors", "speed ratio",
                      "end-to-end speed-up with early decision", "early evals/digit", "early verdict = original"],
                     [["mnist-unet", *(["withdrawn"] * 3 if res.get("withdrawn") else
                                       [spread(m["times"]["original"]), spread(m["times"]["winoeval"]),
                                        spread(m["times"]["winoeval_early"])]),
                       f"yes (max rel {m['max_rel_diff']:.1g})" if m["identical"] else "**no**",
                       *(["withdrawn"] * 2 if res.get("withdrawn") else
                         [f"**{m['speed_ratio']:.2f}×**", f"**{m['speedup_early']:.1f}×**"]),
                       f"{m['evals_early']:.0f}", pct(m["early_agreement"], 0)]])]
    for c in res["cases"]:
        lat = f"{c['sample_size']}×{c['sample_size']}"
        rows.append([lat, c["examples"], c["N"], "yes" if c["identical"] else "**no**", f"{c['max_rel_diff']:.1g}",
                     spread(c["times"]["original"]), spread(c["times"]["winoeval"]), f"**{c['speed_ratio']:.2f}×**"])
        if "speedup_early" not in c:
            continue
        a = c["early_verdict_agreement_raw"]
        rows2.append([lat, c["evals_per_example"], f"{c['evals_early']:.0f}", spread(c["times"]["winoeval_early"]),
                      f"**{c['speedup_early']:.1f}×**", f"{c['evals_early_normalized']:.0f}",
                      f"{c['speedup_early_normalized']:.1f}×", f"{pct(a['text'], 0)} / {pct(a['image'], 0)} / "
                                                                f"{pct(a['group'], 0)}"])
    return "\n".join([
        "Tiny random-weight SD pipeline, Winoground-format fixture examples (2 images × 2 captions), N evenly "
        "spaced timesteps of T = 1000 with winoeval's (t, ε). Original = per pair: VAE-encode the image, encode "
        f"the caption, x_t and U-Net {ORIGINAL_BATCH} timesteps at a time (nothing shared across pairs). winoeval = "
        "`DiffusionScorer.score` (raw errors, `normalize=False`, auto batch 128 on CPU; a fresh scorer per run, so "
        "no text cache carried over). Seconds for all examples, median [min–max] of interleaved repeats.", "",
        md_table(["latents", "examples", "N", "identical errors", "max rel. diff", "original s", "winoeval s",
                  "speed ratio"], rows), "",
        "End to end with early decision (same budget N, confidence 0.99). The random-weight model's captions are "
        "indistinguishable, so every comparison runs to the budget: the same evaluations in smaller batches "
        "(chunks of 5 samples), i.e. the worst case of early decision; see the trained-model row below for "
        "the real end-to-end gain:", "",
        md_table(["latents", "evals/example full", "evals early (raw)", "winoeval early s", "speed-up vs original",
                  "evals early (normalised)", "speed-up (normalised)", "verdict agreement text/image/group (raw)"],
                 rows2),
        *mnist_lines,
    ])
