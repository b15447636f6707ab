"""Measurements on a built network: forward second moments per vertex (eq. 3)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["forward_second_moments"]


@torch.no_grad()
def forward_second_moments(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Mean of ``z**2`` at every DAG vertex of ``model`` on the batch ``x``.

    The in-degree initialization keeps these equal across vertices (paper eq. 3); entry ``v``
    is vertex ``v``'s value averaged over batch, units (and positions for CNNs).
    """
    was_training = model.training
    model.eval()
    try:
        _, nodes = model(x, return_nodes=True)
    finally:
        model.train(was_training)
    return np.array([float(node.double().pow(2).mean()) for node in nodes])
