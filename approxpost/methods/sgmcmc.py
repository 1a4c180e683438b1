"""Stochastic-gradient MCMC: SGLD and SGHMC, minibatch gradients and no accept step.

Both follow a discretised diffusion whose stationary law is the posterior,
with the full-data gradient replaced by a minibatch estimate ∇log p̂(θ)
(``model.log_joint_and_grad(theta, idx)``, scaled to the full data) and no
Metropolis correction: each step costs one minibatch gradient per chain, and
the price is a bias that grows with the step size (it vanishes as ε → 0).
The conventions are DESIGN §6's, so step sizes mean what the papers say.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from ..posteriors import SamplePosterior
from .mcmc_common import MIN_DRAWS, MCMCMethod

__all__ = ["SGLD", "SGHMC", "SGMCMCState", "SGMCMCInfo", "SCHEDULES", "cyclical_step_size"]

SCHEDULES = ("constant", "cyclical")


def cyclical_step_size(step_size: float, iteration, n_iterations: int, n_cycles: int):
    """Zhang et al. (2020): ε_k = ε/2 [cos(π r_k) + 1], r_k = mod(k, L)/L, L = ⌈K/M⌉; and r_k."""
    length = int(np.ceil(n_iterations / n_cycles))
    fraction = np.mod(iteration, length) / length
    return 0.5 * step_size * (np.cos(np.pi * fraction) + 1.0), fraction


class SGMCMCState(NamedTuple):
    """Every chain's position (n_chains, D) and velocity (SGHMC; zeros for SGLD), and the iteration count."""

    position: np.ndarray
    velocity: np.ndarray
    iteration: int


class SGMCMCInfo(NamedTuple):
    """One step: the minibatch log joint per chain at the step's start, the step size, whether noise was injected."""

    log_joint: np.ndarray
    step_size: float
    sampling: bool


@dataclasses.dataclass(frozen=True)
class _SGMCMC(MCMCMethod):
    """What SGLD and SGHMC share: settings, minibatches, the schedule, the posterior of the sampling steps."""

    def validate(self) -> None:
        check.positive("step_size", self.step_size)
        check.count("n_samples", self.n_samples)
        check.count("n_chains", self.n_chains)
        check.count("n_warmup", self.n_warmup, minimum=0)
        check.optional(check.count, "batch_size", self.batch_size)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        check.count("n_cycles", self.n_cycles)
        check.number("exploration", self.exploration, 0.0, 1.0, closed="left")
        kept = self.n_samples if self.schedule == "constant" else self.n_samples * (1 - self.exploration)
        if kept < MIN_DRAWS * (self.n_cycles if self.schedule == "cyclical" else 1):
            raise ValueError(
                f"n_samples={self.n_samples} keeps too few draws per chain (at least {MIN_DRAWS} a cycle are needed "
                f"for R-hat and ESS) with schedule={self.schedule!r}, n_cycles={self.n_cycles}, exploration={self.exploration}"
            )

    def schedule_at(self, iteration: int) -> tuple:
        """``(ε_k, sampling)``: constant in warm-up; cyclical over the kept iterations if asked."""
        main = iteration - int(self.n_warmup)
        if self.schedule == "constant" or main < 0:
            return float(self.step_size), True
        step_size, fraction = cyclical_step_size(self.step_size, main, int(self.n_samples), int(self.n_cycles))
        return float(step_size), bool(fraction >= self.exploration)

    def minibatch_grad(self, model, position, rng: np.random.Generator) -> tuple:
        """log p̂(θ, D) and ∇log p̂ on a fresh minibatch (one for all chains), scaled to the full data."""
        idx = None
        if self.batch_size is not None and model.n_data is not None and self.batch_size < model.n_data:
            idx = rng.choice(model.n_data, size=int(self.batch_size), replace=False)
        log_joint, grad = model.log_joint_and_grad(position, idx)
        if not (np.all(np.isfinite(log_joint)) and np.all(np.isfinite(grad))):
            raise ValueError(
                f"the log density or its gradient is not finite with step_size={self.step_size}: "
                "the chains have diverged; use a smaller step_size"
            )
        return np.asarray(log_joint, dtype=np.float64), grad

    def with_budget(self, n_evals: int) -> _SGMCMC:
        """A copy whose run costs about ``n_evals`` evaluations: one minibatch gradient per chain per step.

        Unlike HMC, nothing is evaluated at the start; the iterations are
        split between warm-up and draws in the current proportion.
        """
        per_step = self.evals_per_step(None)
        smallest = per_step * (MIN_DRAWS + (1 if self.n_warmup else 0))
        why = f"{MIN_DRAWS} draws at {per_step} evaluations an iteration"
        n_steps = check.count("n_evals", n_evals, smallest, why) // per_step
        n_warmup = int(round(n_steps * self.n_warmup / (self.n_warmup + self.n_samples)))
        n_warmup = min(n_warmup, n_steps - MIN_DRAWS)
        return dataclasses.replace(self, n_warmup=n_warmup, n_samples=n_steps - n_warmup)

    def start_warmup(self, model, state):
        return None  # nothing adapts: the step size is the user's (or the schedule's)

    def build_posterior(self, model, state, kept: list, history: dict) -> SamplePosterior:
        """``SamplePosterior`` of the positions after sampling steps (exploration steps of a cycle are dropped)."""
        draws = [position for position, info in kept if info.sampling]
        if len(draws) < MIN_DRAWS:
            raise ValueError(f"only {len(draws)} draws per chain were kept: at least {MIN_DRAWS} are needed")
        # no accept step: every move is taken, so the ESS-per-second column of compare applies
        return SamplePosterior(np.stack(draws, axis=1), diagnostics={"acceptance_rate": 1.0})


@dataclasses.dataclass(frozen=True)
class SGLD(_SGMCMC):
    """Stochastic-gradient Langevin dynamics (Welling & Teh 2011).

    Parameters
    ----------
    step_size
        ε in θ ← θ + (ε/2) ∇log p̂(θ) + N(0, ε I) (the peak ε with ``"cyclical"``).
    batch_size
        Minibatch size (None: all data, i.e. unadjusted Langevin).
    n_samples, n_warmup, n_chains
        Kept iterations, burn-in iterations (constant ε), chains as one (n_chains, D) batch.
    schedule
        ``"constant"``, or ``"cyclical"`` (Zhang et al. 2020): over the kept
        iterations, ``n_cycles`` cosine cycles of ε from its peak to 0; the
        first ``exploration`` fraction of each cycle are noise-free gradient
        steps (exploring a new mode) whose positions are not kept.

    Notes
    -----
    On a Gaussian target of precision λ the full-batch chain is stationary at
    variance 1/(λ(1 − ελ/4)) instead of 1/λ: the bias grows with ε (the test
    measures it). All chains share each step's minibatch (one batched call).

    References
    ----------
    Welling, M. and Teh, Y. W. (2011). Bayesian learning via stochastic gradient Langevin dynamics. ICML.
    Zhang, R., Li, C., Zhang, J., Chen, C. and Wilson, A. G. (2020). Cyclical stochastic gradient MCMC for
        Bayesian deep learning. ICLR.
    """

    step_size: float = 1e-4
    batch_size: int | None = None
    n_samples: int = 1000
    n_warmup: int = 1000
    n_chains: int = 4
    schedule: str = "constant"
    n_cycles: int = 4
    exploration: float = 0.5

    def init(self, model, position, rng: np.random.Generator) -> SGMCMCState:
        """Every chain at ``position`` (n_chains, D) or (D,)."""
        position = self.chain_positions(model, position)
        return SGMCMCState(position, np.zeros_like(position), 0)

    def step(self, model, state: SGMCMCState, rng: np.random.Generator) -> tuple:
        """θ ← θ + (ε/2) ∇log p̂(θ) + N(0, ε I) for every chain (no noise in an exploration step)."""
        step_size, sampling = self.schedule_at(state.iteration)
        log_joint, grad = self.minibatch_grad(model, state.position, rng)
        noise = rng.standard_normal(state.position.shape)
        position = state.position + 0.5 * step_size * grad + (np.sqrt(step_size) * noise if sampling else 0.0)
        return SGMCMCState(position, state.velocity, state.iteration + 1), SGMCMCInfo(log_joint, step_size, sampling)


@dataclasses.dataclass(frozen=True)
class SGHMC(_SGMCMC):
    """Stochastic-gradient Hamiltonian Monte Carlo (Chen, Fox and Guestrin 2014), with friction.

    Parameters
    ----------
    step_size
        η in θ ← θ + v, v ← v + η ∇log p̂(θ) − α v + N(0, 2αη I).
    friction
        α in (0, 1]: the fraction of the velocity lost each step (α = 1 is SGLD with ε = 2η).
    batch_size, n_samples, n_warmup, n_chains, schedule, n_cycles, exploration
        As for :class:`SGLD` (the schedule changes η).

    Notes
    -----
    The gradient-noise estimate β̂ is 0 (the paper's practical choice): the
    friction absorbs the minibatch noise, a bias that shrinks with η. v starts
    at its stationary law N(0, η I) (v is η × momentum with unit mass).

    References
    ----------
    Chen, T., Fox, E. B. and Guestrin, C. (2014). Stochastic gradient Hamiltonian Monte Carlo. ICML.
    """

    step_size: float = 1e-4
    friction: float = 0.1
    batch_size: int | None = None
    n_samples: int = 1000
    n_warmup: int = 1000
    n_chains: int = 4
    schedule: str = "constant"
    n_cycles: int = 4
    exploration: float = 0.5

    def validate(self) -> None:
        super().validate()
        check.number("friction", self.friction, 0.0, 1.0, closed="right")

    def init(self, model, position, rng: np.random.Generator) -> SGMCMCState:
        """Every chain at ``position`` with a velocity drawn from N(0, η I)."""
        position = self.chain_positions(model, position)
        return SGMCMCState(position, np.sqrt(self.step_size) * rng.standard_normal(position.shape), 0)

    def step(self, model, state: SGMCMCState, rng: np.random.Generator) -> tuple:
        """θ ← θ + v, then v ← v + η ∇log p̂(θ) − α v + N(0, 2αη I) at the new θ (no noise when exploring)."""
        step_size, sampling = self.schedule_at(state.iteration)
        position = state.position + state.velocity
        log_joint, grad = self.minibatch_grad(model, position, rng)
        noise = rng.standard_normal(position.shape)
        alpha = float(self.friction)
        velocity = (1.0 - alpha) * state.velocity + step_size * grad
        if sampling:
            velocity = velocity + np.sqrt(2.0 * alpha * step_size) * noise
        return SGMCMCState(position, velocity, state.iteration + 1), SGMCMCInfo(log_joint, step_size, sampling)
