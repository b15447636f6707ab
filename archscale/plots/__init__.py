"""Figure functions, by topic: ``plots.dags``, ``plots.sweeps``, ``plots.maximal_update``, ``plots.nas``,
``plots.law_scores``.

Every figure is saved through :func:`save_figure` as PNG and PDF with a stable name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import ArchscaleError

__all__ = ["FIGURES_ENV", "FIGURE_METADATA", "default_figures_dir", "figure_titles", "fixed_jitter",
           "save_figure", "use_style"]

#: Environment variable that redirects figures (tests point it at a temporary folder).
FIGURES_ENV = "ARCHSCALE_FIGURES_DIR"


def default_figures_dir() -> Path:
    """``$ARCHSCALE_FIGURES_DIR`` if set, else ``figures/`` in the current directory."""
    return Path(os.environ.get(FIGURES_ENV, "figures"))


def use_style() -> None:
    """The house style: seaborn whitegrid, readable fonts, tight layout.

    In a headless kernel (papermill, ``archscale reproduce``) it also switches ``tqdm.auto`` to
    text bars, so executed notebooks keep progress bars that end at 100%
    (:func:`archscale.frontend.text_progress_when_headless`).
    """
    import matplotlib as mpl
    import seaborn as sns

    from ..frontend import text_progress_when_headless

    text_progress_when_headless()

    sns.set_theme(style="whitegrid", context="notebook")
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "figure.constrained_layout.use": True})


#: Metadata written into every figure: nothing that changes between runs (no dates, no versions),
#: so re-running a notebook with unchanged inputs rewrites byte-identical files.
FIGURE_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "pdf": {"Creator": "archscale", "Producer": None, "CreationDate": None, "ModDate": None},
}


def figure_titles(fig) -> str:
    """Every title of ``fig`` (the suptitle, then each axes' titles), one per line."""
    titles = [fig.get_suptitle()]
    for ax in fig.axes:
        titles += [ax.get_title(loc) for loc in ("left", "center", "right")]
    return "\n".join(t for t in titles if t)


def save_figure(fig, name: str, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``; return both paths.

    Files carry only :data:`FIGURE_METADATA` and the figure's titles (:func:`figure_titles`, as the
    PNG's and the PDF's ``Title``, where a test can read what the figure claims), so an unchanged
    figure is rewritten byte for byte and leaves ``git status`` clean.
    """
    if not name or Path(name).name != name or name.endswith((".png", ".pdf")):
        raise ArchscaleError(f"figure name must be a bare stem like 'fig5_mlp_depth', got {name!r}")
    out = Path(out_dir) if out_dir is not None else default_figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    titles = figure_titles(fig)
    for path in paths:
        fig.savefig(path, metadata={**FIGURE_METADATA[path.suffix[1:]], "Title": titles or None})
    return paths


@contextmanager
def fixed_jitter(seed: int = 0) -> Iterator[None]:
    """Seed numpy's global generator for the block and restore it after.

    seaborn's ``stripplot`` jitters points with ``np.random`` and takes no seed; inside this
    block its figure is the same on every run.
    """
    import numpy as np

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
