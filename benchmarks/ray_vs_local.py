"""Ray vs local: what a chunk costs as a Ray task, and the scaling plan for N workers.

Trains the same chunks (``--chunks`` chunks of 4 replicas of a small DAG MLP on digits, ``--steps``
SGD steps each) three ways, all at one torch thread per worker, through the sweep's own driver
loop (:func:`archscale.sweep.run_chunks`, rows appended to a results store):

- locally, one chunk after another (:class:`~archscale.sweep.LocalExecutor`);
- as Ray tasks on a local Ray instance with 1 worker, then with ``--workers`` workers
  (:class:`~archscale.sweep.RayExecutor`), after timing the instance's start and a warm-up (each
  worker imports torch and fetches the data once);

and times ``--empty`` empty tasks (the bare round trip of a task). It prints every time, the Ray
rows' equality with the local rows, the overhead per chunk (1 Ray worker minus local, divided by
the chunks; noisy when chunks are cheap, so the plan charges at least the empty task's round
trip), and the scaling plan: for the preset ``--preset`` (default ``mlp_topology_quick``), its
chunk count, the measured cost of ``--sample`` of its chunks trained here, and the predicted wall
time ``start + warm-up + ceil(chunks / N) x (chunk cost + overhead)`` for N workers.

Run: ``python benchmarks/ray_vs_local.py [--chunks 16] [--steps 200] [--workers 2] [--preset NAME]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from archscale.core.errors import DataError
from archscale.data import Dataset
from archscale.runs.store import ResultStore
from archscale.sweep import LocalExecutor, RayExecutor, SweepSpec, load_spec, plan_chunks, run_chunks
from archscale.sweep.run import _train, describe_chunk, train_chunk


class _Empty:
    """A stand-in chunk for the empty-task round trip."""

    def __init__(self, i: int):
        self.id = f"empty{i}"


def _noop(chunk, shared, device, on_step):
    return []


def _warm(chunk, shared, device, on_step):
    import archscale.train  # noqa: F401 - what a first real task imports

    time.sleep(0.5)  # overlap, so that every worker gets one
    return []


def bench_spec(n_chunks: int, steps: int, width: int) -> SweepSpec:
    """``n_chunks`` chunks of 4 replicas (4 small LRs, nothing diverges) over four DAG MLPs."""
    graphs = ["1", "2", "2_02", "2_02_002"]
    n_seeds = max(1, math.ceil(n_chunks / len(graphs)))
    return SweepSpec(arch="mlp", graphs=graphs, widths=[width], lrs=[0.01, 0.02, 0.05, 0.1],
                     seeds=list(range(n_seeds)), steps=steps, batch_size=64, n_train=512, n_test=128,
                     chunk_size=4, name="bench")


def _drive(plan, shared, executor, out: Path, steps: int) -> float:
    """Wall seconds of the sweep's driver loop over ``plan`` (rows appended to a store in ``out``)."""
    store = ResultStore(out)
    start = time.perf_counter()
    with store.open() as writer:
        run_chunks(plan, _train, shared, writer, executor, work=lambda c: len(c.replicas) * steps,
                   describe=describe_chunk, desc="bench", progress=False)
    return time.perf_counter() - start


def _rows(out: Path) -> pd.DataFrame:
    df = pd.DataFrame(ResultStore(out).scan().rows)
    return df.sort_values(["graph", "lr", "seed"]).reset_index(drop=True)


def ray_run(workers: int, plan, shared, out: Path, steps: int, n_empty: int) -> dict:
    """One local Ray instance with ``workers`` CPUs: start, warm-up, the chunks, empty tasks."""
    start = time.perf_counter()
    with RayExecutor(num_cpus=workers, threads=1) as ex:
        up = time.perf_counter() - start
        t = time.perf_counter()
        list(ex.map(_warm, [_Empty(i) for i in range(workers)], shared))
        warm = time.perf_counter() - t
        wall = _drive(plan, shared, ex, out, steps)
        t = time.perf_counter()
        list(ex.map(_noop, [_Empty(i) for i in range(n_empty)], shared))
        empty = (time.perf_counter() - t) / n_empty
    return {"start": up, "warm": warm, "wall": wall, "empty": empty}


def _data(spec: SweepSpec):
    """The preset's data, or random data of CIFAR's shape and size when CIFAR is not on this machine."""
    try:
        return spec.load_data()
    except DataError:
        if not spec.dataset.startswith("cifar"):
            raise
    gen = torch.Generator().manual_seed(0)
    shape = (3072,) if spec.arch == "mlp" else (3, 32, 32)
    n_train, n_test = spec.n_train or 50_000, spec.n_test or 10_000
    classes = 100 if spec.dataset == "cifar100" else 10
    print(f"({spec.dataset} is not here: timing on random data of its shape, {n_train} training images)")
    return Dataset(name="stand-in", x_train=torch.randn(n_train, *shape, generator=gen),
                   y_train=torch.randint(classes, (n_train,), generator=gen),
                   x_test=torch.randn(n_test, *shape, generator=gen),
                   y_test=torch.randint(classes, (n_test,), generator=gen), n_classes=classes,
                   task="classification", in_shape=shape)


def preset_plan(name: str, sample: int, overhead: float, start: float, warm: float) -> None:
    """The preset's chunk count and measured chunk cost, and its predicted wall time on N workers."""
    spec = load_spec(name)
    data = _data(spec)
    plan = plan_chunks(spec, data, "cpu")
    picks = [plan[i] for i in np.linspace(0, len(plan) - 1, min(sample, len(plan))).round().astype(int)]
    costs = []
    with LocalExecutor(threads=1):  # one thread, as in each Ray task
        for chunk in picks:
            t = time.perf_counter()
            train_chunk(spec, chunk, data, "cpu")
            costs.append(time.perf_counter() - t)
    cost = float(np.mean(costs))
    reps = sum(len(c.replicas) for c in plan)
    steps = spec.train_config().total_steps(data.n_train)
    measured = ", ".join(f"{c:.2f}" for c in costs)
    print(f"preset {name}: {len(plan)} chunks, {reps} replicas, {steps} steps each; {len(picks)} chunks "
          f"measured here: {measured} s (mean {cost:.2f} s)")
    print(f"{'workers':>8} {'predicted wall':>15} {'speedup':>8}")
    one = cost * len(plan)
    for n in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        wall = start + warm + math.ceil(len(plan) / n) * (cost + overhead)
        print(f"{n:>8} {wall:>13.1f} s {one / wall:>8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=16, help="chunks of 4 replicas to train each way")
    ap.add_argument("--steps", type=int, default=200, help="SGD steps per replica")
    ap.add_argument("--width", type=int, default=64, help="MLP width")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel run")
    ap.add_argument("--empty", type=int, default=64, help="empty tasks timed for the bare round trip")
    ap.add_argument("--preset", default="mlp_topology_quick",
                    help="preset of the scaling plan (CIFAR presets run on random data of CIFAR's shape "
                         "when CIFAR is not here)")
    ap.add_argument("--sample", type=int, default=4, help="chunks of the preset measured for its plan")
    ap.add_argument("--plan-only", action="store_true", help="skip the Ray runs (charge --overhead-ms, "
                    "--start-s and --warm-s instead)")
    ap.add_argument("--overhead-ms", type=float, default=50.0, help="per-chunk overhead for --plan-only")
    ap.add_argument("--start-s", type=float, default=20.0, help="Ray start for --plan-only")
    ap.add_argument("--warm-s", type=float, default=5.0, help="worker warm-up for --plan-only")
    args = ap.parse_args()

    if args.plan_only:
        preset_plan(args.preset, args.sample, args.overhead_ms / 1000, args.start_s, args.warm_s)
        return
    spec = bench_spec(args.chunks, args.steps, args.width)
    data = spec.load_data()
    shared = (spec, data)
    plan = plan_chunks(spec, data, "cpu")
    n = len(plan)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with LocalExecutor(threads=1) as ex:
            local = _drive(plan, shared, ex, tmp / "local", args.steps)
        print(f"local, 1 thread:  {n} chunks in {local:.2f} s = {local / n:.3f} s per chunk")
        runs = {}
        for w in sorted({1, args.workers}):
            r = runs[w] = ray_run(w, plan, shared, tmp / f"ray{w}", args.steps, args.empty)
            label = f"{w} worker{'s' if w > 1 else ' '}"
            print(f"ray, {label}: start {r['start']:.1f} s, warm-up {r['warm']:.1f} s, {n} chunks in "
                  f"{r['wall']:.2f} s = {r['wall'] / n:.3f} s per chunk ({local / r['wall']:.2f}x local); "
                  f"empty task {1000 * r['empty']:.1f} ms")
            same = _rows(tmp / f"ray{w}").equals(_rows(tmp / "local"))
            print(f"  rows equal to the local rows: {same}")
    overhead = (runs[1]["wall"] - local) / n
    print(f"overhead per chunk (1 Ray worker - local) / chunks: {overhead * 1000:.1f} ms "
          f"({overhead / (local / n):.1%} of a {local / n:.3f} s chunk)")
    top = runs[max(runs)]
    per_task = max(overhead, top["empty"])  # the difference drowns in noise when tasks are cheap
    print(f"the plan below charges {per_task * 1000:.1f} ms per chunk, start {top['start']:.1f} s and "
          f"warm-up {top['warm']:.1f} s once")
    preset_plan(args.preset, args.sample, per_task, top["start"], top["warm"])


if __name__ == "__main__":
    main()
