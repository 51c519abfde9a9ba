"""Unit tests for gdbook.mnist_tools (no TensorFlow needed)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gdbook.mnist_tools import (
    accuracy,
    as_images,
    as_labels,
    batch_dataset,
    batch_indices,
    confusion_matrix,
    examples_per_class,
    gather_batches,
    most_confident_mistakes,
    plot_confusion,
    plot_image_grid,
    plot_mistakes,
    predict_in_batches,
)


def test_batch_indices_shape_and_repeatable():
    first = batch_indices(10, 3, 7, seed=5)
    assert first.shape == (7, 3)
    np.testing.assert_array_equal(first, batch_indices(10, 3, 7, seed=5))
    assert not np.array_equal(first, batch_indices(10, 3, 7, seed=6))


def test_batch_indices_each_epoch_is_part_of_a_permutation():
    batches = batch_indices(10, 3, 6, seed=1)  # 3 batches per epoch, 1 example dropped
    for epoch in (batches[:3], batches[3:]):
        flat = epoch.reshape(-1)
        assert len(set(flat.tolist())) == 9
        assert flat.min() >= 0 and flat.max() < 10


def test_batch_indices_exact_epochs_cover_everything():
    batches = batch_indices(12, 4, 3, seed=0)
    assert sorted(batches.reshape(-1).tolist()) == list(range(12))


def test_batch_indices_edge_cases():
    assert batch_indices(5, 5, 0).shape == (0, 5)
    with pytest.raises(ValueError):
        batch_indices(5, 6, 1)
    with pytest.raises(ValueError):
        batch_indices(5, 2, -1)


def test_gather_batches_keeps_order():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    idx = np.array([[3, 1], [7, 0]])
    xb, yb = gather_batches(idx, x, y)
    np.testing.assert_array_equal(yb, [30, 10, 70, 0])
    np.testing.assert_array_equal(xb[2], [14, 15])


def test_batch_dataset_yields_the_batches_in_order():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    idx = batch_indices(10, 3, 5, seed=2)
    got = list(batch_dataset(idx, x, y).as_numpy_iterator())
    assert len(got) == 5
    for (xb, yb), rows in zip(got, idx, strict=True):
        np.testing.assert_array_equal(yb, rows)
        np.testing.assert_array_equal(xb, x[rows])


def test_labels_and_accuracy():
    onehot = np.eye(3)[[0, 2, 1, 1]]
    np.testing.assert_array_equal(as_labels(onehot), [0, 2, 1, 1])
    scores = np.array([[5, 1, 0], [0, 1, 2], [0, 0, 0], [0, 3, 1]], dtype=float)
    # row 2 is a tie: argmax picks class 0, which is wrong for label 1
    assert accuracy(scores, [0, 2, 1, 1]) == pytest.approx(0.75)
    assert accuracy(scores, onehot) == pytest.approx(0.75)


def test_predict_in_batches_matches_one_call():
    x = np.arange(23, dtype=float).reshape(23, 1)
    calls = []

    def predict(batch):
        calls.append(len(batch))
        return batch * 2

    np.testing.assert_array_equal(predict_in_batches(predict, x, batch_size=10), x * 2)
    assert calls == [10, 10, 3]


def test_confusion_matrix_counts():
    counts = confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    assert counts.sum() == 4
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], num_classes=3)


def test_examples_per_class():
    labels = np.array([1, 0, 1, 0, 2, 2, 1])
    np.testing.assert_array_equal(examples_per_class(labels, 2, num_classes=3), [[1, 3], [0, 2], [4, 5]])
    with pytest.raises(ValueError):
        examples_per_class(labels, 3, num_classes=3)


def test_most_confident_mistakes_order():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95]])
    labels = np.array([0, 0, 0, 1])  # rows 1 and 2 are wrong
    np.testing.assert_array_equal(most_confident_mistakes(probs, labels, 5), [1, 2])
    np.testing.assert_array_equal(most_confident_mistakes(probs, labels, 1), [1])


def test_as_images():
    assert as_images(np.zeros((2, 784))).shape == (2, 28, 28)
    assert as_images(np.zeros((2, 28, 28, 1))).shape == (2, 28, 28)
    with pytest.raises(ValueError):
        as_images(np.zeros((2, 10)))


def test_plots_draw():
    images = np.random.default_rng(0).normal(size=(5, 4, 4))
    fig = plot_image_grid(images, titles=list("abcde"), ncols=3, symmetric=True, cmap="RdBu_r")
    assert sum(len(ax.images) for ax in fig.axes) == 5
    plt.close(fig)
    ax = plot_confusion(np.array([[5, 1], [2, 7]]), title="t")
    assert len(ax.texts) == 4
    plt.close(ax.figure)
    probs = np.array([[0.1, 0.9], [0.7, 0.3]])
    fig = plot_mistakes(np.zeros((2, 784)), [0, 1], probs, np.array([0, 1]))
    assert [a.get_title() for a in fig.axes[:2]] == ["0→1 (0.90)", "1→0 (0.70)"]
    plt.close(fig)
