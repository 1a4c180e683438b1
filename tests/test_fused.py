"""The fused primitives (``ad.dense``, ``ad.gaussian_log_density``) against the plain graph they stand for.

Each fused op runs the NumPy calls of its plain composition (built inside
``ad.plain_graph()``) in the same order, so values and gradients must be the
same bits, over generated shapes, batch axes (none, S = 1, S, and 2-D θ
batches), activations and operands that are or are not ``Var`` s; and the
fused graph must replay on a tape and pass central differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import broadcastable_shapes, finite_arrays, mlp_layer_sizes, reduction_axes

import approxpost as ap
from approxpost import autodiff as ad

LEADS = [(), (1,), (3,), (2, 3)]  # θ's batch axes: one θ, S = 1, S = 3, a 2-D batch


def both_paths(f, x):
    """``(value, gradient)`` of ``sum(f(x))`` fused and on the plain graph, and the fused tape's replay."""
    value, pullback = ad.vjp(f, x)
    with ad.plain_graph():
        plain_value, plain_pullback = ad.vjp(f, x)
    seed = np.random.default_rng(2).standard_normal(np.shape(value))
    replay_value, replay_pullback = ad.Tape(f, x).vjp(0.9 * x)
    replay_plain = ad.vjp(f, 0.9 * x)
    np.testing.assert_array_equal(replay_value, replay_plain[0])
    np.testing.assert_array_equal(replay_pullback(seed), replay_plain[1](seed))
    return (value, pullback(seed)), (plain_value, plain_pullback(seed))


def assert_same_bits(fused, plain):
    for got, expected in zip(fused, plain):
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_array_equal(got, expected)


@st.composite
def dense_cases(draw):
    """A small MLP layer stack, θ's batch axes, the inputs, and whether the inputs are a ``Var`` too."""
    sizes = draw(mlp_layer_sizes(max_width=4, max_layers=3))
    lead = draw(st.sampled_from(LEADS))
    net = ap.nn.MLP(sizes)
    theta = draw(finite_arrays(lead + (net.dim,)))
    x = draw(finite_arrays((draw(st.integers(1, 4)), sizes[0])))
    return net, theta, x, draw(st.sampled_from([None, "tanh", "relu"])), draw(st.booleans())


def layers(net, theta, x, activation):
    h = x
    for i, (weight, bias) in enumerate(net.slices):
        h = ad.dense(h, theta, weight, bias, activation if i < len(net.slices) - 1 else None)
    return h


@settings(max_examples=80)
@given(case=dense_cases())
def test_dense_is_the_plain_layer_bit_for_bit(case):
    """Value, ∂θ and ∂x of a stack of dense layers: the bits of view-view-affine-activation."""
    net, theta, x, activation, x_is_var = case
    if x_is_var:  # the gradient reaches both θ and the inputs (a hidden layer's h is a Var)
        n_theta = theta.size

        def f(z):
            t = ad.reshape(z[:n_theta], theta.shape)
            return layers(net, t, ad.reshape(z[n_theta:], x.shape), activation)

        point = np.concatenate([theta.ravel(), x.ravel()])
    else:

        def f(t):
            return layers(net, t, x, activation)

        point = theta
    fused, plain = both_paths(f, point)
    assert_same_bits(fused, plain)
    assert fused[0].shape == theta.shape[:-1] + (x.shape[0], net.layer_sizes[-1])


@settings(max_examples=40)
@given(case=dense_cases())
def test_dense_gradient_matches_central_differences(case):
    net, theta, x, activation, _ = case
    activation = "relu" if activation == "relu" and np.all(np.abs(theta) > 0.5) else "tanh"  # relu: kinks
    weights = np.random.default_rng(0).standard_normal(theta.shape[:-1] + (x.shape[0], net.layer_sizes[-1]))
    assert ad.check_grad(lambda t: ad.sum(layers(net, t, x, activation) * weights), theta, seed=0) < 1e-6


def test_dense_on_arrays_builds_no_graph_and_rejects_an_unknown_activation():
    net = ap.nn.MLP([2, 3, 1])
    theta, x = np.linspace(-1, 1, net.dim), np.ones((4, 2))
    out = ad.dense(x, theta, *net.slices[0], activation="tanh")
    assert type(out) is np.ndarray and out.shape == (4, 3)
    with pytest.raises(ValueError, match="activation must be None, 'tanh' or 'relu', got 'gelu'"):
        ad.dense(x, theta, *net.slices[0], activation="gelu")
    with pytest.raises(ValueError, match=r"got theta of shape \(5,\) and x of shape \(4, 2\)"):
        ad.dense(x, theta[:5], *net.slices[0])
    with pytest.raises(ValueError, match=r"multiplies x by W: got theta of shape \(13,\) and x of shape \(4, 3\)"):
        ad.dense(np.ones((4, 3)), theta, *net.slices[0])


@pytest.mark.parametrize("std", [0.0, -1.0, np.inf, np.nan, np.ones(2)])
def test_gaussian_log_density_rejects_a_std_that_is_not_a_positive_number(std):
    with pytest.raises(ValueError, match="std must be a positive finite number"):
        ad.gaussian_log_density(np.ones(3), 0.0, std)


@st.composite
def gaussian_cases(draw):
    """x and mean broadcasting together (mean maybe the number 0), an axis, which of them are ``Var`` s, std."""
    shape_x, shape_m = draw(broadcastable_shapes())
    x = draw(finite_arrays(shape_x))
    mean = 0.0 if draw(st.booleans()) else draw(finite_arrays(shape_m))
    axis = draw(reduction_axes(len(np.broadcast_shapes(shape_x, np.shape(mean)))))
    which = draw(st.sampled_from(["x", "mean", "both"] if np.ndim(mean) or np.shape(mean) else ["x"]))
    return x, mean, axis, which, draw(st.floats(0.1, 3.0))


@settings(max_examples=120)
@given(case=gaussian_cases())
def test_gaussian_log_density_is_the_plain_graph_bit_for_bit_and_the_normal_log_pdf(case):
    x, mean, axis, which, std = case
    if type(mean) is float:
        which = "x"
    n_x = x.size

    def f(z):
        xs = ad.reshape(z[:n_x], x.shape) if which in ("x", "both") else x
        ms = ad.reshape(z[n_x:], np.shape(mean)) if which in ("mean", "both") else mean
        return ad.gaussian_log_density(xs, ms, std, axis=axis)

    point = np.concatenate([x.ravel(), np.ravel(mean) if type(mean) is not float else []])
    fused, plain = both_paths(f, point)
    assert_same_bits(fused, plain)
    expected = np.sum(scipy.stats.norm.logpdf(x, mean, std), axis=axis)
    np.testing.assert_allclose(fused[0], expected, rtol=1e-12, atol=1e-12)
    weights = np.random.default_rng(1).standard_normal(np.shape(expected))
    assert ad.check_grad(lambda z: ad.sum(f(z) * weights), point, seed=0) < 1e-6


# --- the models that use them ------------------------------------------------------


def models():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (9, 1))
    moons = ap.datasets.two_moons(n=12, seed=0)
    return {
        "mlp": ap.models.Regression(ap.nn.MLP([1, 5, 4, 1]), x, np.sin(2 * x), noise_std=0.2),
        "relu": ap.models.Regression(ap.nn.MLP([1, 6, 2], "relu"), x, np.hstack([x, -x]), noise_std=0.5),
        "linear": ap.models.LinearRegression(np.hstack([x, x**2]), x[:, 0], noise_std=0.3, prior_std=2.0),
        "classification": ap.models.Classification(ap.nn.MLP([2, 4, 2]), moons.x, moons.y),
    }


@pytest.mark.parametrize("name", ["mlp", "relu", "linear", "classification"])
@settings(max_examples=20)
@given(data=st.data())
def test_model_fast_path_equals_the_plain_graph(name, data):
    """log_joint_and_grad fused and replayed, against the plain graph with no tape: the same bits, S = 1 and S = 3 too."""
    model = models()[name]
    batch = data.draw(st.sampled_from([(), (1,), (3,)]))
    for _ in range(2):  # the first call records the tape, the second replays it at another θ
        theta = data.draw(finite_arrays(batch + (model.dim,)))
        value, gradient = model.log_joint_and_grad(theta)
        with ad.plain_graph():
            plain_value, plain_pullback = ad.vjp(model.log_joint, theta)
        np.testing.assert_array_equal(value, plain_value)
        np.testing.assert_array_equal(gradient, plain_pullback(np.ones(np.shape(plain_value))))


class OwnPrior(ap.models.Regression):
    """A regression whose prior is its own (here the built-in one, written again): its log joint is two terms."""

    def log_prior(self, theta):
        return ad.gaussian_log_density(theta, 0.0, self.prior_std, axis=-1)


def test_the_plain_graph_has_the_nodes_the_fused_ops_replace():
    """What ``ad.plain_graph()`` shows a student: 4 nodes a hidden layer, 3 or 4 a Gaussian term; fused, 1 each.

    A ``Regression`` is one node; a subclass with its own prior gets the terms' nodes, one a layer.
    """
    model = models()["mlp"]  # two hidden layers and an output layer
    theta = model.init(np.random.default_rng(0), 1)[0]
    fused = [step[0].__name__ for step in ad.Tape(model.log_joint, theta).steps]
    own = OwnPrior(model.net, model.x, model.y, noise_std=model.noise_std)
    terms = [step[0].__name__ for step in ad.Tape(own.log_joint, theta).steps]
    with ad.plain_graph():
        plain = [step[0].__name__ for step in ad.Tape(model.log_joint, theta).steps]
    assert fused == ["_mlp_log_joint"]
    assert terms == ["_gaussian_log_density", "_dense", "_dense", "_dense", "_gaussian_log_density", "add"]
    assert plain.count("view") == 6 and plain.count("affine") == 3 and plain.count("tanh") == 2
    assert plain.count("sum_squares") == 2 and len(plain) == 19  # + mul, sub (prior); sub, mul, sub (likelihood)


@st.composite
def mlp_log_joint_cases(draw):
    """An MLP, θ's batch axes, θ, inputs, targets, the activation and the two standard deviations."""
    sizes = draw(mlp_layer_sizes(max_width=4, max_layers=3))
    lead, net = draw(st.sampled_from(LEADS)), ap.nn.MLP(sizes)
    n = draw(st.integers(1, 4))
    x, y = draw(finite_arrays((n, sizes[0]))), draw(finite_arrays((n, sizes[-1])))
    stds = draw(st.floats(0.1, 3.0)), draw(st.floats(0.1, 3.0))
    return net, draw(finite_arrays(lead + (net.dim,))), x, y, draw(st.sampled_from([None, "tanh", "relu"])), stds


@settings(max_examples=80)
@given(case=mlp_log_joint_cases())
def test_mlp_log_joint_is_the_terms_nodes_bit_for_bit(case):
    """One node, the same bits as its plain graph and as the prior, layer and likelihood nodes it chains; scipy's value."""
    net, theta, x, y, activation, (noise_std, prior_std) = case

    def fused(t):
        return ad.mlp_log_joint(t, x, y, net.slices, activation, noise_std, prior_std)

    def terms(t):
        log_prior = ad.gaussian_log_density(t, 0.0, prior_std, axis=-1)
        return ad.add(log_prior, ad.gaussian_log_density(y, layers(net, t, x, activation), noise_std, axis=(-2, -1)))

    one_node, plain = both_paths(fused, theta)
    assert_same_bits(one_node, plain)
    assert_same_bits(one_node, both_paths(terms, theta)[0])
    assert [step[0].__name__ for step in ad.Tape(fused, theta).steps] == ["_mlp_log_joint"]
    outputs = np.asarray(layers(net, theta, x, activation))
    expected = scipy.stats.norm.logpdf(theta, 0.0, prior_std).sum(-1)
    expected = expected + scipy.stats.norm.logpdf(y, outputs, noise_std).sum((-2, -1))
    np.testing.assert_allclose(one_node[0], expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=30)
@given(case=mlp_log_joint_cases())
def test_mlp_log_joint_gradient_matches_central_differences(case):
    net, theta, x, y, _, (noise_std, prior_std) = case
    # away from θ = 0, where every term is even and a zero gradient leaves central differences their O(h²) error
    theta = theta + np.where(theta < 0, -0.5, 0.5)
    weights = np.random.default_rng(0).standard_normal(theta.shape[:-1])

    def f(t):
        return ad.sum(ad.mlp_log_joint(t, x, y, net.slices, "tanh", noise_std, prior_std) * weights)

    assert ad.check_grad(f, theta, seed=0) < 1e-6


def test_mlp_log_joint_names_bad_shapes_and_a_regression_with_its_own_prior_keeps_it():
    net = ap.nn.MLP([1, 3, 2])
    theta, x = np.linspace(-1, 1, net.dim), np.ones((4, 1))
    with pytest.raises(ValueError, match=r"y must be the network's outputs' shape \(4, 2\).*got shape \(4, 1\)"):
        ad.mlp_log_joint(theta, x, np.ones((4, 1)), net.slices, "tanh", 0.1, 1.0)
    with pytest.raises(ValueError, match=r"slices must tile θ \(length 15\) in order"):  # a θ one too long
        ad.mlp_log_joint(np.ones(net.dim + 1), x, np.ones((4, 2)), net.slices, "tanh", 0.1, 1.0)
    with pytest.raises(TypeError, match="x and y must be arrays, not Vars"):
        ad.mlp_log_joint(theta, ad.Var(x), np.ones((4, 2)), net.slices, "tanh", 0.1, 1.0)

    class Wider(ap.models.Regression):  # a prior of its own: the log joint must use it, not the built-in one
        def log_prior(self, theta):
            return ad.gaussian_log_density(theta, 0.0, 10.0, axis=-1)

    y = np.zeros((4, 2))
    wide, built_in = Wider(net, x, y), ap.models.Regression(net, x, y, prior_std=10.0)
    for shape in [(net.dim,), (3, net.dim)]:
        point = np.random.default_rng(1).standard_normal(shape)
        for got, expected in zip(wide.log_joint_and_grad(point), built_in.log_joint_and_grad(point)):
            np.testing.assert_array_equal(got, expected)
