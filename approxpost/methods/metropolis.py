"""Random-walk Metropolis: the simplest MCMC method, batched over chains.

Each chain proposes θ' = θ + ε z with z ~ N(0, I) and moves there with
probability min(1, p(θ', D) / p(θ, D)). Only values of the log joint are
needed, never its gradient, which is why the method works on any model and
why it slows down so badly as the dimension grows: the step size that keeps
proposals acceptable shrinks like 1/√D.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .integrators import accept
from .mcmc_common import MCMCMethod

__all__ = ["Metropolis", "MetropolisState", "MetropolisInfo"]


class MetropolisState(NamedTuple):
    """Every chain's position (n_chains, D) and log joint (n_chains,), and the step size ε."""

    position: np.ndarray
    log_joint: np.ndarray
    step_size: float


class MetropolisInfo(NamedTuple):
    """One step: the log joint after it and the acceptance probability (both per chain), and ε."""

    log_joint: np.ndarray
    accept_prob: np.ndarray
    step_size: float


@dataclasses.dataclass(frozen=True)
class Metropolis(MCMCMethod):
    """Gaussian random-walk Metropolis with step-size adaptation in warm-up.

    Parameters
    ----------
    step_size
        ε, the standard deviation of the proposal in every coordinate (the
        starting value when ``adapt_step_size``).
    n_samples
        Draws kept per chain after warm-up.
    n_warmup
        Warm-up iterations per chain (adaptation; discarded).
    n_chains
        Chains run side by side in one (n_chains, D) array.
    adapt_step_size
        Tune ε during warm-up so the mean acceptance probability reaches
        ``target_accept``.
    target_accept
        The acceptance probability aimed at; 0.234 is optimal for a random
        walk in high dimension (Roberts et al. 1997).

    Notes
    -----
    Accept θ' when log u < log p(θ', D) − log p(θ, D), u ~ U[0, 1): the
    proposal is symmetric, so its density cancels. Warm-up adapts log ε by
    dual averaging on the chains' mean acceptance probability (see
    :mod:`approxpost.methods.adaptation`), a Robbins–Monro scheme whose
    averaged iterate is kept. ``init`` is (n_chains, D) or (D,) (copied to
    every chain); by default ``model.init(rng, n_chains)``. ``fit`` returns a
    ``SamplePosterior`` with ``diagnostics["acceptance_rate"]`` (the mean
    post-warm-up acceptance probability), ``ess`` and ``rhat``; one
    iteration costs n_chains density evaluations.

    References
    ----------
    Metropolis, N., Rosenbluth, A. W., Rosenbluth, M. N., Teller, A. H. and
        Teller, E. (1953). Equation of state calculations by fast computing
        machines. *J. Chem. Phys.* 21(6), 1087–1092.
    Roberts, G. O., Gelman, A. and Gilks, W. R. (1997). Weak convergence and
        optimal scaling of random walk Metropolis algorithms. *Ann. Appl.
        Probab.* 7(1), 110–120.
    Andrieu, C. and Thoms, J. (2008). A tutorial on adaptive MCMC.
        *Statistics and Computing* 18(4), 343–373.
    """

    step_size: float = 0.05
    n_samples: int = 5000
    n_warmup: int = 1000
    n_chains: int = 4
    adapt_step_size: bool = True
    target_accept: float = 0.234

    def init(self, model, position, rng: np.random.Generator) -> MetropolisState:
        """Every chain at ``position`` (n_chains, D) or (D,), with its log joint and ε = ``step_size``."""
        position = self.chain_positions(model, position)
        with np.errstate(all="ignore"):
            log_joint = np.asarray(model.log_joint(position), dtype=np.float64)
        self.check_finite_start(np.isfinite(log_joint), position)
        return MetropolisState(position, log_joint, float(self.step_size))

    def step(self, model, state: MetropolisState, rng: np.random.Generator) -> tuple:
        """Propose θ' = θ + ε z for every chain at once and accept or reject each."""
        proposal = state.position + state.step_size * rng.standard_normal(state.position.shape)
        with np.errstate(all="ignore"):
            proposal_log_joint = np.asarray(model.log_joint(proposal), dtype=np.float64)
            # a proposal where the density is NaN or +inf is rejected, never kept
            proposal_log_joint = np.where(
                np.isfinite(proposal_log_joint) | (proposal_log_joint == -np.inf), proposal_log_joint, np.nan
            )
            accepted, accept_prob = accept(rng, proposal_log_joint - state.log_joint)
        position = np.where(accepted[:, None], proposal, state.position)
        log_joint = np.where(accepted, proposal_log_joint, state.log_joint)
        info = MetropolisInfo(log_joint=log_joint, accept_prob=accept_prob, step_size=state.step_size)
        return MetropolisState(position, log_joint, state.step_size), info
