"""What a training run is: the network (:class:`ModelSpec`), the protocol (:class:`TrainConfig`)
and the one minibatch seeding scheme every trainer of archscale draws its batch order from."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.runspec import MODEL_FIELDS, TRAIN_FIELDS, RunSpec
from ..nn.models import ACTIVATIONS, INIT_SCHEMES, LAYOUTS, READOUTS, DagCNN, DagMLP, DagNet

__all__ = ["ARCHS", "DEFAULT_BETAS", "LOSSES", "MODEL_FIELDS", "OPTIMIZERS", "TRAIN_FIELDS", "ModelSpec",
           "RunSpec", "TrainConfig", "epoch_order", "minibatch_schedule"]

ARCHS = ("mlp", "cnn")
LOSSES = ("ce", "mse")
#: The optimizers (``TrainConfig.optimizer``), as torch.optim names them; :mod:`.optim` steps them.
OPTIMIZERS = ("sgd", "adam", "adamw")
#: Adam's ``(beta1, beta2)`` when a config gives none (torch.optim.Adam's defaults).
DEFAULT_BETAS = (0.9, 0.999)
_DATA_STREAM = 0x5EED  # separates the minibatch-order stream from other uses of a seed


@dataclass(frozen=True)
class ModelSpec:
    """What every replica of one batched run shares: the network, not the LR or the seed."""

    graph: str
    arch: str = "mlp"
    width: int = 128
    kernel_size: int = 3  # CNNs only
    act: str = RunSpec.act
    layout: str = RunSpec.layout
    init: str = RunSpec.init
    readout: str = RunSpec.readout

    def __post_init__(self):
        validate.choice(self.arch, "arch", ARCHS)
        validate.positive_int(self.width, "width")
        if self.arch == "cnn":
            validate.kernel_size(self.kernel_size)
        validate.choice(self.act, "act", ACTIVATIONS)
        validate.choice(self.layout, "layout", LAYOUTS)
        validate.choice(self.init, "init", INIT_SCHEMES)
        validate.choice(self.readout, "readout", READOUTS)
        dag = Dag.parse(self.graph, ops=self.arch)  # raises DagError for malformed codes
        dag.require_path()
        object.__setattr__(self, "graph", dag.code)

    @property
    def dag(self) -> Dag:
        return Dag.parse(self.graph, ops=self.arch)

    def build(self, in_shape: tuple, out_dim: int, seed: int) -> DagNet:
        """The replica's network, initialized after ``torch.manual_seed(seed)`` (global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            if self.arch == "mlp":
                return DagMLP(self.graph, math.prod(in_shape), self.width, out_dim, self.act,
                              layout=self.layout, init=self.init, readout=self.readout)
            if len(in_shape) != 3:
                raise ArchscaleError(f"a CNN needs image inputs (C, H, W), got in_shape {in_shape}; "
                                     f"load the dataset with flatten=False")
            return DagCNN(self.graph, in_shape[0], self.width, out_dim, self.kernel_size, self.act,
                          layout=self.layout, init=self.init, readout=self.readout)


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer and schedule shared by every replica, with torch.optim's semantics.

    ``optimizer`` is ``sgd`` (torch.optim.SGD: ``momentum``, ``nesterov``, ``weight_decay``),
    ``adam`` (torch.optim.Adam: ``betas``, default (0.9, 0.999), ``eps``, and ``weight_decay``
    added to the gradient) or ``adamw`` (torch.optim.AdamW: the decay ``p *= 1 - lr * wd``
    decoupled from the moments). Settings of the other optimizer are refused, not ignored.
    ``base_width`` (Adam's, None by default: one LR for every parameter) trains with muP's Adam width
    rule (:func:`~archscale.core.adam_width.adam_lr_multiplier`): each hidden and readout weight at
    ``lr x base_width / fan-in width``, the stem and the biases at ``lr``.
    Training runs ``steps`` minibatch steps when given, else ``epochs`` passes over the data
    (``ceil(n_train / batch_size)`` steps each, the last batch of an epoch possibly smaller).
    ``cosine`` decays each replica's LR per step as ``lr * (1 + cos(pi * t / T)) / 2``.
    ``augment`` (random crops and flips of images) is applied by the cell-network trainer; the
    batched trainer refuses it rather than silently training without.
    """

    steps: int | None = RunSpec.steps
    epochs: int = RunSpec.epochs
    batch_size: int = RunSpec.batch_size
    optimizer: str = RunSpec.optimizer
    momentum: float = RunSpec.momentum
    nesterov: bool = RunSpec.nesterov
    weight_decay: float = RunSpec.weight_decay
    betas: tuple[float, float] | None = RunSpec.betas
    eps: float = RunSpec.eps
    base_width: int | None = RunSpec.base_width
    cosine: bool = RunSpec.cosine
    loss: str = RunSpec.loss
    eval_batch_size: int = 1024
    augment: bool = False

    def __post_init__(self):
        if self.steps is not None:
            validate.positive_int(self.steps, "steps")
        validate.positive_int(self.epochs, "epochs")
        validate.positive_int(self.batch_size, "batch_size")
        validate.positive_int(self.eval_batch_size, "eval_batch_size")
        momentum = validate.number(self.momentum, "momentum", minimum=0, maximum=1, below_max=True,
                                   example="0.9")
        validate.number(self.weight_decay, "weight_decay", minimum=0, example="5e-4")
        validate.boolean(self.nesterov, "nesterov")
        validate.boolean(self.cosine, "cosine")
        validate.boolean(self.augment, "augment")
        validate.choice(self.loss, "loss", LOSSES)
        self._check_optimizer(momentum)

    def _check_optimizer(self, momentum: float) -> None:
        """The optimizer's name, and no setting of another optimizer (one line each)."""
        name = validate.choice(self.optimizer, "optimizer", OPTIMIZERS)
        eps = validate.number(self.eps, "eps", positive=True, example="1e-8")
        if self.base_width is not None:
            object.__setattr__(self, "base_width", validate.positive_int(self.base_width, "base_width"))
        if name == "sgd":
            given = [k for k, v in (("betas", self.betas), ("eps", None if eps == RunSpec.eps else eps),
                                    ("base_width", self.base_width)) if v is not None]
            if given:
                what = " and ".join(given)
                raise ArchscaleError(f"{what} {'are' if len(given) > 1 else 'is'} Adam's; optimizer sgd "
                                     f"takes momentum and nesterov (set optimizer: adam or adamw, or drop "
                                     f"{what})")
            if self.nesterov and momentum == 0:
                raise ArchscaleError("nesterov needs momentum > 0 (as in torch.optim.SGD)")
            return
        used = [k for k, v in (("momentum", momentum), ("nesterov", self.nesterov)) if v]
        if used:
            what = " and ".join(used)
            raise ArchscaleError(f"{what} {'are' if len(used) > 1 else 'is'} SGD's; optimizer {name} keeps "
                                 f"its own moments (drop {what}; betas: [0.9, 0.999] sets them)")
        if self.betas is not None:
            betas = self.betas
            if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
                raise ArchscaleError(f"betas must be a pair [beta1, beta2] such as [0.9, 0.999], "
                                     f"got {betas!r}")
            pair = tuple(validate.number(b, f"each of betas {list(betas)!r}", minimum=0, maximum=1,
                                         below_max=True, example="0.9") for b in betas)
            object.__setattr__(self, "betas", pair)

    @property
    def adam_betas(self) -> tuple[float, float]:
        """Adam's ``(beta1, beta2)``: ``betas``, or torch.optim.Adam's default (0.9, 0.999)."""
        return self.betas if self.betas is not None else DEFAULT_BETAS

    @classmethod
    def of(cls, spec: RunSpec) -> TrainConfig:
        """The config of a spec's training fields (:data:`~archscale.core.runspec.TRAIN_FIELDS`)."""
        return cls(**{name: getattr(spec, name) for name in TRAIN_FIELDS})

    def steps_per_epoch(self, n_train: int) -> int:
        return -(-n_train // self.batch_size)

    def total_steps(self, n_train: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(n_train)

    def lr_factor(self, step: int, total: int) -> float:
        """Schedule multiplier of the LR at ``step`` (0-based) of ``total``."""
        return 0.5 * (1.0 + math.cos(math.pi * step / total)) if self.cosine else 1.0


def epoch_order(n_train: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which a run with ``seed`` visits the ``n_train`` samples in ``epoch``.

    A function of ``(seed, epoch)`` alone, so a replica trained in any batch, alone, or by any
    of archscale's trainers sees the same minibatches.
    """
    return np.random.default_rng([_DATA_STREAM, int(seed), int(epoch)]).permutation(n_train)


def minibatch_schedule(n_train: int, batch_size: int, seed: int, total_steps: int) -> Iterator[np.ndarray]:
    """Sample indices of each step for a run with ``seed``: a fresh :func:`epoch_order` every epoch."""
    per_epoch = -(-n_train // batch_size)
    order = np.empty(0, dtype=np.int64)
    for step in range(total_steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            order = epoch_order(n_train, seed, epoch)
        yield order[k * batch_size:(k + 1) * batch_size]
