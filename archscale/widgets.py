"""Interactive explorers for notebooks (ipywidgets), with a static fallback for headless runs.

``dag_explorer("2_22_222")`` is the one call: in JupyterLab it returns a live widget (one
dropdown per edge, sliders for depth, width, kernel size, offset and base LR); under papermill or
outside a kernel it returns a static view (figure and tables) of the same state. The state itself
is computed by the pure function :func:`explorer_state`, which the tests drive directly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import ipywidgets as w
import pandas as pd

from . import validate
from .dag import OP_SETS, Dag
from .errors import ArchscaleError
from .scaling import convention, init_std, lr_scale, readout_std

__all__ = [
    "STATIC_ENV",
    "DagExplorer",
    "ExplorerState",
    "StaticExplorer",
    "dag_explorer",
    "explorer_state",
    "has_frontend",
    "resize_code",
]

#: Set to ``1`` to force static output (``archscale reproduce`` and the notebook tests do), ``0``
#: to force live widgets.
STATIC_ENV = "ARCHSCALE_STATIC_WIDGETS"

_ARCHES = ("mlp", "cnn")
_OPS = OP_SETS["mlp"]  # zero, skip, block



@dataclass(frozen=True)
class ExplorerState:
    """Everything the DAG explorer shows for one set of choices.

    ``paths``: one row per end-to-end path (path, ops, blocks, depth); ``edges``: one row per
    non-zero edge (edge, op, in_degree of the target, fan_in, init_std, he_std); ``scale`` and
    ``lr`` are the eq. 8/9 prediction (None when the graph has no path, with ``error`` saying so).
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
    path_sum: int | None = None
    scale: float | None = None
    lr: float | None = None
    error: str | None = None
    truncated: bool = field(default=False)

    def summary(self) -> str:
        """One paragraph of plain text: graph, paths, path sum, predicted LR."""
        head = f"DAG {self.dag.code} ({self.arch}, width {self.width}"
        head += f", kernel {self.kernel_size})" if self.kernel_size else ")"
        if self.error:
            return f"{head}: {self.error}"
        kern = (f" x {convention(self.arch).base_kernel}/{self.kernel_size} (kernel)"
                if self.kernel_size else "")
        return (f"{head}: {self.n_paths} end-to-end path(s), sum L_p^3 = {self.path_sum} "
                f"(L_p = {self.offset} + blocks). Predicted LR = base {self.base_lr:g} x "
                f"{self.scale:.4g} = {self.lr:.4g}  [(sum L_p^3 / {self.offset}^3)^(-1/2){kern}]")


def resize_code(code: str, n_blocks: int) -> str:
    """Keep the first ``n_blocks`` groups of ``code``; extend a shorter one with chain edges.

    New vertex ``i`` gets a block from vertex ``i-1`` and nothing else, so a chain stays a chain.
    """
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
        raise ArchscaleError(f"depth (number of DAG vertices after the input) must be an integer >= 1, "
                          f"got {n_blocks!r}")
    groups = Dag.parse(code).code.split("_")
    if n_blocks <= len(groups):
        return "_".join(groups[:n_blocks])
    groups += ["0" * (i - 1) + "2" for i in range(len(groups) + 1, n_blocks + 1)]
    return "_".join(groups)


def _check_int(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ArchscaleError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def explorer_state(code: str | Dag = "2_22_222", arch: str = "mlp", *, n_blocks: int | None = None,
                   width: int = 128, kernel_size: int = 3, offset: int | None = None,
                   base_lr: float = 0.1, max_paths: int = 512) -> ExplorerState:
    """The explorer's content for these choices: paths, per-edge init std, predicted LR.

    ``n_blocks`` resizes the graph with :func:`resize_code`; ``kernel_size`` is used only for
    ``arch="cnn"``; ``offset`` defaults to the convention's (3). At most ``max_paths`` paths are
    tabulated (``truncated`` says when more exist).
    """
    if arch not in _ARCHES:
        raise ArchscaleError(f"unknown arch {arch!r}; the explorer accepts {', '.join(_ARCHES)}")
    dag_code = code.code if isinstance(code, Dag) else code
    if n_blocks is not None:
        dag_code = resize_code(dag_code, n_blocks)
    dag = Dag.parse(dag_code, ops=arch)
    width = _check_int(width, "width")
    kernel = validate.kernel_size(kernel_size) if arch == "cnn" else None
    conv = convention(arch)
    offset = conv.offset if offset is None else _check_int(offset, "offset")
    if not (isinstance(base_lr, int | float) and math.isfinite(base_lr) and base_lr > 0):
        raise ArchscaleError(f"base learning rate must be a positive number such as 0.1, got {base_lr!r}")
    fan_in = width * (kernel * kernel if kernel else 1)
    edge_rows = []
    for e in dag.edges:
        row = {"edge": f"{e.src}→{e.dst}", "op": e.op, "in_degree": dag.live_in_degrees[e.dst],
               "fan_in": fan_in if e.is_parameterized else None,
               "init_std": init_std(fan_in, dag.live_in_degrees[e.dst]) if e.is_parameterized else None,
               "he_std": init_std(fan_in, 1) if e.is_parameterized else None}
        if e.is_parameterized and not dag.live[e.src]:
            row["op"] += " (dead: no input reaches it)"
        edge_rows.append(row)
    edges = pd.DataFrame(edge_rows, columns=["edge", "op", "in_degree", "fan_in", "init_std", "he_std"])
    path_rows = []
    truncated = False
    for i, path in enumerate(dag.iter_paths()):
        if i >= max_paths:
            truncated = True
            break
        ops = [dag.op(a, b) for a, b in zip(path, path[1:])]
        blocks = dag.path_param_count(path)
        path_rows.append({"path": "→".join(map(str, path)), "ops": ", ".join(ops), "blocks": blocks,
                          "depth": offset + blocks})
    paths = pd.DataFrame(path_rows, columns=["path", "ops", "blocks", "depth"])
    common = dict(dag=dag, arch=arch, width=width, kernel_size=kernel, offset=offset, base_lr=float(base_lr),
                  paths=paths, edges=edges, readout_std=readout_std(width), n_paths=dag.n_paths,
                  truncated=truncated)
    if not dag.has_path:
        return ExplorerState(**common, error="no input→output path through non-zero edges: this graph "
                                             "cannot be trained (set an edge on a route to skip or block)")
    scale = lr_scale(dag, arch, kernel, offset=offset)
    return ExplorerState(**common, path_sum=dag.path_power_sum(3, offset), scale=scale,
                         lr=float(base_lr) * scale)


def has_frontend() -> bool:
    """Whether live widgets can render here: a Jupyter kernel serving an interactive client.

    Headless executors (papermill, nbclient, ``nbconvert --execute``) send their execute requests
    with ``allow_stdin=False``, while JupyterLab, Notebook and VS Code allow input, so that flag
    tells them apart. ``$ARCHSCALE_STATIC_WIDGETS`` = ``1``/``0`` overrides the guess.
    """
    forced = os.environ.get(STATIC_ENV, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None) if shell is not None else None
    if kernel is None:
        return False
    if forced in ("0", "false", "no"):
        return True
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        request = kernel.get_parent()
        return bool(request.get("content", {}).get("allow_stdin", True))
    except Exception:  # an ipykernel without get_parent: assume a frontend
        return True


def _figure(state: ExplorerState):
    import matplotlib.pyplot as plt

    from .plots.dags import draw_dag

    fig, ax = plt.subplots(figsize=(2.4 + 1.2 * state.dag.n_vertices, 2.8))
    draw_dag(state.dag, ax, arch=state.arch, offset=state.offset, highlight="all")
    return fig


def _show(state: ExplorerState) -> None:
    """Display the figure, the summary and both tables in the current output."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    fig = _figure(state)
    display(fig)
    plt.close(fig)
    print(state.summary())
    if not state.paths.empty:
        more = f" (first {len(state.paths)} of {state.n_paths})" if state.truncated else ""
        display(Markdown(f"**End-to-end paths{more}**"))
        display(state.paths)
    display(Markdown(f"**Per-edge init std** (target in-degree rule; readout std {state.readout_std:.4g})"))
    display(state.edges)


class StaticExplorer:
    """The explorer's output without a frontend: displays the figure and tables when shown."""

    def __init__(self, state: ExplorerState):
        self.state = state

    def _ipython_display_(self) -> None:
        _show(self.state)

    def __repr__(self) -> str:
        return self.state.summary()


class DagExplorer(w.VBox):
    """Live DAG explorer: edit edges and sliders, and the drawing, tables and predicted LR redraw.

    ``.state`` holds the current :class:`ExplorerState`; ``.set_op(src, dst, op)`` and the slider
    attributes (``depth``, ``width``, ``kernel``, ``offset``, ``base_lr``, ``arch``) drive it.
    """

    def __init__(self, code: str = "2_22_222", arch: str = "mlp", *, width: int = 128,
                 kernel_size: int = 3, offset: int | None = None, base_lr: float = 0.1,
                 max_blocks: int = 6):
        first = explorer_state(code, arch, width=width, kernel_size=kernel_size, offset=offset,
                               base_lr=base_lr)
        self.state = first
        self._code = first.dag.code
        n_blocks = first.dag.n_vertices - 1
        style = {"description_width": "initial"}
        self.arch = w.ToggleButtons(options=list(_ARCHES), value=arch, description="arch",
                                    style=style)
        self.depth = w.IntSlider(value=n_blocks, min=1, max=max(max_blocks, n_blocks),
                                 description="depth (chain length)", style=style, continuous_update=False)
        self.width = w.IntSlider(value=width, min=8, max=max(2048, width), step=8, description="width",
                                 continuous_update=False)
        self.kernel = w.IntSlider(value=kernel_size, min=1, max=11, step=2, description="kernel size",
                                  disabled=arch != "cnn", style=style, continuous_update=False)
        self.offset = w.IntSlider(value=first.offset, min=1, max=8, description="depth offset",
                                  style=style, continuous_update=False)
        self.base_lr = w.FloatLogSlider(value=base_lr, base=10, min=-4, max=1, step=0.05,
                                        description="base max LR", style=style, continuous_update=False)
        self.edge_box = w.VBox()
        self.out = w.Output()
        self.dropdowns: dict[tuple[int, int], w.Dropdown] = {}
        for slider in (self.arch, self.depth, self.width, self.kernel, self.offset, self.base_lr):
            slider.observe(self._on_change, names="value")
        self._build_dropdowns()
        controls = w.VBox([self.arch, self.depth, self.width, self.kernel, self.offset, self.base_lr])
        super().__init__([w.HBox([controls, self.edge_box]), self.out])
        self.refresh()

    def _build_dropdowns(self) -> None:
        dag = Dag.parse(self._code)
        self.dropdowns = {}
        rows = []
        for dst in range(1, dag.n_vertices):
            cells = [w.Label(f"into {dst}:")]
            for src in range(dst):
                dd = w.Dropdown(options=list(_OPS), value=dag.op(src, dst), description=f"{src}→{dst}",
                                layout=w.Layout(width="150px"), style={"description_width": "40px"})
                dd.observe(self._on_edge, names="value")
                self.dropdowns[(src, dst)] = dd
                cells.append(dd)
            rows.append(w.HBox(cells))
        self.edge_box.children = rows

    def _on_edge(self, change) -> None:
        groups = []
        n = len(self._code.split("_"))
        for dst in range(1, n + 1):
            groups.append("".join(str(_OPS.index(self.dropdowns[(src, dst)].value)) for src in range(dst)))
        self._code = "_".join(groups)
        self.refresh()

    def _on_change(self, change) -> None:
        if change["owner"] is self.depth:
            self._code = resize_code(self._code, self.depth.value)
            self._build_dropdowns()
        self.kernel.disabled = self.arch.value != "cnn"
        self.refresh()

    def set_op(self, src: int, dst: int, op: str) -> None:
        """Choose the op of edge ``src -> dst`` (``zero``, ``skip`` or ``block``)."""
        if (src, dst) not in self.dropdowns:
            raise ArchscaleError(f"no edge {src}->{dst} in {self._code!r}")
        if op not in _OPS:
            raise ArchscaleError(f"unknown op {op!r}; accepted: {', '.join(_OPS)}")
        self.dropdowns[(src, dst)].value = op

    @property
    def code(self) -> str:
        return self._code

    def refresh(self) -> None:
        """Recompute the state from the controls and redraw the output area."""
        try:
            self.state = explorer_state(self._code, self.arch.value, width=self.width.value,
                                        kernel_size=self.kernel.value, offset=self.offset.value,
                                        base_lr=float(self.base_lr.value))
        except ValueError as err:
            with self.out:
                self.out.clear_output(wait=True)
                print(f"error: {err}")
            return
        with self.out:
            self.out.clear_output(wait=True)
            _show(self.state)



def dag_explorer(code: str = "2_22_222", arch: str = "mlp", *, width: int = 128, kernel_size: int = 3,
                 offset: int | None = None, base_lr: float = 0.1, max_blocks: int = 6,
                 static: bool | None = None):
    """The DAG explorer: a live widget in JupyterLab, a static figure and tables otherwise.

    ``static=None`` decides with :func:`has_frontend` (static under papermill and outside a
    kernel); put the call last in a cell (or pass it to ``display``) to show it.
    """
    if static is None:
        static = not has_frontend()
    if static:
        return StaticExplorer(explorer_state(code, arch, width=width, kernel_size=kernel_size,
                                             offset=offset, base_lr=base_lr))
    return DagExplorer(code, arch, width=width, kernel_size=kernel_size, offset=offset, base_lr=base_lr,
                       max_blocks=max_blocks)
