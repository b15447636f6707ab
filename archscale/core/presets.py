"""The one preset mechanism: YAML files named ``<experiment>_<preset>.yaml``, read strictly.

Two folders hold them: ``archscale/sweep/presets/`` (sweep specs, read into a
:class:`~archscale.sweep.SweepSpec`) and ``archscale/experiments/presets/`` (the settings of the
notebooks' other experiments, read into plain mappings by :func:`load_settings`). Preset names
(``smoke``, ``quick``, ``full``) are listed from the files, never typed twice.

Strict means: duplicate keys refused, ``1e-3`` read as a number (as YAML 1.2 does), booleans only
as YAML booleans. Settings files may write a grid as ``{geomspace: [start, stop, n]}``,
``{linspace: [start, stop, n]}``, ``{powers_of_2: [lo, hi]}`` (``2**lo .. 2**hi``) or
``{range: [start, stop]}`` (``stop`` excluded); :func:`load_settings` expands them.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import cast

import yaml

from .errors import SpecError

__all__ = ["FOLDERS", "PRESET_ORDER", "experiments_with", "load_settings", "preset_names", "preset_path",
           "read_yaml", "settings_with"]

#: The folders (below the package) that hold preset files.
FOLDERS = ("sweep/presets", "experiments/presets")
#: How preset names are listed: these first, in this order, then any other name alphabetically.
PRESET_ORDER = ("smoke", "quick", "full")
_NAME = re.compile(r"^(?P<experiment>[a-z0-9_]+?)_(?P<preset>[a-z0-9]+)\.yaml$")


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and reads ``1e-3`` as a number (as YAML 1.2 does)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if first != key_node.start_mark.line + 1:
                raise SpecError(f"duplicate key {key!r} (lines {first} and {key_node.start_mark.line + 1}); "
                                f"give each key once")
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def read_yaml(text: str) -> object:
    """``text`` read as strict YAML; a :class:`SpecError` naming the line when it is not YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SpecError(f"not valid YAML: {first}{where}") from None


def _files(folder: str) -> dict[tuple[str, str], Path]:
    root = resources.files("archscale").joinpath(*folder.split("/"))
    found = {}
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found[(match["experiment"], match["preset"])] = Path(str(entry))
    return found


def _order(names: set[str]) -> list[str]:
    return [p for p in PRESET_ORDER if p in names] + sorted(names - set(PRESET_ORDER))


def preset_names(experiment: str | None = None, folder: str | None = None) -> list[str]:
    """The presets that exist (for ``experiment``, or for any), in :data:`PRESET_ORDER`."""
    folders = FOLDERS if folder is None else (folder,)
    return _order({p for f in folders for (e, p) in _files(f) if experiment is None or e == experiment})


def experiments_with(folder: str) -> list[str]:
    """The experiments that have preset files in ``folder``."""
    return sorted({e for e, _ in _files(folder)})


def preset_path(experiment: str, preset: str, folder: str) -> Path:
    """The file of ``experiment``'s ``preset`` in ``folder``; a one-line error listing what exists."""
    files = _files(folder)
    if (experiment, preset) not in files:
        have = preset_names(experiment, folder)
        if not have:
            raise SpecError(f"no presets for {experiment!r}; experiments with presets: "
                            f"{', '.join(experiments_with(folder))}")
        raise SpecError(f"{experiment!r} has no preset {preset!r}; accepted: {', '.join(have)}")
    return files[(experiment, preset)]


def _expand(value: object) -> object:
    import numpy as np

    if isinstance(value, dict) and len(value) == 1:
        (kind, args), = value.items()
        if kind in ("geomspace", "linspace") and isinstance(args, list) and len(args) == 3:
            return getattr(np, kind)(float(args[0]), float(args[1]), int(args[2]))
        if kind == "powers_of_2" and isinstance(args, list) and len(args) == 2:
            return [2.0 ** k for k in range(int(args[0]), int(args[1]) + 1)]
        if kind == "range" and isinstance(args, list) and len(args) == 2:
            return list(range(int(args[0]), int(args[1])))
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def load_settings(experiment: str, preset: str) -> dict:
    """An experiment's settings at ``preset`` from ``archscale/experiments/presets/``, grids expanded."""
    path = preset_path(experiment, preset, "experiments/presets")
    raw = read_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise SpecError(f"preset file {path.name} must hold a mapping of name: value")
    return cast(dict, _expand(raw))  # a mapping expands to a mapping


def settings_with(experiment: str, preset: str, overrides: dict, seed: int = 0) -> dict:
    """:func:`load_settings` with ``overrides`` replacing settings by name (an unknown name is refused)
    and the ``seeds`` setting, where there is one, shifted by ``seed`` (``seed + s``)."""
    s = load_settings(experiment, preset)
    unknown = sorted(set(overrides) - set(s))
    if unknown:
        raise SpecError(f"unknown {experiment} setting(s) {', '.join(unknown)}; accepted: {', '.join(s)}")
    s = {**s, **overrides}
    if "seeds" in s:
        s["seeds"] = [int(seed) + int(x) for x in s["seeds"]]
    return s
