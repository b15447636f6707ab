"""Findings of the studies: NAS cells (09), which law predicts the maximal LR (11) and the LR
transfer check against the target trained directly (13)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .core import GOOD_FACTOR, MIN_RANKED, Findings, _g, ci, interval_side, plural

if TYPE_CHECKING:
    from ...analysis.law_scores import LawsReport

__all__ = ["check_transfer", "check_transfer_title", "nas_rankings", "nas_title", "which_law"]


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
