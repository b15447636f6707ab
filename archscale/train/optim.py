"""The per-replica optimizers both engines share: torch.optim's SGD, Adam and AdamW, one LR per replica.

The replica engine (:mod:`.stack`) and :func:`archscale.sweep_module` hold every parameter as one
tensor with a leading replica axis and call :meth:`Optimizer.update` once per parameter and step with
its gradient and each replica's learning rate ``lr_eff`` (shape ``(R,)``, 0 for a replica that just
diverged). Each update is torch.optim's single-tensor step written elementwise, so a replica's
numbers are those of the same model trained alone with the torch optimizer, whatever replicas share
its stack. :meth:`Optimizer.compact` drops the state of replicas removed from the stack.

A parameter that receives no gradient in a step (a vertex that reaches no output) is not updated and
its step count does not advance, as torch.optim skips a parameter whose ``grad`` is ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["Adam", "AdamW", "Optimizer", "Sgd", "make_optimizer", "param_copies"]


def _per_replica(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``(R,)`` values shaped to broadcast against a stacked parameter ``(R, ...)``."""
    return values.view(-1, *[1] * (p.dim() - 1))


class Optimizer(Protocol):
    """What both engines call: one update per parameter and step, and dropping replicas."""

    @property
    def plain(self) -> bool:
        """True when the update is ``p -= lr * grad`` (the replica engine then fuses it into the GEMM)."""
        ...

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor, lr_eff: torch.Tensor) -> None:
        """Update parameter ``i`` (stacked ``p``) in place with its gradient ``g`` and per-replica LRs."""
        ...

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the state of the replicas at positions ``keep``."""
        ...


class Sgd:
    """torch.optim.SGD's update (weight decay, momentum, Nesterov) with one LR per replica."""

    def __init__(self, config: TrainConfig, n_params: int):
        self.momentum = float(config.momentum)
        self.weight_decay = float(config.weight_decay)
        self.nesterov = bool(config.nesterov)
        self.bufs: list[torch.Tensor | None] = [None] * n_params

    @property
    def plain(self) -> bool:
        """No state and no decay: the update is ``p -= lr * grad`` and can be fused."""
        return not self.momentum and not self.weight_decay

    @torch.no_grad()
    def update(self, i: int, p: torch.Tensor, g: torch.Tensor, lr_eff: torch.Tensor) -> None:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self.momentum:
            buf = self.bufs[i]
            if buf is None:
                buf = self.bufs[i] = g.clone()
            else:
                buf.mul_(self.momentum).add_(g)
            g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
        p.addcmul_(g, _per_replica(lr_eff, p), value=-1.0)

    def compact(self, keep: torch.Tensor) -> None:
        self.bufs = [b[keep] if b is not None else None for b in self.bufs]


class Adam:
    """torch.optim.Adam's update with one LR per replica: moments with ``betas``, bias correction,
    ``eps`` added after the square root, and weight decay added to the gradient (L2, "coupled")."""

    #: AdamW's decay: ``p *= 1 - lr * weight_decay`` before the step, outside the moments.
    decoupled = False
    plain = False

    def __init__(self, config: TrainConfig, n_params: int):
        self.beta1, self.beta2 = config.adam_betas
        self.eps = float(config.eps)
        self.weight_decay = float(config.weight_decay)
        self.exp_avg: list[torch.Tensor | None] = [None] * n_params
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * n_params
        self.steps = [0] * n_params
        self._scalars: tuple = (None, 0, None, None)  # (lr_eff, step, step size, decay) of the last call

    def _per_step(self, lr_eff: torch.Tensor, step: int, dtype: torch.dtype
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-replica step size ``lr / (1 - beta1^t)`` and AdamW's factor ``1 - lr * wd``, computed in
        float64 as torch.optim's Python floats are, once per step (every parameter shares them)."""
        last, last_step, step_size, decay = self._scalars
        if last is not lr_eff or last_step != step or step_size.dtype != dtype:
            lr = lr_eff.double()
            step_size = (lr / (1 - self.beta1**step)).to(dtype)
            decay = (1 - lr * self.weight_decay).to(dtype) if self.decoupled and self.weight_decay else None
            self._scalars = (lr_eff, step, step_size, decay)
        return step_size, decay

    @torch.no_grad()
    def update(self, i: int, p: torch.Tensor, g: torch.Tensor, lr_eff: torch.Tensor) -> None:
        m, v = self.exp_avg[i], self.exp_avg_sq[i]
        if m is None or v is None:
            m = self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
            v = self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.steps[i] += 1
        step = self.steps[i]
        step_size, decay = self._per_step(lr_eff, step, p.dtype)
        if decay is not None:
            p.mul_(_per_replica(decay, p))
        elif self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        m.lerp_(g, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = v.sqrt().div_((1 - self.beta2**step) ** 0.5).add_(self.eps)
        p.addcmul_(torch.div(m, denom, out=denom), _per_replica(step_size, p), value=-1.0)

    def compact(self, keep: torch.Tensor) -> None:
        self.exp_avg = [m[keep] if m is not None else None for m in self.exp_avg]
        self.exp_avg_sq = [v[keep] if v is not None else None for v in self.exp_avg_sq]


class AdamW(Adam):
    """torch.optim.AdamW's update: :class:`Adam` with decoupled weight decay (``p *= 1 - lr * wd``)."""

    decoupled = True


#: One class per name of :data:`~archscale.train.config.OPTIMIZERS`.
_CLASSES: dict[str, type[Sgd] | type[Adam]] = {"sgd": Sgd, "adam": Adam, "adamw": AdamW}


def make_optimizer(config: TrainConfig, n_params: int) -> Optimizer:
    """The per-replica optimizer ``config.optimizer`` names, for ``n_params`` stacked parameters."""
    return _CLASSES[config.optimizer](config, n_params)


def param_copies(optimizer: str) -> int:
    """Parameter-sized tensors a training step holds per parameter (for memory estimates): the
    parameter, its gradient and temporaries, plus the optimizer's state (a momentum buffer for SGD,
    two moments and a denominator for Adam)."""
    return 5 if optimizer == "sgd" else 7
