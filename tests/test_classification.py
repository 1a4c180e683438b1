"""models.Classification, ClassPredictive and the predictive a posterior asks its model for.

The likelihood is checked against a direct NumPy softmax, its gradient
against central differences, minibatches against the full sum; the
predictive against its definitions, including the exact identity
entropy = expected entropy + mutual information.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from strategies import draw_probabilities

import approxpost as ap
from approxpost import autodiff as ad
from approxpost.predictive import ClassPredictive


@pytest.fixture(scope="module")
def moons():
    return ap.datasets.two_moons(n=40, seed=0)


@pytest.fixture(scope="module")
def model(moons):
    return ap.models.Classification(ap.nn.MLP([2, 6, 3]), moons.x, np.where(moons.x[:, 0] > 1.2, 2, moons.y))


def numpy_log_likelihood(model, theta):
    logits = model.net.forward(theta, model.x)  # (S, n, K)
    return np.sum(special.log_softmax(logits, axis=-1)[:, np.arange(model.n_data), model.y], axis=-1)


class ImageNet:
    """A linear classifier of flattened (C, H, W) images, standing in for a CNN: its input_shape is what counts."""

    input_shape = (1, 3, 3)
    n_outputs = 2
    dim = 9 * 2

    def forward(self, theta, x):
        lead = np.shape(theta.value if isinstance(theta, ad.Var) else theta)[:-1]
        weights = ad.reshape(theta, lead + (9, 2))
        return ad.matmul(x.reshape(x.shape[0], 9), weights)

    def init(self, rng, n=1):
        return rng.standard_normal((n, self.dim))


# --------------------------------------------------------------------------- the model


def test_log_likelihood_is_the_categorical_log_likelihood(model):
    theta = model.init(np.random.default_rng(0), 4)
    np.testing.assert_allclose(model.log_likelihood(theta), numpy_log_likelihood(model, theta), rtol=1e-12)
    assert model.log_likelihood(theta[0]) == pytest.approx(numpy_log_likelihood(model, theta[:1])[0], rel=1e-12)
    prior = ap.distributions.Normal(np.zeros(model.dim), np.ones(model.dim))
    np.testing.assert_allclose(model.log_prior(theta), prior.log_prob(theta), rtol=1e-12)
    assert model.prior_distribution().std[0] == 1.0 and model.n_classes == 3


def test_gradient_matches_central_differences(model):
    theta = model.init(np.random.default_rng(1), 1)[0]
    assert ad.check_grad(lambda t: model.log_joint(t), theta, seed=0) < 1e-6
    values, grads = model.log_joint_and_grad(model.init(np.random.default_rng(2), 3))
    for row in range(3):  # one batched pass gives each row its own gradient
        value, grad = model.log_joint_and_grad(model.init(np.random.default_rng(2), 3)[row])
        assert values[row] == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(grads[row], grad, rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(
    st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2**16)
)
def test_likelihood_and_gradient_over_generated_shapes(n, p, hidden, k, s, seed):
    rng = np.random.default_rng(seed)
    model = ap.models.Classification(ap.nn.MLP([p, hidden, k]), rng.standard_normal((n, p)), rng.integers(0, k, n))
    theta = model.init(rng, s)
    np.testing.assert_allclose(model.log_likelihood(theta), numpy_log_likelihood(model, theta), rtol=1e-12)
    idx = rng.choice(n, size=rng.integers(1, n + 1), replace=False)
    assert ad.check_grad(lambda t: model.log_joint(t, idx), theta[0], seed=0) < 1e-6


def test_minibatches_are_scaled_to_the_full_data(model):
    theta = model.init(np.random.default_rng(3), 2)
    order = np.random.default_rng(0).permutation(model.n_data)
    batches = np.array_split(order, 4)  # sizes 10 each
    # each batch is rescaled by N/|batch| = 4, so the mean over the equal batches is the full sum
    total = np.mean([model.log_likelihood(theta, idx) for idx in batches], axis=0)
    np.testing.assert_allclose(total, model.log_likelihood(theta), rtol=1e-12)
    first = np.arange(5)
    by_hand = numpy_log_likelihood(ap.models.Classification(model.net, model.x[first], model.y[first]), theta)
    np.testing.assert_allclose(model.log_likelihood(theta, first), 8 * by_hand, rtol=1e-12)


def test_predict_and_predict_proba_shapes(model, moons):
    theta = model.init(np.random.default_rng(4), 5)
    logits = model.predict(theta, moons.x_test)
    probs = model.predict_proba(theta, moons.x_test)
    assert logits.shape == probs.shape == (5, 40, 3)
    np.testing.assert_allclose(probs, special.softmax(logits, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-14)
    assert model.predict(theta[0], moons.x_test).shape == (1, 40, 3)


def test_image_inputs_keep_their_shape():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(size=(12, 1, 3, 3)), rng.integers(0, 2, 12)
    model = ap.models.Classification(ImageNet(), x, y)
    assert model.x.shape == (12, 1, 3, 3)
    theta = model.init(rng, 2)
    assert model.predict_proba(theta, x[:4]).shape == (2, 4, 2)
    assert ad.check_grad(lambda t: model.log_joint(t), theta[0], seed=0) < 1e-6
    with pytest.raises(ValueError, match=r"x has shape \(12, 9\) but the network takes inputs of shape \(n, 1, 3, 3\)"):
        ap.models.Classification(ImageNet(), x.reshape(12, 9), y)


@pytest.mark.parametrize(
    "y, error, match",
    [
        (np.r_[np.zeros(39), 3], ValueError, r"y must lie in 0\.\.2 \(3 classes\), got labels from 0 to 3"),
        (np.r_[np.zeros(39), -1], ValueError, r"y must lie in 0\.\.2"),
        (np.r_[np.zeros(39), 0.5], ValueError, "whole-number"),
        (np.zeros(39), ValueError, "39 labels but there are 40 points"),
        (np.zeros((40, 1)), ValueError, "1-D array of class labels"),
        (np.array(["a"] * 40), TypeError, "integer class labels"),
    ],
)
def test_bad_labels_are_named(moons, y, error, match):
    with pytest.raises(error, match=match):
        ap.models.Classification(ap.nn.MLP([2, 4, 3]), moons.x, y)


def test_other_bad_construction(moons):
    with pytest.raises(ValueError, match="n_outputs >= 2"):
        ap.models.Classification(ap.nn.MLP([2, 4, 1]), moons.x, moons.y)
    with pytest.raises(ValueError, match=r"x has shape \(40, 3\) but the network takes inputs of shape \(n, 2\)"):
        ap.models.Classification(ap.nn.MLP([2, 4, 2]), np.ones((40, 3)), moons.y)
    with pytest.raises(ValueError, match="prior_std"):
        ap.models.Classification(ap.nn.MLP([2, 4, 2]), moons.x, moons.y, prior_std=0.0)
    with pytest.raises(ValueError, match="x must be finite"):
        ap.models.Classification(ap.nn.MLP([2, 4, 2]), np.full((40, 2), np.nan), moons.y)


# --------------------------------------------------------------------------- ClassPredictive


@given(draw_probabilities())
def test_entropy_is_expected_entropy_plus_mutual_information(problem):
    samples, weights = problem
    for w in (None, weights):
        pred = ClassPredictive(samples, w)
        np.testing.assert_allclose(pred.entropy, pred.expected_entropy + pred.mutual_information, rtol=0, atol=1e-12)
        assert np.all(pred.mutual_information >= -1e-15)  # Jensen: I(y; θ) ≥ 0
        assert np.all(pred.entropy <= np.log(pred.n_classes) + 1e-12)
        assert np.all((0.0 <= pred.variation_ratio) & (pred.variation_ratio <= 1.0 - 1.0 / pred.n_classes + 1e-12))


@given(draw_probabilities())
def test_integer_weights_are_repeated_draws(problem):
    samples, weights = problem
    repeats = (2 * weights).astype(int)  # weights 0, ½, 1, 3 -> 0, 1, 2, 6 copies
    if repeats.sum() == 0:
        return
    weighted, repeated = ClassPredictive(samples, weights), ClassPredictive(np.repeat(samples, repeats, axis=0))
    for name in ("probs", "entropy", "expected_entropy", "mutual_information", "variation_ratio"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10, atol=1e-13)


def test_class_predictive_by_hand():
    samples = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.7, 0.3], [0.0, 1.0]], [[0.2, 0.8], [0.0, 1.0]]])
    pred = ClassPredictive(samples)
    np.testing.assert_allclose(pred.probs, [[0.6, 0.4], [1 / 6, 5 / 6]])
    np.testing.assert_array_equal(pred.label, [0, 1])
    # draws' top classes: point 0 -> 0, 0, 1; point 1 -> 0 (a tie goes to the first), 1, 1
    np.testing.assert_allclose(pred.variation_ratio, [1 / 3, 1 / 3])
    assert pred.accuracy([0, 0]) == 0.5
    assert pred.log_density([0, 1]) == pytest.approx(0.5 * (np.log(0.6) + np.log(5 / 6)))
    h = lambda p: -np.sum(special.xlogy(p, p), axis=-1)  # noqa: E731
    np.testing.assert_allclose(pred.entropy, h(pred.probs))
    np.testing.assert_allclose(pred.expected_entropy, h(samples).mean(axis=0))
    # one certain draw: no epistemic part
    single = ClassPredictive(samples[:1])
    np.testing.assert_allclose(single.mutual_information, 0.0, atol=1e-15)
    assert single.variation_ratio.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "samples, weights, match",
    [
        (np.full((2, 3, 2), 0.6), None, "samples must sum to 1"),
        (np.full((3, 2), 0.5), None, r"samples must have shape \(S, n, K\)"),
        (np.full((2, 3, 2), 0.5), np.ones(3), r"weights has shape \(3,\) but samples has 2 draws"),
        (np.full((2, 3, 2), 0.5), np.array([1.0, -1.0]), "non-negative"),
        (np.full((2, 3, 2), 0.5), np.zeros(2), "positive sum"),
    ],
)
def test_class_predictive_rejects_bad_input(samples, weights, match):
    with pytest.raises(ValueError, match=match):
        ClassPredictive(samples, weights)


def test_labels_are_checked():
    pred = ClassPredictive(np.full((2, 3, 2), 0.5))
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.1"):
        pred.accuracy([0, 1, 2])
    with pytest.raises(ValueError, match="2 labels but there are 3 points"):
        pred.log_density([0, 1])


# --------------------------------------------------------------------------- posteriors ask the model


def test_every_posterior_returns_the_model_s_predictive(model, moons):
    rng = np.random.default_rng(6)
    draws = model.init(rng, 30)
    post = ap.SamplePosterior(draws, model=model)
    pred = post.predict(moons.x_test, n_samples=20, seed=0)
    assert isinstance(pred, ClassPredictive)
    np.testing.assert_allclose(pred.samples, model.predict_proba(post.sample(20, seed=0), moons.x_test), rtol=1e-14)
    gauss = ap.GaussianPosterior(draws[0], std=np.full(model.dim, 0.1), model=model)
    assert isinstance(gauss.predict(moons.x_test, n_samples=5, seed=0), ClassPredictive)


def test_weighted_posteriors_weight_their_particles(model, moons):
    rng = np.random.default_rng(7)
    particles = model.init(rng, 6)
    log_weights = np.array([0.0, -1.0, -np.inf, 2.0, -800.0, -0.5])  # one zero weight, one underflowing
    post = ap.WeightedPosterior(particles, log_weights, model=model)
    # four particles carry weight (> 0 in floating point: exp(-802) underflows), 4 <= n_samples: exact weights
    pred = post.predict(moons.x_test, n_samples=10, seed=0)
    carrying = post.weights > 0
    assert pred.samples.shape[0] == carrying.sum() == 4
    expected = np.einsum("s,snk->nk", post.weights[carrying], model.predict_proba(particles[carrying], moons.x_test))
    np.testing.assert_allclose(pred.probs, expected, rtol=1e-12)
    # more carrying particles than n_samples: multinomial draws, repeats merged into weights
    few = post.predict(moons.x_test, n_samples=3, seed=1)
    drawn = post.sample(3, seed=1)
    np.testing.assert_allclose(few.probs, model.predict_proba(drawn, moons.x_test).mean(axis=0), rtol=1e-12)
    assert few.samples.shape[0] == len(np.unique(drawn, axis=0))


def test_regression_predictive_is_unchanged():
    data = ap.datasets.gap_regression(n=10, seed=0)
    model = ap.models.Regression(ap.nn.MLP([1, 4, 1]), data.x, data.y, noise_std=0.1)
    post = ap.WeightedPosterior(model.init(np.random.default_rng(0), 8), np.zeros(8), model=model)
    pred = post.predict(data.x_test, n_samples=5, seed=3)
    assert isinstance(pred, ap.Predictive)
    np.testing.assert_array_equal(pred.samples, model.predict(post.sample(5, seed=3), data.x_test))
    with pytest.raises(ValueError, match="equally weighted"):
        model.predictive(post.particles, data.x_test, weights=np.ones(8))


# --------------------------------------------------------------------------- data


def test_two_moons_is_seeded_balanced_and_on_its_half_circles():
    data = ap.datasets.two_moons(n=201, noise=0.0, seed=3)
    assert data.x.shape == data.x_test.shape == (201, 2) and data.y.shape == data.y_test.shape == (201,)
    assert data.y.dtype.kind == "i" and np.bincount(data.y).tolist() == [100, 101] and data.name == "moons"
    # without noise every point lies on its class's unit half circle
    centre = np.where(data.y[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(data.x - centre, axis=1), 1.0, rtol=1e-12)
    assert np.all(np.where(data.y == 0, data.x[:, 1] >= 0, data.x[:, 1] <= 0.5))
    again, other = ap.datasets.two_moons(n=201, noise=0.0, seed=3), ap.datasets.two_moons(n=201, noise=0.0, seed=4)
    np.testing.assert_array_equal(data.x, again.x)
    np.testing.assert_array_equal(data.y_test, again.y_test)
    assert not np.array_equal(data.x, other.x) and not np.array_equal(data.x, data.x_test)
    noisy = ap.datasets.two_moons(n=2000, noise=0.1, seed=0)
    centre = np.where(noisy.y[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    # radial residuals of isotropic N(0, 0.1²) noise around a unit circle: sd ≈ 0.1
    assert np.std(np.linalg.norm(noisy.x - centre, axis=1) - 1.0) == pytest.approx(0.1, rel=0.1)
    with pytest.raises(ValueError, match="noise"):
        ap.datasets.two_moons(noise=-0.1)
    with pytest.raises(ValueError, match="n must be"):
        ap.datasets.two_moons(n=1)
