"""Execute every notebook headless with papermill and regenerate the figures (``archscale reproduce``).

Each ``notebooks/NN_name.ipynb`` runs in its own kernel (cwd ``notebooks/``) with the parameters
``preset``, ``device``, ``figures_dir`` and ``runs_dir`` (plus ``dataset``/``data_dir`` when
given). The executed copy goes to ``papermill_runs/NN_name.ipynb`` (``NN_name.<preset>.ipynb`` for
presets other than ``quick``). A failing notebook is reported with the failing cell's source and
error, the others still run, and the result is a table: notebook, status, seconds, figures written.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ArchscaleError
from ..core.presets import preset_names
from ..frontend import STATIC_ENV

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEVICES", "PRESETS", "find_notebooks", "format_table", "normalize_executed", "reproduce",
           "run_notebook"]

#: Every preset some experiment has a file for (the notebooks pass it on to each one).
PRESETS = tuple(preset_names())
DEVICES = ("cpu", "cuda")
KERNEL_NAME = "python3"
#: Environment variable the widgets read to draw static figures instead of live widgets.



@dataclass
class NotebookResult:
    """What happened to one notebook."""

    notebook: str
    status: str  # "ok" | "failed"
    seconds: float
    figures: list[str]
    output: Path
    error: str | None = None
    cell_source: str | None = None
    cell_index: int | None = None


def find_notebooks(notebooks_dir: str | os.PathLike = "notebooks", only: str | None = None) -> list[Path]:
    """Source notebooks in reading order; ``only`` keeps names matching a regex or a glob.

    ``only="0[4-7]"`` or ``only="topology"`` (regex search in the file name) and
    ``only="*gelu*"`` (glob) all work; several patterns can be joined with commas.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise ArchscaleError(f"notebook folder {str(folder)!r} does not exist; run from the repository "
                             f"root or pass notebooks_dir")
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise ArchscaleError(f"no notebooks (*.ipynb) in {str(folder)!r}")
    if only is None or not only.strip():
        return notebooks
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [nb for nb in notebooks if any(_matches(nb.name, p) for p in patterns)]
    if not chosen:
        names = ", ".join(nb.stem for nb in notebooks)
        raise ArchscaleError(f"--only {only!r} matches no notebook; available: {names}")
    return chosen


def _matches(name: str, pattern: str) -> bool:
    if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(Path(name).stem, pattern):
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _output_name(notebook: Path, preset: str) -> str:
    return f"{notebook.stem}.ipynb" if preset == "quick" else f"{notebook.stem}.{preset}.ipynb"


def _snapshot(folder: Path) -> dict[Path, int]:
    if not folder.is_dir():
        return {}
    return {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def _written_figures(before: dict[Path, int], folder: Path) -> list[str]:
    """Figure files (PNG/PDF) in ``folder`` that are new or whose mtime changed since ``before``."""
    after = _snapshot(folder)
    changed = [p for p, m in after.items() if before.get(p) != m and p.suffix in (".png", ".pdf")]
    return sorted(p.name for p in changed)


def ensure_kernel(kernel_name: str = KERNEL_NAME) -> str:
    """Make sure a Jupyter kernel named ``kernel_name`` runs this interpreter; install it if missing.

    Returns a note for the user when the kernel found points at another Python (it still runs).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(kernel_name=kernel_name, prefix=sys.prefix)
        return f"installed Jupyter kernel {kernel_name!r} for {sys.executable}"
    exe = spec.argv[0] if spec.argv else ""
    if exe and exe not in ("python", "python3", "{python}"):
        try:
            same = Path(exe).resolve() == Path(sys.executable).resolve() or Path(exe).parent.resolve() == \
                Path(sys.executable).parent.resolve()
        except OSError:
            same = False
        if not same:
            return (f"note: kernel {kernel_name!r} runs {exe}, not {sys.executable}; if notebooks cannot "
                    f"import archscale run `make setup` (it registers this environment's kernel)")
    return ""


def _cell_source(output: Path, cell_index: int | None) -> str | None:
    """The source of cell ``cell_index`` in the executed notebook (papermill counts all cells)."""
    if cell_index is None or not output.exists():
        return None
    import nbformat

    try:
        nb = nbformat.read(output, as_version=4)
        return nb.cells[cell_index].source
    except (IndexError, OSError, ValueError):
        return None


#: Cell metadata that records when a run happened, not what it computed.
_VOLATILE_PAPERMILL = ("start_time", "end_time", "duration")


def normalize_executed(path: Path) -> None:
    """Drop the run's timestamps and durations from an executed notebook, so that a rerun with the
    same results writes the same bytes (papermill and the kernel stamp every cell, papermill gives
    its injected parameters cell a random id, and it records absolute paths: made relative to the
    working directory here)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    run = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):  # where the clone sits is not part of the result
        if run.get(key) and os.path.isabs(run[key]):
            run[key] = os.path.relpath(run[key])
    for meta in [nb.metadata] + [cell.metadata for cell in nb.cells]:
        for key in _VOLATILE_PAPERMILL:
            meta.get("papermill", {}).pop(key, None)
        meta.pop("execution", None)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
    nbformat.write(nb, path)


def run_notebook(notebook: Path, output: Path, parameters: dict, *, cwd: Path, figures_dir: Path,
                 progress: bool = True, timeout: float | None = None,
                 kernel_name: str = KERNEL_NAME) -> NotebookResult:
    """Execute one notebook with papermill and describe the outcome (never raises for cell errors)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    before = _snapshot(figures_dir)
    start = time.perf_counter()
    error = source = None
    index = None
    previous = os.environ.get(STATIC_ENV)
    os.environ[STATIC_ENV] = "1"  # the kernel inherits it: widgets draw static figures
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel_name,
                            cwd=str(cwd), progress_bar=progress, execution_timeout=timeout,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no kernel chatter
    except PapermillExecutionError as err:
        index = err.cell_index
        source = err.source or _cell_source(output, err.cell_index)
        error = f"{err.ename}: {err.evalue}"
    except Exception as err:  # kernel death, timeout, unreadable notebook: report, keep going
        error = f"{type(err).__name__}: {err}"
    finally:
        if previous is None:
            os.environ.pop(STATIC_ENV, None)
        else:
            os.environ[STATIC_ENV] = previous
    seconds = time.perf_counter() - start
    if output.exists():
        normalize_executed(output)
    return NotebookResult(notebook.stem, "ok" if error is None else "failed", seconds,
                          _written_figures(before, figures_dir), output, error, source, index)


def _figure_stems(names: list[str]) -> str:
    return ", ".join(dict.fromkeys(Path(n).stem for n in names)) or "-"


def _report_failure(result: NotebookResult, stream) -> None:
    bar = "-" * 78
    where = f" (cell {result.cell_index})" if result.cell_index is not None else ""
    print(f"\n{bar}\nFAILED: {result.notebook}{where}\n{bar}", file=stream)
    if result.cell_source:
        print(result.cell_source.rstrip(), file=stream)
        print(bar, file=stream)
    print(result.error, file=stream)
    print(f"executed copy with the traceback: {result.output}\n{bar}", file=stream)


def _evidence_param(notebook: Path, preset: str) -> dict:
    """``evidence_dir`` for a notebook that declares it, at the quick preset, in a source checkout:
    the package's evidence records (:mod:`archscale.core.evidence`) are regenerated from its run."""
    import papermill as pm

    from ..core.evidence import EVIDENCE_DIR

    repo = notebook.resolve().parent.parent
    if preset != "quick" or repo not in EVIDENCE_DIR.parents:
        return {}
    if "evidence_dir" not in pm.inspect_notebook(str(notebook)):
        return {}
    return {"evidence_dir": os.path.relpath(EVIDENCE_DIR, notebook.resolve().parent)}


def reproduce(preset: str = "quick", only: str | None = None, device: str = "cpu",
              notebooks_dir: str | os.PathLike = "notebooks",
              output_dir: str | os.PathLike = "papermill_runs",
              figures_dir: str | os.PathLike = "figures", runs_dir: str | os.PathLike = "runs", *,
              dataset: str | None = None, data_dir: str | None = None, seed: int | None = None,
              progress: bool = True, timeout: float | None = None, stream=None) -> pd.DataFrame:
    """Execute the notebooks in order and return the table (notebook, status, seconds, figures, ...).

    Notebooks that write the package's evidence records (at the quick preset, in a source checkout)
    run first, so that the plans the others print quote this run's evidence; the rest follow in
    reading order. The kernels start in ``notebooks_dir`` and get the figure and runs folders
    relative to it. Failures are printed to ``stream`` (stderr by default) with the failing cell's
    source and error.
    """
    if preset not in PRESETS:
        raise ArchscaleError(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
    if device not in DEVICES:
        raise ArchscaleError(f"unknown device {device!r}; accepted: {', '.join(DEVICES)}")
    import pandas as pd
    stream = sys.stderr if stream is None else stream
    notebooks = find_notebooks(notebooks_dir, only)
    nb_dir = Path(notebooks_dir).resolve()
    out_dir, fig_dir, run_dir = (Path(p).resolve() for p in (output_dir, figures_dir, runs_dir))
    for folder in (out_dir, fig_dir, run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    note = ensure_kernel()
    if note:
        print(note, file=stream)
    # relative to the notebooks' folder, the kernels' working directory: the executed copies then
    # read the same wherever the clone sits
    params: dict = {"preset": preset, "device": device, "figures_dir": os.path.relpath(fig_dir, nb_dir),
                    "runs_dir": os.path.relpath(run_dir, nb_dir)}
    if dataset is not None:
        params["dataset"] = dataset
    if data_dir is not None:
        params["data_dir"] = str(Path(data_dir).resolve())
    if seed is not None:
        params["seed"] = int(seed)

    from tqdm.auto import tqdm

    evidence = {nb: _evidence_param(nb, preset) for nb in notebooks}
    notebooks = sorted(notebooks, key=lambda nb: not evidence[nb])  # stable: reading order otherwise
    results: list[NotebookResult] = []
    bar = tqdm(notebooks, desc=f"reproduce ({preset}, {device})", unit="notebook", disable=not progress,
               file=stream)
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        own = {**params, **evidence[nb]}
        result = run_notebook(nb, out_dir / _output_name(nb, preset), own, cwd=nb_dir, figures_dir=fig_dir,
                              progress=progress, timeout=timeout)
        results.append(result)
        if result.status != "ok":
            _report_failure(result, stream)
    return pd.DataFrame([{
        "notebook": r.notebook, "status": r.status, "seconds": round(r.seconds, 1),
        "figures": _figure_stems(r.figures), "n_files": len(r.figures), "output": str(r.output),
        "error": r.error or "",
    } for r in results])


def format_table(table: pd.DataFrame) -> str:
    """The summary printed at the end: notebook, status, seconds, figures written."""
    shown = table[["notebook", "status", "seconds", "figures"]].rename(columns={"figures": "figures written"})
    total = f"\n{(table['status'] == 'ok').sum()}/{len(table)} notebooks passed in " \
            f"{table['seconds'].sum():.0f} s"
    return shown.to_string(index=False) + total
