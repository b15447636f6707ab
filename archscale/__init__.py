"""archscale: architecture-aware initialization and learning rates for any DAG network.

Implements "Principled Architecture-aware Scaling of Hyperparameters" (Chen, Wu, Wang,
Hanin, ICLR 2024). The pure-math core (``Dag``, ``scaled_lr``) imports no torch.
"""

from .dag import Dag, DagError, NoPathError
from .scaling import CONVENTIONS, Convention, ScalingError, convention, lr_scale, scaled_lr

__version__ = "0.1.0"

__all__ = [
    "CONVENTIONS",
    "Convention",
    "Dag",
    "DagError",
    "NoPathError",
    "ScalingError",
    "convention",
    "lr_scale",
    "scaled_lr",
]
