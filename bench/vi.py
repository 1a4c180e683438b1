"""Benchmark: one BBB / BBVI step (estimate the gradient, Adam update) vs a hand-fused NumPy step.

Model: ``Regression(MLP([1, 50, 50, 1], "tanh"))`` on N = 100 points (D = 2701).
Rows: Bayes by Backprop at n_mc = 1 and 16 (reparameterised gradient, analytic
KL; "BBB" with the chain rule by hand after the engine's ∇θ, the default, and
"BBB/ad" with the whole loss differentiated by the engine), and BBVI at n_mc = 16 (score function with
the leave-one-out control variate). Each reference step is the same
computation written out by hand in NumPy — forward, backward, KL gradient and
Adam — the cost floor for it in NumPy. Both sides draw the same ε from the
same seed and are checked to give the same new (μ, ρ) before timing; timings
are interleaved, best of several repeats. Run: ``python bench/vi.py``.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from reference import LOG_2PI, deep_regression

import approxpost as ap
from approxpost.methods.bbb import BayesByBackprop
from approxpost.methods.bbvi import BBVI

# --- the hand-fused references ------------------------------------------------


def unpack(net, theta):
    batch = theta.shape[0]
    return [
        (theta[:, w0:w1].reshape(batch, *w_shape), theta[:, b0:b1].reshape(batch, 1, -1))
        for (w0, w1, w_shape), (b0, b1, _) in net.slices
    ]


def forward(model, theta):
    """Hidden activations and outputs of the 3-layer tanh MLP for θ (S, D)."""
    (w1, b1), (w2, b2), (w3, b3) = unpack(model.net, theta)
    h1 = np.tanh(model.x @ w1 + b1)
    h2 = np.tanh(h1 @ w2 + b2)
    return h1, h2, h2 @ w3 + b3


def log_lik_grad(model, theta):
    """∇_θ log p(D | θ) for θ (S, D), backpropagated by hand."""
    net, x, y = model.net, model.x, model.y
    (_, _), (w2, _), (w3, _) = unpack(net, theta)
    h1, h2, f = forward(model, theta)
    df = (y - f) / model.noise_std**2
    dh2 = (df @ np.swapaxes(w3, 1, 2)) * (1 - h2 * h2)
    dh1 = (dh2 @ np.swapaxes(w2, 1, 2)) * (1 - h1 * h1)
    pieces = [
        (x.T @ dh1, dh1.sum(axis=1)),
        (np.swapaxes(h1, 1, 2) @ dh2, dh2.sum(axis=1)),
        (np.swapaxes(h2, 1, 2) @ df, df.sum(axis=1)),
    ]
    grad = np.empty_like(theta)
    for ((p0, p1, _), (q0, q1, _)), (gw, gb) in zip(net.slices, pieces):
        grad[:, p0:p1] = gw.reshape(theta.shape[0], -1)
        grad[:, q0:q1] = gb.reshape(theta.shape[0], -1)
    return grad


def log_joint(model, theta):
    f = forward(model, theta)[2]
    s2, n2 = model.prior_std**2, model.noise_std**2
    log_lik = -0.5 * np.sum((model.y - f) ** 2, axis=(1, 2)) / n2 - model.y.size * (0.5 * np.log(n2) + 0.5 * LOG_2PI)
    return log_lik - 0.5 * np.sum(theta * theta, axis=1) / s2 - model.dim * (0.5 * np.log(s2) + 0.5 * LOG_2PI)


def adam(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    step, ms, vs = state
    step += 1
    c2 = np.sqrt(1 - b2**step)
    rate, eps = lr * c2 / (1 - b1**step), eps * c2
    out, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, ms, vs):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(p - rate * m / (np.sqrt(v) + eps))
        new_m.append(m)
        new_v.append(v)
    return out, (step, new_m, new_v)


def bbb_step(model, mu, rho, adam_state, rng, n_mc, lr):
    """One BBB step by hand: θ = μ + σε, ∇ of −E log p(D|θ) + KL(q‖N(0, s²)), Adam."""
    eps = rng.standard_normal((n_mc, mu.size))
    sigma = np.logaddexp(0.0, rho)
    g_theta = log_lik_grad(model, mu + sigma * eps)
    s2 = model.prior_std**2
    g_mu = mu / s2 - g_theta.mean(axis=0)
    g_sigma = sigma / s2 - 1.0 / sigma - (g_theta * eps).mean(axis=0)
    g_rho = g_sigma / (1.0 + np.exp(-rho))
    return adam((mu, rho), (g_mu, g_rho), adam_state, lr)


def bbvi_step(model, mu, rho, adam_state, rng, n_mc, lr):
    """One BBVI step by hand: score-function gradient with the leave-one-out baseline, Adam."""
    eps = rng.standard_normal((n_mc, mu.size))
    sigma = np.logaddexp(0.0, rho)
    f = (
        log_joint(model, mu + sigma * eps)
        + 0.5 * np.sum(eps * eps, axis=1)
        + np.sum(np.log(sigma))
        + 0.5 * mu.size * LOG_2PI
    )
    h = np.concatenate([eps / sigma, (eps * eps - 1.0) / (sigma * (1.0 + np.exp(-rho)))], axis=1)
    h2 = h * h
    fh2 = f[:, None] * h2
    baseline = (fh2.sum(axis=0) - fh2) / (h2.sum(axis=0) - h2)
    g = np.mean((f[:, None] - baseline) * h, axis=0)
    return adam((mu, rho), (-g[: mu.size], -g[mu.size :]), adam_state, lr)


# --- timing -------------------------------------------------------------------


def best_time(fn, number: int) -> float:
    return min(timeit.repeat(fn, repeat=1, number=number)) / number


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    model = deep_regression()
    cases = [
        ("BBB", BayesByBackprop(n_mc=1), bbb_step, 400),
        ("BBB", BayesByBackprop(n_mc=16), bbb_step, 60),
        ("BBB/ad", BayesByBackprop(n_mc=1, hand_gradient=False), bbb_step, 400),
        ("BBB/ad", BayesByBackprop(n_mc=16, hand_gradient=False), bbb_step, 60),
        ("BBVI", BBVI(n_mc=16, control_variate=True), bbvi_step, 200),
    ]
    print(f"one step (gradient estimate + Adam), Regression(MLP([1, 50, 50, 1])), N=100, D={model.dim}, float64")
    print(f"{'method':<6} {'n_mc':>4} {'hand-fused':>12} {'approxpost':>12} {'ratio':>7}")
    for name, method, reference, number in cases:
        state = method.init(model, model.init(np.random.default_rng(0), 1)[0], np.random.default_rng(0))
        hand_state = (0, [np.zeros(model.dim)] * 2, [np.zeros(model.dim)] * 2)
        args_ref = (model, state.mu, state.rho, hand_state)
        ours, _ = method.step(model, state, np.random.default_rng(1))
        (mu, rho), _ = reference(*args_ref, np.random.default_rng(1), method.n_mc, method.learning_rate)
        assert np.allclose(ours.mu, mu, rtol=1e-9, atol=1e-12) and np.allclose(ours.rho, rho, rtol=1e-9, atol=1e-12), (
            f"{name}: the two steps disagree"
        )
        rng_ours, rng_ref = np.random.default_rng(2), np.random.default_rng(2)
        ref_t = ours_t = np.inf
        for _ in range(args.repeats):  # interleaved so drift hits both alike
            ref_t = min(
                ref_t, best_time(lambda: reference(*args_ref, rng_ref, method.n_mc, method.learning_rate), number)
            )
            ours_t = min(ours_t, best_time(lambda: method.step(model, state, rng_ours), number))
        print(f"{name:<6} {method.n_mc:>4} {ref_t * 1e6:>10.0f}µs {ours_t * 1e6:>10.0f}µs {ours_t / ref_t:>7.2f}")
    breakdown(model, args.repeats)


def breakdown(model, repeats: int) -> None:
    """Where a BBB step at n_mc = 1 spends its time, piece by piece, library vs hand-written."""
    method = BayesByBackprop(n_mc=1)
    state = method.init(model, model.init(np.random.default_rng(0), 1)[0], np.random.default_rng(0))
    theta, rng = state.mu[None], np.random.default_rng(3)
    sigma = ap.autodiff.softplus(state.rho)
    pieces = [
        (
            "∇θ log p(D|θ)",
            lambda: ap.autodiff.vjp(lambda t: ap.autodiff.mean(model.log_likelihood(t)), theta)[1](-1.0),
            lambda: log_lik_grad(model, theta),
        ),
        (
            "Adam update",
            lambda: method.optimizer.update((state.mu, state.rho), (state.mu, state.rho), state.opt_state),
            lambda: adam(
                (state.mu, state.rho),
                (state.mu, state.rho),
                (0, [np.zeros(model.dim)] * 2, [np.zeros(model.dim)] * 2),
                1e-2,
            ),
        ),
        ("model.prior_distribution()", model.prior_distribution, None),
        (
            "KL value + gradient",
            lambda: ap.estimators.normal_kl_grad(state.mu, sigma, model.prior_distribution()),
            None,
        ),
        (
            "whole step",
            lambda: method.step(model, state, rng),
            lambda: bbb_step(
                model, state.mu, state.rho, (0, [np.zeros(model.dim)] * 2, [np.zeros(model.dim)] * 2), rng, 1, 1e-2
            ),
        ),
    ]
    print(f"\nBBB n_mc=1, piece by piece: {'hand-fused':>12} {'approxpost':>12}")
    for label, ours, reference in pieces:
        ours_t = min(best_time(ours, 300) for _ in range(repeats))
        ref = (
            f"{min(best_time(reference, 300) for _ in range(repeats)) * 1e6:>10.0f}µs"
            if reference is not None
            else f"{'—':>12}"
        )
        print(f"  {label:<27} {ref} {ours_t * 1e6:>10.0f}µs")


if __name__ == "__main__":
    main()
