"""The ``Method`` base: settings as a frozen dataclass, and the one ``fit`` driver.

A method is a frozen dataclass of settings plus two functions a student can
call one step at a time::

    state = method.init(model, position, rng)
    state, info = method.step(model, state, rng)

``fit`` (written once, here) owns everything around that loop: turning the
seed into a Generator, choosing and checking the starting point, warm-up
(adaptation hooks), timing, counting model evaluations into ``Cost``, the
progress bar, stacking each step's ``Info`` into ``history`` and handing the
kept states to the method to build its ``Posterior``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import autodiff as ad
from .._rng import as_generator
from ..posteriors import Cost, Posterior

__all__ = ["Method", "CostCounter", "check_positive", "check_probability", "stack_infos"]


def check_positive(name: str, value, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive finite number (an int when ``integer``)."""
    if integer:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_probability(name: str, value) -> None:
    """Raise ``ValueError`` unless 0 < value < 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (0.0 < value < 1.0)
    ):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def _rows(theta) -> int:
    shape = np.shape(theta.value if isinstance(theta, ad.Var) else theta)
    return int(shape[0]) if len(shape) == 2 else 1


class CostCounter:
    """A model wrapper that counts evaluations, delegating everything else to the model.

    A call with a ``Var`` θ is counted as a gradient evaluation (the caller
    is about to differentiate through it), a call with an array as a density
    evaluation; each row of a batched θ counts once. Methods that evaluate
    the model some other way (e.g. sampled pre-activations) report with
    :meth:`record`.
    """

    def __init__(self, model):
        self.model = model
        self.grad_evals = 0
        self.density_evals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def record(self, grad_evals: int = 0, density_evals: int = 0) -> None:
        """Add evaluations made without going through this wrapper."""
        self.grad_evals += int(grad_evals)
        self.density_evals += int(density_evals)

    def _count(self, theta) -> None:
        if isinstance(theta, ad.Var):
            self.grad_evals += _rows(theta)
        else:
            self.density_evals += _rows(theta)

    def log_joint(self, theta, idx=None):
        self._count(theta)
        return self.model.log_joint(theta, idx)

    def log_likelihood(self, theta, idx=None):
        self._count(theta)
        return self.model.log_likelihood(theta, idx)

    def log_joint_and_grad(self, theta, idx=None):
        self.grad_evals += _rows(theta)
        return self.model.log_joint_and_grad(theta, idx)


def stack_infos(infos: list) -> dict:
    """Per-iteration ``Info`` NamedTuples -> dict of arrays with a leading iteration axis."""
    if not infos:
        return {}
    return {
        name: np.stack([np.asarray(getattr(info, name), dtype=np.float64) for info in infos])
        for name in infos[0]._fields
    }


@dataclasses.dataclass(frozen=True)
class Method:
    """Base of every method: subclasses are frozen dataclasses of settings.

    Subclasses write ``init``, ``step`` and ``build_posterior``, and may
    override the warm-up hooks and ``initial_position``. ``fit`` is shared.
    """

    def __post_init__(self):
        self.validate()

    # --- what a subclass provides -------------------------------------------

    def validate(self) -> None:
        """Check the settings; raise ``ValueError`` naming the bad one."""

    @property
    def n_warmup_steps(self) -> int:
        """Iterations of warm-up (adaptation) before the kept iterations."""
        return 0

    @property
    def n_main_steps(self) -> int:
        """Iterations after warm-up whose states are kept."""
        raise TypeError(f"{type(self).__name__} must define n_main_steps")

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting point(s) handed to ``init``: ``init`` if given, else ``model.init``."""
        return model.init(rng, 1) if init is None else np.asarray(init, dtype=np.float64)

    def init(self, model, position, rng: np.random.Generator):
        """The first ``State`` at ``position``."""
        raise TypeError(f"{type(self).__name__} must define init(model, position, rng)")

    def step(self, model, state, rng: np.random.Generator):
        """One iteration: ``(State, Info)``."""
        raise TypeError(f"{type(self).__name__} must define step(model, state, rng)")

    def start_warmup(self, model, state):
        """The adaptation state at the start of warm-up (``None``: nothing to adapt)."""
        return None

    def adapt(self, adaptation, state, info, iteration: int) -> tuple:
        """Update the adaptation after warm-up step ``iteration``: ``(adaptation, state)``."""
        return adaptation, state

    def end_warmup(self, adaptation, state, model):
        """The state to start the kept iterations from, with adapted settings fixed."""
        return state

    def keep(self, state, info):
        """What to store from each kept iteration (default: nothing)."""
        return None

    def build_posterior(self, model, state, kept: list, history: dict) -> Posterior:
        """The ``Posterior`` from the final state and the kept values."""
        raise TypeError(f"{type(self).__name__} must define build_posterior")

    def grad_evals_per_step(self, model) -> int:
        """Model evaluations one iteration costs (gradient ones where the method uses them)."""
        raise TypeError(f"{type(self).__name__} must define grad_evals_per_step")

    def with_budget(self, grad_evals: int) -> Method:
        """A copy whose whole run costs about ``grad_evals`` model evaluations."""
        raise TypeError(f"{type(self).__name__} must define with_budget")

    # --- shared -------------------------------------------------------------

    @property
    def settings(self) -> dict:
        """The method's name and settings as plain JSON-able values."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (bool, int, float, str)) or value is None:
                values[field.name] = value
            else:  # a proposal distribution or similar object: record what it is
                values[field.name] = repr(value)
        return {"method": type(self).__name__, **values}

    def check_start(self, model, position: np.ndarray) -> None:
        """Raise ``ValueError`` if the log density is not finite at every starting point."""
        log_density = np.atleast_1d(model.log_joint(position))
        if not np.all(np.isfinite(log_density)):
            bad = np.flatnonzero(~np.isfinite(log_density))
            raise ValueError(
                f"the log density is not finite at the starting point(s) {bad.tolist()} "
                f"(init has shape {np.shape(position)}): log_joint = {log_density[bad].tolist()}; pass a different init"
            )

    def fit(
        self, model, *, seed=None, init=None, progress: bool = False, callback: Callable | None = None
    ) -> Posterior:
        """Run the method on ``model`` and return its posterior approximation.

        Parameters
        ----------
        model
            An ``approxpost.models.Model``.
        seed
            int, Generator or None; every random choice flows from it.
        init
            Starting point(s); the shape the method expects (see its docs).
        progress
            Show a tqdm progress bar.
        callback
            ``callback(iteration, state, info)`` after every step; return
            ``True`` to stop early.

        Returns
        -------
        Posterior
            With ``history`` (per-iteration ``Info`` arrays, warm-up included,
            marked by ``history["warmup"]``), ``cost`` and ``settings`` set.
        """
        rng = as_generator(seed)
        position = self.initial_position(model, init, rng)
        self.check_start(model, position)
        counter = CostCounter(model)
        start = time.perf_counter()
        state = self.init(counter, position, rng)
        adaptation = self.start_warmup(counter, state)
        infos, warmup_flags, kept = [], [], []
        n_warmup, n_total = self.n_warmup_steps, self.n_warmup_steps + self.n_main_steps
        bar = tqdm(total=n_total, desc=type(self).__name__, disable=not progress, leave=False, mininterval=0.5)
        try:
            for iteration in range(n_total):
                if iteration == n_warmup and n_warmup > 0:
                    state = self.end_warmup(adaptation, state, counter)
                state, info = self.step(counter, state, rng)
                if iteration < n_warmup:
                    adaptation, state = self.adapt(adaptation, state, info, iteration)
                else:
                    kept.append(self.keep(state, info))
                infos.append(info)
                warmup_flags.append(iteration < n_warmup)
                bar.update(1)
                if callback is not None and callback(iteration, state, info) is True:
                    break
        finally:
            bar.close()
        # the clock stops here: diagnostics computed while building the posterior
        # (ESS of every coordinate, a final ELBO) are not part of the method's cost
        seconds = time.perf_counter() - start
        history = stack_infos(infos)
        if history:
            history["warmup"] = np.asarray(warmup_flags, dtype=bool)
        posterior = self.build_posterior(counter, state, kept, history)
        posterior.model = model
        posterior.history = history
        posterior.settings = self.settings
        posterior.cost = Cost(counter.grad_evals, counter.density_evals, seconds)
        return posterior
