"""Running a sweep: plan chunks, train each with the batched trainer, append it to the store.

:func:`plan_chunks` cuts every model's replica list into chunks (the same cut whatever is
already done, so a resumed sweep trains exactly the chunks an uninterrupted one would) and
:func:`train_chunk` trains one chunk and returns its rows; :func:`run_sweep` plans on the
driver, hands the chunks to an executor (:class:`~archscale.runs.executor.LocalExecutor`, or
:class:`~archscale.runs.ray.RayExecutor` with ``ray=``) and appends each finished
chunk to a :class:`~archscale.runs.store.ResultStore` (:func:`~archscale.runs.executor.run_chunks`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core import validate
from ..core.errors import ArchscaleError, StoreError
from ..core.schema import SWEEP
from ..runs.executor import executor_for, run_chunks
from ..runs.store import ResultStore, Scan, chunk_id
from .refine import config_of
from .spec import ADDED_FIELDS, SweepSpec, model_keys

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from ..data import Dataset
    from ..runs.executor import Executor
    from ..runs.ray import RayExecutor
    from ..train import ModelSpec

__all__ = ["Chunk", "chunk_id", "grid_coverage", "load_results", "open_store", "plan_chunks", "run_sweep",
           "train_chunk"]


@dataclass(frozen=True)
class Chunk:
    """One batched training job: a model and the ``(lr, seed)`` replicas of it still to train.

    ``id`` names the whole chunk of the full plan (also when some of its replicas were done).
    """

    id: str
    model: ModelSpec
    replicas: tuple[tuple[float, int], ...]


def plan_chunks(spec: SweepSpec, data: Dataset, device: str | torch.device = "cpu", done: set | None = None,
                chunk_size: int | None = None, memory_budget: int | None = None,
                rounds: dict[tuple, list[list[float]]] | None = None) -> list[Chunk]:
    """Chunks still to train: per model, the full replica list split into equal consecutive parts.

    Chunks are cut from the full list (not from what is left), so a resumed sweep trains exactly
    the chunks an uninterrupted one would; a chunk keeps only the replicas whose row key is not
    in ``done``. The size is ``chunk_size``, else the spec's, else what fits memory (and, on
    the CPU, the cache). ``rounds`` (from :func:`~archscale.sweep.refine.refinement_plan`) adds
    each refinement round's LRs of a model as replica lists of their own, cut the same way.
    """
    from ..train import auto_chunk_size, resolve_device

    done = done or set()
    dev = resolve_device(device)
    reps = spec.replicas()
    config = spec.train_config()
    in_shape = tuple(data.x_train.shape[1:])
    plan = []
    for model in spec.model_specs():
        size = chunk_size or spec.chunk_size or auto_chunk_size(
            model, in_shape, data.out_dim, config.batch_size, dev, memory_budget, optimizer=config.optimizer)
        lists = [reps] + [[(lr, s) for s in spec.seeds for lr in lrs]
                          for lrs in (rounds or {}).get(config_of(model), [])]
        for replicas in lists:
            n_chunks = -(-len(replicas) // size)
            for part in np.array_split(np.arange(len(replicas)), n_chunks):
                chunk = [replicas[i] for i in part]
                keys = model_keys(model, chunk)
                todo = tuple(rep for rep, key in zip(chunk, keys) if key not in done)
                if todo:
                    plan.append(Chunk(chunk_id(keys), model, todo))
    return plan


def train_chunk(spec: SweepSpec, chunk: Chunk, data: Dataset, device: str | torch.device = "cpu",
                on_step: Callable[[int], object] | None = None) -> list[dict]:
    """Train one chunk's replicas as one batched run; return their rows
    (:data:`~archscale.core.schema.SWEEP`)."""
    from .. import train

    result = train.train_replicas(chunk.model, [lr for lr, _ in chunk.replicas],
                                  [s for _, s in chunk.replicas], data, spec.train_config(), device=device,
                                  chunk_size=len(chunk.replicas), on_step=on_step)
    return result.rows()


def open_store(out_dir: str | os.PathLike) -> ResultStore:
    """The sweep store in ``out_dir`` (refused when the path or its files are not archscale's)."""
    store = ResultStore(out_dir, SWEEP)
    store.check()
    return store


def _report(scan: Scan, store: ResultStore, only_unrecovered: bool) -> None:
    damaged = scan.unrecovered() if only_unrecovered else scan.damaged
    if damaged:
        text = Scan(damaged=damaged).describe(store.path)
        tail = "; rows missing from the grid are trained again" if only_unrecovered else ""
        warnings.warn(text + tail, UserWarning, stacklevel=3)


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, device: str | None = None, progress: bool = True,
              chunk_size: int | None = None, memory_budget: int | None = None,
              threads: int | None = None, ray: bool | str | RayExecutor | None = None,
              workers: int | None = None) -> pd.DataFrame:
    """Train every replica of ``spec`` not yet in ``out_dir`` and return the spec's rows.

    Rows are appended per finished chunk (flushed and fsync'd), so the sweep can be killed at any
    moment and resumed by calling it again with the same spec; changes to the training setup
    (see :data:`~archscale.sweep.spec.IDENTITY_FIELDS`) need a new directory, while new graphs,
    LRs or seeds are added. The directory and its parents are created when missing; nothing is
    written (``spec.yaml`` included) until the data has loaded and the store is open and locked,
    so a failed start leaves the directory as it was. Damaged lines found in ``results.jsonl``
    are reported (a warning with their line numbers) and their chunks trained again. The result
    holds only this spec's grid (:meth:`SweepSpec.select`). ``threads`` sets torch's CPU threads
    for the call (1 suits a CPU shared with other busy processes).

    ``ray`` trains the chunks as Ray tasks: ``True`` on a local Ray instance, an address (e.g.
    ``"auto"``, ``"10.0.0.1:6379"``) on that cluster, or a configured
    :class:`~archscale.runs.ray.RayExecutor`; ``threads`` is then each task's CPUs
    (default 1) and ``device`` None means the cluster's GPUs when it has any. Locally ``device``
    None is the CPU. A chunk that fails is named in a warning, the others are still stored, and
    its error is raised at the end.

    ``workers`` > 1 trains that many chunks at once in CPU worker processes of this machine
    (:class:`~archscale.runs.executor.ProcessExecutor`, ``threads`` each, default 1): the rows are the
    same, since no replica's numbers depend on its chunk or the thread count. CNN steps run on one
    thread, so a CNN sweep on a CPU of ``k`` cores gains up to ``k``-fold.
    """
    if not isinstance(spec, SweepSpec):
        raise ArchscaleError(f"spec must be a SweepSpec, got {type(spec).__name__}; use load_spec(path)")
    if threads is not None:
        validate.positive_int(threads, "threads")
    if chunk_size is not None:
        validate.positive_int(chunk_size, "chunk_size")
    store = open_store(out_dir)
    executor = _executor(device, threads, ray, workers)  # a missing GPU: refused before any I/O
    store.check_setup(spec.identity(), "a sweep", added=ADDED_FIELDS)
    scan = store.scan()
    _report(scan, store, only_unrecovered=True)
    todo = spec.keys(SWEEP.frame(scan.rows)) - scan.keys
    meta = spec.to_dict()
    if todo or store.read_meta() != meta:
        data = spec.load_data() if todo else None  # before anything is written
        with store.open() as writer:
            store.check_setup(spec.identity(), "a sweep", added=ADDED_FIELDS)
            writer.write_meta(meta)
            if spec.keys(SWEEP.frame(writer.scan.rows)) - writer.scan.keys:
                data = data if data is not None else spec.load_data()
                with executor:
                    _train_plan(spec, data, executor, writer, store, chunk_size, memory_budget, progress)
    return spec.select(SWEEP.frame(store.scan().rows))


def _executor(device: str | None, threads: int | None, ray: bool | str | RayExecutor | None,
              workers: int | None = None) -> Executor:
    """The executor ``run_sweep`` trains on (not started yet)."""
    if ray is None or ray is False:
        return executor_for(device, threads, workers)
    if workers is not None and workers != 1:
        raise ArchscaleError("workers and ray are two ways to run chunks in parallel: give one of them")
    from ..runs.ray import RayExecutor

    if isinstance(ray, RayExecutor):
        if device is not None or threads is not None:
            raise ArchscaleError("give device and threads to the RayExecutor itself, not to run_sweep")
        return ray
    if ray is True:
        return RayExecutor(device=device, threads=threads)
    if isinstance(ray, str):
        return RayExecutor(ray, device=device, threads=threads)
    raise ArchscaleError(f"ray must be True, a cluster address or a RayExecutor, got {ray!r}")


def _plan(shared: tuple[SweepSpec, Dataset], device: str, done: set, chunk_size: int | None,
          memory_budget: int | None, rounds: dict | None = None) -> list[Chunk]:
    spec, data = shared
    return plan_chunks(spec, data, device, done, chunk_size, memory_budget, rounds)


def _train(chunk: Chunk, shared: tuple[SweepSpec, Dataset], device: str,
           on_step: Callable[[int], object] | None) -> list[dict]:
    """A chunk trained by an executor (a module-level function: Ray pickles it by reference)."""
    spec, data = shared
    return train_chunk(spec, chunk, data, device, on_step)


def describe_chunk(chunk: Chunk) -> str:
    """A chunk in words: its model and how many replicas it trains."""
    m = chunk.model
    kernel = f" k{m.kernel_size}" if m.arch == "cnn" else ""
    n = len(chunk.replicas)
    return f"graph {m.graph} w{m.width}{kernel} {m.act}, {n} replica{'s' if n > 1 else ''}"


def _train_plan(spec: SweepSpec, data: Dataset, executor: Executor, writer, store: ResultStore,
                chunk_size: int | None, memory_budget: int | None, progress: bool) -> None:
    """Train what the grid lacks; with ``refine``, then each refinement round in turn (a round is
    planned from the rows of the grid and the rounds before it, :mod:`~archscale.sweep.refine`)."""
    from .refine import refinement_plan

    shared = (spec, data)
    steps = spec.train_config().total_steps(data.n_train)
    scan = writer.scan
    for round_ in range(spec.refine_rounds + 1 if spec.refine else 1):
        rounds = refinement_plan(spec, SWEEP.frame(scan.rows)) if spec.refine else None
        plan = executor.call(_plan, shared, executor.device, scan.keys, chunk_size, memory_budget, rounds)
        if not plan:
            break
        desc = f"sweep {spec.name or spec.arch}" + (f" (refinement {round_})" if round_ else "")
        run_chunks(plan, _train, shared, writer, executor, work=lambda c: len(c.replicas) * steps,
                   describe=describe_chunk, desc=desc, progress=progress)
        scan = store.scan()


def load_results(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Every verified row of the sweep in ``out_dir``, a tidy DataFrame
    (:data:`~archscale.core.schema.COLUMNS`).

    Lines set aside (damaged, or cut off by a kill) are reported in a warning with their numbers.
    """
    store = ResultStore(out_dir, SWEEP)
    if not store.dir.is_dir():
        raise StoreError(f"{store.dir} is not a sweep directory (it does not exist); "
                         f"run 'archscale sweep SPEC --out {store.dir}' first")
    store.check()
    scan = store.scan()
    _report(scan, store, only_unrecovered=False)
    return SWEEP.frame(scan.rows)


def grid_coverage(spec: SweepSpec, keys: set, results: pd.DataFrame | None = None) -> tuple[int, int]:
    """``(present, expected)``: how many rows of the spec's grid (with ``refine``, and the adaptive
    LRs that ``results`` call for) are among ``keys``."""
    expected = spec.keys(results)
    return len(expected & keys), len(expected)
