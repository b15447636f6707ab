"""Figures of notebook 12: the depth exponent per optimizer, the width exponent with and without
muP's Adam rule (the laws under Adam reuse :func:`~archscale.plots.law_scores.laws_agreement_figure`).

Inputs are :class:`~archscale.analysis.depth_exponent.DepthExponent` objects; nothing is computed
here beyond reading their numbers and intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from ..core.errors import ArchscaleError

if TYPE_CHECKING:
    from ..analysis.depth_exponent import DepthExponent

__all__ = ["depth_exponent_figure", "width_exponent_figure"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
#: Reference exponents drawn on the right panel: eq. 8 (SGD) and Depth-muP's Adam rule.
REFERENCES = {-1.5: "eq. 8: -3/2", -0.5: "Depth-muP Adam: -1/2"}


def depth_exponent_figure(exponents: Mapping[str, DepthExponent], *, title: str | None = None):
    """Left: each optimizer's maximal LR against depth L (log-log, relative to its shallowest chain,
    seed intervals); right: the fitted exponent per optimizer with its 95% interval."""
    if not exponents:
        raise ArchscaleError("no depth exponents to draw; pass {optimizer: depth_exponent(...)}")
    fig, (ax, ax_b) = plt.subplots(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [1.4, 1]})
    for i, (label, fit) in enumerate(exponents.items()):
        t = fit.table
        color = _COLORS[i % len(_COLORS)]
        ref = float(t["measured"].iloc[0])
        y = t["measured"].to_numpy(float) / ref
        err = np.clip([y - t["measured_lo"] / ref, t["measured_hi"] / ref - y], 0, None)
        err = np.where(np.isfinite(err), err, 0.0)
        d = t["depth"].to_numpy(float)
        ax.errorbar(d * (1 + 0.012 * (i - 1)), y, yerr=err, marker="o", color=color, linestyle="none",
                    capsize=3, label=f"{label}: b = {fit.exponent:.2f}")
        line = np.exp(np.log(y).mean() + fit.exponent * (np.log(d) - np.log(d).mean()))
        ax.plot(d, line, color=color, lw=1)
        xerr = [[max(fit.exponent - fit.lo, 0)], [max(fit.hi - fit.exponent, 0)]]
        ax_b.errorbar([fit.exponent], [i], xerr=xerr, marker="o", color=color, capsize=4, linestyle="none")
    d0 = float(min(f.table["depth"].min() for f in exponents.values()))
    d1 = float(max(f.table["depth"].max() for f in exponents.values()))
    grid = np.geomspace(d0, d1, 20)
    for b, name in REFERENCES.items():
        ax.plot(grid, (grid / d0) ** b, color="0.6", ls=":" if b < -1 else "--", lw=1, label=name)
        ax_b.axvline(b, color="0.6", ls=":" if b < -1 else "--", lw=1, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({int(v) for f in exponents.values() for v in f.table["depth"]}))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("depth L of the chain (stem + blocks + readout)")
    ax.set_ylabel("maximal LR / the L = 3 chain's (95% seed interval)")
    ax.legend(fontsize=8)
    ax_b.set_yticks(range(len(exponents)), [f"{k}\n({f.n_depths} depths, {f.n_seeds} seeds)"
                                            for k, f in exponents.items()], fontsize=8)
    ax_b.invert_yaxis()
    ax_b.set_xlabel("depth exponent b of max LR ∝ L^b (95% seed bootstrap)")
    ax_b.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "How the maximal LR of a chain falls with depth, per optimizer", fontsize=11)
    return fig


def width_exponent_figure(widths: Mapping[str, DepthExponent], predictions: Mapping[str, float] | None = None,
                          *, title: str | None = None):
    """Left: each arm's maximal LR against the width (log-log, base 2, seed intervals) with its fitted
    power (solid) and muP's prediction through its first width (dashed); right: the fitted exponents
    (slope of log2 max LR per doubling of width) with their 95% intervals and muP's predictions."""
    if not widths:
        raise ArchscaleError("no width exponents to draw; pass {arm: width_exponent(...)}")
    predictions = predictions or {}
    fig, (ax, ax_b) = plt.subplots(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [1.4, 1]})
    for i, (label, fit) in enumerate(widths.items()):
        t = fit.table
        color = _COLORS[i % len(_COLORS)]
        y = t["measured"].to_numpy(float)
        err = np.clip([y - t["measured_lo"].to_numpy(float), t["measured_hi"].to_numpy(float) - y], 0, None)
        err = np.where(np.isfinite(err), err, 0.0)
        w = t["width"].to_numpy(float)
        ax.errorbar(w * (1 + 0.02 * (i - 0.5)), y, yerr=err, marker="o", color=color, linestyle="none",
                    capsize=3, label=f"{label}: b = {fit.exponent:.2f} [{fit.lo:.2f}, {fit.hi:.2f}]")
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2 and np.isfinite(fit.exponent):
            line = np.exp(np.log(y[ok]).mean() + fit.exponent * (np.log(w[ok]) - np.log(w[ok]).mean()))
            ax.plot(w[ok], line, color=color, lw=1)
        if label in predictions and ok.any():
            b = predictions[label]
            w0, y0 = w[ok][0], y[ok][0]
            ax.plot(w, y0 * (w / w0) ** b, color=color, ls="--", lw=1, alpha=0.7,
                    label=f"muP's prediction ({label}): b = {b:g}")
            ax_b.plot([b], [i], marker="x", color=color, markersize=9, linestyle="none",
                      label=f"muP's prediction ({label}): {b:g}")
        xerr = [[max(fit.exponent - fit.lo, 0)], [max(fit.hi - fit.exponent, 0)]]
        ax_b.errorbar([fit.exponent], [i], xerr=xerr, marker="o", color=color, capsize=4, linestyle="none")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted({int(v) for f in widths.values() for v in f.table["width"]})
    ax.set_xticks(ticks, [str(v) for v in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("width n (hidden units)")
    ax.set_ylabel("maximal AdamW LR (95% seed interval)")
    ax.legend(fontsize=8)
    ax_b.axvline(0.0, color="0.7", lw=0.8)
    ax_b.set_yticks(range(len(widths)), [f"{k}\n({f.n_sizes} widths, {f.n_seeds} seeds)"
                                         for k, f in widths.items()], fontsize=8)
    ax_b.set_ylim(len(widths) - 0.5, -0.5)
    ax_b.set_xlabel("width exponent b: log2 max LR per doubling of width (95% seed bootstrap)")
    ax_b.legend(fontsize=8, loc="lower left")
    fig.suptitle(title or "How AdamW's maximal LR moves with the width, with and without muP's Adam rule",
                 fontsize=11)
    return fig
