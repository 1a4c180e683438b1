"""Bayes by Backprop on a CNN: the three estimators give unbiased gradients of one objective, fit, and measure.

The truths: weight sampling is the plain reparameterisation estimate of the
minibatch loss; Flipout sees exact weight samples per data point, so its mean
gradient equals weight sampling's on any network; local reparameterisation is
exact per data point on dense layers only (on a convolution it drops the
covariance of positions that share a filter, tests/test_weight_noise.py), so
it is compared on a CNN without convolutions. Means are compared coordinate
by coordinate within Z_MAX Monte Carlo standard errors, seeded.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import approxpost as ap
from approxpost.methods.vi_common import FINAL_ELBO_DRAWS, FINAL_ELBO_MIN_DRAWS, final_elbo_draws

Z_MAX = 4.5
N_REPEATS = 300


def tiny_classifier(channels, seed=0):
    rng = np.random.default_rng(seed)
    net = ap.nn.CNN(input_shape=(1, 4, 4), channels=channels, kernel_size=3, hidden=(3,), n_outputs=3)
    x, y = rng.random((6, 1, 4, 4)), rng.integers(0, 3, size=6)
    return ap.models.Classification(net, x, y, prior_std=1.0)


def loss_grads(method, model, mu, rho, seed):
    """``N_REPEATS`` independent (∂F/∂μ, ∂F/∂ρ) of ``method``'s full-batch loss, (N_REPEATS, 2D)."""
    rngs = np.random.default_rng(seed).spawn(N_REPEATS)
    return np.array([np.concatenate(method.loss_grad(model, mu, rho, rng)[2:]) for rng in rngs])


@pytest.mark.parametrize("estimator, channels", [("flipout", (2,)), ("flipout", ()), ("local", ())])
def test_estimators_agree_with_weight_sampling_in_expectation(estimator, channels):
    model = tiny_classifier(channels)
    rng = np.random.default_rng(1)
    mu, rho = model.init(rng, 1)[0], rng.uniform(-1.5, -0.5, model.dim)  # σ ≈ 0.2 … 0.5
    reference = loss_grads(ap.BayesByBackprop(n_mc=2), model, mu, rho, seed=2)
    other = loss_grads(ap.BayesByBackprop(n_mc=2, estimator=estimator), model, mu, rho, seed=3)
    se = np.sqrt((reference.var(axis=0, ddof=1) + other.var(axis=0, ddof=1)) / N_REPEATS)
    z = (reference.mean(axis=0) - other.mean(axis=0)) / se
    assert np.all(se > 0) and np.max(np.abs(z)) < Z_MAX, np.max(np.abs(z))


def test_hand_and_engine_weight_sampling_agree_exactly_on_a_cnn():
    model = tiny_classifier((2,))
    rng = np.random.default_rng(0)
    mu, rho = model.init(rng, 1)[0], rng.uniform(-2.0, -1.0, model.dim)
    hand = ap.BayesByBackprop(n_mc=3, hand_gradient=True).loss_grad(model, mu, rho, np.random.default_rng(5))
    engine = ap.BayesByBackprop(n_mc=3, hand_gradient=False).loss_grad(model, mu, rho, np.random.default_rng(5))
    for a, b in zip(hand, engine):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_estimator_settings_resolve_and_refuse_what_cannot_work():
    assert ap.BayesByBackprop().gradient_estimator == "weights"
    assert ap.BayesByBackprop(local_reparam=True).gradient_estimator == "local"
    assert ap.BayesByBackprop(local_reparam=True, estimator="local").gradient_estimator == "local"
    with pytest.raises(ValueError, match="estimator must be None or one of"):
        ap.BayesByBackprop(estimator="dropout")
    with pytest.raises(ValueError, match="local_reparam=True means estimator='local'"):
        ap.BayesByBackprop(local_reparam=True, estimator="flipout")
    with pytest.raises(ValueError, match="init_std"):
        ap.BayesByBackprop(init_std=0.0)
    cnn = tiny_classifier((2,))
    with pytest.raises(ValueError, match="hand_gradient=True covers"):
        ap.BayesByBackprop(estimator="flipout", hand_gradient=True, n_steps=1).fit(cnn, seed=0)
    with pytest.raises(ValueError, match="hand_gradient=True covers"):
        ap.BayesByBackprop(estimator="local", hand_gradient=True, n_steps=1).fit(cnn, seed=0)
    moons = ap.datasets.two_moons(n=20, seed=0)
    mlp = ap.models.Classification(ap.nn.MLP([2, 4, 2]), moons.x, moons.y)
    with pytest.raises(ValueError, match="estimator='flipout'.*nn.CNN.*got Classification with net MLP"):
        ap.BayesByBackprop(estimator="flipout", n_steps=1).fit(mlp, seed=0)
    # the default picks the chain rule by hand where it applies, the engine elsewhere
    assert ap.BayesByBackprop(local_reparam=True).uses_hand_gradient(mlp)
    assert not ap.BayesByBackprop(estimator="local").uses_hand_gradient(cnn)
    assert not ap.BayesByBackprop(estimator="flipout").uses_hand_gradient(cnn)
    assert ap.BayesByBackprop(n_mc=3, estimator="flipout").uncounted_evals_per_step(cnn) == (3, 0)
    assert ap.BayesByBackprop(n_mc=3).uncounted_evals_per_step(cnn) == (0, 0)


@pytest.fixture(scope="module")
def digits_model():
    data = ap.datasets.digits(n_train=300, seed=0)
    net = ap.nn.CNN(channels=(4,), hidden=(16,))
    return data, ap.models.Classification(net, data.x, data.y, prior_std=1.0)


@pytest.fixture(scope="module")
def digits_fits(digits_model):
    _, model = digits_model
    return {
        name: ap.BayesByBackprop(n_steps=150, batch_size=50, learning_rate=2e-2, estimator=name).fit(model, seed=0)
        for name in ("weights", "local", "flipout")
    }


@pytest.mark.parametrize("name", ["weights", "local", "flipout"])
def test_each_estimator_learns_the_digits(digits_model, digits_fits, name):
    data, _ = digits_model
    probs = digits_fits[name].predict(data.x_test, n_samples=20, seed=0).probs
    assert ap.metrics.accuracy(probs, data.y_test) > 0.7  # chance is 0.1


def test_final_elbo_costs_a_few_passes_of_a_cnn_and_stays_honest(digits_model, digits_fits, linear):
    _, model = digits_model
    post = digits_fits["weights"]
    n_draws = post.diagnostics["final_elbo_draws"]
    assert n_draws == final_elbo_draws(model) and FINAL_ELBO_MIN_DRAWS <= n_draws < FINAL_ELBO_DRAWS
    assert final_elbo_draws(linear) == FINAL_ELBO_DRAWS  # small models keep every draw
    # the MCSE is that of those draws: an independent estimate lands within a few of it
    q = ap.distributions.MeanFieldNormal.from_std(post.mean, post.std)
    other = ap.estimators.elbo_terms(model, q, n_mc=n_draws, seed=123)
    se = np.hypot(post.diagnostics["final_elbo_mcse"], other.std(ddof=1) / np.sqrt(other.size))
    assert abs(post.diagnostics["final_elbo"] - other.mean()) < Z_MAX * se


def test_init_std_sets_the_starting_sigma(digits_model):
    _, model = digits_model
    post = ap.BayesByBackprop(n_steps=3, batch_size=50, init_std=0.03, estimator="flipout").fit(model, seed=0)
    assert post.history["mean_sigma"][0] == pytest.approx(0.03)


def test_sigma_over_training_plots_a_cnn_fit(digits_fits):
    fig = ap.plot.sigma_over_training({name: digits_fits[name] for name in ("local", "flipout")})
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), digits_fits["local"].history["mean_sigma"])
    plt.close(fig)


def test_gradient_variance_curves_compare_the_cnn_estimators():
    model = tiny_classifier((2,))
    q = ap.distributions.MeanFieldNormal.from_std(model.init(np.random.default_rng(0), 1)[0], np.full(model.dim, 0.3))
    curves = ap.gradient_variance_curves(model, q=q, n_mcs=(1, 4), n_repeats=40, seed=0)
    assert {"reparameterisation", "local reparameterisation", "flipout"} <= set(curves)
    for name in ("reparameterisation", "local reparameterisation", "flipout"):
        assert curves[name][1] < curves[name][0]  # more draws, less variance
