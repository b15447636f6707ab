"""The NAS study: every (cell, recipe, seed) trained and stored; the base cell's LR search."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from .. import validate
from ..dag import Dag
from ..errors import ArchscaleError
from .cells import as_cell
from .recipes import RECIPES, Recipe, as_recipe
from .training import TrainConfig, _check_images, _on_device, train_cell_net

__all__ = ["RESULT_COLUMNS", "BaseLrSearch", "accuracy_table", "find_base_lr", "load_nas_results",
           "run_nas_study"]

#: Columns of the tidy results table written by :func:`run_nas_study`.
RESULT_COLUMNS = ("graph", "recipe", "kind", "seed", "width", "n_cells", "base_lr", "lr", "epochs",
                  "train_loss", "train_acc", "test_loss", "test_acc", "diverged", "seconds")


@dataclass(frozen=True)
class _StudyConfig:
    width: int
    n_cells: int
    batchnorm: bool
    mup_base_width: int
    dataset: str
    n_train: int
    train: dict = field(default_factory=dict)


def run_nas_study(dags: Iterable[Dag | str], data, *, recipes: Sequence[str | Recipe] = RECIPES,
                  seeds: Sequence[int] = (0, 1), cfg: TrainConfig | None = None, width: int = 16,
                  n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                  out_dir: str | Path | None = None, device: str | torch.device = "cpu",
                  progress: bool = True) -> pd.DataFrame:
    """Train every (cell, recipe, seed) and return the tidy results table.

    ``recipes`` are names (``"fixed"``, ``"archscale"``, ``"mup"``) or :class:`Recipe` objects.
    With ``out_dir`` every finished run is appended to ``out_dir/results.csv`` at once, and a
    rerun skips the runs already there (resumable); ``out_dir/study.json`` holds the settings,
    and a rerun with different settings (or a recipe name reused with another base LR) is
    refused rather than mixed in.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    cells = [as_cell(d) for d in dags]
    if not cells:
        raise ArchscaleError("no cells to train; sample some with Dag.sample(4, k, seed, ops='nb201')")
    recipes = [as_recipe(r) for r in recipes]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise ArchscaleError(f"recipe names must be distinct, got {names}")
    seeds = [validate.integer(s, "seed", minimum=0) for s in seeds]
    _check_images(data)
    data = _on_device(data, device)
    study = _StudyConfig(width, n_cells, bool(batchnorm), mup_base_width, str(getattr(data, "name", "?")),
                         int(len(data.x_train)), asdict(cfg))
    done: set[tuple[str, str, int]] = set()
    rows: list[dict] = []
    csv_path = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = out / "study.json"
        if meta.exists():
            previous = json.loads(meta.read_text())
            if previous != asdict(study):
                raise ArchscaleError(f"{out} holds results of a study with other settings ({previous}); "
                               f"use another out_dir or delete that folder")
        else:
            meta.write_text(json.dumps(asdict(study), indent=1))
        csv_path = out / "results.csv"
        if csv_path.exists():
            rows = load_nas_results(out).to_dict("records")
            done = {(r["graph"], r["recipe"], int(r["seed"])) for r in rows}
            for recipe in recipes:
                base = cfg.base_lr if recipe.base_lr is None else recipe.base_lr
                for r in rows:
                    if r["recipe"] == recipe.name and (r["kind"] != recipe.kind
                                                       or not math.isclose(r["base_lr"], base)):
                        raise ArchscaleError(
                            f"{out} already has recipe {recipe.name!r} as kind {r['kind']!r} with base LR "
                            f"{r['base_lr']:g}; give this variant another name or use another out_dir")
    todo = [(c, r, s) for c in cells for s in seeds for r in recipes if (c.code, r.name, s) not in done]
    bar = tqdm(todo, desc="NAS study", disable=not progress)
    for cell, recipe, seed in bar:
        bar.set_postfix_str(f"{cell.code} {recipe.name} seed {seed}")
        row = train_cell_net(cell, recipe, data, cfg, width=width, n_cells=n_cells, batchnorm=batchnorm,
                             mup_base_width=mup_base_width, seed=seed, device=device)
        rows.append(row)
        if csv_path is not None:
            new = not csv_path.exists()
            with open(csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    wanted = {c.code for c in cells}
    table = table[table["graph"].isin(wanted) & table["recipe"].isin(names) & table["seed"].isin(seeds)]
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class BaseLrSearch:
    """The base cell's maximal LR on a grid: ``best_lr`` and the per-LR ``table`` (mean over seeds)."""

    best_lr: float
    base_cell: str
    table: pd.DataFrame


def find_base_lr(data, lrs: Sequence[float], *, seeds: Sequence[int] = (0, 1), cfg: TrainConfig | None = None,
                 epochs: int = 1, width: int = 16, n_cells: int = 5, batchnorm: bool = True,
                 base_cell: str = "1_01_001", device: str | torch.device = "cpu",
                 progress: bool = True) -> BaseLrSearch:
    """Step 1 of the paper's recipe for cells: grid-search the base cell's maximal learning rate.

    The base of the nb201 convention is one path of depth 1 (the all-skip cell ``1_01_001``).
    Each LR trains it with the archscale init for ``epochs`` epochs at a constant LR (the
    optimizer settings of ``cfg`` otherwise); the maximal LR is the one with the lowest mean
    training loss over ``seeds``, diverged runs counting as infinite loss.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    lrs = [validate.learning_rate(lr, "grid learning rate") for lr in lrs]
    if not lrs:
        raise ArchscaleError("the LR grid is empty; pass e.g. lrs=np.geomspace(0.05, 3.2, 7)")
    search_cfg = replace(cfg, epochs=validate.positive_int(epochs, "epochs"), cosine=False)
    _check_images(data)
    data = _on_device(data, device)
    rows = []
    grid = [(lr, s) for lr in lrs for s in seeds]
    for lr, seed in tqdm(grid, desc="base-cell LR grid", disable=not progress):
        row = train_cell_net(base_cell, Recipe("base", "archscale", lr), data, search_cfg, width=width,
                             n_cells=n_cells, batchnorm=batchnorm, seed=seed, device=device)
        loss = math.inf if row["diverged"] else row["train_loss"]
        rows.append({"lr": lr, "seed": seed, "train_loss": loss, "diverged": row["diverged"]})
    per_seed = pd.DataFrame(rows)
    table = per_seed.groupby("lr", as_index=False).agg(train_loss=("train_loss", "mean"),
                                                        diverged=("diverged", "sum"))
    best = float(table.loc[table["train_loss"].idxmin(), "lr"])
    return BaseLrSearch(best, as_cell(base_cell).code, table)


def load_nas_results(out_dir: str | Path) -> pd.DataFrame:
    """The tidy results table written by :func:`run_nas_study` in ``out_dir``."""
    path = Path(out_dir) / "results.csv"
    if not path.exists():
        raise ArchscaleError(f"no NAS results at {path}; "
                             f"run run_nas_study(..., out_dir={str(out_dir)!r}) first")
    table = pd.read_csv(path, dtype={"graph": str})
    table["diverged"] = table["diverged"].astype(str).str.lower() == "true"
    return table


def accuracy_table(results: pd.DataFrame, metric: str = "test_acc", seed: int | None = None) -> pd.DataFrame:
    """One row per cell, one column per recipe: ``metric`` averaged over seeds (or one ``seed``)."""
    if metric not in results.columns:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(results.columns)}")
    if seed is not None:
        results = results[results["seed"] == seed]
    table = results.pivot_table(index="graph", columns="recipe", values=metric, aggfunc="mean")
    table.columns.name = None
    return table


