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

__all__ = ["edge_table", "initialize", "measured_moments", "predicted_moments", "rows"]

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


def edge_table(cap: Capture, readout: str, gain: float) -> pd.DataFrame:
    """One row per edge: module, role, type, input (its channels when it reads several vertices),
    src/dst vertices, the target's in-degree, fan-in, gain and the init std (NaN where kept)."""
    import pandas as pd

    cols: dict[str, list] = {k: [] for k in _COLUMNS}
    deg = cap.graph.live_in_degrees
    for la, i in rows(cap):
        inp = la.inputs[i] if i is not None else None
        g, d, std = None, None, None
        if la.role == "stem" and inp is not None:
            g, std = gain, init_std(inp.fan_in, 1, gain)
        elif la.role == "edge" and inp is not None:
            assert la.dst is not None  # set for every edge by capture
            g, d = _gain(inp, gain), deg[la.dst]
            std = init_std(inp.fan_in, d, g)
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
    if not (math.isfinite(x2) and x2 > 0):  # an all-zero example: the ratios of a unit input
        x2 = 1.0
    moments = layout_moments(vertices, input_moment=s0 * s0 * first.fan_in * first.coverage * x2)
    return [m / moments[0] for m in moments]


def measured_moments(cap: Capture, model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """Measured ``E[z_v^2] / E[z_0^2]`` of every vertex on ``x`` (NaN for a concatenating output vertex)."""
    gm, wanted = cap.graph_module, {n for n in cap.vertex_nodes if n is not None}
    values: dict[str, float] = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted:
                values[n.name] = float(out.detach().double().pow(2).mean())
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
    first = values[cast(str, cap.vertex_nodes[0])]
    return [values[name] / first if name is not None else float("nan") for name in cap.vertex_nodes]
