"""The engine's ELBO gradients equal the chain rule written out by hand (approxpost.by_hand) to 1e-10."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import approxpost as ap
from approxpost import autodiff as ad
from approxpost.by_hand import bbb_loss_grad_by_hand, reparam_grad_by_hand
from approxpost.distributions import MeanFieldNormal
from approxpost.estimators import reparam_grad

RTOL = 1e-10


class _CauchyPriorRegression(ap.models.LinearRegression):
    """A conjugate-free prior (independent Cauchy) so BBB's KL must be estimated by Monte Carlo."""

    def log_prior(self, theta):
        return -ad.sum(ad.log1p(ad.square(theta)), axis=-1) - self.dim * np.log(np.pi)

    def prior_distribution(self):
        return None


@pytest.fixture(scope="module")
def mlp():
    data = ap.datasets.gap_regression(n=24, seed=0)
    return ap.models.Regression(ap.nn.MLP([1, 6, 1]), data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


@pytest.fixture(scope="module")
def classifier():
    data = ap.datasets.two_moons(n=24, seed=0)
    return ap.models.Classification(ap.nn.MLP([2, 5, 2]), data.x, data.y, prior_std=1.0)


@pytest.fixture(scope="module")
def cauchy(linear):
    return _CauchyPriorRegression(linear.x, linear.y, noise_std=1.0, prior_std=1.0)


def _random_q(seed: int, dim: int) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.7, dim), rng.normal(-1.5, 0.8, dim)


def _assert_same(engine, hand):
    assert engine[0] == pytest.approx(hand[0], rel=RTOL) and engine[1] == pytest.approx(hand[1], rel=RTOL, abs=1e-12)
    np.testing.assert_allclose(engine[2], hand[2], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(engine[3], hand[3], rtol=RTOL, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), n_mc=st.integers(1, 5))
def test_reparam_grad_equals_the_hand_written_chain_rule(linear, seed, n_mc):
    mu, rho = _random_q(seed, linear.dim)
    q = MeanFieldNormal(mu, rho)
    engine, hand = reparam_grad(linear, q, n_mc=n_mc, seed=seed), reparam_grad_by_hand(linear, q, n_mc=n_mc, seed=seed)
    np.testing.assert_allclose(engine.mu, hand.mu, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(engine.rho, hand.rho, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("model_name", ["mlp", "classifier"])
@pytest.mark.parametrize("local_reparam", [False, True])
@pytest.mark.parametrize("batch_size", [None, 7])
@given(seed=st.integers(0, 2**32 - 1))
def test_bbb_loss_gradient_equals_the_hand_written_one(request, model_name, local_reparam, batch_size, seed):
    mlp = request.getfixturevalue(model_name)  # a regression MLP, or a classifier (local reparam via its outputs)
    method = ap.BayesByBackprop(n_mc=3, local_reparam=local_reparam, batch_size=batch_size, hand_gradient=False)
    mu, rho = _random_q(seed, mlp.dim)
    idx = None if batch_size is None else np.random.default_rng(seed).permutation(mlp.n_data)[:batch_size]
    weight = method.kl_weight_for(mlp)
    engine = method.loss_grad(mlp, mu, rho, np.random.default_rng(seed), idx)
    hand = bbb_loss_grad_by_hand(mlp, mu, rho, np.random.default_rng(seed), 3, idx, weight, local_reparam)
    _assert_same(engine, hand)
    by_flag = ap.BayesByBackprop(n_mc=3, local_reparam=local_reparam, batch_size=batch_size, hand_gradient=True)
    _assert_same(by_flag.loss_grad(mlp, mu, rho, np.random.default_rng(seed), idx), hand)


@pytest.mark.parametrize("batch_size", [None, 6])
@given(seed=st.integers(0, 2**32 - 1))
def test_bbb_monte_carlo_kl_gradient_equals_the_hand_written_one(cauchy, batch_size, seed):
    method = ap.BayesByBackprop(n_mc=4, batch_size=batch_size, hand_gradient=False)
    mu, rho = _random_q(seed, cauchy.dim)
    idx = None if batch_size is None else np.random.default_rng(seed).permutation(cauchy.n_data)[:batch_size]
    engine = method.loss_grad(cauchy, mu, rho, np.random.default_rng(seed), idx)
    hand = bbb_loss_grad_by_hand(cauchy, mu, rho, np.random.default_rng(seed), 4, idx, method.kl_weight_for(cauchy))
    _assert_same(engine, hand)


def test_the_engine_and_hand_gradients_fit_the_same_posterior(linear):
    engine = ap.BayesByBackprop(n_mc=2, n_steps=50, hand_gradient=False).fit(linear, seed=0)
    hand = ap.BayesByBackprop(n_mc=2, n_steps=50, hand_gradient=True).fit(linear, seed=0)
    np.testing.assert_allclose(engine.mean, hand.mean, rtol=1e-8)
    np.testing.assert_allclose(engine.std, hand.std, rtol=1e-8)
    assert engine.cost.grad_evals == hand.cost.grad_evals == 100
