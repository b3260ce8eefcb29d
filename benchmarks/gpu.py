"""GPU figures (prepared; needs CUDA, skips cleanly without it). One script, under 8 minutes.

A random-weight ``UNet2DConditionModel`` with the Stable Diffusion 2 base architecture (its public
config: 4×64×64 latents, 1024-d text states of 77 tokens), fp16, SDPA attention (diffusers'
default processor on torch 2), channels_last:

1. bare U-Net evaluations/s over a batch sweep (the best batch is the reference);
2. the scorer (``DiffusionScorer.score_stream``, several 2×2 examples in flight) at that batch:
   evaluations/s and the ratio to bare (target >= 0.95);
3. the original per-pair loop (per image × caption: x_t and U-Net 32 timesteps at a time) vs winoeval
   on identical work (same (t, ε); target >= 1.0×);
4. early decision on Winoground-format 2×2 examples (random weights: captions are indistinguishable,
   so this is the worst case — every comparison runs to the budget; the real gain needs trained
   weights, e.g. `winodigits-sd`);
5. peak GPU memory of the scorer;
6. `mnist-unet` on the README's main command with ``--limit 100`` (a subprocess, wall time).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import md_table, quiet_libraries

NAME = "gpu"
LATENT = 64  # latent side (SD 2 base: 4×64×64); the CPU dry run of this script shrinks it
TITLE = "GPU: SD 2 base architecture (random weights), fp16"
SD2_BASE = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)


class RandomSD2Denoiser:
    """A Denoiser over the random-weight SD 2 base U-Net: images are given as latents (4×64×64
    tensors), texts become fixed pseudo-random (77, 1024) states seeded by the text."""

    kind = "denoiser"

    def __init__(self, device="cuda", dtype=None):
        import torch
        from diffusers import DDPMScheduler, UNet2DConditionModel

        torch.manual_seed(0)
        self.dtype = dtype or torch.float16
        self.device = torch.device(device)
        self.unet = UNet2DConditionModel(**SD2_BASE).to(self.device, self.dtype).eval()
        self.unet.to(memory_format=torch.channels_last)
        sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        self.alphas_cumprod = sched.alphas_cumprod.float()

    def encode_images(self, images):
        import torch

        return torch.stack([im.float() for im in images])

    def encode_texts(self, texts):
        import torch

        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") & ((1 << 63) - 1)
            out.append(torch.randn(77, 1024, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(out).to(self.device, self.dtype)

    def predict_noise(self, x_t, t, cond):
        import torch

        return self.unet(x_t.contiguous(memory_format=torch.channels_last), t, encoder_hidden_states=cond).sample


def _sync():
    import torch

    torch.cuda.synchronize()


def _examples(n: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(f"g{e}", [torch.randn(4, LATENT, LATENT, generator=g) for _ in range(2)], [f"caption {e} a", f"caption {e} b"])
            for e in range(n)]


def bare(model, batches, reps=3) -> dict[int, float]:
    import torch

    out = {}
    cond = model.encode_texts(["x"]).expand(max(batches), -1, -1).contiguous()
    for b in batches:
        x = torch.randn(b, 4, LATENT, LATENT, device=model.device, dtype=model.dtype)
        t = torch.randint(0, 1000, (b,), device=model.device)
        with torch.inference_mode():
            model.predict_noise(x, t, cond[:b])
            _sync()
            t0 = time.perf_counter()
            for _ in range(reps):
                model.predict_noise(x, t, cond[:b])
            _sync()
        out[b] = b * reps / (time.perf_counter() - t0)
    return out


def original_loop(model, examples, N):
    """Per image × caption: encode the caption, x_t and U-Net 32 timesteps at a time (nothing shared)."""
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.scoring import make_plan

    cfg = ScorerConfig(n_samples=(N,))
    ab = model.alphas_cumprod.double()
    errs = {}
    with torch.inference_mode():
        for eid, images, texts in examples:
            plan = make_plan(eid, (4, LATENT, LATENT), 1000, cfg)
            for i, im in enumerate(images):
                for k, text in enumerate(texts):
                    cond = model.encode_texts([text])
                    vals = []
                    for s in range(0, N, 32):
                        t = plan.t[s:s + 32]
                        eps = plan.noise[s:s + 32]
                        a = ab[t].sqrt().float().view(-1, 1, 1, 1)
                        b = (1 - ab[t]).sqrt().float().view(-1, 1, 1, 1)
                        x_t = (a * im + b * eps).to(model.device, model.dtype)
                        pred = model.predict_noise(x_t, t.to(model.device), cond.expand(len(t), -1, -1))
                        vals.append((pred.float() - eps.to(model.device)).square().flatten(1).mean(1).cpu())
                    errs[(eid, i, k)] = torch.cat(vals).double().mean().item()
    _sync()
    return errs


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine: prepared, not run"}
    quiet_libraries()
    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer

    started = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    model = RandomSD2Denoiser()
    res: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    sweep = bare(model, [8, 16, 32, 64] if quick else [8, 16, 32, 64, 128])
    best = max(sweep, key=sweep.get)
    res["bare_evals_per_s"] = sweep
    res["best_batch"] = best

    # the scorer at the best batch, several 2×2 examples in flight
    N = 64 if quick else 128
    ex = _examples(4)
    torch.cuda.reset_peak_memory_stats()
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=best))
    list(scorer.score_stream([(e, e, ims, txt) for e, ims, txt in ex[:1]]))  # warm-up
    _sync()
    t0 = time.perf_counter()
    out = dict(scorer.score_stream([(e, e, ims, txt) for e, ims, txt in ex]))
    _sync()
    dt = time.perf_counter() - t0
    evals = sum(r.n_evals for r in out.values())
    res["scorer_evals_per_s"] = evals / dt
    res["scorer_vs_bare"] = res["scorer_evals_per_s"] / sweep[best]
    res["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30

    # original per-pair loop vs winoeval, identical work (2 examples, raw errors)
    ex2 = ex[:2]
    original_loop(model, ex2[:1], 32)  # warm-up
    t0 = time.perf_counter()
    orig = original_loop(model, ex2, N)
    t_orig = time.perf_counter() - t0
    s2 = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=best))
    _sync()
    t0 = time.perf_counter()
    ours = dict(s2.score_stream([(e, e, ims, txt) for e, ims, txt in ex2]))
    _sync()
    t_ours = time.perf_counter() - t0
    max_rel = max(abs(ours[e].errors[i, k].item() - v) / abs(v) for (e, i, k), v in orig.items())
    res["original"] = {"seconds": t_orig, "winoeval_seconds": t_ours, "speed_ratio": t_orig / t_ours,
                       "max_rel_error_diff": max_rel, "examples": len(ex2), "N": N}

    # early decision on 2×2 examples (normalised), budget N
    early = DiffusionScorer(model, ScorerConfig(n_samples=(N,), early_stop=True, batch_size=best, normalize=True))
    full = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=best, normalize=True))
    times = {}
    outs = {}
    for name, s in (("full", full), ("early", early)):
        _sync()
        t0 = time.perf_counter()
        outs[name] = dict(s.score_stream([(e, e, ims, txt) for e, ims, txt in ex]))
        _sync()
        times[name] = time.perf_counter() - t0
    agree = sum(bool(torch.equal(outs["full"][e].scores.argmax(1), outs["early"][e].scores.argmax(1))) for e in outs["full"])
    res["early"] = {"examples": len(ex), "N": N, "seconds_full": times["full"], "seconds_early": times["early"],
                    "evals_full": sum(r.n_evals for r in outs["full"].values()) / len(ex),
                    "evals_early": sum(r.n_evals for r in outs["early"].values()) / len(ex),
                    "row_argmax_agreement": agree}
    del model, scorer, s2, early, full
    torch.cuda.empty_cache()

    # mnist-unet, the README's main command on 100 digits
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [sys.executable, "-m", "winoeval", "run", "--model", "mnist-unet", "--task", "mnist", "--limit", "100",
               "-q", "-o", out_dir]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
        res["mnist"] = {"command": "winoeval run --model mnist-unet --task mnist --limit 100", "returncode": proc.returncode,
                        "seconds": time.perf_counter() - t0, "table": proc.stdout.strip()[-600:]}
    res["wall_seconds"] = time.time() - started
    ok = "skipped" not in res
    res["targets"] = [
        {"name": "GPU: scorer / bare U-Net throughput (SD 2 base arch, fp16)", "target": ">= 0.95",
         "measured": f"{res['scorer_vs_bare']:.3f} ({res['device']})", "met": ok and res["scorer_vs_bare"] >= 0.95},
        {"name": "GPU: winoeval speed / original per-pair loop (same work)", "target": ">= 1.0×",
         "measured": f"{res['original']['speed_ratio']:.2f}×", "met": res["original"]["speed_ratio"] >= 1.0},
    ]
    return res


def render(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return ("**Prepared, not run**: no GPU was lent to the session that wrote it. Run "
                "`python -m benchmarks --only gpu` on a CUDA machine (one script, under 8 minutes): random-weight "
                "SD 2 base U-Net (fp16, SDPA) bare evaluations/s vs the scorer, the original per-pair loop vs "
                "winoeval on identical work, early decision on 2×2 examples, peak GPU memory, and `winoeval run "
                "--model mnist-unet --task mnist --limit 100`.")
    lines = [f"Device: **{res['device']}**, torch {res['torch']}; random-weight SD 2 base U-Net, fp16, SDPA, "
             "channels_last.", ""]
    lines.append(md_table(["batch", "bare evals/s"], [[b, f"{v:.1f}"] for b, v in res["bare_evals_per_s"].items()]))
    o, e, m = res["original"], res["early"], res["mnist"]
    lines += ["", f"- scorer (best batch {res['best_batch']}, 4 examples 2×2 in flight): "
                  f"{res['scorer_evals_per_s']:.1f} evals/s = **{res['scorer_vs_bare']:.3f}×** bare; peak GPU memory "
                  f"{res['peak_gpu_memory_gib']:.2f} GiB",
              f"- original per-pair loop (batch 32) vs winoeval, {o['examples']} examples × 4 pairs × N = {o['N']}: "
              f"{o['seconds']:.2f} s vs {o['winoeval_seconds']:.2f} s → **{o['speed_ratio']:.2f}×** (max relative "
              f"error difference {o['max_rel_error_diff']:.1e}, fp16)",
              f"- early decision, 2×2 normalised, budget {e['N']} (random weights: the worst case): evals/example "
              f"{e['evals_full']:.0f} → {e['evals_early']:.0f}, {e['seconds_full']:.2f} s → {e['seconds_early']:.2f} s; "
              f"row argmax agreement {e['row_argmax_agreement']}/{e['examples']}",
              f"- `{m['command']}`: {m['seconds']:.1f} s (exit {m['returncode']})", "", "```", m["table"], "```"]
    return "\n".join(lines)
