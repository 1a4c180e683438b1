"""HMC against known posteriors, its invariance, adaptation (step size, mass matrix), divergences,
and its contract: seeding, carried gradient, cost, errors."""

import dataclasses

import numpy as np
import pytest

import approxpost as ap
from approxpost import targets
from approxpost.diagnostics import ess_and_rhat, mcse
from approxpost.methods.hmc import DIVERGENCE_THRESHOLD, HMC, HMCInfo, HMCState

N_SE = 4.0


def assert_moments(draws, mean, cov):
    """Mean and every (co)variance within 4 MCSE of the truth; std resolved to 10%.

    The covariance is the average of (θ − μ)(θ − μ)ᵀ with the exact μ, each
    entry a plain mean with its own MCSE: HMC's ESS for the mean of θ can
    exceed the number of draws (antithetic chains), for squares it does not.
    """
    n_chains, n_draws, dim = draws.shape
    centred = draws - mean
    assert np.all(np.abs(centred.mean(axis=(0, 1))) < N_SE * mcse(draws))
    products = (centred[..., :, None] * centred[..., None, :]).reshape(n_chains, n_draws, dim * dim)
    estimate = products.mean(axis=(0, 1)).reshape(dim, dim)
    se = mcse(products).reshape(dim, dim)
    assert np.all(np.abs(estimate - cov) < N_SE * se)
    assert np.all(N_SE * np.diag(se) / (2 * np.diag(cov)) < 0.1)  # δσ/σ ≈ δσ²/2σ²
    np.testing.assert_allclose(np.sqrt(np.diag(estimate)), np.sqrt(np.diag(cov)), rtol=0.1)


@pytest.fixture(scope="module")
def linear_fit(line):
    method = HMC(n_samples=2000, n_warmup=500, n_chains=4)
    return method, method.fit(line, seed=0)


def test_recovers_the_conjugate_posterior(line, linear_fit):
    _, post = linear_fit
    exact = line.exact_posterior()
    assert_moments(post.draws, exact.mean, exact.cov)
    assert np.all(post.diagnostics["rhat"] < 1.01)
    assert post.diagnostics["divergences"] == 0


def test_recovers_a_correlated_gaussian_with_an_adapted_mass_matrix():
    target = targets.Gaussian()
    post = HMC(n_samples=2000, n_warmup=500, adapt_mass_matrix=True).fit(target, seed=1)
    assert_moments(post.draws, target.mean, target.cov)


def test_step_size_adaptation_reaches_the_target_acceptance(linear_fit):
    method, post = linear_fit
    history = post.history
    kept = history["accept_prob"][~history["warmup"]]
    assert mcse(kept.T) < 0.01
    # Dual averaging drives the mean acceptance over the warm-up iterates to δ; the kept
    # ε̄ is their average in log space, and acceptance is concave in log ε near δ, so
    # α(ε̄) sits a little above δ (Jensen; Stan shows the same): 0.05 covers that bias
    # (≤ 0.035 on these targets over seeds 0–7) plus 4 MCSE.
    assert abs(post.diagnostics["acceptance_rate"] - method.target_accept) < 0.05
    assert abs(history["accept_prob"][history["warmup"]][50:].mean() - method.target_accept) < 0.05
    assert np.ptp(history["step_size"][~history["warmup"]]) == 0


def test_mass_matrix_adaptation_learns_the_scales_and_pays_off():
    # coordinates whose scales differ by 25: with M = I the step must suit the narrow one
    # and the wide one random-walks; with M⁻¹ ≈ Σ both move at the same speed. (One
    # estimation window needs the chains to have crossed the wide direction by the middle
    # of warm-up; with a ratio of 100 they have not, and M⁻¹ comes out ~3× too small.)
    target = targets.Gaussian(cov=[[25.0, 0.0], [0.0, 0.04]])
    seen = {}

    def grab(iteration, state, info):
        seen["inv_mass"] = state.inv_mass

    adapted = HMC(n_leapfrog=10, n_samples=500, n_warmup=400, adapt_mass_matrix=True).fit(target, seed=0, callback=grab)
    plain = HMC(n_leapfrog=10, n_samples=500, n_warmup=400).fit(target, seed=0)
    # ~150 iterations × 4 chains of correlated draws: relative error of a variance ~ √(2/ESS) ≲ 0.3
    np.testing.assert_allclose(seen["inv_mass"], np.diag(target.cov), rtol=0.5)
    assert adapted.diagnostics["ess"][0] > 4 * plain.diagnostics["ess"][0]
    assert abs(adapted.diagnostics["acceptance_rate"] - 0.8) < 0.1  # ε re-tuned for the new metric


def test_a_step_leaves_the_target_invariant():
    # 20 000 chains started at exact draws stay exactly distributed after 5 steps
    target, n = targets.Banana(), 20_000
    rng = np.random.default_rng(3)
    method = HMC(step_size=0.6, n_leapfrog=5, n_chains=n)
    state = method.init(target, target.sample(rng, n), rng)
    for _ in range(5):
        state, info = method.step(target, state, rng)
    assert 0.2 < info.accept_prob.mean() < 0.95  # the correction is at work
    theta = state.position
    assert np.all(np.abs(theta.mean(axis=0) - target.mean) < N_SE * theta.std(axis=0) / np.sqrt(n))
    second = (theta - target.mean) ** 2
    assert np.all(np.abs(second.mean(axis=0) - np.diag(target.cov)) < N_SE * second.std(axis=0) / np.sqrt(n))


def test_a_large_step_on_the_funnel_diverges_without_crashing():
    method = HMC(step_size=1.0, n_leapfrog=10, n_samples=200, n_warmup=0, adapt_step_size=False)
    post = method.fit(targets.Funnel(), seed=0)
    history = post.history
    diverging = history["diverging"].astype(bool)
    assert post.diagnostics["divergences"] == int(diverging.sum()) > 20
    assert isinstance(post.diagnostics["divergences"], int)
    # divergent trajectories are rejected, and nothing non-finite is ever kept
    assert np.all(history["accept_prob"][diverging] == 0)
    assert np.all(history["energy_error"][diverging] > DIVERGENCE_THRESHOLD)
    assert np.all(history["energy_error"][~diverging] <= DIVERGENCE_THRESHOLD)
    assert np.all(np.isfinite(post.draws)) and all(np.all(np.isfinite(v)) for v in history.values())


def test_the_carried_gradient_belongs_to_the_current_position(line):
    method = HMC(step_size=0.1, n_leapfrog=5, n_chains=3)
    rng = np.random.default_rng(0)
    state = method.init(line, np.zeros(line.dim), rng)
    assert isinstance(state, HMCState) and state.position.shape == (3, line.dim)
    for _ in range(5):
        state, info = method.step(line, state, rng)
    assert isinstance(info, HMCInfo) and info.accept_prob.shape == info.energy_error.shape == (3,)
    log_joint, grad = line.log_joint_and_grad(state.position)
    np.testing.assert_allclose(state.log_joint, log_joint, rtol=1e-12)
    np.testing.assert_allclose(state.grad, grad, rtol=1e-12)


def test_same_seed_gives_identical_draws_and_another_seed_does_not(line):
    method = HMC(n_samples=50, n_warmup=50, n_chains=2, adapt_mass_matrix=True)
    a, b, c = method.fit(line, seed=7), method.fit(line, seed=7), method.fit(line, seed=8)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.history["energy_error"], b.history["energy_error"])
    assert not np.array_equal(a.draws, c.draws)


def test_history_shapes_and_cost(line):
    method = HMC(n_leapfrog=7, n_samples=20, n_warmup=10, n_chains=3)
    post = method.fit(line, seed=0)
    assert post.draws.shape == (3, 20, line.dim)
    for key in ("log_joint", "accept_prob", "energy_error", "diverging"):
        assert post.history[key].shape == (30, 3)
    assert post.history["step_size"].shape == (30,)
    assert all(np.all(np.isfinite(v)) for v in post.history.values())
    # the start's gradient, then L per chain per iteration: the gradient is carried over
    assert post.cost.grad_evals == 3 * (1 + 7 * 30)
    assert set(post.diagnostics) >= {"acceptance_rate", "ess", "rhat", "divergences"}


def test_with_budget_spends_about_the_budget(line):
    method = HMC(n_leapfrog=10, n_samples=100, n_warmup=100, n_chains=2).with_budget(5000)
    assert (method.n_warmup, method.n_samples) == (124, 125)  # (5000 − 2) // 20 = 249 iterations, split half and half
    cost = method.fit(line, seed=0).cost.grad_evals
    assert 5000 - method.evals_per_step(line) < cost <= 5000


def test_init_is_broadcast_validated_and_left_untouched(line):
    method = HMC(n_samples=10, n_warmup=0, n_chains=2, n_leapfrog=3)
    start = np.array([0.1, -0.2])
    post = method.fit(line, seed=0, init=start)
    np.testing.assert_array_equal(start, [0.1, -0.2])
    np.testing.assert_array_equal(post.history["step_size"], 0.01)
    with pytest.raises(ValueError, match=r"init.*\(2, 2\).*\(2, 3\)"):
        method.fit(line, seed=0, init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not finite"):
        method.fit(line, seed=0, init=[np.nan, 0.0])
    with pytest.raises(ValueError, match="not finite"):
        method.init(targets.Funnel(), np.array([0.0, -np.inf]), np.random.default_rng(0))


@pytest.mark.parametrize(
    "setting, value",
    [
        ("step_size", 0.0),
        ("step_size", -0.01),
        ("step_size", np.inf),
        ("n_leapfrog", 0),
        ("n_samples", -5),
        ("n_warmup", -1),
        ("n_chains", 0),
        ("target_accept", 1.5),
        ("target_accept", 0.0),
        ("adapt_mass_matrix", 1),
        ("step_size_jitter", 1.0),
        ("step_size_jitter", -0.1),
    ],
)
def test_bad_settings_name_themselves(setting, value):
    with pytest.raises(ValueError, match=setting):
        HMC(**{setting: value})


def test_mass_matrix_adaptation_needs_a_warm_up():
    with pytest.raises(ValueError, match="n_warmup"):
        HMC(n_warmup=10, adapt_mass_matrix=True)
    assert dataclasses.replace(HMC(), n_warmup=10).n_warmup == 10


# --- the fast paths change no bit: fit against the step written out plainly ----------------------


def plain_hmc_step(method, model, state, rng):
    """``HMC.step`` written out as plainly as possible: every product with M⁻¹ formed, ε a column array.

    The library's step skips the products with an identity M⁻¹ and keeps a single ε a float;
    a chain must not notice.
    """
    n_chains = state.position.shape[0]
    momentum = rng.standard_normal(state.position.shape) / np.sqrt(state.inv_mass)
    step_size = state.step_size
    if method.step_size_jitter > 0:
        step_size = step_size * rng.uniform(1 - method.step_size_jitter, 1 + method.step_size_jitter, n_chains)
    eps = np.reshape(np.asarray(step_size, dtype=np.float64), np.shape(step_size) + (1,))
    with np.errstate(all="ignore"):
        energy = 0.5 * np.sum(momentum * momentum * state.inv_mass, axis=-1) - state.log_joint
        position, momentum = state.position, momentum + 0.5 * eps * state.grad
        for i in range(method.n_leapfrog):
            position = position + eps * (state.inv_mass * momentum)
            log_joint, grad = model.log_joint_and_grad(position)
            momentum = momentum + (eps if i < method.n_leapfrog - 1 else 0.5 * eps) * grad
        energy_error = 0.5 * np.sum(momentum * momentum * state.inv_mass, axis=-1) - log_joint - energy
        finite = np.isfinite(energy_error) & np.all(np.isfinite(position), axis=1) & np.all(np.isfinite(grad), axis=1)
        diverging = ~finite | (energy_error > DIVERGENCE_THRESHOLD)
        log_ratio = np.where(diverging, -np.inf, -energy_error)
        accept_prob = np.exp(np.minimum(log_ratio, 0.0))
        accepted = np.log(rng.random(n_chains)) < log_ratio
    new_state = state._replace(
        position=np.where(accepted[:, None], position, state.position),
        log_joint=np.where(accepted, log_joint, state.log_joint),
        grad=np.where(accepted[:, None], grad, state.grad),
    )
    energy_error = np.where(np.isfinite(energy_error), energy_error, np.finfo(np.float64).max)
    return new_state, HMCInfo(new_state.log_joint, accept_prob, energy_error, state.step_size, diverging)


def plain_hmc_run(method, model, init, seed):
    """The draws, per-iteration infos and last state of ``fit``, with the plain step and the library's warm-up hooks."""
    rng = np.random.default_rng(seed)
    state = method.init(model, init, rng)
    adaptation = method.start_warmup(model, state)
    draws, infos = [], []
    for iteration in range(method.n_warmup + method.n_samples):
        if iteration == method.n_warmup and method.n_warmup > 0:
            state = method.end_warmup(model, state, adaptation)
        state, info = plain_hmc_step(method, model, state, rng)
        if iteration < method.n_warmup:
            state, adaptation = method.adapt(model, state, info, adaptation, iteration)
        else:
            draws.append(state.position)
        infos.append(info)
    return np.stack(draws, axis=1), infos, state


@pytest.mark.parametrize(
    "problem, settings",
    [
        # jitter and dual averaging, the defaults, on a network with a replayed tape
        ("mlp", {"n_leapfrog": 6, "n_samples": 12, "n_warmup": 20, "n_chains": 3}),
        # one chain, no jitter: the single float ε of the benchmark
        ("mlp", {"n_leapfrog": 9, "n_samples": 10, "n_warmup": 5, "n_chains": 1, "step_size_jitter": 0.0}),
        # an adapted diagonal M⁻¹ after the mass window: the products with it are taken again
        ("banana", {"n_leapfrog": 5, "n_samples": 30, "n_warmup": 40, "n_chains": 2, "adapt_mass_matrix": True}),
        # divergent trajectories (overflow, rejection, the worst-error record)
        ("funnel", {"step_size": 1.5, "n_leapfrog": 10, "n_samples": 10, "n_warmup": 0, "n_chains": 4}),
    ],
)
def test_fit_is_bit_for_bit_the_plainly_written_sampler(problem, settings):
    if problem == "mlp":
        data = ap.datasets.gap_regression(n=20, seed=0)
        model = ap.models.Regression(ap.nn.MLP([1, 8, 1]), data.x, data.y, noise_std=data.noise_std)
    else:
        model = {"banana": targets.Banana, "funnel": targets.Funnel}[problem]()
    method = HMC(**settings)
    init = model.init(np.random.default_rng(1), method.n_chains)
    post = method.fit(model, seed=3, init=init)
    draws, infos, state = plain_hmc_run(method, model, init, seed=3)
    np.testing.assert_array_equal(post.draws, draws)
    for name in HMCInfo._fields:
        np.testing.assert_array_equal(post.history[name], np.stack([getattr(info, name) for info in infos]))
    # the posterior's own numbers, written out plainly from the same draws and infos
    kept = infos[method.n_warmup :]
    assert post.draws.flags.c_contiguous
    np.testing.assert_array_equal(post.mean, draws.reshape(-1, model.dim).mean(axis=0))
    assert post.diagnostics["acceptance_rate"] == float(np.mean([np.mean(info.accept_prob) for info in kept]))
    assert post.diagnostics["divergences"] == sum(int(np.count_nonzero(info.diverging)) for info in kept)
    ess, rhat = ess_and_rhat(draws)
    np.testing.assert_array_equal(post.diagnostics["ess"], ess)
    np.testing.assert_array_equal(post.diagnostics["rhat"], rhat)
    np.testing.assert_array_equal(post.history["warmup"], np.arange(len(infos)) < method.n_warmup)
    assert post.cost.grad_evals == method.n_chains * (1 + method.n_leapfrog * len(infos))
    # the cases reach the paths they are there for: an adapted M⁻¹, divergences
    assert np.any(state.inv_mass != 1.0) == settings.get("adapt_mass_matrix", False)
    assert post.history["diverging"].any() or problem != "funnel"


class FiniteAtInfinity:
    """log p = −Σ tanh²θ, finite everywhere, even at θ = ±inf, with a gradient that is NaN on 2 < |θ| < 1e10.

    The two ways a trajectory can fail while its log joint stays finite: a NaN gradient, and a
    position that overflowed to inf. It keeps the last point it was evaluated at.
    """

    dim = 3

    def log_joint_and_grad(self, theta):
        t = np.tanh(theta)
        broken = (np.abs(theta) > 2) & (np.abs(theta) < 1e10)
        self.last = theta, np.where(broken, np.nan, -2 * t * (1 - t * t))
        return -np.sum(t * t, axis=-1), self.last[1]


def test_divergences_are_caught_by_the_energy_error_and_the_position_alone():
    """The step checks ΔH and the position, not the gradient (a non-finite gradient makes the last half
    kick's momentum, so ΔH, non-finite): the same bits as the plain step, which checks all three."""
    model, rng = FiniteAtInfinity(), np.random.default_rng(0)
    method = HMC(n_leapfrog=20, n_chains=64, step_size_jitter=0.5)
    # half the chains start at the mode, where the gradient is 0: a huge ε sends them to inf with p finite
    position = rng.uniform(-1.0, 1.0, (method.n_chains, model.dim)) * (np.arange(method.n_chains) % 2)[:, None]
    state = HMCState(position, *model.log_joint_and_grad(position), 1.0, np.ones(model.dim))
    seen = {"NaN gradient": 0, "infinite position with a finite ΔH": 0}
    for seed, step_size in enumerate(np.geomspace(1e307, 0.1, 40)):
        state = state._replace(step_size=float(step_size))
        want = plain_hmc_step(method, model, state, np.random.default_rng(seed))
        with np.errstate(all="raise"):  # nothing warns either
            got = method.step(model, state, np.random.default_rng(seed))
        end_position, end_grad = model.last
        for got_part, want_part in zip(got, want):
            for name, got_value, want_value in zip(got_part._fields, got_part, want_part):
                np.testing.assert_array_equal(got_value, want_value, err_msg=name)
        seen["NaN gradient"] += np.count_nonzero(np.isnan(end_grad).any(axis=1))
        finite_error = got[1].energy_error < np.finfo(np.float64).max
        seen["infinite position with a finite ΔH"] += np.count_nonzero(
            np.isinf(end_position).any(axis=1) & finite_error
        )
        assert np.all(got[1].diverging[np.isnan(end_grad).any(axis=1) | np.isinf(end_position).any(axis=1)])
        state = got[0]
    assert all(count > 0 for count in seen.values()), seen
