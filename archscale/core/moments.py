"""Forward second moments of a graph whose edges know their layout (no torch).

:func:`archscale.core.scaling.second_moments` is the exact recursion for the paper's layout: vertices
hold pre-activations, every weighted edge applies ReLU before its weights, every skip carries its
source unchanged. Networks written by hand mix layouts: a skip may carry ``relu(z)`` (a post-activation
ResNet), a weighted edge may read its source with no activation in front (a linear bottleneck, gain 1),
an activation or a normalization may sit after the weights and before the sum, gates like
``x * sigmoid(x)`` are activations. :func:`layout_moments` follows each edge as written.

**Ops.** An elementwise *chain* is a tuple of ops applied in order, each a tuple:
``("act", name)`` (an activation of :data:`ACTIVATIONS`, with its parameters after the name),
``("affine", a, b)`` (``a z + b``), ``("renorm", gamma, beta)`` (a normalization in training mode:
the signal is standardized, then scaled by ``gamma`` and shifted by ``beta``) and
``("mul", chain_a, chain_b)`` (the product of two chains of the same input: ``x * sigmoid(x)`` is
``("mul", (), (("act", "sigmoid"),))``).

**The recursion (a Gaussian approximation, exact on the paper's layout).** Every vertex is treated as a
Gaussian ``N(mu_v, s_v^2)`` per coordinate, with covariances ``C[a][b]`` between vertices. A weighted
term ``post(W pre(z_u))`` has fresh zero-mean weights of variance ``c / fan_in``: ``W pre(z_u)`` is
``N(0, c E[pre(z_u)^2])`` and uncorrelated with everything else, then ``post`` is applied. A skip term
``pre(z_u)`` keeps its mean and carries covariances by Stein's lemma,
``Cov(f(z_u), z_a) = E[f'(z_u)] Cov(z_u, z_a)`` (exact for jointly Gaussian vertices). Two skips from
one vertex are integrated exactly; from two vertices, to first order (exact when one is linear). A
vertex that concatenates its terms instead of summing them (a readout reading ``cat``) averages them by
channel count. Gaussian integrals are closed forms for affine maps and a final ReLU, else 96-point
Gauss-Hermite quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from .errors import ArchscaleError

__all__ = ["ACTIVATIONS", "Term", "Vertex", "chain_gain", "gaussian_chain", "is_linear", "layout_moments"]


def _gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


#: Elementwise activations by name (torch's names), each ``f(z, *params)`` on numpy arrays.
ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "relu6": lambda z: np.clip(z, 0.0, 6.0),
    "leaky_relu": lambda z, s=0.01: np.where(z > 0, z, s * z),
    "elu": lambda z, a=1.0: np.where(z > 0, z, a * np.expm1(np.minimum(z, 0))),
    "celu": lambda z, a=1.0: np.where(z > 0, z, a * np.expm1(np.minimum(z, 0) / a)),
    "selu": lambda z: 1.0507009873554805 * np.where(z > 0, z,
                                                    1.6732632423543772 * np.expm1(np.minimum(z, 0))),
    "gelu": lambda z: 0.5 * z * (1 + special.erf(z / math.sqrt(2))),
    "gelu_tanh": _gelu_tanh,
    "silu": lambda z: z * special.expit(z),
    "mish": lambda z: z * np.tanh(np.logaddexp(0, z)),
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "hardtanh": lambda z, lo=-1.0, hi=1.0: np.clip(z, lo, hi),
    "hardsigmoid": lambda z: np.clip(z / 6 + 0.5, 0.0, 1.0),
    "hardswish": lambda z: z * np.clip(z / 6 + 0.5, 0.0, 1.0),
    "softplus": lambda z, beta=1.0: np.logaddexp(0, beta * z) / beta,
    "softsign": lambda z: z / (1 + np.abs(z)),
    "prelu": lambda z, s=0.25: np.where(z > 0, z, s * z),
}


@lru_cache(maxsize=1)
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(96)
    return x, w / w.sum()


def _apply(chain: tuple, z: np.ndarray) -> np.ndarray:
    for op in chain:
        kind = op[0]
        if kind == "act":
            if op[1] not in ACTIVATIONS:
                raise ArchscaleError(f"no moments for activation {op[1]!r}; known: {', '.join(ACTIVATIONS)}")
            z = ACTIVATIONS[op[1]](z, *op[2:])  # type: ignore[operator]
        elif kind == "affine":
            z = op[1] * z + op[2]
        elif kind == "mul":
            z = _apply(op[1], z) * _apply(op[2], z)
        elif kind == "renorm":  # standardize over the distribution (the quadrature weights)
            _, w = _nodes()
            m = float(w @ z)
            s = math.sqrt(max(float(w @ (z - m) ** 2), 1e-300))
            z = op[1] * (z - m) / s + op[2]
        else:
            raise ArchscaleError(f"unknown elementwise op {op!r}")
    return z


def is_linear(chain: tuple) -> bool:
    """Whether a chain is affine (no activation, no product): an edge reading it has gain 1."""
    return all(op[0] in ("affine", "renorm") for op in chain)


def gaussian_chain(mean: float, std: float, chain: tuple) -> tuple[float, float, float]:
    """``(E f(z), E f(z)^2, E f'(z))`` for ``z ~ N(mean, std^2)`` and ``f`` the chain.

    Affine ops and normalizations keep ``z`` Gaussian and are followed exactly; a chain that then ends
    in one ReLU uses its closed form; anything else is integrated by Gauss-Hermite quadrature.
    """
    m, s, slope = float(mean), float(std), 1.0
    rest = tuple(chain)
    while rest and rest[0][0] in ("affine", "renorm"):
        op, rest = rest[0], rest[1:]
        if op[0] == "affine":
            m, s, slope = op[1] * m + op[2], abs(op[1]) * s, slope * op[1]
        else:
            slope *= op[1] / s if s > 0 else 0.0
            m, s = op[2], abs(op[1])
    if not rest:
        return m, m * m + s * s, slope
    if rest == (("act", "relu"),) and s > 0:
        a = m / s
        cdf, pdf = special.ndtr(a), math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        return m * cdf + s * pdf, (m * m + s * s) * cdf + m * s * pdf, slope * cdf
    x, w = _nodes()
    f = _apply(rest, m + s * x)
    mean_f = float(w @ f)
    stein = float(w @ (f * x)) / s if s > 0 else 0.0  # E f'(z) = E[f(z) (z - m)] / s^2
    return mean_f, float(w @ f**2), slope * stein


def chain_gain(chain: tuple) -> float:
    """``1 / E[f(z)^2]`` for ``z ~ N(0, 1)``: the gain that keeps the second moment through ``W f(z)``."""
    return 1.0 / gaussian_chain(0.0, 1.0, chain)[1]


def _cross(mean: float, std: float, f: tuple, g: tuple) -> float:
    """``E[f(z) g(z)]`` for ``z ~ N(mean, std^2)`` (two skips from one vertex)."""
    if f == g:
        return gaussian_chain(mean, std, f)[1]
    x, w = _nodes()
    z = mean + std * x
    return float(w @ (_apply(f, z) * _apply(g, z)))


@dataclass(frozen=True)
class Term:
    """One edge into a vertex: ``post(W pre(z_src))`` when ``weight`` (the variance factor
    ``c = Var(W) * fan_in``, times the share of the kernel's taps inside the input) is set, else the
    skip ``pre(z_src)``."""

    src: int
    pre: tuple = ()
    weight: float | None = None
    post: tuple = ()


@dataclass(frozen=True)
class Vertex:
    """The terms entering a vertex; ``channels`` set (one count per term) when it concatenates them."""

    terms: tuple[Term, ...]
    channels: tuple[int, ...] | None = None


def layout_moments(vertices: Sequence[Vertex], input_moment: float = 1.0) -> list[float]:
    """``E[z_v^2]`` of every vertex; vertex 0 (no terms) is zero-mean with ``input_moment``.

    Exact on the paper's layout (pre-activation vertices, ReLU in front of every weight, identity
    skips): it then equals :func:`~archscale.core.scaling.second_moments`'s diagonal times
    ``input_moment``.
    """
    n = len(vertices)
    mu = [0.0] * n
    cov = [[0.0] * n for _ in range(n)]
    cov[0][0] = float(input_moment)
    for v in range(1, n):
        vertex = vertices[v]
        means: list[float] = []
        variances: list[float] = []
        loads: list[tuple[int, float] | None] = []  # per term: (src, slope) for skips, None for weights
        for t in vertex.terms:
            if not 0 <= t.src < v:
                raise ArchscaleError(f"term from vertex {t.src} into vertex {v}: sources must come first")
            sd = math.sqrt(max(cov[t.src][t.src], 0.0))
            mean, second, slope = gaussian_chain(mu[t.src], sd, t.pre)
            if t.weight is None:
                means.append(mean)
                variances.append(second - mean * mean)
                loads.append((t.src, slope))
            else:
                mean, second, _ = gaussian_chain(0.0, math.sqrt(max(t.weight * second, 0.0)), t.post)
                means.append(mean)
                variances.append(second - mean * mean)
                loads.append(None)
        if vertex.channels is not None:  # a concatenation: the channel-weighted average of its pieces
            w = np.asarray(vertex.channels, float) / sum(vertex.channels)
            mu[v] = float(w @ means)
            cov[v][v] = float(w @ (np.asarray(variances) + np.asarray(means) ** 2)) - mu[v] ** 2
            for a in range(v):
                cov[a][v] = cov[v][a] = sum(wi * ld[1] * cov[ld[0]][a] for wi, ld in zip(w, loads) if ld)
            continue
        mu[v] = sum(means)
        var = sum(variances)
        for i, li in enumerate(loads):
            for j in range(i + 1, len(loads)):
                lj = loads[j]
                if li is None or lj is None:
                    continue
                ti, tj = vertex.terms[i], vertex.terms[j]
                if li[0] == lj[0]:
                    sd = math.sqrt(max(cov[li[0]][li[0]], 0.0))
                    c = _cross(mu[li[0]], sd, ti.pre, tj.pre) - means[i] * means[j]
                else:
                    c = li[1] * lj[1] * cov[li[0]][lj[0]]
                var += 2 * c
        cov[v][v] = var
        for a in range(v):
            cov[a][v] = cov[v][a] = sum(ld[1] * cov[ld[0]][a] for ld in loads if ld)
    return [cov[v][v] + mu[v] ** 2 for v in range(n)]
