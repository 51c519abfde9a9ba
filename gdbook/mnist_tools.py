"""Plumbing for the MNIST chapters: the same batches for every implementation, accuracy,
confusion matrices, and grids of digits (samples, weight templates, filters, mistakes).

The training loops themselves are subject matter and live in the chapters; this module only
feeds them and looks at their results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np


def batch_indices(n_examples: int, batch_size: int, steps: int, seed: int = 0) -> np.ndarray:
    """Example indices of ``steps`` mini-batches, shape ``(steps, batch_size)``.

    The data are shuffled once per epoch (a fresh permutation from ``seed``) and cut into
    batches in order; an incomplete last batch of an epoch is dropped, so no batch holds an
    example twice. The same arguments give the same batches, which is how several
    implementations of one training loop are fed identical data in identical order.
    """
    if batch_size < 1 or batch_size > n_examples:
        raise ValueError(f"batch_size must lie in 1..{n_examples}, got {batch_size}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    rng = np.random.default_rng(seed)
    per_epoch = n_examples // batch_size
    epochs = -(-steps // per_epoch) if steps else 0
    batches = [
        rng.permutation(n_examples)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        for _ in range(epochs)
    ]
    if not batches:
        return np.zeros((0, batch_size), dtype=np.int64)
    return np.concatenate(batches)[:steps]


def gather_batches(indices: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows of each array in batch order, flattened to ``(steps * batch_size, ...)``.

    Feeding the result to ``model.fit(..., batch_size=indices.shape[1], shuffle=False,
    epochs=1)`` gives Keras exactly the batches of :func:`batch_indices`.
    """
    flat = np.asarray(indices).reshape(-1)
    return tuple(np.asarray(array)[flat] for array in arrays)


def batch_dataset(indices: np.ndarray, *arrays: np.ndarray):
    """A ``tf.data.Dataset`` that yields ``(arrays[0][batch], arrays[1][batch], ...)`` for each
    row ``batch`` of ``indices``, in order: the batches of :func:`batch_indices` for TF1 sessions
    (``.as_numpy_iterator()``), TF2 loops and ``model.fit`` alike, without copying the data
    once per step as :func:`gather_batches` does.
    """
    import tensorflow as tf

    tensors = tuple(tf.constant(array) for array in arrays)
    ids = tf.data.Dataset.from_tensor_slices(np.asarray(indices, dtype=np.int64))
    return ids.map(lambda batch: tuple(tf.gather(t, batch) for t in tensors))


def as_labels(labels: np.ndarray) -> np.ndarray:
    """Integer class labels from integer labels or one-hot rows."""
    labels = np.asarray(labels)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels.astype(np.int64)


def as_images(x: np.ndarray) -> np.ndarray:
    """Square images ``(n, h, w)`` from flat rows ``(n, h * w)`` or channels-last ``(n, h, w, 1)``."""
    x = np.asarray(x)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"rows of length {x.shape[1]} are not square images")
        return x.reshape(len(x), side, side)
    if x.ndim == 4 and x.shape[-1] == 1:
        return x[..., 0]
    if x.ndim == 3:
        return x
    raise ValueError(f"cannot read images of shape {x.shape}")


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest score is at the true class (ties go to the lowest class,
    as in ``np.argmax`` and ``tf.argmax``)."""
    scores = np.asarray(scores)
    return float(np.mean(scores.argmax(axis=1) == as_labels(labels)))


def predict_in_batches(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 1000
) -> np.ndarray:
    """``predict`` applied to ``x`` in slices of ``batch_size`` rows, results stacked (as NumPy)."""
    parts = [np.asarray(predict(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """``counts[true, predicted]``: how often each true class was predicted as each class."""
    labels, predicted = as_labels(labels), np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def examples_per_class(labels: np.ndarray, per_class: int, num_classes: int = 10) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class, shape ``(num_classes, per_class)``."""
    labels = as_labels(labels)
    rows = []
    for digit in range(num_classes):
        found = np.flatnonzero(labels == digit)[:per_class]
        if len(found) < per_class:
            raise ValueError(f"class {digit} has only {len(found)} examples, {per_class} wanted")
        rows.append(found)
    return np.stack(rows)


def most_confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the highest probability, most confident first."""
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != as_labels(labels))
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order[:k]]


def plot_image_grid(
    images: np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    cmap: str = "gray_r",
    symmetric: bool = False,
    size: float = 0.85,
    title_size: str | float = "small",
):
    """Images of shape ``(n, h, w)`` in a grid without axes; returns the figure.

    ``symmetric=True`` centres the colour scale on zero, one scale for all images (for weights
    and filters, with a diverging ``cmap`` such as ``"RdBu_r"``); otherwise each image uses the
    colour map over its own range.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w), got {images.shape}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.2, (size + 0.25) * nrows), squeeze=False)
    limit = float(np.abs(images).max()) if symmetric else None
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        if symmetric:
            shown = ax.imshow(images[i], cmap=cmap, vmin=-limit, vmax=limit)
        else:
            shown = ax.imshow(images[i], cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=title_size, pad=2)
    if symmetric and shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.01)
    return fig


def plot_confusion(counts: np.ndarray, ax=None, *, title: str = ""):
    """The confusion matrix with the off-diagonal counts written in; returns the axes.

    Colours show the off-diagonal counts only (the diagonal would drown them out); the
    diagonal cells carry their count in bold.
    """
    counts = np.asarray(counts)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 5.0))
    off_diagonal = counts.astype(float).copy()
    np.fill_diagonal(off_diagonal, np.nan)
    shown = ax.imshow(off_diagonal, cmap="Oranges", vmin=0)
    top = np.nanmax(off_diagonal) if np.isfinite(off_diagonal).any() else 1.0
    for (row, col), value in np.ndenumerate(counts):
        if row == col:
            ax.text(col, row, str(value), ha="center", va="center", fontsize=6.5, weight="bold")
        elif value:
            dark = value > 0.6 * top
            ax.text(col, row, str(value), ha="center", va="center", fontsize=7, color="w" if dark else "k")
    ticks = np.arange(len(counts))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.grid(False)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(shown, ax=ax, shrink=0.8, label="mistakes")
    return ax


def plot_mistakes(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, indices: np.ndarray, *, ncols: int = 8
):
    """Misclassified digits, each titled ``true -> predicted (probability)``; returns the figure."""
    labels = as_labels(labels)
    probabilities = np.asarray(probabilities)
    indices = np.asarray(indices)
    predicted = probabilities[indices].argmax(axis=1)
    titles = [
        f"{labels[i]}→{p} ({probabilities[i, p]:.2f})" for i, p in zip(indices, predicted, strict=True)
    ]
    return plot_image_grid(as_images(np.asarray(images)[indices]), titles=titles, ncols=ncols, size=1.0)
