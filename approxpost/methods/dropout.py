"""MC dropout: train with dropout on the hidden units, keep it on at prediction time.

Dropping hidden unit j multiplies its activation by 0, which is the same as
zeroing every weight leaving j; keeping it multiplies them by 1/(1 − p). So a
dropout mask is a weight vector θ ⊙ r, and training, sampling and predicting
all run through the model's ordinary batched pass on those vectors (masks are
a leading batch axis). The posterior is a
:class:`~approxpost.weight_posteriors.DropoutPosterior` over weight vectors.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from .. import autodiff as ad
from ..weight_posteriors import DropoutPosterior, dropout_multipliers
from .point_common import OptimizerMethod, PointState, check_finite_gradient
from .vi_common import model_name

__all__ = ["MCDropout", "DropoutInfo", "hidden_units"]


def hidden_units(net) -> np.ndarray:
    """Which hidden unit each weight of ``net`` leaves: (D,) integers, −1 for weights no hidden unit feeds.

    The units are the outputs of every layer but the last, numbered layer by
    layer: a dense layer's out units, a convolution's output channels. The
    weights leaving unit j are those of the next layer that read it: row j of
    a dense W (in, out); the filters' input channel j, W[:, j] of a
    convolution (O, C, kh, kw); and, for the dense layer after the last
    convolution, whose input is flattened in (channel, row, column) order,
    the h·w consecutive rows of channel j. First-layer weights and all
    biases get −1. Needs ``net.slices`` as ``nn.MLP`` (and ``nn.CNN``) lay θ out.
    """
    slices = getattr(net, "slices", None)
    if not slices:
        raise ValueError(f"MCDropout needs an nn.MLP or nn.CNN (a net with slices) to find its units, got {net!r}")
    units = np.full(net.dim, -1, dtype=np.int64)
    offset, n_prev = 0, None
    for (w0, w1, shape), _ in slices:
        if n_prev is not None:
            if len(shape) == 4 and shape[1] == n_prev:  # a convolution reads input channel j on axis 1
                reads = np.broadcast_to(np.arange(n_prev)[None, :, None, None], shape)
            elif len(shape) == 2 and shape[0] % n_prev == 0:  # a dense layer: unit j feeds in/n_prev rows
                reads = np.broadcast_to(np.repeat(np.arange(n_prev), shape[0] // n_prev)[:, None], shape)
            else:
                raise ValueError(f"cannot tell which unit feeds the weights of shape {shape} in {net!r}")
            units[w0:w1] = offset + reads.ravel()  # W is stored row-major
            offset += n_prev
        n_prev = shape[0] if len(shape) == 4 else shape[1]
    if offset == 0:
        raise ValueError(f"MCDropout needs hidden units, but {net!r} has none")
    return units


class DropoutInfo(NamedTuple):
    """One step: log p(θ) + the mean over masks of log p̂(D | θ ⊙ r) (the objective), ‖∇‖."""

    objective: float
    grad_norm: float


@dataclasses.dataclass(frozen=True)
class MCDropout(OptimizerMethod):
    """MC dropout (Gal & Ghahramani 2016): dropout training with a Gaussian prior as weight decay.

    Parameters
    ----------
    p
        The probability of dropping each hidden unit, 0 < p < 1.
    n_steps
        Adam steps (one minibatch and ``n_mc`` masks each).
    learning_rate
        Adam's step size.
    batch_size
        Data points per step; ``None`` uses all of them.
    n_mc
        Dropout masks per step, evaluated in one batched pass.

    Notes
    -----
    Each step draws masks z_s ~ Bernoulli(1 − p)^U on the U hidden units and
    climbs log p(θ) + (1/S) Σ_s log p̂(D | θ ⊙ r(z_s)), where r is 1/(1 − p)
    or 0 on the weights leaving a unit and 1 elsewhere and log p̂ the
    minibatch likelihood rescaled to the full data. The log prior on the
    unmasked θ is the weight decay of Gal & Ghahramani's objective (their
    (1 − p) factor on the decay is absorbed here into the prior's scale).
    Needs a model whose ``net`` is an ``nn.MLP`` (or an ``nn.CNN``: channels are
    then the units of its convolutions). ``init`` is the starting θ
    (D,); ``history`` holds ``objective`` and ``grad_norm``.

    References
    ----------
    Srivastava, N., Hinton, G., Krizhevsky, A., Sutskever, I. and Salakhutdinov, R. (2014).
    Dropout: a simple way to prevent neural networks from overfitting. JMLR 15.
    Gal, Y. and Ghahramani, Z. (2016). Dropout as a Bayesian approximation: representing
    model uncertainty in deep learning. ICML.
    """

    p: float = 0.1
    n_steps: int = 2000
    learning_rate: float = 1e-2
    batch_size: int | None = None
    n_mc: int = 1

    def validate(self) -> None:
        super().validate()
        check.probability("p", self.p)
        check.count("n_mc", self.n_mc)

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting θ (D,): ``init`` if given, else one draw of ``model.init``."""
        if init is None:
            return np.asarray(model.init(rng, 1), dtype=np.float64)[0]
        position = np.asarray(init, dtype=np.float64)
        if position.shape != (model.dim,):
            raise ValueError(f"init is the starting θ and must have shape ({model.dim},), got {position.shape}")
        return position

    def units(self, model) -> np.ndarray:
        """:func:`hidden_units` of ``model.net``, with a clear error for a model without one."""
        if getattr(model, "net", None) is None:
            raise ValueError(f"MCDropout needs a model with a network (net), but {model_name(model)} has none")
        return hidden_units(model.net)

    def init(self, model, position, rng: np.random.Generator) -> PointState:
        """Start at ``position`` (D,) with fresh Adam moments (after checking the network has hidden units)."""
        self.units(model)
        return self.start(model, position)

    def step(self, model, state: PointState, rng: np.random.Generator) -> tuple:
        """One Adam step up the dropout objective with ``n_mc`` fresh masks: ``(PointState, DropoutInfo)``."""
        idx, order, batch_start = self.next_batch(model, state, rng)
        units = self.units(model)
        keep = rng.random((self.n_mc, int(units.max()) + 1)) >= self.p
        factors = dropout_multipliers(units, keep, self.p)  # (S, D): θ ⊙ r_s is network s
        value, pullback = ad.vjp(
            lambda theta: ad.mean(model.log_likelihood(theta * factors, idx)) + model.log_prior(theta), state.theta
        )
        gradient = pullback(1.0)
        check_finite_gradient(value, gradient, self.learning_rate)
        info = DropoutInfo(objective=float(value), grad_norm=float(np.linalg.norm(gradient)))
        return self.ascend(state, gradient, order, batch_start), info

    def build_posterior(self, model, state: PointState, kept: list, history: dict) -> DropoutPosterior:
        """The trained θ with its drop probability and unit map: draws are masked weight vectors."""
        return DropoutPosterior(state.theta, self.p, self.units(model))

    def evals_per_step(self, model) -> int:
        """One gradient evaluation per mask: ``n_mc``."""
        return int(self.n_mc)
