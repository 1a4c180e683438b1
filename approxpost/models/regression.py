"""Regression models: a BNN with Gaussian noise, and conjugate Bayesian linear regression (exact posterior and evidence)."""

from __future__ import annotations

import numpy as np

from .. import _validate as check
from .. import autodiff as ad
from ..distributions import LOG_2PI, MultivariateNormal, Normal
from ..nn import MLP
from .base import Model, _positive, as_2d_data

__all__ = ["Regression", "LinearRegression"]


class Regression(Model):
    """Bayesian neural-network regression: y = f(x; θ) + ε, ε ~ N(0, noise_std²), θ ~ N(0, prior_std² I).

    The graph of the log joint depends on θ's shape alone, so
    ``log_joint_and_grad`` and ``mean_log_likelihood_vjp`` replay it (``replay_graph``).

    Parameters
    ----------
    net
        The network, e.g. ``ap.nn.MLP([1, 50, 1])``: anything with ``dim``,
        ``forward(theta, x)`` and ``init(rng, n)``.
    x, y
        Inputs (n, in) and targets (n, out); 1-D arrays are taken as one column.
    noise_std
        Observation noise σ (the aleatoric part of the predictive spread).
    prior_std
        Prior standard deviation s of every weight.
    """

    replay_graph = True

    def __init__(self, net, x, y, noise_std: float = 0.1, prior_std: float = 1.0):
        super().__init__()
        self.net = net
        self.x = as_2d_data("x", x)
        self.y = as_2d_data("y", y, n_rows=self.x.shape[0])
        if hasattr(net, "n_inputs") and self.x.shape[1] != net.n_inputs:
            raise ValueError(
                f"x has {self.x.shape[1]} columns (shape {self.x.shape}) but the network takes {net.n_inputs} inputs"
            )
        if hasattr(net, "n_outputs") and self.y.shape[1] != net.n_outputs:
            raise ValueError(
                f"y has {self.y.shape[1]} columns (shape {self.y.shape}) but the network has {net.n_outputs} outputs"
            )
        self.noise_std = _positive("noise_std", noise_std)
        self.prior_std = check.positive("prior_std", prior_std)
        self.dim = int(net.dim)
        self.n_data = self.x.shape[0]

    def log_joint(self, theta, idx=None):
        """log p(θ) + log p(D | θ): (D,) -> float, (S, D) -> (S,).

        On all the data, with an ``nn.MLP`` and this class's prior and
        likelihood, the graph is the one node of ``ad.mlp_log_joint`` (the
        same NumPy calls as the two terms' nodes, so the same bits): the
        graph a tape replays, and the plain graph ``ad.vjp`` builds, in one step.
        """
        if idx is None and isinstance(theta, ad.Var) and self._one_node:
            net = self.net
            return ad.mlp_log_joint(theta, self.x, self.y, net.slices, net.activation, self.noise_std, self.prior_std)
        return super().log_joint(theta, idx)

    @property
    def _one_node(self) -> bool:
        """Whether the log joint is ``ad.mlp_log_joint``'s: an MLP network, and neither term overridden."""
        kind = type(self)
        return (
            type(self.net) is MLP
            and kind.log_prior is Regression.log_prior
            and kind.log_likelihood is Regression.log_likelihood
        )

    def log_prior(self, theta):
        """Σ_i log N(θ_i | 0, s²)."""
        return ad.gaussian_log_density(theta, 0.0, self.prior_std, axis=-1)

    def log_likelihood(self, theta, idx=None):
        """Σ_n log N(y_n | f(x_n; θ), σ²), times N/|idx| on a minibatch."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        log_lik = ad.gaussian_log_density(y, self.net.forward(theta, x), self.noise_std, axis=(-2, -1))
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def mean_output_log_likelihood(self, f, idx=None):
        """(1/S) Σ_s log p(y | f_s) for network outputs f (S, n, out) on the data (or minibatch ``idx``), rescaled.

        What local reparameterisation needs: it samples the outputs itself
        instead of going through θ.
        """
        y = self.y if idx is None else self.y[idx]
        squared_error = ad.sum_squares(ad.sub(y, f), axis=(-2, -1))
        log_lik = ad.mean(squared_error) * (-0.5 / self.noise_std**2) - y.size * (
            np.log(self.noise_std) + 0.5 * LOG_2PI
        )
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def prior_distribution(self) -> Normal:
        """N(0, prior_std² I), built once: VI methods ask for it on every step."""
        if getattr(self, "_prior", None) is None:
            self._prior = Normal(np.zeros(self.dim), np.full(self.dim, self.prior_std))
        return self._prior

    def predict(self, theta, x) -> np.ndarray:
        """Network outputs f(x; θ_s) for S parameter draws: (S, n, out)."""
        theta = np.atleast_2d(self.check_theta(theta))
        x = as_2d_data("x", x)
        return np.asarray(self.net.forward(theta, x))

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return self.net.init(rng, int(n))


class _Linear:
    """The network f(x; θ) = [x, 1] θ of linear regression, in the MLP interface."""

    def __init__(self, n_features: int, fit_intercept: bool):
        self.n_inputs, self.n_outputs = n_features, 1
        self.fit_intercept = fit_intercept
        self.dim = n_features + int(fit_intercept)

    def design(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([x, np.ones((x.shape[0], 1))]) if self.fit_intercept else x

    def forward(self, theta, x):
        # (D,) -> (n, 1); (S, D) -> (S, n, 1)
        lead = np.shape(theta.value if isinstance(theta, ad.Var) else theta)[:-1]
        return ad.reshape(ad.matmul(theta, self.design(x).T), lead + (x.shape[0], 1))

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return rng.standard_normal((n, self.dim))


class LinearRegression(Regression):
    """Bayesian linear regression with a conjugate Gaussian prior: the exact oracle.

    y = X w + ε with X = [x, 1] (the intercept is the **last** coordinate of
    θ when ``fit_intercept``), ε ~ N(0, σ² I), θ ~ N(0, s² I).

    Parameters
    ----------
    x
        (n, p) features (1-D taken as p = 1).
    y
        (n,) targets.
    noise_std, prior_std
        σ and s.
    fit_intercept
        Append a column of ones, so dim = p + 1.

    Notes
    -----
    Posterior precision Λ = XᵀX/σ² + I/s², mean m = Λ⁻¹ Xᵀy/σ²; the evidence
    is y ~ N(0, s² X Xᵀ + σ² I).
    """

    def __init__(self, x, y, noise_std: float = 0.1, prior_std: float = 1.0, fit_intercept: bool = True):
        x2 = as_2d_data("x", x)
        y2 = as_2d_data("y", y, n_rows=x2.shape[0])
        if y2.shape[1] != 1:
            raise ValueError(f"y must be one column for LinearRegression, got shape {np.shape(y)}")
        super().__init__(_Linear(x2.shape[1], fit_intercept), x2, y2, noise_std=noise_std, prior_std=prior_std)
        self.fit_intercept = fit_intercept
        self.design = self.net.design(self.x)

    def log_likelihood(self, theta, idx=None):
        design, y = (self.design, self.y[:, 0]) if idx is None else (self.design[idx], self.y[idx, 0])
        log_lik = ad.gaussian_log_density(y, ad.matmul(theta, design.T), self.noise_std, axis=-1)
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def posterior_precision(self) -> np.ndarray:
        """Λ = XᵀX/σ² + I/s²."""
        return self.design.T @ self.design / self.noise_std**2 + np.eye(self.dim) / self.prior_std**2

    def exact_posterior(self):
        """The conjugate posterior N(m, Λ⁻¹) as a ``GaussianPosterior`` with full covariance."""
        from ..posteriors import GaussianPosterior  # posteriors sit downstream of models

        precision = self.posterior_precision()
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        mean = np.linalg.solve(precision, self.design.T @ self.y[:, 0] / self.noise_std**2)
        return GaussianPosterior(mean, cov=cov, model=self, settings={"method": "exact"})

    def log_evidence(self) -> float:
        """log p(y) = log N(y | 0, s² X Xᵀ + σ² I)."""
        marginal_cov = self.prior_std**2 * self.design @ self.design.T + self.noise_std**2 * np.eye(self.n_data)
        return float(MultivariateNormal(np.zeros(self.n_data), marginal_cov).log_prob(self.y[:, 0]))
