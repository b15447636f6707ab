"""MKL's strict reproducible mode, so that a replica's numbers do not depend on threads or chunking.

On its AVX2 code path (every AMD processor, AVX-512 ones included, and Intel processors without
AVX-512) MKL shares a single matrix product among threads by splitting it in a way that rounds
differently: a replica trained alone with 2+ threads then differs from the same replica trained
in a chunk of several (measured: 1e-7 relative on one step, torch 2.13 with MKL 2024.2; seen on
any Intel machine by forcing that path with ``MKL_CBWR=AVX2``). MKL's conditional numerical
reproducibility in *strict* mode removes the dependence on the thread count; on the AVX-512 path
it changes no result (checked bit for bit on the products the engine runs).

The mode can only be chosen before MKL's first computation in the process, so archscale sets it
when its torch layer is imported (:func:`ensure_strict`). Setting ``MKL_CBWR`` yourself (for
example ``MKL_CBWR=AUTO,STRICT``) takes precedence. :func:`status` says what is in effect.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path

__all__ = ["ensure_strict", "status", "warn_if_not_strict"]

_BRANCH = 1  # MKL_CBWR_BRANCH: which code path
_STRICT = 0x10000  # MKL_CBWR_STRICT
_AUTO = 2  # MKL_CBWR_AUTO: the best path for this processor, the same on every run
_MODE_CHANGE_FAILURE = -8  # MKL had already computed something

_state: dict[str, object] = {}


def _mkl():
    """MKL's service functions inside torch's CPU library, or None (no MKL: another BLAS, no torch)."""
    if "lib" not in _state:
        lib = None
        try:
            import torch

            path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
            if path.exists() and torch.backends.mkl.is_available():
                handle = ctypes.CDLL(str(path))
                get, set_ = handle.mkl_serv_cbwr_get, handle.mkl_serv_cbwr_set
                get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
                set_.argtypes, set_.restype = [ctypes.c_int], ctypes.c_int
                lib = (get, set_)
        except (OSError, AttributeError, ImportError):
            lib = None
        _state["lib"] = lib
    return _state["lib"]


def ensure_strict() -> bool:
    """Switch MKL to strict reproducible mode if nothing has computed yet; True if it is in effect."""
    if "strict" in _state:
        return bool(_state["strict"])
    lib = _mkl()
    if lib is None:
        _state["strict"], _state["why"] = False, "torch is not linked against MKL"
        return False
    get, set_ = lib
    if "STRICT" in os.environ.get("MKL_CBWR", "").upper():
        _state["strict"], _state["why"] = True, f"MKL_CBWR={os.environ['MKL_CBWR']} (set by the user)"
        return True
    if os.environ.get("MKL_CBWR"):
        _state["strict"], _state["why"] = False, f"MKL_CBWR={os.environ['MKL_CBWR']} (set by the user)"
        return False
    code = set_(_AUTO | _STRICT)
    _state["strict"] = code == 0
    _state["why"] = ("set by archscale" if code == 0 else
                     "MKL had already run a computation in this process" if code == _MODE_CHANGE_FAILURE
                     else f"mkl_cbwr_set returned {code}")
    return bool(_state["strict"])


def status() -> str:
    """One line: whether MKL runs in strict reproducible mode, and why."""
    strict = ensure_strict()
    return f"MKL strict reproducible mode: {'on' if strict else 'off'} ({_state['why']})"


def warn_if_not_strict() -> None:
    """One warning per process when MKL is present but could not be put in strict mode."""
    if ensure_strict() or _mkl() is None or _state.get("warned"):
        return
    _state["warned"] = True
    warnings.warn(f"{status()}: on AMD and other AVX2-only processors a replica's numbers may then "
                  "depend on the thread count and on the replicas it shares a chunk with. Import "
                  "archscale before running any torch computation, or set MKL_CBWR=AUTO,STRICT "
                  "in the environment.", RuntimeWarning, stacklevel=3)


ensure_strict()
