"""The maximal-update probes: delta_z against a hand-made SGD step, coord_check, the probe tables."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import dags

from archscale.core.dag import Dag
from archscale.core.errors import ArchscaleError
from archscale.core.scaling import lr_scale
from archscale.nn.models import DagCNN, DagMLP
from archscale.probe import (
    COORD_CHECK_COLUMNS,
    coord_check,
    delta_z,
    delta_z_graphs,
    delta_z_vs_lr,
    delta_z_widths,
    forward_second_moments,
    parameter_groups,
    readout_input_moment,
)
from archscale.train import minibatch_schedule


def _batch(n=32, d=12, classes=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def _mlp(code="2_02_112", width=24, d=12, classes=5, seed=0, **kw):
    torch.manual_seed(seed)
    return DagMLP(code, d, width, classes, **kw).double()


def _manual_step(model, x, y, lr, loss, only=None, mult=None):
    """Independent reference: grads by autograd.grad, p -= lr * g by hand, two forward passes."""
    m = copy.deepcopy(model)
    named = dict(m.named_parameters())
    logits0, nodes0 = m(x, return_nodes=True)
    if loss == "ce":
        value = F.cross_entropy(logits0, y)
    else:
        value = ((logits0 - F.one_hot(y, logits0.shape[1]).to(logits0.dtype)) ** 2).mean()
    grads = torch.autograd.grad(value, list(named.values()), allow_unused=True)
    with torch.no_grad():
        for (name, p), g in zip(named.items(), grads):
            if g is None or (only is not None and name not in only):
                continue
            rate = lr * (mult or {}).get(name.split(".")[0], 1.0)
            p.sub_(rate * g)
        logits1, nodes1 = m(x, return_nodes=True)
    before = [t.detach() for t in nodes0] + [logits0.detach()]
    after = list(nodes1) + [logits1]
    return np.array([float(((a - b) ** 2).mean()) for a, b in zip(after, before)])


# ---------------------------------------------------------------------- delta_z
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("layout", ["paper", "reference"])
@pytest.mark.parametrize("code", ["2", "2_02_002", "2_12_021", "1_21_212"])
def test_delta_z_matches_hand_made_sgd_step(code, layout, loss):
    model = _mlp(code, layout=layout)
    x, y = _batch()
    result = delta_z(model, x, y, 0.3, loss)
    expected = _manual_step(model, x, y, 0.3, loss)
    got = result.per_vertex["delta_z2"].to_numpy()
    assert len(got) == model.dag.n_vertices + 1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-300)
    assert result.output == pytest.approx(expected[-1], rel=1e-5)
    assert result.last_vertex == pytest.approx(expected[-2], rel=1e-5)
    assert result.at(1) == pytest.approx(expected[1], rel=1e-5)
    assert list(result.per_vertex["kind"]) == ["vertex"] * model.dag.n_vertices + ["output"]


def test_delta_z_float32_model_agrees_to_1e5():
    torch.manual_seed(3)
    model = DagMLP("2_22_222", 12, 64, 5)
    x, y = _batch(dtype=torch.float32)
    got = delta_z(model, x, y, 0.5, "ce", contributions=False).per_vertex["delta_z2"].to_numpy()
    expected = _manual_step(model.double(), x.double(), y, 0.5, "ce")
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_delta_z_cnn_matches_hand_made_step():
    torch.manual_seed(1)
    model = DagCNN("2_12", 2, 6, 4, kernel_size=3).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (8,), generator=g)
    got = delta_z(model, x, y, 0.2, "ce").per_vertex["delta_z2"].to_numpy()
    np.testing.assert_allclose(got, _manual_step(model, x, y, 0.2, "ce"), rtol=1e-5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=dags(max_vertices=5).filter(lambda d: d.has_path), lr=st.floats(1e-3, 2.0))
def test_delta_z_matches_hand_made_step_on_random_graphs(dag, lr):
    model = _mlp(dag, width=8)
    x, y = _batch(n=6)
    got = delta_z(model, x, y, lr, "mse", contributions=False).per_vertex["delta_z2"].to_numpy()
    np.testing.assert_allclose(got, _manual_step(model, x, y, lr, "mse"), rtol=1e-5, atol=1e-300)


def test_delta_z_leaves_the_model_and_its_mode_untouched():
    model = _mlp()
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    delta_z(model, *_batch(), 1.0, "ce")
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert all(p.grad is None for p in model.parameters())


def test_parameter_groups_cover_every_parameter_once():
    model = _mlp("2_12_021")
    groups = parameter_groups(model)
    assert list(groups) == ["stem", "edge 0->1", "edge 1->2", "edge 1->3", "readout"]
    names = [n for members in groups.values() for n in members]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())


def test_contributions_are_single_group_steps_and_shares_add_up():
    model = _mlp("2_12_021")
    x, y = _batch()
    result = delta_z(model, x, y, 1e-3, "ce")
    c = result.contributions
    assert list(c.columns) == ["vertex", "kind", "group", "delta_z2", "share"]
    groups = parameter_groups(model)
    for group in ["stem", "edge 1->3", "readout"]:
        expected = _manual_step(model, x, y, 1e-3, "ce", only=set(groups[group]))
        got = c[c["group"] == group].sort_values("vertex")["delta_z2"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-300)
    # the readout moves only the logits; edge 1->3 moves nothing upstream of vertex 3
    ro = c[(c["group"] == "readout") & (c["kind"] == "vertex")]["delta_z2"]
    assert (ro == 0).all()
    e13 = c[(c["group"] == "edge 1->3") & (c["vertex"] < 3)]["delta_z2"]
    assert (e13 == 0).all() and (c[(c["group"] == "edge 1->3") & (c["vertex"] >= 3)]["delta_z2"] > 0).all()
    shares = c.groupby("vertex")["share"].sum()
    np.testing.assert_allclose(shares.to_numpy(), 1.0, atol=1e-3)


def test_freeze_and_lr_mult():
    model = _mlp("2_02")
    x, y = _batch()
    groups = parameter_groups(model)
    frozen = delta_z(model, x, y, 0.4, "ce", freeze=("readout", "stem"), contributions=False)
    expected = _manual_step(model, x, y, 0.4, "ce", only=set(groups["edge 0->1"] + groups["edge 1->2"]))
    np.testing.assert_allclose(frozen.per_vertex["delta_z2"], expected, rtol=1e-5)
    assert frozen.per_vertex["delta_z2"].iloc[0] == 0.0
    assert delta_z(model, x, y, 0.4, "ce", freeze="readout").frozen == ("readout",)
    scaled = delta_z(model, x, y, 0.4, "ce", lr_mult={"readout": 0.25}, contributions=False)
    expected = _manual_step(model, x, y, 0.4, "ce", mult={"readout": 0.25})
    np.testing.assert_allclose(scaled.per_vertex["delta_z2"], expected, rtol=1e-5)


def test_custom_loss_and_single_output_regression():
    model = _mlp("2_02", classes=1)
    x, _ = _batch()
    target = torch.linspace(-1, 1, len(x), dtype=torch.float64)
    half_sse = lambda out, t: 0.5 * ((out[:, 0] - t) ** 2).sum() / len(t)  # noqa: E731
    got = delta_z(model, x, target, 0.2, half_sse, contributions=False)
    assert got.loss == "custom"
    m = copy.deepcopy(model)
    logits0, nodes0 = m(x, return_nodes=True)
    grads = torch.autograd.grad(half_sse(logits0, target), list(m.parameters()))
    with torch.no_grad():
        for p, g in zip(m.parameters(), grads):
            p.sub_(0.2 * g)
        logits1, nodes1 = m(x, return_nodes=True)
    expected = [float(((a - b.detach()) ** 2).mean()) for a, b in zip(nodes1 + [logits1], nodes0 + [logits0])]
    np.testing.assert_allclose(got.per_vertex["delta_z2"], expected, rtol=1e-5)
    mse = delta_z(model, x, target, 0.2, "mse", contributions=False)  # 1-D target, one output
    assert np.isfinite(mse.per_vertex["delta_z2"]).all()
    with pytest.raises(ArchscaleError, match="scalar tensor"):
        delta_z(model, x, target, 0.2, lambda out, t: out - t[:, None])


def test_small_steps_are_first_order_in_lr():
    model = _mlp("2_02_002")
    x, y = _batch()
    a = delta_z(model, x, y, 1e-4, "ce", contributions=False).total
    b = delta_z(model, x, y, 2e-4, "ce", contributions=False).total
    np.testing.assert_allclose((b / a).to_numpy(), 4.0, rtol=1e-3)


def test_probe_x_measures_on_another_batch():
    model = _mlp()
    x, y = _batch()
    other, _ = _batch(seed=5, n=7)
    r = delta_z(model, x, y, 0.1, "ce", probe_x=other, contributions=False)
    assert r.per_vertex["delta_z2"].gt(0).all()
    assert r.per_vertex["delta_z2"].iloc[-1] != delta_z(model, x, y, 0.1, "ce").output


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0}, "positive"),
    ({"lr": -1}, "positive"),
    ({"lr": float("nan")}, "positive"),
    ({"lr": "fast"}, "positive number"),
    ({"loss": "hinge"}, "unknown loss"),
    ({"freeze": ("edge 5->6",)}, "unknown group"),
    ({"lr_mult": {"head": 2.0}}, "unknown group"),
    ({"lr_mult": {"readout": 0.0}}, "lr_mult"),
    ({"lr_mult": [1.0]}, "map group names"),
])
def test_delta_z_bad_arguments(kwargs, match):
    model = _mlp()
    x, y = _batch()
    args = {"lr": 0.1, "loss": "ce", **kwargs}
    with pytest.raises(ArchscaleError, match=match):
        delta_z(model, x, y, **args)


def test_delta_z_bad_batches_and_models():
    model = _mlp()
    x, y = _batch()
    with pytest.raises(ArchscaleError, match="same number of examples"):
        delta_z(model, x, y[:-1], 0.1, "ce")
    with pytest.raises(ArchscaleError, match="integer class labels"):
        delta_z(model, x, y.double(), 0.1, "ce")
    with pytest.raises(ArchscaleError, match="empty"):
        delta_z(model, x[:0], y[:0], 0.1, "ce")
    with pytest.raises(ArchscaleError, match="DagMLP or DagCNN"):
        delta_z(torch.nn.Linear(12, 5), x, y, 0.1, "ce")
    with pytest.raises(ArchscaleError, match="do not match"):
        delta_z(model, x, torch.zeros(len(x), 3, dtype=torch.float64), 0.1, "mse")
    assert issubclass(ArchscaleError, ValueError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_delta_z_on_cuda_matches_cpu():
    model = _mlp()
    x, y = _batch()
    cpu = delta_z(model, x, y, 0.3, "ce").per_vertex["delta_z2"].to_numpy()
    gpu = delta_z(model.cuda(), x, y, 0.3, "ce").per_vertex["delta_z2"].to_numpy()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5)
    table = coord_check(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], 0.1, 2, _batch(dtype=torch.float32),
                        device="cuda", progress=False)
    assert np.isfinite(table["mean_abs_z"]).all()


def test_forward_second_moments_still_per_vertex():
    model = _mlp("2_02_002", width=256)
    m = forward_second_moments(model, _batch(n=64)[0])
    assert m.shape == (4,) and np.all(m > 0)



@pytest.mark.parametrize("layout", ["paper", "reference"])
def test_readout_input_moment_is_what_the_readout_receives(layout):
    """The hook reads act(z_last) in the paper layout and z_last itself in the reference layout."""
    model = DagMLP("2_02_002", 12, 64, 5, layout=layout).double()
    x = _batch(n=48)[0]
    model.train()
    with torch.no_grad():
        _, nodes = model(x, return_nodes=True)
    last = torch.relu(nodes[-1]) if layout == "paper" else nodes[-1]
    assert readout_input_moment(model, x) == pytest.approx(float(last.pow(2).mean()), rel=1e-12)
    assert model.training  # the mode is restored


# ---------------------------------------------------------------------- coord_check
def test_coord_check_columns_shape_and_first_step():
    x, y = _batch(n=40, dtype=torch.float32)
    table = coord_check(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], 0.2, 3, (x, y), seeds=[0, 1],
                        progress=False)
    assert tuple(table.columns) == COORD_CHECK_COLUMNS
    assert len(table) == 2 * 2 * 4 * 4  # widths x seeds x (steps + 1) x (3 vertices + logits)
    assert (table.loc[table["step"] == 0, "mean_abs_delta_z"] == 0).all()
    assert table.loc[table["step"] == 3, "loss"].isna().all()
    assert table.loc[table["step"] < 3, "loss"].notna().all()
    assert set(table["kind"]) == {"vertex", "output"}
    # step 1 of a full-batch run equals the hand-made step
    torch.manual_seed(0)
    model = DagMLP("2_02", 12, 16, 5).double()
    manual = copy.deepcopy(model)
    logits0, nodes0 = manual(x.double(), return_nodes=True)
    grads = torch.autograd.grad(F.cross_entropy(logits0, y), list(manual.parameters()))
    with torch.no_grad():
        for p, g in zip(manual.parameters(), grads):
            p.sub_(0.2 * g)
        logits1, nodes1 = manual(x.double(), return_nodes=True)
    after, before = list(nodes1) + [logits1], [t.detach() for t in list(nodes0) + [logits0]]
    expected = [float((a - b).abs().mean()) for a, b in zip(after, before)]
    got = table[(table["width"] == 16) & (table["seed"] == 0) & (table["step"] == 1)]["mean_abs_delta_z"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-4)


def test_coord_check_minibatches_dataset_and_reproducibility():
    class FakeDataset:  # shaped like archscale.data.Dataset
        x_train, y_train = _batch(n=50, dtype=torch.float32)

    def make(n):
        return DagMLP("2_12", 12, n, 5)

    a = coord_check(make, [8], 0.1, 4, FakeDataset(), batch_size=16, probe_size=10, progress=False)
    b = coord_check(make, [8], 0.1, 4, FakeDataset(), batch_size=16, probe_size=10, progress=False)
    pd.testing.assert_frame_equal(a, b)
    c = coord_check(make, [8], 0.1, 4, FakeDataset(), batch_size=16, probe_size=10, progress=False,
                    lr_mult=lambda n: {"readout": 8 / n}, freeze="stem")
    assert c.loc[(c["vertex"] == 0), "mean_abs_delta_z"].eq(0).all()


def test_coord_check_draws_minibatches_from_the_one_seeding_scheme():
    x, _ = _batch(n=50, dtype=torch.float32)
    y = torch.arange(50)  # each label names its example, so the loss sees which ones were drawn
    seen = []

    def loss(logits, labels):
        seen.append(labels.tolist())
        return F.cross_entropy(logits, labels % 5)

    coord_check(lambda n: DagMLP("2_02", 12, n, 5), [8], 0.1, 7, (x, y), loss=loss, seeds=[3],
                batch_size=16, progress=False)
    expected = [idx.tolist() for idx in minibatch_schedule(50, 16, 3, 7)]
    assert seen == expected  # two epochs: 16, 16, 16, 2, then a fresh permutation
    assert [len(b) for b in seen] == [16, 16, 16, 2, 16, 16, 16]
    assert sorted(sum(seen[:4], [])) == list(range(50))


def test_coord_check_takes_a_single_width_as_a_list_of_one():
    data = _batch(n=20, dtype=torch.float32)
    one = coord_check(lambda n: DagMLP("2", 12, n, 5), 8, 0.1, 2, data, progress=False)
    listed = coord_check(lambda n: DagMLP("2", 12, n, 5), [8], 0.1, 2, data, progress=False)
    pd.testing.assert_frame_equal(one, listed)


@pytest.mark.parametrize("kwargs, match", [
    ({"widths": []}, "widths is empty"),
    ({"widths": [0, 8]}, "integer >= 1"),
    ({"widths": [8.5]}, "integer >= 1"),
    ({"widths": "8"}, "integer >= 1"),
    ({"lr": 0}, "positive"),
    ({"lr": -0.1}, "positive"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"loss": "l1"}, "unknown loss"),
    ({"seeds": []}, "seeds"),
    ({"batch_size": 0}, "batch_size"),
    ({"data": "digits"}, "an \\(x, y\\) pair"),
    ({"make_model": 3}, "make_model must be a function"),
])
def test_coord_check_bad_arguments(kwargs, match):
    args = {"make_model": lambda n: DagMLP("2", 12, n, 5), "widths": [8], "lr": 0.1, "steps": 2,
            "data": _batch(dtype=torch.float32), "progress": False, **kwargs}
    with pytest.raises(ArchscaleError, match=match):
        coord_check(**args)


# ---------------------------------------------------------------------- tables for the notebook
def test_delta_z_vs_lr_table_and_lr_at_target():
    x, y = _batch(dtype=torch.float32)
    table = delta_z_vs_lr(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], [1e-3, 1e-2, 1e-1], x, y,
                          seeds=[0, 1], progress=False)
    assert list(table.columns) == ["width", "lr", "seed", "vertex", "kind", "delta_z2"]
    assert len(table) == 2 * 3 * 2 * 4
    torch.manual_seed(1)
    direct = delta_z(DagMLP("2_02", 12, 16, 5), x, y, 1e-2, "ce").per_vertex["delta_z2"].to_numpy()
    row = table[(table["width"] == 16) & (table["lr"] == 1e-2) & (table["seed"] == 1)]
    np.testing.assert_allclose(row["delta_z2"].to_numpy(), direct, rtol=1e-6)
    with pytest.raises(ArchscaleError, match="lrs is empty"):
        delta_z_vs_lr(lambda n: DagMLP("2", 12, n, 5), [8], [], x, y, progress=False)


def test_delta_z_graphs_shared_and_scaled_lr():
    x, y = _batch(dtype=torch.float32)
    graphs = ["1", "2_02", Dag.parse("2_22")]
    table = delta_z_graphs(graphs, lambda d: DagMLP(d, 12, 16, 5), x, y, 0.1, seeds=[0, 1], progress=False)
    assert list(table.columns) == ["graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"]
    assert len(table) == 3 * 2 * 2 * 3
    assert set(table["kind"]) == {"last", "output", "output_no_readout"}
    base = table[table["graph"] == "1"]
    assert set(base["lr"]) == {0.1}
    scaled = table[(table["graph"] == "2_22") & (table["lr_rule"] == "scaled")]["lr"].iloc[0]
    assert scaled == pytest.approx(0.1 * lr_scale(Dag.parse("2_22")))
    # the rows agree with delta_z on the same model (and with the readout frozen)
    torch.manual_seed(1)
    model = DagMLP("2_22", 12, 16, 5)
    full = delta_z(model, x, y, scaled, "ce", contributions=False)
    frozen = delta_z(model, x, y, scaled, "ce", contributions=False, freeze="readout")
    rows = table[(table["graph"] == "2_22") & (table["seed"] == 1) & (table["lr_rule"] == "scaled")]
    got = rows.set_index("kind")["delta_z2"]
    assert got["last"] == pytest.approx(full.last_vertex, rel=1e-6)
    assert got["output"] == pytest.approx(full.output, rel=1e-6)
    assert got["output_no_readout"] == pytest.approx(frozen.output, rel=1e-6)
    with pytest.raises(ArchscaleError, match="graphs is empty"):
        delta_z_graphs([], lambda d: DagMLP(d, 12, 16, 5), x, y, 0.1, progress=False)


def test_delta_z_graphs_rules_and_readout_frozen_options():
    x, y = _batch(dtype=torch.float32)
    make = lambda d: DagMLP(d, 12, 16, 5)  # noqa: E731
    full = delta_z_graphs(["2_02", "2_22"], make, x, y, 0.1, seeds=[0, 1], progress=False)
    lean = delta_z_graphs(["2_02", "2_22"], make, x, y, 0.1, seeds=[0, 1], rules=("shared",),
                          readout_frozen=False, progress=False)
    assert set(lean["lr_rule"]) == {"shared"} and set(lean["kind"]) == {"last", "output"}
    keep = full[(full["lr_rule"] == "shared") & full["kind"].isin(["last", "output"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(lean, keep)
    scaled = delta_z_graphs(["2_02"], make, x, y, 0.1, rules="scaled", progress=False)
    assert set(scaled["lr_rule"]) == {"scaled"}
    with pytest.raises(ArchscaleError, match="lr rule"):
        delta_z_graphs(["2_02"], make, x, y, 0.1, rules=("fixed",), progress=False)
    with pytest.raises(ArchscaleError, match="rules is empty"):
        delta_z_graphs(["2_02"], make, x, y, 0.1, rules=(), progress=False)


def test_delta_z_widths_matches_delta_z_per_width_and_seed():
    x, y = _batch(n=1, dtype=torch.float32)
    graphs = {8: ["2", "2_02"], 32: ["2"]}
    table = delta_z_widths(graphs, lambda d, n: DagMLP(d, 12, n, 5), x, y, 0.05,
                           seeds={8: [0, 1], 32: [3]}, progress=False)
    assert list(table.columns) == ["width", "graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"]
    assert sorted(set(zip(table["width"], table["graph"], table["seed"]))) == \
        [(8, "2", 0), (8, "2", 1), (8, "2_02", 0), (8, "2_02", 1), (32, "2", 3)]
    assert set(table["kind"]) == {"last", "output"} and set(table["lr_rule"]) == {"shared"}
    for width, code, seed in [(8, "2_02", 1), (32, "2", 3)]:
        torch.manual_seed(seed)
        ref = delta_z(DagMLP(code, 12, width, 5), x, y, 0.05, "mse", contributions=False)
        row = table[(table["width"] == width) & (table["graph"] == code) & (table["seed"] == seed)]
        got = row.set_index("kind")["delta_z2"]
        assert got["last"] == pytest.approx(ref.last_vertex, rel=1e-6)
        assert got["output"] == pytest.approx(ref.output, rel=1e-6)
    same = delta_z_widths({8: ["2"]}, lambda d, n: DagMLP(d, 12, n, 5), x, y, 0.05, seeds=[0], progress=False)
    assert same["delta_z2"].tolist() == table[(table["width"] == 8) & (table["graph"] == "2")
                                              & (table["seed"] == 0)]["delta_z2"].tolist()
    with pytest.raises(ArchscaleError, match="map each width"):
        delta_z_widths(["2"], lambda d, n: DagMLP(d, 12, n, 5), x, y, 0.05, progress=False)
    with pytest.raises(ArchscaleError, match="width"):
        delta_z_widths({0: ["2"]}, lambda d, n: DagMLP(d, 12, n, 5), x, y, 0.05, progress=False)


# ---------------------------------------------------------------------- figures
def test_figures_draw_from_the_measurements():
    import matplotlib.pyplot as plt

    from archscale.plots import maximal_update as mup

    x, y = _batch(dtype=torch.float32)
    r = delta_z(DagMLP("2_12", 12, 8, 5), x, y, 0.1, "ce")
    figs = [mup.plot_contributions(r)]
    cc = coord_check(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], 0.1, 2, (x, y), progress=False)
    figs.append(mup.plot_coord_check({"mean-field": cc, "standard": cc}))
    table = delta_z_vs_lr(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], [1e-2, 1e-1, 1.0, 10.0], x, y,
                          progress=False)
    figs.append(mup.plot_delta_z_vs_lr({"mean-field": table}, target=1e-3))
    for fig in figs:
        assert fig.axes and fig.get_suptitle() or fig.axes[0].get_title()
        plt.close(fig)


