"""The committed executed copies in papermill_runs/ and the figures in figures/, read as a reader would.

These check committed artefacts, not code: they pass once ``make reproduce`` has regenerated the
copies and figures with the current notebooks (the smoke runs of ``test_notebooks.py`` check the
same on fresh executions).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from executed_notebooks import figure_title_problems, problems

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = sorted((ROOT / "papermill_runs").glob("*.ipynb"))
FIGURES = sorted((ROOT / "figures").glob("*.png"))

pytestmark = pytest.mark.committed


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_committed_executed_copy_reads_well(path):
    wrong = problems(path)
    assert not wrong, (f"papermill_runs/{path.name} (regenerate with make reproduce):\n  "
                       + "\n  ".join(wrong))


@pytest.mark.parametrize("png", FIGURES, ids=lambda p: p.stem)
def test_committed_figure_titles_name_no_preset(png):
    wrong = figure_title_problems(png)
    assert not wrong, "\n".join(wrong)
