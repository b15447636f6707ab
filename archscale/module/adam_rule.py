"""Per-group learning rates for Adam and AdamW: muP's width rule (the graph factor comes from the plan's law).

Under Adam the update of a weight is about ``lr`` per entry whatever its gradient's size, so the
maximal-update argument gives other LRs than SGD's. Tensor Programs V (Yang et al. 2022, "Tuning
Large Neural Networks via Zero-Shot Hyperparameter Transfer", arXiv 2203.03466), Table 3, muP for
Adam: the LR of *hidden* and *output* (readout) weights scales as ``1 / fan_in``, that of *input*
weights (the stem) and of every bias is constant in width. Relative to the width ``base_width``
the base LR was tuned at, a hidden or readout weight whose fan-in width is ``n`` (a Linear's
``in_features``, a convolution's ``in_channels / groups``) gets ``lr * base_width / n``.

The architecture factor (eq. 8's path sum, the DAG's depth and topology) is the paper's SGD result.
Under Adam, the plan's law is the one the AdamW evidence supports for the graph's regime (notebook 12
measures the laws head to head under AdamW; :func:`archscale.core.trust.default_law`), and no graph
factor (muP's own rule) where nothing was measured; the trust line says which and how well.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from ..core import validate
from ..core.adam_width import ADAM_WIDTH_CITATION, adam_lr_multiplier
from ..core.errors import ArchscaleError

if TYPE_CHECKING:
    import pandas as pd

    from .capture import Capture, Layer

__all__ = ["ADAM_OPTIMIZERS", "AdamRule", "adam_rule"]

#: The optimizers the width rule applies to (``apply(optimizer=...)``; ``sgd`` keeps eq. 8/9).
ADAM_OPTIMIZERS = ("adam", "adamw")
_CITATION = ADAM_WIDTH_CITATION


def _width(layer: Layer) -> int | None:
    """The fan-in width of a weighted module (``in_features``, or ``in_channels / groups``), or None
    for a depthwise convolution, whose fan-in does not grow with the width."""
    width = int(cast(torch.Tensor, layer.module.weight).shape[1])
    groups = int(getattr(layer.module, "groups", 1))
    return None if groups > 1 and width == 1 else width


@dataclass
class AdamRule:
    """Adam's per-module LR multipliers of one plan: ``multipliers[path]`` for each weighted module's
    weight (its bias always has multiplier 1)."""

    optimizer: str
    base_width: int
    multipliers: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def annotate(self, table: pd.DataFrame) -> None:
        """Add the ``adam_lr_mult`` column (the weight's LR multiplier) to a plan's module table."""
        table["adam_lr_mult"] = [self.multipliers.get(path, 1.0) for path in table["module"]]

    def param_groups(self, model: nn.Module, layers: Iterable[Layer], lr: float) -> list[dict]:
        """``torch.optim`` groups: ``stem`` (input weights), ``hidden`` (one group per multiplier),
        ``readout``, then ``biases`` (every bias and other vector-like parameter), each with its
        ``lr`` and ``lr_multiplier``."""
        where: dict[int, tuple[str, float]] = {}
        for la in layers:
            role = la.role if la.role in ("stem", "readout") else "hidden"
            where[id(la.module.weight)] = (role, self.multipliers.get(la.path, 1.0))
        groups: dict[tuple[str, float], list] = {}
        for p in model.parameters():
            groups.setdefault(where.get(id(p), ("biases", 1.0)), []).append(p)
        hidden = {m for role, m in groups if role == "hidden"}
        order = {"stem": 0, "hidden": 1, "readout": 2, "biases": 3}
        out = []
        for (role, mult), params in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], -kv[0][1])):
            name = f"{role} x{mult:.4g}" if role == "hidden" and len(hidden) > 1 else role
            out.append({"params": params, "lr": lr * mult, "lr_multiplier": mult, "name": name})
        return out


def adam_rule(optimizer: str, cap: Capture, base_width: int | None, depth_mup: bool) -> AdamRule | None:
    """The rule of ``optimizer`` for a captured model (None for ``sgd``, which keeps eq. 8/9)."""
    validate.choice(optimizer, "optimizer", ("sgd", *ADAM_OPTIMIZERS))
    if optimizer == "sgd":
        if base_width is not None:
            raise ArchscaleError("base_width sets Adam's width rule; SGD's LR does not depend on the width "
                                 "(pass optimizer='adam' or 'adamw', or drop base_width)")
        return None
    if depth_mup:
        raise ArchscaleError(f"apply(depth_mup=True) is SGD's Depth-muP; its Adam form (LR x 1/sqrt(L)) is "
                             f"not implemented: use optimizer='sgd', or depth_mup=False with {optimizer}")
    readout = [la for la in cap.layers if la.role == "readout"]
    own = _width(readout[0]) if readout else None
    notes = []
    if base_width is None:
        base_width = own or 1
        notes.append(f"{optimizer}: no base_width given, so the width rule is taken at this model's own "
                     f"width {base_width} (pass base_width=, the width base_lr was tuned at, to transfer it)")
    base_width = validate.positive_int(base_width, "base_width")
    multipliers = {}
    depthwise = []
    for la in cap.layers:
        if la.role in ("edge", "readout", "unused"):
            width = _width(la)
            if width is None and la.path not in depthwise:  # a conv read per piece is several layers
                depthwise.append(la.path)
            multipliers[la.path] = adam_lr_multiplier("readout" if la.role == "readout" else "hidden", width,
                                                      base_width)
    notes.append(f"{optimizer}: per-group LRs by {_CITATION}: hidden and readout weights x base_width / "
                 f"fan-in width (base_width {base_width}), input weights and biases x 1")
    if depthwise:
        notes.append(f"{optimizer}: depthwise convolutions ({', '.join(depthwise)}) keep x 1: their fan-in "
                     f"does not grow with the width")
    return AdamRule(optimizer, base_width, multipliers, notes)
