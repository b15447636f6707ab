"""Figures about graphs: DAG drawings with their paths, LR-scale distributions, init moments.

Each function draws on an ``ax`` it is given (or a new figure) and returns the figure or axes;
saving is left to :func:`archscale.plots.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker as mticker
from matplotlib.lines import Line2D

from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import convention
from . import fixed_jitter

__all__ = [
    "dag_layout",
    "draw_dag",
    "draw_dag_paths",
    "init_moments_figure",
    "lr_offset_figure",
    "lr_scale_distribution",
]

_INIT_LABELS = {"he": "He (2/fan_in)", "source": "source in-degree (eq. 4 as typeset)",
                "archscale": "target in-degree (archscale)", "reference": "reference code"}


def dag_layout(dag: Dag) -> dict[int, tuple[float, float]]:
    """Vertices left to right on a line in index order; longer edges arc above it."""
    return {v: (float(v), 0.0) for v in range(dag.n_vertices)}


def _edge_rad(src: int, dst: int) -> float:
    """Arc bend of an edge: straight between neighbours, higher the longer it jumps (negative = up)."""
    span = dst - src
    return 0.0 if span == 1 else -(0.35 + 0.08 * (span - 2))


def _dag_of(dag: Dag | str, arch: str | None) -> Dag:
    if isinstance(dag, str):
        return Dag.parse(dag, ops="nb201" if arch == "nb201" else "mlp")
    return dag


def draw_dag(dag: Dag | str, ax=None, *, arch: str | None = None, offset: int | None = None,
             highlight: str | int | None = "all", max_paths: int = 10, legend: bool = True,
             title: str | None = None, node_size: int = 420):
    """Draw ``dag`` with end-to-end paths in colour, each labelled with its depth ``L_p``.

    Blocks are solid grey edges, skips dashed, vertices no path reaches pale. ``highlight`` is
    ``"all"`` (every path, up to ``max_paths``), one path index (then the title names the path
    and its depth), or ``None``. ``L_p = offset + blocks on the path``, with the ``arch``
    convention's offset by default. Returns the axes.
    """
    dag = _dag_of(dag, arch)
    conv = convention(arch or dag.ops)
    offset = conv.offset if offset is None else offset
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 + 1.2 * dag.n_vertices, 2.6))
    g = dag.to_networkx()
    pos = dag_layout(dag)
    node_colors = ["#d0e4f5" if live else "#f2f2f2" for live in dag.live]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=node_size, node_color=node_colors,
                           edgecolors="#335577")
    labels = {v: str(v) for v in g.nodes}
    labels[0], labels[dag.output] = "in", "out"
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    for e in dag.edges:
        nx.draw_networkx_edges(
            g, pos, edgelist=[(e.src, e.dst)], ax=ax, width=1.2, edge_color="#a0a0a0",
            style="solid" if e.is_parameterized else "dashed", arrows=True, arrowsize=10,
            node_size=node_size, connectionstyle=f"arc3,rad={_edge_rad(e.src, e.dst)}")
    paths = list(dag.iter_paths()) if dag.has_path else []
    if highlight is None or not paths:
        chosen: list[int] = []
    elif highlight == "all":
        chosen = list(range(min(len(paths), max_paths)))
    else:
        if isinstance(highlight, str) or not 0 <= int(highlight) < len(paths):
            raise ArchscaleError(f"highlight must be a path index in 0..{len(paths) - 1}, 'all' or None; "
                             f"got {highlight!r}")
        chosen = [int(highlight)]
    colors = sns.color_palette("tab10" if len(chosen) <= 10 else "husl", max(len(chosen), 1))
    if len(chosen) == 1 and highlight != "all":
        colors = [sns.color_palette("tab10")[chosen[0] % 10]]
    handles = []
    for k, i in enumerate(chosen):
        path = paths[i]
        depth = offset + dag.path_param_count(path)
        shift = (k - (len(chosen) - 1) / 2) * 0.05 if len(chosen) > 1 else 0.0
        for a, b in zip(path, path[1:]):
            nx.draw_networkx_edges(
                g, pos, edgelist=[(a, b)], ax=ax, width=2.4, edge_color=[colors[k]], alpha=0.9,
                arrows=True, arrowsize=10, node_size=node_size,
                style="solid" if dag.op(a, b) in ("block", "nor_conv_1x1", "nor_conv_3x3") else "dashed",
                connectionstyle=f"arc3,rad={_edge_rad(a, b) + shift}")
        handles.append(Line2D([], [], color=colors[k], lw=2.4,
                              label=f"{'→'.join(map(str, path))}   L = {depth}"))
    if legend:
        extra = len(paths) - len(chosen)
        if highlight == "all" and extra > 0:
            handles.append(Line2D([], [], color="none", label=f"+ {extra} more path(s)"))
        handles += [Line2D([], [], color="#a0a0a0", lw=1.2, label="block edge (Linear/Conv)"),
                    Line2D([], [], color="#a0a0a0", lw=1.2, ls="--", label="skip edge")]
        ax.legend(handles=handles, title=f"path: depth L_p = {offset} + blocks", fontsize=7,
                  title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title is None:
        if not paths:
            title = f"{dag.code}: no input→output path (cannot be trained)"
        elif len(chosen) == 1 and highlight != "all":
            path = paths[chosen[0]]
            title = f"{'→'.join(map(str, path))}:  L = {offset + dag.path_param_count(path)}"
        else:
            title = f"{dag.code}: {len(paths)} path(s), Σ L_p³ = {dag.path_power_sum(3, offset)}"
    ax.set_title(title, fontsize=9)
    longest = max((e.dst - e.src for e in dag.edges), default=1)
    ax.set_xlim(-0.45, dag.n_vertices - 0.55)
    ax.set_ylim(-0.35, 0.3 + 0.5 * abs(_edge_rad(0, longest + 0)) * longest)
    ax.set_axis_off()
    return ax


def draw_dag_paths(codes: list[str] | str, *, arch: str = "mlp", offset: int | None = None,
                   max_paths: int = 6, suptitle: str | None = None):
    """One row per DAG: the whole graph, then each end-to-end path highlighted with its depth.

    Rows with more than ``max_paths`` paths show the first ones and say how many are left out.
    Returns the figure.
    """
    codes = [codes] if isinstance(codes, str) else list(codes)
    if not codes:
        raise ArchscaleError("give at least one DAG code to draw")
    dags = [_dag_of(c, arch) for c in codes]
    conv = convention(arch)
    offset = conv.offset if offset is None else offset
    ncols = 1 + min(max(max(d.n_paths for d in dags), 1), max_paths)
    width = max(d.n_vertices for d in dags)
    fig, axes = plt.subplots(len(dags), ncols, figsize=(1.0 + (0.55 * width + 0.6) * ncols,
                                                         1.9 * len(dags)), squeeze=False)
    for row, dag in zip(axes, dags):
        draw_dag(dag, row[0], arch=arch, offset=offset, highlight=None, legend=False,
                 title=(f"{dag.code}\n{dag.n_paths} path(s), Σ L_p³ = {dag.path_power_sum(3, offset)}"
                        if dag.has_path else f"{dag.code}\nno path"))
        for k, ax in enumerate(row[1:]):
            if k < min(dag.n_paths, max_paths):
                draw_dag(dag, ax, arch=arch, offset=offset, highlight=k, legend=False)
                if k == max_paths - 1 and dag.n_paths > max_paths:
                    ax.set_title(ax.get_title() + f"  (+{dag.n_paths - max_paths} more)", fontsize=9)
            else:
                ax.set_axis_off()
    handles = [Line2D([], [], color="#a0a0a0", lw=1.2, label="block edge (Linear/Conv)"),
               Line2D([], [], color="#a0a0a0", lw=1.2, ls="--", label="skip edge")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(suptitle or f"Every end-to-end path and its depth L_p = {offset} + blocks on the path")
    return fig


def lr_scale_distribution(table: pd.DataFrame, highlight: dict[str, str] | None = None, *,
                          title: str | None = None):
    """Histogram of predicted LR scale over a graph space, and scale against the number of paths.

    ``table`` comes from :func:`archscale.core.derivations.space_table`; ``highlight`` maps codes to
    labels drawn as vertical lines / marked points. Returns the figure.
    """
    if table.empty:
        raise ArchscaleError("the table is empty: no graph with a path to plot")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    bins = np.logspace(np.log10(table["scale"].min()) - 0.02, np.log10(table["scale"].max()) + 0.02, 50)
    ax1.hist(table["scale"], bins=bins, color="#4c72b0", alpha=0.85)
    ax1.set_xscale("log")
    ax1.xaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    ax1.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax1.set_xticks([t for t in (0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
                    if bins[0] <= t <= bins[-1]])
    ax1.set_xlabel("predicted LR scale  η(graph) / η(base)  (log)")
    ax1.set_ylabel("number of graphs")
    ax1.set_title(f"{len(table):,} graphs with an input→output path")
    palette = sns.color_palette("dark", max(len(highlight or {}), 1))
    rows = table.set_index("code")
    for color, (code, label) in zip(palette, (highlight or {}).items()):
        if code in rows.index:
            s = rows.loc[code, "scale"]
            ax1.axvline(s, color=color, ls="--", lw=1.2, label=f"{label} ({code}): {s:.3g}")
            ax2.scatter([rows.loc[code, "n_paths"]], [s], color=color, s=60, marker="*", zorder=3)
    if any(code in rows.index for code in highlight or {}):
        ax1.legend(fontsize=7, loc="upper left")
    sc = ax2.scatter(table["n_paths"] + np.random.default_rng(0).uniform(-0.2, 0.2, len(table)),
                     table["scale"], c=table["max_depth"], cmap="viridis", s=4, alpha=0.5)
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    ax2.yaxis.set_minor_formatter(mticker.FormatStrFormatter("%g"))
    ax2.set_xlabel("number of end-to-end paths (jittered)")
    ax2.set_ylabel("predicted LR scale (log)")
    ax2.set_title("more and longer paths → smaller learning rate")
    fig.colorbar(sc, ax=ax2, label="longest path depth L_p")
    s = table["scale"]
    fig.suptitle(title or f"Eq. 8 gives these graphs ×{s.min():.2f} to ×{s.max():.2f} of the base's learning "
                          f"rate (median ×{s.median():.2f}): one global LR would be off by up to "
                          f"×{s.max() / s.min():.0f}")
    return fig


def init_moments_figure(moments: pd.DataFrame, example: str, *, title: str | None = None,
                        graphs_note: str | None = None):
    """Three panels from :func:`archscale.probe.init_second_moments` output.

    (a) per-vertex ``E[z_v^2] / E[z_0^2]`` on ``example`` for each init with the infinite-width
    prediction; (b) the output vertex over the other graphs per init, titled with ``graphs_note`` (how
    the graphs were chosen, e.g. where two schemes differ); (c) paper vs reference layout under
    the archscale init on ``example``. Returns the figure.
    """
    df = moments[moments["ratio"] > 0].copy()
    df["init_label"] = df["init"].map(lambda s: _INIT_LABELS.get(s, s))
    inits = list(dict.fromkeys(df["init"]))
    palette = dict(zip([_INIT_LABELS.get(i, i) for i in inits], sns.color_palette("deep", len(inits))))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ex = df[(df["code"] == example) & (df["layout"] == "paper")]
    sns.lineplot(ex, x="vertex", y="ratio", hue="init_label", palette=palette, marker="o", ax=axes[0],
                 errorbar=("pi", 100))
    pred = ex.groupby(["init_label", "vertex"], as_index=False)["predicted"].mean()
    for label, g in pred.groupby("init_label"):
        axes[0].plot(g["vertex"], g["predicted"], ls=":", color=palette[label], lw=2)
    axes[0].plot([], [], ls=":", color="k", label="infinite-width prediction")
    axes[0].legend(fontsize=7, title=None)
    axes[0].set_yscale("log", base=2)
    axes[0].set_xticks(sorted(ex["vertex"].unique()))
    axes[0].set_xlabel("DAG vertex")
    axes[0].set_ylabel("E[z_v²] / E[z_0²]  (log₂)")
    axes[0].set_title(f"(a) {example}, paper layout")

    last = df[(df["layout"] == "paper") & (df["code"] != example)]  # panel (a) shows the example
    last = last[last["vertex"] == last.groupby("code")["vertex"].transform("max")]
    last = last.groupby(["code", "init_label"], as_index=False)["ratio"].mean()
    has_skip = {c: any(not e.is_parameterized for e in Dag.parse(c).edges) for c in last["code"].unique()}
    last["graphs"] = last["code"].map(lambda c: "with skip edges" if has_skip[c] else "blocks only")
    order = [_INIT_LABELS.get(i, i) for i in inits]
    sns.boxplot(last, x="init_label", y="ratio", hue="graphs", order=order, ax=axes[1], showfliers=False,
                width=0.6, palette="pastel", hue_order=["blocks only", "with skip edges"])
    with fixed_jitter():
        sns.stripplot(last, x="init_label", y="ratio", hue="graphs", order=order, dodge=True, ax=axes[1],
                      palette="dark", size=3, alpha=0.6, legend=False,
                      hue_order=["blocks only", "with skip edges"])
    axes[1].axhline(1.0, color="k", lw=0.8, ls="--")
    axes[1].set_yscale("log", base=2)
    axes[1].set_xlabel("")
    axes[1].set_xticks(range(len(order)), [label.replace(" (", "\n(") for label in order], fontsize=8)
    axes[1].set_ylabel("output vertex E[z²] / E[z_0²]  (log₂)")
    axes[1].set_title(f"(b) output vertex over {last['code'].nunique()} random DAGs"
                      + (f"\n{graphs_note}" if graphs_note else ""), fontsize=10)
    axes[1].legend(title=None, fontsize=8)

    lay = df[(df["code"] == example) & (df["init"] == "archscale")]
    if lay["layout"].nunique() > 1:
        sns.lineplot(lay, x="vertex", y="ratio", hue="layout", marker="o", ax=axes[2], errorbar=("pi", 100))
        axes[2].set_yscale("log", base=2)
        axes[2].set_xticks(sorted(lay["vertex"].unique()))
        axes[2].axhline(1.0, color="k", lw=0.8, ls="--")
        axes[2].set_xlabel("DAG vertex")
        axes[2].set_ylabel("E[z_v²] / E[z_0²]  (log₂)")
        axes[2].set_title(f"(c) {example}, target in-degree init: block layout")
        axes[2].legend(title="layout", fontsize=8)
    else:
        axes[2].set_axis_off()
    fig.suptitle(title or "Forward second moments at initialization: which in-degree keeps them equal?")
    return fig


def lr_offset_figure(predictions: pd.DataFrame, fit: pd.DataFrame | None = None, *,
                     chain_codes: list[str] | None = None, topology_codes: list[str] | None = None,
                     title: str | None = None):
    """What the depth offset does to predicted LR scales, and (if ``fit``) which offset fits data.

    ``predictions`` comes from :func:`archscale.core.derivations.offset_predictions`: (a) chains (listed
    in ``chain_codes``) against their number of blocks, one line per offset; (b) other graphs
    (``topology_codes``, default: the rest) against the offset, where crossing lines are graphs
    the offset reorders. With ``fit`` from :func:`archscale.analysis.calibrate.fit_offset`, a third
    panel scores each offset on the measured sweep without the base graph: (c) the typical error
    factor with its 95% interval, and after the best constant factor. (The Pearson r of log LRs is
    not drawn: on chains every offset orders the depths the same way, so r hardly moves with the
    offset and its panel would show a flat line; ``fit`` still holds it.) Returns the figure.
    """
    with_fit = fit is not None and not fit.empty
    if with_fit:  # (a) and (b) on top, (c) across the bottom: readable at the width a page shows it
        fig = plt.figure(figsize=(14.5, 9.4))
        grid = fig.add_gridspec(2, 2)
        axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    else:
        fig, row = plt.subplots(1, 2, figsize=(14.5, 4.6), squeeze=False)
        axes = list(row.ravel())
    chain_codes = chain_codes or []
    chains = predictions[predictions["code"].isin(chain_codes)]
    if not chains.empty:
        sns.lineplot(chains, x="longest", y="scale", hue="offset", marker="o", palette="viridis",
                     ax=axes[0], legend="full")
        axes[0].set_yscale("log")
        axes[0].set_xlabel("blocks in the chain (k); path depth L = offset + k")
        axes[0].set_ylabel("predicted LR / base LR (log)")
        axes[0].set_title("(a) chains: scale = (offset / (offset + k))^(3/2)")
        axes[0].legend(title="offset", fontsize=8)
    if topology_codes is None:
        others = predictions[~predictions["code"].isin(chain_codes)]
    else:
        others = predictions[predictions["code"].isin(topology_codes)]
    if not others.empty:
        codes = list(dict.fromkeys(others["code"]))
        colors = sns.color_palette("tab10" if len(codes) <= 10 else "husl", len(codes))
        for color, code in zip(colors, codes):
            g = others[others["code"] == code].sort_values("offset")
            axes[1].plot(g["offset"], g["scale"], "o-", color=color, ms=4, lw=1.4, label=code)
        axes[1].set_yscale("log")
        axes[1].set_xticks(sorted(others["offset"].unique()))
        axes[1].legend(title="graph", fontsize=7, title_fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.0, 1.0), frameon=False)
        axes[1].set_xlabel("depth offset")
        axes[1].set_ylabel("predicted LR / base LR (log)")
        axes[1].set_title("(b) topologies: crossing lines = the offset reorders graphs")
    if with_fit:
        best = _offset_fit_panel(fit, axes[2])
        default = (f"The depth convention L_p = offset + blocks changes every prediction; offset "
                   f"{int(best['offset'])} fits this sweep best (error ×{best['error_factor']:.2f})")
    else:
        default = "The depth convention L_p = offset + blocks changes every prediction"
    fig.suptitle(title or default)
    return fig


def _interval_limits(values: np.ndarray, *, min_span: float, lo_bound: float = -np.inf,
                     hi_bound: float = np.inf) -> tuple[float, float]:
    """Limits holding every finite value with 8% padding, spanning ``min_span`` or more, in bounds."""
    v = values[np.isfinite(values)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = 0.08 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    shift = min(hi_bound - hi, 0.0) + max(lo_bound - lo, 0.0)  # slide a window that crosses a bound
    return max(lo + shift, lo_bound), min(hi + shift, hi_bound)


def _offset_fit_panel(fit: pd.DataFrame, ax_err) -> pd.Series:
    """(c) error factor against the offset with its 95% interval; returns the best offset's row."""
    best = fit.loc[fit["log_rmse_fit"].idxmin()]
    n = int(best["n"])
    x = fit["offset"].to_numpy(float)
    est = fit["error_factor"].to_numpy(float)
    label = "recipe (anchored at the measured base LR), 95% interval"
    if "error_factor_lo" in fit:
        lo, hi = fit["error_factor_lo"].to_numpy(float), fit["error_factor_hi"].to_numpy(float)
        ax_err.errorbar(x, est, yerr=np.clip(np.vstack([est - lo, hi - est]), 0, None), fmt="o-", color="C0",
                        capsize=3, label=label)
        shown = np.concatenate([est, lo, hi])
    else:
        ax_err.plot(x, est, "o-", color="C0", label=label)
        shown = est
    after = np.exp(fit["log_rmse_fit"].to_numpy(float))
    ax_err.plot(x, after, "s--", color="C1", label="after the best constant factor (point estimate)")
    ax_err.set_ylim(*_interval_limits(np.concatenate([shown, after]), min_span=0.2, lo_bound=0.95))
    ax_err.axhline(1.0, color="k", lw=0.8, ls=":")
    ax_err.set_ylabel("typical error factor exp(RMS ln(measured / predicted))")
    ax_err.set_title(f"(c) error of the predictions, base excluded (n = {n}): "
                     f"best offset {int(best['offset'])}")
    ax_err.axvline(best["offset"], color="k", lw=0.8, ls="--",
                   label=f"best fit: offset {int(best['offset'])}")
    ax_err.set_xticks(x)
    ax_err.set_xlabel("depth offset")
    ax_err.legend(fontsize=7, loc="best")
    return best
