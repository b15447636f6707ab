"""The statistics on probe tables: path-law fits, spreads, LR at target, width slopes, LR drift."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from archscale.core.dag import Dag
from archscale.core.errors import ArchscaleError
from archscale.core.scaling import lr_scale
from archscale.probe import COORD_CHECK_COLUMNS
from archscale.stats import (
    coord_slopes,
    delta_z_spread,
    fit_path_law,
    has_skip_path,
    lr_at_target,
    lr_optimum_drift,
    min_path_params,
    path_law_by_width,
    path_law_graphs,
    path_law_profile,
    path_law_summary,
    update_lr_table,
    width_slope,
)


def test_stats_imports_no_torch():
    code = "import sys, archscale.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_min_path_params():
    assert min_path_params("2_02_002") == 3
    assert min_path_params("2_22") == 1 and min_path_params("2_12") == 0
    assert min_path_params(Dag.parse("1_01")) == 0


def test_lr_at_target_and_width_slope_on_a_known_law():
    lrs = np.geomspace(1e-3, 10, 15)
    rows = [(w, lr, 0, 1, "vertex", 3.0 * w * lr**2) for w in (64, 256, 1024) for lr in lrs]
    table = pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])
    at = lr_at_target(table, 1.0)
    expected = [math.sqrt(1 / (3 * w)) for w in (64, 256, 1024)]
    np.testing.assert_allclose(at["lr_at_target"], expected, rtol=1e-9)
    slope, _ = width_slope(at)
    assert slope == pytest.approx(-0.5)
    assert np.isnan(lr_at_target(table, 1e9)["lr_at_target"]).all()
    with pytest.raises(ArchscaleError, match="two or more"):
        width_slope(at.iloc[:1])



def _synthetic_graph_table(law, noise=0.0, seed=0, n=40):
    graphs = Dag.sample(5, n, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for g in graphs:
        value = law(g) * math.exp(noise * rng.standard_normal())
        rows.append((g.code, 0, "shared", 0.1, 4, "last", value))
        rows.append((g.code, 0, "scaled", 0.1 * lr_scale(g), 4, "last", value * lr_scale(g) ** 2))
    return pd.DataFrame(rows, columns=["graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"])


def test_fit_path_law_recovers_eq8():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.05)
    fit = fit_path_law(table, n_boot=200, seed=1)
    free = fit.law("sum L^3, free b")
    assert free.exponent == pytest.approx(1.0, abs=0.05)
    assert free.exponent_lo < 1.0 < free.exponent_hi
    both = fit.law("sum L^3, free b and offset")
    assert both.offset_lo <= 3.0 <= both.offset_hi
    assert fit.eq8_in_ci
    assert fit.law("eq. 8: sum L^3, b=1").delta_aic <= 2
    assert "consistent with eq. 8" in fit.verdict()
    again = fit_path_law(table, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(fit.table, again.table)


def test_fit_path_law_prefers_the_true_other_law():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(2, 1), noise=0.02)
    fit = fit_path_law(table, n_boot=100)
    assert fit.best["power"] == 2
    assert fit.law("sum L^2, free b and offset").offset == 1.0
    assert not fit.eq8_in_ci or fit.law("eq. 8: sum L^3, b=1").delta_aic > 2
    assert "favour" in fit.verdict()
    only_blocks = fit_path_law(table, n_boot=50, min_params=1)
    assert only_blocks.n_graphs == sum(min_path_params(g) >= 1 for g in table["graph"].unique())
    with pytest.raises(ArchscaleError, match="n_boot"):
        fit_path_law(table, n_boot=3)
    with pytest.raises(ArchscaleError, match="different learning rates"):
        fit_path_law(table, lr_rule="scaled", n_boot=50)
    with pytest.raises(ArchscaleError, match="at least 4 graphs"):
        fit_path_law(table[table["graph"].isin(table["graph"].unique()[:3])], n_boot=50)


def test_delta_z_spread_shared_vs_scaled():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3))
    spread = delta_z_spread(table).set_index("lr_rule")
    assert spread.loc["scaled", "max_min_ratio"] == pytest.approx(1.0)
    shared = table[table["lr_rule"] == "shared"]["delta_z2"]
    assert spread.loc["shared", "max_min_ratio"] == pytest.approx(shared.max() / shared.min())
    assert list(spread.columns) == ["n_graphs", "min", "max", "max_min_ratio", "q90_q10_ratio", "sd_log10",
                                    "narrowing"]
    assert spread.loc["scaled", "narrowing"] == pytest.approx(spread.loc["shared", "max_min_ratio"])


def test_lr_optimum_drift_on_known_curves():
    grid = 2.0 ** np.arange(-8, 1)
    rows = []
    for w, opt in [(64, 2**-4), (256, 2**-5), (1024, 2**-6)]:
        for seed in (0, 1):
            for lr in grid:
                loss = (math.log2(lr) - math.log2(opt)) ** 2 + 0.1 * seed
                rows.append({"width": w, "lr": lr, "seed": seed, "train_loss": loss, "diverged": False})
    rows.append({"width": 64, "lr": 1.0, "seed": 2, "train_loss": float("nan"), "diverged": True})
    table, summary = lr_optimum_drift(pd.DataFrame(rows))
    np.testing.assert_allclose(table["best_lr"], [2**-4, 2**-5, 2**-6])  # exact parabolas: the vertex
    np.testing.assert_allclose(table["best_lr_grid"], [2**-4, 2**-5, 2**-6])
    assert summary["slope"] == pytest.approx(-0.5)
    assert summary["ratio"] == pytest.approx(0.25)
    assert summary["grid_steps"] == -2 and summary["grid_factor"] == pytest.approx(2.0)
    assert not summary["any_at_edge"] and not table["at_edge"].any()
    edge = pd.DataFrame([r for r in rows if r["lr"] >= 2**-5])
    assert lr_optimum_drift(edge)[1]["any_at_edge"]
    with pytest.raises(ArchscaleError, match="columns"):
        lr_optimum_drift(pd.DataFrame({"lr": [1.0]}))



def test_update_lr_table_and_coord_slopes():
    lrs = np.geomspace(1e-3, 10, 15)
    tables = {}
    for label, power in [("flat", 0.0), ("sp", 1.0)]:
        rows = [(w, lr, 0, 1, "vertex", 3.0 * w**power * lr**2) for w in (64, 256, 1024) for lr in lrs]
        tables[label] = pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])
    table = update_lr_table(tables, 1e-2)
    assert list(table.columns) == ["n=64", "n=256", "n=1024", "slope_all", "slope_wide", "wide_from"]
    assert table.loc["flat", "slope_all"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc["sp", "slope_all"] == pytest.approx(-0.5)
    assert table.loc["sp", "slope_wide"] == pytest.approx(-0.5) and table.loc["sp", "wide_from"] == 256
    with pytest.raises(ArchscaleError, match="two or more"):
        width_slope(lr_at_target(tables["sp"], 1e-2), x_min=1024)

    rows = [(w, 0, t, v, "vertex", 1.0, 0.1 * t * w ** (0.5 * v), np.nan)
            for w in (64, 256) for t in (0, 1, 2) for v in (0, 1)]
    coord = pd.DataFrame(rows, columns=list(COORD_CHECK_COLUMNS))
    slopes = coord_slopes(coord).set_index("vertex")
    assert slopes.loc[0, "slope"] == pytest.approx(0.0, abs=1e-9)
    assert slopes.loc[1, "slope"] == pytest.approx(0.5)
    assert slopes.loc[1, "ratio"] == pytest.approx(2.0)
    with pytest.raises(ArchscaleError, match="value must be"):
        coord_slopes(coord, value="loss")
    with pytest.raises(ArchscaleError, match="no rows at step 7"):
        coord_slopes(coord, step=7)


def test_path_law_summary_and_offset_edge_note():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.05)
    fits = {"eq8": fit_path_law(table, n_boot=50), "edge": fit_path_law(table, n_boot=50, offsets=[3, 4])}
    summary = path_law_summary(fits).set_index("fit")
    assert summary.loc["eq8", "b=1 in CI"]
    assert summary.loc["eq8", "b_lo"] < summary.loc["eq8", "b_sumL3"] < summary.loc["eq8", "b_hi"]
    assert "edge of the grid" in fits["edge"].verdict()


def test_fit_path_law_matches_numpy_least_squares():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3) ** 1.5, noise=0.3, n=60)
    fit = fit_path_law(table, n_boot=50)
    d = fit.data
    for k in (2, 3):
        b, a = np.polyfit(np.log(d[f"S{k}_off3"]), np.log(d["delta_z2"]), 1)
        row = fit.law(f"sum L^{k}, free b")
        assert row.exponent == pytest.approx(b, rel=1e-9) and row.intercept == pytest.approx(a, rel=1e-9)
        resid = np.log(d["delta_z2"]) - a - b * np.log(d[f"S{k}_off3"])
        assert row.ssr == pytest.approx(float((resid**2).sum()), rel=1e-8)
    eq8 = fit.law("eq. 8: sum L^3, b=1")
    assert eq8.intercept == pytest.approx(float(np.mean(np.log(d["delta_z2"]) - np.log(d["S3_off3"]))))


def test_figures_draw_from_the_fits():
    import matplotlib.pyplot as plt

    from archscale.plots import maximal_update as mup

    syn = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.1)
    figs = [mup.plot_path_sum_fit(fit_path_law(syn, n_boot=50)), mup.plot_spread(syn)]
    sweep = pd.DataFrame([{"width": w, "lr": lr, "seed": s, "train_loss": (np.log2(lr) + 4) ** 2 + w / 1e3}
                          for w in (64, 128) for lr in 2.0 ** np.arange(-7, 0) for s in (0, 1)])
    figs.append(mup.plot_width_transfer({"mean-field": sweep}))
    for fig in figs:
        assert fig.axes and fig.get_suptitle() or fig.axes[0].get_title()
        plt.close(fig)


# ---------------------------------------------------------------------- the path law on clean graphs
def test_path_law_graphs_block_only_and_skip_series():
    blocks = path_law_graphs(30, seed=3)
    assert len({d.code for d in blocks}) == 30
    for d in blocks:
        assert d.has_path and not has_skip_path(d)
        assert all(e.is_parameterized for e in d.edges), f"{d.code} has a skip edge"
        assert set(d.code.replace("_", "")) <= {"0", "2"}
    skips = path_law_graphs(30, seed=3, skips=True)
    assert all(d.has_path and has_skip_path(d) for d in skips)
    # prefixes of one seeded draw: a smaller call gives the same first graphs, another seed others
    assert path_law_graphs(10, seed=3) == blocks[:10]
    assert path_law_graphs(10, seed=3, skips=True) == skips[:10]
    assert path_law_graphs(10, seed=4) != blocks[:10]
    assert has_skip_path(Dag.parse("2_12")) and not has_skip_path(Dag.parse("2_02"))
    assert not has_skip_path(Dag.parse("0_21_002"))  # vertex 1 gets no input: its skip 1->2 is on no path
    with pytest.raises(ArchscaleError, match="could not draw"):
        path_law_graphs(1000, seed=0)  # the block-only space holds 841 graphs with a path
    with pytest.raises(ArchscaleError, match="skips"):
        path_law_graphs(5, seed=0, skips="no")


def _width_table(b_by_width, offset=3.0, noise=0.05, n=30, seeds=(0, 1), series="block-only"):
    """Synthetic delta_z_widths rows: delta_z2 = 1e-4 (sum_p (offset + blocks)^3)^b, log-normal noise."""
    graphs = path_law_graphs(n, seed=0)
    rng = np.random.default_rng(1)
    rows = []
    for width, b in b_by_width.items():
        for g in graphs:
            for s in seeds:
                law = 1e-4 * float(g.path_power_sum(3, offset)) ** b
                value = law * math.exp(noise * rng.standard_normal())
                rows.append((series, width, g.code, s, "shared", 0.05, 4, "last", value))
    return pd.DataFrame(rows, columns=["series", "width", "graph", "seed", "lr_rule", "lr", "vertex", "kind",
                                       "delta_z2"])


def test_path_law_by_width_recovers_known_exponents_within_their_intervals():
    table = pd.concat([_width_table({256: 1.0, 1024: 1.5}),
                       _width_table({256: 2.0}, series="with skips", n=20, seeds=(0,))])
    offsets = np.arange(-0.75, 8.01, 0.25)
    summary, fits = path_law_by_width(table, n_boot=300, seed=2, offsets=offsets)
    assert list(summary[["series", "width"]].itertuples(index=False, name=None)) == \
        [("block-only", 256), ("block-only", 1024), ("with skips", 256)]
    assert list(summary["n_graphs"]) == [30, 30, 20] and list(summary["n_seeds"]) == [2, 2, 1]
    for b_true, row in zip([1.0, 1.5, 2.0], summary.itertuples()):
        assert row.b_lo <= b_true <= row.b_hi, row
        assert abs(row.b_sumL3 - b_true) < 0.05
        assert row.b_free_lo <= b_true <= row.b_free_hi, row
        assert row.offset_lo <= 3.0 <= row.offset_hi
    assert list(summary["b=1 in CI"]) == [True, False, False]
    assert set(fits) == {("block-only", 256), ("block-only", 1024), ("with skips", 256)}
    # the bootstrap is seeded: the same call gives the same intervals
    again, _ = path_law_by_width(table, n_boot=300, seed=2, offsets=offsets)
    pd.testing.assert_frame_equal(summary, again)
    with pytest.raises(ArchscaleError, match="no column"):
        path_law_by_width(table.drop(columns="series"), n_boot=50)


def test_negative_offsets_only_where_every_path_has_a_block():
    table = _width_table({256: 1.0}, offset=0.5, noise=0.0).drop(columns=["series", "width"])
    fit = fit_path_law(table, offsets=[-0.5, 0.0, 0.5, 1.0, 3.0], n_boot=50)
    assert fit.law("sum L^3, free b and offset").offset == 0.5
    profile = path_law_profile(fit).set_index("offset")
    assert profile.loc[0.5, "b"] == pytest.approx(1.0)
    # an exact fit: the rmse is the root of float64 rounding in the residuals (7e-8 on an AVX-512 AMD
    # EPYC's OpenBLAS, 0 elsewhere), so "zero" is judged at the root of double precision
    assert profile.loc[0.5, "rmse"] == pytest.approx(0.0, abs=1e-6)
    assert profile["rmse"].idxmin() == 0.5 and list(profile.index) == [-0.5, 0.0, 0.5, 1.0, 3.0]
    with_skip = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3))
    assert min(min_path_params(g) for g in with_skip["graph"]) == 0
    with pytest.raises(ArchscaleError, match="must exceed 0"):
        fit_path_law(with_skip, offsets=[0.0, 1.0], n_boot=50)
    with pytest.raises(ArchscaleError, match="must exceed -1"):
        fit_path_law(table, offsets=[-1.0, 1.0], n_boot=50)
    with pytest.raises(ArchscaleError, match="no sum L\\^4"):
        path_law_profile(fit, power=4)
