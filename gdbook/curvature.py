# Generated from chapters/06_softmax.md by `python -m gdbook.export`.
# Do not edit: change the cells marked `# @save` in the chapter and re-export.
"""Curvature of a loss: Hessian-vector products and power iteration (Chapter 6)."""

import numpy as np
import tensorflow as tf


def hessian_vector_product(loss_fn, params, vectors):
    """H v, the Hessian of the scalar loss_fn(*params) times a direction v.

    params: a list of float tensors; vectors: a list of tensors of the same shapes.
    Returns a list of those shapes. Forward mode over reverse mode: the directional
    derivative of the gradient along v (Pearlmutter 1994), at a small multiple of
    one gradient's cost; the Hessian itself is never formed.
    """
    with tf.autodiff.ForwardAccumulator(primals=params, tangents=vectors) as acc:
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = loss_fn(*params)
        gradients = tape.gradient(loss, params)
    return acc.jvp(gradients)


def power_iteration(matvec, shapes, iterations=20, seed=0, start=None):
    """The largest eigenvalue of a symmetric positive semi-definite operator H.

    matvec maps a list of float32 tensors of the given shapes to H v. Starts from a
    normal random vector (NumPy generator `seed`) or from `start`, such as the vector
    an earlier call returned. Returns (estimates, v): the Rayleigh quotient v^T H v
    of the unit vector v at each of the `iterations` steps (a NumPy array), and the
    last H v, unnormalised (a list of tensors).
    """
    rng = np.random.default_rng(seed)
    v = start or [tf.constant(rng.normal(size=s), tf.float32) for s in shapes]
    estimates = []
    for _ in range(iterations):
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(part**2) for part in v]))
        v = [part / norm for part in v]
        Hv = matvec(v)
        estimates.append(
            float(tf.add_n([tf.reduce_sum(a * c) for a, c in zip(v, Hv, strict=True)]))
        )
        v = Hv
    return np.array(estimates), v
