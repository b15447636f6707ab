"""Sweeps: strict specs, presets, resumable results (including SIGKILL), max_lr() and compare()."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweep_specs import TINY_SPEC

from archscale.core.dag import Dag
from archscale.core.errors import ArchscaleError, DataError, SpecError, StoreError
from archscale.core.scaling import lr_scale
from archscale.core.schema import SWEEP
from archscale.runs.store import LOCK_FILE, ResultStore, chunk_checksum
from archscale.sweep import (
    COLUMNS,
    RESULTS_FILE,
    SweepSpec,
    compare,
    load_results,
    load_spec,
    max_lr,
    presets,
    run_sweep,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "archscale" / "sweep" / "presets"
TINY = dict(arch="mlp", graphs=["1", "2", "2_02"], widths=[8], lr_min=0.05, lr_max=0.5, n_lrs=3, seeds=[0, 1],
            steps=4, batch_size=64, n_train=200, n_test=50, chunk_size=2)


def tiny(**changes) -> SweepSpec:
    return SweepSpec(**{**TINY, **changes})


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def _rows_of(big: pd.DataFrame, small: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``big`` whose key is one of ``small``'s (tables come sorted by the key)."""
    keys = {SWEEP.key_of(r) for r in small[list(SWEEP.key)].to_dict("records")}
    return big[[SWEEP.key_of(r) in keys for r in big[list(SWEEP.key)].to_dict("records")]]


# ---------------------------------------------------------------------------------------- spec
def test_grid_is_log_spaced_or_listed():
    spec = SweepSpec(arch="mlp", graphs=["1"], lrs=[0.1])
    assert spec.graph_list() == ["1"] and spec.kernel_sizes is None
    grid = SweepSpec(arch="mlp", graphs=["1"], lr_min=0.01, lr_max=1.0, n_lrs=5).lr_grid()
    assert grid == pytest.approx([0.01, 0.01 * 10**0.5, 0.1, 10**-0.5, 1.0])
    assert np.allclose(np.diff(np.log(grid)), np.log(10) / 2)
    assert SweepSpec(arch="mlp", graphs=["1"], lrs=[0.3, "1e-2", 0.1, 0.3]).lr_grid() == [0.01, 0.1, 0.3]
    assert SweepSpec(arch="cnn", graphs=["1"], lrs=[0.1]).kernel_sizes == [3]


def test_base_is_added_and_sample_is_seeded():
    def spec(seed, **kw):
        return SweepSpec(arch="mlp", lrs=[0.1], sample={"n_vertices": 4, "k": 5, "seed": seed}, **kw)

    codes = spec(7, graphs=["2_02"], base="1").graph_list()
    assert codes[:2] == ["1", "2_02"] and len(codes) == 7
    assert codes == spec(7, graphs=["2_02"]).graph_list()
    assert codes != spec(8, graphs=["2_02"]).graph_list()
    assert len(spec(7, graphs=[]).graph_list()) == 6  # an empty list is fine next to a sample
    assert all(Dag.parse(c).has_path for c in codes)


def test_yaml_roundtrip(tmp_path):
    spec = tiny(name="t", description="tiny")
    path = tmp_path / "s.yaml"
    spec.to_yaml(path)
    back = load_spec(path)
    assert back == spec
    (tmp_path / "named.yaml").write_text("arch: mlp\ngraphs: ['1', '2']\nlr_min: 1e-3\nlr_max: 1.0e-1\n"
                                         "n_lrs: 3\nweight_decay: 5e-4\n")
    named = load_spec(tmp_path / "named.yaml")
    assert named.name == "named" and named.lr_grid()[0] == pytest.approx(1e-3)
    assert named.weight_decay == 5e-4  # 5e-4 is a number, not the string YAML 1.1 reads
    assert named.replace(seeds=[4]).seeds == [4]
    listed = named.replace(lrs=[0.1, 0.2])  # an override replaces the grid instead of conflicting
    assert listed.lr_grid() == [0.1, 0.2] and listed.lr_min is None
    assert listed.replace(lr_min=0.01, lr_max=0.1, n_lrs=2).lrs is None


VALID = {"arch": "arch: mlp", "graphs": "graphs: ['1']", "lr_min": "lr_min: 0.01", "lr_max": "lr_max: 1.0",
         "n_lrs": "n_lrs: 3"}


def spec_text(text: str, omit: tuple[str, ...] = ()) -> str:
    """``text`` plus a valid value for every required key it does not set (or that is not omitted)."""
    given = {line.split(":")[0].strip() for line in text.splitlines() if ":" in line}
    if "lrs" in given:
        omit = (*omit, "lr_min", "lr_max", "n_lrs")
    extra = [v for k, v in VALID.items() if k not in given and k not in omit]
    return text + "".join(line + "\n" for line in extra)


BAD_SPECS = [
    ("n_lrs: 0\n", "empty LR grid"),
    ("lrs: []\n", "at least one learning rate"),
    ("lr_min: 0\n", "positive"),
    ("lr_min: -0.1\n", "positive"),
    ("lrs: [0.1, -1]\n", "positive"),
    ("lr_min: 1\nlr_max: 0.1\n", "below lr_min"),
    ("dataset: mnist784\n", "unknown dataset"),
    ("graphs: [2_02]\n", "quote DAG codes"),
    ("graphs: ['2_x']\n", "not a digit"),
    ("graphs: ['0_00']\n", "no path"),
    ("arch: cnn\nkernel_sizes: [4]\n", "odd"),
    ("widths: [0]\n", "widths"),
    ("widths: [8, 8]\n", "repeat"),
    ("seeds: []\n", "seeds is empty"),
    ("seeds: [1, 1]\n", "repeat"),
    ("epochs: 0\n", "epochs"),
    ("steps: -5\n", "steps"),
    ("steps: 3.5\n", "steps"),
    ("batch_size: 0\n", "batch_size"),
    ("momentum: 1.5\n", "momentum"),
    ("momentum: '0.9'\n", "momentum must be a number"),
    ("loss: mse\n", "regression"),
    ("dataset: gaussian_regression\n", "loss: mse"),
    ("learning_rate: 0.1\n", "unknown field"),
    ("sample: {k: 3}\n", "sample must be"),
    ("sample: {n_vertices: 4, k: '3', seed: 0}\n", "sample k"),
    ("- 1\n- 2\n", "mapping"),
    ("graphs: [\n", "not valid YAML"),
    # strict types, duplicates, conflicts, inapplicable and required keys (issue 9)
    ("cosine: 'false'\n", "cosine must be true or false"),
    ("nesterov: 'no'\nmomentum: 0.9\n", "nesterov must be true or false"),
    ("cosine: 0\n", "cosine must be true or false"),
    ("nesterov: true\n", "needs momentum"),
    ("lr_min: 0.01\nlr_max: 1.0\nlr_min: 0.1\n", "duplicate key 'lr_min' (lines 1 and 3)"),
    ("lrs: [0.1]\nlr_min: 0.01\n", "not both"),
    ("kernel_sizes: [3]\n", "kernel_sizes applies only to arch: cnn"),
    ("graphs: []\n", "graphs is empty"),
    # the optimizer and its settings (issue 23)
    ("optimizer: adagrad\n", "unknown optimizer 'adagrad'; accepted: sgd, adam, adamw"),
    ("optimizer: [adam]\n", "unknown optimizer"),
    ("optimizer: adam\nmomentum: 0.9\n", "momentum is SGD's; optimizer adam"),
    ("optimizer: adamw\nmomentum: 0.9\nnesterov: true\n", "momentum and nesterov are SGD's"),
    ("betas: [0.9, 0.99]\n", "betas is Adam's; optimizer sgd takes momentum and nesterov"),
    ("eps: 1e-6\n", "eps is Adam's"),
    ("optimizer: adam\nbetas: [0.9, 1.0]\n", "must be < 1"),
    ("optimizer: adam\nbetas: [0.9]\n", "betas must be a pair"),
    ("optimizer: adam\nbetas: 0.9\n", "betas must be a pair"),
    ("optimizer: adam\nbetas: ['0.9', 0.99]\n", "must be a number"),
    ("optimizer: adam\neps: 0\n", "eps must be a positive number"),
    ("optimizer: adam\nweight_decay: -1\n", "weight_decay must be >= 0"),
    ("optimiser: adam\n", "unknown field(s) optimiser"),
]


@pytest.mark.parametrize("text, match", BAD_SPECS, ids=[t.replace("\n", "; ") for t, _ in BAD_SPECS])
def test_bad_specs(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(spec_text(text) if not text.startswith("- ") else text)
    with pytest.raises(ArchscaleError, match=re.escape(match)) as err:
        load_spec(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("omit, match", [
    (("arch",), "arch is required; accepted: mlp, cnn"),
    (("lr_min", "lr_max", "n_lrs"), "the LR grid is required"),
    (("n_lrs",), "missing: n_lrs"),
    (("graphs",), "graphs is missing"),
])
def test_required_keys(tmp_path, omit, match):
    path = tmp_path / "missing.yaml"
    path.write_text(spec_text("", omit=omit))
    with pytest.raises(SpecError, match=match):
        load_spec(path)


def test_unreadable_spec_files(tmp_path):
    with pytest.raises(ArchscaleError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(ArchscaleError, match="directory"):
        load_spec(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ArchscaleError, match="cannot read"):
        load_spec(tmp_path / "bin.yaml")


# ---------------------------------------------------------------------------------------- running
@pytest.mark.determinism
def test_run_sweep_rows_and_resume(tmp_path, monkeypatch):
    spec = tiny()
    df = run_sweep(spec, tmp_path / "run", progress=False)
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS
    assert len(df) == 3 * 3 * 2
    assert set(df["graph"]) == {"1", "2", "2_02"} and set(df["seed"]) == {0, 1}
    assert df["steps"].eq(4).all() and not df["diverged"].any()
    assert df["kernel_size"].eq(0).all() and df["arch"].eq("mlp").all()
    assert ((df["test_acc"] >= 0) & (df["test_acc"] <= 1)).all()
    _same_rows(load_results(tmp_path / "run"), df)

    # a second run trains nothing
    import archscale.train

    def boom(*a, **k):
        raise AssertionError("nothing should be retrained")

    monkeypatch.setattr(archscale.train, "train_replicas", boom)
    _same_rows(run_sweep(spec, tmp_path / "run", progress=False), df)
    monkeypatch.undo()

    # new seeds and graphs are added; old rows are kept as they were
    more = run_sweep(spec.replace(seeds=[0, 1, 2], graphs=["1", "2", "2_02", "2_12"]), tmp_path / "run",
                     progress=False)
    assert len(more) == 4 * 3 * 3
    _same_rows(_rows_of(more, df), df)


def test_a_new_grid_in_an_old_directory_returns_only_its_rows(tmp_path):
    """A refined LR grid run where a coarser one ran must not mix the two grids' points."""
    coarse = run_sweep(tiny(n_lrs=3), tmp_path, progress=False)
    fine = tiny(n_lrs=4, seeds=[0])
    rows = run_sweep(fine, tmp_path, progress=False)
    assert len(rows) == 3 * 4 * 1
    assert {round(x, 12) for x in rows["lr"]} == {round(x, 12) for x in fine.lr_grid()}
    assert set(rows["seed"]) == {0}
    every = load_results(tmp_path)
    assert len(every) == len(coarse) + len(rows) - 3 * 2  # the grids share both end points (seed 0)
    _same_rows(fine.select(every), rows)
    assert fine.select(every.iloc[:0]).empty


def test_changed_training_setup_is_refused(tmp_path):
    run_sweep(tiny(), tmp_path, progress=False)
    with pytest.raises(ArchscaleError, match="steps: 4 -> 5"):
        run_sweep(tiny(steps=5), tmp_path, progress=False)
    with pytest.raises(StoreError, match="optimizer: 'sgd' -> 'adamw'"):
        run_sweep(tiny(optimizer="adamw"), tmp_path, progress=False)


def test_an_adam_spec_reads_strictly_and_round_trips(tmp_path):
    (tmp_path / "adam.yaml").write_text("arch: mlp\ngraphs: ['1', '2']\nlrs: [1e-3, 1e-2]\noptimizer: adamw\n"
                                        "betas: [0.8, 0.99]\neps: 1e-7\nweight_decay: 0.01\n")
    spec = load_spec(tmp_path / "adam.yaml")
    config = spec.train_config()
    settings = (config.optimizer, config.betas, config.eps, config.weight_decay)
    assert settings == ("adamw", (0.8, 0.99), 1e-7, 0.01)
    assert spec.identity()["betas"] == [0.8, 0.99] and spec.identity()["optimizer"] == "adamw"
    spec.to_yaml(tmp_path / "back.yaml")
    assert load_spec(tmp_path / "back.yaml").identity() == spec.identity()
    assert spec.replace(optimizer="adam", betas=None).train_config().adam_betas == (0.9, 0.999)
    with pytest.raises(ArchscaleError, match="betas and eps are Adam's"):
        spec.replace(optimizer="sgd")  # an override that leaves Adam's settings behind is refused too


@pytest.mark.determinism
def test_an_adamw_sweep_runs_resumes_and_refuses_other_optimizers(tmp_path):
    spec = tiny(optimizer="adamw", lr_min=1e-3, lr_max=1e-1, weight_decay=0.01)
    rows = run_sweep(spec, tmp_path, progress=False)
    assert len(rows) == 3 * 3 * 2 and set(rows["optimizer"]) == {"adamw"}
    assert len(max_lr(rows)) == 3
    _same_rows(run_sweep(spec, tmp_path, progress=False), rows)  # nothing left to train
    with pytest.raises(StoreError, match="optimizer: 'adamw' -> 'adam'"):
        run_sweep(spec.replace(optimizer="adam"), tmp_path, progress=False)
    with pytest.raises(StoreError, match=r"betas: None -> \[0.5, 0.9\]"):
        run_sweep(spec.replace(betas=[0.5, 0.9]), tmp_path, progress=False)


def test_a_store_written_before_adam_reads_as_sgd_and_refuses_adam(tmp_path):
    """Older stores have no optimizer column and no optimizer in spec.yaml: they trained with SGD."""
    spec = tiny(graphs=["1"], n_lrs=2, seeds=[0])
    rows = run_sweep(spec, tmp_path, progress=False)
    results, meta = tmp_path / RESULTS_FILE, tmp_path / "spec.yaml"
    header, *lines = results.read_bytes().splitlines(keepends=True)
    head = json.loads(header)
    head["columns"].remove("optimizer")
    older, chunk = [(json.dumps(head) + "\n").encode()], b""  # rows without the column, markers to match
    for line in lines:
        obj = json.loads(line)
        if "chunk" in obj:
            del obj["optimizer"]
            chunk += (json.dumps(obj) + "\n").encode()
        else:
            older += [chunk, (json.dumps({**obj, "sha256": chunk_checksum(chunk)}) + "\n").encode()]
            chunk = b""
    results.write_bytes(b"".join(older))
    assert b'"optimizer"' not in results.read_bytes()
    meta.write_text("\n".join(line for line in meta.read_text().splitlines()
                              if line.split(":")[0] not in ("optimizer", "betas", "eps", "- 0.9")) + "\n")
    old = load_results(tmp_path)
    assert len(old) == len(rows) and set(old["optimizer"]) == {"sgd"}
    assert "optimizer" not in ResultStore(tmp_path).read_meta()
    with pytest.raises(StoreError, match="optimizer: 'sgd' -> 'adam'"):
        run_sweep(spec.replace(optimizer="adam"), tmp_path, progress=False)
    _same_rows(run_sweep(spec, tmp_path, progress=False), rows)  # the same SGD spec resumes


def test_max_lr_refuses_to_pool_optimizers():
    lrs = [0.01, 0.1, 1.0]
    rows = pd.DataFrame(_rows("1", [[2.0, 1.0, 1.5]], lrs))
    mixed = pd.concat([rows.assign(optimizer="sgd"), rows.assign(optimizer="adam")], ignore_index=True)
    with pytest.raises(ArchscaleError, match=r"the results mix optimizers \(adam, sgd\)") as err:
        max_lr(mixed)
    assert "\n" not in str(err.value)
    with pytest.raises(ArchscaleError, match="mix optimizers"):
        compare(mixed)
    assert max_lr(mixed[mixed.optimizer == "adam"])["max_lr_grid"].tolist() == [0.1]


def test_a_failed_start_leaves_the_directory_as_it_was(tmp_path, monkeypatch):
    import archscale.runs.store

    out = tmp_path / "out"
    run_sweep(tiny(), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    more = tiny(seeds=[0, 1, 2])

    def no_data(self):
        raise DataError("cifar10 not found under /nowhere")

    monkeypatch.setattr(SweepSpec, "load_data", no_data)
    with pytest.raises(DataError):
        run_sweep(more, out, progress=False)
    with pytest.raises(DataError):
        run_sweep(more, tmp_path / "new" / "dir", progress=False)
    monkeypatch.undo()

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self.store.path))

    monkeypatch.setattr(archscale.runs.store.StoreWriter, "_open_results", refuse)
    with pytest.raises(StoreError, match="Permission denied"):
        run_sweep(more, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(StoreError, match="empty"):
        run_sweep(more, "", progress=False)


def test_lock_refuses_a_second_writer(tmp_path):
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ArchscaleError, match="another archscale process"):
            run_sweep(tiny(), tmp_path, progress=False)


def _quiet_load(out) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_results(out)


def _chunk_id_kept(text: bytes) -> bool:
    """Whether the torn last line still names its chunk (a row's or a marker's id, closing quote included)."""
    last = text.rsplit(b"\n", 1)[-1]
    return any(last.startswith(prefix) and len(last) >= len(prefix) + 17
               for prefix in (b'{"chunk": "', b'{"chunk_done": "'))


#: The optimizers the kill and resume tests run with (Adam's state is rebuilt from the chunk's start).
RESUME_OPTIMIZERS = [dict(), dict(optimizer="adamw", lr_min=1e-3, lr_max=1e-1, weight_decay=0.01)]


@pytest.mark.determinism
@pytest.mark.parametrize("optimizer", RESUME_OPTIMIZERS, ids=["sgd", "adamw"])
def test_any_cut_of_the_results_file_resumes_to_identical_rows(tmp_path, optimizer):
    """What a kill mid-write leaves: whole chunks count, the torn line is reported, appends stay clean."""
    spec = tiny(**optimizer)
    ref = run_sweep(spec, tmp_path / "ref", progress=False)
    raw = (tmp_path / "ref" / RESULTS_FILE).read_bytes()
    header_end = raw.index(b"\n") + 1
    rng = random.Random(0)
    cuts = sorted({rng.randrange(header_end, len(raw)) for _ in range(6)} | {len(raw) - 1, header_end + 5})
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / RESULTS_FILE).write_bytes(raw[:cut])
        partial = _quiet_load(d)
        complete = sum(b'"chunk_done"' in line for line in raw[:cut].split(b"\n")[:-1])
        assert len(partial) == 2 * complete  # chunk_size 2: only finished chunks count
        _same_rows(partial, _rows_of(ref, partial))
        torn = not raw[:cut].endswith(b"\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _same_rows(run_sweep(spec, d, progress=False), ref)
        assert not torn or "incomplete last line" in str(caught[0].message)
        after = (d / RESULTS_FILE).read_bytes()
        assert after.startswith(raw[:cut])  # nothing it held was rewritten or truncated
        scan = ResultStore(d).scan()
        assert len(scan.chunks) == 9
        # a torn line counts as recovered once its chunk is intact, if its chunk id survived the cut
        assert [d.line for d in scan.unrecovered()] == ([] if not torn or _chunk_id_kept(raw[:cut])
                                                        else [raw[:cut].count(b"\n") + 1])
        assert all(b"}{" not in line for line in after.splitlines())  # the append began a new line
        _same_rows(_quiet_load(d), ref)


def test_load_results_errors(tmp_path):
    with pytest.raises(ArchscaleError, match="does not exist"):
        load_results(tmp_path / "nope")
    assert load_results(tmp_path).empty


@pytest.mark.slow
@pytest.mark.determinism
@pytest.mark.parametrize("optimizer", [dict(lr_min=0.01, lr_max=3.0),
                                       dict(optimizer="adamw", lr_min=1e-4, lr_max=0.1, weight_decay=0.01)],
                         ids=["sgd", "adamw"])
def test_sigkill_at_random_moments_then_resume_gives_identical_rows(tmp_path, optimizer):
    # 24 chunks of 2 replicas, a few seconds in all (long enough to be killed in the middle)
    spec = SweepSpec(arch="mlp", graphs=["1", "2", "2_02", "2_12"], widths=[64], n_lrs=6, seeds=[0, 1],
                     steps=200, batch_size=32, n_train=400, n_test=100, chunk_size=2, **optimizer)
    spec_path = tmp_path / "spec.yaml"
    spec.to_yaml(spec_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "archscale.cli", "sweep", str(spec_path), "--no-progress", "--out"]
    subprocess.run(cmd + [str(tmp_path / "ref")], env=env, check=True, capture_output=True, cwd=ROOT)
    ref = load_results(tmp_path / "ref")
    assert len(ref) == 4 * 6 * 2

    out = tmp_path / "killed"
    results = out / RESULTS_FILE

    def markers() -> int:
        return results.read_bytes().count(b'"chunk_done"') if results.exists() else 0

    rng = random.Random(1234)
    kills, committed = 0, []
    for _ in range(4):
        proc = subprocess.Popen(cmd + [str(out)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=ROOT)
        # wait for a random number of further chunks, then kill at a random moment inside the next one
        target = markers() + rng.randint(1, 6)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and markers() < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        committed.append(len(_quiet_load(out)))
    # killed mid-sweep at least twice, each time keeping only whole chunks (2 rows each)
    assert kills >= 2 and 0 < committed[0] < len(ref), committed
    assert all(n % 2 == 0 for n in committed) and committed == sorted(committed)
    subprocess.run(cmd + [str(out)], env=env, check=True, capture_output=True, cwd=ROOT)
    _same_rows(_quiet_load(out), ref)
    scan = ResultStore(out).scan()
    assert len(scan.chunks) == 4 * 6 and not scan.unrecovered()  # 24 chunks, each verified
    done_ids = [json.loads(line)["chunk_done"] for line in results.read_bytes().splitlines()
                if line.startswith(b'{"chunk_done"') and line.endswith(b"}")]
    assert len(done_ids) == len(set(done_ids)) == 4 * 6  # a kill lands between chunks: none twice


# ---------------------------------------------------------------------------------------- max_lr
def _rows(graph, losses_by_seed, lrs, diverged=None, arch="mlp", kernel=0, width=64, act="relu"):
    rows = []
    for s, losses in enumerate(losses_by_seed):
        for i, (lr, loss) in enumerate(zip(lrs, losses)):
            div = bool(diverged is not None and diverged[s][i])
            rows.append({"graph": graph, "arch": arch, "width": width, "kernel_size": kernel, "act": act,
                         "lr": lr, "seed": s, "train_loss": np.nan if div else loss,
                         "train_loss_final": np.nan if div else loss, "test_loss": 1.0, "test_acc": 0.5,
                         "diverged": div, "steps": 10})
    return rows


def test_max_lr_picks_lowest_seed_average_and_skips_divergence():
    lrs = [0.01, 0.1, 1.0, 10.0]
    rows = _rows("1", [[2.0, 1.0, 0.5, 0.4], [2.0, 1.0, 0.6, 0.1]], lrs,
                 diverged=[[False] * 4, [False, False, False, True]])
    m = max_lr(pd.DataFrame(rows))
    assert len(m) == 1
    r = m.iloc[0]
    # lr 10 has a diverged seed: not eligible, and nothing brackets lr 1.0 from above
    assert r["max_lr"] == 1.0 and r["method"] == "argmin" and r["best_loss"] == pytest.approx(0.55)
    assert math.isnan(r["max_lr_lo"]) and math.isnan(r["max_lr_hi"])  # 2 seeds: no interval
    assert not r["at_edge"] and r["n_diverged"] == 1 and r["n_seeds"] == 2


def test_max_lr_flags_edges_and_all_diverged():
    lrs = [0.1, 1.0]
    rows = _rows("1", [[0.5, 0.9]], lrs) + _rows("2", [[1.0, 1.0]], lrs, diverged=[[True, True]])
    m = max_lr(pd.DataFrame(rows)).set_index("graph")
    assert m.loc["1", "at_edge"] and m.loc["1", "max_lr"] == 0.1
    assert math.isnan(m.loc["2", "max_lr"])
    with pytest.raises(ArchscaleError, match="metric"):
        max_lr(pd.DataFrame(rows), metric="accuracy")
    with pytest.raises(ArchscaleError, match="no results"):
        max_lr(pd.DataFrame(columns=COLUMNS))


def _synthetic(codes, base_lr=1.0, kernels=(0,), arch="mlp", jitter=None):
    """Rows whose loss is minimal exactly at base_lr * lr_scale(graph) (on a fine grid)."""
    grid = np.geomspace(1e-3, 10, 81)
    rows = []
    for code in codes:
        for k in kernels:
            dag = Dag.parse(code, ops=arch)
            target = base_lr * lr_scale(dag, arch, k if arch == "cnn" else None)
            if jitter:
                target *= jitter[code]
            losses = (np.log(grid) - np.log(target)) ** 2
            rows += _rows(code, [losses], list(grid), arch=arch, kernel=k)
    return pd.DataFrame(rows)


def test_compare_recovers_a_perfect_prediction():
    codes = ["1"] + [Dag.chain(n).code for n in range(1, 6)] + ["2_12", "2_22_222"]
    comp = compare(_synthetic(codes, base_lr=0.5))
    assert comp.n == len(codes) - 1 and comp.base == "1" and comp.offset == 3  # the base is left out
    assert comp.pearson_r_with_base > 0.99 and comp.pearson_r_log > 0.99
    a = comp.agreement.estimate
    assert a["error_factor"] == pytest.approx(1.0, abs=0.05) and a["bias"] == pytest.approx(1.0, abs=0.05)
    assert a["slope"] == pytest.approx(1.0, abs=0.05) and a["spearman"] > 0.99
    t = comp.table.set_index("graph")
    assert t.loc["2_02", "predicted"] == pytest.approx(t.loc["1", "measured"] * (27 / 125) ** 0.5)
    assert "pearson_log" in comp.format() and json.dumps(comp.to_dict())
    assert comp.table["is_base"].sum() == 1


def test_compare_cnn_uses_kernel_three_base():
    codes = ["1", "2", "2_02", "2_12"]
    comp = compare(_synthetic(codes, kernels=(3, 5, 7), arch="cnn"))
    assert comp.n == 11 and comp.pearson_r_log > 0.99  # 12 configurations, the kernel-3 base left out
    t = comp.table
    row = t[(t.graph == "2") & (t.kernel_size == 7)].iloc[0]
    assert row["scale"] == pytest.approx((27 / 64) ** 0.5 * 3 / 7)


def test_compare_reports_disagreement_and_needs_the_base():
    codes = ["1", "2", "2_02", "2_02_002"]
    jitter = {"1": 1.0, "2": 2.5, "2_02": 0.3, "2_02_002": 3.0}
    comp = compare(_synthetic(codes, jitter=jitter))
    assert comp.pearson_r_log < 0.9
    without = _synthetic(["2", "2_02"])
    with pytest.raises(ArchscaleError, match="base graph '1'"):
        compare(without)
    assert compare(_synthetic(codes)).n == 3
    assert compare(_synthetic(codes), offset=2).offset == 2


# ---------------------------------------------------------------------------------------- presets
SPECS = sorted(PRESETS.glob("*.yaml"))


def test_every_experiment_has_smoke_quick_and_full_specs():
    names = {p.stem for p in SPECS}
    assert set(presets()) == names
    for experiment in ("mlp_depth", "mlp_topology", "cnn_kernel_topology", "gelu", "gelu_cnn"):
        for preset in ("smoke", "quick", "full"):
            assert f"{experiment}_{preset}" in names


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_bundled_specs_load(path):
    spec = load_spec(path.stem)  # by name, through importlib.resources
    assert spec == load_spec(path) and spec.name == path.stem
    assert spec.base in spec.graph_list() and len(spec.lr_grid()) >= 2
    if spec.arch == "cnn":  # kernels of 3, 5, 7 need images larger than 8x8 (zero padding)
        assert spec.dataset == "mnist" and len(spec.kernel_sizes) >= 3 and len(spec.seeds) >= 2
    elif path.stem.endswith("_full"):
        assert spec.dataset in ("cifar10", "cifar100")
    else:
        assert spec.dataset == "digits"


def test_unknown_preset_lists_the_bundled_ones():
    with pytest.raises(SpecError, match="mlp_depth_quick"):
        load_spec("mlp_depth_quik")


@pytest.mark.parametrize("experiment",
                         ["mlp_depth", "mlp_topology", "cnn_kernel_topology", "gelu", "gelu_cnn"])
def test_smoke_specs_run(tmp_path, experiment):
    df = run_sweep(load_spec(f"{experiment}_smoke"), tmp_path, progress=False)
    assert len(df) > 0
    assert compare(df, edges=True).n >= 2


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_bundled_specs_name_their_recipe(path):
    """Layout, init and readout are written out in every preset: the recipe is never a silent default."""
    text = path.read_text()
    for key in ("layout", "init", "readout"):
        assert re.search(rf"^{key}: ", text, re.M), f"{path.name} does not set {key}"


CNN_TINY = """\
arch: cnn
graphs: ['1', '2_02', '2_12']
widths: [4]
kernel_sizes: [3]
lr_min: 0.05
lr_max: 0.5
n_lrs: 3
seeds: [0, 1]
steps: 2
batch_size: 16
dataset: digits
n_train: 64
n_test: 32
"""


@pytest.mark.parametrize("text", [TINY_SPEC, CNN_TINY], ids=["mlp", "cnn"])
@pytest.mark.determinism
def test_worker_processes_store_the_same_rows_as_one_process(tmp_path, text):
    """workers=2 trains chunks in two spawned CPU processes: the same rows, each chunk stored once."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    local = run_sweep(spec, tmp_path / "local", threads=1, progress=False, chunk_size=2)
    both = run_sweep(spec, tmp_path / "workers", progress=False, chunk_size=2, workers=2)
    key = ["graph", "width", "kernel_size", "lr", "seed"]
    cols = [c for c in local.columns if c != "seconds"]
    pd.testing.assert_frame_equal(both[cols].sort_values(key).reset_index(drop=True),
                                  local[cols].sort_values(key).reset_index(drop=True), check_exact=True)
    assert ResultStore(tmp_path / "workers").scan().damaged == []
    with pytest.raises(ArchscaleError, match="one of them"):
        run_sweep(spec, tmp_path / "x", workers=2, ray=True)


def test_default_workers_is_one_per_core_on_the_cpu_only():
    from archscale.runs.executor import default_workers

    assert default_workers("cpu") == (os.cpu_count() or 1) == default_workers(None)
    assert default_workers("cuda") is None
