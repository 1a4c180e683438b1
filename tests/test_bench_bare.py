"""bench/reference.py's bare calls are the replayed tape's NumPy calls: the same values and gradients, bit for bit.

bench/autodiff.py times them as the floor of the engine's choice of NumPy
calls and asserts the same on its own rows; this keeps them honest when the
engine changes, over network widths, data sizes and batch shapes.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import approxpost as ap
from approxpost import autodiff as ad

_path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "reference.py"
_spec = importlib.util.spec_from_file_location("bench_reference", _path)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def regression(hidden, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 1))
    net = ap.nn.MLP([1, *hidden, 1], activation="tanh")
    return ap.models.Regression(net, x, np.sin(2 * x) + 0.1 * rng.standard_normal((n, 1)), noise_std=0.3)


@settings(max_examples=30)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    n=st.integers(1, 7),
    batch=st.sampled_from([(), (1,), (3,)]),
    seed=st.integers(0, 2**16),
)
def test_bare_mlp_is_the_tape_bit_for_bit(hidden, n, batch, seed):
    model = regression(hidden, n, seed)
    theta = model.init(np.random.default_rng(seed + 1), int(np.prod(batch)))
    theta = theta[0] if batch == () else theta
    value, grad = reference.bare_mlp(model, theta.shape)(theta)
    tape_value, tape_grad = model.log_joint_and_grad(theta)
    assert np.array_equal(value, tape_value) and np.array_equal(grad, tape_grad)
    # the likelihood alone against the graph of log_likelihood, seeded with ones as BBB's node is
    value, grad = reference.bare_mlp(model, theta.shape, with_prior=False)(theta)
    graph_value, pullback = ad.vjp(model.log_likelihood, theta)
    assert np.array_equal(value, graph_value) and np.array_equal(grad, pullback(np.ones(np.shape(graph_value))))


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), p=st.integers(1, 5))
def test_bare_linear_and_banana_are_the_tape_bit_for_bit(seed, p):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((9, p))
    linear = ap.models.LinearRegression(x, x @ rng.standard_normal(p), noise_std=0.5, prior_std=2.0)
    banana = ap.targets.Banana(scale=rng.uniform(0.5, 2.0), curvature=rng.uniform(-1.0, 1.0))
    banana.replay_graph = True  # a target's default is the plain graph; the bench times its tape
    for model, bare in ((linear, reference.bare_linear), (banana, reference.bare_banana)):
        theta = rng.standard_normal(model.dim)
        value, grad = bare(model, theta.shape)(theta)
        tape_value, tape_grad = model.log_joint_and_grad(theta)
        assert np.array_equal(value, tape_value) and np.array_equal(grad, tape_grad)


def test_bit_comparison_separates_close_computations():
    """array_equal is the strict test it needs to be: the hand-fused gradient is close to the tape's, not the same bits."""
    model = regression([5, 4], 6, 0)
    theta = model.init(np.random.default_rng(1), 3)
    hand_value, hand_grad = reference.hand_log_joint_and_grad(model, theta)
    value, grad = reference.bare_mlp(model, theta.shape)(theta)
    assert np.allclose(grad, hand_grad, rtol=1e-10, atol=1e-12) and not np.array_equal(grad, hand_grad)
