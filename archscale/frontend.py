"""Where the code runs: a live Jupyter frontend, or a headless kernel (papermill, nbclient, CI).

Widgets draw live only in a frontend and fall back to static output elsewhere; headless kernels
get plain-text progress bars, which end at 100% in an executed notebook (widget bars keep their
first frame). ``$ARCHSCALE_STATIC_WIDGETS`` = ``1``/``0`` overrides the guess.
"""

from __future__ import annotations

import os

__all__ = ["STATIC_ENV", "has_frontend", "text_progress_when_headless"]

#: Set to ``1`` to force static output (``archscale reproduce`` and the notebook tests do), ``0``
#: to force live widgets.
STATIC_ENV = "ARCHSCALE_STATIC_WIDGETS"


def has_frontend() -> bool:
    """Whether live widgets can render here: a Jupyter kernel serving an interactive client.

    Headless executors (papermill, nbclient, ``nbconvert --execute``) send their execute requests
    with ``allow_stdin=False``, while JupyterLab, Notebook and VS Code allow input, so that flag
    tells them apart; Voila (which executes like nbclient) is recognised by its ``VOILA_*``
    variables. ``$ARCHSCALE_STATIC_WIDGETS`` = ``1``/``0`` overrides the guess.
    """
    forced = os.environ.get(STATIC_ENV, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None) if shell is not None else None
    if kernel is None:
        return False
    if forced in ("0", "false", "no") or any(k.startswith("VOILA_") for k in os.environ):
        return True
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        request = kernel.get_parent()
        return bool(request.get("content", {}).get("allow_stdin", True))
    except Exception:  # an ipykernel without get_parent: assume a frontend
        return True


def text_progress_when_headless() -> bool:
    """In a headless kernel (papermill, nbclient), make ``tqdm.auto`` draw plain-text bars.

    Widget bars keep their first frame (0%) in an executed notebook's text; text bars end at
    100%, redrawn at most every 10 s so the saved stream stays short. Returns whether it
    switched (never in a live frontend or outside a kernel's headless run).
    """
    from IPython import get_ipython

    if has_frontend() or get_ipython() is None:
        return False
    import tqdm.auto
    from tqdm.asyncio import tqdm_asyncio

    class HeadlessBar(tqdm_asyncio):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("mininterval", 10.0)
            super().__init__(*args, **kwargs)

    tqdm.auto.tqdm = HeadlessBar
    tqdm.auto.trange = lambda *args, **kwargs: HeadlessBar(range(*args), **kwargs)
    return True
