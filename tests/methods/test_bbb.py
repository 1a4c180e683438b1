"""Bayes by Backprop: the conjugate oracle, minibatch bookkeeping, local reparameterisation, the contract."""

import numpy as np
import pytest

import approxpost as ap
from approxpost.distributions import MeanFieldNormal, kl
from approxpost.methods.bbb import BayesByBackprop, BBBInfo, BBBState

N_SE = 4.0


@pytest.fixture(scope="module")
def mlp_regression():
    data = ap.datasets.gap_regression(n=30, seed=0)
    net = ap.nn.MLP([1, 10, 1], activation="tanh")
    return ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


def mean_field_optimum(model):
    return model.exact_posterior().mean, 1.0 / np.sqrt(np.diag(model.posterior_precision()))


@pytest.mark.parametrize("batch_size, n_steps", [(None, 3000), (5, 4000)])
def test_converges_to_the_mean_field_optimum(linear, batch_size, n_steps):
    post = BayesByBackprop(n_mc=4, n_steps=n_steps, learning_rate=3e-3, batch_size=batch_size).fit(linear, seed=0)
    mean, std = mean_field_optimum(linear)
    assert np.all(np.abs(post.mean - mean) <= 0.1 * std)
    np.testing.assert_allclose(post.std, std, rtol=0.1)
    elbo, mcse = post.diagnostics["final_elbo"], post.diagnostics["final_elbo_mcse"]
    assert elbo <= linear.log_evidence() + N_SE * mcse
    # σ starts at 0.1 × prior std and grows to the posterior's ~0.25
    sigma = post.history["mean_sigma"]
    assert sigma[0] == pytest.approx(0.1) and sigma[-1] > 2 * sigma[0]


def test_monte_carlo_kl_when_the_prior_is_not_gaussian():
    # a 2-D target has no prior_distribution(): the KL is estimated from the same draws
    target = ap.targets.Gaussian()
    post = BayesByBackprop(n_mc=4, n_steps=3000, learning_rate=3e-3).fit(target, seed=0)
    optimum_std = 1.0 / np.sqrt(np.diag(np.linalg.inv(target.cov)))
    assert np.all(np.abs(post.mean - target.mean) <= 0.1 * optimum_std)
    np.testing.assert_allclose(post.std, optimum_std, rtol=0.1)
    # log Z = 0, so the best mean-field ELBO is −KL(q*‖p) = ½ log det(corr) = ½ log(1 − 0.9²)
    elbo, mcse = post.diagnostics["final_elbo"], post.diagnostics["final_elbo_mcse"]
    assert elbo <= N_SE * mcse and abs(elbo - 0.5 * np.log(1 - 0.81)) <= 0.05


def test_an_epoch_of_minibatch_gradients_sums_to_the_full_gradient(linear):
    mu, sigma = np.array([0.3, -1.0, 0.2]), np.array([0.2, 0.3, 0.1])
    rho = MeanFieldNormal.from_std(mu, sigma).rho
    minibatch, full = BayesByBackprop(n_mc=3, batch_size=6), BayesByBackprop(n_mc=3)
    assert minibatch.n_batches(linear) == 4 and minibatch.kl_weight_for(linear) == 0.25
    order = np.random.default_rng(0).permutation(linear.n_data)
    batches = [order[i : i + 6] for i in range(0, linear.n_data, 6)]  # sizes 6, 6, 6, 2
    # the same ε for every call: one seed, and ε is drawn first
    parts = [minibatch.loss_grad(linear, mu, rho, np.random.default_rng(1), idx) for idx in batches]
    whole = full.loss_grad(linear, mu, rho, np.random.default_rng(1))
    np.testing.assert_allclose(sum(p[2] for p in parts), whole[2], rtol=1e-10)
    np.testing.assert_allclose(sum(p[3] for p in parts), whole[3], rtol=1e-10)
    np.testing.assert_allclose([p[1] for p in parts], whole[1], rtol=1e-12)  # the KL itself is unweighted
    q, prior = MeanFieldNormal.from_std(mu, sigma), linear.prior_distribution()
    assert whole[1] == pytest.approx(float(kl(q, prior)), rel=1e-12)


def test_epochs_visit_every_point_once(linear):
    method = BayesByBackprop(n_mc=1, n_steps=10, batch_size=8)  # batches of 8, 8, 4
    rng = np.random.default_rng(0)
    state = method.init(linear, np.zeros(linear.dim), rng)
    seen = []
    for _ in range(3):
        state, _ = method.step(linear, state, rng)
        seen.append(state.order[state.batch_start - 8 : state.batch_start])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(linear.n_data))
    first_order = state.order
    state, _ = method.step(linear, state, rng)
    assert state.batch_start == 8 and not np.array_equal(state.order, first_order)


def test_local_reparam_fits_and_bills_its_network_passes(mlp_regression):
    method = BayesByBackprop(n_mc=2, n_steps=300, local_reparam=True, batch_size=10)
    post = method.fit(mlp_regression, seed=0)
    assert post.cost.grad_evals == method.n_steps * method.n_mc
    for key in ("elbo", "kl", "grad_norm", "mean_sigma"):
        assert post.history[key].shape == (method.n_steps,) and np.all(np.isfinite(post.history[key]))
    assert post.history["elbo"][-50:].mean() > post.history["elbo"][:50].mean()
    assert post.mean.shape == post.std.shape == (mlp_regression.dim,)
    # the 1000-draw final ELBO agrees with the last noisy per-step estimates (same objective, nearly the same q)
    last = post.history["elbo"][-50:]
    assert abs(post.diagnostics["final_elbo"] - last.mean()) <= N_SE * last.std()


def test_steps_by_hand_reproduce_fit_and_seeds_are_exact(linear):
    method = BayesByBackprop(n_mc=2, n_steps=30, batch_size=7)
    init = np.zeros(linear.dim)
    post = method.fit(linear, seed=5, init=init)
    rng = np.random.default_rng(5)
    state = method.init(linear, init, rng)
    for _ in range(method.n_steps):
        state, info = method.step(linear, state, rng)
    assert isinstance(state, BBBState) and isinstance(info, BBBInfo)
    np.testing.assert_array_equal(post.mean, state.mu)
    again = method.fit(linear, seed=5, init=init)
    np.testing.assert_array_equal(post.std, again.std)
    np.testing.assert_array_equal(post.history["elbo"], again.history["elbo"])
    assert post.diagnostics == again.diagnostics
    np.testing.assert_array_equal(init, 0.0)
    assert post.cost.grad_evals == method.n_steps * method.n_mc
    assert BayesByBackprop(n_mc=4).with_budget(1000).n_steps == 250


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"n_mc": 0}, "n_mc"),
        ({"n_steps": 0}, "n_steps"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"local_reparam": 1}, "local_reparam"),
        ({"batch_size": 0}, "batch_size"),
        ({"kl_weight": -0.5}, "kl_weight"),
        ({"kl_weight": float("inf")}, "kl_weight"),
    ],
)
def test_bad_settings_raise_naming_the_setting(settings, name):
    with pytest.raises(ValueError, match=name):
        BayesByBackprop(**settings)


def test_settings_that_do_not_fit_the_model_raise(linear):
    with pytest.raises(ValueError, match="local reparameterisation.*MLP.*LinearRegression"):
        BayesByBackprop(local_reparam=True, n_steps=2).fit(linear, seed=0)
    with pytest.raises(ValueError, match=r"batch_size=50.*n_data=20"):
        BayesByBackprop(batch_size=50, n_steps=2).fit(linear, seed=0)
    with pytest.raises(ValueError, match="batch_size=4 needs a model with data.*Gaussian"):
        BayesByBackprop(batch_size=4, n_steps=2).fit(ap.targets.Gaussian(), seed=0)
    with pytest.raises(ValueError, match=r"init.*\(3,\)"):
        BayesByBackprop(n_steps=2).fit(linear, seed=0, init=np.zeros((1, 3)))


# --- the fast paths change no bit: fit against the step written out plainly ----------------------


def plain_bbb_run(method, model, init, seed):
    """Bayes by Backprop's default step (analytic KL, the chain rule by hand) and Adam written out plainly.

    The library reuses σ, skips a KL weight of 1 and a full finite scan, caches Adam, keeps the
    prior's variance, accumulates the KL, the gradient and Adam's moments in place and moves (μ, ρ)
    as one (2, D) array; the run must not notice. Returns (μ, ρ) and the history.
    """
    rng = np.random.default_rng(seed)
    prior = model.prior_distribution()
    mu, rho = np.array(init, dtype=np.float64), MeanFieldNormal.from_std(init, 0.1 * prior.std).rho
    m, v = [np.zeros_like(mu), np.zeros_like(mu)], [np.zeros_like(mu), np.zeros_like(mu)]
    b1, b2, lr = 0.9, 0.999, method.learning_rate
    n_batches = 1 if method.batch_size is None else -(-model.n_data // method.batch_size)
    weight = 1.0 / n_batches if method.kl_weight is None else method.kl_weight
    order, start, history = np.empty(0, dtype=np.intp), 0, {name: [] for name in BBBInfo._fields}
    for t in range(1, method.n_steps + 1):
        idx = None
        if method.batch_size is not None:
            if start >= order.size:
                order, start = rng.permutation(model.n_data), 0
            idx, start = order[start : start + method.batch_size], start + method.batch_size
        fraction = 1.0 if idx is None else idx.size / model.n_data
        sigma = np.maximum(rho, 0.0) + np.log1p(np.exp(-np.abs(rho)))
        eps = rng.standard_normal((method.n_mc, mu.size))
        log_lik, pullback = ap.autodiff.vjp(
            lambda th: ap.autodiff.mean(model.log_likelihood(th, idx)), mu + sigma * eps
        )
        grad_theta = pullback(-fraction)
        diff, prior_var = mu - prior.mean, np.square(prior.std)
        kl_value = float(np.sum(np.log(prior.std / sigma) + (sigma * sigma + diff * diff) / (2.0 * prior_var) - 0.5))
        grad_mu = np.sum(grad_theta, axis=0) + weight * (diff / prior_var)
        grad_sigma = np.sum(grad_theta * eps, axis=0) + weight * (sigma / prior_var - 1.0 / sigma)
        grads = [grad_mu, grad_sigma * -np.expm1(-sigma)]
        correction2 = np.sqrt(1.0 - b2**t)
        rate, eps_adam = lr * correction2 / (1.0 - b1**t), 1e-8 * correction2
        params = []
        for i, (p, g) in enumerate(zip((mu, rho), grads)):
            m[i] = b1 * m[i] + (1.0 - b1) * g
            v[i] = b2 * v[i] + (1.0 - b2) * (g * g)
            params.append(p - rate * m[i] / (np.sqrt(v[i]) + eps_adam))
        history["elbo"].append(float(log_lik) - kl_value)
        history["kl"].append(kl_value)
        history["grad_norm"].append(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
        history["mean_sigma"].append(np.mean(sigma))
        mu, rho = params
    return mu, rho, history


@pytest.mark.parametrize("model_name", ["mlp_regression", "linear"])
@pytest.mark.parametrize(
    "settings",
    [
        {"n_mc": 1, "n_steps": 25},  # the benchmark's step: one draw, all the data, KL weight 1
        {"n_mc": 16, "n_steps": 10},  # the benchmark's other step
        {"n_mc": 3, "n_steps": 25, "batch_size": 7},  # epochs of minibatches, KL weight 1/3
        {"n_mc": 2, "n_steps": 20, "batch_size": 10, "kl_weight": 0.25, "learning_rate": 0.05},
        {"n_mc": 2, "n_steps": 20, "kl_weight": 0.0},  # the likelihood alone: 0 · KL gradient
    ],
)
def test_fit_is_bit_for_bit_the_plainly_written_step(request, model_name, settings):
    model = request.getfixturevalue(model_name)
    method = BayesByBackprop(**settings)
    init = model.init(np.random.default_rng(2), 1)[0]
    post = method.fit(model, seed=4, init=init)
    mu, rho, history = plain_bbb_run(method, model, init, seed=4)
    np.testing.assert_array_equal(post.mean, mu)
    np.testing.assert_array_equal(post.std, MeanFieldNormal(mu, rho).std)
    for name, values in history.items():
        np.testing.assert_array_equal(post.history[name], values)


class _MonteCarloKLRegression(ap.models.Regression):
    """The same regression with its prior not declared a Normal: BBB estimates the KL from the draws."""

    def prior_distribution(self):
        return None


def _on_the_plain_graph(model, run):
    """``run()`` with the tape replay switched off on this model instance only."""
    model.replay_graph = False
    try:
        return run()
    finally:
        del model.replay_graph


@pytest.mark.parametrize("monte_carlo_kl", [False, True], ids=["analytic-kl", "monte-carlo-kl"])
@pytest.mark.parametrize("n_mc", [1, 4])
def test_the_replayed_gradient_is_bit_for_bit_the_plain_graph(mlp_regression, linear, n_mc, monte_carlo_kl):
    """BBB's ∇θ replays a tape on a Regression (all the data): loss_grad, fit and its cost are the plain graph's."""
    for base in (mlp_regression, linear):
        model = _MonteCarloKLRegression(base.net, base.x, base.y, base.noise_std) if monte_carlo_kl else base
        method = BayesByBackprop(n_mc=n_mc, n_steps=15)
        mu, rho = model.init(np.random.default_rng(0), 1)[0], np.full(model.dim, -2.0)
        for seed in range(3):  # the first call records the tape, the others replay it at new θ
            replayed = method.loss_grad(model, mu, rho, np.random.default_rng(seed))
            plain = _on_the_plain_graph(model, lambda: method.loss_grad(model, mu, rho, np.random.default_rng(seed)))
            assert replayed[:2] == plain[:2]
            np.testing.assert_array_equal(replayed[2], plain[2])
            np.testing.assert_array_equal(replayed[3], plain[3])
        assert model._mean_log_likelihood_tapes[monte_carlo_kl, (n_mc, model.dim)].complete
        post = method.fit(model, seed=3)
        plain_post = _on_the_plain_graph(model, lambda: method.fit(model, seed=3))
        np.testing.assert_array_equal(post.mean, plain_post.mean)
        np.testing.assert_array_equal(post.std, plain_post.std)
        np.testing.assert_array_equal(post.history["elbo"], plain_post.history["elbo"])
        # one gradient evaluation a draw, however ∇θ is computed; the prior's is not counted
        assert post.cost.grad_evals == plain_post.cost.grad_evals == method.n_steps * n_mc
        assert post.cost.density_evals == plain_post.cost.density_evals


def test_a_non_finite_gradient_still_stops_the_fit_with_the_reason():
    class Steep(ap.models.Model):
        """−e^(θ₁²): finite at θ₁ = 26.63 (θ₁² = 709.2), where its gradient −2θ₁e^(θ₁²) overflows."""

        dim = 2

        def log_prior(self, theta):
            return -0.5 * ap.autodiff.sum_squares(theta, axis=-1)

        def log_likelihood(self, theta, idx=None):
            return -ap.autodiff.exp(ap.autodiff.square(theta[..., 0]) + 0.0 * theta[..., 1])

    with pytest.raises(ValueError, match="not finite.*learning_rate"), np.errstate(over="ignore", invalid="ignore"):
        BayesByBackprop(n_mc=1, n_steps=5).fit(Steep(), seed=0, init=np.array([26.63, 0.0]))
