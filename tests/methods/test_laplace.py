"""Laplace against the conjugate oracle (mean, covariance, evidence, evidence-optimal prior std), the GGN
against the exact Hessian where they must agree, the GLM predictive, the gap BNN, and bad settings."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize
from strategies import mlp_layer_sizes

import approxpost as ap
from approxpost.linearized import JACOBIAN_CHUNK, ggn, network_jacobian
from approxpost.methods.curvature import hessian, line_search_fractions


@pytest.fixture(scope="module")
def linear():
    data = ap.datasets.linear(n=20, noise_std=0.5, seed=3)
    return ap.models.LinearRegression(data.x, data.y, noise_std=0.5, prior_std=1.0)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kind", ["full", "ggn"])
@pytest.mark.parametrize("n_steps", [0, 300])
def test_full_and_ggn_are_the_exact_posterior_and_evidence(linear, kind, n_steps):
    post = ap.Laplace(hessian=kind, n_steps=n_steps, n_newton=3).fit(linear, seed=0)
    exact = linear.exact_posterior()
    assert relative(post.mean, exact.mean) < 1e-8
    assert relative(post.cov, exact.cov) < 1e-8
    assert abs(post.diagnostics["log_evidence"] - linear.log_evidence()) < 1e-8
    assert post.diagnostics["clipped_eigenvalues"] == 0


def test_diag_is_the_diagonal_of_the_precision(linear):
    post = ap.Laplace(hessian="diag", n_newton=3).fit(linear, seed=0)
    precision = linear.posterior_precision()
    assert post.is_diagonal
    assert relative(post.mean, linear.exact_posterior().mean) < 1e-8
    np.testing.assert_allclose(post.std, 1.0 / np.sqrt(np.diag(precision)), rtol=1e-8)
    # and its evidence uses that diagonal: log p(θ*, D) + (D/2) log 2π − ½ Σ log Λ_ii
    log_joint = linear.log_joint(post.mean)
    expected = log_joint + 0.5 * linear.dim * np.log(2 * np.pi) - 0.5 * np.sum(np.log(np.diag(precision)))
    assert abs(post.diagnostics["log_evidence"] - expected) < 1e-8


def _evidence(linear, log_std, kind):
    """The exact evidence, or (kind="diag") the diagonal Laplace evidence at the exact mode, computed directly."""
    model = ap.models.LinearRegression(linear.x, linear.y, noise_std=0.5, prior_std=np.exp(log_std))
    if kind != "diag":
        return model.log_evidence()
    mode = model.exact_posterior().mean
    log_det = np.sum(np.log(np.diag(model.posterior_precision())))
    return model.log_joint(mode) + 0.5 * model.dim * np.log(2 * np.pi) - 0.5 * log_det


@pytest.mark.parametrize("kind", ["full", "ggn", "diag"])
def test_optimised_prior_std_maximises_the_evidence(linear, kind):
    best = optimize.minimize_scalar(
        lambda log_std: -_evidence(linear, log_std, kind), bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}
    )
    post = ap.Laplace(hessian=kind, optimize_prior=True, n_newton=4).fit(linear, seed=0)
    assert post.diagnostics["prior_std"] == pytest.approx(np.exp(best.x), rel=1e-7)
    assert post.diagnostics["prior_std"] != pytest.approx(1.0, rel=0.1)  # it moved: the test can fail
    refit = ap.models.LinearRegression(linear.x, linear.y, noise_std=0.5, prior_std=post.diagnostics["prior_std"])
    assert relative(post.mean, refit.exact_posterior().mean) < 1e-8
    assert abs(post.diagnostics["log_evidence"] - _evidence(linear, np.log(post.diagnostics["prior_std"]), kind)) < 1e-8


def test_batched_hessian_matches_the_analytic_one_and_costs_2d_rows(linear):
    counter = _RowCounter(linear)
    theta = np.array([0.3, -1.2])
    precision = linear.posterior_precision()
    # exact up to rounding (the gradient is linear in θ): ε·|∇|/h relative to the largest entry
    np.testing.assert_allclose(hessian(counter, theta), precision, rtol=0, atol=1e-10 * np.max(np.abs(precision)))
    assert counter.rows == 2 * linear.dim


class _RowCounter:
    """Counts the rows of θ passed to ``log_joint_and_grad``, as ``fit``'s counting model does."""

    def __init__(self, model):
        self.model, self.rows = model, 0

    def __getattr__(self, name):
        if name == "model":  # fit's counting copy is made before __init__ has run on it (copy.copy)
            raise AttributeError(name)
        return getattr(self.model, name)

    def log_joint_and_grad(self, theta, idx=None):
        self.rows += 1 if np.ndim(theta) == 1 else np.shape(theta)[0]
        return self.model.log_joint_and_grad(theta, idx)


class _CallCounter:
    """Counts calls of ``log_joint_and_grad`` (not rows): the Hessian must be batched, never D calls."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __getattr__(self, name):
        if name == "model":  # fit's counting copy is made before __init__ has run on it (copy.copy)
            raise AttributeError(name)
        return getattr(self.model, name)

    def log_joint_and_grad(self, theta, idx=None):
        self.calls += 1
        return self.model.log_joint_and_grad(theta, idx)


def test_newton_steps_make_two_batched_calls_each_whatever_d():
    data = ap.datasets.linear(n=30, n_features=6, noise_std=0.5, seed=0)  # D = 7
    model = _CallCounter(ap.models.LinearRegression(data.x, data.y, noise_std=0.5))
    n_newton = 3
    post = ap.Laplace(hessian="full", n_steps=0, n_newton=n_newton).fit(model, seed=0)
    # init; entering the Newton phase: value + Hessian; then per step: line search + Hessian
    assert model.calls == 1 + 2 + 2 * n_newton
    rows = 1 + (1 + 2 * 7) + n_newton * (len(line_search_fractions()) + 2 * 7)
    assert post.cost.grad_evals == rows


def test_ggn_equals_the_hessian_for_a_linear_network():
    """With no hidden layer f is linear in θ, so −∇² log p(D|θ) = JᵀΛJ exactly."""
    data = ap.datasets.gap_regression(n=15, seed=1)
    model = ap.models.Regression(ap.nn.MLP([1, 1]), data.x, data.y, noise_std=0.3, prior_std=2.0)
    theta = np.array([0.7, -0.2])
    expected = hessian(model, theta) - np.eye(model.dim) / 4.0
    np.testing.assert_allclose(ggn(model, theta), expected, rtol=1e-8)


@given(
    sizes=mlp_layer_sizes(),
    n=st.integers(1, 2 * JACOBIAN_CHUNK + 3),  # across chunk boundaries of the batched VJP
    activation=st.sampled_from(["tanh", "relu"]),
    seed=st.integers(0, 2**16),
)
def test_network_jacobian_matches_central_differences(sizes, n, activation, seed):
    rng = np.random.default_rng(seed)
    net = ap.nn.MLP(sizes, activation=activation)
    x = rng.standard_normal((n, sizes[0]))
    theta = net.init(rng, 1)[0]
    f, jac = network_jacobian(SimpleNamespace(net=net, x=x), theta)
    assert f.shape == (n, sizes[-1]) and jac.shape == (n, sizes[-1], net.dim)
    np.testing.assert_allclose(f, net.forward(theta, x), rtol=1e-12, atol=1e-12)
    # every column at once: θ ± h e_i for all i as one batch of 2D networks (exact for relu away from kinks)
    h = 1e-6
    shifted = np.concatenate([theta + h * np.eye(net.dim), theta - h * np.eye(net.dim)])
    outputs = np.asarray(net.forward(shifted, x))
    columns = (outputs[: net.dim] - outputs[net.dim :]) / (2 * h)  # (D, n, out)
    np.testing.assert_allclose(jac, np.moveaxis(columns, 0, -1), rtol=1e-5, atol=1e-7)


def test_linearised_predictive_is_exact_for_a_linear_model(linear):
    """f is linear in θ, so the GLM predictive's draws are the sampled predictive's draws, bit for bit in law."""
    post = ap.Laplace(hessian="full", n_newton=2).fit(linear, seed=0)
    x = np.linspace(-2, 2, 7)[:, None]
    sampled = post.predict(x, n_samples=50, seed=5)
    glm = post.predict(x, n_samples=50, seed=5, linearized=True)
    np.testing.assert_allclose(glm.samples, sampled.samples, rtol=1e-10, atol=1e-12)
    default = ap.Laplace(hessian="full", n_newton=2, linearized=True).fit(linear, seed=0)
    np.testing.assert_allclose(default.predict(x, n_samples=50, seed=5).samples, glm.samples)


@pytest.fixture(scope="module")
def gap_model():
    data = ap.datasets.gap_regression(seed=0)
    net = ap.nn.MLP([1, 50, 1], activation="tanh")
    return data, ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


@pytest.mark.parametrize("kind", ["full", "diag", "ggn"])
def test_gap_bnn_gives_a_finite_proper_gaussian(gap_model, kind):
    """At an Adam mode of a BNN the Hessian is indefinite; the PSD projection keeps Λ ≥ prior precision."""
    data, model = gap_model
    post = ap.Laplace(hessian=kind, n_steps=500, n_newton=3, optimize_prior=kind == "ggn").fit(model, seed=0)
    assert np.all(np.isfinite(post.mean)) and np.all(post.std > 0)
    assert np.all(post.std <= 1.0 / np.sqrt(1.0 / post.diagnostics.get("prior_std", 1.0) ** 2) + 1e-12)
    assert np.isfinite(post.diagnostics["log_evidence"])
    pred = post.predict(data.x_test, n_samples=20, seed=0, linearized=True)
    assert np.all(np.isfinite(pred.std))
    if kind == "full":
        assert post.diagnostics["clipped_eigenvalues"] > 0  # the case the projection exists for
    if kind != "ggn":  # (the prior, and with it the log joint, changes from step to step when optimised)
        newton = post.history["log_joint"][500:]  # the line search never goes downhill (beyond rounding)
        assert np.all(np.diff(newton) >= -1e-13 * np.abs(newton[1:]))


def test_save_and_load_keep_the_class_and_the_predictive_default(linear, tmp_path):
    post = ap.Laplace(hessian="diag", n_newton=2, linearized=True).fit(linear, seed=0)
    post.save(tmp_path / "laplace.npz")
    loaded = ap.load(tmp_path / "laplace.npz", model=linear)
    assert type(loaded) is ap.LaplacePosterior and loaded.linearized and loaded.is_diagonal
    np.testing.assert_array_equal(loaded.std, post.std)
    assert loaded.diagnostics == post.diagnostics


@pytest.mark.parametrize(
    "settings",
    [
        {"hessian": "kfac"},
        {"optimize_prior": 1},
        {"n_newton": 0},
        {"n_steps": -1},
        {"learning_rate": 0.0},
        {"batch_size": 0},
        {"linearized": "yes"},
    ],
)
def test_bad_settings(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        ap.Laplace(**settings)


def test_ggn_needs_a_network_and_a_gaussian_prior():
    with pytest.raises(ValueError, match="prior"):
        ap.Laplace(hessian="ggn").fit(ap.targets.Gaussian(), seed=0)
    post = ap.Laplace(hessian="full", n_steps=0, n_newton=2).fit(ap.targets.Gaussian(), seed=0)
    target = ap.targets.Gaussian()
    np.testing.assert_allclose(post.cov, target.cov, rtol=1e-7)  # a Gaussian target: Laplace is exact
    np.testing.assert_allclose(post.mean, target.mean, atol=1e-9)


class _DoubleWell(ap.models.Model):
    """log p(θ) = θ² − θ⁴/4 with no Gaussian prior: modes at ±√2 (curvature 4), a saddle-like dip at 0."""

    dim = 1

    def log_prior(self, theta):
        squared = ap.autodiff.square(theta)
        return ap.autodiff.sum(squared - 0.25 * ap.autodiff.square(squared), axis=-1)

    def log_likelihood(self, theta, idx=None):
        return 0.0


def test_a_model_without_a_gaussian_prior_is_exact_at_its_mode_and_refused_where_it_curves_up():
    model = _DoubleWell()
    post = ap.Laplace(n_steps=0, n_newton=6).fit(model, seed=0, init=np.array([1.0]))
    np.testing.assert_allclose(post.mean, [np.sqrt(2.0)], rtol=1e-10)
    np.testing.assert_allclose(post.cov, [[0.25]], rtol=1e-8)
    expected = model.log_joint(post.mean) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(4.0)
    assert abs(post.diagnostics["log_evidence"] - expected) < 1e-10
    with pytest.raises(ValueError, match="not positive definite"):
        ap.Laplace(n_steps=0, n_newton=2).fit(model, seed=0, init=np.array([0.1]))


@pytest.mark.parametrize("kind", ["full", "ggn"])
def test_budget_pays_for_the_newton_phase_and_the_adam_steps_get_the_rest(linear, kind):
    method = ap.Laplace(hessian=kind, n_newton=4).with_budget(700)
    # a curvature is 2D counted gradient rows, or one GGN Jacobian charged one evaluation (one output)
    curvature = 1 if kind == "ggn" else 2 * linear.dim
    n_adam = 700 - 1 - (1 + curvature) - 4 * (len(line_search_fractions()) + curvature)
    assert method.n_adam_steps(linear) == n_adam
    post = method.fit(linear, seed=0)
    assert post.cost.grad_evals == 700
    # the Newton phase ran: the mode is the exact posterior mean
    assert relative(post.mean, linear.exact_posterior().mean) < 1e-8
    with pytest.raises(ValueError, match="n_evals"):
        ap.Laplace().with_budget(0)
    with pytest.raises(ValueError, match="n_evals"):  # enough for the D-free part, not for 2D-row Hessians
        ap.Laplace(n_newton=4).with_budget(40).fit(linear, seed=0)


class _SoftmaxRegression(ap.models.Model):
    """Multinomial logistic regression on a linear MLP: a categorical likelihood whose GGN is its Hessian."""

    def __init__(self, x, y, n_classes, prior_std=1.0):
        super().__init__()
        self.net, self.x, self.labels = ap.nn.MLP([x.shape[1], n_classes]), x, y
        self.onehot = np.eye(n_classes)[y]
        self.dim, self.n_data, self.prior_std = self.net.dim, len(y), prior_std

    def log_prior(self, theta):
        return self.prior_distribution().log_prob(theta)

    def log_likelihood(self, theta, idx=None):
        log_probs = ap.autodiff.log_softmax(self.net.forward(theta, self.x), axis=-1)
        return ap.autodiff.sum(log_probs * self.onehot, axis=(-2, -1))

    def prior_distribution(self):
        return ap.distributions.Normal(np.zeros(self.dim), np.full(self.dim, self.prior_std))

    def predict_proba(self, theta, x):
        f = np.asarray(self.net.forward(np.atleast_2d(theta), x))
        return np.exp(f - f.max(-1, keepdims=True)) / np.exp(f - f.max(-1, keepdims=True)).sum(-1, keepdims=True)


def test_categorical_ggn_is_the_hessian_of_softmax_regression():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 2))
    model = _SoftmaxRegression(x, rng.integers(0, 3, 30), n_classes=3, prior_std=1.5)
    theta = 0.3 * rng.standard_normal(model.dim)
    expected = hessian(model, theta) - np.eye(model.dim) / 1.5**2
    np.testing.assert_allclose(ggn(model, theta), expected, rtol=1e-7, atol=1e-9)
    full = ap.Laplace(hessian="full", n_steps=0, n_newton=8).fit(model, seed=0)
    gauss_newton = ap.Laplace(hessian="ggn", n_steps=0, n_newton=8).fit(model, seed=0)
    np.testing.assert_allclose(gauss_newton.mean, full.mean, rtol=1e-8)
    np.testing.assert_allclose(gauss_newton.cov, full.cov, rtol=1e-6)


def _count_jacobians(monkeypatch) -> list:
    """Patch ``linearized.network_jacobian`` to record the output count of each Jacobian it computes."""
    import approxpost.linearized as linearized

    calls, original = [], linearized.network_jacobian

    def counting(model, theta, x=None):
        f, jac = original(model, theta, x)
        calls.append(f.shape[-1])
        return f, jac

    monkeypatch.setattr(linearized, "network_jacobian", counting)
    return calls


class _CountingClassifier(ap.models.Classification):
    """Counts every row of θ its own evaluation methods see, apart from the fit driver's counter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = 0

    def _rows(self, theta):
        self.rows += 1 if np.ndim(getattr(theta, "value", theta)) == 1 else np.shape(getattr(theta, "value", theta))[0]

    def log_joint_and_grad(self, theta, idx=None):
        self._rows(theta)
        return super().log_joint_and_grad(theta, idx)


@pytest.mark.parametrize(
    "problem, budget",
    [("moons", 1500), ("cnn", 400)],
)
def test_a_budgeted_ggn_on_a_classifier_is_paid_for_and_costs_what_ran(problem, budget, monkeypatch):
    if problem == "moons":
        data = ap.datasets.two_moons(n=100, noise=0.1, seed=0)
        net = ap.nn.MLP([2, 20, 2], activation="tanh")
    else:
        data = ap.datasets.digits(n_train=60, seed=0)
        net = ap.nn.CNN(channels=(2,), hidden=(8,))
    model = _CountingClassifier(net, data.x, data.y, prior_std=1.0)
    method = ap.Laplace(hessian="ggn", n_newton=3).with_budget(budget)
    jacobians = _count_jacobians(monkeypatch)
    rows_before = model.rows
    post = method.fit(model, seed=0)
    # Laplace computes all its values and gradients through log_joint_and_grad: the model's own count is
    # every counted row, the start check (one log_joint) aside, and each GGN is one Jacobian of K outputs
    counted, charged = model.rows - rows_before, sum(jacobians)
    assert len(jacobians) == 3 + 1 and set(jacobians) == {net.n_outputs}  # one entering, one a Newton step
    assert post.cost.grad_evals == counted + charged == budget  # paid for exactly: the Adam steps got the rest
    assert post.cost.density_evals == 0
    assert method.n_adam_steps(model) == budget - 1 - 1 - 3 * len(line_search_fractions()) - 4 * net.n_outputs
    assert np.all(np.isfinite(post.cov)) and post.diagnostics["grad_norm"] < np.inf
    assert method.evals_per_step(model) == 1 + len(line_search_fractions()) + 2 * net.n_outputs


def test_costs_of_the_other_kinds_are_only_counted_rows(linear, monkeypatch):
    jacobians = _count_jacobians(monkeypatch)
    for kind in ("full", "diag"):
        method = ap.Laplace(hessian=kind, n_steps=5, n_newton=2)
        post = method.fit(linear, seed=0)
        assert not jacobians
        assert post.cost.grad_evals == 1 + 5 + (1 + 2 * linear.dim) + 2 * (
            len(line_search_fractions()) + 2 * linear.dim
        )


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_optimising_the_prior_from_a_poor_mode_says_the_hessian_is_not_positive_definite(gap_model, kind):
    # 200 Adam steps leave θ short of a mode: the Hessian has negative eigenvalues and the gradient is not zero
    # along them, so the local evidence rises without bound as the prior widens
    _, model = gap_model
    method = ap.Laplace(hessian=kind, optimize_prior=True, n_steps=200)
    with pytest.raises(ValueError) as error:
        method.fit(model, seed=0)
    message = str(error.value)
    assert "Hessian of −log p(D | θ) there is not positive definite" in message
    smallest = float(message.split("smallest eigenvalue ")[1].split(",")[0])
    assert smallest < 0
    assert "θ is not a mode" in message and "n_steps=200" in message and "hessian='ggn'" in message
    assert "no Gaussian prior" not in message
    post = ap.Laplace(hessian="ggn", optimize_prior=True, n_steps=200).fit(model, seed=0)
    assert 0.1 < post.diagnostics["prior_std"] < 10
