"""The batched trainer: many (graph, learning rate, seed) replicas trained as one computation.

Replicas in one call share a model spec (graph, width, kernel, activation, layout, init) and
differ in learning rate and seed. Each replica is a real :class:`~archscale.models.DagMLP` or
:class:`~archscale.models.DagCNN` (so its initialization is exactly archscale's, drawn after
``torch.manual_seed(seed)``); the trainer stacks their weights along a leading replica axis and
runs a functional forward that mirrors ``DagNet.forward``: batched matmuls for MLPs, grouped
convolutions (``groups=R``) for CNNs. Each replica draws its minibatch order from its own seed
(:func:`minibatch_schedule`), so a replica trained in a batch follows the same trajectory as the
same model trained alone with ``torch.optim.SGD``.

A replica whose minibatch loss turns NaN or infinite is marked diverged, gets learning rate 0,
and is dropped from the stack; its values never enter another replica's computation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import validate
from .dag import Dag
from .data import Dataset
from .errors import ArchscaleError
from .models import ACTIVATIONS, INIT_SCHEMES, LAYOUTS, READOUTS, DagCNN, DagMLP, DagNet

__all__ = [
    "ARCHS",
    "LOSSES",
    "ModelSpec",
    "TrainConfig",
    "TrainResult",
    "auto_chunk_size",
    "grid",
    "minibatch_schedule",
    "replica_bytes",
    "resolve_device",
    "train_replicas",
]

ARCHS = ("mlp", "cnn")
LOSSES = ("ce", "mse")
_DATA_STREAM = 0x5EED  # separates the minibatch-order stream from other uses of a seed



def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchscaleError(f"{name} must be a positive integer, got {value!r}")
    return value


def _nonneg_float(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ArchscaleError(f"{name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise ArchscaleError(f"{name} must be a finite number >= 0, got {value!r}")
    return out


# ---------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ModelSpec:
    """What every replica of one batched run shares: the network, not the LR or the seed."""

    graph: str
    arch: str = "mlp"
    width: int = 128
    kernel_size: int = 3  # CNNs only
    act: str = "relu"
    layout: str = "paper"
    init: str = "archscale"
    readout: str = "mean_field"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ArchscaleError(f"unknown arch {self.arch!r}; accepted: {', '.join(ARCHS)}")
        _positive_int(self.width, "width")
        if self.arch == "cnn":
            try:
                validate.kernel_size(self.kernel_size)
            except ValueError as err:
                raise ArchscaleError(str(err)) from None
        for name, value, accepted in (("act", self.act, ACTIVATIONS), ("layout", self.layout, LAYOUTS),
                                      ("init", self.init, INIT_SCHEMES), ("readout", self.readout, READOUTS)):
            if value not in accepted:
                raise ArchscaleError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")
        dag = Dag.parse(self.graph, ops=self.arch)  # raises DagError for malformed codes
        dag.require_path()
        object.__setattr__(self, "graph", dag.code)

    @property
    def dag(self) -> Dag:
        return Dag.parse(self.graph, ops=self.arch)

    def build(self, in_shape: tuple, out_dim: int, seed: int) -> DagNet:
        """The replica's network, initialized after ``torch.manual_seed(seed)`` (global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            if self.arch == "mlp":
                return DagMLP(self.graph, math.prod(in_shape), self.width, out_dim, self.act,
                              layout=self.layout, init=self.init, readout=self.readout)
            if len(in_shape) != 3:
                raise ArchscaleError(f"a CNN needs image inputs (C, H, W), got in_shape {in_shape}; "
                                 f"load the dataset with flatten=False")
            return DagCNN(self.graph, in_shape[0], self.width, out_dim, self.kernel_size, self.act,
                          layout=self.layout, init=self.init, readout=self.readout)


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer and schedule shared by every replica (torch.optim.SGD semantics).

    Training runs ``steps`` minibatch steps when given, else ``epochs`` passes over the data
    (``ceil(n_train / batch_size)`` steps each, the last batch of an epoch possibly smaller).
    ``cosine`` decays each replica's LR per step as ``lr * (1 + cos(pi * t / T)) / 2``.
    """

    steps: int | None = None
    epochs: int = 1
    batch_size: int = 128
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    cosine: bool = False
    loss: str = "ce"
    eval_batch_size: int = 1024

    def __post_init__(self):
        if self.steps is not None:
            _positive_int(self.steps, "steps")
        _positive_int(self.epochs, "epochs")
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.eval_batch_size, "eval_batch_size")
        momentum = _nonneg_float(self.momentum, "momentum")
        if momentum >= 1:
            raise ArchscaleError(f"momentum must be in [0, 1), got {self.momentum!r}")
        _nonneg_float(self.weight_decay, "weight_decay")
        if self.nesterov and momentum == 0:
            raise ArchscaleError("nesterov needs momentum > 0 (as in torch.optim.SGD)")
        if self.loss not in LOSSES:
            raise ArchscaleError(f"unknown loss {self.loss!r}; accepted: {', '.join(LOSSES)}")

    def steps_per_epoch(self, n_train: int) -> int:
        return -(-n_train // self.batch_size)

    def total_steps(self, n_train: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(n_train)

    def lr_factor(self, step: int, total: int) -> float:
        """Schedule multiplier of the LR at ``step`` (0-based) of ``total``."""
        return 0.5 * (1.0 + math.cos(math.pi * step / total)) if self.cosine else 1.0


def minibatch_schedule(n_train: int, batch_size: int, seed: int, total_steps: int) -> Iterator[np.ndarray]:
    """Sample indices of each step for a replica with ``seed``: a fresh permutation every epoch.

    The order depends only on ``(seed, epoch)``, so a batched replica and the same model trained
    alone see identical minibatches.
    """
    per_epoch = -(-n_train // batch_size)
    for step in range(total_steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            order = _epoch_order(n_train, seed, epoch)
        yield order[k * batch_size:(k + 1) * batch_size]


def _epoch_order(n_train: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([_DATA_STREAM, int(seed), int(epoch)]).permutation(n_train)


# ---------------------------------------------------------------------------------------- result
@dataclass
class TrainResult:
    """Per-replica outcome of :func:`train_replicas`, arrays indexed like the input replicas.

    ``train_loss`` is the mean minibatch loss over the last epoch (over all steps when training
    is shorter than an epoch): the reference code's training loss of an epoch, which defines the
    paper's maximal LR; like the reference's running average it weights each step by its batch
    size. ``train_loss_final`` is the loss on the whole training set after the last step.
    ``curves[t, r]`` is the minibatch loss of replica ``r`` at step ``t`` (NaN once diverged).
    ``steps`` counts the updates a replica received; ``diverged_step`` is -1 unless diverged.
    """

    model: ModelSpec
    lrs: np.ndarray
    seeds: np.ndarray
    train_loss: np.ndarray
    train_loss_final: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    steps: np.ndarray
    curves: np.ndarray
    wall_s: float = 0.0
    config: TrainConfig = field(default_factory=TrainConfig)

    def __len__(self) -> int:
        return len(self.lrs)

    def rows(self) -> list[dict]:
        """One tidy dict per replica (the sweep's result columns)."""
        m = self.model
        out = []
        for r in range(len(self.lrs)):
            out.append({
                "graph": m.graph, "arch": m.arch, "width": m.width,
                "kernel_size": m.kernel_size if m.arch == "cnn" else 0, "act": m.act,
                "lr": float(self.lrs[r]), "seed": int(self.seeds[r]),
                "train_loss": _num(self.train_loss[r]), "train_loss_final": _num(self.train_loss_final[r]),
                "test_loss": _num(self.test_loss[r]), "test_acc": _num(self.test_acc[r]),
                "diverged": bool(self.diverged[r]), "steps": int(self.steps[r]),
                "diverged_step": int(self.diverged_step[r]),
                "layout": m.layout, "init": m.init, "readout": m.readout,
            })
        return out


def _num(x: float) -> float:
    return float(x)


# ---------------------------------------------------------------------------------------- memory
def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` for ``device``, with a clear error when CUDA is asked for but missing."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ArchscaleError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchscaleError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ArchscaleError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def _counts(model: ModelSpec) -> tuple[int, int]:
    dag = model.dag
    n_param = sum(1 for e in dag.edges if e.is_parameterized)
    return n_param, len(dag.edges) + dag.n_vertices


def replica_bytes(model: ModelSpec, in_shape: tuple, out_dim: int, batch_size: int,
                  dtype: torch.dtype = torch.float32) -> int:
    """Rough upper estimate of the memory one replica needs for a training step."""
    item = torch.empty((), dtype=dtype).element_size()
    n_param, n_tensors = _counts(model)
    w = model.width
    if model.arch == "mlp":
        d_in = math.prod(in_shape)
        params = d_in * w + n_param * w * w + w * out_dim + (n_param + 1) * w + out_dim
        acts = batch_size * (w * (2 * n_tensors + 4) + d_in + out_dim)
    else:
        c, h, wd = in_shape
        k2 = model.kernel_size**2
        params = c * w * k2 + n_param * w * w * k2 + w * out_dim + (n_param + 1) * w + out_dim
        acts = batch_size * (w * h * wd * (2 * n_tensors + 4) + c * h * wd + out_dim)
    return int(item * (5 * params + 3 * acts))  # params+grad+momentum+temps; acts saved + grads


def _default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.6 * free)
    return 2 << 30


#: On the CPU, a chunk trains fastest when its estimated working set (:func:`replica_bytes`) is near
#: this size: smaller stacks pay Python overhead per step, larger ones spill the caches. Measured on
#: 2 cores for widths 64..512 at batch 32 and 128: 50-120 MB chunks were the fastest, e.g. 27
#: replicas of a width-128 MLP at batch 32 train 64 replicas a quarter faster than chunks of 9.
CPU_CACHE_BYTES = 96 << 20


def auto_chunk_size(model: ModelSpec, in_shape: tuple, out_dim: int, batch_size: int,
                    device: str | torch.device = "cpu", memory_budget: int | None = None,
                    max_replicas: int | None = None, dtype: torch.dtype = torch.float32) -> int:
    """Largest number of replicas whose training step fits ``memory_budget`` bytes (at least 1).

    The default budget is 2 GiB on the CPU and 60% of free GPU memory on CUDA. ``max_replicas``
    caps the result; by default the CPU cap keeps a chunk's working set near
    :data:`CPU_CACHE_BYTES` (between 4 and 64 replicas) and CUDA allows 4096.
    """
    dev = resolve_device(device)
    budget = _default_budget(dev) if memory_budget is None else int(memory_budget)
    per = replica_bytes(model, in_shape, out_dim, batch_size, dtype)
    if max_replicas is not None:
        cap = max_replicas
    elif dev.type == "cpu":
        cap = max(4, min(64, CPU_CACHE_BYTES // max(per, 1)))
    else:
        cap = 4096
    return max(1, min(cap, budget // max(per, 1)))


# ---------------------------------------------------------------------------------------- stacked net
class _Sgd:
    """torch.optim.SGD's update (weight decay, momentum, Nesterov) with one LR per replica."""

    def __init__(self, config: TrainConfig, n_params: int):
        self.momentum = float(config.momentum)
        self.weight_decay = float(config.weight_decay)
        self.nesterov = bool(config.nesterov)
        self.bufs: list[torch.Tensor | None] = [None] * n_params

    @property
    def plain(self) -> bool:
        """No state and no decay: the update is ``p -= lr * grad`` and can be fused."""
        return not self.momentum and not self.weight_decay

    @torch.no_grad()
    def update(self, i: int, p: torch.Tensor, g: torch.Tensor, lr_eff: torch.Tensor) -> None:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self.momentum:
            if self.bufs[i] is None:
                self.bufs[i] = g.clone()
            else:
                self.bufs[i].mul_(self.momentum).add_(g)
            g = g.add(self.bufs[i], alpha=self.momentum) if self.nesterov else self.bufs[i]
        p.addcmul_(g, lr_eff.view(-1, *[1] * (p.dim() - 1)), value=-1.0)

    def compact(self, keep: torch.Tensor) -> None:
        self.bufs = [b[keep] if b is not None else None for b in self.bufs]


class _Stack:
    """Stacked parameters of R replicas plus a functional forward mirroring ``DagNet.forward``.

    Trains with autograd; used for CNNs (grouped convolutions). Parameters are ordered stem
    weight, stem bias, (weight, bias) per parameterized edge in ``dag.edges`` order, readout.
    """

    def __init__(self, nets: list[DagNet], device: torch.device, dtype: torch.dtype):
        first = nets[0]
        self.cnn = isinstance(first, DagCNN)
        self.kernel = first.kernel_size if self.cnn else 0
        self.dag = first.dag
        self.preact = first.layout == "paper"
        self.act_name = first.act_name
        self.act = F.relu if first.act_name == "relu" else F.gelu
        self.edges = list(self.dag.edges)
        self.edge_slot: dict[tuple[int, int], int] = {}
        getters = [lambda n: n.stem.weight, lambda n: n.stem.bias]
        for e in self.edges:
            if e.is_parameterized:
                self.edge_slot[(e.src, e.dst)] = len(getters)
                getters.append(lambda n, e=e: n.edge_layer(e.src, e.dst).weight)
                getters.append(lambda n, e=e: n.edge_layer(e.src, e.dst).bias)
        getters += [lambda n: n.readout.weight, lambda n: n.readout.bias]
        self.params = [self._stack([get(n).detach() for n in nets], device, dtype) for get in getters]

    def _stack(self, tensors: list[torch.Tensor], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        t = torch.stack(tensors).to(device=device, dtype=dtype)
        return t.contiguous().requires_grad_(True)

    def compact(self, keep: torch.Tensor) -> None:
        self.params = [p.detach()[keep].requires_grad_(True) for p in self.params]

    def step(self, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, lr_base: torch.Tensor,
             active: torch.Tensor, sgd: _Sgd) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step of every replica; returns the minibatch losses and the updated active mask."""
        loss = _per_replica_loss(self.forward(x, self.params), y, config.loss)
        active = active & torch.isfinite(loss)
        # allow_unused: an edge into a vertex no path leaves gets no gradient (skipped, as by SGD)
        grads = torch.autograd.grad(torch.where(active, loss, 0.0).sum(), self.params, allow_unused=True)
        lr_eff = lr_base * active.to(lr_base.dtype)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is not None:
                sgd.update(i, p, g, lr_eff)
        return loss.detach(), active

    # -- layers
    def _linear(self, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # bmm then a bias add: baddbmm with a broadcast bias runs at half the GEMM speed on CPU
        return torch.bmm(h, w.transpose(1, 2)) + b.unsqueeze(1)

    def _conv(self, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r, o = w.shape[:2]
        return F.conv2d(h, w.reshape(r * o, *w.shape[2:]), b.reshape(r * o), padding=self.kernel // 2,
                        groups=r)

    def forward(self, x: torch.Tensor, params: list[torch.Tensor], shared: bool = False) -> torch.Tensor:
        """Logits ``(R, B, out)``; ``x`` is ``(R, B, ...)`` per replica or ``(B, ...)`` if ``shared``."""
        r = params[0].shape[0]
        layer = self._conv if self.cnn else self._linear
        w, b = params[0], params[1]
        if self.cnn:
            if shared:
                x = x.repeat(1, r, 1, 1)  # (B, R*C, H, W)
            else:
                x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
            h = self._conv(x, w, b)
        else:
            if shared:  # one GEMM for all replicas: (B, D) @ (D, R*width)
                bsz = x.shape[0]
                x = x.reshape(bsz, -1)
                h = torch.addmm(b.reshape(-1), x, w.reshape(-1, w.shape[-1]).t())
                h = h.view(bsz, r, -1).transpose(0, 1)
            else:
                h = self._linear(x.reshape(r, x.shape[1], -1), w, b)
        if not self.preact:
            h = self.act(h)
        nodes: list[torch.Tensor | None] = [h] + [None] * (self.dag.n_vertices - 1)
        acted: dict[int, torch.Tensor] = {}
        for e in self.edges:  # ordered by target, as in DagNet.forward
            src = nodes[e.src]
            if src is None:
                src = nodes[e.src] = torch.zeros_like(h)
            if e.is_parameterized:
                i = self.edge_slot[(e.src, e.dst)]
                if self.preact:
                    if e.src not in acted:
                        acted[e.src] = self.act(src)
                    out = layer(acted[e.src], params[i], params[i + 1])
                else:
                    out = self.act(layer(src, params[i], params[i + 1]))
            else:
                out = src
            nodes[e.dst] = out if nodes[e.dst] is None else nodes[e.dst] + out
        last = nodes[-1] if nodes[-1] is not None else torch.zeros_like(h)
        if self.preact:
            last = self.act(last)
        if self.cnn:
            pooled = last.mean(dim=(2, 3))  # (B, R*width)
            last = pooled.view(pooled.shape[0], r, -1).transpose(0, 1)
        return self._linear(last, params[-2], params[-1])


class _MlpStack(_Stack):
    """DAG MLP replicas with a hand-written backward pass (no autograd).

    Weights are stored transposed, ``(R, in, out)``, so every layer is one batched GEMM. With
    plain SGD the per-replica LR is folded into the output gradient, and each weight update is
    accumulated straight into the weights by the weight-gradient GEMM (``W.baddbmm_``): no
    gradient tensor is ever written, which roughly halves the time of a step on a CPU.
    """

    def _stack(self, tensors: list[torch.Tensor], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        t = torch.stack(tensors).to(device=device, dtype=dtype)
        return (t.transpose(1, 2) if t.dim() == 3 else t).contiguous()

    def compact(self, keep: torch.Tensor) -> None:
        self.params = [p[keep] for p in self.params]

    def _act_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.act_name == "relu":
            return torch.ops.aten.threshold_backward(grad, x, 0)
        return torch.ops.aten.gelu_backward(grad, x)

    @staticmethod
    def _lin(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(h, w).add_(b.unsqueeze(1))  # see _Stack._linear

    def _forward(self, x: torch.Tensor, params: list[torch.Tensor], shared: bool):
        r = params[0].shape[0]
        w, b = params[0], params[1]
        if shared:  # one GEMM for all replicas: (B, D) @ (D, R*width)
            bsz = x.shape[0]
            x = x.reshape(bsz, -1)
            u0 = torch.addmm(b.reshape(-1), x, w.transpose(0, 1).reshape(x.shape[1], -1))
            u0 = u0.view(bsz, r, -1).transpose(0, 1)
        else:
            x = x.reshape(r, x.shape[1], -1)
            u0 = self._lin(x, w, b)
        nodes: list[torch.Tensor | None] = [u0 if self.preact else self.act(u0)]
        nodes += [None] * (self.dag.n_vertices - 1)
        acted: dict[int, torch.Tensor] = {}
        pre: dict[tuple[int, int], torch.Tensor] = {}
        for e in self.edges:
            src = nodes[e.src]
            if src is None:
                src = nodes[e.src] = torch.zeros_like(nodes[0])
            if e.is_parameterized:
                i = self.edge_slot[(e.src, e.dst)]
                if self.preact:
                    if e.src not in acted:
                        acted[e.src] = self.act(src)
                    out = self._lin(acted[e.src], params[i], params[i + 1])
                else:
                    pre[(e.src, e.dst)] = u = self._lin(src, params[i], params[i + 1])
                    out = self.act(u)
            else:
                out = src
            nodes[e.dst] = out if nodes[e.dst] is None else nodes[e.dst] + out
        if nodes[-1] is None:
            nodes[-1] = torch.zeros_like(nodes[0])
        last = self.act(nodes[-1]) if self.preact else nodes[-1]
        logits = self._lin(last, params[-2], params[-1])
        return logits, (x, u0, nodes, acted, pre, last)

    def forward(self, x: torch.Tensor, params: list[torch.Tensor], shared: bool = False) -> torch.Tensor:
        return self._forward(x, params, shared)[0]

    def _vertex_grad(self, v: int, gn: list, gact: list, nodes: list) -> torch.Tensor | None:
        """Gradient at vertex ``v``, once every edge leaving it has been back-propagated."""
        if gact[v] is not None:  # paper layout: edges read act(z_v)
            g = self._act_backward(gact[v], nodes[v])
            gn[v] = g if gn[v] is None else gn[v] + g
            gact[v] = None
        return gn[v]

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, lr_base: torch.Tensor,
             active: torch.Tensor, sgd: _Sgd) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        logits, (x, u0, nodes, acted, pre, last) = self._forward(x, p, shared=False)
        r, b, o = logits.shape
        if config.loss == "ce":
            logp = torch.log_softmax(logits, dim=-1)
            target = y.unsqueeze(2)
            loss = -logp.gather(2, target).squeeze(2).mean(1)
            g = logp.exp_().scatter_add_(2, target, torch.full_like(target, -1, dtype=logp.dtype))
            g = g.div_(b)  # d loss / d logits = (softmax - onehot) / batch
        else:
            diff = logits - y
            loss = diff.pow(2).reshape(r, -1).mean(1)
            g = diff.mul_(2.0 / (b * o))
        active = active & torch.isfinite(loss)
        lr_eff = lr_base * active.to(lr_base.dtype)
        fused = sgd.plain
        scale = lr_eff if fused else active.to(g.dtype)
        g = torch.where(active.view(r, 1, 1), g * scale.view(r, 1, 1), 0.0)

        def update(i: int, inp: torch.Tensor, grad_out: torch.Tensor) -> None:
            if fused:  # grad_out already carries -lr: accumulate the step into the weights
                p[i].baddbmm_(inp.transpose(1, 2), grad_out, alpha=-1.0)
                p[i + 1].sub_(grad_out.sum(1))
            else:
                sgd.update(i, p[i], torch.bmm(inp.transpose(1, 2), grad_out), lr_eff)
                sgd.update(i + 1, p[i + 1], grad_out.sum(1), lr_eff)

        n = self.dag.n_vertices
        gn: list[torch.Tensor | None] = [None] * n
        gact: list[torch.Tensor | None] = [None] * n
        g_last = torch.bmm(g, p[-2].transpose(1, 2))  # before the readout moves
        update(len(p) - 2, last, g)
        if self.preact:
            gact[n - 1] = g_last
        else:
            gn[n - 1] = g_last
        for e in reversed(self.edges):  # every edge leaving a vertex comes before those entering it
            gd = self._vertex_grad(e.dst, gn, gact, nodes)
            if gd is None:  # the target reaches no output: no gradient, no update (as in SGD)
                continue
            if e.is_parameterized:
                i = self.edge_slot[(e.src, e.dst)]
                if self.preact:
                    ga = torch.bmm(gd, p[i].transpose(1, 2))
                    update(i, acted[e.src], gd)
                    gact[e.src] = ga if gact[e.src] is None else gact[e.src] + ga
                else:
                    gu = self._act_backward(gd, pre[(e.src, e.dst)])
                    ga = torch.bmm(gu, p[i].transpose(1, 2))
                    update(i, nodes[e.src], gu)
                    gn[e.src] = ga if gn[e.src] is None else gn[e.src] + ga
            else:
                gn[e.src] = gd if gn[e.src] is None else gn[e.src] + gd
        g0 = self._vertex_grad(0, gn, gact, nodes)
        if g0 is not None:
            update(0, x, g0 if self.preact else self._act_backward(g0, u0))
        return loss, active


def _per_replica_loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean loss over the batch for each replica: ``(R,)`` from logits ``(R, B, out)``."""
    r, b, o = logits.shape
    if kind == "ce":
        per_sample = F.cross_entropy(logits.reshape(r * b, o), y.reshape(r * b), reduction="none")
        return per_sample.view(r, b).mean(1)
    return (logits - y).pow(2).reshape(r, -1).mean(1)


# ---------------------------------------------------------------------------------------- training
def train_replicas(model: ModelSpec, lrs: Sequence[float], seeds: Sequence[int], data: Dataset,
                   config: TrainConfig | None = None, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, chunk_size: int | None = None,
                   memory_budget: int | None = None,
                   on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train one replica per ``(lrs[i], seeds[i])`` of ``model`` on ``data`` as stacked computations.

    Replicas are split into chunks that fit ``memory_budget`` (see :func:`auto_chunk_size`;
    ``chunk_size`` forces a size). ``on_step(n)`` is called after every step with the number of
    planned replica-steps it completes (diverged replicas included), for progress bars.
    Deterministic for a fixed device and thread count.
    """
    config = config or TrainConfig()
    dev = resolve_device(device)
    lrs_arr = np.asarray([float(x) for x in lrs], dtype=np.float64)
    seeds_arr = np.asarray([int(s) for s in seeds], dtype=np.int64)
    if len(lrs_arr) != len(seeds_arr):
        raise ArchscaleError(f"lrs and seeds must pair up, got {len(lrs_arr)} lrs and {len(seeds_arr)} seeds")
    if len(lrs_arr) == 0:
        raise ArchscaleError("no replicas to train: give at least one (lr, seed)")
    if not np.all(np.isfinite(lrs_arr)) or np.any(lrs_arr <= 0):
        raise ArchscaleError(f"learning rates must be positive and finite, got {lrs_arr.tolist()}")
    if config.loss == "ce" and data.task != "classification":
        raise ArchscaleError(f"loss 'ce' needs a classification dataset; "
                             f"{data.name!r} is {data.task}; use 'mse'")
    in_shape = tuple(data.x_train.shape[1:])
    if model.arch == "cnn" and len(in_shape) != 3:
        raise ArchscaleError(f"a CNN needs image inputs; load {data.name!r} with flatten=False")
    size = chunk_size or auto_chunk_size(model, in_shape, data.out_dim, config.batch_size, dev,
                                         memory_budget, dtype=dtype)
    _positive_int(size, "chunk_size")
    start = time.perf_counter()
    parts = []
    xs = _to_device(data, dev, dtype)
    n_chunks = -(-len(lrs_arr) // size)  # balanced chunks: 64 replicas at size 27 train as 22+21+21
    for part in np.array_split(np.arange(len(lrs_arr)), n_chunks):
        parts.append(_train_chunk(model, lrs_arr[part], seeds_arr[part], data, xs, config, dev, dtype,
                                  on_step))
    merged = {k: np.concatenate([p[k] for p in parts], axis=1 if k == "curves" else 0) for k in parts[0]}
    return TrainResult(model=model, lrs=lrs_arr, seeds=seeds_arr, wall_s=time.perf_counter() - start,
                       config=config, **merged)


def _to_device(data: Dataset, dev: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    ydtype = torch.int64 if data.task == "classification" else dtype
    return (data.x_train.to(dev, dtype), data.y_train.to(dev, ydtype),
            data.x_test.to(dev, dtype), data.y_test.to(dev, ydtype))


def _train_chunk(model: ModelSpec, lrs: np.ndarray, seeds: np.ndarray, data: Dataset,
                 tensors: tuple[torch.Tensor, ...], config: TrainConfig, dev: torch.device,
                 dtype: torch.dtype, on_step: Callable[[int], None] | None) -> dict[str, np.ndarray]:
    x_train, y_train, x_test, y_test = tensors
    n, r_total = x_train.shape[0], len(lrs)
    in_shape = tuple(x_train.shape[1:])
    nets = [model.build(in_shape, data.out_dim, int(s)) for s in seeds]
    stack = (_MlpStack if model.arch == "mlp" else _Stack)(nets, dev, dtype)
    del nets
    sgd = _Sgd(config, len(stack.params))

    unique_seeds, seed_pos = np.unique(seeds, return_inverse=True)
    seed_pos_t = torch.as_tensor(seed_pos, device=dev)
    lr_t = torch.as_tensor(lrs, device=dev, dtype=dtype)
    alive = torch.arange(r_total, device=dev)  # original index of each row still in the stack
    active = torch.ones(r_total, dtype=torch.bool, device=dev)
    total = config.total_steps(n)
    per_epoch = config.steps_per_epoch(n)
    curves = torch.full((total, r_total), float("nan"), device=dev, dtype=dtype)
    diverged_step = torch.full((r_total,), -1, dtype=torch.int64, device=dev)
    check_every = 1 if dev.type == "cpu" else 16  # dropping diverged rows needs a host sync
    orders = None

    for t in range(total):
        epoch, k = divmod(t, per_epoch)
        if k == 0:
            orders = torch.as_tensor(np.stack([_epoch_order(n, int(s), epoch) for s in unique_seeds]),
                                     device=dev)
        idx = orders[:, k * config.batch_size:(k + 1) * config.batch_size][seed_pos_t]  # (R, b)
        was_active = active
        loss, active = stack.step(x_train[idx], y_train[idx], config, lr_t * config.lr_factor(t, total),
                                  active, sgd)
        diverged_step[alive] = torch.where(was_active & ~active, t, diverged_step[alive])
        curves[t, alive] = torch.where(active, loss, float("nan"))
        if on_step is not None:
            on_step(r_total)
        if (t + 1) % check_every == 0 or t + 1 == total:
            if not bool(active.all()):
                keep = active.nonzero().squeeze(1)
                if keep.numel() == 0:  # every replica diverged: nothing left to train
                    alive = alive[:0]
                    if on_step is not None and t + 1 < total:
                        on_step(r_total * (total - t - 1))
                    break
                stack.compact(keep)
                sgd.compact(keep)
                lr_t, seed_pos_t, alive, active = lr_t[keep], seed_pos_t[keep], alive[keep], active[keep]

    out = {
        "train_loss_final": np.full(r_total, np.nan),
        "test_loss": np.full(r_total, np.nan), "test_acc": np.full(r_total, np.nan),
    }
    if alive.numel():
        # replicas that diverged since the last check are still in the stack: skip them
        keep = active.nonzero().squeeze(1)
        params = [p.detach()[keep] for p in stack.params]
        alive = alive[keep]
        tr_loss, _ = _evaluate(stack, params, x_train, y_train, config, dev)
        te_loss, te_acc = _evaluate(stack, params, x_test, y_test, config, dev)
        idx_np = alive.cpu().numpy()
        out["train_loss_final"][idx_np] = tr_loss
        out["test_loss"][idx_np] = te_loss
        out["test_acc"][idx_np] = te_acc
    ds = diverged_step.cpu().numpy()
    curves_np = curves.cpu().numpy().astype(np.float64)
    bad_end = ~np.isfinite(out["train_loss_final"]) & (ds < 0)  # finite steps but a non-finite final loss
    ds[bad_end] = total
    diverged = ds >= 0
    for key in out:
        out[key][diverged] = np.nan
    window = np.arange(max(0, total - min(per_epoch, total)), total)
    sizes = np.minimum(config.batch_size, n - (window % per_epoch) * config.batch_size).astype(np.float64)
    avg = (curves_np[window] * sizes[:, None]).sum(axis=0) / sizes.sum()
    out["train_loss"] = np.where(diverged, np.nan, avg)
    out["diverged"] = diverged
    out["diverged_step"] = ds
    out["steps"] = np.where(diverged, ds, total).astype(np.int64)
    out["curves"] = curves_np
    return out


@torch.no_grad()
def _evaluate(stack: _Stack, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              config: TrainConfig, dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy (NaN for regression) of every stacked replica on ``(x, y)``."""
    r = params[0].shape[0]
    loss_sum = torch.zeros(r, dtype=torch.float64, device=dev)
    correct = torch.zeros(r, dtype=torch.float64, device=dev)
    bsz = max(1, min(config.eval_batch_size, config.batch_size * 4))
    for lo in range(0, x.shape[0], bsz):
        xb, yb = x[lo:lo + bsz], y[lo:lo + bsz]
        logits = stack.forward(xb, params, shared=True)
        yb_r = yb.unsqueeze(0).expand(r, *yb.shape)
        loss_sum += _per_replica_loss(logits, yb_r, config.loss).double() * xb.shape[0]
        if config.loss == "ce":
            correct += (logits.argmax(-1) == yb_r).sum(1).double()
    n = x.shape[0]
    acc = (correct / n).cpu().numpy() if config.loss == "ce" else np.full(r, np.nan)
    return (loss_sum / n).cpu().numpy(), acc


def grid(lrs: Sequence[float], seeds: Sequence[int]) -> tuple[list[float], list[int]]:
    """Every ``(lr, seed)`` pair, seeds outer: the paired lists :func:`train_replicas` takes."""
    pairs = [(float(lr), int(s)) for s in seeds for lr in lrs]
    return [p[0] for p in pairs], [p[1] for p in pairs]
