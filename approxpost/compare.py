"""Fit several methods to one model and tabulate how they differ.

``compare`` gives every method the same model, the same seed and, with
``budget=``, the same number of model evaluations, then measures each
posterior the same way: cost, test error, log predictive density, interval
coverage, predictive spread on the data and in the gap, and the method's own
quality figure (ESS per second for MCMC, Kish ESS for IS, final ELBO for VI).
On a classifier (a model with ``predict_proba``) the test columns are
accuracy, NLL, ECE and Brier score instead, plus the AUROC of entropy and
mutual information at telling ``ood=`` inputs from the test inputs. With
``reference=`` (a long-run posterior, e.g. ``ap.references.load("gap")``) each
row also gets its distance to that reference's predictive at the test inputs.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from . import _validate as check
from . import autodiff as ad
from . import estimators, weight_noise
from . import metrics as _metrics
from ._rng import as_generator
from .distributions import MeanFieldNormal

__all__ = [
    "Comparison",
    "compare",
    "predictive_metrics",
    "classification_metrics",
    "reference_metrics",
    "is_classifier",
    "gradient_variance_curves",
    "COLUMNS",
]

# column name -> (header, format) for the markdown table, in display order
COLUMNS = {
    "seconds": ("seconds", "{:.2f}"),
    "grad_evals": ("grad evals", "{:,.0f}"),
    "density_evals": ("density evals", "{:,.0f}"),
    "test_rmse": ("test RMSE", "{:.3f}"),
    "test_lpd": ("test log pred. density", "{:.3f}"),
    "coverage_90": ("90% coverage", "{:.2f}"),
    "std_data": ("pred. std on data", "{:.3f}"),
    "std_gap": ("pred. std in gap", "{:.3f}"),
    "test_accuracy": ("test accuracy", "{:.3f}"),
    "test_nll": ("test NLL", "{:.3f}"),
    "test_ece": ("test ECE", "{:.3f}"),
    "test_brier": ("test Brier", "{:.3f}"),
    "ood_auroc_entropy": ("OOD AUROC (entropy)", "{:.3f}"),
    "ood_auroc_mi": ("OOD AUROC (MI)", "{:.3f}"),
    "w2_reference": ("W2 to reference", "{:.3f}"),
    "agreement": ("agreement", "{:.3f}"),
    "tv_reference": ("TV to reference", "{:.3f}"),
    "ess_per_second": ("min ESS / s", "{:.1f}"),
    "kish_ess": ("Kish ESS", "{:.1f}"),
    "khat": ("k-hat", "{:.2f}"),
    "final_elbo": ("final ELBO", "{:.2f}"),
}


class Comparison(NamedTuple):
    """The result of :func:`compare`.

    Attributes
    ----------
    posteriors
        Method name -> fitted ``Posterior``.
    table
        Method name -> {metric name -> value}; metrics a method has no value
        for are absent (see ``COLUMNS`` for the names).
    methods
        Method name -> the method object actually run (after ``budget``).
    """

    posteriors: dict
    table: dict
    methods: dict

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured markdown, one row a method."""
        present = [c for c in COLUMNS if any(c in row for row in self.table.values())]
        lines = ["| method | " + " | ".join(COLUMNS[c][0] for c in present) + " |"]
        lines.append("|---|" + "---:|" * len(present))
        for name, row in self.table.items():
            cells = [COLUMNS[c][1].format(row[c]) if c in row and _is_number(row[c]) else "" for c in present]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(float(value))


def predictive_metrics(posterior, x_train, test, gap=None, n_samples: int = 200, seed=0) -> dict:
    """Test RMSE, log predictive density, 90% coverage and predictive spread of one posterior.

    Parameters
    ----------
    posterior
        A fitted posterior whose model has ``predict``.
    x_train
        The training inputs (for the mean predictive std on the data).
    test
        ``(x_test, y_test)``.
    gap
        ``(low, high)`` interval of the first input with no training data, or None.
    n_samples
        θ draws for the predictive.
    seed
        Seed for those draws (the same for every method).

    Returns
    -------
    dict
        ``test_rmse``, ``test_lpd``, ``coverage_90``, ``std_data`` and, with
        a gap, ``std_gap``.
    """
    x_test, y_test = test
    y_test = np.asarray(y_test, dtype=np.float64).reshape(len(y_test), -1)
    pred = posterior.predict(x_test, n_samples=n_samples, seed=seed)
    lower, upper = pred.interval(0.9)
    metrics = {
        "test_rmse": float(np.sqrt(np.mean((pred.mean - y_test) ** 2))),
        "test_lpd": float(pred.log_density(y_test)),
        "coverage_90": float(np.mean((lower <= y_test) & (y_test <= upper))),
        "std_data": float(np.mean(posterior.predict(x_train, n_samples=n_samples, seed=seed).std)),
    }
    if gap is not None:
        inside = (np.asarray(x_test)[:, 0] > gap[0]) & (np.asarray(x_test)[:, 0] < gap[1])
        if np.any(inside):
            metrics["std_gap"] = float(np.mean(pred.std[inside]))
    return metrics


def is_classifier(model) -> bool:
    """Whether ``model`` is a classifier: it has ``predict_proba`` (as ``models.Classification``)."""
    return callable(getattr(model, "predict_proba", None))


def classification_metrics(posterior, test, ood=None, n_samples: int = 200, seed=0, n_bins: int = 15) -> dict:
    """Test accuracy, NLL, ECE, Brier score and, with ``ood``, out-of-distribution AUROCs of one classifier posterior.

    Parameters
    ----------
    posterior
        A fitted posterior whose model is a classifier.
    test
        ``(x_test, y_test)`` with integer labels.
    ood
        Inputs from elsewhere (e.g. far from the data, or unseen classes), or None.
    n_samples
        θ draws for each predictive.
    seed
        Seed for those draws (the same for every method).
    n_bins
        Bins of the ECE.

    Returns
    -------
    dict
        ``test_accuracy``, ``test_nll``, ``test_ece``, ``test_brier`` (see
        :mod:`approxpost.metrics`) and, with ``ood``, ``ood_auroc_entropy`` and
        ``ood_auroc_mi``: P(score on an OOD input > score on a test input) for
        the predictive entropy and the mutual information.
    """
    x_test, y_test = test
    pred = posterior.predict(x_test, n_samples=n_samples, seed=seed)
    row = {
        "test_accuracy": _metrics.accuracy(pred.probs, y_test),
        "test_nll": _metrics.nll(pred.probs, y_test),
        "test_ece": _metrics.ece(pred.probs, y_test, n_bins=n_bins),
        "test_brier": _metrics.brier(pred.probs, y_test),
    }
    if ood is not None:
        pred_ood = posterior.predict(ood, n_samples=n_samples, seed=seed)
        row["ood_auroc_entropy"] = _metrics.auroc(pred.entropy, pred_ood.entropy)
        row["ood_auroc_mi"] = _metrics.auroc(pred.mutual_information, pred_ood.mutual_information)
    return row


def reference_metrics(posterior, reference_predictive, x_test, n_samples: int = 200, seed=0) -> dict:
    """Distance of one posterior's predictive at ``x_test`` to a reference predictive at the same inputs.

    Parameters
    ----------
    posterior
        A fitted posterior with a model.
    reference_predictive
        The reference's ``Predictive`` (regression) or ``ClassPredictive``
        (classifier) at ``x_test``, e.g. ``reference.predict(x_test, n_samples=1000)``.
    x_test
        The inputs the reference predictive was computed at.
    n_samples, seed
        θ draws of ``posterior`` for its predictive, and their seed.

    Returns
    -------
    dict
        Regression: ``w2_reference`` (:func:`approxpost.metrics.predictive_w2`).
        Classification: ``agreement`` and ``tv_reference``
        (:func:`approxpost.metrics.agreement`, :func:`approxpost.metrics.total_variation`).

    Notes
    -----
    Both predictives are Monte Carlo averages, so the distance has a floor
    even for the reference itself: about sd_f · √(1/S + 1/S_ref) per input,
    with sd_f the spread of f(x) over θ. Only the same draws give exactly 0.
    """
    pred = posterior.predict(x_test, n_samples=n_samples, seed=seed)
    if hasattr(reference_predictive, "probs"):
        if not hasattr(pred, "probs"):
            raise TypeError("reference_predictive is a classifier's but posterior's model is a regression")
        return {
            "agreement": _metrics.agreement(pred.probs, reference_predictive.probs),
            "tv_reference": _metrics.total_variation(pred.probs, reference_predictive.probs),
        }
    if hasattr(pred, "probs"):
        raise TypeError("reference_predictive is a regression's but posterior's model is a classifier")
    return {"w2_reference": _metrics.predictive_w2(pred, reference_predictive)}


def _reference_predictive(reference, model, test, reference_samples: int, seed):
    """The reference's predictive at the test inputs, after checking it describes the same model."""
    if test is None:
        raise ValueError("reference= needs test=(x_test, y_test): the distances are measured at the test inputs")
    if not callable(getattr(reference, "predict", None)):
        raise TypeError(f"reference must be a Posterior with a model, got {type(reference).__name__}")
    ref_model = getattr(reference, "model", None)
    if ref_model is None:
        raise ValueError("reference has model=None: a reference needs the model it samples (pass model=)")
    if getattr(ref_model, "dim", None) != model.dim:
        raise ValueError(
            f"reference's model has dim={getattr(ref_model, 'dim', None)} but model has dim={model.dim}: "
            "the reference must be a posterior of the same model"
        )
    if is_classifier(ref_model) != is_classifier(model):
        raise ValueError("reference's model and model must both be classifiers or both regressions")
    return reference.predict(test[0], n_samples=reference_samples, seed=seed)


def _quality(posterior) -> dict:
    """The method's own figure of merit, from its diagnostics."""
    diagnostics, row = posterior.diagnostics, {}
    if "ess" in diagnostics and "acceptance_rate" in diagnostics:
        seconds = max(posterior.cost.seconds, 1e-12)
        row["ess_per_second"] = float(np.min(diagnostics["ess"])) / seconds
    for key in ("kish_ess", "khat", "final_elbo"):
        if key in diagnostics:
            row[key] = float(diagnostics[key])
    return row


def compare(
    model,
    methods: Mapping,
    test=None,
    seed=0,
    budget: int | None = None,
    progress: bool = False,
    gap=None,
    n_samples: int = 200,
    ood=None,
    reference=None,
    reference_samples: int = 1000,
) -> Comparison:
    """Fit every method in ``methods`` to ``model`` and measure the results the same way.

    Parameters
    ----------
    model
        The model all methods fit.
    methods
        Name -> method object, e.g. ``{"HMC": ap.HMC(...), "BBB": ap.BayesByBackprop(...)}``.
    test
        ``(x_test, y_test)`` for the predictive metrics (needs a model with ``predict``).
    seed
        The seed every method's ``fit`` gets (and the predictive draws).
    budget
        If given, the number of model evaluations each method may spend:
        each method is replaced by ``method.with_budget(budget)``, which sets
        its iteration count so the whole run (warm-up included) costs about
        that much. Gradient-based methods count gradient evaluations;
        Metropolis and importance sampling count density evaluations.
    progress
        Progress bar for each fit.
    gap
        ``(low, high)`` input interval with no data, for the in-gap spread.
    n_samples
        θ draws for the predictive metrics (as in ``posterior.predict``).
    ood
        Out-of-distribution inputs for a classifier: adds the OOD AUROC
        columns (see :func:`classification_metrics`).
    reference
        A posterior of the same model to measure every method against (a
        long NUTS run such as ``ap.references.load("gap")``, or
        ``LinearRegression.exact_posterior()``): adds ``w2_reference``
        (regression) or ``agreement`` and ``tv_reference`` (classifier) at
        the test inputs (see :func:`reference_metrics`). Needs ``test``.
    reference_samples
        θ draws of the reference for its predictive (drawn once, with ``seed``).

    Returns
    -------
    Comparison
    """
    if not methods:
        raise ValueError("methods must name at least one method, got an empty mapping")
    check.optional(check.count, "budget", budget)
    n_samples = check.count("n_samples", n_samples)
    if test is not None and len(test) != 2:
        raise ValueError(f"test must be a pair (x_test, y_test), got {len(test)} items")
    if ood is not None and not (test is not None and is_classifier(model)):
        raise ValueError("ood= needs a classifier model (with predict_proba) and test=(x_test, y_test)")
    reference_samples = check.count("reference_samples", reference_samples)
    ref_pred = None
    if reference is not None:
        ref_pred = _reference_predictive(reference, model, test, reference_samples, seed)
    ad.ensure_malloc_tuned()
    posteriors, table, run = {}, {}, {}
    for name, method in methods.items():
        method = method.with_budget(int(budget)) if budget is not None else method
        posterior = method.fit(model, seed=seed, progress=progress)
        row = {
            "seconds": posterior.cost.seconds,
            "grad_evals": posterior.cost.grad_evals,
            "density_evals": posterior.cost.density_evals,
        }
        if test is not None and is_classifier(model):
            row.update(classification_metrics(posterior, test, ood=ood, n_samples=n_samples, seed=seed))
        elif test is not None and hasattr(model, "predict"):
            row.update(predictive_metrics(posterior, model.x, test, gap=gap, n_samples=n_samples, seed=seed))
        if ref_pred is not None:
            row.update(reference_metrics(posterior, ref_pred, test[0], n_samples=n_samples, seed=seed))
        row.update(_quality(posterior))
        posteriors[name], table[name], run[name] = posterior, row, method
    return Comparison(posteriors, table, run)


def gradient_variance_curves(model, q=None, n_mcs=(1, 2, 4, 8, 16, 32), n_repeats: int = 50, seed=0) -> dict:
    """Total variance of each ELBO gradient estimator as the number of draws grows.

    Parameters
    ----------
    model
        The model (local reparameterisation is included for regression or
        classification with an MLP or a CNN, Flipout with a CNN).
    q
        The ``MeanFieldNormal`` to measure at; default: μ from ``model.init``
        and σ = 0.1.
    n_mcs
        Numbers of Monte Carlo draws per estimate.
    n_repeats
        Independent estimates per point.
    seed
        Seed for the whole measurement.

    Returns
    -------
    dict
        ``{"n_mc": array, estimator name: array of total variances}``.
    """
    rng = as_generator(seed)
    if q is None:
        q = MeanFieldNormal.from_std(model.init(rng, 1)[0], np.full(model.dim, 0.1))
    candidates = {
        "score function": lambda m, q, n_mc, seed: estimators.score_function_grad(
            m, q, n_mc=n_mc, seed=seed, control_variate=False
        ),
        "score function + control variate": lambda m, q, n_mc, seed: estimators.score_function_grad(
            m, q, n_mc=n_mc, seed=seed, control_variate=True
        ),
        "reparameterisation": estimators.reparam_grad,
    }
    if hasattr(model, "net") and hasattr(model.net, "layer_sizes"):
        candidates["local reparameterisation"] = estimators.local_reparam_grad
    elif hasattr(model, "net") and hasattr(model.net, "layer_linear"):  # a CNN: both samplers of weight_noise
        candidates["local reparameterisation"] = functools.partial(weight_noise.weight_noise_grad, estimator="local")
        candidates["flipout"] = functools.partial(weight_noise.weight_noise_grad, estimator="flipout")
    curves = {"n_mc": np.asarray(n_mcs)}
    for name, estimator in candidates.items():
        totals = []
        for n_mc in n_mcs:
            if "control variate" in name and n_mc < 2:
                totals.append(np.nan)  # the leave-one-out baseline needs two draws
                continue
            totals.append(
                estimators.grad_variance(estimator, model, q, n_mc=n_mc, n_repeats=n_repeats, seed=rng).total_variance
            )
        curves[name] = np.asarray(totals, dtype=np.float64)
    return curves
