"""Which vertex each channel comes from, through ``cat``, slices, splits, reshapes and channel shuffles.

Concatenation is exact, not an approximation: ``W cat(a, b) = W_a a + W_b b``, so a weighted op that
reads a concatenation is one edge per piece into one vertex, each with its piece's fan-in. To find the
pieces after any sequence of ``cat``, ``x[:, :c]``, ``split``/``chunk``, ``view``/``permute`` (a
ShuffleNet channel shuffle), pooling and flattening, archscale runs the very same operations on a
*label tensor*: a tensor of the example value's shape whose entries are the index of the piece each
element comes from. Each op is run twice, on the indices and on random codes of them; an output
element that does not carry one input label in both runs (a mean over channels of two pieces, say)
means the op mixes pieces, and the model is refused there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import fx
from torch.fx.node import map_aggregate

__all__ = ["Mixed", "apply_op", "channel_labels", "full", "group_owners", "input_groups"]


class Mixed(Exception):
    """An op (or a weighted layer) that combines elements of different pieces."""


def full(shape: tuple[int, ...], index: int) -> torch.Tensor:
    """A label tensor of one piece."""
    return torch.full(tuple(shape), float(index), dtype=torch.float64)


def _codes(n: int) -> torch.Tensor:
    return 1.0 + torch.rand(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)


def apply_op(node: fx.Node, labels: dict[fx.Node, Any], n_pieces: int, module=None) -> Any:
    """Run ``node``'s op with label tensors in place of the signals (``labels``: node -> labels).

    Other node arguments must be static (shapes); returns the output labels (a tensor or a tuple).
    Raises :class:`Mixed` when an output element does not come from exactly one piece.
    """
    codes = _codes(max(n_pieces, 1))

    def run(encode):
        def sub(a):
            if isinstance(a, fx.Node):
                if a in labels:
                    return map_aggregate(labels[a], lambda t: encode(t) if isinstance(t, torch.Tensor) else t)
                if "static" in a.meta:
                    return a.meta["static"]
                raise Mixed(f"its argument {a.name!r} is a tensor that is not a signal")
            return a

        args, kwargs = map_aggregate(node.args, sub), map_aggregate(node.kwargs, sub)
        if module is not None:
            return module(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        return node.target(*args, **kwargs)  # type: ignore[operator]

    with torch.no_grad():
        ids = run(lambda t: t)
        coded = run(lambda t: codes[t.long()])

    def check(i, c):
        if not isinstance(i, torch.Tensor):
            return i
        r = i.round()
        ok = ((i - r).abs() < 1e-9) & (r >= 0) & (r < n_pieces)
        expected = codes[r.long().clamp(0, n_pieces - 1)]
        if not bool(ok.all()) or not torch.allclose(c, expected, rtol=0, atol=1e-9):
            raise Mixed("it combines elements of different pieces")
        return r

    if isinstance(ids, (tuple, list)):
        return tuple(check(i, c) for i, c in zip(ids, coded))
    return check(ids, coded)


def channel_labels(labels: torch.Tensor, dim: int) -> torch.Tensor:
    """The piece of each feature along ``dim`` (1 for a conv, -1 for a Linear layer); raises
    :class:`Mixed` when pieces are not whole features (a concatenation along a spatial dimension)."""
    dim = dim % labels.dim()
    moved = labels.movedim(dim, -1).reshape(-1, labels.shape[dim])
    if not bool((moved == moved[:1]).all()):
        raise Mixed("its input concatenates pieces along a dimension the weights do not sum over")
    return moved[0].long()


def group_owners(per_channel: torch.Tensor, groups: int) -> torch.Tensor | None:
    """The piece each group of a grouped conv reads, when every group reads channels of one piece and
    the groups read more than one piece between them (else None: the layer is read by
    :func:`input_groups`)."""
    by_group = per_channel.view(groups, -1)
    if not bool((by_group == by_group[:, :1]).all()) or by_group[:, 0].unique().numel() < 2:
        return None
    return by_group[:, 0].clone()


def input_groups(per_channel: torch.Tensor, weight_shape: tuple[int, ...], groups: int
                 ) -> dict[int, tuple[int, torch.Tensor]]:
    """``{piece: (channels per group, mask over the weight)}`` of a layer reading several pieces.

    A grouped convolution must see the same number of channels of each piece in every group (else
    the piece's fan-in would differ between output channels, and it is refused).
    """
    out_ch, per_group = weight_shape[0], weight_shape[1]
    by_group = per_channel.view(groups, per_group)
    out = {}
    for piece in per_channel.unique().tolist():
        counts = (by_group == piece).sum(1)
        if not bool((counts == counts[0]).all()):
            raise Mixed(f"its {groups} groups see different numbers of channels of one piece")
        cols = (by_group == piece)  # (groups, per_group)
        mask = cols.repeat_interleave(out_ch // groups, dim=0)  # (out, per_group)
        mask = mask.view(out_ch, per_group, *([1] * (len(weight_shape) - 2))).expand(weight_shape)
        out[int(piece)] = (int(counts[0]), mask.contiguous())
    return out


def coverage(in_spatial: tuple[int, ...], module) -> float:
    """The share of a convolution's kernel taps that fall inside its input (zero padding), averaged
    over output positions: the factor by which padding shrinks the output's second moment."""
    if not in_spatial or getattr(module, "padding_mode", "zeros") != "zeros":
        return 1.0
    d = len(in_spatial)
    conv = getattr(torch.nn.functional, f"conv{d}d")
    ones = torch.ones((1, 1, *in_spatial), dtype=torch.float64)
    kernel = torch.ones((1, 1, *module.kernel_size), dtype=torch.float64)
    with torch.no_grad():
        taps = conv(ones, kernel, stride=module.stride, padding=module.padding, dilation=module.dilation)
    return float(taps.mean()) / math.prod(module.kernel_size)
