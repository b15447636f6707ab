"""The depth exponent: how the maximal LR of a chain moves with its depth, ``eta* ∝ L^b``.

Eq. 8 on a chain of blocks gives ``eta* ∝ L^(-3/2)`` (one path of depth ``L``), an SGD result;
Depth-muP's Adam rule for residual nets suggests ``L^(-1/2)``. :func:`depth_exponent` fits ``b``
as the least-squares slope of ``ln max LR`` on ``ln L`` over a depth sweep (``L`` the deepest
path's depth under the arch's convention, ``offset + blocks``: 3..10 for the bundled chains), each
maximal LR read with the one estimator (:func:`~archscale.analysis.compare.measure`), and gives it a
95% bootstrap interval over seeds: each replicate resamples the seeds (the same draw for every
depth, so depths stay paired), re-reads every maximal LR from the resampled seeds and refits.
``slope_step`` is how far one grid step at one depth moves the slope (the grid's resolution).

:func:`width_exponent` is the same fit over widths: ``eta* ∝ n^b`` for one graph at several widths
``n``, ``b`` the slope of ``log2 eta*`` per doubling of the width. muP (Tensor Programs V) predicts
``b = -1`` under Adam with one LR for every parameter and ``b = 0`` with its per-layer Adam rule.
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

__all__ = ["EQ8_DEPTH_EXPONENT", "MUP_ADAM_WIDTH_EXPONENTS", "DepthExponent", "depth_exponent", "log_slope",
           "width_exponent"]

#: The exponent eq. 8 gives a chain: max LR proportional to L^(-3/2).
EQ8_DEPTH_EXPONENT = -1.5

#: muP's width exponents under Adam (Tensor Programs V): one LR for every parameter, and its Adam rule.
MUP_ADAM_WIDTH_EXPONENTS = {"one LR": -1.0, "muP's Adam rule": 0.0}

#: Least-squares slope of ``ln y`` on ``ln x`` (NaN with fewer than two finite points).
log_slope = kernel_slope


@dataclass
class DepthExponent:
    """A depth sweep's exponent ``b`` of ``eta* ∝ L^b`` with its 95% seed interval (or, with ``axis``
    ``"width"``, a width sweep's ``eta* ∝ n^b``: :func:`width_exponent`).

    ``table``: one row per graph (``graph``, ``depth`` (or ``width``), ``measured`` with
    ``measured_lo``/``hi``, ``at_edge``); ``n_valid``: replicates with a finite slope.
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
    axis: str = "depth"

    @property
    def n_depths(self) -> int:
        """How many depths (or widths, for a width exponent) the fit spans."""
        return int(self.table[self.axis].nunique())

    n_sizes = n_depths

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the 95% interval."""
        return bool(self.lo <= value <= self.hi)

    def line(self) -> str:
        depths = self.table[self.axis]
        edge = int(self.table["at_edge"].sum())
        if self.axis == "width":
            return (f"{self.label}: max LR ∝ width^b, b = {self.exponent:.2f} [{self.lo:.2f}, {self.hi:.2f}] "
                    f"(log2 max LR per doubling of width; 95% seed bootstrap; width {int(depths.min())}.."
                    f"{int(depths.max())}, {self.n_depths} widths, {self.n_seeds} seeds; one grid step moves "
                    f"b by {self.slope_step:.2g})"
                    + (f"; {edge} width(s) at the grid's edge" if edge else ""))
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
    return _fit(meas, depth, "depth", label, n_boot, seed)


def width_exponent(results: pd.DataFrame | Measured, base: str | None = None, metric: str = "train_loss", *,
                   label: str = "", n_boot: int = 1000, seed: int = 0, method: str = DEFAULT_METHOD
                   ) -> DepthExponent:
    """The exponent ``b`` of ``eta* ∝ width^b`` over ``results`` (the slope of ``log2 eta*`` per doubling
    of the width), with its 95% seed-bootstrap interval, as :func:`depth_exponent` fits depths.

    ``results``: sweep rows (or their :class:`Measured`) of one graph, activation and kernel at
    at least two widths; ``base`` defaults to that graph. Returns a :class:`DepthExponent` whose
    ``axis`` is ``"width"`` (its table has a ``width`` column).
    """
    if isinstance(results, Measured):
        meas = results
    else:
        graphs = results["graph"].unique()
        if base is None and len(graphs) == 1:
            base = str(graphs[0])
        meas = measure(results, base or "1", metric, n_boot=n_boot, seed=seed, method=method)
    t = meas.table
    if t[["graph", "act", "kernel_size"]].drop_duplicates().shape[0] != 1:
        raise ArchscaleError("a width exponent needs one graph, activation and kernel; split the rows first")
    width = t["width"].to_numpy(float)
    if len(np.unique(width)) < 2:
        raise ArchscaleError(f"a width exponent needs at least two widths; got {sorted(set(width))}")
    return _fit(meas, width, "width", label, n_boot, seed)


def _fit(meas: Measured, x: np.ndarray, axis: str, label: str, n_boot: int, seed: int) -> DepthExponent:
    """The log-log slope of the measured maximal LRs on ``x`` with its seed-bootstrap interval."""
    t = meas.table
    s = meas.losses[0].shape[0]
    rng = np.random.default_rng(seed)
    boot = bootstrap_estimates(meas.losses, meas.lrs, seed_counts(s, n_boot, rng), meas.method)  # (B, n)
    est = log_slope(x, t["measured"].to_numpy(float))
    samples = np.array([log_slope(x, boot[b]) for b in range(n_boot)])
    lo, hi, valid = percentile_interval(samples)
    if math.isfinite(est):
        lo, hi = min(lo, est), max(hi, est)
    table = pd.DataFrame({"graph": t["graph"], axis: x.astype(int), "measured": t["measured"],
                          "measured_lo": t["measured_lo"], "measured_hi": t["measured_hi"],
                          "at_edge": t["at_edge"]}).sort_values(axis, ignore_index=True)
    step = _slope_step(np.log(x), meas.lrs[0])
    return DepthExponent(label, est, lo, hi, table, s, valid, n_boot, step, axis)
