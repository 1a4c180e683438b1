"""The chain rule by hand: the reparameterised ELBO gradients with every derivative written out.

The library differentiates the ELBO with its autodiff engine
(:func:`approxpost.estimators.reparam_grad`,
:meth:`approxpost.BayesByBackprop.loss_grad`). The functions here compute
the same numbers the way Blundell et al. (2015) derive them: ``ad`` only for
g_s = ∂/∂θ of the data term at each sampled θ_s, then

    ∂/∂μ = mean_s g_s,   ∂/∂σ = mean_s g_s ⊙ ε_s,   ∂σ/∂ρ = sigmoid(ρ) = 1 − e^(−σ),

plus the KL's (or the entropy's) own gradient in closed form. They are kept
as the teaching reference, and the tests check the engine against them to
1e-10 on random q.

References
----------
Blundell, C., Cornebise, J., Kavukcuoglu, K. and Wierstra, D. (2015). Weight
uncertainty in neural networks. ICML.
Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
local reparameterization trick. NeurIPS.
"""

from __future__ import annotations

import numpy as np

from . import autodiff as ad
from ._rng import as_generator
from ._validate import count
from .distributions import MeanFieldNormal, Normal, gaussian_entropy
from .estimators import (
    VIGrad,
    check_q,
    dsigma_drho,
    local_reparam_log_likelihood_grad,
    normal_kl_grad,
)

__all__ = ["reparam_grad_by_hand", "bbb_loss_grad_by_hand"]


def reparam_grad_by_hand(model, q: MeanFieldNormal, n_mc: int = 16, seed=None) -> VIGrad:
    """:func:`~approxpost.estimators.reparam_grad` with the chain rule through θ = μ + σ ⊙ ε written out.

    ∇_μ = mean_s g_s, ∇_σ = mean_s g_s ⊙ ε_s + 1/σ (the analytic entropy's
    gradient), ∇_ρ = ∇_σ ⊙ sigmoid(ρ), with g_s = ∇_θ log p(θ_s, D) from one
    batched backward pass. Same draws as ``reparam_grad`` for the same seed.
    """
    check_q(model, q)
    n_mc = count("n_mc", n_mc)
    eps = as_generator(seed).standard_normal((n_mc, q.dim))
    sigma = q.std
    _, pullback = ad.vjp(lambda theta: ad.mean(model.log_joint(theta)), q.mu + sigma * eps)
    grad_theta = pullback(1.0)  # (S, D): row s is g_s / S
    grad_sigma = np.sum(grad_theta * eps, axis=0) + 1.0 / sigma
    return VIGrad(np.sum(grad_theta, axis=0), grad_sigma * dsigma_drho(sigma))


def bbb_loss_grad_by_hand(
    model,
    mu,
    rho,
    rng: np.random.Generator,
    n_mc: int,
    idx=None,
    kl_weight: float = 1.0,
    local_reparam: bool = False,
    sigma=None,
) -> tuple:
    """One minibatch's BBB loss F_i = w KL − (|batch|/N) E_q log p(D | θ) and its gradient, by hand.

    Returns ``(E log-lik estimate, KL, ∂F_i/∂μ, ∂F_i/∂ρ)``, the same numbers
    (from the same ``rng`` draws) as :meth:`approxpost.BayesByBackprop.loss_grad`.
    The KL is analytic for a ``Normal`` prior, else −H[q] − mean_s log p(θ_s),
    whose prior term is differentiated through θ too. ``sigma`` is
    softplus(ρ) if the caller has it already (computed here when ``None``).
    """
    prior = model.prior_distribution()
    analytic_kl = isinstance(prior, Normal)
    sigma = ad.softplus(rho) if sigma is None else sigma
    batch_fraction = 1.0 if idx is None else idx.size / model.n_data
    if local_reparam:
        expected_log_lik, ell_mu, ell_sigma = local_reparam_log_likelihood_grad(model, mu, sigma, rng, n_mc, idx)
        grad_mu, grad_sigma = -batch_fraction * ell_mu, -batch_fraction * ell_sigma
    else:
        eps = rng.standard_normal((n_mc, mu.size))
        theta = sigma * eps
        theta += mu  # μ + σ ⊙ ε, added into the product it was made from
        # ad.vjp of mean_s log p(D | θ_s) (stacked with mean_s log p(θ_s) for the Monte Carlo KL), replayed
        # from a recorded tape on models that allow it: the plain graph's bits at a fraction of its overhead
        value, pullback = model.mean_log_likelihood_vjp(theta, idx, with_prior=not analytic_kl)
        if analytic_kl:
            expected_log_lik, grad_theta = value, pullback(-batch_fraction)
        else:
            expected_log_lik, expected_log_prior = value
            grad_theta = pullback(np.array([-batch_fraction, -kl_weight]))
        grad_mu, grad_sigma = grad_theta.sum(axis=0), (grad_theta * eps).sum(axis=0)
    # from here every array is this call's own, so the sums accumulate in place (the same operations, in order)
    if analytic_kl:
        kl_value, kl_mu, kl_sigma = normal_kl_grad(mu, sigma, prior)
        if kl_weight != 1.0:  # without minibatches w = 1, and 1·x is x exactly: two array passes saved a step
            kl_mu *= kl_weight
            kl_sigma *= kl_weight
        grad_mu += kl_mu
        grad_sigma += kl_sigma
    else:
        kl_value = -gaussian_entropy(float(np.sum(np.log(sigma))), mu.size) - float(expected_log_prior)
        grad_sigma -= kl_weight / sigma
    grad_rho = np.multiply(grad_sigma, dsigma_drho(sigma), out=grad_sigma)  # ∂F/∂σ ⊙ dσ/dρ
    return float(expected_log_lik), float(kl_value), grad_mu, grad_rho
