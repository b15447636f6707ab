"""The one DAG traversal: its order and zeros rule, and every model computing through it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dags

from archscale.core.dag import Dag
from archscale.nn.models import DagCNN, DagMLP
from archscale.nn.traverse import traverse
from archscale.train.stack import Stack


def test_vertices_sum_incoming_edges_in_edge_order_without_torch():
    dag = Dag.parse("2_12_201")  # 1 <- 0; 2 <- 0 (skip), 1; 3 <- 0, 2 (skip)
    seen = []

    def edge(e, v):
        seen.append((e.src, e.dst))
        return v * 10 if e.is_parameterized else v

    values = traverse(dag, 1, edge, zeros_like=lambda v: 0)
    assert seen == [(e.src, e.dst) for e in dag.edges]  # by target, then source
    assert values == [1, 10, 1 + 100, 10 + 101]


def test_a_vertex_without_input_holds_zeros_and_its_edges_still_apply():
    dag = Dag.parse("0_12_002")  # vertex 1 has no incoming edge
    values = traverse(dag, torch.ones(2), lambda e, v: v + 1 if e.is_parameterized else v)
    assert torch.equal(values[1], torch.zeros(2))
    assert torch.equal(values[2], torch.zeros(2) + torch.ones(2) + 1)  # skip 0->1 (zeros) + block 1->2
    assert torch.equal(values[3], values[2] + 1)


def test_unconnected_vertices_are_zeros_too():
    dag = Dag.parse("2_00_200")  # vertex 2: no edge in or out; vertex 1 leads nowhere
    values = traverse(dag, torch.ones(3), lambda e, v: 2 * v)
    assert torch.equal(values[2], torch.zeros(3))
    assert torch.equal(values[1], 2 * torch.ones(3)) and torch.equal(values[3], 2 * torch.ones(3))


def _stacked_equals_models(nets, x, shared):
    stack = Stack(nets, torch.device("cpu"), torch.float64)
    xs = x if shared else x.unsqueeze(0).expand(len(nets), *x.shape).contiguous()
    with torch.no_grad():
        got = stack.forward(xs, [p for p in stack.params], shared=shared)
        for r, net in enumerate(nets):
            torch.testing.assert_close(got[r], net(x), rtol=1e-10, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(dag=dags(min_vertices=2, max_vertices=5), layout=st.sampled_from(["paper", "reference"]),
       act=st.sampled_from(["relu", "gelu"]), shared=st.booleans())
def test_dag_mlp_forward_equals_the_stacked_forward(dag, layout, act, shared):
    if not dag.n_paths:
        return
    torch.manual_seed(0)
    nets = [DagMLP(dag, 6, 8, 3, act, layout=layout).double() for _ in range(3)]
    _stacked_equals_models(nets, torch.randn(5, 6, dtype=torch.float64), shared)


@settings(max_examples=8, deadline=None)
@given(dag=dags(ops="cnn", min_vertices=2, max_vertices=4), layout=st.sampled_from(["paper", "reference"]),
       k=st.sampled_from([1, 3, 5]), shared=st.booleans())
def test_dag_cnn_forward_equals_the_stacked_forward(dag, layout, k, shared):
    if not dag.n_paths:
        return
    torch.manual_seed(0)
    nets = [DagCNN(dag, 2, 4, 3, kernel_size=k, layout=layout).double() for _ in range(2)]
    _stacked_equals_models(nets, torch.randn(3, 2, 6, 6, dtype=torch.float64), shared)


@pytest.mark.parametrize("code", ["2_02_002", "1_21_012", "0_12_202"])
def test_return_nodes_are_the_traversal(code):
    torch.manual_seed(0)
    model = DagMLP(code, 4, 8, 3)
    x = torch.randn(5, 4)
    _, nodes = model(x, return_nodes=True)
    with torch.no_grad():
        again = traverse(model.dag, model.stem(x),
                         lambda e, v: model.edge_modules[model.edge_key(e.src, e.dst)](v))
    for a, b in zip(nodes, again):
        assert torch.equal(a, b)
