"""The determinism tests on every CPU kernel path this machine has, so a processor difference shows
up here and not first in CI.

Each path reruns every test marked ``determinism`` (bit-equality across chunks, threads, worker
processes, Ray and resumes) in a subprocess with ``ATEN_CPU_CAPABILITY`` forcing one of ATen's
kernel sets (``default``, ``avx2`` and, where the CPU has it, ``avx512``) and
``MKL_ENABLE_INSTRUCTIONS=AVX2`` forcing the code path MKL takes on AMD processors (the one on
which a lone matrix product is split among threads; see ``archscale/blas.py``). The suite itself
runs the same tests on the native path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
KERNEL_SETS = ("default", "avx2", "avx512")


def _native_kernel_set() -> str:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return out.stdout.strip().lower()


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_determinism_tests_pass_on_this_kernel_path(kernels):
    native = _native_kernel_set()
    if native not in KERNEL_SETS:
        pytest.skip(f"ATen's kernel sets here are not x86's ({native})")
    if KERNEL_SETS.index(kernels) > KERNEL_SETS.index(native):
        pytest.skip(f"this CPU's kernels go up to {native}")
    env = os.environ | {"ATEN_CPU_CAPABILITY": kernels, "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    # the kill-at-random-moments test (slow) checks the store, not arithmetic: any_cut covers resumes here
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "determinism and not slow",
           str(TESTS)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, cwd=TESTS.parent)
    path = f"ATEN_CPU_CAPABILITY={kernels} MKL_ENABLE_INSTRUCTIONS=AVX2"
    assert run.returncode == 0, f"{path}:\n{run.stdout[-6000:]}"
