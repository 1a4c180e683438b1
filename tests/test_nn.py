"""approxpost.nn.MLP: the flat layout of θ, the batched forward pass and gradients through a Regression."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from strategies import cnn_configs

from approxpost import autodiff as ad
from approxpost.datasets import digits
from approxpost.models import Regression
from approxpost.nn import CNN, MLP

GRAD_TOL = 1e-6
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}

layer_sizes = st.lists(st.integers(1, 5), min_size=2, max_size=4)


def reference_forward(layer_sizes, activation, theta, x):
    """The forward pass read straight off the documented layout: per layer W (in, out) row-major, then b."""
    h, offset = x, 0
    n_layers = len(layer_sizes) - 1
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        weight = theta[offset : offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        bias = theta[offset : offset + n_out]
        offset += n_out
        h = h @ weight + bias
        if layer < n_layers - 1:
            h = ACTIVATIONS[activation](h)
    assert offset == theta.size
    return h


@given(sizes=layer_sizes)
def test_dim_formula(sizes):
    assert MLP(sizes).dim == sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@given(sizes=layer_sizes, n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_forward_matches_the_documented_layout(activation, sizes, n, seed):
    rng = np.random.default_rng(seed)
    net = MLP(sizes, activation=activation)
    theta, x = rng.standard_normal(net.dim), rng.standard_normal((n, sizes[0]))
    out = net.forward(theta, x)
    assert out.shape == (n, sizes[-1])
    np.testing.assert_allclose(out, reference_forward(sizes, activation, theta, x), rtol=1e-12, atol=1e-14)


def test_setting_one_weight_shows_in_the_forward_pass():
    net = MLP([2, 3, 1], activation="tanh")
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    theta = np.zeros(net.dim)
    # layout: W1 (2, 3) at 0:6 row-major, b1 at 6:9, W2 (3, 1) at 9:12, b2 at 12
    theta[1 * 3 + 2] = 1.0  # W1[1, 2]: input 1 feeds hidden unit 2
    theta[9 + 2] = 2.0  # W2[2, 0]: hidden unit 2 feeds the output
    np.testing.assert_allclose(net.forward(theta, x)[:, 0], 2.0 * np.tanh(x[:, 1]), rtol=1e-15)
    theta[12] = 0.5  # the output bias is the last coordinate
    np.testing.assert_allclose(net.forward(theta, x)[:, 0], 2.0 * np.tanh(x[:, 1]) + 0.5, rtol=1e-15)
    theta[6 + 2] = -0.25  # b1[2] shifts hidden unit 2 before the tanh
    np.testing.assert_allclose(net.forward(theta, x)[:, 0], 2.0 * np.tanh(x[:, 1] - 0.25) + 0.5, rtol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@given(sizes=layer_sizes, n_samples=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_batched_forward_rows_equal_single_forwards(activation, sizes, n_samples, seed):
    rng = np.random.default_rng(seed)
    net = MLP(sizes, activation=activation)
    theta, x = rng.standard_normal((n_samples, net.dim)), rng.standard_normal((5, sizes[0]))
    batched = net.forward(theta, x)
    assert batched.shape == (n_samples, 5, sizes[-1])
    for s in range(n_samples):
        np.testing.assert_allclose(batched[s], net.forward(theta[s], x), rtol=1e-13, atol=1e-14)


def test_forward_builds_a_graph_only_for_a_var():
    net = MLP([1, 4, 1])
    theta = net.init(np.random.default_rng(0), 1)[0]
    assert isinstance(net.forward(theta, np.ones((3, 1))), np.ndarray)
    assert isinstance(net.forward(ad.Var(theta), np.ones((3, 1))), ad.Var)


def test_init_shapes_and_scales():
    net = MLP([3, 200, 2])
    theta = net.init(np.random.default_rng(0), n=4)
    assert theta.shape == (4, net.dim)
    (w0, w1, _), (b0, b1, _) = net.slices[0]
    weights, biases = theta[:, w0:w1].ravel(), theta[:, b0:b1].ravel()
    # N(0, 1/fan_in) and N(0, 0.1²): sample variances within 4 standard errors (SE of s² is σ² √(2/(n-1)))
    for values, variance in ((weights, 1.0 / 3.0), (biases, 0.01)):
        assert abs(values.var(ddof=1) - variance) < 4 * variance * np.sqrt(2.0 / (values.size - 1))
    np.testing.assert_array_equal(theta, net.init(np.random.default_rng(0), n=4))


def regression(activation, seed=0, n=7, sizes=(2, 5, 3, 1)):
    rng = np.random.default_rng(seed)
    net = MLP(list(sizes), activation=activation)
    x = rng.standard_normal((n, sizes[0]))
    y = rng.standard_normal((n, sizes[-1]))
    return Regression(net, x, y, noise_std=0.3, prior_std=1.5), rng


def kink_margin(model, theta) -> float:
    """Smallest |pre-activation| of any hidden unit on any data point: relu's distance from its kink."""
    h, margin = model.x, np.inf
    for weight, bias in model.net.unflatten(theta)[:-1]:
        z = h @ weight + bias
        margin, h = min(margin, float(np.min(np.abs(z)))), np.maximum(z, 0.0)
    return margin


def checked_point(activation):
    """A Regression and 4 parameter vectors whose relu pre-activations all keep 0.03 from the kink.

    A central difference with step 1e-3 that crosses a kink is wrong by O(1),
    so seed 30 was picked for that margin (the assert keeps it honest).
    """
    model, rng = regression(activation, seed=30)
    theta = rng.standard_normal((4, model.dim))
    assert min(kink_margin(model, t) for t in theta) > 0.03
    return model, theta


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_regression_log_joint_gradient_single_and_batched(activation):
    model, theta = checked_point(activation)
    for s in range(len(theta)):
        assert ad.check_grad(model.log_joint, theta[s], seed=0) < GRAD_TOL
    assert ad.check_grad(lambda t: ad.sum(model.log_joint(t)), theta, seed=0) < GRAD_TOL


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_batched_gradient_rows_equal_single_gradients(activation):
    model, theta = checked_point(activation)
    values, grads = model.log_joint_and_grad(theta)
    assert values.shape == (4,) and grads.shape == theta.shape
    for s in range(4):
        value_s, grad_s = model.log_joint_and_grad(theta[s])
        assert isinstance(value_s, float)
        assert values[s] == pytest.approx(value_s, rel=1e-13)
        np.testing.assert_allclose(grads[s], grad_s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_regression_log_joint_matches_a_direct_formula(activation):
    model, rng = regression(activation, seed=2)
    theta = model.init(rng, 1)[0]
    f = reference_forward(model.net.layer_sizes, activation, theta, model.x)
    sigma, s = model.noise_std, model.prior_std
    log_lik = np.sum(-0.5 * ((model.y - f) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi)))
    log_prior = np.sum(-0.5 * (theta / s) ** 2 - np.log(s * np.sqrt(2 * np.pi)))
    assert model.log_joint(theta) == pytest.approx(log_lik + log_prior, rel=1e-12)


@pytest.mark.parametrize("sizes", [[], [3], [1, 0, 1], [2, -1], [1, 2, 0]])
def test_bad_layer_sizes(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        MLP(sizes)


@pytest.mark.parametrize("activation", ["sigmoid", "", None, "TANH"])
def test_bad_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        MLP([1, 2, 1], activation=activation)


# --- CNN -------------------------------------------------------------------------


def reference_cnn_forward(config, theta, x):
    """The CNN read straight off its documented layout, with scipy.signal.correlate and explicit windows."""
    act = ACTIVATIONS[config["activation"]]
    kh, kw = (config["kernel_size"],) * 2 if isinstance(config["kernel_size"], int) else config["kernel_size"]
    c, h, w = config["input_shape"]
    offset, out = 0, x
    for o in config["channels"]:
        filters = theta[offset : offset + o * c * kh * kw].reshape(o, c, kh, kw)
        offset += o * c * kh * kw
        bias = theta[offset : offset + o]
        offset += o
        top, left = (kh - 1) // 2, (kw - 1) // 2  # "same": the extra row/column of an even kernel at the bottom/right
        xp = np.pad(out, ((0, 0), (0, 0), (top, kh - 1 - top), (left, kw - 1 - left)))
        z = np.array(
            [
                [
                    sum(scipy.signal.correlate(xp[n, k], filters[j, k], mode="valid") for k in range(c)) + bias[j]
                    for j in range(o)
                ]
                for n in range(len(x))
            ]
        )
        a = act(z)[..., : h // 2 * 2, : w // 2 * 2]
        out = a.reshape(len(x), o, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        c, h, w = o, h // 2, w // 2
    widths = [c * h * w, *config["hidden"], config["n_outputs"]]
    dense = reference_forward(widths, config["activation"], theta[offset:], out.reshape(len(x), -1))
    return dense


@given(config=cnn_configs(), n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cnn_forward_matches_the_documented_layout(config, n, seed):
    rng = np.random.default_rng(seed)
    net = CNN(**config)
    theta, x = rng.standard_normal(net.dim), rng.standard_normal((n, *config["input_shape"]))
    out = net.forward(theta, x)
    assert out.shape == (n, config["n_outputs"])
    np.testing.assert_allclose(out, reference_cnn_forward(config, theta, x), rtol=1e-11, atol=1e-12)


@given(config=cnn_configs(), n_samples=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cnn_batched_forward_rows_equal_single_forwards(config, n_samples, seed):
    rng = np.random.default_rng(seed)
    net = CNN(**config)
    theta, x = rng.standard_normal((n_samples, net.dim)), rng.standard_normal((4, *config["input_shape"]))
    batched = net.forward(theta, x)
    assert batched.shape == (n_samples, 4, config["n_outputs"])
    for s in range(n_samples):
        np.testing.assert_allclose(batched[s], net.forward(theta[s], x), rtol=1e-12, atol=1e-13)


def test_cnn_layers_tile_theta_and_default_dim():
    net = CNN()
    assert net.dim == 6058 and net.input_shape == (1, 8, 8) and net.n_outputs == 10 and net.feature_shape == (16, 2, 2)
    assert [layer.kind for layer in net.layers] == ["conv", "conv", "dense", "dense"]
    assert [layer.fan_in for layer in net.layers] == [9, 72, 64, 64]
    pieces = [piece for layer in net.layers for piece in (layer.weight, layer.bias)]
    assert pieces[0][0] == 0 and pieces[-1][1] == net.dim
    for (_, stop, _), (start, _, _) in zip(pieces[:-1], pieces[1:]):
        assert stop == start  # contiguous, in order
    for start, stop, shape in pieces:
        assert stop - start == np.prod(shape)
    assert net.slices == [(layer.weight, layer.bias) for layer in net.layers]


def test_cnn_one_filter_tap_and_bias_show_in_the_forward_pass():
    """A 1-channel block with a 3×3 filter whose only nonzero tap is the centre, then the identity dense map."""
    net = CNN(input_shape=(1, 4, 4), channels=(1,), kernel_size=3, hidden=(), n_outputs=4, activation="relu")
    # layout: filter (1, 1, 3, 3) at 0:9, conv bias at 9, dense W (4, 4) at 10:26, dense b at 26:30
    theta = np.zeros(net.dim)
    theta[4] = 2.0  # the centre tap: the conv doubles the image
    theta[9] = -0.5  # conv bias, before the relu
    theta[10:26] = np.eye(4).ravel()
    theta[26:30] = [0.0, 0.0, 0.0, 1.0]
    x = np.arange(16.0).reshape(1, 1, 4, 4) / 8.0
    pooled = np.maximum(2.0 * x[0, 0] - 0.5, 0.0).reshape(2, 2, 2, 2).max(axis=(1, 3)).ravel()
    np.testing.assert_allclose(net.forward(theta, x)[0], pooled + [0, 0, 0, 1], rtol=1e-15)


def test_cnn_forward_builds_a_graph_only_for_a_var():
    net = CNN(input_shape=(1, 4, 4), channels=(2,), hidden=(3,), n_outputs=2)
    theta = net.init(np.random.default_rng(0), 1)[0]
    assert isinstance(net.forward(theta, np.ones((3, 1, 4, 4))), np.ndarray)
    assert isinstance(net.forward(ad.Var(theta), np.ones((3, 1, 4, 4))), ad.Var)


def test_cnn_init_scales_are_fan_in():
    net = CNN()
    theta = net.init(np.random.default_rng(0), n=8)
    assert theta.shape == (8, net.dim)
    for layer in net.layers:
        (w0, w1, _), (b0, b1, _) = layer.weight, layer.bias
        for values, variance in ((theta[:, w0:w1].ravel(), 1.0 / layer.fan_in), (theta[:, b0:b1].ravel(), 0.01)):
            assert abs(values.var(ddof=1) - variance) < 4 * variance * np.sqrt(2.0 / (values.size - 1))
    np.testing.assert_array_equal(theta, net.init(np.random.default_rng(0), n=8))


def kink_margins(net, theta, x):
    """Smallest |relu pre-activation| and smallest gap between a pooling window's top two values, over θ rows."""
    relu_margin, pool_margin = np.inf, np.inf
    h = x
    for i, (weight, bias) in enumerate(net.unflatten(theta)):
        z = np.asarray(net.layer_linear(i, h, weight, bias))
        if i < len(net.layers) - 1 and net.activation == "relu":
            relu_margin = min(relu_margin, float(np.min(np.abs(z))))
        if net.layers[i].kind == "conv":
            a = np.tanh(z) if net.activation == "tanh" else np.maximum(z, 0.0)
            ho, wo = a.shape[-2] // 2, a.shape[-1] // 2
            windows = a[..., : 2 * ho, : 2 * wo].reshape(*a.shape[:-2], ho, 2, wo, 2).swapaxes(-3, -2)
            windows = np.sort(windows.reshape(*a.shape[:-2], ho, wo, 4), axis=-1)
            gaps = windows[..., -1] - windows[..., -2]
            # relu zeros tie but pass no gradient; exact ties elsewhere are identical patches (a digit's blank
            # background), the same function of θ, so they stay tied under any perturbation
            near = gaps[(windows[..., -1] > 0) & (gaps > 0)]
            pool_margin = min(pool_margin, float(np.min(near)) if near.size else np.inf)
        h = net.layer_output(i, z)
    return relu_margin, pool_margin


@pytest.mark.parametrize("activation, seed", [("tanh", 48), ("relu", 194)])
def test_cnn_gradient_of_a_softmax_log_likelihood_single_and_batched(activation, seed):
    """∇ of Σ log_softmax(f(x; θ))[y] against central differences, at θ away from relu and max-pool kinks.

    A difference that crosses a kink is wrong by O(1), so each seed was picked
    (out of 200) for the largest margin to any kink; the assert keeps it honest.
    """
    rng = np.random.default_rng(seed)
    net = CNN(input_shape=(1, 6, 6), channels=(2, 3), kernel_size=3, hidden=(4,), n_outputs=3, activation=activation)
    x, y = rng.random((3, 1, 6, 6)), rng.integers(0, 3, size=3)
    onehot = np.eye(3)[y]
    theta = net.init(rng, 3)
    assert min(kink_margins(net, theta, x)) > 2e-3

    def log_lik(t):
        return ad.sum(ad.log_softmax(net.forward(t, x)) * onehot)

    for s in range(3):
        assert ad.check_grad(log_lik, theta[s], seed=0) < GRAD_TOL
    assert ad.check_grad(log_lik, theta, seed=0) < GRAD_TOL


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (8, 8)}, "input_shape must be"),
        ({"input_shape": (1, 8, 0)}, "input_shape must be"),
        ({"channels": (8, 0)}, "channels must be"),
        ({"channels": 8}, "channels must be"),
        ({"kernel_size": 0}, "kernel_size must be"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size must be"),
        ({"hidden": (64, -1)}, "hidden must be"),
        ({"n_outputs": 0}, "n_outputs must be"),
        ({"activation": "gelu"}, "activation must be"),
        ({"channels": (4, 4, 4, 4)}, "too small"),
    ],
)
def test_cnn_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CNN(**kwargs)


def test_cnn_forward_rejects_images_of_the_wrong_shape():
    net = CNN()
    theta = np.zeros(net.dim)
    for bad in (np.zeros((5, 64)), np.zeros((5, 1, 8, 7)), np.zeros((5, 8, 8))):
        with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 8, 8\)"):
            net.forward(theta, bad)


def test_cnn_gradient_on_digits_whose_blank_background_ties_the_max_pool():
    """Real digits: pooling windows over the blank border see identical patches, exactly tied maxima.

    The tied entries are one function of θ, so the derivative is that of any
    one of them; a VJP that gave every tied entry the full gradient would be
    off by the number of ties here.
    """
    data = digits(n_train=4, seed=0)
    net = CNN(channels=(2, 3), hidden=(5,), activation="tanh")
    theta = net.init(np.random.default_rng(0), 1)[0]
    a = np.tanh(np.asarray(net.layer_linear(0, data.x, *net.unflatten(theta)[0])))
    windows = a[..., 0::2, 0::2], a[..., 0::2, 1::2], a[..., 1::2, 0::2], a[..., 1::2, 1::2]
    assert np.sum(windows[0] == windows[3]) >= 10  # ties are there to be tested
    assert min(kink_margins(net, theta, data.x)) > 2e-3
    onehot = np.eye(10)[data.y]
    assert ad.check_grad(lambda t: ad.sum(ad.log_softmax(net.forward(t, data.x)) * onehot), theta, seed=0) < GRAD_TOL
