"""Benchmark: value and gradient of the digits-CNN log joint vs a hand-written im2col NumPy forward/backward.

Model: ``nn.CNN()`` (the defaults: two 3×3 conv blocks with 8 and 16 channels,
a 64-unit dense layer, 10 classes; D = 6058) on the N = 1000 training digits
of ``datasets.digits``, log p(θ, D) = Σ_n log softmax(f(x_n; θ))[y_n] +
log N(θ; 0, I). approxpost computes it with ``ad`` ops (log_softmax times the
one-hot labels) and one backward pass; the reference is the same computation
written out by hand in NumPy, channels-last, with no graph: the cost floor
for this algorithm in NumPy. Both are timed in the same run, interleaved,
best of several repeats, at S = 1 and at a batch of S = 16 parameter vectors.
Run: ``OPENBLAS_NUM_THREADS=1 python bench/conv.py``: on a shared, loaded
machine multi-threaded BLAS stalls on these thin products (the S = 1 ratio
swung from 1.2 to 4.2 between runs with the default threads).
"""

from __future__ import annotations

import argparse
import os
import timeit

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import approxpost as ap
from approxpost import autodiff as ad

LOG_2PI = np.log(2 * np.pi)


def ad_log_joint(net, x, onehot, prior_std: float):
    """θ (D,) or (S, D) -> log p(θ, D), written with ad ops."""
    s2 = prior_std**2
    constant = net.dim * (0.5 * np.log(s2) + 0.5 * LOG_2PI)

    def log_joint(theta):
        log_lik = ad.sum(ad.log_softmax(net.forward(theta, x)) * onehot, axis=(-2, -1))
        return log_lik + ad.sum_squares(theta, axis=-1) * (-0.5 / s2) - constant

    return log_joint


def ad_value_and_grad(log_joint, theta):
    value, pullback = ad.vjp(log_joint, theta)
    return value, pullback(np.ones(value.shape))


def hand_log_joint_and_grad(net, x, onehot, prior_std: float, theta):
    """log p(θ, D) and its gradient for θ (S, D): relu conv blocks and dense layers, backpropagated by hand."""
    s, n = theta.shape[0], x.shape[0]
    grad = -theta / prior_std**2
    log_prior = -0.5 * np.sum(theta * theta, axis=1) / prior_std**2 - net.dim * (
        0.5 * np.log(prior_std**2) + 0.5 * LOG_2PI
    )

    def params(layer):
        (w0, w1, w_shape), (b0, b1, _) = layer.weight, layer.bias
        return theta[:, w0:w1].reshape(s, *w_shape), theta[:, b0:b1]

    convs = [layer for layer in net.layers if layer.kind == "conv"]
    denses = [layer for layer in net.layers if layer.kind == "dense"]
    h = x.transpose(0, 2, 3, 1)  # channels-last (N, H, W, C), shared by every θ until the first layer
    conv_cache = []
    offsets = [(p, q) for p in range(2) for q in range(2)]  # the 2×2 pooling window's entries
    for layer in convs:
        w, b = params(layer)
        o, c, kh, kw = w.shape[1:]
        height, width = h.shape[-3:-1]
        top, left = (kh - 1) // 2, (kw - 1) // 2
        padded = np.zeros(h.shape[:-3] + (height + kh - 1, width + kw - 1, c))
        padded[..., top : top + height, left : left + width, :] = h
        windows = sliding_window_view(padded, (kh, kw), axis=(-3, -2))  # (…, N, H, W, C, kh, kw)
        cols = np.moveaxis(windows, -3, -1).reshape(*h.shape[:-4], n * height * width, kh * kw * c)
        w_mat = np.moveaxis(w, 2, -1).reshape(s, o, kh * kw * c)  # columns (p, q, c) like cols
        z = cols @ w_mat.transpose(0, 2, 1) + b[:, None, :]  # (S, N·H·W, O)
        a = np.maximum(z, 0.0).reshape(s, n, height, width, o)
        pieces = [a[:, :, p::2, q::2, :] for p, q in offsets]
        pooled = pieces[0].copy()
        for piece in pieces[1:]:
            np.maximum(pooled, piece, out=pooled)
        conv_cache.append((layer, cols, w_mat, z, pieces, pooled, h.shape))
        h = pooled
    features = h.transpose(0, 1, 4, 2, 3).reshape(s, n, -1)  # the CNN's (channel, row, column) order
    hidden = [features]
    for i, layer in enumerate(denses):
        w, b = params(layer)
        z = hidden[-1] @ w + b[:, None, :]
        hidden.append(np.maximum(z, 0.0) if i < len(denses) - 1 else z)
    logits = hidden[-1]
    shift = logits.max(axis=-1, keepdims=True)
    log_probs = logits - shift - np.log(np.sum(np.exp(logits - shift), axis=-1, keepdims=True))
    log_lik = np.sum(log_probs * onehot, axis=(1, 2))
    delta = onehot - np.exp(log_probs)  # ∂ log p(D|θ) / ∂ logits
    for i in range(len(denses) - 1, -1, -1):
        (w0, w1, _), (b0, b1, _) = denses[i].weight, denses[i].bias
        w, _ = params(denses[i])
        grad[:, w0:w1] += (np.swapaxes(hidden[i], 1, 2) @ delta).reshape(s, -1)
        grad[:, b0:b1] += delta.sum(axis=1)
        delta = delta @ np.swapaxes(w, 1, 2)
        if i > 0:
            delta = delta * (hidden[i] > 0)
    c, hh, ww = net.feature_shape
    g_h = delta.reshape(s, n, c, hh, ww).transpose(0, 1, 3, 4, 2)
    for k in range(len(conv_cache) - 1, -1, -1):
        layer, cols, w_mat, z, pieces, pooled, in_shape = conv_cache[k]
        (w0, w1, (o, c, kh, kw)), (b0, b1, _) = layer.weight, layer.bias
        # a pooling window of identical patches (the digits' blank background) ties: its maxima share g
        hits = [piece == pooled for piece in pieces]
        share = g_h / (hits[0].astype(np.float64) + hits[1] + hits[2] + hits[3])
        g_a = np.empty(z.shape).reshape(pieces[0].shape[:2] + (2 * share.shape[2], 2 * share.shape[3], o))
        for hit, (p, q) in zip(hits, offsets):
            np.multiply(hit, share, out=g_a[:, :, p::2, q::2, :])
        g_z = g_a.reshape(z.shape) * (z > 0)
        grad[:, w0:w1] += (
            (np.swapaxes(cols, -1, -2) @ g_z).reshape(s, kh, kw, c, o).transpose(0, 4, 3, 1, 2).reshape(s, -1)
        )
        grad[:, b0:b1] += g_z.sum(axis=1)
        if k > 0:
            height, width = in_shape[-3:-1]
            g_cols = (g_z @ w_mat).reshape(s, n, height, width, kh, kw, c)
            top, left = (kh - 1) // 2, (kw - 1) // 2
            g_padded = np.zeros((s, n, height + kh - 1, width + kw - 1, c))
            for p in range(kh):
                for q in range(kw):
                    g_padded[:, :, p : p + height, q : q + width, :] += g_cols[..., p, q, :]
            g_h = g_padded[:, :, top : top + height, left : left + width, :]
    return log_lik + log_prior, grad


def best_time(fn, number: int) -> float:
    return min(timeit.repeat(fn, repeat=1, number=number)) / number


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    data = ap.datasets.digits(n_train=1000, seed=0)
    net = ap.nn.CNN()
    onehot = np.eye(10)[data.y]
    log_joint = ad_log_joint(net, data.x, onehot, prior_std=1.0)
    rng = np.random.default_rng(1)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"log joint value+grad, CNN() on digits, N={len(data.y)}, D={net.dim}, float64, BLAS threads {threads}")
    print(f"{'S':>4} {'hand im2col':>12} {'approxpost':>12} {'ratio':>7}")
    for batch, number in ((1, 20), (16, 2)):
        theta = net.init(rng, batch)
        single = theta[0] if batch == 1 else theta
        value, grad = ad_value_and_grad(log_joint, single)
        ref_value, ref_grad = hand_log_joint_and_grad(net, data.x, onehot, 1.0, theta)
        assert np.allclose(value, ref_value.reshape(np.shape(value)), rtol=1e-10), "the two log joints disagree"
        assert np.allclose(grad, ref_grad.reshape(grad.shape), rtol=1e-8, atol=1e-8), "the two gradients disagree"
        ref_t = ours_t = np.inf
        for _ in range(args.repeats):  # interleaved so drift hits both alike
            ref_t = min(ref_t, best_time(lambda: hand_log_joint_and_grad(net, data.x, onehot, 1.0, theta), number))
            ours_t = min(ours_t, best_time(lambda: ad_value_and_grad(log_joint, single), number))
        print(f"{batch:>4} {ref_t * 1e3:>10.1f}ms {ours_t * 1e3:>10.1f}ms {ours_t / ref_t:>7.2f}")


if __name__ == "__main__":
    main()
