"""The figure of the mixed-kernel experiment (notebook 06b): optima against the readings of eq. 9,
and every law's pooled error."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter, ScalarFormatter

__all__ = ["mixed_kernels_figure"]

#: The eq. 9 readings drawn as lines in the per-family panels: law -> (label, style).
READINGS = {"eq8": ("eq. 9 per edge", "-"), "eq8_one_q": ("eq. 9, one q", "--"),
            "eq8_mean_area": ("eq. 9, mean area", ":")}


def mixed_kernels_figure(curves: dict[str, pd.DataFrame], predictions: dict[str, pd.DataFrame],
                         pooled: pd.DataFrame, floor: float, title: str,
                         labels: dict[str, str] | None = None):
    """One panel per family: the measured maximal LR (95% interval) against its size, with what each
    reading of eq. 9 predicts from the smallest size; a last panel: every law's pooled error factor
    (95% interval) with the noise floor. ``curves``/``predictions`` are
    :meth:`MixedKernels.curves <archscale.experiments.mixed_kernels.MixedKernels.curves>` and
    ``predictions``; ``pooled`` its ``pooled_table``."""
    labels = labels or {}
    n = len(curves)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.6 * n + 4.6, 4.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1] * n + [1.5]})
    for i, (ax, (family, c)) in enumerate(zip(axes[:-1], curves.items())):
        d, m = c["depth"].to_numpy(float), c["max_lr"].to_numpy(float)
        lo, hi = c["lo"].to_numpy(float), c["hi"].to_numpy(float)
        err = np.array([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
        # an estimate may sit outside its own interval: no negative bar
        err = np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)
        edge = np.array([isinstance(e, str) and bool(e) for e in c.get("edge", [""] * len(c))])
        ax.errorbar(d, m, yerr=err, fmt="none", capsize=3, color="black")
        ax.plot(d[~edge], m[~edge], "o", color="black", label="measured (95%)")
        if edge.any():
            ax.plot(d[edge], m[edge], "o", mfc="white", color="black", label="at the grid's edge: a bound")
        pred = predictions.get(family)
        for j, (law, (label, style)) in enumerate(READINGS.items()):
            if pred is not None and law in pred:
                ax.plot(pred.index.to_numpy(float), pred[law].to_numpy(float), style, color=f"C{j}",
                        label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(d, [str(int(x)) for x in d])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("depth (convs, cells or blocks)")
        if i == 0:
            ax.set_ylabel("maximal learning rate")
        ax.set_title(f"({chr(97 + i)}) {family}")
        ax.legend(fontsize=7)
    b = axes[-1]
    t = pooled.sort_values("error_factor") if not pooled.empty else pooled
    ys = np.arange(len(t))
    for y, r in zip(ys, t.itertuples()):
        ef = float(r.error_factor)
        color = "C0" if r.law in READINGS else "C7"
        lo = max(ef - r.lo, 0.0) if math.isfinite(r.lo) else 0.0
        hi = max(r.hi - ef, 0.0) if math.isfinite(r.hi) else 0.0
        b.errorbar([ef], [y], xerr=[[lo], [hi]], fmt="o", capsize=3, color=color)
    b.set_yticks(ys, [labels.get(str(x), str(x)) for x in t["law"]] if len(t) else [])
    b.invert_yaxis()
    if math.isfinite(floor):
        b.axvline(floor, color="black", ls=":", lw=0.9, label=f"noise floor ×{floor:.2g}")
    b.axvline(1.0, color="black", lw=0.6)
    b.set_xscale("log")
    top = max([float(x) for x in t["hi"] if math.isfinite(x)] + [float(x) for x in t["error_factor"]] + [2.0])
    b.set_xticks([x for x in (1, 1.5, 2, 3, 5, 10, 20, 50, 100) if x <= top * 1.2])
    b.xaxis.set_major_formatter(ScalarFormatter())
    b.xaxis.set_minor_formatter(NullFormatter())
    b.set_xlabel("error factor, pooled over the families (×)")
    b.set_title(f"({chr(97 + n)}) every law, pooled (95%)")
    b.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return fig
