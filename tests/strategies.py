"""Shared hypothesis strategies: shapes, broadcasting, matmul layouts, safe arrays, expression trees.

Arrays are float64 and kept in a range where every op is smooth and well
conditioned, so a central difference with step 1e-3 is accurate to ~1e-10:
``positive_arrays`` for log/sqrt/pow bases and ``nonzero_arrays`` for ops
with a kink or pole at zero (abs, relu, division), bounded away from it by
more than the finite-difference step.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from approxpost import autodiff as ad

__all__ = [
    "shapes",
    "broadcastable_shapes",
    "matmul_shapes",
    "reduction_axes",
    "finite_arrays",
    "positive_arrays",
    "nonzero_arrays",
    "arrays_for",
    "UNARY_TREE_OPS",
    "BINARY_TREE_OPS",
    "expressions",
    "evaluate",
    "class_probabilities",
    "draw_probabilities",
    "mlp_layer_sizes",
]

MAX_SIDE = 4


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = MAX_SIDE):
    """Array shapes with up to ``max_dims`` axes of length ``min_side``…``max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(max_dims: int = 3):
    """Pairs of shapes that broadcast together, including length-one axes and missing leading axes."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, min_side=1, max_side=MAX_SIDE
    ).map(lambda bs: bs.input_shapes)


@st.composite
def matmul_shapes(draw):
    """Operand shapes for ``a @ b``: 1-D, 2-D, batched (S, n, k) @ (S, k, m) and the broadcast mixes.

    Returns
    -------
    (shape_a, shape_b) following NumPy's matmul rules, with batch axes
    broadcast against each other (a batch axis of one on either side too).
    """
    sizes = st.integers(1, MAX_SIDE)
    n, k, m, s = draw(sizes), draw(sizes), draw(sizes), draw(sizes)
    batch = draw(st.sampled_from([(), (s,), (1,), (2, s)]))
    layout = draw(st.sampled_from(["both", "a", "b", "a_vec", "b_vec", "vec_vec"]))
    if layout == "vec_vec":
        return (k,), (k,)
    if layout == "a_vec":
        return (k,), batch + (k, m)
    if layout == "b_vec":
        return batch + (n, k), (k,)
    a_batch = batch if layout in ("both", "a") else ()
    b_batch = batch if layout in ("both", "b") else ()
    if layout == "both" and batch and draw(st.booleans()):
        a_batch = (1,) * len(batch)  # a length-one batch axis broadcast against S
    return a_batch + (n, k), b_batch + (k, m)


@st.composite
def reduction_axes(draw, ndim: int):
    """An ``axis`` argument for an array with ``ndim`` axes: None, an int (maybe negative) or a tuple."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return draw(hnp.valid_tuple_axes(ndim, min_size=1))


def finite_arrays(shape, low: float = -2.0, high: float = 2.0):
    """float64 arrays of ``shape`` with entries in [low, high]."""
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, allow_infinity=False))


def positive_arrays(shape, low: float = 0.2, high: float = 3.0):
    """float64 arrays in [low, high], for log, sqrt and bases of pow."""
    return finite_arrays(shape, low, high)


def nonzero_arrays(shape, min_abs: float = 0.1, max_abs: float = 2.0):
    """float64 arrays with min_abs ≤ |x| ≤ max_abs, away from the kinks of abs/relu and the pole of 1/x."""
    magnitude = st.floats(min_abs, max_abs)
    element = st.tuples(st.sampled_from([-1.0, 1.0]), magnitude).map(lambda sm: sm[0] * sm[1])
    return hnp.arrays(np.float64, shape, elements=element)


def arrays_for(domain: str, shape):
    """The array strategy for a named domain: ``"real"``, ``"positive"`` or ``"nonzero"``."""
    return {"real": finite_arrays, "positive": positive_arrays, "nonzero": nonzero_arrays}[domain](shape)


# --- random expression trees -----------------------------------------------------
#
# A tree is a nested tuple ("x",) | (unary_name, tree) | (binary_name, tree, tree),
# so hypothesis prints a failing example readably. Every op is smooth on all of
# R (log and sqrt only ever see 1 + u² or softplus(u)), keeps the input's shape,
# and has a NumPy reference, so a tree evaluates both through ad and through
# plain NumPy.


def _np_softplus(u):
    return np.logaddexp(0.0, u)


def _np_logsumexp(u, axis=None, keepdims=False):
    shift = np.max(u, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(u - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _checkerboard(u) -> np.ndarray:
    """A fixed boolean mask shaped like ``u``, for ``where``."""
    shape = np.shape(u.value if isinstance(u, ad.Var) else u)
    return np.indices(shape).sum(axis=0) % 2 == 0


UNARY_TREE_OPS = {
    "neg": (lambda u: -u, lambda u: -u),
    "tanh": (ad.tanh, np.tanh),
    "sigmoid": (ad.sigmoid, lambda u: 1.0 / (1.0 + np.exp(-u))),
    "softplus": (ad.softplus, _np_softplus),
    "square": (ad.square, np.square),
    "exp_tanh": (lambda u: ad.exp(ad.tanh(u)), lambda u: np.exp(np.tanh(u))),
    "log_1p_sq": (lambda u: ad.log(1.0 + ad.square(u)), lambda u: np.log(1.0 + u * u)),
    "log1p_softplus": (lambda u: ad.log1p(ad.softplus(u)), lambda u: np.log1p(_np_softplus(u))),
    "sqrt_1p_sq": (lambda u: ad.sqrt(1.0 + u**2), lambda u: np.sqrt(1.0 + u**2)),
    "pow_softplus": (lambda u: ad.softplus(u) ** 1.5, lambda u: _np_softplus(u) ** 1.5),
    "log_softmax": (lambda u: ad.log_softmax(u, axis=-1), lambda u: u - _np_logsumexp(u, axis=-1, keepdims=True)),
    "centre": (lambda u: u - ad.mean(u, axis=0, keepdims=True), lambda u: u - np.mean(u, axis=0, keepdims=True)),
    "transpose_twice": (lambda u: ad.transpose(ad.transpose(u)), lambda u: u),
    "flip_rows": (lambda u: u[::-1], lambda u: u[::-1]),
    "flatten_and_back": (lambda u: ad.reshape(ad.reshape(u, (-1,)), u.shape), lambda u: u),
    "stack_mean": (lambda u: ad.mean(ad.stack([u, ad.tanh(u)], axis=-1), axis=-1), lambda u: 0.5 * (u + np.tanh(u))),
    "roll_cols": (
        lambda u: ad.concatenate([u[:, 1:], u[:, :1]], axis=1),
        lambda u: np.concatenate([u[:, 1:], u[:, :1]], axis=1),
    ),
}

BINARY_TREE_OPS = {
    "add": (lambda u, v: u + v, np.add),
    "sub": (lambda u, v: u - v, np.subtract),
    "mul": (lambda u, v: u * v, np.multiply),
    "div": (lambda u, v: u / (1.0 + v * v), lambda u, v: u / (1.0 + v * v)),
    "times_sum": (lambda u, v: u * ad.sum(ad.tanh(v)), lambda u, v: u * np.sum(np.tanh(v))),
    "plus_lse": (
        lambda u, v: u + ad.logsumexp(v, axis=1, keepdims=True),
        lambda u, v: u + _np_logsumexp(v, axis=1, keepdims=True),
    ),
    "where": (lambda u, v: ad.where(_checkerboard(u), u, v), lambda u, v: np.where(_checkerboard(u), u, v)),
    "square_matmul": (  # u (n, m) scaled row-wise by the first column of the (n, n) Gram matrix of tanh(v)
        lambda u, v: u * ad.matmul(ad.tanh(v), ad.swapaxes(ad.tanh(v), 0, 1))[:, :1],
        lambda u, v: u * (np.tanh(v) @ np.tanh(v).T)[:, :1],
    ),
}


def expressions(max_leaves: int = 6):
    """Random expression trees over one (n, m) input ``x``, built from the ops above."""
    leaf = st.just(("x",))

    def extend(children):
        unary = st.tuples(st.sampled_from(sorted(UNARY_TREE_OPS)), children)
        binary = st.tuples(st.sampled_from(sorted(BINARY_TREE_OPS)), children, children)
        return unary | binary

    return st.recursive(leaf, extend, max_leaves=max_leaves)


def evaluate(tree, x, reference: bool = False):
    """The value of ``tree`` at ``x``: through ``ad`` ops, or through plain NumPy when ``reference``."""
    name = tree[0]
    if name == "x":
        return x
    table = UNARY_TREE_OPS if len(tree) == 2 else BINARY_TREE_OPS
    fn = table[name][1 if reference else 0]
    return fn(*(evaluate(child, x, reference) for child in tree[1:]))


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


@st.composite
def class_probabilities(draw, max_n: int = 8, max_classes: int = 5):
    """``(probs, y)``: (n, K) rows of class probabilities (some exactly one-hot) and labels (n,) in 0..K − 1."""
    n, k = draw(st.integers(1, max_n)), draw(st.integers(2, max_classes))
    logits = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-6.0, 6.0)))
    probs = _softmax_rows(logits)
    hard = draw(hnp.arrays(np.bool_, (n,)))
    probs[hard] = np.eye(k)[np.argmax(probs[hard], axis=1)]  # certain predictions: 0 log 0 and p = 1 cases
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return probs, y


@st.composite
def draw_probabilities(draw, max_draws: int = 5, max_n: int = 4, max_classes: int = 4):
    """``(samples, weights)``: (S, n, K) per-draw class probabilities and (S,) weights, some of them zero."""
    s, n, k = draw(st.integers(1, max_draws)), draw(st.integers(1, max_n)), draw(st.integers(2, max_classes))
    logits = draw(hnp.arrays(np.float64, (s, n, k), elements=st.floats(-8.0, 8.0)))
    weights = draw(hnp.arrays(np.float64, (s,), elements=st.sampled_from([0.0, 0.5, 1.0, 3.0])))
    if weights.sum() == 0:
        weights[0] = 1.0
    return _softmax_rows(logits), weights


def mlp_layer_sizes(max_width: int = 5, max_layers: int = 4):
    """Widths from input to output of a small MLP: 2 to ``max_layers`` entries in 1..``max_width``."""
    return st.lists(st.integers(1, max_width), min_size=2, max_size=max_layers)


# --- convolutions ------------------------------------------------------------------

__all__ += ["conv_cases", "pool_cases", "CONV_LAYOUTS"]

# which operands carry a leading θ axis S: neither, the images, the filters, or both (one of them maybe S = 1)
CONV_LAYOUTS = ("plain", "x", "w", "both", "x1", "w1")


@st.composite
def conv_cases(draw, layouts=CONV_LAYOUTS):
    """``(x_shape, w_shape, stride, padding)`` for ``ad.conv2d``: small images, kernels, strides and paddings.

    The kernel never exceeds the padded image, ``"same"`` comes with stride 1,
    and a leading S is put on x, w or both as ``layouts`` allows.
    """
    n, c, o, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from([0, 1, 2, "same"]))
    stride = 1 if padding == "same" else draw(st.integers(1, 2))
    pad = 0 if padding == "same" else padding
    h = draw(st.integers(max(1, kh - 2 * pad), 6))
    w = draw(st.integers(max(1, kw - 2 * pad), 6))
    x_shape, w_shape = (n, c, h, w), (o, c, kh, kw)
    layout = draw(st.sampled_from(layouts))
    x_lead = {"x": (s,), "both": (s,), "x1": (1,), "w1": (s,)}.get(layout, ())
    w_lead = {"w": (s,), "both": (s,), "x1": (s,), "w1": (1,)}.get(layout, ())
    return x_lead + x_shape, w_lead + w_shape, stride, padding


@st.composite
def pool_cases(draw):
    """``(x_shape, size)`` for the pools: 0-3 leading axes and H, W that may leave rows/columns over."""
    size = draw(st.integers(1, 3))
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    h, w = draw(st.integers(size, 7)), draw(st.integers(size, 7))
    return lead + (h, w), size


@st.composite
def cnn_configs(draw):
    """Keyword arguments for ``nn.CNN``: 0-2 conv blocks on images big enough for their poolings, 0-2 dense layers."""
    n_blocks = draw(st.integers(0, 2))
    size = st.integers(2**n_blocks, 2**n_blocks + 3)
    return {
        "input_shape": (draw(st.integers(1, 2)), draw(size), draw(size)),
        "channels": tuple(draw(st.lists(st.integers(1, 3), min_size=n_blocks, max_size=n_blocks))),
        "kernel_size": draw(st.sampled_from([1, 2, 3, (3, 2)])),
        "hidden": tuple(draw(st.lists(st.integers(1, 4), max_size=2))),
        "n_outputs": draw(st.integers(1, 3)),
        "activation": draw(st.sampled_from(["relu", "tanh"])),
    }


__all__ += ["cnn_configs"]


# --- matmuls with a length-one axis ------------------------------------------------

__all__ += ["outer_matmul_shapes"]


@st.composite
def outer_matmul_shapes(draw):
    """``matmul_shapes`` of 2-D or batched operands with the contracted axis, or the output's last, of length one.

    The first layer of a one-input MLP contracts an axis of one, (…, n, 1) @ (…, 1, m),
    and so does the backward pass of a one-output last layer, g (…, n, 1) @ Wᵀ (…, 1, k).
    """
    shape_a, shape_b = draw(matmul_shapes().filter(lambda ab: len(ab[0]) > 1 and len(ab[1]) > 1))
    if draw(st.booleans()):
        return shape_a[:-1] + (1,), shape_b[:-2] + (1, shape_b[-1])
    return shape_a, shape_b[:-1] + (1,)
