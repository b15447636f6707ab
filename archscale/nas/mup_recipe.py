"""muP for cell networks, the way the ``mup`` package applies it, without importing the package.

``mup`` declares torchvision (which would pull a CUDA torch); archscale reimplements its three
pieces for :class:`~archscale.nas.cells.CellNet`: ``set_base_shapes`` (:func:`mup_infshapes`),
``MuReadout`` with its rescaled init (:func:`apply_mup`) and ``MuSGD``'s per-parameter learning
rates (:func:`mup_param_groups`). The test suite checks all three against ``mup==1.0.0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..core import validate
from ..core.errors import ArchscaleError
from .cells import CellNet

__all__ = ["apply_mup", "mup_infshapes", "mup_param_groups"]


def mup_infshapes(model: CellNet, base_width: int = 1) -> dict[str, tuple[tuple[int, int | None], ...]]:
    """Per parameter: ``((size, base_size or None), ...)`` per dimension, as ``mup.set_base_shapes``.

    Like ``set_base_shapes(model, base, delta=delta)`` with ``base`` at width ``base_width`` and
    ``delta`` at ``2 * base_width``: a dimension is infinite (has a base size) when it differs
    between base and delta. Base and delta are built on the meta device (no memory).
    """
    base_width = validate.positive_int(base_width, "mup base width")
    kwargs: dict[str, Any] = dict(in_channels=model.in_channels, n_cells=model.n_cells, out_dim=model.out_dim,
                  batchnorm=model.batchnorm)
    with torch.device("meta"):
        base = CellNet(model.dag, width=base_width, **kwargs)
        delta = CellNet(model.dag, width=2 * base_width, **kwargs)
    base_shapes = {n: tuple(p.shape) for n, p in base.named_parameters()}
    delta_shapes = {n: tuple(p.shape) for n, p in delta.named_parameters()}
    out = {}
    for name, p in model.named_parameters():
        b, d = base_shapes[name], delta_shapes[name]
        out[name] = tuple((int(s), bs if bs != ds else None) for s, bs, ds in zip(p.shape, b, d))
    return out


def _width_mult(dims: Sequence[tuple[int, int | None]]) -> float:
    """mup's ``InfShape.width_mult()``: size / base size of the last infinite dimension."""
    for size, base in reversed(dims):
        if base is not None:
            return size / base
    return 1.0


def _dim_mult(dim: tuple[int, int | None]) -> float:
    size, base = dim
    return 1.0 if base is None else size / base


@torch.no_grad()
def apply_mup(model: CellNet, base_width: int = 1, *, output_mult: float = 1.0,
              readout_zero_init: bool = False) -> CellNet:
    """Turn a standard-parameterized ``model`` into muP the way the ``mup`` package does.

    Maps to the package as: the head becomes a ``MuReadout`` (forward multiplies its input by
    ``output_mult / width_mult``), and ``set_base_shapes(..., rescale_params=True)`` multiplies
    the head's weight and bias by ``sqrt(width_mult)`` (or zeroes them with
    ``readout_zero_init``); hidden convs keep their fan-in He init. This is also exactly what
    ``mup.init.kaiming_normal_(w, nonlinearity="relu")`` draws after ``set_base_shapes``: He std
    for hidden and input weights, He std times ``sqrt(width_mult)`` for the readout.
    The infinite-dimension bookkeeping is stored on ``model.mup_shapes`` for
    :func:`mup_param_groups`. The default ``base_width=1`` is the package README's basic usage
    (base model width 1, delta width 2), which the paper says it followed.
    """
    if getattr(model, "mup_shapes", None) is not None:
        raise ArchscaleError("apply_mup was already called on this model; build a fresh model instead")
    shapes = mup_infshapes(model, base_width)
    wm = _width_mult(shapes["head.weight"])
    if readout_zero_init:
        model.head.weight.zero_()
        model.head.bias.zero_()
    else:
        model.head.weight.mul_(wm**0.5)
        model.head.bias.mul_(wm**0.5)
    model.readout_mult = float(output_mult) / wm
    model.mup_shapes = shapes
    model.mup_base_width = base_width
    return model


def mup_param_groups(model: CellNet, lr: float, weight_decay: float = 0.0) -> list[dict]:
    """SGD parameter groups by ``mup.MuSGD``'s rules (the model must have :func:`apply_mup` applied).

    One infinite dimension (biases/BatchNorm of width size, the stem conv, the head weight):
    ``lr * width_mult`` and ``weight_decay / width_mult``. Two (hidden convs):
    ``lr / (fan_in_mult / fan_out_mult)`` and ``weight_decay * ratio``. None: unchanged.
    """
    shapes = getattr(model, "mup_shapes", None)
    if shapes is None:
        raise ArchscaleError("call apply_mup(model, base_width) before building muP parameter groups")
    groups: dict[tuple[str, float], dict] = {}
    for name, p in model.named_parameters():
        dims = shapes[name]
        n_inf = sum(base is not None for _, base in dims)
        if n_inf == 1:
            key = ("vector", _width_mult(dims))
            g_lr, g_wd = lr * key[1], weight_decay / key[1]
        elif n_inf == 2:
            ratio = _dim_mult(dims[1]) / _dim_mult(dims[0])
            key = ("matrix", ratio)
            g_lr, g_wd = lr / ratio, weight_decay * ratio
        elif n_inf == 0:
            key = ("fixed", 1.0)
            g_lr, g_wd = lr, weight_decay
        else:
            raise ArchscaleError(f"parameter {name} has {n_inf} infinite dimensions; muP handles at most 2")
        group = groups.setdefault(key, {"params": [], "names": [], "lr": g_lr, "weight_decay": g_wd})
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


