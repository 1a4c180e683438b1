"""Self-normalised importance sampling: weight draws from a proposal by how much the posterior prefers them.

Draw θ_s ~ q and weight each by w_s = p(θ_s, D) / q(θ_s). The weighted
draws approximate the posterior and the mean weight estimates the evidence
p(D). It works when q covers the posterior well; with the prior as q and a
posterior much narrower than the prior (many data, many parameters) almost
all the weight lands on a handful of draws, which the Kish ESS and the
Pareto k-hat in the diagnostics make visible.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from .. import _validate as check
from ..posteriors import GaussianPosterior, WeightedPosterior
from .base import Method

__all__ = ["ImportanceSampling", "ImportanceState", "ImportanceInfo", "as_proposal"]


def as_proposal(proposal, dim: int | None = None):
    """A proposal with ``sample(rng, n)`` and ``log_prob``, checked to have dimension ``dim``.

    Parameters
    ----------
    proposal
        A distribution from :mod:`approxpost.distributions` (or anything with
        ``dim``, ``sample(rng, n)`` and ``log_prob``), or a
        ``GaussianPosterior`` (e.g. a VI fit), whose ``distribution`` it is.
    dim
        The model's dimension D (``None``: not checked).

    Returns
    -------
    The proposal distribution.
    """
    if isinstance(proposal, GaussianPosterior):
        proposal = proposal.distribution
    if not all(callable(getattr(proposal, name, None)) for name in ("sample", "log_prob")) or not hasattr(
        proposal, "dim"
    ):
        raise TypeError(
            f"proposal must be a distribution from approxpost.distributions or a GaussianPosterior, got {type(proposal).__name__}"
        )
    if dim is not None and proposal.dim != dim:
        raise ValueError(f"proposal has dimension {proposal.dim} but the model has dim={dim}")
    return proposal


class ImportanceState(NamedTuple):
    """The proposal, the latest batch (particles (B, D) and log weights (B,)) and running sums.

    ``log_sum_weights`` = log Σ w and ``log_sum_sq_weights`` = log Σ w² over
    the ``n_particles`` drawn so far, kept in log space.
    """

    proposal: object
    particles: np.ndarray
    log_weights: np.ndarray
    n_particles: int
    log_sum_weights: float
    log_sum_sq_weights: float


class ImportanceInfo(NamedTuple):
    """After each batch: the running log-evidence estimate, Kish ESS and particle count."""

    log_evidence: float
    kish_ess: float
    n_particles: int


@dataclasses.dataclass(frozen=True)
class ImportanceSampling(Method):
    """Self-normalised importance sampling from a fixed proposal.

    Parameters
    ----------
    n_samples
        Particles drawn in all.
    proposal
        The distribution q to draw from: any ``approxpost.distributions``
        object, or a ``GaussianPosterior`` such as a VI fit. ``None``: the
        model's prior (``model.prior_distribution()``).
    batch_size
        Particles per step: each batch is one vectorised evaluation of the
        log joint, and the progress bar moves once a batch.

    Notes
    -----
    log w_s = log p(θ_s, D) − log q(θ_s); the posterior expectation of f is
    Σ_s w̃_s f(θ_s) with w̃ = w / Σ w (self-normalised, so p need not be
    normalised), and log p̂(D) = logsumexp(log w) − log S. Everything stays in
    log space. ``fit`` takes no ``init`` and returns a ``WeightedPosterior``
    whose ``diagnostics`` hold ``kish_ess`` = (Σw)²/Σw², the Pareto ``khat``
    (> 0.7: the estimates cannot be trusted) and ``log_evidence``; one
    particle costs one density evaluation.

    References
    ----------
    Kahn, H. and Marshall, A. W. (1953). Methods of reducing sample size in
        Monte Carlo computations. *J. Oper. Res. Soc. America* 1(5), 263–278.
    Owen, A. B. (2013). *Monte Carlo theory, methods and examples*, ch. 9.
    Vehtari, A., Simpson, D., Gelman, A., Yao, Y. and Gabry, J. (2024).
        Pareto smoothed importance sampling. *JMLR* 25(72).
    """

    n_samples: int = 10_000
    proposal: object | None = None
    batch_size: int = 1000

    def validate(self) -> None:
        check.count("n_samples", self.n_samples)
        check.count("batch_size", self.batch_size)
        if self.proposal is not None:
            as_proposal(self.proposal)

    @property
    def n_main_steps(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    needs_start = False  # the proposal, not a starting point, says where the particles are

    def evals_per_step(self, model) -> int:
        return int(min(self.batch_size, self.n_samples))

    def with_budget(self, n_evals: int) -> ImportanceSampling:
        """A copy drawing ``n_evals`` particles (one density evaluation each)."""
        return dataclasses.replace(self, n_samples=check.count("n_evals", n_evals))

    def resolve_proposal(self, model):
        """The proposal for ``model``: ``proposal`` if given, else the model's prior."""
        if self.proposal is not None:
            return as_proposal(self.proposal, model.dim)
        prior = model.prior_distribution()
        if prior is None:
            raise ValueError(
                f"{type(model).__name__} has no prior_distribution() to use as the proposal: "
                f"pass proposal=... (e.g. a distribution or a VI fit's GaussianPosterior)"
            )
        return as_proposal(prior, model.dim)

    def init(self, model, position, rng: np.random.Generator) -> ImportanceState:
        """No particles yet. ``position`` must be ``None``: the method has no starting point."""
        if position is not None:
            raise ValueError(
                f"ImportanceSampling takes no starting position (got shape {np.shape(position)}); choose the proposal instead"
            )
        proposal = self.resolve_proposal(model)
        empty = np.empty((0, model.dim))
        return ImportanceState(proposal, empty, np.empty(0), 0, -np.inf, -np.inf)

    def step(self, model, state: ImportanceState, rng: np.random.Generator) -> tuple:
        """Draw and weight the next batch of particles in one vectorised evaluation."""
        n = min(int(self.batch_size), int(self.n_samples) - state.n_particles)
        if n < 1:
            raise ValueError(
                f"all n_samples = {self.n_samples} particles are drawn already (state.n_particles = {state.n_particles})"
            )
        particles = np.asarray(state.proposal.sample(rng, n), dtype=np.float64)
        with np.errstate(all="ignore"):
            log_weights = np.asarray(model.log_joint(particles), dtype=np.float64) - np.asarray(
                state.proposal.log_prob(particles)
            )
        bad = np.isnan(log_weights) | (log_weights == np.inf)
        if np.any(bad):
            raise ValueError(
                f"log p(θ, D) − log q(θ) is NaN or +inf for {int(np.sum(bad))} of {n} particles "
                f"(first at θ = {particles[np.argmax(bad)].tolist()}): the model or proposal cannot be evaluated there"
            )
        log_sum = float(np.logaddexp(state.log_sum_weights, logsumexp(log_weights)))
        log_sum_sq = float(np.logaddexp(state.log_sum_sq_weights, logsumexp(2.0 * log_weights)))
        n_particles = state.n_particles + n
        with np.errstate(invalid="ignore"):
            # all weights zero so far: no evidence and no effective particles yet
            kish = float(np.exp(2.0 * log_sum - log_sum_sq)) if np.isfinite(log_sum) else 0.0
        info = ImportanceInfo(log_evidence=log_sum - np.log(n_particles), kish_ess=kish, n_particles=n_particles)
        return ImportanceState(state.proposal, particles, log_weights, n_particles, log_sum, log_sum_sq), info

    def keep(self, model, state: ImportanceState, info: ImportanceInfo) -> tuple:
        return state.particles, state.log_weights

    def build_posterior(self, model, state: ImportanceState, kept: list, history: dict) -> WeightedPosterior:
        """``WeightedPosterior`` of all particles; it computes ``kish_ess``, ``khat`` and ``log_evidence``."""
        particles = np.concatenate([p for p, _ in kept])
        log_weights = np.concatenate([lw for _, lw in kept])
        return WeightedPosterior(particles, log_weights)
