"""Active learning: acquisition scores from a posterior predictive, and the loop that uses them.

An acquisition function scores every unlabelled pool point (higher means
"ask for this label"); :func:`learn` repeatedly fits a method to the labelled
set, scores the pool and labels the top ``batch_size`` points, recording test
accuracy, NLL and ECE after every fit (Gal, Islam and Ghahramani 2017).

- :func:`bald` — the mutual information I(y; θ | x): points the posterior's
  draws disagree on (Houlsby et al. 2011);
- :func:`max_entropy` — the total predictive entropy H[p̄]: uncertain points,
  whether from disagreement or from noise;
- :func:`variation_ratio` — 1 − the fraction of draws voting for the modal class;
- :func:`mean_std` — the mean over classes of the sd over draws of p_k
  (for a regression predictive, the predictive sd);
- ``"random"`` in :func:`learn` — uniform acquisition, the baseline.

References
----------
Houlsby, N., Huszár, F., Ghahramani, Z. and Lengyel, M. (2011). Bayesian active
learning for classification and preference learning. arXiv:1112.5745.
Gal, Y., Islam, R. and Ghahramani, Z. (2017). Deep Bayesian active learning with
image data. ICML.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from . import _validate as check
from . import metrics
from ._rng import as_generator
from .methods import MAP, BayesByBackprop, DeepEnsemble, Laplace, MCDropout
from .predictive import ClassPredictive, Predictive

__all__ = [
    "ActiveCurve",
    "ACQUISITIONS",
    "bald",
    "max_entropy",
    "variation_ratio",
    "mean_std",
    "learn",
    "labels_to_reach",
    "summary_table",
]


def _class_predictive(name: str, pred) -> ClassPredictive:
    if not isinstance(pred, ClassPredictive):
        raise TypeError(f"{name} needs a ClassPredictive (a classifier's predict), got {type(pred).__name__}")
    return pred


def _any_predictive(name: str, pred):
    if not isinstance(pred, ClassPredictive | Predictive):
        raise TypeError(f"{name} needs a ClassPredictive or a Predictive, got {type(pred).__name__}")
    return pred


def bald(pred) -> np.ndarray:
    """BALD: I(y; θ | x) = H[p̄] − E_s H[p_s] per point, (n,); 0 where all draws agree, ≤ log K."""
    return _class_predictive("bald", pred).mutual_information


def max_entropy(pred) -> np.ndarray:
    """Total predictive entropy per point, (n,).

    A ``ClassPredictive``: H[p̄] = −Σ_k p̄_k log p̄_k. A regression ``Predictive``:
    the entropy ½ Σ_o log(2πe s_o²) of the Gaussian with the predictive sd s
    (an upper bound on the mixture's entropy, and a monotone function of s).
    """
    pred = _any_predictive("max_entropy", pred)
    if isinstance(pred, ClassPredictive):
        return pred.entropy
    return np.sum(0.5 * np.log(2.0 * np.pi * np.e * pred.std**2), axis=-1)


def variation_ratio(pred) -> np.ndarray:
    """1 − (weighted) fraction of draws whose top class is the modal one, (n,) (Freeman 1965; Gal 2016 §3.3)."""
    return _class_predictive("variation_ratio", pred).variation_ratio


def mean_std(pred) -> np.ndarray:
    """Mean over classes of the sd over draws of p_k, (n,); a regression ``Predictive``: the mean predictive sd.

    With weights w_s: sd_k = sqrt(Σ_s w_s (p_sk − p̄_k)²) (ddof 0, the mixture's
    own spread), as in Kampffmeyer et al. (2016) and Gal et al. (2017).
    """
    pred = _any_predictive("mean_std", pred)
    if isinstance(pred, Predictive):
        return pred.std.mean(axis=-1)
    variance = np.einsum("s,snk->nk", pred.weights, (pred.samples - pred.probs) ** 2)
    return np.sqrt(variance).mean(axis=-1)


ACQUISITIONS = {
    "bald": bald,
    "max_entropy": max_entropy,
    "variation_ratio": variation_ratio,
    "mean_std": mean_std,
    "random": None,  # uniform scores drawn from the loop's generator
}
# a MAP fit is one θ: every draw agrees, so these three are 0 at every pool point
_NEEDS_SPREAD = ("bald", "variation_ratio", "mean_std")


class ActiveCurve(NamedTuple):
    """One active-learning run: entry r is the fit after r acquisition rounds (entry 0: the initial set).

    ``n_labels``, ``accuracy``, ``nll``, ``ece`` are (n_rounds + 1,); ``chosen``
    is (n_rounds, batch_size), the pool indices labelled in each round, in the
    order of their scores; ``initial`` the (n_initial,) indices labelled first.
    """

    n_labels: np.ndarray
    accuracy: np.ndarray
    nll: np.ndarray
    ece: np.ndarray
    chosen: np.ndarray
    initial: np.ndarray


def _balanced_draw(y: np.ndarray, n_initial: int, rng: np.random.Generator) -> np.ndarray:
    """n_initial pool indices, ⌊n/K⌋ per class and the remainder from distinct random classes."""
    classes = np.unique(y)
    per_class = np.full(classes.size, n_initial // classes.size)
    per_class[rng.choice(classes.size, n_initial % classes.size, replace=False)] += 1
    picked = []
    for k, n_k in zip(classes, per_class, strict=True):
        members = np.flatnonzero(y == k)
        if members.size < n_k:
            raise ValueError(
                f"n_initial={n_initial} asks for {n_k} points of class {k}, but the pool has only {members.size}"
            )
        picked.append(rng.choice(members, n_k, replace=False))
    return rng.permutation(np.concatenate(picked))


def _warm_start(method, posterior):
    """The previous fit's θ in the shape ``method.fit(init=...)`` takes, or None (refit from scratch).

    DeepEnsemble: the members (M, D). MAP, MCDropout, BayesByBackprop and
    Laplace: the (D,) mean — the mode, the undropped weights, q's mean μ
    (σ restarts at its default) and the Laplace mode. Sampling methods (their
    init is per chain) and importance sampling (no init) start afresh.
    """
    if isinstance(method, DeepEnsemble):
        return posterior.members
    if isinstance(method, MAP | MCDropout | BayesByBackprop | Laplace):
        return posterior.mean
    return None


def _check_pair(name: str, pair) -> tuple:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(f"{name} must be a pair (x, y), got {type(pair).__name__}")
    x, y = np.asarray(pair[0], dtype=np.float64), np.asarray(pair[1])
    if y.ndim != 1 or len(x) != y.size:
        raise ValueError(f"{name} must be (x, y) with y (n,) and len(x) = n, got x {x.shape} and y {y.shape}")
    if y.size == 0 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"{name}: y must be non-negative integer class labels, got dtype {y.dtype}")
    return x, y


def learn(
    make_model,
    method,
    pool,
    test,
    acquisition: str = "bald",
    n_initial: int = 20,
    n_rounds: int = 10,
    batch_size: int = 10,
    seed=0,
    n_samples: int | None = None,
    warm_start: bool = True,
    progress: bool = False,
) -> ActiveCurve:
    """Pool-based active learning: fit, score the unlabelled pool, label the top ``batch_size``, repeat.

    Parameters
    ----------
    make_model
        ``make_model(x, y) -> Model``: a classifier on the labelled set (the
        same network, hence the same dim, every round).
    method
        A method (``MCDropout``, ``DeepEnsemble``, ``BayesByBackprop``,
        ``Laplace``, ``MAP``, ...).
    pool, test
        ``(x, y)`` pairs; the pool's labels are revealed only when acquired.
    acquisition
        A name in :data:`ACQUISITIONS`. MAP has one θ, so its BALD, variation
        ratio and mean std are 0 everywhere: those are refused for MAP (use
        ``"max_entropy"``, the softmax entropy, or ``"random"``).
    n_initial
        Size of the first labelled set: a class-balanced random draw.
    n_rounds
        Acquisition rounds; the method is fitted n_rounds + 1 times.
    batch_size
        Labels acquired per round (ties in the score are broken at random).
    seed
        int, Generator or None; the initial draw, every fit, every predictive
        and random acquisition flow from it, so a seed fixes the curve bit for bit.
    n_samples
        θ draws per predictive; default the ensemble's members for a
        DeepEnsemble, 1 for MAP, else 100.
    warm_start
        Start each fit from the previous one (see :func:`_warm_start`);
        methods that cannot warm start refit from scratch.
    progress
        A tqdm bar over the rounds.

    Returns
    -------
    ActiveCurve
    """
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; valid: {', '.join(ACQUISITIONS)}")
    if isinstance(method, MAP) and acquisition in _NEEDS_SPREAD:
        raise ValueError(
            f"acquisition={acquisition!r} is 0 at every point for MAP (one θ: its draws cannot disagree); "
            "use 'max_entropy' (the softmax entropy, the non-Bayesian baseline) or 'random'"
        )
    if not callable(make_model):
        raise TypeError(f"make_model must be callable as make_model(x, y), got {type(make_model).__name__}")
    x_pool, y_pool = _check_pair("pool", pool)
    x_test, y_test = _check_pair("test", test)
    n_initial = check.count("n_initial", n_initial)
    n_rounds = check.count("n_rounds", n_rounds)
    batch_size = check.count("batch_size", batch_size)
    needed = n_initial + n_rounds * batch_size
    if needed > y_pool.size:
        raise ValueError(
            f"n_initial + n_rounds × batch_size = {n_initial} + {n_rounds} × {batch_size} = {needed} labels, "
            f"but the pool holds only {y_pool.size} points"
        )
    if n_samples is None:
        n_samples = method.n_members if isinstance(method, DeepEnsemble) else 1 if isinstance(method, MAP) else 100
    n_samples = check.count("n_samples", n_samples)
    score = ACQUISITIONS[acquisition]
    rng = as_generator(seed)
    labelled = _balanced_draw(y_pool, n_initial, rng)
    initial, chosen, rows, init = labelled.copy(), [], [], None
    for r in tqdm(range(n_rounds + 1), desc=f"active {acquisition}", disable=not progress, leave=False):
        model = make_model(x_pool[labelled], y_pool[labelled])
        posterior = method.fit(model, seed=rng, init=init)
        if warm_start:
            init = _warm_start(method, posterior)
        probs = posterior.predict(x_test, n_samples=n_samples, seed=rng).probs
        rows.append(
            (labelled.size, metrics.accuracy(probs, y_test), metrics.nll(probs, y_test), metrics.ece(probs, y_test))
        )
        if r == n_rounds:
            break
        unlabelled = np.setdiff1d(np.arange(y_pool.size), labelled)
        if score is None:
            scores = rng.random(unlabelled.size)
        else:
            scores = score(posterior.predict(x_pool[unlabelled], n_samples=n_samples, seed=rng))
        order = np.lexsort((rng.random(unlabelled.size), -scores))  # highest first, random among ties
        picked = unlabelled[order[:batch_size]]
        chosen.append(picked)
        labelled = np.concatenate([labelled, picked])
    n_labels, accuracy, nll, ece = (np.array(column) for column in zip(*rows, strict=True))
    return ActiveCurve(n_labels, accuracy, nll, ece, np.array(chosen).reshape(n_rounds, batch_size), initial)


def labels_to_reach(curve: ActiveCurve, target: float) -> float:
    """The first number of labels at which test accuracy is ≥ ``target``; inf if the run never gets there."""
    reached = np.flatnonzero(np.asarray(curve.accuracy) >= target)
    return float(curve.n_labels[reached[0]]) if reached.size else np.inf


def _mean_sd(values, digits: int) -> str:
    values = np.asarray(values, dtype=np.float64)
    sd = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"


def summary_table(curves: dict, at=(50, 100, 200, 400), target: float = 0.9) -> str:
    """A markdown table: test accuracy at fixed label counts and labels to reach ``target`` (mean ± sd over seeds).

    Parameters
    ----------
    curves
        Acquisition name -> list of per-seed :class:`ActiveCurve`.
    at
        Label counts to report; a count no run recorded gets "—".
    target
        The accuracy whose first crossing is counted. Runs that never reach it
        are left out of the mean and counted ("k/n seeds reach it").
    """
    check.number("target", target, 0.0, 1.0)
    header = ["acquisition", *(f"accuracy @ {n}" for n in at), f"labels to {100 * target:g}%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in curves.items():
        cells = [name]
        for n in at:
            hits = [run.accuracy[run.n_labels == n] for run in runs]
            cells.append(_mean_sd([h[0] for h in hits], 3) if all(h.size for h in hits) else "—")
        needed = np.array([labels_to_reach(run, target) for run in runs])
        finite = needed[np.isfinite(needed)]
        if finite.size == needed.size:
            cells.append(_mean_sd(finite, 0))
        elif finite.size:
            most = int(max(run.n_labels[-1] for run in runs))
            cells.append(f"{_mean_sd(finite, 0)} ({finite.size}/{needed.size} seeds; the rest > {most})")
        else:
            cells.append(f"not reached (> {int(max(run.n_labels[-1] for run in runs))})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
