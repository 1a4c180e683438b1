"""Adam and SGD as pure updates: hand-computed steps, convergence on a quadratic, purity, bad settings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import shapes

from approxpost.optim import SGD, Adam, AdamState, SGDState


def test_adam_two_steps_match_a_hand_computation():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    opt = Adam(learning_rate=lr, beta1=b1, beta2=b2, eps=eps)
    p = np.array([1.0, -2.0])
    g1, g2 = np.array([0.5, -1.0]), np.array([0.2, 3.0])
    state = opt.init((p,))
    (p1,), state = opt.update((p,), (g1,), state)
    (p2,), state = opt.update((p1,), (g2,), state)
    # the textbook recursion, written out step by step
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    expected1 = p - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    expected2 = expected1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    np.testing.assert_allclose(p1, expected1, rtol=1e-13)
    np.testing.assert_allclose(p2, expected2, rtol=1e-13)
    # the first step moves every coordinate by the learning rate against its gradient's sign
    np.testing.assert_allclose(p1 - p, -lr * np.sign(g1), rtol=1e-6)
    assert isinstance(state, AdamState) and state.step == 2
    np.testing.assert_allclose(state.m[0], m2, rtol=1e-14)
    np.testing.assert_allclose(state.v[0], v2, rtol=1e-14)


def test_adam_minimises_a_quadratic():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    hessian, target = a @ a.T + np.eye(4), rng.standard_normal(4)
    opt = Adam(learning_rate=0.05)
    params = (np.zeros(4), np.zeros(2))
    state = opt.init(params)
    for _ in range(3000):
        x, y = params
        params, state = opt.update(params, (hessian @ (x - target), 2.0 * (y - 3.0)), state)
    np.testing.assert_allclose(params[0], target, atol=1e-6)
    np.testing.assert_allclose(params[1], 3.0, atol=1e-6)


def test_update_is_pure_and_keeps_the_container_order():
    opt = Adam(learning_rate=0.1)
    params = [np.ones(3), np.zeros((2, 2))]
    grads = [np.full(3, 2.0), np.ones((2, 2))]
    state = opt.init(params)
    copies = [p.copy() for p in params] + [g.copy() for g in grads]
    new, new_state = opt.update(params, grads, state)
    for before, after in zip(copies, params + grads):
        np.testing.assert_array_equal(before, after)
    assert state.step == 0 and np.all(state.m[0] == 0)
    assert isinstance(new, tuple) and [p.shape for p in new] == [(3,), (2, 2)]
    again, _ = opt.update(params, grads, state)
    for a, b in zip(new, again):
        np.testing.assert_array_equal(a, b)


def test_sgd_is_plain_descent():
    opt = SGD(learning_rate=0.5)
    state = opt.init((np.zeros(2),))
    (p,), state = opt.update((np.array([1.0, 2.0]),), (np.array([4.0, -2.0]),), state)
    np.testing.assert_allclose(p, [-1.0, 3.0], rtol=0, atol=0)
    assert state == SGDState(step=1)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Adam(learning_rate=0.0), "learning_rate"),
        (lambda: Adam(learning_rate=float("nan")), "learning_rate"),
        (lambda: Adam(beta1=1.0), "beta1"),
        (lambda: Adam(beta2=-0.1), "beta2"),
        (lambda: Adam(eps=0), "eps"),
        (lambda: SGD(learning_rate=-1.0), "learning_rate"),
    ],
)
def test_bad_settings_name_the_setting(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_mismatched_grads_raise_with_the_shapes():
    opt = Adam()
    state = opt.init((np.zeros(3),))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        opt.update((np.zeros(3),), (np.zeros(2),), state)
    with pytest.raises(TypeError, match="params"):
        opt.init(np.zeros(3))


@settings(max_examples=25)
@given(
    st.lists(shapes(min_dims=0, max_dims=2, max_side=5), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
    st.floats(1e-4, 0.5),
)
def test_adam_in_place_update_is_the_formula_bit_for_bit(shapes, seed, learning_rate):
    """The in-place update makes the same numbers as the formula written out, step after step."""
    rng = np.random.default_rng(seed)
    opt = Adam(learning_rate=learning_rate)
    params = tuple(rng.standard_normal(shape) for shape in shapes)
    state = opt.init(params)
    ref_params, ref_m, ref_v = params, [np.zeros(s) for s in shapes], [np.zeros(s) for s in shapes]
    for step in range(1, 6):
        grads = tuple(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3) for shape in shapes)
        params, state = opt.update(params, grads, state)
        correction2 = np.sqrt(1.0 - opt.beta2**step)
        rate, eps = learning_rate * correction2 / (1.0 - opt.beta1**step), opt.eps * correction2
        new = []
        for i, (p, g) in enumerate(zip(ref_params, grads)):
            ref_m[i] = opt.beta1 * ref_m[i] + (1.0 - opt.beta1) * g
            ref_v[i] = opt.beta2 * ref_v[i] + (1.0 - opt.beta2) * (g * g)
            new.append(p - rate * ref_m[i] / (np.sqrt(ref_v[i]) + eps))
        ref_params = tuple(new)
        for got, want in zip(params + state.m + state.v, ref_params + tuple(ref_m) + tuple(ref_v)):
            np.testing.assert_array_equal(got, want)
