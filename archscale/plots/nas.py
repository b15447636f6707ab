"""Figures of the NAS re-ranking study (paper Fig. 4, 8, 9) from :mod:`archscale.nas` results.

Each function returns a new figure whose titles carry the measured numbers with their
intervals and n; saving is left to :func:`archscale.plots.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..nas import RecipeComparison

__all__ = ["NAMES", "mup_vs_archscale_figure", "name", "rank_stability_figure", "scaled_vs_fixed_figure"]

_COLORS = {"fixed": "tab:red", "archscale": "tab:blue", "mup": "tab:green"}
#: The study's recipes by what they do (the glossary's words).
NAMES = {"fixed": "one fixed LR", "archscale": "architecture-aware", "mup": "muP"}
#: More cells than this: the per-cell panel leaves out their names (they could not be read).
MAX_CELL_LABELS = 40


def name(recipe: str) -> str:
    """A recipe of the study by what it does; variants (``archscale_lr0.1``) keep their suffix."""
    for kind, text in NAMES.items():
        if recipe == kind:
            return text
        if recipe.startswith(kind + "_"):
            return f"{text} ({recipe[len(kind) + 1:]})"
    return recipe


def _color(recipe: str) -> str:
    for kind, color in _COLORS.items():
        if recipe.startswith(kind):
            return color
    return "tab:purple"


def _k_axis(ax, labels, ns) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([f"{k}\n(n={n})" for k, n in zip(labels, ns)])
    ax.set_xlabel("top-K% cells by the first ranking (K, and the n cells in the set)")


def _per_cell(ax, cmp: RecipeComparison) -> None:
    """Per-cell paired differences with their seed intervals, and the mean gain with its interval."""
    t = cmp.per_cell
    x = np.arange(len(t))
    lo = (t["diff"] - t["lo"]).fillna(0).clip(lower=0)
    hi = (t["hi"] - t["diff"]).fillna(0).clip(lower=0)
    ax.errorbar(x, t["diff"], yerr=[lo, hi], fmt="o", color=_color(cmp.new), ms=4, capsize=2, lw=1,
                label=f"one cell: mean over {int(t['n_seeds'].max())} seeds, t-interval")
    g = cmp.gain
    ax.axhspan(g.lo, g.hi, color=_color(cmp.new), alpha=0.15,
               label=f"mean over cells {g.mean:+.2f} pp, {round(100 * g.confidence)}% bootstrap CI")
    ax.axhline(g.mean, color=_color(cmp.new), lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x)
    if len(t) <= MAX_CELL_LABELS:  # past that many no name can be read: the axis says what the order is
        ax.set_xticklabels(t["graph"], rotation=35, ha="right", rotation_mode="anchor", fontsize=8,
                           family="monospace")
    else:
        ax.set_xticklabels([])
    new, old = name(cmp.new), name(cmp.old)
    ax.set_xlabel(f"cell (NAS-Bench-201 code), sorted by the accuracy with {old}, left = lowest")
    ax.set_ylabel(f"test accuracy: {new} − {old} (pp)")
    better, worse = int((t["lo"] > 0).sum()), int((t["hi"] < 0).sum())
    ax.set_title(f"{new} − {old}, per cell: {better} better, {worse} worse, "
                 f"{len(t) - better - worse} within seed noise\nmean gain {g.mean:+.2f} pp "
                 f"[{g.lo:+.2f}, {g.hi:+.2f}], n = {g.n} cells", fontsize=9)
    ax.legend(fontsize=7, loc="best")


def _scatter(ax, cmp: RecipeComparison) -> None:
    x, y = cmp.accuracy[cmp.old].to_numpy(), cmp.accuracy[cmp.new].to_numpy()
    ax.scatter(x, y, s=26, alpha=0.8, color=_color(cmp.new), edgecolor="white", linewidth=0.5,
               label=f"{len(x)} cells (mean over seeds)")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.05 * (hi - lo + 1e-9)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, ls="--", label="identity y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"test accuracy (%), {name(cmp.old)}")
    ax.set_ylabel(f"test accuracy (%), {name(cmp.new)}")
    ax.set_title(f"accuracy per cell ({name(cmp.old)}: {x.mean():.1f}% on average, range "
                 f"{x.min():.1f}–{x.max():.1f}%)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _taus(ax, cmp: RecipeComparison) -> None:
    """Recipe-vs-recipe tau per top-K set beside the old recipe's own seed-vs-seed band."""
    t = cmp.topk.reset_index(drop=True)
    x = np.arange(len(t))
    noise = cmp.noise.set_index("ks").reindex(t["ks"])
    if noise["tau_mean"].notna().any():
        ax.fill_between(x, noise["tau_min"], noise["tau_max"], color="grey", alpha=0.25, step="mid",
                        label=f"{name(cmp.old)}: seed vs seed (range over pairs)")
        ax.plot(x, noise["tau_mean"], "s--", color="grey", ms=4, lw=1,
                label=f"{name(cmp.old)}: seed vs seed (mean)")
    ok = np.isfinite(t["tau"])
    ax.plot(x[ok], t["tau"][ok], "o-", color=_color(cmp.new), lw=2.2,
            label=f"{name(cmp.new)} vs {name(cmp.old)}")
    for i in np.flatnonzero(~ok):
        ax.plot([i], [-1.0], "x", color=_color(cmp.new), ms=8)
        ax.annotate("tau undefined\n(" + t["note"].iloc[i].replace("undefined: ", "") + ")", (i, -1.0),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=6)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_ylim(-1.15, 1.1)
    _k_axis(ax, t["ks"], t["n"])
    ax.set_ylabel("Kendall tau-b")
    ax.set_title("ranking agreement among the top K%: the recipe change against seed noise", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")


def scaled_vs_fixed_figure(cmp: RecipeComparison, title: str | None = None):
    """Fig. 4: per-cell paired differences, the accuracy scatter, and top-K% tau against seed noise."""
    fig = plt.figure(figsize=(13, 10.5))  # the per-cell panel across the top: room for the cell codes
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.05])
    axes = [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]
    _per_cell(axes[0], cmp)
    _scatter(axes[1], cmp)
    _taus(axes[2], cmp)
    fig.suptitle(title or f"Re-training cells with the {name(cmp.new)} recipe against {name(cmp.old)} "
                          f"(cf. paper Fig. 4)")
    return fig


def mup_vs_archscale_figure(*comparisons: RecipeComparison, title: str | None = None):
    """Fig. 8: per-cell paired differences of archscale against muP, one panel per comparison."""
    if not comparisons:
        raise ArchscaleError("pass at least one comparison, e.g. "
                             "compare_recipes(results, 'archscale', 'mup')")
    fig, axes = plt.subplots(1, len(comparisons), figsize=(7.5 * len(comparisons), 5.4), squeeze=False)
    for ax, cmp in zip(axes[0], comparisons):
        _per_cell(ax, cmp)
    fig.suptitle(title or "The architecture-aware recipe against muP on the same cells (cf. paper Fig. 8)")
    return fig


def rank_stability_figure(stability: pd.DataFrame):
    """Fig. 9: top-K% Kendall tau across recipes (thick) against across seeds (thin, dashed).

    ``stability`` is :func:`archscale.nas.rank_stability`'s table. An undefined tau (a set in
    which one ranking ties every cell) is drawn as a cross at the bottom, not left out.
    """
    fig, ax = plt.subplots(figsize=(11, 5.4))
    sets = list(dict.fromkeys(zip(stability["ks"], stability["n"])))
    pos = {ks: i for i, (ks, _) in enumerate(sets)}
    undefined = 0
    for name, df in stability.groupby("comparison", sort=False):
        x = np.array([pos[k] for k in df["ks"]])
        tau = df["tau"].to_numpy(float)
        ok = np.isfinite(tau)
        color = _color(df["recipe"].iloc[0])
        across = df["kind"].iloc[0] == "across recipes"
        ax.plot(x[ok], tau[ok], "o-" if across else "s--", lw=2.8 if across else 1.1,
                alpha=1.0 if across else 0.7, color=color, zorder=3 if across else 2,
                label=f"{'across recipes' if across else 'across seeds'}: {name}")
        ax.plot(x[~ok], np.full((~ok).sum(), -1.05), "x", color=color, ms=7)
        undefined += int((~ok).sum())
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylim(-1.15, 1.1)
    _k_axis(ax, [s for s, _ in sets], [n for _, n in sets])
    ax.set_ylabel("Kendall tau-b")
    note = (f"\n{undefined} undefined tau(s) drawn as × at the bottom (one ranking ties every cell of "
            f"the set)" if undefined else "")
    ax.set_title("Rank stability: across recipes versus across seeds (cf. paper Fig. 9)" + note, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
