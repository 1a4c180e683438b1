"""The pieces Hamiltonian Monte Carlo is assembled from, each usable and testable alone.

- :func:`kinetic_energy` — K(p) = ½ pᵀ M⁻¹ p for a diagonal mass matrix M.
- :func:`leapfrog` — L steps of the leapfrog (Störmer–Verlet) integrator,
  batched over chains, one gradient evaluation per step.
- :func:`accept` — the Metropolis accept/reject decision from a log
  acceptance ratio, shared with random-walk Metropolis.

Everything works on a leading batch axis (chains), so one call moves every
chain at once; nothing here raises on NaN or inf: a chain whose trajectory
blows up gets a non-finite energy, and :func:`accept` rejects it. Each piece
runs under its own ``np.errstate`` (NumPy's decorator), so it never warns;
the bare function is its ``__wrapped__``, for a caller such as ``HMC.step``
that runs them all under one errstate (entering one costs ~1 µs).

References
----------
Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In *Handbook of Markov
    Chain Monte Carlo*, ch. 5. Chapman & Hall/CRC.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _validate as check

__all__ = ["kinetic_energy", "leapfrog", "accept"]


def _is_unit(inv_mass) -> bool:
    """Whether ``inv_mass`` is the scalar 1 (the identity mass matrix), whose products can be skipped."""
    if type(inv_mass) is float:  # what HMC passes: np.ndim would cost ~1.4 µs a call, three calls an iteration
        return inv_mass == 1.0
    return np.ndim(inv_mass) == 0 and inv_mass == 1.0


@np.errstate(over="ignore", invalid="ignore")
def kinetic_energy(momentum: np.ndarray, inv_mass: np.ndarray | float = 1.0) -> np.ndarray:
    """Kinetic energy of each chain's momentum.

    Parameters
    ----------
    momentum
        (..., D) momenta, e.g. (n_chains, D).
    inv_mass
        Diagonal of the inverse mass matrix M⁻¹, (D,) or a scalar.

    Returns
    -------
    numpy.ndarray
        (...,) energies: one number per chain.

    Notes
    -----
    K(p) = ½ Σ_i p_i² / m_i, the negative log density (up to a constant) of
    the momentum distribution N(0, M).
    """
    squared = momentum * momentum
    # the identity mass (a scalar 1.0) skips its product: p²·1 is p² exactly, so the energy is the same bits
    return 0.5 * (squared if _is_unit(inv_mass) else squared * inv_mass).sum(axis=-1)


@np.errstate(all="ignore")
def leapfrog(
    log_joint_and_grad: Callable,
    position: np.ndarray,
    momentum: np.ndarray,
    grad: np.ndarray,
    step_size: float | np.ndarray,
    n_steps: int,
    inv_mass: np.ndarray | float = 1.0,
) -> tuple:
    """Integrate Hamilton's equations for ``n_steps`` leapfrog steps.

    Parameters
    ----------
    log_joint_and_grad
        θ (n_chains, D) -> (log p (n_chains,), ∇ log p (n_chains, D)); the
        potential energy is U = −log p.
    position, momentum
        (n_chains, D) starting point of every chain.
    grad
        ∇ log p at ``position``: carried over from the previous trajectory,
        so a trajectory of L steps costs exactly L gradient evaluations.
    step_size
        ε, a float or one per chain (n_chains,).
    n_steps
        L ≥ 1.
    inv_mass
        Diagonal of M⁻¹, (D,) or a scalar.

    Returns
    -------
    tuple
        ``(position, momentum, log_joint, grad)`` at the end of the
        trajectory. Non-finite values are passed through (no warnings), for
        the caller to reject.

    Notes
    -----
    Half a momentum kick p ← p + ε/2 ∇log p(θ), a full drift θ ← θ + ε M⁻¹ p,
    half a kick; consecutive half kicks merge into full ones. The map is
    reversible (negating p retraces the path) and preserves volume, which is
    why a Metropolis test on the energy alone makes HMC exact.

    References
    ----------
    Neal (2011), section 5.2.3.
    """
    if type(n_steps) is not int or n_steps < 1:  # HMC calls this every iteration: check only what can fail
        n_steps = check.count("n_steps", n_steps)
    # one ε per chain becomes a column, so it scales that chain's row; a single ε stays a Python float,
    # NumPy's cheapest operand (the products are the same bits either way)
    if type(step_size) is float or np.ndim(step_size) == 0:  # the type first: np.ndim costs ~1.4 µs
        eps = float(step_size)
    else:
        eps = np.reshape(np.asarray(step_size, dtype=np.float64), np.shape(step_size) + (1,))
    half_eps = 0.5 * eps
    unit_mass = _is_unit(inv_mass)
    log_joint = None
    momentum = momentum + half_eps * grad
    for i in range(n_steps):
        # with the identity mass M⁻¹p is p itself: one array pass fewer a step, the same bits
        position = position + eps * (momentum if unit_mass else inv_mass * momentum)
        log_joint, grad = log_joint_and_grad(position)
        momentum = momentum + (eps if i < n_steps - 1 else half_eps) * grad
    return position, momentum, np.asarray(log_joint, dtype=np.float64), grad


@np.errstate(divide="ignore", over="ignore")
def accept(rng: np.random.Generator, log_ratio: np.ndarray) -> tuple:
    """Metropolis accept/reject for a batch of proposals.

    Parameters
    ----------
    rng
        Source of the uniform draws (one per proposal).
    log_ratio
        (n_chains,) log acceptance ratios log p̃(proposal) − log p̃(current)
        (for HMC, minus the energy error). NaN counts as −inf: a proposal
        that cannot be evaluated is rejected.

    Returns
    -------
    tuple
        ``(accepted, accept_prob)``: a boolean (n_chains,) mask and
        min(1, exp(log_ratio)) per proposal.

    Notes
    -----
    Accept when log u < log_ratio with u ~ U[0, 1): the comparison stays in
    log space, so no ratio of tiny densities underflows.
    """
    # fmax returns its other argument where one is NaN, and x itself for any other x: NaN -> −inf in one pass
    log_ratio = np.fmax(np.asarray(log_ratio, dtype=np.float64), -np.inf)
    accept_prob = np.exp(np.minimum(log_ratio, 0.0))
    accepted = np.log(rng.random(log_ratio.shape)) < log_ratio
    return accepted, accept_prob
