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

from .. import _validate as check
from .. import autodiff as ad
from ..by_hand import bbb_loss_grad_by_hand
from ..distributions import MeanFieldNormal, Normal, kl
from ..estimators import check_local_reparam_model, local_reparam_log_likelihood, value_and_grads
from ..nn import MLP
from ..optim import AdamState
from ..weight_noise import FORWARDS, check_weight_noise_model, weight_noise_log_likelihood
from .vi_common import VIMethod, check_finite_step, grad_norm, initial_rho, model_name

__all__ = ["BayesByBackprop", "BBBState", "BBBInfo"]


class BBBState(NamedTuple):
    """(μ, ρ) with σ = softplus(ρ), Adam's state over λ = (μ, ρ) as one (2, D) array, the epoch's ``order`` and ``batch_start``."""

    mu: np.ndarray
    rho: np.ndarray
    opt_state: AdamState
    order: np.ndarray
    batch_start: int


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
        al. 2015); the same as ``estimator="local"``.
    estimator
        How the noise enters the network (:mod:`approxpost.weight_noise`):
        ``"weights"`` draws θ (any model); ``"local"`` samples each layer's
        pre-activations, ``"flipout"`` shares one weight perturbation per draw
        with random signs per data point (Wen et al. 2018); these two need a
        ``models.Regression`` or ``models.Classification`` with an ``nn.MLP``
        (``"local"`` only) or an ``nn.CNN``, and a Gaussian prior. ``None``:
        ``"local"`` if ``local_reparam`` else ``"weights"``.
    batch_size
        Data points per step; ``None`` uses all of them. Each epoch visits
        the data in a fresh random order; the last batch may be smaller.
    kl_weight
        Weight of KL(q ‖ p) in one minibatch's loss; ``None`` means
        1/number-of-batches, so an epoch's losses sum to the full −ELBO.
    hand_gradient
        True: the chain rule written out by hand (:mod:`approxpost.by_hand`),
        which covers ``"weights"`` and ``"local"`` on an MLP;
        False: the engine differentiates the loss through ``MeanFieldNormal``
        and ``distributions.kl``; ``None``: by hand where it applies. The same numbers to 1e-10 from the same
        draws; the hand version is the default because it is faster (one step on the ``bench/vi.py``
        network: 1.7× less time at n_mc = 1, 1.2× at n_mc = 16), since the engine builds a graph node
        for every D-sized op of q and the KL, while the hand version's ∇θ replays a recorded tape
        (``Model.mean_log_likelihood_vjp``).

    Notes
    -----
    Minibatch i's loss is F_i = w KL(q ‖ p) − E_q[Σ_{n ∈ batch i} log p(y_n | θ)],
    with the expectation estimated from ``n_mc`` draws θ = μ + σ ⊙ ε. The KL
    is analytic when ``model.prior_distribution()`` is a ``Normal``, else the
    estimate −H[q] − mean_s log p(θ_s) (analytic entropy, same draws).
    q starts at μ₀ = ``init`` (default one ``model.init`` draw) and
    σ₀ = ``init_std`` (default 0.1 × the prior std), near a point estimate. ``history`` holds
    ``elbo`` (the step's full-data estimate: likelihood rescaled by N/|batch|,
    minus the KL), ``kl``, ``grad_norm`` (of F_i) and ``mean_sigma``.

    References
    ----------
    Blundell, C., Cornebise, J., Kavukcuoglu, K. and Wierstra, D. (2015). Weight
    uncertainty in neural networks. ICML.
    Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
    local reparameterization trick. NeurIPS.
    Wen, Y., Vicol, P., Ba, J., Tran, D. and Grosse, R. (2018). Flipout: efficient
    pseudo-independent weight perturbations on mini-batches. ICLR.
    """

    n_mc: int = 1
    n_steps: int = 3000
    learning_rate: float = 1e-2
    local_reparam: bool = False
    batch_size: int | None = None
    kl_weight: float | None = None
    hand_gradient: bool | None = None
    estimator: str | None = None
    init_std: float | None = None

    def validate(self) -> None:
        super().validate()
        check.flag("local_reparam", self.local_reparam)
        check.optional(check.flag, "hand_gradient", self.hand_gradient)
        check.optional(check.count, "batch_size", self.batch_size)
        check.optional(check.number, "kl_weight", self.kl_weight, 0.0)
        check.optional(check.positive, "init_std", self.init_std)
        if self.estimator is not None and self.estimator not in FORWARDS:
            raise ValueError(f"estimator must be None or one of {sorted(FORWARDS)}, got {self.estimator!r}")
        if self.local_reparam and self.estimator not in (None, "local"):
            raise ValueError(f"local_reparam=True means estimator='local', got estimator={self.estimator!r}")

    @property
    def gradient_estimator(self) -> str:
        """The estimator in use: ``estimator``, or ``"local"`` / ``"weights"`` from ``local_reparam``."""
        return self.estimator or ("local" if self.local_reparam else "weights")

    def uses_hand_gradient(self, model) -> bool:
        """Whether ``loss_grad`` writes the chain rule out: ``hand_gradient``, or where it applies when None."""
        applies = self.gradient_estimator == "weights" or (
            self.gradient_estimator == "local" and isinstance(getattr(model, "net", None), MLP)
        )
        if self.hand_gradient and not applies:
            raise ValueError(
                f"hand_gradient=True covers estimator 'weights' and 'local' on an nn.MLP, not estimator="
                f"{self.gradient_estimator!r} on {model_name(model)} with net {type(getattr(model, 'net', None)).__name__}; "
                "use hand_gradient=None or False (the engine)"
            )
        return applies if self.hand_gradient is None else bool(self.hand_gradient)

    def uncounted_evals_per_step(self, model) -> tuple:
        """Sampled activations run the network outside the model: n_mc passes unless the estimator is "weights"."""
        return (0, 0) if self.gradient_estimator == "weights" else (int(self.n_mc), 0)

    def n_batches(self, model) -> int:
        """Minibatches per epoch: ⌈N / batch_size⌉ (1 without minibatches)."""
        return 1 if self.batch_size is None else math.ceil(model.n_data / self.batch_size)

    def init(self, model, position, rng: np.random.Generator) -> BBBState:
        """q with mean ``position`` (D,) and σ₀ = ``init_std`` or 0.1 × prior std; fresh Adam moments; no epoch started."""
        if self.gradient_estimator != "weights":
            if self.gradient_estimator == "local" and not hasattr(getattr(model, "net", None), "layer_linear"):
                check_local_reparam_model(model)  # an MLP, or a clear error naming the model
            else:
                check_weight_noise_model(model, self.gradient_estimator)
            if not isinstance(model.prior_distribution(), Normal):  # the KL must then be analytic: no θ is drawn
                raise ValueError(
                    f"estimator={self.gradient_estimator!r} needs a Gaussian prior, but {model_name(model)}.prior_distribution() "
                    "is not a Normal"
                )
        self.uses_hand_gradient(model)  # refuse an impossible hand_gradient before the first step
        if self.batch_size is not None and model.n_data is None:
            raise ValueError(
                f"batch_size={self.batch_size} needs a model with data, but {model_name(model)} has n_data=None"
            )
        if self.batch_size is not None and self.batch_size > model.n_data:
            raise ValueError(f"batch_size={self.batch_size} exceeds the number of data points n_data={model.n_data}")
        mu = np.array(position, dtype=np.float64, copy=True)
        std = None if self.init_std is None else np.full(mu.shape, self.init_std)
        rho = initial_rho(model) if std is None else MeanFieldNormal.from_std(mu, std).rho
        return BBBState(mu, rho, self.optimizer.init((np.array((mu, rho)),)), np.empty(0, dtype=np.intp), 0)

    def _next_batch(self, model, state: BBBState, rng: np.random.Generator) -> tuple:
        """``(idx, order, batch_start)``: the next minibatch, starting a new epoch when the last one is used up."""
        if self.batch_size is None:
            return None, state.order, state.batch_start
        order, start = state.order, state.batch_start
        if start >= order.size:
            order, start = rng.permutation(model.n_data), 0
        return order[start : start + self.batch_size], order, start + self.batch_size

    def kl_weight_for(self, model) -> float:
        """The KL weight w in each minibatch's loss: ``kl_weight``, or 1/number-of-batches when None."""
        return 1.0 / self.n_batches(model) if self.kl_weight is None else float(self.kl_weight)

    def loss_grad(
        self, model, mu: np.ndarray, rho: np.ndarray, rng: np.random.Generator, idx=None, sigma=None
    ) -> tuple:
        """Minibatch ``idx`` 's loss F_i at q = N(μ, diag softplus(ρ)²): ``(E log-lik estimate, KL, ∂F_i/∂μ, ∂F_i/∂ρ)``.

        F_i = w KL(q ‖ p) − (|batch|/N) × (the full-data-rescaled log-likelihood
        estimate), so an epoch's losses sum to −ELBO. The engine differentiates
        it through :class:`~approxpost.distributions.MeanFieldNormal` and
        :func:`~approxpost.distributions.kl`; with ``hand_gradient`` the chain
        rule is instead written out (:func:`approxpost.by_hand.bbb_loss_grad_by_hand`,
        the same numbers from the same draws), reusing ``sigma`` = softplus(ρ) when given.
        """
        weight = self.kl_weight_for(model)
        if self.uses_hand_gradient(model):
            return bbb_loss_grad_by_hand(
                model, mu, rho, rng, self.n_mc, idx, weight, self.gradient_estimator == "local", sigma
            )
        prior = model.prior_distribution()
        batch_fraction = 1.0 if idx is None else idx.size / model.n_data

        def loss(mu, rho):
            q = MeanFieldNormal(mu, rho)
            if self.gradient_estimator == "local" and isinstance(model.net, MLP):
                expected_log_lik = local_reparam_log_likelihood(model, q, rng, self.n_mc, idx)
            elif self.gradient_estimator != "weights":
                expected_log_lik = weight_noise_log_likelihood(
                    model, self.gradient_estimator, q.loc, q.scale, rng, self.n_mc, idx
                )
            else:
                theta = q.sample(rng, self.n_mc)
                expected_log_lik = ad.mean(model.log_likelihood(theta, idx))
            if isinstance(prior, Normal):
                kl_value = kl(q, prior)
            else:  # KL ≈ −H[q] − mean_s log p(θ_s): the prior term is differentiated through θ too
                kl_value = -q.entropy() - ad.mean(model.log_prior(theta))
            return ad.stack([weight * kl_value - batch_fraction * expected_log_lik, expected_log_lik, kl_value])

        values, (grad_mu, grad_rho) = value_and_grads(loss, mu, rho, seed_grad=np.array([1.0, 0.0, 0.0]))
        return float(values[1]), float(values[2]), grad_mu, grad_rho

    def step(self, model, state: BBBState, rng: np.random.Generator) -> tuple:
        """One Adam step down the next minibatch's loss F_i (see the class Notes and :meth:`loss_grad`)."""
        idx, order, batch_start = self._next_batch(model, state, rng)
        sigma = ad.softplus(state.rho)  # once a step: the gradient and mean_sigma both need it
        expected_log_lik, kl_value, grad_mu, grad_rho = self.loss_grad(model, state.mu, state.rho, rng, idx, sigma)
        elbo = expected_log_lik - kl_value
        norm = grad_norm((grad_mu, grad_rho))
        # a NaN or ±inf anywhere makes the norm non-finite (it sums squares, nothing cancels): only then
        # look at every entry, which check_finite_step does (a finite gradient whose square overflows passes)
        if not (math.isfinite(norm) and math.isfinite(elbo)):
            check_finite_step(elbo, (grad_mu, grad_rho), self.learning_rate)
        # Adam moves λ = (μ, ρ) as one (2, D) array: an elementwise update, so two (D,) updates' bits in half the calls
        (lam,), opt_state = self.optimizer.update(
            (np.array((state.mu, state.rho)),), (np.array((grad_mu, grad_rho)),), state.opt_state
        )
        mu, rho = lam
        # np.mean's arithmetic (the sum over the count) without its Python wrapper
        info = BBBInfo(elbo=elbo, kl=kl_value, grad_norm=norm, mean_sigma=float(sigma.sum() / sigma.size))
        return BBBState(mu, rho, opt_state, order, batch_start), info
