"""The batched trainer: many (graph, learning rate, seed) replicas trained as one computation.

Replicas in one call share a model spec (graph, width, kernel, activation, layout, init) and
differ in learning rate and seed. Each replica is a real :class:`~archscale.nn.models.DagMLP` or
:class:`~archscale.nn.models.DagCNN` (so its initialization is exactly archscale's, drawn after
``torch.manual_seed(seed)``); the trainer stacks their weights along a leading replica axis and
runs the one DAG traversal (:mod:`archscale.nn.traverse`) on batched matrix products. Each replica
draws its minibatch order from its own seed (:func:`minibatch_schedule`), so a replica trained
in a batch follows the same trajectory as the same model trained alone with ``torch.optim.SGD``,
``torch.optim.Adam`` or ``torch.optim.AdamW`` (``TrainConfig.optimizer``).

Modules: :mod:`.config` (what a run is: :class:`ModelSpec`, :class:`TrainConfig`, the seeding
scheme), :mod:`.layers` (batched layers with a fixed per-replica arithmetic), :mod:`.optim` (the
per-replica SGD, Adam and AdamW steps, shared with :func:`archscale.sweep_module`), :mod:`.stack`
(stacked replicas, forward and hand-written backward), :mod:`.engine` (chunking, devices, the
training loop, :class:`TrainResult`).
"""

from ..core.errors import ArchscaleError
from .config import (
    ARCHS,
    LOSSES,
    MODEL_FIELDS,
    OPTIMIZERS,
    TRAIN_FIELDS,
    ModelSpec,
    RunSpec,
    TrainConfig,
    epoch_order,
    minibatch_schedule,
)
from .engine import (
    CPU_CACHE_BYTES,
    TrainResult,
    auto_chunk_size,
    grid,
    replica_bytes,
    resolve_device,
    summarize,
    train_replicas,
)
from .optim import make_optimizer

__all__ = [
    "ARCHS",
    "CPU_CACHE_BYTES",
    "LOSSES",
    "MODEL_FIELDS",
    "OPTIMIZERS",
    "TRAIN_FIELDS",
    "ArchscaleError",
    "ModelSpec",
    "RunSpec",
    "TrainConfig",
    "TrainResult",
    "auto_chunk_size",
    "epoch_order",
    "grid",
    "make_optimizer",
    "minibatch_schedule",
    "replica_bytes",
    "resolve_device",
    "summarize",
    "train_replicas",
]
