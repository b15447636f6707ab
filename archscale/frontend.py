"""Where the code runs: a live Jupyter frontend, or a headless kernel (papermill, nbclient, CI).

Widgets draw live only in a frontend and fall back to static output elsewhere; headless kernels
get plain-text progress bars, which end at 100% in an executed notebook (widget bars keep their
first frame). ``$ARCHSCALE_STATIC_WIDGETS`` = ``1``/``0`` overrides the guess.
"""

from __future__ import annotations

import os

__all__ = ["STATIC_ENV", "has_frontend", "text_progress_when_headless"]  # and HeadlessBar, built lazily

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
    """In a headless kernel (papermill, nbclient), make ``tqdm.auto`` bars print one final line.

    Widget bars keep their first frame (0%) in an executed notebook's text and text bars leave a
    redraw per interval, with rates and times that change from run to run. A headless bar draws
    nothing while it runs and, when it closes, prints ``desc: n/total unit`` on one line (none
    with ``leave=False``): what the cell did, the same on every rerun. Warnings print as
    ``Category: message``, without the path of the file that raised them. Returns whether it
    switched (never in a live frontend or outside a kernel's headless run).
    """
    from IPython import get_ipython

    if has_frontend() or get_ipython() is None:
        return False
    import tqdm.auto

    bar = __getattr__("HeadlessBar")
    tqdm.auto.tqdm = bar
    tqdm.auto.trange = lambda *args, **kwargs: bar(range(*args), **kwargs)
    import warnings

    warnings.formatwarning = _warning_line  # no file paths: where the clone sits is not the message
    return True


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}\n"


def _headless_bar_class():
    import io
    import sys

    from tqdm.asyncio import tqdm_asyncio

    class _HeadlessBar(tqdm_asyncio):
        """A tqdm that draws nothing while it runs and prints one summary line when it closes."""

        headless = True  # what it prints is the same on every rerun: callers leave out wall times too

        def __init__(self, *args, **kwargs):
            self._final_file = kwargs.pop("file", None)
            kwargs["file"] = io.StringIO()
            kwargs["mininterval"] = float("inf")
            super().__init__(*args, **kwargs)

        def close(self):
            if self.disable or getattr(self, "_summarized", False) or not self.leave:
                return super().close()
            self._summarized = True
            n, total = self.n, self.total
            unit = self.unit.strip()
            count = self.format_sizeof(n) if self.unit_scale else str(n)
            if total is not None:
                count += "/" + (self.format_sizeof(total) if self.unit_scale else str(total))
            desc = f"{self.desc}: " if self.desc else ""
            super().close()
            print(f"{desc}{count} {unit}".rstrip(), file=self._final_file or sys.stderr, flush=True)

    return _HeadlessBar


def __getattr__(name: str):
    if name == "HeadlessBar":  # built on first use: tqdm is imported only when a bar is needed
        globals()["HeadlessBar"] = _headless_bar_class()
        return globals()["HeadlessBar"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
