"""The per-replica optimizers both engines share: torch.optim's SGD, Adam and AdamW, one LR per replica.

The replica engine (:mod:`.stack`) and :func:`archscale.sweep_module` hold every parameter as one
tensor with a leading replica axis and call :meth:`Optimizer.update` once per parameter and step with
its gradient and each replica's learning rate ``lr_eff`` (shape ``(R,)``, 0 for a replica that just
diverged). Each update is torch.optim's single-tensor step written elementwise, so a replica's
numbers are those of the same model trained alone with the torch optimizer, whatever replicas share
its stack. :meth:`Optimizer.compact` drops the state of replicas removed from the stack.

Each parameter may carry its own LR multiplier (``lr_mults[i]``, default 1): parameter ``i`` is then
stepped at ``lr_eff * lr_mults[i]``, as torch.optim steps a ``param_groups`` group at its own ``lr``
(AdamW's decay ``1 - lr * wd`` included). muP's Adam width rule
(:func:`~archscale.core.adam_width.adam_lr_multiplier`) is applied this way.

A parameter that receives no gradient in a step (a vertex that reaches no output) is not updated and
its step count does not advance, as torch.optim skips a parameter whose ``grad`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from ..core.errors import ArchscaleError

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["Adam", "AdamW", "Optimizer", "Sgd", "make_optimizer", "param_copies"]


def _per_replica(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``(R,)`` values shaped to broadcast against a stacked parameter ``(R, ...)``."""
    return values.view(-1, *[1] * (p.dim() - 1))


def _multipliers(lr_mults: Sequence[float] | None, n_params: int) -> list[float]:
    """One LR multiplier per parameter (all 1 when ``lr_mults`` is None)."""
    if lr_mults is None:
        return [1.0] * n_params
    mults = [float(m) for m in lr_mults]
    if len(mults) != n_params or not all(m > 0 and m != float("inf") for m in mults):
        raise ArchscaleError(f"lr_mults must hold {n_params} positive finite multipliers, got {lr_mults!r}")
    return mults


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

    def __init__(self, config: TrainConfig, n_params: int, lr_mults: Sequence[float] | None = None):
        self.momentum = float(config.momentum)
        self.weight_decay = float(config.weight_decay)
        self.nesterov = bool(config.nesterov)
        self.lr_mults = _multipliers(lr_mults, n_params)
        self.bufs: list[torch.Tensor | None] = [None] * n_params

    @property
    def plain(self) -> bool:
        """No state, no decay, one LR: the update is ``p -= lr * grad`` and can be fused."""
        return not self.momentum and not self.weight_decay and all(m == 1.0 for m in self.lr_mults)

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
        mult = self.lr_mults[i]
        lr = lr_eff if mult == 1.0 else (lr_eff.double() * mult).to(lr_eff.dtype)
        p.addcmul_(g, _per_replica(lr, p), value=-1.0)

    def compact(self, keep: torch.Tensor) -> None:
        self.bufs = [b[keep] if b is not None else None for b in self.bufs]


class Adam:
    """torch.optim.Adam's update with one LR per replica: moments with ``betas``, bias correction,
    ``eps`` added after the square root, and weight decay added to the gradient (L2, "coupled")."""

    #: AdamW's decay: ``p *= 1 - lr * weight_decay`` before the step, outside the moments.
    decoupled = False
    plain = False

    def __init__(self, config: TrainConfig, n_params: int, lr_mults: Sequence[float] | None = None):
        self.beta1, self.beta2 = config.adam_betas
        self.eps = float(config.eps)
        self.weight_decay = float(config.weight_decay)
        self.lr_mults = _multipliers(lr_mults, n_params)
        self.exp_avg: list[torch.Tensor | None] = [None] * n_params
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * n_params
        self.steps = [0] * n_params
        # (lr_eff, step, dtype) of the last call, and per LR multiplier its (step size, decay)
        self._key: tuple = (None, 0, None)
        self._scalars: dict[float, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _per_step(self, lr_eff: torch.Tensor, step: int, dtype: torch.dtype, mult: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-replica step size ``lr / (1 - beta1^t)`` and AdamW's factor ``1 - lr * wd`` of the LR
        ``lr = lr_eff * mult``, computed in float64 as torch.optim's Python floats are, once per step
        and multiplier (the parameters of one multiplier share them)."""
        key = (lr_eff, step, dtype)
        if self._key[0] is not lr_eff or self._key[1:] != key[1:]:
            self._key, self._scalars = key, {}
        if mult not in self._scalars:
            lr = lr_eff.double() * mult
            step_size = (lr / (1 - self.beta1**step)).to(dtype)
            decay = (1 - lr * self.weight_decay).to(dtype) if self.decoupled and self.weight_decay else None
            self._scalars[mult] = (step_size, decay)
        return self._scalars[mult]

    @torch.no_grad()
    def update(self, i: int, p: torch.Tensor, g: torch.Tensor, lr_eff: torch.Tensor) -> None:
        m, v = self.exp_avg[i], self.exp_avg_sq[i]
        if m is None or v is None:
            m = self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
            v = self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.steps[i] += 1
        step = self.steps[i]
        step_size, decay = self._per_step(lr_eff, step, p.dtype, self.lr_mults[i])
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


def make_optimizer(config: TrainConfig, n_params: int, lr_mults: Sequence[float] | None = None) -> Optimizer:
    """The per-replica optimizer ``config.optimizer`` names, for ``n_params`` stacked parameters, with
    parameter ``i``'s LR multiplied by ``lr_mults[i]`` (default: 1 for every parameter)."""
    return _CLASSES[config.optimizer](config, n_params, lr_mults)


def param_copies(optimizer: str) -> int:
    """Parameter-sized tensors a training step holds per parameter (for memory estimates): the
    parameter, its gradient and temporaries, plus the optimizer's state (a momentum buffer for SGD,
    two moments and a denominator for Adam)."""
    return 5 if optimizer == "sgd" else 7
