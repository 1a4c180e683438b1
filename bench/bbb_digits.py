"""Benchmark: ``ap.BayesByBackprop`` on the digits CNN with each estimator, and ``ap.MAP``, through the public API.

Fits ``nn.CNN()`` (D = 6058) on ``datasets.digits()`` (1000 train, 797 test;
prior N(0, ``--prior-std``²), minibatches of 100) and reports per method: fit seconds (wall
clock, including ``build_posterior``), test accuracy, NLL, top-label ECE (15
bins) of the predictive from 100 draws, and the OOD AUROC of entropy and
mutual information against the shuffled-pixel digits ``x_ood``. Run:
``python bench/bbb_digits.py [--epochs 30] [--init-std 0.01]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import approxpost as ap


def scores(posterior, data, seed: int = 0) -> dict:
    pred = posterior.predict(data.x_test, n_samples=100, seed=seed)
    ood = posterior.predict(data.x_ood, n_samples=100, seed=seed)
    return {
        "acc": ap.metrics.accuracy(pred.probs, data.y_test),
        "nll": ap.metrics.nll(pred.probs, data.y_test),
        "ece": ap.metrics.ece(pred.probs, data.y_test),
        "auroc_H": ap.metrics.auroc(pred.entropy, ood.entropy),
        "auroc_MI": ap.metrics.auroc(pred.mutual_information, ood.mutual_information),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--init-std", type=float, default=None)
    parser.add_argument("--kl-weight", type=float, default=None)
    parser.add_argument("--prior-std", type=float, default=1.0)
    parser.add_argument("--methods", default="MAP,weights,local,flipout")
    args = parser.parse_args(argv)
    data = ap.datasets.digits()
    model = ap.models.Classification(ap.nn.CNN(), data.x, data.y, prior_std=args.prior_std)
    n_steps = args.epochs * (len(data.y) // 100)
    print(
        f"digits CNN D={model.dim}, {len(data.y)} train, {n_steps} steps of 100; init_std={args.init_std}, "
        f"kl_weight={args.kl_weight}, prior_std={args.prior_std}"
    )
    print(f"{'method':>10} {'seconds':>8} {'acc':>6} {'NLL':>6} {'ECE':>6} {'AUROC H':>8} {'AUROC MI':>8} {'med σ':>8}")
    for name in args.methods.split(","):
        if name == "MAP":
            method = ap.MAP(n_steps=n_steps, learning_rate=args.learning_rate, batch_size=100)
        else:
            method = ap.BayesByBackprop(
                n_steps=n_steps,
                learning_rate=args.learning_rate,
                batch_size=100,
                estimator=name,
                init_std=args.init_std,
                kl_weight=args.kl_weight,
            )
        start = time.perf_counter()
        post = method.fit(model, seed=0)
        seconds = time.perf_counter() - start
        s = scores(post, data)
        sigma = float(np.median(post.std)) if hasattr(post, "std") else 0.0
        print(
            f"{name:>10} {seconds:>8.1f} {s['acc']:>6.3f} {s['nll']:>6.3f} {s['ece']:>6.3f} "
            f"{s['auroc_H']:>8.3f} {s['auroc_MI']:>8.3f} {sigma:>8.3g}"
        )


if __name__ == "__main__":
    main()
