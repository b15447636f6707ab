"""Learning-rate sweeps: the strict spec (:mod:`.spec`), running them (:mod:`.run`) and executors.

A :class:`SweepSpec` (from YAML, or a bundled preset by name) names graphs, widths, kernel
sizes, an LR grid, seeds and the training recipe; :func:`run_sweep` trains every replica with
the batched trainer, chunk by chunk, into a crash-safe :class:`~archscale.runs.store.ResultStore`,
in this process (:class:`LocalExecutor`) or as Ray tasks across a cluster (:class:`RayExecutor`);
:func:`max_lr` and :func:`compare` (from :mod:`archscale.analysis`) read the maximal LRs off
the rows and set them against eq. 8/9.
"""

from ..analysis import Comparison, best_lr, compare, max_lr
from ..core.errors import ArchscaleError, SpecError, StoreError
from ..core.schema import COLUMNS, CONFIG_KEYS, METRICS
from ..runs.executor import LocalExecutor, run_chunks
from ..runs.ray import RayExecutor
from ..runs.store import META_FILE as SPEC_FILE
from ..runs.store import RESULTS_FILE
from .run import Chunk, grid_coverage, load_results, plan_chunks, run_sweep, train_chunk
from .spec import IDENTITY_FIELDS, SweepSpec, load_spec, presets

__all__ = [
    "COLUMNS",
    "CONFIG_KEYS",
    "IDENTITY_FIELDS",
    "METRICS",
    "RESULTS_FILE",
    "SPEC_FILE",
    "ArchscaleError",
    "Chunk",
    "Comparison",
    "LocalExecutor",
    "RayExecutor",
    "SpecError",
    "StoreError",
    "SweepSpec",
    "best_lr",
    "compare",
    "grid_coverage",
    "load_results",
    "load_spec",
    "max_lr",
    "plan_chunks",
    "presets",
    "run_chunks",
    "run_sweep",
    "train_chunk",
]
