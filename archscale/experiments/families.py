"""Several model families, each measured by :func:`archscale.check`: their rows, curves and lines.

Notebooks 06b (mixed kernels) and 11b (residual CNNs with and without BatchNorm) measure families the
same way; the tables and the optima they show come from here.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .check import CheckReport

__all__ = ["describe_curves", "family_curves", "family_rows"]


def family_rows(reports: Mapping[str, CheckReport], n_column: str = "n") -> list[dict]:
    """One row per family and law: the error factor with its interval, bias, the noise floor, and
    ``n_column`` (the sizes beyond each family's first)."""
    return [{"family": family, "law": r.law, "error_factor": r.error_factor, "lo": r.ef_lo, "hi": r.ef_hi,
             "bias": r.bias, "noise_floor": rep.noise_floor, n_column: len(rep.sizes) - 1}
            for family, rep in reports.items() for r in rep.laws.itertuples()]


def family_curves(reports: Mapping[str, CheckReport], size: str) -> dict[str, pd.DataFrame]:
    """Per family the measured maximal LR at every size: ``<size>, max_lr, lo, hi, edge``."""
    out = {}
    for family, rep in reports.items():
        t = rep.table[["max_lr", "lo", "hi", "edge"]].copy()
        t.insert(0, size, [int(s) for s in rep.sizes])
        out[family] = t.reset_index(drop=True)
    return out


def describe_curves(curves: Mapping[str, pd.DataFrame], size: str, label: str) -> list[str]:
    """Per family one line: the optimum at every size (``label`` followed by it) with its interval, grid
    edges marked."""
    return [f"{family}: " + "; ".join(
        f"{label}{getattr(r, size)}: {r.max_lr:.3g} [{r.lo:.3g}, {r.hi:.3g}]"
        + (f" (at the grid's {r.edge} edge: a bound)" if isinstance(r.edge, str) and r.edge else "")
        for r in curve.itertuples()) for family, curve in curves.items()]
