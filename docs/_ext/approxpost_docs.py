"""Build helpers for the approxpost docs: tutorial notebooks in, docstrings made reST-safe.

Loaded by ``docs/conf.py`` as a Sphinx extension. Everything except
:func:`setup` is a plain function of paths or lists of strings, so it is
tested without Sphinx (``tests/test_docs.py``).

- :func:`copy_notebooks` copies the course notebooks into the docs, taking
  the executed copy of a notebook when the test suite left an up-to-date one,
  and says which ones it took (``conf.py`` runs only the others).
- :func:`escape_plain_text_bars` and :func:`join_reference_lines` let the
  docstrings keep their plain-text conventions (``|x|`` for an absolute value,
  references with a hanging indent), which read well in ``help()`` but are
  errors or odd markup to reStructuredText.
- :func:`skip_namedtuple_field_aliases` drops the "Alias for field number N"
  entries autodoc writes for every NamedTuple field.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CopiedNotebooks",
    "cell_sources",
    "choose_notebook",
    "copy_notebooks",
    "escape_plain_text_bars",
    "join_reference_lines",
    "skip_namedtuple_field_aliases",
    "setup",
]


# --------------------------------------------------------------------------- notebooks


def cell_sources(path: Path) -> list[str] | None:
    """The text of a notebook's cells, in order, or None if the file is not a readable notebook."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
        return ["".join(cell.get("source", "")) for cell in cells]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def choose_notebook(source: Path, executed_dir: Path | None) -> Path:
    """The executed copy of ``source`` in ``executed_dir`` if it is of the same notebook, else ``source``.

    An executed copy whose cells differ from the source is stale (the
    notebook was edited after the tests ran) and is ignored.
    """
    if executed_dir is None:
        return source
    executed = Path(executed_dir) / source.name
    if executed.is_file() and cell_sources(executed) == cell_sources(source):
        return executed
    return source


class CopiedNotebooks(NamedTuple):
    """What :func:`copy_notebooks` put in the docs: every file name, and those taken from executed copies."""

    names: list[str]
    executed: list[str]


def copy_notebooks(notebooks: Path, dest: Path, executed_dir: Path | None = None) -> CopiedNotebooks:
    """Copy ``notebooks/*.ipynb`` into ``dest``, preferring executed copies.

    A file is rewritten only when its bytes change, so an incremental build
    re-reads only what changed; a notebook gone from ``notebooks`` is removed
    from ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    sources = sorted(Path(notebooks).glob("*.ipynb"))
    names = [path.name for path in sources]
    for stale in dest.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    executed = []
    for source in sources:
        chosen = choose_notebook(source, executed_dir)
        if chosen != source:
            executed.append(source.name)
        target = dest / source.name
        if not target.is_file() or target.read_bytes() != chosen.read_bytes():
            shutil.copyfile(chosen, target)
    return CopiedNotebooks(names, executed)


# --------------------------------------------------------------------------- docstrings

# ``literal``, :role:`target` and `interpreted` spans: their bars are meant literally
_LITERAL_SPANS = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`)")
_UNDERLINE = re.compile(r"-{3,}\s*$")


def _escape_bars(text: str) -> str:
    parts = _LITERAL_SPANS.split(text)
    # odd indices are the spans captured by the group: keep them as written
    return "".join(part if i % 2 else part.replace("|", r"\|") for i, part in enumerate(parts))


def escape_plain_text_bars(app, what, name, obj, options, lines: list[str]) -> None:
    """``autodoc-process-docstring`` hook: make ``|x|`` in running text render as written.

    reStructuredText reads ``|x|`` as a substitution reference (an error).
    Bars in running text are escaped; inline literals, roles (``:math:``),
    doctest lines, tables, line blocks and the indented block after a line
    ending in ``::`` (code, math) are left as written.
    """
    block_indent = None  # indentation of the "::" line whose indented block we are in
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_indent is not None and stripped and indent <= block_indent:
            block_indent = None
        verbatim = stripped.startswith((">>>", "+-", "+=", "| ")) or stripped == "|"
        if block_indent is None and stripped and not verbatim:
            lines[i] = _escape_bars(line)
        if block_indent is None and stripped.endswith("::"):
            block_indent = indent


def _is_header(lines: list[str], i: int) -> bool:
    return i + 1 < len(lines) and bool(lines[i].strip()) and bool(_UNDERLINE.match(lines[i + 1].strip()))


def join_reference_lines(app, what, name, obj, options, lines: list[str]) -> None:
    """``autodoc-process-docstring`` hook: one paragraph per entry of a References section.

    A reference with a hanging indent is a definition list to
    reStructuredText, and an emphasis crossing the line break is an error.
    Continuation lines are joined to their entry, and entries are separated
    by blank lines.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not (lines[i].strip() == "References" and _is_header(lines, i)):
            out.append(lines[i])
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        out += [lines[i], lines[i + 1]]
        i += 2
        entries: list[str] = []
        joinable = False  # the line before belongs to an entry that may continue
        while i < len(lines) and not _is_header(lines, i):
            line, text = lines[i], lines[i].strip()
            if text and joinable and len(line) - len(line.lstrip()) > indent:
                entries[-1] += " " + text
            elif text:
                entries.append(line)
            joinable = bool(text)
            i += 1
        for entry in entries:
            out += [entry, ""]
    lines[:] = out


def skip_namedtuple_field_aliases(app, what, name, obj, skip, options) -> bool | None:
    """``autodoc-skip-member`` hook: skip NamedTuple fields whose only doc is "Alias for field number N".

    The class signature already lists the fields with their types.
    """
    if re.fullmatch(r"Alias for field number \d+", getattr(obj, "__doc__", None) or ""):
        return True
    return None


def setup(app) -> dict:
    """Register the docstring hooks, before numpydoc's (priority 500) reshapes the sections."""
    app.connect("autodoc-process-docstring", escape_plain_text_bars, priority=400)
    app.connect("autodoc-process-docstring", join_reference_lines, priority=400)
    app.connect("autodoc-skip-member", skip_namedtuple_field_aliases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
