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
# (ch-debugging)=
# # When gradients go wrong
#
# :::{admonition} What you will learn
# :class: tip
# - how to check any gradient against central differences in float64, and how to read the relative error;
# - how a planted bug in a `tf.custom_gradient` shows up in the check, and in which parameters;
# - where NaN and Inf come from (log of 0, `exp` overflow, division by a vanishing norm), how
#   `tf.debugging` names the op that made them, and the stable rewrites;
# - why gradients vanish or explode in a deep chain, and what clipping by value, by norm and by
#   global norm does to them and to training;
# - how to log gradient norms and histograms (TF1 and TF2), read the event files back and plot them.
# :::
#
# The source post whose optimizers Chapter 4 reproduces ends with a short list of what comes after a working gradient descent:
# numerical trouble (overflow, underflow, NaN losses), gradient checking "in case you wrote something
# wrong", and TensorBoard logs. This chapter works through that list. Every tool here answers one
# question: *is the gradient that the optimizer receives the gradient I meant?*

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import numpy as np
import tensorflow as tf

# %% [markdown]
# We also need Keras, matplotlib and a few standard-library modules.

# %%
import tempfile
from pathlib import Path

import keras
import matplotlib.pyplot as plt

print("TensorFlow", tf.__version__, "| Keras", keras.__version__)


# %% [markdown]
# ## Gradient checking
#
# ### Central differences and the step size
#
# A derivative is a limit of difference quotients, so any gradient can be checked by evaluating the loss
# twice per parameter. For parameter $\theta_i$ and unit vector $e_i$, the *central difference*
#
# $$
# \hat g_i = \frac{L(\theta + h\,e_i) - L(\theta - h\,e_i)}{2h}
#   = \frac{\partial L}{\partial \theta_i} + \frac{h^2}{6}\,\frac{\partial^3 L}{\partial \theta_i^3} + O(h^4)
# $$ (eq-debugging-central)
#
# is accurate to second order in $h$: the first-order terms of the two Taylor expansions cancel. The
# one-sided difference $(L(\theta + h e_i) - L(\theta))/h$ is only first order. But $h$ cannot be made
# arbitrarily small: both loss values are rounded to the machine precision $\varepsilon$, and their
# difference is divided by $2h$. The total error of {eq}`eq-debugging-central` is therefore about
#
# $$
# E(h) \approx \frac{h^2}{6}\,\lvert L'''\rvert + \frac{\varepsilon\,\lvert L\rvert}{h},
# \qquad
# h^\star = \left(\frac{3\,\varepsilon\,\lvert L\rvert}{\lvert L'''\rvert}\right)^{1/3},
# $$ (eq-debugging-step-error)
#
# where $h^\star$ minimizes $E$. With $\varepsilon \approx 2.2\times 10^{-16}$ (float64) the best step is
# near $10^{-5}$ and the best relative error of order $10^{-11}$; with $\varepsilon \approx 1.2\times 10^{-7}$
# (float32) both are far worse. Let us measure it on $f(x) = e^x \sin x$ near $x = 1$, whose derivative
# $f'(x) = e^x(\sin x + \cos x)$ we know exactly. Rounding errors are erratic from one point to the next,
# so we report the median relative error over 101 points in $[0.95, 1.05]$.

# %%
def f_test(x):
    return tf.exp(x) * tf.sin(x)


x0 = 1.0
x_points = x0 + np.linspace(-0.05, 0.05, 101)
exact_derivatives = np.exp(x_points) * (np.sin(x_points) + np.cos(x_points))
steps = np.logspace(-12, -1, 45)


def central_difference_errors(dtype):
    """Median relative error of the central difference over x_points, at every step
    size."""
    x = tf.constant(x_points, dtype)
    errors = []
    for h in steps:
        h_t = tf.constant(h, dtype)
        estimates = (
            ((f_test(x + h_t) - f_test(x - h_t)) / (2 * h_t)).numpy().astype(np.float64)
        )
        errors.append(
            np.median(np.abs(estimates - exact_derivatives) / np.abs(exact_derivatives))
        )
    return np.array(errors)


errors64 = central_difference_errors(tf.float64)
errors32 = central_difference_errors(tf.float32)
best64, best32 = steps[errors64.argmin()], steps[errors32.argmin()]
print(f"float64: best h = {best64:.1e}, median relative error {errors64.min():.1e}")
print(f"float32: best h = {best32:.1e}, median relative error {errors32.min():.1e}")

# %% [markdown]
# The prediction $h^\star$ of {eq}`eq-debugging-step-error` needs $f'''(x) = -2e^x(\sin x - \cos x)$ at
# $x = 1$. We check that the measured best steps are within a factor of 10 of it, that float64 reaches
# a relative error between $10^{-13}$ and $10^{-10}$, and that float32 never gets below $10^{-7}$.

# %%
third_derivative = -2 * np.exp(x0) * (np.sin(x0) - np.cos(x0))
f_value = np.exp(x0) * np.sin(x0)


def predicted_best_step(eps):
    return (3 * eps * abs(f_value) / abs(third_derivative)) ** (1 / 3)


for name, eps, best in [
    ("float64", np.finfo(np.float64).eps, best64),
    ("float32", np.finfo(np.float32).eps, best32),
]:
    print(f"{name}: predicted h* = {predicted_best_step(eps):.1e}, measured {best:.1e}")
    assert 0.1 < best / predicted_best_step(eps) < 10
assert 1e-13 < errors64.min() < 1e-10
assert errors32.min() > 1e-7

# %% [markdown]
# {numref}`fig-debugging-step-size` shows the two regimes of {eq}`eq-debugging-step-error`: to the
# right of the minimum the $h^2$ truncation error dominates (slope 2 on a log-log plot), to the left the
# rounding error $\varepsilon/h$ does (slope $-1$, with scatter because rounding is erratic).

# %% mystnb={"figure": {"caption": "Relative error of the central difference of $e^x \\sin x$ at $x = 1$ against the step $h$. Truncation error falls as $h^2$ to the right; rounding error grows as $\\varepsilon/h$ to the left. float32 bottoms out near $10^{-5}$, float64 near $10^{-11}$.", "name": "fig-debugging-step-size"}}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.loglog(steps, errors64, "o-", ms=3, label="float64")
ax.loglog(steps, errors32, "s-", ms=3, label="float32")
for best, errors in [(best64, errors64), (best32, errors32)]:
    ax.plot(best, errors.min(), "k*", ms=10)
ax.set_xlabel("step $h$")
ax.set_ylabel("median relative error")
ax.legend()
plt.show()


# %% [markdown]
# This is why gradient checks are done in float64: in float32 the best achievable agreement is no better
# than the thresholds that are supposed to flag a bug.
#
# ### The relative error and its thresholds
#
# An absolute difference between an analytic gradient $g$ and a numerical one $\hat g$ means nothing
# without a scale: $10^{-4}$ is huge for a gradient of size $10^{-5}$ and tiny for one of size $10^3$. The
# usual measure {cite:p}`karpathy2016cs231n` is
#
# $$
# r = \frac{\lvert g - \hat g\rvert}{\max\left(\lvert g\rvert,\ \lvert \hat g\rvert,\ \tau\right)},
# $$ (eq-debugging-relerr)
#
# taken per parameter entry, where the floor $\tau$ (we use $10^{-12}$) avoids $0/0$ when both are zero.
# The rules of thumb, for float64 and a smooth loss:
#
# | largest $r$ | verdict |
# | --- | --- |
# | above $10^{-2}$ | the gradient is almost certainly wrong |
# | $10^{-4}$ to $10^{-2}$ | suspicious; acceptable only near kinks (ReLU, max, abs) |
# | $10^{-7}$ to $10^{-4}$ | fine for non-smooth losses, too large for smooth ones |
# | below $10^{-7}$ | the gradient is right |
#
# Here is the check, written once for any loss function and any list of variables. It perturbs one entry
# at a time with `assign`, evaluates the loss twice, and restores the entry.

# %%
def numerical_gradient(loss_fn, variables, h=1e-6):
    """Central differences of loss_fn() for every entry of every variable."""
    gradients = []
    for var in variables:
        values = np.array(var.numpy())  # a writable copy
        flat = values.reshape(-1)  # a view: writing flat[i] changes values
        grad = np.zeros_like(flat)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + h
            var.assign(values)
            loss_plus = float(loss_fn())
            flat[i] = original - h
            var.assign(values)
            loss_minus = float(loss_fn())
            flat[i] = original
            grad[i] = (loss_plus - loss_minus) / (2 * h)
        var.assign(values)
        gradients.append(grad.reshape(values.shape))
    return gradients


def relative_error(analytic, numeric, floor=1e-12):
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return np.abs(analytic - numeric) / scale


def gradient_check(loss_fn, variables, h=1e-6):
    """The largest relative error r (defined above) for each variable, keyed by
    layer/name."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    analytic = tape.gradient(loss, variables)
    numeric = numerical_gradient(loss_fn, variables, h)
    return {
        "/".join(var.path.split("/")[-2:]): relative_error(a.numpy(), n).max()
        for var, a, n in zip(variables, analytic, numeric, strict=True)
    }


# %% [markdown]
# ### Every parameter of a small MLP
#
# Our test network is a two-layer perceptron in float64: 4 inputs, 5 hidden units with a softplus
# activation, 3 classes, a softmax cross-entropy loss on a batch of 8 random examples. It has
# $4\cdot 5 + 5 + 5 \cdot 3 + 3 = 43$ parameters, so the check costs 86 forward passes.

# %%
rng = np.random.default_rng(0)
x_check = rng.normal(size=(8, 4))
y_check = rng.integers(0, 3, size=8)


def make_mlp(activation, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="float64"),
            keras.layers.Dense(
                5, activation=activation, dtype="float64", name="hidden"
            ),
            keras.layers.Dense(3, dtype="float64", name="output"),
        ]
    )


def mlp_loss(model):
    logits = model(x_check)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(y_check, logits)
    )


mlp = make_mlp(tf.nn.softplus)
print("parameters:", mlp.count_params())
report_library = gradient_check(lambda: mlp_loss(mlp), mlp.trainable_variables)
for name, err in report_library.items():
    print(f"{name:16s} max relative error {err:.1e}")
assert mlp.count_params() == 43
assert max(report_library.values()) < 1e-7


# %% [markdown]
# Every parameter passes with a wide margin: TensorFlow's gradient of `softplus`, `matmul`, the bias add
# and the fused cross-entropy is right, as expected.
#
# ### Planting a bug in a custom gradient
#
# Now we write softplus ourselves, $\operatorname{softplus}(x) = \log(1 + e^x)$, with a hand-written
# gradient through `tf.custom_gradient`. Its derivative is the sigmoid $\sigma(x)$. The buggy version
# returns $\sigma(x)\,(1 - \sigma(x))$ instead: the derivative of the sigmoid, an easy slip when one has
# just differentiated one function too many. The forward pass is the same in both.

# %%
@tf.custom_gradient
def softplus_correct(x):
    def grad(upstream):
        return upstream * tf.sigmoid(x)

    return tf.nn.softplus(x), grad


@tf.custom_gradient
def softplus_buggy(x):
    def grad(upstream):
        s = tf.sigmoid(x)
        return upstream * s * (1 - s)  # BUG: this is sigma'(x), not softplus'(x)

    return tf.nn.softplus(x), grad


# %% [markdown]
# We run the same check on both networks, built from the same seed so that only the gradient differs.

# %%
mlp_correct = make_mlp(softplus_correct)
mlp_buggy = make_mlp(softplus_buggy)
report_correct = gradient_check(
    lambda: mlp_loss(mlp_correct), mlp_correct.trainable_variables
)
report_buggy = gradient_check(
    lambda: mlp_loss(mlp_buggy), mlp_buggy.trainable_variables
)
print(f"{'variable':16s} {'correct':>9s} {'buggy':>9s}")
for name in report_correct:
    print(f"{name:16s} {report_correct[name]:9.1e} {report_buggy[name]:9.1e}")

# %% [markdown]
# The check does more than raise an alarm: it says *where*. The output layer's kernel and bias pass in
# both networks, because their gradients use the activation's *value*, which is right. Only the hidden
# layer's parameters, whose gradients flow back through the activation's derivative, fail.

# %%
hidden = ["hidden/kernel", "hidden/bias"]
output = ["output/kernel", "output/bias"]
assert max(report_correct.values()) < 1e-7
assert min(report_buggy[name] for name in hidden) > 1e-2
assert max(report_buggy[name] for name in output) < 1e-7
print("bug caught in:", [name for name, err in report_buggy.items() if err > 1e-2])

# %% [markdown]
# ### TensorFlow's own checker
#
# TensorFlow ships the same idea as `tf.test.compute_gradient(f, [x], delta)`: it returns the
# "theoretical" Jacobian (from the registered gradients) and the numerical one (central differences with
# step `delta`, default $1/1024$). On the buggy softplus the two Jacobians disagree; on the correct one
# they agree.

# %%
points = tf.constant([-2.0, -0.5, 0.0, 0.5, 2.0], tf.float64)
for name, fn in [("correct", softplus_correct), ("buggy", softplus_buggy)]:
    theoretical, numerical = tf.test.compute_gradient(fn, [points])
    print(
        f"{name:8s} max |theoretical - numerical| = "
        f"{np.abs(theoretical[0] - numerical[0]).max():.1e}"
    )
theoretical_buggy, numerical_buggy = tf.test.compute_gradient(softplus_buggy, [points])
theoretical_ok, numerical_ok = tf.test.compute_gradient(softplus_correct, [points])
assert np.abs(theoretical_ok[0] - numerical_ok[0]).max() < 1e-6
assert np.abs(theoretical_buggy[0] - numerical_buggy[0]).max() > 1e-1

# %% [markdown]
# Its numerical Jacobian is exactly our formula {eq}`eq-debugging-central`. For an elementwise function
# the Jacobian is diagonal; our `numerical_gradient` with the same step $h = 1/1024$ on
# $\sum_j \operatorname{softplus}(x_j)$ gives that diagonal.

# %%
points_var = tf.Variable(points)
(ours,) = numerical_gradient(
    lambda: tf.reduce_sum(tf.nn.softplus(points_var)), [points_var], h=1 / 1024
)
difference = np.abs(ours - np.diag(numerical_ok[0])).max()
print("ours:      ", ours)
print("TensorFlow:", np.diag(numerical_ok[0]))
print(f"max difference {difference:.1e}")
assert difference < 1e-12
assert (
    np.abs(np.triu(numerical_ok[0], 1)).max() == 0.0
)  # off-diagonal entries are exactly zero


# %% [markdown]
# `tf.test.compute_gradient` leaves the verdict to you. TensorFlow's own tests pass the two Jacobians
# to `assertAllClose`, an elementwise test with `rtol=1e-6, atol=1e-6` by default, and
# `tf.test.compute_gradient`'s module also offers `max_error`, the largest *absolute* difference. For
# a network, whose gradients range over many orders of magnitude, the per-parameter relative error
# {eq}`eq-debugging-relerr` of our `gradient_check` is the more telling number.
#
# ## NaN and Inf
#
# A single non-finite number anywhere in the forward or backward pass spreads: $\infty - \infty$,
# $0 \cdot \infty$ and $0/0$ are NaN, and NaN plus anything is NaN. A NaN in one example's loss makes
# the batch's mean loss NaN, hence its gradient, hence every weight after one update. We reproduce the three classic sources in float32.
#
# ### Log of 0
#
# The source documents compute the cross-entropy of MNIST by hand, as
# `-tf.reduce_sum(y * tf.log(y_pred), reduction_indices=[1])` with `y_pred` a softmax: the sum of
# $-y \log p$ with $p = \operatorname{softmax}(z)$. When one logit is much larger than another, $p$ of
# the small one underflows to exactly 0 in float32 (below about $10^{-45}$). Two things then go wrong.
# If the *true* class underflows, the loss is $-\log 0 = \infty$. If a *wrong* class underflows,
# the product $0 \cdot \log 0 = 0 \cdot (-\infty)$ is NaN, even though the prediction is perfect.

# %%
def naive_cross_entropy(labels_one_hot, logits):
    probabilities = tf.nn.softmax(logits)
    return -tf.reduce_sum(labels_one_hot * tf.math.log(probabilities), axis=-1)


logits = tf.Variable([[120.0, 0.0]])  # softmax: [1, e^-120], and e^-120 underflows to 0
true_class_underflows = tf.constant([[0.0, 1.0]])
perfect_prediction = tf.constant([[1.0, 0.0]])
naive_results = {}
for name, labels in [
    ("true class underflows", true_class_underflows),
    ("perfect prediction", perfect_prediction),
]:
    with tf.GradientTape() as tape:
        loss = naive_cross_entropy(labels, logits)
    grad = tape.gradient(loss, logits)
    print(f"{name:22s} loss {loss.numpy()}, gradient {grad.numpy()}")
    naive_results[name] = (loss.numpy(), grad.numpy())

# %% [markdown]
# The loss is $\infty$ in the first case and NaN in the second, and both gradients are NaN. The stable
# rewrite never forms $p$: with $\log p_k = z_k - \log\sum_j e^{z_j}$ and the log-sum-exp computed after
# subtracting $\max_j z_j$, nothing underflows. `tf.nn.softmax_cross_entropy_with_logits` does exactly
# this.

# %%
assert np.isinf(naive_results["true class underflows"][0]).all()
assert np.isnan(naive_results["perfect prediction"][0]).all()
assert all(np.isnan(grad).all() for _, grad in naive_results.values())
for name, labels in [
    ("true class underflows", true_class_underflows),
    ("perfect prediction", perfect_prediction),
]:
    with tf.GradientTape() as tape:
        loss = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
    grad = tape.gradient(loss, logits)
    print(f"{name:22s} loss {loss.numpy()}, gradient {grad.numpy()}")
    assert np.isfinite(loss.numpy()).all() and np.isfinite(grad.numpy()).all()
stable_loss = tf.nn.softmax_cross_entropy_with_logits(true_class_underflows, logits)
assert float(stable_loss[0]) == 120.0  # log(e^120 + 1) - 0 is 120 to float32 precision

# %% [markdown]
# ### Exp overflow
#
# The other end of the float32 range is $e^{88.7} \approx 3.4 \times 10^{38}$. A softmax written as
# $e^{z}/\sum e^{z}$ overflows for a logit of 100 and returns $\infty/\infty = $ NaN; so does
# $\log(1 + e^x)$, the softplus, which returns $\infty$ for $x = 100$ instead of 100.

# %%
big_logits = tf.constant([100.0, 0.0])
naive_softmax = tf.exp(big_logits) / tf.reduce_sum(tf.exp(big_logits))
shifted = big_logits - tf.reduce_max(big_logits)
stable_softmax = tf.exp(shifted) / tf.reduce_sum(tf.exp(shifted))
naive_softplus = tf.math.log(1 + tf.exp(tf.constant(100.0)))
print(
    "naive softmax: ",
    naive_softmax.numpy(),
    "| shifted:",
    stable_softmax.numpy(),
    "| tf.nn.softmax:",
    tf.nn.softmax(big_logits).numpy(),
)
print(
    "naive softplus:",
    naive_softplus.numpy(),
    "| tf.nn.softplus:",
    tf.nn.softplus(100.0).numpy(),
)
assert np.isnan(naive_softmax.numpy()).any() and np.isinf(naive_softplus.numpy())
assert np.array_equal(stable_softmax.numpy(), tf.nn.softmax(big_logits).numpy())
assert float(tf.nn.softplus(100.0)) == 100.0

# %% [markdown]
# Subtracting the maximum changes nothing mathematically (the factor $e^{-\max z}$ cancels) and keeps
# every exponent $\le 0$; the shifted softmax is bit-for-bit what `tf.nn.softmax` returns here.
#
# ### Division by a vanishing norm
#
# Normalizing a vector, $x / \lVert x\rVert$, is $0/0$ at $x = 0$. The forward pass is easily guarded
# with `tf.where`. The backward pass is not: `tf.where` computes the gradient of *both* branches and
# multiplies the unselected one by 0, and the gradient of $\lVert x\rVert$ at 0 is $x/\lVert x\rVert =
# 0/0$. So $0 \cdot \text{NaN} = \text{NaN}$ leaks through the guard.

# %%
zero = tf.Variable([0.0, 0.0])


def gradient_at_zero(fn):
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(fn(zero))
    return out.numpy(), tape.gradient(out, zero).numpy()


def normalize_naive(x):
    return x / tf.norm(x)


def normalize_one_where(x):
    norm = tf.norm(x)
    return tf.where(norm > 0, x / norm, tf.zeros_like(x))


def normalize_two_wheres(x):
    squared = tf.reduce_sum(x * x)
    safe_squared = tf.where(
        squared > 0, squared, tf.ones_like(squared)
    )  # never sqrt(0) below
    norm = tf.where(squared > 0, tf.sqrt(safe_squared), tf.zeros_like(squared))
    return tf.where(
        squared > 0,
        x / tf.where(squared > 0, norm, tf.ones_like(norm)),
        tf.zeros_like(x),
    )


results = {
    fn.__name__: gradient_at_zero(fn)
    for fn in [
        normalize_naive,
        normalize_one_where,
        normalize_two_wheres,
        tf.math.l2_normalize,
    ]
}
for name, (value, grad) in results.items():
    print(f"{name:22s} value {value:6}  gradient {grad}")

# %% [markdown]
# The naive version is NaN forward and backward; one `tf.where` fixes the value but not the gradient;
# two `tf.where`s (the second one feeds the dangerous operation a harmless input) fix both.
# `tf.math.l2_normalize` takes a third way: it divides by $\sqrt{\max(\lVert x\rVert^2, \epsilon)}$ with
# $\epsilon = 10^{-12}$, which is finite but gives a gradient of $1/\sqrt{\epsilon} = 10^6$ at zero: a
# large, legitimate-looking number that an optimizer will happily use.

# %%
assert (
    np.isnan(results["normalize_naive"][0])
    and np.isnan(results["normalize_naive"][1]).all()
)
assert (
    results["normalize_one_where"][0] == 0
    and np.isnan(results["normalize_one_where"][1]).all()
)
assert np.array_equal(results["normalize_two_wheres"][1], [0.0, 0.0])
l2_grad = results["l2_normalize"][1]
print("l2_normalize gradient / 1e6 - 1:", l2_grad / 1e6 - 1)
assert np.allclose(l2_grad, 1e6, rtol=1e-6)

# %% [markdown]
# ### Finding the op: `check_numerics`
#
# Printing losses tells you *that* something became NaN, not *where*. `tf.debugging.check_numerics(t,
# message)` passes `t` through unchanged and raises an `InvalidArgumentError` carrying your message if
# `t` holds a NaN or an Inf. Placed on the log-probabilities of the naive cross-entropy:

# %% tags=["raises-exception"]
log_probabilities = tf.math.log(tf.nn.softmax(logits))
with gdbook.expect_error(tf.errors.InvalidArgumentError) as checked:
    tf.debugging.check_numerics(
        log_probabilities, "log-probabilities of the naive cross-entropy"
    )

# %% [markdown]
# The error repeats our message and says which kind of non-finite value it found.

# %%
print(checked.message)
assert "log-probabilities of the naive cross-entropy" in checked.message
assert "Inf values" in checked.message

# %% [markdown]
# Sprinkling `check_numerics` by hand means guessing where to look. `tf.debugging.enable_check_numerics()`
# instruments *every* op, eager or inside a `tf.function`, and stops at the first one whose output is
# non-finite, naming it and showing the Python line that created it. It is global state and slows every
# op down, so we turn it on, provoke the error inside a `tf.function`, and turn it off again in the next
# cell.

# %% tags=["raises-exception"]


@tf.function
def naive_loss(labels, logits):
    return tf.reduce_mean(naive_cross_entropy(labels, logits))


tf.debugging.enable_check_numerics()
with gdbook.expect_error(tf.errors.InvalidArgumentError) as instrumented:
    naive_loss(perfect_prediction, logits)

# %% [markdown]
# Before anything else we switch the instrumentation off (in the book the previous cell stopped at the
# error, so this is the first place where that can happen), then read the report. It names the graph op
# `Log`, says what it found (a $-\infty$), shows the op's input, and lists the user functions in the
# stack that created the op: `naive_loss` called `naive_cross_entropy`, which called `tf.math.log`.

# %%
tf.debugging.disable_check_numerics()
report = instrumented.message
print(report[report.index("!!! Detected") : report.index("Stack trace")].strip())
lines = report.splitlines()
user_functions = [
    lines[i - 1].split()[-1]
    for i, line in enumerate(lines)
    if line.strip().startswith("->")
]
print("user code in the creation stack:", user_functions)
assert 'graph op "Log"' in report and "-Inf values" in report
assert user_functions[-2:] == ["naive_loss", "naive_cross_entropy"]

# %% [markdown]
# Two traps remain. First, switching the checks off does not touch functions that were *traced* while
# they were on: `naive_loss` keeps its `CheckNumericsV2` ops and still raises. Second, a fresh trace of
# the same Python function does not return NaN at all, but $-0$, the right answer: when TensorFlow
# optimizes a graph, its arithmetic optimizer (part of Grappler) rewrites `log(softmax(z))` into the
# stable `log_softmax(z)`. The checks inserted between the two ops had prevented that rewrite. Turning
# the arithmetic optimizer off for one trace brings the NaN back; we turn it on again at once.

# %%
with gdbook.expect_error(
    tf.errors.InvalidArgumentError, reraise=False
) as still_instrumented:
    naive_loss(perfect_prediction, logits)
eager_value = float(naive_loss.python_function(perfect_prediction, logits))
graph_value = float(tf.function(naive_loss.python_function)(perfect_prediction, logits))
tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
unoptimized_graph_value = float(
    tf.function(naive_loss.python_function)(perfect_prediction, logits)
)
tf.config.optimizer.set_experimental_options(
    {"arithmetic_optimization": True}
)  # the default
print("old trace raises:", still_instrumented.error is not None)
print(
    f"eager: {eager_value} | fresh tf.function: {graph_value} | "
    f"without the arithmetic optimizer: {unoptimized_graph_value}"
)
assert "CheckNumericsV2" in still_instrumented.message
assert (
    np.isnan(eager_value) and graph_value == 0.0 and np.isnan(unoptimized_graph_value)
)

# %% [markdown]
# Do not rely on the rewrite: it applies only in graphs, only to this exact pattern, and not to the
# gradient of an eager step. Write the stable form yourself.
#
# ## Exploding and vanishing gradients
#
# ### Why depth multiplies
#
# In a chain of $L$ dense layers $h_\ell = \phi(W_\ell h_{\ell-1} + b_\ell)$, back-propagation
# {cite:p}`rumelhart1986` carries the error signal $\delta_\ell = \partial \mathcal L / \partial
# (W_\ell h_{\ell-1} + b_\ell)$ down through one Jacobian per layer:
#
# $$
# \delta_\ell = \phi'(a_\ell) \odot \left(W_{\ell+1}^\top \delta_{\ell+1}\right),
# \qquad
# \frac{\partial \mathcal L}{\partial W_\ell} = \delta_\ell\, h_{\ell-1}^\top .
# $$ (eq-debugging-backprop)
#
# Each step multiplies by $W^\top$ and by $\phi'$. If that factor is below 1 on average the signal
# shrinks geometrically with depth (vanishing); above 1 it grows geometrically (exploding)
# {cite:p}`glorot2010,pascanu2013`. The sigmoid has $\sigma' \le 1/4$, so with weights of the usual
# Glorot scale every layer shrinks the signal. ReLU with He initialization {cite:p}`he2015` (variance
# $2/\text{fan-in}$) is designed to keep it constant. tanh with weights four times the Glorot-like scale
# is in the "chaotic" regime where the signal grows.
#
# We build three 16-layer networks of width 32 that differ only in activation and initial weight scale,
# and compute the gradient of a mean-squared error on the same batch.

# %%
DEPTH, WIDTH = 16, 32
rng = np.random.default_rng(1)
x_chain = rng.uniform(-2, 2, size=(128, 1)).astype(np.float32)
y_chain = np.sin(1.5 * x_chain).astype(np.float32)


def make_chain(activation, gain, seed=1):
    """DEPTH hidden layers; weights ~ truncated normal with variance gain^2 / fan_in."""
    init = keras.initializers.VarianceScaling(
        scale=gain**2, mode="fan_in", distribution="truncated_normal", seed=seed
    )
    layers = [
        keras.layers.Dense(
            WIDTH,
            activation=activation,
            kernel_initializer=init,
            name=f"layer{i + 1:02d}",
        )
        for i in range(DEPTH)
    ]
    output = keras.layers.Dense(1, kernel_initializer=init, name="output")
    return keras.Sequential([keras.Input((1,)), *layers, output])


def mse(model):
    return tf.reduce_mean((model(x_chain) - y_chain) ** 2)


def kernel_gradient_norms(model):
    """Norm of the loss gradient w.r.t. each hidden layer's kernel, first layer
    first."""
    with tf.GradientTape() as tape:
        loss = mse(model)
    kernels = [layer.kernel for layer in model.layers[:DEPTH]]
    return np.array([float(tf.norm(g)) for g in tape.gradient(loss, kernels)])


chains = {
    "sigmoid, Glorot-like scale (gain 1)": ("sigmoid", 1.0),
    "ReLU, He scale (gain √2)": ("relu", np.sqrt(2.0)),
    "tanh, gain 4": ("tanh", 4.0),
}
chain_norms = {
    label: kernel_gradient_norms(make_chain(*spec)) for label, spec in chains.items()
}
for label, norms in chain_norms.items():
    print(
        f"{label:38s} layer 1: {norms[0]:.2e}   layer {DEPTH}: {norms[-1]:.2e}   "
        f"ratio {norms[0] / norms[-1]:.1e}"
    )

# %% [markdown]
# {numref}`fig-debugging-layer-norms` plots all sixteen norms. The sigmoid chain loses about a factor
# of 4 per layer, so the first layer's gradient is many orders of magnitude smaller than the last one's:
# those weights will barely move. The tanh chain does the opposite. The He-initialized ReLU chain stays
# within one order of magnitude from end to end.

# %%
sigmoid_norms, relu_norms, tanh_norms = chain_norms.values()
assert sigmoid_norms[0] / sigmoid_norms[-1] < 1e-6  # vanishing
assert tanh_norms[0] / tanh_norms[-1] > 1e2  # exploding
assert relu_norms.max() / relu_norms.min() < 10  # preserved
sigmoid_factor = (sigmoid_norms[-1] / sigmoid_norms[0]) ** (1 / (DEPTH - 1))
print(f"sigmoid: average shrink factor per layer {sigmoid_factor:.2f}")
print(
    "ReLU/He: largest / smallest layer norm = "
    f"{relu_norms.max() / relu_norms.min():.1f}"
)
assert 3 < sigmoid_factor < 5.5

# %% mystnb={"figure": {"caption": "Norm of the gradient with respect to each hidden layer's kernel in three 16-layer networks, at initialization and on the same batch. Depth multiplies one factor per layer, so on a log scale the sigmoid chain falls and the tanh chain with large weights rises roughly along straight lines; ReLU with He initialization stays level.", "name": "fig-debugging-layer-norms"}}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
layer_numbers = np.arange(1, DEPTH + 1)
for (label, norms), marker in zip(chain_norms.items(), "os^", strict=True):
    ax.semilogy(layer_numbers, norms, marker + "-", ms=4, label=label)
ax.set_xlabel("hidden layer (1 = next to the input)")
ax.set_ylabel(r"$\|\partial \mathcal{L} / \partial W_\ell\|$")
ax.set_xticks(layer_numbers)
ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# ### Three ways to clip
#
# Clipping does not fix the cause of an exploding gradient, but it bounds the step that the optimizer
# takes from it. For gradients $g_1, \dots, g_k$ (one per variable) and a threshold $c$:
#
# $$
# \begin{aligned}
# \text{by value:}\quad & g_i \leftarrow \min(\max(g_i, -c), c) \quad\text{(each entry)},\\
# \text{by norm:}\quad & g_i \leftarrow g_i \cdot \frac{c}{\max(\lVert g_i\rVert, c)} \quad\text{(each variable)},\\
# \text{by global norm:}\quad & g_i \leftarrow g_i \cdot \frac{c}{\max(G, c)},
# \qquad G = \sqrt{\textstyle\sum_j \lVert g_j\rVert^2}.
# \end{aligned}
# $$ (eq-debugging-clipping)
#
# Clipping by value changes the direction of the gradient (large entries are cut, small ones kept).
# Clipping by norm keeps each variable's direction but changes the relative sizes of different
# variables' gradients. Only clipping by global norm {cite:p}`pascanu2013` rescales the whole gradient,
# keeping the descent direction. We take the gradients of an exploding network (ReLU with 1.3 times the
# He scale, so each layer multiplies the forward signal by about $1.3^2$) and apply the three rules by
# hand and with TensorFlow.

# %%
EXPLODING_GAIN = 1.3 * np.sqrt(2.0)
exploding_chain = make_chain("relu", EXPLODING_GAIN)
with tf.GradientTape() as tape:
    exploding_loss = mse(exploding_chain)
exploding_grads = tape.gradient(exploding_loss, exploding_chain.trainable_variables)
CLIP = 1.0

by_value_hand = [np.clip(g.numpy(), -CLIP, CLIP) for g in exploding_grads]
by_norm_hand = [
    g.numpy() * CLIP / max(np.linalg.norm(g.numpy()), CLIP) for g in exploding_grads
]
global_norm_hand = np.sqrt(
    sum(np.sum(g.numpy().astype(np.float64) ** 2) for g in exploding_grads)
)
by_global_hand = [
    g.numpy() * CLIP / max(global_norm_hand, CLIP) for g in exploding_grads
]

by_value_tf = [tf.clip_by_value(g, -CLIP, CLIP) for g in exploding_grads]
by_norm_tf = [tf.clip_by_norm(g, CLIP) for g in exploding_grads]
by_global_tf, global_norm_tf = tf.clip_by_global_norm(exploding_grads, CLIP)


def max_relative_difference(hand, library):
    return max(
        np.abs(h - t.numpy()).max() / np.abs(h).max()
        for h, t in zip(hand, library, strict=True)
    )


print(
    f"loss {float(exploding_loss):.1f}, global gradient norm: hand "
    f"{global_norm_hand:.6g}, "
    f"tf {float(global_norm_tf):.6g}"
)
for name, hand, library in [
    ("by value", by_value_hand, by_value_tf),
    ("by norm", by_norm_hand, by_norm_tf),
    ("by global norm", by_global_hand, by_global_tf),
]:
    print(
        f"{name:15s} max relative difference hand vs tf: "
        f"{max_relative_difference(hand, library):.1e}"
    )

# %% [markdown]
# The three rules agree with TensorFlow to float32 rounding (the hand versions compute norms in float64
# or in a different order, so the last bit can differ). After clipping, every variable's norm is at most
# $c$ with `clip_by_norm`, and the global norm equals $c$ (up to float32 rounding) with
# `clip_by_global_norm`.

# %%
assert abs(global_norm_hand - float(global_norm_tf)) / global_norm_hand < 1e-6
assert max_relative_difference(by_value_hand, by_value_tf) == 0.0
assert max_relative_difference(by_norm_hand, by_norm_tf) < 1e-6
assert max_relative_difference(by_global_hand, by_global_tf) < 1e-6
norms_after = [float(tf.norm(g)) for g in by_norm_tf]
global_after = float(tf.linalg.global_norm(by_global_tf))
print(f"largest per-variable norm after clip_by_norm: {max(norms_after):.7f}")
print(f"global norm after clip_by_global_norm: {global_after:.7f}")
assert max(norms_after) <= CLIP * (1 + 1e-6)
assert abs(global_after - CLIP) < 1e-6


# %% [markdown]
# Which rules keep the direction? We flatten all variables' gradients into one vector and compute
# the cosine of the angle between the original and each clipped gradient. Only the global rule gives
# exactly 1: clipping by value cuts the large entries, and clipping by norm shrinks the variables with
# large gradients more than the others.

# %%
def flatten(grads):
    return np.concatenate([np.ravel(g) for g in grads]).astype(np.float64)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


original = flatten(exploding_grads)
cosines = {
    name: cosine(original, flatten(grads))
    for name, grads in [
        ("by value", by_value_hand),
        ("by norm", by_norm_hand),
        ("by global norm", by_global_hand),
    ]
}
for name, value in cosines.items():
    print(f"cosine(original, clipped {name}) = {value:.6f}")
assert abs(cosines["by global norm"] - 1) < 1e-6
assert cosines["by value"] < 0.99 and cosines["by norm"] < 0.99

# %% [markdown]
# ### Keras: `clipvalue`, `clipnorm`, `global_clipnorm`
#
# Keras optimizers take the same three rules as constructor arguments (only one at a time). Reading
# `keras/src/optimizers/base_optimizer.py`: `clipvalue` is `ops.clip` per entry, `clipnorm` clips *each
# variable* by its own norm (like `tf.clip_by_norm`, not like the global rule, despite the name), and
# `global_clipnorm` is the global rule, computed as $g \cdot c\,\min(1/G, 1/c)$. We check one SGD step of
# each against the hand-clipped update $\theta - \alpha\, \tilde g$.

# %%
LEARNING_RATE = 0.01


def one_keras_step(**clip):
    model = make_chain(
        "relu", EXPLODING_GAIN
    )  # same seed: same initial weights as exploding_chain
    before = [v.numpy() for v in model.trainable_variables]
    keras.optimizers.SGD(LEARNING_RATE, **clip).apply_gradients(
        zip(exploding_grads, model.trainable_variables, strict=True)
    )
    return before, [v.numpy() for v in model.trainable_variables]


for option, hand_clipped in [
    ("clipvalue", by_value_hand),
    ("clipnorm", by_norm_hand),
    ("global_clipnorm", by_global_hand),
]:
    before, after = one_keras_step(**{option: CLIP})
    worst = max(
        np.abs(a - (b - LEARNING_RATE * g)).max()
        for a, b, g in zip(after, before, hand_clipped, strict=True)
    )
    print(f"{option:16s} max |Keras step - hand step| = {worst:.1e}")
    assert worst < 1e-7

# %% [markdown]
# ### Watching the rules on two parameters
#
# The difference between the rules is easiest to see with two scalar parameters. On
# $f(x, y) = \tfrac12 x^2 + \tfrac12 y^2 + 0.1\,y^4$ the quartic term makes the gradient grow like
# $y^3$ far from the minimum, a small-scale "cliff" {cite:p}`pascanu2013`. From $(-4, 4)$ plain gradient
# descent with learning rate 0.3 overshoots in $y$ and each overshoot lands further out: it explodes.
# We run Keras' SGD four times, with each clipping option at $c = 2$. Because $x$ and $y$ are separate
# (scalar) variables, clipping *each variable* by its norm is the same as clipping each entry by value,
# so `clipnorm` and `clipvalue` take the very same path.

# %%
from gdbook.plotting import Panel, animate_paths, to_html


def cliff_numpy(x, y):
    return 0.5 * x**2 + 0.5 * y**2 + 0.1 * y**4


CLIFF_START, CLIFF_RATE, CLIFF_STEPS, CLIFF_CLIP = (-4.0, 4.0), 0.3, 25, 2.0


def cliff_path(**clip):
    """Points visited by Keras SGD on the cliff function, start included."""
    x, y = tf.Variable(CLIFF_START[0]), tf.Variable(CLIFF_START[1])
    optimizer = keras.optimizers.SGD(CLIFF_RATE, **clip)
    points = [CLIFF_START]
    for _ in range(CLIFF_STEPS):
        with tf.GradientTape() as tape:
            loss = 0.5 * x**2 + 0.5 * y**2 + 0.1 * y**4
        optimizer.apply_gradients(zip(tape.gradient(loss, [x, y]), [x, y], strict=True))
        points.append((float(x), float(y)))
    return np.array(points)


cliff_paths = {
    "no clipping": cliff_path(),
    "clipvalue=2": cliff_path(clipvalue=CLIFF_CLIP),
    "clipnorm=2": cliff_path(clipnorm=CLIFF_CLIP),
    "global_clipnorm=2": cliff_path(global_clipnorm=CLIFF_CLIP),
}
for name, points in cliff_paths.items():
    print(
        f"{name:18s} steps 1-3: {np.round(points[1:4], 3).tolist()}  final: "
        f"{points[-1]}"
    )


# %% [markdown]
# The checks: without clipping $y$ passes $\lvert y\rvert > 100$ by step 3 and ends non-finite;
# `clipvalue` and `clipnorm` are identical; the first `global_clipnorm` step points exactly down the
# gradient while the first `clipvalue` step is bent towards the diagonal; and every clipped run ends
# within 0.01 of the minimum.

# %%
def first_step_cosine(points):
    """Cosine between the first step and the negative gradient at the start."""
    x, y = CLIFF_START
    downhill = -np.array([x, y + 0.4 * y**3])
    step = points[1] - points[0]
    return float(step @ downhill / (np.linalg.norm(step) * np.linalg.norm(downhill)))


exploded = cliff_paths["no clipping"]
print(f"no clipping: |y| at step 3 = {abs(exploded[3, 1]):.1f}")
for name in ["clipvalue=2", "global_clipnorm=2"]:
    print(
        f"{name:18s} cosine(first step, -gradient) = "
        f"{first_step_cosine(cliff_paths[name]):.6f}"
    )
assert abs(exploded[3, 1]) > 100 and not np.isfinite(exploded[-1]).all()
assert np.array_equal(cliff_paths["clipvalue=2"], cliff_paths["clipnorm=2"])
assert first_step_cosine(cliff_paths["global_clipnorm=2"]) > 1 - 1e-6
assert first_step_cosine(cliff_paths["clipvalue=2"]) < 0.9
for name in ["clipvalue=2", "clipnorm=2", "global_clipnorm=2"]:
    assert np.linalg.norm(cliff_paths[name][-1]) < 0.01

# %% [markdown]
# The animation plays the first 12 steps of each path (the unclipped run leaves the window at its second
# step; the `clipnorm` path lies under the `clipvalue` one). The global rule walks straight down the
# steep $y$ direction at a bounded speed; the per-entry rules move diagonally, as if the loss were
# equally steep in $x$ and $y$.

# %%
ANIMATED_STEPS = 12  # the interesting part; afterwards the clipped paths just settle
visible = {name: points[: ANIMATED_STEPS + 1] for name, points in cliff_paths.items()}
visible["no clipping"] = visible["no clipping"][
    np.abs(visible["no clipping"]).max(axis=1) < 50
]
cliff_panel = Panel(
    cliff_numpy,
    xlim=(-5, 5),
    ylim=(-5, 5),
    paths=visible,
    levels=15,
    log_levels=True,
    title="SGD, learning rate 0.3, on $x^2/2 + y^2/2 + y^4/10$",
)
to_html(animate_paths([cliff_panel], interval=250, figsize=(4.8, 4.4)))

# %% [markdown]
# ### The effect on training
#
# Finally we train. The exploding ReLU chain, plain SGD with learning rate 0.01, 100 full-batch steps:
# without clipping the first update is so large that the loss overflows to NaN within a few steps. With
# any of the three clipping rules training goes on. For comparison we also train the well-initialized He
# chain without clipping.

# %%
TRAIN_STEPS = 100


def train_chain(gain, **clip):
    """Full-batch SGD; returns the losses and the (unclipped) global gradient norms per
    step."""
    model = make_chain("relu", gain)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, **clip)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = mse(model)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, tf.linalg.global_norm(grads)

    history = np.array([[float(v) for v in step()] for _ in range(TRAIN_STEPS)])
    return history[:, 0], history[:, 1]


runs = {
    "He init, no clipping": train_chain(np.sqrt(2.0)),
    "exploding, no clipping": train_chain(EXPLODING_GAIN),
    "exploding, clipvalue=1": train_chain(EXPLODING_GAIN, clipvalue=CLIP),
    "exploding, clipnorm=1": train_chain(EXPLODING_GAIN, clipnorm=CLIP),
    "exploding, global_clipnorm=1": train_chain(EXPLODING_GAIN, global_clipnorm=CLIP),
}
for name, (losses, _) in runs.items():
    first_bad = np.flatnonzero(~np.isfinite(losses))
    print(
        f"{name:30s} loss {losses[0]:8.3g} -> {losses[-1]:8.3g}   "
        f"first non-finite step: {first_bad[0] if first_bad.size else '-'}"
    )

# %% [markdown]
# {numref}`fig-debugging-clip-training` shows the curves. The unclipped exploding run leaves the plot at once and
# becomes non-finite. All clipped runs stay finite and bring the loss down by more than a factor of 10 from its
# initial value. None of them, however, reaches the loss of the well-initialized network in the same number
# of steps: clipping is a guard rail, not a cure. The cure is the initialization of
# {numref}`fig-debugging-layer-norms`.

# %%
initial_exploding_loss = runs["exploding, no clipping"][0][0]
first_non_finite = np.flatnonzero(~np.isfinite(runs["exploding, no clipping"][0]))[0]
assert first_non_finite <= 5
for name in [
    "exploding, clipvalue=1",
    "exploding, clipnorm=1",
    "exploding, global_clipnorm=1",
]:
    losses = runs[name][0]
    assert np.isfinite(losses).all()
    assert losses[-1] < initial_exploding_loss / 10
    assert losses[-10:].mean() > runs["He init, no clipping"][0][-10:].mean()
print(
    f"initial loss of the exploding chain {initial_exploding_loss:.1f}; "
    f"He chain after {TRAIN_STEPS} steps {runs['He init, no clipping'][0][-1]:.4f}"
)

# %% mystnb={"figure": {"caption": "Training loss (left) and global gradient norm before clipping (right) of a 16-layer ReLU network, full-batch SGD with learning rate 0.01. Without clipping the exploding network's loss shoots off the top of the plot and becomes non-finite; clipping by value, by norm or by global norm keeps training alive, but the well-initialized network (He) does far better than any of them.", "name": "fig-debugging-clip-training"}}
fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, (losses, grad_norms) in runs.items():
    style = "k--" if name.startswith("He") else "-"
    ax_loss.semilogy(np.where(np.isfinite(losses), losses, np.nan), style, label=name)
    ax_norm.semilogy(
        np.where(np.isfinite(grad_norms), grad_norms, np.nan), style, label=name
    )
blow_up = runs["exploding, no clipping"][0]
last_finite = np.flatnonzero(np.isfinite(blow_up))[-1]
ax_loss.annotate(
    f"loss {blow_up[last_finite]:.0e} at step {last_finite},\nthen inf/NaN",
    xy=(last_finite, 1e4),
    xytext=(12, 2e3),
    fontsize="small",
    arrowprops={"arrowstyle": "->", "color": "C0"},
)
ax_loss.set_ylim(3e-2, 1e4)
ax_loss.set(xlabel="step", ylabel="training loss (MSE)")
ax_norm.set(xlabel="step", ylabel="global gradient norm $G$")
ax_loss.legend(fontsize="x-small")
plt.show()

# %% [markdown]
# ## Logging gradients
#
# The source's linear-regression program has a commented-out block meant to log its gradient to
# TensorBoard as a scalar and as a histogram. We first run that idea in TF1, as written, then fixed, then
# the same log in TF2, and finally log a whole training run and plot it from the event files.
#
# The data are the source's: 32 points of $y = 3x + 2$ with $x$ drawn from the integers $-10 \dots 99$,
# noise of standard deviation 0.1 on both, and a model $wx + b$ starting at $w = 2$, $b = 1$, trained by
# SGD with learning rate 0.01 on one example per step for 20 steps. The source did not seed its random
# numbers, so its printed losses cannot be reproduced; ours are seeded.

# %%
data_rng = np.random.default_rng(2019)
x_pure = data_rng.integers(-10, 100, size=32)
x_line = (x_pure + data_rng.normal(size=32) / 10).astype(np.float32)
y_line = (3 * x_pure + 2 + data_rng.normal(size=32) / 10).astype(np.float32)
LINE_STEPS, LINE_RATE = 20, 0.01
print("first five x:", x_line[:5], "\nfirst five y:", y_line[:5])

# %% [markdown]
# ### TF1: the source's summaries, as written
#
# In TF1, `tf.summary.scalar(name, tensor)` adds a graph op that serializes a `Summary` protocol buffer;
# `merge_all` collects every such op, and a `FileWriter` appends the serialized results to an event
# file. The source passes the *result of `tf.gradients`* to `scalar`. That result is a Python list of one
# tensor, which TensorFlow converts to a tensor of shape `[1]`, and a scalar summary needs shape `[]`.
# Building the graph works; running it fails.

# %% tags=["raises-exception"]
source_graph = tf.Graph()
with source_graph.as_default():
    x_in = tf.compat.v1.placeholder(tf.float32, name="x_input")
    y_in = tf.compat.v1.placeholder(tf.float32, name="y_input")
    w = tf.compat.v1.Variable(2.0, name="weight")
    b = tf.compat.v1.Variable(1.0, name="biases")
    loss_op = tf.reduce_sum(tf.pow(y_in - (x_in * w + b), 2)) / (2 * 32)
    gradients_node = tf.compat.v1.gradients(loss_op, w)  # a list: [dloss/dw]
    tf.compat.v1.summary.scalar("norm_grads", gradients_node)
    tf.compat.v1.summary.histogram("norm_grads", gradients_node)
    merged = tf.compat.v1.summary.merge_all()
    init = tf.compat.v1.global_variables_initializer()

with (
    tf.compat.v1.Session(graph=source_graph) as sess,
    gdbook.expect_error(tf.errors.InvalidArgumentError) as as_written,
):
    sess.run(init)
    sess.run(merged, feed_dict={x_in: x_line[0], y_in: y_line[0]})

# %% [markdown]
# The message says exactly that: a scalar tag with a one-element value.

# %%
print(
    [line for line in as_written.message.splitlines() if "not the same shape" in line][
        0
    ]
)
assert "tags and values are not the same shape: [] != [1]" in as_written.message

# %% [markdown]
# ### TF1, fixed
#
# The fix is to log what the name promises: the *norm* of the gradient, a scalar, plus a histogram of the
# gradient entries. We log the gradients of both $w$ and $b$, their global norm and the loss, in a
# temporary folder that disappears at the end of the cell sequence.

# %%
log_root = tempfile.TemporaryDirectory(prefix="gdbook-ch8-")
LOGDIR = Path(log_root.name)

tf1_graph = tf.Graph()
with tf1_graph.as_default():
    x_in = tf.compat.v1.placeholder(tf.float32, name="x_input")
    y_in = tf.compat.v1.placeholder(tf.float32, name="y_input")
    w = tf.compat.v1.Variable(2.0, name="weight")
    b = tf.compat.v1.Variable(1.0, name="biases")
    loss_op = tf.reduce_sum(tf.pow(y_in - (x_in * w + b), 2)) / (2 * 32)
    grads = tf.compat.v1.gradients(loss_op, [w, b])
    grad_norm = tf.linalg.global_norm(grads)
    tf.compat.v1.summary.scalar("loss", loss_op)
    tf.compat.v1.summary.scalar("grad_norm", grad_norm)
    tf.compat.v1.summary.histogram("grads", tf.stack(grads))
    merged = tf.compat.v1.summary.merge_all()
    train_op = tf.compat.v1.train.GradientDescentOptimizer(LINE_RATE).minimize(loss_op)
    init = tf.compat.v1.global_variables_initializer()

tf1_printed = []
with tf.compat.v1.Session(graph=tf1_graph) as sess:
    writer = tf.compat.v1.summary.FileWriter(str(LOGDIR / "tf1"))
    sess.run(init)
    for step in range(LINE_STEPS):
        feed = {x_in: x_line[step], y_in: y_line[step]}
        summary, loss_value, norm_value, _ = sess.run(
            [merged, loss_op, grad_norm, train_op], feed
        )
        writer.add_summary(summary, step)
        tf1_printed.append((loss_value, norm_value))
    writer.close()
    tf1_w = sess.run(w)
tf1_printed = np.array(tf1_printed)
for step in [0, 1, 2, 18, 19]:
    print(
        f"step {step:2d}  loss {tf1_printed[step, 0]:12.6g}  gradient norm "
        f"{tf1_printed[step, 1]:12.6g}"
    )


# %% [markdown]
# The summaries, loss and norm fetched together with `train_op` are computed from the weights *before*
# this step's update, because the update needs the gradient, which needs the forward pass. This is what
# the source's print statement showed; the TF2 version below, where the order is explicit, agrees.
#
# ### Reading event files back
#
# An event file is a sequence of `Event` protocol buffers; `tf.compat.v1.train.summary_iterator` yields
# them. A TF1 scalar arrives as `simple_value`, a TF1 histogram as a `HistogramProto` (`histo`: min, max,
# count, sum and bucket limits), and a TF2 summary as a `tensor`. One small reader handles all three
# and groups records by run (subfolder) and tag.

# %%
def read_event_files(logdir):
    """{run: {tag: [(step, value), ...]}} for every event file under logdir."""
    records = {}
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        run = path.parent.relative_to(logdir).as_posix()
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    data = value.simple_value
                elif kind == "histo":
                    data = value.histo
                elif kind == "tensor":
                    data = tf.make_ndarray(value.tensor)
                else:
                    continue
                records.setdefault(run, {}).setdefault(value.tag, []).append(
                    (event.step, data)
                )
    return records


tf1_logged = read_event_files(LOGDIR)["tf1"]
print("tags:", sorted(tf1_logged))
tf1_norms = np.array([v for _, v in tf1_logged["grad_norm"]], dtype=np.float32)
first_histogram = tf1_logged["grads"][0][1]
print(
    f"step 0 histogram: count {first_histogram.num:.0f}, min "
    f"{first_histogram.min:.6g}, "
    f"max {first_histogram.max:.6g}"
)
assert [s for s, _ in tf1_logged["grad_norm"]] == list(range(LINE_STEPS))
assert np.array_equal(
    tf1_norms, tf1_printed[:, 1]
)  # bit for bit what sess.run returned
assert all(h.num == 2 for _, h in tf1_logged["grads"])


# %% [markdown]
# ### TF2: the same log
#
# In TF2 the summary functions write immediately to the *default writer*, set with
# `tf.summary.create_file_writer(folder).as_default()`, and every record needs a `step`.
# `tf.summary.scalar` and `tf.summary.histogram` are implemented in the `tensorboard` package, which
# `tensorflow-cpu` does not install; without it they raise `TBNotInstalledError`. Both are thin wrappers
# around the core op `tf.summary.write(tag, tensor, step, metadata)`: the metadata names the TensorBoard
# plugin that displays the record, and a histogram is a `[buckets, 3]` tensor of left edge, right edge and
# count (30 equal-width buckets from the minimum to the maximum). We call `tf.summary.write` directly,
# so these cells run with or without TensorBoard installed and TensorBoard shows the records as if the
# wrappers had written them. Both helpers are made of TensorFlow ops only, so they also work inside a
# `tf.function`.

# %%
def plugin_metadata(plugin_name):
    return tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name)
    )


SCALAR_METADATA, HISTOGRAM_METADATA = (
    plugin_metadata("scalars"),
    plugin_metadata("histograms"),
)


def log_scalar(tag, value, step):
    tf.summary.write(
        tag, tf.cast(value, tf.float32), step=step, metadata=SCALAR_METADATA
    )


def log_histogram(tag, values, step, buckets=30):
    """Equal-width buckets from min to max (the values must not all be equal)."""
    values = tf.reshape(tf.cast(values, tf.float64), [-1])
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    counts = tf.histogram_fixed_width(values, tf.stack([low, high]), nbins=buckets)
    edges = tf.linspace(low, high, buckets + 1)
    table = tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)
    tf.summary.write(tag, table, step=step, metadata=HISTOGRAM_METADATA)


# %% [markdown]
# The training loop is the source's, in TF2: variables, a `GradientTape`, a hand-applied update.

# %%
w2 = tf.Variable(2.0)
b2 = tf.Variable(1.0)
tf2_printed = []
with tf.summary.create_file_writer(str(LOGDIR / "tf2")).as_default():
    for step in range(LINE_STEPS):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.pow(y_line[step] - (x_line[step] * w2 + b2), 2)) / (
                2 * 32
            )
        grads = tape.gradient(loss, [w2, b2])
        grad_norm = tf.linalg.global_norm(grads)
        log_scalar("loss", loss, step)
        log_scalar("grad_norm", grad_norm, step)
        log_histogram("grads", tf.stack(grads), step)
        tf2_printed.append((float(loss), float(grad_norm)))
        w2.assign_sub(LINE_RATE * grads[0])
        b2.assign_sub(LINE_RATE * grads[1])
tf2_printed = np.array(tf2_printed, dtype=np.float32)
print(f"final w: TF1 {tf1_w:.7f}, TF2 {float(w2):.7f}")

# %% [markdown]
# Read back, the TF2 log agrees with the TF1 log step for step. Graph and eager mode may fuse or order
# float32 operations differently, so we compare to a relative $10^{-6}$ rather than bit for bit.

# %%
tf2_logged = read_event_files(LOGDIR)["tf2"]
tf2_norms = np.array([v for _, v in tf2_logged["grad_norm"]])
tf1_losses = np.array([v for _, v in tf1_logged["loss"]], dtype=np.float32)
tf2_losses = np.array([v for _, v in tf2_logged["loss"]])
relative_gap = np.max(np.abs(tf2_norms - tf1_norms) / tf1_norms)
loss_gap = np.max(np.abs(tf2_losses - tf1_losses) / tf1_losses)
print(
    f"max relative difference of logged gradient norms, TF2 vs TF1: {relative_gap:.1e}"
)
print(f"max relative difference of logged losses, TF2 vs TF1:         {loss_gap:.1e}")
assert loss_gap < 1e-6
assert np.array_equal(tf2_losses, tf2_printed[:, 0])
print("histogram tensor shape:", tf2_logged["grads"][0][1].shape)
assert relative_gap < 1e-6
assert abs(float(w2) - tf1_w) < 1e-6 * abs(tf1_w)
assert tf2_logged["grads"][0][1].shape == (30, 3)
assert all(table[:, 2].sum() == 2 for _, table in tf2_logged["grads"])


# %% [markdown]
# ### Logging a training run
#
# Logging earns its keep on a real run. We train the exploding ReLU chain once more with
# `global_clipnorm`, and log at every step the loss, the global norm, each layer's kernel-gradient norm
# and histograms of the first and last hidden layer's kernel gradients. The logging happens inside the
# compiled step (one Python call per step instead of twenty eager writes), with the step number passed
# as a tensor so that the function is traced once. We log the raw gradients, before the optimizer clips
# them: what the network produced, not what the optimizer used.

# %%
def train_and_log(logdir, gain, steps=TRAIN_STEPS, **clip):
    """Like train_chain, and logs gradient statistics at every step; returns the
    losses."""
    model = make_chain("relu", gain)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, **clip)
    kernels = [layer.kernel for layer in model.layers[:DEPTH]]
    kernel_index = [
        i
        for i, v in enumerate(model.trainable_variables)
        if any(v is k for k in kernels)
    ]
    writer = tf.summary.create_file_writer(str(logdir))

    @tf.function
    def step(step_number):
        with tf.GradientTape() as tape:
            loss = mse(model)
        grads = tape.gradient(loss, model.trainable_variables)
        with writer.as_default():
            log_scalar("loss", loss, step_number)
            log_scalar("grad_norm/global", tf.linalg.global_norm(grads), step_number)
            for layer_number, index in enumerate(kernel_index, start=1):
                log_scalar(
                    f"grad_norm/layer{layer_number:02d}",
                    tf.norm(grads[index]),
                    step_number,
                )
            log_histogram("grads/layer01", grads[kernel_index[0]], step_number)
            log_histogram(
                f"grads/layer{DEPTH:02d}", grads[kernel_index[-1]], step_number
            )
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    losses = np.array([float(step(tf.constant(i, tf.int64))) for i in range(steps)])
    writer.close()
    return losses


logged_run_losses = train_and_log(
    LOGDIR / "chain_global_clipnorm", EXPLODING_GAIN, global_clipnorm=CLIP
)
chain_log = read_event_files(LOGDIR)["chain_global_clipnorm"]
print(len(chain_log), "tags, e.g.", sorted(chain_log)[:4])

# %% [markdown]
# The logged losses must be the losses the step function returned, and also those of the training run of
# the previous section with the same settings: same seed, same data, same optimizer (the summary ops do
# not change the arithmetic).

# %%
logged_losses = np.array([v for _, v in chain_log["loss"]])
earlier_losses = runs["exploding, global_clipnorm=1"][0]
print(
    "max |logged - returned| loss: "
    f"{np.abs(logged_losses - logged_run_losses).max():.1e}"
)
print(
    "max |logged - earlier run| loss: "
    f"{np.abs(logged_losses - earlier_losses).max():.1e}"
)
assert len(logged_losses) == TRAIN_STEPS
assert np.array_equal(logged_losses, logged_run_losses.astype(np.float32))
assert (
    np.abs(logged_losses - earlier_losses).max() <= 1e-6 * np.abs(earlier_losses).max()
)

# %% [markdown]
# TensorBoard's *Distributions* dashboard does not draw histograms; it draws percentile bands over the
# steps. Percentiles can be recovered from the logged bucket table by interpolating its cumulative
# counts. We use TensorBoard's bands (the percentiles of $0, \pm 1, \pm 1.5, \pm 2$ standard
# deviations of a normal distribution, and the extremes) and check the function on the first table.

# %%
BAND_PERCENTILES = np.array([0, 6.68, 15.87, 30.85, 50, 69.15, 84.13, 93.32, 100])


def histogram_percentiles(table, percentiles=BAND_PERCENTILES):
    """Percentiles of the data behind a [buckets, 3] table, assuming uniform spread
    within a bucket."""
    left, right, counts = table.T
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
    edges = np.concatenate([left[:1], right])
    return np.interp(percentiles / 100, cumulative, edges)


last_layer_tables = [table for _, table in chain_log[f"grads/layer{DEPTH:02d}"]]
bands = np.array([histogram_percentiles(table) for table in last_layer_tables])
first = last_layer_tables[0]
print(
    f"step 0: {first[:, 2].sum():.0f} entries, min {first[0, 0]:.4g}, median "
    f"{bands[0, 4]:.4g}, "
    f"max {first[-1, 1]:.4g}"
)
assert all(
    table[:, 2].sum() == WIDTH * WIDTH for table in last_layer_tables
)  # a 32 x 32 kernel
assert np.all(bands[:, 0] == [t[0, 0] for t in last_layer_tables])
assert np.all(bands[:, -1] == [t[-1, 1] for t in last_layer_tables])
assert np.all(np.diff(bands, axis=1) >= 0)

# %% [markdown]
# {numref}`fig-debugging-logged` is what TensorBoard's *Scalars* and *Distributions* dashboards would
# show, drawn from the event files with matplotlib. Left: per-layer gradient norms over training; the
# spread between layers is visible at a glance. Right: the distribution of the last hidden layer's
# kernel gradient at every step.

# %% mystnb={"figure": {"caption": "Read back from the TF2 event files of the clipped exploding network. Left, the gradient norm of every hidden layer's kernel per step (darker = closer to the input) and the global norm (black). Right, percentile bands of the 1024 entries of the last hidden layer's kernel gradient, recovered from the logged 30-bucket histograms (outermost band = minimum to maximum, line = median; symmetric log scale, linear between -1 and 1).", "name": "fig-debugging-logged"}}
fig, (ax_norms, ax_bands) = plt.subplots(1, 2, figsize=(10, 3.8))
colors = plt.cm.viridis(np.linspace(0, 0.9, DEPTH))
for layer_number in range(1, DEPTH + 1):
    series = chain_log[f"grad_norm/layer{layer_number:02d}"]
    ax_norms.semilogy(
        [s for s, _ in series],
        [v for _, v in series],
        color=colors[layer_number - 1],
        lw=1,
    )
global_series = chain_log["grad_norm/global"]
ax_norms.semilogy(
    [s for s, _ in global_series],
    [v for _, v in global_series],
    "k",
    lw=1.5,
    label="global",
)
ax_norms.set(xlabel="step", ylabel="gradient norm")
ax_norms.legend()

band_steps = [s for s, _ in chain_log[f"grads/layer{DEPTH:02d}"]]
for inner, alpha in zip(range(4), [0.15, 0.25, 0.35, 0.5], strict=True):
    ax_bands.fill_between(
        band_steps, bands[:, inner], bands[:, -1 - inner], color="C0", alpha=alpha, lw=0
    )
ax_bands.plot(band_steps, bands[:, 4], color="C0", lw=1.2)
ax_bands.set_yscale("symlog", linthresh=1.0)
ax_bands.set(xlabel="step", ylabel=f"gradient entries, layer {DEPTH} kernel")
plt.show()

# %% [markdown]
# ### Opening the logs in TensorBoard
#
# The event files are ordinary files; TensorBoard reads any folder of them, one run per subfolder. With
# a permanent folder instead of a temporary one (say `logs/`) and TensorBoard installed
# (`pip install tensorboard`):
#
# - from a shell: `tensorboard --logdir logs`, then open `http://localhost:6006`;
# - inside Jupyter: `%load_ext tensorboard` and then `%tensorboard --logdir logs`.
#
# The *Scalars* dashboard shows `loss`, `grad_norm/global` and the sixteen `grad_norm/layerNN` curves
# (runs `tf1`, `tf2` and `chain_global_clipnorm` side by side where tags coincide); the *Histograms* and
# *Distributions* dashboards show `grads/layer01` and `grads/layer16`. Our temporary folder is removed
# now.

# %%
log_root.cleanup()
assert not LOGDIR.exists()

# %% [markdown]
# ## Summary
#
# - Check gradients with central differences {eq}`eq-debugging-central` in **float64**, with a step near
#   $\varepsilon^{1/3}$ ({eq}`eq-debugging-step-error`, {numref}`fig-debugging-step-size`), and judge
#   them by the relative error {eq}`eq-debugging-relerr`: below $10^{-7}$ is right, above $10^{-2}$ is a
#   bug. Checking every variable separately tells you *where* the bug is: the wrong
#   `tf.custom_gradient` failed only in the layer below it. `tf.test.compute_gradient` is the library
#   version of the same formula.
# - NaN and Inf come from a few places: log of an underflowed 0, `exp` overflow, $0/0$ from a vanishing
#   norm, and $0 \cdot \infty$ in the backward pass even behind a `tf.where` guard. Use the fused or
#   shifted forms (`softmax_cross_entropy_with_logits`, `tf.nn.softmax`, `tf.nn.softplus`) and the
#   two-`where` pattern. `tf.debugging.check_numerics` tests one tensor;
#   `tf.debugging.enable_check_numerics` finds the first op that produced a non-finite value, and must
#   be switched off again.
# - In a deep chain the gradient is a product of one factor per layer {eq}`eq-debugging-backprop`, so
#   it vanishes or explodes geometrically ({numref}`fig-debugging-layer-norms`). Clipping
#   {eq}`eq-debugging-clipping` by value bends the direction, by norm rescales each variable, by global
#   norm rescales everything; Keras' `clipvalue`, `clipnorm` (per variable!) and `global_clipnorm`
#   match the hand-written rules. Clipping keeps an exploding network trainable but is no substitute
#   for a good initialization ({numref}`fig-debugging-clip-training`).
# - Log gradient norms and histograms: TF1 with `tf.compat.v1.summary` ops, `merge_all` and a
#   `FileWriter`; TF2 with a default writer and `tf.summary.write` (or `tf.summary.scalar` /
#   `histogram` when TensorBoard is installed). Event files can be read back with
#   `summary_iterator` and plotted anywhere ({numref}`fig-debugging-logged`).
#
# ## Exercises
#
# ```{exercise}
# :label: ex-debugging-forward
# Replace the central difference in `central_difference_errors` by the forward difference
# $(f(x+h) - f(x))/h$. Predict the best step and the best relative error in float64 before you run it,
# using the same reasoning as {eq}`eq-debugging-step-error`.
# ```
#
# ````{solution} ex-debugging-forward
# :class: dropdown
# The truncation error is now first order, $\tfrac{h}{2}\lvert f''\rvert$, and the rounding error is
# still about $\varepsilon\lvert f\rvert/h$. Balancing the two gives $h^\star \approx
# \sqrt{2\varepsilon\lvert f\rvert/\lvert f''\rvert}$, of the order of $\sqrt{\varepsilon} \approx
# 10^{-8}$, and a best relative error of the same order, $10^{-8}$: three orders of magnitude worse
# than the central difference, and too close to the $10^{-7}$ threshold to be a reliable check. This is
# why gradient checks use central differences despite the second loss evaluation.
# ````
#
# ```{exercise}
# :label: ex-debugging-kink
# Run `gradient_check` on the MLP with `activation="relu"` instead of softplus. Usually every relative
# error is tiny. Construct an input batch for which the check reports a large error although TensorFlow's
# ReLU gradient is correct, and explain what happened.
# ```
#
# ````{solution} ex-debugging-kink
# :class: dropdown
# Make a hidden pre-activation lie within $h = 10^{-6}$ of 0, for example by choosing one input row
# $x$ and setting the hidden bias of one unit to $-(x W)_j$ so that the unit sits exactly at the kink.
# Then $L(\theta + h e_i)$ and $L(\theta - h e_i)$ are evaluated on *different sides* of the kink, and
# the central difference averages the two one-sided slopes, while the analytic gradient uses one side
# (TensorFlow takes ReLU'(0) = 0). The relative error can then be of order 1 for the parameters that
# feed that unit. This is why the thresholds table allows larger errors for non-smooth functions, and
# why checks are best run on inputs that keep pre-activations away from kinks (or with a smooth
# stand-in for the activation).
# ````
#
# ```{exercise}
# :label: ex-debugging-where
# Explain, in terms of the chain rule, why the gradient of `normalize_one_where` at 0 is NaN. Then show
# that the following cheaper rewrite gives a finite gradient at 0, and say how it changes the *value*
# near 0: `x / tf.sqrt(tf.reduce_sum(x * x) + 1e-12)`.
# ```
#
# ````{solution} ex-debugging-where
# :class: dropdown
# `tf.where(c, a, b)` back-propagates the upstream gradient to `a` masked by `c` and to `b` masked by
# `not c`. At $x = 0$ the mask for `a = x / norm` is 0, but the gradient of `a` with respect to `norm`
# is $-x/\text{norm}^2 = 0/0 = $ NaN and the gradient of `norm` with respect to $x$ is $x/\text{norm} =
# 0/0 = $ NaN; $0 \cdot \text{NaN}$ is NaN, and it is added to the gradient of $x$. With the $\epsilon$
# inside the square root nothing is ever divided by zero: the gradient at 0 is
# $1/\sqrt{\epsilon} = 10^6$ per entry (like `tf.math.l2_normalize`), finite. The value is no longer
# exactly a unit vector: for $\lVert x\rVert$ comparable to $\sqrt{\epsilon} = 10^{-6}$ the result has
# norm noticeably below 1, and it tends to 0 (not to an undefined direction) as $x \to 0$.
# ````
#
# ```{exercise}
# :label: ex-debugging-update-ratio
# Gradient norms alone do not say whether a step is large *for the weights it changes*. Extend
# `train_and_log` to log, for every hidden layer, the ratio $\lVert \Delta W_\ell\rVert / \lVert
# W_\ell\rVert$ of the update to the weights. What would you expect for the unclipped exploding run at
# step 0, and for the clipped run?
# ```
#
# ````{solution} ex-debugging-update-ratio
# :class: dropdown
# Inside the loop, keep a copy of each kernel before the step (`before = [k.numpy() for k in kernels]`)
# and after it log `np.linalg.norm(k.numpy() - b) / np.linalg.norm(b)` under
# `update_ratio/layerNN`. Without clipping the update is $\alpha g$ with gradient norms in the
# thousands, so the ratio is far above 1 at step 0: the step replaces the weights instead of adjusting
# them, which is why the loss overflows. With `global_clipnorm=1` the whole step has norm at most
# $\alpha = 0.01$, spread over all layers, so every ratio is tiny. A common rule of thumb is a ratio of
# about $10^{-3}$ for healthy training.
# ````
