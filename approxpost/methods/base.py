"""The ``Method`` base: settings as a frozen dataclass, and the one ``fit`` driver.

How to write a method
---------------------
A method is a frozen dataclass of settings (subclass :class:`Method`) with
``State``/``Info`` NamedTuples. It writes these hooks (``abc.abstractmethod``:
the class cannot be built without them), every one taking ``model`` first::

    n_main_steps                                   # property: kept iterations
    evals_per_step(model) -> int                   # its cost: model evaluations one step makes
    with_budget(n_evals) -> Method                 # a copy whose whole run costs about n_evals evaluations
    init(model, position, rng) -> State
    step(model, state, rng) -> (State, Info)
    build_posterior(model, state, kept, history) -> Posterior

and may override (defaults in brackets)::

    validate()                                     # check settings with approxpost._validate [nothing]
    n_warmup_steps                                 # property [0]
    initial_position(model, init, rng)             # [init, else model.init(rng, 1)]
    start_warmup(model, state) -> adaptation       # [None]
    adapt(model, state, info, adaptation, iteration) -> (state, adaptation)   # [unchanged]
    end_warmup(model, state, adaptation) -> state  # [state]
    keep(model, state, info) -> value stored for build_posterior   # [None]
    uncounted_evals_per_step(model) -> (grad_evals, density_evals)   # [(0, 0)]
    uncounted_evals(model, state, new_state, info) -> (grad_evals, density_evals)
                                                   # [uncounted_evals_per_step(model)]

Cost. ``fit`` hands ``step`` a model that counts its own evaluations: every
row of θ passed to ``model.log_joint`` / ``log_likelihood`` counts once (a
gradient evaluation if θ is an ``ad.Var`` or through ``log_joint_and_grad`` or
``mean_log_likelihood_vjp``, else a density evaluation; ``log_prior`` alone is
not counted, nor is fit's start check). A method never sees the counter. It declares its
cost per step with ``evals_per_step`` (what ``with_budget`` divides the budget
by); a step that evaluates the model some way the counter cannot see (e.g.
sampled pre-activations) also declares those with ``uncounted_evals_per_step``,
which ``fit`` adds after every step. A step whose hidden cost depends on where
the run is (Laplace's GGN Jacobian runs only in its Newton steps) overrides
``uncounted_evals`` instead: it sees the state the step started from, the one
it returned and its ``Info``, and says what that step made. A method with no starting point sets
``needs_start = False``: ``fit`` then refuses an ``init``, skips the start
check and calls ``init(model, None, rng)``.

Settings are checked in ``validate`` with :mod:`approxpost._validate`
(``check.count``, ``check.positive``, ``check.flag``, ...). Samplers can
subclass ``mcmc_common.MCMCMethod`` (chains, step-size warm-up, budget,
``SamplePosterior``) and mean-field VI methods ``vi_common.VIMethod``.

Teaching use, one step at a time::

    state = method.init(model, position, rng)
    state, info = method.step(model, state, rng)

``fit`` (written once, here) owns everything around that loop: turning the
seed into a Generator, choosing and checking the starting point, warm-up
(adaptation hooks), timing, counting model evaluations into ``Cost``, the
progress bar, stacking each step's ``Info`` into ``history`` and handing the
kept states to the method to build its ``Posterior``.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from .. import autodiff as ad
from .._rng import as_generator
from ..posteriors import Cost, Posterior

__all__ = ["Method", "CostCounter", "stack_infos"]


def _rows(theta) -> int:
    # called on every model evaluation in fit: an array's own shape is the cheap path (np.shape costs ~0.3 µs more)
    if type(theta) is np.ndarray:
        return theta.shape[0] if theta.ndim == 2 else 1
    shape = np.shape(theta.value if isinstance(theta, ad.Var) else theta)
    return int(shape[0]) if len(shape) == 2 else 1


class CostCounter:
    """Counts a model's evaluations; :meth:`counted` gives the model copy that reports here.

    A call with a ``Var`` θ is counted as a gradient evaluation (the caller
    is about to differentiate through it), a call with an array as a density
    evaluation; each row of a batched θ counts once.
    """

    def __init__(self):
        self.grad_evals = 0
        self.density_evals = 0

    def add(self, grad_evals: int = 0, density_evals: int = 0) -> None:
        """Add evaluations made without going through the counted model (declared by the method)."""
        self.grad_evals += int(grad_evals)
        self.density_evals += int(density_evals)

    def _count(self, theta) -> None:
        if isinstance(theta, ad.Var):
            self.grad_evals += _rows(theta)
        else:
            self.density_evals += _rows(theta)

    def counted(self, model):
        """A shallow copy of ``model`` (same class, same data) whose evaluation methods count here.

        It is the user's class, so ``isinstance`` and ``type`` checks see the
        user's model; its evaluation methods call the original model's, so a
        ``log_joint`` that calls ``log_likelihood`` inside counts once.
        """
        proxy = copy.copy(model)

        def log_joint(theta, idx=None):
            self._count(theta)
            return model.log_joint(theta, idx)

        def log_likelihood(theta, idx=None):
            self._count(theta)
            return model.log_likelihood(theta, idx)

        model_log_joint_and_grad = model.log_joint_and_grad  # looked up once: HMC calls this every leapfrog step

        def log_joint_and_grad(theta, idx=None):
            # a sampler's (n_chains, D) array is counted inline: a call of _rows fewer every leapfrog step
            self.grad_evals += theta.shape[0] if type(theta) is np.ndarray and theta.ndim == 2 else _rows(theta)
            return model_log_joint_and_grad(theta, idx)

        def mean_log_likelihood_vjp(theta, idx=None, with_prior=False):
            # one gradient evaluation a row, as the log_likelihood(Var) it differentiates (the prior is not counted)
            self.grad_evals += _rows(theta)
            return model.mean_log_likelihood_vjp(theta, idx, with_prior)

        proxy.log_joint, proxy.log_likelihood, proxy.log_joint_and_grad = log_joint, log_likelihood, log_joint_and_grad
        proxy.mean_log_likelihood_vjp = mean_log_likelihood_vjp
        return proxy


def stack_infos(infos: list) -> dict:
    """Per-iteration ``Info`` NamedTuples -> dict of arrays with a leading iteration axis."""
    if not infos:
        return {}
    # one np.array over each field's values (floats, or equal-shape arrays such as per-chain values): the
    # same array as stacking them one by one, which cost more than a small model's step (~3 µs an Info)
    return {name: np.array([getattr(info, name) for info in infos], dtype=np.float64) for name in infos[0]._fields}


@dataclasses.dataclass(frozen=True)
class Method(abc.ABC):
    """Base of every method: subclasses are frozen dataclasses of settings (see the module docstring)."""

    needs_start: ClassVar[bool] = True
    """False for a method with no starting point (importance sampling): ``fit`` then takes no ``init``."""

    def __post_init__(self):
        self.validate()

    # --- what a subclass provides -------------------------------------------

    def validate(self) -> None:  # noqa: B027 (optional hook: a method with nothing to check leaves it)
        """Check the settings; raise ``ValueError`` naming the bad one."""

    @property
    def n_warmup_steps(self) -> int:
        """Iterations of warm-up (adaptation) before the kept iterations."""
        return 0

    @property
    @abc.abstractmethod
    def n_main_steps(self) -> int:
        """Iterations after warm-up whose states are kept."""

    @abc.abstractmethod
    def evals_per_step(self, model) -> int:
        """Model evaluations one iteration costs (a gradient evaluation counts as one)."""

    @abc.abstractmethod
    def with_budget(self, n_evals: int) -> Method:
        """A copy whose whole run costs about ``n_evals`` model evaluations."""

    def uncounted_evals_per_step(self, model) -> tuple:
        """``(grad_evals, density_evals)`` a step makes without calling the model's evaluation methods."""
        return 0, 0

    def uncounted_evals(self, model, state, new_state, info) -> tuple:
        """``(grad_evals, density_evals)`` that one step (``state`` -> ``new_state``, ``info``) made uncounted.

        ``fit`` adds it after every step. The default is the fixed
        ``uncounted_evals_per_step(model)``; override it when the hidden cost
        differs from step to step.
        """
        return self.uncounted_evals_per_step(model)

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting point(s) handed to ``init``: ``init`` if given, else ``model.init``."""
        return model.init(rng, 1) if init is None else np.asarray(init, dtype=np.float64)

    @abc.abstractmethod
    def init(self, model, position, rng: np.random.Generator):
        """The first ``State`` at ``position`` (``None`` when ``needs_start`` is False)."""

    @abc.abstractmethod
    def step(self, model, state, rng: np.random.Generator):
        """One iteration: ``(State, Info)``."""

    def start_warmup(self, model, state):
        """The adaptation state at the start of warm-up (``None``: nothing to adapt)."""
        return None

    def adapt(self, model, state, info, adaptation, iteration: int) -> tuple:
        """Update the adaptation after warm-up step ``iteration``: ``(state, adaptation)``."""
        return state, adaptation

    def end_warmup(self, model, state, adaptation):
        """The state to start the kept iterations from, with adapted settings fixed."""
        return state

    def keep(self, model, state, info):
        """What to store from each kept iteration (default: nothing)."""
        return None

    @abc.abstractmethod
    def build_posterior(self, model, state, kept: list, history: dict) -> Posterior:
        """The ``Posterior`` from the final state and the kept values."""

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
            Refused by a method with ``needs_start = False``.
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
        ad.ensure_malloc_tuned()
        rng = as_generator(seed)
        if self.needs_start:
            position = self.initial_position(model, init, rng)
            self.check_start(model, position)
        elif init is not None:
            raise ValueError(f"{type(self).__name__} takes no init (got shape {np.shape(init)})")
        else:
            position = None
        counter = CostCounter()
        counted = counter.counted(model)
        start = time.perf_counter()
        state = self.init(counted, position, rng)
        adaptation = self.start_warmup(counted, state)
        infos, kept = [], []
        n_warmup, n_total = self.n_warmup_steps, self.n_warmup_steps + self.n_main_steps
        # the default uncounted_evals is the fixed uncounted_evals_per_step: asked once, added for every step at the end
        varies = type(self).uncounted_evals is not Method.uncounted_evals
        bar = tqdm(total=n_total, desc=type(self).__name__, disable=not progress, leave=False, mininterval=0.5)
        try:
            for iteration in range(n_total):
                if iteration == n_warmup and n_warmup > 0:
                    state = self.end_warmup(counted, state, adaptation)
                previous = state
                state, info = self.step(counted, state, rng)
                if varies:
                    counter.add(*self.uncounted_evals(model, previous, state, info))
                if iteration < n_warmup:
                    state, adaptation = self.adapt(counted, state, info, adaptation, iteration)
                else:
                    kept.append(self.keep(counted, state, info))
                infos.append(info)
                if progress:  # a disabled bar's update is a call for nothing
                    bar.update(1)
                if callback is not None and callback(iteration, state, info) is True:
                    break
        finally:
            bar.close()
        if not varies:
            grad_evals, density_evals = self.uncounted_evals_per_step(model)
            counter.add(len(infos) * grad_evals, len(infos) * density_evals)
        # the clock and the counter stop here: diagnostics computed while building the posterior (a final
        # ELBO) or when first read (a SamplePosterior's ESS and R-hat) are not part of the method's cost
        seconds = time.perf_counter() - start
        cost = Cost(counter.grad_evals, counter.density_evals, seconds)
        history = stack_infos(infos)
        if history:
            history["warmup"] = np.arange(len(infos)) < n_warmup  # the iterations run, warm-up first
        posterior = self.build_posterior(model, state, kept, history)
        posterior.model = model
        posterior.history = history
        posterior.settings = self.settings
        posterior.cost = cost
        return posterior
