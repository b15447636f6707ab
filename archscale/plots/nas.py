"""Figures of the NAS re-ranking study (paper Fig. 4, 8, 9) from :mod:`archscale.nas` results.

Each function returns a new figure whose titles carry the measured numbers; saving is left to
:func:`archscale.plots.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..nas import RecipeComparison

__all__ = ["mup_vs_archscale_figure", "rank_stability_figure", "scaled_vs_fixed_figure"]

_LABELS = {"fixed": "fixed recipe (benchmark)", "archscale": "archscale (scaled LR + in-degree init)",
           "mup": "muP (MuReadout + MuSGD)",
           "archscale_searched": "archscale (searched base LR)"}
_COLORS = {"fixed": "tab:red", "archscale": "tab:blue", "mup": "tab:green",
           "archscale_searched": "tab:purple"}


def _label(recipe: str) -> str:
    return _LABELS.get(recipe, recipe)


def _identity_scatter(ax, cmp: RecipeComparison) -> None:
    x, y = cmp.accuracy[cmp.old].to_numpy(), cmp.accuracy[cmp.new].to_numpy()
    ax.scatter(x, y, s=28, alpha=0.75, color=_COLORS.get(cmp.new, "tab:blue"), edgecolor="white",
               linewidth=0.5, label=f"{len(x)} cells (mean over seeds)")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.04 * (hi - lo + 1e-9)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="red", lw=1.2, label="identity y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"test accuracy (%), {_label(cmp.old)}")
    ax.set_ylabel(f"test accuracy (%), {_label(cmp.new)}")
    g = cmp.gain
    above = int((cmp.accuracy[cmp.new] > cmp.accuracy[cmp.old]).sum())
    ax.set_title(f"{cmp.new} vs {cmp.old}: mean gain {g.mean:+.2f} pp\n"
                 f"{round(100 * g.confidence)}% CI [{g.lo:+.2f}, {g.hi:+.2f}]; "
                 f"{above}/{len(x)} cells above y = x", fontsize=10)
    ax.legend(loc="best", fontsize=8)


def _k_axis(ax, ks, ns=None) -> None:
    ax.set_xticks(range(len(ks)))
    if ns is None:
        ax.set_xticklabels([f"{k:g}" for k in ks])
        ax.set_xlabel("top-K% architectures (K)")
    else:
        ax.set_xticklabels([f"{k:g}\n(n={n})" for k, n in zip(ks, ns)])
        ax.set_xlabel("top-K% architectures (K, with the number n of cells)")


def scaled_vs_fixed_figure(cmp: RecipeComparison):
    """Fig. 4: accuracy scatter with identity, top-K% Kendall tau, mean pairwise gap among top K%."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    _identity_scatter(axes[0], cmp)

    ax = axes[1]
    ks = cmp.topk["k"].to_numpy()
    taus = cmp.topk["tau"].to_numpy()
    ax.plot(range(len(ks)), taus, "o-", color=_COLORS.get(cmp.new, "tab:blue"),
            label=f"{cmp.new} vs {cmp.old} rankings")
    for i, t in enumerate(taus):
        if np.isfinite(t):
            ax.annotate(f"{t:+.2f}", (i, t), textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylim(-1.1, 1.3)
    _k_axis(ax, ks, cmp.topk["n"].tolist())
    ax.set_ylabel("Kendall tau (tau-b)")
    n_last = int(cmp.topk["n"].iloc[-1])
    ax.set_title(f"Ranking agreement among the top K% (by {cmp.old})\n"
                 f"all cells tau = {taus[0]:+.2f}; top {ks[-1]:g}% (n={n_last}) tau = {taus[-1]:+.2f}",
                 fontsize=10)
    ax.legend(loc="lower left", fontsize=8)

    ax = axes[2]
    gk = cmp.gaps["k"].to_numpy()
    for recipe in (cmp.old, cmp.new):
        ax.plot(range(len(gk)), cmp.gaps[recipe], "o-", color=_COLORS.get(recipe), label=_label(recipe))
    _k_axis(ax, gk)
    ax.set_ylabel("mean pairwise |accuracy gap| (pp)")
    first = cmp.gaps.iloc[0]
    ax.set_title(f"Pairwise accuracy gaps among each recipe's top K%\n"
                 f"all cells: {cmp.old} {first[cmp.old]:.2f} pp, {cmp.new} {first[cmp.new]:.2f} pp",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle("Re-training benchmark cells with architecture-aware LR and init (cf. paper Fig. 4)")
    return fig


def mup_vs_archscale_figure(*comparisons: RecipeComparison):
    """Fig. 8: per-cell accuracy of archscale (y) against muP (x), one panel per comparison."""
    if not comparisons:
        raise ValueError("pass at least one comparison, e.g. compare_recipes(results, 'archscale', 'mup')")
    fig, axes = plt.subplots(1, len(comparisons), figsize=(6 * len(comparisons), 5.6), squeeze=False)
    for ax, cmp in zip(axes[0], comparisons):
        _identity_scatter(ax, cmp)
    fig.suptitle("archscale versus muP on the same cells (cf. paper Fig. 8)")
    return fig


def rank_stability_figure(stability: pd.DataFrame):
    """Fig. 9: top-K% Kendall tau across recipes (thick) against across seeds (thin, dashed).

    ``stability`` is :func:`archscale.nas.rank_stability`'s table.
    """
    fig, ax = plt.subplots(figsize=(11, 5.2))
    ks = list(dict.fromkeys(stability["k"]))
    first = stability[stability["comparison"] == stability["comparison"].iloc[0]]
    pos = {k: i for i, k in enumerate(ks)}
    for name, df in stability.groupby("comparison", sort=False):
        x = [pos[k] for k in df["k"]]
        color = _COLORS.get(df["recipe"].iloc[0])
        if df["kind"].iloc[0] == "across recipes":
            ax.plot(x, df["tau"], "o-", lw=2.8, color=color, label=f"across recipes: {name}", zorder=3)
        else:
            ax.plot(x, df["tau"], "s--", lw=1.1, alpha=0.75, color=color, label=f"across seeds: {name}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylim(-1.1, 1.1)
    _k_axis(ax, ks, first["n"].tolist())
    ax.set_ylabel("Kendall tau (tau-b)")
    across = stability[stability["kind"] == "across recipes"].groupby("k", sort=False)["tau"].mean()
    seeds = stability[stability["kind"] == "across seeds"].groupby("k", sort=False)["tau"].mean()
    k0 = ks[0]
    ax.set_title("Rank stability: across recipes versus across seeds (cf. paper Fig. 9)\n"
                 f"all cells: across recipes tau = {across.get(k0, np.nan):+.2f}, "
                 f"mean across seeds tau = {seeds.get(k0, np.nan):+.2f}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
