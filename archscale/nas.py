"""NAS-Bench-201-style cell networks and the re-ranking study (paper section 4.4, Fig. 4, 8, 9).

Benchmarks such as NAS-Bench-201 train every cell with one recipe. This module trains the same
cells with three recipes and compares the resulting accuracies and rankings:

* ``"fixed"`` — the benchmark's recipe: one learning rate for every cell (NAS-Bench-201: 0.1),
  plain He (``kaiming_normal``, fan-in, gain 2) initialization of every conv and a standard
  readout (std ``sqrt(2 / n)``).
* ``"archscale"`` — the paper's recipe: ``lr = base_lr * lr_scale(dag, "nb201")`` (eq. 8 with the
  NAS-Bench-201 depth convention ``L_p = 1 + conv edges on p``, base: one path of depth 1, so
  the benchmark LR is the LR of the all-skip base cell), the in-degree rule on every cell conv
  (std ``sqrt(2 / (d_in(target) * fan_in))``), the same rule on the residual sum of the
  reduction blocks, and a mean-field readout (std ``sqrt(2) / n``).
* ``"mup"`` — muP as the ``mup`` package applies it (``set_base_shapes`` + ``MuReadout`` +
  ``MuSGD``), reimplemented here without the package; see :func:`apply_mup`.

A :class:`Recipe` names a variant of one of these kinds with its own base LR, e.g. archscale
whose base LR is the base cell's maximal LR found by :func:`find_base_lr` (step 1 of the paper's
recipe) instead of the benchmark's 0.1.

The network (:class:`CellNet`) follows NAS-Bench-201's ``TinyNetwork``: a 3x3 conv stem with
BatchNorm, three stages of ``n_cells`` cells with ``C``, ``2C`` and ``4C`` channels separated
by residual reduction blocks (stride 2), BatchNorm + ReLU, global average pooling and a linear
head. Cell ops: ``none`` (absent edge), ``skip_connect`` (identity), ``nor_conv_1x1`` and
``nor_conv_3x3`` (ReLU-Conv-BN) and ``avg_pool_3x3`` (stride 1, padding 1).

The ranking helpers (:func:`kendall_tau`, :func:`topk_kendall`, :func:`pairwise_gaps`,
:func:`mean_gain`, :func:`rank_stability`) take plain arrays or the tidy results table.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .dag import Dag
from .errors import ArchscaleError
from .scaling import init_std, lr_scale, readout_std

__all__ = [
    "CELL_OPS",
    "RECIPES",
    "RESULT_COLUMNS",
    "BaseLrSearch",
    "CellNet",
    "GainEstimate",
    "NasCell",
    "ReLUConvBN",
    "Recipe",
    "ReductionBlock",
    "TrainConfig",
    "accuracy_table",
    "apply_mup",
    "build_cell_net",
    "compare_recipes",
    "comparison_table",
    "describe_cells",
    "RecipeComparison",
    "find_base_lr",
    "kendall_tau",
    "load_nas_results",
    "mean_gain",
    "mup_infshapes",
    "mup_param_groups",
    "pairwise_gaps",
    "rank_stability",
    "recipe_lr",
    "recipe_summary",
    "run_nas_study",
    "topk_kendall",
    "topk_pairwise_gap",
    "train_cell_net",
]

#: NAS-Bench-201 op names by digit (``Dag.parse(code, ops="nb201")``).
CELL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The training recipes compared by the study.
RECIPES = ("fixed", "archscale", "mup")
INITS = ("archscale", "he")
READOUTS = ("mean_field", "standard")
#: Columns of the tidy results table written by :func:`run_nas_study`.
RESULT_COLUMNS = ("graph", "recipe", "kind", "seed", "width", "n_cells", "base_lr", "lr", "epochs",
                  "train_loss", "train_acc", "test_loss", "test_acc", "diverged", "seconds")



def _check_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchscaleError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_choice(name: str, value: str, accepted: Sequence[str]) -> str:
    if value not in accepted:
        raise ArchscaleError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")
    return value


def _as_cell(dag: Dag | str) -> Dag:
    if isinstance(dag, str):
        dag = Dag.parse(dag, ops="nb201")
    if not isinstance(dag, Dag):
        raise ArchscaleError(f"a cell must be a Dag or an nb201 code like '3_03_003', "
                             f"got {type(dag).__name__}")
    if dag.ops != "nb201":
        raise ArchscaleError(
            f"cell {dag.code!r} uses the {dag.ops!r} op set; parse it with ops='nb201' "
            f"(digits 0-4: {', '.join(CELL_OPS)})"
        )
    dag.require_path()
    return dag


# ---------------------------------------------------------------------------------- modules
class ReLUConvBN(nn.Module):
    """NAS-Bench-201's ``nor_conv``: ReLU, Conv (no bias), BatchNorm (affine) or nothing."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, batchnorm: bool = True):
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out) if batchnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


def _cell_op(op: str, channels: int, batchnorm: bool) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, batchnorm=batchnorm)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, batchnorm=batchnorm)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchscaleError(f"no module for op {op!r}; accepted: {', '.join(CELL_OPS[1:])}")


class NasCell(nn.Module):
    """One NAS-Bench-201 cell: every vertex sums its incoming edges; vertex 3 is the output.

    ``edge_modules`` is keyed ``"src_dst"`` like :class:`archscale.models.DagNet`; ``none``
    edges have no module and a vertex without incoming edges holds zeros.
    """

    def __init__(self, dag: Dag | str, channels: int, batchnorm: bool = True):
        super().__init__()
        self.dag = _as_cell(dag)
        self.channels = _check_int(channels, "channels")
        self.edge_modules = nn.ModuleDict({
            f"{e.src}_{e.dst}": _cell_op(e.op, channels, batchnorm) for e in self.dag.edges
        })

    def edge_conv(self, src: int, dst: int) -> nn.Conv2d | None:
        """The Conv2d on edge ``src -> dst``, or None for skip, pooling and absent edges."""
        m = self.edge_modules[f"{src}_{dst}"] if f"{src}_{dst}" in self.edge_modules else None
        return m.conv if isinstance(m, ReLUConvBN) else None

    def forward(self, x: torch.Tensor, return_nodes: bool = False):
        """The output vertex's value; with ``return_nodes=True`` also every vertex's value."""
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.dag.n_vertices - 1)
        for e in self.dag.edges:  # ordered by target: each source is complete when used
            src = nodes[e.src]
            if src is None:  # a vertex without incoming edges holds zeros
                src = nodes[e.src] = torch.zeros_like(x)
            out = self.edge_modules[f"{e.src}_{e.dst}"](src)
            nodes[e.dst] = out if nodes[e.dst] is None else nodes[e.dst] + out
        filled = [torch.zeros_like(x) if n is None else n for n in nodes]
        return (filled[-1], filled) if return_nodes else filled[-1]


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual reduction: ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, plus
    a shortcut AvgPool(2) + Conv1x1; the two branches are summed (a vertex of in-degree 2)."""

    def __init__(self, c_in: int, c_out: int, batchnorm: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, batchnorm=batchnorm)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1, batchnorm=batchnorm)
        # ceil_mode keeps the shortcut's size equal to the strided conv's for odd sizes too
        self.pool = nn.AvgPool2d(2, stride=2, ceil_mode=True)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(self.pool(x))


class CellNet(nn.Module):
    """NAS-Bench-201's macro skeleton around one cell ``dag`` (the same cell in every stage).

    ``width`` is NAS-Bench-201's ``C`` (16 in the benchmark), ``n_cells`` its ``N`` (5).
    ``init="archscale"`` applies the in-degree rule to cell convs and reduction sums,
    ``init="he"`` plain He everywhere; ``readout`` is ``"mean_field"`` (std ``sqrt(2)/n``) or
    ``"standard"`` (std ``sqrt(2/n)``). Logits are ``head(readout_mult * pooled)``;
    ``readout_mult`` is 1 except under muP (:func:`apply_mup`).
    """

    def __init__(self, dag: Dag | str, in_channels: int, width: int, n_cells: int, out_dim: int, *,
                 init: str = "archscale", readout: str = "mean_field", batchnorm: bool = True):
        super().__init__()
        self.dag = _as_cell(dag)
        self.in_channels = _check_int(in_channels, "in_channels")
        self.width = _check_int(width, "width")
        self.n_cells = _check_int(n_cells, "n_cells")
        self.out_dim = _check_int(out_dim, "out_dim")
        self.init_scheme = _check_choice("init", init, INITS)
        self.readout_kind = _check_choice("readout", readout, READOUTS)
        self.batchnorm = bool(batchnorm)
        self.readout_mult = 1.0
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        blocks: list[nn.Module] = []
        c = width
        for stage in range(3):
            if stage:
                blocks.append(ReductionBlock(c, 2 * c, batchnorm))
                c *= 2
            blocks.extend(NasCell(self.dag, c, batchnorm) for _ in range(n_cells))
        self.blocks = nn.ModuleList(blocks)
        self.last_bn = nn.BatchNorm2d(c) if batchnorm else nn.Identity()
        self.head = nn.Linear(c, out_dim)
        self.reset_parameters()

    @property
    def cells(self) -> list[NasCell]:
        return [b for b in self.blocks if isinstance(b, NasCell)]

    @property
    def reductions(self) -> list[ReductionBlock]:
        return [b for b in self.blocks if isinstance(b, ReductionBlock)]

    # ------------------------------------------------------------------ init
    def edge_init_std(self, cell: NasCell, src: int, dst: int) -> float:
        """Weight std this model's init scheme gives the conv on a cell's edge ``src -> dst``."""
        conv = cell.edge_conv(src, dst)
        if conv is None:
            raise ArchscaleError(f"edge {src}->{dst} of cell {cell.dag.code!r} carries no conv")
        degree = cell.dag.live_in_degrees[dst] if self.init_scheme == "archscale" else 1
        return init_std(_fan_in(conv), degree)

    def readout_init_std(self) -> float:
        return readout_std(self.head.in_features, mean_field=self.readout_kind == "mean_field")

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw every weight by the init scheme (torch's global RNG); BatchNorm to (1, 0)."""
        in_degree_rule = self.init_scheme == "archscale"
        self.stem.weight.normal_(0.0, init_std(_fan_in(self.stem)))
        for block in self.blocks:
            if isinstance(block, NasCell):
                for e in block.dag.edges:
                    conv = block.edge_conv(e.src, e.dst)
                    if conv is not None:
                        conv.weight.normal_(0.0, self.edge_init_std(block, e.src, e.dst))
            else:  # the residual sum has in-degree 2: conv_b's branch and the shortcut
                d = 2 if in_degree_rule else 1
                block.conv_a.conv.weight.normal_(0.0, init_std(_fan_in(block.conv_a.conv)))
                block.conv_b.conv.weight.normal_(0.0, init_std(_fan_in(block.conv_b.conv), d))
                block.shortcut.weight.normal_(0.0, init_std(_fan_in(block.shortcut), d))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        self.head.weight.normal_(0.0, self.readout_init_std())
        self.head.bias.zero_()

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images ``(N, in_channels, H, W)``."""
        h = self.stem_bn(self.stem(x))
        for block in self.blocks:
            h = block(h)
        h = F.relu(self.last_bn(h)).mean(dim=(2, 3))
        return self.head(h * self.readout_mult)

    def extra_repr(self) -> str:
        return (f"dag={self.dag.code!r}, width={self.width}, n_cells={self.n_cells}, "
                f"init={self.init_scheme!r}, readout={self.readout_kind!r}, batchnorm={self.batchnorm}")


def _fan_in(layer: nn.Module) -> int:
    w = layer.weight
    return int(w.shape[1] * math.prod(w.shape[2:]))


# ---------------------------------------------------------------------------------- muP
def mup_infshapes(model: CellNet, base_width: int = 1) -> dict[str, tuple[tuple[int, int | None], ...]]:
    """Per parameter: ``((size, base_size or None), ...)`` per dimension, as ``mup.set_base_shapes``.

    Like ``set_base_shapes(model, base, delta=delta)`` with ``base`` at width ``base_width`` and
    ``delta`` at ``2 * base_width``: a dimension is infinite (has a base size) when it differs
    between base and delta. Base and delta are built on the meta device (no memory).
    """
    base_width = _check_int(base_width, "mup base width")
    kwargs = dict(in_channels=model.in_channels, n_cells=model.n_cells, out_dim=model.out_dim,
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


# ---------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """A named training recipe: its ``kind`` (``fixed``, ``archscale`` or ``mup``) and base LR.

    ``base_lr=None`` takes :attr:`TrainConfig.base_lr` (the benchmark's 0.1). ``name`` labels
    the results, so two variants of one kind (say archscale from two base LRs) can be compared.
    """

    name: str
    kind: str
    base_lr: float | None = None

    def __post_init__(self):
        _check_choice("recipe kind", self.kind, RECIPES)
        if not isinstance(self.name, str) or not self.name:
            raise ArchscaleError(f"a recipe needs a non-empty name, got {self.name!r}")
        if self.base_lr is not None:
            validate.learning_rate(self.base_lr, f"base_lr of recipe {self.name!r}")



def _as_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if not isinstance(recipe, str):
        raise ArchscaleError(f"a recipe is a name ({', '.join(RECIPES)}) or a Recipe, "
                             f"got {type(recipe).__name__}")
    _check_choice("recipe", recipe, RECIPES)
    return Recipe(recipe, recipe)


def recipe_lr(dag: Dag | str, recipe: str | Recipe, base_lr: float = 0.1) -> float:
    """The recipe's global learning rate: the base LR for fixed and muP, eq. 8 for archscale.

    archscale: ``base * lr_scale(dag, "nb201")`` (``L_p = 1 + conv edges``, base one path of
    depth 1, the all-skip cell ``1_01_001``); muP scales this global rate per parameter group
    (:func:`mup_param_groups`). ``base`` is the recipe's own ``base_lr`` or else ``base_lr``.
    """
    recipe = _as_recipe(recipe)
    dag = _as_cell(dag)
    base = validate.learning_rate(base_lr if recipe.base_lr is None else recipe.base_lr, "base learning rate")
    if recipe.kind == "archscale":
        return base * lr_scale(dag, "nb201")
    return base


def build_cell_net(dag: Dag | str, recipe: str | Recipe, *, in_channels: int, out_dim: int, width: int = 16,
                   n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                   seed: int = 0) -> CellNet:
    """A :class:`CellNet` initialized for ``recipe`` from ``torch.manual_seed(seed)``.

    fixed: He + standard readout; archscale: in-degree rule + mean-field readout; mup: the fixed
    recipe's model passed through :func:`apply_mup` with base width ``mup_base_width``.
    """
    kind = _as_recipe(recipe).kind
    _check_int(seed, "seed", 0)
    torch.manual_seed(seed)
    init, readout = ("archscale", "mean_field") if kind == "archscale" else ("he", "standard")
    model = CellNet(dag, in_channels, width, n_cells, out_dim, init=init, readout=readout,
                    batchnorm=batchnorm)
    if kind == "mup":
        apply_mup(model, mup_base_width)
    return model


@dataclass(frozen=True)
class TrainConfig:
    """The training protocol shared by every recipe (NAS-Bench-201's, shortened by ``epochs``).

    SGD with Nesterov momentum 0.9, weight decay 5e-4 and cosine decay to 0 over all steps;
    ``base_lr`` is the benchmark's 0.1. ``augment`` adds random crops (padding 4) and flips.
    """

    epochs: int = 10
    batch_size: int = 128
    base_lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    cosine: bool = True
    augment: bool = False
    eval_batch_size: int = 1024

    def __post_init__(self):
        _check_int(self.epochs, "epochs")
        _check_int(self.batch_size, "batch_size")
        _check_int(self.eval_batch_size, "eval_batch_size")
        validate.learning_rate(self.base_lr, "base_lr")
        if not 0 <= self.momentum < 1:
            raise ArchscaleError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ArchscaleError("nesterov needs momentum > 0; set momentum=0.9 or nesterov=False")
        if self.weight_decay < 0:
            raise ArchscaleError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


def _optimizer(model: CellNet, kind: str, lr: float, cfg: TrainConfig) -> torch.optim.SGD:
    if kind == "mup":
        groups = [{k: v for k, v in g.items() if k != "names"}
                  for g in mup_param_groups(model, lr, cfg.weight_decay)]
    else:
        groups = [{"params": list(model.parameters()), "lr": lr, "weight_decay": cfg.weight_decay}]
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def _check_images(data) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise ArchscaleError(f"data must be an archscale.data.Dataset (missing {name!r}); "
                           f"use archscale.data.load_dataset(name, flatten=False)")
    if data.x_train.ndim != 4:
        raise ArchscaleError(f"cell networks need images (N, C, H, W); got x_train of shape "
                       f"{tuple(data.x_train.shape)}: load with load_dataset(name, flatten=False)")
    if not data.n_classes:
        raise ArchscaleError("the NAS study needs a classification dataset (n_classes > 0)")


def _on_device(data, device: str | torch.device):
    """A light copy of ``data`` with its four tensors moved to ``device`` once for many runs."""
    from types import SimpleNamespace

    moved = {k: getattr(data, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
    return SimpleNamespace(name=getattr(data, "name", "?"), n_classes=data.n_classes, **moved)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded batch plus a random horizontal flip, per sample."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    di = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dj = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (di[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dj[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = xp[torch.arange(n, device=x.device)[:, None, None, None],
             torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        loss_sum += float(F.cross_entropy(logits, y[i:i + batch_size], reduction="sum"))
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    model.train()
    return loss_sum / len(x), correct / len(x)


def train_cell_net(dag: Dag | str, recipe: str | Recipe, data, cfg: TrainConfig | None = None, *,
                   width: int = 16, n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                   seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Train one cell with one recipe and seed; return a results row (see ``RESULT_COLUMNS``).

    The seed fixes the init draw and the batch order, so recipes see the same batches. A
    non-finite loss stops training: the row is marked ``diverged`` with chance accuracy.
    """
    cfg = cfg or TrainConfig()
    dag = _as_cell(dag)
    recipe = _as_recipe(recipe)
    _check_images(data)
    start = time.perf_counter()
    device = torch.device(device)
    model = build_cell_net(dag, recipe, in_channels=int(data.x_train.shape[1]), out_dim=int(data.n_classes),
                           width=width, n_cells=n_cells, batchnorm=batchnorm,
                           mup_base_width=mup_base_width, seed=seed).to(device)
    base_lr = cfg.base_lr if recipe.base_lr is None else recipe.base_lr
    lr = recipe_lr(dag, recipe, cfg.base_lr)
    opt = _optimizer(model, recipe.kind, lr, cfg)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device).long()
    x_test, y_test = data.x_test.to(device), data.y_test.to(device).long()
    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)) if cfg.cosine else 1.0)
    gen = torch.Generator(device=device).manual_seed(seed)
    diverged = False
    train_loss = train_acc = float("nan")
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen, device=device)
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if cfg.augment:
                xb = _augment(xb, gen)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        train_loss, train_acc = float(loss_sum) / n, float(correct) / n
        if not math.isfinite(train_loss):
            diverged = True
            break
    if diverged:
        test_loss, test_acc = float("nan"), 1.0 / data.n_classes
    else:
        test_loss, test_acc = _evaluate(model, x_test, y_test, cfg.eval_batch_size)
        if not math.isfinite(test_loss):
            diverged, test_acc = True, 1.0 / data.n_classes
    return {"graph": dag.code, "recipe": recipe.name, "kind": recipe.kind, "seed": seed, "width": width,
            "n_cells": n_cells, "base_lr": base_lr, "lr": lr, "epochs": cfg.epochs, "train_loss": train_loss,
            "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "diverged": diverged,
            "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class _StudyConfig:
    width: int
    n_cells: int
    batchnorm: bool
    mup_base_width: int
    dataset: str
    n_train: int
    train: dict = field(default_factory=dict)


def run_nas_study(dags: Iterable[Dag | str], data, *, recipes: Sequence[str | Recipe] = RECIPES,
                  seeds: Sequence[int] = (0, 1), cfg: TrainConfig | None = None, width: int = 16,
                  n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                  out_dir: str | Path | None = None, device: str | torch.device = "cpu",
                  progress: bool = True) -> pd.DataFrame:
    """Train every (cell, recipe, seed) and return the tidy results table.

    ``recipes`` are names (``"fixed"``, ``"archscale"``, ``"mup"``) or :class:`Recipe` objects.
    With ``out_dir`` every finished run is appended to ``out_dir/results.csv`` at once, and a
    rerun skips the runs already there (resumable); ``out_dir/study.json`` holds the settings,
    and a rerun with different settings (or a recipe name reused with another base LR) is
    refused rather than mixed in.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    cells = [_as_cell(d) for d in dags]
    if not cells:
        raise ArchscaleError("no cells to train; sample some with Dag.sample(4, k, seed, ops='nb201')")
    recipes = [_as_recipe(r) for r in recipes]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise ArchscaleError(f"recipe names must be distinct, got {names}")
    seeds = [_check_int(s, "seed", 0) for s in seeds]
    _check_images(data)
    data = _on_device(data, device)
    study = _StudyConfig(width, n_cells, bool(batchnorm), mup_base_width, str(getattr(data, "name", "?")),
                         int(len(data.x_train)), asdict(cfg))
    done: set[tuple[str, str, int]] = set()
    rows: list[dict] = []
    csv_path = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = out / "study.json"
        if meta.exists():
            previous = json.loads(meta.read_text())
            if previous != asdict(study):
                raise ArchscaleError(f"{out} holds results of a study with other settings ({previous}); "
                               f"use another out_dir or delete that folder")
        else:
            meta.write_text(json.dumps(asdict(study), indent=1))
        csv_path = out / "results.csv"
        if csv_path.exists():
            rows = load_nas_results(out).to_dict("records")
            done = {(r["graph"], r["recipe"], int(r["seed"])) for r in rows}
            for recipe in recipes:
                base = cfg.base_lr if recipe.base_lr is None else recipe.base_lr
                for r in rows:
                    if r["recipe"] == recipe.name and (r["kind"] != recipe.kind
                                                       or not math.isclose(r["base_lr"], base)):
                        raise ArchscaleError(
                            f"{out} already has recipe {recipe.name!r} as kind {r['kind']!r} with base LR "
                            f"{r['base_lr']:g}; give this variant another name or use another out_dir")
    todo = [(c, r, s) for c in cells for s in seeds for r in recipes if (c.code, r.name, s) not in done]
    bar = tqdm(todo, desc="NAS study", disable=not progress)
    for cell, recipe, seed in bar:
        bar.set_postfix_str(f"{cell.code} {recipe.name} seed {seed}")
        row = train_cell_net(cell, recipe, data, cfg, width=width, n_cells=n_cells, batchnorm=batchnorm,
                             mup_base_width=mup_base_width, seed=seed, device=device)
        rows.append(row)
        if csv_path is not None:
            new = not csv_path.exists()
            with open(csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    wanted = {c.code for c in cells}
    table = table[table["graph"].isin(wanted) & table["recipe"].isin(names) & table["seed"].isin(seeds)]
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class BaseLrSearch:
    """The base cell's maximal LR on a grid: ``best_lr`` and the per-LR ``table`` (mean over seeds)."""

    best_lr: float
    base_cell: str
    table: pd.DataFrame


def find_base_lr(data, lrs: Sequence[float], *, seeds: Sequence[int] = (0, 1), cfg: TrainConfig | None = None,
                 epochs: int = 1, width: int = 16, n_cells: int = 5, batchnorm: bool = True,
                 base_cell: str = "1_01_001", device: str | torch.device = "cpu",
                 progress: bool = True) -> BaseLrSearch:
    """Step 1 of the paper's recipe for cells: grid-search the base cell's maximal learning rate.

    The base of the nb201 convention is one path of depth 1 (the all-skip cell ``1_01_001``).
    Each LR trains it with the archscale init for ``epochs`` epochs at a constant LR (the
    optimizer settings of ``cfg`` otherwise); the maximal LR is the one with the lowest mean
    training loss over ``seeds``, diverged runs counting as infinite loss.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    lrs = [validate.learning_rate(lr, "grid learning rate") for lr in lrs]
    if not lrs:
        raise ArchscaleError("the LR grid is empty; pass e.g. lrs=np.geomspace(0.05, 3.2, 7)")
    search_cfg = replace(cfg, epochs=_check_int(epochs, "epochs"), cosine=False)
    _check_images(data)
    data = _on_device(data, device)
    rows = []
    grid = [(lr, s) for lr in lrs for s in seeds]
    for lr, seed in tqdm(grid, desc="base-cell LR grid", disable=not progress):
        row = train_cell_net(base_cell, Recipe("base", "archscale", lr), data, search_cfg, width=width,
                             n_cells=n_cells, batchnorm=batchnorm, seed=seed, device=device)
        loss = math.inf if row["diverged"] else row["train_loss"]
        rows.append({"lr": lr, "seed": seed, "train_loss": loss, "diverged": row["diverged"]})
    per_seed = pd.DataFrame(rows)
    table = per_seed.groupby("lr", as_index=False).agg(train_loss=("train_loss", "mean"),
                                                        diverged=("diverged", "sum"))
    best = float(table.loc[table["train_loss"].idxmin(), "lr"])
    return BaseLrSearch(best, _as_cell(base_cell).code, table)


def load_nas_results(out_dir: str | Path) -> pd.DataFrame:
    """The tidy results table written by :func:`run_nas_study` in ``out_dir``."""
    path = Path(out_dir) / "results.csv"
    if not path.exists():
        raise ArchscaleError(f"no NAS results at {path}; "
                             f"run run_nas_study(..., out_dir={str(out_dir)!r}) first")
    table = pd.read_csv(path, dtype={"graph": str})
    table["diverged"] = table["diverged"].astype(str).str.lower() == "true"
    return table


def accuracy_table(results: pd.DataFrame, metric: str = "test_acc", seed: int | None = None) -> pd.DataFrame:
    """One row per cell, one column per recipe: ``metric`` averaged over seeds (or one ``seed``)."""
    if metric not in results.columns:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(results.columns)}")
    if seed is not None:
        results = results[results["seed"] == seed]
    table = results.pivot_table(index="graph", columns="recipe", values=metric, aggfunc="mean")
    table.columns.name = None
    return table


# ---------------------------------------------------------------------------------- rankings
def _pair_arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ArchscaleError(f"the two score lists must have the same length, got {a.size} and {b.size}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ArchscaleError("scores contain NaN; drop those architectures first")
    return a, b


def kendall_tau(a, b) -> float:
    """Kendall's tau-b between two score lists (ties handled as in ``scipy.stats.kendalltau``).

    ``(n_c - n_d) / sqrt((n_0 - n_a)(n_0 - n_b))`` with ``n_a``, ``n_b`` the tied pairs; NaN for
    fewer than two items or when one list is constant. Exact, O(n^2) memory-bounded in chunks.
    """
    a, b = _pair_arrays(a, b)
    n = a.size
    if n < 2:
        return float("nan")
    s = untied_a = untied_b = 0
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n, chunk):
        sa = np.sign(a[start:start + chunk, None] - a[None, :])
        sb = np.sign(b[start:start + chunk, None] - b[None, :])
        s += int((sa * sb).sum())
        untied_a += int(np.abs(sa).sum())
        untied_b += int(np.abs(sb).sum())
    if untied_a == 0 or untied_b == 0:  # ordered pairs were counted twice; the ratio is the same
        return float("nan")
    return float(s / math.sqrt(untied_a * untied_b))


def _topk_count(n: int, k: float, min_n: int) -> int:
    if not 0 < k <= 100:
        raise ArchscaleError(f"top-K percentages must be in (0, 100], got {k!r}")
    return min(n, max(min_n, math.ceil(n * k / 100 - 1e-9)))


def topk_kendall(acc_a, acc_b, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), *, by: str = "a",
                 min_n: int = 3) -> pd.DataFrame:
    """Kendall tau between two rankings restricted to the top-K% architectures.

    The top K% are chosen by ``acc_a`` (``by="a"``, the reference ranking, e.g. the benchmark's
    fixed recipe) or by ``acc_b``; ``ceil(K% * n)`` architectures, at least ``min_n``.
    Returns columns ``k``, ``n``, ``tau``.
    """
    a, b = _pair_arrays(acc_a, acc_b)
    _check_choice("by", by, ("a", "b"))
    _check_int(min_n, "min_n", 2)
    order = np.argsort(-(a if by == "a" else b), kind="stable")
    rows = []
    for k in ks:
        m = _topk_count(a.size, k, min_n)
        top = order[:m]
        rows.append({"k": float(k), "n": m, "tau": kendall_tau(a[top], b[top])})
    return pd.DataFrame(rows)


def pairwise_gaps(acc) -> np.ndarray:
    """``|acc_i - acc_j|`` for every pair ``i < j`` of architectures."""
    acc = np.asarray(acc, dtype=float).ravel()
    i, j = np.triu_indices(acc.size, k=1)
    return np.abs(acc[i] - acc[j])


def topk_pairwise_gap(acc, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), min_n: int = 2) -> pd.DataFrame:
    """Mean pairwise accuracy gap among the top-K% architectures of ``acc`` (Fig. 4 right).

    Smaller gaps mean the recipe makes the best architectures less distinguishable.
    Returns columns ``k``, ``n``, ``mean_gap``.
    """
    acc = np.asarray(acc, dtype=float).ravel()
    order = np.argsort(-acc, kind="stable")
    rows = []
    for k in ks:
        m = _topk_count(acc.size, k, min_n)
        gaps = pairwise_gaps(acc[order[:m]])
        rows.append({"k": float(k), "n": m, "mean_gap": float(gaps.mean()) if gaps.size else float("nan")})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class GainEstimate:
    """Mean paired gain ``new - old`` with a ``confidence`` interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float
    method: str

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.mean:+.3g} ({pct}% {self.method} CI [{self.lo:+.3g}, {self.hi:+.3g}], n={self.n})"


def mean_gain(new, old, *, confidence: float = 0.95, method: str = "bootstrap", n_boot: int = 10_000,
              seed: int = 0) -> GainEstimate:
    """Mean of the paired differences ``new - old`` with a bootstrap-percentile or Student-t interval.

    The bootstrap resamples architectures with replacement (``n_boot`` draws from ``seed``).
    """
    new, old = _pair_arrays(new, old)
    _check_choice("method", method, ("bootstrap", "t"))
    if not 0 < confidence < 1:
        raise ArchscaleError(f"confidence must be in (0, 1), got {confidence!r}")
    d = new - old
    n = d.size
    if n < 2:
        raise ArchscaleError(f"a gain interval needs at least 2 paired architectures, got {n}")
    mean = float(d.mean())
    alpha = 1 - confidence
    if method == "t":
        from scipy import stats

        half = float(stats.t.ppf(1 - alpha / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
        lo, hi = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(_check_int(n_boot, "n_boot"), n))].mean(axis=1)
        lo, hi = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    return GainEstimate(mean, lo, hi, n, confidence, method)


def rank_stability(results: pd.DataFrame, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), *,
                   reference: str = "fixed", others: Sequence[str] = ("archscale",),
                   metric: str = "test_acc", min_n: int = 3) -> pd.DataFrame:
    """Top-K% Kendall taus across seeds (within each recipe) and across recipes (Fig. 9).

    Across recipes: seed-averaged ``reference`` versus each of ``others``. Across seeds: every
    pair of seeds within ``reference`` and within each of ``others``. The top K% are chosen by
    the first ranking of each pair. Columns: ``comparison``, ``kind``, ``recipe``, ``k``, ``n``,
    ``tau``.
    """
    frames = []
    mean = accuracy_table(results, metric)
    for other in others:
        for name in (reference, other):
            if name not in mean.columns:
                raise ArchscaleError(f"recipe {name!r} is not in the results; "
                                     f"found {', '.join(mean.columns)}")
        both = mean[[reference, other]].dropna()
        df = topk_kendall(both[reference], both[other], ks, min_n=min_n)
        df.insert(0, "recipe", other)
        df.insert(0, "kind", "across recipes")
        df.insert(0, "comparison", f"{other} vs {reference} (seed mean)")
        frames.append(df)
    seeds = sorted(results["seed"].unique())
    for recipe in (reference, *others):
        sub = results[results["recipe"] == recipe]
        per_seed = sub.pivot_table(index="graph", columns="seed", values=metric, aggfunc="mean")
        for s1, s2 in itertools.combinations(seeds, 2):
            if s1 not in per_seed.columns or s2 not in per_seed.columns:
                continue
            pair = per_seed[[s1, s2]].dropna()
            df = topk_kendall(pair[s1], pair[s2], ks, min_n=min_n)
            df.insert(0, "recipe", recipe)
            df.insert(0, "kind", "across seeds")
            df.insert(0, "comparison", f"{recipe}: seed {s1} vs {s2}")
            frames.append(df)
    if not frames:
        raise ArchscaleError("no comparisons could be made; the results need two recipes or two seeds")
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class RecipeComparison:
    """Everything Fig. 4 (or Fig. 8) shows about recipe ``new`` against recipe ``old``.

    ``accuracy``: per cell, seed-mean test accuracy in percent (columns ``old``, ``new``);
    ``gain``: mean paired gain in percentage points; ``topk``: Kendall tau for the top K% by
    ``old`` (columns k, n, tau); ``gaps``: mean pairwise gap among each recipe's own top K%
    (columns k, n, and one per recipe); ``diverged``: diverged runs per recipe.
    """

    new: str
    old: str
    accuracy: pd.DataFrame
    gain: GainEstimate
    topk: pd.DataFrame
    gaps: pd.DataFrame
    diverged: dict

    def summary(self) -> str:
        taus = ", ".join(f"top {r.k:g}% (n={r.n}): {r.tau:+.2f}" for r in self.topk.itertuples())
        return (f"{self.new} vs {self.old} on {len(self.accuracy)} cells: mean test-accuracy gain "
                f"{self.gain} percentage points; Kendall tau {taus}")


def compare_recipes(results: pd.DataFrame, new: str = "archscale", old: str = "fixed", *,
                    ks: Sequence[float] = (100, 50, 20, 10, 5, 1), min_n: int = 3, confidence: float = 0.95,
                    n_boot: int = 10_000, seed: int = 0) -> RecipeComparison:
    """Compare two recipes on the cells both trained: gain with a bootstrap CI, top-K% taus, gaps."""
    table = accuracy_table(results) * 100
    for name in (new, old):
        if name not in table.columns:
            raise ArchscaleError(f"recipe {name!r} is not in the results; found {', '.join(table.columns)}")
    acc = table[[old, new]].dropna()
    if len(acc) < 2:
        raise ArchscaleError(f"only {len(acc)} cell(s) were trained with both {old!r} and {new!r}; need >= 2")
    gain = mean_gain(acc[new], acc[old], confidence=confidence, n_boot=n_boot, seed=seed)
    topk = topk_kendall(acc[old], acc[new], ks, by="a", min_n=min_n)
    gap_old = topk_pairwise_gap(acc[old], ks)
    gap_new = topk_pairwise_gap(acc[new], ks)
    gaps = pd.DataFrame({"k": gap_old["k"], "n": gap_old["n"], old: gap_old["mean_gap"],
                         new: gap_new["mean_gap"]})
    div = results.groupby("recipe")["diverged"].sum()
    diverged = {r: int(div.get(r, 0)) for r in (old, new)}
    return RecipeComparison(new, old, acc, gain, topk, gaps, diverged)


def comparison_table(comparisons: Sequence[RecipeComparison]) -> pd.DataFrame:
    """One row per comparison: cells, mean gain (pp) with its interval, tau of all and of the top K%."""
    rows = []
    for c in comparisons:
        last = c.topk.iloc[-1]
        rows.append({"comparison": f"{c.new} vs {c.old}", "cells": len(c.accuracy),
                     "mean gain (pp)": c.gain.mean, "CI low": c.gain.lo, "CI high": c.gain.hi,
                     "tau all": float(c.topk["tau"].iloc[0]), "top K% (smallest)": float(last["k"]),
                     "n top": int(last["n"]), "tau top": float(last["tau"])})
    return pd.DataFrame(rows)


def recipe_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: runs, mean LR, mean final train loss and test accuracy, diverged runs, seconds."""
    return results.groupby("recipe", sort=False).agg(
        runs=("test_acc", "size"), mean_lr=("lr", "mean"), train_loss=("train_loss", "mean"),
        test_acc=("test_acc", "mean"), diverged=("diverged", "sum"), seconds=("seconds", "sum"))


def describe_cells(cells: Iterable[Dag | str]) -> pd.DataFrame:
    """Per cell: code, number of end-to-end paths, ``{L_p: count}`` (nb201 convention), lr_scale."""
    cells = [_as_cell(c) for c in cells]
    return pd.DataFrame({
        "cell": [c.code for c in cells],
        "paths": [c.n_paths for c in cells],
        "path depths {L_p: count}": [dict(c.depth_counts(offset=1)) for c in cells],
        "lr_scale": [lr_scale(c, "nb201") for c in cells],
    })
