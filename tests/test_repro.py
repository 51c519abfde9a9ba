"""gdbook.setup: the same seed gives the same random numbers, in NumPy and in TensorFlow."""

import matplotlib
import numpy as np
import tensorflow as tf

import gdbook


def _draws():
    return np.random.rand(3), tf.random.uniform([3]).numpy(), tf.keras.initializers.GlorotUniform()([2, 2]).numpy()


def test_same_seed_same_numbers():
    assert gdbook.setup(7) == 7
    first = _draws()
    gdbook.setup(7)
    second = _draws()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_other_seed_other_numbers():
    gdbook.setup(1)
    first = _draws()
    gdbook.setup(2)
    assert not np.array_equal(first[0], _draws()[0])


def test_determinism_and_style_are_on():
    gdbook.setup()
    from tensorflow.python.framework import config

    assert config.is_op_determinism_enabled()
    assert matplotlib.rcParams["axes.spines.top"] is False
