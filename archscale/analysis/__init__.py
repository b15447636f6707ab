"""Reading results: the maximal-LR rule, agreement with eq. 8/9, and the comparisons built on them.

* :mod:`~archscale.analysis.maxlr` — the one best-LR rule (diverged runs capped, seed bootstrap);
* :mod:`~archscale.analysis.agreement` — the agreement metrics and their bootstrap intervals;
* :mod:`~archscale.analysis.compare` — measured vs predicted maximal LR of a sweep;
* :mod:`~archscale.analysis.kernel` — eq. 9's kernel factor alone: per-graph slopes of max LR on q.
"""

from .agreement import METRIC_NAMES, Agreement, agreement_metrics, bootstrap_agreement
from .compare import Comparison, Measured, compare, eq8_rule, measure, recipe_of
from .kernel import EQ9_EXPONENT, KernelExponents, kernel_exponents, kernel_slope
from .maxlr import best_lr, clean_losses, loss_matrix, max_lr

__all__ = ["EQ9_EXPONENT", "METRIC_NAMES", "Agreement", "Comparison", "KernelExponents", "Measured",
           "agreement_metrics", "best_lr", "bootstrap_agreement", "clean_losses", "compare", "eq8_rule",
           "kernel_exponents", "kernel_slope", "loss_matrix", "max_lr", "measure", "recipe_of"]
