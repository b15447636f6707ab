"""How far the measured optimum drifts from a law's prediction across depth (residual nets).

:func:`depth_transfer` takes a depth sweep (one graph per depth, the shallowest the base),
transfers the base's measured maximal LR to every depth with a law of :mod:`archscale.core.laws`
(eq. 8, the effective depth, or the constant LR that Depth-muP promises) and reports, per depth,
the ratio measured / predicted with a 95% bootstrap interval over seeds (the base and the target
resampled together, every maximal LR re-read from the resampled seeds), and over all depths the
typical error factor and the bias with intervals over seeds and depths. Both come from
:func:`~archscale.analysis.compare.compare` and its agreement metrics, on the one best-LR rule of
:mod:`~archscale.analysis.maxlr`: a ratio of 1 is perfect transfer; 2 means the optimum sits 2x
above the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..core.laws import Law, law
from .agreement import Agreement, against_factor
from .agreement import _fmt as _f
from .compare import Comparison, compare, measure
from .estimator import DEFAULT_METHOD
from .law_scores import law_rule

__all__ = ["DepthTransfer", "depth_transfer", "law_rule", "rank_transfers"]


@dataclass
class DepthTransfer:
    """One parametrization and law across depth: per-depth ratios and the overall miss.

    ``table``: one row per depth (``depth``, ``graph``, ``measured`` with its seed interval
    ``measured_lo``/``measured_hi``, ``predicted``, ``ratio`` = measured / predicted with its
    interval ``ratio_lo``/``ratio_hi``, ``at_edge``, ``is_base``). ``overall``: the agreement
    metrics over the non-base depths (``error_factor``, ``bias``, ...).
    """

    label: str
    law: str
    table: pd.DataFrame
    overall: Agreement
    comparison: Comparison

    @property
    def deepest(self) -> pd.Series:
        return self.table.iloc[-1]

    def summary(self) -> str:
        """One line: the ratio at the deepest net and the overall error factor and bias, with n."""
        d, a = self.deepest, self.overall
        return (f"{self.label}: measured / predicted at depth {int(d['depth'])} = {_f(d['ratio'])} "
                f"[{_f(d['ratio_lo'])}, {_f(d['ratio_hi'])}]; over the {a.n} non-base depths error factor "
                f"{_f(a.estimate['error_factor'])} [{_f(a.lo['error_factor'])}, {_f(a.hi['error_factor'])}], "
                f"bias {_f(a.estimate['bias'])} [{_f(a.lo['bias'])}, {_f(a.hi['bias'])}] "
                f"({a.n_seeds} seeds, {a.n_boot} bootstrap replicates)")

    def finding(self, good: float = 1.5) -> str:
        """Whether the prediction holds at every depth (each ratio's interval contains 1) and whether the
        overall error factor stays within ``good``, in one sentence with its numbers."""
        t = self.table[~self.table["is_base"]]
        missed = t[(t["ratio_lo"] > 1) | (t["ratio_hi"] < 1)]
        a = self.overall
        ef = (a.estimate["error_factor"], a.lo["error_factor"], a.hi["error_factor"])
        if missed.empty:
            depths = "at every depth the interval of measured / predicted contains 1"
        else:
            worst = missed.loc[(np.log(missed["ratio"])).abs().idxmax()]
            side = "above" if worst["ratio"] > 1 else "below"
            depths = (f"the optimum lies {side} the prediction at K = {', '.join(map(str, missed['depth']))} "
                      f"(interval excludes 1; worst K = {int(worst['depth'])}: {_f(worst['ratio'])} "
                      f"[{_f(worst['ratio_lo'])}, {_f(worst['ratio_hi'])}])")
        within = against_factor(ef[1], ef[2], good).replace("undecided", "undecided against")
        return (f"{self.label}: {depths}; error factor {_f(ef[0])} [{_f(ef[1])}, {_f(ef[2])}], {within} a "
                f"factor {good:g} (n = {a.n} depths, {a.n_seeds} seeds)")

    def to_dict(self, good: float = 1.5) -> dict:
        """The per-depth table, the overall metrics with intervals and the finding, JSON-ready."""
        return {"label": self.label, "law": self.law, "overall": self.overall.to_dict(),
                "finding": self.finding(good),
                "table": self.table.replace({np.nan: None}).to_dict(orient="records")}

    def format(self) -> str:
        cols = ["depth", "graph", "measured", "measured_lo", "measured_hi", "predicted", "ratio", "ratio_lo",
                "ratio_hi"]
        t = self.table[cols].copy()
        t["note"] = np.where(self.table["is_base"], "base", "") + np.where(self.table["at_edge"], "*", "")
        lines = [f"--- {self.label} (law {self.law!r})",
                 t.to_string(index=False, float_format=lambda v: f"{v:.4g}"), self.summary()]
        if self.table["at_edge"].any():
            lines.append("* optimum at the edge of the LR grid: the true one may lie outside it")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def depth_transfer(results: pd.DataFrame, depths: Mapping[str, int], which: Law | str, *,
                   label: str | None = None, metric: str = "train_loss", n_boot: int = 1000,
                   seed: int = 0, method: str = DEFAULT_METHOD) -> DepthTransfer:
    """Measured optimum per depth against ``which`` law, transferred from the shallowest depth.

    ``results``: sweep rows of one parametrization; ``depths`` maps each graph code to its depth
    (rows of other graphs are ignored); the graph of the smallest depth is the base.
    """
    if len(depths) < 2:
        raise ArchscaleError(f"a depth transfer needs at least two depths, got {dict(depths)}")
    depth_of = {str(g): int(k) for g, k in depths.items()}
    base = min(depth_of, key=depth_of.__getitem__)
    rows = results[results["graph"].isin(list(depth_of))]
    missing = sorted(set(depth_of) - set(rows["graph"]), key=depth_of.__getitem__)
    if missing:
        raise ArchscaleError(f"the results hold no rows for the graph(s) {missing}")
    chosen = law(which) if isinstance(which, str) else which
    meas = measure(rows, base, metric, n_boot=n_boot, seed=seed, method=method)
    rule = law_rule(chosen, meas.arch)
    comp = compare(meas, rule=rule, n_boot=n_boot, seed=seed)
    table = comp.table.copy()
    table.insert(0, "depth", [depth_of[g] for g in table["graph"]])
    table["ratio"] = table["measured"] / table["predicted"]
    lo, hi = [], []
    for r in table.itertuples():
        if r.is_base or not (np.isfinite(r.measured) and np.isfinite(r.predicted)):
            lo.append(1.0 if r.is_base else math.nan)
            hi.append(1.0 if r.is_base else math.nan)
            continue
        one = compare(meas, rule=rule, score={r.graph}, n_boot=n_boot, seed=seed, edges=True).agreement
        # widened to hold the point, as the max-LR intervals are (few seeds can skip it)
        lo.append(min(one.lo["bias"], r.measured / r.predicted))
        hi.append(max(one.hi["bias"], r.measured / r.predicted))
    table["ratio_lo"], table["ratio_hi"] = lo, hi
    table = table.sort_values("depth").reset_index(drop=True)
    return DepthTransfer(label or chosen.name, chosen.name, table, comp.agreement, comp)


def rank_transfers(transfers: Sequence[DepthTransfer]) -> str:
    """Which transfer misses least (smallest error factor), and whether its interval overlaps the others'."""
    if not transfers:
        raise ArchscaleError("no depth transfers to rank")
    ef = {t.label: (t.overall.estimate["error_factor"], t.overall.lo["error_factor"],
                    t.overall.hi["error_factor"]) for t in transfers}
    best = min(ef, key=lambda k: np.nan_to_num(ef[k][0], nan=np.inf))
    overlap = [k for k in ef if k != best and ef[k][1] <= ef[best][2]]
    n = {t.overall.n for t in transfers}
    tail = (f"its interval overlaps {', '.join(overlap)}'s: at this n the data do not separate them"
            if overlap else "its interval lies below every other one's")
    return (f"smallest error factor: {best}, {_f(ef[best][0])} [{_f(ef[best][1])}, {_f(ef[best][2])}] "
            f"(n = {'/'.join(map(str, sorted(n)))} depths); {tail}")
