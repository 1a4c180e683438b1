"""The ``Posterior`` interface every method returns, and the ``Cost`` of a fit."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .._rng import as_generator
from .._validate import count as _check_count
from ..predictive import Predictive

__all__ = ["Cost", "Posterior"]

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
        from ..io import save  # io rebuilds posteriors, so it imports this module, not the reverse

        save(self, path)

    def to_arviz(self, n_draws: int = 1000, seed=None):
        """This posterior as an ``arviz.InferenceData`` (needs ArviZ); see :func:`approxpost.arviz.to_arviz`."""
        from ..arviz import to_arviz  # ArviZ is optional: imported only when asked for

        return to_arviz(self, n_draws=n_draws, seed=seed)

    def __repr__(self) -> str:
        method = self.settings.get("method")
        return f"{type(self).__name__}(dim={self.dim}" + (f", method={method!r})" if method else ")")
