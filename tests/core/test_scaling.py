"""Learning-rate scaling (eq. 8/9) and the init rule against independent implementations."""

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import dags

from archscale.core import validate
from archscale.core.dag import Dag, NoPathError
from archscale.core.scaling import (
    ArchscaleError,
    convention,
    init_std,
    lr_scale,
    readout_std,
    scaled_lr,
)


def reference_lr(code: str, base_lr: float, arch: str = "mlp", kernel: int = 3) -> float:
    """An independent re-statement of the reference formula (recursive path search on an affinity matrix)."""
    groups = [[int(c) for c in g] for g in code.split("_")]
    n = len(groups) + 1
    aff = -np.ones((n, n))
    for to, group in enumerate(groups, start=1):
        for frm, digit in enumerate(group):
            aff[frm, to] = {"mlp": {0: -1, 1: 0, 2: 1}, "cnn": {0: -1, 1: 0, 2: 1},
                            "nb201": {0: -1, 1: 0, 2: 1, 3: 1, 4: 0}}[arch][digit]
    paths = []

    def walk(pos, acc):
        if pos == n - 1:
            paths.append(acc)
            return
        for nxt in range(pos + 1, n):
            if aff[pos, nxt] >= 0:
                walk(nxt, acc + aff[pos, nxt])

    walk(0, 0)
    if arch == "nb201":
        depths, base = np.array(paths) + 1, np.array([1])
    else:
        depths = np.array(paths if sum(paths) > 0 else [0]) + 3
        base = np.array([3])
    lr = base_lr * (depths.astype(float) ** 3).sum() ** -0.5 / (base.astype(float) ** 3).sum() ** -0.5
    return lr * (3 / kernel) if arch == "cnn" else lr


FIVE_VERTEX = [d for d in Dag.space(5) if d.has_path]
SAMPLE = random.Random(0).sample(FIVE_VERTEX, 3000)


def _all_skip(dag):
    return set(dag.depth_counts(0)) == {0}


def test_matches_reference_on_five_vertex_space():
    checked = 0
    for dag in SAMPLE:
        if _all_skip(dag):
            continue
        assert scaled_lr(0.7, dag) == pytest.approx(reference_lr(dag.code, 0.7), rel=1e-12)
        checked += 1
    assert checked > 2500


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_matches_reference_for_cnn_kernels(kernel):
    for dag in SAMPLE[:500]:
        cnn = Dag.parse(dag.code, ops="cnn")
        if _all_skip(cnn):
            continue
        assert scaled_lr(0.1, cnn, "cnn", kernel) == pytest.approx(
            reference_lr(dag.code, 0.1, "cnn", kernel), rel=1e-12)


def test_matches_reference_on_larger_graphs():
    rng = random.Random(1)
    for n in (6, 7, 8):
        for dag in Dag.sample(n, 40, seed=rng.randrange(10**6)):
            if not _all_skip(dag):
                assert scaled_lr(0.3, dag) == pytest.approx(reference_lr(dag.code, 0.3), rel=1e-12)


def test_matches_reference_on_nb201_cells():
    for dag in Dag.sample(4, 300, seed=2, ops="nb201"):
        assert scaled_lr(0.1, dag) == pytest.approx(reference_lr(dag.code, 0.1, "nb201"), rel=1e-12)


def test_all_skip_quirk_is_eq8_by_default_and_reference_on_request():
    dag = Dag.parse("1_11_111")  # 4 paths, none parameterized
    assert dag.n_paths == 4
    assert lr_scale(dag) == pytest.approx(1 / math.sqrt(4))
    assert lr_scale(dag, all_skip="reference") == pytest.approx(1.0)
    assert lr_scale(dag, all_skip="reference") * 0.5 == pytest.approx(reference_lr(dag.code, 0.5))


def test_base_graph_has_unit_scale():
    assert lr_scale(Dag.parse("1")) == 1.0
    assert lr_scale(Dag.parse("1_01_001", ops="nb201")) == pytest.approx(1.0)
    assert lr_scale(Dag.parse("2_02_002"), base=Dag.parse("2_02_002")) == pytest.approx(1.0)


@given(dags(), st.sampled_from([1, 2]))
def test_adding_a_block_in_series_never_raises_lr(dag, digit):
    if not dag.has_path:
        return
    n = dag.n_vertices
    longer = Dag(list(dag.digits) + [[0] * (n - 1) + [2]])  # new vertex fed by a block
    assert lr_scale(longer) < lr_scale(dag)
    # a skip in series leaves depths unchanged
    skip = Dag(list(dag.digits) + [[0] * (n - 1) + [1]])
    assert lr_scale(skip) == pytest.approx(lr_scale(dag))


@given(dags(digits=(0, 1, 2)))
def test_turning_a_skip_into_a_block_never_raises_lr(dag):
    if not dag.has_path:
        return
    for i, group in enumerate(dag.digits):
        for j, d in enumerate(group):
            if d == 1:
                digits = [list(g) for g in dag.digits]
                digits[i][j] = 2
                assert lr_scale(Dag(digits)) <= lr_scale(dag) + 1e-15


@given(dags(ops="cnn"), st.sampled_from([1, 3, 5, 7, 9, 11]))
def test_kernel_factor(dag, q):
    if not dag.has_path:
        return
    assert lr_scale(dag, "cnn", q) == pytest.approx(lr_scale(dag, "cnn", 3) * 3 / q)
    assert lr_scale(dag, "cnn", q, base_kernel=q) == pytest.approx(lr_scale(dag, "cnn", 3))


def test_offset_and_base_are_visible_parameters():
    dag = Dag.parse("2_02_002")
    assert lr_scale(dag, offset=1, base_depths=[1]) == pytest.approx((1 / 4**3) ** 0.5)
    assert convention("mlp").offset == 3 and convention("nb201").offset == 1
    assert lr_scale(dag, offset=5, base_depths=[5]) > lr_scale(dag)


@pytest.mark.parametrize("bad", [0, -3, 2, 4, 3.0, "3", None, True])
def test_kernel_size_must_be_positive_odd_integer(bad):
    with pytest.raises(ArchscaleError, match="positive odd integer"):
        validate.kernel_size(bad)


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "abc"])
def test_non_positive_learning_rate_is_refused(bad):
    with pytest.raises(ArchscaleError, match="positive"):
        scaled_lr(bad, Dag.parse("2"))


def test_no_path_and_misplaced_kernel_are_refused():
    with pytest.raises(NoPathError):
        lr_scale(Dag.parse("0_00_000"))
    with pytest.raises(ArchscaleError, match="only to arch 'cnn'"):
        lr_scale(Dag.parse("2"), "mlp", 5)


def test_init_std_is_he_divided_by_in_degree():
    for fan, d in itertools.product([16, 100, 2048], [1, 2, 3, 7]):
        assert init_std(fan, d) ** 2 == pytest.approx(2 / (d * fan))
    assert readout_std(128) ** 2 == pytest.approx(2 / 128**2)
    assert readout_std(128, mean_field=False) ** 2 == pytest.approx(2 / 128)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_offset_must_be_a_non_negative_integer(bad):
    with pytest.raises(ArchscaleError, match="offset"):
        lr_scale(Dag.parse("2_02_002"), offset=bad)
