"""gdbook.check.training_step: a restored training step passes; state left behind is
caught and named."""

import gdbook  # noqa: F401  (quiet TensorFlow before it is imported)

import keras
import numpy as np
import pytest
import tensorflow as tf

from gdbook import check

RNG = np.random.default_rng(7)
BATCHES = [
    (
        RNG.normal(size=(16, 4)).astype(np.float32),
        RNG.integers(0, 3, size=16).astype(np.int32),
    )
    for _ in range(4)
]


def network(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(3),
        ]
    )


def make_step(model, optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    return step


def schedule(peak=0.05):
    return keras.optimizers.schedules.CosineDecay(0.01, 20, warmup_target=peak)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A model and Adam trained for 3 steps, saved."""
    model, optimizer = network(0), keras.optimizers.Adam(schedule())
    step = make_step(model, optimizer)
    for x, y in BATCHES[:3]:
        step(x, y)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        str(tmp_path_factory.mktemp("ckpt") / "ckpt")
    )
    return path


def restored(path, *, optimizer_too=True, build=True, reset_counter=False, rate=None):
    model = network(1)
    optimizer = keras.optimizers.Adam(rate or schedule())
    if build:
        optimizer.build(model.trainable_variables)
    objects = {"model": model, "optimizer": optimizer} if optimizer_too else {}
    if not optimizer_too:
        objects = {"model": model}
    tf.train.Checkpoint(**objects).restore(path).expect_partial()
    if reset_counter:
        optimizer.iterations.assign(0)
    return model, optimizer


def pair(model, optimizer, what="all"):
    if what == "weights":
        variables = model.variables
    elif what == "no counter":
        variables = model.variables + [
            v for v in optimizer.variables if "iteration" not in v.path
        ]
    else:
        variables = model.variables + optimizer.variables
    return make_step(model, optimizer), variables


def reference(path):
    return lambda: pair(*restored(path))


def test_a_full_restore_passes(checkpoint):
    check.training_step(
        lambda: pair(*restored(checkpoint)), reference(checkpoint), BATCHES
    )


def test_the_original_going_on_equals_its_restored_copy(checkpoint, tmp_path):
    model, optimizer = network(0), keras.optimizers.Adam(schedule())
    step = make_step(model, optimizer)
    for x, y in BATCHES[:2]:
        step(x, y)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        str(tmp_path / "c")
    )
    check.training_step(
        lambda: pair(*restored(path)),
        lambda: (step, model.variables + optimizer.variables),
        BATCHES,
    )


def test_optimizer_not_restored_is_caught_before_the_first_step(checkpoint):
    with pytest.raises(AssertionError) as caught:
        check.training_step(
            lambda: pair(*restored(checkpoint, optimizer_too=False)),
            reference(checkpoint),
            BATCHES,
        )
    message = str(caught.value)
    assert "before the first step" in message
    assert "iteration" in message and "step counter" in message
    assert "not restored" in message


def test_optimizer_not_restored_comparing_weights_only_is_caught_at_step_1(checkpoint):
    with pytest.raises(AssertionError) as caught:
        check.training_step(
            lambda: pair(*restored(checkpoint, optimizer_too=False), "weights"),
            lambda: pair(*restored(checkpoint), "weights"),
            BATCHES,
        )
    message = str(caught.value)
    assert "after step 1" in message and "variable 0 " in message
    assert "agreed before the first step, so step 1 itself differs" in message
    assert "moments or step counter" in message


def test_a_reset_step_counter_is_named(checkpoint):
    with pytest.raises(AssertionError) as caught:
        check.training_step(
            lambda: pair(*restored(checkpoint, reset_counter=True)),
            reference(checkpoint),
            BATCHES,
        )
    message = str(caught.value)
    assert "before the first step" in message and "iteration" in message
    assert "yours:     0" in message and "reference: 3" in message
    assert "difference -3" in message


def test_a_reset_step_counter_left_out_of_the_comparison_shows_at_step_1(checkpoint):
    with pytest.raises(AssertionError) as caught:
        check.training_step(
            lambda: pair(*restored(checkpoint, reset_counter=True), "no counter"),
            lambda: pair(*restored(checkpoint), "no counter"),
            BATCHES,
        )
    assert "after step 1" in str(caught.value)


def test_a_different_learning_rate_is_caught_at_step_1(checkpoint):
    # a schedule, as in the checkpoint: a float rate would add a variable, and Keras
    # restores an optimizer's variables by position
    with pytest.raises(AssertionError) as caught:
        check.training_step(
            lambda: pair(*restored(checkpoint, rate=schedule(0.06))),
            reference(checkpoint),
            BATCHES,
        )
    message = str(caught.value)
    assert "after step 1" in message and "step 1 itself differs" in message


def test_an_unbuilt_optimizer_is_reported(checkpoint):
    with pytest.raises(ValueError, match="build it"):
        check.training_step(
            lambda: pair(*restored(checkpoint, build=False)),
            reference(checkpoint),
            BATCHES,
        )


def test_a_step_that_stops_early_is_caught_at_that_step(checkpoint):
    def make_lazy():
        step, variables = pair(*restored(checkpoint))
        calls = []

        def lazy(x, y):
            calls.append(1)
            if len(calls) < 3:
                step(x, y)

        return lazy, variables

    with pytest.raises(AssertionError, match="after step 3"):
        check.training_step(make_lazy, reference(checkpoint), BATCHES)


def test_a_hand_written_step_passes_with_a_tolerance():
    """A hand-written SGD step on a plain variable, against Keras' SGD."""
    x, y = BATCHES[0]

    def make(hand):
        w = tf.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
        opt = keras.optimizers.SGD(0.1)

        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(yb, xb @ w)
                )
            (g,) = tape.gradient(loss, [w])
            if hand:
                w.assign(w - 0.1 * g)
            else:
                opt.apply_gradients([(g, w)])

        return step, [w]

    check.training_step(lambda: make(True), lambda: make(False), BATCHES, rtol=1e-5)


def test_factories_must_return_a_pair():
    with pytest.raises(TypeError, match=r"\(step, variables\)"):
        check.training_step(lambda: 1, lambda: 1, BATCHES)


def test_an_optimizer_applied_twice_per_step_names_the_counter_first(checkpoint):
    def twice():
        model, optimizer = restored(checkpoint)
        step = make_step(model, optimizer)

        def step_twice(x, y):
            step(x, y)
            step(x, y)

        return step_twice, model.variables + optimizer.variables

    with pytest.raises(AssertionError) as caught:
        check.training_step(twice, reference(checkpoint), BATCHES)
    message = str(caught.value)
    first_line, hint = message.splitlines()[0], message.splitlines()[4]
    assert "after step 1" in first_line and "iteration" in first_line
    assert "its value:" in first_line and "entry" not in first_line
    assert "difference +1" in message
    assert hint.startswith("An integer that differs") and "twice per step" in hint
    assert "other variables differ after step 1 too" in message
    assert "...." not in message
