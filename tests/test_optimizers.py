"""The hand-written optimizers of Chapter 4 (exported to gdbook.optimizers) behave as Keras 3's do
wherever a training program relies on it, or refuse loudly."""

import gdbook  # noqa: F401  (quiet TensorFlow before it is imported)

import numpy as np
import pytest
import tensorflow as tf

from gdbook import optimizers as ours

keras_optimizers = tf.keras.optimizers


def _twins():
    return [
        (ours.GradientDescent(0.1), keras_optimizers.SGD(0.1)),
        (ours.Momentum(0.1, momentum=0.9), keras_optimizers.SGD(0.1, momentum=0.9)),
        (
            ours.Momentum(0.1, momentum=0.9, nesterov=True),
            keras_optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        ),
        (ours.Adagrad(0.1), keras_optimizers.Adagrad(0.1)),
        (ours.RMSprop(0.1, momentum=0.5, centered=True), keras_optimizers.RMSprop(0.1, momentum=0.5, centered=True)),
        (ours.Adam(0.1, amsgrad=True), keras_optimizers.Adam(0.1, amsgrad=True)),
        (ours.AdamW(0.1, weight_decay=0.1), keras_optimizers.AdamW(0.1, weight_decay=0.1)),
    ]


@pytest.mark.parametrize("make", [lambda: ours.GradientDescent(0.1), lambda: keras_optimizers.SGD(0.1)])
def test_float_rate_changed_after_compiling_takes_effect(make):
    optimizer, w = make(), tf.Variable(1.0)
    step = tf.function(lambda: optimizer.apply_gradients([(w * 1.0, w)]))  # loss w^2/2
    step()
    optimizer.learning_rate = 0.0
    step()
    assert w.numpy() == np.float32(0.9)


@pytest.mark.parametrize("index", range(7))
def test_all_none_gradients_raise_and_count_no_step(index):
    for optimizer in _twins()[index]:
        with pytest.raises(ValueError, match="No gradients"):
            optimizer.apply_gradients([(None, tf.Variable(1.0))])
        assert int(optimizer.iterations) == 0


@pytest.mark.parametrize("bad", ["0.1", None, True, [0.1]])
def test_rate_of_the_wrong_type_fails_at_construction(bad):
    with pytest.raises(ValueError):
        ours.GradientDescent(bad)
    with pytest.raises(ValueError):
        keras_optimizers.SGD(bad)


def test_other_arguments_of_the_wrong_type_fail_at_construction():
    with pytest.raises(ValueError, match="momentum"):
        ours.Momentum(0.1, momentum="0.9")
    with pytest.raises(ValueError, match="epsilon"):
        ours.Adam(epsilon="1e-7")


def test_callables_as_keras_calls_them():
    schedule = keras_optimizers.schedules.ExponentialDecay(0.5, 1, 0.5)
    for optimizer in (ours.GradientDescent(schedule), keras_optimizers.SGD(schedule)):
        w = tf.Variable(1.0)
        for _ in range(2):
            optimizer.apply_gradients([(tf.constant(1.0), w)])
        assert w.numpy() == np.float32(1.0 - 0.5 - 0.25)
    for optimizer in (ours.GradientDescent(lambda: 0.25), keras_optimizers.SGD(lambda: 0.25)):
        w = tf.Variable(1.0)
        optimizer.apply_gradients([(tf.constant(1.0), w)])
        assert w.numpy() == np.float32(0.75)
    with pytest.raises(TypeError):
        ours.GradientDescent(schedule).learning_rate = 0.1
    with pytest.raises(TypeError):
        keras_optimizers.SGD(schedule).learning_rate = 0.1


def test_reading_the_rate_gives_the_next_rate():
    schedule = keras_optimizers.schedules.ExponentialDecay(0.5, 1, 0.5)
    for optimizer in (ours.GradientDescent(schedule), keras_optimizers.SGD(schedule)):
        optimizer.apply_gradients([(tf.constant(1.0), tf.Variable(1.0))])
        assert float(optimizer.learning_rate) == 0.25
    for optimizer in (ours.GradientDescent(0.1), keras_optimizers.SGD(0.1)):
        assert float(optimizer.learning_rate) == np.float32(0.1)


@pytest.mark.parametrize("index", range(7))
def test_repeated_rows_of_indexed_slices(index):
    """A row gathered twice gives an IndexedSlices gradient with a repeated index: ours sums the
    rows first (the dense gradient), and so matches Keras fed the dense gradient. (Keras 3 fed the
    IndexedSlices itself squares each repeated slice separately in Adagrad, RMSprop and Adam.)"""
    results = []
    for optimizer, densify in [(_twins()[index][0], False), (_twins()[index][0], True), (_twins()[index][1], True)]:
        table = tf.Variable(np.arange(8, dtype=np.float32).reshape(4, 2))
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.gather(table, [0, 0, 2]) ** 2)
            grad = tape.gradient(loss, table)
            assert isinstance(grad, tf.IndexedSlices)
            optimizer.apply_gradients([(tf.convert_to_tensor(grad) if densify else grad, table)])
        results.append(table.numpy())
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[0], results[2])


@pytest.mark.parametrize("index", range(7))
def test_twins_agree_bit_for_bit(index):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=16).astype(np.float32)
    histories = []
    for optimizer in _twins()[index]:
        w = tf.Variable(np.ones(3, np.float32))

        @tf.function
        def step(w=w, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.linalg.matvec(x, w) - y) ** 2)
            optimizer.apply_gradients([(tape.gradient(loss, w), w)])

        history = []
        for _ in range(20):
            step()
            history.append(w.numpy())
        histories.append(np.array(history))
    assert np.array_equal(histories[0], histories[1])


def test_star_import_gives_the_optimizers():
    namespace = {}
    exec("from gdbook.optimizers import *", namespace)
    names = set(namespace) - {"__builtins__"}
    assert names == {"Optimizer", "GradientDescent", "Momentum", "Adagrad", "RMSprop", "Adam", "AdamW"}


@pytest.mark.parametrize("index", [0, 6])
def test_weight_decay_rounds_as_keras(index):
    ours_optimizer, keras_optimizer = _twins()[index]
    ours_optimizer.weight_decay = keras_optimizer.weight_decay = 0.05
    rng = np.random.default_rng(0)
    start = rng.normal(size=1000).astype(np.float32)
    grad = tf.constant(rng.normal(size=1000).astype(np.float32))
    a, b = tf.Variable(start), tf.Variable(start)
    for _ in range(5):
        ours_optimizer.apply_gradients([(grad, a)])
        keras_optimizer.apply_gradients([(grad, b)])
    assert np.array_equal(a.numpy(), b.numpy())


def test_exclude_from_weight_decay_as_keras():
    results = []
    for optimizer in (ours.GradientDescent(0.1, weight_decay=0.5), keras_optimizers.SGD(0.1, weight_decay=0.5)):
        bias, kernel, other = tf.Variable([1.0, 2.0], name="bias"), tf.Variable([1.0, 2.0]), tf.Variable([3.0])
        optimizer.exclude_from_weight_decay(var_list=[other], var_names=["bias"])
        optimizer.apply_gradients([(tf.zeros(2), bias), (tf.zeros(2), kernel), (tf.zeros(1), other)])
        results.append(np.concatenate([bias.numpy(), kernel.numpy(), other.numpy()]))
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[0], np.float32([1.0, 2.0, 0.95, 1.9, 3.0]))


def test_learning_rate_setter_as_keras():
    schedule = keras_optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    for optimizer in (ours.Adam(schedule), keras_optimizers.Adam(schedule)):
        optimizer.learning_rate = lambda: 0.3  # a callable replaces a schedule
        assert float(optimizer.learning_rate) == pytest.approx(0.3)
        optimizer.learning_rate = schedule
        with pytest.raises(TypeError):
            optimizer.learning_rate = 0.2  # a number cannot replace a schedule


@pytest.mark.parametrize("index", range(7))
def test_keras_variables_are_accepted_and_trained_as_keras_does(index):
    """Layers create keras.Variable objects (no .ref()): Keras' optimizers take them, so ours do."""
    mine, theirs = _twins()[index]
    layers = []
    for _ in range(2):
        layer = tf.keras.layers.Dense(3, kernel_initializer="ones", bias_initializer="ones")
        layer.build((None, 2))
        layers.append(layer)
    x = tf.constant([[1.0, -2.0], [0.5, 3.0]])
    for _ in range(3):
        for optimizer, layer in zip((mine, theirs), layers, strict=True):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.sin(layer(x)))
            gradients = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply_gradients(zip(gradients, layer.trainable_variables, strict=True))
    for a, b in zip(*(layer.trainable_variables for layer in layers), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for name in mine.state_names():
        assert mine.state(layers[0].kernel, name).shape == (2, 3)


def test_keras_variable_names_spared_from_weight_decay_as_keras_does():
    results = []
    for optimizer in (ours.AdamW(0.1, weight_decay=0.5), keras_optimizers.AdamW(0.1, weight_decay=0.5)):
        layer = tf.keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="ones")
        layer.build((None, 2))
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        zero = [tf.zeros_like(v) for v in layer.trainable_variables]
        optimizer.apply_gradients(zip(zero, layer.trainable_variables, strict=True))
        results.append([v.numpy() for v in layer.trainable_variables])
    (kernel, bias), (keras_kernel, keras_bias) = results
    np.testing.assert_array_equal(kernel, keras_kernel)
    np.testing.assert_array_equal(bias, keras_bias)
    assert (bias == 1).all() and (kernel < 1).all()
