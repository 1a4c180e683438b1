"""MC dropout: masked weight vectors are exactly dropout on the activations; moments, training step, contract."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import approxpost as ap
from approxpost import autodiff as ad
from approxpost.methods.dropout import DropoutInfo, MCDropout, hidden_units
from approxpost.weight_posteriors import dropout_multipliers

N_SE = 4.0
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}


@pytest.fixture(scope="module")
def mlp_regression():
    data = ap.datasets.gap_regression(n=30, seed=0)
    net = ap.nn.MLP([1, 10, 1], activation="tanh")
    return ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


def masked_activation_forward(net, theta, x, keep, p, activation):
    """The MLP of θ (D,) with dropout applied to its hidden activations: h ← h ⊙ z / (1 − p), for each mask."""
    outputs = []
    for mask in keep:  # a loop over masks, in the test only: the reference the batched weight masks must match
        h, start = x, 0
        layers = net.unflatten(theta)
        for i, (weight, bias) in enumerate(layers):
            h = h @ np.asarray(weight) + np.asarray(bias)
            if i < len(layers) - 1:
                width = weight.shape[1]
                h = activation(h) * mask[start : start + width] / (1.0 - p)
                start += width
        outputs.append(h)
    return np.stack(outputs)


@given(
    widths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    n_in=st.integers(1, 3),
    n_out=st.integers(1, 2),
    p=st.floats(0.05, 0.9),
    activation=st.sampled_from(["tanh", "relu"]),
    seed=st.integers(0, 2**16),
)
def test_a_draw_is_the_network_with_its_mask_applied_to_the_activations(widths, n_in, n_out, p, activation, seed):
    net = ap.nn.MLP([n_in, *widths, n_out], activation=activation)
    rng = np.random.default_rng(seed)
    theta, x = net.init(rng, 1)[0], rng.standard_normal((6, n_in))
    post = ap.DropoutPosterior(theta, p, hidden_units(net))
    assert post.n_units == sum(widths)
    keep = post.draw_masks(9, seed=seed)
    draws = post.sample(9, seed=seed)
    np.testing.assert_array_equal(draws, post.masked_weights(keep))  # sample = masks then weights
    np.testing.assert_allclose(
        net.forward(draws, x), masked_activation_forward(net, theta, x, keep, p, _ACTIVATIONS[activation]), atol=1e-12
    )


def test_hidden_units_are_the_rows_of_the_next_weight_matrix():
    net = ap.nn.MLP([2, 3, 2, 1])
    units = hidden_units(net)
    (w1, b1), (w2, b2), (w3, b3) = [(w, b) for w, b in net.slices]
    np.testing.assert_array_equal(units[w1[0] : b1[1]], -1)  # first layer and its bias: no hidden unit feeds them
    np.testing.assert_array_equal(units[w2[0] : w2[1]].reshape(3, 2), [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(units[b2[0] : b2[1]], -1)
    np.testing.assert_array_equal(units[w3[0] : w3[1]].reshape(2, 1), [[3], [4]])
    np.testing.assert_array_equal(units[b3[0] : b3[1]], -1)
    with pytest.raises(ValueError, match="has none"):
        hidden_units(ap.nn.MLP([2, 1]))
    with pytest.raises(ValueError, match="nn.MLP or nn.CNN"):
        hidden_units(object())


def test_draws_have_the_stated_mean_and_standard_deviation():
    net = ap.nn.MLP([1, 6, 6, 1])
    theta, p, n = net.init(np.random.default_rng(0), 1)[0], 0.3, 20_000
    post = ap.DropoutPosterior(theta, p, hidden_units(net))
    draws = post.sample(n, seed=1)
    np.testing.assert_array_equal(post.mean, theta)
    dropped = post.units >= 0
    np.testing.assert_array_equal(draws[:, ~dropped], np.broadcast_to(theta[~dropped], (n, np.sum(~dropped))))
    np.testing.assert_array_equal(post.std[~dropped], 0.0)
    # E θ̃ = θ and E θ̃² = θ²/(1 − p) on the dropped weights, each within 4 MCSE
    for values, expected in ((draws, theta), (draws**2, theta**2 / (1.0 - p))):
        mcse = values[:, dropped].std(axis=0) / np.sqrt(n)
        np.testing.assert_array_less(np.abs(values[:, dropped].mean(axis=0) - expected[dropped]), N_SE * mcse)
    np.testing.assert_allclose(post.std[dropped] ** 2, theta[dropped] ** 2 * p / (1 - p), rtol=1e-14)


def test_a_training_step_is_dropout_on_the_activations(mlp_regression):
    # the step's gradient through masked weights equals the gradient with dropout on the hidden activations
    method = MCDropout(p=0.2, n_mc=3, learning_rate=1e-3, batch_size=10)
    model, theta = mlp_regression, mlp_regression.init(np.random.default_rng(0), 1)[0]
    rng = np.random.default_rng(7)
    state = method.init(model, theta, rng)
    new_state, info = method.step(model, state, rng)
    replay = np.random.default_rng(7)
    idx = replay.permutation(model.n_data)[:10]
    keep = replay.random((3, 10)) >= 0.2

    def objective(t):  # activation dropout written out, one mask at a time (test reference only)
        (w1, b1), (w2, b2) = model.net.unflatten(t)
        total = 0.0
        for mask in keep:
            h = ad.tanh(ad.affine(model.x[idx], w1, b1)) * (mask / 0.8)
            residual = model.y[idx] - ad.affine(h, w2, b2)
            total = total + ad.sum_squares(residual) * (-0.5 / model.noise_std**2) * (model.n_data / 10)
        return total / 3 + model.log_prior(t)

    value, gradient = ad.value_and_grad(objective)(theta)
    constant = model.n_data * (np.log(model.noise_std) + 0.5 * np.log(2 * np.pi))  # dropped in the reference
    assert isinstance(info, DropoutInfo) and info.objective == pytest.approx(value - constant, rel=1e-12)
    assert info.grad_norm == pytest.approx(np.linalg.norm(gradient), rel=1e-10)
    np.testing.assert_allclose(new_state.theta, theta + 1e-3 * np.sign(gradient), rtol=1e-6)


def test_fit_predict_save_load(mlp_regression, tmp_path):
    method = MCDropout(p=0.1, n_steps=300, batch_size=10)
    post = method.fit(mlp_regression, seed=0)
    assert type(post) is ap.DropoutPosterior and post.p == 0.1 and post.n_units == 10
    assert post.cost.grad_evals == 300 and post.history["objective"].shape == (300,)
    assert np.mean(post.history["objective"][-30:]) > np.mean(post.history["objective"][:30])
    pred = post.predict(mlp_regression.x, n_samples=50, seed=0)
    assert pred.samples.shape == (50, 30, 1) and np.all(pred.epistemic_std > 0)
    np.testing.assert_array_equal(method.fit(mlp_regression, seed=0).theta, post.theta)
    assert not np.array_equal(method.fit(mlp_regression, seed=1).theta, post.theta)
    path = tmp_path / "dropout.npz"
    post.save(path)
    loaded = ap.load(path, model=mlp_regression)
    assert type(loaded) is ap.DropoutPosterior and loaded.p == post.p
    assert loaded.theta.tobytes() == post.theta.tobytes()
    np.testing.assert_array_equal(loaded.units, post.units)
    np.testing.assert_array_equal(loaded.sample(6, seed=3), post.sample(6, seed=3))
    assert loaded.settings == post.settings and loaded.cost == post.cost


def test_multipliers_zero_or_rescale_only_the_weights_leaving_a_unit():
    units = np.array([-1, 0, 0, 1, -1])
    keep = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(
        dropout_multipliers(units, keep, 0.5), [[1.0, 2.0, 2.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0, 1.0]]
    )


def test_with_budget():
    assert MCDropout(n_mc=4).with_budget(1000).n_steps == 250
    with pytest.raises(ValueError, match="n_evals must be an integer of at least 4"):
        MCDropout(n_mc=4).with_budget(3)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"p": 0.0}, "p must lie"),
        ({"p": 1.0}, "p must lie"),
        ({"n_mc": 0}, "n_mc"),
        ({"n_steps": 0}, "n_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": -2}, "batch_size"),
    ],
)
def test_bad_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        MCDropout(**settings)


def test_models_without_hidden_units_are_refused():
    data = ap.datasets.linear(n=10, seed=0)
    with pytest.raises(ValueError, match="nn.MLP or nn.CNN"):
        MCDropout().fit(ap.models.LinearRegression(data.x, data.y), seed=0)
    with pytest.raises(ValueError, match="network"):
        MCDropout().fit(ap.targets.Gaussian(), seed=0)
    with pytest.raises(ValueError, match="p must lie"):
        ap.DropoutPosterior(np.zeros(3), 1.5, np.array([-1, 0, 0]))
    with pytest.raises(ValueError, match="units must be integers"):
        ap.DropoutPosterior(np.zeros(3), 0.5, np.array([0, 0]))


def test_init_is_not_modified_and_a_non_finite_start_is_a_clear_error(mlp_regression):
    init = np.zeros(mlp_regression.dim)
    MCDropout(n_steps=5).fit(mlp_regression, seed=0, init=init)
    np.testing.assert_array_equal(init, 0.0)
    init[0] = np.inf
    with pytest.raises(ValueError, match="not finite"), np.errstate(invalid="ignore"):
        MCDropout(n_steps=5).fit(mlp_regression, seed=0, init=init)


def test_mc_dropout_classifier_averages_the_softmax_over_masked_weights():
    data = ap.datasets.two_moons(n=100, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 8, 8, 2], activation="tanh"), data.x, data.y, prior_std=1.0)
    post = MCDropout(p=0.2, n_steps=300, learning_rate=3e-2, n_mc=2).fit(model, seed=0)
    assert post.n_units == 16 and post.cost.grad_evals == 600
    pred = post.predict(data.x_test, n_samples=30, seed=4)
    assert isinstance(pred, ap.ClassPredictive)
    draws = post.sample(30, seed=4)  # predict draws exactly these weight vectors from the same seed
    np.testing.assert_allclose(pred.probs, model.predict_proba(draws, data.x_test).mean(axis=0), rtol=1e-12)
    assert np.all(pred.mutual_information >= -1e-12) and np.mean(pred.mutual_information) > 0
    assert pred.accuracy(data.y_test) > 0.8
