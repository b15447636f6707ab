"""The DAG explorer's content, without widgets: the pure state and its HTML rendering.

:func:`explorer_state` turns a set of choices (graph, arch, width, kernel, offset, base LR) into
an :class:`ExplorerState` (paths, per-edge init std, the eq. 8/9 prediction through
:func:`archscale.core.scaling.lr_scale`); :func:`readout_html` and :func:`view_html` render it. The
live widget (:mod:`archscale.notebook.widgets`), its static fallback and the app view all show this HTML,
so a reader without a kernel sees what a live session shows.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import pandas as pd

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.kernels import kernel_path_sum, uniform_areas
from ..core.scaling import convention, init_std, lr_scale, readout_std

__all__ = [
    "ARCHES",
    "ExplorerState",
    "check_code",
    "edge_kernels_text",
    "explorer_state",
    "figure",
    "figure_png",
    "parse_edge_kernels",
    "readout_html",
    "resize_code",
    "snapshot_html",
    "view_html",
]

#: Architectures the explorer knows (the DAG MLP/CNN op set: zero, skip, block).
ARCHES = ("mlp", "cnn")
_DASH = "—"


@dataclass(frozen=True)
class ExplorerState:
    """Everything the DAG explorer shows for one set of choices.

    ``paths``: one row per end-to-end path (path, ops, blocks, depth); ``edges``: one row per
    non-zero edge (edge, op, in_degree of the target, fan_in, init_std, he_std; the last three
    are missing for skip edges, which carry no weights); ``scale`` and ``lr`` are the eq. 8/9
    prediction (None when the graph has no path, with ``error`` saying so).
    """

    dag: Dag
    arch: str
    width: int
    kernel_size: int | None
    offset: int
    base_lr: float
    paths: pd.DataFrame
    edges: pd.DataFrame
    readout_std: float
    n_paths: int
    base_path_sum: int
    path_sum: int | None = None
    scale: float | None = None
    lr: float | None = None
    error: str | None = None
    truncated: bool = field(default=False)
    edge_kernels: dict[tuple[int, int], int] = field(default_factory=dict)
    kernel_sum: str | None = None

    @property
    def kernel_factor(self) -> str:
        """The eq. 9 kernel ratio as text (``" × 3/5"``), empty for MLPs."""
        return f" × {convention(self.arch).base_kernel}/{self.kernel_size}" if self.kernel_size else ""

    def formula(self) -> str:
        """How the LR follows: ``η = η_base × (Σ L_p³ / Σ_base L³)^(-1/2) [× q_base/q]`` with numbers;
        with per-edge kernels eq. 9 per edge: ``(Σ_p L_p² (offset·ā + Σ_e q_e²) / q_base² Σ_base L³)^-½``."""
        if self.error:
            return "η = η_base × (Σ_p L_p³ / Σ_base L³)^(-1/2): undefined without a path"
        if self.kernel_sum is not None:
            qb = convention(self.arch).base_kernel
            return (f"η = {self.base_lr:g} × ({self.kernel_sum} / ({qb}² × {self.base_path_sum}))^(-1/2) "
                    f"[Σ_p L_p² ({self.offset}·ā + Σ_e q_e²), eq. 9 per edge] = {self.base_lr:g} × "
                    f"{self.scale:.6g}")
        return (f"η = {self.base_lr:g} × ({self.path_sum} / {self.base_path_sum})^(-1/2)"
                f"{self.kernel_factor} = {self.base_lr:g} × {self.scale:.6g}")

    def depth_summary(self) -> str:
        """``"4 paths: 1 × L=4, 2 × L=5, 1 × L=6"``: the path depths eq. 8 sums over."""
        if self.error:
            return "no input→output path"
        counts = self.dag.depth_counts(self.offset)
        parts = ", ".join(f"{n} × L={d}" for d, n in sorted(counts.items()))
        plural = "s" if self.n_paths != 1 else ""
        return f"{self.n_paths} path{plural}: {parts}  (L_p = {self.offset} + blocks)"

    def summary(self) -> str:
        """One paragraph of plain text: graph, paths, path sum, predicted LR."""
        head = f"DAG {self.dag.code} ({self.arch}, width {self.width}"
        head += f", kernel {self.kernel_size}" if self.kernel_size else ""
        head += f", edge kernels {edge_kernels_text(self.edge_kernels)})" if self.edge_kernels else ")"
        if self.error:
            return f"{head}: {self.error}"
        return (f"{head}: {self.n_paths} end-to-end path(s), sum L_p^3 = {self.path_sum} "
                f"(L_p = {self.offset} + blocks). Predicted LR = {self.lr:.6g}  [{self.formula()}]")


def resize_code(code: str, n_blocks: int) -> str:
    """Keep the first ``n_blocks`` groups of ``code``; extend a shorter one with chain edges.

    New vertex ``i`` gets a block from vertex ``i-1`` and nothing else, so a chain stays a chain.
    """
    n_blocks = validate.positive_int(n_blocks, "depth (number of DAG vertices after the input)")
    groups = Dag.parse(code).code.split("_")
    if n_blocks <= len(groups):
        return "_".join(groups[:n_blocks])
    groups += ["0" * (i - 1) + "2" for i in range(len(groups) + 1, n_blocks + 1)]
    return "_".join(groups)


def parse_edge_kernels(spec: str | Mapping | None, dag: Dag) -> dict[tuple[int, int], int]:
    """Per-edge kernel sizes of a CNN graph: ``"0-2:1, 1-3:5"`` (``→`` or ``->`` also separate the
    vertices) or ``{(0, 2): 1}``; every edge named must be a block (weighted) edge of ``dag``."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return {}
    blocks = [(e.src, e.dst) for e in dag.edges if e.is_parameterized]
    accepted = ", ".join(f"{a}-{b}" for a, b in blocks) or "none"
    items: list[tuple[object, object]]
    if isinstance(spec, str):
        items = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            m = re.fullmatch(r"(\d+)\s*(?:-|->|→)\s*(\d+)\s*:\s*(\d+)", part)
            if m is None:
                raise ArchscaleError(f"cannot read {part!r} as an edge kernel; write src-dst:kernel, e.g. "
                                     f"'0-2:1, 1-3:5' (block edges here: {accepted})")
            items.append(((int(m[1]), int(m[2])), int(m[3])))
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise ArchscaleError(f"edge kernels must be a string like '0-2:1' or a dict {{(0, 2): 1}}, got "
                             f"{type(spec).__name__}")
    out: dict[tuple[int, int], int] = {}
    for edge, k in items:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-|->|→)\s*(\d+)\s*", edge) if isinstance(edge, str) else None
        if m is not None:
            pair = (int(m[1]), int(m[2]))
        elif isinstance(edge, (tuple, list)) and len(edge) == 2:
            pair = (int(edge[0]), int(edge[1]))
        else:
            raise ArchscaleError(f"cannot read {edge!r} as an edge; write (src, dst) or 'src-dst' "
                                 f"(block edges here: {accepted})")
        if pair not in blocks:
            raise ArchscaleError(f"edge {pair[0]}-{pair[1]} is not a block edge of {dag.code}; per-edge "
                                 f"kernels apply to its block edges: {accepted}")
        out[pair] = validate.kernel_size(k, f"the kernel of edge {pair[0]}-{pair[1]}")
    return dict(sorted(out.items()))


def edge_kernels_text(kernels: Mapping[tuple[int, int], int]) -> str:
    """``{(0, 2): 1}`` as ``"0-2:1"`` (what :func:`parse_edge_kernels` reads back)."""
    return ", ".join(f"{a}-{b}:{k}" for (a, b), k in sorted(kernels.items()))


def _edge_table(dag: Dag, width: int, kernel: int | None, kernels: Mapping[tuple[int, int], int]
                ) -> pd.DataFrame:
    rows = []
    for e in dag.edges:
        d_in = dag.live_in_degrees[e.dst]
        weighted = e.is_parameterized
        q = kernels.get((e.src, e.dst), kernel) if weighted else None
        fan_in = width * (q * q if q else 1)
        op = e.op + (" (dead: no input reaches it)" if weighted and not dag.live[e.src] else "")
        rows.append({"edge": f"{e.src}→{e.dst}", "op": op, "kernel": q, "in_degree": d_in,
                     "fan_in": fan_in if weighted else None,
                     "init_std": init_std(fan_in, d_in) if weighted else None,
                     "he_std": init_std(fan_in, 1) if weighted else None})
    columns = ["edge", "op", "kernel", "in_degree", "fan_in", "init_std", "he_std"]
    table = pd.DataFrame(rows, columns=columns).astype({"kernel": "Int64"})
    if kernel is None:
        table = table.drop(columns="kernel")
    return table.astype({"in_degree": "int64", "fan_in": "Int64", "init_std": "float64", "he_std": "float64"})


def explorer_state(code: str | Dag = "2_22_222", arch: str = "mlp", *, n_blocks: int | None = None,
                   width: int = 128, kernel_size: int = 3, offset: int | None = None,
                   base_lr: float = 0.1, max_paths: int = 512,
                   edge_kernels: str | Mapping | None = None) -> ExplorerState:
    """The explorer's content for these choices: paths, per-edge init std, predicted LR.

    ``n_blocks`` resizes the graph with :func:`resize_code`; ``kernel_size`` is used only for
    ``arch="cnn"``, where ``edge_kernels`` (:func:`parse_edge_kernels`: ``"0-2:1"`` makes edge 0->2 a
    1x1 conv) overrides it per block edge and the LR follows eq. 9 per edge
    (:mod:`archscale.core.kernels`, derived in notebook 02); ``offset`` (default: the convention's, 3)
    shifts the target's and the base's depths alike, as in :func:`~archscale.core.scaling.lr_scale`,
    which computes the prediction. At most ``max_paths`` paths are tabulated (``truncated`` says when
    more exist).
    """
    arch = validate.choice(arch, "arch (the explorer accepts)", ARCHES)
    dag_code = code.code if isinstance(code, Dag) else code
    if n_blocks is not None:
        dag_code = resize_code(dag_code, n_blocks)
    dag = Dag.parse(dag_code, ops=arch)
    width = validate.positive_int(width, "width")
    kernel = validate.kernel_size(kernel_size) if arch == "cnn" else None
    conv = convention(arch)
    offset = conv.offset if offset is None else validate.positive_int(offset, "depth offset")
    base_lr = validate.number(base_lr, "base learning rate", positive=True)
    if arch != "cnn" and edge_kernels:
        raise ArchscaleError("per-edge kernels apply to CNNs (arch='cnn'); an MLP's edges have no kernel")
    kernels = parse_edge_kernels(edge_kernels, dag) if arch == "cnn" else {}
    path_rows = []
    truncated = False
    for i, path in enumerate(dag.iter_paths()):
        if i >= max_paths:
            truncated = True
            break
        blocks = dag.path_param_count(path)
        path_rows.append({"path": "→".join(map(str, path)),
                          "ops": ", ".join(dag.op(a, b) for a, b in zip(path, path[1:])),
                          "blocks": blocks, "depth": offset + blocks})
    common = dict(dag=dag, arch=arch, width=width, kernel_size=kernel, offset=offset, base_lr=base_lr,
                  paths=pd.DataFrame(path_rows, columns=["path", "ops", "blocks", "depth"]),
                  edges=_edge_table(dag, width, kernel, kernels), readout_std=readout_std(width),
                  n_paths=dag.n_paths, base_path_sum=Dag.parse(conv.base, ops=arch).path_power_sum(3, offset),
                  truncated=truncated, edge_kernels=kernels)
    if not dag.has_path:
        return ExplorerState(**common, error="no input→output path through non-zero edges: this graph "
                                             "cannot be trained (set an edge on a route to skip or block)")
    if kernels:
        assert kernel is not None
        areas = uniform_areas(dag, kernel)
        areas.update({pair: [Fraction(k * k)] for pair, k in kernels.items()})
        scale = lr_scale(dag, arch, kernel, offset=offset, kernel_areas=areas)
        total = kernel_path_sum(dag, areas, offset, fallback=kernel * kernel)
        shown = str(total) if total.denominator == 1 else f"{float(total):.6g}"
        return ExplorerState(**common, path_sum=dag.path_power_sum(3, offset), scale=scale,
                             lr=base_lr * scale, kernel_sum=shown)
    scale = lr_scale(dag, arch, kernel, offset=offset)
    return ExplorerState(**common, path_sum=dag.path_power_sum(3, offset), scale=scale, lr=base_lr * scale)


# ----------------------------------------------------------------------------------------------
# Rendering: one figure, one readout, one view; the widget, the fallback and the app share them.


def figure(state: ExplorerState):
    """The graph with every path highlighted (a matplotlib ``Figure``, made without pyplot)."""
    from matplotlib.figure import Figure

    from ..plots.dags import draw_dag

    fig = Figure(dpi=100)
    ax = fig.subplots()
    draw_dag(state.dag, ax, arch=state.arch, offset=state.offset, highlight="all")
    # Equal aspect keeps the long edges' arcs (bent in display space) inside the y-limits.
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    ax.set_aspect("equal")
    fig.set_size_inches(1.0 * (x1 - x0) + 3.6, 1.0 * (y1 - y0) + 0.8)
    return fig


def figure_png(state: ExplorerState, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (no metadata, so equal states give equal bytes)."""
    buf = io.BytesIO()
    figure(state).savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def readout_html(state: ExplorerState) -> str:
    """The predicted LR, large, with the formula and the path depths beneath (or the error)."""
    box = ("border-left:4px solid {c};padding:6px 12px;margin:2px 0 6px 0;background:{bg};"
           "line-height:1.35;max-width:100%;box-sizing:border-box;overflow-wrap:anywhere")
    if state.error:
        return (f'<div class="archscale-readout archscale-error" '
                f'style="{box.format(c="#c0392b", bg="#fdf0ee")}">'
                f'<div style="font-size:0.85em;color:#555">Predicted maximal learning rate</div>'
                f'<div class="archscale-lr" style="font-size:1.6em;font-weight:600">{_DASH}</div>'
                f'<div class="archscale-message" style="color:#a93226">{_esc(state.dag.code)}: '
                f'{_esc(state.error)}</div></div>')
    return (f'<div class="archscale-readout" style="{box.format(c="#2e86c1", bg="#f1f7fc")}">'
            f'<div style="font-size:0.85em;color:#555">Predicted maximal learning rate for '
            f'<code>{_esc(state.dag.code)}</code> ({state.arch}, base LR {state.base_lr:g})</div>'
            f'<div><span class="archscale-lr" style="font-size:1.8em;font-weight:600;'
            f'font-variant-numeric:tabular-nums">{state.lr:.6g}</span></div>'
            f'<div class="archscale-formula" style="font-family:var(--jp-code-font-family,monospace);'
            f'font-size:0.9em">{_esc(state.formula())}</div>'
            f'<div style="font-size:0.9em;color:#444">{_esc(state.depth_summary())}</div></div>')


def _cell(value: object) -> object:
    """A table cell as shown: missing values as a dash (never NaN or <NA>), floats to 4 digits."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return _DASH
    return f"{value:.4g}" if isinstance(value, float) else value


def _table_html(df: pd.DataFrame) -> str:
    shown = df.astype(object).apply(lambda col: col.map(_cell))
    table = shown.to_html(index=False, border=0, escape=True)
    table = table.replace("<td>", '<td style="white-space:nowrap">')  # cells scroll sideways, never wrap
    return table.replace('<table border="0" class="dataframe">',
                         '<table class="dataframe" style="border-collapse:collapse;font-size:0.9em">')


def view_html(state: ExplorerState, png: bytes | None = None) -> str:
    """The figure (``png``, drawn when not given) and the path and per-edge tables, side by side
    when there is room and stacked when not."""
    if png is None:
        png = figure_png(state)
    img = (f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
           f'alt="{_esc(state.dag.code)} with its end-to-end paths" '
           f'style="max-width:100%;max-height:440px;width:auto;height:auto;display:block">')
    col = "flex:1 1 300px;min-width:0;max-width:100%"
    scroll = "max-height:360px;overflow:auto"
    parts = []
    if not state.paths.empty:
        more = f" (first {len(state.paths)} of {state.n_paths})" if state.truncated else ""
        parts.append(f'<div style="{col}"><b>End-to-end paths{more}</b>'
                     f'<div style="{scroll}">{_table_html(state.paths)}</div></div>')
    if not state.edges.empty:
        edges = state.edges.rename(columns={"in_degree": "target in-degree", "fan_in": "fan-in",
                                            "init_std": "init std", "he_std": "He std"})
        notes = [f"init std = √(2 / (in-degree × fan-in)); readout std {state.readout_std:.4g} (mean field)."]
        if state.edge_kernels:
            notes.append(f"per-edge kernels {edge_kernels_text(state.edge_kernels)}: fan-in = width × q_e², "
                         f"and the LR follows eq. 9 per edge (ā: the mean q_e² of the block edges).")
        if (state.edges["op"] == "skip").any():
            notes.append(f"{_DASH} : a skip edge is the identity, with no weights to initialize.")
        notes.append("Zero edges are absent and not listed.")
        parts.append(f'<div style="{col}"><b>Per-edge init std</b>'
                     f'<div style="{scroll}">{_table_html(edges)}</div>'
                     f'<div style="font-size:0.85em;color:#555">{"<br>".join(map(_esc, notes))}</div></div>')
    else:
        parts.append(f'<div style="{col}"><b>No non-zero edges</b>: every edge of '
                     f'{_esc(state.dag.code)} is zero, so there is nothing to initialize.</div>')
    return (f'<div class="archscale-view jp-RenderedHTMLCommon" style="padding:0;max-width:100%">{img}'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start">'
            f'{"".join(parts)}</div></div>')


def snapshot_html(state: ExplorerState, png: bytes | None = None, css_class: str = "") -> str:
    """Readout and view in one block: what a reader without a kernel sees of the explorer."""
    return (f'<div class="archscale-snapshot {_esc(css_class)}" style="max-width:100%">'
            f'{readout_html(state)}{view_html(state, png)}</div>')


def check_code(code: str, arch: str) -> Dag:
    """Parse a typed DAG code (surrounding blanks ignored); raise with the reason when invalid."""
    if not isinstance(code, str) or not code.strip():
        raise ArchscaleError("type a DAG code such as 2_02_002 (one group per vertex, digits 0 zero, "
                             "1 skip, 2 block)")
    return Dag.parse(code.strip(), ops=arch)
