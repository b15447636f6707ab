"""How the one-step update, the coordinate check and a sweep's optimum move with width."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis import best_lr
from ..core import validate
from ..core.errors import ArchscaleError

__all__ = ["coord_slopes", "lr_at_target", "lr_optimum_drift", "update_lr_table", "width_slope"]


def lr_at_target(table: pd.DataFrame, target: float = 1.0, *, kind: str = "vertex",
                 vertex: int | None = None, by: Sequence[str] = ("width",)) -> pd.DataFrame:
    """The learning rate at which seed-averaged ``delta_z2`` reaches ``target``, per group.

    Interpolates linearly in log-log between the two grid LRs that bracket ``target`` (NaN when
    the grid does not reach it). ``table`` comes from :func:`delta_z_vs_lr`; ``vertex`` picks one
    vertex (default: the last row of ``kind``). Columns: ``by`` columns, vertex, lr_at_target.
    """
    target = validate.learning_rate(target, "target")
    sel = table[table["kind"] == kind]
    if sel.empty:
        raise ArchscaleError(f"no rows with kind={kind!r}")
    if vertex is None:
        vertex = int(sel["vertex"].max())
    sel = sel[sel["vertex"] == vertex]
    rows = []
    for key, grp in sel.groupby(list(by)):
        curve = grp.groupby("lr")["delta_z2"].mean().sort_index()
        lx, ly = np.log(curve.index.to_numpy(float)), np.log(np.maximum(curve.to_numpy(), 1e-300))
        lt, value = math.log(target), float("nan")
        for i in range(len(lx) - 1):
            if (ly[i] - lt) * (ly[i + 1] - lt) <= 0 and ly[i] != ly[i + 1]:
                value = math.exp(lx[i] + (lt - ly[i]) * (lx[i + 1] - lx[i]) / (ly[i + 1] - ly[i]))
                break
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "vertex": vertex, "lr_at_target": value})
    return pd.DataFrame(rows)


def width_slope(table: pd.DataFrame, x: str = "width", y: str = "lr_at_target", *,
                x_min: float | None = None) -> tuple[float, float]:
    """Slope and intercept of ``log y`` against ``log x`` (rows with a finite positive y, x >= x_min).

    ``x_min`` restricts the fit to wide networks, where finite-width corrections have faded.
    """
    sel = table[np.isfinite(table[y].astype(float)) & (table[y] > 0)]
    if x_min is not None:
        sel = sel[sel[x] >= x_min]
    if sel[x].nunique() < 2:
        raise ArchscaleError(f"need {y} at two or more distinct {x} values to fit a slope"
                         + (f" (with {x} >= {x_min:g})" if x_min is not None else ""))
    slope, intercept = np.polyfit(np.log(sel[x].to_numpy(float)), np.log(sel[y].to_numpy(float)), 1)
    return float(slope), float(intercept)


def update_lr_table(tables: Mapping[str, pd.DataFrame], target: float = 1e-2, *, kind: str = "vertex",
                    vertex: int | None = None, wide_from: int | None = None) -> pd.DataFrame:
    """Per setup, the LR at which ``delta_z2`` reaches ``target`` at each width, and its width slope.

    ``tables`` maps a label to a :func:`delta_z_vs_lr` table. Columns: one ``n=<width>`` per width,
    ``slope_all`` (log-log slope over every width), ``slope_wide`` (over widths >= ``wide_from``,
    default the upper half; lowered to the second-widest width if needed) and ``wide_from``.
    Slope 0 = a width-independent maximal-update LR; standard parameterization predicts -0.5.
    """
    rows = []
    for label, table in tables.items():
        at = lr_at_target(table, target, kind=kind, vertex=vertex)
        widths = sorted(at["width"].unique())
        wide = widths[len(widths) // 2] if wide_from is None else wide_from
        wide = min(wide, widths[-2]) if len(widths) >= 2 else wide
        row = {"setup": label, **{f"n={w}": v for w, v in zip(at["width"], at["lr_at_target"])}}
        finite = at[np.isfinite(at["lr_at_target"])]
        row["slope_all"] = width_slope(finite)[0] if finite["width"].nunique() >= 2 else np.nan
        wide_ok = finite[finite["width"] >= wide]
        row["slope_wide"] = width_slope(wide_ok)[0] if wide_ok["width"].nunique() >= 2 else np.nan
        row["wide_from"] = wide
        rows.append(row)
    out = pd.DataFrame(rows).set_index("setup")
    width_cols = sorted((c for c in out.columns if c.startswith("n=")), key=lambda c: int(c[2:]))
    return out[width_cols + ["slope_all", "slope_wide", "wide_from"]]


def coord_slopes(table: pd.DataFrame, value: str = "mean_abs_delta_z", step: int | None = None, *,
                 x_min: float | None = None) -> pd.DataFrame:
    """Per vertex, the log-log slope of seed-averaged ``value`` against width at one ``step``.

    ``table`` comes from :func:`coord_check` (default step: the last). Slope 0 = width
    independent, the maximal-update ideal; also the ratio of the widest to the narrowest width.
    Columns: vertex, kind, slope, ratio.
    """
    if value not in ("mean_abs_delta_z", "mean_abs_z"):
        raise ArchscaleError(f"value must be 'mean_abs_delta_z' or 'mean_abs_z', got {value!r}")
    t = int(table["step"].max()) if step is None else step
    sel = table[table["step"] == t]
    if sel.empty:
        raise ArchscaleError(f"no rows at step {t}; steps in the table: {sorted(table['step'].unique())}")
    rows = []
    for (vertex, kind), grp in sel.groupby(["vertex", "kind"]):
        curve = grp.groupby("width", as_index=False)[value].mean()
        ok = curve[np.isfinite(curve[value]) & (curve[value] > 0)]
        slope = width_slope(ok, "width", value, x_min=x_min)[0] if ok["width"].nunique() >= 2 else np.nan
        ratio = float(curve[value].iloc[-1] / curve[value].iloc[0]) if curve[value].iloc[0] > 0 else np.nan
        rows.append({"vertex": vertex, "kind": kind, "slope": slope, "ratio": ratio})
    return pd.DataFrame(rows)


def lr_optimum_drift(results: pd.DataFrame, metric: str = "train_loss", by: str = "width",
                     ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Where the loss-vs-LR optimum sits for each ``by`` value, and how far it drifts.

    ``results`` is a sweep table (columns lr, seed, ``by``, ``metric``; ``diverged`` if present).
    Per ``by`` value, the columns of :func:`archscale.analysis.best_lr` (the project's one
    maximal-LR estimator: ``best_lr`` finer than the grid, its seed-bootstrap interval
    ``best_lr_lo``/``best_lr_hi``, the grid argmin ``best_lr_grid``, ``edge``).
    Summary: ``slope`` of log2 best_lr against log2 ``by`` (0 = perfect transfer), ``ratio``
    best_lr at the largest over the smallest ``by``, ``grid_steps`` (the drift of the grid
    argmin in grid steps), ``grid_factor`` (ratio of neighbouring LRs) and ``any_at_edge`` (then
    the drift is only a bound: widen the grid).
    """
    need = {"lr", "seed", by, metric}
    if not need <= set(results.columns):
        raise ArchscaleError(f"results need columns {sorted(need)}, got {list(results.columns)}")
    if results["lr"].nunique() < 2:
        raise ArchscaleError("need at least two learning rates to locate an optimum")
    table = best_lr(results, metric, by=[by]).sort_values(by).reset_index(drop=True)
    grid = np.sort(results["lr"].unique())
    idx = {v: j for j, v in enumerate(grid)}
    summary = {"ratio": float(table["best_lr"].iloc[-1] / table["best_lr"].iloc[0]),
               "grid_steps": float(idx[table["best_lr_grid"].iloc[-1]] - idx[table["best_lr_grid"].iloc[0]]),
               "grid_factor": float(np.exp(np.mean(np.diff(np.log(grid))))),
               "any_at_edge": bool(table["at_edge"].any())}
    if len(table) >= 2:
        summary["slope"] = float(np.polyfit(np.log2(table[by].to_numpy(float)),
                                            np.log2(table["best_lr"].to_numpy(float)), 1)[0])
    else:
        summary["slope"] = float("nan")
    return table, summary
