"""Ranking statistics of the NAS study: Kendall tau of top-K% sets, paired gains, recipe comparisons."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import validate
from ..core.errors import ArchscaleError
from .study import accuracy_table

__all__ = ["GainEstimate", "RecipeComparison", "compare_recipes", "comparison_table", "kendall_tau",
           "mean_gain", "paired_differences", "pairwise_gaps", "rank_stability", "recipe_summary",
           "seed_noise", "tie_ranks", "topk_kendall", "topk_pairwise_gap"]


def _pair_arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ArchscaleError(f"the two score lists must have the same length, got {a.size} and {b.size}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ArchscaleError("scores contain NaN; drop those architectures first")
    return a, b


#: Two scores closer than this fraction of the larger magnitude in a list are a tie. Accuracies are
#: multiples of 1/n_test (>= 1e-6 apart for any real test set); float noise is ~1e-16.
TIE_TOLERANCE = 1e-9


def tie_ranks(x) -> np.ndarray:
    """Dense ranks of ``x`` in which values equal up to :data:`TIE_TOLERANCE` (relative) share a rank.

    Rankings then do not depend on the scale the scores come in: fractions and percentages of the
    same accuracies (``a`` and ``100 * a``) give the same ranks, so the same ties.
    """
    x = np.asarray(x, dtype=float).ravel()
    if x.size == 0:
        return x
    order = np.argsort(x, kind="stable")
    tol = TIE_TOLERANCE * max(float(np.max(np.abs(x))), np.finfo(float).tiny)
    steps = np.diff(x[order]) > tol
    ranks = np.empty(x.size)
    ranks[order] = np.concatenate([[0], np.cumsum(steps)])
    return ranks


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (``scipy.stats.kendalltau``) between two score lists, ties from :func:`tie_ranks`.

    NaN when it is undefined: fewer than two items, or every item tied in one of the lists.
    """
    from scipy import stats

    a, b = _pair_arrays(a, b)
    ra, rb = tie_ranks(a), tie_ranks(b)
    if a.size < 2 or np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(stats.kendalltau(ra, rb, variant="b").statistic)


def _topk_sets(n: int, ks: Sequence[float], min_n: int) -> list[tuple[float, str, int]]:
    """``(k, label, size)`` per distinct top-K% set: ``ceil(K% * n)`` items, at least ``min_n``.

    K values that select the same number of items select the same set; they share one entry
    labelled with all of them (``"10/5/1"``), ``k`` the largest.
    """
    out: list[tuple[float, str, int]] = []
    for k in sorted({float(k) for k in ks}, reverse=True):
        if not 0 < k <= 100:
            raise ArchscaleError(f"top-K percentages must be in (0, 100], got {k!r}")
        m = min(n, max(min_n, math.ceil(n * k / 100 - 1e-9)))
        if out and out[-1][2] == m:
            out[-1] = (out[-1][0], f"{out[-1][1]}/{k:g}", m)
        else:
            out.append((k, f"{k:g}", m))
    return out


def _why_undefined(a: np.ndarray, b: np.ndarray) -> str:
    if a.size < 2:
        return "undefined: fewer than 2 cells"
    tied = [name for name, x in (("first", a), ("second", b)) if np.ptp(tie_ranks(x)) == 0]
    return f"undefined: all {a.size} cells tie in the {' and '.join(tied)} ranking"


def topk_kendall(acc_a, acc_b, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), *, by: str = "a",
                 min_n: int = 3) -> pd.DataFrame:
    """Kendall tau between two rankings restricted to the top-K% architectures.

    The top K% are chosen by ``acc_a`` (``by="a"``, the reference ranking, e.g. the benchmark's
    fixed recipe) or by ``acc_b``; ``ceil(K% * n)`` architectures, at least ``min_n``. K values
    that select the same set are one row (``k`` the largest of them, ``ks`` all of them), so a
    small sample does not show one measurement as several points. Columns ``k``, ``ks``, ``n``,
    ``tau`` and ``note`` (why tau is undefined, when it is NaN).
    """
    a, b = _pair_arrays(acc_a, acc_b)
    validate.choice(by, "by", ("a", "b"))
    validate.integer(min_n, "min_n", minimum=2)
    order = np.argsort(-tie_ranks(a if by == "a" else b), kind="stable")
    rows = []
    for k, label, m in _topk_sets(a.size, ks, min_n):
        top = order[:m]
        tau = kendall_tau(a[top], b[top])
        rows.append({"k": k, "ks": label, "n": m, "tau": tau,
                     "note": "" if np.isfinite(tau) else _why_undefined(a[top], b[top])})
    return pd.DataFrame(rows, columns=["k", "ks", "n", "tau", "note"])


def pairwise_gaps(acc) -> np.ndarray:
    """``|acc_i - acc_j|`` for every pair ``i < j`` of architectures."""
    acc = np.asarray(acc, dtype=float).ravel()
    i, j = np.triu_indices(acc.size, k=1)
    return np.abs(acc[i] - acc[j])


def topk_pairwise_gap(acc, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), min_n: int = 2) -> pd.DataFrame:
    """Mean pairwise accuracy gap among the top-K% architectures of ``acc`` (Fig. 4 right).

    Smaller gaps mean the recipe makes the best architectures less distinguishable.
    Returns columns ``k``, ``ks``, ``n``, ``mean_gap`` (one row per distinct set, as :func:`topk_kendall`).
    """
    acc = np.asarray(acc, dtype=float).ravel()
    order = np.argsort(-tie_ranks(acc), kind="stable")
    rows = []
    for k, label, m in _topk_sets(acc.size, ks, min_n):
        gaps = pairwise_gaps(acc[order[:m]])
        mean_gap = float(gaps.mean()) if gaps.size else float("nan")
        rows.append({"k": k, "ks": label, "n": m, "mean_gap": mean_gap})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class GainEstimate:
    """Mean paired gain ``new - old`` with a ``confidence`` interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float
    method: str

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.mean:+.3g} ({pct}% {self.method} CI [{self.lo:+.3g}, {self.hi:+.3g}], n={self.n})"


def mean_gain(new, old, *, confidence: float = 0.95, method: str = "bootstrap", n_boot: int = 10_000,
              seed: int = 0) -> GainEstimate:
    """Mean of the paired differences ``new - old`` with a bootstrap-percentile or Student-t interval.

    The bootstrap resamples architectures with replacement (``n_boot`` draws from ``seed``).
    """
    new, old = _pair_arrays(new, old)
    validate.choice(method, "method", ("bootstrap", "t"))
    if not 0 < confidence < 1:
        raise ArchscaleError(f"confidence must be in (0, 1), got {confidence!r}")
    d = new - old
    n = d.size
    if n < 2:
        raise ArchscaleError(f"a gain interval needs at least 2 paired architectures, got {n}")
    mean = float(d.mean())
    alpha = 1 - confidence
    if method == "t":
        from scipy import stats

        half = float(stats.t.ppf(1 - alpha / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
        lo, hi = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(validate.positive_int(n_boot, "n_boot"), n))].mean(axis=1)
        lo, hi = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    return GainEstimate(mean, lo, hi, n, confidence, method)


def rank_stability(results: pd.DataFrame, ks: Sequence[float] = (100, 50, 20, 10, 5, 1), *,
                   reference: str = "fixed", others: Sequence[str] = ("archscale",),
                   metric: str = "test_acc", min_n: int = 3) -> pd.DataFrame:
    """Top-K% Kendall taus across seeds (within each recipe) and across recipes (Fig. 9).

    Across recipes: seed-averaged ``reference`` versus each of ``others``. Across seeds: every
    pair of seeds within ``reference`` and within each of ``others``. The top K% are chosen by
    the first ranking of each pair. Columns: ``comparison``, ``kind``, ``recipe``, ``k``, ``n``,
    ``tau``.
    """
    frames = []
    mean = accuracy_table(results, metric)
    for other in others:
        for name in (reference, other):
            if name not in mean.columns:
                raise ArchscaleError(f"recipe {name!r} is not in the results; "
                                     f"found {', '.join(mean.columns)}")
        both = mean[[reference, other]].dropna()
        frames.append(topk_kendall(both[reference], both[other], ks, min_n=min_n).assign(
            comparison=f"{other} vs {reference} (seed mean)", kind="across recipes", recipe=other))
    seeds = sorted(results["seed"].unique())
    for recipe in (reference, *others):
        sub = results[results["recipe"] == recipe]
        per_seed = sub.pivot_table(index="graph", columns="seed", values=metric, aggfunc="mean")
        for s1, s2 in itertools.combinations(seeds, 2):
            if s1 not in per_seed.columns or s2 not in per_seed.columns:
                continue
            pair = per_seed[[s1, s2]].dropna()
            frames.append(topk_kendall(pair[s1], pair[s2], ks, min_n=min_n).assign(
                comparison=f"{recipe}: seed {s1} vs {s2}", kind="across seeds", recipe=recipe))
    if not frames:
        raise ArchscaleError("no comparisons could be made; the results need two recipes or two seeds")
    out = pd.concat(frames, ignore_index=True)
    labels = ["comparison", "kind", "recipe"]
    return out[labels + [c for c in out.columns if c not in labels]]


def paired_differences(results: pd.DataFrame, new: str, old: str, metric: str = "test_acc", *,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per cell, ``new - old`` in percentage points over the seeds both recipes trained.

    Columns: graph, ``old`` and ``new`` (seed-mean accuracy, %), ``diff`` (mean paired
    difference), ``lo``/``hi`` (Student-t interval over the seeds; NaN with one seed), ``n_seeds``.
    Rows are sorted by ``old``'s accuracy.
    """
    from scipy import stats

    sub = results[results["recipe"].isin([new, old])]
    wide = sub.pivot_table(index=["graph", "seed"], columns="recipe", values=metric, aggfunc="mean")
    if new not in wide.columns or old not in wide.columns:
        raise ArchscaleError(f"recipes {new!r} and {old!r} must both be in the results; "
                             f"found {', '.join(sorted(results['recipe'].unique()))}")
    wide = (wide[[old, new]] * 100).dropna()
    wide["d"] = wide[new] - wide[old]
    rows = []
    for graph, g in wide.groupby(level="graph"):
        d = g["d"].to_numpy()
        n = d.size
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 \
            else math.nan
        rows.append({"graph": graph, old: float(g[old].mean()), new: float(g[new].mean()),
                     "diff": float(d.mean()), "lo": float(d.mean()) - half, "hi": float(d.mean()) + half,
                     "n_seeds": n})
    return pd.DataFrame(rows).sort_values(old).reset_index(drop=True)


def seed_noise(results: pd.DataFrame, recipe: str, ks: Sequence[float], *, metric: str = "test_acc",
               min_n: int = 3) -> pd.DataFrame:
    """The noise floor of a ranking: Kendall tau between every pair of one recipe's seeds, per top-K% set.

    Columns: ``k``, ``ks``, ``n``, ``tau_mean``, ``tau_min``, ``tau_max``, ``pairs`` (seed pairs
    with a defined tau). A recipe-vs-recipe tau inside this band is as far as changing the seed goes.
    """
    per_seed = results[results["recipe"] == recipe].pivot_table(index="graph", columns="seed", values=metric,
                                                                  aggfunc="mean")
    pairs = [per_seed[[a, b]].dropna() for a, b in itertools.combinations(per_seed.columns, 2)]
    frames = [topk_kendall(p.iloc[:, 0], p.iloc[:, 1], ks, min_n=min_n) for p in pairs if len(p) >= 2]
    if not frames:
        return pd.DataFrame(columns=["k", "ks", "n", "tau_mean", "tau_min", "tau_max", "pairs"])
    both = pd.concat(frames)
    out = both.groupby(["k", "ks", "n"], sort=False)["tau"].agg(
        tau_mean="mean", tau_min="min", tau_max="max", pairs="count").reset_index()
    return out


@dataclass(frozen=True)
class RecipeComparison:
    """Everything Fig. 4 (or Fig. 8) shows about recipe ``new`` against recipe ``old``.

    ``accuracy``: per cell, seed-mean test accuracy in percent (columns ``old``, ``new``);
    ``per_cell``: :func:`paired_differences`; ``gain``: mean paired gain in percentage points over
    cells (bootstrap interval); ``topk``: Kendall tau for the top K% by ``old`` (columns k, ks, n,
    tau, note); ``noise``: :func:`seed_noise` of ``old`` (its own seed-vs-seed taus, the floor a
    re-ranking must clear); ``gaps``: mean pairwise gap among each recipe's own top K%;
    ``diverged``: diverged runs per recipe.
    """

    new: str
    old: str
    accuracy: pd.DataFrame
    gain: GainEstimate
    topk: pd.DataFrame
    gaps: pd.DataFrame
    diverged: dict
    per_cell: pd.DataFrame
    noise: pd.DataFrame

    def summary(self) -> str:
        noise = self.noise.set_index("ks")
        parts = []
        for r in self.topk.itertuples():
            tau = f"{r.tau:+.2f}" if np.isfinite(r.tau) else r.note
            floor = (f" (seed-vs-seed {noise.loc[r.ks, 'tau_mean']:+.2f} [{noise.loc[r.ks, 'tau_min']:+.2f}, "
                     f"{noise.loc[r.ks, 'tau_max']:+.2f}])" if r.ks in noise.index else "")
            parts.append(f"top {r.ks}% (n={r.n}): {tau}{floor}")
        better = int((self.per_cell["lo"] > 0).sum())
        worse = int((self.per_cell["hi"] < 0).sum())
        return (f"{self.new} vs {self.old} on {len(self.accuracy)} cells: mean test-accuracy gain "
                f"{self.gain} percentage points; per cell (t-interval over seeds): {better} better, "
                f"{worse} worse, "
                f"{len(self.per_cell) - better - worse} indistinguishable; Kendall tau "
                + "; ".join(parts))


def compare_recipes(results: pd.DataFrame, new: str = "archscale", old: str = "fixed", *,
                    ks: Sequence[float] = (100, 50, 20, 10, 5, 1), min_n: int = 3, confidence: float = 0.95,
                    n_boot: int = 10_000, seed: int = 0) -> RecipeComparison:
    """Compare two recipes on the cells both trained: gains per cell and overall, top-K% taus beside
    ``old``'s own seed-vs-seed taus, and pairwise gaps."""
    table = accuracy_table(results) * 100
    for name in (new, old):
        if name not in table.columns:
            raise ArchscaleError(f"recipe {name!r} is not in the results; found {', '.join(table.columns)}")
    acc = table[[old, new]].dropna()
    if len(acc) < 2:
        raise ArchscaleError(f"only {len(acc)} cell(s) were trained with both {old!r} and {new!r}; need >= 2")
    gain = mean_gain(acc[new], acc[old], confidence=confidence, n_boot=n_boot, seed=seed)
    topk = topk_kendall(acc[old], acc[new], ks, by="a", min_n=min_n)
    gap_old = topk_pairwise_gap(acc[old], ks)
    gap_new = topk_pairwise_gap(acc[new], ks)
    gaps = pd.DataFrame({"k": gap_old["k"], "ks": gap_old["ks"], "n": gap_old["n"],
                         old: gap_old["mean_gap"], new: gap_new["mean_gap"]})
    div = results.groupby("recipe")["diverged"].sum()
    diverged = {r: int(div.get(r, 0)) for r in (old, new)}
    per_cell = paired_differences(results, new, old, confidence=confidence)
    noise = seed_noise(results[results["graph"].isin(acc.index)], old, ks, min_n=min_n)
    return RecipeComparison(new, old, acc, gain, topk, gaps, diverged, per_cell, noise)


def comparison_table(comparisons: Sequence[RecipeComparison]) -> pd.DataFrame:
    """One row per comparison: cells, mean gain (pp) with its interval, tau of all and of the top K%."""
    rows = []
    for c in comparisons:
        last = c.topk.iloc[-1]
        rows.append({"comparison": f"{c.new} vs {c.old}", "cells": len(c.accuracy),
                     "mean gain (pp)": c.gain.mean, "CI low": c.gain.lo, "CI high": c.gain.hi,
                     "tau all": float(c.topk["tau"].iloc[0]), "top K% (smallest)": last["ks"],
                     "n top": int(last["n"]), "tau top": float(last["tau"])})
    return pd.DataFrame(rows)


def recipe_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: runs, mean LR, mean final train loss and test accuracy, diverged runs.

    (The rows' ``seconds`` are left out: they change from run to run, the rest does not.)"""
    return results.groupby("recipe").agg(
        runs=("test_acc", "size"), mean_lr=("lr", "mean"), train_loss=("train_loss", "mean"),
        test_acc=("test_acc", "mean"), diverged=("diverged", "sum"))
