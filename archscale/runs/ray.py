"""Chunks as Ray tasks: the executor behind ``archscale sweep --ray [ADDRESS]``.

:class:`RayExecutor` joins the Ray cluster at ``address`` (or starts a local Ray instance on
127.0.0.1), puts what every chunk needs (the spec and the data) in the object store once, and
submits one task per chunk: ``threads`` CPUs each, and a GPU each when the cluster has GPUs.
Each worker process fetches the shared object once and trains its chunks with the same
function a local run uses; the driver (:func:`~archscale.runs.executor.run_chunks`) alone
writes the rows, as tasks finish. A task whose worker dies is retried (``max_retries``, Ray's
own mechanism); one that raises an error of its own is not retried but handed back by name.

Ray is an optional dependency (``pip install 'archscale[ray]'``) and is imported only here,
when an executor starts. Every node of a cluster needs archscale (the same version) installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..core import validate
from ..core.errors import ArchscaleError
from .executor import Finished, OnStep, TrainFn

__all__ = ["RayExecutor"]

_SHARED: dict[str, Any] = {}  # per worker process: the shared object of the last ObjectRef seen


def _import_ray():
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    try:
        import ray
    except ImportError:
        raise ArchscaleError("--ray needs the Ray extra: pip install 'archscale[ray]'") from None
    return ray


def _shared(box: list) -> Any:
    """The object behind ``box[0]`` (an ObjectRef), fetched once per worker process."""
    import ray

    key = box[0].hex()
    if key not in _SHARED:
        _SHARED.clear()  # one study at a time: drop the previous one's data
        _SHARED[key] = ray.get(box[0])
    return _SHARED[key]


def _worker_name() -> str:
    import ray

    return f"{ray.util.get_node_ip_address()} pid {os.getpid()}"


def _task(train: TrainFn, chunk: Any, box: list, device: str, threads: int) -> tuple[list[dict], str, float]:
    """One Ray task: train ``chunk`` with the shared object; return its rows, the worker and the time."""
    import torch

    shared = _shared(box)
    if device == "cpu":
        torch.set_num_threads(threads)
    start = time.perf_counter()
    rows = train(chunk, shared, device, None)
    return rows, _worker_name(), time.perf_counter() - start


def _call(fn: Callable[..., Any], box: list, *args: Any) -> Any:
    return fn(_shared(box), *args)


# Kills what is left of a local Ray instance when its driver dies without shutting it down (a
# SIGKILL): Ray 2.53 stops its GCS, raylet and workers then, but its two agents hang. Processes are
# named "pid:starttime", so a pid reused meanwhile is never touched.
_REAPER = """\
import os, signal, sys, time
def alive(p):
    pid, start = p.split(":")
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19] == start
    except (OSError, IndexError):
        return False
if sys.stdin.read() != "done":
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in sys.argv[1:]):
        time.sleep(0.5)
    for p in sys.argv[1:]:
        if alive(p):
            os.kill(int(p.split(":")[0]), signal.SIGKILL)
"""


def _ray_descendants() -> list[str]:
    """``pid:starttime`` of this process's descendants that run Ray (Linux; elsewhere none)."""
    parent, info = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parent[pid], info[pid] = int(fields[1]), (fields[19], b"ray" in cmd)
    out, todo = [], [os.getpid()]
    while todo:
        me = todo.pop()
        for pid, ppid in parent.items():
            if ppid == me:
                todo.append(pid)
                if info[pid][1]:
                    out.append(f"{pid}:{info[pid][0]}")
    return out


def _check_reachable(address: str) -> None:
    """Refuse at once a ``host:port`` nothing listens on (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit() or host in ("127.0.0.1", "localhost", "::1"):
        return  # "auto", ray://..., or loopback (which Ray rewrites to this machine's address)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ArchscaleError(f"cannot reach a Ray cluster at {address} ({why}); start one with "
                             f"'ray start --head --port={port}' on its head node, or check the "
                             f"address") from None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class RayExecutor:
    """Trains chunks as Ray tasks on the cluster at ``address`` (None: a local instance on 127.0.0.1).

    ``threads`` is the CPUs (and torch threads) each CPU task takes (default 1); ``num_cpus`` the
    CPUs a local instance offers (default: this process's usable cores). ``device`` None trains
    on GPUs when the cluster has any (``gpus_per_task`` each, default 1) and on CPUs otherwise;
    ``"cpu"`` or ``"cuda"`` insists. ``max_retries`` is how often a task whose worker died is
    run again. When Ray is already initialized in this process, that connection is used (and
    left open).
    """

    def __init__(self, address: str | None = None, *, device: str | None = None, threads: int | None = None,
                 num_cpus: int | None = None, gpus_per_task: float | None = None, max_retries: int = 3):
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ArchscaleError(f"the Ray address must be text such as 'auto' or '10.0.0.1:6379', "
                                 f"got {address!r}")
        self.address = address.strip() if address is not None else None
        self.requested = validate.choice(device, "device", ("cpu", "cuda")) if device is not None else None
        self.threads = validate.positive_int(threads, "threads") if threads is not None else 1
        self.num_cpus = validate.positive_int(num_cpus, "num_cpus") if num_cpus is not None else None
        self.gpus_per_task = (validate.number(gpus_per_task, "gpus_per_task", positive=True, example="1")
                              if gpus_per_task is not None else None)
        self.max_retries = validate.integer(max_retries, "max_retries", minimum=0)
        self.device = "cpu"
        self._gpus = 0.0
        self._ray: Any = None  # the ray module while started
        self._owned = False
        self._boxes: dict[int, tuple[Any, list]] = {}
        self._pending: dict = {}
        self._reaper: subprocess.Popen | None = None

    # ------------------------------------------------------------------------------ lifetime
    def __enter__(self) -> RayExecutor:
        ray = _import_ray()
        if not ray.is_initialized():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # Ray's notice about accelerator env vars
                if self.address is None:
                    ray.init(address="local", num_cpus=self.num_cpus or _usable_cpus(),
                             include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False,
                             log_to_driver=False)
                    self._reaper = subprocess.Popen([sys.executable, "-c", _REAPER, *_ray_descendants()],
                                                    stdin=subprocess.PIPE, start_new_session=True)
                else:
                    _check_reachable(self.address)
                    try:
                        ray.init(address=self.address, configure_logging=False, log_to_driver=False)
                    except (ConnectionError, TimeoutError) as err:
                        raise ArchscaleError(f"cannot connect to the Ray cluster at {self.address} "
                                             f"({type(err).__name__}); is it running ('ray status' on its "
                                             f"head node)?") from None
            self._owned = True
        self._ray = ray
        try:
            self._choose_device(ray.cluster_resources())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _choose_device(self, resources: dict) -> None:
        gpus = float(resources.get("GPU", 0))
        if self.requested == "cuda" and gpus <= 0:
            raise ArchscaleError("device 'cuda' asked for, but the Ray cluster has no GPUs; leave --device "
                                 "out to train on the cluster's CPUs")
        use_gpu = self.requested == "cuda" or (self.requested is None and gpus > 0)
        self._gpus = (self.gpus_per_task or 1.0) if use_gpu else 0.0
        self.device = "cuda" if use_gpu else "cpu"
        if float(resources.get("CPU", 0)) < self.threads:
            raise ArchscaleError(f"each task asks for {self.threads} CPUs but the Ray cluster has "
                                 f"{resources.get('CPU', 0):g}; lower --threads")

    def __exit__(self, *exc) -> None:
        ray, self._ray = self._ray, None
        if ray is None:
            return
        for ref in self._pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # best effort: the driver is leaving anyway
                pass
        self._pending.clear()
        self._boxes.clear()
        if self._owned:
            self._owned = False
            ray.shutdown()
        reaper, self._reaper = self._reaper, None
        if reaper is not None:  # Ray is down: nothing to reap
            reaper.communicate(b"done", timeout=30)

    # ------------------------------------------------------------------------------ work
    def _box(self, shared: Any) -> list:
        """``[ObjectRef]`` of ``shared``, put in the object store once (kept while the executor is open)."""
        if self._ray is None:
            raise ArchscaleError("this RayExecutor is not started; use it in a 'with' block")
        key = id(shared)
        if key not in self._boxes:
            self._boxes[key] = (shared, [self._ray.put(shared)])  # holding shared keeps its id unique
        return self._boxes[key][1]

    def _options(self) -> dict:
        return {"num_cpus": self.threads, "num_gpus": self._gpus}

    def call(self, fn: Callable[..., Any], shared: Any, *args: Any) -> Any:
        """``fn(shared, *args)`` where chunks train: on the driver for CPU tasks, else on a GPU worker."""
        if not self._gpus:
            return fn(shared, *args)
        remote = self._ray.remote(_call).options(**self._options(), max_retries=self.max_retries)
        return self._ray.get(remote.remote(fn, self._box(shared), *args))

    def map(self, train: TrainFn, chunks: Sequence, shared: Any, on_step: OnStep = None,
            on_start: Callable[[Any], object] | None = None) -> Iterator[Finished]:
        """Submit every chunk as a task; yield each as it finishes (any order), errors as such."""
        ray = self._ray
        box = self._box(shared)
        remote = ray.remote(_task).options(**self._options(), max_retries=self.max_retries,
                                           retry_exceptions=False)
        submitted = time.perf_counter()
        self._pending = {remote.remote(train, c, box, self.device, self.threads): c for c in chunks}
        while self._pending:
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                chunk = self._pending.pop(ref)
                try:
                    rows, worker, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # the chunk's own exception, raised remotely
                    cause = err.cause if isinstance(err.cause, Exception) else err
                    yield Finished(chunk, None, "", time.perf_counter() - submitted, cause)
                except ray.exceptions.RayError as err:  # the worker died more often than max_retries, ...
                    yield Finished(chunk, None, "", time.perf_counter() - submitted, err)
                else:
                    yield Finished(chunk, rows, worker, seconds)
