"""The ELBO of a mean-field Gaussian q and three estimators of its gradient.

Everything here is about one q(θ) = N(μ, diag(σ²)), σ = softplus(ρ) (a
:class:`~approxpost.distributions.MeanFieldNormal`), and the evidence lower bound

    ELBO(μ, ρ) = E_q[log p(θ, D) − log q(θ)] ≤ log p(D).

The three gradient estimators differ only in *how* they differentiate an
expectation, and that is the lesson of BBVI vs Bayes by Backprop:

- :func:`score_function_grad` (REINFORCE, BBVI) needs only log p(θ, D) values;
- :func:`reparam_grad` differentiates through θ = μ + σ ⊙ ε (needs ∇θ log p);
- :func:`local_reparam_grad` samples a network's pre-activations instead of
  its weights, with fresh noise per data point (the sampling itself is in
  :mod:`approxpost.local_reparam`; its functions are re-exported here).

All of them return the gradient of the ELBO (the ascent direction) as a
``VIGrad(mu, rho)``, and all are batched over the ``n_mc`` draws: one
(n_mc, D) array goes through the model in one pass. :func:`grad_variance`
measures an estimator's spread by calling it many times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import autodiff as ad
from ._rng import as_generator
from ._validate import count as _check_count
from .autodiff.core import backward
from .distributions import MeanFieldNormal, Normal
from .local_reparam import check_local_reparam_model, local_reparam_log_likelihood, local_reparam_log_likelihood_grad
from .models import Model

ELBO_BLOCK_SIZE = 50_000  # (draw, data point) pairs per batched log_joint call in elbo_terms

__all__ = [
    "VIGrad",
    "GradVariance",
    "elbo",
    "elbo_terms",
    "score_function_grad",
    "score_terms",
    "reparam_grad",
    "value_and_grads",
    "check_q",
    "local_reparam_grad",
    "local_reparam_log_likelihood",
    "local_reparam_log_likelihood_grad",
    "check_local_reparam_model",
    "normal_kl_grad",
    "dsigma_drho",
    "grad_variance",
]

Seed = int | np.random.Generator | None


class VIGrad(NamedTuple):
    """A gradient with respect to q's parameters: ``mu`` and ``rho``, each shaped like ``q.mu``."""

    mu: np.ndarray
    rho: np.ndarray


class GradVariance(NamedTuple):
    """Spread of a gradient estimator over repeated calls, per coordinate of (μ, ρ) concatenated.

    ``mean`` and ``var`` are (2D,) arrays (the μ coordinates first),
    ``total_variance`` is ``var.sum()`` and ``snr`` is |mean| / √var.
    """

    mean: np.ndarray
    var: np.ndarray
    total_variance: float
    snr: np.ndarray


# --- checks -------------------------------------------------------------------


def check_q(model, q) -> None:
    """Raise unless ``q`` is a plain-array ``MeanFieldNormal`` of the model's dimension."""
    if not isinstance(q, MeanFieldNormal):
        raise TypeError(f"q must be an approxpost.distributions.MeanFieldNormal, got {type(q).__name__}")
    if isinstance(q.mu, ad.Var) or isinstance(q.rho, ad.Var):
        raise TypeError("q must hold plain arrays, not ad.Var parameters: the estimators differentiate themselves")
    if q.dim != model.dim:
        raise ValueError(f"q has dim {q.dim} (mu shape {q.mu.shape}) but the model has dim {model.dim}")


def dsigma_drho(sigma: np.ndarray) -> np.ndarray:
    """dσ/dρ for σ = softplus(ρ), from σ itself: sigmoid(ρ) = 1 − e^(−σ).

    (1 + e^ρ = e^σ, so sigmoid(ρ) = 1 − 1/(1 + e^ρ) = 1 − e^(−σ).) ``expm1``
    keeps it accurate for tiny σ, and it reuses σ instead of another
    ``logaddexp`` pass over ρ.
    """
    derivative = np.expm1(-sigma)
    return np.negative(derivative, out=derivative)  # −expm1(−σ), negated where it was made


def _split(flat: np.ndarray, dim: int) -> VIGrad:
    return VIGrad(flat[:dim], flat[dim:])


# --- the ELBO -----------------------------------------------------------------


def elbo_terms(model: Model, q: MeanFieldNormal, n_mc: int = 100, seed: Seed = None) -> np.ndarray:
    """The ``n_mc`` Monte Carlo terms log p(θ_s, D) − log q(θ_s), θ_s ~ q, whose mean is :func:`elbo`.

    Their standard deviation over √n_mc is the Monte Carlo standard error of the ELBO estimate.

    Parameters
    ----------
    model
        Any ``Model``.
    q
        The mean-field Gaussian, dim equal to ``model.dim``.
    n_mc
        Number of draws, evaluated in one batched pass.
    seed
        int, Generator or None.

    Returns
    -------
    np.ndarray
        (n_mc,) values, every normalising constant included.
    """
    check_q(model, q)
    n_mc = _check_count("n_mc", n_mc)
    theta = q.sample(as_generator(seed), n_mc)
    # the draws pass through the model in blocks of about ELBO_BLOCK_SIZE (draw, data point) pairs: the final
    # ELBO's 1000 draws over a CNN's 1000 digits in one pass would hold gigabytes of im2col buffers
    block = max(1, ELBO_BLOCK_SIZE // max(1, getattr(model, "n_data", None) or 1))
    log_joint = [
        np.asarray(model.log_joint(theta[i : i + block]), dtype=np.float64).reshape(-1) for i in range(0, n_mc, block)
    ]
    return np.concatenate(log_joint) - q.log_prob(theta)


def elbo(model: Model, q: MeanFieldNormal, n_mc: int = 100, seed: Seed = None) -> float:
    """Monte Carlo estimate of ELBO(q) = E_q[log p(θ, D) − log q(θ)].

    Parameters
    ----------
    model
        Any ``Model``.
    q
        The mean-field Gaussian.
    n_mc
        Number of draws θ_s ~ q, evaluated in one batched pass.
    seed
        int, Generator or None.

    Returns
    -------
    float
        The estimate, with every constant of log p(θ, D) and log q(θ)
        included, so its expectation is ≤ log p(D) with equality iff q = p(θ | D).

    Notes
    -----
    The per-draw log q(θ_s) (rather than the analytic entropy) makes the
    estimate exact with zero variance when q equals the posterior.
    """
    return float(np.mean(elbo_terms(model, q, n_mc=n_mc, seed=seed)))


# --- score function (REINFORCE) -----------------------------------------------


def score_terms(model: Model, q: MeanFieldNormal, rng: np.random.Generator, n_mc: int, control_variate: bool) -> tuple:
    """The score-function ELBO gradient and the ELBO terms it used: ``(VIGrad, f)`` with f (n_mc,).

    The work behind :func:`score_function_grad`, taking an ``rng``, so BBVI
    can reuse the same draws' ELBO terms as its per-step ELBO estimate.
    """
    mu, sigma = q.mean, q.std
    eps = rng.standard_normal((n_mc, q.dim))
    theta = mu + sigma * eps
    f = np.asarray(model.log_joint(theta), dtype=np.float64) - q.log_prob(theta)
    # ∇ log q(θ) in closed form: ∂/∂μ = ε/σ, ∂/∂σ = (ε² − 1)/σ and dσ/dρ = sigmoid(ρ)
    h = np.concatenate([eps / sigma, (eps * eps - 1.0) * (dsigma_drho(sigma) / sigma)], axis=1)
    if control_variate:
        # Leave-one-out baseline per coordinate: a_d^(−s) = Σ_{t≠s} f_t h_td² / Σ_{t≠s} h_td²,
        # independent of draw s, so E[(f_s − a^(−s)) h_s] = E[f_s h_s] (E[h] = 0): unbiased.
        h2 = h * h
        f_h2 = f[:, None] * h2
        numerator = f_h2.sum(axis=0) - f_h2
        denominator = h2.sum(axis=0) - h2
        baseline = np.divide(numerator, denominator, out=np.zeros_like(h2), where=denominator > 0)
        flat = np.mean((f[:, None] - baseline) * h, axis=0)
    else:
        flat = np.mean(f[:, None] * h, axis=0)
    return _split(flat, q.dim), f


def score_function_grad(
    model: Model, q: MeanFieldNormal, n_mc: int = 16, seed: Seed = None, control_variate: bool = False
) -> VIGrad:
    """Score-function (REINFORCE) estimate of ∇_(μ,ρ) ELBO, from log-density values alone.

    Parameters
    ----------
    model
        Any ``Model``; only ``log_joint`` values are used (no model gradient).
    q
        The mean-field Gaussian.
    n_mc
        Number of draws S (≥ 2 with ``control_variate``).
    seed
        int, Generator or None.
    control_variate
        Subtract the per-coordinate optimal baseline, estimated leave-one-out.

    Returns
    -------
    VIGrad
        Unbiased estimate of the ELBO gradient (ascent direction).

    Notes
    -----
    With f_s = log p(θ_s, D) − log q(θ_s) and score h_s = ∇_λ log q(θ_s):
    ∇ELBO ≈ 1/S Σ_s (f_s − a^(−s)) h_s. The variance-minimising baseline is
    a_d = Cov(f h_d, h_d)/Var(h_d) = E[f h_d²]/E[h_d²] (the score has mean 0);
    estimating it from the other S − 1 draws keeps the estimator unbiased.

    References
    ----------
    Ranganath, R., Gerrish, S. and Blei, D. M. (2014). Black box variational inference. AISTATS.
    """
    check_q(model, q)
    n_mc = _check_count("n_mc", n_mc, minimum=2 if control_variate else 1)
    return score_terms(model, q, as_generator(seed), n_mc, bool(control_variate))[0]


# --- reparameterisation -------------------------------------------------------


def _prior_terms(prior: Normal) -> tuple:
    """``(mean, std, var, 2 var)`` of a ``Normal`` prior (``mean`` None if all zeros), kept on the prior."""
    # computed once a prior: Bayes by Backprop's KL needs them every step, and a prior is fixed once built
    if "_kl_terms" not in prior.__dict__:
        mean, std = prior.mean, prior.std
        var = np.square(std)
        prior.__dict__["_kl_terms"] = (mean if np.any(mean) else None, std, var, 2.0 * var)
    return prior.__dict__["_kl_terms"]


def normal_kl_grad(mu: np.ndarray, sigma: np.ndarray, prior: Normal) -> tuple:
    """KL(N(μ, diag σ²) ‖ prior) and its gradients in closed form: ``(kl, ∂kl/∂μ, ∂kl/∂σ)``.

    Notes
    -----
    With prior N(m, diag s²): KL = Σ log(s/σ) + (σ² + (μ − m)²)/(2s²) − ½,
    ∂/∂μ = (μ − m)/s², ∂/∂σ = σ/s² − 1/σ.
    """
    mean, std, var, twice_var = _prior_terms(prior)
    diff = mu if mean is None else mu - mean  # μ − 0 is μ, bit for bit
    # each term's operations in the formula's order (so its bits), accumulated in the arrays they make
    terms = np.log(std / sigma)
    quadratic = sigma * sigma
    quadratic += diff * diff
    quadratic /= twice_var
    terms += quadratic
    terms -= 0.5
    grad_sigma = sigma / var
    grad_sigma -= 1.0 / sigma
    return float(terms.sum()), diff / var, grad_sigma


def value_and_grads(f: Callable, *arrays, seed_grad=1.0) -> tuple:
    """``(f(*leaves).value, [∂/∂leaf of Σ seed_grad ⊙ f])``: one backward pass to several array arguments.

    The engine's ``vjp`` for a function of several arrays (here μ and ρ), so
    q's parameters stay two arrays instead of one stacked leaf.
    """
    leaves = [ad.Var(np.array(a, dtype=np.float64, copy=True)) for a in arrays]
    out = f(*leaves)
    g = np.broadcast_to(np.asarray(seed_grad, dtype=np.float64), out.shape)
    return out.value, backward(out, g, tuple(leaves))


def reparam_grad(model: Model, q: MeanFieldNormal, n_mc: int = 16, seed: Seed = None) -> VIGrad:
    """Reparameterisation estimate of ∇_(μ,ρ) ELBO: differentiate through θ = μ + softplus(ρ) ⊙ ε.

    Parameters
    ----------
    model
        A ``Model`` whose ``log_joint`` is written in ``ad`` ops.
    q
        The mean-field Gaussian.
    n_mc
        Number of draws, one batched forward and backward pass.
    seed
        int, Generator or None.

    Returns
    -------
    VIGrad
        Unbiased estimate of the ELBO gradient (ascent direction).

    Notes
    -----
    The engine differentiates 1/S Σ_s log p(μ + σ ⊙ ε_s, D) + H[q] (the
    **analytic** entropy Σ log σ + D/2 log(2πe)) with respect to (μ, ρ),
    through :class:`~approxpost.distributions.MeanFieldNormal` itself.
    :func:`approxpost.by_hand.reparam_grad_by_hand` writes the same chain
    rule out by hand (Blundell et al. 2015) and gives the same numbers.

    References
    ----------
    Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. ICLR.
    Blundell, C., Cornebise, J., Kavukcuoglu, K. and Wierstra, D. (2015). Weight
    uncertainty in neural networks. ICML.
    """
    check_q(model, q)
    n_mc = _check_count("n_mc", n_mc)
    eps = as_generator(seed).standard_normal((n_mc, q.dim))

    def objective(mu, rho):
        q_var = MeanFieldNormal(mu, rho)
        return ad.mean(model.log_joint(q_var.reparameterize(eps))) + q_var.entropy()

    _, (grad_mu, grad_rho) = value_and_grads(objective, q.mu, q.rho)
    return VIGrad(grad_mu, grad_rho)


# --- local reparameterisation -------------------------------------------------


def local_reparam_grad(model: Model, q: MeanFieldNormal, n_mc: int = 16, seed: Seed = None) -> VIGrad:
    """Local-reparameterisation estimate of ∇_(μ,ρ) ELBO for a Bayesian MLP (regression or classification).

    Parameters
    ----------
    model
        A ``models.Regression`` or ``models.Classification`` with an ``nn.MLP`` (its prior is Gaussian).
    q
        The mean-field Gaussian over the network's flat weights.
    n_mc
        Number of network passes with sampled pre-activations.
    seed
        int, Generator or None.

    Returns
    -------
    VIGrad
        Unbiased estimate of the ELBO gradient (ascent direction).

    Notes
    -----
    ELBO = E_q[log p(D | θ)] − KL(q ‖ p(θ)): the first term from
    :func:`local_reparam_log_likelihood`, the KL and its gradient in closed
    form (:func:`normal_kl_grad`); ∇_ρ = ∇_σ ⊙ sigmoid(ρ).

    References
    ----------
    Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
    local reparameterization trick. NeurIPS.
    """
    check_local_reparam_model(model)
    check_q(model, q)
    n_mc = _check_count("n_mc", n_mc)
    sigma = q.std
    _, ell_mu, ell_sigma = local_reparam_log_likelihood_grad(model, q.mu, sigma, as_generator(seed), n_mc)
    _, kl_mu, kl_sigma = normal_kl_grad(q.mu, sigma, model.prior_distribution())
    return VIGrad(ell_mu - kl_mu, (ell_sigma - kl_sigma) * dsigma_drho(sigma))


# --- measuring an estimator ---------------------------------------------------


def grad_variance(
    estimator: Callable, model: Model, q: MeanFieldNormal, n_mc: int = 16, n_repeats: int = 200, seed: Seed = 0
) -> GradVariance:
    """Per-coordinate mean and variance of a gradient estimator over ``n_repeats`` independent calls.

    Parameters
    ----------
    estimator
        Called as ``estimator(model, q, n_mc=n_mc, seed=generator)``, returning a ``VIGrad``
        (e.g. :func:`score_function_grad`, :func:`reparam_grad`, or a ``functools.partial``).
    model, q
        Passed through.
    n_mc
        Draws per call.
    n_repeats
        Number of calls (≥ 2); each gets its own Generator spawned from ``seed``.
    seed
        int, Generator or None.

    Returns
    -------
    GradVariance
        Over the 2D coordinates (μ then ρ): the mean, the unbiased variance
        (ddof = 1), their total and the signal-to-noise ratio |mean|/√var
        (``inf`` where the variance is zero and the mean is not, 0 where both are).
    """
    check_q(model, q)
    n_repeats = _check_count("n_repeats", n_repeats, minimum=2)
    generators = as_generator(seed).spawn(n_repeats)
    draws = np.stack([np.concatenate(estimator(model, q, n_mc=n_mc, seed=g)) for g in generators])
    mean, var = draws.mean(axis=0), draws.var(axis=0, ddof=1)
    magnitude = np.abs(mean)
    snr = np.where(var > 0, magnitude / np.sqrt(np.where(var > 0, var, 1.0)), np.where(magnitude > 0, np.inf, 0.0))
    return GradVariance(mean=mean, var=var, total_variance=float(var.sum()), snr=snr)
