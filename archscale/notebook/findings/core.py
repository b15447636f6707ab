"""The shared pieces: :class:`Findings`, numbers in words, and how a law agrees with measured maximal LRs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tables import row_label

__all__ = ["GOOD_FACTOR", "MIN_BIAS", "MIN_RANKED", "Findings", "agreement_sentences", "agreement_title",
           "calibration_report", "calibration_title", "cap", "ci", "interval_side", "plural"]

#: Fewer items than this cannot decide a correlation or a ranking (r and tau swing over their range).
MIN_RANKED = 5
#: Fewer configurations than this cannot decide a bias (its interval rests on too few of them).
MIN_BIAS = 3
#: Factor by which a measured LR may miss its prediction and still count as "close" in a sentence.
GOOD_FACTOR = 1.5


@dataclass
class Findings:
    """Sentences stating what a run found; displayed as a Markdown list (also its plain text)."""

    items: list[str] = field(default_factory=list)

    def add(self, sentence: str) -> None:
        self.items.append(sentence)

    def markdown(self) -> str:
        return "\n".join(f"- {s}" for s in self.items)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return self.markdown()

    def __contains__(self, text: str) -> bool:
        return any(text in s for s in self.items)


# -- numbers in words --------------------------------------------------------------------------------

def _g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if x is not None and np.isfinite(x) else "n/a"


def plural(n: int, word: str) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def cap(text: str) -> str:
    """``text`` with its first letter upper case (the rest untouched: ``eq. 8`` -> ``Eq. 8``)."""
    return text[:1].upper() + text[1:]


def ci(est: float, lo: float, hi: float, digits: int = 3) -> str:
    """``est [lo, hi]``, or ``est (no interval)`` when the interval is missing."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{_g(est, digits)} (no interval)"
    return f"{_g(est, digits)} [{_g(lo, digits)}, {_g(hi, digits)}]"


def interval_side(lo: float, hi: float, value: float) -> str:
    """Where ``value`` lies against ``[lo, hi]``: ``inside``, ``below`` (< lo), ``above``, ``unknown``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "unknown"
    return "below" if value < lo else "above" if value > hi else "inside"


def _metric(agreement, name: str) -> tuple[float, float, float]:
    return agreement.estimate[name], agreement.lo[name], agreement.hi[name]


def _overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Whether the intervals of two (estimate, lo, hi) overlap (a missing interval counts as overlapping)."""
    if not all(np.isfinite(v) for v in (a[1], a[2], b[1], b[2])):
        return True
    return a[1] <= b[2] and b[1] <= a[2]


# -- agreement of a law with measured maximal LRs (notebooks 04-07) ------------------------------------

def agreement_sentences(comp, what: str, law: str = "eq. 8", paper: tuple[str, float] | None = None
                        ) -> list[str]:
    """What a :class:`~archscale.analysis.Comparison` says about ``law`` on ``what``, from its metrics.

    The ordering (log r), the typical miss (error factor, beside the noise floor), the bias (too
    high or too low, or not established) and, when given, the paper's own statistic beside this
    run's. With fewer than :data:`MIN_RANKED` non-base configurations the ordering is undecided.
    """
    a = comp.agreement
    n = a.n
    if n == 0:
        return [f"{what}: no non-base configuration has a measured maximal LR inside the grid, so this run "
                f"cannot score {law} at all."]
    r = _metric(a, "pearson_log")
    ef = _metric(a, "error_factor")
    bias = _metric(a, "bias")
    out = []
    if n < MIN_RANKED:
        order = (f"with so few this run cannot decide how well {law} orders them "
                 f"(log r {ci(*r, digits=2)})")
    elif interval_side(r[1], r[2], 0.0) == "below":
        order = f"{law} orders them: log r {ci(*r, digits=2)} (interval above 0)"
    else:
        order = (f"this run cannot tell {law}'s ordering from none: log r {ci(*r, digits=2)} (the interval "
                 f"contains 0)")
    floor = a.noise_floor
    floor_text = f"; a perfect law would score ×{_g(floor, 2)} on these data" if np.isfinite(floor) else ""
    sample = f"{plural(n, 'non-base configuration')}, {plural(a.n_seeds, 'seed')}"
    out.append(f"{what} ({sample}): {order}; a typical prediction misses by ×{ci(*ef, digits=2)}"
               f"{floor_text}.")
    side = interval_side(bias[1], bias[2], 1.0)
    if n < MIN_BIAS:
        out.append(f"With {plural(n, 'configuration')} this run cannot decide whether {law} predicts too "
                   f"high or too low (measured / predicted averages ×{ci(*bias, digits=2)}).")
    elif side == "above":  # 1 above the interval: measured below predicted
        out.append(f"{cap(law)} predicts too high: the measured maximal LR is ×{ci(*bias, digits=2)} of the "
                   f"prediction on average (the bias interval lies below 1).")
    elif side == "below":
        out.append(f"{cap(law)} predicts too low: the measured maximal LR is ×{ci(*bias, digits=2)} of the "
                   f"prediction on average (the bias interval lies above 1).")
    else:
        out.append(f"No bias is established: measured / predicted averages ×{ci(*bias, digits=2)}, an "
                   f"interval that contains 1.")
    if paper is not None:
        fig, value = paper
        out.append(f"The paper ({fig}, CIFAR-10) reports r = {value:.3f} (linear, base included); this run's "
                   f"same statistic is {_g(comp.pearson_r_with_base)}, on other data and at another scale.")
    return out


def agreement_title(comp, what: str, law: str = "eq. 8") -> str:
    """A figure title that states the finding: how far ``law`` misses on ``what``, or that n is too small.

    ``comp``: a :class:`~archscale.analysis.Comparison`, or an experiment (its first comparison).
    """
    if hasattr(comp, "comparisons"):
        comp = next(iter(comp.comparisons.values()))
    a = comp.agreement
    if a.n == 0:
        return f"{what}: no maximal LR inside the grid to score {law} on"
    ef = _metric(a, "error_factor")
    bias = _metric(a, "bias")
    side = interval_side(bias[1], bias[2], 1.0)
    lean = {"above": f", {law} too high", "below": f", {law} too low"}.get(side, "")
    if a.n < MIN_RANKED:
        return f"{what}: {law} misses by ×{_g(ef[0], 2)} on only {plural(a.n, 'graph')} (too few to decide)"
    return f"{what}: {law} misses by ×{_g(ef[0], 2)} [{_g(ef[1], 2)}, {_g(ef[2], 2)}]{lean} (n = {a.n})"


def calibration_title(cal, what: str, law: str = "eq. 8") -> str:
    """A calibration figure's title that states its finding (or that this run cannot decide it)."""
    new = _metric(cal.calibrated.agreement, "error_factor")
    old = _metric(cal.eq8.agreement, "error_factor")
    n = cal.eq8.agreement.n
    head = (f"{what} on {n} held-out configurations: calibrated ×{_g(new[0], 2)} against {law} "
            f"×{_g(old[0], 2)}")
    if len(cal.fit_graphs) <= 6:
        return f"{head} (fitted on {len(cal.fit_graphs)} graphs: too few to decide)"
    return f"{head} ({'the intervals overlap' if _overlap(new, old) else 'the intervals do not overlap'})"


def _deepest(comp) -> str | None:
    """The deepest chain's measured and predicted maximal LR (depth sweeps), in one clause."""
    t = comp.table[~comp.table["is_base"] & np.isfinite(comp.table["measured"])]
    if t.empty:
        return None
    row = t.loc[t["scale"].idxmin()]
    return (f"at the deepest graph ({row_label(row['graph'])}) the measured maximal LR is "
            f"{ci(row['measured'], row['measured_lo'], row['measured_hi'])} against "
            f"{_g(row['predicted'])} predicted (×{_g(row['measured'] / row['predicted'], 2)})")



def calibration_report(cal, law: str = "eq. 8", n_params: int = 3) -> str:
    """What a calibration cell prints: its full report, or one line when its fit cannot decide anything
    (``n_params`` fitted on ``2 n_params`` graphs or fewer)."""
    if isinstance(cal, Exception) or cal is None or len(cal.fit_graphs) <= 2 * n_params:
        return _calibration_sentence(cal, law, n_params)
    return cal.format()


def _calibration_sentence(cal, law: str = "eq. 8", n_params: int = 3) -> str:
    """Whether a law calibrated on some graphs beats ``law`` on the held-out ones, or cannot be decided."""
    if isinstance(cal, Exception) or cal is None:
        return f"No calibration on this sweep ({cal}): too few graphs with a measured optimum to fit on."
    n_fit = len(cal.fit_graphs)
    new = _metric(cal.calibrated.agreement, "error_factor")
    old = _metric(cal.eq8.agreement, "error_factor")
    if n_fit <= 2 * n_params:
        return (f"The calibration fits {n_params} parameters on {n_fit} graphs: this run cannot decide "
                f"whether a calibrated law beats {law} (held-out error factor {ci(*new, digits=2)} against "
                f"{ci(*old, digits=2)}).")
    n = cal.eq8.agreement.n
    if not _overlap(new, old):
        better = "the calibrated law" if new[0] < old[0] else law
        return (f"On {n} held-out configurations {better} predicts better: error factor "
                f"×{ci(*new, digits=2)} calibrated ({cal.fitted.describe()}) against ×{ci(*old, digits=2)} "
                f"for {law}.")
    return (f"On {n} held-out configurations the calibrated law ({cal.fitted.describe()}) scores "
            f"×{ci(*new, digits=2)} against {law}'s ×{ci(*old, digits=2)}: the intervals overlap, so the "
            f"calibration's gain is not established.")


