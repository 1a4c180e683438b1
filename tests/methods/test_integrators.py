"""HMC's building blocks as mathematical laws: the leapfrog map is reversible and volume
preserving, its energy error is O(ε²); kinetic energy and the accept step do what they say."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from approxpost.methods.integrators import accept, kinetic_energy, leapfrog


def gaussian_potential(precision):
    """log p(θ) = −½ θᵀAθ and its gradient, batched over rows."""

    def log_joint_and_grad(theta):
        grad = -theta @ precision
        return 0.5 * np.sum(theta * grad, axis=-1), grad

    return log_joint_and_grad


def quartic(theta):
    """A non-quadratic, smooth log density: log p = −Σ_i (θ_i²/2 + θ_i⁴/8) − ¼ Σ_i θ_i θ_{i+1}."""
    neighbours = np.zeros_like(theta)  # θ_{i−1} + θ_{i+1}
    neighbours[..., :-1] += theta[..., 1:]
    neighbours[..., 1:] += theta[..., :-1]
    log_p = -np.sum(0.5 * theta**2 + theta**4 / 8, axis=-1) - 0.25 * np.sum(theta[..., :-1] * theta[..., 1:], axis=-1)
    grad = -(theta + 0.5 * theta**3 + 0.25 * neighbours)
    return log_p, grad


@st.composite
def problems(draw, max_dim=5, max_step=0.6):
    """A random SPD precision (eigenvalues in [0.5, 2]), a batch of starts, ε and L."""
    dim = draw(st.integers(1, max_dim))
    n_chains = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    precision = rotation @ np.diag(rng.uniform(0.5, 2.0, dim)) @ rotation.T
    position = rng.standard_normal((n_chains, dim))
    momentum = rng.standard_normal((n_chains, dim))
    inv_mass = draw(st.sampled_from([1.0, None]))
    inv_mass = rng.uniform(0.5, 2.0, dim) if inv_mass is None else inv_mass
    # ε·sqrt(λ_max · m⁻¹_max) ≤ 0.6·2 < 2 keeps the leapfrog on a Gaussian stable
    step_size = draw(st.floats(0.01, max_step))
    n_steps = draw(st.integers(1, 25))
    return 0.5 * (precision + precision.T), position, momentum, inv_mass, step_size, n_steps


def test_the_quartic_gradient_is_right():
    theta = np.random.default_rng(0).standard_normal((2, 3))
    h = 1e-6
    numeric = np.stack([(quartic(theta + h * e)[0] - quartic(theta - h * e)[0]) / (2 * h) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(quartic(theta)[1], numeric, rtol=1e-7, atol=1e-8)


@settings(max_examples=30)
@given(problems(), st.booleans())
def test_leapfrog_is_reversible(problem, nonlinear):
    precision, q0, p0, inv_mass, eps, n_steps = problem
    f = quartic if nonlinear else gaussian_potential(precision)
    _, g0 = f(q0)
    q1, p1, lj1, g1 = leapfrog(f, q0, p0, g0, eps, n_steps, inv_mass)
    # flip the momentum and integrate again: the path is retraced back to the start
    q2, p2, _, _ = leapfrog(f, q1, -p1, g1, eps, n_steps, inv_mass)
    np.testing.assert_allclose(q2, q0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(-p2, p0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lj1, f(q1)[0], rtol=1e-14, atol=1e-14)  # the returned value belongs to the end point


def _flow(f, eps, n_steps, inv_mass, dim):
    """z = (q, p) stacked as rows (n, 2D) -> the leapfrog map of every row in one batched call."""

    def flow(z):
        q, p = z[:, :dim], z[:, dim:]
        q1, p1, _, _ = leapfrog(f, q, p, f(q)[1], eps, n_steps, inv_mass)
        return np.hstack([q1, p1])

    return flow


@settings(max_examples=30)
@given(problems())
def test_leapfrog_preserves_volume_exactly_on_a_gaussian(problem):
    precision, _, _, inv_mass, eps, n_steps = problem
    dim = precision.shape[0]
    flow = _flow(gaussian_potential(precision), eps, n_steps, inv_mass, dim)
    # the map is linear here, so its Jacobian's columns are the images of the unit vectors
    jacobian = flow(np.eye(2 * dim)).T
    assert abs(np.linalg.det(jacobian) - 1.0) < 1e-10


@settings(max_examples=30)
@given(problems(max_dim=3, max_step=0.25))  # the quartic stiffens away from 0: keep ε stable there
def test_leapfrog_preserves_volume_on_a_non_quadratic_potential(problem):
    _, q0, p0, inv_mass, eps, n_steps = problem
    dim = q0.shape[1]
    flow = _flow(quartic, eps, n_steps, inv_mass, dim)
    z0, h = np.hstack([q0[0], p0[0]]), 1e-4
    steps = h * np.eye(2 * dim)
    # five-point central differences (error O(h⁴)), all 8D perturbed points in one batched call
    f2, f1, b1, b2 = np.split(flow(np.vstack([z0 + 2 * steps, z0 + steps, z0 - steps, z0 - 2 * steps])), 4)
    jacobian = ((8 * (f1 - b1) - (f2 - b2)) / (12 * h)).T
    # per entry: truncation ~h⁴ |f⁽⁵⁾| ≈ 1e-14 and rounding ~1e-16 |f| / h ≈ 1e-11; entries
    # reach ~30 on stretching trajectories, so det (a sum of products) is good to ~1e-8
    assert abs(np.linalg.det(jacobian) - 1.0) < 1e-8


def _max_energy_error(precision, q, p, eps, total_time):
    """max_t |H(t) − H(0)| over a trajectory of duration ``total_time``, one leapfrog step at a time.

    L single steps compose into exactly the L-step map: the closing half kick
    of one step and the opening half kick of the next add up to a full kick.
    """
    f = gaussian_potential(precision)
    lj, g = f(q)
    h0 = kinetic_energy(p) - lj
    worst = np.zeros(q.shape[0])
    for _ in range(int(round(total_time / eps))):
        q, p, lj, g = leapfrog(f, q, p, g, eps, 1)
        worst = np.maximum(worst, np.abs(kinetic_energy(p) - lj - h0))
    return worst


@settings(max_examples=15)
@given(problems(max_dim=4), st.sampled_from([0.02, 0.04, 0.08]))
def test_energy_error_is_second_order_in_the_step_size(problem, eps):
    precision, q, p, _, _, _ = problem
    coarse = _max_energy_error(precision, q, p, eps, total_time=2.0)
    fine = _max_energy_error(precision, q, p, eps / 2, total_time=2.0)
    # error = c ε² (1 + O(ε² λ_max)) with ε² λ_max ≤ 0.08² · 2 ≈ 1.3%, and the max over a
    # grid of spacing ε misses the continuous max by a relative O((ε ω)²) of the same size
    np.testing.assert_allclose(coarse / fine, 4.0, rtol=0.03)
    assert np.all(coarse < 0.1)  # and it is small in absolute terms: the dynamics conserve H


def test_kinetic_energy_is_half_p_squared_over_mass():
    p = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(kinetic_energy(p), [2.5, 4.625], rtol=1e-15)
    np.testing.assert_allclose(kinetic_energy(p, np.array([2.0, 0.5])), [0.5 * (2 + 2), 0.5 * (18 + 0.125)], rtol=1e-15)


def test_leapfrog_rejects_a_non_positive_number_of_steps():
    f = gaussian_potential(np.eye(2))
    with pytest.raises(ValueError, match="n_steps"):
        leapfrog(f, np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), 0.1, 0)


def test_leapfrog_passes_non_finite_values_through_without_warnings():
    def explode(theta):
        return -np.exp(theta**2).sum(axis=-1), -2 * theta * np.exp(theta**2)

    # chain 0 starts on the steep wall and overflows; chain 1 sits at the mode and stays there
    q, p = np.array([[3.0], [0.0]]), np.array([[1.0], [0.0]])
    with np.errstate(all="raise"):  # any floating-point warning would be an error here
        q1, p1, lj, g = leapfrog(explode, q, p, explode(q)[1], 0.5, 10)
    assert not np.isfinite(lj[0])
    assert lj[1] == -1.0 and q1[1, 0] == 0.0 and p1[1, 0] == 0.0


def test_accept_always_takes_better_proposals_and_never_nan_ones():
    rng = np.random.default_rng(0)
    log_ratio = np.array([0.0, 2.0, np.inf, np.nan, -np.inf])
    accepted, prob = accept(rng, log_ratio)
    np.testing.assert_array_equal(accepted, [True, True, True, False, False])
    np.testing.assert_array_equal(prob, [1.0, 1.0, 1.0, 0.0, 0.0])


@given(
    hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(allow_nan=True, allow_infinity=True)),
    st.integers(0, 99),
)
def test_accept_is_bit_for_bit_the_plainly_written_rule(log_ratio, seed):
    """NaN → −inf through fmax in one pass: the same decisions and probabilities as the written-out where."""
    plain = np.where(np.isnan(log_ratio), -np.inf, log_ratio)
    with np.errstate(divide="ignore", over="ignore"):
        want_prob = np.exp(np.minimum(plain, 0.0))
        want_accepted = np.log(np.random.default_rng(seed).random(plain.shape)) < plain
    accepted, prob = accept(np.random.default_rng(seed), log_ratio.copy())
    np.testing.assert_array_equal(accepted, want_accepted)
    np.testing.assert_array_equal(prob, want_prob)


def test_accept_frequency_matches_the_acceptance_probability():
    n, target = 40_000, 0.3
    accepted, prob = accept(np.random.default_rng(1), np.full(n, np.log(target)))
    np.testing.assert_allclose(prob, target, rtol=1e-14)
    se = np.sqrt(target * (1 - target) / n)  # binomial standard error of the frequency
    assert abs(accepted.mean() - target) < 4 * se


@settings(max_examples=30)
@given(problems(), st.booleans(), st.booleans())
def test_the_shortcuts_for_an_identity_mass_and_one_step_size_give_the_same_bits(problem, nonlinear, per_chain):
    """A scalar M⁻¹ = 1 skips its products and a single ε stays a float: exactly what the written-out forms give."""
    precision, q0, p0, _, eps, n_steps = problem
    f = quartic if nonlinear else gaussian_potential(precision)
    ones = np.ones(q0.shape[1])
    step = np.full(q0.shape[0], eps) if per_chain else eps
    g0 = f(q0)[1]
    fast = leapfrog(f, q0, p0, g0, step, n_steps, 1.0)
    # the same integrator with every product formed: M⁻¹ a vector of ones, ε an array column
    column = np.reshape(np.asarray(step, dtype=np.float64), np.shape(step) + (1,))
    q, p = q0, p0 + 0.5 * column * g0
    for i in range(n_steps):
        q = q + column * (ones * p)
        lj, g = f(q)
        p = p + (column if i < n_steps - 1 else 0.5 * column) * g
    for got, want in zip(fast, (q, p, lj, g)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kinetic_energy(p0, 1.0), 0.5 * np.sum(p0 * p0 * ones, axis=-1))
    np.testing.assert_array_equal(kinetic_energy(p0), kinetic_energy(p0, ones))
