"""Deep ensembles: batched members equal separate MAP fits; anchored ensembles against the conjugate closed forms."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import approxpost as ap
from approxpost.methods.ensemble import DeepEnsemble, EnsembleInfo, EnsembleState
from approxpost.methods.map import MAP

N_SE = 4.0


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2))
    y = x @ np.array([1.0, -2.0]) + 0.5 + rng.standard_normal(20)
    return ap.models.LinearRegression(x, y, noise_std=1.0, prior_std=1.0)


@pytest.fixture(scope="module")
def mlp_regression():
    data = ap.datasets.gap_regression(n=30, seed=0)
    net = ap.nn.MLP([1, 10, 1], activation="tanh")
    return ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


def assert_moments(members, mean, cov):
    """Sample mean within 4 MCSE of ``mean``; every covariance entry within 4 SE of ``cov``.

    For M independent Gaussian draws, Var(Ŝ_ij) = (Σ_ii Σ_jj + Σ_ij²)/M.
    """
    n = members.shape[0]
    np.testing.assert_array_less(np.abs(members.mean(axis=0) - mean), N_SE * np.sqrt(np.diag(cov) / n))
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(members.T, ddof=0) - cov), N_SE * se)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_one_batched_ensemble_is_m_separate_map_fits(mlp_regression, batch_size):
    # Adam is elementwise and the members' rows never interact, so training them as one (M, D)
    # batch is the same as M fits from the same starts on the same minibatches
    starts = mlp_regression.init(np.random.default_rng(5), 3)
    ensemble = DeepEnsemble(n_members=3, n_steps=200, batch_size=batch_size).fit(mlp_regression, seed=1, init=starts)
    assert ensemble.cost.grad_evals == 3 * 200
    assert ensemble.history["log_joint"].shape == ensemble.history["grad_norm"].shape == (200, 3)
    for m in range(3):
        alone = MAP(n_steps=200, batch_size=batch_size).fit(mlp_regression, seed=1, init=starts[m])
        np.testing.assert_allclose(ensemble.members[m], alone.theta, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ensemble.history["log_joint"][:, m], alone.history["log_joint"], rtol=1e-11)


def _gap_spreads(prior_std):
    """A plain M=5 ensemble on the gap BNN: the members' starts, members, and their function spreads."""
    data = ap.datasets.gap_regression(n=40, seed=0)
    net = ap.nn.MLP([1, 50, 1], activation="tanh")
    model = ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=prior_std)
    starts = model.init(np.random.default_rng(0), 5)
    post = DeepEnsemble(n_members=5, n_steps=2000).fit(model, seed=0, init=starts)
    x = data.x_test[:, 0]
    in_gap, on_data = np.abs(x) < 0.7, (np.abs(x) > 0.7) & (np.abs(x) < 2.0)

    def spread(theta, where):  # the members' function std (ddof 0: the mixture's), averaged over x
        return float(model.predict(theta, data.x_test)[:, where, 0].std(axis=0).mean())

    pred = post.predict(data.x_test, n_samples=5 * 40, seed=0)  # a multiple of M: the exact mixture
    return starts, post, spread(starts, in_gap), spread(post.members, in_gap), spread(post.members, on_data), pred


def test_plain_members_are_distinct_maps_whose_functions_agree_in_the_gap_under_a_unit_prior():
    """The plain ensemble's missing in-between uncertainty is the MAP landscape, not a defect (notebook 8, 1.2).

    What a defect would look like fails here: members sharing a start or an rng stream (identical rows),
    members collapsing in θ, or a predictive std that drops the members' spread. Under the N(0, 1) prior
    the five converged MAP functions agree in the gap to ~0.004 (the starts differ there by 0.24); with a
    weaker weight decay (prior std 3) they agree on the data as well (~0.005, pinned by 40 points at
    noise 0.1) but differ in the gap by ~0.06: the weight decay, not the code, puts them on one function.
    """
    starts, post, start_gap, gap, data_spread, pred = _gap_spreads(1.0)
    distances = np.linalg.norm(post.members[:, None] - post.members[None], axis=-1)[np.triu_indices(5, 1)]
    assert start_gap > 0.1 and len({row.tobytes() for row in starts}) == 5
    assert distances.min() > 1.0  # five different points in θ (the prior std is 1 per coordinate)
    assert gap < 0.02 and data_spread < 0.01
    inside = np.abs(ap.datasets.gap_regression(n=40, seed=0).x_test[:, 0]) < 0.7
    np.testing.assert_allclose(pred.epistemic_std[inside, 0].mean(), gap, rtol=1e-12)  # the std reports the spread
    np.testing.assert_allclose(pred.std, np.sqrt(pred.epistemic_std**2 + 0.1**2), rtol=1e-12)
    # a weaker prior: 0.04 is 10x the unit prior's gap spread and 5x the on-data spread, below the ~0.06 measured
    _, _, _, weak_gap, weak_data, _ = _gap_spreads(3.0)
    assert weak_gap > 0.04 and weak_gap > 5 * weak_data


def test_unanchored_members_collapse_to_the_mode_of_a_convex_posterior(linear):
    # the teaching point: a plain ensemble's spread is only the spread of its local optima, and a
    # convex posterior has one; Adam at a constant rate hovers within ~3e-5 sd of it here
    post = DeepEnsemble(n_members=50, n_steps=3000, learning_rate=1e-2).fit(linear, seed=0)
    exact = linear.exact_posterior()
    np.testing.assert_allclose(post.members, np.broadcast_to(exact.mean, (50, 3)), atol=1e-4 * exact.std.min())
    assert np.all(post.std < 1e-4 * exact.std)


def test_anchors_alone_centre_the_members_but_shrink_their_covariance(linear):
    # θ_m = Λ⁻¹(Xᵀy/σ² + Σ⁻¹a_m), a_m ~ N(0, Σ): mean Λ⁻¹Xᵀy/σ² (exact), cov Λ⁻¹Σ⁻¹Λ⁻¹ (too small)
    post = DeepEnsemble(n_members=2000, n_steps=1000, learning_rate=3e-2, anchored=True).fit(linear, seed=0)
    exact = linear.exact_posterior()
    shrunk = exact.cov @ exact.cov / linear.prior_std**2
    assert_moments(post.members, exact.mean, shrunk)
    assert np.all(post.std < 0.5 * exact.std)


def test_anchors_and_perturbed_targets_give_exact_posterior_draws(linear):
    # with ỹ_m = y + ε_m as well: cov Λ⁻¹(XᵀX/σ² + Σ⁻¹)Λ⁻¹ = Λ⁻¹ (randomise-then-optimise)
    method = DeepEnsemble(n_members=2000, n_steps=1000, learning_rate=3e-2, anchored=True, perturb_targets=True)
    post = method.fit(linear, seed=0)
    exact = linear.exact_posterior()
    assert_moments(post.members, exact.mean, exact.cov)


@pytest.mark.parametrize("perturb_targets", [False, True])
def test_each_anchored_member_reaches_its_own_closed_form_optimum(linear, perturb_targets):
    method = DeepEnsemble(n_members=4, n_steps=3000, learning_rate=3e-2, anchored=True, perturb_targets=perturb_targets)
    rng = np.random.default_rng(3)
    state = method.init(linear, linear.init(rng, 4), rng)
    assert isinstance(state, EnsembleState)
    for _ in range(method.n_steps):
        state, info = method.step(linear, state, rng)
    assert isinstance(info, EnsembleInfo) and info.log_joint.shape == (4,)
    # argmax of log p(ỹ_m | θ) − ½‖θ − a_m‖²/s², with Σ⁻¹a_m = anchor_pull (prior mean 0)
    noise = 0.0 if state.target_noise is None else state.target_noise[:, :, 0]
    rhs = (linear.y[:, 0] + noise) @ linear.design / linear.noise_std**2 + state.anchor_pull
    optimum = np.linalg.solve(linear.posterior_precision(), rhs.T).T
    np.testing.assert_allclose(state.theta, optimum, rtol=0, atol=1e-8)


def test_anchored_ensemble_on_a_network(mlp_regression):
    post = DeepEnsemble(n_members=4, n_steps=300, anchored=True, perturb_targets=True, batch_size=10).fit(
        mlp_regression, seed=0
    )
    log_joint = post.history["log_joint"]
    assert np.all(np.mean(log_joint[-30:], axis=0) > np.mean(log_joint[:30], axis=0))
    assert post.cost.grad_evals == 2 * 4 * 300  # the log joint and the perturbation's network pass, per member
    pred = post.predict(mlp_regression.x, n_samples=8, seed=0)
    assert pred.samples.shape == (8, mlp_regression.n_data, 1) and np.all(pred.epistemic_std > 0)


@given(n_members=st.integers(1, 7), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_ensemble_posterior_samples_are_stratified_over_members(n_members, n, seed):
    members = np.arange(3.0 * n_members).reshape(n_members, 3)
    post = ap.EnsemblePosterior(members)
    draws = post.sample(n, seed=seed)
    assert draws.shape == (n, 3)
    counts = np.bincount((draws[:, 0] / 3).astype(int), minlength=n_members)
    assert counts.sum() == n and counts.max() - counts.min() <= 1  # every member ⌊n/M⌋ or ⌈n/M⌉ times
    np.testing.assert_array_equal(draws, members[(draws[:, 0] / 3).astype(int)])  # rows are members
    np.testing.assert_array_equal(post.mean, members.mean(axis=0))
    np.testing.assert_array_equal(post.std, members.std(axis=0))


def test_ensemble_posterior_draws_come_in_a_random_order():
    post = ap.EnsemblePosterior(np.arange(12.0).reshape(4, 3))
    assert not np.array_equal(post.sample(8, seed=0), post.sample(8, seed=1))
    np.testing.assert_array_equal(post.sample(8, seed=2), post.sample(8, seed=2))


def test_predict_with_a_multiple_of_m_draws_is_the_exact_mixture(mlp_regression):
    post = DeepEnsemble(n_members=4, n_steps=20).fit(mlp_regression, seed=0)
    pred = post.predict(mlp_regression.x, n_samples=40, seed=0)
    outputs = mlp_regression.predict(post.members, mlp_regression.x)  # (M, n, 1)
    np.testing.assert_allclose(pred.mean, outputs.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pred.epistemic_std, outputs.std(axis=0), rtol=1e-9, atol=1e-15)


def test_save_load_round_trip_and_seeding(mlp_regression, tmp_path):
    method = DeepEnsemble(n_members=3, n_steps=30, anchored=True)
    post = method.fit(mlp_regression, seed=2)
    np.testing.assert_array_equal(method.fit(mlp_regression, seed=2).members, post.members)
    assert not np.array_equal(method.fit(mlp_regression, seed=3).members, post.members)
    path = tmp_path / "ensemble.npz"
    post.save(path)
    loaded = ap.load(path, model=mlp_regression)
    assert type(loaded) is ap.EnsemblePosterior and loaded.members.tobytes() == post.members.tobytes()
    np.testing.assert_array_equal(loaded.sample(7, seed=1), post.sample(7, seed=1))
    assert loaded.settings == post.settings and loaded.settings["anchored"] is True
    assert "ess" not in loaded.diagnostics and "rhat" not in loaded.diagnostics


def test_with_budget():
    assert DeepEnsemble(n_members=5).with_budget(1000).n_steps == 200
    # perturbed targets cost one more network pass per member
    assert DeepEnsemble(n_members=5, anchored=True, perturb_targets=True).with_budget(1000).n_steps == 100
    with pytest.raises(ValueError, match="n_evals must be an integer of at least 5"):
        DeepEnsemble(n_members=5).with_budget(4)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"n_members": 0}, "n_members"),
        ({"n_members": 2.0}, "n_members"),
        ({"n_steps": -1}, "n_steps"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"anchored": "yes"}, "anchored"),
        ({"perturb_targets": True}, "perturb_targets=True needs anchored=True"),
    ],
)
def test_bad_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        DeepEnsemble(**settings)


def test_bad_fits_are_refused(linear):
    with pytest.raises(ValueError, match=r"init .* shape \(5, 3\)"):
        DeepEnsemble().fit(linear, seed=0, init=np.zeros(3))
    with pytest.raises(ValueError, match="Gaussian prior"):
        DeepEnsemble(anchored=True).fit(ap.targets.Banana(), seed=0)
    with pytest.raises(ValueError, match="Gaussian-noise regression"):
        DeepEnsemble(anchored=True, perturb_targets=True).fit(_GaussianPriorNoData(), seed=0)
    with pytest.raises(ValueError, match="members must have shape"):
        ap.EnsemblePosterior(np.zeros(3))


class _GaussianPriorNoData(ap.models.Model):
    """A Gaussian prior and no data: anchors are possible, perturbed targets are not."""

    dim = 2

    def log_prior(self, theta):
        return -0.5 * ap.autodiff.sum_squares(theta, axis=-1)

    def log_likelihood(self, theta, idx=None):
        return 0.0 * ap.autodiff.sum(theta, axis=-1)

    def prior_distribution(self):
        return ap.distributions.Normal(np.zeros(2), np.ones(2))


def test_init_is_not_modified_and_a_non_finite_start_is_a_clear_error(linear):
    init = np.zeros((3, linear.dim))
    DeepEnsemble(n_members=3, n_steps=5).fit(linear, seed=0, init=init)
    np.testing.assert_array_equal(init, 0.0)
    init[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"not finite at the starting point\(s\) \[1\]"):
        DeepEnsemble(n_members=3, n_steps=5).fit(linear, seed=0, init=init)


@pytest.fixture(scope="module")
def moons():
    data = ap.datasets.two_moons(n=100, seed=0)
    net = ap.nn.MLP([2, 8, 2], activation="tanh")
    return ap.models.Classification(net, data.x, data.y, prior_std=1.0), data


@pytest.mark.parametrize("anchored", [False, True])
def test_an_ensemble_classifier_predicts_the_mixture_of_its_members_softmax(moons, anchored):
    model, data = moons
    post = DeepEnsemble(n_members=4, n_steps=300, learning_rate=3e-2, anchored=anchored).fit(model, seed=0)
    pred = post.predict(data.x_test, n_samples=40, seed=0)  # a multiple of M: the exact equal mixture
    assert isinstance(pred, ap.ClassPredictive)
    np.testing.assert_allclose(pred.probs, model.predict_proba(post.members, data.x_test).mean(axis=0), rtol=1e-12)
    assert pred.accuracy(data.y_test) > 0.8  # far above the 0.5 of guessing: the members did learn the moons
    with pytest.raises(ValueError, match="Gaussian-noise regression"):
        DeepEnsemble(anchored=True, perturb_targets=True).fit(model, seed=0)
