"""Importance sampling against the exact evidence of conjugate regression, its failure in 20-D
(k-hat), the exact-posterior proposal, and its contract: proposals, batches, seeding, cost, errors."""

import numpy as np
import pytest
from scipy.special import logsumexp

from approxpost import models, targets
from approxpost.distributions import MultivariateNormal, Normal
from approxpost.methods.importance import ImportanceInfo, ImportanceSampling, ImportanceState, as_proposal
from approxpost.posteriors import GaussianPosterior

N_SE = 4.0


@pytest.fixture(scope="module")
def few_points():
    """Ten points of a line: a posterior wide enough for the prior to be a fair proposal."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10)
    y = 0.5 * x + 0.3 + rng.standard_normal(10)
    return models.LinearRegression(x, y, noise_std=1.0, prior_std=1.0)


def log_evidence_se(log_weights):
    """Delta-method standard error of log Ẑ, Ẑ = mean w: sd(w) / (√N mean w) = √(1/ESS − 1/N).

    Valid when the weights have finite variance: with the prior as proposal
    w = p(D | θ) is bounded by the likelihood's maximum.
    """
    n = log_weights.size
    kish = np.exp(2 * logsumexp(log_weights) - logsumexp(2 * log_weights))
    return np.sqrt(1.0 / kish - 1.0 / n)


def test_recovers_the_exact_log_evidence(few_points):
    post = ImportanceSampling(n_samples=10_000).fit(few_points, seed=0)
    estimate = post.diagnostics["log_evidence"]
    se = log_evidence_se(post.log_weights)
    assert se < 0.05
    assert abs(estimate - few_points.log_evidence()) < N_SE * se
    np.testing.assert_allclose(estimate, logsumexp(post.log_weights) - np.log(10_000), rtol=1e-12)
    assert post.diagnostics["khat"] < 0.5  # bounded weights: a light tail


def test_the_delta_method_standard_error_matches_repeated_runs(few_points):
    # 40 independent seeded runs: their spread is what the one-run SE claims
    runs = [ImportanceSampling(n_samples=2000).fit(few_points, seed=100 + s) for s in range(40)]
    estimates = np.array([post.diagnostics["log_evidence"] for post in runs])
    claimed = np.mean([log_evidence_se(post.log_weights) for post in runs])
    # the sd of 40 draws is known to a relative 1/√(2·39) ≈ 0.11: 4 of those either way
    assert 0.55 < estimates.std(ddof=1) / claimed < 1.45
    assert abs(estimates.mean() - few_points.log_evidence()) < N_SE * estimates.std(ddof=1) / np.sqrt(40)


def test_the_prior_fails_in_twenty_dimensions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 19))
    y = x @ rng.standard_normal(19) + 0.5 + 0.5 * rng.standard_normal(30)
    model = models.LinearRegression(x, y, noise_std=0.5)
    post = ImportanceSampling(n_samples=10_000).fit(model, seed=0)
    assert model.dim == 20
    assert post.diagnostics["khat"] > 0.7
    assert post.diagnostics["kish_ess"] < 2.0  # one particle carries (almost) all the weight
    assert post.diagnostics["log_evidence"] < model.log_evidence() - 100  # and the estimate is useless


def test_the_exact_posterior_as_proposal_gives_equal_weights(few_points):
    # q = p(θ | D) makes every weight p(θ, D) / p(θ | D) = p(D): zero variance
    for proposal in (
        few_points.exact_posterior(),
        MultivariateNormal(few_points.exact_posterior().mean, few_points.exact_posterior().cov),
    ):
        post = ImportanceSampling(n_samples=500, proposal=proposal, batch_size=128).fit(few_points, seed=0)
        np.testing.assert_allclose(post.log_weights, few_points.log_evidence(), rtol=1e-10)
        np.testing.assert_allclose(post.diagnostics["log_evidence"], few_points.log_evidence(), rtol=1e-10)
        np.testing.assert_allclose(post.diagnostics["kish_ess"], 500, rtol=1e-9)


def test_a_diagonal_gaussian_posterior_becomes_a_normal_proposal(few_points):
    exact = few_points.exact_posterior()
    fit = GaussianPosterior(exact.mean, std=2 * exact.std)  # e.g. an inflated VI fit
    proposal = as_proposal(fit, few_points.dim)
    assert isinstance(proposal, Normal)
    np.testing.assert_allclose(proposal.std, 2 * exact.std, rtol=1e-12)
    full = as_proposal(exact, few_points.dim)
    assert isinstance(full, MultivariateNormal)
    np.testing.assert_allclose(full.cov, exact.cov, rtol=1e-12)
    post = ImportanceSampling(n_samples=4000, proposal=fit).fit(few_points, seed=1)
    # a good proposal: nearly all particles count, and the evidence is tight
    assert post.diagnostics["kish_ess"] > 0.4 * 4000
    assert abs(post.diagnostics["log_evidence"] - few_points.log_evidence()) < N_SE * log_evidence_se(post.log_weights)


def test_batches_history_cost_and_seeding(few_points):
    method = ImportanceSampling(n_samples=2500, batch_size=1000)
    post = method.fit(few_points, seed=3)
    assert method.n_main_steps == 3
    np.testing.assert_array_equal(post.history["n_particles"], [1000, 2000, 2500])
    np.testing.assert_allclose(post.history["log_evidence"][-1], post.diagnostics["log_evidence"], rtol=1e-12)
    np.testing.assert_allclose(post.history["kish_ess"][-1], post.diagnostics["kish_ess"], rtol=1e-9)
    assert post.particles.shape == (2500, few_points.dim) and post.log_weights.shape == (2500,)
    assert post.cost.density_evals == 2500 and post.cost.grad_evals == 0
    again = method.fit(few_points, seed=3)
    np.testing.assert_array_equal(post.particles, again.particles)
    np.testing.assert_array_equal(post.log_weights, again.log_weights)
    assert not np.array_equal(post.particles, method.fit(few_points, seed=4).particles)
    assert method.with_budget(700).n_samples == 700

    rng = np.random.default_rng(0)
    state = method.init(few_points, None, rng)
    assert isinstance(state, ImportanceState) and state.n_particles == 0
    state, info = method.step(few_points, state, rng)
    assert isinstance(info, ImportanceInfo) and state.particles.shape == (1000, few_points.dim)


def test_errors_name_the_problem(few_points):
    with pytest.raises(ValueError, match="prior_distribution"):
        ImportanceSampling(n_samples=10).fit(targets.Gaussian(), seed=0)
    with pytest.raises(ValueError, match="dimension 3.*dim=2"):
        ImportanceSampling(proposal=Normal(np.zeros(3), 1.0)).fit(few_points, seed=0)
    with pytest.raises(TypeError, match="proposal"):
        ImportanceSampling(proposal="prior")
    with pytest.raises(ValueError, match="init"):
        ImportanceSampling().fit(few_points, seed=0, init=np.zeros(2))
    for setting, value in [("n_samples", 0), ("n_samples", 2.5), ("batch_size", -1)]:
        with pytest.raises(ValueError, match=setting):
            ImportanceSampling(**{setting: value})


def test_a_proposal_for_a_target_without_a_prior():
    target = targets.Mixture()
    wide = Normal(np.zeros(2), 4.0)
    post = ImportanceSampling(n_samples=20_000, proposal=wide).fit(target, seed=0)
    # the target is normalised, so the evidence is exactly 1: log Ẑ ≈ 0
    assert abs(post.diagnostics["log_evidence"]) < N_SE * log_evidence_se(post.log_weights)
