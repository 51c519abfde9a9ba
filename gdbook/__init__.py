"""Shared plumbing for the book *Gradient Descent in TensorFlow*.

Chapters start with::

    import gdbook
    gdbook.setup()

Importing this package quiets TensorFlow's C++ logging *before* TensorFlow is
imported, so keep ``import gdbook`` above ``import tensorflow``.
"""

import os

# TensorFlow reads these when it is first imported; set them before that happens.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no INFO/WARNING lines from C++
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow once with file descriptor 2 sent to /dev/null.

    A few start-up lines (oneDNN, absl) are written by C++ before TensorFlow reads its log
    level; they are not errors, and a book page or a script's output is no place for them.
    A real import error still surfaces: Python raises it after stderr is restored.
    """
    import sys

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from gdbook.data import (  # noqa: E402
    MNIST_SHA256,
    Mnist,
    MnistDataError,
    default_mnist_path,
    load_mnist,
    one_hot,
    repo_root,
)
from gdbook.errors import CaughtError, expect_error, in_notebook  # noqa: E402
from gdbook.repro import DEFAULT_SEED, setup  # noqa: E402
from gdbook.text import sci  # noqa: E402

from gdbook import check  # noqa: E402  (after TensorFlow's quiet import)

__all__ = [
    "check",
    "CaughtError",
    "expect_error",
    "in_notebook",
    "DEFAULT_SEED",
    "MNIST_SHA256",
    "Mnist",
    "MnistDataError",
    "default_mnist_path",
    "load_mnist",
    "one_hot",
    "repo_root",
    "sci",
    "setup",
]
