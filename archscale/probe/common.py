"""What every probe shares: argument checks, the loss, parameter groups and the one-step stepper."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..train import LOSSES

__all__ = ["LossArg", "loss_value", "parameter_groups"]


LossArg = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_loss(loss: object) -> LossArg:
    if callable(loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ArchscaleError(f"unknown loss {loss!r}; accepted: 'mse' (squared error), 'ce' (cross-entropy) "
                             f"or a function (logits, y) -> scalar")
    return loss


def _check_lr_mult(lr_mult: Mapping[str, float] | None, groups: Mapping[str, list[str]]) -> dict[str, float]:
    if lr_mult is None:
        return {}
    if not isinstance(lr_mult, Mapping):
        raise ArchscaleError(
            f"lr_mult must map group names to multipliers, e.g. {{'readout': 0.25}}, got {lr_mult!r}"
        )
    unknown = [g for g in lr_mult if g not in groups]
    if unknown:
        raise ArchscaleError(f"lr_mult names unknown group(s) {unknown}; "
                             f"groups of this model: {list(groups)}")
    return {g: validate.learning_rate(m, f"lr_mult[{g!r}]") for g, m in lr_mult.items()}


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module) or not hasattr(model, "dag"):
        raise ArchscaleError(
            f"the probes need a DagMLP or DagCNN (a model with .dag and return_nodes=True), "
            f"got {type(model).__name__}"
        )
    return model


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _as_batch(model: nn.Module, x: object, y: object, loss: LossArg) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ArchscaleError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ArchscaleError("the probe batch x is empty; give at least one example")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ArchscaleError(
            f"x and y must hold the same number of examples, got {x.shape[0]} and "
            f"{y.shape[0] if y.ndim else 'a scalar'}"
        )
    device, dtype = _model_device_dtype(model)
    x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
    if loss == "ce" and y.is_floating_point():
        raise ArchscaleError("loss='ce' needs integer class labels in y; use loss='mse' for real targets")
    y = y.to(device=device, dtype=dtype if y.is_floating_point() else torch.long)
    return x, y


def loss_value(logits: torch.Tensor, y: torch.Tensor, loss: LossArg) -> torch.Tensor:
    """``ce``: mean cross-entropy; ``mse``: mean over all entries of ``(logits - target)**2``.

    For ``mse`` integer labels are one-hot encoded; real targets must match the logits' shape
    (a 1-D target is accepted for a single output). A callable is applied as ``loss(logits, y)``.
    """
    if callable(loss):
        value = loss(logits, y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ArchscaleError("a loss function must return a scalar tensor, e.g. F.mse_loss(logits, y)")
        return value.reshape(())
    if loss == "ce":
        return F.cross_entropy(logits, y)
    if not y.is_floating_point():
        y = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
    elif y.ndim == 1 and logits.ndim == 2 and logits.shape[1] == 1:
        y = y.unsqueeze(1)
    if y.shape != logits.shape:
        raise ArchscaleError(
            f"mse targets of shape {tuple(y.shape)} do not match the logits' {tuple(logits.shape)}"
        )
    return F.mse_loss(logits, y)


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names by group: ``"stem"``, ``"edge s->d"`` per parameterized edge, ``"readout"``.

    Skip edges carry no parameters and form no group. Groups are ordered stem, edges, readout.
    """
    _check_model(model)
    groups: dict[str, list[str]] = {"stem": []}
    for e in cast(Dag, model.dag).edges:  # checked: a model with .dag
        if e.is_parameterized:
            groups[f"edge {e.src}->{e.dst}"] = []
    groups["readout"] = []
    for name, _ in model.named_parameters():
        if name.startswith("stem."):
            groups["stem"].append(name)
        elif name.startswith("readout."):
            groups["readout"].append(name)
        elif name.startswith("edge_modules."):
            src, dst = name.split(".")[1].split("_")
            groups[f"edge {src}->{dst}"].append(name)
        else:  # pragma: no cover - DagNet has no other parameters
            raise ArchscaleError(f"parameter {name!r} belongs to no known group")
    return groups


class _Stepper:
    """A private copy of a model with its gradient on one batch; re-applies SGD steps on demand."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossArg, *,
                 freeze: Sequence[str] | str = (), lr_mult: Mapping[str, float] | None = None,
                 probe_x: torch.Tensor | None = None, private: bool = False):
        self.groups = parameter_groups(model)
        self.moving, self.freeze = _moving(self.groups, freeze)
        self.mult = _check_lr_mult(lr_mult, self.groups)
        self.names = {n for g in self.moving for n in self.groups[g]}  # the parameters that step
        # a copy keeps the caller's model, mode and device; ``private`` models (built by the probe
        # itself and thrown away after) skip it, which halves the memory traffic at large widths
        self.model = model if private else copy.deepcopy(model)
        self.params = dict(self.model.named_parameters())
        for p in self.params.values():
            p.requires_grad_(True)
            p.grad = None
        self.x_probe = x if probe_x is None else probe_x
        with torch.enable_grad():
            logits, _ = self.model(x, return_nodes=True)
            value = loss_value(logits, y, loss)
            grads = torch.autograd.grad(value, list(self.params.values()), allow_unused=True)
        self.loss_value = float(value.detach())
        self.grads = {n: (torch.zeros_like(p) if g is None else g.detach())
                      for (n, p), g in zip(self.params.items(), grads)}
        self.origin = {n: p.detach().clone() for n, p in self.params.items()}
        self.before = self._values()

    @torch.no_grad()
    def _values(self) -> list[torch.Tensor]:
        logits, nodes = self.model(self.x_probe, return_nodes=True)
        return [n.detach().clone() for n in nodes] + [logits.detach().clone()]

    def rates(self, lr: float) -> dict[str, float]:
        """The step size of every parameter: ``lr`` times its group's multiplier."""
        return {n: lr * self.mult.get(g, 1.0) for g, names in self.groups.items() for n in names}

    @torch.no_grad()
    def changes(self, rates: dict[str, float], names: set[str]) -> list[torch.Tensor]:
        """Vertex changes (then logits) after stepping only the parameters in ``names``."""
        for n, p in self.params.items():
            p.copy_(self.origin[n])
            if n in names:  # the very operation torch.optim.SGD applies
                p.add_(self.grads[n], alpha=-rates[n])
        after = self._values()
        for n, p in self.params.items():
            p.copy_(self.origin[n])
        return [a - b for a, b in zip(after, self.before)]


def _mean_sq(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean())


def _moving(groups: Mapping[str, list[str]], freeze: Sequence[str] | str
            ) -> tuple[list[str], tuple[str, ...]]:
    """Groups that take the step, and the validated ``freeze`` tuple."""
    freeze = (freeze,) if isinstance(freeze, str) else tuple(freeze)
    unknown = [g for g in freeze if g not in groups]
    if unknown:
        raise ArchscaleError(f"cannot freeze unknown group(s) {unknown}; "
                             f"groups of this model: {list(groups)}")
    return [g for g in groups if g not in freeze], freeze


def _lr_mult_for(lr_mult: Mapping[str, float] | Callable[[int], Mapping[str, float]] | None, width: int
                 ) -> Mapping[str, float] | None:
    return lr_mult(width) if callable(lr_mult) else lr_mult


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _parse_graphs(graphs: Iterable[Dag | str], arch: str | None) -> list[Dag]:
    dags = []
    for g in graphs:
        dag = Dag.parse(g, ops=arch or "mlp") if isinstance(g, str) else g
        if not isinstance(dag, Dag):
            raise ArchscaleError(f"graphs must be Dag objects or DAG codes, got {type(g).__name__}")
        dag.require_path()
        dags.append(dag)
    if not dags:
        raise ArchscaleError("graphs is empty; give at least one DAG, e.g. ['2', '2_02', '2_22']")
    return dags


def _unpack_data(data: object) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return data.x_train, data.y_train  # archscale.data.Dataset
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ArchscaleError(
        f"data must be an (x, y) pair of tensors or an archscale.data.Dataset, got {type(data).__name__}"
    )
