"""Models: a log density over a flat parameter vector θ, written in ``ad`` ops.

A user model subclasses :class:`Model`, sets ``dim`` and writes
``log_prior(theta)`` and ``log_likelihood(theta, idx=None)`` for θ of shape
(D,) or (S, D). The base supplies ``log_joint``, ``log_joint_and_grad``
(one batched backward pass for all S rows) and ``init``.

The base and its fast path live in ``base``, the regression models in
``regression``, classification in ``classification``; import them from here.
"""

from .base import Model, as_2d_data
from .classification import Classification
from .regression import LinearRegression, Regression

__all__ = ["Model", "Regression", "LinearRegression", "Classification", "as_2d_data"]
