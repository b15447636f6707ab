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

**The recursion (exact at infinite width, by sampling one coordinate).** At infinite width a weighted
term ``post(W pre(z_u))`` with fresh zero-mean weights of variance ``c / fan_in`` is, at one
coordinate, a Gaussian ``N(0, c E[pre(z_u)^2])`` independent of everything else (its fan-in sums over
other coordinates), then ``post`` applied; a skip term ``pre(z_u)`` is the same coordinate's value of
its source. So the joint law of one coordinate of every vertex is sampled exactly: vertex 0 is
``N(0, input_moment)``, each vertex adds its skips' transformed samples and fresh Gaussians for its
weighted terms, normalizations standardize the samples, and a vertex concatenating its terms (a
readout reading ``cat``) mixes them by channel count. Non-Gaussian vertices (a post-activation skip,
``relu(z)`` added to a Gaussian) are followed as they are. :func:`layout_moments` uses ``2**16``
samples with a fixed seed: deterministic, about 0.5% sampling error per vertex.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from .errors import ArchscaleError

__all__ = ["ACTIVATIONS", "Term", "Vertex", "is_linear", "layout_moments"]


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


def _apply(chain: tuple, z: np.ndarray) -> np.ndarray:
    """The chain applied to samples ``z`` (a normalization standardizes over the samples)."""
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
        elif kind == "renorm":
            z = op[1] * (z - z.mean()) / max(float(z.std()), 1e-300) + op[2]
        else:
            raise ArchscaleError(f"unknown elementwise op {op!r}")
    return z


def is_linear(chain: tuple) -> bool:
    """Whether a chain is affine (no activation, no product): an edge reading it has gain 1."""
    return all(op[0] in ("affine", "renorm") for op in chain)


@dataclass(frozen=True)
class Term:
    """One edge into a vertex: ``post(W pre(z_src))`` when ``weight`` (the variance factor
    ``c = Var(W) * fan_in``, times the share of the kernel's taps inside the input) is set, else the
    skip ``pre(z_src)``. A finite ``fan_in`` (a depthwise convolution's 9 does not grow with width)
    gives each output channel its own gain ``chi^2_k / k``: the sum of its ``k`` squared weights
    (divided out again by a normalization in ``post``, which standardizes each channel)."""

    src: int
    pre: tuple = ()
    weight: float | None = None
    post: tuple = ()
    fan_in: int | None = None


@dataclass(frozen=True)
class Vertex:
    """The terms entering a vertex; ``channels`` set (one count per term) when it concatenates them."""

    terms: tuple[Term, ...]
    channels: tuple[int, ...] | None = None


def layout_moments(vertices: Sequence[Vertex], input_moment: float = 1.0, samples: int = 1 << 16,
                   seed: int = 0) -> list[float]:
    """``E[z_v^2]`` of every vertex; vertex 0 (no terms) is ``N(0, input_moment)``.

    On the paper's layout (pre-activation vertices, ReLU in front of every weight, identity skips)
    it agrees with :func:`~archscale.core.scaling.second_moments`'s diagonal times ``input_moment``
    up to the sampling error.
    """
    rng = np.random.default_rng(seed)
    z: list[np.ndarray] = [rng.standard_normal(samples) * math.sqrt(max(float(input_moment), 0.0))]
    for v in range(1, len(vertices)):
        vertex = vertices[v]
        parts = []
        for t in vertex.terms:
            if not 0 <= t.src < v:
                raise ArchscaleError(f"term from vertex {t.src} into vertex {v}: sources must come first")
            s = _apply(t.pre, z[t.src])
            if t.weight is not None:
                var = np.full(samples, max(t.weight * float(np.mean(s * s)), 0.0))
                if t.fan_in is not None and not any(op[0] == "renorm" for op in t.post):
                    # the output channel's own sum of squared weights (a norm after them divides it out)
                    var = var * rng.chisquare(t.fan_in, samples) / t.fan_in
                s = _apply(t.post, rng.standard_normal(samples) * np.sqrt(var))
            parts.append(s)
        if not parts:
            z.append(np.zeros(samples))
        elif vertex.channels is not None:  # a concatenation: each coordinate is one piece's
            w = np.asarray(vertex.channels, float)
            pick = rng.choice(len(parts), size=samples, p=w / w.sum())
            z.append(np.choose(pick, parts))
        else:
            z.append(np.sum(parts, axis=0))
    return [float(np.mean(x * x)) for x in z]
