"""approxpost.targets: exact samplers against the stated moments, normalised densities, gradients.

Moment checks use 200 000 exact draws and 4 Monte Carlo standard errors.
The normalising constants are integrated numerically (scipy ``dblquad`` on a
box adapted to each shape, or a fine grid where the trapezoid rule is
spectrally accurate), and the sampler is tied to the density through
E_p[log p] = −H(p).
"""

import numpy as np
import pytest
import scipy.stats
from scipy import integrate

import approxpost as ap
from approxpost import autodiff as ad
from approxpost.targets import TARGETS, Banana, Funnel, Gaussian, Mixture

N_SE = 4.0
N_DRAWS = 200_000
LOG_2PI_E = np.log(2 * np.pi * np.e)


@pytest.fixture(scope="module")
def draws():
    """200 000 exact draws from each default target, seeded."""
    return {
        name: cls().sample(np.random.default_rng(i), N_DRAWS) for i, (name, cls) in enumerate(sorted(TARGETS.items()))
    }


def assert_mean_and_cov(samples, mean, cov):
    """Sample mean and second central moments (about the true mean) within 4 standard errors."""
    n = len(samples)
    assert np.all(np.abs(samples.mean(axis=0) - mean) < N_SE * samples.std(axis=0, ddof=1) / np.sqrt(n))
    centred = samples - mean
    products = centred[:, :, None] * centred[:, None, :]
    assert np.all(np.abs(products.mean(axis=0) - cov) < N_SE * products.std(axis=0, ddof=1) / np.sqrt(n))


@pytest.mark.parametrize("name", ["banana", "gaussian", "mixture"])
def test_sampler_moments_match_mean_and_cov(draws, name):
    target = TARGETS[name]()
    samples = draws[name]
    assert samples.shape == (N_DRAWS, 2)
    assert_mean_and_cov(samples, target.mean, target.cov)


def test_funnel_sampler(draws):
    """v ~ N(0, s²) by its moments; x / e^{v/2} ~ N(0, 1) independent of v (the raw x is too heavy-tailed)."""
    target = Funnel()
    x, v = draws["funnel"].T
    s = target.scale
    assert target.cov[1, 1] == s**2 and target.cov[0, 0] == pytest.approx(np.exp(s**2 / 2))
    assert_mean_and_cov(v[:, None], target.mean[1:], target.cov[1:, 1:])
    z = x / np.exp(v / 2.0)
    assert_mean_and_cov(np.column_stack([z, v / s]), np.zeros(2), np.eye(2))
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3


def test_funnel_x_variance_from_the_v_draws(draws):
    """Var x = E[e^v]: the sampler's v average of e^v matches the stated covariance within 4 SE."""
    _, v = draws["funnel"].T
    e_v = np.exp(v)
    assert abs(e_v.mean() - Funnel().cov[0, 0]) < N_SE * e_v.std(ddof=1) / np.sqrt(len(v))


# --- normalisation and sampler/density consistency ------------------------------------


def density(target):
    return lambda inner, outer: float(np.exp(target.log_density(np.array([outer, inner]))))


@pytest.mark.parametrize(
    "target, outer, inner",
    [
        (Gaussian(), (-12.0, 12.0), lambda t: (-12.0, 12.0)),
        (Banana(), (-12.0, 12.0), lambda t: (t * t - 1.0 - 12.0, t * t - 1.0 + 12.0)),  # follow the ridge θ₂ = θ₁² − 1
        (
            Banana(scale=0.7, curvature=2.0),
            (-9.0, 9.0),
            lambda t: (2 * (t * t - 0.49) - 12.0, 2 * (t * t - 0.49) + 12.0),
        ),
    ],
    ids=["gaussian", "banana", "banana_scaled"],
)
def test_density_integrates_to_one(target, outer, inner):
    z, _ = integrate.dblquad(
        density(target), *outer, lambda t: inner(t)[0], lambda t: inner(t)[1], epsabs=1e-10, epsrel=1e-10
    )
    assert z == pytest.approx(1.0, abs=1e-8)


def test_funnel_density_integrates_to_one():
    target = Funnel()
    # outer v over ±10 s, inner x over ±12 standard deviations e^{v/2} of x | v
    z, _ = integrate.dblquad(
        lambda x, v: float(np.exp(target.log_density(np.array([x, v])))),
        -30.0, 30.0, lambda v: -12.0 * np.exp(v / 2.0), lambda v: 12.0 * np.exp(v / 2.0),
        epsabs=1e-10, epsrel=1e-10,
    )  # fmt: skip
    assert z == pytest.approx(1.0, abs=1e-8)


def mixture_grid_integrals(target):
    """(∫p, −∫p log p) on a 0.025-spaced grid: the trapezoid rule on a smooth density vanishing at the edges."""
    grid = np.linspace(-10.0, 10.0, 801)
    cell = (grid[1] - grid[0]) ** 2
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    log_p = target.log_density(points)
    p = np.exp(log_p)
    return float(np.sum(p) * cell), float(-np.sum(p * log_p) * cell)


def test_mixture_density_integrates_to_one():
    total, _ = mixture_grid_integrals(Mixture())
    assert total == pytest.approx(1.0, abs=1e-10)


def negative_entropy(name):
    target = TARGETS[name]()
    if name == "gaussian":
        return -0.5 * (np.linalg.slogdet(target.cov)[1] + 2 * LOG_2PI_E)
    if name == "banana":  # H(θ₁) + H(θ₂ | θ₁): the shear θ₂ − b(θ₁² − a²) has unit Jacobian
        return -(0.5 * np.log(target.scale**2) + LOG_2PI_E)
    if name == "funnel":  # H(v) + E[H(x | v)] = ½ log(2πe s²) + ½ log(2πe) + E[v]/2, E[v] = 0
        return -(0.5 * np.log(target.scale**2) + LOG_2PI_E)
    return -mixture_grid_integrals(target)[1]  # no closed form: numerical −∫p log p


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mean_log_density_over_exact_draws_is_negative_entropy(draws, name):
    log_p = np.asarray(TARGETS[name]().log_joint(draws[name]))
    assert log_p.shape == (N_DRAWS,)
    assert abs(log_p.mean() - negative_entropy(name)) < N_SE * log_p.std(ddof=1) / np.sqrt(N_DRAWS)


def test_gaussian_density_is_scipys():
    target = Gaussian(mean=(1.0, -2.0), cov=((2.0, -0.3), (-0.3, 0.5)))
    points = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_allclose(
        target.log_joint(points), scipy.stats.multivariate_normal(target.mean, target.cov).logpdf(points), rtol=1e-12
    )


# --- the Model interface -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_is_a_model_built_with_no_arguments(name):
    target = TARGETS[name]()
    assert isinstance(target, ap.models.Model) and target.dim == 2
    assert target.mean.shape == (2,) and target.cov.shape == (2, 2)
    np.testing.assert_allclose(target.cov, target.cov.T)
    assert repr(target) == f"{type(target).__name__}()"
    theta = target.sample(np.random.default_rng(0), 6)
    assert isinstance(target.log_joint(theta[0]), float)
    values, grads = target.log_joint_and_grad(theta)
    assert values.shape == (6,) and grads.shape == (6, 2)
    np.testing.assert_allclose(values, target.log_joint(theta), rtol=1e-14)
    for s in range(6):
        assert ad.check_grad(target.log_joint, theta[s], seed=0) < 1e-6
    np.testing.assert_array_equal(theta, target.sample(np.random.default_rng(0), 6))


def test_bad_target_arguments_are_rejected():
    with pytest.raises(ValueError, match="scale must be positive"):
        Banana(scale=0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        Funnel(scale=-1.0)
    with pytest.raises(ValueError, match="std must be positive"):
        Mixture(std=np.nan)
    with pytest.raises(ValueError, match=r"cov must be \(D, D\)"):
        Gaussian(mean=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"theta has shape \(3,\)"):
        Gaussian().log_joint(np.zeros(3))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_prior_of_a_data_free_target_is_its_whole_density(name):
    target = TARGETS[name]()
    points = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_array_equal(target.log_prior(points), target.log_density(points))
    np.testing.assert_array_equal(target.log_joint(points), target.log_density(points))
