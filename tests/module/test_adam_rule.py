"""apply(optimizer="adam"/"adamw"): muP's Adam width rule per parameter group, no graph factor, notes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archscale
from archscale import ArchscaleError
from archscale.core.evidence import load_evidence


class Mlp(nn.Module):
    """Stem, two hidden layers with a skip, readout."""

    def __init__(self, width: int, d_in: int = 10, out: int = 3):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.h1, self.h2 = nn.Linear(width, width), nn.Linear(width, width)
        self.head = nn.Linear(width, out)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.h1(F.relu(h))
        h = self.h2(F.relu(h))
        return self.head(F.relu(h))


class Cnn(nn.Module):
    """A conv stem, a dense conv, a depthwise conv, global pooling and a readout."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.conv(F.relu(self.stem(x)))
        h = self.depthwise(F.relu(h))
        return self.head(F.relu(h).mean((2, 3)))


def _groups(plan, lr=None):
    return {g["name"]: g for g in plan.param_groups(lr)}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_hidden_and_readout_lrs_scale_with_one_over_fan_in_and_the_rest_is_constant(optimizer):
    model = Mlp(256)
    plan = archscale.apply(model, torch.randn(4, 10), base_lr=1e-3, optimizer=optimizer, base_width=64,
                           law="constant")
    assert plan.scale == 1.0 and plan.lr == 1e-3  # muP's own rule: no graph factor
    groups = _groups(plan)
    assert list(groups) == ["stem", "hidden", "readout", "biases"]
    assert groups["stem"]["lr"] == 1e-3 and groups["biases"]["lr"] == 1e-3
    assert groups["hidden"]["lr"] == pytest.approx(1e-3 * 64 / 256)
    assert groups["readout"]["lr"] == pytest.approx(1e-3 * 64 / 256)
    assert [p.shape for p in groups["hidden"]["params"]] == [(256, 256), (256, 256)]
    assert [p.shape for p in groups["stem"]["params"]] == [(256, 10)]
    assert len(groups["biases"]["params"]) == 4  # stem, hidden and readout biases
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    assert dict(zip(plan.modules["module"], plan.modules["adam_lr_mult"])) == {
        "stem": 1.0, "h1": 0.25, "h2": 0.25, "head": 0.25}
    assert _groups(plan, lr=0.01)["hidden"]["lr"] == pytest.approx(0.01 / 4)
    notes = " ".join(plan.notes)
    assert "Tensor Programs V" in notes and "Table 3" in notes


def test_the_graph_factor_under_adam_follows_the_adamw_evidence():
    """AdamW plans take the law notebook 12's AdamW sweeps support for the graph's regime, with its
    measured error; Adam (never measured) keeps muP's rule and says so."""
    records = load_evidence(optimizer="adamw")
    plan = archscale.apply(Mlp(256), torch.randn(4, 10), base_lr=1e-3, optimizer="adamw", base_width=64)
    chain = records[plan.trust.regime]  # the test's Mlp has a skip: an MLP cell
    assert plan.law == chain.default_law() and plan.trust.law == plan.law
    assert plan.scale == pytest.approx(plan.alternative_scales[plan.law])
    assert plan.lr == pytest.approx(1e-3 * plan.scale)
    assert chain.laws[plan.law].format() in plan.trust.evidence and "adamw" in plan.trust.evidence
    assert _groups(plan)["hidden"]["lr"] == pytest.approx(plan.lr * 64 / 256)
    adam = archscale.apply(Mlp(256), torch.randn(4, 10), base_lr=1e-3, optimizer="adam", base_width=64)
    assert adam.law == "constant" and adam.scale == 1.0
    assert "trained with adam;" in adam.trust.warning


def test_the_rule_transfers_across_widths_and_defaults_to_the_models_own_width():
    """The same base LR gives the width-w LR x 64/w at every width; at the base width every group is 1."""
    for width in (64, 128, 512):
        plan = archscale.apply(Mlp(width), torch.randn(4, 10), base_lr=2e-3, optimizer="adamw", base_width=64)
        assert _groups(plan)["hidden"]["lr"] == pytest.approx(plan.lr * 64 / width)
        assert plan.scale == pytest.approx(plan.alternative_scales[plan.law])  # the same graph at every width
    own = archscale.apply(Mlp(128), torch.randn(4, 10), base_lr=2e-3, optimizer="adam")
    assert {g["lr"] for g in own.param_groups()} == {2e-3}
    assert any("no base_width given" in n and "width 128" in n for n in own.notes)


def test_the_graph_factor_multiplies_the_width_rule_and_no_factor_is_a_choice():
    x = torch.randn(4, 10)
    sgd = archscale.apply(Mlp(32), x, base_lr=0.1)
    adam = archscale.apply(Mlp(32), x, base_lr=1e-3, optimizer="adamw", base_width=32, law="eq8")
    mup = archscale.apply(Mlp(32), x, base_lr=1e-3, optimizer="adamw", base_width=32, law="constant")
    assert sgd.scale != 1.0 and adam.scale == pytest.approx(sgd.scale) and mup.scale == 1.0
    assert [g["lr"] for g in adam.param_groups()] == pytest.approx([1e-3 * sgd.scale] * 4)
    assert [g["name"] for g in sgd.param_groups()] == ["stem", "hidden", "readout"]  # SGD: as before
    assert {g["lr"] for g in sgd.param_groups()} == {sgd.lr}


def test_convolutions_use_their_channel_width_and_depthwise_ones_keep_one():
    plan = archscale.apply(Cnn(32), torch.randn(2, 1, 8, 8), base_lr=1e-3, optimizer="adam", base_width=8)
    mult = dict(zip(plan.modules["module"], plan.modules["adam_lr_mult"]))
    assert mult == {"stem": 1.0, "conv": 0.25, "depthwise": 1.0, "head": 0.25}
    assert any("depthwise convolutions (depthwise) keep x 1" in n for n in plan.notes)
    groups = plan.param_groups()
    assert {g["name"]: g["lr"] for g in groups}["readout"] == pytest.approx(2.5e-4)
    assert len({g["name"] for g in groups}) == len(groups)  # distinct names, e.g. "hidden x0.25"


def test_the_groups_train_with_torch_adamw():
    torch.manual_seed(0)
    model = Mlp(64)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    plan = archscale.apply(model, x, base_lr=1e-2, optimizer="adamw", base_width=16, law="constant")
    opt = torch.optim.AdamW(plan.param_groups(), weight_decay=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    # Adam's first step moves every entry by about its group's LR (sign of the gradient)
    for name, p in model.named_parameters():
        moved = (p.detach() - before[name]).abs().max().item()
        lr = 1e-2 * (16 / 64 if name in ("h1.weight", "h2.weight", "head.weight") else 1.0)
        assert moved == pytest.approx(lr, rel=1e-3), name
    assert math.isfinite(loss.item())


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="lion"), "unknown optimizer 'lion'; accepted: sgd, adam, adamw"),
    (dict(base_width=64), "base_width sets Adam's width rule"),
    (dict(optimizer="adam", base_width=0), "base_width must be an integer >= 1"),
    (dict(optimizer="adamw", depth_mup=True), "Depth-muP"),
])
def test_bad_optimizer_arguments_are_one_line(kwargs, match):
    with pytest.raises(ArchscaleError, match=match) as err:
        archscale.apply(Mlp(16), torch.randn(2, 10), **kwargs)
    assert "\n" not in str(err.value)
