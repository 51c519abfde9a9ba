# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,mystnb,-all
#     default_lexer: ipython3
#     notebook_metadata_filter: mystnb
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-schedules)=
# # Schedules and regularization
#
# :::{admonition} What you will learn
# :class: tip
# - To write each of TensorFlow's learning-rate schedules as a formula and as a few lines of Python,
#   and to check them against `tf.compat.v1.train.*` (TF1) and `tf.keras.optimizers.schedules.*` (TF2)
#   at every step from 0 to 1000.
# - How a schedule reaches the optimizer: TF1's `global_step`, Keras' `optimizer.iterations`, and the
#   silent bug of a `global_step` that never moves.
# - Why a decaying rate can end closer to the minimum than every constant rate when gradients are
#   noisy, measured over several seeds, and what Robbins and Monro's conditions do and do not decide.
# - The three L2 conventions (`tf.nn.l2_loss` halves, Keras' `L2` does not, TF1's `l2_regularizer`
#   scales the half) and how to translate a TF1 setting into TF2.
# - Why an L2 penalty and weight decay are the same thing for gradient descent and different things
#   for Adam, drawn in the plane, and what that means on a small MNIST model that overfits.
# - Why early stopping acts like an L2 penalty with $\lambda \approx 1/(\tau\alpha)$, predicted and
#   checked on a quadratic.
# :::
#
# A learning rate that is right at the start of training is usually too large at the end: far from the
# minimum a big step makes progress, near it the same step jumps around. A *schedule* makes the rate a
# function of the step number. *Regularization* changes what is being minimized (or how the weights
# move) so that the model fits the training data less eagerly. Both are a handful of lines of
# arithmetic, and TensorFlow has renamed both more than once; this chapter writes each of them by hand
# and checks the library against the hand-written version, number by number.

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from myst_nb import glue

tf1 = tf.compat.v1  # the TF1 API of the source documents
schedules = tf.keras.optimizers.schedules

# %% [markdown]
# ## A decaying rate in the source document (TF1)
#
# The first source document {cite:p}`src000` solves a tiny linear "system" by gradient descent in TF1 graph mode. The
# input is the row $x = (2, 1)$, the target is 0, the weights are $w = (1, 2)^\top$ and the bias $b$ has
# **two** entries, so the prediction $p = xw + b$ is a $1 \times 2$ row with two equal entries. The loss
# is the mean of the two squared errors, and the learning rate follows TF1's `exponential_decay` with
# initial rate 0.05, decay rate 0.9 and 100 decay steps:
#
# $$
# \alpha_t = \alpha_0 \, r^{t/T}, \qquad \alpha_0 = 0.05,\; r = 0.9,\; T = 100 .
# $$ (eq-schedules-exp)
#
# We rebuild that graph with `tf.compat.v1`: `tf.gradients` for the gradients, the update applied by
# hand, and a `global_step` variable that the training op increments after every update.

# %%
source_graph = tf.Graph()
with source_graph.as_default():
    x = tf.constant([[2.0, 1.0]])
    target = tf.constant([0.0])
    w = tf1.Variable([[1.0], [2.0]], name="w")
    b = tf1.Variable([0.0, 0.0], name="b")
    prediction = tf.matmul(x, w) + b  # shape [1, 2]: b broadcasts
    loss = tf.reduce_mean((target - prediction) ** 2)

    global_step = tf1.Variable(0, trainable=False, name="global_step")
    learning_rate = tf1.train.exponential_decay(
        0.05, global_step, decay_steps=100, decay_rate=0.9
    )

    variables = tf1.trainable_variables()
    gradients = tf.gradients(loss, variables)
    gradient_sums_of_squares = [tf.reduce_sum(g**2) for g in gradients]
    updates = [
        tf1.assign_sub(v, learning_rate * g)
        for v, g in zip(variables, gradients, strict=True)
    ]
    with tf.control_dependencies(updates):  # count the step only after the update
        train_step = tf1.assign_add(global_step, 1)
    initialize = tf1.global_variables_initializer()

# %% [markdown]
# We run eleven steps, as the source does, and keep what it printed: the two gradient sums of squares
# and the prediction before each update, and also the learning rate that the update used.

# %%
with tf1.Session(graph=source_graph) as session:
    session.run(initialize)
    tf1_rows = []
    for _ in range(11):
        tf1_rows.append(
            session.run([gradient_sums_of_squares, prediction, learning_rate])
        )
        session.run(train_step)

tf1_sse = np.array([row[0] for row in tf1_rows])  # (11, 2)
tf1_pred = np.array([row[1][0, 0] for row in tf1_rows])  # both entries are equal
tf1_rate = np.array([row[2] for row in tf1_rows])
for step, (sse, pred, rate) in enumerate(zip(tf1_sse, tf1_pred, tf1_rate, strict=True)):
    print(
        f"step {step:2d}  grad SSE [{sse[0]:.8g}, {sse[1]:.8g}]  prediction "
        f"{pred:.8g}  rate {rate:.8g}"
    )

# %% [markdown]
# These are the source's printed numbers (the same values {ref}`ch-tf-gradients` checks, kept in
# `gdbook.sources`): the gradient sums of squares bit for bit, and the predictions, which the source
# printed rounded (to at most eight decimals), digit for digit:

# %%
from gdbook.sources import LINEAR_SYSTEM_GRADIENT_SUMS_OF_SQUARES as source_sse
from gdbook.sources import LINEAR_SYSTEM_PREDICTIONS as source_pred

sse_bits_equal = np.array_equal(tf1_sse, source_sse.astype(np.float32))
# the decimals the source printed for each prediction (1.8 has one, 0.00144264 eight)
printed_decimals = [len(repr(float(p)).split(".")[1]) for p in source_pred]
pred_digit_for_digit = all(
    round(float(ours), d) == p
    for ours, p, d in zip(tf1_pred, source_pred, printed_decimals, strict=True)
)
print(f"gradient SSE bit for bit: {sse_bits_equal}")
print(f"predictions digit for digit: {pred_digit_for_digit}")
assert sse_bits_equal and pred_digit_for_digit

# %% [markdown]
# ### Why the shrink factor drifts
#
# {ref}`ch-tf-gradients` derives the law behind these numbers: each update multiplies the prediction
# by $1 - 11\alpha_t$ ({eq}`eq-tf-gradients-shrink`), so with a constant $\alpha = 0.05$ the factor
# would be $0.45$ at every step, and checks it step by step against the source's run. What matters here is the
# schedule's part in it.
#
# The factor drifts because `exponential_decay` without `staircase=True` decays *continuously*: the
# exponent $t/T$ is a real number, so the rate shrinks a little at every step, by the constant factor
# $r^{1/T} = 0.9^{1/100}$, rather than by 0.9 once every 100 steps. Every smaller rate makes a
# smaller step, so the prediction shrinks a little less each time:

# %%
per_step_rate_factor = 0.9 ** (1 / 100)
print(
    f"alpha(t+1)/alpha(t) = {per_step_rate_factor:.7f} (TF1: "
    f"{tf1_rate[1] / tf1_rate[0]:.7f})"
)
print(
    f"after 1000 steps alpha = {0.05 * 0.9**10:.6f}, shrink factor "
    f"{1 - 11 * 0.05 * 0.9**10:.4f}"
)
assert np.allclose(tf1_rate[1:] / tf1_rate[:-1], per_step_rate_factor, rtol=1e-6)
# the prediction shrinks a little less at each step
shrink = tf1_pred[1:] / tf1_pred[:-1]
print("p(t+1)/p(t), steps 0 and 9:", shrink[[0, -1]])
assert np.all(np.diff(shrink) > 0)

# %% [markdown]
# With `staircase=True` the exponent is rounded down, $\lfloor t/T \rfloor$, so the rate stays at
# exactly 0.05 for steps 0 to 99 and the factor stays at 0.45. The closed form
# {eq}`eq-tf-gradients-shrink` says so; here it is from a TF1 graph with the staircase switched on,
# now fed the step through a placeholder:

# %%
staircase_graph = tf.Graph()
with staircase_graph.as_default():
    step_fed = tf1.placeholder(tf.int64, shape=[])
    staircase_rate = tf1.train.exponential_decay(
        0.05, step_fed, 100, 0.9, staircase=True
    )
with tf1.Session(graph=staircase_graph) as session:
    staircase_rates = np.array(
        [session.run(staircase_rate, {step_fed: t}) for t in range(0, 301, 50)]
    )
print("staircase rate at steps 0, 50, ..., 300:", staircase_rates)
print("staircase shrink factor at step 0..99:", 1 - 11 * staircase_rates[0])
assert np.all(staircase_rates[:2] == np.float32(0.05))
assert np.allclose(
    staircase_rates[2:], [0.045, 0.045, 0.0405, 0.0405, 0.03645], rtol=1e-6
)


# %% [markdown]
# ## Ten schedules, by hand, in TF1 and in Keras
#
# TF1 offered its schedules as functions of a `global_step` tensor (`tf.train.exponential_decay` and
# friends, now under `tf.compat.v1.train`); TF2 offers them as objects that are called with the step
# (`tf.keras.optimizers.schedules.ExponentialDecay` and friends). The source document on weight updates
# {cite:p}`src003` lists three of them: `exponential_decay`, `natural_exp_decay` and `inverse_time_decay`. Writing $t$ for the
# step, $\alpha_0$ for the initial rate and $T$ for the decay steps, the family is:
#
# $$
# \alpha_t = \alpha_0\, e^{-k\,t/T}
# $$ (eq-schedules-natural-exp)
#
# $$
# \alpha_t = \frac{\alpha_0}{1 + k\,t/T}
# $$ (eq-schedules-inverse-time)
#
# $$
# \alpha_t = v_i \quad\text{for}\quad b_{i-1} < t \le b_i \qquad (b_0 = -\infty,\; b_{n+1} = +\infty)
# $$ (eq-schedules-piecewise)
#
# $$
# \alpha_t = (\alpha_0 - \alpha_\text{end})\Bigl(1 - \frac{\min(t, T)}{T}\Bigr)^{q} + \alpha_\text{end}
# $$ (eq-schedules-polynomial)
#
# $$
# \alpha_t = \alpha_0\Bigl[(1 - a)\,\tfrac12\Bigl(1 + \cos\frac{\pi \min(t, T)}{T}\Bigr) + a\Bigr]
# $$ (eq-schedules-cosine)
#
# $$
# \alpha_t = \begin{cases}
# \alpha_\text{start} + (\alpha_\text{peak} - \alpha_\text{start})\,t/W & t < W\\[2pt]
# \alpha_\text{peak}\Bigl[(1 - a)\,\tfrac12\Bigl(1 + \cos\frac{\pi \min(t - W, T)}{T}\Bigr) + a\Bigr] & t \ge W
# \end{cases}
# $$ (eq-schedules-warmup)
#
# $$
# \alpha_t = \alpha_0\Bigl[(1 - a)\, m^{i}\,\tfrac12\Bigl(1 + \cos\frac{\pi (t - s_i)}{T c^{i}}\Bigr) + a\Bigr],
# \qquad s_i = T\,\frac{1 - c^{i}}{1 - c} \le t < s_{i+1}
# $$ (eq-schedules-restarts)
#
# $$
# \alpha_t = \begin{cases}
# \alpha_\text{peak}\,t/W & t < W\\[2pt]
# (\alpha_\text{peak} - \alpha_\text{end})\Bigl(1 - \frac{\min(t - W, T)}{T}\Bigr) + \alpha_\text{end} & t \ge W
# \end{cases}
# $$ (eq-schedules-warmup-linear)
#
# together with the exponential decay {eq}`eq-schedules-exp`. For the staircase variants of
# {eq}`eq-schedules-exp`, {eq}`eq-schedules-natural-exp` and {eq}`eq-schedules-inverse-time`, $t/T$
# becomes $\lfloor t/T \rfloor$. Cosine decay is from {cite:t}`loshchilov2017`, and so are its *warm
# restarts* {eq}`eq-schedules-restarts`: cycle $i = 0, 1, \ldots$ starts at step $s_i$, lasts $T c^{i}$
# steps (each cycle $c$ times longer than the one before; for $c = 1$ the formula for $s_i$ reads
# $0/0$ and means $s_i = iT$), and its cosine part starts from a height multiplied by $m$ once
# more; at each restart the rate jumps back up. The linear warm-up, in front of a cosine in
# {eq}`eq-schedules-warmup` and in front of a straight line down to $\alpha_\text{end}$ in
# {eq}`eq-schedules-warmup-linear`, was introduced by {cite:t}`goyal2017` for large-batch SGD with
# momentum: with the learning rate scaled up in proportion to the batch, the first steps, taken while the network is changing fastest, were unstable, and a few
# epochs of ramp-up fixed that. A second, different argument is specific to Adam: its adaptive rate
# rests on a variance estimate from only a few gradients during the first steps, and
# {cite:t}`liu2020radam` show that warm-up works by keeping those steps small (their RAdam corrects
# the variance instead). Here is how the names map:
#
# | schedule | formula | TF1 (`tf.compat.v1.train.`) | TF2 (`tf.keras.optimizers.schedules.`) |
# | --- | --- | --- | --- |
# | exponential | {eq}`eq-schedules-exp` | `exponential_decay` | `ExponentialDecay` |
# | natural exponential | {eq}`eq-schedules-natural-exp` | `natural_exp_decay` | `ExponentialDecay` with $r = e^{-k}$ |
# | inverse time | {eq}`eq-schedules-inverse-time` | `inverse_time_decay` | `InverseTimeDecay` |
# | piecewise constant | {eq}`eq-schedules-piecewise` | `piecewise_constant` | `PiecewiseConstantDecay` |
# | polynomial | {eq}`eq-schedules-polynomial` | `polynomial_decay` | `PolynomialDecay` |
# | cosine | {eq}`eq-schedules-cosine` | `cosine_decay` | `CosineDecay` |
# | cosine with warm-up | {eq}`eq-schedules-warmup` | (none) | `CosineDecay(warmup_target=..., warmup_steps=...)` |
# | cosine with restarts | {eq}`eq-schedules-restarts` | `cosine_decay_restarts` | `CosineDecayRestarts` (with $c$ = `t_mul`, $m$ = `m_mul`) |
# | warm-up, then linear | {eq}`eq-schedules-warmup-linear` | (none) | (none: a linear warm-up in front of `PolynomialDecay(power=1)`, below) |
#
# Keras has no natural-exponential class because it does not need one: $e^{-k t/T} = (e^{-k})^{t/T}$.
# TensorFlow's own `natural_exp_decay` is implemented exactly that way (read
# `tensorflow/python/keras/optimizer_v2/legacy_learning_rate_decay.py`).
#
# Each formula is a few lines of plain Python, a function of the step alone:


# %%
def exponential_decay(step, lr0, decay_steps, rate, staircase=False):
    p = math.floor(step / decay_steps) if staircase else step / decay_steps
    return lr0 * rate**p


def natural_exp_decay(step, lr0, decay_steps, k, staircase=False):
    p = math.floor(step / decay_steps) if staircase else step / decay_steps
    return lr0 * math.exp(-k * p)


def inverse_time_decay(step, lr0, decay_steps, k, staircase=False):
    p = math.floor(step / decay_steps) if staircase else step / decay_steps
    return lr0 / (1 + k * p)


def piecewise_constant(step, boundaries, values):
    for boundary, value in zip(boundaries, values, strict=False):
        if step <= boundary:  # a boundary step still belongs to the piece before it
            return value
    return values[-1]


# %% [markdown]
# The schedules that end somewhere, warm up or restart are a few more lines each:


# %%
def polynomial_decay(step, lr0, decay_steps, end_lr, power):
    done = min(step, decay_steps) / decay_steps
    return (lr0 - end_lr) * (1 - done) ** power + end_lr


def cosine_decay(step, lr0, decay_steps, alpha=0.0):
    done = min(step, decay_steps) / decay_steps
    return lr0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * done)) + alpha)


def cosine_with_warmup(step, start_lr, peak_lr, warmup_steps, decay_steps, alpha=0.0):
    if step < warmup_steps:
        return start_lr + (peak_lr - start_lr) * step / warmup_steps
    return cosine_decay(step - warmup_steps, peak_lr, decay_steps, alpha)


# %% [markdown]
# Cosine with restarts first finds the cycle the step falls in; the warm-up followed by a linear
# decay reuses `polynomial_decay` with power 1:


# %%
def cosine_restarts(step, lr0, first_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    cycle, start, length = 0, 0, first_steps
    # find the cycle i with s_i <= step < s_(i+1)
    while step >= start + length:
        cycle, start, length = cycle + 1, start + length, length * t_mul
    done = (step - start) / length
    return lr0 * (
        (1 - alpha) * m_mul**cycle * 0.5 * (1 + math.cos(math.pi * done)) + alpha
    )


def warmup_linear(step, peak_lr, warmup_steps, decay_steps, end_lr=0.0):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return polynomial_decay(step - warmup_steps, peak_lr, decay_steps, end_lr, 1.0)


# %% [markdown]
# Keras has no class for the last one, so we build it the way a Keras user would: a subclass of
# `LearningRateSchedule` whose `__call__` takes the step as a tensor and puts a linear ramp in front of
# Keras' own `PolynomialDecay` with `power=1`. Written with `tf.where`, it accepts a whole vector of
# steps at once. It also needs a `get_config`: the base class's raises `NotImplementedError`, and the
# optimizer calls it when asked for its own config (`optimizer.get_config()`), which saving a whole
# model to a `.keras` file does. Saving only the weights (`save_weights`, `tf.train.Checkpoint`) stores
# the optimizer's variables and never asks.


# %%
class WarmupThenLinear(schedules.LearningRateSchedule):
    def __init__(self, peak_lr, warmup_steps, decay_steps, end_lr=0.0):
        self.peak_lr, self.warmup_steps = peak_lr, warmup_steps
        self.decay_steps, self.end_lr = decay_steps, end_lr
        self.decay = schedules.PolynomialDecay(peak_lr, decay_steps, end_lr, power=1.0)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        ramp = self.peak_lr * step / self.warmup_steps
        after = self.decay(tf.maximum(step - self.warmup_steps, 0.0))
        return tf.where(step < self.warmup_steps, ramp, after)

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "end_lr": self.end_lr,
        }


# %% [markdown]
# With it, an optimizer's config holds the schedule's arguments, and `from_config` (inherited from
# the base class) rebuilds the same schedule from them:

# %%
sgd_config = tf.keras.optimizers.SGD(WarmupThenLinear(0.1, 100, 800)).get_config()
print(sgd_config["learning_rate"]["config"])
rebuilt = WarmupThenLinear.from_config(sgd_config["learning_rate"]["config"])
assert float(rebuilt(300)) == float(WarmupThenLinear(0.1, 100, 800)(300))


# %% [markdown]
# One set of settings per schedule, all starting from (or peaking at) 0.1 and chosen so that the curves
# can be told apart over 1000 steps. The restarts come at steps 100, 300 and 700 (cycles of 100, 200
# and 400 steps), each with a cosine part 0.8 times as high as the last ($m = 0.8$) above a floor of
# $a = 0.05$ times the initial rate. Each entry holds the hand-written function with its arguments, the
# TF1 function (or `None`) and the Keras object:


# %%
def tf1_schedule(function, *args, **kwargs):
    """A TF1 decay function waiting for its global_step tensor."""
    return lambda step: function(*args, global_step=step, **kwargs)


variants = {
    "exponential": (
        lambda t: exponential_decay(t, 0.1, 250, 0.5),
        tf1_schedule(tf1.train.exponential_decay, 0.1, decay_steps=250, decay_rate=0.5),
        schedules.ExponentialDecay(0.1, 250, 0.5),
    ),
    "exponential, staircase": (
        lambda t: exponential_decay(t, 0.1, 250, 0.5, staircase=True),
        tf1_schedule(
            tf1.train.exponential_decay,
            0.1,
            decay_steps=250,
            decay_rate=0.5,
            staircase=True,
        ),
        schedules.ExponentialDecay(0.1, 250, 0.5, staircase=True),
    ),
}

# %% [markdown]
# The rest of the first group: the natural exponential, inverse time and piecewise constant decays.

# %%
variants |= {
    "natural exponential": (
        lambda t: natural_exp_decay(t, 0.1, 200, 1.0),
        tf1_schedule(tf1.train.natural_exp_decay, 0.1, decay_steps=200, decay_rate=1.0),
        schedules.ExponentialDecay(0.1, 200, math.exp(-1.0)),
    ),
    "inverse time": (
        lambda t: inverse_time_decay(t, 0.1, 100, 1.0),
        tf1_schedule(
            tf1.train.inverse_time_decay, 0.1, decay_steps=100, decay_rate=1.0
        ),
        schedules.InverseTimeDecay(0.1, 100, 1.0),
    ),
    "piecewise constant": (
        lambda t: piecewise_constant(t, [300, 600], [0.1, 0.05, 0.02]),
        lambda step: tf1.train.piecewise_constant(step, [300, 600], [0.1, 0.05, 0.02]),
        schedules.PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.02]),
    ),
}

# %% [markdown]
# The second group, the schedules that end somewhere, warm up or restart, starts with the polynomial decay and the
# two cosine decays:

# %%
variants |= {
    "polynomial (q = 2)": (
        lambda t: polynomial_decay(t, 0.1, 800, 0.005, 2.0),
        tf1_schedule(
            tf1.train.polynomial_decay,
            0.1,
            decay_steps=800,
            end_learning_rate=0.005,
            power=2.0,
        ),
        schedules.PolynomialDecay(0.1, 800, end_learning_rate=0.005, power=2.0),
    ),
    "cosine": (
        lambda t: cosine_decay(t, 0.1, 1000),
        tf1_schedule(tf1.train.cosine_decay, 0.1, decay_steps=1000),
        schedules.CosineDecay(0.1, 1000),
    ),
    "cosine with warm-up": (
        lambda t: cosine_with_warmup(t, 0.0, 0.1, 100, 900),
        None,
        schedules.CosineDecay(0.0, 900, warmup_target=0.1, warmup_steps=100),
    ),
}

# %% [markdown]
# and ends with the restarts and the warm-up followed by a linear decay:

# %%
variants |= {
    "cosine with restarts": (
        lambda t: cosine_restarts(t, 0.1, 100, t_mul=2.0, m_mul=0.8, alpha=0.05),
        tf1_schedule(
            tf1.train.cosine_decay_restarts,
            0.1,
            first_decay_steps=100,
            t_mul=2.0,
            m_mul=0.8,
            alpha=0.05,
        ),
        schedules.CosineDecayRestarts(0.1, 100, t_mul=2.0, m_mul=0.8, alpha=0.05),
    ),
    "warm-up, then linear": (
        lambda t: warmup_linear(t, 0.1, 100, 800, 0.002),
        None,
        WarmupThenLinear(0.1, 100, 800, 0.002),
    ),
}

# %% [markdown]
# Now every schedule is evaluated at every step from 0 to 1000, three times. The TF1 versions live in
# one graph and read the step from a placeholder, exactly as they would read a `global_step` variable.
# The Keras objects accept a whole vector of steps, except the warm-up variant, whose `cond` needs a
# scalar; `tf.vectorized_map` maps it over the vector.

# %%
steps = np.arange(1001)
by_hand = {
    name: np.array([f(int(t)) for t in steps]) for name, (f, _, _) in variants.items()
}

tf1_graph = tf.Graph()
with tf1_graph.as_default():
    step_fed = tf1.placeholder(tf.int64, shape=[])
    tf1_tensors = {
        name: make(step_fed)
        for name, (_, make, _) in variants.items()
        if make is not None
    }
with tf1.Session(graph=tf1_graph) as session:
    fetched = [session.run(tf1_tensors, {step_fed: t}) for t in steps]
by_tf1 = {name: np.array([row[name] for row in fetched]) for name in tf1_tensors}

step_vector = tf.range(1001, dtype=tf.int64)
by_keras = {}
for name, (_, _, keras_schedule) in variants.items():
    if name == "cosine with warm-up":
        by_keras[name] = tf.vectorized_map(keras_schedule, step_vector).numpy()
    else:
        by_keras[name] = keras_schedule(step_vector).numpy()

# %% [markdown]
# The table below compares them. TensorFlow computes in float32 and the hand-written functions in
# float64, so we measure the difference relative to the initial rate 0.1 (a difference relative to the
# rate itself would blow up near the end of the cosine, where $1 + \cos$ cancels to almost nothing in
# float32).

# %%
print(
    f"{'schedule':24s} {'hand vs Keras':>14s} {'hand vs TF1':>12s} "
    f"{'TF1 vs Keras':>13s}"
)
for name in variants:
    hand_keras = np.max(np.abs(by_hand[name] - by_keras[name])) / 0.1
    line = f"{name:24s} {hand_keras:14.1e}"
    if name in by_tf1:
        hand_tf1 = np.max(np.abs(by_hand[name] - by_tf1[name])) / 0.1
        tf1_keras = np.max(np.abs(by_tf1[name] - by_keras[name])) / 0.1
        line += f" {hand_tf1:12.1e} {tf1_keras:13.1e}"
        assert hand_tf1 < 1e-6 and tf1_keras < 1e-6
    else:
        line += f" {'(no TF1)':>12s}"
    print(line)
    assert hand_keras < 1e-6
tf1_keras_exact = sorted(
    name for name in by_tf1 if np.array_equal(by_tf1[name], by_keras[name])
)
print("TF1 and Keras bit for bit:", tf1_keras_exact)
assert tf1_keras_exact == ["exponential, staircase", "piecewise constant"]

# %% [markdown]
# The hand-written functions agree with both libraries to float32 rounding (about $10^{-7}$ of the
# initial rate) at all 1001 steps. TF1 and Keras compute the same formulas in float32: for the two
# step-shaped schedules (the staircase and the piecewise constant) they agree bit for bit, but for the
# six that change at every step they do not. TF1's decay functions are today thin wrappers: `exponential_decay` and
# its siblings build a Keras 2 schedule object (TensorFlow's bundled copy in
# `tensorflow/python/keras/optimizer_v2/`) and call it with `global_step` in the graph (in eager mode
# they return that callable instead of a tensor). So both sides evaluate the same expression; which
# step of the graph or of the vectorized Keras call rounds differently in the last bit we have not
# pinned down. Where a bit-for-bit comparison
# matters, as in the next section, give both sides the *same* schedule object. {numref}`fig-schedules-all` draws them.

# %% mystnb={"figure": {"caption": "The schedules of the table over 1000 steps, in two panels. Left, the exponential decay (continuous and staircase), the natural exponential, inverse time and piecewise constant decays; right, the polynomial and cosine decays, which reach their final rate at a set step, and the schedules that warm up or restart. The warm-ups climb linearly for 100 steps; the restarts jump back up at steps 100, 300 and 700.", "name": "fig-schedules-all"}}
GROUPS = [
    ["exponential", "exponential, staircase", "natural exponential", "inverse time"]
    + ["piecewise constant"],
    ["polynomial (q = 2)", "cosine", "cosine with warm-up", "cosine with restarts"]
    + ["warm-up, then linear"],
]
LINE_STYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, group in zip(axes, GROUPS, strict=True):
    for name, style in zip(group, LINE_STYLES, strict=True):
        ax.plot(steps, by_keras[name], linestyle=style, lw=1.8, label=name)
    ax.set_xlabel("step $t$")
    ax.legend(fontsize="small")
axes[0].set_ylabel(r"learning rate $\alpha_t$")
assert sorted(GROUPS[0] + GROUPS[1]) == sorted(variants)
plt.show()

# %% [markdown]
# Two details of the libraries that the formulas make visible. The piecewise-constant schedule uses
# $t \le b_i$, so at the boundary step 300 the rate is still the first value; and `PolynomialDecay`,
# `CosineDecay` clamp the step at $T$, so after the decay steps the rate stays at its final value
# instead of turning back up.

# %%
piecewise = by_keras["piecewise constant"]
print("piecewise rate at steps 299, 300, 301:", piecewise[299:302])
print(
    "polynomial rate at steps 800 and 1000:",
    by_keras["polynomial (q = 2)"][[800, 1000]],
)
assert piecewise[300] == np.float32(0.1) and piecewise[301] == np.float32(0.05)
assert np.all(by_keras["polynomial (q = 2)"][800:] == np.float32(0.005))

# %% [markdown]
# `gdbook.check.schedule`, which the exercises below use on the reader's schedules, makes the same
# comparison and, when two schedules part, names the first step where they do. The two schedules
# added last pass it against their formulas (called with plain Python integers) over 1000 steps, and
# the restarts come where {eq}`eq-schedules-restarts` puts them, each from a lower peak:

# %%
from gdbook import check

for name in ["cosine with restarts", "warm-up, then linear"]:
    formula, _, keras_schedule = variants[name]
    check.schedule(lambda s, f=formula: f(int(s)), keras_schedule, steps=1000)
restarts = by_keras["cosine with restarts"]
jumps = np.flatnonzero(np.diff(restarts) > 0) + 1
print("restarts at steps", jumps, "from peaks", restarts[jumps])
assert list(jumps) == [100, 300, 700]
peaks = [0.1 * (0.05 + 0.95 * 0.8**i) for i in (1, 2, 3)]
assert np.allclose(restarts[jumps], peaks, rtol=1e-6)
linear = by_keras["warm-up, then linear"]
assert linear.argmax() == 100 and np.allclose(np.diff(linear[101:901]), -0.098 / 800)

# %% [markdown]
# The agreement for `CosineDecayRestarts` rests on the settings above ($c = 2$). Keras does not
# search for the cycle step by step as `cosine_restarts` does: it computes it in float32 as
# $\lfloor \log(1 - f(1 - c)) / \log c \rfloor$, with $f$ the step divided by $T$, and at a step where
# a cycle starts the rounding can land just below the integer. With $c = 1.1$, cycle 2 starts at step
# $100 + 110 = 210$, and there Keras is still at the very end of cycle 1:

# %%
odd_restarts = schedules.CosineDecayRestarts(1.0, 100, t_mul=1.1, m_mul=0.8)
odd_keras, odd_hand = float(odd_restarts(210)), cosine_restarts(210, 1.0, 100, 1.1, 0.8)
print(f"step 210: Keras {odd_keras:.4f}, formula {odd_hand:.4f}")
assert odd_keras < 1e-3 and round(odd_hand, 2) == 0.64


# %% [markdown]
# ## How a schedule drives an optimizer
#
# A schedule is only a function of a step number; something must count the steps. In TF1 that is the
# `global_step` variable, and the counting is done by `minimize(..., global_step=global_step)` (or
# `apply_gradients`): after the update it adds one. The learning-rate tensor reads the variable, so the
# update at step $t$ uses $\alpha_t$ and only then is the counter moved.
#
# Forgetting to pass `global_step` to `minimize` raises no error: the variable stays at 0 and the
# "decaying" rate is a constant. The next cell runs the source problem three ways in TF1: the
# hand-applied update from above, `minimize` with `global_step`, and `minimize` without it.


# %%
def source_problem_tf1(pass_global_step, steps=11):
    graph = tf.Graph()
    with graph.as_default():
        w = tf1.Variable([[1.0], [2.0]])
        b = tf1.Variable([0.0, 0.0])
        prediction = tf.matmul(tf.constant([[2.0, 1.0]]), w) + b
        loss = tf.reduce_mean(prediction**2)
        step = tf1.Variable(0, trainable=False)
        rate = tf1.train.exponential_decay(0.05, step, 100, 0.9)
        optimizer = tf1.train.GradientDescentOptimizer(rate)
        train = optimizer.minimize(loss, global_step=step if pass_global_step else None)
        init = tf1.global_variables_initializer()
    with tf1.Session(graph=graph) as session:
        session.run(init)
        predictions = []
        for _ in range(steps):
            predictions.append(session.run(prediction)[0, 0])
            session.run(train)
        return np.array(predictions), session.run(step), session.run(rate)


# %% [markdown]
# Run with and without the counter, and compared with the hand-applied update of the first graph:

# %%
with_step, counter_with, rate_with = source_problem_tf1(pass_global_step=True)
without_step, counter_without, rate_without = source_problem_tf1(pass_global_step=False)
print(
    f"with global_step:    counter {counter_with:2d}, rate {rate_with:.7f}, p_10 = "
    f"{with_step[-1]:.8f}"
)
print(
    f"without global_step: counter {counter_without:2d}, rate {rate_without:.7f}, "
    f"p_10 = {without_step[-1]:.8f}"
)
print(
    "minimize with global_step vs hand-applied update: max difference "
    f"{np.max(np.abs(with_step - tf1_pred)):.1e}"
)
assert np.max(np.abs(with_step - tf1_pred)) < 1e-7 and counter_with == 11
assert counter_without == 0 and rate_without == np.float32(0.05)
assert np.allclose(without_step, 4.0 * 0.45 ** np.arange(11), rtol=1e-5, atol=1e-6)

# %% [markdown]
# Without the counter, the prediction shrinks by exactly $0.45$ per step ($p_{10} = 4 \cdot 0.45^{10}$):
# the schedule is silently switched off.
#
# In TF2 the counter belongs to the optimizer: `optimizer.iterations` starts at 0, and
# `apply_gradients` first computes the rate as `schedule(optimizer.iterations)`, applies the update,
# and then adds one to `iterations`. The same convention, with nothing to forget. A hand-written loop
# does the same with its own counter. We plug *one* `ExponentialDecay` object into a Keras `SGD`
# optimizer and into a hand-written gradient-descent loop on the source problem:

# %%
source_schedule = schedules.ExponentialDecay(0.05, decay_steps=100, decay_rate=0.9)
x_row = tf.constant([[2.0, 1.0]])


def source_loss(w, b):
    return tf.reduce_mean((tf.matmul(x_row, w) + b) ** 2)


def run_keras_sgd(steps):
    w, b = tf.Variable([[1.0], [2.0]]), tf.Variable([0.0, 0.0])
    optimizer = tf.keras.optimizers.SGD(learning_rate=source_schedule)
    path, rates = [], []
    for _ in range(steps):
        path.append(np.concatenate([w.numpy().ravel(), b.numpy()]))
        # the rate the coming update will use
        rates.append(float(optimizer.learning_rate))
        with tf.GradientTape() as tape:
            loss_value = source_loss(w, b)
        optimizer.apply_gradients(
            zip(tape.gradient(loss_value, [w, b]), [w, b], strict=True)
        )
    return np.array(path), np.array(rates), int(optimizer.iterations)


# %% [markdown]
# The hand-written loop asks the schedule for the rate of each step itself:


# %%
def run_hand_sgd(steps, schedule):
    w, b = tf.Variable([[1.0], [2.0]]), tf.Variable([0.0, 0.0])
    path = []
    for step in range(steps):
        path.append(np.concatenate([w.numpy().ravel(), b.numpy()]))
        rate = schedule(step)
        with tf.GradientTape() as tape:
            loss_value = source_loss(w, b)
        grad_w, grad_b = tape.gradient(loss_value, [w, b])
        w.assign_sub(rate * grad_w)
        b.assign_sub(rate * grad_b)
    return np.array(path)


keras_path, keras_rates, keras_iterations = run_keras_sgd(30)
hand_path = run_hand_sgd(30, source_schedule)
print("optimizer.iterations after 30 updates:", keras_iterations)
print("rates used at steps 0, 1, 2:", keras_rates[:3])
print(
    "max |Keras SGD - hand-written|, 30 steps:", np.max(np.abs(keras_path - hand_path))
)
assert keras_iterations == 30 and np.array_equal(keras_path, hand_path)
assert np.allclose(
    keras_rates, [exponential_decay(t, 0.05, 100, 0.9) for t in range(30)], rtol=1e-6
)

# %% [markdown]
# The two runs are identical to the last bit. They also reproduce the TF1 graph of the source, whose
# predictions we recorded above; the prediction is the first weight times 2 plus the second plus the bias:

# %%
keras_pred = 2 * keras_path[:11, 0] + keras_path[:11, 1] + keras_path[:11, 2]
print("TF2 predictions, steps 0..4:", keras_pred[:5])
print(
    "max relative difference from the TF1 run: "
    f"{np.max(np.abs(keras_pred - tf1_pred) / tf1_pred):.1e}"
)
assert np.max(np.abs(keras_pred - tf1_pred) / tf1_pred) < 1e-5

# %% [markdown]
# ### Schedules, callbacks and the TF1 functions in eager mode
#
# Keras offers a second way to change the rate, from the outside: the callbacks
# `LearningRateScheduler` (a function of the epoch) and `ReduceLROnPlateau` (divide the rate when a
# monitored loss stalls) *set* `optimizer.learning_rate` between epochs. That works only when the rate
# is a number, held in a variable. An optimizer whose rate is a schedule object refuses to have it
# set, so a schedule and such a callback cannot be combined:

# %% tags=["raises-exception"]
import types

scheduled_sgd = tf.keras.optimizers.SGD(source_schedule)
halve_each_epoch = tf.keras.callbacks.LearningRateScheduler(
    lambda epoch, rate: rate / 2
)
# what model.fit does: hand the callback the model, whose optimizer it adjusts
halve_each_epoch.set_model(types.SimpleNamespace(optimizer=scheduled_sgd))
with gdbook.expect_error(TypeError) as not_settable:
    halve_each_epoch.on_epoch_begin(0)

# %% [markdown]
# The callback refuses, and says why:

# %%
print(not_settable.message[:90], "...")
assert "learning rate is not settable" in not_settable.message

# %% [markdown]
# The TF1 decay functions still work in TF2's eager mode, but there they do not return a tensor: they
# return a function of no arguments that reads the step variable each time it is called, which is
# exactly the kind of callable that a Keras optimizer (and those of {ref}`ch-optimizers`) calls with
# no argument:

# %%
eager_step = tf.Variable(0, dtype=tf.int64)
eager_rate = tf1.train.exponential_decay(0.05, eager_step, 100, 0.9)
print("callable:", callable(eager_rate), "| rate at step 0:", float(eager_rate()))
eager_step.assign(100)
print("rate at step 100:", float(eager_rate()))
assert callable(eager_rate) and np.isclose(float(eager_rate()), 0.045)
assert float(tf.keras.optimizers.SGD(eager_rate).learning_rate) == float(eager_rate())

# %% [markdown]
# One more thing a schedule interacts with: momentum. With a constant gradient $g$, the velocity of
# {eq}`eq-optimizers-momentum` settles at $m = -\alpha g/(1 - \mu)$, so the *effective* rate under
# momentum is $\alpha/(1 - \mu)$, ten times the nominal rate for $\mu = 0.9$. A schedule that lowers
# $\alpha$ lowers the effective rate in proportion, but only as fast as the velocity forgets its past,
# in about $1/(1 - \mu)$ steps:

# %%
w = tf.Variable(0.0)
momentum_sgd = tf.keras.optimizers.SGD(0.01, momentum=0.9)
for _ in range(200):
    before = w.numpy()
    momentum_sgd.apply_gradients([(tf.constant(1.0), w)])
settled_step = before - w.numpy()
print(
    f"step after 200 updates with g = 1: {settled_step:.5f}"
    f"  (alpha / (1 - mu) = {0.01 / 0.1:.2f})"
)
assert abs(settled_step - 0.1) < 1e-4

# %% [markdown]
# ## What a schedule buys
#
# With exact gradients, as in the source problem, a constant rate small enough to be stable converges.
# With *noisy* gradients it does not: stochastic gradient descent with a constant rate $\alpha$ keeps
# jumping around the minimum in a cloud whose size grows with $\alpha$. A small rate makes the cloud
# small but takes long to get there; a large rate gets there fast and then stays noisy.
# {cite:t}`robbins1951` showed that rates with $\sum_t \alpha_t = \infty$ (enough total movement to
# arrive from anywhere) and $\sum_t \alpha_t^2 < \infty$ (noise that dies out) converge. The
# inverse-time schedule $\alpha_0/(1 + t/T)$, a $1/t$ rate, satisfies both; exponential decay does
# not, because its rates have a finite sum however long it runs.
#
# The model is the straight line $\hat y = w x + b$ fitted to 200 noisy points of $y = 3x + 2$ by SGD
# with one example per step, for 1000 steps. The training loss is half the mean squared error; its exact
# minimizer $\theta^*$ comes from least squares, so we can measure the *excess* loss
# $L(\theta_t) - L(\theta^*)$.

# %%
data_rng = np.random.default_rng(2024)
line_x = data_rng.normal(size=200).astype(np.float32)
line_y = (3 * line_x + 2 + data_rng.normal(size=200)).astype(np.float32)
design = np.stack([line_x, np.ones_like(line_x)], axis=1).astype(np.float64)
theta_star = np.linalg.lstsq(design, line_y.astype(np.float64), rcond=None)[0]


def line_loss(w, b):
    """Half mean squared error on the 200 points; w and b may be arrays (a grid or a
    path)."""
    residual = np.multiply.outer(w, line_x) + np.expand_dims(b, -1) - line_y
    return 0.5 * np.mean(residual**2, axis=-1)


best_loss = line_loss(theta_star[0], theta_star[1])
# five orders of the data (seeds 0 to 4), each 5 epochs of one example a step
order_rngs = [np.random.default_rng(seed) for seed in range(5)]
sgd_orders = [
    np.concatenate([rng.permutation(200) for _ in range(5)]) for rng in order_rngs
]
print(
    f"least squares: w* = {theta_star[0]:.4f}, b* = {theta_star[1]:.4f}, L(theta*) = "
    f"{best_loss:.4f}"
)


# %% [markdown]
# The SGD loop runs inside one `tf.function`, so that 1000 steps cost one call. The rates come in as a
# vector, precomputed from each schedule; this is the same hand-written gradient descent as before.


# %%
@tf.function
def sgd_line_path(rates, xs, ys):
    theta = tf.zeros(2)
    path = tf.TensorArray(tf.float32, size=tf.shape(rates)[0] + 1).write(0, theta)
    for t in tf.range(tf.shape(rates)[0]):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss_value = 0.5 * (theta[0] * xs[t] + theta[1] - ys[t]) ** 2
        theta = theta - rates[t] * tape.gradient(loss_value, theta)
        path = path.write(t + 1, theta)
    return path.stack()


# %% [markdown]
# Seven rate sequences, four constant and three scheduled, each run on the five orders of the data:

# %%
sgd_steps = tf.range(1000, dtype=tf.int64)
line_rates = {
    "constant 0.1": tf.fill([1000], 0.1),
    "constant 0.03": tf.fill([1000], 0.03),
    "constant 0.01": tf.fill([1000], 0.01),
    "constant 0.003": tf.fill([1000], 0.003),
    "exponential 0.1 → 0.001": schedules.ExponentialDecay(0.1, 1000, 0.01)(sgd_steps),
    "1/t: 0.1/(1 + t/50)": schedules.InverseTimeDecay(0.1, 50, 1.0)(sgd_steps),
    "cosine, warm-up to 0.1": tf.vectorized_map(
        schedules.CosineDecay(0.0, 900, warmup_target=0.1, warmup_steps=100), sgd_steps
    ),
}
CONSTANTS = [name for name in line_rates if name.startswith("constant")]
SCHEDULES = [name for name in line_rates if name not in CONSTANTS]
line_paths, excess = {}, {}
for name, rates in line_rates.items():
    line_paths[name] = [
        sgd_line_path(rates, line_x[order], line_y[order]).numpy()
        for order in sgd_orders
    ]
    excess[name] = np.array(
        [line_loss(path[:, 0], path[:, 1]) - best_loss for path in line_paths[name]]
    )

# %% [markdown]
# We compare the runs by their excess loss averaged over the last 100 steps (an average, because a
# single step of SGD is a lottery), as mean ± standard deviation over the five orders of the data:

# %%
final_excess = {name: curves[:, -100:].mean(axis=1) for name, curves in excess.items()}
for name, values in final_excess.items():
    print(
        f"{name:24s} last 100 steps: {values.mean():.2e} ± {values.std():.1e}   "
        f"step 100: {excess[name][:, 100].mean():.2e}   sum of rates "
        f"{float(tf.reduce_sum(line_rates[name])):5.1f}"
    )
best_constant = min(CONSTANTS, key=lambda name: final_excess[name].mean())
print("best constant rate:", best_constant)

# %% [markdown]
# Over 1000 steps the best constant rate is 0.01: the larger ones stall in their noise, the smaller
# one is still on its way. The exponential and the $1/t$ schedules beat it, and every other constant
# rate, on every one of the five orders. Cosine with warm-up, which keeps a large rate for longer,
# ends level with the best constant rate (ahead on some orders, behind on others, with means closer
# than the spread over orders) and well ahead of the larger ones:

# %%
for name in ["exponential 0.1 → 0.001", "1/t: 0.1/(1 + t/50)"]:
    for constant in CONSTANTS:
        assert np.all(final_excess[name] < final_excess[constant]), (name, constant)
cosine = final_excess["cosine, warm-up to 0.1"]
best = final_excess[best_constant]
assert best_constant == "constant 0.01"
assert abs(cosine.mean() - best.mean()) < cosine.std() + best.std()
assert np.any(cosine < best) and np.any(cosine > best)
assert cosine.mean() < final_excess["constant 0.03"].mean() / 3
assert (
    excess["constant 0.01"][:, 100].mean() > 10 * excess["constant 0.1"][:, 100].mean()
)

# %% [markdown]
# How much movement each schedule has, summed over all its steps, and how much it would need along
# the flattest direction of the loss:

# %%
exp_rates = line_rates["exponential 0.1 → 0.001"].numpy().astype(np.float64)
exp_total = 0.1 / (1 - 0.01 ** (1 / 1000))
glue("ch5_exp_total", exp_total, display=False)
print(f"exponential: sum of all its rates, forever: {exp_total:.1f}")
assert abs(exp_rates.sum() - exp_total) < 1.0
exp_final = final_excess["exponential 0.1 → 0.001"]
assert np.all(exp_final < final_excess["1/t: 0.1/(1 + t/50)"])
curvature_min = float(np.linalg.eigvalsh(design.T @ design / len(line_x)).min())
shortfall = math.exp(-curvature_min * exp_total)
print(
    f"smallest curvature {curvature_min:.2f}, exp(-curvature * sum) = {shortfall:.0e}"
)
glue("ch5_min_curvature", curvature_min, display=False)
glue("ch5_shortfall", shortfall, display=False)
assert shortfall < 1e-3 * exp_final.min()
# the 1000 steps actually run sum to a little less, and fall short a little more
shortfall_run = math.exp(-curvature_min * exp_rates.sum())
print(f"over the 1000 steps run: sum {exp_rates.sum():.1f}, factor {shortfall_run:.0e}")
assert shortfall < shortfall_run < 1e-3 * exp_final.min()

# %% [markdown]
# So Robbins and Monro's condition is not what decides a finite run: the exponential schedule, whose
# rates sum to only {glue:text}`ch5_exp_total:.1f` even over infinitely many steps, ends ahead of
# $1/t$ here on every one of the five orders, because after 1000 steps its rate is lower. What the
# condition protects against is running out of movement: along a direction of curvature $\lambda$,
# rates that sum to $S$ shrink the starting error by a factor of only about $e^{-\lambda S}$, never to
# zero. Here the smallest curvature is {glue:text}`ch5_min_curvature:.2f`, so that factor, for the
# sum over infinitely many steps, is {glue:text}`ch5_shortfall:.0e` (for the 1000 steps actually run,
# printed above, a little larger), far below the noise; it would matter for a start much further away
# or a much flatter direction. What does decide the run is visible in
# {numref}`fig-schedules-sgd-noise`: a schedule starts like a large rate and finishes like a small
# one.

# %% mystnb={"figure": {"caption": "Excess training loss of SGD on a noisy straight-line fit (log scale, smoothed over 25 steps; geometric mean over five orders of the data, band from the smallest to the largest). Constant rates dashed, schedules solid. A large constant rate is fast and then stalls in its noise; a small one is precise but slow; the schedules start like the large rate and finish like a small one.", "name": "fig-schedules-sgd-noise"}}
fig, ax = plt.subplots(figsize=(7.5, 4.4))
window = np.ones(25) / 25
for name, curves in excess.items():
    smooth = np.array([np.convolve(curve, window, mode="valid") for curve in curves])
    # a 'valid' average over steps t .. t + 24 belongs at its centre, t + 12
    centres = np.arange(smooth.shape[1]) + (len(window) - 1) / 2
    style = "--" if name in CONSTANTS else "-"
    (line,) = ax.plot(centres, np.exp(np.log(smooth).mean(axis=0)), style, label=name)
    ax.fill_between(
        centres,
        smooth.min(axis=0),
        smooth.max(axis=0),
        color=line.get_color(),
        alpha=0.15,
    )
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel(r"$L(\theta_t) - L(\theta^*)$")
ax.legend(fontsize="x-small", ncol=2)
plt.show()

# %% [markdown]
# {numref}`fig-schedules-sgd-paths` follows the parameters $(w, b)$ themselves over the second half of
# the run with the first order of the data, on the contours of the training loss near its minimum:
# the constant rate 0.1 keeps wandering in a wide cloud, while the schedules settle as their rates
# shrink.

# %% mystnb={"figure": {"caption": "Steps 500 to 1000 of the SGD paths of the noisy line fit in the $(w, b)$ plane (first order of the data), on contours of the training loss around its minimum. With the constant rate 0.1 the path fills a cloud; with the decaying rates it contracts onto the minimum.", "name": "fig-schedules-sgd-paths"}}
from gdbook.plotting import Panel, contour

line_panel = Panel(
    f=line_loss,
    xlim=(theta_star[0] - 0.45, theta_star[0] + 0.45),
    ylim=(theta_star[1] - 0.45, theta_star[1] + 0.45),
    levels=[best_loss + d for d in (0.002, 0.01, 0.03, 0.06, 0.1)],
)
fig, ax = plt.subplots(figsize=(5.4, 5.2))
contour(ax, line_panel)
for name in ["constant 0.1", "exponential 0.1 → 0.001", "cosine, warm-up to 0.1"]:
    path = line_paths[name][0]
    ax.plot(path[500:, 0], path[500:, 1], ".", ms=3, alpha=0.7, label=name)
ax.plot(*theta_star, "k+", ms=14, mew=2, label=r"minimum $\theta^*$")
ax.set_xlabel("$w$")
ax.set_ylabel("$b$")
ax.legend(loc="upper left", fontsize="small", framealpha=0.9, frameon=True)
plt.show()

# %% [markdown]
# ### The noise floor of a constant rate, predicted
#
# How high a constant rate stalls can be predicted. Near the minimum, the gradient of one example
# is the full gradient $H(\theta - \theta^*)$ plus noise whose covariance is about $\sigma^2 H$, where
# $H$ is the mean of $x x^\top$ over the data (here with $x = (x_i, 1)$) and $\sigma^2$ the mean squared
# residual at $\theta^*$. To first order in $\alpha$, the iterates then settle into a cloud with
# covariance $\Sigma$ that solves $H\Sigma + \Sigma H = \alpha\sigma^2 H$, that is
# $\Sigma = \tfrac{\alpha\sigma^2}{2} I$, and the excess loss averages
#
# $$
# \tfrac12 \operatorname{tr}(H\Sigma) = \frac{\alpha\,\sigma^2 \operatorname{tr}(H)}{4} .
# $$ (eq-schedules-noise-floor)
#
# The derivation assumes each example is drawn independently, so we check it with examples drawn with
# replacement (the epochs of shuffled data above have less noise, because each pass uses every
# example once), running each rate long enough to forget the start and averaging the last 4000 steps:

# %%
residual_variance = float(np.mean((design @ theta_star - line_y) ** 2))
trace_h = float(np.trace(design.T @ design / len(line_x)))
floor_rng = np.random.default_rng(1)
print("rate    measured   predicted   ratio")
floor_ratios = []
for rate in (0.003, 0.01, 0.03, 0.1):
    n_steps = int(20 / rate) + 4000
    picks = floor_rng.integers(0, len(line_x), n_steps)
    path = sgd_line_path(tf.fill([n_steps], rate), line_x[picks], line_y[picks]).numpy()
    measured = float(np.mean(line_loss(path[-4000:, 0], path[-4000:, 1]) - best_loss))
    predicted = rate * residual_variance * trace_h / 4
    floor_ratios.append(measured / predicted)
    print(
        f"{rate:5.3f}  {measured:9.2e}  {predicted:9.2e}   {measured / predicted:.2f}"
    )
assert all(0.8 < ratio < 1.2 for ratio in floor_ratios)

# %% [markdown]
# The prediction {eq}`eq-schedules-noise-floor` holds to within 20% over a 33-fold range of rates: the
# floor is proportional to $\alpha$. That is the quantitative reason a schedule helps, and why it must
# end small: to halve the floor, halve the rate.
#
# ## L2 regularization: three conventions
#
# L2 regularization adds a multiple of the squared weights to the loss, which pulls the weights
# towards zero {cite:p}`krogh1992`. TensorFlow has three spellings of it, and they differ by factors
# of 2:
#
# $$
# \texttt{tf.nn.l2\_loss}(w) = \tfrac12 \textstyle\sum_i w_i^2, \qquad
# \texttt{L2}(\ell)(w) = \ell \textstyle\sum_i w_i^2, \qquad
# \texttt{l2\_regularizer}(s)(w) = s \cdot \tfrac12 \textstyle\sum_i w_i^2 .
# $$ (eq-schedules-l2-conventions)
#
# The first is TF1 and TF2 alike; the second is Keras (`tf.keras.regularizers.L2`, default
# $\ell = 0.01$); the third is TF1's `tf.contrib.layers.l2_regularizer`, which the source on weight
# updates {cite:p}`src003` uses. `tf.contrib` was removed in TF2:

# %% tags=["raises-exception"]
with gdbook.expect_error(AttributeError) as contrib_missing:
    tf.contrib.layers.l2_regularizer(0.01)

# %% [markdown]
# The error names the missing module:

# %%
print(contrib_missing.message)
assert "has no attribute 'contrib'" in contrib_missing.message


# %% [markdown]
# Its definition was `scale * tf.nn.l2_loss(weights)`, so we write it as a one-line function and
# compare the three on $w = (1, -2, 3)$, where $\sum w_i^2 = 14$. The gradients differ the same way:
# $w$ for `l2_loss`, $2\ell w$ for `L2`, $s w$ for `l2_regularizer`.


# %%
def tf1_l2_regularizer(scale):
    """What tf.contrib.layers.l2_regularizer(scale) returned: a function of the
    weights."""
    return lambda weights: scale * tf.nn.l2_loss(weights)


weights = tf.Variable([1.0, -2.0, 3.0])
penalties = {
    "tf.nn.l2_loss(w)": lambda v: tf.nn.l2_loss(v),
    "keras L2(0.01)(w)": tf.keras.regularizers.L2(0.01),
    "l2_regularizer(0.01)(w)": tf1_l2_regularizer(0.01),
}
for name, penalty in penalties.items():
    with tf.GradientTape() as tape:
        value = penalty(weights)
    print(
        f"{name:24s} = {float(value):.4f}   gradient "
        f"{tape.gradient(value, weights).numpy()}"
    )
assert float(tf.nn.l2_loss(weights)) == 7.0
assert abs(float(tf.keras.regularizers.L2(0.01)(weights)) - 0.14) < 1e-7
assert abs(float(tf1_l2_regularizer(0.01)(weights)) - 0.07) < 1e-7

# %% [markdown]
# So a TF1 setting translates like this:
#
# | TF1 | TF2 / Keras equivalent |
# | --- | --- |
# | `loss + beta * tf.nn.l2_loss(W)` | `kernel_regularizer=tf.keras.regularizers.L2(beta / 2)` |
# | `tf.contrib.layers.l2_regularizer(scale)` | `tf.keras.regularizers.L2(scale / 2)` |
# | `loss + lam * tf.reduce_sum(W**2)` | `tf.keras.regularizers.L2(lam)` |
#
# A Keras layer with a `kernel_regularizer` does not add the penalty to your loss by itself: it collects
# it in `layer.losses`, which `model.fit` adds for you and a hand-written loop must add itself.

# %%
dense = tf.keras.layers.Dense(3, kernel_regularizer=tf.keras.regularizers.L2(0.005 / 2))
dense(tf.ones([1, 4]))  # builds the kernel
expected = 0.005 * tf.nn.l2_loss(dense.kernel)  # the TF1 way, beta = 0.005
print(
    "layer.losses:",
    [float(v) for v in dense.losses],
    " TF1 beta * l2_loss:",
    float(expected),
)
assert len(dense.losses) == 1 and abs(float(dense.losses[0]) - float(expected)) < 1e-7

# %% [markdown]
# ## An L2 penalty versus decoupled weight decay
#
# Write the penalty as $\tfrac{\lambda}{2}\lVert w\rVert^2$ (Keras: `L2(λ/2)`). One gradient-descent
# step on $f(w) + \tfrac{\lambda}{2}\lVert w\rVert^2$ is
#
# $$
# w_{t+1} = w_t - \alpha_t\bigl(\nabla f(w_t) + \lambda w_t\bigr) = (1 - \alpha_t\lambda)\,w_t - \alpha_t \nabla f(w_t),
# $$ (eq-schedules-l2-step)
#
# which *decays* the weights by the factor $1 - \alpha_t\lambda$ and then takes the plain gradient step.
# *Weight decay* does that directly, without touching the loss. Keras optimizers take a `weight_decay`
# argument and, before the gradient step, apply `w -= w * weight_decay * learning_rate` with the current
# (scheduled) rate. For gradient descent the two are therefore the same algorithm when
# `weight_decay` $= \lambda$, even under a schedule. {cite:t}`loshchilov2019` write the decay instead as
# $w \leftarrow (1 - \lambda')\,w$ with a per-step factor; the exact rescaling is
# $\lambda' = \alpha_t \lambda$, so a *fixed* $\lambda'$ matches the L2 penalty only while the rate is
# constant. (The paper names them the other way round: its $\lambda$ is the per-step factor, and its
# Proposition 1 gives the L2 coefficient as $\lambda/\alpha$.)
#
# We check all of this on a small least-squares problem with a decaying rate: hand-written gradient
# descent on the penalized loss, Keras `SGD` on the penalized loss (a `L2(λ/2)` penalty), Keras `SGD` with
# `weight_decay=λ`, and the fixed-factor decay $\lambda' = \alpha_0\lambda$.

# %%
ls_rng = np.random.default_rng(5)
ls_a = tf.constant(ls_rng.normal(size=(50, 10)), tf.float32)
ls_y = tf.constant(ls_rng.normal(size=50), tf.float32)
lam = 0.1
decaying = schedules.ExponentialDecay(0.2, decay_steps=50, decay_rate=0.5)


def ls_loss(w):
    return 0.5 * tf.reduce_mean((tf.linalg.matvec(ls_a, w) - ls_y) ** 2)


# %% [markdown]
# The hand-written gradient descent, with the penalty in the loss or with the fixed-factor decay:


# %%
@tf.function
def gd_path(mode, steps=200):
    w = tf.zeros(10)
    path = tf.TensorArray(tf.float32, size=steps)
    for t in tf.range(steps):
        rate = decaying(t)
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss_value = ls_loss(w)
            if mode == "l2":
                loss_value += lam / 2 * tf.reduce_sum(w**2)
        grad = tape.gradient(loss_value, w)
        if mode == "fixed factor":
            w = (1 - decaying(0) * lam) * w
        w = w - rate * grad
        path = path.write(t, w)
    return path.stack()


# %% [markdown]
# Keras' `SGD` runs the same 200 steps, with an optional penalty added to the loss:


# %%
def keras_path(optimizer, penalty=None, steps=200):
    w = tf.Variable(tf.zeros(10))

    @tf.function
    def run():
        path = tf.TensorArray(tf.float32, size=steps)
        for t in tf.range(steps):
            with tf.GradientTape() as tape:
                loss_value = ls_loss(w) + (penalty(w) if penalty is not None else 0.0)
            optimizer.apply_gradients([(tape.gradient(loss_value, w), w)])
            path = path.write(t, w.read_value())
        return path.stack()

    return run().numpy()


# %% [markdown]
# The four runs, each compared with the hand-written one on the penalized loss:

# %%
gd_runs = {
    "hand, L2 in loss": gd_path("l2").numpy(),
    "Keras SGD, L2(λ/2) in loss": keras_path(
        tf.keras.optimizers.SGD(decaying), tf.keras.regularizers.L2(lam / 2)
    ),
    "Keras SGD, weight_decay=λ": keras_path(
        tf.keras.optimizers.SGD(decaying, weight_decay=lam)
    ),
    "hand, fixed factor λ'=α0 λ": gd_path("fixed factor").numpy(),
}
reference = gd_runs.pop("hand, L2 in loss")
gd_differences = {
    name: float(np.max(np.abs(run - reference))) for name, run in gd_runs.items()
}
for name, difference in gd_differences.items():
    print(f"{name:28s} max |w - w(hand, L2)| over 200 steps: {difference:.1e}")
assert gd_differences["Keras SGD, L2(λ/2) in loss"] == 0.0
assert 0 < gd_differences["Keras SGD, weight_decay=λ"] < 1e-6
assert gd_differences["hand, fixed factor λ'=α0 λ"] > 1e-2

# %% [markdown]
# Keras `SGD` with the penalty in the loss is the hand-written run bit for bit: the same arithmetic
# in the same order. With `weight_decay` it agrees to float32 rounding but not bit for bit, because
# the decay is applied as a separate multiplication before the step instead of inside the gradient. The fixed-factor decay drifts away as soon as the
# rate has decayed, because it keeps decaying the weights at the initial rate's strength.
#
# The equivalence is a property of plain gradient descent. With momentum, the penalty's gradient
# $\lambda w$ enters the velocity and is carried on into later steps, while decoupled decay shrinks
# the weights once and stays out of the velocity (the SGDW of {cite:t}`loshchilov2019`), so the two
# are different algorithms:

# %%
momentum_l2 = keras_path(
    tf.keras.optimizers.SGD(decaying, momentum=0.9), tf.keras.regularizers.L2(lam / 2)
)
momentum_decay = keras_path(
    tf.keras.optimizers.SGD(decaying, momentum=0.9, weight_decay=lam)
)
momentum_gap = float(np.max(np.abs(momentum_l2 - momentum_decay)))
print(
    "SGD(momentum=0.9): max |w(L2) - w(weight_decay)| over 200 steps:"
    f" {momentum_gap:.1e}"
)
assert momentum_gap > 1e-3


# %% [markdown]
# To compare such translations step by step, `gdbook.check.optimizer` (used in the exercises) needs
# the penalty in the form of an optimizer. A wrapper that adds $\lambda w$ to each gradient before
# handing it to an optimizer is that optimizer applied to $f(w) + \tfrac{\lambda}{2}\lVert w\rVert^2$;
# for plain gradient descent it passes the check against Keras' `weight_decay`:


# %%
class L2InTheGradient:
    """`optimizer` applied to loss + lam / 2 * ||w||^2, for every variable it
    updates."""

    def __init__(self, optimizer, lam):
        self.optimizer, self.lam = optimizer, lam

    def apply_gradients(self, grads_and_vars):
        pairs = [(grad + self.lam * var, var) for grad, var in grads_and_vars]
        self.optimizer.apply_gradients(pairs)


check.optimizer(
    lambda: tf.keras.optimizers.SGD(0.1, weight_decay=0.5),
    lambda: L2InTheGradient(tf.keras.optimizers.SGD(0.1), 0.5),
)


# %% [markdown]
# ### Adam: the penalty gets normalized away
#
# Adam {cite:p}`kingma2015` divides each coordinate of the gradient by a running root mean square of
# that coordinate's past gradients. When the penalty is in the loss, its gradient $\lambda w$ is part of
# what gets divided: coordinates with large gradients are barely regularized, coordinates with small
# gradients strongly. Decoupled weight decay (AdamW, {cite:t}`loshchilov2019`) keeps the decay outside
# the normalization. In the form Keras implements (its $\hat\epsilon$ form of Adam, with the decay
# applied first at the current rate $\alpha_t$):
#
# $$
# \begin{aligned}
# g_t &= \nabla f(w_t) \;\bigl[+\, \lambda w_t \text{ for L2 in the loss}\bigr],\qquad
# w_t' = w_t - \alpha_t \lambda_\text{wd}\, w_t \;\text{ (AdamW only)}\\
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2\\
# w_{t+1} &= w_t' - \alpha_t \frac{\sqrt{1 - \beta_2^{t}}}{1 - \beta_1^{t}}\,\frac{m_t}{\sqrt{v_t} + \hat\epsilon}
# \end{aligned}
# $$ (eq-schedules-adamw)
#
# with $t$ counted from 1 inside the bias corrections. Keras' defaults are $\beta_1 = 0.9$,
# $\beta_2 = 0.999$, $\hat\epsilon = 10^{-7}$ (the paper's $\epsilon = 10^{-8}$ sits in a slightly
# different place), and `AdamW`'s `weight_decay` defaults to 0.004. Note that Keras multiplies the decay by
# the full rate $\alpha_t$, while the paper multiplies it by the schedule multiplier only
# ($w \leftarrow w - \eta_t(\alpha\,\hat m/\ldots + \lambda w)$), so Keras' `weight_decay` is the paper's
# $\lambda$ divided by the base rate.
#
# The first step shows the difference at its starkest. With $m_1 = (1-\beta_1) g_1$ and
# $v_1 = (1-\beta_2) g_1^2$, the first Adam step is $\alpha\, g_1/|g_1| = \pm\alpha$ in every
# coordinate, whatever the size of $g_1$: an L2 penalty small enough not to flip a sign has *no effect
# at all* on it, while AdamW's first step also shrinks $w$ by $\alpha\lambda w$. The hand-written update
# {eq}`eq-schedules-adamw`, for one step from $w = (1, 1)$:


# %%
def adam_update(w, grad, m, v, t, rate, decay=0.0, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """One Adam step of eq. (adamw), as Keras computes it; t counts from 1.
    Returns w, m, v."""
    w = w - rate * decay * w  # decoupled weight decay (AdamW); 0 for Adam
    m = m + (grad - m) * (1 - beta_1)
    v = v + (grad**2 - v) * (1 - beta_2)
    step_size = rate * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return w - m * step_size / (np.sqrt(v) + eps), m, v


# for this one step: f(w) = 1/2 sum h_i (w_i - 2)^2, one stiff and one soft coordinate
stiffness = np.array([100.0, 1.0])
w_start, zeros = np.array([1.0, 1.0]), np.zeros(2)
# the gradient of f at w = 1 (its minimum is at 2)
grad_f = stiffness * (w_start - 2.0)
first_plain = adam_update(w_start, grad_f, zeros, zeros, 1, 0.01)[0]
first_l2 = adam_update(w_start, grad_f + 0.5 * w_start, zeros, zeros, 1, 0.01)[0]
first_adamw = adam_update(w_start, grad_f, zeros, zeros, 1, 0.01, decay=0.5)[0]
print("Adam:", first_plain, " Adam + L2:", first_l2, " AdamW:", first_adamw)
print("Keras AdamW's default weight_decay:", tf.keras.optimizers.AdamW().weight_decay)
assert tf.keras.optimizers.AdamW().weight_decay == 0.004
assert np.max(np.abs(first_l2 - first_plain)) < 1e-6  # equal up to the epsilon
assert np.allclose(first_plain - first_adamw, 0.01 * 0.5 * w_start)

# %% [markdown]
# Over a whole run the difference is not a detail. Take $f(w) = \tfrac12\sum_i h_i (w_i - 1)^2$ with a
# stiff coordinate ($h_1 = 100$) and a soft one ($h_2 = 1$), $\lambda = 0.5$, and 2000 Adam steps with a
# cosine schedule from 0.05 to 0, from $w = 0$. The penalized loss has its minimum at
# $w_i = h_i/(h_i + \lambda)$: the soft coordinate is pulled in much more than the stiff one. We run the
# hand-written update {eq}`eq-schedules-adamw` and Keras' `Adam` / `AdamW` side by side.

# %%
quad_h, quad_c, quad_lam, quad_steps = (
    np.array([100.0, 1.0]),
    np.array([1.0, 1.0]),
    0.5,
    2000,
)
quad_schedule = schedules.CosineDecay(0.05, quad_steps)
quad_rates = (
    quad_schedule(tf.range(quad_steps, dtype=tf.int64)).numpy().astype(np.float64)
)


def hand_adam_path(mode):
    """The points visited by the hand-written Adam, shape (quad_steps + 1, 2)."""
    w, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    path = [w]
    for t in range(quad_steps):
        grad = quad_h * (w - quad_c) + (quad_lam * w if mode == "L2" else 0.0)
        decay = quad_lam if mode == "AdamW" else 0.0
        w, m, v = adam_update(w, grad, m, v, t + 1, quad_rates[t], decay=decay)
        path.append(w)
    return np.array(path)


# %% [markdown]
# Keras' `Adam` and `AdamW` run the same 2000 steps inside one `tf.function`:


# %%
def keras_adam_run(mode):
    w = tf.Variable(tf.zeros(2))
    if mode == "AdamW":
        optimizer = tf.keras.optimizers.AdamW(quad_schedule, weight_decay=quad_lam)
    else:
        optimizer = tf.keras.optimizers.Adam(quad_schedule)
    h, c = tf.constant(quad_h, tf.float32), tf.constant(quad_c, tf.float32)

    @tf.function
    def run():
        for _ in tf.range(quad_steps):
            with tf.GradientTape() as tape:
                loss_value = 0.5 * tf.reduce_sum(h * (w - c) ** 2)
                if mode == "L2":
                    loss_value += quad_lam / 2 * tf.reduce_sum(w**2)
            optimizer.apply_gradients([(tape.gradient(loss_value, w), w)])

    run()
    return w.numpy()


# %% [markdown]
# Both ways, with the penalty in the loss and with AdamW's decay, next to the minimum of the
# penalized loss:

# %%
quad_minimum = quad_h * quad_c / (quad_h + quad_lam)
adam_results, adam_paths = {}, {}
for mode in ["L2", "AdamW"]:
    adam_paths[mode] = hand_adam_path(mode)
    adam_results[mode] = adam_paths[mode][-1], keras_adam_run(mode)
    hand, keras_w = adam_results[mode]
    print(
        f"{mode:6s} hand {hand}   Keras {keras_w}   max difference "
        f"{np.max(np.abs(hand - keras_w)):.1e}"
    )
print("minimum of the penalized loss:", quad_minimum)

# %% [markdown]
# The hand-written update matches Keras (float64 against float32, so to about $10^{-6}$). Adam with the
# penalty in the loss reaches the minimum of the penalized loss, where the total gradient is zero,
# long before the rate runs out (the step is printed and asserted below). AdamW ends somewhere else.
# In this symmetric setup, with both coordinates' minima at 1 and a start on the diagonal, it moves
# both coordinates alike (the picture in the plane below shows why) and ends on the diagonal, far
# from the penalized minimum in the soft coordinate.

# %%
l2_end, adamw_end = adam_results["L2"][0], adam_results["AdamW"][0]
for mode, (hand, keras_w) in adam_results.items():
    assert np.max(np.abs(hand - keras_w)) < 1e-5, mode
l2_off = np.max(np.abs(adam_paths["L2"] - quad_minimum), axis=1)
l2_arrival = int(np.flatnonzero(l2_off >= 1e-4)[-1]) + 1
print(
    f"Adam + L2 within 1e-4 of the penalized minimum from step {l2_arrival} on, "
    f"at rate {quad_rates[l2_arrival]:.4f} of 0.05"
)
assert l2_arrival < quad_steps / 10
assert abs(adamw_end[0] - adamw_end[1]) < 1e-3 and adamw_end[1] - quad_minimum[1] > 0.25
print(f"soft coordinate: L2 in the loss {l2_end[1]:.4f}, AdamW {adamw_end[1]:.4f}")


# %% [markdown]
# Where AdamW ends is not fixed by $f$ and $\lambda$ alone. Its decay step $\alpha_t\lambda w$ is not
# normalized, but the gradient step it has to balance is: AdamW stands still where
# $\lambda |w_i| = |\hat m_i/(\sqrt{\hat v_i} + \hat\epsilon)|$ (with $\hat m$, $\hat v$ the
# bias-corrected moments), and that ratio depends on the gradient history through $v$. For a
# constant gradient it would be 1, twice what $\lambda|w_i| \le 0.5$ (for $|w_i| \le 1$) can balance;
# it falls to $\lambda|w_i|$ only while the current gradients are small next to those $v$ remembers.
# So the balance point moves as $v$ forgets, but with exact gradients it does not move all the way
# to the minimum of $f$: at a constant rate AdamW settles at a distance from the minimum that more
# steps do not shrink and a smaller rate does, a floor set by the rate. The long cosine runs end
# closer because their rate anneals. What holds the end at 0.967 here is the cosine running out
# while $v$ still remembers the large early gradients. Longer runs, a constant rate and a shorter
# memory for $v$ ($\beta_2 = 0.99$) all end closer to 1; a start off the diagonal ends off it:


# %%
def adamw_run(steps, peak=0.05, cosine=True, beta_2=0.999, start=(0.0, 0.0)):
    """AdamW on the quadratic: the end point and m_hat / (sqrt(v_hat) + eps)."""
    w, m, v = np.array(start), np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        shape = 0.5 * (1 + math.cos(math.pi * (t - 1) / steps)) if cosine else 1.0
        grad = quad_h * (w - quad_c)
        w, m, v = adam_update(w, grad, m, v, t, peak * shape, quad_lam, beta_2=beta_2)
    v_hat = v / (1 - beta_2**steps)
    return w, m / (1 - 0.9**steps) / (np.sqrt(v_hat) + 1e-7)


adamw_runs = {
    "cosine, 2000 steps": adamw_run(2000),
    "cosine, 8000 steps": adamw_run(8000),
    "cosine, 32000 steps": adamw_run(32000),
    "constant 0.05, 20000 steps": adamw_run(20000, cosine=False),
    "constant 0.05, 40000 steps": adamw_run(40000, cosine=False),
    "constant 0.05, 80000 steps": adamw_run(80000, cosine=False),
    "constant 0.005, 40000 steps": adamw_run(40000, peak=0.005, cosine=False),
    "cosine, 2000 steps, beta_2 0.99": adamw_run(2000, beta_2=0.99),
    "cosine, 2000 steps, from (0, 0.5)": adamw_run(2000, start=(0.0, 0.5)),
}
for name, (end, ratio) in adamw_runs.items():
    print(f"{name:34s} ends at {end.round(6)}, |m/sqrt(v)| / (lambda w) =", end=" ")
    print((np.abs(ratio) / (quad_lam * end)).round(3))

# %% [markdown]
# The first row is the run above (the cosine computed in float64 here):

# %%
ends = {name: end for name, (end, _) in adamw_runs.items()}
assert np.allclose(ends["cosine, 2000 steps"], adamw_end, atol=1e-6)
assert round(ends["cosine, 8000 steps"][1], 4) == 0.9967
assert round(ends["cosine, 32000 steps"][1], 6) == 0.999994
assert round(ends["constant 0.05, 20000 steps"][1], 4) == 0.9993
gap = {name: 1 - end.min() for name, end in ends.items()}
# at a constant rate, more steps end no closer; a tenth of the rate ends closer
floor = gap["constant 0.05, 20000 steps"]
assert floor > 5e-4
assert gap["constant 0.05, 40000 steps"] > floor
assert gap["constant 0.05, 80000 steps"] > floor
assert gap["constant 0.005, 40000 steps"] < floor / 5
assert round(ends["cosine, 2000 steps, beta_2 0.99"][1], 5) == 0.99993
off_diagonal = ends["cosine, 2000 steps, from (0, 0.5)"]
assert np.array_equal(off_diagonal.round(4), [0.9673, 0.9858])
balance = [np.abs(r) / (quad_lam * e) for e, r in adamw_runs.values()]
assert all(np.all((0.99 < b) & (b < 1.08)) for b in balance)


# %% [markdown]
# In every run the normalized step at the end is within 8% of $\lambda w$: the balance holds, and what
# differs is how small a gradient it takes to reach it. The coordinates staying equal is a separate
# point, and a correct one for this start: the off-diagonal start ends at different coordinates.
#
# Neither is wrong; they are different regularizers. With L2 in the loss, the penalty's gradient is
# divided by $\sqrt{v}$ like the rest, so Adam's strength of regularization depends on the gradient
# history of each weight. With AdamW the decay step itself does not, though where it balances the
# gradient still does, through $v$, as the runs above show. The decoupled form is
# what {cite:t}`loshchilov2019` found to generalize better and to make the decay coefficient easier to
# tune independently of the learning rate. That independence holds in the paper's parametrization,
# where the decay is multiplied by the schedule multiplier only; Keras multiplies `weight_decay` by
# the whole rate, so in Keras it is the product $\alpha\lambda_\text{wd}$ that should stay fixed when
# the base rate is changed ({eq}`eq-optimizers-decay-conversions`).
#
# ### The picture in the plane
#
# {numref}`fig-schedules-l2-plane` draws the three ways of regularizing on this quadratic. The
# geometry of the L2 penalty first {cite:p}`goodfellow2016`: the penalized loss
# $f(w) + \tfrac{\lambda}{2}\lVert w\rVert^2$ is smallest where $\nabla f(w) = -\lambda w$, that is
# where a contour of $f$ touches a circle around the origin. Along an eigen-direction of $f$ with
# curvature $h$, the penalty moves the minimum from $c$ to $\tfrac{h}{h + \lambda}\,c$: a stiff
# direction ($h = 100 \gg \lambda$) barely moves (to 0.995), a soft one ($h = 1$) is pulled in to
# two thirds. Gradient descent on the penalized loss (SGD + L2, constant rate 0.01) and Adam + L2 both
# end there. AdamW does not: started on the diagonal (and with both minima at 1), its path runs along
# the diagonal and ends on it.


# %%
def sgd_l2_path(rate=0.01):
    w, path = np.zeros(2), [np.zeros(2)]
    for _ in range(quad_steps):
        w = w - rate * (quad_h * (w - quad_c) + quad_lam * w)
        path.append(w)
    return np.array(path)


plane_paths = {
    "SGD + L2": sgd_l2_path(),
    "Adam + L2": adam_paths["L2"],
    "AdamW": adam_paths["AdamW"],
}
for name, path in plane_paths.items():
    print(f"{name:9s} ends at {np.round(path[-1], 4)}")
assert np.max(np.abs(plane_paths["SGD + L2"][-1] - quad_minimum)) < 1e-9
assert round(quad_minimum[0], 3) == 0.995 and round(quad_minimum[1], 4) == 0.6667

# %% [markdown]
# The figure draws the paths on the contours of the two losses, computed on a grid:

# %%
grid_1, grid_2 = np.meshgrid(
    np.linspace(-0.05, 1.15, 241), np.linspace(-0.05, 1.15, 241)
)
f_grid = 0.5 * (quad_h[0] * (grid_1 - 1) ** 2 + quad_h[1] * (grid_2 - 1) ** 2)
penalized = f_grid + quad_lam / 2 * (grid_1**2 + grid_2**2)

# %% [markdown]
# Then the contours, the circle through the penalized minimum and the three paths:

# %% mystnb={"figure": {"caption": "Minimizing $f(w) = \\tfrac12\\,(100\\,(w_1 - 1)^2 + (w_2 - 1)^2)$ with $\\lambda = 0.5$, from $w = 0$. Grey, contours of $f$ (minimum $+$); red dashed, contours of $f + \\tfrac{\\lambda}{2}\\lVert w\\rVert^2$ (minimum $\\times$). At $\\times$ the dotted circle around the origin touches a contour of $f$. SGD + L2 and Adam + L2 end at the penalized minimum; AdamW, started on the diagonal with both minima at 1, moves along the diagonal and ends on it.", "name": "fig-schedules-l2-plane"}}
offsets = np.array([0.01, 0.05, 0.2, 0.5, 2, 8, 30])
# the contour of f through the penalized minimum, which the circle touches
f_at_minimum = 0.5 * np.sum(quad_h * (quad_minimum - quad_c) ** 2)
f_levels = np.sort(np.append(offsets, f_at_minimum))
fig, ax = plt.subplots(figsize=(6, 5.6))
ax.contour(grid_1, grid_2, f_grid, levels=f_levels, colors="0.6", linewidths=0.8)
ax.contour(
    grid_1,
    grid_2,
    penalized,
    levels=penalized.min() + offsets[2:],
    colors="C3",
    linestyles="--",
    linewidths=0.8,
)
radius = float(np.linalg.norm(quad_minimum))
ax.add_patch(plt.Circle((0, 0), radius, fill=False, ls=":", color="k", lw=0.8))
for (name, path), style in zip(plane_paths.items(), ["-", "--", "-."], strict=True):
    ax.plot(path[:, 0], path[:, 1], linestyle=style, lw=1.8, label=name)
ax.plot(*quad_c, "k+", ms=12, mew=2, label="minimum of $f$")
ax.plot(*quad_minimum, "kx", ms=9, mew=2, label="minimum of $f$ + penalty")
ax.set(xlim=(-0.05, 1.15), ylim=(-0.05, 1.15), aspect="equal")
ax.set_xlabel("$w_1$ (stiff, $h_1 = 100$)")
ax.set_ylabel("$w_2$ (soft, $h_2 = 1$)")
ax.legend(loc="upper left", fontsize="small", framealpha=0.9, frameon=True)
plt.show()


# %% [markdown]
# Why the diagonal? Adam's step does not change when a coordinate's gradients are all multiplied by
# the same positive number $k$: $m_t$ grows by $k$, $\sqrt{v_t}$ by $k$, and their ratio is the same
# (up to $\hat\epsilon$). Here the gradient of coordinate $i$ is $h_i(w_i - 1)$. As long as
# $w_1 = w_2$, the two gradients differ only by the factor $h_1/h_2 = 100$, so Adam moves both
# coordinates by the same amount, and AdamW's decay $\alpha_t\lambda w_i$ is the same for both too:
# starting from $w_1 = w_2 = 0$, the two coordinates stay equal at every step, and the curvature
# never enters. With L2 in the loss the penalty's gradient $\lambda w_i$ is *added* to $h_i(w_i - 1)$,
# which breaks the proportionality: at equal $w_1 = w_2$, the penalty's share of the gradient,
# $\lambda w_i/|h_i(w_i - 1)|$, is a hundred times larger in the soft coordinate than in the stiff
# one. The next cell checks both halves of the argument: Adam's steps for a
# random gradient sequence and for 100 times that sequence, and the largest gap between the two
# coordinates along each path:


# %%
def adam_steps(gradients, rate=0.01):
    w, m, v, moves = np.zeros(1), np.zeros(1), np.zeros(1), []
    for t, grad in enumerate(gradients, start=1):
        new_w, m, v = adam_update(w, grad, m, v, t, rate)
        moves.append(new_w - w)
        w = new_w
    return np.array(moves)


# %% [markdown]
# The same 200 random gradients, once as they are and once multiplied by 100, and the gap between the
# coordinates along the three paths:

# %%
random_gradients = np.random.default_rng(3).normal(size=(200, 1))
scaling_gap = np.max(
    np.abs(adam_steps(100 * random_gradients) - adam_steps(random_gradients))
)
coordinate_gap = {
    name: float(np.max(np.abs(path[:, 0] - path[:, 1])))
    for name, path in plane_paths.items()
}
print(
    f"Adam, gradients x100: steps differ by at most {scaling_gap / 0.01:.1e} of the "
    "rate 0.01 (the epsilon)"
)
print(
    "max |w1 - w2| along each path:", {k: f"{v:.1e}" for k, v in coordinate_gap.items()}
)
assert scaling_gap / 0.01 < 1e-5
assert coordinate_gap["AdamW"] < 1e-6
assert coordinate_gap["Adam + L2"] > 0.3 and coordinate_gap["SGD + L2"] > 0.3

# %% [markdown]
# ## Overfitting, and three ways to hold it back
#
# Now a model that can memorize its data: a multilayer perceptron with 256 hidden ReLU units, trained on
# only 500 MNIST digits. To keep the experiment to seconds, each image is averaged down to 14 × 14
# pixels (196 inputs). A further 1000 training digits serve as a validation set, and 1000 test digits
# measure generalization.

# %%
mnist = gdbook.load_mnist("float")


def downsample(images):
    """28 x 28 -> 14 x 14 by averaging 2 x 2 blocks, flattened to 196 numbers."""
    return (
        images.reshape(len(images), 14, 2, 14, 2)
        .mean(axis=(2, 4))
        .reshape(len(images), -1)
    )


fit_x, fit_y = downsample(mnist.x_train[:500]), mnist.y_train[:500].astype(np.int32)
val_x, val_y = downsample(mnist.x_train[-1000:]), mnist.y_train[-1000:].astype(np.int32)
test_x, test_y = downsample(mnist.x_test[:1000]), mnist.y_test[:1000].astype(np.int32)
print("train", fit_x.shape, "validation", val_x.shape, "test", test_x.shape)

# %% [markdown]
# A *seed* fixes the initial weights and the order of the mini-batches of 50; within a seed, every run
# starts from the same weights and sees the same batches in the same order, for 30 epochs, so only the
# regularization changes. Every run is made for three seeds, and to keep that cheap the three
# networks are trained side by side: each weight variable holds the three seeds' copies stacked along
# a first axis of length 3. Adam and AdamW update every entry separately, and the loss is the sum of
# the three networks' losses, so each copy receives its own network's gradient: three independent
# runs in one, the same computation as three separate runs up to float32 rounding (a batched matrix
# product need not round exactly like three separate ones, so a separate run of one seed need not
# match its copy here bit for bit).

# %%
HIDDEN, EPOCHS, BATCH = 256, 30, 50
SEEDS = (0, 1, 2)


def initial_weights(seed):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0, math.sqrt(2 / 196), (196, HIDDEN)).astype(np.float32),
        np.zeros(HIDDEN, np.float32),
        rng.normal(0, math.sqrt(1 / HIDDEN), (HIDDEN, 10)).astype(np.float32),
        np.zeros(10, np.float32),
    ]


def epoch_orders(seed):
    rng = np.random.default_rng(1000 + seed)
    return np.stack([rng.permutation(500) for _ in range(EPOCHS)])


stacked_weights = [
    np.stack(ws) for ws in zip(*map(initial_weights, SEEDS), strict=True)
]
# (EPOCHS, seeds, 500): the order of the examples in each epoch, for each seed
stacked_orders = np.stack([epoch_orders(seed) for seed in SEEDS], axis=1)


# %% [markdown]
# The network, its loss and its accuracy, one number per seed, and the L2 penalty, which sums the
# squares of the two weight matrices only. Images come either as one set for all seeds (shape
# (examples, 196)) or as one batch per seed (shape (seeds, examples, 196)):


# %%
def mlp_logits(params, images):
    hidden = tf.nn.relu(images @ params[0] + params[1][:, None, :])
    return hidden @ params[2] + params[3][:, None, :]


def cross_entropy(params, images, labels):
    logits = mlp_logits(params, images)
    labels = tf.broadcast_to(labels, tf.shape(logits)[:-1])
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_mean(losses, axis=-1)


def accuracy(params, images, labels):
    guesses = tf.argmax(mlp_logits(params, images), axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(guesses == labels, tf.float32), axis=-1)


def weight_penalty(params):
    """Each seed's sum of squares of its two weight matrices; the biases are spared."""
    return tf.reduce_sum(params[0] ** 2, axis=[1, 2]) + tf.reduce_sum(
        params[2] ** 2, axis=[1, 2]
    )


SETS = [(fit_x, fit_y), (val_x, val_y), (test_x, test_y)]


# %% [markdown]
# One `tf.function` measures the loss and accuracy on the three sets. It takes the weights as an
# argument, so it is traced once and serves every run (variables of the same shapes need no new
# trace):


# %%
@tf.function
def evaluate(params):
    return tf.stack(
        [f(params, x, y) for x, y in SETS for f in (cross_entropy, accuracy)]
    )


# %% [markdown]
# Another `tf.function` trains an epoch. An optimizer with a `weight_decay` is told to spare the two bias vectors (`exclude_from_weight_decay`), as the
# penalty does, so that both arms regularize the same parameters:


# %%
def train_mlp(optimizer, l2=0.0):
    """Returns a (seeds, EPOCHS, 6) array: train, validation, test loss and accuracy
    after each epoch, for each seed."""
    params = [tf.Variable(value) for value in stacked_weights]
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(var_list=[params[1], params[3]])

    @tf.function
    def one_epoch(orders):
        for k in tf.range(500 // BATCH):
            batch = orders[:, k * BATCH : (k + 1) * BATCH]
            with tf.GradientTape() as tape:
                per_seed = cross_entropy(
                    params, tf.gather(fit_x, batch), tf.gather(fit_y, batch)
                )
                loss_value = tf.reduce_sum(per_seed + l2 * weight_penalty(params))
            grads = tape.gradient(loss_value, params)
            optimizer.apply_gradients(zip(grads, params, strict=True))

    history = []
    for orders in stacked_orders:
        one_epoch(tf.constant(orders))
        history.append(evaluate(params).numpy())
    # which test digits each seed's final network gets right, for a paired comparison
    guesses = tf.argmax(mlp_logits(params, test_x), axis=-1, output_type=tf.int32)
    key = (l2, float(getattr(optimizer, "weight_decay", None) or 0.0))
    test_correct[key] = guesses.numpy() == test_y
    return np.array(history).transpose(2, 0, 1)


test_correct = {}

# %% [markdown]
# The optimizer is Adam with rate $3 \times 10^{-3}$ for every run; the rate, the width, the batch size
# and the number of epochs were set once, by hand, before any regularization was tried, and are not
# tuned. What *is* chosen here is the strength of each regularizer, and it is chosen on the validation
# set: an L2 penalty on the two weight matrices (Keras convention, $\ell\sum w^2$) with
# $\ell \in \{3 \times 10^{-4}, 10^{-3}, 3 \times 10^{-3}\}$, and AdamW's `weight_decay` in
# $\{0.3, 1, 3\}$. Each candidate is trained for all 30 epochs, and the one with the lowest final
# validation loss, averaged over the three seeds, is kept. The test set plays no part in any choice.

# %%
plain_runs = train_mlp(tf.keras.optimizers.Adam(3e-3))
candidates = {
    "L2 in the loss": {
        l2: train_mlp(tf.keras.optimizers.Adam(3e-3), l2=l2)
        for l2 in (3e-4, 1e-3, 3e-3)
    },
    "AdamW (weight decay)": {
        decay: train_mlp(tf.keras.optimizers.AdamW(3e-3, weight_decay=decay))
        for decay in (0.3, 1.0, 3.0)
    },
}
TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, TEST_LOSS, TEST_ACC = range(6)
# seven runs, one trace of the evaluation
assert evaluate.experimental_get_tracing_count() == 1

# %% [markdown]
# The final validation losses, and the choice:

# %%
chosen = {}
for name, runs in candidates.items():
    for strength, run in runs.items():
        final_val = run[:, -1, VAL_LOSS]
        print(
            f"{name:21s} {strength:7g}: final validation loss "
            f"{final_val.mean():.4f} ± {final_val.std():.4f}"
        )
    chosen[name] = min(
        runs, key=lambda strength: runs[strength][:, -1, VAL_LOSS].mean()
    )
print("chosen on the validation set:", chosen)
glue("ch5_l2_chosen", chosen["L2 in the loss"], display=False)
glue("ch5_wd_chosen", chosen["AdamW (weight decay)"], display=False)
histories = {"no regularization": dict(zip(SEEDS, plain_runs, strict=True))}
for name, runs in candidates.items():
    histories[name] = dict(zip(SEEDS, runs[chosen[name]], strict=True))
plain = histories["no regularization"]


# %% [markdown]
# The validation set picks $\ell =$ {glue:text}`ch5_l2_chosen` and `weight_decay` $=$
# {glue:text}`ch5_wd_chosen`. *Early stopping* {cite:p}`prechelt1998` needs no extra run: it is a
# rule applied to the validation curve. With patience 5 it stops after five epochs without a new best validation loss and goes back
# to the weights of the best epoch; `tf.keras.callbacks.EarlyStopping(patience=5,
# restore_best_weights=True)` does the same inside `model.fit`. Applied to the unregularized run of
# each seed:


# %%
def early_stopping_epoch(val_losses, patience=5):
    """(best epoch, epoch at which training stops), both 0-based."""
    best = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch
        elif epoch - best >= patience:
            return best, epoch
    return best, len(val_losses) - 1


stopping = {seed: early_stopping_epoch(plain[seed][:, VAL_LOSS]) for seed in SEEDS}
for seed, (best_epoch, stop_epoch) in stopping.items():
    print(f"seed {seed}: stops after epoch {stop_epoch + 1}, restores {best_epoch + 1}")
    assert stop_epoch < EPOCHS - 1
    # the restored epoch has the lowest validation loss of all 30
    assert int(plain[seed][:, VAL_LOSS].argmin()) == best_epoch

# %% [markdown]
# Only now, with every choice made, do we look at the test set. The table gives each quantity at the
# end of training as mean ± standard deviation over the three seeds, with the early-stopping row read
# off each unregularized run at the epoch early stopping restores:

# %%
finals = {
    name: np.array([runs[seed][-1] for seed in SEEDS])
    for name, runs in histories.items()
}
finals["early stopping"] = np.array([plain[seed][stopping[seed][0]] for seed in SEEDS])
HEADS = ["train loss", "train acc", "test loss", "test acc"]
print(" " * 21 + "".join(f"{head:>16s}" for head in HEADS))
for name, rows in finals.items():
    cells = [
        f"{rows[:, col].mean():.{digits}f} ± {rows[:, col].std():.{digits}f}"
        for col, digits in [
            (TRAIN_LOSS, 4),
            (TRAIN_ACC, 3),
            (TEST_LOSS, 4),
            (TEST_ACC, 3),
        ]
    ]
    print(f"{name:21s}" + "".join(f"{cell:>16s}" for cell in cells))
lowest_epochs = [int(plain[seed][:, TEST_LOSS].argmin()) + 1 for seed in SEEDS]
print("unregularized: epoch of the lowest test loss, per seed:", lowest_epochs)
glue("ch5_lowest_epoch_min", min(lowest_epochs), display=False)
glue("ch5_lowest_epoch_max", max(lowest_epochs), display=False)

# %% [markdown]
# The unregularized network learns the 500 training digits perfectly and its training loss keeps
# falling towards zero, while its test loss reaches its lowest value between epochs
# {glue:text}`ch5_lowest_epoch_min` and {glue:text}`ch5_lowest_epoch_max` of 30 (depending on the seed)
# and then climbs again: the network becomes ever more confident, including on the test digits it gets
# wrong. That is overfitting. For every seed, all three remedies end with a lower test loss than the
# unregularized network's final one, and each fits the training set less closely:

# %%
for seed in SEEDS:
    run, lowest = plain[seed], lowest_epochs[seed] - 1
    assert run[-1, TRAIN_ACC] == 1.0 and run[-1, TRAIN_LOSS] < 0.02, seed
    # 'near the middle of the run' in the caption below
    assert EPOCHS // 3 <= lowest + 1 <= 2 * EPOCHS // 3, seed
    # the test loss rose again after its minimum
    assert run[-1, TEST_LOSS] > 1.05 * run[lowest, TEST_LOSS], seed
for name in ["L2 in the loss", "AdamW (weight decay)", "early stopping"]:
    rows, base = finals[name], finals["no regularization"]
    assert np.all(rows[:, TEST_LOSS] < base[:, TEST_LOSS]), name
    assert np.all(rows[:, TRAIN_LOSS] > base[:, TRAIN_LOSS]), name

# %% [markdown]
# Test *accuracy* tells a different story from the loss. L2 and early stopping lower the test loss but
# leave the mean test accuracy within half a point of the unregularized network's; only AdamW's decay
# raises it, by {glue:text}`ch5_adamw_gain:.1f` points on these 1000 test digits, and it
# ends ahead of L2 in the loss on every seed, in test loss and in test accuracy. Less than a point is
# not much on 1000 digits: an accuracy near 85%
# measured on 1000 independent digits has a binomial standard deviation of about
# {glue:text}`ch5_test_acc_sd:.1f` points, more than the gain. The difference of two networks scored on
# the *same* digits has a smaller error when their mistakes overlap; the cell after this one measures
# it:

# %%
mean_acc = {name: rows[:, TEST_ACC].mean() for name, rows in finals.items()}
print("mean test accuracy:", {name: round(acc, 3) for name, acc in mean_acc.items()})
for name in ["L2 in the loss", "early stopping"]:
    assert abs(mean_acc[name] - mean_acc["no regularization"]) < 0.005, name
adamw_gain = mean_acc["AdamW (weight decay)"] - mean_acc["no regularization"]
assert 0 < adamw_gain < 0.01
glue("ch5_adamw_gain", 100 * adamw_gain, display=False)
base_acc = mean_acc["no regularization"]
test_acc_sd = math.sqrt(base_acc * (1 - base_acc) / len(test_y))
print(f"gain {adamw_gain:.4f}, binomial sd of one test accuracy {test_acc_sd:.4f}")
glue("ch5_test_acc_sd", 100 * test_acc_sd, display=False)
assert len(test_y) == 1000 and round(base_acc, 2) == 0.85
assert round(100 * test_acc_sd, 1) == 1.1 and adamw_gain < test_acc_sd
adamw_rows, l2_rows = finals["AdamW (weight decay)"], finals["L2 in the loss"]
assert np.all(adamw_rows[:, TEST_LOSS] < l2_rows[:, TEST_LOSS])
assert np.all(adamw_rows[:, TEST_ACC] > l2_rows[:, TEST_ACC])

# %% [markdown]
# The paired measurement: each seed's AdamW network and unregularized network are scored on the same
# 1000 digits, and a bootstrap draws the digits with replacement (the same draw for every seed) and
# recomputes the mean gain over the seeds, 2000 times:

# %%
right_plain = test_correct[(0.0, 0.0)]
right_adamw = test_correct[(0.0, chosen["AdamW (weight decay)"])]
assert np.allclose(right_adamw.mean(axis=1), adamw_rows[:, TEST_ACC])
# +1 where only AdamW is right, -1 where only the unregularized network is
per_digit = right_adamw.astype(np.int8) - right_plain.astype(np.int8)
only_adamw, only_plain = (per_digit == 1).sum(), (per_digit == -1).sum()
draws = np.random.default_rng(0).integers(0, len(test_y), (2000, len(test_y)))
boot_gain = per_digit[:, draws].mean(axis=(0, 2))
paired_sd = boot_gain.std()
print(f"digits only AdamW gets right {only_adamw}, only the plain network {only_plain}")
print(f"paired bootstrap sd of the gain {paired_sd:.4f}", end="; ")
print(f"gain / sd {adamw_gain / paired_sd:.1f}")
no_gain_share = np.mean(boot_gain <= 0)
print(f"share of draws with a gain <= 0: {no_gain_share:.3f}")
glue("ch5_disagree", int(only_adamw + only_plain), display=False)
glue("ch5_paired_answers", per_digit.size, display=False)
glue("ch5_paired_sd", 100 * paired_sd, display=False)
glue("ch5_gain_in_sd", adamw_gain / paired_sd, display=False)
glue("ch5_no_gain_share", no_gain_share, display=False)
assert only_adamw > only_plain and paired_sd < test_acc_sd / 2
assert adamw_gain > 2 * paired_sd and no_gain_share < 0.01


# %% [markdown]
# Exactly one of the two networks is right on only {glue:text}`ch5_disagree` of the
# {glue:text}`ch5_paired_answers` answers (three seeds of 1000 digits), so the paired gain has a
# standard deviation of only {glue:text}`ch5_paired_sd:.2f` points; the gain is
# {glue:text}`ch5_gain_in_sd:.1f` of them, and only {glue:text}`ch5_no_gain_share:.1%` of the draws
# show no gain. Within the binomial noise of one accuracy, then, but not an accident of which digits
# make up the test set. What the bootstrap does not measure is the randomness of training itself,
# which three seeds sample poorly: the gain agrees with what {cite:t}`loshchilov2019` report for
# decoupled decay, but three seeds of one small network on 500 digits measure this setting, not a
# law. The loss, which measures how confident
# the wrong answers are, is where overfitting shows first. {numref}`fig-schedules-overfitting`
# draws each curve as its mean over the seeds, with a band from the smallest to the largest value;
# a small helper draws one such curve:


# %%
def plot_band(ax, curves, style, label):
    """Mean of `curves` (seeds x epochs) over the seeds, and their range as a band."""
    epochs = np.arange(1, curves.shape[1] + 1)
    (line,) = ax.plot(epochs, curves.mean(axis=0), style, label=label)
    ax.fill_between(
        epochs,
        curves.min(axis=0),
        curves.max(axis=0),
        color=line.get_color(),
        alpha=0.15,
    )


lowest_mean = min(
    np.mean([run[:, TEST_LOSS] for run in runs.values()], axis=0).min()
    for runs in histories.values()
)

# %% [markdown]
# Validation and test do not agree on the best epoch: early stopping, which sees only the validation
# loss, restores epochs {glue:text}`ch5_restored_min` to {glue:text}`ch5_restored_max`, while the test
# loss is lowest at epochs {glue:text}`ch5_lowest_epoch_min` to {glue:text}`ch5_lowest_epoch_max`:

# %%
restored = [stopping[seed][0] + 1 for seed in SEEDS]
print("restored:", restored, " lowest test loss:", lowest_epochs)
glue("ch5_restored_min", min(restored), display=False)
glue("ch5_restored_max", max(restored), display=False)
assert max(restored) < min(lowest_epochs)

# %% [markdown]
# The two panels, and the epochs early stopping returns to:

# %% mystnb={"figure": {"caption": "Cross-entropy of a 256-unit MLP on 500 MNIST digits, on the training set (left, log scale) and on the test set (right), with the regularization strengths chosen on the validation set; mean over three seeds, band from the smallest to the largest. Without regularization the training loss goes to zero and the test loss turns upward after its minimum near the middle of the run; L2 and AdamW's weight decay end lower. The dots mark, for each seed, the epoch that early stopping (patience 5 on the validation set) returns to, earlier than the test loss's minimum.", "name": "fig-schedules-overfitting"}}
fig, (ax_train, ax_test) = plt.subplots(1, 2, figsize=(9, 4.2))
for (name, runs), style in zip(histories.items(), ["-", "--", "-."], strict=True):
    curves = np.stack([runs[seed] for seed in SEEDS])
    plot_band(ax_train, curves[:, :, TRAIN_LOSS], style, name)
    plot_band(ax_test, curves[:, :, TEST_LOSS], style, name)
best_epochs = [stopping[seed][0] for seed in SEEDS]
ax_test.plot(
    [e + 1 for e in best_epochs],
    [plain[seed][e, TEST_LOSS] for seed, e in zip(SEEDS, best_epochs, strict=True)],
    "o",
    color="k",
    ms=6,
    label="early stopping",
)
ax_train.set_yscale("log")
# the test panel starts near its lowest mean, so that the upturn shows
ax_test.set_ylim(0.95 * lowest_mean, 1.5 * lowest_mean)
ax_train.set_title("training loss")
ax_test.set_title("test loss")
for ax in (ax_train, ax_test):
    ax.set(xlabel="epoch", ylabel="cross-entropy")
ax_test.legend(fontsize="small")
plt.show()

# %% [markdown]
# ## Early stopping is an L2 penalty, nearly
#
# Why should stopping early regularize at all? On a quadratic the answer is exact
# {cite:p}`goodfellow2016`. Take $f(w) = \tfrac12 (w - w^*)^\top H (w - w^*)$ and gradient descent at
# rate $\alpha$ from $w_0 = 0$. Along an eigenvector of $H$ with eigenvalue $h$, each step multiplies
# the distance to $w^*$ by $1 - \alpha h$, so after $\tau$ steps the component of $w_\tau$ is that of
# $w^*$ times $1 - (1 - \alpha h)^\tau$. The L2-penalized minimum, by the previous section, has the
# component of $w^*$ times $h/(h + \lambda)$. Both factors are near 0 in flat directions and near 1
# in stiff ones. Following {cite:t}`goodfellow2016`, in their section on early stopping, set the
# parts left out equal, $(1 - \alpha h)^\tau = \lambda/(h + \lambda)$, that is
# $\tau\log(1 - \alpha h) = -\log(1 + h/\lambda)$, and expand both logarithms to first order. That
# needs two conditions: $\alpha h \ll 1$ (a step short compared with $1/h$; gradient descent is
# stable only for $\alpha h < 2$) and $h \ll \lambda$. Then
# $\tau\alpha h \approx h/\lambda$ for every such $h$, which holds if
#
# $$
# \lambda \approx \frac{1}{\tau\alpha} .
# $$ (eq-schedules-early-stopping-l2)
#
# Training longer is a weaker penalty. Where $h \ll \lambda$ fails but $\alpha h \ll 1$ still holds,
# $(1 - \alpha h)^\tau \approx e^{-\tau\alpha h}$ and the two factors are $1 - e^{-x}$ and $x/(1 + x)$ with
# $x = \tau\alpha h$, which differ most, by about a fifth of $w^*$, near $x = 2.5$:

# %%
x_grid = np.geomspace(1e-3, 1e3, 60001)
filter_gap = 1 - np.exp(-x_grid) - x_grid / (1 + x_grid)
print(f"largest gap {filter_gap.max():.3f} at x = {x_grid[filter_gap.argmax()]:.2f}")
glue("ch5_filter_gap", filter_gap.max(), display=False)
assert (
    round(filter_gap.max(), 2) == 0.20 and round(x_grid[filter_gap.argmax()], 1) == 2.5
)

# %% [markdown]
# We check the prediction on a quadratic in 40 dimensions whose eigenvalues are spread evenly on a log
# scale from $10^{-4}$ to 1, in a random orientation (so the run itself knows nothing of the
# eigenvectors), with $\alpha = 0.5$. Gradient descent is stopped after $\tau$ = 10, 100 and 1000
# steps; each result is compared with the ridge solution for the predicted $\lambda = 1/(\tau\alpha)$,
# and with ten times and a tenth of it. A grid search also finds the $\lambda$ that matches best.

# %%
es_h = np.geomspace(1e-4, 1.0, 40)
es_q = np.linalg.qr(np.random.default_rng(8).normal(size=(40, 40)))[0]
es_hessian = es_q @ np.diag(es_h) @ es_q.T
es_target = es_q @ np.ones(40)
es_alpha, es_taus = 0.5, (10, 100, 1000)


def ridge(lam):
    return np.linalg.solve(es_hessian + lam * np.eye(40), es_hessian @ es_target)


def early_stopped(tau):
    w = np.zeros(40)
    for _ in range(tau):
        w = w - es_alpha * es_hessian @ (w - es_target)
    return w


# %% [markdown]
# For each $\tau$, the components of the early-stopped weights along the eigenvectors are first
# checked against $1 - (1 - \alpha h)^\tau$; then the weights are compared with the ridge solutions:

# %%
lam_grid = np.geomspace(1e-5, 10, 601)
print(
    "  tau   lambda   |w_es - ridge| / |w_es| at lambda, x10, /10"
    "   best lambda * tau * alpha"
)
es_rows = {}
for tau in es_taus:
    w_es, lam = early_stopped(tau), 1 / (tau * es_alpha)
    # the component along each eigenvector: the factor 1 - (1 - alpha h)^tau exactly
    factors = es_q.T @ w_es
    assert np.allclose(factors, 1 - (1 - es_alpha * es_h) ** tau, atol=1e-10)
    gap = {
        k: np.linalg.norm(w_es - ridge(k * lam)) / np.linalg.norm(w_es)
        for k in (1, 10, 0.1)
    }
    best = lam_grid[np.argmin([np.linalg.norm(w_es - ridge(g)) for g in lam_grid])]
    factor_gap = np.max(np.abs(factors - es_h / (es_h + lam)))
    es_rows[tau] = gap, best * tau * es_alpha, factor_gap
    print(
        f"{tau:5d} {lam:8.4f}   {gap[1]:5.2f} {gap[10]:5.2f} {gap[0.1]:5.2f}"
        f"   {best * tau * es_alpha:5.2f}   (largest factor gap {factor_gap:.2f})"
    )

# %% [markdown]
# The early-stopped weights are closest to the ridge solution with a $\lambda$ near the predicted one:
# the best match is at about $0.6/(\tau\alpha)$ for every $\tau$, within a factor of two of
# {eq}`eq-schedules-early-stopping-l2`, and $\lambda$ ten times larger or smaller is more than twice as
# far off. The match is not exact: the per-direction factors differ by up to about a fifth, as
# predicted, in the directions with $h$ within a small factor of $\lambda$, where $h \ll \lambda$
# fails. The other condition fails too: here $\alpha h$ goes up to 0.5, not $\ll 1$, and it matters
# most for $\tau = 10$, whose threshold $\lambda = 0.2$ sits among those large curvatures; that is why
# $\tau = 10$ has the largest factor gap: its excess over the gap of $\tau = 1000$ is, to within
# $5 \times 10^{-3}$, the change from $(1 - \alpha h)^\tau$ to $e^{-\tau\alpha h}$ that the cell
# below measures at $\tau = 10$.
# {numref}`fig-schedules-early-stopping` shows the factors.

# %%
exp_gap = {}
for tau, (gap, best_ratio, factor_gap) in es_rows.items():
    assert round(best_ratio, 1) == 0.6, tau
    assert gap[1] < 0.25 and min(gap[10], gap[0.1]) > 2 * gap[1], tau
    assert 0.19 < factor_gap < 0.24, tau
    lam = 1 / (tau * es_alpha)
    kept = 1 - (1 - es_alpha * es_h) ** tau
    worst_h = es_h[np.argmax(np.abs(kept - es_h / (es_h + lam)))]
    assert 0.5 < worst_h / lam < 5, tau
    exp_gap[tau] = np.max(np.abs(kept - (1 - np.exp(-tau * es_alpha * es_h))))
assert es_alpha * es_h.max() == 0.5
assert es_rows[10][2] > es_rows[100][2] > es_rows[1000][2]
print("largest change from (1 - alpha h)^tau to exp(-tau alpha h):")
print({tau: f"{value:.1e}" for tau, value in exp_gap.items()})
assert round(exp_gap[10], 2) == 0.03
excess_10 = es_rows[10][2] - es_rows[1000][2]
print(f"factor gap of tau = 10 minus that of tau = 1000: {excess_10:.3f}")
assert abs(excess_10 - exp_gap[10]) < 5e-3
# predicted: the largest of x^2 exp(-x) / (2 tau), 2 exp(-2) / tau at x = 2
assert all(abs(exp_gap[tau] * tau / (2 * math.exp(-2)) - 1) < 0.05 for tau in es_taus)

# %% [markdown]
# The other approximation, $(1 - \alpha h)^\tau \approx e^{-\tau\alpha h}$, costs much less. With
# $x = \tau\alpha h$ fixed, the two differ by about $x^2 e^{-x}/(2\tau)$, at most $2e^{-2}/\tau$ (at
# $x = 2$): 0.03 for $\tau = 10$ and ten times less for each tenfold $\tau$, as measured. The factors
# themselves, as functions of the curvature:

# %% mystnb={"figure": {"caption": "The factor that multiplies the component of $w^*$ along an eigen-direction of curvature $h$: gradient descent stopped after $\\tau$ steps at rate $\\alpha = 0.5$ (solid, $1 - (1 - \\alpha h)^\\tau$) and the L2-penalized minimum with $\\lambda = 1/(\\tau\\alpha)$ (dashed, $h/(h + \\lambda)$). Both keep the stiff directions and suppress the flat ones, with the threshold at the same curvature.", "name": "fig-schedules-early-stopping"}}
fig, ax = plt.subplots(figsize=(8.5, 4))
h_fine = np.geomspace(1e-4, 1.0, 400)
for tau in es_taus:
    lam = 1 / (tau * es_alpha)
    (line,) = ax.plot(
        h_fine,
        1 - (1 - es_alpha * h_fine) ** tau,
        lw=1.8,
        label=rf"stopped at $\tau$ = {tau}",
    )
    ax.plot(
        h_fine,
        h_fine / (h_fine + lam),
        "--",
        color=line.get_color(),
        label=rf"L2, $\lambda$ = {lam:g}",
    )
ax.set_xscale("log")
ax.set_xlabel("curvature $h$ of the eigen-direction")
ax.set_ylabel("fraction of $w^*$ kept")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()

# %% [markdown]
# ## Summary
#
# - Every schedule in TensorFlow, and the warm-up with a linear decay that it lacks, is a short
#   formula of the step number ({eq}`eq-schedules-exp` to {eq}`eq-schedules-warmup-linear`).
#   Hand-written, they agree with `tf.compat.v1.train.*` and `tf.keras.optimizers.schedules.*` to
#   float32 rounding at every step of the settings tried (TF1 and Keras differ from each other in the
#   last bits, not more), with one exception shown: with `t_mul=1.1`, Keras' `CosineDecayRestarts`
#   gives 0 instead of 0.64 at step 210, where float32 rounding puts the step in the wrong cycle.
#   `natural_exp_decay` is `ExponentialDecay`
#   with rate $e^{-k}$; piecewise boundaries belong to the earlier piece; polynomial and cosine decay
#   clamp the step.
# - The source's "0.45 per step" drifts because `exponential_decay` without `staircase` decays a
#   little at every step; {eq}`eq-tf-gradients-shrink` predicts each factor as $1 - 11\alpha_t$.
# - TF1 counts steps in `global_step`, but only if you pass it to `minimize`: forgetting it switches
#   the schedule off without an error. Keras counts in `optimizer.iterations`; a schedule object gives
#   identical runs in a Keras optimizer and in a hand-written loop.
# - With noisy gradients a decaying rate starts like a large constant rate and ends like a small one:
#   on a noisy line fit, exponential and $1/t$ decay beat every constant rate tried on each of five
#   orders of the data, and cosine with warm-up ties the best constant rate. Exponential decay breaks
#   Robbins and Monro's $\sum_t \alpha_t = \infty$, which matters only when the start is far away
#   or a direction is flat.
# - `tf.nn.l2_loss` is $\tfrac12\sum w^2$, Keras' `L2(ℓ)` is $\ell\sum w^2$, TF1's
#   `l2_regularizer(s)` is $s \cdot$ `l2_loss`: a TF1 `beta * l2_loss(W)` is Keras `L2(beta / 2)`.
# - For gradient descent, an L2 penalty $\tfrac{\lambda}{2}\lVert w\rVert^2$ and Keras'
#   `weight_decay=λ` are the same algorithm. For Adam they are not: the penalty is normalized per
#   coordinate, the decoupled decay of AdamW is not, and they end at different weights.
# - On 500 MNIST digits a wide network overfits: its test loss turns upward after epoch
#   {glue:text}`ch5_lowest_epoch_min` to {glue:text}`ch5_lowest_epoch_max` of 30. L2, weight decay
#   (both sparing the biases, strengths chosen on a validation set) and early stopping each end with
#   a lower test loss than training to the end without them, for each of three seeds.
# - Early stopping after $\tau$ steps of gradient descent at rate $\alpha$ acts like an L2 penalty with
#   $\lambda \approx 1/(\tau\alpha)$ on a quadratic: it keeps the stiff directions and suppresses the
#   flat ones, with the same threshold up to a factor of two.
# - Keras' `CosineDecayRestarts` and a warm-up followed by a linear decay (a ramp in front of
#   `PolynomialDecay(power=1)`) are formulas like the others, checked the same way.
#
# ## Exercises
#
# ```{exercise}
# :label: ex-schedules-staircase
# A TF1 program uses `tf.train.exponential_decay(0.1, global_step, 1000, 0.96, staircase=True)`.
# Write the TF2 equivalent, and find the first step at which the learning rate is below 0.05.
# Check your schedule against TF1's over three stairs (in eager mode TF1's function returns a function
# of no arguments): with `from gdbook import check`,
# `check.schedule(my_schedule, lambda s: tf.compat.v1.train.exponential_decay(0.1, s, 1000, 0.96, staircase=True)(), steps=3000)`.
# ```
#
# ```{solution-start} ex-schedules-staircase
# :class: dropdown
# ```
#
# `tf.keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)`,
# given to the optimizer as its `learning_rate`. The rate is $0.1 \cdot 0.96^{\lfloor t/1000 \rfloor}$,
# which is below 0.05 once $0.96^k < 0.5$, i.e. $k > \ln 0.5 / \ln 0.96 \approx 16.98$, so $k = 17$:
# the first such step is $t = 17000$ (at $t = 16999$ the rate is still $0.1 \cdot 0.96^{16} \approx
# 0.052$). The check passes, and the schedule itself finds the step:

# %%
from gdbook import check

tf2_staircase = schedules.ExponentialDecay(
    0.1, decay_steps=1000, decay_rate=0.96, staircase=True
)
check.schedule(
    tf2_staircase,
    lambda s: tf.compat.v1.train.exponential_decay(
        0.1, s, 1000, 0.96, staircase=True
    )(),
    steps=3000,
)
below = tf2_staircase(tf.range(20000, dtype=tf.int64)).numpy() < 0.05
print("first step below 0.05:", int(np.argmax(below)))
assert int(np.argmax(below)) == 17000


# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-schedules-translate
# A TF1 model minimizes `cross_entropy + 5e-4 * tf.nn.l2_loss(W)` with
# `GradientDescentOptimizer(0.1)`. Give (a) the Keras regularizer for `W` and (b) the `weight_decay`
# of `tf.keras.optimizers.SGD(0.1, weight_decay=...)` that reproduce the same updates of `W`. Check
# (a) by comparing your regularizer applied to a random `W` with `5e-4 * tf.nn.l2_loss(W)`. Check (b)
# against the TF1 loss as written: a wrapper `TF1Penalty(optimizer, beta)` whose `apply_gradients`
# adds to each gradient the tape gradient of `beta * tf.nn.l2_loss(var)` (so that TensorFlow, not
# you, does the halving), and
# `check.optimizer(lambda: tf.keras.optimizers.SGD(0.1, weight_decay=...), lambda: TF1Penalty(tf.keras.optimizers.SGD(0.1), 5e-4))`.
# Would the same `weight_decay` reproduce a TF1 `MomentumOptimizer(0.1, 0.9)` with that loss? Run the
# check with `tf.compat.v1.train.MomentumOptimizer(0.1, 0.9)` inside the wrapper as the reference (TF1's
# optimizers also run eagerly). And would it in `AdamW`, for an `AdamOptimizer`?
# ```
#
# ```{solution-start} ex-schedules-translate
# :class: dropdown
# ```
#
# (a) $5\times10^{-4}\cdot\tfrac12\sum W^2 = 2.5\times10^{-4}\sum W^2$, so
# `kernel_regularizer=tf.keras.regularizers.L2(2.5e-4)`. (b) The penalty is
# $\tfrac{\lambda}{2}\lVert W\rVert^2$ with $\lambda = 5\cdot10^{-4}$, and by
# {eq}`eq-schedules-l2-step` Keras' `weight_decay` must equal $\lambda$: `weight_decay=5e-4` (Keras
# multiplies it by the learning rate itself). Only `W` should be decayed, so the biases must be excluded
# with `optimizer.exclude_from_weight_decay(...)`. The reference adds the gradient of the TF1
# penalty exactly as written, with `tf.nn.l2_loss` doing the halving:


# %%
class TF1Penalty:
    """`optimizer` applied to loss + beta * tf.nn.l2_loss(var), for every variable."""

    def __init__(self, optimizer, beta):
        self.optimizer, self.beta = optimizer, beta

    def apply_gradients(self, grads_and_vars):
        pairs = []
        for grad, var in grads_and_vars:
            with tf.GradientTape() as tape:
                penalty = self.beta * tf.nn.l2_loss(var)
            pairs.append((grad + tape.gradient(penalty, var), var))
        self.optimizer.apply_gradients(pairs)


random_w = tf.constant(np.random.default_rng(5).normal(size=(3, 2)), tf.float32)
regularizer_value = float(tf.keras.regularizers.L2(2.5e-4)(random_w))
tf1_penalty_value = float(5e-4 * tf.nn.l2_loss(random_w))
print(f"(a) L2(2.5e-4)(W) = {regularizer_value:.6e}", end=", ")
print(f"TF1 penalty {tf1_penalty_value:.6e}")
assert math.isclose(regularizer_value, tf1_penalty_value, rel_tol=1e-6)

# %% [markdown]
# Check (b) passes; with the regularizer's coefficient $2.5\times10^{-4}$ by mistake it fails at
# step 1 and recognises a decay with another rate:

# %%
check.optimizer(
    lambda: tf.keras.optimizers.SGD(0.1, weight_decay=5e-4),
    lambda: TF1Penalty(tf.keras.optimizers.SGD(0.1), 5e-4),
)
with gdbook.expect_error(AssertionError, reraise=False) as halved:
    check.optimizer(
        lambda: tf.keras.optimizers.SGD(0.1, weight_decay=2.5e-4),
        lambda: TF1Penalty(tf.keras.optimizers.SGD(0.1), 5e-4),
    )
assert "part at step 1 " in halved.message and "weight decay" in halved.message

# %% [markdown]
# With momentum, no: the penalty's gradient enters the velocity and decoupled decay does not (SGDW).
# The two agree at step 1, while the velocity is still empty, and part from step 2. Only (a), which
# keeps the penalty in the loss, reproduces the `MomentumOptimizer`. That rests on Keras' momentum
# being TF1's at a constant rate (Keras keeps $v \leftarrow \mu v - \alpha g$, TF1
# $a \leftarrow \mu a + g$ and subtracts $\alpha a$); the first check below tests it against TF1's
# optimizer itself:

# %%
check.optimizer(
    lambda: TF1Penalty(tf.keras.optimizers.SGD(0.1, momentum=0.9), 5e-4),
    lambda: TF1Penalty(tf1.train.MomentumOptimizer(0.1, 0.9), 5e-4),
)
with gdbook.expect_error(AssertionError, reraise=False) as with_momentum:
    check.optimizer(
        lambda: tf.keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
        lambda: TF1Penalty(tf1.train.MomentumOptimizer(0.1, 0.9), 5e-4),
    )
print(with_momentum.message.splitlines()[0])
assert "part at step 2 " in with_momentum.message
assert "Step 1 agrees" in with_momentum.message

# %% [markdown]
# Nor for Adam: the penalty's gradient passes through Adam's normalization and the decay of
# AdamW does not, as the quadratic example above shows.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-schedules-diverge
# In the source problem the prediction is multiplied by $1 - 11\alpha_t$ at each step. What is the
# largest constant rate for which it converges? Start instead at $\alpha_0 = 0.3$ with the source's
# decay (0.9 every 100 steps, continuous): from which step on does the prediction shrink, and what
# happens to it before that in float32? Write the rate as a Keras schedule and check it against the
# TF1 one:
# `check.schedule(my_schedule, lambda s: tf.compat.v1.train.exponential_decay(0.3, s, 100, 0.9)(), steps=500)`;
# then multiply the prediction 4.0 by $1 - 11\alpha_t$, in float32, step by step.
# ```
#
# ```{solution-start} ex-schedules-diverge
# :class: dropdown
# ```
#
# Convergence needs $|1 - 11\alpha| < 1$, i.e. $0 < \alpha < 2/11 \approx 0.1818$. With
# $\alpha_t = 0.3 \cdot 0.9^{t/100}$ the factor's magnitude is above 1 while $\alpha_t > 2/11$, that is
# for $t < 100 \ln(0.1818/0.3)/\ln 0.9 \approx 475.3$: the prediction shrinks only from step 476 on.
# Before that, it is multiplied by numbers between $-2.3$ and $-1$ some 476 times; its magnitude
# exceeds float32's largest value (about $3.4\times10^{38}$) after about 120 steps, and the run is lost
# long before the schedule could rescue it. The scalar product below says only "infinite"; the real
# run says more:

# %%
diverging = schedules.ExponentialDecay(0.3, decay_steps=100, decay_rate=0.9)
check.schedule(
    diverging,
    lambda s: tf.compat.v1.train.exponential_decay(0.3, s, 100, 0.9)(),
    steps=500,
)
diverging_rates = diverging(tf.range(476, dtype=tf.int64)).numpy()
with np.errstate(over="ignore", invalid="ignore"):
    p, overflow_step = np.float32(4.0), None
    for t, rate in enumerate(diverging_rates):
        p = np.float32(p * (1 - 11 * rate))
        if overflow_step is None and not np.isfinite(p):
            overflow_step = t
print(f"overflow at step {overflow_step}; after step 475 the prediction is {p}")
assert overflow_step is not None and round(overflow_step, -1) == 120
assert np.isinf(p) and np.all(np.abs(1 - 11 * diverging_rates) > 1)
assert abs(1 - 11 * float(diverging(476))) < 1

# %% [markdown]
# The source problem itself, run by TF1's `GradientDescentOptimizer` with this schedule, reaches an
# infinite prediction at the same step, where a weight has itself overflowed to $-\infty$. The next
# update subtracts an infinite gradient step from that infinite weight, $-\infty + \infty$, which is
# NaN, and from then on the prediction is NaN:

# %%
diverge_graph = tf.Graph()
with diverge_graph.as_default():
    gd_w, gd_b = tf1.Variable([[1.0], [2.0]]), tf1.Variable([0.0, 0.0])
    gd_prediction = tf.matmul(tf.constant([[2.0, 1.0]]), gd_w) + gd_b
    gd_step = tf1.Variable(0, trainable=False)
    gd_rate = tf1.train.exponential_decay(0.3, gd_step, 100, 0.9)
    gd_train = tf1.train.GradientDescentOptimizer(gd_rate).minimize(
        tf.reduce_mean(gd_prediction**2), global_step=gd_step
    )
    gd_initialize = tf1.global_variables_initializer()
with tf1.Session(graph=diverge_graph) as session:
    session.run(gd_initialize)
    gd_predictions, gd_first_weight = [], []
    for _ in range(130):
        prediction_now, w_now = session.run([gd_prediction, gd_w])
        gd_predictions.append(prediction_now[0, 0])
        gd_first_weight.append(w_now[0, 0])
        session.run(gd_train)
first_inf = int(np.flatnonzero(~np.isfinite(gd_predictions))[0])
print(f"prediction {gd_predictions[first_inf]} at step {first_inf}, then", end=" ")
print(f"{gd_predictions[first_inf + 1]} from step {first_inf + 1} on")
assert first_inf == overflow_step and np.isinf(gd_predictions[first_inf])
assert np.isneginf(gd_first_weight[first_inf])
assert np.isnan(gd_first_weight[first_inf + 1])
assert np.all(np.isnan(gd_predictions[first_inf + 1 :]))

# %% [markdown]
# No schedule that spends hundreds of steps above $2/11$ can repair this, and on a quadratic, whose
# curvature never changes, a warm-up cannot either: it only delays the unstable steps. A warm-up
# helps a network because the network changes, fastest in the first steps
# {cite:p}`goyal2017`, and a rate that is too large at the start can be right later.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-schedules-boundary
# A Keras optimizer uses `PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.02])`. Which rate does the
# update use that moves `optimizer.iterations` from 300 to 301? And which rate would a schedule written
# with `step < boundary` use there? Write that schedule and let `gdbook.check` compare it with Keras':
# `check.schedule(lambda s: tf.where(s < 300, 0.1, tf.where(s < 600, 0.05, 0.02)), schedules.PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.02]), steps=700)`.
# ```
#
# ```{solution-start} ex-schedules-boundary
# :class: dropdown
# ```
#
# The update reads the rate *before* incrementing, at `iterations = 300`, and the boundary belongs to
# the earlier piece ($t \le 300$), so it uses 0.1: the first 301 updates (steps 0 to 300) use 0.1. A
# schedule written with `step < boundary` would already use 0.05 at step 300, one step early: a
# difference of one update that is invisible in a loss curve but breaks a bit-for-bit comparison.
# The check names that step and the likely cause:

# %%
from gdbook import check

with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.schedule(
        lambda s: tf.where(s < 300, 0.1, tf.where(s < 600, 0.05, 0.02)),
        schedules.PiecewiseConstantDecay([300, 600], [0.1, 0.05, 0.02]),
        steps=700,
    )
print(caught.message)
assert "part at step 300 " in caught.message
assert "one step ahead" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
#
# The numbers quoted in the solutions above are checked in a cell hidden from the book:

# %% tags=["remove-cell"]
# Checks of the numbers quoted in the solutions (hidden in the book, run by the tests).
first_k = next(k for k in range(100) if 0.96**k < 0.5)
assert first_k == 17 and 0.1 * 0.96**16 > 0.05 and round(0.1 * 0.96**16, 3) == 0.052
assert abs(math.log(0.5) / math.log(0.96) - 16.98) < 0.01
critical = 100 * math.log((2 / 11) / 0.3) / math.log(0.9)
assert abs(critical - 475.3) < 0.05
assert piecewise_constant(300, [300, 600], [0.1, 0.05, 0.02]) == 0.1
print(
    f"first step below 0.05: {1000 * first_k}; at step {1000 * first_k - 1}"
    " the rate is "
    f"{0.1 * 0.96**16:.3f}; k > {math.log(0.5) / math.log(0.96):.2f}"
)
print(
    f"Keras L2 for 5e-4 * l2_loss: {gdbook.sci(5e-4 / 2)}; 2/11 = {2 / 11:.4f}; "
    f"1 - 11 * 0.3 = {1 - 11 * 0.3:.1f}; critical step {critical:.1f}"
)
print(
    f"float32 max {gdbook.sci(np.finfo(np.float32).max)};"
    f" float32 overflow at step {overflow_step}"
)

# %% [markdown]
# ```{exercise}
# :label: ex-schedules-cycle
# `PolynomialDecay(..., cycle=True)` does not stop at its final rate: after `decay_steps` it starts a
# new, longer decay from a lower peak. In Keras' form the decay length at step $t$ is
# $T \lceil t/T \rceil$ (and $T$ itself at $t = 0$), and the rate is
# {eq}`eq-schedules-polynomial` with that length in place of $T$ and no clamping of $t$. Write
# `cyclic_polynomial(step, lr0, decay_steps, end_lr, power)` with TensorFlow ops (so an optimizer can
# call it with its `iterations`), and check it against Keras over three cycles (with
# `from gdbook import check`):
# `check.schedule(lambda s: cyclic_polynomial(s, 0.1, 20, 0.01, 2.0), schedules.PolynomialDecay(0.1, 20, 0.01, power=2.0, cycle=True), steps=70)`.
# What does the check say if you forget the special case $t = 0$?
# ```
#
# ```{solution-start} ex-schedules-cycle
# :class: dropdown
# ```
#
# The cycle count, written with `tf.where` so that step 0 counts as the first cycle:

# %%
from gdbook import check


def cyclic_polynomial(step, lr0, decay_steps, end_lr, power):
    step = tf.cast(step, tf.float32)
    cycles = tf.where(step == 0, 1.0, tf.math.ceil(step / decay_steps))
    done = step / (decay_steps * cycles)
    return (lr0 - end_lr) * (1 - done) ** power + end_lr


keras_cyclic = schedules.PolynomialDecay(0.1, 20, 0.01, power=2.0, cycle=True)
check.schedule(
    lambda s: cyclic_polynomial(s, 0.1, 20, 0.01, 2.0), keras_cyclic, steps=70
)


# %% [markdown]
# Without the special case, step 0 has a decay length of 0 and the rate is $0/0$, NaN; the check names
# step 0 as the first that differs, and the only one.


# %%
def cyclic_polynomial_no_special_case(step, lr0, decay_steps, end_lr, power):
    step = tf.cast(step, tf.float32)
    done = step / (decay_steps * tf.math.ceil(step / decay_steps))
    return (lr0 - end_lr) * (1 - done) ** power + end_lr


with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.schedule(
        lambda s: cyclic_polynomial_no_special_case(s, 0.1, 20, 0.01, 2.0),
        keras_cyclic,
        steps=70,
    )
assert "part at step 0 " in caught.message
assert "yours:     nan" in caught.message
assert "1 of 70 steps differ, the first 0, the last 0" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
