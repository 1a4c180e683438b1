"""Benchmark: one BBB / BBVI step (estimate the gradient, Adam update) vs a hand-fused NumPy step.

Model: ``Regression(MLP([1, 50, 50, 1], "tanh"))`` on N = 100 points (D = 2701).
Rows: Bayes by Backprop at n_mc = 1 and 16 (reparameterised gradient, analytic
KL; "BBB" with the chain rule by hand after the engine's ∇θ, the default,
"BBB/ad" with the whole loss differentiated by the engine, and "BBB/hand∇θ"
the default step on the same model with a hand-fused ∇θ log p(D | θ) plugged
in, which isolates the method's own cost from the engine's; "BBB/bare∇θ" the
same with the bare calls, the NumPy calls the engine's graph of
log p(D | θ) makes with no engine around them, ``reference.bare_mlp``: the
ceiling without the engine's Python overhead; "BBB/free∇θ" both steps with a
∇θ that costs nothing, a fixed array: what is left is each step's own work
around the gradient, ε, σ, the KL, Adam and the Info), and BBVI at
n_mc = 16 (score function with the leave-one-out control variate). Each
reference step is the same computation written out by hand in NumPy —
forward, backward, KL gradient and Adam — the cost floor for it in NumPy. Both
sides draw the same ε from the same seed and are checked to give the same new
(μ, ρ) before timing. Times are medians over ``--repeats`` interleaved
rounds on ``--clock``: ``cpu`` (default), the process's CPU time, leaves out
the time spent waiting for a core on a shared machine (run with
``OPENBLAS_NUM_THREADS=1``); ``wall`` is elapsed time. Run: ``python bench/vi.py``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numpy as np
from reference import LOG_2PI, bare_mlp, deep_regression

import approxpost as ap
from approxpost import autodiff as ad
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


def _backprop(model, theta, h1, h2, df):
    """∇_θ log p(D | θ) (S, D) from the forward pass's hidden layers and df = ∂ log p / ∂f = (y − f)/σ²."""
    net, x = model.net, model.x
    (_, _), (w2, _), (w3, _) = unpack(net, theta)
    dh2 = (df @ w3.swapaxes(1, 2)) * (1 - h2 * h2)
    dh1 = (dh2 @ w2.swapaxes(1, 2)) * (1 - h1 * h1)
    pieces = [
        (x.T @ dh1, dh1.sum(axis=1)),
        (h1.swapaxes(1, 2) @ dh2, dh2.sum(axis=1)),
        (h2.swapaxes(1, 2) @ df, df.sum(axis=1)),
    ]
    grad = np.empty_like(theta)
    for ((p0, p1, _), (q0, q1, _)), (gw, gb) in zip(net.slices, pieces):
        grad[:, p0:p1] = gw.reshape(theta.shape[0], -1)
        grad[:, q0:q1] = gb.reshape(theta.shape[0], -1)
    return grad


def log_lik_grad(model, theta):
    """∇_θ log p(D | θ) for θ (S, D), backpropagated by hand."""
    h1, h2, f = forward(model, theta)
    return _backprop(model, theta, h1, h2, (model.y - f) / model.noise_std**2)


def log_lik_and_grad(model, theta):
    """log p(D | θ) (S,) and its gradient (S, D), backpropagated by hand from one forward pass."""
    y, n2 = model.y, model.noise_std**2
    h1, h2, f = forward(model, theta)
    residual = y - f
    value = -0.5 * np.sum(residual * residual, axis=(1, 2)) / n2 - y.size * (0.5 * np.log(n2) + 0.5 * LOG_2PI)
    return value, _backprop(model, theta, h1, h2, residual / n2)


class HandFusedLikelihood(ap.models.Regression):
    """The same regression whose log p(D | θ) is one graph node with the hand-fused gradient as its VJP.

    The library's BBB step on it runs everything of its own (ε, σ, KL, Adam, Info) around a ∇θ
    that costs what the hand-fused step's does: the difference to the reference is the method's.
    """

    replay_graph = False

    def log_likelihood(self, theta, idx=None):
        if idx is not None or not isinstance(theta, ad.Var):
            return super().log_likelihood(theta, idx)
        value, grad = log_lik_and_grad(self, theta.value)
        return ad.Var(value, (theta,), (lambda g: g[:, None] * grad,))


class BareLikelihood(ap.models.Regression):
    """The same regression whose log p(D | θ) is one node with the bare calls (``reference.bare_mlp``) as its VJP."""

    replay_graph = False

    def log_likelihood(self, theta, idx=None):
        if idx is not None or not isinstance(theta, ad.Var):
            return super().log_likelihood(theta, idx)
        calls = self.__dict__.setdefault("_bare", {})
        if theta.shape not in calls:
            calls[theta.shape] = bare_mlp(self, theta.shape, with_prior=False)
        value, grad = calls[theta.shape](theta.value)
        return ad.Var(value, (theta,), (lambda g: g[:, None] * grad,))


def free_grad(model, theta):
    """A fixed stand-in for ∇_θ log p(D | θ) of θ's shape, the same array every call: a ∇θ that costs nothing."""
    grads = model.__dict__.setdefault("_free_grads", {})
    if theta.shape not in grads:
        grads[theta.shape] = 0.01 * np.random.default_rng(7).standard_normal(theta.shape)
    return grads[theta.shape]


class FreeLikelihood(ap.models.Regression):
    """The same regression whose ∇θ is ``free_grad``'s fixed array (the library's per-draw gradient of the mean)."""

    def mean_log_likelihood_vjp(self, theta, idx=None, with_prior=False):
        grad = free_grad(self, theta)
        return 0.0, lambda g: (g / theta.shape[0]) * grad


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


def bbb_step(model, mu, rho, adam_state, rng, n_mc, lr, grad=log_lik_grad):
    """One BBB step by hand: θ = μ + σε, ∇ of −E log p(D|θ) + KL(q‖N(0, s²)), Adam."""
    eps = rng.standard_normal((n_mc, mu.size))
    sigma = np.logaddexp(0.0, rho)
    g_theta = grad(model, mu + sigma * eps)
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


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def median_times(fns: dict, number: int, repeats: int, clock) -> dict:
    """Median seconds per call of each function: ``number`` calls of each in turn, ``repeats`` rounds."""
    times = {name: [] for name in fns}
    for _ in range(repeats):  # interleaved, so load from elsewhere hits every function alike
        for name, fn in fns.items():
            start = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - start) / number)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what a run's time is (default: cpu)")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    model = deep_regression()
    hand_model = HandFusedLikelihood(model.net, model.x, model.y, noise_std=model.noise_std, prior_std=model.prior_std)
    bare_model = BareLikelihood(model.net, model.x, model.y, noise_std=model.noise_std, prior_std=model.prior_std)
    free_model = FreeLikelihood(model.net, model.x, model.y, noise_std=model.noise_std, prior_std=model.prior_std)
    free_step = functools.partial(bbb_step, grad=free_grad)
    cases = [
        ("BBB", BayesByBackprop(n_mc=1), model, bbb_step, 200),
        ("BBB", BayesByBackprop(n_mc=16), model, bbb_step, 20),
        ("BBB/ad", BayesByBackprop(n_mc=1, hand_gradient=False), model, bbb_step, 200),
        ("BBB/ad", BayesByBackprop(n_mc=16, hand_gradient=False), model, bbb_step, 20),
        ("BBB/hand∇θ", BayesByBackprop(n_mc=1), hand_model, bbb_step, 200),
        ("BBB/hand∇θ", BayesByBackprop(n_mc=16), hand_model, bbb_step, 20),
        ("BBB/bare∇θ", BayesByBackprop(n_mc=1), bare_model, bbb_step, 200),
        ("BBB/bare∇θ", BayesByBackprop(n_mc=16), bare_model, bbb_step, 20),
        ("BBB/free∇θ", BayesByBackprop(n_mc=1), free_model, free_step, 200),
        ("BBB/free∇θ", BayesByBackprop(n_mc=16), free_model, free_step, 20),
        ("BBVI", BBVI(n_mc=16, control_variate=True), model, bbvi_step, 40),
    ]
    print(f"one step (gradient estimate + Adam), Regression(MLP([1, 50, 50, 1])), N=100, D={model.dim}, float64")
    print(f"medians of {args.repeats} interleaved rounds, {args.clock} time; ratio = approxpost / hand-fused")
    print(f"{'method':<11} {'n_mc':>4} {'hand-fused':>12} {'approxpost':>12} {'ratio':>7}")
    for name, method, on, reference, number in cases:
        state = method.init(on, on.init(np.random.default_rng(0), 1)[0], np.random.default_rng(0))
        hand_state = (0, [np.zeros(on.dim)] * 2, [np.zeros(on.dim)] * 2)
        args_ref = (on, state.mu, state.rho, hand_state)
        ours, _ = method.step(on, state, np.random.default_rng(1))
        (mu, rho), _ = reference(*args_ref, np.random.default_rng(1), method.n_mc, method.learning_rate)
        assert np.allclose(ours.mu, mu, rtol=1e-9, atol=1e-12) and np.allclose(ours.rho, rho, rtol=1e-9, atol=1e-12), (
            f"{name}: the two steps disagree"
        )
        rng_ours, rng_ref = np.random.default_rng(2), np.random.default_rng(2)
        times = median_times(
            {
                "hand": lambda: reference(*args_ref, rng_ref, method.n_mc, method.learning_rate),
                "ours": lambda: method.step(on, state, rng_ours),
            },
            number,
            args.repeats,
            clock,
        )
        ref_t, ours_t = times["hand"], times["ours"]
        print(f"{name:<11} {method.n_mc:>4} {ref_t * 1e6:>10.0f}µs {ours_t * 1e6:>10.0f}µs {ours_t / ref_t:>7.2f}")
    breakdown(model, args.repeats, clock)


def breakdown(model, repeats: int, clock) -> None:
    """Where a BBB step at n_mc = 1 spends its time, piece by piece, library vs hand-written."""
    method = BayesByBackprop(n_mc=1)
    state = method.init(model, model.init(np.random.default_rng(0), 1)[0], np.random.default_rng(0))
    mu, rho, rng = state.mu, state.rho, np.random.default_rng(3)
    theta, sigma, prior, lam = mu[None], ad.softplus(rho), model.prior_distribution(), np.array((mu, rho))
    fresh = (0, [np.zeros(model.dim)] * 2, [np.zeros(model.dim)] * 2)
    s2 = model.prior_std**2
    pieces = [
        ("ε ~ N(0, I)", lambda: rng.standard_normal((1, mu.size)), lambda: rng.standard_normal((1, mu.size))),
        ("σ = softplus(ρ)", lambda: ad.softplus(rho), lambda: np.logaddexp(0.0, rho)),
        (
            "∇θ log p(D|θ)",
            lambda: model.mean_log_likelihood_vjp(theta)[1](-1.0),
            lambda: log_lik_grad(model, theta),
        ),
        (
            "KL (value +) gradient",
            lambda: ap.estimators.normal_kl_grad(mu, sigma, prior),
            lambda: (mu / s2, sigma / s2 - 1.0 / sigma),
        ),
        ("dσ/dρ", lambda: ap.estimators.dsigma_drho(sigma), lambda: 1.0 / (1.0 + np.exp(-rho))),
        (
            "Adam update",
            lambda: method.optimizer.update(
                (lam,), (lam,), state.opt_state
            ),  # BBB's Adam moves λ = (μ, ρ) as one array
            lambda: adam((mu, rho), (mu, rho), fresh, 1e-2),
        ),
        ("whole step", lambda: method.step(model, state, rng), lambda: bbb_step(model, mu, rho, fresh, rng, 1, 1e-2)),
    ]
    print(f"\nBBB n_mc=1, piece by piece: {'hand-fused':>12} {'approxpost':>12}")
    for label, ours, reference in pieces:
        times = median_times({"ours": ours, "hand": reference}, 100, repeats, clock)
        print(f"  {label:<27} {times['hand'] * 1e6:>10.0f}µs {times['ours'] * 1e6:>10.0f}µs")


if __name__ == "__main__":
    main()
