"""point_mass_outside: early decision on an ideal point-mass denoiser written outside the project.

The project's fixture (``winoeval.testing.point_mass``) is float64 with SD's scaled-linear schedule.
This is an independent implementation, as a plugin author would write it: float32, latents 4×8×8,
and three noise schedules — SD's scaled-linear (0.00085–0.012), DDPM's linear (1e-4–0.02) and the
cosine schedule (Nichol & Dhariwal, s = 0.008) — all with T = 1000. With data = the single point μ_c
per text, the ideal ε̂ = (x_t − √ᾱ_t·μ_c)/√(1−ᾱ_t) gives the error ᾱ_t/(1−ᾱ_t)·‖x−μ_c‖²/D whatever ε:
every paired difference has the sign of ‖x−μ_a‖² − ‖x−μ_b‖² at every t, scaled by a weight that spans
orders of magnitude over t. The stopping rule is scale-invariant, so where it stops depends on the
schedule (the weight's shape over t), not on the example — except when both candidates are at the
same distance (a tie), which must run the whole budget.

8 examples × 2 candidates: 7 random (x = μ_a + 0.8·noise), 1 with μ_b = μ_a (identical candidates).
Budget N = 1000 even timesteps (the default design), default early-decision settings; agreement =
same argmax as the full budget (ties: both runs see equal scores).
"""

from __future__ import annotations

import math
from typing import Any

from .common import md_table, pct

NAME = "point_mass_outside"
TITLE = "Early decision on a point-mass denoiser written outside the project (float32, three schedules)"
SCHEDULES = ("scaled_linear", "linear", "cosine")


class OutsidePointMass:
    kind = "denoiser"

    def __init__(self, means: dict[str, Any], schedule: str, T: int = 1000):
        import torch

        if schedule == "scaled_linear":
            betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, T) ** 2
            abar = torch.cumprod(1 - betas, 0)
        elif schedule == "linear":
            abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0)
        elif schedule == "cosine":
            f = [math.cos(((t / T) + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(T + 1)]
            betas = torch.tensor([min(1 - f[t + 1] / f[t], 0.999) for t in range(T)])
            abar = torch.cumprod(1 - betas, 0)
        else:
            raise ValueError(schedule)
        self.alphas_cumprod = abar.float()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.means = {k: v.float() for k, v in means.items()}

    def encode_images(self, images):
        import torch

        return torch.stack([im.float() for im in images])

    def encode_texts(self, texts):
        import torch

        zero = torch.zeros_like(next(iter(self.means.values())))
        return torch.stack([self.means[t] if t else zero for t in texts])

    def predict_noise(self, x_t, t, cond):
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * cond) / (1 - ab).sqrt()


def examples():
    import torch

    g = torch.Generator().manual_seed(23)
    out = []
    for e in range(8):
        mu_a = torch.randn(4, 8, 8, generator=g)
        mu_b = mu_a.clone() if e == 7 else torch.randn(4, 8, 8, generator=g)
        x = mu_a + 0.8 * torch.randn(4, 8, 8, generator=g)
        out.append((f"pm-outside-{e}", x, {"a": mu_a, "b": mu_b}))
    return out


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    from winoeval.config import ScorerConfig
    from winoeval.scoring import DiffusionScorer

    torch.set_num_threads(1)
    N = 1000
    rows = []
    for schedule in SCHEDULES:
        used, agree, per = [], 0, []
        for eid, x, mu in examples():
            model = OutsidePointMass(mu, schedule)
            early = DiffusionScorer(model, ScorerConfig(n_samples=(N,), early_stop=True)).score(eid, [x], ["a", "b"])
            full = DiffusionScorer(model, ScorerConfig(n_samples=(N,))).score(eid, [x], ["a", "b"])
            same = bool(torch.equal(early.scores[0].argmax(), full.scores[0].argmax()))
            agree += same
            n = int(early.n_used[0].max())
            used.append(n)
            per.append({"id": eid, "samples": n, "tie": bool(torch.equal(mu["a"], mu["b"])), "agree": same})
        rows.append({"schedule": schedule, "budget": N, "mean_samples": sum(used) / len(used),
                     "fraction": sum(used) / len(used) / N, "agreement": agree / len(used), "examples": per})
    return {"rows": rows}


def render(res: dict[str, Any]) -> str:
    rows = []
    for r in res["rows"]:
        non_tie = sorted({e["samples"] for e in r["examples"] if not e["tie"]})
        tie = [e["samples"] for e in r["examples"] if e["tie"]]
        rows.append([r["schedule"], r["budget"], f"{r['mean_samples']:.0f}", pct(r["fraction"]),
                     ", ".join(map(str, non_tie)), ", ".join(map(str, tie)), pct(r["agreement"])])
    return (__doc__.split("\n\n", 1)[1].strip() + "\n\n"
            + md_table(["schedule", "budget N", "samples used (mean)", "of budget", "the 7 non-tied examples",
                        "the tied example", "agreement with full"], rows))
