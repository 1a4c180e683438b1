"""One No-U-Turn trajectory for every chain at once: iterative tree doubling in lockstep.

A NUTS transition doubles a trajectory of leapfrog steps, each doubling in a
random direction, until the trajectory makes a U-turn, diverges or reaches
``max_tree_depth`` doublings; the next state is drawn from all the points
visited, each weighted by exp(−H). Here the chains do this together: every
leapfrog step is one batched gradient over all chains (n_chains, D), and a
per-chain mask says which chains are still building. A chain whose tree has
finished waits for the others (its rows are still evaluated, so the batch
keeps one shape); :class:`Trajectory` records how many steps each chain used
and how many the batch took, so the cost of waiting can be measured.

The tree is built iteratively rather than by recursion: a subtree of 2^j
leaves is laid down leaf by leaf, and a stack of completed blocks (a binary
counter) merges two blocks of equal size as soon as the second is complete,
checking the U-turn criterion on the merged block. The blocks and checks are
exactly those of the recursive algorithm, with O(j) memory.

References
----------
Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: adaptively
    setting path lengths in Hamiltonian Monte Carlo. *JMLR* 15, 1593–1623.
Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo.
    arXiv:1701.02434 (multinomial sampling, the generalised criterion, A.4).
Stan Development Team. ``stan/mcmc/hmc/nuts/base_nuts.hpp`` (the extra
    checks across merged subtrees, Stan ≥ 2.26).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .integrators import kinetic_energy, leapfrog

__all__ = ["Trajectory", "Block", "no_uturn", "merge_is_no_uturn", "nuts_trajectory", "initial_step_size"]

DIVERGENCE_THRESHOLD = 1000.0
"""A leaf whose energy exceeds the start's by more than this (or is non-finite) is a divergence (Stan's default)."""


class Trajectory(NamedTuple):
    """The outcome of one NUTS transition, per chain (n_chains,) unless noted.

    ``position``, ``log_joint``, ``grad`` are the drawn point; ``accept_prob``
    is the mean of min(1, exp(−ΔH)) over the leaves built (Stan's
    ``accept_stat``, what dual averaging tunes); ``tree_depth`` counts the
    doublings kept; ``n_leapfrog`` the leapfrog steps the chain used;
    ``n_steps`` (an int) the steps the lockstep batch took.
    """

    position: np.ndarray
    log_joint: np.ndarray
    grad: np.ndarray
    accept_prob: np.ndarray
    diverging: np.ndarray
    tree_depth: np.ndarray
    n_leapfrog: np.ndarray
    n_steps: int


class Block(NamedTuple):
    """A run of consecutive leaves in traversal order: first and last momentum, and the sum ρ of all its momenta."""

    first: np.ndarray
    last: np.ndarray
    rho: np.ndarray


def no_uturn(p_a: np.ndarray, p_b: np.ndarray, rho: np.ndarray, inv_mass) -> np.ndarray:
    """The generalised criterion for a stretch with end momenta p_a, p_b and momentum sum ρ: (n_chains,) bool.

    Both ends still move away from each other when ρ · M⁻¹p_a > 0 and
    ρ · M⁻¹p_b > 0 (Betancourt 2017, A.4.2); it is symmetric in the ends.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.sum(rho * inv_mass * p_a, axis=-1) > 0) & (np.sum(rho * inv_mass * p_b, axis=-1) > 0)


def merge_is_no_uturn(a: Block, b: Block, inv_mass) -> np.ndarray:
    """Whether joining block ``a`` and the block ``b`` after it keeps every criterion Stan checks.

    The merged stretch, and the two stretches that overlap the join by one
    leaf (``a`` plus b's first leaf, a's last leaf plus ``b``): without the
    last two, a U-turn between the halves of a large tree can go unseen.
    """
    whole = no_uturn(a.first, b.last, a.rho + b.rho, inv_mass)
    return (
        whole
        & no_uturn(a.first, b.first, a.rho + b.first, inv_mass)
        & no_uturn(a.last, b.last, a.last + b.rho, inv_mass)
    )


class _Subtree(NamedTuple):
    """A freshly built subtree, per chain: whether it is valid, its block, far end (θ, p, ∇), draw, log Σw, counts."""

    valid: np.ndarray
    block: Block | None
    end: tuple
    draw: tuple
    log_weight: np.ndarray
    n_leapfrog: np.ndarray
    sum_accept: np.ndarray
    diverging: np.ndarray
    n_steps: int


def _where(mask: np.ndarray, new: tuple, old: tuple) -> tuple:
    """Row-wise choice between two tuples of per-chain arrays."""
    return tuple(np.where(mask.reshape(mask.shape + (1,) * (np.ndim(n) - 1)), n, o) for n, o in zip(new, old))


def _subtree(log_joint_and_grad, start: tuple, h0, step_size, inv_mass, n_leaves: int, building, rng) -> _Subtree:
    """Lay down ``n_leaves`` leapfrog steps from ``start`` = (θ, p, ∇) with a signed step per chain.

    Within the subtree the draw is multinomial: leaf i replaces the current
    draw with probability w_i / Σ_{k ≤ i} w_k, which picks each leaf with
    probability ∝ w = exp(H₀ − H). A chain stops (and its subtree is
    invalid) at a divergence or at a U-turn inside any completed block.
    """
    n_chains = h0.shape[0]
    position, momentum, grad = start
    log_joint = np.zeros(n_chains)
    draw = (position, log_joint, grad)
    log_weight = np.full(n_chains, -np.inf)
    valid = building.copy()
    n_leapfrog, sum_accept, diverging = np.zeros(n_chains, int), np.zeros(n_chains), np.zeros(n_chains, bool)
    stack, n_steps = [], 0  # stack: (size, Block), sizes strictly decreasing
    for _ in range(n_leaves):
        if not valid.any():
            break
        leaf = leapfrog(log_joint_and_grad, position, momentum, grad, step_size, 1, inv_mass)
        n_steps += 1
        with np.errstate(all="ignore"):
            h = kinetic_energy(leaf[1], inv_mass) - leaf[2]
            finite = np.isfinite(h) & np.all(np.isfinite(leaf[0]), axis=1) & np.all(np.isfinite(leaf[3]), axis=1)
            h = np.where(finite, h, np.inf)
            leaf_log_weight = h0 - h
            n_leapfrog += valid
            sum_accept += np.where(valid, np.exp(np.minimum(leaf_log_weight, 0.0)), 0.0)
            divergent = valid & (h - h0 > DIVERGENCE_THRESHOLD)
            diverging |= divergent
            keep = valid & ~divergent
            new_log_weight = np.logaddexp(log_weight, leaf_log_weight)
            take = keep & (np.log(rng.random(n_chains)) < leaf_log_weight - new_log_weight)
        log_weight = np.where(keep, new_log_weight, log_weight)
        draw = _where(take, (leaf[0], leaf[2], leaf[3]), draw)
        # a chain that stopped keeps its last finite leaf, so its rows stay finite while it waits
        position, momentum, grad = _where(keep, (leaf[0], leaf[1], leaf[3]), (position, momentum, grad))
        stack.append((1, Block(momentum, momentum, momentum)))
        ok = np.ones(n_chains, bool)
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (size, b), (_, a) = stack.pop(), stack.pop()
            ok &= merge_is_no_uturn(a, b, inv_mass)
            stack.append((2 * size, Block(a.first, b.last, a.rho + b.rho)))
        valid = keep & ok
    # a complete subtree is one block; a partial stack means every chain stopped early (none is valid)
    whole = stack[0][1] if len(stack) == 1 else None
    valid = valid if whole is not None else np.zeros(n_chains, bool)
    return _Subtree(
        valid, whole, (position, momentum, grad), draw, log_weight, n_leapfrog, sum_accept, diverging, n_steps
    )


def nuts_trajectory(
    log_joint_and_grad: Callable,
    position: np.ndarray,
    log_joint: np.ndarray,
    grad: np.ndarray,
    momentum: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray,
    max_tree_depth: int,
    rng: np.random.Generator,
) -> Trajectory:
    """One multinomial NUTS transition from ``position`` with ``momentum``, every chain in lockstep.

    Parameters
    ----------
    log_joint_and_grad
        θ (n_chains, D) -> (log p (n_chains,), ∇ log p (n_chains, D)).
    position, log_joint, grad
        The current state of every chain and its log joint and gradient.
    momentum
        (n_chains, D) fresh momenta p ~ N(0, M).
    step_size
        ε, shared by the chains.
    inv_mass
        Diagonal of M⁻¹, (D,).
    max_tree_depth
        Most doublings: at most 2^max_tree_depth − 1 leapfrog steps.
    rng
        Directions and the draws; as many numbers are taken whichever chains
        are still building, so the stream never depends on the masks.

    Returns
    -------
    Trajectory

    Notes
    -----
    Doubling j adds a subtree of 2^j leaves at the end chosen by a fair coin.
    A valid subtree's draw replaces the tree's with probability
    min(1, W_new / W_old) (biased progressive sampling, Betancourt 2017,
    A.3.2), which still leaves the target invariant and moves further than a
    plain multinomial choice. The tree stops when the new subtree is invalid
    (its draw is then discarded) or when the merged tree fails
    :func:`merge_is_no_uturn`.
    """
    n_chains = position.shape[0]
    h0 = kinetic_energy(momentum, inv_mass) - log_joint
    left = right = (position, momentum, grad)  # the two ends of the tree (θ, p, ∇)
    tree = Block(momentum, momentum, momentum)  # in space: first = left end's momentum, last = right end's
    log_weight = np.zeros(n_chains)
    draw = (position, log_joint, grad)
    building = np.ones(n_chains, bool)
    depth, n_leapfrog = np.zeros(n_chains, int), np.zeros(n_chains, int)
    sum_accept, diverging, n_steps = np.zeros(n_chains), np.zeros(n_chains, bool), 0
    for j in range(max_tree_depth):
        if not building.any():
            break
        forward = rng.random(n_chains) < 0.5
        start = _where(forward, right, left)
        sub = _subtree(
            log_joint_and_grad, start, h0, np.where(forward, step_size, -step_size), inv_mass, 2**j, building, rng
        )
        n_steps += sub.n_steps
        n_leapfrog += sub.n_leapfrog
        sum_accept += sub.sum_accept
        diverging |= sub.diverging
        merge = sub.valid
        u = rng.random(n_chains)
        if not merge.any():
            building[:] = False
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            take = merge & (np.log(u) < sub.log_weight - log_weight)
        draw = _where(take, sub.draw, draw)
        log_weight = np.where(merge, np.logaddexp(log_weight, sub.log_weight), log_weight)
        # the criterion in traversal order: old tree (far end first), then the new subtree
        block = sub.block
        old = Block(
            np.where(forward[:, None], tree.first, tree.last),
            np.where(forward[:, None], tree.last, tree.first),
            tree.rho,
        )
        ok = merge_is_no_uturn(old, block, inv_mass)
        new_first = np.where(forward[:, None], tree.first, block.last)
        new_last = np.where(forward[:, None], block.last, tree.last)
        tree = Block(*_where(merge, (new_first, new_last, tree.rho + block.rho), tree))
        left = _where(merge & ~forward, sub.end, left)
        right = _where(merge & forward, sub.end, right)
        depth += merge
        building = merge & ok
    return Trajectory(
        position=draw[0],
        log_joint=np.asarray(draw[1], dtype=np.float64),
        grad=draw[2],
        accept_prob=sum_accept / np.maximum(n_leapfrog, 1),
        diverging=diverging,
        tree_depth=depth,
        n_leapfrog=n_leapfrog,
        n_steps=n_steps,
    )


def initial_step_size(log_joint_and_grad, position, log_joint, grad, inv_mass, step_size, rng, max_tries=50) -> float:
    """Stan's starting ε: double (or halve) it until one leapfrog step's acceptance crosses 0.8.

    The acceptance probability min(1, exp(−ΔH)) is averaged over the chains
    (they share ε). Gives up after ``max_tries`` changes; dual averaging
    takes over from wherever it stopped.
    """

    def log_accept(eps: float) -> float:
        momentum = rng.standard_normal(position.shape) / np.sqrt(inv_mass)
        h0 = kinetic_energy(momentum, inv_mass) - log_joint
        _, new_momentum, new_log_joint, _ = leapfrog(log_joint_and_grad, position, momentum, grad, eps, 1, inv_mass)
        with np.errstate(all="ignore"):
            accept = np.exp(np.minimum(h0 - kinetic_energy(new_momentum, inv_mass) + new_log_joint, 0.0))
            return float(np.log(np.mean(np.nan_to_num(accept, nan=0.0))))

    threshold = np.log(0.8)
    direction = 1 if log_accept(step_size) > threshold else -1
    for _ in range(max_tries):
        step_size = step_size * 2.0**direction
        if (log_accept(step_size) > threshold) != (direction == 1):
            break
    return float(step_size)
