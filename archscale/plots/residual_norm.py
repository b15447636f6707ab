"""The figure of the residual / BatchNorm depth experiment: optima across depth and each law's error."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["residual_norm_figure"]


def residual_norm_figure(curves: dict[str, pd.DataFrame], table: pd.DataFrame, title: str):
    """(a) the measured maximal LR (95% interval) against the number of residual blocks K, one line
    per family; (b) every law's error factor (95% interval) per family, with the noise floor that no
    law can score below. ``curves[family]`` has columns ``K, max_lr, lo, hi``; ``table`` is
    :meth:`ResidualNorm.table <archscale.experiments.residual_norm.ResidualNorm.table>`."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 4.6), gridspec_kw={"width_ratios": [1, 1.25]},
                                layout="constrained")
    for i, (family, c) in enumerate(curves.items()):
        k, m = c["K"].to_numpy(float), c["max_lr"].to_numpy(float)
        lo, hi = c["lo"].to_numpy(float), c["hi"].to_numpy(float)
        err = np.array([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
        dashed = "Depth-muP" in family
        a.errorbar(k * (1 + 0.04 * (i - 1.5)), m, yerr=err, fmt="o--" if dashed else "o-", capsize=3,
                   color=f"C{i}", label=family)
    a.set_xscale("log", base=2)
    ks = sorted({int(k) for c in curves.values() for k in c["K"]})
    a.set_xticks(ks, [str(k) for k in ks])
    a.minorticks_off()
    a.set_yscale("log")
    a.set_xlabel("residual blocks K")
    a.set_ylabel("maximal learning rate (sub-grid estimate)")
    a.set_title("(a) the measured optimum across depth")
    a.legend(fontsize=8)
    laws = list(dict.fromkeys(table["law"]))
    families = list(dict.fromkeys(table["family"]))
    width = 0.8 / max(len(families), 1)
    for j, family in enumerate(families):
        t = table[table["family"] == family].set_index("law")
        xs, ys, los, his = [], [], [], []
        for i, law in enumerate(laws):
            if law in t.index and math.isfinite(t.loc[law, "error_factor"]):
                xs.append(i + (j - (len(families) - 1) / 2) * width)
                ys.append(t.loc[law, "error_factor"])
                los.append(t.loc[law, "lo"])
                his.append(t.loc[law, "hi"])
        ys_a = np.asarray(ys)
        yerr = np.array([ys_a - np.asarray(los), np.asarray(his) - ys_a])
        b.errorbar(xs, ys, yerr=np.nan_to_num(yerr), fmt="o", capsize=3, color=f"C{j}", label=family)
        floor = float(t["noise_floor"].iloc[0])
        b.hlines(floor, -0.5, len(laws) - 0.5, colors=f"C{j}", linestyles=":", lw=0.8)
    b.axhline(1.0, color="black", lw=0.6)
    b.set_xticks(range(len(laws)), [law.replace("_", " ") for law in laws], rotation=20, ha="right")
    b.set_yscale("log")
    b.set_ylabel("error factor (measured vs predicted, ×)")
    b.set_title("(b) each law's error; dotted: the noise floor")
    b.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig
