"""Shared test set-up: a deterministic hypothesis profile, a headless matplotlib and the ``linear`` model."""

import os

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import approxpost as ap

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

# Derandomised so every CI run draws the same examples: a statistical test
# that passes once passes always. No deadline: timing is for bench/, not tests.
settings.register_profile(
    "approxpost",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "approxpost"))


@pytest.fixture(scope="session")
def linear():
    """A conjugate Bayesian linear regression (2 inputs + intercept, N = 20): the known-truth model of the method tests."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2))
    y = x @ np.array([1.0, -2.0]) + 0.5 + rng.standard_normal(20)
    return ap.models.LinearRegression(x, y, noise_std=1.0, prior_std=1.0)


@pytest.fixture(scope="session")
def line():
    """A conjugate straight-line fit y = a x + b (dim 2, N = 30, noise 0.5): the samplers' known-truth model."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = 0.5 * x + 0.3 + 0.5 * rng.standard_normal(30)
    return ap.models.LinearRegression(x, y, noise_std=0.5, prior_std=1.0)
