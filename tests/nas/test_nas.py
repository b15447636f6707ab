"""NAS-Bench-201 cell networks, the three recipes, and the ranking statistics of the NAS study."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from archscale import nas
from archscale.core.dag import Dag, DagError
from archscale.core.errors import ArchscaleError
from archscale.core.scaling import init_std, lr_scale, readout_std
from archscale.nas import CellNet, NasCell, ReLUConvBN


def bench(**changes):
    """NAS-Bench-201's protocol (nas.BENCHMARK) with some settings changed."""
    return replace(nas.BENCHMARK, **changes)


def _tiny_data(n_train=48, n_test=24, shape=(1, 8, 8), n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        name="tiny", n_classes=n_classes, in_shape=shape,
        x_train=torch.randn(n_train, *shape, generator=g),
        y_train=torch.randint(0, n_classes, (n_train,), generator=g),
        x_test=torch.randn(n_test, *shape, generator=g),
        y_test=torch.randint(0, n_classes, (n_test,), generator=g),
    )


# ------------------------------------------------------------------------------ networks
@pytest.mark.parametrize("digit", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 9, 9)])
def test_cell_net_builds_and_forwards_for_every_op(digit, shape):
    code = f"{digit}_{digit}{digit}_{digit}{digit}{digit}"
    model = CellNet(code, shape[0], width=4, n_cells=2, out_dim=5)
    cell = model.cells[0]
    expected = nas.CELL_OPS[digit]
    assert all(e.op == expected for e in cell.dag.edges)
    assert len(cell.edge_modules) == 6
    assert len(model.cells) == 6 and len(model.reductions) == 2
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    if digit in (2, 3):
        assert isinstance(cell.edge_modules["0_1"], ReLUConvBN)
        assert cell.edge_modules["0_1"].conv.kernel_size == ((1, 1) if digit == 2 else (3, 3))
    else:
        assert cell.edge_conv(0, 1) is None


def test_cell_sums_incoming_edges_and_fills_unreached_vertices_with_zeros():
    cell = NasCell("0_11_001", channels=3)  # vertex 1 has no input; 2 = x + 0; 3 = vertex 2
    x = torch.randn(2, 3, 5, 5)
    out, nodes = cell(x, return_nodes=True)
    assert torch.equal(nodes[1], torch.zeros_like(x))
    assert torch.allclose(out, x)
    pooled = NasCell("4_00_010", channels=3)(x)  # avg pool 3x3 with count_include_pad=False
    assert torch.allclose(pooled, torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
    # a conv out of an unreached vertex still runs (on zeros)
    net = CellNet("0_33_003", 1, width=4, n_cells=1, out_dim=3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_reduction_halves_spatial_size_and_doubles_channels_down_to_two_pixels():
    net = CellNet("3_33_333", 1, width=4, n_cells=1, out_dim=10, batchnorm=False)
    h = net.stem(torch.randn(2, 1, 8, 8))
    sizes = []
    for block in net.blocks:
        h = block(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(4, 8, 8), (8, 4, 4), (8, 4, 4), (16, 2, 2), (16, 2, 2)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_bad_cells_and_arguments_are_refused_with_clear_errors():
    with pytest.raises(DagError, match="no path"):
        CellNet("0_00_000", 1, 4, 1, 10)
    with pytest.raises(ArchscaleError, match="ops='nb201'"):
        CellNet(Dag.parse("2_02_002"), 1, 4, 1, 10)
    with pytest.raises(ArchscaleError, match="width"):
        CellNet("3_03_003", 1, 0, 1, 10)
    with pytest.raises(ArchscaleError, match="init"):
        CellNet("3_03_003", 1, 4, 1, 10, init="xavier")
    with pytest.raises(ArchscaleError, match="recipe"):
        nas.build_cell_net("3_03_003", "adam", in_channels=1, out_dim=10)
    flat = SimpleNamespace(x_train=torch.zeros(4, 64), y_train=torch.zeros(4), x_test=torch.zeros(4, 64),
                           y_test=torch.zeros(4), n_classes=10)
    with pytest.raises(ArchscaleError, match="flatten=False"):
        nas.train_cell_net("3_03_003", "fixed", flat, width=4, n_cells=1)


# ------------------------------------------------------------------------------ initialization
@torch.no_grad()
def test_in_degree_init_per_edge_follows_the_target_vertex():
    dag = Dag.parse("3_23_332", ops="nb201")  # live in-degrees 1, 2, 3 at vertices 1, 2, 3
    assert dag.live_in_degrees == (0, 1, 2, 3)
    torch.manual_seed(0)
    ours = CellNet(dag, 1, width=64, n_cells=1, out_dim=10, init="archscale")
    he = CellNet(dag, 1, width=64, n_cells=1, out_dim=10, init="he", readout="standard")
    for cell_ours, cell_he in zip(ours.cells, he.cells):
        for e in dag.edges:
            conv = cell_ours.edge_conv(e.src, e.dst)
            if conv is None:
                continue
            fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
            expected = init_std(fan_in, dag.live_in_degrees[e.dst])
            assert ours.edge_init_std(cell_ours, e.src, e.dst) == pytest.approx(expected)
            assert float(conv.weight.std()) == pytest.approx(expected, rel=0.08)
            w_he = cell_he.edge_conv(e.src, e.dst).weight
            assert float(w_he.std()) == pytest.approx(init_std(fan_in, 1), rel=0.08)
    red = ours.reductions[0]
    assert float(red.conv_b.conv.weight.std()) == pytest.approx(init_std(128 * 9, 2), rel=0.05)
    assert float(he.reductions[0].conv_b.conv.weight.std()) == pytest.approx(init_std(128 * 9, 1), rel=0.05)
    assert float(ours.head.weight.std()) == pytest.approx(readout_std(256), rel=0.15)
    assert float(he.head.weight.std()) == pytest.approx(readout_std(256, mean_field=False), rel=0.15)
    assert torch.all(ours.head.bias == 0)


def test_build_cell_net_is_seeded_and_recipes_pick_their_init():
    a = nas.build_cell_net("3_13_203", "archscale", in_channels=1, out_dim=10, width=8, n_cells=1, seed=3)
    b = nas.build_cell_net("3_13_203", "archscale", in_channels=1, out_dim=10, width=8, n_cells=1, seed=3)
    f = nas.build_cell_net("3_13_203", "fixed", in_channels=1, out_dim=10, width=8, n_cells=1, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert (a.init_scheme, a.readout_kind) == ("archscale", "mean_field")
    assert (f.init_scheme, f.readout_kind) == ("he", "standard")


def test_recipe_lr_uses_the_nb201_depth_convention():
    assert nas.recipe_lr("1_01_001", "archscale") == pytest.approx(0.1)  # the base: one path of depth 1
    assert nas.recipe_lr("3_03_003", "archscale") == pytest.approx(0.1 / 4**1.5)  # one path, L = 1 + 3
    dag = Dag.parse("3_23_241", ops="nb201")
    assert nas.recipe_lr(dag, "archscale", 0.2) == pytest.approx(0.2 * lr_scale(dag, "nb201"))
    assert nas.recipe_lr(dag, "fixed") == nas.recipe_lr(dag, "mup") == 0.1
    with pytest.raises(ArchscaleError, match="positive"):
        nas.recipe_lr(dag, "fixed", -1.0)


# ------------------------------------------------------------------------------ muP
def test_mup_infshapes_and_param_groups_follow_musgd():
    model = nas.build_cell_net("3_23_241", "mup", in_channels=3, out_dim=10, width=8, n_cells=1,
                               mup_base_width=2)
    shapes = model.mup_shapes
    assert shapes["stem.weight"] == ((8, 2), (3, None), (3, None), (3, None))
    assert shapes["head.weight"] == ((10, None), (32, 8))
    assert shapes["head.bias"] == ((10, None),)
    assert shapes["blocks.0.edge_modules.0_1.conv.weight"] == ((8, 2), (8, 2), (3, None), (3, None))
    assert model.readout_mult == pytest.approx(1 / 4)
    groups = nas.mup_param_groups(model, lr=0.1, weight_decay=5e-4)
    lr_of = {name: (g["lr"], g["weight_decay"]) for g in groups for name in g["names"]}
    assert set(lr_of) == {n for n, _ in model.named_parameters()}
    assert lr_of["stem.weight"] == pytest.approx((0.4, 5e-4 / 4))  # input weights: lr * width_mult
    assert lr_of["stem_bn.weight"] == pytest.approx((0.4, 5e-4 / 4))  # vectors of width size
    assert lr_of["head.weight"] == pytest.approx((0.4, 5e-4 / 4))  # output weights (fan-in infinite)
    assert lr_of["head.bias"] == pytest.approx((0.1, 5e-4))  # no infinite dimension
    assert lr_of["blocks.0.edge_modules.0_1.conv.weight"] == pytest.approx((0.1, 5e-4))  # hidden
    assert lr_of["blocks.1.conv_a.conv.weight"] == pytest.approx((0.1, 5e-4))  # C -> 2C, ratio 1


def test_mup_readout_is_the_standard_logits_over_sqrt_width_mult():
    kw = dict(in_channels=1, out_dim=10, width=8, n_cells=1, seed=5)
    fixed = nas.build_cell_net("3_13_203", "fixed", **kw).eval()
    mup = nas.build_cell_net("3_13_203", "mup", mup_base_width=2, **kw).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(mup(x), fixed(x) / 2.0, atol=1e-6)  # width_mult 4, biases zero
    with pytest.raises(ArchscaleError, match="already"):
        nas.apply_mup(mup, 2)
    with pytest.raises(ArchscaleError, match="apply_mup"):
        nas.mup_param_groups(fixed, 0.1)
    zero = nas.apply_mup(nas.build_cell_net("3_13_203", "fixed", **kw), 2, readout_zero_init=True)
    assert torch.all(zero.head.weight == 0)


# ------------------------------------------------------------------------------ training
def test_train_cell_net_returns_a_reproducible_row_for_every_recipe():
    data = _tiny_data()
    cfg = bench(epochs=2, batch_size=16)
    for recipe in nas.RECIPES:
        row = nas.train_cell_net("3_13_203", recipe, data, cfg, width=4, n_cells=1, seed=1)
        again = nas.train_cell_net("3_13_203", recipe, data, cfg, width=4, n_cells=1, seed=1)
        assert set(row) == set(nas.RESULT_COLUMNS)
        assert row["recipe"] == recipe and not row["diverged"]
        assert math.isfinite(row["train_loss"]) and 0 <= row["test_acc"] <= 1
        assert {k: v for k, v in row.items() if k != "seconds"} == {k: v for k, v in again.items()
                                                                     if k != "seconds"}
    assert row["lr"] == pytest.approx(0.1)


def test_training_learns_a_separable_task_and_flags_divergence():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (96,), generator=g)
    x = torch.randn(96, 1, 6, 6, generator=g) * 0.3 + (2 * y - 1).float()[:, None, None, None]
    data = SimpleNamespace(name="sep", n_classes=2, x_train=x[:64], y_train=y[:64], x_test=x[64:],
                           y_test=y[64:])
    row = nas.train_cell_net("2_02_002", "fixed", data, bench(epochs=4, batch_size=16), width=4,
                             n_cells=1)
    assert row["test_acc"] > 0.9
    huge = bench(epochs=3, batch_size=16)
    bad = nas.train_cell_net("2_02_002", "fixed", data, huge, width=4, n_cells=1, base_lr=1e30)
    assert bad["diverged"] and bad["test_acc"] == 0.5


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_nas_study_trains_with_sgd_only(tmp_path, optimizer):
    data = _tiny_data()
    cfg = bench(epochs=1, momentum=0.0, nesterov=False, optimizer=optimizer)
    calls = [lambda: nas.train_cell_net("3_03_003", "fixed", data, cfg),
             lambda: nas.run_nas_study(["3_03_003"], data, cfg=cfg, out_dir=tmp_path / "s", progress=False),
             lambda: nas.find_base_lr(data, [0.1], cfg=cfg, progress=False)]
    for call in calls:
        with pytest.raises(ArchscaleError, match=f"optimizer '{optimizer}' is not supported there") as err:
            call()
        assert "\n" not in str(err.value)
    assert not (tmp_path / "s").exists()


def test_augment_keeps_shape_and_is_seeded():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    a = nas.training._augment(x, torch.Generator().manual_seed(0))
    b = nas.training._augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    with pytest.raises(ArchscaleError, match="nesterov"):
        bench(momentum=0.0)


def test_run_nas_study_is_resumable_and_refuses_other_settings(tmp_path, monkeypatch):
    data = _tiny_data()
    cfg = bench(epochs=1, batch_size=16)
    cells = ["3_13_203", "1_01_001"]
    kw = dict(recipes=("fixed", "archscale"), seeds=(0,), cfg=cfg, width=4, n_cells=1, progress=False)
    first = nas.run_nas_study(cells, data, out_dir=tmp_path, **kw)
    assert len(first) == 4 and set(first["recipe"]) == {"fixed", "archscale"}
    assert len(nas.load_nas_results(tmp_path)) == 4

    def boom(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(nas.study, "train_cell_net", boom)
    again = nas.run_nas_study(cells, data, out_dir=tmp_path, **kw)
    cols = ["graph", "recipe", "test_acc"]
    pd.testing.assert_frame_equal(again[cols], first[cols])
    with pytest.raises(ArchscaleError, match="holds a NAS study of another setup"):
        nas.run_nas_study(cells, data, out_dir=tmp_path, **{**kw, "width": 8})
    with pytest.raises(ArchscaleError, match="no NAS results"):
        nas.load_nas_results(tmp_path / "nowhere")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.jsonl").write_text("graph,recipe\n")
    with pytest.raises(ArchscaleError, match="not"):
        nas.run_nas_study(cells, data, out_dir=foreign, **kw)
    assert (foreign / "results.jsonl").read_text() == "graph,recipe\n"


# ------------------------------------------------------------------------------ rankings
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=30))
def test_kendall_tau_matches_scipy_tau_b_with_ties(pairs):
    a, b = np.array(pairs, dtype=float).T
    ours = nas.kendall_tau(a, b)
    ref = stats.kendalltau(a, b).statistic
    if np.isnan(ref):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(ref, abs=1e-12)


def test_kendall_tau_on_continuous_data_and_edge_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    b = a + rng.normal(size=500)
    assert nas.kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert nas.kendall_tau(a, a) == pytest.approx(1.0) and nas.kendall_tau(a, -a) == pytest.approx(-1.0)
    assert np.isnan(nas.kendall_tau([1.0], [2.0]))
    with pytest.raises(ArchscaleError, match="same length"):
        nas.kendall_tau([1, 2], [1, 2, 3])


def test_topk_kendall_restricts_to_the_top_of_the_first_ranking():
    a = np.arange(20, dtype=float)  # top 25% by a: items 15..19
    b = a.copy()
    b[15:] = b[15:][::-1]  # the top five are reversed, the rest agree
    df = nas.topk_kendall(a, b, ks=(100, 25, 5))
    assert list(df["n"]) == [20, 5, 3]
    assert df["tau"].iloc[1] == pytest.approx(-1.0)
    assert df["tau"].iloc[2] == pytest.approx(-1.0)
    assert df["tau"].iloc[0] == pytest.approx(stats.kendalltau(a, b).statistic)
    by_b = nas.topk_kendall(a, b, ks=(25,), by="b")
    assert by_b["tau"].iloc[0] == pytest.approx(-1.0)
    with pytest.raises(ArchscaleError, match="top-K"):
        nas.topk_kendall(a, b, ks=(0,))


def test_pairwise_gaps_and_topk_gap():
    acc = np.array([90.0, 92.0, 95.0, 80.0])
    gaps = nas.pairwise_gaps(acc)
    brute = sorted(abs(x - y) for i, x in enumerate(acc) for y in acc[i + 1:])
    assert sorted(gaps) == pytest.approx(brute)
    df = nas.topk_pairwise_gap(acc, ks=(100, 50))
    assert df["mean_gap"].iloc[0] == pytest.approx(np.mean(brute))
    assert df["mean_gap"].iloc[1] == pytest.approx(3.0)  # top two: 95 and 92


def test_mean_gain_intervals():
    rng = np.random.default_rng(1)
    old = rng.normal(90, 2, size=40)
    new = old + rng.normal(0.5, 1.0, size=40)
    d = new - old
    t = nas.mean_gain(new, old, method="t")
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (t.mean, t.lo, t.hi) == pytest.approx((d.mean(), lo, hi))
    boot = nas.mean_gain(new, old, seed=3, n_boot=4000)
    assert boot == nas.mean_gain(new, old, seed=3, n_boot=4000)
    assert boot.lo < boot.mean < boot.hi
    assert boot.lo == pytest.approx(lo, abs=0.15) and boot.hi == pytest.approx(hi, abs=0.15)
    flat = nas.mean_gain(old + 1.0, old)
    assert flat.lo == pytest.approx(1.0) and flat.hi == pytest.approx(1.0)
    assert "CI" in str(boot)
    with pytest.raises(ArchscaleError, match="at least 2"):
        nas.mean_gain([1.0], [0.0])


def _synthetic_results(n_cells=12, seeds=(0, 1)):
    rng = np.random.default_rng(0)
    cells = [d.code for d in Dag.sample(4, n_cells, seed=0, ops="nb201")]
    quality = rng.uniform(0.85, 0.95, size=n_cells)
    rows = []
    for recipe, shift in (("fixed", 0.0), ("archscale", 0.01), ("mup", -0.02)):
        for s in seeds:
            noise = rng.normal(0, 0.005, size=n_cells)
            for c, q, e in zip(cells, quality, noise):
                rows.append({"graph": c, "recipe": recipe, "seed": s, "test_acc": q + shift + e,
                             "diverged": False})
    return pd.DataFrame(rows)


def test_compare_recipes_and_rank_stability_tables():
    results = _synthetic_results()
    cmp = nas.compare_recipes(results, "archscale", "fixed", ks=(100, 50, 10))
    assert len(cmp.accuracy) == 12
    assert cmp.gain.mean == pytest.approx(1.0, abs=0.5) and cmp.gain.lo < cmp.gain.mean < cmp.gain.hi
    assert list(cmp.topk["k"]) == [100, 50, 10] and list(cmp.topk["n"]) == [12, 6, 3]
    assert set(cmp.gaps.columns) == {"k", "ks", "n", "fixed", "archscale"}
    assert "percentage points" in cmp.summary() and "seed-vs-seed" in cmp.summary()
    assert list(cmp.per_cell.columns) == ["graph", "fixed", "archscale", "diff", "lo", "hi", "n_seeds"]
    assert (cmp.per_cell["n_seeds"] == 2).all() and (cmp.per_cell["lo"] <= cmp.per_cell["diff"]).all()
    assert cmp.per_cell["fixed"].is_monotonic_increasing
    one = cmp.per_cell.iloc[0]
    cell = results[results["graph"] == one["graph"]]
    rows = cell.pivot_table(index="seed", columns="recipe", values="test_acc")
    assert one["diff"] == pytest.approx(100 * (rows["archscale"] - rows["fixed"]).mean())
    assert list(cmp.noise["ks"]) == list(cmp.topk["ks"]) and (cmp.noise["pairs"] == 1).all()
    stab = nas.rank_stability(results, ks=(100, 50), others=("archscale",))
    assert set(stab["comparison"]) == {"archscale vs fixed (seed mean)", "fixed: seed 0 vs 1",
                                       "archscale: seed 0 vs 1"}
    assert set(stab["kind"]) == {"across recipes", "across seeds"}
    with pytest.raises(ArchscaleError, match="not in the results"):
        nas.compare_recipes(results, "sgd", "fixed")


def test_figures_build_and_save(tmp_path):
    import matplotlib.pyplot as plt

    from archscale.plots import nas as nas_plots
    from archscale.plots import save_figure

    results = _synthetic_results()
    figs = {
        "fig4": nas_plots.scaled_vs_fixed_figure(nas.compare_recipes(results)),
        "fig8": nas_plots.mup_vs_archscale_figure(nas.compare_recipes(results, "archscale", "mup"),
                                                  nas.compare_recipes(results, "archscale", "fixed")),
        "fig9": nas_plots.rank_stability_figure(nas.rank_stability(results)),
    }
    for name, fig in figs.items():
        assert all(ax.get_title() for ax in fig.axes)
        paths = save_figure(fig, name, tmp_path)
        assert all(p.exists() for p in paths)
        plt.close(fig)


# ------------------------------------------------------------------------------ recipes and helpers
def test_recipe_variants_carry_their_own_base_lr():
    with pytest.raises(ArchscaleError, match="recipe kind"):
        nas.Recipe("x", "sgd")
    with pytest.raises(ArchscaleError, match="positive"):
        nas.Recipe("x", "archscale", -1.0)
    variant = nas.Recipe("archscale_0.5", "archscale", 0.5)
    assert nas.recipe_lr("3_03_003", variant) == pytest.approx(0.5 / 8)
    assert nas.recipe_lr("3_03_003", nas.Recipe("f", "fixed")) == pytest.approx(0.1)
    data = _tiny_data()
    row = nas.train_cell_net("3_03_003", variant, data, bench(epochs=1, batch_size=16), width=4,
                             n_cells=1)
    assert (row["recipe"], row["kind"], row["base_lr"]) == ("archscale_0.5", "archscale", 0.5)
    assert row["lr"] == pytest.approx(0.5 / 8)


def test_run_nas_study_refuses_a_recipe_name_reused_with_another_base_lr(tmp_path):
    data = _tiny_data()
    kw = dict(seeds=(0,), cfg=bench(epochs=1, batch_size=16), width=4, n_cells=1, progress=False,
              out_dir=tmp_path)
    variants = ["archscale", nas.Recipe("v", "archscale", 0.4)]
    table = nas.run_nas_study(["3_03_003"], data, recipes=variants, **kw)
    assert sorted(table["base_lr"]) == pytest.approx([0.1, 0.4])
    with pytest.raises(ArchscaleError, match="another name"):
        nas.run_nas_study(["3_03_003"], data, recipes=[nas.Recipe("v", "archscale", 0.8)], **kw)
    with pytest.raises(ArchscaleError, match="distinct"):
        nas.run_nas_study(["3_03_003"], data, recipes=["fixed", "fixed"], **kw)


def test_find_base_lr_picks_the_lowest_loss_and_never_a_diverged_lr():
    data = _tiny_data()
    search = nas.find_base_lr(data, [0.01, 0.3, 1e30], seeds=(0,), width=4, n_cells=1, progress=False,
                              cfg=bench(batch_size=16))
    assert search.base_cell == "1_01_001" and search.kind == "archscale"
    assert list(search.table["lr"]) == [0.01, 0.3, 1e30]
    assert bool(search.table["diverged"].iloc[-1])
    finite = search.table.iloc[:2]
    assert search.best_lr == finite.loc[finite["train_loss"].idxmin(), "lr"]
    assert search.summary["n_diverged"] == 1
    with pytest.raises(ArchscaleError, match="empty"):
        nas.find_base_lr(data, [], width=4, n_cells=1)


def test_describe_cells_and_summaries():
    cells = nas.describe_cells(["3_03_003", "1_01_001", "3_33_333"])
    assert list(cells["paths"]) == [1, 1, 4]
    assert cells["path depths {L_p: count}"].iloc[2] == {2: 1, 3: 2, 4: 1}
    assert cells["lr_scale"].iloc[1] == pytest.approx(1.0)
    results = _synthetic_results()
    results["lr"], results["train_loss"], results["seconds"] = 0.1, 0.5, 1.0
    summary = nas.recipe_summary(results)
    assert list(summary["runs"]) == [24, 24, 24]
    comparisons = [nas.compare_recipes(results), nas.compare_recipes(results, "archscale", "mup")]
    table = nas.comparison_table(comparisons)
    assert list(table["comparison"]) == ["archscale vs fixed", "archscale vs mup"]
    assert table["mean gain (pp)"].iloc[1] == pytest.approx(3.0, abs=0.5)


def test_mup_matches_the_mup_package():
    """apply_mup + mup_param_groups agree with mup.set_base_shapes + MuReadout + MuSGD themselves."""
    mup = pytest.importorskip("mup")  # `make test` installs it with --no-deps
    kw = dict(in_channels=3, out_dim=10, n_cells=1)
    ours = nas.build_cell_net("3_23_241", "mup", width=8, mup_base_width=2, seed=3, **kw)

    def package_net(width: int, seed: int) -> nas.CellNet:
        net = nas.build_cell_net("3_23_241", "fixed", width=width, seed=seed, **kw)
        head = mup.MuReadout(net.head.in_features, net.head.out_features)
        head.load_state_dict(net.head.state_dict())
        net.head = head
        return net

    theirs = package_net(8, seed=3)
    mup.set_base_shapes(theirs, package_net(2, 0), delta=package_net(4, 0))  # rescales the readout
    for (name, p), (name2, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == name2 and torch.equal(p, q), name
        dims = tuple((int(d.dim), None if d.base_dim is None else int(d.base_dim)) for d in q.infshape)
        assert ours.mup_shapes[name] == dims, name
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-6, atol=1e-6)

    groups = nas.mup_param_groups(ours, 0.1, 5e-4)
    mine = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    names = {id(p): n for n, p in theirs.named_parameters()}
    opt = mup.MuSGD(theirs.parameters(), lr=0.1, weight_decay=5e-4)
    package = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert set(package) == set(mine)
    for name, (lr, wd) in package.items():
        assert mine[name] == pytest.approx((lr, wd)), name


@pytest.mark.determinism
def test_worker_processes_give_the_same_rows_as_one_process(tmp_path):
    """workers=2 trains the runs in spawned CPU processes (one torch thread each, as this test's
    process): every stored row and the LR search equal the one-process results."""
    data = _tiny_data()
    kw = dict(recipes=("fixed", "archscale"), seeds=(0, 1), cfg=bench(epochs=1, batch_size=16), width=4,
              n_cells=1, progress=False)
    cells = ["3_13_203", "1_01_001", "2_12_021"]
    cols = [c for c in nas.RESULT_COLUMNS if c != "seconds"]
    one = nas.run_nas_study(cells, data, out_dir=tmp_path / "one", **kw)
    two = nas.run_nas_study(cells, data, out_dir=tmp_path / "two", workers=2, **kw)
    key = ["graph", "recipe", "seed"]
    pd.testing.assert_frame_equal(two[cols].sort_values(key).reset_index(drop=True),
                                  one[cols].sort_values(key).reset_index(drop=True))
    assert len(nas.load_nas_results(tmp_path / "two")) == len(one) == 12
    search = dict(seeds=(0, 1), width=4, n_cells=1, progress=False, cfg=bench(batch_size=16))
    a = nas.find_base_lr(data, [0.05, 0.3, 1e30], **search)
    b = nas.find_base_lr(data, [0.05, 0.3, 1e30], workers=2, **search)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.best_lr == b.best_lr
    with pytest.raises(ArchscaleError, match="workers"):
        nas.run_nas_study(cells, data, workers=0, **kw)
