"""The sweep spec: a strict :class:`SweepSpec`, its YAML loader and the bundled presets.

Strict means: booleans only as YAML booleans (``cosine: 'false'`` is refused, never read as
True), numbers as numbers, duplicate YAML keys refused, keys that conflict (``lrs`` with
``lr_min``/``lr_max``/``n_lrs``) or do not apply (``kernel_sizes`` on an MLP) refused, and the
required keys (``arch``, the LR grid, ``graphs`` or ``sample``) required. Every refusal is a
:class:`~archscale.core.errors.SpecError` whose one line says what is accepted.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import yaml

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError, SpecError
from ..core.presets import experiments_with, preset_path, read_yaml
from ..core.runspec import ADDED_FIELDS, RunSpec
from ..core.schema import SWEEP, lr_key

if TYPE_CHECKING:
    import pandas as pd

    from ..data import Dataset
    from ..train import ModelSpec, TrainConfig

__all__ = ["ADDED_FIELDS", "IDENTITY_FIELDS", "SweepSpec", "load_spec", "model_keys", "parse_value",
           "presets"]

#: Spec fields that change what a row means; an output directory refuses a spec that differs in them.
IDENTITY_FIELDS = ("arch", "act", "layout", "init", "readout", "epochs", "steps", "batch_size", "optimizer",
                   "momentum", "nesterov", "weight_decay", "betas", "eps", "base_width", "cosine", "loss",
                   "dataset", "n_train", "n_test", "data_seed")
_RANGE = ("lr_min", "lr_max", "n_lrs")
_SAMPLE_KEYS = ("n_vertices", "k", "seed", "digits")


# ---------------------------------------------------------------------------------------- YAML
def parse_value(text: str) -> object:
    """A ``--set KEY=VALUE`` value read as YAML (``[0, 1]``, ``1e-3``, ``true``), else the text itself."""
    if not text:
        return None
    try:
        return read_yaml(text)
    except SpecError:
        return text


# ---------------------------------------------------------------------------------------- the spec
@dataclass
class SweepSpec(RunSpec):
    """One grid search: which networks, which learning rates and seeds, how to train them.

    ``arch`` (``mlp`` or ``cnn``) is required, and so is the LR grid: either ``lrs`` (a list) or
    ``lr_min``, ``lr_max`` and ``n_lrs`` (log-spaced), never both. ``graphs`` are DAG codes
    (quote them in YAML: ``'2_02'``, or YAML reads the number 202); ``sample: {n_vertices, k,
    seed[, digits]}`` adds ``k`` graphs drawn from a space; one of the two is required. The base
    graph ``base`` is always trained (it is added when missing) because the comparison needs
    it. ``kernel_sizes`` apply to CNNs only (default ``[3]``). Training runs ``steps`` steps when
    given, else ``epochs`` epochs, at ``batch_size``, with ``optimizer`` ``sgd`` (``momentum``,
    ``nesterov``), ``adam`` or ``adamw`` (``betas``, ``eps``; ``base_width: 64`` trains with muP's Adam
    width rule, hidden and readout weights at ``lr x base_width / width``) and ``weight_decay``. ``refine: N``
    makes the grid adaptive: after it, up to ``refine_rounds`` rounds give every configuration
    ``N`` more LRs where its optimum is (extending the grid outward at an edge) until the
    estimate's interval is narrower than a factor ``refine_width`` (:mod:`archscale.sweep.refine`).
    """

    arch: str | None = None
    graphs: list[str] | None = None
    sample: dict | None = None
    widths: list[int] = field(default_factory=lambda: [128])
    kernel_sizes: list[int] | None = None
    lr_min: float | None = None
    lr_max: float | None = None
    n_lrs: int | None = None
    lrs: list[float] | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # the recipe, training and data fields come from RunSpec (TrainConfig checks the training ones)
    data_dir: str | None = None
    data_seed: int = 0
    base: str = "1"
    refine: int | None = None
    refine_rounds: int = 3
    refine_width: float = 1.5
    chunk_size: int | None = None
    name: str = ""
    description: str = ""

    def __post_init__(self):
        self._validate()

    # -- construction
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SweepSpec:
        """Read a spec from a YAML file mapping field names to values."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"spec file {path} does not exist") from None
        except IsADirectoryError:
            raise SpecError(f"spec {path} is a directory; give a .yaml file") from None
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or err
            raise SpecError(f"cannot read spec file {path}: {why}") from None
        return cls.from_text(text, str(path), path.stem)

    @classmethod
    def from_text(cls, text: str, source: str = "<text>", name: str = "") -> SweepSpec:
        """Parse YAML ``text``; errors name ``source``; ``name`` fills an empty ``name`` field."""
        try:
            raw = read_yaml(text)
            if not isinstance(raw, dict):
                raise SpecError(f"must hold a mapping of field: value, got {type(raw).__name__}")
            spec = cls.from_dict(raw)
        except ArchscaleError as err:  # the same kind of error, naming the file
            raise type(err)(f"spec {source}: {err}") from None
        if not spec.name:
            spec.name = name
        return spec

    @classmethod
    def from_dict(cls, raw: dict) -> SweepSpec:
        """A spec from a mapping of field names to values (unknown names refused)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in raw if k not in names)
        if unknown:
            raise SpecError(f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}")
        return cls(**raw)

    def replace(self, **changes) -> SweepSpec:
        """A copy with some fields changed (validated again).

        Setting ``lrs`` drops the old ``lr_min``/``lr_max``/``n_lrs`` and setting any of those
        drops the old ``lrs``, so an override replaces the grid rather than conflicting with it.
        """
        current = self.to_dict()
        if changes.get("lrs") is not None:
            current.update({k: None for k in _RANGE})
        if any(changes.get(k) is not None for k in _RANGE):
            current["lrs"] = None
        if changes.get("arch") is not None and changes["arch"] != self.arch and "kernel_sizes" not in changes:
            current["kernel_sizes"] = None
        return SweepSpec.from_dict({**current, **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"betas": self._betas_list()}

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The spec as YAML text (written to ``path`` when given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # -- validation
    def _validate(self) -> None:
        from ..data import DATASETS
        from ..nn.models import ACTIVATIONS, INIT_SCHEMES, LAYOUTS, READOUTS
        from ..train import ARCHS, LOSSES, OPTIMIZERS

        if self.arch is None:
            raise SpecError(f"arch is required; accepted: {', '.join(ARCHS)}")
        for name, accepted in (("arch", ARCHS), ("act", ACTIVATIONS), ("layout", LAYOUTS),
                               ("init", INIT_SCHEMES), ("readout", READOUTS), ("loss", LOSSES),
                               ("dataset", DATASETS), ("optimizer", OPTIMIZERS)):
            validate.choice(getattr(self, name), name, accepted, error=SpecError)
        if self.loss == "ce" and self.dataset == "gaussian_regression":
            raise SpecError("dataset gaussian_regression has real-valued targets: use loss: mse")
        if self.loss == "mse" and self.dataset != "gaussian_regression":
            raise SpecError(f"loss mse needs regression targets; dataset {self.dataset!r} is classification "
                            f"(use loss: ce, or dataset: gaussian_regression)")
        self._validate_graphs()
        self.widths = validate.int_list(self.widths, "widths", minimum=1, unique=True, error=SpecError)
        if self.arch == "cnn":
            kernels = [3] if self.kernel_sizes is None else self.kernel_sizes
            self.kernel_sizes = validate.int_list(kernels, "kernel_sizes", unique=True, error=SpecError)
            for k in self.kernel_sizes:
                validate.kernel_size(k, "every entry of kernel_sizes", error=SpecError)
        elif self.kernel_sizes is not None:
            raise SpecError(f"kernel_sizes applies only to arch: cnn (this spec has arch: {self.arch}); "
                            f"drop it")
        self.seeds = validate.int_list(self.seeds, "seeds", unique=True, error=SpecError)
        self._validate_grid()
        self._validate_training()
        self.graph_list()  # parses every code and checks it has a path

    def _validate_graphs(self) -> None:
        if isinstance(self.graphs, str):
            self.graphs = [self.graphs]
        if self.graphs is not None and not isinstance(self.graphs, list):
            raise SpecError(f"graphs must be a list of quoted DAG codes such as ['1', '2_02'], "
                            f"got {self.graphs!r}")
        if not self.graphs and self.sample is None:
            given = "is empty" if self.graphs is not None else "is missing"
            raise SpecError(f"graphs {given}: list DAG codes such as ['1', '2_02'], or draw graphs with "
                            f"sample: {{n_vertices: 4, k: 10, seed: 0}}")
        for g in [*(self.graphs or []), self.base]:
            if not isinstance(g, str):
                raise SpecError(f"graph {g!r} is not a string: quote DAG codes in YAML, e.g. '2_02' "
                                f"(unquoted, YAML reads 2_02 as the number 202)")
        if self.sample is not None:
            s = self.sample
            if not isinstance(s, dict) or not {"n_vertices", "k", "seed"} <= set(s) or not set(s) <= set(
                    _SAMPLE_KEYS):
                raise SpecError(f"sample must be a mapping with n_vertices, k, seed (and optional digits), "
                                f"got {s!r}")
            validate.integer(s["n_vertices"], "sample n_vertices", minimum=2, error=SpecError)
            validate.positive_int(s["k"], "sample k", error=SpecError)
            validate.integer(s["seed"], "sample seed", error=SpecError)
            if s.get("digits") is not None:
                validate.int_list(s["digits"], "sample digits", minimum=0, error=SpecError)

    def _validate_grid(self) -> None:
        given = [k for k in _RANGE if getattr(self, k) is not None]
        if self.lrs is not None:
            if given:
                raise SpecError(f"give the LR grid either as lrs or as lr_min, lr_max and n_lrs, not both "
                                f"(this spec has lrs and {', '.join(given)})")
            items = self.lrs if isinstance(self.lrs, (list, tuple)) else [self.lrs]
            if not items:
                raise SpecError("lrs is empty: the LR grid needs at least one learning rate")
            self.lrs = [validate.learning_rate(v, "every entry of lrs", error=SpecError) for v in items]
            return
        if len(given) < len(_RANGE):
            missing = [k for k in _RANGE if k not in given]
            raise SpecError(f"the LR grid is required: give lrs: [0.01, 0.1, 1.0] or lr_min, lr_max and "
                            f"n_lrs (missing: {', '.join(missing)})")
        self.lr_min = validate.learning_rate(self.lr_min, "lr_min", error=SpecError)
        self.lr_max = validate.learning_rate(self.lr_max, "lr_max", error=SpecError)
        if isinstance(self.n_lrs, bool) or not isinstance(self.n_lrs, int) or self.n_lrs < 1:
            raise SpecError(f"n_lrs must be a positive integer (an empty LR grid trains nothing), "
                            f"got {self.n_lrs!r}")
        if self.lr_max < self.lr_min:
            raise SpecError(f"lr_max ({self.lr_max:g}) is below lr_min ({self.lr_min:g})")
        if self.n_lrs > 1 and self.lr_max == self.lr_min:
            raise SpecError(f"lr_min == lr_max but n_lrs = {self.n_lrs}; widen the range or use n_lrs: 1")

    def _validate_training(self) -> None:
        for name in ("n_train", "n_test", "chunk_size"):
            if getattr(self, name) is not None:
                validate.positive_int(getattr(self, name), f"{name} (a positive integer or null)",
                                      error=SpecError)
        validate.integer(self.data_seed, "data_seed", error=SpecError)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise SpecError(f"data_dir must be a path (a string) or null, got {self.data_dir!r}")
        for name in ("name", "description"):
            if not isinstance(getattr(self, name), str):
                raise SpecError(f"{name} must be a string, got {getattr(self, name)!r}")
        # the trainer's own checks: steps, epochs, batch size, the optimizer's settings, decay, flags
        self.betas = self.train_config().betas  # a pair of floats (YAML gives a list)
        if self.refine is not None:
            validate.positive_int(self.refine, "refine (LRs added per configuration and round, or null)",
                                  error=SpecError)
        validate.positive_int(self.refine_rounds, "refine_rounds", error=SpecError)
        validate.number(self.refine_width, "refine_width", minimum=1.0, example="1.5", error=SpecError)

    # -- derived
    def lr_grid(self) -> list[float]:
        """The learning rates, ascending (10 significant digits, so they compare stably)."""
        values = self.lrs if self.lrs is not None else np.geomspace(  # the three are set when lrs is not
            cast(float, self.lr_min), cast(float, self.lr_max), cast(int, self.n_lrs))
        return sorted({float(lr_key(v)) for v in values})

    def graph_list(self) -> list[str]:
        """Canonical codes of every graph to train: the base first, then listed, then sampled."""
        codes: list[str] = []
        assert self.arch is not None  # required (__post_init__)
        for g in [self.base, *(self.graphs or [])]:
            try:
                dag = Dag.parse(g, ops=self.arch)
                dag.require_path()
            except ArchscaleError as err:
                raise type(err)(f"graph {g!r}: {err}") from None
            codes.append(dag.code)
        if self.sample is not None:
            s = self.sample
            digits = tuple(s["digits"]) if s.get("digits") is not None else None
            try:
                drawn = Dag.sample(s["n_vertices"], s["k"], s["seed"], ops=self.arch, digits=digits)
            except ArchscaleError as err:
                raise type(err)(f"sample {s!r}: {err}") from None
            codes.extend(d.code for d in drawn)
        return list(dict.fromkeys(codes))

    def graph_groups(self) -> dict[str, list[str]]:
        """The graphs split into those the spec lists and those it samples, each group with the base.

        Experiments run as one sweep but reported apart (e.g. GELU depth chains and sampled
        topologies, paper Fig. 7) compare each group separately. ``sampled`` is absent when the
        spec samples nothing.
        """
        assert self.arch is not None
        base = Dag.parse(self.base, ops=self.arch).code
        listed = list(dict.fromkeys([base] + [Dag.parse(g, ops=self.arch).code for g in self.graphs or []]))
        sampled = [g for g in self.graph_list() if g not in listed]
        return {"listed": listed, **({"sampled": [base, *sampled]} if sampled else {})}

    def train_config(self) -> TrainConfig:
        from ..train import TrainConfig

        return TrainConfig.of(self)

    def model_specs(self) -> list[ModelSpec]:
        """One :class:`ModelSpec` per (graph, width, kernel size) in a fixed order."""
        from ..train import ModelSpec

        kernels = self.kernel_sizes if self.arch == "cnn" else [3]
        assert self.arch is not None and kernels is not None  # a CNN's kernel sizes default to [3]
        return [ModelSpec(g, arch=self.arch, width=w, kernel_size=k, act=self.act, layout=self.layout,
                          init=self.init, readout=self.readout)
                for g in self.graph_list() for w in self.widths for k in kernels]

    def replicas(self) -> list[tuple[float, int]]:
        """The (lr, seed) pairs every model is trained with, seeds outer."""
        return [(lr, s) for s in self.seeds for lr in self.lr_grid()]

    def keys(self, results: pd.DataFrame | None = None) -> set[tuple]:
        """The row key (:meth:`archscale.core.schema.RowSchema.key_of`) of every row this spec trains:
        its grid and, with ``refine``, the adaptive LRs that ``results`` (rows so far) call for."""
        reps = self.replicas()
        keys = {key for model in self.model_specs() for key in model_keys(model, reps)}
        if self.refine and results is not None:
            from .refine import config_of, refinement_plan

            plan = refinement_plan(self, results)
            for model in self.model_specs():
                for lrs in plan.get(config_of(model), []):
                    keys |= set(model_keys(model, [(lr, s) for s in self.seeds for lr in lrs]))
        return keys

    def select(self, results: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``results`` that belong to this spec's grid.

        An output directory keeps the rows of every spec run into it; a maximal LR read off a
        mix of grids (other LRs, fewer seeds) would be wrong, so analyses take this selection.
        """
        if results.empty:
            return results
        keys = self.keys(results)
        mask = [SWEEP.key_of(r) in keys for r in results[list(SWEEP.key)].to_dict("records")]
        return results[mask].reset_index(drop=True)

    def load_data(self) -> Dataset:
        from ..data import load_dataset

        return load_dataset(self.dataset, flatten=self.arch == "mlp", data_dir=self.data_dir,
                            seed=self.data_seed, n_train=self.n_train, n_test=self.n_test)

    def identity(self) -> dict:
        """The fields that give a row its meaning, as YAML stores them (``betas`` a list)."""
        return {k: getattr(self, k) for k in IDENTITY_FIELDS} | {"betas": self._betas_list()}

    def _betas_list(self) -> list[float] | None:
        return None if self.betas is None else list(self.betas)


def model_keys(model: ModelSpec, reps: list[tuple[float, int]]) -> list[tuple]:
    """Row keys of ``model`` trained at each ``(lr, seed)`` of ``reps`` (kernel 0 for MLPs)."""
    kern = model.kernel_size if model.arch == "cnn" else 0
    return [(model.graph, model.arch, model.width, kern, model.act, lr_key(lr), s) for lr, s in reps]


# ---------------------------------------------------------------------------------------- presets
def presets() -> list[str]:
    """Names of the specs bundled with archscale (``mlp_depth_quick``, ...), listed from the files."""
    from ..core.presets import preset_names

    folder = "sweep/presets"
    return sorted(f"{e}_{p}" for e in experiments_with(folder) for p in preset_names(e, folder))


def load_spec(source: str | os.PathLike) -> SweepSpec:
    """A spec from a YAML file, or from a bundled preset's name such as ``mlp_depth_quick``."""
    path = Path(source)
    if path.exists() or not isinstance(source, str) or path.suffix in (".yaml", ".yml") or "/" in source \
            or os.sep in source:
        return SweepSpec.from_yaml(path)
    if source not in presets():
        raise SpecError(f"no spec file {source!r} and no bundled preset of that name; presets: "
                        f"{', '.join(presets())}")
    experiment, _, preset = source.rpartition("_")
    bundled = preset_path(experiment, preset, "sweep/presets")
    return SweepSpec.from_text(bundled.read_text(encoding="utf-8"), f"preset {source}", source)
