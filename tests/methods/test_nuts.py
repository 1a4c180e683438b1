"""NUTS against known posteriors, its invariance, the tree (exact leaf counts, U-turns), Stan's warm-up,
divergences, the lockstep cost accounting, and its contract: seeding, carried gradient, errors."""

import numpy as np
import pytest
from scipy import stats

from approxpost import autodiff as ad
from approxpost import models, targets
from approxpost.diagnostics import mcse
from approxpost.methods.adaptation import warmup_windows
from approxpost.methods.nuts import NUTS, NUTSInfo, NUTSState
from approxpost.methods.nuts_tree import Block, merge_is_no_uturn, no_uturn

N_SE = 4.0


def assert_moments(draws, mean, cov):
    """Mean and every (co)variance within 4 MCSE of the truth (as in test_hmc)."""
    n_chains, n_draws, dim = draws.shape
    centred = draws - mean
    assert np.all(np.abs(centred.mean(axis=(0, 1))) < N_SE * mcse(draws))
    products = (centred[..., :, None] * centred[..., None, :]).reshape(n_chains, n_draws, dim * dim)
    estimate = products.mean(axis=(0, 1)).reshape(dim, dim)
    assert np.all(np.abs(estimate - cov) < N_SE * mcse(products).reshape(dim, dim))


class StandardNormal(models.Model):
    """N(0, I) in ``dim`` dimensions."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def log_prior(self, theta):
        return -0.5 * ad.sum(theta * theta, axis=-1)

    def log_likelihood(self, theta, idx=None):
        return 0.0


class Flat(StandardNormal):
    """A constant density: the momentum never changes, so a trajectory never turns."""

    def log_prior(self, theta):
        return 0.0 * ad.sum(theta, axis=-1)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = 0.5 * x + 0.3 + 0.5 * rng.standard_normal(30)
    return models.LinearRegression(x, y, noise_std=0.5, prior_std=1.0)


@pytest.fixture(scope="module")
def linear_fit(linear):
    return NUTS(n_samples=1000, n_warmup=500).fit(linear, seed=0)


def test_recovers_the_conjugate_posterior(linear, linear_fit):
    exact = linear.exact_posterior()
    assert_moments(linear_fit.draws, exact.mean, exact.cov)
    assert np.all(linear_fit.diagnostics["rhat"] < 1.01)
    assert linear_fit.diagnostics["divergences"] == 0


@pytest.mark.parametrize("target", [targets.Gaussian(), targets.Banana()], ids=["gaussian", "banana"])
def test_recovers_the_2d_targets(target):
    post = NUTS(n_samples=1000, n_warmup=1000).fit(target, seed=1)
    assert_moments(post.draws, target.mean, target.cov)


def test_one_transition_leaves_a_1d_gaussian_invariant():
    # 20 000 chains started at exact N(0, 1) draws, one transition each with a fixed ε: the
    # marginal must stay N(0, 1). KS at a fixed seed, and the first four moments within 4 SE.
    n, rng = 20_000, np.random.default_rng(5)
    model, method = StandardNormal(1), NUTS(step_size=0.7, n_chains=20_000, adapt_step_size=False, max_tree_depth=6)
    start = rng.standard_normal((n, 1))
    state, info = method.step(model, method.init(model, start, rng), rng)
    theta = state.position[:, 0]
    assert np.mean(theta != start[:, 0]) > 0.9  # the draw is rarely the start itself
    assert stats.kstest(theta, "norm").pvalue > 1e-3
    for k, exact in [(1, 0.0), (2, 1.0), (3, 0.0), (4, 3.0)]:
        se = np.std(theta**k) / np.sqrt(n)
        assert abs(np.mean(theta**k) - exact) < N_SE * se, k


def test_a_flat_density_never_turns_so_every_tree_is_full():
    method = NUTS(step_size=0.1, n_chains=3, max_tree_depth=5, adapt_step_size=False)
    model, rng = Flat(2), np.random.default_rng(0)
    state = method.init(model, np.zeros((3, 2)), rng)
    new, info = method.step(model, state, rng)
    assert np.all(info.tree_depth == 5) and np.all(info.n_leapfrog == 2**5 - 1) and info.n_steps == 31
    assert np.all(info.accept_prob == 1.0) and not info.diverging.any()
    # with a constant momentum the draw lies on the line θ₀ + k ε p for an integer k
    momentum = np.random.default_rng(0).standard_normal((3, 2))  # the step's first draw from the same stream
    k = new.position / (0.1 * momentum)
    np.testing.assert_allclose(k[:, 0], k[:, 1], atol=1e-9)
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)


def test_the_criterion_sees_a_u_turn_and_across_the_join():
    inv_mass = np.ones(1)
    forward, back = np.array([[1.0]]), np.array([[-1.0]])
    assert no_uturn(forward, forward, 2 * forward, inv_mass)[0]
    assert not no_uturn(forward, back, 0.5 * forward, inv_mass)[0]
    # two blocks that each move right but whose join reverses: only the overlap checks see it
    a = Block(first=np.array([[1.0]]), last=np.array([[-3.0]]), rho=np.array([[5.0]]))
    b = Block(first=np.array([[-3.0]]), last=np.array([[1.0]]), rho=np.array([[5.0]]))
    assert no_uturn(a.first, b.last, a.rho + b.rho, inv_mass)[0]
    assert not merge_is_no_uturn(a, b, inv_mass)[0]


def test_a_harmonic_oscillator_stops_near_half_a_period():
    # N(0, 1) with ε = 0.05: in 1-D the orbit turns at ±A, at most half a period π/ε ≈ 63 steps
    # apart, so no tree gets past depth 6, far below the allowed 10
    method = NUTS(step_size=0.05, n_chains=200, adapt_step_size=False)
    model, rng = StandardNormal(1), np.random.default_rng(2)
    _, info = method.step(model, method.init(model, rng.standard_normal((200, 1)), rng), rng)
    assert np.all(info.tree_depth <= 6) and np.all(info.n_leapfrog < 2**7)
    assert np.median(info.n_leapfrog) >= 15


def test_stan_windows():
    assert warmup_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert warmup_windows(150) == [(75, 100)]
    assert warmup_windows(100) == [(15, 90)]  # buffers shrink to 15% and 10%
    assert warmup_windows(19) == []


def test_warm_up_learns_the_scales_and_the_target_acceptance():
    target = targets.Gaussian(cov=[[25.0, 0.0], [0.0, 0.04]])
    seen = {}

    def grab(iteration, state, info):
        seen.setdefault("inv_mass", state.inv_mass)
        if iteration == 999:
            seen["inv_mass"] = state.inv_mass

    post = NUTS(n_samples=500, n_warmup=1000).fit(target, seed=0, callback=grab)
    # the last window holds 500 iterations × 4 chains of draws with ESS ≳ 1000: a variance to ~10%
    np.testing.assert_allclose(seen["inv_mass"], np.diag(target.cov), rtol=0.25)
    kept = post.history["accept_prob"][~post.history["warmup"]]
    assert abs(kept.mean() - 0.8) < 0.05 + N_SE * mcse(kept.T)
    assert post.diagnostics["mean_tree_depth"] < 3  # the metric removed the 25× difference in scale


def test_the_funnel_diverges_without_crashing():
    post = NUTS(step_size=0.5, n_samples=200, n_warmup=0, adapt_step_size=False).fit(targets.Funnel(), seed=0)
    diverging = post.history["diverging"].astype(bool)
    assert post.diagnostics["divergences"] == int(diverging.sum()) > 20
    assert isinstance(post.diagnostics["divergences"], int)
    assert np.all(np.isfinite(post.draws)) and all(np.all(np.isfinite(v)) for v in post.history.values())


def test_cost_and_lockstep_waste_are_accounted_exactly(linear):
    method = NUTS(step_size=0.3, n_samples=20, n_warmup=0, n_chains=3, adapt_step_size=False)
    post = method.fit(linear, seed=0)
    history = post.history
    assert post.cost.grad_evals == 3 * (1 + int(history["n_steps"].sum()))  # start, then n_chains per batch step
    np.testing.assert_array_equal(history["n_steps"], history["n_leapfrog"].max(axis=1))
    waste = 1 - history["n_leapfrog"].sum() / (3 * history["n_steps"].sum())
    assert post.diagnostics["lockstep_waste"] == pytest.approx(waste, rel=1e-12)
    assert 0 <= waste < 1
    np.testing.assert_array_equal(history["n_leapfrog"] >= 2 ** history["tree_depth"] - 1, True)
    assert post.diagnostics["step_size"] == 0.3


def test_the_carried_gradient_belongs_to_the_current_position(linear):
    method = NUTS(step_size=0.3, n_chains=3, adapt_step_size=False)
    rng = np.random.default_rng(0)
    state = method.init(linear, np.zeros(linear.dim), rng)
    assert isinstance(state, NUTSState) and state.position.shape == (3, linear.dim)
    for _ in range(5):
        state, info = method.step(linear, state, rng)
    assert isinstance(info, NUTSInfo) and info.accept_prob.shape == info.tree_depth.shape == (3,)
    log_joint, grad = linear.log_joint_and_grad(state.position)
    np.testing.assert_allclose(state.log_joint, log_joint, rtol=1e-12)
    np.testing.assert_allclose(state.grad, grad, rtol=1e-12)


def test_same_seed_gives_identical_bits_and_another_seed_does_not(linear):
    method = NUTS(n_samples=50, n_warmup=100, n_chains=2)
    a, b, c = method.fit(linear, seed=7), method.fit(linear, seed=7), method.fit(linear, seed=8)
    np.testing.assert_array_equal(a.draws, b.draws)
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key])
    assert not np.array_equal(a.draws, c.draws)


def test_with_budget_never_overruns(linear):
    method = NUTS(n_samples=100, n_warmup=100, n_chains=2, max_tree_depth=4).with_budget(3000)
    assert method.n_warmup + method.n_samples == (3000 - 2) // (2 * 15)
    assert method.fit(linear, seed=0).cost.grad_evals <= 3000


@pytest.mark.parametrize(
    "setting, value",
    [
        ("n_samples", 2),
        ("n_warmup", -1),
        ("n_chains", 0),
        ("target_accept", 1.0),
        ("max_tree_depth", 0),
        ("max_tree_depth", 2.5),
        ("max_tree_depth", 40),
        ("step_size", -1.0),
        ("adapt_mass_matrix", "yes"),
    ],
)
def test_bad_settings_name_themselves(setting, value):
    with pytest.raises(ValueError, match=setting):
        NUTS(**{setting: value})


def test_a_bad_start_is_a_clear_error(linear):
    with pytest.raises(ValueError, match="not finite"):
        NUTS(n_chains=2).fit(linear, seed=0, init=[np.nan, 0.0])
    with pytest.raises(ValueError, match=r"init.*\(2, 2\)"):
        NUTS(n_chains=2).fit(linear, seed=0, init=np.zeros((2, 3)))
