"""What every method returns: one ``Posterior`` interface and the ``Predictive`` it makes.

- :class:`SamplePosterior` — MCMC draws (n_chains, n_draws, D), with ESS and R-hat.
- :class:`WeightedPosterior` — importance-sampling particles and log weights.
- :class:`GaussianPosterior` — N(mean, diag(std²)) from VI, or N(mean, cov) exactly.

Each has ``sample(n, seed)``, ``mean``, ``std``, ``dim``, ``predict(x)``,
``diagnostics``, ``history``, ``cost``, ``settings`` and ``save(path)``. The
arrays a posterior holds are read-only copies: results are not edited in place.
A posterior never imports a method (data flow one way, DESIGN.md §2).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
from scipy import special

from . import diagnostics as _diag
from ._rng import as_generator
from ._validate import count as _check_count
from ._validate import float_array as _float_array
from .distributions import MultivariateNormal, Normal
from .predictive import ClassPredictive, Predictive

__all__ = [
    "Cost",
    "Predictive",
    "ClassPredictive",
    "Posterior",
    "SamplePosterior",
    "WeightedPosterior",
    "GaussianPosterior",
    "PointPosterior",
]

_MIN_DRAWS_FOR_DIAGNOSTICS = 4  # what approxpost.diagnostics.ess / rhat need per chain


class Cost(NamedTuple):
    """What a fit spent: gradient and density evaluations of the model (one per θ row), wall time."""

    grad_evals: int
    density_evals: int
    seconds: float


# --------------------------------------------------------------------------- validation


def _as_cost(cost) -> Cost:
    if cost is None:
        return Cost(0, 0, 0.0)
    try:
        grad_evals, density_evals, seconds = cost
        cost = Cost(int(grad_evals), int(density_evals), float(seconds))
    except (TypeError, ValueError) as err:
        raise ValueError(f"cost must be a Cost(grad_evals, density_evals, seconds), got {cost!r}") from err
    if min(cost) < 0 or not math.isfinite(cost.seconds):
        raise ValueError(f"cost must hold non-negative finite counts and seconds, got {cost!r}")
    return cost


def _as_dict(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    return dict(value)  # a copy: the caller's dict is not changed when diagnostics are filled in


def _as_history(history) -> dict:
    history = _as_dict("history", history)
    for name, values in history.items():
        values = np.asarray(values)
        if not isinstance(name, str) or values.ndim == 0 or values.dtype.hasobject:
            raise ValueError(
                f"history must map names to numeric arrays with a leading iteration axis, "
                f"got history[{name!r}] of shape {values.shape} and dtype {values.dtype}"
            )
        history[name] = values
    return history


# --------------------------------------------------------------------------- posteriors


class Posterior:
    """The interface every method's result shares.

    Parameters
    ----------
    model
        The model it approximates (needed by ``predict``), or None.
    diagnostics
        Method-specific scalars and arrays (e.g. ``acceptance_rate``, ``ess``).
    history
        Per-iteration arrays (e.g. ``log_joint``, ``elbo``), leading axis the iteration.
    cost
        ``Cost(grad_evals, density_evals, seconds)``; default all zero.
    settings
        JSON-able dict of the method's name and settings (set by ``fit``).
    """

    def __init__(self, *, model=None, diagnostics=None, history=None, cost=None, settings=None):
        self.model = model
        self.diagnostics = _as_dict("diagnostics", diagnostics)
        self.history = _as_history(history)
        self.cost = _as_cost(cost)
        self.settings = _as_dict("settings", settings)

    @property
    def model(self):
        """The model (None if not known); setting one of another dimension is a ``ValueError``."""
        return self._model

    @model.setter
    def model(self, model) -> None:
        dim = getattr(model, "dim", None)
        if isinstance(dim, numbers.Integral) and dim > 0 and dim != self.dim:
            raise ValueError(f"model has dim={dim} but the posterior has dim={self.dim}")
        self._model = model

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` draws of θ, shape (n, D)."""
        raise TypeError(f"{type(self).__name__} must define sample(n, seed=None)")

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean, (D,)."""
        raise TypeError(f"{type(self).__name__} must define mean")

    @property
    def std(self) -> np.ndarray:
        """Posterior standard deviation per coordinate, (D,)."""
        raise TypeError(f"{type(self).__name__} must define std")

    @property
    def dim(self) -> int:
        """Dimension D of θ."""
        return int(np.shape(self.mean)[0])

    def predict(self, x, n_samples: int = 200, seed=None):
        """The posterior predictive at inputs ``x`` from ``n_samples`` draws of θ.

        Parameters
        ----------
        x
            Inputs, whatever ``self.model.predict`` accepts (e.g. (n, p)).
        n_samples
            Number of θ draws S.
        seed
            int, Generator or None.

        Returns
        -------
        Predictive or ClassPredictive
            Whatever the model's likelihood calls for: ``model.predictive(theta, x)``
            (a regression model gives a ``Predictive`` from ``model.predict`` and
            ``model.noise_std``, a classifier a ``ClassPredictive``).
        """
        self._check_predict_model()
        theta = self.sample(_check_count("n_samples", n_samples), seed=as_generator(seed))
        return self._predictive(theta, x)

    def _check_predict_model(self) -> None:
        if self.model is None:
            raise ValueError(
                "predict needs a model, but this posterior has model=None: pass model= (e.g. to approxpost.load)"
            )
        if not callable(getattr(self.model, "predict", None)):
            raise ValueError(f"predict needs a model with predict(theta, x); {type(self.model).__name__} has none")

    def _predictive(self, theta, x, weights=None):
        """The model builds its own predictive; a bare object with ``predict`` and ``noise_std`` gets the Gaussian one."""
        if callable(getattr(self.model, "predictive", None)):
            return self.model.predictive(theta, x, weights=weights)
        noise_std = getattr(self.model, "noise_std", None)
        if noise_std is None:
            raise ValueError(f"predict needs a Gaussian noise_std, but {type(self.model).__name__} has noise_std=None")
        return Predictive(self.model.predict(theta, x), noise_std)

    def save(self, path) -> None:
        """Write this posterior to exactly ``path`` (an ``.npz``); see :func:`approxpost.io.save`."""
        from .io import save  # io rebuilds posteriors, so it imports this module, not the reverse

        save(self, path)

    def to_arviz(self, n_draws: int = 1000, seed=None):
        """This posterior as an ``arviz.InferenceData`` (needs ArviZ); see :func:`approxpost.arviz.to_arviz`."""
        from .arviz import to_arviz  # ArviZ is optional: imported only when asked for

        return to_arviz(self, n_draws=n_draws, seed=seed)

    def __repr__(self) -> str:
        method = self.settings.get("method")
        return f"{type(self).__name__}(dim={self.dim}" + (f", method={method!r})" if method else ")")


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
    """

    def __init__(self, draws, **kwargs):
        draws = _float_array("draws", draws, (2, 3), "(n_chains, n_draws, D) or (n_draws, D)")
        self._draws = draws[None] if draws.ndim == 2 else draws
        super().__init__(**kwargs)
        missing = {"ess", "rhat"} - set(self.diagnostics)
        if missing and self._draws.shape[1] >= _MIN_DRAWS_FOR_DIAGNOSTICS:
            computed = dict(zip(("ess", "rhat"), _diag.ess_and_rhat(self._draws)))
            self.diagnostics.update({key: computed[key] for key in missing})

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
