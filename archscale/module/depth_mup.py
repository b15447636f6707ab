"""Depth-muP on a user's module: ``1/sqrt(K)`` on every residual branch, installed as forward hooks.

``K`` is the number of residual blocks (:func:`archscale.core.residual.residual_blocks` with
projection shortcuts): a branch of weighted layers added to an identity skip or to a weighted
(projection) shortcut, as ResNets have where a stage changes width. The shortcut side is never
scaled. A block's branch may hold several layers (a bottleneck's three): Depth-muP's optimality
result (Yang, Yu, Zhu, Hayou 2023, arXiv 2310.02244) is for blocks of one layer, and for deeper
blocks that paper reports the transfer to be weaker; archscale scales each branch's output once and
says so in the plan's notes.

The multiplier goes on the last module the branch passes before the addition: the closing weighted
layer, or the normalization right after it (a BatchNorm after the last conv would otherwise undo
it). Refusals name modules, never vertex numbers or graph codes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import ArchscaleError
from ..core.residual import NotResidualChain, ResidualBlock, residual_blocks
from .capture import Capture
from .ops import NORM_MODULES

__all__ = ["HOOK_ATTR", "BranchMultiplier", "blocks_of", "install_depth_mup"]

#: The attribute under which a module keeps the handle of the Depth-muP hook apply() installed.
HOOK_ATTR = "_archscale_branch_multiplier"
#: Modules that may sit between a branch's last weighted layer and the addition without changing
#: where the multiplier belongs.
_PASS = (nn.Identity, nn.Dropout, *NORM_MODULES)


class BranchMultiplier:
    """A forward hook that multiplies a module's output by ``multiplier`` (a residual branch's Depth-muP
    factor); a class rather than a closure, so that models holding it can be copied and pickled."""

    def __init__(self, multiplier: float):
        self.multiplier = float(multiplier)

    def __call__(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return output * self.multiplier

    def __repr__(self) -> str:
        return f"BranchMultiplier({self.multiplier:.4g})"


def _names(cap: Capture, vertex: int) -> str:
    """The modules that meet at ``vertex``: those writing it, then those reading it."""
    into = [la.path for la in cap.layers if la.role == "edge" and la.dst == vertex]
    out = [la.path for la in cap.layers if any(i.src == vertex for i in la.inputs)]
    listed = [repr(p) for p in dict.fromkeys(into + out)] or ["the model's input"]
    return ", ".join(listed[:4]) + (", ..." if len(listed) > 4 else "")


def _closing_module(cap: Capture, path: str, node: str | None) -> str:
    """The last module between the closing layer ``path`` and the addition (itself, or a norm after it)."""
    if node is None:
        return path
    nodes = {n.name: n for n in cap.graph_module.graph.nodes}
    n, last = nodes.get(node), path
    while n is not None and len(n.users) == 1:
        (u,) = n.users
        if u.op != "call_module" or not isinstance(cap.graph_module.get_submodule(str(u.target)), _PASS):
            break
        last, n = str(u.target), u
    return last


def blocks_of(model: nn.Module, cap: Capture) -> list[ResidualBlock]:
    """The residual blocks of the captured model, or a one-line refusal naming modules."""
    try:
        return residual_blocks(cap.graph, projection=True)
    except NotResidualChain as err:
        need = ("apply(depth_mup=True) needs a chain of residual blocks (each one branch of layers added to "
                "an identity or a projection shortcut)")
        if "no residual block" in str(err):
            raise ArchscaleError(f"{need}; {type(model).__name__} adds no branch to a shortcut") from None
        raise ArchscaleError(f"{need}; {type(model).__name__} is not one where modules "
                             f"{_names(cap, err.vertex)} meet") from None


def install_depth_mup(model: nn.Module, cap: Capture, enable: bool) -> tuple[dict[str, float], list[str]]:
    """Install (or, when not ``enable``, remove) the Depth-muP hooks; the multipliers and notes."""
    removed = []
    for path, mod in model.named_modules():
        handle = mod.__dict__.pop(HOOK_ATTR, None)
        if handle is not None:
            handle.remove()
            removed.append(path)
    if not enable:
        return {}, [f"removed the Depth-muP branch multipliers a previous apply(depth_mup=True) put on "
                    f"{', '.join(removed)}"] if removed else []
    blocks = blocks_of(model, cap)
    layers = {(inp.src, la.dst): la for la in cap.layers if la.role == "edge" for inp in la.inputs}
    multiplier = 1.0 / len(blocks) ** 0.5
    out: dict[str, float] = {}
    for b in blocks:
        la = layers[(b.closing.src, b.closing.dst)]
        if la.post_act:
            raise ArchscaleError(f"apply(depth_mup=True): the residual branch ending in {la.path!r} applies "
                                 f"an activation after its weights and before the sum; Depth-muP multiplies "
                                 f"the branch's output, so end the branch with the weighted layer "
                                 f"(x + W act(...)) or a normalization")
        out[_closing_module(cap, la.path, la.node)] = multiplier
    for path in out:
        mod = model.get_submodule(path)
        setattr(mod, HOOK_ATTR, mod.register_forward_hook(BranchMultiplier(multiplier)))
    notes = []
    deep = sum(1 for b in blocks if b.layers > 2)
    projected = sum(1 for b in blocks if b.shortcut is not None)
    if projected:
        notes.append(f"Depth-muP: {projected} of {len(blocks)} blocks have a projection shortcut; the "
                     f"shortcut side is not scaled")
    if deep:
        notes.append(f"Depth-muP: {deep} of {len(blocks)} branches hold more than two weighted layers; "
                     f"Depth-muP's optimality is derived for one-layer blocks (arXiv 2310.02244), and "
                     f"archscale scales each branch's output once")
    return out, notes
