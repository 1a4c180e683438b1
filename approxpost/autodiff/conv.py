"""Convolution and pooling on image batches, batched over a leading θ axis exactly as ``matmul`` is.

Images are NCHW: x (N, C, H, W), or (S, N, C, H, W) when each of S parameter
vectors has its own activations; filters are (O, C, kh, kw) or (S, O, C, kh, kw).
A convolution is written as one matrix product (im2col): every kh × kw patch
of the padded input becomes a row of a matrix ``cols`` (…, N·Ho·Wo, kh·kw·C),
so ``out = cols @ Wᵀ`` with W the filters flattened to (…, O, kh·kw·C). The
gradients are the two matmul VJPs, plus "col2im" for x: each patch's gradient
is added back where the patch was read from.

Inside, images are laid out channels-last, (…, N, H, W, C) in memory: the
output is returned as an NCHW *view* of the product's (…, N·Ho·Wo, O) memory,
with no transposing copy, elementwise ops and pooling keep that memory order,
and col2im adds contiguous runs of C (measured on the digits CNN: 26 ms for
NCHW-strided adds vs 1.4 ms channels-last).
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .ops import _matmul_grad_a, _matmul_grad_b, _node1, _node2, _value
from .tape import primitive

__all__ = ["conv2d", "max_pool2d", "avg_pool2d"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _pads(padding, kh: int, kw: int, stride: int) -> tuple:
    """((top, bottom), (left, right)) zero padding for ``padding`` = an int ≥ 0 or ``"same"``."""
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"padding must be a non-negative integer or 'same', got {padding!r}")
        if stride != 1:
            raise ValueError(f"padding='same' needs stride=1, got stride={stride}")
        # an even kernel pads one more at the bottom/right, as deep-learning libraries do
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer or 'same', got {padding!r}")
    return (int(padding),) * 2, (int(padding),) * 2


def _as_array(v) -> np.ndarray:
    return v if type(v) is np.ndarray else np.asarray(v, dtype=np.float64)


def _check_conv_shapes(xv: np.ndarray, wv: np.ndarray) -> None:
    if xv.ndim not in (4, 5):
        raise ValueError(f"x must have shape (N, C, H, W) or (S, N, C, H, W), got shape {xv.shape}")
    if wv.ndim not in (4, 5):
        raise ValueError(f"w must have shape (O, C, kh, kw) or (S, O, C, kh, kw), got shape {wv.shape}")
    if xv.shape[-3] != wv.shape[-3]:
        raise ValueError(
            f"x has {xv.shape[-3]} channels (shape {xv.shape}) but w expects {wv.shape[-3]} (shape {wv.shape})"
        )
    if xv.ndim == 5 and wv.ndim == 5 and 1 not in (xv.shape[0], wv.shape[0]) and xv.shape[0] != wv.shape[0]:
        raise ValueError(f"x and w have different batch sizes S: x shape {xv.shape}, w shape {wv.shape}")


@primitive
def conv2d(x, w, stride: int = 1, padding=0):
    """2-D cross-correlation of images with filters, as in deep-learning libraries.

    Parameters
    ----------
    x
        Images (N, C, H, W) or (S, N, C, H, W).
    w
        Filters (O, C, kh, kw) or (S, O, C, kh, kw); a leading S broadcasts
        against x's as batched matmul does.
    stride
        Step between patches, the same along both axes.
    padding
        Zeros added on every side (an int), or ``"same"`` (stride 1 only) for
        an output as large as the input.

    Returns
    -------
    (…, N, O, Ho, Wo) with Ho = (H + pads − kh) // stride + 1 (likewise Wo).

    Notes
    -----
    ``out[…, n, o, i, j] = Σ_{c,p,q} x_pad[…, n, c, stride·i + p, stride·j + q] w[…, o, c, p, q]``
    (no bias; add one with ``+``). VJPs: for w, colsᵀ g; for x, g W added
    back into every patch it came from (col2im), then the padding cut off.
    """
    xv, wv = _as_array(_value(x)), _as_array(_value(w))
    _check_conv_shapes(xv, wv)
    stride = _positive_int("stride", stride)
    *x_batch, n, c, h, width = xv.shape
    *w_batch, o, _, kh, kw = wv.shape
    (top, bottom), (left, right) = _pads(padding, kh, kw, stride)
    hp, wp = h + top + bottom, width + left + right
    if hp < kh or wp < kw:
        raise ValueError(f"the {kh}×{kw} kernel is larger than the padded {hp}×{wp} input (x shape {xv.shape})")
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    # channels-last copy of the padded images: every patch row of cols then reads runs of C contiguous values
    padded = np.zeros(xv.shape[:-3] + (hp, wp, c))
    padded[..., top : top + h, left : left + width, :] = np.moveaxis(xv, -3, -1)
    windows = sliding_window_view(padded, (kh, kw), axis=(-3, -2))[..., ::stride, ::stride, :, :, :]
    # (…, N, Ho, Wo, C, kh, kw) -> rows (n, i, j), columns (p, q, c): the one copy im2col makes
    cols = np.moveaxis(windows, -3, -1).reshape(*x_batch, n * ho * wo, kh * kw * c)
    w_t = np.swapaxes(np.moveaxis(wv, -3, -1).reshape(*w_batch, o, kh * kw * c), -1, -2)  # (…, kh·kw·C, O)
    product = cols @ w_t  # (…, N·Ho·Wo, O)
    out = np.moveaxis(product.reshape(*product.shape[:-2], n, ho, wo, o), -1, -3)

    def as_rows(g):  # (…, N, O, Ho, Wo) -> (…, N·Ho·Wo, O); free when g has the output's memory order
        return np.moveaxis(g, -3, -1).reshape(*g.shape[:-4], n * ho * wo, o)

    def vjp_w(g):
        g_w = np.swapaxes(_matmul_grad_b(as_rows(g), cols, w_t), -1, -2).reshape(*w_batch, o, kh, kw, c)
        return np.moveaxis(g_w, -1, -3)

    def vjp_x(g):
        g_cols = _matmul_grad_a(as_rows(g), cols, w_t).reshape(*x_batch, n, ho, wo, kh, kw, c)
        g_padded = np.zeros(padded.shape)
        for p in range(kh):  # col2im: a loop over the kh·kw kernel offsets, each one strided add of (…, N, Ho, Wo, C)
            for q in range(kw):
                rows, cols_ = slice(p, p + stride * (ho - 1) + 1, stride), slice(q, q + stride * (wo - 1) + 1, stride)
                g_padded[..., rows, cols_, :] += g_cols[..., p, q, :]
        # an NCHW view of the channels-last buffer, like the forward output: no transposing copy
        return np.moveaxis(g_padded[..., top : top + h, left : left + width, :], -1, -3)

    return _node2(out, x, vjp_x, w, vjp_w)


def _pieces(xv: np.ndarray, size: int, op: str) -> tuple:
    """The size² strided views ``x[…, p::size, q::size]`` (cropped to whole windows): one per window offset."""
    if xv.ndim < 2:
        raise ValueError(f"x of {op} must have at least two axes (…, H, W), got shape {xv.shape}")
    ho, wo = xv.shape[-2] // size, xv.shape[-1] // size
    if ho == 0 or wo == 0:
        raise ValueError(f"{op} with size={size} needs H and W of at least {size}, got shape {xv.shape}")
    offsets = [(slice(p, ho * size, size), slice(q, wo * size, size)) for p in range(size) for q in range(size)]
    return [xv[(Ellipsis, *offset)] for offset in offsets], offsets, (ho * size, wo * size) != xv.shape[-2:]


def _gradient_buffer(xv: np.ndarray, cropped: bool) -> np.ndarray:
    # in x's own memory order (channels-last after a conv), so the strided writes below run contiguously
    return np.zeros_like(xv, dtype=np.float64) if cropped else np.empty_like(xv, dtype=np.float64)


@primitive
def max_pool2d(x, size: int = 2):
    """Maximum over non-overlapping size × size windows of the last two axes.

    Rows and columns left over when H or W is not a multiple of ``size`` are
    dropped, as deep-learning libraries do. VJP: g to the window's maximum;
    a tie shares it equally (the exact derivative when the tied entries are
    the same function, as over the blank background of an image, and a
    subgradient otherwise).
    """
    xv = _as_array(_value(x))
    size = _positive_int("size", size)
    pieces, offsets, cropped = _pieces(xv, size, "max_pool2d")
    # a loop over the size² window offsets, elementwise: ~6x faster than max over a 6-D strided view
    out = pieces[0].copy(order="K")
    for piece in pieces[1:]:
        np.maximum(out, piece, out=out)

    def vjp(g):
        hits = [piece == out for piece in pieces]
        count = hits[0].astype(np.float64)
        for hit in hits[1:]:
            count += hit
        share = g / count
        g_x = _gradient_buffer(xv, cropped)
        for hit, offset in zip(hits, offsets):
            np.multiply(hit, share, out=g_x[(Ellipsis, *offset)])
        return g_x

    return _node1(out, x, vjp)


@primitive
def avg_pool2d(x, size: int = 2):
    """Mean over non-overlapping size × size windows of the last two axes (leftovers dropped).

    VJP: g / size² to every entry of the window.
    """
    xv = _as_array(_value(x))
    size = _positive_int("size", size)
    pieces, offsets, cropped = _pieces(xv, size, "avg_pool2d")
    out = pieces[0].copy(order="K")
    for piece in pieces[1:]:
        out += piece
    out /= size * size

    def vjp(g):
        share = g / (size * size)
        g_x = _gradient_buffer(xv, cropped)
        for offset in offsets:
            g_x[(Ellipsis, *offset)] = share
        return g_x

    return _node1(out, x, vjp)
