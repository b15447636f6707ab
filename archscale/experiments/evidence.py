"""Turn the notebooks' measurements into the package's evidence records (:mod:`archscale.core.evidence`).

Notebook 11 (the laws head to head and the residual MLP depth sweep) and notebook 11b (residual
CNNs with and without BatchNorm) call :func:`publish` on the records built here: it prints each
record as one line ``evidence <name> <json>`` (so the executed notebook shows exactly what was
recorded, and a test compares the two) and, when the notebook is given an ``evidence_dir``
(``make reproduce`` passes the package's own at the quick preset), writes it there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..analysis.law_scores import LawsReport
from ..core.evidence import Evidence, LawEvidence, record_evidence
from .residual_depth import ResidualDepth
from .residual_norm import ResidualNorm

__all__ = ["LAWS_REGIMES", "OPTIMIZER_LABELS", "from_laws", "from_residual_depth", "from_residual_norm",
           "parse_published", "publish"]

#: The head-to-head sweeps that stand for a regime: sweep label -> (arch, structure, normalized).
LAWS_REGIMES: dict[str, tuple[str, str, bool]] = {
    "MLP depth": ("mlp", "chain", False),
    "MLP topology": ("mlp", "cell", False),
    "CNN topology x kernel": ("cnn", "cell", False),
}

_PREFIX = "evidence "


def _sig(x: float) -> float:
    """Four significant digits: what the record keeps (and what a re-run must reproduce)."""
    return float(f"{x:.4g}") if math.isfinite(x) else math.nan


def _law(est: float, lo: float, hi: float) -> LawEvidence:
    return LawEvidence(_sig(est), _sig(lo), _sig(hi))


def _from_agreement(a) -> LawEvidence:
    return _law(a.estimate["error_factor"], a.lo["error_factor"], a.hi["error_factor"])


#: How notebook 12 labels a sweep of each optimizer: ``"<LAWS_REGIMES label>, <suffix>"``.
OPTIMIZER_LABELS = {"adam": "Adam", "adamw": "AdamW"}


def from_laws(reports: Mapping[str, LawsReport], experiments: Mapping, preset: str, *,
              notebook: str = "notebooks/11_which_law.ipynb", optimizer: str = "sgd") -> list[Evidence]:
    """One record per sweep of :data:`LAWS_REGIMES`: every law's zero-shot error factor on all graphs.

    With ``optimizer`` ``adam``/``adamw`` the sweeps are labelled ``"MLP depth, AdamW"`` and so on
    (notebook 12), and the records are that optimizer's."""
    out = []
    for plain, (arch, structure, normalized) in LAWS_REGIMES.items():
        label = plain if optimizer == "sgd" else f"{plain}, {OPTIMIZER_LABELS[optimizer]}"
        if label not in reports:
            continue
        rep, exp = reports[label], experiments[label]
        z = rep.laws[0].zero_shot.agreement
        out.append(Evidence(arch, structure, normalized, notebook, exp.spec.name, preset,
                            recipe=_recipe(exp.results), n=int(z.n), seeds=int(z.n_seeds),
                            laws={r.name: _from_agreement(r.zero_shot.agreement) for r in rep.laws},
                            optimizer=optimizer))
    return out


def _recipe(rows) -> str:
    """The recipe the rows were trained with, as ``layout/init/readout``."""
    parts = [sorted(set(map(str, rows[c]))) for c in ("layout", "init", "readout") if c in rows]
    return "/".join("+".join(p) for p in parts) or "unknown"


def from_residual_depth(rd: ResidualDepth, preset: str, *, n_boot: int = 1000, seed: int = 0,
                        notebook: str = "notebooks/11_which_law.ipynb") -> Evidence:
    """The residual MLP chains: every law on the unscaled nets, and ``depth_mup`` (branches times
    ``1/sqrt(K)``, one LR) from the Depth-muP nets."""
    laws_rep = rd.laws("standard", holdout=0.0, seed=seed, n_boot=n_boot)
    laws = {r.name: _from_agreement(r.zero_shot.agreement) for r in laws_rep.laws}
    mup = [t for t in rd.transfers(n_boot=n_boot, seed=seed) if t.law == "constant"][0]
    laws["depth_mup"] = _from_agreement(mup.overall)
    z = laws_rep.laws[0].zero_shot.agreement
    return Evidence("mlp", "residual", False, notebook, rd.spec.name, preset,
                    recipe=_recipe(rd.results["standard"]), n=int(z.n), seeds=int(z.n_seeds), laws=laws)


def from_residual_norm(rn: ResidualNorm, *, notebook: str = "notebooks/11b_residual_norm.ipynb"
                       ) -> list[Evidence]:
    """The residual CNNs without and with BatchNorm: every law on the unscaled nets and ``depth_mup``
    from the branch-scaled ones (the reference layout of :class:`ResidualCNN`, torch's default init)."""
    table = rn.table()
    out = []
    for normalized, family in ((False, "plain"), (True, "batchnorm")):
        own = table[table["family"] == family]
        mup = table[(table["family"] == f"{family}, Depth-muP") & (table["law"] == "constant")]
        if own.empty:
            continue
        laws = {r.law: _law(r.error_factor, r.lo, r.hi) for r in own.itertuples()}
        if not mup.empty:
            r = mup.iloc[0]
            laws["depth_mup"] = _law(r.error_factor, r.lo, r.hi)
        rep = rn.reports[family]
        out.append(Evidence("cnn", "residual", normalized, notebook, f"residual_norm_{rn.preset}", rn.preset,
                            recipe="pre-activation residual CNN, torch default init",
                            n=int(own["n_depths"].iloc[0]),
                            seeds=int(rep.config["n_seeds"]), laws=laws,
                            note=f"depths {', '.join(f'{s:g}' for s in rep.sizes)}"))
    return out


def publish(records: Iterable[Evidence], evidence_dir: str | Path | None = None) -> list[str]:
    """Print each record as ``evidence <name> <json>`` and write it to ``evidence_dir`` when given."""
    lines = []
    for ev in records:
        d = ev.to_dict()
        d.pop("date")
        lines.append(_PREFIX + ev.name + " " + json.dumps(d, sort_keys=True))
        if evidence_dir is not None:
            record_evidence(ev, evidence_dir)
    print("\n".join(lines))
    return lines


def parse_published(text: str) -> dict[str, dict]:
    """The records :func:`publish` printed in ``text``, by name (what a test compares with the files)."""
    out = {}
    for line in text.splitlines():
        if line.startswith(_PREFIX):
            name, _, payload = line[len(_PREFIX):].partition(" ")
            out[name] = json.loads(payload)
    return out
