"""archscale's error types: one base, a few kinds a caller may want to catch apart (no imports).

Every message says what was wrong, what is accepted and, where it helps, what to do. The
command line prints ``str(err)`` on one line and exits with status 2 for any of these.
"""

from __future__ import annotations

__all__ = ["ArchscaleError", "DagError", "DataError", "NoPathError", "SpecError", "StoreError"]


class ArchscaleError(ValueError):
    """Input archscale cannot accept (a bad argument, graph, spec, file or results directory)."""


class DagError(ArchscaleError):
    """A DAG code or graph that archscale cannot accept."""


class NoPathError(DagError):
    """The graph has no input-to-output path through non-zero edges, so it cannot be trained."""


class SpecError(ArchscaleError):
    """A sweep spec (YAML or fields) that is malformed, conflicting or incomplete."""


class StoreError(ArchscaleError):
    """A results directory archscale cannot use: not its own, damaged, locked or incomplete."""


class DataError(ArchscaleError):
    """A dataset name, file or archive archscale cannot read."""
