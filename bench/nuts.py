"""Benchmark: NUTS effective samples per gradient and per second, at 1 and 8 chains in lockstep.

Models: the conjugate ``LinearRegression`` (D = 2), the correlated 2-D
``targets.Gaussian`` (ρ = 0.9) and the gap BNN ``Regression(MLP([1, 50, 1]))``
on ``gap_regression(n=40)`` (D = 151). Each runs ``NUTS.fit`` with the same
seed ``--repeats`` times (the chains are identical, only the clock differs;
the median time counts).

Reported per run: iterations (warm-up + kept), gradient evaluations of the
whole run (``post.cost``, warm-up included), the lockstep waste (fraction of
the post-warm-up batch's evaluations spent on chains whose tree had already
finished), the mean tree depth, the bulk ESS of the log joint and the
smallest bulk ESS over the coordinates of θ, then ESS (the smaller of the two)
per 1000 gradients and per second. With 8 chains the batch turns 8 chains'
gradients into one pass, so ESS/s rises even though waiting chains waste a
share of the evaluations. Run: ``python bench/nuts.py`` (about 2 minutes;
``--repeats 1`` for one pass).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import approxpost as ap
from approxpost.diagnostics import ess


def make_problems() -> dict:
    """name -> (model, NUTS settings): the BNN gets a shorter run and a depth cap (it hits the cap anyway)."""
    lin = ap.datasets.linear(n=50, noise_std=0.5, seed=0)
    gap = ap.datasets.gap_regression(n=40, seed=0)
    bnn = ap.models.Regression(ap.nn.MLP([1, 50, 1]), gap.x, gap.y, noise_std=gap.noise_std, prior_std=1.0)
    return {
        "linear D=2": (ap.models.LinearRegression(lin.x, lin.y, noise_std=0.5, prior_std=1.0), {}),
        "Gaussian 2-D ρ=0.9": (ap.targets.Gaussian(), {}),
        "gap BNN D=151": (bnn, {"n_warmup": 100, "n_samples": 100, "max_tree_depth": 7}),
    }


def run(model, settings: dict, n_chains: int, repeats: int, seed: int) -> dict:
    method = ap.NUTS(**{"n_warmup": 500, "n_samples": 500, **settings, "n_chains": n_chains})
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        post = method.fit(model, seed=seed)
        seconds.append(time.perf_counter() - start)
    kept = ~post.history["warmup"]
    log_joint = post.history["log_joint"][kept].T  # (n_chains, n_samples)
    ess_log_joint = float(ess(log_joint))
    ess_theta = float(np.min(post.diagnostics["ess"]))
    best = min(ess_log_joint, ess_theta)
    median = float(np.median(seconds))
    return {
        "iterations": method.n_warmup + method.n_samples,
        "grads": post.cost.grad_evals,
        "waste": post.diagnostics["lockstep_waste"],
        "depth": post.diagnostics["mean_tree_depth"],
        "ess_lj": ess_log_joint,
        "ess_theta": ess_theta,
        "per_kgrad": 1000.0 * best / post.cost.grad_evals,
        "per_s": best / median,
        "seconds": median,
        "spread": (max(seconds) - min(seconds)) / median,
    }


def report(rows: list) -> None:
    print("NUTS (multinomial, Stan warm-up, diagonal metric), chains in lockstep; ESS = min(ESS log p, min_i ESS θ_i)")
    header = "| model | chains | iterations | grads | waste | depth | ESS log p | min ESS θ | ESS/1k grad | ESS/s | s (median) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, n_chains, r in rows:
        print(
            f"| {name} | {n_chains} | {r['iterations']} | {r['grads']} | {r['waste']:.1%} | {r['depth']:.2f} | "
            f"{r['ess_lj']:.0f} | {r['ess_theta']:.0f} | {r['per_kgrad']:.3g} | {r['per_s']:.3g} | "
            f"{r['seconds']:.2f} (±{r['spread']:.0%}) |"
        )
    by_name = {}
    for name, n_chains, r in rows:
        by_name.setdefault(name, {})[n_chains] = r
    print("\n8 chains vs 1: ESS/s ratio, ESS/grad ratio")
    for name, runs in by_name.items():
        if 1 in runs and 8 in runs:
            print(
                f"  {name}: ESS/s ×{runs[8]['per_s'] / runs[1]['per_s']:.2f}, "
                f"ESS/grad ×{runs[8]['per_kgrad'] / runs[1]['per_kgrad']:.2f}"
            )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the median counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    rows = []
    for name, (model, settings) in make_problems().items():
        for n_chains in args.chains:
            rows.append((name, n_chains, run(model, settings, n_chains, args.repeats, args.seed)))
    report(rows)


if __name__ == "__main__":
    main()
