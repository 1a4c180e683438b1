"""Classification: a BNN with a softmax likelihood over K classes."""

from __future__ import annotations

import numpy as np

from .. import _validate as check
from .. import autodiff as ad
from ..predictive import ClassPredictive
from .base import Model
from .regression import Regression

__all__ = ["Classification"]


def _as_inputs(name: str, values) -> np.ndarray:
    """Inputs as a finite float64 array with a leading data axis: (n, p), or (n, C, H, W) for images."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, p) or (n, C, H, W) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(array)))} non-finite values in shape {array.shape}"
        )
    return array


class Classification(Model):
    """Bayesian neural-network classification: y ~ Categorical(softmax f(x; θ)), θ ~ N(0, prior_std² I).

    Parameters
    ----------
    net
        The network: ``ap.nn.MLP([p, …, K])`` for (n, p) inputs or an
        ``ap.nn.CNN`` for (n, C, H, W) images; anything with ``dim``,
        ``n_outputs`` (K ≥ 2), ``forward(theta, x)`` and ``init(rng, n)``.
    x
        Inputs with a leading data axis: (n, p) or (n, C, H, W).
    y
        Integer class labels (n,) in 0..K − 1.
    prior_std
        Prior standard deviation s of every weight.

    Notes
    -----
    log p(y | x, θ) = Σ_n log_softmax(f(x_n; θ))[y_n]; the logits f have no
    noise of their own, so all the predictive's uncertainty comes from θ and
    the softmax. ``predict`` returns logits, ``predict_proba`` probabilities.
    The graph of the log joint depends on θ's shape alone, so it is replayed
    (``replay_graph``), as a regression's is.
    """

    weighted_predictive = True
    replay_graph = True

    def __init__(self, net, x, y, prior_std: float = 1.0):
        super().__init__()
        self.net = net
        self.x = _as_inputs("x", x)
        n_classes = int(getattr(net, "n_outputs", 0))
        if n_classes < 2:
            raise ValueError(f"the network must have n_outputs >= 2 classes for Classification, got {n_classes}")
        self._check_x(self.x, "x")
        self.y = check.labels("y", y, n_classes, n=self.x.shape[0])
        self.n_classes = n_classes
        self.prior_std = check.positive("prior_std", prior_std)
        self.dim = int(net.dim)
        self.n_data = self.x.shape[0]
        self._one_hot = np.eye(n_classes)[self.y]  # (n, K): picks log p(y_n) out of each row of log-softmax

    def _check_x(self, x: np.ndarray, name: str) -> None:
        expected = getattr(self.net, "input_shape", None)
        if expected is None and hasattr(self.net, "n_inputs"):
            expected = (self.net.n_inputs,)
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(
                f"{name} has shape {x.shape} but the network takes inputs of shape (n, {', '.join(map(str, expected))})"
            )

    # the same Gaussian prior as Regression
    log_prior = Regression.log_prior
    prior_distribution = Regression.prior_distribution

    @staticmethod
    def _sum_log_softmax(f, one_hot: np.ndarray):
        """Σ_n log softmax(f_n)[y_n]: (n, K) -> scalar, (S, n, K) -> (S,)."""
        return ad.sum(ad.mul(ad.log_softmax(f, axis=-1), one_hot), axis=(-2, -1))

    def log_likelihood(self, theta, idx=None):
        """Σ_n log softmax(f(x_n; θ))[y_n], times N/|idx| on a minibatch."""
        x, one_hot = (self.x, self._one_hot) if idx is None else (self.x[idx], self._one_hot[idx])
        log_lik = self._sum_log_softmax(self.net.forward(theta, x), one_hot)
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def mean_output_log_likelihood(self, f, idx=None):
        """(1/S) Σ_s log p(y | f_s) for network outputs f (S, n, K) on the data (or minibatch ``idx``), rescaled."""
        one_hot = self._one_hot if idx is None else self._one_hot[idx]
        log_lik = ad.mean(self._sum_log_softmax(f, one_hot))
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def predict(self, theta, x) -> np.ndarray:
        """Logits f(x; θ_s) for S parameter draws: (S, n, K)."""
        theta = np.atleast_2d(self.check_theta(theta))
        x = _as_inputs("x", x)
        self._check_x(x, "x")
        return np.asarray(self.net.forward(theta, x))

    def predict_proba(self, theta, x) -> np.ndarray:
        """Class probabilities softmax f(x; θ_s): (S, n, K)."""
        return np.exp(ad.log_softmax(self.predict(theta, x), axis=-1))

    def output_predictive(self, f, weights=None) -> ClassPredictive:
        """A :class:`~approxpost.predictive.ClassPredictive` from logits f (S, n, K), weighted by ``weights``."""
        return ClassPredictive(np.exp(ad.log_softmax(np.asarray(f, dtype=np.float64), axis=-1)), weights)

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return self.net.init(rng, int(n))
