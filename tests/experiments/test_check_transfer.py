"""The LR transfer check against the truth (notebook 13): its families and its settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archscale.core.errors import ArchscaleError
from archscale.experiments.check_transfer import FAMILIES, ResMLP, run_check_transfer


def test_the_families_are_residual_mlps_with_and_without_batchnorm():
    assert set(FAMILIES.values()) == {False, True}
    plain, normed = ResMLP(3, 8, False), ResMLP(3, 8, True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm1d) for m in normed.modules()) == 6
    assert normed(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_an_unknown_setting_is_refused_before_training():
    with pytest.raises(ArchscaleError, match="unknown check setting"):
        run_check_transfer("smoke", widht=8)
