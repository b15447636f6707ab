"""The one preset mechanism and the one spec base: names listed from files, defaults declared once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from archscale.core.errors import SpecError
from archscale.core.presets import PRESET_ORDER, load_settings, preset_names, read_yaml, settings_with
from archscale.core.runspec import MODEL_FIELDS, TRAIN_FIELDS, RunSpec

ROOT = Path(__file__).resolve().parents[2]


def test_preset_names_come_from_the_files():
    names = preset_names()
    assert names[:3] == list(PRESET_ORDER)
    files = list((ROOT / "archscale").glob("*/presets/*.yaml"))
    assert {f.stem.rpartition("_")[2] for f in files} == set(names)
    from archscale.notebook.reproduce import PRESETS

    assert list(PRESETS) == names


def test_settings_expand_grids_and_refuse_unknown_presets():
    quick = load_settings("maximal_update", "quick")
    np.testing.assert_allclose(quick["lr_grid"], np.geomspace(1e-3, 10, 9))
    assert quick["transfer_lrs"] == [2.0 ** k for k in range(-8, 1)]
    assert load_settings("kernel_moments", "quick")["seeds"] == list(range(6))
    with pytest.raises(SpecError, match="has no preset 'huge'; accepted: smoke, quick, full"):
        load_settings("maximal_update", "huge")
    with pytest.raises(SpecError, match="no presets for 'nothing'"):
        load_settings("nothing", "quick")
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        read_yaml("a: 1\na: 2\n")


def test_settings_with_overrides_and_shifted_seeds():
    s = settings_with("check", "quick", {"width": 8}, seed=10)
    assert s["width"] == 8 and s["seeds"] == [10, 11, 12]
    assert s["depths"] == load_settings("check", "quick")["depths"]
    with pytest.raises(SpecError, match="unknown check setting\\(s\\) widht; accepted: dataset"):
        settings_with("check", "quick", {"widht": 8})


def test_the_defaults_are_declared_once():
    from archscale.experiments.residual_depth import ResidualDepthSpec
    from archscale.sweep import SweepSpec
    from archscale.train import ModelSpec, TrainConfig

    base = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    for cls, names in ((TrainConfig, TRAIN_FIELDS), (ModelSpec, MODEL_FIELDS)):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        assert {n: defaults[n] for n in names} == {n: base[n] for n in names}, cls.__name__
    for cls in (SweepSpec, ResidualDepthSpec):
        assert issubclass(cls, RunSpec)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        assert {n: defaults[n] for n in base} == base, cls.__name__


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_hold_no_preset_tables(path):
    """Presets live in files: no notebook keeps a table keyed by preset names."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r'["\']smoke["\']\s*:', code), f"{path.name} keeps a preset table; move it to a file"
