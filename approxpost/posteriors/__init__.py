"""What every method returns: one ``Posterior`` interface and the ``Predictive`` it makes.

- :class:`SamplePosterior` — MCMC draws (n_chains, n_draws, D), with ESS and R-hat.
- :class:`WeightedPosterior` — importance-sampling particles and log weights.
- :class:`GaussianPosterior` — N(mean, diag(std²)) from VI, or N(mean, cov) exactly.
- :class:`PointPosterior` — a single θ̂ (MAP), a point mass.

The interface and ``Cost`` live in ``base``, the draw-based posteriors in
``samples``, the parametric ones in ``gaussian``; import them from here.

Each has ``sample(n, seed)``, ``mean``, ``std``, ``dim``, ``predict(x)``,
``diagnostics``, ``history``, ``cost``, ``settings`` and ``save(path)``. The
arrays a posterior holds are read-only copies: results are not edited in place.
A posterior never imports a method (data flow one way, DESIGN.md §2).
"""

from ..predictive import ClassPredictive, Predictive
from .base import Cost, Posterior
from .gaussian import GaussianPosterior, PointPosterior
from .samples import SamplePosterior, WeightedPosterior

__all__ = [
    "Cost",
    "Predictive",
    "ClassPredictive",
    "Posterior",
    "SamplePosterior",
    "WeightedPosterior",
    "GaussianPosterior",
    "PointPosterior",
]
