"""Figures for the maximal-update check: coordinate checks, one-step Delta z against LR, width
and path sums, and width transfer of the loss-vs-LR curve.

Each function takes the tidy tables of :mod:`archscale.probe` (or a sweep) and returns a figure;
saving is left to :func:`archscale.plots.save_figure`. Every number drawn is computed by a
function in :mod:`archscale.probe` or :mod:`archscale.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..probe import DeltaZResult
from ..stats import PathLawFit, delta_z_spread, lr_at_target, lr_optimum_drift, min_path_params, width_slope

__all__ = [
    "plot_contributions",
    "plot_coord_check",
    "plot_delta_z_vs_lr",
    "plot_path_law_vs_width",
    "plot_path_sum_fit",
    "plot_spread",
    "plot_width_transfer",
]


def _as_setups(tables: pd.DataFrame | Mapping[str, pd.DataFrame], label: str = "") -> dict[str, pd.DataFrame]:
    if isinstance(tables, pd.DataFrame):
        return {label: tables}
    if not tables:
        raise ArchscaleError("nothing to plot: give a table or a non-empty {label: table} mapping")
    return dict(tables)


def _vertex_label(vertex: int, kind: str) -> str:
    return "logits" if kind == "output" else f"z({vertex})"


def plot_contributions(result: DeltaZResult, title: str | None = None):
    """Heatmap of log10 ``delta_z2`` per (parameter group, vertex): which edge's step moved which vertex."""
    if result.contributions is None:
        raise ArchscaleError("this result has no contributions; call delta_z(..., contributions=True)")
    c = result.contributions
    mat = c.pivot(index="group", columns="vertex", values="delta_z2")
    mat = mat.reindex(list(dict.fromkeys(c["group"])))
    kinds = dict(zip(c["vertex"], c["kind"]))
    with np.errstate(divide="ignore"):
        logm = np.log10(mat.to_numpy(float))
    logm[~np.isfinite(logm)] = np.nan
    fig, ax = plt.subplots(figsize=(1.1 * mat.shape[1] + 3, 0.45 * mat.shape[0] + 1.8))
    im = ax.imshow(logm, cmap="viridis", aspect="auto")
    ax.set_xticks(range(mat.shape[1]), [_vertex_label(v, kinds[v]) for v in mat.columns])
    ax.set_yticks(range(mat.shape[0]), mat.index)
    ax.grid(False)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if np.isfinite(logm[i, j]):
                ax.text(j, i, f"{logm[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if logm[i, j] < np.nanmean(logm) else "black")
    fig.colorbar(im, ax=ax, label="log10 mean (Δz)² when only this group steps")
    ax.set_xlabel("vertex (value the probe reads)")
    ax.set_ylabel("parameter group that takes the step")
    ax.set_title(title or f"Which edge's update moves which vertex (one SGD step, lr={result.lr:g})")
    return fig


def plot_coord_check(tables: pd.DataFrame | Mapping[str, pd.DataFrame], value: str = "mean_abs_delta_z",
                     step: int | None = None, title: str | None = None):
    """Coordinate check: ``value`` at one step (default the last) against width, one line per vertex.

    One panel per setup in ``tables`` ({label: coord_check table}). Flat lines = width independent.
    """
    setups = _as_setups(tables)
    fig, axes = plt.subplots(1, len(setups), figsize=(4.6 * len(setups), 3.8), squeeze=False, sharey=True)
    for ax, (label, df) in zip(axes[0], setups.items()):
        t = int(df["step"].max()) if step is None else step
        sel = df[df["step"] == t]
        if sel.empty:
            raise ArchscaleError(f"no rows at step {t}; steps in the table: {sorted(df['step'].unique())}")
        for (vertex, kind), grp in sel.groupby(["vertex", "kind"]):
            curve = grp.groupby("width")[value].mean()
            ax.plot(curve.index, curve.to_numpy(), marker="o",
                    ls="--" if kind == "output" else "-", label=_vertex_label(vertex, kind))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width n (units per vertex)")
        ax.set_title(f"{label} (after {t} steps)" if label else f"after {t} steps")
    what = "mean |z_t − z_0|" if value == "mean_abs_delta_z" else "mean |z_t|"
    axes[0][0].set_ylabel(f"{what} on the probe batch")
    axes[0][-1].legend(title="vertex", fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title or f"Coordinate check: {what} against width (flat = width independent)")
    return fig


def _clipped_curve(ax, x, y, y_max: float | None, **kw) -> bool:
    """Plot ``y`` against ``x`` capped at ``y_max``; capped points become up-triangles. True if any was."""
    y = np.asarray(y, float)
    over = np.zeros(len(y), bool) if y_max is None else y > y_max
    shown = np.where(over, y_max, y) if over.any() else y
    ax.plot(x, shown, **kw)
    if over.any():
        ax.plot(np.asarray(x)[over], shown[over], ls="none", marker="^", ms=7, color=kw.get("color"), mec="k")
    return bool(over.any())


def plot_delta_z_vs_lr(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *, vertex: int | None = None,
                       kind: str = "vertex", target: float | None = 1e-2, y_max: float | None = 1e3,
                       title: str | None = None):
    """One-step ``delta_z2`` against LR, one line per width and one panel per setup.

    ``tables`` maps a setup label to a :func:`~archscale.probe.delta_z_vs_lr` table. Values above
    ``y_max`` (None: no cap) are drawn at ``y_max`` as up-triangles, and the panel says so, so one
    exploding setup does not squash the others. With ``target``, a last panel shows the LR that
    reaches ``delta_z2 = target`` against width, with the fitted log-log slope in the legend.
    """
    setups = _as_setups(tables)
    n_panels = len(setups) + (target is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.4 * n_panels, 4.0), squeeze=False)
    axes = axes[0]
    for ax, (label, df) in zip(axes, setups.items()):
        sel = df[df["kind"] == kind]
        v = int(sel["vertex"].max()) if vertex is None else vertex
        sel = sel[sel["vertex"] == v]
        widths = sorted(sel["width"].unique())
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
        clipped = False
        for color, (w, grp) in zip(colors, sel.groupby("width")):
            curve = grp.groupby("lr")["delta_z2"].mean()
            clipped |= _clipped_curve(ax, curve.index, curve.to_numpy(), y_max, marker="o", ms=3, color=color,
                                      label=f"n={w}")
        if target is not None:
            ax.axhline(target, color="grey", ls=":", lw=1, label=f"target {target:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if clipped:
            assert y_max is not None  # nothing is clipped without a cap
            ax.set_ylim(top=2 * y_max)
            ax.text(0.98, 0.02, f"▲ = above {y_max:g}, drawn at {y_max:g}", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, bbox=dict(fc="white", ec="0.7", alpha=0.9))
        ax.set_xlabel("learning rate η (one SGD step)")
        ax.set_ylabel(f"mean (Δ{_vertex_label(v, kind)})² on the probe batch")
        ax.set_title(label or "one-step change")
        ax.legend(fontsize=8, loc="upper left")
    if target is not None:
        ax = axes[-1]
        for label, df in setups.items():
            at = lr_at_target(df, target, kind=kind, vertex=vertex)
            ok = at[np.isfinite(at["lr_at_target"])]
            text = label
            if ok["width"].nunique() >= 2:
                slope, _ = width_slope(ok)
                text = f"{label}: slope {slope:+.2f}"
            ax.plot(ok["width"], ok["lr_at_target"], marker="o", label=text)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel(f"η at which (Δz)² = {target:g}")
        ax.set_title("that η against width", fontsize="medium")
        ax.legend(fontsize=8, title="log-log slope (0 = width independent)", title_fontsize=8,
                  loc="upper center", bbox_to_anchor=(0.5, -0.27))
    fig.suptitle(title or "One-step Δz² against learning rate, one line per width"
                 + ("; last panel: the η that reaches the target" if target is not None else ""))
    return fig


def plot_path_sum_fit(fit: PathLawFit, title: str | None = None):
    """Per-graph ``delta_z2`` against ``sum_p L_p^3`` and ``sum_p L_p^2`` with the fitted laws.

    Graphs with an all-skip path are drawn as open circles. Lines: the free-exponent fit and the
    exponent-1 law (eq. 8 on the left), both at the fit's eq. 8 offset.
    """
    data = fit.data
    off = fit.eq8_offset
    skip_only = np.array([min_path_params(g) == 0 for g in data["graph"]])
    panels = [k for k in (3, 2) if f"S{k}_off{off:g}" in data.columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, k in zip(axes[0], panels):
        s = data[f"S{k}_off{off:g}"].to_numpy(float)
        y = data["delta_z2"].to_numpy(float)
        ax.scatter(s[~skip_only], y[~skip_only], s=18, color="C0", label="every path has a block")
        ax.scatter(s[skip_only], y[skip_only], s=18, facecolors="none", edgecolors="C3",
                   label="graph with an all-skip path")
        grid = np.geomspace(s.min(), s.max(), 50)
        free = fit.law(f"sum L^{k}, free b")
        fixed = fit.law("eq. 8: sum L^3, b=1" if k == 3 else f"sum L^{k}, b=1")
        ax.plot(grid, np.exp(free.intercept) * grid**free.exponent, color="k",
                label=f"fit: b = {free.exponent:.2f} [{free.exponent_lo:.2f}, {free.exponent_hi:.2f}]")
        ax.plot(grid, np.exp(fixed.intercept) * grid, color="C2", ls="--",
                label="b = 1" + (" (eq. 8)" if k == 3 else ""))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"Σ_p L_p^{k}  (L_p = {off:g} + blocks on path p)")
        ax.set_ylabel("one-step (Δz)² at fixed η")
        ax.set_title(f"Δz² ∝ (Σ_p L_p^{k})^b\nb = 1 trails the best law by ΔAIC = {fixed.delta_aic:.1f}",
                     fontsize="medium")
        ax.legend(fontsize=8)
    fig.suptitle(title or f"One-step Δz² across {fit.n_graphs} topologies against the path sum")
    return fig


def _capped_bar_notes(ax, x, lo, hi, y_lo: float, y_hi: float, color) -> None:
    """Write the value of every interval end that runs past the axis limits at that edge."""
    for xi, a, b in zip(x, lo, hi):
        if a < y_lo:
            ax.annotate(f"▼ {a:.2f}", (xi, y_lo), textcoords="offset points", xytext=(4, 3), ha="left",
                        va="bottom", fontsize=7, color=color)
        if b > y_hi:
            ax.annotate(f"▲ {b:.2f}", (xi, y_hi), textcoords="offset points", xytext=(4, -3), ha="left",
                        va="top", fontsize=7, color=color)


def plot_path_law_vs_width(summary: pd.DataFrame, reference: Mapping[str, Any] | None = None,
                           title: str | None = None):
    """The path-law exponent b against width, one series per graph set, with 95% bootstrap bars.

    ``summary`` comes from :func:`~archscale.stats.path_law_by_width` (columns series, width,
    n_graphs, n_seeds, b_sumL3 / b_lo / b_hi, b_free / b_free_lo / b_free_hi, free_offset,
    offset_at_edge). Left: b at the fixed offset (3, eq. 8's); right: b with the offset fitted,
    the offset written beside each point (``edge`` when it sits at the end of the grid). The
    tick labels give each width's n (graphs x seeds per graph, series in legend order). The
    y-range follows the point estimates; an interval that runs past it has its end written at
    the edge (▼/▲). ``reference``: one more labelled point (a
    :func:`~archscale.stats.path_law_summary` row plus ``label`` and ``width``), e.g. the
    setting of an earlier fit. The dashed line is eq. 8's b = 1.
    """
    need = {"series", "width", "n_graphs", "n_seeds", "b_sumL3", "b_lo", "b_hi", "b_free", "b_free_lo",
            "b_free_hi", "free_offset", "offset_at_edge"}
    if not need <= set(summary.columns):
        raise ArchscaleError(f"summary needs columns {sorted(need)} (from path_law_by_width), "
                             f"got {list(summary.columns)}")
    series = list(dict.fromkeys(summary["series"]))
    widths = sorted(summary["width"].unique())
    points = [float(v) for v in summary[["b_sumL3", "b_free"]].to_numpy().ravel()]
    if reference is not None:
        points += [float(reference["b_sumL3"]), float(reference["b_free"])]
    y_lo, y_hi = min(0.0, min(points)) - 0.3, max(max(points), 1.0) + 0.9
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.8), sharey=True)
    shift = {s: 2 ** (0.14 * (i - (len(series) - 1) / 2)) for i, s in enumerate(series)}
    panels = [("b_sumL3", "b_lo", "b_hi", "offset fixed at 3 (eq. 8's depth convention)"),
              ("b_free", "b_free_lo", "b_free_hi", "offset fitted (its value beside each point)")]
    for ax, (col, lo, hi, what) in zip(axes, panels):
        for i, name in enumerate(series):
            rows = summary[summary["series"] == name].sort_values("width")
            x = rows["width"].to_numpy(float) * shift[name]
            y = rows[col].to_numpy(float)
            los, his = rows[lo].to_numpy(float), rows[hi].to_numpy(float)
            ax.errorbar(x, y, yerr=np.vstack([y - los, his - y]), marker="os^D"[i % 4], ms=7, capsize=4,
                        lw=1.5, color=f"C{i}", label=name)
            _capped_bar_notes(ax, x, los, his, y_lo, y_hi, f"C{i}")
            if col == "b_free":
                left = i == 0 and len(series) > 1  # the first series is labelled on its left, others right
                for xi, r in zip(x, rows.itertuples()):
                    note = f"offset {r.free_offset:g}" + (" (edge)" if r.offset_at_edge else "")
                    ax.annotate(note, (xi, r.b_free),
                                textcoords="offset points", xytext=(-8 if left else 8, 0),
                                ha="right" if left else "left", va="center", fontsize=7, color=f"C{i}",
                                bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
        if reference is not None:
            ref = dict(reference)
            xr, yr = float(ref["width"]) / 2 ** 0.55, float(ref[col])
            ax.errorbar([xr], [yr], yerr=[[yr - float(ref[lo])], [float(ref[hi]) - yr]], marker="D", ms=7,
                        capsize=4, color="0.45", mfc="white",
                        label=f"{ref.get('label', 'reference')} (n = {ref['n_graphs']}×{ref['n_seeds']})")
            if col == "b_free":
                ax.annotate(f"offset {ref['free_offset']:g}", (xr, yr), textcoords="offset points",
                            xytext=(-8, 0), ha="right", va="center", fontsize=7, color="0.35")
        ax.axhline(1.0, color="k", ls="--", lw=1, label="b = 1 (eq. 8)")
        ax.set_xscale("log", base=2)
        ticks = []
        for w in widths:
            at = summary[summary["width"] == w].set_index("series")
            ticks.append(f"{int(w)}\nn = " + " | ".join(f"{at.loc[s, 'n_graphs']}×{at.loc[s, 'n_seeds']}"
                                                        for s in series if s in at.index))
        ax.set_xticks(widths, ticks)
        ax.minorticks_off()
        ax.set_xlim(widths[0] / 2 ** (1.2 if reference is not None else 0.7), widths[-1] * 2 ** 0.7)
        ax.set_xlabel("width n   (n = graphs × seeds per graph, series in legend order)", fontsize="small")
        ax.set_title(what, fontsize="medium")
    axes[0].set_ylim(y_lo, y_hi)
    axes[0].set_ylabel("exponent b in Δz² ∝ (Σ_p L_p³)^b\n(bars: 95% bootstrap interval over graphs)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8,
               frameon=False)
    fig.suptitle(title or "Exponent of the one-step Δz² in the path sum Σ_p L_p³, against width")
    return fig


def plot_spread(table: pd.DataFrame, *, kind: str = "last", min_params: int = 0, title: str | None = None):
    """Per-graph ``delta_z2`` under one shared LR and under the eq. 8 scaled LR (log scale).

    The max/min ratio of each rule (from :func:`~archscale.stats.delta_z_spread`) is in the labels.
    """
    spread = delta_z_spread(table, kind=kind, min_params=min_params)
    sel = table[table["kind"] == kind]
    if min_params:
        sel = sel[[min_path_params(g) >= min_params for g in sel["graph"]]]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    rng = np.random.default_rng(0)
    labels = []
    for i, row in spread.iterrows():
        per_graph = sel[sel["lr_rule"] == row.lr_rule].groupby("graph")["delta_z2"].mean()
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(per_graph)), per_graph.to_numpy(), s=12, alpha=0.7)
        labels.append(f"{row.lr_rule} LR\nmax/min = {row.max_min_ratio:.3g}"
                      f"\n90/10% = {row.q90_q10_ratio:.3g}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("one-step (Δz)² of the last vertex" if kind == "last" else "one-step (Δ logits)²")
    ax.set_title(title or f"Spread of Δz² across {int(spread['n_graphs'].iloc[0])} topologies")
    return fig


#: What each sweep metric is, for axis labels.
METRIC_LABELS = {
    "train_loss": "training loss (epoch mean of minibatch losses)",
    "train_loss_final": "training loss after the last step (full set)",
    "test_loss": "test loss",
}
#: The unit of each loss.
LOSS_UNITS = {"ce": "cross-entropy, nats", "mse": "mean squared error"}


def plot_width_transfer(results: pd.DataFrame | Mapping[str, pd.DataFrame], metric: str = "train_loss",
                        title: str | None = None, *, loss: str | None = None):
    """Loss against LR, one line per width (seed mean, band = seed range); stars mark each optimum.

    One panel per setup ({label: sweep results}); the optimum drift (from
    :func:`~archscale.stats.lr_optimum_drift`) is in each panel's title. ``loss`` ("ce" or
    "mse", as trained) puts the loss's unit in the y-label.
    """
    setups = _as_setups(results)
    fig, axes = plt.subplots(1, len(setups), figsize=(5.2 * len(setups), 4.4), squeeze=False, sharey=True)
    clean, failed = {}, {}
    for label, df in setups.items():
        bad = ~np.isfinite(df[metric].astype(float))
        if "diverged" in df.columns:
            bad |= df["diverged"].astype(bool)
        clean[label] = df.assign(**{metric: df[metric].where(~bad)})
        failed[label] = df[bad]
    finite = pd.concat([c[metric].dropna() for c in clean.values()])
    y_top = None
    if len(finite):  # keep exploding runs from flattening the curves; capped points are marked
        low, y_top = float(finite.min()), min(float(finite.max()), 3 * float(finite.median()))
        axes[0][0].set_ylim(0.9 * low, 1.08 * y_top)
    marks = []
    for ax, (label, df) in zip(axes[0], setups.items()):
        table, summary = lr_optimum_drift(df, metric=metric)
        widths = sorted(df["width"].unique())
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
        for color, w in zip(colors, widths):
            grp = clean[label][clean[label]["width"] == w].groupby("lr")[metric]
            mean, lo, hi = grp.mean(), grp.min(), grp.max()
            if _clipped_curve(ax, mean.index, mean.to_numpy(), y_top, marker="o", ms=3, color=color,
                              label=f"n={w}"):
                marks.append(f"▲ mean above {y_top:.3g}, drawn at the top")
            ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=color, alpha=0.15)
            lost = failed[label][failed[label]["width"] == w]["lr"].unique()
            if len(lost) and y_top is not None:
                ax.plot(lost, np.full(len(lost), 1.05 * y_top), ls="none", marker="x", ms=7, color=color)
                marks.append("× a seed diverged (left out of the line)")
            best = table[table["width"] == w].iloc[0]
            ax.plot(best.best_lr, best.best_loss, marker="*", ms=13, color=color, mec="k")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate η")
        ax.set_title(f"{label}\noptimum drift: ×{summary['ratio']:.2g} from n={widths[0]} to n={widths[-1]}"
                     f" (slope {summary['slope']:+.2f})" + (", an optimum at the grid edge"
                                                            if summary["any_at_edge"] else ""))
        ax.legend(fontsize=8, title="width", loc="upper left")
    if marks:
        fig.text(0.5, -0.01, "; ".join(dict.fromkeys(marks)) + "; ★ the optimum of the seed-mean loss",
                 ha="center", va="top", fontsize=9)
    unit = f"\n[{LOSS_UNITS[loss]}]" if loss in LOSS_UNITS else ""
    axes[0][0].set_ylabel(f"{METRIC_LABELS.get(metric, metric)}{unit}\nline: seed mean; band: seed range",
                          fontsize="small")
    fig.suptitle(title or "Width transfer: loss against LR for each width (star = optimum)")
    return fig
