"""Notebook 11's head-to-head helpers: zero-shot-only reports, the side-by-side table and the findings."""

import json
import math

import numpy as np
import pytest
from synthetic import law_rows

from archscale import Dag
from archscale.analysis.law_scores import compare_laws
from archscale.core.laws import LAWS
from archscale.experiments.which_law import findings, laws_table

BASE = Dag.parse("1")


@pytest.fixture(scope="module")
def reports():
    codes = ["1"] + [d.code for d in Dag.sample(5, 20, seed=4)]
    rows = law_rows(codes, lambda d: LAWS["eq8"].scale(d, BASE), np.random.default_rng(1))
    small = rows[rows["graph"].isin(codes[:3])]  # two non-base graphs: no held-out split possible
    return {"good": compare_laws(rows, n_boot=100), "small": compare_laws(small, holdout=0, n_boot=100)}


def test_a_zero_shot_only_report_ranks_by_zero_shot_and_says_so(reports):
    small = reports["small"]
    assert small.zero_shot_only and not reports["good"].zero_shot_only
    assert all(r.calibrated is None and math.isnan(r.fitted_exponent) for r in small.laws)
    scores = [r.zero_shot.agreement.estimate["log_rmse"] for r in small.laws]
    assert scores == sorted(scores)
    assert "zero-shot" in small.verdict() and "n = 2" in small.verdict()
    assert "held-out log-RMSE" not in small.ranking().columns and "zero-shot only" in small.format()
    assert json.loads(json.dumps(small.to_dict()))["laws"][0]["calibrated"] is None


def test_laws_table_and_findings_carry_numbers_intervals_and_n(reports):
    table = laws_table(reports)
    assert len(table) == 2 * len(LAWS) and set(table["sweep"]) == {"good", "small"}
    small = table[table["sweep"] == "small"]
    assert small["held-out error_factor"].isna().all() and (small["held-out n"] == 0).all()
    lines = findings(reports, good=1.5)
    assert len(lines) == 2
    good, small_line = lines
    assert "best zero-shot law eq8" in good and "within a factor 1.5" in good
    assert "n = 20 configurations" in good
    assert "Zero-shot ranking" in small_line and "n = 2" in small_line
    strict = findings({"good": reports["good"]}, good=1.0001)[0]  # noise of 5% leaves the factor above 1
    assert "no law predicts within a factor 1" in strict or "undecided" in strict
