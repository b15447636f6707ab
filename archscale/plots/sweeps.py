"""Figures for learning-rate sweeps: loss against learning rate, measured against predicted max LR.

Inputs are the tidy tables of ``archscale.sweep``: ``run_sweep``/``load_results`` rows (graph,
arch, width, kernel_size, act, lr, seed, train_loss, test_loss, test_acc, diverged, steps),
``max_lr`` rows, and a :class:`~archscale.analysis.Comparison`. The loss curves show what the
max-LR rule sees (the seed mean with diverged runs capped, :mod:`archscale.analysis.maxlr`);
the titles state the agreement metrics with their intervals and n, base excluded.
"""

from __future__ import annotations

import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker as mticker

from ..analysis import clean_losses, loss_matrix
from ..analysis.agreement import cap_diverged
from ..analysis.compare import RECIPE_LEVELS, recipe_name
from ..core.errors import ArchscaleError

__all__ = ["calibration_figure", "column_figure", "factorial_figure", "graph_label", "graph_order",
           "grouped_sweep_figure", "kernel_exponent_figure", "loss_vs_lr", "measured_vs_predicted",
           "sweep_figure"]

_METRIC_LABELS = {"train_loss": "training loss of the last epoch", "train_loss_final": "final training loss",
                  "test_loss": "test loss", "test_acc": "test accuracy"}
#: More graphs than this: only :data:`N_HIGHLIGHT` of them are coloured and named, the rest grey.
MAX_LEGEND = 12
#: How many graphs a crowded loss panel colours and names.
N_HIGHLIGHT = 4
#: Recipe levels in a few letters, for crowded tick labels.
_SHORT = {"layout": {"paper": "paper", "reference": "reference"},
          "init": {"archscale": "target", "source": "source", "reference": "ref. code", "he": "He"},
          "readout": {"mean_field": "mean-field", "standard": "standard", "reference": "ref. code"}}
#: How many of the largest misses the measured-vs-predicted panel names when it cannot name all.
N_WORST = 4


def graph_label(code: str, offset: int = 3) -> str:
    """Short legend label: ``L = d`` for a chain of blocks (or the lone-skip base), else the code."""
    from ..core.dag import Dag, DagError

    try:
        dag = Dag.parse(str(code))
    except DagError:
        return str(code)
    counts = dag.depth_counts(offset)
    chain_like = dag.n_paths == 1 and len(dag.edges) == dag.n_vertices - 1
    if chain_like and (all(e.is_parameterized for e in dag.edges) or dag.code == "1"):
        return f"L = {next(iter(counts))}" + (" (base)" if dag.code == "1" else "")
    return dag.code


def graph_order(comparison) -> list[str]:
    """Graphs sorted from the largest to the smallest predicted learning rate."""
    table = comparison.table if hasattr(comparison, "table") else comparison
    return list(table.groupby("graph")["predicted"].mean().sort_values(ascending=False).index)


def _ylim(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    """A y range from the curves' lowest point to 1.3x the highest loss at the smallest LR."""
    finite = [m[np.isfinite(m)] for _, m in curves.values()]
    finite = [f for f in finite if f.size]
    if not finite:
        return None
    low = min(float(f.min()) for f in finite)
    starts = [float(m[0]) for _, m in curves.values() if np.isfinite(m[0])]
    top = max(float(f.max()) for f in finite)
    if starts and max(starts) > low:
        top = min(top, 1.3 * max(starts))
    pad = 0.05 * max(top - low, 1e-6)
    return low - pad, top + pad


def _highlighted(order: list[str], scales: dict[str, float] | None, n: int, always: list[str]) -> list[str]:
    """Which of many graphs get a colour: ``always`` (the base), then the largest and smallest predicted
    LR and evenly spaced ranks between them, ``n`` in all, in the order of ``order`` (largest first)."""
    kept = [g for g in order if g in always]
    rest = [g for g in order if g not in always and (not scales or g in scales)]
    k = max(n - len(kept), 0)
    if len(rest) > k:
        picks = np.unique(np.round(np.linspace(0, len(rest) - 1, k)).astype(int)) if k else np.array([], int)
        rest = [rest[i] for i in picks]
    return [g for g in order if g in set(kept) | set(rest)]


def _colors(order: list[str]) -> dict:
    """Dark (largest predicted LR, first in ``order``) to light, or one colour for one graph."""
    if len(order) <= 1:
        return dict(zip(order, sns.color_palette("deep", 1)))
    return dict(zip(order, sns.color_palette("viridis", len(order))))


#: Line colour of the graphs that are not highlighted when there are many.
OTHER = "#b8b8b8"


def loss_vs_lr(results: pd.DataFrame, ax=None, *, metric: str = "train_loss", hue: str = "graph",
               hue_order: list[str] | None = None, max_lrs: pd.DataFrame | None = None,
               labels: dict[str, str] | None = None, title: str | None = None, legend: bool = True,
               legend_kwargs: dict | None = None, scales: dict[str, float] | None = None,
               chance: float | None = None, always: list[str] | None = None):
    """Loss against learning rate, one line per ``hue`` value: the curve the max-LR rule reads.

    The line is the seed mean with diverged runs capped above every finite loss (so one
    diverged seed neither hides a learning rate nor draws a spike to infinity); open circles mark
    learning rates where some seed diverged; the band spans the finite seeds. ``max_lrs`` (from
    :func:`archscale.analysis.max_lr`) adds a star at each measured maximal LR. ``hue_order`` runs
    from the largest predicted LR to the smallest (dark to light). Past :data:`MAX_LEGEND` graphs
    only :data:`N_HIGHLIGHT` of them are coloured and named (the largest and smallest predicted LR
    and ranks between, by ``scales``, and every graph in ``always``, e.g. the base), the rest drawn thin
    and grey. ``chance``: the loss of a
    uniform guess (ln of the number of classes), drawn as a labelled line. Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5))
    order = hue_order or sorted(results[hue].unique())
    many = len(order) > MAX_LEGEND
    shown = _highlighted(order, scales, N_HIGHLIGHT, list(always or [])) if many else list(order)
    colors = {g: OTHER for g in order} | _colors(shown)
    finite = clean_losses(results, metric)
    curves = {}
    for g in [g for g in order if g not in shown] + shown:  # the highlighted lines on top
        rows = results[results[hue] == g]
        if rows.empty:
            continue
        lrs, losses = loss_matrix(rows, metric)
        capped = cap_diverged(losses)  # drawn above every finite loss, marked with an open circle
        mean = np.nanmean(capped, axis=0) if capped.size else capped
        curves[g] = (lrs, mean)
        label = (labels or {}).get(g, str(g))
        if g not in shown:
            ax.plot(lrs, mean, "-", color=OTHER, lw=0.7, alpha=0.8, zorder=1)
            continue
        band = finite[finite[hue] == g].groupby("lr")[metric].agg(["min", "max"]).reindex(lrs)
        ax.plot(lrs, mean, "-o", color=colors[g], ms=2.5, lw=1.8 if many else 1.5, label=label, zorder=3)
        ax.fill_between(lrs, band["min"], band["max"], color=colors[g], alpha=0.18, lw=0)
        some_diverged = _diverged_mask(rows, lrs, metric).any(axis=0)
        if some_diverged.any():
            ax.scatter(lrs[some_diverged], mean[some_diverged], s=22, facecolors="none", edgecolors=colors[g],
                       linewidths=0.9, zorder=4)
    if many:
        ax.plot([], [], "-", color=OTHER, lw=0.9, label=f"the other {len(order) - len(shown)} graphs")
    drawn = [g for g in shown if g in curves]
    if any(_diverged_mask(results[results[hue] == g], curves[g][0], metric).any() for g in drawn):
        ax.scatter([], [], s=22, facecolors="none", edgecolors="grey", label="a seed diverged (capped)")
    if max_lrs is not None and not max_lrs.empty and "best_loss" in max_lrs.columns:
        for _, row in max_lrs.iterrows():
            if row[hue] in colors and math.isfinite(row["max_lr"]):
                big = row[hue] in shown
                ax.scatter([row["max_lr"]], [row["best_loss"]], marker="*", s=140 if big else 40,
                           color=colors[row[hue]], edgecolor="k" if big else "none", linewidth=0.6,
                           zorder=5 if big else 2)
        ax.scatter([], [], marker="*", s=100, color="grey", edgecolor="k", label="measured max LR")
    ax.set_xscale("log")
    lim = _ylim(curves)
    if chance is not None and np.isfinite(chance):
        if lim is not None and lim[0] < chance < lim[1] + 0.25 * (lim[1] - lim[0]):
            lim = (lim[0], max(lim[1], chance + 0.05 * (lim[1] - lim[0])))
        if lim is None or chance < lim[1]:
            ax.axhline(chance, color="tab:red", ls=":", lw=1.2, zorder=2,
                       label=f"chance: ln {round(math.exp(chance))} = {chance:.2f}")
    if lim is not None:
        ax.set_ylim(*lim)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"{_METRIC_LABELS.get(metric, metric)}\n(seed mean, band = seed range)")
    if title:
        ax.set_title(title)
    if legend:
        kwargs = {"title": hue, "fontsize": 7, "title_fontsize": 8, "ncol": 1}
        kwargs.update(legend_kwargs or {})
        ax.legend(**kwargs)
    return ax


def _diverged_mask(rows: pd.DataFrame, lrs: np.ndarray, metric: str) -> np.ndarray:
    """Per seed and LR of ``lrs``: did that run diverge (or end with a non-finite ``metric``)?"""
    bad = rows.assign(_bad=clean_losses(rows, metric)[metric].isna())
    wide = bad.pivot_table(index="seed", columns="lr", values="_bad", aggfunc="max").reindex(columns=lrs)
    return wide.fillna(False).to_numpy(bool)


def measured_vs_predicted(comparison, ax=None, *, hue: str | None = None, annotate: bool | None = None,
                          labels: dict[str, str] | None = None, title: str | None = None):
    """Measured against predicted maximal LR on log axes, with the identity line and the metrics.

    Error bars are each measurement's 95% seed-bootstrap interval; the base is drawn apart (a
    black diamond: it matches its prediction by construction and enters no metric). ``hue``
    colours points by a column (e.g. ``kernel_size``). Graphs are named when there are few,
    else the :data:`N_WORST` largest misses are. The title gives the headline metrics with
    their interval and n. Returns the axes.
    """
    t = comparison.table.copy()
    t = t[np.isfinite(t["measured"]) & np.isfinite(t["predicted"])]
    base = t[t["is_base"]] if "is_base" in t.columns else t.iloc[:0]
    t = t[~t.index.isin(base.index)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.8))
    groups = [(None, t)] if hue is None else list(t.groupby(hue))
    colors = sns.color_palette("deep", max(len(groups), 1))
    for color, (key, g) in zip(colors, groups):
        lo = (g["measured"] - g["measured_lo"]).clip(lower=0)
        hi = (g["measured_hi"] - g["measured"]).clip(lower=0)
        ax.errorbar(g["predicted"], g["measured"], yerr=[lo, hi], fmt="o", color=color, ecolor=color,
                    alpha=0.85, capsize=3, ms=5, label=None if key is None else f"{hue} = {key}")
    if not base.empty:
        ax.plot(base["predicted"], base["measured"], "D", color="k", ms=6,
                label="base (equal by construction; not in the metrics)")
    shown = pd.concat([t, base])
    if not shown.empty:
        vals = pd.concat([shown["predicted"], shown["measured"], shown["measured_lo"], shown["measured_hi"]])
        vals = vals[vals > 0]
        lo_v, hi_v = float(vals.min()) / 1.5, float(vals.max()) * 1.5
        ax.plot([lo_v, hi_v], [lo_v, hi_v], "k--", lw=1, label="identity (measured = predicted)")
        ax.set_xlim(lo_v, hi_v)
        ax.set_ylim(lo_v, hi_v)
    if annotate is None:
        annotate = t["graph"].nunique() <= 10 and hue is None
    named = t if annotate else t.assign(_miss=np.abs(np.log(t["measured"] / t["predicted"]))).nlargest(
        N_WORST, "_miss")
    for i, (_, row) in enumerate(named.sort_values("predicted").iterrows()):
        text = (labels or {}).get(row["graph"], str(row["graph"]))
        if hue is not None:
            text += f" ({hue} {row[hue]})"
        ax.annotate(text, (row["predicted"], row["measured"]), fontsize=6,
                    xytext=(5, -9) if i % 2 else (-5, 5), ha="left" if i % 2 else "right",
                    textcoords="offset points", color="#333333")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("predicted max LR = base max LR × scale (eq. 8/9)")
    ax.set_ylabel("measured max LR (95% seed-bootstrap interval)")
    lines = [title or "Measured vs predicted max LR", comparison.headline()]
    if not annotate:
        lines.append(f"(named: the {len(named)} largest misses)")
    ax.set_title("\n".join(lines), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_aspect("equal", adjustable="box")
    return ax


def _bases(table: pd.DataFrame) -> list[str]:
    return sorted(set(table.loc[table["is_base"], "graph"])) if "is_base" in table.columns else []


def _scales(table: pd.DataFrame) -> dict[str, float]:
    return table.groupby("graph")["scale"].mean().to_dict()


def sweep_figure(results: pd.DataFrame, comparison, *, title: str, max_lrs: pd.DataFrame | None = None,
                 facet: str | None = None, metric: str = "train_loss", hue_in_comparison: str | None = None,
                 chance: float | None = None):
    """The paper-style figure: loss vs LR panels (one per ``facet`` value) and measured vs predicted.

    Lines are coloured by predicted LR (largest first: dark) so the ordering the rule predicts
    can be read off the loss curves; with a facet, the colours and the legend's scales are those
    of the first facet value (e.g. kernel 3). ``chance`` (ln of the number of classes) draws the
    loss of a uniform guess. The suptitle names the recipe the rows were trained with. Returns the
    figure.
    """
    facets = [None] if facet is None else sorted(results[facet].unique())
    table = comparison.table
    if facet is not None and facet in table.columns:
        table = table[table[facet] == facets[0]]
    order = graph_order(table)
    order += sorted(set(results["graph"]) - set(order))
    scales = _scales(table)
    short = {g: graph_label(g) for g in order}
    labels = {g: f"{short[g]} (×{scales[g]:.2f})" if g in scales else short[g] for g in order}
    legend_title = "graph (predicted LR scale" + (f" at {facet} {facets[0]})" if facet else ")")
    n = len(facets) + 1
    if n <= 3:
        fig, grid = plt.subplots(1, n, figsize=(5.8 * n, 5.0), squeeze=False)
    else:
        ncols = math.ceil(n / 2)
        fig, grid = plt.subplots(2, ncols, figsize=(5.9 * ncols, 9.8), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.set_axis_off()
    for i, (ax, value) in enumerate(zip(axes[: n - 1], facets)):
        sub = results if value is None else results[results[facet] == value]
        sub_max = None
        if max_lrs is not None:
            sub_max = max_lrs if value is None else max_lrs[max_lrs[facet] == value]
        loss_vs_lr(sub, ax, metric=metric, hue_order=[g for g in order if g in set(sub["graph"])],
                   max_lrs=sub_max, labels=labels, scales=scales, legend=i == 0,
                   legend_kwargs={"title": legend_title, "fontsize": 6, "title_fontsize": 7},
                   title=("loss vs learning rate" if value is None else
                          f"{value}×{value} kernels" if facet == "kernel_size" else f"{facet} = {value}"),
                   chance=chance,
                   always=_bases(table))
    measured_vs_predicted(comparison, axes[n - 1], hue=hue_in_comparison, labels=short)
    fig.suptitle(f"{title}\ntrained with {recipe_name(comparison.recipe)}; depth offset {comparison.offset}",
                 fontsize=11)
    return fig


def grouped_sweep_figure(results: pd.DataFrame, comparisons: dict, *, title: str,
                         max_lrs: pd.DataFrame | None = None, metric: str = "train_loss"):
    """One column per named group: loss vs LR on top, measured vs predicted (with its metrics) below.

    ``comparisons`` maps a group name to :func:`archscale.analysis.compare` run on that group's
    rows; the loss panel shows the same graphs. Returns the figure.
    """
    if not comparisons:
        raise ArchscaleError("give at least one named comparison to plot")
    return column_figure({name: (results, comp, max_lrs) for name, comp in comparisons.items()}, title=title,
                         metric=metric)


def calibration_figure(cal, *, title: str | None = None):
    """Held-out graphs: measured against predicted maximal LR for eq. 8 and for the calibrated law.

    ``cal`` is :func:`archscale.analysis.calibrate.calibrate`'s result; each panel shows only the
    held-out configurations (the fitting graphs and the base are left out) with the metrics in
    its title. Returns the figure.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.4))
    for ax, comp, name in ((axes[0], cal.eq8, "eq. 8 (zero-shot)"),
                           (axes[1], cal.calibrated, f"calibrated: {cal.fitted.describe()}")):
        held = comp.table[comp.table["graph"].isin(cal.test_graphs)]
        view = type(comp)(**{**comp.__dict__, "table": held})
        hue = "kernel_size" if held["kernel_size"].nunique() > 1 else None
        measured_vs_predicted(view, ax, hue=hue, title=f"{name}\non {len(cal.test_graphs)} held-out graphs")
        if comp is cal.calibrated:
            ax.set_xlabel("predicted max LR = base max LR × calibrated scale")
    fig.suptitle(title or f"Calibrated on {len(cal.fit_graphs)} graphs, tested on {len(cal.test_graphs)} "
                          f"others (held-out share {cal.holdout:g}, seed {cal.seed})", fontsize=11)
    return fig


def factorial_figure(fact, *, title: str | None = None):
    """The recipe factorial: each recipe's log r and error factor with intervals, and the moment link.

    ``fact`` is :func:`archscale.experiments.maxlr.run_factorial`'s result. (a) log-scale Pearson r per
    recipe, (b) the typical error factor per recipe, both with their 95% intervals and coloured
    by readout; (c) per graph, measured / predicted max LR against the readout-input second
    moment at init (relative to the base), for the paper's setup and the reference code's.
    """
    cells = fact.cells.reset_index(drop=True)
    labels = [" · ".join(_SHORT[k].get(v, v) for k, v in (("layout", r.layout), ("init", r.init),
                                                            ("readout", r.readout)))
              for r in cells.itertuples()]
    colors = dict(zip(("mean_field", "standard", "reference"), sns.color_palette("deep", 3)))
    fig = plt.figure(figsize=(13, 11))  # two metric panels side by side, the moment link below
    grid = fig.add_gridspec(2, 2, width_ratios=[1.25, 1], height_ratios=[1.15, 1])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    y = np.arange(len(cells))
    for ax, metric, name in ((axes[0], "pearson_log", "Pearson r of log LRs (base excluded)"),
                             (axes[1], "error_factor", "typical error factor (×)")):
        for i, r in cells.iterrows():
            ax.errorbar(r[metric], i, xerr=[[max(r[metric] - r[f"{metric}_lo"], 0)],
                                            [max(r[f"{metric}_hi"] - r[metric], 0)]],
                        fmt="s" if r["layout"] == "paper" else "o", color=colors[r["readout"]], capsize=3)
        ax.set_yticks(y)
        ax.set_yticklabels(labels if ax is axes[0] else [], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(name)
        ax.set_title(f"{name}\n95% bootstrap intervals, n = {int(cells['n'].max())} graphs per recipe",
                     fontsize=9)
    axes[0].axvline(0, color="k", lw=0.8)
    axes[1].axvline(1, color="k", lw=0.8)
    axes[0].set_ylabel("layout · in-degree init · readout")
    for readout, color in colors.items():
        axes[1].plot([], [], "o", color=color, label=RECIPE_LEVELS["readout"].get(readout, readout))
    axes[1].plot([], [], "s", color="grey", label="paper layout")
    axes[1].plot([], [], "o", color="grey", label="reference layout")
    axes[1].legend(fontsize=7, loc="lower right")
    ax = axes[2]
    m = fact.moments[~fact.moments["is_base"] & np.isfinite(fact.moments["measured"])]
    for (layout, init, readout), color in ((("paper", "archscale", "mean_field"), "tab:blue"),
                                           (("reference", "source", "reference"), "tab:red")):
        sel = m[(m["layout"] == layout) & (m["init"] == init) & (m["readout"] == readout)]
        ax.scatter(sel["z2_ratio"], sel["measured"] / sel["predicted"], color=color, s=22, alpha=0.8,
                   label=recipe_name({"layout": layout, "init": init, "readout": readout}))
    ax.axhline(1, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("readout-input E[z²] at init, relative to the base graph")
    ax.set_ylabel("measured / predicted max LR (eq. 8)")
    ax.set_title("per graph: the prediction's miss against forward-variance growth", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(title or "Recipe factorial: which part of the recipe makes eq. 8 predictive")
    return fig


def _rows_of(frame: pd.DataFrame, graphs: list[str], kernel: int | None) -> pd.DataFrame:
    keep = frame["graph"].isin(graphs)
    return frame[keep & (frame["kernel_size"] == kernel)] if kernel else frame[keep]


def column_figure(columns: dict, *, title: str, metric: str = "train_loss", chance: float | None = None):
    """One column per named ``(results, comparison, max_lrs[, kernel])``: loss vs LR, measured vs predicted.

    Each column's loss panel shows the rows of its comparison's graphs (at ``kernel`` only, when
    given: CNN columns show one kernel's curves, their measured-vs-predicted panel every kernel,
    coloured by kernel size). Columns may come from different sweeps (fig. 7: MLP depth, MLP
    topology, CNN). The suptitle names each column's recipe once when they agree. Returns the figure.
    """
    n = len(columns)
    fig, axes = plt.subplots(2, n, figsize=(6.4 * n, 10.4), squeeze=False)
    recipes = []
    for col, (name, (results, comp, max_lrs, *rest)) in enumerate(columns.items()):
        kernel = rest[0] if rest else None
        graphs = list(comp.table["graph"].unique())
        rows_of = functools.partial(_rows_of, graphs=graphs, kernel=kernel)
        table = rows_of(comp.table)
        order = graph_order(table)
        scales = _scales(table)
        short = {g: graph_label(g) for g in order}
        labels = {g: f"{short[g]} (×{scales[g]:.2f})" for g in order}
        at = f" (kernel {kernel})" if kernel else ""
        loss_vs_lr(rows_of(results), axes[0, col], metric=metric, hue_order=order, labels=labels,
                   max_lrs=None if max_lrs is None else rows_of(max_lrs),
                   scales=scales, title=f"{name}: loss vs learning rate{at}",
                   legend_kwargs={"title": "graph (predicted LR scale)", "fontsize": 6, "title_fontsize": 7},
                   chance=chance, always=_bases(table))
        hue = "kernel_size" if comp.table["kernel_size"].nunique() > 1 else None
        measured_vs_predicted(comp, axes[1, col], labels=short, hue=hue,
                              title=f"{name}: measured vs predicted max LR")
        recipes.append(recipe_name(comp.recipe))
    recipe = recipes[0] if len(set(recipes)) == 1 else "; ".join(f"{k}: {r}"
                                                                 for k, r in zip(columns, recipes))
    fig.suptitle(f"{title}\ntrained with {recipe}", fontsize=11)
    return fig


def kernel_exponent_figure(kx, *, title: str | None = None):
    """Eq. 9's kernel factor per graph: max LR against q, and each graph's exponent with its interval.

    ``kx`` is :func:`archscale.analysis.kernel_exponents`'s result. (a) measured max LR (95% seed
    interval) against the kernel size on log-log axes, one line per graph, with eq. 9's slope
    -1 drawn through each graph's smallest kernel (dashed); (b) each graph's exponent with its
    95% bootstrap interval, the pooled within-graph exponent, and the lines at -1 (eq. 9) and 0
    (the kernel does not matter). Returns the figure.
    """
    t = kx.comparison.table
    rows = kx.table.reset_index(drop=True)
    colors = dict(zip(rows["graph"], sns.color_palette("viridis", max(len(rows), 1))))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12.5, 5.2), gridspec_kw={"width_ratios": [1.1, 1]})
    for r in rows.itertuples():
        g = t[(t["graph"] == r.graph) & (t["width"] == r.width) & (t["act"] == r.act)]
        g = g.sort_values("kernel_size")
        lo = (g["measured"] - g["measured_lo"]).clip(lower=0)
        hi = (g["measured_hi"] - g["measured"]).clip(lower=0)
        label = f"{graph_label(r.graph)}: {r.exponent:.2f} [{r.lo:.2f}, {r.hi:.2f}]"
        ax.errorbar(g["kernel_size"], g["measured"], yerr=[lo, hi], fmt="-o", color=colors[r.graph],
                    capsize=3, ms=4, label=label)
        q0, m0 = float(g["kernel_size"].iloc[0]), float(g["measured"].iloc[0])
        qs = np.array(sorted(g["kernel_size"]), dtype=float)
        ax.plot(qs, m0 * (qs / q0) ** kx.predicted, "--", color=colors[r.graph], lw=0.8, alpha=0.7)
    ax.plot([], [], "k--", lw=0.8, label=f"eq. 9: slope {kx.predicted:g} through each q = 3 point")
    ax.set_xscale("log")
    ax.set_yscale("log")
    kernels = sorted(t["kernel_size"].unique())
    ax.set_xticks(kernels)
    ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    ax.set_xlabel("kernel size q (log scale)")
    ax.set_ylabel("measured max LR (95% seed-bootstrap interval)")
    ax.set_title("(a) max LR against kernel size, per graph\n(legend: exponent [95% interval])", fontsize=9)
    ax.legend(fontsize=7, title="graph", title_fontsize=7)
    y = np.arange(len(rows) + 1)
    p = kx.pooled
    points = [(r["exponent"], r["lo"], r["hi"], "o", colors[r["graph"]]) for _, r in rows.iterrows()]
    for i, (est, lo, hi, marker, color) in enumerate(points + [(p["exponent"], p["lo"], p["hi"], "D", "k")]):
        bx.errorbar(est, i, xerr=[[max(est - lo, 0)], [max(hi - est, 0)]], fmt=marker, color=color, capsize=3)
    bx.set_yticks(y)
    bx.set_yticklabels([graph_label(g) for g in rows["graph"]] + [f"pooled ({p['n_graphs']} graphs)"],
                       fontsize=7)
    bx.invert_yaxis()
    bx.axvline(kx.predicted, color="tab:red", ls="--", lw=1, label=f"eq. 9 ({kx.predicted:g})")
    bx.axvline(0, color="grey", ls=":", lw=1, label="no kernel dependence (0)")
    bx.set_xlabel("kernel exponent: slope of ln max LR on ln q")
    bx.set_title(f"(b) exponent per graph, 95% bootstrap over {int(rows['n_seeds'].max())} seeds "
                 f"({kx.n_boot} replicates)", fontsize=9)
    bx.legend(fontsize=7, loc="best")
    fig.suptitle(title or "Eq. 9's kernel factor alone: how each graph's maximal LR moves with the kernel "
                          "size", fontsize=11)
    return fig
