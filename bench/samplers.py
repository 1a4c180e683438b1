"""Benchmark: library HMC vs a hand-written NumPy HMC loop, gradient throughput and ESS per second.

Models: ``Regression(MLP([1, 50, 1]))`` on ``gap_regression(n=40)`` (D = 151)
and ``Regression(MLP([1, 50, 50, 1]))`` on N = 100 points (D = 2701), tanh.
For 1 and 8 chains, these runs do the same HMC (fixed step size from a
short adaptive run, the same L, no jitter, identity mass, the same starting
points and random numbers):

- ``ap fit``: ``HMC(...).fit`` (autodiff gradient on the replayed tape, the
  shared ``fit`` driver, stacking the history and building the
  ``SamplePosterior``, whose ESS and R-hat of every coordinate wait until
  its ``diagnostics`` are read, which these runs do not); ``ap fit plain``
  the same on the plain graph (``replay_graph = False``);
- ``ap fit hand∇``: ``HMC(...).fit`` on the same model with the hand-fused
  gradient plugged in (isolates the sampler's and the driver's overhead);
- ``ap fit bare∇``: the same with the bare calls plugged in (the NumPy calls
  the replayed tape makes, with no engine around them: ``reference.bare_mlp``,
  the same chains bit for bit as ``ap fit``), the ceiling ``ap fit`` could
  reach if the engine's Python overhead were nil;
- ``ap step``: the library's ``HMC.init`` and ``HMC.step`` in a loop (the
  sampler alone, as a student steps through it);
- ``hand+ad``: the hand-written loop below calling ``model.log_joint_and_grad``
  (isolates the cost of the library's gradient);
- ``hand``: the hand-written loop with a hand-fused forward/backward pass
  (the NumPy floor).

So the gap to the hand loop splits into the gradient's share (``hand+ad``)
and the sampler's (``ap fit hand∇``); ``ap fit`` pays both, and ``ap fit
bare∇`` ≈ ``ap fit hand∇`` × (hand gradient / bare gradient) is what remains
of it without the engine's Python overhead.

Before timing, all runs are checked to produce the same chains. Reported:
gradient evaluations per second, ``speed`` (grad/s over the hand loop's: the
issue's measure, 1 is the floor), its inverse ``ratio`` (time per gradient
over the hand loop's), the vectorisation gain (8 chains vs 1) and the bulk
ESS of the log joint per second (the same chains in every run, so ESS/s
differs only by speed). Times are the medians of ``--repeats`` interleaved
runs (the machine is shared) on ``--clock``: ``cpu`` (default) is the
process's CPU time, which leaves out the time it waited for a core while
other jobs ran (run with ``OPENBLAS_NUM_THREADS=1`` so it is one thread's);
``wall`` is elapsed time. ``--overhead`` adds the microseconds the sampler
itself costs, timed on a near-free gradient; ``--instructions`` counts them
instead (valgrind's callgrind, deterministic where times are noisy; ~12
minutes, nothing else is run). Run: ``python bench/samplers.py``
(a few minutes; ``--iterations`` to change the length, ``--models gap`` or
``deep`` for one model, ``--chains 1`` for one chain).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
from reference import bare_mlp, deep_regression, hand_log_joint_and_grad

import approxpost as ap
from approxpost.diagnostics import ess
from approxpost.methods.hmc import HMC


def make_models() -> dict:
    data = ap.datasets.gap_regression(n=40, seed=0)
    small = ap.models.Regression(ap.nn.MLP([1, 50, 1]), data.x, data.y, noise_std=data.noise_std, prior_std=1.0)
    deep = deep_regression(n=100, seed=0)
    return {"MLP[1,50,1] gap N=40": small, "MLP[1,50,50,1] N=100": deep}


# --- the hand-written reference (its gradient: reference.hand_log_joint_and_grad) ---


def hand_hmc(log_joint_and_grad, position, step_size, n_leapfrog, n_iterations, seed):
    """Plain HMC, identity mass, fixed ε and L, batched over chains; returns the log joint (iterations, chains)."""
    rng = np.random.default_rng(seed)
    log_joint, grad = log_joint_and_grad(position)
    trace = np.empty((n_iterations, position.shape[0]))
    for t in range(n_iterations):
        p = rng.standard_normal(position.shape)
        h0 = 0.5 * np.sum(p * p, axis=1) - log_joint
        q, p = position, p + 0.5 * step_size * grad
        for i in range(n_leapfrog):
            q = q + step_size * p
            new_log_joint, new_grad = log_joint_and_grad(q)
            p = p + (step_size if i < n_leapfrog - 1 else 0.5 * step_size) * new_grad
        h1 = 0.5 * np.sum(p * p, axis=1) - new_log_joint
        accepted = np.log(rng.random(position.shape[0])) < h0 - h1
        position = np.where(accepted[:, None], q, position)
        log_joint = np.where(accepted, new_log_joint, log_joint)
        grad = np.where(accepted[:, None], new_grad, grad)
        trace[t] = log_joint
    return trace


class HandFused(ap.models.Regression):
    """The same regression with the hand-fused gradient (tanh MLP): plugged into ``HMC.fit``, only the sampler is ours."""

    replay_graph = False

    def log_joint_and_grad(self, theta, idx=None):
        value, grad = hand_log_joint_and_grad(self, np.atleast_2d(theta))
        return (float(value[0]), grad[0]) if np.ndim(theta) == 1 else (value, grad)


def hand_fused(model) -> HandFused:
    return HandFused(model.net, model.x, model.y, noise_std=model.noise_std, prior_std=model.prior_std)


class BareCalls(ap.models.Regression):
    """The same regression whose gradient is the tape's NumPy calls without the tape (one per θ shape)."""

    replay_graph = False

    def log_joint_and_grad(self, theta, idx=None):
        calls = self.__dict__.setdefault("_bare", {})
        shape = np.shape(theta)
        if shape not in calls:
            calls[shape] = bare_mlp(self, shape)
        return calls[shape](theta)


def bare_calls(model) -> BareCalls:
    return BareCalls(model.net, model.x, model.y, noise_std=model.noise_std, prior_std=model.prior_std)


# --- the runs -------------------------------------------------------------------


def fixed_hmc(start, step_size, n_leapfrog, n_iterations) -> HMC:
    return HMC(
        step_size=step_size,
        n_leapfrog=n_leapfrog,
        n_samples=n_iterations,
        n_warmup=0,
        n_chains=start.shape[0],
        adapt_step_size=False,
        step_size_jitter=0.0,
    )


def library_fit(model, start, step_size, n_leapfrog, n_iterations, seed):
    """The whole ``fit``; returns the log joint (iterations, chains)."""
    method = fixed_hmc(start, step_size, n_leapfrog, n_iterations)
    return method.fit(model, seed=seed, init=start).history["log_joint"]


def library_fit_plain(model, start, step_size, n_leapfrog, n_iterations, seed):
    """``library_fit`` with the graph rebuilt on every call (``replay_graph`` off for this instance)."""
    model.replay_graph = False
    try:
        return library_fit(model, start, step_size, n_leapfrog, n_iterations, seed)
    finally:
        del model.replay_graph


def library_steps(model, start, step_size, n_leapfrog, n_iterations, seed):
    """``HMC.init`` then ``HMC.step`` in a loop; returns the log joint (iterations, chains)."""
    method = fixed_hmc(start, step_size, n_leapfrog, n_iterations)
    rng = np.random.default_rng(seed)
    state = method.init(model, start, rng)
    trace = np.empty((n_iterations, start.shape[0]))
    for t in range(n_iterations):
        state, info = method.step(model, state, rng)
        trace[t] = info.log_joint
    return trace


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, clock=time.process_time):
    start = clock()
    out = fn()
    return out, clock() - start


def warm_start(model, n_leapfrog, n_chains, seed=0):
    """A short adaptive run: the step size ε̄ and each chain's last draw."""
    post = HMC(n_leapfrog=n_leapfrog, n_samples=4, n_warmup=150, n_chains=n_chains).fit(model, seed=seed)
    return post.history["step_size"][-1], post.draws[:, -1]


def check_agreement(model, start, step_size, n_leapfrog):
    theta = start[:2]
    lj_ad, g_ad = model.log_joint_and_grad(theta)
    lj_hand, g_hand = hand_log_joint_and_grad(model, theta)
    assert np.allclose(lj_ad, lj_hand, rtol=1e-10) and np.allclose(g_ad, g_hand, rtol=1e-8, atol=1e-8), (
        "hand gradient is wrong"
    )
    traces = [
        library_fit(model, start, step_size, n_leapfrog, 5, seed=1),
        library_fit_plain(model, start, step_size, n_leapfrog, 5, seed=1),
        library_fit(hand_fused(model), start, step_size, n_leapfrog, 5, seed=1),
        library_fit(bare_calls(model), start, step_size, n_leapfrog, 5, seed=1),
        library_steps(model, start, step_size, n_leapfrog, 5, seed=1),
        hand_hmc(model.log_joint_and_grad, start, step_size, n_leapfrog, 5, seed=1),
        hand_hmc(lambda t: hand_log_joint_and_grad(model, t), start, step_size, n_leapfrog, 5, seed=1),
    ]
    assert all(np.allclose(traces[0], t, rtol=1e-8) for t in traces[2:]), "the samplers disagree"
    assert np.array_equal(traces[0], traces[1]), "the tape and the plain graph disagree"
    assert np.array_equal(traces[0], traces[3]), "the bare calls and the tape disagree"
    assert np.array_equal(traces[2], traces[-1]), "the library's HMC and the hand loop disagree on the same gradient"


class StandardGaussian(ap.models.Model):
    """N(0, I) in D = 151 with a gradient that costs ~1 µs: what the sampler adds to the hand loop shows bare."""

    dim = 151

    def log_prior(self, theta):
        return -0.5 * ap.autodiff.sum_squares(theta, axis=-1)

    def log_likelihood(self, theta, idx=None):
        return 0.0 * ap.autodiff.sum(theta, axis=-1)

    def log_joint_and_grad(self, theta, idx=None):
        return -0.5 * np.sum(theta * theta, axis=-1), -theta


def overhead(clock, repeats: int, n_iterations: int = 2000) -> None:
    """µs an iteration that ``fit`` and ``step`` add to the hand loop, at L = 1 and 20, on a near-free gradient.

    The difference between the two L splits it into a per-iteration and a per-leapfrog part; fit's
    includes stacking the history and building the ``SamplePosterior`` (not its ESS and R-hat, computed
    when its diagnostics are first read).
    """
    model = StandardGaussian()
    start = np.random.default_rng(0).standard_normal((1, model.dim))
    extra = {}
    for n_leapfrog in (1, 20):
        runs = {
            "ap fit": lambda: library_fit(model, start, 0.1, n_leapfrog, n_iterations, seed=2),
            "ap step": lambda: library_steps(model, start, 0.1, n_leapfrog, n_iterations, seed=2),
            "hand": lambda: hand_hmc(model.log_joint_and_grad, start, 0.1, n_leapfrog, n_iterations, seed=2),
        }
        times = {label: [] for label in runs}
        for _ in range(repeats):
            for label, run in runs.items():
                times[label].append(timed(run, clock)[1] / n_iterations)
        best = {label: statistics.median(t) for label, t in times.items()}
        for label in ("ap fit", "ap step"):
            extra[label, n_leapfrog] = (best[label] - best["hand"]) * 1e6
    print(f"\nsampler overhead beyond the hand loop, N(0, I) in D = 151, one chain, {n_iterations} iterations (µs)")
    print(f"{'sampler':<8} {'L = 1':>8} {'L = 20':>8} {'per leapfrog':>13} {'per iteration':>14}")
    for label in ("ap fit", "ap step"):
        per_leapfrog = (extra[label, 20] - extra[label, 1]) / 19
        print(
            f"{label:<8} {extra[label, 1]:>8.1f} {extra[label, 20]:>8.1f} {per_leapfrog:>13.2f} "
            f"{extra[label, 1] - per_leapfrog:>14.1f}"
        )


def one_run(mode: str, n_leapfrog: int, n_iterations: int) -> None:
    """One run of ``hand``, ``step`` or ``fit`` on the near-free gradient, one chain (what ``instructions`` counts)."""
    model = StandardGaussian()
    start = np.random.default_rng(0).standard_normal((1, model.dim))
    runs = {
        "hand": lambda n: hand_hmc(model.log_joint_and_grad, start, 0.1, n_leapfrog, n, seed=2),
        "step": lambda n: library_steps(model, start, 0.1, n_leapfrog, n, seed=2),
        "fit": lambda n: library_fit(model, start, 0.1, n_leapfrog, n, seed=2),
    }
    runs[mode](5)  # first calls (lazy imports, caches) before the run whose length varies
    runs[mode](n_iterations)


def instructions(sizes=(50, 250)) -> None:
    """Instructions an iteration of ``one_run`` (callgrind totals at two lengths, differenced: start-up cancels)."""
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")  # the same hashes, one thread: the same count
    per_iteration = {}
    for n_leapfrog in (1, 20):
        for mode in ("hand", "step", "fit"):
            totals = []
            for n in sizes:
                command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
                command += [__file__, "--one-run", mode, str(n_leapfrog), str(n)]
                log = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stderr
                totals.append(int(re.search(r"Collected : (\d+)", log).group(1)))
            per_iteration[mode, n_leapfrog] = (totals[1] - totals[0]) / (sizes[1] - sizes[0])
    print(f"instructions an iteration (callgrind), N(0, I) in D = 151, one chain, {sizes[1]} - {sizes[0]} iterations")
    print(f"{'run':<6} {'L = 1':>9} {'L = 20':>10} {'- hand, L = 1':>14} {'- hand, L = 20':>15}")
    for mode in ("hand", "step", "fit"):
        one, twenty = per_iteration[mode, 1], per_iteration[mode, 20]
        print(
            f"{mode:<6} {one:>9.0f} {twenty:>10.0f} {one - per_iteration['hand', 1]:>14.0f} "
            f"{twenty - per_iteration['hand', 20]:>15.0f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="HMC iterations per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the median counts")
    parser.add_argument("--n-leapfrog", type=int, default=20)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what a run's time is (default: cpu)")
    parser.add_argument(
        "--models", choices=("all", "gap", "deep"), default="all", help="gap (D = 151) or deep (D = 2701) only"
    )
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 8], help="numbers of chains (default: 1 8)")
    parser.add_argument("--overhead", action="store_true", help="also time the sampler alone on a near-free gradient")
    parser.add_argument("--instructions", action="store_true", help="count the sampler's instructions (valgrind)")
    parser.add_argument("--one-run", nargs=3, metavar=("MODE", "L", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_run:
        one_run(args.one_run[0], int(args.one_run[1]), int(args.one_run[2]))
        return
    if args.instructions:
        instructions()
        return
    n_leapfrog, n_iter, clock = args.n_leapfrog, args.iterations, CLOCKS[args.clock]
    rows = []
    models = make_models()
    if args.models != "all":
        models = dict([list(models.items())[0 if args.models == "gap" else 1]])
    for name, model in models.items():
        step_size, starts = warm_start(model, n_leapfrog, n_chains=max(args.chains))
        check_agreement(model, starts, step_size, n_leapfrog)
        hand_model, bare_model = hand_fused(model), bare_calls(model)
        for n_chains in args.chains:
            start = starts[:n_chains]
            runs = {
                "ap fit": lambda: library_fit(model, start, step_size, n_leapfrog, n_iter, seed=2),
                "ap fit plain": lambda: library_fit_plain(model, start, step_size, n_leapfrog, n_iter, seed=2),
                "ap fit hand∇": lambda: library_fit(hand_model, start, step_size, n_leapfrog, n_iter, seed=2),
                "ap fit bare∇": lambda: library_fit(bare_model, start, step_size, n_leapfrog, n_iter, seed=2),
                "ap step": lambda: library_steps(model, start, step_size, n_leapfrog, n_iter, seed=2),
                "hand+ad": lambda: hand_hmc(model.log_joint_and_grad, start, step_size, n_leapfrog, n_iter, seed=2),
                "hand": lambda: hand_hmc(
                    lambda t: hand_log_joint_and_grad(model, t), start, step_size, n_leapfrog, n_iter, seed=2
                ),
            }
            grads = n_chains * n_leapfrog * n_iter
            times = {label: [] for label in runs}
            for _ in range(args.repeats):  # interleaved, so load from elsewhere hits all alike
                for label, run in runs.items():
                    trace, seconds = timed(run, clock)
                    times[label].append(seconds)
            best = {label: statistics.median(t) for label, t in times.items()}
            # every run draws the same chains, so one ESS serves them all
            chain_ess = float(ess(trace.T))
            for label, seconds in best.items():
                rows.append(
                    (name, model.dim, n_chains, label, grads / seconds, chain_ess / seconds, seconds, step_size)
                )
    report(rows, args)
    if args.overhead:
        overhead(clock, args.repeats)


def report(rows, args) -> None:
    print(
        f"HMC, L = {args.n_leapfrog} fixed, {args.iterations} iterations, ε from a short adaptive run, identity mass, "
        f"float64; medians of {args.repeats} interleaved runs, {args.clock} time"
    )
    print(
        "speed = grad/s / the hand loop's; ratio = its inverse (time per gradient / the hand loop's); "
        "x8 gain = grad/s with 8 chains / with 1; ESS/s: bulk ESS of log p(θ, D)"
    )
    print(
        f"{'model':<22} {'D':>5} {'chains':>6} {'sampler':<12} {'grad/s':>9} {'speed':>6} {'ratio':>6} "
        f"{'x8 gain':>7} {'ESS/s':>8} {'ε':>7}"
    )
    lookup = {(r[0], r[2], r[3]): r for r in rows}
    for name, dim, chains, label, rate, ess_rate, _, eps in rows:
        ratio = lookup[(name, chains, "hand")][4] / rate
        one_chain = lookup.get((name, 1, label))
        gain = f"{rate / one_chain[4]:>7.2f}" if chains == 8 and one_chain else f"{'':>7}"
        print(
            f"{name:<22} {dim:>5} {chains:>6} {label:<12} {rate:>9.0f} {1 / ratio:>6.2f} {ratio:>6.2f} {gain} "
            f"{ess_rate:>8.1f} {eps:>7.4f}"
        )


if __name__ == "__main__":
    main()
