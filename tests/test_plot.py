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
