"""Graph capture: read any ``nn.Module`` as archscale's DAG, or refuse it by name.

Capture uses ``torch.fx.symbolic_trace`` (a :class:`torch.fx.Tracer` that also keeps subclasses
of Linear/Conv whole), then one run of the example input through the traced graph
(``ShapeProp``) to tell tensors from shapes. Why fx rather than ``torch.export``: fx keeps every
``nn.Linear``/``nn.Conv`` as one ``call_module`` node named by its module path, which is exactly
the unit the init rule and the plan's table speak of, and a second call of the same module shows
up as a second node (weight sharing is seen, not decomposed away); ``torch.export`` lowers
modules to aten ops (parameters become graph inputs, paths survive only in metadata), is slower
and needs a compiler stack. Both refuse Python control flow on tensor values; fx says so at
trace time, and the refusal names the line.

Reading rules (DESIGN.md section 5):

* weighted ops (``nn.Linear``, ``nn.Conv1d/2d/3d``, bias allowed) are edges; the first one that
  reads the input is the stem (its output is vertex 0), the one that produces the output is the
  readout (its input is the last vertex);
* merges (``+``, ``+=``, ``torch.add`` with alpha 1, ``sum([...])``) are vertices; a sum used
  only inside another sum is merged into it; zeros (``torch.zeros_like``) start an empty sum;
* elementwise activations, dropout, reshapes, pooling and global means pass through; an
  activation between a weighted op and a sum belongs to the edge (the reference layout);
* a value becomes a vertex of its own when a weighted op reads it, when it is used twice, when a
  non-linear op is applied to a sum, or when it passes an ``nn.Identity`` module (archscale's own
  DagNet marks its skip edges so; a value left unused becomes a dangling vertex);
* normalization (unless ``norm="ignore"``), attention and matmul between activations, products
  and gating, ``cat``/``stack``, slicing, weight sharing, mixed kernel sizes (unless
  ``kernel_size=``), in-place updates and untraceable control flow are refused with the node, the
  module path, the source line and the reason.
"""

from __future__ import annotations

import math
import operator
import re
import warnings
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DagError
from ..nn import blas

blas.ensure_strict()  # MKL's strict reproducible mode, before anything computes (see blas.py)

__all__ = ["NORM_MODES", "Capture", "Layer", "capture"]

NORM_MODES = ("error", "ignore")
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_MODULES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
                 nn.RMSNorm)
_ATTENTION_MODULES = (nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder, nn.TransformerDecoder,
                      nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
_ACT_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU,
                nn.PReLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
                nn.Softsign)
_PASS_MODULES = _ACT_MODULES + (
    nn.Softmax, nn.LogSoftmax, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.Flatten, nn.Unflatten, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d,
    nn.MaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_ACT_FUNCTIONS = {F.relu, torch.relu, F.relu_, F.relu6, F.gelu, F.silu, F.mish, F.leaky_relu, F.elu, F.celu,
                  F.selu, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, F.softsign, torch.tanh,
                  torch.sigmoid, F.tanh, F.sigmoid}
_PASS_FUNCTIONS = _ACT_FUNCTIONS | {
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.flatten, torch.reshape,
    torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose, torch.mean, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
    F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_ACT_METHODS = {"relu", "relu_", "tanh", "sigmoid"}
_PASS_METHODS = _ACT_METHODS | {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute",
                                "transpose", "contiguous", "mean", "softmax", "log_softmax", "clone",
                                "float", "type_as"}
_ADD = ({operator.add, operator.iadd, torch.add}, {"add", "__add__", "__radd__", "__iadd__"})
_ZEROS = ({torch.zeros_like, torch.zeros}, {"new_zeros"})
#: (functions, methods, why) of the refused operations, checked in this order.
_REFUSED: list[tuple[set, set, str]] = [
    ({operator.matmul, torch.matmul, torch.bmm, torch.mm, torch.einsum, torch.baddbmm,
      F.scaled_dot_product_attention}, {"matmul", "bmm", "mm", "__matmul__", "__rmatmul__"},
     "multiplies activations by activations (attention / matmul between activations); the paper's "
     "graphs only add weighted branches"),
    ({F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.normalize, F.rms_norm,
      F.local_response_norm}, set(), "normalizes the signal; the paper's analysis has no normalization "
     "layers (pass norm='ignore' to read it as a pass-through, an approximation)"),
    ({operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div, F.glu,
      torch.prod}, {"mul", "div", "__mul__", "__rmul__", "__truediv__", "__imul__", "__itruediv__"},
     "multiplies the signal (a product, gating or rescaling); the paper's graphs only add branches"),
    ({torch.cat, torch.concat, torch.concatenate, torch.stack, torch.hstack, torch.vstack, torch.dstack},
     {"cat"}, "concatenates signals; the paper's vertices sum their inputs, they do not concatenate"),
    ({operator.getitem, torch.chunk, torch.split, torch.unbind}, {"chunk", "split", "unbind", "__getitem__"},
     "slices or splits the signal; archscale reads whole feature maps only"),
    ({operator.sub, operator.isub, torch.sub, operator.neg}, {"sub", "__sub__", "__rsub__", "neg"},
     "subtracts signals; archscale reads merges that add (+, torch.add with alpha 1, sum)"),
    ({F.linear, F.conv1d, F.conv2d, F.conv3d, F.bilinear}, set(),
     "applies weights functionally; archscale reads weights from nn.Linear / nn.Conv modules"),
]
_TORCH_DIR = re.escape(str(__import__("pathlib").Path(torch.__file__).parent))


@dataclass
class Layer:
    """One weighted module of the captured model: where it sits in the graph and its fan-in."""

    path: str
    module: nn.Module
    role: str  # "stem" | "edge" | "readout" | "unused"
    src: int | None = None
    dst: int | None = None
    node: str | None = None
    post_act: bool = False

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


@dataclass
class Capture:
    """A module read as a DAG: the graph, its layers, and the traced module that computes it.

    ``vertex_nodes[v]`` names the fx node whose output is vertex ``v``'s value (the sum, or
    the weighted op of a one-edge vertex). ``arch`` is ``cnn`` when a convolution is a stem or
    edge, with ``kernel_size`` the q of eq. 9, else ``mlp``.
    """

    graph: Dag
    arch: str
    kernel_size: int | None
    layers: list[Layer]
    vertex_nodes: list[str]
    graph_module: fx.GraphModule
    notes: list[str] = field(default_factory=list)

    def layer(self, path: str) -> Layer:
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise ArchscaleError(f"no weighted module {path!r} in this model")


@dataclass(eq=False)
class _Val:
    """A signal while reading: the raw input, one weighted edge's output, or a (pending) sum."""

    kind: str  # "input" | "edge" | "sum"
    pos: int
    node: fx.Node
    layer: Layer | None = None
    src: _Val | None = None
    parts: list[_Val] = field(default_factory=list)
    uses: int = 0
    must: bool = False
    vertex: int | None = None


class _Tracer(fx.Tracer):
    """fx's tracer that also keeps subclasses of Linear/Conv as single (leaf) calls."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, WEIGHTED) or super().is_leaf_module(m, qualname)


# ---------------------------------------------------------------------------------------- locating
def _source_line(stack: str | None) -> str | None:
    """``file:line`` of the innermost frame outside torch in a stack trace text."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', stack or "")
    user = [(f, n) for f, n in frames if not re.match(_TORCH_DIR, f) and f != __file__]
    if not user:
        return None
    file, line = user[-1]
    if re.search(r"ipykernel_\d+[/\\]\d+\.py$", file):  # a notebook cell: its temporary file says nothing
        return f"line {line} of a notebook cell"
    return f"{file}:{line}"


def _where(node: fx.Node) -> str:
    if node.op == "call_module":
        path = str(node.target)
    else:
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack)[-1] if stack else ""
    line = _source_line(node.meta.get("stack_trace"))
    return f"node {node.name!r} in module {path or '(top level)'!r}" + (f" at {line}" if line else "")


def _refuse(node: fx.Node, why: str) -> ArchscaleError:
    return DagError(f"archscale cannot read this model: {_where(node)} {why}")


# ---------------------------------------------------------------------------------------- tracing
def _trace(model: nn.Module, example: torch.Tensor, stacks: bool = False) -> fx.GraphModule:
    """The traced module, shapes propagated; ``stacks`` records source lines (slower, for messages)."""
    import inspect

    concrete = {}
    params = list(inspect.signature(model.forward).parameters.values())
    for p in params[1:]:
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ArchscaleError(f"{type(model).__name__}.forward needs argument {p.name!r} besides the "
                                 f"input; archscale traces models that take one input tensor")
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            concrete[p.name] = p.default
    was_training = model.training
    model.eval()
    try:  # runs the model once: a clear error for a wrong input, and lazy modules get their shapes
        with torch.no_grad():
            model(example)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise ArchscaleError(f"{type(model).__name__} failed on the example input of shape "
                             f"{tuple(example.shape)}: {type(err).__name__}: {first}") from err
    finally:
        model.train(was_training)
    tracer = _Tracer()
    tracer.record_stack_traces = stacks
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as err:  # fx raises TraceError, TypeError, RuntimeError... for control flow
        import traceback

        line = _source_line("".join(traceback.format_tb(err.__traceback__)))
        raise ArchscaleError(
            f"torch.fx could not trace {type(model).__name__}" + (f" at {line}" if line else "")
            + f": {err}. archscale reads models whose structure does not depend on tensor values "
              f"(no if/while/len on tensors in forward)") from err
    gm = fx.GraphModule(model, graph)
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was_training)
    return gm


def _is_tensor(node: fx.Node) -> bool:
    return isinstance(node.meta.get("tensor_meta"), torch.fx.passes.shape_prop.TensorMetadata)


# ---------------------------------------------------------------------------------------- reading
class _Reader:
    """Walks the traced graph once, turning nodes into signals (``_Val``), then resolves vertices."""

    def __init__(self, gm: fx.GraphModule, norm: str):
        self.gm, self.norm = gm, norm
        self.env: dict[fx.Node, _Val | None] = {}
        self.acted: set[fx.Node] = set()  # nodes whose edge output went through an activation
        self.layers: list[Layer] = []
        self.stem: _Val | None = None
        self.readout: _Val | None = None
        self.notes: list[str] = []
        self.called: dict[int, fx.Node] = {}

    def signals(self, node: fx.Node) -> list[tuple[fx.Node, _Val]]:
        out = []
        for arg in list(node.args) + list(node.kwargs.values()):
            for a in (arg if isinstance(arg, (list, tuple)) else [arg]):
                if isinstance(a, fx.Node) and (v := self.env.get(a)) is not None:
                    out.append((a, v))
        return out

    def run(self) -> None:
        for pos, node in enumerate(self.gm.graph.nodes):
            self.env[node] = self.read(pos, node)

    def read(self, pos: int, node: fx.Node) -> _Val | None:
        if node.op == "placeholder":
            first = next(n for n in self.gm.graph.nodes if n.op == "placeholder")
            return _Val("input", pos, node) if node is first else None
        if node.op == "get_attr":
            return None
        if node.op == "output":
            self.output(node)
            return None
        sig = self.signals(node)
        if node.op == "call_module":
            return self.module_call(pos, node, sig)
        fn, meth = (node.target, None) if node.op == "call_function" else (None, node.target)
        if fn in _ZEROS[0] or meth in _ZEROS[1]:
            return _Val("sum", pos, node)
        if not sig:  # shapes, sizes and constants: no signal flows through them
            return None
        if fn in _ADD[0] or meth in _ADD[1]:
            return self.add(pos, node, sig)
        if fn in _PASS_FUNCTIONS or meth in _PASS_METHODS:
            return self.passthrough(node, sig, fn in _ACT_FUNCTIONS or meth in _ACT_METHODS)
        for functions, methods, why in _REFUSED:
            if fn in functions or meth in methods:
                if why.startswith("normalizes") and self.norm == "ignore":
                    return self.passthrough(node, sig, False, norm=True)
                raise _refuse(node, why)
        if not _is_tensor(node):
            return None  # x.size(), x.shape, x.dim(): read the signal's shape only
        if isinstance(meth, str) and meth.endswith("_"):
            raise _refuse(node, f"updates a tensor in place ({meth}); write out = out + x instead")
        name = getattr(fn, "__name__", None) or str(meth)
        raise _refuse(node, f"calls {name!r}, which archscale does not know how to read; it reads weighted "
                            f"ops, sums, activations, dropout, reshapes and pooling")

    # -- the kinds of node
    def module_call(self, pos: int, node: fx.Node, sig) -> _Val | None:
        mod = self.gm.get_submodule(str(node.target))
        path = str(node.target)
        if isinstance(mod, WEIGHTED):
            return self.weighted(pos, node, mod, path, sig)
        if not sig:
            return None
        if isinstance(mod, nn.Identity):
            val = self.one_signal(node, sig)
            if val.kind != "input":
                val.must = True
            return val
        if isinstance(mod, _PASS_MODULES):
            return self.passthrough(node, sig, isinstance(mod, _ACT_MODULES))
        if isinstance(mod, _NORM_MODULES):
            if self.norm == "ignore":
                return self.passthrough(node, sig, False, norm=True)
            raise _refuse(node, f"is a {type(mod).__name__}; the paper's analysis has no normalization "
                                f"layers (pass norm='ignore' to read it as a pass-through, an approximation)")
        if isinstance(mod, _ATTENTION_MODULES):
            raise _refuse(node, f"is a {type(mod).__name__}: attention multiplies activations by "
                                f"activations, outside the paper's graphs")
        raise _refuse(node, f"is a {type(mod).__name__}, which archscale does not know how to read; it "
                            f"reads Linear/Conv, activations, dropout, pooling, flatten and Identity")

    def one_signal(self, node: fx.Node, sig) -> _Val:
        if len({id(v) for _, v in sig}) != 1 or len(sig) != 1:
            raise _refuse(node, "combines several signals in one op; the paper's vertices only add them")
        return sig[0][1]

    def weighted(self, pos: int, node: fx.Node, mod: nn.Module, path: str, sig) -> _Val:
        if id(mod) in self.called:
            first = self.called[id(mod)].name
            raise _refuse(node, f"calls {path!r} a second time (first at node {first!r}): weight sharing is "
                                f"outside the paper's graphs, where every edge has its own weights")
        self.called[id(mod)] = node
        src = self.one_signal(node, sig)
        layer = Layer(path, mod, "edge", node=node.name)
        self.layers.append(layer)
        val = _Val("edge", pos, node, layer=layer, src=src)
        if src.kind == "input":
            if self.stem is not None:
                assert self.stem.layer is not None
                raise _refuse(node, f"reads the raw input, as the stem {self.stem.layer.path!r} does "
                                    f"already; archscale needs one stem (the first weighted op on the input)")
            layer.role, val.must, self.stem = "stem", True, val
        else:
            src.must = True
        return val

    def passthrough(self, node: fx.Node, sig, activation: bool, norm: bool = False) -> _Val:
        val = self.one_signal(node, sig)
        if norm:
            msg = (f"{_where(node)}: normalization read as a pass-through (norm='ignore'); the init and "
                   f"LR rules do not account for it")
            warnings.warn(msg, stacklevel=4)
            self.notes.append(msg)
        if val.kind == "sum":
            val.must = True  # a non-linear op on a sum: the sum is a vertex of its own
        elif val.kind == "edge" and (activation or sig[0][0] in self.acted):
            self.acted.add(node)
        return val

    def add(self, pos: int, node: fx.Node, sig) -> _Val:
        positional = node.args[2] if node.op == "call_function" and len(node.args) > 2 else 1
        alpha = node.kwargs.get("alpha", positional)
        if alpha != 1:
            raise _refuse(node, f"adds with alpha={alpha!r}; archscale reads plain sums (alpha 1)")
        for arg in list(node.args[:2]) + ([node.kwargs["other"]] if "other" in node.kwargs else []):
            if not (isinstance(arg, fx.Node) and self.env.get(arg) is not None) and arg not in (0, 0.0):
                shown = arg.name if isinstance(arg, fx.Node) else arg
                raise _refuse(node, f"adds {shown!r}, which is not a signal: a constant shift is outside "
                                    f"the paper's graphs")
        parts = []
        for arg_node, val in sig:
            if val.kind == "input":
                raise _refuse(node, "adds the raw input; archscale needs every path to start at the stem")
            if val.kind == "edge" and arg_node in self.acted:
                assert val.layer is not None
                val.layer.post_act = True
            val.uses += 1
            parts.append(val)
        return _Val("sum", pos, node, parts=parts)

    def output(self, node: fx.Node) -> None:
        out = node.args[0]
        if not isinstance(out, fx.Node):
            raise _refuse(node, f"returns {type(out).__name__}; archscale reads models with one output "
                                f"tensor")
        val = self.env.get(out)
        if val is None or val.kind != "edge":
            raise _refuse(node, "is not produced by a weighted op; archscale needs a readout "
                                "(a Linear/Conv that produces the output)")
        assert val.layer is not None and val.src is not None  # an edge has both
        if val is self.stem:
            raise ArchscaleError(f"the model has one weighted op ({val.layer.path!r}); archscale needs a "
                                 f"stem and a readout (input -> Linear/Conv -> ... -> Linear/Conv -> output)")
        if val.uses or val.must:
            raise _refuse(out, "is the output but is also used inside the network; archscale reads the "
                               "readout's output as the model's output only")
        val.layer.role, val.src.must, self.readout = "readout", True, val

    # -- resolution into a Dag
    def is_vertex(self, val: _Val) -> bool:
        return val.kind != "input" and val is not self.readout and (val.must or val.uses != 1)

    def resolve(self) -> tuple[list[_Val], list[tuple[int, int, str]]]:
        """Vertices in topological order (stem first) and the edges between them.

        When the readout's input is not the last vertex (values computed later do not reach the
        output, or the readout reads the stem itself), a last vertex holding one skip from it is
        added: the output vertex of the paper's graphs.
        """
        vals = [v for v in dict.fromkeys(self.env.values()) if v is not None and self.is_vertex(v)]
        vals.sort(key=lambda v: (v is not self.stem, v.pos))
        for i, v in enumerate(vals):
            v.vertex = i
        edges: list[tuple[int, int, str]] = []
        for v in vals[1:]:
            assert v.vertex is not None
            self.terms(v, v.vertex, edges, top=True)
        assert self.readout is not None and self.readout.src is not None  # set by output()
        assert self.readout.src.vertex is not None  # the readout's input is a vertex (must)
        if vals[-1] is not self.readout.src or len(vals) == 1:
            edges.append((self.readout.src.vertex, len(vals), "skip"))
            vals.append(self.readout.src)
        return vals, edges

    def terms(self, val: _Val, dst: int, edges: list, top: bool = False) -> None:
        if val.vertex is not None and not top:
            edges.append((val.vertex, dst, "skip"))
        elif val.kind == "edge":
            assert val.layer is not None and val.src is not None
            val.layer.src, val.layer.dst = val.src.vertex, dst
            edges.append((val.src.vertex, dst, "block"))
        else:
            for part in val.parts:
                self.terms(part, dst, edges)


def _kernel(layers: list[Layer], override: int | None) -> int | None:
    """The q of eq. 9: the kernel side of the conv edges (of the stem when there are none)."""
    if override is not None:
        return validate.kernel_size(override, "kernel_size")
    convs = [la for la in layers if la.role == "edge" and la.kernel is not None] or \
            [la for la in layers if la.role == "stem" and la.kernel is not None]
    sizes = {la.kernel for la in convs if la.kernel is not None}
    if len(sizes) > 1 or any(len(set(k)) > 1 for k in sizes):
        listed = ", ".join(f"{la.path} {'x'.join(map(str, la.kernel or ()))}" for la in convs)
        raise ArchscaleError(f"the convolutions have mixed kernel sizes ({listed}); eq. 9 has one kernel "
                             f"size q: pass kernel_size= to choose it")
    return sizes.pop()[0] if sizes else None


def capture(model: nn.Module, example_input: torch.Tensor, *, norm: str = "error",
            kernel_size: int | None = None) -> Capture:
    """Read ``model`` (run on ``example_input``) as archscale's graph; refuse what it cannot read."""
    if not isinstance(model, nn.Module):
        raise ArchscaleError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise ArchscaleError(f"example_input must be one tensor (a batch the model accepts), "
                             f"got {type(example_input).__name__}")
    validate.choice(norm, "norm", NORM_MODES)
    if isinstance(model, WEIGHTED):
        raise ArchscaleError(f"the model is a single {type(model).__name__}; archscale needs a stem and a "
                             f"readout (input -> Linear/Conv -> ... -> Linear/Conv -> output)")
    gm = _trace(model, example_input)
    reader = _Reader(gm, norm)
    try:
        reader.run()
    except DagError:  # trace again with source lines, so that the refusal names the line
        _Reader(_trace(model, example_input, stacks=True), norm).run()
        raise
    if reader.stem is None:
        raise ArchscaleError("no weighted op reads the input; archscale needs a stem (a Linear/Conv on "
                             "the input)")
    vals, edges = reader.resolve()
    layers = reader.layers
    tied: dict[int, str] = {}
    for layer in layers:
        first = tied.setdefault(id(layer.module.weight), layer.path)
        if first != layer.path:
            raise ArchscaleError(f"archscale cannot read this model: modules {first!r} and {layer.path!r} "
                                 f"share one weight tensor (weight sharing is outside the paper's graphs)")
    called = {id(la.module) for la in layers}
    for path, mod in model.named_modules():
        if isinstance(mod, WEIGHTED) and id(mod) not in called:
            layers.append(Layer(path, mod, "unused"))
    notes = list(reader.notes)
    arch = "cnn" if any(la.kernel is not None for la in layers if la.role in ("stem", "edge")) else "mlp"
    q = _kernel(layers, kernel_size) if arch == "cnn" else None
    if arch == "mlp" and kernel_size is not None:
        raise ArchscaleError("kernel_size applies to convolutional models only; this one has no conv stem "
                             "or edge")
    nodes = [v.node.name for v in vals]
    graph = Dag.from_edges(len(vals), edges, ops=arch)
    assert reader.readout is not None and reader.readout.layer is not None and reader.stem.layer is not None
    reader.readout.layer.src, reader.stem.layer.dst = graph.output, 0
    if graph == Dag.parse("1", ops=arch):
        notes.append("no weighted op between the stem and the readout: the graph is the base '1' "
                     "(one path of depth 3)")
    post = [la.path for la in layers if la.post_act]
    if post:
        shown = ", ".join(post[:4]) + (", ..." if len(post) > 4 else "")
        notes.append(f"{len(post)} edge(s) apply the activation after their weights and before the sum "
                     f"(the reference code's layout: {shown}); their vertices sum post-activations, whose "
                     f"positive means add cross terms (about 1 + (d-1)/pi at in-degree d), which the "
                     f"predicted moments (paper layout) leave out")
    return Capture(graph=graph, arch=arch, kernel_size=q, layers=layers, vertex_nodes=nodes, graph_module=gm,
                   notes=notes)
