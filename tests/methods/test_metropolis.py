"""Random-walk Metropolis against known posteriors (conjugate regression, correlated Gaussian),
its invariance, its step-size adaptation and its contract: seeding, shapes, cost, errors."""

import dataclasses

import numpy as np
import pytest

from approxpost import targets
from approxpost.diagnostics import mcse
from approxpost.methods.metropolis import Metropolis, MetropolisInfo, MetropolisState

N_SE = 4.0


def assert_moments(draws, mean, cov):
    """Mean and every (co)variance within 4 MCSE of the truth; std resolved to 10%.

    The covariance is estimated as the average of (θ − μ)(θ − μ)ᵀ with the
    exact μ, so each entry is a plain mean whose MCSE ``mcse`` gives
    (HMC's ESS for the mean can exceed the number of draws; for squares it
    does not, so each quantity gets its own MCSE).
    """
    n_chains, n_draws, dim = draws.shape
    centred = draws - mean
    assert np.all(np.abs(centred.mean(axis=(0, 1))) < N_SE * mcse(draws))
    products = (centred[..., :, None] * centred[..., None, :]).reshape(n_chains, n_draws, dim * dim)
    estimate = products.mean(axis=(0, 1)).reshape(dim, dim)
    se = mcse(products).reshape(dim, dim)
    assert np.all(np.abs(estimate - cov) < N_SE * se)
    # the check is sharp enough to mean something: std known to better than 10% (δσ/σ ≈ δσ²/2σ²)
    assert np.all(N_SE * np.diag(se) / (2 * np.diag(cov)) < 0.1)
    np.testing.assert_allclose(np.sqrt(np.diag(estimate)), np.sqrt(np.diag(cov)), rtol=0.1)


@pytest.fixture(scope="module")
def linear_fit(line):
    method = Metropolis(step_size=0.05, n_samples=5000, n_warmup=1000, n_chains=4)
    return method, method.fit(line, seed=0)


def test_recovers_the_conjugate_posterior(line, linear_fit):
    _, post = linear_fit
    exact = line.exact_posterior()
    assert_moments(post.draws, exact.mean, exact.cov)
    assert np.all(post.diagnostics["rhat"] < 1.01)


def test_recovers_a_correlated_gaussian():
    target = targets.Gaussian()
    post = Metropolis(n_samples=10_000, n_warmup=1000, n_chains=4).fit(target, seed=1)
    assert_moments(post.draws, target.mean, target.cov)


def test_adaptation_reaches_the_target_acceptance(linear_fit):
    method, post = linear_fit
    history = post.history
    kept = history["accept_prob"][~history["warmup"]]
    # MCSE of the mean acceptance probability over chains × iterations
    se = mcse(kept.T)
    assert se < 0.005
    # the adapted ε̄ averages the dual-averaging iterates, which hit the target only
    # asymptotically: after 1000 warm-up iterations log ε̄ is within a few percent of the
    # root, moving the acceptance by < 0.02 here; 0.03 leaves room for the MCSE
    assert abs(post.diagnostics["acceptance_rate"] - method.target_accept) < 0.03
    np.testing.assert_allclose(post.diagnostics["acceptance_rate"], kept.mean(), rtol=1e-12)
    # the step size is fixed after warm-up, and it moved away from the starting 0.05
    assert np.ptp(history["step_size"][~history["warmup"]]) == 0
    assert history["step_size"][-1] > 2 * method.step_size


def test_without_adaptation_the_step_size_stays_put(line):
    post = Metropolis(step_size=0.02, n_samples=50, n_warmup=50, adapt_step_size=False).fit(line, seed=0)
    np.testing.assert_array_equal(post.history["step_size"], 0.02)


def test_a_step_leaves_the_target_invariant():
    # 20 000 chains started at exact draws stay exactly distributed after 10 steps, so
    # their moments match the truth within the i.i.d. standard error
    target, n = targets.Banana(), 20_000
    rng = np.random.default_rng(3)
    method = Metropolis(step_size=1.5, n_chains=n)
    state = method.init(target, target.sample(rng, n), rng)
    for _ in range(10):
        state, info = method.step(target, state, rng)
    assert 0.1 < info.accept_prob.mean() < 0.9  # the kernel really moves
    theta = state.position
    se_mean = theta.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(theta.mean(axis=0) - target.mean) < N_SE * se_mean)
    second = (theta - target.mean) ** 2
    assert np.all(np.abs(second.mean(axis=0) - np.diag(target.cov)) < N_SE * second.std(axis=0) / np.sqrt(n))


def test_same_seed_gives_identical_draws_and_another_seed_does_not(line):
    method = Metropolis(n_samples=200, n_warmup=100, n_chains=3)
    a, b, c = method.fit(line, seed=7), method.fit(line, seed=7), method.fit(line, seed=8)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.history["log_joint"], b.history["log_joint"])
    assert not np.array_equal(a.draws, c.draws)


def test_history_shapes_cost_and_step_by_step_use(line):
    method = Metropolis(n_samples=30, n_warmup=20, n_chains=3)
    post = method.fit(line, seed=0)
    assert post.draws.shape == (3, 30, line.dim)
    assert post.history["log_joint"].shape == (50, 3) and post.history["step_size"].shape == (50,)
    np.testing.assert_array_equal(post.history["warmup"], np.arange(50) < 20)
    assert all(np.all(np.isfinite(v)) for v in post.history.values())
    # one density evaluation per chain at the start and per iteration, no gradients
    assert post.cost.density_evals == 3 * (1 + 50) and post.cost.grad_evals == 0
    assert set(post.diagnostics) >= {"acceptance_rate", "ess", "rhat"}

    rng = np.random.default_rng(0)
    state = method.init(line, np.zeros(line.dim), rng)
    assert isinstance(state, MetropolisState) and state.position.shape == (3, line.dim)
    state, info = method.step(line, state, rng)
    assert isinstance(info, MetropolisInfo) and info.accept_prob.shape == (3,)
    np.testing.assert_allclose(state.log_joint, line.log_joint(state.position), rtol=1e-13)


def test_with_budget_spends_about_the_budget(line):
    method = Metropolis(n_samples=400, n_warmup=100, n_chains=4).with_budget(2000)
    assert isinstance(method, Metropolis) and method.n_warmup / method.n_samples == pytest.approx(0.25, abs=0.01)
    cost = method.fit(line, seed=0).cost.density_evals
    assert 2000 - method.evals_per_step(line) < cost <= 2000
    with pytest.raises(ValueError, match="n_evals"):
        method.with_budget(10)


def test_init_is_broadcast_validated_and_left_untouched(line):
    method = Metropolis(n_samples=10, n_warmup=0, n_chains=2)
    start = np.array([0.1, -0.2])
    post = method.fit(line, seed=0, init=start)
    np.testing.assert_array_equal(start, [0.1, -0.2])
    assert post.draws.shape == (2, 10, 2)
    with pytest.raises(ValueError, match=r"init.*\(2, 2\).*\(3, 2\)"):
        method.fit(line, seed=0, init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not finite"):
        method.fit(line, seed=0, init=[np.nan, 0.0])
    with pytest.raises(ValueError, match="not finite"):
        method.init(line, np.array([[0.0, 0.0], [np.inf, 0.0]]), np.random.default_rng(0))


@pytest.mark.parametrize(
    "setting, value",
    [
        ("step_size", 0.0),
        ("step_size", -0.1),
        ("step_size", np.nan),
        ("n_samples", 0),
        ("n_samples", 2),
        ("n_warmup", -1),
        ("n_chains", 0),
        ("n_chains", 1.5),
        ("adapt_step_size", "yes"),
        ("target_accept", 1.5),
    ],
)
def test_bad_settings_name_themselves(setting, value):
    with pytest.raises(ValueError, match=setting):
        Metropolis(**{setting: value})
    with pytest.raises(ValueError, match=setting):
        dataclasses.replace(Metropolis(), **{setting: value})
