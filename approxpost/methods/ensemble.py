"""Deep ensembles: M MAP fits from independent starts, trained together as one (M, D) batch.

Every step evaluates all M members in one batched ``model.log_joint_and_grad``
call and moves them with one elementwise Adam update, so an ensemble of 5
costs far less than 5 separate fits. With ``anchored=True`` each member is
pulled towards its own draw from the prior instead of towards the prior mean
(Pearce et al. 2020), and with ``perturb_targets=True`` as well it also fits
its own noisy copy of the targets: on a linear-Gaussian model the members are
then exact, independent posterior draws (randomise-then-optimise).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from .. import autodiff as ad
from ..distributions import Normal
from ..weight_posteriors import EnsemblePosterior
from .point_common import OptimizerMethod, check_finite_gradient
from .vi_common import model_name

__all__ = ["DeepEnsemble", "EnsembleState", "EnsembleInfo"]


class EnsembleState(NamedTuple):
    """Members θ (M, D), Adam's state, the epoch (``order``, ``batch_start``) and each member's randomisation.

    ``anchor_pull`` (M, D) is Σ⁻¹(a_m − μ) for member m's anchor a_m (zeros
    unanchored); ``target_noise`` (M, N, out) its perturbation of y, or None.
    """

    theta: np.ndarray
    opt_state: object
    order: np.ndarray
    batch_start: int
    anchor_pull: np.ndarray
    target_noise: np.ndarray | None


class EnsembleInfo(NamedTuple):
    """One step, per member (M,): log p(θ_m, D) (a full-data estimate on a minibatch), ‖∇ of its objective‖."""

    log_joint: np.ndarray
    grad_norm: np.ndarray


@dataclasses.dataclass(frozen=True)
class DeepEnsemble(OptimizerMethod):
    """An equal-weight ensemble of M MAP fits (Lakshminarayanan et al. 2017), batched over members.

    Parameters
    ----------
    n_members
        M, the number of members.
    n_steps
        Adam steps; each evaluates all members once on the same minibatch.
    learning_rate
        Adam's step size.
    batch_size
        Data points per step; ``None`` uses all of them.
    anchored
        Regularise member m towards its own prior draw a_m ~ p(θ) instead of
        the prior mean (anchored ensembles, Pearce et al. 2020); needs a
        Gaussian ``model.prior_distribution()``.
    perturb_targets
        With ``anchored``: member m also fits y + ε_m, ε_m ~ N(0, σ² I), one
        fixed draw per member; needs a Gaussian-noise model with ``net``,
        ``x``, ``y`` and ``noise_std`` (e.g. ``Regression``).

    Notes
    -----
    Member m maximises log p(D | θ) − ½ (θ − a_m)ᵀ Σ⁻¹ (θ − a_m) with a_m = μ
    (plain MAP) or a_m ~ N(μ, Σ) (anchored): the gradient of log p(θ, D) plus
    Σ⁻¹(a_m − μ), one batched model call. On ``LinearRegression`` (precision
    Λ = XᵀX/σ² + Σ⁻¹) the fit is θ_m = Λ⁻¹(Xᵀỹ_m/σ² + Σ⁻¹a_m), so:
    anchors alone give the exact mean but covariance Λ⁻¹Σ⁻¹Λ⁻¹ ≺ Λ⁻¹ (the
    underestimated marginal variance Pearce et al. describe; exact only along
    directions the data do not inform); with ỹ_m = y + ε_m too the covariance
    is Λ⁻¹(XᵀX/σ² + Σ⁻¹)Λ⁻¹ = Λ⁻¹, exact posterior draws. Perturbing the
    targets costs one more network pass per member (the −ε_mᵀ(y − f)/σ² term).
    ``init`` is (M, D) starting points (default ``model.init(rng, M)``); the
    members share the minibatch order; ``history`` holds per-member
    ``log_joint`` and ``grad_norm`` (n_steps, M).

    References
    ----------
    Lakshminarayanan, B., Pritzel, A. and Blundell, C. (2017). Simple and scalable
    predictive uncertainty estimation using deep ensembles. NeurIPS.
    Pearce, T., Leibfried, F., Brintrup, A., Zaki, M. and Neely, A. (2020).
    Uncertainty in neural networks: approximately Bayesian ensembling. AISTATS.
    Bardsley, J. M., Solonen, A., Haario, H. and Laine, M. (2014). Randomize-then-optimize:
    a method for sampling from posterior distributions in nonlinear inverse problems. SIAM J. Sci. Comput.
    """

    n_members: int = 5
    n_steps: int = 2000
    learning_rate: float = 1e-2
    batch_size: int | None = None
    anchored: bool = False
    perturb_targets: bool = False

    def validate(self) -> None:
        super().validate()
        check.count("n_members", self.n_members)
        check.flag("anchored", self.anchored)
        check.flag("perturb_targets", self.perturb_targets)
        if self.perturb_targets and not self.anchored:
            raise ValueError("perturb_targets=True needs anchored=True: the two together make the members exact draws")

    def initial_position(self, model, init, rng: np.random.Generator) -> np.ndarray:
        """The members' starting points (M, D): ``init`` if given, else ``model.init(rng, M)``."""
        if init is None:
            return np.asarray(model.init(rng, self.n_members), dtype=np.float64)
        position = np.asarray(init, dtype=np.float64)
        if position.shape != (self.n_members, model.dim):
            raise ValueError(
                f"init holds the members' starting points and must have shape ({self.n_members}, {model.dim}), "
                f"got {position.shape}"
            )
        return position

    def init(self, model, position, rng: np.random.Generator) -> EnsembleState:
        """Members at ``position`` (M, D); anchors and target noise drawn here, once per member."""
        start = self.start(model, position)
        anchor_pull, target_noise = np.zeros_like(start.theta), None
        if self.anchored:
            prior = model.prior_distribution()
            if not isinstance(prior, Normal):
                raise ValueError(
                    f"anchored=True needs a Gaussian prior, but {model_name(model)}.prior_distribution() is not a Normal"
                )
            # a = μ + s z, so Σ⁻¹(a − μ) = z / s
            anchor_pull = rng.standard_normal(start.theta.shape) / prior.std
        if self.perturb_targets:
            missing = [name for name in ("net", "x", "y") if getattr(model, name, None) is None]
            if missing or getattr(model, "noise_std", None) is None:
                raise ValueError(
                    f"perturb_targets=True needs a Gaussian-noise regression model (net, x, y, noise_std), "
                    f"but {model_name(model)} lacks {missing or ['noise_std']}"
                )
            target_noise = model.noise_std * rng.standard_normal((self.n_members,) + model.y.shape)
        return EnsembleState(*start, anchor_pull, target_noise)

    def _log_joint_and_grad(self, model, state: EnsembleState, idx) -> tuple:
        """Every member's log p(θ_m, D) and the gradient of its own (randomised) objective, one batched pass."""
        if state.target_noise is None:
            value, gradient = model.log_joint_and_grad(state.theta, idx)
            return value, gradient + state.anchor_pull
        x = model.x if idx is None else model.x[idx]
        noise = state.target_noise if idx is None else state.target_noise[:, idx]
        scale = model.minibatch_scale(idx) / model.noise_std**2
        log_joints = []

        def objective(theta):
            # log N(y + ε | f, σ²) = log N(y | f, σ²) − εᵀ(y − f)/σ² + const: only +εᵀf/σ² depends on θ
            log_joint = model.log_joint(theta, idx)
            log_joints.append(log_joint)
            return log_joint + scale * ad.sum(noise * model.net.forward(theta, x), axis=(-2, -1))

        _, pullback = ad.vjp(objective, state.theta)
        return np.array(log_joints[0].value), pullback(np.ones(self.n_members)) + state.anchor_pull

    def step(self, model, state: EnsembleState, rng: np.random.Generator) -> tuple:
        """One Adam step of every member at once: ``(EnsembleState, EnsembleInfo)``."""
        idx, order, batch_start = self.next_batch(model, state, rng)
        value, gradient = self._log_joint_and_grad(model, state, idx)
        check_finite_gradient(value, gradient, self.learning_rate)
        moved = self.ascend(state, gradient, order, batch_start)
        info = EnsembleInfo(log_joint=np.asarray(value, dtype=np.float64), grad_norm=np.linalg.norm(gradient, axis=1))
        return EnsembleState(*moved, state.anchor_pull, state.target_noise), info

    def build_posterior(self, model, state: EnsembleState, kept: list, history: dict) -> EnsemblePosterior:
        """The equal-weight mixture of the final members."""
        return EnsemblePosterior(state.theta)

    def evals_per_step(self, model) -> int:
        """One gradient evaluation per member, two with ``perturb_targets`` (its extra network pass)."""
        return int(self.n_members) * (2 if self.perturb_targets else 1)

    def uncounted_evals_per_step(self, model) -> tuple:
        """``perturb_targets`` runs the network once more per member, outside the model's log joint."""
        return (int(self.n_members), 0) if self.perturb_targets else (0, 0)
