"""Small networks whose weights are one flat parameter vector θ: an MLP and a CNN.

Every method in approxpost works on a flat θ, so the network's job is to read
its weight matrices out of θ and run the forward pass, for one θ of shape
(D,) or for a batch of S parameter vectors (S, D) in one batched pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _validate as check
from . import autodiff as ad

__all__ = ["MLP", "CNN", "Layer"]

_ACTIVATIONS = {"tanh": ad.tanh, "relu": ad.relu}


class MLP:
    """A multilayer perceptron ``f(x; θ)`` with a flat parameter vector.

    Parameters
    ----------
    layer_sizes
        Widths from input to output, e.g. ``[1, 50, 1]``.
    activation
        ``"tanh"`` or ``"relu"``, applied after every layer but the last.

    Notes
    -----
    Layout of θ: for each layer ``l`` in order, the weight matrix ``W_l`` of
    shape (in_l, out_l) flattened row-major, then the bias ``b_l`` (out_l,).
    So ``D = Σ_l (in_l + 1) out_l`` and layer ``l`` computes
    ``h_{l+1} = act(h_l W_l + b_l)``.
    """

    def __init__(self, layer_sizes: Sequence[int], activation: str = "tanh"):
        sizes = [int(n) for n in layer_sizes]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"layer_sizes must list at least two positive widths, got {list(layer_sizes)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.layer_sizes = sizes
        self.activation = activation
        # (start, stop, shape) of each weight and bias inside θ
        self.slices = []
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = (offset, offset + n_in * n_out, (n_in, n_out))
            offset += n_in * n_out
            b = (offset, offset + n_out, (n_out,))
            offset += n_out
            self.slices.append((w, b))
        self.dim = offset

    @property
    def n_inputs(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    def __repr__(self) -> str:
        return f"MLP({self.layer_sizes}, activation={self.activation!r})"

    def unflatten(self, theta) -> list:
        """Weights ``[(W_1, b_1), …]`` read from θ (D,) or (S, D); batched shapes get a leading S."""
        lead = tuple(np.shape(theta.value if isinstance(theta, ad.Var) else theta)[:-1])
        layers = []
        for (w0, w1, w_shape), (b0, b1, b_shape) in self.slices:
            weight = ad.view(theta, (Ellipsis, slice(w0, w1)), lead + w_shape)
            # a batched bias gets a row axis so it broadcasts over the n inputs
            bias = ad.view(theta, (Ellipsis, slice(b0, b1)), lead + ((1,) if lead else ()) + b_shape)
            layers.append((weight, bias))
        return layers

    def forward(self, theta, x):
        """Network outputs for inputs ``x`` (n, in).

        Parameters
        ----------
        theta
            (D,) or (S, D) array or ``ad.Var``.
        x
            (n, in) inputs.

        Returns
        -------
        (n, out) for one θ, (S, n, out) for S of them, computed with batched
        matrix products (no loop over S).
        """
        h = x
        last = len(self.slices) - 1
        for i, (weight, bias) in enumerate(self.slices):
            # act(h W + b), W and b read out of θ: one node a layer (``ad.plain_graph()`` shows the four)
            h = ad.dense(h, theta, weight, bias, self.activation if i < last else None)
        return h

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` random parameter vectors (n, D): weights N(0, 1/fan_in), biases N(0, 0.1²)."""
        theta = np.empty((n, self.dim))
        for (w0, w1, w_shape), (b0, b1, _) in self.slices:
            theta[:, w0:w1] = rng.standard_normal((n, w1 - w0)) / np.sqrt(w_shape[0])
            theta[:, b0:b1] = 0.1 * rng.standard_normal((n, b1 - b0))
        return theta


class Layer(NamedTuple):
    """One layer of a :class:`CNN`: what it computes and where its parameters sit in θ.

    ``weight`` and ``bias`` are ``(start, stop, shape)``: ``θ[start:stop]``
    reshaped row-major to ``shape``. ``fan_in`` is the number of inputs each
    output unit sums over (C·kh·kw for a convolution).
    """

    kind: str  # "conv" or "dense"
    weight: tuple
    bias: tuple
    fan_in: int


def _pair(name: str, value) -> tuple:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return check.count(name, pair[0]), check.count(name, pair[1])


def _widths(name: str, values, allow_empty: bool) -> list:
    if not isinstance(values, Sequence) or isinstance(values, str) or (not values and not allow_empty):
        raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}")
    return [check.count(f"each entry of {name}", n) for n in values]


class CNN:
    """A convolutional network ``f(x; θ)`` on images x (N, C, H, W) with a flat parameter vector.

    Parameters
    ----------
    input_shape
        (C, H, W) of one image.
    channels
        Output channels of each convolutional block; every block is a
        ``"same"`` convolution, the activation, then a 2×2 max-pool.
    kernel_size
        Filter height and width (an int for square filters).
    hidden
        Widths of the dense hidden layers after the convolutions.
    n_outputs
        Width of the last (linear) layer, e.g. the number of classes.
    activation
        ``"relu"`` or ``"tanh"``, after every layer but the last.

    Notes
    -----
    Layout of θ, one :class:`Layer` after another, as ``self.layers`` lists
    them: for each convolution the filters W (O, C, kh, kw) row-major, then
    the bias (O,); then for each dense layer W (in, out) row-major and b
    (out,), as in :class:`MLP`. Block l maps (C_l, H_l, W_l) to
    (C_{l+1}, ⌊H_l/2⌋, ⌊W_l/2⌋); the last block's output is flattened in
    (channel, row, column) order into the first dense layer's ``in``. The
    defaults give D = 6058 for 8×8 digits: 80 + 1168 + 4160 + 650.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 8, 8),
        channels: Sequence[int] = (8, 16),
        kernel_size=3,
        hidden: Sequence[int] = (64,),
        n_outputs: int = 10,
        activation: str = "relu",
    ):
        shape = _widths("input_shape", input_shape, allow_empty=False)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.input_shape = tuple(shape)
        self.channels = _widths("channels", channels, allow_empty=True)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.hidden = _widths("hidden", hidden, allow_empty=True)
        self.n_outputs = check.count("n_outputs", n_outputs)
        self.activation = activation
        self._act = _ACTIVATIONS[activation]
        kh, kw = self.kernel_size
        c, h, w = self.input_shape
        self.layers, offset = [], 0

        def add(kind, w_shape, fan_in):
            nonlocal offset
            n_out = w_shape[0] if kind == "conv" else w_shape[1]
            stop = offset + int(np.prod(w_shape))
            self.layers.append(Layer(kind, (offset, stop, tuple(w_shape)), (stop, stop + n_out, (n_out,)), fan_in))
            offset = stop + n_out

        for out_channels in self.channels:
            if h < 2 or w < 2:
                raise ValueError(f"input_shape {input_shape!r} is too small for {len(self.channels)} 2×2 poolings")
            add("conv", (out_channels, c, kh, kw), c * kh * kw)
            c, h, w = out_channels, h // 2, w // 2
        self.feature_shape = (c, h, w)
        widths = [c * h * w] + self.hidden + [self.n_outputs]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            add("dense", (n_in, n_out), n_in)
        self.slices = [(layer.weight, layer.bias) for layer in self.layers]
        self.dim = offset

    def __repr__(self) -> str:
        return (
            f"CNN(input_shape={self.input_shape}, channels={tuple(self.channels)}, kernel_size={self.kernel_size}, "
            f"hidden={tuple(self.hidden)}, n_outputs={self.n_outputs}, activation={self.activation!r})"
        )

    def unflatten(self, theta) -> list:
        """Weights ``[(W_1, b_1), …]`` read from θ (D,) or (S, D); batched shapes get a leading S.

        A convolution's bias is shaped to broadcast over its output
        (…, N, O, H, W): (O, 1, 1), or (S, 1, O, 1, 1) for a batch.
        """
        lead = tuple(np.shape(theta.value if isinstance(theta, ad.Var) else theta)[:-1])
        out = []
        for layer in self.layers:
            (w0, w1, w_shape), (b0, b1, b_shape) = layer.weight, layer.bias
            weight = ad.view(theta, (Ellipsis, slice(w0, w1)), lead + w_shape)
            if layer.kind == "conv":
                bias_shape = lead + ((1,) if lead else ()) + b_shape + (1, 1)
            else:
                bias_shape = lead + ((1,) if lead else ()) + b_shape
            out.append((weight, ad.view(theta, (Ellipsis, slice(b0, b1)), bias_shape)))
        return out

    def layer_linear(self, i: int, h, weight, bias):
        """Layer ``i``'s pre-activation: ``conv2d(h, W, padding="same") + b`` or ``h W + b``.

        The first dense layer flattens its input images (…, N, C, H, W) to
        (…, N, C·H·W) first. Linear in (W, b), so a caller can push weight
        means and variances through it (local reparameterisation).
        """
        if self.layers[i].kind == "conv":
            return ad.add(ad.conv2d(h, weight, padding="same"), bias)
        if i == len(self.channels):
            h = ad.reshape(h, tuple(np.shape(h)[:-3]) + (int(np.prod(np.shape(h)[-3:])),))
        return ad.affine(h, weight, bias)

    def layer_output(self, i: int, z):
        """What follows layer ``i``'s pre-activation ``z``: the activation, then a 2×2 max-pool for a
        convolution; nothing for the output layer."""
        if i == len(self.layers) - 1:
            return z
        h = self._act(z)
        return ad.max_pool2d(h, 2) if self.layers[i].kind == "conv" else h

    def forward(self, theta, x):
        """Network outputs for images ``x`` (N, C, H, W).

        Parameters
        ----------
        theta
            (D,) or (S, D) array or ``ad.Var``.
        x
            (N, C, H, W) images with (C, H, W) = ``input_shape``.

        Returns
        -------
        (N, n_outputs) for one θ, (S, N, n_outputs) for S of them, computed with
        batched convolutions and matrix products (no loop over S).
        """
        x_shape = np.shape(x.value if isinstance(x, ad.Var) else x)
        if len(x_shape) != 4 or tuple(x_shape[1:]) != self.input_shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_shape))}), got shape {x_shape}")
        h = x
        for i, (weight, bias) in enumerate(self.unflatten(theta)):
            h = self.layer_output(i, self.layer_linear(i, h, weight, bias))
        return h

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` random parameter vectors (n, D): weights N(0, 1/fan_in), biases N(0, 0.1²)."""
        theta = np.empty((n, self.dim))
        for layer in self.layers:
            (w0, w1, _), (b0, b1, _) = layer.weight, layer.bias
            theta[:, w0:w1] = rng.standard_normal((n, w1 - w0)) / np.sqrt(layer.fan_in)
            theta[:, b0:b1] = 0.1 * rng.standard_normal((n, b1 - b0))
        return theta
