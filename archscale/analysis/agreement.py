"""How well predicted maximal learning rates agree with measured ones: the metrics and their intervals.

Everything here works on log learning rates and leaves the base network out: the base's
prediction equals its measurement by construction, so including it only inflates agreement.

The metrics (:func:`agreement_metrics`), for ``n`` configurations with measured ``m`` and
predicted ``p`` maximal LRs, ``d = ln m - ln p``:

* ``pearson_log`` — Pearson r of ``ln m`` against ``ln p`` (shape of the relation, scale-free);
* ``spearman`` — Spearman rank correlation (does the rule order the graphs correctly?);
* ``log_rmse`` — ``sqrt(mean d^2)``, and ``error_factor = exp(log_rmse)``: the typical factor
  by which a prediction misses (2.0 = off by 2x either way);
* ``bias`` — ``exp(mean d)``, the geometric-mean ratio measured / predicted (1 = unbiased,
  0.5 = predictions twice too high on average);
* ``slope`` — least-squares slope of ``ln m`` on ``ln p`` (1 = the rule's dependence has the
  right strength; < 1 = the rule exaggerates differences between graphs).

Intervals come from :func:`bootstrap_agreement`: each replicate resamples the seeds (shared by
every configuration, so the base and the targets stay paired) and the non-base configurations,
re-measures every maximal LR from the resampled seeds (so grid noise in the base's own max LR
propagates into every prediction) and recomputes the metrics; 95% percentile intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ArchscaleError

__all__ = [
    "METRIC_NAMES",
    "Agreement",
    "agreement_metrics",
    "best_index",
    "bootstrap_agreement",
    "bootstrap_max_lrs",
    "cap_diverged",
    "max_lr_interval",
    "percentile_interval",
    "seed_bootstrap_best",
    "variance_link",
]

#: Names of the agreement metrics, in the order they are reported.
METRIC_NAMES = ("pearson_log", "spearman", "log_rmse", "error_factor", "bias", "slope")


def cap_diverged(losses: np.ndarray) -> np.ndarray:
    """``losses`` (seeds x LRs) with every non-finite entry (a diverged run) replaced by a cap.

    The cap lies above every finite loss of the configuration: the worst finite loss plus 10%
    of the finite range (plus 1 when all finite losses are equal). A diverged seed therefore
    counts as the worst run seen, not as an infinite loss that would make a whole learning
    rate's mean infinite. Missing entries (NaN where no run exists) stay NaN.
    """
    out = np.array(losses, dtype=float)
    finite = np.isfinite(out)
    if not finite.any():
        return out
    lo, hi = out[finite].min(), out[finite].max()
    cap = hi + (0.1 * (hi - lo) if hi > lo else 1.0)
    return np.where(~finite & ~np.isnan(out), cap, out)


def best_index(mean_losses: np.ndarray) -> int:
    """Index of the lowest mean loss (the smallest LR among exact ties); -1 when none is finite."""
    vals = np.asarray(mean_losses, dtype=float)
    if not np.isfinite(vals).any():
        return -1
    return int(np.nanargmin(np.where(np.isfinite(vals), vals, np.inf)))


def seed_bootstrap_best(capped: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Best-LR index for each bootstrap replicate of the seeds.

    ``capped``: (seeds x LRs) losses from :func:`cap_diverged`; ``counts``: (replicates x seeds)
    resampling counts. Replicates whose resampled seeds leave no finite mean give -1.
    """
    present = np.isfinite(capped)
    filled = np.where(present, capped, 0.0)
    weight = counts @ present.astype(float)                 # (B, L) seeds contributing per LR
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(weight > 0, (counts @ filled) / weight, np.inf)
    out = np.argmin(means, axis=1)
    out[~np.isfinite(means).any(axis=1)] = -1
    return out


def bootstrap_max_lrs(capped: list[np.ndarray], lrs: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """(replicates x configurations) maximal LR of every configuration on each seed resample.

    ``counts`` (replicates x seeds) is one resampling shared by all configurations, so they stay
    paired; a replicate with no finite mean gives NaN.
    """
    picked = [seed_bootstrap_best(c, counts) for c in capped]
    return np.stack([np.where(b >= 0, lr[np.maximum(b, 0)], np.nan) for lr, b in zip(lrs, picked)], axis=1)


def percentile_interval(samples) -> tuple[float, float, int]:
    """95% percentile interval of the finite bootstrap samples and how many there were (NaN if none)."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return math.nan, math.nan, 0
    return float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5)), int(arr.size)


def max_lr_interval(capped: np.ndarray, lrs: np.ndarray, *, n_boot: int = 1000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """The maximal LR of one configuration and its 95% bootstrap interval over seeds.

    The point is the LR with the lowest seed-mean capped loss; the interval spans the 2.5 and
    97.5 percentiles of the best LR over seed resamples, widened where needed to contain the
    point (with few seeds the resampled argmin can skip it). NaN when no run stayed finite.
    """
    s = capped.shape[0]
    point = seed_bootstrap_best(capped, np.ones((1, s)))[0]
    if point < 0:
        return math.nan, math.nan, math.nan
    counts = np.random.default_rng(seed).multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(float)
    boot = seed_bootstrap_best(capped, counts)
    chosen = boot[boot >= 0]  # grid indices; percentiles that land on grid points
    lo = int(np.percentile(chosen, 2.5, method="lower"))
    hi = int(np.percentile(chosen, 97.5, method="higher"))
    return float(lrs[point]), float(lrs[min(lo, point)]), float(lrs[max(hi, point)])


def against_factor(lo: float, hi: float, good: float) -> str:
    """Where an error factor's interval [lo, hi] lies against ``good``: "within" (wholly at or below it),
    "beyond" (wholly above it) or "undecided" (it straddles it, so this n cannot say)."""
    return "within" if hi <= good else "beyond" if lo > good else "undecided"


def agreement_metrics(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring for paired maximal LRs (positive, finite); NaN if undefined."""
    lm = np.log(np.asarray(measured, dtype=float))
    lp = np.log(np.asarray(predicted, dtype=float))
    n = len(lm)
    out = dict.fromkeys(METRIC_NAMES, math.nan)
    if n == 0:
        return out
    d = lm - lp
    out["log_rmse"] = float(np.sqrt(np.mean(d**2)))
    out["error_factor"] = float(np.exp(out["log_rmse"]))
    out["bias"] = float(np.exp(np.mean(d)))
    if n >= 3 and np.ptp(lm) > 0 and np.ptp(lp) > 0:
        out["pearson_log"] = float(np.corrcoef(lm, lp)[0, 1])
        out["spearman"] = float(np.corrcoef(_ranks(lm), _ranks(lp))[0, 1])
    if n >= 2 and np.ptp(lp) > 0:
        out["slope"] = float(np.polyfit(lp, lm, 1)[0])
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho uses."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


@dataclass
class Agreement:
    """Agreement metrics of a comparison, each with a bootstrap interval.

    ``estimate[name]`` is the metric on the measured maximal LRs; ``lo``/``hi`` its 95%
    percentile interval; ``n`` the number of non-base configurations, ``n_seeds`` the seeds
    per configuration, ``n_boot`` the replicates (``n_valid[name]`` of them gave a finite value)
    and ``samples[name]`` their values (NaN where undefined). Two agreements computed with the
    same ``seed`` on the same configurations share their resamples, so their ``samples`` pair up.
    """

    estimate: dict[str, float]
    lo: dict[str, float]
    hi: dict[str, float]
    n: int
    n_seeds: int
    n_boot: int
    seed: int
    n_valid: dict[str, int] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        metrics = {k: {"estimate": _none(self.estimate[k]), "lo": _none(self.lo[k]), "hi": _none(self.hi[k]),
                       "n_valid": self.n_valid.get(k, 0)} for k in METRIC_NAMES}
        return {"metrics": metrics, "n": self.n, "n_seeds": self.n_seeds, "n_boot": self.n_boot,
                "seed": self.seed, "base_excluded": True, "scale": "log"}

    def line(self, name: str, digits: int = 3) -> str:
        """``name = x [lo, hi]`` for one metric."""
        return f"{name} = {_fmt(self.estimate[name], digits)} [{_fmt(self.lo[name], digits)}, " \
               f"{_fmt(self.hi[name], digits)}]"

    def format(self) -> str:
        """Every metric with its interval, and n: the lines printed under a comparison."""
        head = (f"agreement on {self.n} non-base configuration(s), log LRs, 95% bootstrap intervals over "
                f"{self.n_seeds} seeds and the configurations ({self.n_boot} replicates):")
        return "\n".join([head] + [f"  {self.line(k)}" for k in METRIC_NAMES])


def _fmt(x: float, digits: int = 3) -> str:
    """A number for reports: ``digits`` significant digits, "nan" when missing or not finite."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _none(x: float) -> float | None:
    """A number for JSON: None when missing or not finite."""
    return None if x is None or not np.isfinite(x) else float(x)


def bootstrap_agreement(capped: list[np.ndarray], lrs: list[np.ndarray], base_of: list[int] | np.ndarray,
                        scale: np.ndarray, targets: list[int] | np.ndarray, *, n_boot: int = 1000,
                        seed: int = 0) -> Agreement:
    """Metrics of measured vs predicted maximal LRs with intervals over seeds and configurations.

    ``capped[i]`` (seeds x LRs, from :func:`cap_diverged`) and ``lrs[i]`` describe configuration
    ``i``; every configuration must hold the same number of seeds, in the same order.
    ``base_of[i]`` is the index of the base configuration its prediction transfers from and
    ``scale[i]`` the rule's LR ratio, so ``predicted_i = max_lr(base_of[i]) * scale[i]``;
    ``targets`` are the indices that enter the metrics (the non-base configurations).
    """
    n_seeds = {c.shape[0] for c in capped}
    if len(n_seeds) != 1:
        raise ArchscaleError(f"every configuration needs the same seeds; got seed counts {sorted(n_seeds)}")
    s = n_seeds.pop()
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(float)
    point_lr = bootstrap_max_lrs(capped, lrs, np.ones((1, s)))[0]
    boot_lr = bootstrap_max_lrs(capped, lrs, seed_counts)
    targets = np.asarray(targets, dtype=int)
    base_of = np.asarray(base_of, dtype=int)
    pred_point = point_lr[base_of] * scale
    estimate = agreement_metrics(point_lr[targets], pred_point[targets]) if len(targets) else \
        agreement_metrics(np.array([]), np.array([]))
    pick = rng.integers(0, len(targets), size=(n_boot, len(targets))) if len(targets) else None
    samples: dict[str, list[float]] = {k: [] for k in METRIC_NAMES}
    for b in range(n_boot if pick is not None else 0):
        meas = boot_lr[b]
        pred = meas[base_of] * scale
        assert pick is not None
        idx = targets[pick[b]]
        ok = np.isfinite(meas[idx]) & np.isfinite(pred[idx])
        vals = agreement_metrics(meas[idx][ok], pred[idx][ok])
        for k in METRIC_NAMES:
            samples[k].append(vals[k])
    lo, hi, valid = {}, {}, {}
    kept = {k: np.asarray(samples[k], dtype=float) for k in METRIC_NAMES}
    for k in METRIC_NAMES:
        lo[k], hi[k], valid[k] = percentile_interval(kept[k])
    return Agreement(estimate, lo, hi, int(len(targets)), s, int(n_boot), int(seed), valid, kept)


def _partial(y: np.ndarray, x: np.ndarray, z: np.ndarray) -> float:
    """Pearson correlation of ``y`` and ``x`` after removing from each its linear fit on ``z``."""
    if np.ptp(z) == 0:
        return float(np.corrcoef(y, x)[0, 1]) if np.ptp(y) > 0 and np.ptp(x) > 0 else math.nan
    ry = y - np.polyval(np.polyfit(z, y, 1), z)
    rx = x - np.polyval(np.polyfit(z, x, 1), z)
    return float(np.corrcoef(ry, rx)[0, 1]) if np.ptp(ry) > 0 and np.ptp(rx) > 0 else math.nan


def variance_link(log_measured, log_predicted, log_moment, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """How a measured max LR follows a prediction and a forward moment, with bootstrap intervals.

    Returns ``spearman_pred`` (log measured vs log predicted), ``spearman_moment`` (vs the log
    moment) and ``partial_pred`` (Pearson partial correlation with the prediction given the
    moment), each with ``_lo``/``_hi`` 95% percentile intervals over resampled graphs.
    """
    y, x, z = (np.asarray(v, dtype=float) for v in (log_measured, log_predicted, log_moment))

    def stats(idx: np.ndarray) -> tuple[float, float, float]:
        yy, xx, zz = y[idx], x[idx], z[idx]
        if len(idx) < 4 or np.ptp(yy) == 0:
            return math.nan, math.nan, math.nan
        sp = lambda a, b: float(np.corrcoef(_ranks(a), _ranks(b))[0, 1]) if np.ptp(b) > 0 else math.nan  # noqa: E731
        return sp(yy, xx), sp(yy, zz), _partial(yy, xx, zz)

    names = ("spearman_pred", "spearman_moment", "partial_pred")
    point = stats(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    boots = np.array([stats(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]) if len(y) else \
        np.empty((0, 3))
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        lo, hi, _ = percentile_interval(boots[:, i])
        out |= {name: point[i], f"{name}_lo": lo, f"{name}_hi": hi}
    return out
