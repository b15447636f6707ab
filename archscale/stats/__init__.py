"""Statistics on the probes' tables: path-law fits, spreads, LR-at-target and width slopes.

The measurements of :mod:`archscale.probe` (and a sweep's rows) come in as tidy tables; these
functions fit and summarize them, with numpy and pandas only (no torch):

* :func:`fit_path_law` — exponent and depth offset of ``delta_z2 ∝ (sum_p L_p^k)^b`` across
  graphs, by least squares with percentile-bootstrap intervals over graphs (:class:`PathLawFit`),
  :func:`path_law_summary` over several fits, :func:`path_law_by_width` per (series, width),
  :func:`path_law_profile` (b and fit quality at each depth offset) and :func:`path_law_graphs`,
  the block-only or skip-carrying graph sets those fits compare;
* :func:`delta_z_spread` — how far per-graph ``delta_z2`` spreads under a shared and a scaled LR;
* :func:`lr_at_target`, :func:`width_slope`, :func:`update_lr_table`, :func:`coord_slopes` —
  how the one-step update and the coordinate check move with width;
* :func:`lr_optimum_drift` — where a sweep's loss-vs-LR optimum sits at each width.
"""

from __future__ import annotations

from .pathlaw import (
    PathLawFit,
    delta_z_spread,
    fit_path_law,
    has_skip_path,
    min_path_params,
    path_law_by_width,
    path_law_graphs,
    path_law_profile,
    path_law_summary,
)
from .widths import coord_slopes, lr_at_target, lr_optimum_drift, update_lr_table, width_slope

__all__ = [
    "PathLawFit", "coord_slopes", "delta_z_spread", "fit_path_law", "has_skip_path", "lr_at_target",
    "lr_optimum_drift", "min_path_params", "path_law_by_width", "path_law_graphs",
    "path_law_profile", "path_law_summary", "update_lr_table", "width_slope",
]
