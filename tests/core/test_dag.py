"""The DAG core: parsing, in-degrees, paths and the dynamic-programming path sums."""

from math import comb

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import dags

from archscale.core.dag import Dag, DagError, NoPathError


@given(dags())
def test_parse_format_round_trip(dag):
    assert Dag.parse(str(dag), ops=dag.ops) == dag
    assert str(Dag.parse(str(dag), ops=dag.ops)) == str(dag)


@given(dags(ops="nb201"))
def test_round_trip_nb201(dag):
    assert str(Dag.parse(dag.code, ops="nb201")) == dag.code


@given(dags())
def test_in_degrees_match_networkx(dag):
    g = dag.to_networkx()
    assert list(dag.in_degrees) == [g.in_degree(v) for v in range(dag.n_vertices)]
    assert list(dag.out_degrees) == [g.out_degree(v) for v in range(dag.n_vertices)]


@given(dags(ops="nb201", max_vertices=6))
def test_path_count_matches_networkx_simple_paths(dag):
    g = dag.to_networkx()
    expected = list(nx.all_simple_paths(g, 0, dag.output)) if dag.n_vertices > 1 else []
    assert dag.n_paths == len(expected)
    assert sorted(dag.paths()) == sorted(tuple(p) for p in expected)
    assert dag.has_path == bool(expected)


@given(dags(), st.integers(0, 5), st.integers(1, 4))
def test_dynamic_programming_sum_equals_enumeration(dag, offset, power):
    depths = dag.path_depths(offset)
    assert dag.path_power_sum(power, offset) == sum(d**power for d in depths)
    counts = dag.depth_counts(offset)
    assert sum(counts.values()) == len(depths)
    assert sorted(d for d, c in counts.items() for _ in range(c)) == sorted(depths)


@given(dags(ops="nb201"))
def test_nb201_depth_counts_only_convolutions(dag):
    for path, depth in zip(dag.paths(), dag.path_depths(offset=1)):
        convs = sum(dag.op(a, b) in ("nor_conv_1x1", "nor_conv_3x3") for a, b in zip(path, path[1:]))
        assert depth == 1 + convs


def test_examples_from_design():
    chain = Dag.parse("2_02_002")
    assert chain.n_paths == 1 and chain.path_depths(3) == [6]
    full = Dag.parse("2_22_222")
    assert full.n_paths == 4
    assert sorted(full.path_depths(3)) == [4, 5, 5, 6]
    assert full.in_degrees == (0, 1, 2, 3)
    assert Dag.chain(3) == chain
    assert str(Dag.chain(2, ops="nb201")) == "3_03"


def test_large_graph_path_sum_closed_form():
    # complete block DAG on n vertices: C(n-2, k-1) paths with k blocks
    n = 60
    dag = Dag([[2] * i for i in range(1, n)])
    expected = sum(comb(n - 2, k - 1) * (3 + k) ** 3 for k in range(1, n))
    assert dag.n_paths == 2 ** (n - 2)
    assert dag.path_power_sum(3, offset=3) == expected


def test_space_enumeration_sizes():
    assert Dag.space_size(5) == 59_049
    codes = [d.code for d in Dag.space(5)]
    assert len(codes) == 59_049 == len(set(codes))
    assert codes[0] == "0_00_000_0000" and codes[-1] == "2_22_222_2222"
    assert sum(1 for _ in Dag.space(4, ops="nb201")) == 5**6 == Dag.space_size(4, ops="nb201")


def test_sample_is_seeded_distinct_and_trainable():
    a = Dag.sample(5, 40, seed=3)
    assert a == Dag.sample(5, 40, seed=3)
    assert a != Dag.sample(5, 40, seed=4)
    assert len(set(a)) == 40 and all(d.has_path for d in a)


def test_live_in_degree_ignores_dead_sources():
    dag = Dag.parse("0_22_222")  # vertex 1 has no input
    assert dag.live == (True, False, True, True)
    assert dag.in_degrees == (0, 0, 2, 3)
    assert dag.live_in_degrees == (0, 0, 1, 2)


@pytest.mark.parametrize("code, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("2_2", "group 2 has 1 digit"),
    ("22_022", "group 1 has 2 digit"),
    ("2_02_0002", "group 3 has 4 digit"),
    ("2_03_002", "digit 3 in group 2"),
    ("2__002", "group 2 of"),
    ("2_0a_002", "not a digit"),
    ("2_02_002_", "group 4 of"),
])
def test_malformed_codes_raise_clear_errors(code, fragment):
    with pytest.raises(DagError, match=fragment):
        Dag.parse(code)


def test_no_path_is_an_error_only_when_asked():
    dag = Dag.parse("2_00_000")
    assert not dag.has_path and dag.paths() == []
    with pytest.raises(NoPathError, match="no path"):
        dag.require_path()


def test_unknown_op_set():
    with pytest.raises(DagError, match="unknown op set"):
        Dag.parse("2", ops="transformer")
