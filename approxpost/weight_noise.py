"""Forward passes of a CNN under a mean-field Gaussian over its weights: three ways to sample.

Bayes by Backprop needs f(x; θ) for θ ~ q = N(μ, diag σ²), differentiable in
(μ, σ). Each function here returns ``n_mc`` noisy passes (n_mc, N, outputs)
in one batched computation, and differs only in how the noise enters:

- ``weight_sampling_forward``: draw θ = μ + σ ⊙ ε and run the network; every
  data point in a pass shares the same weights.
- ``local_reparam_forward``: sample each layer's pre-activations instead of
  its weights: mean ``linear(h; μ)``, variance ``linear(h²; σ²)`` (for a
  convolution, a convolution of x² with σ²), fresh noise per activation.
- ``flipout_forward``: one weight perturbation ΔW = σ ⊙ ε per pass, decorrelated
  across data points by random signs, ``W_n = μ + ΔW ∘ r_n s_nᵀ``.

The network must expose ``unflatten``, ``layers``, ``layer_linear`` and
``layer_output`` (``nn.CNN`` does). :func:`weight_noise_log_likelihood` turns
a forward into a model's expected log likelihood (``BayesByBackprop``'s
``estimator``), :func:`weight_noise_grad` into an ELBO gradient estimator.
"""

from __future__ import annotations

import numpy as np

from . import autodiff as ad
from ._rng import as_generator
from ._validate import count
from .estimators import VIGrad, check_q, dsigma_drho, normal_kl_grad

__all__ = [
    "weight_sampling_forward",
    "local_reparam_forward",
    "flipout_forward",
    "local_reparam_layer",
    "flipout_layer",
    "FORWARDS",
    "check_weight_noise_model",
    "weight_noise_log_likelihood",
    "weight_noise_grad",
]


def weight_sampling_forward(net, mu, sigma, x, rng: np.random.Generator, n_mc: int):
    """``n_mc`` passes with θ = μ + σ ⊙ ε, ε ~ N(0, I) per pass: (n_mc, N, outputs).

    References
    ----------
    Blundell, C. et al. (2015). Weight uncertainty in neural networks. ICML.
    """
    eps = rng.standard_normal((count("n_mc", n_mc), net.dim))
    return net.forward(ad.add(mu, ad.mul(sigma, eps)), x)


def local_reparam_forward(net, mu, sigma, x, rng: np.random.Generator, n_mc: int):
    """``n_mc`` passes that sample every layer's pre-activations from their Gaussian given the layer input.

    Notes
    -----
    With input h fixed and independent weights W ~ N(μ_W, σ_W²), b ~ N(μ_b, σ_b²),
    each output activation z = linear(h; W, b) is Gaussian with mean
    linear(h; μ_W, μ_b) and variance linear(h²; σ_W², σ_b²): for a
    convolution, two convolutions. z is drawn as mean + √var ⊙ ξ with ξ fresh
    for every activation. Each activation's marginal is exact; for a dense
    layer so is each data point's joint, hence the ELBO. In a convolution the
    positions of one image share their filter, so their pre-activations are
    correlated under q; fresh ξ per position drops that correlation, so on a
    CNN this estimates a slightly different objective (Kingma et al. 2015, §3).

    References
    ----------
    Kingma, D. P., Salimans, T. and Welling, M. (2015). Variational dropout and the
    local reparameterization trick. NeurIPS.
    """
    n_mc = count("n_mc", n_mc)
    h = x
    for i, (mean_params, var_params) in enumerate(zip(net.unflatten(mu), net.unflatten(ad.square(sigma)))):
        h = net.layer_output(i, local_reparam_layer(net, i, h, mean_params, var_params, rng, n_mc))
    return h


def local_reparam_layer(net, i: int, h, mean_params, var_params, rng: np.random.Generator, n_mc: int):
    """Layer ``i``'s pre-activations sampled given its input h: mean + √var ⊙ ξ, (n_mc, …) (see above).

    ``mean_params`` and ``var_params`` are that layer's (W, b) means and
    variances as ``net.unflatten`` shapes them; h is unbatched data or a
    batch of n_mc inputs.
    """
    mean = net.layer_linear(i, h, *mean_params)
    var = net.layer_linear(i, ad.square(h), *var_params)
    shape = np.shape(mean)
    xi = rng.standard_normal(shape if _is_batched(net, i, h) else (n_mc, *shape))
    return ad.add(mean, ad.mul(ad.sqrt(var), xi))


def _is_batched(net, i: int, h) -> bool:
    """Whether layer i's input h carries a leading pass axis: images are (N, C, H, W), features (N, F) unbatched."""
    takes_images = net.layers[i].kind == "conv" or i == len(net.channels)  # the first dense layer flattens images
    return np.ndim(h) > (4 if takes_images else 2)


def _signs(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.integers(0, 2, size=shape) * 2.0 - 1.0


def flipout_forward(net, mu, sigma, x, rng: np.random.Generator, n_mc: int):
    """``n_mc`` passes with one weight perturbation per pass, sign-flipped independently for each data point.

    Notes
    -----
    For a layer, ``z_n = linear(h_n; μ) + r_n ∘ linear(h_n ∘ s_n; ΔW, Δb)`` with
    ΔW = σ_W ⊙ ε shared by the pass and r_n, s_n uniform ±1 per data point
    and channel (per output / input unit of a dense layer, per output / input
    channel of a convolution, shared by all positions). That is data point n
    using ``μ + ΔW ∘ r_n s_nᵀ``, which is distributed as μ + ΔW because ε is
    symmetric: every data point sees exact weight samples, spatial
    correlations included, so the estimate is unbiased for the ELBO, while
    different data points' noise is nearly independent (lower variance than
    shared weights).

    References
    ----------
    Wen, Y., Vicol, P., Ba, J., Tran, D. and Grosse, R. (2018). Flipout: efficient
    pseudo-independent weight perturbations on mini-batches. ICLR.
    """
    n_mc = count("n_mc", n_mc)
    h = x
    for i, (mean_params, sigma_params) in enumerate(zip(net.unflatten(mu), net.unflatten(sigma))):
        h = net.layer_output(i, flipout_layer(net, i, h, mean_params, sigma_params, rng, n_mc))
    return h


def flipout_layer(net, i: int, h, mean_params, sigma_params, rng: np.random.Generator, n_mc: int):
    """Layer ``i``'s Flipout pre-activations given its input h, (n_mc, …) (see ``flipout_forward``).

    ``mean_params`` and ``sigma_params`` are that layer's (W, b) means and
    standard deviations as ``net.unflatten`` shapes them.
    """
    (mean_w, mean_b), (sigma_w, sigma_b) = mean_params, sigma_params
    w_shape, b_shape, h_shape = np.shape(sigma_w), np.shape(sigma_b), np.shape(h)
    n = h_shape[-4] if len(h_shape) >= 4 else h_shape[-2]  # images (…, N, C, H, W) or features (…, N, F)
    delta_w = ad.mul(sigma_w, rng.standard_normal((n_mc, *w_shape)))
    delta_b = ad.mul(sigma_b, rng.standard_normal((n_mc, 1, *b_shape)))
    if net.layers[i].kind == "conv":  # one sign per (point, channel), shared by every position
        s_in, r_out = _signs(rng, (n_mc, n, h_shape[-3], 1, 1)), _signs(rng, (n_mc, n, w_shape[0], 1, 1))
    else:  # one sign per (point, unit); an image input is flattened inside layer_linear, so sign it as an image
        in_units = h_shape[-3:] if len(h_shape) >= 4 else h_shape[-1:]
        s_in, r_out = _signs(rng, (n_mc, n, *in_units)), _signs(rng, (n_mc, n, w_shape[1]))
    mean = net.layer_linear(i, h, mean_w, mean_b)
    return ad.add(mean, ad.mul(net.layer_linear(i, ad.mul(h, s_in), delta_w, delta_b), r_out))


FORWARDS = {"weights": weight_sampling_forward, "local": local_reparam_forward, "flipout": flipout_forward}


def check_weight_noise_model(model, estimator: str) -> None:
    """Raise ``ValueError`` unless ``estimator`` names a forward and ``model`` can run it.

    The model needs a layered network (``unflatten``, ``layers``,
    ``layer_linear``, ``layer_output``: an ``nn.CNN``) and a likelihood of
    the network outputs, ``mean_output_log_likelihood``, defined in the class
    of its ``log_likelihood`` (``models.Regression``, ``models.Classification``),
    so a subclass that changes the likelihood without saying how it depends
    on the outputs is refused.
    """
    if estimator not in FORWARDS:
        raise ValueError(f"estimator must be one of {sorted(FORWARDS)}, got {estimator!r}")
    owner = next((c for c in type(model).__mro__ if "mean_output_log_likelihood" in vars(c)), None)
    net = getattr(model, "net", None)
    ok = owner is not None and type(model).log_likelihood is owner.log_likelihood
    if not (ok and all(hasattr(net, a) for a in ("unflatten", "layers", "layer_linear", "layer_output"))):
        raise ValueError(
            f"estimator={estimator!r} samples a layered network's activations: it needs a models.Classification "
            f"or models.Regression with an nn.CNN, got {type(model).__name__} with net {type(net).__name__}"
        )


def weight_noise_log_likelihood(model, estimator: str, mu, sigma, rng: np.random.Generator, n_mc: int, idx=None):
    """E_q[log p(D | θ)] for q = N(μ, diag σ²) from ``n_mc`` passes of ``FORWARDS[estimator]``; differentiable.

    The outputs of the noisy passes on the data (or minibatch ``idx``) go to
    ``model.mean_output_log_likelihood``, which averages over passes and
    rescales a minibatch by N/|idx|. Unbiased for the ELBO's data term with
    ``"weights"`` and ``"flipout"``; ``"local"`` on a convolution drops the
    covariance of positions that share a filter (see :func:`local_reparam_forward`).
    """
    check_weight_noise_model(model, estimator)
    x = model.x if idx is None else model.x[idx]
    return model.mean_output_log_likelihood(FORWARDS[estimator](model.net, mu, sigma, x, rng, n_mc), idx)


def weight_noise_grad(model, q, n_mc: int = 16, seed=None, estimator: str = "flipout") -> VIGrad:
    """∇_(μ,ρ) ELBO of q with the data term from :func:`weight_noise_log_likelihood` and the KL in closed form.

    Same contract as :func:`approxpost.estimators.reparam_grad` (so
    :func:`~approxpost.estimators.grad_variance` and
    ``compare.gradient_variance_curves`` can measure it); the model's prior
    must be a ``Normal``.
    """
    check_weight_noise_model(model, estimator)
    check_q(model, q)
    sigma, rng = q.std, as_generator(seed)
    lam = np.stack([q.mu, sigma])  # one leaf holding the rows μ and σ
    _, pullback = ad.vjp(
        lambda lam: weight_noise_log_likelihood(model, estimator, lam[0], lam[1], rng, count("n_mc", n_mc)), lam
    )
    ell = pullback(1.0)
    _, kl_mu, kl_sigma = normal_kl_grad(q.mu, sigma, model.prior_distribution())
    return VIGrad(ell[0] - kl_mu, (ell[1] - kl_sigma) * dsigma_drho(sigma))
