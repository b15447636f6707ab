"""The max-LR experiments of notebooks 04-07 in one call: run a bundled sweep, compare, report, draw.

``run_experiment("mlp_depth", preset)`` loads the bundled spec ``mlp_depth_<preset>``, trains what
is missing in its results directory (resumable), reads every maximal LR and compares it with eq.
8/9 (:func:`archscale.analysis.compare`), per group when the spec splits its graphs (listed
chains vs sampled topologies). :meth:`Experiment.report` prints what ran (read from the rows),
the agreement metrics with their intervals and n, and the paper's own figure beside them;
:meth:`Experiment.figure` draws the paper-style figure.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import Comparison, compare, max_lr, recipe_of
from ..core.dag import Dag
from ..data import Dataset
from ..sweep import SweepSpec, load_spec, run_sweep

__all__ = ["FACTORS", "PAPER", "Experiment", "Factorial", "run_experiment", "run_factorial"]

#: What the paper reports for each experiment (CIFAR-10, Pearson r of measured vs predicted max LR,
#: linear scale, base included, 3 seeds), by group name.
PAPER: dict[str, dict[str, tuple[str, float]]] = {
    "mlp_depth": {"all": ("Fig. 5", 0.962)},
    "mlp_topology": {"all": ("Fig. 2", 0.838)},
    "cnn_kernel_topology": {"all": ("Fig. 3", 0.856)},
    "gelu": {"listed": ("Fig. 7, depth", 0.920), "sampled": ("Fig. 7, topology", 0.680)},
    "gelu_cnn": {"all": ("Fig. 7, CNN", 0.949)},
}
#: How each group of a spec is named in reports and figures.
GROUP_NAMES = {"all": "all graphs", "listed": "depth (listed chains)", "sampled": "topology (sampled graphs)"}


@dataclass
class Experiment:
    """One finished max-LR experiment: the spec, its rows, the maximal LRs and the comparisons."""

    name: str
    spec: SweepSpec
    results: pd.DataFrame
    maxima: pd.DataFrame
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    def describe(self) -> str:
        """What was trained: graphs, widths, kernels, LR grid, seeds, training, data and recipe (rows)."""
        s, r = self.spec, self.results
        length = f"{s.steps} steps" if s.steps else f"{s.epochs} epoch(s)"
        grid = sorted(r["lr"].unique())
        kernels = f" x kernels {sorted(r['kernel_size'].unique().tolist())}" if s.arch == "cnn" else ""
        recipe = ", ".join(f"{k} {v}" for k, v in recipe_of(r).items())
        return (f"{s.name}: {s.arch}, act {s.act}, {r['graph'].nunique()} graphs x widths "
                f"{sorted(r['width'].unique().tolist())}{kernels} x {len(grid)} LRs in "
                f"[{grid[0]:.3g}, {grid[-1]:.3g}] "
                f"x {r['seed'].nunique()} seeds = {len(r)} runs ({int(r['diverged'].sum())} diverged); "
                f"{length} at batch {s.batch_size} on {s.dataset}\nrecipe actually run (read from the rows): "
                f"{recipe}; momentum {s.momentum}")

    def report(self, table: bool = True, describe: bool = True) -> str:
        """Per group: the comparison with its metrics and intervals, and the paper's figure beside it
        (``table=False``: without the per-configuration table; ``describe=False``: without what ran)."""
        blocks = [self.describe()] if describe else []
        paper = PAPER.get(self.name, {})
        for key, comp in self.comparisons.items():
            lines = [f"--- {GROUP_NAMES.get(key, key)}", comp.format(table=table)]
            if key in paper:
                fig, r = paper[key]
                lines.append(f"paper ({fig}, CIFAR-10): linear r including the base = {r:.3f}; this run's "
                             f"same statistic = {comp.pearson_r_with_base:.3f} on {self.spec.dataset}. "
                             f"The paper reports no log-scale, base-excluded metric to set beside "
                             f"the others.")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def columns(self, name: str | None = None, kernel: int | None = None) -> dict:
        """This experiment's groups as :func:`~archscale.plots.sweeps.column_figure` columns.

        ``name`` renames a single group (e.g. ``"GELU CNN"``); ``kernel`` shows only that kernel's
        loss curves (CNNs), while the measured-vs-predicted panel keeps every kernel. Columns of
        several experiments join into one figure (paper Fig. 7: MLP depth, topology and CNN).
        """
        out = {}
        for key, comp in self.comparisons.items():
            label = name if name is not None and len(self.comparisons) == 1 else GROUP_NAMES.get(key, key)
            out[label] = (self.results, comp, self.maxima, kernel)
        return out

    def figure(self, title: str, **kwargs):
        """The paper-style figure: one comparison as :func:`~archscale.plots.sweeps.sweep_figure`, several
        as :func:`~archscale.plots.sweeps.grouped_sweep_figure` (``kwargs`` pass through)."""
        from ..plots.sweeps import grouped_sweep_figure, sweep_figure

        if len(self.comparisons) == 1:
            comp = next(iter(self.comparisons.values()))
            return sweep_figure(self.results, comp, title=title, max_lrs=self.maxima, **kwargs)
        named = {GROUP_NAMES.get(k, k): c for k, c in self.comparisons.items()}
        return grouped_sweep_figure(self.results, named, title=title, max_lrs=self.maxima, **kwargs)


def run_experiment(name: str, preset: str = "quick", *, dataset: str | None = None,
                   data_dir: str | None = None, device: str = "cpu", runs_dir: str | os.PathLike = "runs",
                   split_groups: bool = False, progress: bool = True, workers: int | None = None,
                   **changes) -> Experiment:
    """Run (or reload) the bundled sweep ``<name>_<preset>`` into ``runs_dir`` and compare it with eq. 8/9.

    ``dataset``/``data_dir`` override the spec's data when given (the results directory then
    carries the dataset's name, so runs on different data never mix); other keyword arguments
    override spec fields. ``split_groups`` compares the listed and the sampled graphs apart.
    ``workers``: CPU worker processes for the sweep (see :func:`~archscale.sweep.run_sweep`).
    """
    spec = load_spec(f"{name}_{preset}")
    if dataset is not None:
        changes["dataset"] = dataset
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if changes:
        spec = spec.replace(**changes)
    suffix = "" if dataset is None else f"_{dataset}"
    results = run_sweep(spec, Path(runs_dir) / f"{name}_{preset}{suffix}", device=device, progress=progress,
                        workers=workers)
    groups = spec.graph_groups() if split_groups else {"all": sorted(results["graph"].unique())}
    comparisons = {key: compare(results[results["graph"].isin(codes)], base=spec.base)
                   for key, codes in groups.items()}
    return Experiment(name, spec, results, max_lr(results), comparisons)


#: The recipe factorial's factors and their levels (paper section 2 and the reference code).
FACTORS: dict[str, tuple[str, ...]] = {"layout": ("paper", "reference"), "init": ("archscale", "source"),
                                       "readout": ("mean_field", "standard", "reference")}


@dataclass
class Factorial:
    """The recipe factorial: every (layout, init, readout) cell's comparison on one topology set.

    ``cells``: one row per recipe with the agreement metrics (estimate, lo, hi) and n; ``moments``:
    per cell and graph, the readout-input second moment at init relative to the base graph's
    (``z2_ratio``) beside the measured and predicted maximal LRs.
    """

    spec: SweepSpec
    comparisons: dict[tuple[str, str, str], Comparison]
    moments: pd.DataFrame

    @property
    def cells(self) -> pd.DataFrame:
        rows = []
        for (layout, init, readout), comp in self.comparisons.items():
            a = comp.agreement
            row = {"layout": layout, "init": init, "readout": readout, "n": a.n}
            for k in ("pearson_log", "spearman", "error_factor", "bias", "slope"):
                row |= {k: a.estimate[k], f"{k}_lo": a.lo[k], f"{k}_hi": a.hi[k]}
            rows.append(row | {"linear r with base": comp.pearson_r_with_base})
        return pd.DataFrame(rows)

    def main_effects(self, metrics: tuple[str, ...] = ("pearson_log", "error_factor", "bias")
                     ) -> pd.DataFrame:
        """Per factor and level: each metric averaged over the other factors' levels (and its range)."""
        cells = self.cells
        rows = []
        for factor, levels in FACTORS.items():
            for level in levels:
                sub = cells[cells[factor] == level]
                rows.append({"factor": factor, "level": level, "cells": len(sub),
                             **{f"{m} mean": sub[m].mean() for m in metrics},
                             **{f"{m} range": f"{sub[m].min():.3g}..{sub[m].max():.3g}" for m in metrics}})
        return pd.DataFrame(rows)

    def variance_link(self, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Per cell: how the measured max LR follows the prediction and the readout-input moment.

        Spearman of log measured on log predicted and on log ``z2_ratio`` over the non-base graphs,
        and the partial correlation of log measured with log predicted given log ``z2_ratio``; 95%
        bootstrap intervals over graphs. If the prediction's correlation vanishes once the moment
        is accounted for, the topology dependence runs through forward-variance growth.
        """
        from ..analysis.agreement import variance_link

        rows = []
        for key, grp in self.moments.groupby(["layout", "init", "readout"], sort=False):
            grp = grp[~grp["is_base"] & np.isfinite(grp["measured"])]
            rows.append(dict(zip(("layout", "init", "readout"), key)) | {"n": len(grp)} | variance_link(
                np.log(grp["measured"]), np.log(grp["predicted"]), np.log(grp["z2_ratio"]), n_boot=n_boot,
                seed=seed))
        return pd.DataFrame(rows)


def _readout_moments(spec: SweepSpec, data: Dataset, n_seeds: int = 3, n_samples: int = 512) -> pd.DataFrame:
    """Per graph: the readout-input second moment at init (mean over seeds), relative to the base's."""
    from ..probe import readout_input_moment

    x = data.x_train[:n_samples]
    rows = []
    for model in spec.model_specs():
        vals = [readout_input_moment(model.build(tuple(x.shape[1:]), data.out_dim, seed), x)
                for seed in range(n_seeds)]
        rows.append({"graph": model.graph, "z2": float(np.mean(vals))})
    out = pd.DataFrame(rows)
    assert spec.arch is not None  # required by SweepSpec
    base = out.loc[out["graph"] == Dag.parse(spec.base, ops=spec.arch).code, "z2"].iloc[0]
    return out.assign(z2_ratio=out["z2"] / base)


def run_factorial(preset: str = "quick", *, device: str = "cpu", runs_dir: str | os.PathLike = "runs",
                  progress: bool = True, seed: int = 0, n_boot: int = 1000,
                  workers: int | None = None) -> Factorial:
    """Train the bundled ``recipe_factorial_<preset>`` sweep under every recipe of :data:`FACTORS`.

    Each recipe has its own results directory (resumable) under ``runs_dir``; the comparisons share
    the bootstrap ``seed``. ``workers``: CPU worker processes (see :func:`~archscale.sweep.run_sweep`).
    """
    base_spec = load_spec(f"recipe_factorial_{preset}")
    comparisons, frames = {}, []
    data = base_spec.load_data()  # the recipes share the data; only the network changes
    for layout, init, readout in itertools.product(*FACTORS.values()):
        spec = base_spec.replace(layout=layout, init=init, readout=readout)
        out = Path(runs_dir) / f"recipe_factorial_{preset}" / f"{layout}_{init}_{readout}"
        rows = run_sweep(spec, out, device=device, progress=progress, workers=workers)
        comp = compare(rows, base=spec.base, seed=seed, n_boot=n_boot)
        comparisons[(layout, init, readout)] = comp
        z2 = _readout_moments(spec, data)
        frames.append(comp.table.merge(z2, on="graph").assign(layout=layout, init=init, readout=readout))
    return Factorial(base_spec, comparisons, pd.concat(frames, ignore_index=True))
