"""The one DAG traversal: every vertex sums what its incoming edges make of their sources.

Every network built from a :class:`~archscale.core.dag.Dag` computes its vertices the same way (the
paper's eq. 1): vertex 0 holds the stem's output, each later vertex the sum of its incoming
edges' outputs, added in :attr:`Dag.edges` order (by target, then source), and a vertex that no
edge enters holds zeros (edges out of it still apply their op to those zeros). ``DagNet`` and
the batched trainer's stack (whose edge function also records what its hand-written backward
needs) call :func:`traverse`, and so can any other cell network: all add the same terms in the
same order. No torch import here: the values can be any array type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..core.dag import Dag, Edge

__all__ = ["traverse"]


class _Summable(Protocol):  # a vertex sums its incoming values
    def __add__(self, other: Any, /) -> Any: ...


T = TypeVar("T", bound=_Summable)


def _torch_zeros_like(value):
    import torch

    return torch.zeros_like(value)


def traverse(dag: Dag, first: T, edge_fn: Callable[[Edge, T], T], *,
             zeros_like: Callable[[T], T] | None = None) -> list[T]:
    """The value of every vertex of ``dag`` when vertex 0 holds ``first``.

    ``edge_fn(edge, src_value)`` returns the edge's output (it may record intermediates for a
    backward pass); each vertex is the left-to-right sum of its incoming outputs in edge order.
    ``zeros_like(first)`` (default ``torch.zeros_like``) fills vertices that no edge enters.
    """
    zeros = zeros_like or _torch_zeros_like
    incoming: list[list[Edge]] = [[] for _ in range(dag.n_vertices)]
    for e in dag.edges:  # ordered by target, then source
        incoming[e.dst].append(e)
    nodes: list[T] = [first]
    for v in range(1, dag.n_vertices):  # every source precedes its target
        value = None
        for e in incoming[v]:
            out = edge_fn(e, nodes[e.src])
            value = out if value is None else value + out
        # a vertex no edge enters is zeros, made in its turn so that vertex order is kept
        nodes.append(zeros(first) if value is None else value)
    return nodes
