"""The ``Model`` base: a log density over a flat θ, its batched gradient, and the recorded-graph fast path."""

from __future__ import annotations

import numpy as np

from .. import _validate as check
from .. import autodiff as ad
from ..predictive import Predictive

__all__ = ["Model", "as_2d_data"]


def as_2d_data(name: str, values, n_rows: int | None = None) -> np.ndarray:
    """Data as a finite float64 (n, k) array; a 1-D array becomes one column."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(array)))} non-finite values in shape {array.shape}"
        )
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValueError(f"{name} has {array.shape[0]} rows but x has {n_rows}: x and y must have the same length")
    return array


def _positive(name: str, value) -> float:
    return check.positive(name, value)


class Model:
    """Base class: an unnormalised log posterior log p(θ, D) = log p(θ) + log p(D | θ).

    Subclasses set ``dim`` and write ``log_prior`` and ``log_likelihood`` with
    ``ad`` ops, for θ of shape (D,) (returning a scalar) or (S, D) (returning
    (S,)). ``n_data`` is the number of data points (``None`` without data),
    used to rescale minibatch likelihoods.
    """

    dim: int = 0
    n_data: int | None = None
    noise_std: float | None = None
    #: replay the recorded graph in ``log_joint`` (of an array), ``log_joint_and_grad`` and
    #: ``mean_log_likelihood_vjp`` (``ad.Tape``): only
    #: for a log joint whose graph depends on θ's shape alone, with data that is not reassigned after the first call
    replay_graph: bool = False

    def __init__(self):
        pass

    def log_prior(self, theta):
        """log p(θ): (D,) -> scalar, (S, D) -> (S,)."""
        raise TypeError(f"{type(self).__name__} must define log_prior(theta)")

    def log_likelihood(self, theta, idx=None):
        """log p(D | θ), on the minibatch ``idx`` rescaled to the full data when given."""
        raise TypeError(f"{type(self).__name__} must define log_likelihood(theta, idx=None)")

    def prior_distribution(self):
        """The prior as a distribution object when it has a standard form, else ``None``."""
        return None

    def check_theta(self, theta) -> np.ndarray:
        """θ as a float64 (D,) or (S, D) array, or a ``ValueError`` naming the shapes."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.dim:
            raise ValueError(
                f"theta has shape {theta.shape} but {type(self).__name__} has dim={self.dim}: expected ({self.dim},) or (S, {self.dim})"
            )
        return theta

    def log_joint(self, theta, idx=None):
        """log p(θ) + log p(D | θ): (D,) -> float, (S, D) -> (S,)."""
        if not isinstance(theta, ad.Var):
            theta = self.check_theta(theta)
            if self.replay_graph and idx is None:  # a density evaluation replays the forward steps of the tape
                tape = self._tape_for(theta)
                if tape.complete:
                    value = tape.value(theta)
                    return float(value) if theta.ndim == 1 else value
        value = ad.add(self.log_prior(theta), self.log_likelihood(theta, idx))
        if isinstance(value, ad.Var):
            return value
        value = self._check_output(np.asarray(value, dtype=np.float64), theta)
        return float(value) if value.ndim == 0 else value

    def _check_output(self, value: np.ndarray, theta) -> np.ndarray:
        """A log density must reduce over θ's last axis only: () for (D,), (S,) for (S, D)."""
        expected = np.shape(theta)[:-1]
        if value.shape != expected:
            raise ValueError(
                f"{type(self).__name__}.log_joint returned shape {value.shape} for theta of shape {np.shape(theta)}, "
                f"expected {expected}: log_prior and log_likelihood must sum over the last axis of theta only"
            )
        return value

    def log_joint_and_grad(self, theta, idx=None) -> tuple:
        """``(log_joint, its gradient)``: (D,) -> (float, (D,)); (S, D) -> ((S,), (S, D)).

        All S rows go through one forward and one backward pass: the rows do
        not interact, so the gradient of Σ_s log p(θ_s, D) holds every row's
        own gradient.
        """
        theta = self.check_theta(theta)
        if self.replay_graph and idx is None:
            tape = self._tape_for(theta)
            if tape.complete:  # incomplete: an op outside ad.primitive, so the plain graph
                value, gradient = tape.value_and_grad(theta)
                return (float(value) if theta.ndim == 1 else value), gradient
        value, pullback = ad.vjp(lambda t: self.log_joint(t, idx), theta)
        value = self._check_output(np.asarray(value), theta)
        gradient = pullback(np.ones(value.shape))
        return (float(value) if theta.ndim == 1 else value), gradient

    def _tape_for(self, theta: np.ndarray):
        """The recorded graph of ``log_joint`` at θ's shape (recorded, and its output shape checked, on first use)."""
        tapes = self.__dict__.setdefault("_tapes", {})
        tape = tapes.get(theta.shape)
        if tape is None:
            tape = ad.Tape(self.log_joint, theta)
            self._check_output(np.empty(tape.out_shape), theta)
            tapes[theta.shape] = tape
        return tape

    def mean_log_likelihood_vjp(self, theta, idx=None, with_prior: bool = False) -> tuple:
        """``ad.vjp`` at θ (S, D) of mean_s log p(D | θ_s), or ``with_prior`` of [that, mean_s log p(θ_s)].

        What Bayes by Backprop differentiates every step
        (:func:`approxpost.by_hand.bbb_loss_grad_by_hand`). With ``replay_graph``
        and all the data it replays a tape recorded once per θ shape, as
        ``log_joint_and_grad`` does: the plain graph's NumPy calls in the same
        order, so the same bits, without rebuilding the graph every step.
        """

        def f(t):
            mean_log_lik = ad.mean(self.log_likelihood(t, idx))
            return ad.stack([mean_log_lik, ad.mean(self.log_prior(t))]) if with_prior else mean_log_lik

        if self.replay_graph and idx is None:
            tapes = self.__dict__.setdefault("_mean_log_likelihood_tapes", {})
            key = (with_prior, theta.shape)
            if key not in tapes:
                tapes[key] = ad.Tape(f, theta)
            if tapes[key].complete:  # incomplete: an op outside ad.primitive, so the plain graph
                return tapes[key].vjp(theta)
        return ad.vjp(f, theta)

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` starting points (n, D); by default N(0, 1) draws."""
        return rng.standard_normal((int(n), self.dim))

    def output_predictive(self, f, weights=None):
        """The posterior predictive from network outputs f (S, n, out) of S draws of θ.

        By default the Gaussian-noise :class:`~approxpost.predictive.Predictive`
        with ``noise_std``; a model with another likelihood overrides this, so
        ``Posterior.predict`` never needs to know the likelihood. ``weights``
        (S,) weight the draws where the predictive supports it (see
        ``weighted_predictive``).
        """
        if weights is not None:
            raise ValueError(f"{type(self).__name__}'s predictive takes equally weighted draws, got weights")
        if self.noise_std is None:
            raise ValueError(f"predict needs a Gaussian noise_std, but {type(self).__name__} has noise_std=None")
        return Predictive(f, self.noise_std)

    def predictive(self, theta, x, weights=None):
        """``output_predictive(predict(theta, x), weights)``: the predictive at inputs ``x`` from draws θ (S, D)."""
        return self.output_predictive(self.predict(theta, x), weights)

    # whether output_predictive accepts weights (WeightedPosterior then weights its particles instead of resampling)
    weighted_predictive: bool = False

    def minibatch_scale(self, idx) -> float:
        """N / |idx|: the factor turning a minibatch log likelihood into a full-data estimate."""
        if idx is None:
            return 1.0
        # index a range so a slice or boolean mask counts the rows it selects, not its own length
        return self.n_data / np.arange(self.n_data)[idx].size
