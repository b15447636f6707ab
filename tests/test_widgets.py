"""The DAG explorer: the pure state function, the live widget driven by its controls, the fallback."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archscale import Dag, lr_scale
from archscale.widgets import (
    STATIC_ENV,
    ArchscaleError,
    DagExplorer,
    StaticExplorer,
    dag_explorer,
    explorer_state,
    has_frontend,
    resize_code,
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


def test_static_view_displays_figure_and_tables(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    dag_explorer("2_22_222", static=True)._ipython_display_()
    kinds = [type(o).__name__ for o in shown]
    assert "Figure" in kinds and kinds.count("DataFrame") == 2
