"""The local reparameterisation trick: a Bayesian MLP's likelihood with sampled pre-activations.

Instead of drawing the weights θ ~ q and running the network, each layer's
pre-activations are drawn from the Gaussian they have under q, with fresh
noise for every data point (Kingma et al. 2015). Used by
:func:`approxpost.estimators.local_reparam_grad` and by
``BayesByBackprop(local_reparam=True)``.

References
----------
Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
local reparameterization trick. NeurIPS.
"""

from __future__ import annotations

import numpy as np

from . import autodiff as ad
from .distributions import LOG_2PI, Normal
from .models import Regression
from .nn import MLP

__all__ = ["check_local_reparam_model", "local_reparam_log_likelihood", "local_reparam_log_likelihood_grad"]


def check_local_reparam_model(model) -> None:
    """Raise ``ValueError`` unless ``model`` is a ``Regression`` with an ``MLP`` and its Gaussian likelihood."""
    ok = (
        isinstance(model, Regression)
        and type(model).log_likelihood is Regression.log_likelihood
        and isinstance(model.net, MLP)
    )
    if not ok:
        raise ValueError(
            "local reparameterisation needs a models.Regression with an nn.MLP network and its Gaussian "
            f"likelihood, got {type(model).__name__} with net {type(getattr(model, 'net', None)).__name__}"
        )


def local_reparam_log_likelihood(model: Regression, q: Normal, rng: np.random.Generator, n_mc: int, idx=None):
    """E_q[log p(D | θ)] estimated by sampling each layer's pre-activations; differentiable in q's parameters.

    Parameters
    ----------
    model
        A ``Regression`` with an ``MLP``.
    q
        Diagonal Gaussian over the flat weights (only ``q.loc`` and ``q.scale``
        are used); they may be ``ad.Var`` s.
    rng
        Source of the pre-activation noise.
    n_mc
        Number of independent network passes S.
    idx
        Optional minibatch indices; the sum over them is rescaled to the full
        data by N/|idx|, as ``model.log_likelihood`` does.

    Returns
    -------
    Var or float
        The mean over the S passes of the Gaussian log likelihood, constants included.

    Notes
    -----
    For a layer with input A and weights W ~ N(μ_W, σ_W²), b ~ N(μ_b, σ_b²)
    independent, the pre-activation A W + b is Gaussian with mean A μ_W + μ_b
    and variance A² σ_W² + σ_b²; it is drawn as mean + √var ⊙ ξ with ξ fresh
    for every data point, which removes the covariance between data points'
    gradients that shared weight noise causes (lower variance, same expectation).

    References
    ----------
    Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
    local reparameterization trick. NeurIPS.
    """
    check_local_reparam_model(model)
    net = model.net
    activation = getattr(ad, net.activation)
    x, y = (model.x, model.y) if idx is None else (model.x[idx], model.y[idx])
    mean_layers = net.unflatten(q.loc)
    var_layers = net.unflatten(ad.square(q.scale))
    h = x  # (n, in): shared by every pass until the first noise enters
    for i, ((mean_w, mean_b), (var_w, var_b)) in enumerate(zip(mean_layers, var_layers)):
        mean = ad.add(ad.matmul(h, mean_w), mean_b)
        var = ad.add(ad.matmul(ad.square(h), var_w), var_b)
        xi = rng.standard_normal((n_mc, x.shape[0], net.layer_sizes[i + 1]))
        h = ad.add(mean, ad.mul(ad.sqrt(var), xi))
        if i < len(mean_layers) - 1:
            h = activation(h)
    squared_error = ad.sum_squares(ad.sub(y, h), axis=(-2, -1))
    log_lik = ad.mean(squared_error) * (-0.5 / model.noise_std**2) - y.size * (np.log(model.noise_std) + 0.5 * LOG_2PI)
    return log_lik * model.minibatch_scale(idx) if idx is not None else log_lik


def local_reparam_log_likelihood_grad(
    model: Regression, mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, n_mc: int, idx=None
) -> tuple:
    """``(estimate, ∂/∂μ, ∂/∂σ)`` of :func:`local_reparam_log_likelihood` at q = N(μ, diag σ²), one backward pass."""
    lam = np.stack([mu, sigma])  # one leaf holding the rows μ and σ
    value, pullback = ad.vjp(
        lambda lam: local_reparam_log_likelihood(model, Normal(lam[0], lam[1]), rng, n_mc, idx), lam
    )
    grad = pullback(1.0)
    return float(value), grad[0], grad[1]
