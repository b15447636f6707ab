"""Residual CNNs with and without BatchNorm across depth: which LR law holds (issue 22's measurement).

Four families of plain PyTorch residual CNNs (:class:`ResidualCNN`: a 3x3 stem, ``K`` blocks of
``x + s * conv(relu(conv(relu(x))))``, global average pooling, a linear readout), trained on the
28x28 MNIST digits at ``K`` in the preset's depths:

* ``plain`` and ``batchnorm`` (a BatchNorm after each conv of a block), branches unscaled (``s = 1``):
  the LR must move with depth, and eq. 9, the effective-depth law, the longest path, the path count
  and a constant LR each predict how;
* ``plain, Depth-muP`` and ``batchnorm, Depth-muP``: branches scaled by ``s = 1/sqrt(K)`` (Depth-muP),
  whose claim is one LR at every depth: the "constant" law's row scores it.

Each family is measured by :func:`archscale.check` (one vectorized sweep per depth, the optimum
finer than the grid with its interval, every law scored beside the noise floor), so the rows of
this experiment and of ``archscale check`` are the same kind. The graphs are read with
normalization as a pass-through (``norm="ignore"``: a BatchNorm at its initial statistics is an
identity in eval mode); what each law predicts therefore does not depend on the BatchNorm, while
what is measured does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch.nn.functional as F
from torch import nn

from ..core.presets import settings_with
from ..data import load_dataset
from ..train import TrainConfig
from .check import CheckReport, check
from .families import describe_curves, family_curves, family_rows

__all__ = ["FAMILIES", "ResidualCNN", "ResidualNorm", "run_residual_norm"]


class _Block(nn.Module):
    """A residual branch: conv, (BatchNorm), ReLU, conv, (BatchNorm), on ``relu(x)``."""

    def __init__(self, width: int, batchnorm: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(width) if batchnorm else nn.Identity()

    def forward(self, x):
        return self.norm2(self.conv2(F.relu(self.norm1(self.conv1(F.relu(x))))))


class ResidualCNN(nn.Module):
    """A 3x3 stem, ``depth`` pre-activation residual blocks (two 3x3 convs, optional BatchNorm after
    each), ReLU, global average pooling and a linear readout; ``branch_scale`` multiplies every
    block's branch (``"depth_mup"``: ``1/sqrt(depth)``)."""

    def __init__(self, depth: int, width: int = 8, batchnorm: bool = False,
                 branch_scale: float | str = 1.0, in_channels: int = 1, n_out: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            _Block(width, batchnorm) for _ in range(depth))
        self.scale = 1.0 / math.sqrt(depth) if branch_scale == "depth_mup" else float(branch_scale)
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = h + (block(h) if self.scale == 1.0 else self.scale * block(h))
        return self.head(F.relu(h).mean(dim=(2, 3)))


#: The families: name -> (batchnorm, branch scale).
FAMILIES: dict[str, tuple[bool, float | str]] = {
    "plain": (False, 1.0), "batchnorm": (True, 1.0),
    "plain, Depth-muP": (False, "depth_mup"), "batchnorm, Depth-muP": (True, "depth_mup"),
}


@dataclass
class _Factory:
    """A picklable ``make(depth=K)`` for one family."""

    width: int
    batchnorm: bool
    branch_scale: float | str

    def __call__(self, depth: int) -> ResidualCNN:
        return ResidualCNN(int(depth), self.width, self.batchnorm, self.branch_scale)


@dataclass
class ResidualNorm:
    """Every family's check report and the table of laws against them."""

    preset: str
    settings: dict
    reports: dict[str, CheckReport]

    def table(self) -> pd.DataFrame:
        """One row per family and law: the error factor with its interval, the noise floor, n."""
        return pd.DataFrame(family_rows(self.reports, "n_depths"))

    def law_table(self) -> pd.DataFrame:
        """Laws by family: each error factor with its 95% interval as text ("not scored" where none)."""
        t = self.table()
        t = t.assign(cell=[f"{r.error_factor:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in t.itertuples()])
        return t.pivot(index="law", columns="family", values="cell").fillna("not scored")

    def curves(self) -> dict[str, pd.DataFrame]:
        """Per family the measured maximal LR at every depth: ``K, max_lr, lo, hi, edge``."""
        return family_curves(self.reports, "K")

    def describe(self) -> list[str]:
        """Per family one line: the optimum at every depth with its interval, grid edges marked."""
        return describe_curves(self.curves(), "K", "K = ")

    def headline(self) -> str:
        """A figure title stating the finding: eq. 9's error and the best law's, per unscaled family."""
        t = self.table()
        parts = []
        for family in ("plain", "batchnorm"):
            f = t[t["family"] == family].set_index("law")
            if f.empty:
                continue
            best = f["error_factor"].idxmin()
            eq = f" eq. 9 off by x{f.loc['eq8', 'error_factor']:.2g}," if "eq8" in f.index else ""
            parts.append(f"{family}:{eq} {best.replace('_', ' ')} x{f.loc[best, 'error_factor']:.2g}")
        depths = ", ".join(str(int(k)) for k in self.settings["depths"])
        return f"Residual CNNs of K = {depths} blocks: " + "; ".join(parts)

    def findings(self) -> list[str]:
        """What the run found, in sentences carrying their numbers, intervals and n: per family the
        best law and whether the data separate it from the runner-up and from eq. 9, and the default
        the evidence gives."""
        out = []
        table = self.table()
        for r in self.best().itertuples():
            t = table[table["family"] == r.family].set_index("law")
            n = int(t["n_depths"].iloc[0])
            line = (f"{r.family}: best law {r.best}, error factor {r.error_factor:.3g} "
                    f"[{r.lo:.3g}, {r.hi:.3g}] (noise floor {r.noise_floor:.3g}; n = {n} depths beyond "
                    f"the first, {len(self.settings['seeds'])} seeds)")
            if not isinstance(r.runner_up, str):
                line += "; the only law scored here (archscale reads no graph with scaled branches)"
            elif r.separated:
                line += f", separated from the runner-up {r.runner_up}"
            else:
                ru = t.loc[r.runner_up]
                line += (f"; not separated from {r.runner_up} ({ru['error_factor']:.3g} "
                         f"[{ru['lo']:.3g}, {ru['hi']:.3g}]): this run cannot rank them")
            if "eq8" in t.index and r.best != "eq8":
                e = t.loc["eq8"]
                line += f"; eq. 9 scores {e['error_factor']:.3g} [{e['lo']:.3g}, {e['hi']:.3g}]"
            out.append(line + ".")
        curves = self.curves()
        for family in ("plain", "batchnorm"):
            mup = f"{family}, Depth-muP"
            if family in curves and mup in curves:
                a, b = curves[family]["max_lr"], curves[mup]["max_lr"]
                out.append(f"{family}: the optimum moves x{a.iloc[-1] / a.iloc[0]:.3g} from K = "
                           f"{curves[family]['K'].iloc[0]} to {curves[family]['K'].iloc[-1]} with unscaled "
                           f"branches and x{b.iloc[-1] / b.iloc[0]:.3g} with Depth-muP's 1/sqrt(K) branches "
                           f"(point estimates; intervals in the table above).")
        return out

    def best(self) -> pd.DataFrame:
        """Per family the law with the lowest error factor, and whether the runner-up's interval
        overlaps it (then the data cannot separate them)."""
        out = []
        for family, g in self.table().groupby("family", sort=False):
            g = g.sort_values("error_factor")
            first, second = g.iloc[0], g.iloc[1] if len(g) > 1 else None
            separated = second is not None and second["lo"] > first["hi"]
            out.append({"family": family, "best": first["law"], "error_factor": first["error_factor"],
                        "lo": first["lo"], "hi": first["hi"],
                        "runner_up": None if second is None else second["law"],
                        "separated": bool(separated), "noise_floor": first["noise_floor"]})
        return pd.DataFrame(out)


def run_residual_norm(preset: str = "quick", *, runs_dir: str | Path = "runs", device: str = "cpu",
                      progress: bool = True, n_boot: int = 1000, families: Mapping | None = None,
                      dataset: str | None = None, data_dir: str | None = None, seed: int = 0,
                      **overrides) -> ResidualNorm:
    """Measure every family (``experiments/presets/residual_norm_<preset>.yaml``) with :func:`check`.

    ``dataset``/``data_dir`` replace the preset's images; ``seed`` shifts its training seeds (``seed
    + s``); ``overrides`` replace preset settings by name (e.g. ``width=16, depths=[1, 2, 4]``)."""
    s = settings_with("residual_norm", preset, overrides, seed)
    data = load_dataset(dataset or s["dataset"], flatten=False, data_dir=data_dir, n_train=s["n_train"],
                        n_test=s["n_test"])
    config = TrainConfig(steps=s["steps"], epochs=1, batch_size=s["batch_size"])
    depths = [int(k) for k in s["depths"]]
    reports = {}
    for name, (batchnorm, scale) in (families or FAMILIES).items():
        reports[name] = check(_Factory(s["width"], batchnorm, scale), {"depth": depths},
                              {"depth": s["target"]}, data, config=config, seeds=s["seeds"],
                              runs_dir=Path(runs_dir) / f"residual_norm_{preset}", device=device,
                              progress=progress, n_boot=n_boot)
    return ResidualNorm(preset, s, reports)
