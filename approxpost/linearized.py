"""A network seen through its linearisation at θ*: Jacobians, the Gauss–Newton matrix, the GLM predictive.

Around a point θ* a network is, to first order, a linear model
f(x; θ) ≈ f(x; θ*) + J(x)(θ − θ*), with J(x) = ∂f(x; θ)/∂θ at θ*. That view
gives the generalised Gauss–Newton (GGN) curvature Jᵀ Λ J of the negative
log likelihood, PSD by construction, and the linearised (GLM) predictive
f ~ N(f(x; θ*), J Σ Jᵀ) of a Gaussian posterior N(θ*, Σ)
(Immer, Korzepa and Bauer 2021).

:class:`LaplacePosterior` is the Gaussian the Laplace method returns: a
``GaussianPosterior`` whose ``predict`` can also use the GLM predictive.
"""

from __future__ import annotations

import numpy as np

from . import autodiff as ad
from ._rng import as_generator
from ._validate import count
from .posteriors import GaussianPosterior, Predictive

__all__ = ["network_jacobian", "output_hessian", "ggn", "output_predictive", "LaplacePosterior", "JACOBIAN_CHUNK"]

JACOBIAN_CHUNK = 32
"""Data points per batched VJP: a chunk of c points costs c²·out network evaluations (memory bound)."""


def _network(model):
    """``model.net`` and ``model.x``, or a ``ValueError`` for a model that is not a network on data."""
    net, x = getattr(model, "net", None), getattr(model, "x", None)
    if net is None or x is None or not callable(getattr(net, "forward", None)):
        raise ValueError(
            f"the Jacobian needs a model with a network (model.net.forward) and inputs (model.x); "
            f"{type(model).__name__} has neither (use hessian='full' or 'diag')"
        )
    return net


def network_jacobian(model, theta, x=None) -> tuple:
    """Network outputs f(x; θ) (n, out) and their Jacobian J (n, out, D), from batched VJPs.

    For a chunk of c points, θ is repeated c·out times and row (i, k) is
    pulled back with the one-hot seed on output k of point i: one backward
    pass gives c·out rows of J (rows of a batched θ do not interact).
    """
    net = _network(model)
    theta = np.asarray(theta, dtype=np.float64)
    x = np.asarray(model.x if x is None else x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    n_out = np.shape(net.forward(theta, x[:1]))[-1]
    outputs, rows = [], []
    for start in range(0, x.shape[0], JACOBIAN_CHUNK):
        chunk = x[start : start + JACOBIAN_CHUNK]
        n_rows = chunk.shape[0] * n_out
        value, pullback = ad.vjp(lambda t, chunk=chunk: net.forward(t, chunk), np.tile(theta, (n_rows, 1)))
        seed = np.zeros(value.shape)
        row = np.arange(n_rows)
        seed[row, row // n_out, row % n_out] = 1.0
        outputs.append(value[0])
        rows.append(pullback(seed).reshape(chunk.shape[0], n_out, theta.size))
    return np.concatenate(outputs), np.concatenate(rows)


def output_hessian(model, f: np.ndarray) -> np.ndarray:
    """Λ = −∂² log p(y | f)/∂f², (n, out, out): I/σ² (Gaussian) or diag(p) − ppᵀ (categorical, p = softmax f)."""
    n, n_out = f.shape
    if callable(getattr(model, "predict_proba", None)):
        shifted = np.exp(f - f.max(axis=1, keepdims=True))
        p = shifted / shifted.sum(axis=1, keepdims=True)
        return p[:, :, None] * np.eye(n_out) - p[:, :, None] * p[:, None, :]
    noise_std = getattr(model, "noise_std", None)
    if noise_std is None:
        raise ValueError(
            f"the GGN needs a Gaussian (noise_std) or categorical (predict_proba) likelihood; {type(model).__name__} has neither"
        )
    return np.broadcast_to(np.eye(n_out) / noise_std**2, (n, n_out, n_out))


def ggn(model, theta) -> np.ndarray:
    """The generalised Gauss–Newton matrix Σ_i J_iᵀ Λ_i J_i of −log p(D | θ), (D, D), PSD."""
    f, jac = network_jacobian(model, theta)
    weighted = np.einsum("nkl,nld->nkd", output_hessian(model, f), jac)
    curvature = np.einsum("nkd,nke->de", jac, weighted)
    return 0.5 * (curvature + curvature.T)


def output_predictive(model, f: np.ndarray):
    """The predictive the model's likelihood calls for, from network outputs f (S, n, out)."""
    if callable(getattr(model, "output_predictive", None)):
        return model.output_predictive(f)
    return Predictive(f, model.noise_std)


class LaplacePosterior(GaussianPosterior):
    """A Gaussian N(θ*, Σ) at a mode, whose ``predict`` can also linearise the network there.

    Parameters
    ----------
    mean, std, cov, **kwargs
        As for ``GaussianPosterior`` (``mean`` is θ*).
    linearized
        What ``predict`` does when not told: the GLM predictive (True) or sampled networks (False).
    """

    def __init__(self, mean, std=None, cov=None, linearized=False, **kwargs):
        linearized = linearized.item() if isinstance(linearized, np.ndarray) and linearized.ndim == 0 else linearized
        if not isinstance(linearized, (bool, np.bool_)):
            raise ValueError(f"linearized must be True or False, got {linearized!r}")
        self.linearized = bool(linearized)
        super().__init__(mean, std=std, cov=cov, **kwargs)

    def predict(self, x, n_samples: int = 200, seed=None, linearized: bool | None = None):
        """The predictive at ``x``: sampled θ through the network, or with ``linearized`` the GLM predictive.

        Notes
        -----
        Linearised: f_s = f(x; θ*) + J(x)(θ_s − θ*) with θ_s ~ N(θ*, Σ), so
        f ~ N(f(x; θ*), J Σ Jᵀ): the Gaussian the posterior implies for the
        linearised network, which is what the GGN precision is the exact
        posterior of (Immer et al. 2021). The network itself is run once.

        References
        ----------
        Immer, A., Korzepa, M. and Bauer, M. (2021). Improving predictions of
            Bayesian neural nets via local linearization. AISTATS.
        """
        linearized = self.linearized if linearized is None else linearized
        if not isinstance(linearized, (bool, np.bool_)):
            raise ValueError(f"linearized must be True, False or None, got {linearized!r}")
        if not linearized:
            return super().predict(x, n_samples=n_samples, seed=seed)
        if self.model is None:
            raise ValueError("predict needs a model, but this posterior has model=None: pass model= to approxpost.load")
        deviation = self.sample(count("n_samples", n_samples), seed=as_generator(seed)) - self.mean
        f, jac = network_jacobian(self.model, self.mean, x)
        return output_predictive(self.model, f + np.einsum("nkd,sd->snk", jac, deviation))

    def __repr__(self) -> str:
        return f"LaplacePosterior(dim={self.dim}, {'diagonal' if self.is_diagonal else 'full covariance'})"
