"""Curvature pieces of the Laplace method: a batched Hessian, the line-search grid, the evidence-optimal prior.

The engine's autodiff is reverse mode only, so the Hessian of log p(θ, D) is
computed from gradients: central differences along every coordinate, all
2D shifted points in one batched ``model.log_joint_and_grad`` call (a few
calls of ``HESSIAN_BATCH`` rows for large D), never D separate calls.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = [
    "hessian",
    "line_search_fractions",
    "prior_precision_at_evidence_max",
    "evaluate_with_prior",
    "log_prior_shift",
    "HESSIAN_BATCH",
    "FD_STEP",
    "PRIOR_RANGE",
    "unbounded_evidence_error",
]

HESSIAN_BATCH = 1024
"""Shifted points per batched gradient call (bounds memory for large D)."""

FD_STEP = float(np.finfo(np.float64).eps ** (1 / 3))
"""Relative central-difference step h = ε^(1/3) max(1, |θ_i|): balances truncation O(h²) and rounding O(ε/h)."""

PRIOR_RANGE = 25.0
"""The evidence maximiser is sought for log α within ±25 of the current log α (e^25 ≈ 7e10)."""


def hessian(model, theta: np.ndarray) -> np.ndarray:
    """H = −∇² log p(θ, D) (D, D), symmetrised, from central differences of batched gradients.

    Column i is −(∇ log p(θ + h_i e_i) − ∇ log p(θ − h_i e_i)) / 2h_i: exact
    (to rounding) when the gradient is linear in θ, as for linear-Gaussian
    models, and accurate to O(h²) ≈ 1e-11 relative otherwise.
    """
    theta = np.asarray(theta, dtype=np.float64)
    dim = theta.size
    steps = FD_STEP * np.maximum(1.0, np.abs(theta))
    rows = []
    for start in range(0, dim, HESSIAN_BATCH // 2):
        coords = np.arange(start, min(dim, start + HESSIAN_BATCH // 2))
        shifts = np.zeros((coords.size, dim))
        shifts[np.arange(coords.size), coords] = steps[coords]
        _, grads = model.log_joint_and_grad(np.concatenate([theta + shifts, theta - shifts]))
        rows.append(-(grads[: coords.size] - grads[coords.size :]) / (2.0 * steps[coords, None]))
    matrix = np.concatenate(rows)
    return 0.5 * (matrix + matrix.T)


def line_search_fractions() -> np.ndarray:
    """Fractions 1, ½, …, 1/128 of a Newton step, evaluated together in one batched call."""
    return 0.5 ** np.arange(8)


def prior_precision_at_evidence_max(eigenvalues, grad_lik, theta, logdet_curvature, alpha: float) -> float:
    """The prior precision α maximising the Laplace evidence of the local quadratic model.

    Parameters
    ----------
    eigenvalues
        λ (D,), the eigenvalues (≥ 0) of the likelihood curvature C.
    grad_lik, theta
        ∇ log p(D | θ) and θ in C's eigenbasis.
    logdet_curvature
        c (D,), the curvatures whose log det enters the evidence (λ, or diag C for "diag").
    alpha
        The current α: the root is bracketed around it.

    Notes
    -----
    With log p(D | θ + Δ) ≈ ℓ + gᵀΔ − ½ΔᵀCΔ, the mode under N(0, α⁻¹ I) is
    θ*(α) = (λ t + g) / (λ + α) coordinate-wise in the eigenbasis (t = θ),
    and by the envelope theorem α dL/dα = −½α|θ*(α)|² + D/2 − ½ Σ α/(c + α)
    (MacKay 1992). Its root is found by Brent's method in log α, to
    machine precision; if it has no sign change in the bracket the end
    the evidence rises towards is returned.
    """
    lam, g, t, c = (np.asarray(v, dtype=np.float64) for v in (eigenvalues, grad_lik, theta, logdet_curvature))
    dim = lam.size

    def slope(log_alpha: float) -> float:
        a = np.exp(log_alpha)
        mode = (lam * t + g) / (lam + a)
        return -0.5 * a * float(mode @ mode) + 0.5 * dim - 0.5 * float(np.sum(a / (c + a)))

    low, high = np.log(alpha) - PRIOR_RANGE, np.log(alpha) + PRIOR_RANGE
    slope_low, slope_high = slope(low), slope(high)
    if slope_low <= 0:
        return float(np.exp(low))
    if slope_high >= 0:
        return float(np.exp(high))
    return float(np.exp(optimize.brentq(slope, low, high, xtol=1e-14, rtol=4 * np.finfo(float).eps)))


def unbounded_evidence_error(method, eigenvalues, grad_lik, alpha: float) -> ValueError:
    """The error for an evidence with no maximum in α: what the curvature says about θ, and what to do.

    With C ⋡ 0 clipped to C⁺ and ∇ log p(D | θ) = g ≠ 0 along C⁺'s null
    directions, the local quadratic evidence grows like exp(g²/2α) as α → 0:
    θ is not a mode, and the prior std would run off to infinity.
    """
    smallest, n_bad = float(np.min(eigenvalues)), int(np.sum(eigenvalues <= 0))
    what = "Gauss–Newton matrix" if method.hessian == "ggn" else "Hessian"
    if smallest <= 0:
        reason = (
            f"the {what} of −log p(D | θ) there is not positive definite (smallest eigenvalue {smallest:.3g}, "
            f"{n_bad} of {eigenvalues.size} ≤ 0) and the gradient along those directions is not zero "
            f"(‖∇ log p(D | θ)‖ = {np.linalg.norm(grad_lik):.3g}): θ is not a mode"
        )
    else:
        reason = f"the likelihood is too flat there (smallest eigenvalue of the {what} {smallest:.3g})"
    advice = f"Optimise further first (n_steps={method.n_steps}, n_newton={method.n_newton}, or init nearer the mode)"
    if method.hessian != "ggn":
        advice += ", or use hessian='ggn', which is positive semi-definite with the gradient in its range"
    return ValueError(
        f"optimize_prior=True: the Laplace evidence keeps rising as the prior std grows (past "
        f"{1 / np.sqrt(alpha):.3g} in one Newton step), because {reason}. {advice}"
    )


def evaluate_with_prior(model, theta, precision, model_precision, idx=None) -> tuple:
    """log p(θ, D) and its gradient under the prior precision in use (the model's own prior swapped out)."""
    log_joint, grad = model.log_joint_and_grad(theta, idx)
    if np.array_equal(precision, model_precision):
        return log_joint, grad
    return log_joint + log_prior_shift(theta, precision, model_precision), grad - (precision - model_precision) * theta


def log_prior_shift(theta, precision, model_precision):
    """log N(θ; 0, diag(1/p)) − log N(θ; 0, diag(1/p₀)): the same log joint under another prior precision."""
    if np.array_equal(precision, model_precision):
        return 0.0 if np.ndim(theta) == 1 else np.zeros(np.shape(theta)[0])
    return 0.5 * np.sum(np.log(precision / model_precision)) - 0.5 * np.square(theta) @ (precision - model_precision)
