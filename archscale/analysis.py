"""Reading maximal learning rates off tidy result tables, and setting them against eq. 8/9.

:func:`clean_losses` is the one rule for runs that diverged (their metric counts as ``fill``);
:func:`best_lr` the one rule for the best learning rate of a grid (lowest seed-averaged metric,
a diverged seed counting as an infinite loss); :func:`max_lr` applies it per sweep
configuration, and :func:`compare` sets the measured maximal LRs against
``max_lr(base) * lr_scale(graph)`` with Pearson r. Tables need columns ``lr``, ``seed``, the
metric and, when present, ``diverged``; sweeps, probes and the NAS study all fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import validate
from .dag import Dag
from .errors import ArchscaleError
from .results import CONFIG_KEYS, METRICS
from .scaling import convention, lr_scale

__all__ = ["Comparison", "best_lr", "clean_losses", "compare", "max_lr"]


def clean_losses(table: pd.DataFrame, metric: str = "train_loss", fill: float = np.nan) -> pd.DataFrame:
    """A copy of ``table`` whose ``metric`` is ``fill`` where the run diverged or is not finite.

    ``fill=np.nan`` leaves such runs out of plots; ``fill=np.inf`` makes them lose every
    comparison (what :func:`best_lr` does).
    """
    if not isinstance(table, pd.DataFrame):
        raise ArchscaleError(f"results must be a DataFrame, got {type(table).__name__}")
    if metric not in table.columns:
        columns = ", ".join(map(str, table.columns))
        raise ArchscaleError(f"results have no column {metric!r}; columns: {columns}")
    out = table.copy()
    values = out[metric].astype(float)
    bad = ~np.isfinite(values)
    if "diverged" in out.columns:
        bad |= out["diverged"].astype(bool)
    out[metric] = values.where(~bad, fill)
    return out


def best_lr(table: pd.DataFrame, metric: str = "train_loss", by: Sequence[str] = ()) -> pd.DataFrame:
    """The best learning rate of each ``by`` group: the grid LR with the lowest seed-mean ``metric``.

    A diverged or non-finite run counts as an infinite loss, so an LR where any seed diverged is
    never chosen. Columns: ``by``, ``best_lr`` (NaN when every LR diverged), ``best_loss``,
    ``best_lr_lo``/``best_lr_hi`` (smallest and largest of each seed's own best LR),
    ``at_edge`` (the best LR is the group's smallest or largest: the true one may lie beyond),
    ``n_lrs``, ``n_seeds``, ``n_diverged``.
    """
    by = list(by)
    missing = [c for c in [*by, "lr", "seed", metric] if c not in table.columns]
    if missing:
        raise ArchscaleError(f"results lack column(s) {', '.join(missing)}")
    df = clean_losses(table, metric, fill=np.inf)
    diverged = table["diverged"].astype(bool) if "diverged" in table.columns else pd.Series(False, df.index)
    df["_diverged"] = diverged
    groups = df.groupby(by, sort=True) if by else [((), df)]
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        by_lr = g.groupby("lr")[metric].mean().sort_index()
        grid = by_lr.index.to_numpy()
        loss = float(by_lr.min())
        if not np.isfinite(loss):
            best = lo = hi = np.nan
            edge = False
        else:
            best = float(by_lr.idxmin())
            per_seed = [float(s.loc[s[metric].idxmin(), "lr"]) for _, s in g.groupby("seed")
                        if np.isfinite(s[metric].min())]
            lo, hi = (min(per_seed), max(per_seed)) if per_seed else (np.nan, np.nan)
            edge = len(grid) > 1 and best in (grid[0], grid[-1])
        out.append({**dict(zip(by, key)), "best_lr": best, "best_loss": loss if np.isfinite(loss) else np.nan,
                    "best_lr_lo": lo, "best_lr_hi": hi, "at_edge": bool(edge), "n_lrs": len(grid),
                    "n_seeds": int(g["seed"].nunique()), "n_diverged": int(g["_diverged"].sum())})
    columns = [*by, "best_lr", "best_loss", "best_lr_lo", "best_lr_hi", "at_edge", "n_lrs", "n_seeds",
               "n_diverged"]
    return pd.DataFrame(out, columns=columns)


def max_lr(results: pd.DataFrame, metric: str = "train_loss") -> pd.DataFrame:
    """The maximal learning rate of every (graph, arch, width, kernel_size, act), per the paper.

    The maximal LR is the grid LR with the lowest seed-averaged ``metric`` (:func:`best_lr`). The
    default, ``train_loss``, is the reference code's training loss of an epoch (the
    batch-size-weighted mean minibatch loss) over the last epoch of the configured training:
    after one epoch in the paper; archscale's presets may train for a fixed number of steps or
    epochs instead, and then it is the loss of the last epoch (or of all steps, if fewer than an
    epoch). ``train_loss_final`` (whole training set after the last step) and ``test_loss`` are
    the alternatives. ``max_lr_lo``/``max_lr_hi`` are the smallest and largest of each seed's own
    best LR (error bars); ``at_edge`` flags a best LR at either end of the grid.
    """
    if not isinstance(results, pd.DataFrame):
        raise ArchscaleError(f"results must be a DataFrame (load_results(dir)), got {type(results).__name__}")
    if metric not in METRICS:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(METRICS)}")
    missing = [c for c in [*CONFIG_KEYS, "lr", "seed", "diverged", metric] if c not in results.columns]
    if missing:
        raise ArchscaleError(f"results lack column(s) {', '.join(missing)}; expected sweep rows")
    if results.empty:
        raise ArchscaleError("no results yet: the sweep has not finished any chunk")
    table = best_lr(results, metric, by=CONFIG_KEYS)
    return table.rename(columns={"best_lr": "max_lr", "best_lr_lo": "max_lr_lo", "best_lr_hi": "max_lr_hi"})


@dataclass
class Comparison:
    """Measured versus predicted maximal LR per graph, with Pearson r on linear and log scales."""

    table: pd.DataFrame
    pearson_r: float
    pearson_r_log: float
    n: int
    base: str
    offset: int
    metric: str = "train_loss"

    def to_dict(self) -> dict:
        table = self.table.replace({np.nan: None}).to_dict(orient="records")
        return {"pearson_r": _none_if_nan(self.pearson_r), "pearson_r_log": _none_if_nan(self.pearson_r_log),
                "n": self.n, "base": self.base, "offset": self.offset, "metric": self.metric, "table": table}

    def format(self) -> str:
        """A plain-text table plus the r values."""
        cols = ["graph", "width", "kernel_size", "act", "scale", "measured", "measured_lo", "measured_hi",
                "predicted"]
        t = self.table[cols].copy()
        if (t["kernel_size"] == 0).all():
            t = t.drop(columns="kernel_size")
        t["edge"] = np.where(self.table["at_edge"], "*", "")
        text = t.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        lines = [text, f"Pearson r (measured vs predicted max LR): {self.pearson_r:.3f} linear, "
                       f"{self.pearson_r_log:.3f} log  (n = {self.n}, base {self.base!r}, "
                       f"offset {self.offset}, metric {self.metric})"]
        if self.table["at_edge"].any():
            lines.append("* best LR at the edge of the grid: the true maximum may lie outside it")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare(results: pd.DataFrame, base: str = "1", offset: int | None = None,
            metric: str = "train_loss", include_base: bool = True) -> Comparison:
    """Measured maximal LR per graph against ``max_lr(base) * lr_scale(graph)`` (eq. 8/9).

    The base graph's measured maximal LR (same width and activation; kernel 3 for CNNs when
    swept, else the smallest kernel swept) is transferred to every graph with
    :func:`archscale.scaling.lr_scale` under the depth ``offset`` (default: the arch's
    convention), which shifts the base's depths and the graph's alike. Pearson r is computed
    over graphs with a finite measurement, on the LRs and on their logarithms;
    ``include_base`` keeps the base graph's own point, as the paper does.
    """
    m = max_lr(results, metric)
    archs = m["arch"].unique()
    if len(archs) != 1:
        raise ArchscaleError(f"results mix architectures {sorted(archs)}; compare one arch at a time")
    arch = str(archs[0])
    conv = convention(arch)
    try:
        base_dag = Dag.parse(base, ops=arch)
    except ValueError as err:
        raise ArchscaleError(f"base {base!r}: {err}") from None
    off = conv.offset if offset is None else validate.integer(offset, "offset", minimum=0)
    rows = []
    for (width, act), group in m.groupby(["width", "act"], sort=True):
        base_rows = group[group["graph"] == base_dag.code]
        if base_rows.empty:
            raise ArchscaleError(f"the base graph {base_dag.code!r} is not in the results (width {width}, "
                                 f"act {act}); add it to the spec's graphs")
        kernels = sorted(base_rows["kernel_size"])
        base_kernel = conv.base_kernel if conv.base_kernel in kernels else kernels[0]
        base_lr = float(base_rows[base_rows["kernel_size"] == base_kernel]["max_lr"].iloc[0])
        for _, r in group.iterrows():
            if not include_base and r["graph"] == base_dag.code:
                continue
            kernel = int(r["kernel_size"]) if conv.uses_kernel else None
            scale = lr_scale(Dag.parse(r["graph"], ops=arch), arch, kernel, offset=off, base=base_dag,
                             base_kernel=base_kernel if conv.uses_kernel else None)
            rows.append({"graph": r["graph"], "width": int(width), "kernel_size": int(r["kernel_size"]),
                         "act": act, "measured": r["max_lr"], "measured_lo": r["max_lr_lo"],
                         "measured_hi": r["max_lr_hi"], "predicted": base_lr * scale, "scale": scale,
                         "at_edge": bool(r["at_edge"])})
    table = pd.DataFrame(rows)
    ok = np.isfinite(table["measured"].to_numpy(float)) & np.isfinite(table["predicted"].to_numpy(float))
    meas, pred = table["measured"].to_numpy(float)[ok], table["predicted"].to_numpy(float)[ok]
    return Comparison(table=table, pearson_r=_pearson(meas, pred),
                      pearson_r_log=_pearson(np.log(meas), np.log(pred)) if len(meas) else float("nan"),
                      n=int(ok.sum()), base=base_dag.code, offset=off, metric=metric)
