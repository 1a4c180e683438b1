"""One way to turn a user's ``seed`` into a :class:`numpy.random.Generator`."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_generator"]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a Generator for ``seed``.

    Parameters
    ----------
    seed
        An int (reproducible stream), an existing Generator (used as is, so a
        caller can thread one stream through several calls) or None (fresh
        entropy from the OS).

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")
