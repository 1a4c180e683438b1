"""Saving and loading posteriors: bit-identical round trips, the exact path, and refusing anything else."""

import json
import math
import os
import pathlib
import pickle
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import approxpost
from approxpost import io
from approxpost.models import LinearRegression
from approxpost.posteriors import Cost, GaussianPosterior, SamplePosterior, WeightedPosterior


def common(seed):
    """History, diagnostics, cost and settings exercising every kind of value a file must keep."""
    rng = np.random.default_rng(seed)
    return {
        "history": {"log_joint": rng.normal(size=(30, 3)), "step_size": rng.random(30), "warmup": np.arange(30) < 10},
        "diagnostics": {
            "acceptance_rate": np.float64(0.61),
            "divergences": np.int64(2),
            "worst": -np.inf,
            "note": None,
        },
        "cost": Cost(1200, 35, 0.123456789),
        "settings": {
            "method": "HMC",
            "step_size": 0.05,
            "adapt_step_size": True,
            "n_chains": 3,
            "limits": [1.5, math.inf],
        },
    }


def make(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "sample":
        return SamplePosterior(rng.normal(size=(3, 30, 2)), **common(seed))
    if kind == "weighted":
        return WeightedPosterior(rng.normal(size=(40, 2)), rng.normal(size=40) * 3, **common(seed))
    if kind == "diagonal":
        return GaussianPosterior(rng.normal(size=2), std=rng.random(2) + 0.1, **common(seed))
    a = rng.normal(size=(2, 2))
    return GaussianPosterior(rng.normal(size=2), cov=a @ a.T + np.eye(2), **common(seed))


KINDS = ["sample", "weighted", "diagonal", "full"]


def assert_identical(a, b):
    """Equal values; arrays equal bit for bit with the same dtype and shape."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    else:
        assert a == b and type(a) is type(b) or (isinstance(a, np.generic) and a.item() == b)


def own_arrays(post):
    if isinstance(post, SamplePosterior):
        return {"draws": post.draws}
    if isinstance(post, WeightedPosterior):
        return {"particles": post.particles, "log_weights": post.log_weights, "weights": post.weights}
    return {"mean": post.mean, "std": post.std, "cov": post.cov}


def assert_same_posterior(a, b):
    assert type(a) is type(b)
    assert_identical(own_arrays(a), own_arrays(b))
    assert_identical(a.history, b.history)
    assert_identical(a.diagnostics, b.diagnostics)
    assert_identical(a.settings, b.settings)
    assert a.cost == b.cost and isinstance(b.cost, Cost)


def read_metadata(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def rewrite(path, arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bit_identical(kind, tmp_path):
    post = make(kind)
    path = tmp_path / "posterior.npz"
    io.save(post, path)
    assert_same_posterior(post, io.load(path))


def test_posterior_save_writes_exactly_the_given_path(tmp_path):
    post = make("sample")
    for name in ("posterior", "posterior.bin", "posterior.npz"):
        post.save(tmp_path / name)
        assert_same_posterior(post, io.load(str(tmp_path / name)))
    assert sorted(os.listdir(tmp_path)) == ["posterior", "posterior.bin", "posterior.npz"]


def test_metadata_is_strict_json_with_format_kind_and_versions(tmp_path):
    path = tmp_path / "post"
    make("weighted").save(path)
    raw = read_metadata(path)["__approxpost__"]
    assert raw.dtype == np.uint8

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    metadata = json.loads(raw.tobytes().decode("utf-8"), parse_constant=refuse)
    assert metadata["format"] == io.FORMAT and metadata["format_version"] == io.FORMAT_VERSION
    assert metadata["kind"] == "WeightedPosterior" and metadata["approxpost_version"] == approxpost.__version__
    assert metadata["cost"] == {"grad_evals": 1200, "density_evals": 35, "seconds": 0.123456789}


def test_loaded_posterior_predicts_like_the_original(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1))
    model = LinearRegression(x, 2 * x[:, 0] + 0.1 * rng.normal(size=20), noise_std=0.1)
    post = model.exact_posterior()
    post.save(tmp_path / "exact")
    loaded = io.load(tmp_path / "exact", model=model)
    assert loaded.model is model
    np.testing.assert_array_equal(loaded.predict(x, seed=1).samples, post.predict(x, seed=1).samples)
    with pytest.raises(ValueError, match="model has dim=1 but the posterior has dim=2"):
        io.load(tmp_path / "exact", model=LinearRegression(x, x[:, 0], fit_intercept=False))


@settings(deadline=None, max_examples=15)
@given(
    draws=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=3, max_dims=3, max_side=6),
        elements=st.floats(-1e300, 1e300, allow_subnormal=True),
    )
)
def test_any_finite_draws_round_trip_bit_for_bit(draws):
    post = SamplePosterior(draws)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "p")
        post.save(path)
        assert_same_posterior(post, io.load(path))


# --------------------------------------------------------------------------- what save refuses


def test_save_refuses_what_only_pickle_could_store_and_writes_nothing(tmp_path):
    post = make("diagonal")
    post.history["bad"] = np.array([object()], dtype=object)
    with pytest.raises(TypeError, match=r"history\['bad'\] has dtype object"):
        post.save(tmp_path / "a")
    post = make("diagonal")
    post.settings["proposal"] = object()
    with pytest.raises(TypeError, match=r"settings\['proposal'\] is a object"):
        post.save(tmp_path / "b")
    post = make("diagonal")
    post.diagnostics[3] = 1.0
    with pytest.raises(TypeError, match="non-string key 3"):
        post.save(tmp_path / "c")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- what load refuses


class Payload:
    """Unpickling this creates ``marker``: proof that a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickled_object_array_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.npz"
    np.savez(path, draws=np.array([Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        io.load(path)
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as archive:  # the payload is live: unsafe loading runs it
        archive["draws"]
    assert marker.exists()


def test_pickled_entry_inside_a_genuine_file_is_refused(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "post"
    make("sample").save(path)
    arrays = read_metadata(path)
    rewrite(path, {**arrays, "history/evil": np.array([Payload(marker)], dtype=object)})
    with pytest.raises(ValueError, match="pickled"):
        io.load(path)
    assert not marker.exists()


def test_plain_pickle_and_npy_files_are_refused(tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump(Payload(marker), handle)
    with pytest.raises(ValueError, match="not an .npz archive"):
        io.load(tmp_path / "evil.pkl")
    assert not marker.exists()
    np.save(tmp_path / "array.npy", np.arange(3.0))
    with pytest.raises(ValueError, match="not an .npz archive"):
        io.load(tmp_path / "array.npy")


def test_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "foreign.npz", draws=np.zeros((2, 5, 1)))
    with pytest.raises(ValueError, match="no approxpost metadata"):
        io.load(tmp_path / "foreign.npz")


@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5, 0.99])
def test_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "post"
    make("full").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(ValueError):
        io.load(path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"format": "something-else"}, "format marker"),
        ({"format_version": io.FORMAT_VERSION + 1}, "format version"),
        ({"kind": "Posterior"}, "kind 'Posterior'"),
        ({"cost": [1, 2, 3.0]}, "'cost' is missing or not a JSON object"),
        ({"cost": {"grad_evals": 1}}, "invalid SamplePosterior"),
        ({"settings": None}, "'settings' is missing"),
    ],
)
def test_malformed_metadata_is_refused(tmp_path, change, match):
    path = tmp_path / "post"
    make("sample").save(path)
    arrays = read_metadata(path)
    metadata = {**json.loads(arrays["__approxpost__"].tobytes()), **change}
    arrays["__approxpost__"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    rewrite(path, arrays)
    with pytest.raises(ValueError, match=match):
        io.load(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda a: a.update(extra=np.zeros(2)), "unexpected array 'extra'"),
        (lambda a: a.pop("draws"), r"missing the array\(s\) \['draws'\]"),
        (lambda a: a.update(draws=np.full((2, 5, 1), np.nan)), "invalid SamplePosterior: draws must be finite"),
        (lambda a: a.update(__approxpost__=np.frombuffer(b"{not json", dtype=np.uint8)), "malformed metadata"),
        (lambda a: a.update(__approxpost__=np.array("{}")), "malformed metadata"),
    ],
)
def test_malformed_arrays_are_refused(tmp_path, edit, match):
    path = tmp_path / "post"
    make("sample").save(path)
    arrays = read_metadata(path)
    edit(arrays)
    rewrite(path, arrays)
    with pytest.raises(ValueError, match=match):
        io.load(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "nothing-here")


@settings(deadline=None, max_examples=60)
@given(kind=st.sampled_from(KINDS), position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_a_corrupted_byte_is_refused_or_harmless(kind, position, flip):
    """Zip CRCs guard every member: a damaged file either fails with ValueError or loads unchanged."""
    post = make(kind)
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "post"
        post.save(path)
        data = bytearray(path.read_bytes())
        data[int(position * len(data))] ^= flip
        path.write_bytes(bytes(data))
        try:
            loaded = io.load(path)
        except ValueError:
            return
        assert_same_posterior(post, loaded)


def test_only_the_three_posterior_classes_are_saved(tmp_path):
    class Tweaked(SamplePosterior):
        pass

    with pytest.raises(TypeError, match="cannot save a Tweaked"):
        Tweaked(np.zeros((1, 4, 1))).save(tmp_path / "t")
    assert not (tmp_path / "t").exists()
