"""The values and signals a :class:`~archscale.module.reading.Reader` walks with, and what it makes of
them at the end: the refusal in one line, and the vertices and edges of the graph.

A value (:class:`_Val`) is the raw input, one weighted op's output (or one group's part of it) or a sum;
a signal (:class:`_Sig`) is pieces ``(value, elementwise chain)`` with labels telling their channels
apart. :class:`Resolution` (the reader's base) numbers the values that are vertices, stem first, and
lists each vertex's incoming edges and terms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from .trace import module_path, short_where
from .weighted import Layer, nonlinear

__all__ = ["Resolution"]

_MESSAGE_BUDGET = 300


@dataclass(eq=False)
class _Val:
    """A value with a vertex identity while reading: the raw input, one weighted op's output, or a sum."""

    kind: str  # "input" | "edge" | "sum"
    pos: int
    node: fx.Node
    layer: Layer | None = None
    src: _Sig | None = None
    terms: list[tuple[_Val, tuple, tuple]] = field(default_factory=list)  # (value, chain, norms passed)
    uses: int = 0
    must: bool = False
    readers: list[_Val] = field(default_factory=list)
    gated: bool = False
    vertex: int | None = None
    inputs: list[tuple[int, int, int, torch.Tensor | None]] = field(default_factory=list)
    rows: torch.Tensor | None = None  # the output channels that are this value (one group of a conv)


@dataclass(eq=False)
class _Sig:
    """A signal: pieces ``(value, elementwise chain)``; ``labels`` maps each element to its piece
    (None for one piece); ``norms`` the renormalizing modules its chains passed (one piece)."""

    pieces: tuple[tuple[_Val, tuple], ...]
    node: fx.Node
    labels: torch.Tensor | None = None
    norms: tuple[nn.Module, ...] = ()

    @property
    def one(self) -> tuple[_Val, tuple]:
        return self.pieces[0]


class Resolution:
    """The end of the walk: the one-line refusal and the resolution into vertices and edges."""

    vals: list[_Val]
    stem: _Val | None
    readout: _Val | None
    closing: list[tuple[nn.Module, int]]
    refused: dict[str, list[fx.Node]]
    reasons: dict[str, str]
    seen: Counter[str]

    def category(self, node: fx.Node) -> str:
        raise NotImplementedError

    # -- the refusal, in one line
    def message(self, model_name: str) -> str:
        kind, nodes = next(iter(self.refused.items()))
        total = self.seen[self.category(nodes[0])]
        category = self.category(nodes[0])
        count = f"{len(nodes)} of {total} {category}"
        others = [k for k in self.refused if k != kind]
        tail = f" (also: {', '.join(others)})" if others else ""
        head = f"archscale cannot read {model_name}: {count} {self.reasons[kind]}"
        places = [short_where(nodes[0])] + list(dict.fromkeys(module_path(n) or n.name for n in nodes[1:]))
        shown: list[str] = []
        for p in places:
            used = len(head) + len(tail) + sum(len(s) + 2 for s in shown) + len(p) + 8
            if used > _MESSAGE_BUDGET and shown:
                break
            shown.append(p)
        more = ", ..." if len(shown) < len(places) else ""
        return f"{head}: {', '.join(shown)}{more}{tail}"

    # -- resolution into a Dag
    def is_vertex(self, val: _Val) -> bool:
        if val.gated or val.kind == "input" or val is self.readout:
            return False
        return val.must or val.uses != 1 or any(not r.gated for r in val.readers)

    def resolve(self) -> tuple[list[_Val], list[tuple[int, int, str]], list[list[tuple]]]:
        """Vertices in topological order (stem first), the edges between them, each vertex's terms."""
        vals = [v for v in self.vals if self.is_vertex(v)]
        vals.sort(key=lambda v: (v is not self.stem, v.pos))
        for i, v in enumerate(vals):
            v.vertex = i
        edges: list[tuple[int, int, str]] = []
        terms: list[list[tuple]] = [[] for _ in vals]
        self.closing = []
        for v in vals:
            assert v.vertex is not None
            if v.kind == "edge" and v is not self.stem:
                self.edge_terms(v, v.vertex, (), edges, terms[v.vertex])
            elif v.kind == "sum":
                for part, chain, norms in v.terms:
                    self.term(part, chain, norms, v.vertex, edges, terms[v.vertex])
        return vals, edges, terms

    def term(self, val: _Val, chain: tuple, norms: tuple, dst: int, edges: list, terms: list) -> None:
        if val.vertex is not None:
            edges.append((val.vertex, dst, "skip"))
            terms.append(("skip", val.vertex, chain))
        elif val.kind == "edge":
            self.edge_terms(val, dst, chain, edges, terms)
            self.closing.extend((m, dst) for m in norms)
        else:
            for part, inner, more in val.terms:
                self.term(part, inner + chain, more + norms, dst, edges, terms)

    def edge_terms(self, val: _Val, dst: int, post: tuple, edges: list, terms: list) -> None:
        layer, src = val.layer, val.src
        assert layer is not None and src is not None
        layer.dst, layer.post = dst, post
        layer.post_act = nonlinear(post)
        for i, (piece, _, _, _) in enumerate(val.inputs):
            v, chain = src.pieces[piece]
            assert v.vertex is not None, "a value a weighted op reads is a vertex"
            layer.inputs[i].src, layer.inputs[i].chain = v.vertex, chain
            edges.append((v.vertex, dst, "block"))
            terms.append(("edge", layer, i))
        layer.src = layer.inputs[0].src
