"""Adaptive learning-rate grids: after a coarse grid, LRs where each configuration's optimum is.

A spec with ``refine: N`` trains its grid, then in up to ``refine_rounds`` rounds gives every
configuration ``N`` more learning rates (all seeds) chosen from what its rows say so far
(:func:`next_lrs`), until the estimate's 95% interval is narrower than a factor
``refine_width``:

* the best grid point at the grid's low (high) end: the grid is extended outward, ``N`` steps
  of the end's spacing below (above) it;
* otherwise: the ``N`` gaps between neighbouring LRs nearest the estimate are split at their
  geometric midpoints, so the parabola of the estimator (:mod:`~archscale.analysis.estimator`)
  sees the optimum at a finer spacing.

Round ``r``'s LRs are a function of the rows of the grid and of rounds ``< r`` only
(:func:`refinement_plan`), so a killed refinement resumes exactly: the same LRs are planned
again, finished chunks are skipped and the next round starts once the last is complete.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..analysis.estimator import max_lr_estimate
from ..analysis.maxlr import loss_matrix
from ..core.schema import CONFIG_KEYS, lr_key

if TYPE_CHECKING:
    import pandas as pd

    from ..train import ModelSpec


class _Spec(Protocol):
    """What the planner reads of a :class:`~archscale.sweep.SweepSpec` (which imports this module)."""

    refine: int | None
    refine_rounds: int
    refine_width: float
    seeds: list[int]

    def lr_grid(self) -> list[float]: ...

    def model_specs(self) -> list[ModelSpec]: ...


def config_of(model: ModelSpec) -> tuple:
    """The configuration a model's rows belong to (the values of ``CONFIG_KEYS``; kernel 0 for MLPs)."""
    return (model.graph, model.arch, model.width, model.kernel_size if model.arch == "cnn" else 0, model.act)

__all__ = ["config_of", "next_lrs", "refinement_plan"]

#: Bootstrap replicates for the interval that decides whether a configuration needs more LRs.
N_BOOT = 200


def next_lrs(lrs: np.ndarray, losses: np.ndarray, n: int, width: float, metric_seed: int = 0) -> list[float]:
    """The ``n`` learning rates to add to one configuration (module docstring); [] when its
    estimate's interval is already narrower than a factor ``width``."""
    lrs = np.asarray(lrs, dtype=float)
    est = max_lr_estimate(losses, lrs, n_boot=N_BOOT, seed=metric_seed)
    if len(lrs) < 2:
        return []
    # extend where the best grid point is the grid's end (its interval alone reaching the end only
    # says the grid is short of seeds, which more LRs inside it help with)
    if not math.isfinite(est.max_lr) or est.grid == lrs[0]:
        step = lrs[1] / lrs[0]
        return [float(lr_key(lrs[0] / step**k)) for k in range(1, n + 1)]
    if est.grid == lrs[-1]:
        step = lrs[-1] / lrs[-2]
        return [float(lr_key(lrs[-1] * step**k)) for k in range(1, n + 1)]
    if math.isfinite(est.lo) and est.hi / est.lo <= width:
        return []
    mids = np.sqrt(lrs[:-1] * lrs[1:])
    order = np.argsort(np.abs(np.log(mids) - math.log(est.max_lr)), kind="stable")
    return sorted(float(lr_key(m)) for m in mids[order[:n]])


def refinement_plan(spec: _Spec, results: pd.DataFrame, metric: str = "train_loss"
                    ) -> dict[tuple, list[list[float]]]:
    """Per configuration (``CONFIG_KEYS`` values), the LRs of each refinement round planned so far:
    every round whose grid (the spec's plus earlier rounds) has all its rows in ``results``
    decides the next one, whose rows are what is still to train. Empty without ``refine``."""
    if not spec.refine:
        return {}
    base = [float(x) for x in spec.lr_grid()]
    seeds = list(spec.seeds)
    rows = results[results["seed"].isin(seeds)] if not results.empty else results
    groups = dict(list(rows.groupby(list(CONFIG_KEYS), sort=False))) if not rows.empty else {}
    plan: dict[tuple, list[list[float]]] = {}
    for model in spec.model_specs():
        config = config_of(model)
        rounds: list[list[float]] = []
        group = groups.get(config)
        for _ in range(spec.refine_rounds):
            grid = sorted({*base, *(x for r in rounds for x in r)})
            if group is None:
                break
            have = group[group["lr"].map(lr_key).isin({lr_key(x) for x in grid})]
            if len(have) < len(grid) * len(seeds):
                break  # this round's rows are not all in yet: they are what to train next
            lrs, losses = loss_matrix(have, metric, seeds)
            new = [x for x in next_lrs(lrs, losses, spec.refine, spec.refine_width)
                   if lr_key(x) not in {lr_key(g) for g in grid}]
            if not new:
                break
            rounds.append(new)
        if rounds:
            plan[config] = rounds
    return plan
