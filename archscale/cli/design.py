"""``archscale lr`` and ``archscale paths``: a DAG's scaled learning rate and its paths.

These load neither torch nor pandas: only the pure-math core (:mod:`archscale.core.dag`,
:mod:`archscale.core.scaling`).
"""

from __future__ import annotations

import argparse
import json

from ..core import validate
from ..core.dag import Dag
from ..core.scaling import convention, lr_scale
from .common import UsageError, positive_int

__all__ = ["add_parsers"]

MAX_LISTED_DEPTHS = 100_000


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
    shown: list[dict] = []
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



def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--limit", type=positive_int, default=1000, help="list at most this many")
    p.set_defaults(func=_cmd_paths)

