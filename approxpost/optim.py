"""Gradient-descent optimisers as pure updates: ``params, state = opt.update(params, grads, state)``.

Convention: every optimiser here **minimises**. ``update`` moves the
parameters *against* ``grads``, so pass the gradient of a loss. Variational
inference maximises the ELBO, so its methods pass ``-∇ELBO`` (the gradient of
the loss ``-ELBO``)::

    opt = Adam(learning_rate=1e-2)
    state = opt.init((mu, rho))
    (mu, rho), state = opt.update((mu, rho), (-grad_mu, -grad_rho), state)

Nothing is mutated: ``update`` returns new arrays and a new state, so a
student can keep every iterate, and one optimiser object can drive many runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _validate as check

__all__ = ["Adam", "AdamState", "SGD", "SGDState"]


def _check_rate(name: str, value, upper: float | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0 (and < ``upper`` when given)."""
    if upper is None:
        check.positive(name, value)
    else:
        check.number(name, value, 0.0, upper, closed="neither")


def _as_arrays(name: str, values: Sequence) -> tuple:
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{name} must be a tuple or list of arrays, got {type(values).__name__}")
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def _check_matching(params: tuple, grads: tuple) -> None:
    if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads)):
        raise ValueError(
            f"grads must match params one to one in shape, got params {[p.shape for p in params]} "
            f"and grads {[g.shape for g in grads]}"
        )


class SGDState(NamedTuple):
    """Plain gradient descent keeps only the step count."""

    step: int


@dataclasses.dataclass(frozen=True)
class SGD:
    """Gradient descent: θ ← θ − η g.

    Parameters
    ----------
    learning_rate
        Step size η > 0.
    """

    learning_rate: float

    def __post_init__(self):
        _check_rate("learning_rate", self.learning_rate)

    def init(self, params: Sequence) -> SGDState:
        """The state before the first step."""
        _as_arrays("params", params)
        return SGDState(step=0)

    def update(self, params: Sequence, grads: Sequence, state: SGDState) -> tuple:
        """One descent step on the loss whose gradient is ``grads``: ``(new params tuple, new state)``."""
        params, grads = _as_arrays("params", params), _as_arrays("grads", grads)
        _check_matching(params, grads)
        new = tuple(p - self.learning_rate * g for p, g in zip(params, grads))
        return new, SGDState(step=state.step + 1)


class AdamState(NamedTuple):
    """Adam's running moments: ``step`` t, first moments ``m`` and second moments ``v`` (one array per parameter)."""

    step: int
    m: tuple
    v: tuple


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015): descent scaled per coordinate by running gradient moments.

    Parameters
    ----------
    learning_rate
        Step size η > 0: the largest a single step moves a coordinate, roughly.
    beta1, beta2
        Decay rates of the first and second moment averages, in (0, 1).
    eps
        Added to √v̂ so a coordinate with a vanishing gradient does not divide by zero.

    Notes
    -----
    With g the gradient of the loss at step t = 1, 2, …:
    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
    θ ← θ − η m̂/(√v̂ + ε). The bias corrections undo the zero initial moments.

    References
    ----------
    Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
    """

    learning_rate: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        _check_rate("learning_rate", self.learning_rate)
        _check_rate("beta1", self.beta1, upper=1.0)
        _check_rate("beta2", self.beta2, upper=1.0)
        _check_rate("eps", self.eps)

    def init(self, params: Sequence) -> AdamState:
        """Zero moments shaped like ``params`` (a tuple or list of arrays)."""
        params = _as_arrays("params", params)
        return AdamState(step=0, m=tuple(np.zeros_like(p) for p in params), v=tuple(np.zeros_like(p) for p in params))

    def update(self, params: Sequence, grads: Sequence, state: AdamState) -> tuple:
        """One Adam step *down* the loss whose gradient is ``grads``.

        Parameters
        ----------
        params
            Tuple or list of arrays.
        grads
            Gradients of the loss to minimise, one per parameter, same shapes.
        state
            The ``AdamState`` from ``init`` or the previous ``update``.

        Returns
        -------
        tuple
            ``(new params as a tuple, new AdamState)``; the inputs are not modified.
        """
        params, grads = _as_arrays("params", params), _as_arrays("grads", grads)
        _check_matching(params, grads)
        step = state.step + 1
        b1, b2 = self.beta1, self.beta2
        # fold both bias corrections into the step size: η √(1−β₂ᵗ)/(1−β₁ᵗ) m/(√v + ε√(1−β₂ᵗ))
        # is the textbook update exactly, with two fewer array passes per parameter
        correction2 = math.sqrt(1.0 - b2**step)
        rate = self.learning_rate * correction2 / (1.0 - b1**step)
        eps = self.eps * correction2
        new_params, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, state.m, state.v):
            # the textbook's operations in its order, so its bits; the temporaries share one scratch
            # array, which ends as the new p: four fresh arrays a parameter (m, v, the step, the scratch)
            # instead of one an operation, a tenth of the update's time at D = 2701. Inputs are never written.
            scratch = np.empty_like(p)
            m = b1 * m
            m += np.multiply(1.0 - b1, g, out=scratch)  # m ← β₁m + (1−β₁)g
            v = b2 * v
            np.multiply(g, g, out=scratch)
            v += np.multiply(scratch, 1.0 - b2, out=scratch)  # v ← β₂v + (1−β₂)g²
            step_ = rate * m
            step_ /= np.add(np.sqrt(v, out=scratch), eps, out=scratch)  # rate·m/(√v + ε)
            new_params.append(np.subtract(p, step_, out=scratch))
            new_m.append(m)
            new_v.append(v)
        return tuple(new_params), AdamState(step=step, m=tuple(new_m), v=tuple(new_v))
