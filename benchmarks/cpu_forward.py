"""cpu_forward: the `mnist-unet` forward on the CPU — channels-last, torch.compile, bfloat16 autocast.

One process, 1 torch thread, batch 128 (the CPU ``--batch-size auto``), the shipped checkpoint on random
x_t / t / classes. Variants are timed interleaved (order rotating each round, one untimed round first);
the figure is CPU time (``time.process_time``: what the hardware does, whatever the machine's load),
with wall time beside it. FLOPs per forward from ``torch.utils.flop_counter`` (as in section ``flops``).
Each variant's output is compared with the eager float32 one (max |Δε̂|).

* ``eager``: as shipped (NCHW, float32);
* ``channels_last``: the network and its input in NHWC (oneDNN's preferred convolution layout);
* ``compile``: ``torch.compile(net)`` (inductor; its compile time is reported separately);
* ``bf16 autocast``: ``torch.autocast("cpu", torch.bfloat16)`` (the CPU has AVX-512 BF16).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .common import md_table, med

NAME = "cpu_forward"
TITLE = "CPU forward of mnist-unet: channels-last, torch.compile, bf16 autocast (CPU time)"


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    from winoeval.plugins.mnist_unet import MnistDenoiser

    from .flops import count_flops, cpu_peak

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = MnistDenoiser(device="cpu")
    net = model.net.eval()
    g = torch.Generator().manual_seed(0)
    B = 128
    x = torch.randn(B, 1, 28, 28, generator=g)
    t = torch.randint(0, 400, (B,), generator=g)
    c = torch.randint(0, 10, (B,), generator=g)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    variants = {
        "eager": lambda: net(x, t, c),
        "channels_last": lambda: net_cl(x_cl, t, c),
    }

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x, t, c)
    variants["bf16 autocast"] = bf16
    res: dict[str, Any] = {"batch": B, "threads": 1, "peak": cpu_peak()}
    if not quick:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            compiled = torch.compile(copy.deepcopy(net))
            compiled(x, t, c)
            variants["compile"] = lambda: compiled(x, t, c)
            res["compile_seconds"] = {"wall": round(time.perf_counter() - t0, 1),
                                      "cpu": round(time.process_time() - c0, 1)}
        except Exception as exc:  # a compiler failure is a result, not a crash
            res["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    ref = net(x, t, c)
    res["max_abs_diff"] = {k: float((v().float() - ref).abs().max()) for k, v in variants.items()}
    flops = count_flops(lambda: net(x, t, c))
    res["gflop_per_forward"] = flops / 1e9
    names = list(variants)
    for name in names:  # untimed round
        variants[name]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    repeats = 3 if quick else 7
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            w0, c0 = time.perf_counter(), time.process_time()
            variants[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    res["wall"], res["cpu"] = wall, cpu
    base = med(cpu["eager"])
    res["rows"] = [{"variant": n, "cpu_ms_per_eval": 1000 * med(cpu[n]) / B,
                    "wall_ms_per_eval": 1000 * med(wall[n]) / B,
                    "gflops_cpu": flops / med(cpu[n]) / 1e9, "speedup_cpu": base / med(cpu[n])} for n in names]
    return res


def render(res: dict[str, Any]) -> str:
    peak = res["peak"]["peak_gflops"]
    rows = [[r["variant"], f"{r['cpu_ms_per_eval']:.2f}", f"{r['wall_ms_per_eval']:.2f}", f"{r['gflops_cpu']:.1f}",
             f"{100 * r['gflops_cpu'] / peak:.0f} %" if peak else "-", f"{r['speedup_cpu']:.2f}×",
             f"{res['max_abs_diff'][r['variant']]:.1e}"] for r in res["rows"]]
    extra = ""
    if res.get("compile_seconds"):
        cs = res["compile_seconds"]
        extra = f"\n\n`torch.compile` took {cs['cpu']} s of CPU ({cs['wall']} s wall) before its first forward."
    if res.get("compile_error"):
        extra = f"\n\n`torch.compile` failed: {res['compile_error']}."
    return (f"Batch {res['batch']}, {res['threads']} torch thread, {res['gflop_per_forward']:.2f} GFLOP per forward; "
            f"nominal fp32 peak of one core {peak:.0f} GFLOP/s (section `flops`). Medians of interleaved rounds.\n\n"
            + md_table(["variant", "CPU ms / evaluation", "wall ms / evaluation", "GFLOP/s (CPU time)",
                        "of one core's fp32 peak", "speed (CPU) vs eager", "max |Δε̂| vs eager"], rows) + extra
            + "\n\nbf16 runs the matrix products at twice fp32's rate on this CPU (AVX-512 BF16), hence above the fp32 "
              "peak; its outputs differ from float32 by the last column's amount, so it changes errors, "
              "not only speed.")
