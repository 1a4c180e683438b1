"""Small fully connected networks whose weights are one flat parameter vector θ.

Every method in approxpost works on a flat θ, so the network's job is to read
its weight matrices out of θ and run the forward pass, for one θ of shape
(D,) or for a batch of S parameter vectors (S, D) in one batched pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import autodiff as ad

__all__ = ["MLP"]

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
        self._act = _ACTIVATIONS[activation]
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
        layers = self.unflatten(theta)
        for i, (weight, bias) in enumerate(layers):
            h = ad.affine(h, weight, bias)  # h W + b
            if i < len(layers) - 1:
                h = self._act(h)
        return h

    def init(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` random parameter vectors (n, D): weights N(0, 1/fan_in), biases N(0, 0.1²)."""
        theta = np.empty((n, self.dim))
        for (w0, w1, w_shape), (b0, b1, _) in self.slices:
            theta[:, w0:w1] = rng.standard_normal((n, w1 - w0)) / np.sqrt(w_shape[0])
            theta[:, b0:b1] = 0.1 * rng.standard_normal((n, b1 - b0))
        return theta
