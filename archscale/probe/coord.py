"""The coordinate check of the mup package: mean |z| and |z_t - z_0| per vertex over the first SGD steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from ..core import validate
from ..core.errors import ArchscaleError
from ..train import minibatch_schedule
from .common import (
    LossArg,
    _as_batch,
    _check_loss,
    _check_lr_mult,
    _check_model,
    _lr_mult_for,
    _moving,
    _progress,
    _unpack_data,
    loss_value,
    parameter_groups,
)

__all__ = ["COORD_CHECK_COLUMNS", "coord_check"]


#: Columns of :func:`coord_check`'s table, in order.
COORD_CHECK_COLUMNS = ("width", "seed", "step", "vertex", "kind", "mean_abs_z", "mean_abs_delta_z",
                       "loss")


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
