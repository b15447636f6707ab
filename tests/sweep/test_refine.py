"""Adaptive LR grids: refinement rounds where each optimum is, outward at an edge, resumable."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pandas as pd
import pytest

from archscale.core.errors import SpecError
from archscale.core.schema import lr_key
from archscale.runs.store import RESULTS_FILE
from archscale.sweep import SweepSpec, grid_coverage, load_results, run_sweep
from archscale.sweep.refine import next_lrs, refinement_plan

GRID = np.geomspace(0.01, 10, 7)  # a coarse grid: a factor 3.16 apart


def _parabola(opt: float, n_seeds: int = 4) -> np.ndarray:
    return np.repeat((np.log(GRID / opt) ** 2 + 1.0)[None, :], n_seeds, axis=0) \
        + 0.01 * np.random.default_rng(0).standard_normal((n_seeds, len(GRID)))


def test_new_lrs_split_the_gaps_nearest_the_optimum():
    new = next_lrs(GRID, _parabola(0.25), n=2, width=1.0)  # a width no interval meets
    mids = np.sqrt(GRID[:-1] * GRID[1:])
    nearest = sorted(mids[np.argsort(np.abs(np.log(mids / 0.25)))[:2]])
    assert new == pytest.approx(nearest) and all(GRID[1] < x < GRID[4] for x in new)


def test_an_optimum_at_the_grids_end_extends_it_outward():
    low = next_lrs(GRID, _parabola(0.001), n=2, width=1.5)
    assert low == pytest.approx([GRID[0] / 10**0.5, GRID[0] / 10])
    high = next_lrs(GRID, _parabola(100.0), n=1, width=1.5)
    assert high == pytest.approx([GRID[-1] * 10**0.5])
    diverged = np.full((3, len(GRID)), np.inf)
    assert next_lrs(GRID, diverged, n=1, width=1.5) == pytest.approx([GRID[0] / 10**0.5])


def test_a_narrow_interval_needs_no_more_lrs():
    fine = np.geomspace(0.1, 1, 21)
    losses = np.repeat((np.log(fine / 0.3) ** 2)[None, :], 5, axis=0) \
        + 1e-4 * np.random.default_rng(1).standard_normal((5, len(fine)))
    assert next_lrs(fine, losses, n=2, width=1.5) == []


TINY = dict(arch="mlp", graphs=["1", "2_02"], widths=[8], lr_min=0.01, lr_max=3.0, n_lrs=4, seeds=[0, 1, 2],
            steps=5, batch_size=64, n_train=200, n_test=50, chunk_size=3, refine=2, refine_rounds=2)


def test_a_refined_sweep_trains_its_rounds_and_every_read_counts_them(tmp_path):
    spec = SweepSpec(**TINY)
    rows = run_sweep(spec, tmp_path, progress=False)
    per_graph = rows.groupby("graph")["lr"].nunique()
    assert (per_graph > 4).all() and (per_graph <= 4 + 2 * 2).all()
    plan = refinement_plan(spec, rows)
    extra = {lr_key(x) for rounds in plan.values() for r in rounds for x in r}
    assert set(rows["lr"].map(lr_key)) == {lr_key(x) for x in spec.lr_grid()} | extra
    present, expected = grid_coverage(spec, set(spec.keys(rows)), rows)
    assert present == expected == len(rows) == len(spec.keys(rows))
    assert len(spec.select(load_results(tmp_path))) == len(rows)  # refined rows belong to the spec
    assert len(spec.replace(refine=None).select(rows)) == 2 * 4 * 3  # without refine: the grid only
    with pytest.raises(SpecError, match="refine"):
        SweepSpec(**{**TINY, "refine": 0})


@pytest.mark.determinism
def test_a_refinement_killed_anywhere_resumes_to_the_same_rows(tmp_path):
    spec = SweepSpec(**TINY)
    ref = run_sweep(spec, tmp_path / "ref", progress=False)
    raw = (tmp_path / "ref" / RESULTS_FILE).read_bytes()
    header = raw.index(b"\n") + 1
    rng = random.Random(3)
    for cut in sorted({rng.randrange(header, len(raw)) for _ in range(4)} | {len(raw) * 3 // 4}):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / RESULTS_FILE).write_bytes(raw[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = run_sweep(spec, d, progress=False)
        pd.testing.assert_frame_equal(again.reset_index(drop=True), ref.reset_index(drop=True),
                                      check_exact=True)
    assert not math.isnan(ref["train_loss"].iloc[0])
