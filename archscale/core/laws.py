"""The published architecture-aware learning-rate laws as pure functions of a graph (no torch).

Each :class:`Law` reduces a graph to one positive size ``m(g)`` under the depth convention
``L = offset + (parameterized edges)`` and predicts ``eta(g) / eta(base) = (m(g) / m(base))^-a``.
For CNN sweeps every law is multiplied by eq. 9's kernel factor ``q_base / q``, so laws differ
only in how they read the graph. A new law is one function and one entry in :data:`LAWS`.

**Mixed kernel sizes** (a 1x1 projection beside 3x3 convs): :meth:`Law.scale` then takes each
graph's per-edge kernel areas (``areas``, :mod:`archscale.core.kernels`), and each law reads them
into the one area ``a`` of its kernel factor ``(a_base / a)^(1/2)`` (its ``kernel`` field): eq. 8's
is the path-weighted area ``kernel_path_sum / sum_p L_p^3``, which makes it eq. 9 generalized per
edge exactly (``(sum_p T_p)^-1/2``, ``T_p = L_p^2 (offset a_ref + sum of p's edges' areas)``); the
other laws do not define a path-by-path kernel and read the mean area of the weighted edges. With
one kernel size every reading is ``q^2`` and the factor is eq. 9's ``q_base / q``. Two more readings
of eq. 8, for comparing what a user would otherwise do, are in :data:`MIXED_KERNEL_LAWS` (not in
the registry): one ``q`` for every edge (the majority kernel, the single ``kernel_size=``
override) and the mean area.

* ``eq8`` — the paper's eq. 8: ``m = sum_p L_p^3``, ``a = 1/2``.
* ``effective_depth`` — Wu et al. 2026 (arXiv 2602.07494): ``eta ∝ L_eff^(-3/2)``, where
  ``L_eff`` is "the minimal path length from input to output, counting layers and residual
  additions". Choices archscale had to make for its graphs, stated here: a layer is a
  parameterized edge; a residual addition is a merge vertex (in-degree >= 2, the output vertex
  included) that the path passes through; skip edges add no layer; the same ``offset`` as
  eq. 8 counts the stem, the readout and the base's hidden layer, so on a chain
  ``L_eff = L`` and both laws give ``(L / L_base)^(-3/2)``.
* ``longest_path`` — the depth of the deepest path, ``a = 3/2`` (depth-only baseline).
* ``path_count`` — the number of end-to-end paths, ``a = 1/2`` (eq. 8 if every path had the
  base's depth).
* ``depth_half`` — ``eta ∝ L_max^(-1/2)``, the deepest path: Depth-muP's Adam rule (arXiv
  2310.02244: the Adam LR of a residual net scales as ``1/sqrt(L)``) read on the graph's depth.
* ``effective_depth_half`` — ``eta ∝ L_eff^(-1/2)``: the same power on the effective depth.
* ``constant`` — one learning rate for every graph (the benchmark's recipe).

The ``_half`` laws are the Adam hypotheses of notebook 12; eq. 8 with its power fitted (the
calibrated form of :func:`~archscale.analysis.law_scores.compare_laws`) is path sum with a free
exponent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from .dag import Dag
from .errors import ArchscaleError
from .kernels import Areas, majority_area, mean_area, path_weighted_area, uniform_areas

__all__ = ["LAWS", "MIXED_KERNEL_LAWS", "KernelReading", "Law", "effective_depth", "law"]

#: How a law reads per-edge kernel areas into one area: ``(dag, areas, offset, fallback) -> a``.
KernelReading = Callable[[Dag, Areas, float, float], "Fraction | float"]


def _mean_reading(dag: Dag, areas: Areas, offset: float, fallback: float) -> Fraction:
    return mean_area(dag, areas, fallback)


def effective_depth(dag: Dag, offset: float = 3) -> float:
    """Shortest input-output path counting parameterized edges and merge vertices, plus ``offset``."""
    dag.require_path()
    n = dag.n_vertices
    dist = [float("inf")] * n
    dist[0] = 0.0
    incoming: list[list] = [[] for _ in range(n)]
    for e in dag.edges:
        incoming[e.dst].append(e)
    for v in range(1, n):
        options = [dist[e.src] + (1 if e.is_parameterized else 0) for e in incoming[v]]
        if options:
            dist[v] = min(options) + (1 if len(incoming[v]) >= 2 else 0)
    return offset + dist[dag.output]


@dataclass(frozen=True)
class Law:
    """``eta ∝ size(g)^-exponent``; ``size(dag, offset)`` must be positive for every trainable graph."""

    name: str
    summary: str
    size: Callable[[Dag, float], float]
    exponent: float
    #: how the law reads mixed kernel areas into its kernel factor (module docstring)
    kernel: KernelReading = field(default=_mean_reading, compare=False)

    def scale(self, dag: Dag, base: Dag, *, offset: float = 3, q: float | None = None,
              q_base: float | None = None, exponent: float | None = None, areas: Areas | None = None,
              base_areas: Areas | None = None) -> float:
        """``eta(dag) / eta(base)``; ``exponent`` overrides the law's own (a calibration).

        ``areas`` / ``base_areas`` give the per-edge kernel areas of a CNN whose kernels mix (either
        may be left out when that graph has one kernel ``q`` / ``q_base``); the kernel factor is then
        ``(a_base / a)^(1/2)`` with each area read by the law's ``kernel`` (module docstring)."""
        a = self.exponent if exponent is None else exponent
        ratio = (self.size(dag, offset) / self.size(base, offset)) ** (-a)
        if areas is None and base_areas is None:
            return ratio * (q_base / q if q and q_base else 1.0)
        if (areas is None and not q) or (base_areas is None and not q_base):
            raise ArchscaleError("mixed kernels: give each graph's per-edge kernel areas, or its one "
                                 "kernel size q")
        read = self.kernel(dag, areas if areas is not None else uniform_areas(dag, q or 3), offset,
                           float(q) ** 2 if q else 9)
        b_areas = base_areas if base_areas is not None else uniform_areas(base, q_base or 3)
        read_base = self.kernel(base, b_areas, offset, float(q_base) ** 2 if q_base else 9)
        return ratio * math.sqrt(float(read_base) / float(read))


def _path_sum(dag: Dag, offset: float) -> float:
    return float(sum(c * (offset + k) ** 3 for k, c in dag.depth_counts(0).items()))


def _longest(dag: Dag, offset: float) -> float:
    return float(offset + max(dag.depth_counts(0)))


#: The registry, in the order reports list the laws.
LAWS: dict[str, Law] = {law.name: law for law in (
    Law("eq8", "eta ∝ (sum_p L_p^3)^-1/2 (paper eq. 8; eq. 9 per edge when kernels mix)", _path_sum, 0.5,
        path_weighted_area),
    Law("effective_depth", "eta ∝ L_eff^-3/2, L_eff = shortest path counting layers and merges "
        "(arXiv 2602.07494)", effective_depth, 1.5),
    Law("longest_path", "eta ∝ L_max^-3/2, L_max = the deepest path",
        _longest, 1.5),
    Law("depth_half", "eta ∝ L_max^-1/2, L_max = the deepest path (Depth-muP's Adam rule, "
        "arXiv 2310.02244)", _longest, 0.5),
    Law("effective_depth_half", "eta ∝ L_eff^-1/2 (Depth-muP's Adam power on the effective depth)",
        effective_depth, 0.5),
    Law("path_count", "eta ∝ P^-1/2, P = number of end-to-end paths", lambda d, o: float(d.n_paths), 0.5),
    Law("constant", "one learning rate for every graph", lambda d, o: 1.0, 0.0),
)}


#: Eq. 8 with the other kernel readings a user might reach for when kernels mix (notebook 06b): one
#: ``q`` for every edge (the majority kernel, as the single ``kernel_size=`` override gives it) and
#: the mean area of the weighted edges. Equal to ``eq8`` when every edge has one kernel.
MIXED_KERNEL_LAWS: dict[str, Law] = {law.name: law for law in (
    Law("eq8_one_q", "eq. 8 with one q for every edge (the majority kernel)", _path_sum, 0.5, majority_area),
    Law("eq8_mean_area", "eq. 8 with the mean kernel area of the weighted edges", _path_sum, 0.5,
        _mean_reading),
)}


def law(name: str) -> Law:
    """The registered law ``name`` (see :data:`LAWS`)."""
    if name not in LAWS:
        raise ArchscaleError(f"unknown law {name!r}; accepted: {', '.join(LAWS)}")
    return LAWS[name]
