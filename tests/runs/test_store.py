"""The crash-safe store: owns its files, never rewrites bytes, verifies chunks, reports damage by line."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from archscale.core.errors import StoreError
from archscale.core.schema import NAS, SWEEP
from archscale.runs.store import LOCK_FILE, META_FILE, RESULTS_FILE, ResultStore, chunk_checksum


def row(seed: int, lr: float = 0.1, graph: str = "1") -> dict:
    return {"graph": graph, "arch": "mlp", "width": 8, "kernel_size": 0, "act": "relu", "lr": lr,
            "seed": seed,
            "train_loss": 1.0 + seed, "train_loss_final": float("nan"), "test_loss": float("inf"),
            "test_acc": 0.5, "diverged": False, "steps": 3, "diverged_step": -1, "layout": "paper",
            "init": "archscale", "readout": "mean_field"}


def filled(directory, chunks=(("aaaaaaaaaaaaaaaa", [0, 1]), ("bbbbbbbbbbbbbbbb", [2, 3]))) -> ResultStore:
    store = ResultStore(directory)
    with store.open() as w:
        w.write_meta({"arch": "mlp", "steps": 3})
        for cid, seeds in chunks:
            w.append(cid, [row(s) for s in seeds])
    return store


def snapshot(directory) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_layout_header_marker_and_checksum(tmp_path):
    store = filled(tmp_path)
    lines = (tmp_path / RESULTS_FILE).read_bytes().splitlines(keepends=True)
    head = json.loads(lines[0])
    assert head == {"format": "archscale-results", "version": 1, "kind": "sweep", "columns": SWEEP.names}
    marker = json.loads(lines[3])
    assert marker["chunk_done"] == "aaaaaaaaaaaaaaaa" and marker["n"] == 2
    assert marker["sha256"] == chunk_checksum(b"".join(lines[1:3]))
    assert (tmp_path / META_FILE).read_text().startswith("# archscale-meta format=1 kind=sweep")
    scan = store.scan()
    assert len(scan.rows) == 4 and scan.chunks == {"a" * 16, "b" * 16} and not scan.damaged
    assert scan.rows[1]["seed"] == 1 and scan.rows[0]["test_loss"] == float("inf")
    assert store.read_meta() == {"arch": "mlp", "steps": 3}


@pytest.mark.parametrize("name, content", [
    (RESULTS_FILE, b'{"step": 1, "loss": 0.3}\n'),
    (RESULTS_FILE, b""),
    (RESULTS_FILE, b"epoch,loss\n1,0.5\n"),
    (RESULTS_FILE, b'{"chunk": "abc", "graph": "1"}\n{"chunk_done": "abc", "n": 1}\n'),  # before format 1
    (RESULTS_FILE, b'{"format": "archscale-results", "version": 99, "kind": "sweep"}\n'),
    (RESULTS_FILE, b'{"format": "archscale-results", "version": 1, "kind": "nas"}\n'),
    (META_FILE, b"arch: mlp\nlr_min: 0.1\n"),
])
def test_files_that_are_not_ours_are_refused_and_left_byte_identical(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    store = ResultStore(tmp_path)
    with pytest.raises(StoreError) as err:
        store.open()
    assert "\n" not in str(err.value) and str(tmp_path / name) in str(err.value)
    with pytest.raises(StoreError):
        store.scan() if name == RESULTS_FILE else store.read_meta()
    assert snapshot(tmp_path) == before  # no lock file, no header, nothing


def test_a_nas_store_keeps_nas_rows_and_its_own_meta_name(tmp_path):
    nas_row = {"graph": "1_01_001", "recipe": "fixed", "kind": "fixed", "seed": 0, "width": 16, "n_cells": 5,
               "base_lr": 0.1, "lr": 0.1, "epochs": 1, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.1,
               "test_acc": 0.4, "diverged": False, "seconds": 2.0}
    store = ResultStore(tmp_path, NAS, meta_name="study.yaml")
    with store.open() as w:
        w.write_meta({"width": 16})
        w.append("cccccccccccccccc", [nas_row])
    assert store.scan().rows == [nas_row] and store.read_meta() == {"width": 16}
    with pytest.raises(StoreError, match="'nas' rows, not 'sweep'"):
        ResultStore(tmp_path).scan()


def test_user_lines_are_reported_and_kept_and_appends_start_a_new_line(tmp_path):
    store = filled(tmp_path)
    path = tmp_path / RESULTS_FILE
    with open(path, "ab") as f:
        f.write(b"my note\n{\"note\": 1}\npartial")  # two user lines and a torn tail
    before = path.read_bytes()
    scan = store.scan()
    assert [(d.line, d.reason) for d in scan.damaged] == [
        (8, "not valid JSON"), (9, "not an archscale row or chunk marker"),
        (10, "incomplete last line (a write cut off, e.g. by a kill)")]
    assert scan.torn_tail and len(scan.rows) == 4
    assert "lines 8-10" not in scan.describe(path) and "line 8: not valid JSON" in scan.describe(path)
    with store.open() as w:
        w.append("dddddddddddddddd", [row(4)])
    after = path.read_bytes()
    assert after.startswith(before) and after[len(before):len(before) + 1] == b"\n"
    scan = store.scan()
    assert len(scan.rows) == 5 and [d.line for d in scan.damaged] == [8, 9, 10]


def test_a_changed_row_fails_its_chunks_checksum(tmp_path):
    store = filled(tmp_path)
    path = tmp_path / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"seed": 1', b'"seed": 7')
    path.write_bytes(b"".join(lines))
    scan = store.scan()
    assert [d.line for d in scan.damaged] == [2, 3, 4] and "checksum mismatch" in scan.damaged[0].reason
    assert [r["seed"] for r in scan.rows] == [2, 3] and scan.unrecovered() == scan.damaged
    assert "lines 2-4: chunk aaaaaaaaaaaaaaaa: checksum mismatch" in scan.describe(path)
    with store.open() as w:  # the chunk written again: the damage is recovered, the old bytes stay
        w.append("aaaaaaaaaaaaaaaa", [row(0), row(1)])
    scan = store.scan()
    assert len(scan.rows) == 4 and not scan.unrecovered() and "written again intact" in scan.describe(path)


def test_rows_of_a_chunk_without_marker_do_not_count(tmp_path):
    store = filled(tmp_path)
    path = tmp_path / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # the last marker lost
    scan = store.scan()
    assert [r["seed"] for r in scan.rows] == [0, 1]
    assert [d.line for d in scan.damaged] == [5, 6]
    assert "without its completion marker" in scan.damaged[0].reason
    assert scan.damaged[0].chunk == "b" * 16


def test_lock_refuses_a_second_writer_and_never_truncates_the_lock_file(tmp_path):
    (tmp_path / LOCK_FILE).write_text("someone's pid 123\n")
    store = ResultStore(tmp_path)
    with store.open() as w:
        with pytest.raises(StoreError, match="another archscale process"):
            ResultStore(tmp_path).open()
        w.append("aaaaaaaaaaaaaaaa", [row(0)])
    assert (tmp_path / LOCK_FILE).read_text() == "someone's pid 123\n"
    with open(tmp_path / LOCK_FILE) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="another archscale process"):
            store.open()


def test_a_failed_start_leaves_the_directory_as_it_was(tmp_path):
    target = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with ResultStore(target).open() as w:
            w.write_meta({"arch": "mlp"})
            raise RuntimeError("the data did not load")
    assert not (tmp_path / "a").exists()
    store = filled(tmp_path / "c")
    before = snapshot(tmp_path / "c")
    with pytest.raises(RuntimeError):
        with store.open() as w:
            w.write_meta({"arch": "mlp", "steps": 5})
            raise RuntimeError("interrupted before the first chunk")
    assert snapshot(tmp_path / "c") == before


def test_a_failure_to_open_the_results_file_undoes_the_start(tmp_path, monkeypatch):
    import archscale.runs.store as st

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self.store.path))

    monkeypatch.setattr(st.StoreWriter, "_open_results", refuse)
    with pytest.raises(StoreError, match="Permission denied"):
        ResultStore(tmp_path / "new").open()
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_text("x"), "is a file, not a directory"),
    (lambda p: p.parent.joinpath("f").write_text("x"), "is a file"),
])
def test_paths_in_the_way(tmp_path, make, match):
    target = tmp_path / "out"
    make(target)
    where = target if match.startswith("is a file,") else tmp_path / "f" / "out"
    with pytest.raises(StoreError, match=match):
        ResultStore(where).open()


def test_empty_directory_name_is_refused():
    with pytest.raises(StoreError, match="empty"):
        ResultStore("")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_one_store_error(tmp_path):
    store = filled(tmp_path / "ro")
    os.chmod(tmp_path / "ro" / RESULTS_FILE, 0o444)
    before = snapshot(tmp_path / "ro")
    with pytest.raises(StoreError, match="Permission denied"):
        store.open()
    assert snapshot(tmp_path / "ro") == before
