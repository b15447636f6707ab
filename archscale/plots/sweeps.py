"""Figures for learning-rate sweeps: loss against learning rate, measured against predicted max LR.

Inputs are the tidy tables of ``archscale.sweep``: ``run_sweep``/``load_results`` rows (graph,
arch, width, kernel_size, act, lr, seed, train_loss, test_loss, test_acc, diverged, steps),
``max_lr`` rows, and a ``compare`` result (``.table``, ``.pearson_r``, ``.pearson_r_log``, ``.n``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker as mticker

__all__ = ["clean_losses", "graph_label", "graph_order", "grouped_sweep_figure", "listed_and_sampled",
           "loss_vs_lr", "measured_vs_predicted", "sweep_figure"]

_METRIC_LABELS = {"train_loss": "training loss after the run", "test_loss": "test loss",
                  "test_acc": "test accuracy"}


def clean_losses(results: pd.DataFrame, metric: str = "train_loss") -> pd.DataFrame:
    """Copy of ``results`` with diverged or non-finite ``metric`` values set to NaN."""
    if metric not in results.columns:
        raise ValueError(f"results have no column {metric!r}; columns: {', '.join(results.columns)}")
    df = results.copy()
    bad = ~np.isfinite(df[metric].astype(float))
    if "diverged" in df.columns:
        bad |= df["diverged"].astype(bool)
    df.loc[bad, metric] = np.nan
    return df


def graph_label(code: str, offset: int = 3) -> str:
    """Short legend label: ``L = d`` for a chain of blocks (or the lone-skip base), else the code."""
    from ..dag import Dag, DagError

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


def _palette(order: list[str]):
    if len(order) <= 1:
        return dict(zip(order, sns.color_palette("deep", 1)))
    return dict(zip(order, sns.color_palette("viridis", len(order))))


def _ylim(df: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    vals = df[metric].dropna()
    if vals.empty:
        return None
    low = float(vals.min())
    smallest_lr = df[df["lr"] == df["lr"].min()]
    start = smallest_lr.groupby("graph")[metric].mean().max()
    top = float(vals.max())
    if math.isfinite(start) and start > low:
        top = min(top, 1.3 * float(start))
    pad = 0.05 * max(top - low, 1e-6)
    return low - pad, top + pad


def loss_vs_lr(results: pd.DataFrame, ax=None, *, metric: str = "train_loss", hue: str = "graph",
               hue_order: list[str] | None = None, max_lrs: pd.DataFrame | None = None,
               labels: dict[str, str] | None = None, title: str | None = None, legend: bool = True,
               legend_kwargs: dict | None = None):
    """Loss (``metric``) against learning rate, one line per ``hue`` value, seeds as a min-max band.

    Diverged runs are left out (their line stops); ``max_lrs`` (from ``archscale.sweep.max_lr``)
    adds a star at each graph's measured maximal LR. ``labels`` renames legend entries and
    ``legend_kwargs`` places the legend. Returns the axes.
    """
    df = clean_losses(results, metric)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5))
    order = hue_order or sorted(df[hue].unique())
    palette = _palette(order)
    sns.lineplot(df, x="lr", y=metric, hue=hue, hue_order=order, palette=palette, errorbar=("pi", 100),
                 estimator="mean", marker="o", markersize=3, ax=ax, legend=legend,
                 err_kws={"alpha": 0.2 if len(order) <= 10 else 0.06}, lw=1.5 if len(order) <= 10 else 1.0)
    if max_lrs is not None and not max_lrs.empty:
        key = "best_loss" if "best_loss" in max_lrs.columns else None
        for _, row in max_lrs.iterrows():
            if row[hue] in palette and key is not None and math.isfinite(row["max_lr"]):
                ax.scatter([row["max_lr"]], [row[key]], marker="*", s=140, color=palette[row[hue]],
                           edgecolor="k", linewidth=0.6, zorder=5)
        ax.scatter([], [], marker="*", s=100, color="grey", edgecolor="k", label="measured max LR")
    ax.set_xscale("log")
    lim = _ylim(df, metric)
    if lim is not None:
        ax.set_ylim(*lim)
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel(f"{_METRIC_LABELS.get(metric, metric)} (mean, band = seed range)")
    if title:
        ax.set_title(title)
    if legend:
        handles, names = ax.get_legend_handles_labels()
        names = [labels.get(n, n) if labels else n for n in names]
        kwargs = {"title": hue, "fontsize": 7, "title_fontsize": 8, "ncol": 1 if len(order) <= 12 else 2}
        kwargs.update(legend_kwargs or {})
        ax.legend(handles, names, **kwargs)
    return ax


def measured_vs_predicted(comparison, ax=None, *, hue: str | None = None, annotate: bool | None = None,
                          labels: dict[str, str] | None = None, title: str | None = None):
    """Measured against predicted maximal LR with the identity line, seed error bars and Pearson r.

    ``comparison`` is ``archscale.sweep.compare(...)``: error bars span ``measured_lo`` to
    ``measured_hi``; ``hue`` colours points by a column (e.g. ``kernel_size``); graphs are
    labelled when there are few. The title states Pearson r (linear and log) and n. Returns the axes.
    """
    t = comparison.table.copy()
    t = t[np.isfinite(t["measured"]) & np.isfinite(t["predicted"])]
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.8))
    groups = [(None, t)] if hue is None else list(t.groupby(hue))
    colors = sns.color_palette("deep", max(len(groups), 1))
    for color, (key, g) in zip(colors, groups):
        lo = (g["measured"] - g.get("measured_lo", g["measured"])).clip(lower=0)
        hi = (g.get("measured_hi", g["measured"]) - g["measured"]).clip(lower=0)
        ax.errorbar(g["predicted"], g["measured"], yerr=[lo, hi], fmt="o", color=color, ecolor=color,
                    alpha=0.85, capsize=3, ms=5, label=None if key is None else f"{hue} = {key}")
    if not t.empty:
        vals = pd.concat([t["predicted"], t["measured"], t.get("measured_lo", t["measured"]),
                          t.get("measured_hi", t["measured"])])
        vals = vals[vals > 0]
        lo_v, hi_v = float(vals.min()) / 1.5, float(vals.max()) * 1.5
        ax.plot([lo_v, hi_v], [lo_v, hi_v], "k--", lw=1, label="identity (measured = predicted)")
        ax.set_xlim(lo_v, hi_v)
        ax.set_ylim(lo_v, hi_v)
    if annotate is None:
        annotate = t["graph"].nunique() <= 10 and hue is None
    if annotate:
        for i, (_, row) in enumerate(t.sort_values("predicted").iterrows()):
            text = (labels or {}).get(row["graph"], str(row["graph"]))
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
    ax.set_ylabel("measured max LR (error bars: seed range)")
    r_text = (f"Pearson r = {comparison.pearson_r:.3f} (log r = {comparison.pearson_r_log:.3f}), "
              f"n = {comparison.n}")
    ax.set_title(f"{title}\n{r_text}" if title else f"Measured vs predicted max LR\n{r_text}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_aspect("equal", adjustable="box")
    return ax


def sweep_figure(results: pd.DataFrame, comparison, *, title: str, max_lrs: pd.DataFrame | None = None,
                 facet: str | None = None, metric: str = "train_loss", hue_in_comparison: str | None = None):
    """The paper-style figure: loss vs LR panels (one per ``facet`` value) and measured vs predicted.

    Lines are coloured by predicted LR (viridis, largest first) so the ordering the rule
    predicts can be read off the loss curves; with a facet the legend's scales are those of the
    first facet value (e.g. kernel 3). The suptitle repeats Pearson r. Returns the figure.
    """
    facets = [None] if facet is None else sorted(results[facet].unique())
    table = comparison.table
    if facet is not None and facet in table.columns:
        table = table[table[facet] == facets[0]]
    order = graph_order(table)
    order += sorted(set(results["graph"]) - set(order))
    pred = table.groupby("graph")["scale"].mean()
    short = {g: graph_label(g) for g in order}
    labels = {g: f"{short[g]} (×{pred[g]:.2f})" if g in pred.index else short[g] for g in order}
    legend_title = "graph (predicted LR scale" + (f" at {facet} {facets[0]})" if facet else ")")
    n = len(facets) + 1
    if n <= 3:
        fig, grid = plt.subplots(1, n, figsize=(5.6 * n, 4.9), squeeze=False)
    else:
        ncols = math.ceil(n / 2)
        fig, grid = plt.subplots(2, ncols, figsize=(5.8 * ncols, 9.6), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.set_axis_off()
    for i, (ax, value) in enumerate(zip(axes[: n - 1], facets)):
        sub = results if value is None else results[results[facet] == value]
        sub_max = None
        if max_lrs is not None:
            sub_max = max_lrs if value is None else max_lrs[max_lrs[facet] == value]
        loss_vs_lr(sub, ax, metric=metric, hue_order=[g for g in order if g in set(sub["graph"])],
                   max_lrs=sub_max, labels=labels, legend=i == 0,
                   title=("loss vs learning rate" if value is None else f"{facet} = {value}"))
        if i == 0:
            handles, names = ax.get_legend_handles_labels()
            ax.get_legend().remove()
    kwargs = {"title": legend_title, "fontsize": 6 if len(order) > 12 else 7, "title_fontsize": 7}
    if facet is None:
        axes[0].legend(handles, [labels.get(n_, n_) for n_ in names], loc="upper left",
                       bbox_to_anchor=(1.0, 1.0), ncol=1 if len(order) <= 16 else 2, **kwargs)
    else:
        fig.legend(handles, [labels.get(n_, n_) for n_ in names], loc="lower center",
                   bbox_to_anchor=(0.5, -0.06), ncol=min(len(names), 6), **kwargs)
    measured_vs_predicted(comparison, axes[n - 1], hue=hue_in_comparison, labels=short)
    fig.suptitle(f"{title} — Pearson r = {comparison.pearson_r:.3f}")
    return fig


def listed_and_sampled(spec) -> dict[str, list[str]]:
    """A spec's graphs split into those it lists and those it samples, each group with the base.

    Figures that report two experiments run as one sweep (e.g. GELU depth chains and sampled
    topologies, paper Fig. 7) compare each group separately.
    """
    from ..dag import Dag

    arch = spec.arch
    base = Dag.parse(spec.base, ops=arch).code
    listed = list(dict.fromkeys([base] + [Dag.parse(g, ops=arch).code for g in spec.graphs]))
    sampled = [g for g in spec.graph_list() if g not in listed]
    groups = {"listed": listed}
    if sampled:
        groups["sampled"] = [base, *sampled]
    return groups


def grouped_sweep_figure(results: pd.DataFrame, comparisons: dict, *, title: str,
                         max_lrs: pd.DataFrame | None = None, metric: str = "train_loss"):
    """One column per named group: loss vs LR on top, measured vs predicted (with its r) below.

    ``comparisons`` maps a group name to ``archscale.sweep.compare`` run on that group's rows; the
    loss panel shows the same graphs. The suptitle lists every group's Pearson r. Returns the figure.
    """
    if not comparisons:
        raise ValueError("give at least one named comparison to plot")
    n = len(comparisons)
    fig, axes = plt.subplots(2, n, figsize=(6.4 * n, 10.0), squeeze=False)
    for col, (name, comp) in enumerate(comparisons.items()):
        graphs = list(comp.table["graph"].unique())
        sub = results[results["graph"].isin(graphs)]
        order = graph_order(comp)
        pred = comp.table.groupby("graph")["scale"].mean()
        short = {g: graph_label(g) for g in order}
        labels = {g: f"{short[g]} (×{pred[g]:.2f})" for g in order}
        sub_max = None if max_lrs is None else max_lrs[max_lrs["graph"].isin(graphs)]
        loss_vs_lr(sub, axes[0, col], metric=metric, hue_order=order, max_lrs=sub_max, labels=labels,
                   title=f"{name}: loss vs learning rate",
                   legend_kwargs={"title": "graph (predicted LR scale)", "fontsize": 6, "title_fontsize": 7,
                                  "ncol": 1 if len(order) <= 12 else 2})
        measured_vs_predicted(comp, axes[1, col], labels=short, title=f"{name}: measured vs predicted max LR")
    rs = ", ".join(f"{name} r = {comp.pearson_r:.3f}" for name, comp in comparisons.items())
    fig.suptitle(f"{title} — Pearson {rs}")
    return fig
