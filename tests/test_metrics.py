"""approxpost.metrics against scikit-learn, hand-computed cases, their definitions as laws, and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from strategies import class_probabilities

from approxpost import metrics
from approxpost.predictive import Predictive


def random_problem(n=300, k=3, seed=0):
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.standard_normal((n, k))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in probs])  # calibrated by construction
    return probs, y


# --------------------------------------------------------------------------- scikit-learn oracles


@pytest.mark.parametrize("k", [2, 3, 5])
def test_nll_and_brier_match_scikit_learn(k):
    probs, y = random_problem(k=k, seed=k)
    assert metrics.nll(probs, y) == pytest.approx(log_loss(y, probs, labels=np.arange(k)), rel=1e-12)
    if k == 2:  # scikit-learn scores the positive class only: half the two-class sum
        assert metrics.brier(probs, y) == pytest.approx(2 * brier_score_loss(y, probs[:, 1]), rel=1e-12)
    else:
        assert metrics.brier(probs, y) == pytest.approx(brier_score_loss(y, probs, labels=np.arange(k)), rel=1e-12)


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_reliability_matches_calibration_curve_of_the_top_label(n_bins):
    probs, y = random_problem(n=500, k=4, seed=1)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(int)
    accuracy_sk, confidence_sk = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
    table = metrics.reliability(probs, y, n_bins=n_bins)
    filled = table.count > 0
    np.testing.assert_allclose(table.accuracy[filled], accuracy_sk, rtol=1e-12)
    np.testing.assert_allclose(table.confidence[filled], confidence_sk, rtol=1e-12)
    assert table.count.sum() == 500 and np.all(np.isnan(table.accuracy[~filled]))
    # ECE is the count-weighted mean gap of the same bins
    expected = np.sum(table.count[filled] / 500 * np.abs(accuracy_sk - confidence_sk))
    assert metrics.ece(probs, y, n_bins=n_bins) == pytest.approx(expected, rel=1e-12)
    assert metrics.mce(probs, y, n_bins=n_bins) == pytest.approx(np.max(np.abs(accuracy_sk - confidence_sk)))


def test_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(2)
    scores_in = rng.integers(0, 6, 80).astype(float)  # few distinct values: many ties
    scores_out = rng.integers(2, 9, 50).astype(float)
    expected = roc_auc_score(np.r_[np.zeros(80), np.ones(50)], np.r_[scores_in, scores_out])
    assert metrics.auroc(scores_in, scores_out) == pytest.approx(expected, rel=1e-12)


@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=12),
    st.lists(st.integers(0, 4), min_size=1, max_size=12),
)
def test_auroc_is_the_pairwise_probability(scores_in, scores_out):
    a, b = np.array(scores_in, float), np.array(scores_out, float)
    pairs = (b[None, :] > a[:, None]) + 0.5 * (b[None, :] == a[:, None])
    assert metrics.auroc(a, b) == pytest.approx(pairs.mean(), abs=1e-12)
    assert metrics.auroc(b, a) == pytest.approx(1.0 - pairs.mean(), abs=1e-12)


# --------------------------------------------------------------------------- hand-computed cases


def test_small_cases_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    y = np.array([0, 1, 1, 1])
    assert metrics.accuracy(probs, y) == 0.75
    assert metrics.nll(probs, y) == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.8])))
    assert metrics.brier(probs, y) == pytest.approx(np.mean([0.02, 0.72, 0.18, 0.08]))
    # two bins: confidences 0.9, 0.6, 0.7, 0.8 all lie in (0.5, 1]: acc 3/4, conf 0.75 -> perfectly calibrated
    table = metrics.reliability(probs, y, n_bins=2)
    np.testing.assert_array_equal(table.count, [0, 4])
    assert table.confidence[1] == pytest.approx(0.75) and table.accuracy[1] == 0.75
    assert metrics.ece(probs, y, n_bins=2) == pytest.approx(0.0, abs=1e-15)
    # five bins: (0.5,0.6] holds 0.6 (wrong), (0.6,0.7] 0.7 (right), (0.7,0.8] 0.8, (0.8,0.9] 0.9
    assert metrics.ece(probs, y, n_bins=5) == pytest.approx((0.6 + 0.3 + 0.2 + 0.1) / 4)
    assert metrics.mce(probs, y, n_bins=5) == pytest.approx(0.6)


def test_a_certain_wrong_answer_has_infinite_nll():
    assert metrics.nll(np.array([[1.0, 0.0]]), np.array([1])) == np.inf


def test_distances_between_predictives_by_hand():
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    b = np.array([[0.7, 0.3], [0.6, 0.4], [0.5, 0.5]])
    assert metrics.agreement(a, b) == pytest.approx(2 / 3)  # argmax of [0.5, 0.5] is 0 for both
    assert metrics.total_variation(a, b) == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    pa = Predictive(np.array([[[0.0], [1.0]], [[2.0], [1.0]]]), noise_std=1.0)  # means (1, 1), epistemic sd (1, 0)
    pb = Predictive(np.array([[[1.0], [4.0]]]), noise_std=1.0)  # means (1, 4), sd (1, 1)
    # point 0: Δm = 0, Δs = √2 − 1; point 1: Δm = 3, Δs = 0
    assert metrics.predictive_w2(pa, pb) == pytest.approx((np.sqrt(2) - 1 + 3) / 2)
    assert metrics.predictive_w2(pa, pa) == 0.0


@given(class_probabilities(), st.integers(1, 20))
def test_laws(problem, n_bins):
    probs, y = problem
    assert 0.0 <= metrics.brier(probs, y) <= 2.0
    assert 0.0 <= metrics.ece(probs, y, n_bins) <= metrics.mce(probs, y, n_bins) + 1e-12 <= 1.0 + 1e-12
    assert metrics.nll(probs, y) >= 0.0
    assert metrics.agreement(probs, probs) == 1.0 and metrics.total_variation(probs, probs) == 0.0
    flipped = probs[:, ::-1]
    assert 0.0 <= metrics.total_variation(probs, flipped) <= 1.0 + 1e-12
    assert metrics.total_variation(probs, flipped) == pytest.approx(metrics.total_variation(flipped, probs))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "probs, y, error, match",
    [
        (np.array([[0.5, 0.6]]), [0], ValueError, r"probs must sum to 1.*1\.1"),
        (np.array([[1.2, -0.2]]), [0], ValueError, r"probs must lie in \[0, 1\]"),
        (np.array([[0.5, 0.5]]), [2], ValueError, r"y must lie in 0\.\.1"),
        (np.array([[0.5, 0.5]]), [-1], ValueError, r"y must lie in 0\.\.1"),
        (np.array([[0.5, 0.5]]), [0.5], ValueError, "whole-number"),
        (np.array([[0.5, 0.5]]), [True], TypeError, "integer class labels"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), [0], ValueError, "1 labels but there are 2 points"),
        (np.array([0.5, 0.5]), [0], ValueError, r"probs must have shape \(n, K\)"),
        (np.array([[np.nan, 0.5]]), [0], ValueError, "finite"),
    ],
)
def test_bad_probabilities_and_labels(probs, y, error, match):
    for metric in (metrics.accuracy, metrics.nll, metrics.brier, metrics.ece, metrics.mce, metrics.reliability):
        with pytest.raises(error, match=match):
            metric(probs, y)


def test_other_bad_input():
    probs, y = random_problem(n=10, k=2)
    with pytest.raises(ValueError, match="n_bins"):
        metrics.ece(probs, y, n_bins=0)
    with pytest.raises(ValueError, match=r"scores_out must have shape"):
        metrics.auroc(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="scores_in must be finite"):
        metrics.auroc(np.array([np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match=r"probs_a has shape \(10, 2\) but probs_b has shape \(9, 2\)"):
        metrics.total_variation(probs, probs[:9])
    with pytest.raises(TypeError, match="pred_b must be a regression predictive"):
        metrics.predictive_w2(Predictive(np.zeros((1, 3, 1)), 1.0), probs)
    with pytest.raises(ValueError, match="same"):
        metrics.predictive_w2(Predictive(np.zeros((1, 3, 1)), 1.0), Predictive(np.zeros((1, 2, 1)), 1.0))
