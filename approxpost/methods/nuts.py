"""The No-U-Turn sampler: HMC that chooses its own trajectory length, every chain in lockstep.

Each iteration draws a momentum and doubles a leapfrog trajectory forwards
or backwards until it starts to turn back on itself; the next state is drawn
from the whole trajectory with weights exp(−H). The tree building lives in
:mod:`~approxpost.methods.nuts_tree`; this module holds the settings, the
state, and Stan's windowed warm-up of ε and a diagonal mass matrix.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from .adaptation import (
    warmup_windows,
)
from .mcmc_common import MassAdaptation, MassAdaptingMCMC
from .nuts_tree import initial_step_size, nuts_trajectory

__all__ = ["NUTS", "NUTSState", "NUTSInfo", "NUTSAdaptation", "MAX_TREE_DEPTH"]

MAX_TREE_DEPTH = 20
"""Largest ``max_tree_depth`` accepted: 2^20 leapfrog steps an iteration is already far past useful."""


class NUTSState(NamedTuple):
    """Every chain's position (n_chains, D), log joint (n_chains,) and its gradient, plus ε and M⁻¹ (D,)."""

    position: np.ndarray
    log_joint: np.ndarray
    grad: np.ndarray
    step_size: float
    inv_mass: np.ndarray


class NUTSInfo(NamedTuple):
    """One iteration, per chain: log joint, acceptance statistic, divergence, tree depth, leapfrog steps; ε; batch steps.

    ``n_steps`` is how many leapfrog steps the lockstep batch took (the
    largest ``n_leapfrog``): every chain's row is evaluated at each of them.
    """

    log_joint: np.ndarray
    accept_prob: np.ndarray
    step_size: float
    diverging: np.ndarray
    tree_depth: np.ndarray
    n_leapfrog: np.ndarray
    n_steps: int


NUTSAdaptation = MassAdaptation  # the name NUTS has always exported


@dataclasses.dataclass(frozen=True)
class NUTS(MassAdaptingMCMC):
    """The No-U-Turn sampler (multinomial, generalised U-turn criterion, as in Stan).

    Parameters
    ----------
    n_samples
        Draws kept per chain after warm-up.
    n_warmup
        Warm-up iterations per chain (adaptation; discarded).
    n_chains
        Chains run side by side; their trees grow in lockstep.
    target_accept
        δ, the mean acceptance statistic dual averaging aims at.
    max_tree_depth
        Most doublings per iteration (at most 2^depth − 1 leapfrog steps).
    step_size
        ε to start from; with ``adapt_step_size`` and a warm-up, Stan's
        heuristic first doubles or halves it until one leapfrog step's
        acceptance crosses 0.8.
    adapt_step_size
        Tune ε during warm-up by dual averaging.
    adapt_mass_matrix
        Estimate a diagonal M⁻¹ in Stan's doubling windows (needs n_warmup ≥ 20).

    Notes
    -----
    Warm-up (Stan's): dual averaging throughout; after an initial buffer of
    75 iterations, windows of 25, 50, 100, … iterations each estimate the
    variance of every coordinate (pooled over chains) which becomes M⁻¹ at
    the window's end, and ε's dual averaging restarts; a final buffer of 50
    re-tunes ε for the last metric (:func:`~approxpost.methods.adaptation.warmup_windows`).

    Divergences (an energy error > 1000 at some leaf) end that chain's tree
    and are counted, never raised. ``fit`` returns a ``SamplePosterior`` with
    ``diagnostics`` ``acceptance_rate``, ``divergences``, ``ess``, ``rhat``,
    ``step_size``, ``mean_tree_depth``, ``mean_leapfrog``, ``max_depth_rate``
    (fraction of transitions that hit ``max_tree_depth``) and
    ``lockstep_waste``: the fraction of the batch's gradient evaluations
    spent on chains whose tree had already finished, 1 − Σ n_leapfrog /
    (n_chains Σ n_steps), post warm-up.

    References
    ----------
    Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: adaptively
        setting path lengths in Hamiltonian Monte Carlo. *JMLR* 15, 1593–1623.
    Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte
        Carlo. arXiv:1701.02434.
    Stan Development Team (2024). *Stan Reference Manual*, "MCMC sampling"
        (NUTS, warm-up windows).
    """

    n_samples: int = 1000
    n_warmup: int = 1000
    n_chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10
    step_size: float = 1.0
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True

    def validate(self) -> None:
        super().validate()
        check.count("max_tree_depth", self.max_tree_depth)
        if self.max_tree_depth > MAX_TREE_DEPTH:
            raise ValueError(f"max_tree_depth must be at most {MAX_TREE_DEPTH}, got {self.max_tree_depth!r}")
        check.flag("adapt_mass_matrix", self.adapt_mass_matrix)

    @property
    def evals_per_chain_step(self) -> int:
        """The most an iteration can cost per chain: a full tree (so a budget is never overrun)."""
        return 2 ** int(self.max_tree_depth) - 1

    @property
    def mass_windows(self) -> list:
        """Warm-up windows [start, stop) whose draws estimate M⁻¹ (empty when not adapting it)."""
        return warmup_windows(int(self.n_warmup)) if self.adapt_mass_matrix else []

    def init(self, model, position, rng: np.random.Generator) -> NUTSState:
        """Every chain at ``position`` (n_chains, D) or (D,), with log joint, gradient, M⁻¹ = I and a starting ε."""
        position = self.chain_positions(model, position)
        with np.errstate(all="ignore"):
            log_joint, grad = model.log_joint_and_grad(position)
        log_joint = np.asarray(log_joint, dtype=np.float64)
        self.check_finite_start(
            np.isfinite(log_joint) & np.all(np.isfinite(grad), axis=1), position, "log density or its gradient"
        )
        inv_mass, step_size = np.ones(model.dim), float(self.step_size)
        if self.adapt_step_size and self.n_warmup > 0:
            step_size = initial_step_size(model.log_joint_and_grad, position, log_joint, grad, inv_mass, step_size, rng)
        return NUTSState(position, log_joint, grad, step_size, inv_mass)

    def step(self, model, state: NUTSState, rng: np.random.Generator) -> tuple:
        """One NUTS transition for every chain at once."""
        momentum = rng.standard_normal(state.position.shape) / np.sqrt(state.inv_mass)
        out = nuts_trajectory(
            model.log_joint_and_grad,
            state.position,
            state.log_joint,
            state.grad,
            momentum,
            state.step_size,
            state.inv_mass,
            int(self.max_tree_depth),
            rng,
        )
        new_state = state._replace(position=out.position, log_joint=out.log_joint, grad=out.grad)
        info = NUTSInfo(
            out.log_joint, out.accept_prob, state.step_size, out.diverging, out.tree_depth, out.n_leapfrog, out.n_steps
        )
        return new_state, info

    def extra_diagnostics(self, infos: list) -> dict:
        depth = np.stack([info.tree_depth for info in infos])
        n_leapfrog = np.stack([info.n_leapfrog for info in infos])
        batch_steps = sum(int(info.n_steps) for info in infos)
        return {
            "divergences": int(sum(int(np.sum(info.diverging)) for info in infos)),
            "step_size": float(infos[0].step_size),
            "mean_tree_depth": float(depth.mean()),
            "mean_leapfrog": float(n_leapfrog.mean()),
            "max_depth_rate": float(np.mean(depth >= int(self.max_tree_depth))),
            "lockstep_waste": float(1.0 - n_leapfrog.sum() / max(n_leapfrog.shape[1] * batch_steps, 1)),
        }
