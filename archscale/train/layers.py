"""The layers of R stacked replicas as batched matrix products whose per-replica arithmetic is fixed.

A replica's numbers must not depend on which replicas share its chunk or on torch's thread
count. Two things broke that for the grouped convolutions the CNN path used (measured on a
2-core AVX-512 CPU, torch 2.13, oneDNN 3.12): oneDNN splits the weight-gradient reduction over
the batch across threads, and it picks a different algorithm (another summation order) depending
on the number of groups for channel counts that are not a multiple of 16 and for the stem.
MKL's GEMM, in turn, splits a long contraction (K >= 1024 for small outputs) across threads when
it has few matrices to share out, so a chunk of one replica rounds differently from a chunk of
two. Hence here:

* every product is a ``torch.bmm`` over the replica axis whose contraction is cut into blocks of
  at most :data:`K_BLOCK`, accumulated in a fixed order (:func:`bmm`, :func:`bmm_acc_`); MKL only
  partitions rows and columns of such products across threads, which leaves each entry's sum as
  it is (checked for 1 to 16 threads);
* a convolution is an explicit im2col (exact copies) followed by such a product, on
  channels-last activations ``(R, B, H, W, C)``; its input gradient is the same computation
  with the flipped kernel, its weight gradient a blocked product over the ``B*H*W`` positions.

Weights are stored as ``(R, fan_in, fan_out)`` (conv rows ordered kernel row, kernel column,
input channel), so every layer is ``bmm(input, W) + b``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["K_BLOCK", "Conv", "Dense", "addmm", "bmm", "bmm_acc_", "im2col"]

#: Longest contraction handed to one GEMM call (see the module docstring).
K_BLOCK = 512


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` over the leading axis with the contraction cut into fixed blocks."""
    k = a.shape[-1]
    if k <= K_BLOCK:
        return torch.bmm(a, b)
    out = torch.bmm(a[..., :K_BLOCK], b[:, :K_BLOCK])
    for lo in range(K_BLOCK, k, K_BLOCK):
        out.baddbmm_(a[..., lo:lo + K_BLOCK], b[:, lo:lo + K_BLOCK])
    return out


def bmm_acc_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``out += alpha * (a @ b)`` in place, block by block of the contraction (fixed order)."""
    k = a.shape[-1]
    for lo in range(0, k, K_BLOCK):
        out.baddbmm_(a[..., lo:lo + K_BLOCK], b[:, lo:lo + K_BLOCK], alpha=alpha)
    return out


def addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``bias + a @ b`` for one (unbatched) product, the contraction cut like :func:`bmm`'s."""
    out = torch.addmm(bias, a[:, :K_BLOCK], b[:K_BLOCK])
    for lo in range(K_BLOCK, a.shape[1], K_BLOCK):
        out.addmm_(a[:, lo:lo + K_BLOCK], b[lo:lo + K_BLOCK])
    return out


def im2col(x: torch.Tensor, k: int) -> torch.Tensor:
    """Patches of a same-padded ``k x k`` convolution: ``(R, B, H, W, C) -> (R, B*H*W, k*k*C)``.

    Columns are ordered (kernel row, kernel column, channel); one copy per kernel row, each of
    contiguous runs of ``k*C`` values.
    """
    p = k // 2
    r, b, h, w, c = x.shape
    xp = F.pad(x, (0, 0, p, p, p, p)).contiguous()
    out = x.new_empty(r, b, h, w, k, k * c)
    s_r, s_b, s_h, s_w, _ = xp.stride()
    for i in range(k):
        rows = xp.as_strided((r, b, h, w, k * c), (s_r, s_b, s_h, s_w, 1), xp.storage_offset() + i * s_h)
        out[:, :, :, :, i].copy_(rows)
    return out.view(r, b * h * w, k * k * c)


class Dense:
    """Linear layers: ``x (R, B, n_in) -> x @ W + b``; the weight gradient reads ``x`` itself."""

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """What the product and the weight gradient read: the input (im2col patches for a conv)."""
        return x

    @staticmethod
    def apply(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The layer's output from ``prepare(like)``."""
        # bmm then a bias add: baddbmm with a broadcast bias runs at half the GEMM speed on CPU
        return bmm(inp, w).add_(b.unsqueeze(1))

    @staticmethod
    def rows(g: torch.Tensor) -> torch.Tensor:
        """An output gradient as ``(R, rows, out)``, matching ``prepare``'s rows."""
        return g

    @staticmethod
    def input_grad(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return bmm(g, w.transpose(1, 2))

    @staticmethod
    def stack_weight(w: torch.Tensor) -> torch.Tensor:
        """``(R, out, in)`` torch Linear weights to this layout, ``(R, in, out)``."""
        return w.transpose(1, 2)


class Conv(Dense):
    """Same-padded ``k x k`` convolutions on channels-last ``(R, B, H, W, C)`` activations."""

    def __init__(self, k: int):
        self.k = k

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return im2col(x, self.k)

    @staticmethod
    def apply(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return bmm(inp, w).add_(b.unsqueeze(1)).view(*like.shape[:-1], w.shape[-1])

    @staticmethod
    def rows(g: torch.Tensor) -> torch.Tensor:
        return g.reshape(g.shape[0], -1, g.shape[-1])

    def input_grad(self, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Gradient w.r.t. the input: a convolution of ``g`` with the flipped, transposed kernel."""
        r, k = w.shape[0], self.k
        c_in, c_out = w.shape[1] // (k * k), w.shape[2]
        flipped = w.view(r, k, k, c_in, c_out).flip(1, 2).transpose(3, 4).reshape(r, k * k * c_out, c_in)
        return bmm(im2col(g, k), flipped).view(*g.shape[:-1], c_in)

    @staticmethod
    def stack_weight(w: torch.Tensor) -> torch.Tensor:
        """``(R, out, in, k, k)`` torch Conv2d weights to ``(R, k*k*in, out)``."""
        return w.permute(0, 3, 4, 2, 1).reshape(w.shape[0], -1, w.shape[1])
