"""Networks as directed acyclic graphs in the reference string code (no torch).

A code such as ``2_02_002`` has one ``_``-separated group per vertex ``1 .. N-1``;
group ``i`` holds one digit per source vertex ``0 .. i-1`` naming the op of that edge.
Vertex 0 is the input (after the stem) and vertex ``N-1`` feeds the readout.

:meth:`Dag.from_edges` also builds multigraphs (several edges between the same two vertices,
e.g. two parallel Linear branches captured from a module), which no string code can hold; every
path count and path sum works on them unchanged (the same dynamic program).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import overload

from . import validate
from .errors import DagError, NoPathError

__all__ = [
    "OP_SETS",
    "PARAMETERIZED_OPS",
    "ZERO_OPS",
    "Dag",
    "DagError",
    "Edge",
    "NoPathError",
]

#: Op names by digit for each op set. ``mlp`` and ``cnn`` share one digit table.
OP_SETS: dict[str, tuple[str, ...]] = {
    "mlp": ("zero", "skip", "block"),
    "cnn": ("zero", "skip", "block"),
    "nb201": ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
}
#: Ops that carry weights: they add one to a path's depth.
PARAMETERIZED_OPS = frozenset({"block", "nor_conv_1x1", "nor_conv_3x3"})
#: Ops that are absent edges.
ZERO_OPS = frozenset({"zero", "none"})

_EXAMPLES = {"mlp": "2_02_002", "cnn": "2_02_002", "nb201": "3_03_003"}


@dataclass(frozen=True)
class Edge:
    """One edge ``src -> dst`` with its op name and digit."""

    src: int
    dst: int
    op: str
    digit: int

    @property
    def is_zero(self) -> bool:
        return self.op in ZERO_OPS

    @property
    def is_parameterized(self) -> bool:
        return self.op in PARAMETERIZED_OPS


def _check_ops(ops: str) -> str:
    if ops not in OP_SETS:
        raise DagError(f"unknown op set {ops!r}; accepted: {', '.join(sorted(OP_SETS))}")
    return ops


class Dag:
    """An immutable DAG over vertices ``0 .. n_vertices-1`` with one op per ordered pair.

    Build one with :meth:`parse` (``Dag.parse("2_02_002")``), :meth:`chain`, :meth:`from_edges`
    (any edge list, parallel edges allowed), or by enumerating a space with :meth:`space`.
    A graph with parallel edges (:attr:`has_code` false) has no :attr:`code` or :attr:`digits`.
    """

    __slots__ = ("_digits", "_ops", "_n", "_multi", "__dict__")

    def __init__(self, digits: tuple[tuple[int, ...], ...] | list, ops: str = "mlp"):
        self._ops = _check_ops(ops)
        digits = tuple(tuple(int(d) for d in group) for group in digits)
        if not digits:
            raise DagError(
                f"a DAG needs at least one group (one edge into vertex 1); "
                f"example: {_EXAMPLES[ops]!r}"
            )
        n_ops = len(OP_SETS[ops])
        for i, group in enumerate(digits, start=1):
            if len(group) != i:
                raise DagError(
                    f"group {i} has {len(group)} digit(s) but must have {i} "
                    f"(one per source vertex 0..{i - 1}); example: {_EXAMPLES[ops]!r}"
                )
            for d in group:
                if not 0 <= d < n_ops:
                    raise DagError(
                        f"digit {d} in group {i} is outside the {ops!r} op set "
                        f"(0..{n_ops - 1}: {', '.join(OP_SETS[ops])}); example: {_EXAMPLES[ops]!r}"
                    )
        self._digits: tuple[tuple[int, ...], ...] | None = digits
        self._n = len(digits) + 1
        self._multi: tuple[Edge, ...] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, code: str, ops: str = "mlp") -> Dag:
        """Parse a reference string code like ``"2_02_002"`` for op set ``ops``."""
        _check_ops(ops)
        example = _EXAMPLES[ops]
        if not isinstance(code, str):
            raise DagError(f"a DAG code must be a string like {example!r}, got {type(code).__name__}")
        code = code.strip()
        if not code:
            raise DagError(f"empty DAG code; give groups of digits separated by '_', e.g. {example!r}")
        groups = code.split("_")
        for i, group in enumerate(groups, start=1):
            if not group:
                raise DagError(f"group {i} of {code!r} is empty; example: {example!r}")
            if not group.isascii() or not group.isdigit():
                raise DagError(
                    f"group {i} of {code!r} ({group!r}) has a character that is not a digit; "
                    f"example: {example!r}"
                )
        return cls([[int(c) for c in g] for g in groups], ops=ops)

    @classmethod
    def from_edges(cls, n_vertices: int, edges, ops: str = "mlp") -> Dag:
        """A graph on ``n_vertices`` from ``(src, dst, op)`` triples (``op`` a name or a digit).

        Zero ops are dropped. When no two edges share a ``src -> dst`` pair the result is the
        ordinary code graph (``Dag.from_edges(3, [(0, 1, 2), (1, 2, 2)]) == Dag.parse("2_02")``);
        otherwise a multigraph, whose edges are kept in target-then-source order.
        """
        _check_ops(ops)
        n = validate.integer(n_vertices, "n_vertices of a DAG", minimum=2, error=DagError)
        names = OP_SETS[ops]
        kept: list[Edge] = []
        for item in edges:
            try:
                src, dst, op = item
            except (TypeError, ValueError):
                raise DagError(f"every edge must be a (src, dst, op) triple, got {item!r}") from None
            src = validate.integer(src, "edge source", minimum=0, error=DagError)
            dst = validate.integer(dst, "edge target", minimum=0, error=DagError)
            if not src < dst < n:
                raise DagError(f"edge {src}->{dst} must go forward between vertices 0..{n - 1} "
                               f"(source < target): a DAG's vertices are numbered in topological order")
            digit = _op_digit(op, ops)
            if names[digit] not in ZERO_OPS:
                kept.append(Edge(src, dst, names[digit], digit))
        kept.sort(key=lambda e: (e.dst, e.src, e.digit))
        pairs = Counter((e.src, e.dst) for e in kept)
        if all(c == 1 for c in pairs.values()):
            digits = [[0] * i for i in range(1, n)]
            for e in kept:
                digits[e.dst - 1][e.src] = e.digit
            return cls(digits, ops=ops)
        dag = cls.__new__(cls)
        dag._ops, dag._digits, dag._n, dag._multi = ops, None, n, tuple(kept)
        return dag

    @classmethod
    def chain(cls, n_blocks: int, ops: str = "mlp", op: int | None = None) -> Dag:
        """A chain of ``n_blocks`` parameterized edges ``0 -> 1 -> ... -> n_blocks``.

        ``op`` is the digit on each chain edge (default: the block/conv3x3 digit).
        ``n_blocks=0`` is not a DAG; use ``Dag.parse("1")`` for a lone skip.
        """
        _check_ops(ops)
        n_blocks = validate.positive_int(n_blocks, "n_blocks of a chain", error=DagError)
        digit = op if op is not None else (2 if ops != "nb201" else 3)
        return cls([[0] * (i - 1) + [digit] for i in range(1, n_blocks + 1)], ops=ops)

    @classmethod
    def space(cls, n_vertices: int, ops: str = "mlp", digits: tuple[int, ...] | None = None
              ) -> Iterator[Dag]:
        """Every DAG on ``n_vertices`` vertices, in lexicographic order of the code.

        ``digits`` restricts the ops (e.g. ``(0, 2)`` for block-only graphs).
        ``Dag.space(5)`` yields the 3**10 = 59,049 graphs of the ``x_xx_xxx_xxxx`` space.
        """
        _check_ops(ops)
        n_vertices = validate.integer(n_vertices, "n_vertices of a DAG space", minimum=2, error=DagError)
        allowed = _allowed_digits(ops, digits)
        n_edges = n_vertices * (n_vertices - 1) // 2
        for flat in itertools.product(allowed, repeat=n_edges):
            yield cls(_unflatten(flat, n_vertices), ops=ops)

    @staticmethod
    def space_size(n_vertices: int, ops: str = "mlp", digits: tuple[int, ...] | None = None) -> int:
        """Number of graphs :meth:`space` yields."""
        k = len(_allowed_digits(_check_ops(ops), digits))
        return k ** (n_vertices * (n_vertices - 1) // 2)

    @classmethod
    def sample(cls, n_vertices: int, k: int, seed: int, ops: str = "mlp",
               digits: tuple[int, ...] | None = None, require_path: bool = True) -> list[Dag]:
        """``k`` distinct graphs drawn uniformly from a space with a seeded RNG.

        With ``require_path`` only graphs with an input-to-output path are kept.
        """
        _check_ops(ops)
        n_vertices = validate.integer(n_vertices, "n_vertices of a DAG space", minimum=2, error=DagError)
        k = validate.positive_int(k, "number of graphs k", error=DagError)
        allowed = _allowed_digits(ops, digits)
        n_edges = n_vertices * (n_vertices - 1) // 2
        rng = random.Random(validate.integer(seed, "seed", error=DagError))
        seen: set[tuple[int, ...]] = set()
        out: list[Dag] = []
        total = len(allowed) ** n_edges
        attempts = 0
        while len(out) < k:
            attempts += 1
            if attempts > 100 * k + 10_000 or len(seen) >= total:
                raise DagError(f"could not draw {k} distinct graphs with a path from this space")
            flat = tuple(rng.choice(allowed) for _ in range(n_edges))
            if flat in seen:
                continue
            seen.add(flat)
            dag = cls(_unflatten(flat, n_vertices), ops=ops)
            if require_path and not dag.has_path:
                continue
            out.append(dag)
        return out

    # ------------------------------------------------------------------ identity
    @property
    def ops(self) -> str:
        return self._ops

    @property
    def has_code(self) -> bool:
        """Whether a string code holds this graph (false for multigraphs with parallel edges)."""
        return self._digits is not None

    def _require_code(self, what: str) -> tuple[tuple[int, ...], ...]:
        if self._digits is None:
            raise DagError(f"this graph has parallel edges between the same vertices, so it has no "
                           f"{what} (a string code holds one op per vertex pair): {self}")
        return self._digits

    @property
    def digits(self) -> tuple[tuple[int, ...], ...]:
        return self._require_code("digits")

    @property
    def code(self) -> str:
        return "_".join("".join(str(d) for d in g) for g in self._require_code("string code"))

    def __str__(self) -> str:
        """The code when one exists, else ``multigraph(N: src->dst op, ...)``."""
        if self._digits is not None:
            return self.code
        listed = ", ".join(f"{e.src}->{e.dst} {e.op}" for e in self.edges)
        return f"multigraph({self._n} vertices: {listed})"

    def __repr__(self) -> str:
        if self._digits is not None:
            return f"Dag({self.code!r}, ops={self._ops!r})"
        triples = [(e.src, e.dst, e.op) for e in self.edges]
        return f"Dag.from_edges({self._n}, {triples!r}, ops={self._ops!r})"

    def _key(self) -> tuple:
        if self._digits is not None:
            return (self._digits,)
        assert self._multi is not None  # a graph without a code is a multigraph
        return (self._n, tuple((e.src, e.dst, e.digit) for e in self._multi))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dag):
            return NotImplemented
        return self._key() == other._key() and OP_SETS[self._ops] == OP_SETS[other._ops]

    def __hash__(self) -> int:
        return hash((self._key(), OP_SETS[self._ops]))

    # ------------------------------------------------------------------ structure
    @property
    def n_vertices(self) -> int:
        return self._n

    @property
    def output(self) -> int:
        """The last vertex, which feeds the readout."""
        return self._n - 1

    def op(self, src: int, dst: int) -> str:
        """Op name on the edge ``src -> dst`` (``src < dst``); refused for parallel edges."""
        if not 0 <= src < dst < self.n_vertices:
            raise DagError(f"no edge slot {src}->{dst} in a graph with {self.n_vertices} vertices")
        if self._digits is not None:
            return OP_SETS[self._ops][self._digits[dst - 1][src]]
        assert self._multi is not None
        ops = [e.op for e in self._multi if (e.src, e.dst) == (src, dst)]
        if len(ops) > 1:
            raise DagError(f"vertices {src}->{dst} are joined by {len(ops)} parallel edges "
                           f"({', '.join(ops)}); use iter_edge_paths() to tell them apart")
        return ops[0] if ops else OP_SETS[self._ops][0]

    @cached_property
    def all_edges(self) -> tuple[Edge, ...]:
        """Every edge slot including zero edges, ordered by target then source.

        A multigraph lists each of its parallel edges and a zero edge for each empty slot.
        """
        names = OP_SETS[self._ops]
        if self._digits is None:
            assert self._multi is not None
            out = []
            for dst in range(1, self._n):
                for src in range(dst):
                    here = [e for e in self._multi if (e.src, e.dst) == (src, dst)]
                    out.extend(here or [Edge(src, dst, names[0], 0)])
            return tuple(out)
        return tuple(
            Edge(src, dst, names[d], d)
            for dst, group in enumerate(self._digits, start=1)
            for src, d in enumerate(group)
        )

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        """The non-zero edges, ordered by target then source."""
        return tuple(e for e in self.all_edges if not e.is_zero)

    def _count(self, end: str) -> tuple[int, ...]:
        deg = [0] * self.n_vertices
        for e in self.edges:
            deg[getattr(e, end)] += 1
        return tuple(deg)

    @cached_property
    def in_degrees(self) -> tuple[int, ...]:
        """Number of non-zero edges entering each vertex (vertex 0: 0)."""
        return self._count("dst")

    def in_degree(self, v: int) -> int:
        return self.in_degrees[v]

    @cached_property
    def out_degrees(self) -> tuple[int, ...]:
        """Number of non-zero edges leaving each vertex."""
        return self._count("src")

    @cached_property
    def live(self) -> tuple[bool, ...]:
        """Whether each vertex is reachable from the input through non-zero edges."""
        live = [False] * self.n_vertices
        live[0] = True
        for e in self.edges:  # ordered by target, so sources are settled first
            if live[e.src]:
                live[e.dst] = True
        return tuple(live)

    @cached_property
    def live_in_degrees(self) -> tuple[int, ...]:
        """In-degree counting only edges whose source carries signal from the input.

        An edge out of a vertex no path reaches carries zeros at initialization, so
        the variance rule divides by this count (it equals :attr:`in_degrees` whenever
        every vertex is reachable).
        """
        deg = [0] * self.n_vertices
        for e in self.edges:
            if self.live[e.src]:
                deg[e.dst] += 1
        return tuple(deg)

    # ------------------------------------------------------------------ paths
    @cached_property
    def _param_count_histogram(self) -> tuple[Counter, ...]:
        """Per vertex: Counter {parameterized edges on the path: number of paths from 0}."""
        hist: list[Counter[int]] = [Counter() for _ in range(self.n_vertices)]
        hist[0][0] = 1
        for e in self.edges:
            w = 1 if e.is_parameterized else 0
            src, dst = hist[e.src], hist[e.dst]
            for k, c in src.items():
                dst[k + w] += c
        return tuple(hist)

    @property
    def n_paths(self) -> int:
        """Number of end-to-end paths (input to output) through non-zero edges."""
        return sum(self._param_count_histogram[self.output].values())

    @property
    def has_path(self) -> bool:
        return self.n_paths > 0

    def require_path(self) -> None:
        """Raise :class:`NoPathError` when no input-to-output path exists."""
        if not self.has_path:
            raise NoPathError(
                f"DAG {str(self)!r} has no path from the input (vertex 0) to the output "
                f"(vertex {self.output}) through non-zero edges, so it cannot be trained; "
                f"connect them, e.g. {_EXAMPLES[self._ops]!r}"
            )

    def iter_edge_paths(self) -> Iterator[tuple[Edge, ...]]:
        """End-to-end paths as edge sequences, depth-first in vertex order (parallel edges apart)."""
        succ: list[list[Edge]] = [[] for _ in range(self.n_vertices)]
        for e in sorted(self.edges, key=lambda e: (e.src, e.dst, e.digit)):
            succ[e.src].append(e)
        reaches = [False] * self.n_vertices
        reaches[self.output] = True
        for v in range(self.n_vertices - 1, -1, -1):
            reaches[v] = reaches[v] or any(reaches[e.dst] for e in succ[v])
        if not reaches[0]:
            return
        stack: list[tuple[Edge, ...]] = [(e,) for e in reversed(succ[0]) if reaches[e.dst]]
        while stack:
            path = stack.pop()
            last = path[-1].dst
            if last == self.output:
                yield path
                continue
            for e in reversed(succ[last]):
                if reaches[e.dst]:
                    stack.append(path + (e,))

    def iter_paths(self) -> Iterator[tuple[int, ...]]:
        """End-to-end paths as vertex sequences, depth-first in vertex order.

        A multigraph yields one sequence per edge path, so parallel edges repeat a sequence.
        """
        for path in self.iter_edge_paths():
            yield (0,) + tuple(e.dst for e in path)

    def _check_path_limit(self, limit: int | None) -> None:
        if limit is not None and self.n_paths > limit:
            raise DagError(
                f"{str(self)!r} has {self.n_paths} paths, more than the limit {limit}; "
                f"use depth_counts() or path_power_sum() instead of listing them"
            )

    def paths(self, limit: int | None = None) -> list[tuple[int, ...]]:
        """All end-to-end paths; raises if there are more than ``limit``."""
        self._check_path_limit(limit)
        return list(self.iter_paths())

    def path_param_count(self, path: tuple[int, ...]) -> int:
        """Number of parameterized edges along a vertex path."""
        return sum(1 for a, b in zip(path, path[1:]) if self.op(a, b) in PARAMETERIZED_OPS)

    def path_depths(self, offset: int = 0, limit: int | None = None) -> list[int]:
        """``offset + (parameterized edges)`` for every end-to-end path, in path order."""
        self._check_path_limit(limit)
        return [offset + sum(e.is_parameterized for e in p) for p in self.iter_edge_paths()]

    @overload
    def depth_counts(self, offset: int = 0) -> dict[int, int]: ...
    @overload
    def depth_counts(self, offset: float) -> dict[float, int]: ...  # the path-law fits' offsets

    def depth_counts(self, offset: float = 0) -> dict[int, int] | dict[float, int]:
        """``{L_p: number of paths}`` by dynamic programming, without listing paths."""
        hist = self._param_count_histogram[self.output]
        return {offset + k: c for k, c in sorted(hist.items())}

    @overload
    def path_power_sum(self, power: int = 3, offset: int = 0) -> int: ...
    @overload
    def path_power_sum(self, power: int = 3, offset: float = 0) -> float: ...

    def path_power_sum(self, power: int = 3, offset: float = 0) -> int | float:
        """``sum over end-to-end paths p of L_p**power`` with ``L_p = offset + params(p)``.

        Computed from :meth:`depth_counts` (exact integers for integer offsets), so graphs
        with astronomically many paths are answered in milliseconds.
        """
        return sum(c * depth**power for depth, c in self.depth_counts(offset).items())

    # ------------------------------------------------------------------ export
    def to_networkx(self, include_zero: bool = False):
        """A ``networkx.DiGraph`` (a ``MultiDiGraph`` for multigraphs) with ``op``/``digit`` attributes."""
        import networkx as nx

        g: nx.DiGraph[int] = (nx.DiGraph if self.has_code else nx.MultiDiGraph)(code=str(self), ops=self._ops)
        g.add_nodes_from(range(self.n_vertices))
        for e in self.all_edges if include_zero else self.edges:
            g.add_edge(e.src, e.dst, op=e.op, digit=e.digit, parameterized=e.is_parameterized)
        return g


def _op_digit(op: object, ops: str) -> int:
    """The digit of ``op`` (a name or a digit) in op set ``ops``."""
    names = OP_SETS[ops]
    if isinstance(op, str) and op in names:
        return names.index(op)
    if not isinstance(op, bool) and isinstance(op, int) and 0 <= op < len(names):
        return op
    raise DagError(f"unknown op {op!r} for op set {ops!r}; accepted: "
                   f"{', '.join(names)} or their digits 0..{len(names) - 1}")


def _allowed_digits(ops: str, digits: tuple[int, ...] | None) -> tuple[int, ...]:
    n_ops = len(OP_SETS[ops])
    if digits is None:
        return tuple(range(n_ops))
    out = tuple(validate.int_list(digits, "digits", minimum=0, unique=True, error=DagError))
    if max(out) >= n_ops:
        raise DagError(f"digits {out} leave the {ops!r} op set (0..{n_ops - 1}: {', '.join(OP_SETS[ops])})")
    return out


def _unflatten(flat: tuple[int, ...], n_vertices: int) -> list[list[int]]:
    groups, i = [], 0
    for size in range(1, n_vertices):
        groups.append(list(flat[i : i + size]))
        i += size
    return groups
