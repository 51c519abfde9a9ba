# Generated from chapters/04_optimizers.md by `python -m gdbook.export`.
# Do not edit: change the cells marked `# @save` in the chapter and re-export.
"""Hand-written twins of Keras 3's optimizers, exported from the chapter "By hand versus
the library" (chapters/04_optimizers.md) by `python -m gdbook.export`."""

import numbers
import re

import numpy as np
import tensorflow as tf

__all__ = [
    "Optimizer",
    "GradientDescent",
    "Momentum",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
]
Schedule = tf.keras.optimizers.schedules.LearningRateSchedule


def check_range(name, value, low, high=None, low_open=False):
    """Raise a ValueError unless value is a real number with low <= value < high (low <
    value if low_open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and value >= high
    if too_low or too_high or not np.isfinite(value):
        interval = (
            f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        )
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def dense(grad):
    """An IndexedSlices gradient as a dense tensor (repeated rows are summed)."""
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def tf_variable(var):
    """The `tf.Variable` behind `var`: a Keras 3 variable (`keras.Variable`, what
    layers create) wraps one in its `.value`; a `tf.Variable` is itself."""
    return var if isinstance(var, tf.Variable) else var.value


def add_to_class(cls):
    """Decorator (as in d2l): attach a function to `cls` as a method, so that a class
    can be written over several cells."""

    def attach(method):
        setattr(cls, method.__name__, method)

    return attach


class Optimizer:
    """What every hand-written optimizer shares. Subclasses define `state_names` and
    `_update`."""

    def __init__(self, learning_rate, weight_decay=None):
        if weight_decay is not None:
            check_range("weight_decay", weight_decay, 0.0)
        self.weight_decay = weight_decay
        self.iterations = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="iterations"
        )
        self._learning_rate = None
        self.learning_rate = learning_rate
        # tf_variable(variable).ref() -> {state name: tf.Variable}
        self._state = {}
        self._no_decay_refs, self._no_decay_names = set(), None


def _get_learning_rate(self):
    """The rate the next update will use (as Keras: a schedule is evaluated)."""
    rate = self._learning_rate
    if isinstance(rate, Schedule):
        return rate(self.iterations)
    return rate() if callable(rate) else rate


def _set_learning_rate(self, rate):
    # as Keras: a schedule or callable replaces any rate; a number replaces only a
    # number (or a callable), never a schedule
    if callable(rate):
        self._learning_rate = rate
        return
    if isinstance(self._learning_rate, Schedule):
        raise TypeError("the learning rate is a schedule and cannot be set")
    rate = check_range("learning_rate", rate, 0.0)
    if isinstance(self._learning_rate, tf.Variable):
        self._learning_rate.assign(rate)
    else:
        self._learning_rate = tf.Variable(rate, trainable=False, name="lr")


Optimizer.learning_rate = property(
    _get_learning_rate, _set_learning_rate, doc=_get_learning_rate.__doc__
)


@add_to_class(Optimizer)
def state_names(self):
    return ()


@add_to_class(Optimizer)
def initial_state_value(self, name):
    return 0.0


@add_to_class(Optimizer)
def state(self, variable, name):
    """The optimizer's state `name` for `variable` (e.g. its velocity)."""
    return self._state[tf_variable(variable).ref()][name]


@add_to_class(Optimizer)
def exclude_from_weight_decay(self, var_list=None, var_names=None):
    """As Keras: spare these variables, and those whose name contains one of
    `var_names`, from the decoupled weight decay."""
    if self._state:
        raise ValueError("call exclude_from_weight_decay() before the first step")
    self._no_decay_refs = {tf_variable(var).ref() for var in var_list or ()}
    self._no_decay_names = "|".join(set(var_names)) if var_names else None


@add_to_class(Optimizer)
def uses_weight_decay(self, var):
    if tf_variable(var).ref() in self._no_decay_refs:
        return False
    return not (self._no_decay_names and re.search(self._no_decay_names, var.name))


@add_to_class(Optimizer)
def build(self, variables):
    """Create the state of each variable not seen before."""
    for var in variables:
        if tf_variable(var).ref() not in self._state:
            self._state[tf_variable(var).ref()] = {
                name: tf.Variable(
                    tf.fill(
                        var.shape,
                        tf.constant(self.initial_state_value(name), var.dtype),
                    ),
                    trainable=False,
                    name=name,
                )
                for name in self.state_names()
            }


@add_to_class(Optimizer)
def apply_gradients(self, grads_and_vars):
    pairs = [(dense(grad), var) for grad, var in grads_and_vars if grad is not None]
    if not pairs:
        raise ValueError("No gradients provided for any variable.")
    for grad, var in pairs:
        if not grad.shape.is_compatible_with(var.shape):
            raise ValueError(
                f"the gradient for variable {var.name!r} has shape {grad.shape}, "
                f"but the variable has shape {var.shape}"
            )
    self.build([var for _, var in pairs])
    rate = self.learning_rate
    if self.weight_decay is not None:
        # decoupled: shrink the weights, then take the step; (w * decay) * rate, in
        # Keras' order, not w * (decay * rate), which rounds differently
        for _, var in pairs:
            if self.uses_weight_decay(var):
                var = tf_variable(var)
                decay = tf.cast(self.weight_decay, var.dtype)
                var.assign_sub(var * decay * tf.cast(rate, var.dtype))
    for grad, var in pairs:
        var = tf_variable(var)
        grad = tf.cast(grad, var.dtype)
        self._update(var, grad, tf.cast(rate, var.dtype), self._state[var.ref()])
    self.iterations.assign_add(1)


class GradientDescent(Optimizer):
    """Equation (eq-optimizers-gd); twin of keras.optimizers.SGD()."""

    def __init__(self, learning_rate=0.01, weight_decay=None):
        super().__init__(learning_rate, weight_decay)

    def _update(self, var, grad, rate, state):
        var.assign_sub(grad * rate)


class Momentum(Optimizer):
    """Heavy ball (eq-optimizers-momentum) or Nesterov (eq-optimizers-nesterov); twin of
    SGD(momentum)."""

    def __init__(
        self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None
    ):
        super().__init__(learning_rate, weight_decay)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def state_names(self):
        return ("velocity",)

    def _update(self, var, grad, rate, state):
        velocity, mu = state["velocity"], tf.cast(self.momentum, var.dtype)
        velocity.assign(velocity * mu - grad * rate)
        if self.nesterov:
            var.assign_add(velocity * mu - grad * rate)
        else:
            var.assign_add(velocity)


class Adagrad(Optimizer):
    """Equation (eq-optimizers-adagrad); twin of keras.optimizers.Adagrad."""

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        weight_decay=None,
    ):
        super().__init__(learning_rate, weight_decay)
        self.initial_accumulator_value = check_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0
        )
        self.epsilon = check_range("epsilon", epsilon, 0.0, low_open=True)

    def state_names(self):
        return ("accumulator",)

    def initial_state_value(self, name):
        return self.initial_accumulator_value


@add_to_class(Adagrad)
def _update(self, var, grad, rate, state):
    accumulator = state["accumulator"]
    accumulator.assign_add(tf.square(grad))
    var.assign_sub(rate * grad / tf.sqrt(accumulator + self.epsilon))


class RMSprop(Optimizer):
    """Equation (eq-optimizers-rmsprop); twin of keras.optimizers.RMSprop."""

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        weight_decay=None,
    ):
        super().__init__(learning_rate, weight_decay)
        self.rho = check_range("rho", rho, 0.0, 1.0)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0)
        self.epsilon = check_range("epsilon", epsilon, 0.0, low_open=True)
        self.centered = bool(centered)

    def state_names(self):
        return (
            ("velocity",)
            + ("average_gradient",) * self.centered
            + ("momentum",) * (self.momentum > 0)
        )


@add_to_class(RMSprop)
def _update(self, var, grad, rate, state):
    rho, velocity = self.rho, state["velocity"]
    velocity.assign(rho * velocity + (1 - rho) * tf.square(grad))
    if self.centered:
        average = state["average_gradient"]
        average.assign(rho * average + (1 - rho) * grad)
        denominator = velocity - tf.square(average) + self.epsilon
    else:
        denominator = velocity + self.epsilon
    increment = rate * grad / tf.sqrt(denominator)
    if self.momentum > 0:
        smoothed = state["momentum"]
        smoothed.assign(self.momentum * smoothed + increment)
        var.assign_sub(smoothed)
    else:
        var.assign_sub(increment)


class Adam(Optimizer):
    """Equation (eq-optimizers-adam), with AMSGrad on request; twin of
    keras.optimizers.Adam."""

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        weight_decay=None,
    ):
        super().__init__(learning_rate, weight_decay)
        self.beta_1 = check_range("beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = check_range("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_range("epsilon", epsilon, 0.0, low_open=True)
        self.amsgrad = bool(amsgrad)

    def state_names(self):
        return ("m", "v") + ("v_max",) * self.amsgrad


@add_to_class(Adam)
def _update(self, var, grad, rate, state):
    step = tf.cast(self.iterations + 1, var.dtype)
    beta_1_power = tf.pow(tf.cast(self.beta_1, var.dtype), step)
    beta_2_power = tf.pow(tf.cast(self.beta_2, var.dtype), step)
    corrected_rate = rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    m, v = state["m"], state["v"]
    m.assign_add((grad - m) * (1 - self.beta_1))
    v.assign_add((tf.square(grad) - v) * (1 - self.beta_2))
    if self.amsgrad:
        state["v_max"].assign(tf.maximum(state["v_max"], v))
        v = state["v_max"]
    var.assign_sub(m * corrected_rate / (tf.sqrt(v) + self.epsilon))


class AdamW(Adam):
    """Adam with decoupled weight decay (eq-optimizers-adamw); twin of
    keras.optimizers.AdamW."""

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
    ):
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay
        )
