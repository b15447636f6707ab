"""Sphinx configuration of archscale's documentation site (``make docs``).

The site is built offline: no intersphinx, no remote scripts or fonts (MathJax is served from the
site itself by ``sphinx-mathjax-offline``). The notebook pages are the executed copies committed
in ``papermill_runs/``: :func:`link_executed_notebooks` points ``docs/notebooks/<name>.ipynb`` at
them (symbolic links, made at every build and ignored by git), and myst-nb renders them without
executing anything, so the site always shows what is committed there; :func:`write_findings_page`
collects their findings sections into ``docs/findings.md`` the same way.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from sphinx.util.fileutil import copy_asset

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "papermill_runs"
LINKED = DOCS / "notebooks"


def link_executed_notebooks() -> list[str]:
    """Link ``docs/notebooks/<name>.ipynb`` to ``papermill_runs/<name>.ipynb`` for every source notebook.

    One link per notebook in ``notebooks/`` (the quick preset's executed copy; smoke and full
    copies, ``<name>.<preset>.ipynb``, are not pages). Links to notebooks that no longer exist are
    removed. A source notebook without an executed copy is an error that names the command to run.
    """
    missing = [nb.name for nb in sorted(NOTEBOOKS.glob("*.ipynb")) if not (EXECUTED / nb.name).is_file()]
    if missing:
        raise RuntimeError(f"no executed copy in papermill_runs/ for {', '.join(missing)}: "
                           "run `make reproduce` (or `archscale reproduce --only NAME`) first")
    names = []
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        link = LINKED / nb.name
        target = os.path.relpath(EXECUTED / nb.name, LINKED)
        if link.is_symlink() and os.readlink(link) == target:
            names.append(nb.stem)
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        names.append(nb.stem)
    for stale in LINKED.glob("*.ipynb"):
        if stale.is_symlink() and stale.stem not in names:
            stale.unlink()
    return names


def write_findings_page() -> None:
    """``docs/findings.md`` from the executed copies' "What this run found" sections (made at every
    build and ignored by git, like the notebook links, so it never disagrees with papermill_runs/)."""
    from archscale.notebook.findings import findings_page

    page = DOCS / "findings.md"
    text = findings_page(EXECUTED)
    if not page.exists() or page.read_text() != text:  # rewritten only when it changes
        page.write_text(text)


link_executed_notebooks()
write_findings_page()

# -- project -------------------------------------------------------------------------------------
project = "archscale"
author = "archscale developers"
copyright = "the archscale developers"  # noqa: A001 - Sphinx's name
release = version = "0.1.0"

extensions = [
    "myst_nb",  # Markdown pages and the executed notebooks (registers myst_parser itself)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",  # served from the site itself: see setup() below
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
root_doc = "index"
nitpicky = False  # docstrings name objects with reST roles; an unresolved one is plain text, not an error
suppress_warnings = [
    "myst.header",  # the executed notebooks' headings start at their own level
]

# -- notebooks: render the committed executed copies, never execute --------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN; widget outputs fall back to text
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
add_module_names = False
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("ARCHSCALE_STATIC_WIDGETS", "1")

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "archscale"
html_static_path = ["_static"]
html_css_files = ["archscale.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None  # no build date: the same sources give the same pages
html_theme_options = {"navigation_with_keys": True}


# -- offline MathJax and docstring fixes -------------------------------------------------------------
#: MathJax 3 as the ``sphinx-mathjax-offline`` package ships it, copied into the site's _static/.
#: (Its own extension does the same but does not declare itself safe for parallel builds.)
mathjax_path = "mathjax/tex-chtml.js"
#: ``|z|`` in a docstring means an absolute value, never a reST substitution (none are defined):
#: shown as literal text instead of breaking the build.
_BARS = re.compile(r"(?<![\\`|])\|(?=\S)([^|`\n]*?\S)\|(?![`|\w])")


def _bars_as_literals(app, what, name, obj, options, lines: list[str]) -> None:
    for i, line in enumerate(lines):
        parts = line.split("``")
        parts[::2] = [_BARS.sub(r"``|\1|``", part) for part in parts[::2]]
        lines[i] = "``".join(parts)


def _copy_mathjax(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("sphinx-mathjax-offline is not installed: pip install -e '.[docs]'")
    copy_asset(Path(spec.origin).parent / "static" / "mathjax", Path(app.outdir) / "_static" / "mathjax")


def _docs_links_in_notebooks(app, docname: str, source: list[str]) -> None:
    """Notebooks link to docs pages as ``../docs/<page>.md``, right from ``notebooks/`` and
    ``papermill_runs/`` alike; on the site their pages sit in ``docs/notebooks/``, one level below."""
    if docname.startswith("notebooks/"):
        source[0] = source[0].replace("](../docs/", "](../")


def setup(app):
    app.connect("source-read", _docs_links_in_notebooks)
    app.connect("autodoc-process-docstring", _bars_as_literals)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
