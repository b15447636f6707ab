"""Measuring a model family for :mod:`archscale.experiments.check`: its members and graphs, the
data, the budget, and each member's sweep (a grid placed from the previous optimum and refined
where the optimum is), stored crash-safe so that a rerun reloads."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analysis.estimator import max_lr_estimate
from ..analysis.maxlr import loss_matrix
from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DataError
from ..core.laws import LAWS
from ..core.scaling import convention
from ..core.schema import SWEEP, lr_key
from ..data import DATASETS, Dataset, load_dataset, load_tensors
from ..runs.store import ResultStore, chunk_id
from ..sweep.refine import next_lrs
from ..train import TrainConfig

__all__ = ["DEFAULT_CENTER", "FIRST_SPAN", "NEXT_SPAN", "Member", "Plan", "as_int", "build_model",
           "factory_id", "fit_budget", "flattened", "input_layout", "law_scale", "measure_member",
           "parse_budget", "parse_sizes", "predicted_step", "read_member", "resolve_data", "store_key",
           "with_optimizer"]

#: The first size's grid spans the centre times 100^(+-1); later sizes, their prediction times 10^(+-1).
FIRST_SPAN, NEXT_SPAN = 100.0, 10.0
#: Where a first grid is centred when nothing is known yet, per optimizer.
DEFAULT_CENTER = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}


def parse_budget(text: str | float | int | None) -> float | None:
    """``"10m"``, ``"90s"``, ``"1.5h"`` or a number of seconds; None for no budget."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return validate.number(text, "budget (seconds)", positive=True, example="600")
    raw = str(text).strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ArchscaleError(f"budget must be a duration such as 10m, 90s or 1.5h (or seconds), got {text!r}")
    return value


def resolve_data(data: object, seed: int = 0) -> Dataset:
    """The data to train on: an embedded set's name (``digits``, ``mnist``, ``gaussian``...), a
    tensor file (``.pt``/``.npz``, read without unpickling code), an archscale ``Dataset``, or a
    callable returning one."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str) and data in DATASETS:
        return load_dataset(data, flatten=False, seed=seed)
    if isinstance(data, (str, Path)):
        return load_tensors(data, seed=seed)
    if callable(data):
        out = data()
        if not isinstance(out, Dataset):
            raise DataError(
                f"the data callable returned {type(out).__name__}; return an archscale Dataset "
                f"(archscale.data.load_dataset or load_tensors)"
            )
        return out
    raise DataError(
        f"data must be a dataset name ({', '.join(DATASETS)}), a .pt/.npz file, an archscale "
        f"Dataset or a callable returning one; got {type(data).__name__}"
    )


@dataclass
class Member:
    """One size of the family: its value, its graph (None when archscale cannot read it), eq. 9's q
    when every weighted edge has one kernel, else each weighted edge's kernel area (``areas``)."""

    size: float
    label: str
    dag: Dag | None
    arch: str
    kernel: int | None
    why_no_graph: str = ""
    areas: dict | None = None


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if not isinstance(err, ArchscaleError) else text
    return text[:240]


def parse_sizes(sizes: Mapping, target: Mapping) -> tuple[str, list[float], float]:
    if not isinstance(sizes, Mapping) or len(sizes) != 1:
        raise ArchscaleError(
            f"sizes must name one size keyword with its values, e.g. {{'depth': [1, 2, 4]}}; got {sizes!r}"
        )
    ((name, values),) = sizes.items()
    vals = sorted({validate.number(v, f"every {name} size", positive=True) for v in values})
    if len(vals) < 2:
        raise ArchscaleError(
            f"give at least two {name} sizes to measure (three or more give an interval "
            f"on the trend); got {list(values)}"
        )
    if not isinstance(target, Mapping) or list(target) != [name]:
        raise ArchscaleError(
            f"the target must name the same size keyword as the sizes ({name}=...), got "
            f"{dict(target) if isinstance(target, Mapping) else target!r}"
        )
    return str(name), vals, validate.number(target[name], f"target {name}", positive=True)


def as_int(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def build_model(make_model: Callable, name: str, size: float, fixed: Mapping):
    import torch.nn as nn

    kwargs = {**fixed, name: as_int(size)}
    try:
        model = make_model(**kwargs)
    except Exception as err:
        raise ArchscaleError(
            f"make_model({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised {one_line(err)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ArchscaleError(
            f"make_model({name}={as_int(size)!r}) returned {type(model).__name__}, not an nn.Module"
        )
    return model


def input_layout(model, data: Dataset, label: str):
    """The example batch the model accepts (images, or images flattened), or one line naming the mismatch."""
    import torch

    x = data.x_train[:4]
    tries = [x] + ([x.flatten(1)] if x.dim() > 2 else [])
    err: BaseException | None = None
    for candidate in tries:
        try:
            with torch.no_grad():
                out = model(candidate)
        except Exception as e:  # the shapes do not fit: try the next layout, then report
            err = e
            continue
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != data.out_dim:
            raise DataError(
                f"{label}: the model's output has shape {tuple(getattr(out, 'shape', ()))}, the data "
                f"needs (batch, {data.out_dim}) logits"
            )
        return candidate.dim() > 2 or x.dim() == 2
    shape = tuple(x.shape[1:])
    raise DataError(
        f"{label} does not accept the data's inputs of shape {shape}"
        + (f" (nor flattened, {(math.prod(shape),)})" if len(shape) > 1 else "")
        + f": {one_line(err) if err else 'no error'}"
    )


def read_member(make_model, name, size, fixed, data, images: bool) -> Member:
    from ..module.capture import capture

    model = build_model(make_model, name, size, fixed)
    x = data.x_train[:2] if images else data.x_train[:2].flatten(1)
    label = f"{name}={as_int(size)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cap = capture(model, x, norm="ignore")
        if cap.arch == "cnn" and cap.kernel_size is None and cap.kernel_areas is None:
            return Member(size, label, None, "mlp", None, "the stem's kernel is not one odd square q x q "
                                                          "and the graph has no other conv to read q from")
        return Member(size, label, cap.graph, cap.arch, cap.kernel_size, areas=cap.kernel_areas)
    except ArchscaleError as err:
        return Member(size, label, None, "mlp", None, one_line(err))


def law_scale(law, member: Member, base: Member) -> float:
    """``eta(member) / eta(base)`` under ``law``; NaN where a graph is needed and unread (a law
    with exponent 0, the constant LR, needs none). When either graph's kernels mix, the law reads
    the per-edge kernel areas (:meth:`~archscale.core.laws.Law.scale`)."""
    if member.dag is None or base.dag is None:
        return 1.0 if law.exponent == 0 else math.nan
    conv = convention(base.arch)
    q = member.kernel if conv.uses_kernel else None
    qb = base.kernel if conv.uses_kernel else None
    if conv.uses_kernel and (member.areas is not None or base.areas is not None):
        return float(law.scale(member.dag, base.dag, offset=conv.offset, q=q, q_base=qb, areas=member.areas,
                               base_areas=base.areas))
    return float(law.scale(member.dag, base.dag, offset=conv.offset, q=q, q_base=qb))


def factory_id(make_model: Callable) -> str:
    """What names a factory across runs: its module, name and file for a function or class; the
    class and its fields for an instance (a dataclass's repr), never a memory address."""
    import inspect

    if inspect.isfunction(make_model) or inspect.isclass(make_model):
        where = getattr(getattr(make_model, "__code__", None), "co_filename", "")
        return f"{make_model.__module__}.{make_model.__qualname__} ({where})"
    text = repr(make_model)
    if " at 0x" in text:  # no stable repr: its type is the best we have
        return f"{type(make_model).__module__}.{type(make_model).__qualname__}"
    return f"{type(make_model).__module__}.{text}"


def store_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Plan:
    n_first: int
    n_next: int
    rounds: int
    per_round: int


def with_optimizer(config: TrainConfig, optimizer: str) -> TrainConfig:
    """``config`` trained with ``optimizer``; SGD's momentum and nesterov do not carry over to Adam."""
    from dataclasses import replace

    if optimizer == "sgd":
        return replace(config, optimizer=optimizer)
    return replace(config, optimizer=optimizer, momentum=0.0, nesterov=False)


def flattened(data: Dataset) -> Dataset:
    from dataclasses import replace

    return replace(
        data,
        x_train=data.x_train.flatten(1),
        x_test=data.x_test.flatten(1),
        in_shape=(int(math.prod(data.in_shape)),),
    )


def predicted_step(prev: Member, member: Member) -> float:
    """The eq. 8/9 LR ratio between two sizes when archscale can read both graphs, else 1."""
    value = law_scale(LAWS["eq8"], member, prev)
    return value if math.isfinite(value) and value > 0 else 1.0


def train_member(writer, make_model, name, m: Member, fixed, lrs, seeds, data, config, device, progress
                 ) -> None:
    from ..module.sweep import sweep_module

    def make():
        return build_model(make_model, name, m.size, fixed)

    frame = sweep_module(make, lrs, seeds, data, config, name=m.label, device=device, progress=progress)
    rows = [SWEEP.row(r) for r in frame.to_dict(orient="records")]
    writer.append(chunk_id([SWEEP.key_of(r) for r in rows]), rows)


def rows_of(store: ResultStore, label: str) -> pd.DataFrame:
    rows = SWEEP.frame(store.scan().rows)
    return rows[rows["graph"] == label]


def measure_member(
    writer,
    store,
    make_model,
    name,
    m: Member,
    fixed,
    grid,
    seeds,
    data,
    config,
    plan: Plan,
    deadline,
    sized_down: list[str],
    device,
    progress,
):
    """Train ``grid`` (what the store lacks), then refinement rounds; the member's estimate."""
    grid = sorted({float(lr_key(x)) for x in grid})
    for round_ in range(plan.rounds + 1):
        have = rows_of(store, m.label)
        done = {(lr_key(r.lr), int(r.seed)) for r in have.itertuples()}
        todo = [lr for lr in grid if any((lr_key(lr), s) not in done for s in seeds)]
        if todo:
            if deadline is not None and round_ > 0 and time.perf_counter() > deadline:
                sized_down.append(f"{m.label}: refinement stopped after round {round_ - 1} (budget spent)")
                break
            train_member(writer, make_model, name, m, fixed, todo, seeds, data, config, device, progress)
            have = rows_of(store, m.label)
        have = have[have["lr"].map(lr_key).isin({lr_key(x) for x in grid})]
        lrs, losses = loss_matrix(have, "train_loss", seeds)
        if round_ == plan.rounds:
            break
        new = [
            x
            for x in next_lrs(lrs, losses, plan.per_round, 1.5)
            if lr_key(x) not in {lr_key(g) for g in grid}
        ]
        if not new:
            break
        grid = sorted({*grid, *new})
    return max_lr_estimate(losses, lrs)


def fit_budget(
    plan: Plan,
    make_model,
    name,
    fixed,
    values,
    seeds,
    data,
    config,
    budget: float,
    sized_down: list[str],
    device,
) -> Dataset:
    """Shrink the plan (refinement, grid, then the data) until a timed probe says it fits ``budget``."""
    from ..module.sweep import sweep_module

    # two timed probes on the largest member: 4 replicas for 2 and for 6 steps; their difference is
    # the cost of a replica-step, the rest the per-replica cost of building and evaluating
    times = {}
    for steps in (2, 6):
        t0 = time.perf_counter()
        member = functools.partial(build_model, make_model, name, values[-1], fixed)
        sweep_module(member, [1e-3, 1e-2], [0, 1], data, probe_config(config, steps), device=device,
                     progress=False)
        times[steps] = time.perf_counter() - t0
    per_step = max(times[6] - times[2], 1e-6) / (4 * 4)
    per_replica = max(times[2] - 4 * 2 * per_step, 0.0) / 4

    def cost(n_train: int) -> float:
        steps = config.total_steps(n_train)
        n_lrs = plan.n_first + plan.n_next * (len(values) - 1) + plan.rounds * plan.per_round * len(values)
        replicas = n_lrs * len(seeds)
        return 1.2 * replicas * (steps * per_step + per_replica * n_train / data.n_train)

    n_train = data.n_train
    for change in ("rounds", "grid", "grid", "data", "data", "data"):
        if cost(n_train) <= 0.85 * budget:
            break
        if change == "rounds" and plan.rounds:
            plan.rounds -= 1
            sized_down.append(f"refinement rounds 2 -> {plan.rounds}")
        elif change == "grid" and plan.n_first > 5:
            plan.n_first, plan.n_next = plan.n_first - 2, max(5, plan.n_next - 1)
            sized_down.append(
                f"first grid {plan.n_first + 2} -> {plan.n_first} LRs, later {plan.n_next + 1} -> "
                f"{plan.n_next}"
            )
        elif change == "data" and config.steps is None:
            n_train = max(64, n_train // 2)
            sized_down.append(f"training samples {data.n_train} -> {n_train}")
    if n_train < data.n_train:
        from dataclasses import replace

        data = replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train])
    return data


def probe_config(config: TrainConfig, steps: int) -> TrainConfig:
    from dataclasses import replace

    return replace(config, steps=steps, epochs=1)

