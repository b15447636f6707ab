"""The `archscale sweep` and `archscale maxlr` commands, run as a user would (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sweep_specs import ADAMW_SPEC, TINY_SPEC

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SPEC = TINY_SPEC


def archscale(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archscale.cli", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=300)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp / "out"
    proc = archscale("sweep", str(spec), "--out", str(out), "--set", "seeds=[0, 1]")
    return spec, out, proc


def test_sweep_then_maxlr(finished):
    _, out, proc = finished
    assert proc.returncode == 0, proc.stderr
    assert "18 rows" in proc.stdout and "pearson_log" in proc.stdout
    assert (out / "results.jsonl").exists() and (out / "spec.yaml").exists()
    table = archscale("maxlr", str(out))
    assert table.returncode == 0, table.stderr
    assert "pearson_log" in table.stdout and "2_02" in table.stdout
    as_json = archscale("maxlr", str(out), "--json", "--metric", "train_loss_final")
    assert as_json.returncode == 0, as_json.stderr
    obj = json.loads(as_json.stdout)
    # the base is left out of every metric, and so is a max LR at the grid's edge (counted in n_edge)
    assert obj["n"] + obj["n_edge"] == 2 and obj["base_excluded"] and not obj["edges_scored"]
    assert obj["base"] == "1" and obj["metric"] == "train_loss_final" and obj["method"] == "subgrid"
    assert {row["graph"] for row in obj["table"]} == {"1", "2", "2_02"}
    assert {"max_lr", "max_lr_lo", "max_lr_hi", "max_lr_grid", "edge", "method", "measured", "predicted"} \
        <= set(obj["table"][0])
    assert all(row["edge"] in (None, "low", "high") for row in obj["table"])
    edges = json.loads(archscale("maxlr", str(out), "--json", "--edges", "--method", "argmin").stdout)
    assert edges["n"] == 2 and edges["edges_scored"] and edges["method"] == "argmin"
    assert all(row["max_lr"] == row["max_lr_grid"] for row in edges["table"])


def test_maxlr_uses_the_last_specs_grid(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert archscale("sweep", str(spec), "--out", str(out), "--set", "seeds=[0, 1]",
                     "--no-progress").returncode == 0
    more = archscale("sweep", str(spec), "--out", str(out), "--set", "seeds=[2]", "--no-progress")
    assert more.returncode == 0, more.stderr
    assert "9 rows" in more.stdout  # the new spec's grid only
    last = archscale("maxlr", str(out), "--json")
    assert last.returncode == 0 and "18 rows of earlier grids set aside" in last.stderr
    every = archscale("maxlr", str(out), "--json", "--all-rows")
    assert every.returncode == 0 and "set aside" not in every.stderr
    counted = [json.loads(x.stdout)["n"] + json.loads(x.stdout)["n_edge"] for x in (last, every)]
    assert counted == [2, 2]


def test_rerun_skips_finished_work(finished):
    spec, out, _ = finished
    before = (out / "results.jsonl").read_bytes()
    again = archscale("sweep", str(spec), "--out", str(out), "--set", "seeds=[0, 1]", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_bytes() == before


VALID = "arch: mlp\ngraphs: ['1']\nlr_min: 0.05\nlr_max: 0.5\nn_lrs: 3\n"


@pytest.mark.parametrize("text, needle", [
    ("dataset: imagenet\n", "unknown dataset"),
    ("n_lrs: 0\n", "empty LR grid"),
    ("lr_min: 0\n", "positive"),
    ("graphs: [2_02]\n", "quote DAG codes"),
    ("graphs: ['2_03']\n", "digit 3"),
    ("arch: cnn\nkernel_sizes: [2]\n", "odd"),
    ("speed: 11\n", "unknown field"),
    ("graphs: ['1'\n", "not valid YAML"),
    # strictness (issue 9): quoted booleans, duplicates, conflicts, inapplicable and required keys
    ("cosine: 'false'\n", "cosine must be true or false"),
    ("nesterov: 'no'\nmomentum: 0.9\n", "nesterov must be true or false"),
    ("lrs: [0.1, 0.2]\n", "not both"),
    ("seeds: [0]\nseeds: [1]\n", "duplicate key 'seeds'"),
    ("kernel_sizes: [3]\n", "kernel_sizes applies only to arch: cnn"),
    ("graphs: []\n", "graphs is empty"),
    ("__omit__arch", "arch is required"),
    ("__omit__lr_max", "the LR grid is required"),
    # the optimizer keys (issue 23)
    ("optimizer: lion\n", "unknown optimizer 'lion'; accepted: sgd, adam, adamw"),
    ("optimizer: adam\nmomentum: 0.9\n", "momentum is SGD's"),
    ("optimizer: adamw\nnesterov: true\n", "nesterov is SGD's"),
    ("betas: [0.9, 0.99]\n", "betas is Adam's"),
    ("eps: 1e-6\n", "eps is Adam's"),
    ("optimizer: adam\nbetas: [0.9, 1.5]\n", "must be < 1"),
    ("optimizer: adam\nbetas: [0.9]\n", "betas must be a pair"),
    ("optimizer: adam\neps: -1e-8\n", "eps must be a positive number"),
])
def test_bad_specs_exit_2_with_one_line(tmp_path, text, needle):
    """Each bad key on top of a valid spec (keys given twice are the test's own choice)."""
    lines = VALID.splitlines()
    if text.startswith("__omit__"):
        body = "".join(line + "\n" for line in lines if not line.startswith(text[8:] + ":"))
    else:
        keys = {line.split(":")[0] for line in text.splitlines()}
        body = text + "".join(line + "\n" for line in lines if line.split(":")[0] not in keys)
    if "lrs:" in text:
        body = text + "".join(line + "\n" for line in lines if not line.startswith("n_lrs"))
    spec = tmp_path / "bad.yaml"
    spec.write_text(body)
    proc = archscale("sweep", str(spec), "--out", str(tmp_path / "o"))
    _one_line_error(proc, "archscale sweep: error:", needle)
    assert not (tmp_path / "o").exists()


def test_an_adamw_spec_sweeps_and_maxlr_and_laws_answer(tmp_path):
    spec = tmp_path / "adamw.yaml"
    spec.write_text(ADAMW_SPEC)
    out = tmp_path / "out"
    proc = archscale("sweep", str(spec), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "42 rows" in proc.stdout
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()[1:]]
    assert {r["optimizer"] for r in rows if "chunk" in r} == {"adamw"}
    maxlr = archscale("maxlr", str(out), "--json")
    assert maxlr.returncode == 0, maxlr.stderr
    assert len(json.loads(maxlr.stdout)["table"]) == 7
    laws = archscale("laws", str(out), "--json")
    assert laws.returncode == 0, laws.stderr
    assert json.loads(laws.stdout)
    again = archscale("sweep", str(spec), "--out", str(out), "--no-progress")
    assert again.returncode == 0 and "42 rows" in again.stdout
    _one_line_error(archscale("sweep", str(spec), "--out", str(out), "--set", "optimizer=adam"),
                    "optimizer: 'adamw' -> 'adam'")


def test_unreadable_spec_files_exit_2(tmp_path):
    _one_line_error(archscale("sweep", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")),
                    "does not exist")
    _one_line_error(archscale("sweep", str(tmp_path), "--out", str(tmp_path / "o")), "directory")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\xff\xfe\x80garbage")
    _one_line_error(archscale("sweep", str(binary), "--out", str(tmp_path / "o")), "cannot read")


def test_bad_overrides_and_arguments_exit_2(tmp_path, finished):
    spec, out, _ = finished
    _one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path), "--set", "lr_min=-1"),
                    "positive")
    _one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path), "--set", "cosine='no'"),
                    "cosine must be true or false")
    _one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path), "--set", "nonsense"), "KEY=VALUE")
    _one_line_error(archscale("sweep", str(spec), "--out", str(out), "--set", "steps=7"),
                    "holds a sweep of another setup")
    _one_line_error(archscale("sweep", str(spec), "--out", str(out), "--set", "optimizer=adamw"),
                    "holds a sweep of another setup", "optimizer: 'sgd' -> 'adamw'")
    _one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path), "--set", "optimizer=adam",
                              "--set", "momentum=0.9"), "momentum is SGD's")
    _one_line_error(archscale("sweep", str(spec)), "--out")
    if not torch.cuda.is_available():
        _one_line_error(archscale("sweep", str(spec), "--out", str(tmp_path), "--device", "cuda"), "CUDA")


def test_maxlr_errors_exit_2(tmp_path, finished):
    _one_line_error(archscale("maxlr", str(tmp_path / "nowhere")), "does not exist")
    _one_line_error(archscale("maxlr", str(tmp_path)), "no finished results")
    _, out, _ = finished
    _one_line_error(archscale("maxlr", str(out), "--base", "2_22"), "base graph '2_22'")


@pytest.mark.determinism
def test_workers_from_the_command_line_give_the_same_rows(tmp_path, finished):
    """``python -m archscale.cli sweep --workers 2``: the spawned workers re-import the entry module
    without re-running the command, and the rows equal the one-process run's."""
    from archscale.sweep import load_results

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    proc = archscale("sweep", str(spec), "--out", str(tmp_path / "out"), "--set", "seeds=[0, 1]", "--workers",
                     "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    key = ["graph", "lr", "seed"]
    cols = ["graph", "lr", "seed", "train_loss", "test_loss", "test_acc", "diverged"]
    one = load_results(finished[1])[cols].sort_values(key).reset_index(drop=True)
    two = load_results(tmp_path / "out")[cols].sort_values(key).reset_index(drop=True)
    assert len(two) == len(one) > 0 and two.equals(one)


def test_a_script_without_a_main_guard_gets_one_clear_error(tmp_path):
    """Spawned workers re-run an unguarded script and die: one error that says why, not one per chunk."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    script = tmp_path / "unguarded.py"
    script.write_text("from archscale.sweep import load_spec, run_sweep\n"
                      f"run_sweep(load_spec({str(spec)!r}), {str(tmp_path / 'out')!r}, workers=2, "
                      "chunk_size=1, progress=False)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr and proc.stderr.count("a worker process died") == 1
