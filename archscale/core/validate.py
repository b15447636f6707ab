"""The one set of argument checks every module uses (no torch, no numpy).

Each check returns the value in canonical Python form or raises :class:`ArchscaleError` (or the
``error`` class passed in) with a message naming the argument, what was given and what is
accepted. Numpy scalars are accepted wherever the matching Python number is (they register
as :mod:`numbers` types); booleans are never numbers; NaN and infinities are never accepted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from .errors import ArchscaleError

__all__ = [
    "boolean",
    "choice",
    "int_list",
    "integer",
    "kernel_size",
    "learning_rate",
    "number",
    "positive_int",
]


def integer(value: object, name: str, *, minimum: int | None = None,
            error: type[ArchscaleError] = ArchscaleError) -> int:
    """``value`` as an ``int`` if it is an integer (Python or numpy) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise error(f"{name} must be an integer{bound}, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return out


def positive_int(value: object, name: str, *, error: type[ArchscaleError] = ArchscaleError) -> int:
    """``value`` as an ``int >= 1``."""
    return integer(value, name, minimum=1, error=error)


def number(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False, below_max: bool = False, example: str = "0.1",
           error: type[ArchscaleError] = ArchscaleError) -> float:
    """``value`` as a finite ``float``; ``positive`` requires ``> 0``, ``minimum``/``maximum`` bound it.

    ``below_max`` makes the maximum exclusive. Strings are refused: a number must be a number.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number such as {example}, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        kind = "a positive finite" if positive else "a finite"
        raise error(f"{name} must be {kind} number such as {example}, got {value!r}")
    if positive and out <= 0:
        raise error(f"{name} must be a positive number such as {example}, got {value!r}")
    if minimum is not None and out < minimum:
        raise error(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and (out > maximum or (below_max and out == maximum)):
        raise error(f"{name} must be {'<' if below_max else '<='} {maximum:g}, got {value!r}")
    return out


def learning_rate(value: object, name: str = "learning rate", *,
                  error: type[ArchscaleError] = ArchscaleError) -> float:
    """A positive finite learning rate (numeric strings such as ``"1e-3"`` are accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise error(f"{name} must be a positive number such as 0.1, got {value!r}") from None
    return number(value, name, positive=True, error=error)


def boolean(value: object, name: str, *, error: type[ArchscaleError] = ArchscaleError) -> bool:
    """A real boolean: ``'false'``, ``'no'`` or ``0`` are refused, never read as True."""
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false (a YAML boolean, unquoted), got {value!r}")
    return value


def choice(value: object, name: str, accepted: Sequence[str], *,
           error: type[ArchscaleError] = ArchscaleError) -> str:
    """``value`` if it is one of ``accepted``."""
    if not isinstance(value, str) or value not in accepted:
        raise error(f"unknown {name} {value!r}; accepted: {', '.join(map(str, accepted))}")
    return value


def kernel_size(value: object, name: str = "kernel size", *,
                error: type[ArchscaleError] = ArchscaleError) -> int:
    """A positive odd integer (3, 5, 7, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1 or value % 2 == 0:
        raise error(f"{name} must be a positive odd integer such as 3, 5 or 7; got {value!r}")
    return int(value)


def int_list(values: object, name: str, *, minimum: int | None = None, unique: bool = False,
             error: type[ArchscaleError] = ArchscaleError) -> list[int]:
    """A non-empty list of integers (a single integer counts as a list of one)."""
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) \
        else [values]
    if not items:
        raise error(f"{name} is empty; give at least one value")
    out = [integer(v, f"every entry of {name}", minimum=minimum, error=error) for v in items]
    if unique and len(set(out)) != len(out):
        raise error(f"{name} repeat a value: {out}")
    return out
