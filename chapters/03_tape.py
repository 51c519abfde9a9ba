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
# (ch-tape)=
# # The tape
#
# :::{admonition} What you will learn
# :class: tip
# - what `tf.GradientTape` records, when it records it, and why a gradient comes back `None`;
# - why a tape answers only once, and how `persistent=True`, `watch` and `watched_variables()` change that;
# - gradients of non-scalar targets, full Jacobians, per-example Jacobians, Hessians and Hessian-vector products;
# - how to cut the recording (`stop_recording`, `tf.stop_gradient`) and how to replace a gradient (`tf.custom_gradient`);
# - what a tape stores, from a reverse-mode tape of a few dozen lines checked against `tf.GradientTape`;
# - the everyday patterns: Keras variables, a compiled training step, Python constants in traced code,
#   nested structures, `tape.reset()`, and an operation with no gradient;
# - forward mode (`tf.autodiff.ForwardAccumulator`), and one gradient computed five ways: the three
#   automatic ones agree to rounding, finite differences do not.
# :::
#
# In graph mode, the subject of {ref}`ch-tf-gradients`, TensorFlow first builds the whole computation as a graph and
# then adds gradient operations to it: `tf.gradients` can walk backwards from any output because every
# operation is already written down. In TensorFlow 2 operations run *eagerly*, one at a time, as
# Python reaches them. There is no graph to walk. So TensorFlow keeps a **tape**: while a
# `tf.GradientTape` context is open, every operation that touches a *watched* tensor is written to it,
# together with what its backward pass needs. `tape.gradient` then plays the tape backwards. This is
# reverse-mode automatic differentiation {cite:p}`griewank2008,baydin2018`: for a function
# $\mathbf y = f(\mathbf x)$ with Jacobian $J_f$, and a weight $\bar{\mathbf y}$ on the outputs, one backward
# pass computes the **vector-Jacobian product**
#
# $$
# \bar{\mathbf x} = J_f(\mathbf x)^\top \bar{\mathbf y}, \qquad (J_f)_{ij} = \frac{\partial y_i}{\partial x_j},
# $$ (eq-tape-vjp)
#
# operation by operation, with the chain rule, from the last operation back to the first. For a scalar
# loss, $\bar{\mathbf y} = 1$ and $\bar{\mathbf x}$ is the gradient. Almost every surprise in this chapter
# follows from one fact: *the tape knows only what it saw happen, to tensors it was watching, while it was open.*

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import contextlib
import dataclasses
import io

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from gdbook.plotting import Panel, animate_paths, plot_paths, to_html

# %% [markdown]
# (tape-records)=
# ## What the tape records, and when
#
# The slides of {cite:t}`src004` start with the smallest possible example:
# $y = x w$ with $x = 2$ and $w = 1$, so $\partial y / \partial w = x = 2$. First the product is computed
# *before* the tape opens, and only the second, identical product is computed inside it.

# %%
w = tf.constant(1.0)
x = tf.constant(2.0)
y_before_tape = x * w  # computed while no tape is recording

with tf.GradientTape() as tape:
    tape.watch(w)  # w is a constant: it must be watched explicitly
    y_on_tape = x * w

grads_of_y_before = tape.gradient(y_before_tape, [w])
print("y computed before the tape opened:", grads_of_y_before)
assert grads_of_y_before == [None]

# %% [markdown]
# The tape holds no path from `w` to `y_before_tape`, so the gradient is `None`: "no connection", not zero.
# A new tape, with the product computed inside it, gives the slides' value of 2.0.

# %%
with tf.GradientTape() as tape:
    tape.watch(w)
    y_on_tape = x * w

grads_of_y_on_tape = tape.gradient(y_on_tape, [w])
print("y computed on the tape:", grads_of_y_on_tape)
assert grads_of_y_on_tape[0].numpy() == 2.0  # the value printed in the slides

# %% [markdown]
# For comparison, here is the same derivative in the TF1 style of the older posts this book reproduces
# {cite:p}`src000,src001`: graph, placeholder, session, through `tf.compat.v1`. No `watch` is needed: the
# graph already contains every operation, so the gradient function can differentiate with respect to any
# tensor in it, constants included. The function called here is `tf.compat.v1.gradients`, TF1's own, which
# still takes TF1's `colocate_gradients_with_ops` argument. TensorFlow 2's `tf.gradients`, used in
# {ref}`ch-tf-gradients` and in {ref}`tape-five-ways` below, is a separate function without that argument;
# both add gradient operations to a graph, and both refuse to run eagerly.

# %%
# TF1: build a graph, then add gradient ops to it, then run it in a session
tf1_graph = tf.Graph()
with tf1_graph.as_default():
    x_placeholder = tf.compat.v1.placeholder(tf.float32, shape=(), name="x")
    w_in_graph = tf.constant(1.0, name="w")
    y_in_graph = x_placeholder * w_in_graph
    (dy_dw_in_graph,) = tf.compat.v1.gradients(y_in_graph, [w_in_graph])

with tf.compat.v1.Session(graph=tf1_graph) as session:
    dy_dw_tf1 = session.run(dy_dw_in_graph, feed_dict={x_placeholder: 2.0})
print("TF1 dy/dw =", dy_dw_tf1)
assert dy_dw_tf1 == 2.0

# %% [markdown]
# Called eagerly, outside any graph, either gradient function raises the same error and points to the tape
# (the cell prints the two messages).

# %%
refusals = []
for gradients_function in (tf.compat.v1.gradients, tf.gradients):
    with gdbook.expect_error(RuntimeError, reraise=False) as refusal:
        gradients_function(y_on_tape, w)
    refusals.append(refusal.message)
assert tf.gradients is not tf.compat.v1.gradients
assert all("not supported when eager execution is enabled" in m for m in refusals)

# %% [markdown]
# What does the tape watch by itself? Every **trainable `tf.Variable`** that is read while it is open.
# Constants and other plain tensors are watched only if you ask with `tape.watch`. The method
# `watched_variables()` lists what the tape picked up.

# %%
weight = tf.Variable(3.0, name="weight")
bias = tf.Variable(0.5, name="bias")
inputs = tf.constant(2.0)

with tf.GradientTape() as tape:
    # no watch calls: variables are watched when they are first read
    output = weight * inputs + bias

watched_names = [v.name for v in tape.watched_variables()]
d_weight, d_bias, d_inputs = tape.gradient(output, [weight, bias, inputs])
print("watched:", watched_names)
print(
    "d/dweight =",
    d_weight.numpy(),
    " d/dbias =",
    d_bias.numpy(),
    " d/dinputs =",
    d_inputs,
)
assert watched_names == ["weight:0", "bias:0"]
assert d_weight.numpy() == 2.0 and d_bias.numpy() == 1.0 and d_inputs is None

# %% [markdown]
# The constant `inputs` was used on the tape, yet its gradient is `None`: nobody asked the tape to watch it.
#
# (tape-none)=
# ## Why is my gradient `None`? A gallery
#
# A `None` gradient is TensorFlow's way of saying "the target does not depend on this source *as far as the
# tape knows*". An optimizer given `None` skips the variable (Keras optimizers may warn, or raise if every
# gradient is `None`), so a `None` easily turns into a model that silently does not learn. Here are the six
# usual causes, each shown failing and then fixed.
#
# (tape-none-replaced)=
# ### The variable was replaced by a tensor
#
# `x = x + 1` does not change the variable; it makes a new *tensor* and rebinds the Python name to it. A
# tensor is not watched automatically, and is not what the optimizer would update anyway.

# %%
position = tf.Variable(3.0)
position = position + 1.0  # now an EagerTensor, no longer a Variable

with tf.GradientTape() as tape:
    height = position**2

grad_after_rebinding = tape.gradient(height, position)
print(type(position).__name__, "->", grad_after_rebinding)
assert not isinstance(position, tf.Variable) and grad_after_rebinding is None

# %% [markdown]
# The fix is to update the variable in place with `assign_add` (or `assign`), so the name still refers to it.

# %%
position = tf.Variable(3.0)
position.assign_add(1.0)  # still the same Variable, now holding 4.0

with tf.GradientTape() as tape:
    height = position**2

grad_in_place = tape.gradient(height, position)
print(type(position).__name__, "->", grad_in_place.numpy())
assert grad_in_place.numpy() == 2 * 4.0

# %% [markdown]
# (tape-none-numpy)=
# ### A NumPy step in the middle
#
# The tape records TensorFlow operations only. A trip through NumPy (or `float()`, or Python's `math`) produces
# a value that TensorFlow sees as a brand-new constant, cut off from everything before it.

# %%
scale = tf.Variable(3.0)

with tf.GradientTape() as tape:
    # .numpy() leaves TensorFlow: the tape sees nothing of what follows
    squared_in_numpy = np.square(scale.numpy())
    loss = tf.constant(squared_in_numpy) * 2.0

grad_through_numpy = tape.gradient(loss, scale)
print("through NumPy:", grad_through_numpy)
assert grad_through_numpy is None

# %% [markdown]
# Doing the same arithmetic with TensorFlow operations keeps the chain intact: $\partial (2s^2)/\partial s = 4s = 12$.

# %%
with tf.GradientTape() as tape:
    loss = tf.square(scale) * 2.0

grad_through_tf = tape.gradient(loss, scale)
print("through TensorFlow:", grad_through_tf.numpy())
assert grad_through_tf.numpy() == 4 * 3.0

# %% [markdown]
# (tape-none-integer)=
# ### An integer dtype
#
# Derivatives only make sense for real (floating or complex) values. The tape does not trace integer tensors
# or variables (an explicit `watch` of one only logs a warning, which `gdbook.setup()` keeps off the page),
# and the gradient is `None`.
# Python integer literals are the usual culprit: `tf.Variable(3)` is an `int32` variable.

# %%
count = tf.Variable(3)  # int32!

with tf.GradientTape() as tape:
    count_squared = count * count

grad_of_integer = tape.gradient(count_squared, count)
print(count.dtype.name, "->", grad_of_integer)
assert count.dtype == tf.int32 and grad_of_integer is None

# %% [markdown]
# Write the literal as a float (`3.0`) or pass `dtype=tf.float32`.

# %%
count = tf.Variable(3.0)

with tf.GradientTape() as tape:
    count_squared = count * count

grad_of_float = tape.gradient(count_squared, count)
print(count.dtype.name, "->", grad_of_float.numpy())
assert grad_of_float.numpy() == 6.0

# %% [markdown]
# (tape-none-nontrainable)=
# ### A non-trainable variable
#
# Variables created with `trainable=False` (a step counter, a batch-norm running mean) are not watched
# automatically: they are not meant to be trained.

# %%
frozen = tf.Variable(3.0, trainable=False)

with tf.GradientTape() as tape:
    frozen_squared = frozen * frozen

grad_of_frozen = tape.gradient(frozen_squared, frozen)
print("watched:", tape.watched_variables(), " gradient:", grad_of_frozen)
assert tape.watched_variables() == () and grad_of_frozen is None

# %% [markdown]
# If you really want its gradient (for a sensitivity analysis, say), watch it explicitly.

# %%
with tf.GradientTape() as tape:
    tape.watch(frozen)
    frozen_squared = frozen * frozen

grad_of_watched_frozen = tape.gradient(frozen_squared, frozen)
print("gradient:", grad_of_watched_frozen.numpy())
assert grad_of_watched_frozen.numpy() == 6.0

# %% [markdown]
# (tape-none-assign)=
# ### A stateful assignment
#
# `assign` stores a value into a variable; it is a side effect, and the tape does not differentiate through
# it. Reading the variable later starts a new chain that does not reach back to what was assigned.

# %%
source = tf.Variable(2.0)
buffer = tf.Variable(0.0)

with tf.GradientTape() as tape:
    buffer.assign(source * source)  # the chain from source ends here
    tripled = 3.0 * buffer

grad_through_assign = tape.gradient(tripled, source)
print("through assign:", grad_through_assign)
assert grad_through_assign is None

# %% [markdown]
# Keep intermediate results as tensors: $\partial (3s^2)/\partial s = 6s = 12$.

# %%
with tf.GradientTape() as tape:
    source_squared = source * source  # a tensor, recorded on the tape
    tripled = 3.0 * source_squared

grad_through_tensor = tape.gradient(tripled, source)
print("through a tensor:", grad_through_tensor.numpy())
assert grad_through_tensor.numpy() == 12.0

# %% [markdown]
# (tape-none-outside)=
# ### A value computed outside the tape
#
# This is the first example of the chapter in disguise, and the commonest form in real code: a
# preprocessing step, or a model call, made before the `with` block.

# %%
theta = tf.Variable(1.5)
features = 2.0 * theta  # computed before the tape opens

with tf.GradientTape() as tape:
    loss = features**2

grad_outside = tape.gradient(loss, theta)
print("features computed outside:", grad_outside)
assert grad_outside is None

# %% [markdown]
# Move everything that depends on what you differentiate inside the block: $\partial (2\theta)^2/\partial\theta = 8\theta = 12$.

# %%
with tf.GradientTape() as tape:
    features = 2.0 * theta
    loss = features**2

grad_inside = tape.gradient(loss, theta)
print("features computed inside:", grad_inside.numpy())
assert grad_inside.numpy() == 8 * 1.5

# %% [markdown]
# (tape-once)=
# ## A tape answers once
#
# By default a tape frees what it recorded as soon as `gradient` returns: the intermediate tensors the backward
# pass needs can be large (every activation of a network), and most programs need one gradient per step. A
# second call is an error.

# %% tags=["raises-exception"]
w = tf.constant(1.0)
with tf.GradientTape() as tape:
    tape.watch(w)
    y = x * w
first_answer = tape.gradient(y, w)

with gdbook.expect_error(RuntimeError) as second_call:
    tape.gradient(y, w)

# %% [markdown]
# The slides, made with an early TensorFlow 2 release, printed "GradientTape.gradient can only be called once on non-persistent tapes."
# TensorFlow 2.21 words it differently, and the word "jacobians" hints that `jacobian` counts as a use too.

# %%
print("TensorFlow", tf.__version__)
print("first answer:", first_answer.numpy())
print("second call:", second_call.message)
assert tf.__version__.startswith("2.21.")
assert first_answer.numpy() == 2.0
assert "non-persistent GradientTape" in second_call.message
assert "one set of gradients" in second_call.message

# %% [markdown]
# A **persistent** tape keeps its recording until the tape object is deleted, so it can answer many
# questions. Delete it (`del tape`) when you are done so that the memory is released.

# %%
with tf.GradientTape(persistent=True) as tape:
    tape.watch(w)
    y = x * w
    y_squared = y**2

dy_dw = tape.gradient(y, w)
dy_dw_again = tape.gradient(y, w)
dy2_dw = tape.gradient(y_squared, w)  # d(x w)^2/dw = 2 x^2 w = 8
del tape  # releases the recorded tensors
print(
    "dy/dw twice:",
    dy_dw.numpy(),
    dy_dw_again.numpy(),
    " d(y^2)/dw:",
    dy2_dw.numpy(),
)
assert dy_dw.numpy() == dy_dw_again.numpy() == 2.0 and dy2_dw.numpy() == 8.0

# %% [markdown]
# The opposite control is `watch_accessed_variables=False`: the tape then watches *only* what you pass to
# `watch`. This is how you differentiate with respect to a part of a model without recording the rest.

# %%
layer_a = tf.Variable(2.0, name="layer_a")
layer_b = tf.Variable(5.0, name="layer_b")

with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(layer_a)
    product = layer_a * layer_b

only_watched = [v.name for v in tape.watched_variables()]
grad_a, grad_b = tape.gradient(product, [layer_a, layer_b])
print("watched:", only_watched, " gradients:", grad_a.numpy(), grad_b)
assert only_watched == ["layer_a:0"] and grad_a.numpy() == 5.0 and grad_b is None


# %% [markdown]
# (tape-by-hand)=
# ## A tape written by hand
#
# What does a tape store? A small one, written in plain Python and NumPy, makes it visible. Every
# operation on a `Traced` value appends a record to its `MiniTape`: the output, and for each input the
# *local derivative* of the output with respect to that input, computed while the forward values are at
# hand. Constants that take part are wrapped too, but only what `watch` returned is a source you can ask for.


# %%
class Traced:
    """A float64 value whose operations are written to a MiniTape."""

    def __init__(self, value, tape):
        self.value, self.tape = np.asarray(value, dtype=np.float64), tape

    def _record(self, name, value, *inputs):
        # inputs: pairs (input, local derivative of the output w.r.t. it)
        output = Traced(value, self.tape)
        self.tape.records.append((name, output, inputs))
        return output

    def __add__(self, other):
        other = self.tape.lift(other)
        return self._record("add", self.value + other.value, (self, 1.0), (other, 1.0))

    def __mul__(self, other):
        other = self.tape.lift(other)
        mine, theirs = self.value, other.value
        return self._record("mul", mine * theirs, (self, theirs), (other, mine))

    __radd__, __rmul__ = __add__, __mul__


# %% [markdown]
# The backward pass walks the records from last to first. It keeps one *adjoint* per value, the derivative
# of the target with respect to it, starting from 1 for the target; each record passes its output's adjoint
# times the local derivative on to its inputs, and where a value feeds several operations the contributions
# add up. A source the walk never reaches keeps no adjoint: `None`, as with TensorFlow.


# %%
class MiniTape:
    def __init__(self):
        self.records = []

    def watch(self, value):
        return Traced(value, self)

    def lift(self, value):
        return value if isinstance(value, Traced) else Traced(value, self)

    def gradient(self, target, sources):
        adjoint = {id(target): np.ones_like(target.value)}
        for _, output, inputs in reversed(self.records):
            if id(output) not in adjoint:
                continue
            for value, local in inputs:
                upstream = adjoint[id(output)] * local
                adjoint[id(value)] = adjoint.get(id(value), 0.0) + upstream
        return [adjoint.get(id(source)) for source in sources]


# %% [markdown]
# Two elementary functions, sine and exponential, record their local derivatives the same way.


# %%
def mini_sin(value):
    return value._record("sin", np.sin(value.value), (value, np.cos(value.value)))


def mini_exp(value):
    exp_value = np.exp(value.value)
    return value._record("exp", exp_value, (value, exp_value))


# %% [markdown]
# For $y = x w + \sin x$ at $x = 2$, $w = 3$ the tape holds three records. The gradient with respect to $x$
# collects two contributions, $w$ through the product and $\cos x$ through the sine, because $x$ fans out.

# %%
mini = MiniTape()
x_mini, w_mini, unused_mini = mini.watch(2.0), mini.watch(3.0), mini.watch(5.0)
y_mini = x_mini * w_mini + mini_sin(x_mini)
for name, output, inputs in mini.records:
    locals_ = ", ".join(f"{float(local):.4f}" for _, local in inputs)
    print(f"{name:>4}: output {float(output.value):.4f}, local derivatives {locals_}")
dx_mini, dw_mini, dunused_mini = mini.gradient(y_mini, [x_mini, w_mini, unused_mini])
print("dy/dx =", dx_mini, " dy/dw =", dw_mini, " dy/d(unused) =", dunused_mini)
assert [name for name, _, _ in mini.records] == ["mul", "sin", "add"]
assert dx_mini == 3.0 + np.cos(2.0) and dw_mini == 2.0 and dunused_mini is None

# %% [markdown]
# On three functions of two vectors the hand-written tape and `tf.GradientTape` agree bit for bit: the two
# form the same float64 products and sums, only at different moments.

# %%
test_functions = {
    "x w + sin x": lambda x, w, sin, exp: x * w + sin(x),
    "exp(x x) w": lambda x, w, sin, exp: exp(x * x) * w,
    "x x x + 3 w": lambda x, w, sin, exp: x * x * x + 3.0 * w,
}
x_start, w_start = [0.5, -1.0], [2.0, 0.3]
for label, f in test_functions.items():
    mini = MiniTape()
    x_mini, w_mini = mini.watch(x_start), mini.watch(w_start)
    by_hand = mini.gradient(f(x_mini, w_mini, mini_sin, mini_exp), [x_mini, w_mini])
    x_tf = tf.constant(x_start, dtype=tf.float64)
    w_tf = tf.constant(w_start, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x_tf, w_tf])
        value = f(x_tf, w_tf, tf.sin, tf.exp)
    by_tf = [g.numpy() for g in tape.gradient(value, [x_tf, w_tf])]
    print(f"{label:>12}: d/dx {by_hand[0]}, d/dw {by_hand[1]}")
    for mine, theirs in zip(by_hand, by_tf, strict=True):
        np.testing.assert_array_equal(mine, theirs)

# %% [markdown]
# TensorFlow's tape differs in one respect: it does not compute local derivatives going forward. It records
# each operation's type, inputs and outputs, and during `gradient` calls the gradient function registered
# for that type ({ref}`tape-everyday` shows what happens when there is none). That is why it must keep the
# tensors those functions need until `gradient` runs, and why a non-persistent tape frees them afterwards.
#
# (tape-nonscalar)=
# ## Non-scalar targets and Jacobians
#
# What is "the gradient" of a vector? `tape.gradient(y, x)` answers with the gradient of the **sum** of the
# target's entries, that is {eq}`eq-tape-vjp` with $\bar{\mathbf y} = \mathbf 1$; the argument
# `output_gradients` sets any other weights $\bar{\mathbf y}$:
#
# $$
# \begin{aligned}
# \texttt{tape.gradient(y, x)} &= J^\top \mathbf 1 = \nabla_{\mathbf x} \textstyle\sum_i y_i, \\
# \texttt{tape.gradient(y, x, output}\_\texttt{gradients=}\bar{\mathbf y}\texttt{)} &= J^\top \bar{\mathbf y}.
# \end{aligned}
# $$ (eq-tape-sum)
#
# This is why a vector of per-example losses "works" without a `reduce_mean`: the tape silently sums it, and
# the gradient then grows with the batch size. For $y_i = x_i^2$ the Jacobian is diagonal, so the gradient is
# $2\mathbf x$, and weights $\bar{\mathbf y}$ multiply entry by entry.

# %%
points = tf.constant([1.0, 2.0, 3.0])
output_weights = tf.constant([1.0, 0.5, -1.0])

with tf.GradientTape(persistent=True) as tape:
    tape.watch(points)
    squares = points**2

grad_of_sum = tape.gradient(squares, points)
weighted = tape.gradient(squares, points, output_gradients=output_weights)
print("gradient of the sum:", grad_of_sum.numpy(), " weighted:", weighted.numpy())
np.testing.assert_array_equal(grad_of_sum.numpy(), 2 * points.numpy())
np.testing.assert_array_equal(
    weighted.numpy(), 2 * points.numpy() * output_weights.numpy()
)

# %% [markdown]
# When you need every entry of $J$, ask for `tape.jacobian`. It runs one backward pass per output entry
# (vectorised with `pfor` when it can), and here returns the diagonal matrix $\operatorname{diag}(2\mathbf x)$.

# %%
full_jacobian = tape.jacobian(squares, points)
del tape
print(full_jacobian.numpy())
np.testing.assert_array_equal(full_jacobian.numpy(), np.diag(2 * points.numpy()))


# %% [markdown]
# A batch is a common special case. If row $b$ of the output depends only on row $b$ of the input (no
# batch-norm, no mixing across examples), the full Jacobian of shape (batch, out, batch, in) is zero outside
# the blocks of each example. `batch_jacobian` computes only those blocks: shape (batch, out, in). The function
# below maps $(u, v) \mapsto (u v,\ u^2,\ \sin v)$ for each of three examples.


# %%
def per_example(batch):
    u, v = batch[:, 0], batch[:, 1]
    return tf.stack([u * v, u**2, tf.sin(v)], axis=1)


batch = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
with tf.GradientTape(persistent=True) as tape:
    tape.watch(batch)
    batch_outputs = per_example(batch)

jacobian_all = tape.jacobian(batch_outputs, batch)  # (3, 3, 3, 2)
jacobian_blocks = tape.batch_jacobian(batch_outputs, batch)  # (3, 3, 2)
del tape
print("jacobian:", jacobian_all.shape, " batch_jacobian:", jacobian_blocks.shape)


# %% [markdown]
# Each block is the analytic $3\times 2$ Jacobian of one example, and everything outside the blocks is zero,
# as {numref}`fig-tape-jacobian-blocks` shows.


# %%
def analytic_block(u, v):
    return np.array([[v, u], [2 * u, 0.0], [0.0, np.cos(v)]])


analytic_blocks = np.stack([analytic_block(u, v) for u, v in batch.numpy()])
diagonal_blocks = np.stack([jacobian_all.numpy()[b, :, b, :] for b in range(3)])
# pairs (example of y, example of x) that differ
outside_blocks = ~np.eye(3, dtype=bool)
off_block_mass = np.abs(
    jacobian_all.numpy().transpose(0, 2, 1, 3)[outside_blocks]
).sum()
block_error = np.max(np.abs(jacobian_blocks.numpy() - analytic_blocks))
print(
    f"batch_jacobian vs analytic: {block_error:.1e};"
    f" sum |J| outside the blocks: {off_block_mass}"
)
assert block_error < 1e-6
np.testing.assert_array_equal(diagonal_blocks, jacobian_blocks.numpy())
assert off_block_mass == 0.0

# %% [markdown]
# The figure draws the magnitude of every entry of the full Jacobian, with the blocks outlined.

# %% mystnb={"figure": {"caption": "The full Jacobian of a per-example function of a batch of three, flattened to 9 outputs by 6 inputs. Only the three blocks on the diagonal (one per example) can be non-zero; `batch_jacobian` returns just those blocks.", "name": "fig-tape-jacobian-blocks"}}
flat_jacobian = jacobian_all.numpy().reshape(9, 6)
fig, ax = plt.subplots(figsize=(4.2, 5.0))
image = ax.imshow(np.abs(flat_jacobian), cmap="Blues")
for b in range(3):
    ax.add_patch(
        plt.Rectangle((2 * b - 0.5, 3 * b - 0.5), 2, 3, fill=False, ec="#D55E00", lw=2)
    )
ax.set_xticks(range(6), [f"x{b}.{c}" for b in range(3) for c in "uv"])
ax.set_yticks(range(9), [f"y{b}.{i}" for b in range(3) for i in range(3)])
ax.grid(False)
ax.set_title("|dy/dx|, outlined: batch_jacobian blocks")
fig.colorbar(image, ax=ax, shrink=0.7)
plt.show()

# %% [markdown]
# (tape-higher)=
# ## Higher-order derivatives
#
# A gradient computed while an outer tape is open is itself a sequence of operations, so the outer tape
# records it and can differentiate it again. The slides {cite:p}`src004` try this on $y = x w + b$,
# expecting `None` for the second derivative because $\partial y / \partial w = x$ does not depend on $w$.
# But their `x` and `w` are the constants of their first example, which no tape watches (their `b` is never
# defined; a constant here), so even the *first* derivatives are `None`, which is this chapter's thesis again:

# %%
x, w, b = tf.constant(2.0), tf.constant(1.0), tf.constant(0.5)
with tf.GradientTape() as outer_tape:
    with tf.GradientTape() as inner_tape:
        y = x * w + b
    first_derivatives = inner_tape.gradient(y, [w, b])
print("constants, never watched: dy/dw, dy/db =", first_derivatives)
assert first_derivatives == [None, None]

# %% [markdown]
# To get the second derivative the slides mean, we make `x`, `w` and `b` variables, which both tapes
# watch when they are read. Now the first derivative $\partial y / \partial w = x$ is 2, and the second is
# `None`: the outer tape saw no operation connecting $x$ back to $w$.

# %%
x = tf.Variable(2.0)
w = tf.Variable(1.0)
b = tf.Variable(0.5)

with tf.GradientTape() as outer_tape:
    with tf.GradientTape() as inner_tape:
        y = x * w + b
    dy_dw, dy_db = inner_tape.gradient(y, [w, b])
d2y_dw2 = outer_tape.gradient(dy_dw, w)
print("dy/dw =", dy_dw.numpy(), " dy/db =", dy_db.numpy(), " d2y/dw2 =", d2y_dw2)
assert dy_dw.numpy() == 2.0 and dy_db.numpy() == 1.0 and d2y_dw2 is None

# %% [markdown]
# `None` here is mathematically a zero. When you would rather get zeros (to add gradients up, say), pass
# `unconnected_gradients=tf.UnconnectedGradients.ZERO`.

# %%
with tf.GradientTape() as outer_tape:
    with tf.GradientTape() as inner_tape:
        y = x * w + b
    dy_dw = inner_tape.gradient(y, w)
d2y_dw2_zero = outer_tape.gradient(
    dy_dw, w, unconnected_gradients=tf.UnconnectedGradients.ZERO
)
print("d2y/dw2 with ZERO:", d2y_dw2_zero.numpy())
assert d2y_dw2_zero.numpy() == 0.0

# %% [markdown]
# A derivative that is not constant gives a real second derivative. For $x^3$, the first is $3x^2$ and the
# second $6x$; nesting the tapes over a whole grid of points at once (each $x_i^3$ depends only on its own
# $x_i$, so the gradient of the sum is the elementwise derivative) gives the curves of
# {numref}`fig-tape-cubic`.

# %%
grid_x = tf.constant(np.linspace(-2.0, 2.0, 81))  # float64

with tf.GradientTape() as outer_tape:
    outer_tape.watch(grid_x)
    with tf.GradientTape() as inner_tape:
        inner_tape.watch(grid_x)
        cube = grid_x**3
    first = inner_tape.gradient(cube, grid_x)
second = outer_tape.gradient(first, grid_x)

error_first = np.max(np.abs(first.numpy() - 3 * grid_x.numpy() ** 2))
error_second = np.max(np.abs(second.numpy() - 6 * grid_x.numpy()))
print(f"max error of 3x^2: {error_first:.1e}, of 6x: {error_second:.1e}")
assert error_first < 1e-12 and error_second < 1e-12

# %% [markdown]
# The figure draws the three tape curves over the analytic ones.

# %% mystnb={"figure": {"caption": "$x^3$ and its first two derivatives from nested tapes (solid), on the analytic $3x^2$ and $6x$ (dashed). The curves coincide to within $10^{-12}$.", "name": "fig-tape-cubic"}}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(grid_x, cube, label="$x^3$")
ax.plot(grid_x, first, label="inner tape: $3x^2$")
ax.plot(grid_x, second, label="outer tape: $6x$")
ax.plot(grid_x, 3 * grid_x.numpy() ** 2, "k--", lw=1, label="analytic")
ax.plot(grid_x, 6 * grid_x.numpy(), "k--", lw=1)
ax.set_xlabel("$x$")
ax.legend(ncols=2)
plt.show()


# %% [markdown]
# For a function of several variables the second derivatives form the **Hessian** matrix. Take
#
# $$
# f(u, v) = u^2 v + \sin(u v), \qquad
# \nabla f = \begin{pmatrix} 2uv + v\cos(uv) \\ u^2 + u\cos(uv) \end{pmatrix}, \qquad
# H = \begin{pmatrix} 2v - v^2\sin(uv) & 2u + \cos(uv) - uv\sin(uv) \\
# 2u + \cos(uv) - uv\sin(uv) & -u^2\sin(uv) \end{pmatrix}.
# $$ (eq-tape-f2d)
#
# The Hessian is the Jacobian of the gradient: an inner tape produces the gradient vector, and the outer tape's
# `jacobian` differentiates it. We work in float64 so that the comparison can be tight.


# %%
def f2d(p):
    u, v = p[0], p[1]
    return u**2 * v + tf.sin(u * v)


def f2d_gradient_analytic(u, v):
    return np.array([2 * u * v + v * np.cos(u * v), u**2 + u * np.cos(u * v)])


def f2d_hessian_analytic(u, v):
    mixed = 2 * u + np.cos(u * v) - u * v * np.sin(u * v)
    return np.array(
        [
            [2 * v - v**2 * np.sin(u * v), mixed],
            [mixed, -(u**2) * np.sin(u * v)],
        ]
    )


# %% [markdown]
# The tapes then compute the Hessian at $(u, v) = (1, 2)$, and we compare it with the formula.

# %%
uv_point = tf.constant([1.0, 2.0], dtype=tf.float64)
with tf.GradientTape() as outer_tape:
    outer_tape.watch(uv_point)
    with tf.GradientTape() as inner_tape:
        inner_tape.watch(uv_point)
        value = f2d(uv_point)
    gradient = inner_tape.gradient(value, uv_point)
hessian = outer_tape.jacobian(gradient, uv_point)

hessian_error = np.max(np.abs(hessian.numpy() - f2d_hessian_analytic(1.0, 2.0)))
print(hessian.numpy())
print(f"max |H_tape - H_analytic| = {hessian_error:.1e}")
assert hessian_error < 1e-14

# %% [markdown]
# A Hessian of $n$ parameters has $n^2$ entries; for a network with a million weights that is out of the
# question. Many methods (Newton-CG, curvature estimates) need only **Hessian-vector products**, and one costs a
# small constant multiple of one gradient, whatever the number of parameters {cite:p}`pearlmutter1994`:
#
# $$
# H \mathbf v = \nabla_{\mathbf x}\big(\nabla_{\mathbf x} f(\mathbf x)^\top \mathbf v\big).
# $$ (eq-tape-hvp)
#
# The inner gradient is dotted with the fixed vector $\mathbf v$, giving a scalar, and the outer tape takes the
# gradient of that scalar. The test function below, $f(\mathbf x) = \tfrac12 \mathbf x^\top A \mathbf x + \sum_i
# \cos x_i$ in 50 dimensions, has the Hessian $A - \operatorname{diag}(\cos \mathbf x)$, which we build only to
# check the product.

# %%
rng = np.random.default_rng(3)
dimension = 50
random_matrix = rng.standard_normal((dimension, dimension))
symmetric_a = tf.constant(random_matrix + random_matrix.T)
hvp_point = tf.constant(rng.standard_normal(dimension))
hvp_direction = tf.constant(rng.standard_normal(dimension))


def quadratic_plus_cos(x):
    quadratic = 0.5 * tf.tensordot(x, tf.linalg.matvec(symmetric_a, x), 1)
    return quadratic + tf.reduce_sum(tf.cos(x))


def hessian_vector_product(f, x, v):
    with tf.GradientTape() as outer_tape:
        outer_tape.watch(x)
        with tf.GradientTape() as inner_tape:
            inner_tape.watch(x)
            value = f(x)
        grad = inner_tape.gradient(value, x)
        # a scalar, recorded by the outer tape
        grad_dot_v = tf.reduce_sum(grad * v)
    return outer_tape.gradient(grad_dot_v, x)


# %% [markdown]
# The product from two tapes matches the product with the explicit Hessian.

# %%
hvp = hessian_vector_product(quadratic_plus_cos, hvp_point, hvp_direction)
hessian_analytic = symmetric_a.numpy() - np.diag(np.cos(hvp_point.numpy()))
hvp_error = np.max(np.abs(hvp.numpy() - hessian_analytic @ hvp_direction.numpy()))
print(f"max |Hv (two tapes) - Hv (explicit H)| = {hvp_error:.1e}")
assert hvp_error < 1e-12

# %% [markdown]
# (tape-stopping)=
# ## Cutting the recording, and control flow
#
# Two tools keep something off the backward pass. `tape.stop_recording()` pauses the tape: operations inside
# the block are not recorded at all (useful for metrics or logging computed inside a training step, which
# would otherwise hold memory). `tf.stop_gradient(t)` returns the value of `t` as a new tensor that
# the tape does not connect to `t`: the output counts as a constant (useful for targets that must not move,
# like the fixed target of a semi-gradient update). Here $10w$ is kept off the backward pass both ways,
# leaving $\partial (w^2)/\partial w = 2w$ instead of $2w + 10$.

# %%
w = tf.Variable(3.0)

with tf.GradientTape() as tape:
    squared = w * w
    with tape.stop_recording():
        not_recorded = 10.0 * w
    total = squared + not_recorded
grad_with_pause = tape.gradient(total, w)

with tf.GradientTape() as tape:
    total = w * w + tf.stop_gradient(10.0 * w)
grad_with_stop = tape.gradient(total, w)

with tf.GradientTape() as tape:
    total = w * w + 10.0 * w
grad_unstopped = tape.gradient(total, w)
print("stop_recording:", grad_with_pause.numpy())
print("stop_gradient:", grad_with_stop.numpy())
print("neither:", grad_unstopped.numpy())
assert grad_with_pause.numpy() == grad_with_stop.numpy() == 2 * 3.0
assert grad_unstopped.numpy() == 2 * 3.0 + 10.0

# %% [markdown]
# The stopped term contributes no gradient because it is *unconnected*, not because a zero flows through it.
# With nothing else connecting the target to $w$, the tape answers `None`, as in {ref}`tape-none`.

# %%
with tf.GradientTape() as tape:
    only_stopped = tf.stop_gradient(10.0 * w)
grad_only_stopped = tape.gradient(only_stopped, w)
print("gradient of tf.stop_gradient(10 w) alone:", grad_only_stopped)
assert grad_only_stopped is None


# %% [markdown]
# Python control flow needs no special support: the tape records the operations that actually ran. An `if`
# records the branch taken, and a loop records one copy of its body per iteration. The piecewise function
# $g(x) = x^2$ for $x > 0$ and $-3x$ otherwise, and a loop that multiplies by $x$ four times, show both.


# %%
def piecewise(x):
    # a Python if, decided by the value at run time
    if x > 0:
        return x**2
    return -3.0 * x


branch_grads = {}
for start in (2.0, -2.0):
    branch_point = tf.constant(start)
    with tf.GradientTape() as tape:
        tape.watch(branch_point)
        branch_value = piecewise(branch_point)
    branch_grads[start] = tape.gradient(branch_value, branch_point).numpy()
print("g'(2) =", branch_grads[2.0], " g'(-2) =", branch_grads[-2.0])
assert branch_grads == {2.0: 4.0, -2.0: -3.0}


# %% [markdown]
# The loop unrolls on the tape: four multiplications are recorded, and their gradients chain to $4x^3$.


# %%
def power_by_loop(x, times):
    result = tf.ones_like(x)
    for _ in range(times):
        result = result * x
    return result


loop_point = tf.constant(1.5)
with tf.GradientTape() as tape:
    tape.watch(loop_point)
    fourth_power = power_by_loop(loop_point, 4)
loop_grad = tape.gradient(fourth_power, loop_point).numpy()
print("d(x^4)/dx at 1.5 =", loop_grad)
assert loop_grad == 4 * 1.5**3

# %% [markdown]
# (tape-where-nan)=
# `tf.where` is different: it is not control flow but *one* operation that picks, element by element, between
# two tensors that were **both** computed in full before it ran. Both branches are recorded; the backward
# pass of `tf.where` sends a zero upstream gradient into the unused branch, whose own backward pass
# multiplies that zero by its local derivative. If that derivative is infinite or NaN, $0 \cdot \infty$ is NaN. The classic case is a square root guarded
# against negative inputs, here written as the power $x^{0.5}$.

# %%
values = tf.constant([-1.0, 0.0, 4.0])

with tf.GradientTape() as tape:
    tape.watch(values)
    guarded_root = tf.where(values > 0, values**0.5, 0.0)
grad_where = tape.gradient(guarded_root, values)

with tf.GradientTape() as tape:
    tape.watch(values)
    # the root never sees x <= 0
    safe_input = tf.where(values > 0, values, 1.0)
    safe_root = tf.where(values > 0, safe_input**0.5, 0.0)
grad_safe = tape.gradient(safe_root, values)

print("values:", guarded_root.numpy(), safe_root.numpy())
print(
    "gradient, single where:",
    grad_where.numpy(),
    " double where:",
    grad_safe.numpy(),
)
assert np.isnan(grad_where.numpy()[:2]).all() and grad_where.numpy()[2] == 0.25
np.testing.assert_array_equal(grad_safe.numpy(), [0.0, 0.0, 0.25])

# %% [markdown]
# The forward values are the same in both versions; only the gradient of the first is poisoned. The fix, a
# "double `where`", makes the unused branch compute something harmless. Many tutorials show this trap with
# `tf.sqrt`; in TensorFlow 2.21 that particular case no longer bites, because the kernel behind the square
# root's gradient returns 0 where the upstream gradient is 0, even though the plain gradient at $-1$ and $0$
# is NaN and $\infty$. Other operations, like the power above or `tf.math.log` at 0, have no such guard.

# %%
with tf.GradientTape(persistent=True) as tape:
    tape.watch(values)
    plain_sqrt = tf.sqrt(values)
    guarded_sqrt = tf.where(values > 0, tf.sqrt(values), 0.0)
    guarded_log = tf.where(values > 0, tf.math.log(values), 0.0)
sqrt_plain_grad = tape.gradient(plain_sqrt, values).numpy()
sqrt_guarded_grad = tape.gradient(guarded_sqrt, values).numpy()
log_guarded_grad = tape.gradient(guarded_log, values).numpy()
del tape
print(
    "sqrt:",
    sqrt_plain_grad,
    " sqrt in where:",
    sqrt_guarded_grad,
    " log in where:",
    log_guarded_grad,
)
assert np.isnan(sqrt_plain_grad[0]) and np.isinf(sqrt_plain_grad[1])
np.testing.assert_array_equal(sqrt_guarded_grad, [0.0, 0.0, 0.25])
assert np.isnan(log_guarded_grad[1])


# %% [markdown]
# (tape-custom)=
# ## Writing your own gradient
#
# `tf.custom_gradient` wraps a function and supplies its backward pass by hand. The function returns its value
# and a `grad` function that maps the upstream gradient $\bar y$ to $\bar x$. Two uses are common:
# numerical stability, and changing the gradient on purpose.
#
# The **softplus** $s(x) = \log(1 + e^x)$ is a smooth ReLU. Written naively, $e^x$ overflows float32 for
# $x > \ln(3.4\times 10^{38}) \approx 88.72$; the value becomes $\infty$, and the chain rule gives
# $\frac{1}{1+e^x}\cdot e^x = \frac{1}{\infty}\cdot\infty = 0\cdot\infty$, which is NaN. The stable form
# and its derivative are
#
# $$
# s(x) = \max(x, 0) + \log\!\big(1 + e^{-|x|}\big), \qquad s'(x) = \frac{1}{1 + e^{-x}} = \sigma(x),
# $$ (eq-tape-softplus)
#
# where $e^{-|x|} \le 1$ can never overflow. We give the stable form the gradient $\bar y\,\sigma(x)$.


# %%
def softplus_naive(x):
    return tf.math.log(1.0 + tf.exp(x))


@tf.custom_gradient
def softplus_stable(x):
    value = tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))

    def grad(upstream):
        return upstream * tf.sigmoid(x)

    return value, grad


def value_and_grad(f, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = f(x)
    return value.numpy(), tape.gradient(value, x).numpy()


softplus_grid = tf.constant(np.linspace(-20.0, 100.0, 1201), dtype=tf.float32)
naive_value, naive_grad = value_and_grad(softplus_naive, softplus_grid)
stable_value, stable_grad = value_and_grad(softplus_stable, softplus_grid)
library_value, library_grad = value_and_grad(tf.math.softplus, softplus_grid)

# %% [markdown]
# Where does the naive version break? The float32 limits decide it, so we compute them first: the largest
# float32 number, the smallest *normal* one (below it come the "subnormal" numbers, with fewer significant
# bits), and the rounding unit, the largest relative error of one correctly rounded operation.

# %%
float32 = np.finfo(np.float32)
# exp(x) = inf beyond this
overflow_point = np.log(float32.max)
# 1 / (1 + exp(x)) is subnormal beyond this
flush_point = np.log(1 / float32.tiny)
print(
    f"largest float32 {gdbook.sci(float32.max)}, smallest normal {gdbook.sci(float32.tiny, 2)}"
)
print(f"rounding unit eps/2 = {float32.eps / 2:.1e}")
print(f"exp overflows above x = {overflow_point:.4f}")
print(f"1/(1 + e^x) is subnormal above x = {flush_point:.4f}")

# %% [markdown]
# Beyond $x \approx 88.72$, where $e^x$ overflows, the value is $\infty$ and the gradient NaN. A little before
# that the gradient is *silently wrong*. The tape differentiates $\log(1 + e^x)$ as the upstream gradient
# times `tf.math.reciprocal(1 + e^x)` (the gradient registered for `Log`), then times $e^x$ (the gradient of
# `Exp`). Once $x > \ln(1/1.18\times10^{-38}) \approx 87.34$ that reciprocal is subnormal, and TensorFlow's
# CPU kernels flush subnormal results to zero (NumPy keeps them): the chain rule returns exactly 0 where the
# true slope is 1.

# %%
x_values = softplus_grid.numpy()
beyond = x_values > overflow_point
flushed = (x_values > flush_point) & ~beyond
below_flush = x_values < flush_point
naive_error = np.abs(naive_grad - stable_grad)
print(
    f"naive gradient exactly 0 at {flushed.sum()} grid points;"
    f" NaN at {np.isnan(naive_grad).sum()} (value inf at {np.isinf(naive_value).sum()})"
    f" of the {beyond.sum()} points beyond {overflow_point:.2f}"
)
assert flushed.sum() > 0 and np.all(naive_grad[flushed] == 0.0)
assert np.array_equal(np.isnan(naive_grad), beyond)
assert np.array_equal(np.isinf(naive_value), beyond)
tiny_quotient = tf.math.reciprocal(tf.constant(1e38)).numpy()
print("TensorFlow 1/1e38:", tiny_quotient, " NumPy:", np.float32(1) / np.float32(1e38))
assert tiny_quotient == 0.0 and np.float32(1) / np.float32(1e38) > 0

# %% [markdown]
# Below $87.34$ the naive gradient is not exact either. The first grid point where it is off from
# $\sigma(x)$ by more than $10^{-6}$ is $x =$ {glue:text}`ch3_first_drift:.1f`; from there up to $87.34$,
# {glue:text}`ch3_drift_points` of the {glue:text}`ch3_drift_span` grid points are, by up to
# {glue:text}`ch3_naive_drift:.1e`.

# %%
from myst_nb import glue

first_drift = x_values[below_flush & (naive_error > 1e-6)].min()
naive_drift = naive_error[below_flush].max()
glue("ch3_first_drift", float(first_drift), display=False)
glue("ch3_naive_drift", float(naive_drift), display=False)
span = below_flush & (x_values >= first_drift)
drift_points = int(np.sum(span & (naive_error > 1e-6)))
glue("ch3_drift_points", drift_points, display=False)
glue("ch3_drift_span", int(span.sum()), display=False)
print(
    f"first off by more than 1e-6 at x = {first_drift:.1f}; largest {naive_drift:.1e};"
    f" {drift_points} of the {span.sum()} points from there on"
)
assert 70 < first_drift < 80 and naive_drift > 1000 * float32.eps / 2

# %% [markdown]
# That is not float32 running out of precision: the factor $1/(1 + e^x)$ is still a normal number, and
# float32 keeps its full relative precision, the rounding unit $6 \times 10^{-8}$, all the way down to
# $1.18 \times 10^{-38}$. The error comes from the reciprocal kernel itself. Measured against float64 on the
# same float32 inputs between $x = 60$ and $87.34$, `tf.math.reciprocal` is off by up to
# {glue:text}`ch3_reciprocal_error:.1e` (relative), while TensorFlow's division `1 / t` and NumPy's reciprocal are correctly rounded; and the
# naive gradient is, bit for bit, that reciprocal times $e^x$.

# %%
exps = tf.exp(softplus_grid)
denominators = 1.0 + exps
in_range = (x_values > 60) & below_flush
exact = 1.0 / denominators.numpy()[in_range].astype(np.float64)
kernels = {
    "tf.math.reciprocal": tf.math.reciprocal(denominators).numpy(),
    "tf.divide(1, t)": tf.divide(1.0, denominators).numpy(),
    "np.reciprocal": np.reciprocal(denominators.numpy()),
}
relative = {k: np.max(np.abs(v[in_range] / exact - 1)) for k, v in kernels.items()}
for kernel, error in relative.items():
    print(f"{kernel:>18}: largest relative error {error:.1e}")
glue("ch3_reciprocal_error", float(relative["tf.math.reciprocal"]), display=False)
assert relative["tf.math.reciprocal"] > 1000 * float32.eps / 2
# correctly rounded: equal to the float64 quotient rounded to float32
for kernel in ("tf.divide(1, t)", "np.reciprocal"):
    np.testing.assert_array_equal(kernels[kernel][in_range], exact.astype(np.float32))
rebuilt = kernels["tf.math.reciprocal"][below_flush] * exps.numpy()[below_flush]
np.testing.assert_array_equal(rebuilt, naive_grad[below_flush])

# %% [markdown]
# The stable version has none of these problems, and matches TensorFlow's own `tf.math.softplus`.

# %%
value_gap = np.max(np.abs(stable_value - library_value))
grad_gap = np.max(np.abs(stable_grad - library_grad))
print(f"stable vs tf.math.softplus: values {value_gap:.1e}, gradients {grad_gap:.1e}")
assert np.all(np.isfinite(stable_grad)) and value_gap < 1e-5 and grad_gap < 1e-6

# %% [markdown]
# {numref}`fig-tape-softplus` shows the two gradients. The TensorFlow docstring of `tf.custom_gradient` uses
# this very example, but its version still returns $\log(1 + e^x)$ as the value, which is $\infty$ beyond 88.72:
# it fixes the gradient only. Eq. {eq}`eq-tape-softplus` fixes both.

# %% mystnb={"figure": {"caption": "Gradient of the softplus. The naive tape gradient of $\\log(1+e^x)$ (orange) drops to exactly 0 beyond $x \\approx 87.34$, where a factor underflows and is flushed to zero (light shading), and is NaN, so not drawn, beyond $x \\approx 88.72$, where $e^x$ overflows float32 (dark shading). The custom gradient $\\sigma(x)$ (blue) is right everywhere. The inset magnifies $85 \\le x \\le 90$.", "name": "fig-tape-softplus"}}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
zoom = ax.inset_axes([0.3, 0.14, 0.3, 0.55])  # a close-up of 85 <= x <= 90
for axes in (ax, zoom):
    axes.axvspan(flush_point, overflow_point, color="0.9", label="factor flushed to 0")
    axes.axvspan(overflow_point, 100, color="0.75", label="$e^x$ overflows")
    axes.plot(softplus_grid, stable_grad, lw=3, label="custom gradient $\\sigma(x)$")
    axes.plot(softplus_grid, naive_grad, "--", label="naive tape gradient")
    axes.set_ylim(-0.1, 1.15)
zoom.set_xlim(85, 90)
zoom.set_title("close-up", fontsize="small")
zoom.tick_params(labelsize="small")
ax.set_xlabel("$x$")
ax.set_ylabel("$ds/dx$")
ax.legend(loc="center right", fontsize="small")
plt.show()


# %% [markdown]
# The second use changes the gradient on purpose. **Gradient clipping** usually rescales gradients after
# they are computed; with a custom gradient it can happen *inside* the backward pass, at a chosen point of the
# network. The function below is the identity going forward, and going backward it rescales the upstream
# gradient to a norm of at most `max_norm`.


# %%
def clip_gradient_norm(max_norm):
    @tf.custom_gradient
    def identity_with_clipped_gradient(x):
        def grad(upstream):
            return tf.clip_by_norm(upstream, max_norm)

        return tf.identity(x), grad

    return identity_with_clipped_gradient


# %% [markdown]
# On $\tfrac12\|\mathbf x\|^2$ at $(3, -4)$ the gradient is the point itself, of norm 5; clipped to norm 1 it is
# $(0.6, -0.8)$, while the loss is unchanged.

# %%
clip_to_one = clip_gradient_norm(1.0)
vector = tf.constant([3.0, -4.0])
with tf.GradientTape(persistent=True) as tape:
    tape.watch(vector)
    plain_loss = 0.5 * tf.reduce_sum(vector**2)  # gradient = vector, norm 5
    clipped_loss = 0.5 * tf.reduce_sum(clip_to_one(vector) ** 2)

plain_grad = tape.gradient(plain_loss, vector)
clipped_grad = tape.gradient(clipped_loss, vector)
del tape
print("losses:", plain_loss.numpy(), clipped_loss.numpy())
print(
    "gradients:",
    plain_grad.numpy(),
    clipped_grad.numpy(),
    " norm:",
    np.linalg.norm(clipped_grad),
)
assert plain_loss.numpy() == clipped_loss.numpy() == 12.5
np.testing.assert_allclose(clipped_grad.numpy(), [0.6, -0.8], rtol=1e-6)


# %% [markdown]
# Gradient descent with this clipped gradient takes steps of length at most $\alpha \cdot$ `max_norm`: far from
# the minimum it walks at a constant pace along the direction of steepest descent, and only near the minimum,
# where the gradient is small, does it behave like plain descent. On the elongated bowl
# $q(u, v) = \tfrac12(u^2 + 8v^2)$, with learning rate $\alpha = 0.2$, {numref}`fig-tape-clipped-paths` and the
# animation below show the difference.


# %%
def bowl(p):
    return 0.5 * (p[0] ** 2 + 8.0 * p[1] ** 2)


def descend(transform, start, learning_rate=0.2, steps=40):
    params = tf.Variable(start)
    path = [params.numpy().copy()]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = bowl(transform(params))
        params.assign_sub(learning_rate * tape.gradient(loss, params))
        path.append(params.numpy().copy())
    return np.array(path)


# %% [markdown]
# Both walks start from $(-4.5, 1)$: plain descent, and descent with the gradient clipped to norm 1 inside
# the backward pass.

# %%
start = [-4.5, 1.0]
plain_path = descend(tf.identity, start)
clipped_path = descend(clip_gradient_norm(1.0), start)
clipped_steps = np.linalg.norm(np.diff(clipped_path, axis=0), axis=1)
plain_steps = np.linalg.norm(np.diff(plain_path, axis=0), axis=1)
print(
    f"first step: plain {plain_steps[0]:.3f}, clipped {clipped_steps[0]:.3f}"
    " (bound 0.2 x 1.0)"
)
print(
    f"longest clipped step {clipped_steps.max():.6f};"
    " final distance to the minimum:"
    f" plain {np.linalg.norm(plain_path[-1]):.1e},"
    f" clipped {np.linalg.norm(clipped_path[-1]):.1e}"
)
assert clipped_steps.max() <= 0.2 * 1.0 + 1e-6 and plain_steps[0] > 0.5
assert np.linalg.norm(plain_path[-1]) < 1e-3 < np.linalg.norm(clipped_path[-1]) < 2e-2

# %% [markdown]
# The clipped walk's step is $0.2$, up to float32 rounding, as long as the true gradient's norm is at least 1, and shorter
# after that; the plain walk's $v$ changes sign at every one of the first 25 steps.

# %%
u_path, v_path = clipped_path[:-1, 0], clipped_path[:-1, 1]
true_grad_norm = np.hypot(u_path, 8.0 * v_path)
steep = true_grad_norm >= 1.0
print(f"clipped steps of length 0.2: {steep.sum()}, then {np.sum(~steep)} shorter ones")
np.testing.assert_allclose(clipped_steps[steep], 0.2, rtol=1e-6)
assert np.all(clipped_steps[~steep] < 0.2) and steep[: steep.sum()].all()
assert np.all(plain_path[1:26, 1] * plain_path[:25, 1] < 0)


# %% [markdown]
# The figure draws both walks, all forty steps, on the bowl's contours.


# %% mystnb={"figure": {"caption": "Forty steps of gradient descent ($\\alpha = 0.2$) on $\\tfrac12(u^2 + 8v^2)$ from $(-4.5, 1)$. Plain descent (blue) takes long steps and zig-zags across the narrow valley; with the gradient clipped to norm 1 in the backward pass (orange), every step is at most 0.2 long.", "name": "fig-tape-clipped-paths"}}
def bowl_numpy(u, v):
    return 0.5 * (u**2 + 8.0 * v**2)


descent_panel = Panel(
    bowl_numpy,
    xlim=(-5, 1.5),
    ylim=(-1.6, 1.6),
    levels=np.linspace(0.05, 14, 12) ** 1.5 / 3,
    paths={"plain gradient": plain_path, "clipped to norm 1": clipped_path},
)
fig = plot_paths([descent_panel], figsize=(7.5, 3.6))
plt.show()

# %% [markdown]
# Press play on {numref}`fig-tape-clipped-animation` to watch the first 25 steps of the two walks side by
# side: the plain one jumps back and forth across the valley, while the clipped one marches at constant
# speed, and slows down only once the true gradient's norm drops below 1.

# %% mystnb={"figure": {"caption": "The first 25 steps of the two walks of {numref}`fig-tape-clipped-paths`, animated. Plain descent crosses the valley at every step; the clipped walk moves 0.2 per step until the gradient's norm falls below 1.", "name": "fig-tape-clipped-animation"}}
first_steps = {label: path[:26] for label, path in descent_panel.paths.items()}
animated_panel = dataclasses.replace(descent_panel, paths=first_steps)
# without constrained layout the frames render twice as fast
with plt.rc_context({"figure.constrained_layout.use": False}):
    descent_animation = animate_paths(
        [animated_panel], figsize=(6.4, 3.2), interval=250
    )
to_html(descent_animation)

# %% [markdown]
# A custom gradient for a function that reads a **variable** must also give the variable's gradient. The
# decorator hands the `grad` function, as the keyword argument `variables`, the *trainable* variables the
# function read without receiving them as inputs; `grad` returns the gradients of the inputs and a list with one gradient
# per variable. A `grad` without that argument is refused as soon as the function runs, before any gradient
# is asked for.

# %% tags=["raises-exception"]
layer_scale = tf.Variable(3.0)


@tf.custom_gradient
def scale_without_variables(x):
    def grad(upstream):
        return upstream * layer_scale

    return layer_scale * x, grad


with gdbook.expect_error(TypeError) as missing_variables:
    scale_without_variables(tf.constant(2.0))

# %% [markdown]
# The message names the variable the function read. A non-trainable variable does not count: the same
# function reading a frozen scale runs without the argument.

# %%
print(missing_variables.message)
assert "must accept keyword argument 'variables'" in missing_variables.message
frozen_scale = tf.Variable(3.0, trainable=False)


@tf.custom_gradient
def scale_by_frozen(x):
    def grad(upstream):
        return upstream * frozen_scale

    return frozen_scale * x, grad


assert scale_by_frozen(tf.constant(2.0)).numpy() == 6.0


# %% [markdown]
# With the argument, the function below is $y = s x$ with a backward pass that halves both gradients:
# $\partial y/\partial x = s/2$ and $\partial y / \partial s = x / 2$ instead of $s$ and $x$. Under plain
# SGD the scale, and every layer before it (their gradients pass through $\partial y/\partial x$), then
# learn at half speed; Adam, which divides by the gradients' running magnitude, would undo a constant factor.


# %%
@tf.custom_gradient
def scale_at_half_speed(x):
    def grad(upstream, variables):
        # gradients of the inputs, then one gradient per variable read inside
        return 0.5 * upstream * layer_scale, [0.5 * upstream * x]

    return layer_scale * x, grad


scale_input = tf.constant(2.0)
with tf.GradientTape(persistent=True) as tape:
    tape.watch(scale_input)
    half_speed = scale_at_half_speed(scale_input)
    full_speed = layer_scale * scale_input
half_grads = [float(g) for g in tape.gradient(half_speed, [scale_input, layer_scale])]
full_grads = [float(g) for g in tape.gradient(full_speed, [scale_input, layer_scale])]
del tape
print("halved:", half_grads, " plain:", full_grads)
assert half_speed.numpy() == full_speed.numpy()
assert half_grads == [0.5 * g for g in full_grads] and full_grads == [3.0, 2.0]


# %% [markdown]
# (tape-forward)=
# ## Forward mode
#
# The tape is *reverse* mode: one backward pass gives {eq}`eq-tape-vjp`, a row-combination of the
# Jacobian, which is all of the gradient when there is a single output. **Forward mode** pushes a tangent
# $\dot{\mathbf x}$ forward alongside the values and produces the **Jacobian-vector product**
#
# $$
# \dot{\mathbf y} = J_f(\mathbf x)\, \dot{\mathbf x},
# $$ (eq-tape-jvp)
#
# a column-combination, in one forward pass. TensorFlow offers it as `tf.autodiff.ForwardAccumulator`. For
# $f: \mathbb R^n \to \mathbb R^m$ the full Jacobian takes $n$ forward passes (one per input direction) or $m$
# backward passes (one per output). So reverse mode wins for losses ($m = 1$, the case of all training), and
# forward mode wins for functions with few inputs and many outputs, and for directional derivatives. The
# example has $n = 3$ inputs and $m = 2$ outputs:
# $f(\mathbf x) = (x_0 x_1 x_2,\ x_0^2 + \sin x_2)$.


# %%
def two_outputs(x):
    return tf.stack([x[0] * x[1] * x[2], x[0] ** 2 + tf.sin(x[2])])


def two_outputs_jacobian(x0, x1, x2):
    return np.array([[x1 * x2, x0 * x2, x0 * x1], [2 * x0, 0.0, np.cos(x2)]])


inputs = tf.constant([1.0, 2.0, 3.0], dtype=tf.float64)
identity_3, identity_2 = (
    tf.eye(3, dtype=tf.float64),
    tf.eye(2, dtype=tf.float64),
)

columns = []  # forward mode: one pass per input direction
for tangent in identity_3:
    with tf.autodiff.ForwardAccumulator(
        primals=inputs, tangents=tangent
    ) as accumulator:
        outputs = two_outputs(inputs)
    columns.append(accumulator.jvp(outputs))
jacobian_forward = tf.stack(columns, axis=1)

# %% [markdown]
# Reverse mode builds the same matrix row by row, one backward pass per output, weighted by a unit vector.

# %%
rows = []  # reverse mode: one pass per output
for cotangent in identity_2:
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = two_outputs(inputs)
    rows.append(tape.gradient(outputs, inputs, output_gradients=cotangent))
jacobian_reverse = tf.stack(rows, axis=0)

# %% [markdown]
# Three forward passes and two backward passes build the same matrix, equal to the analytic one.

# %%
jacobian_exact = two_outputs_jacobian(1.0, 2.0, 3.0)
print(jacobian_forward.numpy())
print("passes: forward", len(columns), " reverse", len(rows))
forward_vs_reverse = np.max(np.abs(jacobian_forward.numpy() - jacobian_reverse.numpy()))
forward_vs_exact = np.max(np.abs(jacobian_forward.numpy() - jacobian_exact))
print(
    f"max |forward - reverse| = {forward_vs_reverse:.1e}"
    f", max |forward - analytic| = {forward_vs_exact:.1e}"
)
assert forward_vs_reverse == 0.0 and forward_vs_exact == 0.0


# %% [markdown]
# | Mode | TensorFlow | One pass gives | Full Jacobian of $f:\mathbb R^n\to\mathbb R^m$ | Best when |
# | --- | --- | --- | --- | --- |
# | reverse | `tf.GradientTape` | $J^\top \bar{\mathbf y}$ (a gradient) | $m$ backward passes | few outputs: losses |
# | forward | `tf.autodiff.ForwardAccumulator` | $J \dot{\mathbf x}$ (a directional derivative) | $n$ forward passes | few inputs, or one direction |
#
# `ForwardAccumulator` computes the JVP of each operation as the operation runs, from the gradient
# registered for that operation's *type* (it transposes that gradient). A `tf.custom_gradient` function is
# not one operation to it: the function's forward operations run while the accumulator watches, so its
# output already carries their tangent. Eagerly, the custom gradient is recorded afterwards for that same
# output, and the accumulator keeps the tangent it already has. Inside a `tf.function`,
# `tf.custom_gradient` works by overriding the gradient of one `IdentityN` operation, and the accumulator
# uses `IdentityN`'s own registered gradient, which passes the forward tangent through. Either way the
# forward operations decide, not the custom backward function. A function whose custom gradient
# multiplies by 7 shows it, with two helpers that return a forward-mode derivative: one opens the accumulator
# eagerly, the other inside a `tf.function`.


# %%
@tf.custom_gradient
def times_one_gradient_seven(x):
    def grad(upstream):
        return 7.0 * upstream

    return x * 1.0, grad


def forward_derivative(f, at):
    with tf.autodiff.ForwardAccumulator(primals=at, tangents=tf.ones_like(at)) as acc:
        value = f(at)
    return acc.jvp(value).numpy()


def forward_derivative_in_function(f, at):
    @tf.function
    def traced(point):
        with tf.autodiff.ForwardAccumulator(point, tf.ones_like(point)) as acc:
            value = f(point)
        return acc.jvp(value)

    return traced(at).numpy()


# %% [markdown]
# The tape uses the custom gradient; the accumulator, eagerly and inside a `tf.function`, does not.

# %%
x_point = tf.constant(2.0)
with tf.GradientTape() as tape:
    tape.watch(x_point)
    y_custom = times_one_gradient_seven(x_point)
reverse_derivative = tape.gradient(y_custom, x_point).numpy()
eager_forward = forward_derivative(times_one_gradient_seven, x_point)
traced_forward = forward_derivative_in_function(times_one_gradient_seven, x_point)
print(f"tape: {reverse_derivative}, accumulator eagerly: {eager_forward},")
print(f"accumulator inside a tf.function: {traced_forward}")
assert reverse_derivative == 7.0 and eager_forward == traced_forward == 1.0


# %% [markdown]
# One eager case differs. When the forward operations give the output no tangent at all (the input goes
# through `tf.stop_gradient`, or through an operation without a gradient such as `tf.round`), the eager
# accumulator falls back on transposing the custom backward function; inside a `tf.function` the tangent
# that `IdentityN` passes through is zero.


# %%
@tf.custom_gradient
def stopped_gradient_seven(x):
    def grad(upstream):
        return 7.0 * upstream

    return tf.stop_gradient(x) * 1.0, grad


stopped_eager = forward_derivative(stopped_gradient_seven, x_point)
stopped_traced = forward_derivative_in_function(stopped_gradient_seven, x_point)
print(
    f"no forward path: eagerly {stopped_eager}, inside a tf.function {stopped_traced}"
)
assert stopped_eager == 7.0 and stopped_traced == 0.0

# %% [markdown]
# The workaround is to make the custom-gradient function a `tf.function` of its own. Its call is then a
# single operation for the accumulator, whose JVP TensorFlow derives from the function's backward graph, and
# that graph is built with the custom gradient.

# %%
seven_compiled = tf.function(times_one_gradient_seven)
compiled_eager = forward_derivative(seven_compiled, x_point)
compiled_traced = forward_derivative_in_function(seven_compiled, x_point)
print(f"wrapped in tf.function: eagerly {compiled_eager},")
print(f"inside a tf.function {compiled_traced}")
assert compiled_eager == compiled_traced == 7.0

# %% [markdown]
# It matters wherever a custom gradient is needed for correctness. The stable softplus of
# {eq}`eq-tape-softplus` at $x = 0$ is the case in point: the forward operations $\max(x, 0)$ and $|x|$ are
# not differentiable there, TensorFlow's gradients for them pick 1 and 0, and the forward-mode derivative
# comes out as 1 rather than $\sigma(0) = \tfrac12$.

# %%
zero = tf.constant(0.0)
softplus_tape = value_and_grad(softplus_stable, zero)[1]
softplus_forward = forward_derivative(softplus_stable, zero)
softplus_forward_compiled = forward_derivative(tf.function(softplus_stable), zero)
print(f"s'(0): tape {softplus_tape}, accumulator {softplus_forward},")
print(f"accumulator on the compiled function {softplus_forward_compiled}")
assert softplus_tape == softplus_forward_compiled == 0.5 and softplus_forward == 1.0
kink_max = forward_derivative(lambda t: tf.maximum(t, 0.0), zero)
kink_abs = forward_derivative(tf.abs, zero)
print(f"at 0: d max(x, 0)/dx = {kink_max}, d|x|/dx = {kink_abs}")
assert kink_max == 1.0 and kink_abs == 0.0

# %% [markdown]
# (tape-everyday)=
# ## The tape in everyday code
#
# Real training code uses the tape in a handful of recurring patterns. The first is a Keras model: its
# `trainable_variables` are the sources, and the gradient comes back as a list in the same order. For a
# single dense layer and a mean squared error the gradient is known in closed form,
# $\nabla_W = \tfrac{2}{N} X^\top r$ and $\nabla_b = \tfrac{2}{N}\sum_n r_n$ with the residuals $r$.

# %%
rng = np.random.default_rng(0)
features = tf.constant(rng.standard_normal((64, 3)), dtype=tf.float32)
targets = features @ tf.constant([[1.0], [-2.0], [0.5]]) + 0.3
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

with tf.GradientTape() as tape:
    residuals = model(features) - targets
    mse = tf.reduce_mean(residuals**2)
model_grads = tape.gradient(mse, model.trainable_variables)

r = residuals.numpy()
closed_form = [2 / 64 * features.numpy().T @ r, 2 / 64 * r.sum(axis=0)]
for variable, grad, exact in zip(
    model.trainable_variables, model_grads, closed_form, strict=True
):
    print(f"{variable.path:>24} {str(grad.shape):>8}", np.ravel(grad.numpy()))
    np.testing.assert_allclose(grad.numpy(), exact, rtol=1e-5, atol=1e-6)

# %% [markdown]
# The second pattern compiles the training step with `tf.function`. The tape works the same inside a traced
# function: it records the graph's operations as they are traced. One step, eagerly and compiled, from the
# same weights, gives the same loss and weights to within $10^{-6}$.

# %%
optimizer = keras.optimizers.SGD(learning_rate=0.1)
step_traces = []


def train_step(x, y):
    # Python code in the body runs only while TensorFlow traces the function
    step_traces.append(1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return loss


compiled_step = tf.function(train_step)

# %% [markdown]
# One step eagerly, then the weights put back, then one compiled step.

# %%
start_weights = [v.numpy() for v in model.trainable_variables]
eager_loss = train_step(features, targets).numpy()
eager_weights = [v.numpy() for v in model.trainable_variables]
for variable, weights in zip(model.trainable_variables, start_weights, strict=True):
    variable.assign(weights)
compiled_loss = compiled_step(features, targets).numpy()
weight_gap = max(
    np.max(np.abs(v.numpy() - e))
    for v, e in zip(model.trainable_variables, eager_weights, strict=True)
)
print(
    f"loss eager {eager_loss}, compiled {compiled_loss}; weights differ by {weight_gap}"
)
assert abs(eager_loss - compiled_loss) <= 1e-6 and weight_gap <= 1e-6

# %% [markdown]
# Called again with tensors of the same shape and dtype, the compiled step is not traced again: the count of
# traces stays at one while the loss falls.

# %%
step_losses = [float(compiled_step(features, targets)) for _ in range(50)]
print(
    f"traces of the compiled step: {len(step_traces) - 1}"
    " (the eager call also counted one)"
)
print(f"loss at the start {compiled_loss:.3f}, after 50 steps {step_losses[-1]:.2e}")
assert len(step_traces) == 2
assert step_losses[-1] < 1e-3 * compiled_loss

# %% [markdown]
# **Python values in a traced function are constants.** A Python float passed to a `tf.function` is part of
# the signature: each new value is a new trace, with the value baked into the graph as a constant. A tensor
# argument is a placeholder, traced once per shape and dtype. A Python number read from an enclosing scope is
# worse: it is captured at the first trace and later changes are silently ignored. Tracing again and
# again is slow, and TensorFlow says so: the cell below prints its retracing warning (the one TensorFlow
# warning `gdbook.setup()` lets through) above the counts.

# %%
trace_count = []


@tf.function
def scaled(value, scale):
    trace_count.append(1)
    return value * scale


with contextlib.redirect_stdout(io.StringIO()) as tracing_log:
    for scale in (0.1, 0.2, 0.3, 0.4):
        scaled(tf.constant(1.0), scale)
    traces_for_floats = len(trace_count)
    for scale in (0.1, 0.2, 0.3, 0.4):
        scaled(tf.constant(1.0), tf.constant(scale))
traces_for_tensors = len(trace_count) - traces_for_floats
print(tracing_log.getvalue(), end="")
print(
    "traces: four Python floats", traces_for_floats, " four tensors", traces_for_tensors
)
assert traces_for_floats == 4 and traces_for_tensors == 1
assert "5 out of the last 5 calls to <function scaled" in tracing_log.getvalue()

# %% [markdown]
# A learning rate held in a Python variable and read inside a compiled step is the everyday victim.

# %%
factor = 2.0


@tf.function
def times_factor(value):
    return value * factor


before = times_factor(tf.constant(1.0)).numpy()
factor = 3.0
after = times_factor(tf.constant(1.0)).numpy()
print(f"with factor 2.0: {before}; after setting factor = 3.0: {after}")
assert before == after == 2.0

# %% [markdown]
# Sources need not be a list. `tape.gradient` accepts any nested structure (dicts, tuples, lists of dicts)
# and returns the gradients in the same structure, which keeps parameters addressable by name.

# %%
named = {"weight": tf.Variable(2.0), "bias": tf.Variable(1.0)}
with tf.GradientTape() as tape:
    line = named["weight"] * 3.0 + named["bias"]
named_grads = tape.gradient(line, named)
print({name: float(grad) for name, grad in named_grads.items()})
assert named_grads.keys() == named.keys()
assert named_grads["weight"].numpy() == 3.0 and named_grads["bias"].numpy() == 1.0

# %% [markdown]
# `tape.reset()` throws away everything recorded so far without closing the block; only what follows is
# on the tape. A target computed before the reset is then unconnected.

# %%
weight = tf.Variable(2.0)
with tf.GradientTape(persistent=True) as tape:
    before_reset = 100.0 * weight
    tape.reset()
    after_reset = weight * weight
grad_before_reset = tape.gradient(before_reset, weight)
grad_after_reset = tape.gradient(after_reset, weight)
del tape
print("before the reset:", grad_before_reset, " after:", grad_after_reset.numpy())
assert grad_before_reset is None and grad_after_reset.numpy() == 4.0

# %% [markdown]
# Several tapes can record at once; each sees every operation and answers its own question once. This is
# the usual shape of a GAN step, with one loss per player and each differentiated with respect to that
# player's variables only. Here the score is $s = d\,g$, the generator's loss $-s$ and the discriminator's
# loss $s^2$.

# %%
generator_weight, critic_weight = tf.Variable(1.5), tf.Variable(-0.5)
with tf.GradientTape() as generator_tape, tf.GradientTape() as critic_tape:
    score = critic_weight * generator_weight
    generator_loss = -score
    critic_loss = score**2
generator_grad = generator_tape.gradient(generator_loss, generator_weight)
critic_grad = critic_tape.gradient(critic_loss, critic_weight)
print("d(-s)/dg =", generator_grad.numpy(), " d(s^2)/dd =", critic_grad.numpy())
assert generator_grad.numpy() == 0.5
assert critic_grad.numpy() == 2 * (-0.75) * 1.5

# %% [markdown]
# Nested tapes have an everyday use too: **input-gradient regularisation**, which penalises how fast a
# model's output changes with its input. (Drucker and LeCun's "double backpropagation" penalises the
# input gradient of the *loss*; penalising the model output's, as here, is the same computation one
# step earlier in the chain.) The inner tape gives
# $\partial f / \partial \mathbf x$ for every example, the penalty is its mean squared norm, and the outer
# tape differentiates that with respect to the weights. For the dense layer above,
# $f(\mathbf x) = W^\top \mathbf x + b$, every row of the input gradient is $W^\top$, so the penalty is
# $\|W\|^2$, its gradient $2W$, and the bias does not enter it at all.

# %%
with tf.GradientTape() as outer_tape:
    with tf.GradientTape() as inner_tape:
        inner_tape.watch(features)
        outputs = model(features)
    input_grads = inner_tape.gradient(outputs, features)
    penalty = tf.reduce_mean(tf.reduce_sum(input_grads**2, axis=1))
kernel_grad, bias_grad = outer_tape.gradient(penalty, model.trainable_variables)
kernel = model.trainable_variables[0].numpy()
print("penalty gradient, kernel:", kernel_grad.numpy().ravel(), " bias:", bias_grad)
np.testing.assert_allclose(penalty.numpy(), np.sum(kernel**2), rtol=1e-6)
np.testing.assert_allclose(kernel_grad.numpy(), 2 * kernel, rtol=1e-6)
assert bias_grad is None

# %% [markdown]
# Finally, an operation with no registered gradient. The regularised incomplete gamma function
# $P(a, x)$ (`tf.math.igamma`, the gamma distribution's CDF) has gradients in both arguments, but its
# derivative in $a$ is computed by an operation, `IgammaGradA`, for which TensorFlow registers no gradient.
# The mixed second derivative $\partial_a \partial_x P$ works; $\partial_x \partial_a P$, the same number
# by the symmetry of second derivatives, raises a `LookupError`.

# %%
shape_a = tf.constant(2.5, dtype=tf.float64)
point_x = tf.constant(1.5, dtype=tf.float64)


def mixed_partial(first, second):
    with tf.GradientTape() as outer:
        outer.watch([shape_a, point_x])
        with tf.GradientTape() as inner:
            inner.watch([shape_a, point_x])
            cdf = tf.math.igamma(shape_a, point_x)
        first_derivative = inner.gradient(cdf, first)
    return outer.gradient(first_derivative, second)


d_a_of_d_x = mixed_partial(point_x, shape_a).numpy()
print("d/da (dP/dx) =", d_a_of_d_x)

# %% [markdown]
# The other order differentiates the output of `IgammaGradA`, and fails.

# %% tags=["raises-exception"]
with gdbook.expect_error(LookupError) as no_gradient:
    mixed_partial(shape_a, point_x)

# %% [markdown]
# The message names the operation type that lacks a gradient.

# %%
print(no_gradient.message)
assert "no entry for: IgammaGradA" in no_gradient.message


# %% [markdown]
# `tf.RegisterGradient` fills the gap for every tape and every `tf.gradients` call in the process. The
# function receives the operation (its inputs and outputs) and the upstream gradient, and returns one
# gradient per input. For $x$ it is $\partial_x \partial_a P = p(x)\,(\ln x - \psi(a))$, with $p$ the gamma
# density; for $a$ we return `None` (not supported). Registering the same name twice is an error, so this
# belongs in a module that is imported once.


# %%
@tf.RegisterGradient("IgammaGradA")
def _igamma_grad_a_grad(op, upstream):
    a, x = op.inputs
    density = tf.exp((a - 1.0) * tf.math.log(x) - x - tf.math.lgamma(a))
    return None, upstream * density * (tf.math.log(x) - tf.math.digamma(a))


d_x_of_d_a = mixed_partial(shape_a, point_x).numpy()
print(f"d/da (dP/dx) = {d_a_of_d_x:.15f}")
print(f"d/dx (dP/da) = {d_x_of_d_a:.15f}")
assert abs(d_x_of_d_a - d_a_of_d_x) < 1e-15


# %% [markdown]
# (tape-five-ways)=
# ## One function, five ways
#
# To close, the gradient of $f(u, v)$ from {eq}`eq-tape-f2d` at $(u, v) = (1, 2)$, computed five ways, all in
# float64: two by hand and three automatic.
#
# 1. **analytic**, from the formula in {eq}`eq-tape-f2d`;
# 2. **central finite differences**, which need no derivative code at all,
#
#    $$
#    \frac{\partial f}{\partial u} \approx \frac{f(u + h, v) - f(u - h, v)}{2h}, \qquad \text{error } O(h^2) \text{ plus rounding } O(\epsilon / h);
#    $$ (eq-tape-central)
#
# 3. **`GradientTape`**, reverse mode in eager execution;
# 4. **`tf.gradients` inside a `tf.function`**: TensorFlow 2's `tf.gradients`, the reverse mode of
#    {ref}`ch-tf-gradients`, which adds gradient operations to the traced graph. It is automatic
#    differentiation, not symbolic differentiation: it never simplifies a formula for the derivative, it
#    adds, for each forward operation, the operations of that operation's registered gradient;
# 5. **`ForwardAccumulator`**, forward mode, one JVP per coordinate direction.
#
# The first three are plain functions of a point.


# %%
def by_finite_differences(f, p, step=1e-5):
    p = np.asarray(p, dtype=np.float64)
    grad = np.zeros_like(p)
    for i in range(p.size):
        shift = np.zeros_like(p)
        shift[i] = step
        forward = float(f(tf.constant(p + shift)))
        backward = float(f(tf.constant(p - shift)))
        grad[i] = (forward - backward) / (2 * step)
    return grad


def by_tape(f, p):
    with tf.GradientTape() as tape:
        tape.watch(p)
        value = f(p)
    return tape.gradient(value, p).numpy()


@tf.function
def by_tf_gradients(p):
    # graph mode: legal inside tf.function
    return tf.gradients(f2d(p), p)[0]


# %% [markdown]
# Forward mode needs one pass per coordinate direction; then all five run.


# %%
def by_forward_mode(f, p):
    grad = []
    for tangent in tf.eye(2, dtype=tf.float64):
        with tf.autodiff.ForwardAccumulator(primals=p, tangents=tangent) as accumulator:
            value = f(p)
        grad.append(accumulator.jvp(value).numpy())
    return np.array(grad)


five_ways = {
    "analytic": f2d_gradient_analytic(1.0, 2.0),
    "finite differences": by_finite_differences(f2d, [1.0, 2.0]),
    "GradientTape": by_tape(f2d, uv_point),
    "tf.gradients in tf.function": by_tf_gradients(uv_point).numpy(),
    "ForwardAccumulator": by_forward_mode(f2d, uv_point),
}

# %% [markdown]
# The three automatic methods agree with the formula to within the float64 rounding of the gradient itself,
# $\epsilon\,\|\nabla f\|$; finite differences with $h = 10^{-5}$ only to
# {glue:text}`ch3_fd_gap:.0e`.

# %%
reference = five_ways["analytic"]
gaps = {}
for method, grad in five_ways.items():
    gaps[method] = np.max(np.abs(grad - reference))
    components = f"{grad[0]: .15f} {grad[1]: .15f}"
    print(f"{method:>28}: {components}   max gap {gaps[method]:.1e}")
automatic = ("GradientTape", "tf.gradients in tf.function", "ForwardAccumulator")
rounding_level = np.finfo(np.float64).eps * np.linalg.norm(reference)
print(f"rounding level {rounding_level:.1e}")
assert all(gaps[m] <= rounding_level for m in automatic)
glue("ch3_fd_gap", float(gaps["finite differences"]), display=False)
assert gaps["finite differences"] > 1000 * rounding_level

# %% [markdown]
# Finite differences trail for the reason {numref}`fig-gradient-fd-error` in {ref}`ch-gradient` shows: the
# truncation error shrinks like $h^2$ while the rounding error of subtracting two nearly equal numbers grows
# like $\epsilon/h$, so no step makes them exact. The automatic methods have no step to tune. That is why
# finite differences serve as a *check* of gradient code ({ref}`ch-debugging` returns to this), never as the
# way to train.
#
# (tape-symptoms)=
# ## Symptom, cause, fix
#
# | Symptom | Cause | Fix |
# | --- | --- | --- |
# | gradient is `None` | the result was computed before the tape opened ({ref}`outside <tape-none-outside>`) | compute it inside the `with` block |
# | gradient is `None` for a constant | tensors are not watched automatically ({ref}`records <tape-records>`) | `tape.watch(t)` |
# | gradient is `None` after `x = x + 1` | the name now refers to a tensor ({ref}`replaced <tape-none-replaced>`) | `x.assign_add(1.0)` |
# | gradient is `None` | a NumPy / `float()` step broke the chain ({ref}`NumPy <tape-none-numpy>`) | use TensorFlow operations |
# | gradient is `None` | integer dtype ({ref}`integer <tape-none-integer>`) | use float literals / `dtype=tf.float32` |
# | gradient is `None` for a variable | `trainable=False` ({ref}`non-trainable <tape-none-nontrainable>`) | `tape.watch(v)` if you really mean it |
# | gradient is `None` | the value went through `assign` ({ref}`assign <tape-none-assign>`) | keep intermediates as tensors |
# | second derivative is `None` | the first derivative does not depend on it ({ref}`higher order <tape-higher>`) | `unconnected_gradients=tf.UnconnectedGradients.ZERO` |
# | `RuntimeError` on the second `gradient` call | non-persistent tape ({ref}`once <tape-once>`) | `persistent=True`, then `del tape` |
# | gradient of a vector is one vector, not a matrix | `gradient` sums over the targets ({ref}`Jacobians <tape-nonscalar>`) | `jacobian` / `batch_jacobian` |
# | NaN gradient, finite values | `tf.where` computes both branches ({ref}`where <tape-where-nan>`) | make the unused branch safe (double `where`) |
# | NaN gradient at large inputs | overflow inside the chain rule ({ref}`custom gradient <tape-custom>`) | stable form and/or `tf.custom_gradient` |
# | `LookupError: gradient registry has no entry for` | the operation has no registered gradient ({ref}`everyday <tape-everyday>`) | `tf.RegisterGradient`, or `tf.custom_gradient` around it |
# | a compiled step retraces, or ignores a changed setting | Python numbers are constants of the trace ({ref}`everyday <tape-everyday>`) | pass tensors, or keep settings in variables |
# | `TypeError: ... must accept keyword argument 'variables'` | a custom-gradient function reads a variable ({ref}`custom gradient <tape-custom>`) | `grad(upstream, variables)` returning input and variable gradients |
# | forward-mode result ignores a custom gradient | `ForwardAccumulator` follows the forward ops' tangents ({ref}`forward mode <tape-forward>`) | wrap the custom-gradient function in `tf.function` |
#
# ## Summary
#
# - A `tf.GradientTape` records operations on watched tensors while it is open; `gradient` replays them
#   backwards and computes a vector-Jacobian product {eq}`eq-tape-vjp`. Trainable variables are watched when
#   read; constants need `watch`; `watch_accessed_variables=False` turns the automatic watching off.
# - `None` means "not connected on this tape": computed outside, rebound to a tensor, through NumPy, integer,
#   non-trainable, or through `assign`. Each has a one-line fix.
# - A tape answers once unless `persistent=True`; delete a persistent tape when done.
# - A tape is a list of records walked backwards, adjoints added where a value fans out; the hand-written
#   one agrees with `tf.GradientTape` bit for bit. TensorFlow's records keep the operation's type and
#   tensors and call the registered gradient during `gradient`.
# - The gradient of a non-scalar target is the gradient of its sum {eq}`eq-tape-sum`; `jacobian` and
#   `batch_jacobian` give every entry or the per-example blocks.
# - Nested tapes give second derivatives, Hessians (the Jacobian of the gradient) and Hessian-vector products
#   {eq}`eq-tape-hvp` for a small constant multiple of the cost of a gradient.
# - `stop_recording` and `tf.stop_gradient` keep values off the backward pass; Python control flow is recorded
#   as it runs, but `tf.where` records both branches.
# - `tf.custom_gradient` fixes numerically unstable gradients {eq}`eq-tape-softplus` and can clip inside the
#   backward pass. Forward mode {eq}`eq-tape-jvp` is cheaper when inputs are few; `ForwardAccumulator`
#   follows a custom-gradient function's forward operations, not its custom gradient (eagerly it falls
#   back on the custom gradient only where those operations give no tangent), unless the function is
#   its own `tf.function`.
# - In everyday code the sources are `model.trainable_variables` or any nested structure; a compiled step
#   traces once per input signature, and Python numbers in it are constants fixed at tracing. Several tapes
#   can record at once (one per loss), and nested tapes regularise input gradients. An operation
#   with no registered gradient raises `LookupError`; `tf.RegisterGradient` supplies one.
# - The three automatic methods (tape, `tf.gradients`, forward mode) agree with the analytic gradient to
#   within rounding; finite differences only to about {glue:text}`ch3_fd_gap:.0e`, limited by the step size.
#
# ## Exercises
#
# ```{exercise}
# :label: ex-tape-1
# `labels = tf.range(3)` and `tape.watch(labels)` inside a tape, then
# `tape.gradient(tf.reduce_sum(labels * labels), labels)` returns `None`. Why, and what is the smallest change
# that returns the gradient $2\,\text{labels}$? Write it as a function `square_sum_gradient(labels)` that
# takes the integer tensor and returns that gradient, computed with a tape (the check compares values
# only: it cannot tell how you computed them). `gdbook.check` judges the values against the tape and
# central differences on the same points as floats: with `from gdbook import check`,
# `check.gradient(lambda x: tf.reduce_sum(x * x), lambda x: square_sum_gradient(tf.cast(x, tf.int32)), [0.0, 1.0, 2.0])`.
# ```
#
# ```{solution-start} ex-tape-1
# :class: dropdown
# ```
#
# `tf.range(3)` is an `int32` tensor, and the tape does not watch integer tensors (`watch` only logs a
# warning), so the gradient is `None`, and the check says so:

# %%
from gdbook import check


def square_sum_gradient_int(labels):
    with tf.GradientTape() as tape:
        tape.watch(labels)
        total = tf.reduce_sum(labels * labels)
    return tape.gradient(total, labels)


def square_sum(x):
    return tf.reduce_sum(x * x)


assert square_sum_gradient_int(tf.range(3)) is None
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.gradient(
        square_sum,
        lambda x: square_sum_gradient_int(tf.cast(x, tf.int32)),
        [0.0, 1.0, 2.0],
    )
assert "returned None" in caught.message and "integer tensor" in caught.message


# %% [markdown]
# Casting to a float before the tape records gives the gradient, and passes the check:


# %%
def square_sum_gradient(labels):
    labels = tf.cast(labels, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(labels)
        total = tf.reduce_sum(labels * labels)
    return tape.gradient(total, labels)


labels_grad = square_sum_gradient(tf.range(3))
print(labels_grad.numpy())
np.testing.assert_array_equal(labels_grad.numpy(), [0.0, 2.0, 4.0])
check.gradient(
    square_sum,
    lambda x: square_sum_gradient(tf.cast(x, tf.int32)),
    [0.0, 1.0, 2.0],
)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tape-2
# Use three nested tapes to compute the third derivative of $\sin x$ at $x = 0.5$, and compare it with the
# analytic answer. Written as a function `third_derivative(x)`, it is the derivative of
# $\sin'' x = -\sin x$, which `gdbook.check` can judge against the tape and central differences: with
# `from gdbook import check`, `check.gradient(lambda x: -tf.sin(x), third_derivative, 0.5)`.
# ```
#
# ```{solution-start} ex-tape-2
# :class: dropdown
# ```
#
# Each tape differentiates what the tape inside it produced; $\frac{d^3}{dx^3}\sin x = -\cos x$.

# %%
x_half = tf.constant(0.5, dtype=tf.float64)
with tf.GradientTape() as third:
    third.watch(x_half)
    with tf.GradientTape() as second_tape:
        second_tape.watch(x_half)
        with tf.GradientTape() as first_tape:
            first_tape.watch(x_half)
            sine = tf.sin(x_half)
        d1 = first_tape.gradient(sine, x_half)
    d2 = second_tape.gradient(d1, x_half)
d3 = third.gradient(d2, x_half)
print(d3.numpy(), -np.cos(0.5))
assert abs(d3.numpy() + np.cos(0.5)) < 1e-15

# %% [markdown]
# The same tapes as a function of $x$ pass the check:

# %%
from gdbook import check


def third_derivative(x):
    with tf.GradientTape() as third:
        third.watch(x)
        with tf.GradientTape() as second_tape:
            second_tape.watch(x)
            with tf.GradientTape() as first_tape:
                first_tape.watch(x)
                sine = tf.sin(x)
            d1 = first_tape.gradient(sine, x)
        d2 = second_tape.gradient(d1, x)
    return third.gradient(d2, x)


check.gradient(lambda x: -tf.sin(x), third_derivative, 0.5)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tape-3
# A Hessian-vector product can also be computed *forward-over-reverse*: a `ForwardAccumulator` with tangent
# $\mathbf v$ around a tape that computes the gradient. Write it and check it against `hessian_vector_product`
# from this chapter on the 50-dimensional test function. Since $H\mathbf v$ is the gradient of the slope
# $\nabla f(\mathbf x)\cdot\mathbf v$, `gdbook.check` can also judge it: with `from gdbook import check`,
# `check.gradient(slope_along_v, lambda x: my_hvp(quadratic_plus_cos, x, hvp_direction), hvp_point)`,
# where `slope_along_v(x)` computes $\nabla f(\mathbf x)\cdot\mathbf v$ with a tape.
# ```
#
# ```{solution-start} ex-tape-3
# :class: dropdown
# ```
#
# The accumulator pushes $\mathbf v$ through the gradient computation, so its JVP of $\nabla f$ is
# $H\mathbf v$ {eq}`eq-tape-jvp`. This needs one forward-mode pass instead of a second reverse pass.

# %%
with tf.autodiff.ForwardAccumulator(
    primals=hvp_point, tangents=hvp_direction
) as accumulator:
    with tf.GradientTape() as tape:
        tape.watch(hvp_point)
        value = quadratic_plus_cos(hvp_point)
    grad = tape.gradient(value, hvp_point)
hvp_forward_over_reverse = accumulator.jvp(grad)
gap = np.max(np.abs(hvp_forward_over_reverse.numpy() - hvp.numpy()))
print(f"max gap: {gap:.1e}")
assert gap < 1e-12

# %% [markdown]
# As a function of the point, the forward-over-reverse product passes the check against the slope's
# gradient:

# %%
from gdbook import check


def forward_over_reverse_hvp(f, x, v):
    with tf.autodiff.ForwardAccumulator(primals=x, tangents=v) as accumulator:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = f(x)
        grad = tape.gradient(value, x)
    return accumulator.jvp(grad)


def slope_along_v(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = quadratic_plus_cos(x)
    return tf.tensordot(tape.gradient(value, x), hvp_direction, 1)


check.gradient(
    slope_along_v,
    lambda x: forward_over_reverse_hvp(quadratic_plus_cos, x, hvp_direction),
    hvp_point,
)


# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tape-4
# `tf.round` has no useful gradient (the tape returns `None` through it). Write a *straight-through*
# rounding with `tf.custom_gradient`: it rounds going forward and passes the upstream gradient unchanged going
# backward. Check both directions with `gdbook.check`, which compares (1) your values against
# `tf.round`; (2) for a random upstream gradient, the tape's gradient through your function against
# `backward(x, upstream)`, the gradient you intend (here the upstream gradient itself): with
# `from gdbook import check`,
# `check.custom_gradient(round_straight_through, tf.round, lambda x, upstream: upstream, [0.2, 1.7, -2.6])`.
# ```
#
# ```{solution-start} ex-tape-4
# :class: dropdown
# ```


# %%
@tf.custom_gradient
def round_straight_through(x):
    def grad(upstream):
        return upstream

    return tf.round(x), grad


raw = tf.constant([0.2, 1.7, -2.6])
with tf.GradientTape(persistent=True) as tape:
    tape.watch(raw)
    plain_round = tf.reduce_sum(3.0 * tf.round(raw))
    straight_through = tf.reduce_sum(3.0 * round_straight_through(raw))
print("values:", plain_round.numpy(), straight_through.numpy())
print(
    "gradients:",
    tape.gradient(plain_round, raw),
    tape.gradient(straight_through, raw).numpy(),
)
assert plain_round.numpy() == straight_through.numpy() == 3.0 * (0.0 + 2.0 - 3.0)
assert tape.gradient(plain_round, raw) is None
np.testing.assert_array_equal(
    tape.gradient(straight_through, raw).numpy(), [3.0, 3.0, 3.0]
)

# %% [markdown]
# It passes the check. A common slip, a `grad` that returns `tf.ones_like(upstream)` (the gradient for
# an upstream gradient of ones only), is caught and named:

# %%
from gdbook import check


def pass_upstream(x, upstream):
    return upstream


@tf.custom_gradient
def round_with_ones(x):
    return tf.round(x), lambda upstream: tf.ones_like(upstream)


check.custom_gradient(round_straight_through, tf.round, pass_upstream, [0.2, 1.7, -2.6])
with gdbook.expect_error(AssertionError, reraise=False) as caught:
    check.custom_gradient(round_with_ones, tf.round, pass_upstream, [0.2, 1.7, -2.6])
# expect_error printed the first line of the message; the rest:
print(caught.message.partition("\n")[2])
assert "ignores `upstream`" in caught.message

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tape-5
# You need the full Jacobian of a function $\mathbb R^{4} \to \mathbb R^{1000}$ (four physical parameters,
# a thousand simulated measurements). Which mode do you use, and how many passes does it take? What if it were
# $\mathbb R^{1000} \to \mathbb R^{4}$? A Jacobian $J$ can be checked through any weighted sum of
# its outputs: $J^\top\mathbf w$ is the gradient of $\mathbf w\cdot F(\mathbf p)$. With
# `from gdbook import check` and random weights `w`,
# `check.gradient(lambda p: tf.tensordot(F(p), w, 1), lambda p: tf.linalg.matvec(my_jacobian(p), w, transpose_a=True), p0)`.
# ```
#
# ```{solution-start} ex-tape-5
# :class: dropdown
# ```
#
# Forward mode: one `ForwardAccumulator` pass per input direction, 4 passes, each giving a column of
# 1000 entries. Reverse mode would need 1000 backward passes, one per output. For
# $\mathbb R^{1000} \to \mathbb R^{4}$ it is the other way round: 4 backward passes with `GradientTape`
# (or one `tape.jacobian` call, which vectorises them), against 1000 forward passes. Here is the forward
# build for a made-up simulation with four parameters.

# %%
times = tf.constant(np.linspace(0.0, 1.0, 1000))
parameters = tf.constant([2.0, 0.5, -1.0, 3.0], dtype=tf.float64)


def simulate(p):
    return p[1] * tf.sin(p[0] * times) + p[2] * times + p[3]


jacobian_columns = []
for tangent in tf.eye(4, dtype=tf.float64):
    with tf.autodiff.ForwardAccumulator(parameters, tangent) as accumulator:
        measurements = simulate(parameters)
    jacobian_columns.append(accumulator.jvp(measurements))
forward_jacobian = tf.stack(jacobian_columns, axis=1)
print(
    "forward passes:", len(jacobian_columns), " Jacobian shape:", forward_jacobian.shape
)

# %% [markdown]
# `tape.jacobian` gives the same matrix, and TensorFlow prints its retracing warning with it: every call
# of `tape.jacobian` wraps its vectorised loop (`pfor`) in a new `tf.function` and traces it, and this is
# the chapter's fifth call. It is harmless here; where Jacobians are computed in a loop, computing them
# inside one `tf.function` of your own traces that loop once.

# %%
with tf.GradientTape() as tape:
    tape.watch(parameters)
    measurements = simulate(parameters)
with contextlib.redirect_stdout(io.StringIO()) as jacobian_log:
    reverse_jacobian = tape.jacobian(measurements, parameters)
print(jacobian_log.getvalue(), end="")
assert "5 out of the last 5 calls to <function pfor" in jacobian_log.getvalue()
np.testing.assert_allclose(forward_jacobian, reverse_jacobian, rtol=1e-14, atol=1e-15)

# %% [markdown]
# The forward build as a function of the parameters passes the check with random weights:

# %%
from gdbook import check


def forward_jacobian_at(p):
    columns = []
    for tangent in tf.eye(4, dtype=tf.float64):
        with tf.autodiff.ForwardAccumulator(p, tangent) as accumulator:
            outputs = simulate(p)
        columns.append(accumulator.jvp(outputs))
    return tf.stack(columns, axis=1)


output_weights = tf.constant(np.random.default_rng(5).normal(size=1000))
check.gradient(
    lambda p: tf.tensordot(simulate(p), output_weights, 1),
    lambda p: tf.linalg.matvec(
        forward_jacobian_at(p), output_weights, transpose_a=True
    ),
    parameters,
)

# %% [markdown]
# ```{solution-end}
# ```
