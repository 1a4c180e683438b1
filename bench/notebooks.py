"""Run time of each course notebook, run the way ``tests/test_notebooks.py`` runs it, with the kernel's CPU time.

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient, the
inline matplotlib backend, a temporary working directory), ``--repeat`` times.
Two figures per run:

* **wall**: ``NotebookClient.execute()`` end to end, kernel start-up included;
  what the test suite prints;
* **CPU**: user + system time of the kernel process (``os.times()`` read in the
  kernel), imports included. On a loaded machine wall time is inflated by
  waiting for a core; CPU time is the honest proxy for an idle one (with one
  BLAS thread, wall ≈ CPU + about a second of start-up on an idle machine).

Per cell, IPython's ``pre_run_cell``/``post_run_cell`` events record wall and
CPU time, and the slowest cells (median CPU over the repeats) are listed with
their first line, so a slow notebook shows where its time goes.

Run: ``OPENBLAS_NUM_THREADS=1 python bench/notebooks.py [--repeat 3] [--top 3] [NAME ...]``
(NAME: a substring of the file name, e.g. ``06``). With the default threads,
OpenBLAS's second thread stalls its small decompositions on a loaded 2-core
machine (a 151×151 ``eigh`` measured 1.5 ms with one thread and 8–15 ms with
two), which makes notebooks 08 and 10 several times slower there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
MARK = "@@bench-notebooks@@"
# runs first in the kernel: one (phase, wall clock, CPU seconds) record before and after every cell
HOOKS = """
import os as _bench_os, time as _bench_time
_bench_log = []
def _bench_record(phase):
    return lambda *_: _bench_log.append((phase, _bench_time.perf_counter(), sum(_bench_os.times()[:4])))
get_ipython().events.register("pre_run_cell", _bench_record("pre"))
get_ipython().events.register("post_run_cell", _bench_record("post"))
"""
REPORT = f"import json as _bench_json; print({MARK!r} + _bench_json.dumps([_bench_log, sum(_bench_os.times()[:4])]))"


def run_notebook(path: Path) -> dict:
    """Execute one notebook in a fresh kernel; wall and kernel CPU seconds, in total and per code cell."""
    nb = nbformat.read(path, as_version=4)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    nb.cells = [nbformat.v4.new_code_cell(HOOKS), *nb.cells, nbformat.v4.new_code_cell(REPORT)]
    with tempfile.TemporaryDirectory() as workdir:
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": workdir}}
        )
        start = time.perf_counter()
        client.execute()
        wall = time.perf_counter() - start
    text = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    log, cpu = json.loads(text.split(MARK, 1)[1])
    pre = [entry for entry in log if entry[0] == "pre"]
    post = [entry for entry in log if entry[0] == "post"][1:]  # the first closes the hook cell itself
    cells = {i: (b[1] - a[1], b[2] - a[2]) for i, a, b in zip(code, pre, post)}
    return {"wall": wall, "cpu": cpu, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="substrings of the notebook file names (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per notebook (medians are reported)")
    parser.add_argument("--top", type=int, default=3, help="slowest cells to list per notebook")
    args = parser.parse_args()
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # the kernel inherits it, as in the tests
    paths = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if not args.names or any(n in p.name for n in args.names))
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, {args.repeat} runs, medians")
    print(f"{'notebook':<36} {'wall s':>7} {'CPU s':>6}   runs (wall/CPU)")
    slow_cells = []
    for path in paths:
        runs = [run_notebook(path) for _ in range(args.repeat)]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        each = ", ".join(f"{r['wall']:.1f}/{r['cpu']:.1f}" for r in runs)
        print(f"{path.name:<36} {wall:7.1f} {cpu:6.1f}   {each}", flush=True)
        source = nbformat.read(path, as_version=4).cells
        per_cell = {i: [statistics.median(r["cells"][i][k] for r in runs) for k in (0, 1)] for i in runs[0]["cells"]}
        for i, (cell_wall, cell_cpu) in sorted(per_cell.items(), key=lambda kv: -kv[1][1])[: args.top]:
            first = next((line for line in source[i].source.splitlines() if line.strip()), "")
            slow_cells.append(
                f"  {path.stem[:2]} cell {i:>2}: CPU {cell_cpu:5.1f} s, wall {cell_wall:5.1f} s   {first[:60]}"
            )
    print("slowest cells (median CPU):")
    print("\n".join(slow_cells))


if __name__ == "__main__":
    main()
