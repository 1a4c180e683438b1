"""BBVI against the conjugate linear-regression posterior, plus its contract: seeding, history, cost, errors."""

import dataclasses

import numpy as np
import pytest

from approxpost.distributions import MeanFieldNormal
from approxpost.methods.bbvi import BBVI, BBVIInfo, BBVIState

N_SE = 4.0


@pytest.fixture(scope="module")
def fitted(linear):
    method = BBVI(n_mc=16, n_steps=3000, learning_rate=3e-3)
    return method, method.fit(linear, seed=0)


def test_converges_to_the_mean_field_optimum(linear, fitted):
    _, post = fitted
    exact = linear.exact_posterior()
    # for a Gaussian target the best mean-field q has the exact mean and std 1/sqrt(diag Λ)
    optimum_std = 1.0 / np.sqrt(np.diag(linear.posterior_precision()))
    assert np.all(np.abs(post.mean - exact.mean) <= 0.1 * optimum_std)
    np.testing.assert_allclose(post.std, optimum_std, rtol=0.1)
    assert np.all(optimum_std < exact.std)  # the correlated posterior: mean field underestimates the spread


def test_final_elbo_is_below_the_log_evidence(linear, fitted):
    _, post = fitted
    elbo, mcse = post.diagnostics["final_elbo"], post.diagnostics["final_elbo_mcse"]
    log_z = linear.log_evidence()
    assert elbo <= log_z + N_SE * mcse
    # and equals E_q[log p(θ, D)] + H[q] at the returned q, computed in closed form
    precision, mean, dim = linear.posterior_precision(), linear.exact_posterior().mean, linear.dim
    diff, sigma = post.mean - mean, post.std
    exact_elbo = (
        log_z
        - 0.5 * dim * np.log(2 * np.pi)
        + 0.5 * np.linalg.slogdet(precision)[1]
        - 0.5 * (np.sum(np.diag(precision) * sigma**2) + diff @ precision @ diff)
        + np.sum(np.log(sigma))
        + 0.5 * dim * (np.log(2 * np.pi) + 1.0)
    )
    assert abs(elbo - exact_elbo) <= N_SE * mcse
    assert exact_elbo < log_z


def test_history_and_cost(fitted):
    method, post = fitted
    assert set(post.history) == {"elbo", "grad_norm", "warmup"}
    for key in ("elbo", "grad_norm"):
        assert post.history[key].shape == (method.n_steps,) and np.all(np.isfinite(post.history[key]))
    # the ELBO climbs: the last 100 steps beat the first 100 on average
    assert post.history["elbo"][-100:].mean() > post.history["elbo"][:100].mean()
    # score-function BBVI only evaluates the density; the final ELBO is a diagnostic, not billed
    assert post.cost.density_evals == method.n_steps * method.n_mc
    assert post.cost.grad_evals == 0
    assert method.evals_per_step(None) == method.n_mc
    assert method.with_budget(1600).n_steps == 100


def test_steps_by_hand_reproduce_fit(linear):
    method = BBVI(n_mc=4, n_steps=25)
    init = np.zeros(linear.dim)
    post = method.fit(linear, seed=3, init=init)
    rng = np.random.default_rng(3)
    state = method.init(linear, init, rng)
    assert isinstance(state, BBVIState)
    for _ in range(method.n_steps):
        state, info = method.step(linear, state, rng)
    assert isinstance(info, BBVIInfo)
    np.testing.assert_array_equal(post.mean, state.mu)
    np.testing.assert_array_equal(post.std, MeanFieldNormal(state.mu, state.rho).std)


def test_same_seed_same_result_and_inputs_untouched(linear):
    method = BBVI(n_mc=4, n_steps=50)
    init = np.full(linear.dim, 0.5)
    first, second = method.fit(linear, seed=7, init=init), method.fit(linear, seed=7, init=init)
    np.testing.assert_array_equal(first.mean, second.mean)
    np.testing.assert_array_equal(first.std, second.std)
    np.testing.assert_array_equal(first.history["elbo"], second.history["elbo"])
    assert first.diagnostics == second.diagnostics
    np.testing.assert_array_equal(init, 0.5)
    assert not np.array_equal(first.mean, method.fit(linear, seed=8, init=init).mean)


def test_control_variate_lowers_the_gradient_noise(linear):
    q0 = np.zeros(linear.dim)
    noisy = BBVI(n_mc=16, n_steps=200, control_variate=False).fit(linear, seed=0, init=q0)
    steady = BBVI(n_mc=16, n_steps=200, control_variate=True).fit(linear, seed=0, init=q0)
    assert np.median(steady.history["grad_norm"]) < np.median(noisy.history["grad_norm"])


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"n_mc": 0}, "n_mc"),
        ({"n_mc": 1}, "n_mc"),  # the leave-one-out baseline needs two draws
        ({"n_steps": -5}, "n_steps"),
        ({"n_steps": 2.5}, "n_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"control_variate": "yes"}, "control_variate"),
    ],
)
def test_bad_settings_raise_naming_the_setting(settings, name):
    with pytest.raises(ValueError, match=name):
        BBVI(**settings)


def test_bad_start_raises(linear):
    with pytest.raises(ValueError, match=r"init.*\(3,\).*\(2,\)"):
        BBVI(n_steps=5).fit(linear, seed=0, init=np.zeros(2))
    with pytest.raises(ValueError, match="not finite"):
        BBVI(n_steps=5).fit(linear, seed=0, init=np.array([np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="n_evals"):
        BBVI(n_mc=16).with_budget(8)
    assert dataclasses.replace(BBVI(), n_mc=2, control_variate=True).n_mc == 2
