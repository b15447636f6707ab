"""``archscale reproduce``: runs every notebook, reports failures with their cell, keeps going."""

from __future__ import annotations

import io
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from archscale.cli import main as cli_main
from archscale.notebook import reproduce as rep
from archscale.notebook.widgets import STATIC_ENV

PARAMS = ('preset = "quick"\ndevice = "cpu"\ndataset = "digits"\ndata_dir = None\nseed = 0\n'
          'figures_dir = "../figures"\nruns_dir = "../runs"')

OK_FIGURE = """
import os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from archscale.plots import save_figure
assert os.environ.get("ARCHSCALE_STATIC_WIDGETS") == "1"
assert not os.path.isabs(figures_dir) and os.path.isdir(figures_dir) and os.path.isdir(runs_dir)
assert os.path.basename(os.getcwd()) == "nbs"
fig, ax = plt.subplots()
ax.set_title(preset + " " + device)
save_figure(fig, "fig_ok_" + preset, figures_dir)
"""


def _notebook(path, *cells):
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *[new_code_cell(c) for c in cells]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    nbs = root / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_ok.ipynb", OK_FIGURE)
    _notebook(nbs / "02_fail.ipynb", "x = 1", "y = x + 1\nraise RuntimeError(f'boom {y}')", "print('never')")
    _notebook(nbs / "03_after.ipynb", "import os\nopen(os.path.join(runs_dir, 'ran.txt'), 'w').write(preset)")
    return root


@pytest.fixture(scope="module")
def smoke_run(project):
    before = os.environ.get(STATIC_ENV)
    stream = io.StringIO()
    table = rep.reproduce("smoke", notebooks_dir=project / "nbs", output_dir=project / "out",
                          figures_dir=project / "figs", runs_dir=project / "runs", progress=False,
                          stream=stream)
    assert os.environ.get(STATIC_ENV) == before  # restored after the run
    return table, stream.getvalue()


def test_table_reports_each_notebook(smoke_run, project):
    table, _ = smoke_run
    assert list(table["notebook"]) == ["01_ok", "02_fail", "03_after"]
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert (table["seconds"] > 0).all()
    assert table.loc[0, "figures"] == "fig_ok_smoke" and table.loc[0, "n_files"] == 2
    assert table.loc[2, "figures"] == "-"
    assert {p.name for p in (project / "figs").iterdir()} == {"fig_ok_smoke.png", "fig_ok_smoke.pdf"}


def test_executed_copies_named_by_preset(smoke_run, project):
    assert sorted(p.name for p in (project / "out").iterdir()) == [
        "01_ok.smoke.ipynb", "02_fail.smoke.ipynb", "03_after.smoke.ipynb"]


def test_failure_names_cell_source_and_error_and_the_rest_still_run(smoke_run, project):
    table, log = smoke_run
    assert "FAILED: 02_fail" in log
    assert "raise RuntimeError(f'boom {y}')" in log and "y = x + 1" in log
    assert "RuntimeError: boom 2" in log
    assert table.loc[1, "error"] == "RuntimeError: boom 2"
    assert (project / "runs" / "ran.txt").read_text() == "smoke"  # notebook 03 ran after the failure


def test_cli_exit_status_and_only(project, capsys):
    args = ["reproduce", "--preset", "quick", "--notebooks-dir", str(project / "nbs"), "--output-dir",
            str(project / "out_cli"), "--figures-dir", str(project / "figs_cli"), "--runs-dir",
            str(project / "runs_cli"), "--no-progress"]
    assert cli_main([*args, "--only", "01"]) == 0
    out = capsys.readouterr().out
    assert "01_ok" in out and "fig_ok_quick" in out and "1/1 notebooks passed" in out
    assert (project / "out_cli" / "01_ok.ipynb").exists()  # quick: plain name
    assert cli_main([*args, "--only", "fail"]) == 1
    captured = capsys.readouterr()
    assert "failed: 02_fail" in captured.out and "boom" in captured.err


def test_cli_usage_errors_exit_2(project, capsys):
    assert cli_main(["reproduce", "--notebooks-dir", str(project / "nbs"), "--only", "zzz"]) == 2
    assert "matches no notebook" in capsys.readouterr().err
    assert cli_main(["reproduce", "--notebooks-dir", str(project / "missing")]) == 2
    with pytest.raises(SystemExit) as err:
        cli_main(["reproduce", "--preset", "huge"])
    assert err.value.code == 2


def test_find_notebooks_patterns(project):
    nbs = project / "nbs"
    names = lambda only: [p.stem for p in rep.find_notebooks(nbs, only)]  # noqa: E731
    assert names(None) == ["01_ok", "02_fail", "03_after"]
    assert names("0[13]") == ["01_ok", "03_after"]
    assert names("*fail*") == ["02_fail"]
    assert names("ok, after") == ["01_ok", "03_after"]
    with pytest.raises(rep.ArchscaleError, match="available: 01_ok"):
        rep.find_notebooks(nbs, "nothing")


def test_api_validates_preset_and_device(project):
    with pytest.raises(rep.ArchscaleError, match="preset"):
        rep.reproduce("medium", notebooks_dir=project / "nbs")
    with pytest.raises(rep.ArchscaleError, match="device"):
        rep.reproduce("smoke", device="tpu", notebooks_dir=project / "nbs")


def test_static_env_names_agree():
    assert rep.STATIC_ENV == STATIC_ENV


def test_format_table_lists_columns(smoke_run):
    table, _ = smoke_run
    text = rep.format_table(table)
    assert "figures written" in text and "2/3 notebooks passed" in text


BARS = """
from archscale import plots
plots.use_style()  # switches tqdm.auto to its headless bar, as every notebook's first cell does
from tqdm.auto import tqdm, trange
for _ in tqdm(range(300), desc="training", unit="step"):
    pass
with tqdm(total=4500, desc="sweep", unit=" replica-steps", unit_scale=True) as bar:
    bar.update(4500)
print("done", sum(trange(4)))
"""


def test_a_rerun_writes_the_same_bytes_and_bars_print_one_line_without_times(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_bars.ipynb", BARS)
    copies = []
    for _ in range(2):
        table = rep.reproduce("smoke", notebooks_dir=nbs, output_dir=tmp_path / "out",
                              figures_dir=tmp_path / "f", runs_dir=tmp_path / "r", progress=False,
                              stream=io.StringIO())
        assert table["status"].tolist() == ["ok"]
        copies.append((tmp_path / "out" / "01_bars.smoke.ipynb").read_bytes())
    assert copies[0] == copies[1]
    nb = nbformat.reads(copies[0].decode(), as_version=4)
    streams = {"stdout": "", "stderr": ""}
    for out in nb.cells[-1].outputs:
        streams[out["name"]] += out["text"]
    assert streams["stderr"] == "training: 300/300 step\nsweep: 4.50k/4.50k replica-steps\n4/4 it\n"
    assert streams["stdout"] == "done 6\n"
    assert all("execution" not in c.metadata and "start_time" not in c.metadata.get("papermill", {})
               for c in nb.cells)


def test_notebooks_that_write_evidence_run_first(project, monkeypatch):
    """So that the plans the other notebooks print quote this run's evidence, not the last run's."""
    monkeypatch.setattr(rep, "_evidence_param",
                        lambda nb, preset: {"evidence_dir": "ev"} if nb.stem == "03_after" else {})
    table = rep.reproduce("quick", only="01,03", notebooks_dir=project / "nbs",
                          output_dir=project / "out_order", figures_dir=project / "figs_order",
                          runs_dir=project / "runs_order", progress=False, stream=io.StringIO())
    assert list(table["notebook"]) == ["03_after", "01_ok"] and set(table["status"]) == {"ok"}
