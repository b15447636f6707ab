"""How many replicas an adaptive grid needs to reach the full grid's resolution (issue 21).

For a bundled preset, the reference is its full grid (trained, or reloaded from ``--runs-dir``):
each configuration's maximal LR estimated finer than the grid. Against it are set

* the full grid's argmin: the resolution the paper's rule has (``rms ln(argmin / reference)``);
* an adaptive sweep: every ``--every``-th LR of the grid, then ``--refine`` LRs per configuration
  and round for up to ``--rounds`` rounds (:mod:`archscale.sweep.refine`), same seeds and data.

Prints replicas trained (full vs adaptive) and ``rms ln(estimate / reference)`` of each, over the
configurations, and as its last line ``replicas full/adaptive <ratio>``.

Run: ``python benchmarks/refine_replicas.py mlp_topology_quick [--every 6] [--refine 1] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

from archscale.analysis import max_lr
from archscale.core.schema import CONFIG_KEYS
from archscale.sweep import load_spec, run_sweep


def _rms(a, b) -> float:
    d = np.log(np.asarray(a, float) / np.asarray(b, float))
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d**2))) if d.size else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--every", type=int, default=6, help="keep every k-th LR of the grid (default 6)")
    parser.add_argument("--refine", type=int, default=1, help="LRs per configuration and round (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="refinement rounds (default 3)")
    parser.add_argument("--runs-dir", default="runs", help="where the full grid's results are (or go)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes for the sweeps")
    args = parser.parse_args()

    spec = load_spec(args.preset)
    full = run_sweep(spec, Path(args.runs_dir) / spec.name, progress=False, workers=args.workers)
    grid = spec.lr_grid()
    coarse = grid[:: args.every] if grid[-1] in grid[:: args.every] else [*grid[:: args.every], grid[-1]]
    adaptive_spec = spec.replace(lrs=coarse, refine=args.refine, refine_rounds=args.rounds,
                                 name=f"{spec.name}_adaptive")
    with tempfile.TemporaryDirectory() as tmp:
        adaptive = run_sweep(adaptive_spec, tmp, progress=False, workers=args.workers)
    ref = max_lr(full).set_index(list(CONFIG_KEYS))
    arg = max_lr(full, method="argmin").set_index(list(CONFIG_KEYS))
    ada = max_lr(adaptive).set_index(list(CONFIG_KEYS)).reindex(ref.index)
    inside = ~ref["at_edge"].to_numpy() & ~ada["at_edge"].fillna(True).to_numpy().astype(bool)
    n_full, n_ada = len(full), len(adaptive)
    print(f"{spec.name}: {len(ref)} configurations x {len(spec.seeds)} seeds; grid {len(grid)} LRs, adaptive "
          f"{len(coarse)} + up to {args.rounds} x {args.refine}")
    print(f"replicas: full grid {n_full}, adaptive {n_ada}")
    print(f"rms ln(x / full-grid estimate) over the {int(inside.sum())} configurations inside both grids:")
    print(f"  full grid argmin (the paper's rule)  {_rms(arg['max_lr'][inside], ref['max_lr'][inside]):.3f}")
    print(f"  adaptive estimate                    {_rms(ada['max_lr'][inside], ref['max_lr'][inside]):.3f}")
    print(f"  one grid step                        {math.log(grid[1] / grid[0]):.3f}")
    print(f"replicas full/adaptive {n_full / n_ada:.2f}")


if __name__ == "__main__":
    main()
