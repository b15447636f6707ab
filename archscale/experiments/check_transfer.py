"""Will the LR tuned on small members of a family transfer to a big one? :func:`archscale.check`
answered, then the big one trained directly (issue 24's demonstration, notebook 13).

Two plain-PyTorch residual MLPs (:class:`ResMLP`: notebook 10's ``x + fc2(relu(fc1(relu(x))))``
blocks between a linear stem and a linear readout), one of them with a BatchNorm1d after each
linear layer of a block, each under SGD and under AdamW: :func:`~archscale.experiments.check.check`
measures the maximal LR at the preset's small depths and answers for the target depth with an
interval; then the target itself is swept with the same protocol (same data, steps, batch, seeds,
grid refinement and estimator), on a grid centred on the answer, and its measured optimum with its
interval is the truth the answer is judged against.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch.nn.functional as F
from torch import nn

from ..analysis.estimator import MaxLr
from ..core.presets import settings_with
from ..core.schema import SWEEP
from ..data import Dataset, load_dataset
from ..runs.store import ResultStore
from ..train import TrainConfig
from .check import CheckReport, check
from .check_measure import (
    NEXT_SPAN,
    Plan,
    factory_id,
    flattened,
    measure_member,
    read_member,
    store_key,
    with_optimizer,
)

__all__ = ["FAMILIES", "Case", "CheckTransfer", "ResMLP", "measure_target", "run_check_transfer"]


class _Block(nn.Module):
    """``x + fc2(relu(fc1(relu(x))))``, a BatchNorm1d after each linear layer when asked."""

    def __init__(self, width: int, batchnorm: bool):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.norm1 = nn.BatchNorm1d(width) if batchnorm else nn.Identity()
        self.fc2 = nn.Linear(width, width)
        self.norm2 = nn.BatchNorm1d(width) if batchnorm else nn.Identity()

    def forward(self, x):
        return x + self.norm2(self.fc2(F.relu(self.norm1(self.fc1(F.relu(x))))))


class ResMLP(nn.Module):
    """Notebook 10's residual MLP: a linear stem, ``depth`` pre-activation blocks, ReLU, a linear
    readout; ``batchnorm`` puts a BatchNorm1d after each linear layer of a block."""

    def __init__(self, depth: int, width: int = 32, batchnorm: bool = False, d_in: int = 64, n_out: int = 10):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(*[_Block(width, batchnorm) for _ in range(depth)])
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x.flatten(1)))))


#: The families: name -> whether the blocks carry BatchNorm.
FAMILIES: dict[str, bool] = {"residual MLP": False, "residual MLP + BatchNorm": True}


@dataclass
class Case:
    """One family under one optimizer: the check's report and the target trained directly."""

    family: str
    optimizer: str
    report: CheckReport
    truth: MaxLr
    truth_lrs: int

    def row(self) -> dict:
        rep, t = self.report, self.truth
        agreeing = [] if rep.laws.empty else [str(x) for x in rep.laws.loc[rep.laws["agrees"], "law"]]
        return {
            "family": self.family,
            "optimizer": self.optimizer,
            "answer": rep.recommended,
            "answer_lo": rep.recommended_lo,
            "answer_hi": rep.recommended_hi,
            "source": rep.source,
            "agreeing": agreeing,
            "truth": t.max_lr,
            "truth_lo": t.lo,
            "truth_hi": t.hi,
            "truth_edge": t.edge or "",
            "truth_lrs": self.truth_lrs,
            "sizes": list(rep.sizes),
            "measured": [float(x) for x in rep.table["max_lr"]],
            "measured_lo": [float(x) for x in rep.table["lo"]],
            "measured_hi": [float(x) for x in rep.table["hi"]],
            "target": rep.target,
            "n_seeds": rep.config["n_seeds"],
            "noise_floor": rep.noise_floor,
        }


@dataclass
class CheckTransfer:
    """Every case of the demonstration."""

    preset: str
    settings: dict
    cases: list[Case]

    def table(self) -> pd.DataFrame:
        """One row per family and optimizer: the answer with its interval and source, the laws that
        agree, the directly measured optimum with its interval, and whether the answer covers it."""
        t = pd.DataFrame([c.row() for c in self.cases])
        t["ratio"] = t["answer"] / t["truth"]
        t["contains"] = (t["answer_lo"] <= t["truth"]) & (t["truth"] <= t["answer_hi"])
        return t

    def describe(self) -> list[str]:
        """Per case one line: the measured optima, the answer and the truth, each with its interval."""
        out = []
        for c in self.cases:
            rep, t = c.report, c.truth
            measured = ", ".join(f"{s:g}: {r.max_lr:.3g} [{r.lo:.3g}, {r.hi:.3g}]"
                                 for s, r in zip(rep.sizes, rep.table.itertuples()))
            out.append(f"{c.family}, {c.optimizer}: measured {rep.size_name} {measured}; answer at "
                       f"{rep.target:g} {rep.recommended:.3g} [{rep.recommended_lo:.3g}, "
                       f"{rep.recommended_hi:.3g}] from {rep.source}; trained directly {t.max_lr:.3g} "
                       f"[{t.lo:.3g}, {t.hi:.3g}]" + (f" (at the grid's {t.edge} edge)" if t.edge else ""))
        return out


def measure_target(report: CheckReport, make_model, data: Dataset, config: TrainConfig, seeds,
                   runs_dir: str | Path, *, device: str = "cpu", progress: bool = True) -> tuple[MaxLr, int]:
    """The target of ``report`` trained directly with the check's protocol: a grid of the check's
    later sizes (``NEXT_SPAN`` either side) centred on the answer, refined where the optimum is, and
    the same estimator; its store (``runs_dir/check_target/<key>``) reloads on a rerun. Returns the
    estimate and how many LRs were trained."""
    name, target = report.size_name, report.target
    config = with_optimizer(config, report.optimizer)
    train_data = data if data.x_train.dim() == 2 else flattened(data)
    member = read_member(make_model, name, target, {}, train_data, images=False)
    center = report.recommended if math.isfinite(report.recommended) and report.recommended > 0 else 0.1
    plan = Plan(n_first=9, n_next=7, rounds=2, per_round=2)
    grid = list(np.geomspace(center / NEXT_SPAN, center * NEXT_SPAN, plan.n_next))
    key = store_key({"factory": factory_id(make_model), "size": name, "target": target,
                     "data": train_data.name, "n_train": train_data.n_train, "config": config.__dict__,
                     "seeds": list(seeds), "center": float(center)})
    store = ResultStore(Path(runs_dir) / "check_target" / key, SWEEP)
    store.check()
    with store.open() as writer:
        writer.write_meta({"size_name": name, "target": target, "optimizer": report.optimizer,
                           "center": float(center)})
        est = measure_member(writer, store, make_model, name, member, {}, grid, list(seeds), train_data,
                             config, plan, None, [], device, progress)
    rows = SWEEP.frame(store.scan().rows)
    return est, int(rows["lr"].nunique())


def run_check_transfer(preset: str = "quick", *, runs_dir: str | Path = "runs", device: str = "cpu",
                       progress: bool = True, n_boot: int = 1000, dataset: str | None = None,
                       data_dir: str | None = None, seed: int = 0, **overrides) -> CheckTransfer:
    """Check every family under every optimizer of the preset (``experiments/presets/check_<preset>.yaml``)
    and train each target directly.

    ``dataset``/``data_dir`` replace the preset's data; ``seed`` shifts its training seeds (``seed +
    s``); ``overrides`` replace preset settings by name (e.g. ``width=16, depths=[1, 2]``)."""
    s = settings_with("check", preset, overrides, seed)
    data = load_dataset(dataset or s["dataset"], flatten=True, data_dir=data_dir, n_train=s["n_train"],
                        n_test=s["n_test"])
    depths = [int(k) for k in s["depths"]]
    root = Path(runs_dir) / f"check_{preset}"
    cases = []
    for family, batchnorm in FAMILIES.items():
        # a partial of the class: picklable, and its repr names the family in the store key
        make = functools.partial(ResMLP, width=int(s["width"]), batchnorm=batchnorm,
                                 d_in=int(data.in_shape[0]), n_out=int(data.out_dim))
        for optimizer in s["optimizers"]:
            opt = s["optimizer_settings"].get(optimizer, {})
            config = TrainConfig(steps=s["steps"], epochs=1, batch_size=s["batch_size"], **opt)
            report = check(make, {"depth": depths}, {"depth": s["target"]}, data, optimizer=optimizer,
                           config=config, seeds=s["seeds"], runs_dir=root, device=device, progress=progress,
                           n_boot=n_boot)
            truth, n_lrs = measure_target(report, make, data, config, s["seeds"], root, device=device,
                                          progress=progress)
            cases.append(Case(family, optimizer, report, truth, n_lrs))
    return CheckTransfer(preset, s, cases)
