"""Convergence and reliability diagnostics for samplers and importance weights.

MCMC draws are shaped ``(n_chains, n_draws)`` for one quantity or
``(n_chains, n_draws, D)`` for a parameter vector; every MCMC diagnostic
returns a float for the first and a ``(D,)`` array for the second.

- :func:`ess` — rank-normalised bulk effective sample size.
- :func:`ess_basic` — the same on the raw draws (what the MCSE of the mean needs).
- :func:`rhat` — rank-normalised split R-hat, the larger of the bulk and
  folded (tail) versions.
- :func:`mcse` — Monte Carlo standard error of the posterior mean.
- :func:`kish_ess` — Kish's effective sample size of importance weights.
- :func:`psis_khat` — Pareto k-hat of the importance weights' upper tail.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: an improved R-hat for
    assessing convergence of MCMC. *Bayesian Analysis* 16(2), 667–718.
Geyer, C. J. (1992). Practical Markov chain Monte Carlo. *Statistical Science*
    7(4), 473–483.
Vehtari, A., Simpson, D., Gelman, A., Yao, Y. and Gabry, J. (2024). Pareto
    smoothed importance sampling. *Journal of Machine Learning Research* 25(72).
Zhang, J. and Stephens, M. A. (2009). A new and efficient estimation method
    for the generalized Pareto distribution. *Technometrics* 51(3), 316–325.
Kish, L. (1965). *Survey Sampling*. New York: Wiley.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, special, stats

__all__ = ["ess", "ess_and_rhat", "ess_basic", "rhat", "mcse", "kish_ess", "psis_khat"]

# Largest number of FFT points transformed at once: bounds memory to ~64 MB
# of complex128 when D, n_chains and n_draws are all large.
_FFT_BLOCK = 1 << 22
_MIN_DRAWS = 4
_MIN_TAIL = 5  # fewer exceedances than this cannot support a Pareto fit


# --------------------------------------------------------------------------- validation


def _as_draws(draws) -> tuple[np.ndarray, bool]:
    """Return draws as a float (D, n_chains, n_draws) array and whether the input was 2-D."""
    try:
        x = np.asarray(draws, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"draws must be a numeric array, got {type(draws).__name__}: {err}") from err
    if x.ndim not in (2, 3):
        raise ValueError(f"draws must have shape (n_chains, n_draws) or (n_chains, n_draws, D), got shape {x.shape}")
    if x.shape[0] < 1 or (x.ndim == 3 and x.shape[2] < 1):
        raise ValueError(f"draws must hold at least one chain and one coordinate, got shape {x.shape}")
    if x.shape[1] < _MIN_DRAWS:
        raise ValueError(f"draws must have at least {_MIN_DRAWS} draws per chain, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"draws must be finite, got non-finite values in an array of shape {x.shape}")
    scalar = x.ndim == 2
    x = x[:, :, None] if scalar else x
    return np.moveaxis(x, 2, 0), scalar


def _as_log_weights(log_weights) -> np.ndarray:
    try:
        lw = np.asarray(log_weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"log_weights must be a numeric array, got {type(log_weights).__name__}: {err}") from err
    if lw.ndim != 1 or lw.size == 0:
        raise ValueError(f"log_weights must be a non-empty 1-D array, got shape {lw.shape}")
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError(f"log_weights must not contain NaN or +inf, got such values in shape {lw.shape}")
    if np.all(lw == -np.inf):
        raise ValueError(f"log_weights are all -inf (every weight is zero), shape {lw.shape}")
    return lw


def _output(values: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(values[0]) if scalar else values


# --------------------------------------------------------------------------- MCMC pieces


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Cut each chain in half, (D, C, N) -> (D, 2C, N // 2); an odd middle draw is dropped."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each coordinate over all its draws (ties get their average rank)."""
    d, c, n = x.shape
    ranks = stats.rankdata(x.reshape(d, c * n), method="average", axis=1)
    return special.ndtri((ranks - 0.375) / (c * n + 0.25)).reshape(d, c, n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance (divided by N) along the last axis, by zero-padded FFT."""
    n = x.shape[-1]
    n_fft = fft.next_fast_len(2 * n, real=True)  # padding to 2N stops the circular wrap-around
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = fft.rfft(centred, n=n_fft, axis=-1)
    return fft.irfft(spectrum * spectrum.conj(), n=n_fft, axis=-1)[..., :n] / n


def _autocorr_combined(x: np.ndarray) -> np.ndarray:
    """Multi-chain autocorrelation rho_t, (D, C, N) -> (D, N), as in Stan and ArviZ."""
    c, n = x.shape[1:]
    block = max(1, _FFT_BLOCK // (c * 2 * n))
    acov = np.concatenate([_autocov(x[i : i + block]).mean(axis=1) for i in range(0, x.shape[0], block)])
    mean_var = acov[:, :1] * n / (n - 1.0)  # W, the mean within-chain variance
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + x.mean(axis=2).var(axis=1, ddof=1)[:, None]
    rho = 1.0 - (mean_var - acov) / var_plus
    rho[:, 0] = 1.0
    return rho


def _geyer_tau(rho: np.ndarray) -> np.ndarray:
    """Integrated autocorrelation time from rho_t, (D, N) -> (D,), by Geyer's initial sequences.

    Pairs P_k = rho_2k + rho_2k+1 are summed up to the first non-positive
    pair (initial positive sequence) after replacing them by their running
    minimum (initial monotone sequence); the first dropped pair's even term
    is added when positive, which lowers the variance for antithetic chains.
    This is the loop of Stan and ArviZ written over all coordinates at once.
    """
    n = rho.shape[1]
    n_pairs = max(0, (n - 1) // 2 - 1) + 1  # pair 0 and the pairs those loops reach
    even, odd = rho[:, 0 : 2 * n_pairs : 2], rho[:, 1 : 2 * n_pairs : 2]
    pairs = even + odd
    rows = np.arange(rho.shape[0])
    # m: the last pair examined (the first non-positive one, else the last reachable one)
    stop = np.concatenate([pairs[:, 1:] <= 0, np.ones((rho.shape[0], 1), dtype=bool)], axis=1)
    m = np.minimum(stop.argmax(axis=1) + 1, n_pairs - 1)
    m = np.where(pairs[:, 0] > 0, m, 0)
    monotone = np.minimum.accumulate(pairs, axis=1)
    kept = np.arange(n_pairs) < m[:, None]
    last_even = even[rows, m]
    extra = np.where((pairs[rows, m] >= 0) | (last_even > 0), last_even, 0.0)
    extra = np.where(m == 0, 1.0, extra)
    return -1.0 + 2.0 * np.sum(np.where(kept, monotone, 0.0), axis=1) + extra


def _ess_split(x: np.ndarray) -> np.ndarray:
    """ESS of already split (and possibly rank-normalised) chains, (D, C, N) -> (D,)."""
    size = x.shape[1] * x.shape[2]
    constant = np.ptp(x.reshape(x.shape[0], -1), axis=1) == 0
    out = np.full(x.shape[0], float(size))  # a constant coordinate's mean is known exactly
    varying = x[~constant]
    if varying.shape[0]:
        tau = _geyer_tau(_autocorr_combined(varying))
        # Stan's cap: ESS never exceeds S log10 S, even for antithetic chains
        out[~constant] = size / np.maximum(tau, 1.0 / np.log10(size))
    return out


def _split_rhat(x: np.ndarray) -> np.ndarray:
    """Classic potential scale reduction of already split chains, (D, C, N) -> (D,)."""
    n = x.shape[2]
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    within = x.var(axis=2, ddof=1).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt((between / within + n - 1.0) / n)
    # W = B = 0 only for a constant coordinate: the chains agree perfectly
    return np.where((within == 0) & (between == 0), 1.0, value)


# --------------------------------------------------------------------------- MCMC API


def ess(draws) -> float | np.ndarray:
    """Rank-normalised bulk effective sample size.

    Parameters
    ----------
    draws
        MCMC draws, shape (n_chains, n_draws) or (n_chains, n_draws, D), at
        least 4 draws per chain, all finite.

    Returns
    -------
    float or numpy.ndarray
        A float for 2-D input, a (D,) array for 3-D input.

    Notes
    -----
    Chains are split in halves, all draws replaced by z = Φ⁻¹((r − 3/8)/(S + 1/4))
    of their pooled ranks r, and ESS = S / τ̂ with τ̂ = −1 + 2 Σ ρ̂_t truncated by
    Geyer's initial positive and monotone sequences. A constant coordinate gets
    ESS = S; the estimate is capped at S log10 S.

    References
    ----------
    Vehtari et al. (2021), Geyer (1992).
    """
    x, scalar = _as_draws(draws)
    return _output(_ess_split(_z_scale(_split_chains(x))), scalar)


def ess_basic(draws) -> float | np.ndarray:
    """Split-chain effective sample size of the raw draws (no rank normalisation).

    Parameters
    ----------
    draws
        MCMC draws, shape (n_chains, n_draws) or (n_chains, n_draws, D).

    Returns
    -------
    float or numpy.ndarray
        A float for 2-D input, a (D,) array for 3-D input.

    Notes
    -----
    The efficiency of the sample mean itself, which rank normalisation would
    change; it is finite only when the variance is, unlike :func:`ess`.

    References
    ----------
    Vehtari et al. (2021), Geyer (1992).
    """
    x, scalar = _as_draws(draws)
    return _output(_ess_split(_split_chains(x)), scalar)


def rhat(draws) -> float | np.ndarray:
    """Rank-normalised split R-hat: the larger of its bulk and folded (tail) versions.

    Parameters
    ----------
    draws
        MCMC draws, shape (n_chains, n_draws) or (n_chains, n_draws, D).

    Returns
    -------
    float or numpy.ndarray
        A float for 2-D input, a (D,) array for 3-D input. Near 1 when the
        chains agree; Vehtari et al. (2021) recommend R-hat < 1.01. Chains that
        are each constant but disagree give ``inf``; a constant coordinate gives 1.

    Notes
    -----
    R̂ = sqrt(((N − 1)/N W + B/N) / W) on the rank-normalised split chains
    (bulk: differing locations) and on the rank-normalised |θ − median θ|
    (folded: differing scales).

    References
    ----------
    Vehtari et al. (2021).
    """
    x, scalar = _as_draws(draws)
    split = _split_chains(x)
    return _output(_rank_rhat(split, _z_scale(split)), scalar)


def ess_and_rhat(draws) -> tuple:
    """``(ess(draws), rhat(draws))``, rank-normalising the split chains once for both.

    The ranking is most of the cost of either (seconds for 4 × 20,000 draws
    of 151 coordinates), so a posterior that reports both computes it once.
    """
    x, scalar = _as_draws(draws)
    split = _split_chains(x)
    z = _z_scale(split)
    return _output(_ess_split(z), scalar), _output(_rank_rhat(split, z), scalar)


def _rank_rhat(split: np.ndarray, z: np.ndarray) -> np.ndarray:
    """max(bulk, folded) split R-hat from split chains and their rank-normalised z, (D, C, N) -> (D,)."""
    folded = np.abs(split - np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None])
    return np.maximum(_split_rhat(z), _split_rhat(_z_scale(folded)))


def mcse(draws) -> float | np.ndarray:
    """Monte Carlo standard error of the posterior mean.

    Parameters
    ----------
    draws
        MCMC draws, shape (n_chains, n_draws) or (n_chains, n_draws, D).

    Returns
    -------
    float or numpy.ndarray
        sd / sqrt(ess_basic), a float for 2-D input, a (D,) array for 3-D input.

    References
    ----------
    Vehtari et al. (2021).
    """
    x, scalar = _as_draws(draws)
    sd = x.reshape(x.shape[0], -1).std(axis=1, ddof=1)
    return _output(sd / np.sqrt(_ess_split(_split_chains(x))), scalar)


# --------------------------------------------------------------------------- importance weights


def kish_ess(log_weights) -> float:
    """Kish's effective sample size of importance weights given in log space.

    Parameters
    ----------
    log_weights
        Unnormalised log weights, shape (n,). ``-inf`` (zero weight) is
        allowed; NaN and ``+inf`` are not, nor are all weights zero.

    Returns
    -------
    float
        (Σ w)² / Σ w², between 1 (one weight dominates) and n (equal weights).

    Notes
    -----
    Computed on w = exp(log w − max log w), so the largest weight is 1 and
    nothing overflows however large the log weights are.

    References
    ----------
    Kish (1965).
    """
    lw = _as_log_weights(log_weights)
    w = np.exp(lw - lw.max())
    value = np.sum(w) ** 2 / np.sum(w**2)
    return float(np.clip(value, 1.0, lw.size))  # clip only the last-bit rounding


def _gpd_fit_zhang_stephens(exceedances: np.ndarray) -> float:
    """Shape ξ of a generalised Pareto fitted to sorted positive exceedances (no prior).

    Zhang and Stephens' (2009) empirical-Bayes estimate: a quadrature over the
    reparameterised scale b = −ξ/σ, weighted by the profile likelihood, as in
    PSIS's reference code.
    """
    x = exceedances
    n = x.size
    m = 30 + int(np.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b = b / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.log1p(-b[:, None] * x).mean(axis=1)
        profile = n * (np.log(-b / k) - k - 1.0)
    profile = np.where(np.isfinite(profile), profile, -np.inf)
    weights = np.exp(profile - profile.max())
    weights /= weights.sum()
    keep = weights >= 10 * np.finfo(float).eps  # negligible grid points only add rounding
    b_post = np.sum(b[keep] * weights[keep]) / np.sum(weights[keep])
    return float(np.log1p(-b_post * x).mean())


def psis_khat(log_weights) -> float:
    """Pareto k-hat of the upper tail of importance weights.

    Parameters
    ----------
    log_weights
        Unnormalised log weights, shape (n,); ``-inf`` (zero weight) allowed.

    Returns
    -------
    float
        The estimated tail shape: below 0.5 the weights have finite variance
        and importance sampling is reliable; above 0.7 it is not (Vehtari et
        al. 2024). ``inf`` when there are too few draws (n ≤ 20) or almost
        all weights are zero; ``-inf`` when the largest weights are equal up
        to a few ties (no tail at all, as with the exact posterior as proposal).

    Notes
    -----
    The M = ⌈min(n/5, 3√n)⌉ largest weights are taken as the tail; a generalised
    Pareto is fitted to their excess over the next largest weight with the
    Zhang-Stephens estimator and shrunk toward 0.5 by the weakly informative
    prior k̂ = (M k + 10 · 0.5) / (M + 10). Only differences of log weights
    are exponentiated, so no log weight is too large.

    References
    ----------
    Vehtari et al. (2024), Zhang and Stephens (2009).
    """
    lw = _as_log_weights(log_weights)
    n = lw.size
    n_tail = int(np.ceil(min(0.2 * n, 3.0 * np.sqrt(n))))
    if n_tail < _MIN_TAIL or n_tail >= n:
        return float(np.inf)
    lw = np.sort(lw - lw.max())
    # the threshold is the largest weight outside the tail; keep it representable
    threshold = max(lw[n - n_tail - 1], np.log(np.finfo(float).tiny))
    if lw[-1] == threshold:
        return float(-np.inf)
    tail = lw[lw > threshold]
    # excess over the threshold in units of the threshold weight: expm1 keeps
    # small excesses accurate; the GPD shape does not depend on the unit
    exceedances = np.expm1(tail - threshold)
    exceedances = exceedances[exceedances > 0]
    if exceedances.size < _MIN_TAIL:
        # too few weights above a threshold that is itself a real weight: the top is
        # flat up to ties (e.g. the exact posterior as proposal), so there is no tail;
        # above a zero threshold almost every weight is zero, the degenerate case
        return float(-np.inf) if lw[n - n_tail - 1] > np.log(np.finfo(float).tiny) else float(np.inf)
    k = _gpd_fit_zhang_stephens(exceedances / exceedances[-1])
    if not np.isfinite(k):
        return float(np.inf)  # a tail too heavy to fit in floating point
    m = exceedances.size
    return float((m * k + 10 * 0.5) / (m + 10))
