"""What ``apply`` draws for each edge of a captured module, and the moments that layout predicts.

One row per edge: a module reading one signal is one row; a module reading channels of several
vertices (a concatenation, slices) is one row per vertex, each with its piece's fan-in and the weights
it owns. An edge's std is ``sqrt(gain / (d_in(target) * fan_in))``, with ``gain`` the activation's
(2 for ReLU, the ``gain`` argument) when an activation sits in front of the weights (in the edge's
chain, or in its source: the reference layout's vertices sum activated terms), and 1 when none does
(a linear bottleneck's expansion reads its source with no activation in front). The stem and the
readout keep ``gain``. With ``norm="renormalize"`` a normalization closing an edge into a vertex of
in-degree ``d`` gets affine weight ``1/sqrt(d)`` (and bias 0): the share the in-degree rule gives that edge.

:func:`predicted_moments` hands the captured layout (each edge's chain in front of and after its
weights, skips carrying what they carry, the share of kernel taps inside the input) to
:func:`archscale.core.moments.layout_moments`; :func:`measured_moments` reads the same vertices on a
batch, in eval mode for ``norm="pass-through"`` and in training mode (batch statistics, buffers
restored afterwards) for ``norm="renormalize"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import torch

from ..core.moments import Term, Vertex, layout_moments
from ..core.scaling import init_std, readout_std
from .capture import Capture, Layer, LayerInput
from .ops import NORM_MODULES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RECIPES", "agreement", "edge_table", "initialize", "measured_moments", "predicted_moments",
           "rows"]

#: The init recipes apply() offers (see :func:`edge_table`).
RECIPES = ("paper", "reference")
_COLUMNS = ("module", "role", "type", "input", "src", "dst", "in_degree", "fan_in", "gain", "init_std")


def rows(cap: Capture) -> Iterator[tuple[Layer, int | None]]:
    """The table's rows: ``(layer, index of its input)``, one per edge (None: a module outside the graph)."""
    for la in cap.layers:
        if la.role == "edge":
            for i in range(len(la.inputs)):
                yield la, i
        else:
            yield la, 0 if la.inputs else None


def _gain(inp: LayerInput, gain: float) -> float:
    """``gain`` when an activation sits in front of the weights (:attr:`LayerInput.gain_one`), else 1."""
    return 1.0 if inp.gain_one else gain


def _fan_out(module: torch.nn.Module) -> int:
    """torch's ``fan_out`` (``mode="fan_out"``): output channels times the kernel area."""
    w = cast(torch.Tensor, module.weight)
    return int(w.shape[0] * math.prod(w.shape[2:]))


def edge_table(cap: Capture, readout: str, gain: float, recipe: str = "paper") -> pd.DataFrame:
    """One row per edge: module, role, type, input (its channels when it reads several vertices),
    src/dst vertices, the target's in-degree, fan-in, gain and the init std (NaN where kept).

    ``recipe="paper"``: the target in-degree rule on the fan-in; ``"reference"``: the reference
    code's init, He's fan-out mode divided by the raw in-degree of the edge's source (vertex 0 counts
    as 1). ``readout``: ``mean_field``, ``standard``, ``reference`` (std ``2 / out_dim``) or ``keep``."""
    import pandas as pd

    cols: dict[str, list] = {k: [] for k in _COLUMNS}
    deg = cap.graph.live_in_degrees
    for la, i in rows(cap):
        inp = la.inputs[i] if i is not None else None
        g, d, std = None, None, None
        if la.role == "stem" and inp is not None:
            g = gain
            fan = _fan_out(la.module) if recipe == "reference" else inp.fan_in
            std = init_std(fan, 1, gain)
        elif la.role == "edge" and inp is not None:
            assert la.dst is not None  # set for every edge by capture
            g, d = _gain(inp, gain), deg[la.dst]
            if recipe == "reference":
                source = inp.src or 0
                std = init_std(_fan_out(la.module), max(cap.graph.in_degrees[source], 1) if source else 1, g)
            else:
                std = init_std(inp.fan_in, d, g)
        elif la.role == "readout" and readout == "reference":
            g, std = gain, 2.0 / int(cast(torch.Tensor, la.module.weight).shape[0])
        elif la.role == "readout" and readout != "keep":
            g, std = gain, readout_std(la.fan_in, gain, mean_field=readout == "mean_field")
        src = "input" if la.role == "stem" else (inp.src if inp is not None and la.role == "edge" else la.src)
        dst = "output" if la.role == "readout" else la.dst
        several = la.role == "edge" and len(la.inputs) > 1
        for key, value in (("module", la.path), ("role", la.role), ("type", la.kind),
                           ("input", f"{inp.channels} of {cast(torch.Tensor, la.module.weight).shape[1]} ch"
                            if several and inp is not None else ""),
                           ("src", "" if src is None else src), ("dst", "" if dst is None else dst),
                           ("in_degree", d), ("fan_in", inp.fan_in if inp is not None and la.role == "edge"
                                              else la.fan_in), ("gain", g), ("init_std", std)):
            cols[key].append(value)
    cols["in_degree"] = pd.array(cols["in_degree"], dtype="Int64")
    for key in ("gain", "init_std"):
        cols[key] = [float("nan") if v is None else v for v in cols[key]]
    return pd.DataFrame(cols)


@torch.no_grad()
def initialize(cap: Capture, table: pd.DataFrame) -> None:
    """Draw every weight the table gives a std (biases zero), and set closing norms' affine weights."""
    for (la, i), std in zip(rows(cap), table["init_std"]):
        if std != std:  # NaN: kept (readout="keep", unused modules, gates)
            continue
        weight = cast(torch.Tensor, la.module.weight)
        mask = la.inputs[i].mask if i is not None and la.role == "edge" else None
        if mask is None:
            weight.normal_(0.0, float(std))
        else:
            weight[mask] = torch.randn(int(mask.sum()), dtype=weight.dtype) * float(std)
        bias = cast("torch.Tensor | None", la.module.bias)  # nn.Module's __getattr__ says Tensor | Module
        if bias is not None:
            bias.zero_()
    for module, d in cap.norms:
        gamma, beta = getattr(module, "weight", None), getattr(module, "bias", None)
        if isinstance(gamma, torch.Tensor):
            gamma.fill_(1.0 / math.sqrt(max(d, 1)))
        if isinstance(beta, torch.Tensor):
            beta.zero_()


def _closing(chain: tuple, d: int) -> tuple:
    """An edge's post chain with the affine weight ``initialize`` gives its closing norms."""
    return tuple(("renorm", 1.0 / math.sqrt(max(d, 1)), 0.0) if op[0] == "renorm" else op for op in chain)


def predicted_moments(cap: Capture, table: pd.DataFrame, example: torch.Tensor,
                      initialized: bool = True) -> list[float]:
    """``E[z_v^2] / E[z_0^2]`` of every vertex at infinite width, for the layout as captured."""
    std = {(la.path, i): s for (la, i), s in zip(rows(cap), table["init_std"])}
    deg = cap.graph.live_in_degrees
    stem = next(la for la in cap.layers if la.role == "stem")
    vertices = [Vertex(())]
    for v in range(1, cap.graph.n_vertices):
        terms = []
        for t in cap.vertex_terms[v]:
            if t[0] == "skip":
                terms.append(Term(t[1], pre=t[2]))
                continue
            la, i = t[1], t[2]
            inp = la.inputs[i]
            s = std[(la.path, i)]
            if s != s:
                s = float(cast(torch.Tensor, la.module.weight).detach().double().std())
            post = _closing(la.post, deg[v]) if initialized and cap.norms else la.post
            terms.append(Term(cast(int, inp.src), pre=inp.chain, weight=s * s * inp.fan_in * inp.coverage,
                              post=post, fan_in=inp.fan_in))
        vertices.append(Vertex(tuple(terms), cap.vertex_channels[v]))
    s0 = std[(stem.path, 0)]
    if s0 != s0:
        s0 = float(cast(torch.Tensor, stem.module.weight).detach().double().std())
    first = stem.inputs[0]
    x2 = float(example.detach().double().pow(2).mean())
    x2 = x2 if x2 > 0 and math.isfinite(x2) else 1.0  # an all-zero example: the scale of a unit input
    moments = layout_moments(vertices, input_moment=s0 * s0 * first.fan_in * first.coverage * x2)
    return [m / moments[0] for m in moments]


def measured_moments(cap: Capture, model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """Measured ``E[z_v^2] / E[z_0^2]`` of every vertex on ``x`` (NaN for a concatenating output vertex)."""
    gm = cap.graph_module
    rows = cap.vertex_rows or [None] * len(cap.vertex_nodes)
    wanted: dict[str, list[int]] = {}
    for v, name in enumerate(cap.vertex_nodes):
        if name is not None:
            wanted.setdefault(name, []).append(v)
    values: dict[int, float] = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            for v in wanted.get(n.name, ()):  # a vertex may be some channels of the node (one group's)
                part = out if rows[v] is None else out[:, rows[v]]
                values[v] = float(part.detach().double().pow(2).mean())
            return out

    train = cap.norm == "renormalize"
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    modes = {m: m.training for m in list(model.modules()) + list(gm.modules())}
    for m in modes:  # set one by one: train() would recurse into the children
        m.training = train and isinstance(m, NORM_MODULES)
    try:
        with torch.no_grad():
            _Recorder(gm).run(x)
    finally:
        for m, mode in modes.items():
            m.training = mode
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
    return [values[v] / values[0] if name is not None else float("nan")
            for v, name in enumerate(cap.vertex_nodes)]


def agreement(predicted, measured) -> tuple[float, float]:
    """``(median, worst)`` factor between measured and predicted moments over the measured vertices
    (``exp`` of the median and the largest ``|ln(measured / predicted)|``)."""
    import numpy as np

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    keep = ~np.isnan(m) & ~np.isnan(p)
    dev = np.abs(np.log(m[keep] / p[keep]))
    return float(np.exp(np.median(dev))), float(np.exp(dev.max()))

