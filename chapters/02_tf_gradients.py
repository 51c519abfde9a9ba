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
# (ch-tf-gradients)=
# # Gradients in graph mode: `tf.gradients`
#
# :::{admonition} What you will learn
# :class: tip
# - Why `tf.gradients` only works while a graph is being built, and the two ways to build one: a TF1
#   `tf.compat.v1` graph with a session, and a TF2 `tf.function`.
# - What `tf.gradients` returns for lists of `ys` and `xs`, and how `grad_ys` turns it into a
#   vector-Jacobian product.
# - The difference between `stop_gradients=` and `tf.stop_gradient`, i.e. between a partial and a total
#   derivative, and why a missing path gives `None` unless you ask for zeros.
# - How to drive gradient descent by hand from the gradient tensors: a tiny linear system with a decaying
#   learning rate, solved exactly as the source program printed it, and a noisy linear regression fed one
#   sample at a time.
# - What a TF1 graph orders and what it leaves open, read off the graph itself, and the one ordering
#   hazard that hand-written updates in a `session.run` really have.
# :::
#
# TensorFlow 1 never computed anything when you wrote `y = x * x`. It recorded an *operation* in a
# *graph* and handed back a graph `Tensor`, a promise of a value. Numbers appeared only when a
# `Session` ran part of the graph with concrete inputs {cite:p}`abadi2016`. `tf.gradients` belongs to that
# world: it walks the graph backwards from `ys` to `xs` and **adds new operations** that compute the
# derivatives, by reverse-mode automatic differentiation {cite:p}`baydin2018,griewank2008`. Its
# documentation calls the result "symbolic derivatives", but this is not symbolic differentiation as a
# computer-algebra system does it: no formula for the derivative is ever built or simplified. For each
# operation on the path, `tf.gradients` calls the gradient function registered for that operation's
# type, which adds operations that multiply the incoming gradient by the operation's local derivative;
# the values flow only when the graph runs. No graph, no gradient. TensorFlow 2 executes eagerly by
# default, so the same function needs a graph to live in; {ref}`ch-tape` shows the eager alternative,
# `tf.GradientTape`.
#
# The first cell sets up the book's defaults: quiet logs (except TensorFlow's retracing warning),
# fixed seeds, deterministic operations.

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import numpy as np
import tensorflow as tf

# %% [markdown]
# ## Graph mode, then and now
#
# In the TF1 style (through `tf.compat.v1`), we open a fresh `tf.Graph`, declare a *placeholder* for the
# input, and write $f(x) = x^3 - 2x$. The cell counts the graph's operations before and after the call, to
# show that `tf.gradients` builds rather than computes.

# %%
cubic_graph = tf.Graph()
with cubic_graph.as_default():  # TF1: every op below goes into cubic_graph
    x = tf.compat.v1.placeholder(tf.float32, shape=[], name="x")
    f = x**3 - 2.0 * x
    ops_before = len(cubic_graph.get_operations())
    (df_dx,) = tf.gradients(f, x)  # a list with one entry per x
    ops_added = len(cubic_graph.get_operations()) - ops_before

print("the gradient is a graph tensor, not a number:", df_dx)
print("operations added to the graph by tf.gradients:", ops_added)
assert ops_added > 0 and not hasattr(df_dx, "numpy")

# %% [markdown]
# Only a session turns the gradient tensor into numbers, once per value fed into the placeholder. The
# result must be the derivative $3x^2 - 2$ that we know by hand.

# %%
x_values = np.array([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=np.float32)
with tf.compat.v1.Session(graph=cubic_graph) as session:  # TF1
    tf1_slopes = np.array(
        [session.run(df_dx, feed_dict={x: value}) for value in x_values]
    )

by_hand = 3 * x_values**2 - 2
print("x          :", x_values)
print("tf.gradients:", tf1_slopes)
print("3x^2 - 2    :", by_hand)
assert np.array_equal(tf1_slopes, by_hand)

# %% [markdown]
# A word on what runs here. The "TF1" cells of this chapter build TF1-style graphs and sessions through
# `tf.compat.v1`, but they call `tf.gradients`, which in TensorFlow 2 is a different function from TF1's:
# `tf.compat.v1.gradients` still takes `colocate_gradients_with_ops`, while `tf.gradients` drops that
# argument and always colocates. Both call the same graph-building code, so in these graphs they return
# the same values; TF1 code moved to TF2 by replacing `tf.` with `tf.compat.v1.` calls
# `tf.compat.v1.gradients`. The variables are TF2's
# *resource* variables even inside a `tf.compat.v1` graph, not TF1's reference variables; their reads
# have well-defined ordering rules, which we use below.

# %%
import inspect

v1_only = set(inspect.signature(tf.compat.v1.gradients).parameters) - set(
    inspect.signature(tf.gradients).parameters
)
with cubic_graph.as_default():
    (df_dx_v1,) = tf.compat.v1.gradients(f, x)
with tf.compat.v1.Session(graph=cubic_graph) as session:
    v1_slopes = np.array([session.run(df_dx_v1, {x: value}) for value in x_values])
print("tf.gradients is tf.compat.v1.gradients:", tf.gradients is tf.compat.v1.gradients)
print("arguments only tf.compat.v1.gradients takes:", sorted(v1_only))
print("tf.compat.v1.gradients:", v1_slopes)
assert tf.gradients is not tf.compat.v1.gradients
assert v1_only == {"colocate_gradients_with_ops"}
assert np.array_equal(v1_slopes, tf1_slopes)


# %% [markdown]
# In TensorFlow 2 the graph comes from `tf.function`: the first call *traces* the Python function into a
# graph, and inside that trace `tf.gradients` is legal. The Python `print` runs only while tracing, which
# is why it shows a graph tensor rather than a number, and why it appears once for five calls: later
# calls with the same input signature reuse the traced graph.


# %%
@tf.function
def cubic_slope(x):  # TF2: traced into a graph on the first call
    f = x**3 - 2.0 * x
    (slope,) = tf.gradients(f, x)
    print("while tracing, the gradient is", slope)
    return slope


tf2_slopes = np.array([cubic_slope(tf.constant(value)).numpy() for value in x_values])
print("tf.function + tf.gradients:", tf2_slopes)
print("number of traces:", cubic_slope.experimental_get_tracing_count())
assert (
    np.array_equal(tf2_slopes, by_hand)
    and cubic_slope.experimental_get_tracing_count() == 1
)

# %% [markdown]
# Called eagerly, outside any graph, `tf.gradients` has nothing to walk back through: eager execution
# keeps no record of how a value was produced. TensorFlow refuses.

# %% tags=["raises-exception"]
with gdbook.expect_error(RuntimeError) as eager_call:
    x_eager = tf.constant(2.0)
    tf.gradients(x_eager**3 - 2.0 * x_eager, x_eager)

# %% [markdown]
# The message names the fix: record the computation on a `tf.GradientTape`, the subject of
# {ref}`ch-tape`.

# %%
print(eager_call.message)
assert "not supported when eager execution is enabled" in eager_call.message
assert "GradientTape" in eager_call.message

# %% [markdown]
# ## What `tf.gradients` adds to the graph
#
# Counting operations showed that `tf.gradients` builds; a smaller function shows *what* it builds.
# Take
#
# $$
# z = x y + \sin x, \qquad
# \frac{\partial z}{\partial x} = y + \cos x, \qquad
# \frac{\partial z}{\partial y} = x ,
# $$ (eq-tf-gradients-small)
#
# in which $x$ is used twice. The cell builds $z$, remembers which operations the forward pass made,
# asks `tf.gradients` for both derivatives, and runs *every* operation of the graph at $x = 2$, $y = 3$.

# %%
small_graph = tf.Graph()
with small_graph.as_default():  # TF1
    x_s = tf.compat.v1.placeholder(tf.float32, shape=[], name="x")
    y_s = tf.compat.v1.placeholder(tf.float32, shape=[], name="y")
    z_s = tf.add(x_s * y_s, tf.sin(x_s), name="z")
    forward_ops = small_graph.get_operations()
    dz_dx, dz_dy = tf.gradients(z_s, [x_s, y_s])
added_ops = small_graph.get_operations()[len(forward_ops) :]

with tf.compat.v1.Session(graph=small_graph) as session:
    node_values = session.run(
        {op.name: op.outputs[0] for op in small_graph.get_operations()},
        feed_dict={x_s: 2.0, y_s: 3.0},
    )


def short(name):
    return name.removeprefix("gradients/")


for op in small_graph.get_operations():
    inputs = ", ".join(short(t.op.name) for t in op.inputs) or "-"
    tag = "added" if op in added_ops else "forward"
    value = node_values[op.name]
    shown = f"{value:.7g}" if np.ndim(value) == 0 else value
    print(f"{tag:8}{short(op.name):17}{op.type:12}{inputs:27}{shown}")

# %% [markdown]
# The added operations are the backward pass, one local rule per forward operation, each multiplying
# the gradient that arrives from above (the *upstream* gradient) by that operation's local derivative:
#
# - `gradients/grad_ys_0` (a `Fill`) is the seed, $\partial z / \partial z = 1$.
# - The addition passes the upstream gradient to both of its inputs unchanged. Here both inputs have
#   the output's shape, so it adds no operation; an addition that broadcasts would add a sum over the
#   broadcast axes to bring each gradient back to its input's shape.
# - The product's rule multiplies the upstream gradient by the *other* factor: `mul_grad/Mul` is
#   $1 \cdot y$, the contribution of $xy$ to $\partial z/\partial x$, and `mul_grad/Mul_1` is $1 \cdot x$,
#   all of $\partial z / \partial y$.
# - The sine's rule computes $\cos x$ and multiplies it by the upstream gradient (`Sin_grad/Cos`,
#   `Sin_grad/mul`). The dashed control edge in the figure makes `Cos` wait for the upstream
#   gradient (here the seed). `Cos` needs only $x$, so without that edge the session could compute it
#   as soon as $x$ is known, during the forward pass, and hold the result in memory until the backward
#   pass gets there. The same edge in TensorFlow's gradient of `Square` carries the comment that it is
#   there "to prevent 2*x from being computed too early".
# - $x$ fans out to two operations, so its two contributions are *added*: `AddN` gives
#   $y + \cos x$, as {eq}`eq-tf-gradients-small` says.
#
# The next cell checks the nodes against the formulas, and the result against the tape, which records
# the same operations eagerly and applies the same rules.

# %%
x2, y2 = tf.constant(2.0), tf.constant(3.0)
with tf.GradientTape() as tape:  # TF2
    tape.watch([x2, y2])
    z2 = x2 * y2 + tf.sin(x2)
tape_dx, tape_dy = tape.gradient(z2, [x2, y2])
print(
    f"graph: dz/dx = {node_values[dz_dx.op.name]}, dz/dy = {node_values[dz_dy.op.name]}"
)
print(f"tape:  dz/dx = {tape_dx.numpy()}, dz/dy = {tape_dy.numpy()}")
assert node_values["gradients/mul_grad/Mul"] == 3.0 == y2.numpy()
assert node_values["gradients/mul_grad/Mul_1"] == 2.0 == node_values[dz_dy.op.name]
assert np.isclose(node_values["gradients/Sin_grad/mul"], np.cos(2.0), rtol=1e-6)
assert dz_dx.op.type == "AddN"
assert np.isclose(node_values[dz_dx.op.name], 3 + np.cos(2.0), rtol=1e-6)
assert node_values[dz_dx.op.name] == tape_dx.numpy() and tape_dy.numpy() == 2.0

# %% [markdown]
# To draw the graph, we place the forward pass on top, left to right, and the backward pass below it,
# right to left from the seed; the two constants from which the seed is filled (its shape and the
# value 1) are left out.

# %%
import matplotlib.pyplot as plt

forward_place = {"y": (0, 0), "x": (0, -1.2), "mul": (1.4, 0), "Sin": (1.4, -1.2)}
backward_place = {"grad_ys_0": (4.2, -3.4), "mul_grad/Mul_1": (2.8, -2.1)}
backward_place |= {"mul_grad/Mul": (2.8, -3.4), "Sin_grad/Cos": (1.4, -2.6)}
backward_place |= {"Sin_grad/mul": (1.4, -4.3), "AddN": (0, -3.4)}
position = forward_place | {"z": (2.8, -0.6)} | backward_place

# %% [markdown]
# {numref}`fig-tf-gradients-graph` shows the whole graph with its values.

# %% mystnb={"figure": {"caption": "The graph of $z = xy + \\sin x$ after `tf.gradients(z, [x, y])`. Blue boxes are the forward pass (top, left to right), orange boxes the backward pass that `tf.gradients` added (bottom, right to left, from the seed; the two constants from which the seed is filled are left out). Each box shows the operation's name and its value at $x = 2$, $y = 3$. Solid arrows carry values, the dashed arrow is a control dependency. The two paths from $x$ meet again in `AddN`.", "name": "fig-tf-gradients-graph"}}
drawn = [op for op in small_graph.get_operations() if short(op.name) in position]
fig, ax = plt.subplots(figsize=(9, 4.6))
boxes = {}
for op in drawn:
    label = f"{short(op.name)}\n{node_values[op.name]:.4g}"
    color = "C1" if op in added_ops else "C0"
    box = dict(boxstyle="round", facecolor=color, alpha=0.25, edgecolor=color)
    boxes[op] = ax.text(
        *position[short(op.name)], label, ha="center", va="center", fontsize=8, bbox=box
    )
# Arrows run from box edge to box edge: each is clipped to the two boxes it joins.
for op in drawn:
    edges = [(t.op, "-") for t in op.inputs] + [(c, "--") for c in op.control_inputs]
    for parent, style in [(p, style) for p, style in edges if p in drawn]:
        start, end = boxes[parent], boxes[op]
        arrow = dict(arrowstyle="->", color="0.45", ls=style, shrinkA=2, shrinkB=2)
        arrow |= dict(patchA=start.get_bbox_patch(), patchB=end.get_bbox_patch())
        if style == "--":
            # Up from the top edge, then across: apart from the seed's value arrows.
            arrow["connectionstyle"] = "angle,angleA=90,angleB=0,rad=8"
        ax.annotate(
            "",
            xy=position[short(op.name)],
            xytext=position[short(parent.name)],
            arrowprops=arrow,
        )
ax.text(0, -3.8, r"$\partial z/\partial x$", ha="center", va="top")
ax.text(2.8, -1.75, r"$\partial z/\partial y$", ha="center", va="bottom")
ax.set(xlim=(-0.4, 4.6), ylim=(-4.7, 0.4))
ax.axis("off")
plt.show()

# %% [markdown]
# ## Lists of `ys` and `xs`
#
# `tf.gradients(ys, xs)` accepts a list for either argument. It returns **one tensor per `x`**, shaped like
# that `x`, and each is the derivative of the *sum of all elements of all* `ys`:
#
# $$
# \texttt{tf.gradients}(ys, xs)[j] \;=\; \sum_{i} \sum_{k} \frac{\partial\, y_{i,k}}{\partial x_j}.
# $$ (eq-tf-gradients-sum)
#
# {cite:t}`src001` has an example with four vectors $w_1, \dots, w_4 \in \mathbb{R}^3$ and two outputs,
# $z_1 = 3w_1 + 2w_2 + w_3$ and $z_2 = -w_3 + w_4$. Both outputs are linear in the weights, so every
# gradient is a constant; the values of the variables do not matter and we start them at zero.

# %%
weights_graph = tf.Graph()
with weights_graph.as_default():  # TF1
    w1, w2, w3, w4 = (tf.Variable(tf.zeros([3]), name=f"w{i}") for i in range(1, 5))
    z1 = 3.0 * w1 + 2.0 * w2 + w3
    z2 = -1.0 * w3 + w4
    plain_grads = tf.gradients([z1, z2], [w1, w2, w3, w4])
    init_weights = tf.compat.v1.global_variables_initializer()

with tf.compat.v1.Session(graph=weights_graph) as session:
    session.run(init_weights)
    plain_values = session.run(plain_grads)

for name, value in zip(["w1", "w2", "w3", "w4"], plain_values, strict=True):
    print(f"d(z1 + z2)/d{name} = {value}")
# printed in the source document
source_plain = [[3, 3, 3], [2, 2, 2], [0, 0, 0], [1, 1, 1]]
assert all(
    np.array_equal(v, s) for v, s in zip(plain_values, source_plain, strict=True)
)

# %% [markdown]
# The gradient for $w_3$ is zero although $w_3$ appears in both outputs: by {eq}`eq-tf-gradients-sum` its
# contributions $+1$ (through $z_1$) and $-1$ (through $z_2$) are added, and cancel.
#
# ## `grad_ys`: weighting the outputs
#
# Summing the `ys` is a special case. `grad_ys` supplies one weight tensor $v_i$ **per y, shaped like that
# y** ({cite:t}`src001` says "like x", which is wrong; the two coincide in its example), and
# `tf.gradients` returns
#
# $$
# \texttt{tf.gradients}(ys, xs, \texttt{grad\_ys}=v)[j] \;=\; \sum_i J_{ij}^{\top} v_i,
# \qquad J_{ij} = \frac{\partial y_i}{\partial x_j}.
# $$ (eq-tf-gradients-vjp)
#
# This is a **vector-Jacobian product**: $v$ is the *upstream gradient*, what back-propagation would
# receive from later layers {cite:p}`rumelhart1986`. The default `grad_ys` is all ones, which gives back
# {eq}`eq-tf-gradients-sum`. The source weights both outputs with $v = (-2, -3, -4)$.

# %%
upstream = [-2.0, -3.0, -4.0]
with weights_graph.as_default():  # TF1: add the weighted gradient to the same graph
    weighted_grads = tf.gradients(
        [z1, z2], [w1, w2, w3, w4], grad_ys=[upstream, upstream]
    )

with tf.compat.v1.Session(graph=weights_graph) as session:
    session.run(init_weights)
    tf1_weighted = session.run(weighted_grads)

for name, value in zip(["w1", "w2", "w3", "w4"], tf1_weighted, strict=True):
    print(f"weighted gradient for {name} = {value}")
# printed in the source
source_weighted = [[-6, -9, -12], [-4, -6, -8], [0, 0, 0], [-2, -3, -4]]
assert all(
    np.array_equal(v, s) for v, s in zip(tf1_weighted, source_weighted, strict=True)
)

# %% [markdown]
# TF2's tape computes the same product; its argument is called `output_gradients`. We also build the full
# Jacobian of the six outputs with respect to each $w_j$ and multiply by $v$ explicitly, to check
# {eq}`eq-tf-gradients-vjp` itself rather than trust it.

# %%
tape_weights = [tf.Variable(tf.zeros([3])) for _ in range(4)]
with tf.GradientTape(persistent=True) as tape:  # TF2
    tz1 = 3.0 * tape_weights[0] + 2.0 * tape_weights[1] + tape_weights[2]
    tz2 = -1.0 * tape_weights[2] + tape_weights[3]
    both_outputs = tf.concat([tz1, tz2], axis=0)  # 6 numbers

v = tf.constant(upstream)
tape_weighted = tape.gradient([tz1, tz2], tape_weights, output_gradients=[v, v])
jacobians = tape.jacobian(both_outputs, tape_weights)  # four 6x3 matrices
explicit_vjp = [tf.concat([v, v], axis=0)[None, :] @ J for J in jacobians]
del tape

for j, (tape_value, vjp) in enumerate(
    zip(tape_weighted, explicit_vjp, strict=True), start=1
):
    print(f"w{j}: tape {tape_value.numpy()}   v^T J {vjp.numpy().ravel()}")
assert all(
    np.array_equal(t.numpy(), s)
    for t, s in zip(tape_weighted, source_weighted, strict=True)
)
assert all(
    np.array_equal(t.numpy(), e.numpy().ravel())
    for t, e in zip(tape_weighted, explicit_vjp, strict=True)
)

# %% [markdown]
# Graph, tape and explicit product agree exactly. `tf.gradients` and the tape never form $J$; they push
# $v$ backwards through each operation, at a small constant multiple of the cost of the forward pass
# however many inputs there are, plus the memory to keep the forward pass's intermediate values until
# the backward pass uses them {cite:p}`griewank2008`. That is why back-propagation can train millions
# of parameters.
#
# ## `stop_gradients` versus `tf.stop_gradient`: partial and total derivatives
#
# Take $a = 0$, $b = 2a$ and $c = a + b$. Asking for $\partial c / \partial a$ is ambiguous. The **total
# derivative** follows every path from $a$ to $c$, including the one through $b$; the **partial derivative**
# holds $b$ fixed:
#
# $$
# \frac{\mathrm{d}c}{\mathrm{d}a} = \frac{\partial c}{\partial a} + \frac{\partial c}{\partial b}\,
# \frac{\mathrm{d}b}{\mathrm{d}a} = 1 + 1 \cdot 2 = 3,
# \qquad
# \frac{\partial c}{\partial a}\Big|_{b\ \text{fixed}} = 1.
# $$ (eq-tf-gradients-total)
#
# `tf.gradients` returns total derivatives. Its `stop_gradients` argument lists tensors to be treated as
# constants *for this one call*, which yields the partial derivatives. `tf.stop_gradient` does the same
# at graph-construction time, by wrapping a tensor in an operation whose gradient is nothing.

# %%
stop_graph = tf.Graph()
with stop_graph.as_default():  # TF1
    a = tf.constant(0.0)
    b = 2.0 * a
    total = tf.gradients(a + b, [a, b])
    partial = tf.gradients(a + b, [a, b], stop_gradients=[a, b])
    # the same partial derivatives, cut into the graph itself
    a_cut = tf.stop_gradient(tf.constant(0.0))
    b_cut = tf.stop_gradient(2.0 * a_cut)
    partial_cut = tf.gradients(a_cut + b_cut, [a_cut, b_cut])
    # a later call on the cut graph: b_cut no longer depends on a_cut at all
    b_cut_on_a = tf.gradients(b_cut, a_cut)

with tf.compat.v1.Session(graph=stop_graph) as session:
    total_v, partial_v, partial_cut_v = (
        [float(g) for g in values]
        for values in session.run([total, partial, partial_cut])
    )

print("total derivatives            :", total_v)
print("stop_gradients=[a, b]        :", partial_v)
print("tf.stop_gradient in the graph:", partial_cut_v)
print("afterwards, d b_cut / d a_cut:", b_cut_on_a)
assert total_v == [3.0, 1.0] and partial_v == [1.0, 1.0] and partial_cut_v == [1.0, 1.0]
assert b_cut_on_a == [None]

# %% [markdown]
# The numbers are the source's $[3.0, 1.0]$ and $[1.0, 1.0]$. The last line shows the practical difference:
# `stop_gradients=` is an option of one gradient call and leaves the graph as it was, while
# `tf.stop_gradient` changes the graph for every later call. After it, `b_cut` has no differentiable path
# to `a_cut` at all, and the answer is `None` (the next section explains why `None` rather than zero).
# The tape has no `stop_gradients` argument; in TF2 you write `tf.stop_gradient` where the path must be
# cut. Without it, the tape also returns total derivatives:

# %%
a2 = tf.constant(0.0)
with tf.GradientTape() as tape:  # TF2
    tape.watch(a2)
    b2 = 2.0 * a2
    c2 = a2 + b2
tape_total = [float(g) for g in tape.gradient(c2, [a2, b2])]
print("tape, total derivatives:", tape_total)
assert tape_total == [3.0, 1.0]


# %% [markdown]
# ## `unconnected_gradients`: `None` or zeros
#
# If no path leads from the `ys` to some `x`, `tf.gradients` returns `None` for it by default. The choice
# is deliberate: a zero would claim "the derivative exists and is zero", while `None` says "this variable
# does not take part", which is usually a bug worth hearing about, such as a layer that was never used
# or a path through an integer tensor (a cast to `int32` carries no gradient). With `unconnected_gradients=tf.UnconnectedGradients.ZERO` you get zeros
# of the right shape instead.


# %%
@tf.function
def gradients_with_bystander(unconnected):  # TF2 graph
    used = tf.constant(1.5)
    bystander = tf.constant([1.0, 2.0])  # never used by the loss
    loss = used**2
    return tf.gradients(loss, [used, bystander], unconnected_gradients=unconnected)


as_none = gradients_with_bystander(tf.UnconnectedGradients.NONE)  # the default
as_zero = gradients_with_bystander(tf.UnconnectedGradients.ZERO)
print("default:", [None if g is None else g.numpy().tolist() for g in as_none])
print("ZERO   :", [g.numpy().tolist() for g in as_zero])
assert as_none[0].numpy() == 3.0 and as_none[1] is None
assert as_zero[0].numpy() == 3.0 and np.array_equal(as_zero[1].numpy(), [0.0, 0.0])

# %% [markdown]
# A hand-written update that meets a `None` fails, loudly and not very clearly:

# %% tags=["raises-exception"]
bystander_variable = tf.Variable([1.0, 2.0])
learning_rate = 0.1
with gdbook.expect_error(TypeError) as none_update:
    bystander_variable.assign_sub(learning_rate * as_none[1])

# %% [markdown]
# Python, not TensorFlow, complains: `0.1 * None` is not defined. Seeing `NoneType` in such a message is
# the cue to look for an unconnected variable.

# %%
print(none_update.message)
assert "NoneType" in none_update.message

# %% [markdown]
# ## A tiny linear system, solved by hand in graph mode
#
# {cite:t}`src000` solves one linear equation by gradient descent. The input is the row
# $x = (2, 1)$, the target is $y = 0$, and the trainable parameters are a column $w = (1, 2)^\top$ and a
# bias $b = (0, 0)$. Because $b$ has **two** entries, the prediction $p = xw + b$ is a $1 \times 2$ row with
# two equal entries, $p_1 = p_2 = 4$ at the start. The loss is the mean squared error over those two
# entries. Instead of `optimizer.minimize`, the program asks `tf.gradients` for the gradient of every
# trainable variable, prints the sum of squares of each gradient (it reaches zero only at the minimum), and
# applies $\theta \leftarrow \theta - \alpha_t \nabla_\theta L$ itself, with a learning rate decayed every
# step by `exponential_decay`:
#
# $$
# \alpha_t = 0.05 \cdot 0.9^{\,t/100}.
# $$ (eq-tf-gradients-decay)
#
# The TF1 graph below holds the whole step: gradients, update ops and a step counter. One *control
# dependency* makes the counter's increment wait for both updates; the next subsection shows, from the
# graph itself, why that is the only one the step needs.

# %%
system_graph = tf.Graph()
with system_graph.as_default():  # TF1
    x_row = tf.constant([[2.0, 1.0]])
    target = tf.constant([0.0])
    w = tf.Variable([[1.0], [2.0]], name="w")
    b = tf.Variable([0.0, 0.0], name="b")  # shape [2]: the prediction is 1x2
    prediction = tf.matmul(x_row, w) + b
    loss = tf.reduce_mean((target - prediction) ** 2)

    global_step = tf.Variable(0, trainable=False, name="global_step")
    decayed_rate = tf.compat.v1.train.exponential_decay(
        learning_rate=0.05, global_step=global_step, decay_steps=100, decay_rate=0.9
    )
    trainables = tf.compat.v1.trainable_variables()
    gradients = tf.gradients(loss, trainables)  # one tensor per variable
    gradient_sses = [tf.reduce_sum(g**2) for g in gradients]
    updates = [
        var.assign_sub(decayed_rate * g)
        for var, g in zip(trainables, gradients, strict=True)
    ]
    with tf.control_dependencies(updates):
        train_step = global_step.assign_add(1)
    init_system = tf.compat.v1.global_variables_initializer()

print([f"{var.name}: {type(var).__name__}" for var in trainables])
assert all(type(var).__name__ == "ResourceVariable" for var in trainables)


# %% [markdown]
# ### What the graph orders, and what it does not
#
# A session runs only the ancestors of what it is asked to fetch: the operations that produce its
# inputs and its *control inputs*, recursively. Any two operations of which neither is an ancestor of
# the other may run in either order, or at the same time. For resource variables TensorFlow adds one
# promise: a read sees every write among its ancestors and no write among its descendants. Reads and
# writes that are not connected either way are unordered. The next cell collects ancestors by walking
# the graph backwards from an operation.


# %%
def ancestors(fetch):
    """Every operation that must run before `fetch`, through inputs and control
    inputs."""
    found, stack = set(), [getattr(fetch, "op", fetch)]
    while stack:
        op = stack.pop()
        for parent in [tensor.op for tensor in op.inputs] + list(op.control_inputs):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


# %% [markdown]
# With it, the cell below finds the reads of $w$ and $b$ in the forward pass and asks whether they, and
# the gradients, come before each update.

# %%
update_ops = [update.op for update in updates]
before_w, before_b = ancestors(update_ops[0]), ancestors(update_ops[1])
# sorted by name: a set has no fixed order from run to run
reads_in_prediction = [
    op for op in ancestors(prediction) if op.type == "ReadVariableOp"
]
forward_reads = sorted(reads_in_prediction, key=lambda op: op.name)
print("the reads of w and b in the forward pass:", [op.name for op in forward_reads])
print(
    "ancestors of both updates:", all(op in before_w & before_b for op in forward_reads)
)
print(
    "each gradient is an ancestor of its update:",
    [g.op in ancestors(u) for g, u in zip(gradients, update_ops, strict=True)],
)
assert len(forward_reads) == 2 and all(
    op in before_w & before_b for op in forward_reads
)

# %% [markdown]
# Each update consumes its gradient, and each gradient is computed from the forward reads of both
# variables, so both reads come before both writes: the updates see the old $w$ and $b$ without any
# control dependency. The counter is different. Nothing in `global_step.assign_add(1)` consumes the
# updates, so without the control dependency `session.run(train_step)` would run the increment alone
# and never touch $w$ and $b$; with it, the updates (and the rate they read from the counter) come
# first. What the graph leaves open is the read that `session.run(w)` fetches: `w`'s own read
# operation, which is neither an ancestor nor a descendant of the update.

# %%
fetched_read = system_graph.as_graph_element(w).op
with system_graph.as_default():
    plain_counter = global_step.assign_add(1).op
print(f"session.run(w) fetches {fetched_read.name}")
print("  before the update of w:", fetched_read in before_w)
print("  after the update of w: ", update_ops[0] in ancestors(fetched_read))
print("updates before train_step:", set(update_ops) <= ancestors(train_step.op))
print(
    "updates before a counter without the dependency:",
    bool(set(update_ops) & ancestors(plain_counter)),
)
assert fetched_read not in before_w and update_ops[0] not in ancestors(fetched_read)
assert set(update_ops) <= ancestors(train_step.op)
assert not set(update_ops) & ancestors(plain_counter)

# %% [markdown]
# That is the real TF1 hazard: fetching a variable, or any read that is not an input of the update, in
# the same `session.run` as the update. `session.run([w, train_step])` may return $w$ before or after
# the step, and nothing in the graph says which. The loop below keeps the two apart, as the source
# program did: one `session.run` reads the values, the next one runs the step.
#
# {cite:t}`src001` meets the same hazard in momentum written by hand, and notes that its two updates
# have to run in separate `session.run` calls rather than grouped with `tf.group`. The graph says why:
# the update of $w$ reads the velocity $v$ through a read of its own, which the update of $v$ is not an
# ancestor of. A read created under a control dependency on the velocity's update is ordered after it.

# %%
momentum_graph = tf.Graph()
with momentum_graph.as_default():  # TF1
    w_m, v_m = tf.Variable(2.0), tf.Variable(0.0)
    (g_m,) = tf.gradients(tf.square(w_m - 3.0), w_m)
    update_v = v_m.assign(0.8 * v_m + 0.01 * g_m)
    update_w = w_m.assign(w_m - v_m)
    grouped = tf.group(update_v, update_w)
    with tf.control_dependencies([update_v]):
        update_w_after_v = w_m.assign(w_m - v_m)
print("grouped: v updated before w reads it:", update_v.op in ancestors(update_w.op))
print(
    "control dependency: v updated before w reads it:",
    update_v.op in ancestors(update_w_after_v.op),
)
assert update_v.op not in ancestors(update_w.op)
assert update_v.op in ancestors(update_w_after_v.op)

# %% [markdown]
# ### The run, checked against the source
#
# We run 60 steps, recording the sums of squares, the prediction and the learning rate *before* each
# update, and print the first eleven rows as the source did.

# %%
system_steps = 60
tf1_sses, tf1_predictions, tf1_rates = [], [], []
with tf.compat.v1.Session(graph=system_graph) as session:
    session.run(init_system)
    for _ in range(system_steps + 1):
        sses, pred, rate = session.run([gradient_sses, prediction, decayed_rate])
        tf1_sses.append(sses)
        tf1_predictions.append(pred)
        tf1_rates.append(rate)
        session.run(train_step)
tf1_sses = np.array(tf1_sses)  # (steps + 1, 2): for w and for b
tf1_predictions = np.array(tf1_predictions)[:, 0, :]  # (steps + 1, 2)
tf1_rates = np.array(tf1_rates)

for step in range(11):
    print(
        f"step {step:2d}  sum of squares {tf1_sses[step]}  prediction "
        f"{tf1_predictions[step]}"
    )

# %% [markdown]
# These are the source's printed values, kept once in `gdbook.sources` for every chapter that checks
# against them. The source printed the sums of squares as float32 numbers in their shortest exact form,
# so they can be compared bit for bit. It printed the predictions as NumPy prints a float32 array: the
# shortest decimal that identifies the float32 number, cut to at most 8 decimals. Ours are compared
# after the same rounding.

# %%
from gdbook.sources import LINEAR_SYSTEM_GRADIENT_SUMS_OF_SQUARES as source_sses
from gdbook.sources import LINEAR_SYSTEM_PREDICTIONS as source_predictions

sses_equal = np.array_equal(tf1_sses[:11], source_sses.astype(np.float32))


def as_printed(value):
    return np.format_float_positional(value, precision=8)


ours_printed = [as_printed(p) for p in tf1_predictions[:11, 0]]
source_printed = [as_printed(p) for p in source_predictions]
print(f"sums of squares, 11 steps x 2, bit-identical to the source's: {sses_equal}")
print("predictions as printed:", ", ".join(ours_printed[:4]), "...")
print("the same as the source's:", ours_printed == source_printed)
print("NumPy's own print of step 3:", tf1_predictions[3][None, :])
assert str(tf1_predictions[3][None, :]) == f"[[{ours_printed[3]} {ours_printed[3]}]]"
assert tf1_sses.dtype == np.float32 and sses_equal
assert ours_printed == source_printed
# the two entries of the prediction stay equal
assert np.array_equal(tf1_predictions[:, 0], tf1_predictions[:, 1])

# %% [markdown]
# ### Why the prediction shrinks by $1 - 11\alpha$
#
# Write $p$ for the common value of the two prediction entries. With $L = \tfrac12 (p_1^2 + p_2^2)$ we have
# $\partial L / \partial p_k = p_k = p$, and the chain rule through $p_k = x w + b_k$ gives
#
# $$
# \nabla_w L = x^\top (p_1 + p_2) = 2p\,x^\top = \begin{pmatrix} 4p \\ 2p \end{pmatrix},
# \qquad
# \nabla_b L = \begin{pmatrix} p \\ p \end{pmatrix},
# \qquad
# \|\nabla_w L\|^2 = 20p^2,\quad \|\nabla_b L\|^2 = 2p^2.
# $$ (eq-tf-gradients-system-grads)
#
# At $p = 4$ these are the printed $320$ and $32$, and the ratio of the two sums is always $10$. One update
# moves each prediction entry by $-\alpha_t\,(x \nabla_w L + p) = -\alpha_t (2p\,\|x\|^2 + p)$ with
# $\|x\|^2 = 5$, so
#
# $$
# p_{t+1} = \bigl(1 - 11\,\alpha_t\bigr)\, p_t .
# $$ (eq-tf-gradients-shrink)
#
# With a constant $\alpha = 0.05$ the factor would stay at $0.45$: $4 \to 1.8 \to 0.81$. But
# {eq}`eq-tf-gradients-decay` lowers $\alpha_t$ a little at *every* step (the schedule is not a staircase),
# so the second step already uses $\alpha_1 = 0.05 \cdot 0.9^{0.01}$, and the source prints $0.81104267$,
# not $0.81$. The next cell checks the schedule and {eq}`eq-tf-gradients-system-grads` on the first 11
# steps, and {eq}`eq-tf-gradients-shrink` on the first 10 updates, where $p$ is still large enough for
# float32 to resolve the ratio $p_{t+1}/p_t$ well.

# %%
p32 = tf1_predictions[:, 0].astype(np.float64)
rates_by_formula = 0.05 * 0.9 ** (np.arange(system_steps + 1) / 100)
factor_by_formula = 1 - 11 * rates_by_formula[:-1]
factor_float32 = p32[1:11] / p32[:10]
sse_by_formula = np.stack([20 * p32[:11] ** 2, 2 * p32[:11] ** 2], axis=1)

rate_error = np.max(np.abs(tf1_rates / rates_by_formula - 1))
sse_formula_error = np.max(np.abs(tf1_sses[:11] / sse_by_formula - 1))
factor_error_32 = np.max(np.abs(factor_float32 - factor_by_formula[:10]))
print(
    f"rate vs 0.05*0.9^(t/100), {system_steps + 1} steps: max relative difference "
    f"{rate_error:.1e}"
)
print(
    "sums of squares vs 20p^2 and 2p^2, 11 steps: max relative difference "
    f"{sse_formula_error:.1e}"
)
print(
    "p[t+1]/p[t] vs 1 - 11*rate, 10 updates   : max absolute difference "
    f"{factor_error_32:.1e}"
)
assert rate_error < 1e-6 and sse_formula_error < 1e-6 and factor_error_32 < 1e-5

# %% [markdown]
# ### The same in TF2, and in float64
#
# In TF2 the variables are ordinary `tf.Variable`s, the schedule is a Keras `ExponentialDecay` object
# called with the step, and a `tf.function` holds one step. Inside it, the reads, the updates and the
# counter increment run in program order (`tf.function` adds the control dependencies itself). We make
# the precision a parameter, because float32 has a surprise in store.

# %%
import keras


def make_system_step(dtype):
    """TF2: the linear system's variables and one step, applied by hand."""
    x_row = tf.constant([[2.0, 1.0]], dtype)
    target = tf.constant([0.0], dtype)
    w = tf.Variable(tf.constant([[1.0], [2.0]], dtype))
    b = tf.Variable(tf.constant([0.0, 0.0], dtype))
    step = tf.Variable(0, dtype=tf.int64)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=tf.constant(0.05, dtype), decay_steps=100, decay_rate=0.9
    )

    @tf.function
    def system_step():
        prediction = x_row @ w + b
        loss = tf.reduce_mean((target - prediction) ** 2)
        gradients = tf.gradients(loss, [w, b])
        sses = tf.stack([tf.reduce_sum(g**2) for g in gradients])
        rate = schedule(step)
        for var, g in zip([w, b], gradients, strict=True):
            var.assign_sub(rate * g)
        step.assign_add(1)
        return sses, prediction[0]

    return system_step


# %% [markdown]
# Each call of the step returns the sums of squares and the prediction *before* its update, like the
# TF1 loop; in float32 the two programs must agree exactly.


# %%
def run_system(dtype, steps=system_steps):
    system_step = make_system_step(dtype)
    rows = [system_step() for _ in range(steps + 1)]
    return np.array([s.numpy() for s, _ in rows]), np.array(
        [pred.numpy() for _, pred in rows]
    )


tf2_sses, tf2_predictions = run_system(tf.float32)
tf1_tf2_diff = max(
    np.max(np.abs(tf2_sses - tf1_sses)),
    np.max(np.abs(tf2_predictions - tf1_predictions)),
)
print(
    f"TF2 vs TF1, float32, all {system_steps + 1} steps: max absolute difference "
    f"{tf1_tf2_diff:.1e}"
)
assert tf1_tf2_diff == 0.0

# %% [markdown]
# The two programs agree bit for bit: the same float32 operations in the same order. Now the surprise.
# According to {eq}`eq-tf-gradients-shrink` the prediction should keep shrinking forever, yet the float32
# run gets stuck:

# %%
_, float64_predictions = run_system(tf.float64)
p64 = float64_predictions[:, 0]
eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
print(
    f"float32: p at steps 30, 45, 60 = {p32[30]:.3g}, {p32[45]:.3g}, {p32[60]:.3g}  "
    f"(eps = {eps32:.3g})"
)
print(
    f"float64: p at steps 30, 45, 60 = {p64[30]:.3g}, {p64[45]:.3g}, {p64[60]:.3g}  "
    f"(eps = {eps64:.3g})"
)
assert p32[30] == p32[60] and eps32 / 8 <= p32[60] <= 4 * eps32
assert p64[55] == p64[60] and eps64 / 8 <= p64[60] <= 4 * eps64

# %% [markdown]
# Nothing is wrong with the gradient: it is exactly what {eq}`eq-tf-gradients-system-grads` says. The
# trouble is the *update*. The parameters stay of order one while the step $\alpha_t \nabla L$ shrinks with
# $p$; once the step is smaller than half the gap between neighbouring floating-point numbers near $w$
# and $b$, `w - step` rounds back to `w` and training stops, here with $p$ at about the machine epsilon of
# each format. In float64 the law {eq}`eq-tf-gradients-shrink` can be checked far more tightly, over the
# first 25 updates (while $p > 10^{-8}$):

# %%
checked = 25
factor_float64 = p64[1 : checked + 1] / p64[:checked]
factor_error_64 = np.max(np.abs(factor_float64 - factor_by_formula[:checked]))
print(
    f"float64, {checked} updates: p[t+1]/p[t] vs 1 - 11*rate, max abs. difference "
    f"{factor_error_64:.1e}"
)
print(
    f"factor at step 0: {factor_float64[0]:.6f}, at step {checked - 1}: "
    f"{factor_float64[-1]:.6f}"
)
assert factor_error_64 < 1e-8
assert (
    p64[checked] > 1e-8
    and abs(factor_float64[0] - 0.45) < 1e-12
    and factor_float64[-1] > 0.46
)

# %% [markdown]
# {numref}`fig-tf-gradients-shrink` shows both effects: the prediction falls geometrically, a little more
# slowly than the constant factor $0.45$ would make it because the factor creeps upward as the rate
# decays, until each format hits its rounding floor.

# %% mystnb={"figure": {"caption": "Left: the prediction $p_t$ of the linear system (log scale) in float32 (the TF1 run) and in float64, against $4 \\cdot 0.45^t$, what a constant learning rate of 0.05 would give; each run stalls at about its machine epsilon. Right: the measured factor $p_{t+1}/p_t$ in float64 (dots) follows $1 - 11\\alpha_t$ (line) upward from 0.45 as the learning rate decays.", "name": "fig-tf-gradients-shrink"}}
steps = np.arange(system_steps + 1)
fig, (ax_p, ax_f) = plt.subplots(1, 2, figsize=(9, 3.5))
ax_p.semilogy(steps, 4 * 0.45**steps, "--", color="0.4", label=r"$4 \cdot 0.45^t$")
ax_p.semilogy(steps, p32, "o", ms=3, label="float32 (TF1)")
ax_p.semilogy(steps, p64, "s", ms=2.5, label="float64 (TF2)")
ax_p.axhline(eps32, color="C0", lw=0.8, ls=":", label="machine epsilon")
ax_p.axhline(eps64, color="C1", lw=0.8, ls=":")
ax_p.set(xlabel="step $t$", ylabel="prediction $p_t$", ylim=(1e-21, 10))
ax_p.legend(fontsize="small")
ax_f.plot(steps[:-1], factor_by_formula, "-", color="C2", label=r"$1 - 11\,\alpha_t$")
ax_f.plot(
    steps[:checked],
    factor_float64,
    "s",
    ms=3,
    color="C1",
    label=r"measured $p_{t+1}/p_t$ (float64)",
)
ax_f.axhline(0.45, ls="--", color="0.4", lw=1, label="constant rate 0.05")
ax_f.set(xlabel="step $t$", ylabel="shrink factor")
ax_f.legend(fontsize="small")
plt.show()

# %% [markdown]
# ## Noisy linear regression, one sample at a time
#
# {cite:t}`src001` draws 32 noisy points around $y = 3x + 2$ and fits the line to the first 20 of
# them; we make one pass over all 32. The inputs are integers drawn from
# $[-10, 100)$; both the inputs and the targets get Gaussian noise with standard deviation $0.1$. The
# model starts at $w = 2$, $b = 1$ and is updated after **every single sample**, which is stochastic
# gradient descent in its original form {cite:p}`robbins1951`. The source drew its data without a seed, so
# its printed numbers cannot be reproduced; ours come from a seeded generator.

# %%
rng = np.random.default_rng(gdbook.DEFAULT_SEED)
n_samples = 32
x_clean = rng.integers(-10, 100, n_samples)
x_data = (x_clean + rng.standard_normal(n_samples) / 10).astype(np.float32)
y_data = (3 * x_clean + 2 + rng.standard_normal(n_samples) / 10).astype(np.float32)
print("first inputs :", np.round(x_data[:6], 2))
print("first targets:", np.round(y_data[:6], 2))

# %% [markdown]
# The source keeps a quirk we reproduce on purpose: the loss of one sample is divided by $2 \cdot 32$, as
# if it were averaged over a batch of 32,
#
# $$
# L(w, b) = \frac{(y - wx - b)^2}{64}, \qquad
# \frac{\partial L}{\partial w} = -\frac{(y - wx - b)\,x}{32}, \qquad
# \frac{\partial L}{\partial b} = -\frac{y - wx - b}{32},
# $$ (eq-tf-gradients-sample-loss)
#
# so every step is 32 times smaller than with the usual per-sample loss $(y - wx - b)^2/2$ at the same
# learning rate 0.01. The TF1 program uses the library's `GradientDescentOptimizer`, fed with the very
# tensors `tf.gradients` returned. The loop fetches the loss and the gradients in the same `session.run`
# as the update, and that is safe without any control dependency: loss and gradients are computed from
# the same reads of $w$ and $b$, and the update consumes the gradients, so those reads are ancestors of
# the update and see the old values. The loss operation itself is not an ancestor, and need not be.

# %%
regression_graph = tf.Graph()
with regression_graph.as_default():  # TF1
    x_input = tf.compat.v1.placeholder(tf.float32, shape=[], name="x_input")
    y_input = tf.compat.v1.placeholder(tf.float32, shape=[], name="y_input")
    w_reg = tf.Variable(2.0, name="weight")
    b_reg = tf.Variable(1.0, name="bias")
    loss_op = (y_input - (x_input * w_reg + b_reg)) ** 2 / (2 * 32)
    gradient_ops = tf.gradients(loss_op, [w_reg, b_reg])
    sgd_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).apply_gradients(
        zip(gradient_ops, [w_reg, b_reg], strict=True)
    )
    init_regression = tf.compat.v1.global_variables_initializer()

before_sgd = ancestors(sgd_op)
reads_in_loss = [op for op in ancestors(loss_op) if op.type == "ReadVariableOp"]
loss_reads = sorted(reads_in_loss, key=lambda op: op.name)
print("reads behind the loss:", [op.name for op in loss_reads])
print("  ancestors of the update:", all(op in before_sgd for op in loss_reads))
print("the loss operation itself an ancestor:", loss_op.op in before_sgd)
assert len(loss_reads) == 2 and all(op in before_sgd for op in loss_reads)

# %% [markdown]
# The weights before each step are fetched in a `session.run` of their own, because the reads that
# `session.run([w_reg, b_reg])` fetches are not ordered with the update.

# %%
tf1_log = []  # per step: loss, dL/dw, dL/db, and w, b before the update
with tf.compat.v1.Session(graph=regression_graph) as session:
    session.run(init_regression)
    for x_i, y_i in zip(x_data, y_data, strict=True):
        w_before, b_before = session.run([w_reg, b_reg])
        loss_i, grads_i, _ = session.run(
            [loss_op, gradient_ops, sgd_op], {x_input: x_i, y_input: y_i}
        )
        tf1_log.append([loss_i, *grads_i, w_before, b_before])
    w_final_tf1, b_final_tf1 = session.run([w_reg, b_reg])
tf1_log = np.array(tf1_log, dtype=np.float64)

for step in [0, 1, 2, 3, 29, 30, 31]:
    loss_i, gw, gb, w_i, b_i = tf1_log[step]
    print(
        f"step {step:2d}  x {x_data[step]:6.2f}  loss {loss_i:10.4g}  dL/dw "
        f"{gw:10.4g}  dL/db {gb:9.3g}"
    )
print(f"after one pass: w = {w_final_tf1:.5f}, b = {b_final_tf1:.5f}")

# %% [markdown]
# Each gradient must match {eq}`eq-tf-gradients-sample-loss` evaluated by hand, in float64, at the
# weights the step started from, up to float32 rounding (a relative $10^{-6}$ of the largest gradient).

# %%
residual = y_data - (tf1_log[:, 3] * x_data + tf1_log[:, 4])
hand_grad_w = -residual * x_data / 32
hand_grad_b = -residual / 32
largest_gradient = np.max(np.abs(hand_grad_w))
grad_error = max(
    np.max(np.abs(tf1_log[:, 1] - hand_grad_w)),
    np.max(np.abs(tf1_log[:, 2] - hand_grad_b)),
)
print(
    f"tf.gradients vs formula: max absolute difference {grad_error:.1e} "
    f"(largest gradient {largest_gradient:.1f}, ratio "
    f"{grad_error / largest_gradient:.1e})"
)
assert grad_error < 1e-6 * largest_gradient

# %% [markdown]
# The run lands near $w = 3$ within a few samples but leaves $b$ almost where it started, near 1 instead
# of 2. {eq}`eq-tf-gradients-sample-loss` says why: at every step the gradient for $w$ is the gradient
# for $b$ times that sample's $x$, so $w$ takes steps $|x|$ times as long as $b$'s, and $|x|$ is large
# here (its median, printed below, lies between 40 and 50). Over the pass $w$'s net change is tens of
# times $b$'s. The model fits the data anyway, because with inputs this large a wrong intercept is
# absorbed by a slightly larger slope.

# %%
median_abs_x = np.median(np.abs(x_data))
w_moved, b_moved = w_final_tf1 - 2, b_final_tf1 - 1
print(f"median |x| = {median_abs_x:.1f}")
print(
    f"w: 2 -> {tf1_log[5, 3]:.4f} after 5 samples -> "
    f"{w_final_tf1:.4f} after {n_samples}"
)
print(
    f"b: 1 -> {b_final_tf1:.4f} (moved {b_moved:.4f}); "
    f"w moved {w_moved / b_moved:.0f}x more"
)
assert 40 < median_abs_x < 50
assert (
    abs(tf1_log[5, 3] - 3) < 0.1 and abs(w_final_tf1 - 3) < 0.05 and abs(b_moved) < 0.05
)
# at every step dL/dw = x * dL/db, to float32 rounding
assert np.allclose(tf1_log[:, 1], x_data * tf1_log[:, 2], rtol=1e-6, atol=0)
# over the pass: tens of times farther; the slope ends slightly above 3
assert 10 < w_moved / b_moved < 100 and w_final_tf1 > 3

# %% [markdown]
# The per-sample view also explains the jumps. After an update on sample $(x, y)$ its own residual
# $r = y - wx - b$ becomes
#
# $$
# r' = \Bigl(1 - \eta\,\frac{x^2 + 1}{32}\Bigr)\, r, \qquad \eta = 0.01.
# $$ (eq-tf-gradients-residual)
#
# For $|x| > \sqrt{32/\eta - 1} \approx 57$ the factor is negative: the update *overshoots* and the
# residual changes sign. For $|x| > \sqrt{64/\eta - 1} \approx 80$ it is below $-1$: the residual comes
# back *larger* than it was. The next cell counts both kinds of samples and checks
# {eq}`eq-tf-gradients-residual` on every step.

# %%
eta = 0.01
factor = 1 - eta * (x_data.astype(np.float64) ** 2 + 1) / 32
w_after = np.append(tf1_log[1:, 3], w_final_tf1)
b_after = np.append(tf1_log[1:, 4], b_final_tf1)
residual_after = y_data - (w_after * x_data + b_after)
residual_error = np.max(np.abs(residual_after - factor * residual))
print(
    f"|x| thresholds: overshoot above {np.sqrt(32 / eta - 1):.1f}, "
    f"growth above {np.sqrt(64 / eta - 1):.1f}"
)
print(
    f"samples that overshoot (factor < 0): {np.sum(factor < 0)}, "
    f"that grow (factor < -1): {np.sum(factor < -1)}"
)
print(
    f"r' vs factor * r: max absolute difference {residual_error:.1e} (largest |r| "
    f"{np.abs(residual).max():.1f})"
)
assert residual_error < 1e-4
assert round(np.sqrt(32 / eta - 1)) == 57 and round(np.sqrt(64 / eta - 1)) == 80

# %% [markdown]
# In TF2 the same run is a `tf.function` that calls `tf.gradients` and a Keras `SGD` optimizer, whose
# update with the default `momentum=0` is exactly $\theta \leftarrow \theta - \eta\, g$.

# %%
w_reg2, b_reg2 = tf.Variable(2.0), tf.Variable(1.0)
sgd = keras.optimizers.SGD(learning_rate=0.01)


@tf.function
def regression_step(x_i, y_i):  # TF2
    loss = (y_i - (x_i * w_reg2 + b_reg2)) ** 2 / (2 * 32)
    gradients = tf.gradients(loss, [w_reg2, b_reg2])
    sgd.apply_gradients(zip(gradients, [w_reg2, b_reg2], strict=True))
    return loss, gradients


tf2_log = []
for x_i, y_i in zip(x_data, y_data, strict=True):
    loss_i, (gw, gb) = regression_step(tf.constant(x_i), tf.constant(y_i))
    tf2_log.append([loss_i.numpy(), gw.numpy(), gb.numpy()])
tf2_log = np.array(tf2_log, dtype=np.float64)
regression_diff = max(
    np.max(np.abs(tf2_log - tf1_log[:, :3])),
    abs(w_reg2.numpy() - w_final_tf1),
    abs(b_reg2.numpy() - b_final_tf1),
)
print(
    "TF2 vs TF1 (losses, gradients, final w and b): max absolute difference "
    f"{regression_diff:.1e}"
)
assert regression_diff == 0.0

# %% [markdown]
# {numref}`fig-tf-gradients-regression` shows the fit and the gradients. The gradient does shrink over
# the pass, but not monotonically: it is the gradient of *one* sample, and each sample has its own
# residual and its own $x$. Comparing the largest gradients at the start and at the end of the pass:

# %%
early_peak = np.max(np.abs(tf1_log[:4, 1]))
late_peak = np.max(np.abs(tf1_log[-8:, 1]))
print(
    f"largest |dL/dw|: first 4 steps {early_peak:.1f}, last 8 steps {late_peak:.2f}, "
    f"ratio {early_peak / late_peak:.0f}"
)
assert early_peak / late_peak > 20
# not monotonic: some steps have a larger gradient than the step before
assert np.any(np.diff(np.abs(tf1_log[:, 1])) > 0)
grid_x = np.linspace(-12, 102, 2)
grows = factor < -1
step_index = np.arange(n_samples)
print(f"residual grows at steps {step_index[grows].tolist()}")
assert np.array_equal(grows, np.abs(x_data) > np.sqrt(64 / eta - 1))

# %% [markdown]
# The figure circles the steps just printed, whose residual grows by {eq}`eq-tf-gradients-residual`:

# %% mystnb={"figure": {"caption": "Left: the 32 noisy samples, the true line $y = 3x + 2$, the starting line $y = 2x + 1$ and the line after one pass of per-sample SGD. Right: the size of the two gradients at each step (log scale). The gradient for $w$ is the one for $b$ times $x$, so it is larger by the factor $|x|$; the open circles mark the samples whose residual grows (factor below $-1$).", "name": "fig-tf-gradients-regression"}}
fig, (ax_fit, ax_grad) = plt.subplots(1, 2, figsize=(9, 3.6))
ax_fit.plot(x_data, y_data, "o", ms=4, color="0.35", label="samples")
ax_fit.plot(grid_x, 3 * grid_x + 2, "-", lw=3, alpha=0.35, label="true $3x + 2$")
ax_fit.plot(grid_x, 2 * grid_x + 1, "--", label="start $2x + 1$")
fitted_label = f"after one pass: {w_final_tf1:.3f}x + {b_final_tf1:.3f}"
ax_fit.plot(grid_x, w_final_tf1 * grid_x + b_final_tf1, "-", label=fitted_label)
ax_fit.set(xlabel="x", ylabel="y")
ax_fit.legend(fontsize="small")
ax_grad.semilogy(
    step_index, np.abs(tf1_log[:, 1]), "-o", ms=3, label=r"$|\partial L/\partial w|$"
)
ax_grad.semilogy(
    step_index, np.abs(tf1_log[:, 2]), "-s", ms=3, label=r"$|\partial L/\partial b|$"
)
ax_grad.semilogy(
    step_index[grows],
    np.abs(tf1_log[grows, 1]),
    "o",
    ms=9,
    mfc="none",
    color="k",
    label="residual grows",
)
ax_grad.set(xlabel="step (one sample each)", ylabel="gradient size")
ax_grad.legend(fontsize="small")
plt.show()

# %% [markdown]
# The animation replays the first half of the pass, where almost all the motion happens, as the next
# cell checks: by then $w$ has made its net change of the whole pass, to within a few percent.

# %%
# w (and b) before each step, then after the last
w_path = np.append(tf1_log[:, 3], w_final_tf1)
b_path = np.append(tf1_log[:, 4], b_final_tf1)
animated_updates = 16
share_of_motion = (w_path[animated_updates] - 2) / (w_final_tf1 - 2)
print(
    f"share of w's net change done after {animated_updates} samples: "
    f"{share_of_motion:.3f}"
)
assert abs(share_of_motion - 1) < 0.05

# %% [markdown]
# Each frame redraws the fitted line from the recorded path and circles the sample of the last
# update; the function below draws one frame.

# %%
from matplotlib import animation

from gdbook.plotting import to_html


def draw_frame(frame):
    """Frame k shows the line after k updates and circles sample k - 1."""
    fitted_line.set_data(grid_x, w_path[frame] * grid_x + b_path[frame])
    if frame > 0:
        current_sample.set_data([x_data[frame - 1]], [y_data[frame - 1]])
    status.set_text(
        f"after {frame} samples: w = {w_path[frame]:.3f}, b = {b_path[frame]:.4f}"
    )
    return fitted_line, current_sample, status


# %% [markdown]
# In {numref}`fig-tf-gradients-sgd-animation`, watch the large early corrections, the overshoot on a
# sample far to the right, and how little the intercept moves.

# %% mystnb={"figure": {"caption": "Per-sample SGD on the noisy regression, the first 16 updates of the pass. Each frame shows the fitted line after one more update, with the sample that caused it circled; the wide pale line is the true $y = 3x + 2$.", "name": "fig-tf-gradients-sgd-animation"}}
fig, ax_line = plt.subplots(figsize=(5.5, 3.4))
ax_line.plot(x_data, y_data, "o", ms=3, color="0.6", label="samples")
ax_line.plot(grid_x, 3 * grid_x + 2, "-", lw=4, alpha=0.3, label="true line")
(fitted_line,) = ax_line.plot([], [], "-", color="C1", label="current fit")
(current_sample,) = ax_line.plot([], [], "o", ms=10, mfc="none", mec="k")
ax_line.set(xlabel="x", ylabel="y", xlim=(-15, 105), ylim=(-40, 330))
ax_line.legend(loc="lower right", fontsize="small")
status = ax_line.text(0.03, 0.92, "", transform=ax_line.transAxes, fontsize="small")
fig.canvas.draw()
# fix the layout once; the frames only move the artists
fig.set_layout_engine("none")
sgd_animation = animation.FuncAnimation(
    fig, draw_frame, frames=animated_updates + 1, interval=600, blit=True
)
to_html(sgd_animation)


# %% [markdown]
# ### `minimize` is `compute_gradients` plus `apply_gradients`
#
# {cite:t}`src001`'s own program trained with the optimizer's `minimize`, and called `tf.gradients`
# only to print the gradient. In
# TF1, `minimize` is two calls in one. `compute_gradients` returns a list of (gradient, variable) pairs,
# computed with `tf.compat.v1.gradients`, and `apply_gradients` turns the pairs into update operations;
# splitting them is how TF1 programs clipped or logged gradients between the two. The next cell runs
# the pass three ways, each in a fresh graph: with `minimize`, with the two calls written out, and with
# `tf.gradients` fed to `apply_gradients` as above.


# %%
def one_tf1_pass(build_train_op):
    """Per-sample SGD over the data in a fresh TF1 graph; returns the final w and b."""
    graph = tf.Graph()
    with graph.as_default():
        x_in = tf.compat.v1.placeholder(tf.float32, shape=[])
        y_in = tf.compat.v1.placeholder(tf.float32, shape=[])
        w_v, b_v = tf.Variable(2.0), tf.Variable(1.0)
        loss_v = (y_in - (x_in * w_v + b_v)) ** 2 / (2 * 32)
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(0.01)
        train = build_train_op(optimizer, loss_v, [w_v, b_v])
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(init)
        for x_i, y_i in zip(x_data, y_data, strict=True):
            session.run(train, {x_in: x_i, y_in: y_i})
        return session.run([w_v, b_v])


# %% [markdown]
# The three ways differ only in how the training operation is built:

# %%
ways = {
    "minimize": lambda opt, loss, vs: opt.minimize(loss, var_list=vs),
    "compute + apply": lambda opt, loss, vs: opt.apply_gradients(
        opt.compute_gradients(loss, var_list=vs)
    ),
    "tf.gradients + apply": lambda opt, loss, vs: opt.apply_gradients(
        zip(tf.gradients(loss, vs), vs, strict=True)
    ),
}
finals = {name: one_tf1_pass(build) for name, build in ways.items()}
for name, (w_end, b_end) in finals.items():
    print(f"{name:22} w = {w_end:.7f}, b = {b_end:.7f}")
assert all(final == [w_final_tf1, b_final_tf1] for final in finals.values())

# %% [markdown]
# All three end bit for bit where the run above ended. `tf.compat.v1.gradients`, `compute_gradients`
# and `minimize` take three arguments that TF2's `tf.gradients` takes only in part:
#
# | argument | what it controls | in TF2's `tf.gradients` |
# | --- | --- | --- |
# | `aggregation_method` | how the contributions to a tensor used several times are added: `ADD_N`, the default, sums them in one `AddN` once all are ready; the experimental tree method adds them in pairs, so memory is freed earlier | the same |
# | `gate_gradients` | whether the gradients of one operation's inputs are all computed before any is used; `compute_gradients` and `minimize` default to `GATE_OP` (per operation) and offer `GATE_GRAPH` (every gradient before any update) and `GATE_NONE`; `tf.compat.v1.gradients` takes a boolean, off by default, and `True` is `GATE_OP` | the same boolean, off by default |
# | `colocate_gradients_with_ops` | whether each gradient operation is placed on the device of the operation it differentiates | gone: always on |
#
# ## Summary
#
# - `tf.gradients(ys, xs)` is reverse-mode automatic differentiation at graph-construction time: it adds
#   gradient operations to a graph and returns graph tensors. It needs graph
#   mode: a `tf.compat.v1` graph run by a session (TF1), or the trace of a `tf.function` (TF2). Called
#   eagerly it raises a `RuntimeError` that points to `tf.GradientTape`.
# - It returns one tensor per `x`, the derivative of the sum of all elements of all `ys`
#   ({eq}`eq-tf-gradients-sum`). `grad_ys` weights each `y` with a tensor of that `y`'s shape, giving the
#   vector-Jacobian product {eq}`eq-tf-gradients-vjp`; the tape's `output_gradients` is the same thing.
# - Gradients are total derivatives. `stop_gradients=` treats tensors as constants for one call;
#   `tf.stop_gradient` cuts the graph for every call ({eq}`eq-tf-gradients-total`).
# - An `x` that the `ys` do not depend on gets `None`, unless you ask for
#   `tf.UnconnectedGradients.ZERO`; an update that meets `None` fails with a `TypeError`.
# - Hand-applied gradient descent reproduces the source's linear system exactly: the sums of squares bit
#   for bit, the predictions as the source printed them. The prediction
#   shrinks by $1 - 11\alpha_t$ per step ({eq}`eq-tf-gradients-shrink`), a factor that drifts upward
#   because `exponential_decay` lowers the rate at every step. TF1 and TF2 agree bit for bit.
# - A session runs only the ancestors of what it fetches. The reads that feed an update's gradient come
#   before the update without any control dependency; a counter that nothing consumes needs one to
#   wait for the updates; and a variable fetched in the same `session.run` as its update may show the
#   value before or after it. TF1's `minimize` is `compute_gradients` followed by `apply_gradients`.
# - In float32 the hand-applied descent stalls once the steps fall below the rounding gap of the
#   parameters (the prediction stops near float32's machine epsilon); float64 goes on to near its own.
# - Per-sample SGD on noisy data fits the slope within a few samples and the intercept hardly at all,
#   because the slope's gradient carries a factor $x$; samples with $|x| > 57$ overshoot, and beyond 80
#   they leave a larger residual than they found ({eq}`eq-tf-gradients-residual`).
#
# The two ways of asking for gradients, side by side ({ref}`ch-tape` covers the tape in depth):
#
# | | `tf.gradients` | `tf.GradientTape.gradient` |
# | --- | --- | --- |
# | where it works | only while a graph is built: TF1 graph, `tf.function` | eagerly and inside `tf.function` |
# | what it differentiates | any tensor of the graph | only what was recorded on the tape |
# | weights on the `ys` | `grad_ys` | `output_gradients` |
# | treat tensors as constants | `stop_gradients=[...]` or `tf.stop_gradient` | `tf.stop_gradient` only |
# | no path from `y` to `x` | `None`, or zeros with `unconnected_gradients` | the same |
# | derivative of a list of `ys` | of the sum of all their elements | the same |
#
# ## Exercises
#
# ```{exercise}
# :label: ex-tf-gradients-1
# Using only `grad_ys` (no `jacobian`), extract the single number $\partial z_2[1] / \partial w_3[1]$
# from the four-weight example. Which `grad_ys` do you pass, and why does one call give you a whole row
# of the Jacobian?
# ```
#
# ```{solution-start} ex-tf-gradients-1
# :class: dropdown
# ```
#
# By {eq}`eq-tf-gradients-vjp` the result is $\sum_i J_i^\top v_i$. Choose $v_1 = 0$ and
# $v_2 = e_1 = (0, 1, 0)$: then the result for $w_j$ is $J_{2j}^\top e_1$, the row of
# $\partial z_2[1]/\partial w_j$ for every element of every $w_j$ at once. The middle entry of the result for $w_3$ is the number asked for, $-1$.

# %%
with weights_graph.as_default():
    one_row = tf.gradients(
        [z1, z2], [w1, w2, w3, w4], grad_ys=[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    )
with tf.compat.v1.Session(graph=weights_graph) as session:
    session.run(init_weights)
    row_values = session.run(one_row)
print(row_values)
assert row_values[2][1] == -1.0 and row_values[3][1] == 1.0 and not row_values[0].any()


# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tf-gradients-2
# For the linear system, which constant learning rate solves it in a single step, and above which rate
# does the prediction grow instead of shrinking? Check both with a few lines of code.
# ```
#
# ```{solution-start} ex-tf-gradients-2
# :class: dropdown
# ```
#
# By {eq}`eq-tf-gradients-shrink` with a constant rate, $p_{t+1} = (1 - 11\alpha) p_t$. The factor is zero
# at $\alpha = 1/11$ (one step to the exact solution) and below $-1$ when $\alpha > 2/11 \approx 0.18$, where
# the prediction flips sign and grows.


# %%
def one_system_step(rate):
    w_ex, b_ex = tf.Variable([[1.0], [2.0]]), tf.Variable([0.0, 0.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((tf.constant([[2.0, 1.0]]) @ w_ex + b_ex) ** 2)
    gw, gb = tape.gradient(loss, [w_ex, b_ex])
    return (
        tf.constant([[2.0, 1.0]]) @ (w_ex - rate * gw) + (b_ex - rate * gb)
    ).numpy()[0, 0]


print(f"2/11 = {2 / 11:.4f}")
for rate in [1 / 11, 0.17, 0.2]:
    print(f"rate {rate:.4f}: prediction 4 -> {one_system_step(rate):.6f}")
assert abs(one_system_step(1 / 11)) < 1e-6
# between 1/11 and 2/11 the sign flips but the size shrinks; above 2/11 it grows
assert -4.0 < one_system_step(0.17) < 0 and one_system_step(0.2) < -4.0

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tf-gradients-3
# {cite:t}`src001`'s companion example minimises $(wx - 3)^2$ with $x = 1$, starting from $w = 2$, with learning
# rate 1. Predict the sequence of $w$, then write the update by hand in TF1 with `tf.gradients` and
# `tf.compat.v1.assign` and confirm it.
# ```
#
# ```{solution-start} ex-tf-gradients-3
# :class: dropdown
# ```
#
# The gradient is $2(wx - 3)x = 2(w - 3)$, so $w \leftarrow w - 2(w - 3) = 6 - w$: the residual is multiplied
# by $1 - 2\eta = -1$ every step and $w$ bounces between 2 and 4 forever, with the loss stuck at 1.

# %%
bounce_graph = tf.Graph()
with bounce_graph.as_default():  # TF1
    x_b = tf.compat.v1.placeholder(tf.float32, shape=[])
    w_b = tf.Variable(2.0)
    (g_b,) = tf.gradients(tf.square(w_b * x_b - 3.0), w_b)
    update_b = tf.compat.v1.assign(w_b, w_b - 1.0 * g_b)
    init_b = tf.compat.v1.global_variables_initializer()
with tf.compat.v1.Session(graph=bounce_graph) as session:
    session.run(init_b)
    w_sequence = [session.run(w_b)] + [
        session.run(update_b, {x_b: 1.0}) for _ in range(5)
    ]
print(w_sequence)
assert w_sequence == [2.0, 4.0, 2.0, 4.0, 2.0, 4.0]
assert all((w_k * 1.0 - 3.0) ** 2 == 1.0 for w_k in w_sequence)


# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-tf-gradients-4
# In the regression the intercept barely moves because $x$ is large. Feed the inputs as $x' = x/50$
# instead (the model becomes $w'x' + b$ with $w' = 50w$, starting from $w' = 100$, $b = 1$), keeping the
# per-sample loss of {eq}`eq-tf-gradients-sample-loss`. (a) After one pass with learning rate 0.01, how
# far have $w = w'/50$ and $b$ moved? (b) Which learning rates keep every per-sample update stable now,
# and does a rate near the top of that range bring both parameters close to $(3, 2)$ in three passes?
# ```
#
# ```{solution-start} ex-tf-gradients-4
# :class: dropdown
# ```
#
# (a) Now the two gradients have comparable sizes, since $x' \le 2$, so $b$ moves about thirty times
# more than before; but the slope barely moves, because the steps that were far too large for $w$ are now
# far too small for $w'$. (b) By {eq}`eq-tf-gradients-residual` with $x'$ in place of $x$, every update is
# stable while $\eta < 64 / (\max x'^2 + 1)$, about 13 here. A rate of 10 fits both parameters within
# three passes. Rescaling the inputs lets one learning rate suit all parameters
# {cite:p}`lecun2012efficient`; it does not pick that rate for you.


# %%
def scaled_sgd(rate, passes):
    w_scaled, b_scaled = 100.0, 1.0
    for _ in range(passes):
        for x_i, y_i in zip(x_data / 50.0, y_data, strict=True):
            r = y_i - (w_scaled * x_i + b_scaled)
            w_scaled, b_scaled = (
                w_scaled + rate * r * x_i / 32,
                b_scaled + rate * r / 32,
            )
    return w_scaled / 50, b_scaled


# %% [markdown]
# One slow pass, the stability limit, and three fast passes:

# %%
w_slow, b_slow = scaled_sgd(0.01, passes=1)
stable_limit = 64 / (np.max((x_data / 50.0) ** 2) + 1)
w_fast, b_fast = scaled_sgd(10.0, passes=3)
print(
    f"(a) scaled, rate 0.01, 1 pass: w moved {w_slow - 2:.4f}, b moved {b_slow - 1:.4f}"
)
print(
    f"    unscaled (the TF1 run)  : w moved {w_final_tf1 - 2:.4f}, b moved "
    f"{b_final_tf1 - 1:.4f}"
)
print(
    f"(b) stable while rate < {stable_limit:.2f}; rate 10, 3 passes: w = {w_fast:.4f}, "
    f"b = {b_fast:.4f}"
)
assert round((b_slow - 1) / (b_final_tf1 - 1), -1) == 30 and abs(w_slow - 2) < 0.05
assert np.max(np.abs(x_data / 50.0)) <= 2
assert round(stable_limit) == 13 and abs(w_fast - 3) < 0.02 and abs(b_fast - 2) < 0.2

# %% [markdown]
# ```{solution-end}
# ```
