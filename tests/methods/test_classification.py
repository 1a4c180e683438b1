"""Every method fits a two-moons MLP classifier: accuracy, posterior uncertainty away from the data, BBB's options.

Chance is 50%; a 2-10-2 network separates the moons at ~97%, so each
method is held to 85% on 100 fresh test points (seeded, deterministic).
"""

import numpy as np
import pytest

import approxpost as ap
from approxpost import estimators as est
from approxpost.distributions import MeanFieldNormal
from approxpost.predictive import ClassPredictive

N_SE = 4.0
METHODS = {
    "Metropolis": ap.Metropolis(step_size=0.02, n_samples=3000, n_warmup=2000, n_chains=4),
    "HMC": ap.HMC(step_size=0.05, n_leapfrog=10, n_samples=300, n_warmup=200, n_chains=4),
    "IS": ap.ImportanceSampling(n_samples=5000),
    "BBVI": ap.BBVI(n_mc=16, n_steps=1500, learning_rate=2e-2, control_variate=True),
    "BBB": ap.BayesByBackprop(n_mc=2, n_steps=1500, learning_rate=2e-2),
    "BBB local reparam, minibatches": ap.BayesByBackprop(
        n_mc=2, n_steps=1500, learning_rate=2e-2, local_reparam=True, batch_size=25
    ),
}
# points on a circle of radius 6 around the moons' centre: nowhere near the data
ANGLES = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
FAR = np.column_stack([0.5 + 6.0 * np.cos(ANGLES), 0.25 + 6.0 * np.sin(ANGLES)])


@pytest.fixture(scope="module")
def moons():
    return ap.datasets.two_moons(n=100, seed=0)


@pytest.fixture(scope="module")
def model(moons):
    return ap.models.Classification(ap.nn.MLP([2, 10, 2], activation="tanh"), moons.x, moons.y, prior_std=1.0)


@pytest.fixture(scope="module")
def fits(model):
    return {name: method.fit(model, seed=0) for name, method in METHODS.items()}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_classifies_the_moons(fits, moons, name):
    pred = fits[name].predict(moons.x_test, n_samples=200, seed=0)
    assert isinstance(pred, ClassPredictive) and pred.probs.shape == (100, 2)
    assert pred.accuracy(moons.y_test) >= 0.85
    # better than the uninformed 50/50 predictive's log 0.5 per point
    assert pred.log_density(moons.y_test) > np.log(0.5) + 0.2
    assert ap.metrics.accuracy(pred.probs, moons.y_test) == pred.accuracy(moons.y_test)


def test_hmc_is_unsure_far_from_the_data_where_a_point_estimate_is_not(fits, model):
    post = fits["HMC"]
    draws = post.draws.reshape(-1, model.dim)
    best = draws[np.argmax(model.log_joint(draws))]  # the highest-density draw: a MAP-like point estimate
    point = ClassPredictive(model.predict_proba(best, FAR))
    bayes = post.predict(FAR, n_samples=400, seed=0)
    assert bayes.entropy.mean() > 2 * point.entropy.mean()
    # the extra entropy is epistemic: the draws disagree there
    assert bayes.mutual_information.mean() > 0.05  # measured 0.11 of a total 0.22 nats
    assert np.mean(bayes.probs.max(axis=1)) < np.mean(point.probs.max(axis=1))


def test_local_reparameterisation_is_unbiased_on_a_classifier(fits, model):
    bbb = fits["BBB"]
    q = MeanFieldNormal.from_std(bbb.mean, bbb.std)
    n = 300
    weights = est.grad_variance(est.reparam_grad, model, q, n_mc=4, n_repeats=n, seed=0)
    local = est.grad_variance(est.local_reparam_grad, model, q, n_mc=4, n_repeats=n, seed=1)
    se = np.sqrt(weights.var / n + local.var / n)
    assert np.all(np.abs(local.mean - weights.mean) <= N_SE * se)
    # and, as on regression, with a much smaller spread
    assert local.total_variance < 0.25 * weights.total_variance


def test_bbb_minibatch_epoch_sums_to_the_full_gradient(model):
    mu = model.init(np.random.default_rng(0), 1)[0]
    sigma = np.full(model.dim, 0.05)
    minibatch, full = ap.BayesByBackprop(n_mc=2, batch_size=25), ap.BayesByBackprop(n_mc=2)
    order = np.random.default_rng(1).permutation(model.n_data)
    parts = [
        minibatch.loss_grad(model, mu, sigma, np.random.default_rng(2), order[i : i + 25]) for i in range(0, 100, 25)
    ]
    whole = full.loss_grad(model, mu, sigma, np.random.default_rng(2))
    np.testing.assert_allclose(sum(p[2] for p in parts), whole[2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sum(p[3] for p in parts), whole[3], rtol=1e-10, atol=1e-12)


def test_a_classifier_posterior_saves_and_loads(fits, model, moons, tmp_path):
    for name in ("HMC", "IS", "BBB"):
        post = fits[name]
        path = tmp_path / f"{name}.npz"
        post.save(path)
        loaded = ap.load(path, model=model)
        assert type(loaded) is type(post)
        np.testing.assert_array_equal(loaded.mean, post.mean)
        a = post.predict(moons.x_test, n_samples=50, seed=0)
        b = loaded.predict(moons.x_test, n_samples=50, seed=0)
        np.testing.assert_array_equal(a.probs, b.probs)
