"""What each notebook's run found, written from that run's own numbers.

Every notebook ends with a "What this run found" cell that calls one function of this module:
it reads the objects the notebook computed (comparisons, fits, result rows) and returns
:class:`Findings`, a short list of sentences that IPython displays as Markdown. Nothing here holds
a measured number: each sentence is computed, and where an interval or the sample size does not
allow a conclusion the sentence says that this run cannot decide it. Figure titles that state a
finding come from the same functions (:func:`agreement_title`).

The rules of evidence, the same everywhere: a correlation or a ranking needs at least
:data:`MIN_RANKED` items; a fit of k parameters needs more than ``2 k`` points; a claim that two
quantities differ needs intervals that do not overlap; an interval that contains the value a
claim is tested against does not reject it.
"""

from __future__ import annotations

from . import core, kernels, page, probes, studies, sweeps
from .core import *  # noqa: F403
from .kernels import *  # noqa: F403
from .page import *  # noqa: F403
from .probes import *  # noqa: F403
from .studies import *  # noqa: F403
from .sweeps import *  # noqa: F403

__all__ = [*core.__all__, *kernels.__all__, *page.__all__, *probes.__all__, *studies.__all__, *sweeps.__all__]
