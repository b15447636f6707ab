"""What every subcommand shares: the user-error type, the one-line parser, argument types."""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "Parser", "positive_int"]


class UsageError(Exception):
    """Raised inside a command for input the user must fix (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
