"""The ``approxpost`` command: fit every method to a toy problem and write the comparison.

::

    approxpost compare --dataset gap --methods all --seed 0 --out results/

prints a progress bar per method and the metrics table, and writes
``table.md``, ``bands.png`` and ``grad_variance.png`` into ``--out``. On the
classification data set ``moons`` it writes ``decision_surface.png`` (class
probability), ``entropy.png`` and ``reliability.png`` instead of ``bands.png``.
When the package stores a reference posterior for the data set
(:func:`approxpost.references.available`) and it was made from the same
``--seed``, the table gets each method's distance to it; ``--no-reference``
leaves it out.

``--methods all`` runs the five classic methods (``ALL_METHODS``: Metropolis,
HMC, importance sampling, BBVI, Bayes by Backprop), the README's main job;
``--methods every`` runs all of ``METHOD_NAMES``, adding MAP, the deep
ensemble, MC dropout, Laplace, SGLD, SGHMC and NUTS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .defaults import (
    ALL_METHODS,
    IMAGE_METHODS,
    METHOD_NAMES,
    active_methods,
    build_model,
    dataset_makers,
    default_methods,
    image_methods,
)

__all__ = [
    "main",
    "build_model",
    "default_methods",
    "dataset_makers",
    "stored_reference",
    "METHOD_NAMES",
    "ALL_METHODS",
    "active_methods",
    "run_active",
]


class _UsageError(Exception):
    pass


def _parse_methods(text: str, dataset: str = "gap") -> list:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(IMAGE_METHODS if dataset == "digits" else ALL_METHODS)
    if names == ["every"]:
        return list(METHOD_NAMES)
    unknown = [name for name in names if name not in METHOD_NAMES]
    if unknown or not names:
        raise _UsageError(
            f"unknown method {', '.join(map(repr, unknown)) or repr(text)}; valid: all, every, {', '.join(METHOD_NAMES)}"
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
    compare.add_argument(
        "--dataset",
        default="gap",
        help="gap, blundell or linear (regression), moons or digits (classification); default: gap",
    )
    compare.add_argument(
        "--methods",
        default="all",
        help=f"all ({', '.join(ALL_METHODS)}), every (all {len(METHOD_NAMES)}), or a comma list of: "
        + ", ".join(METHOD_NAMES),
    )
    compare.add_argument("--seed", type=int, default=0, help="seed for the data and every method (default: 0)")
    compare.add_argument("--out", default="results", help="folder for table.md and the figures (default: results)")
    compare.add_argument(
        "--budget", type=int, default=None, help="model evaluations per method (default: each method's own settings)"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bars")
    compare.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="leave out the distances to the stored reference posterior (default: use it when there is one)",
    )
    _add_active_parser(commands)
    return parser


def stored_reference(dataset: str, seed: int):
    """The stored reference posterior of built-in data set ``dataset`` drawn with ``seed``, or None, and why not.

    A reference is a posterior given one draw of the data: another ``--seed``
    makes other data, and its distances would measure nothing.
    """
    from . import references

    if dataset not in references.available():
        return None, f"no stored reference for {dataset}"
    reference = references.load(dataset)
    made_with = reference.settings.get("seed")
    if made_with != seed:
        return None, f"the stored {dataset} reference is for --seed {made_with}, not {seed}"
    shape, rhat = reference.draws.shape, reference.diagnostics["f_rhat_max"]
    return reference, f"stored NUTS reference ({shape[0]} chains × {shape[1]} draws, R-hat of f(x_test) ≤ {rhat:.3f})"


def _within_budget(label: str, method, budget: int):
    """``method.with_budget(budget)``, or a usage error saying what --budget that method needs."""
    try:
        return method.with_budget(budget)
    except ValueError as error:
        raise _UsageError(f"--budget {budget} is too small for {label}: {error}; pass a larger --budget") from None


def _budget_fits(label: str, method, model, budget: int) -> None:
    """A usage error now if the budget cannot pay for a cost that grows with the model (Laplace's Newton phase)."""
    n_adam_steps = getattr(method, "n_adam_steps", None)
    if n_adam_steps is None:
        return
    try:
        n_adam_steps(model)
    except ValueError as error:
        raise _UsageError(f"--budget {budget} is too small for {label} on this data set: {error}") from None


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
    from matplotlib import pyplot

    import approxpost as ap
    from approxpost import plot
    from approxpost.compare import gradient_variance_curves, is_classifier

    makers = dataset_makers()
    if args.dataset not in makers:
        raise _UsageError(f"unknown dataset {args.dataset!r}; valid: {', '.join(makers)}")
    names = _parse_methods(args.methods, args.dataset)
    if args.seed < 0:
        raise _UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.budget is not None and args.budget < 1:
        raise _UsageError(f"--budget must be a positive number of evaluations, got {args.budget}")
    defaults = {**default_methods(), **(image_methods() if args.dataset == "digits" else {})}
    methods = {METHOD_NAMES[name]: defaults[name] for name in names}
    if args.budget is not None:  # every setting is checked before the first (long) fit
        methods = {label: _within_budget(label, method, args.budget) for label, method in methods.items()}
    _check_writable(args.out)
    data = makers[args.dataset](seed=args.seed)
    model = build_model(data)
    if args.budget is not None:
        for label, method in methods.items():
            _budget_fits(label, method, model, args.budget)
    classifier = is_classifier(model)
    reference, why = stored_reference(args.dataset, args.seed) if args.reference else (None, "--no-reference")
    print(
        f"approxpost {ap.__version__}: {len(methods)} methods on {data.name} ({len(data.x)} points, D={model.dim}), seed {args.seed}"
    )
    print(f"distances to a reference: {'yes, ' if reference is not None else 'no, '}{why}")
    start = time.perf_counter()
    ood = getattr(data, "x_ood", None) if classifier else None  # data sets that come with out-of-distribution inputs
    result = ap.compare(
        model,
        methods,
        test=(data.x_test, data.y_test),
        seed=args.seed,
        budget=None,  # already applied above, where a too-small budget is a usage error
        progress=not args.quiet,
        gap=None if classifier else data.gap,
        ood=ood,
        reference=reference,
    )
    table = result.to_markdown()
    print(table)
    with open(os.path.join(args.out, "table.md"), "w") as handle:
        against = f" Distances to the {why}." if reference is not None else ""
        handle.write(
            f"Dataset `{data.name}`, seed {args.seed}, budget {args.budget or 'default'}.{against}\n\n{table}\n"
        )
    if classifier:
        figures = {"reliability.png": plot.reliability(result, data)}
        if data.x.ndim == 2 and data.x.shape[1] == 2:
            figures["decision_surface.png"] = plot.decision_surface(result, data, quantity="probability")
            figures["entropy.png"] = plot.decision_surface(result, data, quantity="entropy")
    else:
        figures = {"bands.png": plot.bands(result, data)}
    # each point of the gradient-variance curves is 50 full-data passes: minutes on the digits CNN, so images skip it
    if data.x.ndim == 2:
        q = None
        if "BBB" in result.posteriors:
            bbb = result.posteriors["BBB"]
            q = ap.distributions.MeanFieldNormal.from_std(bbb.mean, bbb.std)
        curves = gradient_variance_curves(model, q=q, n_repeats=50, seed=args.seed)
        figures["grad_variance.png"] = plot.grad_variance(curves)
    for name, figure in figures.items():
        figure.savefig(os.path.join(args.out, name), dpi=110)
        pyplot.close(figure)  # written: free it, so repeated runs in one process (the tests) don't pile figures up
    print(f"wrote table.md, {', '.join(figures)} to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


# --- approxpost active ------------------------------------------------------------

ACTIVE_DATASETS = ("digits", "moons")
REPORT_LABELS = (50, 100, 200, 400)


def _add_active_parser(commands) -> None:
    active = commands.add_parser("active", help="active learning: acquisition functions against random labelling")
    active.add_argument("--dataset", default="digits", help="digits or moons (default: digits)")
    active.add_argument("--method", default="mc_dropout", help="mc_dropout, ensemble, bbb, laplace or map")
    active.add_argument(
        "--acquisitions",
        default="bald,max_entropy,variation_ratio,random",
        help="comma list of: bald, max_entropy, variation_ratio, mean_std, random",
    )
    active.add_argument("--seeds", type=int, default=3, help="runs per acquisition, seeds 0..N-1 (default: 3)")
    active.add_argument("--pool", type=int, default=1000, help="pool size; the rest of the data is the test set")
    active.add_argument("--n-initial", type=int, default=50, help="first labelled set, class-balanced (default: 50)")
    active.add_argument("--batch-size", type=int, default=25, help="labels acquired per round (default: 25)")
    active.add_argument("--max-labels", type=int, default=400, help="stop at this many labels (default: 400)")
    active.add_argument("--steps", type=int, default=300, help="Adam steps per refit (default: 300)")
    active.add_argument("--samples", type=int, default=20, help="θ draws per predictive (ensemble: its members)")
    active.add_argument("--target", type=float, default=0.9, help="accuracy whose label count is reported")
    active.add_argument("--out", default="results", help="folder for active_table.md and active_curves.png")
    active.add_argument("--quiet", action="store_true", help="no progress bars")


def _active_problem(name: str, n_pool: int) -> tuple:
    """(pool, test, make_model): digits flattened to 64 pixels for an MLP, or two moons."""
    import approxpost as ap

    if name == "digits":
        data = ap.datasets.digits(n_train=n_pool, seed=0)
        pool = (data.x.reshape(len(data.x), -1), data.y)
        test = (data.x_test.reshape(len(data.x_test), -1), data.y_test)
        sizes = [64, 50, 10]
    else:
        train, held_out = ap.datasets.two_moons(n=n_pool, seed=0), ap.datasets.two_moons(n=500, seed=1)
        pool, test, sizes = (train.x, train.y), (held_out.x, held_out.y), [2, 20, 2]

    def make_model(x, y):
        return ap.models.Classification(ap.nn.MLP(sizes, activation="relu"), x, y, prior_std=1.0)

    return pool, test, make_model


def _check_active_args(args) -> tuple:
    from .active import ACQUISITIONS

    if args.dataset not in ACTIVE_DATASETS:
        raise _UsageError(f"unknown dataset {args.dataset!r}; valid: {', '.join(ACTIVE_DATASETS)}")
    methods = active_methods(max(args.steps, 1))
    if args.method not in methods:
        raise _UsageError(f"unknown method {args.method!r}; valid: {', '.join(methods)}")
    acquisitions = [name.strip() for name in args.acquisitions.split(",") if name.strip()]
    unknown = [name for name in acquisitions if name not in ACQUISITIONS]
    if unknown or not acquisitions:
        raise _UsageError(
            f"unknown acquisition {', '.join(map(repr, unknown)) or repr(args.acquisitions)}; valid: {', '.join(ACQUISITIONS)}"
        )
    spread = [name for name in acquisitions if name in ("bald", "variation_ratio", "mean_std")]
    if args.method == "map" and spread:
        raise _UsageError(
            f"acquisition={spread[0]!r} is 0 at every point for MAP (one θ: its draws cannot disagree); "
            "use max_entropy (the softmax entropy) or random"
        )
    for flag, value in [("--seeds", args.seeds), ("--pool", args.pool), ("--n-initial", args.n_initial)]:
        if value < 1:
            raise _UsageError(f"{flag} must be a positive integer, got {value}")
    for flag, value in [("--batch-size", args.batch_size), ("--steps", args.steps), ("--samples", args.samples)]:
        if value < 1:
            raise _UsageError(f"{flag} must be a positive integer, got {value}")
    if not 0 < args.target <= 1:
        raise _UsageError(f"--target must be an accuracy in (0, 1], got {args.target}")
    if args.dataset == "digits" and args.pool >= 1797:
        raise _UsageError(f"--pool {args.pool} leaves no test set: digits has 1797 images; use at most 1796")
    if args.max_labels > args.pool or args.max_labels < args.n_initial + args.batch_size:
        raise _UsageError(
            f"--max-labels {args.max_labels} must lie between --n-initial + --batch-size "
            f"({args.n_initial + args.batch_size}) and --pool ({args.pool})"
        )
    n_rounds = (args.max_labels - args.n_initial) // args.batch_size
    return methods[args.method], acquisitions, n_rounds


def run_active(args) -> int:
    """The body of ``approxpost active``: every acquisition × seed, a figure and a markdown table."""
    method, acquisitions, n_rounds = _check_active_args(args)  # before matplotlib loads: mistakes fail fast
    _check_writable(args.out)
    import matplotlib

    matplotlib.use("Agg")
    import approxpost as ap
    from approxpost import plot

    pool, test, make_model = _active_problem(args.dataset, args.pool)
    label = METHOD_NAMES[args.method]
    print(
        f"approxpost {ap.__version__}: active learning on {args.dataset} with {label}: pool {len(pool[1])}, "
        f"test {len(test[1])}, {args.n_initial} + {n_rounds} × {args.batch_size} labels, {args.seeds} seeds"
    )
    start = time.perf_counter()
    n_samples = None if args.method in ("ensemble", "map") else args.samples
    curves = {}
    for name in acquisitions:
        curves[name] = [
            ap.active.learn(
                make_model,
                method,
                pool=pool,
                test=test,
                acquisition=name,
                n_initial=args.n_initial,
                n_rounds=n_rounds,
                batch_size=args.batch_size,
                seed=seed,
                n_samples=n_samples,
                progress=not args.quiet,
            )
            for seed in range(args.seeds)
        ]
    seconds = time.perf_counter() - start
    table = ap.active.summary_table(curves, at=REPORT_LABELS, target=args.target)
    print(table)
    with open(os.path.join(args.out, "active_table.md"), "w") as handle:
        handle.write(
            f"Active learning on `{args.dataset}` with {label} ({args.steps} Adam steps a refit), "
            f"pool {len(pool[1])}, test {len(test[1])}, {args.n_initial} initial labels + {args.batch_size} a round, "
            f"{args.seeds} seeds; test accuracy mean ± sd over seeds. {seconds:.0f} s.\n\n{table}\n"
        )
    figure = plot.learning_curves(curves, target=args.target)
    figure.axes[0].set_title(f"{args.dataset}, {label}: mean ± sd over {args.seeds} seeds")
    figure.savefig(os.path.join(args.out, "active_curves.png"), dpi=110)
    print(f"wrote active_table.md, active_curves.png to {args.out} in {seconds:.1f} s")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``approxpost`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return run_compare(args)
        if args.command == "active":
            return run_active(args)
    except _UsageError as error:
        print(f"approxpost: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. the disk filled up or --out vanished while writing
        print(f"approxpost: error: cannot write to --out {args.out!r}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
