"""Adam(W) replicas four ways: the replica engine, a one-by-one torch.optim loop, plain torch.func vmap
ensembling, and ``archscale.sweep_module``.

All four train the same ``--replicas`` (lr, seed) replicas of one DAG MLP (``--graph``, default
``2_12_202_0122``: five vertices, six Linear blocks, two skips; ``--width`` 128) on digits, with the
minibatches of ``archscale.train.minibatch_schedule``, ``--steps`` steps of ``--batch-size``, then one
evaluation on the training and test sets:

(a) one by one: per replica ``ModelSpec.build`` and ``torch.optim.AdamW`` (or Adam, SGD), reading the
    loss every step as a training loop does;
(b) the replica engine: :func:`archscale.train.train_replicas` (stacked weights, hand-written backward,
    the shared per-replica step of ``archscale.train.optim``, chunked to the CPU cache);
(c) plain torch.func ensembling, the way the PyTorch tutorial stacks models: ``stack_module_state``,
    ``vmap(grad_and_value(functional_call ...))`` over the replicas, and a hand-written vectorized
    AdamW (or plain SGD; one LR per replica) on the stacked parameters; nothing of archscale but the
    models;
(d) :func:`archscale.sweep_module`: vmap over any ``nn.Module`` with archscale's optimizer step,
    divergence handling and rows.

Every run is warmed up first; all are timed in one process. It prints each wall time and
replica-steps per second, each ratio to (b), the median and largest relative difference between the
final training losses of (b) and (c) (the same math, so float32 rounding, which Adam amplifies at the
largest LRs of the grid; in float64 the engine equals torch.optim to 1e-14), and last
``speedup <(a)/(b)>``.

Run: ``python benchmarks/adam_throughput.py [--optimizer adamw|adam|sgd] [--replicas 64]
[--width 128] [--steps 100] [--batch-size 32] [--weight-decay 0.01] [--threads N] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

import archscale
from archscale.data import load_dataset
from archscale.train import ModelSpec, TrainConfig, minibatch_schedule, resolve_device, train_replicas


def replicas(n: int, low: float, high: float, n_seeds: int = 4) -> tuple[list[float], list[int]]:
    """``n`` (lr, seed) pairs: a log grid between ``low`` and ``high`` (nothing diverges) times seeds."""
    n_seeds = min(n_seeds, n)
    grid = np.geomspace(low, high, math.ceil(n / n_seeds))
    pairs = [(float(lr), s) for s in range(n_seeds) for lr in grid][:n]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def torch_optimizer(params, lr: float, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, betas=config.adam_betas, eps=config.eps, weight_decay=config.weight_decay)


def one_by_one(spec: ModelSpec, lrs, seeds, data, config: TrainConfig, device) -> None:
    """(a): one model at a time with the torch.optim optimizer, then the evaluation."""
    xs = [t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test)]
    total = config.total_steps(data.n_train)
    for lr, seed in zip(lrs, seeds):
        net = spec.build(tuple(data.x_train.shape[1:]), data.out_dim, seed).to(device)
        opt = torch_optimizer(net.parameters(), lr, config)
        for idx in minibatch_schedule(data.n_train, config.batch_size, seed, total):
            idx = torch.as_tensor(idx, device=device)
            loss = F.cross_entropy(net(xs[0][idx]), xs[1][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        with torch.no_grad():
            for x, y in ((xs[0], xs[1]), (xs[2], xs[3])):
                F.cross_entropy(net(x), y).item()


class VectorizedAdamW:
    """torch.optim.AdamW (Adam when not ``decoupled``; plain SGD for ``sgd``) on stacked parameters,
    one LR per replica."""

    def __init__(self, params: dict[str, torch.Tensor], lrs: torch.Tensor, config: TrainConfig):
        self.lrs, self.wd, self.eps = lrs, config.weight_decay, config.eps
        self.beta1, self.beta2 = config.adam_betas
        self.sgd = config.optimizer == "sgd"
        self.decoupled = config.optimizer == "adamw"
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        self.t += 1
        c1, c2 = 1 - self.beta1**self.t, math.sqrt(1 - self.beta2**self.t)
        for k, p in params.items():
            g, shape = grads[k], (-1,) + (1,) * (p.dim() - 1)
            if self.sgd:  # torch.optim.SGD without momentum
                p.addcmul_(g.add(p, alpha=self.wd) if self.wd else g, self.lrs.view(shape), value=-1.0)
                continue
            if self.wd and self.decoupled:
                p.mul_((1 - self.lrs * self.wd).view(shape))
            elif self.wd:
                g = g.add(p, alpha=self.wd)
            self.m[k].lerp_(g, 1 - self.beta1)
            self.v[k].mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = self.v[k].sqrt().div_(c2).add_(self.eps)
            p.addcmul_(self.m[k] / denom, (self.lrs / c1).view(shape), value=-1.0)


def plain_vmap(spec: ModelSpec, lrs, seeds, data, config: TrainConfig, device) -> np.ndarray:
    """(c): the torch.func model-ensembling recipe with a hand-written vectorized AdamW; returns the
    final training loss of every replica."""
    in_shape = tuple(data.x_train.shape[1:])
    models = [spec.build(in_shape, data.out_dim, s).to(device) for s in seeds]
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = spec.build(in_shape, data.out_dim, 0).to("meta")

    def loss_fn(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    step = vmap(grad_and_value(loss_fn))
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    opt = VectorizedAdamW(params, torch.tensor(lrs, device=device), config)
    total = config.total_steps(data.n_train)
    schedules = [minibatch_schedule(data.n_train, config.batch_size, s, total) for s in seeds]
    for _ in range(total):
        idx = torch.as_tensor(np.stack([next(it) for it in schedules]), device=device)
        grads, loss = step(params, buffers, x_train[idx], y_train[idx])
        opt.step(params, grads)
        loss.cpu()  # the per-replica losses of the step, as every engine records them
    with torch.no_grad():
        out = []
        for x, y in ((x_train, y_train), (x_test, y_test)):
            logits = forward(params, buffers, x)
            out.append(F.cross_entropy(logits.flatten(0, 1), y.repeat(len(lrs)), reduction="none")
                       .view(len(lrs), -1).mean(1).cpu().numpy())
    return out[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default="adamw")
    p.add_argument("--replicas", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weight-decay", type=float, default=None, help="default 0.01 (Adam), 0 (SGD)")
    p.add_argument("--graph", default="2_12_202_0122")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-one-by-one", action="store_true", help="leave (a) out (it is the slowest)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.weight_decay is None:
        args.weight_decay = 0.0 if args.optimizer == "sgd" else 0.01
    data = load_dataset("digits")
    spec = ModelSpec(args.graph, width=args.width)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer,
                         weight_decay=args.weight_decay)
    lrs, seeds = replicas(args.replicas, *((1e-4, 1e-2) if args.optimizer != "sgd" else (1e-3, 1e-1)))
    work = len(lrs) * args.steps
    print(f"{args.optimizer} (weight decay {args.weight_decay:g}), mlp {spec.graph} width {spec.width}: "
          f"{len(lrs)} replicas x {args.steps} steps of batch {args.batch_size} on digits ({data.n_train} "
          f"samples), {device}, {torch.get_num_threads()} thread(s)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def make_model():  # sweep_module seeds torch before each call: the seed's replica, as spec.build draws it
        return spec.build(tuple(data.x_train.shape[1:]), data.out_dim, torch.initial_seed())

    def timed(run):
        sync()
        start = time.perf_counter()
        out = run()
        sync()
        return time.perf_counter() - start, out

    runs = {
        "(a) one by one": lambda c, n: one_by_one(spec, lrs[:n], seeds[:n], data, c, device),
        "(b) replica engine": lambda c, n: train_replicas(spec, lrs[:n], seeds[:n], data, c, device=device),
        "(c) plain vmap": lambda c, n: plain_vmap(spec, lrs[:n], seeds[:n], data, c, device),
        "(d) sweep_module": lambda c, n: archscale.sweep_module(
            make_model, sorted(set(lrs[:n])), sorted(set(seeds[:n])), data, c, device=device, progress=False),
    }
    if args.skip_one_by_one:
        del runs["(a) one by one"]
    warm = TrainConfig(steps=3, batch_size=args.batch_size, optimizer=args.optimizer,
                       weight_decay=args.weight_decay)
    for run in runs.values():
        run(warm, 4)
    times, outs = {}, {}
    for name, run in runs.items():
        times[name], outs[name] = timed(lambda run=run: run(config, len(lrs)))
    ref = times["(b) replica engine"]
    for name, seconds in times.items():
        rate = work / seconds
        print(f"{name:<20} {seconds:8.2f} s  {rate:8.0f} replica-steps/s  {seconds / ref:5.2f}x (b)")
    if "(c) plain vmap" in outs:
        engine = outs["(b) replica engine"].train_loss_final
        rel = np.abs(outs["(c) plain vmap"] - engine) / engine
        print(f"final training loss, (c) against (b): relative difference median {np.median(rel):.1e}, "
              f"max {rel.max():.1e}")
    if "(a) one by one" in times:
        print(f"speedup {times['(a) one by one'] / ref:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
