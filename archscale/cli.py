"""The ``archscale`` command line: every subcommand's arguments and handler (lr, paths, sweep,
maxlr, reproduce).

Handlers import the modules they drive when they run, so ``archscale lr`` and ``archscale
paths`` load neither torch nor pandas. Bad input, files that are in the way and other OS errors
exit with status 2 and one line on stderr naming what is wrong; warnings are one line each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import validate
from .dag import Dag
from .errors import ArchscaleError, StoreError
from .results import METRICS
from .scaling import convention, lr_scale

__all__ = ["main", "UsageError"]

MAX_LISTED_DEPTHS = 100_000


class UsageError(Exception):
    """Raised inside a command for input the user must fix (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_dag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dag", required=True, help="DAG code, e.g. 2_02_002 (chain) or 2_22_222")
    p.add_argument("--arch", choices=("mlp", "cnn", "nb201"), default="mlp",
                   help="op set and depth convention (default: mlp)")
    p.add_argument("--offset", type=int, default=None,
                   help="depth offset: L_p = offset + parameterized edges (default: 3, nb201: 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _parse_dag(args: argparse.Namespace) -> Dag:
    dag = Dag.parse(args.dag, ops=args.arch)
    dag.require_path()
    return dag


def _cmd_lr(args: argparse.Namespace) -> int:
    base_lr = validate.learning_rate(args.base_lr, "--base-lr")
    dag = _parse_dag(args)
    conv = convention(args.arch)
    if args.kernel_size is not None and not conv.uses_kernel:
        raise UsageError(f"--kernel-size applies only to --arch cnn (got --arch {args.arch}); "
                         f"e.g. archscale lr --arch cnn --dag 2_02_002 --base-lr 0.1 --kernel-size 5")
    kernel = validate.kernel_size(args.kernel_size if args.kernel_size is not None
                                  else conv.base_kernel, "--kernel-size") if conv.uses_kernel else None
    base_kernel = (validate.kernel_size(args.base_kernel, "--base-kernel")
                   if args.base_kernel is not None else None)
    base = Dag.parse(args.base_dag, ops=args.arch) if args.base_dag else None
    offset = conv.offset if args.offset is None else validate.integer(args.offset, "--offset", minimum=0)
    scale = lr_scale(dag, args.arch, kernel, offset=offset, base=base,
                     base_kernel=base_kernel, all_skip=args.all_skip)
    lr = base_lr * scale
    counts = dag.depth_counts(offset)
    n_paths = dag.n_paths
    depths = dag.path_depths(offset) if n_paths <= MAX_LISTED_DEPTHS else None
    if args.json:
        print(json.dumps({
            "dag": dag.code, "arch": args.arch, "base_lr": base_lr, "lr": lr, "scale": scale,
            "paths": n_paths, "depths": depths,
            "depth_counts": {str(k): v for k, v in counts.items()},
            "path_sum": dag.path_power_sum(3, offset), "offset": offset,
            "kernel_size": kernel, "all_skip": args.all_skip,
        }))
        return 0
    hist = ", ".join(f"{c} x L={d}" for d, c in counts.items())
    print(f"dag          {dag.code}  ({args.arch}, {dag.n_vertices} vertices)")
    print(f"paths        {n_paths}  ({hist})")
    print(f"sum L_p^3    {dag.path_power_sum(3, offset)}  (offset {offset})")
    if kernel is not None:
        print(f"kernel size  {kernel}")
    print(f"scale        {scale:.6g}")
    print(f"lr           {lr:.6g}  (base {base_lr:g})")
    return 0


def _cmd_paths(args: argparse.Namespace) -> int:
    dag = _parse_dag(args)
    offset = convention(args.arch).offset if args.offset is None else args.offset
    n = dag.n_paths
    shown = []
    for i, path in enumerate(dag.iter_paths()):
        if i >= args.limit:
            break
        ops = [dag.op(a, b) for a, b in zip(path, path[1:])]
        shown.append({"path": list(path), "ops": ops,
                      "depth": offset + dag.path_param_count(path)})
    if args.json:
        print(json.dumps({"dag": dag.code, "arch": args.arch, "offset": offset, "paths": n,
                          "listed": len(shown), "items": shown,
                          "depth_counts": {str(k): v for k, v in dag.depth_counts(offset).items()}}))
        return 0
    width = max(len(" -> ".join(map(str, s["path"]))) for s in shown)
    print(f"{'#':>4}  {'path':<{width}}  {'L_p':>4}  ops")
    for i, s in enumerate(shown, start=1):
        route = " -> ".join(map(str, s["path"]))
        print(f"{i:>4}  {route:<{width}}  {s['depth']:>4}  {', '.join(s['ops'])}")
    print(f"{n} path(s); L_p = {offset} + parameterized edges"
          + (f"; listed the first {len(shown)} (raise --limit for more)" if len(shown) < n else ""))
    return 0


# ---------------------------------------------------------------------------------------- sweep, maxlr
_RAW_TEXT_FIELDS = ("base", "data_dir", "name", "description")


def _parse_set(items: list[str]) -> dict:
    from .sweep.spec import parse_value

    changes = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE (e.g. --set dataset=cifar10), got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        changes[key] = value if key in _RAW_TEXT_FIELDS else parse_value(value)
    return changes


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import compare, load_spec, run_sweep

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
                   chunk_size=args.chunk_size, threads=args.threads, ray=ray)
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

    df: object  # pandas.DataFrame
    spec: object  # SweepSpec or None
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
    from .results import SWEEP
    from .sweep import SweepSpec, grid_coverage
    from .sweep.run import open_store

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
        present, expected = grid_coverage(spec, scan.keys)
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
    from .analysis import compare

    run = _load_run(args)
    offset = None if args.offset is None else validate.integer(args.offset, "--offset", minimum=0)
    comp = compare(run.df, base=_base_of(args, run), offset=offset, metric=args.metric, seed=args.seed)
    return _print_report(args, run, comp)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .analysis.calibrate import calibrate

    run = _load_run(args)
    cal = calibrate(run.df, base=_base_of(args, run), metric=args.metric, holdout=args.holdout,
                    seed=args.seed)
    return _print_report(args, run, cal)


def _cmd_laws(args: argparse.Namespace) -> int:
    from .analysis.laws import compare_laws

    run = _load_run(args)
    report = compare_laws(run.df, base=_base_of(args, run), metric=args.metric, holdout=args.holdout,
                          seed=args.seed)
    return _print_report(args, run, report)


def _print_report(args: argparse.Namespace, run: _Run, report) -> int:
    """A report (``.to_dict()``/``.format()``) as JSON or text, with how complete the run's grid is."""
    if args.json:
        print(json.dumps({**report.to_dict(), "rows_present": run.present, "rows_expected": run.expected,
                          "partial": run.partial}))
    else:
        print(f"PARTIAL: {run.coverage()} (--partial)" if run.partial else f"rows: {run.coverage()}")
        print(report.format())
    return 0


# ---------------------------------------------------------------------------------------- reproduce
_NOTEBOOK_MODULES = ("papermill", "nbformat", "ipykernel", "jupyter_client")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in _NOTEBOOK_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"archscale reproduce needs {', '.join(missing)}, part of the notebooks extra: "
                         f"pip install 'archscale[notebooks]'")
    from .reproduce import format_table, reproduce

    table = reproduce(args.preset, only=args.only, device=args.device, notebooks_dir=args.notebooks_dir,
                      output_dir=args.output_dir, figures_dir=args.figures_dir, runs_dir=args.runs_dir,
                      dataset=args.dataset, data_dir=args.data_dir, progress=not args.no_progress,
                      timeout=args.timeout)
    print()
    print(format_table(table))
    if (table["status"] != "ok").any():
        failed = ", ".join(table.loc[table["status"] != "ok", "notebook"])
        print(f"failed: {failed} (executed copies with tracebacks are in {args.output_dir}/)")
        return 1
    print(f"executed notebooks: {args.output_dir}/   figures: {args.figures_dir}/")
    return 0


# ---------------------------------------------------------------------------------------- the parser
def _add_lr_paths(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lr", help="scaled learning rate of a DAG (paper eq. 8/9)")
    _add_dag_args(p)
    p.add_argument("--base-lr", required=True, help="maximal LR of the base network")
    p.add_argument("--kernel-size", type=int, default=None, help="CNN kernel size (odd; default 3)")
    p.add_argument("--base-kernel", type=int, default=None, help="base network kernel (default 3)")
    p.add_argument("--base-dag", default=None,
                   help="base network as a DAG code (default: one path of base depth)")
    p.add_argument("--all-skip", choices=("eq8", "reference"), default="eq8",
                   help="graphs with no parameterized edge on any path: eq. 8 (default) or the "
                        "reference code's collapse to one path")
    p.set_defaults(func=_cmd_lr)

    p = sub.add_parser("paths", help="every end-to-end path of a DAG with its depth")
    _add_dag_args(p)
    p.add_argument("--limit", type=_positive_int, default=1000, help="list at most this many")
    p.set_defaults(func=_cmd_paths)


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
    p.add_argument("--chunk-size", type=_positive_int, default=None,
                   help="replicas per chunk (default: from memory and, on the CPU, cache size)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's, one per core; with --ray, per task, default "
                        "1); use 1 on a CPU shared with other busy processes")
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


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The arguments every command that reads a finished sweep takes."""
    p.add_argument("dir", help="sweep output directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--base", default=None, help="base graph code (default: the spec's base, '1')")
    p.add_argument("--metric", default="train_loss", choices=METRICS, help="loss that defines the max LR")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and of the split) (default 0)")
    p.add_argument("--partial", action="store_true",
                   help="answer even when rows of the spec's grid are missing (the output says PARTIAL)")


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from .reproduce import DEVICES, PRESETS

    p = sub.add_parser(
        "reproduce", help="execute every notebook with papermill and regenerate the figures",
        description="Execute every notebook in order with papermill, regenerate the figures and print a "
                    "table (notebook, status, seconds, figures written); exit status 1 if any failed. "
                    "Needs the notebooks extra: pip install 'archscale[notebooks]'.")
    p.add_argument("--preset", choices=PRESETS, default="quick",
                   help="smoke (seconds, tests), quick (CPU minutes, default) or full (GPU, paper scale)")
    p.add_argument("--only", default=None, metavar="PATTERN",
                   help="run only notebooks whose file name matches (regex or glob; commas for several), "
                        "e.g. '0[4-7]' or 'gelu'")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="torch device (default: cpu)")
    p.add_argument("--dataset", default=None,
                   help="dataset parameter for every notebook (e.g. cifar10 with --preset full)")
    p.add_argument("--data-dir", default=None, help="folder or .tar.gz holding the dataset (CIFAR)")
    p.add_argument("--notebooks-dir", default="notebooks", help="source notebooks (default: notebooks)")
    p.add_argument("--output-dir", default="papermill_runs",
                   help="executed notebooks go here (default: papermill_runs)")
    p.add_argument("--figures-dir", default="figures", help="figures go here (default: figures)")
    p.add_argument("--runs-dir", default="runs", help="sweep results go here (default: runs)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-cell time limit in seconds (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect_cmd import run

    return run(args)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    """archscale.apply() on the user's own nn.Module (torch is imported only when it runs)."""
    p = sub.add_parser("inspect", help="read an nn.Module's graph: paths, in-degrees, init stds and LR")
    p.add_argument("target", metavar="FILE.py:FACTORY", help="a function or class in FILE.py that builds "
                   "the module with no arguments")
    p.add_argument("--input-shape", required=True, help="example input shape, batch first: e.g. 1,3,32,32")
    p.add_argument("--base", default=None, help="the network the base LR was tuned on: FILE.py:FACTORY or a "
                   "DAG code (default: one hidden layer, '1')")
    p.add_argument("--base-lr", default=None,
                   help="maximal LR of the base network (prints lr = base x scale)")
    p.add_argument("--kernel-size", type=int, default=None, help="eq. 9's q when the convs mix kernel sizes")
    p.add_argument("--norm", choices=("error", "ignore"), default="error",
                   help="normalization layers: refuse (default) or read them as pass-throughs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_inspect)



def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archscale",
                     description="Architecture-aware hyperparameter scaling: scaled learning rates, DAG "
                                 "paths, learning-rate sweeps and paper-figure reproduction.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_lr_paths(sub)
    _add_sweep_maxlr(sub)
    _add_reproduce(sub)
    _add_inspect(sub)
    return parser


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"archscale {args.command}"

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (UsageError, ValueError, OSError) as err:
        print(f"{prefix}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
