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


def test_cnn_kernel_comes_from_the_edges_and_mixed_sizes_need_an_override():
    cap = capture(Cnn(5), IMG)
    assert cap.arch == "cnn" and cap.kernel_size == 5  # the 7x7 stem does not set eq. 9's q
    with pytest.raises(ArchscaleError, match=r"mixed kernel sizes \(proj 1x1, c1 3x3, c2 3x3\).*kernel_"):
        capture(Cnn(3, proj_k=1), IMG)
    cap = capture(Cnn(3, proj_k=1), IMG, kernel_size=3)
    assert cap.kernel_size == 3 and cap.graph == Dag.parse("2_22")


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


def test_refusals_name_the_node_the_module_and_why():
    msg = _refusal(Attention(), r"node 'matmul' in module '\(top level\)' at .*test_trace.py:\d+ multiplies "
                                r"activations by activations")
    assert "attention" in msg
    block = nn.Sequential(nn.Linear(8, 8), nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
                          nn.Linear(8, 2))
    _refusal(block, "module '1' is a TransformerEncoderLayer: attention", x=torch.randn(2, 3, 8))
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    _refusal(layer, "could not trace", x=torch.randn(2, 3, 8))
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    _refusal(bn, r"module '1'.*BatchNorm2d.*norm='ignore'", x=IMG)
    with pytest.warns(UserWarning, match="pass-through"):
        cap = capture(bn, IMG, norm="ignore")
    assert cap.graph == Dag.parse("1") and any("norm='ignore'" in n for n in cap.notes)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.block, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.block(F.relu(self.block(F.relu(self.stem(x))))))

    _refusal(Shared(), r"module 'block'.*calls 'block' a second time.*weight sharing")
    tied = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 2))
    tied[4].weight = tied[2].weight
    _refusal(tied, "modules '2' and '4' share one weight tensor")

    class Cat(Parallel):
        def forward(self, x):
            h = F.relu(self.stem(x))
            return self.head(torch.cat([self.left(h), self.right(h)], 1)[:, :8])

    _refusal(Cat(), r"node 'cat'.*concatenates")

    class Gate(Parallel):
        def forward(self, x):
            h = F.relu(self.stem(x))
            return self.head(self.left(h) * torch.sigmoid(self.right(h)))

    _refusal(Gate(), r"node 'mul'.*product, gating")

    class Flow(Parallel):
        def forward(self, x):
            h = self.stem(x)
            if h.sum() > 0:
                h = self.left(h)
            return self.head(h)

    _refusal(Flow(), r"torch.fx could not trace Flow at .*test_trace.py:\d+.*control flow")


def test_more_refusals():
    class Functional(Parallel):
        def forward(self, x):
            return self.head(F.linear(F.relu(self.stem(x)), self.left.weight))

    _refusal(Functional(), "applies weights functionally")

    class Inplace(Parallel):
        def forward(self, x):
            h = self.stem(x)
            h.add_(self.left(h))
            return self.head(h)

    _refusal(Inplace(), "in place")

    class Shift(Parallel):
        def forward(self, x):
            return self.head(self.stem(x) + 1.0)

    _refusal(Shift(), "constant shift")

    class Alpha(Parallel):
        def forward(self, x):
            h = self.stem(x)
            return self.head(torch.add(h, self.left(h), alpha=0.5))

    _refusal(Alpha(), "alpha=0.5")

    class TwoStems(Parallel):
        def forward(self, x):
            return self.head(self.stem(x) + self.left(x))

    _refusal(TwoStems(), "reads the raw input, as the stem 'stem' does")

    class RawSkip(Parallel):
        def forward(self, x):
            return self.head(self.stem(x) + x)

    _refusal(RawSkip(), "adds the raw input")

    class Tuple(Parallel):
        def forward(self, x):
            return self.head(self.stem(x)), x

    _refusal(Tuple(), "returns tuple")

    class NoReadout(Parallel):
        def forward(self, x):
            h = self.stem(x)
            return h + self.left(h)

    _refusal(NoReadout(), "not produced by a weighted op")
    _refusal(nn.Linear(8, 2), "a single Linear")
    _refusal(nn.Sequential(nn.Linear(8, 2)), "one weighted op")
    _refusal(nn.Sequential(nn.Linear(8, 8), nn.LSTM(8, 8)), "LSTM")
    _refusal(Parallel(), "failed on the example input of shape \\(3, 5\\)", x=torch.randn(3, 5))
    _refusal(Parallel(), "one tensor", x=[X])
    _refusal(Parallel(), "unknown norm", norm="skip")
    _refusal(Parallel(), "kernel_size applies to convolutional models", kernel_size=3)
