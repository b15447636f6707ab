"""Measurements on a built network: forward second moments (eq. 3) and the maximal-update check.

The paper's learning rates (eq. 8, 9) come from one requirement: after one SGD step every
vertex's pre-activation change ``E[(Delta z_i(l))^2]`` stays Theta(1), independent of width.
This module measures that cause directly:

* :func:`delta_z` — one SGD step on a copy of a DagMLP/DagCNN; the mean squared change of
  every vertex (and of the logits) on a probe batch, with per-parameter-group attribution.
* :func:`coord_check` — mean ``|z|`` and ``|z_t - z_0|`` per vertex over the first steps,
  for a range of widths (the coordinate check of the mup package).
* :func:`delta_z_vs_lr`, :func:`delta_z_graphs` — the tables the notebook plots, and the
  analysis on them: :func:`fit_path_law` (exponent and depth offset of ``sum_p L_p^k`` with
  bootstrap intervals), :func:`delta_z_spread`, :func:`width_slope`, :func:`lr_optimum_drift`.

What a "vertex" is follows the model's layout: with ``layout="paper"`` (default) the vertices
hold pre-activations ``z(l)``; with ``layout="reference"`` they hold sums of post-activations
(the reference code's block is Linear then ReLU). Either way the probe measures the change of
the values ``model(x, return_nodes=True)`` returns, plus the logits as the output vertex.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .dag import Dag
from .errors import ArchscaleError
from .scaling import lr_scale

__all__ = [
    "COORD_CHECK_COLUMNS",
    "LOSSES",
    "DeltaZResult",
    "PathLawFit",
    "coord_check",
    "coord_slopes",
    "delta_z",
    "delta_z_graphs",
    "delta_z_spread",
    "delta_z_vs_lr",
    "fit_path_law",
    "forward_second_moments",
    "lr_at_target",
    "loss_value",
    "lr_optimum_drift",
    "min_path_params",
    "parameter_groups",
    "path_law_summary",
    "update_lr_table",
    "width_slope",
]

LOSSES = ("mse", "ce")
#: Columns of :func:`coord_check`'s table, in order.
COORD_CHECK_COLUMNS = ("width", "seed", "step", "vertex", "kind", "mean_abs_z", "mean_abs_delta_z",
                       "loss")



@torch.no_grad()
def forward_second_moments(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Mean of ``z**2`` at every DAG vertex of ``model`` on the batch ``x``.

    The in-degree initialization keeps these equal across vertices (paper eq. 3); entry ``v``
    is vertex ``v``'s value averaged over batch, units (and positions for CNNs).
    """
    was_training = model.training
    model.eval()
    try:
        _, nodes = model(x, return_nodes=True)
    finally:
        model.train(was_training)
    return np.array([float(node.double().pow(2).mean()) for node in nodes])


# ---------------------------------------------------------------------- argument checks

LossArg = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_loss(loss: object) -> LossArg:
    if callable(loss):
        return loss  # type: ignore[return-value]
    if loss not in LOSSES:
        raise ArchscaleError(f"unknown loss {loss!r}; accepted: 'mse' (squared error), 'ce' (cross-entropy) "
                         f"or a function (logits, y) -> scalar")
    return loss  # type: ignore[return-value]


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArchscaleError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_seeds(seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ArchscaleError(f"seeds must be a non-empty list of integers such as [0, 1, 2], got {seeds!r}")
    return [int(s) for s in seeds]


def _check_widths(widths: Iterable[int]) -> list[int]:
    try:
        widths = list(widths)
    except TypeError:
        raise ArchscaleError(f"widths must be a list of integers >= 1 such as [64, 128], got {widths!r}"
                         ) from None
    if not widths:
        raise ArchscaleError("widths is empty; give at least one width, e.g. [64, 128, 256]")
    for w in widths:
        _check_positive_int(w, "every width")
    return [int(w) for w in widths]


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


# ---------------------------------------------------------------------- parameter groups
def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names by group: ``"stem"``, ``"edge s->d"`` per parameterized edge, ``"readout"``.

    Skip edges carry no parameters and form no group. Groups are ordered stem, edges, readout.
    """
    _check_model(model)
    groups: dict[str, list[str]] = {"stem": []}
    for e in model.dag.edges:
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


# ---------------------------------------------------------------------- one-step Delta z
@dataclass
class DeltaZResult:
    """What :func:`delta_z` measured.

    ``per_vertex``: one row per vertex — ``vertex`` (0 .. N-1 the DAG vertices, N the logits),
    ``kind`` (``"vertex"`` or ``"output"``), ``delta_z2`` (mean squared change over batch, units
    and positions), ``z2`` (mean square before the step) and ``rel_delta_z2 = delta_z2 / z2``.
    ``contributions`` (or None): one row per (vertex, group) — ``delta_z2`` when only that
    group's parameters take the step, and ``share = mean(dz_group * dz_all) / mean(dz_all**2)``.
    """

    per_vertex: pd.DataFrame
    contributions: pd.DataFrame | None
    lr: float
    loss: str
    loss_value: float
    layout: str
    frozen: tuple[str, ...] = field(default_factory=tuple)

    @property
    def output(self) -> float:
        """Mean squared change of the logits."""
        return float(self.per_vertex.loc[self.per_vertex["kind"] == "output", "delta_z2"].iloc[0])

    @property
    def last_vertex(self) -> float:
        """Mean squared change of the last DAG vertex (the one that feeds the readout)."""
        return float(self.per_vertex.loc[self.per_vertex["kind"] == "vertex", "delta_z2"].iloc[-1])

    @property
    def total(self) -> pd.Series:
        """``delta_z2`` indexed by vertex (the logits last)."""
        return self.per_vertex.set_index("vertex")["delta_z2"]

    def at(self, vertex: int) -> float:
        """``delta_z2`` of one vertex (``N`` = the logits)."""
        rows = self.per_vertex.loc[self.per_vertex["vertex"] == vertex, "delta_z2"]
        if rows.empty:
            raise ArchscaleError(
                f"no vertex {vertex}; vertices are 0..{len(self.per_vertex) - 1} (last = logits)"
            )
        return float(rows.iloc[0])


class _Stepper:
    """A private copy of a model with its gradient on one batch; re-applies SGD steps on demand."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossArg,
                 probe_x: torch.Tensor | None = None):
        self.model = copy.deepcopy(model)  # keeps the caller's train/eval mode and device
        self.groups = parameter_groups(self.model)
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

    def rates(self, lr: float, lr_mult: Mapping[str, float] | None) -> dict[str, float]:
        """The step size of every parameter: ``lr`` times its group's multiplier."""
        mult = _check_lr_mult(lr_mult, self.groups)
        return {n: lr * mult.get(g, 1.0) for g, names in self.groups.items() for n in names}

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


def delta_z(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, loss: LossArg = "mse", *,
            contributions: bool = True, freeze: Sequence[str] | str = (),
            lr_mult: Mapping[str, float] | None = None, probe_x: torch.Tensor | None = None) -> DeltaZResult:
    """One plain SGD step of size ``lr`` on a copy of ``model``; the mean squared vertex changes.

    The gradient is of the mean ``loss`` over the batch ``(x, y)`` (see :func:`loss_value`); the
    change of every vertex returned by ``model(x, return_nodes=True)`` and of the logits is
    measured on ``probe_x`` (default ``x``). ``freeze`` names groups (see :func:`parameter_groups`)
    that do not move; ``lr_mult`` maps groups to LR multipliers (e.g. ``{"readout": 64 / width}``).
    Per-group contributions step one group at a time (first-order attribution): their
    ``delta_z2`` need not add up to the total, because cross terms between groups and
    second-order interactions are left out; their ``share`` column adds up to 1 up to those
    interactions. The caller's model is never modified; its train/eval mode is kept.
    """
    model = _check_model(model)
    lr = validate.learning_rate(lr, "lr")
    loss = _check_loss(loss)
    x, y = _as_batch(model, x, y, loss)
    if probe_x is not None:
        if not isinstance(probe_x, torch.Tensor) or probe_x.ndim < 1 or probe_x.shape[0] == 0:
            raise ArchscaleError("probe_x must be a non-empty tensor of examples shaped like x")
        probe_x = probe_x.to(device=x.device, dtype=x.dtype)
    groups = parameter_groups(model)
    moving, freeze = _moving(groups, freeze)
    _check_lr_mult(lr_mult, groups)
    stepper = _Stepper(model, x, y, loss, probe_x)
    rates = stepper.rates(lr, lr_mult)
    total = stepper.changes(rates, {n for g in moving for n in groups[g]})
    n_vertices = len(total) - 1
    kinds = ["vertex"] * n_vertices + ["output"]
    per_vertex = pd.DataFrame({
        "vertex": range(n_vertices + 1),
        "kind": kinds,
        "delta_z2": [_mean_sq(d) for d in total],
        "z2": [_mean_sq(b) for b in stepper.before],
    })
    per_vertex["rel_delta_z2"] = per_vertex["delta_z2"] / per_vertex["z2"].where(per_vertex["z2"] > 0)
    contrib = None
    if contributions:
        rows = []
        for g in moving:
            if not groups[g]:
                continue
            part = stepper.changes(rates, set(groups[g]))
            for v, (d, t) in enumerate(zip(part, total)):
                denom = _mean_sq(t)
                share = float((d.double() * t.double()).mean()) / denom if denom > 0 else float("nan")
                rows.append({"vertex": v, "kind": kinds[v], "group": g, "delta_z2": _mean_sq(d),
                             "share": share})
        contrib = pd.DataFrame(rows, columns=["vertex", "kind", "group", "delta_z2", "share"])
    return DeltaZResult(per_vertex, contrib, lr, loss if isinstance(loss, str) else "custom",
                        stepper.loss_value, getattr(model, "layout", "?"), freeze)


def _delta_z_many(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lrs: Sequence[float], loss: LossArg,
                  freeze: Sequence[str] | str = (), lr_mult: Mapping[str, float] | None = None
                  ) -> list[list[float]]:
    """``delta_z2`` per vertex (logits last) for several step sizes, from one gradient."""
    groups = parameter_groups(model)
    moving, _ = _moving(groups, freeze)
    _check_lr_mult(lr_mult, groups)
    stepper = _Stepper(model, x, y, loss)
    names = {n for g in moving for n in groups[g]}
    return [[_mean_sq(d) for d in stepper.changes(stepper.rates(lr, lr_mult), names)] for lr in lrs]


def _lr_mult_for(lr_mult: Mapping[str, float] | Callable[[int], Mapping[str, float]] | None, width: int
                 ) -> Mapping[str, float] | None:
    return lr_mult(width) if callable(lr_mult) else lr_mult


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def delta_z_vs_lr(make_model: Callable[[int], nn.Module], widths: Iterable[int], lrs: Iterable[float],
                  x: torch.Tensor, y: torch.Tensor, *, loss: LossArg = "ce", seeds: Iterable[int] = (0,),
                  freeze: Sequence[str] | str = (),
                  lr_mult: Mapping[str, float] | Callable[[int], Mapping[str, float]] | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """One-step ``delta_z2`` of every vertex for each (width, lr, seed): a tidy table.

    ``make_model(width)`` builds the model; it is called right after ``torch.manual_seed(seed)``.
    ``freeze`` and ``lr_mult`` are as in :func:`delta_z`; ``lr_mult`` may be a function of the
    width. Columns: width, lr, seed, vertex, kind, delta_z2 (vertex N = the logits, kind "output").
    """
    widths = _check_widths(widths)
    lrs = [validate.learning_rate(lr, "every lr") for lr in lrs]
    if not lrs:
        raise ArchscaleError("lrs is empty; give at least one learning rate, e.g. [0.01, 0.1, 1.0]")
    seeds = _check_seeds(seeds)
    loss = _check_loss(loss)
    rows = []
    jobs = [(w, s) for w in widths for s in seeds]
    for width, seed in _progress(jobs, len(jobs), "delta z vs lr", progress):
        torch.manual_seed(seed)
        model = _check_model(make_model(width))
        xb, yb = _as_batch(model, x, y, loss)
        for lr, values in zip(lrs, _delta_z_many(model, xb, yb, lrs, loss, freeze,
                                                    _lr_mult_for(lr_mult, width))):
            n = len(values) - 1
            for v, value in enumerate(values):
                rows.append((width, lr, seed, v, "output" if v == n else "vertex", value))
    return pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])


def delta_z_graphs(graphs: Iterable[Dag | str], make_model: Callable[[Dag], nn.Module], x: torch.Tensor,
                   y: torch.Tensor, lr: float, *, loss: LossArg = "ce", seeds: Iterable[int] = (0,),
                   arch: str | None = None, kernel_size: int | None = None,
                   freeze: Sequence[str] | str = (), lr_mult: Mapping[str, float] | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """One-step ``delta_z2`` per graph at a shared ``lr`` and at the eq. 8/9 scaled LR.

    The scaled LR is ``lr * lr_scale(dag, arch, kernel_size)`` (so the base graph gets ``lr``).
    ``make_model(dag)`` is called right after ``torch.manual_seed(seed)``. Columns: graph, seed,
    lr_rule ("shared" | "scaled"), lr, vertex, kind, delta_z2. Three rows per rule: the last DAG
    vertex (kind "last"), the logits (kind "output"), and the logits when the readout does not
    step (kind "output_no_readout": the part of the output's change that the hidden layers cause).
    """
    lr = validate.learning_rate(lr, "lr")
    loss = _check_loss(loss)
    seeds = _check_seeds(seeds)
    dags = []
    for g in graphs:
        dag = Dag.parse(g, ops=arch or "mlp") if isinstance(g, str) else g
        if not isinstance(dag, Dag):
            raise ArchscaleError(f"graphs must be Dag objects or DAG codes, got {type(g).__name__}")
        dag.require_path()
        dags.append(dag)
    if not dags:
        raise ArchscaleError("graphs is empty; give at least one DAG, e.g. ['2', '2_02', '2_22']")
    rows = []
    jobs = [(d, s) for d in dags for s in seeds]
    for dag, seed in _progress(jobs, len(jobs), "delta z per graph", progress):
        scaled = lr * lr_scale(dag, arch, kernel_size)
        torch.manual_seed(seed)
        model = _check_model(make_model(dag))
        xb, yb = _as_batch(model, x, y, loss)
        groups = parameter_groups(model)
        moving, _ = _moving(groups, freeze)
        _check_lr_mult(lr_mult, groups)
        stepper = _Stepper(model, xb, yb, loss)
        names = {n for g in moving for n in groups[g]}
        for rule, rate in (("shared", lr), ("scaled", scaled)):
            rates = stepper.rates(rate, lr_mult)
            values = [_mean_sq(d) for d in stepper.changes(rates, names)]
            hidden_only = _mean_sq(stepper.changes(rates, names - set(groups["readout"]))[-1])
            n = len(values) - 1
            rows.append((dag.code, seed, rule, rate, n - 1, "last", values[n - 1]))
            rows.append((dag.code, seed, rule, rate, n, "output", values[n]))
            rows.append((dag.code, seed, rule, rate, n, "output_no_readout", hidden_only))
    return pd.DataFrame(rows, columns=["graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"])


# ---------------------------------------------------------------------- coordinate check
def _unpack_data(data: object) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return data.x_train, data.y_train  # archscale.data.Dataset
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ArchscaleError(
        f"data must be an (x, y) pair of tensors or an archscale.data.Dataset, got {type(data).__name__}"
    )


def coord_check(make_model: Callable[[int], nn.Module], widths: Iterable[int], lr: float, steps: int,
                data: object, *, loss: LossArg = "ce", seeds: Iterable[int] = (0,),
                batch_size: int | None = None,
                probe_size: int = 256, freeze: Sequence[str] | str = (),
                lr_mult: Mapping[str, float] | Callable[[int], Mapping[str, float]] | None = None,
                device: str | torch.device | None = None, progress: bool = True) -> pd.DataFrame:
    """Coordinate check: per vertex, mean ``|z|`` and mean ``|z_t - z_0|`` over the first SGD steps.

    For each width and seed, ``make_model(width)`` (called after ``torch.manual_seed(seed)``)
    takes ``steps`` plain SGD steps of size ``lr`` on ``data`` — an ``(x, y)`` pair or an
    ``archscale.data.Dataset`` (its training split) — full-batch, or minibatches of
    ``batch_size`` in a seeded order. Vertex values are read on a fixed probe batch (the first
    ``probe_size`` examples). Under the maximal-update heuristic both columns stay flat across
    widths; a column that grows or shrinks with width shows where it breaks.

    Columns (:data:`COORD_CHECK_COLUMNS`): ``width``, ``seed``, ``step`` (0 = initialization,
    t = after t steps), ``vertex`` (0 .. N-1 the DAG vertices, N the logits), ``kind``
    (``"vertex"`` or ``"output"``), ``mean_abs_z`` (mean ``|z_t|`` over probe examples, units and
    positions), ``mean_abs_delta_z`` (mean ``|z_t - z_0|``), ``loss`` (training loss on the batch
    of step t+1 before it is taken; NaN on the last row of a run).
    """
    widths = _check_widths(widths)
    lr = validate.learning_rate(lr, "lr")
    steps = _check_positive_int(steps, "steps")
    loss = _check_loss(loss)
    seeds = _check_seeds(seeds)
    probe_size = _check_positive_int(probe_size, "probe_size")
    if batch_size is not None:
        batch_size = _check_positive_int(batch_size, "batch_size")
    if not callable(make_model):
        raise ArchscaleError(
            "make_model must be a function width -> model, e.g. lambda n: DagMLP('2_02', 64, n, 10)"
        )
    x_all, y_all = _unpack_data(data)
    if not isinstance(x_all, torch.Tensor) or not isinstance(y_all, torch.Tensor) \
            or len(x_all) != len(y_all) or len(x_all) == 0:
        raise ArchscaleError("data must hold the same non-zero number of inputs and targets, as tensors")
    rows = []
    jobs = [(w, s) for w in widths for s in seeds]
    for width, seed in _progress(jobs, len(jobs), "coord check", progress):
        torch.manual_seed(seed)
        model = _check_model(make_model(width))
        if device is not None:
            model = model.to(device)
        x, y = _as_batch(model, x_all, y_all, loss)
        x_probe = x[:probe_size]
        groups = parameter_groups(model)
        moving, _ = _moving(groups, freeze)
        mult = _check_lr_mult(_lr_mult_for(lr_mult, width), groups)
        named = dict(model.named_parameters())
        params = [named[n] for g in moving for n in groups[g]]
        rates = [lr * mult.get(g, 1.0) for g in moving for _ in groups[g]]
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(x), generator=gen).to(x.device) if batch_size else None
        start = 0
        with torch.no_grad():
            logits, nodes = model(x_probe, return_nodes=True)
        init = [n.clone() for n in nodes] + [logits.clone()]
        current = init
        for step in range(steps + 1):
            batch_loss = float("nan")
            if step < steps:
                if order is None:
                    xb, yb = x, y
                else:
                    if start + batch_size > len(x):
                        order = torch.randperm(len(x), generator=gen).to(x.device)
                        start = 0
                    idx = order[start:start + batch_size]
                    start += batch_size
                    xb, yb = x[idx], y[idx]
                with torch.enable_grad():
                    value = loss_value(model(xb), yb, loss)
                    grads = torch.autograd.grad(value, params, allow_unused=True)
                batch_loss = float(value.detach())
            n = len(current) - 1
            for v, (now, start_value) in enumerate(zip(current, init)):
                rows.append((width, seed, step, v, "output" if v == n else "vertex",
                             float(now.double().abs().mean()),
                             float((now - start_value).double().abs().mean()), batch_loss))
            if step < steps:
                with torch.no_grad():
                    for p, g, rate in zip(params, grads, rates):
                        if g is not None:
                            p.add_(g, alpha=-rate)
                    logits, nodes = model(x_probe, return_nodes=True)
                current = [n.clone() for n in nodes] + [logits.clone()]
    return pd.DataFrame(rows, columns=list(COORD_CHECK_COLUMNS))


# ---------------------------------------------------------------------- analysis
def min_path_params(dag: Dag | str, arch: str = "mlp") -> int:
    """Fewest parameterized edges on any end-to-end path (0 when a path is all skips)."""
    dag = Dag.parse(dag, ops=arch) if isinstance(dag, str) else dag
    dag.require_path()
    return min(dag.depth_counts(0))


def _per_graph(table: pd.DataFrame, kind: str, lr_rule: str | None = "shared", min_params: int = 0,
               arch: str = "mlp") -> pd.DataFrame:
    need = {"graph", "kind", "delta_z2"}
    if not need <= set(table.columns):
        raise ArchscaleError(
            f"the table needs columns {sorted(need)} (from delta_z_graphs), got {list(table.columns)}"
        )
    sel = table[table["kind"] == kind]
    if lr_rule is not None and "lr_rule" in sel.columns:
        sel = sel[sel["lr_rule"] == lr_rule]
    if sel.empty:
        raise ArchscaleError(f"no rows with kind={kind!r}" + (f" and lr_rule={lr_rule!r}" if lr_rule else ""))
    if min_params:
        keep = {g for g in sel["graph"].unique() if min_path_params(g, arch) >= min_params}
        sel = sel[sel["graph"].isin(keep)]
    cols = ["graph", "lr"] if "lr" in sel.columns else ["graph"]
    return sel.groupby(cols, as_index=False)["delta_z2"].mean()


def _ols(logs: np.ndarray, logy: np.ndarray, w: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``logy`` on each column of ``logs``; (intercepts, slopes, ssr) per column.

    ``logs`` is (n, m); ``w`` optional (b, n) resampling counts for a batch of bootstraps.
    """
    if w is None:
        w = np.ones((1, logs.shape[0]))
    sw = w.sum(1, keepdims=True)                        # (b, 1)
    mx = (w @ logs) / sw                                # (b, m)
    my = (w @ logy)[:, None] / sw                       # (b, 1)
    sxx = w @ logs**2 - sw * mx**2
    sxy = w @ (logs * logy[:, None]) - sw * mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 1e-300, sxy / sxx, np.nan)
    intercept = my - slope * mx
    syy = w @ logy**2 - sw[:, 0] * my[:, 0] ** 2       # (b,)
    ssr = np.maximum(syy[:, None] - slope * sxy, 0.0)   # residual sum of squares, no (b, m, n) array
    return intercept, slope, ssr


def _fixed_slope(logs: np.ndarray, logy: np.ndarray, slope: float, w: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    if w is None:
        w = np.ones((1, logs.shape[0]))
    resid = logy[:, None] - slope * logs                # (n, m)
    sw = w.sum(1, keepdims=True)
    intercept = (w @ resid) / sw                        # (b, m)
    ssr = np.maximum(w @ resid**2 - sw * intercept**2, 0.0)
    return intercept, ssr


@dataclass
class PathLawFit:
    """Fits of ``log delta_z2 = a + b * log sum_p (L_p)^k`` with ``L_p = offset + params(p)``.

    ``table``: one row per law — ``law``, ``power`` k, ``offset``, ``exponent`` b, ``intercept``
    a, 95% bootstrap intervals ``exponent_lo/hi`` and ``offset_lo/hi`` (NaN when held fixed),
    ``n_params``, ``ssr``, ``rmse`` (in natural-log units), ``aic`` and ``delta_aic`` (0 = best).
    ``data``: per graph — graph, delta_z2, and ``S{k}_off{o}`` columns for the fitted laws.
    ``eq8_in_ci``: whether b = 1 lies in the free-exponent interval of the k=3, offset-3 law
    (None when k=3 was not fitted).
    """

    table: pd.DataFrame
    data: pd.DataFrame
    n_graphs: int
    n_boot: int
    seed: int
    eq8_offset: float
    eq8_in_ci: bool | None
    kind: str = "last"
    min_params: int = 0
    offset_grid: tuple[float, ...] = ()

    @property
    def best(self) -> pd.Series:
        """The row with the lowest AIC."""
        return self.table.sort_values("aic").iloc[0]

    def law(self, name: str) -> pd.Series:
        rows = self.table[self.table["law"] == name]
        if rows.empty:
            raise ArchscaleError(f"no law {name!r}; fitted laws: {list(self.table['law'])}")
        return rows.iloc[0]

    def _has(self, name: str) -> bool:
        return bool((self.table["law"] == name).any())

    def verdict(self) -> str:
        """A plain-language summary: exponents with intervals and which law the data favour."""
        best = self.best
        lines = [
            f"{self.n_graphs} graphs (vertex: {self.kind}"
            + (f"; every path with >= {self.min_params} blocks" if self.min_params else "")
            + f"), {self.n_boot} bootstrap resamples of graphs (seed {self.seed}).",
            f"eq. 8 predicts delta_z2 ∝ (sum_p L_p^3)^b with b = 1 and offset {self.eq8_offset:g}.",
        ]
        if self._has("sum L^3, free b"):
            free3 = self.law("sum L^3, free b")
            lines.append(
                f"Free exponent on sum L_p^3 (offset {self.eq8_offset:g}): b = {free3.exponent:.3f} "
                f"[95% CI {free3.exponent_lo:.3f}, {free3.exponent_hi:.3f}] -> b = 1 is "
                f"{'inside' if self.eq8_in_ci else 'OUTSIDE'} the interval. Holding delta_z2 fixed would "
                f"take eta ∝ (sum_p L_p^3)^{-free3.exponent / 2:.2f}; eq. 8 uses ^-0.50."
            )
        edges = []
        for k in sorted(set(self.table["power"]), reverse=True):
            name = f"sum L^{k}, free b and offset"
            r = self.law(name)
            lines.append(f"Free exponent and offset on sum L_p^{k}: b = {r.exponent:.3f} "
                         f"[{r.exponent_lo:.3f}, {r.exponent_hi:.3f}], offset = {r.offset:g} "
                         f"[{r.offset_lo:g}, {r.offset_hi:g}].")
            if self.offset_grid and r.offset in (self.offset_grid[0], self.offset_grid[-1]):
                edges.append(name)
        lines.append(f"Lowest AIC: '{best.law}' (rmse {best.rmse:.3f} in ln units).")
        if self._has("eq. 8: sum L^3, b=1") and self._has("sum L^2, b=1"):
            gap = self.law("eq. 8: sum L^3, b=1").aic - self.law("sum L^2, b=1").aic
            winner = "eq. 8 (sum L_p^3)" if gap < 0 else "sum L_p^2"
            lines.append(
                f"Between the two exponent-1 laws (offset {self.eq8_offset:g}): AIC(eq. 8) - AIC(sum L^2) = "
                f"{gap:+.1f} -> " + (f"the data favour {winner}." if abs(gap) > 2
                                     else "they cannot be told apart (|gap| <= 2).")
            )
        if edges:
            lines.append(f"Note: the free offset of {', '.join(edges)} sits at the edge of the grid "
                         f"{self.offset_grid[0]:g}..{self.offset_grid[-1]:g}: the offset is not identified.")
        if not self._has("eq. 8: sum L^3, b=1"):
            return "\n".join(lines)
        eq8 = self.law("eq. 8: sum L^3, b=1")
        if eq8.delta_aic <= 2:
            lines.append("Verdict: the data are consistent with eq. 8 (within 2 AIC units of the best law).")
        else:
            lines.append(f"Verdict: the data do not follow eq. 8: '{best.law}' fits better by "
                         f"{eq8.delta_aic:.1f} AIC units.")
        return "\n".join(lines)


def fit_path_law(table: pd.DataFrame, *, kind: str = "last", lr_rule: str = "shared",
                 arch: str = "mlp", powers: Sequence[int] = (2, 3), offsets: Sequence[float] | None = None,
                 eq8_offset: float = 3.0, min_params: int = 0, n_boot: int = 1000, seed: int = 0
                 ) -> PathLawFit:
    """Fit how one-step ``delta_z2`` grows with the path sum ``sum_p L_p^k`` across graphs.

    ``table`` comes from :func:`delta_z_graphs` (rows of ``kind`` at one ``lr_rule``; seeds
    are averaged per graph; ``min_params`` keeps only graphs whose every path carries at least
    that many parameterized edges). For each ``k`` in ``powers``: the exponent fixed at 1 (eq. 8's
    ``delta_z2 ∝ eta^2 sum_p L_p^3`` for k=3), a free exponent at ``eq8_offset``, and a free
    exponent with the offset chosen from ``offsets`` (default 0.5 .. 8 in steps of 0.5) by
    least squares. Intervals: percentile bootstrap over graphs with ``numpy`` seed ``seed``.
    """
    if n_boot < 10:
        raise ArchscaleError(f"n_boot must be at least 10 for a percentile interval, got {n_boot}")
    if not powers or any(k <= 0 for k in powers):
        raise ArchscaleError(f"powers must be positive, e.g. (2, 3), got {powers!r}")
    data = _per_graph(table, kind, lr_rule, min_params, arch)
    if data["lr"].nunique() > 1:
        raise ArchscaleError("the graphs were probed at different learning rates; "
                             "fit one shared lr at a time")
    data = data[data["delta_z2"] > 0].reset_index(drop=True)
    if len(data) < 4:
        raise ArchscaleError(f"need at least 4 graphs with a non-zero delta_z2 to fit a law, got {len(data)}")
    offsets = [x / 2 for x in range(1, 17)] if offsets is None else [float(o) for o in offsets]
    if eq8_offset not in offsets:
        offsets = sorted(set(offsets) | {float(eq8_offset)})
    if any(o <= 0 for o in offsets):
        raise ArchscaleError("offsets must be > 0 (a graph whose paths are all skips would have sum 0)")
    dags = [Dag.parse(g, ops=arch) for g in data["graph"]]
    logy = np.log(data["delta_z2"].to_numpy())
    n = len(logy)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    i0 = offsets.index(float(eq8_offset))
    rows = []

    def aic(ssr: float, k: int) -> float:
        return n * math.log(max(ssr, 1e-300) / n) + 2 * k

    for k in powers:
        logs = np.log(np.array([[float(d.path_power_sum(power=k, offset=o)) for o in offsets] for d in dags]))
        for o in offsets:
            data[f"S{k}_off{o:g}"] = np.exp(logs[:, offsets.index(o)])
        # exponent fixed at 1, offset eq8_offset
        a, ssr = _fixed_slope(logs[:, [i0]], logy, 1.0)
        name = "eq. 8: sum L^3, b=1" if k == 3 else f"sum L^{k}, b=1"
        rows.append({"law": name, "power": k, "offset": eq8_offset, "exponent": 1.0, "intercept": a[0, 0],
                     "exponent_lo": np.nan, "exponent_hi": np.nan, "offset_lo": np.nan, "offset_hi": np.nan,
                     "n_params": 1, "ssr": ssr[0, 0]})
        # free exponent at eq8_offset
        a, b, ssr = _ols(logs[:, [i0]], logy)
        _, bb, _ = _ols(logs[:, [i0]], logy, counts)
        lo, hi = np.nanpercentile(bb[:, 0], [2.5, 97.5])
        rows.append({"law": f"sum L^{k}, free b", "power": k, "offset": eq8_offset, "exponent": b[0, 0],
                     "intercept": a[0, 0], "exponent_lo": lo, "exponent_hi": hi, "offset_lo": np.nan,
                     "offset_hi": np.nan, "n_params": 2, "ssr": ssr[0, 0]})
        # free exponent and offset
        a, b, ssr = _ols(logs, logy)
        j = int(np.nanargmin(ssr[0]))
        _, bb, ss = _ols(logs, logy, counts)
        jb = np.nanargmin(np.where(np.isnan(ss), np.inf, ss), axis=1)
        b_boot = bb[np.arange(n_boot), jb]
        o_boot = np.array(offsets)[jb]
        blo, bhi = np.nanpercentile(b_boot, [2.5, 97.5])
        olo, ohi = np.percentile(o_boot, [2.5, 97.5])
        rows.append({"law": f"sum L^{k}, free b and offset", "power": k, "offset": offsets[j],
                     "exponent": b[0, j], "intercept": a[0, j], "exponent_lo": blo, "exponent_hi": bhi,
                     "offset_lo": olo, "offset_hi": ohi, "n_params": 3, "ssr": ssr[0, j]})
    out = pd.DataFrame(rows)
    out["rmse"] = np.sqrt(out["ssr"] / n)
    out["aic"] = [aic(s, k) for s, k in zip(out["ssr"], out["n_params"])]
    out["delta_aic"] = out["aic"] - out["aic"].min()
    in_ci = None
    if 3 in powers:
        r = out[out["law"] == "sum L^3, free b"].iloc[0]
        in_ci = bool(r.exponent_lo <= 1.0 <= r.exponent_hi)
    return PathLawFit(out, data, n, n_boot, seed, float(eq8_offset), in_ci, kind, int(min_params),
                      tuple(offsets))


def path_law_summary(fits: Mapping[str, PathLawFit]) -> pd.DataFrame:
    """One row per labelled fit: the free exponent on ``sum L_p^3`` (with interval), the free
    offset, whether b = 1 is inside the interval, the best law by AIC and eq. 8's AIC gap."""
    rows = []
    for label, fit in fits.items():
        free3 = fit.law("sum L^3, free b")
        both3 = fit.law("sum L^3, free b and offset")
        rows.append({"fit": label, "n_graphs": fit.n_graphs, "b_sumL3": free3.exponent,
                     "b_lo": free3.exponent_lo, "b_hi": free3.exponent_hi, "b=1 in CI": fit.eq8_in_ci,
                     "free_offset": both3.offset, "offset_lo": both3.offset_lo, "offset_hi": both3.offset_hi,
                     "best_law": fit.best.law,
                     "eq8_delta_aic": float(fit.law("eq. 8: sum L^3, b=1").delta_aic)})
    return pd.DataFrame(rows)


def delta_z_spread(table: pd.DataFrame, *, kind: str = "last", min_params: int = 0, arch: str = "mlp"
                   ) -> pd.DataFrame:
    """Spread of per-graph ``delta_z2`` (seeds averaged) under each LR rule of :func:`delta_z_graphs`.

    Columns: lr_rule, n_graphs, min, max, max_min_ratio, q90_q10_ratio, sd_log10 (the standard
    deviation of log10 delta_z2) and, with a shared rule, narrowing (shared max/min over this
    one's). The maximal-update heuristic wants the scaled rule's spread small.
    ``min_params`` keeps only graphs whose every path carries that many parameterized edges.
    """
    rules = list(dict.fromkeys(table["lr_rule"])) if "lr_rule" in table.columns else [None]
    rows = []
    for rule in rules:
        vals = _per_graph(table, kind, rule, min_params, arch).groupby("graph")["delta_z2"].mean().to_numpy()
        vals = vals[vals > 0]
        q10, q90 = np.quantile(vals, [0.1, 0.9])
        rows.append({"lr_rule": rule, "n_graphs": len(vals), "min": vals.min(), "max": vals.max(),
                     "max_min_ratio": vals.max() / vals.min(), "q90_q10_ratio": q90 / q10,
                     "sd_log10": float(np.std(np.log10(vals)))})
    out = pd.DataFrame(rows)
    if "shared" in set(out["lr_rule"]):
        shared = out.loc[out["lr_rule"] == "shared", "max_min_ratio"].iloc[0]
        out["narrowing"] = shared / out["max_min_ratio"]
    return out


def lr_at_target(table: pd.DataFrame, target: float = 1.0, *, kind: str = "vertex",
                 vertex: int | None = None, by: Sequence[str] = ("width",)) -> pd.DataFrame:
    """The learning rate at which seed-averaged ``delta_z2`` reaches ``target``, per group.

    Interpolates linearly in log-log between the two grid LRs that bracket ``target`` (NaN when
    the grid does not reach it). ``table`` comes from :func:`delta_z_vs_lr`; ``vertex`` picks one
    vertex (default: the last row of ``kind``). Columns: ``by`` columns, vertex, lr_at_target.
    """
    target = validate.learning_rate(target, "target")
    sel = table[table["kind"] == kind]
    if sel.empty:
        raise ArchscaleError(f"no rows with kind={kind!r}")
    if vertex is None:
        vertex = int(sel["vertex"].max())
    sel = sel[sel["vertex"] == vertex]
    rows = []
    for key, grp in sel.groupby(list(by)):
        curve = grp.groupby("lr")["delta_z2"].mean().sort_index()
        lx, ly = np.log(curve.index.to_numpy(float)), np.log(np.maximum(curve.to_numpy(), 1e-300))
        lt, value = math.log(target), float("nan")
        for i in range(len(lx) - 1):
            if (ly[i] - lt) * (ly[i + 1] - lt) <= 0 and ly[i] != ly[i + 1]:
                value = math.exp(lx[i] + (lt - ly[i]) * (lx[i + 1] - lx[i]) / (ly[i + 1] - ly[i]))
                break
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "vertex": vertex, "lr_at_target": value})
    return pd.DataFrame(rows)


def width_slope(table: pd.DataFrame, x: str = "width", y: str = "lr_at_target", *,
                x_min: float | None = None) -> tuple[float, float]:
    """Slope and intercept of ``log y`` against ``log x`` (rows with a finite positive y, x >= x_min).

    ``x_min`` restricts the fit to wide networks, where finite-width corrections have faded.
    """
    sel = table[np.isfinite(table[y].astype(float)) & (table[y] > 0)]
    if x_min is not None:
        sel = sel[sel[x] >= x_min]
    if sel[x].nunique() < 2:
        raise ArchscaleError(f"need {y} at two or more distinct {x} values to fit a slope"
                         + (f" (with {x} >= {x_min:g})" if x_min is not None else ""))
    slope, intercept = np.polyfit(np.log(sel[x].to_numpy(float)), np.log(sel[y].to_numpy(float)), 1)
    return float(slope), float(intercept)


def update_lr_table(tables: Mapping[str, pd.DataFrame], target: float = 1e-2, *, kind: str = "vertex",
                    vertex: int | None = None, wide_from: int | None = None) -> pd.DataFrame:
    """Per setup, the LR at which ``delta_z2`` reaches ``target`` at each width, and its width slope.

    ``tables`` maps a label to a :func:`delta_z_vs_lr` table. Columns: one ``n=<width>`` per width,
    ``slope_all`` (log-log slope over every width), ``slope_wide`` (over widths >= ``wide_from``,
    default the upper half; lowered to the second-widest width if needed) and ``wide_from``.
    Slope 0 = a width-independent maximal-update LR; standard parameterization predicts -0.5.
    """
    rows = []
    for label, table in tables.items():
        at = lr_at_target(table, target, kind=kind, vertex=vertex)
        widths = sorted(at["width"].unique())
        wide = widths[len(widths) // 2] if wide_from is None else wide_from
        wide = min(wide, widths[-2]) if len(widths) >= 2 else wide
        row = {"setup": label, **{f"n={w}": v for w, v in zip(at["width"], at["lr_at_target"])}}
        finite = at[np.isfinite(at["lr_at_target"])]
        row["slope_all"] = width_slope(finite)[0] if finite["width"].nunique() >= 2 else np.nan
        wide_ok = finite[finite["width"] >= wide]
        row["slope_wide"] = width_slope(wide_ok)[0] if wide_ok["width"].nunique() >= 2 else np.nan
        row["wide_from"] = wide
        rows.append(row)
    out = pd.DataFrame(rows).set_index("setup")
    width_cols = sorted((c for c in out.columns if c.startswith("n=")), key=lambda c: int(c[2:]))
    return out[width_cols + ["slope_all", "slope_wide", "wide_from"]]


def coord_slopes(table: pd.DataFrame, value: str = "mean_abs_delta_z", step: int | None = None, *,
                 x_min: float | None = None) -> pd.DataFrame:
    """Per vertex, the log-log slope of seed-averaged ``value`` against width at one ``step``.

    ``table`` comes from :func:`coord_check` (default step: the last). Slope 0 = width
    independent, the maximal-update ideal; also the ratio of the widest to the narrowest width.
    Columns: vertex, kind, slope, ratio.
    """
    if value not in ("mean_abs_delta_z", "mean_abs_z"):
        raise ArchscaleError(f"value must be 'mean_abs_delta_z' or 'mean_abs_z', got {value!r}")
    t = int(table["step"].max()) if step is None else step
    sel = table[table["step"] == t]
    if sel.empty:
        raise ArchscaleError(f"no rows at step {t}; steps in the table: {sorted(table['step'].unique())}")
    rows = []
    for (vertex, kind), grp in sel.groupby(["vertex", "kind"]):
        curve = grp.groupby("width", as_index=False)[value].mean()
        ok = curve[np.isfinite(curve[value]) & (curve[value] > 0)]
        slope = width_slope(ok, "width", value, x_min=x_min)[0] if ok["width"].nunique() >= 2 else np.nan
        ratio = float(curve[value].iloc[-1] / curve[value].iloc[0]) if curve[value].iloc[0] > 0 else np.nan
        rows.append({"vertex": vertex, "kind": kind, "slope": slope, "ratio": ratio})
    return pd.DataFrame(rows)


def lr_optimum_drift(results: pd.DataFrame, metric: str = "train_loss", by: str = "width",
                     ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Where the loss-vs-LR optimum sits for each ``by`` value, and how far it drifts.

    ``results`` is a sweep table (columns lr, seed, ``by``, ``metric``; ``diverged`` if present).
    Non-finite or diverged runs count as +inf. Per ``by`` value: ``best_lr`` (grid argmin of the
    seed-mean), ``best_lr_interp`` (vertex of a parabola through the minimum and its neighbours
    in log2 lr), ``best_loss``, ``best_lr_lo``/``best_lr_hi`` (range of each seed's own best LR),
    ``at_edge`` (the optimum is the grid's smallest or largest LR: the true one may lie beyond).
    Summary: ``slope`` of log2 best_lr_interp against log2 ``by`` (0 = perfect transfer),
    ``ratio`` best_lr_interp at the largest over the smallest ``by``, ``grid_steps`` (the
    drift of the grid argmin in grid steps), ``grid_factor`` (ratio of neighbouring LRs) and
    ``any_at_edge`` (then the drift is only a bound: widen the grid).
    """
    need = {"lr", "seed", by, metric}
    if not need <= set(results.columns):
        raise ArchscaleError(f"results need columns {sorted(need)}, got {list(results.columns)}")
    df = results.copy()
    bad = ~np.isfinite(df[metric].astype(float))
    if "diverged" in df.columns:
        bad |= df["diverged"].astype(bool)
    df.loc[bad, metric] = np.inf
    grid = np.sort(df["lr"].unique())
    if len(grid) < 2:
        raise ArchscaleError("need at least two learning rates to locate an optimum")
    rows = []
    for key, grp in df.groupby(by):
        curve = grp.groupby("lr")[metric].mean().reindex(grid)
        vals = curve.to_numpy(float)
        i = int(np.argmin(np.where(np.isnan(vals), np.inf, vals)))
        best = float(grid[i])
        interp = best
        if 0 < i < len(grid) - 1 and np.all(np.isfinite(vals[i - 1:i + 2])):
            lx = np.log2(grid[i - 1:i + 2])
            c2, c1, _ = np.polyfit(lx, vals[i - 1:i + 2], 2)
            if c2 > 0:
                interp = float(2 ** np.clip(-c1 / (2 * c2), lx[0], lx[2]))
        per_seed = grp.loc[grp.groupby("seed")[metric].idxmin(), "lr"]
        rows.append({by: key, "best_lr": best, "best_lr_interp": interp, "best_loss": float(vals[i]),
                     "best_lr_lo": float(per_seed.min()), "best_lr_hi": float(per_seed.max()),
                     "at_edge": i in (0, len(grid) - 1)})
    table = pd.DataFrame(rows).sort_values(by).reset_index(drop=True)
    idx = {v: j for j, v in enumerate(grid)}
    summary = {"ratio": float(table["best_lr_interp"].iloc[-1] / table["best_lr_interp"].iloc[0]),
               "grid_steps": float(idx[table["best_lr"].iloc[-1]] - idx[table["best_lr"].iloc[0]]),
               "grid_factor": float(np.exp(np.mean(np.diff(np.log(grid))))),
               "any_at_edge": bool(table["at_edge"].any())}
    if len(table) >= 2:
        summary["slope"] = float(np.polyfit(np.log2(table[by].to_numpy(float)),
                                            np.log2(table["best_lr_interp"].to_numpy(float)), 1)[0])
    else:
        summary["slope"] = float("nan")
    return table, summary
