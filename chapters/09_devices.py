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
# (ch-devices)=
# # More than one device
#
# When a model or its data outgrow one device, the obvious move is to let several devices share the
# work of each step. The most common way to share it is **synchronous data parallelism**: every device
# holds a full copy of the model, each computes the gradient on its own slice of the batch, the devices
# add their gradients together, and all of them apply the same update. The gradient step becomes a
# collective operation, and TensorFlow's `tf.distribute` is the machinery that performs it.
#
# This chapter shows exactly what changes in the update, and then checks that for a model without
# per-batch state the algorithm is unchanged: trained on two or four devices, softmax regression on MNIST
# ends with the same weights as on one device, step for step, to float32 rounding. It also shows where that
# equivalence ends (layers whose state or randomness comes from the batch, regularization terms added on every
# replica), the one-line mistake that silently multiplies the learning rate by the number of devices, what
# happens when workers fall out of step or are interrupted, what the communication costs, and what
# happens to training when the batch grows with the number of devices.
#
# :::{admonition} What you will learn
# :class: tip
# - How synchronous data parallelism splits a batch across replicas, all-reduces the gradients and applies
#   one identical update everywhere, and why the loss must be divided by the *global* batch size.
# - How to get several devices on a laptop without a GPU (logical CPU devices), and why this must happen
#   before TensorFlow touches its devices.
# - Four implementations of the same parallel step, from TF1 "towers" through `MirroredStrategy` (custom loop
#   and Keras `fit`) to two worker processes with `MultiWorkerMirroredStrategy`, each checked against the
#   single-device result.
# - The classic scaling bug (per-replica mean loss) and its fix, `tf.nn.compute_average_loss`; why the
#   regularization term needs `tf.nn.scale_regularization_loss`; and what stays per replica (batch-norm
#   statistics, dropout masks) unless you synchronize it.
# - What breaks between workers and what guards against it: a worker that runs fewer steps than its peers
#   (and the collective time limit that turns the hang into an error), checkpoints written by the chief alone,
#   `keras.callbacks.BackupAndRestore`; and a cost model of the ring all-reduce, checked against measured
#   step times.
# - What happens to the loss curve when the global batch grows with the number of replicas, how the linear
#   learning-rate scaling rule and warm-up help, and how to measure (with Hessian-vector products) how far
#   beyond the edge of stability the scaled step goes, along the whole run; and how the gradient noise scale
#   tells how large a batch is still useful.
# :::
#
# As in every chapter, `gdbook.setup()` comes first: quiet logs, fixed seeds, deterministic kernels.

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import numpy as np
import tensorflow as tf

# %% [markdown]
# ## Several devices on one CPU
#
# This book runs on machines without a GPU. TensorFlow can nevertheless split one physical CPU into several
# **logical devices**, `/cpu:0`, `/cpu:1`, ..., each with its own place to keep variables and run kernels.
# They share the same cores, so nothing gets faster, but the pieces of the distributed machinery that decide
# *what* is computed (copies of the variables, per-device gradients, an all-reduce) are the ones a multi-GPU
# run uses, and that is what we want to look at. *How* the all-reduce is carried out is not the same: on
# several GPUs `MirroredStrategy` all-reduces with NVIDIA's NCCL library, on CPUs with a ring of collective
# operations, and below we even swap it for a simpler reduction. That changes the speed and the order of
# the float32 additions (and so the last bits of the result), not the sum being computed.
#
# The split must be declared before TensorFlow initialises its devices, which happens the first time
# anything is placed on one (creating a tensor, listing logical devices). `gdbook.setup()` imports TensorFlow
# and seeds it, but places nothing, so we can still do it here. We ask for four logical CPUs.

# %%
physical_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    physical_cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(4)]
)
logical_cpus = tf.config.list_logical_devices("CPU")
print(physical_cpu.name, "->", [device.name for device in logical_cpus])
assert len(logical_cpus) == 4

# %% [markdown]
# Listing the logical devices initialised them. From now on the configuration is frozen, and asking for a
# different split is an error rather than a silent no-op:

# %% tags=["raises-exception"]
with gdbook.expect_error(RuntimeError) as too_late:
    tf.config.set_logical_device_configuration(
        physical_cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(2)]
    )

# %% [markdown]
# The message names the cause. In a notebook the remedy is to restart the kernel and configure the devices in
# the first cells, as this chapter does.

# %%
print(too_late.message)
assert "cannot be modified after being initialized" in too_late.message

# %% [markdown]
# The rest of the imports: Keras, matplotlib, myst-nb's `glue` (which hands computed numbers to the text),
# and the book's MNIST batching helpers.

# %%
import atexit
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
from myst_nb import glue

from gdbook.mnist_tools import batch_indices, gather_batches

# %% [markdown]
# ## What changes in the update
#
# Take the softmax-regression model of the MNIST chapters: an image $\mathbf{x} \in \mathbb{R}^{784}$ gets
# the class probabilities $\mathbf{p} = \operatorname{softmax}(\mathbf{x} W + \mathbf{b})$, and its loss is
# the cross-entropy $\ell(\theta; \mathbf{x}, y) = -\log p_y$, with $\theta = (W, \mathbf{b})$. One step of
# mini-batch gradient descent on a batch $\mathcal{B}$ of $B$ examples is
#
# $$
# L_{\mathcal{B}}(\theta) = \frac{1}{B} \sum_{i \in \mathcal{B}} \ell_i(\theta),
# \qquad
# \theta \leftarrow \theta - \alpha \, \nabla L_{\mathcal{B}}(\theta).
# $$ (eq-devices-batch-step)
#
# Now cut the batch into $N$ disjoint shards $\mathcal{B} = \mathcal{S}_1 \cup \dots \cup \mathcal{S}_N$,
# one per **replica** (a device holding a full copy of $\theta$). Because the gradient of a sum is the sum of
# the gradients, the batch gradient is a sum of per-replica terms, each computable from one shard alone:
#
# $$
# \nabla L_{\mathcal{B}}(\theta) = \sum_{k=1}^{N} \mathbf{g}_k,
# \qquad
# \mathbf{g}_k = \nabla \Bigl( \frac{1}{B} \sum_{i \in \mathcal{S}_k} \ell_i(\theta) \Bigr).
# $$ (eq-devices-shard-sum)
#
# That is the whole idea of synchronous data parallelism: replica $k$ computes $\mathbf{g}_k$ on its shard;
# an **all-reduce** adds the $N$ vectors and hands the sum to every replica; every replica applies the same
# update {eq}`eq-devices-batch-step` to its copy, so the copies stay identical without ever being sent around.
# Note the $1/B$ inside $\mathbf{g}_k$: each replica divides its *sum* of losses by the **global** batch size
# $B$, not by its own shard size $B/N$. A replica that takes the natural-looking mean over its own shard
# computes $\tilde{\mathbf{g}}_k = \frac{N}{B} \sum_{i \in \mathcal{S}_k} \nabla \ell_i$, and the all-reduce
# then delivers
#
# $$
# \sum_{k=1}^{N} \tilde{\mathbf{g}}_k = N \, \nabla L_{\mathcal{B}}(\theta):
# $$ (eq-devices-bug)
#
# the right direction with $N$ times the length, the same as multiplying the learning rate by $N$. Nothing
# fails and nothing warns; the model just trains with a different learning rate than the one written down.
#
# Before any TensorFlow, the algebra in NumPy and float64. The gradient of the mean cross-entropy of softmax
# regression is $\nabla_W = X^\top (P - Y) / B$ and $\nabla_{\mathbf{b}} = \mathbf{1}^\top (P - Y) / B$,
# with $P$ the matrix of probabilities and $Y$ the one-hot labels. We load MNIST and keep 6000 training images
# for the experiments of this chapter.

# %%
mnist = gdbook.load_mnist("flat")
x_train, y_train = mnist.x_train[:6000], mnist.y_train[:6000].astype(np.int64)
print(x_train.shape, x_train.dtype, y_train[:10])


def softmax_regression_gradient(W, b, x, y, divide_by):
    """Gradient of sum_i(cross-entropy_i) / divide_by for softmax regression (NumPy)."""
    logits = x @ W + b
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(y)), y] -= 1.0  # P - Y
    return x.T @ probabilities / divide_by, probabilities.sum(axis=0) / divide_by


# %% [markdown]
# At a random point $\theta$, one global batch of $B = 96$ images, split over $N = 4$ replicas: the sum of
# the correctly scaled shard gradients {eq}`eq-devices-shard-sum` against the batch gradient, and the sum of
# per-shard means {eq}`eq-devices-bug` against $N$ times it.

# %%
rng = np.random.default_rng(0)
W_random, b_random = rng.normal(0, 0.01, (784, 10)), rng.normal(0, 0.01, 10)
batch = rng.choice(len(x_train), 96, replace=False)
x_batch, y_batch = x_train[batch].astype(np.float64), y_train[batch]
replicas = 4
shards = np.split(np.arange(96), replicas)

batch_gradient_W, _ = softmax_regression_gradient(
    W_random, b_random, x_batch, y_batch, divide_by=96
)
global_scaled_W = sum(
    softmax_regression_gradient(W_random, b_random, x_batch[s], y_batch[s], 96)[0]
    for s in shards
)
shard_mean_W = sum(
    softmax_regression_gradient(W_random, b_random, x_batch[s], y_batch[s], len(s))[0]
    for s in shards
)

# %% [markdown]
# The two comparisons, the first against the batch gradient, the second against $N$ times it:

# %%
gap_correct = np.abs(global_scaled_W - batch_gradient_W).max()
gap_bug = np.abs(shard_mean_W - replicas * batch_gradient_W).max()
print(f"max |sum of shard gradients / B    - batch gradient|     = {gap_correct:.1e}")
print(
    f"max |sum of per-shard mean gradients - {replicas} x batch gradient| = "
    f"{gap_bug:.1e}"
)
assert gap_correct < 1e-15 and gap_bug < 1e-14

# %% [markdown]
# Both identities hold to float64 rounding. The rest of the chapter watches TensorFlow do the same thing with
# real devices, in float32.
#
# ## The reference: one device
#
# Every parallel run below is compared with this one: softmax regression from zero weights, plain gradient
# descent with learning rate $0.5$, 30 steps on global batches of $B = 96$ images. `batch_indices` fixes the
# batches, so every implementation sees the same images in the same order. The loss is written per example
# (`sparse_softmax_cross_entropy_with_logits` returns one number per image), which lets each implementation
# choose how to reduce it.

# %%
GLOBAL_BATCH, STEPS, LEARNING_RATE = 96, 30, 0.5
batches = batch_indices(len(x_train), GLOBAL_BATCH, STEPS, seed=0)
print("batches:", batches.shape, "first images of batch 0:", batches[0, :5])


def per_example_loss(W, b, x, y):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=tf.matmul(x, W) + b
    )


# %% [markdown]
# The reference run itself: one compiled step, applied to the 30 batches in turn, keeping the weights after
# each step.


# %%
def train_one_device():
    """The reference: one device, mean loss over the batch; returns the weights after
    every step.
    """
    W, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_example_loss(W, b, x, y))
        grad_W, grad_b = tape.gradient(loss, [W, b])
        W.assign_sub(LEARNING_RATE * grad_W)
        b.assign_sub(LEARNING_RATE * grad_b)
        return loss

    history, losses = [], []
    for batch in batches:
        losses.append(float(step(x_train[batch], y_train[batch])))
        history.append((W.numpy().copy(), b.numpy().copy()))
    return history, np.array(losses)


# %% [markdown]
# Run once, it gives the weights and the loss of every step:

# %%
reference, reference_losses = train_one_device()
print(
    f"loss: step 1 {reference_losses[0]:.6f}, step {STEPS} {reference_losses[-1]:.6f}"
)
# zero weights: uniform probabilities
assert abs(reference_losses[0] - np.log(10)) < 1e-6
assert reference_losses[-1] < 0.5 * reference_losses[0]

# %% [markdown]
# The first loss is $\ln 10 \approx 2.302585$, as it must be for zero weights (all ten classes equally
# likely), and 30 steps more than halve it.
#
# ## TF1: towers by hand
#
# Before `tf.distribute`, multi-device training in TensorFlow 1 was written by hand {cite:p}`abadi2016`: build
# one copy of the forward pass and `tf.gradients` per device inside `with tf.device(...)` (a "tower"), feed
# each tower a slice of the batch, average the towers' gradients on one device and apply them with an
# optimizer. Here it is, labelled **TF1**, through `tf.compat.v1` with placeholders and a session, with two
# towers on `/cpu:0` and `/cpu:1`.

# %%
tf1 = tf.compat.v1
towers = 2
graph = tf.Graph()
with graph.as_default():  # TF1: build a graph, then run it in a session
    x_ph = tf1.placeholder(tf.float32, [GLOBAL_BATCH, 784])
    y_ph = tf1.placeholder(tf.int64, [GLOBAL_BATCH])
    W_tf1 = tf1.get_variable("W", [784, 10], initializer=tf1.zeros_initializer())
    b_tf1 = tf1.get_variable("b", [10], initializer=tf1.zeros_initializer())
    tower_gradients = []
    for k, (x_shard, y_shard) in enumerate(
        zip(tf.split(x_ph, towers), tf.split(y_ph, towers), strict=True)
    ):
        with tf.device(f"/cpu:{k}"):
            tower_loss = tf.reduce_mean(
                per_example_loss(W_tf1, b_tf1, x_shard, y_shard)
            )
            tower_gradients.append(tf1.gradients(tower_loss, [W_tf1, b_tf1]))

# %% [markdown]
# On `/cpu:0` the towers' gradients are averaged, and one optimizer op applies them to the shared variables:

# %%
with graph.as_default(), tf.device("/cpu:0"):
    averaged = [
        tf.add_n(list(grads)) / towers for grads in zip(*tower_gradients, strict=True)
    ]
    train_op = tf1.train.GradientDescentOptimizer(LEARNING_RATE).apply_gradients(
        zip(averaged, [W_tf1, b_tf1], strict=True)
    )
    init_op = tf1.global_variables_initializer()

# %% [markdown]
# The session runs the graph on the 30 batches, keeping $W$ after each step, and we compare with the reference:

# %%
print("tower devices:", [grads[0].device for grads in tower_gradients])
tf1_history = []
with tf1.Session(graph=graph) as session:
    session.run(init_op)
    for batch in batches:
        session.run(train_op, {x_ph: x_train[batch], y_ph: y_train[batch]})
        tf1_history.append(session.run(W_tf1).copy())

tf1_gap = max(
    np.abs(W - ref_W).max()
    for W, (ref_W, _) in zip(tf1_history, reference, strict=True)
)
print(f"TF1 towers vs one device, max |W difference| over {STEPS} steps: {tf1_gap:.1e}")
assert tf1_gap < 1e-6


# %% [markdown]
# The towers really are on two devices, and the weights agree with the single-device run to float32
# rounding at every step. Notice how the TF1 code scales the loss: each tower takes the *mean* over its own
# shard, and the tower gradients are then *averaged*. Mean-then-average equals {eq}`eq-devices-shard-sum`
# because the shards are equally large; the division by the number of towers is what prevents the bug
# {eq}`eq-devices-bug`.
#
# `tf.distribute` could average in the same way: its all-reduce takes `ReduceOp.MEAN` as well as
# `ReduceOp.SUM`. It scales the loss instead, for two reasons. First, the optimizers *sum*: a Keras
# optimizer's `apply_gradients`, called on every replica, all-reduces the gradients with `ReduceOp.SUM`
# before it applies them (`_all_reduce_sum_gradients` in `keras/src/backend/tensorflow/optimizer.py`), so
# whatever scaling the update needs must already be in each replica's gradient, that is, in its loss.
# Second, a mean of per-replica means weights every *shard* equally, which is the batch mean only when the
# shards are equally large; the last batch of an epoch, split over the replicas, usually is not, and then
# each image of a small shard counts for more than an image of a large one (an
# {ref}`exercise <ex-devices-uneven>` measures it). Dividing each replica's *sum* of losses by the global batch
# size is right for any split.
#
# ## `MirroredStrategy`: a custom training loop
#
# `tf.distribute.MirroredStrategy` is synchronous data parallelism on the devices of one machine. Variables
# created under `strategy.scope()` become *mirrored*: one copy per replica, kept identical. `strategy.run(fn)`
# runs `fn` once per replica, each on its own device with its own inputs (a "per-replica" value), and
# `strategy.reduce` combines per-replica values into one. Inside `fn`, `get_replica_context().all_reduce`
# is the all-reduce of {eq}`eq-devices-shard-sum`.
#
# One choice needs explaining. By default `MirroredStrategy` all-reduces with *collective* operations
# (implemented with NCCL on GPUs and as a ring on CPUs),
# and in this TensorFlow version two strategies of different sizes in one process clash over the collectives'
# group keys (the second fails with "joining a group with size 4, but that group has size 2", and the process
# must be restarted). We compare 1, 2 and 4 replicas in one process, so we pick the simple reduction that
# copies the values to one device and adds them there, `ReductionToOneDevice`.


# %%
def mirrored_strategy(replicas):
    return tf.distribute.MirroredStrategy(
        [f"/cpu:{k}" for k in range(replicas)],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )


def shard_of(array, batch, replicas):
    """A function that gives each replica its slice of the global batch: replica k gets
    shard k.
    """

    def for_replica(context):
        k, size = context.replica_id_in_sync_group, len(batch) // replicas
        return array[batch[k * size : (k + 1) * size]]

    return for_replica


# %% [markdown]
# The training step. Each replica computes its per-example losses and scales their sum by the global batch
# size with `tf.nn.compute_average_loss(..., global_batch_size=B)`; with `scale_by_global_batch=False` it
# takes the per-shard mean instead, the bug of {eq}`eq-devices-bug`, which we run next for comparison. The
# gradients are summed over replicas with `all_reduce`, and each replica applies the update to its copy of
# the mirrored variables. The step returns the loss summed over replicas with `strategy.reduce`, which is the
# global batch loss when the loss is scaled correctly.


# %%
def mirrored_replica_step(W, b, scale_by_global_batch):
    """The step each replica runs on its shard, updating its copies of W and b."""

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            losses = per_example_loss(W, b, x, y)
            if scale_by_global_batch:
                loss = tf.nn.compute_average_loss(
                    losses, global_batch_size=GLOBAL_BATCH
                )
            else:
                # the bug: mean over this replica's shard only
                loss = tf.reduce_mean(losses)
        gradients = tape.gradient(loss, [W, b])
        grad_W, grad_b = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, gradients
        )
        W.assign_sub(LEARNING_RATE * grad_W)
        b.assign_sub(LEARNING_RATE * grad_b)
        return loss

    return replica_step


# %% [markdown]
# The loop around it: the mirrored variables, created in the strategy's scope; a compiled step that runs the
# replica step on every replica and sums the replicas' losses; and the 30 batches, each split with
# `shard_of`.


# %%
def train_mirrored(replicas, scale_by_global_batch=True):
    strategy = mirrored_strategy(replicas)
    with strategy.scope():
        W, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
    replica_step = mirrored_replica_step(W, b, scale_by_global_batch)

    @tf.function
    def step(x, y):
        per_replica_loss = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    history, losses = [], []
    for batch in batches:
        x = strategy.experimental_distribute_values_from_function(
            shard_of(x_train, batch, replicas)
        )
        y = strategy.experimental_distribute_values_from_function(
            shard_of(y_train, batch, replicas)
        )
        losses.append(float(step(x, y)))
        history.append((W.numpy().copy(), b.numpy().copy()))
    copies = [v.numpy() for v in strategy.experimental_local_results(W)]
    return history, np.array(losses), copies


# %% [markdown]
# Now the check that matters: 2 and 4 replicas against one device, the weights compared after every one of
# the 30 steps, and the copies of $W$ on the replicas compared with each other.


# %%
def step_gaps(history):
    """Largest |difference| from the one-device reference in W and b, at each step."""
    return np.array(
        [
            max(np.abs(W - ref_W).max(), np.abs(b - ref_b).max())
            for (W, b), (ref_W, ref_b) in zip(history, reference, strict=True)
        ]
    )


mirrored_gaps, mirrored_losses = {}, {}
for replicas in (2, 4):
    history, losses, copies = train_mirrored(replicas)
    mirrored_gaps[replicas], mirrored_losses[replicas] = step_gaps(history), losses
    copies_equal = all(np.array_equal(copy, copies[0]) for copy in copies)
    loss_gap = np.abs(losses - reference_losses).max()
    print(
        f"{replicas} replicas: max |weight difference| over {STEPS} steps "
        f"{mirrored_gaps[replicas].max():.1e}, "
        f"max |loss difference| {loss_gap:.1e}, copies on the replicas identical: "
        f"{copies_equal}"
    )
    assert mirrored_gaps[replicas].max() < 1e-6 and loss_gap < 1e-6 and copies_equal
    # the prose says "about 1e-7"
    assert round(np.log10(mirrored_gaps[replicas].max())) == -7

# %% [markdown]
# On 2 and 4 replicas the weights track the one-device run to about $10^{-7}$ at every step, the size of
# float32 rounding for weights of this magnitude, and the replicas' copies are bit-for-bit identical. The
# results are not bit-for-bit equal to the one-device run, and should not be expected to be: the one device
# adds 96 per-example gradients in one matrix product, the replicas add 48 or 24 and then add the partial
# sums, and float32 addition is not associative.
#
# Now the bug: two replicas, each taking the mean over its own shard. Starting from zero weights, the first
# update should come out exactly twice the reference's, as {eq}`eq-devices-bug` predicts.

# %%
buggy_history, buggy_losses, _ = train_mirrored(2, scale_by_global_batch=False)
buggy_gaps = step_gaps(buggy_history)
first_W, first_ref_W = buggy_history[0][0], reference[0][0]
doubling_gap = np.abs(first_W - 2 * first_ref_W).max()
print(
    f"first update: largest entry {np.abs(first_W).max():.6f}, max |buggy - 2 x "
    f"reference| = {doubling_gap:.1e}"
)
print(
    f"reported loss at step 1: {buggy_losses[0]:.6f} (the true batch loss is "
    f"{reference_losses[0]:.6f})"
)
print(f"reported loss at step {STEPS}: {buggy_losses[-1]:.6f}")
print(f"max |weight difference| after {STEPS} steps: {buggy_gaps[-1]:.3f}")
assert doubling_gap < 1e-6 * np.abs(first_W).max() + 1e-8
assert abs(buggy_losses[0] - 2 * reference_losses[0]) < 1e-5
assert buggy_gaps[-1] > 1e4 * mirrored_gaps[2].max()
# and the reported loss still falls over the run
assert buggy_losses[-1] < 0.5 * buggy_losses[0]

# %% [markdown]
# Every entry of the first update is twice the reference's, to float32 rounding, and the reported loss is twice the true one (the sum of
# two shard means). This second symptom is the only visible one, and only if you know what the loss should be;
# the reported loss still falls to less than half its first value over the 30 steps, so a reader who only
# watches the loss go down would never notice. {numref}`fig-devices-step-gaps` shows the
# distance from the reference at every step.

# %% mystnb={"figure": {"caption": "Largest difference between the weights of a data-parallel run and the one-device reference after each step, on a log scale. With the loss divided by the global batch size, 2 and 4 replicas stay within float32 rounding of the reference at every step. With the per-replica mean (the bug), the first update is already twice too large and the runs part ways.", "name": "fig-devices-step-gaps"}}
fig, ax = plt.subplots(figsize=(6.6, 3.6))
steps_axis = np.arange(1, STEPS + 1)
for replicas, gaps in mirrored_gaps.items():
    ax.semilogy(
        steps_axis,
        np.maximum(gaps, 1e-10),
        "o-",
        ms=3,
        label=f"{replicas} replicas, loss / global batch",
    )
ax.semilogy(
    steps_axis, buggy_gaps, "s-", ms=3, label="2 replicas, per-replica mean (bug)"
)
eps = np.finfo(np.float32).eps
ax.axhline(eps, color="0.5", ls="--", lw=1)
ax.text(STEPS, eps * 1.6, "float32 epsilon", ha="right", va="bottom", color="0.4")
ax.set_xlabel("step")
ax.set_ylabel("max |weights - one-device weights|")
ax.legend(loc="center right")
plt.show()

# %% [markdown]
# `tf.nn.compute_average_loss` has one more default worth knowing. Without `global_batch_size` it divides by
# the size of the replica's shard times the number of replicas, which is the global batch size only when every
# replica gets a full shard. With uneven shards, passing the global batch size explicitly is the safe choice,
# which is why the loop above does it: every example then weighs $1/B$, whichever shard it is in. On a short
# last batch, $B$ must be the number of examples in *that* global batch (the argument accepts a tensor) for the
# step to follow the batch mean; the nominal batch size keeps the examples' weights equal but shrinks that
# one step.

# %%
strategy = mirrored_strategy(2)
ten_losses = tf.ones([10])
default_scaled = strategy.run(lambda: tf.nn.compute_average_loss(ten_losses))
explicit_scaled = strategy.run(
    lambda: tf.nn.compute_average_loss(ten_losses, global_batch_size=96)
)
print(
    "default:",
    [float(v) for v in strategy.experimental_local_results(default_scaled)],
    " global_batch_size=96:",
    [float(v) for v in strategy.experimental_local_results(explicit_scaled)],
)
assert all(
    float(v) == 10 / 20 for v in strategy.experimental_local_results(default_scaled)
)
assert all(
    abs(float(v) - 10 / 96) < 1e-7
    for v in strategy.experimental_local_results(explicit_scaled)
)


# %% [markdown]
# Each of the two replicas holds 10 losses of 1, and by default divides their sum by $10 \times 2$.
#
# ### A regularization term on every replica
#
# A penalty on the weights, such as the L2 term $\lambda \cdot \tfrac12 \lVert W \rVert^2$
# (`lam * tf.nn.l2_loss(W)`), belongs to the whole batch, not to one example, so
# `compute_average_loss` does not touch it. Added as it is on each of $N$ replicas, it enters the
# all-reduced gradient $N$ times: the same as an $N$ times stronger penalty on one device.
# `tf.nn.scale_regularization_loss` divides it by the number of replicas, so that the $N$ copies add up to
# one. We train the custom loop with the penalty $\lambda = 0.1$ on one replica (the one-device result), on
# two replicas without and with the scaling, and on one replica with $\lambda = 0.2$.


# %%
def regularized_replica_step(W, b, lam, scale_penalty):
    """The replica step with lam * l2_loss(W) added to each replica's loss."""

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            losses = per_example_loss(W, b, x, y)
            penalty = lam * tf.nn.l2_loss(W)
            if scale_penalty:
                penalty = tf.nn.scale_regularization_loss(penalty)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=GLOBAL_BATCH)
            loss += penalty
        gradients = tape.gradient(loss, [W, b])
        context = tf.distribute.get_replica_context()
        grad_W, grad_b = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        W.assign_sub(LEARNING_RATE * grad_W)
        b.assign_sub(LEARNING_RATE * grad_b)

    return replica_step


# %% [markdown]
# The loop is that of `train_mirrored`, returning only the final kernel:


# %%
def train_regularized(replicas, lam, scale_penalty):
    strategy = mirrored_strategy(replicas)
    with strategy.scope():
        W, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
    replica_step = regularized_replica_step(W, b, lam, scale_penalty)
    step = tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))
    for batch in batches:
        step(
            *(
                strategy.experimental_distribute_values_from_function(
                    shard_of(array, batch, replicas)
                )
                for array in (x_train, y_train)
            )
        )
    return W.numpy()


# %% [markdown]
# The four final kernels, compared with the one-device kernel:

# %%
regularized = {
    "1 replica, lam 0.1": train_regularized(1, 0.1, scale_penalty=True),
    "2 replicas, not scaled": train_regularized(2, 0.1, scale_penalty=False),
    "2 replicas, scaled": train_regularized(2, 0.1, scale_penalty=True),
    "1 replica, lam 0.2": train_regularized(1, 0.2, scale_penalty=True),
}
one_device_W = regularized["1 replica, lam 0.1"]
for name, W in regularized.items():
    print(f"{name:>23}: max |W - one-device W| = {np.abs(W - one_device_W).max():.2e}")
unscaled_gap = np.abs(regularized["2 replicas, not scaled"] - one_device_W).max()
scaled_gap = np.abs(regularized["2 replicas, scaled"] - one_device_W).max()
doubled_gap = np.abs(
    regularized["2 replicas, not scaled"] - regularized["1 replica, lam 0.2"]
).max()
print(f"largest |entry| of the one-device kernel: {np.abs(one_device_W).max():.3f}")
print(f"2 replicas not scaled vs 1 replica with lam 0.2: {doubled_gap:.1e}")
glue("ch9_reg_unscaled_gap", float(unscaled_gap), display=False)
glue("ch9_reg_largest", float(np.abs(one_device_W).max()), display=False)
assert scaled_gap < 1e-6 and doubled_gap < 1e-6
assert unscaled_gap > 0.1 * np.abs(one_device_W).max()

# %% [markdown]
# Without the scaling, the two-replica kernel ends {glue:text}`ch9_reg_unscaled_gap:.3f` away from the
# one-device kernel in its largest entry (whose entries reach {glue:text}`ch9_reg_largest:.3f`), and it
# matches, to float32 rounding, the one-device run with twice the penalty; with
# `scale_regularization_loss` it matches the one-device run with the intended one. Keras `fit` does this
# scaling itself for the regularization losses of its layers (`_aggregate_additional_loss` in
# `keras/src/backend/tensorflow/trainer.py`); in a custom loop it is yours to do.
#
# ### Feeding the replicas with `tf.data`
#
# The loop above hands each replica its slice of the global batch by hand (`shard_of`), which keeps the
# mechanics in view. A real input pipeline is a `tf.data.Dataset`, and the strategy offers two ways to
# distribute one. `strategy.experimental_distribute_dataset` takes a dataset of *global* batches and splits
# every batch across the replicas. `strategy.distribute_datasets_from_function` calls a function of yours once
# per input pipeline (one per worker) with a `tf.distribute.InputContext`, which tells it the per-replica
# batch size, the number of pipelines and which one it is, so that it can batch and shard the data itself;
# the strategy then hands consecutive batches to consecutive replicas. Both, on the batches of the custom
# loop, against `shard_of`:

# %%
x_ordered, y_ordered = gather_batches(batches, x_train, y_train)
strategy = mirrored_strategy(2)
global_batches = tf.data.Dataset.from_tensor_slices((x_ordered, y_ordered))
split = strategy.experimental_distribute_dataset(global_batches.batch(GLOBAL_BATCH))
contexts = []


def replica_batches(context):
    contexts.append(context)
    per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
    return global_batches.shard(
        context.num_input_pipelines, context.input_pipeline_id
    ).batch(per_replica)


from_function = strategy.distribute_datasets_from_function(replica_batches)
(context,) = contexts
print(
    f"input pipelines {context.num_input_pipelines}, this one "
    f"{context.input_pipeline_id},"
    f" replicas {context.num_replicas_in_sync}, per-replica batch "
    f"{context.get_per_replica_batch_size(GLOBAL_BATCH)}"
)

# %% [markdown]
# In the first step, both give each replica the labels that `shard_of` gives it:

# %%
for name, dataset in [("distribute_dataset", split), ("from_function", from_function)]:
    _, y_first = next(iter(dataset))
    labels = [v.numpy() for v in strategy.experimental_local_results(y_first)]
    by_hand = [y_train[batches[0][k * 48 : (k + 1) * 48]] for k in range(2)]
    print(f"{name}: first step, shards of {[len(v) for v in labels]} labels")
    assert all(np.array_equal(a, b) for a, b in zip(labels, by_hand, strict=True))
assert context.get_per_replica_batch_size(GLOBAL_BATCH) == GLOBAL_BATCH // 2


# %% [markdown]
# On one machine there is one input pipeline and the sharding is trivial. With several workers,
# `experimental_distribute_dataset` shards the dataset across workers on its own, by the dataset's
# auto-shard policy (`tf.data.Options().experimental_distribute.auto_shard_policy`): `AUTO`, the default,
# gives each worker a share of the input files when the data come from files, and otherwise falls back to
# `DATA`, where every worker reads the whole dataset and keeps every $k$-th element. A function passed to
# `distribute_datasets_from_function` does its own sharding, as `replica_batches` does with
# `input_pipeline_id`.
#
# ## `MirroredStrategy` with Keras `fit`
#
# With Keras, the strategy only has to be in scope when the model and its optimizer are created; `fit`
# then splits each batch over the replicas itself. The model is the same: one `Dense` layer with zero initial
# weights, trained with `SGD(0.5)` on the same batches, fed in order with `shuffle=False`. A callback records
# the kernel after every step.


# %%
class RecordWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        dense = self.model.layers[0]
        self.history.append((dense.kernel.numpy().copy(), dense.bias.numpy().copy()))


# %% [markdown]
# The model, created and compiled in the strategy's scope, trained for one epoch over the 30 batches in order:


# %%
def fit_keras(strategy):
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(10, kernel_initializer="zeros")]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(LEARNING_RATE),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    recorder = RecordWeights()
    model.fit(
        x_ordered,
        y_ordered,
        batch_size=GLOBAL_BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[recorder],
    )
    return recorder.history


# %% [markdown]
# One device (the default strategy) and two replicas, each compared with the reference at every step:

# %%
keras_gaps = {
    name: step_gaps(fit_keras(strategy))
    for name, strategy in [
        ("default (one device)", tf.distribute.get_strategy()),
        ("2 replicas", mirrored_strategy(2)),
    ]
}
for name, gaps in keras_gaps.items():
    print(
        f"Keras fit, {name}: max |weight difference| from the custom loop over "
        f"{STEPS} steps {gaps.max():.1e}"
    )
    assert len(gaps) == STEPS and gaps.max() < 1e-6

# %% [markdown]
# Keras agrees with the reference at every step, on one device and on two replicas. How does it avoid the bug,
# given that its loss is the mean over the batch it sees, which on a replica is the shard? The answer is in
# its source (`keras/src/losses/loss.py`): when a `tf.distribute` strategy with $N > 1$ replicas is active,
# every loss reduced with `"sum_over_batch_size"` (the default) is multiplied by $1/N$. The shard mean times
# $1/N$ is the sum over the shard divided by the global batch size, exactly the scaling of
# {eq}`eq-devices-shard-sum`, as long as the shards are equally large. Keras divides by the size of the shard
# each replica sees (`reduce_values` in the same file), so on uneven shards it reweights the examples as the
# TF1 towers do (the {ref}`exercise <ex-devices-uneven>` measures that reweighting). The optimizer's `apply_gradients` then all-reduces the gradients with
# `ReduceOp.SUM` (`keras/src/backend/tensorflow/optimizer.py`), as our loop does. The table sums up who does
# what in the four implementations of this chapter.
#
# ```{container} wide-table
# | implementation | per-replica loss | all-reduce of gradients | who applies the update |
# | --- | --- | --- | --- |
# | TF1 towers | mean over the shard | `add_n` on `/cpu:0`, divided by the number of towers | one optimizer op, on the shared variables |
# | custom loop, `MirroredStrategy` | `compute_average_loss(..., global_batch_size=B)` | `replica_context.all_reduce(SUM, ...)` | every replica, on its own copy |
# | Keras `fit`, `MirroredStrategy` | shard mean $\times 1/N$, done by Keras | inside `optimizer.apply_gradients` (SUM) | every replica, on its own copy |
# | `MultiWorkerMirroredStrategy` (next section) | `compute_average_loss(..., global_batch_size=B)` | collective all-reduce over the network (gRPC) | every worker, on its own copy |
# ```
#
# ## What stays per replica
#
# Softmax regression has no state but its weights, and its loss is a sum over examples, so splitting the
# batch changes nothing but the order of additions. A layer that computes something *from the batch* is
# different: on a replica it sees only the shard. Batch normalization is the standard case. In training it
# normalizes with the mean and variance of the batch it is given, which on a replica is the shard, and it
# updates its moving mean from the same numbers. We give a batch-norm layer a batch of four numbers, $0, 0, 2,
# 2$, split over two replicas as $(0, 0)$ and $(2, 2)$, once as it is and once with `synchronized=True`,
# which all-reduces the statistics across replicas (momentum 0, so the moving mean is the last batch's mean).

# %%
four_values = np.array([[0.0], [0.0], [2.0], [2.0]], np.float32)
strategy = mirrored_strategy(2)
two_shards = strategy.experimental_distribute_values_from_function(
    lambda context: four_values[2 * context.replica_id_in_sync_group :][:2]
)
normalized, moving_means = {}, {}
for synchronized in (False, True):
    with strategy.scope():
        norm = keras.layers.BatchNormalization(synchronized=synchronized, momentum=0.0)
        norm.build((None, 1))
    per_replica = strategy.run(
        tf.function(norm), args=(two_shards,), kwargs={"training": True}
    )
    normalized[synchronized] = np.concatenate(
        [v.numpy().ravel() for v in strategy.experimental_local_results(per_replica)]
    )
    moving_means[synchronized] = [
        float(v.numpy()[0])
        for v in strategy.experimental_local_results(norm.moving_mean.value)
    ]

# %% [markdown]
# The same four numbers on one device, and the outputs side by side:

# %%
one_device_norm = keras.layers.BatchNormalization(momentum=0.0)
one_device = one_device_norm(four_values, training=True).numpy().ravel()
for synchronized in (False, True):
    print(
        f"synchronized={synchronized!s:5}: outputs "
        f"{np.round(normalized[synchronized], 4)},"
        f" moving mean on the two replicas {moving_means[synchronized]}"
    )
print(
    f"one device:         outputs {np.round(one_device, 4)}, moving mean "
    f"{float(one_device_norm.moving_mean.numpy()[0])}"
)

# %% [markdown]
# Per replica, each shard is constant, so it is normalized to zeros, and the two copies of the moving mean,
# which are supposed to be mirrors of each other, now hold different values (reading the variable returns
# the first replica's). With `synchronized=True` the outputs and the moving mean are those of one device.

# %%
assert np.all(normalized[False] == 0.0) and moving_means[False] == [0.0, 2.0]
assert np.array_equal(normalized[True], one_device)
assert (
    moving_means[True]
    == [1.0, 1.0]
    == [float(one_device_norm.moving_mean.numpy()[0])] * 2
)

# %% [markdown]
# Randomness is the other per-replica matter. A dropout layer under the strategy draws its mask on every
# replica from a seed generator whose state, like the weights, is mirrored. Here is the mask a dropout layer
# (rate 0.5) draws on each of two replicas for an input of eight ones, and the masks it draws on one device
# for a batch of two such rows:

# %%
with strategy.scope():
    dropout = keras.layers.Dropout(0.5)
masks = strategy.experimental_local_results(
    strategy.run(tf.function(lambda: dropout(tf.ones([1, 8]), training=True)))
)
print("replica masks:", [mask.numpy().ravel().tolist() for mask in masks])
one_device_masks = keras.layers.Dropout(0.5)(tf.ones([2, 8]), training=True).numpy()
print("one device, two rows:", one_device_masks.tolist())
assert np.array_equal(masks[0].numpy(), masks[1].numpy())
assert not np.array_equal(one_device_masks[0], one_device_masks[1])

# %% [markdown]
# The two replicas drew the *same* mask, so the first image of every shard is dropped in the same places;
# on one device every row of the batch gets its own. Neither is wrong, but they are different random
# processes, and a data-parallel run with dropout is not the one-device run split up.
#
# Anything else that keeps state computed on the batch needs the same thought: it is per replica unless
# something combines it. Keras metrics do combine it. Their variables are *sync-on-read*: each replica adds
# to its own copy, and reading the metric sums the copies. A `Sum` metric, updated with 1 on each of the two
# replicas, next to a counter of our own, a plain `tf.Variable` created under the scope and incremented by 1
# on each replica:

# %%
with strategy.scope():
    images_seen_metric = keras.metrics.Sum()
    plain_counter = tf.Variable(0.0)


@tf.function
def count_one_each():
    images_seen_metric.update_state(1.0)
    plain_counter.assign_add(1.0)


strategy.run(count_one_each)
metric_variable = images_seen_metric.variables[0].value
print(
    f"metric: {type(metric_variable).__name__}, result "
    f"{float(images_seen_metric.result())}"
)
counter_value = float(plain_counter.numpy())
print(f"own counter: {type(plain_counter).__name__}, value {counter_value}")
assert metric_variable.synchronization == tf.VariableSynchronization.ON_READ
assert float(images_seen_metric.result()) == 2.0 and counter_value == 1.0

# %% [markdown]
# The metric counted both replicas. The plain variable is mirrored: each replica added 1 to its own copy,
# and it reads 1, not 2. A counter of your own needs `synchronization=tf.VariableSynchronization.ON_READ`
# and an aggregation, as Keras gives its metrics.
#
# ## Two workers: `MultiWorkerMirroredStrategy`
#
# The same algorithm runs across machines. Each machine (a **worker**) runs its own copy of the program;
# the environment variable `TF_CONFIG` tells each one the addresses of all workers and which one it is.
# `MultiWorkerMirroredStrategy` connects them and all-reduces over the network with collective operations.
# We play both machines on this one: two processes, listening on free ports of `127.0.0.1`, started from this
# page.
#
# The worker program is written to a temporary directory, in four parts. The first reads the batches and
# `TF_CONFIG`, creates the strategy (which connects to the other worker) and the mirrored variables. Each
# worker will print a single line; TensorFlow's start-up messages go to its standard error, which we capture
# and show only if a worker fails.

# %%
WORKER_SETUP = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

inputs, output, checkpoint_path = sys.argv[1], sys.argv[2], sys.argv[3]
me = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
data = np.load(inputs)
x_batches, y_batches, learning_rate = data["x"], data["y"], float(data["learning_rate"])
global_batch = x_batches.shape[1]

strategy = tf.distribute.MultiWorkerMirroredStrategy()
shard = global_batch // strategy.num_replicas_in_sync
mine = slice(me * shard, (me + 1) * shard)
with strategy.scope():
    W, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
"""

# %% [markdown]
# The second part is the step of the custom loop, unchanged: the loss scaled by the global batch size, the
# gradients summed by an all-reduce, the update applied on every worker.

# %%
WORKER_STEP = """
def replica_step(x, y):
    with tf.GradientTape() as tape:
        logits = tf.matmul(x, W) + b
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
    gradients = tape.gradient(loss, [W, b])
    context = tf.distribute.get_replica_context()
    grad_W, grad_b = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    W.assign_sub(learning_rate * grad_W)
    b.assign_sub(learning_rate * grad_b)
    return loss

@tf.function
def step(x, y):
    per_replica = strategy.run(replica_step, args=(x, y))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
"""

# %% [markdown]
# The third part trains: worker $k$ takes shard $k$ of every global batch, as replica $k$ did above. For the
# cost model further down, it times each step, and after each step bare all-reduces of three sizes, so that
# both are measured under the same conditions on this shared machine. Both workers run the same number of
# all-reduces, for a reason the section after next makes plain.

# %% tags=["nbval-ignore-output"]
WORKER_TRAIN = """
@tf.function
def all_reduce(tensor):
    sum_up = lambda t: tf.distribute.get_replica_context().all_reduce("sum", t + 0.0)
    return strategy.run(sum_up, args=(tensor,))

probes = [tf.ones([size]) for size in (1, 7850, 2**21)]
losses, step_seconds, all_reduce_seconds = [], [], []
for x, y in zip(x_batches, y_batches):
    start = time.perf_counter()
    losses.append(float(step(x[mine], y[mine])))
    step_seconds.append(time.perf_counter() - start)
    all_reduce_seconds.append([])
    for probe in probes:
        start = time.perf_counter()
        all_reduce(probe).numpy()
        all_reduce_seconds[-1].append(time.perf_counter() - start)
"""

# %% [markdown]
# The last part saves the weights, in the way the TensorFlow guides prescribe for several workers. Every
# worker must take part in a save (saving can involve collective operations, and a worker that skipped it
# would leave the others waiting), but only one, the **chief**, may write to the real path, or the workers
# would overwrite each other's files.
# Without a task named `"chief"` in the cluster, worker 0 is the chief; the others write to a temporary
# folder `workertemp_<k>` next to the real one and delete it afterwards. (TensorFlow's
# `PreemptionCheckpointHandler` uses the same folder names.)

# %%
WORKER_SAVE = """
is_chief = strategy.cluster_resolver.task_id == 0
folder, name = os.path.split(checkpoint_path)
if not is_chief:
    folder = os.path.join(folder, f"workertemp_{me}")
written = tf.train.Checkpoint(W=W, b=b).write(os.path.join(folder, name))
if not is_chief:
    tf.io.gfile.rmtree(folder)
np.savez(output, W=W.numpy(), b=b.numpy(), losses=np.array(losses),
         step_seconds=np.array(step_seconds), all_reduce_seconds=all_reduce_seconds)
print(f"worker {me} of {strategy.num_replicas_in_sync}: {len(losses)} steps, "
      f"final loss {losses[-1]:.6f}, wrote {written}{'' if is_chief else ' (deleted)'}")
"""

# %% [markdown]
# The four parts go into one file, next to the batches. The temporary directory is deleted at the end of the
# section; should a cell fail before that, `atexit` deletes it when the kernel (or the script) exits.

# %%
workdir = Path(tempfile.mkdtemp(prefix="gdbook-workers-"))
atexit.register(shutil.rmtree, workdir, ignore_errors=True)
(workdir / "worker.py").write_text(
    WORKER_SETUP + WORKER_STEP + WORKER_TRAIN + WORKER_SAVE
)
np.savez(
    workdir / "batches.npz",
    x=x_train[batches],
    y=y_train[batches],
    learning_rate=LEARNING_RATE,
)
print(sorted(p.name for p in workdir.iterdir()))


# %% [markdown]
# Each worker needs a port. We ask the operating system for free ones (binding to port 0 picks one), then
# write each worker's `TF_CONFIG`: the same cluster, a different task index.


# %%
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tf_configs(workers=2):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)]}
    task = [{"type": "worker", "index": k} for k in range(workers)]
    return [json.dumps({"cluster": cluster, "task": task[k]}) for k in range(workers)]


# the ports change from run to run
print(re.sub(r":\d+", ":<port>", tf_configs()[1]))


# %% [markdown]
# A worker is a Python process running the program in the working directory, with its own `TF_CONFIG` in
# its environment and its output captured.


# %%
def start_worker(program, args, tf_config):
    return subprocess.Popen(
        [sys.executable, program, *args],
        cwd=workdir,
        env={**os.environ, "TF_CONFIG": tf_config},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# %% [markdown]
# The launcher starts one process per worker and waits for all of them, with a deadline measured on the
# clock. It returns each worker's exit code and output; whatever happens (a worker hangs, the deadline passes,
# the cell is interrupted) the `finally` clause kills any worker still running, so no process outlives the
# call.


# %% tags=["nbval-ignore-output"]
def run_workers(program, arguments, deadline_seconds=120):
    """Runs `program` once per entry of `arguments` (a list of argument lists), as
    the workers of one cluster; returns (exit code, stdout, stderr) per worker."""
    configs, workers, results = tf_configs(len(arguments)), [], []
    deadline = time.monotonic() + deadline_seconds
    try:
        for tf_config, args in zip(configs, arguments, strict=True):
            workers.append(start_worker(program, args, tf_config))
        for worker in workers:
            timeout = max(1.0, deadline - time.monotonic())
            stdout, stderr = worker.communicate(timeout=timeout)
            results.append((worker.returncode, stdout.strip(), stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    return results


# %% [markdown]
# Now run them. Paths are relative to the working directory, and the checkpoint's real path is
# `checkpoints/weights`.

# %% tags=["nbval-ignore-output"]
training_results = run_workers(
    "worker.py",
    [["batches.npz", f"out{k}.npz", "checkpoints/weights"] for k in range(2)],
)
for code, stdout, stderr in training_results:
    print(stdout)
    assert code == 0, stderr[-3000:]

# %% [markdown]
# Both workers ran the 30 steps together. Their final weights should be identical to each other (the
# all-reduce hands both the same sum) and equal to the one-device reference to float32 rounding.

# %%
outputs = [np.load(workdir / f"out{k}.npz") for k in range(2)]
final_W, final_b = reference[-1]
workers_identical = all(np.array_equal(outputs[0][v], outputs[1][v]) for v in "Wb")
worker_gap = max(
    max(np.abs(out["W"] - final_W).max(), np.abs(out["b"] - final_b).max())
    for out in outputs
)
worker_loss_gap = np.abs(outputs[0]["losses"] - reference_losses).max()
print(f"the two workers' weights identical: {workers_identical}")
print(
    f"max |worker weights - one-device weights| after {STEPS} steps: {worker_gap:.1e}"
)
print(f"max |worker loss - one-device loss| over the steps: {worker_loss_gap:.1e}")
assert workers_identical and worker_gap < 1e-6 and worker_loss_gap < 1e-6

# %% [markdown]
# Two processes on one machine, talking over loopback, ended with the same weights as one process working
# alone, to float32 rounding.
#
# (ch9-multiworker-checkpoints)=
# ### Checkpoints from several workers
#
# What is left in the checkpoint folder is the chief's checkpoint alone (an index file and one data shard);
# worker 1's temporary folder is gone. Read back into fresh variables, it holds the weights the workers
# trained.

# %%
saved_files = sorted(
    str(p.relative_to(workdir)) for p in (workdir / "checkpoints").rglob("*")
)
print(saved_files)
restored_W, restored_b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
tf.train.Checkpoint(W=restored_W, b=restored_b).read(
    str(workdir / "checkpoints/weights")
)
print(
    "restored equals worker 0's weights:",
    np.array_equal(restored_W.numpy(), outputs[0]["W"]),
)
assert not any("workertemp" in name for name in saved_files)
assert "checkpoints/weights.index" in saved_files
assert np.array_equal(restored_W.numpy(), outputs[0]["W"])
assert np.array_equal(restored_b.numpy(), outputs[0]["b"])

# %% [markdown]
# Keras 3's own callbacks (`ModelCheckpoint`, `BackupAndRestore`) do not make this distinction: every worker
# writes to the path it is given (the Keras 2 versions, in `tf_keras`, did). With several workers on a shared
# filesystem, give each its own folder, or write the checkpoint yourself as above.
#
# ### When a worker falls out of step
#
# An all-reduce is a meeting: it completes only when every worker has arrived with its part. A worker that
# reaches a collective early waits for the others, and as long as they are alive, nothing bounds the wait.
# This is why every worker must run the same number of steps: if one of them has fewer batches (a data file
# split unevenly by hand, a loop that stops on a condition only one worker sees), its peers block in their
# next step, waiting for a partner that is busy elsewhere.
#
# A short worker program shows both halves. Each worker all-reduces the number 1, step after step. After two
# steps, worker 1 idles (alive, but in no collective) for `late_seconds` before its third and last step; then
# it idles again and exits. The first three steps have no time limit, because worker 0 waits in its third
# step for as long as its peer is late, which here is longer than the limit. Worker 0 runs a fourth step,
# with `tf.distribute.experimental.CommunicationOptions(timeout_seconds=...)` passed to the all-reduce.

# %%
OUT_OF_STEP_PROGRAM = """
import json, os, re, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

steps, late_seconds, timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
me = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
limited = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)

def all_reduce_one(options=None):
    context = lambda: tf.distribute.get_replica_context()
    return strategy.run(lambda: context().all_reduce("sum", tf.ones([]), options))

unlimited_step, limited_step = tf.function(all_reduce_one), tf.function(
    lambda: all_reduce_one(limited))
# traced now, so that the timed fourth step does not include the tracing
limited_step.get_concrete_function()
"""

# %% [markdown]
# The loop: on worker 1 the idling comes before its last step, and after that step it idles again before it
# exits, so that worker 0's extra step meets a peer that is alive but never comes. Every step prints how long
# it took; an error is caught, printed with its type and the line of its message that states the cause, and
# the worker exits with code 1.

# %% tags=["nbval-ignore-output"]
OUT_OF_STEP_PROGRAM += """
for k in range(1, steps + 1):
    if me == 1 and k == steps:
        time.sleep(late_seconds)
    step = limited_step if k > 3 else unlimited_step
    start = time.perf_counter()
    try:
        total = float(step())
    except tf.errors.OpError as error:
        waited = time.perf_counter() - start
        lines = [line for line in error.message.splitlines() if line.strip()]
        reason = re.sub(r"[{][{].*?[}][}]", "", lines[-2]).strip()
        name = type(error).__name__
        print(f"worker {me}, step {k}: {name} after {waited:.2f} s:", reason)
        sys.exit(1)
    waited = time.perf_counter() - start
    print(f"worker {me}, step {k}: sum {total:.0f} after {waited:.2f} s")
time.sleep(late_seconds)
print(f"worker {me}: done")
"""
_ = (workdir / "out_of_step.py").write_text(OUT_OF_STEP_PROGRAM)

# %% [markdown]
# Worker 0 is given four steps and worker 1 three; worker 1 is late by 3 s, and the time limit is 1.5 s. The
# launcher's deadline bounds the whole run, whatever the workers do.

# %% tags=["nbval-ignore-output"]
LATE_SECONDS, TIMEOUT_SECONDS = 3.0, 1.5
# the late step must be unlimited: its wait would exceed the limit
assert LATE_SECONDS > TIMEOUT_SECONDS
started = time.monotonic()
out_of_step = run_workers(
    "out_of_step.py",
    [[str(steps), str(LATE_SECONDS), str(TIMEOUT_SECONDS)] for steps in (4, 3)],
    deadline_seconds=90,
)
print(f"both workers finished after {time.monotonic() - started:.1f} s (with start-up)")
for code, stdout, _ in out_of_step:
    print(f"exit code {code}:\n{stdout}")

# %% [markdown]
# Worker 0's third step took as long as its peer was late: it simply waited. Its fourth step met no partner,
# and after the time limit the all-reduce raised `DeadlineExceededError`, "Collective has timed out during
# execution"; the program caught it, printed it and called `sys.exit(1)`: a clear message instead of a silent
# hang.

# %% tags=["nbval-ignore-output"]
(code_0, stdout_0, _), (_, stdout_1, _) = out_of_step
lines_0 = stdout_0.splitlines()
waited_third = float(re.search(r"after ([\d.]+) s", lines_0[2]).group(1))
waited_fourth = float(re.search(r"after ([\d.]+) s", lines_0[3]).group(1))
print(
    f"worker 0 waited {waited_third:.2f} s in step 3, {waited_fourth:.2f} s in step 4"
)
assert code_0 == 1 and len(lines_0) == 4
assert LATE_SECONDS - 0.5 < waited_third < LATE_SECONDS + 2
assert "DeadlineExceededError" in lines_0[3]
assert "Collective has timed out during execution" in lines_0[3]
assert TIMEOUT_SECONDS <= waited_fourth < TIMEOUT_SECONDS + 3
assert stdout_1.splitlines()[-1] == "worker 1: done"


# %% [markdown]
# Without the limit, worker 0 would wait in its fourth step for as long as worker 1 lives. (If the peer
# process exits or dies instead, the coordination service that `MultiWorkerMirroredStrategy` sets up stops
# receiving its heartbeats, notices it after a while, and the blocked collective fails with
# `UnavailableError`: "The following tasks are unhealthy (stopped sending heartbeats)".) The TensorFlow
# documentation recommends the time limit for debugging only, because it starts a thread for every
# collective; in production the cure is the rule above: every worker runs the same number of steps. For a
# finite dataset iterated to its end, a dataset distributed by the strategy arranges that: in multi-worker
# mode its iterator first asks all workers whether any of them still has data (an all-reduce of its own) and
# hands empty batches to those that have run out. It does not do so for an endless (`.repeat()`) dataset run
# for a fixed number of steps, where every worker must count the same steps, and nothing does it for a loop
# that stops on a condition only one worker sees.
#
# ### Surviving an interruption: `BackupAndRestore`
#
# A job on many machines is interrupted sooner or later: a machine is preempted, a process is killed. The
# workers cannot carry on without the missing one (the previous section showed what waiting for it looks like);
# the job is restarted, and training should resume where it stopped instead of from the beginning. Keras'
# `keras.callbacks.BackupAndRestore(backup_dir)` does this for `fit`: at the end of every epoch it writes the
# model's weights and the optimizer's state to `latest.weights.h5` and the epoch number to
# `training_metadata.json` in `backup_dir`; a later `fit` with a `BackupAndRestore` on the same folder restores
# both and skips the epochs already done; a run that completes deletes the folder. We try it on one machine,
# with two replicas, on the model of the Keras section, now with random initial weights and with momentum (so
# that the optimizer has state of its own to lose), for four epochs over the 30 batches. First the uninterrupted
# run:


# %%
def momentum_model():
    with mirrored_strategy(2).scope():
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    return model


def fit_epochs(model, callbacks=(), epochs=4):
    fit_arguments = {"batch_size": GLOBAL_BATCH, "shuffle": False, "verbose": 0}
    return model.fit(
        x_ordered, y_ordered, epochs=epochs, callbacks=list(callbacks), **fit_arguments
    )


keras.utils.set_random_seed(7)
uninterrupted = momentum_model()
uninterrupted_history = fit_epochs(uninterrupted)
print(
    "uninterrupted, loss per epoch:", np.round(uninterrupted_history.history["loss"], 4)
)


# %% [markdown]
# Now the same training, with the backup, stopped by a callback that raises after the second epoch (a
# stand-in for the process being killed; the backup of that epoch is written first, because callbacks run in
# the order given).


# %%
class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError(f"interrupted after epoch {epoch + 1}")


backup_root = Path(tempfile.mkdtemp(prefix="gdbook-backup-"))
atexit.register(shutil.rmtree, backup_root, ignore_errors=True)
backup_dir = backup_root / "backup"
keras.utils.set_random_seed(7)
with gdbook.expect_error(RuntimeError, reraise=False) as interruption:
    fit_epochs(
        momentum_model(), [keras.callbacks.BackupAndRestore(backup_dir), Interrupt()]
    )
backup_metadata = json.loads((backup_dir / "training_metadata.json").read_text())
print("backup:", sorted(p.name for p in backup_dir.iterdir()), backup_metadata)
assert "interrupted after epoch 2" in interruption.message
assert backup_metadata["epoch"] == 2

# %% [markdown]
# The restart: a new model, as a new process would build it, with other initial weights (another seed), and a
# new `BackupAndRestore` on the same folder.

# %%
keras.utils.set_random_seed(8)
resumed = momentum_model()
resumed_history = fit_epochs(resumed, [keras.callbacks.BackupAndRestore(backup_dir)])
print("resumed, loss per epoch:", np.round(resumed_history.history["loss"], 4))
resume_gaps = [
    np.abs(a.numpy() - b.numpy()).max()
    for a, b in zip(
        resumed.weights + resumed.optimizer.variables,
        uninterrupted.weights + uninterrupted.optimizer.variables,
        strict=True,
    )
]
print(
    "max |resumed - uninterrupted| over weights and optimizer state: "
    f"{max(resume_gaps)}"
)
print("backup folder deleted at the end:", not backup_dir.exists())
try:
    assert len(resumed_history.history["loss"]) == 2 and not backup_dir.exists()
    assert resumed_history.history["loss"] == uninterrupted_history.history["loss"][2:]
    assert max(resume_gaps) == 0.0
finally:
    shutil.rmtree(backup_root, ignore_errors=True)


# %% [markdown]
# The restarted `fit` ran only epochs 3 and 4, and ended with weights and optimizer state *bit for bit* equal
# to those of the uninterrupted run, not merely equal to float32 rounding: the backup stores the float32
# values exactly, the batches come in the same order (`shuffle=False`; with shuffling, the order after a
# restart need not be the one the uninterrupted run drew), and with deterministic kernels the same operations
# on the same numbers give the same bits. Three cautions. With several workers on a shared filesystem, every
# worker must get its own `backup_dir`: Keras 3 writes to the folder it is given on every worker, as
# {ref}`ch9-multiworker-checkpoints` noted. The backup is only as fresh as its last save: `save_freq=k`
# saves every $k$ batches, but a restart still begins at the start of the saved epoch (Keras 3 records the
# batch in the metadata and does not skip to it), so the batches of that epoch seen before the backup are
# applied a second time, and the result is no longer that of an uninterrupted run. And with `save_freq=k`,
# the installed Keras 3 counts epochs from 0 in every new `fit` and does not take the count from the metadata
# it restores: a save within the first epoch after a restart writes `"epoch": 0`, and a second interruption
# there sends the next restart back to the first epoch, with weights already trained.
#
# ### What an all-reduce costs
#
# Does data parallelism pay? Per step, one device computes the gradient of the whole batch; $N$ workers each
# compute the gradient of a shard and then all-reduce it. Between workers, `MultiWorkerMirroredStrategy` on
# CPUs uses a **ring** {cite:p}`patarasuk2009` (NCCL on GPUs uses rings too, among other patterns): the
# workers form a circle, each cuts its gradient of $S$ bytes into $N$ pieces, and in $N - 1$ rounds each
# passes one piece to its neighbour, which adds its own part and passes it on (a *reduce-scatter*, after
# which each worker holds the complete sum of one piece); $N - 1$ more rounds pass the summed pieces around
# the circle (an *all-gather*). Each worker sends $2(N - 1)$ pieces of $S/N$ bytes, and with a latency $a$
# per round and a time $\beta$ per byte (the literature writes $\alpha$ for the latency; here $\alpha$ is
# the learning rate) that takes
#
# $$
# t_{\text{all-reduce}} \approx 2(N - 1)\, a + \frac{2(N - 1)}{N} \, S \beta,
# \qquad
# t_N \approx t_{\text{compute}}(B / N) + t_{\text{all-reduce}}.
# $$ (eq-devices-ring-cost)
#
# The bytes each worker sends barely grow with $N$ (they approach $2S$), which is why the ring scales; the
# latency term, though, grows with $N$.
# Data parallelism pays when $t_N < t_1$, that is when the compute time the workers save,
# $t_{\text{compute}}(B) - t_{\text{compute}}(B/N)$, exceeds the time of the all-reduce. The two workers
# measured each step of the training run and, after each, bare all-reduces of one number, of the
# gradient's size (7850 float32 numbers, $S$ = 31.4 kB) and of 2²¹ numbers (8.4 MB). On one device we time
# the same step on the global batch, on a shard and on all 6000 images:


# %% tags=["nbval-ignore-output"]
def median_step_seconds(batch_size, repeats=60):
    """Median time of one compiled gradient step on `batch_size` images."""
    W, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
    x, y = tf.constant(x_train[:batch_size]), tf.constant(y_train[:batch_size])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_example_loss(W, b, x, y))
        grad_W, grad_b = tape.gradient(loss, [W, b])
        W.assign_sub(LEARNING_RATE * grad_W)
        b.assign_sub(LEARNING_RATE * grad_b)
        return loss

    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        float(step())
        times.append(time.perf_counter() - start)
    return np.median(times[1:])


compute_seconds = {size: median_step_seconds(size) for size in (48, 96, 6000)}
print({size: f"{seconds * 1e3:.2f} ms" for size, seconds in compute_seconds.items()})

# %% [markdown]
# The workers' numbers. An all-reduce of a single number has almost no bytes to move, so its time is the
# **fixed cost per collective**: the rounds' latency $2(N - 1)\,a$ plus software overhead, since it is
# timed from Python (the call of the `tf.function`, `strategy.run`, the collective executor's bookkeeping
# and messages, the copy of the result with `.numpy()`). The difference between the largest and the smallest
# all-reduce, divided by the extra bytes, gives $\beta$, an **effective cost per byte over loopback**: it
# includes the probe's `t + 0.0`, the additions, copies and serialization, and is no link's speed. A training
# step holds two collectives, not one: the all-reduce of the gradients (TensorFlow packs $W$ and
# $\mathbf{b}$ into one message of 7850 numbers) and the `strategy.reduce` of the loss (one number). So the
# model predicts a two-worker step to take the compute time of a 48-image shard plus those two all-reduces.
# The three are timed as separate calls, each paying its own dispatch from Python, while the measured step
# is one call that pays it once: the prediction counts that overhead three times.

# %% tags=["nbval-ignore-output"]
gradient_bytes, large_bytes = 7850 * 4, 2**21 * 4
one_number, gradient_reduce, large_reduce = np.max(
    [np.median(out["all_reduce_seconds"][1:], axis=0) for out in outputs], axis=0
)
# beta, the time per byte; 2(N - 1)/N = 1 for N = 2
beta = (large_reduce - one_number) / (large_bytes - 4)
measured_two = np.median(np.concatenate([out["step_seconds"][1:] for out in outputs]))
predicted_two = compute_seconds[48] + gradient_reduce + one_number
for label, seconds in [
    ("all-reduce of one number (fixed cost)", one_number),
    (f"all-reduce of the gradient, {gradient_bytes / 1e3:.1f} kB", gradient_reduce),
    (f"all-reduce of {large_bytes / 1e6:.1f} MB", large_reduce),
    ("bytes part of the gradient's all-reduce, S beta", gradient_bytes * beta),
    ("one device, B = 96, per step", compute_seconds[96]),
    ("two workers per step, predicted", predicted_two),
    ("two workers per step, measured", measured_two),
]:
    print(f"{label}: {seconds * 1e3:.3f} ms")
throughput = 1 / beta / 1e9
print(f"beta over loopback: {beta * 1e9:.2f} ns/byte, 1/beta = {throughput:.2f} GB/s")

# %% [markdown]
# Whether data parallelism could pay for this model follows from the same numbers: the compute time grows by
# about $c$ seconds per image (from the step on 6000 images), the workers save half of it, and the step's
# collectives cost a fixed time; the break-even global batch is where the saving equals that time.

# %% tags=["nbval-ignore-output"]
seconds_per_image = (compute_seconds[6000] - compute_seconds[96]) / (6000 - 96)
break_even = (gradient_reduce + one_number) / (seconds_per_image / 2)
print(
    f"compute per image {seconds_per_image * 1e6:.2f} us; two workers pay above B = "
    f"{break_even:.0f}"
)
for name, value in [
    ("one_number", one_number * 1e3),
    ("bytes_part", gradient_bytes * beta * 1e3),
    ("gradient", gradient_reduce * 1e3),
    ("throughput", throughput),
    ("predicted", predicted_two * 1e3),
    ("measured", measured_two * 1e3),
    ("one_device", compute_seconds[96] * 1e3),
    ("break_even", break_even),
    ("slowdown", measured_two / compute_seconds[96]),
]:
    glue(f"ch9_cost_{name}", float(value), display=False)
assert gradient_bytes * beta < 0.25 * one_number
assert 0.5 < measured_two / predicted_two < 2
assert measured_two > 2 * compute_seconds[96] and break_even > 6 * GLOBAL_BATCH

# %% [markdown]
# The all-reduce of the gradient took {glue:text}`ch9_cost_gradient:.1f` ms, that of a single number
# {glue:text}`ch9_cost_one_number:.1f` ms. At the effective cost per byte measured over loopback
# ($1/\beta$ = {glue:text}`ch9_cost_throughput:.2f` GB/s), the 31.4 kB of the gradient account for only
# {glue:text}`ch9_cost_bytes_part:.2f` ms of that (less than a quarter of the fixed cost, as asserted): for a
# gradient this small, the bytes of {eq}`eq-devices-ring-cost` hardly matter. The step pays the fixed cost
# once per collective, and packing the gradients into one message is what keeps it at two collectives. The
# model predicted {glue:text}`ch9_cost_predicted:.1f` ms per two-worker step; the workers measured
# {glue:text}`ch9_cost_measured:.1f` ms (within a factor of 2 is all we assert on a shared machine), against
# {glue:text}`ch9_cost_one_device:.2f` ms for the whole batch on one device. For softmax regression on
# batches of 96, two workers are far slower than one device (here {glue:text}`ch9_cost_slowdown:.0f`×;
# asserted > 2×): the prediction says they would pay only above a global batch of about
# {glue:text}`ch9_cost_break_even:.0f` images. That threshold assumes each worker has as many cores as the
# single device had. Here both workers share the two cores that the single device already uses for a large
# batch, so on this machine data parallelism would not pay at any batch size; the agreement we can check is
# that of the step times. For a large model the balance shifts: the compute per image grows with the number
# of parameters, and so do the bytes, but the fixed cost does not; and past a few megabytes per step, the
# bytes term, at most $2S\beta$, sets the price.
#
# With the measurements done, the temporary directory goes.

# %%
shutil.rmtree(workdir)
print("temporary directory still there:", workdir.exists())
assert not workdir.exists()

# %% [markdown]
# ## Large batches
#
# For a model like this one, data parallelism changes nothing in the algorithm, but it invites a change in how
# the algorithm is *used*. With $N$ replicas, each keeping its own per-device batch of $b$ images, the global
# batch becomes $B = N b$. An epoch then takes $N$ times fewer steps; if the learning rate stays the same,
# training per epoch slows down, because each step moves the weights about as far as before but there are fewer
# steps.
#
# The **linear scaling rule** {cite:p}`goyal2017` says: when the batch grows $N$-fold, grow the learning rate
# $N$-fold. The argument compares $N$ small steps with one large one. $N$ consecutive steps of size $\alpha$ on
# batches $\mathcal{B}_1, \dots, \mathcal{B}_N$ of $b$ images move the weights by
# $-\alpha \sum_j \nabla L_{\mathcal{B}_j}(\theta_{t+j})$; one step of size $N\alpha$ on their union moves them
# by $-N\alpha \cdot \frac{1}{N} \sum_j \nabla L_{\mathcal{B}_j}(\theta_t)$. The two agree if
#
# $$
# \nabla L_{\mathcal{B}_j}(\theta_{t+j}) \approx \nabla L_{\mathcal{B}_j}(\theta_t), \qquad j = 1, \dots, N,
# $$ (eq-devices-linear-scaling)
#
# that is, if the gradient changes little over $N$ small steps. That fails early in training, when the weights
# and gradients change fast, and it fails for any step too large for the curvature. The remedy of
# {cite:t}`goyal2017` is **warm-up**: start from the small learning rate and raise it linearly to $N\alpha$ over
# the first epochs.
#
# Having checked that $N$ replicas with global batch $B$ compute what one device computes with batch $B$, we
# can study large batches on one device. The runs below train softmax regression for 3 epochs on 12000
# images with per-replica batch $b = 50$ and base learning rate $\alpha = 0.1$, for $N = 1, 4, 16$ replicas
# ($B = 50, 200, 800$), under three rules: the same learning rate $\alpha$; the linear rule $N\alpha$; and $N\alpha$
# reached by a linear warm-up over the first epoch. The loss on 2000 test images is measured every 800 images
# seen, so that all curves share one horizontal axis, and the weights are kept at each measurement for later.
# Each run is repeated with three seeds for the order of the batches. To be fast, a whole run is one
# `tf.function`.

# %%
x_large, y_large = (
    tf.constant(mnist.x_train[:12000]),
    tf.constant(mnist.y_train[:12000].astype(np.int64)),
)
x_held_out, y_held_out = (
    tf.constant(mnist.x_test[:2000]),
    tf.constant(mnist.y_test[:2000].astype(np.int64)),
)
PER_REPLICA_BATCH, BASE_RATE, EPOCHS, MEASURE_EVERY = 50, 0.1, 3, 800


def mean_loss(W, b, x, y):
    return tf.reduce_mean(per_example_loss(W, b, x, y))


# %% [markdown]
# A whole run is one compiled function: it takes the batches' indices and the learning rate of every step,
# and keeps the held-out loss and the weights every `measure_every_steps` steps.


# %%
@tf.function(reduce_retracing=True)
def train_run(batch_ids, rates, measure_every_steps):
    """Gradient descent from zero weights. Returns the held-out loss at the start and
    after every measure_every_steps steps, and the weights W, b at those steps."""
    W, b = tf.zeros([784, 10]), tf.zeros([10])
    measured, W_saved, b_saved = (
        tf.TensorArray(tf.float32, size=0, dynamic_size=True) for _ in range(3)
    )
    measured = measured.write(0, mean_loss(W, b, x_held_out, y_held_out))
    for s in tf.range(tf.shape(batch_ids)[0]):
        x, y = tf.gather(x_large, batch_ids[s]), tf.gather(y_large, batch_ids[s])
        with tf.GradientTape() as tape:
            tape.watch([W, b])
            loss = mean_loss(W, b, x, y)
        grad_W, grad_b = tape.gradient(loss, [W, b])
        W, b = W - rates[s] * grad_W, b - rates[s] * grad_b
        if (s + 1) % measure_every_steps == 0:
            held_out_loss = mean_loss(W, b, x_held_out, y_held_out)
            measured = measured.write(measured.size(), held_out_loss)
            W_saved = W_saved.write(W_saved.size(), W)
            b_saved = b_saved.write(b_saved.size(), b)
    return measured.stack(), W_saved.stack(), b_saved.stack()


# %% [markdown]
# The three rules give the learning rate of every step:


# %%
def learning_rates(rule, replicas, steps):
    steps_per_epoch = steps // EPOCHS
    if rule == "same rate":
        return np.full(steps, BASE_RATE)
    if rule == "linear scaling":
        return np.full(steps, BASE_RATE * replicas)
    # "linear scaling + warm-up": from BASE_RATE * replicas / steps_per_epoch
    # up to BASE_RATE * replicas
    return (
        BASE_RATE
        * replicas
        * np.minimum(1.0, np.arange(1, steps + 1) / steps_per_epoch)
    )


# %% [markdown]
# Twenty-seven runs: three rules, three replica counts, three seeds. For each run we keep the curve, and
# the weights and learning rate at every measurement.

# %%
rules = ["same rate", "linear scaling", "linear scaling + warm-up"]
replica_counts, seeds = [1, 4, 16], [1, 2, 3]
curves, snapshots = {}, {}
for replicas, seed in itertools.product(replica_counts, seeds):
    global_batch = PER_REPLICA_BATCH * replicas
    steps, every = EPOCHS * 12000 // global_batch, MEASURE_EVERY // global_batch
    ids = tf.constant(batch_indices(12000, global_batch, steps, seed=seed))
    for rule in rules:
        rates = learning_rates(rule, replicas, steps)
        curve, W_saved, b_saved = train_run(
            ids, tf.constant(rates, tf.float32), tf.constant(every)
        )
        curves[rule, replicas, seed] = curve.numpy()
        snapshots[rule, replicas, seed] = (W_saved, b_saved, rates[every - 1 :: every])

# %% [markdown]
# The final held-out losses, mean and standard deviation over the seeds:

# %%
images_seen = MEASURE_EVERY * np.arange(len(curves["same rate", 1, 1]))
print(f"{len(curves)} runs, {len(images_seen)} measurements each")
print(f"final held-out loss, mean ± sd over seeds {seeds}:")
for rule in rules:
    finals = [[curves[rule, n, seed][-1] for seed in seeds] for n in replica_counts]
    print(
        f"{rule:>26} "
        + "  ".join(
            f"N={n}: {np.mean(f):.4f} ± {np.std(f):.4f}"
            for n, f in zip(replica_counts, finals, strict=True)
        )
    )

# %% [markdown]
# {numref}`fig-devices-large-batch` plots them, one line per seed.

# %% mystnb={"figure": {"caption": "Held-out loss of softmax regression against the number of training images seen, when the global batch grows with the number of replicas $N$ (per-replica batch 50), three seeds each. Left, the learning rate is kept at 0.1; middle, it is scaled to $0.1 N$; right, it is scaled to $0.1 N$ after a linear warm-up over the first epoch. The dotted line is the initial loss $\\ln 10$. In the middle and right panels the curves of $N = 1$ and $N = 4$ lie on top of each other.", "name": "fig-devices-large-batch"}}
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), sharey=True)
for ax, rule in zip(axes, rules, strict=True):
    for color, replicas in zip(["C0", "C1", "C2"], replica_counts, strict=True):
        for seed in seeds:
            ax.plot(
                images_seen,
                curves[rule, replicas, seed],
                color=color,
                lw=1,
                label=f"N = {replicas} (B = {PER_REPLICA_BATCH * replicas})"
                if seed == seeds[0]
                else None,
            )
    ax.axhline(np.log(10), color="0.5", ls=":", lw=1)
    ax.set_title(rule)
    ax.set_xlabel("training images seen")
    ax.set_ylim(0.3, 5.6)
axes[0].set_ylabel("held-out loss")
axes[0].legend()
plt.show()


# %% [markdown]
# Four things are visible, and the next cell checks each of them on every seed.


# %%
def over_seeds(statistic):
    return np.array([statistic(seed) for seed in seeds])


final = {key: curve[-1] for key, curve in curves.items()}
peak = {key: curve[1:].max() for key, curve in curves.items()}
ratio_16_to_1 = over_seeds(
    lambda s: final["same rate", 16, s] / final["same rate", 1, s]
)
gap_4_to_1 = over_seeds(
    lambda s: max(
        np.abs(curves[rule, 4, s] - curves[rule, 1, s]).max() for rule in rules[1:]
    )
)
peak_ratio = over_seeds(lambda s: peak["linear scaling", 16, s] / np.log(10))
overshoot_kept = over_seeds(
    lambda s: (
        (peak["linear scaling + warm-up", 16, s] - np.log(10))
        / (peak["linear scaling", 16, s] - np.log(10))
    )
)
print("same rate, final loss N = 16 / N = 1:", np.round(ratio_16_to_1, 3))
print("largest |N = 4 - N = 1| along the scaled curves:", np.round(gap_4_to_1, 4))
print("linear scaling, N = 16, peak / ln 10:", np.round(peak_ratio, 2))
print("warm-up overshoot / no-warm-up overshoot, N = 16:", np.round(overshoot_kept, 3))

# %% [markdown]
# The numbers the text below quotes, and the four checks:

# %%
for name, value in [
    ("ratio_min", ratio_16_to_1.min()),
    ("ratio_max", ratio_16_to_1.max()),
    ("gap_max", gap_4_to_1.max()),
    ("peak_min", peak_ratio.min()),
    ("peak_max", peak_ratio.max()),
    ("kept_max", overshoot_kept.max()),
]:
    glue(f"ch9_lb_{name}", float(value), display=False)
# 1. Same learning rate: bigger batches, fewer steps, slower progress per image seen.
assert all(
    final["same rate", 1, s] < final["same rate", 4, s] < final["same rate", 16, s]
    for s in seeds
)
assert all(np.round(ratio_16_to_1, 1) == 2.0)
# 2. Linear scaling: N = 4 retraces N = 1.
assert gap_4_to_1.max() < 0.05
# 3. Linear scaling, N = 16: the first steps overshoot far above the start.
assert peak_ratio.min() > 1.5
# 4. Warm-up keeps a small part of the overshoot.
assert overshoot_kept.max() < 0.2

# %% [markdown]
# With the learning rate unchanged, the same number of images buys less progress as the batch grows: at
# $N = 16$ the final loss is about twice that of $N = 1$ (the ratio lies between
# {glue:text}`ch9_lb_ratio_min:.2f` and {glue:text}`ch9_lb_ratio_max:.2f` over the seeds). With the linear rule,
# $N = 4$ retraces the curve of $N = 1$: the two never differ by more than {glue:text}`ch9_lb_gap_max:.3f`,
# since at these learning rates the gradient changes little over four small steps, and
# {eq}`eq-devices-linear-scaling` holds. At $N = 16$ the learning rate $1.6$ makes the first steps overshoot,
# and the loss climbs to {glue:text}`ch9_lb_peak_min:.1f` to {glue:text}`ch9_lb_peak_max:.1f` times its starting
# value before it comes down. Warm-up keeps at most {glue:text}`ch9_lb_kept_max:.0%` of that overshoot.
#
# But look at the right panel once more: as the warm-up approaches $1.6$, towards the end of the first
# epoch, the loss jumps up again, and in both $N = 16$ runs it keeps rising and falling for the rest of
# training, which the $N = 4$ runs never do. We count, after the first epoch, the measurements at which the
# held-out loss went *up* by more than $0.05$ since the previous one:

# %%
after_first_epoch = 12000 // MEASURE_EVERY
rises = {
    (rule, n, s): int((np.diff(curves[rule, n, s][after_first_epoch:]) > 0.05).sum())
    for rule in rules[1:]
    for n in (4, 16)
    for s in seeds
}
for rule in rules[1:]:
    for n in (4, 16):
        print(
            f"{rule:>25}, N = {n:2}: rises per seed", [rises[rule, n, s] for s in seeds]
        )

# %% [markdown]
# For the $N = 16$ runs with warm-up, also the largest rise during the first epoch, and where it comes:

# %%
rises_16 = [rises[rule, 16, s] for rule in rules[1:] for s in seeds]
warm_up_jump = over_seeds(
    lambda s: np.diff(curves[rules[2], 16, s][: after_first_epoch + 1]).max()
)
warm_up_jump_step = over_seeds(
    lambda s: 1 + np.diff(curves[rules[2], 16, s][: after_first_epoch + 1]).argmax()
)
print(
    "N = 16 with warm-up, largest rise in the first epoch:",
    np.round(warm_up_jump, 3),
    f"after step {warm_up_jump_step} of {after_first_epoch}",
)
glue("ch9_lb_rises_min", min(rises_16), display=False)
glue("ch9_lb_rises_max", max(rises_16), display=False)
assert min(rises_16) >= 2 and warm_up_jump.min() > 0.05
# the jump comes in the second half of the warm-up (rate above 0.8)
assert all(warm_up_jump_step > after_first_epoch // 2)
assert all(rises[rule, 4, s] == 0 for rule in rules[1:] for s in seeds)

# %% [markdown]
# Every $N = 16$ run, with or without warm-up, jumps up {glue:text}`ch9_lb_rises_min` to
# {glue:text}`ch9_lb_rises_max` times after its first epoch; no $N = 4$ run does. Something limits the
# step for the whole run, not only at the start.
#
# That something is the curvature. Gradient descent on a quadratic is stable only for
# $\alpha < 2 / \lambda_{\max}$, with $\lambda_{\max}$ the largest eigenvalue of the Hessian
# ({eq}`eq-gradient-stable-step`). At zero weights softmax regression has a Hessian we can write down:
# with all probabilities $1/10$, it is
# $\bigl(\tfrac{1}{10} I - \tfrac{1}{100} \mathbf{1}\mathbf{1}^\top\bigr) \otimes \mathbb{E}[\tilde{\mathbf{x}} \tilde{\mathbf{x}}^\top]$,
# where $\tilde{\mathbf{x}} = (\mathbf{x}, 1)$ appends the bias input. The first factor has eigenvalues
# $1/10$ and $0$, so
#
# $$
# \lambda_{\max}(\theta = 0) = \tfrac{1}{10} \, \lambda_{\max}\bigl(\mathbb{E}[\tilde{\mathbf{x}} \tilde{\mathbf{x}}^\top]\bigr).
# $$ (eq-devices-curvature)

# %%
x_augmented = np.hstack(
    [mnist.x_train[:12000], np.ones((12000, 1), np.float32)]
).astype(np.float64)
second_moment = x_augmented.T @ x_augmented / len(x_augmented)
curvature_at_start = np.linalg.eigvalsh(second_moment).max() / 10
largest_stable_rate = 2 / curvature_at_start
parameter_count = 784 * 10 + 10
print(
    f"largest curvature at zero weights: {curvature_at_start:.4f}; stable learning "
    f"rates below {largest_stable_rate:.4f}; parameters: {parameter_count}"
)
assert BASE_RATE * 4 < largest_stable_rate < BASE_RATE * 16
assert round(largest_stable_rate, 1) == 0.5

# %% [markdown]
# The largest stable learning rate at the start, about $0.5$, lies between the linearly scaled rates for
# $N = 4$ ($0.4$) and $N = 16$ ($1.6$): the blow-up at the start of the $N = 16$ run is predicted. Away from
# zero there is no closed form, but the largest eigenvalue can be measured without ever forming the
# $7850 \times 7850$ Hessian: **power iteration** multiplies a vector by the Hessian again and again, and
# TensorFlow computes a Hessian-vector product as the forward-mode derivative (`ForwardAccumulator`) of the
# reverse-mode gradient (`GradientTape`) {cite:p}`pearlmutter1994`; both are written in
# {ref}`ch-softmax` and imported here from the book's package (`gdbook.curvature`). Power iteration's estimate, the Rayleigh
# quotient $\mathbf{v}^\top H \mathbf{v}$ of a unit vector, can never exceed $\lambda_{\max}$, and since the
# Hessian of this convex loss has no negative eigenvalues the iteration converges to $\lambda_{\max}$ itself; `sharpness` can continue from the vector of an earlier call, which saves iterations when the
# weights have changed little. First we check it against {eq}`eq-devices-curvature` at zero.

# %%
from gdbook.curvature import hessian_vector_product, power_iteration


def large_batch_loss(W, b):
    return mean_loss(W, b, x_large, y_large)


# One compiled product for the whole chapter: the loss function is always the same object.
compiled_hvp = tf.function(hessian_vector_product)


def sharpness(W, b, iterations=50, start=None):
    """The largest Hessian eigenvalue of the training loss at (W, b), by power
    iteration from a random vector or from `start`; returns it and the last vector.
    """
    params = [tf.convert_to_tensor(W), tf.convert_to_tensor(b)]
    estimates, vector = power_iteration(
        lambda v: compiled_hvp(large_batch_loss, params, v),
        [tuple(params[0].shape), tuple(params[1].shape)],
        iterations,
        start=None if start is None else list(start),
    )
    return float(estimates[-1]), vector


# %% [markdown]
# At zero weights, against the closed form:

# %%
at_zero, _ = sharpness(tf.zeros([784, 10]), tf.zeros([10]))
print(
    f"power iteration at zero weights: {at_zero:.4f} (closed form "
    f"{curvature_at_start:.4f})"
)
assert abs(at_zero - curvature_at_start) < 1e-3 * curvature_at_start

# %% [markdown]
# The power iteration reproduces the closed form. Now the quantity that decides stability, the product
# $\alpha_t \lambda_{\max}(\theta_t)$ of the learning rate in force and the sharpness: below 2 a quadratic
# model of the loss is stable, above 2 it is not. We measure it along both $N = 16$ runs, for every seed,
# after steps 9, 18, 27, 36 and 45 (the last), each measurement continuing from the previous vector, with
# more iterations at the last step.

# %%
measured_steps = [9, 18, 27, 36, 45]
along_run = {}
for rule, seed in itertools.product(rules[1:], seeds):
    W_saved, b_saved, rates = snapshots[rule, 16, seed]
    vector, products = None, []
    for step in measured_steps:
        iterations = 20 if vector is None else 24 if step == measured_steps[-1] else 6
        curvature, vector = sharpness(
            W_saved[step - 1], b_saved[step - 1], iterations, vector
        )
        products.append((rates[step - 1] * curvature, curvature))
    along_run[rule, seed] = np.array(products)
    print(
        f"{rule:>25}, seed {seed}: rate x sharpness",
        np.round(along_run[rule, seed][:, 0], 2),
    )

# %% [markdown]
# {numref}`fig-devices-edge` shows the products.

# %% mystnb={"figure": {"caption": "The learning rate in force times the sharpness $\\lambda_{\\max}$ of the training loss, along the $N = 16$ runs (three seeds each). Above the dashed line at 2, a quadratic model of the loss is unstable for that step.", "name": "fig-devices-edge"}}
fig, ax = plt.subplots(figsize=(6.6, 3.4))
for color, rule in zip(["C1", "C2"], rules[1:], strict=True):
    for seed in seeds:
        ax.plot(
            measured_steps,
            along_run[rule, seed][:, 0],
            "o-",
            color=color,
            ms=3,
            label=rule if seed == seeds[0] else None,
        )
ax.axhline(2, color="0.5", ls="--", lw=1)
ax.set_xlabel("step (N = 16, 15 steps per epoch)")
ax.set_ylabel("learning rate x sharpness")
ax.legend()
plt.show()

# %% [markdown]
# Three facts, checked on all six runs:

# %%
products = np.array([along_run[key][:, 0] for key in along_run])
curvatures = np.array([along_run[key][:, 1] for key in along_run])
above_two = int((products[:, :-1] > 2).sum())
end_sharpness_4 = over_seeds(
    lambda s: sharpness(*[a[-1] for a in snapshots["linear scaling", 4, s][:2]], 20)[0]
)
print(f"steps 9-36: above 2 at {above_two} of {products[:, :-1].size} measurements")
print("at step 45:", np.round(products[:, -1], 2))
print(
    f"sharpness at step 9: {curvatures[:, 0].min():.2f} to "
    f"{curvatures[:, 0].max():.2f},"
    f" at the end: {curvatures[:, -1].min():.2f} to {curvatures[:, -1].max():.2f}"
)
print(
    "end sharpness of the N = 4 linear runs:",
    np.round(end_sharpness_4, 2),
    "| rate x sharpness:",
    np.round(0.4 * end_sharpness_4, 2),
)

# %% [markdown]
# The numbers the text quotes, and the checks of the three facts:

# %%
for name, value in [
    ("above", above_two),
    ("count", products[:, :-1].size),
    ("end_min", products[:, -1].min()),
    ("end_max", products[:, -1].max()),
    ("n4_max", 0.4 * end_sharpness_4.max()),
]:
    glue(f"ch9_eos_{name}", float(value), display=False)
assert above_two > products[:, :-1].size / 2 and np.all(products[:, 0] > 2)
assert np.all(np.abs(products[:, -1] - 2) < 0.25)
assert curvatures[:, -1].max() < curvatures[:, 0].min()
assert (
    curvatures[:, -1].max() < end_sharpness_4.min() and 0.4 * end_sharpness_4.max() < 1
)

# %% [markdown]
# First, the $N = 16$ runs are not stable in the quadratic sense for most of their course: over steps 9 to
# 36 the product is above 2 at {glue:text}`ch9_eos_above:.0f` of the {glue:text}`ch9_eos_count:.0f`
# measurements of the six runs, and at step 9 in every one of them (and
# since power iteration approaches $\lambda_{\max}$ from below, those products are if anything too small).
# Each time the iterates sit where the loss is sharper than $2/\alpha$, they are thrown out along the sharp
# direction: a rise of the loss in {numref}`fig-devices-large-batch`. Second, these ejections carry them to flatter places: the sharpness falls
# during every run, and ends lower than the sharpness at the end of the stable $N = 4$ runs (whose product is at most
# {glue:text}`ch9_eos_n4_max:.2f`). Third, by the last step the fall has reached the edge: after it the product lies between
# {glue:text}`ch9_eos_end_min:.2f` and {glue:text}`ch9_eos_end_max:.2f`, close to 2. The run does not stay at a
# safe distance from the stability limit; it is pushed down to it and ends there. Full-batch gradient descent on
# neural networks ends at this edge too, though it reaches it from the other side: there the sharpness
# *rises* during training until it meets $2/\alpha$, and then hovers there {cite:p}`cohen2021`. In short: the linear scaling rule is
# an approximation {eq}`eq-devices-linear-scaling` that holds while the scaled step stays well below
# $2/\lambda_{\max}$; warm-up carries a run over the sharp start, but it cannot raise the limit. How far the rule
# carries depends on the model and the data {cite:p}`goyal2017`, and for this model, on this data, $N = 4$ is
# comfortably inside and $N = 16$ is beyond the limit until the large steps have found a region flat enough
# for them.
#
# ### How large a batch is useful: the gradient noise scale
#
# Curvature limits the *step*; noise decides how many images a step *needs*. {cite:t}`mccandlish2018`
# measure it with the **gradient noise scale**. Its simple form, which they call $B_{\text{simple}}$, is
#
# $$
# B_{\text{simple}} = \frac{\operatorname{tr} \Sigma}{\lVert G \rVert^2},
# $$ (eq-devices-noise-scale)
#
# where $G$ is the gradient of the training loss and $\Sigma$ the covariance of the per-example gradients
# $\mathbf{g}_i$. A mini-batch gradient on $B$ images lies at an expected squared distance
# $\operatorname{tr}\Sigma / B$ from $G$; for $B \ll B_{\text{simple}}$ the noise dominates and a batch twice as
# large is worth nearly two steps (the regime where linear scaling holds), for $B \gg B_{\text{simple}}$ more
# images barely change the gradient. Their analysis weighs the noise by the curvature: the full noise scale is
# $B_{\text{noise}} = \operatorname{tr}(H\Sigma) / G^\top H G$, with $H$ the Hessian, and with the learning rate
# tuned for each batch size a step on $B$ images makes the fraction $1 / (1 + B_{\text{noise}} / B)$ of the
# progress of a full-batch step. The two scales are equal when $H$ is a multiple of the identity, and
# $B_{\text{simple}}$, which needs no Hessian, is the estimate they measure in practice; we use it in that
# formula too. For softmax regression the
# per-example gradient is an outer product, $\mathbf{g}_i = \tilde{\mathbf{x}}_i (\mathbf{p}_i - \mathbf{y}_i)^\top$,
# so $\lVert \mathbf{g}_i \rVert^2 = \lVert \tilde{\mathbf{x}}_i \rVert^2 \lVert \mathbf{p}_i - \mathbf{y}_i \rVert^2$
# and $\operatorname{tr} \Sigma$ is the mean of these minus $\lVert G \rVert^2$: no per-example backward pass
# is needed. We measure $B_{\text{simple}}$ at zero weights and at the end of the $N = 1$ runs with the
# base learning rate.

# %%
labels_large = mnist.y_train[:12000].astype(np.int64)


def noise_scale(W, b):
    """tr(Sigma) / |G|^2 of the training loss at (W, b), in float64."""
    weights = np.vstack([np.asarray(W, np.float64), np.asarray(b, np.float64)[None]])
    logits = x_augmented @ weights
    residual = np.exp(logits - logits.max(axis=1, keepdims=True))
    residual /= residual.sum(axis=1, keepdims=True)
    residual[np.arange(len(labels_large)), labels_large] -= 1.0  # p_i - y_i
    gradient = x_augmented.T @ residual / len(labels_large)
    squared_norms = (x_augmented**2).sum(axis=1) * (residual**2).sum(axis=1)
    gradient_norm2 = (gradient**2).sum()
    return (squared_norms.mean() - gradient_norm2) / gradient_norm2


# %% [markdown]
# At zero weights, and at the end of each seed's $N = 1$ run with the base learning rate:

# %%
noise_at_zero = noise_scale(np.zeros((784, 10)), np.zeros(10))
noise_at_end = over_seeds(
    lambda s: noise_scale(*[a[-1].numpy() for a in snapshots["same rate", 1, s][:2]])
)
gain = (1 + noise_at_zero / 50) / (1 + noise_at_zero / 800)
print(f"B_simple at zero weights: {noise_at_zero:.1f}")
print("B_simple after 3 epochs at batch 50, per seed:", np.round(noise_at_end))
print(f"at the start, progress per step of B = 800 over B = 50: x{gain:.2f}")
glue("ch9_noise_zero", float(noise_at_zero), display=False)
glue("ch9_noise_end_min", float(noise_at_end.min()), display=False)
glue("ch9_noise_end_max", float(noise_at_end.max()), display=False)
glue("ch9_noise_gain", float(gain), display=False)
assert round(noise_at_zero, -1) == 70 and noise_at_end.min() > 800
assert 10 < 800 / noise_at_zero < 100

# %% [markdown]
# At the start, $B_{\text{simple}}$ is about {glue:text}`ch9_noise_zero:.0f` images: a batch of 800 is an order
# of magnitude above it, and by the model it makes only {glue:text}`ch9_noise_gain:.1f` times the progress of
# a step on 50 images, for 16 times the images. By the end of the small-batch runs the noise scale has grown
# to between {glue:text}`ch9_noise_end_min:.0f` and {glue:text}`ch9_noise_end_max:.0f` images, above every
# batch of this chapter: the gradient has become small next to its per-example spread, and large batches
# pay. This is the general pattern {cite:t}`mccandlish2018` report: the useful ("critical") batch size grows
# as training proceeds, which is one more reason the first epoch of a large-batch run needs care.
#
# Other optimizers have their own rules. For Adam, whose update is divided by the root of the squared
# gradients, scaling the learning rate with the *square root* of the batch growth (and moving $1 - \beta_1$,
# $1 - \beta_2$ and $\epsilon$ with it) is the rule that follows from a stochastic-differential-equation view
# of the optimizer {cite:p}`malladi2022`. LARS {cite:p}`you2017lars` sets a separate learning rate for every
# layer, proportional to the ratio of the layer's weight norm to its gradient norm, so that no layer's step
# is too large relative to its weights, and LAMB {cite:p}`you2020lamb` scales each layer's Adam update by the
# ratio of the layer's weight norm to the norm of that update; both were made for batch sizes in the tens of
# thousands, where linear scaling with warm-up alone no longer trains to the small-batch accuracy.
#
# ## Summary
#
# - Synchronous data parallelism gives each replica a full copy of the model and a shard of the batch; the
#   shard gradients are all-reduced (summed) and every replica applies the same update, so the copies stay
#   identical {eq}`eq-devices-shard-sum`.
# - Logical CPU devices (`tf.config.set_logical_device_configuration`) let a machine without a GPU run the
#   whole machinery; they must be configured before TensorFlow initialises its devices, or it raises
#   `RuntimeError`.
# - The loss on each replica must be its sum of per-example losses divided by the **global** batch size
#   (`tf.nn.compute_average_loss(..., global_batch_size=B)`). A per-replica mean multiplies the gradient by
#   the number of replicas {eq}`eq-devices-bug`: the first update came out twice too large (to float32
#   rounding) on two replicas. `ReduceOp.MEAN` is no substitute: optimizers sum the gradients across replicas,
#   and a mean of shard means is wrong when the shards differ in size. A regularization term added on every
#   replica needs `tf.nn.scale_regularization_loss`, or it counts $N$ times.
# - TF1 towers, a `MirroredStrategy` custom loop on 2 and 4 replicas, Keras `fit` under `strategy.scope()`
#   (which scales the loss by $1/N$ itself) and two `MultiWorkerMirroredStrategy` worker processes all
#   reproduced the one-device weights step for step, to float32 rounding. That equivalence holds for a model
#   without per-batch state: batch normalization normalizes each shard with its own statistics (and its
#   mirrored moving mean drifts apart) unless `synchronized=True`, dropout draws the same mask on every
#   replica, and a counter kept in a plain mirrored variable counts one replica (Keras metrics are
#   sync-on-read and sum the replicas' totals). How the all-reduce is done (NCCL on GPUs, a ring of
#   collectives or a reduction to one device on CPUs) changes only the order of additions.
# - Every worker must run the same number of collective steps: a worker that stops early leaves its peers
#   waiting in their next all-reduce, without limit while it lives, unless
#   `CommunicationOptions(timeout_seconds=...)` turns the wait into a `DeadlineExceededError`. Only the
#   chief writes a checkpoint to the real path, the others to temporary folders; `BackupAndRestore` resumed
#   an interrupted `fit` bit for bit. A ring all-reduce sends $2(N-1)/N$ times the gradient's bytes per
#   worker {eq}`eq-devices-ring-cost`; for a small model the fixed cost of the step's collectives (latency
#   plus software overhead) dominates, and two workers were slower than one device, as predicted.
# - Growing the global batch with the number of replicas slows progress per image unless the learning rate
#   grows too; the linear scaling rule {eq}`eq-devices-linear-scaling` works while the scaled rate stays
#   well below the stability limit $2/\lambda_{\max}$ {eq}`eq-devices-curvature`. Warm-up carries a run over
#   the sharp start; at $N = 16$, with or without it, the scaled rate is beyond the limit for most of the run,
#   the sharpness falls until rate times sharpness is close to 2, and the run ends at the edge of stability,
#   as power iteration with Hessian-vector products measured along the run on three seeds.
# - The gradient noise scale {eq}`eq-devices-noise-scale` says how large a batch is still useful; for this
#   model it starts far below the largest global batch and grows above it during training.
#
# ## Exercises
#
# ```{exercise}
# :label: ex-devices-uneven
# A global batch of $B = 100$ images is split over $N = 3$ replicas as shards of 34, 33 and 33. Compare three
# ways of scaling the loss: (a) each replica divides its sum by the global batch size and the gradients are
# summed, (b) each replica takes its shard mean and the gradients are averaged with `ReduceOp.MEAN` (the TF1
# towers), (c) `tf.nn.compute_average_loss` without `global_batch_size`, gradients summed. Which ones give the
# gradient of the batch mean? Check with `MirroredStrategy` on three devices.
# ```
#
# ```{solution-start} ex-devices-uneven
# :class: dropdown
# ```
#
# Only (a) is exact. In (b) each image of the 34-image shard gets weight $1/(3 \cdot 34)$ instead of $1/100$,
# so the result is a slightly reweighted gradient. In (c) each replica divides its sum by its own shard size
# times 3, that is by 102 or 99: the same reweighting as (b), reached by another road. On three replicas, at
# the random point $\theta$ of the NumPy check, against the one-device gradient of the mean:

# %%
uneven = np.split(np.arange(100), [34, 67])
x_100, y_100 = x_train[:100], y_train[:100]
W_point, b_point = (tf.constant(v, tf.float32) for v in (W_random, b_random))
strategy_3 = mirrored_strategy(3)


def all_reduced_gradient(scale, reduce_op):
    def replica_gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(W_point)
            loss = scale(per_example_loss(W_point, b_point, x, y))
        context = tf.distribute.get_replica_context()
        return context.all_reduce(reduce_op, tape.gradient(loss, W_point))

    x, y = (
        strategy_3.experimental_distribute_values_from_function(
            lambda context, a=array: a[uneven[context.replica_id_in_sync_group]]
        )
        for array in (x_100, y_100)
    )
    result = strategy_3.run(tf.function(replica_gradient), args=(x, y))
    return strategy_3.experimental_local_results(result)[0].numpy()


# %% [markdown]
# The one-device gradient, and the three ways:

# %%
with tf.GradientTape() as tape:
    tape.watch(W_point)
    batch_mean = tf.reduce_mean(per_example_loss(W_point, b_point, x_100, y_100))
exact = tape.gradient(batch_mean, W_point).numpy()
SUM, MEAN = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN
ways = {
    "(a) global batch size, SUM": all_reduced_gradient(
        lambda losses: tf.nn.compute_average_loss(losses, global_batch_size=100), SUM
    ),
    "(b) shard mean, MEAN": all_reduced_gradient(tf.reduce_mean, MEAN),
    "(c) compute_average_loss default, SUM": all_reduced_gradient(
        tf.nn.compute_average_loss, SUM
    ),
}
for name, gradient in ways.items():
    print(f"{name:>38}: max |difference| = {np.abs(gradient - exact).max():.1e}")
print(f"largest |entry| of the exact gradient: {np.abs(exact).max():.1e}")
(a, b, c) = ways.values()
assert np.abs(a - exact).max() < 1e-5 * np.abs(exact).max()
assert np.abs(b - exact).max() > 1e-3 * np.abs(exact).max()
assert np.abs(b - c).max() < 1e-3 * np.abs(b - exact).max()

# %% [markdown]
# Way (a) agrees with one device to float32 rounding; (b) and (c) agree with each other and miss the exact
# gradient by the same amount, a reweighting that no error reports.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-devices-compensate
# Someone has the per-replica-mean bug on $N$ replicas and, noticing that training is unstable, lowers the
# learning rate until it works. Is the resulting program correct? What would it do when moved to a machine
# with a different number of devices?
# ```
#
# ````{solution} ex-devices-compensate
# :class: dropdown
# With the bug, the update is $\theta \leftarrow \theta - \alpha N \nabla L_{\mathcal{B}}$ by {eq}`eq-devices-bug`,
# so a learning rate of $\alpha / N$ gives exactly the intended update: on this machine the program computes
# the right thing, up to rounding. But the effective learning rate now depends on the number of devices, which
# is not written anywhere in the code. Moved to a machine with twice as many devices, it trains with twice the
# learning rate; moved to one device, with $1/N$ of it. Hyper-parameters tuned on one cluster silently change
# meaning on another, which is why the loss should be scaled by the global batch size and the learning rate
# stated for that loss.
# ````
#
# ```{exercise}
# :label: ex-devices-warmup
# Re-run the $N = 16$ linear-scaling run with a warm-up of only 3 steps instead of one epoch (15 steps). Does
# the overshoot come back? Relate the answer to the stability limit {eq}`eq-devices-curvature`.
# ```
#
# ```{solution-start} ex-devices-warmup
# :class: dropdown
# ```
#
# A 3-step warm-up reaches $1.6$ at the third step. A step of $1.6$ is stable only where the sharpness is
# below $2 / 1.6 = 1.25$; the sharpness starts at about 4, and after the two smaller steps of the warm-up it
# is higher still.
# The overshoot comes back, between the two runs of the figure (seed 1):

# %%
steps_16 = EPOCHS * 12000 // 800
ids_16 = tf.constant(batch_indices(12000, 800, steps_16, seed=1))
short_warmup = BASE_RATE * 16 * np.minimum(1.0, np.arange(1, steps_16 + 1) / 3)
short_curve, short_W, short_b = train_run(
    ids_16, tf.constant(short_warmup, tf.float32), tf.constant(1)
)
short_peak = short_curve.numpy()[1:].max()
after_two_steps, _ = sharpness(short_W[1], short_b[1], 20)
print(
    f"sharpness at the start {curvature_at_start:.3f}, after two steps "
    f"{after_two_steps:.3f}; stable below {2 / 1.6:.3f} at the rate 1.6"
)
print(
    f"peak loss after the start: 3-step warm-up {short_peak:.3f}, "
    f"no warm-up {peak['linear scaling', 16, 1]:.3f}, "
    f"one-epoch warm-up {peak['linear scaling + warm-up', 16, 1]:.3f}"
)
assert round(curvature_at_start) == 4 and after_two_steps > curvature_at_start
assert (
    peak["linear scaling + warm-up", 16, 1] < short_peak < peak["linear scaling", 16, 1]
)

# %% [markdown]
# With $B = 800$ the figure's runs were also measured after every step (every 800 images), so the peaks
# compare like with like.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-devices-workers-bug
# In the worker program, replace `compute_average_loss(..., global_batch_size=global_batch)` by
# `tf.reduce_mean(losses)`. What will the two workers report as their first loss, and by how much will their
# first update differ from the one-device update? Answer first, then try it.
# ```
#
# ````{solution} ex-devices-workers-bug
# :class: dropdown
# Each worker's loss becomes the mean over its 48 images and `strategy.reduce(SUM, ...)` adds the two, so the
# first reported loss is $2 \ln 10 \approx 4.605$ instead of $\ln 10$. The all-reduced gradient is twice the
# batch gradient {eq}`eq-devices-bug`, so the first update is twice the one-device update (to float32 rounding), as the
# `MirroredStrategy` run with the bug showed on one machine: the number of machines plays the same role as
# the number of devices.
# ````
