"""Argument checks, in one place and with one message shape: "`name` must be ..., got ...".

Each raises a ``ValueError`` that names the argument and, for arrays, the
shape it got, so bad input fails where it enters instead of as a NaN later.
Settings dataclasses, models, datasets, estimators and result objects all
check their arguments with these.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["float_array", "count", "positive", "number", "probability", "flag", "optional", "labels", "probabilities"]


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


def _is_integer(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Integral)


def _is_real(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)


def count(name: str, value, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int, or a ``ValueError`` unless it is an integer of at least ``minimum``.

    ``why`` (e.g. ``"one step's cost"``) is added to the message after the bound.
    """
    if not _is_integer(value) or value < minimum:
        if minimum == 1:
            wanted = "a positive integer"
        elif minimum == 0:
            wanted = "a non-negative integer"
        else:
            wanted = f"an integer of at least {minimum}"
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name} must be {wanted}{reason}, got {value!r}")
    return int(value)


def number(name: str, value, low: float = -math.inf, high: float = math.inf, *, closed: str = "both") -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high``, else ``ValueError``.

    ``closed`` is which ends belong to the interval: ``"both"``, ``"left"``, ``"right"`` or ``"neither"``.
    """
    left, right = closed in ("both", "left"), closed in ("both", "right")
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        ok = (value >= low if left else value > low) and (value <= high if right else value < high)
    if not ok:
        if math.isinf(low) and math.isinf(high):
            wanted = "a finite number"
        elif math.isinf(high):
            wanted = f"a finite number {'>=' if left else '>'} {low:g}"
        elif math.isinf(low):
            wanted = f"a finite number {'<=' if right else '<'} {high:g}"
        else:
            wanted = f"a number in {'[' if left else '('}{low:g}, {high:g}{']' if right else ')'}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def positive(name: str, value) -> float:
    """``value`` as a float, or a ``ValueError`` unless it is a positive finite number."""
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def probability(name: str, value) -> float:
    """``value`` as a float, or a ``ValueError`` unless 0 < value < 1."""
    if not (_is_real(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def flag(name: str, value) -> bool:
    """``value`` as a bool, or a ``ValueError`` unless it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def optional(check, name: str, value, *args, **kwargs):
    """``None`` if ``value`` is None, else ``check(name, value, *args, **kwargs)``."""
    return None if value is None else check(name, value, *args, **kwargs)


def labels(name: str, value, n_classes: int, n: int | None = None) -> np.ndarray:
    """Class labels as an int64 (n,) array, or an error unless they are whole numbers in 0..n_classes − 1.

    Floats holding whole numbers (``1.0``) are accepted, since data often arrive
    as float arrays; booleans, fractions and out-of-range labels are not.
    """
    array = np.asarray(value)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class labels, got shape {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} labels but there are {n} points: the lengths must match")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise ValueError(f"{name} must hold whole-number class labels, got e.g. {array[array != np.round(array)][:3]}")
    if array.min() < 0 or array.max() >= n_classes:
        raise ValueError(
            f"{name} must lie in 0..{n_classes - 1} ({n_classes} classes), got labels from {array.min():g} to {array.max():g}"
        )
    return array.astype(np.int64)


# rows of a softmax sum to 1 within a few ulps; 1e-6 also admits probabilities rounded to 7 digits
_SUM_TOL = 1e-6


def probabilities(name: str, value, ndims: tuple = (2,), shape_hint: str = "(n, K)") -> np.ndarray:
    """Class probabilities on the last axis: finite, in [0, 1], every row summing to 1 within 1e-6."""
    array = float_array(name, value, ndims, shape_hint)
    if array.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 classes on its last axis, got shape {array.shape}")
    if array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1], got values from {array.min():.3g} to {array.max():.3g}")
    sums = array.sum(axis=-1)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape))
    if abs(sums[worst] - 1.0) > _SUM_TOL:
        raise ValueError(
            f"{name} must sum to 1 over its last axis (shape {array.shape}), got {sums[worst]:.9g} at index {worst}"
        )
    return array
