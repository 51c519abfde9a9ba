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
# (ch-softmax)=
# # Softmax regression
#
# :::{admonition} What you will learn
# :class: tip
# - what MNIST looks like as numbers: shapes, classes, pixel statistics;
# - why the textbook loss `-sum(y * log(softmax(z)))` can return `inf` or `NaN`, and what TensorFlow
#   and Keras compute instead;
# - how one training loop is written three ways (a TF1 graph and session, a TF2 `GradientTape` loop
#   with a hand-written update, Keras `fit`) and why all three end with the same weights to float32
#   precision when fed the same batches;
# - what the ten learned weight vectors look like, and which digits the model confuses;
# - how to measure the curvature of the loss with Hessian-vector products, and what it predicts about
#   the largest learning rate that works.
# :::
#
# The first MNIST program of the source documents is the classic one: a single linear layer followed by a
# softmax, trained by plain gradient descent with learning rate 0.1 on batches of 100 images for 1000 steps,
# printing the test accuracy every 100 steps. It is written for TensorFlow 1 and no longer runs as printed.
# This chapter runs it again, faithfully, through `tf.compat.v1`, then writes the same loop the TF2 way and
# the Keras way, and checks that the three agree. Softmax regression is convex, small and fast, which makes
# it the right place to look closely: at the loss, at what the weights learn, and at the curvature that
# decides which learning rates work.

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import numpy as np
import tensorflow as tf

# %% [markdown]
# The rest of the imports: Keras, matplotlib, and the book's MNIST helpers (batching, accuracy, plots).

# %% tags=["nbval-ignore-output"]
import time

import keras
import matplotlib.pyplot as plt

from gdbook.plotting import to_html
from gdbook.mnist_tools import (
    accuracy,
    batch_dataset,
    batch_indices,
    confusion_matrix,
    examples_per_class,
    most_confident_mistakes,
    plot_confusion,
    plot_image_grid,
    plot_mistakes,
)

chapter_start = time.perf_counter()

# %% [markdown]
# ## The data
#
# MNIST holds 70,000 grey-scale images of handwritten digits, 28 by 28 pixels, split into 60,000 for
# training and 10,000 for testing {cite:p}`lecun1998`. The book ships its own copy (nothing is downloaded);
# `load_mnist("flat", one_hot_labels=True)` returns the images as rows of 784 floats in [0, 1] and the
# labels as one-hot rows, the layout the source program uses.

# %%
mnist = gdbook.load_mnist("flat", one_hot_labels=True)
x_train, y_train, x_test, y_test = mnist
for name, array in mnist._asdict().items():
    print(f"{name:8s} {str(array.shape):13s} {array.dtype}")
assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
assert y_train.shape == (60000, 10) and y_test.shape == (10000, 10)

# %% [markdown]
# The ten classes are not equally frequent, but close: the counts below differ by at most a few hundred
# images. A model that always answered the most frequent digit would be right about 11% of the time.

# %%
train_counts = y_train.sum(axis=0).astype(int)
test_counts = y_test.sum(axis=0).astype(int)
print("digit:      ", " ".join(f"{d:5d}" for d in range(10)))
print("train count:", " ".join(f"{c:5d}" for c in train_counts))
print("test count: ", " ".join(f"{c:5d}" for c in test_counts))
majority_share = test_counts.max() / test_counts.sum()
print(
    f"always answering the most frequent test digit ({test_counts.argmax()}): "
    f"{majority_share:.4f}"
)
assert train_counts.sum() == 60000 and test_counts.sum() == 10000
assert 0.10 < majority_share < 0.12

# %% [markdown]
# Most pixels are background. The statistics below say how sparse the images are: most pixels are exactly
# zero, and the ink that is there is mostly saturated near 1. This matters for the gradient: a weight
# attached to a pixel that is zero in an image receives no gradient from that image.

# %%
zero_share = np.mean(x_train == 0)
ink_share = np.mean(x_train > 0.5)
mean_pixel = x_train.mean()
ink_per_image = (x_train > 0.5).sum(axis=1)
print(f"mean pixel value      {mean_pixel:.4f}")
print(f"pixels exactly 0      {zero_share:.4f}")
print(f"pixels above 0.5      {ink_share:.4f}")
print(f"inked pixels / image  {ink_per_image.mean():.1f}", end=" ")
print(f"(min {ink_per_image.min()}, max {ink_per_image.max()})")
assert 0.75 < zero_share < 0.85 and 0.10 < ink_share < 0.20

# %% [markdown]
# {numref}`fig-softmax-digits` shows the first eight training images of each class: the same digit is
# written in many ways, thick and thin, slanted and upright.

# %% mystnb={"figure": {"caption": "Eight training images of each digit.", "name": "fig-softmax-digits"}}
rows = examples_per_class(y_train, per_class=8)
fig = plot_image_grid(
    x_train[rows.T.reshape(-1)].reshape(-1, 28, 28), ncols=10, size=0.62
)
plt.show()

# %% [markdown]
# ## The model and its loss
#
# Softmax regression maps an image $x \in \mathbb{R}^{784}$ (a row) to ten class probabilities through one
# affine map and the softmax function:
#
# $$
# z = xW + b, \qquad \hat y_k = \operatorname{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j=1}^{10} e^{z_j}},
# $$ (eq-softmax-model)
#
# with $W \in \mathbb{R}^{784 \times 10}$ and $b \in \mathbb{R}^{10}$. The numbers $z$ are the *logits*.
# The loss is the cross-entropy between the one-hot label $y$ and $\hat y$, averaged over a batch of $n$
# images:
#
# $$
# L(W, b) = -\frac{1}{n}\sum_{i=1}^{n} \sum_{k=1}^{10} y_{ik} \log \hat y_{ik}
#         = \frac{1}{n}\sum_{i=1}^{n} \Big( \log \sum_{j} e^{z_{ij}} - z_{i c_i} \Big),
# $$ (eq-softmax-xent)
#
# where $c_i$ is the true class of image $i$. Its gradient has a famously simple form: with $X$ the
# $n \times 784$ batch, $Z = XW + b$ and $P = \operatorname{softmax}(Z)$ row by row,
#
# $$
# \frac{\partial L}{\partial Z} = \frac{1}{n}(P - Y), \qquad
# \nabla_W L = \frac{1}{n} X^\top (P - Y), \qquad \nabla_b L = \frac{1}{n} \mathbf{1}^\top (P - Y).
# $$ (eq-softmax-grad)
#
# The source starts from $W = 0$ and $b = 0$. For a convex loss that is a fine start (there is no symmetry
# to break, because each column of $W$ receives a different gradient through $Y$). Every logit is zero, so
# every image gets probability $1/10$ for every class and the loss is $\log 10$ whatever the labels.

# %%
W_zero, b_zero = tf.zeros([784, 10]), tf.zeros([10])
logits_at_start = x_train[:100] @ W_zero + b_zero
loss_at_start = tf.reduce_mean(
    tf.nn.softmax_cross_entropy_with_logits(y_train[:100], logits_at_start)
)
print(f"loss at W = 0: {float(loss_at_start):.6f}   log(10) = {np.log(10):.6f}")
assert abs(float(loss_at_start) - np.log(10)) < 1e-6


# %% [markdown]
# ### A numerical trap in the textbook loss
#
# The source computes the loss exactly as the first form of {eq}`eq-softmax-xent` reads:
# `-reduce_sum(y * log(softmax(z)))`. In exact arithmetic that is right. In float32 it breaks as soon as a
# logit is about 104 below the largest one: $e^{-104}$ is smaller than the smallest positive float32
# (about $1.4 \times 10^{-45}$), the softmax rounds it to exactly 0, and $\log 0 = -\infty$. Two small
# examples with three classes and logits $(0, -50, -120)$ show the two ways it fails.

# %%
def textbook_loss(labels, logits):
    """The source's loss: log of the softmax, multiplied by the one-hot labels."""
    return -tf.reduce_sum(labels * tf.math.log(tf.nn.softmax(logits)), axis=1)


trap_logits = tf.constant([[0.0, -50.0, -120.0], [0.0, -50.0, -120.0]])
trap_labels = tf.constant(
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
)  # wrong and confident; right and confident
print("softmax:      ", tf.nn.softmax(trap_logits).numpy()[0])
print("textbook loss:", textbook_loss(trap_labels, trap_logits).numpy())

# %% [markdown]
# The first image is labelled 2 while the model is certain of class 0: the true loss is $120$, the
# textbook formula says `inf`. The second is labelled 0 and the model is right: the true loss is
# $\log(1 + e^{-50} + e^{-120}) \approx 2 \times 10^{-22}$, the textbook formula says `NaN`, because
# the label 0 of class 2 multiplies $\log 0$ and $0 \cdot (-\infty)$ is undefined. Its gradient is
# `NaN` too, and one `NaN` in one batch spreads through the update to every weight.

# %%
with tf.GradientTape() as tape:
    tape.watch(trap_logits)
    trap_loss = textbook_loss(trap_labels, trap_logits)
trap_gradient = tape.gradient(trap_loss, trap_logits)
print("gradient of the textbook loss:\n", trap_gradient.numpy())
assert np.isinf(trap_loss[0]) and np.isnan(trap_loss[1])
assert np.isnan(trap_gradient.numpy()).any()

# %% [markdown]
# The fix is to never form $\log \hat y$ at all and to compute the second form of
# {eq}`eq-softmax-xent` from the logits, with the largest logit subtracted before exponentiating (the
# log-sum-exp trick). That is what `tf.nn.softmax_cross_entropy_with_logits` does, and what Keras does with
# `from_logits=True`; the gradient is then $\hat y - y$ from {eq}`eq-softmax-grad`, finite everywhere.
# The confidently right image now costs 0 (its true loss, $2 \times 10^{-22}$, is below float32's
# resolution next to 1) and the wrong one exactly 120.

# %%
with tf.GradientTape() as tape:
    tape.watch(trap_logits)
    stable_loss = tf.nn.softmax_cross_entropy_with_logits(
        labels=trap_labels, logits=trap_logits
    )
stable_gradient = tape.gradient(stable_loss, trap_logits)
keras_from_logits = keras.losses.CategoricalCrossentropy(
    from_logits=True, reduction=None
)
keras_loss = keras_from_logits(trap_labels, trap_logits).numpy()
print("stable loss:", stable_loss.numpy(), "  Keras from_logits=True:", keras_loss)
print("stable gradient:\n", stable_gradient.numpy())
assert abs(stable_loss[0] - 120.0) < 1e-4 and stable_loss[1] < 1e-20
np.testing.assert_allclose(keras_loss, stable_loss.numpy(), atol=1e-4)
np.testing.assert_allclose(
    stable_gradient.numpy(), tf.nn.softmax(trap_logits) - trap_labels, atol=1e-7
)

# %% [markdown]
# Keras' default, `from_logits=False`, takes probabilities, and it hides the problem differently: it clips
# them into $[10^{-7}, 1 - 10^{-7}]$ before the logarithm, so the confidently wrong image costs
# $-\log 10^{-7} \approx 16.1$ instead of 120, and, because the clipped value does not depend on the
# weights, its gradient is zero: the worst mistake in the batch teaches the model nothing.

# %%
probabilities = tf.nn.softmax(trap_logits)
with tf.GradientTape() as tape:
    tape.watch(probabilities)
    clipped_loss = keras.losses.CategoricalCrossentropy(reduction=None)(
        trap_labels, probabilities
    )
clipped_gradient = tape.gradient(clipped_loss, probabilities)
print("Keras from_logits=False:", clipped_loss.numpy(), "  -log(1e-7) =", -np.log(1e-7))
print("its gradient for the wrong image:", clipped_gradient.numpy()[0])
assert abs(clipped_loss[0] + np.log(1e-7)) < 1e-3
assert np.all(clipped_gradient.numpy()[0] == 0)

# %% [markdown]
# Why then did the source program work? Because softmax regression on MNIST never produces logit gaps
# anywhere near 104 in 1000 steps; we check this after training below. The trap is real for deeper
# networks and larger learning rates, and the fix costs nothing, so the TF2 and Keras versions below use
# the stable loss.
#
# ## Three implementations, one stream of batches
#
# To compare implementations step by step, they must see the same batches in the same order. The source
# called `mnist.train.next_batch(100)` from the old tutorial reader, which kept 55,000 images for training
# and reshuffled after every pass. Here `batch_indices` shuffles all 60,000 training images once per epoch
# with a fixed seed and returns the rows of images each step uses; the TF1 session feeds those rows as
# NumPy arrays, and `batch_dataset` turns the same rows into a `tf.data` pipeline for the TF2 loop and for
# Keras. 1000 steps of 100 images are $1\tfrac{2}{3}$ passes over the data.

# %%
BATCH_SIZE, STEPS, EVAL_EVERY = 100, 1000, 100
batches = batch_indices(len(x_train), BATCH_SIZE, STEPS, seed=0)
train_batches = batch_dataset(batches, x_train, y_train)
eval_steps = list(range(0, STEPS + 1, EVAL_EVERY))
print("batches:", batches.shape, " first batch starts with images", batches[0, :5])
assert batches.shape == (STEPS, BATCH_SIZE)


# %% [markdown]
# ### (a) TF1: a graph, placeholders and a session
#
# This is the source program rewritten for `tf.compat.v1`, line for line in spirit: placeholders for a
# batch, variables initialised to zero, the textbook loss, `GradientDescentOptimizer(0.1).minimize`, and a
# session that runs the training op with a `feed_dict`. The only changes: the data come from our batches,
# the per-step loss is fetched for the plots, and the test accuracy is recorded before training and after
# every 100 steps (the source printed it after steps 1, 101, ..., 901).

# %% tags=["nbval-ignore-output"]
def train_tf1(learning_rate):
    """TF1: the source's softmax regression in a graph, trained in a session."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 784])
        y = tf.compat.v1.placeholder(tf.float32, [None, 10])
        W = tf.Variable(tf.zeros([784, 10]))
        b = tf.Variable(tf.zeros([10]))
        y_pred = tf.nn.softmax(tf.matmul(x, W) + b)
        cross_entropy = tf.reduce_mean(-tf.reduce_sum(y * tf.math.log(y_pred), axis=1))
        correct = tf.equal(tf.argmax(y_pred, 1), tf.argmax(y, 1))
        accuracy_op = tf.reduce_mean(tf.cast(correct, tf.float32))
        train_op = tf.compat.v1.train.GradientDescentOptimizer(learning_rate).minimize(
            cross_entropy
        )
        init = tf.compat.v1.global_variables_initializer()
    losses, test_accuracy = [], []
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        test_accuracy.append(sess.run(accuracy_op, {x: x_test, y: y_test}))
        for step, rows in enumerate(batches, start=1):
            batch_x, batch_y = x_train[rows], y_train[rows]
            _, batch_loss = sess.run(
                [train_op, cross_entropy], {x: batch_x, y: batch_y}
            )
            losses.append(batch_loss)
            if step % EVAL_EVERY == 0:
                test_accuracy.append(sess.run(accuracy_op, {x: x_test, y: y_test}))
                print(f"TF1 step {step:4d}  test accuracy {test_accuracy[-1]:.4f}")
        weights = sess.run([W, b])
    return {
        "loss": np.array(losses),
        "test_accuracy": np.array(test_accuracy),
        "weights": weights,
    }


started = time.perf_counter()
tf1_run = train_tf1(learning_rate=0.1)
print(f"{time.perf_counter() - started:.1f} s")

# %% [markdown]
# Before the first step all logits are zero, `argmax` breaks the tie in favour of class 0, and the accuracy
# is the share of zeros in the test set. After 1000 steps the model is right on about 92% of the test
# images, as the source reports.

# %%
share_of_zeros = test_counts[0] / 10000
print(
    f"accuracy before training {tf1_run['test_accuracy'][0]:.4f} = share of zeros "
    f"{share_of_zeros:.4f}"
)
print(f"accuracy after {STEPS} steps {tf1_run['test_accuracy'][-1]:.4f}")
assert tf1_run["test_accuracy"][0] == np.float32(share_of_zeros)
assert 0.905 <= tf1_run["test_accuracy"][-1] < 0.93


# %% [markdown]
# ### (b) TF2: `GradientTape` and a hand-written update
#
# In TF2 the graph and the session disappear: the model is a Python function of two variables, the tape
# records the forward pass, and the update of gradient descent is two lines written out by hand,
# $W \leftarrow W - \alpha \nabla_W L$ and the same for $b$. `tf.function` traces the step into a graph
# once, so the loop runs at graph speed.

# %% tags=["nbval-ignore-output"]
def train_tape(learning_rate, snapshot_steps=()):
    """TF2: the same model and batches, the stable loss, and gradient descent written
    by hand.
    """
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))

    @tf.function
    def train_step(batch_x, batch_y):
        with tf.GradientTape() as tape:
            logits = batch_x @ W + b
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=batch_y, logits=logits)
            )
        grad_W, grad_b = tape.gradient(loss, [W, b])
        W.assign_sub(learning_rate * grad_W)
        b.assign_sub(learning_rate * grad_b)
        return loss

    def test_accuracy_now():
        return accuracy((x_test @ W + b).numpy(), y_test)

    losses, test_accuracy, snapshots = [], [test_accuracy_now()], [W.numpy()]
    for step, (batch_x, batch_y) in enumerate(train_batches, start=1):
        losses.append(float(train_step(batch_x, batch_y)))
        if step % EVAL_EVERY == 0:
            test_accuracy.append(test_accuracy_now())
        if step in snapshot_steps:
            snapshots.append(W.numpy())
    return {
        "loss": np.array(losses),
        "test_accuracy": np.array(test_accuracy),
        "weights": [W.numpy(), b.numpy()],
        "snapshots": np.array(snapshots),
    }


started = time.perf_counter()
SNAPSHOT_STEPS = (5, 10, 20, 50, 100, 200, 400, 600, 800, 1000)
tape_run = train_tape(learning_rate=0.1, snapshot_steps=SNAPSHOT_STEPS)
print(
    f"{time.perf_counter() - started:.1f} s, final test accuracy "
    f"{tape_run['test_accuracy'][-1]:.4f}"
)


# %% [markdown]
# ### (c) Keras: `Sequential`, `compile`, `fit`
#
# Keras needs the model as a layer, `Dense(10)` with zero initial weights and no activation (it outputs
# logits), a loss with `from_logits=True` and the optimizer `SGD`. Two of Keras' defaults have to be
# checked against the loops above. `SGD`'s default learning rate is 0.01, so 0.1 is passed explicitly; its
# `momentum` defaults to 0, which is plain gradient descent. The loss's default reduction,
# `"sum_over_batch_size"`, is the mean over the batch, as in {eq}`eq-softmax-xent`. `fit` receives our
# `tf.data` batches, so it neither re-batches nor shuffles them. A callback records the test accuracy every
# 100 steps; `steps_per_execution=100` lets Keras run 100 steps inside one compiled loop between two calls
# of the callback, which changes nothing in the arithmetic and removes most of the per-step Python
# overhead.

# %% tags=["nbval-ignore-output"]
class TestAccuracyEvery(keras.callbacks.Callback):
    """Record the test accuracy before training and after every `every` batches."""

    def __init__(self, every):
        super().__init__()
        self.every, self.history = every, []

    def on_train_begin(self, logs=None):
        self.history.append(accuracy(self.model(x_test).numpy(), y_test))

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self.history.append(accuracy(self.model(x_test).numpy(), y_test))


keras_model = keras.Sequential(
    [keras.Input((784,)), keras.layers.Dense(10, kernel_initializer="zeros")]
)
keras_model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.1),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    steps_per_execution=EVAL_EVERY,
)
keras_accuracy = TestAccuracyEvery(EVAL_EVERY)
started = time.perf_counter()
keras_model.fit(
    train_batches, epochs=1, verbose=0, callbacks=[keras_accuracy], shuffle=False
)
print(
    f"{time.perf_counter() - started:.1f} s, final test accuracy "
    f"{keras_accuracy.history[-1]:.4f}"
)
sgd_config = keras_model.optimizer.get_config()
print(
    "SGD config:", {k: sgd_config[k] for k in ("learning_rate", "momentum", "nesterov")}
)

# %% [markdown]
# ### The three agree
#
# The weights of the three runs are compared after the 1000th step. They cannot be bit-identical: the TF1
# loss goes through $\log \hat y$ and its gradient through $1/\hat y$, while the other two differentiate
# log-sum-exp, and Keras adds the bias inside `Dense` in its own order. Each such difference is a rounding
# error of about one float32 unit ($6 \times 10^{-8}$ relative) per step. The cell prints the largest
# absolute differences and asserts that they stay below $10^{-5}$, while the weights themselves are of
# order 0.1 to 1.

# %%
keras_weights = [v.numpy() for v in keras_model.layers[0].weights]
runs = {"TF1": tf1_run["weights"], "tape": tape_run["weights"], "Keras": keras_weights}
largest_weight = np.abs(tape_run["weights"][0]).max()
print(f"largest |W| {largest_weight:.3f}")
for first, second in [("TF1", "tape"), ("tape", "Keras"), ("TF1", "Keras")]:
    dW = np.abs(runs[first][0] - runs[second][0]).max()
    db = np.abs(runs[first][1] - runs[second][1]).max()
    print(f"{first:5s} vs {second:5s}: max |dW| {dW:.2e}   max |db| {db:.2e}")
    assert dW < 1e-5 and db < 1e-5
assert largest_weight > 0.1

# %% [markdown]
# The test accuracies every 100 steps agree as well, to the last of the 10,000 test images:

# %%
accuracy_table = np.stack(
    [tf1_run["test_accuracy"], tape_run["test_accuracy"], keras_accuracy.history]
)
print("step   TF1     tape    Keras")
for step, row in zip(eval_steps, accuracy_table.T, strict=True):
    print(f"{step:4d}  " + "  ".join(f"{a:.4f}" for a in row))
assert np.abs(accuracy_table - accuracy_table[1]).max() <= 2e-4

# %% [markdown]
# Finally the promised check of the trap: the largest gap between the top logit and any other logit over
# the whole test set, after training, is far below the roughly 104 at which float32's softmax underflows,
# so the source's loss was safe here, and its per-step losses are all finite.

# %%
trained_logits = x_test @ tape_run["weights"][0] + tape_run["weights"][1]
largest_gap = (trained_logits.max(axis=1) - trained_logits.min(axis=1)).max()
print(f"largest logit gap on the test set: {largest_gap:.1f}")
assert largest_gap < 50 and np.isfinite(tf1_run["loss"]).all()

# %% [markdown]
# ## Learning rate 0.5
#
# TensorFlow's old beginners' tutorial trained the same model with learning rate 0.5. One more run of the
# TF2 loop, on the same batches:

# %%
fast_run = train_tape(learning_rate=0.5)
for step, slow, fast in zip(
    eval_steps, tape_run["test_accuracy"], fast_run["test_accuracy"], strict=True
):
    if step % 200 == 0:
        print(f"step {step:4d}   lr 0.1: {slow:.4f}   lr 0.5: {fast:.4f}")
assert fast_run["test_accuracy"][-1] >= 0.905


# %% [markdown]
# {numref}`fig-softmax-curves` puts the two runs side by side: on the left the loss of every batch (thin)
# and its running mean over 50 steps (thick), on the right the test accuracy every 100 steps (from step
# 100 on; before training it is 0.098 for both). With the
# larger rate the loss falls faster at first, but the batch losses are noisier, and after 1000 steps the
# two test accuracies differ by less than a percentage point.

# %% mystnb={"figure": {"caption": "Batch loss and test accuracy.", "name": "fig-softmax-curves"}}
def running_mean(values, window=50):
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
for run, label, color in [(tape_run, "lr 0.1", "C0"), (fast_run, "lr 0.5", "C1")]:
    steps = np.arange(1, STEPS + 1)
    ax_loss.plot(steps, run["loss"], color=color, alpha=0.25, lw=0.7)
    ax_loss.plot(steps[49:], running_mean(run["loss"]), color=color, label=label)
    ax_acc.plot(
        eval_steps[1:], run["test_accuracy"][1:], "o-", color=color, ms=3, label=label
    )
ax_loss.set(xlabel="step", ylabel="batch loss", ylim=(0, 1.2))
ax_acc.set(xlabel="step", ylabel="test accuracy", xlim=(0, STEPS + 30))
ax_loss.legend()
ax_acc.legend(loc="lower right")
plt.show()
gap = abs(tape_run["test_accuracy"][-1] - fast_run["test_accuracy"][-1])
print(f"final accuracy gap between the two rates: {gap:.4f}")
assert gap < 0.01

# %% [markdown]
# ## What the model learned
#
# Each column of $W$ scores one digit: the logit of class $k$ is the sum of the pixels weighted by column
# $k$. Drawn as 28 by 28 images ({numref}`fig-softmax-templates`, the run with learning rate 0.1), the
# columns are templates: red where ink raises the score of the digit, blue where ink lowers it. The
# zero's template is a ring with a blue hole; the one's a vertical stroke with blue on both sides. The
# border pixels, which are zero in every image, keep their initial weight of exactly zero, as the
# gradient {eq}`eq-softmax-grad` predicts.

# %% mystnb={"figure": {"caption": "The ten columns of W as images.", "name": "fig-softmax-templates"}}
W_trained, b_trained = tape_run["weights"]
templates = W_trained.T.reshape(10, 28, 28)
fig = plot_image_grid(
    templates,
    titles=[str(d) for d in range(10)],
    cmap="RdBu_r",
    symmetric=True,
    size=1.0,
)
plt.show()
never_inked = (x_train == 0).all(axis=0)
print(
    f"{never_inked.sum()} pixels are 0 in every training image; their weights: "
    f"max |W| = {np.abs(W_trained[never_inked]).max()}"
)
assert never_inked.sum() > 50 and np.all(W_trained[never_inked] == 0)

# %% [markdown]
# The templates are learned step by step from zero. The animation replays the 1000 steps of training
# with frames after steps 0, 5, 10, 20, 50, 100, 200, then every 200 steps (the colour scale is fixed to the
# final weights): the rough shapes appear within the first hundred steps, and the rest of training sharpens
# them.

# %%
from matplotlib import animation

snapshots = tape_run["snapshots"].transpose(0, 2, 1).reshape(-1, 10, 28, 28)
limit = np.abs(snapshots[-1]).max()
fig, axes = plt.subplots(1, 10, figsize=(9, 1.35))
images = []
for digit, ax in enumerate(axes):
    images.append(
        ax.imshow(snapshots[0, digit], cmap="RdBu_r", vmin=-limit, vmax=limit)
    )
    ax.set_title(str(digit), fontsize="small")
    ax.set_axis_off()
frame_steps = (0, *SNAPSHOT_STEPS)
step_text = fig.suptitle("after step 0", fontsize="small")


def draw(frame):
    for digit, image in enumerate(images):
        image.set_data(snapshots[frame, digit])
    step_text.set_text(f"after step {frame_steps[frame]}")
    return images


to_html(animation.FuncAnimation(fig, draw, frames=len(snapshots), interval=150))

# %% [markdown]
# The confusion matrix ({numref}`fig-softmax-confusion`) counts, for each of the 10,000 test images, the
# true digit (row) against the model's answer (column). The bold diagonal holds the correct answers; the
# colours show only the mistakes, which the diagonal would otherwise drown out.

# %% mystnb={"figure": {"caption": "Confusion matrix, test set.", "name": "fig-softmax-confusion"}}
test_logits = x_test @ W_trained + b_trained
test_probabilities = tf.nn.softmax(test_logits).numpy()
counts = confusion_matrix(y_test, test_logits.argmax(axis=1))
plot_confusion(counts)
plt.show()
per_class = counts.diagonal() / counts.sum(axis=1)
off = counts - np.diag(counts.diagonal())
worst_pair = np.unravel_index(off.argmax(), off.shape)
print("accuracy per digit:", " ".join(f"{d}:{a:.3f}" for d, a in enumerate(per_class)))
print(
    f"hardest digit {per_class.argmin()}, easiest {per_class.argmax()}; "
    f"most frequent mistake {worst_pair[0]} read as {worst_pair[1]} ({off.max()} times)"
)
assert counts.trace() / counts.sum() == accuracy(test_logits, y_test)

# %% [markdown]
# Among the mistakes, the most instructive are those made with the highest confidence
# ({numref}`fig-softmax-mistakes`, each titled "true digit → predicted digit (probability of the
# prediction)"). Some are genuinely ambiguous or mislabelled; others show the limit of a
# linear model, which can only ask "is there ink where a typical 7 has ink?" and is fooled by a digit drawn
# thicker, thinner or shifted.

# %% mystnb={"figure": {"caption": "The most confident mistakes.", "name": "fig-softmax-mistakes"}}
worst = most_confident_mistakes(test_probabilities, y_test, k=16)
fig = plot_mistakes(x_test, y_test, test_probabilities, worst, ncols=8)
plt.show()
print(
    f"confidence of these mistakes: {test_probabilities[worst].max(axis=1).min():.3f} "
    "and above"
)
assert len(worst) == 16

# %% [markdown]
# ## Curvature and the largest learning rate
#
# How large can the learning rate be? For a quadratic loss with Hessian $H$, gradient descent multiplies
# the error along each eigenvector of $H$ by $1 - \alpha\lambda$ per step, so it converges exactly when
#
# $$
# \alpha < \frac{2}{\lambda_{\max}(H)},
# $$ (eq-softmax-stable)
#
# and above that the component along the top eigenvector grows in magnitude every step
# {cite:p}`lecun2012efficient`. The cross-entropy is not quadratic, but near a point it looks like one, so
# {eq}`eq-softmax-stable` at the start of training predicts where gradient descent stops decreasing the loss
# reliably. We need $\lambda_{\max}$ at $W = 0$.
#
# The Hessian here is $7850 \times 7850$; we never form it. A Hessian-vector product $Hv$ costs about as
# much as two gradients {cite:p}`pearlmutter1994`: differentiate the gradient in the direction $v$, with a
# forward-mode accumulator around a gradient tape. Power iteration then finds the top eigenvalue:
#
# $$
# v_{k+1} = \frac{H v_k}{\lVert H v_k \rVert}, \qquad \lambda_{\max} \approx v_k^\top H v_k .
# $$ (eq-softmax-power)
#
# The loss for this experiment is the full-batch loss on the first 10,000 training images (a fixed
# function; mini-batch losses fluctuate around it).

# %%
curvature_x = tf.constant(x_train[:10000])
curvature_y = tf.constant(y_train[:10000])


def full_batch_loss(W, b):
    logits = curvature_x @ W + b
    return tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=curvature_y, logits=logits)
    )


@tf.function
def hessian_vector_product(W, b, v_W, v_b):
    """(H v) at (W, b): the directional derivative of the gradient along v (forward
    over backward).
    """
    with tf.autodiff.ForwardAccumulator(
        primals=(W, b), tangents=(v_W, v_b)
    ) as accumulator:
        with tf.GradientTape() as tape:
            tape.watch([W, b])
            loss = full_batch_loss(W, b)
        grad_W, grad_b = tape.gradient(loss, [W, b])
    return accumulator.jvp(grad_W), accumulator.jvp(grad_b)


def top_eigenvalue(W, b, iterations=20, seed=0):
    rng = np.random.default_rng(seed)
    v_W = tf.constant(rng.normal(size=(784, 10)), tf.float32)
    v_b = tf.constant(rng.normal(size=10), tf.float32)
    estimates = []
    for _ in range(iterations):
        norm = tf.sqrt(tf.reduce_sum(v_W**2) + tf.reduce_sum(v_b**2))
        v_W, v_b = v_W / norm, v_b / norm
        Hv_W, Hv_b = hessian_vector_product(W, b, v_W, v_b)
        estimates.append(float(tf.reduce_sum(v_W * Hv_W) + tf.reduce_sum(v_b * Hv_b)))
        v_W, v_b = Hv_W, Hv_b
    return np.array(estimates)


estimates = top_eigenvalue(tf.zeros([784, 10]), tf.zeros([10]))
lambda_max = estimates[-1]
print("power iteration:", np.round(estimates[:6], 5), "...", f"{lambda_max:.6f}")
print(f"2 / lambda_max = {2 / lambda_max:.4f}")
assert abs(estimates[-1] - estimates[-2]) < 1e-5 * lambda_max

# %% [markdown]
# At $W = 0$ the Hessian is also known in closed form, which checks the power iteration. Every image has
# $\hat y = \tfrac{1}{10}\mathbf 1$, so the Hessian of the cross-entropy with respect to the logits is the
# same matrix $A = \tfrac{1}{10}(I - \tfrac{1}{10}\mathbf 1 \mathbf 1^\top)$ for every image, and with
# $\tilde x = (x, 1)$ the image with a 1 appended for the bias,
#
# $$
# H = A \otimes S, \quad S = \frac{1}{n}\sum_{i=1}^{n} \tilde x_i^\top \tilde x_i ,
# \qquad \lambda_{\max}(H) = \tfrac{1}{10}\, \lambda_{\max}(S),
# $$ (eq-softmax-hessian0)
#
# because the eigenvalues of a Kronecker product are the products of the eigenvalues, and $A$'s are
# $\tfrac{1}{10}$ (nine times) and 0. The nine-fold top eigenvalue is also why the power iteration above
# converges at once: any start vector has a large component in a nine-dimensional top eigenspace.

# %%
x_with_one = np.hstack([x_train[:10000], np.ones((10000, 1), np.float32)]).astype(
    np.float64
)
second_moment = x_with_one.T @ x_with_one / len(x_with_one)
lambda_closed_form = 0.1 * np.linalg.eigvalsh(second_moment)[-1]
print(f"closed form {lambda_closed_form:.6f}   power iteration {lambda_max:.6f}")
assert abs(lambda_max - lambda_closed_form) < 1e-5 * lambda_closed_form
assert 0.45 < 2 / lambda_max < 0.55


# %% [markdown]
# So $2/\lambda_{\max}$ is just above 0.5: the source's rate 0.1 is five times below the limit, and the old
# tutorial's 0.5 sits right at the edge. To test the prediction, we run 30 steps of full-batch gradient
# descent on the same 10,000 images with learning rates from half to three times $2/\lambda_{\max}$ and
# record the loss.

# %%
@tf.function
def full_batch_step(W, b, learning_rate):
    with tf.GradientTape() as tape:
        tape.watch([W, b])
        loss = full_batch_loss(W, b)
    grad_W, grad_b = tape.gradient(loss, [W, b])
    return loss, W - learning_rate * grad_W, b - learning_rate * grad_b


def full_batch_descent(learning_rate, steps=30):
    W, b, losses = tf.zeros([784, 10]), tf.zeros([10]), []
    for _ in range(steps):
        loss, W, b = full_batch_step(W, b, tf.constant(learning_rate, tf.float32))
        losses.append(float(loss))
    return np.array(losses)


factors = [0.5, 0.9, 1.1, 1.5, 2.0, 3.0]
descent_losses = {
    factor: full_batch_descent(factor * 2 / lambda_max) for factor in factors
}
for factor, losses in descent_losses.items():
    rises = int(np.sum(np.diff(losses) > 0))
    print(
        f"lr = {factor:3.1f} x 2/lambda = {factor * 2 / lambda_max:.3f}: loss "
        f"{losses[0]:.3f} -> "
        f"{losses[-1]:.3f}, steps where the loss rose: {rises:2d}, largest loss after "
        "the start "
        f"{losses[1:].max():.3f}"
    )

# %% [markdown]
# {numref}`fig-softmax-stability` shows the result, with the loss at $W = 0$, $\log 10$, as a dashed
# line. Below $2/\lambda_{\max}$ the loss falls at every step,
# as the quadratic model promises. At twice and three times the limit it rises on several steps and jumps
# well above the starting loss. Between 1 and 1.5 times the limit, the prediction is too pessimistic: the
# loss still falls (almost) every step. The reason is that the curvature at $W = 0$ is the largest the model
# ever sees on this path: as soon as the predictions leave the uniform $\tfrac{1}{10}$, the factor
# $\operatorname{diag}(\hat y) - \hat y \hat y^\top$ in the Hessian shrinks, and with it $\lambda_{\max}$.
# The next cell measures it at the weights trained above.

# %% mystnb={"figure": {"caption": "Full-batch GD at six learning rates.", "name": "fig-softmax-stability"}}
fig, ax = plt.subplots(figsize=(7, 3.8))
for factor, losses in descent_losses.items():
    ax.plot(
        np.arange(len(losses)),
        losses,
        "o-",
        ms=2.5,
        label=rf"{factor} $\times\, 2/\lambda_{{\max}}$",
    )
ax.axhline(np.log(10), color="0.5", ls="--", lw=1)
ax.set(xlabel="step", ylabel="full-batch loss", yscale="log")
ax.legend(ncol=2, loc="upper right")
plt.show()
for factor in (0.5, 0.9):
    assert np.all(np.diff(descent_losses[factor]) < 0)
for factor in (2.0, 3.0):
    assert np.sum(np.diff(descent_losses[factor]) > 0) >= 3
assert descent_losses[3.0][1:].max() > np.log(10)

# %%
lambda_trained = top_eigenvalue(tf.constant(W_trained), tf.constant(b_trained))[-1]
print(
    f"lambda_max at W = 0: {lambda_max:.3f}   after 1000 steps at lr 0.1: "
    f"{lambda_trained:.3f}"
)
print(f"2 / lambda_max after training: {2 / lambda_trained:.3f}")
assert lambda_trained < 0.5 * lambda_max

# %% [markdown]
# The curvature after training is less than half of the curvature at the start, so the stability limit has
# more than doubled. This is the general picture for cross-entropy: the loss is sharpest where the model is
# most uncertain. Deep networks add a twist, studied by {cite:t}`cohen2021`: there, training tends to
# *raise* the curvature until $\lambda_{\max}$ hovers around $2/\alpha$, the "edge of stability".

# %% tags=["nbval-ignore-output"]
chapter_seconds = time.perf_counter() - chapter_start
print(f"this chapter's computations took {chapter_seconds:.0f} s")
assert chapter_seconds < 600

# %% [markdown]
# ## Summary
#
# - MNIST as the source uses it: 60,000 training and 10,000 test images of 784 pixels in [0, 1], most of
#   them exactly zero, ten nearly balanced classes.
# - The textbook loss `-sum(y * log(softmax(z)))` returns `inf` for a confident mistake and `NaN` for a
#   confident correct answer once a logit gap exceeds about 104 in float32. Compute the cross-entropy from
#   the logits (`softmax_cross_entropy_with_logits`, `from_logits=True`); Keras' probability path clips and
#   silences the gradient instead.
# - The source's program (TF1 graph and session), a TF2 tape loop with a hand-written update, and Keras
#   `fit` with `SGD`, fed the same batches, end with weights that agree to better than $10^{-5}$ and with the
#   same test accuracy, about 92% after 1000 steps at learning rate 0.1; 0.5 gives about the same.
# - The learned weights are digit templates; pixels that are never inked keep their zero weight.
# - Power iteration with Hessian-vector products gives $\lambda_{\max}$ of the loss, confirmed by a closed
#   form at $W = 0$; $2/\lambda_{\max} \approx 0.5$ predicts where full-batch gradient descent starts to
#   fail, conservatively, because the curvature falls as training proceeds.
#
# ## Exercises
#
# ```{exercise}
# :label: ex-softmax-zero-init
# The source initialises $W$ and $b$ to zero. Why is that harmless for softmax regression, while the
# next chapter's convolutional network must start from random weights?
# ```
#
# ````{solution} ex-softmax-zero-init
# :class: dropdown
# The loss of softmax regression is convex, so any starting point leads to the same minimum; and the
# gradient {eq}`eq-softmax-grad` of column $k$ of $W$ is $\frac1n X^\top(P_{:,k} - Y_{:,k})$, which differs
# from column to column because the labels differ. The ten columns therefore move apart from the first step.
# In a network with a hidden layer initialised to zero, all hidden units of a layer compute the same value
# and receive the same gradient (the outgoing weights are equal too), so they stay identical forever: the
# symmetry is never broken and the layer behaves like a single unit. Random initial weights break it.
# ````
#
# ```{exercise}
# :label: ex-softmax-grad-check
# Check {eq}`eq-softmax-grad` numerically: for one batch of 100 training images and random $W$, compare
# `tape.gradient` of the stable loss with $\frac1n X^\top(P - Y)$. How large is the difference?
# ```
#
# ````{solution} ex-softmax-grad-check
# :class: dropdown
# ```python
# rng = np.random.default_rng(1)
# W = tf.constant(rng.normal(scale=0.01, size=(784, 10)), tf.float32)
# X, Y = x_train[:100], y_train[:100]
# with tf.GradientTape() as tape:
#     tape.watch(W)
#     loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(Y, X @ W))
# P = tf.nn.softmax(X @ W)
# by_formula = X.T @ (P - Y) / 100
# print(np.abs(tape.gradient(loss, W) - by_formula).max())   # about 1e-9: rounding only
# ```
# ````
#
# ```{exercise}
# :label: ex-softmax-keras-probabilities
# Train the Keras model again, but with a `softmax` activation in the `Dense` layer and
# `CategoricalCrossentropy()` (probabilities, the default). Do the weights still agree with the other two
# implementations? Where does the difference come from?
# ```
#
# ````{solution} ex-softmax-keras-probabilities
# :class: dropdown
# They agree closely but less tightly. On the probability path Keras normalises the probabilities again,
# clips them into $[10^{-7}, 1 - 10^{-7}]$ and differentiates through the logarithm and the softmax
# separately, as the TF1 program does; no probability in 1000 steps of this model gets near the clipping
# bounds, so the only differences are rounding. (In Keras 3 a `softmax` *layer's* output carries its logits
# along, and the loss then uses them, so the result may even be identical to `from_logits=True`; print the
# largest difference to see which path your version takes.) The point of the chapter stands: pass logits
# and say `from_logits=True`, and the trap never opens.
# ````
#
# ```{exercise}
# :label: ex-softmax-minibatch-curvature
# The stability test used the full-batch loss. Estimate $\lambda_{\max}$ at $W = 0$ for the loss of
# single batches of 100 images (change `curvature_x` and `curvature_y`). Is it larger or smaller, and what
# does that suggest about learning rate 0.5 with batches of 100?
# ```
#
# ````{solution} ex-softmax-minibatch-curvature
# :class: dropdown
# By {eq}`eq-softmax-hessian0` the answer is $\tfrac{1}{10}$ of the top eigenvalue of the batch's second
# moment matrix, which fluctuates around the full-data value: some batches are sharper, some flatter (the
# top eigenvalue is dominated by the squared length of the batch's mean image, so batches of heavily inked
# digits are sharper). With $2/\lambda_{\max}$ of the full loss already at 0.51, learning rate 0.5 is above
# the limit for the sharper batches. Training survives because a step that overshoots on one batch is
# followed by steps on other batches, and because the curvature drops quickly once the predictions leave
# the uniform distribution, as the chapter measured.
# ````
