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
# (ch-gradient)=
# # What a gradient is
#
# Training a neural network means turning a few million knobs until a number, the loss, is small.
# Gradient descent does it by asking, at every step, which way is downhill and taking a small step
# that way. This chapter makes "which way is downhill" precise, computes it three different ways,
# and watches the simplest possible descent succeed, stall, oscillate and blow up depending on a
# single number: the learning rate.
#
# :::{admonition} What you will learn
# :class: tip
# - What derivatives, partial derivatives and the gradient are, and why the gradient points uphill faster
#   than any other direction.
# - Three ways to get a gradient (by hand, by finite differences, by `tf.GradientTape`) and how to check
#   that they agree.
# - The gradient-descent update and the one-line Taylor argument for why it lowers the loss.
# - How the learning rate decides between convergence, a two-step cycle and divergence, predicted by a
#   closed form and confirmed by runs, and why the largest curvature sets the largest stable step.
# - Why an elongated valley makes gradient descent zig-zag.
# :::
#
# Every chapter starts the same way: `gdbook.setup()` quiets TensorFlow's logging (all but its warning that a `tf.function` is
# traced again, which readers should see), fixes the random
# seeds and switches on deterministic kernels, so that every number below comes out the same on every run.

# %%
import gdbook

gdbook.setup()

import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from gdbook.plotting import Panel, animate_paths, contour, to_html

print("TensorFlow", tf.__version__)


# %% [markdown]
# ## Derivatives, partial derivatives, gradients
#
# For a function of one variable the **derivative** is the slope of the tangent line,
#
# $$
# f'(x) = \lim_{h \to 0} \frac{f(x + h) - f(x)}{h}.
# $$ (eq-gradient-derivative)
#
# A function of several variables $f(x_1, \dots, x_n)$ has a slope along each axis. Holding every other
# variable fixed and moving $x_i$ alone gives the **partial derivative**
#
# $$
# \frac{\partial f}{\partial x_i}(\mathbf{x}) = \lim_{h \to 0} \frac{f(\mathbf{x} + h\,\mathbf{e}_i) - f(\mathbf{x})}{h},
# $$ (eq-gradient-partial)
#
# where $\mathbf{e}_i$ is the $i$-th unit vector. Stacking the partial derivatives into a vector gives
# the **gradient**
#
# $$
# \nabla f(\mathbf{x}) = \left( \frac{\partial f}{\partial x_1}, \frac{\partial f}{\partial x_2}, \dots, \frac{\partial f}{\partial x_n} \right).
# $$ (eq-gradient-vector)
#
# The gradient answers more than "what are the slopes along the axes". The slope in an arbitrary unit
# direction $\mathbf{u}$, the **directional derivative**, is a dot product with it:
#
# $$
# D_{\mathbf{u}} f(\mathbf{x}) = \lim_{h \to 0} \frac{f(\mathbf{x} + h\mathbf{u}) - f(\mathbf{x})}{h}
# = \nabla f(\mathbf{x}) \cdot \mathbf{u} = \lVert \nabla f(\mathbf{x}) \rVert \cos \theta ,
# $$ (eq-gradient-directional)
#
# with $\theta$ the angle between $\mathbf{u}$ and the gradient. The cosine is largest, $1$, when
# $\mathbf{u}$ points along $\nabla f$: **the gradient is the direction of steepest ascent, and its length
# is the slope in that direction.** The opposite direction, $-\nabla f$, is the steepest descent, and any
# direction at right angles to the gradient has slope zero, so the gradient is perpendicular to the
# contour lines.
#
# Let us check both claims on a concrete function, a tilted, stretched bowl
#
# $$
# f(x, y) = x^2 + 3y^2 + xy - 2x ,
# \qquad
# \nabla f(x, y) = (2x + y - 2,\; 6y + x).
# $$ (eq-gradient-example)
#
# We write $f$ once with NumPy operations, so the same function serves NumPy arrays (for plotting) and
# TensorFlow tensors (for differentiation).


# %%
def bowl(x, y):
    return x**2 + 3 * y**2 + x * y - 2 * x


def bowl_gradient_by_hand(x, y):
    return np.array([2 * x + y - 2, 6 * y + x])


# %% [markdown]
# Sweep the unit direction $\mathbf{u} = (\cos\phi, \sin\phi)$ around the circle, measure the slope
# along each direction with a tiny step, and see where the slope is largest.

# %%
point = np.array([-1.0, 1.0])
angles = np.deg2rad(np.arange(0.0, 360.0, 0.25))
directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
h = 1e-6
slopes = (bowl(*(point + h * directions).T) - bowl(*point)) / h

gradient = bowl_gradient_by_hand(*point)
steepest = directions[np.argmax(slopes)]
angle_between = np.degrees(np.arccos(steepest @ gradient / np.linalg.norm(gradient)))
print(f"gradient at {point}: {gradient}, length {np.linalg.norm(gradient):.4f}")
print(
    f"steepest of {len(angles)} directions: {steepest.round(4)}, "
    f"slope {slopes.max():.4f}"
)
print(f"angle between them: {angle_between:.3f} degrees")
assert angle_between <= 0.25
assert math.isclose(slopes.max(), np.linalg.norm(gradient), rel_tol=1e-5)

# %% [markdown]
# The steepest of 1440 directions lies within the sweep's resolution of the gradient's direction, and
# its slope equals the gradient's length, as {eq}`eq-gradient-directional` says. All the other slopes
# follow the same law: {numref}`fig-gradient-slope-angle` plots each against the angle between its
# direction and the gradient, over the curve $\lVert \nabla f \rVert \cos\theta$.

# %% mystnb={"figure": {"caption": "The slope of the bowl {eq}`eq-gradient-example` at $(-1, 1)$ along each of 1440 unit directions (dots, every twentieth drawn), against the angle $\\theta$ between the direction and the gradient, over $\\lVert \\nabla f \\rVert \\cos\\theta$ (line). The slope is largest at $\\theta = 0$, most negative at $\\pm 180\u00b0$ and zero at right angles to the gradient.", "name": "fig-gradient-slope-angle"}}
gradient_angle = np.arctan2(gradient[1], gradient[0])
theta = np.angle(np.exp(1j * (angles - gradient_angle)))
order = np.argsort(theta)
law = np.linalg.norm(gradient) * np.cos(theta)
print(f"largest |measured slope - |g| cos(theta)|: {np.abs(slopes - law).max():.1e}")
assert np.abs(slopes - law).max() < 1e-5
fig, ax = plt.subplots(figsize=(6.2, 3.2))
ax.plot(
    np.degrees(theta[order]),
    law[order],
    "-",
    color="0.5",
    label=r"$|\nabla f| \cos\theta$",
)
ax.plot(
    np.degrees(theta[order])[::20], slopes[order][::20], "o", ms=3, label="measured"
)
ax.axhline(0, color="0.8", lw=0.8)
ax.set(
    xlabel=r"angle $\theta$ to the gradient (degrees)",
    ylabel="slope",
    xticks=range(-180, 181, 90),
)
ax.legend()
plt.show()

# %% [markdown]
# {numref}`fig-gradient-quiver` shows the whole field: an arrow for the gradient at each point of a grid,
# over the contour lines of $f$.

# %% mystnb={"figure": {"caption": "The gradient field of the bowl {eq}`eq-gradient-example`. Each arrow is $\\nabla f$ at its foot, pointing uphill and across the contour lines at right angles; arrows are longer where the bowl is steeper. The minimum, where the gradient vanishes, is the dot.", "name": "fig-gradient-quiver"}}
panel = Panel(bowl, xlim=(-3, 4), ylim=(-2.5, 2.5), levels=14)
fig, ax = plt.subplots(figsize=(6.2, 4.6))
contour(ax, panel)
gx, gy = np.meshgrid(np.linspace(-2.6, 3.6, 13), np.linspace(-2.2, 2.2, 9))
u, v = bowl_gradient_by_hand(gx, gy)
ax.quiver(gx, gy, u, v, np.hypot(u, v), cmap="viridis", angles="xy", width=0.004)
# the minimum: where both partial derivatives are zero
minimum = np.linalg.solve([[2, 1], [1, 6]], [2, 0])
ax.plot(*minimum, "o", color="black")
ax.set_xlabel("$x$")
ax.set_ylabel("$y$")
plt.show()
print("minimum at", minimum.round(4))
assert np.allclose(bowl_gradient_by_hand(*minimum), 0.0)


# %% [markdown]
# ## Three ways to compute a gradient
#
# A gradient can be obtained three ways, and a careful practitioner uses each to check the others:
#
# 1. **By hand**, with the rules of calculus. Exact, but easy to get wrong on a large model.
# 2. **By finite differences**: evaluate $f$ at nearby points. The *central* difference
#
#    $$
#    \frac{\partial f}{\partial x_i}(\mathbf{x}) \approx \frac{f(\mathbf{x} + h\mathbf{e}_i) - f(\mathbf{x} - h\mathbf{e}_i)}{2h}
#    $$ (eq-gradient-central)
#
#    has an error proportional to $h^2$ (the one-sided quotient of {eq}`eq-gradient-derivative` only $h$),
#    but costs two evaluations of $f$ per coordinate, which is hopeless for a million parameters.
# 3. **By automatic differentiation**: TensorFlow records the operations as they run and applies the
#    chain rule backwards through them ({cite:t}`baydin2018`, {cite:t}`griewank2008`). Exact up to
#    rounding, and the whole gradient costs a small constant multiple of one evaluation of $f$,
#    whatever the number of parameters, plus the memory to keep the intermediate values of the
#    forward pass until the backward pass uses them. This is what `tf.GradientTape` does;
#    {ref}`the tape chapter <ch-tape>` takes it apart.
#
# We use a less friendly function this time, with a product and a sine:
#
# $$
# g(x, y) = x^2 y + \sin(xy),
# \qquad
# \nabla g(x, y) = \bigl(2xy + y\cos(xy),\; x^2 + x\cos(xy)\bigr).
# $$ (eq-gradient-g)


# %%
def g(x, y, sin=np.sin):
    return x**2 * y + sin(x * y)


def g_gradient_by_hand(x, y):
    return np.array([2 * x * y + y * np.cos(x * y), x**2 + x * np.cos(x * y)])


def central_difference(f, point, h, dtype=np.float64):
    """The gradient of f at point by central differences, one coordinate at a time."""
    point = np.asarray(point, dtype=dtype)
    h = dtype(h)
    grad = np.zeros_like(point)
    for i in range(point.size):
        step = np.zeros_like(point)
        step[i] = h
        grad[i] = (f(*(point + step)) - f(*(point - step))) / (2 * h)
    return grad


# %% [markdown]
# The tape needs TensorFlow operations (`tf.sin` instead of `np.sin`); everything computed inside the
# `with` block is recorded, and `tape.gradient` walks the record backwards.


# %%
def g_gradient_by_tape(point):
    xy = tf.Variable(point, dtype=tf.float64)
    with tf.GradientTape() as tape:
        value = g(xy[0], xy[1], sin=tf.sin)
    return tape.gradient(value, xy).numpy()


point = np.array([1.3, -0.7])
by_hand = g_gradient_by_hand(*point)
by_differences = central_difference(g, point, h=1e-5)
by_tape = g_gradient_by_tape(point)
for name, grad in [
    ("by hand", by_hand),
    ("central differences", by_differences),
    ("GradientTape", by_tape),
]:
    print(f"{name:>20}: {grad}")
tape_error = np.abs(by_tape - by_hand).max()
difference_error = np.abs(by_differences - by_hand).max()
print(
    f"max |tape - hand| = {tape_error:.1e}, "
    f"max |differences - hand| = {difference_error:.1e}"
)
# the last bit or two: at most two units in the last place of the largest component
assert tape_error <= 2 * np.spacing(np.abs(by_hand).max())
# significant digits of the central difference, relative to the largest component
difference_digits = -np.log10(difference_error / np.abs(by_hand).max())
print(f"the central difference is right to {difference_digits:.1f} significant digits")
assert round(difference_digits) == 11

# %% [markdown]
# In float64 the tape agrees with the hand-derived gradient to the last bit or two, and the central
# difference with $h = 10^{-5}$ to about eleven significant digits. Why $10^{-5}$ and not something much smaller? The
# formula {eq}`eq-gradient-central` has two errors pulling in opposite directions: the truncation error,
# about $h^2$, shrinks with $h$; the rounding error, about $\varepsilon / h$ with $\varepsilon$ the
# machine precision, grows as $h$ shrinks, because we subtract two nearly equal numbers and divide by a
# tiny one. The next cell measures the error of {eq}`eq-gradient-central` for 49 step sizes from
# $10^{-13}$ to $10^{-1}$, and {numref}`fig-gradient-fd-error` plots it against both models.

# %%
step_sizes = np.logspace(-13, -1, 49)
errors = np.array(
    [np.abs(central_difference(g, point, h) - by_hand).max() for h in step_sizes]
)
best_step = step_sizes[np.argmin(errors)]
print(
    f"best step {best_step:.1e}, error there {errors.min():.1e}; "
    f"cube root of eps: {np.finfo(float).eps ** (1 / 3):.1e}"
)
# within one point of the grid (a quarter decade) of the cube root of eps
assert abs(np.log10(best_step / np.finfo(float).eps ** (1 / 3))) < 0.26

# %% [markdown]
# The best step is marked by the vertical line in the figure:

# %% mystnb={"figure": {"caption": "Error of the central difference {eq}`eq-gradient-central` against the exact gradient of $g$, for step sizes from $10^{-1}$ to $10^{-13}$. Right of the dip the truncation error falls as $h^2$ (slope 2 on log-log axes); left of it rounding error grows as $1/h$. In float64 the best step is near $\\varepsilon^{1/3} \\approx 6 \\cdot 10^{-6}$.", "name": "fig-gradient-fd-error"}}
fig, ax = plt.subplots(figsize=(6.2, 3.8))
ax.loglog(step_sizes, errors, "o-", ms=3, label="central difference error")
ax.loglog(step_sizes, step_sizes**2, "--", color="0.5", label="$h^2$ (truncation)")
ax.loglog(
    step_sizes,
    np.finfo(float).eps / step_sizes,
    ":",
    color="0.5",
    label=r"$\varepsilon / h$ (rounding)",
)
ax.axvline(best_step, color="0.8", lw=1)
ax.set_ylim(1e-13, 1e-1)
ax.set_xlabel("step $h$")
ax.set_ylabel("max absolute error")
ax.legend()
plt.show()

# %% [markdown]
# The best step sits near $\varepsilon^{1/3}$, where the two errors balance. Gradient checking, which
# compares a hand-written backward pass with finite differences, relies on this and comes back in
# {ref}`ch-debugging`.
#
# ## The descent step
#
# Gradient descent, proposed by {cite:t}`cauchy1847` for solving systems of equations, repeats one step:
#
# $$
# \theta_{t+1} = \theta_t - \alpha \, \nabla f(\theta_t) ,
# $$ (eq-gradient-update)
#
# where $\theta$ is the vector of parameters and $\alpha > 0$ is the **learning rate** (step size). Why
# does it lower $f$? Write $\mathbf{g} = \nabla f(\theta_t)$ and expand $f$ to first order around $\theta_t$:
#
# $$
# f(\theta_t - \alpha \mathbf{g}) = f(\theta_t) - \alpha \, \mathbf{g} \cdot \mathbf{g} + O(\alpha^2)
# = f(\theta_t) - \alpha \lVert \mathbf{g} \rVert^2 + O(\alpha^2) .
# $$ (eq-gradient-taylor)
#
# Unless the gradient is zero (we are at a stationary point) the first-order term is negative, and for a
# small enough $\alpha$ it beats the $O(\alpha^2)$ remainder: the step lowers $f$. The argument says
# nothing about *how* small $\alpha$ must be; the rest of this chapter is about exactly that.
#
# We can watch {eq}`eq-gradient-taylor` become exact as the step shrinks: the actual decrease divided by
# the predicted $\alpha \lVert \mathbf{g} \rVert^2$ tends to 1.

# %%
theta = np.array([-1.0, 1.0])
g_theta = bowl_gradient_by_hand(*theta)
print(f"{'alpha':>8} {'actual decrease':>16} {'alpha*|g|^2':>12} {'ratio':>8}")
ratios = []
for alpha in [0.6, 0.3, 0.1, 0.01, 0.001, 0.0001]:
    actual = bowl(*theta) - bowl(*(theta - alpha * g_theta))
    predicted = alpha * g_theta @ g_theta
    ratios.append(actual / predicted)
    print(f"{alpha:8.4f} {actual:16.8f} {predicted:12.8f} {ratios[-1]:8.5f}")
# the ratio approaches 1 as the step shrinks
assert all(abs(1 - r) > abs(1 - s) for r, s in zip(ratios, ratios[1:], strict=False))
assert abs(ratios[-1] - 1) < 1e-3
# a step of 0.6 goes up; 0.3 goes down, by less than half the linear prediction
assert ratios[0] < 0 < ratios[1] < 0.5

# %% [markdown]
# With $\alpha = 0.6$ the "decrease" is negative: that step overshoots the valley and lands higher than it
# started. With $0.3$ it still descends, but by less than half of what the linear term promises. The Taylor
# argument only promises descent for small steps.
#
# ## A worked example: $(w + 1)^2$
#
# {cite:t}`src002` run gradient descent on the smallest possible problem: one parameter $w$, the loss
#
# $$
# L(w) = (w + 1)^2, \qquad L'(w) = 2(w + 1),
# $$ (eq-gradient-toy-loss)
#
# minimum at $w = -1$, starting from $w_0 = 5$ with learning rate $\alpha = 0.2$ for 40 epochs. The
# first steps by hand, in exact decimal arithmetic:

# %%
from fractions import Fraction

w_exact, rate_exact = Fraction(5), Fraction(1, 5)
for _ in range(3):
    slope = 2 * (w_exact + 1)
    w_next = w_exact - rate_exact * slope
    print(f"{float(w_exact):g} - 0.2 * {float(slope):g} = {float(w_next):g}")
    w_exact = w_next

# %% [markdown]
# The notes used TensorFlow 1.x, where eager execution had to be switched on with
# `tf.enable_eager_execution()`. In TensorFlow 2 eager execution is the default, and the function has
# moved to `tf.compat.v1.enable_eager_execution`, kept for TF1-style programs; the TF2 program needs
# nothing but the tape.

# %%
print("tf.enable_eager_execution exists:", hasattr(tf, "enable_eager_execution"))
print("tf.compat.v1.enable_eager_execution:", tf.compat.v1.enable_eager_execution)
print("executing eagerly by default:", tf.executing_eagerly())
assert not hasattr(tf, "enable_eager_execution") and tf.executing_eagerly()
assert callable(tf.compat.v1.enable_eager_execution)


# %% [markdown]
# Note *what* is printed: the loss is computed before the update, so each line pairs the new $w$ with
# the loss at the old one. The function prints its lines in the notes' format, so that they can be
# compared with the notes' as strings.


# %%
def descend_toy_loss(learning_rate, w0=5.0, epochs=40, log=None):
    """Gradient descent on (w + 1)^2 with GradientTape, in float32 like the source.

    Returns the iterates w_0..w_T and the losses computed at w_0..w_{T-1}; if log is
    a list, each epoch's line is printed and appended to it."""
    w = tf.Variable(w0, dtype=tf.float32)
    ws, losses = [w0], []
    for epoch in range(epochs):
        with tf.GradientTape() as tape:
            loss = tf.square(w + 1)
        grad = tape.gradient(loss, w)
        w.assign_sub(learning_rate * grad)
        ws.append(float(w.numpy()))
        losses.append(float(loss.numpy()))
        if log is not None:
            log.append(
                f"After {epoch} epoch,w is {w.numpy():f},loss is {loss.numpy():f}"
            )
            print(log[-1])
    return np.array(ws), np.array(losses)


toy_lines = []
ws, losses = descend_toy_loss(0.2, log=toy_lines)

# %% [markdown]
# `gdbook.sources` keeps the forty lines the notes printed, verbatim. Every one of ours is the same
# string:

# %%
from gdbook.sources import TOY_LOSS_PRINTED_LINES

differing = [
    (ours, theirs)
    for ours, theirs in zip(toy_lines, TOY_LOSS_PRINTED_LINES, strict=True)
    if ours != theirs
]
print(f"{len(toy_lines)} lines printed, {len(differing)} differ from the notes'")
assert toy_lines == list(TOY_LOSS_PRINTED_LINES)
print(f"after 40 epochs w = {ws[-1]:.9f}")
assert abs(ws[-1] + 1) < 1e-6

# %% [markdown]
# The second line's loss is $12.959999$, not $12.96$. By the rule above, that loss was computed at the
# *old* $w = 2.6$, and $2.6$ has no exact binary representation: float32 stores the nearest number it
# has, which is slightly below $2.6$. The square of $w + 1$ is then slightly below $12.96$, and six
# decimals show it. The exact $12.96$, rounded to float32, would have printed as $12.960000$:

# %%
old_w = np.float32(2.6)
loss_at_old_w = np.square(old_w + np.float32(1.0))
print(f"w = 2.6 is stored as     {old_w:.10f}")
print(f"(w + 1)^2 in float32 =   {loss_at_old_w:.10f}, printed {loss_at_old_w:f}")
print(
    f"12.96 stored in float32: {np.float32(12.96):.10f}, printed {np.float32(12.96):f}"
)
assert float(old_w) < 2.6 and losses[1] == loss_at_old_w
assert f"{loss_at_old_w:f}" == "12.959999" and f"{np.float32(12.96):f}" == "12.960000"

# %% [markdown]
# ## How the learning rate decides
#
# {cite:t}`src002` invite the reader to try other learning rates. Before running anything, we can predict
# the outcome exactly. Subtract $-1$ (the minimum) from both sides of the update:
#
# $$
# w_{t+1} + 1 = (w_t + 1) - \alpha \cdot 2 (w_t + 1) = (1 - 2\alpha)(w_t + 1)
# \quad\Longrightarrow\quad
# w_t + 1 = (1 - 2\alpha)^t \, (w_0 + 1).
# $$ (eq-gradient-closed-form)
#
# The distance to the minimum is multiplied by $1 - 2\alpha$ at every step. So
#
# - $0 < \alpha < 0.5$: the factor is in $(0, 1)$, the iterates approach $-1$ from one side;
# - $\alpha = 0.5$: the factor is $0$, **one step** lands exactly on the minimum;
# - $0.5 < \alpha < 1$: the factor is in $(-1, 0)$, the iterates jump across the minimum every step but
#   still converge, slower and slower as $\alpha \to 1$;
# - $\alpha = 1$: the factor is $-1$, a **two-step cycle** $5, -7, 5, -7, \dots$ that never converges;
# - $\alpha > 1$: $|1 - 2\alpha| > 1$, the iterates **diverge**, oscillating with growing amplitude.
#
# The threshold $\alpha = 1$ is $2 / L''$: the step must stay below two over the curvature. Now the
# runs, each checked against {eq}`eq-gradient-closed-form`:

# %%
rates = [0.001, 0.2, 0.5, 0.999, 1.0, 1.01]
runs = {rate: descend_toy_loss(rate)[0] for rate in rates}
epochs = np.arange(41)
print(f"{'rate':>6} {'factor 1-2a':>11} {'w_40':>12} {'max |run - closed form|':>24}")
for rate, w in runs.items():
    closed_form = (1 - 2 * rate) ** epochs * (5.0 + 1) - 1
    gap = np.abs(w - closed_form).max()
    print(f"{rate:6.3f} {1 - 2 * rate:11.3f} {w[-1]:12.6f} {gap:24.2e}")
    np.testing.assert_allclose(w, closed_form, rtol=1e-5, atol=1e-5)

# %% [markdown]
# Every run follows the closed form to float32 precision. The five behaviours, asserted:

# %%
distance = {rate: np.abs(w + 1) for rate, w in runs.items()}
# 0.001 barely moved in 40 steps; 0.2 converged; 0.5 is exactly there after one step
assert distance[0.001][-1] > 0.9 * distance[0.001][0]
assert distance[0.2][-1] < 1e-6
assert runs[0.5][1] == -1.0 and np.all(runs[0.5][1:] == -1.0)
# 0.999 crosses the minimum at every step, and yet slowly converges
assert np.all(np.diff(np.sign(runs[0.999] + 1)) != 0)
assert np.all(np.diff(distance[0.999]) < 0)
# 1.0 is a two-cycle; 1.01 moves away at every step
assert np.array_equal(runs[1.0], np.tile([5.0, -7.0], 21)[:41])
assert (
    np.all(np.diff(distance[1.01]) > 0) and distance[1.01][-1] > 2 * distance[1.01][0]
)
print(
    f"0.001 moved w by {5 - runs[0.001][-1]:.4f} in 40 steps;",
    f"0.999 is still {distance[0.999][-1]:.3f} away;",
    f"1.01 is {distance[1.01][-1]:.2f} away",
)

# %% [markdown]
# {numref}`fig-gradient-rates` draws the six runs against the envelope
# $-1 \pm |1 - 2\alpha|^t (w_0 + 1)$ of {eq}`eq-gradient-closed-form`.

# %% mystnb={"figure": {"caption": "Gradient descent on $(w+1)^2$ from $w_0 = 5$ with six learning rates, one panel each. Dots are the runs; the dashed lines are $-1 \\pm |1-2\\alpha|^t (w_0+1)$ from the closed form {eq}`eq-gradient-closed-form`, and the grey line is the minimum $w = -1$. Tiny steps crawl, $0.2$ converges smoothly, $0.5$ arrives in one step, $0.999$ hops across the minimum while converging very slowly, $1.0$ is trapped in a two-cycle and $1.01$ diverges.", "name": "fig-gradient-rates"}}
fig, axes = plt.subplots(2, 3, figsize=(10, 5.4), sharex=True)
fine_t = np.linspace(0, 40, 401)
for ax, (rate, w) in zip(axes.flat, runs.items(), strict=True):
    factor = 1 - 2 * rate
    # |w_t + 1| from the closed form
    envelope = 6.0 * np.abs(factor) ** fine_t
    ax.plot(fine_t, -1 + envelope, "--", color="0.55", lw=1)
    # the iterates alternate sides: draw the envelope below the minimum too
    if factor < 0:
        ax.plot(fine_t, -1 - envelope, "--", color="0.55", lw=1)
    ax.plot(epochs, w, "o", ms=3)
    ax.axhline(-1, color="0.3", lw=0.8)
    ax.set_title(rf"$\alpha$ = {rate}: factor $1-2\alpha$ = {factor:+.3g}")
    ax.set_ylim(-16, 16)
for ax in axes[1]:
    ax.set_xlabel("epoch $t$")
for ax in axes[:, 0]:
    ax.set_ylabel("$w_t$")
plt.show()


# %% [markdown]
# ### The largest curvature sets the limit
#
# In one dimension the curvature is a single number. With several parameters it depends on the
# direction: along a unit vector $\mathbf{u}$ it is $\mathbf{u}^\top H \mathbf{u}$, with $H$ the
# **Hessian**, the matrix of second derivatives. Which of these curvatures limits the step? Near a
# minimum $\theta^\star$ a quadratic model is accurate, the gradient is close to $H(\theta - \theta^\star)$, and
# one step multiplies the error $\theta - \theta^\star$ by $I - \alpha H$. Every component along an
# eigenvector of $H$ shrinks if and only if $|1 - \alpha\lambda| < 1$ for its eigenvalue $\lambda$. At a
# minimum whose eigenvalues are all positive, that holds for every one exactly when
#
# $$
# 0 < \alpha < \frac{2}{\lambda_{\max}(H)} :
# $$ (eq-gradient-stable-step)
#
# the *largest* curvature sets the limit, whichever way the gradient happens to point. On a quadratic
# this is exact. The tape gives the Hessian of the tilted bowl {eq}`eq-gradient-example` (a gradient of
# a gradient, by two nested tapes), and with it the largest curvature and the curvature along the
# gradient at the point $(-1, 1)$ of the first experiment:


# %%
def hessian_by_tape(f, at):
    xy = tf.Variable(at, dtype=tf.float64)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = f(xy[0], xy[1])
        grad = inner.gradient(value, xy)
    return outer.jacobian(grad, xy).numpy()


start_point = np.array([-1.0, 1.0])
hessian = hessian_by_tape(bowl, start_point)
lambda_min, lambda_max = np.linalg.eigvalsh(hessian)
along = bowl_gradient_by_hand(*start_point)
along = along / np.linalg.norm(along)
curvature_along_gradient = along @ hessian @ along
print("Hessian:\n", hessian)
print(f"eigenvalues {lambda_min:.4f} and {lambda_max:.4f}")
print(f"curvature along the gradient at {start_point}: {curvature_along_gradient:.4f}")
print(
    f"2 / lambda_max = {2 / lambda_max:.4f}; 2 / that curvature = "
    f"{2 / curvature_along_gradient:.4f}"
)
assert np.array_equal(hessian, [[2.0, 1.0], [1.0, 6.0]])
assert lambda_min < curvature_along_gradient < lambda_max


# %% [markdown]
# Three runs from $(-1, 1)$ tell the two candidates apart: just below $2/\lambda_{\max}$, just above it,
# and at a step that the curvature along the starting gradient would allow but $\lambda_{\max}$ does not.


# %%
def distance_after(rate, steps=200):
    xy = start_point.copy()
    for _ in range(steps):
        xy = xy - rate * bowl_gradient_by_hand(*xy)
    return np.linalg.norm(xy - minimum)


limit = 2 / lambda_max
tries = {
    "0.98 * 2/lambda_max": 0.98 * limit,
    "1.05 * 2/lambda_max": 1.05 * limit,
    "0.9 * 2/(curvature along gradient)": 0.9 * 2 / curvature_along_gradient,
}
final = {name: distance_after(rate) for name, rate in tries.items()}
for name, rate in tries.items():
    print(f"alpha = {rate:.4f} ({name}): distance after 200 steps {final[name]:.3g}")
start_distance = np.linalg.norm(start_point - minimum)
assert final["0.98 * 2/lambda_max"] < 1e-3 * start_distance
assert final["1.05 * 2/lambda_max"] > 1e3 * start_distance
assert final["0.9 * 2/(curvature along gradient)"] > 1e3 * start_distance

# %% [markdown]
# Beyond quadratics, {eq}`eq-gradient-stable-step` with the Hessian at the minimum is a local rule: it
# decides whether iterates that come close to the minimum settle there (every $|1 - \alpha\lambda| < 1$)
# or are thrown out again (some $|1 - \alpha\lambda| > 1$). A guarantee that *every* step lowers the loss needs a
# condition on the whole landscape: the gradient must be **$L$-Lipschitz**,
# $\lVert \nabla f(\mathbf{a}) - \nabla f(\mathbf{b}) \rVert \le L \lVert \mathbf{a} - \mathbf{b} \rVert$
# (for a twice-differentiable $f$: no curvature larger than $L$ in size anywhere; this $L$ is a constant, not the
# loss of {eq}`eq-gradient-toy-loss`). Such an $f$ is called $L$-smooth,
# and for it the **descent lemma** ({cite:t}`nesterov2004`, Lemma 1.2.3) bounds the Taylor remainder of
# {eq}`eq-gradient-taylor`:
#
# $$
# f(\theta - \alpha \mathbf{g}) \le f(\theta) - \alpha \left(1 - \tfrac{L\alpha}{2}\right)
# \lVert \mathbf{g} \rVert^2 .
# $$ (eq-gradient-descent-lemma)
#
# The bracket is positive for $0 < \alpha < 2/L$: every such step lowers $f$ unless $\mathbf{g} = 0$.
# The tilted bowl is $L$-smooth with $L = \lambda_{\max}$. The next cell checks the lemma at random
# points and steps, and shows that it is tight: along the eigenvector of $\lambda_{\max}$ it holds with
# equality.

# %%
rng = np.random.default_rng(0)
thetas = rng.uniform(-3, 3, size=(500, 2))
alphas = rng.uniform(0, limit, size=500)
grads = bowl_gradient_by_hand(*thetas.T).T
after = bowl(*(thetas - alphas[:, None] * grads).T)
bound = bowl(*thetas.T) - alphas * (1 - lambda_max * alphas / 2) * np.sum(grads**2, 1)
print(f"largest f(after) - bound over 500 random steps: {np.max(after - bound):.2e}")
assert np.all(after <= bound + 1e-12)
top = np.linalg.eigh(hessian)[1][:, 1]
on_top = minimum + 0.7 * top
g_top = bowl_gradient_by_hand(*on_top)
step = 0.5 * limit
tight = bowl(*on_top) - step * (1 - lambda_max * step / 2) * g_top @ g_top
gap = bowl(*(on_top - step * g_top)) - tight
print(f"along the top eigenvector: f(after) - bound = {gap:.1e}")
assert abs(gap) < 1e-12

# %% [markdown]
# {numref}`fig-gradient-taylor-slice` follows one gradient step from $(-1, 1)$ as its step size $\alpha$ grows: the
# loss $f(\theta - \alpha\mathbf{g})$ lies above the tangent line of {eq}`eq-gradient-taylor` (the bowl is
# convex) and below the lemma's parabola, which stays under $f(\theta)$ up to $\alpha = 2/L$.

# %% mystnb={"figure": {"caption": "One gradient step from $(-1, 1)$ on the tilted bowl, as a function of the step size $\\alpha$: the loss $f(\\theta - \\alpha g)$, the tangent line $f(\\theta) - \\alpha |g|^2$ and the descent lemma's bound {eq}`eq-gradient-descent-lemma` with $L = \\lambda_{\\max}$. The loss lies between the two; every step size below $2/L$ (dotted line) lowers it.", "name": "fig-gradient-taylor-slice"}}
g0 = bowl_gradient_by_hand(*start_point)
step_lengths = np.linspace(0, 0.45, 91)
f0 = bowl(*start_point)
actual = np.array([bowl(*(start_point - a * g0)) for a in step_lengths])
tangent = f0 - step_lengths * (g0 @ g0)
lemma = tangent + lambda_max * step_lengths**2 / 2 * (g0 @ g0)
assert np.all(tangent <= actual + 1e-12) and np.all(actual <= lemma + 1e-12)
inside = (step_lengths > 0) & (step_lengths <= limit)
assert np.all(actual[inside] < f0)
fig, ax = plt.subplots(figsize=(6.2, 3.4))
ax.plot(step_lengths, actual, "-", lw=2, label=r"$f(\theta - \alpha g)$")
ax.plot(step_lengths, tangent, "--", color="0.4", label="tangent")
ax.plot(step_lengths, lemma, ":", color="C3", label="descent lemma bound")
ax.axhline(f0, color="0.8", lw=0.8)
ax.axvline(limit, color="0.6", ls=":", lw=1)
ax.set(xlabel=r"step size $\alpha$", ylabel="loss", ylim=(f0 - 12, f0 + 4))
ax.legend()
plt.show()


# %% [markdown]
# ## Two dimensions: round and elongated bowls
#
# In one dimension the learning rate only has to respect one curvature. With several parameters it
# has to respect all of them at once. Take the quadratic bowl
#
# $$
# f_\kappa(x, y) = \tfrac12 \left( x^2 + \kappa \, y^2 \right), \qquad \nabla f_\kappa = (x, \kappa y),
# $$ (eq-gradient-bowl)
#
# whose curvatures are $1$ along $x$ and $\kappa$ along $y$. The update {eq}`eq-gradient-update` acts on
# each coordinate separately, exactly as in {eq}`eq-gradient-closed-form`:
#
# $$
# x_t = (1 - \alpha)^t x_0, \qquad y_t = (1 - \alpha\kappa)^t y_0 .
# $$ (eq-gradient-bowl-closed-form)
#
# The Hessian is $\operatorname{diag}(1, \kappa)$, so for $\kappa \ge 1$ the limit
# {eq}`eq-gradient-stable-step` is $\alpha < 2/\kappa$: the *steep* direction caps the step. The *flat*
# direction then shrinks only by $1 - \alpha$ per step. The ratio $\kappa$ of largest to smallest
# curvature, the **condition number**, is what makes a problem hard for gradient descent.


# %%
def descend_2d(kappa, learning_rate, start, steps):
    """Gradient descent on f_kappa with GradientTape; returns the points visited."""
    xy = tf.Variable(start, dtype=tf.float64)
    curvatures = tf.constant([1.0, kappa], dtype=tf.float64)
    path = [xy.numpy().copy()]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(curvatures * xy**2)
        xy.assign_sub(learning_rate * tape.gradient(loss, xy))
        path.append(xy.numpy().copy())
    return np.array(path)


# %% [markdown]
# We take $\kappa = 15$ and a step just under its limit, and the round bowl $\kappa = 1$ with the same
# step:

# %%
learning_rate, start, steps = 0.12, [-4.5, 1.6], 40
print(
    f"limit 2/15 = {2 / 15:.3f}, "
    f"step {learning_rate} is {learning_rate * 15 / 2:.0%} of it"
)
print(
    f"per-step factors: x {1 - learning_rate:.2f}, y (kappa = 15) "
    f"{1 - learning_rate * 15:.2f}, y (kappa = 1) {1 - learning_rate:.2f}"
)
assert 0.85 < learning_rate * 15 / 2 < 1 and 1 - learning_rate * 15 < 0
paths = {kappa: descend_2d(kappa, learning_rate, start, steps) for kappa in (1.0, 15.0)}
for kappa, path in paths.items():
    t = np.arange(steps + 1)[:, None]
    predicted = (
        np.array(start) * np.array([1 - learning_rate, 1 - learning_rate * kappa]) ** t
    )
    np.testing.assert_allclose(path, predicted, rtol=1e-12, atol=1e-12)
    sign_flips = int(np.sum(np.diff(np.sign(path[:, 1])) != 0))
    print(
        f"kappa = {kappa:4.0f}: after {steps} steps at "
        f"({path[-1, 0]:+.4f}, {path[-1, 1]:+.4f}); "
        f"y changed sign {sign_flips} times"
    )
assert np.sum(np.diff(np.sign(paths[1.0][:, 1])) != 0) == 0
assert np.sum(np.diff(np.sign(paths[15.0][:, 1])) != 0) == steps
assert paths[1.0][-1, 0] == paths[15.0][-1, 0]

# %% [markdown]
# Both runs match {eq}`eq-gradient-bowl-closed-form` to rounding. On the elongated bowl $y$ is multiplied
# by the negative factor printed above at every step: it changes sign each time, and the path zig-zags
# across the valley while crawling along it. The round bowl shrinks both coordinates by the same factor,
# so its path is a straight line to the centre. Press play on {numref}`fig-gradient-zigzag`
# to watch them.

# %% mystnb={"figure": {"caption": "Gradient descent with the same learning rate $\\alpha = 0.12$ on a round bowl ($\\kappa = 1$, left) and an elongated one ($\\kappa = 15$, right), both from $(-4.5, 1.6)$, the first 25 steps. On the elongated bowl the step that is safe for the steep $y$ direction overshoots it every time, and the path zig-zags.", "name": "fig-gradient-zigzag"}}
# the first 25 steps show the zig-zag; each frame costs time to draw
animated_steps = 25
panels = [
    Panel(
        lambda x, y, k=kappa: 0.5 * (x**2 + k * y**2),
        xlim=(-5, 1.5),
        ylim=(-2.2, 2.2),
        paths={"gradient descent": path[: animated_steps + 1]},
        title=rf"$\kappa$ = {kappa:g}",
        levels=12,
    )
    for kappa, path in paths.items()
]
to_html(animate_paths(panels, interval=150, figsize=(10, 3.6)))

# %% [markdown]
# The elongated bowl's path zig-zags, and both runs end at the same distance along $x$: the flat direction
# converges at the rate $1 - \alpha$ no matter what happens across the valley. Curing this, by building up
# speed along consistent directions (momentum) or by rescaling each coordinate (Adagrad, RMSprop, Adam), is
# what the optimizers of {ref}`ch-optimizers` are for ({cite:t}`polyak1964`, {cite:t}`goh2017`). Rescaling
# coordinates cures only a valley that is aligned with the axes, as this one is. Turn the same bowl by
# 45 degrees and no per-coordinate scale helps: the next cell scales the second coordinate by factors
# from $10^{-3}$ to $10^{3}$ and measures the condition number, the ratio of largest to smallest
# curvature, of each scaled bowl.

# %%
aligned = np.diag([1.0, 15.0])
turn = np.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2)
rotated = turn @ aligned @ turn.T
scales = np.logspace(-3, 3, 601)


def best_condition(hessian):
    """The smallest condition number of D H D over diagonal D = diag(1, s)."""
    conditions = [
        np.linalg.cond(np.diag([1, s]) @ hessian @ np.diag([1, s])) for s in scales
    ]
    return min(conditions)


print("rotated Hessian:\n", rotated.round(3))
print(
    f"condition number: aligned {np.linalg.cond(aligned):.3f}, "
    f"rotated {np.linalg.cond(rotated):.3f}"
)
print(
    f"best after scaling: aligned {best_condition(aligned):.3f}, "
    f"rotated {best_condition(rotated):.3f}"
)
assert math.isclose(best_condition(aligned), 1.0, rel_tol=1e-2)
assert math.isclose(best_condition(rotated), np.linalg.cond(rotated), rel_tol=1e-9)


# %% [markdown]
# The right scale of the second coordinate makes the aligned bowl round; for the turned bowl the best
# scale leaves the condition number where it was. Its long axis runs diagonally, and only a change of
# direction, not of scale along the axes, can straighten it.
#
# ## Beyond bowls: two valleys and a saddle
#
# A quadratic bowl has one stationary point, and every start leads to it. The loss of a neural network
# has many, and where gradient descent ends depends on where it starts. A small function shows the
# three kinds of stationary point, the points where the gradient vanishes:
#
# $$
# f_2(x, y) = (x^2 - 1)^2 + 2y^2 + 0.3\,x ,
# \qquad
# \nabla f_2 = \bigl(4x^3 - 4x + 0.3,\; 4y\bigr).
# $$ (eq-gradient-two-valleys)
#
# Its stationary points lie on the $x$-axis, at the three roots of $4x^3 - 4x + 0.3$. The Hessian there,
# from the same nested tapes as before, tells them apart: both eigenvalues positive is a minimum, one of
# each sign a **saddle point**, here a minimum along $y$ and a maximum along $x$, the line that
# joins the two minima.


# %%
def two_valleys(x, y):
    return (x**2 - 1) ** 2 + 2 * y**2 + 0.3 * x


stationary_x = np.sort(np.roots([4.0, 0.0, -4.0, 0.3]).real)
kinds = {}
for x_star in stationary_x:
    curvatures = np.linalg.eigvalsh(hessian_by_tape(two_valleys, [x_star, 0.0]))
    kinds[x_star] = "minimum" if curvatures.min() > 0 else "saddle"
    print(
        f"x = {x_star:+.4f}: f = {two_valleys(x_star, 0.0):+.4f}, "
        f"Hessian eigenvalues {curvatures.round(3)} -> {kinds[x_star]}"
    )
left, saddle, right = stationary_x
assert list(kinds.values()) == ["minimum", "saddle", "minimum"]
assert two_valleys(left, 0.0) < two_valleys(right, 0.0)


# %% [markdown]
# We run gradient descent with the tape from seven starts, three of them on the line
# $x = x_{\text{saddle}}$ through the saddle: exactly on it, and a thousandth to either side. All seven
# runs go in one variable of seven rows; the gradient of the sum of the seven values gives each row the
# gradient of its own run. The next cell defines that descent.


# %%
def descend_from(f, starts, rate=0.05, steps=60):
    """Gradient descent on f(x, y) with GradientTape from several starts at once.

    Row i of the sum's gradient is the gradient of f at row i: the runs do not
    interact. Returns the points visited, shape (starts, steps + 1, 2)."""
    xy = tf.Variable(starts, dtype=tf.float64)
    path = [xy.numpy().copy()]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(f(xy[:, 0], xy[:, 1]))
        xy.assign_sub(rate * tape.gradient(total, xy))
        path.append(xy.numpy().copy())
    return np.stack(path, axis=1)


# %% [markdown]
# The seven starts, and for each the stationary point nearest to where its run ended:

# %%
starts = [(-1.8, -1.2), (-0.5, 1.5), (0.6, -1.5), (1.8, 1.2)]
starts += [(saddle - 1e-3, 1.5), (saddle, 1.5), (saddle + 1e-3, 1.5)]
valley_paths = descend_from(two_valleys, starts)
# the stationary point on the x-axis nearest to where each path ended
ends = [stationary_x[np.argmin(np.abs(stationary_x - p[-1, 0]))] for p in valley_paths]
for start, end in zip(starts, ends, strict=True):
    print(
        f"from ({start[0]:+.4f}, {start[1]:+.1f}) to the {kinds[end]} at x = {end:+.4f}"
    )
assert ends == [left, left, right, right, left, saddle, right]
distances = [
    np.linalg.norm(p[-1] - (e, 0.0)) for p, e in zip(valley_paths, ends, strict=True)
]
print(f"largest distance from the end to its stationary point: {max(distances):.1e}")
assert max(distances) < 1e-4

# %% [markdown]
# How long does each run take to settle, that is to come within $10^{-2}$ of where it ends?

# %%
settle = [
    int(np.argmax(np.linalg.norm(p - p[-1], axis=1) < 1e-2)) for p in valley_paths
]
print("steps to settle:", settle)
# the two runs that pass close to the saddle take about twice as long as the others
ratios_to_others = [settle[k] / np.mean(settle[:4]) for k in (4, 6)]
print(
    "near the saddle, relative to the mean of the first four:",
    np.round(ratios_to_others, 2),
)
assert all(1.5 < r < 2.5 for r in ratios_to_others)

# %% [markdown]
# The start exactly on the line through the saddle stays on it, because the $x$-component of the
# gradient is zero all along that line, and slides into the saddle: gradient descent stops wherever the
# gradient vanishes, and cannot tell a saddle from a minimum. A thousandth to either side is enough to
# fall into one valley or the other ({numref}`fig-gradient-two-valleys`). Starts that land exactly on such
# a line are rare, but near a saddle the gradient is small and progress slow: the two runs that pass
# close to it need about twice as many steps to settle as the four others. Which minimum a run reaches,
# and how good it is, depends on the start.

# %% mystnb={"figure": {"caption": "Gradient descent on the two-valley function {eq}`eq-gradient-two-valleys` from seven starts (squares), learning rate 0.05, 60 steps. Dots mark the two minima and the cross the saddle point between them. Three starts lie on the line through the saddle and a thousandth to either side of it; the middle one ends at the saddle, its neighbours in different valleys.", "name": "fig-gradient-two-valleys"}}
fig, ax = plt.subplots(figsize=(7, 4.2))
levels = np.concatenate([np.linspace(-0.3, 1.2, 7), np.linspace(1.5, 9, 8)])
contour(ax, Panel(two_valleys, xlim=(-2, 2), ylim=(-1.7, 1.7), levels=levels))
for start, path in zip(starts, valley_paths, strict=True):
    (line,) = ax.plot(path[:, 0], path[:, 1], "-o", ms=2, lw=1)
    ax.plot(*start, "s", color=line.get_color(), ms=5)
ax.plot([left, right], [0, 0], "o", color="black", ms=7)
ax.plot(saddle, 0, "x", color="black", ms=9, mew=2)
ax.set_xlabel("$x$")
ax.set_ylabel("$y$")
plt.show()


# %% [markdown]
# ## Summary
#
# - The gradient {eq}`eq-gradient-vector` collects the partial derivatives; by
#   {eq}`eq-gradient-directional` it points in the direction of steepest ascent, perpendicular to the
#   contour lines, and its length is the slope there.
# - Gradients can be computed by hand, by central differences (error $\sim h^2$ plus rounding
#   $\sim \varepsilon / h$, best near $h \approx \varepsilon^{1/3}$) or by automatic differentiation with
#   `tf.GradientTape`, which is exact to rounding and costs a small constant multiple of one evaluation
#   of $f$ (plus memory for the intermediate values). We checked all three against each other.
# - Gradient descent {eq}`eq-gradient-update` lowers the loss for small enough steps, by the first-order
#   Taylor expansion {eq}`eq-gradient-taylor`.
# - On $(w+1)^2$ the distance to the minimum is multiplied by $1 - 2\alpha$ every step
#   {eq}`eq-gradient-closed-form`: slow convergence for tiny $\alpha$, one step at $0.5$, oscillating
#   convergence below $1$, a two-cycle at $1$, divergence above. The forty lines {cite:t}`src002` printed
#   are reproduced exactly, as strings.
# - With several parameters the largest curvature, the Hessian's largest eigenvalue, caps the learning
#   rate ({eq}`eq-gradient-stable-step`) and the smallest sets the pace; an elongated valley makes plain
#   gradient descent zig-zag. For an $L$-smooth loss every learning rate below $2/L$ descends
#   ({eq}`eq-gradient-descent-lemma`).
# - Away from bowls, gradient descent can only settle where the gradient vanishes: which
#   minimum, or even a saddle, depends on the start ({numref}`fig-gradient-two-valleys`).
#
# ## Exercises
#
# ```{exercise}
# :label: ex-gradient-hand
# Compute by hand the gradient of $h(x, y) = e^{x} \cos y + x y^2$ and check it against
# `tf.GradientTape` and against central differences at $(0.5, -1.2)$.
# ```
#
# ```{solution-start} ex-gradient-hand
# :class: dropdown
# ```
#
# $\nabla h = (e^x \cos y + y^2,\; -e^x \sin y + 2xy)$. The check, in float64:


# %%
def h_fn(x, y, exp=np.exp, cos=np.cos):
    return exp(x) * cos(y) + x * y**2


at = np.array([0.5, -1.2])
h_by_hand = np.array(
    [
        np.exp(at[0]) * np.cos(at[1]) + at[1] ** 2,
        -np.exp(at[0]) * np.sin(at[1]) + 2 * at[0] * at[1],
    ]
)
xy = tf.Variable(at)
with tf.GradientTape() as tape:
    value = h_fn(xy[0], xy[1], exp=tf.exp, cos=tf.cos)
h_by_tape = tape.gradient(value, xy).numpy()
h_by_differences = central_difference(h_fn, at, h=1e-5)
print(h_by_hand, h_by_tape, h_by_differences)
assert np.allclose(h_by_tape, h_by_hand, rtol=1e-14, atol=1e-14)
assert np.allclose(h_by_differences, h_by_hand, rtol=1e-8, atol=1e-8)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-gradient-steps
# On $(w+1)^2$ from $w_0 = 5$, how many steps does $\alpha = 0.2$ need before $|w_t + 1| < 10^{-6}$?
# Answer with {eq}`eq-gradient-closed-form`, then check it with `descend_toy_loss`. Which learning rate
# is fastest, and which other learning rate converges exactly as fast as $0.2$?
# ```
#
# ```{solution-start} ex-gradient-steps
# :class: dropdown
# ```
#
# $0.6^t \cdot 6 < 10^{-6}$ gives $t > \log(6 / 10^{-6}) / \log(1/0.6)$, printed below, so 31 steps.
# The fastest rate is $0.5$ (one step). The rate $0.8$ has factor $1 - 1.6 = -0.6$, the same size with the
# opposite sign: it converges equally fast, hopping from side to side.

# %%
step_bound = math.log(6e6) / math.log(1 / 0.6)
predicted_steps = math.ceil(step_bound)
ws_02, _ = descend_toy_loss(0.2)
ws_08, _ = descend_toy_loss(0.8)
first_close = int(np.argmax(np.abs(ws_02 + 1) < 1e-6))
print(
    f"t > {step_bound:.2f}: predicted {predicted_steps} steps, measured {first_close}"
)
print(
    f"distance after 10 steps: rate 0.2 {abs(ws_02[10] + 1):.6g}, "
    f"rate 0.8 {abs(ws_08[10] + 1):.6g}"
)
print(f"factor for 0.8: {1 - 2 * 0.8:+.1f}")
assert first_close == predicted_steps == 31
# the same distance at every step, to float32 rounding
assert np.allclose(np.abs(ws_02[:11] + 1), np.abs(ws_08[:11] + 1), rtol=1e-6, atol=0)
assert np.all(np.diff(np.sign(ws_08 + 1)[:20]) != 0)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-gradient-best-rate
# For the bowl {eq}`eq-gradient-bowl` with curvatures $1$ and $\kappa$, which fixed learning rate makes
# the *slower* of the two coordinates shrink fastest? What is the resulting factor per step, and what does
# it tend to as $\kappa$ grows?
# ```
#
# ```{solution-start} ex-gradient-best-rate
# :class: dropdown
# ```
#
# We want to minimise $\max(|1 - \alpha|, |1 - \alpha\kappa|)$. The first term falls and the second rises
# with $\alpha$ (past $1/\kappa$), so the optimum is where they are equal with opposite signs:
# $1 - \alpha = \alpha\kappa - 1$, that is $\alpha^\star = 2 / (1 + \kappa)$. The factor is then
# $(\kappa - 1)/(\kappa + 1)$, which tends to $1$ (no progress at all) as $\kappa \to \infty$. Nesterov's
# Theorem 2.1.15 {cite:p}`nesterov2004` gives the same step, $2/(\mu + L)$, and the same factor for the
# distance to the minimum on any $\mu$-strongly convex function with $L$-Lipschitz gradient
# ($\kappa = L/\mu$); a quadratic attains it. It is also the starting point of the analysis of momentum in {cite:t}`goh2017`. For $\kappa = 15$, a run with $\alpha^\star$ shrinks both
# coordinates by the same factor, and a step a little longer or shorter does worse:

# %%
kappa = 15.0
best_rate = 2 / (1 + kappa)


def slowest_factor(rate):
    """The per-step shrink of the slower coordinate, measured at the end of a run."""
    path = descend_2d(kappa, rate, [-4.5, 1.6], 30)
    return np.abs(path[-1] / path[-2]).max()


print(
    f"alpha* = {best_rate}, predicted factor {(kappa - 1) / (kappa + 1)}, "
    f"measured {slowest_factor(best_rate):.6f}"
)
assert math.isclose(slowest_factor(best_rate), (kappa - 1) / (kappa + 1), rel_tol=1e-9)
assert (
    slowest_factor(0.9 * best_rate)
    > slowest_factor(best_rate)
    < slowest_factor(1.1 * best_rate)
)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-gradient-float32
# Repeat the step-size study of {numref}`fig-gradient-fd-error` in float32 (compute $g$ and the
# differences in `np.float32`). Where is the best step now, and how accurate is the best central difference?
# ```
#
# ```{solution-start} ex-gradient-float32
# :class: dropdown
# ```
#
# Float32's machine epsilon is $2^{-23} \approx 1.2 \times 10^{-7}$, so the balance point $\varepsilon^{1/3}$
# moves up to about $5 \times 10^{-3}$, and the best error is only of the order of $\varepsilon^{2/3}$:

# %%
errors32 = np.array(
    [
        np.abs(central_difference(g, point, h, dtype=np.float32) - by_hand).max()
        for h in step_sizes
    ]
)
eps32 = np.finfo(np.float32).eps
best_step32 = step_sizes[np.argmin(errors32)]
print(
    f"float32: best step {best_step32:.1e} (eps^(1/3) = {eps32 ** (1 / 3):.1e}), "
    f"best error {errors32.min():.1e} (eps^(2/3) = {eps32 ** (2 / 3):.1e})"
)
print(f"float32 machine epsilon {eps32:.2e}")
assert eps32 == 2.0**-23
# the best step within one grid point of eps^(1/3), the error within 10x of eps^(2/3)
assert abs(np.log10(best_step32 / eps32 ** (1 / 3))) < 0.26
assert 0.1 < errors32.min() / eps32 ** (2 / 3) < 10
# far worse than float64
assert errors32.min() > 1e4 * errors.min()
relative32 = errors32.min() / np.abs(by_hand).max()
print(f"best float32 error relative to the gradient: {relative32:.0e}")
assert round(np.log10(relative32)) == -5

# %% [markdown]
# This is why gradient checking is done in float64: in float32 even the best central difference is off
# by a relative $10^{-5}$, so it cannot tell a correct gradient from one that is wrong by that much,
# where float64 resolves eleven significant digits.
#
# ```{solution-end}
# ```
