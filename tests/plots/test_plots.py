"""Figure functions: they draw what they claim (paths, labels, titles with r) and save PNG + PDF."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from archscale import ArchscaleError, Dag, lr_scale  # noqa: E402
from archscale.analysis import clean_losses, compare, max_lr  # noqa: E402
from archscale.analysis.calibrate import fit_offset  # noqa: E402
from archscale.core.derivations import offset_predictions, sample_where_schemes_differ, space_table  # noqa: E402
from archscale.core.scaling import second_moments  # noqa: E402
from archscale.plots import save_figure  # noqa: E402
from archscale.plots.dags import (  # noqa: E402
    draw_dag,
    draw_dag_paths,
    init_moments_figure,
    lr_offset_figure,
    lr_scale_distribution,
)
from archscale.plots.sweeps import (  # noqa: E402
    graph_label,
    graph_order,
    loss_vs_lr,
    measured_vs_predicted,
    sweep_figure,
)
from archscale.probe import init_second_moments  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_draw_dag_labels_every_path_with_its_depth():
    ax = draw_dag("2_22_222")
    texts = _legend_texts(ax)
    assert [t for t in texts if "L = " in t] == ["0→1→2→3   L = 6", "0→1→3   L = 5", "0→2→3   L = 5",
                                                 "0→3   L = 4"]
    assert "Σ L_p³ = 530" in ax.get_title()


def test_draw_dag_single_path_and_offset():
    ax = draw_dag("2_12", highlight=1, offset=1, legend=False)
    assert ax.get_title() == "0→2:  L = 1"
    with pytest.raises(ArchscaleError, match="path index"):
        draw_dag("2_12", highlight=5)


def test_draw_dag_without_path_says_so():
    ax = draw_dag("0_00")
    assert "no input→output path" in ax.get_title()


def test_draw_dag_caps_highlighted_paths():
    ax = draw_dag("2_22_222_2222", max_paths=3)
    assert sum("L = " in t for t in _legend_texts(ax)) == 3
    assert any("+ 5 more" in t for t in _legend_texts(ax))


def test_draw_dag_paths_has_one_panel_per_path():
    fig = draw_dag_paths(["2_02_002", "2_22_222"], max_paths=4)
    titles = [ax.get_title() for ax in fig.axes if ax.axison is False and ax.get_title()]
    assert sum("L = " in t for t in titles) == 1 + 4
    with pytest.raises(ArchscaleError):
        draw_dag_paths([])


def test_lr_scale_distribution_marks_highlights(tmp_path):
    table = space_table(4)
    fig = lr_scale_distribution(table, {"2_02_002": "chain", "2_22_222": "dense", "9_99": "absent"})
    texts = _legend_texts(fig.axes[0])
    assert any(t.startswith("chain (2_02_002)") for t in texts) and not any("absent" in t for t in texts)
    paths = save_figure(fig, "fig_test_dist", tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ArchscaleError):
        lr_scale_distribution(table.iloc[:0])


def test_init_moments_figure_panels():
    m = init_second_moments(["2_22_222", "1_12"], layouts=("paper", "reference"), width=32, n_samples=16,
                            progress=False)
    fig = init_moments_figure(m, "2_22_222")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("(a) 2_22_222")
    assert titles[1].startswith("(b)") and titles[2].startswith("(c)")


def test_init_moments_figure_panel_b_uses_graphs_where_the_schemes_differ():
    codes = [d.code for d in sample_where_schemes_differ(5, 3, seed=0, digits=(0, 2))]
    for code in codes:  # the infinite-width prediction tells He and the source rule apart on each
        he, source = (second_moments(code, init) for init in ("he", "source"))
        assert he[-1][-1] != source[-1][-1]
    m = init_second_moments(codes, inits=("he", "source", "archscale"), width=64, n_samples=64,
                            progress=False)
    fig = init_moments_figure(m, codes[0], graphs_note="graphs where He and source differ")
    assert "graphs where He and source differ" in fig.axes[1].get_title()
    assert "over 2 random DAGs" in fig.axes[1].get_title()  # panel (a)'s example is not among them
    out = m[m["vertex"] == m.groupby("code")["vertex"].transform("max")]
    means = out.groupby(["init", "code"])["ratio"].mean().unstack("code")
    assert (abs(means.loc["he"] / means.loc["source"] - 1) > 0.2).all()  # the boxes cannot coincide
    with pytest.raises(ArchscaleError, match="two different"):
        sample_where_schemes_differ(5, 3, seed=0, schemes=("he", "he"))


def _chain_sweep(seeds=(0, 1, 2)) -> pd.DataFrame:
    """MLP depth-sweep rows whose best LR follows eq. 8 at offset 2, with seed noise."""
    rng = np.random.default_rng(1)
    lrs = np.geomspace(0.01, 2.0, 25)
    rows = []
    for k in range(0, 6):
        code = "1" if k == 0 else Dag.chain(k).code
        for seed in seeds:
            best = 0.8 * (2 / (2 + k)) ** 1.5 * np.exp(rng.normal(0, 0.25))
            for lr in lrs:
                rows.append({"graph": code, "arch": "mlp", "width": 64, "kernel_size": 0, "act": "relu",
                             "lr": float(lr), "seed": seed, "train_loss": 0.1 + np.log(lr / best) ** 2,
                             "test_loss": 0.0, "test_acc": 0.0, "diverged": False, "steps": 1})
    return pd.DataFrame(rows)


def test_lr_offset_figure_with_and_without_fit():
    chains = [Dag.chain(k).code for k in (1, 2, 3)]
    pred = offset_predictions(chains + ["2_22", "2_12"], (1, 3, 5))
    fig = lr_offset_figure(pred, chain_codes=chains)
    assert len(fig.axes) == 2
    fit = fit_offset(_chain_sweep(), offsets=range(1, 6), n_boot=200)
    assert (fit["n"] == 5).all()  # the base graph is not scored
    fig = lr_offset_figure(pred, fit, chain_codes=chains)
    assert len(fig.axes) == 3  # (a), (b) and the error factor; the flat correlation panel is not drawn
    best = int(fit.loc[fit["log_rmse_fit"].idxmin(), "offset"])
    err_ax = fig.axes[2]
    assert f"best offset {best}" in err_ax.get_title()
    assert f"offset {best} fits this sweep best" in fig._suptitle.get_text()
    assert "base excluded" in err_ax.get_title() and "n = 5" in err_ax.get_title()
    lo, hi = err_ax.get_ylim()
    values = fit[["error_factor", "error_factor_lo", "error_factor_hi"]].to_numpy().ravel()
    assert lo <= np.nanmin(values) and hi >= np.nanmax(values)  # every estimate and interval shown
    assert hi - lo >= 0.2  # tiny differences are not blown up to fill the axis
    assert err_ax.get_ylabel() not in fit.columns and err_ax.get_xlabel() == "depth offset"
    assert any("95% interval" in t for t in _legend_texts(err_ax))


# --------------------------------------------------------------------------- sweeps

def _fake_sweep(graphs=("1", "2", "2_02", "2_02_002"), kernels=(3,), seeds=(0, 1, 2)):
    """Results shaped like archscale.sweep's (CNN rows), each graph's best LR near its predicted one."""
    rng = np.random.default_rng(0)
    lrs = np.logspace(-2, 1, 10)
    rows = []
    for q in kernels:
        for g in graphs:
            best = 0.5 * lr_scale(Dag.parse(g, ops="cnn"), "cnn", q) * np.exp(rng.normal(0, 0.2))
            for seed in seeds:
                for lr in lrs:
                    diverged = lr > 4 * best
                    loss = np.nan if diverged else 0.2 + 0.1 * np.log(lr / best) ** 2 + rng.normal(0, 0.01)
                    rows.append(dict(graph=g, arch="cnn", width=64, kernel_size=q, act="relu", lr=lr,
                                     seed=seed, train_loss=loss, train_loss_final=loss, test_loss=loss,
                                     test_acc=0.5, diverged=diverged, steps=5, diverged_step=-1,
                                     layout="paper", init="archscale", readout="mean_field"))
    results = pd.DataFrame(rows)
    return results, max_lr(results), compare(results, n_boot=200)


def test_clean_losses_blanks_diverged_runs():
    results, _, _ = _fake_sweep()
    results.loc[0, "train_loss"] = np.inf
    clean = clean_losses(results)
    bad = results["diverged"] | ~np.isfinite(results["train_loss"])
    assert clean["train_loss"].isna().sum() == bad.sum()
    with pytest.raises(ArchscaleError, match="no column"):
        clean_losses(results, "nope")


def test_graph_label_and_order():
    assert graph_label("1") == "L = 3 (base)"
    assert graph_label("2_02_002") == "L = 6"
    assert graph_label("2_22") == "2_22"
    _, _, comp = _fake_sweep()
    order = graph_order(comp)
    assert order[0] == "1" and order[-1] == "2_02_002"


def test_loss_vs_lr_draws_one_line_per_graph():
    results, max_lrs, _ = _fake_sweep()
    ax = loss_vs_lr(results, max_lrs=max_lrs)
    assert ax.get_xscale() == "log"
    texts = _legend_texts(ax)
    assert {"1", "2", "2_02", "2_02_002"} <= set(texts) and "measured max LR" in texts
    assert "a seed diverged (capped)" in texts


def test_many_graphs_highlight_a_few_and_grey_the_rest():
    codes = ["1"] + [d.code for d in Dag.sample(5, 14, seed=0)]
    results, max_lrs, comp = _fake_sweep(graphs=codes, seeds=(0, 1))
    fig = sweep_figure(results, comp, title="Fig. 2", max_lrs=max_lrs, chance=float(np.log(10)))
    legend_texts = _legend_texts(fig.axes[0])
    named = [t for t in legend_texts if "(×" in t]
    assert 2 <= len(named) <= 4  # the base, the smallest predicted LR and ranks between
    assert any(t.startswith("L = 3 (base)") for t in named)
    assert any(t.startswith("the other ") and t.endswith(" graphs") for t in legend_texts)
    assert not any("log10" in a.get_ylabel() for a in fig.axes)  # no colour bar
    ax = fig.axes[1] if "measured" in fig.axes[1].get_ylabel() else fig.axes[-1]
    assert "largest misses" in ax.get_title()


def test_the_chance_line_is_drawn_and_named_where_the_losses_reach_it():
    results, max_lrs, comp = _fake_sweep()
    top = float(results["train_loss"].max())
    ax = loss_vs_lr(results, max_lrs=max_lrs, chance=min(top, 2.0) * 0.9)
    assert any(t.startswith("chance: ln") for t in _legend_texts(ax))


def test_measured_vs_predicted_title_and_identity_line():
    _, _, comp = _fake_sweep()
    ax = measured_vs_predicted(comp)
    assert "log r = " in ax.get_title() and "n = 3" in ax.get_title()  # the base is not counted
    assert any("base" in t for t in _legend_texts(ax))
    assert any("identity" in t for t in _legend_texts(ax))
    x, y = ax.get_lines()[-1].get_data()
    assert np.allclose(x, y)


def test_sweep_figure_facets_by_kernel(tmp_path):
    results, max_lrs, comp = _fake_sweep(kernels=(3, 5))
    fig = sweep_figure(results, comp, title="Fig. 3", max_lrs=max_lrs, facet="kernel_size",
                       hue_in_comparison="kernel_size")
    assert len(fig.axes) == 3
    assert "trained with the paper's stated recipe" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.axes[:2]] == ["3×3 kernels", "5×5 kernels"]
    assert [p.name for p in save_figure(fig, "fig3_test", tmp_path)] == ["fig3_test.png", "fig3_test.pdf"]


# ---------------------------------------------------------------------- maximal-update figures (plots.mup)
def _path_law_summary_rows():
    rows = []
    for series, bs in [("block-only", [1.5, 1.4, 1.3]), ("with skips", [1.8, 2.2, 2.0])]:
        for width, b in zip([256, 1024, 4096], bs):
            rows.append({"series": series, "width": width, "n_graphs": 40 // (1 + (width > 256)),
                         "n_seeds": 1, "b_sumL3": b, "b_lo": b - 0.2, "b_hi": b + 0.25, "b_free": b - 0.5,
                         "b_free_lo": b - 0.9, "b_free_hi": b - 0.1, "free_offset": 0.5,
                         "offset_at_edge": width == 4096})
    return pd.DataFrame(rows)


def test_path_law_vs_width_figure_draws_both_series_with_intervals_and_n(tmp_path):
    from archscale.plots.maximal_update import plot_path_law_vs_width

    summary = _path_law_summary_rows()
    reference = {"label": "earlier setting", "width": 256, "n_graphs": 100, "n_seeds": 3, "b_sumL3": 1.58,
                 "b_lo": 1.38, "b_hi": 1.78, "b_free": 1.75, "b_free_lo": 1.53, "b_free_hi": 1.99,
                 "free_offset": 4.5}
    fig = plot_path_law_vs_width(summary, reference)
    left, right = fig.axes[:2]
    for ax in (left, right):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["256\nn = 40×1 | 40×1", "1024\nn = 20×1 | 20×1", "4096\nn = 20×1 | 20×1"]
        assert ax.get_xlabel().startswith("width n")
        lo, hi = ax.get_ylim()
        assert lo <= 0.0 and hi >= 2.2 + 0.5  # every point estimate shown, with room above
        assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.get_lines())  # eq. 8's b = 1
    assert "offset fixed at 3" in left.get_title() and "offset fitted" in right.get_title()
    assert any("(edge)" in t.get_text() for t in right.texts)
    assert "Σ_p L_p³" in left.get_ylabel() and "95%" in left.get_ylabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"block-only", "with skips", "earlier setting (n = 100×3)", "b = 1 (eq. 8)"} <= set(labels)
    # the drawn error bars span each interval
    bars = [c for c in left.containers if c.lines[1]]
    segs = bars[0].lines[2][0].get_segments()
    assert [tuple(np.round(s[:, 1], 6)) for s in segs] == [(1.3, 1.75), (1.2, 1.65), (1.1, 1.55)]
    # an interval running past the y-range gets its end written at the edge
    wide = summary.assign(b_lo=summary["b_lo"].where(summary["width"] != 4096, -2.5))
    capped = plot_path_law_vs_width(wide)
    assert capped.axes[0].get_ylim()[0] > -2.5
    assert sum("▼ -2.50" in t.get_text() for t in capped.axes[0].texts) == 2
    assert {p.name for p in save_figure(fig, "fig_mup_path_law_clean", tmp_path)} == \
        {"fig_mup_path_law_clean.png", "fig_mup_path_law_clean.pdf"}
    with pytest.raises(ArchscaleError, match="path_law_by_width"):
        plot_path_law_vs_width(summary.drop(columns="b_free"))


def test_delta_z_vs_lr_caps_exploding_values_and_says_so():
    from archscale.plots.maximal_update import plot_delta_z_vs_lr

    lrs = np.geomspace(1e-3, 10, 5)
    rows = [(w, lr, 0, 3, "vertex", 1e3 * w * lr**4) for w in (64, 256) for lr in lrs]
    table = pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])
    fig = plot_delta_z_vs_lr({"standard param.": table}, target=1e-2, y_max=1e3)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] == pytest.approx(2e3)
    assert max(float(np.max(line.get_ydata())) for line in ax.get_lines()) <= 1e3
    assert any(line.get_marker() == "^" for line in ax.get_lines())
    assert any("above 1000" in t.get_text() for t in ax.texts)
    title = fig.get_suptitle()
    assert "one line per width" in title and "independent" not in title  # what is plotted, no verdict
    assert "that η against width" in fig.axes[-1].get_title()
    uncapped = plot_delta_z_vs_lr({"sp": table}, target=1e-2, y_max=None)
    assert max(float(np.max(line.get_ydata())) for line in uncapped.axes[0].get_lines()) > 1e3
    assert not uncapped.axes[0].texts


def test_width_transfer_labels_the_loss_in_words_and_marks_diverged_seeds():
    from archscale.plots.maximal_update import plot_width_transfer

    rows = [{"width": w, "lr": lr, "seed": s, "train_loss": (np.log2(lr) + 4) ** 2 / 10 + 1 + w / 1e4,
             "diverged": False} for w in (64, 128) for lr in 2.0 ** np.arange(-7, 1) for s in (0, 1)]
    rows[-1].update(train_loss=float("nan"), diverged=True)
    fig = plot_width_transfer({"mean-field": pd.DataFrame(rows)}, loss="ce")
    ylabel = fig.axes[0].get_ylabel()
    assert "training loss" in ylabel and "cross-entropy, nats" in ylabel and "train_loss" not in ylabel
    assert any(line.get_marker() == "x" for line in fig.axes[0].get_lines())
    assert any("diverged" in t.get_text() for t in fig.texts)
    bare = plot_width_transfer({"mean-field": pd.DataFrame(rows)}, metric="train_loss")
    assert "nats" not in bare.axes[0].get_ylabel()  # no unit claimed when the loss is not given
