"""Calibrating the path-sum law on some graphs and testing it on the others (held-out graphs).

Eq. 8 fixes three numbers: the depth offset ``o`` (``L_p = o + blocks on p``), the path exponent
``k`` (``S = sum_p L_p^k``, 3 in eq. 8) and the overall power ``a`` (``eta ∝ S^-a``, 1/2 in eq. 8).
:func:`calibrate` splits a sweep's non-base graphs at random into a fitting half and a held-out
half, fits ``(o, k, a)`` on the first (least squares of ``ln m - ln m_base`` on
``-a ln(S(g)/S(base))``; ``o`` and ``k`` on grids, ``a`` in closed form; eq. 9's kernel factor is
kept) and scores the calibrated law and eq. 8 on the held-out graphs with the same metrics and
intervals as :func:`~archscale.analysis.compare`. The fitted parameters are point estimates on
the fitting half; the intervals of the held-out metrics resample seeds and held-out graphs.
The three parameters trade off against each other (a larger offset with a larger exponent can
predict nearly the same ratios), so read the held-out predictions, not the parameters alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import convention
from .compare import Comparison, Measured, Rule, compare, measure
from .estimator import DEFAULT_METHOD

__all__ = ["Calibration", "PathLaw", "calibrate", "can_split", "fit_offset", "held_out", "split_graphs"]

#: Depth offsets and path exponents the fit searches.
OFFSETS = tuple(x / 2 for x in range(0, 17))
POWERS = tuple(x / 2 for x in range(1, 13))


@dataclass(frozen=True)
class PathLaw:
    """``eta ∝ (sum_p (offset + blocks_p)^power)^(-exponent)`` (times eq. 9's kernel factor for CNNs)."""

    offset: float
    power: float
    exponent: float

    def path_sum(self, dag: Dag) -> float:
        return float(sum(c * (self.offset + k) ** self.power for k, c in dag.depth_counts(0).items()))

    def rule(self, uses_kernel: bool) -> Rule:
        """This law as a :data:`~archscale.analysis.compare.Rule`."""
        def scale(dag: Dag, q: int | None, base: Dag, qb: int | None) -> float:
            ratio = (self.path_sum(dag) / self.path_sum(base)) ** (-self.exponent)
            return ratio * (cast(int, qb) / q if uses_kernel and q else 1.0)  # a base kernel with q
        return scale

    def describe(self) -> str:
        return f"offset {self.offset:g}, path exponent k = {self.power:g}, power a = {self.exponent:.3g}"


#: Eq. 8 in this family: offset 3, k = 3, a = 1/2.
EQ8 = PathLaw(3.0, 3.0, 0.5)


def can_split(n_graphs: int, holdout: float) -> bool:
    """Whether a held-out share of ``n_graphs`` leaves at least 2 graphs on each side."""
    return 2 <= int(round(holdout * n_graphs)) <= n_graphs - 2


def split_graphs(graphs: Sequence[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random split of ``graphs`` into (fitting, held-out); ``holdout`` is the held-out share."""
    graphs = sorted(set(graphs))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(graphs))
    n_test = int(round(holdout * len(graphs)))
    if not can_split(len(graphs), holdout):
        raise ArchscaleError(f"a held-out share of {holdout:g} leaves {n_test} of {len(graphs)} graphs held "
                             f"out; both halves need at least 2 graphs (sweep more graphs or change "
                             f"--holdout)")
    test = sorted(graphs[i] for i in order[:n_test])
    return sorted(set(graphs) - set(test)), test


def held_out(results: pd.DataFrame | Measured, base: str, metric: str, holdout: float, seed: int,
             n_boot: int, method: str = DEFAULT_METHOD, edges: bool = False
             ) -> tuple[Measured, list[str], list[str], float, int]:
    """The measured sweep and its seeded split of the non-base graphs into (fitting, held-out)."""
    holdout = validate.number(holdout, "holdout", minimum=0.0, maximum=1.0, example="0.5")
    seed = validate.integer(seed, "seed")
    meas = results if isinstance(results, Measured) else measure(results, base, metric, n_boot=n_boot,
                                                                 seed=seed, method=method, edges=edges)
    graphs = sorted(set(meas.table.loc[~meas.table["is_base"], "graph"]) - {meas.base.code})
    fit_graphs, test_graphs = split_graphs(graphs, holdout, seed)
    return meas, fit_graphs, test_graphs, holdout, seed


def _fit(meas: Measured, graphs: set[str], offsets: Sequence[float], powers: Sequence[float]
         ) -> tuple[PathLaw, float, int]:
    """Least-squares ``(offset, power, exponent)`` on ``graphs``; returns the law, its RMSE (ln) and n."""
    rows, y = meas.log_target(graphs)
    if len(rows) < 2:
        raise ArchscaleError(f"only {len(rows)} measured configuration(s) to fit on; need at least 2")
    dags = [meas.dag(g) for g in rows["graph"]]
    best = None
    for o in offsets:
        if min(min(d.depth_counts(0)) for d in dags + [meas.base]) + o <= 0:
            continue  # a path of depth 0: the sum is not defined for every graph
        for k in powers:
            law = PathLaw(o, k, 1.0)
            x = np.log([law.path_sum(d) for d in dags]) - math.log(law.path_sum(meas.base))
            if not np.any(x):
                continue
            a = -float(x @ y) / float(x @ x)
            sse = float(np.sum((y + a * x) ** 2))
            if best is None or sse < best[0] - 1e-12:
                best = (sse, PathLaw(o, k, a))
    if best is None:
        raise ArchscaleError("no offset of the grid gives every fitting graph a positive depth")
    return best[1], math.sqrt(best[0] / len(rows)), len(rows)


@dataclass
class Calibration:
    """A law fitted on some graphs and scored, beside eq. 8, on held-out graphs.

    ``fitted``: the calibrated :class:`PathLaw`; ``fit_rmse``: its in-sample RMSE (ln units) on
    ``n_fit`` configurations of the ``fit_graphs``; ``calibrated``/``eq8``: the two laws'
    comparisons scored only on the ``test_graphs``.
    """

    fitted: PathLaw
    fit_rmse: float
    n_fit: int
    fit_graphs: list[str]
    test_graphs: list[str]
    calibrated: Comparison
    eq8: Comparison
    holdout: float
    seed: int
    grid_edges: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """Held-out metrics of both laws side by side: estimate [lo, hi] per metric."""
        rows = []
        for name, comp in (("eq. 8 (zero-shot)", self.eq8), ("calibrated", self.calibrated)):
            a = comp.agreement
            cells = {k: f"{a.estimate[k]:.3g} [{a.lo[k]:.3g}, {a.hi[k]:.3g}]"
                     for k in ("pearson_log", "spearman", "error_factor", "bias", "slope")}
            rows.append({"law": name, "n": a.n, **cells})
        return pd.DataFrame(rows)

    def format(self) -> str:
        return "\n".join([
            f"held-out split: {len(self.fit_graphs)} graphs to fit, {len(self.test_graphs)} held out "
            f"(share {self.holdout:g}, seed {self.seed}); the base is in neither",
            f"fitted on {self.n_fit} configuration(s): {self.fitted.describe()} (in-sample RMSE "
            f"{self.fit_rmse:.3f} ln units); eq. 8: {EQ8.describe()}"
            + (f"\nnote: the fitted {' and '.join(self.grid_edges)} sit(s) at the edge of the searched grid, "
               f"so the optimum may lie beyond it" if self.grid_edges else ""),
            "held-out agreement (95% bootstrap intervals over seeds and held-out configurations):",
            self.table().to_string(index=False)])

    def to_dict(self) -> dict:
        return {"fitted": {"offset": self.fitted.offset, "power": self.fitted.power,
                           "exponent": self.fitted.exponent},
                "fit_rmse": self.fit_rmse, "n_fit": self.n_fit, "fit_graphs": self.fit_graphs,
                "test_graphs": self.test_graphs, "holdout": self.holdout, "seed": self.seed,
                "grid_edges": list(self.grid_edges),
                "calibrated": self.calibrated.to_dict(), "eq8": self.eq8.to_dict()}


def calibrate(results: pd.DataFrame | Measured, base: str = "1", metric: str = "train_loss", *,
              holdout: float = 0.5, seed: int = 0, offsets: Sequence[float] = OFFSETS,
              powers: Sequence[float] = POWERS, n_boot: int = 1000, method: str = DEFAULT_METHOD,
              edges: bool = False) -> Calibration:
    """Fit the path-sum law on a random share of the graphs, score it and eq. 8 on the rest
    (``method``, ``edges``: the estimator and whether grid-edge configurations count)."""
    meas, fit_graphs, test_graphs, holdout, seed = held_out(results, base, metric, holdout, seed, n_boot,
                                                            method, edges)
    law, rmse, n_fit = _fit(meas, set(fit_graphs), offsets, powers)
    uses_kernel = convention(meas.arch).uses_kernel
    scored = set(test_graphs)
    calibrated = compare(meas, rule=law.rule(uses_kernel), score=scored, n_boot=n_boot, seed=seed)
    eq8 = compare(meas, score=scored, n_boot=n_boot, seed=seed)
    searched = (("offset", law.offset, offsets), ("path exponent", law.power, powers))
    at_bounds = tuple(name for name, value, grid in searched if value in (min(grid), max(grid)))
    return Calibration(law, rmse, n_fit, fit_graphs, test_graphs, calibrated, eq8, holdout, seed, at_bounds)


def fit_offset(results: pd.DataFrame, offsets: Iterable[int] = (1, 2, 3, 4, 5, 6), *, base: str = "1",
               n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How well each depth offset predicts measured maximal LRs (each offset through :func:`compare`).

    One row per offset, every metric on the non-base graphs (the base matches by construction):
    the agreement metrics of :mod:`~archscale.analysis.agreement` with their 95% intervals
    (``pearson_log``, ``error_factor``, ``bias``, ``slope``, each with ``_lo``/``_hi``),
    ``log_rmse`` (natural-log error of the recipe's prediction, anchored at the measured base LR),
    ``log_rmse_fit`` (the same after the best constant factor, which removes the base network's
    own measurement noise), ``pearson_r_with_base`` (the linear r the paper reports, secondary)
    and ``n`` non-base graphs. The best offset minimises ``log_rmse_fit``. Every offset shares
    one measurement and one set of bootstrap resamples, so their intervals pair up.
    """
    meas = measure(results, base, n_boot=n_boot, seed=seed)
    rows = []
    for off in offsets:
        if off < 1:
            raise ArchscaleError(f"offsets must be >= 1; got {off}")
        try:
            comp = compare(meas, offset=int(off), n_boot=n_boot, seed=seed)
        except ArchscaleError as err:
            raise ArchscaleError(f"offset {off}: {err}") from None
        t = comp.table
        t = t[~t["is_base"] & np.isfinite(t["measured"]) & np.isfinite(t["predicted"]) & (t["measured"] > 0)]
        resid = np.log(t["measured"].to_numpy()) - np.log(t["predicted"].to_numpy())
        a = comp.agreement
        row: dict[str, float] = {"offset": int(off)}
        for name in ("pearson_log", "error_factor", "bias", "slope"):
            row.update({name: a.estimate[name], f"{name}_lo": a.lo[name], f"{name}_hi": a.hi[name]})
        row.update({
            "log_rmse": a.estimate["log_rmse"],
            "log_rmse_fit": float(np.std(resid)) if len(resid) else math.nan,
            "pearson_r_with_base": comp.pearson_r_with_base, "n": int(a.n),
        })
        rows.append(row)
    return pd.DataFrame(rows)
