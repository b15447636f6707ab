"""``archscale check FILE.py:FACTORY --sizes depth=1,2,4 --target depth=16``: will the LR transfer?

The handler of :func:`archscale.experiments.check.check` on the command line: it loads the
factory (called with the size keyword), measures the sizes, prints the report (or ``--json``) and
writes the figure with ``--figure``.
"""

from __future__ import annotations

import argparse
import json

from ..core.errors import ArchscaleError

__all__ = ["add_parsers", "parse_assignment"]


def parse_assignment(text: str, what: str, many: bool) -> dict:
    """``depth=1,2,4`` as ``{"depth": [1, 2, 4]}`` (``many``) or ``depth=16`` as ``{"depth": 16}``."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not value.strip():
        example = "depth=1,2,4" if many else "depth=16"
        raise ArchscaleError(f"{what} must be NAME=VALUE{'S' if many else ''} such as {example}, "
                             f"got {text!r}")
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise ArchscaleError(f"{what} {text!r}: the values must be numbers") from None
    numbers = [int(v) if v.is_integer() else v for v in numbers]
    if not many and len(numbers) != 1:
        raise ArchscaleError(f"{what} names one value, e.g. depth=16; got {text!r}")
    return {key: numbers if many else numbers[0]}


def _cmd_check(args: argparse.Namespace) -> int:
    from ..experiments.check import check
    from .inspect import load_callable

    factory = load_callable(args.target)
    seeds = [int(s) for s in str(args.seeds).split(",")] if args.seeds else [0, 1, 2]
    report = check(factory, parse_assignment(args.sizes, "--sizes", True),
                   parse_assignment(args.target_size, "--target", False), args.data, optimizer=args.optimizer,
                   budget=args.budget, seeds=seeds, runs_dir=args.runs_dir, device=args.device,
                   progress=not args.no_progress and not args.json)
    if args.figure:
        from pathlib import Path

        from ..plots import save_figure

        path = Path(args.figure)
        save_figure(report.figure(), path.name.removesuffix(".png").removesuffix(".pdf"), path.parent)
    print(json.dumps(report.to_dict()) if args.json else report.format())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="will the LR tuned on small models transfer to a large one? (your model family)",
        description="Sweep a model family at a few small sizes (make_model(NAME=value)), estimate each "
                    "optimum LR with an interval, score every published law against them beside the noise "
                    "floor, fit the trend, and answer with an LR for the target size and its interval. "
                    "Resumable: a rerun with the same arguments reloads.")
    p.add_argument("target", metavar="FILE.py:FACTORY",
                   help="a function or class in FILE.py called with the size keyword, e.g. model.py:make")
    p.add_argument("--sizes", required=True, metavar="NAME=V1,V2,...",
                   help="sizes to measure, e.g. depth=1,2,4")
    p.add_argument("--target", dest="target_size", required=True, metavar="NAME=V",
                   help="the size to answer for, e.g. depth=16")
    p.add_argument("--data", default="digits",
                   help="digits, mnist, gaussian (embedded; default digits) or a .pt/.npz file holding x "
                        "and y")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--budget", default=None, help="wall time to fit in, e.g. 10m, 90s, 1h (default: none)")
    p.add_argument("--seeds", default=None, help="seeds, at least 3 (default 0,1,2)")
    p.add_argument("--runs-dir", default="runs", help="results go to RUNS_DIR/check/<key>/ (default runs)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--figure", default=None, metavar="PATH",
                   help="also write the figure as PATH.png and .pdf")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_check)
