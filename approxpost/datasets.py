"""Seeded toy data sets for regression, each a :class:`Dataset`.

Every generator takes a ``seed`` and returns the same numbers for the same
seed. Inputs are (n, 1) columns, targets 1-D; ``x_test`` is a dense grid over
a wider range than the data so predictive bands show where the data end.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np

from . import _validate as check
from ._rng import as_generator

__all__ = ["Dataset", "gap_regression", "blundell_curve", "linear", "two_moons", "DATASETS", "digits"]


class Dataset(NamedTuple):
    """Training data, a test grid with noisy targets, the noise level and a name.

    ``gap`` is the (low, high) interval of x with no training data, for data
    sets that have one (else ``None``). ``x_ood`` holds out-of-distribution
    inputs shaped like ``x_test``, for data sets that have them (else ``None``).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    noise_std: float
    name: str
    gap: tuple | None = None
    x_ood: np.ndarray | None = None


def _check_n(n) -> int:
    return check.count("n", n, minimum=2)


def _check_noise(noise_std) -> float:
    return check.positive("noise_std", noise_std)


def _gap_function(x: np.ndarray) -> np.ndarray:
    return np.sin(2.0 * x) + 0.3 * x


def gap_regression(n: int = 40, noise_std: float = 0.1, seed=0) -> Dataset:
    """Two clusters of points with a gap between them, for "in-between" uncertainty.

    x is drawn uniformly from [-2, -0.7] ∪ [0.7, 2] (half the points in each),
    y = sin(2x) + 0.3 x + ε, ε ~ N(0, noise_std²). A good posterior is more
    uncertain in the gap (-0.7, 0.7) than on the data; mean-field VI often
    is not (Foong et al. 2019).
    """
    n, noise_std = _check_n(n), _check_noise(noise_std)
    rng = as_generator(seed)
    left = rng.uniform(-2.0, -0.7, size=n // 2)
    right = rng.uniform(0.7, 2.0, size=n - n // 2)
    x = np.concatenate([left, right])[:, None]
    y = _gap_function(x[:, 0]) + noise_std * rng.standard_normal(n)
    x_test = np.linspace(-3.0, 3.0, 200)[:, None]
    y_test = _gap_function(x_test[:, 0]) + noise_std * rng.standard_normal(200)
    return Dataset(x, y, x_test, y_test, noise_std, "gap", gap=(-0.7, 0.7))


def _blundell(x: np.ndarray, eps: np.ndarray) -> np.ndarray:
    return x + 0.3 * np.sin(2 * np.pi * (x + eps)) + 0.3 * np.sin(4 * np.pi * (x + eps)) + eps


def blundell_curve(n: int = 100, seed=0) -> Dataset:
    """The toy curve of Blundell et al. (2015), Fig. 5.

    y = x + 0.3 sin(2π(x + ε)) + 0.3 sin(4π(x + ε)) + ε with ε ~ N(0, 0.02²)
    and x ~ U(0, 0.5). The noise enters inside the sines too, so the
    residual around the noiseless curve has standard deviation
    ≈ 0.02 √(1 + 0.9π²) ≈ 0.063 on average over x (first-order expansion);
    that is ``noise_std``.
    """
    n = _check_n(n)
    rng = as_generator(seed)
    x = rng.uniform(0.0, 0.5, size=n)
    y = _blundell(x, 0.02 * rng.standard_normal(n))
    x_test = np.linspace(-0.2, 1.2, 200)
    y_test = _blundell(x_test, 0.02 * rng.standard_normal(200))
    noise_std = 0.02 * float(np.sqrt(1.0 + 0.9 * np.pi**2))
    return Dataset(x[:, None], y, x_test[:, None], y_test, noise_std, "blundell")


def linear(n: int = 30, n_features: int = 1, noise_std: float = 0.5, seed=0) -> Dataset:
    """A linear relation y = x w + b + ε with weights drawn from N(0, 1), for the conjugate oracle.

    The true weights and intercept are drawn from the prior N(0, 1) with the
    same seed, so ``LinearRegression(..., prior_std=1.0)`` is well specified.
    """
    n, noise_std = _check_n(n), _check_noise(noise_std)
    n_features = check.count("n_features", n_features)
    rng = as_generator(seed)
    weights = rng.standard_normal(n_features)
    intercept = rng.standard_normal()
    x = rng.uniform(-2.0, 2.0, size=(n, n_features))
    y = x @ weights + intercept + noise_std * rng.standard_normal(n)
    x_test = np.linspace(-3.0, 3.0, 200)[:, None] * np.ones((1, n_features))
    y_test = x_test @ weights + intercept + noise_std * rng.standard_normal(200)
    return Dataset(x, y, x_test, y_test, noise_std, "linear")


DATASETS = {"gap": gap_regression, "blundell": blundell_curve, "linear": linear}


def two_moons(n: int = 200, noise: float = 0.1, seed=0) -> Dataset:
    """Two interleaving half circles, labels 0 and 1: the 2-D classification toy.

    Class 0 lies on (cos t, sin t), class 1 on (1 − cos t, ½ − sin t), with
    t ~ U(0, π) and isotropic Gaussian noise of sd ``noise`` added to both
    coordinates (the shape of ``sklearn.datasets.make_moons``). ``y`` holds
    integer labels (n,), half of each class (class 1 gets the odd one out);
    ``x_test``, ``y_test`` are ``n`` fresh points from the same distribution.
    ``noise_std`` records ``noise``, the input noise (there is no output noise).
    """
    n = _check_n(n)
    noise = check.number("noise", noise, 0.0)
    rng = as_generator(seed)

    def draw(size: int) -> tuple:
        y = np.repeat([0, 1], [size // 2, size - size // 2])
        t = rng.uniform(0.0, np.pi, size=size)
        upper = np.column_stack([np.cos(t), np.sin(t)])
        lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
        x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((size, 2))
        order = rng.permutation(size)
        return x[order], y[order]

    x, y = draw(n)
    x_test, y_test = draw(n)
    return Dataset(x, y, x_test, y_test, noise, "moons")


# --- classification: handwritten digits ------------------------------------------------


def _digits_file():
    """The shipped 8×8 digits (see approxpost/data/README.md for provenance and licence)."""
    with resources.files("approxpost").joinpath("data/digits.npz").open("rb") as f, np.load(f) as arrays:
        return arrays["images"], arrays["labels"]


def digits(n_train: int = 1000, seed=0) -> Dataset:
    """The 8×8 UCI handwritten digits: 1,797 images of 0–9, split at random into train and test.

    Parameters
    ----------
    n_train
        Number of training images (1 … 1796); the other 1797 − n_train are the test set.
    seed
        int, Generator or None: the split is a seeded permutation.

    Returns
    -------
    Dataset
        ``x`` (n_train, 1, 8, 8) and ``x_test`` float64 in [0, 1] (pixel counts
        0..16 divided by 16), ``y`` and ``y_test`` int64 labels in 0..9,
        ``noise_std`` 0.0 (labels carry no Gaussian noise), and ``x_ood``: the
        test images with their 64 pixels shuffled (a seeded permutation per image).

    Notes
    -----
    Why shuffled digits as the out-of-distribution set: shuffling keeps every
    pixel value of each test image (the same ink, the same histogram), so a
    detector cannot separate them by brightness or contrast; only the spatial
    structure of a digit is gone. Turning the digits a quarter was tried first
    and fails as an OOD set: a MAP CNN and a BBB CNN were both *more* certain
    on rotated digits than on real ones (entropy AUROC 0.21 and 0.25 with the
    bench settings), while on shuffled pixels the MAP CNN's AUROC is 0.94.

    The images ship with the package (``approxpost/data/digits.npz``,
    converted from scikit-learn's copy of the UCI data set, CC BY 4.0), so
    this loads with no network and no scikit-learn.

    References
    ----------
    Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits.
    UCI Machine Learning Repository. https://doi.org/10.24432/C50P49
    """
    images, labels = _digits_file()
    n_all = len(labels)
    n_train = check.count("n_train", n_train)
    if n_train >= n_all:
        raise ValueError(f"n_train must be at most {n_all - 1} (the test set is the rest), got {n_train}")
    rng = as_generator(seed)
    order = rng.permutation(n_all)
    x = images[:, None, :, :].astype(np.float64) / 16.0
    y = labels.astype(np.int64)
    train, test = order[:n_train], order[n_train:]
    x_ood = rng.permuted(x[test].reshape(len(test), -1), axis=1).reshape(x[test].shape)
    return Dataset(x[train], y[train], x[test], y[test], 0.0, "digits", x_ood=x_ood)
