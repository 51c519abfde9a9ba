# Generated from chapters/08_debugging.md by `python -m gdbook.export`.
# Do not edit: change the cells marked `# @save` in the chapter and re-export.
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
