"""The moment check behind the kernel test: forward E[z^2] of DagCNNs across kernel sizes, and padding."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archscale.core.errors import ArchscaleError
from archscale.nn.models import DagCNN
from archscale.probe import forward_second_moments, kernel_second_moments, padding_coverage


@pytest.mark.parametrize("size", [1, 3, 8, 28])
@pytest.mark.parametrize("q", [1, 3, 5, 7])
def test_padding_coverage_counts_the_taps_inside_the_image(size, q):
    ones = torch.ones(1, 1, size, size, dtype=torch.float64)
    taps = F.conv2d(ones, torch.ones(1, 1, q, q, dtype=torch.float64), padding=q // 2)  # taps inside
    assert padding_coverage(size, q) == pytest.approx(float(taps.sum()) / (size * size * q * q))


def test_padding_coverage_on_8x8_digits_and_28x28_mnist():
    assert [round(padding_coverage(8, q), 2) for q in (3, 5, 7)] == [0.84, 0.72, 0.62]
    assert [round(padding_coverage(28, q), 2) for q in (3, 5, 7)] == [0.95, 0.92, 0.88]
    with pytest.raises(ArchscaleError):
        padding_coverage(8, 4)


def test_kernel_second_moments_table_matches_a_direct_measurement():
    x = torch.randn(16, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    t = kernel_second_moments(["2_02", "1"], [3, 5], x, width=8, seeds=(0, 1))
    assert len(t) == 2 * 2 * 3 + 2 * 2 * 2 and set(t["kernel_size"]) == {3, 5}
    assert np.allclose(t[t["vertex"] == 0]["ratio"], 1.0)
    assert np.allclose(t[t["graph"] == "2_02"]["predicted"], 1.0)  # paper layout, in-degree rule: flat
    torch.manual_seed(1)
    direct = forward_second_moments(DagCNN("2_02", 1, 8, 10, 5), x)
    got = t[(t["graph"] == "2_02") & (t["kernel_size"] == 5) & (t["seed"] == 1)]["second_moment"].to_numpy()
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    ref = kernel_second_moments(["2_02"], [3], x, width=8, seeds=(0,), layout="reference", init="reference",
                                readout="reference")
    assert ref["predicted"].isna().all()
    with pytest.raises(ArchscaleError, match="batch of images"):
        kernel_second_moments(["2"], [3], x.flatten(1))
