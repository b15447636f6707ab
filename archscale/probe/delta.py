"""The one-step change of every vertex (the maximal-update check behind eq. 8/9), per LR, graph and width."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import lr_scale
from .common import (
    LossArg,
    _as_batch,
    _check_loss,
    _check_model,
    _lr_mult_for,
    _mean_sq,
    _parse_graphs,
    _progress,
    _Stepper,
)

__all__ = ["DeltaZResult", "LR_RULES", "delta_z", "delta_z_graphs", "delta_z_vs_lr", "delta_z_widths"]


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
        # mypy cannot infer a lambda with a default argument (which binds this iteration's width)
        table = delta_z_graphs(dags, lambda dag, w=width: make_model(dag, w), x, y, lr, loss=loss,  # type: ignore[misc]
                               seeds=width_seeds, arch=arch, rules=("shared",), readout_frozen=False,
                               progress=progress)
        tables.append(table.assign(width=width))
    out = pd.concat(tables, ignore_index=True)
    return out[["width", *out.columns[:-1]]]
