"""The DAG explorer: the pure state, its HTML, the live widget driven by its controls, the fallback."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archscale import Dag, lr_scale
from archscale.notebook.explorer import figure_png, readout_html, snapshot_html, view_html
from archscale.notebook.widgets import (
    STATIC_ENV,
    STATIC_NOTE,
    ArchscaleError,
    DagExplorer,
    StaticExplorer,
    dag_explorer,
    explorer_state,
    has_frontend,
    resize_code,
    text_progress_when_headless,
)


def test_state_of_fully_connected_graph():
    s = explorer_state("2_22_222", "mlp", width=128, base_lr=0.1)
    assert s.error is None
    assert list(s.paths["depth"]) == [6, 5, 5, 4]
    assert s.path_sum == 6**3 + 2 * 5**3 + 4**3
    assert s.scale == pytest.approx((s.path_sum / 27) ** -0.5)
    assert s.lr == pytest.approx(0.1 * s.scale)
    by_edge = s.edges.set_index("edge")
    assert by_edge.loc["0→1", "init_std"] == pytest.approx(math.sqrt(2 / 128))
    assert by_edge.loc["0→3", "init_std"] == pytest.approx(math.sqrt(2 / (3 * 128)))
    assert list(by_edge["he_std"]) == pytest.approx([math.sqrt(2 / 128)] * 6)


def test_cnn_kernel_enters_lr_and_fan_in():
    mlp = explorer_state("2_02_002", "mlp", width=64)
    cnn = explorer_state("2_02_002", "cnn", width=64, kernel_size=5)
    assert cnn.scale == pytest.approx(mlp.scale * 3 / 5)
    assert set(cnn.edges["fan_in"]) == {64 * 25}
    assert "kernel" in cnn.summary()
    assert explorer_state("2_02_002", "mlp", kernel_size=7).kernel_size is None  # ignored for MLPs


def test_offset_changes_depths_and_base():
    s = explorer_state("2_02_002", offset=1)
    assert list(s.paths["depth"]) == [4]
    assert s.scale == pytest.approx((1 / 4) ** 1.5)


def test_graph_without_path_reports_instead_of_raising():
    s = explorer_state("0_00_000")
    assert s.error and "no input" in s.error
    assert s.lr is None and s.paths.empty
    assert "cannot be trained" in s.summary()


def test_dead_edges_are_flagged():
    s = explorer_state("0_02_202")
    assert s.n_paths == 1
    assert s.edges["op"].str.contains("dead").sum() == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"arch": "nb201"}, "arch"),
    ({"width": 0}, "width"),
    ({"arch": "cnn", "kernel_size": 4}, "odd"),
    ({"base_lr": -1.0}, "learning rate"),
    ({"offset": 0}, "offset"),
])
def test_bad_settings_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explorer_state("2_22_222", **kwargs)


def test_resize_code_keeps_and_extends():
    assert resize_code("2_22_222", 2) == "2_22"
    assert resize_code("2_22", 4) == "2_22_002_0002"
    with pytest.raises(ArchscaleError):
        resize_code("2", 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10**6))
def test_resize_then_state_matches_lr_scale(start, target, salt):
    code = Dag.sample(start + 1, 1, seed=salt)[0].code
    resized = resize_code(code, target)
    assert Dag.parse(resized).n_vertices == target + 1
    s = explorer_state(code, n_blocks=target)
    dag = Dag.parse(resized)
    if dag.has_path:
        assert s.scale == pytest.approx(lr_scale(dag, "mlp"))
        assert len(s.paths) == dag.n_paths
    else:
        assert s.error is not None


def test_live_widget_follows_its_controls():
    ex = DagExplorer("2_02_002", width=128)
    assert ex.state.dag.code == "2_02_002" and len(ex.dropdowns) == 6
    ex.depth.value = 4
    assert ex.code == "2_02_002_0002" and len(ex.dropdowns) == 10
    assert list(ex.state.paths["depth"]) == [7]
    ex.set_op(0, 4, "block")
    assert ex.code == "2_02_002_2002" and ex.state.n_paths == 2
    ex.width.value = 512
    assert ex.state.edges.set_index("edge").loc["0→4", "init_std"] == pytest.approx(math.sqrt(2 / (2 * 512)))
    ex.arch.value = "cnn"
    assert not ex.kernel.disabled
    ex.kernel.value = 7
    assert ex.state.scale == pytest.approx(lr_scale(Dag.parse("2_02_002_2002", ops="cnn"), "cnn", 7))
    ex.offset.value = 1
    assert ex.state.offset == 1 and max(ex.state.paths["depth"]) == 5
    ex.base_lr.value = 1.0
    assert ex.state.lr == pytest.approx(ex.state.scale)
    ex.set_op(0, 1, "zero")
    assert ex.state.error is None and ex.state.n_paths == 1  # 0->4 still connects
    ex.set_op(0, 4, "zero")
    assert ex.state.error is not None and ex.state.lr is None
    with pytest.raises(ArchscaleError):
        ex.set_op(0, 9, "block")
    with pytest.raises(ArchscaleError):
        ex.set_op(0, 1, "conv")


def test_dag_explorer_falls_back_without_frontend(monkeypatch):
    monkeypatch.delenv(STATIC_ENV, raising=False)
    assert not has_frontend()  # plain pytest: no kernel
    view = dag_explorer("2_22_222")
    assert isinstance(view, StaticExplorer)
    assert "4 end-to-end path(s)" in repr(view)
    assert isinstance(dag_explorer("2_22_222", static=False), DagExplorer)
    monkeypatch.setenv(STATIC_ENV, "1")
    assert isinstance(dag_explorer("2_22_222"), StaticExplorer)
    assert not text_progress_when_headless()  # no kernel: tqdm is left alone


def test_static_view_is_one_html_block_with_figure_readout_and_tables():
    bundle = dag_explorer("2_12_202", static=True)._repr_mimebundle_()
    page = bundle["text/html"]
    assert "data:image/png;base64," in page and page.count("<table") == 2
    assert 'class="archscale-lr"' in page and "0.0280158" in page
    assert bundle["text/plain"].startswith("DAG 2_12_202")
    assert page.startswith(STATIC_NOTE) and "Static copy" in page  # says what it is


def test_state_formula_and_depth_summary():
    s = explorer_state("2_12_202", base_lr=0.1)
    assert s.base_path_sum == 27
    assert s.formula() == f"η = 0.1 × (344 / 27)^(-1/2) = 0.1 × {s.scale:.6g}"
    assert s.depth_summary() == "3 paths: 2 × L=4, 1 × L=6  (L_p = 3 + blocks)"
    cnn = explorer_state("2_12_202", "cnn", kernel_size=5, offset=2)
    assert cnn.base_path_sum == 8 and cnn.formula().split(" = ")[1].endswith("× 3/5")
    assert "undefined" in explorer_state("0_00_000").formula()


def test_skip_rows_render_as_dashes_not_nan():
    s = explorer_state("2_12_202")
    assert str(s.edges["fan_in"].dtype) == "Int64"
    skip = s.edges.set_index("edge").loc["0→2"]
    assert skip["op"] == "skip" and pd.isna(skip["fan_in"]) and math.isnan(skip["init_std"])
    page = view_html(s, png=b"")
    assert not any(bad in page for bad in ("NaN", "nan", "&lt;NA&gt;", "<NA>", "None"))
    assert '<td style="white-space:nowrap">—</td>' in page and "skip edge is the identity" in page


def test_all_zero_graph_shows_its_message_and_no_empty_table():
    s = explorer_state("0_00_000")
    readout = readout_html(s)
    assert "archscale-error" in readout and "cannot be trained" in readout and "—" in readout
    page = view_html(s, png=b"")
    assert "<table" not in page and "nothing to initialize" in page


def test_readout_wraps_between_tokens_and_escapes():
    readout = readout_html(explorer_state("2_22_222", base_lr=0.1))
    assert '<span class="archscale-lr"' in readout and ">0.0225706<" in readout
    assert "overflow-wrap:anywhere" in readout
    assert "<script" not in snapshot_html(explorer_state("2_22_222"), png=b"", css_class='x"><script>')


def test_figure_png_is_deterministic_and_fits_deep_graphs():
    deep = explorer_state("_".join("2" * i for i in range(1, 9)))
    assert deep.n_paths == 128
    png = figure_png(deep)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == figure_png(deep)
    assert b"Software" not in png[:200]


def test_code_field_syncs_dropdowns_and_depth_and_rejects_bad_codes():
    ex = DagExplorer("2_02_002")
    ex.code_field.value = "2_12_202_0002"
    assert ex.code == "2_12_202_0002" and ex.depth.value == 4 and len(ex.dropdowns) == 10
    assert ex.dropdowns[(0, 2)].value == "skip" and ex.state.n_paths == 3
    ex.code_field.value = "2_3"
    assert ex.code == "2_12_202_0002" and ex.state.dag.code == "2_12_202_0002"  # previous state kept
    assert "archscale-code-error" in ex.code_msg.value and "still showing 2_12_202_0002" in ex.code_msg.value
    ex.set_op(0, 1, "skip")
    assert ex.code_field.value == "1_12_202_0002" and ex.code_msg.value == ""
    ex.code_field.value = "2_22_222_2222_22222_222222_2222222_22222222_222222222"  # 9 > max_blocks
    assert ex.depth.value == 9 and ex.depth.max == 9
    with pytest.raises(ArchscaleError):
        ex.set_code("  ")


def test_every_control_has_a_tooltip():
    ex = DagExplorer("2_22_222")
    controls = [ex.arch, ex.depth, ex.width, ex.kernel, ex.offset, ex.base_lr, ex.code_field, ex.save,
                *ex.dropdowns.values()]
    assert all(c.tooltip for c in controls)
    assert all(not c.continuous_update for c in (ex.depth, ex.width, ex.kernel, ex.offset, ex.base_lr))
    assert 'data-copy="2_22_222"' in ex.copy.value and 'data-copy="0.0225706"' in ex.copy.value


def test_debounced_redraws_coalesce_and_show_busy():
    ex = DagExplorer("2_02_002", debounce=2.0)  # long enough that the four changes land first
    first = ex.view.value
    for depth in (2, 3, 4, 5):
        ex.depth.value = depth
    assert ex.state.dag.code == "2_02_002_0002_00002"  # state and readout follow at once
    assert "archscale-busy" in ex._dom_classes and "updating" in ex.status.value
    assert ex.view.value == first  # the drawing waits for the last change
    ex.wait()
    assert "archscale-busy" not in ex._dom_classes and ex.status.value == ""
    assert "0→1→2→3→4→5" in ex.view.value


def test_save_figure_writes_png_and_pdf_with_downloads(tmp_path):
    ex = DagExplorer("2_12_202", figures_dir=tmp_path)
    ex.save.click()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["explorer_mlp_2_12_202.pdf", "explorer_mlp_2_12_202.png"]
    assert "download PNG" in ex.save_msg.value and "data:application/pdf;base64," in ex.save_msg.value


def test_live_widget_displays_a_hidden_static_copy(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj, **kw):
            shown.append(("update", obj))

    def fake_display(obj, **kw):
        shown.append(("display", obj))
        return Handle() if kw.get("display_id") else None

    monkeypatch.setattr("IPython.display.display", fake_display)
    ex = DagExplorer("2_02_002", snapshot=True)
    ex._ipython_display_()
    assert "application/vnd.jupyter.widget-view+json" in shown[0][1]
    copy = shown[1][1]["text/html"]
    assert f"archscale-snapshot-{ex._uid}" in copy and f"archscale-snapshot-{ex._uid}" in ex.children[0].value
    ex.set_op(0, 2, "skip")
    assert shown[-1][0] == "update" and "2_12_002" in shown[-1][1]["text/html"]


def test_per_edge_kernels_follow_eq9_per_edge_against_a_hand_computation():
    """2_22_002 with a 1x1 edge 0->2: paths 0-2-3 (L = 5) and 0-1-2-3 (L = 6), areas 9/1/9/9 (mean 7):
    sum_p L_p^2 (3 * 7 + sum of its areas) = 25 * 31 + 36 * 48 = 2503; the base 3^2 * 27."""
    s = explorer_state("2_22_002", "cnn", width=64, kernel_size=3, edge_kernels="0-2:1")
    assert s.edge_kernels == {(0, 2): 1} and s.kernel_sum == "2503"
    assert s.scale == pytest.approx((2503 / (9 * 27)) ** -0.5)
    by_edge = s.edges.set_index("edge")
    assert by_edge.loc["0→2", "kernel"] == 1 and by_edge.loc["0→2", "fan_in"] == 64
    assert by_edge.loc["0→2", "init_std"] == pytest.approx(math.sqrt(2 / (2 * 64)))
    assert by_edge.loc["1→2", "fan_in"] == 64 * 9
    assert "eq. 9 per edge" in s.formula() and "2503" in s.formula()
    assert "edge kernels 0-2:1" in s.summary() and "per-edge kernels" in view_html(s, png=b"")
    same = explorer_state("2_22_002", "cnn", kernel_size=3, edge_kernels={(0, 2): 3})
    assert same.scale == pytest.approx(explorer_state("2_22_002", "cnn", kernel_size=3).scale)
    assert explorer_state("2_22_002", "cnn", kernel_size=3, edge_kernels="0→2:1, 2->3:5").edge_kernels == {
        (0, 2): 1, (2, 3): 5}
    for bad, match in (("0-3:1", "not a block edge of 2_22_002.*0-1, 0-2, 1-2, 2-3"),
                       ("0-2", "cannot read '0-2'"), ("0-2:4", "kernel")):
        with pytest.raises(ArchscaleError, match=match):
            explorer_state("2_22_002", "cnn", edge_kernels=bad)
    with pytest.raises(ArchscaleError, match="apply to CNNs"):
        explorer_state("2_22_002", "mlp", edge_kernels="0-2:1")


def test_the_widget_takes_edge_kernels_and_shows_their_errors():
    ex = DagExplorer("2_22_002", "cnn", width=64)
    before = ex.state.lr
    ex.edge_kernels.value = "0-2:1"
    assert ex.state.edge_kernels == {(0, 2): 1} and ex.state.lr != before
    ex.edge_kernels.value = "0-3:1"
    assert "not a block edge" in ex.code_msg.value and ex.state.edge_kernels == {(0, 2): 1}
    ex.edge_kernels.value = ""
    assert ex.code_msg.value == "" and ex.state.lr == pytest.approx(before)
    ex.arch.value = "mlp"
    assert ex.edge_kernels.disabled
