"""R replicas of one DagMLP or DagCNN as stacked weights, trained by a hand-written backward pass.

The forward pass is :func:`archscale.nn.traverse.traverse` over the stacked layers of
:mod:`.layers` (what ``DagNet.forward`` computes, replica by replica); the backward pass walks
the same edges in reverse and hands each layer's gradients to the optimizer (:mod:`.optim`: SGD,
Adam, AdamW) as soon as they are computed. With plain SGD the per-replica LR is folded into the
output gradient and each weight update is accumulated straight into the weights by the weight-gradient GEMM
(``W.baddbmm_``): no gradient tensor is ever written, which roughly halves a step on a CPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import cast

import torch
import torch.nn.functional as F

from ..core.adam_width import adam_lr_multiplier
from ..core.errors import ArchscaleError
from ..nn.models import DagCNN, DagNet
from ..nn.traverse import traverse
from .config import TrainConfig
from .layers import Conv, Dense
from .optim import Optimizer, Sgd

__all__ = ["Sgd", "Stack"]  # Sgd is defined in .optim, with the other optimizers


@contextmanager
def _at_most(threads: int):
    """torch (and oneDNN, MKL) on at most ``threads`` threads for the duration; the caller's setting
    is restored."""
    n = torch.get_num_threads()
    if n <= threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _one_thread():
    return _at_most(1)


def replica_threads(replicas: int, device: torch.device):
    """The thread cap of a step of ``replicas`` stacked replicas on ``device`` (:meth:`Stack._threads`):
    on a CPU at most one thread per replica and per CPU, elsewhere none."""
    if device.type != "cpu":
        return nullcontext()
    return _at_most(max(1, min(cpu_count(), int(replicas))))


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Stack:
    """Stacked parameters of R replicas: stem weight, stem bias, (weight, bias) per parameterized
    edge in ``dag.edges`` order, readout weight and bias, each with a leading replica axis."""

    def __init__(self, nets: list[DagNet], device: torch.device, dtype: torch.dtype):
        first = nets[0]
        if any(n.branch_multiplier != 1.0 for n in nets):  # Depth-muP: not in the hand-written backward
            raise ArchscaleError("the batched trainer does not apply residual branch multipliers "
                                 "(branch_multiplier != 1); train such models with archscale.sweep_module")
        self.cnn = isinstance(first, DagCNN)
        self.layer = Conv(cast(DagCNN, first).kernel_size) if self.cnn else Dense()
        self.dag = first.dag
        self.preact = first.layout == "paper"
        self.act_name = first.act_name
        self.act = F.relu if first.act_name == "relu" else F.gelu
        self.edges = list(self.dag.edges)
        self.edge_slot: dict[tuple[int, int], int] = {}  # index of an edge's weight in params
        modules: list[list] = [[n.stem for n in nets]]  # Linear/Conv2d modules
        for e in self.edges:
            if e.is_parameterized:
                self.edge_slot[(e.src, e.dst)] = 2 * len(modules)
                modules.append([n.edge_layer(e.src, e.dst) for n in nets])
        modules.append([n.readout for n in nets])
        # per stacked parameter: its role under muP's Adam width rule and its fan-in width
        self.roles: list[tuple[str, int]] = []
        self.params: list[torch.Tensor] = []
        for j, mods in enumerate(modules):
            role = "stem" if j == 0 else "readout" if j == len(modules) - 1 else "hidden"
            self.roles += [(role, int(mods[0].weight.shape[1])), ("bias", 0)]
            layout = Dense if j == len(modules) - 1 else self.layer
            w = torch.stack([m.weight.detach() for m in mods]).to(device=device, dtype=dtype)
            b = torch.stack([m.bias.detach() for m in mods]).to(device=device, dtype=dtype)
            self.params += [layout.stack_weight(w).contiguous(), b.contiguous()]

    def lr_multipliers(self, base_width: int | None) -> list[float] | None:
        """Each stacked parameter's LR multiplier under muP's Adam width rule relative to ``base_width``
        (:func:`~archscale.core.adam_width.adam_lr_multiplier`; the fan-in width of a hidden or readout
        weight is its layer's input features or channels), or None (one LR) when ``base_width`` is None."""
        if base_width is None:
            return None
        return [adam_lr_multiplier(role, width or None, base_width) for role, width in self.roles]

    def _threads(self):
        """Where a step runs: an MLP step on at most one thread per replica and per CPU, a CNN step
        on one CPU thread, or cuDNN's deterministic algorithms (see :mod:`.layers`).

        With fewer products than threads MKL splits a product's contraction among threads, and even
        in strict reproducible mode that rounds differently (measured on a 2-CPU AVX-512 AMD
        processor: a lone (6, 64) @ (64, 13) product on 2 threads, a lone 13x27x13 one on 4)."""
        if not self.cnn:
            return replica_threads(int(self.params[0].shape[0]), self.params[0].device)
        if self.params[0].device.type == "cpu":
            return _one_thread()
        return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True)

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the replicas at positions ``keep``."""
        self.params = [p[keep] for p in self.params]

    def _act_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.act_name == "relu":
            return torch.ops.aten.threshold_backward(grad, x, 0)
        return torch.ops.aten.gelu_backward(grad, x)

    # ------------------------------------------------------------------ forward
    def _stem(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool):
        """Stem output and the stem's input as its weight gradient reads it."""
        r = w.shape[0]
        if self.cnn:  # images (R, B, C, H, W), or (B, C, H, W) shared by every replica
            return self.layer.apply(x, w, b), x
        if shared:
            # the batch broadcast to every replica, each product its own (B, D) @ (D, width), the
            # very product a replica computes alone: one (B, D) @ (D, R*width) GEMM would be faster,
            # but its kernels round a column by where it falls among the R*width (measured on an
            # AVX-512 AMD processor: the final losses moved by 1e-8 with the chunk)
            x = x.reshape(x.shape[0], -1)
            return self.layer.apply(x.unsqueeze(0).expand(r, -1, -1), w, b), x
        x = x.reshape(r, x.shape[1], -1)
        return self.layer.apply(x, w, b), x

    def _forward(self, x: torch.Tensor, params: list[torch.Tensor], shared: bool):
        u0, x = self._stem(x, params[0], params[1], shared)
        acted: dict[int, torch.Tensor] = {}  # act(z_v), read by the edges leaving v (paper layout)
        pre: dict[tuple[int, int], torch.Tensor] = {}  # an edge's pre-activation (reference layout)

        def edge(e, src: torch.Tensor) -> torch.Tensor:
            if not e.is_parameterized:
                return src
            i = self.edge_slot[(e.src, e.dst)]
            if self.preact:
                if e.src not in acted:
                    acted[e.src] = self.act(src)
                return self.layer.apply(acted[e.src], params[i], params[i + 1])
            pre[(e.src, e.dst)] = u = self.layer.apply(src, params[i], params[i + 1])
            return self.act(u)

        nodes = traverse(self.dag, u0 if self.preact else self.act(u0), edge)
        last = self.act(nodes[-1]) if self.preact else nodes[-1]
        feat = last.mean(dim=(3, 4)) if self.cnn else last  # global average pool
        logits = Dense.apply(feat, params[-2], params[-1])
        return logits, (x, u0, nodes, acted, pre, last, feat)

    def forward(self, x: torch.Tensor, params: list[torch.Tensor], shared: bool = False) -> torch.Tensor:
        """Logits ``(R, B, out)``; ``x`` is ``(R, B, ...)`` per replica or ``(B, ...)`` if ``shared``."""
        with self._threads():
            return self._forward(x, params, shared)[0]

    # ------------------------------------------------------------------ backward and update
    def _vertex_grad(self, v: int, gn: list, gact: list, nodes: list) -> torch.Tensor | None:
        """Gradient at vertex ``v``, once every edge leaving it has been back-propagated."""
        if gact[v] is not None:  # paper layout: edges read act(z_v)
            g = self._act_backward(gact[v], nodes[v])
            gn[v] = g if gn[v] is None else gn[v] + g
            gact[v] = None
        return gn[v]

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, lr_base: torch.Tensor,
             active: torch.Tensor, opt: Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of every replica; returns the minibatch losses and the updated active mask."""
        with self._threads():
            return self._step(x, y, config, lr_base, active, opt)

    def _step(self, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, lr_base: torch.Tensor,
              active: torch.Tensor, opt: Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        logits, (x, u0, nodes, acted, pre, last, feat) = self._forward(x, p, shared=False)
        r, b, o = logits.shape
        if config.loss == "ce":
            logp = torch.log_softmax(logits, dim=-1)
            target = y.unsqueeze(2)
            loss = -logp.gather(2, target).squeeze(2).mean(1)
            g = logp.exp_().scatter_add_(2, target, torch.full_like(target, -1, dtype=logp.dtype))
            g = g.div_(b)  # d loss / d logits = (softmax - onehot) / batch
        else:
            diff = logits - y
            loss = diff.pow(2).reshape(r, -1).mean(1)
            g = diff.mul_(2.0 / (b * o))
        active = active & torch.isfinite(loss)
        lr_eff = lr_base * active.to(lr_base.dtype)
        fused = opt.plain
        scale = lr_eff if fused else active.to(g.dtype)
        g = torch.where(active.view(r, 1, 1), g * scale.view(r, 1, 1), 0.0)

        def backward(i: int, x: torch.Tensor, grad_out: torch.Tensor, need_input: bool = True,
                     layer=self.layer) -> torch.Tensor | None:
            """Input gradient of the layer whose weights are ``p[i]``, then its optimizer step."""
            def step(gw: torch.Tensor, gb: torch.Tensor) -> None:
                opt.update(i, p[i], gw, lr_eff)
                opt.update(i + 1, p[i + 1], gb, lr_eff)

            # fused: grad_out already carries the LR, the step is the gradient itself
            return layer.backward(x, grad_out, p[i], p[i + 1], need_input, None if fused else step)

        n = self.dag.n_vertices
        gn: list[torch.Tensor | None] = [None] * n
        gact: list[torch.Tensor | None] = [None] * n
        g_last = backward(len(p) - 2, feat, g, layer=Dense)
        assert g_last is not None  # need_input
        if self.cnn:  # back through the global average pool
            g_last = g_last.div_(last.shape[3] * last.shape[4])[..., None, None].expand_as(last).contiguous()
        if self.preact:
            gact[n - 1] = g_last
        else:
            gn[n - 1] = g_last
        for e in reversed(self.edges):  # every edge leaving a vertex comes before those entering it
            gd = self._vertex_grad(e.dst, gn, gact, nodes)
            if gd is None:  # the target reaches no output: no gradient, no update (as in SGD)
                continue
            if e.is_parameterized:
                i = self.edge_slot[(e.src, e.dst)]
                h = acted[e.src] if self.preact else nodes[e.src]
                gu = gd if self.preact else self._act_backward(gd, pre[(e.src, e.dst)])
                ga = backward(i, h, gu)
                assert ga is not None  # need_input
                grads = gact if self.preact else gn
                prev = grads[e.src]
                grads[e.src] = ga if prev is None else prev + ga
            else:
                prev = gn[e.src]
                gn[e.src] = gd if prev is None else prev + gd
        g0 = self._vertex_grad(0, gn, gact, nodes)
        if g0 is not None:
            backward(0, x, g0 if self.preact else self._act_backward(g0, u0), need_input=False)
        return loss, active
