"""Tracing a user's module with concrete shapes: ``torch.fx`` proxies that carry the example's values.

:func:`trace` records the module as a :class:`torch.fx.GraphModule` while running it on the example
input: every proxy also holds the value its operation gives on that input, so Python code that needs
a number gets one. ``int(x.size(1) * ratio)``, ``N, C, H, W = x.size()``, ``len(x)``, ``range(x.dim())``
and ``if x.size(1) != planes`` work; sizes stay nodes of the graph where they are used as arguments
(``x.view(x.size(0), -1)`` still runs on another batch size). Every node's ``meta`` gets
``tensor_meta`` (as :class:`~torch.fx.passes.shape_prop.ShapeProp` would write it, without a second
run) and, for a size or other value that depends on shapes only, ``static`` (the number itself).

What stays refused is what depends on the *values* in a tensor: ``if x.sum() > 0``, ``int(x.max())``,
``x.item()`` used as a number. The refusal is one line that names the module being traced, the
construct and the source line.

Why fx with concrete values rather than ``torch.export``: fx keeps every ``nn.Linear``/``nn.Conv`` as
one ``call_module`` node named by its module path, the unit the init rule and the plan's table speak
of, and a second call of the same module is a second node (weight sharing is seen, not decomposed
away); ``torch.export`` lowers modules to aten ops (parameters become graph inputs and module paths
survive only in metadata), takes seconds per model where this takes milliseconds, and needs the
compiler stack. Both specialize shapes to the example; both refuse control flow on tensor values.
"""

from __future__ import annotations

import inspect
import operator
import re
import traceback
from pathlib import Path
from typing import Any, cast

import torch
from torch import fx, nn
from torch.fx.node import map_aggregate
from torch.fx.passes.shape_prop import TensorMetadata, _extract_tensor_metadata

from ..core.errors import ArchscaleError

__all__ = ["WEIGHTED", "is_tensor", "module_path", "short_where", "source_line", "trace", "where"]

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TORCH_DIR = re.escape(str(Path(torch.__file__).parent))
#: Methods and attributes whose value is a property of the shape (or type), not of the data.
_SHAPE_METHODS = {"size", "dim", "ndimension", "numel", "nelement", "element_size", "get_device",
                  "is_contiguous", "is_floating_point", "is_complex"}
_SHAPE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "layout", "requires_grad"}


_module_call = getattr(fx._symbolic_trace, "_orig_module_call", nn.Module.__call__)


class _Untraceable(Exception):
    """A construct that needs the value of a tensor (not its shape) while tracing."""


def _value_of(tracer: _ConcreteTracer, a: Any) -> Any:
    return map_aggregate(a, lambda x: tracer.values[x.node] if isinstance(x, fx.Proxy) else x)


class _Concrete(fx.Proxy):
    """A proxy that also holds its value on the example input (``tracer.values[node]``)."""

    tracer: _ConcreteTracer

    @property
    def value(self) -> Any:
        return self.tracer.values[self.node]

    def _static(self, what: str) -> Any:
        if self.node not in self.tracer.static:
            raise _Untraceable(f"{what} of a tensor's values (the structure would depend on the data)")
        return self.value

    def __getattr__(self, k: str) -> Any:
        if k.startswith("__") or k in ("tracer", "node", "root", "attr", "_node"):
            raise AttributeError(k)
        return _ConcreteAttribute(self, k)

    def __int__(self) -> int:
        return int(self._static("int()"))

    def __float__(self) -> float:
        return float(self._static("float()"))

    def __index__(self) -> int:
        return operator.index(self._static("an index"))

    def __len__(self) -> int:
        value = self.value
        if isinstance(value, torch.Tensor):
            return len(value)  # the batch size: a shape
        return len(self._static("len()"))

    def __iter__(self):
        value = self.value
        n = len(value) if isinstance(value, (torch.Tensor, tuple, list)) else len(self._static("iteration"))
        return iter([cast(Any, self)[i] for i in range(n)])


class _ConcreteAttribute(fx.proxy.Attribute, _Concrete):
    """``x.size``/``x.shape`` with the example's value; a method stays lazy until called (fx's rule)."""


class _ConcreteTracer(fx.Tracer):
    """fx's tracer that keeps Linear/Conv subclasses whole and evaluates every node on the example."""

    def __init__(self, example: torch.Tensor, first: str, defaults: dict[str, Any]):
        super().__init__()
        self.example, self.first, self.defaults = example, first, defaults
        self.values: dict[fx.Node, Any] = {}
        self.static: set[fx.Node] = set()
        self.evaluating = False  # running an op on concrete values: fx's patches must step aside

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        return attr_val if self.evaluating else super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, m, forward, args, kwargs):
        return forward(*args, **kwargs) if self.evaluating else super().call_module(m, forward, args, kwargs)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, WEIGHTED) or super().is_leaf_module(m, qualname)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Concrete(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        if obj.node not in self.static:
            raise _Untraceable("an if/while/and/or/assert on a tensor's values (data-dependent control flow)")
        return bool(self.values[obj.node])

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = proxy.node
        self.evaluating = True
        try:
            value = self._evaluate(kind, target, _value_of(self, args), _value_of(self, kwargs))
        finally:
            self.evaluating = False
        self.values[node] = value
        parents = list(node.all_input_nodes)
        if (kind == "call_method" and target in _SHAPE_METHODS) or \
                (kind == "call_function" and target is getattr and node.args[1] in _SHAPE_ATTRS) or \
                (kind == "call_function" and parents and not isinstance(value, torch.Tensor)
                 and all(p in self.static for p in parents)):
            self.static.add(node)
            node.meta["static"] = value
        if isinstance(value, torch.Tensor) or (isinstance(value, (tuple, list)) and value
                                                and all(isinstance(v, torch.Tensor) for v in value)):
            node.meta["tensor_meta"] = map_aggregate(
                value, lambda v: _extract_tensor_metadata(v) if isinstance(v, torch.Tensor) else v)
        return proxy

    def _evaluate(self, kind: str, target: Any, a: Any, kw: Any) -> Any:
        if kind == "placeholder":
            name = str(target)
            if name == self.first:
                return self.example
            return self.defaults.get(name.lstrip("*"), a[0] if a else None)
        if kind == "get_attr":
            value = self.root
            for part in str(target).split("."):
                value = getattr(value, part)
            return value
        if kind == "call_module":
            return _module_call(self.root.get_submodule(str(target)), *a, **kw)  # past fx's patched __call__
        if kind == "call_method":
            if target in ("item", "tolist"):
                raise _Untraceable(f".{target}() of a tensor (the structure would depend on the data)")
            return getattr(a[0], str(target))(*a[1:], **kw)
        return target(*a, **kw)


# ---------------------------------------------------------------------------------------- locating
def source_line(stack: str | None) -> str | None:
    """``file:line`` of the innermost frame outside torch and archscale in a stack trace text."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', stack or "")
    here = str(Path(__file__).parent)
    user = [(f, n) for f, n in frames if not re.match(_TORCH_DIR, f) and not f.startswith(here)]
    if not user:
        return None
    file, line = user[-1]
    if re.search(r"ipykernel_\d+[/\\]\d+\.py$", file):  # a notebook cell: its temporary file says nothing
        return f"line {line} of a notebook cell"
    return f"{Path(file).name}:{line}"


def module_path(node: fx.Node) -> str:
    """The module a node belongs to: its own path for a module call, else the innermost traced one."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def where(node: fx.Node) -> str:
    """``node 'x' in module 'a.b' at file.py:12`` (the line once the graph was traced with stacks)."""
    line = source_line(node.meta.get("stack_trace"))
    return (f"node {node.name!r} in module {module_path(node) or '(top level)'!r}"
            + (f" at {line}" if line else ""))


def short_where(node: fx.Node) -> str:
    """The module path (or the node's name at the top level) and the line: for lists of places."""
    line = source_line(node.meta.get("stack_trace"))
    return (module_path(node) or node.name) + (f" ({line})" if line else "")


def is_tensor(node: fx.Node) -> bool:
    return isinstance(node.meta.get("tensor_meta"), TensorMetadata)


# ---------------------------------------------------------------------------------------- tracing
def _one_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:160]


def trace(model: nn.Module, example: torch.Tensor, stacks: bool = False) -> fx.GraphModule:
    """``model`` traced on ``example`` (in eval mode) with every node's value's metadata recorded.

    ``stacks`` records source lines (slower; used again to word a refusal). Raises one line naming
    the class, the module being traced, the construct and the source line when tracing fails.
    """
    params = list(inspect.signature(model.forward).parameters.values())
    defaults = {}
    for p in params[1:]:
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ArchscaleError(f"{type(model).__name__}.forward needs argument {p.name!r} besides the "
                                 f"input; archscale traces models that take one input tensor")
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            defaults[p.name] = p.default
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # a clear error for a wrong input, and lazy modules get their shapes
            try:
                model(example)
            except Exception as err:
                raise ArchscaleError(f"{type(model).__name__} failed on the example input of shape "
                                     f"{tuple(example.shape)}: {type(err).__name__}: {_one_line(err)}"
                                     ) from err
            tracer = _ConcreteTracer(example, params[0].name if params else "x", defaults)
            tracer.record_stack_traces = stacks
            try:
                graph = tracer.trace(model, concrete_args=defaults or None)
            except Exception as err:
                path = next(reversed(tracer.module_stack.values()))[0] if tracer.module_stack else ""
                line = source_line("".join(traceback.format_tb(err.__traceback__)))
                what = str(err) if isinstance(err, _Untraceable) else \
                    f"{type(err).__name__}: {_one_line(err)}"
                raise ArchscaleError(
                    f"torch.fx could not trace {type(model).__name__}: {what}, in module "
                    f"{path or '(top level)'!r}" + (f" at {line}" if line else "")
                    + "; archscale reads models whose structure depends on shapes, not on tensor values"
                ) from err
    finally:
        model.train(was_training)
    return fx.GraphModule(model, graph)
