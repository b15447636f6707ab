"""The fields every experiment spec shares, with one set of defaults (no torch).

:class:`RunSpec` is the base of :class:`~archscale.sweep.SweepSpec` and of the residual depth
sweep's spec; :class:`~archscale.train.ModelSpec` and :class:`~archscale.train.TrainConfig` (what
the trainer takes) draw their defaults from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADDED_FIELDS", "MODEL_FIELDS", "TRAIN_FIELDS", "RunSpec"]


@dataclass
class RunSpec:
    """The fields every experiment spec shares, with their one set of defaults: the recipe of the
    network (activation, block layout, init, readout), the training protocol (``optimizer`` ``sgd``,
    ``adam`` or ``adamw``; ``momentum``/``nesterov`` are SGD's, ``betas``/``eps`` Adam's, and so is
    ``base_width``, muP's per-tensor width rule, :mod:`archscale.core.adam_width`) and the data.

    :class:`~archscale.sweep.SweepSpec` and the residual depth sweep's spec extend it;
    :class:`ModelSpec` and :class:`TrainConfig` (what the trainer takes) draw their defaults
    from it, and :meth:`TrainConfig.of <archscale.train.TrainConfig.of>` builds the trainer's
    config from a spec.
    """

    act: str = "relu"
    layout: str = "paper"
    init: str = "archscale"
    readout: str = "mean_field"
    loss: str = "ce"
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 128
    cosine: bool = False
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] | None = None  # Adam's; None: (0.9, 0.999)
    eps: float = 1e-8  # Adam's
    base_width: int | None = None  # Adam's: muP's per-tensor width rule relative to this width; None: one LR
    dataset: str = "digits"
    n_train: int | None = None
    n_test: int | None = None


#: The fields of :class:`RunSpec` that :class:`TrainConfig` and :class:`ModelSpec` take.
TRAIN_FIELDS = ("loss", "epochs", "steps", "batch_size", "cosine", "optimizer", "momentum", "nesterov",
                "weight_decay", "betas", "eps", "base_width")
MODEL_FIELDS = ("act", "layout", "init", "readout")
#: Fields added after results were first stored, with the value an older store's setup had
#: implicitly (it trained with SGD): ``ResultStore.check_setup(..., added=ADDED_FIELDS)``.
ADDED_FIELDS = {"optimizer": "sgd", "betas": None, "eps": RunSpec.eps, "base_width": None}
