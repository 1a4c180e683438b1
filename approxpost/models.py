"""Models: a log density over a flat parameter vector θ, written in ``ad`` ops.

A user model subclasses :class:`Model`, sets ``dim`` and writes
``log_prior(theta)`` and ``log_likelihood(theta, idx=None)`` for θ of shape
(D,) or (S, D). The base supplies ``log_joint``, ``log_joint_and_grad``
(one batched backward pass for all S rows) and ``init``.
"""

from __future__ import annotations

import numpy as np

from . import _validate as check
from . import autodiff as ad
from .distributions import LOG_2PI, MultivariateNormal, Normal
from .predictive import ClassPredictive, Predictive

__all__ = ["Model", "Regression", "LinearRegression", "Classification", "as_2d_data"]


def as_2d_data(name: str, values, n_rows: int | None = None) -> np.ndarray:
    """Data as a finite float64 (n, k) array; a 1-D array becomes one column."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(array)))} non-finite values in shape {array.shape}"
        )
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValueError(f"{name} has {array.shape[0]} rows but x has {n_rows}: x and y must have the same length")
    return array


def _positive(name: str, value) -> float:
    return check.positive(name, value)


class Model:
    """Base class: an unnormalised log posterior log p(θ, D) = log p(θ) + log p(D | θ).

    Subclasses set ``dim`` and write ``log_prior`` and ``log_likelihood`` with
    ``ad`` ops, for θ of shape (D,) (returning a scalar) or (S, D) (returning
    (S,)). ``n_data`` is the number of data points (``None`` without data),
    used to rescale minibatch likelihoods.
    """

    dim: int = 0
    n_data: int | None = None
    noise_std: float | None = None
    #: replay the recorded graph in ``log_joint_and_grad`` and ``mean_log_likelihood_vjp`` (``ad.Tape``): only
    #: for a log joint whose graph depends on θ's shape alone, with data that is not reassigned after the first call
    replay_graph: bool = False

    def __init__(self):
        pass

    def log_prior(self, theta):
        """log p(θ): (D,) -> scalar, (S, D) -> (S,)."""
        raise TypeError(f"{type(self).__name__} must define log_prior(theta)")

    def log_likelihood(self, theta, idx=None):
        """log p(D | θ), on the minibatch ``idx`` rescaled to the full data when given."""
        raise TypeError(f"{type(self).__name__} must define log_likelihood(theta, idx=None)")

    def prior_distribution(self):
        """The prior as a distribution object when it has a standard form, else ``None``."""
        return None

    def check_theta(self, theta) -> np.ndarray:
        """θ as a float64 (D,) or (S, D) array, or a ``ValueError`` naming the shapes."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.dim:
            raise ValueError(
                f"theta has shape {theta.shape} but {type(self).__name__} has dim={self.dim}: expected ({self.dim},) or (S, {self.dim})"
            )
        return theta

    def log_joint(self, theta, idx=None):
        """log p(θ) + log p(D | θ): (D,) -> float, (S, D) -> (S,)."""
        if not isinstance(theta, ad.Var):
            theta = self.check_theta(theta)
        value = ad.add(self.log_prior(theta), self.log_likelihood(theta, idx))
        if isinstance(value, ad.Var):
            return value
        value = self._check_output(np.asarray(value, dtype=np.float64), theta)
        return float(value) if value.ndim == 0 else value

    def _check_output(self, value: np.ndarray, theta) -> np.ndarray:
        """A log density must reduce over θ's last axis only: () for (D,), (S,) for (S, D)."""
        expected = np.shape(theta)[:-1]
        if value.shape != expected:
            raise ValueError(
                f"{type(self).__name__}.log_joint returned shape {value.shape} for theta of shape {np.shape(theta)}, "
                f"expected {expected}: log_prior and log_likelihood must sum over the last axis of theta only"
            )
        return value

    def log_joint_and_grad(self, theta, idx=None) -> tuple:
        """``(log_joint, its gradient)``: (D,) -> (float, (D,)); (S, D) -> ((S,), (S, D)).

        All S rows go through one forward and one backward pass: the rows do
        not interact, so the gradient of Σ_s log p(θ_s, D) holds every row's
        own gradient.
        """
        theta = self.check_theta(theta)
        if self.replay_graph and idx is None:
            tape = self._tape_for(theta)
            if tape.complete:  # incomplete: an op outside ad.primitive, so the plain graph
                value, gradient = tape.value_and_grad(theta)
                return (float(value) if theta.ndim == 1 else value), gradient
        value, pullback = ad.vjp(lambda t: self.log_joint(t, idx), theta)
        value = self._check_output(np.asarray(value), theta)
        gradient = pullback(np.ones(value.shape))
        return (float(value) if theta.ndim == 1 else value), gradient

    def _tape_for(self, theta: np.ndarray):
        """The recorded graph of ``log_joint`` at θ's shape (recorded, and its output shape checked, on first use)."""
        tapes = self.__dict__.setdefault("_tapes", {})
        tape = tapes.get(theta.shape)
        if tape is None:
            tape = ad.Tape(self.log_joint, theta)
            self._check_output(np.empty(tape.out_shape), theta)
            tapes[theta.shape] = tape
        return tape

    def mean_log_likelihood_vjp(self, theta, idx=None, with_prior: bool = False) -> tuple:
        """``ad.vjp`` at θ (S, D) of mean_s log p(D | θ_s), or ``with_prior`` of [that, mean_s log p(θ_s)].

        What Bayes by Backprop differentiates every step
        (:func:`approxpost.by_hand.bbb_loss_grad_by_hand`). With ``replay_graph``
        and all the data it replays a tape recorded once per θ shape, as
        ``log_joint_and_grad`` does: the plain graph's NumPy calls in the same
        order, so the same bits, without rebuilding the graph every step.
        """

        def f(t):
            mean_log_lik = ad.mean(self.log_likelihood(t, idx))
            return ad.stack([mean_log_lik, ad.mean(self.log_prior(t))]) if with_prior else mean_log_lik

        if self.replay_graph and idx is None:
            tapes = self.__dict__.setdefault("_mean_log_likelihood_tapes", {})
            key = (with_prior, theta.shape)
            if key not in tapes:
                tapes[key] = ad.Tape(f, theta)
            if tapes[key].complete:  # incomplete: an op outside ad.primitive, so the plain graph
                return tapes[key].vjp(theta)
        return ad.vjp(f, theta)

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` starting points (n, D); by default N(0, 1) draws."""
        return rng.standard_normal((int(n), self.dim))

    def output_predictive(self, f, weights=None):
        """The posterior predictive from network outputs f (S, n, out) of S draws of θ.

        By default the Gaussian-noise :class:`~approxpost.predictive.Predictive`
        with ``noise_std``; a model with another likelihood overrides this, so
        ``Posterior.predict`` never needs to know the likelihood. ``weights``
        (S,) weight the draws where the predictive supports it (see
        ``weighted_predictive``).
        """
        if weights is not None:
            raise ValueError(f"{type(self).__name__}'s predictive takes equally weighted draws, got weights")
        if self.noise_std is None:
            raise ValueError(f"predict needs a Gaussian noise_std, but {type(self).__name__} has noise_std=None")
        return Predictive(f, self.noise_std)

    def predictive(self, theta, x, weights=None):
        """``output_predictive(predict(theta, x), weights)``: the predictive at inputs ``x`` from draws θ (S, D)."""
        return self.output_predictive(self.predict(theta, x), weights)

    # whether output_predictive accepts weights (WeightedPosterior then weights its particles instead of resampling)
    weighted_predictive: bool = False

    def minibatch_scale(self, idx) -> float:
        """N / |idx|: the factor turning a minibatch log likelihood into a full-data estimate."""
        if idx is None:
            return 1.0
        # index a range so a slice or boolean mask counts the rows it selects, not its own length
        return self.n_data / np.arange(self.n_data)[idx].size


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
        from .posteriors import GaussianPosterior  # posteriors sit downstream of models

        precision = self.posterior_precision()
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        mean = np.linalg.solve(precision, self.design.T @ self.y[:, 0] / self.noise_std**2)
        return GaussianPosterior(mean, cov=cov, model=self, settings={"method": "exact"})

    def log_evidence(self) -> float:
        """log p(y) = log N(y | 0, s² X Xᵀ + σ² I)."""
        marginal_cov = self.prior_std**2 * self.design @ self.design.T + self.noise_std**2 * np.eye(self.n_data)
        return float(MultivariateNormal(np.zeros(self.n_data), marginal_cov).log_prob(self.y[:, 0]))


def _as_inputs(name: str, values) -> np.ndarray:
    """Inputs as a finite float64 array with a leading data axis: (n, p), or (n, C, H, W) for images."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, p) or (n, C, H, W) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(array)))} non-finite values in shape {array.shape}"
        )
    return array


class Classification(Model):
    """Bayesian neural-network classification: y ~ Categorical(softmax f(x; θ)), θ ~ N(0, prior_std² I).

    Parameters
    ----------
    net
        The network: ``ap.nn.MLP([p, …, K])`` for (n, p) inputs or an
        ``ap.nn.CNN`` for (n, C, H, W) images; anything with ``dim``,
        ``n_outputs`` (K ≥ 2), ``forward(theta, x)`` and ``init(rng, n)``.
    x
        Inputs with a leading data axis: (n, p) or (n, C, H, W).
    y
        Integer class labels (n,) in 0..K − 1.
    prior_std
        Prior standard deviation s of every weight.

    Notes
    -----
    log p(y | x, θ) = Σ_n log_softmax(f(x_n; θ))[y_n]; the logits f have no
    noise of their own, so all the predictive's uncertainty comes from θ and
    the softmax. ``predict`` returns logits, ``predict_proba`` probabilities.
    """

    weighted_predictive = True

    def __init__(self, net, x, y, prior_std: float = 1.0):
        super().__init__()
        self.net = net
        self.x = _as_inputs("x", x)
        n_classes = int(getattr(net, "n_outputs", 0))
        if n_classes < 2:
            raise ValueError(f"the network must have n_outputs >= 2 classes for Classification, got {n_classes}")
        self._check_x(self.x, "x")
        self.y = check.labels("y", y, n_classes, n=self.x.shape[0])
        self.n_classes = n_classes
        self.prior_std = check.positive("prior_std", prior_std)
        self.dim = int(net.dim)
        self.n_data = self.x.shape[0]
        self._one_hot = np.eye(n_classes)[self.y]  # (n, K): picks log p(y_n) out of each row of log-softmax

    def _check_x(self, x: np.ndarray, name: str) -> None:
        expected = getattr(self.net, "input_shape", None)
        if expected is None and hasattr(self.net, "n_inputs"):
            expected = (self.net.n_inputs,)
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(
                f"{name} has shape {x.shape} but the network takes inputs of shape (n, {', '.join(map(str, expected))})"
            )

    # the same Gaussian prior as Regression
    log_prior = Regression.log_prior
    prior_distribution = Regression.prior_distribution

    @staticmethod
    def _sum_log_softmax(f, one_hot: np.ndarray):
        """Σ_n log softmax(f_n)[y_n]: (n, K) -> scalar, (S, n, K) -> (S,)."""
        return ad.sum(ad.mul(ad.log_softmax(f, axis=-1), one_hot), axis=(-2, -1))

    def log_likelihood(self, theta, idx=None):
        """Σ_n log softmax(f(x_n; θ))[y_n], times N/|idx| on a minibatch."""
        x, one_hot = (self.x, self._one_hot) if idx is None else (self.x[idx], self._one_hot[idx])
        log_lik = self._sum_log_softmax(self.net.forward(theta, x), one_hot)
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def mean_output_log_likelihood(self, f, idx=None):
        """(1/S) Σ_s log p(y | f_s) for network outputs f (S, n, K) on the data (or minibatch ``idx``), rescaled."""
        one_hot = self._one_hot if idx is None else self._one_hot[idx]
        log_lik = ad.mean(self._sum_log_softmax(f, one_hot))
        return log_lik * self.minibatch_scale(idx) if idx is not None else log_lik

    def predict(self, theta, x) -> np.ndarray:
        """Logits f(x; θ_s) for S parameter draws: (S, n, K)."""
        theta = np.atleast_2d(self.check_theta(theta))
        x = _as_inputs("x", x)
        self._check_x(x, "x")
        return np.asarray(self.net.forward(theta, x))

    def predict_proba(self, theta, x) -> np.ndarray:
        """Class probabilities softmax f(x; θ_s): (S, n, K)."""
        return np.exp(ad.log_softmax(self.predict(theta, x), axis=-1))

    def output_predictive(self, f, weights=None) -> ClassPredictive:
        """A :class:`~approxpost.predictive.ClassPredictive` from logits f (S, n, K), weighted by ``weights``."""
        return ClassPredictive(np.exp(ad.log_softmax(np.asarray(f, dtype=np.float64), axis=-1)), weights)

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return self.net.init(rng, int(n))
