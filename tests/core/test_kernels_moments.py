"""core.kernels (eq. 9 with mixed kernel sizes) and core.moments (moments of a layout), by brute force."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import dags

from archscale import ArchscaleError
from archscale.core.dag import Dag
from archscale.core.kernels import kernel_area, kernel_path_sum, mean_area
from archscale.core.moments import Term, Vertex, layout_moments
from archscale.core.scaling import lr_scale, second_moments


def brute_force(dag: Dag, areas: dict, offset: int) -> Fraction:
    """sum_p L_p^2 (offset a_ref + sum_{e in p} a_e), listing paths (parallel edges in order)."""
    left = {k: list(v) for k, v in areas.items()}
    area_of = {}
    for e in dag.edges:  # the same edge order kernel_path_sum pops from
        if e.is_parameterized:
            area_of[id(e)] = Fraction(left[(e.src, e.dst)].pop())
    flat = [a for v in areas.values() for a in v]
    a_ref = Fraction(sum(flat), len(flat)) if flat else Fraction(9)
    total = Fraction(0)
    for path in dag.iter_edge_paths():
        blocks = [area_of[id(e)] for e in path if e.is_parameterized]
        total += (offset + len(blocks)) ** 2 * (offset * a_ref + sum(blocks, Fraction(0)))
    return total


@settings(max_examples=60, deadline=None)
@given(dag=dags(min_vertices=2, max_vertices=5))
def test_kernel_path_sum_lists_every_path(dag):
    if not dag.has_path:
        return
    blocks = [(e.src, e.dst) for e in dag.edges if e.is_parameterized]
    areas: dict = {}
    for i, pair in enumerate(blocks):
        areas.setdefault(pair, []).append((1, 9, 25)[i % 3])
    assert kernel_path_sum(dag, areas, 3) == brute_force(dag, areas, 3)
    uniform = {pair: [9] * len(v) for pair, v in areas.items()}
    assert kernel_path_sum(dag, uniform, 3, fallback=9) == 9 * dag.path_power_sum(3, 3)  # eq. 9 itself


def test_mixed_kernel_lr_against_a_hand_computation():
    # 0 -3x3-> 1 -3x3-> 2 and a 1x1 projection 0 -> 2: paths [3x3, 3x3] (L = 5) and [1x1] (L = 4)
    dag = Dag.from_edges(3, [(0, 1, "block"), (1, 2, "block"), (0, 2, "block")], ops="cnn")
    areas = {(0, 1): [9], (1, 2): [9], (0, 2): [1]}
    a_ref = Fraction(19, 3)
    t = 25 * (3 * a_ref + 18) + 16 * (3 * a_ref + 1)
    assert kernel_path_sum(dag, areas, 3) == t == 1245
    assert lr_scale(dag, "cnn", kernel_areas=areas) == pytest.approx(math.sqrt(9 * 27 / 1245), rel=1e-12)
    # with one kernel everywhere the areas give eq. 9's q_base / q back
    same = {k: [25] for k in areas}
    assert lr_scale(dag, "cnn", kernel_areas=same) == pytest.approx(lr_scale(dag, "cnn", 5), rel=1e-12)
    assert mean_area(dag, areas) == a_ref
    with pytest.raises(ArchscaleError, match="one area per weighted edge"):
        kernel_path_sum(dag, {(0, 1): [9]}, 3)
    with pytest.raises(ArchscaleError, match="only to arch 'cnn'"):
        lr_scale(Dag.parse("2"), "mlp", kernel_areas={(0, 1): [9]})


def test_kernel_area():
    assert kernel_area((3, 3)) == 9 and kernel_area((1, 1)) == 1 and kernel_area(None) == 1
    assert kernel_area((1, 7)) == 7 and kernel_area((5,)) == 25 and kernel_area((3, 3, 3)) == 9


def test_layout_moments_follow_the_layout():
    # the paper's layout: the exact recursion, up to the sampling error
    dag = Dag.parse("2_12_112")
    exact = second_moments(dag)
    deg = dag.live_in_degrees
    relu = (("act", "relu"),)
    vertices = [Vertex(())] + [Vertex(tuple(Term(e.src, relu, 2 / deg[v]) if e.is_parameterized
                                            else Term(e.src) for e in dag.edges if e.dst == v))
                               for v in range(1, 4)]
    assert layout_moments(vertices) == pytest.approx([float(exact[v][v]) for v in range(4)], rel=0.02)
    # a post-activation skip added to a Gaussian edge: against a direct simulation
    rng = np.random.default_rng(7)
    z0 = rng.standard_normal(1_000_000)
    z1 = np.maximum(z0, 0) + rng.standard_normal(z0.size) * math.sqrt(0.5)
    z2 = rng.standard_normal(z0.size) * math.sqrt(2 * np.mean(np.maximum(z1, 0) ** 2))
    post = [Vertex(()), Vertex((Term(0, relu), Term(0, relu, 1.0))), Vertex((Term(1, relu, 2.0),))]
    assert layout_moments(post) == pytest.approx([1.0, np.mean(z1**2), np.mean(z2**2)], rel=0.02)
    # gain 1 without an activation; a renormalizing norm after the weights resets the moment
    linear = [Vertex(()), Vertex((Term(0, (), 1.0),)), Vertex((Term(1, relu, 2.0, (("renorm", 0.5, 0.0),)),))]
    assert layout_moments(linear, input_moment=4.0) == pytest.approx([4.0, 4.0, 0.25], rel=0.02)
    # a concatenation averages its pieces by channel count; a finite fan-in keeps the mean moment
    cat = [Vertex(()), Vertex((Term(0, (), 4.0),)), Vertex((Term(0), Term(1)), channels=(1, 3))]
    assert layout_moments(cat)[2] == pytest.approx(0.25 * 1 + 0.75 * 4, rel=0.02)
    depthwise = [Vertex(()), Vertex((Term(0, relu, 2.0, fan_in=9),))]
    assert layout_moments(depthwise)[1] == pytest.approx(1.0, rel=0.03)
