"""The one best-LR rule and the one diverged-loss cleaning, on tables shaped like sweeps, probes and NAS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from archscale.analysis import best_lr, clean_losses, max_lr
from archscale.core.errors import ArchscaleError


def table(curves: dict, diverged: dict | None = None, key: str = "width") -> pd.DataFrame:
    """Rows (key, lr, seed, train_loss, diverged) from {key value: [[loss per lr] per seed]}."""
    lrs = [0.01, 0.1, 1.0]
    rows = []
    for k, seeds in curves.items():
        for s, losses in enumerate(seeds):
            for i, (lr, loss) in enumerate(zip(lrs, losses)):
                div = bool(diverged and diverged.get((k, s, i)))
                rows.append({key: k, "lr": lr, "seed": s, "train_loss": loss, "diverged": div})
    return pd.DataFrame(rows)


def test_clean_losses_marks_diverged_and_non_finite_runs():
    t = table({64: [[1.0, np.nan, 0.5]]}, diverged={(64, 0, 2): True})
    nan = clean_losses(t)
    assert nan["train_loss"].isna().tolist() == [False, True, True]
    assert clean_losses(t, fill=np.inf)["train_loss"].tolist() == [1.0, np.inf, np.inf]
    assert t["train_loss"].tolist()[2] == 0.5  # the input is left alone
    no_flag = t.drop(columns="diverged")
    assert clean_losses(no_flag)["train_loss"].isna().tolist() == [False, True, False]
    with pytest.raises(ArchscaleError, match="no column 'test_loss'"):
        clean_losses(t, "test_loss")


def test_best_lr_per_group_with_seed_ranges_edges_and_divergence():
    t = table({64: [[2.0, 1.0, 1.5], [2.0, 1.2, 0.9]], 128: [[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]},
              diverged={(64, 1, 2): True})
    out = best_lr(t, by=["width"]).set_index("width")
    # LR 1.0 had a diverged seed: not eligible, so 0.1 wins and nothing brackets it from above
    assert out.loc[64, "best_lr"] == 0.1 and out.loc[64, "best_lr_grid"] == 0.1
    assert out.loc[64, "method"] == "argmin" and out.loc[64, "best_loss"] == pytest.approx(1.1)
    assert np.isnan(out.loc[64, "best_lr_lo"]) and np.isnan(out.loc[64, "best_lr_hi"])  # 2 seeds: none
    assert out.loc[64, "n_diverged"] == 1 and pd.isna(out.loc[64, "edge"]) and not out.loc[64, "at_edge"]
    assert out.loc[128, "best_lr"] == 1.0 and out.loc[128, "edge"] == "high" and out.loc[128, "at_edge"]
    assert out.loc[128, "n_lrs"] == 3 and out.loc[128, "n_seeds"] == 2


def _vertex(lrs, losses) -> float:
    """The parabola in ln lr through three points, independently: its vertex as an LR."""
    a, b, _ = np.polyfit(np.log(lrs), losses, 2)
    return float(np.exp(-b / (2 * a)))


def test_best_lr_without_groups_and_when_everything_diverged():
    one = best_lr(table({0: [[1.0, 0.5, 2.0]]}))
    assert len(one) == 1 and one.loc[0, "best_lr_grid"] == 0.1 and one.loc[0, "method"] == "subgrid"
    assert one.loc[0, "best_lr"] == pytest.approx(_vertex([0.01, 0.1, 1.0], [1.0, 0.5, 2.0]), rel=1e-9)
    assert best_lr(table({0: [[1.0, 0.5, 2.0]]}), method="argmin").loc[0, "best_lr"] == 0.1
    gone = best_lr(table({0: [[np.inf, np.nan, np.inf]]}))
    assert np.isnan(gone.loc[0, "best_lr"]) and np.isnan(gone.loc[0, "best_loss"])
    with pytest.raises(ArchscaleError, match="seed"):
        best_lr(table({0: [[1.0, 0.5, 2.0]]}).drop(columns="seed"))
    with pytest.raises(ArchscaleError, match="accepted: subgrid, argmin"):
        best_lr(table({0: [[1.0, 0.5, 2.0]]}), method="spline")


def test_max_lr_is_best_lr_per_sweep_configuration():
    t = table({"1": [[1.0, 0.5, 2.0]], "2": [[1.0, 2.0, 3.0]]}, key="graph")
    t = t.assign(arch="mlp", width=8, kernel_size=0, act="relu")
    m = max_lr(t).set_index("graph")
    assert m.loc["1", "max_lr"] == pytest.approx(_vertex([0.01, 0.1, 1.0], [1.0, 0.5, 2.0]), rel=1e-9)
    assert m.loc["2", "max_lr"] == 0.01 and m.loc["2", "edge"] == "low"
    assert {"max_lr_lo", "max_lr_hi", "max_lr_grid", "edge", "method", "n_valid", "best_loss",
            "at_edge"} <= set(m.columns)
    b = best_lr(t, by=["graph", "arch", "width", "kernel_size", "act"]).set_index("graph")
    assert b["best_lr"].tolist() == m["max_lr"].tolist()
