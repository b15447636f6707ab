"""``archscale.sweep_module`` (torch.func vmap over replicas) against a plain torch.optim.SGD loop.

Both train the same replicas of the same user-written module (a pre-activation residual CNN or
an MLP with a skip, plain PyTorch, initialized by ``archscale.apply``): (a) one model at a time
with ``torch.optim.SGD`` on the minibatches of ``archscale.train.minibatch_schedule`` and a final
evaluation on the training and test sets; (b) all at once with ``sweep_module``. Both are warmed
up, then timed in the same process; the last line is ``speedup <(a) / (b)>``.

Run: ``python benchmarks/sweep_module.py [--model cnn|mlp] [--blocks 2] [--width 16] [--lrs 8]
[--seeds 2] [--steps 45] [--batch-size 32] [--threads N] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import archscale
from archscale.data import load_dataset
from archscale.train import TrainConfig, minibatch_schedule, resolve_device


class PreActBlock(nn.Module):
    def __init__(self, width: int, conv: bool):
        super().__init__()
        make = (lambda: nn.Conv2d(width, width, 3, padding=1)) if conv else (lambda: nn.Linear(width, width))
        self.a, self.b = make(), make()

    def forward(self, x):
        return x + self.b(F.relu(self.a(F.relu(x))))


class ResNet(nn.Module):
    """Stem, ``blocks`` pre-activation residual blocks, ReLU, global mean (CNN), linear readout."""

    def __init__(self, blocks: int, width: int, conv: bool, in_features: int, classes: int = 10):
        super().__init__()
        self.conv = conv
        self.stem = nn.Conv2d(in_features, width, 3, padding=1) if conv else nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[PreActBlock(width, conv) for _ in range(blocks)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = F.relu(self.blocks(self.stem(x if self.conv else x.flatten(1))))
        return self.head(h.mean((2, 3)) if self.conv else h)


def plain_loop(make_model, lrs, seeds, data, config, device) -> None:
    """One replica at a time: torch.optim.SGD on the same minibatches, then the same evaluation."""
    xs = [t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test)]
    total = config.total_steps(data.n_train)
    for seed in seeds:
        for lr in lrs:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = make_model().to(device)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
            for idx in minibatch_schedule(data.n_train, config.batch_size, seed, total):
                idx = torch.as_tensor(idx, device=device)
                loss = F.cross_entropy(model(xs[0][idx]), xs[1][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss.item()  # the loop reads its loss every step, as a training loop does
            with torch.no_grad():
                for x, y in ((xs[0], xs[1]), (xs[2], xs[3])):
                    F.cross_entropy(model(x), y).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lrs", type=int, default=8, help="learning rates (log grid 0.01..1)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    conv = args.model == "cnn"
    data = load_dataset("digits", flatten=not conv)
    in_features = data.in_shape[0] if conv else int(np.prod(data.in_shape))
    example = data.x_train[:2]

    def make_model():
        model = ResNet(args.blocks, args.width, conv, in_features)
        archscale.apply(model, example)
        return model

    lrs = np.geomspace(0.01, 1.0, args.lrs).tolist()
    seeds = list(range(args.seeds))
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size)
    n = len(lrs) * len(seeds)
    print(f"{args.model} with {args.blocks} residual block(s), width {args.width}: {n} replicas x "
          f"{args.steps} steps of batch {args.batch_size} on digits, {device}, "
          f"{torch.get_num_threads()} thread(s)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(run) -> float:
        sync()
        start = time.perf_counter()
        run()
        sync()
        return time.perf_counter() - start

    warm = TrainConfig(steps=2, batch_size=args.batch_size)
    timed(lambda: plain_loop(make_model, lrs[:1], seeds[:1], data, warm, device))
    timed(lambda: archscale.sweep_module(make_model, lrs[:2], seeds[:1], data, warm, device=device,
                                         progress=False))
    plain = timed(lambda: plain_loop(make_model, lrs, seeds, data, config, device))
    vmapped = timed(lambda: archscale.sweep_module(make_model, lrs, seeds, data, config, device=device,
                                                   progress=False))
    steps = n * args.steps
    for label, seconds in (("(a) plain SGD loop", plain), ("(b) sweep_module", vmapped)):
        print(f"{label:<20} {seconds:8.2f} s  {steps / seconds:9.0f} replica-steps/s")
    print(f"speedup {plain / vmapped:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
