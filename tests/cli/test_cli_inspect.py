"""``archscale inspect FILE.py:FACTORY``: the plan of a user's module on the command line."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from archscale.cli import main
from archscale.core.scaling import scaled_lr

EXE = shutil.which("archscale")
CMD = [EXE] if EXE else [sys.executable, "-m", "archscale.cli"]

MODELS = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(w, w, 5, padding=2), nn.Conv2d(w, w, 5, padding=2)

        def forward(self, x):
            return x + self.c2(F.relu(self.c1(F.relu(x))))

    class ResNet(nn.Module):
        def __init__(self, blocks=2, w=4):
            super().__init__()
            self.stem = nn.Conv2d(3, w, 5, padding=2)
            self.blocks = nn.Sequential(*[Block(w) for _ in range(blocks)])
            self.head = nn.Linear(w, 10)

        def forward(self, x):
            return self.head(F.relu(self.blocks(self.stem(x))).mean((2, 3)))

    def one_block():
        return ResNet(1)

    def wide():  # 2**6 = 64 paths: printed as a histogram
        return ResNet(6)

    def with_bn():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(144, 2))

    def broken():
        raise RuntimeError("no weights here")
''')


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "models.py"
    path.write_text(MODELS)
    return str(path)


def run(*args):
    """``archscale inspect ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["inspect", *args])
    return code, out.getvalue(), err.getvalue()


def test_inspect_prints_graph_paths_table_and_lr(model_file):
    code, text, err = run(f"{model_file}:ResNet", "--input-shape", "2,3,8,8", "--base-lr", "0.1")
    assert code == 0, err
    expected = scaled_lr(0.1, "2_12_002_0012", "cnn", 5)
    assert "2_12_002_0012" in text and f"{expected:.6g}" in text and "kernel q = 5" in text
    assert "blocks.0.c1, blocks.0.c2, blocks.1.c1, blocks.1.c2" in text  # the path list
    assert "in_degree" in text and "identity skips" in text


def test_inspect_json_with_a_module_base(model_file):
    code, out, err = run(f"{model_file}:ResNet", "--input-shape", "1,3,8,8",
                         "--base", f"{model_file}:one_block", "--base-lr", "0.2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["code"] == "2_12_002_0012" and data["paths"] == 4 and len(data["listed_paths"]) == 4
    assert data["lr"] == pytest.approx(0.2 * (27 + 125) ** 0.5 / (27 + 2 * 125 + 343) ** 0.5)
    assert {m["module"] for m in data["modules"]} >= {"stem", "head", "blocks.1.c2"}
    many = json.loads(run(f"{model_file}:wide", "--input-shape", "1,3,8,8", "--json")[1])
    assert many["paths"] == 64 and many["listed_paths"] == []
    text = run(f"{model_file}:wide", "--input-shape", "1,3,8,8")[1]
    assert "64 paths; by depth: L=3: 1, L=5: 6" in text


@pytest.mark.parametrize("args, message", [
    (["{f}:with_bn", "--input-shape", "2,3,8,8", "--norm", "error"], "BatchNorm2d"),
    (["{f}:broken", "--input-shape", "2,3,8,8"], "broken() raised RuntimeError: no weights here"),
    (["{f}:missing", "--input-shape", "2,3,8,8"], "defines no function or class 'missing'"),
    (["nofile.py:ResNet", "--input-shape", "2,3,8,8"], "no such file"),
    (["{f}", "--input-shape", "2,3,8,8"], "FILE.py:FACTORY"),
    (["{f}:ResNet", "--input-shape", "2,x3"], "--input-shape"),
    (["{f}:ResNet", "--input-shape", "2,4,8,8"], "failed on the example input"),
    (["{f}:ResNet", "--input-shape", "2,3,8,8", "--base-lr", "-1"], "base_lr"),
])
def test_inspect_bad_input_exits_2_with_one_line(model_file, args, message):
    code, _, err = run(*[a.format(f=model_file) for a in args])
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_inspect_refuses_a_file_python_cannot_import(tmp_path):
    path = tmp_path / "models.txt"  # importlib finds no loader for it (it used to raise AttributeError)
    path.write_text(MODELS)
    code, _, err = run(f"{path}:ResNet", "--input-shape", "2,3,8,8")
    assert code == 2 and "not a Python file" in err and "Traceback" not in err


def test_inspect_through_the_installed_command(model_file):
    out = subprocess.run([*CMD, "inspect", f"{model_file}:with_bn", "--input-shape", "2,3,8,8", "--norm",
                          "error"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "BatchNorm2d" in out.stderr and "Traceback" not in out.stderr
    for norm in ([], ["--norm", "ignore"]):  # the default reads it as the identity ('ignore': the old name)
        out = subprocess.run([*CMD, "inspect", f"{model_file}:with_bn", "--input-shape", "2,3,8,8", *norm],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "norm='pass-through'" in out.stdout and not out.stderr
