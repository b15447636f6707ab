"""muP's width rule for Adam's learning rates, as one pure function (no torch).

Tensor Programs V (Yang et al. 2022, "Tuning Large Neural Networks via Zero-Shot Hyperparameter
Transfer", arXiv 2203.03466), Table 3, muP for Adam: the LR of *hidden* and *readout* (output)
weights scales as ``1 / fan_in``, that of *input* weights (the stem) and of every bias is constant in
width. Relative to the width ``base_width`` the base LR was tuned at, a hidden or readout weight whose
fan-in width is ``n`` gets ``lr * base_width / n``.

Both users of the rule call :func:`adam_lr_multiplier`: :func:`archscale.apply` (per ``param_groups``
group, :mod:`archscale.module.adam_rule`) and the batched replica engine (per stacked parameter,
``TrainConfig.base_width``).
"""

from __future__ import annotations

from . import validate
from .errors import ArchscaleError

__all__ = ["ADAM_WIDTH_CITATION", "ADAM_WIDTH_ROLES", "adam_lr_multiplier"]

ADAM_WIDTH_CITATION = "muP for Adam, Tensor Programs V (Yang et al. 2022, arXiv 2203.03466), Table 3"
#: The roles a parameter can have under the rule.
ADAM_WIDTH_ROLES = ("stem", "hidden", "readout", "bias")


def adam_lr_multiplier(role: str, fan_in_width: int | None, base_width: int) -> float:
    """The LR multiplier of one parameter under muP's Adam rule: ``base_width / fan_in_width`` for a
    ``hidden`` or ``readout`` weight, 1 for the ``stem`` (input weights), a ``bias``, and a weight
    whose fan-in does not grow with the width (``fan_in_width`` None: a depthwise convolution)."""
    if role not in ADAM_WIDTH_ROLES:
        raise ArchscaleError(f"role {role!r} is not one of {', '.join(ADAM_WIDTH_ROLES)}")
    base_width = validate.positive_int(base_width, "base_width")
    if role in ("stem", "bias") or fan_in_width is None:
        return 1.0
    return base_width / validate.positive_int(fan_in_width, "fan_in_width")
