"""Fused primitives: a dense layer read straight out of θ, a Gaussian log density, and an MLP regression's log joint.

A network's forward pass on the plain graph makes, per layer, two ``view``
nodes (W and b out of θ), an ``affine`` and an activation; a Gaussian log
density makes a ``sub``, a ``sum_squares``, a ``mul`` and a ``sub``. On a
small model every node's bookkeeping costs more than its arithmetic, so
these ops do each group in one node with a hand-written VJP, written as
the forward and backward halves a tape replays on arrays
(:func:`~approxpost.autodiff.tape.split_primitive`). They run the
same NumPy calls in the same order as the plain ops they stand for, so the
values and gradients are the same bits (tests/test_fused.py checks that
with hypothesis over shapes and batch sizes).

:func:`mlp_log_joint` goes one step further for the model most of the
course runs: a ``Regression`` of an MLP is the prior's, every layer's and
the likelihood's halves chained in one node, so a tape replays one step
where it had one per term and layer, and the bookkeeping between them
(which cost a one-chain HMC about a sixth of its speed) is paid once.

The plain composition is the definition, and it is written out here: inside
``with ad.plain_graph():`` every op of this module builds it instead, which
is how the tests compare the two paths and how a student can see the graph.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import ops
from .core import IndexedGrad, Var, broadcast_shape, unbroadcaster
from .tape import split_primitive

__all__ = ["dense", "gaussian_log_density", "mlp_log_joint", "plain_graph"]

LOG_2PI = float(np.log(2.0 * np.pi))  # as approxpost.distributions has it (autodiff imports only NumPy)
_ACTIVATIONS = {None: lambda z: z, "tanh": ops.tanh, "relu": ops.relu}
_plain = False  # True inside ``plain_graph()``


@contextlib.contextmanager
def plain_graph():
    """Within this block the ops of this module build the plain graph of the ops they fuse."""
    global _plain
    outer, _plain = _plain, True
    try:
        yield
    finally:
        _plain = outer


def _value(x):
    return x.value if type(x) is Var else x


def dense(x, theta, weight: tuple, bias: tuple, activation: str | None = None):
    """act(x W + b) with W and b read out of the flat parameter vector θ: one node for a whole layer.

    Parameters
    ----------
    x
        Inputs (n, k), or (..., n, k) with θ's leading axes.
    theta
        (D,) or (..., D): the network's parameters; W and b get θ's leading axes.
    weight, bias
        ``(start, stop, shape)`` of W (k, m) and b (m,) inside θ, as ``nn.MLP.slices`` lists them.
    activation
        ``None``, ``"tanh"`` or ``"relu"``.

    Notes
    -----
    The plain graph: ``act(affine(x, view(θ, W), view(θ, b)))``, the bias
    given a row axis when θ is batched so it broadcasts over the n inputs.
    VJP: with g_z = g act'(z), ∂x = g_z Wᵀ and ∂θ = (xᵀ g_z, Σ_n g_z) placed
    at W's and b's slices.
    """
    settings = _dense_settings(np.shape(_value(x)), np.shape(_value(theta)), weight, bias, activation)
    if _plain:
        w0, w1, w_shape, b0, b1, b_shape, _ = settings
        w = ops.view(theta, (Ellipsis, slice(w0, w1)), w_shape)
        return _ACTIVATIONS[activation](ops.affine(x, w, ops.view(theta, (Ellipsis, slice(b0, b1)), b_shape)))
    return _dense(x, theta, *settings)


def _dense_settings(x_shape: tuple, theta_shape: tuple, weight: tuple, bias: tuple, activation) -> tuple:
    """``(w0, w1, w_shape, b0, b1, b_shape, activation)`` for ``_dense``, W and b given θ's leading axes; checked."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None, 'tanh' or 'relu', got {activation!r}")
    (w0, w1, w_shape), (b0, b1, b_shape) = weight, bias
    if not theta_shape or theta_shape[-1] < max(w1, b1) or not x_shape or x_shape[-1] != w_shape[0]:
        raise ValueError(
            f"dense reads W {tuple(w_shape)} at θ[{w0}:{w1}] and b at θ[{b0}:{b1}] and multiplies x by W: "
            f"got theta of shape {theta_shape} and x of shape {x_shape}"
        )
    lead = theta_shape[:-1]
    return w0, w1, lead + tuple(w_shape), b0, b1, lead + ((1,) if lead else ()) + tuple(b_shape), activation


@split_primitive(n_operands=2)
def _dense(needs, x, theta, w0, w1, w_shape, b0, b1, b_shape, activation):
    """The layer's two halves at these shapes (see :func:`~approxpost.autodiff.tape.split_primitive`)."""
    need_x, need_theta = needs
    x_shape = np.shape(x)
    # the branches ops._mm and the matmul VJPs would take at these shapes, taken once
    product = np.multiply if len(x_shape) > 1 and x_shape[-1] == 1 else np.matmul

    def forward(xv, tv):
        wv = tv[..., w0:w1].reshape(w_shape)
        z = product(xv, wv) + tv[..., b0:b1].reshape(b_shape)
        out = np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0) if activation == "relu" else z
        return out, (xv, wv, out)  # relu's z > 0 is out > 0: z itself need not be kept

    if not (need_x or need_theta):  # a value alone (a density evaluation): nothing more to work out
        return forward, None
    piece, theta_shape = np.shape(theta)[:-1] + (-1,), np.shape(theta)
    rows = broadcast_shape(x_shape[:-2], w_shape[:-2]) + x_shape[-2:-1]  # x @ W's shape without its last axis
    sum_bias = unbroadcaster(broadcast_shape(rows + w_shape[-1:], b_shape), b_shape)
    grad_x_of, grad_w_of = (
        ops._matmul_grads_for(x_shape, w_shape) if len(x_shape) > 1 else (ops._matmul_grad_a, ops._matmul_grad_b)
    )

    def backward(saved, g):
        xv, wv, out = saved
        gz = g * (1.0 - out * out) if activation == "tanh" else g * (out > 0) if activation == "relu" else g
        grad_theta = None
        if need_theta:
            grad_w, grad_b = grad_w_of(gz, xv, wv), sum_bias(gz)
            grad_theta = IndexedGrad(
                (
                    ((Ellipsis, slice(w0, w1)), grad_w.reshape(piece)),
                    ((Ellipsis, slice(b0, b1)), grad_b.reshape(piece)),
                ),
                theta_shape,
            )
        return (grad_x_of(gz, xv, wv) if need_x else None), grad_theta

    return forward, backward


def gaussian_log_density(x, mean=0.0, std: float = 1.0, axis=None):
    """Σ log N(x | mean, std²) over ``axis``: −½ Σ (x − mean)² / std² − n (log std + ½ log 2π), one node.

    Parameters
    ----------
    x, mean
        Arrays or ``Var`` s that broadcast together (a log-likelihood has the
        data as ``x`` and the network output as ``mean``; a prior has θ as
        ``x`` and ``mean = 0``).
    std
        The standard deviation, a positive number.
    axis
        The axes summed over (n is the number of terms each output sums).

    Notes
    -----
    The plain graph: ``sum_squares(x − mean, axis) · (−½/std²) − n (log std + ½ log 2π)``
    (no subtraction when ``mean`` is the number 0). VJP: with
    g_r = 2 (x − mean) · g (−½/std²), ∂x = g_r and ∂mean = −g_r, each summed
    back to its shape.
    """
    xv, mv = _value(x), _value(mean)
    settings = _gaussian_settings(np.shape(xv), np.shape(mv), type(mv) in (int, float) and mv == 0, std, axis)
    if _plain:
        scale, constant, _, zero_mean, _ = settings
        return ops.sum_squares(x if zero_mean else ops.sub(x, mean), axis=axis) * scale - constant
    return _gaussian_log_density(x, mean, *settings)


def _gaussian_settings(x_shape: tuple, mean_shape: tuple, zero_mean: bool, std, axis) -> tuple:
    """``(scale, constant, axis, zero_mean, shapes)`` for ``_gaussian_log_density``; ``std`` checked."""
    if not (type(std) in (int, float, np.float64) and 0 < std < np.inf):
        raise ValueError(f"std must be a positive finite number, got {std!r}")
    shape = broadcast_shape(x_shape, mean_shape)
    n = int(np.prod(shape)) if axis is None else int(np.prod([shape[a] for a in np.atleast_1d(axis)]))
    constant = n * (np.log(std) + 0.5 * LOG_2PI)
    return -0.5 / std**2, constant, axis, zero_mean, (x_shape, mean_shape, ops._kept_shape(shape, axis))


@split_primitive(n_operands=2)
def _gaussian_log_density(needs, x, mean, scale, constant, axis, zero_mean, shapes):
    """The term's two halves at these shapes (see :func:`~approxpost.autodiff.tape.split_primitive`)."""
    need_x, need_mean = needs

    def forward(xv, mv):
        r = xv if zero_mean else xv - mv
        return np.add.reduce(r * r, axis=axis) * scale - constant, r

    if not (need_x or need_mean):
        return forward, None
    x_shape, mean_shape, kept = shapes  # worked out once by the caller
    r_shape = broadcast_shape(x_shape, mean_shape)
    to_x, to_mean = unbroadcaster(r_shape, x_shape), unbroadcaster(r_shape, mean_shape)

    def backward(r, g):
        grad_r = 2.0 * r * (g * scale).reshape(kept)
        return (to_x(grad_r) if need_x else None), (to_mean(-grad_r) if need_mean else None)

    return forward, backward


def mlp_log_joint(theta, x, y, slices, activation: str, noise_std: float, prior_std: float):
    """log N(θ | 0, s² I) + Σ log N(y | f(x; θ), σ²) for an MLP f: a regression's whole log joint, one node.

    Parameters
    ----------
    theta
        (D,) or (S, D).
    x, y
        Inputs (n, k) and targets (n, m), constants.
    slices
        The ``(weight, bias)`` pairs of every layer, as ``nn.MLP.slices`` lists them: they must tile θ
        in order (W then b, a layer after the other).
    activation
        After every layer but the last: ``None``, ``"tanh"`` or ``"relu"``.
    noise_std, prior_std
        σ and s.

    Notes
    -----
    The plain graph: ``add(gaussian_log_density(θ, 0, s), gaussian_log_density(y, f(x; θ), σ))``
    with f a chain of :func:`dense` layers, on which the log joint of a
    ``Regression`` is written. A tape replays that graph in five steps or more; this is the same
    steps' halves chained in one (:func:`_mlp_log_joint`), so the same NumPy calls in the same order
    and the same bits, with the tape's bookkeeping between them paid once. One difference, in how
    θ's gradient is summed: the slices tile θ, so the layers' pieces are put side by side where the
    tape adds each into a buffer of zeros; adding 0 then the prior's term gives the same bits.
    """
    if type(x) is Var or type(y) is Var:  # they are the data: a gradient with respect to them would be dropped
        raise TypeError("mlp_log_joint differentiates θ only: x and y must be arrays, not Vars")
    tv = _value(theta)
    prior = _gaussian_settings(np.shape(tv), (), True, prior_std, -1)
    layers, h_shape, last = [], np.shape(x), len(slices) - 1
    for i, (weight, bias) in enumerate(slices):
        settings = _dense_settings(h_shape, np.shape(tv), weight, bias, activation if i < last else None)
        layers.append((h_shape, settings))
        h_shape = np.shape(tv)[:-1] + h_shape[-2:-1] + settings[2][-1:]  # the rows of x W, with θ's leading axes
    if np.shape(y) != h_shape[-2:]:
        raise ValueError(f"y must be the network's outputs' shape {h_shape[-2:]} (n, outputs), got shape {np.shape(y)}")
    bounds = [0] + [end for weight, bias in slices for part in (weight, bias) for end in part[:2]] + [np.shape(tv)[-1]]
    if bounds[::2] != bounds[1::2]:  # each W and b starts where the one before it stops, the last stops at D
        raise ValueError(f"slices must tile θ (length {np.shape(tv)[-1]}) in order, W then b a layer, got {slices}")
    likelihood = _gaussian_settings(np.shape(y), h_shape, False, noise_std, (-2, -1))
    if _plain:
        h = x
        for i, (weight, bias) in enumerate(slices):
            h = dense(h, theta, weight, bias, activation if i < last else None)
        return ops.add(gaussian_log_density(theta, 0.0, prior_std, -1), gaussian_log_density(y, h, noise_std, (-2, -1)))
    return _mlp_log_joint(theta, x, y, prior, layers, likelihood)


def _shaped(shape: tuple) -> np.ndarray:
    """A stand-in of ``shape`` for a ``make`` that reads only its operand's shape (a view of one zero)."""
    return np.broadcast_to(0.0, shape)


@split_primitive(n_operands=1)
def _mlp_log_joint(needs, theta, x, y, prior, layers, likelihood):
    """The halves of the prior, of each layer and of the likelihood, chained (see :func:`mlp_log_joint`)."""
    (need_theta,) = needs
    prior_forward, prior_backward = _gaussian_log_density.make((need_theta, False), theta, 0.0, *prior)
    halves = [
        _dense.make((need_theta and i > 0, need_theta), _shaped(h_shape), theta, *settings)
        for i, (h_shape, settings) in enumerate(layers)
    ]
    output = _shaped(likelihood[-1][1])  # the network's output, as the likelihood's mean
    lik_forward, lik_backward = _gaussian_log_density.make((False, need_theta), y, output, *likelihood)

    def forward(tv):
        log_prior, r_prior = prior_forward(tv, 0.0)
        h, kept = x, []
        for layer_forward, _ in halves:
            h, saved = layer_forward(h, tv)
            kept.append(saved)
        log_lik, r = lik_forward(y, h)
        return log_prior + log_lik, (r_prior, kept, r)  # ops.add's forward

    if not need_theta:
        return forward, None

    def backward(saved, g):
        # ops.add hands g to both terms (each has θ's leading shape). The layers' W and b slices tile θ, so
        # its gradient is their pieces side by side, plus 0 (which turns a −0 into +0), plus the prior's
        # term: the sums the tape's zeros buffer, slice adds and prior add make, in 3 array passes for 2L + 2
        r_prior, kept, r = saved
        g_h, pieces = lik_backward(r, g)[1], []
        for (_, layer_backward), layer_saved in zip(reversed(halves), reversed(kept)):
            g_h, layer_grad = layer_backward(layer_saved, g_h)
            pieces = [value for _, value in layer_grad.pieces] + pieces
        grad = np.concatenate(pieces, axis=-1)
        grad += 0.0
        grad += prior_backward(r_prior, g)[0]
        return (grad,)

    return forward, backward
