"""approxpost.distributions against scipy.stats, Monte Carlo KL estimates and finite differences."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from approxpost import autodiff as ad
from approxpost.distributions import MeanFieldNormal, MultivariateNormal, Normal, kl

N_SE = 4.0
GRAD_TOL = 1e-6

seeds = st.integers(0, 2**16)
dims = st.integers(1, 4)


def random_spd(rng, dim):
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.3 * np.eye(dim)


def random_normal(rng, dim):
    return Normal(rng.standard_normal(dim), rng.uniform(0.3, 2.0, dim))


def random_mvn(rng, dim):
    return MultivariateNormal(rng.standard_normal(dim), random_spd(rng, dim))


# --- densities and entropies -----------------------------------------------------------


@given(seed=seeds, dim=dims, n=st.integers(1, 5))
def test_normal_log_prob_and_entropy_match_scipy(seed, dim, n):
    rng = np.random.default_rng(seed)
    q = random_normal(rng, dim)
    x = rng.standard_normal((n, dim)) * 2.0
    reference = scipy.stats.norm(q.loc, q.scale)
    np.testing.assert_allclose(q.log_prob(x), reference.logpdf(x).sum(axis=-1), rtol=1e-12)
    assert np.ndim(q.log_prob(x[0])) == 0
    assert float(q.log_prob(x[0])) == pytest.approx(reference.logpdf(x[0]).sum(), rel=1e-12)
    assert float(q.entropy()) == pytest.approx(reference.entropy().sum(), rel=1e-12, abs=1e-12)


@given(seed=seeds, dim=dims)
def test_mean_field_log_prob_uses_softplus_scale(seed, dim):
    rng = np.random.default_rng(seed)
    mu, rho = rng.standard_normal(dim), rng.uniform(-4.0, 4.0, dim)
    q = MeanFieldNormal(mu, rho)
    sigma = np.log1p(np.exp(rho))
    np.testing.assert_allclose(q.std, sigma, rtol=1e-14)
    x = rng.standard_normal((3, dim))
    np.testing.assert_allclose(q.log_prob(x), scipy.stats.norm(mu, sigma).logpdf(x).sum(axis=-1), rtol=1e-12)
    assert float(q.entropy()) == pytest.approx(scipy.stats.norm(mu, sigma).entropy().sum(), rel=1e-12, abs=1e-12)


@given(seed=seeds, dim=dims, n=st.integers(1, 5))
def test_multivariate_normal_matches_scipy(seed, dim, n):
    rng = np.random.default_rng(seed)
    p = random_mvn(rng, dim)
    reference = scipy.stats.multivariate_normal(p.mean, p.cov)
    x = rng.standard_normal((n, dim)) * 2.0
    np.testing.assert_allclose(p.log_prob(x), np.atleast_1d(reference.logpdf(x)), rtol=1e-11)
    assert float(p.log_prob(x[0])) == pytest.approx(reference.logpdf(x[0]), rel=1e-11)
    assert p.entropy() == pytest.approx(reference.entropy(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(p.std, np.sqrt(np.diag(p.cov)), rtol=1e-15)


def test_softplus_scale_is_stable_at_extreme_rho():
    q = MeanFieldNormal(np.zeros(3), np.array([-30.0, 0.0, 40.0]))
    np.testing.assert_allclose(q.std, [np.exp(-30.0), np.log(2.0), 40.0], rtol=1e-12)


@given(std=st.lists(st.floats(1e-8, 1e3), min_size=1, max_size=4), mu_shift=st.floats(-5.0, 5.0))
def test_from_std_round_trip(std, mu_shift):
    std = np.array(std)
    mu = np.full(std.shape, mu_shift)
    q = MeanFieldNormal.from_std(mu, std)
    np.testing.assert_allclose(q.std, std, rtol=1e-12)
    np.testing.assert_array_equal(q.mean, mu)
    np.testing.assert_allclose(MeanFieldNormal.from_std(q.mu, q.std).rho, q.rho, rtol=1e-10, atol=1e-12)


# --- KL divergence --------------------------------------------------------------------


def closed_form_kl(mean_p, cov_p, mean_q, cov_q):
    """½[tr(Σ_q⁻¹Σ_p) + (m_q − m_p)ᵀΣ_q⁻¹(m_q − m_p) − D + log|Σ_q| − log|Σ_p|], with explicit inverses."""
    inv_q = np.linalg.inv(cov_q)
    diff = mean_q - mean_p
    return 0.5 * (
        np.trace(inv_q @ cov_p)
        + diff @ inv_q @ diff
        - len(mean_p)
        + np.linalg.slogdet(cov_q)[1]
        - np.linalg.slogdet(cov_p)[1]
    )


def moments(d):
    return (d.mean, d.cov) if isinstance(d, MultivariateNormal) else (d.mean, np.diag(d.std**2))


KINDS = {"diag": random_normal, "full": random_mvn}


@pytest.mark.parametrize("kind_p", sorted(KINDS))
@pytest.mark.parametrize("kind_q", sorted(KINDS))
def test_kl_matches_closed_form(kind_p, kind_q):
    rng = np.random.default_rng(7)
    for dim in (1, 3):
        p, q = KINDS[kind_p](rng, dim), KINDS[kind_q](rng, dim)
        expected = closed_form_kl(*moments(p), *moments(q))
        assert float(kl(p, q)) == pytest.approx(expected, rel=1e-10)
        assert float(p.kl(q)) == pytest.approx(expected, rel=1e-10)
        assert float(kl(p, p)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind_p", sorted(KINDS))
@pytest.mark.parametrize("kind_q", sorted(KINDS))
def test_kl_matches_monte_carlo(kind_p, kind_q):
    """KL(p‖q) = E_p[log p − log q], estimated from 50 000 draws, within 4 standard errors."""
    rng = np.random.default_rng([sorted(KINDS).index(kind_p), sorted(KINDS).index(kind_q)])
    p, q = KINDS[kind_p](rng, 3), KINDS[kind_q](rng, 3)
    draws = np.asarray(p.sample(rng, 50_000))
    log_ratio = np.asarray(p.log_prob(draws)) - np.asarray(q.log_prob(draws))
    standard_error = log_ratio.std(ddof=1) / np.sqrt(log_ratio.size)
    assert abs(float(kl(p, q)) - log_ratio.mean()) < N_SE * standard_error


def test_kl_between_a_diagonal_full_covariance_and_a_diagonal_agrees_both_ways():
    rng = np.random.default_rng(3)
    p, q = random_normal(rng, 4), random_normal(rng, 4)
    p_full, q_full = MultivariateNormal(p.mean, np.diag(p.std**2)), MultivariateNormal(q.mean, np.diag(q.std**2))
    expected = float(kl(p, q))
    for a, b in ((p_full, q), (p, q_full), (p_full, q_full)):
        assert float(kl(a, b)) == pytest.approx(expected, rel=1e-12)


# --- gradients through Var parameters ----------------------------------------------------


def mean_field_from(t, dim):
    return MeanFieldNormal(t[:dim], t[dim:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_of_log_prob_kl_entropy_and_sample_wrt_mu_rho(seed):
    rng = np.random.default_rng(seed)
    dim = 3
    params = np.concatenate([rng.standard_normal(dim), rng.uniform(-2.0, 2.0, dim)])
    theta = rng.standard_normal((4, dim))
    prior = Normal(np.zeros(dim), 1.5)
    target = random_normal(rng, dim)
    weights = rng.standard_normal((5, dim))
    functions = {
        "log_prob": lambda t: ad.sum(mean_field_from(t, dim).log_prob(theta)),
        "kl_q_prior": lambda t: kl(mean_field_from(t, dim), prior),
        "kl_target_q": lambda t: kl(target, mean_field_from(t, dim)),
        "entropy": lambda t: mean_field_from(t, dim).entropy(),
        "sample": lambda t: ad.sum(mean_field_from(t, dim).sample(np.random.default_rng(0), 5) * weights),
    }
    for name, f in functions.items():
        assert ad.check_grad(f, params, seed=0) < GRAD_TOL, name
    # and against the analytic ∇_μ log q(θ) = Σ_s (θ_s − μ)/σ²
    mu, sigma = params[:dim], np.log1p(np.exp(params[dim:]))
    g = ad.grad(functions["log_prob"])(params)
    np.testing.assert_allclose(g[:dim], np.sum(theta - mu, axis=0) / sigma**2, rtol=1e-12)


def test_normal_accepts_var_loc_and_scale():
    loc, scale = np.array([0.2, -0.4]), np.array([0.7, 1.3])
    x = np.array([[0.1, 0.5], [1.0, -2.0]])
    f = lambda t: ad.sum(Normal(t[:2], t[2:]).log_prob(x))
    assert ad.check_grad(f, np.concatenate([loc, scale]), seed=0) < GRAD_TOL


# --- sampling ---------------------------------------------------------------------------


def test_samples_have_the_right_moments():
    rng = np.random.default_rng(11)
    n = 40_000
    for dist in (random_normal(rng, 3), random_mvn(rng, 3)):
        draws = np.asarray(dist.sample(rng, n))
        assert draws.shape == (n, 3)
        mean, cov = moments(dist)
        assert np.all(np.abs(draws.mean(axis=0) - mean) < N_SE * np.sqrt(np.diag(cov) / n))
        centred = draws - mean
        products = centred[:, :, None] * centred[:, None, :]  # E = cov; its SE from the products' spread
        assert np.all(np.abs(products.mean(axis=0) - cov) < N_SE * products.std(axis=0, ddof=1) / np.sqrt(n))
    seeded = [
        np.asarray(random_normal(np.random.default_rng(5), 2).sample(np.random.default_rng(9), 4)) for _ in range(2)
    ]
    np.testing.assert_array_equal(*seeded)


# --- bad input ----------------------------------------------------------------------------


def test_bad_parameters_are_rejected_with_shapes():
    with pytest.raises(ValueError, match=r"scale must be positive.*\(2,\)"):
        Normal(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"loc must be finite.*\(2,\)"):
        Normal(np.array([0.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match=r"mu and rho must be 1-D of equal shape, got mu \(3,\) and rho \(2,\)"):
        MeanFieldNormal(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"rho must be finite"):
        MeanFieldNormal(np.zeros(2), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match=r"std must be positive"):
        MeanFieldNormal.from_std(np.zeros(2), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"cov must be \(D, D\).*mean \(2,\) and cov \(3, 3\)"):
        MultivariateNormal(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match=r"cov must be symmetric"):
        MultivariateNormal(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov must be positive definite"):
        MultivariateNormal(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_bad_points_and_dimension_mismatches_are_rejected():
    q, p = Normal(np.zeros(3), 1.0), MultivariateNormal(np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"x has shape \(4, 2\) but the distribution has dim 3"):
        q.log_prob(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x has shape \(3,\) but the distribution has dim 2"):
        p.log_prob(np.zeros(3))
    with pytest.raises(ValueError, match=r"equal dimensions, got 3 and 2"):
        kl(q, p)
