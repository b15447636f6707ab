"""The max-LR rule under divergence and the agreement metrics, against independent computations."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from archscale.analysis import agreement_metrics, best_lr, bootstrap_agreement
from archscale.analysis.agreement import cap_diverged, variance_link
from archscale.analysis.estimator import max_lr_estimate

LRS = np.geomspace(0.01, 10, 9)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1), st.floats(0.0, 0.6))
def test_the_max_lr_lies_in_its_interval_and_never_where_a_seed_diverged(n_seeds, seed, p_diverge):
    rng = np.random.default_rng(seed)
    losses = rng.random((n_seeds, len(LRS))) + 0.5
    losses[rng.random(losses.shape) < p_diverge] = np.inf
    est = max_lr_estimate(losses, LRS, n_boot=200, seed=seed)
    clean = np.isfinite(losses).all(axis=0)
    if clean.any():
        assert est.grid in LRS[clean] and LRS[0] <= est.max_lr <= LRS[-1]
        if np.isfinite(est.lo):
            assert est.lo <= est.max_lr <= est.hi
    else:
        assert np.isnan(est.max_lr) and np.isnan(est.lo) and np.isnan(est.hi)


def test_an_lr_where_a_seed_diverged_is_not_eligible():
    """The stated rule: four seeds far better at 0.1, one diverged there; 0.1 cannot win."""
    capped = cap_diverged(np.array([[1.0, 0.2, 3.0], [1.0, np.inf, 3.0]]))  # for drawing only
    assert capped[1, 1] > 3.0 and np.isfinite(capped).all()
    assert np.isnan(cap_diverged(np.array([[np.nan, 1.0]]))[0, 0])  # a missing run stays missing
    runs = lambda s: [(0.01, 2.0, False), (0.1, 0.1, s == 4), (1.0, 2.1, False)]  # noqa: E731
    rows = [{"lr": lr, "seed": s, "train_loss": loss, "diverged": div}
            for s in range(5) for lr, loss, div in runs(s)]
    out = best_lr(pd.DataFrame(rows)).iloc[0]
    assert out["best_lr"] == 0.01 and out["n_diverged"] == 1 and out["edge"] == "low"


def test_metrics_match_an_independent_computation():
    rng = np.random.default_rng(3)
    pred = np.exp(rng.normal(size=12))
    meas = pred * np.exp(0.7 * rng.normal(size=12)) * 0.6
    m = agreement_metrics(meas, pred)
    lm, lp = np.log(meas), np.log(pred)
    assert m["pearson_log"] == pytest.approx(stats.pearsonr(lm, lp).statistic)
    assert m["spearman"] == pytest.approx(stats.spearmanr(meas, pred).statistic)
    assert m["log_rmse"] == pytest.approx(np.sqrt(np.mean((lm - lp) ** 2)))
    assert m["error_factor"] == pytest.approx(np.exp(m["log_rmse"]))
    assert m["bias"] == pytest.approx(stats.gmean(meas / pred))
    assert m["slope"] == pytest.approx(stats.linregress(lp, lm).slope)
    ties = agreement_metrics(np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 4.0]))
    assert ties["spearman"] == pytest.approx(stats.spearmanr([1, 1, 2, 3], [1, 2, 2, 4]).statistic)


def _curves(best: float, n_seeds: int, rng) -> np.ndarray:
    x = np.log(LRS) - np.log(best)
    return 0.5 * x**2 + 1.0 + 0.05 * rng.standard_normal((n_seeds, len(LRS)))


def test_bootstrap_leaves_the_base_out_and_is_seeded():
    rng = np.random.default_rng(0)
    truth = [1.0, 0.3, 0.1, 0.03]  # configuration 0 is the base
    capped = [_curves(b, 4, rng) for b in truth]
    scale = np.array(truth)
    a = bootstrap_agreement(capped, [LRS] * 4, [0] * 4, scale, [1, 2, 3], n_boot=300, seed=1)
    b = bootstrap_agreement(capped, [LRS] * 4, [0] * 4, scale, [1, 2, 3], n_boot=300, seed=1)
    assert a.n == 3 and a.n_seeds == 4 and a.to_dict() == b.to_dict()
    for name in ("pearson_log", "error_factor", "bias", "slope"):
        assert a.lo[name] <= a.estimate[name] <= a.hi[name]
    assert a.estimate["error_factor"] < 1.5
    with pytest.raises(ValueError, match="same seeds"):
        bootstrap_agreement([capped[0], capped[1][:2]], [LRS] * 2, [0, 0], scale[:2], [1])


def test_variance_link_separates_a_prediction_from_a_moment_that_explains_it():
    """When the measurement is the moment plus noise and the prediction a noisy copy of the moment,
    the prediction's partial correlation (given the moment) is near 0; when the measurement is the
    prediction itself, it is 1. Intervals contain their points and are seeded."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=60)
    x = z + 0.3 * rng.normal(size=60)
    y = z + 0.05 * rng.normal(size=60)
    through_moment = variance_link(y, x, z, n_boot=200, seed=1)
    assert through_moment["spearman_pred"] > 0.8 and through_moment["spearman_moment"] > 0.95
    assert abs(through_moment["partial_pred"]) < 0.35
    direct = variance_link(x, x, z, n_boot=200, seed=1)
    assert direct["partial_pred"] == pytest.approx(1.0)
    for name in ("spearman_pred", "spearman_moment", "partial_pred"):
        assert through_moment[f"{name}_lo"] <= through_moment[name] <= through_moment[f"{name}_hi"]
    assert variance_link(y, x, z, n_boot=200, seed=1) == through_moment
    assert np.isnan(variance_link(y[:3], x[:3], z[:3], n_boot=10)["partial_pred"])


def test_against_factor_reads_the_interval_not_the_estimate():
    from archscale.analysis.agreement import against_factor

    assert against_factor(1.1, 1.5, 1.5) == "within"  # the whole interval at or below the factor
    assert against_factor(1.51, 3.0, 1.5) == "beyond"
    assert against_factor(1.2, 1.8, 1.5) == "undecided"
