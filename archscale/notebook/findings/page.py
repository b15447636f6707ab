"""One page with every notebook's findings, read from the executed copies (the docs site's findings page).

:func:`findings_page` reads each executed notebook's three-line summary and the Markdown its
"What this run found" cell displayed, so the page always says what the committed runs found; a
copy executed before it had a findings cell is listed with the command that regenerates it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FINDINGS_HEADING", "findings_page", "notebook_findings"]

#: The heading of the section every notebook closes with.
FINDINGS_HEADING = "## What this run found"
_SUMMARY_KEYS = ("**Question.**", "**Measured.**")


def notebook_findings(path: str | os.PathLike) -> tuple[str, list[str], str | None]:
    """An executed notebook's title, its summary lines (question, what it measures) and the Markdown
    its findings cell displayed (None when it has none)."""
    import nbformat

    nb = nbformat.read(Path(path), as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = first.splitlines()[0].lstrip("# ").strip() if first else Path(path).stem
    summary = [line.strip() for line in first.splitlines()
               if line.strip().lstrip("- ").startswith(_SUMMARY_KEYS)]
    heads = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "markdown" and c.source.startswith(FINDINGS_HEADING)]
    found = None
    if heads:
        for cell in nb.cells[heads[-1] + 1:]:
            if cell.cell_type != "code":
                continue
            texts = [o["data"]["text/markdown"] for o in cell.get("outputs", [])
                     if "text/markdown" in o.get("data", {})]
            found = "\n".join(texts) or None
            break
    return title, summary, found


def findings_page(executed: str | os.PathLike, link_prefix: str = "notebooks/") -> str:
    """The findings page: per executed notebook in ``executed``, its title (a link to its page), the
    question it asks and what its run found."""
    lines = ["# What the notebooks found", "",
             "Each notebook closes with a section that states what its own run found, written by "
             "`archscale.notebook.findings` from that run's numbers. This page collects them from the "
             "executed copies in `papermill_runs/` (the quick preset on the CPU unless a notebook says "
             "otherwise), so it always says what the committed runs show. Names follow the {doc}`glossary`.",
             ""]
    for path in sorted(Path(executed).glob("*.ipynb")):
        if "." in path.stem:  # <name>.<preset>.ipynb copies are not pages
            continue
        title, summary, found = notebook_findings(path)
        lines += [f"## {title}", "", f"{{doc}}`The notebook <{link_prefix}{path.stem}>`", ""]
        lines += [line.lstrip("- ") for line in summary if "**Question.**" in line] + [""]
        lines += [found if found else "*This executed copy predates its findings section: `make reproduce` "
                                     "regenerates it.*", ""]
    return "\n".join(lines)
