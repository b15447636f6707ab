"""archscale: architecture-aware initialization and learning rates for any DAG network.

Implements "Principled Architecture-aware Scaling of Hyperparameters" (Chen, Wu, Wang,
Hanin, ICLR 2024). The pure-math core (``Dag``, ``scaled_lr``) imports no torch; ``apply``,
``Plan``, ``capture`` and ``sweep_module`` (for any ``nn.Module``) load torch on first use.
"""

from .core.dag import Dag
from .core.errors import ArchscaleError, DagError, DataError, NoPathError, SpecError, StoreError
from .core.scaling import CONVENTIONS, Convention, convention, lr_scale, scaled_lr

__version__ = "0.1.0"

__all__ = [
    "CONVENTIONS",
    "ArchscaleError",
    "Convention",
    "Dag",
    "DagError",
    "DataError",
    "NoPathError",
    "SpecError",
    "StoreError",
    "apply",
    "capture",
    "convention",
    "lr_scale",
    "scaled_lr",
    "sweep_module",
    "Plan",
]

#: Torch-side names, imported on first access so that ``import archscale`` stays free of torch.
_LAZY = {"apply": "module.plan", "Plan": "module.plan", "capture": "module.capture",
         "sweep_module": "module.sweep"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
