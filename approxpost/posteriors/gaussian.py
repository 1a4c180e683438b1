"""Parametric posteriors: a Gaussian (VI, Laplace, the conjugate answer) and a point mass (MAP)."""

from __future__ import annotations

import numpy as np

from .._rng import as_generator
from .._validate import count as _check_count
from .._validate import float_array as _float_array
from ..distributions import MultivariateNormal, Normal
from .base import Posterior

__all__ = ["GaussianPosterior", "PointPosterior"]


class GaussianPosterior(Posterior):
    """A Gaussian N(mean, diag(std²)) (mean-field VI) or N(mean, cov) (e.g. the conjugate result).

    Parameters
    ----------
    mean
        Shape (D,).
    std
        Per-coordinate standard deviations (D,), all positive; or
    cov
        A symmetric positive-definite covariance (D, D). Exactly one of the two.
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).
    """

    def __init__(self, mean, std=None, cov=None, **kwargs):
        mean = _float_array("mean", mean, (1,), "(D,)")
        dim = mean.shape[0]
        if (std is None) == (cov is None):
            given = "both" if std is not None else "neither"
            raise ValueError(f"pass exactly one of std (diagonal) or cov (full covariance), got {given}")
        if std is not None:
            std = _float_array("std", std, (1,), "(D,)")
            if std.shape != (dim,):
                raise ValueError(f"std has shape {std.shape} but mean has shape {mean.shape}")
            if np.any(std <= 0):  # checked here too so the message names this argument, not Normal's scale
                raise ValueError(f"std must be positive, got min {std.min()} in shape {std.shape}")
            self.distribution = Normal(mean, std)
        else:
            cov = _float_array("cov", cov, (2,), "(D, D)")
            if cov.shape != (dim, dim):
                raise ValueError(f"cov has shape {cov.shape} but mean has shape {mean.shape}: expected ({dim}, {dim})")
            self.distribution = MultivariateNormal(mean, cov)
        super().__init__(**kwargs)

    @property
    def is_diagonal(self) -> bool:
        """True when built from ``std`` (independent coordinates)."""
        return isinstance(self.distribution, Normal)

    @property
    def mean(self) -> np.ndarray:
        """The mean, (D,)."""
        return self.distribution.mean

    @property
    def std(self) -> np.ndarray:
        """Per-coordinate standard deviations, sqrt(diag cov), (D,)."""
        return self.distribution.std

    @property
    def cov(self) -> np.ndarray:
        """Covariance (D, D); diag(std²) for a diagonal Gaussian."""
        return self.distribution.cov

    def log_prob(self, theta):
        """log N(θ | mean, cov): (D,) -> float, (S, D) -> (S,)."""
        theta = np.asarray(theta, dtype=np.float64)
        dim = self.dim
        if theta.ndim not in (1, 2) or theta.shape[-1] != dim:
            raise ValueError(
                f"theta has shape {theta.shape} but the posterior has dim={dim}: expected ({dim},) or (S, {dim})"
            )
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"theta must be finite, got non-finite values in an array of shape {theta.shape}")
        value = self.distribution.log_prob(theta)
        return float(value) if theta.ndim == 1 else np.asarray(value, dtype=np.float64)

    def entropy(self) -> float:
        """Differential entropy ½ D (1 + log 2π) + ½ log det cov."""
        return float(self.distribution.entropy())

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` draws mean + L z with z ~ N(0, I), (n, D)."""
        return self.distribution.sample(as_generator(seed), _check_count("n", n))

    def __repr__(self) -> str:
        return f"GaussianPosterior(dim={self.dim}, {'diagonal' if self.is_diagonal else 'full covariance'})"


class PointPosterior(Posterior):
    """A single parameter vector θ̂ (e.g. the MAP estimate): a point mass, with no spread at all.

    Parameters
    ----------
    theta
        Shape (D,).
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).

    Notes
    -----
    ``mean`` is θ̂, ``std`` zeros and every draw a copy of θ̂, so its predictive
    holds only the aleatoric noise: the overconfident baseline the Bayesian
    methods are compared against.
    """

    def __init__(self, theta, **kwargs):
        self._theta = _float_array("theta", theta, (1,), "(D,)")
        self._std = np.zeros_like(self._theta)
        self._std.flags.writeable = False
        super().__init__(**kwargs)

    @property
    def theta(self) -> np.ndarray:
        """The point θ̂, (D,)."""
        return self._theta

    @property
    def mean(self) -> np.ndarray:
        """θ̂, (D,)."""
        return self._theta

    @property
    def std(self) -> np.ndarray:
        """Zeros, (D,)."""
        return self._std

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` copies of θ̂, (n, D); ``seed`` is accepted for the common interface and not used."""
        as_generator(seed)  # still reject a bad seed, as every posterior does
        return np.tile(self._theta, (_check_count("n", n), 1))
