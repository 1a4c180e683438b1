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

import approxpost as ap

LOG_2PI = np.log(2 * np.pi)


def make_model(n: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 1))
    y = np.sin(2 * x) + 0.1 * rng.standard_normal((n, 1))
    net = ap.nn.MLP([1, 50, 50, 1], activation="tanh")
    return ap.models.Regression(net, x, y, noise_std=0.1, prior_std=1.0)


def hand_fused(model, theta):
    """log p(θ, D) and its gradient for a batch θ (S, D), written out by hand."""
    net, x, y = model.net, model.x, model.y
    sigma2, s2 = model.noise_std**2, model.prior_std**2
    batch = theta.shape[0]
    params = [
        (theta[:, w0:w1].reshape(batch, *w_shape), theta[:, b0:b1].reshape(batch, 1, -1))
        for (w0, w1, w_shape), (b0, b1, _) in net.slices
    ]
    (w1, b1), (w2, b2), (w3, b3) = params
    h1 = np.tanh(x @ w1 + b1)
    h2 = np.tanh(h1 @ w2 + b2)
    f = h2 @ w3 + b3
    r = y - f
    n_terms = y.size
    log_lik = -0.5 * np.sum(r * r, axis=(1, 2)) / sigma2 - n_terms * (0.5 * np.log(sigma2) + 0.5 * LOG_2PI)
    log_prior = -0.5 * np.sum(theta * theta, axis=1) / s2 - model.dim * (0.5 * np.log(s2) + 0.5 * LOG_2PI)
    grad = -theta / s2
    df = r / sigma2
    gw3 = np.swapaxes(h2, 1, 2) @ df
    gb3 = df.sum(axis=1)
    dh2 = (df @ np.swapaxes(w3, 1, 2)) * (1 - h2 * h2)
    gw2 = np.swapaxes(h1, 1, 2) @ dh2
    gb2 = dh2.sum(axis=1)
    dh1 = (dh2 @ np.swapaxes(w2, 1, 2)) * (1 - h1 * h1)
    gw1 = x.T @ dh1
    gb1 = dh1.sum(axis=1)
    for ((p0, p1, _), (q0, q1, _)), gw, gb in zip(net.slices, (gw1, gw2, gw3), (gb1, gb2, gb3)):
        grad[:, p0:p1] += gw.reshape(batch, -1)
        grad[:, q0:q1] += gb.reshape(batch, -1)
    return log_lik + log_prior, grad


def best_time(fn, repeats: int, number: int) -> float:
    return min(timeit.repeat(fn, repeat=repeats, number=number)) / number


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    model = make_model()
    rng = np.random.default_rng(1)
    print(f"log_joint_and_grad, Regression(MLP([1, 50, 50, 1])), N=100, D={model.dim}, float64")
    print(f"{'S':>4} {'hand-fused':>12} {'approxpost':>12} {'ratio':>7}")
    for batch, number in ((1, 300), (64, 20)):
        theta = model.init(rng, batch)
        value, grad = model.log_joint_and_grad(theta)
        ref_value, ref_grad = hand_fused(model, theta)
        assert np.allclose(value, ref_value) and np.allclose(grad, ref_grad), "the two computations disagree"
        single = theta[0] if batch == 1 else theta
        ref_t = ours_t = np.inf
        for _ in range(args.repeats):  # interleaved so drift hits both alike
            ref_t = min(ref_t, best_time(lambda: hand_fused(model, theta), 1, number))
            ours_t = min(ours_t, best_time(lambda: model.log_joint_and_grad(single), 1, number))
        print(f"{batch:>4} {ref_t * 1e6:>10.0f}µs {ours_t * 1e6:>10.0f}µs {ours_t / ref_t:>7.2f}")


if __name__ == "__main__":
    main()
