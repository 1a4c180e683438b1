"""The Laplace approximation: a Gaussian at the mode, with the curvature there as its precision.

The mode is found in two phases of the same ``step``: ``n_steps`` Adam steps
(minibatches allowed) get near it, then ``n_newton`` full-data Newton steps
polish it, each with a batched backtracking line search. The curvature at
the final point is the precision; its log determinant gives the Laplace
evidence, which ``optimize_prior`` maximises over the prior std as it goes.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from ..distributions import LOG_2PI, Normal
from ..linearized import LaplacePosterior, ggn
from ..optim import Adam, AdamState
from .base import Method
from .curvature import (
    PRIOR_RANGE,
    evaluate_with_prior,
    hessian,
    line_search_fractions,
    log_prior_shift,
    prior_precision_at_evidence_max,
    unbounded_evidence_error,
)

__all__ = ["Laplace", "LaplaceState", "LaplaceInfo", "HESSIANS"]

HESSIANS = ("full", "diag", "ggn")
_ROUNDING = 64 * float(np.finfo(np.float64).eps)  # relative size of rounding in a log joint summed over data


def _fixed_cost(n_newton) -> int:
    """The least a run costs whatever the model: the start, entering the Newton phase, the line searches."""
    return 2 + int(n_newton) * len(line_search_fractions())


class LaplaceState(NamedTuple):
    """θ, log p(θ, D) under the prior in use and its gradient; Adam's moments; the prior precision (D,);
    the likelihood curvature C (D, D) at θ (``None`` before the Newton phase); the iteration count."""

    theta: np.ndarray
    log_joint: float
    grad: np.ndarray
    opt_state: AdamState
    prior_precision: np.ndarray
    curvature: np.ndarray | None
    iteration: int


class LaplaceInfo(NamedTuple):
    """One step: log p(θ, D) under the prior in use (a minibatch estimate in the Adam phase), ‖∇‖."""

    log_joint: float
    grad_norm: float


@dataclasses.dataclass(frozen=True)
class Laplace(Method):
    """The Laplace approximation N(θ*, Λ⁻¹) at the mode θ* of log p(θ, D) (MacKay 1992).

    Parameters
    ----------
    hessian
        ``"full"``: Λ = −∇² log p(θ*, D), exactly (up to the central
        differences it is computed with); ``"diag"``: its diagonal;
        ``"ggn"``: the generalised Gauss–Newton Λ = Jᵀ Λ_f J + prior
        precision (J the network Jacobian, Λ_f the likelihood's Hessian in
        the outputs), PSD by construction.
    optimize_prior
        Maximise the Laplace evidence over the (isotropic) prior std.
    n_steps, learning_rate, batch_size
        Adam phase: steps, step size, minibatch size (None: all data).
    n_newton
        Full-data Newton steps after Adam (each one curvature evaluation).
    linearized
        Whether the posterior's ``predict`` uses the linearised (GLM)
        predictive by default (``predict(..., linearized=...)`` overrides).
        For networks it is the better one: sampled weights from a Laplace
        Gaussian make wild networks (the precision is small along the many
        directions the data do not pin down), the GLM keeps f near f(x; θ*).
    budget
        Set by :meth:`with_budget`: the most model evaluations the whole run
        may cost. The Adam steps are then what is left after the Newton
        phase (at most ``n_steps``); spare iterations at the end change nothing.

    Notes
    -----
    log p(D) ≈ log p(θ*, D) + (D/2) log 2π − ½ log det Λ (for "diag", of the diagonal Λ). With a Gaussian
    prior of precision α, Λ = C + αI where C is the curvature of −log p(D|θ).
    *Indefinite curvature* (a saddle, or a mode not yet reached): C is
    replaced by its projection on the PSD matrices (negative eigenvalues set
    to 0; for "diag", negative entries), so Λ ≥ prior precision and every
    direction the data bend the wrong way falls back on the prior. At a
    mode of a log-concave likelihood nothing changes. Without a N(0, s²) prior
    there is nothing to fall back on: a non-PD Hessian is a ``ValueError``. ``diagnostics`` has
    ``log_evidence``, ``clipped_eigenvalues`` (how many were raised),
    ``grad_norm`` at θ*, and with ``optimize_prior`` ``prior_std``.

    ``optimize_prior``: each Newton step first solves dL/dα = 0 for the
    evidence L of the local quadratic model (exact for linear-Gaussian
    models), −½|θ*(α)|² + D/(2α) − ½ Σ 1/(c_i + α) = 0, then steps to θ*(α).
    The prior must be N(0, s² I). Away from a mode, where the Hessian is
    indefinite and the gradient is not zero along its clipped directions,
    that evidence grows without bound as s → ∞: a ``ValueError`` then says so,
    with the smallest eigenvalue (the GGN, PSD with the gradient in its
    range, does not have the problem).

    References
    ----------
    MacKay, D. J. C. (1992). A practical Bayesian framework for backpropagation networks. *Neural Computation* 4(3).
    Daxberger, E. et al. (2021). Laplace Redux — effortless Bayesian deep learning. NeurIPS.
    Martens, J. (2020). New insights and perspectives on the natural gradient method. *JMLR* 21.
    """

    hessian: str = "full"
    optimize_prior: bool = False
    n_steps: int = 2000
    learning_rate: float = 1e-2
    batch_size: int | None = None
    n_newton: int = 10
    linearized: bool = False
    budget: int | None = None

    def validate(self) -> None:
        if self.hessian not in HESSIANS:
            raise ValueError(f"hessian must be one of {', '.join(map(repr, HESSIANS))}, got {self.hessian!r}")
        check.flag("optimize_prior", self.optimize_prior)
        check.flag("linearized", self.linearized)
        check.count("n_steps", self.n_steps, minimum=0)
        check.positive("learning_rate", self.learning_rate)
        check.count("n_newton", self.n_newton)
        check.optional(check.count, "batch_size", self.batch_size)
        check.optional(check.count, "budget", self.budget, _fixed_cost(self.n_newton), "the Newton phase's least cost")

    @property
    def n_main_steps(self) -> int:
        return int(self.n_steps) + int(self.n_newton)

    def _curvature_rows(self, model) -> int:
        """Counted rows of one curvature evaluation: 2D shifted gradients for a Hessian, none for the GGN."""
        return 0 if self.hessian == "ggn" else 2 * int(model.dim)

    def jacobian_charge(self, model) -> int:
        """Gradient evaluations one GGN curvature is charged (its Jacobian runs ``model.net.forward`` itself,
        about one backward pass an output); 0 for the Hessians, whose gradients the model counts."""
        if self.hessian != "ggn":
            return 0
        return int(getattr(getattr(model, "net", None), "n_outputs", 1))

    def evals_per_step(self, model) -> int:
        """The dearest step, the first Newton one: full-data value + curvature, line search, curvature again."""
        curvature = self._curvature_rows(model) + self.jacobian_charge(model)
        return 1 + curvature + len(line_search_fractions()) + curvature

    def uncounted_evals(self, model, state: LaplaceState, new_state, info) -> tuple:
        """The Jacobians of the curvatures this step computed: one a Newton step, two entering the phase."""
        n_adam = self.n_adam_steps(model)
        if not n_adam <= state.iteration < n_adam + int(self.n_newton):
            return 0, 0  # an Adam step or a budget's spare iteration: no curvature
        return (1 + (state.curvature is None)) * self.jacobian_charge(model), 0

    def with_budget(self, n_evals: int) -> Laplace:
        """A copy whose run costs at most ``n_evals`` evaluations, the Newton polish included.

        The Newton phase's cost depends on the model (2D rows a Hessian, one
        charge an output for a GGN Jacobian), so the copy keeps
        ``budget = n_evals`` and ``step`` works out how many Adam steps the
        rest pays for; ``n_steps`` becomes the most there can be, and
        iterations left after the Newton phase change nothing.
        """
        n_evals = check.count("n_evals", n_evals, _fixed_cost(self.n_newton), "the Newton phase's least cost")
        return dataclasses.replace(self, n_steps=n_evals - _fixed_cost(self.n_newton), budget=n_evals)

    def n_adam_steps(self, model) -> int:
        """Adam steps of the run: ``n_steps``, or under a ``budget`` what is left after the Newton phase."""
        if self.budget is None:
            return int(self.n_steps)
        # n_newton + 1 curvatures: one entering the phase, one after each Newton step
        curvature = self._curvature_rows(model) + self.jacobian_charge(model)
        newton = 1 + curvature + int(self.n_newton) * (len(line_search_fractions()) + curvature)
        left = int(self.budget) - 1 - newton
        if left < 0:
            raise ValueError(
                f"budget={self.budget} (n_evals) does not pay for the Newton phase on {type(model).__name__} "
                f"(D={model.dim}, hessian={self.hessian!r}, {newton} evaluations): give a larger budget or fewer n_newton"
            )
        return min(int(self.n_steps), left)

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The starting point (D,): ``init`` if given, else one draw of ``model.init``."""
        if init is None:
            return np.asarray(model.init(rng, 1), dtype=np.float64)[0]
        position = np.array(init, dtype=np.float64)
        if position.shape != (model.dim,):
            raise ValueError(f"init is the starting point and must have shape ({model.dim},), got {position.shape}")
        return position

    def _prior_precision(self, model) -> np.ndarray:
        prior = model.prior_distribution()
        if isinstance(prior, Normal) and np.all(prior.mean == 0):
            return 1.0 / prior.std**2
        if self.optimize_prior or self.hessian == "ggn":
            raise ValueError(
                f"hessian={self.hessian!r} with optimize_prior={self.optimize_prior} needs a N(0, s²) prior "
                f"(model.prior_distribution()), but {type(model).__name__} gives {prior!r}"
            )
        return np.zeros(model.dim)  # no prior to fall back on: the whole log density is the "likelihood" part

    def init(self, model, position, rng: np.random.Generator) -> LaplaceState:
        """θ = ``position``, its log joint and gradient, fresh Adam moments, the model's prior precision."""
        self.n_adam_steps(model)  # a budget too small for this model fails here, before any step
        precision = self._prior_precision(model)
        if self.optimize_prior and np.ptp(precision) > 1e-12 * precision.max():
            raise ValueError("optimize_prior needs an isotropic prior N(0, s² I); the model's prior stds differ")
        theta = np.array(position, dtype=np.float64)
        log_joint, grad = model.log_joint_and_grad(theta)
        return LaplaceState(theta, log_joint, grad, Adam(self.learning_rate).init((theta,)), precision, None, 0)

    def _curvature(self, model, theta, model_precision) -> np.ndarray:
        """C, the curvature of −log p(D | θ): the Hessian minus the prior's, or the GGN."""
        if self.hessian == "ggn":
            return ggn(model, theta)
        return hessian(model, theta) - np.diag(model_precision)

    def step(self, model, state: LaplaceState, rng: np.random.Generator) -> tuple:
        """An Adam step (the first ``n_adam_steps``), then ``n_newton`` Newton steps with the batched line search."""
        model_precision = self._prior_precision(model)
        precision = state.prior_precision
        n_adam = self.n_adam_steps(model)
        if state.iteration >= n_adam + int(self.n_newton):  # a budget's spare iterations: nothing left to pay for
            info = LaplaceInfo(float(state.log_joint), float(np.linalg.norm(state.grad)))
            return state._replace(iteration=state.iteration + 1), info
        if state.iteration < n_adam:
            idx = None
            if self.batch_size is not None and model.n_data is not None and self.batch_size < model.n_data:
                idx = rng.choice(model.n_data, size=int(self.batch_size), replace=False)
            log_joint, grad = evaluate_with_prior(model, state.theta, precision, model_precision, idx)
            (theta,), opt_state = Adam(self.learning_rate).update((state.theta,), (-grad,), state.opt_state)
            # the log joint stored is that of the point the step started from; the Newton phase re-evaluates
            new = state._replace(theta=theta, opt_state=opt_state, iteration=state.iteration + 1, curvature=None)
            return new, LaplaceInfo(float(log_joint), float(np.linalg.norm(grad)))
        if state.curvature is None:  # entering the Newton phase: full-data values and curvature at θ
            log_joint, grad = evaluate_with_prior(model, state.theta, precision, model_precision)
            state = state._replace(log_joint=log_joint, grad=grad)
            state = state._replace(curvature=self._curvature(model, state.theta, model_precision))
        eigenvalues, eigenvectors = np.linalg.eigh(state.curvature)
        if not np.any(state.prior_precision) and eigenvalues[0] <= 0:
            raise ValueError(
                f"the Hessian at θ is not positive definite (smallest eigenvalue {eigenvalues[0]:.3g}) and "
                f"{type(model).__name__} has no Gaussian prior to fall back on: start nearer the mode (init) "
                f"or take more Adam steps (n_steps={self.n_steps})"
            )
        raw = eigenvalues  # the Newton step (and the evidence's θ*(α)) use the whole curvature, "diag" too
        eigenvalues = np.maximum(eigenvalues, 0.0)  # the PSD projection C⁺ (see Notes)
        log_joint, grad = state.log_joint, state.grad
        if self.optimize_prior:
            grad_lik = grad + precision * state.theta
            logdet_curvature = np.maximum(np.diag(state.curvature), 0.0) if self.hessian == "diag" else eigenvalues
            alpha = prior_precision_at_evidence_max(
                eigenvalues, eigenvectors.T @ grad_lik, eigenvectors.T @ state.theta, logdet_curvature, precision[0]
            )
            if np.log(precision[0] / alpha) >= PRIOR_RANGE * (1 - 1e-9):  # no maximum: the prior std runs off
                raise unbounded_evidence_error(self, raw, grad_lik, alpha)
            new_precision = np.full(model.dim, alpha)
            log_joint = log_joint + log_prior_shift(state.theta, new_precision, precision)
            grad, precision = grad_lik - alpha * state.theta, new_precision
        # the Newton direction under `precision`: C⁺ + diag(p) is positive definite
        direction = np.linalg.solve((eigenvectors * eigenvalues) @ eigenvectors.T + np.diag(precision), grad)
        candidates = state.theta + line_search_fractions()[:, None] * direction
        values, grads = evaluate_with_prior(model, candidates, precision, model_precision)
        # within rounding of the mode the values cannot tell the points apart: trust the full Newton step
        # (its gradient is the smaller); otherwise take the highest point, or stay if none is higher
        rounding = _ROUNDING * max(1.0, abs(log_joint))
        best = int(np.argmax(values))
        if values[best] <= log_joint + rounding and values[0] >= log_joint - rounding:
            best = 0
        theta = state.theta
        if values[best] >= log_joint - rounding:
            theta, log_joint, grad = candidates[best], float(values[best]), grads[best]
        curvature = self._curvature(model, theta, model_precision)
        new = LaplaceState(theta, log_joint, grad, state.opt_state, precision, curvature, state.iteration + 1)
        return new, LaplaceInfo(float(log_joint), float(np.linalg.norm(grad)))

    def build_posterior(self, model, state: LaplaceState, kept: list, history: dict) -> LaplacePosterior:
        """N(θ*, Λ⁻¹) with the Laplace evidence, from the last Newton step's θ and curvature."""
        if state.curvature is None:
            raise ValueError("fit stopped before the Newton phase: no curvature at the mode was computed")
        precision, dim = state.prior_precision, model.dim
        eigenvalues, eigenvectors = np.linalg.eigh(state.curvature)
        if self.hessian == "diag":
            raw = np.diag(state.curvature)
            clipped, diag_precision = int(np.sum(raw < 0)), np.maximum(raw, 0.0) + precision
            log_det = np.sum(np.log(diag_precision))
        else:
            clipped = int(np.sum(eigenvalues < 0))
            system = (eigenvectors * np.maximum(eigenvalues, 0.0)) @ eigenvectors.T + np.diag(precision)
            sign, log_det = np.linalg.slogdet(system)
            log_det = log_det if sign > 0 else np.nan
        if not np.isfinite(log_det):
            raise ValueError(
                "the curvature at the mode is not positive definite and the model has no Gaussian prior to fall back "
                "on: run more n_steps / n_newton, or use a model whose prior_distribution() is a Normal"
            )
        diagnostics = {
            "log_evidence": float(state.log_joint + 0.5 * dim * LOG_2PI - 0.5 * log_det),
            "clipped_eigenvalues": clipped,
            "grad_norm": float(np.linalg.norm(state.grad)),
        }
        if self.optimize_prior:
            diagnostics["prior_std"] = float(1.0 / np.sqrt(precision[0]))
        if self.hessian == "diag":
            std = 1.0 / np.sqrt(diag_precision)
            return LaplacePosterior(state.theta.copy(), std=std, linearized=self.linearized, diagnostics=diagnostics)
        # Σ from the eigenvectors of the (PD) precision: symmetric and PD even when badly conditioned
        values, vectors = np.linalg.eigh(system)
        cov = (vectors / values) @ vectors.T
        cov = 0.5 * (cov + cov.T)
        return LaplacePosterior(state.theta.copy(), cov=cov, linearized=self.linearized, diagnostics=diagnostics)
