"""The ``archscale`` command line through subprocess: output and every bad-input class."""

import json
import shutil
import subprocess
import sys

import pytest

from archscale.core.dag import Dag
from archscale.core.scaling import lr_scale

EXE = shutil.which("archscale")
CMD = [EXE] if EXE else [sys.executable, "-m", "archscale.cli"]


def run(*args):
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=120)


def test_lr_json_reports_scale_paths_and_depths():
    out = run("lr", "--dag", "2_22_222", "--base-lr", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["paths"] == 4
    assert sorted(data["depths"]) == [4, 5, 5, 6]
    assert data["scale"] == pytest.approx(lr_scale(Dag.parse("2_22_222")))
    assert data["lr"] == pytest.approx(0.5 * data["scale"])


def test_lr_cnn_kernel_and_text_output():
    out = run("lr", "--arch", "cnn", "--dag", "2_02_002", "--base-lr", "0.1", "--kernel-size", "7")
    assert out.returncode == 0, out.stderr
    expected = 0.1 * lr_scale(Dag.parse("2_02_002", ops="cnn"), "cnn", 7)
    assert f"{expected:.6g}" in out.stdout


def test_lr_large_graph_without_listing_paths():
    code = "_".join("2" * i for i in range(1, 40))
    data = json.loads(run("lr", "--dag", code, "--base-lr", "1", "--json").stdout)
    assert data["paths"] == 2**38 and data["depths"] is None
    assert sum(data["depth_counts"].values()) == 2**38


def test_paths_table_and_json():
    out = run("paths", "--dag", "2_12_202")
    assert out.returncode == 0, out.stderr
    assert "0 -> 2 -> 3" in out.stdout and "path(s)" in out.stdout
    data = json.loads(run("paths", "--dag", "3_12_400", "--arch", "nb201", "--json").stdout)
    assert data["paths"] == Dag.parse("3_12_400", ops="nb201").n_paths
    assert {tuple(item["path"]) for item in data["items"]} == set(Dag.parse("3_12_400", ops="nb201").paths())


BAD = [
    (["lr", "--dag", "2_2", "--base-lr", "0.1"], "group 2"),
    (["lr", "--dag", "2_02_0020", "--base-lr", "0.1"], "group 3"),
    (["lr", "--dag", "2_05_002", "--base-lr", "0.1"], "digit 5"),
    (["lr", "--dag", "", "--base-lr", "0.1"], "empty"),
    (["lr", "--dag", "2_x2_002", "--base-lr", "0.1"], "not a digit"),
    (["lr", "--dag", "0_00_000", "--base-lr", "0.1"], "no path"),
    (["lr", "--dag", "2_00_000", "--base-lr", "0.1"], "no path"),
    (["lr", "--dag", "2_02_002", "--base-lr", "0.1", "--arch", "cnn", "--kernel-size", "4"], "odd"),
    (["lr", "--dag", "2_02_002", "--base-lr", "0.1", "--arch", "cnn", "--kernel-size", "-3"], "odd"),
    (["lr", "--dag", "2_02_002", "--base-lr", "0.1", "--arch", "cnn", "--kernel-size", "x"], "kernel"),
    (["lr", "--dag", "2_02_002", "--base-lr", "0"], "positive"),
    (["lr", "--dag", "2_02_002", "--base-lr", "-0.1"], "positive"),
    (["lr", "--dag", "2_02_002", "--base-lr", "nan"], "positive"),
    (["lr", "--dag", "2_02_002", "--base-lr", "fast"], "positive"),
    (["lr", "--dag", "5", "--base-lr", "0.1", "--arch", "nb201"], "digit 5"),
    (["paths", "--dag", "2_0"], "group 2"),
    (["paths", "--dag", "0"], "no path"),
    (["lr", "--base-lr", "0.1"], "--dag"),
]


@pytest.mark.parametrize("args, fragment", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(args, fragment):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert fragment in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_error_messages_show_a_valid_example():
    out = run("lr", "--dag", "2_2", "--base-lr", "0.1")
    assert "2_02_002" in out.stderr


def test_negative_offset_exits_2():
    out = run("lr", "--dag", "2_02_002", "--base-lr", "0.1", "--offset", "-2")
    assert out.returncode == 2 and "offset" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "archscale", "lr", "--dag", "2", "--base-lr", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "lr" in out.stdout


LIGHT = """
import sys
from archscale.cli import main
code = main({argv!r})
heavy = sorted(m for m in ("torch", "pandas") if m in sys.modules)
print("HEAVY", heavy, code, file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["lr", "--dag", "2_22_222", "--base-lr", "0.1"],
                                  ["paths", "--dag", "2_12_202"], ["lr", "--dag", "2_2", "--base-lr", "0.1"]])
def test_lr_and_paths_import_neither_torch_nor_pandas(argv):
    out = subprocess.run([sys.executable, "-c", LIGHT.format(argv=argv)], capture_output=True, text=True,
                         timeout=120)
    assert "HEAVY [] " in out.stderr, out.stderr


def test_reproduce_without_papermill_says_how_to_install_it():
    code = ("import sys; sys.modules['papermill'] = None\n"
            "from archscale.cli import main\nsys.exit(main(['reproduce', '--only', 'x']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'archscale[notebooks]'" in lines[0] and "papermill" in lines[0]


def test_cli_wiring_has_no_import_cycle():
    """All subcommands are wired in the cli package; the modules they drive never import it back."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "archscale"
    for path in package.rglob("*.py"):
        if path.parent.name == "cli" or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
                assert not any(n == "cli" or n.endswith(".cli") for n in names), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.endswith(".cli") for a in node.names), path
