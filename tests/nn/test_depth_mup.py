"""Depth-muP: residual chains, the branch multiplier of DagMLP/DagCNN, and apply(depth_mup=True)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from strategies import dags
from torch import nn

import archscale
from archscale import Dag
from archscale.core.errors import ArchscaleError, DagError
from archscale.core.residual import branch_edges, depth_mup_multiplier, residual_blocks, residual_chain_dag
from archscale.nn.models import DagCNN, DagMLP


# ---------------------------------------------------------------------------------------- graphs
def test_residual_chain_dag_and_its_blocks():
    assert residual_chain_dag(2) == Dag.parse("2_12_002_0012")
    assert residual_chain_dag(1, 3) == Dag.parse("2_02_102")
    for k in (1, 2, 5):
        blocks = residual_blocks(residual_chain_dag(k))
        assert [(b.start, b.merge, b.layers) for b in blocks] == [(2 * i, 2 * i + 2, 2) for i in range(k)]
        assert [(b.closing.src, b.closing.dst) for b in blocks] == [(2 * i + 1, 2 * i + 2) for i in range(k)]
        assert depth_mup_multiplier(residual_chain_dag(k)) == pytest.approx(1 / math.sqrt(k))
    assert depth_mup_multiplier(residual_chain_dag(4), scale=2.0) == pytest.approx(1.0)
    # a plain layer before the blocks, and a one-layer branch (a multigraph, as apply() captures it)
    lead = Dag.parse("2_02_012")
    assert [(b.start, b.merge) for b in residual_blocks(lead)] == [(1, 3)]
    multi = Dag.from_edges(3, [(0, 1, "block"), (1, 2, "block"), (1, 2, "skip")])
    assert [(b.start, b.merge, b.layers) for b in residual_blocks(multi)] == [(1, 2, 1)]


@pytest.mark.parametrize("code, reason", [
    ("2_02", "no residual block"),
    ("2_22", "vertex 0 has out-edges"),
    ("2_12_202_0012", "vertex 0 has out-edges"),
    ("2_12_002_0112", "passes vertex 1"),
    ("2_11", "passes vertex 1"),  # the branch closes with a skip
    ("2_12_000", "stops before the output"),
    ("2_12_000_0010", r"vertices \[3\] lie off the chain"),
])
def test_graphs_that_are_not_residual_chains_are_refused_with_the_reason(code, reason):
    with pytest.raises(DagError, match=reason):
        residual_blocks(Dag.parse(code))
    with pytest.raises(DagError, match="not a residual chain"):
        depth_mup_multiplier(Dag.parse(code))


@settings(max_examples=300, deadline=None)
@given(dags(max_vertices=8))
def test_every_residual_chain_has_two_paths_per_block(dag):
    """Each block offers the skip or its branch and nothing else: 2^K paths; K branch edges to scale."""
    try:
        blocks = residual_blocks(dag)
    except DagError:
        return
    assert dag.n_paths == 2 ** len(blocks)
    assert {(e.src, e.dst) for e in branch_edges(dag)} == {(b.closing.src, b.closing.dst) for b in blocks}


def test_branch_edges_are_the_weighted_edges_into_a_vertex_with_a_skip():
    dag = Dag.parse("2_12_202_0012")  # vertex 2: skip 0->2 and block 1->2; vertex 4: skip 2->4 and 3->4
    assert [(e.src, e.dst) for e in branch_edges(dag)] == [(1, 2), (3, 4)]
    assert branch_edges(Dag.parse("2_22")) == []


# ---------------------------------------------------------------------------------------- models
def _scaled_copy(net, edges, c):
    """``net`` with the weights and biases of ``edges`` multiplied by ``c`` (the same function as a
    multiplier ``c`` on those edges in the paper layout)."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for src, dst in edges:
            layer = out.edge_layer(src, dst)
            layer.weight.mul_(c)
            layer.bias.mul_(c)
    return out


@pytest.mark.parametrize("code", ["2_12_002_0012", "2_12_202_0012"])
def test_branch_multiplier_scales_exactly_the_branch_edges(code):
    torch.manual_seed(0)
    plain = DagMLP(code, 12, 16, 3)
    torch.manual_seed(0)
    scaled = DagMLP(code, 12, 16, 3, branch_multiplier=0.3)
    x = torch.randn(7, 12)
    expected = _scaled_copy(plain, [(e.src, e.dst) for e in branch_edges(plain.dag)], 0.3)
    torch.testing.assert_close(scaled(x), expected(x))
    assert not torch.allclose(scaled(x), plain(x))
    assert "branch_multiplier=0.3" in repr(scaled)


def test_depth_mup_multiplier_in_models_and_the_one_block_net_is_unchanged():
    torch.manual_seed(1)
    net = DagMLP(residual_chain_dag(4), 12, 16, 3, branch_multiplier="depth_mup")
    assert net.branch_multiplier == pytest.approx(0.5)
    for sd in (0, 1):
        torch.manual_seed(sd)
        a = DagMLP(residual_chain_dag(1), 12, 16, 3)
        torch.manual_seed(sd)
        b = DagMLP(residual_chain_dag(1), 12, 16, 3, branch_multiplier="depth_mup")
        x = torch.randn(4, 12)
        assert torch.equal(a(x), b(x))
    cnn = DagCNN(residual_chain_dag(2, ops="cnn"), 1, 4, 3, branch_multiplier="depth_mup")
    assert cnn.branch_multiplier == pytest.approx(1 / math.sqrt(2))
    assert cnn(torch.randn(2, 1, 6, 6)).shape == (2, 3)


@pytest.mark.parametrize("value, match", [(-1.0, "positive"), (0, "positive"), ("sqrt", "depth_mup"),
                                          (True, "number")])
def test_bad_branch_multipliers_are_refused(value, match):
    with pytest.raises(ArchscaleError, match=match):
        DagMLP("2_12", 4, 4, 2, branch_multiplier=value)
    with pytest.raises(DagError, match="not a residual chain"):
        DagMLP("2_22", 4, 4, 2, branch_multiplier="depth_mup")


def test_a_multiplier_is_the_sgd_reparametrization_it_is_documented_to_be():
    """Under SGD, multiplier c on a layer == weights c times larger at c^2 times the learning rate."""
    torch.manual_seed(0)
    code, c, lr = "2_12", 0.4, 0.05
    mult = DagMLP(code, 6, 8, 3, branch_multiplier=c)
    torch.manual_seed(0)
    plain = DagMLP(code, 6, 8, 3)
    reparam = _scaled_copy(plain, [(1, 2)], c)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    branch = set(reparam.edge_layer(1, 2).parameters())
    for net, rate in ((mult, lambda p: lr), (reparam, lambda p: lr * c**2 if p in branch else lr)):
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p.sub_(rate(p) * g)
    torch.testing.assert_close(mult(x), reparam(x), rtol=1e-5, atol=1e-6)


def test_the_batched_trainer_refuses_branch_multipliers_and_sweep_module_trains_them():
    from archscale.data import load_dataset
    from archscale.train import TrainConfig
    from archscale.train.stack import Stack

    with pytest.raises(ArchscaleError, match="sweep_module"):
        Stack([DagMLP("2_12", 4, 4, 2, branch_multiplier=0.5)], torch.device("cpu"), torch.float32)
    data = load_dataset("digits", n_train=64, n_test=32)
    def make():
        return DagMLP(residual_chain_dag(2), 64, 8, 10, branch_multiplier="depth_mup")
    rows = archscale.sweep_module(make, [0.01, 0.1], [0, 1], data, TrainConfig(steps=3, batch_size=16),
                                  progress=False)
    assert len(rows) == 4 and rows["train_loss"].notna().all()


# ---------------------------------------------------------------------------------------- apply
class Block(nn.Module):
    def __init__(self, width, post_act=False):
        super().__init__()
        self.fc1, self.fc2, self.post_act = nn.Linear(width, width), nn.Linear(width, width), post_act

    def forward(self, x):
        if self.post_act:
            return x + F.relu(self.fc2(F.relu(self.fc1(x))))
        return x + self.fc2(F.relu(self.fc1(F.relu(x))))


class ResMLP(nn.Module):
    def __init__(self, blocks, width=16, d_in=12, classes=3, post_act=False):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(*[Block(width, post_act) for _ in range(blocks)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x))))


def test_apply_depth_mup_is_dagmlps_depth_mup_on_a_user_module():
    """The same weights give the same function through apply(depth_mup=True) and DagMLP('depth_mup')."""
    x = torch.randn(5, 12)
    model = ResMLP(4)
    plan = archscale.apply(model, x, base_lr=0.1, depth_mup=True, seed=0)
    assert plan.depth_mup and plan.scale == 1.0 and plan.lr == pytest.approx(0.1)
    assert plan.branch_multipliers == {f"blocks.{i}.fc2": pytest.approx(0.5) for i in range(4)}
    net = DagMLP(plan.graph, 12, 16, 3, branch_multiplier="depth_mup")
    with torch.no_grad():
        pairs = [(net.stem, model.stem), (net.readout, model.head)]
        for i, b in enumerate(model.blocks):
            pairs += [(net.edge_layer(2 * i, 2 * i + 1), b.fc1),
                      (net.edge_layer(2 * i + 1, 2 * i + 2), b.fc2)]
        for ours, theirs in pairs:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    torch.testing.assert_close(model(x), net(x))
    blocks = plan.residual_blocks()
    assert list(blocks["closing_module"]) == [f"blocks.{i}.fc2" for i in range(4)]
    assert blocks["depth_mup_multiplier"].tolist() == pytest.approx([0.5] * 4)
    assert "depth-muP" in str(plan) and plan.to_dict()["depth_mup"] is True
    assert list(plan.modules["multiplier"]) == [1, 1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1]


def test_apply_depth_mup_is_idempotent_removable_and_copyable():
    x = torch.randn(5, 12)
    model = ResMLP(2)
    archscale.apply(model, x, depth_mup=True, seed=0)
    once = model(x)
    archscale.apply(model, x, depth_mup=True, seed=0)
    torch.testing.assert_close(model(x), once)  # one hook per module, never stacked
    torch.testing.assert_close(copy.deepcopy(model)(x), once)
    plan = archscale.apply(model, x, base_lr=0.1, seed=0)
    assert not plan.depth_mup and any("removed the Depth-muP" in n for n in plan.notes)
    assert plan.lr == pytest.approx(0.1 * plan.scale) and plan.scale < 1
    assert not any(m._forward_hooks for m in model.modules())
    assert not torch.allclose(model(x), once)


def test_apply_depth_mup_refuses_what_is_not_a_residual_chain():
    x = torch.randn(3, 12)
    mlp = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ArchscaleError, match="depth_mup=True.*residual blocks.*Sequential adds no branch"):
        archscale.apply(mlp, x, depth_mup=True)
    with pytest.raises(ArchscaleError, match="activation after its weights"):
        archscale.apply(ResMLP(2, post_act=True), x, depth_mup=True)
    with pytest.raises(ArchscaleError, match="depth_mup"):
        archscale.apply(ResMLP(2), x, depth_mup="yes")
    assert not any(m._forward_hooks for m in mlp.modules())


def test_apply_depth_mup_keeps_eq9s_kernel_factor_for_convolutions():
    class ConvRes(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.c1 = nn.Conv2d(4, 4, k, padding=k // 2)
            self.c2 = nn.Conv2d(4, 4, k, padding=k // 2)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            h = self.stem(x)
            h = h + self.c2(F.relu(self.c1(F.relu(h))))
            return self.head(F.relu(h).mean(dim=(2, 3)))

    plan = archscale.apply(ConvRes(5), torch.randn(2, 1, 8, 8), base_lr=0.1, depth_mup=True)
    assert plan.scale == pytest.approx(3 / 5) and plan.branch_multipliers == {"c2": 1.0}


def test_projection_shortcuts_are_the_shortcut_side_of_a_block():
    """A weighted edge straight to the merge beside a longer branch is a projection shortcut (a 1x1
    conv where the width changes): read with ``projection=True``, the branch is the longer path."""
    dag = Dag.parse("2_22")  # 0->2 one weighted edge beside 0->1->2
    with pytest.raises(DagError, match="vertex 0 has out-edges"):
        residual_blocks(dag)
    (block,) = residual_blocks(dag, projection=True)
    assert (block.shortcut.src, block.shortcut.dst) == (0, 2) and block.layers == 2
    assert (block.closing.src, block.closing.dst) == (1, 2)
    # a stage change between two identity blocks, with a bottleneck (3-layer) branch
    edges = [(0, 1, "block"), (1, 2, "block"), (0, 2, "skip"),  # identity block
             (2, 3, "block"), (3, 4, "block"), (4, 5, "block"), (2, 5, "block"),  # bottleneck + projection
             (5, 6, "block"), (6, 7, "block"), (5, 7, "skip")]
    blocks = residual_blocks(Dag.from_edges(8, edges), projection=True)
    assert [(b.start, b.merge, b.layers, b.shortcut is not None) for b in blocks] == \
        [(0, 2, 2, False), (2, 5, 3, True), (5, 7, 2, False)]
    # two single weighted edges into one vertex: which is the shortcut is undefined
    with pytest.raises(DagError, match="vertex 0 has out-edges"):
        residual_blocks(Dag.from_edges(2, [(0, 1, "block"), (0, 1, "block")]), projection=True)
