"""Throughput of the batched trainer against model-by-model training, and its achieved FLOP/s.

``--mode throughput`` (default) trains the same replicas (one DAG MLP, or with ``--arch cnn`` one
DAG CNN on 8x8 digit images; a log grid of learning rates, a few seeds) twice on the same device:
(a) one model at a time with ``torch.optim.SGD`` and a shuffling ``DataLoader``, the way the
paper's reference code trains, and (b) all at once with :func:`archscale.train.train_replicas`.
It prints both wall times, replica-steps per second and, as its last line, ``speedup <ratio>``.

``--mode flops`` times the batched trainer, counts its matmul FLOPs (forward and backward), and
compares the achieved FLOP/s with a large plain matmul on the same device.

Run: ``python benchmarks/sweep_throughput.py [--device cpu|cuda] [--arch mlp|cnn] [--replicas 64]
[--width 128] [--kernel-size 3] [--steps 100] [--batch-size 128] [--mode throughput|flops]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from archscale.data import load_dataset
from archscale.train import ModelSpec, TrainConfig, resolve_device, train_replicas


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def replicas(n: int, n_seeds: int = 4) -> tuple[list[float], list[int]]:
    """``n`` (lr, seed) pairs: a log grid of small LRs (nothing diverges) times a few seeds."""
    n_seeds = min(n_seeds, n)
    n_lrs = math.ceil(n / n_seeds)
    grid = np.geomspace(1e-3, 1e-1, n_lrs)
    pairs = [(float(lr), s) for s in range(n_seeds) for lr in grid][:n]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def train_one_by_one(spec: ModelSpec, lrs, seeds, data, config: TrainConfig, device) -> None:
    """The reference code's loop: per model a DataLoader, torch.optim.SGD, running loss/accuracy."""
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    dataset = TensorDataset(data.x_train, data.y_train)  # on the host; batches move like the reference's
    criterion = torch.nn.CrossEntropyLoss()
    total = config.total_steps(data.n_train)
    for lr, seed in zip(lrs, seeds):
        net = spec.build(tuple(data.x_train.shape[1:]), data.out_dim, seed).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum,
                              nesterov=config.nesterov, weight_decay=config.weight_decay)
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        step, loss_sum, correct, seen = 0, 0.0, 0.0, 0
        while step < total:
            net.train()
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                out = net(x)
                loss = criterion(out, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item() * x.shape[0]
                correct += (out.argmax(1) == y).sum().item()
                seen += x.shape[0]
                step += 1
                if step >= total:
                    break
        net.eval()
        with torch.no_grad():
            float(F.cross_entropy(net(x_train), y_train))
            float((net(x_test).argmax(1) == y_test).float().mean())


def _forward_flops(spec: ModelSpec, in_shape: tuple, out_dim: int) -> float:
    """Matmul (or convolution) FLOPs of one sample's forward pass through one replica."""
    n_param = sum(1 for e in spec.dag.edges if e.is_parameterized)
    w = spec.width
    if spec.arch == "mlp":
        return 2.0 * (math.prod(in_shape) * w + n_param * w * w + w * out_dim)
    c, h, wd = in_shape
    return 2.0 * (h * wd * spec.kernel_size**2 * (c * w + n_param * w * w) + w * out_dim)


def plain_matmul_flops(device: torch.device, n: int = 4096, repeats: int = 10) -> float:
    """Achieved FLOP/s of an ``n x n`` float32 matmul on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--mode", choices=("throughput", "flops"), default="throughput")
    p.add_argument("--arch", choices=("mlp", "cnn"), default="mlp", help="mlp (default) or cnn (on digits "
                   "as 8x8 images, like the CNN quick preset)")
    p.add_argument("--replicas", type=int, default=64)
    p.add_argument("--width", type=int, default=None, help="default 128 (mlp), 16 (cnn)")
    p.add_argument("--kernel-size", type=int, default=3, help="CNN kernel (default 3)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=None,
                   help="minibatch (default as in the quick specs: 32 for mlp, 16 for cnn)")
    p.add_argument("--graph", default="2_12_202_0122", help="DAG code (default: a 5-vertex DAG with "
                   "6 blocks and 2 skips)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cnn = args.arch == "cnn"
    args.width = args.width or (16 if cnn else 128)
    args.batch_size = args.batch_size or (16 if cnn else 32)
    data = load_dataset(args.dataset, flatten=not cnn)
    spec = ModelSpec(args.graph, arch=args.arch, width=args.width, kernel_size=args.kernel_size)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size)
    lrs, seeds = replicas(args.replicas)
    work = len(lrs) * args.steps
    kernel = f", kernel {spec.kernel_size}" if cnn else ""
    print(f"device {device} ({torch.get_num_threads()} CPU threads), {spec.arch} {spec.graph}, "
          f"width {spec.width}{kernel}, {len(lrs)} replicas x {args.steps} steps, batch {args.batch_size}, "
          f"{data.name} ({data.n_train} train samples)")
    # warm up both paths (allocator, kernels) on a small problem
    train_replicas(spec, lrs[:2], seeds[:2], data, TrainConfig(steps=3, batch_size=args.batch_size),
                   device=device)
    train_one_by_one(spec, lrs[:1], seeds[:1], data, TrainConfig(steps=3, batch_size=args.batch_size), device)

    if args.mode == "flops":
        _sync(device)
        start = time.perf_counter()
        train_replicas(spec, lrs, seeds, data, config, device=device)
        _sync(device)
        wall = time.perf_counter() - start
        # training (backward = 2x forward) plus the final evaluation on the train and test sets
        per_sample = _forward_flops(spec, tuple(data.x_train.shape[1:]), data.out_dim)
        flops = len(lrs) * per_sample * (3 * args.batch_size * args.steps + data.n_train + data.n_test)
        achieved = flops / wall
        peak = plain_matmul_flops(device)
        print(f"batched trainer   {wall:8.3f} s  {achieved / 1e9:9.2f} GFLOP/s (matmul FLOPs: training "
              f"fwd+bwd and the final evaluation)")
        print(f"plain matmul      {peak / 1e9:9.2f} GFLOP/s (4096 x 4096 float32)")
        print(f"fraction {achieved / peak:.3f}")
        return 0

    _sync(device)
    start = time.perf_counter()
    train_one_by_one(spec, lrs, seeds, data, config, device)
    _sync(device)
    t_seq = time.perf_counter() - start

    start = time.perf_counter()
    train_replicas(spec, lrs, seeds, data, config, device=device)
    _sync(device)
    t_bat = time.perf_counter() - start
    print(f"one by one (torch.optim.SGD)  {t_seq:8.3f} s  {work / t_seq:10.1f} replica-steps/s")
    print(f"batched (train_replicas)      {t_bat:8.3f} s  {work / t_bat:10.1f} replica-steps/s")
    print(f"speedup {t_seq / t_bat:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
