"""Tests for approxpost.diagnostics: ESS, R-hat, MCSE, Kish ESS and PSIS k-hat.

Statistical tolerances come from the sampling distribution of each estimator,
measured once over a few hundred seeds with the same design (numbers quoted
next to each test); every test is seeded, so it is deterministic.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.signal import lfilter

from approxpost import diagnostics as dg
from approxpost.diagnostics import ess, ess_basic, kish_ess, mcse, psis_khat, rhat

# ----------------------------------------------------------------------------- helpers


def ar1(rng: np.random.Generator, rho: float, n_chains: int, n_draws: int) -> np.ndarray:
    """Stationary AR(1) chains with unit marginal variance; true ESS = S (1 − ρ)/(1 + ρ)."""
    eps = rng.normal(size=(n_chains, n_draws))
    eps[:, 0] /= np.sqrt(1.0 - rho**2)  # start in the stationary N(0, 1)
    return lfilter([np.sqrt(1.0 - rho**2)], [1.0, -rho], eps, axis=-1)


def reference_ess(x: np.ndarray) -> float:
    """Stan's / ArviZ's ESS loop written out literally, with direct O(N²) autocovariances.

    ``x`` is already split (and possibly rank-normalised), shape (C, N).
    """
    n_chains, n = x.shape
    if np.ptp(x) == 0:
        return float(x.size)
    xc = x - x.mean(axis=1, keepdims=True)
    acov = np.array([[np.dot(c[: n - t], c[t:]) / n for t in range(n)] for c in xc])
    mean_var = acov[:, 0].mean() * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + (x.mean(axis=1).var(ddof=1) if n_chains > 1 else 0.0)
    rho = np.zeros(n)
    rho_even, rho_odd = 1.0, 1.0 - (mean_var - acov[:, 1].mean()) / var_plus
    rho[0], rho[1] = rho_even, rho_odd
    t = 1
    while t < n - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - acov[:, t + 1].mean()) / var_plus
        rho_odd = 1.0 - (mean_var - acov[:, t + 2].mean()) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    tau = -1.0 + 2.0 * rho[: max_t + 1].sum() + rho[max_t + 1 : max_t + 2].sum()
    return x.size / max(tau, 1.0 / np.log10(x.size))


def split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.vstack([x[:, :half], x[:, -half:]])


def z_scale(x: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return stats.norm.ppf((ranks - 0.375) / (x.size + 0.25))


def chains_of_kind(rng: np.random.Generator, kind: str, n_chains: int, n_draws: int) -> np.ndarray:
    if kind == "iid":
        return rng.normal(size=(n_chains, n_draws))
    if kind == "random_walk":
        return np.cumsum(rng.normal(size=(n_chains, n_draws)), axis=1)
    if kind == "antithetic":
        return ar1(rng, -0.7, n_chains, n_draws)
    return rng.integers(0, 3, size=(n_chains, n_draws)).astype(float)  # many ties


# ----------------------------------------------------------------------------- ESS


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["iid", "random_walk", "antithetic", "ties"]),
    n_chains=st.integers(1, 4),
    n_draws=st.integers(4, 41),
)
def test_ess_matches_the_stan_arviz_loop(seed, kind, n_chains, n_draws):
    x = chains_of_kind(np.random.default_rng(seed), kind, n_chains, n_draws)
    np.testing.assert_allclose(ess_basic(x), reference_ess(split(x)), rtol=1e-9)
    np.testing.assert_allclose(ess(x), reference_ess(z_scale(split(x))), rtol=1e-9)


def test_ess_of_iid_draws_is_close_to_n():
    # Over 200 seeds of this design ESS/n had mean 0.989 and sd 0.030 (the
    # initial positive sequence keeps a few noisy positive lags, a slight
    # downward bias); 15% is 5 sd, the left tail being the heavier one.
    x = np.random.default_rng(0).normal(size=(4, 2000))
    assert ess(x) == pytest.approx(x.size, rel=0.15)
    assert ess_basic(x) == pytest.approx(x.size, rel=0.15)


@pytest.mark.parametrize("rho, n_draws", [(0.5, 5000), (0.9, 20_000)])
def test_ess_of_ar1_chains_matches_theory(rho, n_draws):
    # ESS/truth over 200 seeds: mean 0.998, sd 0.045 (rho 0.5, 4 x 5000) and
    # mean 1.000, sd 0.048 (rho 0.9, 4 x 20000); 20% is about 4 sd.
    x = ar1(np.random.default_rng(1), rho, 4, n_draws)
    truth = x.size * (1.0 - rho) / (1.0 + rho)
    assert ess(x) == pytest.approx(truth, rel=0.2)
    assert ess_basic(x) == pytest.approx(truth, rel=0.2)


def test_rank_normalised_diagnostics_ignore_monotone_transforms():
    x = ar1(np.random.default_rng(2), 0.6, 3, 500)
    y = np.exp(2.0 * x) - 5.0  # strictly increasing: the same ranks
    assert ess(y) == pytest.approx(ess(x), rel=1e-12)
    assert rhat(y) == pytest.approx(rhat(x), rel=1e-12)
    assert ess_basic(y) != pytest.approx(ess_basic(x), rel=1e-3)  # raw ESS does see the transform


def test_constant_draws():
    assert ess(np.full((2, 10), 3.0)) == 20.0  # the mean is known exactly
    assert rhat(np.full((2, 10), 3.0)) == 1.0
    assert mcse(np.full((2, 10), 3.0)) == 0.0
    stuck = np.repeat([[0.0], [1.0]], 10, axis=1)  # each chain stuck at its own value
    assert rhat(stuck) == np.inf


# ----------------------------------------------------------------------------- R-hat and MCSE


def test_rhat_near_one_for_chains_from_one_distribution():
    # Over 300 seeds of 4 x 1000 i.i.d. draws the largest R-hat was 1.0025.
    x = np.random.default_rng(3).normal(size=(4, 1000))
    assert 1.0 - 1e-3 < rhat(x) < 1.01


def test_rhat_flags_chains_with_shifted_means():
    # Two of four chains shifted by 1 sd: R-hat 1.134 +- 0.008 over 300 seeds.
    x = np.random.default_rng(4).normal(size=(4, 1000))
    x[2:] += 1.0
    assert rhat(x) > 1.1


def test_folded_rhat_flags_chains_with_the_same_mean_but_another_scale():
    # One chain three times wider: R-hat 1.145 +- 0.010, while the bulk
    # (location) R-hat alone stays at 1.000 +- 0.0006 over 300 seeds.
    x = np.random.default_rng(5).normal(size=(4, 1000))
    x[3] *= 3.0
    bulk_only = dg._split_rhat(dg._z_scale(dg._split_chains(x[None])))  # (D=1, C, N) internally
    assert float(bulk_only[0]) < 1.01
    assert rhat(x) > 1.1


def test_mcse_of_iid_draws_is_sd_over_sqrt_n():
    # mcse / (sd / sqrt(n)) over 200 seeds: mean 1.006, sd 0.017; 10% is ~6 sd.
    x = 2.0 + 3.0 * np.random.default_rng(6).normal(size=(4, 2000))
    assert mcse(x) == pytest.approx(3.0 / np.sqrt(x.size), rel=0.1)


def test_vector_draws_give_the_per_coordinate_results():
    rng = np.random.default_rng(7)
    kinds = ["iid", "random_walk", "antithetic", "ties"]
    x = np.stack([chains_of_kind(rng, kind, 3, 301) for kind in kinds], axis=-1)  # (3, 301, 4)
    for fn in (ess, ess_basic, rhat, mcse):
        scalar = fn(x[:, :, 0])
        assert isinstance(scalar, float)
        vector = fn(x)
        assert isinstance(vector, np.ndarray) and vector.shape == (4,)
        np.testing.assert_allclose(vector, [fn(x[:, :, d]) for d in range(4)], rtol=1e-12)


# ----------------------------------------------------------------------------- Kish ESS

log_weight_lists = st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=50)


def test_kish_ess_of_equal_weights_is_n():
    assert kish_ess(np.full(1000, 1e4)) == 1000.0
    assert kish_ess(np.full(7, -3.0)) == 7.0


def test_kish_ess_of_one_dominant_weight_is_one():
    lw = np.full(1000, -50.0)
    lw[17] = 0.0
    assert kish_ess(lw) == pytest.approx(1.0, rel=1e-12)


def test_kish_ess_treats_minus_inf_as_zero_weight():
    assert kish_ess([0.0, 0.0, -np.inf, -np.inf]) == pytest.approx(2.0, rel=1e-15)


@settings(max_examples=50)
@given(st.lists(st.floats(-30.0, 30.0), min_size=1, max_size=50))
def test_kish_ess_matches_the_direct_formula(log_weights):
    w = np.exp(np.asarray(log_weights))
    assert kish_ess(log_weights) == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)


@settings(max_examples=50)
@given(log_weight_lists, st.floats(-1e4, 1e4))
def test_kish_ess_ignores_a_constant_added_to_log_weights(log_weights, shift):
    # adding the shift rounds each log weight by at most ~2e4 * eps ~ 4e-12
    shifted = np.asarray(log_weights) + shift
    assert kish_ess(shifted) == pytest.approx(kish_ess(log_weights), rel=1e-9)


@settings(max_examples=50)
@given(log_weight_lists)
def test_kish_ess_lies_between_one_and_n(log_weights):
    assert 1.0 <= kish_ess(log_weights) <= len(log_weights)


# ----------------------------------------------------------------------------- PSIS k-hat


@pytest.mark.parametrize("xi", [0.5, 0.9])
def test_khat_recovers_the_shape_of_pareto_weights(xi):
    # w = U^(-xi) is Pareto with tail shape xi, so log w = xi * Exp(1). One
    # k-hat from n = 10_000 (tail M = 300) has sd 0.08 (xi 0.5) to 0.11
    # (xi 0.9), so we average 32 independent fits and allow 4 standard errors
    # of that mean, measured from the fits themselves, plus the known pull of
    # the prior toward 0.5: (M xi + 5) / (M + 10) - xi.
    rng = np.random.default_rng(8)
    khats = np.array([psis_khat(xi * rng.exponential(size=10_000)) for _ in range(32)])
    prior_pull = (300 * xi + 5) / 310 - xi
    tolerance = 4 * khats.std(ddof=1) / np.sqrt(khats.size) + abs(prior_pull)
    assert abs(khats.mean() - xi) < tolerance
    assert tolerance < 0.1  # the test has teeth


def test_khat_is_large_for_a_proposal_lighter_tailed_than_the_target():
    # Target Student-t(3), proposal N(0, 1): infinite-variance weights. Mean
    # k-hat 0.68 with sd 0.095 per fit over 100 seeds; the mean of 16 fits is
    # 7 standard errors above 0.5.
    rng = np.random.default_rng(9)
    khats = []
    for _ in range(16):
        theta = rng.normal(size=10_000)
        khats.append(psis_khat(stats.t.logpdf(theta, 3) - stats.norm.logpdf(theta)))
    assert np.mean(khats) > 0.5


@pytest.mark.parametrize("loc, scale, bound", [(0.1, 1.1, 0.0), (0.0, 0.9, 0.5)])
def test_khat_is_small_for_well_matched_normal_proposals(loc, scale, bound):
    # A wider proposal gives bounded weights (k-hat -1.73 +- 0.09 over 100
    # seeds); a slightly narrower one has tail shape 1 - 0.9² = 0.19 (k-hat
    # 0.21 +- 0.065, so 0.5 is 4.4 sd away).
    theta = np.random.default_rng(10).normal(loc, scale, size=10_000)
    assert psis_khat(stats.norm.logpdf(theta) - stats.norm.logpdf(theta, loc, scale)) < bound


def test_khat_is_shift_invariant_and_does_not_overflow():
    lw = 0.7 * np.random.default_rng(11).exponential(size=2000)
    assert psis_khat(lw + 1e4) == pytest.approx(psis_khat(lw), abs=1e-6)
    assert psis_khat(lw - 1e4) == pytest.approx(psis_khat(lw), abs=1e-6)


def test_khat_edge_cases():
    assert psis_khat(np.arange(20.0)) == np.inf  # n <= 20: a tail of fewer than 5 draws
    assert psis_khat(np.zeros(1000)) == -np.inf  # equal weights: no tail at all
    lw = np.full(1000, -np.inf)
    lw[:3] = [0.0, -1.0, -2.0]
    assert psis_khat(lw) == np.inf  # three non-zero weights cannot support a fit


# ----------------------------------------------------------------------------- bad input

mcmc_functions = [ess, ess_basic, rhat, mcse]
weight_functions = [kish_ess, psis_khat]


@pytest.mark.parametrize("fn", mcmc_functions)
@pytest.mark.parametrize(
    "draws",
    [
        np.zeros(10),  # 1-D
        np.zeros((2, 10, 3, 1)),  # 4-D
        np.zeros((2, 3)),  # fewer than 4 draws per chain
        np.zeros((0, 10)),  # no chains
        np.zeros((2, 10, 0)),  # no coordinates
        np.array([[0.0, 1.0, np.nan, 2.0, 3.0]]),
        np.array([[0.0, 1.0, np.inf, 2.0, 3.0]]),
        [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]],  # ragged
        "abcd",
    ],
)
def test_bad_draws_raise_a_value_error_naming_draws(fn, draws):
    with pytest.raises(ValueError, match="draws"):
        fn(draws)


def test_bad_draws_message_gives_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        ess(np.zeros((2, 3)))


@pytest.mark.parametrize("fn", weight_functions)
@pytest.mark.parametrize(
    "log_weights",
    [
        np.zeros((3, 4)),
        np.zeros(0),
        np.float64(1.0),
        np.array([0.0, np.nan]),
        np.array([0.0, np.inf]),
        np.full(5, -np.inf),
        ["a", "b"],
    ],
)
def test_bad_log_weights_raise_a_value_error_naming_log_weights(fn, log_weights):
    with pytest.raises(ValueError, match="log_weights"):
        fn(log_weights)


def test_khat_of_a_flat_top_with_ties_is_minus_inf():
    # an exact proposal: every weight equal up to rounding, many of them tied
    rng = np.random.default_rng(0)
    log_weights = rng.choice([0.0, 1e-16, 2e-16], size=1000)
    assert psis_khat(log_weights) == -np.inf
    # whereas a handful of non-zero weights among zeros is the degenerate case
    degenerate = np.full(1000, -np.inf)
    degenerate[:4] = [0.0, 0.0, 0.0, -1.0]
    assert psis_khat(degenerate) == np.inf


def test_ess_and_rhat_together_equal_each_alone():
    rng = np.random.default_rng(5)
    draws = np.cumsum(rng.standard_normal((3, 200, 4)), axis=1) * 0.1 + rng.standard_normal((3, 200, 4))
    together = dg.ess_and_rhat(draws)
    np.testing.assert_array_equal(together[0], ess(draws))
    np.testing.assert_array_equal(together[1], rhat(draws))
    assert dg.ess_and_rhat(draws[:, :, 0]) == (ess(draws[:, :, 0]), rhat(draws[:, :, 0]))
