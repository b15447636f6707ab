"""Measured maximal learning rates against eq. 8/9's predictions, with honest agreement metrics.

:func:`compare` transfers the base network's measured maximal LR to every configuration with
:func:`archscale.core.scaling.lr_scale` and scores the predictions with
:mod:`~archscale.analysis.agreement` (log scale, base excluded, bootstrap intervals over seeds and
configurations). The linear Pearson r that includes the base (as the paper reports it) is kept
as a secondary, labelled figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import convention, lr_scale
from .agreement import Agreement, _none, bootstrap_agreement
from .agreement import _fmt as _f
from .estimator import DEFAULT_METHOD
from .maxlr import loss_matrix, max_lr

__all__ = ["NAMED_RECIPES", "RECIPE_LEVELS", "Comparison", "Measured", "Rule", "compare", "eq8_rule",
           "measure", "recipe_name", "recipe_of"]

#: Columns that name how a sweep's networks were built and initialized.
RECIPE_COLUMNS = ("layout", "init", "readout")


def recipe_of(results: pd.DataFrame) -> dict[str, str]:
    """The recipe the rows were actually trained with (``layout``, ``init``, ``readout``), from the rows.

    A column holding several values gives them joined with ``+``; a missing column gives ``"?"``.
    """
    out = {}
    for col in RECIPE_COLUMNS:
        values = sorted(map(str, results[col].unique())) if col in results.columns else ["?"]
        out[col] = "+".join(values)
    return out


#: Each recipe level by what it does (the glossary's words, ``archscale.notebook.tables.GLOSSARY``).
RECIPE_LEVELS: dict[str, dict[str, str]] = {
    "layout": {"paper": "paper layout", "reference": "reference layout"},
    "init": {"archscale": "target in-degree init", "source": "source in-degree init",
             "reference": "reference-code init", "he": "He init"},
    "readout": {"mean_field": "mean-field readout", "standard": "standard readout",
                "reference": "reference-code readout"},
}
#: Whole recipes that have a name of their own.
NAMED_RECIPES: dict[tuple[str, str, str], str] = {
    ("paper", "archscale", "mean_field"): "the paper's stated recipe",
    ("reference", "reference", "reference"): "the reference code's recipe",
}


def recipe_name(recipe: dict[str, str]) -> str:
    """A recipe (``layout``, ``init``, ``readout``) by what it does: its own name when it has one
    (:data:`NAMED_RECIPES`), else its levels joined (``paper layout + target in-degree init + ...``)."""
    key = tuple(recipe.get(c, "?") for c in RECIPE_COLUMNS)
    if key in NAMED_RECIPES:
        return NAMED_RECIPES[key]
    return " + ".join(RECIPE_LEVELS.get(c, {}).get(recipe.get(c, "?"), f"{c} {recipe.get(c, '?')}")
                      for c in RECIPE_COLUMNS)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Comparison:
    """Measured versus predicted maximal LR per configuration, and how well they agree.

    ``table``: one row per configuration (graph, width, kernel_size, act, scale, measured with
    its seed interval and grid argmin ``measured_grid``, predicted, ``edge``/``at_edge``,
    ``scored``, is_base). ``agreement``: the metrics of :mod:`~archscale.analysis.agreement` on
    the non-base configurations with their intervals; configurations whose maximal LR sits at a
    grid edge are left out by default (``n_edge`` of them), as their measurement is only a bound.
    ``pearson_r_with_base``: the linear Pearson r over every configuration including the base, as
    the paper reports it (secondary: the base matches by construction and dominates it).
    ``recipe``: layout, init and readout as read from the rows.
    """

    table: pd.DataFrame
    agreement: Agreement
    pearson_r_with_base: float
    base: str
    offset: int
    metric: str = "train_loss"
    recipe: dict = field(default_factory=dict)
    n_edge: int = 0
    edges_scored: bool = False

    @property
    def n(self) -> int:
        """Non-base configurations with a finite measurement: the sample behind every metric."""
        return self.agreement.n

    @property
    def pearson_r_log(self) -> float:
        """Pearson r of log LRs without the base (the headline correlation)."""
        return self.agreement.estimate["pearson_log"]

    def recipe_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.recipe.items())

    def headline(self) -> str:
        """One line for figure titles: log r with its interval, error factor, bias, n."""
        a = self.agreement
        return (f"log r = {_f(a.estimate['pearson_log'])} [{_f(a.lo['pearson_log'])}, "
                f"{_f(a.hi['pearson_log'])}], error ×{_f(a.estimate['error_factor'], 2)} "
                f"(floor ×{_f(a.noise_floor, 2)}), bias ×{_f(a.estimate['bias'], 2)}, n = {a.n}")

    def to_dict(self) -> dict:
        """JSON-ready: the metrics, settings and one row per configuration; each row also names its
        maximal LR as ``max_lr``/``max_lr_lo``/``max_lr_hi``/``max_lr_grid`` (as ``archscale.max_lr``)."""
        t = self.table
        named = t.assign(max_lr=t["measured"], max_lr_lo=t["measured_lo"], max_lr_hi=t["measured_hi"],
                         max_lr_grid=t["measured_grid"])
        table = named.astype(object).where(named.notna(), None).to_dict(orient="records")
        return {**self.agreement.to_dict(), "pearson_r_with_base": _none(self.pearson_r_with_base),
                "base": self.base, "offset": self.offset, "metric": self.metric, "recipe": self.recipe,
                "n_edge": self.n_edge, "edges_scored": self.edges_scored, "table": table}

    def format(self, table: bool = True) -> str:
        """A plain-text table (``table=False``: without it), the agreement metrics with intervals, and the
        settings they rest on."""
        cols = ["graph", "width", "kernel_size", "act", "scale", "measured", "measured_lo", "measured_hi",
                "predicted"]
        t = self.table[cols].copy()
        if (t["kernel_size"] == 0).all():
            t = t.drop(columns="kernel_size")
        t["note"] = np.where(self.table["is_base"], "base", "") + \
            self.table["edge"].map(lambda e: f" edge:{e}" if e else "").to_numpy(str)
        text = t.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        lines = ([text] if table else []) + [self.agreement.format(),
                 f"secondary: linear Pearson r including the base = {_f(self.pearson_r_with_base)} "
                 f"(n = {int(np.isfinite(self.table['measured']).sum())})",
                 f"base {self.base!r}, depth offset {self.offset}, metric {self.metric}; "
                 f"recipe: {recipe_name(self.recipe)} ({self.recipe_text()})"]
        if self.n_edge:
            how = "scored anyway" if self.edges_scored else "left out of the metrics"
            lines.append(f"edge:low/high: {self.n_edge} configuration(s) whose maximal LR or its interval "
                         f"reaches the grid's end ({how}): the true maximum may lie outside the grid")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


@dataclass
class Measured:
    """What a sweep measured, ready to be set against any rule: one row per configuration.

    ``table`` holds graph, width, kernel_size, act, measured (with its seed interval
    measured_lo/hi), at_edge, is_base and ``base_row`` (the row of the base it transfers from);
    ``losses``/``lrs`` hold each configuration's seeds x LRs losses (``inf`` where a run
    diverged) on one shared seed order, for the bootstrap. ``base_kernel[(width, act)]`` is the
    base's kernel; ``method`` the estimator's method (:mod:`~archscale.analysis.estimator`).
    """

    table: pd.DataFrame
    losses: list[np.ndarray]
    lrs: list[np.ndarray]
    arch: str
    base: Dag
    base_kernel: dict
    metric: str
    recipe: dict
    method: str = DEFAULT_METHOD
    edges: bool = False  # whether comparisons score configurations whose max LR sits at a grid edge

    def dag(self, code: str) -> Dag:
        return Dag.parse(code, ops=self.arch)

    def log_target(self, graphs: set[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The non-base configurations of ``graphs`` with a finite measurement, and what a law's
        depth term must explain there: ``ln(measured / measured_base)`` less eq. 9's kernel factor
        ``ln(q_base / q)`` for CNNs (the one log-LR target the calibration and the laws fit);
        configurations at a grid edge only when :attr:`edges`."""
        t = self.table
        rows = t[t["graph"].isin(graphs) & ~t["is_base"] & np.isfinite(t["measured"])
                 & (self.edges | ~t["at_edge"])]
        y = np.log(rows["measured"].to_numpy(float)) - np.log(t["measured"].to_numpy(float)[rows["base_row"]])
        if convention(self.arch).uses_kernel:
            qb = np.array([self.base_kernel[(w, a)] for w, a in zip(rows["width"], rows["act"])], dtype=float)
            y = y - np.log(qb / rows["kernel_size"].to_numpy(float))
        return rows, y


def measure(results: pd.DataFrame, base: str = "1", metric: str = "train_loss", *, n_boot: int = 1000,
            seed: int = 0, method: str = DEFAULT_METHOD, edges: bool = False) -> Measured:
    """Every configuration's measured maximal LR and the base it transfers from (see :class:`Measured`).

    The base is the graph ``base`` at the same width and activation, with kernel 3 for CNNs when
    swept (else the smallest kernel swept). ``method`` picks the estimator; ``edges`` whether the
    comparisons built on this measurement score configurations at a grid edge.
    """
    m = max_lr(results, metric, n_boot=n_boot, seed=seed, method=method)
    archs = m["arch"].unique()
    if len(archs) != 1:
        raise ArchscaleError(f"results mix architectures {sorted(archs)}; compare one arch at a time")
    arch = str(archs[0])
    conv = convention(arch)
    try:
        base_dag = Dag.parse(base, ops=arch)
    except ValueError as err:
        raise ArchscaleError(f"base {base!r}: {err}") from None
    rows: list[dict]
    rows, base_row, base_kernel = [], {}, {}
    for (width, act), group in m.groupby(["width", "act"], sort=True):
        base_rows = group[group["graph"] == base_dag.code]
        if base_rows.empty:
            raise ArchscaleError(f"the base graph {base_dag.code!r} is not in the results (width {width}, "
                                 f"act {act}); add it to the spec's graphs")
        kernels = sorted(base_rows["kernel_size"])
        base_kernel[(width, act)] = conv.base_kernel if conv.base_kernel in kernels else kernels[0]
        for _, r in group.iterrows():
            is_base = r["graph"] == base_dag.code and int(r["kernel_size"]) == int(base_kernel[(width, act)])
            if is_base:
                base_row[(width, act)] = len(rows)
            rows.append({"graph": r["graph"], "width": int(width), "kernel_size": int(r["kernel_size"]),
                         "act": act, "measured": r["max_lr"], "measured_lo": r["max_lr_lo"],
                         "measured_hi": r["max_lr_hi"], "measured_grid": r["max_lr_grid"],
                         "edge": r["edge"], "at_edge": bool(r["at_edge"]), "method": r["method"],
                         "n_valid": int(r["n_valid"]), "is_base": bool(is_base)})
    table = pd.DataFrame(rows)
    table["base_row"] = [base_row[(w, a)] for w, a in zip(table["width"], table["act"])]
    seeds = sorted(results["seed"].unique())
    groups = dict(list(results.groupby(["graph", "width", "kernel_size", "act"], sort=False)))
    losses, lrs = [], []
    for r in table.itertuples():
        grid, mat = loss_matrix(groups[(r.graph, r.width, r.kernel_size, r.act)], metric, seeds)
        losses.append(mat)
        lrs.append(grid)
    return Measured(table, losses, lrs, arch, base_dag, base_kernel, metric, recipe_of(results), method,
                    edges)


#: A rule: ``(target dag, kernel or None, base dag, base kernel or None) -> eta_target / eta_base``.
Rule = Callable[[Dag, "int | None", Dag, "int | None"], float]


def eq8_rule(arch: str, offset: int | None = None) -> Rule:
    """Eq. 8 (eq. 9 with kernels) under ``offset`` as a :data:`Rule`
    (:func:`~archscale.core.scaling.lr_scale`)."""
    return lambda dag, q, base, qb: lr_scale(dag, arch, q, offset=offset, base=base, base_kernel=qb)


def compare(results: pd.DataFrame | Measured, base: str = "1", offset: int | None = None,
            metric: str = "train_loss", *, rule: Rule | None = None, score: set[str] | None = None,
            n_boot: int = 1000, seed: int = 0, method: str = DEFAULT_METHOD, edges: bool | None = None
            ) -> Comparison:
    """Measured maximal LR per configuration against ``max_lr(base) * lr_scale(graph)`` (eq. 8/9).

    The base graph's measured maximal LR (:func:`measure`) is transferred to every configuration
    with :func:`archscale.core.scaling.lr_scale` under the depth ``offset`` (default: the arch's
    convention), which shifts the base's depths and the graph's alike; ``rule`` replaces eq. 8/9
    by another (:data:`Rule`). The agreement metrics leave the base out (and, with ``score``, every
    graph not in it: a held-out set; and, unless ``edges``, every configuration whose maximal LR
    sits at a grid edge; default: the measurement's policy, off) and resample seeds and graphs
    (``n_boot`` replicates, numpy seed ``seed``; configurations that share a graph, e.g. its
    kernel sizes, resample together).
    ``method`` picks the maximal-LR estimator (:mod:`~archscale.analysis.estimator`).
    """
    meas = results if isinstance(results, Measured) else measure(results, base, metric, n_boot=n_boot,
                                                                 seed=seed, method=method, edges=bool(edges))
    edges = meas.edges if edges is None else bool(edges)
    conv = convention(meas.arch)
    off = conv.offset if offset is None else validate.integer(offset, "offset", minimum=0)
    rule = rule or eq8_rule(meas.arch, off)
    table = meas.table.copy()
    scales = []
    for r in table.itertuples():
        qb = meas.base_kernel[(r.width, r.act)] if conv.uses_kernel else None
        q = int(r.kernel_size) if conv.uses_kernel else None
        scales.append(rule(meas.dag(r.graph), q, meas.base, qb))
    table["scale"] = scales
    table["predicted"] = table["measured"].to_numpy(float)[table["base_row"]] * table["scale"]
    candidates = [i for i, r in enumerate(table.itertuples())
                  if not r.is_base and np.isfinite(r.measured) and np.isfinite(r.predicted)
                  and (score is None or r.graph in score)]
    n_edge = sum(bool(table["at_edge"].iloc[i]) for i in candidates)
    targets = [i for i in candidates if edges or not table["at_edge"].iloc[i]]
    table["scored"] = [i in set(targets) for i in range(len(table))]
    agreement = bootstrap_agreement(meas.losses, meas.lrs, table["base_row"].tolist(),
                                    table["scale"].to_numpy(float), targets, clusters=table["graph"].tolist(),
                                    method=meas.method, n_boot=n_boot, seed=seed)
    ok = np.isfinite(table["measured"].to_numpy(float)) & np.isfinite(table["predicted"].to_numpy(float))
    r_lin = _pearson(table["measured"].to_numpy(float)[ok], table["predicted"].to_numpy(float)[ok])
    cols = ["graph", "width", "kernel_size", "act", "measured", "measured_lo", "measured_hi", "measured_grid",
            "predicted", "scale", "edge", "at_edge", "method", "n_valid", "scored", "is_base", "base_row"]
    return Comparison(table=table[cols], agreement=agreement, pearson_r_with_base=r_lin, base=meas.base.code,
                      offset=off, metric=meas.metric, recipe=meas.recipe, n_edge=n_edge, edges_scored=edges)
