"""Showing an error on purpose.

A chapter that demonstrates an error wraps the failing line in :func:`expect_error` inside a
cell tagged ``raises-exception``::

    with expect_error(RuntimeError) as second_call:
        tape.gradient(y, x)

and checks what happened in the next (untagged) cell::

    assert "non-persistent" in second_call.message

In a notebook (the built book, nbval) the error propagates, so the reader sees TensorFlow's real
traceback. Run as a plain script (``python chapters/NN_name.py``) the error is caught and its
message printed, so the script goes on to the end. Either way the assert in the next cell runs.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass


def in_notebook() -> bool:
    """True inside a Jupyter kernel (the book's build, nbval); False in a plain script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


@dataclass
class CaughtError:
    """What :func:`expect_error` saw: the exception (``None`` if nothing was raised)."""

    error: BaseException | None = None

    @property
    def type_name(self) -> str:
        return type(self.error).__name__ if self.error is not None else "no error"

    @property
    def message(self) -> str:
        return str(self.error) if self.error is not None else ""


@contextmanager
def expect_error(*types: type[BaseException], reraise: bool | None = None):
    """Record the exception raised in the block; re-raise it only in a notebook.

    ``types`` limits what is recorded (default: any ``Exception``); anything else propagates
    unchanged. ``reraise`` overrides the notebook/script choice (the tests use it).
    """
    caught = CaughtError()
    wanted = types or (Exception,)
    try:
        yield caught
    except wanted as err:
        caught.error = err
        if in_notebook() if reraise is None else reraise:
            raise
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"{type(err).__name__}: {first_line}")
    else:
        print("(no error was raised)")
