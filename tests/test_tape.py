"""The fast path (``ad.Tape``, ``Model.replay_graph``) against the plain graph, and the activations' accuracy.

Op-level properties on both paths run in test_autodiff.py (every
``assert_grad_ok`` replays a tape too); here: whole models, the tape's edges,
and the ulp accuracy of tanh, sigmoid and softplus over all of float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import broadcastable_shapes, evaluate, expressions, finite_arrays, nonzero_arrays, shapes

import approxpost as ap
from approxpost import autodiff as ad


def linear_model(n=30, p=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal(p) + 0.3 * rng.standard_normal(n)
    return ap.models.LinearRegression(x, y, noise_std=0.3, prior_std=2.0)


def mlp_model(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (12, 1))
    return ap.models.Regression(ap.nn.MLP([1, 5, 4, 1]), x, np.sin(2 * x), noise_std=0.2)


def classifier_model(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((15, 2))
    return ap.models.Classification(ap.nn.MLP([2, 4, 3]), x, rng.integers(0, 3, 15))


def cnn_model(seed=0):
    rng = np.random.default_rng(seed)
    net = ap.nn.CNN(input_shape=(1, 4, 4), channels=(2,), kernel_size=3, hidden=(3,), n_outputs=3)
    return ap.models.Classification(net, rng.standard_normal((5, 1, 4, 4)), rng.integers(0, 3, 5))


def on_plain_graph(call, model, *args, **kwargs):
    """``call(*args, **kwargs)`` with ``model`` 's replay switched off on this instance only."""
    model.replay_graph = False
    try:
        return call(*args, **kwargs)
    finally:
        del model.replay_graph


def plain_value_and_grad(model, theta):
    """``log_joint_and_grad`` on the plain graph."""
    return on_plain_graph(model.log_joint_and_grad, model, theta)


# --- models -----------------------------------------------------------------------

# the models whose log joint replays: a linear one, an MLP regression (one split step), an MLP and a CNN classifier
every_model = pytest.mark.parametrize(
    "make", [linear_model, mlp_model, classifier_model, cnn_model], ids=["linear", "mlp", "classifier", "cnn"]
)


@every_model
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_model_replay_equals_the_plain_graph(make, data):
    """Replayed at new θ of a recorded shape, for (D,) and (S, D): the plain path's value and gradient, bit for bit."""
    model = make()
    batch = data.draw(st.sampled_from([(), (1,), (3,)]))
    for _ in range(2):  # the first call records, the second replays at another θ
        theta = data.draw(finite_arrays(batch + (model.dim,)))
        value, gradient = model.log_joint_and_grad(theta)
        plain_value, plain_gradient = plain_value_and_grad(model, theta)
        np.testing.assert_array_equal(value, plain_value)
        np.testing.assert_array_equal(gradient, plain_gradient)
    assert set(model._tapes) == {batch + (model.dim,)} and model._tapes[batch + (model.dim,)].complete


@every_model
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_density_evaluation_replays_the_forward_steps_bit_for_bit(make, data):
    """``log_joint`` of an array (what Metropolis and IS evaluate) from the tape: the plain graph's value, bit for bit."""
    model = make()
    batch = data.draw(st.sampled_from([(), (1,), (3,)]))
    for _ in range(2):
        theta = data.draw(finite_arrays(batch + (model.dim,)))
        value = model.log_joint(theta)
        plain_value = on_plain_graph(model.log_joint, model, theta)
        assert type(value) is type(plain_value)
        np.testing.assert_array_equal(value, plain_value)
    assert set(model._tapes) == {batch + (model.dim,)}


@pytest.mark.parametrize("make", [linear_model, mlp_model], ids=["linear", "mlp"])
@pytest.mark.parametrize("with_prior", [False, True], ids=["likelihood", "with-prior"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_mean_log_likelihood_replay_equals_the_plain_graph(make, with_prior, data):
    """BBB's ∇θ (``mean_log_likelihood_vjp``) replayed at new θ (S, D): the plain graph's value and pullback, bit for bit."""
    model = make()
    n_draws = data.draw(st.integers(1, 4))
    for _ in range(2):  # the first call records, the second replays at another θ
        theta = data.draw(finite_arrays((n_draws, model.dim)))
        seed = data.draw(finite_arrays((2,) if with_prior else ()))
        value, pullback = model.mean_log_likelihood_vjp(theta, with_prior=with_prior)
        plain_value, plain_pullback = on_plain_graph(model.mean_log_likelihood_vjp, model, theta, with_prior=with_prior)
        np.testing.assert_array_equal(value, plain_value)
        np.testing.assert_array_equal(pullback(seed), plain_pullback(seed))
    assert set(model._mean_log_likelihood_tapes) == {(with_prior, (n_draws, model.dim))}
    assert model._mean_log_likelihood_tapes[with_prior, (n_draws, model.dim)].complete


@settings(max_examples=25, deadline=None)
@given(theta=finite_arrays((4, 4)))
def test_linear_regression_replay_gives_the_analytic_gradient(theta):
    """∇ log p(θ, y) = Xᵀ(y - Xθ)/σ² - θ/s² for every row, through the tape."""
    model = linear_model()
    model.log_joint_and_grad(theta)  # record
    _, gradient = model.log_joint_and_grad(theta[::-1])
    design, y = model.design, model.y[:, 0]
    expected = (y - theta[::-1] @ design.T) @ design / model.noise_std**2 - theta[::-1] / model.prior_std**2
    np.testing.assert_allclose(gradient, expected, rtol=1e-12, atol=1e-9)


def test_minibatch_and_user_models_stay_on_the_plain_path():
    """A minibatch index is baked into a graph, and a user's model may branch on θ: neither replays."""
    model = linear_model()
    theta = np.linspace(-1, 1, model.dim)
    value, gradient = model.log_joint_and_grad(theta, idx=np.arange(5))
    model.mean_log_likelihood_vjp(theta[None], idx=np.arange(5))
    assert not hasattr(model, "_tapes") and not hasattr(model, "_mean_log_likelihood_tapes")
    np.testing.assert_allclose(ad.check_grad(lambda t: model.log_joint(t, np.arange(5)), theta), 0.0, atol=1e-6)
    assert ap.models.Model.replay_graph is False and ap.targets.Banana.replay_graph is False


def _sin_outside_the_tape(x):
    """A correct op, but not an ``ad.primitive``: a tape cannot see it."""
    if not isinstance(x, ad.Var):
        return np.sin(x)
    return ad.Var(np.sin(x.value), (x,), (lambda g: g * np.cos(x.value),))


class _SinRegression(ap.models.Regression):
    """A regression whose network output goes through an op the tape cannot record."""

    def log_likelihood(self, theta, idx=None):
        return ad.sum(_sin_outside_the_tape(theta), axis=-1) + super().log_likelihood(theta, idx)


def test_a_model_using_an_unrecorded_op_falls_back_to_the_plain_graph():
    """An incomplete tape would replay the op as a constant and drop its gradient: it is never used."""
    base = mlp_model()
    model = _SinRegression(base.net, base.x, base.y, noise_std=base.noise_std)
    theta = np.linspace(-1, 1, model.dim)
    value, gradient = model.log_joint_and_grad(theta)
    assert not model._tapes[theta.shape].complete
    plain_value, plain_gradient = plain_value_and_grad(model, theta)
    assert value == plain_value
    np.testing.assert_array_equal(gradient, plain_gradient)
    assert ad.check_grad(lambda t: model.log_joint(t), theta) < 1e-7
    with pytest.raises(ValueError, match="incomplete"):
        model._tapes[theta.shape].vjp(theta)
    value, pullback = model.mean_log_likelihood_vjp(theta[None])
    assert not model._mean_log_likelihood_tapes[False, (1, model.dim)].complete
    plain_value, plain_pullback = on_plain_graph(model.mean_log_likelihood_vjp, model, theta[None])
    assert value == plain_value
    np.testing.assert_array_equal(pullback(-1.0), plain_pullback(-1.0))


def test_a_primitive_built_from_primitives_makes_an_incomplete_tape():
    """Its node's parents are the inner ops' nodes, which the tape never saw: it must not replay."""

    @ad.primitive
    def log_cosh(x):
        return ad.log(0.5 * (ad.exp(x) + ad.exp(-x)))

    x = np.array([0.5, -1.5, 2.0])
    tape = ad.Tape(lambda t: ad.sum(log_cosh(t) * t), x)
    assert [step[0].__name__ for step in tape.steps] == ["log_cosh", "mul", "sum"] and not tape.complete
    assert ad.check_grad(lambda t: ad.sum(log_cosh(t) * t), x) < 1e-8


@ad.split_primitive(n_operands=2)
def _scaled_product(needs, a, b, scale):
    """scale · a · b, written the way the fused ops are, for the tests of ``split_primitive`` itself."""
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    to_a, to_b = ad.unbroadcaster(shape, np.shape(a)), ad.unbroadcaster(shape, np.shape(b))
    calls = _scaled_product_calls

    def forward(av, bv):
        return scale * av * bv, (av, bv)

    def backward(saved, g):
        av, bv = saved
        calls.append(needs)
        return (to_a(scale * g * bv) if needs[0] else None), (to_b(scale * g * av) if needs[1] else None)

    return forward, backward


_scaled_product_calls: list = []


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_split_primitive_is_right_on_both_paths_and_computes_only_the_gradients_wanted(data):
    """One ``make`` serves the plain graph (a node with one joint VJP) and the tape: same bits, right gradient."""
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(finite_arrays(shape_a)), data.draw(finite_arrays(shape_b))
    seed = data.draw(finite_arrays(np.broadcast_shapes(shape_a, shape_b)))
    for wanted in ("a", "b"):  # differentiate with respect to one operand, the other a constant

        def f(t, wanted=wanted):
            return _scaled_product(t, b, 1.5) if wanted == "a" else _scaled_product(a, t, 1.5)

        x = a if wanted == "a" else b
        _scaled_product_calls.clear()
        value, pullback = ad.vjp(f, x)
        gradient = pullback(seed)
        assert _scaled_product_calls == [(wanted == "a", wanted == "b")]  # the constant's gradient never ran
        np.testing.assert_allclose(gradient, ad.unbroadcast(1.5 * seed * (b if wanted == "a" else a), x.shape))
        tape = ad.Tape(f, x)
        replay_value, replay_pullback = tape.vjp(x)
        np.testing.assert_array_equal(replay_value, value)
        np.testing.assert_array_equal(replay_pullback(seed), gradient)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_unbroadcaster_is_unbroadcast_bit_for_bit(data):
    """The summing a replayed step works out once per shape makes the same NumPy calls as ``unbroadcast``."""
    shape, to = data.draw(broadcastable_shapes())
    full = np.broadcast_shapes(shape, to)
    g = data.draw(finite_arrays(full))
    np.testing.assert_array_equal(ad.unbroadcaster(full, to)(g), ad.unbroadcast(g, to))
    assert ad.unbroadcaster(full, to)(g).shape == to


def test_a_replayed_network_makes_no_var_and_keeps_no_preactivation():
    """A BNN's log joint is one split step: the replay runs on arrays, and a layer keeps x, W and its output only."""
    for activation in ("tanh", "relu"):
        model = ap.models.Regression(ap.nn.MLP([1, 6, 5, 1], activation), np.ones((4, 1)), np.zeros(4))
        theta = np.linspace(-1, 1, 3 * model.dim).reshape(3, model.dim)
        model.log_joint_and_grad(theta)
        tape = model._tapes[theta.shape]
        values, saved = tape.forward(theta)
        assert [step[0].__name__ for step in tape.steps] == ["_mlp_log_joint"]
        r_prior, layers, r = saved[1]  # the prior's and the likelihood's residuals, and each layer's
        assert r_prior is theta and not any(isinstance(v, ad.Var) for v in values + [r, *sum(layers, ())])
        for k, (x, weight, out) in enumerate(layers):  # act(z) is the next layer's input, not a copy
            assert x is (model.x if k == 0 else layers[k - 1][2])
            assert weight.base is not None and np.shares_memory(weight, theta)
            assert out.shape == (3, 4, model.net.layer_sizes[k + 1])


def test_a_split_step_on_a_var_made_before_the_input_replays_it_as_a_constant():
    """An older Var (a closure's) is a constant to the tape: its step gets no backward, and the gradient is right."""
    scale = ad.Var(np.array([2.0, -1.0]))
    x = np.array([0.5, 3.0])

    def f(t):
        return ad.sum(t * ad.add(scale, 1.0))  # add(scale, 1.0) sees no operand made from t

    value, pullback = ad.Tape(f, x).vjp(x)
    assert value == ad.vjp(f, x)[0]
    np.testing.assert_array_equal(pullback(1.0), [3.0, 0.0])


def test_replaying_at_another_shape_is_a_value_error():
    tape = ad.Tape(lambda t: ad.sum(ad.tanh(t)), np.zeros(3))
    with pytest.raises(ValueError, match=r"recorded for inputs of shape \(3,\), got shape \(4,\)"):
        tape.vjp(np.zeros(4))


def test_a_function_ignoring_its_input_replays_a_zero_gradient():
    tape = ad.Tape(lambda t: np.float64(2.5), np.ones(3))
    value, pullback = tape.vjp(np.arange(3.0))
    assert value == 2.5
    np.testing.assert_array_equal(pullback(1.0), np.zeros(3))


def test_a_branch_on_the_value_is_frozen_at_the_recorded_input():
    """The documented limit of replaying: why ``replay_graph`` is opt-in."""

    def f(t):
        return ad.sum(t * 2.0) if t.value[0] > 0 else ad.sum(t * 3.0)

    tape = ad.Tape(f, np.ones(2))
    assert tape.vjp(-np.ones(2))[0] == -4.0  # the plain graph gives -6
    assert ad.vjp(f, -np.ones(2))[0] == -6.0


def test_replay_records_nothing_and_leaves_no_recording_open():
    tape = ad.Tape(lambda t: ad.sum(ad.square(t)), np.ones(2))
    n_steps = len(tape.steps)
    tape.vjp(np.arange(2.0))
    assert len(tape.steps) == n_steps == 2 and ad.tape.recording() is None


@settings(max_examples=60, deadline=None)
@given(tree=expressions(), x=shapes(min_dims=2, max_dims=2).flatmap(nonzero_arrays))
def test_random_composition_replays_with_a_sum_seed_and_a_vector_seed(tree, x):
    """An expression tree's vector output: pullback of a random seed, tape vs plain."""
    seed = np.random.default_rng(0).standard_normal(np.shape(evaluate(tree, x, reference=True)))
    tape = ad.Tape(lambda t: evaluate(tree, t), x)
    for point in (x, -0.5 * x):
        value, pullback = tape.vjp(point)
        plain_value, plain_pullback = ad.vjp(lambda t: evaluate(tree, t), point)
        np.testing.assert_array_equal(value, plain_value)
        np.testing.assert_array_equal(pullback(seed), plain_pullback(seed))


def test_check_grad_on_the_replay_path_catches_a_wrong_gradient():
    """``check_grad(replay=True)`` can fail: a primitive with a wrong VJP is caught on the tape as well."""

    def sin_with_a_wrong_vjp(x):
        if not isinstance(x, ad.Var):
            return np.sin(x)
        return ad.Var(np.sin(x.value), (x,), (lambda g: g * np.sin(x.value),))  # the VJP should use cos

    wrong = ad.primitive(sin_with_a_wrong_vjp)
    x = np.array([0.3, -0.7, 1.1])
    assert ad.check_grad(lambda t: ad.sum(wrong(t)), x, replay=True) > 0.1
    assert ad.check_grad(lambda t: ad.sum(ad.tanh(t) * t), x, replay=True) < 1e-8


# --- activations: ulp accuracy over all of float64 ---------------------------------

_MAGNITUDES = np.concatenate(
    [
        [0.0, 5e-324, 1e-320, 2.2250738585072014e-308, np.inf],  # zero, subnormals, the smallest normal, ∞
        np.geomspace(1e-300, 800.0, 40_000),
    ]
)
_X = np.concatenate([_MAGNITUDES, -_MAGNITUDES])
# x86-64's 80-bit long double (64-bit mantissa, 11 bits beyond float64) makes a reference good to 1/2000 ulp
_XL = _X.astype(np.longdouble)

ACCURACY = {  # op: (reference in long double, ulp bound)
    "tanh": (np.tanh(_XL), 2.0),
    "sigmoid": (1.0 / (1.0 + np.exp(-_XL)), 3.0),
    "softplus": (np.log1p(np.exp(_XL)), 2.0),
}


@pytest.mark.parametrize("name", sorted(ACCURACY))
def test_activation_is_within_a_few_ulp_from_subnormals_to_800(name):
    """|op(x) - exact| / ulp(exact) ≤ bound on ±[0, 5e-324 … 1e-300 … 800, ∞]; infinities and signs exact."""
    reference, bound = ACCURACY[name]
    with np.errstate(over="ignore"):
        got = getattr(ad, name)(_X)
    exact = reference.astype(np.float64)
    finite = np.isfinite(reference)
    np.testing.assert_array_equal(got[~finite], exact[~finite])
    ulps = np.abs(got[finite].astype(np.longdouble) - reference[finite]) / np.spacing(np.abs(exact[finite]))
    assert float(np.max(ulps)) <= bound, f"{name}: {float(np.max(ulps)):.2f} ulp at x = {_X[finite][np.argmax(ulps)]!r}"
    assert np.all(np.signbit(got) == np.signbit(exact))


def test_activation_gradients_at_the_ends_of_the_range():
    """Finite, exact limits at ±∞ and ±800 (no inf · 0 NaN), and the slope at zero."""
    x = np.array([-np.inf, -800.0, 0.0, 800.0, np.inf])
    for name, slope in [("tanh", [0, 0, 1, 0, 0]), ("sigmoid", [0, 0, 0.25, 0, 0]), ("softplus", [0, 0, 0.5, 1, 1])]:
        _, pullback = ad.vjp(getattr(ad, name), x)
        np.testing.assert_array_equal(pullback(np.ones(5)), slope, err_msg=name)
