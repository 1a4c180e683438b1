"""Benchmark: ``log_joint_and_grad`` of a BNN regression vs a hand-fused NumPy forward/backward.

Model: ``Regression(MLP([1, 50, 50, 1], "tanh"))`` on N = 100 points (D = 2701),
at S = 1 parameter vector and at a batch of S = 64. The reference is the same
log joint and gradient written out by hand in NumPy (no graph, no closures):
the cost floor for this computation in NumPy. Both are timed in the same run,
interleaved, best of several repeats. Run: ``python bench/autodiff.py``.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from reference import deep_regression, hand_log_joint_and_grad


def best_time(fn, repeats: int, number: int) -> float:
    return min(timeit.repeat(fn, repeat=repeats, number=number)) / number


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    model = deep_regression()
    rng = np.random.default_rng(1)
    print(f"log_joint_and_grad, Regression(MLP([1, 50, 50, 1])), N=100, D={model.dim}, float64")
    print(f"{'S':>4} {'hand-fused':>12} {'approxpost':>12} {'ratio':>7}")
    for batch, number in ((1, 300), (64, 20)):
        theta = model.init(rng, batch)
        value, grad = model.log_joint_and_grad(theta)
        ref_value, ref_grad = hand_log_joint_and_grad(model, theta)
        assert np.allclose(value, ref_value) and np.allclose(grad, ref_grad), "the two computations disagree"
        single = theta[0] if batch == 1 else theta
        ref_t = ours_t = np.inf
        for _ in range(args.repeats):  # interleaved so drift hits both alike
            ref_t = min(ref_t, best_time(lambda: hand_log_joint_and_grad(model, theta), 1, number))
            ours_t = min(ours_t, best_time(lambda: model.log_joint_and_grad(single), 1, number))
        print(f"{batch:>4} {ref_t * 1e6:>10.0f}µs {ours_t * 1e6:>10.0f}µs {ours_t / ref_t:>7.2f}")


if __name__ == "__main__":
    main()
