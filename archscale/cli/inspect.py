"""``archscale inspect FILE.py:FACTORY``: read a user's module and print its plan (the CLI handler).

The factory (a function or class in the file, called with no arguments) builds the module; an
example input of ``--input-shape`` (standard normal, seed 0) is traced through it. Nothing is
initialized: the plan's table shows the std each weight would get.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

from ..core.errors import ArchscaleError

__all__ = ["load_callable", "load_factory", "parse_shape", "run"]

MAX_LISTED_PATHS = 20


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` as ``(1, 3, 32, 32)``: positive integers separated by commas."""
    try:
        shape = tuple(int(p) for p in str(text).split(","))
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ArchscaleError(f"--input-shape must be positive integers separated by commas, such as "
                             f"1,3,32,32 (batch first); got {text!r}")
    return shape


def load_callable(target: str):
    """The function or class ``FACTORY`` defined in ``FILE.py`` (``FILE.py:FACTORY``), not called."""
    path_text, sep, name = str(target).rpartition(":")
    if not sep or not path_text or not name:
        raise ArchscaleError(f"expected FILE.py:FACTORY (e.g. model.py:make_model), got {target!r}")
    path = Path(path_text)
    if not path.is_file():
        raise ArchscaleError(f"no such file: {path_text!r} (from {target!r})")
    spec = importlib.util.spec_from_file_location(f"_archscale_user_{path.stem}", path)
    if spec is None or spec.loader is None:  # a file Python cannot import (not .py)
        raise ArchscaleError(f"could not import {path_text!r}: not a Python file (expected FILE.py:FACTORY)")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ArchscaleError(f"could not import {path_text!r}: {type(err).__name__}: {err}") from err
    finally:
        sys.path.pop(0)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ArchscaleError(f"{path_text!r} defines no function or class {name!r}")
    return factory


def load_factory(target: str):
    """The module built by ``FILE.py:FACTORY`` (a function or class taking no arguments)."""
    factory = load_callable(target)
    name = str(target).rpartition(":")[2]
    try:
        model = factory()
    except Exception as err:
        raise ArchscaleError(f"{name}() raised {type(err).__name__}: {err}") from err
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise ArchscaleError(f"{name}() returned {type(model).__name__}, not an nn.Module")
    return model


def _base(text: str | None):
    if text is None:
        return None
    return load_factory(text) if ":" in text or text.endswith(".py") else text


def run(args: argparse.Namespace) -> int:
    """Print (or ``--json``) the plan of ``args.target`` on an input of ``args.input_shape``."""
    import torch

    from ..module.plan import apply

    shape = parse_shape(args.input_shape)
    model = load_factory(args.target)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():  # the plan's notes say what was approximated
        warnings.simplefilter("ignore")
        plan = apply(model, x, base_lr=args.base_lr, base=_base(args.base), init=False, norm=args.norm,
                     kernel_size=args.kernel_size, gating=args.gating)
    listed = plan.paths(limit=MAX_LISTED_PATHS) if plan.n_paths <= MAX_LISTED_PATHS else []
    if args.json:
        print(json.dumps({**plan.to_dict(), "listed_paths": listed}))
        return 0
    print("\n".join(f"{k:<18} {v}" for k, v in plan.summary().items()))
    if listed:
        print(f"\n{'#':>3}  {'L_p':>4}  path (vertices: modules)")
        for i, p in enumerate(listed, start=1):
            print(f"{i:>3}  {p['depth']:>4}  {' -> '.join(map(str, p['vertices']))}: {', '.join(p['ops'])}")
    else:
        print(f"\n{plan.n_paths} paths; by depth: "
              + ", ".join(f"L={d}: {c}" for d, c in plan.depth_counts.items()))
    print()
    print(plan.modules.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for note in plan.notes:
        print(f"note: {note}")
    return 0
