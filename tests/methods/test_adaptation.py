"""Warm-up adaptation on its own: dual averaging finds a known root, Welford equals NumPy however it is fed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from approxpost.methods.adaptation import (
    dual_averaging_init,
    dual_averaging_update,
    welford_init,
    welford_update,
    welford_variance,
)


def _acceptance(step_size):
    """A known, decreasing acceptance curve a(ε) = exp(−ε²): a(ε*) = t at ε* = √(−log t)."""
    return np.exp(-np.square(step_size))


@pytest.mark.parametrize("target", [0.234, 0.65, 0.8])
@pytest.mark.parametrize("start", [1e-3, 0.3, 5.0])
def test_dual_averaging_converges_to_the_step_size_with_the_target_acceptance(target, start):
    state = dual_averaging_init(start)
    for _ in range(2000):
        state = dual_averaging_update(state, np.full(4, _acceptance(np.exp(state.log_step_size))), target)
    root = np.sqrt(-np.log(target))
    assert np.exp(state.log_step_size) == pytest.approx(root, rel=0.02)  # the iterate hovers at the root
    # the average still carries the early iterates (a bias of order log(t)/t), so it is a little off
    assert np.exp(state.log_step_size_avg) == pytest.approx(root, rel=0.03)
    assert state.count == 2000


def test_dual_averaging_converges_through_noisy_acceptance():
    # each chain's acceptance is a(ε) plus independent noise of sd 0.1; four chains are pooled
    rng, target = np.random.default_rng(0), 0.8
    state = dual_averaging_init(1.0)
    for _ in range(4000):
        noisy = _acceptance(np.exp(state.log_step_size)) + 0.1 * rng.standard_normal(4)
        state = dual_averaging_update(state, np.clip(noisy, 0.0, 1.0), target)
    # the averaged iterate weights late iterations most; noise sd 0.05 per update over ~4000 updates
    assert _acceptance(np.exp(state.log_step_size_avg)) == pytest.approx(target, abs=0.02)


@given(
    draws=hnp.arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 4)), elements=st.floats(-1e3, 1e3)),
    cuts=st.lists(st.integers(1, 39), max_size=6),
    offset=st.sampled_from([0.0, 1e6]),
)
def test_welford_equals_numpy_however_the_draws_are_batched(draws, cuts, offset):
    draws = draws + offset  # a large common mean must not cancel the variance away
    state = welford_init(draws.shape[1])
    for batch in np.split(draws, sorted({c for c in cuts if c < draws.shape[0]})):
        if batch.shape[0]:
            state = welford_update(state, batch)
    assert state.count == draws.shape[0]
    scale = 1.0 + np.abs(draws).max()
    np.testing.assert_allclose(state.mean, np.mean(draws, axis=0), rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(
        welford_variance(state, regularize=False), np.var(draws, axis=0, ddof=1), rtol=1e-9, atol=1e-9 * scale
    )


def test_welford_regularised_variance_shrinks_toward_a_small_floor():
    draws = np.random.default_rng(1).standard_normal((15, 3))
    state = welford_update(welford_init(3), draws)
    n, var = 15, np.var(draws, axis=0, ddof=1)
    np.testing.assert_allclose(welford_variance(state), n / (n + 5) * var + 1e-3 * 5 / (n + 5), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 draws"):
        welford_variance(welford_update(welford_init(3), draws[:1]))
