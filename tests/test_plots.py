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
from archscale.derivations import init_second_moments, offset_predictions, space_table  # noqa: E402
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
    with pytest.raises(ValueError, match="path index"):
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
    with pytest.raises(ValueError):
        draw_dag_paths([])


def test_lr_scale_distribution_marks_highlights(tmp_path):
    table = space_table(4)
    fig = lr_scale_distribution(table, {"2_02_002": "chain", "2_22_222": "dense", "9_99": "absent"})
    texts = _legend_texts(fig.axes[0])
    assert any(t.startswith("chain (2_02_002)") for t in texts) and not any("absent" in t for t in texts)
    paths = save_figure(fig, "fig_test_dist", tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError):
        lr_scale_distribution(table.iloc[:0])


def test_init_moments_figure_panels():
    m = init_second_moments(["2_22_222", "1_12"], layouts=("paper", "reference"), width=32, n_samples=16,
                            progress=False)
    fig = init_moments_figure(m, "2_22_222")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("(a) 2_22_222")
    assert titles[1].startswith("(b)") and titles[2].startswith("(c)")


def test_lr_offset_figure_with_and_without_fit():
    chains = [Dag.chain(k).code for k in (1, 2, 3)]
    pred = offset_predictions(chains + ["2_22", "2_12"], (1, 3, 5))
    fig = lr_offset_figure(pred, chain_codes=chains)
    assert len(fig.axes) == 2
    fit = pd.DataFrame({"offset": [1, 3, 5], "pearson_r": [0.5, 0.9, 0.8], "pearson_r_log": [0.5, 0.9, 0.8],
                        "log_rmse": [0.4, 0.1, 0.2], "log_rmse_fit": [0.3, 0.05, 0.1], "n": [5, 5, 5]})
    fig = lr_offset_figure(pred, fit, chain_codes=chains)
    assert "best offset 3" in fig.axes[2].get_title()


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


def test_many_graphs_get_a_colour_bar_not_a_legend_entry_each():
    codes = ["1"] + [d.code for d in Dag.sample(5, 14, seed=0)]
    results, max_lrs, comp = _fake_sweep(graphs=codes, seeds=(0, 1))
    fig = sweep_figure(results, comp, title="Fig. 2", max_lrs=max_lrs)
    legend_texts = _legend_texts(fig.axes[0])
    assert not any(code in legend_texts for code in codes[1:])
    assert any("predicted LR scale" in a.get_ylabel() for a in fig.axes)  # the colour bar
    ax = fig.axes[1] if "measured" in fig.axes[1].get_ylabel() else fig.axes[-1]
    assert "largest misses" in ax.get_title()


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
    assert "recipe: layout paper, init archscale, readout mean_field" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.axes[:2]] == ["kernel_size = 3", "kernel_size = 5"]
    assert [p.name for p in save_figure(fig, "fig3_test", tmp_path)] == ["fig3_test.png", "fig3_test.pdf"]
