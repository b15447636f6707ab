"""apply's trust line, alternatives, law choice, reference recipe and Depth-muP on real ResNets (issue 22)."""

import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from minizoo import IMG, ZOO, BasicBlock, Bottleneck, ResNet
from torch import nn

import archscale
from archscale.core.errors import ArchscaleError
from archscale.core.trust import IMPLAUSIBLE


def _apply(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return archscale.apply(model, x, base_lr=0.1, seed=0, **kw)


class ResidualMlp(nn.Module):
    """x + W2 relu(W1 relu(x)) blocks, no normalization: eq. 8's path sum grows like 2^K."""

    def __init__(self, blocks: int, width: int = 16):
        super().__init__()
        self.stem = nn.Linear(8, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                                  nn.Linear(width, width)) for _ in range(blocks))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(F.relu(h))


def test_every_plan_carries_a_trust_line_and_the_alternatives():
    plan = _apply(ResidualMlp(4), torch.randn(4, 8))
    assert plan.trust is not None and plan.trust.regime == ("mlp", "residual", False)
    assert plan.law == plan.trust.law and plan.law in plan.alternatives
    assert {"eq8", "effective_depth", "constant", "depth_mup"} <= set(plan.alternatives)
    assert plan.alternatives[plan.law] == pytest.approx(plan.lr)
    text = repr(plan).splitlines()
    assert text[1].split()[0] == "lr" and text[2].split()[0] == "trust"  # the repr leads with both
    assert "alternatives" in text[3]
    d = plan.to_dict()
    assert d["law"] == plan.law and d["trust"]["regime"] == "mlp/residual/False"


def test_law_picks_the_lr_and_depth_mup_is_a_law():
    x = torch.randn(4, 8)
    assert _apply(ResidualMlp(3), x, law="constant").lr == pytest.approx(0.1)
    eq8 = _apply(ResidualMlp(3), x, law="eq8")
    assert eq8.lr == pytest.approx(0.1 * eq8.scale) and eq8.lr < 0.1
    mup = _apply(ResidualMlp(3), x, law="depth_mup")
    assert mup.depth_mup and mup.law == "depth_mup" and mup.lr == pytest.approx(0.1)
    with pytest.raises(ArchscaleError, match="unknown or inapplicable law 'steepest'"):
        _apply(ResidualMlp(3), x, law="steepest")


def test_a_deep_residual_net_under_eq8_gets_a_warning_or_a_plausible_lr():
    plan = _apply(ResidualMlp(40, width=8), torch.randn(4, 8), law="eq8")
    assert plan.lr < 0.1 / IMPLAUSIBLE
    assert plan.trust.warning and "implausibly small" in plan.trust.warning


def test_adam_plans_outside_the_adamw_evidence_keep_mups_rule_and_say_so():
    plan = _apply(ResidualMlp(2), torch.randn(4, 8), optimizer="adamw")
    assert plan.law == "constant" and plan.scale == 1.0 and plan.trust.evidence is None
    assert "outside every measured regime under adamw" in plan.trust.warning
    assert "archscale check --optimizer adamw" in plan.trust.warning


@pytest.mark.parametrize("block, blocks, k", [(BasicBlock, (2, 2, 2, 2), 8), (Bottleneck, (1, 2, 1, 1), 5)])
def test_depth_mup_reads_resnets_across_stages_projections_and_bottlenecks(block, blocks, k):
    torch.manual_seed(0)
    model, x = ResNet(block, blocks), torch.randn(*IMG)
    plan = _apply(model, x, depth_mup=True)
    assert len(plan.branch_multipliers) == k
    assert all(v == pytest.approx(1 / math.sqrt(k)) for v in plan.branch_multipliers.values())
    # the multiplier sits on the norm after the branch's last conv (else BatchNorm would undo it)
    assert all(path.endswith(("bn2", "bn3")) for path in plan.branch_multipliers)
    assert any("projection shortcut" in n for n in plan.notes)
    assert torch.isfinite(model(x)).all()
    if block is Bottleneck:
        assert any("more than two weighted layers" in n for n in plan.notes)


def test_depth_mup_scales_the_branch_output_seen_by_the_sum():
    torch.manual_seed(0)
    model, x = ResNet(BasicBlock, (1, 1, 1, 1)), torch.randn(*IMG)
    model.eval()
    plan = _apply(model, x, depth_mup=True, init=False)
    block = model.layers[0][0]
    m = plan.branch_multipliers["layers.0.0.bn2"]
    assert m == pytest.approx(0.5)
    with torch.no_grad():
        h = F.relu(model.bn1(model.conv1(x)))
        # Module.forward bypasses the hooks: the unscaled branch, scaled here by hand
        branch = block.bn2.forward(block.conv2(F.relu(block.bn1(block.conv1(h)))))
        torch.testing.assert_close(block(h), F.relu(m * branch + h))


@pytest.mark.parametrize("name", ["densenet", "googlenet", "shufflenet_v2", "vgg_bn"])
def test_depth_mup_refusals_name_modules_not_vertices_or_codes(name):
    make, options = ZOO[name]
    torch.manual_seed(0)
    with pytest.raises(ArchscaleError) as err:
        _apply(make(), torch.randn(*IMG), depth_mup=True, **(options or {}))
    message = str(err.value)
    assert "\n" not in message and len(message) < 400
    assert "vertex" not in message and "branch_multiplier" not in message
    assert not re.search(r"\b\d+_\d+", message), message  # no graph code
    assert re.search(r"[a-z_]+\.\d+|conv|features|layers|linear", message), message


def test_the_reference_recipe_draws_fan_out_over_the_source_in_degree_and_a_0_2_readout():
    torch.manual_seed(0)
    plan = _apply(ResidualMlp(2, width=16), torch.randn(4, 8), recipe="reference")
    t = plan.modules.set_index("module")
    assert plan.recipe == "reference" and "paper" in plan.layout
    assert t.loc["head", "init_std"] == pytest.approx(2 / 10)
    assert t.loc["stem", "init_std"] == pytest.approx(math.sqrt(2 / 16))  # fan_out = 16
    # blocks.1.1 reads the first merge vertex, whose raw in-degree is 2
    assert t.loc["blocks.1.1", "init_std"] == pytest.approx(math.sqrt(2 / (16 * 2)))
    paper = _apply(ResidualMlp(2, width=16), torch.randn(4, 8)).modules.set_index("module")
    assert paper.loc["head", "init_std"] == pytest.approx(math.sqrt(2) / 16)
