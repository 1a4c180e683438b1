"""Posteriors built from trained weight vectors: an ensemble's members, a dropout network's masked weights.

- :class:`EnsemblePosterior` — the equal-weight mixture of M fitted members (deep ensembles).
- :class:`DropoutPosterior` — MC dropout as a distribution over weights: a draw zeroes
  the weights leaving each dropped unit and scales the rest by 1/(1 − p).

Both hand out weight vectors (n, D) from ``sample``, so ``predict``,
``compare`` and saving work as for every other posterior.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._rng import as_generator
from ._validate import count as _check_count
from ._validate import float_array as _float_array
from .posteriors import Posterior

__all__ = ["EnsemblePosterior", "DropoutPosterior", "dropout_multipliers"]


class EnsemblePosterior(Posterior):
    """The equal-weight mixture of an ensemble's members, (1/M) Σ_m δ(θ − θ_m).

    Parameters
    ----------
    members
        Shape (M, D): one fitted parameter vector a row.
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).

    Notes
    -----
    ``sample(n)`` is stratified: every member appears ⌊n/M⌋ or ⌈n/M⌉ times
    (which ones get the extra copy, and the order, are random), so each row is
    still a uniform draw from the mixture, and ``predict`` with ``n_samples``
    a multiple of M is the exact equal mixture rather than a noisy resample of
    it. ESS and R-hat are not reported: the members are not a Markov chain.
    """

    def __init__(self, members, **kwargs):
        self._members = _float_array("members", members, (2,), "(M, D)")
        super().__init__(**kwargs)

    @property
    def members(self) -> np.ndarray:
        """The fitted members, (M, D)."""
        return self._members

    @property
    def n_members(self) -> int:
        """M."""
        return int(self._members.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """The members' mean, (D,)."""
        return self._members.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """The members' standard deviation (ddof 0: the mixture's own spread), (D,)."""
        return self._members.std(axis=0)

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` members, each used ⌊n/M⌋ or ⌈n/M⌉ times, in random order, (n, D)."""
        n, rng = _check_count("n", n), as_generator(seed)
        n_members = self.n_members
        whole, extra = divmod(n, n_members)
        rows = np.concatenate([np.tile(np.arange(n_members), whole), rng.choice(n_members, extra, replace=False)])
        return self._members[rng.permutation(rows)]

    def __repr__(self) -> str:
        return f"EnsemblePosterior(n_members={self.n_members}, dim={self.dim})"


def dropout_multipliers(units: np.ndarray, keep: np.ndarray, p: float) -> np.ndarray:
    """Per-weight factors for dropout masks: 1/(1 − p) or 0 on weights leaving a unit, 1 elsewhere.

    Parameters
    ----------
    units
        (D,) integers: the unit weight i leaves, or −1 for a weight no dropped unit feeds.
    keep
        (S, U) booleans, True where the unit is kept.
    p
        The drop probability.

    Returns
    -------
    numpy.ndarray
        (S, D): θ ⊙ r is the weight vector of the network with those units dropped.
    """
    factors = np.ones((keep.shape[0], units.size))
    leaving = units >= 0
    factors[:, leaving] = keep[:, units[leaving]] / (1.0 - p)
    return factors


class DropoutPosterior(Posterior):
    """MC dropout (Gal & Ghahramani 2016) as a distribution over weight vectors.

    Parameters
    ----------
    theta
        The trained weights, (D,).
    p
        The drop probability, 0 < p < 1.
    units
        (D,) integers: which unit (0 … U−1) each weight leaves, −1 for weights
        no dropped unit feeds (the first layer's, biases, the inputs to nothing).
    **kwargs
        ``model``, ``diagnostics``, ``history``, ``cost``, ``settings`` (see ``Posterior``).

    Notes
    -----
    A draw keeps each unit with probability 1 − p (z_j ~ Bernoulli(1 − p))
    and returns θ̃ = θ ⊙ r with r_i = z_{u(i)}/(1 − p) for the weights leaving
    unit u(i) and r_i = 1 otherwise: dropping unit j is zeroing the weights
    leaving it. Hence E θ̃ = θ exactly, and sd θ̃_i = |θ_i| √(p/(1 − p)) on
    dropped weights, 0 elsewhere.

    References
    ----------
    Gal, Y. and Ghahramani, Z. (2016). Dropout as a Bayesian approximation:
    representing model uncertainty in deep learning. ICML.
    """

    def __init__(self, theta, p, units, **kwargs):
        self._theta = _float_array("theta", theta, (1,), "(D,)")
        p = float(p) if isinstance(p, (numbers.Real, np.ndarray)) and np.ndim(p) == 0 else p
        if isinstance(p, bool) or not isinstance(p, float) or not 0.0 < p < 1.0:
            raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
        self.p = p
        units = np.array(units)
        if units.shape != self._theta.shape or not np.issubdtype(units.dtype, np.integer) or units.min() < -1:
            raise ValueError(
                f"units must be integers >= -1 of shape {self._theta.shape} (like theta), "
                f"got dtype {units.dtype} and shape {units.shape}"
            )
        units = units.astype(np.int64)
        units.flags.writeable = False
        self._units = units
        self.n_units = int(units.max()) + 1
        std = np.where(units >= 0, np.abs(self._theta) * np.sqrt(p / (1.0 - p)), 0.0)
        std.flags.writeable = False
        self._std = std
        super().__init__(**kwargs)

    @property
    def theta(self) -> np.ndarray:
        """The trained weights, (D,)."""
        return self._theta

    @property
    def units(self) -> np.ndarray:
        """Unit of each weight (−1: never dropped), (D,)."""
        return self._units

    @property
    def mean(self) -> np.ndarray:
        """E θ̃ = θ (the 1/(1 − p) scaling makes the masks average to one), (D,)."""
        return self._theta

    @property
    def std(self) -> np.ndarray:
        """|θ_i| √(p/(1 − p)) on weights leaving a unit, 0 elsewhere, (D,)."""
        return self._std

    def draw_masks(self, n: int, seed=None) -> np.ndarray:
        """``n`` dropout masks, (n, U) booleans, True where a unit is kept (probability 1 − p)."""
        return as_generator(seed).random((_check_count("n", n), self.n_units)) >= self.p

    def masked_weights(self, keep) -> np.ndarray:
        """The weight vectors (n, D) of the network with the masks ``keep`` (n, U) applied."""
        keep = np.asarray(keep)
        if keep.ndim != 2 or keep.shape[1] != self.n_units or keep.dtype != bool:
            raise ValueError(f"keep must be booleans of shape (n, {self.n_units}), got {keep.dtype} {keep.shape}")
        return self._theta * dropout_multipliers(self._units, keep, self.p)

    def sample(self, n: int, seed=None) -> np.ndarray:
        """``n`` weight vectors, one fresh mask each: ``masked_weights(draw_masks(n, seed))``, (n, D)."""
        return self.masked_weights(self.draw_masks(n, seed))

    def __repr__(self) -> str:
        return f"DropoutPosterior(dim={self.dim}, n_units={self.n_units}, p={self.p})"
