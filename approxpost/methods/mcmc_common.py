"""What the MCMC methods (Metropolis, HMC) share: settings checks, starting points, step-size warm-up, result.

Both run ``n_chains`` chains side by side as one (n_chains, D) array, adapt
one shared step size by dual averaging during warm-up, keep every
post-warm-up position and turn them into a
:class:`~approxpost.posteriors.SamplePosterior` of shape
(n_chains, n_samples, D).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from ..posteriors import SamplePosterior
from .adaptation import (
    DualAveraging,
    Welford,
    dual_averaging_init,
    dual_averaging_update,
    welford_init,
    welford_update,
    welford_variance,
)
from .base import Method

__all__ = ["MCMCMethod", "MassAdaptingMCMC", "MassAdaptation", "MIN_DRAWS"]

MIN_DRAWS = 4
"""Fewest kept draws per chain: split R-hat and ESS cut each chain in halves."""


@dataclasses.dataclass(frozen=True)
class MCMCMethod(Method):
    """Base of the samplers: settings checks, starting points, step-size warm-up, posterior.

    A subclass has the fields ``step_size``, ``n_samples``, ``n_warmup``,
    ``n_chains``, ``adapt_step_size`` and ``target_accept``, and writes
    ``init`` and ``step`` (whose state has ``position`` (n_chains, D) and
    ``step_size``, whose info has ``accept_prob``); it may override
    ``evals_per_chain_step`` and ``extra_diagnostics``.
    """

    def validate(self) -> None:
        check.positive("step_size", self.step_size)
        check.count("n_samples", self.n_samples, MIN_DRAWS, "R-hat and ESS split each chain in halves")
        check.count("n_chains", self.n_chains)
        check.count("n_warmup", self.n_warmup, minimum=0)
        check.flag("adapt_step_size", self.adapt_step_size)
        check.probability("target_accept", self.target_accept)

    @property
    def n_warmup_steps(self) -> int:
        return int(self.n_warmup)

    @property
    def n_main_steps(self) -> int:
        return int(self.n_samples)

    @property
    def evals_per_chain_step(self) -> int:
        """Model evaluations one iteration costs per chain."""
        return 1

    def evals_per_step(self, model) -> int:
        return int(self.n_chains) * self.evals_per_chain_step

    def with_budget(self, n_evals: int) -> MCMCMethod:
        """A copy whose run (start, warm-up and draws) costs about ``n_evals`` model evaluations.

        The iterations left after the n_chains evaluations of the start are
        split between warm-up and draws in the current proportion.
        """
        per_step = self.evals_per_step(None)
        smallest = int(self.n_chains) + per_step * (MIN_DRAWS + (1 if self.n_warmup else 0))
        why = f"the start plus {MIN_DRAWS} draws at {per_step} evaluations an iteration"
        n_evals = check.count("n_evals", n_evals, smallest, why)
        n_steps = (n_evals - int(self.n_chains)) // per_step
        n_warmup = int(round(n_steps * self.n_warmup / (self.n_warmup + self.n_samples)))
        n_warmup = min(n_warmup, n_steps - MIN_DRAWS)
        return dataclasses.replace(self, n_warmup=n_warmup, n_samples=n_steps - n_warmup)

    def chain_positions(self, model, position) -> np.ndarray:
        """``position`` as a float (n_chains, D) array; a (D,) point is copied to every chain."""
        shape = np.shape(position)
        position = np.array(position, dtype=np.float64)  # a copy: the caller's array is never touched
        if position.shape == (model.dim,):
            return np.tile(position, (int(self.n_chains), 1))
        if position.shape != (int(self.n_chains), model.dim):
            raise ValueError(
                f"init must have shape (D,) = ({model.dim},) or (n_chains, D) = ({self.n_chains}, {model.dim}), got {shape}"
            )
        return position

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """(n_chains, D) starting points: ``init`` (broadcast if (D,)), else ``model.init(rng, n_chains)``."""
        if init is None:
            return np.asarray(model.init(rng, int(self.n_chains)), dtype=np.float64)
        return self.chain_positions(model, init)

    @staticmethod
    def check_finite_start(finite: np.ndarray, position: np.ndarray, what: str = "log density") -> None:
        """Raise ``ValueError`` naming the chains whose start is not ``finite`` (a (n_chains,) mask)."""
        bad = np.flatnonzero(~finite)
        if bad.size:
            raise ValueError(
                f"the {what} is not finite at the starting point of chains {bad.tolist()} "
                f"(position has shape {position.shape}): pass a different init"
            )

    # --- step-size warm-up ------------------------------------------------

    def start_warmup(self, model, state) -> DualAveraging | None:
        return dual_averaging_init(state.step_size) if self.adapt_step_size else None

    def adapt(self, model, state, info, adaptation: DualAveraging | None, iteration: int) -> tuple:
        """Dual averaging on the chains' mean acceptance probability; the state gets the new iterate."""
        if adaptation is None:
            return state, adaptation
        adaptation = dual_averaging_update(adaptation, info.accept_prob, self.target_accept)
        return state._replace(step_size=float(np.exp(adaptation.log_step_size))), adaptation

    def end_warmup(self, model, state, adaptation: DualAveraging | None):
        """Fix the step size at the averaged iterate ε̄ (less noisy than the last one)."""
        if adaptation is None:
            return state
        return state._replace(step_size=float(np.exp(adaptation.log_step_size_avg)))

    # --- result -------------------------------------------------------------

    def keep(self, model, state, info) -> tuple:
        return state.position, info

    def extra_diagnostics(self, infos: list) -> dict:
        """Diagnostics beyond ``acceptance_rate`` from the kept iterations' infos."""
        return {}

    def build_posterior(self, model, state, kept: list, history: dict) -> SamplePosterior:
        """``SamplePosterior`` of the kept draws (n_chains, n_kept, D); ESS and R-hat filled by it."""
        if len(kept) < MIN_DRAWS:
            raise ValueError(
                f"only {len(kept)} draws per chain were kept (fit stopped early?): at least {MIN_DRAWS} are needed for a posterior"
            )
        # one C-level stack, then chains first (np.stack(axis=1) and a mean per iteration cost ~8 µs an iteration;
        # each row's mean of a C-ordered stack is the same sum as np.mean of that iteration's array)
        draws = np.ascontiguousarray(np.array([position for position, _ in kept]).swapaxes(0, 1))
        infos = [info for _, info in kept]
        acceptance = np.array([info.accept_prob for info in infos], dtype=np.float64).mean(axis=1).mean()
        diagnostics = {"acceptance_rate": float(acceptance), **self.extra_diagnostics(infos)}
        return SamplePosterior(draws, diagnostics=diagnostics)


class MassAdaptation(NamedTuple):
    """Warm-up state: dual averaging of ε (``None`` when off) and the current window's variance (``None`` when off)."""

    step_size: DualAveraging | None
    variance: Welford | None


class MassAdaptingMCMC(MCMCMethod):
    """A gradient sampler (HMC, NUTS) that also learns a diagonal M⁻¹ in warm-up windows.

    A subclass lists the windows [start, stop) in ``mass_windows`` (empty
    when not adapting M⁻¹). In each window the draws' variance is
    accumulated; at its end it becomes M⁻¹ and dual averaging restarts from
    the current ε, which was tuned for the old metric.
    """

    @property
    def mass_windows(self) -> list:
        return []

    def start_warmup(self, model, state) -> MassAdaptation:
        variance = welford_init(state.position.shape[1]) if self.mass_windows else None
        return MassAdaptation(super().start_warmup(model, state), variance)

    def adapt(self, model, state, info, adaptation: MassAdaptation, iteration: int) -> tuple:
        """Dual averaging every iteration; inside a window accumulate draws, at its end set M⁻¹ and restart."""
        state, step_adaptation = super().adapt(model, state, info, adaptation.step_size, iteration)
        variance = adaptation.variance
        for start, stop in self.mass_windows:
            if start <= iteration < stop:
                variance = welford_update(variance, state.position)
                if iteration == stop - 1:
                    state = state._replace(inv_mass=welford_variance(variance))
                    variance = welford_init(state.position.shape[1])
                    if step_adaptation is not None:
                        step_adaptation = dual_averaging_init(state.step_size)
        return state, MassAdaptation(step_adaptation, variance)

    def end_warmup(self, model, state, adaptation: MassAdaptation):
        return super().end_warmup(model, state, adaptation.step_size)
