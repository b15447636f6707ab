"""``archscale reproduce`` (the notebooks through papermill) and ``archscale inspect`` (a user's
nn.Module through :func:`archscale.apply`)."""

from __future__ import annotations

import argparse

from .common import UsageError

__all__ = ["add_parsers"]

_NOTEBOOK_MODULES = ("papermill", "nbformat", "ipykernel", "jupyter_client")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in _NOTEBOOK_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"archscale reproduce needs {', '.join(missing)}, part of the notebooks extra: "
                         f"pip install 'archscale[notebooks]'")
    from ..notebook.reproduce import format_table, reproduce

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


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from ..notebook.reproduce import DEVICES, PRESETS

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
    from .inspect import run

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
    p.add_argument("--kernel-size", type=int, default=None,
                   help="one eq. 9 q for every edge (default: each edge's own kernel)")
    p.add_argument("--norm", choices=("pass-through", "renormalize", "error", "ignore"),
                   default="pass-through",
                   help="normalization layers: the identity (default; 'ignore' is its old name), resetting "
                        "the second moment (renormalize), or refused (error)")
    p.add_argument("--gating", choices=("error", "ignore"), default="error",
                   help="side-branch gates (squeeze-excitation): refused (default) or read as pass-throughs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_inspect)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_reproduce(sub)
    _add_inspect(sub)
