"""How far to trust a plan's learning rate: the graph's regime, the evidence for it, a warning (no torch).

:func:`regime_of` sorts a graph into the regimes the project's evidence is organized by
(:data:`archscale.core.evidence.REGIMES`):

* ``chain``: one input-output path;
* ``cell``: several paths in a graph of at most 4 vertices (the paper's NAS-style cells);
* ``residual``: a chain of two or more residual blocks (:func:`archscale.core.residual.residual_blocks`
  with projection shortcuts: ResNets, stages and width changes included), whose path count grows
  exponentially with depth;
* ``multi-branch``: any other graph of more than 4 vertices with several paths (dense
  concatenations, inception modules): no sweep of the project measures it yet.

:func:`alternatives` gives every applicable law's LR; :func:`assess` the :class:`Trust` line:
the law used, the regime, the measured error factor of that law in that regime with its
interval, n and sweep, and a warning when the graph is outside every measured regime, the law
was never measured there, its measured error is large, or the LR is implausibly small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dag import Dag
from .errors import ArchscaleError, DagError
from .evidence import REGIMES, Evidence, incumbent, load_evidence
from .laws import LAWS
from .residual import residual_blocks

__all__ = ["IMPLAUSIBLE", "POOR", "Trust", "alternatives", "assess", "default_law", "regime_of"]

#: An LR more than this many times below the base gets a warning.
IMPLAUSIBLE = 100.0
#: A law whose measured error factor exceeds this gets a warning.
POOR = 2.0


def regime_of(dag: Dag, arch: str, normalized: bool = False) -> tuple[str, str, bool]:
    """``(arch, structure, normalized)`` with structure ``chain``, ``cell`` or ``residual``."""
    if dag.n_paths == 1:
        return (arch, "chain", normalized)
    try:
        k = len(residual_blocks(dag, projection=True))
    except (DagError, ArchscaleError):
        k = 0
    if k >= 2:
        return (arch, "residual", normalized)
    if dag.n_vertices <= 4 or k == 1:
        return (arch, "cell", normalized)
    return (arch, "multi-branch", normalized)


def describe(regime: tuple[str, str, bool]) -> str:
    """A regime in words."""
    arch, structure, normalized = regime
    return REGIMES.get(regime, f"a {'normalized ' if normalized else ''}{arch.upper()} {structure} graph")


def alternatives(dag: Dag, base: Dag, *, offset: float, q: float | None = None, q_base: float | None = None,
                 residual: bool = False) -> dict[str, float]:
    """``eta / eta_base`` under every law of :data:`LAWS` (eq. 9's kernel factor included for CNNs),
    plus ``depth_mup`` (one LR, the branches scaled) when the graph is residual."""
    out = {name: float(law.scale(dag, base, offset=offset, q=q, q_base=q_base)) for name, law in LAWS.items()}
    if residual:
        out["depth_mup"] = q_base / q if q and q_base else 1.0
    return out


def default_law(regime: tuple[str, str, bool], evidence: dict | None = None, optimizer: str = "sgd") -> str:
    """The law the evidence of ``optimizer`` supports for ``regime`` (:meth:`Evidence.default_law`);
    without evidence the optimizer's incumbent (eq. 8 for SGD, no graph factor for Adam/AdamW)."""
    ev = (load_evidence(optimizer=optimizer) if evidence is None else evidence).get(regime)
    return incumbent(optimizer) if ev is None else ev.default_law()


@dataclass(frozen=True)
class Trust:
    """How far to trust a plan's LR: ``law`` gave it, ``regime`` is the graph's kind, ``evidence`` the
    measured error factor of that law there (None when never measured), ``warning`` None or one sentence."""

    law: str
    regime: tuple[str, str, bool]
    evidence: str | None
    warning: str | None
    record: Evidence | None = None

    def line(self) -> str:
        """One line: the law, the regime and the evidence, then the warning if any."""
        text = f"law {self.law} on {describe(self.regime)}: "
        text += (f"measured error factor {self.evidence}" if self.evidence
                 else "no measurement of this law on such graphs")
        return text + (f". Warning: {self.warning}" if self.warning else "")

    def to_dict(self) -> dict:
        return {"law": self.law, "regime": "/".join(map(str, self.regime)), "evidence": self.evidence,
                "warning": self.warning}


def assess(law: str, regime: tuple[str, str, bool], scale: float | None, *,
           evidence: dict | None = None, optimizer: str = "sgd") -> Trust:
    """The :class:`Trust` of an LR ``base_lr * scale`` given by ``law`` on a graph of ``regime``,
    trained with ``optimizer``: quoted from that optimizer's evidence (``evidence``: its records by
    regime, default the package's)."""
    records = load_evidence(optimizer=optimizer) if evidence is None else evidence
    ev = records.get(regime)
    measured = ev.laws.get(law) if ev else None
    text = f"{measured.format()} ({ev.provenance()})" if ev and measured else None
    warnings = []
    check = "archscale check" + ("" if optimizer == "sgd" else f" --optimizer {optimizer}")
    if not records:
        warnings.append(f"no measurement of the project was trained with {optimizer}; under {optimizer} the "
                        f"graph's effect on the maximal LR is unmeasured here (measure it with {check})")
    elif ev is None:
        known = ", ".join(sorted(e.name for e in records.values())) or "none"
        under = "" if optimizer == "sgd" else f" under {optimizer}"
        warnings.append(f"this graph ({describe(regime)}) is outside every measured regime{under} ({known}); "
                        f"measure its maximal LR ({check}) before trusting {law}")
    elif measured is None:
        warnings.append(f"{law} was never measured on {describe(regime)}; measured there: "
                        + ", ".join(f"{k} {v.format()}" for k, v in sorted(ev.laws.items())))
    elif measured.error_factor > POOR:
        best = ev.best()
        warnings.append(f"{law} misses the measured maximal LR by a factor {measured.format()} on such graphs"
                        + (f"; {best} did best there ({ev.laws[best].format()})" if best != law else ""))
    if scale is not None and math.isfinite(scale) and scale < 1 / IMPLAUSIBLE:
        warnings.append(f"the LR is {1 / scale:.3g}x below the base LR, implausibly small; measure the "
                        f"maximal LR of this family ({check}) before training with it")
    return Trust(law, regime, text, "; ".join(warnings) or None, ev)
