"""Gaussian distributions over parameter vectors, written with ``ad`` ops so they differentiate.

``Normal`` and ``MeanFieldNormal`` are diagonal Gaussians whose event is the
last axis: ``log_prob`` of a (D,) vector is a number, of an (S, D) batch an
(S,) array. Their parameters may be ``ad.Var`` s, which is how the ELBO
gradient estimators differentiate through ``log_prob``, ``sample`` and ``kl``.
"""

from __future__ import annotations

import numpy as np

from . import autodiff as ad

__all__ = ["Normal", "MeanFieldNormal", "MultivariateNormal", "kl", "gaussian_entropy", "LOG_2PI"]

LOG_2PI = float(np.log(2.0 * np.pi))
"""log 2π, the constant of every Gaussian log density in the package."""


def gaussian_entropy(half_log_det, dim: int):
    """Entropy of a D-dimensional Gaussian from ½ log det Σ: H = ½ log det Σ + D/2 (1 + log 2π).

    ``half_log_det`` may be an ``ad.Var`` (Σ log σ for a diagonal Gaussian), so H differentiates.
    """
    return half_log_det + 0.5 * dim * (LOG_2PI + 1.0)


def _value(x):
    return x.value if isinstance(x, ad.Var) else np.asarray(x, dtype=np.float64)


def _check_finite(name: str, x) -> None:
    value = _value(x)
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got non-finite values in an array of shape {value.shape}")


class Normal:
    """Diagonal Gaussian N(loc, diag(scale²)) over vectors shaped like ``loc``.

    Parameters
    ----------
    loc
        Mean, shape (D,) (a scalar is taken as D = 1).
    scale
        Standard deviations, broadcastable to ``loc``, all positive.
    """

    def __init__(self, loc, scale):
        if not isinstance(loc, ad.Var):
            loc = np.atleast_1d(np.asarray(loc, dtype=np.float64))
        if not isinstance(scale, ad.Var):
            scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), np.shape(_value(loc))).copy()
        _check_finite("loc", loc)
        _check_finite("scale", scale)
        if np.any(_value(scale) <= 0):
            raise ValueError(
                f"scale must be positive, got min {np.min(_value(scale))} in shape {np.shape(_value(scale))}"
            )
        self.loc, self.scale = loc, scale

    @property
    def dim(self) -> int:
        return int(np.shape(_value(self.loc))[-1])

    @property
    def mean(self) -> np.ndarray:
        return _value(self.loc)

    @property
    def std(self) -> np.ndarray:
        return _value(self.scale)

    @property
    def cov(self) -> np.ndarray:
        """diag(scale²), (D, D)."""
        return np.diag(self.std**2)

    def _check_x(self, x) -> None:
        shape = np.shape(_value(x))
        if not shape or shape[-1] != self.dim:
            raise ValueError(f"x has shape {shape} but the distribution has dim {self.dim}: expected (D,) or (S, D)")

    def log_prob(self, x):
        """log N(x | loc, scale²) summed over the last axis.  (D,) -> scalar, (S, D) -> (S,)."""
        self._check_x(x)
        z = (x - self.loc) / self.scale
        return -0.5 * ad.sum_squares(z, axis=-1) - ad.sum(ad.log(self.scale)) - 0.5 * self.dim * LOG_2PI

    def reparameterize(self, eps):
        """x = loc + scale ⊙ ε: a draw as a differentiable function of the parameters."""
        return self.loc + self.scale * eps

    def sample(self, rng: np.random.Generator, n: int = 1):
        """``n`` draws (n, D), as a ``Var`` when the parameters are ``Var`` s."""
        return self.reparameterize(rng.standard_normal((int(n), self.dim)))

    def entropy(self):
        """H = Σ log scale + D/2 log(2πe)."""
        return gaussian_entropy(ad.sum(ad.log(self.scale)), self.dim)

    def kl(self, other: Normal):
        """KL(self ‖ other) between diagonal Gaussians (analytic)."""
        return kl(self, other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class MeanFieldNormal(Normal):
    """Mean-field Gaussian q(θ) = N(μ, diag(σ²)) with σ = softplus(ρ) = log(1 + e^ρ).

    The unconstrained ρ is what the optimiser moves, so σ stays positive
    without a constraint (Blundell et al. 2015).

    Parameters
    ----------
    mu
        Means, shape (D,).
    rho
        Unconstrained scales, shape (D,).
    """

    def __init__(self, mu, rho):
        mu_value = np.atleast_1d(_value(mu))
        rho_value = np.atleast_1d(_value(rho))
        if mu_value.shape != rho_value.shape or mu_value.ndim != 1:
            raise ValueError(
                f"mu and rho must be 1-D of equal shape, got mu {mu_value.shape} and rho {rho_value.shape}"
            )
        _check_finite("rho", rho)
        self.mu = mu if isinstance(mu, ad.Var) else mu_value
        self.rho = rho if isinstance(rho, ad.Var) else rho_value
        super().__init__(self.mu, ad.softplus(self.rho))

    @classmethod
    def from_std(cls, mu, std) -> MeanFieldNormal:
        """The q with σ = ``std``: ρ = log(e^σ − 1), computed stably."""
        std = np.asarray(std, dtype=np.float64)
        if np.any(std <= 0):
            raise ValueError(f"std must be positive, got min {np.min(std)}")
        return cls(mu, std + np.log(-np.expm1(-std)))


class MultivariateNormal:
    """Full-covariance Gaussian N(mean, cov), factorised once as cov = L Lᵀ.

    Parameters
    ----------
    mean
        (D,) mean.
    cov
        (D, D) symmetric positive-definite covariance.
    """

    def __init__(self, mean, cov):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
        if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
            raise ValueError(f"cov must be (D, D) for mean (D,), got mean {mean.shape} and cov {cov.shape}")
        _check_finite("mean", mean)
        _check_finite("cov", cov)
        asymmetry = float(np.max(np.abs(cov - cov.T)))
        if asymmetry > 1e-10 * float(np.max(np.abs(cov))):
            raise ValueError(f"cov must be symmetric, got max |cov - cov.T| = {asymmetry:.3g} (shape {cov.shape})")
        try:
            self.chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(f"cov must be positive definite; Cholesky failed on the {cov.shape} matrix") from None
        self.loc, self.cov = mean, cov
        self.precision_chol_inv = np.linalg.inv(self.chol)
        self._log_det = 2.0 * float(np.sum(np.log(np.diag(self.chol))))
        self._std = np.sqrt(np.diag(cov))
        self._std.flags.writeable = False

    @property
    def dim(self) -> int:
        return self.loc.size

    @property
    def mean(self) -> np.ndarray:
        return self.loc

    @property
    def std(self) -> np.ndarray:
        return self._std

    def log_prob(self, x):
        """log N(x | mean, cov) with z = L⁻¹(x − mean).  (D,) -> scalar, (S, D) -> (S,)."""
        shape = np.shape(_value(x))
        if not shape or shape[-1] != self.dim:
            raise ValueError(f"x has shape {shape} but the distribution has dim {self.dim}")
        z = ad.matmul(x - self.loc, self.precision_chol_inv.T)
        return -0.5 * ad.sum_squares(z, axis=-1) - 0.5 * self._log_det - 0.5 * self.dim * LOG_2PI

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` draws (n, D): mean + L z."""
        return self.loc + rng.standard_normal((int(n), self.dim)) @ self.chol.T

    def entropy(self) -> float:
        """H = ½ log det(2πe cov)."""
        return gaussian_entropy(0.5 * self._log_det, self.dim)

    def kl(self, other) -> float:
        """KL(self ‖ other) (analytic)."""
        return kl(self, other)

    def __repr__(self) -> str:
        return f"MultivariateNormal(dim={self.dim})"


def kl(p, q):
    """KL(p ‖ q) between two Gaussians of the same dimension.

    Notes
    -----
    Diagonal: Σ_i log(s_q/s_p) + (s_p² + (m_p − m_q)²) / (2 s_q²) − ½, differentiable
    in p's and q's parameters. Full covariance:
    ½ [tr(Σ_q⁻¹ Σ_p) + (m_q − m_p)ᵀ Σ_q⁻¹ (m_q − m_p) − D + log det Σ_q − log det Σ_p].
    """
    if p.dim != q.dim:
        raise ValueError(f"kl needs equal dimensions, got {p.dim} and {q.dim}")
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = ad.square(p.scale / q.scale)
        mean_term = ad.square((p.loc - q.loc) / q.scale)
        return 0.5 * ad.sum(var_ratio + mean_term - 1.0 - ad.log(var_ratio))
    cov_p = p.cov if isinstance(p, MultivariateNormal) else np.diag(_value(p.scale) ** 2)
    mean_p, mean_q = _value(p.mean), _value(q.mean)
    if isinstance(q, MultivariateNormal):
        chol_q = q.chol
    else:
        chol_q = np.diag(_value(q.scale))
    solve = np.linalg.solve
    a = solve(chol_q, np.linalg.cholesky(cov_p))
    diff = solve(chol_q, mean_q - mean_p)
    log_det_q = 2.0 * np.sum(np.log(np.diag(chol_q)))
    log_det_p = float(np.linalg.slogdet(cov_p)[1])
    return 0.5 * (float(np.sum(a * a)) + float(diff @ diff) - p.dim + log_det_q - log_det_p)
