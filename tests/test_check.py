"""gdbook.check: right implementations pass, wrong ones are caught and named."""

import gdbook  # noqa: F401  (quiet TensorFlow before it is imported)

import keras
import numpy as np
import pytest
import tensorflow as tf

from gdbook import check


class HandOptimizer:
    """A minimal hand-written optimizer: per-variable state in tf.Variables, a step
    counter, an update rule `_update(var, grad, state, step)` (step counts from 1)."""

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.slots = {}

    def state_names(self):
        return ()

    def apply_gradients(self, grads_and_vars):
        rate = self.learning_rate
        if callable(rate):
            rate = rate(self.iterations)
        for grad, var in grads_and_vars:
            if var.ref() not in self.slots:
                self.slots[var.ref()] = {
                    name: tf.Variable(tf.zeros_like(var)) for name in self.state_names()
                }
            step = tf.cast(self.iterations + 1, var.dtype)
            self._update(
                var, grad, self.slots[var.ref()], step, tf.cast(rate, var.dtype)
            )
        self.iterations.assign_add(1)


class SGD(HandOptimizer):
    def _update(self, var, grad, state, step, rate):
        var.assign_sub(grad * rate)


class Momentum(HandOptimizer):
    def __init__(self, learning_rate, momentum):
        super().__init__(learning_rate)
        self.momentum = momentum

    def state_names(self):
        return ("m",)

    def _update(self, var, grad, state, step, rate):
        m = state["m"]
        m.assign(self.momentum * m - grad * rate)
        var.assign_add(m)


class Adam(HandOptimizer):
    """The paper's moments with Keras' bias correction and epsilon placement, written
    in a different order of operations from Keras (so rounding differs)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def state_names(self):
        return ("m", "v")

    def correction(self, step):
        return tf.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)

    def denominator(self, v):
        return tf.sqrt(v) + self.epsilon

    def _update(self, var, grad, state, step, rate):
        m, v = state["m"], state["v"]
        m.assign(self.beta_1 * m + (1 - self.beta_1) * grad)
        v.assign(self.beta_2 * v + (1 - self.beta_2) * grad * grad)
        var.assign_sub(rate * self.correction(step) * m / self.denominator(v))


class AdamBiasOffByOne(Adam):
    """Bias correction with t + 1 where it should be t."""

    def correction(self, step):
        return super().correction(step + 1)


class AdamBiasFromZero(Adam):
    """Bias correction with t counted from 0: 1 - beta**0 = 0 at the first step."""

    def correction(self, step):
        return super().correction(step - 1)


class AdamEpsilonInside(Adam):
    def denominator(self, v):
        return tf.sqrt(v + self.epsilon)


class AdamW(Adam):
    def __init__(self, learning_rate, weight_decay, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.weight_decay = weight_decay

    def _update(self, var, grad, state, step, rate):
        var.assign_sub(var * self.weight_decay * rate)
        super()._update(var, grad, state, step, rate)


class PythonCounterAdam(Adam):
    """Counts steps in a Python int: right eagerly, frozen under tf.function."""

    def apply_gradients(self, grads_and_vars):
        self.t = getattr(self, "t", 0) + 1
        for grad, var in grads_and_vars:
            if var.ref() not in self.slots:
                self.slots[var.ref()] = {
                    n: tf.Variable(tf.zeros_like(var)) for n in "mv"
                }
            rate = tf.constant(self.learning_rate, var.dtype)
            self._update(var, grad, self.slots[var.ref()], float(self.t), rate)


class ClipSGD:
    """SGD with its gradients clipped to `c` by one of several rules; "global" is
    Keras' SGD(global_clipnorm=c): all scaled by c / max(G, c), G the global norm."""

    def __init__(self, learning_rate, c, rule="global"):
        self.learning_rate, self.c, self.rule = learning_rate, c, rule

    def apply_gradients(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        grads = [g for g, _ in grads_and_vars]
        global_norm = tf.linalg.global_norm(grads)
        if self.rule == "global":
            grads = [g * self.c / tf.maximum(global_norm, self.c) for g in grads]
        elif self.rule == "always-normalise":
            grads = [g * self.c / global_norm for g in grads]
        elif self.rule == "per-variable":
            grads = [tf.clip_by_norm(g, self.c) for g in grads]
        elif self.rule == "by-value":
            grads = [tf.clip_by_value(g, -self.c, self.c) for g in grads]
        elif self.rule == "summed-norms":
            summed = tf.add_n([tf.norm(g) for g in grads])
            grads = [g * self.c / tf.maximum(summed, self.c) for g in grads]
        for grad, (_, var) in zip(grads, grads_and_vars, strict=True):
            var.assign_sub(self.learning_rate * grad)


# Fewer steps than the default (20) keep the tests fast; every mistake shows by step 5.
STEPS = 10


def message(excinfo):
    return str(excinfo.value)


def assert_caught(call, fragments):
    """call() raises AssertionError with a message containing every fragment."""
    with pytest.raises(AssertionError) as caught:
        call()
    text = message(caught)
    missing = [fragment for fragment in fragments if fragment not in text]
    assert not missing, f"{missing} not in the message:\n{text}"


# ---------------------------------------------------------------- optimizer: right ones


@pytest.mark.parametrize(
    "make_mine, make_reference",
    [
        (lambda: SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
        (
            lambda: Momentum(0.05, momentum=0.8),
            lambda: keras.optimizers.SGD(0.05, momentum=0.8),
        ),
        (
            lambda: Adam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
            lambda: keras.optimizers.Adam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
        ),
        (
            lambda: AdamW(0.01, weight_decay=0.1),
            lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
        ),
    ],
    ids=["sgd", "momentum", "adam-nondefault", "adamw"],
)
def test_right_optimizers_pass(make_mine, make_reference):
    assert check.optimizer(make_mine, make_reference, steps=STEPS) is None


def test_right_adam_passes_with_the_default_steps():
    check.optimizer(lambda: Adam(0.001), lambda: keras.optimizers.Adam())


def test_right_optimizer_passes_under_tf_function():
    check.optimizer(
        lambda: Adam(0.01),
        lambda: keras.optimizers.Adam(0.01),
        steps=STEPS,
        compiled=True,
    )


def test_a_schedule_inside_both_optimizers():
    def make(cls):
        return lambda: cls(keras.optimizers.schedules.ExponentialDecay(0.1, 5, 0.5))

    check.optimizer(make(SGD), make(keras.optimizers.SGD), steps=STEPS)


# ---------------------------------------------------------------- optimizer: wrong ones

# Each wrong optimizer, the reference it is checked against, and the fragments its
# message must contain: where the two part, and the mistake named.
WRONG_OPTIMIZERS = [
    pytest.param(
        lambda: Adam(0.015),
        lambda: keras.optimizers.Adam(0.01),
        [
            "part at step 1 ",
            "constant factor 1.5 from step 1 on",
            "learning-rate or decay mistake",
        ],
        id="learning-rate-is-a-constant-factor-from-step-1",
    ),
    pytest.param(
        lambda: SGD(0.1),
        lambda: keras.optimizers.SGD(
            keras.optimizers.schedules.PiecewiseConstantDecay([3], [0.1, 0.0667])
        ),
        # iterations 0..3 use 0.1: the first four updates agree, the fifth differs.
        [
            "part at step 5 ",
            "Steps 1 to 4 agree",
            "a constant factor 1.499 from step 5 on",
        ],
        id="missing-decay-names-the-step-where-the-rates-split",
    ),
    pytest.param(
        lambda: Adam(0.01),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
        # Keras shrinks by learning_rate * weight_decay = 0.001: we are missing
        # -0.001 * var.
        ["part at step 1 ", "weight decay", "+0.001 times the variable"],
        id="missing-weight-decay",
    ),
    pytest.param(
        lambda: AdamBiasOffByOne(0.01),
        lambda: keras.optimizers.Adam(0.01),
        ["part at step 1 ", "tends to 1: a bias correction off by one step"],
        id="bias-correction-off-by-one",
    ),
    pytest.param(
        lambda: AdamBiasFromZero(0.01),
        lambda: keras.optimizers.Adam(0.01),
        [
            "part at step 1 ",
            "yours:     nan",
            "NaN or Inf at step 1",
            "1 - beta**0 = 0",
        ],
        id="bias-correction-from-zero-gives-nan",
    ),
    pytest.param(
        lambda: AdamEpsilonInside(0.01),
        lambda: keras.optimizers.Adam(0.01),
        ["part at step 1 ", "variable 'tiny'", "epsilon placement"],
        id="epsilon-inside-the-root-located-in-the-small-gradients",
    ),
    pytest.param(
        lambda: Momentum(0.05, momentum=0.9),
        lambda: keras.optimizers.SGD(0.05, momentum=0.8),
        [
            "part at step 2 ",
            "Step 1 agrees. Diagnosis (both fed the reference's gradients): agrees at "
            "step 1 only",
            "state your optimizer carries between steps",
        ],
        id="momentum-with-wrong-state-decay-agrees-at-step-1-only",
    ),
    pytest.param(
        lambda: Momentum(0.05, momentum=0.8),
        lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
        # The first Nesterov step is (1 + momentum) times plain momentum's.
        [
            "part at step 1 ",
            f"your update is {1 / 1.8:.4g} times the reference's",
            "Nesterov look-ahead",
        ],
        id="missing-nesterov-look-ahead-among-the-causes",
    ),
]


def test_global_clipping_passes_whether_or_not_it_acts():
    """The test problem's global norms (about 1) exceed 0.05 and stay below 10."""
    for c in (0.05, 10.0):
        check.optimizer(
            lambda c=c: ClipSGD(0.1, c),
            lambda c=c: keras.optimizers.SGD(0.1, global_clipnorm=c),
            steps=STEPS,
        )


WRONG_OPTIMIZERS += [
    pytest.param(
        lambda: ClipSGD(0.1, 10.0, "always-normalise"),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=10.0),
        ["part at step 1 ", "rescaling by a norm of the gradients"],
        # with c = 0.05 it passes: clipping acts at every step there
        id="clipping-that-always-rescales-caught-where-clipping-does-not-act",
    ),
    pytest.param(
        lambda: ClipSGD(0.1, 0.05, "per-variable"),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05),
        ["part at step 1 ", "factor differs between variables", "per variable"],
        id="clipping-per-variable",
    ),
    pytest.param(
        lambda: ClipSGD(0.1, 0.05, "by-value"),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05),
        ["part at step 1 ", "same largest step", "tf.clip_by_value"],
        id="clipping-by-value",
    ),
    pytest.param(
        lambda: ClipSGD(0.1, 0.05, "summed-norms"),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05),
        ["part at step 1 ", "rescaling by a norm of the gradients"],
        id="clipping-by-summed-norms",
    ),
]


@pytest.mark.parametrize("make_mine, make_reference, fragments", WRONG_OPTIMIZERS)
def test_wrong_optimizer_is_caught_and_named(make_mine, make_reference, fragments):
    assert_caught(
        lambda: check.optimizer(make_mine, make_reference, steps=STEPS), fragments
    )


def test_python_state_frozen_by_tf_function_is_named():
    make_mine = lambda: PythonCounterAdam(0.01)  # noqa: E731
    check.optimizer(make_mine, lambda: keras.optimizers.Adam(0.01), steps=STEPS)
    with pytest.raises(AssertionError) as caught:
        check.optimizer(
            make_mine, lambda: keras.optimizers.Adam(0.01), steps=STEPS, compiled=True
        )
    text = message(caught)
    assert "traced by tf.function" in text and "frozen" in text


def test_a_factory_must_make_a_new_optimizer():
    shared = SGD(0.1)
    with pytest.raises(TypeError, match="same object twice"):
        check.optimizer(lambda: shared, lambda: keras.optimizers.SGD(0.1))
    with pytest.raises(TypeError, match="no apply_gradients"):
        check.optimizer(lambda: object(), lambda: keras.optimizers.SGD(0.1))


# ---------------------------------------------------------------- gradient


def f_smooth(x):
    return tf.reduce_sum(tf.exp(0.3 * x) * tf.sin(x)) + tf.reduce_sum(x[0] * x[1])


def grad_smooth(x):
    x = np.asarray(x)
    g = np.exp(0.3 * x) * (0.3 * np.sin(x) + np.cos(x))
    g[0] += x[1]
    g[1] += x[0]
    return g


X0 = np.array([[0.5, -1.2, 2.0], [0.0, 0.7, -0.3]])


def test_right_gradient_passes():
    assert check.gradient(f_smooth, grad_smooth, X0) is None


def test_right_gradient_of_a_scalar_passes():
    check.gradient(lambda x: tf.sin(x) * x, lambda x: np.sin(x) + x * np.cos(x), 1.3)


def grad_one_coordinate_wrong(x):
    g = grad_smooth(x)
    g[1, 2] *= 1.001
    return g


def square_sum(x):
    return tf.reduce_sum(x**2)


# Each wrong gradient, its function, and the fragments its message must contain.
WRONG_GRADIENTS = [
    pytest.param(
        f_smooth,
        grad_one_coordinate_wrong,
        [
            "wrong at coordinate [1, 2] of 6",
            "1 of 6 coordinates are wrong ([1, 2])",
            # a relative error of about 1e-3
            "suspicious",
        ],
        id="one-coordinate",
    ),
    pytest.param(
        square_sum, lambda x: np.asarray(x), ["0.5 times the reference"], id="factor"
    ),
    pytest.param(
        square_sum, lambda x: -2 * np.asarray(x), ["opposite sign"], id="sign"
    ),
]


@pytest.mark.parametrize("f, grad_f, fragments", WRONG_GRADIENTS)
def test_wrong_gradient_is_caught_and_named(f, grad_f, fragments):
    assert_caught(lambda: check.gradient(f, grad_f, X0), fragments)


def test_a_gradient_of_none_is_named():
    """tape.gradient gives None for an integer source: the message says so (before, it
    was a ValueError about shape () for any x that is not a scalar)."""

    def int_tape_gradient(x):
        labels = tf.cast(x, tf.int32)
        with tf.GradientTape() as tape:
            tape.watch(labels)
            total = tf.reduce_sum(labels * labels)
        return tape.gradient(total, labels)

    with pytest.raises(AssertionError) as caught:
        check.gradient(square_sum, int_tape_gradient, [0.0, 1.0, 2.0])
    text = message(caught)
    assert "returned None" in text and "integer tensor" in text


def test_a_step_too_wide_for_the_bend_is_named():
    """x / sqrt(|x|^2 + 1e-12) bends on the scale 1e-6: at 0 the default step (1e-5)
    gives a central difference ten times too small, and its own noise is larger than
    tol times the gradient, so the message says that instead of a relative error."""

    def f(x):
        return tf.reduce_sum(x / tf.sqrt(tf.reduce_sum(x * x) + 1e-12))

    def grad_f(x):
        x = np.asarray(x)
        s = np.sum(x * x) + 1e-12
        return 1 / np.sqrt(s) - np.sum(x) * x / s**1.5

    assert check.gradient(f, grad_f, [0.0, 0.0], h=1e-9) is None
    with pytest.raises(AssertionError) as caught:
        check.gradient(f, grad_f, [0.0, 0.0])
    text = message(caught)
    assert "the central difference's own noise" in text
    assert "f bends within the step" in text and "Try a smaller h" in text
    assert "larger of yours and the central difference" in text
    assert "disagree with each other here too: the step" in text
    assert "relative error against central differences" not in text


def test_an_unwatched_tensor_is_named():
    """The commonest None: a tensor (not a tf.Variable) that the tape was not told to
    watch. With tape.watch the same function passes."""

    def tape_gradient(watch):
        def grad_f(x):
            with tf.GradientTape() as tape:
                if watch:
                    tape.watch(x)
                total = square_sum(x)
            return tape.gradient(total, x)

        return grad_f

    assert check.gradient(square_sum, tape_gradient(True), [0.0, 1.0, 2.0]) is None
    with pytest.raises(AssertionError) as caught:
        check.gradient(square_sum, tape_gradient(False), [0.0, 1.0, 2.0])
    text = message(caught)
    assert "returned None" in text and "not watched" in text and "tape.watch" in text


def summed_normalize(x):
    return tf.reduce_sum(x / tf.sqrt(tf.reduce_sum(x * x) + 1e-12))


def normalize_gradient(second=1.0):
    """The gradient of summed_normalize, with its second term times `second` (1 is
    right; 0, -1, 0.5 are the wrong derivations a check at 0 alone cannot see)."""

    def grad_f(x):
        x = np.asarray(x)
        s = np.sum(x * x) + 1e-12
        return 1 / np.sqrt(s) - second * np.sum(x) * x / s**1.5

    return grad_f


@pytest.mark.parametrize("second", [0.0, -1.0, 0.5])
def test_central_difference_that_agrees_with_the_tape_gives_no_step_advice(second):
    """At [3e-7, -4e-7] with h = 1e-9 the central difference's noise exceeds tol times
    the gradient, but it agrees with the tape: a wrong second term is caught and the
    message blames neither the step nor the bend (at 0 all of them pass: the term
    vanishes there)."""
    point = [3e-7, -4e-7]
    assert check.gradient(summed_normalize, normalize_gradient(), point, h=1e-9) is None
    assert (
        check.gradient(summed_normalize, normalize_gradient(second), [0.0, 0.0], h=1e-9)
        is None
    )
    with pytest.raises(AssertionError) as caught:
        check.gradient(summed_normalize, normalize_gradient(second), point, h=1e-9)
    text = message(caught)
    assert "almost certainly wrong" in text
    assert "agrees with the tape within that noise: the step is not at fault" in text
    assert "smaller h" not in text and "larger h" not in text and "bends" not in text
    assert "disagree with each other" not in text


def test_a_rounding_dominated_step_asks_for_a_larger_h():
    """f = |x|^2 + 1e6, not tape-differentiable (NumPy): at the default step the
    rounding of f (4 eps |f| / h, about 9e-5) dwarfs the gradient (about 4e-3). A
    gradient 1.5 times too large is caught, and the advice is a larger h or removing
    the offset, never a smaller h (with h = 1e-7 the rounding exceeds the gradient
    and the wrong gradient would pass); at h = 1e-3 the right gradient passes."""

    def f(x):
        return np.sum(np.asarray(x) ** 2) + 1e6

    point = [1e-3, 2e-3]
    assert check.gradient(f, lambda x: 2 * np.asarray(x), point, h=1e-3) is None
    with pytest.raises(AssertionError) as caught:
        check.gradient(f, lambda x: 3 * np.asarray(x), point)
    text = message(caught)
    assert "rounding of f" in text and "Try a larger h" in text
    assert "constant offset" in text and "smaller h" not in text.replace(
        "a smaller h makes it worse", ""
    )


def test_wrong_shape_is_a_value_error():
    with pytest.raises(ValueError, match="shape"):
        check.gradient(f_smooth, lambda x: grad_smooth(x).T, X0)


# ---------------------------------------------------------------- schedule


def my_cosine(initial, decay_steps, alpha=0.0, shift=0):
    def rate(step):
        t = tf.minimum(tf.cast(step, tf.float32) + shift, decay_steps) / decay_steps
        return initial * ((1 - alpha) * 0.5 * (1 + tf.cos(np.pi * t)) + alpha)

    return rate


def test_right_schedule_passes():
    reference = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=50, alpha=0.1)
    assert check.schedule(my_cosine(0.1, 50, alpha=0.1), reference, steps=80) is None


# Each wrong schedule, its reference, the steps compared, and the fragments its message
# must contain.
WRONG_SCHEDULES = [
    pytest.param(
        my_cosine(0.1, 50, shift=1),
        keras.optimizers.schedules.CosineDecay(0.1, decay_steps=50),
        40,
        ["part at step 0 ", "one step ahead"],
        id="one-step-ahead",
    ),
    pytest.param(
        lambda step: tf.where(step < 10, 0.1, 0.01),
        keras.optimizers.schedules.PiecewiseConstantDecay([10], [0.1, 0.01]),
        20,
        [
            "part at step 10 ",
            "Steps 0 to 9 agree",
            "one step ahead",
            "boundary test < where the reference has <=",
        ],
        id="boundary-off-by-one",
    ),
    pytest.param(
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5),
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
        30,
        [
            "part at step 1 ",
            "27 of 30 steps differ, the first 1, the last 29",
            "staircase",
        ],
        id="missing-staircase-counts-the-steps-that-differ",
    ),
    pytest.param(
        lambda s: 0.2 * 0.5 ** (tf.cast(s, tf.float32) / 10),
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5),
        100,
        ["2 times the reference"],
        id="wrong-initial-rate",
    ),
]


@pytest.mark.parametrize("mine, reference, steps, fragments", WRONG_SCHEDULES)
def test_wrong_schedule_is_caught_and_named(mine, reference, steps, fragments):
    assert_caught(lambda: check.schedule(mine, reference, steps=steps), fragments)


def test_schedule_with_python_branches_is_called_step_by_step():
    """A schedule that cannot take a vector of steps (a Python `if` on the step) is
    still checked at every step, and a wrong boundary is still found."""
    reference = keras.optimizers.schedules.PiecewiseConstantDecay([10], [0.1, 0.01])

    def right(step):
        return 0.1 if int(step) <= 10 else 0.01

    def early(step):
        return 0.1 if int(step) < 10 else 0.01

    assert check.schedule(right, reference, steps=20) is None
    with pytest.raises(AssertionError, match="part at step 10 "):
        check.schedule(early, reference, steps=20)


def test_schedule_whose_vector_call_differs_is_called_step_by_step():
    """A schedule that accepts a vector of steps but computes something else with it
    (here: only the first step's rate) is not trusted: the scalar calls decide."""
    reference = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)

    def misleading(step):
        step = tf.cast(step, tf.float32)
        if step.shape.rank:
            return tf.fill(tf.shape(step), 0.1)
        return 0.1 * 0.5 ** (step / 10)

    assert check.schedule(misleading, reference, steps=30) is None


def test_sampled_coordinates_still_compare_every_coordinate_with_the_tape():
    """With `coordinates`, central differences run at a few coordinates, but a wrong
    coordinate that was not sampled is still caught by the tape."""
    assert check.gradient(f_smooth, grad_smooth, X0, coordinates=2) is None
    for n in (1, 2, 3):
        with pytest.raises(AssertionError, match=r"wrong at coordinate \[1, 2\]"):
            check.gradient(f_smooth, grad_one_coordinate_wrong, X0, coordinates=n)


# ---------------------------------------------------------------- custom_gradient


@tf.custom_gradient
def round_straight_through(x):
    return tf.round(x), lambda upstream: upstream


@tf.custom_gradient
def round_ignoring_upstream(x):
    return tf.round(x), lambda upstream: tf.ones_like(upstream)


@tf.custom_gradient
def round_doubled_gradient(x):
    return tf.round(x), lambda upstream: 2 * upstream


@tf.custom_gradient
def round_negated_gradient(x):
    return tf.round(x), lambda upstream: -upstream


@tf.custom_gradient
def floor_straight_through(x):
    return tf.floor(x), lambda upstream: upstream


def pass_upstream(x, upstream):
    return upstream


RAW = [[0.2, 1.7, -2.6], [3.4, -0.4, 0.6]]


def test_right_custom_gradient_passes():
    assert (
        check.custom_gradient(round_straight_through, tf.round, pass_upstream, RAW)
        is None
    )


WRONG_CUSTOM_GRADIENTS = [
    pytest.param(
        tf.round,
        ["no gradient through your function (None)", "@tf.custom_gradient"],
        id="no-custom-gradient",
    ),
    pytest.param(
        floor_straight_through,
        ["values differ at entry [0, 1]", "input there: 1.7", "first element"],
        id="wrong-forward",
    ),
    pytest.param(
        round_ignoring_upstream,
        ["differs at entry", "ignores `upstream`"],
        id="upstream-ignored",
    ),
    pytest.param(
        round_doubled_gradient, ["Every entry is 2 times the intended"], id="factor"
    ),
    pytest.param(round_negated_gradient, ["opposite sign"], id="sign"),
    pytest.param(
        lambda x: tf.round(x) + 0 * x, ["zero everywhere"], id="zero-gradient"
    ),
]


@pytest.mark.parametrize("mine, fragments", WRONG_CUSTOM_GRADIENTS)
def test_wrong_custom_gradient_is_caught_and_named(mine, fragments):
    assert_caught(
        lambda: check.custom_gradient(mine, tf.round, pass_upstream, RAW), fragments
    )


def clipped_straight_through(x, upstream):
    """The gradient of a clipped straight-through estimator: upstream where |x| <= 1."""
    return upstream * tf.cast(tf.abs(x) <= 1, upstream.dtype)


@tf.custom_gradient
def round_clipped_straight_through(x):
    return tf.round(x), lambda upstream: clipped_straight_through(x, upstream)


@tf.custom_gradient
def round_clipped_doubled(x):
    return tf.round(x), lambda upstream: 2 * clipped_straight_through(x, upstream)


def test_a_missing_mask_is_not_called_a_factor():
    """A plain pass-through against an intended clipped straight-through estimator
    agrees wherever |x| <= 1 (a ratio of 1 there) and is wrong only where the intended
    gradient is 0: no "1 times" factor, the mask is named. A doubled clipped one is a
    factor 2 (zero where it should be)."""
    mask = ["differs at entry", "non-zero at 3 entries where it should be 0", "mask"]
    assert (
        check.custom_gradient(
            round_clipped_straight_through, tf.round, clipped_straight_through, RAW
        )
        is None
    )
    assert_caught(
        lambda: check.custom_gradient(
            round_straight_through, tf.round, clipped_straight_through, RAW
        ),
        mask,
    )
    with pytest.raises(AssertionError) as caught:
        check.custom_gradient(
            round_straight_through, tf.round, clipped_straight_through, RAW
        )
    assert "times the intended" not in message(caught)
    assert_caught(
        lambda: check.custom_gradient(
            round_clipped_doubled, tf.round, clipped_straight_through, RAW
        ),
        ["Every entry is 2 times the intended"],
    )


def test_none_through_a_custom_gradient_names_its_causes():
    """A wrapped function whose grad returns None, and a NumPy forward pass: the message
    lists both causes, not only a missing @tf.custom_gradient."""

    @tf.custom_gradient
    def grad_returns_none(x):
        return tf.round(x), lambda upstream: None

    def numpy_round(x):
        return tf.constant(np.round(x.numpy()))

    for mine in (grad_returns_none, numpy_round):
        assert_caught(
            lambda mine=mine: check.custom_gradient(mine, tf.round, pass_upstream, RAW),
            [
                "no gradient through your function (None)",
                "your grad function returns None",
                "a computation outside TensorFlow (NumPy, .numpy())",
            ],
        )


def test_custom_gradient_shapes_are_value_errors():
    with pytest.raises(ValueError, match="shape"):
        check.custom_gradient(
            round_straight_through, tf.round, lambda x, u: tf.reshape(u, [-1]), RAW
        )
    with pytest.raises(ValueError, match="shape"):
        check.custom_gradient(
            lambda x: tf.reshape(round_straight_through(x), [-1]),
            tf.round,
            pass_upstream,
            RAW,
        )
