"""The learning-rate laws of :mod:`archscale.core.laws`, head to head on one finished sweep.

Every law is scored twice with the metrics of :mod:`~archscale.analysis.agreement` (log LRs, the
base left out, bootstrap intervals over seeds and configurations):

* **zero-shot** — the law as published, transferring the base's measured maximal LR;
* **calibrated** — its one parameter (the power ``a`` of ``eta ∝ size^-a``) fitted by least
  squares on a random share of the graphs and scored on the held-out rest.

Laws are ranked by the held-out log-RMSE of their calibrated form. Whether the top two can be told
apart is a paired bootstrap of the difference of their log-RMSEs (every law is scored on the
same resamples of seeds and held-out configurations). ``holdout=0`` scores the laws zero-shot only
(for sweeps with fewer than four non-base graphs, which cannot be split) and ranks them by their
zero-shot log-RMSE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import validate
from ..core.dag import Dag
from ..core.laws import LAWS, Law
from ..core.laws import law as find_law
from ..core.scaling import convention
from .agreement import percentile_interval
from .calibrate import held_out
from .compare import Comparison, Measured, Rule, compare, measure
from .estimator import DEFAULT_METHOD

__all__ = ["LawResult", "LawsReport", "compare_laws"]


def law_rule(which: Law | str, arch: str = "mlp", exponent: float | None = None) -> Rule:
    """A law of :mod:`archscale.core.laws` (its power replaced by ``exponent`` when given) as a comparison
    :data:`~archscale.analysis.compare.Rule`, under the depth offset and kernel use of ``arch``."""
    chosen = find_law(which) if isinstance(which, str) else which
    conv = convention(arch)

    def scale(dag: Dag, q: int | None, base: Dag, qb: int | None) -> float:
        return chosen.scale(dag, base, offset=conv.offset, q=q if conv.uses_kernel else None,
                            q_base=qb if conv.uses_kernel else None, exponent=exponent)
    return scale


def _fit_exponent(law: Law, meas: Measured, graphs: set[str]) -> float:
    """Least-squares power ``a`` of ``ln m - ln m_base - kernel = -a ln(size/size_base)`` on ``graphs``."""
    conv = convention(meas.arch)
    rows, y = meas.log_target(graphs)
    x = np.array([math.log(law.size(meas.dag(g), conv.offset) / law.size(meas.base, conv.offset))
                  for g in rows["graph"]])
    return float(-(x @ y) / (x @ x)) if np.any(x) else law.exponent


@dataclass
class LawResult:
    """One law's scores: zero-shot on every non-base configuration, and on the held-out graphs
    both as published and with its fitted power (``None``, and the power NaN, when zero-shot only)."""

    name: str
    summary: str
    exponent: float
    fitted_exponent: float
    zero_shot: Comparison
    held_out: Comparison | None
    calibrated: Comparison | None

    @property
    def ranked(self) -> Comparison:
        """The comparison the ranking reads: calibrated on the held-out graphs, else zero-shot."""
        return self.zero_shot if self.calibrated is None else self.calibrated


@dataclass
class LawsReport:
    """Every law's results, the ranking and whether the top two are distinguishable at this n."""

    laws: list[LawResult]
    fit_graphs: list[str]
    test_graphs: list[str]
    holdout: float
    seed: int
    top_difference: tuple[float, float, float]  # log-RMSE of #2 minus #1: estimate, lo, hi

    @property
    def zero_shot_only(self) -> bool:
        """Whether the laws were scored zero-shot only (``holdout=0``)."""
        return not self.test_graphs

    def ranking(self) -> pd.DataFrame:
        """One row per law, best first: held-out calibrated and zero-shot metrics with intervals."""
        rows = []
        for r in self.laws:
            z, c = r.zero_shot.agreement, r.ranked.agreement
            rows.append({"law": r.name, "a (published)": r.exponent,
                         "a (fitted)": round(r.fitted_exponent, 3),
                         "held-out log-RMSE": _ci(c, "log_rmse"),
                         "held-out error factor": _ci(c, "error_factor"),
                         "held-out noise floor": f"{c.noise_floor:.3g}",
                         "held-out spearman": _ci(c, "spearman"),
                         "zero-shot error factor (all)": _ci(z, "error_factor"),
                         "zero-shot noise floor (all)": f"{z.noise_floor:.3g}",
                         "zero-shot log r (all)": _ci(z, "pearson_log"),
                         "zero-shot bias (all)": _ci(z, "bias"), "n held out": c.n, "n all": z.n})
        out = pd.DataFrame(rows)
        if self.zero_shot_only:
            out = out.drop(columns=["a (fitted)", "held-out log-RMSE", "held-out error factor",
                                    "held-out noise floor", "held-out spearman", "n held out"])
            out.insert(2, "zero-shot log-RMSE (all)",
                       [_ci(r.zero_shot.agreement, "log_rmse") for r in self.laws])
        return out

    def verdict(self) -> str:
        """A plain sentence: which law leads, and whether the runner-up can be told apart from it."""
        first, second = self.laws[0], self.laws[1]
        d, lo, hi = self.top_difference
        n = first.ranked.agreement.n
        which = "zero-shot, no held-out split" if self.zero_shot_only else "held-out"
        graphs = "every non-base graph" if self.zero_shot_only else "the held-out graphs"
        if lo > 0:
            return (f"{first.name} predicts {graphs} best; {second.name}'s log-RMSE is larger by "
                    f"{d:.3f} [{lo:.3f}, {hi:.3f}], an interval that excludes 0: the two are distinguishable "
                    f"at n = {n} {which} configurations.")
        return (f"{first.name} has the lowest {which} log-RMSE, but {second.name} is within "
                f"{d:.3f} [{lo:.3f}, {hi:.3f}] of it, an interval that contains 0: at n = {n} {which} "
                f"configurations the top two cannot be told apart.")

    def format(self) -> str:
        split = ("zero-shot only (no held-out split)" if self.zero_shot_only else
                 f"on {len(self.fit_graphs)} fitting and {len(self.test_graphs)} held-out graphs (share "
                 f"{self.holdout:g}, seed {self.seed})")
        return "\n".join([
            f"laws {split}; metrics on log LRs without the base, 95% bootstrap "
            f"intervals over seeds and graphs; the noise floor is the error factor a perfect law would "
            f"score on these data (two halves of the seeds): no law can do better",
            self.ranking().to_string(index=False), self.verdict()])

    def to_dict(self) -> dict:
        return {"laws": [{"name": r.name, "summary": r.summary, "exponent": r.exponent,
                          "fitted_exponent": None if math.isnan(r.fitted_exponent) else r.fitted_exponent,
                          "zero_shot": r.zero_shot.agreement.to_dict(),
                          "held_out": r.held_out and r.held_out.agreement.to_dict(),
                          "calibrated": r.calibrated and r.calibrated.agreement.to_dict()}
                         for r in self.laws],
                "fit_graphs": self.fit_graphs, "test_graphs": self.test_graphs, "holdout": self.holdout,
                "seed": self.seed, "ranking": [r.name for r in self.laws],
                "top_difference": dict(zip(("estimate", "lo", "hi"), self.top_difference)),
                "verdict": self.verdict()}


def _ci(a, name: str) -> str:
    return f"{a.estimate[name]:.3g} [{a.lo[name]:.3g}, {a.hi[name]:.3g}]"


def compare_laws(results: pd.DataFrame | Measured, base: str = "1", metric: str = "train_loss", *,
                 laws: Iterable[Law] | None = None, holdout: float = 0.5, seed: int = 0,
                 n_boot: int = 1000, method: str = DEFAULT_METHOD, edges: bool = False) -> LawsReport:
    """Score every law zero-shot and calibrated on held-out graphs; rank them (see the module docstring)."""
    if holdout == 0:  # zero-shot only: no split, nothing fitted
        seed = validate.integer(seed, "seed")
        meas = results if isinstance(results, Measured) else measure(results, base, metric, n_boot=n_boot,
                                                                     seed=seed, method=method, edges=edges)
        fit_graphs: list[str] = []
        test_graphs: list[str] = []
    else:
        meas, fit_graphs, test_graphs, holdout, seed = held_out(results, base, metric, holdout, seed, n_boot,
                                                                method, edges)
    test = set(test_graphs)
    out = []
    for law in (list(LAWS.values()) if laws is None else list(laws)):
        published = law_rule(law, meas.arch)
        zero = compare(meas, rule=published, n_boot=n_boot, seed=seed)
        if not test:
            out.append(LawResult(law.name, law.summary, law.exponent, math.nan, zero, None, None))
            continue
        a = _fit_exponent(law, meas, set(fit_graphs))
        fitted = law_rule(law, meas.arch, a)
        out.append(LawResult(law.name, law.summary, law.exponent, a, zero,
                             compare(meas, rule=published, score=test, n_boot=n_boot, seed=seed),
                             compare(meas, rule=fitted, score=test, n_boot=n_boot, seed=seed)))
    out.sort(key=lambda r: (np.nan_to_num(r.ranked.agreement.estimate["log_rmse"], nan=np.inf), r.name))
    first, second = out[0].ranked.agreement, out[1].ranked.agreement
    estimate = second.estimate["log_rmse"] - first.estimate["log_rmse"]
    lo, hi, _ = percentile_interval(second.samples["log_rmse"] - first.samples["log_rmse"])
    return LawsReport(out, fit_graphs, test_graphs, holdout, seed, (float(estimate), float(lo), float(hi)))
