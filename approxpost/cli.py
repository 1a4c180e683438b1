"""The ``approxpost`` command: fit every method to a toy problem and write the comparison.

::

    approxpost compare --dataset gap --methods all --seed 0 --out results/

prints a progress bar per method and the metrics table, and writes
``table.md``, ``bands.png`` and ``grad_variance.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["main", "build_model", "default_methods", "METHOD_NAMES"]

# Lower-case name on the command line -> label in tables and figures
METHOD_NAMES = {"metropolis": "Metropolis", "hmc": "HMC", "is": "IS", "bbvi": "BBVI", "bbb": "BBB", "nuts": "NUTS"}


def build_model(dataset):
    """The default model for a ``Dataset``: an MLP([1, 50, 1]) BNN, or conjugate linear regression."""
    import approxpost as ap

    if dataset.name == "linear":
        return ap.models.LinearRegression(dataset.x, dataset.y, noise_std=dataset.noise_std, prior_std=1.0)
    net = ap.nn.MLP([dataset.x.shape[1], 50, 1], activation="tanh")
    return ap.models.Regression(net, dataset.x, dataset.y, noise_std=dataset.noise_std, prior_std=1.0)


def default_methods() -> dict:
    """The settings each method runs with by default: the whole gap comparison takes about a minute on 2 cores."""
    import approxpost as ap

    return {
        "metropolis": ap.Metropolis(step_size=0.02, n_samples=20_000, n_warmup=5_000, n_chains=4),
        "hmc": ap.HMC(step_size=0.01, n_leapfrog=20, n_samples=2_000, n_warmup=500, n_chains=4),
        "is": ap.ImportanceSampling(n_samples=100_000),
        "bbvi": ap.BBVI(n_mc=16, n_steps=10_000, learning_rate=1e-2, control_variate=True),
        "bbb": ap.BayesByBackprop(n_mc=4, n_steps=10_000, learning_rate=1e-2),
        "nuts": ap.NUTS(n_samples=300, n_warmup=300, n_chains=4, max_tree_depth=7),
    }


class _UsageError(Exception):
    pass


def _parse_methods(text: str) -> list:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(METHOD_NAMES)
    unknown = [name for name in names if name not in METHOD_NAMES]
    if unknown or not names:
        raise _UsageError(
            f"unknown method {', '.join(map(repr, unknown)) or repr(text)}; valid: all, {', '.join(METHOD_NAMES)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="approxpost", description="Compare ways of approximating a Bayesian posterior."
    )
    parser.add_argument("--version", action="version", version=f"approxpost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="fit every method to a toy problem and tabulate the results")
    compare.add_argument("--dataset", default="gap", help="gap, blundell or linear (default: gap)")
    compare.add_argument("--methods", default="all", help="all, or a comma list of: " + ", ".join(METHOD_NAMES))
    compare.add_argument("--seed", type=int, default=0, help="seed for the data and every method (default: 0)")
    compare.add_argument("--out", default="results", help="folder for table.md and the figures (default: results)")
    compare.add_argument(
        "--budget", type=int, default=None, help="model evaluations per method (default: each method's own settings)"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _within_budget(label: str, method, budget: int):
    """``method.with_budget(budget)``, or a usage error saying what --budget that method needs."""
    try:
        return method.with_budget(budget)
    except ValueError as error:
        raise _UsageError(f"--budget {budget} is too small for {label}: {error}; pass a larger --budget") from None


def _check_writable(out: str) -> None:
    """Create ``out`` (with parents) now, so a bad --out fails before a minute of fitting, not after."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise _UsageError(f"--out {out!r} cannot be created: {error.strerror}; choose another folder") from None
    if not os.access(out, os.W_OK):
        raise _UsageError(f"--out {out!r} is not writable; choose another folder")


def run_compare(args) -> int:
    """The body of ``approxpost compare``."""
    import matplotlib

    matplotlib.use("Agg")
    import approxpost as ap
    from approxpost import plot
    from approxpost.compare import gradient_variance_curves

    if args.dataset not in ap.datasets.DATASETS:
        raise _UsageError(f"unknown dataset {args.dataset!r}; valid: {', '.join(ap.datasets.DATASETS)}")
    names = _parse_methods(args.methods)
    if args.seed < 0:
        raise _UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.budget is not None and args.budget < 1:
        raise _UsageError(f"--budget must be a positive number of evaluations, got {args.budget}")
    defaults = default_methods()
    methods = {METHOD_NAMES[name]: defaults[name] for name in names}
    if args.budget is not None:  # every setting is checked before the first (long) fit
        methods = {label: _within_budget(label, method, args.budget) for label, method in methods.items()}
    _check_writable(args.out)
    data = ap.datasets.DATASETS[args.dataset](seed=args.seed)
    model = build_model(data)
    print(
        f"approxpost {ap.__version__}: {len(methods)} methods on {data.name} ({len(data.x)} points, D={model.dim}), seed {args.seed}"
    )
    start = time.perf_counter()
    result = ap.compare(
        model,
        methods,
        test=(data.x_test, data.y_test),
        seed=args.seed,
        budget=None,  # already applied above, where a too-small budget is a usage error
        progress=not args.quiet,
        gap=data.gap,
    )
    table = result.to_markdown()
    print(table)
    with open(os.path.join(args.out, "table.md"), "w") as handle:
        handle.write(f"Dataset `{data.name}`, seed {args.seed}, budget {args.budget or 'default'}.\n\n{table}\n")
    plot.bands(result, data).savefig(os.path.join(args.out, "bands.png"), dpi=110)
    q = None
    if "BBB" in result.posteriors:
        bbb = result.posteriors["BBB"]
        q = ap.distributions.MeanFieldNormal.from_std(bbb.mean, bbb.std)
    curves = gradient_variance_curves(model, q=q, n_repeats=50, seed=args.seed)
    plot.grad_variance(curves).savefig(os.path.join(args.out, "grad_variance.png"), dpi=110)
    print(f"wrote table.md, bands.png, grad_variance.png to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``approxpost`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return run_compare(args)
    except _UsageError as error:
        print(f"approxpost: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. the disk filled up or --out vanished while writing
        print(f"approxpost: error: cannot write to --out {args.out!r}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
