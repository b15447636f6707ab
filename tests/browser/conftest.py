"""Fixtures for the browser tests: JupyterLab and Voila servers, headless Chromium, failure screenshots.

Each test is one walk through one server (JupyterLab or Voila), so a worker starts only the
server its walk needs. A failing test leaves a screenshot, the page's console
and the server logs in ``test-artifacts/browser/`` and names them in its report. Without
Chromium or Playwright the tests skip, unless ``$ARCHSCALE_REQUIRE_BROWSER=1`` (``.ci/run``
sets it), which makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from servers import CHROMIUM_ARGS, REQUIRE_ENV, Server, chromium_executable

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
EXPLORER_NOTEBOOK = "03_dag_paths.ipynb"


def _unavailable(reason: str):
    if os.environ.get(REQUIRE_ENV, "").strip() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (and ${REQUIRE_ENV}=1 requires the browser tests to run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium launched by Playwright from the distribution's binary."""
    executable = chromium_executable()
    if executable is None:
        _unavailable("no Chromium found: `apt-get install chromium` (or set $ARCHSCALE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    pw.stop()


def _prepare_root(root: Path) -> None:
    """A lab root like the repository's: notebook 03 at the smoke preset, the app notebook, figures/."""
    (root / "notebooks").mkdir(parents=True)
    (root / "figures").mkdir()
    (root / "runs").mkdir()
    nb = json.loads((ROOT / "notebooks" / EXPLORER_NOTEBOOK).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            cell["source"] = re.sub(r'preset = "\w+"', 'preset = "smoke"', src)
    (root / "notebooks" / EXPLORER_NOTEBOOK).write_text(json.dumps(nb, indent=1))
    shutil.copytree(ROOT / "app", root / "app")


def _stopped(server: Server) -> None:
    server.stop()
    if server.log.exists():  # the last log stays for CI to show
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log, ARTIFACTS / f"last-{server.log.name}")


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab-root")
    _prepare_root(root)
    return root


@pytest.fixture(scope="session")
def lab(tmp_path_factory, lab_root, chromium):
    """JupyterLab on a temporary root (notebooks/, app/, figures/), stopped after the session."""
    server = Server.lab(lab_root, tmp_path_factory.mktemp("lab-home"))
    try:
        server.wait_ready(f"/api/status?token={server.token}")
        yield server
    finally:
        _stopped(server)


@pytest.fixture(scope="session")
def voila(tmp_path_factory, lab_root, chromium):
    """Voila serving the app notebook, stopped after the session."""
    server = Server.voila(lab_root / "app" / "explorer.ipynb", tmp_path_factory.mktemp("voila-home"))
    try:
        server.wait_ready("/voila/static/voila.js")
        yield server
    finally:
        _stopped(server)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """On a failing browser test: screenshot every open page and name the files in the report."""
    report = yield
    if report.failed and report.when in ("setup", "call") and "browser" in item.keywords:
        pages = item.funcargs.get("pages") or {}
        saved = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", item.name)
        for label, page in pages.items():
            try:
                shot = ARTIFACTS / f"{stem}-{label}.png"
                page.screenshot(path=str(shot), full_page=True, timeout=20_000)
                saved.append(str(shot))
            except Exception as err:  # the page may be gone
                saved.append(f"({label}: no screenshot: {err})")
            console = getattr(page, "console_lines", None)
            if console:
                log = ARTIFACTS / f"{stem}-{label}-console.txt"
                log.write_text("\n".join(console))
                saved.append(str(log))
        if saved:
            report.sections.append(("browser artifacts", "\n".join(saved)))
            print("\nbrowser test artifacts:\n  " + "\n  ".join(saved))
    return report


@pytest.fixture
def pages():
    """The pages a test opened, by label, for failure screenshots."""
    return {}
