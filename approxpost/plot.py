"""Figures for comparisons, samplers and variational fits (the only module that imports matplotlib).

Every function takes ``ax=`` (an Axes, or an array of them for multi-panel
figures) and returns the ``Figure``, so figures compose in notebooks and
render headless with the Agg backend.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

__all__ = [
    "bands",
    "grad_variance",
    "trace",
    "density_2d",
    "elbo",
    "sigma_over_training",
    "reliability",
    "decision_surface",
    "learning_curves",
]


_MAX_COLUMNS = 6  # a dozen methods wrap into two balanced rows instead of one unreadable strip


def _panels(n: int, ax, width: float = 3.6, height: float = 3.0, sharey: bool = True):
    """``n`` axes: the ones given, or a new figure's in rows of equal length, at most six (spare cells switched off)."""
    if ax is None:
        rows = -(-n // _MAX_COLUMNS)
        columns = -(-n // rows)
        fig, grid = plt.subplots(
            rows, columns, figsize=(width * columns, height * rows), sharex=True, sharey=sharey, squeeze=False
        )
        cells = list(grid.ravel())
        for spare in cells[n:]:
            spare.set_axis_off()
            cells[cells.index(spare) - columns].xaxis.set_tick_params(labelbottom=True)  # now the lowest in its column
        return fig, cells[:n]
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


def _predictives(comparison, x, n_samples: int, seed) -> dict:
    """Name -> predictive at ``x``: posteriors are asked, ready predictives are used as they are."""
    posteriors = getattr(comparison, "posteriors", comparison)
    if not isinstance(posteriors, dict) or not posteriors:
        raise TypeError(f"expected a Comparison or a non-empty dict of posteriors, got {type(comparison).__name__}")
    return {
        name: item.predict(x, n_samples=n_samples, seed=seed) if hasattr(item, "predict") else item
        for name, item in posteriors.items()
    }


def reliability(comparison, data, ax=None, n_bins: int = 15, n_samples: int = 200, seed=0):
    """Reliability diagrams: accuracy against confidence per bin, over a histogram of the confidences.

    Parameters
    ----------
    comparison
        A :class:`~approxpost.compare.Comparison` of a classifier, or a dict
        name -> posterior (or name -> ``ClassPredictive`` at ``data.x_test``).
    data
        A ``Dataset`` with ``x_test`` and integer ``y_test``.
    ax
        A (2, n_methods) array of axes: reliability on top, histogram below.
    n_bins
        Equal-width confidence bins, as :func:`approxpost.metrics.reliability`.
    n_samples, seed
        Predictive draws per method.

    Notes
    -----
    A calibrated classifier's bars follow the diagonal; bars below it mean
    overconfidence (Guo et al. 2017). Each title carries the ECE.
    """
    from . import metrics

    predictives = _predictives(comparison, data.x_test, n_samples, seed)
    n = len(predictives)
    if ax is None:
        fig, axes = plt.subplots(
            2, n, figsize=(3.2 * n, 4.6), sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 1]}
        )
    else:
        axes = np.asarray(ax, dtype=object).reshape(-1)
        if axes.size != 2 * n:
            raise ValueError(f"ax must hold 2 x {n} axes (reliability and histogram per method), got {axes.size}")
        axes = axes.reshape(2, n)
        fig = axes[0, 0].figure
    width = 1.0 / n_bins
    left = np.linspace(0.0, 1.0, n_bins + 1)[:-1]
    for column, (name, pred) in enumerate(predictives.items()):
        top, bottom = axes[0, column], axes[1, column]
        table = metrics.reliability(pred.probs, data.y_test, n_bins=n_bins)
        filled = table.count > 0
        top.bar(left[filled], table.accuracy[filled], width=width, align="edge", color="C0", edgecolor="k", lw=0.5)
        top.plot([0, 1], [0, 1], "--", color="0.4", lw=1.0)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_title(f"{name}\nECE {metrics.ece(pred.probs, data.y_test, n_bins=n_bins):.3f}")
        bottom.bar(left, table.count / table.count.sum(), width=width, align="edge", color="0.6", edgecolor="k", lw=0.5)
        bottom.set_xlabel("confidence (top-class probability)")
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("fraction")
    fig.tight_layout()
    return fig


_QUANTITIES = {
    "probability": "p(y = 1)",
    "entropy": "predictive entropy (nats)",
    "mi": "mutual information (nats)",
}


def decision_surface(
    comparison,
    data,
    quantity: str = "probability",
    ax=None,
    limits=None,
    n_points: int = 80,
    n_samples: int = 100,
    seed=0,
):
    """A 2-D classifier's predictive as a heat map over the input plane, with the training data on top.

    Parameters
    ----------
    comparison
        A :class:`~approxpost.compare.Comparison` of a classifier with 2-D
        inputs, or a dict name -> posterior.
    data
        The ``Dataset`` (x (n, 2), integer y).
    quantity
        ``"probability"`` (of class 1 with two classes, else of the top
        class), ``"entropy"`` (total, aleatoric + epistemic) or ``"mi"``
        (mutual information: the epistemic part alone).
    limits
        ``((x_min, x_max), (y_min, y_max))``; default the data's range
        widened by half of it on each side, so the map shows what a method
        does away from the data.
    n_points
        Grid points per axis.
    n_samples, seed
        Predictive draws per method.
    """
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(_QUANTITIES)}, got {quantity!r}")
    x, y = np.asarray(data.x), np.asarray(data.y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision_surface needs 2-D inputs, got data.x of shape {x.shape}")
    if limits is None:
        low, high = x.min(axis=0), x.max(axis=0)
        pad = 0.5 * (high - low)
        limits = tuple(zip(low - pad, high + pad))
    (x0, x1), (y0, y1) = limits
    grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, n_points), np.linspace(y0, y1, n_points))
    points = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    predictives = _predictives(comparison, points, n_samples, seed)
    fig, axes = _panels(len(predictives), ax, width=3.6, height=3.2)
    for panel, (name, pred) in zip(axes, predictives.items()):
        if quantity == "probability":
            values = pred.probs[:, 1] if pred.probs.shape[1] == 2 else pred.probs.max(axis=1)
            image = panel.pcolormesh(grid_x, grid_y, values.reshape(grid_x.shape), cmap="RdBu_r", vmin=0, vmax=1)
        else:
            values = pred.entropy if quantity == "entropy" else pred.mutual_information
            vmax = np.log(pred.probs.shape[1])  # the largest entropy (and MI) K classes allow
            image = panel.pcolormesh(grid_x, grid_y, values.reshape(grid_x.shape), cmap="viridis", vmin=0, vmax=vmax)
        for i, label in enumerate(np.unique(y)):
            keep = y == label
            face, edge = ("w", "k") if i % 2 == 0 else ("k", "w")
            panel.scatter(x[keep, 0], x[keep, 1], s=9, marker="os^vD<>"[i % 7], c=face, edgecolors=edge, lw=0.4)
        panel.set_title(name)
        panel.set_xlabel("x[0]")
        fig.colorbar(image, ax=panel, shrink=0.8, label=_QUANTITIES[quantity])
    axes[0].set_ylabel("x[1]")
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, ax=None, metric: str = "accuracy", target: float | None = None):
    """Test ``metric`` against the number of labels: mean ± sd over seeds, one line per acquisition.

    Parameters
    ----------
    curves
        Acquisition name -> list of per-seed :class:`~approxpost.active.ActiveCurve`
        (same label schedule within an acquisition).
    ax
        An Axes to draw into, or None for a new figure.
    metric
        ``"accuracy"``, ``"nll"`` or ``"ece"``.
    target
        Optional level drawn as a dotted horizontal line (e.g. 0.9 accuracy).
    """
    if metric not in ("accuracy", "nll", "ece"):
        raise ValueError(f"metric must be 'accuracy', 'nll' or 'ece', got {metric!r}")
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict acquisition -> list of per-seed curves")
    fig, ax = _single(ax, figsize=(5.5, 3.8))
    for name, runs in curves.items():
        runs = list(runs)
        if not runs or any(not np.array_equal(run.n_labels, runs[0].n_labels) for run in runs):
            raise ValueError(f"curves[{name!r}] must be a non-empty list of runs with the same n_labels")
        values = np.array([getattr(run, metric) for run in runs])
        mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(values.shape[1])
        (line,) = ax.plot(runs[0].n_labels, mean, label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(runs[0].n_labels, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    if target is not None:
        ax.axhline(target, color="0.4", linestyle=":", linewidth=1)
    ax.set_xlabel("number of labels")
    ax.set_ylabel({"accuracy": "test accuracy", "nll": "test NLL (nats)", "ece": "test ECE"}[metric])
    ax.set_title("Active learning: mean ± sd over seeds")
    ax.legend(fontsize=8)
    return fig
