"""Hamiltonian Monte Carlo, assembled from the pieces in :mod:`~approxpost.methods.integrators`.

Each iteration draws a momentum p ~ N(0, M), follows the Hamiltonian
dynamics of H(θ, p) = −log p(θ, D) + ½ pᵀM⁻¹p for L leapfrog steps, and
accepts the end point with probability min(1, exp(−ΔH)). The gradient
steers the proposal along the posterior, so long moves are still accepted
where a random walk would have to take tiny steps.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from .integrators import accept, kinetic_energy, leapfrog
from .mcmc_common import MassAdaptation, MassAdaptingMCMC

__all__ = ["HMC", "HMCState", "HMCInfo", "HMCAdaptation", "DIVERGENCE_THRESHOLD"]

DIVERGENCE_THRESHOLD = 1000.0
"""An energy error ΔH above this (or non-finite) marks a divergent trajectory (Stan's default)."""

_WORST_ENERGY_ERROR = float(np.finfo(np.float64).max)

# the pieces without their own errstate (see integrators): step runs them all under one
_kinetic_energy, _leapfrog, _accept = kinetic_energy.__wrapped__, leapfrog.__wrapped__, accept.__wrapped__

MIN_WARMUP_FOR_MASS = 20
"""Fewest warm-up iterations with ``adapt_mass_matrix``: the windows below need a few draws each."""


class HMCState(NamedTuple):
    """Every chain's position (n_chains, D), log joint (n_chains,) and its gradient, plus ε and M⁻¹ (D,)."""

    position: np.ndarray
    log_joint: np.ndarray
    grad: np.ndarray
    step_size: float
    inv_mass: np.ndarray


class HMCInfo(NamedTuple):
    """One iteration, per chain: log joint after it, acceptance probability, energy error ΔH, divergence; and ε (before jitter).

    A non-finite ΔH (the trajectory overflowed) is recorded as the largest float.
    """

    log_joint: np.ndarray
    accept_prob: np.ndarray
    energy_error: np.ndarray
    step_size: float
    diverging: np.ndarray


HMCAdaptation = MassAdaptation  # the name HMC has always exported


@dataclasses.dataclass(frozen=True)
class HMC(MassAdaptingMCMC):
    """Hamiltonian Monte Carlo with a fixed number of leapfrog steps.

    Parameters
    ----------
    step_size
        Leapfrog step ε (the starting value when ``adapt_step_size``).
    n_leapfrog
        L, leapfrog steps per iteration (L gradient evaluations per chain).
    n_samples
        Draws kept per chain after warm-up.
    n_warmup
        Warm-up iterations per chain (adaptation; discarded).
    n_chains
        Chains run side by side in one (n_chains, D) array.
    adapt_step_size
        Tune ε during warm-up by dual averaging toward ``target_accept``.
    target_accept
        The mean acceptance probability aimed at (0.8: Stan's default).
    adapt_mass_matrix
        Estimate a diagonal M⁻¹ from warm-up draws (needs n_warmup ≥ 20).
    step_size_jitter
        Each chain's ε is drawn anew every iteration from
        ε · U(1 − jitter, 1 + jitter); 0 turns the jitter off.

    Notes
    -----
    ΔH = H(θ', p') − H(θ, p); accept when log u < −ΔH. A trajectory with
    ΔH > 1000 or a non-finite ΔH is a *divergence*: the integrator has left
    the region where it is accurate (the step is too big for the local
    curvature). It is rejected and counted, never raised.

    With a fixed trajectory length εL, a trajectory can be close to a whole
    period of the dynamics along some direction and bring the chain back
    near where it started, iteration after iteration (HMC on a Gaussian
    then mixes very slowly); jittering ε breaks this resonance (Neal 2011,
    section 5.4.2.2) without changing the cost. Choosing ε independently of
    the state keeps the chain exact.

    Warm-up: one step size shared by all chains (they sample the same
    target; pooling their acceptance probabilities makes the adaptation
    less noisy), tuned by dual averaging and fixed at the averaged iterate
    ε̄. With ``adapt_mass_matrix``, iterations [n/2, 4n/5) of the n warm-up
    iterations (the second half minus a final window) feed a Welford
    estimate of each coordinate's variance, pooled over chains, which
    becomes M⁻¹; dual averaging then restarts and re-tunes ε over the last
    n/5 iterations for the new metric.

    The gradient at the current point is kept in the state, so an iteration
    costs exactly L gradient evaluations per chain. ``fit`` returns a
    ``SamplePosterior`` with ``diagnostics`` ``acceptance_rate`` (mean
    post-warm-up acceptance probability), ``divergences`` (post-warm-up
    count; ``history["diverging"]`` has every iteration), ``ess`` and ``rhat``.

    References
    ----------
    Duane, S., Kennedy, A. D., Pendleton, B. J. and Roweth, D. (1987). Hybrid
        Monte Carlo. *Physics Letters B* 195(2), 216–222.
    Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In *Handbook of
        Markov Chain Monte Carlo*, ch. 5.
    Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler. *JMLR* 15.
    Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte
        Carlo. arXiv:1701.02434.
    """

    step_size: float = 0.01
    n_leapfrog: int = 20
    n_samples: int = 1000
    n_warmup: int = 500
    n_chains: int = 4
    adapt_step_size: bool = True
    target_accept: float = 0.8
    adapt_mass_matrix: bool = False
    step_size_jitter: float = 0.2

    def validate(self) -> None:
        super().validate()
        check.count("n_leapfrog", self.n_leapfrog)
        check.flag("adapt_mass_matrix", self.adapt_mass_matrix)
        check.number("step_size_jitter", self.step_size_jitter, 0.0, 1.0, closed="left")
        if self.adapt_mass_matrix and self.n_warmup < MIN_WARMUP_FOR_MASS:
            raise ValueError(
                f"n_warmup must be at least {MIN_WARMUP_FOR_MASS} with adapt_mass_matrix=True, got {self.n_warmup}"
            )

    @property
    def evals_per_chain_step(self) -> int:
        return int(self.n_leapfrog)

    @property
    def mass_window(self) -> tuple:
        """Warm-up iterations [start, stop) whose draws estimate the mass matrix."""
        return self.n_warmup // 2, self.n_warmup - self.n_warmup // 5

    @property
    def mass_windows(self) -> list:
        """The one window of ``mass_window`` when adapting M⁻¹, else none (the warm-up is in the base)."""
        return [self.mass_window] if self.adapt_mass_matrix else []

    def init(self, model, position, rng: np.random.Generator) -> HMCState:
        """Every chain at ``position`` (n_chains, D) or (D,), with log joint, gradient, ε and M⁻¹ = I."""
        position = self.chain_positions(model, position)
        with np.errstate(all="ignore"):
            log_joint, grad = model.log_joint_and_grad(position)
        log_joint = np.asarray(log_joint, dtype=np.float64)
        self.check_finite_start(
            np.isfinite(log_joint) & np.all(np.isfinite(grad), axis=1), position, "log density or its gradient"
        )
        return HMCState(position, log_joint, grad, float(self.step_size), np.ones(model.dim))

    @np.errstate(all="ignore")  # one errstate for the whole step: an overflow is a divergence, never a warning
    def step(self, model, state: HMCState, rng: np.random.Generator) -> tuple:
        """One HMC iteration for every chain at once: momentum, L leapfrog steps, accept/reject."""
        # M⁻¹ = I (the default, and warm-up before the mass window) goes to the pieces as the scalar 1,
        # which skips each product with it: x·1 and x/√1 are x exactly, so the chain is the same bits
        unit_mass = (state.inv_mass == 1.0).all()
        inv_mass = 1.0 if unit_mass else state.inv_mass
        momentum = rng.standard_normal(state.position.shape)
        if not unit_mass:
            momentum = momentum / np.sqrt(inv_mass)
        step_size = state.step_size
        if self.step_size_jitter > 0:
            step_size = step_size * rng.uniform(
                1.0 - self.step_size_jitter, 1.0 + self.step_size_jitter, state.position.shape[0]
            )
        energy = _kinetic_energy(momentum, inv_mass) - state.log_joint
        position, momentum, log_joint, grad = _leapfrog(
            model.log_joint_and_grad, state.position, momentum, state.grad, step_size, int(self.n_leapfrog), inv_mass
        )
        energy_error = _kinetic_energy(momentum, inv_mass) - log_joint - energy
        finite_error = np.isfinite(energy_error)
        # a non-finite gradient makes the last half kick's momentum, so K(p) and ΔH, non-finite: only a
        # position can be non-finite with a finite ΔH (a density that stays finite at infinity)
        diverging = ~(finite_error & np.isfinite(position).all(axis=1)) | (energy_error > DIVERGENCE_THRESHOLD)
        accepted, accept_prob = _accept(rng, np.where(diverging, -np.inf, -energy_error))
        new_state = HMCState(
            position=np.where(accepted[:, None], position, state.position),
            log_joint=np.where(accepted, log_joint, state.log_joint),
            grad=np.where(accepted[:, None], grad, state.grad),
            step_size=state.step_size,
            inv_mass=state.inv_mass,
        )
        info = HMCInfo(
            log_joint=new_state.log_joint,
            accept_prob=accept_prob,
            # an overflowed trajectory is recorded as the worst finite error, so history stays finite
            energy_error=np.where(finite_error, energy_error, _WORST_ENERGY_ERROR),
            step_size=state.step_size,
            diverging=diverging,
        )
        return new_state, info

    def extra_diagnostics(self, infos: list) -> dict:
        return {"divergences": int(np.count_nonzero([info.diverging for info in infos]))}
