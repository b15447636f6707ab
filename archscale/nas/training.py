"""Training one cell network with one recipe and seed (torch.optim.SGD, the benchmark's protocol)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..train import TrainConfig, minibatch_schedule
from .cells import CellNet, as_cell
from .mup_recipe import mup_param_groups
from .recipes import Recipe, as_recipe, build_cell_net, recipe_lr

__all__ = ["BENCHMARK", "BENCHMARK_LR", "require_sgd", "train_cell_net"]


#: NAS-Bench-201's protocol, shortened by ``epochs``: SGD with Nesterov momentum 0.9, weight decay
#: 5e-4 and cosine decay to 0 over all steps (its LR of 0.1 is :data:`BENCHMARK_LR`).
BENCHMARK = TrainConfig(epochs=10, batch_size=128, momentum=0.9, nesterov=True, weight_decay=5e-4,
                        cosine=True)
#: NAS-Bench-201's learning rate for every cell.
BENCHMARK_LR = 0.1


def require_sgd(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` if it trains with SGD: cells are trained with torch.optim.SGD (NAS-Bench-201's
    protocol, and the muP recipe's SGD groups); another optimizer is refused, not ignored."""
    if not isinstance(cfg, TrainConfig):
        raise ArchscaleError(f"cfg must be an archscale.train.TrainConfig, got {type(cfg).__name__}")
    if cfg.optimizer != "sgd":
        raise ArchscaleError(f"the NAS study trains cells with SGD (NAS-Bench-201's protocol); optimizer "
                             f"{cfg.optimizer!r} is not supported there: use optimizer sgd")
    return cfg


def _optimizer(model: CellNet, kind: str, lr: float, cfg: TrainConfig) -> torch.optim.SGD:
    if kind == "mup":
        groups = [{k: v for k, v in g.items() if k != "names"}
                  for g in mup_param_groups(model, lr, cfg.weight_decay)]
    else:
        groups = [{"params": list(model.parameters()), "lr": lr, "weight_decay": cfg.weight_decay}]
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def _check_images(data) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise ArchscaleError(f"data must be an archscale.data.Dataset (missing {name!r}); "
                           f"use archscale.data.load_dataset(name, flatten=False)")
    if data.x_train.ndim != 4:
        raise ArchscaleError(f"cell networks need images (N, C, H, W); got x_train of shape "
                       f"{tuple(data.x_train.shape)}: load with load_dataset(name, flatten=False)")
    if not data.n_classes:
        raise ArchscaleError("the NAS study needs a classification dataset (n_classes > 0)")


def _on_device(data, device: str | torch.device):
    """A light copy of ``data`` with its four tensors moved to ``device`` once for many runs."""
    from types import SimpleNamespace

    moved = {k: getattr(data, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
    return SimpleNamespace(name=getattr(data, "name", "?"), n_classes=data.n_classes, **moved)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded batch plus a random horizontal flip, per sample."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    di = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dj = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (di[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dj[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = xp[torch.arange(n, device=x.device)[:, None, None, None],
             torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        loss_sum += float(F.cross_entropy(logits, y[i:i + batch_size], reduction="sum"))
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    model.train()
    return loss_sum / len(x), correct / len(x)


def train_cell_net(dag: Dag | str, recipe: str | Recipe, data, cfg: TrainConfig | None = None, *,
                   width: int = 16, n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                   seed: int = 0, base_lr: float = BENCHMARK_LR,
                   device: str | torch.device = "cpu") -> dict:
    """Train one cell with one recipe and seed; return a results row (see ``RESULT_COLUMNS``).

    The seed fixes the init draw and the batch order, so recipes see the same batches. A
    non-finite loss stops training: the row is marked ``diverged`` with chance accuracy.
    """
    cfg = require_sgd(cfg or BENCHMARK)
    dag = as_cell(dag)
    recipe = as_recipe(recipe)
    _check_images(data)
    start = time.perf_counter()
    device = torch.device(device)
    model = build_cell_net(dag, recipe, in_channels=int(data.x_train.shape[1]), out_dim=int(data.n_classes),
                           width=width, n_cells=n_cells, batchnorm=batchnorm,
                           mup_base_width=mup_base_width, seed=seed).to(device)
    base_lr = validate.learning_rate(base_lr if recipe.base_lr is None else recipe.base_lr,
                                     "base learning rate")
    lr = recipe_lr(dag, recipe, base_lr)
    opt = _optimizer(model, recipe.kind, lr, cfg)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device).long()
    x_test, y_test = data.x_test.to(device), data.y_test.to(device).long()
    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_factor(s, total))
    gen = torch.Generator(device=device).manual_seed(seed)  # augmentation only
    diverged = False
    loss_sum = correct = 0.0
    seen = 0
    model.train()
    # One model with BatchNorm and per-group (muP) rates: torch.optim.SGD, not the batched replica
    # engine (which has no BatchNorm); the minibatch order is the project's one seeding scheme.
    for step, order in enumerate(minibatch_schedule(n, cfg.batch_size, seed, total)):
        if step % steps_per_epoch == 0:
            loss_sum = correct = 0.0
            seen = 0
        idx = torch.as_tensor(order, device=device)
        xb, yb = x_train[idx], y_train[idx]
        if cfg.augment:
            xb = _augment(xb, gen)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += float((logits.detach().argmax(1) == yb).sum())
        seen += len(idx)
    train_loss = loss_sum / seen if seen and not diverged else float("nan")
    train_acc = correct / seen if seen and not diverged else float("nan")
    if diverged:
        test_loss, test_acc = float("nan"), 1.0 / data.n_classes
    else:
        test_loss, test_acc = _evaluate(model, x_test, y_test, cfg.eval_batch_size)
        if not math.isfinite(test_loss):
            diverged, test_acc = True, 1.0 / data.n_classes
    return {"graph": dag.code, "recipe": recipe.name, "kind": recipe.kind, "seed": seed, "width": width,
            "n_cells": n_cells, "base_lr": base_lr, "lr": lr, "epochs": cfg.epochs, "train_loss": train_loss,
            "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "diverged": diverged,
            "seconds": time.perf_counter() - start}


