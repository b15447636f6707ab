"""Eq. 9's kernel factor alone: per-graph slopes of ln max LR on ln q, seed bootstrap, pooled fit."""

import numpy as np
import pandas as pd
import pytest

from archscale.analysis import EQ9_EXPONENT, kernel_exponents, kernel_slope, max_lr
from archscale.core.errors import ArchscaleError
from archscale.core.scaling import lr_scale

#: A grid holding c/q exactly for c in {1, 2} and q in {3, 5, 7}, plus neighbours on both sides.
GRID = np.array(sorted({1 / 21, 1 / 7, 1 / 5, 1 / 3, 2 / 7, 2 / 5, 2 / 3, 1.0, 2.0}))


def _rows(best, seeds=(0, 1, 2), noise=0.0, rng=None, diverged=(), grid=GRID):
    """CNN sweep rows: {(graph, q): best lr per seed or one for all}; loss minimal there, on ``grid``."""
    rng = rng or np.random.default_rng(0)
    rows = []
    grid = np.asarray(grid, dtype=float)
    for (graph, q), target in best.items():
        for i, s in enumerate(seeds):
            t = target[i] if np.ndim(target) else target
            loss = (np.log(grid) - np.log(t)) ** 2 + noise * rng.standard_normal(len(grid))
            for lr, v in zip(grid, loss):
                div = (graph, q, s, float(lr)) in diverged
                rows.append(dict(graph=graph, arch="cnn", width=8, kernel_size=q, act="relu", lr=float(lr),
                                 seed=s, train_loss=np.nan if div else float(v), train_loss_final=float(v),
                                 test_loss=float(v), test_acc=0.5, diverged=div, steps=3, diverged_step=-1,
                                 layout="reference", init="reference", readout="reference"))
    return pd.DataFrame(rows)


def test_max_lr_following_one_over_q_gives_exponent_minus_one_with_an_interval_containing_it():
    # eq. 9 exactly: base max LR 0.5 times the graph's path factor times 3/q; the grid holds every target
    best = {(g, q): 0.5 * lr_scale(g, "cnn", q) for g in ("1", "2", "2_02") for q in (3, 5, 7)}
    grid = sorted({t * f for t in best.values() for f in (0.7, 1.0, 1.4)})
    fit = kernel_exponents(_rows(best, grid=grid), n_boot=200, seed=1)
    t = fit.table.set_index("graph")
    assert EQ9_EXPONENT == -1.0 and fit.predicted == -1.0
    for g in ("1", "2", "2_02"):
        assert t.loc[g, "exponent"] == pytest.approx(-1.0, abs=1e-12)
        assert t.loc[g, "lo"] - 1e-9 <= -1.0 <= t.loc[g, "hi"] + 1e-9  # up to rounding of the fit
        assert t.loc[g, "kernels"] == (3, 5, 7) and t.loc[g, "n_seeds"] == 3
    assert fit.pooled["exponent"] == pytest.approx(-1.0)
    assert fit.pooled["lo"] - 1e-9 <= -1 <= fit.pooled["hi"] + 1e-9
    assert fit.pooled["n_graphs"] == 3
    # eq. 9 predicts these exactly: no error, no bias
    assert fit.comparison.agreement.estimate["error_factor"] == pytest.approx(1.0)
    assert "contains -1" in fit.format() and fit.to_dict()["pooled"]["n_graphs"] == 3


def test_exponents_match_an_independent_recomputation_and_the_bootstrap_is_seeded():
    rng = np.random.default_rng(5)
    # per seed a different best LR, so the seed bootstrap has something to resample
    best = {("1", 3): [1 / 3, 2 / 5, 1 / 3], ("1", 5): [1 / 5, 1 / 5, 2 / 7], ("1", 7): [1 / 7, 1 / 5, 1 / 7],
            ("2_12", 3): [2 / 3, 2 / 3, 1.0], ("2_12", 5): [2 / 3, 2 / 5, 2 / 3],
            ("2_12", 7): [2 / 3, 2 / 3, 2 / 3]}
    rows = _rows(best, noise=0.02, rng=rng, diverged={("2_12", 7, 1, 2.0)})
    fit = kernel_exponents(rows, n_boot=300, seed=4, method="argmin")
    # independently: seed-mean loss per LR (an LR where a run diverged is not eligible), argmin, OLS
    for graph, got in fit.table.set_index("graph")["exponent"].items():
        pts = []
        for q in (3, 5, 7):
            g = rows[(rows["graph"] == graph) & (rows["kernel_size"] == q)]
            wide = g.pivot(index="seed", columns="lr", values="train_loss")
            pts.append((q, wide.mean().where(wide.notna().all()).idxmin()))
        q, m = np.log(np.array(pts, dtype=float)).T
        assert got == pytest.approx(np.polyfit(q, m, 1)[0], rel=1e-12)
    m = max_lr(rows, method="argmin").sort_values(["graph", "kernel_size"])
    assert [x for t in fit.table["max_lrs"] for x in t] == pytest.approx(m["max_lr"].tolist())
    t = fit.table
    assert ((t["lo"] <= t["exponent"]) & (t["exponent"] <= t["hi"])).all()
    assert (t["hi"] > t["lo"]).any()  # the resampled seeds disagree, so some interval has width
    again = kernel_exponents(rows, n_boot=300, seed=4, method="argmin")
    pd.testing.assert_frame_equal(fit.table, again.table)
    assert fit.pooled == again.pooled


def test_kernel_slope_and_refusals():
    assert kernel_slope([3, 5, 7], [1 / 9, 1 / 25, 1 / 49]) == pytest.approx(-2.0)
    assert np.isnan(kernel_slope([3, 5], [np.nan, 0.1]))
    one_kernel = _rows({("1", 3): 1 / 3, ("2", 3): 1 / 3})
    with pytest.raises(ArchscaleError, match="two kernel sizes"):
        kernel_exponents(one_kernel, n_boot=10)


def test_kernel_exponent_and_column_figures_draw_labelled_panels():
    import matplotlib.pyplot as plt

    from archscale.analysis import compare
    from archscale.plots.sweeps import column_figure, kernel_exponent_figure

    best = {(g, q): 0.5 * lr_scale(g, "cnn", q) for g in ("1", "2", "2_02") for q in (3, 5, 7)}
    rows = _rows(best, grid=sorted({t * f for t in best.values() for f in (0.7, 1.0, 1.4)}))
    fit = kernel_exponents(rows, n_boot=50)
    fig = kernel_exponent_figure(fit)
    a, b = fig.axes[:2]
    assert a.get_xlabel().startswith("kernel size") and "max LR" in a.get_ylabel()
    assert "slope" in b.get_xlabel() and b.get_legend() is not None and fig._suptitle.get_text()
    plt.close(fig)
    comp = compare(rows, n_boot=20)
    fig = column_figure({"CNN": (rows, comp, max_lr(rows), 3), "all kernels": (rows, comp, None)}, title="t")
    assert len(fig.axes) >= 4 and "kernel 3" in fig.axes[0].get_title()
    plt.close(fig)
