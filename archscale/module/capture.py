"""Graph capture: read any ``nn.Module`` as archscale's DAG, or refuse it in one line.

The module is traced with concrete shapes (:mod:`archscale.module.trace`), then read node by node.

Reading rules (DESIGN.md section 5):

* weighted ops (``nn.Linear``, ``nn.Conv1d/2d/3d``, grouped and depthwise included, bias allowed)
  are edges; the first one that reads the input is the stem (its output is vertex 0), the one that
  produces the output is the readout (its input is the last vertex);
* merges (``+``, ``-``, ``+=``, ``torch.add``, ``sum([...])``) are vertices; a sum used only inside
  another sum is merged into it; zeros (``torch.zeros_like``) start an empty sum;
* elementwise ops (activations, ``x * sigmoid(x)`` and other products of a signal with a function of
  itself, scaling and shifting by constants, dropout, normalization read by ``norm=``) are recorded
  as the *chain* an edge applies to its source, before its weights (``pre``) or after them and before
  the sum (``post``): where the activation sits is kept, for the init's gain and the moments;
* ``cat``, slices, ``split``/``chunk``, reshapes, channel shuffles and pooling move channels
  (:mod:`archscale.module.pieces`): a weighted op reading channels of several vertices is one edge
  per vertex (exact: ``W cat(a, b) = W_a a + W_b b``), each with its piece's fan-in;
* a value becomes a vertex when a weighted op reads it, when it is used twice, when an elementwise op
  is applied to a sum, or when it passes an ``nn.Identity`` module (archscale's own DagNet marks its
  skip edges so; a value left unused becomes a dangling vertex);
* a product of a signal with a side branch (squeeze-excitation) is refused unless
  ``gating="ignore"`` reads the gate as a pass-through (an approximation: the gate's modules leave the
  graph); attention and matmul between activations, weight sharing, functional weights and anything
  unknown are refused.

``norm=`` says what a normalization layer is (:data:`NORM_MODES`): ``"pass-through"`` (the default;
``"ignore"`` is its old name) reads it as the identity, which it is in eval mode at initialization
(running mean 0, variance 1, affine weight 1, bias 0); ``"renormalize"`` reads it as training mode
does, resetting the second moment where it sits to its affine weight's square (the moments then
follow, and ``apply`` sets the affine weight of a norm closing an edge into a vertex of in-degree
``d`` to ``1/sqrt(d)``); ``"error"`` refuses it.

Every refusal is one line naming how many places block, of how many of their kind, and where;
approximations are noted once per kind with a count, and warned about once per call.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import fx, nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DagError
from ..core.kernels import kernel_area
from ..nn import blas
from .reading import Reader
from .trace import WEIGHTED, trace
from .weighted import Layer, LayerInput, nonlinear

blas.ensure_strict()  # MKL's strict reproducible mode, before anything computes (see blas.py)

__all__ = ["GATING_MODES", "NORM_MODES", "Capture", "Layer", "LayerInput", "capture"]

NORM_MODES = ("pass-through", "renormalize", "error", "ignore")
GATING_MODES = ("error", "ignore")


@dataclass
class Capture:
    """A module read as a DAG: the graph, its layers, and the traced module that computes it.

    ``vertex_nodes[v]`` names the fx node whose output is vertex ``v``'s value (None for a readout
    reading a concatenation). ``arch`` is ``cnn`` when a convolution is a stem or edge. ``kernel_size``
    is eq. 9's q when every weighted edge has one square ``q x q`` kernel (or ``kernel_size=`` set it),
    else None, and ``kernel_areas`` holds each weighted edge's ``q^2`` for
    :mod:`archscale.core.kernels`. ``vertex_terms[v]`` lists what enters vertex ``v``:
    ``("skip", src, chain)`` or ``("edge", layer, input index)``; ``norms`` the normalization modules
    read with ``renormalize`` on an edge, with the in-degree of the vertex they close.
    """

    graph: Dag
    arch: str
    kernel_size: int | None
    layers: list[Layer]
    vertex_nodes: list[str | None]
    graph_module: fx.GraphModule
    notes: list[str] = field(default_factory=list)
    kernel_areas: dict[tuple[int, int], list] | None = None
    vertex_terms: list[list[tuple]] = field(default_factory=list)
    vertex_channels: list[tuple[int, ...] | None] = field(default_factory=list)
    vertex_rows: list[torch.Tensor | None] = field(default_factory=list)
    norm: str = "pass-through"
    norms: list[tuple[nn.Module, int]] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)

    def layer(self, path: str) -> Layer:
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise ArchscaleError(f"no weighted module {path!r} in this model")


# ---------------------------------------------------------------------------------------- capture
def _kernels(layers: list[Layer], override: int | None) -> tuple[int | None, dict | None]:
    """eq. 9's q (one square kernel everywhere, or ``override``), else the edges' kernel areas."""
    if override is not None:
        return validate.kernel_size(override, "kernel_size"), None
    edges = [la for la in layers if la.role == "edge"]
    kernels = {la.kernel for la in edges}
    if not edges:  # the stem's kernel, as eq. 9's q of a graph without weighted edges
        stem = next((la for la in layers if la.role == "stem"), None)
        k = stem.kernel if stem is not None else None
        return (k[0] if k and len(set(k)) == 1 and k[0] % 2 else None), None
    if len(kernels) == 1:
        k = next(iter(kernels))
        if k is not None and len(set(k)) == 1 and k[0] % 2 == 1:
            return k[0], None
    areas: dict[tuple[int, int], list] = {}
    for la in edges:
        for inp in la.inputs:
            assert inp.src is not None and la.dst is not None
            areas.setdefault((inp.src, la.dst), []).append(kernel_area(la.kernel))
    return None, areas


def _notes(reader: Reader, layers: list[Layer], norm: str) -> tuple[list[str], list[str]]:
    """The notes (once per kind, with a count) and the approximations to warn about."""
    notes, approx = [], []
    c, places = reader.counts, reader.places

    def listed(kind: str, n: int = 3) -> str:
        names = list(dict.fromkeys(places.get(kind, [])))
        return ", ".join(names[:n]) + (", ..." if len(names) > n else "")

    norms = {k[5:]: v for k, v in c.items() if k.startswith("norm ")}
    if norms:
        total = sum(norms.values())
        kinds = ", ".join(f"{k} x{v}" for k, v in norms.items())
        if norm == "renormalize":
            notes.append(f"norm='renormalize': {total} normalization layers ({kinds}) reset the second "
                         "moment "
                         "where they sit (training mode); the predicted moments follow, and apply() sets "
                         "the "
                         "affine weight of a norm closing an edge into a vertex of in-degree d > 1 to "
                         "1/sqrt(d)")
        else:
            notes.append(f"norm='pass-through' (the default): {total} normalization layers ({kinds}) read as "
                         "the identity, exact in eval mode at initialization (running statistics 0/1, "
                         "affine "
                         f"1/0); in training mode they renormalize, which norm='renormalize' reads")
        approx.append(f"{total} normalization layers read as {norm}")
    if c["gate"]:
        gated = [la.path for la in layers if la.role == "gate"]
        notes.append(f"gating='ignore': {c['gate']} side-branch gates ({listed('gate')}) read as "
                     "pass-throughs "
                     f"(an approximation: a sigmoid gate at initialization scales its signal by about 0.5); "
                     f"their {len(gated)} weighted modules are outside the graph and keep their weights")
        approx.append(f"{c['gate']} side-branch gates read as pass-throughs")
    if c["self gate"]:
        notes.append(f"{c['self gate']} products of a signal with a function of itself (x * sigmoid(x) and "
                     "the "
                     f"like; {listed('self gate')}) read as elementwise activations")
    if c["cat read"]:
        notes.append(f"{c['cat read']} weighted modules read channels of several vertices "
                     f"({listed('cat read')}): "
                     "one edge per vertex into one vertex (exact: W cat(a, b) = W_a a + W_b b), each with "
                     "its "
                     f"piece's fan-in")
    if c["slice"]:
        notes.append(f"{c['slice']} slices or splits read as parallel pieces of their source "
                     f"({listed('slice')})")
    if c["group split"]:
        notes.append(f"{c['group split']} grouped convolutions read channels of several vertices, each group "
                     f"those of one ({listed('group split')}): one edge and one vertex per piece, the "
                     f"output a concatenation of them")
    depthwise = list({id(la.module): la for la in layers
                      if la.depthwise and la.role in ("stem", "edge")}.values())
    if depthwise:
        areas = sorted({math.prod(la.kernel or ()) for la in depthwise})
        notes.append(f"{len(depthwise)} depthwise convolutions (groups = in_channels; {depthwise[0].path}, "
                     "...): "
                     f"fan-in = kernel area ({'/'.join(map(str, areas))}), which does not grow with width")
    linear = list(dict.fromkeys(la.path for la in layers
                                if la.role == "edge" and any(i.gain_one for i in la.inputs)))
    if linear:
        notes.append(f"{len(linear)} edges have no activation in front of their weights "
                     f"({', '.join(linear[:3])}"
                     f"{', ...' if len(linear) > 3 else ''}): gain 1, std sqrt(1 / (in-degree x fan-in))")
    post = list(dict.fromkeys(la.path for la in layers if la.post_act))
    if post:
        shown = ", ".join(post[:3]) + (", ..." if len(post) > 3 else "")
        notes.append(f"{len(post)} edges apply an activation after their weights and before the sum (the "
                     f"reference code's layout: {shown}); the predicted moments follow it")
    before_readout = reader.readout_pools()
    inside = [p for p in places.get("pool", []) if p not in before_readout]
    if inside:
        names = list(dict.fromkeys(inside))
        notes.append(f"{len(inside)} pooling ops inside the network ({', '.join(names[:3])}"
                     f"{', ...' if len(names) > 3 else ''}) are read as pass-throughs by the predicted "
                     f"moments")
    if c["affine"]:
        notes.append(f"{c['affine']} constant scales or shifts ({listed('affine')}) read as elementwise ops")
    return notes, approx


def _mark_activated(graph: Dag, terms: list[list[tuple]], layers: list[Layer]) -> None:
    """Set ``LayerInput.activated`` where an activation sits in the source vertex itself: a sum of
    activated terms (the reference layout's vertices hold post-activations), or a vertex no path
    reaches (its edges meet no signal; they keep the activation's gain)."""
    post = [False] * graph.n_vertices
    for v in range(1, graph.n_vertices):
        for t in terms[v]:
            if t[0] == "skip":
                post[v] = post[v] or nonlinear(t[2]) or post[t[1]]
            else:
                post[v] = post[v] or nonlinear(t[1].post)
    for la in layers:
        if la.role == "edge":
            for inp in la.inputs:
                assert inp.src is not None
                inp.activated = post[inp.src] or not graph.live[inp.src]




def capture(model: nn.Module, example_input: torch.Tensor, *, norm: str = "pass-through",
            kernel_size: int | None = None, gating: str = "error", warn: bool = True) -> Capture:
    """Read ``model`` (run on ``example_input``) as archscale's graph; refuse what it cannot read.

    ``norm`` and ``gating`` choose how normalization layers and side-branch gates are read (module
    docstring); ``kernel_size`` sets one eq. 9 q for every edge. One warning names the approximations
    taken (``warn=False``: none; :func:`~archscale.module.plan.apply` warns once for a whole call).
    Anything archscale cannot read raises :class:`~archscale.core.errors.ArchscaleError` in one line.
    """
    try:
        return _capture(model, example_input, norm, kernel_size, gating, warn)
    except ArchscaleError:
        raise
    except Exception as err:  # an archscale limitation: still one line, never a foreign exception
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise ArchscaleError(f"archscale could not read {type(model).__name__}: {type(err).__name__}: "
                             f"{first} "
                             f"(a construct archscale does not handle yet)") from err


def _capture(model: nn.Module, example_input: torch.Tensor, norm: str, kernel_size: int | None, gating: str,
             warn: bool) -> Capture:
    if not isinstance(model, nn.Module):
        raise ArchscaleError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise ArchscaleError(f"example_input must be one tensor (a batch the model accepts), "
                             f"got {type(example_input).__name__}")
    validate.choice(norm, "norm", NORM_MODES)
    validate.choice(gating, "gating", GATING_MODES)
    norm = "pass-through" if norm == "ignore" else norm
    if isinstance(model, WEIGHTED):
        raise ArchscaleError(f"the model is a single {type(model).__name__}; archscale needs a stem and a "
                             f"readout (input -> Linear/Conv -> ... -> Linear/Conv -> output)")
    name = type(model).__name__
    gm = trace(model, example_input)
    reader = Reader(gm, norm, gating)
    reader.run()
    if reader.refused:  # trace again with source lines, so that the refusal names them
        again = Reader(trace(model, example_input, stacks=True), norm, gating)
        again.run()
        raise DagError((again if again.refused else reader).message(name))
    if reader.stem is None:
        raise ArchscaleError("no weighted op reads the input; archscale needs a stem (a Linear/Conv on "
                             "the input)")
    vals, edges, terms = reader.resolve()
    nodes: list[str | None] = [v.node.name for v in vals]
    rows: list[torch.Tensor | None] = [v.rows for v in vals]
    channels: list[tuple[int, ...] | None] = [None] * len(vals)
    readout, out, stem = reader.readout, reader.out_sig, reader.stem
    assert readout is not None and readout.layer is not None and out is not None and stem.layer is not None
    head = readout.layer.inputs[0]
    if len(out.pieces) > 1:  # the readout reads a concatenation: an output vertex of one skip per piece
        for p, _, _, _ in readout.inputs:
            v, chain = out.pieces[p]
            assert v.vertex is not None
            edges.append((v.vertex, len(nodes), "skip"))
        terms.append([("skip", out.pieces[p][0].vertex, out.pieces[p][1])
                      for p, _, _, _ in readout.inputs])
        channels.append(tuple(ch for _, ch, _, _ in readout.inputs))
        nodes.append(None)
        rows.append(None)
        width = int(cast(torch.Tensor, readout.layer.module.weight).shape[1])
        readout.layer.inputs = [LayerInput(len(nodes) - 1, (), readout.layer.fan_in, width, None,
                                           head.coverage)]
    else:
        src_val, head.chain = out.one
        assert src_val.vertex is not None  # the readout's input is a vertex (must)
        if vals[-1] is not src_val or len(vals) == 1:
            edges.append((src_val.vertex, len(nodes), "skip"))
            terms.append([("skip", src_val.vertex, ())])
            channels.append(None)
            nodes.append(src_val.node.name)
            rows.append(src_val.rows)
        head.src = len(nodes) - 1
    stem.layer.dst = 0
    stem.layer.inputs[0].chain = stem.src.one[1] if stem.src is not None else ()
    layers = reader.layers
    tied: dict[int, str] = {}
    for layer in layers:
        first = tied.setdefault(id(layer.module.weight), layer.path)
        if first != layer.path:
            raise ArchscaleError(f"archscale cannot read {name}: modules {first!r} and {layer.path!r} share "
                                 "one "
                                 f"weight tensor (weight sharing is outside the paper's graphs)")
    called = {id(la.module) for la in layers}
    for path, mod in model.named_modules():
        if isinstance(mod, WEIGHTED) and id(mod) not in called:
            layers.append(Layer(path, mod, "unused"))
    arch = "cnn" if any(la.kernel is not None for la in layers if la.role in ("stem", "edge")) else "mlp"
    if arch == "mlp" and kernel_size is not None:
        raise ArchscaleError("kernel_size applies to convolutional models only; this one has no conv stem "
                             "or edge")
    q, areas = _kernels(layers, kernel_size) if arch == "cnn" else (None, None)
    graph = Dag.from_edges(len(nodes), edges, ops=arch)
    readout.layer.src = graph.output
    _mark_activated(graph, terms, layers)
    notes, approx = _notes(reader, layers, norm)
    if graph == Dag.parse("1", ops=arch):
        notes.insert(0, "no weighted op between the stem and the readout: the graph is the base '1' "
                        "(one path of depth 3)")
    if areas is not None:
        kinds = Counter("x".join(map(str, la.kernel)) if la.kernel else "Linear" for la in layers
                        if la.role == "edge" for _ in la.inputs)
        notes.append("eq. 9 with mixed kernel sizes (" + ", ".join(f"{k} x{n}" for k, n in kinds.items())
                     + "): each path's q^2 L_p^3 becomes L_p^2 (3 a_ref + sum of its edges' q^2), a_ref "
                       "their "
                       "mean (archscale.core.kernels)")
    deg = graph.live_in_degrees
    norms = [(m, deg[dst]) for m, dst in reader.closing] if norm == "renormalize" else []
    if warn and approx:
        warnings.warn(f"archscale read {name} approximately: {'; '.join(approx)} (see the plan's notes)",
                      stacklevel=3)
    return Capture(graph=graph, arch=arch, kernel_size=q, layers=layers, vertex_nodes=nodes, graph_module=gm,
                   notes=notes, kernel_areas=areas, vertex_terms=terms,
                   vertex_channels=channels, vertex_rows=rows, norm=norm, norms=norms, approximations=approx)
