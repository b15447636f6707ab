"""The law registry against independent computations, and the head-to-head on sweep rows."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import dags
from synthetic import law_rows

from archscale import Dag, lr_scale
from archscale.analysis.law_scores import compare_laws
from archscale.core.errors import ArchscaleError
from archscale.core.laws import LAWS, effective_depth, law

BASE = Dag.parse("1")


def _shortest(dag: Dag, offset: int) -> float:
    """Independent L_eff: enumerate every path, count blocks and merge vertices passed."""
    merges = {v for v in range(dag.n_vertices) if dag.in_degrees[v] >= 2}
    best = min(sum(1 for a, b in zip(p, p[1:]) if dag.op(a, b) == "block")
               + sum(1 for v in p[1:] if v in merges) for p in dag.iter_paths())
    return offset + best


@settings(max_examples=300, deadline=None)
@given(dags())
def test_effective_depth_equals_an_independent_shortest_path(dag):
    if not dag.has_path:
        return
    assert effective_depth(dag, 3) == _shortest(dag, 3)
    assert effective_depth(dag, 1) == _shortest(dag, 1)


@settings(max_examples=200, deadline=None)
@given(dags())
def test_eq8_law_is_lr_scale_and_every_law_is_one_on_the_base(dag):
    if not dag.has_path:
        return
    assert LAWS["eq8"].scale(dag, BASE) == pytest.approx(lr_scale(dag))
    cnn = Dag.parse(dag.code, ops="cnn")
    assert LAWS["eq8"].scale(cnn, Dag.parse("1", ops="cnn"), q=5, q_base=3) == pytest.approx(
        lr_scale(cnn, "cnn", 5))
    for each in LAWS.values():
        assert each.scale(BASE, BASE) == 1.0
        assert each.scale(dag, BASE) > 0


def test_on_a_chain_eq8_and_effective_depth_agree_and_multi_path_graphs_split_them():
    for k in range(1, 8):
        chain = Dag.chain(k)
        assert LAWS["effective_depth"].scale(chain, BASE) == pytest.approx(LAWS["eq8"].scale(chain, BASE))
    skip = Dag.parse("2_12_202_0012")  # skip edges shorten the graph: L_eff falls, eq. 8's sum grows
    assert LAWS["effective_depth"].scale(skip, BASE) > LAWS["eq8"].scale(skip, BASE)
    assert LAWS["constant"].scale(skip, BASE) == 1.0
    with pytest.raises(ArchscaleError, match="unknown law"):
        law("sqrt_depth")


def test_the_adam_hypotheses_are_half_powers_of_the_depths():
    for k in range(1, 8):  # on a chain of k blocks: (L / 3)^(-1/2), L = 3 + k, the cube root of eq. 8's
        chain = Dag.chain(k)
        for name in ("depth_half", "effective_depth_half"):
            assert LAWS[name].scale(chain, BASE) == pytest.approx(((3 + k) / 3) ** -0.5)
            assert LAWS[name].scale(chain, BASE) ** 3 == pytest.approx(LAWS["eq8"].scale(chain, BASE))
    skip = Dag.parse("2_12_202_0012")
    assert LAWS["depth_half"].scale(skip, BASE) ** 3 == pytest.approx(LAWS["longest_path"].scale(skip, BASE))
    assert LAWS["effective_depth_half"].scale(skip, BASE) ** 3 == pytest.approx(
        LAWS["effective_depth"].scale(skip, BASE))
    assert list(LAWS)[-1] == "constant"


def test_a_half_power_sweep_ranks_a_half_power_law_first():
    codes = ["1"] + [d.code for d in Dag.sample(5, 30, seed=2)]
    rows = law_rows(codes, lambda d: LAWS["depth_half"].scale(d, BASE), np.random.default_rng(0))
    report = compare_laws(rows, holdout=0.5, seed=1, n_boot=200)
    zero = {r.name: r.zero_shot.agreement.estimate["error_factor"] for r in report.laws}
    assert min(zero, key=zero.get) == "depth_half"
    fitted = next(r for r in report.laws if r.name == "depth_half").fitted_exponent
    assert fitted == pytest.approx(0.5, abs=0.15)


def test_the_generating_law_ranks_first_and_its_zero_shot_numbers_are_maxlrs():
    from archscale.analysis import compare

    codes = ["1"] + [d.code for d in Dag.sample(5, 30, seed=2)]
    rows = law_rows(codes, lambda d: LAWS["effective_depth"].scale(d, BASE), np.random.default_rng(0))
    report = compare_laws(rows, holdout=0.5, seed=1, n_boot=200)
    assert report.laws[0].name == "effective_depth"
    assert report.laws[0].fitted_exponent == pytest.approx(1.5, abs=0.2)
    eq8 = next(r for r in report.laws if r.name == "eq8")
    direct = compare(rows, n_boot=200, seed=1)  # maxlr's comparison: the same numbers for eq. 8
    assert eq8.zero_shot.agreement.estimate == pytest.approx(direct.agreement.estimate, rel=1e-12)
    assert "held out" in report.format() and json.dumps(report.to_dict())
    assert report.top_difference[1] <= report.top_difference[0] <= report.top_difference[2]


def test_laws_command_line(tmp_path):
    from sweep_specs import CAL_SPEC

    spec = tmp_path / "cal.yaml"
    spec.write_text(CAL_SPEC)
    out = tmp_path / "run"
    run = lambda *a: subprocess.run([sys.executable, "-m", "archscale", *a], capture_output=True, text=True)  # noqa
    assert run("sweep", str(spec), "--out", str(out), "--no-progress").returncode == 0
    done = run("laws", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["ranking"]) == set(LAWS) and "verdict" in report
    maxlr = json.loads(run("maxlr", str(out), "--json").stdout)
    eq8 = next(x for x in report["laws"] if x["name"] == "eq8")
    for name, value in maxlr["metrics"].items():  # the same rows give maxlr's numbers for eq. 8
        ours = eq8["zero_shot"]["metrics"][name]
        assert (ours["estimate"] is None and value["estimate"] is None) or \
            ours["estimate"] == pytest.approx(value["estimate"], rel=1e-9)


# -- mixed kernel sizes -------------------------------------------------------------------------------

MIXED = Dag.parse("2_22", ops="cnn")  # 0->1, 1->2 3x3 convs; 0->2 a 1x1 conv
MIXED_AREAS = {(0, 1): [9], (0, 2): [1], (1, 2): [9]}
CNN_BASE = Dag.parse("2", ops="cnn")


def test_mixed_kernel_laws_equal_a_hand_computation():
    import math

    from archscale.core.laws import MIXED_KERNEL_LAWS
    # paths (offset 3): 0->2 has L = 4 and area 1; 0->1->2 has L = 5 and areas 9 + 9; a_ref = 19/3
    t = 4**2 * (3 * 19 / 3 + 1) + 5**2 * (3 * 19 / 3 + 18)  # = 1245
    tb = 4**2 * (3 * 9 + 9)  # the base: one 3x3 edge, L = 4
    assert LAWS["eq8"].scale(MIXED, CNN_BASE, q_base=3, areas=MIXED_AREAS) == pytest.approx(math.sqrt(tb / t))
    s, sb = 4**3 + 5**3, 4**3
    # one q for every edge: the majority kernel is 3x3, so eq. 9's factor is q_base / q = 1
    assert MIXED_KERNEL_LAWS["eq8_one_q"].scale(MIXED, CNN_BASE, q_base=3, areas=MIXED_AREAS) == \
        pytest.approx(math.sqrt(sb / s))
    mean = (9 + 1 + 9) / 3
    assert MIXED_KERNEL_LAWS["eq8_mean_area"].scale(MIXED, CNN_BASE, q_base=3, areas=MIXED_AREAS) == \
        pytest.approx(math.sqrt(sb / s) * math.sqrt(9 / mean))
    # the other laws keep their size and read the mean area: L_eff is 4 (one edge) + 1 merge = 5
    assert LAWS["effective_depth"].scale(MIXED, CNN_BASE, q_base=3, areas=MIXED_AREAS) == \
        pytest.approx((5 / 4) ** -1.5 * math.sqrt(9 / mean))
    assert LAWS["constant"].scale(MIXED, CNN_BASE, q_base=3, areas=MIXED_AREAS) == pytest.approx(
        math.sqrt(9 / mean))


@settings(max_examples=100, deadline=None)
@given(dags())
def test_one_kernel_read_as_areas_is_eq9_for_every_law(dag):
    from archscale.core.kernels import uniform_areas
    from archscale.core.laws import MIXED_KERNEL_LAWS

    if not dag.has_path:
        return
    cnn = Dag.parse(dag.code, ops="cnn")
    for each in [*LAWS.values(), *MIXED_KERNEL_LAWS.values()]:
        plain = each.scale(cnn, CNN_BASE, q=5, q_base=3)
        # q stays the fallback of a graph without weighted edges (its areas are empty)
        assert each.scale(cnn, CNN_BASE, q=5, q_base=3, areas=uniform_areas(cnn, 5)) == pytest.approx(plain)
        assert each.scale(cnn, CNN_BASE, q=5, q_base=3, base_areas=uniform_areas(CNN_BASE, 3)) == \
            pytest.approx(plain)
    assert LAWS["eq8"].scale(cnn, Dag.parse("1", ops="cnn"), q=5, q_base=3, areas=uniform_areas(cnn, 5)) == \
        pytest.approx(lr_scale(cnn, "cnn", 5))


def test_mixed_kernels_without_areas_or_q_are_refused():
    with pytest.raises(ArchscaleError, match="per-edge kernel areas"):
        LAWS["eq8"].scale(MIXED, CNN_BASE, areas=MIXED_AREAS)


def test_eq8_per_edge_is_lr_scale_with_kernel_areas():
    assert LAWS["eq8"].scale(MIXED, Dag.parse("1", ops="cnn"), q_base=3, areas=MIXED_AREAS) == pytest.approx(
        lr_scale(MIXED, "cnn", kernel_areas=MIXED_AREAS))
