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
    "bare_mlp",
    "bare_linear",
    "bare_banana",
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
        grad[:, w0:w1] += (h.swapaxes(-1, -2) @ delta).reshape(s, -1)
        grad[:, b0:b1] += delta.sum(axis=1)
        if i > 0:
            delta = _matmul(delta, layers[i][0].swapaxes(1, 2)) * (1.0 - h * h)
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


# --- the bare calls: the NumPy calls the replayed tape makes, in its order, with no engine around them ---------
#
# Each function below is what ``model.log_joint_and_grad(θ)`` runs on the fused tape once the Var nodes,
# the VJP closures, the slot lists and the gradient dict are taken away: the same NumPy calls on the same
# constants in the same order, so the same bits (bench/autodiff.py asserts that). Timing it splits a row's
# gap to the hand-fused reference into the engine's choice of NumPy calls (bare / hand-fused) and its
# Python bookkeeping (tape / bare).


def bare_mlp(model, shape, with_prior: bool = True):
    """The tape's NumPy calls for ``Regression(MLP([1, ..., 1], "tanh"))`` at θ of ``shape``, (D,) or (S, D).

    Returns ``theta -> (value, gradient)``; the constants (scales, log-normalisers, the seed of ones) are
    made here once, as the tape records them. Where the calls differ from ``hand_log_joint_and_grad``
    (generality each op needs, as it cannot see its neighbours): the gradient starts as zeros and the
    prior's 2θ(g·(−½/s²)) is added after the layers' slices, two more D-length passes than starting from
    −θ/s²; the likelihood's backward is −(2r(g·(−½/σ²))), three elementwise ops where the hand writes
    r/σ²; and one θ (D,) runs 2-D products where the hand-fused reference runs θ[None] through batched
    ones. ``with_prior=False``: log p(D | θ) alone, the calls of the graph ``model.log_likelihood`` makes
    (what BBB differentiates, through ``Tape.vjp``, which also copies θ first).
    """
    lead, slices, x, y = tuple(shape[:-1]), model.net.slices, model.x, model.y
    prior_scale, lik_scale = -0.5 / model.prior_std**2, -0.5 / model.noise_std**2
    prior_constant = shape[-1] * (np.log(model.prior_std) + 0.5 * LOG_2PI)
    lik_constant = y.size * (np.log(model.noise_std) + 0.5 * LOG_2PI)
    ones, last = np.ones(lead), len(slices) - 1
    kept_lik, kept_prior, row = lead + (1, 1), lead + (1,), (1,) if lead else ()

    def call(theta):
        theta = np.asarray(np.asarray(theta, dtype=np.float64), dtype=np.float64)  # check_theta, Tape._check
        t = theta  # value_and_grad replays on θ itself: its backward pass runs before it returns
        prior = np.add.reduce(t * t, axis=-1) * prior_scale - prior_constant if with_prior else 0.0
        h, saved = x, []
        for i, ((w0, w1, w_shape), (b0, b1, b_shape)) in enumerate(slices):
            w = t[..., w0:w1].reshape(lead + tuple(w_shape))
            b = t[..., b0:b1].reshape(lead + row + tuple(b_shape))
            z = (h * w if h.shape[-1] == 1 else h @ w) + b  # ops._mm: an outer product as a broadcast multiply
            out = np.tanh(z) if i < last else z
            saved.append((h, w, b.shape, out))
            h = out
        r = y - h
        value = np.add.reduce(r * r, axis=(-2, -1)) * lik_scale - lik_constant
        value = prior + value if with_prior else value
        # backward: ``add`` hands the seed to both terms; the likelihood's VJP sends it to the network output
        g, grad = -(2.0 * r * (ones * lik_scale).reshape(kept_lik)), None
        for i in range(last, -1, -1):
            (w0, w1, _), (b0, b1, _) = slices[i]
            h, w, b_shape, out = saved[i]
            gz = g * (1.0 - out * out) if i < last else g
            if lead:  # ops._matmul_grad_b and unbroadcast summing the data axis out of the bias's gradient
                grad_w, grad_b = h.swapaxes(-1, -2) @ gz, gz.sum(axis=(1,), keepdims=True).reshape(b_shape)
            else:
                grad_w, grad_b = h.T @ gz, gz.sum(axis=(0,)).reshape(b_shape)
            if grad is None:  # the first IndexedGrad into θ's slot allocates its buffer
                grad = np.zeros(t.shape)
            grad[..., w0:w1] += grad_w.reshape(lead + (-1,))
            grad[..., b0:b1] += grad_b.reshape(lead + (-1,))
            if i > 0:  # ops._matmul_grad_a through ops._mm (an outer product for a one-output layer)
                wt = w.swapaxes(-1, -2) if lead else w.T
                g = gz * wt if gz.shape[-1] == 1 else gz @ wt
        if with_prior:
            grad += 2.0 * t * (ones * prior_scale).reshape(kept_prior)
        return (float(value) if not lead else value), grad

    return call


def bare_linear(model, shape):
    """The tape's NumPy calls for ``LinearRegression`` at θ (D,): ``theta -> (value, gradient)``.

    Where they differ from ``hand_linear_log_joint_and_grad``: the prior and the
    likelihood are each a reduce, a scale and a constant (the hand writes two dot products); the
    likelihood's backward is −(2r(g·(−½/σ²))) then Xᵀ(·)[:, None] (matmul's VJP for a 1-D θ), three
    elementwise ops and a reshape where the hand writes Xᵀr/σ; and the prior's gradient 2θ(g·(−½/s²))
    is two ops where the hand's −θ/s² is one.
    """
    design_t, y = model.design.T, model.y[:, 0]  # the transposed design the tape recorded as a constant
    prior_scale, lik_scale = -0.5 / model.prior_std**2, -0.5 / model.noise_std**2
    prior_constant = shape[-1] * (np.log(model.prior_std) + 0.5 * LOG_2PI)
    lik_constant = y.size * (np.log(model.noise_std) + 0.5 * LOG_2PI)
    ones = np.ones(())

    def call(theta):
        theta = np.asarray(np.asarray(theta, dtype=np.float64), dtype=np.float64)  # check_theta, Tape._check
        t = theta  # value_and_grad replays on θ itself: its backward pass runs before it returns
        prior = np.add.reduce(t * t, axis=-1) * prior_scale - prior_constant
        r = y - t @ design_t
        value = prior + (np.add.reduce(r * r, axis=-1) * lik_scale - lik_constant)
        g = -(2.0 * r * (ones * lik_scale).reshape((1,)))
        grad = (design_t @ g[..., None])[..., 0]
        grad = np.asarray(grad + 2.0 * t * (ones * prior_scale).reshape((1,)))  # add_gradient: a fresh sum
        return float(value), grad

    return call


def bare_banana(target, shape):
    """The tape's NumPy calls for the ``Banana`` at θ (2,): fifteen scalar ops forward, about as many back.

    ``log_density`` is written with ``ad`` ops on θ's two columns, so every step is a NumPy scalar op
    (the hand writes the same algebra, with 2θ₁b·ridge − θ₁/a² in place of the chain through each op);
    the gradient is a zeros (2,) buffer the two column reads add into.
    """
    a, b = target.scale, target.curvature
    a2, log_a = a**2, np.log(a)
    ones = np.ones(())

    def call(theta):
        theta = np.asarray(np.asarray(theta, dtype=np.float64), dtype=np.float64)  # check_theta, Tape._check
        t = theta  # value_and_grad replays on θ itself: its backward pass runs before it returns
        t1, t2 = t[..., 0], t[..., 1]
        square1 = t1 * t1
        ridge = t2 - b * (square1 - a2)
        scaled = t1 / a
        value = ((-0.5 * (scaled * scaled) - 0.5 * (ridge * ridge)) - log_a) - LOG_2PI + 0.0
        # backward, in the tape's reverse order: each op's VJP on the seed, the two column reads last
        g = ones
        g_ridge = 2.0 * (-g * 0.5) * ridge
        g_t1 = (2.0 * (g * -0.5) * scaled) / a
        g_t2, g_power = g_ridge, -g_ridge * b
        g_t1 = np.asarray(g_t1 + 2.0 * g_power * t1)
        grad = np.zeros((2,))
        grad[..., 1] += g_t2
        grad[..., 0] += g_t1
        return float(value), grad

    return call
