"""The MNIST loader: the real file, its forms, and every way the file can be wrong."""

import shutil

import numpy as np
import pytest

from gdbook.data import MNIST_SHA256, MnistDataError, default_mnist_path, load_mnist, one_hot


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_the_real_file_is_the_full_mnist(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.y_test.dtype == np.uint8
    # The checks from shared/data/README.md: label counts, first labels, mean pixel.
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert round(float(mnist.x_train.mean()) / 255, 4) == 0.1307


def test_float_and_flat_forms(mnist):
    floats = load_mnist("float")
    assert floats.x_train.dtype == np.float32 and floats.x_train.shape == (60000, 28, 28)
    assert 0.0 <= floats.x_test.min() and floats.x_test.max() <= 1.0
    np.testing.assert_array_equal(floats.x_test * 255, mnist.x_test.astype(np.float32))
    flat = load_mnist("flat", one_hot_labels=True)
    assert flat.x_train.shape == (60000, 784) and flat.x_test.shape == (10000, 784)
    assert flat.y_train.shape == (60000, 10) and flat.y_train.dtype == np.float32
    np.testing.assert_array_equal(flat.y_train.argmax(axis=1), mnist.y_train)


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form must be one of"):
        load_mnist("png")


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="0..9"):
        one_hot(np.array([10]))
    with pytest.raises(ValueError, match="1-D"):
        one_hot(np.zeros((2, 2), dtype=int))


def test_missing_file_says_how_to_restore(tmp_path):
    missing = tmp_path / "mnist.npz"
    with pytest.raises(MnistDataError) as err:
        load_mnist(path=missing)
    message = str(err.value)
    assert str(missing) in message and "not found" in message
    assert "git checkout -- data/mnist.npz" in message


def test_truncated_file_fails_the_checksum(tmp_path):
    truncated = tmp_path / "mnist.npz"
    truncated.write_bytes(default_mnist_path().read_bytes()[:100_000])
    with pytest.raises(MnistDataError, match="SHA-256") as err:
        load_mnist(path=truncated)
    assert str(truncated) in str(err.value) and MNIST_SHA256 in str(err.value)


def test_truncated_file_without_checksum_is_still_reported(tmp_path):
    truncated = tmp_path / "mnist.npz"
    truncated.write_bytes(default_mnist_path().read_bytes()[:100_000])
    with pytest.raises(MnistDataError, match="cannot be read"):
        load_mnist(path=truncated, expected_sha256=None)


def test_one_changed_byte_is_caught(tmp_path):
    altered = tmp_path / "mnist.npz"
    shutil.copy(default_mnist_path(), altered)
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(MnistDataError, match="damaged"):
        load_mnist(path=altered)


def _fake_npz(path, **overrides):
    arrays = {
        "x_train": np.zeros((60000, 28, 28), np.uint8),
        "y_train": np.zeros(60000, np.uint8),
        "x_test": np.zeros((10000, 28, 28), np.uint8),
        "y_test": np.zeros(10000, np.uint8),
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return path


def test_missing_array_is_named(tmp_path):
    path = _fake_npz(tmp_path / "m.npz", y_test=None)
    with pytest.raises(MnistDataError, match="no array 'y_test'"):
        load_mnist(path=path, expected_sha256=None)


def test_wrong_shape_is_named(tmp_path):
    path = _fake_npz(tmp_path / "m.npz", x_test=np.zeros((10, 28, 28), np.uint8))
    with pytest.raises(MnistDataError, match=r"x_test has shape \(10, 28, 28\)"):
        load_mnist(path=path, expected_sha256=None)
