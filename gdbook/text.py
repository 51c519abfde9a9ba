"""Numbers written the way the book's prose writes them."""

from __future__ import annotations

import math


def sci(x: float, digits: int = 1) -> str:
    """``x`` in scientific notation as the prose writes it: ``sci(3.4028235e38)`` is ``"3.4 × 10^38"``.

    Args:
        x: a finite, non-zero number (a Python or NumPy scalar).
        digits: decimals of the mantissa (``sci(1.1754944e-38, 2)`` is ``"1.18 × 10^-38"``).

    A cell prints a constant in this form so that the sentence quoting it ("about
    $3.4 \\times 10^{38}$") is backed digit for digit (``tests/prose_numbers.py``).

    Raises:
        ValueError: for 0, infinities and NaN, which have no such form.
    """
    x = float(x)
    if x == 0 or not math.isfinite(x):
        raise ValueError(f"{x} has no scientific form")
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa} × 10^{int(exponent)}"
