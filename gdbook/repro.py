"""One call at the top of every chapter: quiet logs, fixed seeds, deterministic ops, one plot style."""

from __future__ import annotations

import logging
import sys
import os
import random
import warnings

import numpy as np

DEFAULT_SEED = 42

_STYLE = {
    "figure.figsize": (7.0, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": "medium",
    "axes.prop_cycle": None,  # filled in below
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "animation.embed_limit": 40.0,  # MB, for JS animations embedded in pages
}

# Okabe-Ito: distinguishable for colour-blind readers and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def plot_style() -> dict:
    """The book's matplotlib rcParams (also applied by :func:`setup`)."""
    from cycler import cycler

    style = dict(_STYLE)
    style["axes.prop_cycle"] = cycler(color=PALETTE)
    return style


class _ErrorsAndRetracing(logging.Filter):
    """Let through TensorFlow's errors and its tf.function retracing warning, nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "triggered tf.function retracing" in record.getMessage()


class _RetracingToStdout(logging.Handler):
    """Print the retracing warning where a reader sees it: on stdout, which the book keeps (the
    build drops stderr), with its advice shortened."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "triggered tf.function retracing" in message:
            message = message.split(" Tracing is expensive")[0] + (
                " Tracing is expensive: pass tensors rather than Python numbers, and create"
                " tf.function objects outside loops."
            )
        print(f"TensorFlow {record.levelname}: {message}", file=sys.stdout)


def _show_only_errors_and_retracing(logger: logging.Logger) -> None:
    """TensorFlow's Python logger quiet except for errors and the retracing warning, which
    readers must see: it says a compiled function is being traced again and again."""
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for existing in list(logger.filters):
        logger.removeFilter(existing)
    logger.addFilter(_ErrorsAndRetracing())
    logger.addHandler(_RetracingToStdout())


def setup(seed: int = DEFAULT_SEED, *, determinism: bool = True) -> int:
    """Make a chapter quiet and repeatable; returns the seed.

    - TensorFlow's Python and C++ logging down to errors, and its deprecation chatter off, except
      the tf.function retracing warning, which is printed (on stdout, so the book shows it);
    - Python's, NumPy's and TensorFlow/Keras' global random seeds set to ``seed``;
    - TensorFlow op determinism on (same inputs, same bits, every run);
    - NumPy scalars shown as numbers (``0.5``, not NumPy 2's ``np.float64(0.5)``), so printed
      values read plainly and myst-nb's ``glue`` can format them;
    - the book's matplotlib style, and, inside a Jupyter kernel, the inline backend (an
      ``MPLBACKEND=Agg`` left in the environment would otherwise make every figure vanish).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["PYTHONHASHSEED"] = str(seed)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    import matplotlib
    import tensorflow as tf

    _show_only_errors_and_retracing(tf.get_logger())
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        from tensorflow.python.util import deprecation

        deprecation._PRINT_DEPRECATION_WARNINGS = False
    except ImportError:  # pragma: no cover - private module moved
        pass

    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF seeds together
    if determinism:
        tf.config.experimental.enable_op_determinism()

    # NumPy 2 shows a scalar as np.float64(0.5); the book prints and glues numbers, so show 0.5.
    # (myst-nb's glue formats a number from its text form, and cannot read "np.float64(0.5)".)
    np.set_printoptions(legacy="1.25")
    _inline_backend_in_notebooks()
    matplotlib.rcParams.update(plot_style())
    return seed


def _inline_backend_in_notebooks() -> None:
    """Switch a Jupyter kernel to the inline backend if something chose another one."""
    from gdbook.errors import in_notebook

    if not in_notebook():
        return
    import matplotlib

    if "inline" not in matplotlib.get_backend():
        import IPython

        IPython.get_ipython().run_line_magic("matplotlib", "inline")
