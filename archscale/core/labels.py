"""Short labels for long graph codes (no torch): what progress bars, tables and figure legends show."""

from __future__ import annotations

__all__ = ["MAX_CODE", "short_code"]

#: Longest graph code shown whole.
MAX_CODE = 24


def short_code(code: str, width: int = MAX_CODE) -> str:
    """``code`` itself, or its first groups and the vertex count when it is longer than ``width``."""
    code = str(code)
    if len(code) <= width:
        return code
    groups = code.split("_")
    head: list[str] = []
    for g in groups:
        if len("_".join([*head, g])) > width - 2:
            break
        head.append(g)
    return f"{'_'.join(head)}_… ({len(groups) + 1} vertices)"
