"""What the variational methods (BBVI, Bayes by Backprop) share: settings checks, start, result.

Both fit a mean-field Gaussian q(θ) = N(μ, diag(softplus(ρ)²)) with Adam, so
they start the same way, count their cost the same way and turn the final
(μ, ρ) into the same :class:`~approxpost.posteriors.GaussianPosterior`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from .. import _validate as check
from ..distributions import MeanFieldNormal, Normal
from ..estimators import elbo_terms
from ..optim import Adam
from ..posteriors import GaussianPosterior
from .base import Method

__all__ = [
    "VIMethod",
    "initial_rho",
    "grad_norm",
    "check_finite_step",
    "model_name",
    "FINAL_ELBO_DRAWS",
    "FINAL_ELBO_MIN_DRAWS",
    "FINAL_ELBO_BUDGET",
    "final_elbo_draws",
    "INIT_STD_FRACTION",
]

FINAL_ELBO_DRAWS = 1000
"""Most draws of the final ELBO estimate in ``diagnostics["final_elbo"]`` (one batched pass)."""

FINAL_ELBO_MIN_DRAWS = 32
"""Fewest draws of the final ELBO estimate, whatever the model's size."""

FINAL_ELBO_BUDGET = 3 * 10**7
"""Draws × data points × parameters the final ELBO may spend (the digits CNN gets the minimum, ~1 s)."""

INIT_STD_FRACTION = 0.1
"""Starting σ as a fraction of the prior standard deviation."""

# The final ELBO is a measurement of q, not part of the fit: every fit uses the
# same ε draws (common random numbers), so two fits' final ELBOs differ only
# through their q, not through Monte Carlo luck.
_FINAL_ELBO_SEED = 0


def initial_rho(model) -> np.ndarray:
    """ρ₀ with σ₀ = softplus(ρ₀) = 0.1 × the prior std (0.1 when the prior is not a Normal).

    A small starting σ makes q start near a point estimate: the first steps
    fit the mean, and σ then grows (or shrinks) to what the data allow
    instead of starting from the prior's wide and noisy spread.
    """
    prior = model.prior_distribution()
    prior_std = prior.std if isinstance(prior, Normal) else np.ones(model.dim)
    return MeanFieldNormal.from_std(np.zeros(model.dim), INIT_STD_FRACTION * prior_std).rho


def final_elbo_draws(model) -> int:
    """Draws of the final ELBO: ``FINAL_ELBO_BUDGET`` / (N · D), clipped to [``FINAL_ELBO_MIN_DRAWS``, ``FINAL_ELBO_DRAWS``].

    A measurement after the fit should cost a little of the fit, not most of
    it: 1000 full-data passes of a network with thousands of weights took
    longer than training it. N · D is a pass's rough cost; small models still
    get 1000 draws, and the MCSE reported beside the estimate stays honest
    whatever the number.
    """
    cost = max(1, int(model.n_data or 1)) * max(1, int(model.dim))
    return int(np.clip(FINAL_ELBO_BUDGET // cost, FINAL_ELBO_MIN_DRAWS, FINAL_ELBO_DRAWS))


def model_name(model) -> str:
    """The model's class name, for messages."""
    return type(model).__name__


def grad_norm(grads) -> float:
    """Euclidean norm of a gradient given as several arrays."""
    # math.sqrt rounds as np.sqrt does (IEEE), without making a NumPy scalar of a Python float
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads))


def check_finite_step(elbo: float, grads, learning_rate: float) -> None:
    """Raise ``ValueError`` if a step's ELBO estimate or gradient is not finite (instead of a NaN q later)."""
    if not (np.isfinite(elbo) and all(np.all(np.isfinite(g)) for g in grads)):
        raise ValueError(
            f"the ELBO estimate ({elbo}) or its gradient is not finite: q has moved where log p(θ, D) "
            f"cannot be evaluated; try a smaller learning_rate (now {learning_rate}) or another init"
        )


@dataclasses.dataclass(frozen=True)
class VIMethod(Method):
    """Base of the mean-field Gaussian methods; a subclass has fields ``n_mc``, ``n_steps``, ``learning_rate``."""

    def validate(self) -> None:
        check.count("n_mc", self.n_mc)
        check.count("n_steps", self.n_steps)
        check.positive("learning_rate", self.learning_rate)

    @property
    def n_main_steps(self) -> int:
        return self.n_steps

    @functools.cached_property
    def optimizer(self) -> Adam:
        """The Adam optimiser at ``learning_rate`` (default moments)."""
        # built once per settings object (it is frozen, so this is its only Adam): building and
        # validating a new one cost ~5 µs a step, 1% of a BBB step at n_mc = 1
        return Adam(learning_rate=self.learning_rate)

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting mean μ₀ (D,): ``init`` if given, else one draw of ``model.init``."""
        if init is None:
            return np.asarray(model.init(rng, 1), dtype=np.float64)[0]
        position = np.asarray(init, dtype=np.float64)
        if position.shape != (model.dim,):
            raise ValueError(f"init is the starting mean and must have shape ({model.dim},), got {position.shape}")
        return position

    def evals_per_step(self, model) -> int:
        return int(self.n_mc)

    def with_budget(self, n_evals: int) -> VIMethod:
        """A copy with ``n_steps = n_evals // n_mc``."""
        n_evals = check.count("n_evals", n_evals, int(self.n_mc), f"n_mc = {self.n_mc} is one step's cost")
        return dataclasses.replace(self, n_steps=n_evals // int(self.n_mc))

    def build_posterior(self, model, state, kept: list, history: dict) -> GaussianPosterior:
        """``GaussianPosterior(mean=μ, std=σ)`` with the full-constant ``final_elbo``, its MCSE and draws (see :func:`final_elbo_draws`)."""
        q = MeanFieldNormal(state.mu, state.rho)
        # a diagnostic, not part of the fit: fit has stopped counting before it builds the posterior
        terms = elbo_terms(model, q, n_mc=final_elbo_draws(model), seed=_FINAL_ELBO_SEED)
        diagnostics = {
            "final_elbo": float(np.mean(terms)),
            "final_elbo_mcse": float(np.std(terms, ddof=1) / np.sqrt(terms.size)),
            "final_elbo_draws": int(terms.size),
        }
        return GaussianPosterior(q.mean.copy(), std=q.std.copy(), diagnostics=diagnostics)
