"""Save and load posteriors as ``.npz`` archives with JSON metadata — never pickle.

A file holds the posterior's arrays (``draws``; ``particles`` and
``log_weights``; ``mean`` and ``std`` or ``cov``; ``theta``; ``members``; ``theta``, ``p``
and ``units``), its history under
``history/<name>``, array-valued diagnostics under ``diagnostics/<name>``, and
one UTF-8 JSON entry (a uint8 array) with the format marker and version, the
class (``kind``), the approxpost version, the settings, the scalar diagnostics
and the cost. Loading uses ``numpy.load(allow_pickle=False)``, so a file can
never run code; anything else than what :func:`save` writes is a ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from .linearized import LaplacePosterior
from .posteriors import Cost, GaussianPosterior, PointPosterior, Posterior, SamplePosterior, WeightedPosterior
from .weight_posteriors import DropoutPosterior, EnsemblePosterior

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "approxpost.posterior"
FORMAT_VERSION = 1

_METADATA = "__approxpost__"
_HISTORY, _DIAGNOSTICS = "history/", "diagnostics/"
_FLOAT_TAG = "__float__"  # JSON has no inf/nan: {"__float__": "inf"} stands for one
# kind -> (class, names of its own arrays, those that must be present)
_KINDS = {
    "SamplePosterior": (SamplePosterior, {"draws"}, {"draws"}),
    "WeightedPosterior": (WeightedPosterior, {"particles", "log_weights"}, {"particles", "log_weights"}),
    "GaussianPosterior": (GaussianPosterior, {"mean", "std", "cov"}, {"mean"}),
    "PointPosterior": (PointPosterior, {"theta"}, {"theta"}),
    "EnsemblePosterior": (EnsemblePosterior, {"members"}, {"members"}),
    "DropoutPosterior": (DropoutPosterior, {"theta", "p", "units"}, {"theta", "p", "units"}),
    "LaplacePosterior": (LaplacePosterior, {"mean", "std", "cov", "linearized"}, {"mean", "linearized"}),
}
_ZIP_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------- JSON


def _jsonable(value, where: str):
    """``value`` with numpy scalars as Python ones and non-finite floats tagged, or a ``TypeError``."""
    if isinstance(value, dict):
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise TypeError(f"{where} has a non-string key {bad[0]!r}; only string keys can be saved")
        return {key: _jsonable(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_TAG: repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"{where} is a {type(value).__name__}, which cannot be saved (numbers, strings, lists, dicts and arrays can)"
    )


def _untag(obj: dict):
    if obj.keys() == {_FLOAT_TAG} and obj[_FLOAT_TAG] in ("inf", "-inf", "nan"):
        return float(obj[_FLOAT_TAG])
    return obj


def _saveable_array(value, where: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise TypeError(f"{where} has dtype object, which .npz could only hold by pickling; approxpost never pickles")
    return array


# --------------------------------------------------------------------------- save


def _own_arrays(posterior: Posterior) -> dict:
    if type(posterior) is SamplePosterior:
        return {"draws": posterior.draws}
    if type(posterior) is WeightedPosterior:
        return {"particles": posterior.particles, "log_weights": posterior.log_weights}
    if type(posterior) is GaussianPosterior:
        return {"mean": posterior.mean, **({"std": posterior.std} if posterior.is_diagonal else {"cov": posterior.cov})}
    if type(posterior) is PointPosterior:
        return {"theta": posterior.theta}
    if type(posterior) is EnsemblePosterior:
        return {"members": posterior.members}
    if type(posterior) is DropoutPosterior:
        return {"theta": posterior.theta, "p": np.float64(posterior.p), "units": posterior.units}
    if type(posterior) is LaplacePosterior:
        shape = {"std": posterior.std} if posterior.is_diagonal else {"cov": posterior.cov}
        return {"mean": posterior.mean, **shape, "linearized": np.array(posterior.linearized)}
    raise TypeError(f"cannot save a {type(posterior).__name__}: approxpost.io saves exactly {', '.join(_KINDS)}")


def save(posterior: Posterior, path: str | os.PathLike) -> None:
    """Write ``posterior`` to exactly ``path`` as an ``.npz`` archive (no suffix is added).

    Parameters
    ----------
    posterior
        A ``SamplePosterior``, ``WeightedPosterior``, ``GaussianPosterior``, ``PointPosterior``,
        ``EnsemblePosterior`` or ``DropoutPosterior``.
        Its model is not saved; pass it to :func:`load`.
    path
        The file to write (overwritten if it exists).

    Raises
    ------
    TypeError
        If a setting, diagnostic or history entry cannot be stored without
        pickling; nothing is written then.
    """
    arrays = dict(_own_arrays(posterior))
    for name, values in posterior.history.items():
        arrays[_HISTORY + name] = _saveable_array(values, f"history[{name!r}]")
    scalars = {}
    for name, value in posterior.diagnostics.items():
        if isinstance(value, np.ndarray):
            arrays[_DIAGNOSTICS + name] = _saveable_array(value, f"diagnostics[{name!r}]")
        else:
            scalars[name] = value
    from . import __version__  # the package's, read at call time: __init__ imports this module

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": type(posterior).__name__,
        "approxpost_version": __version__,
        "settings": _jsonable(posterior.settings, "settings"),
        "diagnostics": _jsonable(scalars, "diagnostics"),
        "cost": _jsonable(dict(Cost(*posterior.cost)._asdict()), "cost"),
    }
    text = json.dumps(metadata, allow_nan=False)
    arrays[_METADATA] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    # everything is converted before the file is opened, so a failure leaves no half-written file;
    # a file handle (not a name) stops numpy from appending ".npz"
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# --------------------------------------------------------------------------- load


def _read_arrays(path: str) -> dict:
    """Every array in the archive, refusing pickled data and reporting damage as ``ValueError``."""
    # our own handle (a missing file stays a FileNotFoundError): numpy leaks the one it
    # opens when the zip turns out to be damaged
    with open(path, "rb") as handle:
        if handle.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise ValueError(f"{path!r} is not an .npz archive (no zip header); approxpost.save writes .npz files")
        handle.seek(0)
        try:
            with np.load(handle, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except ValueError as err:
            if "pickle" in str(err).lower() or "object arrays" in str(err).lower():
                raise ValueError(
                    f"{path!r} holds pickled (object) data, which approxpost never writes and will not load: "
                    "unpickling can run arbitrary code"
                ) from err
            raise ValueError(f"{path!r} is not a valid .npz archive: {err}") from err
        # zipfile reads a damaged header's flipped bits as features it lacks (encryption, other
        # compressions): RuntimeError / NotImplementedError
        except (OSError, EOFError, zipfile.BadZipFile, SyntaxError, RuntimeError) as err:
            raise ValueError(f"{path!r} is damaged or truncated: {err}") from err
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{path!r} holds a member {name!r} that is not a NumPy array: not an approxpost file")
    return arrays


def _read_metadata(raw, path: str) -> dict:
    if raw is None:
        raise ValueError(f"{path!r} has no approxpost metadata: it was not written by approxpost.save")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(
            f"{path!r} has malformed metadata: expected uint8 bytes, got dtype {raw.dtype} and shape {raw.shape}"
        )
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"), object_hook=_untag)
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise ValueError(f"{path!r} has malformed metadata: {err}") from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an approxpost posterior file (format marker {FORMAT!r} missing)")
    version = metadata.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has format version {version!r}; this approxpost reads versions 1 to {FORMAT_VERSION}"
        )
    if metadata.get("kind") not in _KINDS:
        raise ValueError(f"{path!r} holds kind {metadata.get('kind')!r}; approxpost knows {', '.join(_KINDS)}")
    for field in ("settings", "diagnostics", "cost"):
        if not isinstance(metadata.get(field), dict):
            raise ValueError(f"{path!r} has malformed metadata: {field!r} is missing or not a JSON object")
    return metadata


def load(path: str | os.PathLike, model=None) -> Posterior:
    """Read a posterior written by :func:`save`.

    Parameters
    ----------
    path
        The file.
    model
        The model to attach (needed for ``predict``); files do not store models.

    Returns
    -------
    Posterior
        The same class with bit-identical arrays, diagnostics, history, cost and settings.

    Raises
    ------
    ValueError
        For a file that is not one :func:`save` writes: foreign, damaged,
        truncated, from a newer format, or holding pickled objects (which are
        refused, never unpickled).
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    metadata = _read_metadata(arrays.pop(_METADATA, None), path)
    kind = metadata["kind"]
    cls, names, required = _KINDS[kind]
    own, history, diagnostics = {}, {}, dict(metadata["diagnostics"])
    for name, value in arrays.items():
        if name.startswith(_HISTORY):
            history[name[len(_HISTORY) :]] = value
        elif name.startswith(_DIAGNOSTICS):
            diagnostics[name[len(_DIAGNOSTICS) :]] = value
        elif name in names:
            own[name] = value
        else:
            raise ValueError(f"{path!r} holds an unexpected array {name!r} for a {kind}")
    if not required <= own.keys():
        raise ValueError(f"{path!r} is missing the array(s) {sorted(required - own.keys())} of a {kind}")
    try:
        cost = Cost(**metadata["cost"])
        posterior = cls(**own, diagnostics=diagnostics, history=history, cost=cost, settings=metadata["settings"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path!r} holds an invalid {kind}: {err}") from err
    posterior.model = model  # after the checks above, so a model of the wrong dim is reported as such
    return posterior
