"""Measurements on a built network: forward second moments (eq. 3) and the maximal-update check.

The paper's learning rates (eq. 8, 9) come from one requirement: after one SGD step every
vertex's pre-activation change ``E[(Delta z_i(l))^2]`` stays Theta(1), independent of width.
This module measures that cause directly:

* :func:`delta_z` — one SGD step on a copy of a DagMLP/DagCNN; the mean squared change of
  every vertex (and of the logits) on a probe batch, with per-parameter-group attribution.
* :func:`coord_check` — mean ``|z|`` and ``|z_t - z_0|`` per vertex over the first steps,
  for a range of widths (the coordinate check of the mup package).
* :func:`delta_z_vs_lr`, :func:`delta_z_graphs`, :func:`delta_z_widths` — the tables the
  notebook plots; the fits and summaries on them live in :mod:`archscale.stats`.

What a "vertex" is follows the model's layout: with ``layout="paper"`` (default) the vertices
hold pre-activations ``z(l)``; with ``layout="reference"`` they hold sums of post-activations
(the reference code's block is Linear then ReLU). Either way the probe measures the change of
the values ``model(x, return_nodes=True)`` returns, plus the logits as the output vertex.
"""

from __future__ import annotations

import copy
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
from .train import LOSSES, minibatch_schedule

__all__ = [
    "COORD_CHECK_COLUMNS",
    "LOSSES",
    "LR_RULES",
    "DeltaZResult",
    "coord_check",
    "delta_z",
    "delta_z_graphs",
    "delta_z_vs_lr",
    "delta_z_widths",
    "forward_second_moments",
    "loss_value",
    "parameter_groups",
]

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
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ArchscaleError(f"unknown loss {loss!r}; accepted: 'mse' (squared error), 'ce' (cross-entropy) "
                             f"or a function (logits, y) -> scalar")
    return loss  # type: ignore[return-value]


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
    stepper = _Stepper(model, x, y, loss, freeze=freeze, lr_mult=lr_mult, probe_x=probe_x)
    groups = stepper.groups
    rates = stepper.rates(lr)
    total = stepper.changes(rates, stepper.names)
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
        for g in stepper.moving:
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
                        stepper.loss_value, getattr(model, "layout", "?"), stepper.freeze)


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
    widths = validate.int_list(widths, "widths", minimum=1)
    lrs = [validate.learning_rate(lr, "every lr") for lr in lrs]
    if not lrs:
        raise ArchscaleError("lrs is empty; give at least one learning rate, e.g. [0.01, 0.1, 1.0]")
    seeds = validate.int_list(seeds, "seeds")
    loss = _check_loss(loss)
    rows = []
    jobs = [(w, s) for w in widths for s in seeds]
    for width, seed in _progress(jobs, len(jobs), "delta z vs lr", progress):
        torch.manual_seed(seed)
        model = _check_model(make_model(width))
        xb, yb = _as_batch(model, x, y, loss)
        stepper = _Stepper(model, xb, yb, loss, freeze=freeze, lr_mult=_lr_mult_for(lr_mult, width))
        for lr in lrs:  # one gradient, several step sizes
            values = [_mean_sq(d) for d in stepper.changes(stepper.rates(lr), stepper.names)]
            n = len(values) - 1
            for v, value in enumerate(values):
                rows.append((width, lr, seed, v, "output" if v == n else "vertex", value))
    return pd.DataFrame(rows, columns=["width", "lr", "seed", "vertex", "kind", "delta_z2"])


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


#: The LR rules of :func:`delta_z_graphs`.
LR_RULES = ("shared", "scaled")


def delta_z_graphs(graphs: Iterable[Dag | str], make_model: Callable[[Dag], nn.Module], x: torch.Tensor,
                   y: torch.Tensor, lr: float, *, loss: LossArg = "ce", seeds: Iterable[int] = (0,),
                   arch: str | None = None, kernel_size: int | None = None,
                   freeze: Sequence[str] | str = (), lr_mult: Mapping[str, float] | None = None,
                   rules: Sequence[str] = LR_RULES, readout_frozen: bool = True,
                   progress: bool = True) -> pd.DataFrame:
    """One-step ``delta_z2`` per graph at a shared ``lr`` and at the eq. 8/9 scaled LR.

    The scaled LR is ``lr * lr_scale(dag, arch, kernel_size)`` (so the base graph gets ``lr``).
    ``make_model(dag)`` is called right after ``torch.manual_seed(seed)``; the probe owns the
    model it builds. Columns: graph, seed, lr_rule (those in ``rules``), lr, vertex, kind,
    delta_z2. Per rule: the last DAG vertex (kind "last"), the logits (kind "output") and, with
    ``readout_frozen``, the logits when the readout does not step (kind "output_no_readout": the
    part of the output's change that the hidden layers cause; it costs one more step).
    """
    lr = validate.learning_rate(lr, "lr")
    loss = _check_loss(loss)
    seeds = validate.int_list(seeds, "seeds")
    rules = [validate.choice(r, "lr rule", LR_RULES) for r in ([rules] if isinstance(rules, str) else rules)]
    readout_frozen = validate.boolean(readout_frozen, "readout_frozen")
    if not rules:
        raise ArchscaleError(f"rules is empty; give one or both of {LR_RULES}")
    dags = _parse_graphs(graphs, arch)
    rows = []
    jobs = [(d, s) for d in dags for s in seeds]
    for dag, seed in _progress(jobs, len(jobs), "delta z per graph", progress):
        rule_lr = {"shared": lr, "scaled": lr * lr_scale(dag, arch, kernel_size)}
        torch.manual_seed(seed)
        model = _check_model(make_model(dag))
        xb, yb = _as_batch(model, x, y, loss)
        stepper = _Stepper(model, xb, yb, loss, freeze=freeze, lr_mult=lr_mult, private=True)
        names = stepper.names
        for rule in rules:
            rate = rule_lr[rule]
            rates = stepper.rates(rate)
            values = [_mean_sq(d) for d in stepper.changes(rates, names)]
            n = len(values) - 1
            rows.append((dag.code, seed, rule, rate, n - 1, "last", values[n - 1]))
            rows.append((dag.code, seed, rule, rate, n, "output", values[n]))
            if readout_frozen:
                hidden = _mean_sq(stepper.changes(rates, names - set(stepper.groups["readout"]))[-1])
                rows.append((dag.code, seed, rule, rate, n, "output_no_readout", hidden))
        del model, stepper  # free a wide model before the next one is built
    return pd.DataFrame(rows, columns=["graph", "seed", "lr_rule", "lr", "vertex", "kind", "delta_z2"])


def delta_z_widths(graphs: Mapping[int, Iterable[Dag | str]], make_model: Callable[[Dag, int], nn.Module],
                   x: torch.Tensor, y: torch.Tensor, lr: float, *, loss: LossArg = "mse",
                   seeds: Iterable[int] | Mapping[int, Iterable[int]] = (0,), arch: str | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """:func:`delta_z_graphs` at several widths, one shared ``lr``: the table a path-law fit per width needs.

    ``graphs`` maps each width to the graphs probed there (fewer at large widths keeps the cost
    down); ``make_model(dag, width)`` builds the model; ``seeds`` is one list for every width or
    a {width: seeds} mapping. Columns: width, then :func:`delta_z_graphs`'s (rule "shared"; kinds
    "last" and "output").
    """
    if not isinstance(graphs, Mapping) or not graphs:
        raise ArchscaleError("graphs must map each width to its graphs, e.g. {256: ['2_02'], 1024: ['2_02']}")
    tables = []
    for width, dags in graphs.items():
        width = validate.positive_int(width, "every width")
        width_seeds = seeds.get(width, ()) if isinstance(seeds, Mapping) else seeds
        table = delta_z_graphs(dags, lambda dag, w=width: make_model(dag, w), x, y, lr, loss=loss,
                               seeds=width_seeds, arch=arch, rules=("shared",), readout_frozen=False,
                               progress=progress)
        tables.append(table.assign(width=width))
    out = pd.concat(tables, ignore_index=True)
    return out[["width", *out.columns[:-1]]]


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
    ``batch_size`` in the order :func:`archscale.train.minibatch_schedule` gives a replica with
    that seed (a fresh permutation per epoch; an epoch's last batch may be smaller). Vertex
    values are read on a fixed probe batch (the first ``probe_size`` examples). Under the
    maximal-update heuristic both columns stay flat across widths; a column that grows or
    shrinks with width shows where it breaks.

    Columns (:data:`COORD_CHECK_COLUMNS`): ``width``, ``seed``, ``step`` (0 = initialization,
    t = after t steps), ``vertex`` (0 .. N-1 the DAG vertices, N the logits), ``kind``
    (``"vertex"`` or ``"output"``), ``mean_abs_z`` (mean ``|z_t|`` over probe examples, units and
    positions), ``mean_abs_delta_z`` (mean ``|z_t - z_0|``), ``loss`` (training loss on the batch
    of step t+1 before it is taken; NaN on the last row of a run).
    """
    widths = validate.int_list(widths, "widths", minimum=1)
    lr = validate.learning_rate(lr, "lr")
    steps = validate.positive_int(steps, "steps")
    loss = _check_loss(loss)
    seeds = validate.int_list(seeds, "seeds")
    probe_size = validate.positive_int(probe_size, "probe_size")
    if batch_size is not None:
        batch_size = validate.positive_int(batch_size, "batch_size")
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
        batches = minibatch_schedule(len(x), batch_size, seed, steps) if batch_size else None
        with torch.no_grad():
            logits, nodes = model(x_probe, return_nodes=True)
        init = [n.clone() for n in nodes] + [logits.clone()]
        current = init
        for step in range(steps + 1):
            batch_loss = float("nan")
            if step < steps:
                if batches is None:
                    xb, yb = x, y
                else:
                    idx = torch.as_tensor(next(batches), device=x.device)
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
