"""The depth exponent: how the maximal LR of a chain moves with its depth, ``eta* ∝ L^b``.

Eq. 8 on a chain of blocks gives ``eta* ∝ L^(-3/2)`` (one path of depth ``L``), an SGD result;
Depth-muP's Adam rule for residual nets suggests ``L^(-1/2)``. :func:`depth_exponent` fits ``b``
as the least-squares slope of ``ln max LR`` on ``ln L`` over a depth sweep (``L`` the deepest
path's depth under the arch's convention, ``offset + blocks``: 3..10 for the bundled chains), each
maximal LR read with the one estimator (:func:`~archscale.analysis.compare.measure`), and gives it a
95% bootstrap interval over seeds: each replicate resamples the seeds (the same draw for every
depth, so depths stay paired), re-reads every maximal LR from the resampled seeds and refits.
``slope_step`` is how far one grid step at one depth moves the slope (the grid's resolution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..core.scaling import convention
from .agreement import percentile_interval
from .compare import Measured, measure
from .estimator import DEFAULT_METHOD, bootstrap_estimates, seed_counts
from .kernel import _slope_step, kernel_slope

__all__ = ["EQ8_DEPTH_EXPONENT", "DepthExponent", "depth_exponent", "log_slope"]

#: The exponent eq. 8 gives a chain: max LR proportional to L^(-3/2).
EQ8_DEPTH_EXPONENT = -1.5

#: Least-squares slope of ``ln y`` on ``ln x`` (NaN with fewer than two finite points).
log_slope = kernel_slope


@dataclass
class DepthExponent:
    """A depth sweep's exponent ``b`` of ``eta* ∝ L^b`` with its 95% seed interval.

    ``table``: one row per graph (``graph``, ``depth``, ``measured`` with ``measured_lo``/``hi``,
    ``at_edge``); ``n_valid``: replicates with a finite slope.
    """

    label: str
    exponent: float
    lo: float
    hi: float
    table: pd.DataFrame
    n_seeds: int
    n_valid: int
    n_boot: int
    slope_step: float

    @property
    def n_depths(self) -> int:
        return int(self.table["depth"].nunique())

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the 95% interval."""
        return bool(self.lo <= value <= self.hi)

    def line(self) -> str:
        depths = self.table["depth"]
        edge = int(self.table["at_edge"].sum())
        return (f"{self.label}: max LR ∝ L^b, b = {self.exponent:.2f} [{self.lo:.2f}, {self.hi:.2f}] "
                f"(95% seed bootstrap; L = {int(depths.min())}..{int(depths.max())}, {self.n_depths} depths, "
                f"{self.n_seeds} seeds; one grid step moves b by {self.slope_step:.2g})"
                + (f"; {edge} depth(s) at the grid's edge" if edge else ""))

    def __str__(self) -> str:
        return self.line()


def depth_exponent(results: pd.DataFrame | Measured, base: str = "1", metric: str = "train_loss", *,
                   label: str = "", n_boot: int = 1000, seed: int = 0, method: str = DEFAULT_METHOD
                   ) -> DepthExponent:
    """The exponent of the maximal LR in the depth over ``results`` (module docstring).

    ``results``: sweep rows (or their :class:`Measured`) of one width and activation over graphs of
    at least two depths; ``base``, ``metric``, ``n_boot``, ``seed``, ``method`` as for
    :func:`~archscale.analysis.compare.measure`.
    """
    meas = results if isinstance(results, Measured) else measure(results, base, metric, n_boot=n_boot,
                                                                 seed=seed, method=method)
    t = meas.table
    if t[["width", "act", "kernel_size"]].drop_duplicates().shape[0] != 1:
        raise ArchscaleError("a depth exponent needs one width, activation and kernel; split the rows first")
    offset = convention(meas.arch).offset
    depth = np.array([offset + max(meas.dag(g).depth_counts(0)) for g in t["graph"]], dtype=float)
    if len(np.unique(depth)) < 2:
        raise ArchscaleError(f"a depth exponent needs graphs of at least two depths; got "
                             f"{sorted(set(depth))}")
    s = meas.losses[0].shape[0]
    rng = np.random.default_rng(seed)
    boot = bootstrap_estimates(meas.losses, meas.lrs, seed_counts(s, n_boot, rng), meas.method)  # (B, n)
    est = log_slope(depth, t["measured"].to_numpy(float))
    samples = np.array([log_slope(depth, boot[b]) for b in range(n_boot)])
    lo, hi, valid = percentile_interval(samples)
    if math.isfinite(est):
        lo, hi = min(lo, est), max(hi, est)
    table = pd.DataFrame({"graph": t["graph"], "depth": depth.astype(int), "measured": t["measured"],
                          "measured_lo": t["measured_lo"], "measured_hi": t["measured_hi"],
                          "at_edge": t["at_edge"]}).sort_values("depth", ignore_index=True)
    step = _slope_step(np.log(depth), meas.lrs[0])
    return DepthExponent(label, est, lo, hi, table, s, valid, n_boot, step)
