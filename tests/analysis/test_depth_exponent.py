"""The depth exponent's fit on synthetic chains whose maximal LR follows a known power of L."""

import numpy as np
import pytest
from synthetic import law_rows

from archscale.analysis.depth_exponent import EQ8_DEPTH_EXPONENT, depth_exponent, width_exponent
from archscale.core.dag import Dag
from archscale.core.errors import ArchscaleError

CHAINS = ["1"] + [Dag.chain(k).code for k in range(1, 8)]  # L = 3..10


@pytest.mark.parametrize("power", [EQ8_DEPTH_EXPONENT, -0.5, 0.0])
def test_the_fit_recovers_a_known_exponent(power):
    rows = law_rows(CHAINS, lambda d: (3 + max(d.depth_counts(0))) ** power, np.random.default_rng(0),
                    seeds=(0, 1, 2, 3))
    fit = depth_exponent(rows, n_boot=100, seed=0, label="synthetic")
    assert fit.exponent == pytest.approx(power, abs=0.1)
    assert fit.lo <= fit.exponent <= fit.hi and fit.n_depths == 8 and fit.n_seeds == 4
    assert list(fit.table["depth"]) == list(range(3, 11))
    assert "synthetic: max LR ∝ L^b, b = " in fit.line() and "L = 3..10" in fit.line()


def test_per_seed_noise_gives_an_interval_that_covers_the_truth():
    rng = np.random.default_rng(3)
    rows = law_rows(CHAINS, lambda d: (3 + max(d.depth_counts(0))) ** -1.0, rng, seeds=(0, 1, 2, 3, 4))
    noisy = rows.assign(train_loss=rows["train_loss"] + 0.3 * rng.standard_normal(len(rows)))
    fit = depth_exponent(noisy, n_boot=200, seed=1)
    assert fit.hi > fit.lo and fit.contains(-1.0)


def test_one_depth_is_refused():
    rows = law_rows(["1", "2_12"], lambda d: 1.0, np.random.default_rng(0))
    with pytest.raises(ArchscaleError, match="two depths"):
        depth_exponent(rows[rows["graph"] == "1"], n_boot=10)


# ---------------------------------------------------------------------------------------- width
WIDTHS = (64, 128, 256, 512, 1024)


def _width_rows(power: float, rng, seeds=(0, 1, 2, 3)):
    import pandas as pd

    return pd.concat([law_rows(["2"], lambda d, w=w: (w / 64) ** power, rng, seeds=seeds).assign(width=w)
                      for w in WIDTHS], ignore_index=True)


@pytest.mark.parametrize("power", [-1.0, -0.5, 0.0])
def test_the_width_fit_recovers_a_known_slope_per_doubling(power):
    fit = width_exponent(_width_rows(power, np.random.default_rng(0)), n_boot=100, seed=0, label="synthetic")
    assert fit.exponent == pytest.approx(power, abs=0.1)
    assert fit.lo <= fit.exponent <= fit.hi and fit.n_sizes == 5 and fit.n_seeds == 4 and fit.axis == "width"
    assert list(fit.table["width"]) == list(WIDTHS)
    assert "synthetic: max LR ∝ width^b, b = " in fit.line() and "per doubling of width" in fit.line()
    assert "width 64..1024" in fit.line()


def test_the_width_interval_covers_the_truth_under_seed_noise():
    rng = np.random.default_rng(3)
    rows = _width_rows(-1.0, rng, seeds=(0, 1, 2, 3, 4))
    noisy = rows.assign(train_loss=rows["train_loss"] + 0.3 * rng.standard_normal(len(rows)))
    fit = width_exponent(noisy, n_boot=200, seed=1)
    assert fit.hi > fit.lo and fit.contains(-1.0) and not fit.contains(0.0)


def test_one_width_or_two_graphs_are_refused():
    rows = _width_rows(0.0, np.random.default_rng(0))
    with pytest.raises(ArchscaleError, match="two widths"):
        width_exponent(rows[rows["width"] == 64], n_boot=10)
    two = law_rows(["2", "2_02"], lambda d: 1.0, np.random.default_rng(0))
    with pytest.raises(ArchscaleError, match="one graph"):
        width_exponent(two, base="2", n_boot=10)
