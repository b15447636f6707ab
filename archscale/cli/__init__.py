"""The ``archscale`` command line: the parser and ``main``; the subcommands live beside it.

:mod:`~archscale.cli.design` has ``lr`` and ``paths``, :mod:`~archscale.cli.runs` the sweep commands
(``sweep``, ``maxlr``, ``calibrate``, ``laws``, ``residual-depth``), :mod:`~archscale.cli.tools`
``reproduce`` and ``inspect``, :mod:`~archscale.cli.check` ``check``. Handlers import the modules
they drive when they run, so ``archscale lr`` and ``archscale paths`` load neither torch nor
pandas. Bad input, files that are in the way and other OS errors exit with status 2 and one line
on stderr naming what is wrong; warnings are one line each.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from . import check, design, runs, tools
from .common import Parser, UsageError

__all__ = ["main", "build_parser", "UsageError"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="archscale",
                    description="Architecture-aware hyperparameter scaling: scaled learning rates, DAG "
                                "paths, learning-rate sweeps and paper-figure reproduction.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    design.add_parsers(sub)
    runs.add_parsers(sub)
    tools.add_parsers(sub)
    check.add_parsers(sub)
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

