"""Residual blocks of a graph and the Depth-muP branch multiplier (no torch).

Depth-muP (Yang, Yu, Zhu, Hayou 2023, arXiv 2310.02244) and the ``1/sqrt(depth)`` residual
scaling of Bordelon, Noci, Li, Hanin, Pehlevan (2023) multiply every residual branch by
``a / sqrt(K)``, ``K`` the number of residual blocks, so that one learning rate transfers across
depth, instead of rescaling the learning rate with depth as eq. 8 does. In archscale's graphs:

* a **branch edge** is a parameterized edge entering a vertex that also has a skip in-edge: that
  vertex adds the branch to the skip (a residual addition). ``DagMLP``/``DagCNN``'s
  ``branch_multiplier`` scales exactly these edges (:func:`branch_edges`), on any graph.
* a **residual chain** is a graph built in series from residual blocks and plain layers.
  Walking from vertex 0, each trunk vertex either feeds one edge into the next trunk vertex (a
  plain layer, or an identity), or opens a **residual block**: one skip edge to a merge vertex
  ``m`` and a branch of parameterized edges through vertices of in- and out-degree 1 that ends
  in ``m``, which has exactly these two in-edges. Only there is Depth-muP's ``K`` defined
  (:func:`residual_blocks`); ``sqrt(K)`` divides the last edge of every branch, the one that
  enters the merge (:func:`depth_mup_multiplier`).

Multiplying a branch's last layer by ``c`` is, under SGD, the same training as drawing that
layer's weights ``c`` times larger and giving it ``c**2`` times the learning rate; archscale
applies the multiplier itself (in the forward pass), whatever the optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import validate
from .dag import Dag, Edge
from .errors import DagError

__all__ = ["NotResidualChain", "ResidualBlock", "branch_edges", "depth_mup_multiplier", "residual_blocks",
           "residual_chain_dag"]

_SKIPS = frozenset({"skip", "skip_connect"})


def _is_skip(e: Edge) -> bool:
    return e.op in _SKIPS


@dataclass(frozen=True)
class ResidualBlock:
    """One residual block of a residual chain: ``merge = start + branch(start)``.

    ``branch`` lists its parameterized edges from ``start`` to ``merge``; ``branch[-1]`` is the
    edge the Depth-muP multiplier scales. ``shortcut`` is the weighted edge ``start -> merge`` of a
    projection shortcut (a 1x1 conv where the width changes), ``None`` beside an identity skip.
    """

    start: int
    merge: int
    branch: tuple[Edge, ...]
    shortcut: Edge | None = None  # a weighted (projection) shortcut; None for an identity skip

    @property
    def closing(self) -> Edge:
        """The branch's last edge, the one entering the merge vertex."""
        return self.branch[-1]

    @property
    def layers(self) -> int:
        return len(self.branch)


def branch_edges(dag: Dag) -> list[Edge]:
    """Parameterized edges entering a vertex that also has a skip in-edge (residual additions)."""
    skipped = {e.dst for e in dag.edges if _is_skip(e)}
    return [e for e in dag.edges if e.is_parameterized and e.dst in skipped]


def _not_chain(dag: Dag, why: str) -> DagError:
    return DagError(f"{dag} is not a residual chain: {why}. Depth-muP's 1/sqrt(K) needs K residual blocks "
                    f"in series (each: a skip and one branch of weighted layers into the same vertex); "
                    f"DagMLP/DagCNN's branch_multiplier=<number> scales the branches of any graph")


class NotResidualChain(DagError):
    """A graph that is not a residual chain, with the vertex where reading it failed."""

    def __init__(self, message: str, vertex: int):
        super().__init__(message)
        self.vertex = vertex


def _walk(dag: Dag, out_edges: list[list[Edge]], first: Edge, merge: int) -> tuple[list[Edge] | None, int]:
    """The branch from ``first`` to ``merge`` through plain weighted steps (None where it leaves
    them), and the last vertex reached."""
    ins = dag.in_degrees
    branch, e = [first], first
    while e.dst != merge:
        u = e.dst
        nxt = out_edges[u]
        if ins[u] != 1 or len(nxt) != 1 or not nxt[0].is_parameterized or u > merge:
            return None, u
        e = nxt[0]
        branch.append(e)
    return branch, merge


def residual_blocks(dag: Dag, *, projection: bool = False) -> list[ResidualBlock]:
    """The residual blocks of ``dag`` in order, or :class:`NotResidualChain` (a :class:`DagError`)
    when it is not a residual chain.

    With ``projection=True`` a block's shortcut may be one weighted edge instead of a skip (a
    projection shortcut: a 1x1 conv or a linear map where the width changes): the branch is then the
    other, longer path of weighted layers, and it alone is scaled by Depth-muP. When both paths are
    single weighted edges, which one is the shortcut is undefined, and the graph is refused.
    """
    if not isinstance(dag, Dag):
        raise DagError(f"expected a Dag, got {type(dag).__name__}")
    out_edges: list[list[Edge]] = [[] for _ in range(dag.n_vertices)]
    for e in dag.edges:
        out_edges[e.src].append(e)
    ins = dag.in_degrees
    blocks: list[ResidualBlock] = []
    seen, v = {0}, 0

    def refuse(why: str, at: int) -> NotResidualChain:
        return NotResidualChain(str(_not_chain(dag, why)), at)

    while v != dag.output:
        outs = out_edges[v]
        if not outs:
            raise refuse(f"vertex {v} has no out-edge: the chain stops before the output", v)
        if len(outs) == 1:  # a plain layer (or an identity) to the next trunk vertex
            w = outs[0].dst
            if ins[w] != 1:
                raise refuse(f"vertex {w} has {ins[w]} in-edges but is entered by a plain layer from "
                             f"vertex {v}", w)
            seen.add(w)
            v = w
            continue
        skips = [e for e in outs if _is_skip(e)]
        weighted = [e for e in outs if e.is_parameterized]
        found: tuple[int, list[Edge], Edge | None] | None = None
        if len(outs) == 2 and len(skips) == 1 and len(weighted) == 1:
            branch, u = _walk(dag, out_edges, weighted[0], skips[0].dst)
            if branch is None:
                raise refuse(f"the branch from vertex {v} passes vertex {u}, which is not a plain weighted "
                             f"step towards the merge vertex {skips[0].dst}", u)
            found = (skips[0].dst, branch, None)
        elif projection and len(outs) == 2 and len(weighted) == 2:
            for short, long in ((weighted[0], weighted[1]), (weighted[1], weighted[0])):
                branch, _ = _walk(dag, out_edges, long, short.dst)
                if branch is not None and len(branch) >= 2:
                    found = (short.dst, branch, short)
                    break
        if found is None:
            listed = ", ".join(f"{e.src}->{e.dst} {e.op}" for e in outs) or "none"
            kinds = "one skip (or one weighted shortcut)" if projection else "one skip"
            raise refuse(f"vertex {v} has out-edges ({listed}); a trunk vertex feeds one layer, or {kinds} "
                         f"and one weighted branch", v)
        merge, branch, shortcut = found
        seen.update(e.dst for e in branch[:-1])
        if ins[merge] != 2:
            raise refuse(f"the merge vertex {merge} has {ins[merge]} in-edges; a residual block's merge "
                         f"adds exactly its shortcut and its branch", merge)
        blocks.append(ResidualBlock(v, merge, tuple(branch), shortcut))
        seen.add(merge)
        v = merge
    missing = sorted(set(range(dag.n_vertices)) - seen)
    if missing:
        raise refuse(f"vertices {missing} lie off the chain", missing[0])
    if not blocks:
        raise refuse("it has no residual block", dag.output)
    return blocks


def depth_mup_multiplier(dag: Dag, scale: float = 1.0) -> float:
    """``scale / sqrt(K)`` for the ``K`` residual blocks of the residual chain ``dag`` (Depth-muP)."""
    scale = validate.number(scale, "branch scale", positive=True, example="1.0")
    return scale / math.sqrt(len(residual_blocks(dag)))


def residual_chain_dag(n_blocks: int, branch_layers: int = 2, ops: str = "mlp") -> Dag:
    """``n_blocks`` residual blocks in series, each a skip beside ``branch_layers`` weighted layers.

    ``residual_chain_dag(2) == Dag.parse("2_12_002_0012")``. One-layer branches would put a skip
    and a layer between the same two vertices (a multigraph, which DagMLP cannot build), so
    ``branch_layers`` is at least 2.
    """
    n_blocks = validate.positive_int(n_blocks, "n_blocks", error=DagError)
    branch_layers = validate.integer(branch_layers, "branch_layers", minimum=2, error=DagError)
    edges = []
    for b in range(n_blocks):
        start = b * branch_layers
        edges += [(start + i, start + i + 1, "block") for i in range(branch_layers)]
        edges.append((start, start + branch_layers, "skip"))
    return Dag.from_edges(n_blocks * branch_layers + 1, edges, ops=ops)
