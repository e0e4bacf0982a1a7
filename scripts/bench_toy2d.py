#!/usr/bin/env python3
"""The two kernels of the toy experiments, Rust against PyTorch, side by side on one machine.

    python3 scripts/bench_toy2d.py [--rounds 5] [--repeats 7] [--torch-threads N]

Each round runs the Rust kernels (`cargo run --release -p toy2d --example kernels`, built first)
and then the same kernels written in PyTorch, so that both see the same load; it prints every
round and the medians over rounds, with the ratio PyTorch / Rust.

1. Annealed Langevin with exact scores at the size of paper Fig. 3: 1,280 particles uniform in
   [-8, 8]^2, sigma geometric 20 -> 1 over 10 levels, 100 steps each, alpha_i = eps sigma_i^2 /
   sigma_L^2 with eps = 0.1, on 1/5 N((-5,-5), I) + 4/5 N((5,5), I), float64 as in Rust. PyTorch
   runs the loop vectorised over particles and components (one (N, K, D) difference tensor,
   log-softmax responsibilities, the noise of a level drawn in one call), under
   `torch.inference_mode`.
2. One training step of the MLP 2 -> 128 -> 128 -> 2 (softplus) at batch 128, float32: 128 points
   from the mixture, the loss, backward, Adam (lr 1e-3): denoising score matching at sigma = 0.1,
   `1/2 mean ||s(x + sigma z) + z / sigma||^2`, and the noise-conditional DSM of
   `langevin-weights` (10 levels, s(x, sigma_i) = f(c_in x, i) / sigma_i with per-level scale and
   shift of the hidden pre-activations).

Only the standard library and torch are used. Nothing in the workspace's build or tests runs this.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PARTICLES = 1280


def mixture():
    weights = torch.tensor([0.2, 0.8], dtype=torch.float64)
    means = torch.tensor([[-5.0, -5.0], [5.0, 5.0]], dtype=torch.float64)
    variances = torch.tensor([1.0, 1.0], dtype=torch.float64)  # isotropic, per component
    return weights, means, variances


def annealed_exact(gen: torch.Generator) -> torch.Tensor:
    weights, means, variances = mixture()
    d = means.shape[1]
    sigmas = torch.logspace(math.log10(20.0), 0.0, 10, dtype=torch.float64).tolist()
    eps, steps = 0.1, 100
    x = torch.rand(PARTICLES, d, generator=gen, dtype=torch.float64) * 16.0 - 8.0
    for sigma in sigmas:
        alpha = eps * sigma**2 / sigmas[-1] ** 2
        var = variances + sigma**2  # p_sigma: every component's variance grows by sigma^2
        log_coef = weights.log() - 0.5 * d * torch.log(2 * math.pi * var)  # (K,)
        inv_var = (1.0 / var)[None, :, None]  # (1, K, 1)
        z = torch.randn(steps, PARTICLES, d, generator=gen, dtype=torch.float64)
        drift, noise = 0.5 * alpha, math.sqrt(alpha)
        for t in range(steps):
            diff = x[:, None, :] - means[None]  # (N, K, D)
            logits = log_coef - 0.5 * (diff * diff).sum(-1) / var  # ln w_k N_k(x)
            r = torch.softmax(logits, dim=1)  # responsibilities
            s = -(r[:, :, None] * diff * inv_var).sum(1)  # sum_k r_k g_k
            x = x + drift * s + noise * z[t]
    return x


class Mlp(torch.nn.Module):
    def __init__(self, hidden: int = 128, levels: int = 0):
        super().__init__()
        self.lin1 = torch.nn.Linear(2, hidden)
        self.lin2 = torch.nn.Linear(hidden, hidden)
        self.lin3 = torch.nn.Linear(hidden, 2)
        if levels:
            self.gamma1 = torch.nn.Parameter(torch.ones(levels, hidden))
            self.gamma2 = torch.nn.Parameter(torch.ones(levels, hidden))
            self.beta1 = torch.nn.Parameter(torch.zeros(levels, hidden))
            self.beta2 = torch.nn.Parameter(torch.zeros(levels, hidden))

    def forward(self, x, levels=None, c_in=None, sigmas=None):
        sp = torch.nn.functional.softplus
        if levels is None:
            return self.lin3(sp(self.lin2(sp(self.lin1(x)))))
        x = x * c_in[levels][:, None]
        h = sp(self.lin1(x) * self.gamma1[levels] + self.beta1[levels])
        h = sp(self.lin2(h) * self.gamma2[levels] + self.beta2[levels])
        return self.lin3(h) / sigmas[levels][:, None]


def sample_mixture(n: int, gen: torch.Generator) -> torch.Tensor:
    k = (torch.rand(n, generator=gen) >= 0.2).float()  # component 1 with probability 0.8
    centre = (2 * k - 1)[:, None] * 5.0
    return centre + torch.randn(n, 2, generator=gen)


def dsm_stepper(gen: torch.Generator):
    model = Mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sigma = 0.1

    def step():
        x = sample_mixture(128, gen)
        z = torch.randn(128, 2, generator=gen)
        s = model(x + sigma * z)
        loss = 0.5 * ((s + z / sigma) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def ncsn_stepper(gen: torch.Generator):
    sigmas = torch.logspace(math.log10(20.0), 0.0, 10)
    c_in = 3.0 / torch.sqrt(1 + sigmas**2)
    model = Mlp(levels=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        x = sample_mixture(128, gen)
        levels = torch.randint(0, 10, (128,), generator=gen)
        z = torch.randn(128, 2, generator=gen)
        used = sigmas[levels][:, None]
        s = model(x + used * z, levels, c_in, sigmas)
        loss = 0.5 * (((s + z / used) ** 2) * used**2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_ms(repeats: int, inner: int, f) -> float:
    f()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            f()
        out.append((time.perf_counter() - t) * 1e3 / inner)
    return statistics.median(out)


def torch_round(repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        annealed = time_ms(repeats, 1, lambda: annealed_exact(gen))
    dsm = time_ms(repeats, 200, dsm_stepper(gen))
    ncsn = time_ms(repeats, 200, ncsn_stepper(gen))
    return {"annealed_ms": annealed, "dsm_step_ms": dsm, "ncsn_step_ms": ncsn, "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7, help="timings per kernel per round (median taken)")
    ap.add_argument("--torch-threads", type=int, default=0, help="0: PyTorch's default")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    build = ["cargo", "build", "--release", "-q", "-p", "toy2d", "--example", "kernels"]
    subprocess.run(build, cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "examples" / "kernels"
    keys = ["annealed_ms", "dsm_step_ms", "ncsn_step_ms"]
    rust_rounds, torch_rounds = [], []
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for i in range(args.rounds):
        out = subprocess.run([str(binary), str(args.repeats)], cwd=ROOT, check=True, capture_output=True, text=True)
        rust = json.loads(out.stdout.strip().splitlines()[-1])
        pt = torch_round(args.repeats)
        rust_rounds.append(rust)
        torch_rounds.append(pt)
        cells = "  ".join(f"{k}: rust {rust[k]:.3f} torch {pt[k]:.3f}" for k in keys)
        print(f"round {i + 1}: {cells}", flush=True)
    print("\nmedian over rounds (ms)      rust     torch   torch/rust")
    for k in keys:
        r = statistics.median(x[k] for x in rust_rounds)
        t = statistics.median(x[k] for x in torch_rounds)
        print(f"  {k:<24} {r:8.3f}  {t:8.3f}  {t / r:8.1f}x")
    with open("/proc/loadavg") as f:
        print(f"load average after: {f.read().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
