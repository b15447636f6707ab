"""One-shot GPU check: the CUDA benchmark, the CUDA tests and the full-preset depth and CNN sweeps.

Run it on a machine with a GPU (``make gpu-check``; about 8 minutes on one H100 is the budget it
is sized for). It writes a results folder (default ``gpu_check/``):

    environment.json   device name, CUDA and torch versions, archscale's version and git commit
    benchmark.txt      benchmarks/sweep_throughput.py on the device (its speedup line last)
    tests.txt          the CUDA tests (pytest -k cuda)
    runs/<spec>/       the sweeps' crash-safe results (resumable: a second call only reloads)
    <spec>.json        `archscale maxlr`'s report of each sweep (metrics with intervals, n)
    fig_gpu_<spec>.png/.pdf  each sweep's paper-style figure
    summary.json, summary.md   every step's status and wall time

The sweeps are the bundled ``mlp_depth_full`` and ``cnn_kernel_topology_full`` specs, on the
embedded 28x28 MNIST digits unless ``--data-dir`` holds CIFAR-10 (then on CIFAR-10, as the specs
say). ``--preset smoke --device cpu`` runs the same plumbing in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ("mlp_depth", "cnn_kernel_topology")


def _run(cmd: list[str], log: Path, timeout: float) -> tuple[str, float]:
    """Run ``cmd`` from the repository root with its output in ``log``; (status, seconds)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        log.write_text(proc.stdout + proc.stderr)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired as err:
        log.write_text(f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {timeout:.0f} s\n")
        status = f"timed out after {timeout:.0f} s"
    return status, time.perf_counter() - start


def environment(device: str) -> dict:
    import torch

    import archscale

    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    commit = git.stdout.strip()
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
            "device_kind": device, "cuda": torch.version.cuda if cuda else None, "torch": torch.__version__,
            "python": platform.python_version(), "archscale": archscale.__version__, "commit": commit or None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def sweep(name: str, preset: str, device: str, data_dir: str | None, out: Path) -> dict:
    """One bundled sweep on the device, its maxlr report and its figure."""
    from archscale.experiments.maxlr import run_experiment
    from archscale.plots import save_figure, use_style

    use_style()
    dataset = "cifar10" if data_dir else "mnist"
    exp = run_experiment(name, preset, dataset=dataset, data_dir=data_dir, device=device,
                         runs_dir=out / "runs")
    comp = next(iter(exp.comparisons.values()))
    (out / f"{name}_{preset}.json").write_text(json.dumps(comp.to_dict(), indent=1))
    facet = {"facet": "kernel_size", "hue_in_comparison": "kernel_size"} if exp.spec.arch == "cnn" else {}
    fig = exp.figure(f"{name}_{preset} on {dataset} ({device})", **facet)
    save_figure(fig, f"fig_gpu_{name}_{preset}", out)
    return {"rows": len(exp.results), "headline": comp.headline(), "dataset": dataset}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--preset", default="full", choices=("full", "quick", "smoke"),
                   help="sweep preset (default full; smoke checks the plumbing in seconds)")
    p.add_argument("--out", default="gpu_check", help="results folder (default gpu_check/)")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 location; without it the sweeps use mnist")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    p.add_argument("--skip-tests", action="store_true", help="leave out the pytest step")
    p.add_argument("--skip-benchmark", action="store_true", help="leave out the throughput benchmark")
    args = p.parse_args(argv)
    out = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    steps: dict[str, dict] = {}
    env = environment(args.device)
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    print(f"gpu check on {env['device']} (torch {env['torch']}, CUDA {env['cuda']}) -> {out}")

    def left() -> float:
        return max(30.0, args.budget - (time.perf_counter() - start))

    if not args.skip_benchmark:
        status, secs = _run([sys.executable, "benchmarks/sweep_throughput.py", "--device", args.device],
                            out / "benchmark.txt", min(120.0, left()))
        steps["benchmark"] = {"status": status, "seconds": round(secs, 1)}
    if not args.skip_tests:
        status, secs = _run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-m", "not notebook",
                             "tests/"], out / "tests.txt", min(120.0, left()))
        steps["cuda tests"] = {"status": status, "seconds": round(secs, 1)}
    for name in SWEEPS:
        t0 = time.perf_counter()
        try:
            info = sweep(name, args.preset, args.device, args.data_dir, out)
            steps[f"sweep {name}"] = {"status": "ok", **info}
        except Exception as err:  # report every step, keep going
            steps[f"sweep {name}"] = {"status": f"failed: {type(err).__name__}: {err}"}
        steps[f"sweep {name}"]["seconds"] = round(time.perf_counter() - t0, 1)
    total = time.perf_counter() - start
    summary = {"environment": env, "steps": steps, "total_seconds": round(total, 1),
               "budget_seconds": args.budget}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# GPU check: {env['device']}", "", f"torch {env['torch']}, CUDA {env['cuda']}, archscale "
             f"{env['archscale']} at {env['commit']}, {env['date']}", "",
             "| step | status | seconds | result |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['status']} | {v['seconds']} | {v.get('headline', '')} |" for k, v in steps.items()]
    lines += ["", f"total {total:.0f} s of a {args.budget:.0f} s budget"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(v["status"] == "ok" for v in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
