"""Learning-rate sweeps of any ``nn.Module``: many (lr, seed) replicas as one vectorized model.

:func:`sweep_module` stacks the replicas' parameters with ``torch.func.stack_module_state``
and runs ``torch.func.functional_call`` under ``torch.func.vmap``, so R replicas train as one
batched computation, whatever the module. Each replica is built by the user's factory after
``torch.manual_seed(seed)``, draws its minibatches with the project's one seeding scheme
(:func:`archscale.train.minibatch_schedule`) and is updated by the replica engine's own optimizer
step (:mod:`archscale.train.optim`: SGD, Adam or AdamW, as ``config.optimizer`` says), so a replica
follows the trajectory of the same model trained alone with that ``torch.optim`` optimizer. The
rows are the DAG sweeps' tidy rows, so ``archscale.sweep.max_lr``/``compare`` and the plots read
them. Modules that update buffers in ``forward`` (batch norm in training mode) are not supported.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..core import validate
from ..core.errors import ArchscaleError
from ..core.labels import short_code
from ..core.schema import SWEEP
from ..data import Dataset
from ..nn import blas
from ..train import TrainConfig, grid, make_optimizer, minibatch_schedule, resolve_device, summarize
from ..train.stack import replica_threads

__all__ = ["sweep_module"]


def _loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-replica mean loss ``(R,)`` from logits ``(R, B, out)`` (cross-entropy or MSE)."""
    r, b = logits.shape[:2]
    if kind == "ce":
        per_sample = F.cross_entropy(logits.reshape(r * b, -1), y.reshape(r * b), reduction="none")
        return per_sample.view(r, b).mean(1)
    return (logits - y).pow(2).reshape(r, -1).mean(1)


def _build(make_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    if not isinstance(model, nn.Module):
        raise ArchscaleError(f"make_model() must return an nn.Module, got {type(model).__name__}")
    return model


def _labels(model: nn.Module, name: str | None) -> dict:
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    kernels = {tuple(m.kernel_size) for m in convs}
    kernel = next(iter(kernels))[0] if len(kernels) == 1 and len(set(next(iter(kernels)))) == 1 else 0
    return {"graph": name or type(model).__name__, "arch": "cnn" if convs else "mlp", "kernel_size": kernel}


class _Replicas:
    """R stacked copies of one module, trained with a per-replica learning rate."""

    def __init__(self, models: list[nn.Module], device: torch.device, dtype: torch.dtype):
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().to(device, dtype).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")

        def forward(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self._each = vmap(forward, in_dims=(0, 0, 0), randomness="different")
        self._shared = vmap(forward, in_dims=(0, 0, None), randomness="different")

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        return (self._shared if shared else self._each)(self.params, self.buffers, x)

    def compact(self, keep: torch.Tensor) -> None:
        self.params = {k: v.detach()[keep].requires_grad_(True) for k, v in self.params.items()}
        self.buffers = {k: v[keep] for k, v in self.buffers.items()}


def _train_chunk(models: list[nn.Module], lrs: np.ndarray, seeds: np.ndarray, tensors: tuple,
                 config: TrainConfig, dev: torch.device, dtype: torch.dtype, bar) -> dict[str, np.ndarray]:
    x_train, y_train, x_test, y_test = tensors
    n, r_total = x_train.shape[0], len(lrs)
    total = config.total_steps(n)
    reps = _Replicas(models, dev, dtype)
    names = list(reps.params)
    opt = make_optimizer(config, len(names))
    schedules = {int(s): minibatch_schedule(n, config.batch_size, int(s), total) for s in np.unique(seeds)}
    lr_t = torch.as_tensor(lrs, device=dev, dtype=dtype)
    alive = torch.arange(r_total, device=dev)
    active = torch.ones(r_total, dtype=torch.bool, device=dev)
    curves = torch.full((total, r_total), float("nan"), device=dev, dtype=dtype)
    diverged_step = torch.full((r_total,), -1, dtype=torch.int64, device=dev)
    check_every = 1 if dev.type == "cpu" else 16
    reps.base.train()
    for t in range(total):
        batch = {s: torch.as_tensor(next(it), device=dev) for s, it in schedules.items()}
        idx = torch.stack([batch[int(s)] for s in seeds[alive.cpu().numpy()]])  # (R, b)
        loss = _loss(reps.forward(x_train[idx]), y_train[idx], config.loss)
        was_active = active
        active = active & torch.isfinite(loss)
        grads = torch.autograd.grad(torch.where(active, loss, 0.0).sum(), [reps.params[k] for k in names],
                                    allow_unused=True)
        lr_eff = lr_t * config.lr_factor(t, total) * active.to(dtype)
        for i, (k, g) in enumerate(zip(names, grads)):
            if g is not None:
                opt.update(i, reps.params[k], g, lr_eff)
        diverged_step[alive] = torch.where(was_active & ~active, t, diverged_step[alive])
        curves[t, alive] = torch.where(active, loss.detach(), float("nan"))
        bar.update(r_total)
        if ((t + 1) % check_every == 0 or t + 1 == total) and not bool(active.all()):
            keep = active.nonzero().squeeze(1)
            if keep.numel() == 0:
                alive = alive[:0]
                bar.update(r_total * (total - t - 1))
                break
            reps.compact(keep)
            opt.compact(keep)
            lr_t, alive, active = lr_t[keep], alive[keep], active[keep]
    out = {k: np.full(r_total, np.nan) for k in ("train_loss_final", "test_loss", "test_acc")}
    if alive.numel():
        keep = active.nonzero().squeeze(1)
        reps.compact(keep)
        idx_np = alive[keep].cpu().numpy()
        reps.base.eval()
        out["train_loss_final"][idx_np], _ = _evaluate(reps, x_train, y_train, config)
        out["test_loss"][idx_np], out["test_acc"][idx_np] = _evaluate(reps, x_test, y_test, config)
    return summarize(out, curves.cpu().numpy().astype(np.float64), diverged_step.cpu().numpy(), n, config)


@torch.no_grad()
def _evaluate(reps: _Replicas, x: torch.Tensor, y: torch.Tensor, config: TrainConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    r = next(iter(reps.params.values())).shape[0]
    loss_sum = torch.zeros(r, dtype=torch.float64, device=x.device)
    correct = torch.zeros(r, dtype=torch.float64, device=x.device)
    bsz = max(1, min(config.eval_batch_size, config.batch_size * 4))
    for lo in range(0, x.shape[0], bsz):
        xb, yb = x[lo:lo + bsz], y[lo:lo + bsz]
        logits = reps.forward(xb, shared=True)
        yb_r = yb.unsqueeze(0).expand(r, *yb.shape)
        loss_sum += _loss(logits, yb_r, config.loss).double() * xb.shape[0]
        if config.loss == "ce":
            correct += (logits.argmax(-1) == yb_r).sum(1).double()
    acc = (correct / x.shape[0]).cpu().numpy() if config.loss == "ce" else np.full(r, np.nan)
    return (loss_sum / x.shape[0]).cpu().numpy(), acc


def sweep_module(make_model: Callable[[], nn.Module], lrs: Sequence[float] | np.ndarray, seeds: Sequence[int],
                 data: Dataset, config: TrainConfig | None = None, *, name: str | None = None,
                 width: int = 0, act: str = "", device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_size: int | None = None, progress: bool = True):
    """Train every ``(lr, seed)`` of the grid ``lrs x seeds`` of ``make_model()`` on ``data``; tidy rows.

    ``make_model()`` is called once per seed after ``torch.manual_seed(seed)`` (the global RNG
    is restored afterwards), so its initialization, ``archscale.apply`` included, is the seed's.
    ``config`` is the DAG sweeps' :class:`~archscale.train.TrainConfig` (steps or epochs, batch,
    optimizer and its settings, weight decay, cosine, loss). Returns a DataFrame with the sweep
    columns (``optimizer`` the config's): ``graph`` is ``name`` (default the class name),
    ``arch`` ``cnn`` when the module has convolutions, ``kernel_size`` their common kernel side
    (else 0), ``width``/``act`` the labels given; ``layout``/``init``/``readout`` read ``module``.
    ``chunk_size`` bounds the replicas trained at once; a bar shows replica-steps.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ArchscaleError(f"config must be an archscale.train.TrainConfig, got {type(config).__name__}")
    if config.base_width is not None:
        raise ArchscaleError("sweep_module trains every parameter at one LR: base_width (muP's Adam width "
                             "rule) runs in the DAG sweeps (archscale sweep); drop it here")
    if not callable(make_model):
        raise ArchscaleError("make_model must be a function that returns a new nn.Module")
    lr_list = [validate.learning_rate(v, "every learning rate") for v in (lrs if np.iterable(lrs) else [lrs])]
    if not lr_list:
        raise ArchscaleError("lrs is empty; give at least one learning rate")
    seed_list = validate.int_list(seeds, "seeds", minimum=0)
    width = validate.integer(width, "width", minimum=0)
    if config.loss == "ce" and data.task != "classification":
        raise ArchscaleError(f"loss 'ce' needs a classification dataset; {data.name!r} is {data.task}; "
                             f"use 'mse'")
    dev = resolve_device(device)
    blas.warn_if_not_strict()
    rep_lrs, rep_seeds = grid(lr_list, seed_list)
    lrs_arr, seeds_arr = np.asarray(rep_lrs, dtype=np.float64), np.asarray(rep_seeds, dtype=np.int64)
    built = {s: _build(make_model, s) for s in seed_list}
    labels = _labels(built[seed_list[0]], name)
    ydtype = torch.int64 if data.task == "classification" else dtype
    tensors = (data.x_train.to(dev, dtype), data.y_train.to(dev, ydtype),
               data.x_test.to(dev, dtype), data.y_test.to(dev, ydtype))
    size = len(lrs_arr) if chunk_size is None else validate.positive_int(chunk_size, "chunk_size")
    total = config.total_steps(data.n_train) * len(lrs_arr)
    parts = []
    with tqdm(total=total, desc=f"sweep_module {short_code(labels['graph'])}", unit=" replica-steps",
              unit_scale=True, disable=not progress, dynamic_ncols=True) as bar:
        for part in np.array_split(np.arange(len(lrs_arr)), math.ceil(len(lrs_arr) / size)):
            models = [built[int(s)] for s in seeds_arr[part]]
            with replica_threads(len(part), dev):  # a lone product split among threads rounds apart
                parts.append(_train_chunk(models, lrs_arr[part], seeds_arr[part], tensors, config, dev, dtype,
                                          bar))
    res = {k: np.concatenate([p[k] for p in parts], axis=1 if k == "curves" else 0) for k in parts[0]}
    rows = SWEEP.rows({"graph": labels["graph"], "arch": labels["arch"], "width": width,
                       "kernel_size": labels["kernel_size"], "act": act, "layout": "module", "init": "module",
                       "readout": "module", "optimizer": config.optimizer},
                      {"lr": lrs_arr, "seed": seeds_arr, **{k: res[k] for k in (
                          "train_loss", "train_loss_final", "test_loss", "test_acc", "diverged", "steps",
                          "diverged_step")}})
    return SWEEP.frame(rows)
