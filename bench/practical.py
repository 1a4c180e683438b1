"""Accuracy figures of the practical approximations (issue 11's closing note), measured on the final code.

1. Laplace (full, diag, GGN) against the conjugate ``LinearRegression``: the
   largest absolute errors of the mean, the covariance (for "diag": of the
   std, against 1/√diag(Λ), the diagonal precision it is exact for) and the
   log evidence; and ``optimize_prior=True``'s prior std against the
   maximiser of the exact evidence found by scipy (a root of its derivative
   in log ``prior_std``), on the two conjugate models of the tests.
2. SGLD's step-size bias on the conjugate straight-line fit, full batch, at
   three step sizes: the mean error in MCSE units, the std error in %, and
   the std predicted for full-batch SGLD on a Gaussian (Σ = AΣAᵀ + εI).
3. Every method's mean predictive std on the data and in the gap, on the
   ``gap`` problem with the CLI's default settings (``approxpost compare
   --dataset gap --methods every --seed 0``; ``--skip-gap`` skips it).

Run: ``python bench/practical.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import linalg, optimize

import approxpost as ap
from approxpost.diagnostics import mcse


def _linear_problems() -> dict:
    """The two conjugate models of the tests: ``test_laplace``'s (D = 2) and conftest's ``linear`` (D = 3)."""
    data = ap.datasets.linear(n=20, noise_std=0.5, seed=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2))
    y = x @ np.array([1.0, -2.0]) + 0.5 + rng.standard_normal(20)
    return {"linear(n=20, seed=3)": (data.x, data.y, 0.5), "conftest linear": (x, y, 1.0)}


def _evidence_maximiser(x, y, noise_std) -> float:
    """argmax_s of the exact log evidence, as the root of its derivative in log s (central differences)."""

    def log_evidence(log_s):
        return ap.models.LinearRegression(x, y, noise_std=noise_std, prior_std=float(np.exp(log_s))).log_evidence()

    def slope(log_s, h=1e-5):
        return (log_evidence(log_s + h) - log_evidence(log_s - h)) / (2 * h)

    return float(np.exp(optimize.brentq(slope, -5.0, 5.0, xtol=1e-14)))


def laplace_table() -> None:
    for label, (x, y, noise_std) in _linear_problems().items():
        lin = ap.models.LinearRegression(x, y, noise_std=noise_std, prior_std=1.0)
        exact = lin.exact_posterior()
        print(f"\nLaplace vs exact on LinearRegression {label} (D = {lin.dim}, N = {lin.n_data}), default settings")
        print("| hessian | max abs err mean | max abs err cov (diag: std) | abs err log evidence |")
        print("|---|---:|---:|---:|")
        for kind in ("full", "diag", "ggn"):
            post = ap.Laplace(hessian=kind).fit(lin, seed=0)
            if kind == "diag":  # exact for the diagonal precision: std 1/√Λ_ii, its own evidence
                diag_std = 1.0 / np.sqrt(np.diag(lin.posterior_precision()))
                spread = np.max(np.abs(post.std - diag_std))
                evidence = lin.log_joint(exact.mean) + 0.5 * lin.dim * np.log(2 * np.pi) + np.sum(np.log(diag_std))
            else:
                spread, evidence = np.max(np.abs(post.cov - exact.cov)), lin.log_evidence()
            err_mean = np.max(np.abs(post.mean - exact.mean))
            err_evidence = abs(post.diagnostics["log_evidence"] - evidence)
            print(f"| {kind} | {err_mean:.2e} | {spread:.2e} | {err_evidence:.2e} |")
        best = _evidence_maximiser(x, y, noise_std)
        print(f"scipy (brentq on d log p(D) / d log s): prior std {best:.12f}")
        for kind in ("full", "ggn"):
            tuned = ap.Laplace(hessian=kind, optimize_prior=True).fit(lin, seed=0).diagnostics["prior_std"]
            print(
                f"optimize_prior, {kind}: prior std {tuned:.12f} (relative difference {abs(tuned - best) / best:.1e})"
            )


def sgld_table() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = 0.5 * x + 0.3 + 0.5 * rng.standard_normal(30)
    line = ap.models.LinearRegression(x, y, noise_std=0.5, prior_std=1.0)  # tests/conftest.py's `line`
    exact = line.exact_posterior()
    print("\nSGLD full batch on the conjugate line (D = 2, N = 30), 4 chains × 10,000 draws, 500 warm-up, seed 0")
    print("| step size | mean error / MCSE (slope, intercept) | std error % | predicted std error % |")
    print("|---:|---:|---:|---:|")
    for step_size in (1e-3, 1e-2, 2e-2):
        post = ap.SGLD(step_size=step_size, n_samples=10_000, n_warmup=500, n_chains=4).fit(line, seed=0)
        a = np.eye(line.dim) - 0.5 * step_size * line.posterior_precision()
        predicted = np.sqrt(np.diag(linalg.solve_discrete_lyapunov(a, step_size * np.eye(line.dim))))
        z = (post.mean - exact.mean) / mcse(post.draws)
        pct = 100 * (post.std / exact.std - 1)
        pred_pct = 100 * (predicted / exact.std - 1)
        print(
            f"| {step_size:g} | {z[0]:+.2f}, {z[1]:+.2f} | {pct[0]:+.1f}, {pct[1]:+.1f} | "
            f"{pred_pct[0]:+.1f}, {pred_pct[1]:+.1f} |"
        )


def gap_table() -> None:
    from approxpost.cli import build_model, default_methods

    data = ap.datasets.gap_regression(n=40, seed=0)
    model = build_model(data)
    start = time.perf_counter()
    cmp = ap.compare(model, default_methods(), test=(data.x_test, data.y_test), gap=data.gap, seed=0)
    print(f"\ngap, every method at the CLI's default settings, seed 0 ({time.perf_counter() - start:.0f} s)")
    print("| method | std on data | std in gap | gap / data | seconds |\n|---|---:|---:|---:|---:|")
    for name, row in cmp.table.items():
        ratio = row["std_gap"] / row["std_data"]
        print(f"| {name} | {row['std_data']:.3f} | {row['std_gap']:.3f} | {ratio:.2f} | {row['seconds']:.1f} |")
    reference = ap.references.load("gap")  # the stored long NUTS run: the truth the table is read against
    inside = (data.x_test[:, 0] > data.gap[0]) & (data.x_test[:, 0] < data.gap[1])
    on_data = float(np.mean(reference.predict(data.x, seed=0).std))
    in_gap = float(np.mean(reference.predict(data.x_test, seed=0).std[inside]))
    print(f"| stored NUTS reference | {on_data:.3f} | {in_gap:.3f} | {in_gap / on_data:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-gap", action="store_true", help="skip the (slow) gap table")
    args = parser.parse_args()
    laplace_table()
    sgld_table()
    if not args.skip_gap:
        gap_table()


if __name__ == "__main__":
    main()
