"""Figures for the laws' head-to-head (notebook 11): agreement per sweep, and depth transfer on residual nets.

Inputs are :class:`~archscale.analysis.law_scores.LawsReport` and
:class:`~archscale.analysis.depth_transfer.DepthTransfer` objects; nothing is computed here
beyond reading their numbers and intervals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker as mticker

from ..core.errors import ArchscaleError

if TYPE_CHECKING:
    from ..analysis.depth_transfer import DepthTransfer
    from ..analysis.law_scores import LawsReport

__all__ = ["depth_transfer_figure", "laws_agreement_figure"]

#: How each series of the agreement figure reads the report: (label, attribute, marker, filled).
_SERIES = (("zero-shot, every non-base configuration", "zero_shot", "o", False),
           ("held out, power fitted on the other graphs", "calibrated", "o", True))
_XLABELS = {"error_factor": "error factor exp(log-RMSE) of the max LR, 95% interval (1 = exact, ×)",
            "bias": "bias exp(mean log measured/predicted), 95% interval (1 = unbiased, ×)"}
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _interval(agreement, metric: str) -> tuple[float, float, float]:
    return agreement.estimate[metric], agreement.lo[metric], agreement.hi[metric]


def _errbar(ax, x: float, lo: float, hi: float, y: float, **kwargs) -> None:
    if not np.isfinite(x):
        return
    xerr = None
    if np.isfinite(lo) and np.isfinite(hi):
        xerr = [[max(x - lo, 0.0)], [max(hi - x, 0.0)]]
    ax.errorbar([x], [y], xerr=xerr, capsize=3, linestyle="none", **kwargs)


def laws_agreement_figure(reports: Mapping[str, LawsReport], *, metric: str = "error_factor", ncols: int = 2,
                          title: str | None = None, noise_floor: bool = False):
    """One panel per sweep: every law's error factor (or ``metric``) zero-shot and held out, with intervals.

    ``reports`` maps a sweep's label to its :func:`~archscale.analysis.law_scores.compare_laws` report.
    Laws keep the registry order in every panel; the panel title names the leader, whether the
    runner-up is distinguishable from it, and the n behind each series. ``noise_floor`` (error
    factor only) shades each panel below the zero-shot noise floor: the error factor that seed noise
    alone gives a perfect law, so no law can be told to beat it.
    """
    if not reports:
        raise ArchscaleError("no laws reports to draw; pass {sweep label: compare_laws(...)}")
    n = len(reports)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 3.6 * nrows + 0.8), sharex=True,
                             squeeze=False)
    for ax, (label, rep) in zip(axes.flat, reports.items()):
        by_name = {r.name: r for r in rep.laws}
        names = sorted(by_name, key=lambda k: [r.name for r in rep.laws].index(k))
        order = list(dict.fromkeys([*_registry_order(), *names]))
        order = [k for k in order if k in by_name]
        for i, name in enumerate(order):
            r = by_name[name]
            for j, (series, attr, marker, filled) in enumerate(_SERIES):
                if getattr(r, attr) is None:  # a zero-shot-only report has no held-out series
                    continue
                x, lo, hi = _interval(getattr(r, attr).agreement, metric)
                color = _COLORS[j]
                _errbar(ax, x, lo, hi, i + (j - 0.5) * 0.28, marker=marker, color=color, markersize=6,
                        markerfacecolor=color if filled else "white", label=series if i == 0 else None)
        ax.set_yticks(range(len(order)), [f"{k} (#{[r.name for r in rep.laws].index(k) + 1})" for k in order])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
        floor = rep.laws[0].zero_shot.agreement.noise_floor
        if noise_floor and metric == "error_factor" and np.isfinite(floor) and floor > 1:
            ax.axvspan(1.0, floor, color="0.85", zorder=0,
                       label="below the seed-noise floor (a perfect law's error factor here)")
            ax.text(floor, 0.02, f" floor ×{floor:.2f}", transform=ax.get_xaxis_transform(), fontsize=7,
                    color="0.35")
        d, lo, hi = rep.top_difference
        told = "distinguishable" if lo > 0 else "not distinguishable"
        first = rep.laws[0]
        held = "zero-shot only" if rep.zero_shot_only else f"{first.ranked.agreement.n} held out"
        ax.set_title(f"{label}\nbest {'zero-shot' if rep.zero_shot_only else 'held out'}: {first.name}; "
                     f"#2 {told}\n(Δ log-RMSE {d:.2f} [{lo:.2f}, {hi:.2f}]); "
                     f"n = {first.zero_shot.agreement.n} zero-shot, {held}, "
                     f"{first.zero_shot.agreement.n_seeds} seeds", fontsize=9)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes.flat[:n]:
        ax.xaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.tick_params(axis="x", labelbottom=True)
        ax.set_xlabel(_XLABELS.get(metric, metric), fontsize=9)
    legend = {}
    for ax in axes.flat[:n]:
        legend.update({lab: h for h, lab in zip(*ax.get_legend_handles_labels())})
    labels = [s[0] for s in _SERIES if s[0] in legend]
    labels += [k for k in legend if k.startswith("below the seed")][:1]
    handles = [legend[lab] for lab in labels]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle(title or "Which law predicts the maximal learning rate? Error factor per sweep (log LRs, "
                          "base excluded)", fontsize=11)
    return fig


def _registry_order() -> list[str]:
    from ..core.laws import LAWS

    return list(LAWS)


def depth_transfer_figure(transfers: Sequence[DepthTransfer], *, title: str | None = None):
    """Left: measured optimum against depth with each law's prediction; right: measured / predicted.

    ``transfers`` are :func:`~archscale.analysis.depth_transfer.depth_transfer` results that share
    their depths (e.g. :meth:`archscale.experiments.residual_depth.ResidualDepth.transfers`); bars are 95%
    bootstrap intervals over seeds.
    """
    if not transfers:
        raise ArchscaleError("no depth transfers to draw")
    fig, (ax_lr, ax_ratio) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    drawn: dict[tuple, str] = {}
    for i, tr in enumerate(transfers):
        t = tr.table
        color = _COLORS[i % len(_COLORS)]
        depth = t["depth"].to_numpy(float)
        key = tuple(np.round(t["measured"].to_numpy(float), 12))
        if key not in drawn:  # one measured series per parametrization (a and b share theirs)
            drawn[key] = tr.label
            yerr = np.clip([t["measured"] - t["measured_lo"], t["measured_hi"] - t["measured"]], 0, None)
            which = re.sub(r"^\(\w\)\s*", "", tr.label).split(" + ")[0].split(",")[0]
            ax_lr.errorbar(depth * (1 + 0.04 * len(drawn)), t["measured"], yerr=yerr,
                           marker="os^"[len(drawn) % 3], color="black" if len(drawn) == 1 else color,
                           linestyle="none", capsize=3, label=f"measured, {which}")
        ax_lr.plot(depth, t["predicted"], color=color, ls="--", marker=".", label=f"predicted: {tr.label}")
        err = np.clip([t["ratio"] - t["ratio_lo"], t["ratio_hi"] - t["ratio"]], 0, None)
        ax_ratio.errorbar(depth * (1 + 0.05 * (i - 1)), t["ratio"], yerr=err, color=color, marker="o",
                          capsize=3, label=tr.label)
    for ax in (ax_lr, ax_ratio):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("residual blocks K")
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xticks(sorted(set(transfers[0].table["depth"])))
    ax_ratio.axhline(1.0, color="0.4", lw=1, ls=":")
    ax_lr.set_ylabel("maximal LR (lowest seed-mean train loss)")
    ax_ratio.set_ylabel("measured / predicted maximal LR")
    ax_lr.set_title("optimum vs depth, predictions from the 1-block net", fontsize=10)
    ax_ratio.set_title("drift from each prediction (1 = transfers exactly)", fontsize=10)
    ax_ratio.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax_lr.legend(fontsize=8)
    ax_ratio.legend(fontsize=8)
    fig.suptitle(title or "Residual nets: rescale the learning rate with depth, or the branches?",
                 fontsize=11)
    return fig
