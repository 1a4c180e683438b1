"""Value and gradient of a classifier's log joint: approxpost against the same pass written by hand.

``python bench/classification.py`` times ``Classification(MLP([2, 50, 50, 2]))``
on 200 two-moons points at S = 1 and S = 16 parameter vectors, interleaving
the library and a plain-NumPy forward/backward (softmax cross-entropy) so
both see the same machine load; it prints medians and their ratio. The two
must agree to 1e-10 first, so the reference is the same computation.
"""

from __future__ import annotations

import time

import numpy as np

import approxpost as ap

REPEATS = 30


def hand_log_joint_and_grad(model, theta):
    """log p(θ, D) and its gradient for a tanh MLP classifier, θ (S, D), backpropagated by hand."""
    net, x, one_hot = model.net, model.x, np.eye(model.n_classes)[model.y]
    s = theta.shape[0]
    layers = [
        (theta[:, w0:w1].reshape(s, *w_shape), theta[:, b0:b1].reshape(s, 1, -1))
        for (w0, w1, w_shape), (b0, b1, _) in net.slices
    ]
    hidden = [x]
    for i, (w, b) in enumerate(layers):
        a = hidden[-1] @ w + b
        hidden.append(np.tanh(a) if i < len(layers) - 1 else a)
    logits = hidden[-1]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    s2 = model.prior_std**2
    log_lik = np.sum(log_p * one_hot, axis=(1, 2))
    log_prior = -0.5 * np.sum(theta * theta, axis=1) / s2 - model.dim * (0.5 * np.log(s2) + 0.5 * np.log(2 * np.pi))
    grad = -theta / s2
    delta = one_hot - np.exp(log_p)  # ∂ log p(y | logits) / ∂ logits
    for i in range(len(layers) - 1, -1, -1):
        (w0, w1, _), (b0, b1, _) = net.slices[i]
        grad[:, w0:w1] += (np.swapaxes(hidden[i], -1, -2) @ delta).reshape(s, -1)
        grad[:, b0:b1] += delta.sum(axis=1)
        if i > 0:
            delta = (delta @ np.swapaxes(layers[i][0], -1, -2)) * (1.0 - hidden[i] ** 2)
    return log_lik + log_prior, grad


def main() -> None:
    ap.autodiff.ensure_malloc_tuned()  # as fit would: timing ad code outside fit must ask for it
    data = ap.datasets.two_moons(n=200, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 50, 50, 2], activation="tanh"), data.x, data.y)
    print(f"Classification(MLP([2, 50, 50, 2])) on {model.n_data} points, D = {model.dim}; {REPEATS} repeats")
    print("| S | approxpost (ms) | by hand (ms) | ratio |\n|---:|---:|---:|---:|")
    for s in (1, 16):
        theta = model.init(np.random.default_rng(0), s)
        value, grad = model.log_joint_and_grad(theta)
        hand_value, hand_grad = hand_log_joint_and_grad(model, theta)
        np.testing.assert_allclose(value, hand_value, rtol=1e-10)
        np.testing.assert_allclose(grad, hand_grad, rtol=1e-10, atol=1e-10)
        ours, hand = [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            model.log_joint_and_grad(theta)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            hand_log_joint_and_grad(model, theta)
            hand.append(time.perf_counter() - start)
        a, b = 1e3 * np.median(ours), 1e3 * np.median(hand)
        print(f"| {s} | {a:.3f} | {b:.3f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
