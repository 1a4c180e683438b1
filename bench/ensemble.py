"""Benchmark: one DeepEnsemble(M=5) step (all members in one batched pass) against one MAP step.

The target is a ratio of at most 2: five members for the price of two fits,
because the batched matmuls and the elementwise Adam update cost far less
than five times one member's. Rows also time the anchored ensemble with
perturbed targets (one more network pass) and an MC dropout step. Models:
the gap problem's ``MLP([1, 50, 1])`` (D = 151) and the shared deep
regression ``MLP([1, 50, 50, 1])`` on 100 points (D = 2701). Each timing
steps a method from the same state; timings are interleaved and the median
of several repeats is reported. The last rows time the hand-written NumPy
log joint and gradient (bench/reference.py) at S = 1 and S = 5: the floor
batching itself allows, independent of the engine. Run:
``python bench/ensemble.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from reference import deep_regression, hand_log_joint_and_grad

import approxpost as ap


def gap_regression():
    data = ap.datasets.gap_regression(seed=0)
    net = ap.nn.MLP([1, 50, 1], activation="tanh")
    return ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


def seconds_per_step(method, model, n_steps: int) -> float:
    rng = np.random.default_rng(0)
    state = method.init(model, method.initial_position(model, None, rng), rng)
    start = time.perf_counter()
    for _ in range(n_steps):
        state, _ = method.step(model, state, rng)
    return (time.perf_counter() - start) / n_steps


def seconds_per_hand_pass(model, n_rows: int, n_steps: int) -> float:
    theta = model.init(np.random.default_rng(0), n_rows)
    start = time.perf_counter()
    for _ in range(n_steps):
        hand_log_joint_and_grad(model, theta)
    return (time.perf_counter() - start) / n_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    methods = {
        "MAP": ap.MAP(),
        "DeepEnsemble(M=5)": ap.DeepEnsemble(n_members=5),
        "DeepEnsemble(M=5, anchored, perturbed)": ap.DeepEnsemble(n_members=5, anchored=True, perturb_targets=True),
        "MCDropout(n_mc=1)": ap.MCDropout(p=0.1),
    }
    for label, model in (("gap MLP [1, 50, 1]", gap_regression()), ("deep MLP [1, 50, 50, 1]", deep_regression())):
        times = {name: [] for name in methods}
        for _ in range(args.repeats):  # interleaved, so machine load hits every row alike
            for name, method in methods.items():
                times[name].append(seconds_per_step(method, model, args.steps))
            for rows in (1, 5):
                times.setdefault(f"hand NumPy log joint + grad, S={rows}", []).append(
                    seconds_per_hand_pass(model, rows, args.steps)
                )
        base = statistics.median(times["MAP"])
        print(f"\n{label}, D = {model.dim}, N = {model.n_data}: median of {args.repeats} × {args.steps} steps")
        print("| method | ms / step | ratio to MAP |\n|---|---:|---:|")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"| {name} | {1e3 * median:.3f} | {median / base:.2f} |")
        hand = [statistics.median(times[f"hand NumPy log joint + grad, S={rows}"]) for rows in (1, 5)]
        print(f"hand-written floor: S=5 / S=1 = {hand[1] / hand[0]:.2f}")


if __name__ == "__main__":
    main()
