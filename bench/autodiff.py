"""Benchmark: ``log_joint_and_grad`` on the course's models vs a hand-fused NumPy reference, one run.

Rows: the BNN ``Regression(MLP([1, 50, 50, 1], "tanh"))`` on N = 100 points
(D = 2701) at one θ, S = 8 and S = 64; the gap model ``MLP([1, 50, 1])``,
N = 40 (D = 151) at θ (1, D), one HMC chain's call; ``LinearRegression`` with D = 11 at one θ;
the 2-D ``Banana`` target at one θ. Each row times, interleaved in the same
run and as medians of ``--repeats``: the hand-fused NumPy reference (no
graph, the floor for the computation in NumPy), the bare calls (the NumPy
calls the replayed tape makes, in its order, with no ``Var``, closure or tape
around them: ``reference.bare_*``, asserted to give the tape's value and
gradient bit for bit), approxpost on the plain graph
(the teaching path: ``ad.plain_graph()``, rebuilt every call), with the fused
primitives, and fused on the replayed tape (``Model.replay_graph``, the
default), and JAX jit / PyTorch eager
when they are importable (never a dependency). Ratios are to the hand-fused
time of the same row; the summary splits each row's ratio into bare / hand-fused
(the floor set by the engine's choice of NumPy calls) and tape / bare (its
Python bookkeeping). ``--activations`` adds the per-element cost of tanh,
exp and the expm1 / guarded-exp forms of tanh that were measured before
keeping ``np.tanh``. Run: ``python bench/autodiff.py``.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from reference import (
    LOG_2PI,
    bare_banana,
    bare_linear,
    bare_mlp,
    deep_regression,
    hand_banana_log_joint_and_grad,
    hand_linear_log_joint_and_grad,
    hand_log_joint_and_grad,
    interleaved_medians,
    linear_regression,
)

import approxpost as ap


def plain(model):
    """The teaching path: the plain graph (``ad.plain_graph()``, no fused ops), rebuilt on every call (no tape)."""

    def call(theta):
        model.replay_graph = False
        try:
            with ap.autodiff.plain_graph():
                return model.log_joint_and_grad(theta)
        finally:
            del model.replay_graph

    return call


def fused(model):
    """The fused primitives (``ad.dense``, ``ad.gaussian_log_density``), graph rebuilt on every call."""

    def call(theta):
        model.replay_graph = False
        try:
            return model.log_joint_and_grad(theta)
        finally:
            del model.replay_graph

    return call


def replayed(model):
    """The default: fused primitives on the replayed tape (``Model.replay_graph``, on for regressions)."""
    model.replay_graph = True
    return model.log_joint_and_grad


# --- optional framework rows: only when importable, never a dependency ----------------


def jax_rows(model, kind, theta):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    if kind == "mlp":
        x, y, slices = jnp.asarray(model.x), jnp.asarray(model.y), model.net.slices
        s2, n2 = model.prior_std**2, model.noise_std**2

        def log_joint(t):
            h = x
            for i, ((w0, w1, w_shape), (b0, b1, _)) in enumerate(slices):
                h = h @ t[w0:w1].reshape(w_shape) + t[b0:b1]
                h = jnp.tanh(h) if i < len(slices) - 1 else h
            log_lik = -0.5 * jnp.sum((y - h) ** 2) / n2 - y.size * (0.5 * np.log(n2) + 0.5 * LOG_2PI)
            return log_lik - 0.5 * jnp.sum(t * t) / s2 - t.size * (0.5 * np.log(s2) + 0.5 * LOG_2PI)

    elif kind == "linear":
        design, yv, sigma, s2 = (
            jnp.asarray(model.design),
            jnp.asarray(model.y[:, 0]),
            model.noise_std,
            model.prior_std**2,
        )

        def log_joint(t):
            r = (yv - design @ t) / sigma
            return -0.5 * r @ r - 0.5 * t @ t / s2 - yv.size * np.log(sigma) - t.size * 0.5 * np.log(s2)

    else:
        a, b = model.scale, model.curvature

        def log_joint(t):
            ridge = t[1] - b * (t[0] ** 2 - a * a)
            return -0.5 * (t[0] / a) ** 2 - 0.5 * ridge**2 - np.log(a) - LOG_2PI

    value_and_grad = jax.value_and_grad(log_joint)
    fn = jax.jit(jax.vmap(value_and_grad) if theta.ndim == 2 else value_and_grad)
    t = jnp.asarray(theta)
    jax.block_until_ready(fn(t))
    label = "JAX jit vmap" if theta.ndim == 2 else "JAX jit"
    return {label: lambda: jax.block_until_ready(fn(t))}


def torch_rows(model, kind, theta):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)  # its two-thread pool spin-waits itself to a standstill on a shared 2-core machine
    if kind == "mlp":
        x, y = torch.from_numpy(model.x), torch.from_numpy(model.y)
        s2, n2, slices = model.prior_std**2, model.noise_std**2, model.net.slices
        lead = theta.shape[:-1]

        def log_joint(t):
            h = x
            for i, ((w0, w1, w_shape), (b0, b1, _)) in enumerate(slices):
                bias = t[..., b0:b1].reshape(lead + ((1,) if lead else ()) + (-1,))
                h = h @ t[..., w0:w1].reshape(lead + w_shape) + bias
                h = torch.tanh(h) if i < len(slices) - 1 else h
            log_lik = -0.5 * ((y - h) ** 2).sum(dim=(-2, -1)) / n2
            return (log_lik - 0.5 * (t * t).sum(-1) / s2).sum()

    elif kind == "linear":
        design, yv, sigma, s2 = (
            torch.from_numpy(model.design),
            torch.from_numpy(model.y[:, 0]),
            model.noise_std,
            model.prior_std**2,
        )

        def log_joint(t):
            r = (yv - design @ t) / sigma
            return -0.5 * r @ r - 0.5 * t @ t / s2

    else:
        a, b = model.scale, model.curvature

        def log_joint(t):
            ridge = t[1] - b * (t[0] ** 2 - a * a)
            return -0.5 * (t[0] / a) ** 2 - 0.5 * ridge**2

    base = torch.from_numpy(np.array(theta))

    def call():
        t = base.clone().requires_grad_(True)
        value = log_joint(t)
        value.backward()
        return value.detach(), t.grad

    return {"PyTorch eager": call}


# --- the rows -------------------------------------------------------------------------


def rows(rng):
    deep, linear, banana = deep_regression(), linear_regression(), ap.targets.Banana()
    data = ap.datasets.gap_regression(n=40, seed=0)
    gap = ap.models.Regression(ap.nn.MLP([1, 50, 1]), data.x, data.y, noise_std=data.noise_std, prior_std=1.0)
    theta64 = deep.init(rng, 64)
    return [
        ("BNN D=2701, one θ", deep, "mlp", theta64[0], lambda t: hand_log_joint_and_grad(deep, t[None]), 300),
        ("BNN D=2701, S=8", deep, "mlp", theta64[:8], lambda t: hand_log_joint_and_grad(deep, t), 40),
        ("BNN D=2701, S=64", deep, "mlp", theta64, lambda t: hand_log_joint_and_grad(deep, t), 10),
        # HMC's one chain: θ (1, D) on the gap model of bench/samplers.py
        ("gap D=151, (1, D)", gap, "mlp", gap.init(rng, 1), lambda t: hand_log_joint_and_grad(gap, t), 1000),
        (
            "linear D=11, one θ",
            linear,
            "linear",
            rng.standard_normal(11),
            lambda t: hand_linear_log_joint_and_grad(linear, t),
            3000,
        ),
        (
            "banana 2-D, one θ",
            banana,
            "banana",
            np.array([0.3, -0.2]),
            lambda t: hand_banana_log_joint_and_grad(banana, t),
            5000,
        ),
    ]


BARE = {"mlp": bare_mlp, "linear": bare_linear, "banana": bare_banana}
TARGETS = {"BNN D=2701, one θ": 1.1, "BNN D=2701, S=64": 1.05, "linear D=11, one θ": 3.0}


def check_bare(bare, tape, theta):
    """The bare calls are the tape's calls: the same value and gradient, bit for bit."""
    value, grad = bare(theta)
    tape_value, tape_grad = tape(theta)
    assert np.array_equal(value, tape_value) and np.array_equal(grad, tape_grad), "the bare calls are not the tape's"


def check(ours, reference, theta):
    value, grad = ours(theta)
    ref_value, ref_grad = reference(theta)
    assert np.allclose(value, ref_value, rtol=1e-10) and np.allclose(
        grad, np.reshape(ref_grad, np.shape(grad)), rtol=1e-8, atol=1e-8
    ), "the computations disagree"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--activations", action="store_true", help="also time tanh / exp per element")
    parser.add_argument("--rows", nargs="+", metavar="TEXT", help="only the rows whose name contains one of these")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    print(f"log_joint_and_grad, float64, medians of {args.repeats} interleaved repeats; ratio = time / hand-fused time")
    print(f"{'row':<20} {'variant':<15} {'time':>10} {'ratio':>7}")
    summary = []
    for name, model, kind, theta, reference, number in rows(rng):
        if args.rows and not any(text in name for text in args.rows):
            continue
        bare = BARE[kind](model, theta.shape)
        check_bare(bare, replayed(model), theta)
        check(bare, reference, theta)
        fns = {"hand-fused": lambda: reference(theta), "bare calls": lambda: bare(theta)}
        variants = (("ap plain graph", plain(model)), ("ap fused", fused(model)), ("ap fused+tape", replayed(model)))
        for label, ours in variants:
            check(ours, reference, theta)
            fns[label] = (lambda f: lambda: f(theta))(ours)
        fns.update(jax_rows(model, kind, theta))
        fns.update(torch_rows(model, kind, theta))
        medians = interleaved_medians(fns, number, args.repeats)
        for label, seconds in medians.items():
            print(f"{name:<20} {label:<16} {seconds * 1e6:>8.1f}µs {seconds / medians['hand-fused']:>7.2f}")
        summary.append((name, medians))
    report(summary)
    if args.activations:
        activations()


def report(summary) -> None:
    """Per row: the three times, the ratio split into floor × overhead, the target, the frameworks."""
    print("\nbare/hand: the floor from the engine's NumPy calls; tape/bare: its Python overhead; product = ratio")
    print(
        f"{'row':<20} {'hand-fused':>10} {'bare':>9} {'tape':>9} {'bare/hand':>9} {'tape/bare':>9} {'ratio':>6} "
        f"{'target':>6} {'met':>4} {'JAX':>9} {'PyTorch':>9}"
    )
    for name, m in summary:
        hand, bare, tape = m["hand-fused"], m["bare calls"], m["ap fused+tape"]
        target = TARGETS.get(name)
        met = "" if target is None else "yes" if tape / hand <= target else "no"
        jax = next((m[k] for k in m if k.startswith("JAX")), None)
        frameworks = [f"{t * 1e6:>7.1f}µs" if t is not None else f"{'—':>9}" for t in (jax, m.get("PyTorch eager"))]
        print(
            f"{name:<20} {hand * 1e6:>8.1f}µs {bare * 1e6:>7.1f}µs {tape * 1e6:>7.1f}µs {bare / hand:>9.2f} "
            f"{tape / bare:>9.2f} {tape / hand:>6.2f} {target or '':>6} {met:>4} {frameworks[0]} {frameworks[1]}"
        )


def activations(n: int = 64 * 100 * 50) -> None:
    """ns per element of the ops a tanh network spends its elementwise time in (an S=64 hidden layer)."""
    x = np.random.default_rng(0).standard_normal(n) * 2.0
    out = np.empty_like(x)

    def tanh_expm1(x):
        e = np.expm1(-2.0 * np.abs(x))
        return np.copysign(-e / (e + 2.0), x)

    def tanh_exp(x):  # cancels for small |x|: shown for speed only
        e = np.exp(-2.0 * np.abs(x))
        return np.copysign((1.0 - e) / (1.0 + e), x)

    ops = {
        "np.tanh": lambda: np.tanh(x, out=out),
        "np.exp": lambda: np.exp(x, out=out),
        "np.expm1": lambda: np.expm1(x, out=out),
        "tanh via expm1": lambda: tanh_expm1(x),
        "tanh via exp": lambda: tanh_exp(x),
        "ad.sigmoid": lambda: ap.autodiff.sigmoid(x),
        "ad.softplus": lambda: ap.autodiff.softplus(x),
        "multiply": lambda: np.multiply(x, x, out=out),
    }
    print(f"\nper element over {n} float64 (an S=64 hidden layer), median of 9")
    for label, fn in ops.items():
        seconds = np.median(timeit.repeat(fn, number=10, repeat=9)) / 10
        print(f"  {label:<16} {seconds / n * 1e9:6.2f} ns")


if __name__ == "__main__":
    main()
