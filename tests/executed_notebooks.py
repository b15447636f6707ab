"""What an executed notebook must look like to a reader, as checks shared by the smoke runs and the
committed copies: a summary under the title, a closing findings cell, at most ``MAX_LINES`` printed
lines per cell, one final line per progress bar, and no preset names in figure titles."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from archscale.notebook.tables import MAX_LINES

#: Notebooks rewritten on another branch: until it lands they are held to the output checks only.
WITHOUT_FINDINGS_YET: set[str] = set()
SUMMARY_KEYS = ("**Question.**", "**Measured.**", "**Answer.**")
FINDINGS_HEADING = "## What this run found"
#: A preset or a bundled spec's preset suffix in a title (``mlp_topology_quick``, "quick preset").
PRESET_IN_TITLE = re.compile(r"(?:_|\b)(?:smoke|quick)\b|_full\b|\bfull preset\b", re.IGNORECASE)
#: A text progress bar's redraw (tqdm's ``45%|####``) or a carriage return.
BAR_REDRAW = re.compile(r"\r|\d+%\|")
#: A headless bar's one line: ``desc: n/total unit``.
BAR_LINE = re.compile(r"^(?P<desc>.+): (?P<n>[\d.]+[kMG]?)/(?P<total>[\d.]+[kMG]?)(?: .*)?$")
CHUNKS_LINE = re.compile(r"^(?P<desc>.+): \d+ of \d+ chunks stored")


def output_lines(output) -> int:
    """Lines a reader sees of one output: stream lines, a table's rows, a Markdown text's lines; a
    figure or a collapsed ``<details>`` block counts as one."""
    if output.output_type == "stream":
        return 0 if output.name == "stderr" else len(output.text.splitlines())
    data = output.get("data", {})
    if "image/png" in data or "image/svg+xml" in data:
        return 1
    html = data.get("text/html", "")
    if "<details" in html:
        return 1
    if "<table" in html:
        return html.count("<tr")
    if "text/markdown" in data:
        return len(data["text/markdown"].splitlines())
    return len(data.get("text/plain", "").splitlines())


def _stderr(cell) -> list[str]:
    return [line for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"
            for line in o.text.splitlines()]


def problems(path: Path, *, findings: bool | None = None) -> list[str]:
    """Everything the executed notebook at ``path`` does wrong for a reader (empty: nothing).

    ``findings``: whether to require the summary and the findings cell (default: unless the
    notebook is in :data:`WITHOUT_FINDINGS_YET`).
    """
    nb = nbformat.read(path, as_version=4)
    stem = path.name.split(".")[0]
    out = []
    if findings is None:
        findings = stem not in WITHOUT_FINDINGS_YET
    if findings:
        first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        if first is None or not all(k in first.source for k in SUMMARY_KEYS):
            out.append(f"no three-line summary ({', '.join(SUMMARY_KEYS)}) under the title")
        heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                 and c.source.startswith(FINDINGS_HEADING)]
        if not heads:
            out.append(f"no '{FINDINGS_HEADING}' section")
        else:
            after = [c for c in nb.cells[heads[-1] + 1:] if c.cell_type == "code"]
            shown = [o for c in after[:1] for o in c.get("outputs", [])
                     if "text/markdown" in o.get("data", {}) and "- " in o["data"]["text/markdown"]]
            if not shown:
                out.append("the findings section has no code cell displaying the findings as Markdown")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = sum(output_lines(o) for o in cell.get("outputs", []))
        if lines > MAX_LINES:
            out.append(f"cell {i} prints {lines} lines (at most {MAX_LINES}): collapse its tables")
        err = _stderr(cell)
        redraws = [line for line in err if BAR_REDRAW.search(line)]
        if redraws:
            out.append(f"cell {i} keeps {len(redraws)} progress-bar redraw(s), e.g. {redraws[0][:80]!r}")
        for line in err:
            m = BAR_LINE.match(line)
            if m and m["n"] != m["total"]:
                out.append(f"cell {i}: a progress bar left unfinished: {line[:80]!r}")
        for a, b in zip(err, err[1:]):
            bar, chunks = BAR_LINE.match(a), CHUNKS_LINE.match(b)
            if bar and chunks and bar["desc"] == chunks["desc"]:
                out.append(f"cell {i}: two lines for one progress bar: {a[:60]!r} and {b[:60]!r}")
    return out


def figure_title_problems(png: Path) -> list[str]:
    """Preset names in the titles a figure carries (its PNG ``Title``, written by ``save_figure``)."""
    from PIL import Image

    with Image.open(png) as im:
        title = im.info.get("Title")
    if title is None:
        return [f"{png.name} carries no titles (written before save_figure recorded them: regenerate it)"]
    hits = PRESET_IN_TITLE.findall(title)
    return [f"{png.name}: a preset name in its title: {title!r}"] if hits else []
