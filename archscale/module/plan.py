"""``archscale.apply(model, x)``: the architecture-aware init and learning rate of any module.

:func:`apply` reads the module's graph (:mod:`archscale.module.capture`), draws every weight by the
target in-degree rule (:mod:`archscale.module.layout`: ``scaling.init_std`` per edge; the readout
mean-field by ``scaling.readout_std``), and transfers the learning rate the user tuned on a base
network by eq. 8/9 (``scaling.lr_scale``, the path-sum dynamic program; per edge for mixed kernel
sizes). The returned :class:`Plan` holds the graph, a per-edge table, the scale and LR, the path
histogram, the predicted forward second moment of every vertex for the layout as written
(``core.moments.layout_moments``, infinite width) and the optimizer's parameter groups.

With ``depth_mup=True`` the graph must be a residual chain (:mod:`archscale.core.residual`): the last
weighted module of every residual branch gets its output multiplied by ``1/sqrt(K)`` (a forward
hook), and the learning rate is the same at every depth (Depth-muP) instead of eq. 8's.
"""

from __future__ import annotations

import html
import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, DagError
from ..core.residual import residual_blocks
from ..core.scaling import as_dag, convention, lr_scale
from ..core.trust import Trust, alternatives, assess, default_law, regime_of
from .adam_rule import AdamRule, adam_rule
from .capture import Capture, capture
from .depth_mup import BranchMultiplier, blocks_of, install_depth_mup
from .layout import RECIPES, edge_table, initialize, measured_moments, predicted_moments
from .ops import NORM_MODULES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["READOUT_MODES", "BranchMultiplier", "Plan", "apply"]

READOUT_MODES = ("mean_field", "standard", "reference", "keep")
#: Predicted growth above which a vertex is flagged: identity skips carry their source's variance.
_GROWTH_NOTE = 1.05

@dataclass
class Plan:
    """What :func:`apply` read and decided; ``print(plan)`` or display it in a notebook.

    ``modules`` has one row per edge (one per Linear/Conv, one per piece for a module reading a
    concatenation): module path, role (stem/edge/readout/gate/unused), type, the piece's channels
    (``input``), source and target vertex, the target's in-degree (live edges, what the rule divides
    by), fan-in, gain and the init std the rule gives (NaN where the plan keeps the user's weights).
    ``scale`` is ``eta_target / eta_base`` and ``lr = base_lr * scale`` (``None`` without a
    base LR). ``second_moments[v]`` is the predicted ``E[z_v^2] / E[z_0^2]`` at infinite width
    (without branch multipliers). ``branch_multipliers`` maps the module closing each residual
    branch to the multiplier ``apply(depth_mup=True)`` installed on it (empty otherwise).
    """

    graph: Dag
    arch: str
    kernel_size: int | None
    base: str
    base_kernel: int | None
    offset: int
    scale: float
    base_lr: float | None
    lr: float | None
    modules: pd.DataFrame
    second_moments: list[float]
    notes: list[str] = field(default_factory=list)
    initialized: bool = False
    branch_multipliers: dict[str, float] = field(default_factory=dict)
    capture: Capture | None = field(default=None, repr=False)
    model: nn.Module | None = field(default=None, repr=False)
    adam: AdamRule | None = field(default=None, repr=False)  # apply(optimizer="adam"/"adamw")
    law: str = "eq8"
    trust: Trust | None = None
    alternative_scales: dict[str, float] = field(default_factory=dict)
    recipe: str = "paper"
    layout: str = "paper"

    @property
    def alternatives(self) -> dict[str, float]:
        """Every applicable law's LR (its scale when the plan has no base LR): ``eq8`` (eq. 9 for CNNs),
        ``effective_depth``, ``longest_path``, ``path_count``, ``constant`` and, on residual graphs,
        ``depth_mup`` (one LR with the branches scaled). ``apply(..., law=...)`` picks one."""
        k = 1.0 if self.base_lr is None else self.base_lr
        return {name: k * v for name, v in self.alternative_scales.items()}

    # ------------------------------------------------------------------ paths
    @property
    def n_paths(self) -> int:
        return self.graph.n_paths

    @property
    def depth_counts(self) -> dict[int, int]:
        """``{L_p: number of paths}`` under the plan's depth offset."""
        return self.graph.depth_counts(self.offset)

    @property
    def path_sum(self) -> int:
        """``sum_p L_p^3``, the architecture term of eq. 8."""
        return self.graph.path_power_sum(3, self.offset)

    def paths(self, limit: int = 50) -> list[dict]:
        """Up to ``limit`` end-to-end paths: vertices, the modules on them (or ``skip``), and depth."""
        layers: dict[tuple[int | None, int | None], list[str]] = {}
        for la in self.capture.layers if self.capture else []:
            if la.role == "edge":
                for inp in la.inputs:
                    layers.setdefault((inp.src, la.dst), []).append(la.path)
        name: dict[int, str] = {}  # id of each block edge -> its module (parallel edges in order)
        for e in self.graph.edges:
            if e.is_parameterized:
                names = layers.get((e.src, e.dst), [])
                name[id(e)] = names.pop(0) if names else "block"
        out = []
        for path in itertools.islice(self.graph.iter_edge_paths(), limit):
            out.append({"vertices": [0] + [e.dst for e in path],
                        "ops": [name[id(e)] if e.is_parameterized else "skip" for e in path],
                        "depth": self.offset + sum(e.is_parameterized for e in path)})
        return out

    @property
    def depth_mup(self) -> bool:
        """Whether the plan installed Depth-muP's residual branch multipliers."""
        return bool(self.branch_multipliers)

    def residual_blocks(self):
        """One row per residual block (refused unless the graph is a residual chain): start and merge
        vertex, the branch's modules, the module closing it, and Depth-muP's multiplier ``1/sqrt(K)``."""
        import pandas as pd

        blocks = residual_blocks(self.graph, projection=True)
        names = _edge_modules(self.capture)
        rows = [{"block": i + 1, "start": b.start, "merge": b.merge,
                 "branch": " -> ".join(names.get((e.src, e.dst), "?") for e in b.branch),
                 "closing_module": names.get((b.closing.src, b.closing.dst), "?"), "layers": b.layers,
                 "depth_mup_multiplier": 1.0 / len(blocks) ** 0.5} for i, b in enumerate(blocks)]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ optimizer
    def param_groups(self, lr: float | None = None) -> list[dict]:
        """Parameter groups for ``torch.optim`` labelled ``stem``/``hidden``/``readout``, each at the LR.

        ``hidden`` also holds every parameter outside the stem and the readout (unused modules,
        normalization layers, side-branch gates). ``lr`` overrides the plan's.
        """
        lr = self.lr if lr is None else validate.learning_rate(lr)
        if lr is None:
            raise ArchscaleError("the plan has no learning rate: pass base_lr to apply(), or lr= here")
        if self.model is None or self.capture is None:
            raise ArchscaleError("this plan holds no model; build it with archscale.apply(model, x)")
        if self.adam is not None:  # Adam's width rule (module/adam_rule.py)
            return self.adam.param_groups(self.model, self.capture.layers, lr)
        role = {}
        for la in self.capture.layers:
            for p in la.module.parameters(recurse=False):
                role[id(p)] = la.role if la.role in ("stem", "readout") else "hidden"
        groups: dict[str, list] = {"stem": [], "hidden": [], "readout": []}
        for p in self.model.parameters():
            groups[role.get(id(p), "hidden")].append(p)
        return [{"params": ps, "lr": lr, "name": name} for name, ps in groups.items() if ps]

    # ------------------------------------------------------------------ moments
    def measured_second_moments(self, x: torch.Tensor) -> list[float]:
        """Measured ``E[z_v^2] / E[z_0^2]`` of every vertex on the batch ``x`` (no gradient; in eval mode,
        or with normalizations in training mode for ``norm="renormalize"``; NaN for an output vertex
        that concatenates)."""
        if self.capture is None or self.model is None:
            raise ArchscaleError("this plan holds no traced model")
        return measured_moments(self.capture, self.model, x)

    # ------------------------------------------------------------------ display
    def summary(self) -> dict[str, str]:
        out = {"lr": f"{self.lr:.6g} (base {self.base_lr:g}, law {self.law})" if self.lr is not None else
               f"pass base_lr to get one (lr = base_lr x scale; law {self.law})"}
        if self.trust is not None:
            out["trust"] = self.trust.line()
        if self.alternative_scales:
            unit = "lr" if self.base_lr is not None else "scale"
            out["alternatives"] = f"{unit} by law: " + ", ".join(f"{k} {v:.4g}"
                                                                 for k, v in self.alternatives.items())
        out.update(self._details())
        return out

    def _details(self) -> dict[str, str]:
        hist = _clip(", ".join(f"{c} x L={d}" for d, c in self.depth_counts.items()), "plan.depth_counts")
        base = f"{self.base}" + (f", kernel {self.base_kernel}" if self.base_kernel else "")
        size = f"{self.graph.n_vertices} vertices, {len(self.graph.edges)} edges; all of it: plan.graph"
        out = {"graph": _clip(str(self.graph), size),
               "arch": self.arch + (f", kernel q = {self.kernel_size}" if self.kernel_size else
                                    ", mixed kernel sizes (eq. 9 per edge)" if self.arch == "cnn" else ""),
               "paths": f"{self.n_paths} ({hist}; L_p = {self.offset} + weighted edges)",
               "sum L_p^3": str(self.path_sum),
               "base": base, "scale": f"{self.scale:.6g}"}
        out["recipe"] = (f"{self.recipe} (layout read: {self.layout})")
        out["init"] = ("applied in place: weights by the target in-degree rule, biases zero"
                       if self.initialized else "not applied (init=False); the table shows the stds")
        if self.depth_mup:
            m = next(iter(self.branch_multipliers.values()))
            out["depth-muP"] = (f"branch outputs x {m:.4g} = 1/sqrt({len(self.branch_multipliers)}) on "
                                f"{', '.join(self.branch_multipliers)}; one LR at every depth")
        tail = ", without the multipliers)" if self.depth_mup else ")"
        moments = _clip(" ".join(f"{m:.3g}" for m in self.second_moments), "plan.second_moments")
        out["E[z^2] / E[z_0^2]"] = moments + " (predicted per vertex, infinite width" + tail
        return out

    def to_dict(self) -> dict:
        """A JSON-friendly summary (the CLI's ``--json``)."""
        return {"graph": str(self.graph), "code": self.graph.code if self.graph.has_code else None,
                "arch": self.arch, "kernel_size": self.kernel_size, "base": self.base,
                "base_kernel": self.base_kernel, "offset": self.offset, "scale": self.scale,
                "base_lr": self.base_lr, "lr": self.lr, "paths": self.n_paths,
                "depth_counts": {str(k): v for k, v in self.depth_counts.items()},
                "path_sum": self.path_sum, "in_degrees": list(self.graph.live_in_degrees),
                "second_moments": self.second_moments, "depth_mup": self.depth_mup,
                "branch_multipliers": dict(self.branch_multipliers),
                "modules": self.modules.astype(object).where(self.modules.notna(), None)
                .to_dict(orient="records"),
                "notes": self.notes, "law": self.law,
                "trust": None if self.trust is None else self.trust.to_dict(),
                "alternatives": self.alternatives, "recipe": self.recipe, "layout": self.layout}

    def __repr__(self) -> str:
        lines = ["archscale plan"] + [f"  {k:<18} {v}" for k, v in self.summary().items()]
        lines += ["", self.modules.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self.summary().items())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div><b>archscale plan</b><table>{rows}</table>"
                f"{self.modules.to_html(index=False, float_format=lambda v: f'{v:.4g}', na_rep='')}"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


# ---------------------------------------------------------------------------------------- apply
def _base(base, example_input, base_input, arch: str, norm: str, base_kernel: int | None, gating: str
          ) -> tuple[Dag, int | None, str, Capture | None]:
    """The base graph, its kernel (CNNs), a label and its capture, from a module, a Dag, a code or None."""
    conv = convention(arch)
    if isinstance(base, nn.Module):
        cap = capture(base, example_input if base_input is None else base_input, norm=norm, gating=gating,
                      warn=False)
        if cap.arch != arch:
            raise ArchscaleError(f"the base network is an {cap.arch.upper()} and the model an "
                                 f"{arch.upper()}; transfer the LR between networks of one kind "
                                 f"(both MLPs or both CNNs)")
        kernel = base_kernel if base_kernel is not None else cap.kernel_size
        return cap.graph, kernel, f"{type(base).__name__} ({cap.graph})", cap
    if base_input is not None:
        raise ArchscaleError("base_input applies only when base is an nn.Module")
    dag = as_dag(conv.base if base is None else base, arch)
    kernel = (conv.base_kernel if base_kernel is None else base_kernel) if conv.uses_kernel else None
    return dag, kernel, f"'{dag}'" + (" (one hidden layer)" if base is None else ""), None


def _q(kernel: int | None, areas: dict | None) -> float:
    """eq. 9's q, or for mixed kernels the root of the edges' mean kernel area."""
    if kernel is not None:
        return float(kernel)
    flat = [float(a) for values in (areas or {}).values() for a in values]
    return math.sqrt(sum(flat) / len(flat)) if flat else 3.0


def _edge_modules(cap: Capture | None) -> dict[tuple[int | None, int | None], str]:
    """Module path of the weighted edge ``src -> dst`` (a residual chain has at most one per pair)."""
    return {(inp.src, la.dst): la.path for la in (cap.layers if cap else []) if la.role == "edge"
            for inp in la.inputs}


def _moment_notes(graph: Dag, moments: list[float]) -> list[str]:
    grown = [v for v in range(graph.n_vertices) if moments[v] > _GROWTH_NOTE
             and any(not e.is_parameterized and e.dst == v for e in graph.edges)]
    if not grown:
        return []
    listed = ", ".join(f"vertex {v} {moments[v]:.2f}x" for v in grown[:6])
    listed += ", ..." if len(grown) > 6 else ""
    return [f"identity skips make the forward second moment grow (predicted E[z^2] relative to vertex 0 "
            f"at infinite width: {listed}): a skip carries its source's full variance, which no weight "
            f"scaling of the in-degree rule can prevent (about 1.5x per residual block measured at "
            f"width 1024)"]


_SHOWN = 240


def _clip(text: str, rest: str) -> str:
    """``text`` cut to about one screen line for the plan's display, saying where the rest is."""
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN - 40].rstrip(', ')} ... ({rest})"


def apply(model: nn.Module, example_input: torch.Tensor, base_lr: float | None = None, base=None,
          init: bool = True, readout: str | None = None, *, base_input: torch.Tensor | None = None,
          norm: str = "pass-through", kernel_size: int | None = None, base_kernel: int | None = None,
          offset: int | None = None, gain: float = 2.0, seed: int | None = None,
          depth_mup: bool = False, gating: str = "error", optimizer: str = "sgd",
          base_width: int | None = None, law: str | None = None, recipe: str = "paper") -> Plan:
    """Read ``model``'s graph on ``example_input``, initialize it by the in-degree rule, and scale the LR.

    ``base`` is the network ``base_lr`` was tuned on: another ``nn.Module`` (traced on
    ``base_input``, default ``example_input``), a :class:`~archscale.core.dag.Dag` or a code string;
    default the one-hidden-layer base ``'1'`` (kernel 3 for CNNs), as in ``scaled_lr``. With
    ``init=True`` every stem and edge weight is redrawn in place with std
    ``sqrt(gain / (d_in(target) * fan_in))`` and bias 0 (``gain`` 1 for an edge with no activation in
    front of its weights; one row and std per piece for a module reading a concatenation), and the
    readout per ``readout`` (``mean_field``: ``sqrt(gain) / fan_in``; ``standard``:
    ``sqrt(gain / fan_in)``; ``keep``: the user's), from torch's global RNG or, given ``seed``, a
    forked one (:mod:`archscale.module.layout`). ``norm`` reads normalization layers as the identity
    (``"pass-through"``, the default; ``"ignore"`` is its old name), as resetting the second moment
    (``"renormalize"``) or refuses them (``"error"``); ``gating="ignore"`` reads side-branch gates
    (squeeze-excitation) as pass-throughs (:mod:`archscale.module.capture`); one warning names the
    approximations taken. Convolutions of mixed kernel sizes get eq. 9 per edge
    (:mod:`archscale.core.kernels`) unless ``kernel_size`` sets one q; ``offset`` is the depth offset
    (default 3: ``L_p`` = weighted edges + 3, stem and readout included).

    ``depth_mup=True`` (Depth-muP, :mod:`archscale.core.residual`) needs a residual chain: the module
    closing each of its ``K`` residual branches gets a forward hook multiplying its output by
    ``1/sqrt(K)`` (a later ``apply`` without it removes the hook), and ``lr = base_lr`` at every
    depth (times eq. 9's kernel factor ``q_base / q`` for convolutions): tune ``base_lr`` on a
    shallow net of the same family with ``depth_mup=True``.

    ``law`` picks the law that moves the LR (``plan.alternatives`` lists them; ``"depth_mup"`` is
    ``depth_mup=True``); by default the one the project's measurements support for this kind of graph
    (:func:`archscale.core.trust.default_law`), eq. 8/9 unless another law's measured error is
    separated from it. ``plan.trust`` says which law gave the LR, the graph's regime, that law's
    measured error factor there (interval, n, the sweep) and a warning when the LR is outside what
    was measured. ``recipe="paper"`` (default: the target in-degree rule and the mean-field readout,
    what the paper derives) or ``"reference"`` (the reference code's, with which the project's
    evidence was measured: fan-out He init over the source's in-degree and a readout of std
    ``2 / out_dim``); the recipe factorial of notebook 05b does not separate the two (eq. 8's log r
    0.88 [-0.10, 0.97] with the reference recipe against 0.82 [0.44, 0.97] with the paper's, n = 12).
    ``readout`` overrides the recipe's readout.

    ``optimizer="adam"`` or ``"adamw"`` (:mod:`archscale.module.adam_rule`): ``param_groups`` gives
    muP's Adam LRs (hidden and readout weights x ``base_width`` / their fan-in width, input weights
    and biases x 1; ``base_width`` is the width ``base_lr`` was tuned at, default the model's), times
    the graph factor of the law the AdamW evidence supports for the graph's regime (notebook 12: eq. 8
    on MLP chains and cells, where it is separated from no factor), else none (muP's rule,
    ``constant``); ``plan.trust`` quotes the AdamW measurement, or says there is none.
    """
    validate.boolean(init, "init")
    validate.boolean(depth_mup, "depth_mup")
    validate.choice(recipe, "recipe", RECIPES)
    readout = ("reference" if recipe == "reference" else "mean_field") if readout is None else readout
    validate.choice(readout, "readout", READOUT_MODES)
    if law == "depth_mup":
        depth_mup = True
    gain = validate.number(gain, "gain", positive=True, example="2.0")
    base_lr = None if base_lr is None else validate.learning_rate(base_lr, "base_lr")
    cap = capture(model, example_input, norm=norm, kernel_size=kernel_size, gating=gating, warn=False)
    conv = convention(cap.arch)
    off = conv.offset if offset is None else validate.integer(offset, "offset", minimum=0)
    if base_kernel is not None:
        validate.kernel_size(base_kernel, "base_kernel")
        if not conv.uses_kernel:
            raise ArchscaleError("base_kernel applies to convolutional models only; this one has no conv")
    base_dag, b_kernel, base_label, base_cap = _base(base, example_input, base_input, cap.arch, norm,
                                                     base_kernel, gating)
    approx = cap.approximations + (base_cap.approximations if base_cap is not None else [])
    if approx:
        warnings.warn(f"archscale read {type(model).__name__} approximately: {'; '.join(approx)} (see the "
                      f"plan's notes)", stacklevel=2)
    cap.graph.require_path()
    b_areas = base_cap.kernel_areas if base_cap is not None and base_kernel is None else None
    scale = lr_scale(cap.graph, cap.arch, cap.kernel_size, offset=off, base=base_dag,
                     base_kernel=b_kernel if conv.uses_kernel else None,
                     kernel_areas=cap.kernel_areas if conv.uses_kernel else None,
                     base_kernel_areas=b_areas if conv.uses_kernel else None)
    normalized = any(isinstance(m, NORM_MODULES) for m in model.modules())
    regime = regime_of(cap.graph, cap.arch, normalized)
    q = (_q(cap.kernel_size, cap.kernel_areas), _q(b_kernel, b_areas)) if conv.uses_kernel else (None, None)
    alts = {**alternatives(cap.graph, base_dag, offset=off, q=q[0], q_base=q[1],
                           residual=_has_blocks(cap.graph)), "eq8": scale}
    chosen = "depth_mup" if depth_mup else (default_law(regime, optimizer=optimizer) if law is None else law)
    eq8 = scale
    rule = adam_rule(optimizer, cap, base_width, depth_mup)  # refuses Depth-muP under Adam
    if chosen == "depth_mup" and chosen not in alts:
        blocks_of(model, cap)  # says, naming modules, why this is no chain of residual blocks
    if chosen not in alts:
        raise ArchscaleError(f"unknown or inapplicable law {chosen!r} for this model; accepted: "
                             f"{', '.join(alts)}")
    scale = alts[chosen]
    multipliers, mup_notes = install_depth_mup(model, cap, depth_mup)
    table = edge_table(cap, readout, gain, recipe)
    if rule is not None:
        rule.annotate(table)
    if multipliers:
        table["multiplier"] = [multipliers.get(p, 1.0) for p in table["module"]]
        mup_notes.append(f"Depth-muP: branch outputs x 1/sqrt({len(multipliers)}) and one learning rate at "
                         f"every depth (scale {scale:.4g}); eq. 8 would scale the LR by {eq8:.4g} instead")
    trust = assess(chosen, regime, scale, optimizer=optimizer)
    if init:
        if seed is None:
            initialize(cap, table)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(validate.integer(seed, "seed"))
                initialize(cap, table)
    moments = predicted_moments(cap, table, example_input, initialized=init)
    return Plan(graph=cap.graph, arch=cap.arch, kernel_size=cap.kernel_size, base=base_label,
                base_kernel=b_kernel if conv.uses_kernel else None, offset=off, scale=scale, base_lr=base_lr,
                lr=None if base_lr is None else base_lr * scale, modules=table, second_moments=moments,
                notes=list(cap.notes) + _moment_notes(cap.graph, moments) + mup_notes
                + (rule.notes if rule else []), initialized=init, branch_multipliers=multipliers,
                capture=cap, model=model, adam=rule, law=chosen, trust=trust, alternative_scales=alts,
                recipe=recipe, layout=_layout(cap))


def _has_blocks(graph: Dag) -> bool:
    """Whether the graph is a chain of residual blocks (where Depth-muP applies)."""
    try:
        residual_blocks(graph, projection=True)
    except DagError:
        return False
    return True


def _layout(cap: Capture) -> str:
    """Which block layout the module is written in: activations before the weights (the paper's),
    after them (the reference code's), or both."""
    edges = [la for la in cap.layers if la.role == "edge"]
    post = sum(1 for la in edges if la.post_act)
    if not edges or post == 0:
        return "paper (activation, then weights)"
    if post == len(edges):
        return "reference (weights, then activation)"
    return f"mixed ({post} of {len(edges)} edges apply their activation after the weights)"
