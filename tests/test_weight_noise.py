"""approxpost.weight_noise: local reparameterisation and Flipout on CNN layers against weight sampling.

The truths: with its input fixed, a layer's pre-activation under Gaussian
weights is Gaussian with mean linear(h; μ) and variance linear(h²; σ²), and
within one image two positions of a convolution share their filter, so they
covary by Σ patch₁ · patch₂ · σ² + σ_b². Weight sampling, local
reparameterisation and Flipout must reproduce what they claim of these
(marginals: all three; the covariance: weight sampling and Flipout), and the
ELBO gradients must agree in expectation where the objectives are equal.
Tolerances are 4.5 Monte Carlo standard errors on every one of a few
hundred statistics (a chance of ~1e-3 that a correct sampler fails; each
test is seeded, so it passes or fails the same way every run).
"""

import numpy as np
import pytest

from approxpost import autodiff as ad
from approxpost.nn import CNN
from approxpost.weight_noise import (
    FORWARDS,
    flipout_layer,
    local_reparam_forward,
    local_reparam_layer,
    weight_sampling_forward,
)

Z_MAX = 4.5
N_DRAWS = 20_000

NETS = {  # layer 0 is a convolution, or a dense layer reading the flattened images
    "conv": dict(input_shape=(2, 5, 5), channels=(3,), kernel_size=3, hidden=(), n_outputs=2),
    "dense": dict(input_shape=(2, 3, 3), channels=(), hidden=(4,), n_outputs=2),
}


def setting(name, seed=0):
    rng = np.random.default_rng(seed)
    net = CNN(**NETS[name])
    mu, sigma = net.init(rng, 1)[0], rng.uniform(0.2, 0.6, net.dim)
    x = rng.random((3, *net.input_shape))
    return net, mu, sigma, x, rng


def first_layer_truth(net, mu, sigma, x):
    """Mean and variance of layer 0's pre-activations under q, in closed form."""
    mean = np.asarray(net.layer_linear(0, x, *net.unflatten(mu)[0]))
    var = np.asarray(net.layer_linear(0, x * x, *net.unflatten(sigma**2)[0]))
    return mean, var


def assert_moments(draws, mean, var):
    """Sample mean and variance over axis 0 within Z_MAX standard errors of Gaussian ``mean``, ``var``."""
    n = len(draws)
    z_mean = (draws.mean(axis=0) - mean) / np.sqrt(var / n)
    z_var = (draws.var(axis=0, ddof=1) - var) / (var * np.sqrt(2.0 / (n - 1)))
    assert np.max(np.abs(z_mean)) < Z_MAX and np.max(np.abs(z_var)) < Z_MAX, (np.abs(z_mean).max(), np.abs(z_var).max())


def weight_sampled_first_layer(net, mu, sigma, x, rng, n):
    theta = mu + sigma * rng.standard_normal((n, net.dim))
    return np.asarray(net.layer_linear(0, x, *net.unflatten(theta)[0]))


@pytest.mark.parametrize("name", sorted(NETS))
def test_weight_sampling_gives_the_local_reparameterisation_moments(name):
    """The exact statement the local trick rests on: mean linear(x; μ), variance linear(x²; σ²) per activation."""
    net, mu, sigma, x, rng = setting(name)
    assert_moments(weight_sampled_first_layer(net, mu, sigma, x, rng, N_DRAWS), *first_layer_truth(net, mu, sigma, x))


@pytest.mark.parametrize("layer", [local_reparam_layer, flipout_layer])
@pytest.mark.parametrize("name", sorted(NETS))
def test_local_and_flipout_layers_have_the_exact_marginals(layer, name):
    net, mu, sigma, x, rng = setting(name)
    second = (sigma**2) if layer is local_reparam_layer else sigma
    draws = layer(net, 0, x, net.unflatten(mu)[0], net.unflatten(second)[0], rng, N_DRAWS)
    assert draws.shape == (N_DRAWS, *first_layer_truth(net, mu, sigma, x)[0].shape)
    assert_moments(np.asarray(draws), *first_layer_truth(net, mu, sigma, x))


def conv_position_covariance(net, mu, sigma, x, first, second):
    """Cov(z[n, o, first], z[n, o, second]) under q for every image n and channel o: Σ patch·patch·σ² + σ_b²."""
    _, _, kh, kw = net.layers[0].weight[2]
    sigma_w, sigma_b = net.unflatten(sigma)[0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))  # "same" for a 3×3 kernel
    (i1, j1), (i2, j2) = first, second
    patch1, patch2 = xp[:, :, i1 : i1 + kh, j1 : j1 + kw], xp[:, :, i2 : i2 + kh, j2 : j2 + kw]
    return np.einsum("ncpq,ocpq->no", patch1 * patch2, sigma_w**2) + sigma_b[:, 0, 0] ** 2


@pytest.mark.parametrize("sampler", ["weights", "flipout", "local"])
def test_two_positions_of_one_image_covary_as_their_shared_filter_implies(sampler):
    """Weight sampling and Flipout keep the covariance a shared filter induces; local reparameterisation drops it."""
    net, mu, sigma, x, rng = setting("conv")
    first, second = (2, 2), (2, 3)
    if sampler == "weights":
        draws = weight_sampled_first_layer(net, mu, sigma, x, rng, N_DRAWS)
    elif sampler == "flipout":
        draws = np.asarray(flipout_layer(net, 0, x, net.unflatten(mu)[0], net.unflatten(sigma)[0], rng, N_DRAWS))
    else:
        draws = np.asarray(
            local_reparam_layer(net, 0, x, net.unflatten(mu)[0], net.unflatten(sigma**2)[0], rng, N_DRAWS)
        )
    a, b = draws[..., first[0], first[1]], draws[..., second[0], second[1]]  # (draws, n, o)
    covariance = np.mean((a - a.mean(axis=0)) * (b - b.mean(axis=0)), axis=0)
    truth = conv_position_covariance(net, mu, sigma, x, first, second) if sampler != "local" else 0.0
    _, var = first_layer_truth(net, mu, sigma, x)
    var_a, var_b = var[..., first[0], first[1]], var[..., second[0], second[1]]
    se = np.sqrt((var_a * var_b + np.square(truth)) / N_DRAWS)  # SE of a Gaussian pair's sample covariance
    assert np.max(np.abs(covariance - truth) / se) < Z_MAX
    if sampler == "local":  # and the truth it misses is far from zero
        assert np.min(conv_position_covariance(net, mu, sigma, x, first, second) / se) > 10 * Z_MAX


def elbo_likelihood_grads(forward, net, mu, sigma, x, onehot, rng, n_mc, n_repeats):
    """``n_repeats`` independent estimates of ∇_(μ,σ) E_q[Σ_n log softmax(f(x_n; θ))[y_n]], (n_repeats, 2D)."""
    lam = np.concatenate([mu, sigma])
    d = net.dim

    def objective(lam):
        logits = forward(net, lam[:d], lam[d:], x, rng, n_mc)
        return ad.sum(ad.log_softmax(logits) * onehot) / n_mc

    _, grads = zip(*(ad.value_and_grad(objective)(lam) for _ in range(n_repeats)))
    return np.array(grads)


@pytest.mark.parametrize(
    "name, estimator",
    [("conv", "flipout"), ("dense", "flipout"), ("dense", "local")],
)
def test_gradient_estimators_agree_with_weight_sampling_in_expectation(name, estimator):
    """Unbiased for the same objective: their mean gradients agree coordinate by coordinate within MCSE.

    (Local reparameterisation on a convolution estimates another objective, see
    the covariance test, so it is compared on the dense network only.)
    """
    config = dict(NETS[name], hidden=(3,), n_outputs=3)
    rng = np.random.default_rng(1)
    net = CNN(**config)
    mu, sigma = net.init(rng, 1)[0], rng.uniform(0.2, 0.6, net.dim)
    x, y = rng.random((4, *net.input_shape)), rng.integers(0, 3, size=4)
    onehot = np.eye(3)[y]
    reference = elbo_likelihood_grads(weight_sampling_forward, net, mu, sigma, x, onehot, rng, 4, 400)
    other = elbo_likelihood_grads(FORWARDS[estimator], net, mu, sigma, x, onehot, rng, 4, 400)
    se = np.sqrt(reference.var(axis=0, ddof=1) / 400 + other.var(axis=0, ddof=1) / 400)
    z = (reference.mean(axis=0) - other.mean(axis=0)) / se
    assert np.all(se > 0) and np.max(np.abs(z)) < Z_MAX


def test_forwards_share_shapes_and_differentiate():
    net, mu, sigma, x, rng = setting("conv")
    for name, forward in FORWARDS.items():
        out = forward(net, mu, sigma, x, rng, 5)
        assert np.shape(out) == (5, 3, net.n_outputs), name
        assert isinstance(forward(net, ad.Var(mu), sigma, x, rng, 2), ad.Var)


def test_zero_sigma_gives_the_mean_network_every_pass():
    net, mu, _, x, rng = setting("conv")
    tiny = np.full(net.dim, 1e-12)  # the local trick's √var needs var > 0
    for forward in FORWARDS.values():
        np.testing.assert_allclose(
            forward(net, mu, tiny, x, rng, 3), np.broadcast_to(net.forward(mu, x), (3, 3, 2)), atol=1e-9
        )


def test_n_mc_is_checked():
    net, mu, sigma, x, rng = setting("conv")
    with pytest.raises(ValueError, match="n_mc must be a positive integer"):
        local_reparam_forward(net, mu, sigma, x, rng, 0)


# --- Bayes by Backprop with local reparameterisation on a CNN classifier ------------------------


def cnn_classifier(seed=0):
    import approxpost as ap

    rng = np.random.default_rng(seed)
    net = CNN(input_shape=(1, 4, 4), channels=(2,), kernel_size=3, hidden=(3,), n_outputs=3)
    x, y = rng.random((6, 1, 4, 4)), rng.integers(0, 3, 6)
    return ap.models.Classification(net, x, y, prior_std=1.0), rng


@pytest.mark.parametrize("idx", [None, np.array([0, 2, 5])])
def test_cnn_local_reparam_likelihood_at_tiny_sigma_is_the_log_likelihood_at_the_mean(idx):
    """σ → 0 leaves no noise: every sampled pass is the network at μ, rescaled to the full data as the model does."""
    from approxpost.distributions import Normal
    from approxpost.estimators import local_reparam_log_likelihood

    model, rng = cnn_classifier()
    mu = model.net.init(rng, 1)[0]
    value = local_reparam_log_likelihood(model, Normal(mu, np.full_like(mu, 1e-12)), rng, 4, idx)
    np.testing.assert_allclose(float(value), float(model.log_likelihood(mu, idx)), rtol=1e-9)


def test_cnn_local_reparam_likelihood_matches_weight_sampling_in_expectation():
    """One image's pre-activations on a dense-only CNN are exactly Gaussian, so both estimates share a mean."""
    import approxpost as ap
    from approxpost.distributions import Normal
    from approxpost.estimators import local_reparam_log_likelihood

    rng = np.random.default_rng(3)
    net = CNN(**NETS["dense"])
    x, y = rng.random((1, *net.input_shape)), np.array([1])
    model = ap.models.Classification(net, x, y, prior_std=1.0)
    mu, sigma = net.init(rng, 1)[0], np.full(net.dim, 0.3)
    n = 20_000
    local = np.array([float(local_reparam_log_likelihood(model, Normal(mu, sigma), rng, 1)) for _ in range(n)])
    sampled = np.asarray(model.log_likelihood(mu + sigma * rng.standard_normal((n, net.dim))))
    se = np.sqrt(local.var(ddof=1) / n + sampled.var(ddof=1) / n)
    assert abs(local.mean() - sampled.mean()) < Z_MAX * se


def test_bbb_local_reparam_on_a_cnn_runs_on_the_engine_and_refuses_the_hand_gradient():
    """The hand-written chain rule covers MLP layers only: on a CNN it is a clear error, the engine path fits."""
    import approxpost as ap

    model, rng = cnn_classifier(1)
    mu, rho = model.net.init(rng, 1)[0], np.full(model.dim, -2.0)
    with pytest.raises(ValueError, match="hand_gradient=True covers"):
        ap.BayesByBackprop(n_mc=3, local_reparam=True, batch_size=3, hand_gradient=True).loss_grad(
            model, mu, rho, np.random.default_rng(7), np.array([1, 3, 4])
        )
    posterior = ap.BayesByBackprop(n_mc=2, n_steps=20, local_reparam=True, batch_size=3).fit(model, seed=0)
    assert np.all(np.isfinite(posterior.history["elbo"])) and posterior.std.shape == (model.dim,)
