"""Benchmark: Bayes by Backprop on the digits CNN with weight sampling, local reparameterisation and Flipout.

Trains q = N(μ, diag softplus(ρ)²) over the weights of ``nn.CNN()`` on the
1000 training digits (prior N(0, 1), minibatches of 100 scaled to the full
data, one noisy pass per step, Adam) and reports, after each of the
``--epochs``, the training seconds so far (wall clock and this process's CPU time,
which a shared machine disturbs less) and the test accuracy, NLL and top-label
ECE (15 bins) of the predictive averaged over 32 draws of the same sampler.
The training loop is written out here on ``weight_noise``, ``optim.Adam``
and ``estimators.normal_kl_grad`` until the classification model lands;
run: ``python bench/bbb_cnn.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import approxpost as ap
from approxpost import autodiff as ad
from approxpost.distributions import Normal
from approxpost.estimators import dsigma_drho, normal_kl_grad
from approxpost.weight_noise import FORWARDS


def softplus(rho):
    return np.maximum(rho, 0.0) + np.log1p(np.exp(-np.abs(rho)))


def scores(probs, y, n_bins: int = 15) -> tuple:
    """Accuracy, mean NLL and top-label ECE of class probabilities (n, K) for labels y."""
    confidence, label = probs.max(axis=1), probs.argmax(axis=1)
    correct = label == y
    nll = -np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-300)))
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = sum(
        np.sum(bins == b) / len(y) * abs(correct[bins == b].mean() - confidence[bins == b].mean())
        for b in range(n_bins)
        if np.any(bins == b)
    )
    return float(correct.mean()), float(nll), float(ece)


def predictive(forward, net, mu, sigma, x, rng, n_draws: int = 32) -> np.ndarray:
    logits = np.asarray(forward(net, mu, sigma, x, rng, n_draws))
    return np.mean(np.exp(logits - ad.logsumexp(logits, axis=-1, keepdims=True)), axis=0)


def train(name, net, data, epochs: int, batch_size: int, learning_rate: float, seed: int):
    forward = FORWARDS[name]
    rng = np.random.default_rng(seed)
    n = len(data.y)
    onehot = np.eye(net.n_outputs)[data.y]
    mu, rho = net.init(rng, 1)[0], np.full(net.dim, np.log(np.expm1(1e-3)))  # σ = 1e-3 at the start
    prior = Normal(np.zeros(net.dim), np.ones(net.dim))
    opt = ap.optim.Adam(learning_rate=learning_rate)
    state = opt.init((mu, rho))
    d = net.dim
    rows = []
    seconds = cpu = 0.0  # training time only: the per-epoch test evaluation is not counted
    for epoch in range(epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        for batch in np.array_split(rng.permutation(n), n // batch_size):
            sigma = softplus(rho)

            def expected_log_lik(lam, batch=batch):
                logits = forward(net, lam[:d], lam[d:], data.x[batch], rng, 1)
                return ad.sum(ad.log_softmax(logits) * onehot[batch]) * (n / len(batch))

            _, g = ad.value_and_grad(expected_log_lik)(np.concatenate([mu, sigma]))
            _, kl_mu, kl_sigma = normal_kl_grad(mu, sigma, prior)
            grad_mu, grad_sigma = g[:d] - kl_mu, g[d:] - kl_sigma
            (mu, rho), state = opt.update((mu, rho), (-grad_mu, -grad_sigma * dsigma_drho(sigma)), state)
        seconds, cpu = seconds + time.perf_counter() - start, cpu + time.process_time() - cpu_start
        probs = predictive(forward, net, mu, softplus(rho), data.x_test, rng)
        rows.append((epoch + 1, seconds, cpu, *scores(probs, data.y_test)))
    return rows, mu, softplus(rho)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--samplers", default="local,flipout,weights")
    args = parser.parse_args(argv)
    data = ap.datasets.digits(n_train=1000, seed=0)
    net = ap.nn.CNN()
    print(f"BBB on CNN() (D={net.dim}), digits: {len(data.y)} train, {len(data.y_test)} test; batch {args.batch_size}")
    for name in args.samplers.split(","):
        rows, _, sigma = train(name, net, data, args.epochs, args.batch_size, args.learning_rate, seed=0)
        print(f"{name}:  epoch  seconds  CPU s  test acc   NLL    ECE")
        for epoch, seconds, cpu, acc, nll, ece in rows:
            if epoch % 5 == 0 or epoch == len(rows):
                print(f"{'':>9}{epoch:>5} {seconds:>8.1f} {cpu:>6.1f} {acc:>9.3f} {nll:>6.3f} {ece:>6.3f}")
        print(f"{'':>9}median σ {np.median(sigma):.3g}")


if __name__ == "__main__":
    main()
