"""What the optimisation methods (MAP, deep ensembles, MC dropout) share: settings, minibatches, Adam.

Each climbs log p(θ, D) (or a randomised version of it) with Adam, on the
full data or on minibatches that visit the data in a fresh random order each
epoch; the model rescales a minibatch's log likelihood to the full data.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from ..optim import Adam, AdamState
from .base import Method
from .vi_common import model_name

__all__ = ["OptimizerMethod", "PointState", "check_finite_gradient"]


class PointState(NamedTuple):
    """θ ((D,) or (M, D) for M members), Adam's state, and the epoch: its data ``order`` and ``batch_start``."""

    theta: np.ndarray
    opt_state: AdamState
    order: np.ndarray
    batch_start: int


def check_finite_gradient(value, gradient, learning_rate: float) -> None:
    """Raise ``ValueError`` if a step's objective or gradient is not finite (instead of a NaN θ later)."""
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))):
        raise ValueError(
            f"the log density or its gradient is not finite: θ has moved where log p(θ, D) cannot be "
            f"evaluated; try a smaller learning_rate (now {learning_rate}) or another init"
        )


@dataclasses.dataclass(frozen=True)
class OptimizerMethod(Method):
    """Base of the Adam-on-log p(θ, D) methods; a subclass has ``n_steps``, ``learning_rate``, ``batch_size``."""

    def validate(self) -> None:
        check.count("n_steps", self.n_steps)
        check.positive("learning_rate", self.learning_rate)
        check.optional(check.count, "batch_size", self.batch_size)

    @property
    def n_main_steps(self) -> int:
        return self.n_steps

    @property
    def optimizer(self) -> Adam:
        """Adam at ``learning_rate`` (default moments); it minimises, so steps are given −∇ log p."""
        return Adam(learning_rate=self.learning_rate)

    def check_batch_size(self, model) -> None:
        """Raise ``ValueError`` if ``batch_size`` is set for a model without data, or exceeds its data."""
        if self.batch_size is None:
            return
        if model.n_data is None:
            raise ValueError(
                f"batch_size={self.batch_size} needs a model with data, but {model_name(model)} has n_data=None"
            )
        if self.batch_size > model.n_data:
            raise ValueError(f"batch_size={self.batch_size} exceeds the number of data points n_data={model.n_data}")

    def start(self, model, theta) -> PointState:
        """The first state at ``theta`` (copied): fresh Adam moments, no epoch started."""
        self.check_batch_size(model)
        theta = np.array(theta, dtype=np.float64, copy=True)
        return PointState(theta, self.optimizer.init((theta,)), np.empty(0, dtype=np.intp), 0)

    def next_batch(self, model, state: PointState, rng: np.random.Generator) -> tuple:
        """``(idx, order, batch_start)``: the next minibatch (None: all data), a new epoch when one is used up."""
        if self.batch_size is None:
            return None, state.order, state.batch_start
        order, start = state.order, state.batch_start
        if start >= order.size:
            order, start = rng.permutation(model.n_data), 0
        return order[start : start + self.batch_size], order, start + self.batch_size

    def ascend(self, state: PointState, gradient: np.ndarray, order, batch_start) -> PointState:
        """One Adam step up ``gradient`` (of the objective to maximise), elementwise over every row of θ."""
        (theta,), opt_state = self.optimizer.update((state.theta,), (-gradient,), state.opt_state)
        return PointState(theta, opt_state, order, batch_start)

    def with_budget(self, n_evals: int) -> OptimizerMethod:
        """A copy with ``n_steps = n_evals // evals_per_step`` (which here does not depend on the model)."""
        per_step = self.evals_per_step(None)
        n_evals = check.count("n_evals", n_evals, per_step, f"{per_step} evaluations are one step's cost")
        return dataclasses.replace(self, n_steps=n_evals // per_step)
