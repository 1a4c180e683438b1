"""The stored reference posteriors: they load with their model, record convergence on f(x_test), and a
fresh short NUTS run agrees with them within Monte Carlo error; the storage format round-trips."""

import numpy as np
import pytest

import approxpost as ap
from approxpost import references
from approxpost.cli import build_model, dataset_makers
from approxpost.diagnostics import mcse

N_SE = 4.0


def test_available_lists_the_stored_problems():
    assert {"gap", "blundell", "moons"} <= set(references.available())
    assert references.available() == sorted(references.available())


@pytest.mark.parametrize("name", references.available())
def test_each_reference_loads_converged_on_function_values(name):
    ref = references.load(name)
    data = dataset_makers()[name](seed=ref.settings["seed"])
    assert isinstance(ref, ap.SamplePosterior) and ref.draws.dtype == np.float64
    assert ref.model.dim == ref.dim and ref.settings["method"] == "NUTS" and ref.settings["stored_dtype"] == "float32"
    diagnostics = ref.diagnostics
    assert diagnostics["f_rhat"].shape == diagnostics["f_ess"].shape == (len(data.x_test),)
    assert diagnostics["f_rhat_max"] <= 1.01 and diagnostics["f_ess_min"] >= 400
    assert diagnostics["converged"] is True
    # the stored diagnostics are those of the full run; the thinned draws still say the same about f
    rhat, _ = references.function_diagnostics(ref.model, ref.draws, data.x_test)
    assert rhat.max() < 1.02
    pred = ref.predict(data.x_test, n_samples=50, seed=0)
    assert ref.cost.grad_evals > 0 and (pred.probs if name == "moons" else pred.mean).shape[0] == len(data.x_test)


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"'digits'.*available: .*gap.*moons"):
        references.load("digits")


def test_a_short_nuts_run_agrees_with_the_gap_reference_within_mc_error():
    ref = references.load("gap")
    data = ap.datasets.gap_regression(seed=ref.settings["seed"])
    # the shortest run whose f mixes where the data are (R-hat of f ≈ 1.01 there; at depth 6, or with
    # 150 warm-up iterations, R-hat is ~1.05 and the mean is off by up to 5 SE): ~250k gradients
    post = ap.NUTS(n_samples=200, n_warmup=300, n_chains=4, max_tree_depth=7).fit(ref.model, seed=1)
    # where the data are, f is pinned down; its mean and spread there must match the reference's
    # to within the two runs' combined Monte Carlo standard error
    x = data.x_test[(np.abs(data.x_test[:, 0]) > 0.8) & (np.abs(data.x_test[:, 0]) < 1.9)]

    def f(draws):
        n_chains, n_draws, dim = draws.shape
        return ref.model.predict(draws.reshape(-1, dim), x)[..., 0].reshape(n_chains, n_draws, -1)

    ours, theirs = f(post.draws), f(ref.draws)
    se = np.sqrt(mcse(ours) ** 2 + mcse(theirs) ** 2)
    assert np.all(np.abs(ours.mean(axis=(0, 1)) - theirs.mean(axis=(0, 1))) < N_SE * se)
    centred_ours = (ours - ours.mean(axis=(0, 1))) ** 2
    centred_theirs = (theirs - theirs.mean(axis=(0, 1))) ** 2
    se = np.sqrt(mcse(centred_ours) ** 2 + mcse(centred_theirs) ** 2)
    assert np.all(np.abs(centred_ours.mean(axis=(0, 1)) - centred_theirs.mean(axis=(0, 1))) < N_SE * se)


def test_the_storage_round_trips_in_float32(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = ap.datasets.gap_regression(seed=3)
    model = build_model(data)
    draws = rng.standard_normal((2, 6, model.dim))
    metadata = {
        "settings": {"method": "NUTS", "dataset": "gap", "seed": 3, "thin": 1, "stored_dtype": "float32"},
        "diagnostics": {"converged": False, "acceptance_rate": 0.8},
        "cost": {"grad_evals": 10, "density_evals": 2, "seconds": 1.5},
    }
    monkeypatch.setattr(references, "REFERENCE_DIR", tmp_path)
    references.save_reference(tmp_path / "toy.npz", draws, np.ones(200), np.full(200, 500.0), metadata)
    assert references.available() == ["toy"]
    ref = references.load("toy")
    np.testing.assert_array_equal(ref.draws, draws.astype(np.float32).astype(np.float64))
    assert ref.settings == metadata["settings"] and ref.cost == ap.Cost(10, 2, 1.5)
    assert ref.diagnostics["f_rhat_max"] == 1.0 and ref.diagnostics["f_ess_min"] == 500.0
    np.testing.assert_array_equal(ref.model.x, data.x)  # the model is rebuilt from the data set and seed


def _chains_of_predictions(model, draws, x):
    n_chains, n_draws, dim = draws.shape
    return model.predict_proba(draws.reshape(-1, dim), x).reshape(n_chains, n_draws, len(x), -1)


def test_a_two_class_classifier_is_judged_on_one_class_probability_either_class_giving_the_same_numbers():
    rng = np.random.default_rng(0)
    data = ap.datasets.two_moons(n=30, seed=0)
    model = build_model(data)
    centre = rng.standard_normal(model.dim)
    draws = centre + 0.1 * rng.standard_normal((4, 60, model.dim))
    draws[0] -= 2 * centre  # one chain at −θ, whose logits are negated: the diagnostic must see it
    rhat, ess = references.function_diagnostics(model, draws, data.x_test)
    probs = _chains_of_predictions(model, draws, data.x_test)
    ess_1, rhat_1 = ap.diagnostics.ess_and_rhat(probs[..., 1])
    np.testing.assert_allclose(rhat, rhat_1, rtol=1e-12)
    np.testing.assert_allclose(ess, ess_1, rtol=1e-12)
    # p(y=0) = 1 − p(y=1) reverses the ranks: the same bulk ESS and R-hat. Only the folded R-hat can move, by
    # ~1e-3: the two middle draws are equidistant from the median, a tie that rounding breaks either way
    ess_0, rhat_0 = ap.diagnostics.ess_and_rhat(probs[..., 0])
    np.testing.assert_allclose(ess, ess_0, rtol=1e-12)
    np.testing.assert_allclose(rhat, rhat_0, atol=2e-3)
    assert rhat.shape == ess.shape == (30,) and rhat.max() > 1.1


def test_with_more_classes_each_input_reports_its_worst_class():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((25, 2)), rng.integers(0, 3, 25)
    model = ap.models.Classification(ap.nn.MLP([2, 5, 3], activation="tanh"), x, y)
    draws = rng.standard_normal((4, 40, model.dim))
    rhat, ess = references.function_diagnostics(model, draws, x)
    per_class = [ap.diagnostics.ess_and_rhat(p) for p in np.moveaxis(_chains_of_predictions(model, draws, x), -1, 0)]
    np.testing.assert_allclose(rhat, np.max([r for _, r in per_class], axis=0), rtol=1e-12)
    np.testing.assert_allclose(ess, np.min([e for e, _ in per_class], axis=0), rtol=1e-12)


def test_a_short_nuts_run_agrees_with_the_moons_reference_within_mc_error():
    ref = references.load("moons")
    data = ap.datasets.two_moons(seed=ref.settings["seed"])
    # the moons posterior mixes fast: its trees want depth 6, and capped there (98% of them) 8 chains × 100
    # draws still match the reference (~100k gradients; depth 7 costs 40% more for nothing here)
    post = ap.NUTS(n_samples=100, n_warmup=100, n_chains=8, max_tree_depth=6).fit(ref.model, seed=1)
    ours = _chains_of_predictions(ref.model, post.draws, data.x_test)[..., 1]
    theirs = _chains_of_predictions(ref.model, ref.draws, data.x_test)[..., 1]
    # the posterior mean of p(y=1 | x) at every test input, and its spread over θ, within the runs' joint MCSE
    se = np.sqrt(mcse(ours) ** 2 + mcse(theirs) ** 2)
    assert np.all(np.abs(ours.mean(axis=(0, 1)) - theirs.mean(axis=(0, 1))) < N_SE * se)
    centred_ours = (ours - ours.mean(axis=(0, 1))) ** 2
    centred_theirs = (theirs - theirs.mean(axis=(0, 1))) ** 2
    se = np.sqrt(mcse(centred_ours) ** 2 + mcse(centred_theirs) ** 2)
    assert np.all(np.abs(centred_ours.mean(axis=(0, 1)) - centred_theirs.mean(axis=(0, 1))) < N_SE * se)
    # the distances compare reports, from 600 and 1000 predictive draws: the total variation (here the mean
    # |Δp(y=1)|) within 4 standard errors of those draws, and the top class differing only within them of 1/2
    ref_probs = ref.predict(data.x_test, n_samples=1000, seed=0).probs
    probs = post.predict(data.x_test, n_samples=600, seed=0).probs
    se = np.sqrt(theirs.var(axis=(0, 1)) * (1 / 600 + 1 / 1000))
    assert ap.metrics.total_variation(probs, ref_probs) < N_SE * se.mean()
    differ = probs.argmax(axis=1) != ref_probs.argmax(axis=1)
    assert np.all(np.abs(ref_probs[differ, 1] - 0.5) < N_SE * se[differ])
