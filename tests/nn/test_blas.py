"""MKL's strict reproducible mode: set before anything computes, said once when it came too late."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from archscale.nn import blas

needs_mkl = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch without MKL")


@needs_mkl
@pytest.mark.determinism
def test_strict_mode_is_on_and_the_forced_kernels_are_the_ones_running():
    assert blas.ensure_strict(), blas.status()
    assert blas.status().startswith("MKL strict reproducible mode: on")
    forced = os.environ.get("ATEN_CPU_CAPABILITY")
    if forced:  # tests/test_cpu_paths.py reruns the determinism tests under each kernel set
        assert torch.backends.cpu.get_cpu_capability().lower() == forced.lower()


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          timeout=300)


TRAIN_TWICE = """
import torch
{before}
from archscale.data import load_dataset
from archscale.train import ModelSpec, TrainConfig, train_replicas
from archscale.nn import blas
data = load_dataset("digits", n_train=64, n_test=32)
for _ in range(2):
    train_replicas(ModelSpec("2", width=8), [0.1], [0], data, TrainConfig(steps=2, batch_size=16))
print(blas.status())
"""


@needs_mkl
def test_a_computation_before_archscale_is_said_once_with_what_to_do():
    late = _python(TRAIN_TWICE.format(before="torch.mm(torch.ones(64, 64), torch.ones(64, 64))"))
    assert late.returncode == 0, late.stderr
    assert "off (MKL had already run a computation in this process)" in late.stdout
    assert late.stderr.count("RuntimeWarning") == 1 and "MKL_CBWR=AUTO,STRICT" in late.stderr
    early = _python(TRAIN_TWICE.format(before=""))
    assert early.returncode == 0 and "on (set by archscale)" in early.stdout
    assert "RuntimeWarning" not in early.stderr


@needs_mkl
def test_the_users_own_setting_is_kept():
    strict = _python(TRAIN_TWICE.format(before=""), MKL_CBWR="AUTO,STRICT")
    assert "on (MKL_CBWR=AUTO,STRICT (set by the user))" in strict.stdout
    assert "RuntimeWarning" not in strict.stderr
    loose = _python(TRAIN_TWICE.format(before=""), MKL_CBWR="AUTO")
    assert "off (MKL_CBWR=AUTO (set by the user))" in loose.stdout
    assert loose.stderr.count("RuntimeWarning") == 1
