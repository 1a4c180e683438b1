"""The docs' build helpers (``docs/_ext/approxpost_docs.py``): notebook copying and docstring clean-up.

The Sphinx build itself runs in CI as its own step; these tests pin down the
helpers it relies on, which are plain functions and need no Sphinx.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import NamedTuple

_PATH = Path(__file__).resolve().parent.parent / "docs" / "_ext" / "approxpost_docs.py"
_spec = importlib.util.spec_from_file_location("approxpost_docs", _PATH)
docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs)


def _escaped(*lines: str) -> list[str]:
    out = list(lines)
    docs.escape_plain_text_bars(None, "function", "f", None, {}, out)
    return out


def _joined(*lines: str) -> list[str]:
    out = list(lines)
    docs.join_reference_lines(None, "function", "f", None, {}, out)
    return out


def _notebook(path: Path, sources: list[str], outputs: bool = False) -> Path:
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": s,
            "execution_count": 1 if outputs else None,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "out\n"}] if outputs else [],
        }
        for s in sources
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


# --------------------------------------------------------------------------- docstring bars


def test_bars_in_running_text_are_escaped():
    assert _escaped("N / |idx|: the factor", "|x|.  VJP: g sign(x)") == [
        r"N / \|idx\|: the factor",
        r"\|x\|.  VJP: g sign(x)",
    ]


def test_bars_in_literals_roles_and_verbatim_lines_are_kept():
    lines = ["``a | b`` and :math:`|x|` but |y|", "| a | b |", ">>> x | y", "+---+---+"]
    assert _escaped(*lines) == [r"``a | b`` and :math:`|x|` but \|y\|", "| a | b |", ">>> x | y", "+---+---+"]


def test_bars_in_an_indented_block_after_double_colon_are_kept_until_it_ends():
    lines = ["Example::", "", "    f(|x|)", "    g(|x|)", "", "Back to |text|."]
    assert _escaped(*lines) == ["Example::", "", "    f(|x|)", "    g(|x|)", "", r"Back to \|text\|."]


# --------------------------------------------------------------------------- references


def test_hanging_indent_references_become_one_paragraph_each():
    lines = [
        "Summary.",
        "",
        "References",
        "----------",
        "Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In *Handbook of",
        "    Markov Chain Monte Carlo*, ch. 5.",
        "Kish, L. (1965). *Survey Sampling*.",
    ]
    assert _joined(*lines) == [
        "Summary.",
        "",
        "References",
        "----------",
        "Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In *Handbook of Markov Chain Monte Carlo*, ch. 5.",
        "",
        "Kish, L. (1965). *Survey Sampling*.",
        "",
    ]


def test_references_stop_at_the_next_section_and_other_sections_are_untouched():
    lines = [
        "Parameters",
        "----------",
        "x",
        "    The input.",
        "References",
        "----------",
        "A. (2020). Title",
        "    continued.",
        "Examples",
        "--------",
        ">>> f(1)",
        "    more",
    ]
    assert _joined(*lines) == [
        "Parameters",
        "----------",
        "x",
        "    The input.",
        "References",
        "----------",
        "A. (2020). Title continued.",
        "",
        "Examples",
        "--------",
        ">>> f(1)",
        "    more",
    ]


def test_a_blank_line_ends_an_entry():
    lines = ["References", "----------", "First.", "", "    Indented after a blank."]
    assert _joined(*lines) == ["References", "----------", "First.", "", "    Indented after a blank.", ""]


# --------------------------------------------------------------------------- NamedTuple fields


def test_only_undocumented_namedtuple_fields_are_skipped():
    class Pair(NamedTuple):
        mu: float
        rho: float

    assert docs.skip_namedtuple_field_aliases(None, "attribute", "mu", Pair.mu, False, {}) is True
    assert docs.skip_namedtuple_field_aliases(None, "class", "Pair", Pair, False, {}) is None
    assert docs.skip_namedtuple_field_aliases(None, "function", "f", test_a_blank_line_ends_an_entry, False, {}) is None


# --------------------------------------------------------------------------- notebooks


def test_an_executed_copy_is_used_only_when_its_cells_match(tmp_path: Path):
    src, run = tmp_path / "src", tmp_path / "run"
    src.mkdir(), run.mkdir()
    fresh = _notebook(src / "01_a.ipynb", ["x = 1", "x"])
    stale = _notebook(src / "02_b.ipynb", ["y = 2"])
    lonely = _notebook(src / "03_c.ipynb", ["z = 3"])
    _notebook(run / "01_a.ipynb", ["x = 1", "x"], outputs=True)
    _notebook(run / "02_b.ipynb", ["y = 1"], outputs=True)  # the notebook was edited after the run
    assert docs.choose_notebook(fresh, run) == run / "01_a.ipynb"
    assert docs.choose_notebook(stale, run) == stale
    assert docs.choose_notebook(lonely, run) == lonely
    assert docs.choose_notebook(fresh, None) == fresh


def test_unreadable_notebooks_never_match(tmp_path: Path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert docs.cell_sources(broken) is None
    assert docs.cell_sources(tmp_path / "missing.ipynb") is None


def test_copy_notebooks_mirrors_the_folder_and_rewrites_only_changes(tmp_path: Path):
    src, run, dest = tmp_path / "src", tmp_path / "run", tmp_path / "docs" / "tutorials"
    src.mkdir(), run.mkdir()
    _notebook(src / "01_a.ipynb", ["x = 1"])
    _notebook(src / "02_b.ipynb", ["y = 2"])
    executed = _notebook(run / "01_a.ipynb", ["x = 1"], outputs=True)
    assert docs.copy_notebooks(src, dest, run) == (["01_a.ipynb", "02_b.ipynb"], ["01_a.ipynb"])
    assert (dest / "01_a.ipynb").read_bytes() == executed.read_bytes()
    assert (dest / "02_b.ipynb").read_bytes() == (src / "02_b.ipynb").read_bytes()

    before = (dest / "02_b.ipynb").stat().st_mtime_ns
    (src / "01_a.ipynb").unlink()
    assert docs.copy_notebooks(src, dest, None) == (["02_b.ipynb"], [])
    assert sorted(p.name for p in dest.iterdir()) == ["02_b.ipynb"]  # the deleted notebook is gone
    assert (dest / "02_b.ipynb").stat().st_mtime_ns == before  # unchanged bytes: not rewritten
