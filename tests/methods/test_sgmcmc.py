"""SGLD and SGHMC against the conjugate posterior (small step, full batch), the step-size bias SGLD must show
(its exact value on a Gaussian), minibatches, the cyclical schedule, and bad settings."""

import numpy as np
import pytest
from scipy import linalg

import approxpost as ap
from approxpost.diagnostics import mcse
from approxpost.methods.sgmcmc import cyclical_step_size

N_SE = 4.0


def stationary_std(model, step_size):
    """The exact stationary std of full-batch SGLD on a Gaussian: Σ = AΣAᵀ + εI with A = I − εΛ/2."""
    a = np.eye(model.dim) - 0.5 * step_size * model.posterior_precision()
    return np.sqrt(np.diag(linalg.solve_discrete_lyapunov(a, step_size * np.eye(model.dim))))


@pytest.mark.parametrize(
    "method",
    [
        ap.SGLD(step_size=1e-3, n_samples=5000, n_warmup=500, n_chains=4),
        ap.SGHMC(step_size=1e-3, friction=0.5, n_samples=5000, n_warmup=500, n_chains=4),
    ],
    ids=["SGLD", "SGHMC"],
)
def test_small_full_batch_step_recovers_the_conjugate_posterior(line, method):
    post = method.fit(line, seed=1)
    exact = line.exact_posterior()
    assert post.draws.shape == (4, 5000, line.dim)
    assert np.all(np.abs(post.mean - exact.mean) < N_SE * mcse(post.draws))
    np.testing.assert_allclose(post.std, exact.std, rtol=0.1)
    assert np.all(post.diagnostics["rhat"] < 1.05)


def test_sgld_bias_grows_with_the_step_size_as_predicted(line):
    """The teaching point: no accept step, so the chain's spread is inflated, more so for larger ε."""
    exact = line.exact_posterior().std
    ratios = []
    for step_size in (1e-3, 1e-2, 2e-2):
        post = ap.SGLD(step_size=step_size, n_samples=10_000, n_warmup=500, n_chains=4).fit(line, seed=0)
        predicted = stationary_std(line, step_size)
        # the variance estimate's MCSE, carried to the std: δσ ≈ δσ²/2σ
        centred = post.draws - post.mean
        se = mcse(centred**2) / (2 * post.std)
        assert np.all(np.abs(post.std - predicted) < N_SE * se)
        ratios.append(post.std / exact)
    ratios = np.array(ratios)
    assert np.all(np.diff(ratios, axis=0) > 0)
    assert np.all(ratios[-1] > 1.3)  # clearly biased at the largest step


def test_minibatch_gradients_still_find_the_posterior(line):
    post = ap.SGLD(step_size=1e-3, batch_size=10, n_samples=5000, n_warmup=500).fit(line, seed=2)
    exact = line.exact_posterior()
    # minibatch noise adds its own (step-size dependent) spread: tolerance from the MCSE and 10% on the std
    assert np.all(np.abs(post.mean - exact.mean) < N_SE * mcse(post.draws))
    np.testing.assert_allclose(post.std, exact.std, rtol=0.1)


def test_cyclical_schedule_follows_zhang_et_al():
    eps, fraction = cyclical_step_size(0.1, np.arange(8), n_iterations=8, n_cycles=2)
    np.testing.assert_allclose(eps[[0, 4]], 0.1)
    np.testing.assert_allclose(eps[[2, 6]], 0.05)
    np.testing.assert_allclose(fraction, [0, 0.25, 0.5, 0.75] * 2)
    method = ap.SGLD(step_size=1e-3, schedule="cyclical", n_cycles=4, exploration=0.25, n_samples=400, n_warmup=10)
    assert method.schedule_at(5) == (1e-3, True)  # warm-up: constant
    assert method.schedule_at(10)[1] is False  # a cycle starts exploring


def test_cyclical_keeps_only_the_sampling_steps(line):
    method = ap.SGLD(step_size=1e-3, schedule="cyclical", n_cycles=4, exploration=0.5, n_samples=800, n_warmup=100)
    post = method.fit(line, seed=0)
    assert post.draws.shape == (4, 400, line.dim)
    assert post.history["step_size"].shape == (900,)
    assert np.sum(post.history["sampling"][100:]) == 400


def test_same_seed_same_chains_and_init_untouched(line):
    method = ap.SGHMC(step_size=1e-3, friction=0.5, batch_size=7, n_samples=50, n_warmup=10, n_chains=3)
    init = np.zeros((3, line.dim))
    a, b = method.fit(line, seed=5, init=init), method.fit(line, seed=5, init=init)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(init, 0.0)
    assert a.cost.grad_evals == 3 * 60  # one minibatch gradient per chain per step


def test_divergence_is_a_clear_error(line):
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="smaller step_size"):
        ap.SGLD(step_size=10.0, n_samples=500, n_warmup=0).fit(line, seed=0)


@pytest.mark.parametrize(
    "cls, settings",
    [
        (ap.SGLD, {"step_size": 0.0}),
        (ap.SGLD, {"batch_size": 0}),
        (ap.SGLD, {"schedule": "line"}),
        (ap.SGLD, {"n_cycles": 0}),
        (ap.SGLD, {"exploration": 1.0}),
        (ap.SGLD, {"n_samples": 2}),
        (ap.SGLD, {"n_warmup": -1}),
        (ap.SGHMC, {"friction": 0.0}),
        (ap.SGHMC, {"friction": 1.5}),
        (ap.SGHMC, {"friction": True}),
        (ap.SGLD, {"exploration": True}),
        (ap.SGHMC, {"n_chains": 0}),
    ],
)
def test_bad_settings(cls, settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        cls(**settings)


def test_friction_one_is_sgld_with_twice_the_step(line):
    """α = 1: v ← η∇ + N(0, 2η), θ ← θ + v, i.e. SGLD with ε = 2η (one step later)."""
    sghmc = ap.SGHMC(step_size=5e-4, friction=1.0, n_samples=4000, n_warmup=500).fit(line, seed=3)
    np.testing.assert_allclose(sghmc.std, stationary_std(line, 1e-3), rtol=0.1)
