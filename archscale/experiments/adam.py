"""Does the graph law hold under Adam? The sweeps and fits of notebook 12 in one call.

:func:`run_adam` runs (or reloads: the sweeps are resumable) the bundled sweeps of a preset:

* **depth** — the MLP chains L = 3..10 under AdamW (``mlp_depth_adam``), under SGD with momentum
  0.9 (``mlp_depth_momentum``) and under plain SGD (``mlp_depth_sgd``: notebook 04's chains, adaptive
  grid); each gets its depth exponent ``b`` of ``eta* ∝ L^b`` with a seed interval
  (:func:`~archscale.analysis.depth_exponent.depth_exponent`);
* **laws** — every law of :mod:`archscale.core.laws` scored on the AdamW sweeps (depth, MLP
  topologies ``mlp_topology_adam``, CNN topologies x kernels ``cnn_kernel_topology_adam``) with
  :func:`~archscale.analysis.law_scores.compare_laws`, zero-shot and held out;
* **kernel** — the kernel exponent of the AdamW CNN sweep
  (:func:`~archscale.analysis.kernel.kernel_exponents`; eq. 9 says -1 for SGD);
* **width** — the MLP block chain ``2`` at widths 64..1024 under AdamW, with one LR for every
  parameter (``mlp_width_adam``) and with muP's Adam width rule, base width 64
  (``mlp_width_adam_mup``, :mod:`archscale.core.adam_width`); each arm gets its width exponent ``b``
  of ``eta* ∝ width^b``, the slope of ``log2 eta*`` per doubling of the width, with a seed interval
  (:func:`~archscale.analysis.depth_exponent.width_exponent`; muP: -1 and 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..analysis.depth_exponent import DepthExponent, depth_exponent, width_exponent
from ..analysis.kernel import KernelExponents, kernel_exponents
from ..analysis.law_scores import LawsReport
from ..core import validate
from .maxlr import Experiment, run_experiment
from .which_law import score_laws

__all__ = ["DEPTH_SWEEPS", "LAW_SWEEPS", "WIDTH_SWEEPS", "AdamRun", "run_adam"]

#: The depth sweeps, by optimizer label -> bundled experiment name.
DEPTH_SWEEPS: dict[str, str] = {"AdamW": "mlp_depth_adam", "SGD, momentum 0.9": "mlp_depth_momentum",
                                "SGD": "mlp_depth_sgd"}
#: The sweeps every law is scored on under AdamW, by label -> bundled experiment name.
LAW_SWEEPS: dict[str, str] = {"MLP depth, AdamW": "mlp_depth_adam",
                              "MLP topology, AdamW": "mlp_topology_adam",
                              "CNN topology x kernel, AdamW": "cnn_kernel_topology_adam"}

#: The width sweeps, by arm label -> bundled experiment name (muP's prediction of each arm's exponent
#: is :data:`~archscale.analysis.depth_exponent.MUP_ADAM_WIDTH_EXPONENTS`, under the same labels).
WIDTH_SWEEPS: dict[str, str] = {"one LR": "mlp_width_adam", "muP's Adam rule": "mlp_width_adam_mup"}


@dataclass
class AdamRun:
    """The experiments (by name), each optimizer's depth exponent, each AdamW sweep's laws report,
    the AdamW CNN sweep's kernel exponents and each width arm's width exponent."""

    experiments: dict[str, Experiment]
    exponents: dict[str, DepthExponent]
    reports: dict[str, LawsReport]
    kernel: KernelExponents | None
    notes: list[str]
    widths: dict[str, DepthExponent] = field(default_factory=dict)

    def describe(self) -> str:
        """What ran, read from the rows: one line per sweep, and the notes."""
        out = []
        for exp in self.experiments.values():
            r, s = exp.results, exp.spec
            opt = str(r["optimizer"].iloc[0]) if "optimizer" in r.columns else "sgd"
            betas = tuple(s.betas or (0.9, 0.999))
            extra = f", momentum {s.momentum:g}" if opt == "sgd" else f", betas {betas}"
            if s.base_width is not None:
                extra += f", muP's Adam width rule (base width {s.base_width})"
            length = f"{s.steps} steps" if s.steps else f"{s.epochs} epoch(s)"
            kernels = f" x kernels {sorted(r['kernel_size'].unique().tolist())}" if s.arch == "cnn" else ""
            widths = ", ".join(str(int(w)) for w in sorted(r["width"].unique()))
            out.append(f"{exp.name}: {opt}{extra}; {r['graph'].nunique()} graphs{kernels} x "
                       f"{r['lr'].nunique()} LRs in [{r['lr'].min():.2g}, {r['lr'].max():.2g}] x "
                       f"{r['seed'].nunique()} seeds = "
                       f"{len(r)} runs ({int(r['diverged'].sum())} diverged); {length} at batch "
                       f"{s.batch_size} on {s.dataset}, width {widths}")
        return "\n".join([*out, *self.notes])


def run_adam(preset: str = "quick", *, dataset: str | None = None, data_dir: str | None = None,
             device: str = "cpu", runs_dir: str | os.PathLike = "runs", holdout: float = 0.5, seed: int = 0,
             n_boot: int = 1000, progress: bool = True, width: bool = True) -> AdamRun:
    """Run (or reload) the sweeps of :data:`DEPTH_SWEEPS`, :data:`LAW_SWEEPS` and (``width``)
    :data:`WIDTH_SWEEPS` at ``preset``; fit and score.

    ``dataset``/``data_dir`` override the MLP sweeps' data (the CNN sweep keeps its 28x28 images);
    a sweep whose non-base graphs cannot be split two and two at ``holdout`` is scored zero-shot only.
    """
    holdout = validate.number(holdout, "holdout", minimum=0.0, maximum=1.0, example="0.5")
    experiments: dict[str, Experiment] = {}
    notes: list[str] = []

    def get(name: str) -> Experiment:
        if name not in experiments:
            cnn = name.startswith("cnn")  # the CNN sweep keeps its 28x28 images
            experiments[name] = run_experiment(name, preset, device=device, runs_dir=runs_dir,
                                               progress=progress, dataset=None if cnn else dataset,
                                               data_dir=None if cnn else data_dir)
        return experiments[name]

    exponents = {}
    for label, name in DEPTH_SWEEPS.items():
        exp = get(name)
        exponents[label] = depth_exponent(exp.results, exp.spec.base, label=label, n_boot=n_boot, seed=seed)
    reports = {}
    for label, name in LAW_SWEEPS.items():
        reports[label] = score_laws(label, get(name), notes, holdout=holdout, seed=seed, n_boot=n_boot)
    cnn = experiments.get(LAW_SWEEPS["CNN topology x kernel, AdamW"])
    kernel = None
    if cnn is not None and cnn.results["kernel_size"].nunique() >= 2:
        kernel = kernel_exponents(cnn.results, cnn.spec.base, n_boot=n_boot, seed=seed)
    widths = {}
    if width:
        for label, name in WIDTH_SWEEPS.items():
            exp = get(name)
            widths[label] = width_exponent(exp.results, exp.spec.base, label=label, n_boot=n_boot, seed=seed)
    return AdamRun(experiments, exponents, reports, kernel, notes, widths)
