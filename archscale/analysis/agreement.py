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
from .estimator import DEFAULT_METHOD, MIN_VALID, bootstrap_estimates, estimate, seed_counts

__all__ = [
    "METRIC_NAMES",
    "Agreement",
    "agreement_metrics",
    "bootstrap_agreement",
    "cap_diverged",
    "noise_floor",
    "percentile_interval",
    "variance_link",
]

#: Names of the agreement metrics, in the order they are reported.
METRIC_NAMES = ("pearson_log", "spearman", "log_rmse", "error_factor", "bias", "slope")


def cap_diverged(losses: np.ndarray) -> np.ndarray:
    """``losses`` (seeds x LRs) with every non-finite entry (a diverged run) replaced by a cap, for
    drawing loss curves: the worst finite loss plus 10% of the finite range (plus 1 when all finite
    losses are equal). Missing entries (NaN where no run exists) stay NaN. (The estimator does not
    use it: an LR where a seed diverged is not eligible, :mod:`~archscale.analysis.estimator`.)
    """
    out = np.array(losses, dtype=float)
    finite = np.isfinite(out)
    if not finite.any():
        return out
    lo, hi = out[finite].min(), out[finite].max()
    cap = hi + (0.1 * (hi - lo) if hi > lo else 1.0)
    return np.where(~finite & ~np.isnan(out), cap, out)


def percentile_interval(samples) -> tuple[float, float, int]:
    """95% percentile interval of the finite bootstrap samples and how many there were (NaN if none)."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return math.nan, math.nan, 0
    return float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5)), int(arr.size)


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
    percentile interval (NaN when fewer than 80% of the replicates gave a value); ``n`` the
    number of non-base configurations (in ``n_clusters`` resampled clusters, e.g. graphs),
    ``n_seeds`` the seeds per configuration, ``n_boot`` the replicates (``n_valid[name]`` of them
    gave a finite value) and ``samples[name]`` their values (NaN where undefined). ``noise_floor``
    is the error factor a perfect law would score on these data (:func:`noise_floor`, from
    ``n_floor`` configurations). Two agreements computed with the same ``seed`` on the same
    configurations share their resamples, so their ``samples`` pair up.
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
    n_clusters: int = 0
    noise_floor: float = math.nan
    n_floor: int = 0
    method: str = DEFAULT_METHOD

    def to_dict(self) -> dict:
        metrics = {k: {"estimate": _none(self.estimate[k]), "lo": _none(self.lo[k]), "hi": _none(self.hi[k]),
                       "n_valid": self.n_valid.get(k, 0)} for k in METRIC_NAMES}
        return {"metrics": metrics, "n": self.n, "n_clusters": self.n_clusters, "n_seeds": self.n_seeds,
                "n_boot": self.n_boot, "seed": self.seed, "base_excluded": True, "scale": "log",
                "noise_floor": _none(self.noise_floor), "n_floor": self.n_floor, "method": self.method}

    def line(self, name: str, digits: int = 3) -> str:
        """``name = x [lo, hi]`` for one metric (``[no interval: k/n valid]`` when refused)."""
        refused = not (np.isfinite(self.lo[name]) and np.isfinite(self.hi[name]))
        if refused and np.isfinite(self.estimate[name]):
            return f"{name} = {_fmt(self.estimate[name], digits)} [no interval: " \
                   f"{self.n_valid.get(name, 0)}/{self.n_boot} replicates valid]"
        return f"{name} = {_fmt(self.estimate[name], digits)} [{_fmt(self.lo[name], digits)}, " \
               f"{_fmt(self.hi[name], digits)}]"

    def format(self) -> str:
        """Every metric with its interval, n and the noise floor: the lines printed under a comparison."""
        clusters = f" in {self.n_clusters} graphs" if self.n_clusters and self.n_clusters != self.n else ""
        head = (f"agreement on {self.n} non-base configuration(s){clusters}, log LRs, max LR by "
                f"{self.method}, 95% bootstrap intervals over {self.n_seeds} seeds and the "
                f"{'graphs' if clusters else 'configurations'} ({self.n_boot} replicates):")
        floor = (f"  noise floor = {_fmt(self.noise_floor)} (the error factor of a perfect law on these "
                 f"data: two halves of the seeds, n = {self.n_floor}; no law can score below it)")
        return "\n".join([head] + [f"  {self.line(k)}" for k in METRIC_NAMES] + [floor])


def _fmt(x: float, digits: int = 3) -> str:
    """A number for reports: ``digits`` significant digits, "nan" when missing or not finite."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _none(x: float) -> float | None:
    """A number for JSON: None when missing or not finite."""
    return None if x is None or not np.isfinite(x) else float(x)


def noise_floor(losses: list[np.ndarray], lrs: list[np.ndarray], targets, method: str = DEFAULT_METHOD
                ) -> tuple[float, int]:
    """The error factor a perfect law would score on these data, and the configurations it rests on.

    Each configuration's maximal LR is estimated twice, from the first ``floor(S/2)`` of its
    ``S`` seeds (in their order) and from the rest; ``d = ln(first / rest)`` over the
    ``targets`` where both exist. A law's residual ``ln m - ln(m_base * scale)`` carries the
    noise of two full-seed estimates, whose variance is ``var(d) * (2/S) / (1/n_a + 1/n_b)``,
    so the floor is ``exp(rms(d) * sqrt((2/S) / (1/n_a + 1/n_b)))``. NaN with fewer than 2 seeds.
    """
    s = losses[0].shape[0] if losses else 0
    n_a = s // 2
    if n_a < 1 or s - n_a < 1:
        return math.nan, 0
    halves = np.zeros((2, s))
    halves[0, :n_a] = 1.0
    halves[1, n_a:] = 1.0
    d = []
    for t in targets:
        a, b = estimate(losses[t], lrs[t], halves, method).lr
        if np.isfinite(a) and np.isfinite(b):
            d.append(math.log(a / b))
    if not d:
        return math.nan, 0
    scale = math.sqrt((2 / s) / (1 / n_a + 1 / (s - n_a)))
    return float(math.exp(math.sqrt(float(np.mean(np.square(d)))) * scale)), len(d)


def bootstrap_agreement(losses: list[np.ndarray], lrs: list[np.ndarray], base_of: list[int] | np.ndarray,
                        scale: np.ndarray, targets: list[int] | np.ndarray, *, clusters: list | None = None,
                        method: str = DEFAULT_METHOD, n_boot: int = 1000, seed: int = 0) -> Agreement:
    """Metrics of measured vs predicted maximal LRs with intervals over seeds and configurations.

    ``losses[i]`` (seeds x LRs, ``inf`` where a run diverged, from
    :func:`~archscale.analysis.maxlr.loss_matrix`) and ``lrs[i]`` describe configuration ``i``;
    every configuration must hold the same number of seeds, in the same order. ``base_of[i]`` is
    the index of the base configuration its prediction transfers from and ``scale[i]`` the rule's
    LR ratio, so ``predicted_i = max_lr(base_of[i]) * scale[i]``; ``targets`` are the indices that
    enter the metrics (the non-base configurations). Each replicate re-estimates every maximal
    LR (:mod:`~archscale.analysis.estimator`) on one seed resample shared by all, and resamples
    the targets; with ``clusters`` (a label per configuration, e.g. its graph) it resamples whole
    clusters, so configurations that share a graph are not counted as independent.
    """
    n_seeds = {c.shape[0] for c in losses}
    if len(n_seeds) != 1:
        raise ArchscaleError(f"every configuration needs the same seeds; got seed counts {sorted(n_seeds)}")
    s = n_seeds.pop()
    rng = np.random.default_rng(seed)
    counts = seed_counts(s, n_boot, rng)
    point_lr = bootstrap_estimates(losses, lrs, np.ones((1, s)), method)[0]
    boot_lr = bootstrap_estimates(losses, lrs, counts, method)
    targets = np.asarray(targets, dtype=int)
    base_of = np.asarray(base_of, dtype=int)
    pred_point = point_lr[base_of] * scale
    estimate_ = agreement_metrics(point_lr[targets], pred_point[targets])
    labels = [targets[i] for i in range(len(targets))] if clusters is None else \
        [clusters[t] for t in targets]
    groups = list(dict.fromkeys(labels))
    members = [targets[[lab == g for lab in labels]] for g in groups]
    samples: dict[str, list[float]] = {k: [] for k in METRIC_NAMES}
    for b in range(n_boot if len(targets) else 0):
        meas = boot_lr[b]
        pred = meas[base_of] * scale
        idx = np.concatenate([members[j] for j in rng.integers(0, len(groups), size=len(groups))])
        ok = np.isfinite(meas[idx]) & np.isfinite(pred[idx])
        vals = agreement_metrics(meas[idx][ok], pred[idx][ok])
        for k in METRIC_NAMES:
            samples[k].append(vals[k])
    lo, hi, valid = {}, {}, {}
    kept = {k: np.asarray(samples[k], dtype=float) for k in METRIC_NAMES}
    for k in METRIC_NAMES:
        lo[k], hi[k], valid[k] = percentile_interval(kept[k])
        if valid[k] < MIN_VALID * n_boot:  # too few replicates hold: no interval
            lo[k] = hi[k] = math.nan
    floor, n_floor = noise_floor(losses, lrs, targets, method)
    return Agreement(estimate_, lo, hi, int(len(targets)), s, int(n_boot), int(seed), valid, kept,
                     n_clusters=len(groups), noise_floor=floor, n_floor=n_floor, method=method)


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
