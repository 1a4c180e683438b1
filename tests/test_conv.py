"""approxpost.autodiff.conv: conv2d against scipy.signal.correlate, pools against window loops, VJPs against differences.

Gradients are checked as in test_autodiff.py: ``check_grad`` of
``sum(op(x) * W)`` with fixed random weights ``W`` < 1e-6. The batched forms
(a leading θ axis S on images, filters or both) are checked against a loop
over S here in the tests only.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases, pool_cases

from approxpost import autodiff as ad

GRAD_TOL = 1e-6


def padded(x, padding, kh, kw):
    if padding == "same":
        pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    else:
        pads = ((padding, padding), (padding, padding))
    return np.pad(x, ((0, 0), (0, 0)) + pads)


def reference_conv(x, w, stride, padding):
    """Unbatched x (N, C, H, W), w (O, C, kh, kw) through scipy.signal.correlate, one (n, o) pair at a time."""
    xp = padded(x, padding, *w.shape[2:])
    out = [
        [sum(scipy.signal.correlate(xp[i, c], w[o, c], mode="valid") for c in range(x.shape[1])) for o in range(len(w))]
        for i in range(len(x))
    ]
    return np.array(out)[..., ::stride, ::stride]


def weighted_sum_grad_error(f, at, out_shape):
    weights = np.random.default_rng(1).standard_normal(out_shape)
    return ad.check_grad(lambda t: ad.sum(f(t) * weights), at, seed=0)


@given(case=conv_cases(layouts=("plain",)), seed=st.integers(0, 2**16))
def test_conv2d_matches_scipy_correlate(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out = ad.conv2d(x, w, stride=stride, padding=padding)
    expected = reference_conv(x, w, stride, padding)
    assert isinstance(out, np.ndarray) and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    if padding == "same":
        assert out.shape[-2:] == x_shape[-2:]


@given(case=conv_cases(layouts=("x", "w", "both", "x1", "w1")), seed=st.integers(0, 2**16))
def test_batched_conv2d_equals_a_loop_over_theta(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out = ad.conv2d(x, w, stride=stride, padding=padding)
    s = max(x_shape[0] if len(x_shape) == 5 else 1, w_shape[0] if len(w_shape) == 5 else 1)
    assert out.ndim == 5 and out.shape[0] == s
    for i in range(s):
        x_i = x if x.ndim == 4 else x[min(i, len(x) - 1)]
        w_i = w if w.ndim == 4 else w[min(i, len(w) - 1)]
        np.testing.assert_allclose(out[i], reference_conv(x_i, w_i, stride, padding), rtol=1e-12, atol=1e-12)


@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_gradients_for_images_and_filters(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out_shape = ad.conv2d(x, w, stride=stride, padding=padding).shape
    assert weighted_sum_grad_error(lambda t: ad.conv2d(t, w, stride, padding), x, out_shape) < GRAD_TOL
    assert weighted_sum_grad_error(lambda t: ad.conv2d(x, t, stride, padding), w, out_shape) < GRAD_TOL


def test_conv2d_gradient_through_both_operands_at_once():
    """x and w read from one θ, as a network's first layer after another layer does: the two VJPs add up."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(2 * 1 * 4 * 4 + 3 * 1 * 2 * 2)

    def f(t):
        x = ad.reshape(t[:32], (2, 1, 4, 4))
        w = ad.reshape(t[32:], (3, 1, 2, 2))
        return ad.sum(ad.tanh(ad.conv2d(ad.tanh(x), w, padding="same")))

    assert ad.check_grad(f, theta, seed=0) < GRAD_TOL


def test_one_filter_tap_shifts_the_image():
    """A filter with a single 1 at (p, q) reads x_pad[i + p, j + q]: cross-correlation, not convolution."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 0, 2] = 1.0  # top-right tap
    out = ad.conv2d(x, w, padding=1)
    expected = np.zeros((4, 4))
    expected[1:, :-1] = x[0, 0, :-1, 1:]  # out[i, j] = x[i - 1, j + 1]
    np.testing.assert_array_equal(out[0, 0], expected)


def test_even_kernel_same_padding_pads_bottom_right():
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 5))
    w = np.random.default_rng(1).standard_normal((1, 1, 2, 2))
    out = ad.conv2d(x, w, padding="same")
    xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    np.testing.assert_allclose(out[0, 0], scipy.signal.correlate(xp[0, 0], w[0, 0], mode="valid"), rtol=1e-13)


def test_conv2d_builds_a_graph_only_for_a_var():
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    assert isinstance(ad.conv2d(x, w), np.ndarray)
    assert isinstance(ad.conv2d(x, ad.Var(w)), ad.Var) and isinstance(ad.conv2d(ad.Var(x), w), ad.Var)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((3, 3, 3), (1, 3, 2, 2), {}, "x must have shape"),
        ((1, 2, 3, 3), (1, 3, 2, 2), {}, "channels"),
        ((1, 3, 3, 3), (3, 2, 2), {}, "w must have shape"),
        ((2, 1, 3, 3, 3), (3, 1, 3, 2, 2), {}, "batch sizes"),
        ((1, 1, 2, 2), (1, 1, 3, 3), {}, "larger than"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": "valid"}, "padding must be"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": -1}, "padding must be"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": "same", "stride": 2}, "stride=1"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"stride": 0}, "stride must be"),
    ],
)
def test_conv2d_rejects_bad_input(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ad.conv2d(np.ones(x_shape), np.ones(w_shape), **kwargs)


# --- pooling ---------------------------------------------------------------------


def reference_pool(x, size, reduce):
    """Pool by looping over the windows of the last two axes."""
    ho, wo = x.shape[-2] // size, x.shape[-1] // size
    out = np.empty(x.shape[:-2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[..., i, j] = reduce(x[..., i * size : (i + 1) * size, j * size : (j + 1) * size], axis=(-2, -1))
    return out


def distinct_values(rng, shape):
    """Entries 0.05 apart in random order: no window's maximum changes under a 1e-3 finite-difference step."""
    return rng.permutation(np.arange(int(np.prod(shape)))).reshape(shape) * 0.05 - 1.0


@pytest.mark.parametrize("pool, reduce", [(ad.max_pool2d, np.max), (ad.avg_pool2d, np.mean)])
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_pool_value_and_gradient(pool, reduce, case, seed):
    shape, size = case
    x = distinct_values(np.random.default_rng(seed), shape)
    out = pool(x, size=size)
    np.testing.assert_allclose(out, reference_pool(x, size, reduce), rtol=1e-13, atol=1e-15)
    assert weighted_sum_grad_error(lambda t: pool(t, size), x, out.shape) < GRAD_TOL


@pytest.mark.parametrize("pool", [ad.max_pool2d, ad.avg_pool2d])
def test_pool_gradient_is_zero_on_dropped_rows_and_columns(pool):
    x = ad.Var(distinct_values(np.random.default_rng(0), (2, 5, 7)))
    _, pullback = ad.vjp(lambda t: pool(t, 2), x.value)
    g = pullback(np.ones((2, 2, 3)))
    assert np.all(g[..., 4, :] == 0) and np.all(g[..., :, 6] == 0)
    assert g.sum() == pytest.approx(2 * 2 * 3)  # every window passes its unit of gradient on, once


def test_max_pool_gradient_goes_to_the_maximum_and_ties_share_it():
    x = np.array([[1.0, 3.0, 2.0, 2.0], [0.0, -1.0, 2.0, 2.0]])
    _, pullback = ad.vjp(lambda t: ad.max_pool2d(t, 2), x)
    np.testing.assert_array_equal(pullback(np.array([[4.0, 8.0]])), [[0.0, 4.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])


@pytest.mark.parametrize("pool", [ad.max_pool2d, ad.avg_pool2d])
def test_pool_rejects_bad_input(pool):
    with pytest.raises(ValueError, match="size must be"):
        pool(np.ones((4, 4)), size=0)
    with pytest.raises(ValueError, match="at least 3"):
        pool(np.ones((4, 2)), size=3)
    with pytest.raises(ValueError, match="at least two axes"):
        pool(np.ones(4), size=2)
