"""sweep_module: one replica follows a plain torch.optim loop (SGD, Adam, AdamW); rows are sweep rows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_reference import torch_optimizer

import archscale
from archscale import ArchscaleError
from archscale.data import load_dataset
from archscale.sweep import COLUMNS, max_lr
from archscale.train import TrainConfig, minibatch_schedule


class SmallCnn(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.conv(F.relu(h))
        return self.head(F.relu(h).mean((2, 3)))


def make():
    model = SmallCnn()
    archscale.apply(model, torch.zeros(1, 1, 8, 8))
    return model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", flatten=False, n_train=200, n_test=100)


def plain_loop(make_model, lr, seed, data, config):
    """The loop sweep_module must reproduce: build after manual_seed, minibatch_schedule, the config's
    torch.optim optimizer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    opt = torch_optimizer(model.parameters(), lr, config)
    total = config.total_steps(data.n_train)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: config.lr_factor(t, total))
    losses = []
    for idx in minibatch_schedule(data.n_train, config.batch_size, seed, total):
        idx = torch.as_tensor(idx)
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = F.cross_entropy(model(data.x_train), data.y_train).item()
        test = F.cross_entropy(model(data.x_test), data.y_test).item()
    return losses, final, test


@pytest.mark.parametrize("config, lr", [
    (TrainConfig(steps=20, batch_size=16), 0.3),
    (TrainConfig(epochs=2, batch_size=64, momentum=0.9, nesterov=True, weight_decay=1e-3), 0.3),
    (TrainConfig(steps=50, batch_size=16, optimizer="adam"), 3e-3),
    (TrainConfig(steps=50, batch_size=16, optimizer="adam", weight_decay=1e-2, betas=(0.8, 0.99)), 3e-3),
    (TrainConfig(steps=50, batch_size=16, optimizer="adamw", weight_decay=0.1, cosine=True), 1e-2),
    (TrainConfig(steps=50, batch_size=16, optimizer="adamw", betas=(0.5, 0.9), eps=1e-6), 3e-3),
], ids=["plain", "momentum", "adam", "adam-decay-betas", "adamw-decay-cosine", "adamw-betas-eps"])
def test_one_replica_equals_a_plain_torch_optim_loop(digits, config, lr):
    rows = archscale.sweep_module(make, [lr], [5], digits, config, progress=False)
    losses, final, test = plain_loop(make, lr, 5, digits, config)
    row = rows.iloc[0]
    per_epoch = config.steps_per_epoch(digits.n_train)
    window = np.arange(len(losses) - min(per_epoch, len(losses)), len(losses))
    sizes = np.minimum(config.batch_size, digits.n_train - (window % per_epoch) * config.batch_size)
    assert row["train_loss"] == pytest.approx(np.average(np.asarray(losses)[window], weights=sizes), rel=1e-4)
    assert row["train_loss_final"] == pytest.approx(final, rel=1e-4)
    assert row["test_loss"] == pytest.approx(test, rel=1e-4)
    assert not row["diverged"] and row["steps"] == len(losses)
    assert row["optimizer"] == config.optimizer


def test_rows_are_sweep_rows_and_divergence_stays_in_its_replica(digits):
    config = TrainConfig(steps=15, batch_size=32)
    rows = archscale.sweep_module(make, [0.1, 1e30], [0, 1], digits, config, name="res", width=6, act="relu",
                                  progress=False)
    assert list(rows.columns) == COLUMNS and len(rows) == 4
    assert set(rows["graph"]) == {"res"} and set(rows["arch"]) == {"cnn"} and set(rows["kernel_size"]) == {3}
    assert rows.loc[rows["lr"] == 1e30, "diverged"].all()
    assert not rows.loc[rows["lr"] == 0.1, "diverged"].any()
    assert rows.loc[rows["diverged"], "train_loss"].isna().all()
    alone = archscale.sweep_module(make, [0.1], [1], digits, config, progress=False, chunk_size=1)
    together = rows[(rows["lr"] == 0.1) & (rows["seed"] == 1)].iloc[0]
    assert together["train_loss_final"] == pytest.approx(alone.iloc[0]["train_loss_final"], rel=1e-5)
    best = max_lr(rows)
    assert best.iloc[0]["max_lr"] == 0.1 and best.iloc[0]["n_diverged"] == 2


def test_sweep_module_argument_errors(digits):
    with pytest.raises(ArchscaleError, match="learning rate"):
        archscale.sweep_module(make, [0.0], [0], digits, progress=False)
    with pytest.raises(ArchscaleError, match="seeds"):
        archscale.sweep_module(make, [0.1], [], digits, progress=False)
    with pytest.raises(ArchscaleError, match="must return an nn.Module"):
        archscale.sweep_module(lambda: "model", [0.1], [0], digits, progress=False)
    with pytest.raises(ArchscaleError, match="TrainConfig"):
        archscale.sweep_module(make, [0.1], [0], digits, {"steps": 3}, progress=False)
    regression = load_dataset("gaussian_regression", n_train=50, n_test=20)
    with pytest.raises(ArchscaleError, match="classification"):
        archscale.sweep_module(make, [0.1], [0], regression, progress=False)


class GeluMlp(nn.Module):
    def __init__(self, width=24):
        super().__init__()
        self.stem, self.hidden = nn.Linear(64, width), nn.Linear(width, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x.flatten(1))
        h = h + self.hidden(F.gelu(h))
        return self.head(F.gelu(h))


METRIC_COLUMNS = ["train_loss", "train_loss_final", "test_loss", "test_acc"]


@pytest.mark.determinism
@pytest.mark.parametrize("module, exact", [(GeluMlp, True), (SmallCnn, False)], ids=["mlp", "cnn"])
def test_rows_across_chunks_and_threads_are_as_the_readme_says(module, exact, digits):
    """Without convolutions: bit-identical. With them: identical at the same chunking and thread count
    (a rerun), within 1e-6 otherwise (vmap batches the replicas' convolutions into one oneDNN call)."""
    config = TrainConfig(steps=15, batch_size=16)
    lrs = [0.05, 0.3, 1.0]
    previous = torch.get_num_threads()
    runs = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for chunk in (1, 3):
                rows = archscale.sweep_module(module, lrs, [0, 1], digits, config, chunk_size=chunk,
                                              progress=False)
                runs[threads, chunk] = rows.sort_values(["seed", "lr"])[METRIC_COLUMNS].to_numpy()
        torch.set_num_threads(1)
        again = archscale.sweep_module(module, lrs, [0, 1], digits, config, chunk_size=3, progress=False)
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_array_equal(again.sort_values(["seed", "lr"])[METRIC_COLUMNS].to_numpy(), runs[1, 3])
    first = runs[1, 1]
    assert np.isfinite(first).all()
    for run in runs.values():
        if exact:
            np.testing.assert_array_equal(run, first)
        else:
            np.testing.assert_allclose(run, first, rtol=1e-6, atol=0)
