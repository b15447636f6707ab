"""The package's layering: pure math at the bottom, presentation at the top, nothing imports upward.

Every ``import`` in ``archscale/`` (module level or inside a function) is read with ``ast``; a
module may import only modules of a lower layer, or of its own layer inside its own package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archscale"

#: Layers from the bottom: each is a folder of ``archscale/`` (or one of the few modules at its top).
#: A module may import only lower layers, or its own folder.
LAYERS: list[set[str]] = [
    {"core", "frontend"},        # pure math, no torch; where the code runs (imports nothing)
    {"data"},                    # datasets
    {"nn"},                      # networks from a Dag, the one traversal, MKL's reproducible mode
    {"train"},                   # the batched replica engine
    {"runs"},                    # the results store and where chunks train (process, workers, Ray)
    {"module"},                  # any nn.Module: capture, plan/apply, vmap sweeps
    {"analysis"},                # reading results: the maximal LR, agreement, laws scored
    {"sweep", "probe", "stats", "nas"},
    {"plots"},
    {"experiments"},             # one module per paper experiment or question (and archscale check)
    {"notebook"},                # explorer, widgets, papermill reproduction
    {"cli", ""},                 # "" is the package's own __init__
    {"__main__"},
]
#: Folders (and modules) that must never import torch: the pure core the command line's lr/paths load.
NO_TORCH = {"core", "frontend", "runs.store", "analysis", "stats"}
#: The modules allowed directly under ``archscale/`` besides ``__init__`` and ``__main__``.
TOP_MODULES = {"data", "frontend"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(archscale modules imported, third-party top-level packages imported) by one file."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:
                ours.update(f"{target}.{a.name}".strip(".") for a in node.names)
            else:
                ours.add(target)
        elif isinstance(node, ast.ImportFrom):
            theirs.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            theirs.update(a.name.split(".")[0] for a in node.names)
    return ours, theirs


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer or module in layer:
            return i
    raise AssertionError(f"archscale.{module} is in no layer of tests/test_layering.py: place it")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_name(p) or "__init__" for p in MODULES])
def test_nothing_imports_upward(path):
    name = _name(path)
    mine = _layer(name)
    for target in _imports(path)[0]:
        theirs = _layer(target)
        same_package = target.split(".")[0] == name.split(".")[0]
        assert theirs < mine or (theirs == mine and same_package), \
            f"archscale.{name} (layer {mine}) imports archscale.{target} (layer {theirs}): upward or sideways"


CORE = [p for p in MODULES if _name(p).split(".")[0] in NO_TORCH or _name(p) in NO_TORCH]


@pytest.mark.parametrize("path", CORE, ids=[_name(p) for p in CORE])
def test_the_core_imports_no_torch_and_no_notebook_extra(path):
    _, theirs = _imports(path)
    banned = {"torch", "ipywidgets", "papermill", "seaborn"}
    if _name(path) != "core.derivations":
        banned.add("sympy")  # derivations imports it inside the functions that derive
    assert not theirs & banned, f"archscale.{_name(path)} imports {sorted(theirs & banned)}"


def test_no_import_cycles():
    graph = {_name(p): {t for t in _imports(p)[0] if t} for p in MODULES}
    modules = set(graph)

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    edges = {m: {r for t in ts if (r := resolve(t)) and r != m} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in edges[m]:
            if n.startswith(m + ".") or m == "":  # a package importing its own submodules
                continue
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, n]))
            if n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [])


def test_the_largest_module_holds_one_idea():
    sizes = {_name(p): len(p.read_text().splitlines()) for p in MODULES}
    big = {m: n for m, n in sizes.items() if n > 600}
    assert not big, f"modules past ~500 lines (split them by job): {big}"


def test_the_top_of_the_package_is_folders():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == TOP_MODULES, f"modules directly under archscale/: {sorted(top)}; put them in a layer folder"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    placed = set().union(*LAYERS)
    assert folders <= placed, f"folders in no layer: {sorted(folders - placed)}"
    plural = {f for f in folders if f.endswith("s") and f[:-1] in folders}
    assert not plural, f"names that differ only by a plural: {sorted(plural)}"


def test_the_top_level_names_are_listed_and_resolve():
    import archscale

    assert "apply" in dir(archscale) and set(archscale.__all__) <= set(dir(archscale))
    assert set(archscale._LAZY) <= set(archscale.__all__)
    for name in archscale.__all__:
        assert getattr(archscale, name) is not None, name
