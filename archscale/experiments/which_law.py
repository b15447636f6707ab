"""Which law predicts the maximal LR? Every law of :mod:`archscale.core.laws` on the sweeps of notebook 11.

:func:`run_laws` runs (or reloads: the sweeps are resumable and shared with notebooks 04-07) the
bundled MLP depth, MLP topology, GELU and CNN sweeps of a preset through
:func:`archscale.experiments.maxlr.run_experiment` and scores every law on each with
:func:`~archscale.analysis.law_scores.compare_laws`. :func:`laws_table` lays the scores side by side
and :func:`findings` turns them into sentences that carry their numbers, intervals and n,
including where no law predicts within a given factor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.agreement import against_factor
from ..analysis.calibrate import can_split
from ..analysis.law_scores import LawsReport, compare_laws
from ..core import validate
from .maxlr import Experiment, run_experiment

__all__ = ["SWEEPS", "LawsRun", "findings", "laws_table", "run_laws", "score_laws"]

#: The sweeps of the head-to-head: label -> bundled experiment name (notebooks 04, 05, 07, 06).
SWEEPS: dict[str, str] = {"MLP depth": "mlp_depth", "MLP topology": "mlp_topology", "GELU": "gelu",
                          "CNN topology x kernel": "cnn_kernel_topology"}


@dataclass
class LawsRun:
    """The experiments and each one's laws report, by sweep label."""

    experiments: dict[str, Experiment]
    reports: dict[str, LawsReport]
    notes: list[str]

    def describe(self) -> str:
        return "\n".join([*(exp.describe() for exp in self.experiments.values()), *self.notes])


def run_laws(preset: str = "quick", *, dataset: str | None = None, data_dir: str | None = None,
             device: str = "cpu", runs_dir: str | os.PathLike = "runs", holdout: float = 0.5, seed: int = 0,
             n_boot: int = 1000, progress: bool = True) -> LawsRun:
    """Run (or reload) every sweep of :data:`SWEEPS` at ``preset`` and score every law on each.

    A sweep whose non-base graphs cannot be split into two halves of at least two graphs at the
    ``holdout`` share is scored zero-shot only, and a note says so.
    """
    holdout = validate.number(holdout, "holdout", minimum=0.0, maximum=1.0, example="0.5")
    experiments, reports = {}, {}
    notes: list[str] = []
    for label, name in SWEEPS.items():
        exp = run_experiment(name, preset, dataset=dataset, data_dir=data_dir, device=device,
                             runs_dir=runs_dir, progress=progress)
        experiments[label] = exp
        reports[label] = score_laws(label, exp, notes, holdout=holdout, seed=seed, n_boot=n_boot)
    return LawsRun(experiments, reports, notes)


def score_laws(label: str, exp: Experiment, notes: list[str], *, holdout: float = 0.5, seed: int = 0,
               n_boot: int = 1000) -> LawsReport:
    """Every law on one experiment: held out at ``holdout`` when its non-base graphs split two and two,
    else zero-shot only, with a line in ``notes`` saying so."""
    n = exp.results["graph"].nunique() - 1
    share = holdout if can_split(n, holdout) else 0.0
    if share != holdout:
        notes.append(f"{label}: {n} non-base graph(s), too few to hold out a share of {holdout:g} with "
                     f"two or more graphs on each side; scored zero-shot only")
    return compare_laws(exp.results, exp.spec.base, holdout=share, seed=seed, n_boot=n_boot)


def laws_table(reports: Mapping[str, LawsReport]) -> pd.DataFrame:
    """One row per sweep and law: zero-shot and held-out (calibrated) error factor and bias, intervals, n."""
    rows = []
    for label, rep in reports.items():
        for rank, r in enumerate(rep.laws, 1):
            row = {"sweep": label, "law": r.name, "rank (held out)": rank}
            for kind, comp in (("zero-shot", r.zero_shot), ("held-out", r.calibrated)):
                for metric in ("error_factor", "bias"):
                    for suffix, part in (("", "estimate"), (" lo", "lo"), (" hi", "hi")):
                        row[f"{kind} {metric}{suffix}"] = math.nan if comp is None else \
                            getattr(comp.agreement, part)[metric]
                row[f"{kind} n"] = 0 if comp is None else comp.agreement.n
            row["seeds"] = r.zero_shot.agreement.n_seeds
            rows.append(row)
    return pd.DataFrame(rows)


def _ci(est: float, lo: float, hi: float) -> str:
    return f"{est:.2f} [{lo:.2f}, {hi:.2f}]"


def findings(reports: Mapping[str, LawsReport], good: float = 1.5) -> list[str]:
    """Per sweep: the best zero-shot law, whether any law predicts within a factor ``good``, the held-out
    leader and whether the top two are distinguishable; every number with its 95% interval and n."""
    good = validate.number(good, "good", positive=True, example="1.5")
    table = laws_table(reports)
    out = []
    for label, rep in reports.items():
        t = table[table["sweep"] == label]
        best = t.loc[t["zero-shot error_factor"].idxmin()]
        est, lo, hi = (best[f"zero-shot error_factor{s}"] for s in ("", " lo", " hi"))
        tied = list(t.loc[np.isclose(t["zero-shot error_factor"], est), "law"])  # e.g. chains: eq8 = L_eff
        names = " = ".join(tied) + (" (the same predictions here)" if len(tied) > 1 else "")
        quality = {
            "beyond": f"no law predicts within a factor {good:g} (even the best one's interval lies "
                      "above it)",
            "within": f"{best['law']} predicts within a factor {good:g} (its whole interval lies below it)",
            "undecided": f"whether the best law predicts within a factor {good:g} is undecided at this n",
        }[against_factor(lo, hi, good)]
        out.append(f"{label}: best zero-shot law {names}, error factor {_ci(est, lo, hi)} "
                   f"(n = {int(best['zero-shot n'])} configurations, {int(best['seeds'])} seeds): {quality}. "
                   f"{'Zero-shot ranking' if rep.zero_shot_only else 'Held out'}: {rep.verdict()}")
    return out
