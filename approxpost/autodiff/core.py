"""The graph engine: a ``Var`` node, the backward pass, ``grad`` and ``value_and_grad``.

A ``Var`` holds a float64 array, the ``Var`` s it was computed from and, for
each of them, a vector-Jacobian product (VJP): a function taking the gradient
of the final scalar with respect to this node's value and returning the
gradient with respect to that parent's value. The primitives that build
``Var`` s live in :mod:`approxpost.autodiff.ops`, each next to its VJP.

Every ``Var`` gets a creation number, and a node is always created after its
parents, so visiting nodes in decreasing creation number is a reverse
topological order: ``backward`` walks the graph from the output with a heap
keyed on that number and sums the gradients arriving at each node in a
dictionary. Nothing on a node is mutated, so there is no ``zero_grad`` and a
graph can be differentiated twice.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import numpy as np

__all__ = [
    "Var",
    "IndexedGrad",
    "unbroadcast",
    "unbroadcaster",
    "add_gradient",
    "leaf_gradient",
    "parent_gradients",
    "vjp",
    "value_and_grad",
    "grad",
]


_creation_counter = itertools.count()


class Var:
    """A node of the computation graph: a value and how to send gradients back.

    Parameters
    ----------
    value
        The array this node holds (converted to float64).
    parents
        The ``Var`` s this value was computed from.
    vjps
        One function per parent, ``g -> gradient for that parent``, where
        ``g`` has the shape of ``value``; or one joint function, ``g -> a
        gradient for each parent``, for an op whose operands' gradients share
        work (a fused layer's g·act'(z), :func:`~approxpost.autodiff.tape.split_primitive`).
    """

    __slots__ = ("value", "parents", "vjps", "order")
    # NumPy defers to Var for ``array + var`` so the expression builds a node
    # instead of NumPy looping over the Var as an object array.
    __array_ufunc__ = None

    def __init__(self, value, parents: tuple = (), vjps: tuple = ()):
        # a float64 NumPy scalar (what arithmetic on 0-d arrays returns) is kept as it is: converting it
        # back to a 0-d array costs as much as the scalar arithmetic itself on a 2-D target's graph
        t = type(value)
        self.value = (
            value
            if (t is np.ndarray and value.dtype == np.float64) or t is np.float64
            else np.asarray(value, dtype=np.float64)
        )
        self.parents = parents
        self.vjps = vjps
        self.order = next(_creation_counter)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Var({np.array2string(self.value, threshold=8)}, shape={self.value.shape})"


class IndexedGrad:
    """The gradient of pieces of an array: each ``(index, value)`` of ``pieces`` belongs at ``index`` of an array shaped ``shape``.

    Returned by the VJP of indexing (one piece) so that the backward pass can
    add a slice's gradient into one buffer for ``x`` instead of materialising
    a mostly-zero array for every slice (unpacking θ into layer weights takes
    one slice per weight matrix); a fused layer returns one with its W and b
    slices of θ. ``basic``: every index is basic (a view), so ``+=`` adds.
    """

    __slots__ = ("pieces", "shape", "basic")

    def __init__(self, pieces: tuple, shape: tuple, basic: bool = True):
        self.pieces, self.shape, self.basic = pieces, shape, basic

    def add_into(self, buffer: np.ndarray) -> None:
        """Add every piece into ``buffer`` in place, in order (repeated fancy indices add up)."""
        for index, value in self.pieces:
            if self.basic:
                piece = buffer[index]
                if type(piece) is np.ndarray:  # a view: += adds in place (``buffer[index] += value`` copies back)
                    piece += value
                else:  # one element, read out as a scalar
                    buffer[index] += value
            else:
                np.add.at(buffer, index, value)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` down to ``shape``, undoing NumPy broadcasting.

    Broadcasting copies an operand along new leading axes and along axes of
    length one, so its gradient is the sum of the copies' gradients.
    """
    if g.shape == shape:
        return g
    g = np.asarray(g)
    n_extra = g.ndim - len(shape)
    if n_extra > 0:
        g = g.sum(axis=tuple(range(n_extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _unchanged(g):
    return g


def broadcast_shape(a: tuple, b: tuple) -> tuple:
    """``np.broadcast_shapes(a, b)``, without its ~2 µs when the shapes are equal or one is ``()``."""
    if a == b or not b:
        return a
    return b if not a else np.broadcast_shapes(a, b)


def unbroadcaster(shape: tuple, to: tuple) -> Callable:
    """``g -> unbroadcast(g, to)`` for every g of ``shape``: the same NumPy calls, the axes worked out once.

    What a replayed step (:func:`~approxpost.autodiff.tape.split_primitive`)
    uses, since its shapes are fixed when the tape is recorded.
    """
    if shape == to:
        return _unchanged
    n_extra = len(shape) - len(to)
    lead, kept = tuple(range(n_extra)), shape[n_extra:]
    ones = tuple(i for i, n in enumerate(to) if n == 1 and kept[i] != 1)

    def summed(g):  # np.add.reduce is the sum ndarray.sum computes, without its Python wrapper
        g = np.add.reduce(g, axis=lead) if lead else g
        return (np.add.reduce(g, axis=ones, keepdims=True) if ones else g).reshape(to)

    return summed


def add_gradient(grads: dict, owned: set, key, contribution) -> None:
    """Add one VJP's ``contribution`` (an array or an ``IndexedGrad``) into ``grads[key]``.

    A gradient buffer this pass allocated (``owned``) is added into in place;
    any other array may be a read-only view or another node's value, so the
    first sum into it makes a new array.
    """
    held = grads.get(key)
    if type(contribution) is IndexedGrad:
        if held is None or key not in owned:
            held = np.zeros(contribution.shape) if held is None else np.array(held, dtype=np.float64)
            grads[key] = held
            owned.add(key)
        contribution.add_into(held)
    elif held is None:
        grads[key] = contribution
    elif key in owned:
        held += contribution
    else:
        # asarray: two 0-d gradients add to a NumPy scalar, which `+=` would not update in place
        grads[key] = np.asarray(held + contribution)
        owned.add(key)


def leaf_gradient(grads: dict, owned: set, key, shape: tuple) -> np.ndarray:
    """The finished gradient for a leaf: a fresh writeable array shaped ``shape``."""
    if key not in grads:
        return np.zeros(shape)
    if key in owned:
        return grads[key]
    # may be a read-only broadcast view or alias a node's value: hand back a copy
    g = grads[key]
    g = g if np.shape(g) == shape else np.broadcast_to(g, shape)
    return np.array(g, dtype=np.float64)


def parent_gradients(vjps, g):
    """Each parent's gradient from a node's ``vjps`` (one function per parent, or one joint function) and its ``g``."""
    return vjps(g) if type(vjps) is not tuple else [vjp(g) for vjp in vjps]


def backward(out: Var, g_out, leaves: tuple) -> list:
    """Gradients of ``sum(g_out * out)`` with respect to each of ``leaves``.

    Nodes are taken from a heap in decreasing creation order, so every node
    has received all of its gradient contributions before its own VJPs run.
    """
    grads, owned = {out.order: g_out}, set()
    leaf_keys = {leaf.order for leaf in leaves}
    heap, queued = [(-out.order, out)], {out.order}
    while heap:
        _, node = heapq.heappop(heap)
        key = node.order
        g = grads[key] if key in leaf_keys else grads.pop(key)
        vjps = node.vjps
        joint = None if type(vjps) is tuple else vjps(g)  # one VJP for all parents (a split primitive's node)
        for i, parent in enumerate(node.parents):
            pkey = parent.order
            if pkey not in queued:
                queued.add(pkey)
                heapq.heappush(heap, (-pkey, parent))
            add_gradient(grads, owned, pkey, vjps[i](g) if joint is None else joint[i])
    return [leaf_gradient(grads, owned, leaf.order, leaf.shape) for leaf in leaves]


def vjp(f: Callable, x) -> tuple:
    """Evaluate ``f(x)`` and return ``(value, pullback)``.

    ``pullback(g)`` is the vector-Jacobian product ``g^T ∂f/∂x``: the gradient
    of ``sum(g * f(x))``. With ``f`` mapping (S, D) to (S,) and ``g = 1``
    this gives every row's gradient in one backward pass, since rows do not
    interact.
    """
    leaf = Var(np.array(x, dtype=np.float64, copy=True))
    out = f(leaf)
    if not isinstance(out, Var):  # f ignores its input: zero gradient
        value = np.asarray(out, dtype=np.float64)
        return value, lambda g: np.zeros(leaf.shape)

    def pullback(g):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != out.shape:  # a scalar seed for a vector output, say
            g = np.broadcast_to(g, out.shape)
        return backward(out, g, (leaf,))[0]

    return out.value, pullback


def value_and_grad(f: Callable) -> Callable:
    """Return a function computing ``(f(x), ∇f(x))`` for a scalar-valued ``f``.

    Parameters
    ----------
    f
        A function of one array written with :mod:`approxpost.autodiff` ops,
        returning a scalar (an array of size one).

    Returns
    -------
    callable
        ``x -> (float, gradient shaped like x)``.
    """

    def value_and_grad_f(x):
        value, pullback = vjp(f, x)
        if value.size != 1:
            raise ValueError(
                f"value_and_grad needs f to return a scalar, got shape {value.shape}; use ad.vjp for vector outputs"
            )
        return float(value.reshape(())), pullback(np.ones(value.shape))

    value_and_grad_f.__name__ = f"value_and_grad_{getattr(f, '__name__', 'f')}"
    value_and_grad_f.__doc__ = f"Value and gradient of {getattr(f, '__name__', 'f')}."
    return value_and_grad_f


def grad(f: Callable) -> Callable:
    """Return a function computing ``∇f(x)`` for a scalar-valued ``f``."""
    value_and_grad_f = value_and_grad(f)

    def grad_f(x):
        return value_and_grad_f(x)[1]

    grad_f.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    return grad_f
