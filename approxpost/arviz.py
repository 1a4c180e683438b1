"""Hand a posterior to ArviZ: :func:`to_arviz` builds an ``arviz.InferenceData``.

ArviZ is optional (``pip install -e ".[arviz]"``) and imported only when a
conversion is asked for, so the engine never needs it. The draws go into the
``posterior`` group as one variable ``theta`` with dimensions
(chain, draw, theta_dim); the per-iteration diagnostics a sampler recorded
after warm-up go into ``sample_stats`` under ArviZ's own names, so its
plots (``plot_trace``, ``plot_energy``-style divergence markers) find them.
"""

from __future__ import annotations

import importlib

import numpy as np

__all__ = ["to_arviz", "SAMPLE_STATS"]

SAMPLE_STATS = {
    "log_joint": "lp",
    "accept_prob": "acceptance_rate",
    "diverging": "diverging",
    "tree_depth": "tree_depth",
    "n_leapfrog": "n_steps",
    "step_size": "step_size",
    "energy_error": "energy_error",
}
"""approxpost ``history`` key -> ArviZ ``sample_stats`` name (those a sampler records)."""

_BOOLEAN = {"diverging"}
_INTEGER = {"tree_depth", "n_steps"}


def _import_arviz():
    try:
        return importlib.import_module("arviz")
    except ImportError as err:
        raise ImportError('to_arviz needs ArviZ: pip install arviz (or pip install -e ".[arviz]")') from err


def _sample_stats(history: dict, n_chains: int, n_draws: int) -> dict:
    """The kept iterations' per-chain statistics as (chain, draw) arrays; a per-iteration scalar is broadcast."""
    if not history or "warmup" not in history:
        return {}
    kept = ~np.asarray(history["warmup"], dtype=bool)
    stats = {}
    for key, name in SAMPLE_STATS.items():
        if key not in history:
            continue
        values = np.asarray(history[key])[kept]
        if values.shape == (n_draws,):
            values = np.broadcast_to(values[:, None], (n_draws, n_chains))
        if values.shape != (n_draws, n_chains):
            continue  # not one value per chain and kept draw: not a sample statistic
        values = values.T
        if name in _BOOLEAN:
            values = values.astype(bool)
        elif name in _INTEGER:
            values = values.astype(np.int64)
        stats[name] = np.ascontiguousarray(values)
    return stats


def to_arviz(posterior, n_draws: int = 1000, seed=None):
    """``posterior`` as an ``arviz.InferenceData``.

    Parameters
    ----------
    posterior
        Any :class:`~approxpost.posteriors.Posterior`. A ``SamplePosterior``
        keeps its chains; any other is represented by one chain of
        ``n_draws`` draws from its ``sample``.
    n_draws
        Draws for a posterior that is not a set of chains.
    seed
        int, Generator or None, for those draws.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with ``theta`` (chain, draw, theta_dim); for a sampler,
        ``sample_stats`` with those of ``lp`` (log joint), ``acceptance_rate``,
        ``diverging``, ``tree_depth``, ``n_steps`` (leapfrog steps),
        ``step_size`` and ``energy_error`` it recorded, post warm-up.
    """
    from .posteriors import SamplePosterior

    az = _import_arviz()
    if isinstance(posterior, SamplePosterior):
        draws = np.asarray(posterior.draws)
        stats = _sample_stats(posterior.history, draws.shape[0], draws.shape[1])
    else:
        draws = np.asarray(posterior.sample(n_draws, seed=seed))[None]
        stats = {}
    groups = {"posterior": {"theta": draws}}
    if stats:
        groups["sample_stats"] = stats
    attrs = {
        "inference_library": "approxpost",
        "method": str(posterior.settings.get("method", type(posterior).__name__)),
    }
    idata = az.from_dict(**groups)
    for group in idata.groups():  # as ArviZ's own converters do: every group says where it came from
        idata[group].attrs.update(attrs)
    return idata
