"""The derivations behind notebooks 01-03: sympy algebra, infinite-width predictions, tables.

* :func:`in_degree_rule` derives ``C = 2 / d_in`` from the forward variance recursion (eq. 11-12).
* :func:`second_moment_recursion` propagates vertex covariances through any DAG exactly in the
  infinite-width limit (paper layout), for each initialization scheme of ``archscale.nn.models``.
* :func:`init_second_moments` measures the same quantities on built networks;
  :func:`sample_where_schemes_differ` draws graphs on which two schemes predict different moments.
* :func:`lr_rule` solves the maximal-update condition of eq. 8/9 for the learning rate.
* :func:`space_table`, :func:`offset_predictions` and :func:`fit_offset` tabulate the LR rule over
  graph spaces, depth offsets and measured sweeps.

The symbolic and tabular parts import no torch; :func:`init_second_moments` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from . import validate
from .dag import Dag
from .errors import ArchscaleError, DagError
from .scaling import INIT_SCHEMES, convention, lr_scale, second_moments

__all__ = [
    "InDegreeDerivation",
    "LrRule",
    "in_degree_rule",
    "lr_rule",
    "offset_predictions",
    "sample_where_schemes_differ",
    "second_moment_recursion",
    "space_table",
]

if TYPE_CHECKING:
    import sympy as sp

#: Initialization schemes the recursion knows (``archscale.core.scaling.INIT_SCHEMES``).
RECURSION_SCHEMES = INIT_SCHEMES



# ---------------------------------------------------------------------- initialization


@dataclass(frozen=True)
class InDegreeDerivation:
    """The steps of the in-degree rule, as sympy objects a notebook can display one by one."""

    symbols: dict[str, sp.Symbol]
    edge_term: sp.Expr        # E[(W sigma(z))_i^2] for one incoming edge
    vertex_moment: sp.Expr    # E[z_i(l)^2]: d_in equal, independent edge terms
    condition: sp.Eq          # vertex moment equals the incoming moment q
    gain: sp.Expr             # the solution C = 2 / d_in
    weight_variance: sp.Expr  # C / n


def in_degree_rule() -> InDegreeDerivation:
    """Derive ``C = 2 / d_in`` from ``E[z(l)^2] = sum_edges C/n * n * E[relu(z)^2]`` with sympy.

    An edge ``W sigma(z_src)`` with i.i.d. ``W ~ N(0, C/n)`` contributes ``C * E[relu(z)^2] = C q / 2``
    (ReLU halves the second moment of a symmetric pre-activation); edges are independent and
    zero-mean, so ``d_in`` of them add. Keeping ``E[z(l)^2] = q`` forces ``C = 2 / d_in``.
    """
    import sympy as sp

    n, C, d, q = sp.symbols("n C d_in q", positive=True)
    relu_moment = q / 2
    edge = sp.simplify(n * (C / n) * relu_moment)
    vertex = d * edge
    condition = sp.Eq(vertex, q)
    (gain,) = sp.solve(condition, C)
    return InDegreeDerivation({"n": n, "C": C, "d_in": d, "q": q}, edge, vertex, condition, gain,
                              gain / n)


def second_moment_recursion(dag: Dag | str, init: str = "archscale", q0: sp.Expr | int = 1
                            ) -> sp.Matrix:
    """:func:`archscale.core.scaling.second_moments` as a sympy matrix in units of ``q0 = E[z_0^2]``.

    The recursion is linear in the input moment, so a symbolic ``q0`` simply scales the exact
    rational covariance; the diagonal is the per-vertex second moment.
    """
    import sympy as sp

    K = second_moments(dag, init)
    return sp.sympify(q0) * sp.Matrix([[sp.Rational(x.numerator, x.denominator) for x in row] for row in K])


def sample_where_schemes_differ(n_vertices: int, k: int, seed: int, schemes: Sequence[str] = ("he", "source"),
                                *, digits: tuple[int, ...] | None = None,
                                keep: Callable[[Dag], bool] | None = None) -> list[Dag]:
    """``k`` seeded random graphs (:meth:`Dag.sample`) on which ``schemes`` predict different outputs.

    A graph is kept when the infinite-width output second moment (:func:`second_moments`) is not
    the same under every scheme in ``schemes`` and ``keep(dag)`` (if given) holds. Uniform samples
    mostly hide the difference between He and the source-in-degree rule: they differ only where a
    block edge leaves a vertex with several inputs on the way to the output. The graphs are the
    first matches in ``Dag.sample``'s seeded order, so they are a selection, not a uniform sample.
    """
    schemes = [validate.choice(x, "init scheme", INIT_SCHEMES) for x in schemes]
    if len(set(schemes)) < 2:
        raise ArchscaleError(f"give at least two different init schemes to compare; got {schemes}")
    k = validate.positive_int(k, "number of graphs k", error=DagError)

    def differs(dag: Dag) -> bool:
        out = dag.output
        return len({second_moments(dag, x)[out][out] for x in schemes}) > 1 and (keep is None or keep(dag))

    m = 8 * k
    while True:
        try:
            drawn = Dag.sample(n_vertices, m, seed=seed, digits=digits)
        except DagError:  # the space has fewer than m graphs with a path: take all of them
            drawn = None
        pool = drawn if drawn is not None else [d for d in Dag.space(n_vertices, digits=digits) if d.has_path]
        found = [d for d in pool if differs(d)]
        if len(found) >= k:
            return found[:k]
        if drawn is None:
            raise DagError(f"only {len(found)} graph(s) of the {n_vertices}-vertex space (digits "
                           f"{digits or (0, 1, 2)}) give different outputs under {schemes}; asked for {k}")
        m *= 2


# ---------------------------------------------------------------------- learning rate


@dataclass(frozen=True)
class LrRule:
    """Eq. 8/9 as sympy objects: the one-step change and the learning rate that keeps it fixed."""

    symbols: dict[str, sp.Symbol]
    delta_z: sp.Expr          # E[(Delta z)^2] ~ eta^2 * sum_p L_p^3 * q^2 (q = 1 for MLPs)
    eta_star: sp.Expr         # the learning rate that makes delta_z equal the target
    transfer: sp.Expr         # eta_target / eta_base


def lr_rule(depths: Sequence[int] | None = None, kernel: bool = False) -> LrRule:
    """Solve ``eta^2 * sum_p L_p^3 * q^2 = c^2`` for ``eta`` (eq. 8; with ``kernel`` eq. 9).

    With ``depths`` the path sum is the concrete ``sum(L**3)``; otherwise a symbol ``S3``.
    ``transfer`` is the ratio to a base network with path sum ``S3_base`` and kernel ``q_base``.
    """
    import sympy as sp

    eta, c = sp.symbols("eta c", positive=True)
    s3, s3b = sp.symbols("S3 S3_base", positive=True)
    q, qb = sp.symbols("q q_base", positive=True)
    path_sum = sp.Integer(sum(int(d) ** 3 for d in depths)) if depths is not None else s3
    delta = eta**2 * path_sum * (q**2 if kernel else 1)
    (eta_star,) = sp.solve(sp.Eq(delta, c**2), eta)
    (eta_base,) = sp.solve(sp.Eq(eta**2 * s3b * (qb**2 if kernel else 1), c**2), eta)
    transfer = sp.simplify(eta_star / eta_base)
    return LrRule({"eta": eta, "c": c, "S3": s3, "S3_base": s3b, "q": q, "q_base": qb},
                  delta, eta_star, transfer)


def space_table(n_vertices: int = 5, arch: str = "mlp", *, offset: int | None = None,
                sample: int | None = None, seed: int = 0, base: str = "1") -> pd.DataFrame:
    """One row per graph of the ``n_vertices`` space that has a path: paths, depths, LR scale.

    ``sample`` draws that many graphs (seeded) instead of enumerating the whole space;
    ``scale`` is ``lr_scale`` relative to the base graph ``base`` under ``offset``.
    """
    ops = "mlp" if arch in ("mlp", "cnn") else arch
    offset = convention(arch).offset if offset is None else offset
    base_dag = Dag.parse(base, ops=ops)
    dags: Iterable[Dag]
    if sample is not None:
        dags = Dag.sample(n_vertices, sample, seed=seed, ops=ops)
    else:
        dags = (d for d in Dag.space(n_vertices, ops=ops) if d.has_path)
    rows = []
    for dag in dags:
        counts = dag.depth_counts(offset)
        rows.append({
            "code": dag.code, "n_paths": dag.n_paths, "n_blocks": sum(e.is_parameterized for e in dag.edges),
            "min_depth": min(counts), "max_depth": max(counts),
            "path_sum": dag.path_power_sum(3, offset),
            "scale": lr_scale(dag, "mlp" if arch == "cnn" else arch, offset=offset, base=base_dag),
        })
    return pd.DataFrame(rows)


def offset_predictions(codes: Iterable[str], offsets: Iterable[int] = (1, 2, 3, 4, 5), *,
                       arch: str = "mlp", base: str = "1") -> pd.DataFrame:
    """Predicted LR scale of each graph relative to ``base`` under each depth offset.

    Returns a tidy table (code, offset, scale, longest = most blocks on one path): the base changes with
    the offset too (one path of depth ``offset``), exactly as in the recipe.
    """
    ops = "mlp" if arch in ("mlp", "cnn") else arch
    base_dag = Dag.parse(base, ops=ops)
    rows = []
    for code in codes:
        dag = Dag.parse(code, ops=ops)
        for off in offsets:
            if off < 1:
                raise ArchscaleError(f"offsets must be >= 1 (a path of depth 0 has no scale); got {off}")
            rows.append({"code": dag.code, "offset": int(off),
                         "scale": lr_scale(dag, "mlp" if arch == "cnn" else arch, offset=int(off),
                                           base=base_dag),
                         "longest": max(dag.depth_counts(0))})
    return pd.DataFrame(rows)
