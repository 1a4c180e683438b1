"""Execute every course notebook top to bottom; any error in any cell fails its test.

Each notebook runs in a fresh ``python3`` kernel whose working directory is a
temporary folder, so figures or files a notebook writes never land in the
repository. The kernel is headless: matplotlib uses the inline backend
(``matplotlib_inline``), which renders with Agg and attaches the figures to the
cell outputs, so drawing errors surface here and the executed copies carry
their figures. (Plain ``Agg`` would make ``plt.show()`` a no-op: nothing would
be drawn and nothing kept.)

If the environment variable ``APPROXPOST_EXECUTED_NOTEBOOKS`` names a folder,
each executed notebook is written there under its own file name, so the docs
build can render those copies instead of executing the notebooks a second time.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds; the notebooks aim for well under a minute in total
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# the only ways a notebook may import the library: the public API, as users would
ALLOWED_IMPORTS = {"import approxpost as ap", "from approxpost import autodiff as ad"}
LIBRARY_IMPORT = re.compile(r"^\s*(import|from)\s+approxpost\b")
PRIVATE_ACCESS = re.compile(r"\b(ap|ad)\._|\bapproxpost\.")


def test_notebooks_are_present():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


def test_notebooks_are_stored_without_outputs():
    """The repository keeps notebooks cleared: outputs come from running them."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"


def test_notebooks_use_only_the_public_api():
    """Notebooks import ``approxpost as ap`` (and ``autodiff as ad``) and touch no private or submodule name."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for line in cell.source.splitlines():
                if LIBRARY_IMPORT.match(line):
                    assert line.strip() in ALLOWED_IMPORTS, (
                        f"{path.name}: {line.strip()!r} is not one of {sorted(ALLOWED_IMPORTS)}"
                    )
                assert not PRIVATE_ACCESS.search(line), f"{path.name}: private or submodule access in {line.strip()!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # the kernel inherits this process's environment
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell and its traceback
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    out_dir = os.environ.get("APPROXPOST_EXECUTED_NOTEBOOKS")
    if out_dir:  # only a notebook that ran cleanly is handed to the docs
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(out_dir) / path.name)
