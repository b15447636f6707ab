"""Interactive explorers for notebooks (ipywidgets), with a static fallback for headless runs.

``dag_explorer("2_22_222")`` is the one call: in JupyterLab it returns a live widget (a DAG code
field, one dropdown per edge, sliders for depth, width, kernel size, offset and base LR, the
predicted LR as a large readout); under papermill or outside a kernel it returns a static view
(readout, figure and tables) of the same state. Both render :mod:`archscale.notebook.explorer`'s HTML from
the pure function :func:`explorer_state`, which the tests drive directly.
"""

from __future__ import annotations

import base64
import html
import os
import threading
import uuid
from contextlib import contextmanager

import ipywidgets as w

from ..core.dag import OP_SETS
from ..core.errors import ArchscaleError
from ..frontend import STATIC_ENV, has_frontend, text_progress_when_headless
from .explorer import (
    ARCHES,
    ExplorerState,
    check_code,
    edge_kernels_text,
    explorer_state,
    figure,
    figure_png,
    readout_html,
    resize_code,
    snapshot_html,
    view_html,
)

__all__ = [
    "STATIC_ENV",
    "STATIC_NOTE",
    "DagExplorer",
    "ExplorerState",
    "StaticExplorer",
    "dag_explorer",
    "explorer_state",
    "has_frontend",
    "resize_code",
    "text_progress_when_headless",
]

_OPS = OP_SETS["mlp"]  # zero, skip, block
#: Hover text of every control (no control is left with an empty or "null" tooltip).
_TIPS = {
    "arch": "network type: MLP (eq. 8) or CNN (eq. 9, adds the kernel factor)",
    "mlp": "DAG MLP: Linear blocks (eq. 8)",
    "cnn": "DAG CNN: Conv blocks, LR × base kernel / kernel (eq. 9)",
    "depth": "number of vertices after the input; growing it extends the graph as a chain, shrinking "
             "it drops the last vertices",
    "width": "hidden width n: sets each edge's fan-in (n, or n·q² for a CNN) and so its init std; the "
             "LR rule does not depend on it",
    "kernel": "CNN kernel size q (odd): the LR scales by 3/q (eq. 9); MLPs ignore it",
    "edge_kernels": "CNN only: other kernel sizes for some block edges, as src-dst:q (e.g. 0-2:1 for a 1x1 "
                    "edge); the LR then follows eq. 9 per edge. Press Enter to apply.",
    "offset": "depth offset: a path's depth is L_p = offset + its blocks, for the graph and the one-path "
              "base alike (3 counts stem, readout and the base's hidden layer)",
    "base_lr": "maximal LR measured on the base network (one hidden layer, L = offset); the prediction "
               "scales it",
    "code": "groups split by _, one per vertex; a digit per earlier vertex: 0 zero, 1 skip, 2 block. "
            "Press Enter to apply.",
    "save": "write the drawing as PNG and PDF (figures folder) and offer downloads",
}
_EDGE_TIP = ("op of the edge {src}→{dst}: zero = no edge, skip = identity (no weights, adds 0 to "
             "the path depth), block = Linear/Conv + ReLU (adds 1)")


#: The line above every static copy of the explorer: what it is and how to get the live one.
STATIC_NOTE = ("<div style='font-size:0.85em;color:#777'>Static copy of the DAG explorer, for readers "
               "without a running kernel (run the cell in JupyterLab for the live version).</div>")


class StaticExplorer:
    """The explorer's output without a frontend: readout, figure and tables as one HTML block."""

    def __init__(self, state: ExplorerState):
        self.state = state

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/html": STATIC_NOTE + snapshot_html(self.state),
                "text/plain": self.state.summary()}

    def __repr__(self) -> str:
        return self.state.summary()


def _error_html(message: str, css_class: str = "archscale-message") -> str:
    return f'<span class="{css_class}" style="color:#a93226">{html.escape(message)}</span>'


def _html(value: str = "", **layout) -> w.HTML:
    """An HTML widget with an empty tooltip, so its hidden label carries no ``title="null"``."""
    return w.HTML(value, tooltip="", layout=w.Layout(**layout))


def _label(text: str, tooltip: str, width: str) -> w.HTML:
    """A control's label that shows ``tooltip`` on hover (an HTML ``title``)."""
    return _html(f'<span class="widget-label" title="{html.escape(tooltip)}" style="width:auto">'
                 f"{html.escape(text)}</span>", width=width, flex="0 0 auto")


def _slider(kind, tooltip: str, **kwargs):
    """A slider that fills its grid cell, updates on release and explains itself on hover."""
    return kind(continuous_update=False, tooltip=tooltip, style={"description_width": "92px"},
                layout=w.Layout(width="auto", min_width="0"), **kwargs)


def _copy_button(label: str, text: str, tooltip: str) -> str:
    """An HTML button that puts ``text`` on the clipboard (a browser click; no kernel round trip)."""
    done = "this.textContent='copied ✓';setTimeout(()=>{this.textContent=this.dataset.label},1500)"
    click = f"navigator.clipboard.writeText(this.dataset.copy).then(()=>{{{done}}})"
    return (f'<button class="jupyter-button archscale-copy" style="margin:2px 4px 2px 0" '
            f'data-copy="{html.escape(text)}" data-label="{html.escape(label)}" '
            f'title="{html.escape(tooltip)}" onclick="{html.escape(click)}">{html.escape(label)}</button>')


class DagExplorer(w.VBox):
    """Live DAG explorer: edit the code, the edges or the sliders, and the readout and drawing follow.

    ``.state`` holds the current :class:`ExplorerState` (updated at once); the drawing and tables
    are redrawn ``debounce`` seconds after the last change (0: at once), with a busy note
    meanwhile. ``.set_op(src, dst, op)``, ``.set_code(code)`` and the controls (``depth``,
    ``width``, ``kernel``, ``offset``, ``base_lr``, ``arch``, ``code_field``) drive it.
    ``snapshot`` also displays a static copy beside the widget, hidden while the widget renders,
    so a notebook saved and reopened without a kernel still shows the content.
    """

    def __init__(self, code: str = "2_22_222", arch: str = "mlp", *, width: int = 128,
                 kernel_size: int = 3, offset: int | None = None, base_lr: float = 0.1,
                 max_blocks: int = 8, debounce: float = 0.0, snapshot: bool = False,
                 figures_dir: str | os.PathLike | None = None, edge_kernels: str | None = None):
        first = explorer_state(code, arch, width=width, kernel_size=kernel_size, offset=offset,
                               base_lr=base_lr, edge_kernels=edge_kernels)
        self.state = first
        self._code = first.dag.code
        self._debounce = float(debounce)
        self._figures_dir = figures_dir
        self._uid = uuid.uuid4().hex[:12]
        self._quiet = False  # True while the explorer sets its own controls
        self._setting_error = False  # code_msg shows an error of the settings (e.g. the edge kernels)
        self._lock = threading.Lock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._snapshot_handle = None
        self._want_snapshot = snapshot
        self._png: bytes | None = None
        n_blocks = first.dag.n_vertices - 1
        self.arch = w.ToggleButtons(
            options=list(ARCHES), value=arch, description="arch", tooltip=_TIPS["arch"],
            tooltips=[_TIPS[a] for a in ARCHES], style={"button_width": "56px", "description_width": "92px"},
            layout=w.Layout(width="auto", min_width="0"))
        self.depth = _slider(w.IntSlider, _TIPS["depth"], value=n_blocks, min=1,
                             max=max(max_blocks, n_blocks), description="depth")
        self.width = _slider(w.IntSlider, _TIPS["width"], value=width, min=8, max=max(2048, width), step=8,
                             description="width")
        self.kernel = _slider(w.IntSlider, _TIPS["kernel"], value=kernel_size, min=1, max=11, step=2,
                              description="kernel size", disabled=arch != "cnn")
        self.offset = _slider(w.IntSlider, _TIPS["offset"], value=first.offset, min=1, max=8,
                              description="depth offset")
        self.base_lr = _slider(w.FloatLogSlider, _TIPS["base_lr"], value=base_lr, base=10, min=-4, max=1,
                               step=0.05, readout_format=".3g", description="base max LR")
        # Text and Dropdown show their tooltip only without a description: labels are separate HTML.
        self.code_field = w.Text(value=self._code, placeholder="e.g. 2_02_002", continuous_update=False,
                                 tooltip=_TIPS["code"], layout=w.Layout(width="auto", min_width="0",
                                                                        flex="1 1 200px", max_width="360px"))
        self.edge_kernels = w.Text(value=edge_kernels_text(first.edge_kernels), placeholder="e.g. 0-2:1",
                                   continuous_update=False, tooltip=_TIPS["edge_kernels"],
                                   disabled=arch != "cnn",
                                   layout=w.Layout(width="auto", min_width="0", flex="1 1 160px",
                                                   max_width="260px"))
        self.code_msg = _html(width="100%")
        self.readout = _html(width="100%")
        self.copy = _html()
        self.save = w.Button(description="Save figure", icon="download", tooltip=_TIPS["save"])
        self.save_msg = _html(width="100%")
        self.status = _html(width="100%", min_height="1.4em")
        self.view = _html(width="100%")
        self.edge_box = w.VBox(layout=w.Layout(width="100%", overflow="auto"))
        self.dropdowns: dict[tuple[int, int], w.Dropdown] = {}
        for control in (self.arch, self.width, self.kernel, self.offset, self.base_lr, self.edge_kernels):
            control.observe(self._on_setting, names="value")
        self.depth.observe(self._on_depth, names="value")
        self.code_field.observe(self._on_code_field, names="value")
        self.save.on_click(self._on_save)
        self._build_dropdowns()
        css = _html(self._css(), display="none")
        columns = "repeat(auto-fill, minmax(min(250px, 100%), 1fr))"  # 1-4 columns, never narrower than 250px
        controls = w.GridBox([self.arch, self.depth, self.width, self.kernel, self.offset, self.base_lr],
                             layout=w.Layout(grid_template_columns=columns, grid_gap="2px 16px"))
        code_label = _label("DAG code", _TIPS["code"], "70px")
        kernels_label = _label("edge kernels", _TIPS["edge_kernels"], "92px")
        actions = w.HBox([code_label, self.code_field, kernels_label, self.edge_kernels, self.copy,
                          self.save],
                         layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"))
        edges_title = _html("<b>Edges</b> <span style='color:#555'>(op of each edge into vertex i)</span>")
        super().__init__([css, self.readout, actions, self.code_msg, self.save_msg, controls, edges_title,
                          self.edge_box, self.status, self.view],
                         layout=w.Layout(width="100%", max_width="1600px"))
        self.add_class("archscale-explorer")
        self.arch.add_class("widget-inline-hbox")  # label and buttons on one line
        for name in ("arch", "depth", "width", "kernel", "offset", "base_lr", "code_field", "edge_kernels",
                     "save"):
            getattr(self, name).add_class(f"archscale-{name.replace('_', '-')}")  # stable hooks for tests
        self._update(now=True)

    def _css(self) -> str:
        return ("<style>"
                f".jp-OutputArea-child:has(.archscale-snapshot-{self._uid}) {{display: none;}}"
                ".archscale-explorer.archscale-busy .archscale-view {opacity: 0.5; transition: opacity .2s;}"
                ".archscale-explorer .widget-html-content {white-space: normal; line-height: 1.4;}"
                ".archscale-spinner {display: inline-block; width: 0.8em; height: 0.8em;"
                " vertical-align: -0.1em; border: 2px solid #888; border-top-color: transparent;"
                " border-radius: 50%; animation: archscale-spin 0.8s linear infinite;}"
                "@keyframes archscale-spin {to {transform: rotate(360deg);}}"
                ".archscale-explorer .widget-html {max-width: 100%;}"
                "</style>")

    # -- the graph's code, kept in step with the dropdowns, the depth slider and the text field --

    def _build_dropdowns(self) -> None:
        for dd in self.dropdowns.values():
            dd.close()
        n = self._code.count("_") + 1
        self.dropdowns = {}
        rows = []
        digits = self._code.split("_")
        for dst in range(1, n + 1):
            tip = f"edges entering vertex {dst}" + (" (the output)" if dst == n else "")
            label = _label(f"into {dst}", tip, "56px")
            cells = []
            for src in range(dst):
                tip = _EDGE_TIP.format(src=src, dst=dst)
                dd = w.Dropdown(options=list(_OPS), value=_OPS[int(digits[dst - 1][src])], tooltip=tip,
                                layout=w.Layout(width="78px"))
                dd.add_class(f"archscale-edge-{src}-{dst}")
                dd.observe(self._on_edge, names="value")
                self.dropdowns[(src, dst)] = dd
                cells.append(w.HBox([_label(f"{src}→{dst}", tip, "36px"), dd],
                                    layout=w.Layout(margin="0 6px 0 0")))
            rows.append(w.HBox([label, w.HBox(cells, layout=w.Layout(flex_flow="row wrap", flex="1 1 0",
                                                                    min_width="0"))]))
        self.edge_box.children = rows

    @contextmanager
    def _quietly(self):
        self._quiet, before = True, self._quiet
        try:
            yield
        finally:
            self._quiet = before

    def set_code(self, code: str) -> None:
        """Show graph ``code``: the text field, the depth slider and the dropdowns follow.

        An invalid code raises (the widget's text field shows the message instead).
        """
        code = check_code(code, self.arch.value).code
        with self._quietly():
            self._code = code
            self.code_field.value = code
            n = code.count("_") + 1
            self.depth.max = max(self.depth.max, n)
            self.depth.value = n
            if len(self.dropdowns) != n * (n + 1) // 2:
                self._build_dropdowns()
            else:
                for (src, dst), dd in self.dropdowns.items():
                    dd.value = _OPS[int(code.split("_")[dst - 1][src])]
        self.code_msg.value = ""
        self._update()

    def _on_code_field(self, change) -> None:
        if self._quiet:
            return
        try:
            self.set_code(change["new"])
        except ArchscaleError as err:
            self.code_msg.value = _error_html(f"{err} (still showing {self._code})", "archscale-code-error")

    def _on_edge(self, change) -> None:
        if self._quiet:
            return
        n = self._code.count("_") + 1
        self.set_code("_".join("".join(str(_OPS.index(self.dropdowns[(s, d)].value)) for s in range(d))
                               for d in range(1, n + 1)))

    def _on_depth(self, change) -> None:
        if not self._quiet:
            self.set_code(resize_code(self._code, change["new"]))

    def _on_setting(self, change) -> None:
        self.kernel.disabled = self.edge_kernels.disabled = self.arch.value != "cnn"
        self._update()

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

    # -- state, readout and (debounced) drawing --

    def _update(self, now: bool = False) -> None:
        """Recompute the state from the controls; show the readout now and redraw the view soon."""
        try:
            state = explorer_state(self._code, self.arch.value, width=self.width.value,
                                   kernel_size=self.kernel.value, offset=self.offset.value,
                                   base_lr=float(self.base_lr.value),
                                   edge_kernels=self.edge_kernels.value if self.arch.value == "cnn" else None)
        except ArchscaleError as err:
            self.code_msg.value = _error_html(str(err))
            self._setting_error = True
            return
        if self._setting_error:  # the settings' own error is over (a code-field error stays)
            self.code_msg.value, self._setting_error = "", False
        self.state = state
        deferred = not now and self._debounce > 0
        if deferred:  # marked busy before the readout changes, so no one sees a new readout over an old view
            self.add_class("archscale-busy")
        self.readout.value = readout_html(state)
        self.save_msg.value = ""  # a saved-figure note describes the previous graph
        lr = f"{state.lr:.6g}" if state.lr is not None else ""
        self.copy.value = _copy_button("Copy code", state.dag.code, "copy the DAG code to the clipboard") + (
            _copy_button("Copy LR", lr, "copy the predicted learning rate to the clipboard") if lr else "")
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
        if not deferred:
            self._render(self._generation)
            return
        self.status.value = ("<span style='color:#555'><span class='archscale-spinner'></span> "
                             "updating the drawing and tables…</span>")
        self._timer = threading.Timer(self._debounce, self._render, args=(self._generation,))
        self._timer.daemon = True
        self._timer.start()

    def _render(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a newer change is pending: it will draw
            state = self.state
            try:
                png = figure_png(state)
                view = view_html(state, png)
            except Exception as err:  # shown, not raised: this may run on a timer thread
                self.status.value = _error_html(f"drawing failed: {err}")
                self.remove_class("archscale-busy")
                return
            self._png = png
            self.view.value = view
            if self._snapshot_handle is not None:
                self._snapshot_handle.update(self._snapshot_bundle(state, png), raw=True)
            if generation == self._generation:
                self.status.value = ""
                self.remove_class("archscale-busy")

    def wait(self, timeout: float = 30.0) -> None:
        """Block until a pending debounced redraw has finished (tests and scripts)."""
        timer = self._timer
        if timer is not None:
            timer.join(timeout)
        with self._lock:
            pass

    # -- export and the static copy --

    def _on_save(self, _button=None) -> None:
        try:
            paths = self.save_figure()
        except (OSError, ValueError) as err:
            self.save_msg.value = _error_html(f"not saved: {err}")
            return
        kinds = {".png": "image/png", ".pdf": "application/pdf"}
        links = " ".join(f'<a download="{p.name}" href="data:{kinds[p.suffix]};base64,'
                         f'{base64.b64encode(p.read_bytes()).decode()}">download {p.suffix[1:].upper()}</a>'
                         for p in paths)
        links = links.replace("</a> <a", "</a> · <a")
        where = html.escape(", ".join(map(str, paths)))
        self.save_msg.value = f"<span class='archscale-saved'>saved {where} · {links}</span>"

    def save_figure(self, name: str | None = None):
        """Write the current drawing as PNG and PDF through :func:`archscale.plots.save_figure`.

        Default name ``explorer_<arch>_<code>``; default folder ``$ARCHSCALE_FIGURES_DIR`` or
        ``figures/``. Returns both paths.
        """
        from ..plots import save_figure

        stem = name or f"explorer_{self.state.arch}_{self.state.dag.code}"
        return save_figure(figure(self.state), stem, self._figures_dir)

    def _snapshot_bundle(self, state: ExplorerState, png: bytes | None) -> dict:
        snapshot = snapshot_html(state, png, css_class=f"archscale-snapshot-{self._uid}")
        return {"text/html": STATIC_NOTE + snapshot,
                "text/plain": state.summary()}

    def _ipython_display_(self) -> None:
        """Display the live widget and, with ``snapshot``, its static copy beside it."""
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if self._want_snapshot:
            self._snapshot_handle = display(self._snapshot_bundle(self.state, self._png), raw=True,
                                            display_id=f"archscale-explorer-{self._uid}")


def dag_explorer(code: str = "2_22_222", arch: str = "mlp", *, width: int = 128, kernel_size: int = 3,
                 offset: int | None = None, base_lr: float = 0.1, max_blocks: int = 8,
                 static: bool | None = None, snapshot: bool = True, edge_kernels: str | None = None):
    """The DAG explorer: a live widget in JupyterLab, a static readout, figure and tables otherwise.

    ``static=None`` decides with :func:`has_frontend` (static under papermill and outside a
    kernel); put the call last in a cell (or pass it to ``display``) to show it. The live widget
    redraws 0.25 s after the last change and, with ``snapshot``, keeps a static copy beside it
    for readers without a kernel.
    """
    if static is None:
        static = not has_frontend()
    if static:
        return StaticExplorer(explorer_state(code, arch, width=width, kernel_size=kernel_size,
                                             offset=offset, base_lr=base_lr, edge_kernels=edge_kernels))
    return DagExplorer(code, arch, width=width, kernel_size=kernel_size, offset=offset, base_lr=base_lr,
                       max_blocks=max_blocks, debounce=0.25, snapshot=snapshot, edge_kernels=edge_kernels)
