"""Findings of the probes: initialization (01), DAG paths (03), the maximal-update heuristic (08)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..tables import row_label
from .core import Findings, _overlap, ci, interval_side

__all__ = ["dag_paths", "drift_title", "initialization", "maximal_update", "path_law_title"]


# -- initialization and paths (notebooks 01, 03) -------------------------------------------------------------

def initialization(moments: pd.DataFrame, blocks_only: Sequence[str], with_skips: Sequence[str],
                   example: str, width: int) -> Findings:
    """Notebook 01: which init keeps the forward second moment, from ``init_second_moments`` rows."""
    f = Findings()
    paper = moments[(moments["layout"] == "paper") & (moments["vertex"] > 0)]
    out = paper[paper["vertex"] == paper.groupby("code")["vertex"].transform("max")]
    names = {"archscale": "target in-degree rule", "he": "He", "source": "source in-degree rule"}

    def family(codes):
        sel = out[out["code"].isin(list(codes))]
        return sel.groupby(["code", "init"])["ratio"].mean().groupby("init").agg(["median", "min", "max"])

    blocks = family(blocks_only)
    if "archscale" in blocks.index:
        t = blocks.loc["archscale"]
        others = "; ".join(f"{names.get(i, i)} median {r['median']:.2f} (range {r['min']:.2f}-{r['max']:.2f})"
                           for i, r in blocks.iterrows() if i != "archscale")
        rivals = np.abs(np.log(blocks["median"].drop("archscale").to_numpy(float)))
        keeps = not len(rivals) or abs(math.log(t["median"])) < rivals.min()
        verdict = ("keeps the input's second moment best" if keeps
                   else "does not keep it better than the others")
        f.add(f"On {len(blocks_only)} blocks-only graphs at width {width} the target in-degree rule "
              f"{verdict}: output / input second moment median {t['median']:.2f} (range "
              f"{t['min']:.2f}-{t['max']:.2f}); "
              f"{others}.")
    skips = family(with_skips)
    if "archscale" in skips.index:
        t = skips.loc["archscale"]
        grows = t["median"] > 1.1
        f.add(f"On {len(with_skips)} graphs with skip edges the output "
              f"{'grows' if grows else 'stays near 1'} even under the target rule (median {t['median']:.2f}, "
              f"up to {t['max']:.2f}): a skip edge carries its source's whole variance, which no weight "
              f"scaling can undo.")
    live = paper[paper["predicted"] > 0]
    if len(live):
        err = (live["ratio"] / live["predicted"] - 1).abs()
        f.add(f"The infinite-width recursion predicts the measured moments within a median relative error of "
              f"{err.median():.3f} "
              f"(95th percentile {err.quantile(0.95):.3f}) at width {width}.")
    v2 = moments[(moments["code"] == example) & (moments["init"] == "archscale") & (moments["vertex"] == 2)]
    by = v2.groupby("layout")["ratio"].mean()
    if {"paper", "reference"} <= set(by.index):
        f.add(f"The block layout matters: at the first dense vertex of {example} the reference layout "
              f"(post-activation sums) gives {by['reference']:.2f} where the paper layout gives "
              f"{by['paper']:.2f} (heuristic 1 + 1/π = {1 + 1 / math.pi:.2f}).")
    return f


def dag_paths(space: pd.DataFrame, sampled: bool) -> Findings:
    """Notebook 03: eq. 8's predicted LR scale over the five-vertex space (``space_table`` rows)."""
    f = Findings()
    s = space["scale"]
    what = "a random sample of" if sampled else "every graph with a path in"
    top = space[s == s.max()]
    single = ", all single paths" if (top["n_paths"] == 1).all() else ""
    f.add(f"Over {what} the five-vertex space ({len(space):,} graphs) eq. 8 gives no graph more than the "
          f"base's rate (largest scale {s.max():.3g}, on {len(top):,} graphs{single}).")
    low = space.loc[s.idxmin()]
    f.add(f"The median graph gets ×{s.median():.2f} of the base's LR, 90% lie between "
          f"×{s.quantile(0.05):.2f} and ×{s.quantile(0.95):.2f}, and the smallest scale is "
          f"×{low['scale']:.3f} ({row_label(low['code'])}, {int(low['n_paths'])} paths): one global LR "
          f"would be off by up to ×{1 / low['scale']:.0f} somewhere.")
    by_paths = space.groupby("n_paths")["scale"].median()
    if len(by_paths) >= 2 and by_paths.is_monotonic_decreasing:
        f.add("More paths always lower the median scale (the right panel): every added path adds to Σ L_p³.")
    return f


def path_law_title(path_fits: pd.DataFrame, what: str) -> str:
    """The path-law figure's title: b of Δz² ∝ (Σ_p L_p³)^b with its interval, against eq. 8's 1."""
    r = path_fits.iloc[0]
    side = interval_side(r["b_lo"], r["b_hi"], 1.0)
    verdict = {"inside": "eq. 8's b = 1 inside", "unknown": "no interval"}.get(side, "eq. 8's b = 1 rejected")
    b = ci(r["b_sumL3"], r["b_lo"], r["b_hi"], 3)
    return f"{what}: b = {b} ({verdict}, n = {int(r['n_graphs'])} graphs)"


def drift_title(drift: Mapping[str, tuple[pd.DataFrame, Mapping[str, float]]], data: str) -> str:
    """The width-transfer figure's title: how far the loss-optimal LR moves over the widths, per readout."""
    parts = [f"×{summary['ratio']:.2g} under the {label}" for label, (_, summary) in drift.items()]
    table = next(iter(drift.values()))[0]
    w0, w1 = int(table["width"].iloc[0]), int(table["width"].iloc[-1])
    moves = ' and '.join(parts)
    return f"Width transfer on {data}: from width {w0} to {w1} the loss-optimal LR moves {moves}"


# -- the maximal-update heuristic (notebook 08) ------------------------------------------------------

def maximal_update(lr_table: pd.DataFrame, heuristic: Mapping[str, float], path_fits: pd.DataFrame,
                   clean_law: pd.DataFrame, spread: pd.DataFrame,
                   drift: Mapping[str, tuple[pd.DataFrame, Mapping[str, float]]]) -> Findings:
    """Notebook 08: width slopes, the path-law exponent b (eq. 8: 1), the spread and the width drift.

    ``lr_table``: ``update_lr_table``; ``heuristic``: each setup's expected width slope;
    ``path_fits``: ``path_law_summary`` of section 4 (first row: all graphs); ``clean_law``:
    ``path_law_by_width``'s table; ``spread``: ``delta_z_spread`` indexed by ``lr_rule``;
    ``drift``: per readout label, ``lr_optimum_drift``'s (table, summary).
    """
    f = Findings()
    parts = []
    for label, row in lr_table.iterrows():
        want = heuristic.get(label, math.nan)
        slope = row["slope_wide"] if np.isfinite(row["slope_wide"]) else row["slope_all"]
        if not np.isfinite(slope):
            parts.append(f"{label}: too few widths for a slope")
            continue
        near = abs(slope - want) <= 0.15
        parts.append(f"{label} {slope:+.2f} (heuristic {want:+.1f}{', close' if near else ', off'})")
    if parts:
        f.add("Width slope of the LR that moves the last vertex by the target Δz² (wide widths where "
              "there are several): " + "; ".join(parts) + ". No intervals: read them as point estimates.")
    if len(path_fits):
        r = path_fits.iloc[0]
        n = int(r["n_graphs"])
        b = ci(r["b_sumL3"], r["b_lo"], r["b_hi"], 3)
        if n <= 4:  # a slope and an intercept on a handful of graphs
            f.add(f"Exponent b of Δz² ∝ (Σ_p L_p³)^b: {b} on only {n} graphs; this run cannot decide b.")
        else:
            side = interval_side(r["b_lo"], r["b_hi"], 1.0)
            verdict = {"inside": "consistent with eq. 8's b = 1",
                       "above": "below eq. 8's b = 1: b = 1 is rejected",
                       "below": "above eq. 8's b = 1: b = 1 is rejected"}.get(side, "without an interval")
            f.add(f"Across {n} graphs (skips mixed in, cross-entropy, offset 3) b = {b}, {verdict}; the "
                  f"law with the lowest AIC is {r['best_law']!r}.")
    blocks = clean_law[clean_law["series"] == "block-only graphs"] if "series" in clean_law else clean_law
    if len(blocks):
        rows = [f"{ci(r['b_sumL3'], r['b_lo'], r['b_hi'], 2)} at width {int(r['width'])} "
                f"(n = {int(r['n_graphs'])}{'' if r['b=1 in CI'] else ', excludes 1'})"
                for _, r in blocks.iterrows()]
        rejected = int((~blocks["b=1 in CI"].astype(bool)).sum())
        verdict = ("b = 1 is rejected at every width" if rejected == len(blocks) else
                   f"b = 1 is outside the interval at {rejected} of {len(blocks)} widths")
        f.add("In the derivation's own setting (block-only graphs, squared error, one example, offset 3) b = "
              + "; ".join(rows) + f": {verdict}.")
        free = blocks.iloc[0]
        bf = ci(free["b_free"], free["b_free_lo"], free["b_free_hi"], 2)
        f.add(f"With the depth offset free, b = {bf} at offset {free['free_offset']:g} (width "
              f"{int(free['width'])}): b and the offset trade off, so the exponent eq. 8 needs depends "
              f"on how depth is counted.")
    if {"shared", "scaled"} <= set(spread.index):
        s, e = spread.loc["shared"], spread.loc["scaled"]
        f.add(f"Eq. 8's scaled LR narrows the spread of Δz² across {int(e['n_graphs'])} graphs from "
              f"{s['max_min_ratio']:.3g}× (one shared LR) to {e['max_min_ratio']:.3g}× "
              f"({s['max_min_ratio'] / e['max_min_ratio']:.3g}× narrower).")
    for label, (table, summary) in drift.items():
        w0, w1 = int(table["width"].iloc[0]), int(table["width"].iloc[-1])
        lo0, hi0 = table["best_lr_lo"].iloc[0], table["best_lr_hi"].iloc[0]
        lo1, hi1 = table["best_lr_lo"].iloc[-1], table["best_lr_hi"].iloc[-1]
        edge = ("; an optimum sits at the grid's edge, so this is a bound" if summary.get("any_at_edge")
                else "")
        if _overlap((0, lo0, hi0), (0, lo1, hi1)):
            verdict = "the two widths' intervals overlap, so this run cannot establish a drift"
        else:
            verdict = "the LR tuned at the small width does not transfer"
        f.add(f"Under the {label} the loss-optimal LR moves ×{summary['ratio']:.2g} from width {w0} to {w1} "
              f"(log-log slope {summary['slope']:+.2f}): {verdict}{edge}.")
    return f


