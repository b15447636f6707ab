"""The figure of an LR transfer check (``archscale check``): optima against size, laws, the target."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["check_figure", "check_transfer_figure"]


def check_figure(
    size_name: str,
    sizes: list[float],
    table: pd.DataFrame,
    laws: pd.DataFrame,
    trend: dict,
    target: float,
    answer: tuple[float, float, float],
    source: str,
):
    """Measured maximal LR (with its interval) at each size, each law's transfer from the smallest
    size (solid) and from the largest to ``target`` (dotted), the fitted trend (dashed), and the
    recommended LR at ``target`` with its band; the shaded span is extrapolation."""
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    x = np.asarray(sizes, dtype=float)
    m = table["max_lr"].to_numpy(float)
    lo, hi = table["lo"].to_numpy(float), table["hi"].to_numpy(float)
    err = np.array([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
    ax.errorbar(
        x, m, yerr=err, fmt="o", color="black", capsize=3, zorder=5, label="measured optimum (95% interval)"
    )
    span = np.geomspace(min(x.min(), target), max(x.max(), target), 60)
    ok = np.isfinite(m) & (m > 0)
    if math.isfinite(trend.get("b", math.nan)) and ok.sum() >= 2:
        fitted = np.polyfit(np.log(x[ok]), np.log(m[ok]), 1)
        ax.plot(
            span,
            np.exp(np.polyval(fitted, np.log(span))),
            "--",
            color="grey",
            lw=1.2,
            label=f"trend: {size_name}^{trend['b']:.2f}",
        )
    for i, row in enumerate(laws.itertuples()):
        at = np.asarray(row.at_sizes, dtype=float)
        ax.plot(
            x, at, "-", lw=1, color=f"C{i}", alpha=0.85, label=f"{row.law} (error ×{row.error_factor:.2f})"
        )
        if math.isfinite(row.prediction):
            ax.plot([x[-1], target], [m[-1], row.prediction], ":", lw=1, color=f"C{i}", alpha=0.85)
    rec, rlo, rhi = answer
    band = [[rec - rlo if math.isfinite(rlo) else 0.0], [rhi - rec if math.isfinite(rhi) else 0.0]]
    ax.errorbar(
        [target],
        [rec],
        yerr=band,
        fmt="*",
        ms=14,
        color="crimson",
        capsize=4,
        zorder=6,
        label=f"answer at {size_name} = {target:g} ({source})",
    )
    ax.axvspan(x.max(), max(target, x.max()), color="crimson", alpha=0.05, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(size_name)
    ax.set_ylabel("maximal learning rate")
    ax.set_title(f"LR at {size_name} = {target:g}: {rec:.3g} [{rlo:.3g}, {rhi:.3g}] from {source}")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def check_transfer_figure(table: pd.DataFrame, title: str):
    """One panel per family (rows) and optimizer (columns): the measured optima with their intervals
    against depth, the check's answer at the target with its band (star), and the target's optimum
    trained directly with its interval (diamond). ``table``: ``CheckTransfer.table()``."""
    families = list(dict.fromkeys(table["family"]))
    optimizers = list(dict.fromkeys(table["optimizer"]))
    fig, axes = plt.subplots(len(families), len(optimizers), squeeze=False, layout="constrained",
                             figsize=(5.2 * len(optimizers), 3.9 * len(families)))

    def bar(ax, x, y, lo, hi, **kw):
        y, lo, hi = np.asarray(y, float), np.asarray(lo, float), np.asarray(hi, float)
        err = np.array([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
        ax.errorbar(x, y, yerr=err, capsize=3, **kw)

    for (_, r), ax in zip(table.iterrows(), [axes[families.index(f)][optimizers.index(o)]
                                             for f, o in zip(table["family"], table["optimizer"])]):
        x = np.asarray(r["sizes"], float)
        bar(ax, x, r["measured"], r["measured_lo"], r["measured_hi"], fmt="o", color="black",
            label="measured optimum (95%)")
        bar(ax, [r["target"] * 0.93], [r["answer"]], [r["answer_lo"]], [r["answer_hi"]], fmt="*", ms=13,
            color="crimson", label=f"check's answer ({r['source']})")
        bar(ax, [r["target"] * 1.07], [r["truth"]], [r["truth_lo"]], [r["truth_hi"]], fmt="D", ms=7,
            color="C0", label="target trained directly")
        ax.axvspan(x.max(), r["target"], color="crimson", alpha=0.05, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [*x, r["target"]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("depth (residual blocks)")
        ax.set_ylabel("maximal learning rate")
        inside = r["answer_lo"] <= r["truth"] <= r["answer_hi"]
        ratio = r["answer"] / r["truth"] if r["truth"] > 0 else math.nan
        opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}.get(r["optimizer"], r["optimizer"])
        ax.set_title(f"{r['family']}, {opt}\nanswer / truth = {ratio:.2g}, truth "
                     + ("inside" if inside else "outside") + " the answer's band", fontsize=9.5)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig
