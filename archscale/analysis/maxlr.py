"""The maximal learning rate of every configuration, and the one cleaning of diverged runs.

Tables need columns ``lr``, ``seed``, the metric and, when present, ``diverged``: sweep rows,
probe tables and the NAS base-LR search all fit. :func:`best_lr` arranges each group's metric as
seeds x learning rates (a diverged or non-finite run marked ``inf``) and hands it to the one
estimator, :mod:`archscale.analysis.estimator`: an LR at which any seed diverged is not
eligible, the grid argmin of the seed means, then a parabola in ``ln lr`` around it for an
estimate finer than the grid, with a seed-bootstrap interval and an interval-aware edge flag.
``method="argmin"`` keeps the grid answer. Rows of different optimizers (the ``optimizer``
column) are never pooled: a table that mixes them is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..core.schema import CONFIG_KEYS, METRICS
from .estimator import DEFAULT_METHOD, check_method, max_lr_estimate

__all__ = ["BEST_COLUMNS", "best_lr", "clean_losses", "loss_matrix", "max_lr", "one_optimizer"]


def one_optimizer(table: pd.DataFrame) -> None:
    """Refuse a table whose rows were trained by more than one optimizer: SGD's and Adam's learning
    rates live on different scales, and a maximal LR read from a mix of them means nothing."""
    if "optimizer" in table.columns:
        names = sorted(map(str, table["optimizer"].dropna().unique()))
        if len(names) > 1:
            raise ArchscaleError(f"the results mix optimizers ({', '.join(names)}); rows of one optimizer "
                                 f"only, e.g. results[results.optimizer == {names[0]!r}]")


def clean_losses(table: pd.DataFrame, metric: str = "train_loss", fill: float = np.nan) -> pd.DataFrame:
    """A copy of ``table`` whose ``metric`` is ``fill`` where the run diverged or is not finite.

    ``fill=np.nan`` leaves such runs out of plots; ``fill=np.inf`` marks them for
    :func:`loss_matrix`, which caps them.
    """
    if not isinstance(table, pd.DataFrame):
        raise ArchscaleError(f"results must be a DataFrame, got {type(table).__name__}")
    if metric not in table.columns:
        columns = ", ".join(map(str, table.columns))
        raise ArchscaleError(f"results have no column {metric!r}; columns: {columns}")
    one_optimizer(table)
    out = table.copy()
    values = out[metric].astype(float)
    bad = ~np.isfinite(values)
    if "diverged" in out.columns:
        bad |= out["diverged"].astype(bool)
    out[metric] = values.where(~bad, fill)
    return out


def loss_matrix(group: pd.DataFrame, metric: str, seeds: Sequence | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(lrs, losses)``: the group's grid (ascending) and its seeds x LRs losses, ``inf`` where the
    run diverged and NaN where there is none.

    ``seeds`` fixes the row order, so matrices of several groups pair up.
    """
    df = clean_losses(group, metric, fill=np.inf)
    wide = df.pivot_table(index="seed", columns="lr", values=metric, aggfunc="mean", dropna=False)
    if seeds is not None:
        wide = wide.reindex(list(seeds))
    wide = wide.sort_index(axis=1)
    return wide.columns.to_numpy(float), wide.to_numpy(float)


def best_lr(table: pd.DataFrame, metric: str = "train_loss", by: Sequence[str] = (), *, n_boot: int = 1000,
            seed: int = 0, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """The best learning rate of each ``by`` group (:mod:`~archscale.analysis.estimator`).

    Columns: ``by``, ``best_lr`` (the estimate; NaN when every LR had a diverged seed),
    ``best_lr_grid`` (the grid argmin), ``best_loss`` (its seed-mean loss),
    ``best_lr_lo``/``best_lr_hi`` (95% seed-bootstrap interval containing the point; NaN when
    fewer than 80% of the replicates gave an estimate), ``edge`` (``"low"``/``"high"`` when the
    argmin or the interval reaches the grid's end, else None), ``at_edge`` (``edge`` is set),
    ``method`` (``subgrid`` or ``argmin``: how the point was found), ``n_valid`` (replicates with
    an estimate), ``n_lrs``, ``n_seeds``, ``n_diverged``.
    """
    check_method(method)
    one_optimizer(table)
    by = list(by)
    missing = [c for c in [*by, "lr", "seed", metric] if c not in table.columns]
    if missing:
        raise ArchscaleError(f"results lack column(s) {', '.join(missing)}")
    diverged = (table["diverged"].astype(bool) if "diverged" in table.columns
                else pd.Series(False, index=table.index))
    groups = table.groupby(by, sort=True) if by else [((), table)]
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        lrs, losses = loss_matrix(g, metric)
        est = max_lr_estimate(losses, lrs, method=method, n_boot=n_boot, seed=seed)
        loss = np.nan
        if np.isfinite(est.grid):
            column = losses[:, int(np.searchsorted(lrs, est.grid))]
            loss = float(np.nanmean(column)) if np.isfinite(column).any() else np.nan
        out.append({**dict(zip(by, key)), "best_lr": est.max_lr, "best_lr_grid": est.grid,
                    "best_loss": loss, "best_lr_lo": est.lo, "best_lr_hi": est.hi, "edge": est.edge,
                    "at_edge": est.edge is not None, "method": est.method, "n_valid": est.n_valid,
                    "n_lrs": len(lrs),
                    "n_seeds": int(g["seed"].nunique()), "n_diverged": int(diverged.loc[g.index].sum())})
    return pd.DataFrame(out, columns=[*by, *BEST_COLUMNS])


#: The columns :func:`best_lr` adds to the ``by`` columns.
BEST_COLUMNS = ("best_lr", "best_lr_grid", "best_loss", "best_lr_lo", "best_lr_hi", "edge", "at_edge",
                "method", "n_valid", "n_lrs", "n_seeds", "n_diverged")


def max_lr(results: pd.DataFrame, metric: str = "train_loss", *, n_boot: int = 1000, seed: int = 0,
           method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """The maximal learning rate of every (graph, arch, width, kernel_size, act), per the paper.

    The paper's maximal LR is the grid LR with the lowest seed-averaged ``metric``; archscale's
    estimate (:func:`best_lr`) refines it between grid points and gives its interval. The
    default, ``train_loss``, is the reference code's training loss of an epoch (the
    batch-size-weighted mean minibatch loss) over the last epoch of the configured training:
    after one epoch in the paper; archscale's presets may train for a fixed number of steps or
    epochs instead, and then it is the loss of the last epoch (or of all steps, if fewer than an
    epoch). ``train_loss_final`` (whole training set after the last step) and ``test_loss`` are
    the alternatives. Columns as :func:`best_lr`'s, ``best_*`` named ``max_*``: ``max_lr``,
    ``max_lr_grid``, ``max_lr_lo``, ``max_lr_hi``, ``edge``, ``method``, ``n_valid``...
    """
    if not isinstance(results, pd.DataFrame):
        raise ArchscaleError(f"results must be a DataFrame (load_results(dir)), got {type(results).__name__}")
    if metric not in METRICS:
        raise ArchscaleError(f"unknown metric {metric!r}; accepted: {', '.join(METRICS)}")
    missing = [c for c in [*CONFIG_KEYS, "lr", "seed", "diverged", metric] if c not in results.columns]
    if missing:
        raise ArchscaleError(f"results lack column(s) {', '.join(missing)}; expected sweep rows")
    if results.empty:
        raise ArchscaleError("no results yet: the sweep has not finished any chunk")
    table = best_lr(results, metric, by=CONFIG_KEYS, n_boot=n_boot, seed=seed, method=method)
    return table.rename(columns={c: c.replace("best_lr", "max_lr") for c in BEST_COLUMNS})
