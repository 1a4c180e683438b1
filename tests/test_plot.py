"""Every figure renders headless with the expected panels and lines."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import approxpost as ap


@pytest.fixture(scope="module")
def fits():
    data = ap.datasets.gap_regression(n=20, seed=0)
    model = ap.models.Regression(ap.nn.MLP([1, 8, 1]), data.x, data.y, noise_std=data.noise_std)
    methods = {
        "HMC": ap.HMC(step_size=0.02, n_leapfrog=5, n_samples=60, n_warmup=40, n_chains=2),
        "BBB": ap.BayesByBackprop(n_mc=2, n_steps=100),
        "BBVI": ap.BBVI(n_mc=4, n_steps=100),
    }
    return data, model, ap.compare(model, methods, seed=0)


def teardown_function():
    plt.close("all")


def test_bands_one_panel_per_method(fits):
    data, _, result = fits
    fig = ap.plot.bands(result, data)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["HMC", "BBB", "BBVI"]
    for ax in axes:
        assert len(ax.lines) == 2  # predictive mean and data points
        assert len(ax.collections) == 1  # the ±2 sd band
        assert len(ax.patches) == 1  # the shaded gap


def test_bands_draws_into_given_axes(fits):
    data, _, result = fits
    fig, axes = plt.subplots(1, 3)
    assert ap.plot.bands(result, data, ax=axes) is fig
    with pytest.raises(ValueError, match="3 axes"):
        ap.plot.bands(result, data, ax=axes[:2])


def test_many_methods_wrap_into_balanced_rows_of_at_most_six(fits):
    data, _, result = fits
    posteriors = {f"{name} {i}": post for i in range(3) for name, post in result.posteriors.items()}  # nine
    fig = ap.plot.bands(posteriors, data)
    axes = fig.get_axes()
    assert len(axes) == 10 and [ax.get_title() for ax in axes[:9]] == list(posteriors)  # two rows of five
    assert [ax.axison for ax in axes] == [True] * 9 + [False]  # the spare cell is blank
    assert len({round(ax.get_position().y0, 6) for ax in axes}) == 2
    # the panel above the blank cell is the lowest in its column, so it keeps its x tick labels
    assert [ax.xaxis.get_tick_params()["labelbottom"] for ax in axes[:9]] == [False] * 4 + [True] * 5
    assert len(ap.plot.bands(result, data).get_axes()) == 3  # a few methods stay in one row


def test_grad_variance_lines():
    curves = {"n_mc": np.array([1, 2, 4]), "a": np.array([3.0, 2.0, 1.0]), "b": np.array([np.nan, 0.5, 0.2])}
    fig = ap.plot.grad_variance(curves)
    ax = fig.get_axes()[0]
    assert len(ax.lines) == 2
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(ax.lines[1].get_xdata()) == 2  # the undefined point is left out


def test_trace_one_line_per_chain(fits):
    _, _, result = fits
    fig = ap.plot.trace(result.posteriors["HMC"], coords=(0, 3))
    axes = fig.get_axes()
    assert len(axes) == 2 and all(len(ax.lines) == 2 for ax in axes)
    with pytest.raises(TypeError, match="draws"):
        ap.plot.trace(result.posteriors["BBB"])


def test_density_2d_draws_and_ellipses():
    target = ap.targets.Gaussian()
    posteriors = {
        "HMC": ap.HMC(step_size=0.3, n_leapfrog=5, n_samples=100, n_warmup=50, n_chains=2).fit(target, seed=0),
        "exact": ap.GaussianPosterior(target.mean, cov=target.cov),
    }
    fig = ap.plot.density_2d(target, posteriors)
    hmc_ax, exact_ax = fig.get_axes()
    assert len(hmc_ax.lines) == 1 and len(hmc_ax.lines[0].get_xdata()) == 500
    assert len(exact_ax.patches) == 2  # the 1- and 2-sd ellipses


def test_elbo_and_sigma_curves(fits):
    _, _, result = fits
    vi = {name: result.posteriors[name] for name in ("BBB", "BBVI")}
    assert len(ap.plot.elbo(vi).get_axes()[0].lines) == 2
    ax = ap.plot.sigma_over_training(result.posteriors["BBB"]).get_axes()[0]
    assert len(ax.lines) == 1 and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="mean_sigma"):
        ap.plot.sigma_over_training(result.posteriors["HMC"])


@pytest.fixture(scope="module")
def moons_fits():
    data = ap.datasets.two_moons(n=40, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 6, 2]), data.x, data.y)
    methods = {
        "HMC": ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=60, n_warmup=40, n_chains=2),
        "BBB": ap.BayesByBackprop(n_mc=2, n_steps=100),
    }
    return data, ap.compare(model, methods, seed=0)


def test_reliability_bars_histogram_and_diagonal(moons_fits):
    data, result = moons_fits
    fig = ap.plot.reliability(result, data, n_bins=10)
    axes = np.array(fig.get_axes()).reshape(2, 2)
    for column, name in enumerate(["HMC", "BBB"]):
        top, bottom = axes[0, column], axes[1, column]
        pred = result.posteriors[name].predict(data.x_test, n_samples=200, seed=0)
        table = ap.metrics.reliability(pred.probs, data.y_test, n_bins=10)
        heights = [patch.get_height() for patch in top.patches]
        np.testing.assert_allclose(heights, table.accuracy[table.count > 0])  # one bar per non-empty bin
        assert len(top.lines) == 1  # the diagonal
        assert top.get_title() == f"{name}\nECE {ap.metrics.ece(pred.probs, data.y_test, n_bins=10):.3f}"
        np.testing.assert_allclose(sum(p.get_height() for p in bottom.patches), 1.0)
    with pytest.raises(ValueError, match="2 x 2 axes"):
        ap.plot.reliability(result, data, ax=plt.subplots(1, 2)[1])
    # a ready predictive is drawn as it is, into given axes
    pred = result.posteriors["HMC"].predict(data.x_test, n_samples=200, seed=0)
    fig, axes = plt.subplots(2, 1)
    assert ap.plot.reliability({"given": pred}, data, ax=axes, n_bins=10) is fig
    assert [p.get_height() for p in axes[0].patches] == heights_of(pred, data.y_test)
    with pytest.raises(TypeError, match="Comparison or a non-empty dict"):
        ap.plot.reliability({}, data)


def heights_of(pred, y):
    table = ap.metrics.reliability(pred.probs, y, n_bins=10)
    return list(table.accuracy[table.count > 0])


@pytest.mark.parametrize("quantity", ["probability", "entropy", "mi"])
def test_decision_surface_maps_the_predictive(moons_fits, quantity):
    data, result = moons_fits
    fig = ap.plot.decision_surface(result, data, quantity=quantity, n_points=20, n_samples=30)
    panels = [ax for ax in fig.get_axes() if ax.get_title()]  # the colour bars have no title
    assert [ax.get_title() for ax in panels] == ["HMC", "BBB"]
    for ax, post in zip(panels, result.posteriors.values()):
        mesh = ax.collections[0]
        values = np.asarray(mesh.get_array()).reshape(20, 20)
        xs = np.linspace(
            data.x[:, 0].min() - 0.5 * np.ptp(data.x[:, 0]), data.x[:, 0].max() + 0.5 * np.ptp(data.x[:, 0]), 20
        )
        ys = np.linspace(
            data.x[:, 1].min() - 0.5 * np.ptp(data.x[:, 1]), data.x[:, 1].max() + 0.5 * np.ptp(data.x[:, 1]), 20
        )
        corner = post.predict(np.array([[xs[0], ys[0]]]), n_samples=30, seed=0)
        expected = {"probability": corner.probs[0, 1], "entropy": corner.entropy[0], "mi": corner.mutual_information[0]}
        # the same draws at one grid point as over the whole grid: seeded θ, rows independent
        assert values[0, 0] == pytest.approx(expected[quantity], rel=1e-10, abs=1e-14)
        assert len(ax.collections) == 3  # the map and one scatter per class
    with pytest.raises(ValueError, match="quantity"):
        ap.plot.decision_surface(result, data, quantity="variance")
    regression = ap.datasets.gap_regression(n=10, seed=0)
    with pytest.raises(ValueError, match="2-D inputs"):
        ap.plot.decision_surface(result, regression)


def _curve(n_labels, accuracy):
    z = np.zeros(len(n_labels))
    return ap.active.ActiveCurve(np.array(n_labels), np.array(accuracy), z, z, np.zeros((len(n_labels) - 1, 1)), z)


def test_learning_curves_one_line_and_band_per_acquisition(tmp_path):
    curves = {
        "bald": [_curve([10, 20, 30], [0.5, 0.7, 0.9]), _curve([10, 20, 30], [0.7, 0.9, 0.9])],
        "random": [_curve([10, 20, 30], [0.5, 0.6, 0.7])],
    }
    fig = ap.plot.learning_curves(curves, target=0.9)
    ax = fig.get_axes()[0]
    assert [line.get_label() for line in ax.lines[:2]] == ["bald (2 seeds)", "random (1 seed)"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.6, 0.8, 0.9])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # mean ± sd (ddof 1): 0.6 ± 0.1414 at 10 labels
    assert np.isclose(band.min(), 0.6 - np.sqrt(0.02))
    assert len(ax.collections) == 2 and ax.get_xlabel() == "number of labels"
    fig.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_learning_curves_rejects_mismatched_runs():
    with pytest.raises(ValueError, match="same n_labels"):
        ap.plot.learning_curves({"bald": [_curve([1, 2], [0, 1]), _curve([1, 3], [0, 1])]})
    with pytest.raises(ValueError, match="metric must be"):
        ap.plot.learning_curves({"bald": [_curve([1, 2], [0, 1])]}, metric="auc")
