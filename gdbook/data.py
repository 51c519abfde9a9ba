"""Loading the MNIST copy that ships with the book (``data/mnist.npz``).

Nothing is downloaded. The file's SHA-256 is checked on every load, so a
truncated or altered file is reported instead of producing wrong numbers.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
_FORMS = ("uint8", "float", "flat")

_RESTORE = (
    "The book ships this file in its repository: restore it with "
    "`git checkout -- data/mnist.npz` (or clone the repository again). "
    "Nothing is downloaded at run time."
)


class MnistDataError(RuntimeError):
    """The MNIST file is missing, truncated, altered or not in the expected layout."""


class Mnist(NamedTuple):
    """The four MNIST arrays, in the order of ``keras.datasets.mnist.load_data()``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def repo_root() -> Path:
    """The top folder of the book's repository (the package is installed from it in editable mode)."""
    return Path(__file__).resolve().parent.parent


def default_mnist_path() -> Path:
    """``data/mnist.npz`` at the top of the repository this package lives in."""
    return repo_root() / "data" / "mnist.npz"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_arrays(path: Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise MnistDataError(f"MNIST data file not found: {path}. {_RESTORE}")
    if expected_sha256 is not None:
        actual = _sha256(path)
        if actual != expected_sha256:
            raise MnistDataError(
                f"MNIST data file {path} is damaged or not the book's copy: its SHA-256 is "
                f"{actual}, expected {expected_sha256}. {_RESTORE}"
            )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise MnistDataError(f"MNIST data file {path} cannot be read ({err}). {_RESTORE}") from err
    for key in _KEYS:
        if key not in arrays:
            raise MnistDataError(f"MNIST data file {path} has no array {key!r}. {_RESTORE}")
        array = arrays[key]
        if array.shape != _SHAPES[key] or array.dtype != np.uint8:
            raise MnistDataError(
                f"MNIST data file {path}: {key} has shape {array.shape} and dtype {array.dtype}, "
                f"expected {_SHAPES[key]} and uint8. {_RESTORE}"
            )
    return arrays


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Integer labels -> float32 one-hot rows, e.g. ``3 -> [0, 0, 0, 1, 0, ...]``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return np.eye(num_classes, dtype=np.float32)[labels]


def load_mnist(
    form: str = "uint8",
    *,
    one_hot_labels: bool = False,
    path: str | Path | None = None,
    expected_sha256: str | None = MNIST_SHA256,
) -> Mnist:
    """Load the book's MNIST copy as ``Mnist(x_train, y_train, x_test, y_test)``.

    form:
        ``"uint8"``: images as stored, shape (n, 28, 28), values 0..255;
        ``"float"``: float32 in [0, 1], shape (n, 28, 28);
        ``"flat"``:  float32 in [0, 1], shape (n, 784).
    one_hot_labels:
        labels as float32 one-hot rows (n, 10) instead of uint8 digits (n,).
    path:
        another copy of the file; by default ``data/mnist.npz`` of this repository.
    expected_sha256:
        checksum the file must have; ``None`` skips the check (for test fixtures).
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    path = default_mnist_path() if path is None else Path(path)
    arrays = _read_arrays(path, expected_sha256)
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if form != "uint8":
        x_train = x_train.astype(np.float32) / np.float32(255)
        x_test = x_test.astype(np.float32) / np.float32(255)
    if form == "flat":
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
    if one_hot_labels:
        y_train, y_test = one_hot(y_train), one_hot(y_test)
    return Mnist(x_train, y_train, x_test, y_test)
