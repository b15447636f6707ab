"""The commands on sweeps: ``sweep`` runs one; ``maxlr``, ``calibrate`` and ``laws`` read a finished
one; ``residual-depth`` trains and reads the residual depth sweep.

Each handler imports what it drives when it runs, so building the parser stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import validate
from ..core.errors import ArchscaleError, StoreError
from ..core.presets import preset_names
from ..core.schema import MAXLR_METHODS, METRICS
from .common import UsageError, positive_int

if TYPE_CHECKING:
    import pandas as pd

    from ..sweep import SweepSpec

__all__ = ["add_parsers"]

_RAW_TEXT_FIELDS = ("base", "data_dir", "name", "description")


def _parse_set(items: list[str]) -> dict:
    from ..sweep.spec import parse_value

    changes = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE (e.g. --set dataset=cifar10), got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        changes[key] = value if key in _RAW_TEXT_FIELDS else parse_value(value)
    return changes


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import compare, load_spec, run_sweep

    if not args.out.strip():
        raise UsageError("--out is empty; give the results directory, e.g. --out runs/my_sweep")
    spec = load_spec(args.spec)
    changes = _parse_set(args.set or [])
    if args.dataset:
        changes["dataset"] = args.dataset
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if changes:
        spec = spec.replace(**changes)
    start = time.perf_counter()
    ray = None if args.ray is None else (args.ray or True)  # --ray alone: a local Ray instance
    df = run_sweep(spec, args.out, device=args.device, progress=not args.no_progress,
                   chunk_size=args.chunk_size, threads=args.threads, ray=ray, workers=args.workers)
    wall = time.perf_counter() - start
    n_div = int(df["diverged"].astype(bool).sum()) if len(df) else 0
    print(f"{len(df)} rows in {Path(args.out) / 'results.jsonl'} ({n_div} diverged); "
          f"this run took {wall:.1f} s")
    if len(df):
        try:
            print(compare(df, base=spec.base).format())
        except ArchscaleError as err:
            print(f"(no comparison: {err})")
    return 0


@dataclass
class _Run:
    """A finished sweep directory read for analysis: its rows, spec and how complete its grid is."""

    df: pd.DataFrame
    spec: SweepSpec | None
    present: int
    expected: int | None

    @property
    def partial(self) -> bool:
        return self.expected is None or self.present < self.expected

    def coverage(self) -> str:
        if self.expected is None:
            return f"{self.present} rows present; no spec.yaml, so the grid is unknown"
        return f"{self.present} of {self.expected} rows of the spec's grid present"


def _load_run(args: argparse.Namespace) -> _Run:
    """The rows of ``args.dir`` for maxlr/calibrate: refused when the grid is incomplete unless --partial."""
    from ..core.schema import SWEEP
    from ..sweep import SweepSpec, grid_coverage
    from ..sweep.run import open_store

    store = open_store(args.dir)
    if not store.dir.is_dir():
        raise StoreError(f"{store.dir} is not a sweep directory (it does not exist); "
                         f"run 'archscale sweep SPEC --out {store.dir}' first")
    scan = store.scan()
    if not scan.rows:
        raise StoreError(f"{store.dir} has no finished results yet; run 'archscale sweep SPEC --out "
                         f"{store.dir}'" + (f" ({scan.describe(store.path)})" if scan.damaged else ""))
    meta = store.read_meta()
    spec = SweepSpec.from_dict(meta) if meta is not None else None
    if scan.damaged:
        warnings.warn(scan.describe(store.path), UserWarning, stacklevel=1)
    if spec is None:
        present, expected = len(scan.rows), None
        if not args.partial:
            raise StoreError(f"{store.dir} has no spec.yaml, so whether its grid is complete is unknown; "
                             f"--partial answers from the {present} rows present")
    else:
        present, expected = grid_coverage(spec, scan.keys, SWEEP.frame(scan.rows))
        if present < expected and not args.partial:
            why = (f"damaged lines {', '.join(str(d.line) for d in scan.unrecovered()[:6])}"
                   if scan.unrecovered() else "the sweep was interrupted or has not finished")
            raise StoreError(f"{store.dir}: {present} of {expected} rows of the spec's grid are present "
                             f"({why}); resume with 'archscale sweep {store.meta_path} --out {store.dir}', "
                             f"or pass --partial to answer from the rows present")
    df = SWEEP.frame(scan.rows)
    if spec is not None and not getattr(args, "all_rows", False):
        kept = spec.select(df)
        if len(kept) < len(df):
            print(f"(using the {len(kept)} rows of the last spec run in {store.dir}; {len(df) - len(kept)} "
                  f"rows of earlier grids set aside, --all-rows uses them too)", file=sys.stderr)
            df = kept
    return _Run(df, spec, present, expected)


def _base_of(args: argparse.Namespace, run: _Run) -> str:
    return args.base if args.base is not None else (run.spec.base if run.spec is not None else "1")


def _cmd_maxlr(args: argparse.Namespace) -> int:
    from ..analysis import compare

    run = _load_run(args)
    offset = None if args.offset is None else validate.integer(args.offset, "--offset", minimum=0)
    comp = compare(run.df, base=_base_of(args, run), offset=offset, metric=args.metric, seed=args.seed,
                   method=args.method, edges=args.edges)
    return _print_report(args, run, comp)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..analysis.calibrate import calibrate

    run = _load_run(args)
    cal = calibrate(run.df, base=_base_of(args, run), metric=args.metric, holdout=args.holdout,
                    seed=args.seed, method=args.method, edges=args.edges)
    return _print_report(args, run, cal)


def _cmd_laws(args: argparse.Namespace) -> int:
    from ..analysis.law_scores import compare_laws

    run = _load_run(args)
    report = compare_laws(run.df, base=_base_of(args, run), metric=args.metric, holdout=args.holdout,
                          seed=args.seed, method=args.method, edges=args.edges)
    return _print_report(args, run, report)


def _cmd_residual_depth(args: argparse.Namespace) -> int:
    from ..experiments.residual_depth import report, run_residual_depth

    rd = run_residual_depth(args.preset, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                            runs_dir=args.runs_dir, progress=not args.no_progress, threads=args.threads,
                            **_parse_set(args.set or []))
    print(report(rd, n_boot=args.n_boot, seed=args.seed, good=args.good, as_json=args.json))
    return 0


def _print_report(args: argparse.Namespace, run: _Run, report) -> int:
    """A report (``.to_dict()``/``.format()``) as JSON or text, with how complete the run's grid is."""
    if args.json:
        print(json.dumps({**report.to_dict(), "rows_present": run.present, "rows_expected": run.expected,
                          "partial": run.partial}))
    else:
        print(f"PARTIAL: {run.coverage()} (--partial)" if run.partial else f"rows: {run.coverage()}")
        print(report.format())
    return 0




def _add_sweep_maxlr(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run (or resume) a learning-rate sweep from a YAML spec")
    p.add_argument("spec", help="a bundled preset's name (e.g. mlp_depth_quick) or a spec file (.yaml)")
    p.add_argument("--out", required=True,
                   help="results directory (created with its parents; results.jsonl, spec.yaml); resumable")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"),
                   help="where to train (default cpu; with --ray, the cluster's GPUs when it has any)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set seeds=[0,1] (repeatable)")
    p.add_argument("--dataset", default=None, help="override the spec's dataset")
    p.add_argument("--data-dir", default=None, help="folder or .tar.gz holding CIFAR")
    p.add_argument("--chunk-size", type=positive_int, default=None,
                   help="replicas per chunk (default: from memory and, on the CPU, cache size)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: torch's, one per core; with --ray, per task, default "
                        "1); use 1 on a CPU shared with other busy processes")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="train this many chunks at once in CPU worker processes of this machine (--threads "
                        "each, default 1); the rows are the same. CNN steps use one thread, so CNN sweeps "
                        "gain most")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="train the chunks as Ray tasks, on a local Ray instance (no ADDRESS) or on the "
                        "cluster at ADDRESS (e.g. auto, 10.0.0.1:6379); results land in --out as locally. "
                        "Needs pip install 'archscale[ray]'; put it after SPEC or write --ray=ADDRESS")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("maxlr", help="measured vs predicted maximal LR of a finished sweep",
                       description="Measured vs predicted (eq. 8/9) maximal LR per configuration, and the "
                                   "agreement metrics on log LRs without the base, with 95%% bootstrap "
                                   "intervals over seeds and graphs.")
    _add_run_args(p)
    p.add_argument("--offset", type=int, default=None,
                   help="depth offset for the target and the base alike, as in 'archscale lr' "
                        "(default: the arch's convention)")
    p.add_argument("--all-rows", action="store_true",
                   help="use every row in the directory, not only the grid of its last spec")
    p.set_defaults(func=_cmd_maxlr)

    held_out = {
        "calibrate": ("fit the path-sum law on some graphs, test it on the held-out rest",
                      "Fit the depth offset, the path exponent k (sum_p L_p^k) and the power a (eta ~ S^-a) "
                      "on a random share of a finished sweep's graphs, and report the held-out agreement "
                      "beside eq. 8's, with bootstrap intervals.", _cmd_calibrate),
        "laws": ("the published learning-rate laws head to head on a finished sweep",
                 "Score eq. 8, the effective-depth law, the longest path, the path count and a constant LR "
                 "on a finished sweep: zero-shot, and with each law's power fitted on a random share of the "
                 "graphs and scored on the held-out rest; rank them and say whether the top two are "
                 "distinguishable.", _cmd_laws),
    }
    for name, (short, long, func) in held_out.items():
        p = sub.add_parser(name, help=short, description=long)
        _add_run_args(p)
        extra = "; 0 scores every law zero-shot only (sweeps too small to split)" if name == "laws" else ""
        p.add_argument("--holdout", type=float, default=0.5,
                       help=f"share of the graphs held out (default 0.5){extra}")
        p.set_defaults(func=func)


def _add_residual_depth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "residual-depth", help="train residual nets of growing depth; which LR rule transfers",
        description="Train (or reload) residual chains of K blocks under the standard parametrization and "
                    "under Depth-muP (branches x 1/sqrt(K)), and report how far the measured optimum LR "
                    "drifts from (a) eq. 8, (b) the effective-depth law and (c) Depth-muP's one LR, with "
                    "95%% bootstrap intervals.")
    p.add_argument("--preset", choices=preset_names("residual_depth"), default="quick",
                   help="smoke (seconds), quick (CPU, default) or full (GPU scale, MNIST)")
    p.add_argument("--runs-dir", default="runs",
                   help="results go to RUNS_DIR/residual_depth_PRESET[_DATASET]/ (default: runs); resumable")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set depths=[1,2,4] or --set width=256 (repeatable)")
    p.add_argument("--dataset", default=None, help="override the preset's dataset (e.g. mnist)")
    p.add_argument("--data-dir", default=None, help="folder or .tar.gz holding CIFAR")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--good", type=float, default=1.5,
                   help="error factor a rule must stay within to count as transferring (default 1.5)")
    p.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_residual_depth)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The arguments every command that reads a finished sweep takes."""
    p.add_argument("dir", help="sweep output directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--base", default=None, help="base graph code (default: the spec's base, '1')")
    p.add_argument("--metric", default="train_loss", choices=METRICS, help="loss that defines the max LR")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and of the split) (default 0)")
    p.add_argument("--partial", action="store_true",
                   help="answer even when rows of the spec's grid are missing (the output says PARTIAL)")
    p.add_argument("--method", choices=MAXLR_METHODS, default=MAXLR_METHODS[0],
                   help="maximal LR: subgrid (default: a parabola in log LR around the best grid point, "
                        "finer than the grid) or argmin (the best grid point, as the paper)")
    p.add_argument("--edges", action="store_true",
                   help="also score configurations whose maximal LR (or its interval) reaches the grid's "
                        "end; by default they are flagged and left out of the metrics")



def add_parsers(sub: argparse._SubParsersAction) -> None:
    """sweep, maxlr, calibrate, laws and residual-depth."""
    _add_sweep_maxlr(sub)
    _add_residual_depth(sub)
