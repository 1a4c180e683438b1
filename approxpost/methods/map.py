"""Maximum a posteriori: the point estimate the Bayesian methods are measured against.

Adam climbs log p(θ, D) = log p(θ) + log p(D | θ) (on minibatches, rescaled to
the full data, when ``batch_size`` is set) and the result is the single point
θ̂ — a :class:`~approxpost.posteriors.PointPosterior`, whose predictive holds
the noise but no uncertainty about θ: the overconfident baseline of the seeds.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from ..posteriors import PointPosterior
from .point_common import OptimizerMethod, PointState, check_finite_gradient

__all__ = ["MAP", "MAPInfo"]


class MAPInfo(NamedTuple):
    """One step: log p(θ, D) at the θ it started from (a full-data estimate on a minibatch), ‖∇‖."""

    log_joint: float
    grad_norm: float


@dataclasses.dataclass(frozen=True)
class MAP(OptimizerMethod):
    """The posterior mode θ̂ = argmax log p(θ, D), found with Adam.

    Parameters
    ----------
    n_steps
        Adam steps (one minibatch each).
    learning_rate
        Adam's step size.
    batch_size
        Data points per step; ``None`` uses all of them. Each epoch visits
        the data in a fresh random order; the last batch may be smaller.

    Notes
    -----
    Each step is θ ← Adam(θ, −∇ log p̂(θ, D)) with log p̂ = log p(θ) +
    (N/|B|) Σ_{n ∈ B} log p(y_n | θ), one ``model.log_joint_and_grad`` call.
    On ``LinearRegression`` the mode is the exact posterior mean. ``init``
    is the starting θ (D,) (default one ``model.init`` draw); ``history``
    holds ``log_joint`` and ``grad_norm`` per step.

    References
    ----------
    Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
    """

    n_steps: int = 2000
    learning_rate: float = 1e-2
    batch_size: int | None = None

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting θ (D,): ``init`` if given, else one draw of ``model.init``."""
        if init is None:
            return np.asarray(model.init(rng, 1), dtype=np.float64)[0]
        position = np.asarray(init, dtype=np.float64)
        if position.shape != (model.dim,):
            raise ValueError(f"init is the starting θ and must have shape ({model.dim},), got {position.shape}")
        return position

    def init(self, model, position, rng: np.random.Generator) -> PointState:
        """Start at ``position`` (D,) with fresh Adam moments."""
        return self.start(model, position)

    def step(self, model, state: PointState, rng: np.random.Generator) -> tuple:
        """One Adam step up log p̂(θ, D) on the next minibatch: ``(PointState, MAPInfo)``."""
        idx, order, batch_start = self.next_batch(model, state, rng)
        value, gradient = model.log_joint_and_grad(state.theta, idx)
        check_finite_gradient(value, gradient, self.learning_rate)
        info = MAPInfo(log_joint=float(value), grad_norm=float(np.linalg.norm(gradient)))
        return self.ascend(state, gradient, order, batch_start), info

    def build_posterior(self, model, state: PointState, kept: list, history: dict) -> PointPosterior:
        """``PointPosterior(θ̂)`` at the last iterate."""
        return PointPosterior(state.theta)

    def evals_per_step(self, model) -> int:
        """One gradient evaluation a step."""
        return 1
