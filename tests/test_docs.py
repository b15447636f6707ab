"""The README is a front door, and the documentation site covers every notebook and figure.

The site itself is built with warnings as errors by ``make docs`` (which ``make test`` runs before
pytest); ``tests/browser/test_browser_docs.py`` opens the built pages. These checks read files only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_README_LINES = 260

#: ``[text](target)`` and ``![alt](target)`` in Markdown (the target up to the closing parenthesis).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: ``<img src="...">`` and ``<a href="...">`` written as HTML.
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)


def _slug(heading: str) -> str:
    """The anchor GitHub (and MyST's heading anchors) give a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    body = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)  # no headings inside code blocks
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", body, re.MULTILINE)}


def _links(markdown: str) -> list[str]:
    body = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return LINK.findall(body) + HTML_LINK.findall(body)


def test_the_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, \
        f"README.md has {n} lines; the front door stays under {MAX_README_LINES}: move details to docs/"


def test_every_relative_link_and_image_in_the_readme_exists():
    text = README.read_text()
    links = _links(text)
    assert links, "no links found in README.md: the link pattern is broken"
    broken = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = README if not path else (ROOT / path)
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, "README.md links to what is not there:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_notebook_is_in_the_readme_index(notebook):
    assert f"](notebooks/{notebook.name})" in README.read_text(), \
        f"{notebook.name} is missing from the README's notebook index (a row linking to it in notebooks/)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_notebook_has_a_docs_page(notebook):
    index = (DOCS / "notebooks" / "index.md").read_text()
    assert f"{{doc}}`{notebook.stem}`" in index, \
        f"docs/notebooks/index.md has no row for {notebook.stem} ({{doc}}`{notebook.stem}` and one line)"
    executed = ROOT / "papermill_runs" / notebook.name
    assert executed.is_file(), f"no executed copy {executed.relative_to(ROOT)}: the docs page renders it " \
                               "(run `make reproduce`)"


def test_notebook_pages_are_links_not_copies():
    """docs/ holds no notebook of its own: the pages are the executed copies in papermill_runs/."""
    copies = [p for p in DOCS.rglob("*.ipynb") if "_build" not in p.parts and not p.is_symlink()]
    assert not copies, f"notebook files copied into docs/ (they go stale): {copies}"
    conf = (DOCS / "conf.py").read_text()
    assert 'nb_execution_mode = "off"' in conf, "the docs must render the executed copies, never execute"


def test_every_figure_is_on_the_results_page():
    results = (DOCS / "results.md").read_text()
    figures = sorted(p.name for p in (ROOT / "figures").glob("*.png"))
    missing = [f for f in figures if f"../figures/{f}" not in results]
    assert not missing, f"figures without a captioned place on docs/results.md: {missing}"


def test_every_docs_page_links_exist():
    """Relative Markdown links and figures in the docs sources point at files that exist."""
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        if "_build" in page.parts:
            continue
        text = page.read_text()
        targets = _links(text) + re.findall(r"^```\{(?:figure|image|include)\}\s+(\S+)", text, re.MULTILINE)
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.partition("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "docs pages point at missing files:\n  " + "\n  ".join(broken)


def test_the_glossary_page_holds_the_packages_glossary():
    """One glossary: docs/glossary.md shows the table notebook 01 displays (archscale.notebook.tables)."""
    from archscale.notebook.tables import glossary_markdown

    assert glossary_markdown() in (DOCS / "glossary.md").read_text(), \
        "docs/glossary.md differs from archscale.notebook.tables.GLOSSARY: paste glossary_markdown() into it"
    index = (DOCS / "index.md").read_text()
    assert re.search(r"^findings$", index, re.M) and re.search(r"^glossary$", index, re.M), \
        "docs/index.md's toctree must list the findings and glossary pages"


def test_the_findings_page_has_a_section_per_executed_notebook():
    """docs/findings.md is written at every build from papermill_runs/ (docs/conf.py); here, its builder."""
    from archscale.notebook.findings import findings_page

    page = findings_page(ROOT / "papermill_runs")
    for nb in NOTEBOOKS:
        assert f"{{doc}}`The notebook <notebooks/{nb.stem}>`" in page, f"no findings section for {nb.stem}"
