"""Predicted against measured forward second moments at every vertex, on the networks people train.

A ResNet-18-like (post-activation basic blocks with BN, 1x1 projection shortcuts, widths 256-512) and
a MobileNetV2-like (inverted residuals with linear bottlenecks, depthwise 3x3, ReLU6, widths 256-512),
a ShuffleNetV2-like (splits, channel shuffles, a depthwise conv reading shuffled pieces; widths 256-1024),
16x16 inputs, batch 8. The prediction (``plan.second_moments``, :mod:`archscale.core.moments`) is an
expectation over the weights at infinite width; the measurement is one weight draw at width 256, so it
is averaged over three seeds. The check is the one the issue set, not tuned: the median factor between
measured and predicted within 15%, the worst within 2x, for both norm readings (``pass-through``
measured in eval mode, ``renormalize`` in training mode).

Measured here (median / worst factor over the vertices; mean of seeds 0-2, then the single seeds):

    resnet18     pass-through  1.11 / 1.24   single 1.08/1.23, 1.05/1.15, 1.28/1.49
    mobilenetv2  pass-through  1.12 / 1.41   single 1.15/1.29, 1.15/1.59, 1.15/1.44
    resnet18     renormalize   1.06 / 1.10   single 1.05/1.11, 1.04/1.09, 1.08/1.15
    mobilenetv2  renormalize   1.05 / 1.12   single 1.05/1.12, 1.04/1.17, 1.08/1.17
    shufflenetv2 pass-through  1.03 / 1.44   single 1.22/1.69, 1.10/1.54, 1.07/1.56
    shufflenetv2 renormalize   1.05 / 1.13   single 1.04/1.18, 1.04/1.17, 1.07/1.21

At the public CIFAR collection's own widths (64-512, one draw, 32x32 inputs) the same comparison gave,
pass-through / renormalize: ResNet-18 1.63/1.96 and 1.03/1.14, MobileNetV2 1.98/3.95 and 1.04/1.28,
ShuffleNetV2 1.48/5.69 and 1.06/1.34 (median/worst): pass-through's error grows as the width shrinks.

What is left is finite width (a single draw at width 256 moves a vertex by up to ~25%), zero padding
at the borders of small feature maps (the prediction uses the average share of kernel taps inside the
input) and, for pass-through, the per-channel spread of depthwise gains through ReLU6's clipping.
"""

import warnings

import numpy as np
import pytest
import torch
from minizoo import BasicBlock, MobileNetV2, ResNet, ShuffleNetV2

import archscale
from archscale.module.layout import agreement

WIDTH = 256
NETS = {
    "resnet18": lambda: ResNet(BasicBlock, (2, 2, 2, 2), width=WIDTH),
    "mobilenetv2": lambda: MobileNetV2(cfg=((1, WIDTH, 1, 1), (2, WIDTH, 2, 1), (2, WIDTH, 2, 2),
                                            (2, WIDTH, 2, 2)), width=WIDTH, head=2 * WIDTH),
    # splits, channel shuffles and a depthwise conv reading the shuffled pieces (one vertex per piece)
    "shufflenetv2": lambda: ShuffleNetV2(width=2 * WIDTH),
}


@pytest.mark.parametrize("norm", ["pass-through", "renormalize"])
@pytest.mark.parametrize("name", list(NETS))
def test_predicted_moments_match_the_measured_ones_at_width_256(name, norm):
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    measured = []
    for seed in range(3):
        torch.manual_seed(100 + seed)
        model = NETS[name]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = archscale.apply(model, x[:2], norm=norm, seed=seed)
        measured.append(plan.measured_second_moments(x))
    median, worst = agreement(plan.second_moments, np.mean(measured, axis=0))
    singles = [agreement(plan.second_moments, m) for m in measured]
    print(f"{name} {norm}: median {median:.3f} worst {worst:.3f}; single seeds "
          + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in singles))
    assert median <= 1.15 and worst <= 2.0, (median, worst)
    assert plan.graph.n_vertices > 15
