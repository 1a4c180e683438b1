"""ELBO and gradient estimators against the closed forms of a Gaussian target.

For log p(θ, D) = log Z + log N(θ | m, Λ⁻¹) and q = N(μ, diag σ²):
ELBO = log Z − D/2 log 2π + ½ log|Λ| − ½[Σ_d Λ_dd σ_d² + (μ−m)ᵀΛ(μ−m)] + Σ log σ + D/2 log(2πe),
∇_μ = −Λ(μ − m), ∇_σ = 1/σ − diag(Λ) σ, ∇_ρ = ∇_σ · sigmoid(ρ).
Statistical checks use 4 Monte Carlo standard errors; all seeds are fixed.
"""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import approxpost as ap
from approxpost import estimators as est
from approxpost.distributions import MeanFieldNormal, MultivariateNormal, kl
from approxpost.models import Model

N_SE = 4.0


class GaussianModel(Model):
    """A data-free model whose log joint is log N(θ | mean, cov): log Z = 0."""

    def __init__(self, mean, cov):
        super().__init__()
        self.distribution = MultivariateNormal(mean, cov)
        self.dim = self.distribution.dim

    def log_prior(self, theta):
        return self.distribution.log_prob(theta)

    def log_likelihood(self, theta, idx=None):
        return 0.0


def analytic(mu, sigma, mean, precision, log_z=0.0):
    """(ELBO, ∇_μ, ∇_ρ) in closed form for a Gaussian target (see the module docstring)."""
    dim, diff = mu.size, mu - mean
    rho = MeanFieldNormal.from_std(mu, sigma).rho
    expected_log_p = log_z - 0.5 * dim * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(precision)[1]
    expected_log_p -= 0.5 * (np.sum(np.diag(precision) * sigma**2) + diff @ precision @ diff)
    entropy = np.sum(np.log(sigma)) + 0.5 * dim * (np.log(2 * np.pi) + 1.0)
    grad_sigma = 1.0 / sigma - np.diag(precision) * sigma
    return expected_log_p + entropy, -precision @ diff, grad_sigma / (1.0 + np.exp(-rho))


@pytest.fixture(scope="module")
def conjugate():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 2))
    y = x @ np.array([1.0, -2.0]) + 0.5 + 0.3 * rng.standard_normal(30)
    model = ap.models.LinearRegression(x, y, noise_std=0.3, prior_std=1.0)
    precision = model.posterior_precision()
    mean = np.linalg.solve(precision, model.design.T @ model.y[:, 0] / model.noise_std**2)
    return model, mean, precision


@pytest.fixture(scope="module")
def mlp_regression():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (20, 1))
    y = np.sin(2 * x) + 0.1 * rng.standard_normal((20, 1))
    net = ap.nn.MLP([1, 8, 1])
    model = ap.models.Regression(net, x, y, noise_std=0.1, prior_std=1.0)
    q = MeanFieldNormal.from_std(net.init(rng, 1)[0], np.full(model.dim, 0.1))
    return model, q


@st.composite
def gaussian_problems(draw):
    """A Gaussian target of dimension 1–4 and a q near it."""
    dim = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    cov = a @ a.T / dim + 0.3 * np.eye(dim)
    mean = rng.standard_normal(dim)
    mu = mean + draw(st.floats(0.0, 1.0)) * rng.standard_normal(dim)
    sigma = np.sqrt(np.diag(cov)) * np.exp(draw(st.floats(-1.0, 1.0)))
    return GaussianModel(mean, cov), mean, np.linalg.inv(cov), MeanFieldNormal.from_std(mu, sigma)


def assert_within_se(estimate, truth, se, label=""):
    # rounding floor: where q equals the target the terms are constant and the SE is zero
    error = np.abs(np.asarray(estimate) - truth) - 1e-9 * (1.0 + np.abs(truth))
    assert np.all(error <= N_SE * se), f"{label}: |estimate − truth| / SE = {np.max(error / se):.2f} > {N_SE}"


# --- the ELBO -----------------------------------------------------------------


@settings(max_examples=10)
@given(gaussian_problems())
def test_elbo_matches_the_closed_form(problem):
    model, mean, precision, q = problem
    terms = est.elbo_terms(model, q, n_mc=2000, seed=3)
    truth = analytic(q.mu, q.std, mean, precision)[0]
    assert_within_se(terms.mean(), truth, terms.std(ddof=1) / np.sqrt(terms.size), "elbo")
    assert est.elbo(model, q, n_mc=2000, seed=3) == terms.mean()


def test_elbo_is_exact_when_q_is_the_posterior():
    # a diagonal Gaussian target is in the mean-field family: every term equals log Z = 0
    model = GaussianModel([1.0, -2.0, 0.5], np.diag([0.5, 2.0, 1.5]))
    q = MeanFieldNormal.from_std(np.array([1.0, -2.0, 0.5]), np.sqrt([0.5, 2.0, 1.5]))
    np.testing.assert_allclose(est.elbo_terms(model, q, n_mc=50, seed=0), 0.0, atol=1e-12)


def test_elbo_is_below_the_log_evidence_on_the_conjugate_model(conjugate):
    model, mean, precision = conjugate
    # the best mean-field q: the exact mean and std = 1/sqrt(diag Λ) (correlated posterior, so KL > 0)
    q = MeanFieldNormal.from_std(mean, 1.0 / np.sqrt(np.diag(precision)))
    log_z = model.log_evidence()
    truth = analytic(q.mu, q.std, mean, precision, log_z)[0]
    terms = est.elbo_terms(model, q, n_mc=4000, seed=0)
    se = terms.std(ddof=1) / np.sqrt(terms.size)
    assert truth < log_z and log_z - truth < 1.0  # close to but below the evidence
    assert_within_se(terms.mean(), truth, se, "elbo at the mean-field optimum")
    assert terms.mean() <= log_z + N_SE * se
    # any other q is further below
    assert analytic(mean + 0.05, q.std * 1.2, mean, precision, log_z)[0] < truth


# --- closed-form pieces against autodiff ---------------------------------------


@settings(max_examples=10)
@given(st.integers(1, 5), st.integers(0, 2**31))
def test_closed_form_kl_gradient_matches_autodiff(dim, seed):
    rng = np.random.default_rng(seed)
    mu, sigma = rng.standard_normal(dim), np.exp(rng.uniform(-3, 1, dim))
    prior = ap.distributions.Normal(rng.standard_normal(dim), np.exp(rng.uniform(-1, 1, dim)))
    value, grad_mu, grad_sigma = est.normal_kl_grad(mu, sigma, prior)
    lam = np.stack([mu, sigma])
    ad_value, ad_grad = ap.autodiff.value_and_grad(lambda l: kl(ap.distributions.Normal(l[0], l[1]), prior))(lam)
    np.testing.assert_allclose(value, ad_value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_mu, ad_grad[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_sigma, ad_grad[1], rtol=1e-12, atol=1e-12)
    # dσ/dρ from σ alone equals sigmoid(ρ), down to tiny and large σ
    rho = rng.uniform(-40, 40, dim)
    np.testing.assert_allclose(est.dsigma_drho(ap.autodiff.softplus(rho)), ap.autodiff.sigmoid(rho), rtol=1e-12)


@settings(max_examples=20)
@given(st.integers(1, 40), st.integers(0, 2**31), st.booleans())
def test_closed_form_kl_is_bit_for_bit_the_formula_written_plainly(dim, seed, zero_mean):
    """The in-place KL, with its prior terms kept on the prior (and μ − 0 skipped), changes no bit."""
    rng = np.random.default_rng(seed)
    mu, sigma = rng.standard_normal(dim), np.exp(rng.uniform(-5, 2, dim))
    mu[: dim // 3] = 0.0  # exact zeros of μ, where a zero prior mean leaves diff = μ itself
    mean = np.zeros(dim) if zero_mean else rng.standard_normal(dim)
    prior = ap.distributions.Normal(mean, np.exp(rng.uniform(-2, 2, dim)))
    var = np.square(prior.std)
    diff = mu - prior.mean
    plain_value = float(np.sum(np.log(prior.std / sigma) + (sigma * sigma + diff * diff) / (2.0 * var) - 0.5))
    plain = (diff / var, sigma / var - 1.0 / sigma)
    for _ in range(2):  # the first call computes the prior's terms, the second reuses them
        value, grad_mu, grad_sigma = est.normal_kl_grad(mu, sigma, prior)
        assert value == plain_value
        np.testing.assert_array_equal(grad_mu, plain[0])
        np.testing.assert_array_equal(grad_sigma, plain[1])
    assert est.dsigma_drho(sigma).tobytes() == (-np.expm1(-sigma)).tobytes()
    # another prior of the same shape gets its own terms
    other = ap.distributions.Normal(mean + 1.0, 2.0 * prior.std)
    assert est.normal_kl_grad(mu, sigma, other)[0] == pytest.approx(
        float(kl(MeanFieldNormal.from_std(mu, sigma), other))
    )


# --- gradient estimators: unbiased --------------------------------------------

ESTIMATORS = {
    "score": est.score_function_grad,
    "score+cv": functools.partial(est.score_function_grad, control_variate=True),
    "reparam": est.reparam_grad,
}


@settings(max_examples=8)
@given(gaussian_problems())
def test_gradient_estimators_are_unbiased(problem):
    model, mean, precision, q = problem
    _, grad_mu, grad_rho = analytic(q.mu, q.std, mean, precision)
    truth = np.concatenate([grad_mu, grad_rho])
    n_repeats = 300
    for name, estimator in ESTIMATORS.items():
        spread = est.grad_variance(estimator, model, q, n_mc=8, n_repeats=n_repeats, seed=11)
        assert_within_se(spread.mean, truth, np.sqrt(spread.var / n_repeats), name)


def test_estimators_are_unbiased_on_linear_regression(conjugate):
    model, mean, precision = conjugate
    q = MeanFieldNormal.from_std(mean + 0.1, 1.3 / np.sqrt(np.diag(precision)))
    _, grad_mu, grad_rho = analytic(q.mu, q.std, mean, precision)
    truth = np.concatenate([grad_mu, grad_rho])
    for name, estimator in ESTIMATORS.items():
        spread = est.grad_variance(estimator, model, q, n_mc=16, n_repeats=500, seed=5)
        assert_within_se(spread.mean, truth, np.sqrt(spread.var / 500), name)


def test_local_reparam_is_unbiased(mlp_regression):
    # same expectation as the weight-space reparameterisation gradient, coordinate by coordinate
    model, q = mlp_regression
    n = 500
    weights = est.grad_variance(est.reparam_grad, model, q, n_mc=4, n_repeats=n, seed=0)
    local = est.grad_variance(est.local_reparam_grad, model, q, n_mc=4, n_repeats=n, seed=1)
    se = np.sqrt(weights.var / n + local.var / n)
    assert_within_se(local.mean, weights.mean, se, "local vs weight reparameterisation")


# --- gradient estimators: variance --------------------------------------------


def test_score_function_variance_dwarfs_reparameterisation(conjugate):
    model, mean, precision = conjugate
    q = MeanFieldNormal.from_std(mean + 0.1, 1.3 / np.sqrt(np.diag(precision)))
    score = est.grad_variance(est.score_function_grad, model, q, n_mc=16, n_repeats=300, seed=0)
    with_cv = est.grad_variance(ESTIMATORS["score+cv"], model, q, n_mc=16, n_repeats=300, seed=0)
    reparam = est.grad_variance(est.reparam_grad, model, q, n_mc=16, n_repeats=300, seed=0)
    assert score.total_variance > 10 * reparam.total_variance
    assert with_cv.total_variance < 0.5 * score.total_variance  # the baseline removes most of it
    assert score.total_variance == pytest.approx(np.sum(score.var))
    np.testing.assert_allclose(score.snr, np.abs(score.mean) / np.sqrt(score.var))


def test_local_reparam_lowers_the_weight_mean_gradient_variance(mlp_regression):
    model, q = mlp_regression
    weight_coords = np.concatenate([np.arange(w0, w1) for (w0, w1, _), _ in model.net.slices])
    plain = est.grad_variance(est.reparam_grad, model, q, n_mc=4, n_repeats=200, seed=0)
    local = est.grad_variance(est.local_reparam_grad, model, q, n_mc=4, n_repeats=200, seed=0)
    assert local.var[weight_coords].sum() < 0.5 * plain.var[weight_coords].sum()


# --- determinism and bad input ------------------------------------------------


@pytest.mark.parametrize("estimator", [*ESTIMATORS.values(), est.local_reparam_grad, est.elbo])
def test_same_seed_gives_identical_results(estimator, mlp_regression):
    model, q = mlp_regression

    def flat(seed):
        result = estimator(model, q, n_mc=4, seed=seed)
        return np.concatenate([np.ravel(part) for part in (result if isinstance(result, tuple) else (result,))])

    np.testing.assert_array_equal(flat(7), flat(7))
    assert not np.array_equal(flat(7), flat(8))


def test_bad_input_raises_naming_the_argument(conjugate, mlp_regression):
    model, mean, _ = conjugate
    q = MeanFieldNormal.from_std(mean, np.full(mean.size, 0.1))
    with pytest.raises(ValueError, match="n_mc"):
        est.score_function_grad(model, q, n_mc=1, control_variate=True)
    with pytest.raises(ValueError, match="n_mc"):
        est.reparam_grad(model, q, n_mc=0)
    with pytest.raises(ValueError, match=r"dim 2.*dim 3"):
        est.elbo(model, MeanFieldNormal.from_std(np.zeros(2), np.ones(2)))
    with pytest.raises(TypeError, match="MeanFieldNormal"):
        est.elbo(model, MultivariateNormal(mean, np.eye(mean.size)))
    with pytest.raises(ValueError, match="MLP"):
        est.local_reparam_grad(model, q)
    with pytest.raises(ValueError, match="n_repeats"):
        est.grad_variance(est.reparam_grad, model, q, n_repeats=1)
