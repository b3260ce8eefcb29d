"""Where the time goes: achieved GFLOP/s of the U-Net forward vs the machine's fp32 peak (CPU).

FLOPs of one forward are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions,
matmuls, attention: the ops it knows; norms and activations are not counted, so the figure is a
slight under-estimate of the work done). Time = median of interleaved repeats, as wall time and as the
process's CPU time (``time.process_time``): on a machine shared with other jobs a run gets a fraction of
each core, so wall time says what a run gets, CPU time what the hardware does. Peak fp32 =
cores × clock × FLOPs per cycle per core (32 with AVX2 + FMA: two 256-bit FMA pipes, as on AMD Zen 2/3
and Intel since Haswell; 64 with AVX-512 on two 512-bit pipes), read from /proc/cpuinfo; the base
clock, not a boost clock. A large fp32 matmul (torch.mm 2048², all threads) is the achievable ceiling.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .common import interleaved, load_sd, md_table, med, quiet_libraries, tiny_sd

NAME = "flops"
TITLE = "U-Net GFLOP/s vs the CPU's fp32 peak"


def cpu_peak() -> dict[str, Any]:
    import torch

    flags, mhz, model = "", None, "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = line
            elif line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":")[1])
            elif line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    per_cycle = 64 if " avx512f" in flags else 32 if (" avx2" in flags and " fma" in flags) else 8
    threads = torch.get_num_threads()
    cores = min(os.cpu_count() or 1, threads)
    peak = cores * (mhz or 0) / 1000 * per_cycle
    return {"cpu": model, "mhz": mhz, "flops_per_cycle_per_core": per_cycle, "cores_used": cores, "peak_gflops": peak}


def sgemm_gflops(n: int = 2048, reps: int = 5) -> list[float]:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        out.append(2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return out


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def models(quick: bool):
    """(name, batch, forward function) for mnist-unet and the tiny SD U-Net."""
    import torch

    from winoeval.plugins.mnist_unet import MnistDenoiser

    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(0)
    mnist = MnistDenoiser(device="cpu")
    b = 128
    x, t = torch.randn(b, 1, 28, 28, generator=g), torch.randint(0, 400, (b,), generator=g)
    c = mnist.encode_texts([str(i % 10) for i in range(b)])
    out = [("mnist-unet (1×28×28, batch 128)", b, lambda: mnist.predict_noise(x, t, c))]
    for size, batch in ((8, 128), (32, 32)):
        sd = load_sd(tiny_sd(size))
        xs = torch.randn(batch, 4, size, size, generator=g)
        ts = torch.randint(0, 1000, (batch,), generator=g)
        cs = sd.encode_texts(["a red cube"] * batch)
        out.append((f"tiny SD U-Net (4×{size}×{size} latents, batch {batch})", batch,
                    lambda sd=sd, xs=xs, ts=ts, cs=cs: sd.predict_noise(xs, ts, cs)))
    return out


def run(quick: bool = False) -> dict[str, Any]:
    quiet_libraries()
    import torch

    peak = cpu_peak()
    rows = []
    fns = models(quick)
    cpu: dict[str, list[float]] = {}

    def timed(name, fn):
        def go():
            t0 = time.process_time()
            fn()
            cpu.setdefault(name, []).append(time.process_time() - t0)
        return go

    variants = {name: timed(name, fn) for name, _, fn in fns}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    variants["sgemm 2048²"] = timed("sgemm 2048²", lambda: torch.mm(a, b))  # one product per call
    repeats = 3 if quick else 7
    times = interleaved(variants, repeats=repeats)
    cpu = {k: v[-repeats:] for k, v in cpu.items()}  # the timed rounds, not the warm-up
    for name, batch, fn in fns:
        flops = count_flops(fn)
        sec = med(times[name])
        rows.append({"model": name, "batch": batch, "gflop_per_forward": flops / 1e9, "seconds": times[name],
                     "cpu_seconds": cpu[name], "gflops": flops / sec / 1e9, "gflops_cpu": flops / med(cpu[name]) / 1e9,
                     "of_peak": flops / sec / 1e9 / peak["peak_gflops"] if peak["peak_gflops"] else None})
    sg = sgemm_gflops()
    sg_cpu = 2 * 2048 ** 3 / med(cpu["sgemm 2048²"]) / 1e9
    return {"peak": peak, "threads": torch.get_num_threads(), "rows": rows, "sgemm_gflops": sg,
            "sgemm_gflops_cpu": sg_cpu, "sgemm_of_peak": med(sg) / peak["peak_gflops"] if peak["peak_gflops"] else None}


def render(res: dict[str, Any]) -> str:
    p = res["peak"]
    cpu_sg = res.get("sgemm_gflops_cpu")
    lines = [f"CPU: {p['cpu']}, {p['cores_used']} core(s) used ({res['threads']} torch threads), {p['mhz']:.0f} MHz, "
             f"{p['flops_per_cycle_per_core']} fp32 FLOPs/cycle/core (from /proc/cpuinfo's flags) → nominal peak "
             f"**{p['peak_gflops']:.0f} GFLOP/s**. Achievable ceiling: fp32 `torch.mm` 2048² = "
             f"{med(res['sgemm_gflops']):.0f} GFLOP/s of wall time ({100 * res['sgemm_of_peak']:.0f} % of peak)"
             + (f", {cpu_sg:.0f} GFLOP/s of CPU time" if cpu_sg else "") + ". Other jobs share the machine: wall-time "
             "figures are what a run gets here, CPU-time figures what the hardware does.", ""]
    rows = [[r["model"], f"{r['gflop_per_forward']:.2f}",
             f"{1000 * med(r['seconds']):.1f} [{1000 * min(r['seconds']):.1f}–"
             f"{1000 * max(r['seconds']):.1f}]", f"{r['gflops']:.1f}", f"{100 * r['of_peak']:.1f} %",
             f"{r['gflops'] / med(res['sgemm_gflops']) * 100:.0f} %",
             f"{1000 * med(r['cpu_seconds']):.1f}" if r.get("cpu_seconds") else "-",
             f"{r['gflops_cpu']:.1f}" if r.get("gflops_cpu") else "-"] for r in res["rows"]]
    lines.append(md_table(["U-Net forward", "GFLOP / forward", "ms / forward (wall)", "GFLOP/s (wall)",
                           "of nominal peak", "of sgemm ceiling", "CPU ms / forward", "GFLOP/s (CPU time)"], rows))
    return "\n".join(lines)
