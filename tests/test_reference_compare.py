"""compare(..., reference=): distances of each method's predictive to a reference posterior's."""

import numpy as np
import pytest

import approxpost as ap
from approxpost.compare import reference_metrics


@pytest.fixture(scope="module")
def conjugate():
    data = ap.datasets.linear(n=25, noise_std=0.5, seed=1)
    model = ap.models.LinearRegression(data.x, data.y, noise_std=0.5, prior_std=1.0)
    return data, model, model.exact_posterior()


def _mc_floor(exact, x, n_samples, n_reference):
    """4 × the Monte Carlo size of W2 between two independent estimates of the same Gaussian-mixture predictive.

    Per input, Δmean has variance v_f (1/S + 1/R) and Δstd ≈ Δvar / (2 s) with Var(var̂) ≈ 2 v_f² / S
    (f is Gaussian here), so E W2_i ≤ √((1/S + 1/R)(v_f + v_f² / (2 s²))). Four times its mean over
    inputs bounds the mean even if all inputs move together (|Z| > 4 has probability 6e-5).
    """
    many = exact.predict(x, n_samples=50_000, seed=123)
    v_f, s2 = many.epistemic_std[:, 0] ** 2, many.std[:, 0] ** 2
    inv = 1.0 / n_samples + 1.0 / n_reference
    return 4.0 * float(np.mean(np.sqrt(inv * (v_f + v_f**2 / (2.0 * s2)))))


def test_the_exact_posterior_is_at_distance_zero_from_itself_with_the_same_draws(conjugate):
    data, _, exact = conjugate
    same = exact.predict(data.x_test, n_samples=200, seed=0)
    assert reference_metrics(exact, same, data.x_test, n_samples=200, seed=0) == {"w2_reference": 0.0}


def test_the_exact_posterior_is_within_monte_carlo_error_of_itself_with_fresh_draws(conjugate):
    data, _, exact = conjugate
    floor = _mc_floor(exact, data.x_test, 200, 1000)
    for seed in range(5):
        reference = exact.predict(data.x_test, n_samples=1000, seed=1000 + seed)
        w2 = reference_metrics(exact, reference, data.x_test, n_samples=200, seed=seed)["w2_reference"]
        assert 0.0 < w2 < floor


def test_a_wrong_posterior_is_further_from_the_reference_than_the_right_one(conjugate):
    data, model, exact = conjugate
    reference = exact.predict(data.x_test, n_samples=1000, seed=7)
    # the mean moved by 5 posterior sd in every coordinate, the spread right: obviously wrong
    shifted = ap.GaussianPosterior(exact.mean + 5.0 * exact.std, std=exact.std, model=model)
    right = reference_metrics(exact, reference, data.x_test, seed=0)["w2_reference"]
    wrong = reference_metrics(shifted, reference, data.x_test, seed=0)["w2_reference"]
    assert right < _mc_floor(exact, data.x_test, 200, 1000) < wrong
    # and its distance is at least the mean shift of f = xᵀθ, less the Monte Carlo floor
    shift = np.mean(np.abs(model.predict((shifted.mean - exact.mean)[None], data.x_test)[0, :, 0]))
    assert wrong > shift - _mc_floor(exact, data.x_test, 200, 1000)


def test_compare_adds_the_w2_column_recomputed_here(conjugate):
    data, model, exact = conjugate
    methods = {
        "HMC": ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=300, n_warmup=200, n_chains=2),
        # five VI steps from the initial guess: nowhere near the posterior yet
        "BBB (5 steps)": ap.BayesByBackprop(n_mc=2, n_steps=5, learning_rate=1e-3),
    }
    result = ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, reference=exact)
    reference = exact.predict(data.x_test, n_samples=1000, seed=0)
    for name, post in result.posteriors.items():
        pred = post.predict(data.x_test, n_samples=200, seed=0)
        assert result.table[name]["w2_reference"] == ap.metrics.predictive_w2(pred, reference)
    assert result.table["HMC"]["w2_reference"] < 0.5 * result.table["BBB (5 steps)"]["w2_reference"]
    assert "W2 to reference" in result.to_markdown()
    without = ap.compare(model, {"HMC": methods["HMC"]}, test=(data.x_test, data.y_test), seed=0)
    assert "w2_reference" not in without.table["HMC"] and "W2 to reference" not in without.to_markdown()


def test_a_classifier_gets_agreement_and_tv_to_the_reference():
    data = ap.datasets.two_moons(n=60, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 6, 2]), data.x, data.y)
    hmc = ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=200, n_warmup=100, n_chains=2)
    reference = hmc.fit(model, seed=1)
    methods = {"HMC": hmc, "MAP (3 steps)": ap.MAP(n_steps=3, learning_rate=1e-3)}
    result = ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, reference=reference)
    ref_pred = reference.predict(data.x_test, n_samples=1000, seed=0)
    for name, post in result.posteriors.items():
        probs = post.predict(data.x_test, n_samples=200, seed=0).probs
        assert result.table[name]["agreement"] == ap.metrics.agreement(probs, ref_pred.probs)
        assert result.table[name]["tv_reference"] == ap.metrics.total_variation(probs, ref_pred.probs)
    hmc_row, map_row = result.table["HMC"], result.table["MAP (3 steps)"]
    assert hmc_row["tv_reference"] < map_row["tv_reference"] and hmc_row["agreement"] > map_row["agreement"]
    markdown = result.to_markdown()
    assert "agreement" in markdown and "TV to reference" in markdown and "W2 to reference" not in markdown
    # the reference against itself with the same draws: full agreement, no distance
    same = reference_metrics(reference, reference.predict(data.x_test, seed=0), data.x_test, seed=0)
    assert same == {"agreement": 1.0, "tv_reference": 0.0}


def test_a_reference_of_another_model_is_a_clear_error(conjugate):
    data, model, exact = conjugate
    one = {"MAP": ap.MAP(n_steps=5)}
    test = (data.x_test, data.y_test)
    net = ap.models.Regression(ap.nn.MLP([1, 3, 1]), data.x, data.y, noise_std=0.5)
    bnn_ref = ap.GaussianPosterior(np.zeros(net.dim), std=np.ones(net.dim), model=net)
    with pytest.raises(ValueError, match=rf"dim={net.dim} but model has dim={model.dim}"):
        ap.compare(model, one, test=test, reference=bnn_ref)
    with pytest.raises(ValueError, match="reference has model=None"):
        ap.compare(model, one, test=test, reference=ap.GaussianPosterior(exact.mean, std=exact.std))
    with pytest.raises(ValueError, match="reference= needs test="):
        ap.compare(model, one, reference=exact)
    with pytest.raises(TypeError, match="reference must be a Posterior"):
        ap.compare(model, one, test=test, reference=np.zeros(model.dim))
    with pytest.raises(ValueError, match="reference_samples"):
        ap.compare(model, one, test=test, reference=exact, reference_samples=0)


def test_a_classifier_reference_for_a_regression_is_a_clear_error(conjugate):
    data, model, exact = conjugate
    moons = ap.datasets.two_moons(n=20, seed=0)
    clf = ap.models.Classification(ap.nn.MLP([2, 3, 2]), moons.x, moons.y)
    clf_pred = ap.GaussianPosterior(np.zeros(clf.dim), std=np.ones(clf.dim), model=clf).predict(moons.x_test)
    with pytest.raises(TypeError, match="classifier's but posterior's model is a regression"):
        reference_metrics(exact, clf_pred, moons.x_test[:, :1])
