"""Bayes by Backprop: a mean-field Gaussian over the weights, fitted by backpropagating through samples.

Each step draws θ = μ + softplus(ρ) ⊙ ε, runs the model on it and
backpropagates the loss −log p(D | θ) + KL(q ‖ p) to (μ, ρ). Options show the
two ideas that make it practical for networks: minibatches (with the KL
spread over the batches of an epoch) and the local reparameterisation trick.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .. import autodiff as ad
from ..distributions import Normal
from ..estimators import check_local_reparam_model, dsigma_drho, local_reparam_log_likelihood_grad, normal_kl_grad
from ..optim import AdamState
from .base import CostCounter, check_positive
from .vi_common import VIMethod, check_finite_step, grad_norm, initial_rho, model_name

__all__ = ["BayesByBackprop", "BBBState", "BBBInfo"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class BBBState(NamedTuple):
    """(μ, ρ) with σ = softplus(ρ), Adam's state, and where the current epoch is: its data ``order`` and ``position``."""

    mu: np.ndarray
    rho: np.ndarray
    opt_state: AdamState
    order: np.ndarray
    position: int


class BBBInfo(NamedTuple):
    """One step: full-data ELBO estimate, KL(q ‖ p), norm of the loss gradient, mean σ of the q it started from."""

    elbo: float
    kl: float
    grad_norm: float
    mean_sigma: float


@dataclasses.dataclass(frozen=True)
class BayesByBackprop(VIMethod):
    """Bayes by Backprop (Blundell et al. 2015): reparameterised gradients of a mean-field Gaussian, Adam.

    Parameters
    ----------
    n_mc
        Draws of θ per step, evaluated in one batched pass.
    n_steps
        Adam steps (one minibatch each).
    learning_rate
        Adam's step size.
    local_reparam
        Sample each layer's pre-activations instead of the weights (Kingma et
        al. 2015); needs a ``models.Regression`` or ``models.Classification`` with an ``nn.MLP``.
    batch_size
        Data points per step; ``None`` uses all of them. Each epoch visits
        the data in a fresh random order; the last batch may be smaller.
    kl_weight
        Weight of KL(q ‖ p) in one minibatch's loss; ``None`` means
        1/number-of-batches, so an epoch's losses sum to the full −ELBO.

    Notes
    -----
    Minibatch i's loss is F_i = w KL(q ‖ p) − E_q[Σ_{n ∈ batch i} log p(y_n | θ)],
    with the expectation estimated from ``n_mc`` draws θ = μ + σ ⊙ ε. The KL
    is analytic when ``model.prior_distribution()`` is a ``Normal``, else the
    estimate −H[q] − mean_s log p(θ_s) (analytic entropy, same draws).
    q starts at μ₀ = ``init`` (default one ``model.init`` draw) and
    σ₀ = 0.1 × the prior std, near a point estimate. ``history`` holds
    ``elbo`` (the step's full-data estimate: likelihood rescaled by N/|batch|,
    minus the KL), ``kl``, ``grad_norm`` (of F_i) and ``mean_sigma``.

    References
    ----------
    Blundell, C., Cornebise, J., Kavukcuoglu, K. and Wierstra, D. (2015). Weight
    uncertainty in neural networks. ICML.
    Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
    local reparameterization trick. NeurIPS.
    """

    n_mc: int = 1
    n_steps: int = 3000
    learning_rate: float = 1e-2
    local_reparam: bool = False
    batch_size: int | None = None
    kl_weight: float | None = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.local_reparam, (bool, np.bool_)):
            raise ValueError(f"local_reparam must be True or False, got {self.local_reparam!r}")
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size, integer=True)
        if self.kl_weight is not None:
            weight = self.kl_weight
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float, np.integer, np.floating))
                or not (math.isfinite(weight) and weight >= 0)
            ):
                raise ValueError(f"kl_weight must be None or a finite number >= 0, got {weight!r}")

    def n_batches(self, model) -> int:
        """Minibatches per epoch: ⌈N / batch_size⌉ (1 without minibatches)."""
        return 1 if self.batch_size is None else math.ceil(model.n_data / self.batch_size)

    def init(self, model, position, rng: np.random.Generator) -> BBBState:
        """q with mean ``position`` (D,) and σ₀ = 0.1 × prior std; fresh Adam moments; no epoch started."""
        if self.local_reparam:
            check_local_reparam_model(model)
            if not isinstance(model.prior_distribution(), Normal):  # the KL must then be analytic: no θ is drawn
                raise ValueError(
                    f"local_reparam=True needs a Gaussian prior, but {model_name(model)}.prior_distribution() is not a Normal"
                )
        if self.batch_size is not None:
            if model.n_data is None:
                raise ValueError(
                    f"batch_size={self.batch_size} needs a model with data, but {model_name(model)} has n_data=None"
                )
            if self.batch_size > model.n_data:
                raise ValueError(
                    f"batch_size={self.batch_size} exceeds the number of data points n_data={model.n_data}"
                )
        mu = np.array(position, dtype=np.float64, copy=True)
        rho = initial_rho(model)
        return BBBState(mu, rho, self.optimizer.init((mu, rho)), np.empty(0, dtype=np.intp), 0)

    def _next_batch(self, model, state: BBBState, rng: np.random.Generator) -> tuple:
        """``(idx, order, position)``: the next minibatch, starting a new epoch when the last one is used up."""
        if self.batch_size is None:
            return None, state.order, state.position
        order, start = state.order, state.position
        if start >= order.size:
            order, start = rng.permutation(model.n_data), 0
        return order[start : start + self.batch_size], order, start + self.batch_size

    def kl_weight_for(self, model) -> float:
        """The KL weight w in each minibatch's loss: ``kl_weight``, or 1/number-of-batches when None."""
        return 1.0 / self.n_batches(model) if self.kl_weight is None else float(self.kl_weight)

    def loss_grad(self, model, mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, idx=None) -> tuple:
        """Minibatch ``idx`` 's loss F_i at q = N(μ, diag σ²): ``(E log-lik estimate, KL, ∂F_i/∂μ, ∂F_i/∂σ)``.

        The log-likelihood estimate is rescaled to the full data (N/|batch|).
        Backpropagation (``ad``) gives g_s = ∂/∂θ of the data term at each
        sampled θ_s; the chain rule through θ = μ + σ ⊙ ε and the KL's own
        gradient are then added as in Blundell et al. (2015):
        ∂F/∂μ = Σ_s g_s / S + w ∂KL/∂μ, ∂F/∂σ = Σ_s g_s ⊙ ε_s / S + w ∂KL/∂σ.
        """
        prior = model.prior_distribution()
        analytic_kl = isinstance(prior, Normal)
        # F_i = w KL − (|batch|/N) × (the full-data-rescaled log likelihood), so an epoch sums to −ELBO
        batch_fraction = 1.0 if idx is None else idx.size / model.n_data
        weight = self.kl_weight_for(model)
        if self.local_reparam:
            expected_log_lik, ell_mu, ell_sigma = local_reparam_log_likelihood_grad(
                model, mu, sigma, rng, self.n_mc, idx
            )
            grad_mu, grad_sigma = -batch_fraction * ell_mu, -batch_fraction * ell_sigma
            if isinstance(model, CostCounter):  # one network pass per draw, without θ going through the model
                model.record(grad_evals=self.n_mc)
        else:
            eps = rng.standard_normal((self.n_mc, mu.size))
            if analytic_kl:
                expected_log_lik, pullback = ad.vjp(lambda t: ad.mean(model.log_likelihood(t, idx)), mu + sigma * eps)
                grad_theta = pullback(-batch_fraction)
            else:  # KL ≈ −H[q] − mean_s log p(θ_s): the prior term is differentiated through θ too
                both, pullback = ad.vjp(
                    lambda t: ad.stack([ad.mean(model.log_likelihood(t, idx)), ad.mean(model.log_prior(t))]),
                    mu + sigma * eps,
                )
                expected_log_lik, expected_log_prior = both
                grad_theta = pullback(np.array([-batch_fraction, -weight]))
            grad_mu, grad_sigma = np.sum(grad_theta, axis=0), np.sum(grad_theta * eps, axis=0)
        if analytic_kl:
            kl_value, kl_mu, kl_sigma = normal_kl_grad(mu, sigma, prior)
            grad_mu, grad_sigma = grad_mu + weight * kl_mu, grad_sigma + weight * kl_sigma
        else:
            entropy = float(np.sum(np.log(sigma))) + 0.5 * mu.size * (_LOG_2PI + 1.0)
            kl_value = -entropy - float(expected_log_prior)
            grad_sigma = grad_sigma - weight / sigma
        return float(expected_log_lik), kl_value, grad_mu, grad_sigma

    def step(self, model, state: BBBState, rng: np.random.Generator) -> tuple:
        """One Adam step down the next minibatch's loss F_i (see the class Notes and :meth:`loss_grad`)."""
        idx, order, position = self._next_batch(model, state, rng)
        sigma = ad.softplus(state.rho)
        expected_log_lik, kl_value, grad_mu, grad_sigma = self.loss_grad(model, state.mu, sigma, rng, idx)
        grad_rho = grad_sigma * dsigma_drho(sigma)
        elbo = expected_log_lik - kl_value
        check_finite_step(elbo, (grad_mu, grad_rho), self.learning_rate)
        (mu, rho), opt_state = self.optimizer.update((state.mu, state.rho), (grad_mu, grad_rho), state.opt_state)
        info = BBBInfo(
            elbo=elbo, kl=kl_value, grad_norm=grad_norm((grad_mu, grad_rho)), mean_sigma=float(np.mean(sigma))
        )
        return BBBState(mu, rho, opt_state, order, position), info
