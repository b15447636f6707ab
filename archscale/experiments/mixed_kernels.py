"""CNNs whose edges mix kernel sizes: does eq. 9 generalized per edge predict the maximal LR?
(issue 20, item 4; notebook 06b).

Eq. 9 gives the maximal LR of a CNN whose every layer has a ``q x q`` kernel. Generalized per edge
(:mod:`archscale.core.kernels`; derived in notebook 02) each path ``p`` contributes
``L_p^2 (offset a_ref + sum of its edges' kernel areas)``. Three families of plain PyTorch CNNs on
the 28x28 MNIST digits, each grown in one size keyword ``depth``:

* ``chain + 1x1`` (:class:`ProjectedChain`): a 3x3 stem, ``depth`` 5x5 convs and a 1x1 projection
  before the pooled readout; on a chain the per-edge law equals the mean-area reading, and the
  share of 1x1 shrinks as the chain grows;
* ``cells`` (:class:`MixedCells`): ``depth`` stacked four-vertex cells (the paper's ``2_22_222``
  topology) whose consecutive edges are 3x3 convs, whose two-step edges are 1x1 and whose
  input-to-output edge is 5x5: many paths, each with its own mix;
* ``resnet, 1x1 shortcut`` (:class:`ProjectedResNet`): ``depth`` pre-activation blocks
  ``shortcut(x) + conv3x3(relu(conv3x3(relu(x))))``, the first block's shortcut a 1x1 conv (a
  ResNet stage's projection), the others the identity.

Every member is initialized by :func:`archscale.apply` with the preset's ``recipe`` (the in-degree
rule whose premises eq. 9 rests on; ``reference``, the recipe notebook 06 measured eq. 9 with, by
default), inside the factory, so each seed draws its own weights.

Each family is measured by :func:`archscale.check` (one vectorized sweep per size, the optimum finer
than the grid with its interval, every law scored from the smallest size beside the noise floor),
with the registered laws (``eq8`` reads mixed kernels per edge: eq. 9 generalized) plus the two
readings a user would otherwise reach for (:data:`~archscale.core.laws.MIXED_KERNEL_LAWS`): one
``q`` for every edge (the majority kernel, the single ``kernel_size=`` override) and the mean
kernel area. :meth:`MixedKernels.pooled` scores every law over all families' sizes at once (one
seed resample shared by all, the sizes resampled), which is the headline number with its n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch.nn.functional as F
from torch import nn

from ..analysis.agreement import bootstrap_agreement, noise_floor
from ..analysis.maxlr import loss_matrix
from ..core.laws import LAWS, MIXED_KERNEL_LAWS, Law
from ..core.presets import settings_with
from ..core.schema import SWEEP
from ..data import Dataset, load_dataset
from ..runs.store import ResultStore
from ..train import TrainConfig
from .check import CheckReport, check
from .check_measure import law_scale, read_member
from .families import describe_curves, family_curves, family_rows

__all__ = ["FAMILIES", "LAW_LABELS", "MixedCells", "MixedKernels", "ProjectedChain", "ProjectedResNet",
           "mixed_laws", "run_mixed_kernels"]


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class ProjectedChain(nn.Module):
    """A 3x3 stem, ``depth`` ``k x k`` convs (ReLU before each), a 1x1 projection, ReLU, global
    average pooling and a linear readout."""

    def __init__(self, depth: int, width: int = 8, k: int = 5, in_channels: int = 1, n_out: int = 10):
        super().__init__()
        self.stem = _conv(in_channels, width, 3)
        self.convs = nn.ModuleList(_conv(width, width, k) for _ in range(depth))
        self.proj = _conv(width, width, 1)
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        h = self.stem(x)
        for conv in self.convs:
            h = conv(F.relu(h))
        h = self.proj(F.relu(h))
        return self.head(F.relu(h).mean(dim=(2, 3)))


#: The cell's kernel per edge (src, dst) of ``2_22_222``: consecutive 3x3, two-step 1x1, 0 -> 3 5x5.
CELL_KERNELS: dict[tuple[int, int], int] = {(0, 1): 3, (1, 2): 3, (2, 3): 3, (0, 2): 1, (1, 3): 1, (0, 3): 5}


class _Cell(nn.Module):
    """``z_j = sum_i conv_ij(relu(z_i))`` over the edges of ``2_22_222`` with :data:`CELL_KERNELS`."""

    def __init__(self, width: int):
        super().__init__()
        self.edges = nn.ModuleDict({f"e{s}{d}": _conv(width, width, k) for (s, d), k in CELL_KERNELS.items()})

    def forward(self, x):
        z = [x]
        for d in (1, 2, 3):
            z.append(sum(self.edges[f"e{s}{d}"](F.relu(z[s])) for s in range(d)))
        return z[3]


class MixedCells(nn.Module):
    """A 3x3 stem, ``depth`` stacked :class:`_Cell` s, ReLU, global average pooling, a linear readout."""

    def __init__(self, depth: int, width: int = 8, in_channels: int = 1, n_out: int = 10):
        super().__init__()
        self.stem = _conv(in_channels, width, 3)
        self.cells = nn.Sequential(*[_Cell(width) for _ in range(depth)])
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(F.relu(self.cells(self.stem(x))).mean(dim=(2, 3)))


class _ProjectedBlock(nn.Module):
    """``shortcut(x) + conv3x3(relu(conv3x3(relu(x))))``; the shortcut a 1x1 conv or the identity."""

    def __init__(self, width: int, project: bool):
        super().__init__()
        self.proj = _conv(width, width, 1) if project else nn.Identity()
        self.conv1 = _conv(width, width, 3)
        self.conv2 = _conv(width, width, 3)

    def forward(self, x):
        return self.proj(x) + self.conv2(F.relu(self.conv1(F.relu(x))))


class ProjectedResNet(nn.Module):
    """A 3x3 stem, ``depth`` pre-activation residual blocks of two 3x3 convs, the first with a 1x1
    projection shortcut (as at a ResNet stage's start), the rest with identity shortcuts; ReLU,
    global average pooling, a linear readout."""

    def __init__(self, depth: int, width: int = 8, in_channels: int = 1, n_out: int = 10):
        super().__init__()
        self.stem = _conv(in_channels, width, 3)
        self.blocks = nn.Sequential(*[_ProjectedBlock(width, i == 0) for i in range(depth)])
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x))).mean(dim=(2, 3)))


#: The families: name -> model class (called as ``cls(depth, width)``).
FAMILIES: dict[str, type[nn.Module]] = {
    "chain + 1x1": ProjectedChain, "cells": MixedCells, "resnet, 1x1 shortcut": ProjectedResNet,
}

#: How the notebook names the laws.
LAW_LABELS: dict[str, str] = {
    "eq8": "eq. 9 per edge (generalized)", "eq8_one_q": "eq. 9, one q (majority kernel)",
    "eq8_mean_area": "eq. 9, mean kernel area", "effective_depth": "effective depth",
    "longest_path": "longest path", "depth_half": "depth^-1/2", "effective_depth_half": "L_eff^-1/2",
    "path_count": "path count", "constant": "one LR (constant)",
}


def mixed_laws() -> list[Law]:
    """The laws scored here: every registered law, then the two other readings of eq. 9."""
    return [*LAWS.values(), *MIXED_KERNEL_LAWS.values()]


@dataclass
class _Factory:
    """A picklable ``make(depth=K)`` for one family (its repr names it in the store key)."""

    family: str
    width: int
    recipe: str = "reference"

    def __call__(self, depth: int) -> nn.Module:
        import torch

        from ..module.plan import apply

        model = FAMILIES[self.family](int(depth), self.width)
        apply(model, torch.zeros(2, 1, 28, 28), recipe=self.recipe)
        return model


@dataclass
class MixedKernels:
    """Every family's check report, and every law scored per family and pooled over families."""

    preset: str
    settings: dict
    reports: dict[str, CheckReport]
    pooled_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    pooled_floor: float = math.nan
    readings: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self) -> pd.DataFrame:
        """One row per family and law: the error factor with its interval, the noise floor, n."""
        rows = family_rows(self.reports)
        for r in self.pooled_table.itertuples():
            rows.append({"family": "pooled", "law": r.law, "error_factor": r.error_factor, "lo": r.lo,
                         "hi": r.hi, "bias": r.bias, "noise_floor": self.pooled_floor, "n": r.n})
        return pd.DataFrame(rows)

    def law_table(self) -> pd.DataFrame:
        """Laws by family (and pooled): each error factor with its 95% interval as text."""
        t = self.table()
        t = t.assign(cell=[f"{r.error_factor:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in t.itertuples()],
                     law=[LAW_LABELS.get(x, x) for x in t["law"]])
        order = [*self.reports, "pooled"]
        out = t.pivot(index="law", columns="family", values="cell").fillna("not scored")
        return out[[c for c in order if c in out.columns]]

    def curves(self) -> dict[str, pd.DataFrame]:
        """Per family the measured maximal LR at every size: ``depth, max_lr, lo, hi, edge``."""
        return family_curves(self.reports, "depth")

    def predictions(self) -> dict[str, pd.DataFrame]:
        """Per family each law's predicted maximal LR at every size (from the smallest's measurement)."""
        out = {}
        for family, rep in self.reports.items():
            out[family] = pd.DataFrame({r.law: r.at_sizes for r in rep.laws.itertuples()},
                                       index=[int(s) for s in rep.sizes])
        return out

    def describe(self) -> list[str]:
        """Per family one line: the optimum at every size with its interval, grid edges marked."""
        return describe_curves(self.curves(), "depth", "depth ")

    def pooled(self, law: str) -> dict:
        """The pooled score of ``law``: error factor, lo, hi, bias, n."""
        row = self.pooled_table.set_index("law").loc[law]
        return {k: float(row[k]) for k in ("error_factor", "lo", "hi", "bias", "n")}

    def spread(self) -> pd.DataFrame:
        """Per family and alternative reading (``eq8_one_q``, ``eq8_mean_area``): the largest factor
        between its predictions and the per-edge law's over the measured sizes. Below the noise floor,
        no run of this size can tell the two readings apart."""
        rows = []
        for family, pred in self.predictions().items():
            for other in MIXED_KERNEL_LAWS:
                if "eq8" in pred and other in pred:
                    ratio = np.abs(np.log(pred[other].to_numpy(float) / pred["eq8"].to_numpy(float)))
                    rows.append({"family": family, "law": other, "factor": float(np.exp(np.nanmax(ratio))),
                                 "noise_floor": self.reports[family].noise_floor})
        return pd.DataFrame(rows)


def _readings(make: _Factory, family: str, sizes, data: Dataset) -> list[dict]:
    """Each member's kernel readings (for the table of what the laws see)."""
    from ..core.kernels import majority_area, mean_area, path_weighted_area

    rows = []
    for s in sizes:
        m = read_member(make, "depth", s, {}, data, True)
        if m.dag is None:
            continue
        if m.areas is None:
            q = float(m.kernel or 3)
            per_edge = one = mean = q * q
        else:
            per_edge = float(path_weighted_area(m.dag, m.areas, 3))
            one, mean = float(majority_area(m.dag, m.areas)), float(mean_area(m.dag, m.areas))
        rows.append({"family": family, "depth": int(s), "graph": str(m.dag), "paths": m.dag.n_paths,
                     "area_per_edge": per_edge, "area_one_q": one, "area_mean": mean})
    return rows


def _pool(reports: Mapping[str, CheckReport], makers: Mapping[str, _Factory], data: Dataset, seeds,
          laws: list[Law], n_boot: int) -> tuple[pd.DataFrame, float]:
    """Every law over all families' sizes at once: each size predicted from its family's smallest."""
    mats: list[np.ndarray] = []
    grids: list[np.ndarray] = []
    bases: list[int] = []
    targets: list[int] = []
    members: list[tuple] = []
    for family, rep in reports.items():
        rows = SWEEP.frame(ResultStore(Path(rep.runs), SWEEP).scan().rows)
        fam = [read_member(makers[family], "depth", s, {}, data, True) for s in rep.sizes]
        first = len(mats)
        for i, m in enumerate(fam):
            lrs, losses = loss_matrix(rows[rows["graph"] == m.label], "train_loss", list(seeds))
            mats.append(losses)
            grids.append(lrs)
            bases.append(first)
            members.append((fam[0], m))
            if i:
                targets.append(len(mats) - 1)
    if not targets:
        return pd.DataFrame(), math.nan
    floor, _ = noise_floor(mats, grids, targets)
    out = []
    for law in laws:
        scales = np.array([law_scale(law, m, base) for base, m in members])
        if not np.all(np.isfinite(scales)):
            continue
        ag = bootstrap_agreement(mats, grids, bases, scales, targets, n_boot=n_boot, seed=0)
        out.append({"law": law.name, "error_factor": ag.estimate["error_factor"], "lo": ag.lo["error_factor"],
                    "hi": ag.hi["error_factor"], "bias": ag.estimate["bias"], "n": len(targets)})
    return pd.DataFrame(out), float(floor)


def run_mixed_kernels(preset: str = "quick", *, runs_dir: str | Path = "runs", device: str = "cpu",
                      progress: bool = True, n_boot: int = 1000, families: Mapping | None = None,
                      dataset: str | None = None, data_dir: str | None = None, seed: int = 0,
                      **overrides) -> MixedKernels:
    """Measure every family (``experiments/presets/mixed_kernels_<preset>.yaml``) with :func:`check`,
    scoring :func:`mixed_laws`, then pool the scores over the families.

    ``dataset``/``data_dir`` replace the preset's images; ``seed`` shifts its training seeds (``seed
    + s``); ``overrides`` replace preset settings by name (e.g. ``width=4, depths={...}``)."""
    s = settings_with("mixed_kernels", preset, overrides, seed)
    data = load_dataset(dataset or s["dataset"], flatten=False, data_dir=data_dir, n_train=s["n_train"],
                        n_test=s["n_test"])
    config = TrainConfig(steps=s["steps"], epochs=1, batch_size=s["batch_size"])
    laws = mixed_laws()
    reports, makers, readings = {}, {}, []
    for family in (families or FAMILIES):
        sizes = [int(k) for k in s["depths"][family]]
        makers[family] = make = _Factory(family, int(s["width"]), str(s["recipe"]))
        reports[family] = check(make, {"depth": sizes}, {"depth": 2 * sizes[-1]}, data, config=config,
                                seeds=s["seeds"], runs_dir=Path(runs_dir) / f"mixed_kernels_{preset}",
                                device=device, progress=progress, n_boot=n_boot, laws=laws)
        readings += _readings(make, family, sizes, data)
    pooled, floor = _pool(reports, makers, data, s["seeds"], laws, n_boot)
    return MixedKernels(preset, s, reports, pooled, floor, pd.DataFrame(readings))
