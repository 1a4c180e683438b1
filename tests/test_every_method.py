"""Every method on every kind of model: a regression MLP, a two-moons classifier MLP and a digits CNN.

The contract battery (test_contract.py) checks the interface on the
conjugate linear model; this one checks that nothing in a method assumes a
Gaussian likelihood, a one-output network or flat inputs. Each method fits
each model once, with tiny settings, through ``compare`` (so compare
includes it); the checks are the predictive's type and shapes, a finite
row in the table, a bit-exact save/load round trip, and the two figures
drawn for every method's posterior. Accuracy is the business of each
method's own tests.
"""

import numpy as np
import pytest

import approxpost as ap
from approxpost.predictive import ClassPredictive, Predictive

METHODS = {
    "Metropolis": ap.Metropolis(step_size=0.02, n_samples=60, n_warmup=40, n_chains=2),
    "HMC": ap.HMC(step_size=0.02, n_leapfrog=4, n_samples=30, n_warmup=20, n_chains=2),
    "NUTS": ap.NUTS(n_samples=30, n_warmup=20, n_chains=2, max_tree_depth=4),
    "IS": ap.ImportanceSampling(n_samples=200),
    "BBVI": ap.BBVI(n_mc=4, n_steps=40, learning_rate=1e-2),
    "BBB": ap.BayesByBackprop(n_mc=2, n_steps=40, learning_rate=1e-2),
    "MAP": ap.MAP(n_steps=40, learning_rate=1e-2),
    "Ensemble": ap.DeepEnsemble(n_members=3, n_steps=40, learning_rate=1e-2),
    "Anchored ensemble": ap.DeepEnsemble(n_members=3, n_steps=40, learning_rate=1e-2, anchored=True),
    "MC dropout": ap.MCDropout(p=0.2, n_steps=40, learning_rate=1e-2),
    "Laplace full": ap.Laplace(hessian="full", n_steps=40, n_newton=1),
    "Laplace diag": ap.Laplace(hessian="diag", n_steps=40, n_newton=1),
    "Laplace GGN linearised": ap.Laplace(hessian="ggn", n_steps=40, n_newton=1, linearized=True),
    "Laplace optimised prior": ap.Laplace(hessian="ggn", n_steps=40, n_newton=1, optimize_prior=True),
    "SGLD": ap.SGLD(step_size=1e-4, batch_size=10, n_samples=30, n_warmup=20, n_chains=2),
    "SGLD cyclical": ap.SGLD(step_size=1e-4, n_samples=40, n_warmup=20, n_chains=2, schedule="cyclical", n_cycles=2),
    "SGHMC": ap.SGHMC(step_size=1e-4, friction=0.5, batch_size=10, n_samples=30, n_warmup=20, n_chains=2),
}
N_PRED = 7  # predictive draws


def _regression():
    data = ap.datasets.gap_regression(n=20, seed=0)
    net = ap.nn.MLP([1, 8, 1], activation="tanh")
    return data, ap.models.Regression(net, data.x, data.y, noise_std=data.noise_std, prior_std=1.0)


def _moons():
    data = ap.datasets.two_moons(n=30, seed=0)
    return data, ap.models.Classification(ap.nn.MLP([2, 8, 2], activation="tanh"), data.x, data.y, prior_std=1.0)


def _cnn():
    # 202 weights, so the Hessians of the three Laplace variants stay cheap
    data = ap.datasets.digits(n_train=12, seed=0)
    net = ap.nn.CNN(input_shape=(1, 8, 8), channels=(2,), hidden=(4,), n_outputs=10)
    return data, ap.models.Classification(net, data.x, data.y, prior_std=1.0)


PROBLEMS = {"regression MLP": _regression, "moons MLP": _moons, "digits CNN": _cnn}


@pytest.fixture(scope="module", params=list(PROBLEMS))
def problem(request):
    """(name, data, model, comparison of every method): one fit per method and model for the whole module."""
    data, model = PROBLEMS[request.param]()
    test = (data.x_test[:20], data.y_test[:20])
    gap = getattr(data, "gap", None) if request.param == "regression MLP" else None
    result = ap.compare(model, METHODS, test=test, seed=0, gap=gap, n_samples=N_PRED)
    return request.param, data, model, result


def test_compare_has_a_finite_row_for_every_method(problem):
    name, data, model, result = problem
    assert list(result.posteriors) == list(METHODS) == list(result.table)
    headline = "test_nll" if name != "regression MLP" else "test_rmse"
    for method, row in result.table.items():
        assert row["grad_evals"] + row["density_evals"] > 0, method
        assert np.isfinite(row[headline]), f"{method} on {name}: {headline} = {row[headline]}"
    markdown = result.to_markdown()
    for method in METHODS:
        assert f"| {method} |" in markdown


@pytest.mark.parametrize("method", list(METHODS))
def test_predict_returns_the_model_kind_of_predictive(problem, method):
    name, data, model, result = problem
    post = result.posteriors[method]
    assert isinstance(post, ap.Posterior)
    assert post.mean.shape == post.std.shape == (model.dim,)
    assert np.all(np.isfinite(post.sample(3, seed=1)))
    x = data.x_test[:5]
    pred = post.predict(x, n_samples=N_PRED, seed=2)
    if name == "regression MLP":
        assert type(pred) is Predictive
        assert pred.mean.shape == pred.std.shape == (5, 1)
        assert np.all(np.isfinite(pred.mean)) and np.all(pred.std >= 0)
    else:
        assert type(pred) is ClassPredictive
        k = model.n_classes
        assert pred.probs.shape == (5, k) and pred.entropy.shape == pred.mutual_information.shape == (5,)
        np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0, rtol=1e-12)
        assert np.all(pred.probs >= 0)


@pytest.mark.parametrize("method", list(METHODS))
def test_save_load_round_trip(problem, method, tmp_path):
    name, data, model, result = problem
    post = result.posteriors[method]
    path = tmp_path / "post.npz"
    post.save(path)
    loaded = ap.load(path, model=model)
    assert type(loaded) is type(post)
    np.testing.assert_array_equal(loaded.sample(4, seed=3), post.sample(4, seed=3))
    x = data.x_test[:4]
    before, after = post.predict(x, n_samples=N_PRED, seed=5), loaded.predict(x, n_samples=N_PRED, seed=5)
    if isinstance(before, ClassPredictive):
        np.testing.assert_array_equal(after.probs, before.probs)
    else:
        np.testing.assert_array_equal(after.mean, before.mean)
        np.testing.assert_array_equal(after.std, before.std)
    assert loaded.settings == post.settings


def test_plots_draw_every_method(problem):
    """bands for the regression, decision_surface for the 2-D classifier: a titled panel a method, finite values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection, QuadMesh

    name, data, model, result = problem
    if name == "digits CNN":
        with pytest.raises(ValueError, match="2-D inputs"):  # images have no input plane to draw
            ap.plot.decision_surface(result, data)
        return
    if name == "regression MLP":
        fig = ap.plot.bands(result, data, n_samples=N_PRED)
        drawn = PolyCollection  # the ±2 sd band
    else:
        fig = ap.plot.decision_surface(result, data, quantity="entropy", n_points=12, n_samples=N_PRED)
        drawn = QuadMesh  # the heat map
    panels = [axes for axes in fig.axes if axes.get_title()]  # colorbars have no title
    assert [axes.get_title() for axes in panels] == list(METHODS)
    for axes in panels:
        (artist,) = [child for child in axes.collections if isinstance(child, drawn)]
        values = artist.get_array() if drawn is QuadMesh else np.concatenate([p.vertices for p in artist.get_paths()])
        assert np.all(np.isfinite(values)), f"{axes.get_title()} drew non-finite values"
    plt.close(fig)


@pytest.mark.parametrize("problem_name", ["moons MLP", "digits CNN"])
def test_perturbed_targets_need_gaussian_noise_and_say_so(problem_name):
    """The one setting that cannot apply to a classifier: target noise is Gaussian observation noise."""
    data, model = PROBLEMS[problem_name]()
    method = ap.DeepEnsemble(n_members=2, n_steps=2, anchored=True, perturb_targets=True)
    with pytest.raises(ValueError, match="perturb_targets=True needs a Gaussian-noise regression model"):
        method.fit(model, seed=0)
