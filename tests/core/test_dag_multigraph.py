"""Dag.from_edges: code graphs round-trip, multigraphs count paths by the same dynamic program."""

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from strategies import dags

from archscale.core.dag import Dag, DagError
from archscale.core.scaling import lr_scale, second_moments


@settings(max_examples=200, deadline=None)
@given(dags(max_vertices=6))
def test_from_edges_of_a_code_graph_is_that_graph(dag):
    again = Dag.from_edges(dag.n_vertices, [(e.src, e.dst, e.op) for e in dag.edges])
    assert again == dag and again.has_code and str(again) == dag.code and hash(again) == hash(dag)


def _paths_by_listing(n, edges):
    """Independent path enumeration: every edge sequence from vertex 0 to n-1."""
    out = []

    def walk(v, depth):
        if v == n - 1:
            out.append(depth)
            return
        for s, d, op in edges:
            if s == v:
                walk(d, depth + (op == "block"))

    walk(0, 0)
    return out


@settings(max_examples=150, deadline=None)
@given(dags(min_vertices=3, max_vertices=6))
def test_parallel_edges_multiply_paths_like_a_listing(dag):
    edges = [(e.src, e.dst, e.op) for e in dag.edges]
    extra = edges[: 1 + len(edges) // 2]  # duplicate some edges (a block twin or a skip twin)
    multi = Dag.from_edges(dag.n_vertices, edges + extra)
    listing = _paths_by_listing(multi.n_vertices, edges + extra)
    assert multi.n_paths == len(listing)
    assert multi.depth_counts(3) == {d + 3: listing.count(d) for d in sorted(set(listing))}
    assert sorted(multi.path_depths(3)) == sorted(d + 3 for d in listing)
    assert len(list(multi.iter_paths())) == multi.n_paths == len(list(multi.iter_edge_paths()))
    if extra and not multi.has_code:
        assert multi.in_degrees[extra[0][1]] >= 2


def test_multigraph_identity_display_and_errors():
    m = Dag.from_edges(3, [(0, 1, "block"), (0, 1, 2), (1, 2, "skip")])
    assert not m.has_code and m.n_vertices == 3 and m.output == 2
    assert str(m) == "multigraph(3 vertices: 0->1 block, 0->1 block, 1->2 skip)"
    assert eval(repr(m), {"Dag": Dag}) == m
    assert m == Dag.from_edges(3, [(1, 2, "skip"), (0, 1, 2), (0, 1, 2)]) != Dag.parse("2_01")
    assert m.in_degrees == (0, 2, 1) and m.n_paths == 2 and m.depth_counts(3) == {4: 2}
    for attr in ("code", "digits"):
        with pytest.raises(DagError, match="parallel edges"):
            getattr(m, attr)
    with pytest.raises(DagError, match="parallel"):
        m.op(0, 1)
    assert m.op(1, 2) == "skip" and m.op(0, 2) == "zero"
    assert len(m.all_edges) == 4  # two parallel blocks, the skip and the empty slot 0->2
    g = m.to_networkx()
    assert g.is_multigraph() and g.number_of_edges() == 3
    for bad, match in [([(1, 0, "block")], "forward"), ([(0, 3, "block")], "forward"),
                       ([(0, 1, "conv")], "unknown op"), ([(0, 1)], "triple")]:
        with pytest.raises(DagError, match=match):
            Dag.from_edges(3, bad)
    with pytest.raises(DagError, match="no path"):
        Dag.from_edges(3, [(0, 1, "block"), (0, 1, "block")]).require_path()


def test_lr_scale_and_second_moments_on_a_multigraph():
    # two parallel blocks 0->1, then a block and a skip in parallel 1->2: depths 4+1 and 3+1 twice each
    m = Dag.from_edges(3, [(0, 1, "block"), (0, 1, "block"), (1, 2, "block"), (1, 2, "skip")])
    assert lr_scale(m) == pytest.approx((2 * 5**3 + 2 * 4**3) ** -0.5 / 3**-1.5)
    assert lr_scale(m, "cnn", 5) == pytest.approx(lr_scale(m) * 3 / 5)
    k = second_moments(m)
    assert [k[v][v] for v in range(3)] == [1, 1, Fraction(3, 2)]  # the skip carries vertex 1 whole
    twin_skips = Dag.from_edges(2, [(0, 1, "skip"), (0, 1, "skip")])
    assert second_moments(twin_skips)[1][1] == 4  # z_1 = 2 z_0


def test_dynamic_program_handles_many_parallel_edges():
    n, k = 12, 3  # k parallel blocks between consecutive vertices: k**(n-1) paths, all of depth n-1
    m = Dag.from_edges(n, [(v, v + 1, "block") for v, _ in itertools.product(range(n - 1), range(k))])
    assert m.n_paths == k ** (n - 1) and m.depth_counts(3) == {n + 2: k ** (n - 1)}
