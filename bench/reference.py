"""What the benchmarks share: the standard BNN regression and its log joint backpropagated by hand.

The hand-written pass is the no-overhead reference each benchmark divides
by: plain NumPy on a batch θ (S, D), no graph, no closures. Imported by the
scripts beside it (``python bench/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import numpy as np

import approxpost as ap

__all__ = ["LOG_2PI", "deep_regression", "hand_log_joint_and_grad"]

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
        a = hidden[-1] @ w + b
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
            delta = (delta @ np.swapaxes(layers[i][0], 1, 2)) * (1.0 - h * h)
    return log_lik + log_prior, grad
