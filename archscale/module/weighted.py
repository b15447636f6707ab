"""A weighted module as archscale reads it: its place in the graph (:class:`Layer`) and its edges.

A Linear/Conv module is one edge of the paper's graph, or several when it reads channels of several
vertices (a concatenation: one :class:`LayerInput` per piece, each with its fan-in and the weights it
owns). Each edge keeps the elementwise chain in front of its weights, and the layer the chain after
them (:mod:`archscale.core.moments` gives the ops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

__all__ = ["Layer", "LayerInput", "nonlinear"]


def nonlinear(chain: tuple) -> bool:
    """Whether an elementwise chain holds an activation or a product (anything but affine maps)."""
    return any(op[0] in ("act", "mul") for op in chain)


@dataclass
class LayerInput:
    """One edge of a weighted module: the vertex it reads (None: the raw input), the elementwise chain
    in front of the weights, its fan-in, the weights it owns (a mask; None: all) and the share of
    kernel taps inside the input (zero padding)."""

    src: int | None
    chain: tuple
    fan_in: int
    channels: int
    mask: torch.Tensor | None = field(default=None, repr=False)
    coverage: float = 1.0
    activated: bool = False  # an activation sits in front of the weights: in the chain or in the source

    @property
    def gain_one(self) -> bool:
        """Whether no activation sits between the previous weights and these (a gain of 1)."""
        return not self.activated and not nonlinear(self.chain)


@dataclass
class Layer:
    """One weighted module of the captured model: where it sits in the graph and its edges."""

    path: str
    module: nn.Module
    role: str  # "stem" | "edge" | "readout" | "gate" | "unused"
    src: int | None = None
    dst: int | None = None
    node: str | None = None
    post_act: bool = False
    inputs: list[LayerInput] = field(default_factory=list)
    post: tuple = ()

    @property
    def kind(self) -> str:
        return type(self.module).__name__

    @property
    def fan_in(self) -> int:
        w = cast(torch.Tensor, self.module.weight)
        return int(w.shape[1] * math.prod(w.shape[2:]))

    @property
    def kernel(self) -> tuple[int, ...] | None:
        return (tuple(cast("tuple[int, ...]", self.module.kernel_size))
                if not isinstance(self.module, nn.Linear) else None)

    @property
    def depthwise(self) -> bool:
        groups = int(getattr(self.module, "groups", 1))
        return groups > 1 and groups == int(getattr(self.module, "in_channels", 0))
