"""Graph capture from hand-written modules: what becomes a vertex, an edge, and what is refused."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archscale import ArchscaleError
from archscale.core.dag import Dag
from archscale.module.capture import capture

X = torch.randn(3, 8)
IMG = torch.randn(2, 3, 8, 8)


def edges(cap):
    """{module path: (src, dst)} of the captured edges."""
    return {la.path: (la.src, la.dst) for la in cap.layers if la.role == "edge"}


class Residual(nn.Module):
    """Pre-activation residual MLP written with +=, torch.add and sum([...])."""

    def __init__(self, w=8):
        super().__init__()
        self.stem, self.a, self.b, self.c, self.head = (nn.Linear(8, w), nn.Linear(w, w), nn.Linear(w, w),
                                                        nn.Linear(w, w), nn.Linear(w, 4))

    def forward(self, x):
        h = self.stem(x)
        h2 = h
        h2 += self.a(F.relu(h))                    # vertex 1 = h + a(h)
        h3 = torch.add(h2, self.b(F.relu(h2)), alpha=1)
        h4 = sum([h3, self.c(torch.tanh(h3)), h])  # sum() starts from 0
        return self.head(F.relu(h4))


def test_residual_adds_become_vertices_with_skips():
    cap = capture(Residual(), X)
    g = cap.graph
    assert g == Dag.parse("2_12_112") or g == Dag.from_edges(4, [(0, 1, "skip"), (0, 1, "block"),
                                                                 (1, 2, "skip"), (1, 2, "block"),
                                                                 (2, 3, "skip"), (2, 3, "block"),
                                                                 (0, 3, "skip")])
    assert edges(cap) == {"a": (0, 1), "b": (1, 2), "c": (2, 3)}
    roles = {la.path: la.role for la in cap.layers}
    assert roles == {"stem": "stem", "a": "edge", "b": "edge", "c": "edge", "head": "readout"}
    assert cap.arch == "mlp" and cap.kernel_size is None


class Parallel(nn.Module):
    """Two weighted branches between the same two vertices: a multigraph."""

    def __init__(self, w=8):
        super().__init__()
        self.stem, self.left, self.right, self.head = (nn.Linear(8, w), nn.Linear(w, w), nn.Linear(w, w),
                                                       nn.Linear(w, 4))

    def forward(self, x):
        h = F.relu(self.stem(x))
        return self.head(F.relu(self.left(h) + self.right(h)))


def test_parallel_branches_are_a_multigraph():
    cap = capture(Parallel(), X)
    assert not cap.graph.has_code
    assert cap.graph == Dag.from_edges(2, [(0, 1, "block"), (0, 1, "block")])
    assert edges(cap) == {"left": (0, 1), "right": (0, 1)}


def test_a_chain_and_a_reference_layout_block():
    chain = nn.Sequential(nn.Flatten(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    cap = capture(chain, X)
    assert cap.graph == Dag.parse("2_02") and not cap.notes

    class Post(nn.Module):  # edges are act(W h): the reference code's layout
        def __init__(self):
            super().__init__()
            self.stem, self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            h = F.relu(self.stem(x))
            return self.head(F.relu(self.a(h)) + F.relu(self.b(h)) + h)

    cap = capture(Post(), X)
    assert cap.graph == Dag.from_edges(2, [(0, 1, "block"), (0, 1, "block"), (0, 1, "skip")])
    assert any("reference code's layout" in n for n in cap.notes)


def test_stem_to_readout_is_the_base_graph():
    cap = capture(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), X)
    assert cap.graph == Dag.parse("1") and "base" in cap.notes[0]
    assert cap.vertex_nodes[0] == cap.vertex_nodes[1]


class Cnn(nn.Module):
    def __init__(self, k=3, proj_k=None):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 7, padding=3)
        self.c1 = nn.Conv2d(4, 4, k, padding=k // 2)
        self.c2 = nn.Conv2d(4, 4, k, padding=k // 2)
        self.proj = nn.Conv2d(4, 4, proj_k) if proj_k else None
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        h = self.stem(x)
        short = self.proj(h) if self.proj is not None else h
        h = short + self.c2(F.relu(self.c1(F.relu(h))))
        return self.head(F.adaptive_avg_pool2d(F.relu(h), 1).flatten(1))


def test_cnn_kernel_comes_from_the_edges_and_mixed_sizes_get_kernel_areas():
    cap = capture(Cnn(5), IMG)
    assert cap.arch == "cnn" and cap.kernel_size == 5  # the 7x7 stem does not set eq. 9's q
    assert cap.kernel_areas is None
    cap = capture(Cnn(3, proj_k=1), IMG)  # a 1x1 projection: an edge of q = 1 (archscale.core.kernels)
    assert cap.kernel_size is None and cap.graph == Dag.parse("2_22")
    assert {k: sorted(v) for k, v in cap.kernel_areas.items()} == {(0, 1): [9], (0, 2): [1], (1, 2): [9]}
    assert any("mixed kernel sizes (1x1 x1, 3x3 x2)" in n for n in cap.notes)
    cap = capture(Cnn(3, proj_k=1), IMG, kernel_size=3)  # one q chosen by the user
    assert cap.kernel_size == 3 and cap.kernel_areas is None and cap.graph == Dag.parse("2_22")


def test_unused_modules_and_dangling_values():
    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.a, self.never, self.after, self.head = (nn.Linear(8, 8), nn.Linear(8, 8),
                                                                    nn.Linear(8, 8), nn.Linear(8, 8),
                                                                    nn.Linear(8, 2))

        def forward(self, x):
            h = self.stem(x)
            self.a(h)  # computed, never used: a dangling vertex
            h = h + 0
            out = self.head(F.relu(h))
            self.after(h)  # after the readout's input: cannot reach the output
            return out

    cap = capture(Extra(), X)
    roles = {la.path: la.role for la in cap.layers}
    assert roles == {"stem": "stem", "a": "edge", "head": "readout", "after": "edge", "never": "unused"}
    # a: 0 -> 1 (dangling), the sum h + 0 is vertex 2, after: 2 -> 3 (dangling), output 4 = skip from 2
    assert cap.graph == Dag.parse("2_10_002_0010")
    assert cap.graph.n_paths == 1 and cap.graph.depth_counts(3) == {3: 1}


def _refusal(model, match, x=X, **kw):
    with pytest.raises(ArchscaleError, match=match) as info:
        capture(model, x, **kw)
    return str(info.value)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        h = self.stem(x)
        a = torch.softmax(self.q(h) @ self.k(h).transpose(0, 1), dim=-1)
        return self.head(a @ h)


def test_refusals_are_one_line_naming_how_many_block_and_where():
    msg = _refusal(Attention(), r"^archscale cannot read Attention: 2 of 2 'matmul' ops multiply activations "
                                r"by "
                                r"activations \(attention, matmul\).*: matmul \(test_trace.py:\d+\), "
                                r"matmul_1$")
    assert "\n" not in msg and len(msg) < 300
    block = nn.Sequential(nn.Linear(8, 8), nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
                          nn.Linear(8, 2))
    _refusal(block, r"1 of 1 TransformerEncoderLayer modules multiply activations.*: 1$",
             x=torch.randn(2, 3, 8))
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    _refusal(layer, r"could not trace TransformerEncoderLayer: .* in module", x=torch.randn(2, 3, 8))
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    _refusal(bn, r"1 of 1 BatchNorm2d modules normalize the signal; pass norm='pass-through'", x=IMG,
             norm="error")
    with pytest.warns(UserWarning, match="read Sequential approximately: 1 normalization layers read as "
                                         "pass-through"):
        cap = capture(bn, IMG, norm="ignore")  # the old name of pass-through
    assert cap.graph == Dag.parse("1") and cap.norm == "pass-through"
    assert sum("norm='pass-through'" in n and "BatchNorm2d x1" in n for n in cap.notes) == 1

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.block, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.block(F.relu(self.block(F.relu(self.stem(x))))))

    _refusal(Shared(), r"1 of 4 Linear modules call a module a second time \(first at node 'block'\).*weight "
                       r"sharing.*: block \(test_trace.py:\d+\)")
    tied = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 2))
    tied[4].weight = tied[2].weight
    _refusal(tied, "modules '2' and '4' share one weight tensor")

    class Gate(Parallel):
        def forward(self, x):
            h = F.relu(self.stem(x))
            return self.head(self.left(h) * torch.sigmoid(self.right(h)))

    _refusal(Gate(), r"1 of 1 'mul' ops multiply the signal by a side-branch gate.*gating='ignore'.*: mul")

    class Flow(Parallel):
        def forward(self, x):
            h = self.stem(x)
            if h.sum() > 0:
                h = self.left(h)
            return self.head(h)

    _refusal(Flow(), r"torch.fx could not trace Flow: an if/while/and/or/assert on a tensor's values "
                     r"\(data-dependent control flow\), in module '\(top level\)' at test_trace.py:\d+")

    class Item(Parallel):
        def forward(self, x):
            h = self.stem(x)
            return self.head(h[:, : int(h.abs().max() * 0) + 8])

    _refusal(Item(), r"could not trace Item: int\(\) of a tensor's values")


def test_shapes_are_concrete_while_tracing():
    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.thin = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(4, 8, 1)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            h = self.stem(x)
            n, c, height, width = h.size()
            assert h.dim() == 4 and len(h) == n  # asserts and len() on shapes
            k = int(h.size(1) * 0.5)
            h = self.thin(F.relu(h[:, :k])) if c == 8 and height == width else h
            return self.head(h.view(h.size(0), -1, height * width).mean(2))

    cap = capture(Shapes(), IMG)
    assert cap.graph == Dag.parse("2") and cap.layer("thin").inputs[0].fan_in == 4
    plan_x = torch.randn(5, 3, 8, 8)  # another batch size: the sizes stay nodes of the graph
    assert cap.graph_module(plan_x).shape == (5, 2)


def test_more_refusals():
    class Functional(Parallel):
        def forward(self, x):
            return self.head(F.linear(F.relu(self.stem(x)), self.left.weight))

    _refusal(Functional(), "applies weights functionally|apply weights functionally")

    class Inplace(Parallel):
        def forward(self, x):
            h = self.stem(x)
            h.add_(self.left(h))
            return self.head(h)

    _refusal(Inplace(), "in place")

    class Offset(Parallel):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(8))

        def forward(self, x):
            return self.head(self.stem(x) + self.bias)

    _refusal(Offset(), "add a tensor that is not a signal")

    class TwoStems(Parallel):
        def forward(self, x):
            return self.head(self.stem(x) + self.left(x))

    _refusal(TwoStems(), "read the raw input, as the stem 'stem' does")

    class RawSkip(Parallel):
        def forward(self, x):
            return self.head(self.stem(x) + x)

    _refusal(RawSkip(), "add the raw input")

    class Tuple(Parallel):
        def forward(self, x):
            return self.head(self.stem(x)), x

    _refusal(Tuple(), "return tuple")

    class NoReadout(Parallel):
        def forward(self, x):
            h = self.stem(x)
            return h + self.left(h)

    _refusal(NoReadout(), "produce the output without a weighted op")
    _refusal(nn.Linear(8, 2), "a single Linear")
    _refusal(nn.Sequential(nn.Linear(8, 2)), "one weighted op")
    _refusal(nn.Sequential(nn.Linear(8, 8), nn.LSTM(8, 8)), "LSTM")
    _refusal(Parallel(), "failed on the example input of shape \\(3, 5\\)", x=torch.randn(3, 5))
    _refusal(Parallel(), "one tensor", x=[X])
    _refusal(Parallel(), "unknown norm", norm="skip")
    _refusal(Parallel(), "kernel_size applies to convolutional models", kernel_size=3)


def test_scales_shifts_and_alpha_are_elementwise_ops():
    class Scaled(Parallel):
        def forward(self, x):
            h = self.stem(x)
            h = torch.add(h, self.left(F.relu(h)), alpha=0.5) - 0.5 * self.right(F.relu(h))
            return self.head(F.relu(h + 1.0))

    cap = capture(Scaled(), X)
    assert cap.graph == Dag.from_edges(2, [(0, 1, "skip"), (0, 1, "block"), (0, 1, "block")])
    assert cap.layer("left").post == (("affine", 0.5, 0.0),)
    assert cap.layer("right").post == (("affine", 0.5, 0.0), ("affine", -1.0, 0.0))
    assert cap.layer("head").inputs[0].chain == (("affine", 1.0, 1.0), ("act", "relu"))
