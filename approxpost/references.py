"""Reference posteriors for the built-in problems: long NUTS runs stored with the package.

An approximation of a BNN posterior can only be judged against something
closer to the truth (Izmailov et al. 2021 used long full-batch HMC). Each
reference here is a long, many-chain NUTS run on a built-in data set with the
default network (:func:`approxpost.defaults.build_model`), produced by
``scripts/make_references.py``, whose settings, cost and convergence are in
the file's metadata. Convergence is checked on *function values*: weights
never mix across the permutation and sign symmetries of a network, so R-hat
on θ is meaningless; the predictive f(x_test) must mix. For the two moons
classifier that means the class probability p(y = 1 | x_test, θ)
(:func:`function_diagnostics`). Stored: ``gap`` and ``blundell``
(MLP([1, 50, 1])) and ``moons`` (MLP([2, 20, 2])), see :func:`available`;
the digits CNN (D = 6058) is beyond a full-batch NUTS run on a laptop.

A reference is an ``.npz`` archive in ``approxpost/reference_data/``: thinned
draws stored as **float32** (half the size; they are read back as float64),
R-hat and bulk ESS of f (or p) at every test input, and one JSON metadata entry.
Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .posteriors import Cost, SamplePosterior

__all__ = ["available", "load", "save_reference", "function_diagnostics", "REFERENCE_DIR"]

REFERENCE_DIR = Path(__file__).parent / "reference_data"
_METADATA = "metadata"
_ARRAYS = ("draws", "f_rhat", "f_ess")


def available() -> list:
    """Names of the built-in problems with a stored reference, sorted (e.g. ``["blundell", "gap"]``)."""
    if not REFERENCE_DIR.is_dir():
        return []
    return sorted(path.stem for path in REFERENCE_DIR.glob("*.npz"))


def function_diagnostics(model, draws: np.ndarray, x) -> tuple:
    """R-hat and bulk ESS of the predictive at every input: two (n,) arrays.

    ``draws`` is (n_chains, n_draws, D); the predictive is evaluated for all
    draws in one batched pass. A regression is judged on its single network
    output f(x). A classifier is judged on its class probabilities
    p(y = k | x, θ): per input, the worst R-hat and the smallest ESS over the
    classes. With two classes p(y = 0) = 1 − p(y = 1) carries exactly the same
    information (and the rank-normalised R-hat and ESS are the same for both),
    so only p(y = 1) is used: one number per input, nothing counted twice.
    """
    from .diagnostics import ess_and_rhat

    n_chains, n_draws, dim = draws.shape
    flat = draws.reshape(-1, dim)
    if callable(getattr(model, "predict_proba", None)):
        probs = model.predict_proba(flat, x)
        f = probs[..., 1:] if probs.shape[-1] == 2 else probs  # (S, n, K'): the classes that carry information
    else:
        f = model.predict(flat, x)[..., :1]
    n_inputs, n_outputs = f.shape[1], f.shape[2]
    ess, rhat = ess_and_rhat(f.reshape(n_chains, n_draws, n_inputs * n_outputs))
    return rhat.reshape(n_inputs, n_outputs).max(axis=1), ess.reshape(n_inputs, n_outputs).min(axis=1)


def save_reference(path: str | os.PathLike, draws: np.ndarray, f_rhat, f_ess, metadata: dict) -> None:
    """Write a reference: draws (n_chains, n_draws, D) as float32, f's R-hat and ESS, JSON ``metadata``."""
    text = json.dumps(metadata, allow_nan=False)
    with open(path, "wb") as handle:
        np.savez_compressed(
            handle,
            draws=np.asarray(draws, dtype=np.float32),
            f_rhat=np.asarray(f_rhat, dtype=np.float64),
            f_ess=np.asarray(f_ess, dtype=np.float64),
            **{_METADATA: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)},
        )


def load(name: str) -> SamplePosterior:
    """The stored reference posterior of built-in problem ``name``, with its model attached.

    Parameters
    ----------
    name
        One of :func:`available`.

    Returns
    -------
    SamplePosterior
        Draws (n_chains, n_draws, D) in float64; ``model`` the default model
        of the data set (rebuilt from its name and seed); ``diagnostics``
        with ``f_rhat`` and ``f_ess`` (n_test,) arrays, their worst values
        ``f_rhat_max`` and ``f_ess_min``, and the run's own diagnostics;
        ``settings`` the NUTS settings plus ``dataset``, ``seed``, ``thin``
        and ``stored_dtype``; ``cost`` the whole run's.
    """
    from .defaults import build_model, dataset_makers

    names = available()
    if name not in names:
        raise ValueError(f"no stored reference named {name!r}; available: {', '.join(names) or 'none'}")
    with np.load(REFERENCE_DIR / f"{name}.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in (*_ARRAYS, _METADATA)}
    metadata = json.loads(arrays[_METADATA].tobytes().decode("utf-8"))
    data = dataset_makers()[metadata["settings"]["dataset"]](seed=metadata["settings"]["seed"])
    diagnostics = {
        **metadata["diagnostics"],
        "f_rhat": arrays["f_rhat"],
        "f_ess": arrays["f_ess"],
        "f_rhat_max": float(arrays["f_rhat"].max()),
        "f_ess_min": float(arrays["f_ess"].min()),
    }
    return SamplePosterior(
        arrays["draws"].astype(np.float64),
        model=build_model(data),
        diagnostics=diagnostics,
        settings=metadata["settings"],
        cost=Cost(**metadata["cost"]),
    )
