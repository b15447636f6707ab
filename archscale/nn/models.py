"""Torch networks built from a :class:`~archscale.core.dag.Dag` and initialized by ``scaling.py``.

A stem, one module per non-zero DAG edge, a sum at every vertex (:func:`archscale.nn.traverse.traverse`)
and a readout (after global average pooling for CNNs). Two block layouts:

* ``layout="paper"`` (default, paper eq. 1): every parameterized edge is ``W · act(z_src)``;
  vertices hold pre-activations, the stem is a bare Linear/Conv and the readout acts first.
  A chain computes exactly the same function as the reference layout.
* ``layout="reference"`` (the reference code): edges are ``act(W · h_src)``; vertices sum
  post-activations, the stem is Linear/Conv + act and the readout is a bare Linear.

Initialization schemes (``init=``):

* ``"archscale"`` — variance ``2 / (d_in(target) * fan_in)`` with the live in-degree of the
  edge's **target** vertex (the appendix derivation), He stem.
* ``"he"`` — plain He ``2 / fan_in`` on every hidden layer.
* ``"source"`` — like archscale but dividing by the in-degree of the edge's **source** vertex
  (the typeset eq. 4 and the reference code).
* ``"reference"`` — the reference code's hidden layers: ``fan_out`` mode and the raw in-degree
  of the source vertex (its stem in ``fan_out`` mode too).

Readouts (``readout=``), independent of the init scheme:

* ``"mean_field"`` (default) — std ``sqrt(2) / n`` (variance ``2 / n**2``), the paper's readout;
* ``"standard"`` — std ``sqrt(2 / n)`` (standard parameterization);
* ``"reference"`` — the reference code's readout, std ``2 / out_dim`` (0.2 for ten classes:
  about 17x the mean-field value at width 128).

Biases start at zero.

Residual branch multiplier (``branch_multiplier=``, Depth-muP; see :mod:`archscale.core.residual`):
every parameterized edge entering a vertex that also has a skip in-edge (a residual addition)
has its output multiplied by this number in the forward pass; ``1.0`` (default) is the standard
parameterization, ``"depth_mup"`` is ``1 / sqrt(K)`` for a residual chain of ``K`` blocks (any
other graph is refused). The init is unchanged: the multiplier acts on top of it.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ..core import validate
from ..core.dag import Dag, DagError
from ..core.errors import ArchscaleError
from ..core.residual import branch_edges, depth_mup_multiplier
from ..core.scaling import INIT_SCHEMES, init_std, readout_std
from . import blas
from .traverse import traverse

blas.ensure_strict()  # MKL's strict reproducible mode, before anything computes (see blas.py)

__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "LAYOUTS", "READOUTS", "DagCNN", "DagMLP", "DagNet"]

LAYOUTS = ("paper", "reference")
READOUTS = ("mean_field", "standard", "reference")
ACTIVATIONS = ("relu", "gelu")


def _activation(act: str) -> nn.Module:
    return nn.ReLU() if validate.choice(act, "activation", ACTIVATIONS) == "relu" else nn.GELU()


def fan_in(layer: nn.Module) -> int:
    """Fan-in of a Linear or Conv weight (inputs per output unit)."""
    w = cast(torch.Tensor, layer.weight)
    return int(w.shape[1] * math.prod(w.shape[2:]))


def fan_out(layer: nn.Module) -> int:
    w = cast(torch.Tensor, layer.weight)
    return int(w.shape[0] * math.prod(w.shape[2:]))


class EdgeBlock(nn.Module):
    """A parameterized edge: ``layer(act(x))`` (paper layout) or ``act(layer(x))`` (reference),
    times ``multiplier`` (a residual branch's Depth-muP factor; 1 elsewhere)."""

    def __init__(self, layer: nn.Module, act: str, preact: bool, multiplier: float = 1.0):
        super().__init__()
        self.layer = layer
        self.act = _activation(act)
        self.preact = preact
        self.multiplier = multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(self.act(x)) if self.preact else self.act(self.layer(x))
        return out if self.multiplier == 1.0 else out * self.multiplier

    def extra_repr(self) -> str:
        return f"multiplier={self.multiplier:.4g}" if self.multiplier != 1.0 else ""


class DagNet(nn.Module):
    """Shared machinery of :class:`DagMLP` and :class:`DagCNN`; build one of those."""

    def __init__(self, dag: Dag | str, width: int, out_dim: int, act: str, layout: str,
                 init: str, readout: str, ops: str, branch_multiplier: float | str = 1.0):
        super().__init__()
        if isinstance(dag, str):
            dag = Dag.parse(dag, ops=ops)
        if not isinstance(dag, Dag):
            raise ArchscaleError(f"dag must be a Dag or a code string, got {type(dag).__name__}")
        if dag.ops == "nb201":
            raise DagError("nb201 cells are built by archscale.nas, not DagMLP/DagCNN")
        dag.require_path()
        self.dag = dag
        self.width = validate.positive_int(width, "width")
        self.out_dim = validate.positive_int(out_dim, "out_dim")
        self.act_name = validate.choice(act, "activation", ACTIVATIONS)
        self.layout = validate.choice(layout, "layout", LAYOUTS)
        self.init_scheme = validate.choice(init, "init", INIT_SCHEMES)
        self.readout_kind = validate.choice(readout, "readout", READOUTS)
        self.branch_multiplier = _branch_multiplier(dag, branch_multiplier)
        branches = {(e.src, e.dst) for e in branch_edges(dag)}
        preact = layout == "paper"
        self.stem = self._make_layer(self.in_features, width)
        self.stem_act = nn.Identity() if preact else _activation(act)
        self.edge_modules = nn.ModuleDict()
        for e in dag.edges:
            if e.is_parameterized:
                self.edge_modules[self.edge_key(e.src, e.dst)] = EdgeBlock(
                    self._make_layer(width, width), act, preact,
                    self.branch_multiplier if (e.src, e.dst) in branches else 1.0)
            else:  # skip: identity on the vertex value
                self.edge_modules[self.edge_key(e.src, e.dst)] = nn.Identity()
        self.readout_act = _activation(act) if preact else nn.Identity()
        self.readout = nn.Linear(width, out_dim)
        self.reset_parameters()

    # subclasses provide these
    in_features: int

    def _make_layer(self, n_in: int, n_out: int) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        return h

    @staticmethod
    def edge_key(src: int, dst: int) -> str:
        return f"{src}_{dst}"

    def edge_layer(self, src: int, dst: int) -> nn.Module | None:
        """The Linear/Conv on edge ``src -> dst``, or None for skip edges."""
        m = self.edge_modules[self.edge_key(src, dst)]
        return m.layer if isinstance(m, EdgeBlock) else None

    # ------------------------------------------------------------------ init
    def edge_init_std(self, src: int, dst: int) -> float:
        """Weight std this model's init scheme gives the parameterized edge ``src -> dst``."""
        layer = self.edge_layer(src, dst)
        if layer is None:
            raise ArchscaleError(f"edge {src}->{dst} carries no weights")
        scheme, dag = self.init_scheme, self.dag
        if scheme == "archscale":
            return init_std(fan_in(layer), dag.live_in_degrees[dst])
        if scheme == "he":
            return init_std(fan_in(layer), 1)
        if scheme == "source":
            return init_std(fan_in(layer), max(dag.live_in_degrees[src], 1))
        # reference: fan_out mode, raw in-degree of the source (vertex 0 counts as 1)
        return init_std(fan_out(layer), max(dag.in_degrees[src], 1) if src else 1)

    def readout_init_std(self) -> float:
        """The readout's weight std: by the ``readout`` choice alone (the init scheme never changes it)."""
        if self.readout_kind == "reference":
            return 2.0 / self.out_dim
        return readout_std(self.width, mean_field=self.readout_kind == "mean_field")

    def stem_init_std(self) -> float:
        if self.init_scheme == "reference":
            return init_std(fan_out(self.stem), 1)
        return init_std(fan_in(self.stem), 1)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw every weight by this model's init scheme (uses torch's global RNG)."""
        # the layers are Linear/Conv2d with a bias (nn.Module's __getattr__ says Tensor | Module)
        cast(torch.Tensor, self.stem.weight).normal_(0.0, self.stem_init_std())
        cast(torch.Tensor, self.stem.bias).zero_()
        for e in self.dag.edges:
            layer = self.edge_layer(e.src, e.dst)
            if layer is not None:
                cast(torch.Tensor, layer.weight).normal_(0.0, self.edge_init_std(e.src, e.dst))
                cast(torch.Tensor, layer.bias).zero_()
        self.readout.weight.normal_(0.0, self.readout_init_std())
        self.readout.bias.zero_()

    # ------------------------------------------------------------------ forward
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor, return_nodes: bool = False):
        """Logits; with ``return_nodes=True`` also the list of every DAG vertex's value."""
        h = self.stem_act(self.stem(self._prepare(x)))
        nodes = traverse(self.dag, h, lambda e, v: self.edge_modules[self.edge_key(e.src, e.dst)](v))
        logits = self.readout(self._pool(self.readout_act(nodes[-1])))
        return (logits, nodes) if return_nodes else logits

    def extra_repr(self) -> str:
        extra = f", branch_multiplier={self.branch_multiplier:.4g}" if self.branch_multiplier != 1.0 else ""
        return (f"dag={self.dag.code!r}, width={self.width}, act={self.act_name!r}, "
                f"layout={self.layout!r}, init={self.init_scheme!r}, readout={self.readout_kind!r}{extra}")


def _branch_multiplier(dag: Dag, value: float | str) -> float:
    """The residual branch multiplier: a positive number, or ``"depth_mup"`` (``1/sqrt(K)``)."""
    if isinstance(value, str):
        validate.choice(value, "branch_multiplier", ("depth_mup",))
        return depth_mup_multiplier(dag)
    return validate.number(value, "branch_multiplier", positive=True, example="1.0 or 'depth_mup'")


class DagMLP(DagNet):
    """DAG MLP: Linear stem, Linear blocks on parameterized edges, Linear readout.

    Inputs of any shape ``(batch, ...)`` are flattened to ``in_dim`` features.
    """

    def __init__(self, dag: Dag | str, in_dim: int, width: int, out_dim: int, act: str = "relu",
                 *, layout: str = "paper", init: str = "archscale", readout: str = "mean_field",
                 branch_multiplier: float | str = 1.0):
        self.in_features = validate.positive_int(in_dim, "in_dim")
        super().__init__(dag, width, out_dim, act, layout, init, readout, ops="mlp",
                         branch_multiplier=branch_multiplier)

    def _make_layer(self, n_in: int, n_out: int) -> nn.Module:
        return nn.Linear(n_in, n_out)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


class DagCNN(DagNet):
    """DAG CNN: Conv stem, ``q x q`` same-padding Conv blocks, global average pool, Linear."""

    def __init__(self, dag: Dag | str, in_channels: int, width: int, out_dim: int,
                 kernel_size: int = 3, act: str = "relu", *, layout: str = "paper",
                 init: str = "archscale", readout: str = "mean_field", branch_multiplier: float | str = 1.0):
        self.in_features = validate.positive_int(in_channels, "in_channels")
        self.kernel_size = validate.kernel_size(kernel_size)
        if isinstance(dag, str):
            dag = Dag.parse(dag, ops="cnn")
        super().__init__(dag, width, out_dim, act, layout, init, readout, ops="cnn",
                         branch_multiplier=branch_multiplier)

    def _make_layer(self, n_in: int, n_out: int) -> nn.Module:
        return nn.Conv2d(n_in, n_out, self.kernel_size, padding=self.kernel_size // 2)

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))
