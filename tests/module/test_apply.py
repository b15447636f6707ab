"""archscale.apply(): round trip on archscale's own nets, hand-written modules against eq. 8/9, the plan."""

import json
import math
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import dags
from torch import nn

import archscale
from archscale import ArchscaleError
from archscale.core.dag import Dag
from archscale.core.scaling import init_std, readout_std, scaled_lr
from archscale.nn.models import DagCNN, DagMLP

EDGE = re.compile(r"edge_modules\.(\d+)_(\d+)\.layer")


def _graphs():
    chains = st.sampled_from(["1"] + [Dag.chain(k).code for k in range(1, 8)])  # depths L = 3..10
    five = dags(min_vertices=5, max_vertices=5).map(lambda d: d.code)
    return st.one_of(five, five, chains)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=_graphs(), layout=st.sampled_from(["paper", "reference"]),
       kernel=st.sampled_from([None, 3, 5, 7]))
def test_round_trip_on_dag_nets_recovers_paths_in_degrees_and_lr(code, layout, kernel):
    check_round_trip(code, layout, kernel)


@pytest.mark.slow
def test_round_trip_on_thousands_of_five_vertex_graphs():
    graphs = Dag.sample(5, 1200, seed=12)
    for i, dag in enumerate(graphs):
        check_round_trip(dag.code, ("paper", "reference")[(i // 4) % 2], (None, 3, 5, 7)[i % 4])


def check_round_trip(code, layout, kernel):
    """apply() on a DagMLP/DagCNN gives the paths, in-degrees, init stds and LR of ``code``."""
    dag = Dag.parse(code)
    if not dag.has_path:
        return
    if kernel is None:
        model, x, arch = DagMLP(code, 6, 4, 3, layout=layout), torch.randn(2, 6), "mlp"
    else:
        model, x, arch = DagCNN(code, 1, 3, 3, kernel, layout=layout), torch.randn(2, 1, 8, 8), "cnn"
    plan = archscale.apply(model, x, base_lr=0.1, init=False)
    assert plan.n_paths == dag.n_paths
    assert plan.depth_counts == dag.depth_counts(3)
    assert plan.lr == pytest.approx(scaled_lr(0.1, code, arch, kernel), rel=1e-12)
    assert plan.kernel_size == kernel
    rows = plan.modules.set_index("module")
    for path, row in rows.iterrows():
        m = EDGE.fullmatch(path)
        if m:
            src, dst = int(m.group(1)), int(m.group(2))
            assert row["role"] == "edge"
            assert row["in_degree"] == max(dag.live_in_degrees[dst], 0)
            assert row["init_std"] == pytest.approx(model.edge_init_std(src, dst), rel=1e-12)
    assert rows.loc["stem", "init_std"] == pytest.approx(model.stem_init_std())
    assert rows.loc["readout", "init_std"] == pytest.approx(model.readout_init_std())
    if all(e.is_parameterized for e in dag.edges):  # no lone-skip vertex to merge: the very code
        assert str(plan.graph) == code


# ---------------------------------------------------------------------------------------- eq. 8/9
def independent_lr(base_lr, edges, n, kernel=None, base_edges=((0, 1, "skip"),), base_n=2, base_kernel=3):
    """eq. 8/9 by listing every path of a hand-drawn edge list (no archscale code)."""
    def path_sum(edges, n):
        total = 0

        def walk(v, blocks):
            nonlocal total
            if v == n - 1:
                total += (3 + blocks) ** 3
            for s, d, op in edges:
                if s == v:
                    walk(d, blocks + (op == "block"))

        walk(0, 0)
        return total

    lr = base_lr * math.sqrt(path_sum(base_edges, base_n) / path_sum(edges, n))
    return lr * (base_kernel / kernel if kernel else 1)


class SkipMLP(nn.Module):
    """h1 = a(h0); h2 = b(h1) + h0 + c(h0) (torch.add, sum): a skip over two layers and a branch."""

    def __init__(self, width=64, d_in=10):
        super().__init__()
        self.stem, self.a, self.b, self.c = (nn.Linear(d_in, width), nn.Linear(width, width),
                                             nn.Linear(width, width), nn.Linear(width, width))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        h0 = self.stem(x)
        h1 = self.a(F.relu(h0))
        h2 = sum([self.b(F.relu(h1)), torch.add(h0, self.c(F.relu(h0)))])
        return self.head(F.relu(h2))


SKIP_EDGES = [(0, 1, "block"), (1, 2, "block"), (0, 2, "skip"), (0, 2, "block")]


class Branches(nn.Module):
    """Dense all-block graph with two parallel branches (paper layout): 0 =(2 blocks)=> 1; 0,1 -> 2."""

    def __init__(self, width=64, d_in=10):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.p, self.q, self.r, self.s = (nn.Linear(width, width) for _ in range(4))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        h0 = self.stem(x)
        h1 = self.p(F.relu(h0)) + self.q(F.relu(h0))
        h2 = self.r(F.relu(h0)) + self.s(F.relu(h1))
        return self.head(F.relu(h2))


BRANCH_EDGES = [(0, 1, "block"), (0, 1, "block"), (0, 2, "block"), (1, 2, "block")]


class ResCNN(nn.Module):
    def __init__(self, blocks=2, width=8, k=3):
        super().__init__()
        self.stem = nn.Conv2d(1, width, k, padding=k // 2)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, k, padding=k // 2) for _ in range(2 * blocks))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        for i in range(0, len(self.convs), 2):
            h = h + self.convs[i + 1](F.relu(self.convs[i](F.relu(h))))
        return self.head(F.relu(h).mean((2, 3)))


def test_hand_written_modules_match_an_independent_eq8_and_the_init_rule():
    for model, edges, n in [(SkipMLP(), SKIP_EDGES, 3), (Branches(), BRANCH_EDGES, 3)]:
        plan = archscale.apply(model, torch.randn(4, 10), base_lr=0.3, seed=0)
        assert plan.graph == Dag.from_edges(n, edges)
        assert plan.lr == pytest.approx(independent_lr(0.3, edges, n), rel=1e-12)
        deg = {d: sum(1 for _, dd, _ in edges if dd == d) for _, d, _ in edges}
        table = plan.modules.set_index("module")
        for path, row in table.iterrows():
            layer = dict(model.named_modules())[path]
            fan_in = layer.weight.shape[1]
            expected = {"stem": math.sqrt(2 / fan_in), "readout": math.sqrt(2) / fan_in}.get(
                row["role"], math.sqrt(2 / (deg.get(row["dst"], 1) * fan_in)))
            assert row["init_std"] == pytest.approx(expected, rel=1e-12)
            assert layer.weight.std().item() == pytest.approx(expected, rel=0.15)
            assert torch.count_nonzero(layer.bias) == 0
    # CNN: kernel 5 against a kernel-3 base module with one block
    target, base = ResCNN(3, k=5), ResCNN(1, k=3)
    img = torch.randn(2, 1, 8, 8)
    plan = archscale.apply(target, img, base_lr=0.2, base=base, init=False)
    chain = [(2 * i + a, 2 * i + a + 1, "block") for i in range(3) for a in (0, 1)]
    chain += [(2 * i, 2 * i + 2, "skip") for i in range(3)]
    one = [(0, 1, "block"), (1, 2, "block"), (0, 2, "skip")]
    assert plan.lr == pytest.approx(independent_lr(0.2, chain, 7, 5, one, 3, 3), rel=1e-12)
    assert plan.base_kernel == 3 and plan.kernel_size == 5
    # the same base given as a code, and as a Dag
    for base_graph in ("2_12", Dag.parse("2_12", ops="cnn")):
        again = archscale.apply(target, img, base_lr=0.2, base=base_graph, base_kernel=3, init=False)
        assert again.lr == pytest.approx(plan.lr)


@pytest.mark.parametrize("model_cls", [Branches, SkipMLP])
def test_forward_second_moments_match_the_prediction_at_width_1024(model_cls):
    torch.manual_seed(0)
    model = model_cls(width=1024, d_in=64)
    plan = archscale.apply(model, torch.randn(2, 64), seed=1)
    measured = plan.measured_second_moments(torch.randn(512, 64))
    if model_cls is Branches:  # all-block graph: flat within 10%
        assert plan.second_moments == pytest.approx([1.0, 1.0, 1.0], rel=0.02)
        assert all(abs(m - 1) < 0.10 for m in measured), measured
        assert not any("identity skips" in n for n in plan.notes)
    else:  # in-degree 3 at vertex 2: two blocks at 1/3 each, and the skip carries vertex 0 whole
        assert plan.second_moments == pytest.approx([1.0, 1.0, 5 / 3], rel=0.02)
        assert measured == pytest.approx(plan.second_moments, rel=0.10)
        assert any("identity skips" in n and re.search(r"vertex 2 1\.6[5-9]x", n) for n in plan.notes)


def test_param_groups_train_with_the_plan_lr():
    model = SkipMLP(width=16)
    plan = archscale.apply(model, torch.randn(4, 10), base_lr=0.5)
    groups = plan.param_groups()
    assert [g["name"] for g in groups] == ["stem", "hidden", "readout"]
    assert all(g["lr"] == plan.lr for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    opt = torch.optim.SGD(groups)
    loss = F.cross_entropy(model(torch.randn(8, 10)), torch.randint(0, 3, (8,)))
    loss.backward()
    opt.step()
    assert plan.param_groups(lr=0.01)[0]["lr"] == 0.01
    with pytest.raises(ArchscaleError, match="no learning rate"):
        archscale.apply(SkipMLP(16), torch.randn(2, 10)).param_groups()


def test_readout_modes_init_flag_and_seed():
    model = SkipMLP(width=32)
    before = model.head.weight.detach().clone()
    plan = archscale.apply(model, torch.randn(2, 10), readout="keep", seed=3)
    assert torch.equal(model.head.weight, before) and math.isnan(plan.modules.set_index("module").loc["head",
                                                                                                      "init_std"])
    a, b = SkipMLP(32), SkipMLP(32)
    archscale.apply(a, torch.randn(2, 10), seed=7)
    archscale.apply(b, torch.randn(2, 10), seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    std = archscale.apply(a, torch.randn(2, 10), readout="standard", init=False).modules
    assert std.set_index("module").loc["head", "init_std"] == pytest.approx(readout_std(32, mean_field=False))
    untouched = a.a.weight.detach().clone()
    archscale.apply(a, torch.randn(2, 10), init=False)
    assert torch.equal(a.a.weight, untouched)
    gelu = archscale.apply(a, torch.randn(2, 10), init=False, gain=1.0).modules.set_index("module")
    assert gelu.loc["a", "init_std"] == pytest.approx(init_std(32, 1, gain=1.0))


def test_plan_display_and_json():
    plan = archscale.apply(SkipMLP(16), torch.randn(2, 10), base_lr=0.1)
    text = repr(plan)
    for piece in ("archscale plan", "multigraph" if not plan.graph.has_code else "2_", "lr", "init_std",
                  "identity skips"):
        assert piece in text
    assert "<table" in plan._repr_html_()
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["lr"] == pytest.approx(plan.lr) and data["paths"] == plan.n_paths
    assert data["modules"][0]["module"] == "stem" and data["modules"][0]["in_degree"] is None
    paths = plan.paths()
    assert len(paths) == plan.n_paths and {p["depth"] for p in paths} == set(plan.depth_counts)
    assert ["a", "b"] in [p["ops"] for p in paths] and ["skip"] in [p["ops"] for p in paths]
    branches = archscale.apply(Branches(16), torch.randn(2, 10), init=False).paths()
    assert sorted(p["ops"] for p in branches) == [["p", "s"], ["q", "s"], ["r"]]


def test_apply_argument_errors():
    x = torch.randn(2, 10)
    with pytest.raises(ArchscaleError, match="both MLPs or both CNNs"):
        archscale.apply(SkipMLP(8), x, base=ResCNN(1), base_input=torch.randn(2, 1, 8, 8))
    with pytest.raises(ArchscaleError, match="base_kernel applies to convolutional"):
        archscale.apply(SkipMLP(8), x, base_kernel=3)
    with pytest.raises(ArchscaleError, match="base_input applies only"):
        archscale.apply(SkipMLP(8), x, base="2", base_input=x)
    with pytest.raises(ArchscaleError, match="readout"):
        archscale.apply(SkipMLP(8), x, readout="zero")
    with pytest.raises(ArchscaleError, match="base_lr"):
        archscale.apply(SkipMLP(8), x, base_lr=-1)
    with pytest.raises(ArchscaleError, match="init must be true or false"):
        archscale.apply(SkipMLP(8), x, init="yes")


def test_import_archscale_stays_free_of_torch_and_exports_apply_lazily():
    code = ("import sys, archscale; assert 'torch' not in sys.modules; "
            "f = archscale.apply; assert callable(f) and 'torch' in sys.modules; "
            "assert archscale.sweep_module.__name__ == 'sweep_module'; "
            "assert archscale.Plan and archscale.capture")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert archscale.scaled_lr(0.1, "2_02") == pytest.approx(scaled_lr(0.1, Dag.parse("2_02")))
