"""Adam and AdamW in the replica engine: torch.optim's update per replica, chunking, determinism, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import assert_chunk_and_thread_free, train_alone
from torch_reference import torch_optimizer

from archscale.train import (
    ArchscaleError,
    ModelSpec,
    TrainConfig,
    auto_chunk_size,
    make_optimizer,
    minibatch_schedule,
    replica_bytes,
    train_replicas,
)

ADAM_CASES = [
    # arch, graph, layout, act, config
    ("mlp", "2_12_202", "paper", "relu", dict(optimizer="adam")),
    ("mlp", "2_12_202", "paper", "gelu", dict(optimizer="adam", weight_decay=1e-2, betas=(0.8, 0.99))),
    ("mlp", "2_02_112", "reference", "relu", dict(optimizer="adamw", weight_decay=0.1, cosine=True)),
    ("mlp", "2_20", "paper", "relu", dict(optimizer="adamw", betas=(0.5, 0.9), eps=1e-6)),  # a dead end
    ("mlp", "2_12", "paper", "relu", dict(optimizer="adamw")),  # no decay: AdamW is Adam
    ("cnn", "2_11", "paper", "relu", dict(optimizer="adamw", weight_decay=0.05, betas=(0.85, 0.98))),
]


@pytest.mark.parametrize("arch, graph, layout, act, extra", ADAM_CASES)
def test_one_replica_follows_torch_optim_adam_and_adamw(arch, graph, layout, act, extra, digits,
                                                        digit_images):
    data = digits if arch == "mlp" else digit_images
    spec = ModelSpec(graph, arch=arch, width=16, layout=layout, act=act)
    config = TrainConfig(steps=50, batch_size=32, **extra)
    lrs, seeds = [1e-3, 3e-3, 1e30, 1e-2], [0, 1, 2, 1]
    result = train_replicas(spec, lrs, seeds, data, config)
    assert result.diverged.tolist() == [False, False, True, False]
    for r in (1, 3):  # two replicas, different seeds and LRs, each against torch.optim alone
        alone, net = train_alone(spec, lrs[r], seeds[r], data, config)
        rel = np.abs(result.curves[:, r] - alone) / np.abs(alone)
        assert rel.max() < 1e-4, f"replica {r}: max relative loss difference {rel.max():.2e}"
        with torch.no_grad():
            final = torch.nn.functional.cross_entropy(net(data.x_train), data.y_train).item()
        assert result.train_loss_final[r] == pytest.approx(final, rel=1e-4)
    assert {row["optimizer"] for row in result.rows()} == {extra["optimizer"]}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_float64_adam_is_exact(optimizer, digits):
    spec = ModelSpec("2_12", width=16)
    config = TrainConfig(steps=50, batch_size=32, optimizer=optimizer, weight_decay=0.05, betas=(0.8, 0.95))
    result = train_replicas(spec, [1e-3, 5e-3], [0, 1], digits, config, dtype=torch.float64)
    alone, _ = train_alone(spec, 5e-3, 1, digits, config, dtype=torch.float64)
    np.testing.assert_allclose(result.curves[:, 1], alone, rtol=1e-9)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_optimizer_step_is_torch_optims_per_replica_and_compacts(optimizer):
    """The shared step itself, on stacked tensors: three replicas at three LRs against three torch
    optimizers, one replica dropped half-way (its state goes with it)."""
    config = TrainConfig(optimizer=optimizer, weight_decay=0.1, betas=(0.7, 0.95), eps=1e-7)
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 5)]
    stacked = [torch.randn(s, generator=gen) for s in shapes]
    lrs = torch.tensor([1e-3, 1e-2, 1e-1])
    alone = [[p[r].clone().requires_grad_(True) for p in stacked] for r in range(3)]
    refs = [torch_optimizer(ps, float(lr), config) for ps, lr in zip(alone, lrs.tolist())]
    opt = make_optimizer(config, len(stacked))
    rows = [0, 1, 2]
    for step in range(20):
        if step == 10:  # drop replica 1
            keep = torch.tensor([0, 2])
            opt.compact(keep)
            stacked = [p[keep] for p in stacked]
            lrs, rows = lrs[keep], [0, 2]
        grads = [torch.randn(p.shape, generator=gen) for p in stacked]
        for i, (p, g) in enumerate(zip(stacked, grads)):
            opt.update(i, p, g, lrs)
        for j, r in enumerate(rows):
            for p, g in zip(alone[r], grads):
                p.grad = g[j].clone()
            refs[r].step()
    for j, r in enumerate(rows):
        for p, ref in zip(stacked, alone[r]):
            torch.testing.assert_close(p[j], ref.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.determinism
@pytest.mark.parametrize("arch, kwargs, extra", [
    ("mlp", dict(graph="2_12_202"), dict(optimizer="adam", weight_decay=1e-3)),
    ("mlp", dict(graph="2_22", width=128),
     dict(optimizer="adamw", weight_decay=0.1, steps=6, batch_size=128)),
    ("cnn", dict(graph="2_02", kernel_size=3, width=4), dict(optimizer="adam")),
])
def test_an_adam_replicas_numbers_do_not_depend_on_its_chunk_or_the_thread_count(arch, kwargs, extra, digits,
                                                                                digit_images):
    data = digit_images if arch == "cnn" else digits
    spec = ModelSpec(arch=arch, **({"width": 8} | kwargs))
    config = TrainConfig(**({"steps": 12, "batch_size": 16} | extra))
    assert_chunk_and_thread_free(spec, data, config, [1e-3, 3e-3, 1e30], [1e-3, 1e-2, 3e-3, 1e-4, 1e30])


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="adagrad"), "unknown optimizer 'adagrad'; accepted: sgd, adam, adamw"),
    (dict(optimizer="Adam"), "unknown optimizer"),
    (dict(optimizer="adam", momentum=0.9), "momentum is SGD's"),
    (dict(optimizer="adamw", momentum=0.9, nesterov=True), "momentum and nesterov are SGD's"),
    (dict(betas=(0.9, 0.99)), "betas is Adam's; optimizer sgd"),
    (dict(eps=1e-6), "eps is Adam's"),
    (dict(optimizer="adam", betas=(0.9, 1.0)), "must be < 1"),
    (dict(optimizer="adam", betas=(-0.1, 0.9)), "must be >= 0"),
    (dict(optimizer="adam", betas=(0.9,)), "a pair"),
    (dict(optimizer="adam", betas="0.9,0.99"), "a pair"),
    (dict(optimizer="adam", eps=0), "eps must be a positive number"),
    (dict(optimizer="adam", eps="1e-8"), "eps must be a number"),
])
def test_bad_optimizer_settings_are_one_line(kwargs, match):
    with pytest.raises(ArchscaleError, match=match) as err:
        TrainConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_adam_settings_are_normalized():
    config = TrainConfig(optimizer="adam", betas=[0.8, 0.9])
    assert config.betas == (0.8, 0.9) and config.adam_betas == (0.8, 0.9)
    assert TrainConfig(optimizer="adamw").adam_betas == (0.9, 0.999)
    assert TrainConfig(optimizer="adam", betas=(0, 0.5)).betas == (0.0, 0.5)  # beta 0 is allowed


def test_adam_memory_estimate_holds_its_two_moments():
    spec = ModelSpec("2_12_202", width=256)
    sgd = replica_bytes(spec, (64,), 10, 32)
    adam = replica_bytes(spec, (64,), 10, 32, optimizer="adam")
    assert adam > sgd
    budget = 40 * sgd
    assert auto_chunk_size(spec, (64,), 10, 32, memory_budget=budget, max_replicas=1000) == 40
    adamw = auto_chunk_size(spec, (64,), 10, 32, memory_budget=budget, max_replicas=1000, optimizer="adamw")
    assert adamw < 40


# ---------------------------------------------------------------------------------------- muP's width rule
def _apply_groups(net, data, lr: float, base_width: int) -> list[dict]:
    """torch.optim groups of ``net`` from archscale.apply's Adam rule (weights kept: init=False)."""
    import archscale

    plan = archscale.apply(net, data.x_train[:2], base_lr=lr, init=False, optimizer="adamw",
                           base_width=base_width)
    return [{"params": g["params"], "lr": g["lr"]} for g in plan.param_groups(lr)]


@pytest.mark.parametrize("graph, layout", [("2_02", "paper"), ("2_12_202", "reference")])
def test_the_width_rule_follows_torch_adamw_with_applys_param_groups(graph, layout, digits):
    """A replica trained with ``base_width`` against torch.optim.AdamW whose param_groups are
    archscale.apply's (hidden and readout weights at lr x 16/64, stem and biases at lr), 50 steps."""
    spec = ModelSpec(graph, width=64, layout=layout)
    config = TrainConfig(steps=50, batch_size=32, optimizer="adamw", weight_decay=0.1, base_width=16)
    lrs, seeds = [1e-3, 1e30, 1e-2], [0, 1, 1]
    result = train_replicas(spec, lrs, seeds, digits, config)
    assert result.diverged.tolist() == [False, True, False]
    for r in (0, 2):
        net = spec.build(tuple(digits.x_train.shape[1:]), digits.out_dim, seeds[r])
        groups = _apply_groups(net, digits, lrs[r], 16)
        mults = sorted({round(g["lr"] / lrs[r], 12) for g in groups})
        assert mults == [0.25, 1.0]  # 16 / 64 for hidden and readout weights, 1 for the rest
        opt = torch.optim.AdamW(groups, betas=config.adam_betas, eps=config.eps, weight_decay=0.1)
        losses = []
        for idx in minibatch_schedule(digits.n_train, config.batch_size, seeds[r], 50):
            idx = torch.as_tensor(idx)
            loss = torch.nn.functional.cross_entropy(net(digits.x_train[idx]), digits.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        rel = np.abs(result.curves[:, r] - np.array(losses)) / np.abs(np.array(losses))
        assert rel.max() < 1e-4, f"replica {r}: max relative loss difference {rel.max():.2e}"
    # without the rule the same replica trains differently (the rule is not a no-op)
    one_lr = TrainConfig(steps=50, batch_size=32, optimizer="adamw", weight_decay=0.1)
    plain = train_replicas(spec, [lrs[2]], [1], digits, one_lr)
    assert np.abs(plain.curves[-1, 0] - result.curves[-1, 2]) > 1e-4


def test_the_engines_multipliers_are_applys_rule():
    from archscale.core.adam_width import adam_lr_multiplier
    from archscale.nn.models import DagCNN
    from archscale.train.stack import Stack

    net = ModelSpec("2_12_202", width=32).build((64,), 10, 0)
    stack = Stack([net], torch.device("cpu"), torch.float32)
    mults = stack.lr_multipliers(8)
    # stem weight, bias; four hidden edges (weight, bias); readout weight, bias
    assert mults == [1.0, 1.0, *[0.25, 1.0] * 4, 0.25, 1.0]
    assert stack.lr_multipliers(None) is None
    cnn = DagCNN("2_02", 1, 16, 10, 3)
    assert Stack([cnn], torch.device("cpu"), torch.float32).lr_multipliers(4) == [1.0, 1.0, 0.25, 1.0, 0.25,
                                                                                  1.0, 0.25, 1.0]
    assert adam_lr_multiplier("hidden", None, 64) == 1.0  # a depthwise conv keeps x 1


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_shared_step_with_lr_multipliers_is_torch_optims_param_groups(optimizer):
    """The step itself: stacked tensors at per-tensor multipliers against torch.optim with one group
    per tensor at ``lr x multiplier``, two replicas at two LRs, 50 steps."""
    config = TrainConfig(optimizer=optimizer, weight_decay=0.1, betas=(0.8, 0.95), base_width=4)
    gen = torch.Generator().manual_seed(0)
    shapes = [(2, 4, 5), (2, 5), (2, 3, 4)]
    mults = [1.0, 0.125, 0.5]
    stacked = [torch.randn(s, generator=gen) for s in shapes]
    lrs = torch.tensor([1e-3, 3e-2])
    alone = [[p[r].clone().requires_grad_(True) for p in stacked] for r in range(2)]
    refs = [torch_optimizer([{"params": [p], "lr": float(lr) * m} for p, m in zip(ps, mults)], float(lr),
                            config) for ps, lr in zip(alone, lrs.tolist())]
    opt = make_optimizer(config, len(stacked), mults)
    for _ in range(50):
        grads = [torch.randn(p.shape, generator=gen) for p in stacked]
        for i, (p, g) in enumerate(zip(stacked, grads)):
            opt.update(i, p, g, lrs)
        for r in range(2):
            for p, g in zip(alone[r], grads):
                p.grad = g[r].clone()
            refs[r].step()
    for r in range(2):
        for p, ref in zip(stacked, alone[r]):
            torch.testing.assert_close(p[r], ref.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(base_width=64), "base_width is Adam's; optimizer sgd"),
    (dict(optimizer="adamw", base_width=0), "base_width must be"),
    (dict(optimizer="adamw", base_width=1.5), "base_width must be"),
])
def test_bad_base_width_is_one_line(kwargs, match):
    with pytest.raises(ArchscaleError, match=match) as err:
        TrainConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_lr_multipliers_must_fit_the_parameters():
    with pytest.raises(ArchscaleError, match="2 positive finite multipliers"):
        make_optimizer(TrainConfig(optimizer="adam"), 2, [1.0])
