"""archscale.notebook.findings on synthetic rows: each sentence follows the numbers, and where n or the
intervals do not allow a conclusion the sentence says this run cannot decide it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from synthetic import law_rows

from archscale.analysis import compare
from archscale.analysis.law_scores import compare_laws
from archscale.core.dag import Dag
from archscale.core.derivations import space_table
from archscale.core.scaling import lr_scale
from archscale.notebook import findings
from archscale.notebook.tables import (
    GLOSSARY,
    Collapsed,
    glossary_markdown,
    row_label,
    short_code,
    show_table,
    transfer_rows,
)

CHAINS = [Dag.chain(k).code for k in range(1, 9)]


def _comparison(codes, power=1.0, seeds=(0, 1, 2)):
    """A comparison whose measured maximal LR is eq. 8's scale to ``power`` (1: eq. 8 holds exactly)."""
    rows = law_rows(["1", *codes], lambda d: lr_scale(d) ** power, np.random.default_rng(0), seeds=seeds)
    return compare(rows, base="1", n_boot=200)


def _experiment(comp, name="mlp_depth"):
    return SimpleNamespace(name=name, comparisons={"all": comp}, results=None)


# -- the agreement of a law with measured maximal LRs ---------------------------------------------------


def test_a_law_that_predicts_too_high_is_called_so():
    comp = _comparison(CHAINS[:7], power=2.0)  # deeper chains: measured far below eq. 8's prediction
    text = findings.agreement_sentences(comp, "MLP depth", paper=("Fig. 5", 0.962))
    assert "eq. 8 orders them" in text[0] and "7 non-base configurations" in text[0]
    assert text[1].startswith("Eq. 8 predicts too high")
    assert "0.962" in text[2]
    assert "misses by ×" in findings.agreement_title(
        comp, "Fig. 5"
    ) and "eq. 8 too high" in findings.agreement_title(comp, "Fig. 5")


def test_a_law_that_holds_has_no_bias_established():
    comp = _comparison(CHAINS[:7], power=1.0)
    text = findings.agreement_sentences(comp, "MLP depth")
    assert any("No bias is established" in s or "predicts too" in s for s in text)
    a = comp.agreement
    assert math.isclose(a.estimate["bias"], 1.0, rel_tol=0.15)  # the synthetic truth is eq. 8 itself


def test_too_few_graphs_cannot_decide_the_ordering_or_the_bias():
    comp = _comparison(CHAINS[:2], power=2.0)
    text = findings.agreement_sentences(comp, "MLP depth")
    assert "cannot decide how well eq. 8 orders them" in text[0]
    assert "cannot decide whether eq. 8 predicts too high or too low" in text[1]
    assert "too few to decide" in findings.agreement_title(comp, "Fig. 5")
    assert "too few to decide" in findings.agreement_title(
        _experiment(comp), "Fig. 5"
    )  # an experiment works too


def test_mlp_depth_names_the_deepest_chain_by_its_depth():
    found = findings.mlp_depth(_experiment(_comparison(CHAINS[:7], power=2.0)))
    assert "L = 10 · 2_02_" in found.markdown()
    assert found.markdown().startswith("- MLP depth")
    assert found._repr_markdown_() == repr(found)


def test_a_calibration_on_few_graphs_cannot_decide():
    agreement = SimpleNamespace(
        estimate={"error_factor": 1.3}, lo={"error_factor": 1.1}, hi={"error_factor": 1.6}, n=2
    )
    cal = SimpleNamespace(
        fit_graphs=["a", "b", "c"],
        calibrated=SimpleNamespace(agreement=agreement),
        eq8=SimpleNamespace(agreement=agreement),
        fitted=SimpleNamespace(describe=lambda: "x"),
    )
    found = findings.mlp_topology(_experiment(_comparison(CHAINS[:7]), "mlp_topology"), cal)
    assert "fits 3 parameters on 3 graphs: this run cannot decide" in found.markdown()
    assert "too few to decide" in findings.calibration_title(cal, "MLP path law")
    refused = findings.mlp_topology(
        _experiment(_comparison(CHAINS[:7]), "mlp_topology"), ValueError("1 graph")
    )
    assert "No calibration on this sweep (1 graph)" in refused.markdown()


# -- CNNs: chance, the kernel factor, the moment check ---------------------------------------------------


def test_losses_near_chance_say_the_networks_barely_learned():
    rows = pd.DataFrame(
        {
            "graph": ["1", "1", "2", "2"],
            "kernel_size": 3,
            "lr": [0.1, 0.2, 0.1, 0.2],
            "train_loss": [2.25, 2.28, 2.29, 2.31],
            "diverged": False,
        }
    )
    assert "barely learned" in findings.chance_sentence(rows, 10)
    assert "well below chance" in findings.chance_sentence(rows.assign(train_loss=0.3), 10)
    assert findings.chance_sentence(rows, 0) is None


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (-1.5, 0.2, "cannot tell a 1/q factor from no kernel dependence"),
        (-1.4, -0.6, "holds"),
        (-0.3, 0.4, "barely moves"),
        (-3.0, -1.5, "rejected"),
    ],
)
def test_the_kernel_exponent_sentence_follows_its_interval(lo, hi, expected):
    kx = SimpleNamespace(
        pooled={"exponent": (lo + hi) / 2, "lo": lo, "hi": hi, "n_graphs": 5, "n_seeds": 2}, predicted=-1.0
    )
    from archscale.notebook.findings.sweeps import _kernel_sentence

    assert expected in _kernel_sentence(kx)
    assert "pooled exponent" in findings.kernel_title(kx, "mnist")


def test_the_moment_check_names_which_reading_applies():
    index = pd.MultiIndex.from_tuples(
        [("digits (8, 8)", "g1"), ("digits (8, 8)", "g2"), ("mnist (28, 28)", "g1"), ("mnist (28, 28)", "g2")]
    )
    padding = pd.Series([0.6, 0.7, 0.95, 1.1], index=index)
    assert "falls with q on digits (8, 8) only: padding" in findings.padding_sentence(padding, 3, 7)
    both = pd.Series([0.6, 0.7, 0.5, 2.4], index=index)
    assert "on the larger images too" in findings.padding_sentence(both, 3, 7)
    flat = pd.Series([0.9, 1.1, 0.95, 1.05], index=index)
    assert "stays within a factor 1.25 of flat" in findings.padding_sentence(flat, 3, 7)


# -- the recipe factorial -------------------------------------------------------------------------------


def _cells(n=12, separated=False):
    rows = []
    for layout in ("paper", "reference"):
        for init in ("archscale", "source"):
            for readout, ef in (("mean_field", 2.2), ("standard", 1.5), ("reference", 1.45)):
                e = ef - (
                    0.4
                    if separated and (layout, init, readout) == ("reference", "archscale", "reference")
                    else 0.0
                )
                width = 0.05 if separated else 0.5
                rows.append(
                    {
                        "layout": layout,
                        "init": init,
                        "readout": readout,
                        "n": n,
                        "pearson_log": 0.5,
                        "pearson_log_lo": -0.2,
                        "pearson_log_hi": 0.9,
                        "error_factor": e,
                        "error_factor_lo": e - width,
                        "error_factor_hi": e + width,
                    }
                )
    return pd.DataFrame(rows)


def test_the_factorial_recommends_a_readout_when_no_single_recipe_stands_out():
    found = findings.recipe_factorial(_cells())
    first = found.items[0]
    assert first.startswith(
        "**Recommendation: train with a reference-code readout or a standard readout, not a "
        "mean-field readout.**"
    )
    assert "does not single out one recipe" in first
    assert "cannot tell them apart" in found.markdown()  # the paper's and the reference-like recipe overlap
    assert "the readout moves eq. 8's miss most" in findings.factorial_title(_cells())


def test_the_factorial_recommends_one_recipe_when_its_interval_stands_apart():
    found = findings.recipe_factorial(_cells(separated=True))
    assert found.items[0].startswith(
        "**Recommendation: train with reference layout + target in-degree init + reference-code readout.**"
    )
    assert "The readout matters most" in found.markdown()


def test_the_factorial_on_few_graphs_cannot_recommend():
    found = findings.recipe_factorial(_cells(n=3))
    assert found.items[0].startswith("With 3 graphs per recipe this run cannot recommend a recipe")


def test_the_moment_link_is_stated_only_when_its_interval_allows():
    link = pd.DataFrame(
        [
            {
                "layout": "paper",
                "init": "archscale",
                "readout": "mean_field",
                "spearman_moment": -0.9,
                "spearman_moment_lo": -0.97,
                "spearman_moment_hi": -0.7,
                "partial_pred": 0.1,
                "partial_pred_lo": -0.6,
                "partial_pred_hi": 0.7,
            }
        ]
    )
    assert "follows the readout's input second moment" in findings.recipe_factorial(_cells(), link).markdown()
    unclear = link.assign(spearman_moment_lo=-0.9, spearman_moment_hi=0.4)
    assert (
        "cannot tell what the maximal LR follows" in findings.recipe_factorial(_cells(), unclear).markdown()
    )


# -- initialization, paths, the maximal-update heuristic ---------------------------------------------------


def test_initialization_states_which_rule_keeps_the_moment():
    rows = []
    for code, family_skip in (("2_22_222", False), ("1_21_212", True)):
        for init, out in (("archscale", 1.0 if not family_skip else 1.8), ("he", 4.0), ("source", 2.0)):
            for v, pred in ((1, 1.0), (2, 1.0), (3, out)):
                rows.append(
                    {
                        "code": code,
                        "init": init,
                        "layout": "paper",
                        "seed": 0,
                        "vertex": v,
                        "ratio": pred * 1.01,
                        "predicted": pred,
                    }
                )
    rows += [
        {
            "code": "2_22_222",
            "init": "archscale",
            "layout": "reference",
            "seed": 0,
            "vertex": 2,
            "ratio": 1.3,
            "predicted": 1.0,
        }
    ]
    found = findings.initialization(pd.DataFrame(rows), ["2_22_222"], ["1_21_212"], "2_22_222", 256)
    text = found.markdown()
    assert "the target in-degree rule keeps the input's second moment best" in text
    assert "the output grows even under the target rule" in text
    assert "the reference layout (post-activation sums) gives 1.30" in text


def test_dag_paths_states_the_spread_of_eq8_over_the_space():
    space = space_table(5, "mlp", sample=300, seed=0)
    found = findings.dag_paths(space, sampled=True)
    assert "no graph more than the base's rate" in found.items[0]
    assert f"×{space['scale'].median():.2f}" in found.items[1]


def _mup_tables(b=(1.58, 1.38, 1.78), n_graphs=100, drift=(0.2, 0.1, 0.15, 0.03, 0.05)):
    lr_table = pd.DataFrame(
        {"slope_all": [0.22, -0.25], "slope_wide": [0.12, -0.47], "wide_from": [256, 256]},
        index=["MLP, mean-field readout", "MLP, standard readout"],
    )
    heuristic = {"MLP, mean-field readout": 0.0, "MLP, standard readout": -0.5}
    fits = pd.DataFrame(
        [{"n_graphs": n_graphs, "b_sumL3": b[0], "b_lo": b[1], "b_hi": b[2], "best_law": "sum L^2"}]
    )
    clean = pd.DataFrame(
        [
            {
                "series": "block-only graphs",
                "width": w,
                "n_graphs": 20,
                "b_sumL3": 1.5,
                "b_lo": 1.3,
                "b_hi": 1.6,
                "b=1 in CI": False,
                "b_free": 0.9,
                "b_free_lo": 0.6,
                "b_free_hi": 1.3,
                "free_offset": 0.25,
            }
            for w in (256, 1024)
        ]
    )
    spread = pd.DataFrame(
        {"max_min_ratio": [2420.0, 159.0], "n_graphs": [100, 100]}, index=["shared", "scaled"]
    )
    ratio, lo0, hi0, lo1, hi1 = drift
    table = pd.DataFrame({"width": [64, 1024], "best_lr_lo": [lo0, lo1], "best_lr_hi": [hi0, hi1]})
    return (
        lr_table,
        heuristic,
        fits,
        clean,
        spread,
        {"mean-field readout": (table, {"ratio": ratio, "slope": -0.57, "any_at_edge": False})},
    )


def test_maximal_update_rejects_b_1_and_reports_the_drift():
    text = findings.maximal_update(*_mup_tables()).markdown()
    assert "b = 1.58 [1.38, 1.78], above eq. 8's b = 1: b = 1 is rejected" in text
    assert "b = 1 is rejected at every width" in text
    assert "15.2× narrower" in text
    assert "moves ×0.2 from width 64 to 1024" in text and "does not transfer" in text
    assert "close" in text and "off" in text
    assert "×0.2 under the mean-field readout" in findings.drift_title(_mup_tables()[-1], "digits")
    assert "b = 1 rejected" in findings.path_law_title(_mup_tables()[2], "Δz²")


def test_maximal_update_cannot_decide_b_on_few_graphs_or_a_drift_inside_the_noise():
    text = findings.maximal_update(*_mup_tables(n_graphs=4, drift=(0.8, 0.1, 0.2, 0.09, 0.18))).markdown()
    assert "this run cannot decide b" in text
    assert "this run cannot establish a drift" in text


# -- NAS cells and which law -------------------------------------------------------------------------------


def _nas(gain=(-20.3, -33.8, -6.6), n_cells=8):
    per_cell = pd.DataFrame(
        {"lo": [-40.0] * 3 + [-10.0] * (n_cells - 3), "hi": [-5.0] * 3 + [10.0] * (n_cells - 3)}
    )
    topk = pd.DataFrame([{"ks": 100, "n": n_cells, "tau": 0.07}])
    noise = pd.DataFrame([{"ks": 100, "tau_min": -0.14, "tau_max": 0.57, "tau_mean": 0.24}])
    cmp = SimpleNamespace(
        gain=SimpleNamespace(mean=gain[0], lo=gain[1], hi=gain[2]),
        per_cell=per_cell,
        accuracy=pd.DataFrame(index=range(n_cells)),
        topk=topk,
        noise=noise,
        new="archscale",
        old="fixed",
    )
    results = pd.DataFrame(
        {
            "recipe": ["archscale", "fixed", "mup"] * 2,
            "lr": [0.17, 0.8, 0.8] * 2,
            "train_loss": [1.74, 0.79, 1.3] * 2,
            "diverged": [0, 0, 0] * 2,
        }
    )
    cells = pd.DataFrame({"lr_scale": [0.13, 0.35, 0.2]})
    return cmp, results, cells


def test_nas_says_the_recipe_trails_and_why():
    cmp, results, cells = _nas()
    text = findings.nas_rankings(cmp, cmp, results, cells).markdown()
    assert "the architecture-aware recipe trails (per cell: 0 better, 3 worse, 5 indistinguishable)" in text
    assert "Why: eq. 8 moved the base cell's LR by ×0.13 to ×0.35" in text
    assert "without one divergence" in text and "under-train" in text
    assert "not distinguishable from seed noise" in text
    assert "-20.3 pp [-33.8, -6.6]" in findings.nas_title(cmp)


def test_nas_on_few_cells_cannot_decide_a_re_ranking():
    cmp, results, cells = _nas(gain=(1.0, -2.0, 3.0), n_cells=3)
    text = findings.nas_rankings(cmp, cmp, results, cells).markdown()
    assert "no difference is established" in text and "Why:" not in text
    assert "3 cells are too few to decide whether the recipe re-ranks them" in text


def _transfer(label, law, ratios):
    k = [1, *range(2, 2 + len(ratios))]
    t = pd.DataFrame(
        {
            "depth": k,
            "graph": [f"g{i}" for i in k],
            "is_base": [True] + [False] * len(ratios),
            "ratio": [1.0, *[r[0] for r in ratios]],
            "ratio_lo": [1.0, *[r[1] for r in ratios]],
            "ratio_hi": [1.0, *[r[2] for r in ratios]],
            "measured": 0.1,
            "measured_lo": 0.05,
            "measured_hi": 0.2,
            "predicted": 0.1,
            "at_edge": False,
        }
    )
    return SimpleNamespace(label=label, law=law, table=t, deepest=t.iloc[-1])


def test_which_law_says_scale_the_branches_when_only_depth_mup_holds():
    transfers = [
        _transfer("(a) eq. 8", "eq8", [(1.2, 0.9, 1.5), (3.3, 1.3, 8.2)]),
        _transfer("(b) effective depth", "effective_depth", [(0.5, 0.3, 0.9), (0.3, 0.1, 0.7)]),
        _transfer("(c) Depth-muP", "constant", [(0.8, 0.6, 1.1), (1.0, 0.4, 1.0)]),
    ]
    text = findings.which_law({}, transfers).markdown()
    assert "**For residual nets, scale the branches, not the LR:**" in text
    assert "the prediction misses at K = 3" in text
    transfers[2] = _transfer("(c) Depth-muP", "constant", [(0.5, 0.3, 0.7)])
    assert "does not support scaling the branches" in findings.which_law({}, transfers).markdown()
    assert transfer_rows(transfers[0])["net"].iloc[0].startswith("K = 1 block · ")


def test_which_law_cannot_rank_laws_on_few_graphs():
    rows = law_rows(["1", *CHAINS[:2]], lambda d: lr_scale(d), np.random.default_rng(1))
    reports = {"MLP depth": compare_laws(rows, "1", holdout=0.0, n_boot=100)}
    text = findings.which_law(reports, []).markdown()
    assert "with 2 configurations this run cannot decide which law predicts best" in text


# -- tables and the glossary -----------------------------------------------------------------------------


def test_long_tables_are_collapsed_and_short_ones_shown():
    short = pd.DataFrame({"a": range(3)})
    assert show_table(short, "three") is short
    long = show_table(pd.DataFrame({"a": range(40)}), "forty")
    assert isinstance(long, Collapsed)
    assert repr(long).count("\n") == 0 and "40 rows" in repr(long)
    assert long._repr_html_().startswith("<details><summary>forty")


def test_rows_are_named_by_what_a_reader_cares_about():
    assert row_label("1") == "L = 3 (base) · 1"
    assert row_label(Dag.chain(7).code).startswith("L = 10 · ")
    assert row_label("2_22_222") == "2_22_222"
    assert row_label("2_12_002_0012", depth=2) == "K = 2 blocks · 2_12_002_0012"
    long = "_".join("0" * i + "2" for i in range(16))
    assert len(short_code(long)) < 40 and "(17 vertices)" in short_code(long)


def test_standard_has_one_meaning_in_the_glossary():
    table = glossary_markdown()
    assert table.count("\n") == len(GLOSSARY) + 1
    meanings = [meaning for term, meaning, _ in GLOSSARY if "standard" in term.lower()]
    assert len(meanings) == 1 and "nothing else" in meanings[0]


def test_an_undecidable_calibration_prints_one_line():
    agreement = SimpleNamespace(
        estimate={"error_factor": 1.3}, lo={"error_factor": 1.1}, hi={"error_factor": 1.6}, n=2
    )
    cal = SimpleNamespace(
        fit_graphs=["a", "b"],
        calibrated=SimpleNamespace(agreement=agreement),
        eq8=SimpleNamespace(agreement=agreement),
        format=lambda: "the full report\nover lines",
    )
    assert "\n" not in findings.calibration_report(cal, law="eq. 9")
    assert "cannot decide whether a calibrated law beats eq. 9" in findings.calibration_report(
        cal, law="eq. 9"
    )
    cal.fit_graphs = list("abcdefgh")
    assert findings.calibration_report(cal) == "the full report\nover lines"


def test_rank_sets_too_small_to_rank_are_named_not_tabled(capsys):
    from archscale.notebook.tables import show_rank_stability

    stability = pd.DataFrame(
        {"comparison": ["a vs b", "a vs b"], "ks": [100, 25], "n": [8, 3], "tau": [0.1, -0.3]}
    )
    show_rank_stability(stability, min_n=5)
    out = capsys.readouterr().out
    assert "top 25% (3 cells)" in out and "top 100%" not in out


# -- notebooks 02 and 10 --------------------------------------------------------------------------------


def _offset_fit(rows):
    return pd.DataFrame([{"offset": o, "n": n, "error_factor": e, "error_factor_lo": lo,
                          "error_factor_hi": hi, "log_rmse_fit": math.log(e)} for o, n, e, lo, hi in rows])


def test_the_depth_offset_finding_says_whether_the_offsets_are_separated():
    overlap = findings.depth_offset(_offset_fit([(2, 7, 1.2, 1.1, 1.5), (3, 7, 1.3, 1.1, 1.7)]), 3).markdown()
    assert "2 fits the measured maximal LRs best" in overlap and "does not separate" in overlap
    apart = findings.depth_offset(_offset_fit([(2, 7, 1.2, 1.1, 1.3), (3, 7, 2.0, 1.6, 2.6)]), 3).markdown()
    assert "prefers the best offset" in apart
    same = findings.depth_offset(_offset_fit([(2, 7, 1.5, 1.1, 1.9), (3, 7, 1.3, 1.1, 1.7)]), 3).markdown()
    assert "is the reference convention's (3)" in same
    few = findings.depth_offset(_offset_fit([(2, 2, 1.2, 1.1, 1.5), (3, 2, 1.3, 1.1, 1.7)]), 3).markdown()
    assert "very few points" in few


def test_apply_depth_states_the_miss_at_the_deepest_net():
    comp = _comparison(CHAINS[:4], power=0.5)
    measured = pd.DataFrame({"blocks": [1, 2, 8], "predicted max LR": [0.1, 0.05, 0.004],
                             "measured max LR": [0.1, 0.06, 0.0225]})
    text = findings.apply_depth(comp, measured).markdown()
    assert "K = 8 blocks" in text and "×5.6 the prediction (above it)" in text
    assert text.count("- ") >= 3


# -- the LR transfer check against the target trained directly (notebook 13) ----------------------------


def _check_row(answer, lo, hi, truth, t_lo, t_hi, agreeing=("constant",), source="constant", edge=""):
    return {"family": "residual MLP", "optimizer": "sgd", "answer": answer, "answer_lo": lo, "answer_hi": hi,
            "source": source, "agreeing": list(agreeing), "truth": truth, "truth_lo": t_lo, "truth_hi": t_hi,
            "truth_edge": edge, "truth_lrs": 11, "sizes": [1.0, 2.0, 4.0], "target": 16.0, "n_seeds": 3,
            "noise_floor": 1.1}


def test_check_transfer_says_when_the_answer_interval_contains_the_truth():
    table = pd.DataFrame([_check_row(0.1, 0.07, 0.15, 0.12, 0.09, 0.16)])
    text = findings.check_transfer(table).markdown()
    assert "check answers 0.1 [0.07, 0.15] at depth 16" in text
    assert "constant agrees with depths 1, 2, 4" in text
    assert "optimum is 0.12 [0.09, 0.16]" in text and "11 LRs, 3 seeds" in text
    assert "the answer's interval contains it (answer / truth = 0.83)" in text
    assert "contained the directly measured optimum in 1 of 1 case." in text
    assert "LR checked at depth 1, 2, 4 -> 16" in findings.check_transfer_title(table)


def test_check_transfer_says_when_the_answer_misses_the_truth():
    apart = _check_row(0.3, 0.2, 0.45, 0.13, 0.06, 0.18)
    touching = _check_row(0.3, 0.2, 0.45, 0.13, 0.06, 0.27, edge="low")
    text = findings.check_transfer(pd.DataFrame([apart, touching])).markdown()
    assert text.count("**the answer's interval misses it**, ×2.3 too high") == 2
    assert "(the two intervals do not overlap)" in text
    assert "(the truth's own interval reaches the answer's)" in text
    assert "grid's low edge: only a bound" in text
    assert "in 0 of 2 cases" in text
    assert "held the directly measured optimum in 0 of 2 cases" in findings.check_transfer_title(
        pd.DataFrame([apart, touching]))


def test_check_transfer_says_when_no_law_agrees_or_the_truth_is_missing():
    none = _check_row(0.05, 0.03, 0.08, 0.04, 0.03, 0.06, agreeing=(), source="trend")
    lost = _check_row(0.05, 0.03, 0.08, math.nan, math.nan, math.nan)
    text = findings.check_transfer(pd.DataFrame([none, lost])).markdown()
    assert "no law agrees with depths 1, 2, 4 (none within ×1.5 or the noise floor ×1.1)" in text
    assert "the answer is the fitted trend's" in text
    assert "this run cannot judge the answer" in text
    assert "in 1 of 1 case (1 could not be judged)." in text

def _exponent(label, b, lo, hi, depths=8, seeds=4):
    from archscale.analysis.depth_exponent import DepthExponent

    table = pd.DataFrame({"graph": [str(i) for i in range(depths)], "depth": range(3, 3 + depths),
                          "measured": 1.0, "measured_lo": 0.9, "measured_hi": 1.1, "at_edge": False})
    return DepthExponent(label, b, lo, hi, table, seeds, 100, 100, 0.67)


def test_adam_states_which_depth_exponent_each_interval_allows():
    run = SimpleNamespace(exponents={"AdamW": _exponent("AdamW", -0.55, -0.7, -0.4),
                                     "SGD": _exponent("SGD", -1.5, -1.6, -1.4),
                                     "SGD, momentum 0.9": _exponent("m", -1.0, -1.6, -0.4)},
                          reports={}, kernel=None)
    f = findings.adam(run)
    assert "AdamW: max LR ∝ L^b with b = -0.55 [-0.7, -0.4]" in f
    assert "consistent with Depth-muP's Adam -1/2" in f
    assert "SGD: max LR ∝ L^b" in f and "rejects Depth-muP's Adam -1/2" in f
    assert "this preset cannot decide between them" in f  # momentum's interval holds both
    assert "AdamW's maximal LR falls more slowly with depth than plain SGD's" in f
    title = findings.adam_depth_title(run.exponents)
    assert "AdamW -0.55 [-0.70, -0.40]" in title and "quick" not in title
