"""Derivations behind notebooks 01-03: the in-degree rule, exact second moments, LR tables, offset fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from archscale import Dag, lr_scale
from archscale.analysis.calibrate import fit_offset
from archscale.core.derivations import (
    in_degree_rule,
    lr_rule,
    offset_predictions,
    second_moment_recursion,
    space_table,
)
from archscale.core.errors import ArchscaleError
from archscale.probe import init_second_moments, predicted_second_moments


def test_in_degree_rule_solves_for_two_over_d():
    rule = in_degree_rule()
    d, n = rule.symbols["d_in"], rule.symbols["n"]
    assert sp.simplify(rule.gain - 2 / d) == 0
    assert sp.simplify(rule.weight_variance - 2 / (d * n)) == 0
    assert sp.simplify(rule.vertex_moment.subs(rule.symbols["C"], rule.gain) - rule.symbols["q"]) == 0


@pytest.mark.parametrize("code, init, expected", [
    ("2_22_222", "he", [1, 1, 2, 4]),
    ("2_22_222", "source", [1, 1, 2, 3]),
    ("2_22_222", "archscale", [1, 1, 1, 1]),
    ("1_12_112", "archscale", [1, 1, sp.Rational(3, 2), sp.Rational(9, 2)]),  # skips carry covariance
    ("0_02_202", "archscale", [1, 0, 0, 1]),  # vertices no path reaches hold zeros
])
def test_second_moment_recursion_exact_values(code, init, expected):
    K = second_moment_recursion(code, init)
    assert [K[v, v] for v in range(K.shape[0])] == expected
    assert K == K.T


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10**6))
def test_target_in_degree_preserves_every_live_vertex_of_block_graphs(n_vertices, seed):
    dag = Dag.sample(n_vertices, 1, seed=seed, digits=(0, 2))[0]
    moments = predicted_second_moments(dag, "archscale")
    live = np.array(dag.live)
    assert np.allclose(moments[live], 1.0) and np.allclose(moments[~live], 0.0)
    assert (predicted_second_moments(dag, "he")[live] >= 1 - 1e-12).all()


def test_recursion_rejects_unknown_scheme():
    with pytest.raises(ArchscaleError, match="accepted"):
        second_moment_recursion("2", "xavier")


def test_measured_moments_match_prediction_at_moderate_width():
    m = init_second_moments(["2_22_222", "1_12_112"], inits=("he", "archscale"), width=512, n_samples=256,
                            progress=False)
    assert set(m.columns) >= {"code", "init", "layout", "vertex", "ratio", "predicted", "in_degree"}
    live = m[m["predicted"] > 0]
    assert np.allclose(live["ratio"], live["predicted"], rtol=0.2)
    again = init_second_moments(["2_22_222"], inits=("he",), width=64, n_samples=32, progress=False)
    assert again["second_moment"].tolist() == init_second_moments(
        ["2_22_222"], inits=("he",), width=64, n_samples=32, progress=False)["second_moment"].tolist()


def test_reference_layout_has_no_prediction():
    m = init_second_moments(["2_22"], inits=("archscale",), layouts=("reference",), width=32, n_samples=16,
                            progress=False)
    assert m["predicted"].isna().all()


def test_lr_rule_symbolic_and_concrete():
    rule = lr_rule()
    eta, c, s3 = rule.symbols["eta"], rule.symbols["c"], rule.symbols["S3"]
    assert sp.simplify(rule.eta_star - c / sp.sqrt(s3)) == 0
    assert sp.simplify(rule.delta_z - eta**2 * s3) == 0
    cnn = lr_rule(kernel=True)
    q, qb = cnn.symbols["q"], cnn.symbols["q_base"]
    assert sp.simplify(cnn.transfer - sp.sqrt(cnn.symbols["S3_base"]) * qb / (sp.sqrt(s3) * q)) == 0
    worked = lr_rule([6, 5, 5, 4])
    ratio = float(worked.transfer.subs(worked.symbols["S3_base"], 27))
    assert ratio == pytest.approx(lr_scale(Dag.parse("2_22_222"), "mlp"))


def test_space_table_matches_lr_scale():
    table = space_table(3)
    n_with_path = sum(d.has_path for d in Dag.space(3))
    assert len(table) == n_with_path
    for row in table.itertuples():
        assert row.scale == pytest.approx(lr_scale(Dag.parse(row.code), "mlp"))
    sampled = space_table(5, sample=20, seed=1)
    assert len(sampled) == 20 and sampled["code"].is_unique
    assert sampled.equals(space_table(5, sample=20, seed=1))


def test_offset_predictions_for_chains():
    pred = offset_predictions([Dag.chain(k).code for k in (1, 4)], (1, 3, 5))
    for row in pred.itertuples():
        assert row.scale == pytest.approx((row.offset / (row.offset + row.longest)) ** 1.5)
    with pytest.raises(ArchscaleError):
        offset_predictions(["2"], (0,))


def _synthetic_sweep(true_offset: int) -> pd.DataFrame:
    """Sweep rows whose per-graph best LR follows eq. 8 with ``true_offset`` exactly."""
    lrs = np.geomspace(0.01, 2.0, 61)
    rows = []
    for k in range(0, 7):
        code = "1" if k == 0 else Dag.chain(k).code
        best = 0.8 * (true_offset / (true_offset + k)) ** 1.5
        for seed in (0, 1):
            for lr in lrs:
                rows.append({"graph": code, "arch": "mlp", "width": 64, "kernel_size": 0, "act": "relu",
                             "lr": float(lr), "seed": seed, "train_loss": 0.1 + np.log(lr / best) ** 2,
                             "test_loss": 0.0, "test_acc": 0.0, "diverged": False, "steps": 1})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("true_offset", [1, 3, 5])
def test_fit_offset_recovers_the_generating_offset(true_offset):
    fit = fit_offset(_synthetic_sweep(true_offset), offsets=range(1, 7))
    assert list(fit["offset"]) == [1, 2, 3, 4, 5, 6]
    assert int(fit.loc[fit["log_rmse_fit"].idxmin(), "offset"]) == true_offset
    assert fit.loc[fit["offset"] == true_offset, "log_rmse_fit"].item() < 0.05
    assert (fit["n"] == 6).all()  # the base graph is not scored


def test_fit_offset_rejects_bad_offsets():
    with pytest.raises(ArchscaleError):
        fit_offset(_synthetic_sweep(3), offsets=[0])
