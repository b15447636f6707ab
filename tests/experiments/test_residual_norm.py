"""The residual / BatchNorm depth experiment: every family measured, every law scored, the best
law the one with the lowest error factor, and "separated" only when the intervals say so."""

import math

import pandas as pd
import pytest
import torch

from archscale.experiments.residual_norm import FAMILIES, ResidualCNN, ResidualNorm, run_residual_norm


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_residual_norm("smoke", runs_dir=tmp_path_factory.mktemp("rn"), progress=False, n_boot=100)


def test_every_family_is_measured_and_scored(smoke):
    table = smoke.table()
    assert set(table["family"]) == set(FAMILIES)
    plain = table[table["family"] == "plain"]
    assert {"eq8", "effective_depth", "constant"} <= set(plain["law"])
    # a Depth-muP family multiplies its branches by a constant: the one LR it claims is scored
    assert "constant" in set(table[table["family"] == "plain, Depth-muP"]["law"])
    ok = table.dropna(subset=["error_factor"])
    assert (ok["error_factor"] >= 1).all() and (ok["lo"] <= ok["error_factor"] + 1e-9).all()


def test_best_is_the_lowest_error_factor(smoke):
    best = smoke.best().set_index("family")
    for family, g in smoke.table().groupby("family"):
        assert best.loc[family, "error_factor"] == pytest.approx(g["error_factor"].min())


def test_separated_only_when_the_runner_up_interval_clears_the_best():
    rows = pd.DataFrame([
        {"family": "f", "law": "a", "error_factor": 1.2, "lo": 1.1, "hi": 1.3, "noise_floor": 1.05},
        {"family": "f", "law": "b", "error_factor": 3.0, "lo": 2.0, "hi": 4.0, "noise_floor": 1.05},
        {"family": "g", "law": "a", "error_factor": 1.2, "lo": 1.1, "hi": 2.5, "noise_floor": 1.05},
        {"family": "g", "law": "b", "error_factor": 3.0, "lo": 2.0, "hi": 4.0, "noise_floor": 1.05},
    ])

    class Fixed(ResidualNorm):
        def table(self):
            return rows

    best = Fixed("smoke", {}, {}).best().set_index("family")
    assert best.loc["f", "separated"] and not best.loc["g", "separated"]
    assert best.loc["f", "best"] == "a" and best.loc["f", "runner_up"] == "b"


def test_depth_mup_scales_the_branch_by_one_over_root_depth():
    torch.manual_seed(0)
    net = ResidualCNN(4, width=4, branch_scale="depth_mup")
    assert math.isclose(net.scale, 0.5)
    x = torch.randn(2, 1, 8, 8)
    assert net(x).shape == (2, 10)
