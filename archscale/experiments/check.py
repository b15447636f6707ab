"""``archscale check``: will the learning rate tuned on small members of a model family transfer?

A coordinate check says whether activations keep their scale; this says whether the *learning
rate* transfers, on the user's own family. ``make_model(**{name: size})`` builds a member at
each measured size; every member is swept over learning rates and seeds as one vectorized model
(:func:`~archscale.module.sweep.sweep_module`), with a grid placed from the previous size's
optimum and the laws' prediction and refined where the optimum is
(:func:`~archscale.sweep.refine.next_lrs`), its maximal LR estimated finer than the grid with an
interval (:mod:`~archscale.analysis.estimator`). Then:

* every law of :mod:`archscale.core.laws` that can read the family's graphs predicts the
  measured sizes from the smallest one; its error factor has an interval and sits beside the
  noise floor (the error a perfect law would show on these data);
* a power law ``eta ∝ size^b`` is fitted to the measured optima, ``b`` with a seed-bootstrap
  interval;
* the answer for ``target``: the LR of the best law that agrees with the measurements (error
  factor within ``good`` or within the noise floor), transferred from the largest measured size,
  else the fitted trend's; its interval is the seed-bootstrap interval of that prediction widened
  by the predictor's own error factor on the measured sizes. A plain sentence says when every law
  misses, and when the target lies far beyond the measured sizes.

Rows go to a crash-safe store (``runs_dir/check/<key>``), so a second call with the same
arguments reloads instead of training; ``budget`` (seconds) sizes the grid, refinement and data
to fit and stops refining when time runs out, and the report says what was sized down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.agreement import bootstrap_agreement, noise_floor, percentile_interval
from ..analysis.estimator import bootstrap_estimates, seed_counts
from ..analysis.maxlr import loss_matrix
from ..core import validate
from ..core.errors import ArchscaleError
from ..core.laws import LAWS, Law
from ..core.schema import SWEEP
from ..runs.store import ResultStore
from ..train import TrainConfig
from .check_measure import (
    DEFAULT_CENTER,
    FIRST_SPAN,
    NEXT_SPAN,
    Plan,
    as_int,
    build_model,
    factory_id,
    fit_budget,
    flattened,
    input_layout,
    law_scale,
    measure_member,
    parse_budget,
    parse_sizes,
    predicted_step,
    read_member,
    resolve_data,
    store_key,
    with_optimizer,
)

__all__ = ["CheckReport", "check", "parse_budget", "resolve_data"]




#: How many times beyond the largest measured size a target may lie before the answer is "too far".
FAR = 4.0


@dataclass
class CheckReport:
    """What :func:`check` measured and answers; ``format()``, ``to_dict()``, ``figure()``."""

    size_name: str
    sizes: list[float]
    target: float
    optimizer: str
    table: pd.DataFrame  # per measured size: max_lr, lo, hi, grid, edge, n_lrs, n_seeds
    laws: pd.DataFrame  # per law: error factor [lo, hi], noise floor, prediction at the target
    trend: dict  # exponent b [lo, hi], prediction at the target [lo, hi]
    recommended: float
    recommended_lo: float
    recommended_hi: float
    source: str  # the law or "trend" the recommendation comes from
    sentences: list[str]
    sized_down: list[str]
    config: dict
    noise_floor: float
    seconds: float
    budget: float | None
    runs: str
    target_curve: dict = field(default_factory=dict)

    def format(self) -> str:
        t = self.table.copy()
        t.insert(0, self.size_name, self.sizes)
        lines = [
            f"LR transfer check over {self.size_name} = {', '.join(f'{s:g}' for s in self.sizes)} "
            f"-> {self.target:g} ({self.optimizer}; {self.config['steps']} steps at batch "
            f"{self.config['batch_size']}, {self.config['n_train']} training samples, "
            f"{self.config['n_seeds']} seeds)",
            t.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
            "",
        ]
        if not self.laws.empty:
            lines += [
                "laws, transferred from the smallest size (noise floor "
                f"{self.noise_floor:.3g}: no law can score below it):",
                self.laws.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
                "",
            ]
        b = self.trend
        lines.append(f"trend: eta ∝ {self.size_name}^b, b = {b['b']:.3g} [{b['b_lo']:.3g}, {b['b_hi']:.3g}]")
        lines.append(
            f"recommended LR at {self.size_name} = {self.target:g}: {self.recommended:.4g} "
            f"[{self.recommended_lo:.4g}, {self.recommended_hi:.4g}] (from {self.source})"
        )
        lines += self.sentences
        if self.sized_down:
            lines.append("sized to the budget: " + "; ".join(self.sized_down))
        lines.append(
            f"took {self.seconds:.0f} s"
            + (f" of a {self.budget:.0f} s budget" if self.budget else "")
            + f"; rows in {self.runs} (a rerun reloads them)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.format())}</pre>"

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "size_name": self.size_name,
            "sizes": self.sizes,
            "target": self.target,
            "optimizer": self.optimizer,
            "config": self.config,
            "measured": [{k: clean(v) for k, v in r.items()} for r in self.table.to_dict(orient="records")],
            "laws": [{k: clean(v) for k, v in r.items()} for r in self.laws.to_dict(orient="records")],
            "trend": {k: clean(v) for k, v in self.trend.items()},
            "noise_floor": clean(self.noise_floor),
            "recommended": {
                "lr": self.recommended,
                "lo": clean(self.recommended_lo),
                "hi": clean(self.recommended_hi),
                "source": self.source,
            },
            "sentences": self.sentences,
            "sized_down": self.sized_down,
            "seconds": self.seconds,
            "budget": self.budget,
            "runs": self.runs,
        }

    def figure(self):
        """Measured optima with intervals against size, each law's line, the target's band."""
        from ..plots.check import check_figure

        return check_figure(
            self.size_name,
            self.sizes,
            self.table,
            self.laws,
            self.trend,
            self.target,
            (self.recommended, self.recommended_lo, self.recommended_hi),
            self.source,
        )


def check(
    make_model: Callable,
    sizes: Mapping,
    target: Mapping,
    data: object = "digits",
    *,
    optimizer: str = "sgd",
    budget: float | str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    config: TrainConfig | None = None,
    fixed: Mapping | None = None,
    lr_center: float | None = None,
    runs_dir: str | Path = "runs",
    good: float = 1.5,
    n_boot: int = 1000,
    device: str = "cpu",
    progress: bool = True,
    laws: Sequence[Law] | None = None,
) -> CheckReport:
    """Measure the optimum LR of ``make_model`` at ``sizes`` and answer for ``target`` (module docstring).

    ``sizes`` is ``{keyword: [values]}`` (e.g. ``{"depth": [1, 2, 4]}``), ``target`` ``{keyword:
    value}``; ``fixed`` are further keyword arguments of every call. ``config`` is the training
    protocol (default: one epoch at batch 32); ``optimizer`` ``sgd``, ``adam`` or ``adamw``.
    ``laws`` are the laws scored (default every law of :data:`~archscale.core.laws.LAWS`). A CNN
    family whose members mix kernel sizes is read per edge (:meth:`~archscale.core.laws.Law.scale`).
    """
    start = time.perf_counter()
    name, values, target_value = parse_sizes(sizes, target)
    if optimizer not in DEFAULT_CENTER:
        raise ArchscaleError(f"unknown optimizer {optimizer!r}; accepted: {', '.join(DEFAULT_CENTER)}")
    budget_s = parse_budget(budget)
    fixed = dict(fixed or {})
    seed_list = validate.int_list(seeds, "seeds", minimum=0, unique=True)
    if len(seed_list) < 3:
        raise ArchscaleError(f"give at least 3 seeds (an interval needs them); got {seed_list}")
    data_set = resolve_data(data)
    config = config or TrainConfig(epochs=1, batch_size=32)
    config = with_optimizer(config, optimizer)
    images = input_layout(
        build_model(make_model, name, values[0], fixed), data_set, f"make_model({name}={as_int(values[0])})"
    )
    members = [read_member(make_model, name, v, fixed, data_set, images) for v in values]
    goal = read_member(make_model, name, target_value, fixed, data_set, images)
    train_data = data_set if images else flattened(data_set)
    sized_down: list[str] = []
    plan = Plan(n_first=9, n_next=7, rounds=2, per_round=2)
    if budget_s is not None:
        train_data = fit_budget(
            plan, make_model, name, fixed, values, seed_list, train_data, config, budget_s, sized_down, device
        )
    key = store_key(
        {
            "factory": factory_id(make_model),
            "size": name,
            "fixed": fixed,
            "data": train_data.name,
            "n_train": train_data.n_train,
            "config": config.__dict__,
            "seeds": seed_list,
        }
    )
    store = ResultStore(Path(runs_dir) / "check" / key, SWEEP)
    store.check()
    meta = {
        "size_name": name,
        "sizes": values,
        "target": target_value,
        "optimizer": optimizer,
        "data": train_data.name,
        "n_train": train_data.n_train,
        "seeds": seed_list,
        "steps": config.total_steps(train_data.n_train),
        "batch_size": config.batch_size,
    }
    store.check_setup(
        {k: meta[k] for k in ("data", "n_train", "seeds", "steps", "batch_size", "optimizer")},
        "an LR transfer check",
        "runs_dir",
    )
    center = lr_center or DEFAULT_CENTER[optimizer]
    estimates: list = []
    with store.open() as writer:
        writer.write_meta(meta)
        for i, m in enumerate(members):
            if i == 0:
                grid = list(np.geomspace(center / FIRST_SPAN, center * FIRST_SPAN, plan.n_first))
            else:
                prev = estimates[-1].max_lr
                scale = predicted_step(members[i - 1], m)
                guess = prev * scale if math.isfinite(prev) else center
                grid = list(np.geomspace(guess / NEXT_SPAN, guess * NEXT_SPAN, plan.n_next))
            deadline = None if budget_s is None else start + budget_s
            estimates.append(
                measure_member(
                    writer,
                    store,
                    make_model,
                    name,
                    m,
                    fixed,
                    grid,
                    seed_list,
                    train_data,
                    config,
                    plan,
                    deadline,
                    sized_down,
                    device,
                    progress,
                )
            )
    rows = SWEEP.frame(store.scan().rows)
    return _report(
        name,
        members,
        goal,
        estimates,
        rows,
        seed_list,
        config,
        train_data,
        optimizer,
        good,
        n_boot,
        start,
        budget_s,
        sized_down,
        str(store.dir),
        list(LAWS.values()) if laws is None else list(laws),
    )


def _report(
    name,
    members,
    goal,
    estimates,
    rows,
    seeds,
    config,
    data,
    optimizer,
    good,
    n_boot,
    start,
    budget,
    sized_down,
    runs,
    laws_scored,
) -> CheckReport:
    """The table of estimates, the laws, the trend and the recommendation (module docstring)."""
    grids, mats = [], []
    for m in members:
        have = rows[rows["graph"] == m.label]
        lrs, losses = loss_matrix(have, "train_loss", seeds)
        grids.append(lrs)
        mats.append(losses)
    table = pd.DataFrame(
        [
            {
                "max_lr": e.max_lr,
                "lo": e.lo,
                "hi": e.hi,
                "grid_argmin": e.grid,
                "edge": e.edge,
                "n_lrs": len(g),
            }
            for e, g in zip(estimates, grids)
        ]
    )
    sizes = np.array([m.size for m in members], dtype=float)
    counts = seed_counts(len(seeds), n_boot, np.random.default_rng(0))
    boot = bootstrap_estimates(mats, grids, counts)  # (B, sizes), shared seed resamples
    point = table["max_lr"].to_numpy(float)
    floor, _ = noise_floor(mats, grids, list(range(1, len(members))))

    # the trend: ln eta = a + b ln size, refitted on every resample
    def fit(y: np.ndarray) -> tuple[float, float]:
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() < 2:
            return math.nan, math.nan
        b, a = np.polyfit(np.log(sizes[ok]), np.log(y[ok]), 1)
        return float(a), float(b)

    a, b = fit(point)
    fits = np.array([fit(row) for row in boot])
    b_lo, b_hi, _ = percentile_interval(fits[:, 1]) if len(members) >= 3 else (math.nan, math.nan, 0)
    trend_pred = math.exp(a + b * math.log(goal.size)) if math.isfinite(a) else math.nan
    trend_boot = np.exp(fits[:, 0] + fits[:, 1] * math.log(goal.size))
    t_lo, t_hi, _ = percentile_interval(trend_boot)
    trend_ef = _error_factor(point, np.exp(a + b * np.log(sizes)))
    trend = {
        "b": b,
        "b_lo": b_lo,
        "b_hi": b_hi,
        "prediction": trend_pred,
        "lo": t_lo,
        "hi": t_hi,
        "error_factor": trend_ef,
    }
    law_rows = []
    base = members[0]
    for law in laws_scored:
        scales = np.array([law_scale(law, m, base) for m in members])
        if not np.all(np.isfinite(scales)) or len(members) < 2:
            continue
        agreement = bootstrap_agreement(
            mats, grids, [0] * len(members), scales, list(range(1, len(members))), n_boot=n_boot, seed=0
        )
        last = members[-1]
        to_goal = law_scale(law, goal, last)
        pred = point[-1] * to_goal if math.isfinite(to_goal) else math.nan
        est = agreement.estimate["error_factor"]
        law_rows.append(
            {
                "law": law.name,
                "error_factor": est,
                "ef_lo": agreement.lo["error_factor"],
                "ef_hi": agreement.hi["error_factor"],
                "bias": agreement.estimate["bias"],
                "agrees": bool(math.isfinite(est) and (est <= good or est <= floor * 1.05)),
                "prediction": pred,
                "at_sizes": list(point[0] * scales),
                "_to_goal": to_goal,
            }
        )
    laws = pd.DataFrame(law_rows)
    sentences = []
    agreeing = laws[laws["agrees"]].sort_values("error_factor") if not laws.empty else laws
    if not laws.empty and not agreeing.empty:
        best = agreeing.iloc[0]
        source, rec, ef = str(best["law"]), float(best["prediction"]), float(best["error_factor"])
        last_lo, last_hi = table["lo"].iloc[-1], table["hi"].iloc[-1]
        lo = (last_lo if math.isfinite(last_lo) else point[-1]) * best["_to_goal"] / max(ef, 1.0)
        hi = (last_hi if math.isfinite(last_hi) else point[-1]) * best["_to_goal"] * max(ef, 1.0)
        sentences.append(
            f"{source} agrees with the measured sizes (error factor {ef:.3g}, noise floor "
            f"{floor:.3g}): its transfer from {members[-1].label} is the answer."
        )
    else:
        source, rec = "trend", trend_pred
        ef = trend_ef if math.isfinite(trend_ef) else 1.0
        lo, hi = t_lo / max(ef, 1.0), t_hi * max(ef, 1.0)
        unread = next((m.why_no_graph for m in members if m.dag is None), None)
        why = (
            "archscale cannot read this family's graphs (" + (unread or "no graph") + ")"
            if laws.empty or (unread and len(laws) == 1)
            else "the measured sizes disagree with every law (error factors "
            + ", ".join(f"{r.law} {r.error_factor:.3g}" for r in laws.itertuples())
            + f"; noise floor {floor:.3g})"
        )
        sentences.append(f"{why}: the answer comes from the fitted trend eta ∝ {name}^{b:.3g}.")
    ratio = goal.size / members[-1].size
    if ratio > FAR or ratio < 1 / FAR:
        sentences.append(
            f"the target is {ratio:.3g}x the largest measured {name}: an extrapolation this long is "
            f"not to be trusted; measure a size closer to it."
        )
    edges = [m.label for m, e in zip(members, estimates) if e.edge]
    if edges:
        sentences.append(
            f"the optimum of {', '.join(edges)} sits at its grid's edge: its estimate is only a bound."
        )
    cfg = {
        "steps": config.total_steps(data.n_train),
        "batch_size": config.batch_size,
        "n_train": data.n_train,
        "n_seeds": len(seeds),
        "optimizer": optimizer,
    }
    laws = laws.drop(columns=["_to_goal"]) if not laws.empty else laws
    return CheckReport(
        name,
        [float(s) for s in sizes],
        float(goal.size),
        optimizer,
        table,
        laws,
        trend,
        float(rec),
        float(lo),
        float(hi),
        source,
        sentences,
        sized_down,
        cfg,
        float(floor),
        time.perf_counter() - start,
        budget,
        runs,
    )


def _error_factor(measured: np.ndarray, predicted: np.ndarray) -> float:
    ok = np.isfinite(measured) & np.isfinite(predicted) & (measured > 0) & (predicted > 0)
    if not ok.any():
        return math.nan
    return float(math.exp(math.sqrt(float(np.mean(np.log(measured[ok] / predicted[ok]) ** 2)))))

