"""NAS-Bench-201's cell networks: the cell (a 4-vertex DAG of ops), the residual reduction, the skeleton.

:class:`CellNet` follows NAS-Bench-201's ``TinyNetwork``: a 3x3 conv stem with BatchNorm, three
stages of ``n_cells`` cells with ``C``, ``2C`` and ``4C`` channels separated by residual reduction
blocks (stride 2), BatchNorm + ReLU, global average pooling and a linear head. Cell ops: ``none``
(absent edge), ``skip_connect`` (identity), ``nor_conv_1x1`` and ``nor_conv_3x3`` (ReLU-Conv-BN)
and ``avg_pool_3x3`` (stride 1, padding 1). ``init="archscale"`` applies the in-degree rule.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DagError
from ..core.scaling import init_std, readout_std

__all__ = ["CELL_OPS", "INITS", "READOUTS", "CellNet", "NasCell", "ReLUConvBN", "ReductionBlock", "as_cell"]

#: NAS-Bench-201 op names by digit (``Dag.parse(code, ops="nb201")``).
CELL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
INITS = ("archscale", "he")
READOUTS = ("mean_field", "standard")


def as_cell(dag: Dag | str) -> Dag:
    """``dag`` as an nb201 cell with an input-to-output path (codes are parsed with ``ops="nb201"``)."""
    if isinstance(dag, str):
        dag = Dag.parse(dag, ops="nb201")
    if not isinstance(dag, Dag):
        raise DagError(f"a cell must be a Dag or an nb201 code like '3_03_003', "
                             f"got {type(dag).__name__}")
    if dag.ops != "nb201":
        raise DagError(
            f"cell {dag.code!r} uses the {dag.ops!r} op set; parse it with ops='nb201' "
            f"(digits 0-4: {', '.join(CELL_OPS)})"
        )
    dag.require_path()
    return dag


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

    ``edge_modules`` is keyed ``"src_dst"`` like :class:`archscale.nn.models.DagNet`; ``none``
    edges have no module and a vertex without incoming edges holds zeros.
    """

    def __init__(self, dag: Dag | str, channels: int, batchnorm: bool = True):
        super().__init__()
        self.dag = as_cell(dag)
        self.channels = validate.positive_int(channels, "channels")
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

    mup_shapes: dict[str, tuple[tuple[int, int | None], ...]]  # set by apply_mup only
    mup_base_width: int

    def __init__(self, dag: Dag | str, in_channels: int, width: int, n_cells: int, out_dim: int, *,
                 init: str = "archscale", readout: str = "mean_field", batchnorm: bool = True):
        super().__init__()
        self.dag = as_cell(dag)
        self.in_channels = validate.positive_int(in_channels, "in_channels")
        self.width = validate.positive_int(width, "width")
        self.n_cells = validate.positive_int(n_cells, "n_cells")
        self.out_dim = validate.positive_int(out_dim, "out_dim")
        self.init_scheme = validate.choice(init, "init", INITS)
        self.readout_kind = validate.choice(readout, "readout", READOUTS)
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
                assert isinstance(block, ReductionBlock)
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
    w = cast(torch.Tensor, layer.weight)
    return int(w.shape[1] * math.prod(w.shape[2:]))


