"""Findings of notebook 06b: eq. 9 generalized per edge on CNNs whose edges mix kernel sizes."""

from __future__ import annotations

import math

from .core import Findings, _g, ci, plural

__all__ = ["mixed_kernels", "mixed_kernels_title"]

#: The eq. 9 readings compared, in the words the sentences use.
_READINGS = {"eq8": "eq. 9 per edge", "eq8_one_q": "one q for every edge (the majority kernel)",
             "eq8_mean_area": "the mean kernel area"}


def _overlap(a: dict, b: dict) -> bool:
    return not (a["lo"] > b["hi"] or b["lo"] > a["hi"])


def mixed_kernels(run) -> Findings:
    """Notebook 06b: the pooled error factor of eq. 9 generalized per edge with its interval and n,
    beside the noise floor; whether the data separate it from the two other readings of eq. 9 and
    how far apart their predictions lie at all; the best law; each family's eq. 9 score.

    ``run``: :class:`archscale.experiments.mixed_kernels.MixedKernels`.
    """
    f = Findings()
    if run.pooled_table.empty or "eq8" not in set(run.pooled_table["law"]):
        f.add("No law could be scored: every family needs two measured sizes with a finite optimum.")
        return f
    g = run.pooled("eq8")
    n, seeds = int(g["n"]), len(run.settings["seeds"])
    floor = run.pooled_floor
    families = f"{len(run.reports)} {'family' if len(run.reports) == 1 else 'families'}"
    head = (f"**Eq. 9 per edge** (the generalization to mixed kernel sizes) transfers each family's "
            f"smallest optimum to its larger sizes with error factor "
            f"×{ci(g['error_factor'], g['lo'], g['hi'])} (n = {plural(n, 'size')} over {families}, "
            f"{plural(seeds, 'seed')}; noise floor ×{_g(floor)})")
    if g["error_factor"] <= 1.5 or g["error_factor"] <= floor * 1.05:
        head += ": it predicts the optima as well as these seeds allow."
    elif g["lo"] > 2:
        side = "larger" if g["bias"] > 0 else "smaller"
        head += (f": **it misses them by more than ×2** (bias {g['bias']:+.2f} in ln LR: the optima are "
                 f"{side} than predicted).")
    else:
        head += ": above the noise floor, and the interval leaves open how far it misses."
    f.add(head)
    spread = run.spread()
    for other in ("eq8_one_q", "eq8_mean_area"):
        o = run.pooled(other)
        s = spread[spread["law"] == other] if not spread.empty else spread
        far = float(s["factor"].max()) if not s.empty else math.nan
        line = (f"Against {_READINGS[other]}: ×{ci(o['error_factor'], o['lo'], o['hi'])}; "
                + ("the intervals overlap, so this run does not separate the two readings"
                   if _overlap(g, o) else "the intervals do not overlap: the data separate them"))
        if math.isfinite(far):
            line += (f" (their predictions differ by at most ×{_g(far)} over the measured sizes"
                     + (", less than the noise floor: no run of this size could tell them apart)."
                        if far < floor else ")."))
        f.add(line)
    from ...experiments.mixed_kernels import LAW_LABELS

    def name(law: str) -> str:
        return LAW_LABELS.get(law, law.replace("_", " "))

    t = run.pooled_table.sort_values("error_factor")
    best = t.iloc[0]
    label = name(str(best["law"]))
    runner = t.iloc[1] if len(t) > 1 else None
    line = f"Lowest pooled error factor: {label}, ×{ci(best['error_factor'], best['lo'], best['hi'])}"
    if runner is not None:
        sep = runner["lo"] > best["hi"]
        line += (f"; separated from the runner-up {name(str(runner['law']))}" if sep else
                 f"; not separated from the runner-up {name(str(runner['law']))} "
                 f"(×{ci(runner['error_factor'], runner['lo'], runner['hi'])})")
    f.add(line + ".")
    parts = []
    for family, rep in run.reports.items():
        laws = rep.laws.set_index("law") if not rep.laws.empty else rep.laws
        if "eq8" in getattr(laws, "index", []):
            e = laws.loc["eq8"]
            parts.append(f"{family} ×{ci(e['error_factor'], e['ef_lo'], e['ef_hi'])} "
                         f"(n = {len(rep.sizes) - 1}, noise floor ×{_g(rep.noise_floor)})")
    if parts:
        f.add("Eq. 9 per edge by family: " + "; ".join(parts) + ".")
    return f


def mixed_kernels_title(run) -> str:
    """A figure title stating the finding: eq. 9 per edge's pooled error factor beside the other
    readings' and the noise floor."""
    if run.pooled_table.empty or "eq8" not in set(run.pooled_table["law"]):
        return "Mixed-kernel CNNs: no law could be scored"
    g, one, mean = run.pooled("eq8"), run.pooled("eq8_one_q"), run.pooled("eq8_mean_area")
    return (f"Mixed-kernel CNNs (n = {int(g['n'])} sizes): eq. 9 per edge off by "
            f"×{_g(g['error_factor'], 2)}, "
            f"one q ×{_g(one['error_factor'], 2)}, mean area ×{_g(mean['error_factor'], 2)} "
            f"(noise floor ×{_g(run.pooled_floor, 2)})")
