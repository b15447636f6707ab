"""Where chunks train, and the one driver loop that stores what they return.

A study (a sweep, the NAS study) plans its chunks on the driver, each with an ``id``; an
executor trains them and hands back :class:`Finished` records in completion order;
:func:`run_chunks` (the driver) appends each finished chunk's rows to the
:class:`~archscale.runs.store.StoreWriter` at once, so a killed run loses at most the chunks in
flight, keeps one progress bar, names chunks that failed without losing the others, and ends
with a one-line summary. :class:`LocalExecutor` trains in this process, one chunk after another;
:class:`ProcessExecutor` in worker processes of this machine;
:class:`~archscale.runs.ray.RayExecutor` trains chunks as Ray tasks.

A train function has the signature ``train(chunk, shared, device, on_step) -> rows``: ``shared``
is what every chunk needs (the spec and the data), sent to each Ray worker once; ``on_step(n)``
reports ``n`` units of work done (``None`` where progress cannot stream back). On Ray it must be
a module-level function of an installed package (it is pickled by reference).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core import validate
from ..core.errors import ArchscaleError

__all__ = ["Executor", "Finished", "LocalExecutor", "OnStep", "ProcessExecutor", "RunReport", "TrainFn",
           "default_workers", "executor_for", "run_chunks"]

#: ``on_step(n)``: ``n`` more units of work done (None: nobody listens).
OnStep = Callable[[int], object] | None
#: ``train(chunk, shared, device, on_step) -> rows``: trains one chunk wherever an executor runs it.
TrainFn = Callable[[Any, Any, str, OnStep], list[dict]]


@dataclass(frozen=True)
class Finished:
    """One chunk back from an executor: its rows, or the error it raised, and who trained it."""

    chunk: Any
    rows: list[dict] | None
    worker: str
    seconds: float
    error: BaseException | None = None


class Executor(Protocol):
    """What :func:`run_chunks` needs of an executor (a context manager that trains chunks)."""

    device: str

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...

    def call(self, fn: Callable[..., Any], shared: Any, *args: Any) -> Any: ...

    def map(self, train: TrainFn, chunks: Sequence, shared: Any, on_step: Callable[[int], object],
            on_start: Callable[[Any], object]) -> Iterator[Finished]: ...


class LocalExecutor:
    """Trains chunks in this process, one after another, on ``device`` with ``threads`` torch threads.

    ``threads`` (default: torch's own) holds only inside the ``with`` block; 1 suits a CPU shared
    with other busy processes.
    """

    def __init__(self, device: str | None = None, threads: int | None = None):
        from ..train import resolve_device

        if threads is not None:
            validate.positive_int(threads, "threads")
        self.device = str(resolve_device(device or "cpu"))
        self.threads = threads
        self._previous: int | None = None

    def __enter__(self) -> LocalExecutor:
        import torch

        self._previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None

    def call(self, fn: Callable[..., Any], shared: Any, *args: Any) -> Any:
        """``fn(shared, *args)`` where chunks train: here."""
        return fn(shared, *args)

    def map(self, train: TrainFn, chunks: Sequence, shared: Any, on_step: OnStep = None,
            on_start: Callable[[Any], object] | None = None) -> Iterator[Finished]:
        """Train ``chunks`` in order; an exception of a chunk's own is handed back, not raised."""
        for chunk in chunks:
            if on_start is not None:
                on_start(chunk)
            start = time.perf_counter()
            try:
                rows = train(chunk, shared, self.device, on_step)
            except Exception as err:  # a chunk's own failure: reported by the driver, the others go on
                yield Finished(chunk, None, "local", time.perf_counter() - start, err)
            else:
                yield Finished(chunk, rows, "local", time.perf_counter() - start)


def executor_for(device: str | None = None, threads: int | None = None,
                 workers: int | None = None) -> LocalExecutor | ProcessExecutor:
    """This process (``workers`` None or 1, ``threads`` torch threads) or ``workers`` CPU worker
    processes (``threads`` each, default 1)."""
    workers = 1 if workers is None else validate.positive_int(workers, "workers")
    return LocalExecutor(device, threads) if workers == 1 else ProcessExecutor(workers, device, threads or 1)


def default_workers(device: str | None) -> int | None:
    """One worker process per core on the CPU (for the notebooks' sweeps); None (one process) elsewhere."""
    import os

    return (os.cpu_count() or 1) if (device or "cpu") == "cpu" else None


#: What a worker process of :class:`ProcessExecutor` was started with (set in the worker only).
_WORKER_SHARED: Any = None


def _start_worker(threads: int, shared: Any) -> None:
    """A :class:`ProcessExecutor` worker's start: its torch threads and the shared payload, once."""
    import torch

    global _WORKER_SHARED
    torch.set_num_threads(threads)
    _WORKER_SHARED = shared


def _train_in_worker(train: TrainFn, chunk: Any, device: str) -> tuple[list[dict], str, float]:
    import os

    start = time.perf_counter()
    rows = train(chunk, _WORKER_SHARED, device, None)
    return rows, f"pid {os.getpid()}", time.perf_counter() - start


class ProcessExecutor:
    """Trains chunks in ``workers`` processes of this machine, ``threads`` torch threads each.

    For jobs of many small single-threaded runs (the NAS study's cells) that leave cores idle:
    the rows are the same as :class:`LocalExecutor`'s with ``threads`` threads, since each chunk
    runs the same code with its own seeds. Workers are spawned (not forked) and get ``shared``
    once at start; ``train`` must be a module-level function of an installed package. Progress
    arrives per finished chunk.
    """

    def __init__(self, workers: int, device: str | None = None, threads: int = 1):
        from ..train import resolve_device

        self.workers = validate.positive_int(workers, "workers")
        self.threads = validate.positive_int(threads, "threads")
        self.device = str(resolve_device(device or "cpu"))
        if self.device != "cpu":
            raise ArchscaleError(f"workers={workers} trains chunks in parallel CPU processes; on "
                                 f"{self.device} leave workers unset (one process)")

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def call(self, fn: Callable[..., Any], shared: Any, *args: Any) -> Any:
        """``fn(shared, *args)``; here, as the workers would compute it."""
        return fn(shared, *args)

    def map(self, train: TrainFn, chunks: Sequence, shared: Any, on_step: OnStep = None,
            on_start: Callable[[Any], object] | None = None) -> Iterator[Finished]:
        """Train ``chunks`` across the workers; finished chunks come back in completion order."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        if not chunks:
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(self.workers, len(chunks)), mp_context=context,
                                 initializer=_start_worker, initargs=(self.threads, shared)) as pool:
            pending = {}
            for chunk in chunks:
                if on_start is not None:
                    on_start(chunk)
                future = pool.submit(_train_in_worker, train, chunk, self.device)
                pending[future] = (chunk, time.perf_counter())
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk, submitted = pending.pop(future)
                    err = future.exception()
                    if isinstance(err, BrokenProcessPool):  # no worker can go on: stop, say why
                        raise ArchscaleError(
                            "a worker process died before its chunk finished (out of memory, killed, or "
                            "a script without `if __name__ == '__main__':` that each spawned worker "
                            "re-runs); the chunks already stored are kept, a rerun trains the rest; "
                            "workers=1 trains in this process") from err
                    if err is None:
                        rows, worker, seconds = future.result()
                        yield Finished(chunk, rows, worker, seconds)
                    else:  # the chunk's own failure: reported, the others go on
                        yield Finished(chunk, None, "process", time.perf_counter() - submitted, err)


@dataclass
class RunReport:
    """What one :func:`run_chunks` call did: chunks stored and failed, work and busy time per worker."""

    planned: int
    unit: str = "replica-steps"
    stored: int = 0
    work: int = 0
    wall_s: float = 0.0
    failed: list[Finished] = field(default_factory=list)
    workers: dict[str, list] = field(default_factory=dict)  # worker -> [chunks, work, busy seconds]

    def add(self, done: Finished, work: int) -> None:
        if done.error is not None:
            self.failed.append(done)
            return
        stats = self.workers.setdefault(done.worker, [0, 0, 0.0])
        stats[0] += 1
        stats[1] += work
        stats[2] += done.seconds
        self.stored += 1
        self.work += work

    def _names(self) -> dict[str, str]:
        if list(self.workers) == ["local"]:
            return {"local": "local"}
        return {w: f"w{i}" for i, w in enumerate(self.workers, start=1)}

    def postfix(self) -> str:
        """Chunks done and each worker's throughput (work per second of its own training time)."""
        from tqdm import tqdm

        names = self._names()
        rates = " ".join(f"{names[w]} {tqdm.format_sizeof(work / busy if busy > 0 else 0.0)}/s"
                         for w, (_, work, busy) in self.workers.items())
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return f"{self.stored + len(self.failed)}/{self.planned} chunks{failed}; {rates}"

    def summary(self, desc: str, timed: bool = True) -> str:
        """One line: chunks stored (and failed) and, if ``timed``, in how long and how many chunks each
        worker trained (both change from run to run)."""
        names = self._names()
        per = ", ".join(f"{names[w]}" + ("" if names[w] == w else f" ({w})") + f" {n}"
                        for w, (n, _, _) in self.workers.items())
        failed = f", {len(self.failed)} failed" if self.failed else ""
        line = f"{desc}: {self.stored} of {self.planned} chunks stored{failed} ({self.work} {self.unit})"
        return f"{line} in {self.wall_s:.1f} s; chunks per worker: {per or 'none'}" if timed else line


def run_chunks(chunks: Sequence, train: TrainFn, shared: Any, writer, executor: Executor, *,
               work: Callable[[Any], int], describe: Callable[[Any], str], desc: str,
               unit: str = "replica-steps", progress: bool = True) -> RunReport:
    """Train ``chunks`` on ``executor`` (entered) and append each one's rows to ``writer`` as it finishes.

    ``work(chunk)`` counts a chunk's units for the bar (and ``on_step``); ``describe(chunk)`` names
    it in messages. A chunk that raises is reported in a warning naming it, the others are still
    trained and stored, and the first such error is raised at the end (after the summary line,
    which goes to stderr when ``progress`` is on). Store errors stop the run at once.
    """
    from tqdm.auto import tqdm

    report = RunReport(planned=len(chunks), unit=unit)
    total = sum(work(c) for c in chunks)
    # a headless bar (an executed notebook) prints its one line at the end; the summary below is that line
    headless = getattr(tqdm, "headless", False)
    bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, disable=not progress or total == 0,
               dynamic_ncols=True, leave=not headless)
    streamed = 0

    def on_step(n: int) -> None:
        nonlocal streamed
        streamed += n
        bar.update(n)

    def on_start(chunk: Any) -> None:
        bar.set_postfix_str(f"{describe(chunk)}; {report.postfix()}")

    start = time.perf_counter()
    with bar:
        for done in executor.map(train, chunks, shared, on_step, on_start):
            n = work(done.chunk)
            bar.update(max(0, n - streamed))
            streamed = 0
            if done.error is None:
                writer.append(done.chunk.id, done.rows)
            else:
                err = done.error
                warnings.warn(f"chunk {done.chunk.id} ({describe(done.chunk)}) failed: {type(err).__name__}: "
                              f"{err}; its rows are not stored (the other chunks' are), a rerun trains it "
                              f"again", UserWarning, stacklevel=2)
            report.add(done, n)
            bar.set_postfix_str(report.postfix())
    report.wall_s = time.perf_counter() - start
    if progress and chunks:
        # a headless notebook's bar prints no times, so that a rerun's executed copy is the same
        print(report.summary(desc, timed=not getattr(bar, "headless", False)), file=sys.stderr, flush=True)
    if report.failed:
        raise report.failed[0].error  # type: ignore[misc]
    return report
