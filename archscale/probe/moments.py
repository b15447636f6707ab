"""Forward second moments at every vertex (eq. 3): one model, over graphs and init schemes, over kernels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import validate
from ..core.dag import Dag
from ..core.errors import ArchscaleError
from ..core.scaling import second_moments
from ..nn.models import DagCNN, DagMLP

__all__ = ["forward_second_moments", "init_second_moments", "kernel_second_moments", "padding_coverage",
           "predicted_second_moments", "readout_input_moment"]


@torch.no_grad()
def forward_second_moments(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Mean of ``z**2`` at every DAG vertex of ``model`` on the batch ``x``.

    The in-degree initialization keeps these equal across vertices (paper eq. 3); entry ``v``
    is vertex ``v``'s value averaged over batch, units (and positions for CNNs).
    """
    was_training = model.training
    model.eval()
    try:
        _, nodes = model(x, return_nodes=True)
    finally:
        model.train(was_training)
    return np.array([float(node.double().pow(2).mean()) for node in nodes])


@torch.no_grad()
def readout_input_moment(model: nn.Module, x: torch.Tensor) -> float:
    """Mean square of what the readout layer receives (``model.readout``'s input) on the batch ``x``.

    In the paper layout that is ``act(z_last)``; in the reference layout the last vertex's sum of
    post-activations. It sets the size of the logits' first update, whatever the init promised
    about the vertices.
    """
    seen: list[torch.Tensor] = []
    handle = cast(nn.Module, model.readout).register_forward_hook(
        lambda module, args, out: seen.append(args[0]))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        handle.remove()
        model.train(was_training)
    return float(seen[0].double().pow(2).mean())


def predicted_second_moments(dag: Dag | str, init: str = "archscale") -> np.ndarray:
    """Per-vertex ``E[z_v^2] / E[z_0^2]`` at infinite width
    (:func:`~archscale.core.scaling.second_moments`)."""
    K = second_moments(dag, init)
    return np.array([float(K[v][v]) for v in range(len(K))])


def init_second_moments(
    codes: Iterable[str | Dag],
    inits: Sequence[str] = ("he", "source", "archscale"),
    layouts: Sequence[str] = ("paper",),
    *,
    width: int = 512,
    n_samples: int = 512,
    in_dim: int = 64,
    seeds: Sequence[int] = (0,),
    progress: bool = True,
) -> pd.DataFrame:
    """Measure ``E[z_v^2]`` at every vertex of freshly initialized ``DagMLP`` s on Gaussian inputs.

    Returns a tidy table (code, init, layout, seed, vertex, in_degree, second_moment, ratio,
    predicted): ``ratio`` is relative to vertex 0 and ``predicted`` is the infinite-width
    value of :func:`predicted_second_moments` (paper layout only; NaN otherwise).
    """
    from tqdm.auto import tqdm

    dags = [Dag.parse(c) if isinstance(c, str) else c for c in codes]
    for dag in dags:
        dag.require_path()
    jobs = [(dag, init, layout, seed) for dag in dags for init in inits for layout in layouts
            for seed in seeds]
    rows = []
    predicted_cache: dict[tuple[str, str], np.ndarray] = {}
    for dag, init, layout, seed in tqdm(jobs, desc="second moments", disable=not progress):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = torch.randn(n_samples, in_dim)
            model = DagMLP(dag, in_dim, width, 10, layout=layout, init=init)
            moments = forward_second_moments(model, x)
        if layout == "paper":
            key = (dag.code, init)
            if key not in predicted_cache:
                predicted_cache[key] = predicted_second_moments(dag, init)
            predicted = predicted_cache[key]
        else:
            predicted = np.full(dag.n_vertices, np.nan)
        for v, m in enumerate(moments):
            rows.append({"code": dag.code, "init": init, "layout": layout, "seed": seed, "vertex": v,
                         "in_degree": dag.live_in_degrees[v], "second_moment": m,
                         "ratio": m / moments[0], "predicted": predicted[v]})
    return pd.DataFrame(rows)


def padding_coverage(image_size: int, kernel_size: int) -> float:
    """Share of a ``q x q`` same-padded kernel's taps that land inside a square image, over all positions.

    With zero padding ``q // 2`` the taps past the border read zeros, so on small images a larger
    kernel sees a smaller share of real pixels: on 8x8 images 0.84 / 0.72 / 0.62 of the taps of
    3x3 / 5x5 / 7x7 kernels land inside, on 28x28 images 0.95 / 0.92 / 0.88.
    """
    n = validate.positive_int(image_size, "image size")
    q = validate.kernel_size(kernel_size)
    r = q // 2
    inside = sum(min(i + r, n - 1) - max(i - r, 0) + 1 for i in range(n))  # taps inside, per row
    return (inside / (n * q)) ** 2


def kernel_second_moments(codes: Iterable[str | Dag], kernel_sizes: Sequence[int], x: torch.Tensor, *,
                          width: int = 32, seeds: Sequence[int] = (0, 1), layout: str = "paper",
                          init: str = "archscale", readout: str = "mean_field") -> pd.DataFrame:
    """``E[z_v^2]`` at every vertex of fresh ``DagCNN`` s, per graph and kernel size, on the images ``x``.

    Eq. 9 assumes the kernel changes the one-step update, not the forward signal: this measures
    whether the signal stays flat across vertices for every ``q`` on these images (zero padding
    loses signal at the borders, :func:`padding_coverage`). Returns a tidy table (graph,
    kernel_size, seed, vertex, second_moment, ratio = relative to vertex 0, predicted = the
    infinite-width ratio of :func:`predicted_second_moments` for the paper layout, else NaN).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ArchscaleError(f"x must be a batch of images (N, C, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    rows = []
    for code in codes:
        dag = code if isinstance(code, Dag) else Dag.parse(code, ops="cnn")
        dag.require_path()
        predicted = (predicted_second_moments(dag, init) if layout == "paper"
                     else np.full(dag.n_vertices, np.nan))
        for q in kernel_sizes:
            for seed in seeds:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed))
                    model = DagCNN(dag, x.shape[1], width, 10, q, layout=layout, init=init, readout=readout)
                moments = forward_second_moments(model, x)
                rows += [{"graph": dag.code, "kernel_size": int(q), "seed": int(seed), "vertex": v,
                          "second_moment": m, "ratio": m / moments[0], "predicted": predicted[v]}
                         for v, m in enumerate(moments)]
    return pd.DataFrame(rows)
