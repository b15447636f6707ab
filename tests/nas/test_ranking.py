"""Ranking statistics: ties on one scale, scipy's tau-b, distinct top-K% sets, undefined tau explained."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from archscale.nas import kendall_tau, topk_kendall, topk_pairwise_gap
from archscale.nas.ranking import tie_ranks

# accuracies as real test sets produce them: multiples of 1/n_test, averaged over seeds
accuracies = st.integers(3, 12).flatmap(
    lambda n: st.tuples(st.lists(st.integers(300, 360), min_size=n, max_size=n),
                        st.lists(st.integers(300, 360), min_size=n, max_size=n)))


@settings(max_examples=300, deadline=None)
@given(accuracies)
def test_tau_does_not_depend_on_the_scale_of_the_scores(pair):
    a = np.array(pair[0]) / 360
    b = np.array(pair[1]) / 360
    t1, t2 = kendall_tau(a, b), kendall_tau(100 * a, 100 * b)
    assert (np.isnan(t1) and np.isnan(t2)) or t1 == t2


def test_float_noise_is_a_tie_and_tau_matches_scipy_on_exact_values():
    a = np.array([0.97, 0.95, 0.96, 0.95])
    noisy = a * 100  # 0.97 * 100 = 97.00000000000001: still the same ranking of ties
    assert list(tie_ranks(a)) == list(tie_ranks(noisy)) == [2, 0, 1, 0]
    b = np.array([1, 2, 3, 3])
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b, variant="b").statistic)


def test_topk_sets_of_equal_membership_are_one_row():
    rng = np.random.default_rng(0)
    a, b = rng.random(24), rng.random(24)
    t = topk_kendall(a, b, ks=(100, 50, 20, 10, 5, 1), min_n=3)
    assert list(t["n"]) == [24, 12, 5, 3]  # 10%, 5% and 1% of 24 all hold the minimum of 3 cells
    assert t["ks"].iloc[-1] == "10/5/1"
    gaps = topk_pairwise_gap(a, ks=(100, 50, 20, 10, 5, 1), min_n=3)
    assert list(gaps["n"]) == [24, 12, 5, 3]


def test_undefined_tau_is_explained():
    t = topk_kendall([0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.5, 0.2], ks=(100, 75), min_n=3)
    assert np.isfinite(t["tau"].iloc[0])
    assert np.isnan(t["tau"].iloc[1])
    assert t["note"].iloc[1] == "undefined: all 3 cells tie in the second ranking"
