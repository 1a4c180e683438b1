"""The Posterior interface and Predictive: exact identities, scipy oracles, MCSE-based moment checks, bad input."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from approxpost import diagnostics
from approxpost.distributions import MultivariateNormal, Normal
from approxpost.methods.importance import as_proposal
from approxpost.posteriors import Cost, GaussianPosterior, Predictive, SamplePosterior, WeightedPosterior


class LineModel:
    """f(x; θ) = θ₀ + θ₁ x with Gaussian noise: outputs (S, n, 1) that depend on θ."""

    dim = 2
    noise_std = 0.3

    def predict(self, theta, x):
        theta = np.atleast_2d(theta)
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return (theta[:, :1] + theta[:, 1:] * x)[:, :, None]


def mixture_cdf(y, f, sigma):
    """(1/S) Σ_s Φ((y − f_s)/σ), straight from scipy."""
    return scipy.stats.norm.cdf(y, loc=f, scale=sigma).mean(axis=0)


def random_cov(dim, seed):
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return a @ a.T + 0.5 * np.eye(dim)


# --------------------------------------------------------------------------- Predictive


def test_predict_draws_theta_from_the_posterior_and_splits_the_variance():
    model, x = LineModel(), np.linspace(-2.0, 2.0, 7)
    post = GaussianPosterior(np.array([0.5, -1.0]), std=np.array([0.2, 0.4]), model=model)
    pred = post.predict(x, n_samples=300, seed=0)
    np.testing.assert_array_equal(pred.samples, model.predict(post.sample(300, seed=0), x))
    assert pred.mean.shape == pred.std.shape == pred.epistemic_std.shape == pred.aleatoric_std.shape == (7, 1)
    np.testing.assert_array_equal(pred.aleatoric_std, np.full((7, 1), model.noise_std))
    np.testing.assert_allclose(pred.epistemic_std, pred.samples.std(axis=0), rtol=1e-14)
    np.testing.assert_allclose(pred.std**2, pred.epistemic_std**2 + pred.aleatoric_std**2, rtol=1e-14)
    # the mixture's own variance: E[f²] − E[f]² + σ²
    mixture_var = np.mean(pred.samples**2, axis=0) - pred.mean**2 + model.noise_std**2
    np.testing.assert_allclose(pred.std**2, mixture_var, rtol=1e-10)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.99])
def test_interval_of_one_component_is_the_normal_quantiles(level):
    f = np.linspace(-3.0, 4.0, 5).reshape(1, 5, 1)
    lower, upper = Predictive(f, 0.7).interval(level)
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    np.testing.assert_allclose(lower, f[0] - 0.7 * z, rtol=0, atol=1e-11)
    np.testing.assert_allclose(upper, f[0] + 0.7 * z, rtol=0, atol=1e-11)


@settings(deadline=None, max_examples=40)
@given(
    f=hnp.arrays(
        np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4), st.integers(1, 2)), elements=st.floats(-5, 5)
    ),
    sigma=st.floats(0.05, 3.0),
    level=st.floats(0.05, 0.999),
)
def test_interval_holds_exactly_level_of_the_mixture(f, sigma, level):
    lower, upper = Predictive(f, sigma).interval(level)
    tail = (1.0 - level) / 2
    np.testing.assert_allclose(mixture_cdf(lower, f, sigma), tail, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mixture_cdf(upper, f, sigma), 1.0 - tail, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mixture_cdf(upper, f, sigma) - mixture_cdf(lower, f, sigma), level, rtol=0, atol=1e-8)


def test_log_density_matches_scipy():
    rng = np.random.default_rng(1)
    f, y, sigma = rng.normal(size=(50, 8, 1)), rng.normal(size=8), 0.4
    expected = np.mean(np.log(np.mean(scipy.stats.norm.pdf(y[:, None], f, sigma), axis=0)))
    pred = Predictive(f, sigma)
    assert pred.log_density(y) == pytest.approx(expected, rel=1e-12)
    assert pred.log_density(y[:, None]) == pred.log_density(y)


def test_log_density_of_several_outputs_is_the_joint_mixture_density():
    rng = np.random.default_rng(2)
    f, y, sigma = rng.normal(size=(20, 6, 2)), rng.normal(size=(6, 2)), 0.8
    joint = np.prod(scipy.stats.norm.pdf(y, f, sigma), axis=-1)  # (S, n): the outputs are independent given θ
    assert Predictive(f, sigma).log_density(y) == pytest.approx(np.mean(np.log(joint.mean(axis=0))), rel=1e-12)


def test_log_density_stays_finite_far_in_the_tail():
    """logsumexp: a point 60 noise sds away underflows a direct pdf but not the log density."""
    pred = Predictive(np.zeros((10, 1, 1)), 1.0)
    assert pred.log_density([60.0]) == pytest.approx(scipy.stats.norm.logpdf(60.0), rel=1e-12)


@pytest.mark.parametrize(
    "samples, noise_std, match",
    [
        (np.zeros((3, 4)), 1.0, r"samples must have shape \(S, n, out\), got shape \(3, 4\)"),
        (np.full((3, 4, 1), np.nan), 1.0, "samples must be finite"),
        (np.zeros((0, 4, 1)), 1.0, "samples must not be empty"),
        (np.zeros((3, 4, 1)), 0.0, "noise_std"),
        (np.zeros((3, 4, 1)), np.inf, "noise_std"),
    ],
)
def test_predictive_rejects_bad_construction(samples, noise_std, match):
    with pytest.raises(ValueError, match=match):
        Predictive(samples, noise_std)


def test_predictive_rejects_bad_levels_and_targets():
    pred = Predictive(np.zeros((3, 5, 1)), 1.0)
    for level in (0.0, 1.0, 1.5, True):
        with pytest.raises(ValueError, match="level"):
            pred.interval(level)
    with pytest.raises(ValueError, match=r"y has shape \(4,\) but samples has shape \(3, 5, 1\)"):
        pred.log_density(np.zeros(4))
    with pytest.raises(ValueError, match=r"y has shape \(5, 2\)"):
        pred.log_density(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="y must be finite"):
        pred.log_density(np.full(5, np.nan))


def test_predict_needs_a_regression_model():
    post = GaussianPosterior(np.zeros(2), std=np.ones(2))
    with pytest.raises(ValueError, match="model=None"):
        post.predict(np.zeros(3))
    post.model = object()
    with pytest.raises(ValueError, match="predict"):
        post.predict(np.zeros(3))
    post.model = LineModel()
    with pytest.raises(ValueError, match="n_samples"):
        post.predict(np.zeros(3), n_samples=0)


# --------------------------------------------------------------------------- SamplePosterior


def chains(seed=0, shape=(3, 40, 2)):
    return np.random.default_rng(seed).normal(size=shape) * np.array([1.0, 3.0]) + np.array([0.0, 5.0])


def test_sample_posterior_moments_shapes_and_diagnostics():
    draws = chains()
    post = SamplePosterior(draws)
    flat = draws.reshape(-1, 2)
    assert post.dim == 2 and post.draws.shape == (3, 40, 2)
    np.testing.assert_array_equal(post.draws, draws)
    np.testing.assert_allclose(post.mean, flat.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(post.std, flat.std(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(post.diagnostics["ess"], diagnostics.ess(draws))
    np.testing.assert_array_equal(post.diagnostics["rhat"], diagnostics.rhat(draws))
    assert post.cost == Cost(0, 0, 0.0) and post.history == {} and post.settings == {}


def test_sample_posterior_keeps_given_diagnostics_and_copies_its_inputs():
    draws, given_diagnostics = chains(), {"ess": np.array([7.0, 8.0]), "acceptance_rate": 0.3}
    post = SamplePosterior(draws, diagnostics=given_diagnostics)
    np.testing.assert_array_equal(post.diagnostics["ess"], [7.0, 8.0])
    assert "rhat" in post.diagnostics and "rhat" not in given_diagnostics
    draws[0, 0, 0] = 1e6  # the posterior holds its own read-only copy
    assert post.draws[0, 0, 0] != 1e6 and not post.draws.flags.writeable


def test_sample_posterior_computes_ess_and_rhat_once_on_first_read(monkeypatch):
    draws, calls = chains(), []
    eager = diagnostics.ess_and_rhat(draws)

    def counting(values):
        calls.append(values.shape)
        return eager

    monkeypatch.setattr(diagnostics, "ess_and_rhat", counting)
    post = SamplePosterior(draws, diagnostics={"acceptance_rate": 0.5})
    assert post.mean.shape == (2,) and post.sample(3, seed=0).shape == (3, 2) and calls == []  # not built yet
    assert list(post.diagnostics) == ["acceptance_rate", "ess", "rhat"] and calls == [(3, 40, 2)]
    np.testing.assert_array_equal(post.diagnostics["ess"], eager[0])
    np.testing.assert_array_equal(post.diagnostics["rhat"], eager[1])
    assert calls == [(3, 40, 2)]  # cached: read again, not recomputed
    # a dict set after construction is kept as set, never filled in
    post = SamplePosterior(draws)
    post.diagnostics = {"acceptance_rate": 0.1}
    assert post.diagnostics == {"acceptance_rate": 0.1} and calls == [(3, 40, 2)]


def test_one_chain_and_too_few_draws_for_diagnostics():
    post = SamplePosterior(np.arange(6.0).reshape(3, 2))
    assert post.draws.shape == (1, 3, 2)
    assert "ess" not in post.diagnostics and "rhat" not in post.diagnostics


def test_sample_posterior_sample_picks_rows_of_the_draws_reproducibly():
    post = SamplePosterior(chains())
    flat = post.draws.reshape(-1, 2)
    a, b = post.sample(50, seed=3), post.sample(50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, post.sample(50, seed=4))
    matches = np.all(a[:, None, :] == flat[None, :, :], axis=-1)  # (50, 120): which draw each row is
    assert np.all(matches.any(axis=1))
    assert len(np.unique(matches.argmax(axis=1))) == 50  # no draw repeated: n ≤ 120 is without replacement
    many = post.sample(500, seed=0)  # more than there are: with replacement
    assert many.shape == (500, 2) and np.all(np.all(many[:, None, :] == flat[None], axis=-1).any(axis=1))


@pytest.mark.parametrize(
    "draws, match",
    [
        (np.zeros(5), r"draws must have shape \(n_chains, n_draws, D\) or \(n_draws, D\), got shape \(5,\)"),
        (np.zeros((1, 2, 3, 4)), r"got shape \(1, 2, 3, 4\)"),
        (np.full((2, 5, 1), np.inf), "draws must be finite"),
        (np.zeros((2, 0, 1)), "draws must not be empty"),
        ("abc", "draws must be a numeric array"),
    ],
)
def test_sample_posterior_rejects_bad_draws(draws, match):
    with pytest.raises(ValueError, match=match):
        SamplePosterior(draws)


def test_posterior_rejects_bad_common_arguments():
    draws = chains()
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            SamplePosterior(draws).sample(n)
    with pytest.raises(TypeError, match="diagnostics must be a dict"):
        SamplePosterior(draws, diagnostics=[1])
    with pytest.raises(ValueError, match="cost"):
        SamplePosterior(draws, cost=(1, -2, 0.0))
    with pytest.raises(ValueError, match="cost"):
        SamplePosterior(draws, cost=(1, 2))
    with pytest.raises(ValueError, match=r"history\['elbo'\] of shape \(\)"):
        SamplePosterior(draws, history={"elbo": 1.0})
    with pytest.raises(ValueError, match="model has dim=2 but the posterior has dim=3"):
        SamplePosterior(np.zeros((1, 4, 3)), model=LineModel())


# --------------------------------------------------------------------------- WeightedPosterior


def weighted(seed=0, n=4000):
    """Particles from N(0, 2²) weighted toward N(1, 1): log w = log N(x|1,1) − log N(x|0,4)."""
    particles = np.random.default_rng(seed).normal(0.0, 2.0, size=(n, 2))
    log_weights = np.sum(
        scipy.stats.norm.logpdf(particles, 1.0, 1.0) - scipy.stats.norm.logpdf(particles, 0.0, 2.0), axis=1
    )
    return particles, log_weights


def test_weights_are_normalised_in_log_space():
    particles, log_weights = weighted()
    post = WeightedPosterior(particles, log_weights + 1e4)  # exp would overflow; the weights do not
    assert abs(post.weights.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(post.weights, np.exp(log_weights) / np.exp(log_weights).sum(), rtol=1e-10)


def test_weighted_moments_evidence_and_diagnostics():
    particles, log_weights = weighted()
    post = WeightedPosterior(particles, log_weights)
    w = np.exp(log_weights)
    mean = np.average(particles, weights=w, axis=0)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(post.std, np.sqrt(np.average((particles - mean) ** 2, weights=w, axis=0)), rtol=1e-12)
    assert post.log_evidence == pytest.approx(np.log(np.mean(w)), rel=1e-12)
    assert post.ess == diagnostics.kish_ess(log_weights) and post.khat == diagnostics.psis_khat(log_weights)
    assert post.diagnostics == {"kish_ess": post.ess, "khat": post.khat, "log_evidence": post.log_evidence}


def test_resampling_mean_within_4_mcse_of_the_weighted_mean():
    post = WeightedPosterior(*weighted())
    n = 20_000
    draws = post.sample(n, seed=5)
    # multinomial resampling gives i.i.d. draws from the weighted particles: MCSE = std / sqrt(n)
    assert np.all(np.abs(draws.mean(axis=0) - post.mean) < 4 * post.std / np.sqrt(n))
    np.testing.assert_array_equal(draws, post.sample(n, seed=5))


def test_zero_weight_particles_are_never_drawn():
    post = WeightedPosterior(np.arange(8.0).reshape(4, 2), np.array([0.0, -np.inf, 1.0, -np.inf]))
    np.testing.assert_array_equal(post.weights[[1, 3]], 0.0)
    assert set(post.sample(200, seed=0)[:, 0]) == {0.0, 4.0}


@pytest.mark.parametrize(
    "particles, log_weights, match",
    [
        (np.zeros((10, 2)), np.zeros(9), r"log_weights has shape \(9,\) but particles has 10 rows"),
        (np.zeros((3, 2)), np.zeros((3, 1)), r"log_weights has shape \(3, 1\) but particles has 3 rows"),
        (np.zeros((3, 2)), np.array([0.0, np.nan, 0.0]), "log_weights must be"),
        (np.zeros((3, 2)), np.array([0.0, np.inf, 0.0]), "log_weights must be"),
        (np.zeros((3, 2)), np.full(3, -np.inf), "not all -inf"),
        (np.zeros((3, 2)), ["a", "b", "c"], r"log_weights must be a numeric array of shape \(3,\)"),
        (np.zeros(3), np.zeros(3), r"particles must have shape \(n, D\), got shape \(3,\)"),
        (np.full((3, 2), np.nan), np.zeros(3), "particles must be finite"),
    ],
)
def test_weighted_posterior_rejects_bad_input(particles, log_weights, match):
    with pytest.raises(ValueError, match=match):
        WeightedPosterior(particles, log_weights)


# --------------------------------------------------------------------------- GaussianPosterior


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_log_prob_and_entropy_match_scipy(full):
    mean = np.array([0.5, -1.0, 2.0])
    cov = random_cov(3, seed=0) if full else np.diag([0.3, 2.0, 1.1])
    post = GaussianPosterior(mean, cov=cov) if full else GaussianPosterior(mean, std=np.sqrt(np.diag(cov)))
    oracle = scipy.stats.multivariate_normal(mean, cov)
    theta = np.random.default_rng(1).normal(size=(6, 3)) * 2
    np.testing.assert_allclose(post.log_prob(theta), oracle.logpdf(theta), rtol=1e-12)
    assert isinstance(post.log_prob(theta[0]), float)
    assert post.log_prob(theta[0]) == pytest.approx(oracle.logpdf(theta[0]), rel=1e-12)
    assert post.entropy() == pytest.approx(oracle.entropy(), rel=1e-12)
    np.testing.assert_allclose(post.cov, cov, rtol=1e-14)
    np.testing.assert_allclose(post.std, np.sqrt(np.diag(cov)), rtol=1e-14)


@settings(deadline=None, max_examples=20)
@given(dim=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_full_gaussian_log_prob_matches_scipy_on_random_covariances(dim, seed):
    cov, rng = random_cov(dim, seed), np.random.default_rng(seed)
    mean, theta = rng.normal(size=dim), rng.normal(size=(4, dim))
    expected = scipy.stats.multivariate_normal(mean, cov).logpdf(theta).reshape(4)
    np.testing.assert_allclose(GaussianPosterior(mean, cov=cov).log_prob(theta), expected, rtol=1e-10)


def test_gaussian_sample_moments_within_4_mcse():
    mean, cov, n = np.array([1.0, -2.0, 0.5]), random_cov(3, seed=2), 20_000
    draws = GaussianPosterior(mean, cov=cov).sample(n, seed=0)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sd / np.sqrt(n))
    # Var(x_i x_j) = C_ii C_jj + C_ij² for centred Gaussians gives the sample covariance's MCSE
    cov_mcse = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 4 * cov_mcse)


def test_diagonal_and_full_gaussians_with_the_same_covariance_agree():
    mean, std = np.array([0.2, -0.7]), np.array([0.5, 1.5])
    diag, full = GaussianPosterior(mean, std=std), GaussianPosterior(mean, cov=np.diag(std**2))
    assert diag.is_diagonal and not full.is_diagonal
    theta = np.random.default_rng(3).normal(size=(5, 2))
    np.testing.assert_allclose(diag.log_prob(theta), full.log_prob(theta), rtol=1e-14)
    assert diag.entropy() == pytest.approx(full.entropy(), rel=1e-14)
    np.testing.assert_allclose(diag.sample(10, seed=4), full.sample(10, seed=4), rtol=1e-14)
    np.testing.assert_allclose(diag.cov, full.cov, rtol=1e-14)
    np.testing.assert_allclose(diag.std, full.std, rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mean": np.zeros(2)}, "exactly one of std .* or cov .*, got neither"),
        ({"mean": np.zeros(2), "std": np.ones(2), "cov": np.eye(2)}, "got both"),
        ({"mean": np.zeros((2, 1)), "std": np.ones(2)}, r"mean must have shape \(D,\), got shape \(2, 1\)"),
        ({"mean": np.zeros(2), "std": np.ones(3)}, r"std has shape \(3,\) but mean has shape \(2,\)"),
        ({"mean": np.zeros(2), "std": np.array([1.0, 0.0])}, "std must be positive"),
        ({"mean": np.array([0.0, np.nan]), "std": np.ones(2)}, "mean must be finite"),
        ({"mean": np.zeros(2), "cov": np.eye(3)}, r"cov has shape \(3, 3\) but mean has shape \(2,\)"),
        ({"mean": np.zeros(2), "cov": np.array([[1.0, 0.5], [0.0, 1.0]])}, "cov must be symmetric"),
        ({"mean": np.zeros(2), "cov": np.array([[1.0, 2.0], [2.0, 1.0]])}, "cov must be positive definite"),
    ],
)
def test_gaussian_posterior_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianPosterior(**kwargs)


def test_gaussian_log_prob_rejects_bad_theta():
    post = GaussianPosterior(np.zeros(2), cov=np.eye(2))
    with pytest.raises(ValueError, match=r"theta has shape \(3,\) but the posterior has dim=2"):
        post.log_prob(np.zeros(3))
    with pytest.raises(ValueError, match=r"theta has shape \(1, 1, 2\)"):
        post.log_prob(np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match="theta must be finite"):
        post.log_prob(np.array([0.0, np.nan]))


def test_gaussian_posterior_is_a_distribution_underneath():
    diag = GaussianPosterior(np.array([0.5, -1.0]), std=np.array([0.3, 2.0]))
    full = GaussianPosterior(np.array([0.5, -1.0]), cov=np.array([[1.0, 0.4], [0.4, 2.0]]))
    assert type(diag.distribution) is Normal and type(full.distribution) is MultivariateNormal
    theta = np.random.default_rng(0).standard_normal((6, 2))
    for post in (diag, full):
        assert as_proposal(post, 2) is post.distribution  # a posterior is a proposal as it stands
        np.testing.assert_array_equal(post.log_prob(theta), post.distribution.log_prob(theta))
        assert post.entropy() == post.distribution.entropy()
        np.testing.assert_array_equal(post.sample(4, seed=1), post.distribution.sample(np.random.default_rng(1), 4))
        np.testing.assert_array_equal(post.cov, post.distribution.cov)
