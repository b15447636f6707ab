"""Eq. 9's kernel factor when the edges of a path have different kernel sizes (no torch).

Eq. 9 writes the one-step change of a CNN whose every layer has a ``q x q`` kernel as
``E[(Delta z)^2] ~ eta^2 q^2 sum_p L_p^3``: each layer's update is felt at the ``q^2`` positions its
kernel touches. Read per layer, ``L_p^3 = L_p^2 * L_p`` is ``L_p`` layers each contributing
``L_p^2`` to path ``p``'s term, and the kernel multiplies each layer's contribution by its own area
``a_l`` (``q_l^2``; 1 for a 1x1 conv or a Linear layer). A path whose layers have different kernels
therefore contributes

    T_p = L_p^2 * (offset * a_ref + sum over the weighted edges e on p of a_e),

where the ``offset`` layers of the depth convention (stem, readout and the base's hidden layer,
which eq. 9 also counts at ``q^2``) count at ``a_ref``, the mean kernel area of the graph's weighted
edges, and ``eta* = c * (sum_p T_p)^(-1/2)``. With one kernel size everywhere ``T_p = q^2 L_p^3`` and
this is eq. 9. It is a heuristic generalization under the paper's own assumptions (layers'
contributions add; the kernel multiplies each one); the notebook 02 derivation states it.

The sum is a dynamic program over vertices (per number of weighted edges: the number of paths and
the sum of their edges' areas), exact in rationals, like :meth:`Dag.path_power_sum`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction

from .dag import Dag
from .errors import ArchscaleError

__all__ = ["kernel_area", "kernel_path_sum", "majority_area", "mean_area", "path_weighted_area",
           "uniform_areas"]

#: Kernel areas of a graph's weighted edges: ``{(src, dst): [area of each parallel weighted edge]}``.
Areas = Mapping[tuple[int, int], Sequence[Fraction | int | float]]


def kernel_area(kernel: Sequence[int] | None) -> Fraction:
    """The ``q^2`` of a kernel: ``prod(kernel) ** (2 / len(kernel))`` (``q^2`` for a square ``q x q``,
    ``k1 * k2`` for a rectangle, ``k^2`` for a 1-d kernel of ``k``); 1 for a Linear layer (``None``)."""
    if kernel is None:
        return Fraction(1)
    taps = math.prod(int(k) for k in kernel)
    if len(kernel) == 2:
        return Fraction(taps)
    exact = round(taps ** (2 / len(kernel)))
    return Fraction(exact) if exact ** len(kernel) == taps**2 else Fraction(taps ** (2 / len(kernel)))


def _check(dag: Dag, areas: Areas) -> None:
    blocks = Counter((e.src, e.dst) for e in dag.edges if e.is_parameterized)
    given = {pair: len(a) for pair, a in areas.items() if len(a)}
    if given != dict(blocks):
        raise ArchscaleError(f"kernel areas must list one area per weighted edge of the graph: the graph has "
                             f"{dict(blocks)}, the areas {given}")


def mean_area(dag: Dag, areas: Areas, fallback: Fraction | int | float = 9) -> Fraction:
    """The mean kernel area over the weighted edges (``fallback`` when there are none)."""
    _check(dag, areas)
    flat = [Fraction(a) for pair in areas.values() for a in pair]
    return sum(flat, Fraction(0)) / len(flat) if flat else Fraction(fallback)


def kernel_path_sum(dag: Dag, areas: Areas, offset: int = 3, ref_area: Fraction | int | float | None = None,
                    fallback: Fraction | int | float = 9) -> Fraction:
    """``sum_p L_p^2 (offset * a_ref + sum_{e in p} a_e)`` over the input-to-output paths.

    ``areas`` gives each weighted edge's kernel area (:func:`kernel_area`); ``ref_area`` defaults to
    their mean (``fallback``, e.g. the stem's area, when the graph has no weighted edge). Equals
    ``q^2 * dag.path_power_sum(3, offset)`` when every area is ``q^2``.
    """
    _check(dag, areas)
    a_ref = Fraction(mean_area(dag, areas, fallback) if ref_area is None else ref_area)
    remaining = {pair: [Fraction(a) for a in values] for pair, values in areas.items()}
    # per vertex: {weighted edges k: (number of paths, sum over those paths of their edges' areas)}
    state: list[dict[int, tuple[int, Fraction]]] = [{} for _ in range(dag.n_vertices)]
    state[0][0] = (1, Fraction(0))
    for e in dag.edges:  # ordered by target: sources are complete when read
        area = remaining[(e.src, e.dst)].pop() if e.is_parameterized else None
        into = state[e.dst]
        for k, (count, total) in state[e.src].items():
            k2 = k + (area is not None)
            c0, t0 = into.get(k2, (0, Fraction(0)))
            into[k2] = (c0 + count, t0 + total + (area * count if area is not None else 0))
    return sum(((offset + k) ** 2 * (offset * a_ref * count + total)
                for k, (count, total) in state[dag.output].items()), Fraction(0))


def uniform_areas(dag: Dag, q: int | float) -> dict[tuple[int, int], list[Fraction | float]]:
    """The areas of a graph whose every weighted edge has one ``q x q`` kernel: ``q^2`` per edge."""
    area: Fraction | float = Fraction(int(q)) ** 2 if float(q).is_integer() else float(q) ** 2
    out: dict[tuple[int, int], list[Fraction | float]] = {}
    for e in dag.edges:
        if e.is_parameterized:
            out.setdefault((e.src, e.dst), []).append(area)
    return out


def path_weighted_area(dag: Dag, areas: Areas, offset: int | float = 3,
                       fallback: Fraction | int | float = 9) -> Fraction | float:
    """The one area that gives eq. 9 generalized through eq. 9's form: ``kernel_path_sum / sum_p L_p^3``
    (so ``a^-1/2 (sum_p L_p^3)^-1/2`` is the per-edge law exactly). ``q^2`` when every area is ``q^2``."""
    off = int(offset) if float(offset).is_integer() else offset
    total = kernel_path_sum(dag, areas, off, fallback=fallback)  # type: ignore[arg-type]
    return total / dag.path_power_sum(3, off)


def majority_area(dag: Dag, areas: Areas, offset: int | float = 3,
                  fallback: Fraction | int | float = 9) -> Fraction:
    """One ``q`` for every edge, as the single ``kernel_size=`` override gives it: the most common
    area among the weighted edges (a tie goes to the larger area); ``fallback`` without edges."""
    _check(dag, areas)
    counts = Counter(Fraction(a) for pair in areas.values() for a in pair)
    if not counts:
        return Fraction(fallback)
    return max(counts, key=lambda a: (counts[a], a))
