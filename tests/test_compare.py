"""compare(): the table agrees with the posteriors it reports on, and budget= is fair."""

import numpy as np
import pytest

import approxpost as ap
from approxpost.compare import predictive_metrics


@pytest.fixture(scope="module")
def setup():
    data = ap.datasets.linear(n=25, noise_std=0.5, seed=1)
    model = ap.models.LinearRegression(data.x, data.y, noise_std=0.5, prior_std=1.0)
    methods = {
        "Metropolis": ap.Metropolis(step_size=0.1, n_samples=400, n_warmup=200, n_chains=2),
        "HMC": ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=100, n_warmup=100, n_chains=2),
        "IS": ap.ImportanceSampling(n_samples=3_000),
        "BBVI": ap.BBVI(n_mc=8, n_steps=300, learning_rate=5e-2),
        "BBB": ap.BayesByBackprop(n_mc=2, n_steps=300, learning_rate=5e-2),
    }
    return data, model, methods


def test_table_rows_match_an_independent_recomputation(setup):
    data, model, methods = setup
    result = ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, gap=(-0.5, 0.5))
    assert list(result.table) == list(methods) == list(result.posteriors)
    for name, post in result.posteriors.items():
        row = result.table[name]
        assert row["seconds"] == post.cost.seconds
        assert row["grad_evals"] == post.cost.grad_evals
        # the row's predictive numbers, recomputed here from the posterior with the same draws
        pred = post.predict(data.x_test, n_samples=200, seed=0)
        y = data.y_test[:, None]
        assert row["test_rmse"] == pytest.approx(np.sqrt(np.mean((pred.mean - y) ** 2)), rel=1e-12)
        lower, upper = pred.interval(0.9)
        assert row["coverage_90"] == pytest.approx(np.mean((lower <= y) & (y <= upper)), abs=1e-12)
        assert row["test_lpd"] == pytest.approx(pred.log_density(data.y_test), rel=1e-12)
        inside = (data.x_test[:, 0] > -0.5) & (data.x_test[:, 0] < 0.5)
        assert row["std_gap"] == pytest.approx(np.mean(pred.std[inside]), rel=1e-12)
    assert result.table["HMC"]["ess_per_second"] == pytest.approx(
        np.min(result.posteriors["HMC"].diagnostics["ess"]) / result.posteriors["HMC"].cost.seconds
    )
    assert result.table["BBB"]["final_elbo"] == result.posteriors["BBB"].diagnostics["final_elbo"]
    assert result.table["IS"]["kish_ess"] == pytest.approx(result.posteriors["IS"].diagnostics["kish_ess"])
    markdown = result.to_markdown()
    assert markdown.count("\n") == 1 + len(methods)
    for name in methods:
        assert f"| {name} |" in markdown


def test_a_good_fit_scores_well_on_the_conjugate_model(setup):
    data, model, _ = setup
    exact = model.exact_posterior()
    metrics = predictive_metrics(exact, model.x, (data.x_test, data.y_test), n_samples=400, seed=0)
    # the exact predictive covers about 90% of fresh noisy targets (200 points: sd of coverage ≈ 0.021)
    assert abs(metrics["coverage_90"] - 0.9) < 4 * np.sqrt(0.9 * 0.1 / 200)
    assert metrics["test_rmse"] < 1.5 * data.noise_std


def test_budget_gives_every_method_the_same_cost_within_one_iteration(setup):
    data, model, methods = setup
    budget = 3_000
    result = ap.compare(model, methods, seed=0, budget=budget)
    for name, post in result.posteriors.items():
        spent = post.cost.grad_evals + post.cost.density_evals
        per_iteration = result.methods[name].evals_per_step(model)
        assert abs(spent - budget) <= per_iteration, f"{name} spent {spent} of a {budget} budget"


@pytest.mark.parametrize("budget", [0, -5, 2.5, True])
def test_bad_budget(setup, budget):
    _, model, methods = setup
    with pytest.raises(ValueError, match="budget"):
        ap.compare(model, methods, budget=budget)


def test_no_methods_is_an_error(setup):
    _, model, _ = setup
    with pytest.raises(ValueError, match="methods"):
        ap.compare(model, {})


def test_gradient_variance_curves_order_the_estimators():
    data = ap.datasets.gap_regression(n=20, seed=0)
    model = ap.models.Regression(ap.nn.MLP([1, 10, 1]), data.x, data.y, noise_std=data.noise_std)
    curves = ap.gradient_variance_curves(model, n_mcs=(2, 8), n_repeats=30, seed=0)
    assert set(curves) == {
        "n_mc",
        "score function",
        "score function + control variate",
        "reparameterisation",
        "local reparameterisation",
    }
    # the teaching point, with orders of magnitude to spare: score function >> reparameterisation
    assert np.all(curves["score function"] > 100 * curves["reparameterisation"])
    # and more draws mean less variance (roughly 1/n_mc: a factor 4 here)
    for name in ("score function", "reparameterisation"):
        assert curves[name][1] < curves[name][0]


@pytest.fixture(scope="module")
def moons_comparison():
    data = ap.datasets.two_moons(n=60, seed=0)
    model = ap.models.Classification(ap.nn.MLP([2, 6, 2]), data.x, data.y)
    angles = np.linspace(0.0, 2.0 * np.pi, 30, endpoint=False)
    ood = np.column_stack([0.5 + 5.0 * np.cos(angles), 0.25 + 5.0 * np.sin(angles)])
    methods = {
        "HMC": ap.HMC(step_size=0.05, n_leapfrog=5, n_samples=100, n_warmup=100, n_chains=2),
        "BBB": ap.BayesByBackprop(n_mc=2, n_steps=300, learning_rate=2e-2),
    }
    return data, ood, ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, ood=ood)


def test_a_classifier_gets_classification_columns_recomputed_here(moons_comparison):
    data, ood, result = moons_comparison
    for name, post in result.posteriors.items():
        row = result.table[name]
        assert "test_rmse" not in row and "coverage_90" not in row
        pred = post.predict(data.x_test, n_samples=200, seed=0)
        far = post.predict(ood, n_samples=200, seed=0)
        assert row["test_accuracy"] == ap.metrics.accuracy(pred.probs, data.y_test) == pred.accuracy(data.y_test)
        assert row["test_nll"] == pytest.approx(-pred.log_density(data.y_test), rel=1e-12)
        assert row["test_ece"] == ap.metrics.ece(pred.probs, data.y_test)
        assert row["test_brier"] == ap.metrics.brier(pred.probs, data.y_test)
        assert row["ood_auroc_entropy"] == ap.metrics.auroc(pred.entropy, far.entropy)
        assert row["ood_auroc_mi"] == ap.metrics.auroc(pred.mutual_information, far.mutual_information)
    markdown = result.to_markdown()
    assert "test accuracy" in markdown and "OOD AUROC (MI)" in markdown and "test RMSE" not in markdown


def test_ood_needs_a_classifier(setup):
    data, model, methods = setup
    with pytest.raises(ValueError, match="ood= needs a classifier"):
        ap.compare(model, {"BBB": methods["BBB"]}, test=(data.x_test, data.y_test), ood=data.x_test)
