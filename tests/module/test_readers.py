"""What apply reads in the networks researchers train: concatenations, slices, gates, norms, shapes.

Each reading is checked against an independent statement of what it should be: a concatenation
against its hand-written summed twin (same graph, LR, init std and, with the weights copied, the
same outputs), gates and self-products against the chains they stand for, slices against the edges
and fan-ins they make, and the mini collection of CIFAR networks (tests/minizoo.py) against "read
with a documented option, or refused in one line".
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from minizoo import IMG, ZOO, MobileNetV2, SENet
from torch import nn

import archscale
from archscale import ArchscaleError
from archscale.core.dag import Dag
from archscale.core.scaling import init_std
from archscale.module.capture import capture


# ---------------------------------------------------------------------------------------- concatenation
class CatNet(nn.Module):
    """Two branches of different widths, concatenated, read by one conv (DenseNet/Inception style)."""

    def __init__(self, w=32):
        super().__init__()
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.a = nn.Conv2d(w, w, 3, padding=1)
        self.b = nn.Conv2d(w, 2 * w, 1)
        self.c = nn.Conv2d(3 * w, w, 3, padding=1)
        self.fc = nn.Linear(w, 10)

    def forward(self, x):
        h = self.stem(x)
        a, b = self.a(F.relu(h)), self.b(F.relu(h))
        c = self.c(F.relu(torch.cat([a, F.max_pool2d(b, 3, 1, 1)], 1)))
        return self.fc(F.relu(c).mean((2, 3)))


class SumTwin(nn.Module):
    """The same network written as a sum: c = c_a(relu(a)) + c_b(relu(maxpool(b)))."""

    def __init__(self, w=32):
        super().__init__()
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.a = nn.Conv2d(w, w, 3, padding=1)
        self.b = nn.Conv2d(w, 2 * w, 1)
        self.c_a = nn.Conv2d(w, w, 3, padding=1)
        self.c_b = nn.Conv2d(2 * w, w, 3, padding=1, bias=False)
        self.fc = nn.Linear(w, 10)

    def forward(self, x):
        h = self.stem(x)
        a, b = self.a(F.relu(h)), self.b(F.relu(h))
        c = self.c_a(F.relu(a)) + self.c_b(F.relu(F.max_pool2d(b, 3, 1, 1)))
        return self.fc(F.relu(c).mean((2, 3)))


def test_a_concatenation_is_its_summed_twin():
    x = torch.randn(4, 3, 8, 8)
    cat_net, twin = CatNet(), SumTwin()
    cat_plan = archscale.apply(cat_net, x, base_lr=0.1, seed=0)
    twin_plan = archscale.apply(twin, x, base_lr=0.1, seed=0)
    assert cat_plan.graph == twin_plan.graph == Dag.parse("2_20_022", ops="cnn")
    assert cat_plan.lr == twin_plan.lr
    rows = cat_plan.modules[cat_plan.modules["module"] == "c"]
    twins = twin_plan.modules.set_index("module")
    assert list(rows["input"]) == ["32 of 96 ch", "64 of 96 ch"] and list(rows["fan_in"]) == [288, 576]
    assert list(rows["init_std"]) == [twins.loc["c_a", "init_std"], twins.loc["c_b", "init_std"]]
    assert list(rows["init_std"]) == [init_std(288, 2), init_std(576, 2)]
    w = cat_net.c.weight.detach()  # each piece's columns drawn with its own std
    assert w[:, :32].std().item() == pytest.approx(init_std(288, 2), rel=0.05)
    assert w[:, 32:].std().item() == pytest.approx(init_std(576, 2), rel=0.05)
    assert any("one edge per vertex" in n and "exact" in n for n in cat_plan.notes)
    with torch.no_grad():  # the twin's weights in the concatenating net: the same function
        for name in ("stem", "a", "b", "fc"):
            getattr(cat_net, name).load_state_dict(getattr(twin, name).state_dict())
        cat_net.c.weight.copy_(torch.cat([twin.c_a.weight, twin.c_b.weight], 1))
        cat_net.c.bias.copy_(twin.c_a.bias)
    assert torch.allclose(cat_net(x), twin(x), atol=1e-6)
    assert cat_plan.second_moments == pytest.approx(twin_plan.second_moments, rel=0.03)


class CatDepthwise(nn.Module):
    """A depthwise conv reading a concatenation (ShuffleNet's down block after a unit)."""

    def __init__(self, w=32):
        super().__init__()
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.a = nn.Conv2d(w, w, 3, padding=1)
        self.b = nn.Conv2d(w, 2 * w, 1)
        self.dw = nn.Conv2d(3 * w, 3 * w, 3, padding=1, groups=3 * w)
        self.c = nn.Conv2d(3 * w, w, 1)
        self.fc = nn.Linear(w, 10)

    def forward(self, x):
        h = self.stem(x)
        cat = torch.cat([self.a(F.relu(h)), self.b(F.relu(h))], 1)
        return self.fc(F.relu(self.c(F.relu(self.dw(cat)))).mean((2, 3)))


class DepthwiseTwin(nn.Module):
    """The same network with one depthwise conv per piece, concatenated after them."""

    def __init__(self, w=32):
        super().__init__()
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.a = nn.Conv2d(w, w, 3, padding=1)
        self.b = nn.Conv2d(w, 2 * w, 1)
        self.dw_a = nn.Conv2d(w, w, 3, padding=1, groups=w)
        self.dw_b = nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2 * w)
        self.c = nn.Conv2d(3 * w, w, 1)
        self.fc = nn.Linear(w, 10)

    def forward(self, x):
        h = self.stem(x)
        a, b = self.a(F.relu(h)), self.b(F.relu(h))
        cat = torch.cat([self.dw_a(a), self.dw_b(b)], 1)
        return self.fc(F.relu(self.c(F.relu(cat))).mean((2, 3)))


def test_a_depthwise_conv_after_a_concatenation_is_its_per_piece_twin():
    x = torch.randn(4, 3, 8, 8)
    net, twin = CatDepthwise(), DepthwiseTwin()
    plan = archscale.apply(net, x, base_lr=0.1, seed=0)
    twin_plan = archscale.apply(twin, x, base_lr=0.1, seed=0)
    assert plan.graph == twin_plan.graph and plan.lr == twin_plan.lr
    rows = plan.modules[plan.modules["module"] == "dw"]
    twins = twin_plan.modules.set_index("module")
    assert list(rows["fan_in"]) == [9, 9] and rows["dst"].nunique() == 2
    assert list(rows["init_std"]) == [twins.loc["dw_a", "init_std"], twins.loc["dw_b", "init_std"]]
    with torch.no_grad():
        for name in ("stem", "a", "b", "c", "fc"):
            getattr(net, name).load_state_dict(getattr(twin, name).state_dict())
        net.dw.weight.copy_(torch.cat([twin.dw_a.weight, twin.dw_b.weight]))
        net.dw.bias.copy_(torch.cat([twin.dw_a.bias, twin.dw_b.bias]))
    assert torch.allclose(net(x), twin(x), atol=1e-6)
    assert plan.second_moments == pytest.approx(twin_plan.second_moments, rel=0.03)
    measured = plan.measured_second_moments(torch.randn(64, 3, 8, 8))
    assert measured == pytest.approx(twin_plan.measured_second_moments(torch.randn(64, 3, 8, 8)), rel=0.5)


def test_dense_and_inception_concatenations_are_one_edge_per_piece():
    for name in ("densenet", "googlenet"):
        make, opts = ZOO[name]
        plan = archscale.apply(make(), torch.randn(*IMG), init=False, **opts)
        for module in ("dense.1.conv1", "dense.2.conv1") if name == "densenet" else ("b3.b1.0", "a4.b2.0"):
            rows = plan.modules[plan.modules["module"] == module]
            assert len(rows) >= 2 and rows["dst"].nunique() == 1 and rows["src"].is_unique
            weight = dict(plan.model.named_modules())[module].weight
            assert rows["fan_in"].sum() == weight.shape[1] * math.prod(weight.shape[2:])
    dense = archscale.apply(ZOO["densenet"][0](), torch.randn(*IMG), init=False)
    # the readout reads the last concatenation: an output vertex of one skip per piece, whose moment
    # is the channel-weighted average (not measured: it is no node of the module)
    assert dense.capture.vertex_nodes[-1] is None and dense.capture.vertex_channels[-1] is not None


def test_concatenations_archscale_cannot_follow_are_refused_by_name():
    class Spatial(nn.Module):  # concatenated along the width, then convolved: not a sum of edges
        def __init__(self):
            super().__init__()
            self.stem, self.a, self.c, self.fc = (nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1),
                                                  nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 2))

        def forward(self, x):
            h = self.stem(x)
            return self.fc(self.c(torch.cat([h, self.a(h)], 3)).mean((2, 3)))

    with pytest.raises(ArchscaleError, match=r"Spatial: 1 of 3 Conv2d modules move concatenated or sliced "
                                             r"channels .*dimension the weights do not sum over\): "
                                             r"c \(test_readers.py:\d+\)$") as info:
        capture(Spatial(), torch.randn(2, 3, 8, 8))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300

    class Mixing(Spatial):  # a mean over the channels of two pieces
        def forward(self, x):
            h = self.stem(x)
            m = torch.cat([h, self.a(h)], 1).mean(1, keepdim=True).expand(-1, 8, -1, -1)
            return self.fc(self.c(m).mean((2, 3)))

    with pytest.raises(ArchscaleError, match="combines elements of different pieces"):
        capture(Mixing(), torch.randn(2, 3, 8, 8))


# ---------------------------------------------------------------------------------------- slices
def test_slices_and_splits_are_parallel_pieces_of_their_vertex():
    class Split(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.a = nn.Conv2d(3, 12, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
            self.b, self.c = nn.Conv2d(8, 8, 1), nn.Conv2d(12, 8, 1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            h = F.relu(self.stem(x))
            p, q = torch.split(h, [4, 8], dim=1)
            r, _ = h.chunk(2, 1)
            return self.fc((self.a(p) + self.b(q) + self.c(torch.cat([r, h[:, 6:]], 1))).mean((2, 3)))

    cap = capture(Split(), torch.randn(2, 3, 8, 8))
    assert cap.graph == Dag.from_edges(2, [(0, 1, "block")] * 3, ops="cnn")
    assert {la.path: [i.fan_in for i in la.inputs] for la in cap.layers if la.role == "edge"} == \
        {"a": [36], "b": [8], "c": [12]}  # c reads 6 + 6 channels of one vertex: one edge
    assert any("slices or splits" in n for n in cap.notes)

    class Gather(Split):
        def forward(self, x):
            h = F.relu(self.stem(x))
            idx = torch.argsort(h.mean((0, 2, 3)))[:4]
            return self.fc(self.a(h[:, idx]).mean((2, 3)))

    with pytest.raises(ArchscaleError, match=r"1 of 1 'argsort' ops call 'argsort', which archscale does not "
                                             r"know how to read.*\(also: index\)"):
        capture(Gather(), torch.randn(2, 3, 8, 8))


def test_shufflenet_and_dpn_read_exactly():
    shuffle = archscale.apply(ZOO["shufflenet_v2"][0](), torch.randn(*IMG), init=False)
    rows = shuffle.modules
    # after splits and channel shuffles, the first conv of the third unit reads 2 + 2 channels of the
    # down block's two branches (shuffled into the second unit's pass-through half) and 4 of the second
    # unit's branch: three edges, each with its piece's fan-in
    third = rows[rows["module"] == "layer1.2.conv1"]
    assert sorted(third["fan_in"]) == [2, 2, 4] and third["src"].nunique() == 3
    # the last down block's depthwise conv reads the shuffled channels of two vertices, one vertex per
    # group: one edge and one vertex per piece
    down = rows[rows["module"] == "layer1.3.conv1"]
    assert len(down) == down["src"].nunique() == down["dst"].nunique() >= 2
    assert set(down["fan_in"]) == {9}
    assert any("grouped convolutions read channels of several vertices" in n for n in shuffle.notes)
    assert sum("depthwise" in n for n in shuffle.notes) == 1
    dpn = archscale.apply(ZOO["dpn"][0](), torch.randn(*IMG), init=False)
    second = dpn.modules[dpn.modules["module"] == "layer.1.conv1"]
    assert len(second) >= 2 and second["fan_in"].sum() == 16 and dpn.n_paths > 1


# ---------------------------------------------------------------------------------------- gates
class Gates(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b, self.c, self.fc = (nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 16),
                                                      nn.Linear(16, 16), nn.Linear(16, 2))

    def forward(self, x):
        h = self.stem(x)
        h = self.a(h * torch.sigmoid(h))          # swish, as a function
        h = self.b(h * h.sigmoid())               # swish, as a method
        h = self.c(h * F.relu6(h + 3) / 6)        # hard swish by hand
        return self.fc(F.silu(h))


def test_self_products_are_activations():
    cap = capture(Gates(), torch.randn(4, 8))
    assert cap.graph == Dag.parse("2_02_002")
    swish = ("mul", (), (("act", "sigmoid"),))
    assert cap.layer("a").inputs[0].chain == (swish,) and cap.layer("b").inputs[0].chain == (swish,)
    hard = ("mul", (), (("affine", 1.0, 3.0), ("act", "relu6")))
    assert cap.layer("c").inputs[0].chain == (hard, ("affine", 1 / 6, 0.0))
    assert any("3 products of a signal with a function of itself" in n for n in cap.notes)
    plan = archscale.apply(Gates(), torch.randn(4, 8), init=False)
    assert set(plan.modules["gain"]) == {2.0}  # an activation in front of every edge


def test_side_branch_gates_are_refused_or_read_as_pass_throughs():
    x = torch.randn(*IMG)
    with pytest.raises(ArchscaleError, match=r"^archscale cannot read SENet: 2 of 2 'mul' ops multiply the "
                                             r"signal by a side-branch gate.*gating='ignore'.*: layers.0 "
                                             r"\(minizoo.py:\d+\), layers.1$") as info:
        archscale.apply(SENet(), x)
    assert len(str(info.value)) < 300
    gated = archscale.apply(SENet(), x, gating="ignore", init=False)

    class Plain(SENet):  # the same network without its gates
        def __init__(self):
            super().__init__()
            for block in self.layers:
                block.forward = _without_gate(block)

    plain = archscale.apply(Plain(), x, init=False)
    assert gated.graph == plain.graph and gated.lr == plain.lr
    roles = gated.modules.set_index("module")["role"]
    assert {roles[f"layers.{i}.fc{j}"] for i in (0, 1) for j in (1, 2)} == {"gate"}
    assert gated.modules.set_index("module").loc["layers.0.fc1", "init_std"] != \
        gated.modules.set_index("module").loc["layers.0.fc1", "init_std"]  # NaN: kept
    assert any("gating='ignore': 2 side-branch gates" in n and "approximation" in n for n in gated.notes)


def _without_gate(block):
    def forward(x):
        out = F.relu(block.bn1(x))
        shortcut = block.shortcut(out) if hasattr(block, "shortcut") else x
        out = block.conv2(F.relu(block.bn2(block.conv1(out))))
        return out + shortcut
    return forward


# ---------------------------------------------------------------------------------------- norms
def test_norm_choices():
    x = torch.randn(*IMG)
    make = ZOO["resnet_basic"][0]
    with pytest.warns(UserWarning, match="read ResNet approximately: 20 normalization layers read as "
                                         "pass-through") as record:
        plan = archscale.apply(make(), x, init=False)  # the default reads them as the identity
    assert len(record) == 1  # one warning per call
    assert sum("norm='pass-through'" in n and "BatchNorm2d x20" in n for n in plan.notes) == 1
    with pytest.raises(ArchscaleError, match=r"20 of 20 BatchNorm2d modules normalize the signal"):
        archscale.apply(make(), x, norm="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = archscale.apply(make(), x, init=False, norm="ignore")  # the old name of pass-through
        model = make()
        renorm = archscale.apply(model, x, norm="renormalize", seed=0)
    assert old.graph == plan.graph == renorm.graph and old.lr == plan.lr == renorm.lr
    assert any("norm='renormalize'" in n for n in renorm.notes)
    # a norm closing an edge into a vertex of in-degree 2 starts at 1/sqrt(2) (the edge's share)
    assert torch.allclose(model.layers[0][0].bn2.weight, torch.full((8,), 2**-0.5))
    assert torch.allclose(model.layers[0][0].bn1.weight, torch.ones(8))
    # a branch closed by a renormalizing norm contributes its share 1/2 whatever came before
    # (test_layout_moments measures the prediction at width 256)
    first_sum = renorm.capture.vertex_nodes.index("add")
    assert renorm.second_moments[first_sum] * renorm.second_moments[0] > 0


# ---------------------------------------------------------------------------------------- kernels
def test_depthwise_and_linear_bottleneck_edges():
    net = MobileNetV2(cfg=((2, 16, 2, 1),), width=8, head=16)
    plan = archscale.apply(net, torch.randn(*IMG), init=False)
    rows = plan.modules.set_index("module")
    deg = plan.graph.live_in_degrees
    # the first block reads the stem's ReLU: gain 2; the second reads the first block's linear
    # bottleneck plus its skip, with no activation in front: gain 1
    assert rows.loc["layers.0.conv1", "gain"] == 2.0
    expand = rows.loc["layers.1.conv1"]
    assert expand["gain"] == 1.0 and expand["fan_in"] == 16
    assert expand["init_std"] == pytest.approx(math.sqrt(1 / (deg[expand["dst"]] * 16)))
    # the depthwise conv's fan-in is its kernel area, whatever the width (in_channels / groups x 9)
    dw = rows.loc["layers.0.conv2"]
    assert dw["fan_in"] == 9 and dw["gain"] == 2.0 and dw["init_std"] == pytest.approx(math.sqrt(2 / 9))
    wide = archscale.apply(MobileNetV2(cfg=((2, 64, 1, 1),), width=32, head=16), torch.randn(*IMG),
                           init=False)
    assert wide.modules.set_index("module").loc["layers.0.conv2", "fan_in"] == 9
    assert any("depthwise" in n and "does not grow with width" in n for n in plan.notes)
    # the projection (linear bottleneck) has ReLU6 in front: gain 2; the block is a vertex of in-degree 2
    project = rows.loc["layers.0.conv3"]
    assert project["gain"] == 2.0 and deg[project["dst"]] == 2


class Projection(nn.Module):
    """A residual block with a 1x1 projection shortcut: edges of kernel 3, 3 and 1."""

    def __init__(self, w=16):
        super().__init__()
        self.stem, self.c1, self.c2 = (nn.Conv2d(3, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1),
                                       nn.Conv2d(w, w, 3, padding=1))
        self.proj, self.fc = nn.Conv2d(w, w, 1), nn.Linear(w, 10)

    def forward(self, x):
        h = F.relu(self.stem(x))
        return self.fc(F.relu(self.proj(h) + self.c2(F.relu(self.c1(h)))).mean((2, 3)))


def test_mixed_kernel_sizes_against_a_hand_computation():
    plan = archscale.apply(Projection(), torch.randn(*IMG), base_lr=0.1, init=False)
    # paths [c1, c2] (L = 5, areas 9 + 9) and [proj] (L = 4, area 1); a_ref = 19/3; the base '1' with
    # kernel 3 is 9 * 3^3: eq. 9 per path, T_p = L_p^2 (3 a_ref + sum of its areas)
    t = 25 * (19 + 18) + 16 * (19 + 1)
    assert plan.kernel_size is None and plan.lr == pytest.approx(0.1 * math.sqrt(9 * 27 / t), rel=1e-12)
    rows = plan.modules.set_index("module")
    assert rows.loc["proj", "fan_in"] == 16 and rows.loc["proj", "init_std"] == pytest.approx(init_std(16, 2))
    assert rows.loc["c2", "init_std"] == pytest.approx(init_std(144, 2))
    one_q = archscale.apply(Projection(), torch.randn(*IMG), base_lr=0.1, init=False, kernel_size=3)
    assert one_q.lr == pytest.approx(0.1 * math.sqrt(27 / (125 + 64)), rel=1e-12)  # eq. 9 with q = 3


# ---------------------------------------------------------------------------------------- the collection
@pytest.mark.parametrize("name", list(ZOO))
def test_the_mini_collection_is_read_or_refused_in_one_line(name):
    make, options = ZOO[name]
    torch.manual_seed(0)
    model, x = make(), torch.randn(*IMG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plan = archscale.apply(model, x, base_lr=0.1, seed=0, **(options or {}))
        except ArchscaleError as err:
            message = str(err)
            assert options is None, f"{name} should be read with {options}: {message}"
            assert "\n" not in message and len(message) < 400, message
            return
    assert options is not None, f"{name} should be refused"
    assert math.isfinite(plan.lr) and 0 < plan.lr and plan.n_paths >= 1
    assert plan.lr < 0.1 or plan.law != "eq8"  # eq. 8 only lowers the LR below the one-layer base's
    assert plan.trust is not None and plan.law in plan.alternatives and len(plan.alternatives) >= 2
    assert "\n" not in plan.trust.line()
    assert torch.isfinite(model(x)).all()
    assert all(math.isfinite(m) for m in plan.second_moments)
    edges = plan.modules[plan.modules["role"] == "edge"]
    assert (edges["init_std"] > 0).all() and edges["in_degree"].min() >= 1
