"""approxpost.models: the conjugate oracle, shapes, minibatch rescaling, user models and input checks."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from approxpost import autodiff as ad
from approxpost.models import LinearRegression, Model, Regression
from approxpost.nn import MLP


def linear_data(seed=0, n=12, p=2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, p))
    y = x @ rng.standard_normal(p) + 0.7 + 0.4 * rng.standard_normal(n)
    return x, y


def design(x, fit_intercept):
    return np.hstack([x, np.ones((len(x), 1))]) if fit_intercept else x


# --- the conjugate oracle ----------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_exact_posterior_matches_gaussian_conditioning(fit_intercept):
    """Mean and covariance from conditioning the joint Gaussian of (θ, y): the Woodbury form.

    (θ, y) is jointly Gaussian with Cov(θ, y) = s² Xᵀ and Cov(y) = K = s² X Xᵀ + σ² I, so
    E[θ | y] = s² Xᵀ K⁻¹ y and Cov[θ | y] = s² I − s⁴ Xᵀ K⁻¹ X: an n×n solve instead of
    the model's D×D precision.
    """
    x, y = linear_data()
    sigma, s = 0.4, 1.3
    model = LinearRegression(x, y, noise_std=sigma, prior_std=s, fit_intercept=fit_intercept)
    X = design(x, fit_intercept)
    K = s**2 * X @ X.T + sigma**2 * np.eye(len(y))
    mean = s**2 * X.T @ np.linalg.solve(K, y)
    cov = s**2 * np.eye(X.shape[1]) - s**4 * X.T @ np.linalg.solve(K, X)
    post = model.exact_posterior()
    np.testing.assert_allclose(post.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.cov, cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.std, np.sqrt(np.diag(cov)), rtol=1e-10)


def test_log_evidence_matches_scipy_marginal_of_y():
    x, y = linear_data(seed=1)
    sigma, s = 0.4, 1.3
    model = LinearRegression(x, y, noise_std=sigma, prior_std=s)
    X = design(x, True)
    expected = scipy.stats.multivariate_normal(np.zeros(len(y)), s**2 * X @ X.T + sigma**2 * np.eye(len(y))).logpdf(y)
    assert model.log_evidence() == pytest.approx(expected, rel=1e-12)


def test_log_joint_is_evidence_times_posterior_everywhere():
    """Bayes' rule, completing the square: log p(θ, y) = log p(y) + log N(θ | m, C) for every θ."""
    x, y = linear_data(seed=2)
    model = LinearRegression(x, y, noise_std=0.4, prior_std=1.3)
    post = model.exact_posterior()
    theta = np.random.default_rng(0).standard_normal((6, model.dim)) * 2.0
    expected = model.log_evidence() + scipy.stats.multivariate_normal(post.mean, post.cov).logpdf(theta)
    np.testing.assert_allclose(model.log_joint(theta), expected, rtol=1e-10)
    _, gradient = model.log_joint_and_grad(post.mean)  # the mean is the mode
    np.testing.assert_allclose(gradient, 0.0, atol=1e-9 * np.abs(model.log_joint(post.mean)))


def test_intercept_is_the_last_coordinate():
    x, y = linear_data(seed=3, p=2)
    model = LinearRegression(x, y, noise_std=0.5)
    assert model.dim == 3
    np.testing.assert_allclose(model.predict(np.array([0.0, 0.0, 5.0]), x), np.full((1, len(x), 1), 5.0))
    theta = np.array([0.3, -1.1, 0.7])
    np.testing.assert_allclose(model.predict(theta, x)[0, :, 0], x @ theta[:2] + theta[2], rtol=1e-14)
    expected = np.sum(scipy.stats.norm(x @ theta[:2] + theta[2], 0.5).logpdf(y))
    assert model.log_likelihood(theta) == pytest.approx(expected, rel=1e-12)
    assert LinearRegression(x, y, fit_intercept=False).dim == 2


# --- shapes -------------------------------------------------------------------------


def mlp_regression(seed=0, n=12):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    return Regression(MLP([1, 6, 1]), x, np.sin(x[:, 0]), noise_std=0.2, prior_std=1.0)


MODELS = {"linear": lambda: LinearRegression(*linear_data(), noise_std=0.4), "mlp": mlp_regression}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_density_shapes(name):
    model = MODELS[name]()
    theta = model.init(np.random.default_rng(0), 5)
    assert theta.shape == (5, model.dim)
    for method in (model.log_joint, model.log_prior, model.log_likelihood):
        single = method(theta[0])
        assert np.ndim(single) == 0 and np.isfinite(single)
        batched = np.asarray(method(theta))
        assert batched.shape == (5,)
        assert batched[0] == pytest.approx(float(single), rel=1e-13)
    assert isinstance(model.log_joint(theta[0]), float)
    value, gradient = model.log_joint_and_grad(theta[0])
    assert isinstance(value, float) and gradient.shape == (model.dim,)
    values, gradients = model.log_joint_and_grad(theta)
    assert values.shape == (5,) and gradients.shape == (5, model.dim)
    assert model.predict(theta, model.x).shape == (5, model.n_data, 1)
    assert model.predict(theta[0], model.x[:3]).shape == (1, 3, 1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_prior_is_the_prior_distribution(name):
    model = MODELS[name]()
    theta = model.init(np.random.default_rng(1), 3)
    expected = scipy.stats.norm(0.0, model.prior_std).logpdf(theta).sum(axis=-1)
    np.testing.assert_allclose(model.log_prior(theta), expected, rtol=1e-13)
    np.testing.assert_allclose(model.prior_distribution().log_prob(theta), expected, rtol=1e-13)


# --- minibatches ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
@given(seed=st.integers(0, 2**16), n_batches=st.sampled_from([1, 2, 3, 4, 6, 12]))
def test_minibatch_log_likelihood_is_unbiased_over_a_partition(name, seed, n_batches):
    """Averaged over the disjoint minibatches of a random partition, the rescaled value is the full one, exactly."""
    model = MODELS[name]()
    rng = np.random.default_rng(seed)
    theta = model.init(rng, 3)
    batches = np.split(rng.permutation(model.n_data), n_batches)
    full = model.log_likelihood(theta)
    average = np.mean([model.log_likelihood(theta, idx) for idx in batches], axis=0)
    np.testing.assert_allclose(average, full, rtol=1e-12)
    # each batch is N/|idx| times the log likelihood of the same model on that batch alone
    idx = batches[0]
    if name == "linear":
        on_batch = LinearRegression(model.x[idx], model.y[idx, 0], noise_std=model.noise_std, prior_std=model.prior_std)
    else:
        on_batch = Regression(
            model.net, model.x[idx], model.y[idx], noise_std=model.noise_std, prior_std=model.prior_std
        )
    expected = on_batch.log_likelihood(theta) * model.n_data / len(idx)
    np.testing.assert_allclose(model.log_likelihood(theta, idx), expected, rtol=1e-12)
    grads = np.mean([model.log_joint_and_grad(theta, idx)[1] for idx in batches], axis=0)
    np.testing.assert_allclose(grads, model.log_joint_and_grad(theta)[1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_slices_and_masks_select_minibatches_too(name):
    model = MODELS[name]()
    theta = model.init(np.random.default_rng(2), 2)
    by_index = model.log_likelihood(theta, np.arange(3, 7))
    np.testing.assert_allclose(model.log_likelihood(theta, slice(3, 7)), by_index, rtol=1e-13)
    mask = np.zeros(model.n_data, dtype=bool)
    mask[3:7] = True
    np.testing.assert_allclose(model.log_likelihood(theta, mask), by_index, rtol=1e-13)
    np.testing.assert_allclose(model.log_likelihood(theta, slice(None)), model.log_likelihood(theta), rtol=1e-13)


# --- user models ----------------------------------------------------------------------


class Robust(Model):
    """A user model with only dim, log_prior and log_likelihood: N(0, I) prior, Cauchy-like likelihood at 1."""

    dim = 3

    def log_prior(self, theta):
        return -0.5 * ad.sum(ad.square(theta), axis=-1)

    def log_likelihood(self, theta, idx=None):
        return -ad.sum(ad.log1p(ad.square(theta - 1.0)), axis=-1)


def test_user_model_inherits_log_joint_and_grad():
    model = Robust()
    theta = np.random.default_rng(0).standard_normal((4, 3))
    expected_value = -0.5 * np.sum(theta**2, axis=-1) - np.sum(np.log1p((theta - 1.0) ** 2), axis=-1)
    expected_grad = -theta - 2.0 * (theta - 1.0) / (1.0 + (theta - 1.0) ** 2)
    values, grads = model.log_joint_and_grad(theta)
    np.testing.assert_allclose(values, expected_value, rtol=1e-14)
    np.testing.assert_allclose(grads, expected_grad, rtol=1e-13)
    value, grad = model.log_joint_and_grad(theta[1])
    assert value == pytest.approx(expected_value[1], rel=1e-14)
    np.testing.assert_allclose(grad, expected_grad[1], rtol=1e-13)
    assert model.init(np.random.default_rng(0), 7).shape == (7, 3)


def test_user_model_missing_a_method_says_which():
    class NoLikelihood(Model):
        dim = 2

        def log_prior(self, theta):
            return -0.5 * ad.sum(ad.square(theta), axis=-1)

    with pytest.raises(TypeError, match=r"NoLikelihood must define log_likelihood"):
        NoLikelihood().log_joint(np.zeros(2))


# --- input checks -----------------------------------------------------------------------


def test_non_finite_data_is_rejected():
    x, y = linear_data()
    x_bad, y_bad = x.copy(), y.copy()
    x_bad[3, 1], y_bad[0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"x must be finite.*1 non-finite.*\(12, 2\)"):
        LinearRegression(x_bad, y)
    with pytest.raises(ValueError, match=r"y must be finite.*\(12, 1\)"):
        LinearRegression(x, y_bad)
    with pytest.raises(ValueError, match=r"x must be finite"):
        Regression(MLP([2, 3, 1]), x_bad, y)


def test_length_mismatch_names_both_lengths():
    x, y = linear_data()
    with pytest.raises(ValueError, match=r"y has 11 rows but x has 12"):
        LinearRegression(x, y[:-1])
    with pytest.raises(ValueError, match=r"y has 11 rows but x has 12"):
        Regression(MLP([2, 3, 1]), x, y[:-1])


def test_wrong_theta_width_names_the_shapes():
    model = LinearRegression(*linear_data(), noise_std=0.4)  # dim 3
    for bad in (np.zeros(2), np.zeros((4, 5)), np.zeros((2, 2, 3)), np.zeros(())):
        shape = str(bad.shape).replace("(", r"\(").replace(")", r"\)")
        for method in (model.log_joint, model.log_joint_and_grad, lambda t: model.predict(t, model.x)):
            with pytest.raises(ValueError, match=rf"theta has shape {shape} .*dim=3"):
                method(bad)


def test_network_and_data_widths_must_agree():
    x, y = linear_data(p=2)
    with pytest.raises(ValueError, match=r"x has 2 columns \(shape \(12, 2\)\).*3 inputs"):
        Regression(MLP([3, 4, 1]), x, y)
    with pytest.raises(ValueError, match=r"y has 1 columns.*2 outputs"):
        Regression(MLP([2, 4, 2]), x, y)
    with pytest.raises(ValueError, match=r"y must be one column.*\(12, 2\)"):
        LinearRegression(x, np.column_stack([y, y]))
    with pytest.raises(ValueError, match=r"x must be a non-empty.*\(0, 1\)"):
        LinearRegression(np.zeros((0, 1)), np.zeros(0))


@pytest.mark.parametrize("argument", ["noise_std", "prior_std"])
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_non_positive_scales_are_rejected(argument, value):
    x, y = linear_data()
    with pytest.raises(ValueError, match=rf"{argument} must be a positive finite number, got {value}"):
        LinearRegression(x, y, **{argument: value})
    with pytest.raises(ValueError, match=rf"{argument} must be a positive"):
        Regression(MLP([2, 3, 1]), x, y, **{argument: value})


class _ForgetsTheBatch(Model):
    """A user model that sums over every axis, so a batch of θ collapses to one number."""

    dim = 2

    def log_prior(self, theta):
        return -0.5 * ad.sum(ad.square(theta))

    def log_likelihood(self, theta, idx=None):
        return 0.0


def test_a_log_density_of_the_wrong_shape_is_a_clear_error():
    model = _ForgetsTheBatch()
    assert model.log_joint(np.ones(2)) == -1.0  # one θ: fine
    with pytest.raises(ValueError, match=r"returned shape \(\) for theta of shape \(3, 2\), expected \(3,\)"):
        model.log_joint_and_grad(np.ones((3, 2)))
    with pytest.raises(ValueError, match="last axis"):
        model.log_joint(np.ones((3, 2)))
