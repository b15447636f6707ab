"""How the one-step change grows with the path sum across graphs: fits of delta_z2 ∝ (sum_p L_p^k)^b."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DagError

__all__ = [
    "PathLawFit", "delta_z_spread", "fit_path_law", "has_skip_path", "min_path_params",
    "path_law_by_width", "path_law_graphs", "path_law_profile", "path_law_summary",
]


def min_path_params(dag: Dag | str, arch: str = "mlp") -> int:
    """Fewest parameterized edges on any end-to-end path (0 when a path is all skips)."""
    dag = Dag.parse(dag, ops=arch) if isinstance(dag, str) else dag
    dag.require_path()
    return min(dag.depth_counts(0))


def _per_graph(table: pd.DataFrame, kind: str, lr_rule: str | None = "shared", min_params: int = 0,
               arch: str = "mlp") -> pd.DataFrame:
    need = {"graph", "kind", "delta_z2"}
    if not need <= set(table.columns):
        raise ArchscaleError(
            f"the table needs columns {sorted(need)} (from delta_z_graphs), got {list(table.columns)}"
        )
    sel = table[table["kind"] == kind]
    if lr_rule is not None and "lr_rule" in sel.columns:
        sel = sel[sel["lr_rule"] == lr_rule]
    if sel.empty:
        raise ArchscaleError(f"no rows with kind={kind!r}" + (f" and lr_rule={lr_rule!r}" if lr_rule else ""))
    if min_params:
        keep = {g for g in sel["graph"].unique() if min_path_params(g, arch) >= min_params}
        sel = sel[sel["graph"].isin(keep)]
    cols = ["graph", "lr"] if "lr" in sel.columns else ["graph"]
    return sel.groupby(cols, as_index=False).agg(delta_z2=("delta_z2", "mean"), n_seeds=("delta_z2", "size"))


def _ols(logs: np.ndarray, logy: np.ndarray, w: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``logy`` on each column of ``logs``; (intercepts, slopes, ssr) per column.

    ``logs`` is (n, m); ``w`` optional (b, n) resampling counts for a batch of bootstraps.
    """
    if w is None:
        w = np.ones((1, logs.shape[0]))
    sw = w.sum(1, keepdims=True)                        # (b, 1)
    mx = (w @ logs) / sw                                # (b, m)
    my = (w @ logy)[:, None] / sw                       # (b, 1)
    sxx = w @ logs**2 - sw * mx**2
    sxy = w @ (logs * logy[:, None]) - sw * mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 1e-300, sxy / sxx, np.nan)
    intercept = my - slope * mx
    syy = w @ logy**2 - sw[:, 0] * my[:, 0] ** 2       # (b,)
    ssr = np.maximum(syy[:, None] - slope * sxy, 0.0)   # residual sum of squares, no (b, m, n) array
    return intercept, slope, ssr


def _fixed_slope(logs: np.ndarray, logy: np.ndarray, slope: float, w: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    if w is None:
        w = np.ones((1, logs.shape[0]))
    resid = logy[:, None] - slope * logs                # (n, m)
    sw = w.sum(1, keepdims=True)
    intercept = (w @ resid) / sw                        # (b, m)
    ssr = np.maximum(w @ resid**2 - sw * intercept**2, 0.0)
    return intercept, ssr


@dataclass
class PathLawFit:
    """Fits of ``log delta_z2 = a + b * log sum_p (L_p)^k`` with ``L_p = offset + params(p)``.

    ``table``: one row per law — ``law``, ``power`` k, ``offset``, ``exponent`` b, ``intercept``
    a, 95% bootstrap intervals ``exponent_lo/hi`` and ``offset_lo/hi`` (NaN when held fixed),
    ``n_params``, ``ssr``, ``rmse`` (in natural-log units), ``aic`` and ``delta_aic`` (0 = best).
    ``data``: per graph — graph, delta_z2, and ``S{k}_off{o}`` columns for the fitted laws.
    ``eq8_in_ci``: whether b = 1 lies in the free-exponent interval of the k=3, offset-3 law
    (None when k=3 was not fitted). ``n_seeds``: the most seeds averaged for one graph.
    """

    table: pd.DataFrame
    data: pd.DataFrame
    n_graphs: int
    n_boot: int
    seed: int
    eq8_offset: float
    eq8_in_ci: bool | None
    kind: str = "last"
    min_params: int = 0
    offset_grid: tuple[float, ...] = ()
    n_seeds: int = 1

    @property
    def offset_at_edge(self) -> bool:
        """Whether the free offset of the ``sum L^3`` law sits at an end of the offset grid."""
        both3 = self.law("sum L^3, free b and offset")
        return bool(self.offset_grid) and both3.offset in (self.offset_grid[0], self.offset_grid[-1])

    @property
    def best(self) -> pd.Series:
        """The row with the lowest AIC."""
        return self.table.sort_values("aic").iloc[0]

    def law(self, name: str) -> pd.Series:
        rows = self.table[self.table["law"] == name]
        if rows.empty:
            raise ArchscaleError(f"no law {name!r}; fitted laws: {list(self.table['law'])}")
        return rows.iloc[0]

    def _has(self, name: str) -> bool:
        return bool((self.table["law"] == name).any())

    def verdict(self) -> str:
        """A plain-language summary: exponents with intervals and which law the data favour."""
        best = self.best
        lines = [
            f"{self.n_graphs} graphs (vertex: {self.kind}"
            + (f"; every path with >= {self.min_params} blocks" if self.min_params else "")
            + f"), {self.n_boot} bootstrap resamples of graphs (seed {self.seed}).",
            f"eq. 8 predicts delta_z2 ∝ (sum_p L_p^3)^b with b = 1 and offset {self.eq8_offset:g}.",
        ]
        if self._has("sum L^3, free b"):
            free3 = self.law("sum L^3, free b")
            lines.append(
                f"Free exponent on sum L_p^3 (offset {self.eq8_offset:g}): b = {free3.exponent:.3f} "
                f"[95% CI {free3.exponent_lo:.3f}, {free3.exponent_hi:.3f}] -> b = 1 is "
                f"{'inside' if self.eq8_in_ci else 'OUTSIDE'} the interval. Holding delta_z2 fixed would "
                f"take eta ∝ (sum_p L_p^3)^{-free3.exponent / 2:.2f}; eq. 8 uses ^-0.50."
            )
        edges = []
        for k in sorted(set(self.table["power"]), reverse=True):
            name = f"sum L^{k}, free b and offset"
            r = self.law(name)
            lines.append(f"Free exponent and offset on sum L_p^{k}: b = {r.exponent:.3f} "
                         f"[{r.exponent_lo:.3f}, {r.exponent_hi:.3f}], offset = {r.offset:g} "
                         f"[{r.offset_lo:g}, {r.offset_hi:g}].")
            if self.offset_grid and r.offset in (self.offset_grid[0], self.offset_grid[-1]):
                edges.append(name)
        lines.append(f"Lowest AIC: '{best.law}' (rmse {best.rmse:.3f} in ln units).")
        if self._has("eq. 8: sum L^3, b=1") and self._has("sum L^2, b=1"):
            gap = self.law("eq. 8: sum L^3, b=1").aic - self.law("sum L^2, b=1").aic
            winner = "eq. 8 (sum L_p^3)" if gap < 0 else "sum L_p^2"
            lines.append(
                f"Between the two exponent-1 laws (offset {self.eq8_offset:g}): AIC(eq. 8) - AIC(sum L^2) = "
                f"{gap:+.1f} -> " + (f"the data favour {winner}." if abs(gap) > 2
                                     else "they cannot be told apart (|gap| <= 2).")
            )
        if edges:
            lines.append(f"Note: the free offset of {', '.join(edges)} sits at the edge of the grid "
                         f"{self.offset_grid[0]:g}..{self.offset_grid[-1]:g}: the offset is not identified.")
        if not self._has("eq. 8: sum L^3, b=1"):
            return "\n".join(lines)
        eq8 = self.law("eq. 8: sum L^3, b=1")
        if eq8.delta_aic <= 2:
            lines.append("Verdict: the data are consistent with eq. 8 (within 2 AIC units of the best law).")
        else:
            lines.append(f"Verdict: the data do not follow eq. 8: '{best.law}' fits better by "
                         f"{eq8.delta_aic:.1f} AIC units.")
        return "\n".join(lines)


def fit_path_law(table: pd.DataFrame, *, kind: str = "last", lr_rule: str = "shared",
                 arch: str = "mlp", powers: Sequence[int] = (2, 3), offsets: Sequence[float] | None = None,
                 eq8_offset: float = 3.0, min_params: int = 0, n_boot: int = 1000, seed: int = 0
                 ) -> PathLawFit:
    """Fit how one-step ``delta_z2`` grows with the path sum ``sum_p L_p^k`` across graphs.

    ``table`` comes from :func:`delta_z_graphs` (rows of ``kind`` at one ``lr_rule``; seeds
    are averaged per graph; ``min_params`` keeps only graphs whose every path carries at least
    that many parameterized edges). For each ``k`` in ``powers``: the exponent fixed at 1 (eq. 8's
    ``delta_z2 ∝ eta^2 sum_p L_p^3`` for k=3), a free exponent at ``eq8_offset``, and a free
    exponent with the offset chosen from ``offsets`` (default 0.5 .. 8 in steps of 0.5) by
    least squares. Intervals: percentile bootstrap over graphs with ``numpy`` seed ``seed``.
    Every offset must keep ``L_p > 0`` on every path: above 0 when a path is all skips, above -1
    when every path carries a block.
    """
    n_boot = validate.integer(n_boot, "n_boot", minimum=10)
    seed = validate.integer(seed, "seed")
    if not powers or any(k <= 0 for k in powers):
        raise ArchscaleError(f"powers must be positive, e.g. (2, 3), got {powers!r}")
    data = _per_graph(table, kind, lr_rule, min_params, arch)
    if data["lr"].nunique() > 1:
        raise ArchscaleError("the graphs were probed at different learning rates; "
                             "fit one shared lr at a time")
    data = data[data["delta_z2"] > 0].reset_index(drop=True)
    if len(data) < 4:
        raise ArchscaleError(f"need at least 4 graphs with a non-zero delta_z2 to fit a law, got {len(data)}")
    offsets = [x / 2 for x in range(1, 17)] if offsets is None else [float(o) for o in offsets]
    offsets = sorted(set(offsets) | {float(eq8_offset)})
    dags = [Dag.parse(g, ops=arch) for g in data["graph"]]
    fewest = min(min(d.depth_counts(0)) for d in dags)
    if offsets[0] + fewest <= 0:
        raise ArchscaleError(f"every offset must exceed {-fewest} here (L_p = offset + blocks on p must be "
                             f"positive, and some path carries {fewest} blocks), got {offsets[0]:g}")
    logy = np.log(data["delta_z2"].to_numpy())
    n = len(logy)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    i0 = offsets.index(float(eq8_offset))
    rows = []

    def aic(ssr: float, k: int) -> float:
        return n * math.log(max(ssr, 1e-300) / n) + 2 * k

    for k in powers:
        logs = np.log(np.array([[float(d.path_power_sum(power=k, offset=o)) for o in offsets] for d in dags]))
        for o in offsets:
            data[f"S{k}_off{o:g}"] = np.exp(logs[:, offsets.index(o)])
        # exponent fixed at 1, offset eq8_offset
        a, ssr = _fixed_slope(logs[:, [i0]], logy, 1.0)
        name = "eq. 8: sum L^3, b=1" if k == 3 else f"sum L^{k}, b=1"
        rows.append({"law": name, "power": k, "offset": eq8_offset, "exponent": 1.0, "intercept": a[0, 0],
                     "exponent_lo": np.nan, "exponent_hi": np.nan, "offset_lo": np.nan, "offset_hi": np.nan,
                     "n_params": 1, "ssr": ssr[0, 0]})
        # free exponent at eq8_offset
        a, b, ssr = _ols(logs[:, [i0]], logy)
        _, bb, _ = _ols(logs[:, [i0]], logy, counts)
        lo, hi = np.nanpercentile(bb[:, 0], [2.5, 97.5])
        rows.append({"law": f"sum L^{k}, free b", "power": k, "offset": eq8_offset, "exponent": b[0, 0],
                     "intercept": a[0, 0], "exponent_lo": lo, "exponent_hi": hi, "offset_lo": np.nan,
                     "offset_hi": np.nan, "n_params": 2, "ssr": ssr[0, 0]})
        # free exponent and offset
        a, b, ssr = _ols(logs, logy)
        j = int(np.nanargmin(ssr[0]))
        _, bb, ss = _ols(logs, logy, counts)
        jb = np.nanargmin(np.where(np.isnan(ss), np.inf, ss), axis=1)
        b_boot = bb[np.arange(n_boot), jb]
        o_boot = np.array(offsets)[jb]
        blo, bhi = np.nanpercentile(b_boot, [2.5, 97.5])
        olo, ohi = np.percentile(o_boot, [2.5, 97.5])
        rows.append({"law": f"sum L^{k}, free b and offset", "power": k, "offset": offsets[j],
                     "exponent": b[0, j], "intercept": a[0, j], "exponent_lo": blo, "exponent_hi": bhi,
                     "offset_lo": olo, "offset_hi": ohi, "n_params": 3, "ssr": ssr[0, j]})
    out = pd.DataFrame(rows)
    out["rmse"] = np.sqrt(out["ssr"] / n)
    out["aic"] = [aic(s, k) for s, k in zip(out["ssr"], out["n_params"])]
    out["delta_aic"] = out["aic"] - out["aic"].min()
    in_ci = None
    if 3 in powers:
        r = out[out["law"] == "sum L^3, free b"].iloc[0]
        in_ci = bool(r.exponent_lo <= 1.0 <= r.exponent_hi)
    return PathLawFit(out, data, n, n_boot, seed, float(eq8_offset), in_ci, kind, int(min_params),
                      tuple(offsets), int(data["n_seeds"].max()))


def path_law_summary(fits: Mapping[str, PathLawFit]) -> pd.DataFrame:
    """One row per labelled fit: n (graphs, seeds per graph), the exponent of ``sum L_p^3`` at the
    fits' eq. 8 offset (``b_sumL3`` with its 95% interval ``b_lo/b_hi``) and with a free offset
    (``b_free`` with ``b_free_lo/hi``, ``free_offset`` with ``offset_lo/hi``, ``offset_at_edge``),
    whether b = 1 is inside each interval, the best law by AIC and eq. 8's AIC gap."""
    rows = []
    for label, fit in fits.items():
        free3 = fit.law("sum L^3, free b")
        both3 = fit.law("sum L^3, free b and offset")
        rows.append({"fit": label, "n_graphs": fit.n_graphs, "n_seeds": fit.n_seeds,
                     "b_sumL3": free3.exponent, "b_lo": free3.exponent_lo, "b_hi": free3.exponent_hi,
                     "b=1 in CI": fit.eq8_in_ci,
                     "b_free": both3.exponent, "b_free_lo": both3.exponent_lo, "b_free_hi": both3.exponent_hi,
                     "b=1 in free CI": bool(both3.exponent_lo <= 1.0 <= both3.exponent_hi),
                     "free_offset": both3.offset, "offset_lo": both3.offset_lo, "offset_hi": both3.offset_hi,
                     "offset_at_edge": fit.offset_at_edge, "best_law": fit.best.law,
                     "eq8_delta_aic": float(fit.law("eq. 8: sum L^3, b=1").delta_aic)})
    return pd.DataFrame(rows)


def path_law_by_width(table: pd.DataFrame, *, by: Sequence[str] = ("series", "width"), kind: str = "last",
                      n_boot: int = 1000, seed: int = 0, offsets: Sequence[float] | None = None,
                      eq8_offset: float = 3.0) -> tuple[pd.DataFrame, dict[tuple, PathLawFit]]:
    """:func:`fit_path_law` separately for every group of ``by`` (e.g. graph series x width).

    ``table``: :func:`archscale.probe.delta_z_widths` rows with a ``series`` column added. Returns
    the :func:`path_law_summary` rows with the ``by`` columns in front (sorted by them), and the
    fits keyed by group. Each group's bootstrap uses the same ``seed``. Of ``offsets``, a group
    keeps those that leave every path's ``L_p = offset + blocks`` positive (so a grid reaching
    below 0 applies to block-only graphs, and stops above 0 for graphs with an all-skip path).
    """
    by = list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ArchscaleError(f"the table has no column(s) {missing} to group by; "
                             f"columns: {list(table.columns)}")
    fits = {}
    for key, group in table.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        grid = offsets
        if offsets is not None:  # leave out offsets that make some path's L_p <= 0 in this group
            fewest = min(min_path_params(g) for g in group["graph"].unique())
            grid = [o for o in offsets if o + fewest > 0]
        fits[key] = fit_path_law(group, kind=kind, powers=(2, 3), offsets=grid, eq8_offset=eq8_offset,
                                 n_boot=n_boot, seed=seed)
    summary = path_law_summary({str(k): f for k, f in fits.items()}).drop(columns="fit")
    keys = pd.DataFrame(list(fits), columns=by)
    return pd.concat([keys, summary], axis=1), fits


def path_law_profile(fit: PathLawFit, power: int = 3) -> pd.DataFrame:
    """Free exponent b and rmse (ln units) of ``sum L_p^power`` at every offset of ``fit``'s grid.

    Shows how strongly b and the depth offset trade off: a flat rmse over a range of offsets
    means the data cannot tell those offsets (and their b) apart.
    """
    cols = [f"S{power}_off{o:g}" for o in fit.offset_grid]
    if not all(c in fit.data.columns for c in cols):
        raise ArchscaleError(f"this fit has no sum L^{power} columns; fit it with powers including {power}")
    logs = np.log(fit.data[cols].to_numpy(float))
    _, b, ssr = _ols(logs, np.log(fit.data["delta_z2"].to_numpy(float)))
    return pd.DataFrame({"offset": fit.offset_grid, "b": b[0], "rmse": np.sqrt(ssr[0] / fit.n_graphs)})


def has_skip_path(dag: Dag) -> bool:
    """Whether some end-to-end path of ``dag`` passes through a skip (identity) edge."""
    return any(dag.path_param_count(p) < len(p) - 1 for p in dag.iter_paths())


def path_law_graphs(n_graphs: int, seed: int, *, skips: bool = False, n_vertices: int = 5) -> list[Dag]:
    """``n_graphs`` distinct seeded graphs of the ``n_vertices`` MLP space, each with a path.

    ``skips=False``: block-only graphs (digits 0/2: zero or Linear edges), where the in-degree
    init keeps every vertex's variance, as the path-law derivation assumes. ``skips=True``:
    graphs from digits 0/1/2 with at least one end-to-end path through a skip edge. Both are
    prefixes of one seeded draw, so the first k graphs of a larger call are the same k graphs.
    """
    n_graphs = validate.positive_int(n_graphs, "n_graphs")
    skips = validate.boolean(skips, "skips")
    digits = (0, 1, 2) if skips else (0, 2)
    draw = n_graphs
    while True:
        try:
            pool = Dag.sample(n_vertices, draw, seed, digits=digits)
        except DagError as err:
            kind = "skip-carrying" if skips else "block-only"
            raise ArchscaleError(f"could not draw {n_graphs} {kind} graphs with a path from the "
                                 f"{n_vertices}-vertex space; ask for fewer") from err
        keep = [d for d in pool if has_skip_path(d) == skips]
        if len(keep) >= n_graphs:
            return keep[:n_graphs]
        draw = 2 * draw


def delta_z_spread(table: pd.DataFrame, *, kind: str = "last", min_params: int = 0, arch: str = "mlp"
                   ) -> pd.DataFrame:
    """Spread of per-graph ``delta_z2`` (seeds averaged) under each LR rule of :func:`delta_z_graphs`.

    Columns: lr_rule, n_graphs, min, max, max_min_ratio, q90_q10_ratio, sd_log10 (the standard
    deviation of log10 delta_z2) and, with a shared rule, narrowing (shared max/min over this
    one's). The maximal-update heuristic wants the scaled rule's spread small.
    ``min_params`` keeps only graphs whose every path carries that many parameterized edges.
    """
    rules = list(dict.fromkeys(table["lr_rule"])) if "lr_rule" in table.columns else [None]
    rows = []
    for rule in rules:
        vals = _per_graph(table, kind, rule, min_params, arch).groupby("graph")["delta_z2"].mean().to_numpy()
        vals = vals[vals > 0]
        q10, q90 = np.quantile(vals, [0.1, 0.9])
        rows.append({"lr_rule": rule, "n_graphs": len(vals), "min": vals.min(), "max": vals.max(),
                     "max_min_ratio": vals.max() / vals.min(), "q90_q10_ratio": q90 / q10,
                     "sd_log10": float(np.std(np.log10(vals)))})
    out = pd.DataFrame(rows)
    if "shared" in set(out["lr_rule"]):
        shared = out.loc[out["lr_rule"] == "shared", "max_min_ratio"].iloc[0]
        out["narrowing"] = shared / out["max_min_ratio"]
    return out
