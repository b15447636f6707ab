"""The GPU check's plumbing, run on the CPU at the smoke preset (the real run needs a GPU)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_writes_its_results_folder(tmp_path):
    out = tmp_path / "check"
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--preset", "smoke",
           "--out", str(out), "--skip-tests", "--skip-benchmark"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["steps"]) == {"sweep mlp_depth", "sweep cnn_kernel_topology"}
    assert all(step["status"] == "ok" and step["seconds"] >= 0 for step in summary["steps"].values())
    env = json.loads((out / "environment.json").read_text())
    assert env["torch"] and env["device_kind"] == "cpu"
    for name in ("mlp_depth_smoke", "cnn_kernel_topology_smoke"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["base_excluded"] and report["n"] >= 1
        assert (out / f"fig_gpu_{name}.png").exists() and (out / f"fig_gpu_{name}.pdf").exists()
    assert "| sweep mlp_depth | ok |" in (out / "summary.md").read_text()
