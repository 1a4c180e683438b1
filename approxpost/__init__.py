"""approxpost: the classic ways of approximating a Bayesian posterior, side by side.

Random-walk Metropolis, Hamiltonian Monte Carlo, self-normalised importance
sampling, black-box variational inference and Bayes by Backprop, behind one
``Posterior`` interface, on a pure-NumPy engine with its own reverse-mode
autodiff (:mod:`approxpost.autodiff`).
"""

__version__ = "0.1.0"

from . import (
    active,
    autodiff,
    datasets,
    diagnostics,
    distributions,
    estimators,
    metrics,
    models,
    nn,
    optim,
    references,
    targets,
    weight_noise,
)
from .compare import Comparison, compare, gradient_variance_curves
from .io import load
from .linearized import LaplacePosterior
from .methods import (
    BBVI,
    HMC,
    MAP,
    NUTS,
    SGHMC,
    SGLD,
    BayesByBackprop,
    DeepEnsemble,
    ImportanceSampling,
    Laplace,
    MCDropout,
    Metropolis,
)
from .posteriors import (
    ClassPredictive,
    Cost,
    GaussianPosterior,
    PointPosterior,
    Posterior,
    Predictive,
    SamplePosterior,
    WeightedPosterior,
)
from .weight_posteriors import DropoutPosterior, EnsemblePosterior


def __getattr__(name):
    # plot imports matplotlib, so it is loaded on first use: the engine never pulls it in
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'approxpost' has no attribute {name!r}")


__all__ = [
    "__version__",
    "active",
    "autodiff",
    "datasets",
    "diagnostics",
    "distributions",
    "estimators",
    "metrics",
    "models",
    "nn",
    "optim",
    "targets",
    "references",
    "weight_noise",
    "plot",
    "Metropolis",
    "HMC",
    "ImportanceSampling",
    "BBVI",
    "BayesByBackprop",
    "MAP",
    "DeepEnsemble",
    "MCDropout",
    "Laplace",
    "SGLD",
    "SGHMC",
    "LaplacePosterior",
    "NUTS",
    "Posterior",
    "SamplePosterior",
    "WeightedPosterior",
    "GaussianPosterior",
    "PointPosterior",
    "EnsemblePosterior",
    "DropoutPosterior",
    "Predictive",
    "ClassPredictive",
    "Cost",
    "compare",
    "Comparison",
    "gradient_variance_curves",
    "load",
]
