"""The paper's principles as pure functions (no torch).

* Initialization (eq. 2, 4; appendix eq. 11-12): a parameterized edge into vertex ``l`` has
  weight variance ``gain / (d_in(l) * fan_in)``; the readout is mean-field, ``gain / fan_in**2``.
* Learning rate (eq. 8, 9): ``eta = c * (sum_p L_p**3)**-0.5 * q**-1``; archscale transfers a
  base network's maximal LR by the ratio of these factors.

The depth offset means one thing everywhere: ``L_p = offset + (parameterized edges on p)`` for
the target **and** for the base network, whose default is the one-path graph ``"1"`` (depth
``offset``). :func:`lr_scale` is the one place that applies it; the command line, the sweeps'
comparison, the widgets and the notebooks all call it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from fractions import Fraction

from . import validate
from .dag import Dag
from .errors import ArchscaleError, DagError
from .kernels import Areas, kernel_path_sum

__all__ = [
    "CONVENTIONS",
    "INIT_SCHEMES",
    "Convention",
    "as_dag",
    "convention",
    "init_std",
    "lr_scale",
    "path_sum",
    "readout_std",
    "scale_factor",
    "scaled_lr",
    "second_moments",
]

#: Initialization schemes: the target in-degree rule, plain He, the source in-degree variant
#: (typeset eq. 4) and the reference code's (fan-out mode, raw source in-degree).
INIT_SCHEMES = ("archscale", "he", "source", "reference")


@dataclass(frozen=True)
class Convention:
    """How path depths are counted and what the base network is.

    ``L_p = offset + (parameterized edges on p)``. The base network is the graph ``base`` (a
    code; ``"1"``, a lone skip, is one path of depth ``offset``) with kernel ``base_kernel``
    (used only when ``uses_kernel``).
    """

    name: str
    offset: int
    base: str = "1"
    base_kernel: int = 3
    uses_kernel: bool = False

    def with_(self, **changes) -> Convention:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def base_depths(self) -> tuple[int, ...]:
        """Path depths of the base network under this convention's offset."""
        return tuple(Dag.parse(self.base, ops=self.name).path_depths(self.offset))


#: The reference code's conventions: DAG MLP/CNN between a stem and a readout count three extra
#: layers (the one-hidden-layer base is "L = 3"); NAS-Bench-201 cells count one.
CONVENTIONS: dict[str, Convention] = {
    "mlp": Convention("mlp", offset=3, base="1", base_kernel=3, uses_kernel=False),
    "cnn": Convention("cnn", offset=3, base="1", base_kernel=3, uses_kernel=True),
    "nb201": Convention("nb201", offset=1, base="1", base_kernel=3, uses_kernel=False),
}


def convention(arch: str) -> Convention:
    """The reference convention for ``arch`` (``mlp``, ``cnn`` or ``nb201``)."""
    return CONVENTIONS[validate.choice(arch, "architecture", tuple(CONVENTIONS))]


def as_dag(dag: Dag | str, arch: str | None = None) -> Dag:
    """``dag`` itself, or a code string parsed with the op set of ``arch`` (default ``mlp``)."""
    if isinstance(dag, Dag):
        return dag
    if isinstance(dag, str):
        return Dag.parse(dag, ops=convention(arch or "mlp").name)
    raise DagError(f"expected a Dag or a DAG code string such as '2_02_002', got {type(dag).__name__}")


def _offset(offset: object, conv: Convention) -> int:
    if offset is None:
        return conv.offset
    return validate.integer(offset, f"depth offset (reference: {conv.offset} for {conv.name})", minimum=0)


def path_sum(dag: Dag, offset: int, power: int = 3) -> int | float:
    """``sum_p L_p**power`` over end-to-end paths; raises when there is no path."""
    dag.require_path()
    return dag.path_power_sum(power=power, offset=offset)


def _log(x: float | Fraction) -> float:
    """``ln x`` of a positive int or fraction of any size (no float overflow)."""
    if isinstance(x, float):
        return math.log(x)
    x = Fraction(x)
    return math.log(x.numerator) - math.log(x.denominator)


def scale_factor(depth_power_sum: float, power: int = 3) -> float:
    """``S = (sum_p L_p**power)**-0.5``, the architecture part of eq. 8."""
    if not depth_power_sum > 0:
        raise ArchscaleError(
            "the path sum is zero: every path has depth 0 under this offset; use offset >= 1"
        )
    # Python ints of any size: take the root in log space to avoid float overflow.
    return math.exp(-0.5 * math.log(depth_power_sum))


def lr_scale(
    dag: Dag | str,
    arch: str | None = None,
    kernel_size: int | None = None,
    *,
    offset: int | None = None,
    base: Dag | str | None = None,
    base_depths: tuple[float, ...] | list[float] | None = None,
    base_kernel: int | None = None,
    power: int = 3,
    all_skip: str = "eq8",
    kernel_areas: Areas | None = None,
    base_kernel_areas: Areas | None = None,
) -> float:
    """Ratio ``eta_target / eta_base`` from eq. 8 (MLP) or eq. 9 (CNN).

    ``S(target) / S(base) * (base_kernel / kernel_size for CNNs)``. ``arch`` defaults to the
    DAG's op set (``mlp`` for a code string). ``offset`` shifts the depths of the target and of
    the base alike; ``base`` (a Dag or code, default ``"1"``) is the network the base LR was
    tuned on. ``base_depths`` instead gives the base's path depths directly (absolute, not
    shifted). ``all_skip="reference"`` reproduces the reference code's quirk of collapsing a
    graph whose paths carry no parameterized edge to one path of depth ``offset``.

    ``kernel_areas`` (CNNs: ``{(src, dst): [q^2 of each weighted edge]}``) applies eq. 9 to edges of
    different kernel sizes (:mod:`archscale.core.kernels`: each path's ``q^2 L_p^3`` becomes
    ``L_p^2 (offset a_ref + sum of its edges' areas)``); ``kernel_size`` is then the fallback for a
    graph without weighted edges. ``base_kernel_areas`` does the same for the base graph.
    """
    dag = as_dag(dag, arch)
    conv = convention(arch or dag.ops)
    validate.choice(all_skip, "all_skip", ("eq8", "reference"))
    off = _offset(offset, conv)
    if base_depths is not None:
        if base is not None:
            raise ArchscaleError("give either base (a graph) or base_depths (its path depths), not both")
        depths = list(base_depths) if not isinstance(base_depths, numbers.Number) else [base_depths]
        if not depths:
            raise ArchscaleError("base_depths is empty; give the base network's path depths, e.g. [3]")
        depths = [validate.number(d, "every base depth", positive=True, example="3") for d in depths]
        base_sum = sum(d**power for d in depths)
    else:
        base_sum = path_sum(as_dag(conv.base if base is None else base, conv.name), off, power)
    dag.require_path()
    counts = dag.depth_counts(off)
    if all_skip == "reference" and set(counts) == {off}:
        target_sum = off**power  # the reference's collapse to a single path
    else:
        target_sum = dag.path_power_sum(power=power, offset=off)
    ratio = scale_factor(target_sum, power) / scale_factor(base_sum, power)
    if conv.uses_kernel and (kernel_areas is not None or base_kernel_areas is not None):
        if power != 3 or base_depths is not None or all_skip != "eq8":
            raise ArchscaleError("kernel areas apply to eq. 9 itself (power 3, a base graph, all_skip='eq8')")
        q = validate.kernel_size(3 if kernel_size is None else kernel_size)
        qb = validate.kernel_size(conv.base_kernel if base_kernel is None else base_kernel,
                                  "base kernel size")
        base_dag = as_dag(conv.base if base is None else base, conv.name)
        t = (kernel_path_sum(dag, kernel_areas, off, fallback=q * q) if kernel_areas is not None
             else q * q * target_sum)
        tb = (kernel_path_sum(base_dag, base_kernel_areas, off, fallback=qb * qb)
              if base_kernel_areas is not None else qb * qb * base_sum)
        return math.exp(0.5 * (_log(tb) - _log(t)))
    if kernel_areas is not None or base_kernel_areas is not None:
        raise ArchscaleError(f"kernel areas apply only to arch 'cnn', not {conv.name!r}")
    if conv.uses_kernel:
        q = validate.kernel_size(3 if kernel_size is None else kernel_size)
        qb = validate.kernel_size(conv.base_kernel if base_kernel is None else base_kernel,
                                  "base kernel size")
        ratio *= qb / q
    elif kernel_size is not None or base_kernel is not None:
        raise ArchscaleError(
            f"a kernel size applies only to arch 'cnn', not {conv.name!r}; drop it or use cnn"
        )
    return ratio


def scaled_lr(base_lr: float, dag: Dag | str, arch: str | None = None, kernel_size: int | None = None,
              **kwargs) -> float:
    """``base_lr * lr_scale(dag, ...)``: the base network's maximal LR moved to ``dag`` (a Dag or code)."""
    return validate.learning_rate(base_lr, "base learning rate") * lr_scale(dag, arch, kernel_size, **kwargs)


def init_std(fan_in: int, in_degree: int = 1, gain: float = 2.0) -> float:
    """Weight std of a parameterized edge: ``sqrt(gain / (in_degree * fan_in))``.

    ``in_degree`` is the number of live non-zero edges entering the edge's target vertex (0 is
    treated as 1: such an edge carries no signal); ``gain = 2`` is He's ReLU gain.
    """
    fan_in = validate.positive_int(fan_in, "fan-in")
    in_degree = validate.integer(in_degree, "in-degree", minimum=0)
    gain = validate.number(gain, "gain", positive=True, example="2.0")
    return math.sqrt(gain / (max(in_degree, 1) * fan_in))


def readout_std(fan_in: int, gain: float = 2.0, mean_field: bool = True) -> float:
    """Readout weight std: mean-field ``sqrt(gain) / fan_in`` or standard ``sqrt(gain/fan_in)``."""
    fan_in = validate.positive_int(fan_in, "fan-in")
    gain = validate.number(gain, "gain", positive=True, example="2.0")
    return math.sqrt(gain) / fan_in if mean_field else math.sqrt(gain / fan_in)


def _init_divisor(dag: Dag, init: str, src: int, dst: int) -> int:
    """The in-degree a scheme divides a block edge's He variance by (fan-in = fan-out here)."""
    if init == "archscale":
        return max(dag.live_in_degrees[dst], 1)
    if init == "he":
        return 1
    if init == "source":
        return max(dag.live_in_degrees[src], 1)
    return max(dag.in_degrees[src], 1) if src else 1  # reference


def second_moments(dag: Dag | str, init: str = "archscale") -> list[list[Fraction]]:
    """Exact infinite-width covariance ``K[a][b] = E[z_a z_b] / (n E[z_0^2])`` of the vertices.

    Paper layout (vertices hold pre-activations, ReLU): a block edge adds ``W relu(z_src)`` with
    fresh zero-mean weights, so it is uncorrelated with everything else and adds
    ``K[src][src] / d`` (He's gain 2 halves by ReLU, ``d`` the in-degree the scheme divides
    by); a skip edge adds ``z_src`` itself and carries covariances along. The diagonal is the
    per-vertex second moment relative to the input vertex.
    """
    dag = as_dag(dag)
    validate.choice(init, "init scheme", INIT_SCHEMES)
    n = dag.n_vertices
    K = [[Fraction(0)] * n for _ in range(n)]
    K[0][0] = Fraction(1)
    for v in range(1, n):
        incoming = [e for e in dag.edges if e.dst == v]
        skips = [e.src for e in incoming if not e.is_parameterized]
        blocks = [e.src for e in incoming if e.is_parameterized]
        for a in range(v):  # covariance with earlier vertices flows only through skip edges
            K[a][v] = K[v][a] = sum((K[a][s] for s in skips), Fraction(0))
        K[v][v] = sum((K[s][s] / _init_divisor(dag, init, s, v) for s in blocks), Fraction(0)) \
            + sum((K[s][t] for s in skips for t in skips), Fraction(0))
    return K
