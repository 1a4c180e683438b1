"""Approximation methods: one module each, all driven by ``Method.fit`` in ``base``."""

from .base import Method
from .bbb import BayesByBackprop
from .bbvi import BBVI
from .dropout import MCDropout
from .ensemble import DeepEnsemble
from .hmc import HMC
from .importance import ImportanceSampling
from .laplace import Laplace
from .map import MAP
from .metropolis import Metropolis
from .nuts import NUTS
from .sgmcmc import SGHMC, SGLD

__all__ = [
    "Method",
    "Metropolis",
    "HMC",
    "ImportanceSampling",
    "BBVI",
    "BayesByBackprop",
    "MAP",
    "DeepEnsemble",
    "MCDropout",
    "Laplace",
    "SGLD",
    "SGHMC",
    "NUTS",
]
