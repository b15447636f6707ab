"""Findings of the max-LR sweeps: MLP depth (04), topologies (05), recipes (05b), CNNs (06), GELU (07)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ...analysis.compare import RECIPE_LEVELS, recipe_name
from ..tables import row_label
from .core import (
    MIN_RANKED,
    Findings,
    _calibration_sentence,
    _deepest,
    _g,
    _overlap,
    agreement_sentences,
    cap,
    ci,
    interval_side,
    plural,
)

__all__ = ["COMPARED", "apply_depth", "chance_sentence", "cnn_kernels", "depth_offset", "factorial_title",
           "gelu", "gelu_title", "kernel_title", "mlp_depth", "mlp_topology", "padding_sentence",
           "recipe_factorial", "recommended_recipe"]



def mlp_depth(exp) -> Findings:
    """Notebook 04: eq. 8 on chains of increasing depth."""
    from ...experiments.maxlr import PAPER

    comp = next(iter(exp.comparisons.values()))
    f = Findings(agreement_sentences(comp, "MLP depth", paper=PAPER["mlp_depth"]["all"]))
    deep = _deepest(comp)
    if deep:
        f.add(cap(deep) + ".")
    return f


def mlp_topology(exp, cal) -> Findings:
    """Notebook 05: eq. 8 on DAG topologies, and the path law calibrated on half of the graphs.

    ``cal``: :func:`~archscale.analysis.calibrate.calibrate`'s result, or the error it raised.
    """
    from ...experiments.maxlr import PAPER

    comp = next(iter(exp.comparisons.values()))
    f = Findings(agreement_sentences(comp, "MLP topologies", paper=PAPER["mlp_topology"]["all"]))
    t = comp.table[~comp.table["is_base"] & np.isfinite(comp.table["measured"])]
    if len(t):
        miss = np.log(t["measured"] / t["predicted"])
        worst = t.loc[miss.abs().idxmax()]
        f.add(f"The largest miss is {row_label(worst['graph'])}: measured {_g(worst['measured'])}, predicted "
              f"{_g(worst['predicted'])} (×{_g(worst['measured'] / worst['predicted'], 2)}).")
    f.add(_calibration_sentence(cal))
    return f


def gelu(exp, cnn, cnn_kernels=None) -> Findings:
    """Notebook 07: the rule unchanged on GELU networks (depth, topology, CNN)."""
    from ...experiments.maxlr import GROUP_NAMES, PAPER

    f = Findings()
    paper = PAPER.get(exp.name, {})
    for key, comp in exp.comparisons.items():
        name = "GELU MLP " + GROUP_NAMES.get(key, key)
        f.items += agreement_sentences(comp, name, paper=paper.get(key))[:2]
    cnn_comp = next(iter(cnn.comparisons.values()))
    f.items += agreement_sentences(cnn_comp, "GELU CNN", law="eq. 9")[:2]
    if cnn_kernels is not None:
        f.add(_kernel_sentence(cnn_kernels))
    return f


def gelu_title(exp, cnn) -> str:
    """Fig. 7's title: eq. 8's typical miss on each GELU panel, with its n."""
    from ...experiments.maxlr import GROUP_NAMES

    parts = []
    for name, comp in [*((GROUP_NAMES.get(k, k).split(" (")[0], c) for k, c in exp.comparisons.items()),
                       *(("CNN", c) for c in cnn.comparisons.values())]:
        a = comp.agreement
        parts.append(f"{name} ×{_g(a.estimate['error_factor'], 2)} (n = {a.n})")
    return "Fig. 7 · GELU, the rule unchanged: eq. 8/9 miss by " + ", ".join(parts)


# -- CNNs and the kernel factor (notebook 06) ------------------------------------------------------------

def _kernel_sentence(kx) -> str:
    p = kx.pooled
    est = (p["exponent"], p["lo"], p["hi"])
    has_eq9 = interval_side(p["lo"], p["hi"], kx.predicted) == "inside"
    has_zero = interval_side(p["lo"], p["hi"], 0.0) == "inside"
    where = (f"pooled over {p['n_graphs']} graphs and {p['n_seeds']} seeds the kernel exponent is "
             f"{ci(*est, digits=2)}")
    if p["n_graphs"] < 2 or not np.isfinite(p["lo"]):
        return (f"Eq. 9's kernel factor: {where}; too few graphs or seeds for an interval, so this run "
                f"cannot decide it.")
    if has_eq9 and has_zero:
        return (f"Eq. 9's kernel factor: {where}, which contains both eq. 9's {kx.predicted:g} and 0: this "
                f"run cannot tell a 1/q factor from no kernel dependence.")
    if has_eq9:
        return f"Eq. 9's kernel factor holds: {where}, which contains {kx.predicted:g} and excludes 0."
    if has_zero:
        return (f"The kernel barely moves the maximal LR: {where}, which contains 0 and excludes eq. 9's "
                f"{kx.predicted:g}.")
    return f"Eq. 9's kernel factor is rejected: {where}, which excludes both {kx.predicted:g} and 0."


def kernel_title(kx, data: str) -> str:
    """The kernel-exponent figure's title: the pooled exponent against eq. 9's and 0."""
    p = kx.pooled
    est = ci(p["exponent"], p["lo"], p["hi"], 2)
    has_eq9 = interval_side(p["lo"], p["hi"], kx.predicted) == "inside"
    has_zero = interval_side(p["lo"], p["hi"], 0.0) == "inside"
    verdict = ("cannot tell eq. 9's factor from none" if has_eq9 and has_zero else
               "consistent with eq. 9" if has_eq9 else "the kernel barely matters" if has_zero else
               "neither eq. 9 nor flat")
    return (f"Eq. 9's kernel factor on {data}: pooled exponent {est} over {p['n_graphs']} graphs "
            f"(eq. 9: {kx.predicted:g}): {verdict}")


def padding_sentence(change: pd.Series, q_lo: int, q_hi: int, flat: float = 1.25) -> str:
    """What the moment check says: per image size, how far the last vertex's E[z²] moves from ``q_lo`` to
    ``q_hi`` (``change``: that ratio indexed by data set first), and so which reading of it applies."""
    ranges = {str(d): (float(g.min()), float(g.max())) for d, g in change.groupby(level=0)}
    parts = "; ".join(f"{d}: ×{lo:.2f} to ×{hi:.2f}" for d, (lo, hi) in ranges.items())
    moving = [d for d, (lo, hi) in ranges.items() if lo < 1 / flat or hi > flat]
    falling = [d for d, (lo, hi) in ranges.items() if hi < 1]
    if not moving:
        verdict = f"the forward signal stays within a factor {flat:g} of flat in q on every data set"
    elif falling and len(moving) == len(falling):
        verdict = (f"the signal falls with q on {', '.join(falling)} only: padding, so the kernel sweep "
                   f"belongs on the larger images")
    else:
        verdict = (f"the signal moves with q on {', '.join(moving)}: on the larger images too, which points "
                   f"at the small width's random per-layer gain rather than padding (it shrinks as the width "
                   f"grows)")
    return (f"Moment check, the last vertex's E[z²] from q = {q_lo} to q = {q_hi} over the graphs and "
            f"recipes probed: {parts}; {verdict}.")


def chance_sentence(results: pd.DataFrame, n_classes: int, metric: str = "train_loss") -> str | None:
    """How far the best seed-mean loss of each graph got below chance, ln(n_classes) (classification)."""
    if n_classes < 2 or metric not in results.columns:
        return None
    chance = math.log(n_classes)
    ok = results[~results["diverged"].astype(bool)] if "diverged" in results.columns else results
    keys = [c for c in ("graph", "kernel_size", "width") if c in ok.columns]
    best = ok.groupby([*keys, "lr"])[metric].mean().groupby(level=keys).min()
    if best.empty:
        return None
    lo, hi = float(best.min()), float(best.max())
    share = hi / chance
    if share > 0.8:
        verdict = ("the networks barely learned in this budget, so their maximal LRs rest on small loss "
                   "differences")
    else:
        verdict = "every configuration learned well below chance"
    return (f"Best training loss per configuration: {lo:.2f} to {hi:.2f}, against chance ln {n_classes} = "
            f"{chance:.2f}: {verdict}.")


def cnn_kernels(exp, kx, cal, coverage: Mapping[int, Mapping[int, float]] | None = None,
                n_classes: int = 0, moment_change: pd.Series | None = None) -> Findings:
    """Notebook 06: eq. 9 on CNN topologies x kernels, its kernel factor alone, and the calibration.

    ``coverage``: image size -> kernel -> share of a kernel's taps inside the image
    (:func:`archscale.probe.padding_coverage`); ``n_classes`` draws the chance comparison;
    ``moment_change``: the moment check's largest-over-smallest-kernel ratio of the last vertex's
    E[z²], indexed by data set first (:func:`padding_sentence`).
    """
    from ...experiments.maxlr import PAPER

    comp = next(iter(exp.comparisons.values()))
    f = Findings(agreement_sentences(comp, "CNN topologies × kernels", law="eq. 9",
                                     paper=PAPER["cnn_kernel_topology"]["all"]))
    chance = chance_sentence(exp.results, n_classes)
    if chance:
        f.add(chance)
    f.add(_kernel_sentence(kx))
    if coverage:
        parts = [f"{size}×{size}: " + ", ".join(f"{v:.2f}" for v in shares.values())
                 for size, shares in coverage.items()]
        kernels = ", ".join(str(q) for q in next(iter(coverage.values())))
        f.add(f"Share of a q × q kernel's taps inside the image (q = {kernels}): {'; '.join(parts)}: the "
              f"smaller the image, the more a large kernel reads padding.")
    if moment_change is not None and len(moment_change):
        qs = sorted(int(q) for q in comp.table["kernel_size"].unique())
        f.add(padding_sentence(moment_change, qs[0], qs[-1]))
    f.add(_calibration_sentence(cal, law="eq. 9"))
    return f


# -- the recipe factorial (notebook 05b) -------------------------------------------------------------------

#: The two factorial recipes set side by side: the paper's stated one and the one closest to the reference
#: code's (whose own init, the source rule in fan-out mode, is not a level of the factorial).
COMPARED = {("paper", "archscale", "mean_field"): "the paper's stated recipe",
            ("reference", "source", "reference"): "the recipe closest to the reference code's"}


def _name(row: pd.Series) -> str:
    return recipe_name({"layout": row["layout"], "init": row["init"], "readout": row["readout"]})


def recommended_recipe(cells: pd.DataFrame) -> tuple[pd.Series, list[pd.Series]]:
    """The recipe with the smallest error factor, and the others whose error-factor interval overlaps it."""
    ok = cells[np.isfinite(cells["error_factor"])]
    best = ok.loc[ok["error_factor"].idxmin()]
    key = (best["error_factor"], best["error_factor_lo"], best["error_factor_hi"])
    ties = [r for _, r in ok.iterrows() if r.name != best.name
            and _overlap(key, (r["error_factor"], r["error_factor_lo"], r["error_factor_hi"]))]
    return best, ties


def factorial_title(cells: pd.DataFrame) -> str:
    """The factorial figure's title: the factor that moves eq. 8's miss most, its best and worst levels."""
    top, _, good, bad = _factor_spread(cells)
    means = cells.groupby(top)["error_factor"].mean()
    best, ties = recommended_recipe(cells)
    single = ("no single recipe stands out" if ties
              else f"{_name(best)} misses least (×{best['error_factor']:.2f})")
    return (f"Recipe factorial: the {top} moves eq. 8's miss most, ×{means[good]:.2f} with a "
            f"{RECIPE_LEVELS[top][good]} against ×{means[bad]:.2f} with a {RECIPE_LEVELS[top][bad]}; "
            f"{single}")


def _good_levels(cells: pd.DataFrame, factor: str, within: float = 1.1) -> list[str]:
    """The levels of ``factor`` whose mean error factor is within ``within`` times the best level's."""
    means = cells.groupby(factor)["error_factor"].mean().sort_values()
    return [RECIPE_LEVELS[factor].get(str(k), str(k)) for k, v in means.items()
            if v <= within * means.iloc[0]]


def _factor_spread(cells: pd.DataFrame) -> tuple[str, float, str, str]:
    """The factor whose levels' mean error factors differ most: (factor, spread, best level, worst level)."""
    spread = {}
    for factor in RECIPE_LEVELS:
        if factor not in cells.columns:
            continue
        means = cells.groupby(factor)["error_factor"].mean()
        spread[factor] = (float(means.max() - means.min()), str(means.idxmin()), str(means.idxmax()))
    top = max(spread, key=lambda k: spread[k][0])
    return (top, *spread[top])


def recipe_factorial(cells: pd.DataFrame, link: pd.DataFrame | None = None) -> Findings:
    """Notebook 05b: which recipe to use, which factor matters, and the paper's recipe beside the reference's.

    ``cells``: :attr:`~archscale.experiments.maxlr.Factorial.cells`; ``link``: its ``variance_link()``.
    """
    f = Findings()
    n = int(cells["n"].max())
    best, ties = recommended_recipe(cells)
    name = _name(best)
    ef = ci(best["error_factor"], best["error_factor_lo"], best["error_factor_hi"], 2)
    top, d, good, bad = _factor_spread(cells)
    level = RECIPE_LEVELS[top][good]
    means = cells.groupby(top)["error_factor"].mean()
    if n < MIN_RANKED:
        f.add(f"With {n} graphs per recipe this run cannot recommend a recipe: the smallest miss, ×{ef}, was "
              f"{name}'s, and {len(ties)} of the other {len(cells) - 1} recipes overlap it.")
    elif not ties:
        f.add(f"**Recommendation: train with {name}.** Its eq. 8 predictions miss by ×{ef} (n = {n} graphs), "
              f"an interval below every other recipe's.")
    else:
        same = sum(r[top] == best[top] for r in ties)
        levels = _good_levels(cells, top)
        avg = ", ".join(f"×{means[k]:.2f}" for k in means.sort_values().index[:len(levels)])
        worst = RECIPE_LEVELS[top][bad]
        f.add(f"**Recommendation: train with a {' or a '.join(levels)}, not a {worst}.** The {top} moves "
              f"eq. 8's miss most: {avg} on average against ×{means[bad]:.2f} with the {worst}. The single "
              f"smallest miss, ×{ef} (n = {n} graphs), was {name}'s, but {len(ties)} of the other "
              f"{len(cells) - 1} recipes ({same} with its {top}) overlap it, so this run does not single out "
              f"one recipe.")
    if n < MIN_RANKED or not ties:
        f.add(f"The {top} matters most: averaged over the other factors, the {level} misses least and the "
              f"{RECIPE_LEVELS[top][bad]} most (mean error factors {d:.2f} apart).")
    rows = {}
    for key, label in COMPARED.items():
        sel = cells[(cells["layout"] == key[0]) & (cells["init"] == key[1]) & (cells["readout"] == key[2])]
        if len(sel):
            rows[label] = sel.iloc[0]
    if len(rows) == 2:
        (_, p), (ra, r) = rows.items()
        pr = (p["pearson_log"], p["pearson_log_lo"], p["pearson_log_hi"])
        rr = (r["pearson_log"], r["pearson_log_lo"], r["pearson_log_hi"])
        verdict = ("the intervals overlap: this run cannot tell them apart" if _overlap(pr, rr)
                   else "the intervals do not overlap")
        f.add(f"{cap(_name(p))}: log r {ci(*pr, digits=2)}, error ×{_g(p['error_factor'], 2)}; "
              f"{ra} ({_name(r)}): log r {ci(*rr, digits=2)}, error ×{_g(r['error_factor'], 2)}; {verdict}.")
    if link is not None and len(link):
        key = ("paper", "archscale", "mean_field")
        sel = link[(link["layout"] == key[0]) & (link["init"] == key[1]) & (link["readout"] == key[2])]
        if len(sel):
            lk = sel.iloc[0]
            side = interval_side(lk["partial_pred_lo"], lk["partial_pred_hi"], 0.0)
            moment = ci(lk["spearman_moment"], lk["spearman_moment_lo"], lk["spearman_moment_hi"], 2)
            partial = ci(lk["partial_pred"], lk["partial_pred_lo"], lk["partial_pred_hi"], 2)
            follows = interval_side(lk["spearman_moment_lo"], lk["spearman_moment_hi"], 0.0) != "inside"
            if side == "inside" and follows:
                f.add(f"Under the paper's stated recipe the maximal LR follows the readout's input second "
                      f"moment (Spearman {moment}); given that moment, eq. 8 adds nothing this run can "
                      f"detect (partial r {partial}).")
            elif side == "inside":
                f.add(f"Under the paper's stated recipe this run cannot tell what the maximal LR follows: "
                      f"Spearman with the readout's input second moment {moment}, partial r with eq. 8 "
                      f"{partial}; both intervals contain 0.")
            elif side != "unknown":
                f.add(f"Under the paper's stated recipe eq. 8 carries information beyond the readout's input "
                      f"second moment (partial r {partial}).")
    return f




# -- notebooks 02 and 10 ---------------------------------------------------------------------------------

def depth_offset(fit: pd.DataFrame, reference: int) -> Findings:
    """Notebook 02: which depth offset fits the measured maximal LRs, against the reference's, with
    intervals; "cannot separate" when they overlap. ``fit``: :func:`archscale.analysis.fit_offset`."""
    out = Findings()
    rows = fit.set_index("offset")
    best = int(fit.loc[fit["log_rmse_fit"].idxmin(), "offset"])
    b = rows.loc[best]
    ef_b = (b["error_factor"], b["error_factor_lo"], b["error_factor_hi"])
    n = int(b["n"])
    out.add(f"Of the offsets {', '.join(str(int(o)) for o in rows.index)}, {best} fits the measured maximal "
            f"LRs best: eq. 8 then misses by ×{ci(*ef_b, digits=2)} ({plural(n, 'non-base graph')}).")
    if best != reference and reference in rows.index:
        r = rows.loc[reference]
        ef_r = (r["error_factor"], r["error_factor_lo"], r["error_factor_hi"])
        verdict = ("the intervals overlap, so this sweep does not separate the two offsets and archscale "
                   "keeps the reference's" if ef_b[1] <= ef_r[2] and ef_r[1] <= ef_b[2] else
                   "the intervals do not overlap: this sweep prefers the best offset")
        out.add(f"The reference convention's offset {reference} misses by ×{ci(*ef_r, digits=2)}; {verdict}.")
    else:
        out.add(f"The best-fitting offset is the reference convention's ({reference}).")
    if n < MIN_RANKED:
        out.add(f"With {plural(n, 'graph')} the offsets are ranked on very few points; a longer depth sweep "
                f"would settle it.")
    return out


def apply_depth(comparison, measured: pd.DataFrame, what: str = "eq. 8 moving the 1-block net's maximal LR "
                "to deeper nets") -> Findings:
    """Notebook 10: how well eq. 8 transfers the maximal LR across depth on a user's module, and the
    miss at the deepest net. ``measured``: one row per depth (``blocks``, ``predicted max LR``,
    ``measured max LR``)."""
    out = Findings(agreement_sentences(comparison, what))
    deep = measured.sort_values("blocks").iloc[-1]
    ratio = float(deep["measured max LR"]) / float(deep["predicted max LR"])
    if math.isfinite(ratio) and int(deep["blocks"]) > 1:
        side = "above" if ratio > 1 else "below"
        k = int(deep["blocks"])
        out.add(f"At K = {k} block{'s' if k != 1 else ''} the measured maximal LR is "
                f"{_g(float(deep['measured max LR']))}, ×{_g(ratio, 2)} the prediction ({side} it): the "
                f"plan's trust line carries this kind of miss for residual graphs.")
    return out
