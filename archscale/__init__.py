"""archscale: architecture-aware initialization and learning rates for any DAG network.

Implements "Principled Architecture-aware Scaling of Hyperparameters" (Chen, Wu, Wang,
Hanin, ICLR 2024). The pure-math core (``Dag``, ``scaled_lr``) imports no torch.
"""

from .dag import Dag
from .errors import ArchscaleError, DagError, DataError, NoPathError, SpecError, StoreError
from .scaling import CONVENTIONS, Convention, convention, lr_scale, scaled_lr

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
    "convention",
    "lr_scale",
    "scaled_lr",
]
