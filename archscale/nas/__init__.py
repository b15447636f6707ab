"""NAS-Bench-201-style cell networks and the re-ranking study (paper section 4.4, Fig. 4, 8, 9).

Benchmarks such as NAS-Bench-201 train every cell with one recipe. This package trains the same
cells with several recipes (:mod:`~archscale.nas.recipes`) and compares the resulting accuracies
and rankings (:mod:`~archscale.nas.ranking`):

* :mod:`~archscale.nas.cells` — the cell, the residual reduction block and the skeleton network;
* :mod:`~archscale.nas.mup_recipe` — muP as the ``mup`` package applies it, reimplemented;
* :mod:`~archscale.nas.recipes` — fixed, archscale and muP recipes and the networks they build;
* :mod:`~archscale.nas.training` — one cell, one recipe, one seed;
* :mod:`~archscale.nas.study` — every (cell, recipe, seed), stored and resumable;
* :mod:`~archscale.nas.ranking` — Kendall tau of top-K% sets, paired gains, comparisons.
"""

from .cells import CELL_OPS, CellNet, NasCell, ReductionBlock, ReLUConvBN, as_cell
from .mup_recipe import apply_mup, mup_infshapes, mup_param_groups
from .ranking import (
    GainEstimate,
    RecipeComparison,
    compare_recipes,
    comparison_table,
    kendall_tau,
    mean_gain,
    paired_differences,
    pairwise_gaps,
    rank_stability,
    recipe_summary,
    seed_noise,
    topk_kendall,
    topk_pairwise_gap,
)
from .recipes import RECIPES, Recipe, as_recipe, build_cell_net, describe_cells, recipe_lr
from .study import RESULT_COLUMNS, BaseLrSearch, accuracy_table, find_base_lr, load_nas_results, run_nas_study
from .training import BENCHMARK, BENCHMARK_LR, train_cell_net

__all__ = [
    "BENCHMARK", "BENCHMARK_LR", "CELL_OPS", "RECIPES", "RESULT_COLUMNS", "BaseLrSearch", "CellNet",
    "GainEstimate", "NasCell", "ReLUConvBN", "Recipe", "RecipeComparison", "ReductionBlock", "accuracy_table",
    "apply_mup", "as_cell", "as_recipe", "build_cell_net", "compare_recipes", "comparison_table",
    "describe_cells", "find_base_lr", "kendall_tau", "load_nas_results", "mean_gain", "mup_infshapes",
    "mup_param_groups", "paired_differences", "pairwise_gaps", "rank_stability", "recipe_lr",
    "recipe_summary", "run_nas_study", "seed_noise", "topk_kendall", "topk_pairwise_gap", "train_cell_net",
]
