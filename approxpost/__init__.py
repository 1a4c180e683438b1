"""approxpost: the classic ways of approximating a Bayesian posterior, side by side."""

__version__ = "0.1.0"

from . import autodiff, datasets, distributions, models, nn, targets

__all__ = ["autodiff", "datasets", "distributions", "models", "nn", "targets", "__version__"]
