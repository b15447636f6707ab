"""Depth transfer on residual nets: rescale the LR (eq. 8, effective depth) or the branches (Depth-muP).

:func:`run_residual_depth` trains residual chains of ``K`` blocks (:func:`archscale.core.residual.
residual_chain_dag`: each block a skip beside two weighted layers) as DagMLPs over an LR grid
and seeds, twice:

* **standard** — no branch multiplier (the paper's recipe otherwise: its layout, the in-degree
  init, the mean-field readout); the question is how the optimum LR must move with depth,
  answered by (a) eq. 8 and (b) the effective-depth law;
* **depth_mup** — every branch's output times ``1/sqrt(K)`` (Depth-muP; the same layout, init
  and mean-field readout, muP's output rule for width); (c) its claim is one LR at every depth.

Both start from the same base: the one-block net, which is the same network under both (``1/sqrt
(1) = 1``) and is trained once, as is the one-hidden-layer graph ``'1'`` that the laws'
head-to-head (:func:`~archscale.analysis.law_scores.compare_laws`) uses as its base. Training goes
through :func:`archscale.sweep_module` (the batched trainer has no branch multipliers); rows are
appended per graph to a crash-safe :class:`~archscale.runs.store.ResultStore` per parametrization in
``runs_dir/residual_depth_<preset>[_<dataset>]/{standard,depth_mup}``, so a finished run is
only reloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import recipe_of
from ..analysis.depth_transfer import DepthTransfer, depth_transfer, rank_transfers
from ..analysis.law_scores import LawsReport, compare_laws
from ..core import validate
from ..core.errors import ArchscaleError
from ..core.presets import load_settings
from ..core.residual import depth_mup_multiplier, residual_chain_dag
from ..core.runspec import ADDED_FIELDS, RunSpec
from ..core.schema import SWEEP, lr_key
from ..data import Dataset, load_dataset
from ..module.sweep import sweep_module
from ..nn.models import DagMLP
from ..runs.executor import LocalExecutor
from ..runs.store import ResultStore, chunk_id
from ..train import TrainConfig

__all__ = ["PARAMETRIZATIONS", "ResidualDepth", "ResidualDepthSpec", "report", "run_residual_depth"]

PARAMETRIZATIONS = ("standard", "depth_mup")
#: The one-hidden-layer base of the paper (the laws' head-to-head transfers from it).
PLAIN_BASE = "1"


@dataclass(kw_only=True)
class ResidualDepthSpec(RunSpec):
    """What the residual depth sweep trains: depths, width, LR grid and seeds, on top of the recipe,
    training and data fields every spec shares (:class:`~archscale.core.runspec.RunSpec`)."""

    name: str
    depths: list[int]
    width: int
    lr_min: float
    lr_max: float
    n_lrs: int
    seeds: list[int]
    branch_layers: int = 2

    def __post_init__(self):
        depths = validate.int_list(self.depths, "depths", minimum=1, unique=True)
        if len(depths) < 2 or min(depths) != 1:
            raise ArchscaleError(f"depths must include 1 (the base) and at least one more, got {depths}")
        validate.positive_int(self.width, "width")
        validate.learning_rate(self.lr_min, "lr_min")
        validate.learning_rate(self.lr_max, "lr_max")
        validate.integer(self.n_lrs, "n_lrs", minimum=2)
        validate.int_list(self.seeds, "seeds", minimum=0, unique=True)
        DagMLP(residual_chain_dag(1, self.branch_layers), 1, 1, 1, self.act, layout=self.layout,
               init=self.init, readout=self.readout)  # refuses a bad act/layout/init/readout now

    @property
    def lrs(self) -> np.ndarray:
        return np.geomspace(self.lr_min, self.lr_max, self.n_lrs)

    def graph(self, depth: int) -> str:
        return residual_chain_dag(depth, self.branch_layers).code

    @property
    def depth_of(self) -> dict[str, int]:
        """Graph code -> number of residual blocks."""
        return {self.graph(k): k for k in self.depths}

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def preset(cls, preset: str) -> ResidualDepthSpec:
        """The bundled preset (``archscale/experiments/presets/residual_depth_<preset>.yaml``)."""
        return cls(name=f"residual_depth_{preset}", **load_settings("residual_depth", preset))



@dataclass
class ResidualDepth:
    """A finished residual depth sweep: rows per parametrization (each holding both bases)."""

    spec: ResidualDepthSpec
    results: dict[str, pd.DataFrame]
    data_name: str

    def describe(self) -> str:
        s = self.spec
        own = pd.concat([self._own(p) for p in PARAMETRIZATIONS])
        what = (f"{s.name}: residual DagMLPs of K = {list(s.depths)} blocks ({s.branch_layers} weighted "
                f"layers beside each skip) and the base '1', width {s.width}, act {s.act}")
        grid = f"{s.n_lrs} LRs in [{s.lr_min:g}, {s.lr_max:g}] x {len(s.seeds)} seeds"
        length = f"{s.steps} steps" if s.steps else f"{s.epochs} epoch(s)"
        recipe = ", ".join(f"{k} {v}" for k, v in recipe_of(own).items())
        return (f"{what}, {grid}, {length} at batch {s.batch_size} on {self.data_name}; plain residual "
                f"(parametrization 'standard': no multiplier) and depth_mup (branch x 1/sqrt(K), K >= 2; "
                f"K = 1 and '1' are the same networks and shared): {len(own)} runs "
                f"({int(own['diverged'].sum())} diverged); recipe (read from the rows): {recipe}")

    def _own(self, parametrization: str) -> pd.DataFrame:
        rows = self.results[parametrization]
        if parametrization == "standard":
            return rows
        return rows[~rows["graph"].isin([PLAIN_BASE, self.spec.graph(1)])]

    def transfers(self, *, n_boot: int = 1000, seed: int = 0) -> list[DepthTransfer]:
        """(a) plain residual + eq. 8, (b) plain residual + effective depth, (c) Depth-muP branches + one LR,
        from K = 1 (a plain residual net has no branch multiplier: the parametrization ``standard``)."""
        depth_of = self.spec.depth_of
        return [depth_transfer(self.results["standard"], depth_of, "eq8", label="(a) plain residual + eq. 8",
                               n_boot=n_boot, seed=seed),
                depth_transfer(self.results["standard"], depth_of, "effective_depth",
                               label="(b) plain residual + effective depth", n_boot=n_boot, seed=seed),
                depth_transfer(self.results["depth_mup"], depth_of, "constant",
                               label="(c) Depth-muP branches, one LR", n_boot=n_boot, seed=seed)]

    def laws(self, parametrization: str = "standard", *, holdout: float = 0.5, seed: int = 0,
             n_boot: int = 1000) -> LawsReport:
        """Every law of :mod:`archscale.core.laws` on one parametrization's rows, from the base '1'."""
        validate.choice(parametrization, "parametrization", PARAMETRIZATIONS)
        return compare_laws(self.results[parametrization], PLAIN_BASE, holdout=holdout, seed=seed,
                            n_boot=n_boot)


def report(rd: ResidualDepth, *, n_boot: int = 1000, seed: int = 0, good: float = 1.5,
           as_json: bool = False) -> str:
    """What ``archscale residual-depth`` prints: the run, the three transfers (a)-(c) with their
    per-depth tables, each one's finding against the factor ``good``, and which misses least."""
    good = validate.number(good, "good", positive=True, example="1.5")
    transfers = rd.transfers(n_boot=n_boot, seed=seed)
    ranking = rank_transfers(transfers)
    if as_json:
        return json.dumps({"run": rd.describe(), "spec": rd.spec.to_dict(), "data": rd.data_name,
                           "good": good, "transfers": [t.to_dict(good) for t in transfers],
                           "ranking": ranking})
    findings = "\n".join(f"- {t.finding(good)}" for t in transfers)
    return "\n\n".join([rd.describe(), *map(str, transfers), f"{findings}\n- {ranking}"])


def _model(spec: ResidualDepthSpec, graph: str, data: Dataset, multiplier: float):
    def make() -> DagMLP:
        return DagMLP(graph, int(np.prod(data.in_shape)), spec.width, data.out_dim, spec.act,
                      layout=spec.layout, init=spec.init, readout=spec.readout, branch_multiplier=multiplier)
    return make


def _keys(spec: ResidualDepthSpec, graph: str) -> set[tuple]:
    return {(graph, "mlp", spec.width, 0, spec.act, lr_key(lr), s) for lr in spec.lrs for s in spec.seeds}


def _train(spec: ResidualDepthSpec, data: Dataset, store: ResultStore, graphs: dict[str, float], meta: dict,
           device: str, progress: bool) -> pd.DataFrame:
    """Train every graph of ``graphs`` (code -> multiplier) missing from ``store``; return its rows."""
    store.check()
    store.check_setup(meta, "a residual depth sweep", "runs_dir", added=ADDED_FIELDS)
    old = store.read_meta()
    todo = [g for g in graphs if not _keys(spec, g) <= store.scan().keys]
    if todo or old is None:
        with store.open() as writer:
            writer.write_meta(meta)
            for graph in todo:
                frame = sweep_module(_model(spec, graph, data, graphs[graph]), spec.lrs, spec.seeds, data,
                                     spec.train_config(), name=graph, width=spec.width, act=spec.act,
                                     device=device, progress=progress)
                frame[["layout", "init", "readout"]] = spec.layout, spec.init, spec.readout
                rows = [SWEEP.row(r) for r in frame.to_dict(orient="records")]
                writer.append(chunk_id([SWEEP.key_of(r) for r in rows]), rows)
    frame = SWEEP.frame(store.scan().rows)
    return frame[frame["graph"].isin(list(graphs))].reset_index(drop=True)


def run_residual_depth(preset: str = "quick", *, dataset: str | None = None, data_dir: str | None = None,
                       device: str = "cpu", runs_dir: str | os.PathLike = "runs", progress: bool = True,
                       threads: int | None = 1, **changes) -> ResidualDepth:
    """Train (or reload) the residual depth sweep ``preset`` into ``runs_dir`` (see the module docstring).

    ``dataset``/``data_dir`` override the preset's data (the directory then carries the dataset's
    name); other keyword arguments override :class:`ResidualDepthSpec` fields. ``threads``: torch
    threads while training (``None`` keeps torch's setting). One thread is the default because the
    replicas' matrices are small: the quick preset trained in 22.6 s on one thread and about 160 s on
    torch's two on the same shared 2-core CPU (other jobs running).
    """
    spec = ResidualDepthSpec.preset(preset)
    if dataset is not None:
        changes["dataset"] = dataset
    if changes:
        try:
            spec = dataclasses.replace(spec, **changes)
        except TypeError as err:
            raise ArchscaleError(f"unknown residual depth setting: {err}") from None
    data = load_dataset(spec.dataset, flatten=True, data_dir=data_dir, n_train=spec.n_train,
                        n_test=spec.n_test)
    root = Path(runs_dir) / (f"residual_depth_{preset}" + ("" if dataset is None else f"_{dataset}"))
    shared = {PLAIN_BASE: 1.0, spec.graph(1): 1.0}
    standard = {**shared, **{spec.graph(k): 1.0 for k in spec.depths if k > 1}}
    mup = {spec.graph(k): depth_mup_multiplier(residual_chain_dag(k, spec.branch_layers)) for k in spec.depths
           if k > 1}
    results = {}
    with LocalExecutor(device, threads=threads):
        for name, graphs in (("standard", standard), ("depth_mup", mup)):
            meta = {**spec.to_dict(), "parametrization": name,
                    "branch_multipliers": {g: m for g, m in graphs.items()}}
            results[name] = _train(spec, data, ResultStore(root / name), graphs, meta, device, progress)
    base_rows = results["standard"][results["standard"]["graph"].isin(list(shared))]
    results["depth_mup"] = pd.concat([base_rows, results["depth_mup"]], ignore_index=True)
    return ResidualDepth(spec, results, data.name)
