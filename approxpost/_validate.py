"""Argument checks shared by the result objects and the estimators.

Each raises a ``ValueError`` that names the argument and, for arrays, the
shape it got, so bad input fails where it enters instead of as a NaN later.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["float_array", "count"]


def float_array(name: str, value, ndims: tuple, shape_hint: str) -> np.ndarray:
    """A finite, non-empty, read-only float64 copy of ``value`` with ``ndim`` in ``ndims``."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape {shape_hint}, got {type(value).__name__}") from err
    if array.ndim not in ndims:
        raise ValueError(f"{name} must have shape {shape_hint}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got non-finite values in an array of shape {array.shape}")
    array.flags.writeable = False
    return array


def count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or a ``ValueError`` unless it is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)
