"""Figures for comparisons, samplers and variational fits (the only module that imports matplotlib).

Every function takes ``ax=`` (an Axes, or an array of them for multi-panel
figures) and returns the ``Figure``, so figures compose in notebooks and
render headless with the Agg backend.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

__all__ = ["bands", "grad_variance", "trace", "density_2d", "elbo", "sigma_over_training"]


def _panels(n: int, ax, width: float = 3.6, height: float = 3.0, sharey: bool = True):
    """A row of ``n`` axes: the ones given, or a new figure's."""
    if ax is None:
        fig, axes = plt.subplots(1, n, figsize=(width * n, height), sharex=True, sharey=sharey, squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(ax).ravel())
    if len(axes) != n:
        raise ValueError(f"ax must hold {n} axes (one per panel), got {len(axes)}")
    return axes[0].figure, axes


def _single(ax, figsize=(5.0, 3.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def bands(comparison, data, ax=None, n_samples: int = 200, seed=0):
    """One panel a method: training data, predictive mean and a ±2 sd band, shared axes.

    Parameters
    ----------
    comparison
        A :class:`~approxpost.compare.Comparison` (or a dict name -> posterior).
    data
        The ``Dataset`` (x, y, x_test, gap).
    ax
        Axes to draw into, one per method.
    n_samples, seed
        Predictive draws per method.
    """
    posteriors = getattr(comparison, "posteriors", comparison)
    fig, axes = _panels(len(posteriors), ax)
    order = np.argsort(data.x_test[:, 0])
    x_grid = data.x_test[order]
    for panel, (name, posterior) in zip(axes, posteriors.items()):
        pred = posterior.predict(x_grid, n_samples=n_samples, seed=seed)
        mean, std = pred.mean[:, 0], pred.std[:, 0]
        if getattr(data, "gap", None) is not None:
            panel.axvspan(*data.gap, color="0.92", zorder=0, label="gap")
        panel.fill_between(x_grid[:, 0], mean - 2 * std, mean + 2 * std, color="C0", alpha=0.25, label="±2 sd")
        panel.plot(x_grid[:, 0], mean, color="C0", lw=1.5, label="predictive mean")
        panel.plot(data.x[:, 0], np.ravel(data.y), "k.", ms=4, label="data")
        panel.set_title(name)
        panel.set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def grad_variance(curves: dict, ax=None):
    """Total variance of each ELBO gradient estimator against n_mc, log-log.

    Parameters
    ----------
    curves
        ``{"n_mc": array, name: total variances}`` as returned by
        :func:`approxpost.compare.gradient_variance_curves`.
    """
    fig, ax = _single(ax)
    n_mc = np.asarray(curves["n_mc"])
    for name, values in curves.items():
        if name == "n_mc":
            continue
        values = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(values)
        ax.loglog(n_mc[keep], values[keep], "o-", label=name)
    ax.set_xlabel("Monte Carlo draws per gradient (n_mc)")
    ax.set_ylabel("total gradient variance")
    ax.set_title("ELBO gradient variance")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def trace(posterior, coords=(0,), ax=None):
    """Per-chain traces of chosen coordinates of θ for a ``SamplePosterior``.

    Parameters
    ----------
    posterior
        A posterior with ``draws`` (n_chains, n_draws, D).
    coords
        Which coordinates of θ to show, one panel each (kept draws only;
        warm-up is in ``posterior.history``).
    """
    if not hasattr(posterior, "draws"):
        raise TypeError(f"trace needs a posterior with draws (an MCMC fit), got {type(posterior).__name__}")
    coords = list(np.atleast_1d(coords))
    fig, axes = _panels(len(coords), ax, width=6.0, height=2.2, sharey=False)
    for panel, coord in zip(axes, coords):
        for chain, draws in enumerate(posterior.draws[:, :, coord]):
            panel.plot(draws, lw=0.6, alpha=0.8, label=f"chain {chain}")
        panel.set_ylabel(f"θ[{coord}]")
        panel.set_xlabel("iteration")
    axes[0].legend(fontsize="x-small", ncol=4)
    fig.tight_layout()
    return fig


def _grid(target, limits, n_points: int):
    (x0, x1), (y0, y1) = limits
    xs, ys = np.linspace(x0, x1, n_points), np.linspace(y0, y1, n_points)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    density = np.exp(np.asarray(target.log_joint(points))).reshape(grid_x.shape)
    return grid_x, grid_y, density


def _ellipse(panel, mean, cov, n_std: float, **style):
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_std * np.sqrt(values[::-1])
    panel.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **style))


def density_2d(target, posteriors: dict, ax=None, limits=None, n_points: int = 150, n_draws: int = 500, seed=0):
    """Contours of a 2-D target with each method's draws (or its 1- and 2-sd ellipses for Gaussians).

    Parameters
    ----------
    target
        A 2-D model with ``log_joint`` (e.g. ``ap.targets.Banana()``).
    posteriors
        Name -> posterior fitted to ``target``.
    limits
        ``((x_min, x_max), (y_min, y_max))``; default from the target's
        mean ± 3.5 sd.
    """
    if limits is None:
        mean, std = np.asarray(target.mean), np.sqrt(np.diag(target.cov))
        limits = tuple((m - 3.5 * s, m + 3.5 * s) for m, s in zip(mean, std))
    fig, axes = _panels(max(len(posteriors), 1), ax, width=3.4, height=3.4)
    grid_x, grid_y, density = _grid(target, limits, n_points)
    for panel, (name, posterior) in zip(axes, posteriors.items()):
        panel.contour(grid_x, grid_y, density, levels=6, colors="0.5", linewidths=0.8)
        if hasattr(posterior, "cov") and not hasattr(posterior, "draws"):
            for n_std in (1.0, 2.0):
                _ellipse(panel, posterior.mean, posterior.cov, n_std, color="C3", lw=1.5)
        else:
            draws = posterior.sample(n_draws, seed=seed)
            panel.plot(draws[:, 0], draws[:, 1], ".", color="C0", ms=2, alpha=0.5)
        panel.set_xlim(limits[0])
        panel.set_ylim(limits[1])
        panel.set_title(name)
        panel.set_xlabel("θ[0]")
    axes[0].set_ylabel("θ[1]")
    fig.tight_layout()
    return fig


def _history_curves(posteriors, key: str, ax, ylabel: str, title: str, logy: bool = False):
    if not isinstance(posteriors, dict):
        posteriors = {posteriors.settings.get("method", type(posteriors).__name__): posteriors}
    fig, ax = _single(ax)
    for name, posterior in posteriors.items():
        if key not in posterior.history:
            raise ValueError(f"posterior {name!r} has no {key!r} history (keys: {sorted(posterior.history)})")
        values = np.asarray(posterior.history[key])
        values = values.reshape(len(values), -1).mean(axis=1)
        ax.plot(values, lw=1.0, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def elbo(posteriors, ax=None):
    """ELBO estimate per step for one VI posterior or a dict of them."""
    return _history_curves(posteriors, "elbo", ax, "ELBO estimate", "ELBO during training")


def sigma_over_training(posteriors, ax=None):
    """Mean σ of the variational posterior per step: how Bayes by Backprop's uncertainty shrinks."""
    return _history_curves(posteriors, "mean_sigma", ax, "mean σ of q", "σ over training", logy=True)
