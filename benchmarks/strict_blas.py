"""What MKL's strict reproducible mode costs (archscale/blas.py): the batched trainer timed with it
and without it, in two fresh processes run one after the other on this machine.

Prints the wall time of each configuration in each mode and, as its last line, ``strict/plain <ratio>``
(the geometric mean over configurations; above 1 means strict is slower).

Run: ``python benchmarks/strict_blas.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, sys, time
import torch
from archscale.nn import blas
from archscale.data import load_dataset
from archscale.train import ModelSpec, TrainConfig, train_replicas
data = load_dataset("digits")
cases = {
    "64 replicas, width 128 (quick MLP chunk)": (ModelSpec("2_02_112", width=128), 64),
    "4 replicas, width 1024": (ModelSpec("2_02", width=1024), 4),
    "1 replica, width 1024": (ModelSpec("2_02", width=1024), 1),
}
out = {"status": blas.status()}
config = TrainConfig(steps=60, batch_size=128)
for name, (spec, r) in cases.items():
    lrs = [0.01 * 1.3 ** i for i in range(r)]
    train_replicas(spec, lrs[:1], [0], data, TrainConfig(steps=3, batch_size=128))  # warm-up
    times = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        train_replicas(spec, lrs, [0] * r, data, config)
        times.append(time.perf_counter() - start)
    out[name] = min(times)
print(json.dumps(out))
"""


def run(mode: str, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    if mode == "plain":
        env["MKL_CBWR"] = "AUTO"  # MKL's own choice per run, not strict: archscale leaves it alone
    out = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per configuration (the best counts)")
    args = parser.parse_args()
    results = {mode: run(mode, args.repeats) for mode in ("strict", "plain")}
    for mode, res in results.items():
        print(f"{mode}: {res.pop('status')}")
    ratios = []
    for name in results["strict"]:
        s, p = results["strict"][name], results["plain"][name]
        ratios.append(s / p)
        print(f"{name:45s} strict {s:7.3f} s   plain {p:7.3f} s   ratio {s / p:.3f}")
    print(f"strict/plain {float(np.exp(np.mean(np.log(ratios)))):.3f}")


if __name__ == "__main__":
    main()
