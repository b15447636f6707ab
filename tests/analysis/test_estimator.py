"""The maximal-LR estimator on synthetic sweeps with a known optimum: finer than the argmin,
intervals that cover about as stated, the diverged rule, edges and the noise floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from archscale.analysis.agreement import bootstrap_agreement, noise_floor
from archscale.analysis.estimator import MIN_SEEDS, WINDOW, estimate, max_lr_estimate

GRID = np.geomspace(0.01, 10, 25)  # mlp_depth_quick's grid: a factor 1.33 apart


def sweep(rng, opt: float, n_seeds: int, lrs=GRID, noise: float = 0.03) -> np.ndarray:
    """Seeds x LRs losses shaped like a real sweep: steeper above the optimum than below, a
    per-seed offset shared by every LR, noise that grows with the LR, divergence far above."""
    u = np.log(lrs / opt)
    mean = 0.6 + 0.4 * (np.exp(1.5 * u) - 1 - 1.5 * u) / 1.5**2
    losses = mean + 0.05 * rng.standard_normal((n_seeds, 1)) \
        + noise * (1 + np.exp(u)) * rng.standard_normal((n_seeds, len(lrs)))
    losses[:, u > 2.5] = np.inf
    return losses


def _study(n_seeds: int, n: int = 120, lrs=GRID, seed: int = 0):
    rng = np.random.default_rng(seed)
    err = {"subgrid": [], "argmin": []}
    covered = given = 0
    for t in range(n):
        opt = float(np.exp(rng.uniform(np.log(lrs[2]), np.log(lrs[-3]))))
        losses = sweep(rng, opt, n_seeds, lrs)
        for method in err:
            est = max_lr_estimate(losses, lrs, method=method, n_boot=200, seed=t)
            err[method].append(math.log(est.max_lr / opt))
            if method == "subgrid" and math.isfinite(est.lo):
                given += 1
                covered += est.lo <= opt <= est.hi
    rmse = {m: float(np.sqrt(np.mean(np.square(e)))) for m, e in err.items()}
    return rmse, float(np.mean(err["subgrid"])), covered / max(given, 1), given


def test_the_estimate_beats_the_argmin_and_its_interval_covers_about_as_stated():
    rmse, bias, coverage, given = _study(5)
    assert rmse["subgrid"] < 0.7 * rmse["argmin"], rmse  # measured: 0.09-0.15 against 0.18-0.25
    assert abs(bias) < 0.1  # measured: -0.05 (the parabola leans to the flatter side)
    assert given == 120 and 0.85 <= coverage <= 1.0, coverage  # measured: 0.91-0.95 at 5 seeds


def test_a_coarse_grid_uses_the_three_nearest_points():
    coarse = np.geomspace(0.1, 5, 7)  # the CNN quick grid: a factor 1.93 apart, beyond WINDOW
    assert np.log(coarse[1] / coarse[0]) > WINDOW
    rmse, _, coverage, _ = _study(3, n=80, lrs=coarse, seed=1)
    assert rmse["subgrid"] < 0.75 * rmse["argmin"], rmse
    assert coverage >= 0.8


def test_the_parabola_is_the_vertex_of_an_exact_one_and_stays_between_neighbours():
    opt = 0.137
    losses = (np.log(GRID / opt) ** 2)[None, :].repeat(4, axis=0)
    est = estimate(losses, GRID, np.ones((1, 4)))
    assert est.subgrid[0] and est.lr[0] == pytest.approx(opt, rel=1e-9)
    lopsided = np.where(GRID < 0.1, 5.0, 1.0) + np.where(GRID == GRID[8], -0.5, 0.0)  # flat right of 8
    est = estimate(lopsided[None, :], GRID, np.ones((1, 1)))
    assert GRID[7] <= est.lr[0] <= GRID[9]


def test_a_diverged_seed_makes_its_lr_ineligible_and_bounds_the_window():
    losses = np.log(GRID / 0.3)[None, :].repeat(4, axis=0) ** 2
    losses[2, 15] = np.inf  # GRID[15] = 0.75: one seed diverged there
    est = max_lr_estimate(losses, GRID, n_boot=200)
    assert est.grid != GRID[15] and est.max_lr < GRID[15]
    assert math.isfinite(est.lo) and est.lo <= est.max_lr <= est.hi


def test_no_interval_from_too_few_seeds_and_edges_are_interval_aware():
    rng = np.random.default_rng(3)
    two = max_lr_estimate(sweep(rng, 0.3, MIN_SEEDS - 1), GRID, n_boot=100)
    assert math.isfinite(two.max_lr) and math.isnan(two.lo) and math.isnan(two.hi) and two.edge is None
    low = max_lr_estimate(sweep(rng, 0.011, 5), GRID, n_boot=100)
    assert low.edge == "low"
    short = np.geomspace(0.03, 0.3, 9)  # a narrow grid and loud noise: the interval reaches its end
    wide = max_lr_estimate(sweep(np.random.default_rng(0), 0.06, 4, lrs=short, noise=0.3), short, n_boot=200)
    assert short[0] < wide.grid < short[-1] and wide.lo == short[0] and wide.edge == "low"


def test_the_noise_floor_matches_an_independent_recomputation():
    rng = np.random.default_rng(4)
    opts = [0.3, 0.1, 0.05, 0.2, 0.08]
    losses = [sweep(rng, o, 6) for o in opts]
    floor, n = noise_floor(losses, [GRID] * 5, [1, 2, 3, 4])
    d = []
    for t in (1, 2, 3, 4):
        first = estimate(losses[t][:3], GRID, np.ones((1, 3))).lr[0]
        rest = estimate(losses[t][3:], GRID, np.ones((1, 3))).lr[0]
        d.append(math.log(first / rest))
    expected = math.exp(math.sqrt(np.mean(np.square(d))) * math.sqrt((2 / 6) / (1 / 3 + 1 / 3)))
    assert n == 4 and floor == pytest.approx(expected, rel=1e-12)
    agreement = bootstrap_agreement(losses, [GRID] * 5, [0] * 5, np.array(opts) / opts[0], [1, 2, 3, 4],
                                    n_boot=200, seed=1)
    assert agreement.noise_floor == pytest.approx(floor) and "noise floor" in agreement.format()
    # a perfect law scores at about the floor, not below it by much
    assert agreement.estimate["error_factor"] >= floor / 1.5
