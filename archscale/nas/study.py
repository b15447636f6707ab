"""The NAS study: every (cell, recipe, seed) trained and stored; the base cell's LR search."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis import best_lr
from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, StoreError
from ..core.runspec import ADDED_FIELDS
from ..core.schema import NAS
from ..runs.executor import executor_for, run_chunks
from ..runs.store import ResultStore, chunk_id
from ..train import TrainConfig
from .cells import as_cell
from .recipes import RECIPES, Recipe, as_recipe
from .training import BENCHMARK, BENCHMARK_LR, _check_images, _on_device, require_sgd, train_cell_net

__all__ = ["META_FILE", "RESULT_COLUMNS", "BaseLrSearch", "accuracy_table", "find_base_lr",
           "load_nas_results", "run_nas_study"]

#: Columns of the tidy results table (the :data:`archscale.core.schema.NAS` rows).
RESULT_COLUMNS = tuple(NAS.names)
#: The study's settings file in its results directory (the store's meta file).
META_FILE = "study.yaml"


def _settings(cfg: TrainConfig, width: int, n_cells: int, batchnorm: bool, mup_base_width: int,
              data) -> dict:
    """What every row of one study shares: a directory holding other settings is refused."""
    return {"width": int(width), "n_cells": int(n_cells), "batchnorm": bool(batchnorm),
            "mup_base_width": int(mup_base_width), "dataset": str(getattr(data, "name", "?")),
            "n_train": int(len(data.x_train)),
            # SGD only (require_sgd): the optimizer fields, added later, stay out, so older studies match
            "train": {k: v for k, v in asdict(cfg).items() if k not in ADDED_FIELDS}}


def _run_id(cell: str, recipe: str, seed: int) -> str:
    return chunk_id([(cell, recipe, int(seed))])


def _open(out_dir: str | Path) -> ResultStore:
    store = ResultStore(out_dir, NAS, meta_name=META_FILE)
    store.check()
    return store


def _check_settings(store: ResultStore, settings: dict, recipes: list[Recipe], default_base: float,
                    rows: list[dict]) -> None:
    store.check_setup(settings, "a NAS study", "out_dir")
    for recipe in recipes:
        base = default_base if recipe.base_lr is None else recipe.base_lr
        for r in rows:
            same = r["kind"] == recipe.kind and math.isclose(r["base_lr"], base)
            if r["recipe"] == recipe.name and not same:
                raise StoreError(f"{store.dir} already has recipe {recipe.name!r} as kind {r['kind']!r} with "
                                 f"base LR {r['base_lr']:g}; give this variant another name or use another "
                                 f"out_dir")


@dataclass(frozen=True)
class _Run:
    """One training run of the study or the LR search: a chunk for
    :func:`~archscale.runs.executor.run_chunks`."""

    id: str
    cell: str
    recipe: Recipe
    seed: int


def _train_run(run: _Run, shared: dict, device: str, on_step=None) -> list[dict]:
    """Train one run (module level: worker processes import it by name)."""
    return [train_cell_net(run.cell, run.recipe, shared["data"], shared["cfg"], device=device, seed=run.seed,
                           **shared["model"])]


class _Collect:
    """The driver's writer: keeps every row, and appends it to the store's writer when there is one."""

    def __init__(self, rows: list[dict], writer=None):
        self.rows, self.writer = rows, writer

    def append(self, chunk_id: str, rows: list[dict]) -> None:
        if self.writer is not None:
            self.writer.append(chunk_id, rows)
        self.rows.extend(rows)


def _train_runs(runs: list[_Run], data, cfg: TrainConfig, model: dict, collect: _Collect, *, device,
                workers: int | None, desc: str, progress: bool) -> None:
    """Train ``runs`` here (``workers=1``) or in worker processes, storing each as it finishes."""
    executor = executor_for(str(device), workers=workers)
    shared = {"data": _on_device(data, device), "cfg": cfg, "model": model}
    with executor:
        run_chunks(runs, _train_run, shared, collect, executor, work=lambda r: 1,
                   describe=lambda r: f"{r.cell} {r.recipe.name} seed {r.seed}", desc=desc, unit="runs",
                   progress=progress)


def run_nas_study(dags: Iterable[Dag | str], data, *, recipes: Sequence[str | Recipe] = RECIPES,
                  seeds: Sequence[int] = (0, 1), cfg: TrainConfig | None = None, width: int = 16,
                  n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                  out_dir: str | Path | None = None, device: str | torch.device = "cpu",
                  base_lr: float = BENCHMARK_LR, progress: bool = True,
                  workers: int | None = 1) -> pd.DataFrame:
    """Train every (cell, recipe, seed) and return the tidy results table (:data:`RESULT_COLUMNS`).

    ``recipes`` are names (``"fixed"``, ``"archscale"``, ``"mup"``) or :class:`Recipe` objects;
    a recipe without a base LR of its own takes ``base_lr`` (NAS-Bench-201's 0.1 by default).
    With ``out_dir`` the runs go to the crash-safe results store (:mod:`archscale.runs.store`): each
    finished run is appended at once, a rerun skips the runs already there, and ``study.yaml``
    holds the settings; a directory with other settings (or a recipe name reused with another
    kind or base LR) is refused rather than mixed in, and a directory that is not archscale's is
    left untouched. ``workers`` > 1 trains that many runs at once in CPU worker processes (one
    torch thread each; the rows are the same as one after another on one thread).
    """
    cfg = require_sgd(cfg or BENCHMARK)
    base_lr = validate.learning_rate(base_lr, "base_lr")
    cells = [as_cell(d) for d in dags]
    if not cells:
        raise ArchscaleError("no cells to train; sample some with Dag.sample(4, k, seed, ops='nb201')")
    recipe_list = [as_recipe(r) for r in recipes]
    names = [r.name for r in recipe_list]
    if len(set(names)) != len(names):
        raise ArchscaleError(f"recipe names must be distinct, got {names}")
    seeds = [validate.integer(s, "seed", minimum=0) for s in seeds]
    _check_images(data)
    store = _open(out_dir) if out_dir is not None else None
    settings = _settings(cfg, width, n_cells, batchnorm, mup_base_width, data)
    rows = store.scan().rows if store is not None else []
    if store is not None:
        _check_settings(store, settings, recipe_list, base_lr, rows)
    done = {NAS.key_of(r) for r in rows}
    todo = [(c, r, s) for c in cells for s in seeds for r in recipe_list if (c.code, r.name, s) not in done]
    if todo or (store is not None and store.read_meta() != settings):
        runs = [_Run(_run_id(c.code, r.name, s), c.code, r, s) for c, r, s in todo]
        model = dict(width=width, n_cells=n_cells, batchnorm=batchnorm, mup_base_width=mup_base_width,
                     base_lr=base_lr)
        with (store.open() if store is not None else contextlib.nullcontext()) as writer:
            if writer is not None:
                writer.write_meta(settings)
            _train_runs(runs, data, cfg, model, _Collect(rows, writer), device=device, workers=workers,
                        desc="NAS study", progress=progress)
    table = NAS.frame(rows)
    wanted = {c.code for c in cells}
    table = table[table["graph"].isin(wanted) & table["recipe"].isin(names) & table["seed"].isin(seeds)]
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class BaseLrSearch:
    """The base cell's maximal LR on a grid for one recipe kind: ``best_lr`` and the per-run ``table``.

    ``summary`` is :func:`archscale.analysis.best_lr`'s row (interval, edge flag, diverged runs).
    """

    best_lr: float
    base_cell: str
    kind: str
    table: pd.DataFrame
    summary: pd.Series


def find_base_lr(data, lrs: Sequence[float], *, seeds: Sequence[int] = (0, 1),
                 cfg: TrainConfig | None = None,
                 epochs: int = 1, width: int = 16, n_cells: int = 5, batchnorm: bool = True,
                 base_cell: str = "1_01_001", kind: str = "archscale", device: str | torch.device = "cpu",
                 progress: bool = True, workers: int | None = 1) -> BaseLrSearch:
    """Step 1 of the paper's recipe for cells: grid-search the base cell's maximal learning rate.

    The base of the nb201 convention is one path of depth 1 (the all-skip cell ``1_01_001``).
    Each LR trains it with recipe ``kind``'s initialization (``"archscale"``: in-degree rule and
    mean-field readout; ``"fixed"``: He and a standard readout; ``"mup"``: the muP model, so the
    one LR of the fixed and muP recipes can be searched the same way) for ``epochs`` epochs at a
    constant LR (the optimizer settings of ``cfg`` otherwise); the maximal LR is
    :func:`archscale.analysis.best_lr` of the training loss. ``workers`` as in :func:`run_nas_study`.
    """
    cfg = require_sgd(cfg or BENCHMARK)
    validate.choice(kind, "recipe kind", ("archscale", "fixed", "mup"))
    lrs = [validate.learning_rate(lr, "grid learning rate") for lr in lrs]
    if not lrs:
        raise ArchscaleError("the LR grid is empty; pass e.g. lrs=np.geomspace(0.05, 3.2, 7)")
    search_cfg = replace(cfg, epochs=validate.positive_int(epochs, "epochs"), cosine=False)
    _check_images(data)
    code = as_cell(base_cell).code
    runs = [_Run(f"{lr!r} {s}", code, Recipe(f"base {kind}", kind, lr), s) for lr in lrs for s in seeds]
    trained: list[dict] = []
    _train_runs(runs, data, search_cfg, dict(width=width, n_cells=n_cells, batchnorm=batchnorm),
                _Collect(trained), device=device, workers=workers, desc=f"base-cell LR grid ({kind})",
                progress=progress)
    table = pd.DataFrame([{"lr": r["base_lr"], "seed": r["seed"], "train_loss": r["train_loss"],
                           "diverged": r["diverged"]} for r in trained])
    table = table.sort_values(["lr", "seed"], kind="stable").reset_index(drop=True)
    summary = best_lr(table, "train_loss").iloc[0]
    if not np.isfinite(summary["best_lr"]):
        raise ArchscaleError(f"every learning rate of the grid diverged on the base cell ({kind}); "
                             f"lower the grid, e.g. lrs=np.geomspace(0.01, 1, 7)")
    return BaseLrSearch(float(summary["best_lr"]), as_cell(base_cell).code, kind, table, summary)


def load_nas_results(out_dir: str | Path) -> pd.DataFrame:
    """The tidy results table :func:`run_nas_study` stored in ``out_dir`` (damaged lines are reported)."""
    store = _open(out_dir)
    if not store.path.exists():
        raise StoreError(f"no NAS results in {store.dir}; "
                         f"run run_nas_study(..., out_dir={str(out_dir)!r}) first")
    scan = store.scan()
    if scan.damaged:
        warnings.warn(scan.describe(store.path), UserWarning, stacklevel=2)
    return NAS.frame(scan.rows)


def accuracy_table(results: pd.DataFrame, metric: str = "test_acc", seed: int | None = None) -> pd.DataFrame:
    """One row per cell, one column per recipe: ``metric`` averaged over seeds (or one ``seed``)."""
    if metric not in results.columns:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(results.columns)}")
    if seed is not None:
        results = results[results["seed"] == seed]
    table = results.pivot_table(index="graph", columns="recipe", values=metric, aggfunc="mean")
    table.columns.name = None
    return table


