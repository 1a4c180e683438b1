"""The documentation as a reader sees it: the built site, opened in headless Chromium.

The module builds the site with the README's command (``python -m sphinx -W``)
into a temporary folder, serves it on 127.0.0.1, and opens a small page of its
own on the same origin that loads each site page in a 1300-px-wide frame,
waits for MathJax to finish, measures the rendered DOM and posts the numbers
back. The tests then check that

- the tutorials show their outputs and figures, and the tutorial list has every notebook;
- every formula is typeset (no raw ``\\(`` left in the page's text) by the
  MathJax the site ships: no page loads anything from another host;
- no page, table or displayed equation is wider than the window at 1300 px.

It needs a Chromium (Debian: ``apt-get install chromium``) and the docs extra
(``pip install -e ".[docs]"``); without either it is skipped, except in CI
(``CI`` set), which installs both and must run the check. The file
sorts after ``test_notebooks.py`` on purpose: in one pytest run with
``APPROXPOST_EXECUTED_NOTEBOOKS`` set (as CI does), the notebook tests have
left their executed copies by the time the site is built here, so no notebook
runs twice. Otherwise the build executes the notebooks through MyST-NB's cache
(see ``docs/conf.py``).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the three pages the docs issue names: a tutorial, a concept page, "which method when"
KEY_PAGES = ["tutorials/05_bayes_by_backprop.html", "concepts/elbo.html", "which_method.html"]
BUILD_TIMEOUT = 1800  # seconds; only a build that has to execute every notebook comes near it
BROWSER_TIMEOUT = 180
WIDTH = 1300  # px, the window the docs issue was reported at

# the README's test set-up installs only the test extra; the docs extra brings Sphinx and MyST-NB
HAS_DOCS_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("sphinx", "myst_nb"))
# CI installs Chromium and the docs extra: there a missing one fails the tests instead of skipping them
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="the browser check needs Chromium on the PATH (Debian: apt-get install chromium)",
    ),
    pytest.mark.skipif(
        not HAS_DOCS_EXTRA and not os.environ.get("CI"),
        reason='the browser check builds the docs, which needs the docs extra: pip install -e ".[docs]"',
    ),
]

# Runs in the wrapper page. For each site page: load it in a frame of the
# window's width, wait for MathJax's first typesetting and for the images,
# then measure. Element lists are short descriptions, for the failure messages.
INSPECT_JS = r"""
const PAGES = __PAGES__, WIDTH = __WIDTH__;
function wider(doc, selector) {
  return [...doc.querySelectorAll(selector)]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName.toLowerCase()} ${e.scrollWidth - e.clientWidth}px too wide: ${e.textContent.trim().slice(0, 60)}`);
}
// the page's prose and maths as text: code is left out, where a backslash or "$$" may be meant
function prose(doc, root) {
  const skip = 'pre, code, script, style, mjx-container';
  const walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: node => node.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const parts = [];
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  return parts.join(' ');
}
async function inspect(url) {
  const frame = document.createElement('iframe');
  frame.style.cssText = `width:${WIDTH}px;height:900px;border:0`;
  document.body.appendChild(frame);
  await new Promise(done => { frame.onload = done; frame.src = url; });
  const win = frame.contentWindow, doc = frame.contentDocument;
  const mathjax = Boolean(win.MathJax && win.MathJax.startup);
  if (mathjax) await win.MathJax.startup.promise;
  const article = doc.querySelector('article') || doc.body;
  const images = [...article.querySelectorAll('img')];
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const text = prose(doc, article);
  const result = {
    url,
    mathjax_loaded: mathjax,
    images: images.length,
    images_shown: images.filter(img => img.complete && img.naturalWidth > 0).length,
    cell_outputs: article.querySelectorAll('.cell_output').length,
    math_sources: article.querySelectorAll('.math').length,
    typeset: article.querySelectorAll('mjx-container').length,
    raw_tex: text.match(/\\\(|\\\)|\\\[|\\\]|\\begin\{|\$\$/g) || [],
    page_overflow: doc.documentElement.scrollWidth - doc.documentElement.clientWidth,
    wide_tables: wider(doc, 'article table, article .pst-scrollable-table-container'),
    wide_equations: wider(doc, 'article mjx-container[display="true"]'),
    foreign_resources: win.performance.getEntriesByType('resource').map(r => r.name)
      .filter(name => !name.startsWith(location.origin + '/')),
  };
  frame.remove();
  return result;
}
(async () => {
  const results = [];
  for (const page of PAGES) {
    try { results.push(await inspect(page)); } catch (err) { results.push({url: page, error: String(err)}); }
  }
  await fetch('/__verdict__', {method: 'POST', body: JSON.stringify(results)});
})();
"""


def _site_pages(site: Path) -> list[str]:
    """The pages a reader studies: the tutorials, the concept pages and "which method when"."""
    pages = sorted(str(p.relative_to(site)) for p in [*site.glob("tutorials/*.html"), *site.glob("concepts/*.html")])
    return [*pages, "which_method.html"]


def _inspect(site: Path, pages: list[str]) -> dict[str, dict]:
    """Open ``pages`` of ``site`` in headless Chromium; the wrapper page's measurements, by page."""
    assert CHROMIUM is not None, "no Chromium on the PATH (Debian: apt-get install chromium)"
    wrapper = f"<!doctype html><html><body><script>{INSPECT_JS}</script></body></html>"
    wrapper = wrapper.replace("__PAGES__", json.dumps(pages)).replace("__WIDTH__", str(WIDTH)).encode()
    posted: list[bytes] = []
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/__check__.html":
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(wrapper)))
            self.end_headers()
            self.wfile.write(wrapper)

        def do_POST(self):
            posted.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):  # keep the test log quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH + 100},1000",
            f"http://127.0.0.1:{server.server_address[1]}/__check__.html",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # Chromium logs D-Bus complaints that mean nothing here
    )
    try:
        finished = done.wait(BROWSER_TIMEOUT)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=20)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    assert finished, f"the browser check reported nothing within {BROWSER_TIMEOUT} s"
    results = json.loads(posted[0])
    errors = [r for r in results if "error" in r]
    assert not errors, f"pages the check could not inspect: {errors}"
    return {r["url"]: r for r in results}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with the README's command (warnings are errors) into a fresh folder."""
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=os.environ)
    assert built.returncode == 0, f"the docs build failed:\n{built.stdout[-3000:]}\n{built.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def rendered(site: Path) -> dict[str, dict]:
    return _inspect(site, _site_pages(site))


def test_every_notebook_is_a_tutorial_page(site: Path):
    assert NOTEBOOKS
    listing = (site / "tutorials.html").read_text(encoding="utf-8")
    for notebook in NOTEBOOKS:
        assert (site / "tutorials" / f"{notebook.stem}.html").is_file(), notebook.name
        assert f'href="tutorials/{notebook.stem}.html"' in listing, f"{notebook.name} is not in the tutorial list"


def test_the_key_pages_were_inspected(rendered: dict[str, dict]):
    assert set(KEY_PAGES) <= set(rendered)


@pytest.mark.parametrize("notebook", [p.stem for p in NOTEBOOKS])
def test_each_tutorial_shows_its_outputs(rendered: dict[str, dict], notebook: str):
    page = rendered[f"tutorials/{notebook}.html"]
    assert page["cell_outputs"] > 0, f"{notebook}: no cell outputs on the page"
    assert page["images_shown"] == page["images"], (
        f"{notebook}: {page['images'] - page['images_shown']} images not shown"
    )


@pytest.mark.parametrize("url", ["tutorials/05_bayes_by_backprop.html", "which_method.html"])
def test_figures_are_shown(rendered: dict[str, dict], url: str):
    page = rendered[url]
    assert page["images"] >= 2 and page["images_shown"] == page["images"], page


def test_every_formula_is_typeset_by_the_bundled_mathjax(rendered: dict[str, dict]):
    for url in KEY_PAGES:
        assert rendered[url]["math_sources"] > 0, f"{url} has no formulas to check"
    for url, page in rendered.items():
        if page["math_sources"]:
            assert page["mathjax_loaded"], f"{url}: MathJax did not load"
            assert page["typeset"] >= page["math_sources"], (
                f"{url}: {page['typeset']} of {page['math_sources']} typeset"
            )
        assert not page["raw_tex"], f"{url}: raw TeX left in the visible text: {page['raw_tex'][:5]}"
        assert not page["foreign_resources"], f"{url} loads from other hosts: {page['foreign_resources']}"


def test_nothing_is_wider_than_a_1300px_window(rendered: dict[str, dict]):
    for url, page in rendered.items():
        assert page["page_overflow"] <= 0, f"{url} scrolls sideways by {page['page_overflow']} px"
        assert not page["wide_tables"], f"{url}: {page['wide_tables']}"
        assert not page["wide_equations"], f"{url}: {page['wide_equations']}"
