"""Produce the stored reference posteriors: long, many-chain NUTS on the built-in problems.

::

    python scripts/make_references.py gap blundell --chains 16 --warmup 1000 --samples 1000 --thin 4

For each problem: the default model (:func:`approxpost.cli.build_model`) on
the data set with ``--seed``, ``NUTS`` with the given settings, then R-hat
and bulk ESS of the predictive at every test input, computed on all the kept
draws (before thinning): of the network output f(x_test) for a regression, of
the class probability p(y = 1 | x_test, θ) for the two moons
(:func:`approxpost.references.function_diagnostics`). A reference is written to
``approxpost/reference_data/<name>.npz`` only if it has converged: R-hat ≤
1.01 and ESS ≥ 400 at every test input (``--allow-unconverged`` writes it
anyway, for exploration, and says so in its metadata). The draws are thinned
by ``--thin`` and stored as float32 to keep the package small.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import approxpost as ap
from approxpost.cli import build_model, dataset_makers
from approxpost.references import REFERENCE_DIR, function_diagnostics, save_reference

RHAT_MAX, ESS_MIN = 1.01, 400.0
# the built-in problems a full-batch NUTS can afford (the digits CNN, D = 6058, cannot)
REFERENCE_PROBLEMS = ("gap", "blundell", "moons")


def make(name: str, args) -> bool:
    data = dataset_makers()[name](seed=args.seed)
    model = build_model(data)
    method = ap.NUTS(
        n_samples=args.samples,
        n_warmup=args.warmup,
        n_chains=args.chains,
        max_tree_depth=args.max_tree_depth,
        target_accept=args.target_accept,
    )
    start = time.perf_counter()
    post = method.fit(model, seed=args.seed, progress=not args.quiet)
    f_rhat, f_ess = function_diagnostics(model, post.draws, data.x_test)
    judged = "p(y=1 | x_test)" if data.name == "moons" else "f(x_test)"
    converged = bool(f_rhat.max() <= RHAT_MAX and f_ess.min() >= ESS_MIN)
    scalars = {k: v for k, v in post.diagnostics.items() if not isinstance(v, np.ndarray)}
    print(
        f"{name}: D={model.dim}, {time.perf_counter() - start:.0f} s, {post.cost.grad_evals} gradients; "
        f"{judged}: R-hat max {f_rhat.max():.4f} (at test input {int(f_rhat.argmax())}), "
        f"bulk ESS min {f_ess.min():.0f}; "
        f"θ: R-hat max {post.diagnostics['rhat'].max():.3f}; {scalars}"
    )
    if not converged and not args.allow_unconverged:
        print(
            f"{name}: not converged (needs R-hat <= {RHAT_MAX} and ESS >= {ESS_MIN} at every test input); not written"
        )
        return False
    settings = {**post.settings, "dataset": name, "seed": args.seed, "thin": args.thin, "stored_dtype": "float32"}
    metadata = {
        "settings": settings,
        "diagnostics": {
            **scalars,
            "converged": converged,
            "criterion": f"R-hat of {judged} <= {RHAT_MAX} and bulk ESS >= {ESS_MIN} at every test input",
            # weights never mix across a network's symmetries: reported, not judged
            "theta_rhat_max": float(post.diagnostics["rhat"].max()),
            "n_kept_draws": int(post.draws.shape[0] * post.draws.shape[1]),
        },
        "cost": dict(post.cost._asdict()),
        "approxpost_version": ap.__version__,
    }
    REFERENCE_DIR.mkdir(exist_ok=True)
    path = REFERENCE_DIR / f"{name}.npz"
    save_reference(path, post.draws[:, :: args.thin], f_rhat, f_ess, metadata)
    print(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=list(REFERENCE_PROBLEMS))
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--max-tree-depth", type=int, default=10)
    parser.add_argument("--target-accept", type=float, default=0.8)
    parser.add_argument("--thin", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-unconverged", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    ok = [make(name, args) for name in args.names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
