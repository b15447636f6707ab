"""Every notebook in notebooks/: committed clean with a parameters cell, and runs at the smoke preset."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from executed_notebooks import figure_title_problems, problems

from archscale.notebook.reproduce import run_notebook
from archscale.notebook.widgets import STATIC_ENV

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REQUIRED = {"preset", "device", "dataset", "data_dir", "seed", "figures_dir", "runs_dir"}
#: Stable figure names the notebooks of this series must write (others must write at least one).
EXPECTED_FIGURES = {
    "01_initialization": {"fig_init_second_moments"},
    "02_learning_rate": {"fig_lr_offset"},
    "03_dag_paths": {"fig_dag_paths", "fig_lr_scale_distribution"},
    "04_mlp_depth": {"fig5_mlp_depth"},
    "05_mlp_topology": {"fig2_mlp_topology", "fig_calibration_mlp"},
    "05b_recipe_factorial": {"fig_recipe_factorial"},
    "06_cnn_kernel_topology": {"fig3_cnn_kernel_topology", "fig_cnn_kernel_exponents", "fig_calibration_cnn"},
    "06b_mixed_kernels": {"fig06b_mixed_kernels"},
    "07_gelu": {"fig7_gelu"},
    "08_maximal_update": {"fig_mup_delta_z", "fig_mup_coord_check", "fig_mup_path_law", "fig_mup_spread",
                          "fig_mup_width_transfer", "fig_mup_contributions", "fig_mup_path_law_clean"},
    "09_nas_rankings": {"fig4_nas_scaled_vs_fixed", "fig8_nas_mup_vs_archscale", "fig9_nas_rank_stability"},
    "10_apply_to_your_model": {"fig10_apply_depth_transfer"},
    "11_which_law": {"fig11_laws_agreement", "fig11_residual_depth_transfer"},
    "11b_residual_norm": {"fig11b_residual_norm"},
    "13_check": {"fig13_check"},
    "12_adam": {"fig12_adam_depth_exponent", "fig12_adam_laws", "fig12_adam_width"},
}
#: Figures of analyses a smoke sweep may be too small for: the notebook then prints one line saying why
#: (e.g. "No calibration on this sweep: ...") instead of drawing them.
OPTIONAL_AT_SMOKE = {"fig_calibration_mlp", "fig_calibration_cnn"}
ROOT = NOTEBOOK_DIR.parent


def test_shown_figures_are_committed_as_png_and_pdf():
    """Every figure the README or the docs show exists, with its PDF twin, and every expected figure is
    shown somewhere."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(p.read_text() for p in pages if "_build" not in p.parts)
    embedded = set(re.findall(r"(?:^|[(\s/])figures/([\w.-]+)\.png", text, flags=re.M))
    figures = ROOT / "figures"
    missing = sorted(s for s in embedded
                     if not ((figures / f"{s}.png").exists() and (figures / f"{s}.pdf").exists()))
    assert not missing, f"README/docs show figures not committed as PNG + PDF: {missing}; run make reproduce"
    expected = set().union(*EXPECTED_FIGURES.values())
    assert expected <= embedded, \
        f"figures the notebooks write but neither the README nor the docs show: {sorted(expected - embedded)}"


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"
    names = [p.stem for p in NOTEBOOKS]
    assert names == sorted(names) and all(re.fullmatch(r"\d\d[a-z]?_\w+", n) for n in names), \
        f"notebooks must be numbered in reading order (NN_name.ipynb, or NNb_name.ipynb after NN): {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebook_is_clean_with_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one code cell tagged 'parameters'"
    assert tagged[0] is code[0], f"{path.name}: the parameters cell must be the first code cell"
    assigned = {t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert REQUIRED <= assigned, f"{path.name}: parameters cell lacks {sorted(REQUIRED - assigned)}"
    defaults = {}
    exec(compile(tagged[0].source, path.name, "exec"), {}, defaults)  # plain literals only
    assert defaults["preset"] == "quick" and defaults["device"] == "cpu"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_preset(path, tmp_path, monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "1")
    figures = tmp_path / "figures"
    figures.mkdir()
    params = {"preset": "smoke", "device": "cpu", "figures_dir": str(figures),
              "runs_dir": str(tmp_path / "runs")}
    result = run_notebook(path, tmp_path / path.name, params, cwd=NOTEBOOK_DIR, figures_dir=figures,
                          progress=False)
    if result.status != "ok":
        pytest.fail(f"{path.name} failed in cell {result.cell_index}:\n{result.cell_source}\n---\n"
                    f"{result.error}", pytrace=False)
    written = {Path(f).stem for f in result.figures}
    expected = EXPECTED_FIGURES.get(path.stem)
    if expected is not None:
        missing = expected - written - OPTIONAL_AT_SMOKE
        assert not missing, f"{path.name} did not write {sorted(missing)}"
    else:
        assert written, f"{path.name} wrote no figure to figures_dir"
    for stem in written:
        assert (figures / f"{stem}.png").exists() and (figures / f"{stem}.pdf").exists()
    wrong = problems(tmp_path / path.name) + [p for stem in sorted(written)
                                              for p in figure_title_problems(figures / f"{stem}.png")]
    assert not wrong, f"{path.name} at the smoke preset:\n  " + "\n  ".join(wrong)
