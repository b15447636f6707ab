"""Synthetic sweep rows whose maximal LR follows a known law (shared by the test folders)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from archscale.core.dag import Dag


def law_rows(codes, truth, rng, seeds=(0, 1, 2)) -> pd.DataFrame:
    """Sweep rows over a fine LR grid: each graph's loss is a parabola in log LR around
    ``0.5 * truth(dag)`` (times a little log-normal noise drawn from ``rng``)."""
    grid = np.geomspace(1e-3, 10, 61)
    rows = []
    for code in codes:
        target = 0.5 * truth(Dag.parse(code)) * np.exp(0.05 * rng.standard_normal())
        for s in seeds:
            loss = (np.log(grid) - np.log(target)) ** 2
            rows += [dict(graph=code, arch="mlp", width=8, kernel_size=0, act="relu", lr=float(lr), seed=s,
                          train_loss=float(v), train_loss_final=float(v), test_loss=float(v), test_acc=0.5,
                          diverged=False, steps=3, diverged_step=-1, layout="paper", init="archscale",
                          readout="mean_field") for lr, v in zip(grid, loss)]
    return pd.DataFrame(rows)
