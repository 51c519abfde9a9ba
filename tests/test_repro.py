"""gdbook.setup: the same seed gives the same random numbers, in NumPy and in TensorFlow."""

import matplotlib
import numpy as np
import tensorflow as tf

import gdbook


def _draws():
    return np.random.rand(3), tf.random.uniform([3]).numpy(), tf.keras.initializers.GlorotUniform()([2, 2]).numpy()


def test_same_seed_same_numbers():
    assert gdbook.setup(7) == 7
    first = _draws()
    gdbook.setup(7)
    second = _draws()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_other_seed_other_numbers():
    gdbook.setup(1)
    first = _draws()
    gdbook.setup(2)
    assert not np.array_equal(first[0], _draws()[0])


def test_determinism_and_style_are_on():
    gdbook.setup()
    from tensorflow.python.framework import config

    assert config.is_op_determinism_enabled()
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_a_kernel_gets_the_inline_backend_back(monkeypatch):
    """In a Jupyter kernel, setup() undoes an MPLBACKEND=Agg (which would hide every figure)."""
    import IPython

    calls = []

    class ZMQInteractiveShell:  # the name is what gdbook.errors.in_notebook looks at
        def run_line_magic(self, *args):
            calls.append(args)

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    gdbook.setup()
    assert calls == [("matplotlib", "inline")]

    calls.clear()
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    gdbook.setup()
    assert calls == []


def test_a_script_keeps_its_backend(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    before = matplotlib.get_backend()
    gdbook.setup()
    assert matplotlib.get_backend() == before


def test_setup_shows_the_retracing_warning_and_nothing_else(capsys):
    """Readers must see TensorFlow's retracing warning (Chapter 3 explains it); other warnings stay quiet."""
    import tensorflow as tf

    gdbook.setup()

    @tf.function
    def double(x):
        return 2 * x

    for value in range(6):
        double(float(value))
    tf.get_logger().warning("an unrelated warning")
    tf.get_logger().error("an error")
    printed = capsys.readouterr().out
    assert "triggered tf.function retracing" in printed
    assert "an unrelated warning" not in printed
    assert "an error" in printed


def test_setup_shows_numpy_scalars_as_numbers():
    """myst-nb's glue formats a glued number from its text form: NumPy 2's repr would break it."""
    gdbook.setup()
    assert repr(np.float64(0.5)) == "0.5"
    assert repr(np.float32(0.25)) == "0.25"


def test_sci_writes_numbers_as_the_prose_does():
    import pytest

    from gdbook.text import sci

    assert sci(np.finfo(np.float32).max) == "3.4 × 10^38"
    assert sci(np.finfo(np.float32).tiny, 2) == "1.18 × 10^-38"
    assert sci(-69077.5, 1) == "-6.9 × 10^4"
    assert sci(9.99, 1) == "1.0 × 10^1"
    with pytest.raises(ValueError):
        sci(float("inf"))
