"""Sweeps on Ray: the same rows as a local run, a worker killed mid-task, a driver killed with SIGKILL.

A Ray cluster (2 CPUs, 127.0.0.1 only, no dashboard, no usage stats, its own temp directory) is
started once per test process by a holder subprocess and stopped when the module ends; the
drivers are ``archscale sweep --ray ADDRESS`` subprocesses, except where a test needs the
Python API. Local reference runs use one torch thread, as each Ray task does.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from sweep_specs import TINY_SPEC

from archscale.core.errors import ArchscaleError
from archscale.runs.ray import _check_reachable
from archscale.runs.store import RESULTS_FILE, ResultStore
from archscale.sweep import LocalExecutor, RayExecutor, load_results, load_spec, run_chunks, run_sweep
from archscale.sweep.run import describe_chunk, open_store, plan_chunks, train_chunk

ROOT = Path(__file__).resolve().parents[2]
# Ray resolves 127.0.0.1 to the machine's address unless it runs as a single-machine install;
# this keeps both the cluster and its drivers on the loopback interface.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_DISABLE_USAGE_STATS": "1"}
os.environ.update(RAY_ENV)  # for the in-process driver below, before ray is imported
pytest.importorskip("ray")

# The tiny spec, but each chunk trains for about a second, so a kill lands while tasks run.
SLOW_SPEC = (TINY_SPEC.replace("widths: [8]", "widths: [128]").replace("steps: 3", "steps: 2000")
             .replace("n_train: 128", "n_train: 512") + "chunk_size: 1\n")
assert SLOW_SPEC.count("128") == 1 and "steps: 2000" in SLOW_SPEC and "n_train: 512" in SLOW_SPEC

HOLDER = """\
import json, sys, warnings
import ray
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ray.init(address="local", _temp_dir=sys.argv[1], num_cpus=2, include_dashboard=False,
             _node_ip_address="127.0.0.1", configure_logging=False, log_to_driver=False,
             object_store_memory=100 * 2**20)
node = ray._private.worker._global_node
raylet = node.all_processes["raylet"][0].process.pid
print(json.dumps({"address": node.address, "raylet": raylet}), flush=True)
sys.stdin.read()
ray.shutdown()
"""


def _env() -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **RAY_ENV, "PYTHONPATH": path}


def _children(pid: int) -> dict[int, bytes]:
    """Live child processes of ``pid`` and their command lines (Ray workers show ``ray::<task>``)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.fixture(scope="module")
def cluster():
    """``{"address", "raylet"}`` of a 2-CPU Ray cluster on 127.0.0.1; none of its processes outlive it."""
    temp = tempfile.mkdtemp(prefix="ar", dir="/tmp")  # short: Ray's socket paths stay under 108 bytes
    log_path = Path(temp) / "holder.log"
    info, ours = None, set()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, temp], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, env=_env(), text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            pytest.fail(f"the Ray test cluster did not start: {log_path.read_text()[-2000:]}")
        info = json.loads(line)
        yield info
    finally:
        if info is not None:
            ours = {info["raylet"], *_children(info["raylet"])}
        proc.stdin.close()  # the holder shuts Ray down
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
    deadline = time.time() + 30
    while time.time() < deadline and (ours := {p for p in ours if Path(f"/proc/{p}").exists()}):
        time.sleep(0.2)
    assert not ours, f"Ray processes left after the cluster stopped: {sorted(ours)}"


def _spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _sweep_cmd(spec: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "archscale", "sweep", str(spec), "--out", str(out), "--no-progress",
            f"--ray={address}"]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["graph", "width", "lr", "seed"]).reset_index(drop=True)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b), check_exact=True)


@pytest.fixture(scope="module")
def slow_local(tmp_path_factory) -> pd.DataFrame:
    """The slow spec trained locally, one torch thread: the rows every Ray run must reproduce."""
    path = _spec_file(tmp_path_factory.mktemp("slow"), SLOW_SPEC)
    return run_sweep(load_spec(path), path.parent / "local", threads=1, progress=False)


def _markers(out: Path) -> list[str]:
    lines = (out / RESULTS_FILE).read_bytes().splitlines()[1:]
    return [json.loads(x)["chunk_done"] for x in lines if x.startswith(b'{"chunk_done"')]


# ---------------------------------------------------------------------------------------- equal rows
@pytest.mark.determinism
def test_ray_rows_equal_local_rows(tmp_path):
    """``--ray`` alone: the driver starts (and stops) its own local Ray instance."""
    spec_path = _spec_file(tmp_path, TINY_SPEC)
    local = run_sweep(load_spec(spec_path), tmp_path / "local", threads=1, progress=False, chunk_size=1)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "archscale", "sweep", str(spec_path), "--out", str(out), "--chunk-size", "1",
           "--ray"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    summary = [line for line in run.stderr.splitlines() if "chunks per worker" in line]
    assert len(summary) == 1 and "9 of 9 chunks stored (27 replica-steps)" in summary[0], run.stderr
    _same_rows(load_results(out), local)
    assert sorted(_markers(out)) == sorted(_markers(tmp_path / "local"))  # the same chunks, each once
    assert (out / "spec.yaml").read_text() == (tmp_path / "local" / "spec.yaml").read_text()
    assert ResultStore(out).scan().damaged == []


# ---------------------------------------------------------------------------------------- faults
def test_worker_killed_mid_task_still_gives_every_row(cluster, slow_local, tmp_path):
    spec_path = _spec_file(tmp_path, SLOW_SPEC)
    out = tmp_path / "ray"
    driver = subprocess.Popen(_sweep_cmd(spec_path, out, cluster["address"]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=_env(), text=True)
    killed, seen = None, set()
    deadline = time.time() + 300
    while killed is None and driver.poll() is None and time.time() < deadline:
        busy = {pid for pid, cmd in _children(cluster["raylet"]).items() if cmd.startswith(b"ray::_task")}
        mid_task = busy & seen  # training in two polls in a row: inside a chunk, not between two
        if mid_task:
            killed = min(mid_task)
            os.kill(killed, signal.SIGKILL)
        seen = busy
        time.sleep(0.05)
    stdout, stderr = driver.communicate(timeout=600)
    assert killed is not None, f"no Ray worker was seen training; driver said: {stderr[-2000:]}"
    assert driver.returncode == 0, stderr
    _same_rows(load_results(out), slow_local)
    assert sorted(_markers(out)) == sorted(set(_markers(out)))  # no chunk stored twice


def test_driver_killed_with_sigkill_resumes_without_loss_or_duplicates(cluster, slow_local, tmp_path):
    spec_path = _spec_file(tmp_path, SLOW_SPEC)
    out = tmp_path / "ray"
    driver = subprocess.Popen(_sweep_cmd(spec_path, out, cluster["address"]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        if (out / RESULTS_FILE).exists() and _markers(out):
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the sweep ended before the driver could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    first = set(_markers(out))
    assert 0 < len(first) < len(slow_local)
    run = subprocess.run(_sweep_cmd(spec_path, out, cluster["address"]), capture_output=True, text=True,
                         env=_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    _same_rows(load_results(out), slow_local)
    markers = _markers(out)
    assert len(markers) == len(set(markers)) == len(slow_local)  # every chunk once; done ones were skipped
    assert first <= set(markers)


# ---------------------------------------------------------------------------------------- a failing chunk
def _train_or_fail(chunk, shared, device, on_step):
    """A train function whose chunk of graph '2' fails for a reason of its own."""
    spec, data = shared
    if chunk.model.graph == "2":
        raise ArchscaleError(f"chunk of graph 2 refuses to train ({len(chunk.replicas)} replicas)")
    return train_chunk(spec, chunk, data, device, on_step)


@pytest.mark.parametrize("where", ["local", "ray"])
def test_failing_chunk_is_named_and_the_others_are_stored(where, request, tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY_SPEC))
    data = spec.load_data()
    plan = plan_chunks(spec, data, "cpu", chunk_size=1)
    if where == "ray":
        import ray.cloudpickle

        address = request.getfixturevalue("cluster")["address"]
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this file
        executor = RayExecutor(address)
    else:
        executor = LocalExecutor(threads=1)
    store = open_store(tmp_path / "out")
    with warnings.catch_warnings(record=True) as caught, store.open() as writer, executor:
        warnings.simplefilter("always")
        with pytest.raises(ArchscaleError, match="graph 2 refuses"):
            run_chunks(plan, _train_or_fail, (spec, data), writer, executor, work=lambda c: 1,
                       describe=describe_chunk, desc="test", progress=False)
    failed = {c.id for c in plan if c.model.graph == "2"}
    named = [str(w.message) for w in caught if "failed" in str(w.message)]
    assert len(named) == len(failed) == 3
    assert all(any(cid in text and "graph 2 w8" in text for text in named) for cid in failed)
    rows = load_results(tmp_path / "out")
    assert sorted(set(rows["graph"])) == ["1", "2_02"] and len(rows) == 6


# ---------------------------------------------------------------------------------------- no cluster needed
def test_ray_executor_needs_ray_and_refuses_cuda_without_gpus(monkeypatch):
    ex = RayExecutor(device="cuda")
    with pytest.raises(ArchscaleError, match="no GPUs"):
        ex._choose_device({"CPU": 2.0})
    ex = RayExecutor()
    ex._choose_device({"CPU": 4.0, "GPU": 2.0})
    assert ex.device == "cuda" and ex._options() == {"num_cpus": 1, "num_gpus": 1.0}
    ex = RayExecutor(device="cpu", threads=2)
    ex._choose_device({"CPU": 4.0, "GPU": 2.0})
    assert ex.device == "cpu" and ex._options() == {"num_cpus": 2, "num_gpus": 0.0}
    with pytest.raises(ArchscaleError, match="lower --threads"):
        RayExecutor(threads=8)._choose_device({"CPU": 2.0})
    with pytest.raises(ArchscaleError, match="address"):
        RayExecutor("  ")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    with pytest.raises(ArchscaleError, match="cannot reach a Ray cluster"):
        _check_reachable(f"0.0.0.0:{port}")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ArchscaleError, match=r"archscale\[ray\]"):
        RayExecutor().__enter__()


def test_cli_ray_flag_takes_an_optional_address():
    from archscale.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["sweep", "s.yaml", "--out", "d"]).ray is None
    assert parse(["sweep", "s.yaml", "--out", "d", "--ray"]).ray == ""
    assert parse(["sweep", "s.yaml", "--out", "d", "--ray", "10.0.0.1:6379"]).ray == "10.0.0.1:6379"
    assert parse(["sweep", "--ray=auto", "s.yaml", "--out", "d"]).ray == "auto"
