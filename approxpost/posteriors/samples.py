"""Posteriors made of draws: MCMC's equally weighted draws and importance sampling's weighted particles."""

from __future__ import annotations

import numpy as np
from scipy import special

from .. import diagnostics as _diag
from .._rng import as_generator
from .._validate import count as _check_count
from .._validate import float_array as _float_array
from .base import _MIN_DRAWS_FOR_DIAGNOSTICS, Posterior

__all__ = ["SamplePosterior", "WeightedPosterior"]


class SamplePosterior(Posterior):
    """MCMC draws: every draw equally weighted.

    Parameters
    ----------
    draws
        Shape (n_chains, n_draws, D), or (n_draws, D) for one chain.
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).

    Notes
    -----
    Unless given, ``diagnostics`` gets ``ess`` and ``rhat`` ((D,) arrays from
    :mod:`approxpost.diagnostics`) when each chain holds at least 4 draws.
    They are computed when ``diagnostics`` is first read, not when the
    posterior is built: ranking every coordinate's draws costs more than a
    short fit's sampling (3.7 s for 8 × 300 draws of 2701 coordinates), and
    a run that only looks at its draws or history need not pay for it.
    """

    def __init__(self, draws, **kwargs):
        draws = _float_array("draws", draws, (2, 3), "(n_chains, n_draws, D) or (n_draws, D)")
        self._draws = draws[None] if draws.ndim == 2 else draws
        super().__init__(**kwargs)
        # after the diagnostics given (whose setter clears it): only those are filled in on first read
        self._fill_diagnostics = self._draws.shape[1] >= _MIN_DRAWS_FOR_DIAGNOSTICS

    @property
    def diagnostics(self) -> dict:
        """The diagnostics given, with ``ess`` and ``rhat`` added (computed once, on first read) unless given."""
        if self._fill_diagnostics:
            self._fill_diagnostics = False
            missing = [key for key in ("ess", "rhat") if key not in self._diagnostics]
            if missing:
                computed = dict(zip(("ess", "rhat"), _diag.ess_and_rhat(self._draws)))
                self._diagnostics.update({key: computed[key] for key in missing})
        return self._diagnostics

    @diagnostics.setter
    def diagnostics(self, diagnostics: dict) -> None:
        # a dict set after construction is kept as it is, as it was when ESS and R-hat were filled in eagerly
        self._diagnostics, self._fill_diagnostics = diagnostics, False

    @property
    def draws(self) -> np.ndarray:
        """All draws, (n_chains, n_draws, D)."""
        return self._draws

    def _flat(self) -> np.ndarray:
        return self._draws.reshape(-1, self._draws.shape[-1])

    @property
    def mean(self) -> np.ndarray:
        """Mean over all draws, (D,)."""
        return self._flat().mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over all draws (ddof 0), (D,)."""
        return self._flat().std(axis=0)

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` of the draws picked uniformly: without replacement if n ≤ all draws, else with.

        Parameters
        ----------
        n
            Number of rows.
        seed
            int, Generator or None.

        Returns
        -------
        numpy.ndarray
            (n, D), each row a row of ``draws``.
        """
        n = _check_count("n", n)
        flat = self._flat()
        rows = as_generator(seed).choice(flat.shape[0], size=n, replace=n > flat.shape[0])
        return flat[rows]

    def __repr__(self) -> str:
        n_chains, n_draws, dim = self._draws.shape
        return f"SamplePosterior(n_chains={n_chains}, n_draws={n_draws}, dim={dim})"


class WeightedPosterior(Posterior):
    """Importance-sampling particles with unnormalised log weights.

    Parameters
    ----------
    particles
        Shape (n, D).
    log_weights
        Shape (n,); ``-inf`` (zero weight) allowed, NaN and ``+inf`` not, nor all ``-inf``.
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).

    Notes
    -----
    ``diagnostics`` gets ``kish_ess``, ``khat`` and ``log_evidence``, always
    recomputed from the weights. log Ẑ = logsumexp(log w) − log n.

    References
    ----------
    Kish (1965); Vehtari, Simpson, Gelman, Yao and Gabry (2024), Pareto smoothed
    importance sampling, JMLR 25(72).
    """

    def __init__(self, particles, log_weights, **kwargs):
        self._particles = _float_array("particles", particles, (2,), "(n, D)")
        n = self._particles.shape[0]
        try:
            log_weights = np.array(log_weights, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"log_weights must be a numeric array of shape ({n},), got {type(log_weights).__name__}"
            ) from err
        if log_weights.shape != (n,):
            raise ValueError(f"log_weights has shape {log_weights.shape} but particles has {n} rows: expected ({n},)")
        if np.any(np.isnan(log_weights)) or np.any(log_weights == np.inf) or np.all(log_weights == -np.inf):
            raise ValueError(
                f"log_weights must be -inf or finite, not NaN or +inf, and not all -inf (shape {log_weights.shape})"
            )
        log_weights.flags.writeable = False
        self._log_weights = log_weights
        log_total = special.logsumexp(log_weights)
        self._weights = np.exp(log_weights - log_total)
        self._weights.flags.writeable = False
        super().__init__(**kwargs)  # after the weights: a given model= is checked against the weighted mean's dim
        self._ess = _diag.kish_ess(log_weights)
        self._khat = _diag.psis_khat(log_weights)
        self._log_evidence = float(log_total - np.log(n))
        self.diagnostics.update(kish_ess=self._ess, khat=self._khat, log_evidence=self._log_evidence)

    @property
    def particles(self) -> np.ndarray:
        """The particles, (n, D)."""
        return self._particles

    @property
    def log_weights(self) -> np.ndarray:
        """Unnormalised log weights, (n,)."""
        return self._log_weights

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights (summing to 1), computed in log space, (n,)."""
        return self._weights

    @property
    def ess(self) -> float:
        """Kish effective sample size (Σ w)² / Σ w²."""
        return self._ess

    @property
    def khat(self) -> float:
        """Pareto k-hat of the weights: below 0.7 the estimate is reliable."""
        return self._khat

    @property
    def log_evidence(self) -> float:
        """Estimate of log p(D): the log of the mean weight."""
        return self._log_evidence

    @property
    def mean(self) -> np.ndarray:
        """Weighted mean Σ w_i θ_i, (D,)."""
        return self._weights @ self._particles

    @property
    def std(self) -> np.ndarray:
        """Weighted standard deviation, (D,)."""
        return np.sqrt(self._weights @ (self._particles - self.mean) ** 2)

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` particles resampled with probabilities ``weights`` (multinomial), (n, D)."""
        n = _check_count("n", n)
        rows = as_generator(seed).choice(self._particles.shape[0], size=n, p=self._weights)
        return self._particles[rows]

    def predict(self, x, n_samples: int = 200, seed=None):
        """The predictive at ``x``; weighted particles where the model's predictive takes weights.

        For a model with ``weighted_predictive`` (a classifier): if at most
        ``n_samples`` particles carry weight (> 0 in floating point), exactly
        those, with their weights: no resampling noise. Otherwise ``n_samples``
        multinomial draws as for any posterior, each distinct particle
        evaluated once and weighted by how often it was drawn. Either way at
        most ``n_samples`` network passes. Other models (regression): as
        :meth:`Posterior.predict`, from resampled draws.
        """
        if not getattr(self.model, "weighted_predictive", False):
            return super().predict(x, n_samples=n_samples, seed=seed)
        self._check_predict_model()
        n_samples = _check_count("n_samples", n_samples)
        carrying = np.flatnonzero(self._weights > 0)
        if carrying.size <= n_samples:
            rows, weights = carrying, self._weights[carrying]
        else:
            drawn = as_generator(seed).choice(self._particles.shape[0], size=n_samples, p=self._weights)
            rows, counts = np.unique(drawn, return_counts=True)
            weights = counts / n_samples
        return self._predictive(self._particles[rows], x, weights=weights)

    def __repr__(self) -> str:
        n, dim = self._particles.shape
        return f"WeightedPosterior(n_particles={n}, dim={dim}, kish_ess={self.ess:.1f})"
