"""The kernel factor of eq. 9, tested on its own: per graph, how the maximal LR moves with the kernel size.

Eq. 9 is ``eta* = c * (sum_p L_p^3)^(-1/2) * q^(-1)`` for ``q x q`` kernels. The path sum counts
blocks, not kernel taps, so for one graph it does not change with ``q``: eq. 9 predicts
``ln eta*(q) = const - ln q``, a **kernel exponent** (slope of ln max LR on ln q) of exactly
:data:`EQ9_EXPONENT` = -1 for every graph. A slope near 0 means the kernel does not matter; one
below -1 that it matters more than eq. 9 says.

:func:`kernel_exponents` reads each configuration's maximal LR with the one best-LR rule
(:func:`~archscale.analysis.compare.measure`, which rests on :mod:`~archscale.analysis.maxlr`),
fits the slope per (graph, width, act) by least squares over the swept kernels, and gives it a 95%
bootstrap interval: each replicate resamples the seeds (the same draw for every kernel and graph,
so configurations stay paired), re-reads every maximal LR from the resampled seeds with the same
rule and refits. The pooled exponent is the within-graph slope (each graph its own intercept),
resampling seeds and graphs. The pooled agreement of eq. 9 as a whole (base excluded, log scale)
is :func:`~archscale.analysis.compare.compare` on the same measurements.

A grid of learning rates makes every slope discrete: ``slope_step`` is how far one grid step at
one kernel moves it, the resolution of the test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from .agreement import percentile_interval
from .compare import Comparison, Measured, compare, measure
from .estimator import DEFAULT_METHOD, bootstrap_estimates, seed_counts

__all__ = ["EQ9_EXPONENT", "KernelExponents", "kernel_exponents", "kernel_slope"]

#: The kernel exponent eq. 9 predicts: max LR proportional to 1/q at fixed graph.
EQ9_EXPONENT = -1.0


def kernel_slope(kernels, max_lrs) -> float:
    """Least-squares slope of ``ln max_lr`` on ``ln kernel``; NaN with fewer than two finite points."""
    x = np.log(np.asarray(kernels, dtype=float))
    y = np.log(np.asarray(max_lrs, dtype=float))
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def _pooled_slope(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Within-group least-squares slope: each group's mean removed from x and y before the fit."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[ok], y[ok], groups[ok]
    dx, dy = x.copy(), y.copy()
    for g in np.unique(groups):
        sel = groups == g
        dx[sel] -= x[sel].mean()
        dy[sel] -= y[sel].mean()
    return float(dx @ dy / (dx @ dx)) if dx @ dx > 0 else math.nan


@dataclass
class KernelExponents:
    """Per-graph kernel exponents with intervals, their pooled value, and eq. 9's pooled agreement.

    ``table``: one row per (graph, width, act) with ``kernels``, ``max_lrs`` (per kernel, the
    one rule's point), ``exponent`` with ``lo``/``hi`` (95% seed bootstrap), ``slope_step`` (the
    grid's resolution), ``at_edge`` (some kernel's max LR at the grid's edge), ``n_kernels``,
    ``n_seeds`` and ``n_valid`` (replicates with a finite slope). ``pooled``: the within-graph
    exponent with ``lo``/``hi`` over seeds and graphs and ``n_graphs``. ``comparison``: eq. 9's
    measured-vs-predicted agreement on the same measurements (base excluded).
    """

    table: pd.DataFrame
    pooled: dict
    comparison: Comparison
    n_boot: int
    seed: int
    predicted: float = EQ9_EXPONENT

    def format(self, agreement: bool = True) -> str:
        """The per-graph table, the pooled exponent and (``agreement``) eq. 9's agreement, each with
        interval and n."""
        t = self.table.copy()
        t["max LR per kernel"] = [", ".join(f"q{q}: {m:.3g}" for q, m in zip(k, v))
                                  for k, v in zip(t["kernels"], t["max_lrs"])]
        t["exponent [95% CI]"] = [f"{e:.2f} [{lo:.2f}, {hi:.2f}]" for e, lo, hi in zip(t["exponent"], t["lo"],
                                                                                         t["hi"])]
        t[f"contains {self.predicted:g}"] = (t["lo"] <= self.predicted) & (self.predicted <= t["hi"])
        cols = ["graph", "width", "act", "max LR per kernel", "exponent [95% CI]",
                f"contains {self.predicted:g}", "slope_step", "at_edge", "n_seeds"]
        p = self.pooled
        lines = [f"kernel exponent (slope of ln max LR on ln q) per graph; eq. 9 predicts "
                 f"{self.predicted:g}; 95% bootstrap over seeds ({self.n_boot} replicates):",
                 t[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"),
                 f"pooled within-graph exponent = {p['exponent']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}] over "
                 f"{p['n_graphs']} graphs x {p['n_kernels']} kernels, {p['n_seeds']} seeds (bootstrap over "
                 f"seeds and graphs)"]
        if agreement:
            lines += ["eq. 9 as a whole (graph and kernel factors together), pooled:",
                      self.comparison.agreement.format()]
        if t["at_edge"].any():
            lines.append("at_edge: some kernel's max LR sits at the edge of the grid: that slope is a bound")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict:
        rows = self.table.assign(kernels=self.table["kernels"].map(list),
                                 max_lrs=self.table["max_lrs"].map(list)).to_dict(orient="records")
        return {"predicted": self.predicted, "table": rows, "pooled": self.pooled, "n_boot": self.n_boot,
                "seed": self.seed, "comparison": self.comparison.to_dict()}


def kernel_exponents(results: pd.DataFrame | Measured, base: str = "1", metric: str = "train_loss", *,
                     n_boot: int = 1000, seed: int = 0, method: str = DEFAULT_METHOD) -> KernelExponents:
    """Each graph's kernel exponent (module docstring) with its seed interval, pooled, and eq. 9's fit.

    ``results`` are CNN sweep rows over at least two kernel sizes (or their :class:`Measured`);
    ``base``, ``metric``, ``n_boot`` and ``seed`` are those of :func:`compare`.
    """
    meas = results if isinstance(results, Measured) else measure(results, base, metric, n_boot=n_boot,
                                                                 seed=seed, method=method)
    t = meas.table
    if t["kernel_size"].nunique() < 2:
        raise ArchscaleError(f"a kernel exponent needs at least two kernel sizes; the rows hold "
                             f"{sorted(t['kernel_size'].unique())}")
    s = meas.losses[0].shape[0]
    rng = np.random.default_rng(seed)
    boot = bootstrap_estimates(meas.losses, meas.lrs, seed_counts(s, n_boot, rng), meas.method)  # (B, n)
    log_q = np.log(t["kernel_size"].to_numpy(float))
    rows, members = [], []
    for (graph, width, act), g in t.groupby(["graph", "width", "act"], sort=True):
        g = g.sort_values("kernel_size")
        if len(g) < 2:
            continue
        idx = g.index.to_numpy()
        x = log_q[idx]
        kernels = g["kernel_size"].to_numpy(float)
        samples = np.array([kernel_slope(kernels, boot[b, idx]) for b in range(n_boot)])
        lo, hi, valid = percentile_interval(samples)
        est = kernel_slope(kernels, g["measured"])
        if np.isfinite(est):
            lo, hi = min(lo, est), max(hi, est)
        rows.append({"graph": graph, "width": int(width), "act": act,
                     "kernels": tuple(int(q) for q in g["kernel_size"]),
                     "max_lrs": tuple(float(m) for m in g["measured"]), "exponent": est, "lo": lo, "hi": hi,
                     "slope_step": _slope_step(x, meas.lrs[idx[0]]), "at_edge": bool(g["at_edge"].any()),
                     "n_kernels": len(g), "n_seeds": s, "n_valid": valid})
        members.append(idx)
    if not rows:
        raise ArchscaleError("no graph was swept at two or more kernel sizes; nothing to fit a slope to")
    table = pd.DataFrame(rows)
    pooled = _pooled(members, log_q, np.log(t["measured"].to_numpy(float)), np.log(boot), rng, n_boot)
    pooled |= {"n_kernels": int(t["kernel_size"].nunique()), "n_seeds": s}
    return KernelExponents(table, pooled, compare(meas, n_boot=n_boot, seed=seed), n_boot, seed)


def _slope_step(x: np.ndarray, grid: np.ndarray) -> float:
    """How far the slope moves when one kernel's max LR moves one (median) grid step."""
    if len(grid) < 2 or np.ptp(x) == 0:
        return math.nan
    step = float(np.median(np.diff(np.log(np.sort(grid)))))
    dx = x - x.mean()
    return step * float(np.abs(dx).max() / (dx @ dx))


def _pooled(members: list[np.ndarray], log_q: np.ndarray, log_m: np.ndarray, log_boot: np.ndarray,
            rng: np.random.Generator, n_boot: int) -> dict:
    """The within-graph exponent and its interval over resampled seeds (``log_boot``) and graphs."""
    def slope(idx_sets: list[np.ndarray], y: np.ndarray) -> float:
        idx = np.concatenate(idx_sets)
        labels = np.concatenate([np.full(len(m), i) for i, m in enumerate(idx_sets)])
        return _pooled_slope(log_q[idx], y[idx], labels)

    est = slope(members, log_m)
    picks = rng.integers(0, len(members), size=(n_boot, len(members)))
    samples = np.array([slope([members[i] for i in picks[b]], log_boot[b]) for b in range(n_boot)])
    lo, hi, valid = percentile_interval(samples)
    return {"exponent": est, "lo": lo, "hi": hi, "n_graphs": len(members), "n_valid": valid}
