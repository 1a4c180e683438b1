"""Finite-difference gradient check along random directions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._rng import as_generator
from .core import value_and_grad
from .tape import Tape

__all__ = ["check_grad", "directional_derivative"]


def directional_derivative(f: Callable, x: np.ndarray, direction: np.ndarray, step: float) -> float:
    """Richardson-extrapolated central difference of ``f`` at ``x`` along ``direction``.

    Notes
    -----
    With ``D(h) = (f(x + h v) - f(x - h v)) / 2h`` the combination
    ``(4 D(h/2) - D(h)) / 3`` cancels the O(h²) term, leaving O(h⁴) truncation
    error, so a step large enough to keep rounding error small still gives a
    derivative accurate to ~1e-10.
    """

    def central(h):
        return (float(np.sum(f(x + h * direction))) - float(np.sum(f(x - h * direction)))) / (2.0 * h)

    return (4.0 * central(step / 2.0) - central(step)) / 3.0


def check_grad(f: Callable, x, seed=0, n_directions: int = 5, step: float = 1e-3, replay: bool = False) -> float:
    """Largest relative error of ``grad(f)`` against central differences.

    Parameters
    ----------
    f
        Scalar-valued function of one array, written with ``ad`` ops.
    x
        The point to check at.
    seed
        Seed for the random directions.
    n_directions
        How many random unit directions ``v`` to compare ``∇f(x)·v`` on.
    step
        Finite-difference step along ``v``.
    replay
        Check the fast path instead: the gradient from a :class:`~approxpost.autodiff.Tape`
        recorded at ``x`` and replayed there.

    Returns
    -------
    float
        ``max_v |fd_v - ∇f·v| / max(|fd_v|, |∇f·v|, 1e-12)``.
    """
    x = np.array(x, dtype=np.float64)
    rng = as_generator(seed)
    if replay:
        value, pullback = Tape(f, x).vjp(x)
        gradient = pullback(np.ones(np.shape(value)))
    else:
        _, gradient = value_and_grad(f)(x)
    worst = 0.0
    for _ in range(n_directions):
        direction = rng.standard_normal(x.shape)
        direction /= max(np.linalg.norm(direction), 1e-300)
        numeric = directional_derivative(f, x, direction, step)
        analytic = float(np.sum(gradient * direction))
        scale = max(abs(numeric), abs(analytic), 1e-12)
        worst = max(worst, abs(numeric - analytic) / scale)
    return worst
