"""One battery of checks run over every method: the shared Posterior contract.

Each method fits the same small conjugate model with tiny settings; the checks
are about the interface (shapes, seeds, inputs untouched, cost, history,
diagnostics keys, save/load), not about accuracy, which each method's own
tests measure against the exact posterior.
"""

import numpy as np
import pytest

import approxpost as ap

METHODS = {
    "Metropolis": ap.Metropolis(step_size=0.1, n_samples=200, n_warmup=100, n_chains=2),
    "HMC": ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=100, n_warmup=50, n_chains=2),
    "IS": ap.ImportanceSampling(n_samples=2_000, batch_size=500),
    "BBVI": ap.BBVI(n_mc=8, n_steps=200, learning_rate=5e-2),
    "BBB": ap.BayesByBackprop(n_mc=2, n_steps=200, learning_rate=5e-2),
    "MAP": ap.MAP(n_steps=100, learning_rate=1e-2),
    "Ensemble": ap.DeepEnsemble(n_members=4, n_steps=100, learning_rate=1e-2, anchored=True, perturb_targets=True),
    # MCDropout needs hidden units, which LinearRegression has none of: tests/methods/test_dropout.py covers it
    "Laplace": ap.Laplace(hessian="full", n_steps=50, n_newton=2),
    "LaplaceGGN": ap.Laplace(hessian="ggn", n_steps=50, n_newton=2, batch_size=5, linearized=True),
    "SGLD": ap.SGLD(step_size=1e-3, batch_size=10, n_samples=100, n_warmup=20, n_chains=2),
    "SGHMC": ap.SGHMC(step_size=1e-3, friction=0.5, n_samples=100, n_warmup=20, n_chains=2),
    "NUTS": ap.NUTS(n_samples=100, n_warmup=50, n_chains=2, max_tree_depth=5),
}
DIAGNOSTIC_KEYS = {
    "Metropolis": {"acceptance_rate", "ess", "rhat"},
    "HMC": {"acceptance_rate", "ess", "rhat", "divergences"},
    "IS": {"kish_ess", "khat", "log_evidence"},
    "BBVI": {"final_elbo"},
    "BBB": {"final_elbo"},
    "MAP": set(),
    "Ensemble": set(),
    "Laplace": {"log_evidence"},
    "LaplaceGGN": {"log_evidence"},
    "SGLD": {"ess", "rhat"},
    "SGHMC": {"ess", "rhat"},
    "NUTS": {"acceptance_rate", "ess", "rhat", "divergences", "step_size", "mean_tree_depth", "lockstep_waste"},
}

CONVERGES_TO_THE_MODE = {"Laplace", "LaplaceGGN"}


@pytest.fixture(scope="module")
def model():
    data = ap.datasets.linear(n=20, noise_std=0.5, seed=3)
    return ap.models.LinearRegression(data.x, data.y, noise_std=0.5, prior_std=1.0)


@pytest.fixture(scope="module", params=list(METHODS))
def fitted(request, model):
    name = request.param
    x_before, y_before = model.x.copy(), model.y.copy()
    post = METHODS[name].fit(model, seed=11)
    np.testing.assert_array_equal(model.x, x_before)  # the data are never modified
    np.testing.assert_array_equal(model.y, y_before)
    return name, post


def test_shapes(fitted, model):
    name, post = fitted
    assert isinstance(post, ap.Posterior)
    assert post.mean.shape == post.std.shape == (model.dim,)
    assert post.sample(7, seed=1).shape == (7, model.dim)
    assert np.all(post.std > 0) or isinstance(post, ap.PointPosterior)  # MAP is a point mass
    pred = post.predict(model.x[:5], n_samples=30, seed=2)
    assert pred.samples.shape == (30, 5, 1)
    assert pred.mean.shape == pred.std.shape == (5, 1)
    lower, upper = pred.interval(0.9)
    assert np.all(lower < pred.mean) and np.all(pred.mean < upper)


def test_same_seed_same_posterior_other_seed_differs(fitted, model):
    name, post = fitted
    again = METHODS[name].fit(model, seed=11)
    np.testing.assert_array_equal(again.mean, post.mean)
    np.testing.assert_array_equal(again.sample(5, seed=4), post.sample(5, seed=4))
    other = METHODS[name].fit(model, seed=12)
    if name in CONVERGES_TO_THE_MODE:  # the seed only picks the start: every start ends at the one mode
        np.testing.assert_allclose(other.mean, post.mean, rtol=1e-8)
        assert not np.array_equal(other.history["log_joint"], post.history["log_joint"])
    else:
        assert not np.array_equal(other.mean, post.mean)


def test_cost_and_history(fitted):
    name, post = fitted
    cost = post.cost
    assert cost.seconds > 0
    assert cost.grad_evals + cost.density_evals > 0
    assert post.history, f"{name} recorded no history"
    lengths = {len(values) for values in post.history.values()}
    assert len(lengths) == 1, f"history arrays of {name} have different lengths {lengths}"
    for key, values in post.history.items():
        assert np.all(np.isfinite(np.asarray(values, dtype=float))), f"history[{key!r}] of {name} is not finite"
    assert post.settings["method"] == type(METHODS[name]).__name__


def test_diagnostics_keys(fitted):
    name, post = fitted
    assert DIAGNOSTIC_KEYS[name] <= set(post.diagnostics)


def test_save_load_round_trip(fitted, model, tmp_path):
    name, post = fitted
    path = tmp_path / f"{name}.npz"
    post.save(path)
    loaded = ap.load(path, model=model)
    assert type(loaded) is type(post)
    np.testing.assert_array_equal(loaded.mean, post.mean)
    np.testing.assert_array_equal(loaded.sample(6, seed=3), post.sample(6, seed=3))
    assert loaded.cost == post.cost
    assert loaded.settings == post.settings


@pytest.mark.parametrize("name", list(METHODS))
def test_init_is_not_modified_and_bad_init_is_refused(name, model):
    method = METHODS[name]
    if name == "IS":
        with pytest.raises(ValueError, match="init"):
            method.fit(model, seed=0, init=np.zeros(model.dim))
        return
    lead = (method.n_members,) if isinstance(method, ap.DeepEnsemble) else ()  # one start per member
    init = np.zeros(lead + (model.dim,))
    before = init.copy()
    method.fit(model, seed=0, init=init)
    np.testing.assert_array_equal(init, before)
    with pytest.raises(ValueError, match="init"):
        method.fit(model, seed=0, init=np.zeros(lead + (model.dim + 3,)))


class _HalfLine(ap.models.Model):
    """log p(θ) finite only for θ₀ > 0: a start at θ₀ = -1 has log density -inf."""

    dim = 2

    def log_prior(self, theta):
        return ap.autodiff.log(theta[..., 0]) - 0.5 * ap.autodiff.sum(ap.autodiff.square(theta), axis=-1)

    def log_likelihood(self, theta, idx=None):
        return 0.0


@pytest.mark.parametrize("name", ["Metropolis", "HMC", "BBVI", "BBB", "MAP", "NUTS"])
def test_non_finite_start_is_a_clear_error(name):
    with pytest.raises(ValueError, match="not finite"):
        with np.errstate(invalid="ignore", divide="ignore"):
            METHODS[name].fit(_HalfLine(), seed=0, init=np.array([-1.0, 0.0]))


@pytest.mark.parametrize("name", list(METHODS))
def test_with_budget_spends_no_more_than_the_budget(name, model):
    budget = 1_000
    method = METHODS[name].with_budget(budget)
    assert type(method) is type(METHODS[name])
    cost = method.fit(model, seed=0).cost
    spent = cost.grad_evals + cost.density_evals
    # within one iteration of the budget, never over it; a NUTS iteration's cost varies with its
    # trees, so it declares the most one can cost (full trees) and only the upper bound holds
    assert spent <= budget
    if name != "NUTS":
        assert budget - method.evals_per_step(model) < spent
    with pytest.raises(ValueError, match="n_evals"):
        METHODS[name].with_budget(0)


@pytest.mark.parametrize("name", list(METHODS))
def test_stepping_by_hand_is_what_fit_does(name, model):
    """init, step and the warm-up hooks called by a student with the seed's Generator reproduce fit's history."""
    method = METHODS[name]
    rng = np.random.default_rng(5)
    position = None if not method.needs_start else method.initial_position(model, None, rng)
    state = method.init(model, position, rng)
    adaptation = method.start_warmup(model, state)
    infos = []
    for iteration in range(3):  # every METHODS entry with warm-up has more than 3 warm-up steps
        state, info = method.step(model, state, rng)
        if iteration < method.n_warmup_steps:
            state, adaptation = method.adapt(model, state, info, adaptation, iteration)
        assert type(info).__name__.endswith("Info") and type(state).__name__.endswith("State")
        infos.append(info)
    fitted = method.fit(model, seed=np.random.default_rng(5))
    for field in infos[0]._fields:
        np.testing.assert_array_equal(
            np.stack([np.asarray(getattr(i, field), dtype=float) for i in infos]), fitted.history[field][:3]
        )
