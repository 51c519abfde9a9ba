"""gdbook.curvature (exported from Chapter 6, used by Chapter 9) on problems with known answers."""

import numpy as np
import tensorflow as tf

from gdbook.curvature import hessian_vector_product, power_iteration


def quadratic_matrix() -> np.ndarray:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    return (q * np.array([5.0, 2.0, 1.0, 0.5])) @ q.T


def test_hessian_vector_product_of_a_quadratic_is_the_matrix_times_v():
    a = tf.constant(quadratic_matrix(), tf.float64)
    x = tf.constant([1.0, -2.0, 0.5, 3.0], tf.float64)
    v = tf.constant([0.3, 0.1, -1.0, 2.0], tf.float64)

    def loss(x):
        return 0.5 * tf.tensordot(x, tf.linalg.matvec(a, x), 1)

    (hv,) = hessian_vector_product(loss, [x], [v])
    np.testing.assert_allclose(hv.numpy(), quadratic_matrix() @ v.numpy(), rtol=1e-12)


def test_power_iteration_finds_the_largest_eigenvalue_and_can_continue():
    a = tf.constant(quadratic_matrix(), tf.float32)

    def matvec(v):
        return [tf.linalg.matvec(a, v[0])]

    estimates, v = power_iteration(matvec, [(4,)], iterations=40)
    assert abs(estimates[-1] - 5.0) < 1e-4
    assert np.all(np.diff(estimates) > -1e-5), "Rayleigh quotients of a PSD operator rise"
    more, _ = power_iteration(matvec, [(4,)], iterations=1, start=v)
    assert abs(more[0] - estimates[-1]) < 1e-4, "continuing from the returned vector"
