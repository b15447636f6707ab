"""Reading a traced module node by node: signals, their pieces and chains, vertices and edges.

The walk behind :func:`archscale.module.capture.capture` (its docstring states the reading rules).
Each node becomes a signal (:class:`_Sig`): pieces ``(value, elementwise chain)``, where a value is
the raw input, one weighted op's output or a sum (:class:`_Val`), with labels telling the pieces'
channels apart (:mod:`archscale.module.pieces`). A refusal is collected, not raised, so that the one
line reports how many places block and where; :meth:`Reader.resolve`
(:mod:`archscale.module.resolve`) then numbers the vertices and lists each one's incoming edges.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from typing import Any, cast

import torch
from torch import fx, nn

from ..core.errors import ArchscaleError
from . import ops, pieces
from .resolve import Resolution, _Sig, _Val
from .trace import WEIGHTED, is_tensor, module_path
from .weighted import Layer, LayerInput

__all__ = ["GATE_ACTIVATIONS", "Reader"]

GATE_ACTIVATIONS = {"sigmoid", "hardsigmoid", "tanh"}


class _Refused(Exception):
    pass


def _is_number(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _coverage(sig: list[tuple[fx.Node, _Sig]], mod: nn.Module) -> float:
    """The share of a convolution's kernel taps inside its input (:func:`pieces.coverage`; 1 for a
    Linear layer or an input of unknown shape)."""
    shape = sig[0][0].meta.get("tensor_meta")
    spatial = tuple(shape.shape[2:]) if shape is not None and not isinstance(mod, nn.Linear) else ()
    return pieces.coverage(spatial, mod) if spatial else 1.0


# ---------------------------------------------------------------------------------------- reading
class Reader(Resolution):
    """Walks the traced graph once, turning nodes into signals, then resolves vertices and edges."""

    def __init__(self, gm: fx.GraphModule, norm: str, gating: str):
        self.gm, self.norm, self.gating = gm, norm, gating
        self.env: dict[fx.Node, Any] = {}
        self.vals: list[_Val] = []
        self.layers: list[Layer] = []
        self.stem: _Val | None = None
        self.readout: _Val | None = None
        self.out_sig: _Sig | None = None
        self.called: dict[int, fx.Node] = {}
        self.seen: Counter[str] = Counter()
        self.refused: dict[str, list[fx.Node]] = {}
        self.reasons: dict[str, str] = {}
        self.counts: Counter[str] = Counter()  # what was read, for the notes
        self.places: dict[str, list[str]] = {}
        self.closing: list[tuple[nn.Module, int]] = []  # renormalizing modules closing an edge, its target

    # -- bookkeeping
    def refuse(self, node: fx.Node, kind: str, why: str):
        self.refused.setdefault(kind, []).append(node)
        self.reasons.setdefault(kind, why)
        return _Refused()

    def count(self, kind: str, node: fx.Node) -> None:
        self.counts[kind] += 1
        self.places.setdefault(kind, []).append(module_path(node) or node.name)

    def category(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{type(self.gm.get_submodule(str(node.target))).__name__} modules"
        name = getattr(node.target, "__name__", None) or str(node.target)
        return f"{name!r} ops"

    def new(self, kind: str, pos: int, node: fx.Node, **kw) -> _Val:
        val = _Val(kind, pos, node, **kw)
        self.vals.append(val)
        return val

    def signals(self, node: fx.Node) -> list[tuple[fx.Node, _Sig]]:
        out = []
        for arg in list(node.args) + list(node.kwargs.values()):
            for a in (arg if isinstance(arg, (list, tuple)) else [arg]):
                if isinstance(a, fx.Node) and isinstance(self.env.get(a), _Sig):
                    out.append((a, self.env[a]))
        return out

    def run(self) -> None:
        for pos, node in enumerate(self.gm.graph.nodes):
            self.seen[self.category(node)] += 1
            try:
                self.env[node] = self.read(pos, node)
            except _Refused:
                self.env[node] = self.carry_on(pos, node)
            except pieces.Mixed as err:
                self.refuse(node, "mixed", f"move concatenated or sliced channels in a way archscale cannot "
                                           f"follow ({err})")
                self.env[node] = self.carry_on(pos, node)

    def readout_pools(self) -> set[str]:
        """The pooling ops between the last vertex and the readout (a global average pool): not inside."""
        if self.readout is None:
            return set()
        vertices = {v.node for v in self.vals if v.vertex is not None}
        out, todo = set(), list(self.readout.node.all_input_nodes)
        while todo:
            n = todo.pop()
            if n in vertices or n.op == "placeholder":
                continue
            if n.op != "get_attr" and ops.structural_kind(
                    n, self.gm.get_submodule(str(n.target)) if n.op == "call_module" else None) == "pool":
                out.add(module_path(n) or n.name)
            todo.extend(n.all_input_nodes)
        return out

    def carry_on(self, pos: int, node: fx.Node) -> _Sig | None:
        """After a refusal, what the walk goes on with (so that later places of the same kind are
        counted, and nothing downstream is refused for the refusal's sake): the node's one-piece input
        when the shape is kept, else a fresh value of unknown origin."""
        if node.op == "output":
            return None
        for arg_node, s in self.signals(node):
            if s.labels is None and is_tensor(node) and is_tensor(arg_node) and \
                    tuple(arg_node.meta["tensor_meta"].shape) == tuple(node.meta["tensor_meta"].shape):
                return s
        return _Sig(((self.new("sum", pos, node), ()),), node)

    # -- one node
    def read(self, pos: int, node: fx.Node) -> Any:
        if node.op == "placeholder":
            first = next(n for n in self.gm.graph.nodes if n.op == "placeholder")
            return _Sig(((self.new("input", pos, node), ()),), node) if node is first else None
        if node.op == "get_attr" or "static" in node.meta:
            return None  # a parameter, or a shape: no signal flows through it
        if node.op == "output":
            return self.output(node)
        mod = self.gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        if isinstance(mod, WEIGHTED):
            return self.weighted(pos, node, mod)
        fn, meth = (node.target, None) if node.op == "call_function" else (None, node.target)
        if fn in ops.ZEROS[0] or meth in ops.ZEROS[1]:
            return _Sig(((self.new("sum", pos, node), ()),), node)
        if node.op == "call_function" and fn is operator.getitem and \
                isinstance(self.env.get(node.args[0]), tuple):  # type: ignore[arg-type]
            return self.env[node.args[0]][node.args[1]]  # type: ignore[index]
        sig = self.signals(node)
        if not sig:
            return None  # shapes, sizes and constants: no signal flows through them
        for functions, methods, modules, kind, why in ops.REFUSED:
            if fn in functions or meth in methods or (mod is not None and bool(modules)
                                                      and isinstance(mod, modules)):
                raise self.refuse(node, kind, why)
        if mod is not None and isinstance(mod, nn.Identity):
            for val, _ in sig[0][1].pieces:
                val.must = val.must or val.kind != "input"
            return sig[0][1]
        op = ops.activation(node, mod) if mod is not None else ops.activation(node)
        if op is not None:
            return self.elementwise(node, sig, op)
        if (mod is not None and isinstance(mod, ops.DROPOUT[0])) or fn in ops.DROPOUT[1]:
            return self.one_signal(node, sig)
        if (mod is not None and isinstance(mod, ops.NORM_MODULES)) or fn in ops.NORM_FUNCTIONS:
            return self.normalization(node, sig, mod)
        if fn in ops.ADD[0] or meth in ops.ADD[1]:
            return self.add(pos, node, sig)
        if fn in ops.SUB[0] or meth in ops.SUB[1] or fn in ops.NEG[0] or meth in ops.NEG[1]:
            return self.subtract(pos, node, sig)
        if fn in ops.MUL[0] or meth in ops.MUL[1] or fn in ops.DIV[0] or meth in ops.DIV[1]:
            return self.product(pos, node, sig, divide=fn in ops.DIV[0] or meth in ops.DIV[1])
        moved = ops.structural_kind(node, mod)
        if moved is not None:
            return self.structural(node, sig, moved, mod)
        if mod is not None:
            raise self.refuse(node, f"module {type(mod).__name__}",
                              f"are {type(mod).__name__} modules, which archscale does not read")
        if "tensor_meta" not in node.meta:
            return None  # a number or object computed from a signal's type: no signal
        if isinstance(meth, str) and meth.endswith("_"):
            raise self.refuse(node, "inplace", f"update a tensor in place ({meth}); write out = out + x "
                                               "instead")
        name = getattr(fn, "__name__", None) or str(meth)
        raise self.refuse(node, f"call {name}", f"call {name!r}, which archscale does not know how to read")

    # -- the kinds of node
    def one_signal(self, node: fx.Node, sig: list[tuple[fx.Node, _Sig]]) -> _Sig:
        if not sig and self.refused:  # downstream of a refusal: nothing new to say
            raise _Refused()
        if len({id(s) for _, s in sig}) != 1:
            raise self.refuse(node, "combine", "combine several signals in one op; vertices only add them")
        return sig[0][1]

    def elementwise(self, node: fx.Node, sig, op: tuple, norm: nn.Module | None = None) -> _Sig:
        s = self.one_signal(node, sig)
        if op[0] == "act":
            self.count("act " + op[1], node)
        return _Sig(tuple((v, c + (op,)) for v, c in s.pieces), node, s.labels,
                    s.norms + ((norm,) if norm is not None else ()))

    def normalization(self, node: fx.Node, sig, mod: nn.Module | None) -> _Sig:
        name = type(mod).__name__ if mod is not None else getattr(node.target, "__name__", "norm")
        if self.norm == "error":
            raise self.refuse(node, "norm", "normalize the signal; pass norm='pass-through' or 'renormalize' "
                                            "to read them (see capture's documentation)")
        self.count(f"norm {name}", node)
        if self.norm == "renormalize":
            return self.elementwise(node, sig, ("renorm", *ops.norm_affine(mod)), mod)
        return self.one_signal(node, sig)

    def weighted(self, pos: int, node: fx.Node, mod: nn.Module) -> _Sig:
        path = str(node.target)
        if id(mod) in self.called:
            raise self.refuse(node, "shared", f"call a module a second time (first at node "
                                              f"{self.called[id(mod)].name!r}): weight sharing is outside "
                                              f"the paper's graphs")
        self.called[id(mod)] = node
        sig = self.signals(node)
        src = self.one_signal(node, sig)
        if src.labels is not None and int(getattr(mod, "groups", 1)) > 1:
            per_channel = pieces.channel_labels(src.labels, 1)
            owner = pieces.group_owners(per_channel, int(getattr(mod, "groups", 1)))
            if owner is not None:
                return self.split_groups(pos, node, mod, src, owner, sig)
        layer = Layer(path, mod, "edge", node=node.name)
        self.layers.append(layer)
        val = self.new("edge", pos, node, layer=layer, src=src)
        if any(v.kind == "input" for v, _ in src.pieces):
            if len(src.pieces) > 1:
                raise self.refuse(node, "input cat", "concatenate the raw input with other signals")
            if self.stem is not None:
                assert self.stem.layer is not None
                raise self.refuse(node, "stems", f"read the raw input, as the stem {self.stem.layer.path!r} "
                                                 f"does already; archscale needs one stem")
            layer.role, val.must, self.stem = "stem", True, val
        else:
            for v, _ in src.pieces:
                v.readers.append(val)
        weight = cast(torch.Tensor, mod.weight)
        area = math.prod(weight.shape[2:])
        if src.labels is None:
            val.inputs = [(0, int(weight.shape[1]), int(weight.shape[1] * area), None)]
        else:
            per_channel = pieces.channel_labels(src.labels, -1 if isinstance(mod, nn.Linear) else 1)
            groups = pieces.input_groups(per_channel, tuple(weight.shape), int(getattr(mod, "groups", 1)))
            val.inputs = [(p, ch, ch * area, mask) for p, (ch, mask) in sorted(groups.items())]
            self.count("cat read", node)
        if layer.depthwise:
            self.count("depthwise", node)
        cover = _coverage(sig, mod)
        layer.inputs = [LayerInput(None, (), fan, ch, mask, cover) for _, ch, fan, mask in val.inputs]
        return _Sig(((val, ()),), node)

    def split_groups(self, pos: int, node: fx.Node, mod: nn.Module, src: _Sig, owner: torch.Tensor,
                     sig) -> _Sig:
        """A grouped conv each of whose groups reads channels of one piece only (a depthwise conv after a
        concatenation or a channel shuffle): one edge per piece, each with its own output vertex, so the
        output is again a concatenation of pieces."""
        weight = cast(torch.Tensor, mod.weight)
        out_ch, per_group = int(weight.shape[0]), int(weight.shape[1])
        row_owner = owner.repeat_interleave(out_ch // owner.numel())
        cover = _coverage(sig, mod)
        fan = per_group * math.prod(weight.shape[2:])
        parts: list[tuple[_Val, tuple]] = []
        for piece in row_owner.unique().tolist():
            rows = (row_owner == piece).nonzero().flatten()
            mask = torch.zeros(tuple(weight.shape), dtype=torch.bool)
            mask[rows] = True
            layer = Layer(str(node.target), mod, "edge", node=node.name)
            self.layers.append(layer)
            val = self.new("edge", pos, node, layer=layer, src=src, rows=rows)
            src.pieces[int(piece)][0].readers.append(val)
            val.inputs = [(int(piece), per_group, fan, mask)]
            layer.inputs = [LayerInput(None, (), fan, per_group, mask, cover)]
            parts.append((val, ()))
        self.count("group split", node)
        if layer.depthwise:
            self.count("depthwise", node)
        meta = node.meta["tensor_meta"]
        index = {p: i for i, p in enumerate(row_owner.unique().tolist())}
        per_row = torch.tensor([index[int(p)] for p in row_owner], dtype=torch.float64)
        labels = per_row.view(1, -1, *([1] * (len(meta.shape) - 2))).expand(tuple(meta.shape)).clone()
        return _Sig(tuple(parts), node, labels)

    def add(self, pos: int, node: fx.Node, sig, negate_second: bool = False) -> _Sig:
        positional = node.args[2] if node.op == "call_function" and len(node.args) > 2 else 1
        alpha = node.kwargs.get("alpha", positional)
        if not _is_number(alpha):
            raise self.refuse(node, "alpha", "add with a non-constant alpha")
        args = list(node.args[:2]) + ([node.kwargs["other"]] if "other" in node.kwargs else [])
        coef = [1.0, float(cast(float, alpha)) * (-1.0 if negate_second else 1.0)]
        signal = {i for i, a in enumerate(args)
                  if isinstance(a, fx.Node) and isinstance(self.env.get(a), _Sig)}
        shift = 0.0
        for i, a in enumerate(args):
            if i in signal:
                continue
            value = a.meta.get("static") if isinstance(a, fx.Node) else a
            if not _is_number(value):
                raise self.refuse(node, "offset", "add a tensor that is not a signal (a learned or constant "
                                                  "offset)")
            shift += coef[i] * float(cast(float, value))
        if len(signal) == 1 and (shift != 0 or len(args) == 1):
            i = next(iter(signal))
            self.count("affine", node)
            return self.elementwise(node, sig, ("affine", coef[i], shift))
        terms = []
        for i in sorted(signal):
            s = cast(_Sig, self.env[cast(fx.Node, args[i])])
            if s.labels is not None:
                raise self.refuse(node, "add cat", "add a concatenation or slices of different vertices; "
                                                   "archscale adds whole signals")
            val, chain = s.one
            if coef[i] != 1:
                chain = chain + (("affine", coef[i], 0.0),)
            if val.kind == "input":
                raise self.refuse(node, "raw add", "add the raw input; every path must start at the stem")
            if val.kind == "sum" and chain:
                val.must = True
            val.uses += 1
            terms.append((val, chain, s.norms))
        return _Sig(((self.new("sum", pos, node, terms=terms), ()),), node)

    def subtract(self, pos: int, node: fx.Node, sig) -> _Sig:
        if node.target in ops.NEG[0] or node.target in ops.NEG[1]:
            return self.elementwise(node, sig, ("affine", -1.0, 0.0))
        first = node.args[0]
        if len(sig) == 1 and not (isinstance(first, fx.Node) and first is sig[0][0]):  # c - x
            c = first.meta.get("static") if isinstance(first, fx.Node) else first
            if not _is_number(c):
                raise self.refuse(node, "offset", "subtract a signal from a tensor that is not a signal")
            return self.elementwise(node, sig, ("affine", -1.0, float(cast(float, c))))
        return self.add(pos, node, sig, negate_second=True)

    def product(self, pos: int, node: fx.Node, sig, divide: bool) -> _Sig:
        args = list(node.args[:2]) + ([node.kwargs["other"]] if "other" in node.kwargs else [])
        if len(sig) == 1 and len(args) == 2:
            other = args[1] if args[0] is sig[0][0] else args[0]
            value = other.meta.get("static") if isinstance(other, fx.Node) else other
            if not _is_number(value):
                raise self.refuse(node, "scale", "multiply or divide a signal by a tensor that is not a "
                                                 "signal "
                                                 "(a learned scale)")
            if divide and args[0] is not sig[0][0]:
                raise self.refuse(node, "reciprocal", "divide a constant by a signal")
            self.count("affine", node)
            factor = 1.0 / float(cast(float, value)) if divide else float(cast(float, value))
            return self.elementwise(node, sig, ("affine", factor, 0.0))
        if divide or len(sig) != 2:
            raise self.refuse(node, "product", "divide signals or multiply more than two")
        (na, a), (nb, b) = sig
        if a.labels is None and b.labels is None and a.one[0] is b.one[0]:  # x * f(x): an activation
            ca, cb = a.one[1], b.one[1]
            k = 0
            while k < min(len(ca), len(cb)) and ca[k] == cb[k]:
                k += 1
            self.count("self gate", node)
            return _Sig(((a.one[0], ca[:k] + (("mul", ca[k:], cb[k:]),)),), node, None, a.norms)
        gate, main = self.gate_operand(node, (na, a), (nb, b))
        if self.gating == "error":
            raise self.refuse(node, "gate", "multiply the signal by a side-branch gate (squeeze-excitation); "
                                            "pass gating='ignore' to read each gate as a pass-through (an "
                                            "approximation)")
        self.drop_branch(gate, main)
        self.count("gate", node)
        return main

    def gate_operand(self, node: fx.Node, a: tuple[fx.Node, _Sig], b: tuple[fx.Node, _Sig]
                     ) -> tuple[_Sig, _Sig]:
        def score(item):
            n, s = item
            meta = n.meta.get("tensor_meta")
            numel = math.prod(meta.shape) if meta is not None and hasattr(meta, "shape") else 0
            last = s.one[1][-1] if s.labels is None and s.one[1] else None
            return (-numel, last is not None and last[0] == "act" and last[1] in GATE_ACTIVATIONS)

        sa, sb = score(a), score(b)
        if sa == sb:
            raise self.refuse(node, "product", "multiply two signals of the same shape, neither a gate")
        return (a[1], b[1]) if sa > sb else (b[1], a[1])

    def drop_branch(self, gate: _Sig, main: _Sig) -> None:
        """Take the gate's own values out of the graph (``gating="ignore"``)."""
        keep: set[int] = set()
        todo = [v for v, _ in main.pieces]
        while todo:
            v = todo.pop()
            if id(v) in keep:
                continue
            keep.add(id(v))
            todo.extend(p for p, _ in (v.src.pieces if v.src else ()))
            todo.extend(t[0] for t in v.terms)
        todo = [v for v, _ in gate.pieces]
        while todo:
            v = todo.pop()
            if id(v) in keep or v.gated or v.kind == "input":
                continue
            v.gated = True
            if v.layer is not None:
                v.layer.role = "gate"
            todo.extend(p for p, _ in (v.src.pieces if v.src else ()))
            todo.extend(t[0] for t in v.terms)

    def structural(self, node: fx.Node, sig, kind: str, mod: nn.Module | None) -> Any:
        if kind == "slice" and node.op == "call_function" and len(node.args) > 1:
            index = node.args[1]
            flat = index if isinstance(index, (tuple, list)) else (index,)
            if any(isinstance(i, fx.Node) and "static" not in i.meta for i in flat):
                raise self.refuse(node, "index", "index a signal with a tensor (a data-dependent gather)")
        if kind == "cat":
            return self.concatenate(node, sig)
        s = self.one_signal(node, sig)
        if kind == "slice":
            self.count("slice", node)
        if kind == "pool" and node is not None:
            self.count("pool", node)
        meta = node.meta.get("tensor_meta")
        n_out = len(meta) if isinstance(meta, (tuple, list)) and not is_tensor(node) else None
        if s.labels is None:
            return tuple(_Sig(s.pieces, node, None, s.norms) for _ in range(n_out)) if n_out is not None \
                else _Sig(s.pieces, node, None, s.norms)
        out = pieces.apply_op(node, {sig[0][0]: s.labels}, len(s.pieces), mod)
        if isinstance(out, tuple):
            return tuple(self.simplify(_Sig(s.pieces, node, o)) for o in out)
        return self.simplify(_Sig(s.pieces, node, out))

    def concatenate(self, node: fx.Node, sig) -> _Sig:
        items: list[tuple[_Val, tuple]] = []
        labels = {}
        for arg_node, s in sig:
            if any(v.kind == "input" for v, _ in s.pieces):
                raise self.refuse(node, "input cat", "concatenate the raw input")
            offset = len(items)
            items.extend(s.pieces)
            meta = arg_node.meta["tensor_meta"]
            labels[arg_node] = (pieces.full(tuple(meta.shape), offset) if s.labels is None
                                else s.labels + offset)
        for arg in node.args[0] if isinstance(node.args[0], (list, tuple)) else []:
            if isinstance(arg, fx.Node) and arg not in labels:
                raise self.refuse(node, "cat const", "concatenate a tensor that is not a signal")
        self.count("cat", node)
        out = pieces.apply_op(node, labels, len(items))
        return self.simplify(_Sig(tuple(items), node, out))

    @staticmethod
    def simplify(s: _Sig) -> _Sig:
        """Merge equal pieces and drop absent ones; one piece left means no labels."""
        assert s.labels is not None
        present = s.labels.unique().long().tolist()
        keys: dict[tuple[int, tuple], int] = {}
        new: list[tuple[_Val, tuple]] = []
        remap = torch.zeros(len(s.pieces), dtype=torch.float64)
        for p in present:
            v, ch = s.pieces[p]
            key = (id(v), ch)
            if key not in keys:
                keys[key] = len(new)
                new.append((v, ch))
            remap[p] = keys[key]
        if len(new) == 1:
            return _Sig(tuple(new), s.node, None)
        return _Sig(tuple(new), s.node, remap[s.labels.long()])

    def output(self, node: fx.Node) -> None:
        if self.refused:  # the refusal already says what blocks; the output may be anything by now
            return
        out = node.args[0]
        if not isinstance(out, fx.Node):
            raise self.refuse(node, "output", f"return {type(out).__name__}; archscale reads models with one "
                                              f"output tensor")
        val = self.env.get(out)
        if not isinstance(val, _Sig) or len(val.pieces) != 1 or val.one[0].kind != "edge" or val.one[1]:
            raise self.refuse(node, "readout", "produce the output without a weighted op; archscale needs a "
                                               "readout (a Linear/Conv that produces the output)")
        edge = val.one[0]
        assert edge.layer is not None and edge.src is not None
        if edge is self.stem:
            raise ArchscaleError(f"the model has one weighted op ({edge.layer.path!r}); archscale needs a "
                                 f"stem and a readout (input -> Linear/Conv -> ... -> Linear/Conv -> output)")
        if edge.uses or edge.readers:
            raise self.refuse(out, "readout", "are the output and also used inside the network; archscale "
                                              "reads the readout's output as the model's output only")
        edge.layer.role, self.readout, self.out_sig = "readout", edge, edge.src
        for v, _ in edge.src.pieces:
            v.must = True
