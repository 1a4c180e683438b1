"""Acquisition scores against their definitions, and the active-learning loop's contract."""

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import draw_probabilities

import approxpost as ap
from approxpost import active


def _one_hot_disagreement(k: int) -> ap.ClassPredictive:
    """K draws, draw s certain of class s: p̄ uniform, every draw confident."""
    return ap.ClassPredictive(np.eye(k)[:, None, :])


def test_all_draws_agree_give_zero_bald_variation_ratio_and_std():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    pred = ap.ClassPredictive(np.broadcast_to(p, (6, 2, 3)))
    np.testing.assert_allclose(active.bald(pred), 0.0, atol=1e-15)
    np.testing.assert_allclose(active.variation_ratio(pred), 0.0, atol=1e-15)  # 1 − Σ 1/6 rounds
    np.testing.assert_allclose(active.mean_std(pred), 0.0, atol=1e-15)
    np.testing.assert_allclose(active.max_entropy(pred), -np.sum(p * np.log(p), axis=1), rtol=1e-14)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_confident_disagreement_gives_bald_log_k(k):
    pred = _one_hot_disagreement(k)
    np.testing.assert_allclose(active.bald(pred), np.log(k), rtol=1e-14)
    np.testing.assert_allclose(active.max_entropy(pred), np.log(k), rtol=1e-14)
    np.testing.assert_allclose(active.variation_ratio(pred), 1.0 - 1.0 / k, rtol=1e-14)
    # p_sk is 1 for one draw in K, else 0: sd_k = sqrt((1/K)(1 − 1/K)) for every class
    np.testing.assert_allclose(active.mean_std(pred), np.sqrt((1 / k) * (1 - 1 / k)), rtol=1e-14)


def test_mean_std_is_the_weighted_sd_over_draws():
    samples = np.array([[[0.9, 0.1]], [[0.5, 0.5]], [[0.2, 0.8]]])
    w = np.array([1.0, 2.0, 1.0]) / 4
    pred = ap.ClassPredictive(samples, weights=w * 4)
    p_bar = np.einsum("s,snk->nk", w, samples)
    expected = np.mean([np.sqrt(np.sum(w * (samples[:, 0, k] - p_bar[0, k]) ** 2)) for k in range(2)])
    np.testing.assert_allclose(active.mean_std(pred), [expected], rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(draw_probabilities())
def test_zero_le_bald_le_entropy_le_log_k(case):
    samples, weights = case
    pred = ap.ClassPredictive(samples, weights)
    mi, h = active.bald(pred), active.max_entropy(pred)
    tol = 1e-12
    assert np.all(mi >= -tol) and np.all(mi <= h + tol) and np.all(h <= np.log(samples.shape[-1]) + tol)
    vr, sd = active.variation_ratio(pred), active.mean_std(pred)
    assert np.all((vr >= 0) & (vr <= 1 - 1 / samples.shape[-1] + tol))
    assert np.all((sd >= 0) & (sd <= 0.5 + tol))  # the sd of a [0, 1] variable is at most ½


def test_regression_predictive_scores_are_the_predictive_sd():
    f = np.random.default_rng(0).normal(size=(50, 4, 1))
    pred = ap.Predictive(f, noise_std=0.3)
    s = np.sqrt(f.std(axis=0) ** 2 + 0.09)[:, 0]
    np.testing.assert_allclose(active.mean_std(pred), s, rtol=1e-14)
    np.testing.assert_allclose(active.max_entropy(pred), 0.5 * np.log(2 * np.pi * np.e * s**2), rtol=1e-14)


def test_classification_only_scores_refuse_a_regression_predictive():
    pred = ap.Predictive(np.zeros((2, 3, 1)), noise_std=1.0)
    for score in (active.bald, active.variation_ratio):
        with pytest.raises(TypeError, match="needs a ClassPredictive"):
            score(pred)
    with pytest.raises(TypeError, match="ClassPredictive or a Predictive"):
        active.mean_std(np.zeros((2, 3)))


# --- the loop ------------------------------------------------------------------


@pytest.fixture(scope="module")
def moons():
    train = ap.datasets.two_moons(n=120, noise=0.1, seed=1)
    test = ap.datasets.two_moons(n=200, noise=0.1, seed=2)
    return (train.x, train.y), (test.x, test.y)


def make_moons_model(x, y):
    return ap.models.Classification(ap.nn.MLP([2, 8, 2], activation="tanh"), x, y, prior_std=1.0)


SMALL = dict(n_initial=6, n_rounds=3, batch_size=4)


def _learn(moons, method, acquisition="bald", seed=0, **kwargs):
    pool, test = moons
    return active.learn(
        make_moons_model, method, pool=pool, test=test, acquisition=acquisition, seed=seed, **(SMALL | kwargs)
    )


METHODS = {
    "mc_dropout": ap.MCDropout(p=0.2, n_steps=60, learning_rate=3e-2),
    "ensemble": ap.DeepEnsemble(n_members=3, n_steps=60, learning_rate=3e-2),
    "bbb": ap.BayesByBackprop(n_mc=2, n_steps=60, learning_rate=3e-2),
    "laplace": ap.Laplace(hessian="ggn", n_steps=60, learning_rate=3e-2),
    "map": ap.MAP(n_steps=60, learning_rate=3e-2),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_the_loop_and_labels_distinct_unseen_points(moons, name):
    acquisition = "max_entropy" if name == "map" else "bald"
    curve = _learn(moons, METHODS[name], acquisition)
    np.testing.assert_array_equal(curve.n_labels, [6, 10, 14, 18])
    assert curve.chosen.shape == (3, 4) and curve.initial.shape == (6,)
    labelled = np.concatenate([curve.initial, curve.chosen.ravel()])
    assert np.unique(labelled).size == labelled.size and labelled.max() < 120
    assert np.all((curve.accuracy >= 0) & (curve.accuracy <= 1)) and np.all(np.isfinite(curve.nll))
    assert np.all((curve.ece >= 0) & (curve.ece <= 1))


def test_the_same_seed_gives_the_same_curve_bit_for_bit(moons):
    for acquisition in ("bald", "random"):
        a = _learn(moons, METHODS["mc_dropout"], acquisition, seed=3)
        b = _learn(moons, METHODS["mc_dropout"], acquisition, seed=3)
        for field in active.ActiveCurve._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = _learn(moons, METHODS["mc_dropout"], "random", seed=4)
    assert not np.array_equal(a.chosen, c.chosen)


def test_initial_set_is_class_balanced(moons):
    curve = _learn(moons, METHODS["map"], "random", n_initial=7)
    counts = np.bincount(moons[0][1][curve.initial], minlength=2)
    assert sorted(counts) == [3, 4]


def test_bald_picks_the_points_the_fitted_posterior_scores_highest(moons):
    """Round 0's batch is the top of BALD under the first fit, recomputed here from the same seed stream."""
    pool, test = moons
    method = METHODS["ensemble"]
    curve = _learn(moons, method, "bald", n_rounds=1)
    # replay the loop's random stream: initial draw, fit, test predictive, pool predictive
    rng = np.random.default_rng(0)
    initial = active._balanced_draw(pool[1], 6, rng)
    np.testing.assert_array_equal(initial, curve.initial)
    post = method.fit(make_moons_model(pool[0][initial], pool[1][initial]), seed=rng)
    post.predict(test[0], n_samples=3, seed=rng)
    unlabelled = np.setdiff1d(np.arange(120), initial)
    scores = active.bald(post.predict(pool[0][unlabelled], n_samples=3, seed=rng))
    top = np.sort(scores)[::-1][:4]
    np.testing.assert_allclose(np.sort(scores[np.searchsorted(unlabelled, curve.chosen[0])])[::-1], top)


def test_warm_start_takes_each_methods_init_shape(moons):
    pool, _ = moons
    model = make_moons_model(pool[0][:10], pool[1][:10])
    ens = METHODS["ensemble"].fit(model, seed=0)
    assert active._warm_start(METHODS["ensemble"], ens).shape == (3, model.dim)
    for name in ("mc_dropout", "bbb", "laplace", "map"):
        post = METHODS[name].fit(model, seed=0)
        assert active._warm_start(METHODS[name], post).shape == (model.dim,)
    assert active._warm_start(ap.SGLD(n_samples=5, n_warmup=5, n_chains=2), None) is None


def test_warm_and_cold_starts_differ_but_both_run(moons):
    warm = _learn(moons, METHODS["map"], "max_entropy")
    cold = _learn(moons, METHODS["map"], "max_entropy", warm_start=False)
    assert not np.array_equal(warm.accuracy, cold.accuracy) or not np.array_equal(warm.chosen, cold.chosen)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(acquisition="bald_typo"), ValueError, "unknown acquisition 'bald_typo'; valid: bald"),
        (dict(batch_size=200), ValueError, "but the pool holds only 120 points"),
        (dict(n_initial=121), ValueError, "but the pool holds only 120"),
        (dict(n_rounds=0), ValueError, "n_rounds"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(n_initial=2.5), (TypeError, ValueError), "n_initial"),
        (dict(n_samples=0), ValueError, "n_samples"),
    ],
)
def test_bad_settings_get_clear_errors(moons, kwargs, error, message):
    with pytest.raises(error, match=message):
        _learn(moons, METHODS["mc_dropout"], **kwargs)


def test_map_refuses_acquisitions_that_need_disagreement(moons):
    for acquisition in ("bald", "variation_ratio", "mean_std"):
        with pytest.raises(ValueError, match="0 at every point for MAP"):
            _learn(moons, METHODS["map"], acquisition)


def test_bad_pool_and_make_model(moons):
    pool, test = moons
    with pytest.raises(TypeError, match="pool must be a pair"):
        active.learn(make_moons_model, METHODS["map"], pool=pool[0], test=test, acquisition="random")
    with pytest.raises(ValueError, match="non-negative integer class labels"):
        active.learn(make_moons_model, METHODS["map"], pool=(pool[0], pool[1] + 0.5), test=test, acquisition="random")
    with pytest.raises(TypeError, match="make_model must be callable"):
        active.learn(None, METHODS["map"], pool=pool, test=test, acquisition="random")


def _curve(n_labels, accuracy):
    z = np.zeros(len(n_labels))
    return active.ActiveCurve(np.array(n_labels), np.array(accuracy), z, z, np.zeros((len(n_labels) - 1, 1)), z)


def test_labels_to_reach_is_the_first_crossing():
    curve = _curve([10, 20, 30, 40], [0.5, 0.91, 0.89, 0.95])
    assert active.labels_to_reach(curve, 0.9) == 20
    assert active.labels_to_reach(curve, 0.96) == np.inf


def test_summary_table_means_sds_and_unreached_runs():
    curves = {
        "bald": [_curve([50, 100], [0.8, 0.9]), _curve([50, 100], [0.9, 0.95])],
        "random": [_curve([50, 100], [0.7, 0.8]), _curve([50, 100], [0.75, 0.9])],
    }
    table = active.summary_table(curves, at=(50, 100, 200), target=0.9)
    lines = table.splitlines()
    assert lines[0] == "| acquisition | accuracy @ 50 | accuracy @ 100 | accuracy @ 200 | labels to 90% |"
    # bald: 0.85 ± sd(0.8, 0.9) = 0.0707; reaches 90% at 100 and at 50 -> 75 ± 35
    assert lines[2] == "| bald | 0.850 ± 0.071 | 0.925 ± 0.035 | — | 75 ± 35 |"
    assert lines[3] == "| random | 0.725 ± 0.035 | 0.850 ± 0.071 | — | 100 ± 0 (1/2 seeds; the rest > 100) |"
    never = active.summary_table({"random": [_curve([50, 100], [0.1, 0.2])]})
    assert never.splitlines()[2].endswith("| not reached (> 100) |")
