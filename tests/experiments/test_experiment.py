"""run_experiment and run_factorial at the smoke presets: what they train, report and draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from archscale.analysis import recipe_of
from archscale.core.schema import SWEEP
from archscale.experiments.maxlr import FACTORS, PAPER, run_experiment, run_factorial
from archscale.plots.sweeps import factorial_figure
from archscale.runs.store import ResultStore


def test_run_experiment_trains_reloads_and_reports_what_ran(tmp_path):
    exp = run_experiment("mlp_topology", "smoke", runs_dir=tmp_path, progress=False)
    assert set(exp.comparisons) == {"all"}
    assert (tmp_path / "mlp_topology_smoke" / "results.jsonl").exists()
    described = exp.describe()
    assert f"{exp.results['graph'].nunique()} graphs" in described
    assert "recipe actually run (read from the rows)" in described
    assert "np." not in described  # plain numbers, not numpy reprs
    report = exp.report()
    fig_name, paper_r = PAPER["mlp_topology"]["all"]
    assert fig_name in report and f"{paper_r:.3f}" in report
    again = run_experiment("mlp_topology", "smoke", runs_dir=tmp_path, progress=False)
    assert again.results.equals(exp.results)  # reloaded from the store, nothing retrained


def test_run_factorial_runs_every_recipe_and_links_the_readout_moment(tmp_path):
    fact = run_factorial("smoke", runs_dir=tmp_path, progress=False, n_boot=50)
    n_cells = int(np.prod([len(v) for v in FACTORS.values()]))
    cells = fact.cells
    assert len(cells) == n_cells
    assert set(map(tuple, cells[["layout", "init", "readout"]].to_numpy())) == set(fact.comparisons)
    assert len(list((tmp_path / "recipe_factorial_smoke").iterdir())) == n_cells
    for layout, init, readout in fact.comparisons:  # each directory holds the recipe it is named for
        rows = SWEEP.frame(ResultStore(tmp_path / "recipe_factorial_smoke" / f"{layout}_{init}_{readout}")
                           .scan().rows)
        assert recipe_of(rows) == {"layout": layout, "init": init, "readout": readout}
    base = fact.moments[fact.moments["is_base"]]
    assert np.allclose(base["z2_ratio"], 1.0)
    effects = fact.main_effects()
    assert len(effects) == sum(len(v) for v in FACTORS.values())
    link = fact.variance_link(n_boot=20)
    assert len(link) == n_cells and {"spearman_pred", "partial_pred_lo"} <= set(link.columns)
    fig = factorial_figure(fact, title="smoke")
    assert len(fig.axes) >= 3 and all(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes[:3])


def test_run_factorial_refuses_an_unknown_preset(tmp_path):
    with pytest.raises(Exception, match="recipe_factorial_nope"):
        run_factorial("nope", runs_dir=tmp_path, progress=False)
