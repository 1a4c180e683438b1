"""The local reparameterisation trick: a Bayesian network's likelihood with sampled pre-activations.

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
from .distributions import Normal
from .models import Model
from .nn import CNN, MLP

__all__ = ["check_local_reparam_model", "local_reparam_log_likelihood", "local_reparam_log_likelihood_grad"]


def check_local_reparam_model(model) -> None:
    """Raise ``ValueError`` unless ``model`` has an ``MLP`` or ``CNN`` and a likelihood of its outputs it can evaluate alone.

    The model must define ``mean_output_log_likelihood(f, idx)`` (as
    ``Regression`` and ``Classification`` do) in the same class as the
    ``log_likelihood`` it uses, so a subclass that changes the likelihood
    without saying how it depends on the outputs is refused.
    """
    owner = next((c for c in type(model).__mro__ if "mean_output_log_likelihood" in vars(c)), None)
    ok = (
        owner is not None
        and type(model).log_likelihood is owner.log_likelihood
        and isinstance(getattr(model, "net", None), (MLP, CNN))
    )
    if not ok:
        raise ValueError(
            "local reparameterisation needs a model with an nn.MLP or nn.CNN network and a likelihood of its outputs "
            "(models.Regression or models.Classification), "
            f"got {type(model).__name__} with net {type(getattr(model, 'net', None)).__name__}"
        )


def local_reparam_log_likelihood(model: Model, q: Normal, rng: np.random.Generator, n_mc: int, idx=None):
    """E_q[log p(D | θ)] estimated by sampling each layer's pre-activations; differentiable in q's parameters.

    Parameters
    ----------
    model
        A ``Regression`` or ``Classification`` with an ``MLP`` or a ``CNN``
        (whose convolutions sample through
        :func:`approxpost.weight_noise.local_reparam_forward`).
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
        The mean over the S passes of the model's log likelihood of the sampled outputs
        (``model.mean_output_log_likelihood``), constants included.

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
    x = model.x if idx is None else model.x[idx]
    if isinstance(net, CNN):
        # imported here: weight_noise builds on estimators, which re-exports this module
        from .weight_noise import local_reparam_forward

        return model.mean_output_log_likelihood(local_reparam_forward(net, q.loc, q.scale, x, rng, n_mc), idx)
    activation = getattr(ad, net.activation)
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
    return model.mean_output_log_likelihood(h, idx)


def local_reparam_log_likelihood_grad(
    model: Model, mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, n_mc: int, idx=None
) -> tuple:
    """``(estimate, ∂/∂μ, ∂/∂σ)`` of :func:`local_reparam_log_likelihood` at q = N(μ, diag σ²), one backward pass."""
    lam = np.stack([mu, sigma])  # one leaf holding the rows μ and σ
    value, pullback = ad.vjp(
        lambda lam: local_reparam_log_likelihood(model, Normal(lam[0], lam[1]), rng, n_mc, idx), lam
    )
    grad = pullback(1.0)
    return float(value), grad[0], grad[1]
