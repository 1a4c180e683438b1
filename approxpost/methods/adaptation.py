"""Warm-up adaptation shared by the MCMC methods: dual averaging and a diagonal mass matrix.

- :class:`DualAveraging` tunes a step size so that the mean acceptance
  probability reaches a target (0.8 for HMC, 0.234 for random-walk
  Metropolis). Each update takes the acceptance probability of every chain
  and uses their mean: the chains share one step size, since they sample the
  same distribution, and pooling divides the noise of the acceptance
  statistic by the number of chains.
- :class:`Welford` accumulates the per-coordinate variance of the warm-up
  draws (all chains pooled) in one pass, for HMC's diagonal inverse mass
  matrix.

Both are immutable NamedTuples updated by pure functions, like the methods'
states, so a warm-up can be stepped through and inspected.

References
----------
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: adaptively
    setting path lengths in Hamiltonian Monte Carlo. *JMLR* 15, 1593–1623.
Nesterov, Y. (2009). Primal-dual subgradient methods for convex problems.
    *Mathematical Programming* 120(1), 221–259.
Welford, B. P. (1962). Note on a method for calculating corrected sums of
    squares and products. *Technometrics* 4(3), 419–420.
Chan, T. F., Golub, G. H. and LeVeque, R. J. (1979). Updating formulae and a
    pairwise algorithm for computing sample variances. Stanford CS report.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "DualAveraging",
    "dual_averaging_init",
    "dual_averaging_update",
    "Welford",
    "welford_init",
    "welford_update",
    "welford_variance",
    "warmup_windows",
]

# t₀ and κ are Hoffman & Gelman's (2014) and Stan's; γ is twice theirs: the iterates
# log ε_t fluctuate less, and since acceptance is concave in log ε near the target,
# their average ε̄ then lands closer to the target (with γ = 0.05 the kept ε̄ gave
# acceptance rates of 0.85–0.93 for a target of 0.8 after 500 warm-up iterations)
_GAMMA, _T0, _KAPPA = 0.1, 10.0, 0.75


class DualAveraging(NamedTuple):
    """The dual-averaging state: current and averaged log step size.

    ``log_step_size`` is the iterate used for the next warm-up step;
    ``log_step_size_avg`` the weighted average of the iterates, the step
    size kept after warm-up. ``h_bar`` is the running mean of (target −
    acceptance), ``mu`` the point the iterates shrink toward, ``count`` the
    number of updates.
    """

    log_step_size: float
    log_step_size_avg: float
    h_bar: float
    mu: float
    count: int


def dual_averaging_init(step_size: float) -> DualAveraging:
    """Start adapting from ``step_size``; iterates shrink toward μ = log(10 ε₀).

    Parameters
    ----------
    step_size
        The initial step size ε₀ > 0.

    Returns
    -------
    DualAveraging
    """
    log_step = float(np.log(step_size))
    return DualAveraging(log_step, 0.0, 0.0, float(np.log(10.0) + log_step), 0)


def dual_averaging_update(state: DualAveraging, accept_prob: np.ndarray, target_accept: float) -> DualAveraging:
    """One dual-averaging update from the last step's acceptance probabilities.

    Parameters
    ----------
    state
        The current :class:`DualAveraging`.
    accept_prob
        Acceptance probabilities of the last step, one per chain; their mean
        is the statistic driven to ``target_accept``. NaN counts as 0.
    target_accept
        δ, the target mean acceptance probability.

    Returns
    -------
    DualAveraging

    Notes
    -----
    H̄_t = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t)/(t + t₀);
    log ε_t = μ − √t/γ · H̄_t;
    log ε̄_t = t^(−κ) log ε_t + (1 − t^(−κ)) log ε̄_{t−1},
    with γ = 0.1, t₀ = 10, κ = 0.75 (Hoffman & Gelman 2014, Algorithm 5, whose γ is 0.05).
    """
    alpha = float(np.mean(np.nan_to_num(np.asarray(accept_prob, dtype=np.float64), nan=0.0)))
    t = state.count + 1
    weight = 1.0 / (t + _T0)
    h_bar = (1.0 - weight) * state.h_bar + weight * (target_accept - alpha)
    log_step = state.mu - np.sqrt(t) / _GAMMA * h_bar
    eta = t**-_KAPPA
    log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_size_avg
    return DualAveraging(float(log_step), float(log_step_avg), float(h_bar), state.mu, t)


class Welford(NamedTuple):
    """Running count, mean (D,) and sum of squared deviations (D,) of the draws seen so far."""

    count: int
    mean: np.ndarray
    m2: np.ndarray


def welford_init(dim: int) -> Welford:
    """An empty accumulator for ``dim`` coordinates."""
    return Welford(0, np.zeros(dim), np.zeros(dim))


def welford_update(state: Welford, draws: np.ndarray) -> Welford:
    """Add a batch of draws (one per chain) to the accumulator.

    Parameters
    ----------
    state
        The current :class:`Welford`.
    draws
        (n_chains, D) draws, added at once.

    Returns
    -------
    Welford

    Notes
    -----
    The batch's own mean and squared deviations are merged with the running
    ones (Chan et al. 1979): with δ = x̄_b − x̄_a,
    M2 = M2_a + M2_b + δ² n_a n_b / (n_a + n_b). No sum of squares of raw
    values is formed, so large means do not cancel precision away.
    """
    draws = np.atleast_2d(np.asarray(draws, dtype=np.float64))
    n_b = draws.shape[0]
    mean_b = draws.mean(axis=0)
    m2_b = np.sum((draws - mean_b) ** 2, axis=0)
    n = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * (n_b / n)
    m2 = state.m2 + m2_b + delta**2 * (state.count * n_b / n)
    return Welford(n, mean, m2)


def welford_variance(state: Welford, regularize: bool = True) -> np.ndarray:
    """The sample variance (D,) of the draws seen, optionally shrunk toward 10⁻³.

    Parameters
    ----------
    state
        A :class:`Welford` with at least two draws.
    regularize
        Shrink as Stan does, n/(n + 5) · var + 10⁻³ · 5/(n + 5), so a short
        window cannot give a zero or wildly small variance.

    Returns
    -------
    numpy.ndarray
    """
    n = state.count
    if n < 2:
        raise ValueError(f"the variance needs at least 2 draws, got {n}")
    variance = state.m2 / (n - 1)
    if regularize:
        variance = (n / (n + 5.0)) * variance + 1e-3 * (5.0 / (n + 5.0))
    return variance


def warmup_windows(n_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25) -> list:
    """Stan's doubling windows [start, stop) of warm-up iterations that estimate the mass matrix.

    Parameters
    ----------
    n_warmup
        Warm-up iterations in all.
    init_buffer, term_buffer, base_window
        Iterations before the first window (step size only, while the chains
        travel to the typical set), after the last one (ε re-tuned for the
        final metric), and the first window's length (Stan's defaults).

    Returns
    -------
    list
        ``(start, stop)`` pairs; each window doubles the last, and the last
        is stretched to ``n_warmup − term_buffer`` when the next would not
        fit. Empty when ``n_warmup < 20``. When the buffers and one window do
        not fit, they become 15%, 10% and the rest of ``n_warmup`` (as Stan).
    """
    if n_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > n_warmup:
        init_buffer, term_buffer = int(0.15 * n_warmup), int(0.1 * n_warmup)
        base_window = n_warmup - init_buffer - term_buffer
    end, start, size, windows = n_warmup - term_buffer, init_buffer, base_window, []
    while start < end:
        stop = start + size
        if stop + 2 * size >= end:
            stop = end
        windows.append((start, stop))
        start, size = stop, 2 * size
    return windows
