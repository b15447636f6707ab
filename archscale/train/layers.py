"""The layers of R stacked replicas, computed so that a replica's arithmetic never depends on the others.

A replica's numbers must not depend on which replicas share its chunk or on torch's thread count
(measured on a 2-core AVX-512 CPU, torch 2.13 with oneDNN 3.12 and MKL 2024.2):

* The CNN path used to run one grouped convolution (``groups=R``) for a whole chunk. oneDNN picks
  its algorithm from the whole grouped shape: the stem (1 or 3 image channels per group), widths
  that are not a multiple of 16, and the fused bias gave a replica different forward values and
  weight gradients in chunks of 1, 3 or 8; and its weight- and bias-gradient reductions over the
  batch are split across threads when there are few groups. The same replica trained alone, in a
  chunk of 3 or of 8, differed from step 4 on (1e-7 relative, growing through training).
* MKL splits a long contraction (K = 1024 with a small output; not K <= 512) across threads when
  it has a single product to share out, so a chunk of one replica rounds differently from a chunk
  of two (seen for the CIFAR-sized MLP stem, K = 3072).
* torch's GELU rounds differently on strided and on contiguous tensors.
* On MKL's AVX2 path (AMD processors), a lone product (a chunk of one replica) is shared among
  threads with another rounding than a batch of products, from K = 16 up; strict reproducible
  mode removes that, and :mod:`archscale.nn.blas` sets it before anything computes. On an AVX-512
  AMD EPYC it does not remove it for every shape (a lone (6, 64) @ (64, 13) product on 2 threads,
  13x27x13 on 4), so a step runs on at most one thread per replica and per CPU
  (:func:`~.stack.replica_threads`); the evaluation broadcasts the batch to every replica's own
  product instead of one (B, D) @ (D, R*width) GEMM, whose kernels round a column by its position.

Hence :class:`Dense` layers are ``torch.bmm`` over the replica axis with the contraction cut into
blocks of at most :data:`K_BLOCK`, accumulated in a fixed order (:func:`bmm`, :func:`bmm_acc_`,
:func:`addmm`): for K <= 512, every quick preset, that is the plain product and the MLP numbers
are unchanged. :class:`Conv` layers make one ordinary convolution call per replica, the very
call the replica would make alone, and the stack runs CNN steps on one CPU thread (oneDNN's
results are reproducible only for a fixed thread count; 1x1 kernels differ across thread counts
even in the forward pass). Of the exact formulations measured this is the fastest, about twice
the old grouped step on the quick CNN configuration; im2col with blocked products took 3-14x the
grouped convolution's time, a row-shift formulation 3-5x.

Dense weights are stored as ``(R, fan_in, fan_out)`` so that a layer is ``bmm(x, W) + b``; conv
weights keep torch's ``(R, out, in, k, k)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

_conv_backward = torch.ops.aten.convolution_backward

__all__ = ["K_BLOCK", "Conv", "Dense", "addmm", "bmm", "bmm_acc_"]

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


class Dense:
    """Linear layers of R replicas: ``x (R, B, n_in) -> x @ W + b``, ``W`` of shape ``(R, n_in, n_out)``."""

    @staticmethod
    def stack_weight(w: torch.Tensor) -> torch.Tensor:
        """Stacked torch Linear weights ``(R, out, in)`` in this layer's layout ``(R, in, out)``."""
        return w.transpose(1, 2)

    @staticmethod
    def apply(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # bmm then a bias add: baddbmm with a broadcast bias runs at half the GEMM speed on CPU
        return bmm(x, w).add_(b.unsqueeze(1))

    @staticmethod
    def backward(x: torch.Tensor, g: torch.Tensor, w: torch.Tensor, b: torch.Tensor, need_input: bool,
                 step: Callable[[torch.Tensor, torch.Tensor], None] | None) -> torch.Tensor | None:
        """Gradient w.r.t. the input ``x`` (if ``need_input``), computed before the weights move.

        ``step(grad_w, grad_b)`` applies the optimizer; ``step=None`` means ``g`` already carries
        the learning rate and the step is ``W -= x^T g`` (accumulated inside the GEMM), ``b -= sum g``.
        """
        gx = bmm(g, w.transpose(1, 2)) if need_input else None
        if step is None:
            bmm_acc_(w, x.transpose(1, 2), g, alpha=-1.0)
            b.sub_(g.sum(1))
        else:
            step(bmm(x.transpose(1, 2), g), g.sum(1))
        return gx


class Conv:
    """Same-padded ``k x k`` convolutions of R replicas on ``(R, B, C, H, W)``, one call per replica."""

    def __init__(self, k: int):
        self.k = k
        self.padding = [k // 2, k // 2]

    @staticmethod
    def stack_weight(w: torch.Tensor) -> torch.Tensor:
        return w

    def apply(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``x`` is ``(R, B, C, H, W)``, or ``(B, C, H, W)`` shared by every replica."""
        xs = [x] * w.shape[0] if x.dim() == 4 else x.unbind(0)
        return torch.stack([F.conv2d(xr, wr, br, padding=self.padding)
                            for xr, wr, br in zip(xs, w.unbind(0), b.unbind(0))])

    def backward(self, x: torch.Tensor, g: torch.Tensor, w: torch.Tensor, b: torch.Tensor, need_input: bool,
                 step: Callable[[torch.Tensor, torch.Tensor], None] | None) -> torch.Tensor | None:
        """As :meth:`Dense.backward`: one ``convolution_backward`` call per replica."""
        mask = [need_input, True, False]
        per = [_conv_backward(gr, xr, wr, None, [1, 1], self.padding, [1, 1], False, [0, 0], 1, mask)
               for gr, xr, wr in zip(g.unbind(0), x.unbind(0), w.unbind(0))]
        gx = torch.stack([d[0] for d in per]) if need_input else None
        gw, gb = torch.stack([d[1] for d in per]), g.sum((1, 3, 4))
        if step is None:
            w.sub_(gw)
            b.sub_(gb)
        else:
            step(gw, gb)
        return gx
