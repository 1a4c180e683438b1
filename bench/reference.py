"""What the benchmarks share: the standard BNN regression and its log joint backpropagated by hand.

The hand-written pass is the no-overhead reference each benchmark divides
by: plain NumPy on a batch θ (S, D), no graph, no closures. Imported by the
scripts beside it (``python bench/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import approxpost as ap

__all__ = [
    "LOG_2PI",
    "deep_regression",
    "linear_regression",
    "hand_log_joint_and_grad",
    "hand_linear_log_joint_and_grad",
    "hand_banana_log_joint_and_grad",
    "interleaved_medians",
]

LOG_2PI = np.log(2 * np.pi)


def deep_regression(n: int = 100, seed: int = 0):
    """``Regression(MLP([1, 50, 50, 1], "tanh"))`` on n points of sin(2x) + noise (D = 2701).

    Also tunes the allocator as ``fit`` would (timing ``ad`` code outside ``fit`` must ask for it).
    """
    ap.autodiff.ensure_malloc_tuned()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 1))
    y = np.sin(2 * x) + 0.1 * rng.standard_normal((n, 1))
    net = ap.nn.MLP([1, 50, 50, 1], activation="tanh")
    return ap.models.Regression(net, x, y, noise_std=0.1, prior_std=1.0)


def _matmul(a, b):
    """a @ b, an outer product (contracted axis of one) as a broadcast multiply: OpenBLAS's gemm is ~3x slower at it."""
    return a * b if a.shape[-1] == 1 else a @ b


def hand_log_joint_and_grad(model, theta):
    """log p(θ, D) and its gradient for a tanh MLP regression, θ (S, D), backpropagated by hand."""
    net, x, y = model.net, model.x, model.y
    s = theta.shape[0]
    layers = [
        (theta[:, w0:w1].reshape(s, *w_shape), theta[:, b0:b1].reshape(s, 1, -1))
        for (w0, w1, w_shape), (b0, b1, _) in net.slices
    ]
    hidden = [x]
    for i, (w, b) in enumerate(layers):
        a = _matmul(hidden[-1], w) + b
        hidden.append(np.tanh(a) if i < len(layers) - 1 else a)
    residual = y - hidden[-1]
    s2, n2 = model.prior_std**2, model.noise_std**2
    log_lik = -0.5 * np.sum(residual * residual, axis=(1, 2)) / n2 - y.size * (0.5 * np.log(n2) + 0.5 * LOG_2PI)
    log_prior = -0.5 * np.sum(theta * theta, axis=1) / s2 - model.dim * (0.5 * np.log(s2) + 0.5 * LOG_2PI)
    grad = -theta / s2
    delta = residual / n2  # ∂ log p(D|θ) / ∂ output
    for i in range(len(layers) - 1, -1, -1):
        (w0, w1, _), (b0, b1, _) = net.slices[i]
        h = hidden[i]
        grad[:, w0:w1] += (np.swapaxes(h, -1, -2) @ delta).reshape(s, -1)
        grad[:, b0:b1] += delta.sum(axis=1)
        if i > 0:
            delta = _matmul(delta, np.swapaxes(layers[i][0], 1, 2)) * (1.0 - h * h)
    return log_lik + log_prior, grad


def linear_regression(n: int = 100, p: int = 10, seed: int = 0):
    """``LinearRegression`` on n points with p features and an intercept (D = p + 1 = 11)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal(p) + 0.5 + 0.1 * rng.standard_normal(n)
    return ap.models.LinearRegression(x, y, noise_std=0.1, prior_std=1.0)


def hand_linear_log_joint_and_grad(model, theta):
    """log N(y | Xθ, σ²I) + log N(θ | 0, s²I) and its gradient Xᵀr/σ - θ/s², r = (y - Xθ)/σ, for θ (D,)."""
    design, y, sigma, s2 = model.design, model.y[:, 0], model.noise_std, model.prior_std**2
    residual = (y - design @ theta) / sigma
    constant = -y.size * (np.log(sigma) + 0.5 * LOG_2PI) - theta.size * 0.5 * (np.log(s2) + LOG_2PI)
    value = -0.5 * (residual @ residual) - 0.5 * (theta @ theta) / s2 + constant
    return value, design.T @ residual / sigma - theta / s2


def hand_banana_log_joint_and_grad(target, theta):
    """The banana's log density and gradient, θ (2,): ridge r = θ₂ - b(θ₁² - a²)."""
    a, b = target.scale, target.curvature
    t1, t2 = theta
    ridge = t2 - b * (t1 * t1 - a * a)
    value = -0.5 * (t1 / a) ** 2 - 0.5 * ridge * ridge - np.log(a) - LOG_2PI
    return value, np.array([-t1 / (a * a) + 2.0 * b * t1 * ridge, -ridge])


def interleaved_medians(fns: dict, number: int, repeats: int) -> dict:
    """Median seconds per call of each function, timing ``number`` calls of each in turn, ``repeats`` times.

    Interleaving makes load from elsewhere on a shared machine hit every
    function alike, and the median discards the repeats it hit hardest.
    """
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(t) for name, t in times.items()}
