"""Figure functions, by topic: ``plots.dags``, ``plots.sweeps``, ``plots.mup``, ``plots.nas``.

Every figure is saved through :func:`save_figure` as PNG and PDF with a stable name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FIGURES_ENV", "default_figures_dir", "save_figure", "use_style"]

#: Environment variable that redirects figures (tests point it at a temporary folder).
FIGURES_ENV = "ARCHSCALE_FIGURES_DIR"


def default_figures_dir() -> Path:
    """``$ARCHSCALE_FIGURES_DIR`` if set, else ``figures/`` in the current directory."""
    return Path(os.environ.get(FIGURES_ENV, "figures"))


def use_style() -> None:
    """The house style: seaborn whitegrid, readable fonts, tight layout."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "figure.constrained_layout.use": True})


def save_figure(fig, name: str, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``; return both paths."""
    if not name or Path(name).name != name or name.endswith((".png", ".pdf")):
        raise ValueError(f"figure name must be a bare stem like 'fig5_mlp_depth', got {name!r}")
    out = Path(out_dir) if out_dir is not None else default_figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path)
    return paths
