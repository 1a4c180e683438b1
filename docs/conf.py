"""Sphinx configuration for the approxpost documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The tutorials are the course notebooks in ``../notebooks``: every
``notebooks/*.ipynb`` is copied into ``docs/tutorials/`` (generated, not
committed) at every build and listed by the glob in ``tutorials.md``, so a new
notebook needs no edit here. They are shown with their outputs, from one of two
places:

- if the environment variable ``APPROXPOST_EXECUTED_NOTEBOOKS`` names a folder
  holding executed copies of the same notebooks (the notebook tests leave them
  there, as in CI), those copies are rendered as they are and nothing runs;
- any notebook without such a copy is executed here, through MyST-NB's
  jupyter-cache in ``docs/_build/.jupyter_cache``: the first build runs it,
  later builds reuse its outputs until its code cells change. Delete that
  folder to run them all again (after a change to the library, say).

The maths is typeset by a copy of MathJax 3.2.2 shipped in ``_static/mathjax``
(``tex-svg-full.js``, Apache-2.0; its README says why and how to update it),
so a page needs no network: SVG output brings its glyphs inside the script,
with no web fonts to fetch, which also works from ``file://``.

The API reference has one page a module in ``api/``. A page whose module
cannot be imported (not written yet, or importing one that is not) is left
out of the build, with a note in the log, so an unfinished package shrinks
the reference instead of failing it; the test suite is what catches a module
that does not import. Likewise the tutorials page is left out while there is
no notebook.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Build from a checkout even when the package is not installed; _ext holds
# this site's own extension (notebook copying, docstring clean-up).
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

from approxpost_docs import copy_notebooks  # noqa: E402

import approxpost  # noqa: E402

_log = logging.getLogger("approxpost.docs")

# -- Project -------------------------------------------------------------------

project = "approxpost"
author = "The approxpost developers"
copyright = "2026, The approxpost developers"
release = approxpost.__version__
version = release

# -- General -------------------------------------------------------------------

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",  # with the local MathJax below, not a CDN
    "numpydoc",
    "approxpost_docs",  # _ext/approxpost_docs.py: docstring hooks
]
# No sphinx.ext.intersphinx: the build must not need the network.

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**.ipynb_checkpoints"]

# A toctree entry for a page that the build-time steps at the end of this file
# leave out (a module that does not import, the tutorials page while there is
# no notebook) is skipped, not an error.
suppress_warnings = ["toc.excluded"]

# -- MyST and notebooks ----------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# Executed copies are excluded from execution at the end of this file; the rest
# run through the cache. A notebook that fails to run fails the build.
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")  # shared by every output folder
nb_execution_timeout = 300  # seconds a cell, as in tests/test_notebooks.py
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # files a notebook writes land in a temporary folder, not in docs/
nb_merge_streams = True
# The kernel inherits this environment. Under MPLBACKEND=Agg (as CI sets it)
# plt.show() draws nothing; the inline backend attaches each figure to its cell.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

# -- API reference -------------------------------------------------------------

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
python_maximum_signature_line_length = 88
toc_object_entries_show_parents = "hide"  # "log_prior()", not "Model.log_prior()"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

# -- HTML ----------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = f"approxpost {release}"
html_theme_options = {"show_toc_level": 2}
html_static_path = ["_static"]
html_css_files = ["approxpost.css"]

# MathJax 3.2.2 from _static (see the module docstring); MyST adds the classes
# to process to this config.
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config: dict = {"svg": {"fontCache": "global"}}


# -- Build-time steps ----------------------------------------------------------


def unimportable_module_pages(api: Path = DOCS / "api") -> list[str]:
    """``api/<module>.rst`` pages whose module does not import, as exclude patterns."""
    left_out = []
    for page in sorted(api.glob("approxpost*.rst")):
        try:
            importlib.import_module(page.stem)
        except Exception as err:  # any import failure: the page cannot be built
            left_out.append(f"api/{page.stem}.*")
            _log.info(f"API reference: leaving out {page.stem} ({type(err).__name__}: {err})")
    return left_out


_executed = os.environ.get("APPROXPOST_EXECUTED_NOTEBOOKS")
if _executed and not Path(_executed).is_dir():
    _log.info(f"APPROXPOST_EXECUTED_NOTEBOOKS={_executed} is not a folder; executing the notebooks")
    _executed = None
_tutorials = copy_notebooks(ROOT / "notebooks", DOCS / "tutorials", Path(_executed) if _executed else None)
_log.info(f"tutorials: {len(_tutorials.names)} notebooks, {len(_tutorials.executed)} from executed copies")
# an executed copy already has its outputs: render it, never run it again
nb_execution_excludepatterns = [f"tutorials/{name}" for name in _tutorials.executed]

# Patterns end in ".*": Sphinx matches a toctree entry against them with its
# first source suffix (.rst), whatever the page's own suffix is.
if not _tutorials.names:
    exclude_patterns.append("tutorials.*")
exclude_patterns += unimportable_module_pages()
