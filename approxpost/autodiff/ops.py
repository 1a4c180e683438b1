"""Primitive operations on ``Var`` s, each followed by its vector-Jacobian product.

Every op accepts ``Var`` s, NumPy arrays and Python numbers in any mix. Only
``Var`` operands get a VJP; an op with no ``Var`` operand returns a plain
NumPy array, so the same function runs on data with no graph at all.
Gradients of broadcast operands are summed back to their shapes by
:func:`~approxpost.autodiff.core.unbroadcast`.

Most ops make their node from closures. The few every built-in model's log
joint runs on each call (``add``, ``matmul``, ``mean``) are instead written
as the forward and backward halves of a
:func:`~approxpost.autodiff.tape.split_primitive`, which a tape replays on
arrays without making nodes; the fused layer ops of :mod:`.fused` are too.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import tape as _tape
from .core import IndexedGrad, Var, broadcast_shape, unbroadcast, unbroadcaster

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "matmul",
    "affine",
    "exp",
    "log",
    "log1p",
    "sqrt",
    "square",
    "abs",
    "tanh",
    "sigmoid",
    "relu",
    "softplus",
    "sum",
    "sum_squares",
    "mean",
    "reshape",
    "transpose",
    "swapaxes",
    "getitem",
    "view",
    "concatenate",
    "stack",
    "logsumexp",
    "log_softmax",
    "where",
]


def _value(x):
    return x.value if type(x) is Var else x


def _node1(value, x, vjp_x):
    """A ``Var`` for ``value`` computed from ``x``, or the bare value when ``x`` is a constant."""
    return Var(value, (x,), (vjp_x,)) if type(x) is Var else value


def _node2(value, a, vjp_a, b, vjp_b):
    """A ``Var`` for ``value`` computed from ``a`` and ``b``; constants get no VJP."""
    if type(a) is Var:
        return Var(value, (a, b), (vjp_a, vjp_b)) if type(b) is Var else Var(value, (a,), (vjp_a,))
    return Var(value, (b,), (vjp_b,)) if type(b) is Var else value


def _node(value, *operands_and_vjps):
    """A ``Var`` for ``value`` computed from any number of operands; constants get no VJP."""
    pairs = [pair for pair in operands_and_vjps if type(pair[0]) is Var]
    if not pairs:
        return value
    return Var(value, tuple(p for p, _ in pairs), tuple(v for _, v in pairs))


def _shape(x) -> tuple:
    # np.shape costs ~1 µs; arrays and NumPy scalars (what reductions return) carry their shape
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return x.shape
    return () if type(x) in (float, int) else np.shape(x)


# --- arithmetic ---------------------------------------------------------------


@_tape.split_primitive(n_operands=2)
def add(needs, a, b):
    """a + b.  VJP: g, g (each summed back to its operand's shape).

    Split (see the module docstring): every log joint ends with one,
    log p(θ) + log p(D | θ).
    """

    def forward(av, bv):
        return av + bv, None

    if True not in needs:  # a value alone: nothing more to work out
        return forward, None
    shape_a, shape_b = _shape(a), _shape(b)
    shape = broadcast_shape(shape_a, shape_b)
    to_a, to_b = unbroadcaster(shape, shape_a), unbroadcaster(shape, shape_b)

    def backward(_, g):
        return (to_a(g) if needs[0] else None), (to_b(g) if needs[1] else None)

    return forward, backward


def sub(a, b):
    """a - b.  VJP: g, -g."""
    av, bv = a.value if type(a) is Var else a, b.value if type(b) is Var else b
    sa, sb = _shape(av), _shape(bv)
    return _node2(av - bv, a, lambda g: unbroadcast(g, sa), b, lambda g: unbroadcast(-g, sb))


def mul(a, b):
    """a * b.  VJP: g b, g a."""
    av, bv = a.value if type(a) is Var else a, b.value if type(b) is Var else b
    return _node2(av * bv, a, lambda g: unbroadcast(g * bv, _shape(av)), b, lambda g: unbroadcast(g * av, _shape(bv)))


def div(a, b):
    """a / b.  VJP: g / b, -g a / b²."""
    av, bv = a.value if type(a) is Var else a, b.value if type(b) is Var else b
    out = av / bv
    return _node2(
        out, a, lambda g: unbroadcast(g / bv, _shape(av)), b, lambda g: unbroadcast(-g * out / bv, _shape(bv))
    )


def neg(a):
    """-a.  VJP: -g."""
    return _node1(-_value(a), a, lambda g: -g)


def pow(a, b):
    """a ** b.  VJP: g b a^(b-1), g log(a) a^b (the latter only when b is a Var)."""
    av, bv = _value(a), _value(b)
    out = av**bv

    def vjp_a(g):
        return unbroadcast(g * bv * av ** (bv - 1.0), _shape(av))

    def vjp_b(g):
        return unbroadcast(g * out * np.log(np.where(av > 0, av, 1.0)), _shape(bv))

    return _node2(out, a, vjp_a, b, vjp_b)


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, computed as a broadcast multiply when the contracted axis has length one.

    OpenBLAS's gemm is slow when the contracted axis has length one: the
    first layer of an MLP with one input, (…, n, 1) @ (…, 1, m), took 470 µs
    at S = 64 against 160 µs as ``a * b`` (bench/autodiff.py), and so did the
    backward pass of a one-output last layer. Both give the same bits: each
    output is the single product a[i, 0] b[0, j], rounded once either way.
    """
    if type(a) is type(b) is np.ndarray and a.ndim > 1 and b.ndim > 1 and a.shape[-1] == 1 == b.shape[-2]:
        return a * b
    return a @ b


def _matmul_grad_a(g, av, bv):
    """Gradient of sum(g * (a @ b)) with respect to a."""
    if bv.ndim == 1:  # out[..., i] = sum_k a[..., i, k] b[k]
        return unbroadcast(g[..., None] * bv if av.ndim > 1 else g * bv, av.shape)
    if av.ndim == 1:  # out[..., j] = sum_k a[k] b[..., k, j]
        return unbroadcast((bv @ g[..., None])[..., 0], av.shape)
    return _matmul_grads_for(av.shape, bv.shape)[0](g, av, bv)


def _matmul_grad_b(g, av, bv):
    """Gradient of sum(g * (a @ b)) with respect to b."""
    if av.ndim == 1:
        return unbroadcast(av[:, None] * g[..., None, :] if bv.ndim > 1 else g * av, bv.shape)
    if bv.ndim == 1:  # gradient is sum over rows and batch of a * g
        return unbroadcast((np.swapaxes(av, -1, -2) @ g[..., None])[..., 0], bv.shape)
    return _matmul_grads_for(av.shape, bv.shape)[1](g, av, bv)


@functools.lru_cache(maxsize=256)
def _matmul_grads_for(a_shape: tuple, b_shape: tuple) -> tuple:
    """``(grad_a, grad_b)``, each ``(g, av, bv) -> gradient``, for a @ b with both operands at least 2-D.

    Which products the VJPs run depends on the shapes only, so it is worked
    out once per pair of shapes: a replayed dense layer (:mod:`.fused`) asks
    when its tape is recorded. ``_mm``'s outer-product case is decided here
    from the same lengths it would test.
    """
    (n, k), m = a_shape[-2:], b_shape[-1]
    lead = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    to_a, to_b = unbroadcaster(lead + (n, k), a_shape), unbroadcaster(lead + (k, m), b_shape)
    product_a = np.multiply if m == 1 else np.matmul  # g (…, n, m) @ bᵀ (…, m, k)
    product_b = np.multiply if n == 1 else np.matmul  # aᵀ (…, k, n) @ g (…, n, m)

    def grad_a(g, av, bv):
        return to_a(product_a(g, bv.T if len(b_shape) == 2 else bv.swapaxes(-1, -2)))

    if len(a_shape) == len(b_shape) == 2:
        return grad_a, lambda g, av, bv: product_b(av.T, g)
    if len(b_shape) == 2:  # (S,n,k)@(k,m): fold the batch into the rows, one (k, S n) @ (S n, m) product
        return grad_a, lambda g, av, bv: av.reshape(-1, k).T @ g.reshape(-1, m)
    return grad_a, lambda g, av, bv: to_b(product_b(av.swapaxes(-1, -2), g))


@_tape.split_primitive(n_operands=2)
def matmul(needs, a, b):
    """a @ b with NumPy's batching rules.  VJP: g bᵀ, aᵀ g (batch axes summed back).

    Covers (n,k)@(k,m), batched (S,n,k)@(S,k,m), the broadcast forms
    (n,k)@(S,k,m) and (S,n,k)@(k,m), and 1-D operands. Split, like ``add``:
    a linear model's likelihood is one.
    """

    def forward(av, bv):
        return _mm(av, bv), (av, bv)

    if True not in needs:
        return forward, None
    shape_a, shape_b = _shape(a), _shape(b)
    both_2d = len(shape_a) > 1 and len(shape_b) > 1
    grad_a, grad_b = _matmul_grads_for(shape_a, shape_b) if both_2d else (_matmul_grad_a, _matmul_grad_b)

    def backward(saved, g):
        av, bv = saved
        return (grad_a(g, av, bv) if needs[0] else None), (grad_b(g, av, bv) if needs[1] else None)

    return forward, backward


def affine(h, weight, bias):
    """h @ weight + bias as one node: a dense layer before its activation.

    The same as ``add(matmul(h, weight), bias)`` with one graph node instead
    of two; a network evaluates one per layer on every call.
    VJP: g weightᵀ, hᵀ g, g summed back to bias's shape.
    """
    hv, wv, bv = _value(h), _value(weight), _value(bias)
    out = _mm(hv, wv) + bv
    pairs = [
        (h, lambda g: _matmul_grad_a(g, hv, wv)),
        (weight, lambda g: _matmul_grad_b(g, hv, wv)),
        (bias, lambda g: unbroadcast(g, _shape(bv))),
    ]
    return _node(out, *pairs)


# --- elementwise --------------------------------------------------------------


def exp(x):
    """exp(x).  VJP: g exp(x)."""
    out = np.exp(_value(x))
    return _node1(out, x, lambda g: g * out)


def log(x):
    """log(x).  VJP: g / x."""
    xv = _value(x)
    return _node1(np.log(xv), x, lambda g: g / xv)


def log1p(x):
    """log(1 + x).  VJP: g / (1 + x)."""
    xv = _value(x)
    return _node1(np.log1p(xv), x, lambda g: g / (1.0 + xv))


def sqrt(x):
    """√x.  VJP: g / (2√x)."""
    out = np.sqrt(_value(x))
    return _node1(out, x, lambda g: g * 0.5 / out)


def square(x):
    """x².  VJP: 2 g x."""
    xv = _value(x)
    return _node1(xv * xv, x, lambda g: 2.0 * g * xv)


def abs(x):
    """|x|.  VJP: g sign(x) (zero at the kink)."""
    xv = _value(x)
    return _node1(np.abs(xv), x, lambda g: g * np.sign(xv))


def tanh(x):
    """tanh(x).  VJP: g (1 - tanh²(x))."""
    out = np.tanh(_value(x))
    return _node1(out, x, lambda g: g * (1.0 - out * out))


def _sigmoid(xv, e=None):
    """σ(x) from e = e^-|x|, which never overflows: 1/(1 + e) for x ≥ 0, e/(1 + e) below, both full relative accuracy."""
    if e is None:
        e = np.exp(-np.abs(xv))
    # r · max(e, [x ≥ 0]) is r where x ≥ 0 (e ≤ 1) and e·r below: np.where's branchy loop costs 4x this
    return (1.0 / (1.0 + e)) * np.maximum(e, xv >= 0)


def sigmoid(x):
    """1 / (1 + e^-x), computed stably (within 2 ulp over all of float64).  VJP: g σ(x)(1 - σ(x))."""
    out = _sigmoid(_value(x))
    return _node1(out, x, lambda g: g * out * (1.0 - out))


def relu(x):
    """max(x, 0).  VJP: g [x > 0]."""
    xv = _value(x)
    return _node1(np.maximum(xv, 0.0), x, lambda g: g * (xv > 0))


def softplus(x):
    """log(1 + eˣ), computed stably as max(x, 0) + log1p(e^-|x|) (within 2 ulp).  VJP: g σ(x)."""
    xv = _value(x)
    e = np.exp(-np.abs(xv))  # shared with the VJP, which needs σ(x) from the same e^-|x|
    # np.logaddexp(0, x) is the same value but ~6x slower on NumPy's generic loop
    return _node1(np.maximum(xv, 0.0) + np.log1p(e), x, lambda g: g * _sigmoid(xv, e))


def where(cond, a, b):
    """Elementwise ``a`` where ``cond`` else ``b``.  VJP: g masked to each branch."""
    cond = np.asarray(_value(cond), dtype=bool)
    av, bv = _value(a), _value(b)
    return _node(
        np.where(cond, av, bv),
        (a, lambda g: unbroadcast(np.where(cond, g, 0.0), _shape(av))),
        (b, lambda g: unbroadcast(np.where(cond, 0.0, g), _shape(bv))),
    )


# --- reductions ---------------------------------------------------------------


def _kept_shape(shape, axis) -> tuple:
    """``shape`` with the reduced axes kept as length one."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis % len(shape),) if type(axis) is int else {a % len(shape) for a in axis}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _restore_axes(g, shape, axis):
    """Broadcast a reduced gradient back to ``shape`` (a fresh array: faster than ``np.broadcast_to``)."""
    if axis is None or np.size(g) == 1:
        return np.full(shape, float(np.reshape(g, ())))
    out = np.empty(shape)
    out[...] = np.reshape(g, _kept_shape(shape, axis))
    return out


def sum(x, axis=None, keepdims=False):
    """Σ x over ``axis``.  VJP: g broadcast back over the summed axes."""
    xv = _value(x)
    shape = np.shape(xv)
    # np.add.reduce is what np.sum calls, minus ~1 µs of argument handling per call
    return _node1(np.add.reduce(xv, axis=axis, keepdims=keepdims), x, lambda g: _restore_axes(g, shape, axis))


def sum_squares(x, axis=None, keepdims=False):
    """Σ x² over ``axis`` in one node (squared norms, Gaussian log densities).  VJP: 2 g x."""
    xv = _value(x)
    shape = np.shape(xv)
    return _node1(
        np.add.reduce(xv * xv, axis=axis, keepdims=keepdims),
        x,
        lambda g: 2.0 * xv * np.reshape(g, _kept_shape(shape, axis)),
    )


@_tape.split_primitive(n_operands=1)
def mean(needs, x, axis=None, keepdims=False):
    """Mean of x over ``axis``.  VJP: g / count, broadcast back.

    Split like ``add``, so a tape counts the terms once: Bayes by Backprop
    differentiates a mean over its draws every step.
    """

    def forward(xv):
        return np.mean(xv, axis=axis, keepdims=keepdims), None

    if True not in needs:
        return forward, None
    shape = _shape(x)
    count = max(math.prod(shape), 1) / max(math.prod(_kept_shape(shape, axis)), 1)

    def backward(_, g):
        return (_restore_axes(g / count, shape, axis),)

    return forward, backward


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x), shifted by the max for stability.  VJP: g softmax(x)."""
    xv = _value(x)
    shift = np.max(xv, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    out_kept = np.log(np.sum(np.exp(xv - shift), axis=axis, keepdims=True)) + shift
    out = out_kept if keepdims else np.reshape(out_kept, np.shape(np.sum(xv, axis=axis)))
    return _node1(out, x, lambda g: np.reshape(g, out_kept.shape) * np.exp(xv - out_kept))


def log_softmax(x, axis=-1):
    """x - logsumexp(x).  VJP: g - softmax(x) Σ g."""
    xv = _value(x)
    shift = np.max(xv, axis=axis, keepdims=True)
    out = xv - shift - np.log(np.sum(np.exp(xv - shift), axis=axis, keepdims=True))
    return _node1(out, x, lambda g: g - np.exp(out) * np.sum(g, axis=axis, keepdims=True))


# --- shape --------------------------------------------------------------------


def reshape(x, shape):
    """x with a new shape.  VJP: g reshaped back."""
    xv = _value(x)
    old = np.shape(xv)
    return _node1(np.reshape(xv, shape), x, lambda g: np.reshape(g, old))


def transpose(x, axes=None):
    """x with its axes permuted (reversed by default).  VJP: the inverse permutation."""
    xv = _value(x)
    inverse = None if axes is None else tuple(np.argsort([a % np.ndim(xv) for a in axes]))
    return _node1(np.transpose(xv, axes), x, lambda g: np.transpose(g, inverse))


def swapaxes(x, axis1, axis2):
    """x with two axes exchanged.  VJP: the same exchange."""
    return _node1(np.swapaxes(_value(x), axis1, axis2), x, lambda g: np.swapaxes(g, axis1, axis2))


_BASIC_INDEX_TYPES = (int, slice, type(None), type(Ellipsis))


def _is_basic_index(index) -> bool:
    """Whether ``x[index]`` is a view (ints, slices, None, ...): then ``+=`` at it adds correctly."""
    parts = index if type(index) is tuple else (index,)
    return all(type(p) in _BASIC_INDEX_TYPES or isinstance(p, np.integer) for p in parts)


def getitem(x, index):
    """x[index] (basic or fancy indexing).  VJP: g placed at ``index`` of zeros."""
    xv = _value(x)
    if isinstance(index, Var):
        raise TypeError("an index must be a constant, not a Var")
    shape, basic = np.shape(xv), _is_basic_index(index)
    return _node1(xv[index], x, lambda g: IndexedGrad(((index, g),), shape, basic))


def view(x, index, shape):
    """x[index] reshaped to ``shape``: one node for reading a weight matrix out of θ.

    The same as ``reshape(getitem(x, index), shape)`` with half the graph
    nodes, which matters when a network unpacks every layer on every call.
    VJP: g reshaped to x[index]'s shape, placed at ``index`` of zeros.
    """
    xv = np.asarray(_value(x))
    if isinstance(index, Var):
        raise TypeError("an index must be a constant, not a Var")
    piece = xv[index]
    piece_shape, full_shape, basic = piece.shape, xv.shape, _is_basic_index(index)
    return _node1(piece.reshape(shape), x, lambda g: IndexedGrad(((index, g.reshape(piece_shape)),), full_shape, basic))


def concatenate(arrays, axis=0):
    """Join arrays along ``axis``.  VJP: g split back into the pieces."""
    values = [_value(a) for a in arrays]
    ends = np.cumsum([np.shape(v)[axis] for v in values])
    starts = ends - np.array([np.shape(v)[axis] for v in values])

    def piece(i):
        def vjp_piece(g):
            index = [slice(None)] * g.ndim
            index[axis] = slice(starts[i], ends[i])
            return g[tuple(index)]

        return vjp_piece

    return _node(np.concatenate(values, axis=axis), *((a, piece(i)) for i, a in enumerate(arrays)))


def stack(arrays, axis=0):
    """Stack equal-shaped arrays along a new ``axis``.  VJP: g unstacked."""
    values = [_value(a) for a in arrays]
    out = np.stack(values, axis=axis)
    return _node(out, *((a, (lambda i: lambda g: np.take(g, i, axis=axis))(i)) for i, a in enumerate(arrays)))


# --- recorded for the fast path (ad.Tape) ------------------------------------------

for _name in __all__:
    if not hasattr(globals()[_name], "raw"):  # the split ops are recorded already
        globals()[_name] = _tape.primitive(globals()[_name])

# --- operators on Var ---------------------------------------------------------

Var.__add__ = add
Var.__radd__ = lambda self, other: add(other, self)
Var.__sub__ = sub
Var.__rsub__ = lambda self, other: sub(other, self)
Var.__mul__ = mul
Var.__rmul__ = lambda self, other: mul(other, self)
Var.__truediv__ = div
Var.__rtruediv__ = lambda self, other: div(other, self)
Var.__matmul__ = matmul
Var.__rmatmul__ = lambda self, other: matmul(other, self)
Var.__pow__ = pow
Var.__rpow__ = lambda self, other: pow(other, self)
Var.__neg__ = neg
Var.__getitem__ = getitem
Var.T = property(lambda self: transpose(self))
Var.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
Var.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)
Var.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)
