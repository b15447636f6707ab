"""Issue 9's data-safety cases, run from outside as a user would (``python -m archscale ...``).

Foreign files stay byte-identical, failed starts leave the directory as it was, damaged lines are
reported by number and re-trained, incomplete grids are refused or labelled, OS errors are one
line with exit status 2, and ``--offset`` means the same in ``lr`` and ``maxlr``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sweep_specs import TINY_SPEC

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
SPEC = TINY_SPEC + "chunk_size: 3\n"


def archscale(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archscale", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


def inproc(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same command through ``archscale.cli.main`` in this process (no interpreter start-up)."""
    from archscale.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["archscale", *args], code, out.out, out.err)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(": warning: " in line for line in lines if line not in errors), proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished tiny sweep (3 graphs x 3 LRs, 3 chunks of 3 rows) and its spec file."""
    tmp = tmp_path_factory.mktemp("finished")
    spec = tmp / "tiny.yaml"
    spec.write_text(SPEC)
    proc = archscale("sweep", str(spec), "--out", str(tmp / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return spec, tmp / "out"


def copy(finished_dir: Path, dest: Path) -> Path:
    shutil.copytree(finished_dir, dest)
    return dest


# ---------------------------------------------------------------------------------------- foreign files
@pytest.mark.parametrize("name, content", [
    ("results.jsonl", b'{"epoch": 1, "loss": 0.25}\n{"epoch": 2, "loss": 0.21}\n'),
    ("spec.yaml", b"model: resnet18\nlr: 0.1\n"),
])
def test_another_tools_files_are_refused_and_left_byte_identical(tmp_path, finished, name, content):
    spec, _ = finished
    out = tmp_path / "theirs"
    out.mkdir()
    (out / name).write_bytes(content)
    before = snapshot(out)
    one_line_error(archscale("sweep", str(spec), "--out", str(out), "--no-progress"), name, "not archscale's"
                   if name == "spec.yaml" else "not an archscale results file")
    one_line_error(archscale("maxlr", str(out)), name)
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == [name]


def test_a_line_a_user_appended_is_kept_and_reported(tmp_path, finished):
    spec, done = finished
    out = copy(done, tmp_path / "out")
    with open(out / "results.jsonl", "ab") as f:
        f.write(b"checked by alice, all fine\n")
    before = (out / "results.jsonl").read_bytes()
    again = archscale("sweep", str(spec), "--out", str(out), "--no-progress")  # nothing to train
    assert again.returncode == 0 and "line 14" in again.stderr, again.stderr
    assert (out / "results.jsonl").read_bytes() == before
    more = archscale("sweep", str(spec), "--out", str(out), "--no-progress", "--set", "seeds=[0, 1]")
    assert more.returncode == 0 and "18 rows" in more.stdout, more.stderr
    assert (out / "results.jsonl").read_bytes().startswith(before)


# ---------------------------------------------------------------------------------------- failed starts
def fake_cifar10(root: Path) -> Path:
    """A tiny folder in the official cifar-10-batches-py layout (random images)."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, size=(8, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, size=8)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, 2))
    return root


def test_missing_cifar_leaves_a_new_directory_uncreated_and_an_old_one_untouched(tmp_path, finished):
    spec, _ = finished
    nested = tmp_path / "runs" / "cifar"
    one_line_error(archscale("sweep", str(spec), "--out", str(nested), "--set", "dataset=cifar10",
                             "--data-dir", str(tmp_path / "nowhere")), "cifar10 not found")
    assert not (tmp_path / "runs").exists()
    data = fake_cifar10(tmp_path / "data")
    out = tmp_path / "c10"
    ok = archscale("sweep", str(spec), "--out", str(out), "--set", "dataset=cifar10", "--set", "n_train=40",
                   "--set", "n_test=8", "--data-dir", str(data), "--no-progress")
    assert ok.returncode == 0, ok.stderr
    before = snapshot(out)
    one_line_error(archscale("sweep", str(spec), "--out", str(out), "--set", "dataset=cifar10", "--set",
                             "n_train=40", "--set", "n_test=8", "--set", "seeds=[0, 1]", "--data-dir",
                             str(tmp_path / "nowhere")), "cifar10 not found")
    assert snapshot(out) == before  # spec.yaml still names the grid that is there
    table = archscale("maxlr", str(out), "--json")
    assert table.returncode == 0 and json.loads(table.stdout)["rows_present"] == 9, table.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only files")
def test_read_only_results_file_fails_the_start_with_one_line(tmp_path, finished):
    spec, done = finished
    out = copy(done, tmp_path / "out")
    os.chmod(out / "results.jsonl", 0o444)
    before = snapshot(out)
    one_line_error(archscale("sweep", str(spec), "--out", str(out), "--set", "seeds=[0, 1]"), "Permission")
    assert snapshot(out) == before


# ---------------------------------------------------------------------------------------- damage, partial
def test_a_damaged_line_is_reported_refused_labelled_and_retrained(tmp_path, finished, capsys):
    spec, done = finished
    out = copy(done, tmp_path / "out")
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    lines[5] = lines[5][:40] + b"#garbled#" + lines[5][49:]  # line 6: a row of the second chunk
    (out / "results.jsonl").write_bytes(b"".join(lines))
    refused = archscale("maxlr", str(out))
    one_line_error(refused, "6 of 9 rows", "damaged lines 6, 7, 8, 9", "--partial")
    assert "line 6: not valid JSON" in refused.stderr  # the warning names the line and why
    partial = inproc(capsys, "maxlr", str(out), "--partial")
    assert partial.returncode == 0 and partial.stdout.startswith("PARTIAL: 6 of 9 rows"), partial.stderr
    obj = json.loads(archscale("maxlr", str(out), "--partial", "--json").stdout)
    assert obj["partial"] is True and (obj["rows_present"], obj["rows_expected"]) == (6, 9)
    again = archscale("sweep", str(spec), "--out", str(out), "--no-progress")
    assert again.returncode == 0 and "line 6: not valid JSON" in again.stderr, again.stderr
    fixed = archscale("maxlr", str(out), "--json")
    obj = json.loads(fixed.stdout)
    assert fixed.returncode == 0 and obj["partial"] is False and obj["rows_present"] == 9
    assert "written again intact" in fixed.stderr
    reference = json.loads(inproc(capsys, "maxlr", str(done), "--json").stdout)
    assert obj["table"] == reference["table"]  # the re-trained chunk gives the same rows


def test_an_interrupted_sweep_is_refused_or_labelled(tmp_path, finished, capsys):
    _, done = finished
    out = copy(done, tmp_path / "out")
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    (out / "results.jsonl").write_bytes(b"".join(lines[:5]))  # header and the first chunk only
    one_line_error(archscale("maxlr", str(out)), "3 of 9 rows", "interrupted")
    # the base graph's chunk is the one present, so a partial answer exists, labelled as such
    partial = inproc(capsys, "maxlr", str(out), "--partial", "--json")
    assert partial.returncode == 0, partial.stderr
    assert json.loads(partial.stdout)["partial"] is True


# ---------------------------------------------------------------------------------------- OS errors
def test_out_paths_that_cannot_be_directories_are_one_line(tmp_path, finished, capsys):
    spec, _ = finished
    (tmp_path / "file").write_text("x")
    one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path / "file")), "is a file")
    one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path / "file" / "sub")), "is a file")
    one_line_error(archscale("sweep", str(spec), "--out", ""), "--out is empty")
    one_line_error(inproc(capsys, "maxlr", ""), "empty")
    one_line_error(inproc(capsys, "maxlr", str(tmp_path / "file")), "is a file")
    assert (tmp_path / "file").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_read_only_directory_is_one_line(tmp_path, finished):
    spec, _ = finished
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    one_line_error(archscale("sweep", str(spec), "--out", str(ro / "out")), "Permission denied")


def test_missing_parents_are_created(tmp_path, finished):
    spec, _ = finished
    proc = archscale("sweep", str(spec), "--out", str(tmp_path / "a" / "b" / "c"), "--no-progress")
    assert proc.returncode == 0 and (tmp_path / "a" / "b" / "c" / "results.jsonl").exists(), proc.stderr


# ---------------------------------------------------------------------------------------- offset, presets
def test_lr_offset_equals_maxlr_offset(finished, capsys):
    _, done = finished
    lr = archscale("lr", "--dag", "2_02", "--base-lr", "1", "--offset", "4", "--json")
    table = archscale("maxlr", str(done), "--offset", "4", "--json")
    assert lr.returncode == 0 and table.returncode == 0, (lr.stderr, table.stderr)
    scale = {row["graph"]: row["scale"] for row in json.loads(table.stdout)["table"]}["2_02"]
    assert json.loads(lr.stdout)["scale"] == pytest.approx(scale) == pytest.approx((4**3 / 6**3) ** 0.5)
    one_line_error(inproc(capsys, "maxlr", str(done), "--offset", "-1"), "offset")


def test_a_bundled_preset_runs_by_name_from_any_directory(tmp_path):
    proc = archscale("sweep", "mlp_depth_smoke", "--out", "o", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0 and "rows in o/results.jsonl" in proc.stdout, proc.stderr
    one_line_error(archscale("sweep", "mlp_depth_smok", "--out", "o", cwd=tmp_path), "mlp_depth_smoke")


def test_the_presets_ship_in_the_wheel(tmp_path):
    """Built and unpacked as pip would install it, away from the checkout: presets load by name."""
    pytest.importorskip("setuptools")
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "archscale", src / "archscale", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    build = subprocess.run([*pip, str(src), "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("archscale-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    assert (tmp_path / "site" / "archscale" / "sweep" / "presets" / "mlp_depth_smoke.yaml").exists()
    env = {**ENV, "PYTHONPATH": str(tmp_path / "site")}
    cmd = [sys.executable, "-m", "archscale", "sweep", "mlp_depth_smoke", "--out", "o", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0 and "rows in o/results.jsonl" in run.stdout, run.stderr
