"""approxpost.datasets (seeded toy data) and approxpost._rng.as_generator (the one seed conversion)."""

import numpy as np
import pytest

from approxpost._rng import as_generator
from approxpost.datasets import DATASETS, Dataset, blundell_curve, digits, gap_regression, linear


def assert_same(a: Dataset, b: Dataset):
    for field in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.noise_std, a.name, a.gap) == (b.noise_std, b.name, b.gap)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_same_seed_same_data_different_seed_different_data(name):
    make = DATASETS[name]
    assert_same(make(seed=3), make(seed=3))
    assert_same(make(seed=3), make(seed=np.random.default_rng(3)))
    other = make(seed=4)
    assert not np.array_equal(make(seed=3).x, other.x)
    assert not np.array_equal(make(seed=3).y, other.y)


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("n", [2, 7, 40])
def test_shapes(name, n):
    data = DATASETS[name](n=n, seed=0)
    assert isinstance(data, Dataset)
    assert data.x.shape == (n, 1) and data.y.shape == (n,)
    assert data.x_test.shape == (200, 1) and data.y_test.shape == (200,)
    assert data.noise_std > 0 and data.name == name
    for field in ("x", "y", "x_test", "y_test"):
        assert getattr(data, field).dtype == np.float64 and np.all(np.isfinite(getattr(data, field)))
    # the test grid reaches beyond the data on both sides
    assert data.x_test.min() < data.x.min() and data.x_test.max() > data.x.max()


def test_linear_with_several_features():
    data = linear(n=15, n_features=3, seed=0)
    assert data.x.shape == (15, 3) and data.x_test.shape == (200, 3)


@pytest.mark.parametrize("seed", range(5))
def test_gap_has_no_training_x_inside_it(seed):
    data = gap_regression(n=200, seed=seed)
    low, high = data.gap
    assert (low, high) == (-0.7, 0.7)
    assert not np.any((data.x > low) & (data.x < high))
    assert np.sum(data.x < low) == 100 and np.sum(data.x > high) == 100  # half the points on each side
    assert np.any((data.x_test > low) & (data.x_test < high))  # but the test grid covers it


def test_noise_level_matches_noise_std():
    """Residuals around sin(2x) + 0.3x have the stated std: sample variance within 4 standard errors."""
    data = gap_regression(n=4000, noise_std=0.2, seed=0)
    residual = data.y - (np.sin(2 * data.x[:, 0]) + 0.3 * data.x[:, 0])
    assert abs(residual.var(ddof=1) - 0.04) < 4 * 0.04 * np.sqrt(2.0 / (residual.size - 1))


@pytest.mark.parametrize("make", [gap_regression, blundell_curve, linear])
@pytest.mark.parametrize("n", [0, 1, -5, 2.5, True, "10", None])
def test_bad_n(make, n):
    with pytest.raises(ValueError, match=r"n must be an integer of at least 2, got"):
        make(n=n, seed=0)


@pytest.mark.parametrize("make", [gap_regression, linear])
@pytest.mark.parametrize("noise_std", [0.0, -0.1, np.nan, np.inf])
def test_bad_noise_std(make, noise_std):
    with pytest.raises(ValueError, match=r"noise_std must be a positive finite number"):
        make(n=10, noise_std=noise_std, seed=0)


@pytest.mark.parametrize("n_features", [0, -1, 1.5, True])
def test_bad_n_features(n_features):
    with pytest.raises(ValueError, match="n_features must be a positive integer"):
        linear(n=10, n_features=n_features, seed=0)


# --- as_generator --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 12345, np.int64(7), np.uint32(3)])
def test_integer_seeds_are_reproducible(seed):
    a, b = as_generator(seed), as_generator(seed)
    assert isinstance(a, np.random.Generator)
    np.testing.assert_array_equal(a.standard_normal(5), b.standard_normal(5))
    np.testing.assert_array_equal(as_generator(seed).standard_normal(5), np.random.default_rng(seed).standard_normal(5))


def test_a_generator_is_used_as_is():
    rng = np.random.default_rng(0)
    assert as_generator(rng) is rng


def test_none_gives_fresh_entropy():
    a, b = as_generator(None), as_generator(None)
    assert isinstance(a, np.random.Generator)
    assert not np.array_equal(a.standard_normal(8), b.standard_normal(8))


@pytest.mark.parametrize("seed", [True, False, 1.0, 0.5, "0", [0], np.float64(1.0), np.random.RandomState(0)])
def test_other_seeds_are_a_type_error(seed):
    with pytest.raises(
        TypeError, match=rf"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}"
    ):
        as_generator(seed)


# --- digits ----------------------------------------------------------------------


def test_digits_file_equals_scikit_learns_copy():
    """The shipped uint8 file holds exactly the pixels and labels of sklearn.datasets.load_digits."""
    from sklearn.datasets import load_digits

    reference = load_digits()
    data = digits(n_train=1000, seed=0)
    x = np.concatenate([data.x, data.x_test]) * 16.0
    y = np.concatenate([data.y, data.y_test])
    order = as_generator(0).permutation(1797)  # undo the split: the data set's rows are in the file's order
    np.testing.assert_array_equal(x[np.argsort(order)][:, 0], reference.images)
    np.testing.assert_array_equal(y[np.argsort(order)], reference.target)


@pytest.mark.parametrize("n_train", [1, 1000, 1796])
def test_digits_shapes_ranges_and_split(n_train):
    data = digits(n_train=n_train, seed=0)
    n_test = 1797 - n_train
    assert data.x.shape == (n_train, 1, 8, 8) and data.x_test.shape == (n_test, 1, 8, 8)
    assert data.y.shape == (n_train,) and data.y_test.shape == (n_test,)
    assert data.x.dtype == np.float64 and data.y.dtype == np.int64
    for x in (data.x, data.x_test, data.x_ood):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert np.all(np.isin(np.round(x * 16.0, 12), np.arange(17)))  # counts 0..16 scaled by 1/16
    assert np.all((data.y >= 0) & (data.y <= 9)) and np.all((data.y_test >= 0) & (data.y_test <= 9))
    assert data.name == "digits" and data.noise_std == 0.0 and data.gap is None


def test_digits_split_is_a_seeded_partition_with_every_class():
    data = digits(n_train=1000, seed=3)
    again = digits(n_train=1000, seed=np.random.default_rng(3))
    for field in ("x", "y", "x_test", "y_test", "x_ood"):
        np.testing.assert_array_equal(getattr(data, field), getattr(again, field))
    assert not np.array_equal(data.y, digits(n_train=1000, seed=4).y)
    # train and test together are the 1797 images, each once: the class counts add up to the file's
    counts = np.bincount(data.y, minlength=10) + np.bincount(data.y_test, minlength=10)
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert np.all(np.bincount(data.y, minlength=10) > 0)


def test_digits_ood_images_are_the_test_images_with_their_pixels_shuffled():
    data = digits(n_train=1500, seed=0)
    assert data.x_ood.shape == data.x_test.shape
    flat_ood, flat_test = data.x_ood.reshape(len(data.x_ood), -1), data.x_test.reshape(len(data.x_test), -1)
    # each image keeps exactly its own pixel values, so its ink and histogram, but not their places
    np.testing.assert_array_equal(np.sort(flat_ood, axis=1), np.sort(flat_test, axis=1))
    moved = np.mean(flat_ood != flat_test, axis=1)
    assert np.all(moved > 0.3)  # most of each image's pixels changed place


@pytest.mark.parametrize(
    "n_train, message",
    [
        (0, "a positive integer"),
        (2.5, "a positive integer"),
        (True, "a positive integer"),
        ("10", "a positive integer"),
        (1797, "at most 1796"),
    ],
)
def test_digits_rejects_a_bad_n_train(n_train, message):
    with pytest.raises(ValueError, match=f"n_train must be {message}"):
        digits(n_train=n_train)


def test_regression_data_sets_have_no_ood_set():
    assert gap_regression(seed=0).x_ood is None
