"""DagMLP / DagCNN: layout, per-edge initialization, and the second-moment property of eq. 3."""

import numpy as np
import pytest
import torch

from archscale.core.dag import Dag, DagError, NoPathError
from archscale.core.errors import ArchscaleError
from archscale.core.scaling import init_std
from archscale.nn.models import DagCNN, DagMLP
from archscale.probe import forward_second_moments


def _moments_on_live_vertices(model, x):
    moments = forward_second_moments(model, x)
    return moments[list(model.dag.live)]


def _block_only_dags(k, seed):
    dags = Dag.sample(5, k, seed=seed, digits=(0, 2))
    return [d for d in dags if max(d.live_in_degrees) > 1]


@pytest.mark.slow
def test_second_moments_flat_with_archscale_init_and_drifting_with_he():
    torch.manual_seed(0)
    x = torch.randn(256, 32)
    graphs = _block_only_dags(8, seed=11)[:5]
    assert graphs
    for dag in graphs:
        torch.manual_seed(1)
        ours = _moments_on_live_vertices(DagMLP(dag, 32, 2048, 10), x)
        torch.manual_seed(1)
        he = _moments_on_live_vertices(DagMLP(dag, 32, 2048, 10, init="he"), x)
        assert ours.max() / ours.min() < 1.10, (dag.code, ours)
        assert he.max() / he.min() > 1.5, (dag.code, he)


def test_per_edge_std_follows_target_in_degree():
    torch.manual_seed(0)
    dag = Dag.parse("2_22_222_2022")
    model = DagMLP(dag, 20, 512, 10)
    for e in dag.edges:
        w = model.edge_layer(e.src, e.dst).weight
        expected = init_std(512, dag.live_in_degrees[e.dst])
        assert model.edge_init_std(e.src, e.dst) == pytest.approx(expected)
        assert float(w.detach().std()) == pytest.approx(expected, rel=0.02)
        assert torch.all(model.edge_layer(e.src, e.dst).bias == 0)
    assert float(model.readout.weight.std()) == pytest.approx(np.sqrt(2) / 512, rel=0.05)


def test_init_variants_differ_as_documented():
    dag = Dag.parse("2_22_222")
    he = DagMLP(dag, 8, 64, 10, init="he")
    src = DagMLP(dag, 8, 64, 10, init="source")
    ref = DagMLP(dag, 8, 64, 10, init="reference", readout="reference")
    assert he.edge_init_std(1, 3) == pytest.approx(init_std(64, 1))
    assert src.edge_init_std(2, 3) == pytest.approx(init_std(64, 2))  # source vertex 2 has in-degree 2
    assert src.edge_init_std(0, 3) == pytest.approx(init_std(64, 1))
    assert ref.readout_init_std() == pytest.approx(2 / 10)  # the reference's readout: (sqrt(2/fan_out))^2
    assert DagMLP(dag, 8, 64, 10, init="reference").readout_init_std() == pytest.approx(np.sqrt(2) / 64)
    assert ref.edge_init_std(2, 3) == pytest.approx(init_std(64, 2))  # fan_out == fan_in here


def test_reference_layout_grows_second_moment_at_merges():
    torch.manual_seed(0)
    x = torch.randn(256, 32)
    m = forward_second_moments(DagMLP("2_22_222", 32, 2048, 10, layout="reference"), x)
    assert m[2] / m[1] == pytest.approx(1 + 1 / np.pi, rel=0.08)
    assert m[3] / m[1] > 1.6


def test_paper_and_reference_layouts_agree_on_chains():
    torch.manual_seed(0)
    paper = DagMLP("2_02_002", 12, 32, 5)
    ref = DagMLP("2_02_002", 12, 32, 5, layout="reference")
    ref.load_state_dict(paper.state_dict())
    x = torch.randn(7, 12)
    torch.testing.assert_close(paper(x), ref(x))


def test_return_nodes_and_shapes():
    model = DagMLP("2_12_202", (3 * 4 * 4), 16, 7, act="gelu")
    logits, nodes = model(torch.randn(5, 3, 4, 4), return_nodes=True)
    assert logits.shape == (5, 7) and len(nodes) == 4
    assert all(n.shape == (5, 16) for n in nodes)
    cnn = DagCNN("2_12_202", 3, 8, 10, kernel_size=5)
    logits, nodes = cnn(torch.randn(2, 3, 9, 9), return_nodes=True)
    assert logits.shape == (2, 10) and all(n.shape == (2, 8, 9, 9) for n in nodes)
    assert cnn.edge_layer(0, 1).weight.shape == (8, 8, 5, 5)
    assert cnn.edge_layer(0, 2) is None  # skip edge


def test_skip_edges_are_identity_and_dead_vertices_are_zero():
    model = DagMLP("0_12_202", 4, 8, 3)  # vertex 1 has no input
    _, nodes = model(torch.randn(3, 4), return_nodes=True)
    assert torch.all(nodes[1] == 0)
    skip = DagMLP("1", 4, 8, 3)
    _, nodes = skip(torch.randn(3, 4), return_nodes=True)
    torch.testing.assert_close(nodes[0], nodes[1])


def test_cnn_second_moments_are_flat_away_from_borders():
    torch.manual_seed(0)
    model = DagCNN("2_22_222", 3, 256, 10, kernel_size=3)
    x = torch.randn(16, 3, 32, 32)
    _, nodes = model(x, return_nodes=True)
    inner = np.array([float(n[..., 4:-4, 4:-4].pow(2).mean()) for n in nodes])
    assert inner.max() / inner.min() < 1.15


@pytest.mark.parametrize("kwargs, match", [
    (dict(dag="2_00_000"), "no path"),
    (dict(dag="2_3"), "group 2"),
    (dict(width=0), "width"),
    (dict(act="tanh"), "activation"),
    (dict(init="xavier"), "init"),
    (dict(layout="post"), "layout"),
])
def test_bad_model_arguments(kwargs, match):
    args = dict(dag="2_02_002", in_dim=4, width=8, out_dim=3) | kwargs
    with pytest.raises((ArchscaleError, DagError, NoPathError), match=match):
        DagMLP(**args)


def test_bad_kernel_size():
    with pytest.raises(ArchscaleError, match="positive odd integer"):
        DagCNN("2", 3, 8, 10, kernel_size=4)


@pytest.mark.parametrize("init", ["archscale", "he", "source", "reference"])
def test_the_readout_is_chosen_by_readout_alone(init):
    """No init scheme overrides the readout: the three readouts draw their own stds under every init."""
    expected = {"mean_field": np.sqrt(2) / 128, "standard": np.sqrt(2 / 128), "reference": 2 / 10}
    for readout, std in expected.items():
        model = DagMLP("2_02", 64, 128, 10, init=init, readout=readout)
        assert model.readout_init_std() == pytest.approx(std)


def test_one_list_of_init_schemes_and_validators_that_say_what_is_accepted():
    from archscale.core import scaling
    from archscale.nn import models

    assert models.INIT_SCHEMES is scaling.INIT_SCHEMES
    with pytest.raises(ArchscaleError, match="accepted: archscale, he, source, reference"):
        DagMLP("2", 4, 8, 3, init="xavier")
    with pytest.raises(ArchscaleError, match="in_dim must be an integer >= 1"):
        DagMLP("2", np.int64(0), 8, 3)
    assert DagMLP("2", np.int64(4), np.int64(8), 3).width == 8  # numpy integers are integers
