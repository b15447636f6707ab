"""The mixed-kernel experiment (notebook 06b): the families mix kernel sizes, every law is scored per
family and pooled, and the readings of eq. 9 behave as their definitions say."""

import math

import pytest
import torch

from archscale.core.kernels import majority_area, mean_area, path_weighted_area
from archscale.experiments.mixed_kernels import (
    FAMILIES,
    MixedKernels,
    _Factory,
    mixed_laws,
    run_mixed_kernels,
)
from archscale.module.capture import capture
from archscale.notebook.findings import mixed_kernels, mixed_kernels_title


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_mixed_kernels("smoke", runs_dir=tmp_path_factory.mktemp("mk"), progress=False, n_boot=100)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_mixes_kernel_sizes(family):
    for depth in (1, 2):
        model = FAMILIES[family](depth, 2)
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        cap = capture(model, torch.zeros(2, 1, 28, 28), warn=False)
        assert cap.kernel_size is None and cap.kernel_areas is not None
        assert {1, 9} <= {int(a) for v in cap.kernel_areas.values() for a in v} or family == "chain + 1x1"


def test_on_a_chain_eq9_per_edge_is_the_mean_area_and_differs_from_one_q():
    for depth in (1, 2, 4):
        cap = capture(FAMILIES["chain + 1x1"](depth, 2), torch.zeros(2, 1, 28, 28), warn=False)
        per_edge = path_weighted_area(cap.graph, cap.kernel_areas, 3)
        expected = (25 * depth + 1) / (depth + 1)
        assert per_edge == mean_area(cap.graph, cap.kernel_areas) == pytest.approx(expected)
        assert majority_area(cap.graph, cap.kernel_areas) == 25


def test_the_factory_initializes_with_the_in_degree_rule():
    torch.manual_seed(0)
    a = _Factory("resnet, 1x1 shortcut", 8)(2)
    torch.manual_seed(0)
    b = FAMILIES["resnet, 1x1 shortcut"](2, 8)
    assert not torch.allclose(a.blocks[0].conv1.weight, b.blocks[0].conv1.weight)
    assert float(a.blocks[0].conv1.bias.detach().abs().max()) == 0.0  # apply zeroes the biases


def test_every_family_and_the_pool_are_scored(smoke):
    table = smoke.table()
    assert set(table["family"]) == {*FAMILIES, "pooled"}
    names = {law.name for law in mixed_laws()}
    assert {"eq8", "eq8_one_q", "eq8_mean_area", "effective_depth", "constant"} <= set(table["law"]) <= names
    pooled = table[table["family"] == "pooled"]
    assert (pooled["n"] == len(FAMILIES)).all()  # one size beyond the first per family at the smoke preset
    ok = table.dropna(subset=["error_factor"])
    assert (ok["error_factor"] >= 1).all()
    assert smoke.law_table().columns[-1] == "pooled"


def test_chain_predictions_agree_per_edge_and_mean_area(smoke):
    pred = smoke.predictions()["chain + 1x1"]
    assert pred["eq8"].to_numpy() == pytest.approx(pred["eq8_mean_area"].to_numpy())
    spread = smoke.spread().set_index(["family", "law"])
    assert spread.loc[("chain + 1x1", "eq8_mean_area"), "factor"] == pytest.approx(1.0)
    # one q: 25 at both sizes, against the mean areas 13 and 17: the predictions differ by sqrt(17/13)
    assert spread.loc[("chain + 1x1", "eq8_one_q"), "factor"] == pytest.approx(math.sqrt(17 / 13))


def test_findings_state_the_pooled_number_with_its_interval(smoke):
    f = mixed_kernels(smoke)
    g = smoke.pooled("eq8")
    assert f"{g['error_factor']:.3g}" in f.items[0] and f"n = {int(g['n'])} sizes" in f.items[0]
    assert "quick" not in mixed_kernels_title(smoke) and "smoke" not in mixed_kernels_title(smoke)


def test_findings_without_scores_say_so():
    empty = MixedKernels("smoke", {"seeds": [0, 1, 2]}, {})
    assert "No law could be scored" in mixed_kernels(empty).items[0]
