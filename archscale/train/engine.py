"""Train many (learning rate, seed) replicas of one network as stacked computations.

:func:`train_replicas` splits the replicas into chunks that fit memory, trains each chunk as
one :class:`~.stack.Stack`, and collects a :class:`TrainResult`. A replica whose minibatch loss
turns NaN or infinite is marked diverged, gets learning rate 0, and is dropped from the stack;
its values never enter another replica's computation. Every replica's numbers are the same
whichever replicas share its chunk and whatever torch's thread count (see :mod:`.layers`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..core import validate
from ..core.errors import ArchscaleError
from ..core.schema import SWEEP
from ..data import Dataset
from ..nn import blas
from .config import ModelSpec, TrainConfig, epoch_order
from .optim import make_optimizer, param_copies
from .stack import Stack

__all__ = ["CPU_CACHE_BYTES", "TrainResult", "auto_chunk_size", "grid", "replica_bytes",
           "resolve_device", "train_replicas"]


@dataclass
class TrainResult:
    """Per-replica outcome of :func:`train_replicas`, arrays indexed like the input replicas.

    ``train_loss`` is the mean minibatch loss over the last epoch (over all steps when training
    is shorter than an epoch): the reference code's training loss of an epoch, which defines the
    paper's maximal LR; like the reference's running average it weights each step by its batch
    size. ``train_loss_final`` is the loss on the whole training set after the last step.
    ``curves[t, r]`` is the minibatch loss of replica ``r`` at step ``t`` (NaN once diverged).
    ``steps`` counts the updates a replica received; ``diverged_step`` is -1 unless diverged.
    """

    model: ModelSpec
    lrs: np.ndarray
    seeds: np.ndarray
    train_loss: np.ndarray
    train_loss_final: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    steps: np.ndarray
    curves: np.ndarray
    wall_s: float = 0.0
    config: TrainConfig = field(default_factory=TrainConfig)

    def __len__(self) -> int:
        return len(self.lrs)

    def rows(self) -> list[dict]:
        """One tidy row per replica (:data:`archscale.core.schema.SWEEP`)."""
        m = self.model
        labels = {"graph": m.graph, "arch": m.arch, "width": m.width,
                  "kernel_size": m.kernel_size if m.arch == "cnn" else 0, "act": m.act, "layout": m.layout,
                  "init": m.init, "readout": m.readout, "optimizer": self.config.optimizer}
        metrics = {k: getattr(self, k) for k in ("train_loss", "train_loss_final", "test_loss", "test_acc",
                                                 "diverged", "steps", "diverged_step")}
        return SWEEP.rows(labels, {"lr": self.lrs, "seed": self.seeds, **metrics})


# ---------------------------------------------------------------------------------------- memory
def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` for ``device``, with a clear error when CUDA is asked for but missing."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ArchscaleError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchscaleError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ArchscaleError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def replica_bytes(model: ModelSpec, in_shape: tuple, out_dim: int, batch_size: int,
                  dtype: torch.dtype = torch.float32, optimizer: str = "sgd") -> int:
    """Rough upper estimate of the memory one replica needs for a training step with ``optimizer``
    (Adam's two moments make its parameters cost more than SGD's, :func:`~.optim.param_copies`)."""
    item = torch.empty((), dtype=dtype).element_size()
    dag = model.dag
    n_param = sum(1 for e in dag.edges if e.is_parameterized)
    n_tensors = len(dag.edges) + dag.n_vertices
    w = model.width
    if model.arch == "mlp":
        d_in = math.prod(in_shape)
        params = d_in * w + n_param * w * w + w * out_dim + (n_param + 1) * w + out_dim
        acts = batch_size * (w * (2 * n_tensors + 4) + d_in + out_dim)
    else:
        c, h, wd = in_shape
        k2 = model.kernel_size**2
        params = c * w * k2 + n_param * w * w * k2 + w * out_dim + (n_param + 1) * w + out_dim
        acts = batch_size * (w * h * wd * (2 * n_tensors + 4) + c * h * wd + out_dim)
    return int(item * (param_copies(optimizer) * params + 3 * acts))  # acts saved + their grads


def _default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.6 * free)
    return 2 << 30


#: On the CPU, a chunk trains fastest when its estimated working set (:func:`replica_bytes`) is near
#: this size: smaller stacks pay Python overhead per step, larger ones spill the caches. Measured on
#: 2 cores for widths 64..512 at batch 32 and 128: 50-120 MB chunks were the fastest, e.g. 27
#: replicas of a width-128 MLP at batch 32 train 64 replicas a quarter faster than chunks of 9.
CPU_CACHE_BYTES = 96 << 20


def auto_chunk_size(model: ModelSpec, in_shape: tuple, out_dim: int, batch_size: int,
                    device: str | torch.device = "cpu", memory_budget: int | None = None,
                    max_replicas: int | None = None, dtype: torch.dtype = torch.float32,
                    optimizer: str = "sgd") -> int:
    """Largest number of replicas whose training step fits ``memory_budget`` bytes (at least 1).

    The default budget is 2 GiB on the CPU and 60% of free GPU memory on CUDA. ``max_replicas``
    caps the result; by default the CPU cap keeps a chunk's working set near
    :data:`CPU_CACHE_BYTES` (between 4 and 64 replicas) and CUDA allows 4096.
    """
    dev = resolve_device(device)
    budget = _default_budget(dev) if memory_budget is None else int(memory_budget)
    per = replica_bytes(model, in_shape, out_dim, batch_size, dtype, optimizer)
    if max_replicas is not None:
        cap = max_replicas
    elif dev.type == "cpu":
        cap = max(4, min(64, CPU_CACHE_BYTES // max(per, 1)))
    else:
        cap = 4096
    return max(1, min(cap, budget // max(per, 1)))


# ---------------------------------------------------------------------------------------- training
def train_replicas(model: ModelSpec, lrs: Sequence[float], seeds: Sequence[int], data: Dataset,
                   config: TrainConfig | None = None, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, chunk_size: int | None = None,
                   memory_budget: int | None = None,
                   on_step: Callable[[int], object] | None = None) -> TrainResult:
    """Train one replica per ``(lrs[i], seeds[i])`` of ``model`` on ``data`` as stacked computations.

    Replicas are split into chunks that fit ``memory_budget`` (see :func:`auto_chunk_size`;
    ``chunk_size`` forces a size). ``on_step(n)`` is called after every step with the number of
    planned replica-steps it completes (diverged replicas included), for progress bars.
    A replica's numbers depend on its spec, LR, seed, data, config and device only: not on the
    chunking, the other replicas or the number of CPU threads (with MKL in strict mode, which
    :mod:`archscale.nn.blas` sets; on MKL's AVX2 path that is what makes it hold).
    """
    config = config or TrainConfig()
    blas.warn_if_not_strict()
    if config.augment:
        raise ArchscaleError("train_replicas trains without augmentation; augment=True is for the "
                             "cell-network trainer (archscale.nas)")
    dev = resolve_device(device)
    lrs_arr = np.asarray([validate.learning_rate(x) for x in lrs], dtype=np.float64)
    seeds_arr = np.asarray([validate.integer(s, "seed", minimum=0) for s in seeds], dtype=np.int64)
    if len(lrs_arr) != len(seeds_arr):
        raise ArchscaleError(f"lrs and seeds must pair up, got {len(lrs_arr)} lrs and {len(seeds_arr)} seeds")
    if len(lrs_arr) == 0:
        raise ArchscaleError("no replicas to train: give at least one (lr, seed)")
    if config.loss == "ce" and data.task != "classification":
        raise ArchscaleError(f"loss 'ce' needs a classification dataset; "
                             f"{data.name!r} is {data.task}; use 'mse'")
    in_shape = tuple(data.x_train.shape[1:])
    if model.arch == "cnn" and len(in_shape) != 3:
        raise ArchscaleError(f"a CNN needs image inputs; load {data.name!r} with flatten=False")
    if chunk_size is not None:
        size = validate.positive_int(chunk_size, "chunk_size")
    else:
        size = auto_chunk_size(model, in_shape, data.out_dim, config.batch_size, dev, memory_budget,
                               dtype=dtype, optimizer=config.optimizer)
    start = time.perf_counter()
    parts = []
    xs = _to_device(data, dev, dtype)
    n_chunks = -(-len(lrs_arr) // size)  # balanced chunks: 64 replicas at size 27 train as 22+21+21
    for part in np.array_split(np.arange(len(lrs_arr)), n_chunks):
        parts.append(_train_chunk(model, lrs_arr[part], seeds_arr[part], data.out_dim, xs, config, dev,
                                  dtype, on_step))
    merged = {k: np.concatenate([p[k] for p in parts], axis=1 if k == "curves" else 0) for k in parts[0]}
    return TrainResult(model=model, lrs=lrs_arr, seeds=seeds_arr, wall_s=time.perf_counter() - start,
                       config=config, **merged)


def grid(lrs: Sequence[float], seeds: Sequence[int]) -> tuple[list[float], list[int]]:
    """Every ``(lr, seed)`` pair, seeds outer: the paired lists :func:`train_replicas` takes."""
    pairs = [(float(lr), int(s)) for s in seeds for lr in lrs]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _to_device(data: Dataset, dev: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    ydtype = torch.int64 if data.task == "classification" else dtype
    return (data.x_train.to(dev, dtype), data.y_train.to(dev, ydtype),
            data.x_test.to(dev, dtype), data.y_test.to(dev, ydtype))


def _train_chunk(model: ModelSpec, lrs: np.ndarray, seeds: np.ndarray, out_dim: int,
                 tensors: tuple[torch.Tensor, ...], config: TrainConfig, dev: torch.device,
                 dtype: torch.dtype, on_step: Callable[[int], object] | None) -> dict[str, np.ndarray]:
    x_train, y_train, x_test, y_test = tensors
    n, r_total = x_train.shape[0], len(lrs)
    in_shape = tuple(x_train.shape[1:])
    stack = Stack([model.build(in_shape, out_dim, int(s)) for s in seeds], dev, dtype)
    opt = make_optimizer(config, len(stack.params), stack.lr_multipliers(config.base_width))

    unique_seeds, seed_pos = np.unique(seeds, return_inverse=True)
    seed_pos_t = torch.as_tensor(seed_pos, device=dev)
    lr_t = torch.as_tensor(lrs, device=dev, dtype=dtype)
    alive = torch.arange(r_total, device=dev)  # original index of each row still in the stack
    active = torch.ones(r_total, dtype=torch.bool, device=dev)
    total = config.total_steps(n)
    per_epoch = config.steps_per_epoch(n)
    curves = torch.full((total, r_total), float("nan"), device=dev, dtype=dtype)
    diverged_step = torch.full((r_total,), -1, dtype=torch.int64, device=dev)
    check_every = 1 if dev.type == "cpu" else 16  # dropping diverged rows needs a host sync
    orders = None

    for t in range(total):
        epoch, k = divmod(t, per_epoch)
        if k == 0:
            orders = torch.as_tensor(np.stack([epoch_order(n, int(s), epoch) for s in unique_seeds]),
                                     device=dev)
        assert orders is not None  # drawn at step 0
        idx = orders[:, k * config.batch_size:(k + 1) * config.batch_size][seed_pos_t]  # (R, b)
        was_active = active
        loss, active = stack.step(x_train[idx], y_train[idx], config, lr_t * config.lr_factor(t, total),
                                  active, opt)
        diverged_step[alive] = torch.where(was_active & ~active, t, diverged_step[alive])
        curves[t, alive] = torch.where(active, loss, float("nan"))
        if on_step is not None:
            on_step(r_total)
        if (t + 1) % check_every == 0 or t + 1 == total:
            if not bool(active.all()):
                keep = active.nonzero().squeeze(1)
                if keep.numel() == 0:  # every replica diverged: nothing left to train
                    alive = alive[:0]
                    if on_step is not None and t + 1 < total:
                        on_step(r_total * (total - t - 1))
                    break
                stack.compact(keep)
                opt.compact(keep)
                lr_t, seed_pos_t, alive, active = lr_t[keep], seed_pos_t[keep], alive[keep], active[keep]

    out = {
        "train_loss_final": np.full(r_total, np.nan),
        "test_loss": np.full(r_total, np.nan), "test_acc": np.full(r_total, np.nan),
    }
    if alive.numel():
        # replicas that diverged since the last check are still in the stack: skip them
        keep = active.nonzero().squeeze(1)
        params = [p[keep] for p in stack.params]
        alive = alive[keep]
        tr_loss, _ = _evaluate(stack, params, x_train, y_train, config, dev)
        te_loss, te_acc = _evaluate(stack, params, x_test, y_test, config, dev)
        idx_np = alive.cpu().numpy()
        out["train_loss_final"][idx_np] = tr_loss
        out["test_loss"][idx_np] = te_loss
        out["test_acc"][idx_np] = te_acc
    return summarize(out, curves.cpu().numpy().astype(np.float64), diverged_step.cpu().numpy(), n, config)


def summarize(out: dict, curves: np.ndarray, ds: np.ndarray, n: int, config: TrainConfig) -> dict:
    """A chunk's per-replica results from its loss curves ``(steps, R)``, divergence steps ``ds``
    (-1: none) and final evaluations ``out``: divergence flags (a finite run whose final loss is
    not finite diverged at the last step) and ``train_loss``, the batch-size-weighted mean of the
    last epoch's minibatch losses. The one summary both engines (this and ``sweep_module``) use."""
    total, per_epoch = curves.shape[0], config.steps_per_epoch(n)
    ds = ds.copy()
    ds[~np.isfinite(out["train_loss_final"]) & (ds < 0)] = total
    diverged = ds >= 0
    for key in out:
        out[key][diverged] = np.nan
    window = np.arange(max(0, total - min(per_epoch, total)), total)
    sizes = np.minimum(config.batch_size, n - (window % per_epoch) * config.batch_size).astype(np.float64)
    avg = (curves[window] * sizes[:, None]).sum(axis=0) / sizes.sum()
    out["train_loss"] = np.where(diverged, np.nan, avg)
    out["diverged"], out["diverged_step"] = diverged, ds
    out["steps"] = np.where(diverged, ds, total).astype(np.int64)
    out["curves"] = curves
    return out


def _per_replica_loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean loss over the batch for each replica: ``(R,)`` from logits ``(R, B, out)``."""
    r, b, o = logits.shape
    if kind == "ce":
        per_sample = F.cross_entropy(logits.reshape(r * b, o), y.reshape(r * b), reduction="none")
        return per_sample.view(r, b).mean(1)
    return (logits - y).pow(2).reshape(r, -1).mean(1)


@torch.no_grad()
def _evaluate(stack: Stack, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              config: TrainConfig, dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy (NaN for regression) of every stacked replica on ``(x, y)``."""
    r = params[0].shape[0]
    loss_sum = torch.zeros(r, dtype=torch.float64, device=dev)
    correct = torch.zeros(r, dtype=torch.float64, device=dev)
    bsz = max(1, min(config.eval_batch_size, config.batch_size * 4))
    for lo in range(0, x.shape[0], bsz):
        xb, yb = x[lo:lo + bsz], y[lo:lo + bsz]
        logits = stack.forward(xb, params, shared=True)
        yb_r = yb.unsqueeze(0).expand(r, *yb.shape)
        loss_sum += _per_replica_loss(logits, yb_r, config.loss).double() * xb.shape[0]
        if config.loss == "ce":
            correct += (logits.argmax(-1) == yb_r).sum(1).double()
    n = x.shape[0]
    acc = (correct / n).cpu().numpy() if config.loss == "ce" else np.full(r, np.nan)
    return (loss_sum / n).cpu().numpy(), acc
