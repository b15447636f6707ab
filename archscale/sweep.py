"""Learning-rate sweeps: specs, resumable results, the maximal-LR finder and the comparison.

A :class:`SweepSpec` (loadable from YAML) names graphs, widths, kernel sizes, a log-spaced LR
grid, seeds and the training recipe. :func:`run_sweep` trains every (graph, width, kernel, lr,
seed) replica with the batched trainer, one chunk of replicas at a time, and appends each
finished chunk's tidy rows to ``results.jsonl`` in the output directory (one JSON object per
row, then a completion marker, written in one call and fsync'd). Re-running skips finished
chunks; a chunk cut off by a kill has no marker and is dropped and re-run, so a killed and
resumed sweep ends with exactly the rows of an uninterrupted one.

:func:`max_lr` applies the paper's definition of the maximal learning rate and :func:`compare`
sets it against the prediction ``max_lr(base) * lr_scale(graph)`` (eq. 8/9) with Pearson r.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from . import validate
from .dag import Dag
from .errors import ArchscaleError
from .scaling import convention, lr_scale

# torch and pandas load on first use, so registering the CLI keeps `archscale lr` fast
if TYPE_CHECKING:
    import pandas as pd

    from .data import Dataset
    from .train import ModelSpec, TrainConfig

__all__ = [
    "COLUMNS",
    "METRICS",
    "Comparison",
    "SweepSpec",
    "compare",
    "load_results",
    "load_spec",
    "max_lr",
    "register_cli",
    "run_sweep",
]

RESULTS_FILE = "results.jsonl"
SPEC_FILE = "spec.yaml"
LOCK_FILE = ".lock"
#: Tidy result columns, in order.
COLUMNS = ["graph", "arch", "width", "kernel_size", "act", "lr", "seed", "train_loss", "train_loss_final",
           "test_loss", "test_acc", "diverged", "steps", "diverged_step", "layout", "init", "readout"]
#: Columns that identify one trained configuration (a row's key adds lr and seed).
CONFIG_KEYS = ["graph", "arch", "width", "kernel_size", "act"]
#: Metrics :func:`max_lr` can minimize.
METRICS = ("train_loss", "train_loss_final", "test_loss")
#: Spec fields that change what a row means; an output directory refuses a spec that differs in them.
IDENTITY_FIELDS = ("arch", "act", "layout", "init", "readout", "epochs", "steps", "batch_size", "momentum",
                   "nesterov", "weight_decay", "cosine", "loss", "dataset", "n_train", "n_test", "data_seed")



# ---------------------------------------------------------------------------------------- the spec
def _int_list(value: object, name: str, minimum: int | None = None) -> list[int]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ArchscaleError(f"{name} must be integers, got {v!r}")
        if minimum is not None and v < minimum:
            raise ArchscaleError(f"{name} must be integers >= {minimum}, got {v!r}")
        out.append(v)
    if not out:
        raise ArchscaleError(f"{name} is empty; give at least one value")
    return out


def _float(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise ArchscaleError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)  # YAML reads 1e-3 as a string; accept it
    except (TypeError, ValueError):
        raise ArchscaleError(f"{name} must be a number, got {value!r}") from None


def _positive_lr(value: object, name: str) -> float:
    lr = _float(value, name)
    if not math.isfinite(lr) or lr <= 0:
        raise ArchscaleError(f"{name} must be a positive learning rate such as 0.01, got {value!r}")
    return lr


def _lr_key(lr: float) -> str:
    return f"{float(lr):.10g}"


@dataclass
class SweepSpec:
    """One grid search: which networks, which learning rates and seeds, how to train them.

    ``graphs`` are DAG codes (quote them in YAML: ``'2_02'``, or YAML reads the number 202);
    ``sample: {n_vertices, k, seed[, digits]}`` adds ``k`` graphs drawn from a space. The base
    graph ``base`` is always trained (it is added when missing) because :func:`compare` needs it.
    The LR grid is ``n_lrs`` log-spaced values in ``[lr_min, lr_max]`` unless ``lrs`` lists them.
    Training runs ``steps`` steps when given, else ``epochs`` epochs, at ``batch_size``.
    """

    arch: str = "mlp"
    graphs: list[str] = field(default_factory=lambda: ["1"])
    sample: dict | None = None
    widths: list[int] = field(default_factory=lambda: [128])
    kernel_sizes: list[int] = field(default_factory=lambda: [3])
    act: str = "relu"
    layout: str = "paper"
    init: str = "archscale"
    readout: str = "mean_field"
    lr_min: float = 1e-3
    lr_max: float = 1.0
    n_lrs: int = 13
    lrs: list[float] | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 128
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    cosine: bool = False
    loss: str = "ce"
    dataset: str = "digits"
    data_dir: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    data_seed: int = 0
    base: str = "1"
    chunk_size: int | None = None
    name: str = ""
    description: str = ""

    def __post_init__(self):
        self._validate()

    # -- construction
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SweepSpec:
        """Read a spec from a YAML mapping of field names to values."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ArchscaleError(f"spec file {path} does not exist") from None
        except IsADirectoryError:
            raise ArchscaleError(f"spec {path} is a directory; give a .yaml file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ArchscaleError(f"cannot read spec file {path}: {err}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ArchscaleError(f"spec file {path} is not valid YAML: {first}") from None
        if not isinstance(raw, dict):
            raise ArchscaleError(f"spec file {path} must hold a mapping of field: value, "
                             f"got {type(raw).__name__}")
        try:
            spec = cls.from_dict(raw)
        except ArchscaleError as err:
            raise ArchscaleError(f"spec {path}: {err}") from None
        if not spec.name:
            spec.name = path.stem
        return spec

    @classmethod
    def from_dict(cls, raw: dict) -> SweepSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in raw if k not in names)
        if unknown:
            raise ArchscaleError(f"unknown field(s) {', '.join(unknown)}; "
                                 f"accepted: {', '.join(sorted(names))}")
        try:
            return cls(**raw)
        except TypeError as err:
            raise ArchscaleError(str(err)) from None

    def replace(self, **changes) -> SweepSpec:
        """A copy with some fields changed (validated again)."""
        return SweepSpec.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The spec as YAML text (written to ``path`` when given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # -- validation
    def _validate(self) -> None:
        from .data import DATASETS
        from .models import ACTIVATIONS, INIT_SCHEMES, LAYOUTS, READOUTS
        from .train import ARCHS, LOSSES

        if self.arch not in ARCHS:
            raise ArchscaleError(f"unknown arch {self.arch!r}; accepted: {', '.join(ARCHS)}")
        for name, accepted in (("act", ACTIVATIONS), ("layout", LAYOUTS), ("init", INIT_SCHEMES),
                               ("readout", READOUTS), ("loss", LOSSES), ("dataset", DATASETS)):
            if getattr(self, name) not in accepted:
                raise ArchscaleError(f"unknown {name} {getattr(self, name)!r}; "
                                     f"accepted: {', '.join(accepted)}")
        if self.loss == "ce" and self.dataset == "gaussian_regression":
            raise ArchscaleError("dataset gaussian_regression has real-valued targets: use loss: mse")
        if self.loss == "mse" and self.dataset != "gaussian_regression":
            raise ArchscaleError(f"loss mse needs regression targets; dataset {self.dataset!r} is "
                             f"classification (use loss: ce, or dataset: gaussian_regression)")
        if isinstance(self.graphs, str):
            self.graphs = [self.graphs]
        if not isinstance(self.graphs, list):
            raise ArchscaleError(f"graphs must be a list of DAG codes, got {self.graphs!r}")
        for g in self.graphs:
            if not isinstance(g, str):
                raise ArchscaleError(f"graph {g!r} is not a string: quote DAG codes in YAML, e.g. '2_02' "
                                 f"(unquoted, YAML reads 2_02 as the number 202)")
        if not isinstance(self.base, str):
            raise ArchscaleError(f"base {self.base!r} is not a string: quote it in YAML, e.g. '1'")
        if self.sample is not None:
            if not isinstance(self.sample, dict) or not {"n_vertices", "k", "seed"} <= set(self.sample) \
                    or not set(self.sample) <= {"n_vertices", "k", "seed", "digits"}:
                raise ArchscaleError("sample must be a mapping with n_vertices, "
                                     "k, seed (and optional digits), "
                                 f"got {self.sample!r}")
        self.widths = _int_list(self.widths, "widths", 1)
        self.kernel_sizes = _int_list(self.kernel_sizes, "kernel_sizes", 1)
        if self.arch == "cnn":
            for k in self.kernel_sizes:
                try:
                    validate.kernel_size(k)
                except ValueError as err:
                    raise ArchscaleError(str(err)) from None
        self.seeds = _int_list(self.seeds, "seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ArchscaleError(f"seeds repeat: {self.seeds}")
        if self.lrs is not None:
            items = self.lrs if isinstance(self.lrs, list) else [self.lrs]
            if not items:
                raise ArchscaleError("lrs is empty: the LR grid needs at least one learning rate")
            self.lrs = [_positive_lr(v, "every entry of lrs") for v in items]
        else:
            self.lr_min = _positive_lr(self.lr_min, "lr_min")
            self.lr_max = _positive_lr(self.lr_max, "lr_max")
            if isinstance(self.n_lrs, bool) or not isinstance(self.n_lrs, int) or self.n_lrs < 1:
                raise ArchscaleError(f"n_lrs must be a positive integer (an empty LR grid trains nothing), "
                                 f"got {self.n_lrs!r}")
            if self.lr_max < self.lr_min:
                raise ArchscaleError(f"lr_max ({self.lr_max:g}) is below lr_min ({self.lr_min:g})")
            if self.n_lrs > 1 and self.lr_max == self.lr_min:
                raise ArchscaleError(f"lr_min == lr_max but n_lrs = {self.n_lrs}; "
                                 f"widen the range or use n_lrs: 1")
        for name in ("n_train", "n_test", "chunk_size"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ArchscaleError(f"{name} must be a positive integer or null, got {v!r}")
        if isinstance(self.data_seed, bool) or not isinstance(self.data_seed, int):
            raise ArchscaleError(f"data_seed must be an integer, got {self.data_seed!r}")
        self.momentum = _float(self.momentum, "momentum")
        self.weight_decay = _float(self.weight_decay, "weight_decay")
        try:
            self.train_config()
        except ValueError as err:
            raise ArchscaleError(str(err)) from None
        self.graph_list()  # parses every code and checks it has a path

    # -- derived
    def lr_grid(self) -> list[float]:
        """The learning rates, ascending (10 significant digits, so they compare stably)."""
        values = self.lrs if self.lrs is not None else np.geomspace(self.lr_min, self.lr_max, self.n_lrs)
        return sorted({float(_lr_key(v)) for v in values})

    def graph_list(self) -> list[str]:
        """Canonical codes of every graph to train: the base first, then listed, then sampled."""
        codes: list[str] = []
        entries = [self.base, *self.graphs]
        for g in entries:
            try:
                dag = Dag.parse(g, ops=self.arch)
                dag.require_path()
            except ValueError as err:
                raise ArchscaleError(f"graph {g!r}: {err}") from None
            codes.append(dag.code)
        if self.sample is not None:
            s = self.sample
            digits = tuple(s["digits"]) if s.get("digits") is not None else None
            try:
                drawn = Dag.sample(int(s["n_vertices"]), int(s["k"]), int(s["seed"]), ops=self.arch,
                                   digits=digits)
            except (TypeError, ValueError) as err:
                raise ArchscaleError(f"sample {s!r}: {err}") from None
            codes.extend(d.code for d in drawn)
        return list(dict.fromkeys(codes))

    def train_config(self) -> TrainConfig:
        from .train import TrainConfig

        return TrainConfig(steps=self.steps, epochs=self.epochs, batch_size=self.batch_size,
                           momentum=self.momentum, nesterov=bool(self.nesterov),
                           weight_decay=self.weight_decay, cosine=bool(self.cosine), loss=self.loss)

    def model_specs(self) -> list[ModelSpec]:
        """One :class:`ModelSpec` per (graph, width, kernel size) in a fixed order."""
        from .train import ModelSpec

        kernels = self.kernel_sizes if self.arch == "cnn" else [3]
        return [ModelSpec(g, arch=self.arch, width=w, kernel_size=k, act=self.act, layout=self.layout,
                          init=self.init, readout=self.readout)
                for g in self.graph_list() for w in self.widths for k in kernels]

    def replicas(self) -> list[tuple[float, int]]:
        """The (lr, seed) pairs every model is trained with, seeds outer."""
        return [(lr, s) for s in self.seeds for lr in self.lr_grid()]

    def keys(self) -> set[tuple]:
        """The row key of every (graph, width, kernel, lr, seed) this spec trains."""
        reps = self.replicas()
        return {key for model in self.model_specs() for key in _model_keys(model, reps)}

    def select(self, results: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``results`` that belong to this spec's grid.

        An output directory keeps the rows of every spec run into it; a maximal LR read off a
        mix of grids (other LRs, fewer seeds) would be wrong, so analyses take this selection.
        """
        if results.empty:
            return results
        keys = self.keys()
        mask = [_row_key(r) in keys for r in results[["graph", "arch", "width", "kernel_size", "act", "lr",
                                                         "seed"]].to_dict("records")]
        return results[mask].reset_index(drop=True)

    def load_data(self) -> Dataset:
        from .data import load_dataset

        return load_dataset(self.dataset, flatten=self.arch == "mlp", data_dir=self.data_dir,
                            seed=self.data_seed, n_train=self.n_train, n_test=self.n_test)

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in IDENTITY_FIELDS}


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """:meth:`SweepSpec.from_yaml`."""
    return SweepSpec.from_yaml(path)


# ---------------------------------------------------------------------------------------- results file
def _row_key(row: dict) -> tuple:
    return (row["graph"], row["arch"], int(row["width"]), int(row["kernel_size"]), row["act"],
            _lr_key(row["lr"]), int(row["seed"]))


def _model_keys(model: ModelSpec, reps: list[tuple[float, int]]) -> list[tuple]:
    """Row keys (as :func:`_row_key`) of ``model`` trained at each ``(lr, seed)`` of ``reps``."""
    kern = model.kernel_size if model.arch == "cnn" else 0
    return [(model.graph, model.arch, model.width, kern, model.act, _lr_key(lr), s) for lr, s in reps]


def _chunk_id(keys: list[tuple]) -> str:
    return hashlib.sha1(json.dumps(sorted(keys)).encode()).hexdigest()[:16]


def _encode(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _scan(path: Path) -> tuple[list[dict], int]:
    """Committed rows of a results file and the byte offset just past the last complete chunk.

    Rows count only once their chunk's completion marker follows with the right row count; a
    partial last line, garbled lines and rows of unfinished chunks are ignored (the sweep
    re-runs those chunks).
    """
    rows: list[dict] = []
    seen_chunks: set[str] = set()
    pending: dict[str, list[dict]] = {}
    good_end = 0
    offset = 0
    with open(path, "rb") as f:
        for raw in f:
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break  # a write cut off by a kill
            try:
                obj = json.loads(raw)
            except ValueError:
                pending.clear()
                continue
            if not isinstance(obj, dict):
                continue
            if "chunk_done" in obj:
                cid = obj["chunk_done"]
                got = pending.pop(cid, [])
                if len(got) == obj.get("n") and cid not in seen_chunks:
                    seen_chunks.add(cid)
                    rows.extend(got)
                pending.clear()
                good_end = offset
            elif "chunk" in obj:
                pending.setdefault(obj.pop("chunk"), []).append(obj)
    out, keys = [], set()
    for r in rows:
        for k in ("train_loss", "train_loss_final", "test_loss", "test_acc"):
            v = r.get(k)
            r[k] = float("nan") if v is None else float(v)
        key = _row_key(r)
        if key not in keys:
            keys.add(key)
            out.append(r)
    return out, good_end


def load_results(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Every committed row of the sweep in ``out_dir`` as a tidy DataFrame (:data:`COLUMNS` first)."""
    import pandas as pd

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ArchscaleError(f"{out_dir} is not a sweep directory (it does not exist); "
                         f"run 'archscale sweep SPEC --out {out_dir}' first")
    path = out_dir / RESULTS_FILE
    rows: list[dict] = []
    if path.exists():
        try:
            rows, _ = _scan(path)
        except OSError as err:
            raise ArchscaleError(f"cannot read {path}: {err}") from None
    if not rows:  # typed like real rows, so empty and full tables concatenate cleanly
        return pd.DataFrame([_EMPTY_ROW]).iloc[:0][COLUMNS]
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[[c for c in COLUMNS if c in df.columns] + extra].reset_index(drop=True)


_EMPTY_ROW = {"graph": "", "arch": "", "width": 0, "kernel_size": 0, "act": "", "lr": 0.0, "seed": 0,
              "train_loss": 0.0, "train_loss_final": 0.0, "test_loss": 0.0, "test_acc": 0.0,
              "diverged": False, "steps": 0, "diverged_step": 0, "layout": "", "init": "", "readout": ""}


class _Lock:
    """An exclusive advisory lock on the output directory (released by the OS if we are killed)."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_FILE
        self.handle = None

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise ArchscaleError(f"another sweep is writing to {self.path.parent}; "
                                 f"wait for it or use another "
                             f"--out directory") from None
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _check_spec_matches(spec: SweepSpec, out_dir: Path) -> None:
    path = out_dir / SPEC_FILE
    if not path.exists():
        return
    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return
    mine = spec.identity()
    diffs = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in mine.items() if k in old and old.get(k) != v]
    if diffs:
        raise ArchscaleError(f"{out_dir} holds results of a different training setup ({'; '.join(diffs)}); "
                         f"use a new --out directory or delete the old one")


def _plan(spec: SweepSpec, data: Dataset, device, done: set, chunk_size: int | None,
          memory_budget: int | None) -> list[tuple[ModelSpec, list[tuple[float, int]], str]]:
    """Chunks still to train: per model, the full replica list split into equal consecutive parts.

    Chunks are cut from the full list (not from what is left), so a resumed sweep trains exactly
    the chunks an uninterrupted one would.
    """
    from .train import auto_chunk_size

    reps = spec.replicas()
    config = spec.train_config()
    in_shape = tuple(data.x_train.shape[1:])
    plan = []
    for model in spec.model_specs():
        size = chunk_size or spec.chunk_size or auto_chunk_size(
            model, in_shape, data.out_dim, config.batch_size, device, memory_budget)
        n_chunks = -(-len(reps) // size)
        for part in np.array_split(np.arange(len(reps)), n_chunks):
            chunk = [reps[i] for i in part]
            keys = _model_keys(model, chunk)
            todo = [rep for rep, key in zip(chunk, keys) if key not in done]
            if todo:
                plan.append((model, todo, _chunk_id(keys)))
    return plan


def _all_done(spec: SweepSpec, done: set) -> bool:
    return spec.keys() <= done


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, device: str = "cpu", progress: bool = True,
              chunk_size: int | None = None, memory_budget: int | None = None,
              threads: int | None = None) -> pd.DataFrame:
    """Train every replica of ``spec`` not yet in ``out_dir`` and return the spec's rows.

    Rows are appended per finished chunk (flushed and fsync'd), so the sweep can be killed at any
    moment and resumed by calling it again with the same spec; changes to the training setup
    (see :data:`IDENTITY_FIELDS`) need a new directory, while new graphs, LRs or seeds are added.
    The returned table holds only this spec's grid (:meth:`SweepSpec.select`); rows an earlier
    spec left in the directory stay in ``results.jsonl`` (:func:`load_results` reads them all).
    ``threads`` sets torch's CPU threads for the duration of the call (default: leave them); on a
    CPU shared with other busy processes, 1 thread avoids OpenMP threads waiting on each other.
    """
    import torch

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ArchscaleError(f"threads must be a positive integer, got {threads!r}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_sweep(spec, out_dir, device, progress, chunk_size, memory_budget)
    finally:
        torch.set_num_threads(previous)


def _run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, device: str, progress: bool,
               chunk_size: int | None, memory_budget: int | None) -> pd.DataFrame:
    from .train import resolve_device, train_replicas

    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ArchscaleError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(spec, SweepSpec):
        raise ArchscaleError(f"spec must be a SweepSpec, got {type(spec).__name__}; use load_spec(path)")
    dev = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _Lock(out_dir):
        _check_spec_matches(spec, out_dir)
        tmp = out_dir / (SPEC_FILE + ".tmp")
        spec.to_yaml(tmp)
        os.replace(tmp, out_dir / SPEC_FILE)
        path = out_dir / RESULTS_FILE
        done: set = set()
        if path.exists():
            rows, good_end = _scan(path)
            if path.stat().st_size > good_end:  # drop the tail of a chunk cut off by a kill
                with open(path, "r+b") as f:
                    f.truncate(good_end)
                    f.flush()
                    os.fsync(f.fileno())
            done = {_row_key(r) for r in rows}
        if _all_done(spec, done):
            return spec.select(load_results(out_dir))
        data = spec.load_data()
        config = spec.train_config()
        plan = _plan(spec, data, dev, done, chunk_size, memory_budget)
        steps = config.total_steps(data.n_train)
        total = sum(len(todo) for _, todo, _ in plan) * steps
        bar = _progress_bar(total, spec, progress)
        try:
            with open(path, "ab") as f:
                for model, todo, cid in plan:
                    bar.set_postfix_str(f"graph {model.graph} w{model.width}"
                                        + (f" k{model.kernel_size}" if model.arch == "cnn" else ""))
                    result = train_replicas(model, [lr for lr, _ in todo], [s for _, s in todo], data, config,
                                            device=dev, chunk_size=len(todo), on_step=bar.update)
                    rows = result.rows()
                    block = "".join(json.dumps({"chunk": cid, **{k: _encode(v) for k, v in r.items()}}) + "\n"
                                    for r in rows)
                    block += json.dumps({"chunk_done": cid, "n": len(rows), "time": round(time.time(), 3)})
                    f.write((block + "\n").encode())
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            bar.close()
    return spec.select(load_results(out_dir))


def _progress_bar(total: int, spec: SweepSpec, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {spec.name or spec.arch}", unit=" replica-steps",
                unit_scale=True, disable=not enabled or total == 0, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------- maximal LR
def _check_results(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(results, pd.DataFrame):
        raise ArchscaleError(f"results must be a DataFrame (load_results(dir)), got {type(results).__name__}")
    if metric not in METRICS:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(METRICS)}")
    missing = [c for c in [*CONFIG_KEYS, "lr", "seed", "diverged", metric] if c not in results.columns]
    if missing:
        raise ArchscaleError(f"results lack column(s) {', '.join(missing)}; expected sweep rows")
    if results.empty:
        raise ArchscaleError("no results yet: the sweep has not finished any chunk")
    return results


def max_lr(results: pd.DataFrame, metric: str = "train_loss") -> pd.DataFrame:
    """The maximal learning rate of every (graph, arch, width, kernel_size, act), per the paper.

    The maximal LR is the grid LR with the lowest seed-averaged ``metric``. The default,
    ``train_loss``, is the reference code's training loss of an epoch (the batch-size-weighted
    mean minibatch loss) over the last epoch of the configured training: after one epoch in the
    paper; archscale's presets may train for a fixed number of steps or epochs instead, and then
    it is the loss of the last epoch (or of all steps, if fewer than an epoch).
    ``train_loss_final`` (whole training set after the last step) and ``test_loss`` are the
    alternatives. A seed that diverged counts as an
    infinite loss, so an LR where any seed diverged is never chosen. ``max_lr_lo``/``max_lr_hi``
    are the smallest and largest of each seed's own best LR (error bars); ``at_edge`` flags a
    best LR at either end of the grid, where the true maximum may lie outside it.
    """
    import pandas as pd

    df = _check_results(results, metric).copy()
    df["_m"] = df[metric].astype(float)
    df.loc[df["diverged"].astype(bool) | ~np.isfinite(df["_m"]), "_m"] = np.inf
    out = []
    for key, g in df.groupby(CONFIG_KEYS, sort=True):
        by_lr = g.groupby("lr")["_m"].mean().sort_index()
        grid = by_lr.index.to_numpy()
        best_loss = float(by_lr.min())
        if not np.isfinite(best_loss):
            best = lo = hi = np.nan
            edge = False
        else:
            best = float(by_lr.idxmin())
            per_seed = [float(s_rows.loc[s_rows["_m"].idxmin(), "lr"]) for _, s_rows in g.groupby("seed")
                        if np.isfinite(s_rows["_m"].min())]
            lo, hi = (min(per_seed), max(per_seed)) if per_seed else (np.nan, np.nan)
            edge = len(grid) > 1 and best in (grid[0], grid[-1])
        out.append({**dict(zip(CONFIG_KEYS, key)), "max_lr": best, "best_loss": best_loss if np.isfinite(
            best_loss) else np.nan, "max_lr_lo": lo, "max_lr_hi": hi, "at_edge": bool(edge),
            "n_lrs": len(grid), "n_seeds": int(g["seed"].nunique()),
            "n_diverged": int(g["diverged"].astype(bool).sum())})
    return pd.DataFrame(out)


@dataclass
class Comparison:
    """Measured versus predicted maximal LR per graph, with Pearson r on linear and log scales."""

    table: pd.DataFrame
    pearson_r: float
    pearson_r_log: float
    n: int
    base: str
    offset: int
    metric: str = "train_loss"

    def to_dict(self) -> dict:
        table = self.table.replace({np.nan: None}).to_dict(orient="records")
        return {"pearson_r": _none_if_nan(self.pearson_r), "pearson_r_log": _none_if_nan(self.pearson_r_log),
                "n": self.n, "base": self.base, "offset": self.offset, "metric": self.metric, "table": table}

    def format(self) -> str:
        """A plain-text table plus the r values."""
        cols = ["graph", "width", "kernel_size", "act", "scale", "measured", "measured_lo", "measured_hi",
                "predicted"]
        t = self.table[cols].copy()
        if (t["kernel_size"] == 0).all():
            t = t.drop(columns="kernel_size")
        t["edge"] = np.where(self.table["at_edge"], "*", "")
        text = t.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        lines = [text, f"Pearson r (measured vs predicted max LR): {self.pearson_r:.3f} linear, "
                       f"{self.pearson_r_log:.3f} log  (n = {self.n}, base {self.base!r}, "
                       f"offset {self.offset}, metric {self.metric})"]
        if self.table["at_edge"].any():
            lines.append("* best LR at the edge of the grid: the true maximum may lie outside it")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare(results: pd.DataFrame, base: str = "1", offset: int | None = None,
            metric: str = "train_loss", include_base: bool = True) -> Comparison:
    """Measured maximal LR per graph against ``max_lr(base) * lr_scale(graph)`` (eq. 8/9).

    The base graph's measured maximal LR (same width and activation; kernel 3 for CNNs when
    swept, else the smallest kernel swept) is transferred to every graph with
    :func:`archscale.scaling.lr_scale` under the depth ``offset`` (default: the arch's
    convention). Pearson r is computed over graphs with a finite measurement, on the LRs and
    on their logarithms; ``include_base`` keeps the base graph's own point, as the paper does.
    """
    import pandas as pd

    m = max_lr(results, metric)
    archs = m["arch"].unique()
    if len(archs) != 1:
        raise ArchscaleError(f"results mix architectures {sorted(archs)}; compare one arch at a time")
    arch = str(archs[0])
    conv = convention(arch)
    off = conv.offset if offset is None else int(offset)
    try:
        base_code = Dag.parse(base, ops=arch).code
    except ValueError as err:
        raise ArchscaleError(f"base {base!r}: {err}") from None
    rows = []
    for (width, act), group in m.groupby(["width", "act"], sort=True):
        base_rows = group[group["graph"] == base_code]
        if base_rows.empty:
            raise ArchscaleError(f"the base graph {base_code!r} is not in the results (width {width}, "
                             f"act {act}); add it to the spec's graphs")
        kernels = sorted(base_rows["kernel_size"])
        base_kernel = conv.base_kernel if conv.base_kernel in kernels else kernels[0]
        base_lr = float(base_rows[base_rows["kernel_size"] == base_kernel]["max_lr"].iloc[0])
        for _, r in group.iterrows():
            if not include_base and r["graph"] == base_code:
                continue
            dag = Dag.parse(r["graph"], ops=arch)
            kernel = int(r["kernel_size"]) if conv.uses_kernel else None
            scale = lr_scale(dag, arch, kernel, offset=off, base=Dag.parse(base_code, ops=arch),
                             base_kernel=base_kernel if conv.uses_kernel else None)
            rows.append({"graph": r["graph"], "width": int(width), "kernel_size": int(r["kernel_size"]),
                         "act": act, "measured": r["max_lr"], "measured_lo": r["max_lr_lo"],
                         "measured_hi": r["max_lr_hi"], "predicted": base_lr * scale, "scale": scale,
                         "at_edge": bool(r["at_edge"])})
    table = pd.DataFrame(rows)
    ok = np.isfinite(table["measured"].to_numpy(float)) & np.isfinite(table["predicted"].to_numpy(float))
    meas, pred = table["measured"].to_numpy(float)[ok], table["predicted"].to_numpy(float)[ok]
    return Comparison(table=table, pearson_r=_pearson(meas, pred),
                      pearson_r_log=_pearson(np.log(meas), np.log(pred)) if len(meas) else float("nan"),
                      n=int(ok.sum()), base=base_code, offset=off, metric=metric)


# ---------------------------------------------------------------------------------------- CLI
def _find_spec(text: str) -> Path:
    """A spec path, or the name of a bundled spec such as ``mlp_depth_quick``."""
    path = Path(text)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    bundled = Path(__file__).resolve().parent.parent / "sweeps" / f"{text}.yaml"
    return bundled if bundled.exists() else path


def _parse_set(items: list[str]) -> dict:
    changes = {}
    for item in items:
        if "=" not in item:
            raise ArchscaleError(f"--set expects KEY=VALUE (e.g. --set dataset=cifar10), got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = value
        changes[key.strip()] = value if key.strip() in ("base", "data_dir", "name") else parsed
    return changes


def _cmd_sweep(args) -> int:
    spec = SweepSpec.from_yaml(_find_spec(args.spec))
    changes = _parse_set(args.set or [])
    if args.dataset:
        changes["dataset"] = args.dataset
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if changes:
        spec = spec.replace(**changes)
    start = time.perf_counter()
    df = run_sweep(spec, args.out, device=args.device, progress=not args.no_progress,
                   chunk_size=args.chunk_size, threads=args.threads)
    wall = time.perf_counter() - start
    n_div = int(df["diverged"].astype(bool).sum()) if len(df) else 0
    print(f"{len(df)} rows in {Path(args.out) / RESULTS_FILE} ({n_div} diverged); this run took {wall:.1f} s")
    if len(df):
        try:
            print(compare(df, base=spec.base).format())
        except ArchscaleError as err:
            print(f"(no comparison: {err})")
    return 0


def _cmd_maxlr(args) -> int:
    out_dir = Path(args.dir)
    df = load_results(out_dir)
    if df.empty:
        raise ArchscaleError(f"{out_dir} has no finished results yet; "
                             f"run 'archscale sweep SPEC --out {out_dir}'")
    spec = None
    if (out_dir / SPEC_FILE).exists():
        try:
            spec = SweepSpec.from_yaml(out_dir / SPEC_FILE)
        except ArchscaleError as err:
            print(f"(spec.yaml unreadable, using every row: {err})", file=sys.stderr)
    if spec is not None and not args.all_rows:
        kept = spec.select(df)
        if not kept.empty and len(kept) < len(df):
            print(f"(using the {len(kept)} rows of the last spec run in {out_dir}; "
                  f"{len(df) - len(kept)} rows of earlier grids set aside, --all-rows uses them too)",
                  file=sys.stderr)
            df = kept
    base = args.base if args.base is not None else (spec.base if spec is not None else "1")
    comp = compare(df, base=base, offset=args.offset, metric=args.metric)
    if args.json:
        print(json.dumps(comp.to_dict()))
    else:
        print(comp.format())
    return 0


def register_cli(subparsers) -> None:
    """Add the ``sweep`` and ``maxlr`` subcommands to the ``archscale`` command line."""
    p = subparsers.add_parser("sweep", help="run (or resume) a learning-rate sweep from a YAML spec")
    p.add_argument("spec", help="spec file (e.g. sweeps/mlp_depth_quick.yaml) or bundled spec name")
    p.add_argument("--out", required=True, help="output directory (results.jsonl, spec.yaml); resumable")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train (default cpu)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set seeds=[0,1] (repeatable)")
    p.add_argument("--dataset", default=None, help="override the spec's dataset")
    p.add_argument("--data-dir", default=None, help="folder or .tar.gz holding CIFAR")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="replicas per chunk (default: from memory and, on the CPU, cache size)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's, one per core); use 1 on a CPU shared with "
                        "other busy processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    p = subparsers.add_parser("maxlr", help="measured vs predicted maximal LR of a finished sweep")
    p.add_argument("dir", help="sweep output directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--base", default=None, help="base graph code (default: the spec's base, '1')")
    p.add_argument("--metric", default="train_loss", choices=METRICS, help="loss that defines the max LR")
    p.add_argument("--offset", type=int, default=None, help="depth offset (default: the arch's convention)")
    p.add_argument("--all-rows", action="store_true",
                   help="use every row in the directory, not only the grid of its last spec")
    p.set_defaults(func=_cmd_maxlr)
