"""Output a person reads: short tables, long ones collapsed, rows named by what they are, one glossary.

A notebook cell prints at most :data:`MAX_LINES` lines. :func:`show_table` shows a table inline
when it fits and behind a collapsed HTML ``<details>`` block when it does not (its plain-text
form, what a terminal or an executed copy's text shows, is then one line). :func:`row_label`
names a graph by what a reader cares about (``L = 10`` for a chain, ``K = 8 blocks`` for a
residual chain) with its code beside it, shortened when long. :data:`GLOSSARY` is the one table
of notation and recipe names the notebooks and the docs link to (``docs/glossary.md`` holds
:func:`glossary_markdown` verbatim).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..core.labels import short_code

__all__ = ["GLOSSARY", "MAX_LINES", "Collapsed", "comparison_rows", "glossary", "glossary_markdown",
           "row_label", "short_code", "show_laws", "show_rank_stability", "show_report", "show_table",
           "show_transfers", "transfer_rows"]

#: The most lines one notebook cell prints (stdout and the plain text of what it displays).
MAX_LINES = 30


@dataclass(frozen=True)
class Collapsed:
    """A table behind a collapsed ``<details>`` block; one line of plain text outside a browser."""

    summary: str
    table: pd.DataFrame

    def _repr_html_(self) -> str:
        body = self.table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}")
        return (f"<details><summary>{html.escape(self.summary)} ({len(self.table)} rows: click to "
                f"open)</summary>\n{body}\n</details>")

    def __repr__(self) -> str:
        return f"{self.summary} ({len(self.table)} rows, collapsed: open the HTML output to read them)"


def show_table(table: pd.DataFrame, summary: str, *, max_rows: int = 12, index: bool = False):
    """``table`` to display: itself when it has at most ``max_rows`` rows, else :class:`Collapsed`.

    ``summary`` says what the table holds (the line a reader sees when it is collapsed). With
    ``index`` the index becomes columns first (a pivot's row labels).
    """
    frame = table.reset_index() if index else table
    if len(frame) <= max_rows:
        return frame if index else table
    return Collapsed(summary, frame)


def row_label(code: str, *, depth: int | None = None, offset: int = 3) -> str:
    """A graph named by what a reader cares about, with its (shortened) code beside it.

    ``depth`` given: a residual chain of that many blocks (``K = 8 blocks · 2_12_…``). Otherwise a
    chain of blocks (or the one-hidden-layer base ``1``) is ``L = d`` with the depth convention
    ``offset`` (``L = 10 · 2_02_…``); any other graph is its code alone.
    """
    from ..core.dag import Dag, DagError

    if depth is not None:
        return f"K = {depth} block{'s' if depth != 1 else ''} · {short_code(code)}"
    try:
        dag = Dag.parse(str(code))
    except DagError:
        return str(code)
    chain = dag.n_paths == 1 and len(dag.edges) == dag.n_vertices - 1
    if chain and (all(e.is_parameterized for e in dag.edges) or dag.code == "1"):
        depths = dag.path_depths(offset)
        name = f"L = {depths[0]}" + (" (base)" if dag.code == "1" else "")
        return f"{name} · {short_code(dag.code)}"
    return short_code(dag.code)


def comparison_rows(comp) -> pd.DataFrame:
    """A comparison's configurations for a reader: the graph by :func:`row_label`, kernel (CNNs), the
    measured maximal LR with its interval, the prediction and their ratio; base first, then by scale."""
    t = comp.table.sort_values(["is_base", "scale"], ascending=[False, False])
    out = pd.DataFrame({"graph": [row_label(g) for g in t["graph"]]})
    if (t["kernel_size"] > 0).any():
        out["kernel"] = t["kernel_size"].to_numpy()
    out["measured max LR"] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]"
                              for m, lo, hi in zip(t["measured"], t["measured_lo"], t["measured_hi"])]
    out["predicted"] = t["predicted"].map(lambda v: f"{v:.3g}").to_numpy()
    out["measured / predicted"] = (t["measured"] / t["predicted"]).map(lambda v: f"{v:.2f}").to_numpy()
    out["note"] = ["base" if b else (f"at the grid's {e} edge" if isinstance(e, str) and e else "")
                   for b, e in zip(t["is_base"], t["edge"])]
    return out


def show_report(exp, *, describe: bool = False) -> None:
    """Print an experiment's agreement metrics per group and display each group's configurations
    (:func:`comparison_rows`) collapsed: the report without a wall of rows."""
    from IPython.display import display

    from ..experiments.maxlr import GROUP_NAMES

    print(exp.report(table=False, describe=describe))
    for key, comp in exp.comparisons.items():  # always collapsed: the metrics above are the report
        display(show_table(comparison_rows(comp), f"{GROUP_NAMES.get(key, key)}: measured and predicted "
                                                  f"maximal LR per configuration", max_rows=0))


def show_laws(reports) -> None:
    """Per sweep, the verdict in one line and every law's scores in a collapsed table."""
    from IPython.display import display

    for label, rep in reports.items():
        print(f"{label}: {rep.verdict()}")
        display(Collapsed(f"{label}: every law, zero-shot and held out", rep.ranking()))


def transfer_rows(transfer) -> pd.DataFrame:
    """A depth transfer's table for a reader: K blocks with the code beside, measured, predicted, ratio."""
    t = transfer.table
    return pd.DataFrame({
        "net": [row_label(g, depth=int(k)) for g, k in zip(t["graph"], t["depth"])],
        "measured max LR": [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" + (" *" if e else "") for m, lo, hi, e
                            in zip(t["measured"], t["measured_lo"], t["measured_hi"], t["at_edge"])],
        "predicted": t["predicted"].map(lambda v: f"{v:.3g}").to_numpy(),
        "measured / predicted": [f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
                                 for r, lo, hi in zip(t["ratio"], t["ratio_lo"], t["ratio_hi"])],
    })


def show_transfers(transfers) -> None:
    """Each depth transfer's one-line summary and its per-depth table (``*``: optimum at the grid's edge)."""
    from IPython.display import display

    for tr in transfers:
        print(tr.summary())
        display(show_table(transfer_rows(tr), f"{tr.label}: per depth"))


def show_rank_stability(stability: pd.DataFrame, min_n: int = 5) -> None:
    """Kendall tau per comparison and top-K set (:func:`archscale.nas.rank_stability`), for the sets of at
    least ``min_n`` cells; the smaller sets, too few to rank, are named in one line instead."""
    from IPython.display import display

    small = list(dict.fromkeys((ks, n) for ks, n in zip(stability["ks"], stability["n"]) if n < min_n))
    kept = stability[stability["n"] >= min_n]
    if len(kept):
        display(kept.pivot_table(index="comparison", columns="ks", values="tau", sort=False).round(2))
    if small:
        print("too few cells to rank (Kendall tau not shown): "
              + ", ".join(f"top {ks}% ({n} cells)" for ks, n in small))


#: Notation and recipe names, one meaning each: (term, what it means, where the code names it).
GLOSSARY: list[tuple[str, str, str]] = [
    ("graph code", "one group per vertex after the input, separated by `_`; group *i* holds one digit per "
     "earlier vertex 0 … i−1 naming the edge into vertex *i*: `0` none, `1` skip (identity), `2` block "
     "(Linear or Conv with its activation). `2_02_002` is a chain of three blocks, `2_22_222` the fully "
     "connected four-vertex graph", "`Dag.parse`"),
    ("NAS-Bench-201 code", "the same layout on 4 vertices with digits `0` none, `1` skip, `2` 1×1 conv, "
     "`3` 3×3 conv, `4` 3×3 average pool", "`ops=\"nb201\"`"),
    ("L, L_p", "depth of a path: blocks on it + 3 for DAG MLPs/CNNs (stem, readout, base hidden layer); "
     "1 + convs on it for NAS cells. `L = 10` is a chain of 7 blocks", "`offset`"),
    ("K", "number of residual blocks in a residual chain (a skip beside the weighted layers of each block)",
     "notebooks 10, 11"),
    ("base", "the network whose maximal LR is measured and transferred: one hidden layer (`1`, L = 3); the "
     "all-skip cell `1_01_001` for NAS cells", "`base=`"),
    ("maximal LR", "the grid learning rate with the lowest seed-mean training loss of the last epoch "
     "(diverged runs count as worse than every finite one)", "`max_lr`, `best_lr`"),
    ("eq. 8 (eq. 9)", "the path-sum law: η(graph) = η(base) · (Σ_p L_p³ / Σ_base L_p³)^(−1/2), times "
     "q_base / q for CNNs of kernel q", "law `eq8`"),
    ("paper layout", "each edge is W · act(z_src): vertices sum pre-activations (the paper's eq. 1)",
     "`layout=\"paper\"`"),
    ("reference layout", "each edge is act(W · h_src): vertices sum post-activations (the reference code)",
     "`layout=\"reference\"`"),
    ("target in-degree init", "He variance divided by the in-degree of the vertex the edge enters (the "
     "appendix derivation)", "`init=\"archscale\"`"),
    ("source in-degree init", "He variance divided by the in-degree of the vertex the edge leaves (the "
     "typeset eq. 4)", "`init=\"source\"`"),
    ("reference-code init", "the reference code's hidden layers: the source in-degree rule in fan-out mode",
     "`init=\"reference\"`"),
    ("He init", "variance 2 / fan-in on every edge, whatever the graph", "`init=\"he\"`"),
    ("mean-field readout", "readout variance 2 / n² (the paper's)", "`readout=\"mean_field\"`"),
    ("standard readout", "readout variance 2 / n: the standard parametrization. *Standard* means this and "
     "nothing else", "`readout=\"standard\"`"),
    ("reference-code readout", "readout std 2 / out_dim = 0.2 for ten classes (about 17× the mean-field "
     "std at width 128)", "`readout=\"reference\"`"),
    ("the paper's stated recipe", "paper layout + target in-degree init + mean-field readout, LR by eq. 8",
     "`paper / archscale / mean_field`"),
    ("the reference code's recipe", "reference layout + reference-code init + reference-code readout, LR by "
     "eq. 8; the bundled sweep presets train with it", "`reference / reference / reference`"),
    ("one fixed LR (NAS)", "NAS-Bench-201's protocol: one LR for every cell, He init, standard readout",
     "NAS recipe `fixed`"),
    ("architecture-aware (NAS)", "the paper's recipe on NAS cells: eq. 8's LR per cell, target in-degree "
     "init, mean-field readout", "NAS recipe `archscale`"),
    ("muP (NAS)", "the `mup` package's width rules (MuReadout, per-layer LRs), one LR for every cell",
     "NAS recipe `mup`"),
    ("plain residual", "residual blocks with no branch multiplier", "parametrization `standard` in "
     "`residual_depth`"),
    ("Depth-muP branches", "every residual branch multiplied by 1/√K, one LR at every depth",
     "`branch_multiplier=\"depth_mup\"`"),
    ("error factor", "exp(RMS of ln measured − ln predicted) over the non-base graphs: how far a typical "
     "prediction is off (1 = exact)", "`error_factor`"),
    ("bias", "exp(mean of ln measured − ln predicted): below 1 the predictions are too high", "`bias`"),
    ("log r", "Pearson r of log measured and log predicted maximal LRs, base excluded", "`pearson_log`"),
]


def glossary_markdown(terms: Sequence[str] | None = None) -> str:
    """The glossary as a Markdown table (every term, or those named in ``terms``)."""
    rows = [r for r in GLOSSARY if terms is None or r[0] in terms]
    lines = ["| term | meaning | in the code |", "|---|---|---|"]
    lines += [f"| {term} | {meaning} | {code} |" for term, meaning, code in rows]
    return "\n".join(lines)


def glossary(terms: Sequence[str] | None = None):
    """The glossary to display in a notebook (Markdown)."""
    from IPython.display import Markdown

    return Markdown(glossary_markdown(terms))
