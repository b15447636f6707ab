"""The documentation site in a real browser: served over HTTP on 127.0.0.1, opened in headless Chromium.

Four pages (the index, the results page, one notebook page and one API page) must load, show every
image (``naturalWidth > 0``), render their math with the MathJax the site serves itself, request
nothing from another host (the site is offline), and link only to pages and anchors that exist.
The site is ``docs/_build/html`` as ``make docs`` left it (``make test`` and ``make test-browser``
build it first); when it is missing or older than its sources, the test builds its own copy.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from servers import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "docs" / "_build" / "html"
WAIT_MS = 60_000
PAGES = {
    "index": "index.html",
    "results": "results.html",
    "notebook": "notebooks/04_mlp_depth.html",
    "api": "api/generated/archscale.core.scaling.html",
}
#: At least this many images per page: every figure on the results page, the notebook's plots.
MIN_IMAGES = {"results": len(list((ROOT / "figures").glob("*.png"))), "notebook": 1}


def _sources_mtime() -> float:
    roots = [ROOT / "docs", ROOT / "papermill_runs", ROOT / "figures", ROOT / "archscale"]
    files = [p for r in roots for p in r.rglob("*") if p.is_file() and "_build" not in p.parts
             and "generated" not in p.parts and "__pycache__" not in p.parts]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> Path:
    """The built site: docs/_build/html when it is newer than its sources, else a fresh build."""
    index = BUILT / "index.html"
    if index.exists() and index.stat().st_mtime >= _sources_mtime():
        return BUILT
    out = tmp_path_factory.mktemp("docs-html")
    build = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
                            "-d", str(tmp_path_factory.mktemp("doctrees")), str(ROOT / "docs"), str(out)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return out


@pytest.fixture(scope="session")
def site_url(docs_site):
    """``python -m http.server`` on 127.0.0.1 serving the site, stopped after the session."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(docs_site)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "index.html", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP server for the docs did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _open(chromium, pages, label: str, url: str):
    """A page at ``url`` that records its console, every request and every failed response."""
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.console_lines, page.requests, page.failures = [], [], []
    page.on("console", lambda msg: page.console_lines.append(f"{msg.type}: {msg.text}"))
    page.on("request", lambda req: page.requests.append(req.url))
    page.on("requestfailed", lambda req: page.failures.append(f"{req.url}: {req.failure}"))
    page.on("response",
            lambda res: res.status >= 400 and page.failures.append(f"{res.url}: HTTP {res.status}"))
    pages[label] = page
    response = page.goto(url, wait_until="load", timeout=WAIT_MS)
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
    return page


def _images(page) -> list[dict]:
    """Every <img>, loaded eagerly, once the browser has finished with it (loaded or failed)."""
    return page.evaluate("""async () => {
        const images = Array.from(document.images);
        images.forEach(img => { img.loading = "eager"; });
        await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
            img.addEventListener("load", done);
            img.addEventListener("error", done);
        })));
        return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
    }""")


def _internal_links(page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    return sorted({h for h in hrefs if urlparse(h).netloc == urlparse(base).netloc})


@pytest.mark.parametrize("label", list(PAGES))
def test_docs_page(chromium, pages, site_url, label):
    url = site_url + PAGES[label]
    page = _open(chromium, pages, label, url)
    page.wait_for_load_state("networkidle", timeout=WAIT_MS)

    title = page.title()
    assert title and "404" not in title, f"{url}: title {title!r}"
    assert page.locator("article h1").count() >= 1, f"{url}: no page heading"

    images = _images(page)
    broken = [i["src"] for i in images if i["width"] <= 0]
    assert not broken, f"{url}: images that did not load: {broken}"
    assert len(images) >= MIN_IMAGES.get(label, 0), \
        f"{url}: {len(images)} images, expected at least {MIN_IMAGES[label]}"

    if label == "notebook":  # the notebook's LaTeX, typeset by the MathJax the site serves itself
        page.wait_for_selector("mjx-container", state="attached", timeout=WAIT_MS)
        assert page.locator("div.cell_output").count() > 0, f"{url}: no cell outputs rendered"

    page.wait_for_load_state("networkidle", timeout=WAIT_MS)
    elsewhere = sorted({r for r in page.requests if urlparse(r).scheme in ("http", "https")
                        and urlparse(r).netloc != urlparse(site_url).netloc})
    assert not elsewhere, f"{url}: requests to other hosts (the site must work offline): {elsewhere}"
    assert not page.failures, f"{url}: failed requests: {page.failures}"

    missing = []
    fetched: dict[str, str] = {}
    for link in _internal_links(page, site_url):
        target, fragment = urldefrag(link)
        if target not in fetched:
            response = page.request.get(target)
            fetched[target] = response.text() if response.status == 200 else ""
            if response.status != 200:
                missing.append(f"{link}: HTTP {response.status}")
                continue
        anchor = f'id="{unquote(fragment)}"'
        if fragment and fetched[target] and anchor not in fetched[target]:
            missing.append(f"{link}: no element with id {fragment!r}")
    assert not missing, f"{url}: internal links that do not resolve:\n  " + "\n  ".join(missing)
