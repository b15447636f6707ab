"""Findings of the studies: NAS cells (09), which law predicts the maximal LR (11), the laws under
Adam (12) and the LR transfer check against the target trained directly (13)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .core import GOOD_FACTOR, MIN_RANKED, Findings, _g, ci, interval_side, plural

if TYPE_CHECKING:
    from ...analysis.law_scores import LawsReport

__all__ = ["adam", "adam_depth_title", "adam_laws_title", "adam_width", "adam_width_title", "check_transfer",
           "check_transfer_title",
           "nas_rankings", "nas_title", "which_law"]


# -- NAS cells (notebook 09) ------------------------------------------------------------------------

def nas_rankings(cmp, cmp_mup, results: pd.DataFrame, cell_table: pd.DataFrame) -> Findings:
    """Notebook 09: the architecture-aware recipe against one fixed LR and muP on NAS cells, and why.

    ``cmp``/``cmp_mup``: :func:`~archscale.nas.compare_recipes` (archscale vs fixed, vs mup);
    ``results``: the study's rows; ``cell_table``: :func:`~archscale.nas.describe_cells`.
    """
    f = Findings()
    g = cmp.gain
    n = len(cmp.accuracy)
    better = int((cmp.per_cell["lo"] > 0).sum())
    worse = int((cmp.per_cell["hi"] < 0).sum())
    side = interval_side(g.lo, g.hi, 0.0)
    verdict = {"above": "the architecture-aware recipe trails",
               "below": "the architecture-aware recipe gains",
               "inside": "no difference is established"}.get(side, "no interval")
    f.add(f"Against one fixed LR on {n} cells: mean test-accuracy change {g.mean:+.1f} pp "
          f"[{g.lo:+.1f}, {g.hi:+.1f}]: {verdict} (per cell: {better} better, {worse} worse, "
          f"{n - better - worse} indistinguishable). The paper reports +0.44 pp on CIFAR-10 with the full "
          f"budget.")
    summary = results.groupby("recipe").agg(lr=("lr", "mean"), loss=("train_loss", "mean"),
                                            diverged=("diverged", "sum"))
    if {"archscale", "fixed"} <= set(summary.index) and side == "above":
        a, x = summary.loc["archscale"], summary.loc["fixed"]
        scales = cell_table["lr_scale"]
        why = (f"Why: eq. 8 moved the base cell's LR by ×{scales.min():.2f} to ×{scales.max():.2f} (mean "
               f"LR {a['lr']:.3g} against the fixed {x['lr']:.3g}), and those cells ended with a higher "
               f"training loss ({a['loss']:.2f} against {x['loss']:.2f})")
        if int(x["diverged"]) == 0:
            why += ("; the fixed recipe trained every cell at the base's LR without one divergence, so these "
                    "cells' maximal LRs are at least that: eq. 8 under-estimates them and the scaled LRs "
                    "under-train in this budget")
        f.add(why + ".")
    noise = cmp.noise.set_index("ks") if len(cmp.noise) else cmp.noise
    for row in (cmp.topk.iloc[0],):
        if row["n"] < MIN_RANKED or not np.isfinite(row["tau"]):
            f.add(f"Ranking: {int(row['n'])} cells are too few to decide whether the recipe re-ranks them "
                  f"(Kendall tau {_g(row['tau'], 2)}).")
        elif row["ks"] in noise.index:
            fl = noise.loc[row["ks"]]
            beyond = row["tau"] < fl["tau_min"]
            f.add(f"Ranking of all {int(row['n'])} cells: Kendall tau {row['tau']:+.2f} between the recipes, "
                  f"against the fixed recipe's own seed-vs-seed {fl['tau_min']:+.2f} to "
                  f"{fl['tau_max']:+.2f}: "
                  + ("a re-ranking beyond seed noise." if beyond else "not distinguishable from seed noise."))
    m = cmp_mup.gain
    side = interval_side(m.lo, m.hi, 0.0)
    f.add(f"Against muP: {m.mean:+.1f} pp [{m.lo:+.1f}, {m.hi:+.1f}]: "
          + {"above": "muP does better.", "below": "the architecture-aware recipe does better.",
             "inside": "no difference is established."}.get(side, "no interval."))
    return f


def nas_title(cmp, paper: str = "") -> str:
    """A NAS comparison figure's title: the mean paired gain with its interval, and the per-cell counts."""
    from ...plots.nas import name

    g = cmp.gain
    better = int((cmp.per_cell["lo"] > 0).sum())
    worse = int((cmp.per_cell["hi"] < 0).sum())
    return (f"The {name(cmp.new)} recipe against {name(cmp.old)} on {len(cmp.accuracy)} cells: "
            f"{g.mean:+.1f} pp [{g.lo:+.1f}, {g.hi:+.1f}] test accuracy ({better} better, {worse} worse)"
            + (f" {paper}" if paper else ""))


# -- which law (notebook 11) ------------------------------------------------------------------------

def which_law(reports: Mapping[str, LawsReport], transfers: Sequence, good: float = GOOD_FACTOR) -> Findings:
    """Notebook 11: the best zero-shot law per sweep, and for residual nets the branches or the LR.

    ``reports``: :class:`~archscale.analysis.law_scores.LawsReport` per sweep; ``transfers``:
    :class:`~archscale.analysis.depth_transfer.DepthTransfer` per residual parametrization.
    """
    from ...experiments.which_law import findings as law_lines
    from ...experiments.which_law import laws_table

    f = Findings()
    table = laws_table(reports) if reports else pd.DataFrame()
    for label, line in zip(reports, law_lines(reports, good) if reports else []):
        t = table[table["sweep"] == label]
        best = t.loc[t["zero-shot error_factor"].idxmin()]
        n = int(best["zero-shot n"])
        if n < MIN_RANKED:
            miss = _g(best["zero-shot error_factor"], 2)
            f.add(f"{label}: with {plural(n, 'configuration')} this run cannot decide which law predicts "
                  f"best (the smallest zero-shot miss, ×{miss}, was {best['law']}'s).")
        else:
            f.add(re.split(r" (?:Held out|Zero-shot ranking): ", line)[0])
    if not transfers:
        return f
    scored = []
    for t in transfers:
        rows = t.table[~t.table["is_base"]]
        missed = rows[(rows["ratio_lo"] > 1) | (rows["ratio_hi"] < 1)]
        d = t.deepest
        scored.append((t, missed, d))
        f.add(f"{t.label}: at K = {int(d['depth'])} measured / predicted = "
              f"{ci(d['ratio'], d['ratio_lo'], d['ratio_hi'], 2)}; "
              + (f"the prediction misses at K = {', '.join(str(int(k)) for k in missed['depth'])}."
                 if len(missed) else "every depth's interval contains 1."))
    branch = [s for s in scored if s[0].law == "constant"]
    laws = [s for s in scored if s[0].law != "constant"]
    if branch and laws:
        b = branch[0]
        if b[1].empty and all(len(s[1]) for s in laws):
            f.add("**For residual nets, scale the branches, not the LR:** with Depth-muP branches one LR "
                  "held at every depth, while every depth law missed somewhere.")
        elif b[1].empty:
            f.add("With Depth-muP branches one LR held at every depth; some depth law also held, so this run "
                  "does not separate the two approaches.")
        else:
            f.add("Depth-muP's one LR also missed at some depth: this run does not support scaling the "
                  "branches over moving the LR.")
    return f


# -- the LR transfer check against the truth (notebook 13) -------------------------------------------
_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def _verdict(r) -> str:
    """``contains``, ``misses`` or ``unknown`` (no truth or no answer interval) for one row."""
    side = interval_side(r["answer_lo"], r["answer_hi"], r["truth"])
    if side == "unknown" or not np.isfinite(r["truth"]):
        return "unknown"
    return "contains" if side == "inside" else "misses"


def check_transfer(table: pd.DataFrame, good: float = GOOD_FACTOR) -> Findings:
    """Notebook 13: per family and optimizer, ``archscale.check``'s answer at the target with its
    interval and source, which laws agree (or that none does), and whether the answer's interval
    contains the optimum measured by training the target directly; then how many answers held.

    ``table``: :meth:`archscale.experiments.check_transfer.CheckTransfer.table` (one row per case:
    ``family, optimizer, answer, answer_lo, answer_hi, source, agreeing, truth, truth_lo, truth_hi,
    truth_edge, truth_lrs, sizes, target, n_seeds, noise_floor``).
    """
    f = Findings()
    verdicts = []
    for _, r in table.iterrows():
        opt = _OPTIMIZERS.get(str(r["optimizer"]), str(r["optimizer"]))
        sizes = ", ".join(f"{s:g}" for s in r["sizes"])
        agreeing = list(r["agreeing"])
        if agreeing:
            laws = (f"{r['source']} agrees with depths {sizes} (agreeing: {', '.join(agreeing)}; noise floor "
                    f"×{_g(r['noise_floor'])})")
        else:
            laws = (f"no law agrees with depths {sizes} (none within ×{good:g} or the noise floor "
                    f"×{_g(r['noise_floor'])}), so the answer is the fitted trend's")
        head = (f"**{r['family']}, {opt}**: check answers {ci(r['answer'], r['answer_lo'], r['answer_hi'])} "
                f"at depth {r['target']:g}; {laws}. Trained directly ({plural(int(r['truth_lrs']), 'LR')}, "
                f"{plural(int(r['n_seeds']), 'seed')}), depth {r['target']:g}'s optimum is "
                f"{ci(r['truth'], r['truth_lo'], r['truth_hi'])}")
        verdict = _verdict(r)
        verdicts.append(verdict)
        if verdict == "unknown":
            tail = ": this run cannot judge the answer (no optimum or no interval)."
        else:
            ratio = r["answer"] / r["truth"]
            overlap = r["answer_lo"] <= r["truth_hi"] and r["truth_lo"] <= r["answer_hi"]
            if verdict == "contains":
                tail = f": the answer's interval contains it (answer / truth = {_g(ratio, 2)})."
            else:
                side = "high" if ratio > 1 else "low"
                tail = (f": **the answer's interval misses it**, ×{_g(max(ratio, 1 / ratio), 2)} too {side}"
                        + (" (the truth's own interval reaches the answer's)." if overlap
                           else " (the two intervals do not overlap)."))
        if isinstance(r["truth_edge"], str) and r["truth_edge"]:
            tail = tail[:-1] + (f"; the direct optimum sits at its grid's {r['truth_edge']} edge: "
                                "only a bound.")
        f.add(head + tail)
    judged = [v for v in verdicts if v != "unknown"]
    if judged:
        held = judged.count("contains")
        f.add(f"The answer's interval contained the directly measured optimum in {held} of "
              f"{plural(len(judged), 'case')}" + (f" ({len(verdicts) - len(judged)} could not be judged)."
                                                   if len(judged) < len(verdicts) else "."))
    return f


def check_transfer_title(table: pd.DataFrame) -> str:
    """A figure title stating the finding: in how many cases the answer's interval held the truth."""
    verdicts = [_verdict(r) for _, r in table.iterrows()]
    judged = [v for v in verdicts if v != "unknown"]
    target = ", ".join(sorted({f"{t:g}" for t in table["target"]}))
    sizes = sorted({s for ss in table["sizes"] for s in ss})
    return (f"LR checked at depth {', '.join(f'{s:g}' for s in sizes)} -> {target}: the answer's interval "
            f"held the directly measured optimum in {judged.count('contains')} of {len(judged)} cases")

# -- Adam (notebook 12) -----------------------------------------------------------------------------

#: The depth exponents the Adam findings test: eq. 8 (SGD) and Depth-muP's Adam rule.
DEPTH_CLAIMS = {-1.5: "eq. 8's -3/2", -0.5: "Depth-muP's Adam -1/2"}


def _apart(a, b) -> str:
    """Whether fit ``a``'s interval lies wholly ``above`` or ``below`` fit ``b``'s, or they ``overlap``."""
    return "above" if a.lo > b.hi else "below" if a.hi < b.lo else "overlap"


def _exponent_sentence(label: str, fit) -> str:
    inside = [name for b, name in DEPTH_CLAIMS.items() if fit.contains(b)]
    outside = [name for b, name in DEPTH_CLAIMS.items() if not fit.contains(b)]
    head = (f"{label}: max LR ∝ L^b with b = {ci(fit.exponent, fit.lo, fit.hi)} over L = "
            f"{int(fit.table['depth'].min())}..{int(fit.table['depth'].max())} "
            f"({plural(fit.n_depths, 'depth')}, {plural(fit.n_seeds, 'seed')})")
    if not (np.isfinite(fit.lo) and np.isfinite(fit.hi)) or fit.n_depths < 3:
        return head + "; this preset cannot decide the exponent (no interval or too few depths)."
    if len(inside) == len(DEPTH_CLAIMS):
        return head + (f"; its interval holds both {' and '.join(inside)}: this preset cannot decide "
                       "between them.")
    if not inside:
        return head + f": its interval rejects both {' and '.join(outside)}."
    return head + f": consistent with {inside[0]}; rejects {' and '.join(outside)}."


def adam(run, good: float = GOOD_FACTOR) -> Findings:
    """Notebook 12: the depth exponent per optimizer, whether Adam's differs from SGD's, the best law
    under AdamW per sweep (with whether any predicts within ``good``), the kernel exponent under AdamW.

    ``run``: :class:`~archscale.experiments.adam.AdamRun`.
    """
    from ...experiments.which_law import findings as law_lines
    from ...experiments.which_law import laws_table

    f = Findings()
    for label, fit in run.exponents.items():
        f.add(_exponent_sentence(label, fit))
    fits = run.exponents
    adam_fit = next((v for k, v in fits.items() if "Adam" in k), None)
    sgd_fit = fits.get("SGD")
    if adam_fit is not None and sgd_fit is not None:
        pair = f"{adam_fit.exponent:.2f} against {sgd_fit.exponent:.2f}"
        f.add({"above": f"AdamW's maximal LR falls more slowly with depth than plain SGD's (b {pair}, "
                        f"intervals apart).",
               "below": f"AdamW's maximal LR falls faster with depth than plain SGD's (b {pair}, intervals "
                        f"apart).",
               "overlap": f"Whether AdamW's depth exponent differs from plain SGD's this preset cannot "
                          f"decide ({pair}; the intervals overlap)."}[_apart(adam_fit, sgd_fit)])
    table = laws_table(run.reports) if run.reports else pd.DataFrame()
    for label, line in zip(run.reports, law_lines(run.reports, good) if run.reports else []):
        t = table[table["sweep"] == label]
        best = t.loc[t["zero-shot error_factor"].idxmin()]
        n = int(best["zero-shot n"])
        floor = run.reports[label].laws[0].zero_shot.agreement.noise_floor
        if n < MIN_RANKED:
            f.add(f"{label}: with {plural(n, 'configuration')} this preset cannot decide which law predicts "
                  f"best (the smallest zero-shot miss, ×{_g(best['zero-shot error_factor'], 2)}, was "
                  f"{best['law']}'s).")
        else:
            f.add(re.split(r" (?:Held out|Zero-shot ranking): ", line)[0]
                  + f" The seed-noise floor of the error factor is ×{_g(floor, 2)}.")
    if run.kernel is not None:
        p = run.kernel.pooled
        side = interval_side(p["lo"], p["hi"], -1.0)
        text = {"inside": "consistent with eq. 9's -1 (its interval holds it)",
                "below": "shallower than eq. 9's -1 (its interval lies above -1)",
                "above": "steeper than eq. 9's -1 (its interval lies below -1)",
                "unknown": "without an interval: this preset cannot decide it"}[side]
        f.add(f"Kernel size under AdamW: pooled kernel exponent {ci(p['exponent'], p['lo'], p['hi'])} over "
              f"{p['n_graphs']} graphs x {p['n_kernels']} kernels, {plural(p['n_seeds'], 'seed')}: {text}.")
    for line in adam_width(run).items if getattr(run, "widths", None) else []:
        f.add(line)
    return f


def _width_sentence(label: str, fit, predicted: float | None) -> str:
    t = fit.table
    w0, w1 = int(t["width"].iloc[0]), int(t["width"].iloc[-1])
    head = (f"Width under AdamW, {label}: max LR ∝ width^b with b = {ci(fit.exponent, fit.lo, fit.hi)} "
            f"(log2 max LR per doubling of width) over widths {w0}..{w1} "
            f"({plural(fit.n_sizes, 'width')}, {plural(fit.n_seeds, 'seed')}; max LR "
            f"{_g(t['measured'].iloc[0], 3)} at width {w0}, {_g(t['measured'].iloc[-1], 3)} at {w1})")
    if predicted is None:
        return head + "."
    if not (np.isfinite(fit.lo) and np.isfinite(fit.hi)) or fit.n_sizes < 3:
        return head + (f"; muP predicts {predicted:g}, which this preset cannot check (no interval or too "
                       f"few widths).")
    side = interval_side(fit.lo, fit.hi, predicted)
    if side == "inside":
        return head + f": consistent with muP's {predicted:g} (its interval holds it)."
    where = "above" if side == "below" else "below"
    return head + (f": it disagrees with muP's prediction {predicted:g} (the whole interval lies {where} "
                   f"it).")


def adam_width(run) -> Findings:
    """Notebook 12's width section: each arm's width exponent against muP's prediction, and whether the
    rule flattens the drift (the intervals apart)."""
    from ...analysis.depth_exponent import MUP_ADAM_WIDTH_EXPONENTS

    f = Findings()
    for label, fit in run.widths.items():
        f.add(_width_sentence(label, fit, MUP_ADAM_WIDTH_EXPONENTS.get(label)))
    fits = list(run.widths.values())
    if len(fits) == 2:
        one, rule = fits
        pair = f"{rule.exponent:.2f} against {one.exponent:.2f}"
        f.add({"above": f"muP's Adam rule flattens the drift of the maximal LR with width (b {pair} with one "
                        f"LR, intervals apart).",
               "below": f"muP's Adam rule makes the maximal LR fall faster with width (b {pair} with one LR, "
                        f"intervals apart).",
               "overlap": f"Whether muP's Adam rule changes the drift with width this preset cannot decide "
                          f"({pair}; the intervals overlap)."}[_apart(rule, one)])
    return f


def adam_width_title(widths) -> str:
    """The width figure's title: each arm's width exponent with its interval."""
    parts = [f"{k} {v.exponent:.2f} [{v.lo:.2f}, {v.hi:.2f}]" for k, v in widths.items()]
    head = "AdamW: log2 max LR per doubling of width (muP: -1 with one LR, 0 with its rule):\n"
    return head + "; ".join(parts)


def adam_depth_title(exponents) -> str:
    """The depth-exponent figure's title: each optimizer's exponent with its interval."""
    parts = [f"{k} {v.exponent:.2f} [{v.lo:.2f}, {v.hi:.2f}]" for k, v in exponents.items()]
    return "Depth exponent b of max LR ∝ L^b on MLP chains:\n" + "; ".join(parts)


def adam_laws_title(reports) -> str:
    """The laws-under-Adam figure's title: per sweep, the best zero-shot law and its error factor."""
    parts = []
    for label, rep in reports.items():
        best = min(rep.laws, key=lambda r: r.zero_shot.agreement.estimate["error_factor"])
        a = best.zero_shot.agreement
        parts.append(f"{label.replace(', AdamW', '')}: {best.name} ×{a.estimate['error_factor']:.2f} "
                     f"[{a.lo['error_factor']:.2f}, {a.hi['error_factor']:.2f}]")
    return "Under AdamW the best zero-shot law misses by:\n" + "; ".join(parts)
