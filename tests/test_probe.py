"""The maximal-update probes: delta_z against a hand-made SGD step, coord_check, and the analysis."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import dags

from archscale.dag import Dag
from archscale.models import DagCNN, DagMLP
from archscale.probe import (
    COORD_CHECK_COLUMNS,
    ArchscaleError,
    coord_check,
    coord_slopes,
    delta_z,
    delta_z_graphs,
    delta_z_spread,
    delta_z_vs_lr,
    fit_path_law,
    forward_second_moments,
    lr_at_target,
    lr_optimum_drift,
    min_path_params,
    parameter_groups,
    path_law_summary,
    update_lr_table,
    width_slope,
)
from archscale.scaling import lr_scale


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


@pytest.mark.parametrize("kwargs, match", [
    ({"widths": []}, "widths is empty"),
    ({"widths": [0, 8]}, "integer >= 1"),
    ({"widths": [8.5]}, "integer >= 1"),
    ({"widths": 8}, "list of integers"),
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


def test_lr_at_target_and_width_slope_on_a_known_law():
    lrs = np.geomspace(1e-3, 10, 15)
    rows = [(w, lr, 0, 1, "vertex", 3.0 * w * lr**2) for w in (64, 256, 1024) for lr in lrs]
    table = pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])
    at = lr_at_target(table, 1.0)
    expected = [math.sqrt(1 / (3 * w)) for w in (64, 256, 1024)]
    np.testing.assert_allclose(at["lr_at_target"], expected, rtol=1e-9)
    slope, _ = width_slope(at)
    assert slope == pytest.approx(-0.5)
    assert np.isnan(lr_at_target(table, 1e9)["lr_at_target"]).all()
    with pytest.raises(ArchscaleError, match="two or more"):
        width_slope(at.iloc[:1])


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


def _synthetic_graph_table(law, noise=0.0, seed=0, n=40):
    graphs = Dag.sample(5, n, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for g in graphs:
        value = law(g) * math.exp(noise * rng.standard_normal())
        rows.append((g.code, 0, "shared", 0.1, 4, "last", value))
        rows.append((g.code, 0, "scaled", 0.1 * lr_scale(g), 4, "last", value * lr_scale(g) ** 2))
    return pd.DataFrame(rows, columns=["graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"])


def test_fit_path_law_recovers_eq8():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.05)
    fit = fit_path_law(table, n_boot=200, seed=1)
    free = fit.law("sum L^3, free b")
    assert free.exponent == pytest.approx(1.0, abs=0.05)
    assert free.exponent_lo < 1.0 < free.exponent_hi
    both = fit.law("sum L^3, free b and offset")
    assert both.offset_lo <= 3.0 <= both.offset_hi
    assert fit.eq8_in_ci
    assert fit.law("eq. 8: sum L^3, b=1").delta_aic <= 2
    assert "consistent with eq. 8" in fit.verdict()
    again = fit_path_law(table, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(fit.table, again.table)


def test_fit_path_law_prefers_the_true_other_law():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(2, 1), noise=0.02)
    fit = fit_path_law(table, n_boot=100)
    assert fit.best["power"] == 2
    assert fit.law("sum L^2, free b and offset").offset == 1.0
    assert not fit.eq8_in_ci or fit.law("eq. 8: sum L^3, b=1").delta_aic > 2
    assert "favour" in fit.verdict()
    only_blocks = fit_path_law(table, n_boot=50, min_params=1)
    assert only_blocks.n_graphs == sum(min_path_params(g) >= 1 for g in table["graph"].unique())
    with pytest.raises(ArchscaleError, match="n_boot"):
        fit_path_law(table, n_boot=3)
    with pytest.raises(ArchscaleError, match="different learning rates"):
        fit_path_law(table, lr_rule="scaled", n_boot=50)
    with pytest.raises(ArchscaleError, match="at least 4 graphs"):
        fit_path_law(table[table["graph"].isin(table["graph"].unique()[:3])], n_boot=50)


def test_delta_z_spread_shared_vs_scaled():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3))
    spread = delta_z_spread(table).set_index("lr_rule")
    assert spread.loc["scaled", "max_min_ratio"] == pytest.approx(1.0)
    shared = table[table["lr_rule"] == "shared"]["delta_z2"]
    assert spread.loc["shared", "max_min_ratio"] == pytest.approx(shared.max() / shared.min())
    assert list(spread.columns) == ["n_graphs", "min", "max", "max_min_ratio", "q90_q10_ratio", "sd_log10",
                                    "narrowing"]
    assert spread.loc["scaled", "narrowing"] == pytest.approx(spread.loc["shared", "max_min_ratio"])


def test_lr_optimum_drift_on_known_curves():
    grid = 2.0 ** np.arange(-8, 1)
    rows = []
    for w, opt in [(64, 2**-4), (256, 2**-5), (1024, 2**-6)]:
        for seed in (0, 1):
            for lr in grid:
                loss = (math.log2(lr) - math.log2(opt)) ** 2 + 0.1 * seed
                rows.append({"width": w, "lr": lr, "seed": seed, "train_loss": loss, "diverged": False})
    rows.append({"width": 64, "lr": 1.0, "seed": 2, "train_loss": float("nan"), "diverged": True})
    table, summary = lr_optimum_drift(pd.DataFrame(rows))
    np.testing.assert_allclose(table["best_lr"], [2**-4, 2**-5, 2**-6])
    np.testing.assert_allclose(table["best_lr_interp"], [2**-4, 2**-5, 2**-6])
    assert summary["slope"] == pytest.approx(-0.5)
    assert summary["ratio"] == pytest.approx(0.25)
    assert summary["grid_steps"] == -2 and summary["grid_factor"] == pytest.approx(2.0)
    assert not summary["any_at_edge"] and not table["at_edge"].any()
    edge = pd.DataFrame([r for r in rows if r["lr"] >= 2**-5])
    assert lr_optimum_drift(edge)[1]["any_at_edge"]
    with pytest.raises(ArchscaleError, match="columns"):
        lr_optimum_drift(pd.DataFrame({"lr": [1.0]}))


# ---------------------------------------------------------------------- figures
def test_figures_draw_from_the_tables():
    import matplotlib.pyplot as plt

    from archscale.plots import mup

    x, y = _batch(dtype=torch.float32)
    r = delta_z(DagMLP("2_12", 12, 8, 5), x, y, 0.1, "ce")
    figs = [mup.plot_contributions(r)]
    cc = coord_check(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], 0.1, 2, (x, y), progress=False)
    figs.append(mup.plot_coord_check({"mean-field": cc, "standard": cc}))
    table = delta_z_vs_lr(lambda n: DagMLP("2_02", 12, n, 5), [8, 16], [1e-2, 1e-1, 1.0, 10.0], x, y,
                          progress=False)
    figs.append(mup.plot_delta_z_vs_lr({"mean-field": table}, target=1e-3))
    syn = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.1)
    figs.append(mup.plot_path_sum_fit(fit_path_law(syn, n_boot=50)))
    figs.append(mup.plot_spread(syn))
    sweep = pd.DataFrame([{"width": w, "lr": lr, "seed": s, "train_loss": (np.log2(lr) + 4) ** 2 + w / 1e3}
                          for w in (64, 128) for lr in 2.0 ** np.arange(-7, 0) for s in (0, 1)])
    figs.append(mup.plot_width_transfer({"mean-field": sweep}))
    for fig in figs:
        assert fig.axes and fig.get_suptitle() or fig.axes[0].get_title()
        plt.close(fig)


def test_update_lr_table_and_coord_slopes():
    lrs = np.geomspace(1e-3, 10, 15)
    tables = {}
    for label, power in [("flat", 0.0), ("sp", 1.0)]:
        rows = [(w, lr, 0, 1, "vertex", 3.0 * w**power * lr**2) for w in (64, 256, 1024) for lr in lrs]
        tables[label] = pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])
    table = update_lr_table(tables, 1e-2)
    assert list(table.columns) == ["n=64", "n=256", "n=1024", "slope_all", "slope_wide", "wide_from"]
    assert table.loc["flat", "slope_all"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc["sp", "slope_all"] == pytest.approx(-0.5)
    assert table.loc["sp", "slope_wide"] == pytest.approx(-0.5) and table.loc["sp", "wide_from"] == 256
    with pytest.raises(ArchscaleError, match="two or more"):
        width_slope(lr_at_target(tables["sp"], 1e-2), x_min=1024)

    rows = [(w, 0, t, v, "vertex", 1.0, 0.1 * t * w ** (0.5 * v), np.nan)
            for w in (64, 256) for t in (0, 1, 2) for v in (0, 1)]
    coord = pd.DataFrame(rows, columns=list(COORD_CHECK_COLUMNS))
    slopes = coord_slopes(coord).set_index("vertex")
    assert slopes.loc[0, "slope"] == pytest.approx(0.0, abs=1e-9)
    assert slopes.loc[1, "slope"] == pytest.approx(0.5)
    assert slopes.loc[1, "ratio"] == pytest.approx(2.0)
    with pytest.raises(ArchscaleError, match="value must be"):
        coord_slopes(coord, value="loss")
    with pytest.raises(ArchscaleError, match="no rows at step 7"):
        coord_slopes(coord, step=7)


def test_path_law_summary_and_offset_edge_note():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3), noise=0.05)
    fits = {"eq8": fit_path_law(table, n_boot=50), "edge": fit_path_law(table, n_boot=50, offsets=[3, 4])}
    summary = path_law_summary(fits).set_index("fit")
    assert summary.loc["eq8", "b=1 in CI"]
    assert summary.loc["eq8", "b_lo"] < summary.loc["eq8", "b_sumL3"] < summary.loc["eq8", "b_hi"]
    assert "edge of the grid" in fits["edge"].verdict()


def test_fit_path_law_matches_numpy_least_squares():
    table = _synthetic_graph_table(lambda g: 1e-4 * g.path_power_sum(3, 3) ** 1.5, noise=0.3, n=60)
    fit = fit_path_law(table, n_boot=50)
    d = fit.data
    for k in (2, 3):
        b, a = np.polyfit(np.log(d[f"S{k}_off3"]), np.log(d["delta_z2"]), 1)
        row = fit.law(f"sum L^{k}, free b")
        assert row.exponent == pytest.approx(b, rel=1e-9) and row.intercept == pytest.approx(a, rel=1e-9)
        resid = np.log(d["delta_z2"]) - a - b * np.log(d[f"S{k}_off3"])
        assert row.ssr == pytest.approx(float((resid**2).sum()), rel=1e-8)
    eq8 = fit.law("eq. 8: sum L^3, b=1")
    assert eq8.intercept == pytest.approx(float(np.mean(np.log(d["delta_z2"]) - np.log(d["S3_off3"]))))
