"""The posterior predictive of Gaussian-noise regression: a mixture over θ draws.

A :class:`Predictive` is what ``Posterior.predict`` returns: the network
outputs f(x; θ_s) for S posterior draws and the noise σ, with the mean,
the epistemic/aleatoric split of the spread, exact mixture intervals and the
log predictive density of held-out targets.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import special

from ._validate import float_array
from .distributions import LOG_2PI

__all__ = ["Predictive"]

_MAX_ITERATIONS = 100  # Newton needs ~5-10; bisection alone ~60
_QUANTILE_TOL = 1e-12  # in noise sds: a last step this small means a CDF error < 4e-13


def _mixture_lower_quantile(f: np.ndarray, sigma: float, p: float) -> np.ndarray:
    """The p-quantile of (1/S) Σ_s N(f_s, σ²) at every point of f (S, n, out).

    Newton's method on the mixture CDF, kept inside a bracket that shrinks at
    every step (a bisection step wherever Newton would leave it). The first
    bracket: every component's CDF is ≤ p at min f + σ Φ⁻¹(p) and ≥ p at
    max f + σ Φ⁻¹(p), so the mixture's quantile lies between them.
    """
    z = special.ndtri(p)
    lower, upper = f.min(axis=0) + sigma * z, f.max(axis=0) + sigma * z
    # start from the quantile of the normal with the mixture's mean and variance
    y = np.clip(f.mean(axis=0) + np.sqrt(f.var(axis=0) + sigma**2) * z, lower, upper)
    for _ in range(_MAX_ITERATIONS):
        u = (y - f) / sigma
        cdf = special.ndtr(u).mean(axis=0)
        pdf = np.exp(-0.5 * u**2).mean(axis=0) / (sigma * np.sqrt(2.0 * np.pi))
        below = cdf < p
        lower, upper = np.where(below, y, lower), np.where(below, upper, y)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = y - (cdf - p) / pdf
        inside = (newton >= lower) & (newton <= upper)  # False too where pdf underflowed to 0
        y_next = np.where(inside, newton, 0.5 * (lower + upper))
        converged = np.abs(y_next - y) <= _QUANTILE_TOL * sigma + 4 * np.finfo(float).eps * np.abs(y)
        y = y_next
        if np.all(converged):
            break
    return y


class Predictive:
    """The posterior predictive of a Gaussian-noise regression: a mixture over θ draws.

    Parameters
    ----------
    samples
        Network outputs f(x; θ_s) for S draws of θ, shape (S, n, out).
    noise_std
        The observation noise σ > 0: y | θ ~ N(f(x; θ), σ²).

    Notes
    -----
    p(y | x) ≈ (1/S) Σ_s N(y | f_s, σ²). Its variance is Var_s f + σ², so
    ``std² = epistemic_std² + aleatoric_std²`` exactly (sd over S with ddof 0).
    """

    def __init__(self, samples, noise_std: float):
        self._samples = float_array("samples", samples, (3,), "(S, n, out)")
        positive = isinstance(noise_std, numbers.Real) and math.isfinite(noise_std) and noise_std > 0
        if isinstance(noise_std, bool) or not positive:
            raise ValueError(f"noise_std must be a positive finite number, got {noise_std!r}")
        self.noise_std = float(noise_std)

    @property
    def samples(self) -> np.ndarray:
        """Network outputs for each θ draw, (S, n, out)."""
        return self._samples

    @property
    def mean(self) -> np.ndarray:
        """Predictive mean, (n, out)."""
        return self._samples.mean(axis=0)

    @property
    def epistemic_std(self) -> np.ndarray:
        """Spread of the network output over θ, (n, out)."""
        return self._samples.std(axis=0)

    @property
    def aleatoric_std(self) -> np.ndarray:
        """The observation noise σ, broadcast to (n, out)."""
        return np.full(self._samples.shape[1:], self.noise_std)

    @property
    def std(self) -> np.ndarray:
        """Total predictive sd, sqrt(epistemic² + aleatoric²), (n, out)."""
        return np.sqrt(self.epistemic_std**2 + self.noise_std**2)

    def interval(self, level: float = 0.9) -> tuple:
        """Central predictive interval holding probability ``level`` at every point.

        Parameters
        ----------
        level
            Probability inside the interval, 0 < level < 1.

        Returns
        -------
        (lower, upper)
            Arrays (n, out): the (1 − level)/2 and (1 + level)/2 quantiles of the mixture.

        Notes
        -----
        Exact quantiles of the mixture (not mean ± z·std): vectorised Newton steps, with
        bisection as a safeguard, on its CDF (1/S) Σ_s Φ((y − f_s)/σ); the upper one as
        minus the lower quantile of −y, so both are found where the CDF is small and accurate.
        """
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
            raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
        tail = 0.5 * (1.0 - float(level))
        lower = _mixture_lower_quantile(self._samples, self.noise_std, tail)
        upper = -_mixture_lower_quantile(-self._samples, self.noise_std, tail)
        return lower, upper

    def log_density(self, y) -> float:
        """Mean log predictive density of observed targets, per point.

        Parameters
        ----------
        y
            Observed targets, shape (n, out), or (n,) when out = 1.

        Returns
        -------
        float
            (1/n) Σ_i log (1/S) Σ_s Π_o N(y_io | f_sio, σ²), computed with logsumexp.
        """
        n_draws, n, out = self._samples.shape
        y = np.asarray(y, dtype=np.float64)
        if y.shape == (n,) and out == 1:
            y = y[:, None]
        if y.shape != (n, out):
            expected = f"({n},) or ({n}, 1)" if out == 1 else f"({n}, {out})"
            raise ValueError(f"y has shape {y.shape} but samples has shape {self._samples.shape}: expected {expected}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"y must be finite, got non-finite values in an array of shape {y.shape}")
        z = (y - self._samples) / self.noise_std
        log_pdf = np.sum(-0.5 * z**2 - np.log(self.noise_std) - 0.5 * LOG_2PI, axis=-1)  # (S, n)
        return float(np.mean(special.logsumexp(log_pdf, axis=0) - np.log(n_draws)))

    def __repr__(self) -> str:
        return f"Predictive(samples shape={self._samples.shape}, noise_std={self.noise_std})"
