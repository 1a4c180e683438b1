"""MAP: the mode of the conjugate posterior, minibatch bookkeeping, PointPosterior, seeding, bad settings."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import approxpost as ap
from approxpost.methods.map import MAP, MAPInfo
from approxpost.methods.point_common import PointState


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


def test_full_batch_map_is_the_exact_posterior_mean(linear):
    # the conjugate posterior is Gaussian, so its mode is its mean m = Λ⁻¹Xᵀy/σ²
    post = MAP(n_steps=2000, learning_rate=1e-2).fit(linear, seed=0)
    exact = linear.exact_posterior()
    assert isinstance(post, ap.PointPosterior)
    np.testing.assert_allclose(post.mean, exact.mean, rtol=0, atol=1e-6 * exact.std.min())
    # history: the log joint climbs to its maximum, log p(m, D)
    log_joint = post.history["log_joint"]
    assert log_joint.shape == (2000,) and post.history["grad_norm"].shape == (2000,)
    assert log_joint[-1] == pytest.approx(linear.log_joint(exact.mean), abs=1e-10)
    assert np.all(log_joint <= linear.log_joint(exact.mean) + 1e-10)
    assert post.cost.grad_evals == 2000 and post.cost.density_evals == 0


def test_one_batch_of_all_the_data_is_full_batch_map(linear):
    # batch_size = N: every step sees all points (in a shuffled order, rescaled by N/N = 1)
    full = MAP(n_steps=300, learning_rate=1e-2).fit(linear, seed=0)
    shuffled = MAP(n_steps=300, learning_rate=1e-2, batch_size=linear.n_data).fit(linear, seed=0)
    np.testing.assert_allclose(shuffled.mean, full.mean, rtol=1e-12, atol=1e-12)


def test_an_epoch_of_minibatches_visits_every_point_once(linear):
    method, rng = MAP(batch_size=6), np.random.default_rng(1)
    state = method.init(linear, np.zeros(linear.dim), rng)
    seen = []
    for _ in range(4):  # ⌈20 / 6⌉ = 4 batches of 6, 6, 6, 2
        idx, order, batch_start = method.next_batch(linear, state, rng)
        seen.append(idx)
        state = PointState(state.theta, state.opt_state, order, batch_start)
    assert [len(idx) for idx in seen] == [6, 6, 6, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(linear.n_data))
    idx, order, batch_start = method.next_batch(linear, state, rng)  # used up: a new epoch in a new order
    assert batch_start == 6 and np.array_equal(idx, order[:6])
    assert not np.array_equal(order, state.order)


def test_minibatch_steps_use_the_rescaled_minibatch_gradient(linear):
    method, rng = MAP(batch_size=5, learning_rate=0.1), np.random.default_rng(2)
    theta = np.array([0.3, -0.2, 0.1])
    state = method.init(linear, theta, rng)
    replay = np.random.default_rng(2)
    idx = replay.permutation(linear.n_data)[:5]
    state, info = method.step(linear, state, rng)
    value, gradient = linear.log_joint_and_grad(theta, idx)  # N/|B| × the batch's log likelihood
    assert isinstance(info, MAPInfo) and info.log_joint == value
    assert info.grad_norm == pytest.approx(np.linalg.norm(gradient), rel=1e-14)
    # Adam's first step moves every coordinate by the learning rate along the gradient's sign
    np.testing.assert_allclose(state.theta, theta + 0.1 * np.sign(gradient), rtol=1e-6)


def test_map_on_a_network_climbs_the_log_joint(mlp_regression):
    post = MAP(n_steps=500, learning_rate=1e-2, batch_size=10).fit(mlp_regression, seed=0)
    log_joint = post.history["log_joint"]
    assert np.mean(log_joint[-50:]) > np.mean(log_joint[:50]) + 100
    pred = post.predict(mlp_regression.x[:4], n_samples=10, seed=0)
    np.testing.assert_allclose(pred.epistemic_std, 0.0, atol=1e-15)  # a point mass: only the noise is left
    np.testing.assert_allclose(pred.std, mlp_regression.noise_std)


def test_same_seed_same_bits_and_init_untouched(mlp_regression):
    method = MAP(n_steps=50, batch_size=8)
    a, b = method.fit(mlp_regression, seed=3), method.fit(mlp_regression, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert not np.array_equal(method.fit(mlp_regression, seed=4).mean, a.mean)
    init = np.zeros(mlp_regression.dim)
    method.fit(mlp_regression, seed=0, init=init)
    np.testing.assert_array_equal(init, 0.0)


@given(
    theta=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-1e3, 1e3)),
    n=st.integers(1, 9),
)
def test_point_posterior_is_a_point_mass(theta, n):
    post = ap.PointPosterior(theta)
    np.testing.assert_array_equal(post.mean, theta)
    np.testing.assert_array_equal(post.std, np.zeros_like(theta))
    draws = post.sample(n, seed=0)
    assert draws.shape == (n, theta.size)
    np.testing.assert_array_equal(draws, np.broadcast_to(theta, draws.shape))
    draws[0] += 1.0  # a copy: the posterior is not changed through its draws
    np.testing.assert_array_equal(post.mean, theta)


def test_point_posterior_save_load_round_trip(linear, tmp_path):
    post = MAP(n_steps=100).fit(linear, seed=0)
    path = tmp_path / "map.npz"
    post.save(path)
    loaded = ap.load(path, model=linear)
    assert type(loaded) is ap.PointPosterior
    assert loaded.theta.tobytes() == post.theta.tobytes()
    np.testing.assert_array_equal(loaded.history["log_joint"], post.history["log_joint"])
    assert loaded.cost == post.cost and loaded.settings == post.settings == {
        "method": "MAP",
        "n_steps": 100,
        "learning_rate": 1e-2,
        "batch_size": None,
    }


def test_with_budget():
    assert MAP(n_steps=10).with_budget(1234).n_steps == 1234
    with pytest.raises(ValueError, match="n_evals"):
        MAP().with_budget(0)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"n_steps": 0}, "n_steps"),
        ({"n_steps": 2.5}, "n_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        MAP(**settings)


def test_bad_fits_are_refused(linear):
    with pytest.raises(ValueError, match="batch_size=50 exceeds"):
        MAP(batch_size=50).fit(linear, seed=0)
    with pytest.raises(ValueError, match=r"init .* shape \(3,\)"):
        MAP().fit(linear, seed=0, init=np.zeros(4))
    with pytest.raises(ValueError, match="n_data=None"):
        MAP(batch_size=2).fit(ap.targets.Gaussian(), seed=0)
    with pytest.raises(ValueError, match="theta must be finite"):
        ap.PointPosterior([0.0, np.nan])


def test_map_classifier_predicts_the_softmax_at_its_point():
    data = ap.datasets.two_moons(n=100, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 8, 2], activation="tanh"), data.x, data.y, prior_std=1.0)
    post = MAP(n_steps=300, learning_rate=3e-2, batch_size=25).fit(model, seed=0)
    pred = post.predict(data.x_test, n_samples=5, seed=0)
    assert isinstance(pred, ap.ClassPredictive)
    np.testing.assert_allclose(pred.probs, model.predict_proba(post.theta, data.x_test)[0], rtol=1e-12)
    np.testing.assert_allclose(pred.mutual_information, 0.0, atol=1e-12)  # a point mass has no epistemic part
    assert pred.accuracy(data.y_test) > 0.8
