"""The residual depth sweep: presets, resumable stores, transfers against independent numbers, figures."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from archscale import Dag, lr_scale
from archscale.analysis.depth_transfer import depth_transfer
from archscale.analysis.law_scores import compare_laws
from archscale.core.errors import ArchscaleError, StoreError
from archscale.core.presets import preset_names
from archscale.core.residual import residual_chain_dag
from archscale.experiments.residual_depth import ResidualDepthSpec, run_residual_depth

matplotlib.use("Agg")

#: A seconds-long run: two depths, three LRs, two seeds, two SGD steps.
TINY = dict(depths=(1, 2), width=8, lr_min=0.05, lr_max=0.5, n_lrs=3, seeds=(0, 1), steps=2, n_train=64,
            n_test=32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runs, run_residual_depth("smoke", runs_dir=runs, progress=False, **TINY)


def test_presets_are_valid_specs_and_bad_settings_are_refused():
    assert preset_names("residual_depth") == ["smoke", "quick", "full"]
    for spec in map(ResidualDepthSpec.preset, preset_names("residual_depth")):
        assert spec.depths[0] == 1 and len(spec.lrs) == spec.n_lrs and spec.graph(1) == "2_12"
    with pytest.raises(ArchscaleError, match="include 1"):
        ResidualDepthSpec(name="x", depths=[2, 4], width=8, lr_min=0.1, lr_max=1.0, n_lrs=3, seeds=[0])
    with pytest.raises(ArchscaleError, match="act"):
        ResidualDepthSpec(name="x", depths=[1, 2], width=8, lr_min=0.1, lr_max=1.0, n_lrs=3, seeds=[0],
                          act="tanhh")
    with pytest.raises(ArchscaleError, match="preset"):
        run_residual_depth("huge")
    with pytest.raises(ArchscaleError, match="unknown residual depth setting"):
        run_residual_depth("smoke", colour="red")


def test_the_sweep_trains_both_parametrizations_and_a_second_run_only_reloads(tiny, monkeypatch):
    runs, done = tiny
    std, mup = done.results["standard"], done.results["depth_mup"]
    per_graph = len(TINY["seeds"]) * TINY["n_lrs"]
    assert sorted(std["graph"].unique()) == ["1", "2_12", "2_12_002_0012"]
    assert std.groupby("graph").size().eq(per_graph).all()
    # depth_mup shares the two bases with standard and trains only K >= 2
    assert sorted(mup["graph"].unique()) == sorted(std["graph"].unique())
    assert not std[std["graph"] == "2_12_002_0012"]["train_loss"].equals(
        mup[mup["graph"] == "2_12_002_0012"]["train_loss"])
    assert "depth_mup (branch x 1/sqrt(K)" in done.describe()

    import archscale.experiments.residual_depth as rd

    monkeypatch.setattr(rd, "sweep_module", lambda *a, **k: pytest.fail("a finished sweep was retrained"))
    again = run_residual_depth("smoke", runs_dir=runs, progress=False, **TINY)
    pd.testing.assert_frame_equal(again.results["standard"], std)
    with pytest.raises(StoreError, match="holds a residual depth sweep of another setup"):
        run_residual_depth("smoke", runs_dir=runs, progress=False, **{**TINY, "width": 9})


def test_transfers_match_independent_predictions(tiny):
    _, done = tiny
    eq8, eff, mup = done.transfers(n_boot=100)
    assert [t.law for t in (eq8, eff, mup)] == ["eq8", "effective_depth", "constant"]
    for tr in (eq8, eff, mup):
        assert list(tr.table["depth"]) == [1, 2] and tr.table["is_base"].tolist() == [True, False]
        assert tr.overall.n + tr.comparison.n_edge == 1 and tr.overall.n_seeds == 2
        assert f"{tr.overall.n} non-base depths" in tr.summary() and tr.label in tr.format()
    base = residual_chain_dag(1)
    for k, row in zip((1, 2), eq8.table.itertuples()):
        scale = lr_scale(residual_chain_dag(k)) / lr_scale(base)
        assert row.predicted == pytest.approx(row.measured if k == 1 else eq8.table["measured"][0] * scale)
    # effective depth of a residual chain under the documented convention: every block's skip (no
    # layer) and its merge (one addition) -> L_eff = 3 + K; the base K = 1 has 4
    assert eff.table["predicted"][1] == pytest.approx(eff.table["measured"][0] * (5 / 4) ** -1.5)
    assert mup.table["predicted"].tolist() == pytest.approx([mup.table["measured"][0]] * 2)
    t = eq8.table
    assert t["ratio"][1] == pytest.approx(t["measured"][1] / t["predicted"][1])
    assert t["ratio_lo"][1] <= t["ratio"][1] <= t["ratio_hi"][1]
    with pytest.raises(ArchscaleError, match="held-out share"):  # two non-base graphs cannot be split
        done.laws(n_boot=50)


def _depth_rows(optimum: dict[str, float], seeds=(0, 1, 2)) -> pd.DataFrame:
    """Noise-free sweep rows whose loss is lowest at ``optimum[graph]``, on a fine grid."""
    grid = np.geomspace(1e-3, 10, 81)
    rows = []
    for graph, best in optimum.items():
        loss = (np.log(grid) - np.log(best)) ** 2
        rows += [dict(graph=graph, arch="mlp", width=8, kernel_size=0, act="relu", lr=float(lr), seed=s,
                      train_loss=float(v), diverged=False) for s in seeds for lr, v in zip(grid, loss)]
    return pd.DataFrame(rows)


def test_depth_transfer_reads_the_drift_of_a_known_optimum():
    codes = {residual_chain_dag(k).code: k for k in (1, 2, 4)}
    # the optimum halves with every doubling of depth: a constant LR misses by 2x and 4x
    rows = _depth_rows({c: 0.4 / k for c, k in codes.items()})
    tr = depth_transfer(rows, codes, "constant", n_boot=100)
    assert tr.table["ratio"].tolist() == pytest.approx([1, 0.5, 0.25], rel=0.06)
    assert tr.overall.estimate["bias"] == pytest.approx(math.sqrt(0.5 * 0.25), rel=0.06)
    with pytest.raises(ArchscaleError, match="at least two depths"):
        depth_transfer(rows, {"2_12": 1}, "eq8")
    with pytest.raises(ArchscaleError, match="no rows"):
        depth_transfer(rows, {**codes, residual_chain_dag(8).code: 8}, "eq8")


def test_figures_have_titles_labels_and_legends(tiny):
    from archscale.plots.law_scores import depth_transfer_figure, laws_agreement_figure

    _, done = tiny
    fig = depth_transfer_figure(done.transfers(n_boot=50))
    assert fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and ax.get_legend() is not None
    codes = ["1"] + [d.code for d in Dag.sample(4, 10, seed=3)]
    rows = _depth_rows({c: 0.5 * lr_scale(Dag.parse(c)) for c in codes})
    report = compare_laws(rows, n_boot=50)
    fig = laws_agreement_figure({"synthetic": report, "again": report})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and all(ax.get_xlabel() and ax.get_title() for ax in visible)
    assert fig.legends and "n = " in visible[0].get_title()
    with pytest.raises(ArchscaleError, match="no laws reports"):
        laws_agreement_figure({})
    with pytest.raises(ArchscaleError, match="no depth transfers"):
        depth_transfer_figure([])


def test_command_line_prints_the_same_transfers_as_python(tiny, tmp_path):
    """``archscale residual-depth`` trains into --runs-dir and reports what ``transfers()`` gives."""
    import json
    import subprocess
    import sys

    _, done = tiny
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={list(v) if isinstance(v, tuple) else v}")]
    cmd = [sys.executable, "-m", "archscale.cli", "residual-depth", "--preset", "smoke", "--runs-dir",
           str(tmp_path), "--n-boot", "100", "--no-progress", *sets]
    out = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True,
                                    timeout=300).stdout)
    assert (tmp_path / "residual_depth_smoke" / "standard" / "results.jsonl").is_file()
    assert [t["law"] for t in out["transfers"]] == ["eq8", "effective_depth", "constant"]
    for got, want in zip(out["transfers"], done.transfers(n_boot=100)):
        assert [r["measured"] for r in got["table"]] == pytest.approx(want.table["measured"].tolist())
        assert [r["ratio"] for r in got["table"]] == pytest.approx(want.table["ratio"].tolist())
        assert got["finding"] == want.finding()
    assert out["ranking"].startswith("smallest error factor")
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout  # reloads
    assert "(c) Depth-muP branches, one LR" in text and "smallest error factor" in text
    bad = subprocess.run([*cmd, "--set", "colour=red"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown residual depth setting" in bad.stderr
