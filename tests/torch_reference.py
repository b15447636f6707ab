"""The torch.optim optimizer a TrainConfig names: what the batched engines are checked against."""

from __future__ import annotations

import torch

from archscale.train import TrainConfig


def torch_optimizer(params, lr: float, config: TrainConfig) -> torch.optim.Optimizer:
    """``torch.optim.SGD``, ``Adam`` or ``AdamW`` with the config's settings, at ``lr``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, betas=config.adam_betas, eps=config.eps, weight_decay=config.weight_decay)
