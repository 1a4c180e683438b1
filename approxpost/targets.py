"""Two-dimensional teaching densities with exact samplers and known moments.

Each target is a :class:`~approxpost.models.Model` with no data: its whole
log density is ``log_density`` (which is also its ``log_prior``, so every
method sees it as ``log_joint``) and ``log_likelihood`` is zero. ``mean`` and
``cov`` are the exact first two moments (analytic), and ``sample(rng, n)``
draws exactly, so every method can be checked against the truth.
"""

from __future__ import annotations

import abc

import numpy as np

from . import autodiff as ad
from .distributions import LOG_2PI, MultivariateNormal
from .models import Model

__all__ = ["Target", "Gaussian", "Banana", "Funnel", "Mixture", "TARGETS"]


def _column(theta, i):
    return theta[..., i]


class Target(Model, abc.ABC):
    """A 2-D density known up to nothing: ``log_density`` is the normalised log density.

    A subclass writes ``log_density(theta)`` and ``sample(rng, n)`` and sets
    ``mean`` and ``cov``; as a ``Model`` with no data its prior is the whole
    density and its likelihood is zero.
    """

    dim = 2
    mean: np.ndarray
    cov: np.ndarray

    @abc.abstractmethod
    def log_density(self, theta):
        """The normalised log density at θ (2,) -> float, or (S, 2) -> (S,)."""

    def log_prior(self, theta):
        """The whole target density (a data-free model's prior is all there is): ``log_density``."""
        return self.log_density(theta)

    def log_likelihood(self, theta, idx=None):
        return 0.0

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` exact draws (n, 2)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(Target):
    """Correlated Gaussian N(mean, cov); by default unit variances with correlation 0.9.

    The strong correlation makes random-walk proposals slow while HMC follows
    the ridge.
    """

    def __init__(self, mean=(0.0, 0.0), cov=((1.0, 0.9), (0.9, 1.0))):
        super().__init__()
        self.distribution = MultivariateNormal(mean, cov)
        if self.distribution.dim != 2:
            raise ValueError(f"mean must have 2 entries for a 2-D target, got shape {np.shape(mean)}")
        self.mean, self.cov = self.distribution.mean.copy(), self.distribution.cov.copy()

    def log_density(self, theta):
        return self.distribution.log_prob(theta)

    def sample(self, rng, n):
        return self.distribution.sample(rng, n)


class Banana(Target):
    """A curved "banana": θ₁ ~ N(0, a²), θ₂ | θ₁ ~ N(b(θ₁² − a²), 1) (Haario et al. 1999).

    Notes
    -----
    Mean (0, 0); Var θ₁ = a², Var θ₂ = 1 + 2 b² a⁴ (since Var θ₁² = 2a⁴),
    Cov(θ₁, θ₂) = b E[θ₁³ − a² θ₁] = 0.
    """

    def __init__(self, scale: float = 1.0, curvature: float = 1.0):
        super().__init__()
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale, self.curvature = float(scale), float(curvature)
        self.mean = np.zeros(2)
        self.cov = np.diag([self.scale**2, 1.0 + 2.0 * self.curvature**2 * self.scale**4])

    def log_density(self, theta):
        t1, t2 = _column(theta, 0), _column(theta, 1)
        a, b = self.scale, self.curvature
        ridge = t2 - b * (ad.square(t1) - a**2)
        return -0.5 * ad.square(t1 / a) - 0.5 * ad.square(ridge) - np.log(a) - LOG_2PI

    def sample(self, rng, n):
        t1 = self.scale * rng.standard_normal(n)
        t2 = self.curvature * (t1**2 - self.scale**2) + rng.standard_normal(n)
        return np.column_stack([t1, t2])


class Funnel(Target):
    """Neal's funnel in 2-D: v ~ N(0, s²), x | v ~ N(0, e^v); θ = (x, v).

    The scale of x changes by orders of magnitude with v, so no single step
    size suits the neck and the mouth: HMC with a large step diverges in the
    neck (Neal 2003).

    Notes
    -----
    Mean (0, 0); Var x = E[e^v] = e^{s²/2}, Var v = s², Cov = 0.
    """

    def __init__(self, scale: float = 3.0):
        super().__init__()
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = float(scale)
        self.mean = np.zeros(2)
        self.cov = np.diag([np.exp(self.scale**2 / 2.0), self.scale**2])

    def log_density(self, theta):
        x, v = _column(theta, 0), _column(theta, 1)
        log_p_v = -0.5 * ad.square(v / self.scale) - np.log(self.scale) - 0.5 * LOG_2PI
        log_p_x = -0.5 * ad.square(x) * ad.exp(-v) - 0.5 * v - 0.5 * LOG_2PI
        return log_p_v + log_p_x

    def sample(self, rng, n):
        v = self.scale * rng.standard_normal(n)
        x = np.exp(v / 2.0) * rng.standard_normal(n)
        return np.column_stack([x, v])


class Mixture(Target):
    """Two equally weighted isotropic Gaussians at (±separation/2, 0) with std ``std``: bimodal.

    Notes
    -----
    Mean (0, 0); Cov = diag(std² + (separation/2)², std²).
    """

    def __init__(self, separation: float = 4.0, std: float = 0.6):
        super().__init__()
        if not (np.isfinite(std) and std > 0):
            raise ValueError(f"std must be positive, got {std}")
        self.separation, self.std_component = float(separation), float(std)
        self.centres = np.array([[-separation / 2.0, 0.0], [separation / 2.0, 0.0]])
        self.mean = np.zeros(2)
        self.cov = np.diag([std**2 + (separation / 2.0) ** 2, std**2])

    def log_density(self, theta):
        s = self.std_component
        log_components = [
            -0.5 * ad.sum_squares((theta - centre) / s, axis=-1) - 2.0 * np.log(s) - LOG_2PI + np.log(0.5)
            for centre in self.centres
        ]
        return ad.logsumexp(ad.stack(log_components, axis=-1), axis=-1)

    def sample(self, rng, n):
        which = rng.integers(0, 2, size=n)
        return self.centres[which] + self.std_component * rng.standard_normal((n, 2))


TARGETS = {"gaussian": Gaussian, "banana": Banana, "funnel": Funnel, "mixture": Mixture}
