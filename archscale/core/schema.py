"""The one tidy result-row schema: columns and their types, JSON encoding, and the row key.

A :class:`RowSchema` describes one kind of row. :data:`SWEEP` holds the learning-rate sweeps'
rows (one per graph x width x kernel x activation x lr x seed); :data:`NAS` the NAS study's
(one per cell x recipe x seed). Both go through the same store (:mod:`archscale.runs.store`), which
writes :meth:`RowSchema.encode` output as JSON and reads it back with :meth:`RowSchema.decode`.
JSON has no NaN or infinities: a NaN float is written as ``null`` and ``+-inf`` as the strings
``"inf"``/``"-inf"``. No pandas or torch here (the command line imports this module).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ArchscaleError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["COLUMNS", "CONFIG_KEYS", "METRICS", "NAS", "SWEEP", "RowSchema", "lr_key"]

_TYPES = (str, int, float, bool)
_DTYPES = {str: str, int: "int64", float: "float64", bool: "bool"}  # str: as pandas infers


def lr_key(lr: float) -> str:
    """A learning rate as a key: 10 significant digits, so grid values compare stably."""
    return f"{float(lr):.10g}"


def _encode_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _column(kind: type, value: object, name: str, json: bool) -> object:
    """``value`` as the column's Python type. From JSON (``json``) only JSON's own types count
    (floats may be null, "inf" or "-inf"); from Python, numpy scalars count too."""
    if kind is float:
        if json and (value is None or value in ("inf", "-inf")):
            return math.nan if value is None else float(value)
        ok = isinstance(value, (int, float)) if json else isinstance(value, numbers.Real)
    elif kind is int:
        ok = isinstance(value, int) if json else isinstance(value, numbers.Integral)
    elif kind is bool:
        numpy_bool = getattr(getattr(value, "dtype", None), "kind", "") == "b"
        ok = isinstance(value, bool) or (not json and (numpy_bool or isinstance(value, numbers.Integral))
                                         and value in (0, 1))
    else:
        ok = isinstance(value, str)
    if not ok or (kind is not bool and isinstance(value, bool)):
        what = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[kind]
        raise ArchscaleError(f"column {name!r} must be {what}, got {value!r}")
    return kind(value)


@dataclass(frozen=True)
class RowSchema:
    """One kind of tidy row: ordered ``(name, type)`` columns and the columns that identify a row.

    ``kind`` names the rows in a store's header, so a store of one kind refuses rows of another.
    Types are ``str``, ``int``, ``float`` (NaN and infinities allowed) and ``bool``. ``added``
    maps the columns added after stores were first written to the value a row written before
    had implicitly: :meth:`decode` and :meth:`row` fill them in, so an older store still loads.
    """

    kind: str
    columns: tuple[tuple[str, type], ...]
    key: tuple[str, ...]
    added: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        names = self.names
        if len(set(names)) != len(names) or not set(self.key) <= set(names):
            raise ArchscaleError(f"schema {self.kind!r}: repeated columns or key outside the columns")
        if any(t not in _TYPES for _, t in self.columns):
            raise ArchscaleError(f"schema {self.kind!r}: column types must be one of str, int, float, bool")
        if not {name for name, _ in self.added} <= set(names) - set(self.key):
            raise ArchscaleError(f"schema {self.kind!r}: an added column must be a column outside the key")

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return [name for name, _ in self.columns]

    def row(self, row: Mapping) -> dict:
        """``row`` as a dict of exactly the schema's columns in Python types (numpy scalars converted),
        each checked against its type (a column of ``added`` it lacks takes its implicit value)."""
        row = {**dict(self.added), **row}
        missing = [n for n in self.names if n not in row]
        if missing:
            raise ArchscaleError(f"{self.kind} row lacks column(s) {', '.join(missing)}")
        return {name: _column(kind, row[name], name, json=False) for name, kind in self.columns}

    def rows(self, labels: Mapping, columns: Mapping[str, Sequence | np.ndarray]) -> list[dict]:
        """One row per entry of the per-replica ``columns`` (equal lengths), with constant ``labels``."""
        n = {len(v) for v in columns.values()}
        if len(n) != 1:
            raise ArchscaleError(f"{self.kind} columns have different lengths: {sorted(n)}")
        return [self.row({**labels, **{k: v[i] for k, v in columns.items()}}) for i in range(n.pop())]

    def encode(self, row: Mapping) -> dict:
        """``row`` as a JSON-ready dict of exactly the schema's columns, each checked against its type."""
        return {name: _encode_float(v) if isinstance(v, float) else v for name, v in self.row(row).items()}

    def decode(self, obj: Mapping) -> dict:
        """A row read back from JSON (:meth:`encode`'s inverse); ``ValueError`` if it does not fit.
        A column of ``added`` that the row lacks (an older store's) takes its implicit value."""
        obj = {**dict(self.added), **obj}
        missing = [n for n in self.names if n not in obj]
        if missing:
            raise ArchscaleError(f"not a {self.kind} row: no column(s) {', '.join(missing)}")
        return {name: _column(kind, obj[name], name, json=True) for name, kind in self.columns}

    def key_of(self, row: Mapping) -> tuple:
        """The row's identity: its key columns, floats as :func:`lr_key` strings."""
        types = dict(self.columns)
        return tuple(lr_key(row[k]) if types[k] is float else types[k](row[k]) for k in self.key)

    def frame(self, rows: Iterable[Mapping] = ()) -> pd.DataFrame:
        """Rows as a DataFrame with the schema's columns in order (typed even when empty), sorted by
        the key: the same table whichever order chunks finished in (worker processes, Ray, resumes),
        so that nothing downstream (a bootstrap's resamples, a groupby's order) depends on it."""
        import pandas as pd

        rows = list(rows)
        if not rows:
            return pd.DataFrame({n: pd.Series(dtype=_DTYPES[t]) for n, t in self.columns})
        frame = pd.DataFrame(rows, columns=self.names)
        return frame.sort_values(list(self.key), kind="stable").reset_index(drop=True)


#: The learning-rate sweeps' rows (written by ``TrainResult.rows`` and :func:`archscale.sweep.run_sweep`).
SWEEP = RowSchema(
    kind="sweep",
    columns=(("graph", str), ("arch", str), ("width", int), ("kernel_size", int), ("act", str),
             ("lr", float), ("seed", int), ("train_loss", float), ("train_loss_final", float),
             ("test_loss", float), ("test_acc", float), ("diverged", bool), ("steps", int),
             ("diverged_step", int), ("layout", str), ("init", str), ("readout", str), ("optimizer", str)),
    key=("graph", "arch", "width", "kernel_size", "act", "lr", "seed"),
    added=(("optimizer", "sgd"),),  # stores written before Adam trained with SGD
)

#: The NAS study's rows (one per cell x recipe x seed; the study's settings fix width, n_cells, epochs).
NAS = RowSchema(
    kind="nas",
    columns=(("graph", str), ("recipe", str), ("kind", str), ("seed", int), ("width", int),
             ("n_cells", int), ("base_lr", float), ("lr", float), ("epochs", int), ("train_loss", float),
             ("train_acc", float), ("test_loss", float), ("test_acc", float), ("diverged", bool),
             ("seconds", float)),
    key=("graph", "recipe", "seed"),
)

#: Tidy sweep columns, in order.
COLUMNS = SWEEP.names
#: Columns that identify one trained configuration (a sweep row's key adds lr and seed).
CONFIG_KEYS = ["graph", "arch", "width", "kernel_size", "act"]
#: Metrics the maximal LR can be read from.
METRICS = ("train_loss", "train_loss_final", "test_loss")
#: How a maximal LR is read off a sweep (:mod:`archscale.analysis.estimator`); the first is the default.
MAXLR_METHODS = ("subgrid", "argmin")
