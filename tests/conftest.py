"""Shared test set-up: a deterministic hypothesis profile and a headless matplotlib."""

import os

import matplotlib
from hypothesis import HealthCheck, settings

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
