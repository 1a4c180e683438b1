"""Scores of predictive distributions: plain functions of arrays, usable on any library's output.

Classification metrics take ``probs`` (n, K), each row a distribution over K
classes, and integer labels ``y`` (n,) in 0..K − 1:

- :func:`accuracy`, :func:`nll` (mean negative log probability of the label)
  and :func:`brier` (mean squared distance to the one-hot label) — proper
  scores of the whole distribution except accuracy;
- :func:`reliability`, :func:`ece`, :func:`mce` — calibration of the top-label
  confidence in equal-width bins (Guo et al. 2017);
- :func:`auroc` — how well a score (e.g. predictive entropy) separates
  in-distribution from out-of-distribution inputs.

Distances between two predictives (e.g. a method and a long-run reference):
:func:`agreement` and :func:`total_variation` for classifiers,
:func:`predictive_w2` for Gaussian regression predictives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from ._validate import count, float_array, labels, probabilities

__all__ = [
    "Reliability",
    "accuracy",
    "nll",
    "brier",
    "reliability",
    "ece",
    "mce",
    "auroc",
    "agreement",
    "total_variation",
    "predictive_w2",
]


class Reliability(NamedTuple):
    """Per-bin mean confidence, accuracy and count, (n_bins,) each; NaN confidence and accuracy in empty bins."""

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def _checked(probs, y) -> tuple:
    probs = probabilities("probs", probs)
    return probs, labels("y", y, probs.shape[1], n=probs.shape[0])


def accuracy(probs, y) -> float:
    """Fraction of points whose most probable class is the label."""
    probs, y = _checked(probs, y)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def nll(probs, y) -> float:
    """Mean negative log probability of the label, −(1/n) Σ_i log p_i[y_i] (nats); inf if one is 0.

    No clipping: a classifier that gives the true label probability 0 has an
    infinite log loss, and hiding that would flatter it.
    """
    probs, y = _checked(probs, y)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(probs[np.arange(y.size), y])))


def brier(probs, y) -> float:
    """Mean over points of Σ_k (p_k − 1[y = k])², in [0, 2] (Brier 1950, the multi-class form)."""
    probs, y = _checked(probs, y)
    return float(np.mean(np.sum((probs - np.eye(probs.shape[1])[y]) ** 2, axis=1)))


def reliability(probs, y, n_bins: int = 15) -> Reliability:
    """Top-label reliability: mean confidence, accuracy and count in ``n_bins`` equal-width bins on [0, 1].

    Parameters
    ----------
    probs, y
        Probabilities (n, K) and labels (n,).
    n_bins
        Number of bins; bin b holds the confidences in (b/B, (b + 1)/B] (the
        first also holds 0), as ``sklearn.calibration.calibration_curve`` does.

    Returns
    -------
    Reliability
        ``(confidence, accuracy, count)``, (n_bins,) each. Empty bins have
        count 0 and NaN confidence and accuracy (there is nothing to average).
    """
    probs, y = _checked(probs, y)
    n_bins = count("n_bins", n_bins)
    confidence = probs.max(axis=1)
    correct = (np.argmax(probs, axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        mean_accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    return Reliability(mean_confidence, mean_accuracy, counts)


def _calibration_gaps(probs, y, n_bins: int) -> tuple:
    table = reliability(probs, y, n_bins)
    filled = table.count > 0
    return np.abs(table.accuracy[filled] - table.confidence[filled]), table.count[filled]


def ece(probs, y, n_bins: int = 15) -> float:
    """Expected calibration error Σ_b (n_b/n) |acc_b − conf_b| over the bins of :func:`reliability`.

    References
    ----------
    Naeini, M. P., Cooper, G. F. and Hauskrecht, M. (2015). Obtaining well calibrated
    probabilities using Bayesian binning. AAAI. Guo, C., Pleiss, G., Sun, Y. and
    Weinberger, K. Q. (2017). On calibration of modern neural networks. ICML.
    """
    gaps, counts = _calibration_gaps(probs, y, n_bins)
    return float(np.sum(counts * gaps) / np.sum(counts))


def mce(probs, y, n_bins: int = 15) -> float:
    """Maximum calibration error max_b |acc_b − conf_b| over the non-empty bins of :func:`reliability`."""
    gaps, _ = _calibration_gaps(probs, y, n_bins)
    return float(np.max(gaps))


def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve of a score that should be higher out of distribution.

    Parameters
    ----------
    scores_in, scores_out
        1-D finite scores (e.g. predictive entropy) on in-distribution and
        out-of-distribution inputs.

    Returns
    -------
    float
        P(score_out > score_in) + ½ P(score_out = score_in) for a random pair:
        1 separates perfectly, ½ is chance. Computed from ranks (Mann–Whitney
        U), O(n log n).
    """
    scores_in = float_array("scores_in", scores_in, (1,), "(n_in,)")
    scores_out = float_array("scores_out", scores_out, (1,), "(n_out,)")
    ranks = stats.rankdata(np.concatenate([scores_in, scores_out]))  # ties get their mean rank: half credit
    n_in, n_out = scores_in.size, scores_out.size
    u = ranks[n_in:].sum() - n_out * (n_out + 1) / 2.0
    return float(u / (n_in * n_out))


def _pair(probs_a, probs_b) -> tuple:
    probs_a, probs_b = probabilities("probs_a", probs_a), probabilities("probs_b", probs_b)
    if probs_a.shape != probs_b.shape:
        raise ValueError(f"probs_a has shape {probs_a.shape} but probs_b has shape {probs_b.shape}: they must match")
    return probs_a, probs_b


def agreement(probs_a, probs_b) -> float:
    """Fraction of points whose most probable class is the same under both predictives."""
    probs_a, probs_b = _pair(probs_a, probs_b)
    return float(np.mean(np.argmax(probs_a, axis=1) == np.argmax(probs_b, axis=1)))


def total_variation(probs_a, probs_b) -> float:
    """Mean over points of the total-variation distance ½ Σ_k |p_a,k − p_b,k|, in [0, 1]."""
    probs_a, probs_b = _pair(probs_a, probs_b)
    return float(np.mean(0.5 * np.sum(np.abs(probs_a - probs_b), axis=1)))


def predictive_w2(pred_a, pred_b) -> float:
    """Mean over inputs of the 2-Wasserstein distance between Gaussian summaries of two regression predictives.

    Parameters
    ----------
    pred_a, pred_b
        Regression predictives (anything with ``mean`` and ``std`` of the same
        shape (n, out)), e.g. two ``Predictive`` s at the same inputs.

    Returns
    -------
    float
        (1/n) Σ_i √(Σ_o (m_a − m_b)² + (s_a − s_b)²): per input, the W2 distance
        between N(m_a, diag s_a²) and N(m_b, diag s_b²) (exact for diagonal
        Gaussians); with one output, √((m_a − m_b)² + (s_a − s_b)²).
    """
    means, stds = [], []
    for name, pred in (("pred_a", pred_a), ("pred_b", pred_b)):
        # an ndarray has mean and std too, as methods: a predictive has them as arrays
        if callable(getattr(pred, "mean", None)) or not (hasattr(pred, "mean") and hasattr(pred, "std")):
            raise TypeError(f"{name} must be a regression predictive with mean and std, got {type(pred).__name__}")
        means.append(float_array(f"{name}.mean", pred.mean, (2,), "(n, out)"))
        stds.append(float_array(f"{name}.std", pred.std, (2,), "(n, out)"))
    if means[0].shape != means[1].shape or stds[0].shape != means[0].shape or stds[1].shape != means[1].shape:
        raise ValueError(
            f"pred_a (mean {means[0].shape}, std {stds[0].shape}) and pred_b (mean {means[1].shape}, "
            f"std {stds[1].shape}) must have the same (n, out) shape"
        )
    squared = np.sum((means[0] - means[1]) ** 2 + (stds[0] - stds[1]) ** 2, axis=1)
    return float(np.mean(np.sqrt(squared)))
