"""The training recipes the NAS study compares, and the network each one builds.

* ``"fixed"`` — the benchmark's recipe: one learning rate for every cell, plain He init
  (``kaiming_normal``, fan-in, gain 2) and a standard readout (std ``sqrt(2 / n)``).
* ``"archscale"`` — the paper's: ``lr = base_lr * lr_scale(dag, "nb201")`` (eq. 8 with
  ``L_p = 1 + conv edges on p``, base: one path of depth 1), the in-degree rule on every cell
  conv and on the reduction sums, and a mean-field readout (std ``sqrt(2) / n``).
* ``"mup"`` — muP as the ``mup`` package applies it (:mod:`archscale.nas.mup_recipe`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import lr_scale
from .cells import CellNet, as_cell
from .mup_recipe import apply_mup

__all__ = ["RECIPES", "Recipe", "as_recipe", "build_cell_net", "describe_cells", "recipe_lr"]

#: The training recipe kinds compared by the study.
RECIPES = ("fixed", "archscale", "mup")


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: its ``kind`` (``fixed``, ``archscale`` or ``mup``) and base LR.

    ``base_lr=None`` takes the study's base LR (the benchmark's 0.1 by default). ``name`` labels
    the results, so two variants of one kind (say archscale from two base LRs) can be compared.
    """

    name: str
    kind: str
    base_lr: float | None = None

    def __post_init__(self):
        validate.choice(self.kind, "recipe kind", RECIPES)
        if not isinstance(self.name, str) or not self.name:
            raise ArchscaleError(f"a recipe needs a non-empty name, got {self.name!r}")
        if self.base_lr is not None:
            validate.learning_rate(self.base_lr, f"base_lr of recipe {self.name!r}")



def as_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if not isinstance(recipe, str):
        raise ArchscaleError(f"a recipe is a name ({', '.join(RECIPES)}) or a Recipe, "
                             f"got {type(recipe).__name__}")
    validate.choice(recipe, "recipe", RECIPES)
    return Recipe(recipe, recipe)


def recipe_lr(dag: Dag | str, recipe: str | Recipe, base_lr: float = 0.1) -> float:
    """The recipe's global learning rate: the base LR for fixed and muP, eq. 8 for archscale.

    archscale: ``base * lr_scale(dag, "nb201")`` (``L_p = 1 + conv edges``, base one path of
    depth 1, the all-skip cell ``1_01_001``); muP scales this global rate per parameter group
    (:func:`mup_param_groups`). ``base`` is the recipe's own ``base_lr`` or else ``base_lr``.
    """
    recipe = as_recipe(recipe)
    dag = as_cell(dag)
    base = validate.learning_rate(base_lr if recipe.base_lr is None else recipe.base_lr, "base learning rate")
    if recipe.kind == "archscale":
        return base * lr_scale(dag, "nb201")
    return base


def build_cell_net(dag: Dag | str, recipe: str | Recipe, *, in_channels: int, out_dim: int, width: int = 16,
                   n_cells: int = 5, batchnorm: bool = True, mup_base_width: int = 1,
                   seed: int = 0) -> CellNet:
    """A :class:`CellNet` initialized for ``recipe`` from ``torch.manual_seed(seed)``.

    fixed: He + standard readout; archscale: in-degree rule + mean-field readout; mup: the fixed
    recipe's model passed through :func:`apply_mup` with base width ``mup_base_width``.
    """
    kind = as_recipe(recipe).kind
    validate.integer(seed, "seed", minimum=0)
    torch.manual_seed(seed)
    init, readout = ("archscale", "mean_field") if kind == "archscale" else ("he", "standard")
    model = CellNet(dag, in_channels, width, n_cells, out_dim, init=init, readout=readout,
                    batchnorm=batchnorm)
    if kind == "mup":
        apply_mup(model, mup_base_width)
    return model


def describe_cells(cells: Iterable[Dag | str]) -> pd.DataFrame:
    """Per cell: code, number of end-to-end paths, ``{L_p: count}`` (nb201 convention), lr_scale."""
    dags = [as_cell(c) for c in cells]
    return pd.DataFrame({
        "cell": [c.code for c in dags],
        "paths": [c.n_paths for c in dags],
        "path depths {L_p: count}": [dict(c.depth_counts(offset=1)) for c in dags],
        "lr_scale": [lr_scale(c, "nb201") for c in dags],
    })

