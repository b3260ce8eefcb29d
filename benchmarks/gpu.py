"""GPU figures: one script, under 8 minutes on one H100/H200-class card; ``--dry-run`` runs the same
code on the CPU at toy sizes (what CI checks).

Every section runs in its own subprocess (``python -m benchmarks.gpu --section NAME``) with a time
cap, so a crash, a hang or a CUDA out-of-memory abort in one section cannot take the others down;
the parent records each section as ``ok``, ``failed`` (exit code + the tail of its stderr) or
``timeout`` (with whatever the section had written so far), and rewrites the results file after
every section: a run killed half way keeps what it finished. A whole-script budget
(:data:`BUDGET_S`) skips the remaining sections, recorded as skipped, when it runs out.

Timing rule: every comparison alternates its variants (A, B, B, A, ...: the order rotates each
round) after one untimed warm-up round, and reports the median of at least 3 timed rounds (the
``--dry-run`` runs the CLI comparisons once each to stay quick).

Sections, in order of priority:

1. ``pipeline``: saves a random-weight Stable Diffusion pipeline with the SD 2 base architecture
   (its public configs: U-Net 4×64×64 latents, VAE, 23-layer 1024-d CLIP text encoder, the real CLIP
   tokenizer) as fp16 safetensors, for the sections below and for ``--model sd:DIR``;
2. ``bare``: its U-Net alone, fp16 vs bf16 (interleaved), batch sweep up to the CLI's ``auto``
   batch (512): evaluations/s and peak GPU memory per batch size;
3. ``scorer``: ``DiffusionScorer.score_stream`` (the sd plugin's denoiser, ``batch_size="auto"``,
   2×2 normalised examples in flight) vs bare forwards of exactly the batches it ran;
4. ``original``: the original per-pair loop with the real pipeline components (per image × caption:
   VAE encode, tokenizer + text encoder, U-Net 32 timesteps at a time) vs winoeval, same (t, ε);
5. ``sd_plugin``: ``winoeval run --model sd:DIR --task winoground --batch-size auto`` end to end on
   Winoground-format data, float16 and bfloat16;
6. ``winodigits``: ``winoeval run --model winodigits-sd --task winodigits`` with a budget of N = 100,
   full vs ``--early-stop`` (trained weights): verdict agreement, evaluations and wall time;
7. ``sd3``: diffusers' ``SD3Transformer2DModel`` with the public SD3-medium config, random weights,
   bf16: evaluations/s and peak memory at 512² and 1024²;
8. ``dit``: ``DiTTransformer2DModel`` with the public DiT-XL/2 config, bf16, at 256² and 512²;
9. ``mnist``: ``winoeval run --model mnist-unet --task mnist --limit 100``, fixed N = 20 vs early
   decision (budget 400).

``python -m benchmarks --only gpu`` on a CUDA machine writes ``benchmarks/results/gpu.json`` and
BENCHMARKS.md; ``python -m benchmarks --only gpu --dry-run`` writes
``$WINOEVAL_BENCH_TMP/dry-run/gpu.json`` and leaves BENCHMARKS.md alone. Without CUDA and without
``--dry-run`` the section is recorded as not run. ``WINOEVAL_GPU_SECTIONS=sd3,dit`` runs only those
sections (e.g. to redo one that failed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .common import ROOT, WORK, md_table

NAME = "gpu"
TITLE = "GPU: SD 2 base pipeline (random weights), winodigits-sd, SD3-medium and DiT-XL/2 transformers"
BUDGET_S = 450  # the whole script: 7.5 minutes of sections, the rest for start-up and writing
TAIL = 2000  # characters of a failed subprocess's stderr that are kept

# --- architectures (public configs) ----------------------------------------------------------
SD2_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SD2_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512, scaling_factor=0.18215)
SD2_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                hidden_act="gelu", projection_dim=512, max_position_embeddings=77)
SD3_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                  num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                  pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)
SD3_TOKENS = 333  # 77 CLIP + 256 T5 tokens
DIT_XL_2 = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
                sample_size=32, patch_size=2, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                norm_type="ada_norm_zero", norm_elementwise_affine=False, attention_bias=True)

# the same code on the CPU at toy sizes
TINY_UNET = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                sample_size=16)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 projection_dim=32, max_position_embeddings=77)
TINY_SD3 = dict(sample_size=16, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=16,
                out_channels=16, pos_embed_max_size=16)
TINY_DIT = dict(DIT_XL_2, num_attention_heads=2, attention_head_dim=16, num_layers=2, sample_size=8)


def settings(dry: bool) -> dict[str, Any]:
    """Sizes of every section: the real ones, or toy ones for the CPU dry run (same code)."""
    if not dry:
        return dict(device="cuda", dry=False, repeats=3, cli_repeats=3, unet=SD2_UNET, vae=SD2_VAE, text=SD2_TEXT,
                    text_states=(77, 1024), latent=64, batches=[8, 32, 128, 256, 512], scorer_examples=4,
                    scorer_n=32, original_examples=2, original_n=64, sd_limit=4, sd_n=50,
                    winodigits_limit=None, winodigits_n=100, mnist_limit=100,
                    sd3=SD3_MEDIUM, sd3_sizes={64: [4, 16, 64], 128: [2, 8, 16]}, sd3_tokens=SD3_TOKENS,
                    dit=DIT_XL_2, dit_sizes={32: [32, 128, 512], 64: [16, 64, 128]}, cli_timeout=240)
    return dict(device="cpu", dry=True, repeats=3, cli_repeats=1, unet=TINY_UNET, vae=TINY_VAE, text=TINY_TEXT,
                text_states=(77, 32), latent=8, batches=[2, 4], scorer_examples=2, scorer_n=8, original_examples=1,
                original_n=8, sd_limit=2, sd_n=4, winodigits_limit=2, winodigits_n=10, mnist_limit=2,
                sd3=TINY_SD3, sd3_sizes={16: [1, 2]}, sd3_tokens=20, dit=TINY_DIT, dit_sizes={8: [2, 4]},
                cli_timeout=120)


# --- helpers shared by the sections ------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def reset_peak(device: str) -> float | None:
    """Start a peak-memory window; returns the GiB allocated now (weights and live tensors). No
    ``empty_cache`` here: it would make the next (timed) allocations slow."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        return round(torch.cuda.memory_allocated() / 2**30, 3)
    return None


def peak_gib(device: str) -> float | None:
    """Peak GPU memory allocated since :func:`reset_peak` (None on the CPU: not measured there)."""
    if device.startswith("cuda"):
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return None


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def alternate(variants: dict[str, Callable[[], Any]], repeats: int, device: str, warmup: int = 1) -> dict[str, list]:
    """Wall seconds of each variant: ``warmup`` untimed rounds, then ``repeats`` timed rounds with the
    order rotating each round (A B, B A, ...), synchronising the device around every call."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            variants[name]()
            sync(device)
            times[name].append(round(time.perf_counter() - t0, 6))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def tail(text: str | bytes | None, n: int = TAIL) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return (text or "")[-n:]


def _dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def quiet() -> None:
    from .common import quiet_libraries

    quiet_libraries()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def work_dir(s: dict) -> Path:
    return WORK / ("gpu-dry-run" if s["dry"] else "gpu")


def pipeline_dir(s: dict) -> Path:
    return work_dir(s) / "sd2-arch-random"


def winoground_dir(s: dict) -> Path:
    from winoeval.testing.data import make_winoground_dataset

    path = work_dir(s) / "winoground-8"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_winoground_dataset(path, n=8)
    return path


def load_denoiser(s: dict, dtype: str):
    """The random pipeline through the sd plugin's own loader, as ``--model sd:DIR`` gets it."""
    import contextlib
    import io
    import warnings

    from winoeval.config import RunConfig
    from winoeval.plugins.stable_diffusion import load

    path = pipeline_dir(s)
    if not (path / "model_index.json").exists():
        build_pipeline(s)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return load(str(path), RunConfig(model=f"sd:{path}", task="-", device=s["device"], dtype=dtype))


def build_pipeline(s: dict) -> dict[str, Any]:
    """Save the random-weight pipeline (built on the device: random init of 1.3 B parameters on a CPU
    takes minutes) as safetensors: fp16 on the GPU, fp32 in the dry run."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from winoeval.testing.models import make_clip_tokenizer

    path = pipeline_dir(s)
    t0 = time.perf_counter()
    tokenizer = make_clip_tokenizer()
    torch.manual_seed(0)
    dtype = torch.float32 if s["dry"] else torch.float16
    with torch.device(s["device"]):
        unet = UNet2DConditionModel(**s["unet"])
        vae = AutoencoderKL(**s["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **s["text"], vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    for m in (unet, vae, text_encoder):
        torch.nn.Module.to(m, dtype=dtype)
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              num_train_timesteps=1000, prediction_type="epsilon", clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    tmp = path.with_name(path.name + ".partial")
    pipe.save_pretrained(tmp, safe_serialization=True)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)  # complete or absent: a killed build is rebuilt next time
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in
              (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))}
    del pipe, unet, vae, text_encoder
    if s["device"] == "cuda":
        torch.cuda.empty_cache()
    return {"path": str(path), "parameters": params, "dtype": str(dtype).replace("torch.", ""),
            "seconds": round(time.perf_counter() - t0, 1)}


def cli(args: list[str], timeout: float, out: Path) -> dict[str, Any]:
    """``winoeval run ARGS -q -o OUT`` in a subprocess: exit code, wall seconds, the stderr tail on
    failure, a timeout caught (recorded, not raised), and the results file's run facts."""
    cmd = [sys.executable, "-m", "winoeval", "run", *args, "-q", "-o", str(out)]
    shown = "winoeval run " + " ".join(args)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired as exc:
        return {"command": shown, "status": "timeout", "timeout_s": timeout,
                "seconds": round(time.perf_counter() - t0, 2), "stderr_tail": tail(exc.stderr)}
    rec: dict[str, Any] = {"command": shown, "returncode": proc.returncode,
                           "seconds": round(time.perf_counter() - t0, 2)}
    if proc.returncode != 0:
        rec.update(status="failed", stderr_tail=tail(proc.stderr))
        return rec
    files = sorted(out.glob("*/results_*.json"))
    if not files:
        rec.update(status="failed", stderr_tail=tail(proc.stderr) + "\n(no results file written)")
        return rec
    res = json.loads(files[-1].read_text())
    (task, metrics), = res["results"].items()
    rec.update(status="ok", run_seconds=res["run"].get("wall_time_s"), device=res["run"].get("device"),
               dtype=res["run"].get("dtype"), examples=metrics.get("n"),
               evals_per_example=metrics.get("evals_per_example"), table=proc.stdout.strip()[-1500:],
               metrics={k: metrics[k] for k in ("text", "image", "group", "accuracy") if k in metrics})
    samples = sorted(out.glob("*/samples_*.jsonl"))
    if samples:
        rows = [json.loads(line) for line in samples[-1].read_text().splitlines() if line.strip()]
        rec["verdicts"] = {r["id"]: r.get("verdicts") or r.get("correct") for r in rows}
    return rec


def cli_ab(s: dict, variants: dict[str, list[str]], emit, repeats: int | None = None,
           pair: tuple[str, str] | None = None) -> dict[str, Any]:
    """Alternate CLI runs of several variants (fresh output folder each: no resume), ``repeats``
    (default ``cli_repeats``) rounds. After every run the summaries (medians over the ok runs) and, for
    ``pair`` = (reference, other), the verdict agreement, evaluation fraction and run-time ratio are
    updated and saved: a section cut short keeps them."""
    runs: dict[str, list] = {n: [] for n in variants}
    verdicts: dict[str, dict] = {}  # first ok run's verdicts per variant (kept out of the saved data)
    data: dict[str, Any] = {"ab": {"runs": runs}}
    names = list(variants)
    for r in range(repeats or s["cli_repeats"]):
        for name in names[r % len(names):] + names[:r % len(names)]:
            with tempfile.TemporaryDirectory(dir=work_dir(s)) as out:
                rec = cli(variants[name], s["cli_timeout"], Path(out))
            v = rec.pop("verdicts", None)
            if v is not None and name not in verdicts:
                verdicts[name] = v
            runs[name].append(rec)
            data["summary"] = {n: _summary(rs) for n, rs in runs.items()}
            if pair and all(p in verdicts for p in pair):
                ref, other = (data["summary"][p] for p in pair)
                data["agreement"] = _agreement(verdicts[pair[0]], verdicts[pair[1]])
                if ref.get("evals_per_example") and other.get("evals_per_example") is not None:
                    data["evals_fraction"] = round(other["evals_per_example"] / ref["evals_per_example"], 4)
                if ref.get("run_seconds"):
                    data["time_ratio"] = round(other["run_seconds"] / ref["run_seconds"], 4)
            emit(data)
    return data


# --- sections (each runs in its own subprocess; ``emit(data)`` saves what it has so far) ----------
def section_pipeline(s: dict, emit) -> dict[str, Any]:
    data = build_pipeline(s)
    winoground_dir(s)
    return data


def section_bare(s: dict, emit) -> dict[str, Any]:
    """The U-Net alone on device tensors: fp16 vs bf16 alternated at each batch size."""
    import torch

    dev = s["device"]
    models = {dt: load_denoiser(s, dt) for dt in ("float16", "bfloat16")}
    L, (tok, width) = s["latent"], s["text_states"]
    data: dict[str, Any] = {"latent": L, "rows": []}
    stopped: set[str] = set()
    for b in s["batches"]:
        g = torch.Generator().manual_seed(b)
        x = torch.randn(b, 4, L, L, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        c = torch.randn(b, tok, width, generator=g)
        peaks: dict[str, float | None] = {}
        variants = {}
        for dt, m in models.items():
            if dt in stopped:
                continue
            xs = x.to(dev, m.dtype).contiguous(memory_format=torch.channels_last)
            ts, cs = t.to(dev), c.to(dev, m.dtype)

            def call(m=m, xs=xs, ts=ts, cs=cs, dt=dt):
                before = reset_peak(dev)
                with torch.inference_mode():
                    m.unet(xs, ts, encoder_hidden_states=cs)
                p = peak_gib(dev)
                if p is not None:  # the forward's own peak: above what was allocated before it
                    peaks[dt] = max(peaks.get(dt) or 0.0, round(p - before, 3))
            variants[dt] = call
        if not variants:
            break
        try:
            times = alternate(variants, s["repeats"], dev)
        except Exception as exc:
            if not is_oom(exc):
                raise
            data["rows"].append({"batch": b, "oom": True, "error": str(exc).splitlines()[0][:200]})
            stopped.update(variants)  # larger batches of an exhausted dtype are skipped
            torch.cuda.empty_cache()
            emit(data)
            continue
        for dt, ts_ in times.items():
            data["rows"].append({"batch": b, "dtype": dt, "seconds": ts_, "evals_per_s": round(b / median(ts_), 2),
                                 "forward_peak_gib": peaks.get(dt)})
    if dev.startswith("cuda"):
        data["weights_gib"] = {dt: round(sum(p.numel() * p.element_size() for mod in (m.unet, m.vae, m.text_encoder)
                                             for p in mod.parameters()) / 2**30, 3) for dt, m in models.items()}
        emit(data)
    return data


def _pil_examples(n: int):
    from .original_loop import examples

    return examples(n)


def section_scorer(s: dict, emit) -> dict[str, Any]:
    """The scorer at ``batch_size="auto"`` vs bare ``predict_noise`` over the same batch sizes."""
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer

    dev = s["device"]
    model = load_denoiser(s, "float16")
    exs = _pil_examples(s["scorer_examples"])
    cfg = ScorerConfig(n_samples=(s["scorer_n"],), batch_size="auto", normalize=True)
    items = [(eid, eid, ims, txt) for eid, ims, txt in exs]
    probe = DiffusionScorer(model, cfg)
    list(probe.score_stream(items))
    rows = list(probe.forward_rows)
    L, (tok, width) = s["latent"], s["text_states"]
    g = torch.Generator().manual_seed(1)
    inputs = [(torch.randn(r, 4, L, L, generator=g).to(dev, model.dtype), torch.randint(0, 1000, (r,), generator=g),
               torch.randn(r, tok, width, generator=g).to(dev, model.dtype)) for r in rows]

    def scorer():
        out = dict(DiffusionScorer(model, cfg).score_stream(items))
        assert len(out) == len(items)

    def bare():
        for x, t, c in inputs:
            model.predict_noise(x, t, c)

    bare()  # warm-up of the bare loop (the probe above warmed the scorer)
    reset_peak(dev)
    times = alternate({"scorer": scorer, "bare": bare}, s["repeats"], dev, warmup=0)
    evals = sum(rows)
    return {"examples": len(items), "N": s["scorer_n"], "batch_size": probe.batch_size, "forwards": len(rows),
            "evals": evals, "times": times, "scorer_evals_per_s": round(evals / median(times["scorer"]), 2),
            "bare_evals_per_s": round(evals / median(times["bare"]), 2),
            "ratio": round(median(times["bare"]) / median(times["scorer"]), 4), "peak_gib": peak_gib(dev)}


def section_original(s: dict, emit) -> dict[str, Any]:
    """The original per-pair loop (real VAE, tokenizer, text encoder, U-Net; 32 timesteps per forward)
    vs the scorer on identical work (raw errors, same (t, ε))."""
    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer

    from .original_loop import original_loop

    dev = s["device"]
    model = load_denoiser(s, "float16")
    exs = _pil_examples(s["original_examples"])
    N = s["original_n"]
    cfg = ScorerConfig(n_samples=(N,), timesteps="even", batch_size="auto", normalize=False)

    def ours():
        scorer = DiffusionScorer(model, cfg)
        return {eid: scorer.score(eid, ims, txt) for eid, ims, txt in exs}

    ref, mine = original_loop(model, exs, N, cfg), ours()
    max_rel = max(float(((ref[e] - mine[e].sample_errors.float()).abs() / ref[e].abs().clamp_min(1e-12)).max())
                  for e, _, _ in exs)
    reset_peak(dev)  # (the two reference runs above were the warm-up)
    times = alternate({"original": lambda: original_loop(model, exs, N, cfg), "winoeval": ours}, s["repeats"], dev,
                      warmup=0)
    return {"examples": len(exs), "pairs_per_example": 4, "N": N, "max_rel_diff": max_rel, "times": times,
            "dtype": str(model.dtype).replace("torch.", ""),
            "speed_ratio": round(median(times["original"]) / median(times["winoeval"]), 3), "peak_gib": peak_gib(dev)}


def section_sd_plugin(s: dict, emit) -> dict[str, Any]:
    path, data_dir = pipeline_dir(s), winoground_dir(s)
    if not (path / "model_index.json").exists():
        build_pipeline(s)
    base = ["--model", f"sd:{path}", "--task", "winoground", "--data-dir", str(data_dir), "--limit",
            str(s["sd_limit"]), "--n-samples", str(s["sd_n"]), "--batch-size", "auto", "--device", s["device"]]
    # coverage of what users run (one run each; the timed comparisons are the sections above)
    return cli_ab(s, {"auto (float16 on CUDA)": base, "bfloat16": base + ["--dtype", "bfloat16"]}, emit, 1)


def _summary(runs: list[dict]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("status") == "ok"]
    out: dict[str, Any] = {"runs": len(runs), "ok": len(ok)}
    if ok:
        out.update(seconds=median([r["seconds"] for r in ok]),
                   run_seconds=median([r["run_seconds"] for r in ok if r.get("run_seconds") is not None] or [0]),
                   evals_per_example=ok[0].get("evals_per_example"), examples=ok[0].get("examples"),
                   metrics=ok[0].get("metrics"))
    return out


def _agreement(va: dict, vb: dict) -> dict[str, Any] | None:
    """Share of examples with the same verdicts (per verdict kind) in two runs over the same examples."""
    if not va or not vb or set(va) != set(vb):
        return None
    first = next(iter(va.values()))
    if isinstance(first, dict):
        return {k: round(sum(va[i][k] == vb[i][k] for i in va) / len(va), 4) for k in first}
    return {"correct": round(sum(va[i] == vb[i] for i in va) / len(va), 4)}


def section_winodigits(s: dict, emit) -> dict[str, Any]:
    base = ["--model", "winodigits-sd", "--task", "winodigits", "--n-samples", str(s["winodigits_n"]),
            "--batch-size", "auto", "--device", s["device"], "--log-samples"]
    if s["winodigits_limit"]:
        base += ["--limit", str(s["winodigits_limit"])]
    return cli_ab(s, {"full": base, "early": base + ["--early-stop"]}, emit, pair=("full", "early"))


def section_mnist(s: dict, emit) -> dict[str, Any]:
    base = ["--model", "mnist-unet", "--task", "mnist", "--limit", str(s["mnist_limit"]), "--batch-size", "auto",
            "--device", s["device"], "--log-samples"]
    return cli_ab(s, {"fixed N = 20": base + ["--n-samples", "20"],
                      "early, budget 400": base + ["--n-samples", "400", "--early-stop"]}, emit,
                  pair=("fixed N = 20", "early, budget 400"))


def _transformer_sweep(s: dict, emit, build, inputs, sizes: dict[int, list[int]], what: str) -> dict[str, Any]:
    """evals/s (median of ``repeats`` after a warm-up) and peak memory for each (latent side, batch)."""
    import torch

    dev = s["device"]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(dev):
        model = build()
    model = torch.nn.Module.to(model, dtype=torch.bfloat16).eval()
    data: dict[str, Any] = {"model": what, "dtype": "bfloat16",
                            "parameters": sum(p.numel() for p in model.parameters()),
                            "weights_gib": round(sum(p.numel() * 2 for p in model.parameters()) / 2**30, 3),
                            "build_seconds": round(time.perf_counter() - t0, 1), "rows": []}
    emit(data)
    for side, batches in sizes.items():
        for b in batches:
            kwargs = inputs(side, b)
            peak: list = []

            def call():
                before = reset_peak(dev)
                with torch.inference_mode():
                    model(**kwargs)
                p = peak_gib(dev)
                peak.append(None if p is None else round(p - before, 3))
            try:
                times = alternate({"bf16": call}, s["repeats"], dev)["bf16"]
            except Exception as exc:
                if not is_oom(exc):
                    raise
                data["rows"].append({"latent": side, "batch": b, "oom": True})
                torch.cuda.empty_cache()
                emit(data)
                break
            data["rows"].append({"latent": side, "pixels": side * 8, "batch": b, "seconds": times,
                                 "evals_per_s": round(b / median(times), 2),
                                 "peak_gib": max(peak) if peak and peak[0] is not None else None})
            emit(data)
    return data


def section_sd3(s: dict, emit) -> dict[str, Any]:
    import torch
    from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel

    cfg, dev = s["sd3"], s["device"]

    def inputs(side, b):
        g = torch.Generator().manual_seed(side * 1000 + b)
        bf = torch.bfloat16
        return dict(hidden_states=torch.randn(b, cfg["in_channels"], side, side, generator=g).to(dev, bf),
                    encoder_hidden_states=torch.randn(b, s["sd3_tokens"], cfg["joint_attention_dim"],
                                                      generator=g).to(dev, bf),
                    pooled_projections=torch.randn(b, cfg["pooled_projection_dim"], generator=g).to(dev, bf),
                    timestep=(torch.rand(b, generator=g) * 1000).to(dev))

    return _transformer_sweep(s, emit, lambda: SD3Transformer2DModel(**cfg), inputs, s["sd3_sizes"],
                              "SD3Transformer2DModel, SD3-medium config" + (" (toy sizes)" if s["dry"] else ""))


def section_dit(s: dict, emit) -> dict[str, Any]:
    import torch
    from diffusers.models.transformers.dit_transformer_2d import DiTTransformer2DModel

    cfg, dev = s["dit"], s["device"]

    def build_for(side):
        return DiTTransformer2DModel(**dict(cfg, sample_size=side))

    data: dict[str, Any] = {"sizes": []}
    for side, batches in s["dit_sizes"].items():  # the positional table depends on the sample size
        def inputs(_side, b, side=side):
            g = torch.Generator().manual_seed(side * 1000 + b)
            return dict(hidden_states=torch.randn(b, cfg["in_channels"], side, side,
                                                  generator=g).to(dev, torch.bfloat16),
                        timestep=torch.randint(0, 1000, (b,), generator=g).to(dev),
                        class_labels=torch.randint(0, 1000, (b,), generator=g).to(dev))

        def part(d, done=list(data["sizes"])):
            emit({"sizes": done + [d]})
        data["sizes"].append(_transformer_sweep(s, part, lambda side=side: build_for(side), inputs, {side: batches},
                                                f"DiTTransformer2DModel, DiT-XL/2-{side * 8} config"
                                                + (" (toy sizes)" if s["dry"] else "")))
        emit(data)
        if dev == "cuda":
            torch.cuda.empty_cache()
    return data


SECTIONS: list[tuple[str, Callable, int]] = [  # name, function, time cap (s) on the GPU
    ("pipeline", section_pipeline, 90),
    ("bare", section_bare, 80),
    ("scorer", section_scorer, 60),
    ("original", section_original, 60),
    ("sd_plugin", section_sd_plugin, 90),
    ("winodigits", section_winodigits, 110),
    ("sd3", section_sd3, 60),
    ("dit", section_dit, 45),
    ("mnist", section_mnist, 70),
]


# --- the parent: one subprocess per section ----------------------------------------------------
def run_section(name: str, timeout: float, dry: bool) -> dict[str, Any]:
    """Run one section (``python -m benchmarks.gpu --section NAME``) under :func:`run_command`."""
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        out = Path(tmp) / "section.json"
        cmd = ([sys.executable, "-m", "benchmarks.gpu", "--section", name, "--out", str(out)]
               + (["--dry-run"] if dry else []))
        return run_command(cmd, out, timeout)


def run_command(cmd: list[str], out: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process group and never raise for what it does: ``ok`` with the JSON it
    left in ``out``; ``failed`` with its exit code and stderr tail (and what it had written, as
    ``partial``); ``timeout`` after killing the whole group (its partial output kept)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    err_path = out.with_name(out.name + ".stderr")
    t0 = time.perf_counter()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=str(ROOT), env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the section and anything it started
            except ProcessLookupError:
                pass
            proc.wait()
            rc, status = None, "timeout"
    rec: dict[str, Any] = {"status": status, "seconds": round(time.perf_counter() - t0, 1)}
    if rc is not None:
        rec["returncode"] = rc
    if status == "timeout":
        rec["timeout_s"] = round(timeout, 1)
    stderr = err_path.read_text(errors="replace")
    if status != "ok":
        rec["stderr_tail"] = tail(stderr)
    data = None
    if out.exists():
        try:
            data = json.loads(out.read_text())
        except ValueError:
            rec.update(status="failed" if status == "ok" else status,
                       stderr_tail=tail(stderr) + "\n(unreadable section output)")
    if data is not None:
        rec["data" if rec["status"] == "ok" else "partial"] = data
    elif rec["status"] == "ok":
        rec.update(status="failed", stderr_tail=tail(stderr) + "\n(no section output)")
    return rec


def run(quick: bool = False, dry_run: bool = False, save: Callable[[dict], None] | None = None,
        only: list[str] | None = None) -> dict[str, Any]:
    """All sections (or ``only`` some), each in a subprocess; ``save(data)`` after every section."""
    import torch

    if not dry_run and not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine: prepared, not run (python -m benchmarks --only gpu "
                           "--dry-run runs the same code on the CPU at toy sizes)", "last_dry_run": last_dry_run()}
    only = only or [n.strip() for n in os.environ.get("WINOEVAL_GPU_SECTIONS", "").split(",") if n.strip()] or None
    unknown = sorted(set(only or ()) - {n for n, _, _ in SECTIONS})
    if unknown:
        raise ValueError(f"WINOEVAL_GPU_SECTIONS: unknown section(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(n for n, _, _ in SECTIONS)}")
    res: dict[str, Any] = {"dry_run": dry_run, "budget_s": BUDGET_S, "sections": {},
                           "device": "cpu (dry run)" if dry_run else torch.cuda.get_device_name(0),
                           "torch": torch.__version__}
    started = time.perf_counter()
    for name, _, cap in SECTIONS:
        if only and name not in only:
            continue
        left = BUDGET_S - (time.perf_counter() - started)
        if left < 15:
            res["sections"][name] = {"status": "skipped", "why": f"the script's {BUDGET_S} s budget ran out"}
        else:
            timeout = min(cap, left) if not dry_run else max(cap, 300)  # CPU toy runs: generous, a shared box
            res["sections"][name] = run_section(name, timeout, dry_run)
        res["wall_seconds"] = round(time.perf_counter() - started, 1)
        if save:
            save(res)
    res["targets"] = [] if dry_run else targets(res)
    return res


def last_dry_run() -> dict[str, Any] | None:
    """Summary of this machine's latest ``--dry-run`` results file, if any: when, which code, statuses."""
    path = WORK / "dry-run" / f"{NAME}.json"
    try:
        res = json.loads(path.read_text())
        return {"date": res["date"], "git": res["git"], "wall_seconds": res["data"].get("wall_seconds"),
                "load_average_at_start": (res.get("machine") or {}).get("load_average_at_start"),
                "statuses": {n: r["status"] for n, r in res["data"]["sections"].items()}}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    sec = {n: r.get("data") for n, r in res["sections"].items()}
    out = []
    if sec.get("scorer"):
        r = sec["scorer"]["ratio"]
        out.append({"name": f"GPU: scorer / bare U-Net throughput (SD 2 base arch, fp16, batch auto), {res['device']}",
                    "target": ">= 0.95", "measured": f"{r:.3f}", "met": r >= 0.95})
    if sec.get("original"):
        r = sec["original"]["speed_ratio"]
        out.append({"name": "GPU: winoeval speed / original per-pair loop (real pipeline components, same work)",
                    "target": ">= 1.0×", "measured": f"{r:.2f}×", "met": r >= 1.0})
    w = sec.get("winodigits") or {}
    if w.get("evals_fraction") is not None and w.get("agreement"):
        agree = min(w["agreement"].values())
        out.append({"name": "GPU: winodigits-sd early decision, evaluations vs full budget (verdict agreement)",
                    "target": "<= 15 % (100 %)", "measured": f"{100 * w['evals_fraction']:.1f} % ({100 * agree:.1f} %)",
                    "met": w["evals_fraction"] <= 0.15 and agree == 1.0})
    return out


# --- rendering -----------------------------------------------------------------------------------
def _status(rec: dict) -> str:
    st = rec.get("status")
    if st == "ok":
        return f"ok, {rec.get('seconds')} s"
    if st == "skipped":
        return f"skipped ({rec.get('why')})"
    if st == "timeout":
        return f"**timeout** after {rec.get('seconds')} s (partial results kept)"
    last = (rec.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
    return f"**failed** (exit {rec.get('returncode')}): `{last[0][:160]}`"


def _dry_summary(d: dict | None) -> str:
    if not d:
        return ""
    ok = sum(st == "ok" for st in d["statuses"].values())
    bad = ", ".join(f"{n}: {st}" for n, st in d["statuses"].items() if st != "ok")
    return (f" Latest dry run on this machine: {d['date']}, git {d['git']}, load average {d['load_average_at_start']}: "
            f"{ok} of {len(d['statuses'])} sections ok{' (' + bad + ')' if bad else ''} in {d['wall_seconds']} s.")


def _sec(res, name):
    rec = res["sections"].get(name) or {}
    return rec.get("data") or rec.get("partial")


def render(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return ("**Prepared, not run**: no GPU was lent to the session that wrote it. On a CUDA machine: "
                "`python -m benchmarks --only gpu` (one script, under 8 minutes; sections: " +
                ", ".join(n for n, _, _ in SECTIONS) + "). Its CPU dry run, `python -m benchmarks --only gpu "
                "--dry-run`, runs the same code at toy sizes and is a test (tests/test_benchmarks_gpu.py)."
                + _dry_summary(res.get("last_dry_run")))
    lines = [f"Device: **{res['device']}**, torch {res['torch']}; "
             f"{'DRY RUN (toy sizes on the CPU): ' if res['dry_run'] else ''}"
             f"sections run in subprocesses, script budget {res['budget_s']} s, {res.get('wall_seconds')} s used.", ""]
    lines.append(md_table(["section", "status"], [[n, _status(r)] for n, r in res["sections"].items()], align="ll"))
    p = _sec(res, "pipeline")
    if p:
        lines += ["", f"Random-weight pipeline (SD 2 base architecture), {p['dtype']} safetensors: "
                      + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in p["parameters"].items()) + " parameters."]
    b = _sec(res, "bare")
    if b:
        rows = [[r["batch"], r.get("dtype", "-"), "OOM" if r.get("oom") else f"{r['evals_per_s']:.1f}",
                 "-" if r.get("oom") else f"{median(r['seconds']):.4f}",
                 r.get("forward_peak_gib") if r.get("forward_peak_gib") is not None else "n/a"]
                for r in b["rows"]]
        weights = "; weights resident (U-Net, VAE, text encoder): " + ", ".join(
            f"{k} {v} GiB" for k, v in b["weights_gib"].items()) if b.get("weights_gib") else ""
        lines += ["", f"U-Net alone ({b['latent']}×{b['latent']} latents), fp16 and bf16 alternated; median of the "
                      f"timed rounds; peak = GPU memory a forward allocates above what was allocated before "
                      f"it{weights}:", "",
                  md_table(["batch", "dtype", "evals/s", "s/forward", "forward peak GiB"], rows)]
    sc = _sec(res, "scorer")
    if sc:
        lines += ["", f"- Scorer, `batch_size=\"auto\"` ({sc['batch_size']}), {sc['examples']} 2×2 normalised "
                      f"examples, "
                      f"N = {sc['N']} ({sc['evals']} evaluations in {sc['forwards']} forwards): "
                      f"{sc['scorer_evals_per_s']:.1f} "
                      f"evals/s (VAE-encoding the images and encoding the texts included) vs bare U-Net forwards of "
                      f"the same "
                      f"batches {sc['bare_evals_per_s']:.1f} → **{sc['ratio']:.3f}×**; "
                      f"peak GPU memory {sc['peak_gib'] if sc['peak_gib'] is not None else 'n/a'} GiB "
                      f"(weights included)."]
    o = _sec(res, "original")
    if o:
        lines.append(f"- Original per-pair loop (VAE, tokenizer, text encoder per pair; 32 timesteps per forward) vs "
                     f"winoeval, {o['examples']} examples × 4 pairs × N = {o['N']}, {o['dtype']}: "
                     f"{median(o['times']['original']):.2f} s vs "
                     f"{median(o['times']['winoeval']):.2f} s → **{o['speed_ratio']:.2f}×**; max relative error "
                     f"difference {o['max_rel_diff']:.1e}.")
    for name, label in (("sd_plugin", "sd plugin end to end"), ("winodigits", "winodigits-sd"),
                        ("mnist", "mnist-unet")):
        d = _sec(res, name)
        if not d or "ab" not in d:
            continue
        rows = []
        for variant, runs in d["ab"]["runs"].items():
            for r in runs:
                rows.append([variant, f"`{r['command']}`", r.get("status"), r.get("seconds"), r.get("run_seconds", "-"),
                             r.get("evals_per_example", "-"),
                             ", ".join(f"{k} {v:.3f}" for k, v in (r.get("metrics") or {}).items()) or "-"])
        lines += ["", f"{label}: CLI runs, alternated; wall s = the process, run s = the results file's wall_time_s "
                      f"(task and model loading included):", "",
                  md_table(["variant", "command", "status", "wall s", "run s", "evals/example", "scores"], rows,
                           align="lllrrrl")]
        if d.get("agreement"):
            lines.append("")
            lines.append("Verdict agreement: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in d["agreement"].items())
                         + (f"; evaluations {100 * d['evals_fraction']:.1f} % of the full budget"
                            if d.get("evals_fraction") is not None else "")
                         + (f"; run time ratio {d['time_ratio']:.2f}" if d.get("time_ratio") is not None else "") + ".")
    tr = []
    for name in ("sd3", "dit"):
        d = _sec(res, name)
        if not d:
            continue
        for part in d.get("sizes", [d]):
            for r in part.get("rows", []):
                tr.append([part["model"], part.get("parameters", 0) // 10**6, r.get("pixels", "-"), r["batch"],
                           "OOM" if r.get("oom") else f"{r['evals_per_s']:.1f}",
                           r.get("peak_gib") if r.get("peak_gib") is not None else "n/a"])
    if tr:
        lines += ["", "Transformers, random weights, bf16 (median of the timed rounds; peak = memory a forward "
                      "allocates above the weights and inputs):", "",
                  md_table(["model", "M params", "pixels", "batch", "evals/s", "forward peak GiB"], tr, align="lrrrrr")]
    return "\n".join(lines)


# --- the child: one section --------------------------------------------------------------------
def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu")
    parser.add_argument("--section", required=True, choices=[n for n, _, _ in SECTIONS])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    import torch

    s = settings(args.dry_run)
    if args.dry_run:
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
        return 2
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    work_dir(s).mkdir(parents=True, exist_ok=True)
    out = Path(args.out)

    def emit(data: dict) -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, default=str))
        tmp.replace(out)

    fn = dict((n, f) for n, f, _ in SECTIONS)[args.section]
    emit(fn(s, emit))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
