"""Posterior.to_arviz: groups, shapes and names, and ArviZ's ESS and R-hat agree with approxpost's."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import approxpost as ap

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its 1.0 refactor on import
    import arviz as az


@pytest.fixture(scope="module")
def model():
    data = ap.datasets.linear(n=20, noise_std=0.5, seed=3)
    return ap.models.LinearRegression(data.x, data.y, noise_std=0.5, prior_std=1.0)


@pytest.fixture(scope="module")
def nuts(model):
    return ap.NUTS(n_samples=300, n_warmup=200, n_chains=3).fit(model, seed=0)


def test_nuts_posterior_and_sample_stats(nuts):
    idata = nuts.to_arviz()
    theta = idata.posterior["theta"]
    assert theta.dims == ("chain", "draw", "theta_dim_0") and theta.shape == (3, 300, 2)
    np.testing.assert_array_equal(theta.values, nuts.draws)
    stats = idata.sample_stats
    assert set(stats.data_vars) == {"lp", "acceptance_rate", "diverging", "tree_depth", "n_steps", "step_size"}
    kept = ~nuts.history["warmup"]
    np.testing.assert_array_equal(stats["lp"].values, nuts.history["log_joint"][kept].T)
    np.testing.assert_array_equal(stats["tree_depth"].values, nuts.history["tree_depth"][kept].T)
    assert stats["diverging"].dtype == bool and stats["tree_depth"].dtype == np.int64
    assert np.all(stats["step_size"].values == nuts.diagnostics["step_size"])  # fixed after warm-up, per draw
    assert idata.posterior.attrs["method"] == "NUTS"


def test_hmc_has_its_own_statistics(model):
    post = ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=100, n_warmup=50, n_chains=2).fit(model, seed=0)
    stats = post.to_arviz().sample_stats
    assert set(stats.data_vars) == {"lp", "acceptance_rate", "diverging", "step_size", "energy_error"}
    assert stats["lp"].shape == (2, 100)


def test_arviz_ess_and_rhat_agree_with_ours_within_one_percent(nuts):
    idata = nuts.to_arviz()
    ours_ess, ours_rhat = nuts.diagnostics["ess"], nuts.diagnostics["rhat"]
    theirs_ess = az.ess(idata, method="bulk")["theta"].values
    theirs_rhat = az.rhat(idata)["theta"].values
    np.testing.assert_allclose(theirs_ess, ours_ess, rtol=0.01)
    np.testing.assert_allclose(theirs_rhat, ours_rhat, rtol=0.01)


def test_a_gaussian_posterior_becomes_one_chain_of_draws(model):
    exact = model.exact_posterior()
    idata = exact.to_arviz(n_draws=500, seed=1)
    assert idata.posterior["theta"].shape == (1, 500, 2)
    np.testing.assert_array_equal(idata.posterior["theta"].values[0], exact.sample(500, seed=1))
    assert "sample_stats" not in idata.groups()


def test_missing_arviz_is_a_clear_error(nuts, monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match="pip install arviz"):
        nuts.to_arviz()


def test_the_engine_never_imports_arviz():
    code = "import sys, approxpost as ap; ap.NUTS(); print('arviz' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
