"""Reverse-mode automatic differentiation on NumPy float64 arrays.

Write a function with the ops here (or with the operators ``+ - * / @ **`` on
``Var`` s) and get its gradient::

    from approxpost import autodiff as ad
    value, g = ad.value_and_grad(lambda w: ad.sum(ad.tanh(x @ w) ** 2))(w0)
"""

from .check import check_grad, directional_derivative
from .conv import avg_pool2d, conv2d, max_pool2d
from .core import IndexedGrad, Var, grad, unbroadcast, unbroadcaster, value_and_grad, vjp
from .fused import dense, gaussian_log_density, mlp_log_joint, plain_graph
from .memory import ensure_malloc_tuned, tune_malloc
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .tape import Tape, primitive, split_primitive

__all__ = [
    "tune_malloc",
    "ensure_malloc_tuned",
    "Var",
    "grad",
    "value_and_grad",
    "vjp",
    "check_grad",
    "directional_derivative",
    "unbroadcast",
    "unbroadcaster",
    "IndexedGrad",
    "Tape",
    "primitive",
    "split_primitive",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "dense",
    "gaussian_log_density",
    "mlp_log_joint",
    "plain_graph",
] + list(_ops_all)
