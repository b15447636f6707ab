"""archscale: architecture-aware initialization and learning rates for any DAG network.

Implements "Principled Architecture-aware Scaling of Hyperparameters" (Chen, Wu, Wang,
Hanin, ICLR 2024). The pure-math core (``Dag``, ``scaled_lr``, ``init_std``) imports no torch;
the torch-side names (``apply``, ``DagMLP``, ``run_sweep``, ...) load torch on first use.
The folders are the layers, from the bottom: ``core`` (pure math), ``nn``, ``train``, ``runs``,
``module``, ``analysis``, ``sweep``/``probe``/``stats``/``nas``, ``plots``, ``experiments``,
``notebook``, ``cli``.
"""

from .core.dag import Dag
from .core.errors import ArchscaleError, DagError, DataError, NoPathError, SpecError, StoreError
from .core.scaling import CONVENTIONS, Convention, convention, init_std, lr_scale, scaled_lr

__version__ = "0.1.0"

#: Torch-side names and their modules, imported on first access so that ``import archscale``
#: stays free of torch.
_LAZY = {
    "apply": "module.plan", "Plan": "module.plan", "capture": "module.capture",
    "sweep_module": "module.sweep", "DagMLP": "nn.models", "DagCNN": "nn.models",
    "ModelSpec": "train", "TrainConfig": "train", "train_replicas": "train",
    "SweepSpec": "sweep", "load_spec": "sweep", "run_sweep": "sweep", "load_results": "sweep",
    "max_lr": "analysis", "load_dataset": "data", "check": "experiments.check",
}

__all__ = [  # the pure core, then the torch-side names of _LAZY
    "CONVENTIONS", "ArchscaleError", "Convention", "Dag", "DagError", "DataError", "NoPathError", "SpecError",
    "StoreError", "convention", "init_std", "lr_scale", "scaled_lr",
    "apply", "Plan", "capture", "sweep_module", "DagMLP", "DagCNN", "ModelSpec", "TrainConfig",
    "train_replicas", "SweepSpec", "load_spec", "run_sweep", "load_results", "max_lr", "load_dataset",
    "check",
]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
