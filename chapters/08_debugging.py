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
# - how to check any gradient against central differences in float64, coordinate by coordinate or
#   along random directions, and how to read the relative error;
# - how a planted bug in a `tf.custom_gradient` shows up in the check, and in which parameters;
# - where NaN and Inf come from (log of 0, `exp` overflow, division by a vanishing norm), how
#   `tf.debugging` names the op that made them, and the stable rewrites;
# - why gradients vanish or explode in a deep chain, what clipping by value, by norm and by global
#   norm does to them and to training, and what to do when the norm itself overflows;
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
import shutil
from pathlib import Path

import keras
import matplotlib.pyplot as plt
from myst_nb import glue

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
# where $h^\star$ minimizes $E$. In float64 ($\varepsilon = 2^{-52}$) the best step is of the order of
# $\varepsilon^{1/3}$ and the best relative error of the order of $\varepsilon^{2/3}$; in float32
# ($\varepsilon = 2^{-23}$) both are far worse. Let us measure it on $f(x) = e^x \sin x$ near $x = 1$,
# whose derivative $f'(x) = e^x(\sin x + \cos x)$ we know exactly. Rounding errors are erratic from one
# point to the next, so we report the median relative error over 101 points in an interval of width 0.1
# around $x = 1$.


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
# $x = 1$. At $h^\star$ the truncation term is half the rounding term, so the predicted best error is
# $E(h^\star) = \tfrac32\,\varepsilon\lvert f\rvert / h^\star$, an upper estimate: it adds the worst
# rounding of both function values, and real rounding errors partly cancel.

# %%
third_derivative = -2 * np.exp(x0) * (np.sin(x0) - np.cos(x0))
f_value = np.exp(x0) * np.sin(x0)
f_prime = np.exp(x0) * (np.sin(x0) + np.cos(x0))


def predicted_best_step(eps):
    return (3 * eps * abs(f_value) / abs(third_derivative)) ** (1 / 3)


def predicted_best_error(eps):
    """E(h*) of the step-error equation, relative to |f'(1)|."""
    return 1.5 * eps * abs(f_value) / predicted_best_step(eps) / abs(f_prime)


for name, eps, best, errors in [
    ("float64", np.finfo(np.float64).eps, best64, errors64),
    ("float32", np.finfo(np.float32).eps, best32, errors32),
]:
    print(
        f"{name}: eps = {eps:.1e}; h*: predicted {predicted_best_step(eps):.1e}, "
        f"measured {best:.1e}; best error: predicted "
        f"{predicted_best_error(eps):.1e}, measured {errors.min():.1e}"
    )
    assert 0.1 < best / predicted_best_step(eps) < 10
    assert 0.1 < errors.min() / predicted_best_error(eps) < 1
assert errors32.min() / errors64.min() > 1e5

# %% [markdown]
# {numref}`fig-debugging-step-size` shows the two regimes of {eq}`eq-debugging-step-error`: to the
# right of the minimum the $h^2$ truncation error dominates (slope 2 on a log-log plot), to the left the
# rounding error $\varepsilon/h$ does (slope $-1$, with scatter because rounding is erratic). We fit
# the slopes of the float64 curve on the steps at least 100 times larger, and at least 100 times
# smaller, than the best one.

# %%
right = steps >= 100 * best64
left = steps <= best64 / 100
slope_right = np.polyfit(np.log10(steps[right]), np.log10(errors64[right]), 1)[0]
slope_left = np.polyfit(np.log10(steps[left]), np.log10(errors64[left]), 1)[0]
print(f"slope right of the minimum {slope_right:.2f}, left of it {slope_left:.2f}")
assert round(slope_right) == 2 and round(slope_left) == -1

# %% [markdown]
# The curves themselves:

# %% mystnb={"figure": {"caption": "Median relative error of the central difference of $e^x \\sin x$ near $x = 1$ against the step $h$. Truncation error falls as $h^2$ to the right; rounding error grows as $\\varepsilon/h$ to the left. The stars mark the best step of each precision.", "name": "fig-debugging-step-size"}}
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
# than the thresholds that are supposed to flag a bug (we check that in the next section).
#
# ### The relative error and its thresholds
#
# An absolute difference between an analytic gradient $g$ and a numerical one $\hat g$ means nothing
# without a scale: an error of $10^{-4}$ is huge for a gradient of size $10^{-5}$ and tiny for one of
# size $10^3$. The usual measure {cite:p}`karpathy2016cs231n` is
#
# $$
# r = \frac{\lvert g - \hat g\rvert}{\max\left(\lvert g\rvert,\ \lvert \hat g\rvert,\ \tau\right)},
# $$ (eq-debugging-relerr)
#
# taken per parameter entry, with rules of thumb for float64 and a smooth loss:
#
# | largest $r$ | verdict |
# | --- | --- |
# | above $10^{-2}$ | the gradient is almost certainly wrong |
# | $10^{-4}$ to $10^{-2}$ | suspicious; acceptable only near kinks (ReLU, max, abs) |
# | $10^{-7}$ to $10^{-4}$ | fine for non-smooth losses, too large for smooth ones |
# | below $10^{-7}$ | the gradient is right |
#
# The floor $\tau$ is not a detail. The central difference carries a rounding error of about
# $\delta = \varepsilon\lvert L\rvert/h$ (the second term of {eq}`eq-debugging-step-error`, with the loss
# $L$ in place of $f$), whatever the size of the gradient entry. An entry smaller than $\delta/10^{-7}$
# therefore cannot be checked to the $10^{-7}$ of the table, however right it is. We set
# $\tau = \delta / 10^{-7}$: an entry below $\tau$ passes when it agrees to within about $\delta$ in
# absolute terms. A fixed tiny floor would report a correct parameter with a small gradient as wrong;
# we show that below. Besides the worst entry we report one *norm-wise* error per variable,
# $\lVert g - \hat g\rVert / \max(\lVert g\rVert, \lVert \hat g\rVert, \tau)$, which a few tiny entries
# cannot dominate. The step is $h = \varepsilon^{1/3}$, of the order of the best step measured above.

# %%
EPS64 = np.finfo(np.float64).eps
H_CHECK = EPS64 ** (1 / 3)
R_OK = 1e-7


def verdict(r):
    """The rules of thumb of the table above."""
    if r > 1e-2:
        return "wrong"
    if r > 1e-4:
        return "suspicious"
    if r > R_OK:
        return "only if non-smooth"
    return "right"


print(f"h = eps^(1/3) = {H_CHECK:.2e}; measured best step {best64:.2e}")
print("float32's best error", f"{errors32.min():.1e}:", verdict(errors32.min()))
assert 0.5 < H_CHECK / best64 < 2
assert verdict(errors32.min()) != "right"


# %% [markdown]
# Here is the check, written once for any loss function and any list of variables. It perturbs one entry
# at a time with `assign`, evaluates the loss twice, and restores the entry.


# %%
def numerical_gradient(loss_fn, variables, h=H_CHECK):
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


def relative_error(analytic, numeric, floor):
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return np.abs(analytic - numeric) / scale


# %% [markdown]
# The check itself compares the tape's gradient with the numerical one. `compare` returns, per
# variable, the worst entry-wise $r$ and the norm-wise error for a given floor; `gradient_check` uses
# the noise-based $\tau$.


# %%
def both_gradients(loss_fn, variables, h=H_CHECK):
    """The loss, the tape's gradients and the central differences."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    analytic = [g.numpy() for g in tape.gradient(loss, variables)]
    return float(loss), analytic, numerical_gradient(loss_fn, variables, h)


def compare(variables, analytic, numeric, floor):
    """{layer/name: (largest entry-wise r, norm-wise error)} for every variable."""
    report = {}
    for var, a, n in zip(variables, analytic, numeric, strict=True):
        norm_scale = max(np.linalg.norm(a), np.linalg.norm(n), floor)
        report["/".join(var.path.split("/")[-2:])] = (
            relative_error(a, n, floor).max(),
            np.linalg.norm(a - n) / norm_scale,
        )
    return report


def gradient_check(loss_fn, variables, h=H_CHECK):
    loss, analytic, numeric = both_gradients(loss_fn, variables, h)
    return compare(variables, analytic, numeric, EPS64 * abs(loss) / h / R_OK)


def print_report(report):
    for name, (entrywise, normwise) in report.items():
        print(
            f"{name:14s} worst entry {entrywise:8.1e}  norm-wise {normwise:8.1e}  "
            f"{verdict(entrywise)}"
        )


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
print_report(report_library)
assert mlp.count_params() == 4 * 5 + 5 + 5 * 3 + 3
assert all(verdict(e) == "right" for e, _ in report_library.values())

# %% [markdown]
# Every parameter passes with a wide margin: TensorFlow's gradient of `softplus`, `matmul`, the bias add
# and the fused cross-entropy is right, as expected.
#
# ### A correct gradient that a fixed floor calls wrong
#
# To see why the floor matters, we shrink the outgoing weights of hidden unit 0 by a factor of
# $10^{6}$. The gradients of that unit's incoming weights and bias shrink with them, far below $\tau$
# (printed below). The gradient is as right as before; we check it once with a fixed floor
# $\tau = 10^{-12}$ and once with the noise-based floor.

# %%
quiet_mlp = make_mlp(tf.nn.softplus)
output_kernel = quiet_mlp.get_layer("output").kernel
output_kernel.assign(tf.concat([output_kernel[:1] * 1e-6, output_kernel[1:]], 0))
quiet_loss = float(mlp_loss(quiet_mlp))
noise = EPS64 * quiet_loss / H_CHECK
with tf.GradientTape() as tape:
    hidden_grad = tape.gradient(
        mlp_loss(quiet_mlp), quiet_mlp.get_layer("hidden").kernel
    ).numpy()
print(f"loss {quiet_loss:.4f}, noise delta {noise:.1e}, floor tau {noise / R_OK:.1e}")
print(
    f"largest gradient entry of unit 0's weights {np.abs(hidden_grad[:, 0]).max():.1e}"
)
quiet_results = both_gradients(
    lambda: mlp_loss(quiet_mlp), quiet_mlp.trainable_variables
)
report_fixed = compare(quiet_mlp.trainable_variables, *quiet_results[1:], floor=1e-12)
report_noise = compare(quiet_mlp.trainable_variables, *quiet_results[1:], noise / R_OK)
print("fixed floor 1e-12:")
print_report(report_fixed)
print("noise-based floor:")
print_report(report_noise)

# %% [markdown]
# With the fixed floor the hidden kernel's worst entry looks suspicious, although nothing is wrong:
# its tiny entries are judged by a difference that is rounding noise. With the noise-based floor every
# variable passes (for an entry below $\tau$ that means: within $\delta$ of the tape's value), and so
# does the norm-wise error, whichever floor it uses.

# %%
assert np.abs(hidden_grad[:, 0]).max() < noise / R_OK
assert verdict(report_fixed["hidden/kernel"][0]) == "suspicious"
assert all(verdict(e) == "right" for e, _ in report_noise.values())
assert all(verdict(n) == "right" for _, n in report_fixed.values())


# %% [markdown]
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
print("correct gradient:")
print_report(report_correct)
print("buggy gradient:")
print_report(report_buggy)

# %% [markdown]
# The check does more than raise an alarm: it says *where*. The output layer's kernel and bias pass in
# both networks, because their gradients use the activation's *value*, which is right. Only the hidden
# layer's parameters, whose gradients flow back through the activation's derivative, fail.

# %%
hidden = ["hidden/kernel", "hidden/bias"]
output = ["output/kernel", "output/bias"]
assert all(verdict(e) == "right" for e, _ in report_correct.values())
assert all(verdict(report_buggy[name][0]) == "wrong" for name in hidden)
assert all(verdict(report_buggy[name][1]) == "wrong" for name in hidden)
assert all(verdict(report_buggy[name][0]) == "right" for name in output)
print(
    "bug caught in:", [n for n, (e, _) in report_buggy.items() if verdict(e) == "wrong"]
)

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
# off-diagonal entries are exactly zero
assert np.abs(np.triu(numerical_ok[0], 1)).max() == 0.0

# %% [markdown]
# `tf.test.compute_gradient` leaves the verdict to you. TensorFlow's own tests pass the two Jacobians
# to `assertAllClose`, an elementwise test with `rtol=1e-6, atol=1e-6` by default, and
# `tf.test.compute_gradient`'s module also offers `max_error`, the largest *absolute* difference. For
# a network, whose gradients range over many orders of magnitude, the per-parameter relative error
# {eq}`eq-debugging-relerr` of our `gradient_check` is the more telling number.
#
# ### One direction instead of every coordinate
#
# Checking every coordinate costs $2n$ loss evaluations: 86 for our MLP, but millions for the network
# of {ref}`ch-cnn`. The *directional* check needs two. For a random direction $v$ with
# $\lVert v\rVert = 1$, the directional derivative is $\langle \nabla L, v\rangle$, and its central
# difference is $(L(\theta + hv) - L(\theta - hv))/2h$; a gradient that is wrong in a way a random $v$
# sees (almost any bug) makes the two disagree. We build the architecture of {ref}`ch-cnn` in float64
# (without dropout, which would make the loss random; with the source's initial weights, each layer with
# its own seeded initializer, and biases of 0.1) and check three directions on eight test images.

# %%
mnist = gdbook.load_mnist("float")
x_digits = mnist.x_test[:8, :, :, None].astype(np.float64)
y_digits = mnist.y_test[:8].astype(np.int64)


def cnn_layer_options(seed):
    return {
        "kernel_initializer": keras.initializers.TruncatedNormal(stddev=0.1, seed=seed),
        "bias_initializer": keras.initializers.Constant(0.1),
        "dtype": "float64",
    }


layers = keras.layers
cnn = keras.Sequential(
    [
        keras.Input((28, 28, 1), dtype="float64"),
        layers.Conv2D(32, 5, padding="same", activation="relu", **cnn_layer_options(1)),
        layers.MaxPool2D(2, dtype="float64"),
        layers.Conv2D(64, 5, padding="same", activation="relu", **cnn_layer_options(2)),
        layers.MaxPool2D(2, dtype="float64"),
        layers.Flatten(dtype="float64"),
        layers.Dense(1024, activation="relu", **cnn_layer_options(3)),
        layers.Dense(10, **cnn_layer_options(4)),
    ]
)


def cnn_loss():
    logits = cnn(x_digits)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(y_digits, logits)
    )


print(f"{cnn.count_params():,} parameters")


# %% [markdown]
# The check moves all variables at once along $v$ and restores them afterwards. Its error is judged like
# an entry of {eq}`eq-debugging-relerr`, with the same noise-based floor.


# %%
def directional_check(loss_fn, variables, rng, h=H_CHECK):
    """Relative error of <grad L, v> against a central difference along a random
    unit vector v."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, variables)
    v = [rng.normal(size=var.shape) for var in variables]
    v_norm = np.sqrt(sum(np.sum(d**2) for d in v))
    v = [d / v_norm for d in v]
    start = [var.numpy() for var in variables]
    values = []
    for sign in [1, -1]:
        for var, s, d in zip(variables, start, v, strict=True):
            var.assign(s + sign * h * d)
        values.append(float(loss_fn()))
    for var, s in zip(variables, start, strict=True):
        var.assign(s)
    analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, v, strict=True))
    numeric = (values[0] - values[1]) / (2 * h)
    floor = EPS64 * abs(float(loss)) / h / R_OK
    return relative_error(analytic, numeric, floor)


direction_rng = np.random.default_rng(8)
cnn_errors = [
    directional_check(cnn_loss, cnn.trainable_variables, direction_rng)
    for _ in range(3)
]
print("relative errors of three directions:", [f"{e:.1e}" for e in cnn_errors])
assert all(verdict(e) == "right" for e in cnn_errors)

# %% [markdown]
# Three directions at the price of six forward and three backward passes: every one agrees. The
# biases of 0.1 matter. With zero biases, every unit that sees only the black background of a digit has
# a pre-activation of exactly 0, on the kink of its ReLU, and the perturbation pushes each of them to
# one side or the other:

# %%
for var in cnn.trainable_variables:
    if "bias" in var.path:
        var.assign(tf.zeros_like(var))
first_conv = cnn.layers[0]
first_pre_activation = tf.nn.conv2d(x_digits, first_conv.kernel, 1, "SAME")
on_kink = int(tf.reduce_sum(tf.cast(first_pre_activation == 0, tf.int32)))
zero_bias_error = directional_check(cnn_loss, cnn.trainable_variables, direction_rng)
print(
    f"first layer: {on_kink} of {first_pre_activation.shape.num_elements()} on the kink"
)
print(f"zero biases: relative error {zero_bias_error:.1e}, {verdict(zero_bias_error)}")
glue("debugging_on_kink", on_kink, display=False)
assert on_kink > 1000
assert verdict(zero_bias_error) in ("wrong", "suspicious")

# %% [markdown]
# In the first layer alone {glue:text}`debugging_on_kink:,` units sit exactly on the kink.
#
# The practical rules of gradient checking {cite:p}`karpathy2016cs231n` follow from what we measured:
# check in float64 with a step near $\varepsilon^{1/3}$; use few examples (the cost grows with them,
# and so does the chance of sitting on a kink); switch off dropout and other randomness, and check the
# loss without regularization first, then the penalty on its own; run a few training steps before
# checking, since an initialization can sit in an unrepresentative place (zero biases above); watch
# for kinks (ReLU, max-pooling, `abs`) and read errors near them leniently; and when a network is large,
# check random directions, or a random sample of coordinates per variable, rather than every entry.
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
# the small one underflows to exactly 0. Where that happens depends on who computes it. The smallest
# *normal* float32 number is about $1.2 \times 10^{-38}$; below it come the *subnormal* numbers, down to
# about $1.4 \times 10^{-45}$. NumPy keeps subnormals, but TensorFlow's CPU kernels flush them to zero
# (for speed), so TensorFlow gives an exact 0 at a much smaller logit gap: $e^{-z}$ reaches the smallest
# normal number at $z \approx 87.3$. On x86, `tf.nn.softmax` runs in a oneDNN kernel whose outputs vanish
# a little earlier still ({ref}`ch-softmax` measures both). A sweep over the gap
# $z_1 - z_2$ finds the first gap at which each gives 0 (to the sweep's resolution of 0.05):

# %%
gaps = np.arange(80, 110, 0.05, dtype=np.float32)
two_logits = np.stack([gaps, np.zeros_like(gaps)], axis=1)
p_small_tf = tf.nn.softmax(two_logits).numpy()[:, 1]
shifted_exp = np.exp(two_logits - two_logits.max(axis=1, keepdims=True))
p_small_np = (shifted_exp / shifted_exp.sum(axis=1, keepdims=True))[:, 1]
zero_gap_tf = float(gaps[p_small_tf == 0][0])
zero_gap_np = float(gaps[p_small_np == 0][0])
tiny, smallest = np.finfo(np.float32).tiny, np.finfo(np.float32).smallest_subnormal
print(f"smallest normal {tiny:.2e} = e^{np.log(tiny):.2f}")
print(f"smallest subnormal {smallest:.2e} = e^{np.log(smallest):.2f}")
print(f"first exact 0: TensorFlow at gap {zero_gap_tf:.2f}, NumPy at {zero_gap_np:.2f}")
subnormal_tf = float(tf.constant(1e-38) * tf.constant(0.01))
subnormal_np = float(np.float32(1e-38) * np.float32(0.01))
print(f"1e-38 * 0.01 in float32: TensorFlow {subnormal_tf}, NumPy {subnormal_np:.1e}")
glue("debugging_zero_gap_tf", zero_gap_tf, display=False)
glue("debugging_zero_gap_np", zero_gap_np, display=False)
assert round(zero_gap_tf) == 87 and round(zero_gap_np) == 104
assert (p_small_tf[gaps < 86] > 0).all() and (p_small_np[gaps < 103] > 0).all()
assert subnormal_tf == 0.0 and subnormal_np > 0


# %% [markdown]
# TensorFlow's softmax gives 0 from a gap of about {glue:text}`debugging_zero_gap_tf:.0f`, NumPy's from
# about {glue:text}`debugging_zero_gap_np:.0f`. Past that gap two things go wrong.
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
largest = np.finfo(np.float32).max
print(f"largest float32 {largest:.1e} = e^{np.log(largest):.1f}")
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
    # never sqrt(0) below
    safe_squared = tf.where(squared > 0, squared, tf.ones_like(squared))
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
# the default
tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})
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
# ### NaN in a training run: the usual cause and the usual tools
#
# In practice the commonest source of a NaN loss is none of the above but a learning rate that is too
# large. Gradient descent on a quadratic diverges once the rate exceeds $2/\lambda_{\max}$, the
# stability limit of {ref}`ch-softmax`; the loss then grows geometrically until it overflows. A linear
# regression on inputs of size about 10 shows it: its mean-squared error has the Hessian
# $2\,\mathbb E[(x, 1)(x, 1)^\top]$, and we train it with a rate above $2/\lambda_{\max}$.
# `keras.callbacks.TerminateOnNaN` stops `fit` at the first batch whose loss is NaN or infinite,
# instead of letting it run on for the remaining epochs.

# %%
nan_rng = np.random.default_rng(3)
x_wide = nan_rng.uniform(-10, 10, size=(64, 1)).astype(np.float32)
y_wide = 3 * x_wide + 2
features = np.hstack([x_wide, np.ones_like(x_wide)]).astype(np.float64)
stability_limit = (
    2 / np.linalg.eigvalsh(2 * features.T @ features / len(features)).max()
)
TOO_LARGE_RATE, NAN_EPOCHS = 0.1, 200
keras.utils.set_random_seed(0)
regression = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
regression.compile(keras.optimizers.SGD(TOO_LARGE_RATE), loss="mse")
nan_history = regression.fit(
    x_wide,
    y_wide,
    batch_size=64,
    epochs=NAN_EPOCHS,
    verbose=0,
    callbacks=[keras.callbacks.TerminateOnNaN()],
).history["loss"]
print(f"stability limit 2/lambda_max = {stability_limit:.4f}, rate {TOO_LARGE_RATE}")
print(
    f"stopped after {len(nan_history)} of {NAN_EPOCHS} epochs; last losses "
    f"{nan_history[-3:]}"
)
assert TOO_LARGE_RATE > stability_limit
assert len(nan_history) < NAN_EPOCHS and not np.isfinite(nan_history[-1])
assert np.isfinite(nan_history[:-1]).all()

# %% [markdown]
# Two more tools are worth knowing. In **float16**, whose largest number is 65504, overflow comes much
# sooner: a square of 300 is already $\infty$. Mixed-precision training therefore wraps the optimizer in
# `keras.optimizers.LossScaleOptimizer`. It multiplies the loss by a large scale before the backward
# pass (so that small float16 gradients do not underflow to zero), divides the gradients by it again,
# and skips every step whose gradients are not finite, halving the scale instead: the guard of
# {ref}`sec-debugging-overflowing-norm`, built in.

# %%
print(
    "float16:",
    int(np.finfo(np.float16).max),
    "| 300^2 =",
    float(tf.constant(300.0, tf.float16) ** 2),
)
scaled_weights = tf.Variable([1.0, 1.0])
loss_scaler = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
loss_scaler.build([scaled_weights])
scale_before = float(loss_scaler.dynamic_scale)
loss_scaler.apply_gradients([(tf.constant([np.inf, 1.0]), scaled_weights)])
scale_after = float(loss_scaler.dynamic_scale)
print(
    f"non-finite gradient: weights {scaled_weights.numpy()}, scale {scale_before:g} -> "
    f"{scale_after:g}"
)
assert np.isinf(float(tf.constant(300.0, tf.float16) ** 2))
assert (
    np.array_equal(scaled_weights.numpy(), [1.0, 1.0])
    and scale_after == scale_before / 2
)

# %% [markdown]
# And when `enable_check_numerics` is too blunt, `tf.debugging.experimental.enable_dump_debug_info`
# (with a folder, `tensor_debug_mode="FULL_HEALTH"`, and `circular_buffer_size=-1` to keep every
# record instead of the last 1000) records every op's execution and a health summary of its output
# tensors (how many entries are NaN, $\infty$, $-\infty$) to disk, until
# `tf.debugging.experimental.disable_dump_debug_info()`; TensorBoard's *Debugger V2* dashboard then
# shows the graphs, the op sequence, and where the first NaN or Inf appeared. The default buffer size,
# from the function's signature:

# %%
import inspect

dump_options = inspect.signature(
    tf.debugging.experimental.enable_dump_debug_info
).parameters
print("circular_buffer_size default:", dump_options["circular_buffer_size"].default)
assert dump_options["circular_buffer_size"].default == 1000

# %% [markdown]
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
# and compute the gradient of a mean-squared error on the same batch. One trap first: every layer needs
# its own initializer. A Keras 3 initializer *instance* draws the same values on every call (seeded or
# not: an unseeded one picks its seed once, when it is made), so one instance passed to several layers
# of the same shape gives them identical kernels.

# %%
DEPTH, WIDTH = 16, 32
for seed in [1, None]:
    shared = keras.initializers.HeNormal(seed=seed)
    twins = keras.Sequential(
        [
            keras.Input((WIDTH,)),
            *[keras.layers.Dense(WIDTH, kernel_initializer=shared) for _ in range(3)],
        ]
    )
    kernels = [layer.kernel.numpy() for layer in twins.layers]
    identical = all(np.array_equal(kernels[0], k) for k in kernels[1:])
    print(f"one HeNormal(seed={seed}) for three layers: identical kernels? {identical}")
    assert identical

# %% [markdown]
# Sixteen identical layers are not a random network: the products of {eq}`eq-debugging-backprop` then
# repeat one matrix, and what we measure would hold for one draw only. `make_chain` gives every layer its
# own initializer with its own seed, derived from the network's seed, and `reset_chain` re-draws a
# built network's weights for another seed (cheaper than building a new model).

# %%
rng = np.random.default_rng(1)
x_chain = rng.uniform(-2, 2, size=(128, 1)).astype(np.float32)
y_chain = np.sin(1.5 * x_chain).astype(np.float32)


def chain_initializers(gain, seed):
    """One initializer per layer (DEPTH hidden + output): variance gain^2 / fan_in."""
    return [
        keras.initializers.VarianceScaling(
            gain**2, "fan_in", "truncated_normal", seed=1000 * seed + i
        )
        for i in range(DEPTH + 1)
    ]


def make_chain(activation, gain, seed=1):
    inits = chain_initializers(gain, seed)
    hidden = [
        keras.layers.Dense(
            WIDTH, activation, kernel_initializer=inits[i], name=f"layer{i + 1:02d}"
        )
        for i in range(DEPTH)
    ]
    output = keras.layers.Dense(1, kernel_initializer=inits[DEPTH], name="output")
    return keras.Sequential([keras.Input((1,)), *hidden, output])


def reset_chain(model, gain, seed):
    for layer, init in zip(model.layers, chain_initializers(gain, seed), strict=True):
        layer.kernel.assign(init(layer.kernel.shape))
        layer.bias.assign(tf.zeros_like(layer.bias))


# %% [markdown]
# A check of both: the fifteen 32 × 32 kernels of a chain are all different, and a reset network
# equals a freshly built one with the same seed.

# %%
chain = make_chain("relu", np.sqrt(2.0), seed=1)
square = [layer.kernel.numpy() for layer in chain.layers[1:DEPTH]]
distinct_pairs = sum(
    not np.array_equal(a, b) for i, a in enumerate(square) for b in square[i + 1 :]
)
reset_chain(chain, np.sqrt(2.0), seed=2)
fresh = make_chain("relu", np.sqrt(2.0), seed=2)
same_as_fresh = all(
    np.array_equal(a, b)
    for a, b in zip(chain.get_weights(), fresh.get_weights(), strict=True)
)
print(f"distinct pairs of hidden kernels: {distinct_pairs} of {15 * 14 // 2}")
print("reset equals fresh:", same_as_fresh)
assert distinct_pairs == 15 * 14 // 2 and same_as_fresh

# %% [markdown]
# Now the gradient of each hidden layer's kernel, for five seeds of each of the three networks.

# %%
SEEDS = [1, 2, 3, 4, 5]


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
chain_norms = {}
for label, (activation, gain) in chains.items():
    model = make_chain(activation, gain)
    per_seed = []
    for seed in SEEDS:
        reset_chain(model, gain, seed)
        per_seed.append(kernel_gradient_norms(model))
    chain_norms[label] = np.array(per_seed)
for label, norms in chain_norms.items():
    print(
        f"{label:36s} layer 1 / layer {DEPTH}:",
        np.array2string(norms[:, 0] / norms[:, -1], precision=1, floatmode="maxprec"),
    )


# %% [markdown]
# The first layer's kernel has a single input row (the data are one-dimensional), so its norm is not
# comparable with the others. To measure the factor per layer we fit a straight line to the logarithms
# of the norms of layers 2 to 16, per seed: its slope is the average factor by which the gradient norm
# changes from one layer to the next, going up towards the output.


# %%
def factor_per_layer(norms):
    layers = np.arange(2, DEPTH + 1)
    return np.exp([np.polyfit(layers, np.log(n[1:]), 1)[0] for n in norms])


factors = {label: factor_per_layer(norms) for label, norms in chain_norms.items()}
for label, f in factors.items():
    print(
        f"{label:36s} factor per layer {f.mean():.2f} ± {f.std(ddof=1):.2f}",
        f"(seeds: {np.round(f, 2)})",
    )
sigmoid_norms, relu_norms, tanh_norms = chain_norms.values()
sigmoid_factor, relu_factor, tanh_factor = factors.values()
relu_spread = relu_norms.max(axis=1) / relu_norms.min(axis=1)
print("ReLU/He, largest / smallest layer norm per seed:", np.round(relu_spread, 1))
glue("debugging_sigmoid_factor", float(sigmoid_factor.mean()), display=False)
glue("debugging_tanh_factor", float(1 / tanh_factor.mean()), display=False)
glue("debugging_relu_factor_min", float(relu_factor.min()), display=False)
glue("debugging_relu_factor_max", float(relu_factor.max()), display=False)
glue("debugging_relu_spread_min", float(relu_spread.min()), display=False)
glue("debugging_relu_spread_max", float(relu_spread.max()), display=False)

# %% [markdown]
# In every seed the sigmoid chain's gradient grows steeply towards the output, by a factor of
# {glue:text}`debugging_sigmoid_factor:.1f` per layer on average over the seeds, so the first layer's
# gradient is many orders of magnitude smaller than the last one's: those weights will barely move. The
# tanh chain does the opposite in every seed: going down towards the input its gradient grows, by a
# factor of {glue:text}`debugging_tanh_factor:.1f` per layer on average. The He-initialized ReLU chain has no trend (fitted
# factors between {glue:text}`debugging_relu_factor_min:.2f` and
# {glue:text}`debugging_relu_factor_max:.2f`), but its sixteen norms still scatter by a factor of
# {glue:text}`debugging_relu_spread_min:.1f` to {glue:text}`debugging_relu_spread_max:.1f` within one
# network: He initialization keeps the *expected* squared signal constant from layer to layer, and at
# width 32 each layer's random weights still multiply it by a random factor of their own.

# %%
assert (sigmoid_norms[:, 0] / sigmoid_norms[:, -1] < 1e-6).all()
assert (sigmoid_factor > 3.5).all()
assert (tanh_factor < 0.85).all() and (tanh_norms[:, 1] / tanh_norms[:, -1] > 10).all()
assert (np.abs(np.log(relu_factor)) < np.log(1.15)).all()
assert relu_spread.min() > 2

# %% mystnb={"figure": {"caption": "Norm of the gradient with respect to each hidden layer's kernel in three 16-layer networks, at initialization and on the same batch, for five seeds each (thin lines; thick line = geometric mean). Depth multiplies one factor per layer, so on a log scale the sigmoid chain falls and the tanh chain with large weights rises roughly along straight lines towards the input; ReLU with He initialization stays level on average.", "name": "fig-debugging-layer-norms"}}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
layer_numbers = np.arange(1, DEPTH + 1)
for i, (label, norms) in enumerate(chain_norms.items()):
    ax.semilogy(layer_numbers, norms.T, color=f"C{i}", lw=0.6, alpha=0.6)
    geometric_mean = np.exp(np.log(norms).mean(axis=0))
    ax.semilogy(
        layer_numbers, geometric_mean, "os^"[i] + "-", color=f"C{i}", ms=4, label=label
    )
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
# keeping the descent direction. We take the gradients of an exploding network: ReLU with weights 1.3
# times the He scale. ReLU is positively homogeneous ($\max(0, sa) = s\max(0, a)$ for $s > 0$) and the
# biases start at zero, so each layer multiplies the forward signal by exactly 1.3 relative to the He
# network with the same seed (whose signal stays level on average); it is the signal's *variance* that
# gains the factor $1.3^2$ per layer. We check that on the hidden activations of both networks.

# %%
EXPLODING_GAIN = 1.3 * np.sqrt(2.0)
exploding_chain = make_chain("relu", EXPLODING_GAIN)
he_chain = make_chain("relu", np.sqrt(2.0))


def hidden_rms(model):
    """Root mean square of each hidden layer's output on x_chain."""
    h, rms = x_chain, []
    for layer in model.layers[:DEPTH]:
        h = layer(h)
        rms.append(float(tf.sqrt(tf.reduce_mean(h**2))))
    return np.array(rms)


signal_ratio = hidden_rms(exploding_chain) / hidden_rms(he_chain)
per_layer = signal_ratio[1:] / signal_ratio[:-1]
print("signal ratio per layer:", np.unique(np.round(per_layer, 5)))
print(f"after {DEPTH} layers: {signal_ratio[-1]:.2f} = 1.3^{DEPTH} = {1.3**DEPTH:.2f}")
print(f"variance factor per layer 1.3^2 = {1.3**2:.2f}")
assert np.allclose(per_layer, 1.3, rtol=1e-5)
assert np.isclose(signal_ratio[-1], 1.3**DEPTH, rtol=1e-4)

# %% [markdown]
# Now the gradients of the exploding network, clipped by the three rules by hand and with TensorFlow.

# %%
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
# each against the hand-clipped update $\theta - \alpha\, \tilde g$: they agree to float32 rounding.

# %%
LEARNING_RATE = 0.01


def one_keras_step(**clip):
    # same seed: same initial weights as exploding_chain
    model = make_chain("relu", EXPLODING_GAIN)
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
    expected = [
        b - LEARNING_RATE * g for b, g in zip(before, hand_clipped, strict=True)
    ]
    # relative to the largest entry of each variable: the scale of float32 rounding
    worst = max(
        np.abs(a - e).max() / np.abs(e).max()
        for a, e in zip(after, expected, strict=True)
    )
    print(f"{option:16s} max relative |Keras step - hand step| = {worst:.1e}")
    assert worst < 1e-6

# %% [markdown]
# (sec-debugging-overflowing-norm)=
# ### When the norm itself overflows
#
# The global rule divides by $G$, and $G$ is computed from the squares of the entries. In float32 a
# square overflows to $\infty$ once an entry exceeds about $1.8 \times 10^{19}$, so a gradient whose
# entries are all finite can have an infinite global norm. Both `tf.clip_by_global_norm` and Keras'
# `global_clipnorm` then return NaN for *every* entry, on purpose: their source adds `norm - norm` to
# the scale factor, which is 0 for a finite norm and $\infty - \infty = $ NaN otherwise, so that a
# non-finite norm cannot pass unnoticed. One such step writes NaN into every weight.

# %%
print(f"sqrt(largest float32) = {np.sqrt(np.finfo(np.float32).max):.1e}")
overflowing = [tf.constant([[3e19, 0.0], [1.0, 1.0]])]
clipped_overflow, overflow_norm = tf.clip_by_global_norm(overflowing, CLIP)
print("global norm:", float(overflow_norm))
print("clip_by_global_norm:", clipped_overflow[0].numpy().tolist())
weights_global = tf.Variable(tf.ones((2, 2)))
weights_per_variable = tf.Variable(tf.ones((2, 2)))
keras.optimizers.SGD(LEARNING_RATE, global_clipnorm=CLIP).apply_gradients(
    zip(overflowing, [weights_global], strict=True)
)
keras.optimizers.SGD(LEARNING_RATE, clipnorm=CLIP).apply_gradients(
    zip(overflowing, [weights_per_variable], strict=True)
)
print("weights after a global_clipnorm step:", weights_global.numpy().tolist())
print("weights after a clipnorm step:       ", weights_per_variable.numpy().tolist())
assert np.isinf(float(overflow_norm)) and np.isnan(clipped_overflow[0].numpy()).all()
assert np.isnan(weights_global.numpy()).all()
assert np.array_equal(weights_per_variable.numpy(), np.ones((2, 2)))


# %% [markdown]
# `clipnorm`, computed per variable, fails differently: $c/\infty = 0$ scales the whole variable's
# gradient to zero, and the step silently does nothing. The guard is to look at the norm before using
# it and to skip the step when it is not finite, which is what Keras' `LossScaleOptimizer` does for
# float16 training. In eager code a Python `if` does it; inside a `tf.function` AutoGraph turns the
# same `if` on a tensor into a `tf.cond`.


# %%
def guarded_step(optimizer, grads, variables):
    """Apply the step only if the global gradient norm is finite; returns whether."""
    finite = tf.math.is_finite(tf.linalg.global_norm(grads))
    if finite:
        optimizer.apply_gradients(zip(grads, variables, strict=True))
    return finite


guarded = tf.Variable(tf.ones((2, 2)))
guard_optimizer = keras.optimizers.SGD(LEARNING_RATE, global_clipnorm=CLIP)
applied_overflow = bool(guarded_step(guard_optimizer, overflowing, [guarded]))
applied_normal = bool(guarded_step(guard_optimizer, [tf.ones((2, 2))], [guarded]))
print(
    "overflowing gradient applied?", applied_overflow, "| a normal one?", applied_normal
)
print("weights:", guarded.numpy().tolist())
assert not applied_overflow and applied_normal
assert np.allclose(guarded.numpy(), 1 - LEARNING_RATE * 0.5)

# %% [markdown]
# The skipped step left the weights alone; the next one, with a gradient of norm 2 clipped to norm 1,
# moved every weight by $\alpha/2$.
#
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
# without clipping the first update is so large that the loss overflows within a step or two. With
# any of the three clipping rules training goes on. For comparison we also train the well-initialized He
# chain without clipping. Each setting runs from three seeds; one model and one optimizer per setting
# serve all three (`reset_chain` re-draws the weights; plain SGD keeps no state that would carry over),
# so the training step is traced once per setting.

# %%
TRAIN_STEPS = 100
TRAIN_SEEDS = [1, 2, 3]


def train_chain(gain, seeds=TRAIN_SEEDS, **clip):
    """Full-batch SGD from each seed; returns losses and (unclipped) global gradient
    norms, both of shape [seeds, steps]."""
    model = make_chain("relu", gain)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, **clip)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = mse(model)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, tf.linalg.global_norm(grads)

    histories = []
    for seed in seeds:
        reset_chain(model, gain, seed)
        histories.append([[float(v) for v in step()] for _ in range(TRAIN_STEPS)])
    histories = np.array(histories)
    return histories[..., 0], histories[..., 1]


runs = {
    "He init, no clipping": train_chain(np.sqrt(2.0)),
    "exploding, no clipping": train_chain(EXPLODING_GAIN),
    "exploding, clipvalue=1": train_chain(EXPLODING_GAIN, clipvalue=CLIP),
    "exploding, clipnorm=1": train_chain(EXPLODING_GAIN, clipnorm=CLIP),
    "exploding, global_clipnorm=1": train_chain(EXPLODING_GAIN, global_clipnorm=CLIP),
}
for name, (losses, _) in runs.items():
    print(f"{name:30s} final loss {np.round(losses[:, -1], 3)}")

# %% [markdown]
# In every seed the unclipped exploding run turns non-finite within two steps, and every clipped run
# stays finite and ends more than ten times below its initial loss. On average over the seeds, however,
# none of them reaches the loss of the well-initialized network in the same number of steps: clipping
# is a guard rail, not a cure. The cure is the initialization of {numref}`fig-debugging-layer-norms`.

# %%
first_non_finite = [
    int(np.flatnonzero(~np.isfinite(losses))[0])
    for losses in runs["exploding, no clipping"][0]
]
he_final = runs["He init, no clipping"][0][:, -1]
print("first non-finite step per seed:", first_non_finite)
print(f"{'He init, no clipping':30s} mean final loss {he_final.mean():.3f}")
clipped = [
    "exploding, clipvalue=1",
    "exploding, clipnorm=1",
    "exploding, global_clipnorm=1",
]
for name in clipped:
    losses = runs[name][0]
    print(
        f"{name:30s} mean final loss {losses[:, -1].mean():.3f} ± "
        f"{losses[:, -1].std(ddof=1):.3f}; initial {np.round(losses[:, 0], 1)}"
    )
    assert np.isfinite(losses).all()
    assert (losses[:, -1] < losses[:, 0] / 10).all()
    assert losses[:, -1].mean() > he_final.mean()
assert max(first_non_finite) <= 2

# %% [markdown]
# Of the three rules, clipping by value comes closest here, and the first clipped gradients (of
# seed 1) suggest why. With $c = 1$ it sets every entry larger than 1 in magnitude to $\pm 1$, and
# many entries are: the clipped gradient's norm grows with the number of such entries, while the
# global rule's has norm $c$ at most and the per-variable rule's at most $c$ per variable. With the
# same learning rate, clipping by value simply takes the longest steps.

# %%
flat_grads = flatten(exploding_grads)
share_clipped = np.mean(np.abs(flat_grads) > CLIP)
clipped_norms = {
    "by value": np.linalg.norm(flatten(by_value_hand)),
    "by norm": np.linalg.norm(flatten(by_norm_hand)),
    "by global norm": np.linalg.norm(flatten(by_global_hand)),
}
print(f"{share_clipped:.0%} of {flat_grads.size} entries exceed {CLIP} in magnitude")
for name, value in clipped_norms.items():
    print(f"norm of the gradient clipped {name}: {value:.2f}")
mean_final = {name: runs[name][0][:, -1].mean() for name in clipped}
assert min(mean_final, key=mean_final.get) == "exploding, clipvalue=1"
assert (
    clipped_norms["by value"]
    > clipped_norms["by norm"]
    > clipped_norms["by global norm"]
)

# %% mystnb={"figure": {"caption": "Training loss (left) and global gradient norm before clipping (right) of a 16-layer ReLU network (seed 1), full-batch SGD with learning rate 0.01. Without clipping the exploding network's loss is non-finite from the second step on (only its first point is drawn); clipping by value, by norm or by global norm keeps training alive, but the well-initialized network (He) ends lower than any of them.", "name": "fig-debugging-clip-training"}}
fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, (all_losses, all_grad_norms) in runs.items():
    losses, grad_norms = all_losses[0], all_grad_norms[0]
    style = "k--" if name.startswith("He") else "-"
    ax_loss.semilogy(np.where(np.isfinite(losses), losses, np.nan), style, label=name)
    ax_norm.semilogy(
        np.where(np.isfinite(grad_norms), grad_norms, np.nan), style, label=name
    )
blow_up = runs["exploding, no clipping"][0][0]
last_finite = np.flatnonzero(np.isfinite(blow_up))[-1]
assert last_finite == 0 and first_non_finite[0] == 1
ax_loss.annotate(
    f"loss {blow_up[last_finite]:.0e} at step {last_finite},\nthen inf/NaN",
    xy=(last_finite, 1e6),
    xytext=(12, 1e5),
    fontsize="small",
    arrowprops={"arrowstyle": "->", "color": "C0"},
)
ax_loss.set_ylim(3e-2, 1e6)
assert all(
    runs[name][0][0, -1] > runs["He init, no clipping"][0][0, -1] for name in clipped
)
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
# gradient entries. We log the gradients of both $w$ and $b$, their global norm and the loss. Every
# log of this chapter goes below one folder, `logs/debugging` in the working directory (for the book's
# notebooks that is `chapters/`), one subfolder per run; it is emptied first, so that a rerun starts
# clean, and kept at the end, for TensorBoard.

# %%
LOGDIR = Path("logs") / "debugging"
shutil.rmtree(LOGDIR, ignore_errors=True)
print("logs go to", LOGDIR.as_posix())

# %% [markdown]
# The TF1 program, fixed:

# %%
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
# The summaries, loss and norm fetched together with `train_op` come from the weights *before* this
# step's update. That is not a promise of `sess.run` in general: one call runs the ops it needs in any
# order their dependencies allow. It holds here because of the dependencies. The loss and the gradient
# use the same reads of `w` and `b` (TF1 variables in TF2 are resource variables: one read op, whose
# value every consumer shares), the gradient needs those reads, and the update needs the gradient; so
# the reads run before the update. A value that the update does not depend on, such as a separate read
# of `w` made for a summary of the weight itself, is ordered by nothing and may see the weight before or
# after the update; TF1 code that needs an order says so with `tf.control_dependencies`. The TF2 version
# below, where the order is the order of the Python lines, agrees with the TF1 log.
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
    f"{first_histogram.min:.6g}, max {first_histogram.max:.6g}"
)
assert [s for s, _ in tf1_logged["grad_norm"]] == list(range(LINE_STEPS))
# bit for bit what sess.run returned
assert np.array_equal(tf1_norms, tf1_printed[:, 1])

# %% [markdown]
# ### TF2: the same log
#
# In TF2 the summary functions write immediately to the *default writer*, set with
# `tf.summary.create_file_writer(folder).as_default()`, and every record needs a `step`.
# `tf.summary.scalar` and `tf.summary.histogram` come from the `tensorboard` package (installed with the
# book's requirements; `tensorflow-cpu` alone does not install it, and then they raise
# `TBNotInstalledError`). A histogram is stored as a `[buckets, 3]` tensor of left edge, right edge and
# count: by default 30 equal-width buckets from the minimum to the maximum. Both functions are made of
# TensorFlow ops, so they also work inside a `tf.function`.
#
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
        tf.summary.scalar("loss", loss, step=step)
        tf.summary.scalar("grad_norm", grad_norm, step=step)
        tf.summary.histogram("grads", tf.stack(grads), step=step)
        tf2_printed.append((float(loss), float(grad_norm)))
        w2.assign_sub(LINE_RATE * grads[0])
        b2.assign_sub(LINE_RATE * grads[1])
tf2_printed = np.array(tf2_printed, dtype=np.float32)
print(f"final w: TF1 {tf1_w:.7f}, TF2 {float(w2):.7f}")

# %% [markdown]
# Read back, the TF2 log agrees with the TF1 log step for step, and here bit for bit, as does the
# final weight. That is a property of this small computation on this machine, not a rule: graph and
# eager mode may fuse or order float32 operations differently, and then the last bits differ.

# %%
tf2_logged = read_event_files(LOGDIR)["tf2"]
tf2_norms = np.array([v for _, v in tf2_logged["grad_norm"]])
tf1_losses = np.array([v for _, v in tf1_logged["loss"]], dtype=np.float32)
tf2_losses = np.array([v for _, v in tf2_logged["loss"]])
norm_gap = np.abs(tf2_norms - tf1_norms).max()
loss_gap = np.abs(tf2_losses - tf1_losses).max()
print(
    f"max |TF2 - TF1| of logged gradient norms: {norm_gap}, of logged losses: "
    f"{loss_gap}"
)
print(f"final w: TF2 - TF1 = {float(w2) - tf1_w}")
assert np.array_equal(tf2_norms, tf1_norms) and np.array_equal(tf2_losses, tf1_losses)
assert float(w2) == tf1_w
assert np.array_equal(tf2_losses, tf2_printed[:, 0])
histogram_shape = tf2_logged["grads"][0][1].shape
print("shape of a logged histogram:", histogram_shape)
assert histogram_shape == (30, 3)

# %% [markdown]
# An aside on what these functions write. Both are thin wrappers around the core op
# `tf.summary.write(tag, tensor, step, metadata)`, whose metadata names the TensorBoard plugin that
# displays the record. Written by hand, with the metadata of the scalars plugin, a record is one that
# TensorBoard cannot tell from `tf.summary.scalar`'s. We read both back with `EventAccumulator`, the class
# TensorBoard's own server uses to load a run.

# %%
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

scalar_plugin = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
)
with tf.summary.create_file_writer(str(LOGDIR / "raw")).as_default():
    tf.summary.write("loss", tf.constant(tf2_losses[0]), step=0, metadata=scalar_plugin)


def plugin_of(run, tag):
    events = EventAccumulator(str(LOGDIR / run))
    events.Reload()
    return events.SummaryMetadata(tag).plugin_data.plugin_name


print("plugin of 'loss': tf.summary.scalar:", plugin_of("tf2", "loss"))
print("plugin of 'loss': tf.summary.write: ", plugin_of("raw", "loss"))
assert plugin_of("tf2", "loss") == plugin_of("raw", "loss") == "scalars"

# %% [markdown]
# ### Logging a training run
#
# Logging earns its keep on a real run. We train the exploding ReLU chain once more with
# `global_clipnorm`, and log at every step the loss, the global norm, each layer's kernel-gradient norm
# and histograms of the first and last hidden layer's kernel gradients. The logging happens inside the
# compiled step (one Python call per step instead of twenty eager writes), with the step number passed
# as a tensor so that the function is traced once. We log the raw gradients, before the optimizer clips
# them: what the network produced, not what the optimizer used.
#
# The cell starts with the marker `# @save gdbook.tensorboard_logs`, the mechanism of
# {ref}`ch-optimizers`: `python -m gdbook.export` copies it into the module `gdbook/tensorboard_logs.py`,
# so that the book's test of TensorBoard (`tests/test_tensorboard.py`) writes its logs with exactly this
# code. The second function is the library's way, for a model trained with `fit`, used below.

# %%
# @save gdbook.tensorboard_logs
"""TensorBoard logging of a training run, exported from the section "Logging gradients"
(chapters/08_debugging.md) by `python -m gdbook.export`."""

import keras
import numpy as np
import tensorflow as tf


def train_and_log(logdir, model, x, y, optimizer, steps, histograms=()):
    """Full-batch training on the mean squared error. Logs at every step the loss, the
    global gradient norm, the gradient norm of every layer's kernel and histograms of
    the kernel gradients of the layers named in `histograms`; returns the losses."""
    variables = model.trainable_variables
    kernels = {
        layer.name: next(i for i, v in enumerate(variables) if v is layer.kernel)
        for layer in model.layers
    }
    writer = tf.summary.create_file_writer(str(logdir))

    @tf.function
    def step(number):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, variables)
        with writer.as_default(step=number):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("grad_norm/global", tf.linalg.global_norm(grads))
            for name, index in kernels.items():
                tf.summary.scalar(f"grad_norm/{name}", tf.norm(grads[index]))
                if name in histograms:
                    tf.summary.histogram(f"grads/{name}", grads[index])
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    losses = np.array([float(step(tf.constant(i, tf.int64))) for i in range(steps)])
    writer.close()
    return losses


def fit_and_log(logdir, model, x, y, epochs, **fit_args):
    """`model.fit` with Keras' TensorBoard callback: epoch losses and weight
    histograms, every epoch."""
    callback = keras.callbacks.TensorBoard(str(logdir), histogram_freq=1)
    return model.fit(x, y, epochs=epochs, callbacks=[callback], verbose=0, **fit_args)


# %% [markdown]
# The chain's layers are named `layer01` to `layer16` and `output`, so the tags are `grad_norm/layer01`
# and so on.

# %%
logged_run_losses = train_and_log(
    LOGDIR / "chain_global_clipnorm",
    make_chain("relu", EXPLODING_GAIN),
    x_chain,
    y_chain,
    keras.optimizers.SGD(LEARNING_RATE, global_clipnorm=CLIP),
    TRAIN_STEPS,
    histograms=("layer01", f"layer{DEPTH:02d}"),
)
chain_log = read_event_files(LOGDIR)["chain_global_clipnorm"]
print(len(chain_log), "tags, e.g.", sorted(chain_log)[:4])
assert sorted(chain_log) == sorted(
    ["loss", "grad_norm/global", "grad_norm/output", "grads/layer01", "grads/layer16"]
    + [f"grad_norm/layer{n:02d}" for n in range(1, DEPTH + 1)]
)

# %% [markdown]
# The logged losses must be the losses the step function returned, and also those of the training run of
# the previous section with the same settings: same seed, same data, same optimizer (the summary ops do
# not change the arithmetic).

# %%
logged_losses = np.array([v for _, v in chain_log["loss"]])
earlier_losses = runs["exploding, global_clipnorm=1"][0][0]
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
assert np.array_equal(logged_losses, earlier_losses.astype(np.float32))

# %% [markdown]
# TensorBoard's *Distributions* dashboard does not draw histograms; it draws percentile bands over the
# steps. Its bands are the normal distribution's percentiles at 0, ±0.5, ±1 and ±1.5 standard
# deviations (6.68, 15.87, 30.85, 50, 69.15, 84.13 and 93.32), plus the minimum and the maximum. We
# compute them from the normal distribution function
# $\Phi(k) = \tfrac12\left(1 + \operatorname{erf}(k/\sqrt2)\right)$.

# %%
from math import erf, sqrt

normal_percentiles = [100 * 0.5 * (1 + erf(k / 2 / sqrt(2))) for k in range(-3, 4)]
BAND_PERCENTILES = np.array([0, *np.round(normal_percentiles, 2), 100])
print(BAND_PERCENTILES)
assert list(BAND_PERCENTILES[1:-1]) == [6.68, 15.87, 30.85, 50, 69.15, 84.13, 93.32]


# %% [markdown]
# Percentiles can be recovered from the logged bucket table by interpolating its cumulative counts,
# assuming the entries spread uniformly within a bucket. The error of that is at most one bucket's
# width. We check it on the first logged table: at step 0 the network is the freshly built exploding
# chain, so the logged gradient is the `exploding_grads` entry of the last hidden kernel, whose exact
# percentiles NumPy can compute.


# %%
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
exact_step0 = np.percentile(exploding_grads[2 * (DEPTH - 1)].numpy(), BAND_PERCENTILES)
bucket_width = first[0, 1] - first[0, 0]
band_error = np.abs(bands[0] - exact_step0).max()
print(f"step 0: {first[:, 2].sum():.0f} entries, median {bands[0, 4]:.4g}")
print(f"largest band error {band_error:.3g}, one bucket {bucket_width:.3g}")
assert band_error <= bucket_width

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
# ### Logging from `fit`
#
# A model trained with `fit` needs no loop of our own: Keras' `TensorBoard` callback writes the epoch's
# loss (and metrics) and, with `histogram_freq=1`, a histogram of every weight at the end of every epoch.
# Histograms of the *weights*, not of the gradients: the callback has no option for gradients (TF1's
# Keras had `write_grads`, TF2's ignored it, and Keras 3 no longer accepts it), which is why a custom loop like `train_and_log` is still worth having. We fit a
# small ReLU network (three hidden layers of 32) to the chain's data, full batch, with the
# `fit_and_log` function of the cell above; the callback puts the training logs in a subfolder `train`.

# %%
FIT_EPOCHS = 5
fit_model = keras.Sequential(
    [keras.Input((1,))]
    + [
        keras.layers.Dense(
            WIDTH,
            "relu",
            kernel_initializer=keras.initializers.HeNormal(seed=n),
            name=f"hidden{n}",
        )
        for n in range(1, 4)
    ]
    + [
        keras.layers.Dense(
            1, kernel_initializer=keras.initializers.HeNormal(seed=4), name="output"
        )
    ],
    name="fit_demo",
)
fit_model.compile(keras.optimizers.SGD(LEARNING_RATE), loss="mse")
fit_history = fit_and_log(
    LOGDIR / "fit", fit_model, x_chain, y_chain, FIT_EPOCHS, batch_size=len(x_chain)
)
fit_events = EventAccumulator(
    str(LOGDIR / "fit" / "train"), size_guidance={"tensors": 0}
)
fit_events.Reload()
fit_tags = fit_events.Tags()["tensors"]
print(len(fit_tags), "tags:", fit_tags[:4], "...")


# %% [markdown]
# The tags read back are the epoch loss, the learning rate, one histogram per kernel and bias, and
# `keras`, the model's description for the *Graphs* dashboard. The logged losses are the losses
# `fit` returned in its history, and each histogram holds every entry of its weight.


# %%
def fit_series(tag):
    return [tf.make_ndarray(event.tensor_proto) for event in fit_events.Tensors(tag)]


weight_tags = [tag for tag in fit_tags if tag.endswith("/histogram")]
logged_fit_losses = np.array(fit_series("epoch_loss"))
last_kernel = fit_model.layers[-2].kernel
last_kernel_tag = f"fit_demo/{fit_model.layers[-2].name}/kernel/histogram"
print(
    "weight histograms:",
    len(weight_tags),
    "| epoch losses:",
    logged_fit_losses.round(4),
)
assert sorted(weight_tags) == sorted(
    f"fit_demo/{layer.name}/{weight}/histogram"
    for layer in fit_model.layers
    for weight in ["kernel", "bias"]
)
assert {"epoch_loss", "epoch_learning_rate", "keras"} <= set(fit_tags)
assert "write_grads" not in inspect.signature(keras.callbacks.TensorBoard).parameters
assert np.array_equal(logged_fit_losses, np.float32(fit_history.history["loss"]))
last_tables = fit_series(last_kernel_tag)
assert len(last_tables) == FIT_EPOCHS
assert all(table[:, 2].sum() == np.prod(last_kernel.shape) for table in last_tables)

# %% [markdown]
# ### Opening the logs in TensorBoard
#
# The event files are ordinary files; TensorBoard reads any folder of them, one run per subfolder. In
# the folder where this chapter ran (for the book's notebooks, `chapters/`):
#
# - from a shell: `tensorboard --logdir logs/debugging`, then open `http://localhost:6006`;
# - inside Jupyter: `%load_ext tensorboard` and then `%tensorboard --logdir logs/debugging`.
#
# The *Scalars* dashboard shows `loss` and `grad_norm` (runs `tf1` and `tf2` side by side: the same
# curves), the chain's `grad_norm/global` and the seventeen `grad_norm/...` curves of its layers, and
# `epoch_loss` of the run `fit/train`; the *Histograms* and *Distributions* dashboards show
# `grads/layer01` and `grads/layer16` and the weights of the `fit` run. The book's test
# `tests/test_tensorboard.py` does exactly this: it writes logs with `gdbook.tensorboard_logs`, starts
# TensorBoard on them, opens both dashboards in a headless browser and checks that the run's tags are
# shown without errors.
#
# ## Summary
#
# - Check gradients with central differences {eq}`eq-debugging-central` in **float64**, with a step near
#   $\varepsilon^{1/3}$ ({eq}`eq-debugging-step-error`, {numref}`fig-debugging-step-size`), and judge
#   them by the relative error {eq}`eq-debugging-relerr`: below $10^{-7}$ is right, above $10^{-2}$ is a
#   bug. Give the relative error a floor tied to the finite-difference noise $\varepsilon\lvert L\rvert/h$,
#   or a correct parameter with a tiny gradient looks wrong; a norm-wise error per variable is a robust
#   second opinion. Checking every variable separately tells you *where* the bug is: the wrong
#   `tf.custom_gradient` failed only in the layer below it. `tf.test.compute_gradient` is the library
#   version of the same formula. For a large network, check the derivative along a few random
#   directions (two forward passes each), away from kinks.
# - NaN and Inf come from a few places: log of an underflowed 0 (in TensorFlow already at a logit gap of
#   about {glue:text}`debugging_zero_gap_tf:.0f`, because its CPU kernels flush subnormals to zero),
#   `exp` overflow, $0/0$ from a vanishing norm, and $0 \cdot \infty$ in the backward pass even behind a
#   `tf.where` guard. Use the fused or shifted forms (`softmax_cross_entropy_with_logits`,
#   `tf.nn.softmax`, `tf.nn.softplus`) and the two-`where` pattern. `tf.debugging.check_numerics` tests
#   one tensor; `tf.debugging.enable_check_numerics` finds the first op that produced a non-finite
#   value, and must be switched off again. In training, the usual cause is too large a learning rate;
#   `keras.callbacks.TerminateOnNaN` stops such a run, and `LossScaleOptimizer` guards float16 steps.
# - In a deep chain the gradient is a product of one factor per layer {eq}`eq-debugging-backprop`, so
#   it vanishes or explodes geometrically ({numref}`fig-debugging-layer-norms`); measure such claims
#   over several seeds, and give every layer its own initializer (one Keras initializer instance draws
#   the same values for every layer). Clipping {eq}`eq-debugging-clipping` by value bends the direction,
#   by norm rescales each variable, by global norm rescales everything; Keras' `clipvalue`, `clipnorm`
#   (per variable!) and `global_clipnorm` match the hand-written rules. A gradient whose global norm
#   overflows is turned into NaN by the global rule: skip such steps. Clipping keeps an exploding
#   network trainable but is no substitute for a good initialization
#   ({numref}`fig-debugging-clip-training`).
# - Log gradient norms and histograms: TF1 with `tf.compat.v1.summary` ops, `merge_all` and a
#   `FileWriter`; TF2 with a default writer and `tf.summary.scalar` / `tf.summary.histogram`, also
#   inside a `tf.function` (both wrap `tf.summary.write` with plugin metadata). With `fit`, Keras'
#   `TensorBoard(histogram_freq=1)` callback logs losses and *weight* histograms per epoch; gradients
#   need a custom loop. Event files can be read back with `summary_iterator` or TensorBoard's
#   `EventAccumulator` and plotted anywhere ({numref}`fig-debugging-logged`), or viewed with
#   `tensorboard --logdir`.
#
# ## Exercises
#
# ```{exercise}
# :label: ex-debugging-forward
# Replace the central difference in `central_difference_errors` by the forward difference
# $(f(x+h) - f(x))/h$. Predict the best step and the best relative error in float64 before you run it,
# using the same reasoning as {eq}`eq-debugging-step-error`. Then let `gdbook.check` judge your
# forward difference as a derivative at your predicted step `h` and at `1e-5`: with
# `from gdbook import check`,
# `check.gradient(lambda x: tf.reduce_sum(f_test(x)), lambda x: (f_test(x + h) - f_test(x)) / h, x_points)`.
# ```
#
# ```{solution-start} ex-debugging-forward
# :class: dropdown
# ```
#
# The truncation error is now first order, $\tfrac{h}{2}\lvert f''\rvert$, and the rounding error is
# still about $\varepsilon\lvert f\rvert/h$. Balancing the two gives $h^\star =
# \sqrt{2\varepsilon\lvert f\rvert/\lvert f''\rvert}$, of the order of $\sqrt{\varepsilon}$, and a best
# error $E(h^\star) = 2\varepsilon\lvert f\rvert/h^\star$ of the same order. With
# $f''(x) = 2e^x\cos x$:

# %%
x_tensor = tf.constant(x_points, tf.float64)
forward_errors = []
for h in steps:
    h_t = tf.constant(h, tf.float64)
    estimates = ((f_test(x_tensor + h_t) - f_test(x_tensor)) / h_t).numpy()
    forward_errors.append(
        np.median(np.abs(estimates - exact_derivatives) / np.abs(exact_derivatives))
    )
forward_errors = np.array(forward_errors)
eps64 = np.finfo(np.float64).eps
second_derivative = 2 * np.exp(x0) * np.cos(x0)
h_forward = np.sqrt(2 * eps64 * abs(f_value) / abs(second_derivative))
error_forward = 2 * eps64 * abs(f_value) / h_forward / abs(f_prime)
worse = forward_errors.min() / errors64.min()
print(
    f"best h: predicted {h_forward:.1e}, measured {steps[forward_errors.argmin()]:.1e}"
)
print(f"best error: predicted {error_forward:.1e}, measured {forward_errors.min():.1e}")
print(f"{worse:.0f} times the central difference's best error")
assert 0.1 < steps[forward_errors.argmin()] / h_forward < 10
assert 0.1 < forward_errors.min() / error_forward < 1
assert round(np.log10(worse)) == 3

# %% [markdown]
# Three orders of magnitude worse than the central difference, and too close to the $10^{-7}$ threshold
# to be a reliable check. `gdbook.check` accepts the forward difference at the predicted step, and
# rejects it at $h = 10^{-5}$, a good step for the central difference:

# %%
from gdbook import check


def forward_difference(x, h):
    return (f_test(x + h) - f_test(x)) / h


def summed_f_test(x):
    return tf.reduce_sum(f_test(x))


check.gradient(summed_f_test, lambda x: forward_difference(x, h_forward), x_points)
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(summed_f_test, lambda x: forward_difference(x, 1e-5), x_points)
# expect_error printed the first line of the message; the rest:
print(caught.message.partition("\n")[2])
assert "between 1e-7 and 1e-4" in caught.message

# %% [markdown]
# The forward difference is good enough only at its own best step, which depends on $f$; this is
# why gradient checks use central differences despite the second loss evaluation.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-debugging-kink
# Run `gradient_check` on the MLP with `activation="relu"` instead of softplus. Usually every relative
# error is tiny. Construct an input batch or a hidden bias for which the check reports a large error
# although TensorFlow's ReLU gradient is correct, and explain what happened. `gdbook.check` tells you
# whether your construction works: write the loss as a function of the hidden bias, `relu_loss(bias)`,
# and its gradient by the tape, `relu_tape_gradient(bias)`. With `from gdbook import check`,
# `check.gradient(relu_loss, relu_tape_gradient, bias)` passes at the bias as built, and at a bias that
# puts a unit on the kink it fails and says that the tape and central differences disagree.
# ```
#
# ```{solution-start} ex-debugging-kink
# :class: dropdown
# ```
#
# Put a hidden pre-activation exactly on the kink: shift the bias of hidden unit 0 so that its
# pre-activation on the first example is 0. Then $L(\theta + h e_i)$ and $L(\theta - h e_i)$ are
# evaluated on *different sides* of the kink, and the central difference averages the two one-sided
# slopes, while the analytic gradient uses one side (TensorFlow takes $\operatorname{ReLU}'(0) = 0$).

# %%
relu_mlp = make_mlp(tf.nn.relu)
print("ReLU MLP as built:")
report_relu = gradient_check(lambda: mlp_loss(relu_mlp), relu_mlp.trainable_variables)
print_report(report_relu)
hidden_layer = relu_mlp.get_layer("hidden")
pre_activation = x_check[0] @ hidden_layer.kernel.numpy() + hidden_layer.bias.numpy()
hidden_layer.bias.assign(hidden_layer.bias.numpy() - np.eye(5)[0] * pre_activation[0])
print("unit 0 on the kink for example 0:")
report_kink = gradient_check(lambda: mlp_loss(relu_mlp), relu_mlp.trainable_variables)
print_report(report_kink)
assert all(verdict(e) == "right" for e, _ in report_relu.values())
assert verdict(report_kink["hidden/bias"][0]) == "wrong"
assert all(verdict(report_kink[name][0]) == "right" for name in output)

# %% [markdown]
# `gdbook.check` sees the same: as a function of the hidden bias, the loss passes the check at the bias
# as built, and fails at the shifted one, where the tape and central differences disagree with each
# other.

# %%
from gdbook import check

output_layer = relu_mlp.get_layer("output")
built_bias = hidden_layer.bias.numpy() + np.eye(5)[0] * pre_activation[0]


def relu_loss(bias):
    hidden = tf.nn.relu(tf.matmul(x_check, hidden_layer.kernel) + bias)
    logits = output_layer(hidden)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(y_check, logits)
    return tf.reduce_mean(losses)


def relu_tape_gradient(bias):
    with tf.GradientTape() as tape:
        tape.watch(bias)
        loss = relu_loss(bias)
    return tape.gradient(loss, bias)


check.gradient(relu_loss, relu_tape_gradient, built_bias)
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(relu_loss, relu_tape_gradient, hidden_layer.bias.numpy())
# expect_error printed the first line of the message; the rest:
print(caught.message.partition("\n")[2])
assert "wrong at coordinate [0]" in caught.message
assert "relative error against the tape: 0.00e+00" in caught.message
assert "disagree with each other here too" in caught.message


# %% [markdown]
# The headline blames "your gradient", but here your gradient *is* the tape's, so its relative error
# against the tape is 0, as expected: the culprit is the central difference, whose two evaluations
# straddle the kink, and the last line says so.
#
# The parameters that feed the unit on the kink fail, although nothing is wrong with the gradient; the
# output layer passes. This is why the thresholds table allows larger errors for non-smooth functions,
# and why checks are best run on inputs that keep pre-activations away from kinks (or with a smooth
# stand-in for the activation).
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-debugging-where
# Explain, in terms of the chain rule, why the gradient of `normalize_one_where` at 0 is NaN. Then
# define the cheaper rewrite `normalize_epsilon(x)` as `x / tf.sqrt(tf.reduce_sum(x * x) + 1e-12)`,
# derive by hand the gradient of `tf.reduce_sum(normalize_epsilon(x))`, write it as a function
# `my_gradient(x)`, and check it at 0 and near it: with `from gdbook import check`,
# `check.gradient(lambda x: tf.reduce_sum(normalize_epsilon(x)), my_gradient, [0.0, 0.0], h=1e-9)`,
# and the same call at `[3e-7, -4e-7]`. Why is the check at 0 alone not enough? Why does the check need
# a step `h` much smaller than its default? And how does the rewrite change the *value* near 0?
# ```
#
# ```{solution-start} ex-debugging-where
# :class: dropdown
# ```
#
# `tf.where(c, a, b)` back-propagates the upstream gradient to `a` masked by `c` and to `b` masked by
# `not c`. At $x = 0$ the mask for `a = x / norm` is 0, but the gradient of `a` with respect to `norm`
# is $-x/\text{norm}^2 = 0/0 = $ NaN and the gradient of `norm` with respect to $x$ is $x/\text{norm} =
# 0/0 = $ NaN; $0 \cdot \text{NaN}$ is NaN, and it is added to the gradient of $x$. With the $\epsilon$
# inside the square root nothing is ever divided by zero: the gradient at 0 is $1/\sqrt{\epsilon}$ per
# entry (like `tf.math.l2_normalize`), finite. The value is no longer exactly a unit vector: for
# $\lVert x\rVert = \sqrt{\epsilon}$ the result has norm $1/\sqrt 2$, and it tends to 0 (not to an
# undefined direction) as $x \to 0$.


# %%
def normalize_epsilon(x):
    return x / tf.sqrt(tf.reduce_sum(x * x) + 1e-12)


_, epsilon_grad = gradient_at_zero(normalize_epsilon)
at_sqrt_eps = float(tf.norm(normalize_epsilon(tf.constant([1e-6, 0.0]))))
print(
    "gradient at 0:",
    epsilon_grad,
    f"| norm of the value at |x| = 1e-6: {at_sqrt_eps:.4f}",
)
assert np.allclose(epsilon_grad, 1 / np.sqrt(1e-12), rtol=1e-6)
assert abs(at_sqrt_eps - 1 / np.sqrt(2)) < 1e-6

# %% [markdown]
# By the quotient rule, with $s = \lVert x\rVert^2 + \epsilon$, the gradient of
# $\sum_j x_j / \sqrt s$ is $1/\sqrt s - (\sum_j x_j)\, x / s^{3/2}$: $1/\sqrt\epsilon$ per entry at 0.
# It passes the check at 0 and near it. At 0 alone the check proves little: the second term vanishes
# there, so every derivation with the right first term passes, whatever it does to the second.
# At `[3e-7, -4e-7]`, within $\sqrt\epsilon$ of 0, the second term is a few per cent of the first (the
# cell prints the ratio), far above the check's tolerance, and the check catches a derivation that
# forgets it, flips its sign or halves it; the message adds that the central difference agrees with the
# tape there, so the step is not at fault. The function bends on the scale $\sqrt\epsilon$, so a
# central difference is accurate only with a step well below it; with the default step, wider than
# $\sqrt\epsilon$, the central difference averages over the bend and disagrees with the tape, and the
# message asks for a smaller step.

# %%
from gdbook import check


def summed_normalize_epsilon(x):
    return tf.reduce_sum(normalize_epsilon(x))


def gradient_with_second_term(factor):
    """The gradient above with its second term times `factor` (1 is right)."""

    def gradient(x):
        x = np.asarray(x)
        s = np.sum(x * x) + 1e-12
        return 1 / np.sqrt(s) - factor * np.sum(x) * x / s**1.5

    return gradient


my_gradient = gradient_with_second_term(1.0)
near_zero = np.array([3e-7, -4e-7])
s_near = np.sum(near_zero**2) + 1e-12
second_over_first = abs(np.sum(near_zero) * near_zero[1]) / s_near
print(f"sqrt(epsilon) = {np.sqrt(1e-12):.0e}; at {near_zero}, second term / first term")
print(f"  = {second_over_first:.3f} (coordinate 1)")
assert 0.01 < second_over_first < 0.1
check.gradient(summed_normalize_epsilon, my_gradient, [0.0, 0.0], h=1e-9)
check.gradient(summed_normalize_epsilon, my_gradient, near_zero, h=1e-9)

# %% [markdown]
# Three wrong derivations (no second term, the opposite sign, half of it) pass at 0 and are caught near
# it; at 0 with the default step even the right one fails, on the step:

# %%
for factor in (0.0, -1.0, 0.5):
    wrong = gradient_with_second_term(factor)
    check.gradient(summed_normalize_epsilon, wrong, [0.0, 0.0], h=1e-9)
    with gdbook.expect_error(AssertionError, reraise=False) as caught:
        check.gradient(summed_normalize_epsilon, wrong, near_zero, h=1e-9)
    assert "almost certainly wrong" in caught.message
    assert "the step is not at fault" in caught.message
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(summed_normalize_epsilon, my_gradient, [0.0, 0.0])
# expect_error printed the first line of the message; the rest:
print(caught.message.partition("\n")[2])
assert "f bends within the step" in caught.message
assert "disagree with each other here too: the step" in caught.message
assert "Try a smaller h" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-debugging-update-ratio
# Gradient norms alone do not say whether a step is large *for the weights it changes*. Write SGD with
# clipping by global norm as a small optimizer class, `GlobalClipSGD(learning_rate, global_clipnorm)`,
# whose `apply_gradients(grads_and_vars)` rescales all the gradients by $c/\max(G, c)$
# {eq}`eq-debugging-clipping` and takes the step,
# and check it against Keras' own with `from gdbook import check`:
# `check.optimizer(lambda: GlobalClipSGD(0.1, 0.05), lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05))`,
# and the same with `10.0` for `0.05` (a clip norm that does not act).
# Then compute, for every hidden layer, the ratio $\lVert \Delta W_\ell\rVert / \lVert W_\ell\rVert$ of
# the first update to the weights: for the exploding chain with plain SGD and with your `GlobalClipSGD`
# at $c = 1$, and for the He chain with plain SGD. (To log it during training, keep a copy of each kernel
# before the step in `train_and_log` and log the ratio under `update_ratio/layerNN`.) What do you
# expect?
# ```
#
# ```{solution-start} ex-debugging-update-ratio
# :class: dropdown
# ```
#
# The global norm $G$ is the norm of all the gradients stacked into one vector; the rescaled gradients
# are those of the last line of {eq}`eq-debugging-clipping`. The class passes the check; without the
# clipping (a clip norm too large to act) the check catches the difference from the first step. The
# check's test problem has gradients whose global norm stays above $c = 0.05$, so that check only tries
# the branch where clipping acts: a class that always rescales to norm $c$, forgetting the $\max(G,
# c)$, passes it too. A second check with a clip norm too large to act ($c = 10$) catches it, and the
# right class passes both.

# %%
from gdbook import check


class GlobalClipSGD:
    def __init__(self, learning_rate, global_clipnorm):
        self.learning_rate = learning_rate
        self.global_clipnorm = global_clipnorm

    def apply_gradients(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        norm = tf.linalg.global_norm([g for g, _ in grads_and_vars])
        scale = self.global_clipnorm / tf.maximum(norm, self.global_clipnorm)
        for grad, var in grads_and_vars:
            var.assign_sub(self.learning_rate * scale * grad)


for c in (0.05, 10.0):
    check.optimizer(
        lambda c=c: GlobalClipSGD(0.1, c),
        lambda c=c: keras.optimizers.SGD(0.1, global_clipnorm=c),
    )
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.optimizer(
        lambda: GlobalClipSGD(0.1, 1e9),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05),
    )
assert "part at step 1 " in caught.message


# %% [markdown]
# The version that always rescales, `AlwaysRescaledSGD`, passes where clipping acts and is caught where
# it does not:


# %%
class AlwaysRescaledSGD(GlobalClipSGD):
    def apply_gradients(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        norm = tf.linalg.global_norm([g for g, _ in grads_and_vars])
        for grad, var in grads_and_vars:
            var.assign_sub(self.learning_rate * self.global_clipnorm / norm * grad)


check.optimizer(
    lambda: AlwaysRescaledSGD(0.1, 0.05),
    lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.05),
)
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.optimizer(
        lambda: AlwaysRescaledSGD(0.1, 10.0),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=10.0),
    )
# expect_error printed the first line of the message; the rest:
print(caught.message.partition("\n")[2])
assert "part at step 1 " in caught.message
assert "rescaling by a norm of the gradients" in caught.message


# %% [markdown]
# Without clipping the update is $\alpha g$ with the huge gradients of the exploding chain, so the
# ratio is far above 1: the step replaces the weights instead of adjusting them, which is why the loss
# overflows. With the global norm clipped to 1 the whole step has norm at most $\alpha$, spread over all
# layers, so every ratio is tiny, far smaller than the He chain's at the same learning rate. Each chain
# is built afresh (the same seed gives the same weights) and takes one step:


# %%
def first_update_ratios(model, optimizer):
    """||W_after - W_before|| / ||W_before|| of each hidden kernel after one step."""
    kernels = [layer.kernel for layer in model.layers[:DEPTH]]
    before = [k.numpy() for k in kernels]
    with tf.GradientTape() as tape:
        loss = mse(model)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return np.array(
        [
            np.linalg.norm(k.numpy() - b) / np.linalg.norm(b)
            for k, b in zip(kernels, before, strict=True)
        ]
    )


settings = {
    "exploding, no clipping": (EXPLODING_GAIN, keras.optimizers.SGD(LEARNING_RATE)),
    "exploding, GlobalClipSGD(c=1)": (EXPLODING_GAIN, GlobalClipSGD(LEARNING_RATE, 1)),
    "He, no clipping": (np.sqrt(2.0), keras.optimizers.SGD(LEARNING_RATE)),
}
ratios = {}
for name, (gain, optimizer) in settings.items():
    ratios[name] = r = first_update_ratios(make_chain("relu", gain), optimizer)
    print(f"{name:30s} smallest {r.min():.1e}, largest {r.max():.1e}")
assert ratios["exploding, no clipping"].min() > 1
assert ratios["exploding, GlobalClipSGD(c=1)"].max() < ratios["He, no clipping"].min()

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-debugging-own-gradient
# For a linear softmax classifier with weights $W$ ($4 \times 3$), inputs $X$ ($8 \times 4$) and
# one-hot labels $Y$ ($8 \times 3$), the mean cross-entropy is
# $L(W) = -\frac1n \sum_{i,k} Y_{ik} \log \operatorname{softmax}(XW)_{ik}$. Derive $\nabla_W L$ by
# hand, write it with NumPy, and check it against the tape and central differences (with
# `from gdbook import check`):
# `check.gradient(loss, my_gradient, W0)`. Then forget the $1/n$ and read the message.
# ```
#
# ```{solution-start} ex-debugging-own-gradient
# :class: dropdown
# ```
#
# $\nabla_W L = X^\top(\operatorname{softmax}(XW) - Y)/n$: the softmax's Jacobian and the log
# cancel to "prediction minus label".

# %%
from gdbook import check

own_rng = np.random.default_rng(8)
X_own = own_rng.normal(size=(8, 4))
Y_own = np.eye(3)[own_rng.integers(0, 3, size=8)]
W0_own = 0.5 * own_rng.normal(size=(4, 3))


def softmax_loss(W):
    logits = tf.matmul(X_own, W)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(Y_own, logits))


def softmax_loss_gradient(W):
    logits = X_own @ np.asarray(W)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return X_own.T @ (p - Y_own) / len(X_own)


check.gradient(softmax_loss, softmax_loss_gradient, W0_own)

# %% [markdown]
# Without the $1/n$ every coordinate is $n$ times too large, and the check says so:

# %%
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(
        softmax_loss, lambda W: len(X_own) * softmax_loss_gradient(W), W0_own
    )
assert f"Every coordinate is {len(X_own)} times the reference" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-debugging-own-check
# Write your own numerical gradient, `central_gradient(f, x, h=1e-5)`, that returns the central
# difference {eq}`eq-debugging-central` for every coordinate of a float64 array `x` of any shape.
# Treat it as a gradient and check it against the tape on $f(x) = \sum_i e^{x_i/2}\sin x_i$:
# `check.gradient(f, lambda x: central_gradient(f, x), x0)`. Then replace it by the forward
# difference $(f(x + h e_i) - f(x))/h$: which verdict of the table below
# {eq}`eq-debugging-relerr` does the check give, and why?
# ```
#
# ```{solution-start} ex-debugging-own-check
# :class: dropdown
# ```

# %%
from gdbook import check


def central_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (float(f(x + step)) - float(f(x - step))) / (2 * h)
    return grad


def f_own(x):
    return tf.reduce_sum(tf.exp(x / 2) * tf.sin(x))


x0_own = np.linspace(-0.5, 1.5, 6).reshape(2, 3)
check.gradient(f_own, lambda x: central_gradient(f_own, x), x0_own)


# %% [markdown]
# The forward difference has an error of order $h$ instead of $h^2$ {eq}`eq-debugging-step-error`, so
# with $h = 10^{-5}$ its relative error lands between $10^{-7}$ and $10^{-4}$: "fine for a non-smooth
# function, too large for a smooth one", and this $f$ is smooth.


# %%
def forward_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (float(f(x + step)) - float(f(x))) / h
    return grad


with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(f_own, lambda x: forward_gradient(f_own, x), x0_own)
assert "between 1e-7 and 1e-4: fine for a non-smooth function" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
