"""The batched trainer: equivalence with torch.optim.SGD, divergence isolation, chunking, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_reference import torch_optimizer

from archscale.data import load_dataset
from archscale.train import (
    ArchscaleError,
    ModelSpec,
    TrainConfig,
    auto_chunk_size,
    grid,
    minibatch_schedule,
    replica_bytes,
    train_replicas,
)


def train_alone(spec: ModelSpec, lr: float, seed: int, data, config: TrainConfig, dtype=torch.float32):
    """The same replica trained by itself with ``config``'s torch.optim optimizer (the reference loop)."""
    net = spec.build(tuple(data.x_train.shape[1:]), data.out_dim, seed).to(dtype)
    x_train = data.x_train.to(dtype)
    y_train = data.y_train if config.loss == "ce" else data.y_train.to(dtype)
    opt = torch_optimizer(net.parameters(), lr, config)
    total = config.total_steps(data.n_train)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: config.lr_factor(t, total))
    losses = []
    for idx in minibatch_schedule(data.n_train, config.batch_size, seed, total):
        idx = torch.as_tensor(idx)
        out = net(x_train[idx])
        if config.loss == "ce":
            loss = F.cross_entropy(out, y_train[idx])
        else:
            loss = F.mse_loss(out, y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return np.array(losses), net


EQUIVALENCE_CASES = [
    # arch, graph, layout, act, config, lr of the second checked replica
    ("mlp", "2_12_202", "paper", "relu",
     dict(momentum=0.9, nesterov=True, weight_decay=5e-4, cosine=True), 0.3),
    ("mlp", "2_02_112", "reference", "gelu", dict(), 0.3),
    ("mlp", "2_20", "paper", "relu", dict(momentum=0.5, weight_decay=1e-3), 0.3),  # vertex 1: dead end
    # plain SGD takes the fused path (LR folded into the backward pass, updates inside the GEMMs)
    ("mlp", "2_12_202", "paper", "relu", dict(cosine=True), 0.3),
    ("mlp", "1_21_020", "paper", "gelu", dict(), 0.3),
    ("mlp", "2_20_112", "reference", "relu", dict(), 0.3),
    ("cnn", "2_11", "paper", "relu", dict(momentum=0.9, weight_decay=1e-3), 0.1),
    # at lr 0.3 this CNN bounces at the edge of stability and amplifies float32 rounding of the two
    # conv algorithms past 1e-4 (test_float64_is_exact shows the computation itself is the same)
    ("cnn", "2_02", "reference", "relu", dict(cosine=True), 0.1),
]


@pytest.mark.parametrize("arch, graph, layout, act, extra, lr", EQUIVALENCE_CASES)
def test_batched_replica_follows_torch_optim_sgd(arch, graph, layout, act, extra, lr, digits, digit_images):
    data = digits if arch == "mlp" else digit_images
    spec = ModelSpec(graph, arch=arch, width=16, layout=layout, act=act)
    config = TrainConfig(steps=60, batch_size=32, **extra)
    lrs, seeds = [0.05, lr, 0.1, 0.02], [0, 1, 2, 1]
    result = train_replicas(spec, lrs, seeds, data, config)
    assert result.curves.shape == (60, 4)
    assert not result.diverged.any()
    for r in (1, 3):  # two replicas, different seeds and LRs, checked against training alone
        alone, net = train_alone(spec, lrs[r], seeds[r], data, config)
        rel = np.abs(result.curves[:, r] - alone) / np.abs(alone)
        assert rel.max() < 1e-4, f"replica {r}: max relative loss difference {rel.max():.2e}"
        with torch.no_grad():
            final = F.cross_entropy(net(data.x_train), data.y_train).item()
        assert result.train_loss_final[r] == pytest.approx(final, rel=1e-4)


def test_float64_is_exact(digit_images):
    spec = ModelSpec("2_02", arch="cnn", width=16, layout="reference")
    config = TrainConfig(steps=60, batch_size=32, cosine=True)
    result = train_replicas(spec, [0.05, 0.3], [0, 1], digit_images, config, dtype=torch.float64)
    alone, _ = train_alone(spec, 0.3, 1, digit_images, config, dtype=torch.float64)
    np.testing.assert_allclose(result.curves[:, 1], alone, rtol=1e-9)


def test_regression_with_mse_matches_alone():
    data = load_dataset("gaussian_regression", n_train=256, n_test=64, dim=8, n_classes=3)
    spec = ModelSpec("2_12", width=16)
    config = TrainConfig(steps=50, batch_size=32, loss="mse", momentum=0.9)
    result = train_replicas(spec, [0.05, 0.2], [0, 1], data, config)
    alone, _ = train_alone(spec, 0.2, 1, data, config)
    np.testing.assert_allclose(result.curves[:, 1], alone, rtol=1e-4)
    assert np.isnan(result.test_acc).all() and np.isfinite(result.test_loss).all()


@pytest.mark.parametrize("arch, momentum", [("mlp", 0.0), ("mlp", 0.9), ("cnn", 0.0)])
def test_diverged_replica_is_frozen_and_never_disturbs_the_others(arch, momentum, digits, digit_images):
    spec = ModelSpec("2_02", arch=arch, width=8 if arch == "cnn" else 16)
    config = TrainConfig(steps=40, batch_size=32, momentum=momentum)
    digits = digits if arch == "mlp" else digit_images
    together = train_replicas(spec, [0.05, 1e30, 0.1], [0, 0, 1], data=digits, config=config)
    apart = train_replicas(spec, [0.05, 0.1], [0, 1], data=digits, config=config)
    assert together.diverged.tolist() == [False, True, False]
    bad = 1
    assert 0 <= together.diverged_step[bad] < 40 and together.steps[bad] == together.diverged_step[bad]
    assert np.isnan(together.curves[together.diverged_step[bad]:, bad]).all()
    assert np.isnan([together.train_loss[bad], together.train_loss_final[bad], together.test_acc[bad]]).all()
    for mine, theirs in ((0, 0), (2, 1)):
        np.testing.assert_allclose(together.curves[:, mine], apart.curves[:, theirs], rtol=1e-6)
        assert together.train_loss[mine] == pytest.approx(apart.train_loss[theirs], rel=1e-6)
        assert together.steps[mine] == 40 and together.diverged_step[mine] == -1
    rows = together.rows()
    assert rows[bad]["diverged"] is True and rows[0]["diverged"] is False


def test_all_replicas_diverging_ends_cleanly(digits):
    calls = []
    result = train_replicas(ModelSpec("2", width=8), [1e30, 1e32], [0, 1], digits,
                            TrainConfig(steps=30, batch_size=64), on_step=calls.append)
    assert result.diverged.all()
    assert sum(calls) == 2 * 30  # progress still adds up to the planned replica-steps


@pytest.mark.determinism
def test_chunking_gives_the_same_numbers(digits):
    spec = ModelSpec("2_12", width=16)
    config = TrainConfig(epochs=2, batch_size=128)
    lrs, seeds = grid([0.03, 0.1, 0.3], [0, 1])
    whole = train_replicas(spec, lrs, seeds, digits, config)
    chunked = train_replicas(spec, lrs, seeds, digits, config, chunk_size=4)
    np.testing.assert_allclose(whole.curves, chunked.curves, rtol=1e-5)
    np.testing.assert_allclose(whole.test_acc, chunked.test_acc)
    assert whole.curves.shape == (2 * 5, 6)  # 600 samples / 128 = 5 steps per epoch


def test_train_loss_is_the_last_epochs_weighted_running_average(digits):
    config = TrainConfig(epochs=2, batch_size=256)  # 600 samples: batches of 256, 256, 88
    result = train_replicas(ModelSpec("2", width=8), [0.1], [0], digits, config)
    last = result.curves[3:, 0]
    assert result.train_loss[0] == pytest.approx(np.average(last, weights=[256, 256, 88]), rel=1e-9)


def test_same_seed_same_numbers(digits):
    spec = ModelSpec("2_02", width=8)
    a = train_replicas(spec, [0.1], [5], digits, TrainConfig(steps=10, batch_size=64))
    b = train_replicas(spec, [0.1], [5], digits, TrainConfig(steps=10, batch_size=64))
    np.testing.assert_array_equal(a.curves, b.curves)


def test_minibatch_schedule_covers_each_epoch():
    batches = list(minibatch_schedule(10, 4, seed=3, total_steps=6))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(np.concatenate(batches[:3])) == list(range(10))
    assert sorted(np.concatenate(batches[3:])) == list(range(10))
    again = list(minibatch_schedule(10, 4, seed=3, total_steps=6))
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = np.concatenate(list(minibatch_schedule(10, 4, seed=4, total_steps=3)))
    assert not np.array_equal(other, np.concatenate(batches[:3]))


def test_memory_budget_sets_chunk_size():
    spec = ModelSpec("2_02_002", width=128)
    per = replica_bytes(spec, (64,), 10, 128)
    assert per > 0
    assert auto_chunk_size(spec, (64,), 10, 128, memory_budget=10 * per, max_replicas=1000) == 10
    assert 4 <= auto_chunk_size(spec, (64,), 10, 128) <= 64  # the CPU cap keeps chunks cache-sized
    assert auto_chunk_size(spec, (64,), 10, 128, memory_budget=1) == 1
    assert auto_chunk_size(spec, (64,), 10, 128, memory_budget=10**15, max_replicas=7) == 7
    cnn = ModelSpec("2_02", arch="cnn", width=64, kernel_size=7)
    mlp = ModelSpec("2_02", width=64)
    assert replica_bytes(cnn, (3, 32, 32), 10, 128) > replica_bytes(mlp, (3072,), 10, 128)


@pytest.mark.parametrize("make, match", [
    (lambda: TrainConfig(steps=0), "steps"),
    (lambda: TrainConfig(batch_size=0), "batch_size"),
    (lambda: TrainConfig(momentum=1.0), "momentum"),
    (lambda: TrainConfig(nesterov=True), "nesterov"),
    (lambda: TrainConfig(weight_decay=-1), "weight_decay"),
    (lambda: TrainConfig(loss="hinge"), "unknown loss"),
    (lambda: TrainConfig(cosine="false"), "cosine"),
    (lambda: TrainConfig(momentum=float("nan")), "momentum"),
    (lambda: ModelSpec("2", arch="rnn"), "unknown arch"),
    (lambda: ModelSpec("2", arch="cnn", kernel_size=4), "odd"),
    (lambda: ModelSpec("2", width=0), "width"),
    (lambda: ModelSpec("2", act="tanh"), "unknown act"),
    (lambda: ModelSpec("0_00"), "no path"),
    (lambda: ModelSpec("2_x"), "not a digit"),
])
def test_bad_specs_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_training_calls(digits):
    spec = ModelSpec("2", width=8)
    with pytest.raises(ArchscaleError, match="pair up"):
        train_replicas(spec, [0.1, 0.2], [0], digits)
    with pytest.raises(ArchscaleError, match="positive"):
        train_replicas(spec, [0.1, -0.2], [0, 1], digits)
    with pytest.raises(ArchscaleError, match="at least one"):
        train_replicas(spec, [], [], digits)
    with pytest.raises(ArchscaleError, match="image inputs"):
        train_replicas(ModelSpec("2", arch="cnn", width=8), [0.1], [0], digits)
    reg = load_dataset("gaussian_regression", n_train=64, n_test=16)
    with pytest.raises(ArchscaleError, match="use 'mse'"):
        train_replicas(spec, [0.1], [0], reg, TrainConfig(loss="ce"))
    if not torch.cuda.is_available():
        with pytest.raises(ArchscaleError, match="CUDA"):
            train_replicas(spec, [0.1], [0], digits, device="cuda")


def test_build_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ModelSpec("2_02", width=8).build((64,), 10, seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(digits):
    spec = ModelSpec("2_12", width=32)
    config = TrainConfig(steps=30, batch_size=64, momentum=0.9)
    cpu = train_replicas(spec, [0.05, 0.2, 1e4], [0, 1, 2], digits, config)
    gpu = train_replicas(spec, [0.05, 0.2, 1e4], [0, 1, 2], digits, config, device="cuda")
    np.testing.assert_allclose(gpu.curves[:, :2], cpu.curves[:, :2], rtol=1e-3)
    assert gpu.diverged.tolist() == cpu.diverged.tolist()


RESULT_ARRAYS = ("curves", "train_loss", "train_loss_final", "test_loss", "test_acc", "diverged_step")


def _pick(result, r):
    return {k: getattr(result, k)[..., r] for k in RESULT_ARRAYS}


@pytest.mark.determinism
@pytest.mark.parametrize("arch, kwargs, extra", [
    ("mlp", dict(graph="2_12_202", act="gelu"), dict()),
    ("mlp", dict(graph="2_02_112", layout="reference"), dict(momentum=0.9, weight_decay=1e-3)),
    ("mlp-wide", dict(graph="2_12", width=16), dict()),  # 600 input features: blocked contractions
    # 128 x 128 products (MKL's AVX2 path splits a lone one among threads), an epoch's short last
    # batch (600 = 4 x 128 + 88) and uneven evaluation batches, GELU on every vertex
    ("mlp", dict(graph="2_22", width=128, act="gelu"), dict(steps=6, batch_size=128)),
    ("mlp", dict(graph="2_12", width=13, act="gelu"), dict(steps=40, batch_size=27)),  # odd shapes
    ("cnn", dict(graph="2_12", kernel_size=3, layout="reference", init="reference"), dict()),
    ("cnn", dict(graph="2_02", kernel_size=5, width=4), dict(momentum=0.9, nesterov=True)),
])
def test_a_replicas_numbers_do_not_depend_on_its_chunk_or_the_thread_count(arch, kwargs, extra, digits,
                                                                           digit_images):
    if arch == "mlp-wide":
        data = load_dataset("gaussian", dim=600, n_train=256, n_test=64)
    else:
        data = digit_images if arch == "cnn" else digits
    spec = ModelSpec(arch="cnn" if arch == "cnn" else "mlp", **({"width": 8} | kwargs))
    config = TrainConfig(**({"steps": 12, "batch_size": 16} | extra))
    assert_chunk_and_thread_free(spec, data, config, [0.1, 0.5, 2.0], [0.1, 0.2, 0.5, 1.0, 0.05])


def assert_chunk_and_thread_free(spec: ModelSpec, data, config: TrainConfig, trio: list[float],
                                 five: list[float]) -> None:
    """The replica (``trio[1]`` = ``five[2]``, seed 3) trained alone, beside two others (``trio``) and in
    a chunk of 2 of five (``five``), at 1, 2 and 4 threads: bit-identical results every time."""
    lr, seed = trio[1], 3
    previous = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 4):  # 4 > cores is fine here: only the partition of the work matters
            torch.set_num_threads(threads)
            runs.append(_pick(train_replicas(spec, [lr], [seed], data, config), 0))
            runs.append(_pick(train_replicas(spec, trio, [0, seed, 1], data, config), 1))
            chunked = train_replicas(spec, five, [0, 1, seed, 2, 4], data, config,
                                     chunk_size=2)  # chunks of 2, 2 and 1: this one shares a chunk of 2
            runs.append(_pick(chunked, 2))
    finally:
        torch.set_num_threads(previous)
    assert np.isfinite(runs[0]["train_loss"])
    for run in runs[1:]:
        for key in RESULT_ARRAYS:
            np.testing.assert_array_equal(run[key], runs[0][key], err_msg=key)


def test_blocked_products_match_the_plain_ones():
    from archscale.train import layers

    torch.manual_seed(0)
    a, b = torch.randn(3, 5, 1300, dtype=torch.float64), torch.randn(3, 1300, 4, dtype=torch.float64)
    torch.testing.assert_close(layers.bmm(a, b), torch.bmm(a, b))
    out = torch.ones(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(layers.bmm_acc_(out, a, b, alpha=-1.0), 1 - torch.bmm(a, b))
    bias = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(layers.addmm(bias, a[0], b[0]), torch.addmm(bias, a[0], b[0]))
    small = torch.randn(2, 3, 7)
    assert torch.equal(layers.bmm(small, small.transpose(1, 2)), torch.bmm(small, small.transpose(1, 2)))


def test_epoch_order_is_the_minibatch_schedule():
    from archscale.train import epoch_order

    batches = list(minibatch_schedule(10, 4, seed=3, total_steps=6))
    np.testing.assert_array_equal(np.concatenate(batches[:3]), epoch_order(10, 3, 0))
    np.testing.assert_array_equal(np.concatenate(batches[3:]), epoch_order(10, 3, 1))


def test_augment_is_a_checked_flag_the_batched_trainer_refuses(digits):
    assert TrainConfig().augment is False and TrainConfig(augment=True).augment is True
    with pytest.raises(ArchscaleError, match="augment"):
        TrainConfig(augment="yes")
    with pytest.raises(ArchscaleError, match="augment"):
        train_replicas(ModelSpec("2", width=8), [0.1], [0], digits, TrainConfig(augment=True, steps=1))
