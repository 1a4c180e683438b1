"""The defaults of the built-in problems: each data set's model and each method's settings.

The ``approxpost`` command, ``scripts/make_references.py`` and the stored
references (:mod:`approxpost.references`, which rebuild their model from the
data set's name) all read them from here, so a reference and a comparison on
the same data set always use the same network and prior.
"""

from __future__ import annotations

__all__ = [
    "METHOD_NAMES",
    "ALL_METHODS",
    "IMAGE_METHODS",
    "dataset_makers",
    "build_model",
    "default_methods",
    "image_methods",
    "active_methods",
]

# Lower-case name on the command line -> label in tables and figures
METHOD_NAMES = {"metropolis": "Metropolis", "hmc": "HMC", "is": "IS", "bbvi": "BBVI", "bbb": "BBB"}
METHOD_NAMES.update(laplace="Laplace", sgld="SGLD", sghmc="SGHMC")
METHOD_NAMES.update(map="MAP", ensemble="Ensemble", mc_dropout="MC dropout")
METHOD_NAMES.update(nuts="NUTS")
# What `--methods all` runs: the five classic methods, whose defaults fit the README's main job in ~25 s on 2
# cores; the other six of 0.2 without NUTS add ~30%. `--methods every` runs every name in METHOD_NAMES.
ALL_METHODS = ("metropolis", "hmc", "is", "bbvi", "bbb")
# on the digits CNN (D = 6058, 1000 images) a full-batch sampler's default run would take an hour: `all` there
# means the minibatch methods, sized in image_methods(); any other method still runs by name
IMAGE_METHODS = ("map", "bbb", "ensemble", "mc_dropout")


def dataset_makers() -> dict:
    """Name on the command line -> data set generator: the regression ones, then the classification ones."""
    import approxpost as ap

    return {**ap.datasets.DATASETS, "moons": ap.datasets.two_moons, "digits": ap.datasets.digits}


def build_model(dataset):
    """The default model for a ``Dataset``: an MLP([1, 50, 1]) BNN, conjugate linear regression, or a classifier.

    Two moons get ``Classification(MLP([2, 20, 2]))``: 102 weights, enough to
    bend the boundary between the moons (97-98% test accuracy with HMC).
    """
    import approxpost as ap

    if dataset.name == "digits":  # nn.CNN's defaults suit 8×8 digits: D = 6058
        return ap.models.Classification(ap.nn.CNN(), dataset.x, dataset.y, prior_std=1.0)
    if dataset.name == "moons":
        net = ap.nn.MLP([dataset.x.shape[1], 20, 2], activation="tanh")
        return ap.models.Classification(net, dataset.x, dataset.y, prior_std=1.0)
    if dataset.name == "linear":
        return ap.models.LinearRegression(dataset.x, dataset.y, noise_std=dataset.noise_std, prior_std=1.0)
    net = ap.nn.MLP([dataset.x.shape[1], 50, 1], activation="tanh")
    return ap.models.Regression(net, dataset.x, dataset.y, noise_std=dataset.noise_std, prior_std=1.0)


def default_methods() -> dict:
    """The settings each method runs with by default: ``--methods all`` on gap takes ~25 s on 2 cores."""
    import approxpost as ap

    return {
        "metropolis": ap.Metropolis(step_size=0.02, n_samples=20_000, n_warmup=5_000, n_chains=4),
        "hmc": ap.HMC(step_size=0.01, n_leapfrog=20, n_samples=2_000, n_warmup=500, n_chains=4),
        "is": ap.ImportanceSampling(n_samples=100_000),
        "bbvi": ap.BBVI(n_mc=16, n_steps=10_000, learning_rate=1e-2, control_variate=True),
        "bbb": ap.BayesByBackprop(n_mc=4, n_steps=10_000, learning_rate=1e-2),
        "map": ap.MAP(n_steps=2_000, learning_rate=1e-2),
        "ensemble": ap.DeepEnsemble(n_members=5, n_steps=2_000, learning_rate=1e-2),
        "mc_dropout": ap.MCDropout(p=0.1, n_steps=2_000, learning_rate=1e-2),
        # the GGN and its linearised predictive: sampled weights from a network's Laplace Gaussian make wild networks
        "laplace": ap.Laplace(hessian="ggn", n_steps=5_000, learning_rate=1e-2, linearized=True),
        # SG-MCMC has no accept step to rescue a large step: 1e-4 diverges on the gap BNN, 3e-5 does not
        "sgld": ap.SGLD(step_size=3e-5, n_samples=5_000, n_warmup=5_000, n_chains=4),
        "sghmc": ap.SGHMC(step_size=1e-5, friction=0.05, n_samples=5_000, n_warmup=5_000, n_chains=4),
        "nuts": ap.NUTS(n_samples=300, n_warmup=300, n_chains=4, max_tree_depth=7),
    }


def image_methods() -> dict:
    """The digits CNN's settings for ``--methods all``: minibatches of 100, 300 steps (30 epochs), a few seconds each."""
    import approxpost as ap

    return {
        "map": ap.MAP(n_steps=300, learning_rate=1e-2, batch_size=100),
        "bbb": ap.BayesByBackprop(n_mc=1, n_steps=300, learning_rate=1e-2, batch_size=100, estimator="local"),
        "ensemble": ap.DeepEnsemble(n_members=5, n_steps=300, learning_rate=1e-2, batch_size=100),
        "mc_dropout": ap.MCDropout(p=0.1, n_steps=300, learning_rate=1e-2, batch_size=100),
    }


def active_methods(n_steps: int) -> dict:
    """The methods ``approxpost active`` can run, each refitted every round for ``n_steps`` Adam steps."""
    import approxpost as ap

    return {
        "mc_dropout": ap.MCDropout(p=0.25, n_steps=n_steps, learning_rate=1e-2),
        "ensemble": ap.DeepEnsemble(n_members=5, n_steps=n_steps, learning_rate=1e-2),
        "bbb": ap.BayesByBackprop(n_mc=2, n_steps=n_steps, learning_rate=1e-2),
        "laplace": ap.Laplace(hessian="ggn", n_steps=n_steps, learning_rate=1e-2, linearized=True),
        "map": ap.MAP(n_steps=n_steps, learning_rate=1e-2),
    }
