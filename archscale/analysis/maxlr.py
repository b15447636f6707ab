"""The one rule for the best (maximal) learning rate of a grid, and the one cleaning of diverged runs.

Tables need columns ``lr``, ``seed``, the metric and, when present, ``diverged``: sweep rows,
probe tables and the NAS base-LR search all fit.

The rule (:func:`best_lr`): per group, arrange the metric as seeds x learning rates; a diverged
or non-finite run counts as a loss above every finite one of that group (the worst finite loss
plus 10% of the finite range, :func:`~archscale.analysis.agreement.cap_diverged`), not as an
infinite loss that would make a whole learning rate's mean infinite; the best LR is the grid LR
with the lowest seed-mean. Its interval is a 95% bootstrap over seeds, widened to contain the
point (:func:`~archscale.analysis.agreement.max_lr_interval`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.errors import ArchscaleError
from ..core.schema import CONFIG_KEYS, METRICS
from .agreement import cap_diverged, max_lr_interval, seed_bootstrap_best

__all__ = ["best_lr", "clean_losses", "loss_matrix", "max_lr"]


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
    out = table.copy()
    values = out[metric].astype(float)
    bad = ~np.isfinite(values)
    if "diverged" in out.columns:
        bad |= out["diverged"].astype(bool)
    out[metric] = values.where(~bad, fill)
    return out


def loss_matrix(group: pd.DataFrame, metric: str, seeds: Sequence | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(lrs, capped)``: the group's grid (ascending) and its seeds x LRs losses, diverged runs capped.

    ``seeds`` fixes the row order (missing runs are NaN), so matrices of several groups pair up.
    """
    df = clean_losses(group, metric, fill=np.inf)
    wide = df.pivot_table(index="seed", columns="lr", values=metric, aggfunc="mean", dropna=False)
    if seeds is not None:
        wide = wide.reindex(list(seeds))
    wide = wide.sort_index(axis=1)
    return wide.columns.to_numpy(float), cap_diverged(wide.to_numpy(float))


def best_lr(table: pd.DataFrame, metric: str = "train_loss", by: Sequence[str] = (), *, n_boot: int = 1000,
            seed: int = 0) -> pd.DataFrame:
    """The best learning rate of each ``by`` group, by the rule of the module docstring.

    Columns: ``by``, ``best_lr`` (NaN when every run diverged), ``best_loss`` (its seed-mean
    capped loss), ``best_lr_lo``/``best_lr_hi`` (95% bootstrap interval over seeds, containing
    the point), ``at_edge`` (the best LR is the grid's smallest or largest: the true one may lie
    beyond), ``n_lrs``, ``n_seeds``, ``n_diverged``.
    """
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
        lrs, capped = loss_matrix(g, metric)
        i = seed_bootstrap_best(capped, np.ones((1, capped.shape[0])))[0]
        best, lo, hi = max_lr_interval(capped, lrs, n_boot=n_boot, seed=seed)
        loss = float(np.nanmean(capped[:, i])) if i >= 0 else np.nan
        out.append({**dict(zip(by, key)), "best_lr": best, "best_loss": loss, "best_lr_lo": lo,
                    "best_lr_hi": hi, "at_edge": bool(i >= 0 and len(lrs) > 1 and i in (0, len(lrs) - 1)),
                    "n_lrs": len(lrs),
                    "n_seeds": int(g["seed"].nunique()), "n_diverged": int(diverged.loc[g.index].sum())})
    columns = [*by, "best_lr", "best_loss", "best_lr_lo", "best_lr_hi", "at_edge", "n_lrs", "n_seeds",
               "n_diverged"]
    return pd.DataFrame(out, columns=columns)


def max_lr(results: pd.DataFrame, metric: str = "train_loss", *, n_boot: int = 1000, seed: int = 0
           ) -> pd.DataFrame:
    """The maximal learning rate of every (graph, arch, width, kernel_size, act), per the paper.

    The maximal LR is the grid LR with the lowest seed-averaged ``metric`` (:func:`best_lr`). The
    default, ``train_loss``, is the reference code's training loss of an epoch (the
    batch-size-weighted mean minibatch loss) over the last epoch of the configured training:
    after one epoch in the paper; archscale's presets may train for a fixed number of steps or
    epochs instead, and then it is the loss of the last epoch (or of all steps, if fewer than an
    epoch). ``train_loss_final`` (whole training set after the last step) and ``test_loss`` are
    the alternatives. ``max_lr_lo``/``max_lr_hi`` are its 95% bootstrap interval over seeds;
    ``at_edge`` flags a best LR at either end of the grid.
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
    table = best_lr(results, metric, by=CONFIG_KEYS, n_boot=n_boot, seed=seed)
    return table.rename(columns={"best_lr": "max_lr", "best_lr_lo": "max_lr_lo", "best_lr_hi": "max_lr_hi"})
