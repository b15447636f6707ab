"""Measurements on a built network: forward second moments (eq. 3) and the maximal-update check.

The paper's learning rates (eq. 8, 9) come from one requirement: after one SGD step every
vertex's pre-activation change ``E[(Delta z_i(l))^2]`` stays Theta(1), independent of width.
This module measures that cause directly:

* :func:`delta_z` — one SGD step on a copy of a DagMLP/DagCNN; the mean squared change of
  every vertex (and of the logits) on a probe batch, with per-parameter-group attribution.
* :func:`coord_check` — mean ``|z|`` and ``|z_t - z_0|`` per vertex over the first steps,
  for a range of widths (the coordinate check of the mup package).
* :func:`delta_z_vs_lr`, :func:`delta_z_graphs`, :func:`delta_z_widths` — the tables the
  notebook plots; the fits and summaries on them live in :mod:`archscale.stats`.

What a "vertex" is follows the model's layout: with ``layout="paper"`` (default) the vertices
hold pre-activations ``z(l)``; with ``layout="reference"`` they hold sums of post-activations
(the reference code's block is Linear then ReLU). Either way the probe measures the change of
the values ``model(x, return_nodes=True)`` returns, plus the logits as the output vertex.
"""

from __future__ import annotations

from ..train import LOSSES
from .common import loss_value, parameter_groups
from .coord import COORD_CHECK_COLUMNS, coord_check
from .delta import LR_RULES, DeltaZResult, delta_z, delta_z_graphs, delta_z_vs_lr, delta_z_widths
from .moments import (
    forward_second_moments,
    init_second_moments,
    kernel_second_moments,
    padding_coverage,
    predicted_second_moments,
    readout_input_moment,
)

__all__ = [
    "COORD_CHECK_COLUMNS", "DeltaZResult", "LOSSES", "LR_RULES", "coord_check", "delta_z", "delta_z_graphs",
    "delta_z_vs_lr", "delta_z_widths", "forward_second_moments", "init_second_moments",
    "kernel_second_moments", "loss_value", "padding_coverage", "parameter_groups", "predicted_second_moments",
    "readout_input_moment",
]
