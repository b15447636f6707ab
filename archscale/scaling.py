"""The paper's principles as pure functions (no torch).

* Initialization (eq. 2, 4; appendix eq. 11-12): a parameterized edge into vertex ``l``
  has weight variance ``gain / (d_in(l) * fan_in)``; the readout is mean-field,
  ``gain / fan_in**2``.
* Learning rate (eq. 8, 9): ``eta = c * (sum_p L_p**3)**-0.5 * q**-1``; archscale
  transfers a base network's maximal LR by the ratio of these factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .dag import Dag

__all__ = [
    "CONVENTIONS",
    "Convention",
    "ScalingError",
    "check_kernel_size",
    "check_lr",
    "convention",
    "init_std",
    "lr_scale",
    "path_sum",
    "readout_std",
    "scale_factor",
    "scaled_lr",
]


class ScalingError(ValueError):
    """An argument the scaling rules cannot accept."""


@dataclass(frozen=True)
class Convention:
    """How path depths are counted and what the base network is.

    ``L_p = offset + (parameterized edges on p)``; the base network has path depths
    ``base_depths`` and kernel ``base_kernel`` (used only for CNNs).
    """

    name: str
    offset: int
    base_depths: tuple[int, ...]
    base_kernel: int = 3
    uses_kernel: bool = False

    def with_(self, **changes) -> Convention:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


#: The reference code's conventions: DAG MLP/CNN between a stem and a readout count
#: three extra layers (the one-hidden-layer base is "L = 3"); NAS-Bench-201 cells count one.
CONVENTIONS: dict[str, Convention] = {
    "mlp": Convention("mlp", offset=3, base_depths=(3,), base_kernel=3, uses_kernel=False),
    "cnn": Convention("cnn", offset=3, base_depths=(3,), base_kernel=3, uses_kernel=True),
    "nb201": Convention("nb201", offset=1, base_depths=(1,), base_kernel=3, uses_kernel=False),
}


def convention(arch: str) -> Convention:
    """The reference convention for ``arch`` (``mlp``, ``cnn`` or ``nb201``)."""
    try:
        return CONVENTIONS[arch]
    except KeyError:
        raise ScalingError(
            f"unknown architecture {arch!r}; accepted: {', '.join(CONVENTIONS)}"
        ) from None


def check_kernel_size(kernel_size: object) -> int:
    """Return ``kernel_size`` if it is a positive odd integer, else raise ScalingError."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
            or kernel_size % 2 == 0:
        raise ScalingError(
            f"kernel size must be a positive odd integer such as 3, 5 or 7; got {kernel_size!r}"
        )
    return kernel_size


def check_lr(lr: object, name: str = "learning rate") -> float:
    """Return ``lr`` as a float if it is finite and positive, else raise ScalingError."""
    try:
        value = float(lr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScalingError(f"{name} must be a positive number such as 0.1; got {lr!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ScalingError(f"{name} must be a positive finite number such as 0.1; got {lr!r}")
    return value


def path_sum(dag: Dag, offset: int, power: int = 3) -> int | float:
    """``sum_p L_p**power`` over end-to-end paths; raises when there is no path."""
    dag.require_path()
    return dag.path_power_sum(power=power, offset=offset)


def scale_factor(depth_power_sum: float, power: int = 3) -> float:
    """``S = (sum_p L_p**power)**-0.5``, the architecture part of eq. 8."""
    if depth_power_sum <= 0:
        raise ScalingError(
            "the path sum is zero: every path has depth 0 under this offset; use offset >= 1"
        )
    # Python ints of any size: take the root in log space to avoid float overflow.
    return math.exp(-0.5 * math.log(depth_power_sum))


def lr_scale(
    dag: Dag,
    arch: str | None = None,
    kernel_size: int | None = None,
    *,
    offset: int | None = None,
    base_depths: tuple[int, ...] | list[int] | None = None,
    base_dag: Dag | None = None,
    base_kernel: int | None = None,
    power: int = 3,
    all_skip: str = "eq8",
) -> float:
    """Ratio ``eta_target / eta_base`` from eq. 8 (MLP) or eq. 9 (CNN).

    ``S(target) / S(base) * (base_kernel / kernel_size for CNNs)``. ``arch`` defaults to the
    DAG's op set. ``offset``, ``base_depths`` (or ``base_dag``) and ``base_kernel`` override
    the reference convention. ``all_skip="reference"`` reproduces the reference code's quirk
    of collapsing a graph whose paths carry no parameterized edge to one base-depth path.
    """
    conv = convention(arch or dag.ops)
    if all_skip not in ("eq8", "reference"):
        raise ScalingError(f"all_skip must be 'eq8' or 'reference', got {all_skip!r}")
    offset = conv.offset if offset is None else offset
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ScalingError(f"depth offset must be an integer >= 0 (reference: 3 for mlp/cnn, 1 for nb201); "
                           f"got {offset!r}")
    if base_dag is not None:
        base_sum = path_sum(base_dag, offset, power)
    else:
        depths = conv.base_depths if base_depths is None else tuple(base_depths)
        if not depths or any(d <= 0 for d in depths):
            raise ScalingError(f"base depths must be positive integers, got {depths!r}")
        base_sum = sum(d**power for d in depths)
    dag.require_path()
    counts = dag.depth_counts(offset)
    if all_skip == "reference" and set(counts) == {offset}:
        target_sum = offset**power  # the reference's collapse to a single path
    else:
        target_sum = dag.path_power_sum(power=power, offset=offset)
    ratio = scale_factor(target_sum, power) / scale_factor(base_sum, power)
    if conv.uses_kernel:
        q = check_kernel_size(3 if kernel_size is None else kernel_size)
        qb = check_kernel_size(conv.base_kernel if base_kernel is None else base_kernel)
        ratio *= qb / q
    elif kernel_size is not None:
        raise ScalingError(
            f"a kernel size applies only to arch 'cnn', not {conv.name!r}; drop it or use cnn"
        )
    return ratio


def scaled_lr(base_lr: float, dag: Dag, arch: str | None = None, kernel_size: int | None = None,
              **kwargs) -> float:
    """``base_lr * lr_scale(dag, ...)``: the base network's maximal LR moved to ``dag``."""
    return check_lr(base_lr, "base learning rate") * lr_scale(dag, arch, kernel_size, **kwargs)


def init_std(fan_in: int, in_degree: int = 1, gain: float = 2.0) -> float:
    """Weight std of a parameterized edge: ``sqrt(gain / (in_degree * fan_in))``.

    ``in_degree`` is the number of live non-zero edges entering the edge's target vertex;
    ``gain = 2`` is He's ReLU gain.
    """
    if fan_in < 1:
        raise ScalingError(f"fan-in must be >= 1, got {fan_in}")
    return math.sqrt(gain / (max(int(in_degree), 1) * fan_in))


def readout_std(fan_in: int, gain: float = 2.0, mean_field: bool = True) -> float:
    """Readout weight std: mean-field ``sqrt(gain) / fan_in`` or standard ``sqrt(gain/fan_in)``."""
    if fan_in < 1:
        raise ScalingError(f"fan-in must be >= 1, got {fan_in}")
    return math.sqrt(gain) / fan_in if mean_field else math.sqrt(gain / fan_in)
