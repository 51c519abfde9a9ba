"""Check your code against a reference: optimizers, gradients, training steps, schedules.

Each function compares the code you wrote with a reference (usually TensorFlow's or Keras')
and either returns ``None`` quietly or raises ``AssertionError`` with a message that says
where the two first part and, when the difference has a recognisable shape, what kind of
mistake produces it::

    from gdbook import check

    check.optimizer(lambda: MyAdam(0.01), lambda: keras.optimizers.Adam(0.01))
    check.gradient(f, my_grad_f, x)
    check.schedule(my_schedule, keras.optimizers.schedules.CosineDecay(0.1, 100))
    check.training_step(make_restored, make_original, batches)

The diagnoses are hints ("bias correction?"), not verdicts: they name the most likely cause of
a difference with that shape.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["optimizer", "gradient", "training_step", "schedule"]

_EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-07
_EPS64 = float(np.finfo(np.float64).eps)  # 2.22e-16

# --------------------------------------------------------------------------------------
# optimizer()
# --------------------------------------------------------------------------------------

# The test problem: four float32 variables of different shapes, and a loss that is not a
# quadratic (log-cosh of a tanh layer). The initial values are small, so that float32
# resolves even small steps (the spacing of float32 numbers near 0.1 is 7.5e-9).
_rng = np.random.default_rng(19)
_X = _rng.normal(size=(8, 3)).astype(np.float32)
_Y = (0.5 * _rng.normal(size=(8, 2))).astype(np.float32)
_INITIAL = {
    "scale": np.float32(0.8),
    "bias": np.array([0.1, -0.2], np.float32),
    "weights": (0.3 * _rng.normal(size=(3, 2))).astype(np.float32),
    # Gradients of about 5e-2, 6e-4 and 7e-6 at the start: where epsilon matters.
    "tiny": np.array([0.05, -0.07, 0.09], np.float32),
}
_TINY_SCALES = np.array([1e-2, 1e-4, 1e-6], np.float32)


def _loss(v):
    hidden = tf.tanh(tf.matmul(_X, v["weights"]) + v["bias"])
    residual = v["scale"] * hidden - _Y
    main = tf.reduce_mean(tf.math.log(tf.cosh(3.0 * residual)))
    small = tf.reduce_sum(_TINY_SCALES * tf.math.log(tf.cosh(10.0 * v["tiny"])))
    return main + small


def _taped(var_list):
    """The loss's gradients with respect to the four variables (in _INITIAL's order)."""
    with tf.GradientTape() as tape:
        loss = _loss(dict(zip(_INITIAL, var_list, strict=True)))
    return tape.gradient(loss, var_list)


# In eager runs only the optimizers run eagerly: the problem's gradients are computed by
# one traced function (the same for both optimizers, and several times faster).
_gradients = tf.function(_taped, reduce_retracing=True)


def _make(factory, who):
    if not callable(factory):
        raise TypeError(
            f"{who} must be a function with no arguments that returns a new optimizer "
            f"(e.g. `lambda: Adam(0.01)`), got {factory!r}"
        )
    opt = factory()
    if not callable(getattr(opt, "apply_gradients", None)):
        raise TypeError(
            f"{who}() returned {type(opt).__name__}, which has no apply_gradients method"
        )
    return opt


def _run(opt, steps, compiled, gradients=None):
    """Train fresh variables with `opt`; return the values before and after each step.

    With `gradients` (a list of per-step lists), those are applied instead of the
    variables' own gradients (the replay used for the diagnosis). Also returns the
    gradients that were applied."""
    names = list(_INITIAL)
    variables = {name: tf.Variable(_INITIAL[name], name=name) for name in names}
    var_list = [variables[name] for name in names]
    feed = [tf.Variable(tf.zeros_like(var)) for var in var_list]

    def own_step():
        grads = _gradients(var_list) if not compiled else _taped(var_list)
        opt.apply_gradients(list(zip(grads, var_list, strict=True)))
        return grads

    def fed_step():
        grads = [tf.identity(g) for g in feed]
        opt.apply_gradients(list(zip(grads, var_list, strict=True)))
        return grads

    step = fed_step if gradients is not None else own_step
    if compiled:
        step = tf.function(step)
    history = [{name: variables[name].numpy().copy() for name in names}]
    applied = []
    for t in range(steps):
        if gradients is not None:
            for slot, grad in zip(feed, gradients[t], strict=True):
                slot.assign(grad)
        grads = step()
        applied.append([g.numpy() for g in grads])
        history.append({name: variables[name].numpy().copy() for name in names})
    return history, applied


def _allowed(ref, start, t, rtol):
    """What float32 rounding may explain after t steps: a relative error of the distance
    moved, plus a few units in the last place of the value per step."""
    ref, start = np.asarray(ref, np.float64), np.asarray(start, np.float64)
    ulp_scale = np.maximum(np.abs(ref), np.abs(start))
    return rtol * np.abs(ref - start) + 2 * t * _EPS32 * ulp_scale + 1e-30


def _first_mismatch(mine, ref, rtol):
    """(step, name, index, other names) of the worst entry outside the tolerance at the
    first step where any entry is, or None."""
    start = ref[0]
    for t in range(1, len(ref)):
        worst, others = None, []
        for name in _INITIAL:
            a = np.asarray(mine[t][name], np.float64)
            b = np.asarray(ref[t][name], np.float64)
            allowed = _allowed(b, start[name], t, rtol)
            excess = np.nan_to_num(np.abs(a - b) / allowed, nan=np.inf)
            if excess.max() > 1:
                others.append(name)
                index = np.unravel_index(int(np.argmax(excess)), np.shape(a))
                if worst is None or excess.max() > worst[0]:
                    worst = (excess.max(), name, index)
        if worst is not None:
            name, index = worst[1], worst[2]
            return t, name, index, [n for n in others if n != name]
    return None


def _fmt_index(index):
    return "" if len(index) == 0 else "[" + ", ".join(str(int(i)) for i in index) + "]"


def _uniform(ratios, rel=0.01):
    """The common value of `ratios` if they agree to `rel`, else None."""
    if ratios.size == 0 or not np.all(np.isfinite(ratios)):
        return None
    c = float(np.median(ratios))
    if np.all(np.abs(ratios - c) <= rel * max(abs(c), 1e-12)):
        return c
    return None


def _common_factor(d_mine, d_ref, prev, rel=0.01):
    """c if your update is c times the reference's for every entry, up to `rel` and the
    float32 rounding of the values the updates are computed from; else None."""
    if d_ref.size == 0 or not np.all(np.isfinite(d_mine)):
        return None
    c = float(np.median(d_mine / d_ref))
    rounding = 2 * _EPS32 * (np.abs(prev) + np.abs(d_ref))
    allowed = rel * np.abs(c * d_ref) + (1 + abs(c)) * rounding
    return c if np.all(np.abs(d_mine - c * d_ref) <= allowed) else None


def _updates(history, t):
    """Flattened float64 step t update, previous values, and a mask of entries whose
    update is resolved in float32 (at least 50 units in the last place)."""
    prev = np.concatenate([np.ravel(history[t - 1][n]) for n in _INITIAL]).astype(float)
    now = np.concatenate([np.ravel(history[t][n]) for n in _INITIAL]).astype(float)
    delta = now - prev
    resolved = np.abs(delta) > 50 * _EPS32 * np.maximum(np.abs(prev), 1e-30)
    return delta, prev, resolved


def _spearman(a, b):
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _clipping(d_mine, d_ref, prev, resolved, start):
    """A hint if the updates differ the way clipping by another rule makes them differ:
    a factor constant within each variable but not between them (per-variable norms),
    or entries whose steps share one largest size (clipping by value); else None."""
    sizes = [int(np.size(start[name])) for name in _INITIAL]
    bounds = np.cumsum([0, *sizes])
    per_variable = []
    for name, a, b in zip(_INITIAL, bounds[:-1], bounds[1:], strict=True):
        sel = resolved[a:b]
        if sel.any():
            # Tight (1e-3): a clipping factor is exact within a variable, whereas a
            # state mistake (momentum) gives factors that merely vary slowly.
            factor = _common_factor(
                d_mine[a:b][sel], d_ref[a:b][sel], prev[a:b][sel], rel=1e-3
            )
            per_variable.append((name, factor))
    factors = [f for _, f in per_variable]
    if len(factors) >= 2 and all(f is not None for f in factors):
        if max(factors) - min(factors) > 0.05 * max(abs(f) for f in factors):
            listing = ", ".join(f"{name} {f:.3g}" for name, f in per_variable)
            return (
                "within each variable your update is a constant factor times the "
                "reference's, but the factor differs between variables "
                f"({listing}): clipping (or scaling) per variable rather than by the "
                "global norm?"
            )
    steps = np.abs(d_mine[resolved])
    if steps.size >= 3:
        largest = steps.max()
        capped = steps >= largest * (1 - 1e-3)
        others = ~capped
        if 2 <= capped.sum() < steps.size and (
            _common_factor(
                d_mine[resolved][others],
                d_ref[resolved][others],
                prev[resolved][others],
            )
            is not None
        ):
            return (
                f"{int(capped.sum())} entries take the same largest step "
                f"({largest:.3g}) and the others are a constant factor times the "
                "reference's: clipping each entry by value (tf.clip_by_value) rather "
                "than by the global norm?"
            )
    return None


def _diagnose(mine, ref, grads, rtol):
    """A hint about the kind of mistake, from a replay in which both optimizers were fed
    the same gradients (so that differences do not compound through the loss)."""
    found = _first_mismatch(mine, ref, rtol)
    if found is None:
        return (
            "Fed the same gradients, the two agree at every step: they part only when "
            "each computes its own. Does your optimizer change the variables or the "
            "gradients outside apply_gradients?"
        )
    k = found[0]
    if k == 1:
        before = "differs from step 1"
    elif k == 2:
        before = "agrees at step 1 only"
    else:
        before = f"agrees for steps 1 to {k - 1}, differs from step {k}"
    values_k = np.concatenate([np.ravel(mine[k][n]) for n in _INITIAL])
    if not np.all(np.isfinite(values_k)):
        return (
            f"{before}: your update gives NaN or Inf at step {k}. A division by zero? "
            "A bias correction with the step counted from 0 divides by 1 - beta**0 = 0."
        )
    d_ref, prev, resolved = _updates(ref, k)
    d_mine, _, _ = _updates(mine, k)
    if not resolved.any():
        resolved = d_ref != 0
    if resolved.any() and np.all(d_mine[resolved] == 0):
        return (
            f"{before}: your optimizer did not change the variables at step {k}. Does "
            "apply_gradients assign to them (assign_sub), and to the variables it was "
            "given?"
        )
    ratios = d_mine[resolved] / d_ref[resolved]
    c_k = _common_factor(d_mine[resolved], d_ref[resolved], prev[resolved])
    if c_k is not None and abs(c_k - 1) < 0.02:
        # A common factor this close to 1 is below what the test of a common factor
        # resolves: the difference is subtler than a factor.
        c_k = None
    if c_k is None:
        # A difference proportional to the variable itself: weight decay.
        has_value = resolved & (np.abs(prev) > 1e-3)
        if has_value.sum() >= 3:
            kappa = _uniform((d_mine - d_ref)[has_value] / prev[has_value])
            if kappa is not None:
                return (
                    f"{before}: your update minus the reference's is {kappa:+.3g} times "
                    "the variable itself, the same factor for every entry: a weight "
                    "decay missing, added twice, or with another rate (Keras shrinks by "
                    "learning_rate * weight_decay before the step)?"
                )
    if c_k is not None:
        factors = []
        for t in range(k, len(ref)):
            dr, prev_t, res_t = _updates(ref, t)
            dm, _, _ = _updates(mine, t)
            factors.append(
                _common_factor(dm[res_t], dr[res_t], prev_t[res_t])
                if res_t.any()
                else None
            )
        last = factors[-1]
        if abs(c_k + 1) < 0.01 and all(
            f is not None and abs(f + 1) < 0.01 for f in factors
        ):
            return f"{before}: your steps have the opposite sign: ascent instead of descent?"
        if all(f is not None and abs(f - c_k) <= 0.01 * abs(c_k) for f in factors):
            return (
                f"{before}: a constant factor {c_k:.4g} from step {k} on, the same for "
                "every entry: a learning-rate or decay mistake?"
            )
        if all(f is not None for f in factors):
            trend = (
                "and tends to 1: a bias correction off by one step, or missing?"
                if abs(last - 1) < 0.5 * abs(c_k - 1)
                else "and does not tend to 1: a learning-rate schedule or decay, a bias "
                "correction, a step counter that advances differently, or a rescaling "
                "by a norm of the gradients (clipping by another norm)?"
            )
            return (
                f"{before}: a factor that is the same for every entry but changes from "
                f"step to step ({c_k:.4g} at step {k}, {last:.4g} at step "
                f"{len(ref) - 1}) {trend}"
            )
        return (
            f"{before}: at step {k} your update is {c_k:.4g} times the reference's for "
            "every entry: the learning rate, its schedule, a bias correction, a "
            "Nesterov look-ahead, or an epsilon that dominates while the state is "
            "still near zero?"
        )
    if c_k is None:
        hint = _clipping(d_mine, d_ref, prev, resolved, ref[0])
        if hint is not None:
            return f"{before}: {hint}"
    # Epsilon: the relative difference grows as the gradient shrinks.
    g = np.abs(np.concatenate([np.ravel(x) for x in grads[k - 1]]).astype(float))
    dev = np.abs(ratios - 1)
    g_res = g[resolved]
    if g_res.size >= 4:
        small, large = int(np.argmin(g_res)), int(np.argmax(g_res))
        if (
            dev[small] > 1e-3
            and dev[small] > 10 * dev[large]
            and _spearman(np.log(g_res + 1e-300), dev) < -0.5
        ):
            return (
                f"{before}: the difference is largest where the gradient is smallest "
                f"(relative {dev[small]:.2g} for |g| = {g_res[small]:.1e}, "
                f"{dev[large]:.2g} for |g| = {g_res[large]:.1e}): epsilon placement "
                "(inside or outside the square root, added before or after the bias "
                "correction) or its value, or the initial value of an accumulator?"
            )
    if k > 1:
        return (
            f"{before}: the state your optimizer carries between steps differs (a "
            "velocity or moving average, its decay rate beta/rho/momentum, its initial "
            "value, or the step counter)?"
        )
    return (
        f"{before}, with no simple pattern: compare your update formula with the "
        "reference's term by term."
    )


def optimizer(
    make_mine,
    make_reference,
    steps: int = 20,
    *,
    compiled: bool = False,
    rtol: float = 1e-4,
) -> None:
    """Check an optimizer against a reference, variable by variable, step by step.

    Args:
        make_mine: a function with no arguments that returns a *new* instance of your
            optimizer, e.g. ``lambda: MyAdam(learning_rate=0.01)``. The object needs an
            ``apply_gradients(grads_and_vars)`` method taking a list of
            ``(gradient, variable)`` pairs, as Keras' optimizers do.
        make_reference: the same for the reference, typically a Keras 3 optimizer with the
            same hyper-parameters, e.g. ``lambda: keras.optimizers.Adam(0.01)``.
        steps: how many updates to compare (default 20).
        compiled: if True, train a second time with the training step traced by
            ``tf.function``, as ``model.fit`` does; Python-side state in your optimizer
            (a counter ``self.t += 1``) is then frozen at its traced value.
        rtol: the relative tolerance (see below).

    What is compared: both optimizers train their own fresh float32 ``tf.Variable``s on
    the same small problem: ``scale`` (a scalar), ``bias`` (shape (2,)), ``weights``
    (shape (3, 2)) of a tanh layer fitted with a log-cosh loss (not a quadratic), and
    ``tiny`` (shape (3,)), whose gradients start near 5e-2, 6e-4 and 7e-6, where the
    placement of epsilon matters. One ``apply_gradients`` call per step updates all four.
    After every step, every entry of every variable is compared.

    Tolerance: two implementations of the same rule that order their float32 operations
    differently differ by rounding, which grows with the distance moved and with the
    number of steps. An entry passes at step t if
    ``|yours - reference| <= rtol * |reference - initial| + 2 * t * eps32 * max(|reference|, |initial|)``,
    with ``eps32 = 1.19e-7``: a relative error ``rtol`` (1e-4) of the distance moved,
    plus two units in the last place per step. Real mistakes (a wrong learning rate,
    bias correction, epsilon or decay) differ by far more.

    Raises:
        AssertionError: at the first step (counting from 1) and variable where the two
            part: the entry, both values, the difference and how far the reference has
            moved, and a diagnosis where the difference has a recognisable shape. The
            diagnosis comes from a replay that feeds both optimizers the reference's
            gradients, so the comparison of the updates is not blurred by the two
            trajectories drifting apart.
        TypeError: if a factory is not callable, does not return an object with
            ``apply_gradients``, or returns the same object twice (it must make a new one,
            so that each run starts from fresh state).

    Returns None when the two agree.
    """
    first = _make(make_mine, "make_mine")
    if _make(make_mine, "make_mine") is first:
        raise TypeError(
            "make_mine() returned the same object twice: it must create a new optimizer "
            "each time (write `lambda: MyOptimizer(...)`, not `lambda: my_optimizer`)"
        )
    modes = [False, True] if compiled else [False]
    for mode in modes:
        mine, _ = _run(_make(make_mine, "make_mine"), steps, mode)
        ref, grads = _run(_make(make_reference, "make_reference"), steps, mode)
        found = _first_mismatch(mine, ref, rtol)
        if found is None:
            continue
        t, name, index, others = found
        a = float(np.asarray(mine[t][name])[index])
        b = float(np.asarray(ref[t][name])[index])
        start = float(np.asarray(ref[0][name])[index])
        moved = abs(b - start)
        rel = abs(a - b) / max(abs(b), 1e-30)
        rel_moved = abs(a - b) / moved if moved > 0 else float("inf")
        shape = tuple(np.shape(ref[0][name]))
        where = f"{name}{_fmt_index(index)}"
        mode_text = "with the step traced by tf.function" if mode else "eagerly"
        if mode:
            hint = (
                "Eagerly the two agree; traced by tf.function they do not: Python state "
                "(a counter such as self.t += 1, or a number computed from it in Python) "
                "is frozen when the step is traced. Keep state in tf.Variables and "
                "compute with tf ops."
            )
        else:
            replay_mine, _ = _run(_make(make_mine, "make_mine"), steps, mode, grads)
            replay_ref, _ = _run(
                _make(make_reference, "make_reference"), steps, mode, grads
            )
            hint = "Diagnosis (both fed the reference's gradients): " + _diagnose(
                replay_mine, replay_ref, grads, rtol
            )
        raise AssertionError(
            f"your optimizer and the reference part at step {t} (counting from 1, "
            f"trained {mode_text}), variable {name!r} of shape {shape}, entry {where}:\n"
            f"  yours:     {np.float32(a)}\n"
            f"  reference: {np.float32(b)}\n"
            f"  relative difference {rel:.2e}; the difference is {rel_moved:.2e} of the "
            f"distance the reference moved since the start ({moved:.3e})\n"
            f"  (tolerance: {rtol:g} of that distance plus 2 float32 ulps per step)\n"
            + (
                f"At this step {', '.join(map(repr, others))} "
                f"{'differs' if len(others) == 1 else 'differ'} too.\n"
                if others
                else ""
            )
            + (
                "Step 1 agrees. "
                if t == 2
                else f"Steps 1 to {t - 1} agree. "
                if t > 2
                else ""
            )
            + hint
        )


# --------------------------------------------------------------------------------------
# gradient()
# --------------------------------------------------------------------------------------


def _verdict(r):
    if r > 1e-2:
        return "above 1e-2: the gradient is almost certainly wrong"
    if r > 1e-4:
        return "between 1e-4 and 1e-2: suspicious, acceptable only near a kink"
    if r > 1e-7:
        return "between 1e-7 and 1e-4: fine for a non-smooth function, too large for a smooth one"
    return "below 1e-7: right"


def _scalar(f, x):
    y = f(x)
    y = tf.convert_to_tensor(y)
    if y.shape.num_elements() != 1:
        raise ValueError(f"f must return a scalar, got shape {y.shape}")
    return tf.reshape(y, [])


def gradient(
    f, grad_f, x, *, tol: float = 1e-7, h: float = 1e-5, coordinates: int | None = None
) -> None:
    """Check a gradient you wrote against the tape and against central differences.

    Args:
        f: the function, from a float64 tensor of the shape of ``x`` to a scalar. Write it
            with TensorFlow ops so the tape can differentiate it (if it cannot, only the
            central differences are used).
        grad_f: your gradient of ``f``: called with the same float64 tensor, it returns
            an array-like of the same shape as ``x``.
        x: the point, any shape (a scalar, a vector, a matrix); converted to float64.
        tol: the largest relative error accepted (default 1e-7, the float64 threshold of
            Chapter 8 below which a gradient of a smooth function is right). Near a kink
            (ReLU, abs, max) pass a larger one, e.g. 1e-4.
        h: the central-difference step, scaled by ``max(1, |x_i|)`` for each coordinate
            (default 1e-5, near the best float64 step of Chapter 8).
        coordinates: if given, central differences are computed only at this many
            coordinates, chosen at random (with a fixed seed), as CS231n's sparse
            gradient check does; the tape is still compared at every coordinate. Use it
            for large ``x`` (central differences cost 4 evaluations of f per
            coordinate). Needs a tape-differentiable f.

    What is compared, in float64, coordinate by coordinate: your gradient g with the
    tape's, and with the central difference ``(f(x + h e_i) - f(x - h e_i)) / (2h)``, by
    the relative error of Chapter 8,
    ``r = |g - g_ref| / max(|g|, |g_ref|, floor)``.
    The floor keeps coordinates whose gradient is (nearly) zero from dividing noise by
    noise: it is the reference's own noise divided by ``tol``, so an absolute difference
    at the noise level passes and anything larger fails. For central differences the
    noise is estimated per coordinate as ``|D(h) - D(2h)|`` (truncation and rounding)
    plus ``4 eps64 |f| / h`` (rounding of f); for the tape it is ``64 eps64`` times the
    largest gradient coordinate or |f(x)|.

    Raises:
        AssertionError: if any coordinate has r above ``tol`` against either reference:
            the worst coordinate, your value, the tape's and the central difference,
            both relative errors with Chapter 8's verdict, and a pattern where one is
            clear (a sign, a constant factor, a transposed matrix, a few coordinates).
            Where the central difference's own noise exceeds ``tol`` times the larger
            of yours and the central difference, the message gives the difference in
            units of that noise instead of a relative error, and advice on the step:
            none if the central difference agrees with the tape within its noise; a
            smaller ``h`` if ``|D(h) - D(2h)|`` dominates (f bends within the step) and
            the central difference disagrees with the tape (or there is no tape); a
            larger ``h``, or removing a constant offset from f, if the rounding of f
            dominates (a smaller ``h`` would only make it worse). A noise that large
            also makes the central difference a weak judge: with no tape, a step whose
            rounding exceeds the gradient lets almost any gradient pass.
        AssertionError: also if grad_f returns None (what ``tape.gradient`` gives for
            a source it did not record: a tensor not watched, an integer tensor).
        ValueError: if f does not return a scalar or grad_f returns another shape.
    """
    x64 = np.array(x, dtype=np.float64)
    x_t = tf.constant(x64)
    returned = grad_f(tf.constant(x64))
    if returned is None:
        raise AssertionError(
            "your gradient function returned None. tape.gradient returns None for a "
            "source it did not record: most often a tensor that was not watched (the "
            "tape watches tf.Variables by itself; call tape.watch(x) for a tensor), an "
            "integer tensor (the tape watches only floating-point and complex tensors; "
            "cast first), a source the target does not depend on, or a computation done "
            "outside the `with tf.GradientTape()` block."
        )
    mine = np.asarray(returned, dtype=np.float64)
    if mine.shape != x64.shape:
        raise ValueError(
            f"grad_f returned shape {mine.shape}, but x has shape {x64.shape}: a "
            "gradient has the shape of what it differentiates"
        )
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y = _scalar(f, x_t)
    fx = float(y)
    taped = tape.gradient(y, x_t) if y.dtype.is_floating else None
    tape_grad = None if taped is None else np.asarray(taped, np.float64)

    flat = x64.reshape(-1)
    steps = h * np.maximum(1.0, np.abs(flat))
    central = np.zeros_like(flat)
    # The central difference's noise, in two parts: |D(h) - D(2h)|, which the truncation
    # error (f bending within the step) dominates unless rounding is larger, and the
    # rounding of f itself, 4 eps64 |f| / h.
    bend, rounding = np.zeros_like(flat), np.zeros_like(flat)
    checked = np.ones(flat.size, bool)
    if coordinates is not None and coordinates < flat.size:
        if tape_grad is None:
            raise ValueError("coordinates needs an f that the tape can differentiate")
        checked[:] = False
        checked[np.random.default_rng(0).choice(flat.size, coordinates, False)] = True
    for i in np.flatnonzero(checked):
        values = []
        for s in (steps[i], 2 * steps[i]):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += s
            minus[i] -= s
            f_plus = float(_scalar(f, tf.constant(plus.reshape(x64.shape))))
            f_minus = float(_scalar(f, tf.constant(minus.reshape(x64.shape))))
            values.append((f_plus - f_minus) / (2 * s))
            if s == steps[i]:
                f_scale = max(abs(f_plus), abs(f_minus), abs(fx))
        central[i] = values[0]
        bend[i] = abs(values[0] - values[1])
        rounding[i] = 4 * _EPS64 * f_scale / steps[i]
    central = central.reshape(x64.shape)
    bend, rounding = bend.reshape(x64.shape), rounding.reshape(x64.shape)
    noise = bend + rounding
    checked = checked.reshape(x64.shape)

    def rel_err(ref, ref_noise):
        floor = np.maximum(ref_noise / tol, 1e-300)
        scale = np.maximum(np.maximum(np.abs(mine), np.abs(ref)), floor)
        return np.abs(mine - ref) / scale

    r_fd = np.where(checked, rel_err(central, noise), 0.0)
    if tape_grad is not None:
        tape_noise = 64 * _EPS64 * max(np.abs(tape_grad).max(initial=0.0), abs(fx))
        r_tape = rel_err(tape_grad, tape_noise)
    else:
        r_tape = np.zeros_like(r_fd)
    worst_r = np.maximum(r_fd, r_tape)
    worst_r = np.where(np.isnan(worst_r), np.inf, worst_r)
    if worst_r.max(initial=0.0) <= tol and np.all(np.isfinite(mine)):
        return None

    index = np.unravel_index(int(np.argmax(worst_r)), x64.shape)
    where = _fmt_index(index) or "(the scalar)"
    ref = tape_grad if tape_grad is not None else central
    lines = [
        f"your gradient is wrong at coordinate {where} of {mine.size} (x has shape "
        f"{x64.shape}):",
        f"  yours:               {float(mine[index])!r}",
    ]
    if tape_grad is not None:
        lines.append(f"  tf.GradientTape:     {float(tape_grad[index])!r}")
    else:
        lines.append("  tf.GradientTape:     (cannot differentiate f; not compared)")
    if checked[index]:
        lines.append(
            f"  central difference:  {float(central[index])!r} (step {steps.reshape(x64.shape)[index]:.1e})"
        )
    else:
        lines.append("  central difference:  (not computed at this coordinate)")
    if tape_grad is not None:
        lines.append(
            f"  relative error against the tape: {r_tape[index]:.2e} ({_verdict(r_tape[index])})"
        )
    if tape_grad is not None:
        r_between = np.abs(tape_grad - central) / np.maximum(
            np.maximum(np.abs(tape_grad), np.abs(central)),
            np.maximum(noise / tol, 1e-300),
        )
        r_between = np.where(checked, r_between, 0.0)
    step_advice = None
    if checked[index] and noise[index] / tol > max(
        abs(mine[index]), abs(central[index])
    ):
        # The floor, not the gradient, set the scale: r is the difference in units of
        # the central difference's own noise (times tol), not a relative error of the
        # values, and the thresholds of Chapter 8 do not apply to it.
        lines.append(
            "  the central difference's own noise (|D(h) - D(2h)| plus the rounding of "
            f"f, 4 eps64 |f| / h) is {noise[index]:.2e}, more than {tol:g} of the "
            "larger of yours and the central difference, so yours is judged against "
            "that noise and differs by "
            f"{abs(mine[index] - central[index]) / noise[index]:.3g} times it."
        )
        if tape_grad is not None and r_between[index] <= tol:
            lines.append(
                "  The central difference agrees with the tape within that noise: the "
                "step is not at fault."
            )
        elif bend[index] > rounding[index]:
            step_advice = "smaller"
            lines.append(
                f"  Most of that noise is |D(h) - D(2h)| = {bend[index]:.2e}: f bends "
                "within the step (or has a kink). Try a smaller h; if the central "
                "difference then agrees with the tape but not with yours, your gradient "
                "is off."
            )
        else:
            step_advice = "larger"
            lines.append(
                f"  Most of that noise is the rounding of f ({rounding[index]:.2e}, with "
                f"|f| near {abs(fx):.3g}): a smaller h makes it worse. Try a larger h "
                "(while f does not bend within it), or subtract f's constant offset: "
                "the rounding grows with |f|, not with the gradient."
            )
    elif checked[index]:
        lines.append(
            f"  relative error against central differences: {r_fd[index]:.2e} "
            f"({_verdict(r_fd[index])})"
        )
    bad = worst_r > tol
    hints = []
    if tape_grad is not None and r_between.max() > tol:
        if step_advice is not None:
            hints.append(
                "The tape and central differences disagree with each other here too: "
                f"the step, as above (a {step_advice} h), or a kink near x (try another "
                "x)."
            )
        else:
            hints.append(
                "The tape and central differences disagree with each other here too: f "
                "may have a kink near x (try another x or a larger tol), bend within the "
                "step (try a smaller h), or compute in float32 (central differences need "
                "float64)."
            )
    ok = np.abs(ref) > 0
    if ok.sum() >= 2 and np.all(np.isfinite(mine)):
        c = _uniform(mine[ok] / ref[ok], rel=1e-6)
        if c is not None and abs(c + 1) < 1e-6:
            hints.append("Every coordinate has the opposite sign: a minus sign?")
        elif c is not None and abs(c - 1) > 1e-3:
            hints.append(
                f"Every coordinate is {c:.6g} times the reference: a constant factor "
                "(a missing 1/2, a 2 from a square, a 1/n from a mean)?"
            )
    if mine.ndim == 2 and mine.shape[0] == mine.shape[1] and not hints:
        if np.allclose(mine.T, ref, rtol=1e-7, atol=0) and not np.allclose(mine, ref):
            hints.append("Your gradient is the transpose of the right one.")
    if not hints and bad.sum() < bad.size:
        wrong = [
            _fmt_index(np.unravel_index(i, x64.shape)) or "()"
            for i in np.flatnonzero(bad)
        ]
        shown = ", ".join(wrong[:6]) + (", ..." if len(wrong) > 6 else "")
        hints.append(
            f"{bad.sum()} of {bad.size} coordinates are wrong ({shown}); the others agree."
        )
    raise AssertionError("\n".join(lines + hints))


# --------------------------------------------------------------------------------------
# training_step()
# --------------------------------------------------------------------------------------


def _named_values(variables, who):
    """[(name, float64 or int array)] from a list, a dict or a callable returning one."""
    if callable(variables):
        variables = variables()
    if isinstance(variables, dict):
        items = list(variables.items())
    else:
        items = [
            (getattr(v, "path", None) or getattr(v, "name", None) or f"#{i}", v)
            for i, v in enumerate(variables)
        ]
    out = []
    for name, var in items:
        value = var.numpy() if hasattr(var, "numpy") else np.asarray(var)
        out.append((str(name), np.array(value, copy=True)))
    if not out:
        raise ValueError(f"{who} gave no variables to compare")
    return out


def _unpack(pair, who):
    if not (isinstance(pair, tuple | list) and len(pair) == 2 and callable(pair[0])):
        raise TypeError(
            f"{who}() must return a pair (step, variables): a function that performs one "
            "training step on a batch, and the variables to compare, got "
            f"{type(pair).__name__}"
        )
    return pair


def _step_differences(mine, ref, rtol, atol):
    """[(name, ref name, index, yours, reference)] of the variables that differ, each at
    its entry furthest outside the tolerance."""
    found = []
    for (name, a), (ref_name, b) in zip(mine, ref, strict=True):
        if a.dtype.kind in "fc":
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            both_nan = np.isnan(a64) & np.isnan(b64)
            excess = np.abs(a64 - b64) - (atol + rtol * np.abs(b64))
            excess = np.where(both_nan, -1.0, np.nan_to_num(excess, nan=np.inf))
            bad = excess > 0
        else:
            bad = a != b
            excess = bad.astype(float)
        if np.any(bad):
            index = np.unravel_index(int(np.argmax(excess)), a.shape)
            found.append((name, ref_name, index, a[index], b[index]))
    return found


def training_step(
    make_mine,
    make_reference,
    batches,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
) -> None:
    """Check a training step (yours, or one restored from a checkpoint) against a
    reference step, variable by variable, after every step.

    Args:
        make_mine: a function with no arguments that returns a pair ``(step, variables)``.
            ``step(*batch)`` performs one training step on one batch (the loss, its
            gradients, the optimizer's update); what it returns is ignored.
            ``variables`` is what to compare: a list of variables (``tf.Variable``,
            Keras variables or anything ``numpy()`` converts), a dict ``name ->
            variable``, or a function with no arguments that returns either (called
            again after every step, for lists that grow, such as ``optimizer.variables``
            of a Keras optimizer that builds its state on the first step). Typically
            ``model.variables + optimizer.variables``: the weights, the
            non-trainable statistics of batch normalization, the optimizer's step
            counter and moments.
        make_reference: the same for the reference, e.g. the original model and
            optimizer going on training, or a Keras ``train_on_batch``. Its variables
            are matched with yours by position: same number, same shapes.
        batches: a sequence of batches; step t (counting from 1) calls
            ``step(*batches[t - 1])`` (a batch that is not a tuple is passed as the
            only argument). Both steps see the same batches.
        rtol, atol: the tolerance. An entry agrees if
            ``|yours - reference| <= atol + rtol * |reference|`` (NaN agrees with NaN
            only); integer variables (step counters) must be equal. The default, 0 and
            0, asks for bit-identical values: a training step restored from a
            checkpoint and run under op determinism (``gdbook.setup`` turns it on)
            reproduces the original exactly, and anything less means some state was
            not restored. For a step you wrote by hand, whose float32 operations may be
            ordered differently from the reference's, pass e.g. ``rtol=1e-5``.

    What is compared: every entry of every variable, first before any step (step 0:
    the state you start from) and then after each step.

    Raises:
        AssertionError: at the first step where any variable differs (step 0 if the
            starting states differ), naming the first such variable in the list (your
            name and the reference's, its position and shape; an integer variable such
            as a step counter first, wherever it is in the list), the entry that differs
            most, both values, and a hint: a variable not restored (step 0), a step
            counter that differs, or, when every variable agreed before the step, a
            step that reads state not among those compared or computes differently.
            The other variables that differ at that step are listed.
        TypeError: if a factory does not return ``(step, variables)``.
        ValueError: if the two give different numbers of variables or shapes.

    Returns None when the two agree at every step.
    """
    mine_step, mine_vars = _unpack(make_mine(), "make_mine")
    ref_step, ref_vars = _unpack(make_reference(), "make_reference")
    batches = list(batches)
    for t in range(len(batches) + 1):
        if t > 0:
            batch = batches[t - 1]
            args = batch if isinstance(batch, tuple) else (batch,)
            mine_step(*args)
            ref_step(*args)
        mine = _named_values(mine_vars, "make_mine")
        ref = _named_values(ref_vars, "make_reference")
        when = "before the first step" if t == 0 else f"after step {t}"
        if len(mine) != len(ref):
            message = (
                f"{when}, you compare {len(mine)} variables and the reference "
                f"{len(ref)}: give the same list for both (an optimizer whose state is "
                "built on its first step has fewer variables before it; build it, e.g. "
                "optimizer.build(model.trainable_variables), before restoring)"
            )
            if t == 0:
                raise ValueError(message)
            raise AssertionError(message)
        for position, ((name, a), (ref_name, b)) in enumerate(
            zip(mine, ref, strict=True)
        ):
            if a.shape != b.shape:
                raise ValueError(
                    f"variable {position} ({name!r}) has shape {a.shape} but the "
                    f"reference's ({ref_name!r}) has shape {b.shape}: give the "
                    "variables in the same order"
                )
        found = _step_differences(mine, ref, rtol, atol)
        if not found:
            continue
        # an integer that differs (a step counter) explains the rest: report it first
        found.sort(key=lambda f: not np.issubdtype(np.asarray(f[3]).dtype, np.integer))
        name, ref_name, index, a, b = found[0]
        position = [n for n, _ in mine].index(name)
        shape = next(v.shape for n, v in mine if n == name)
        where = f"entry {name}{_fmt_index(index)}" if len(index) else "its value"
        if np.issubdtype(np.asarray(a).dtype, np.integer):
            difference = f"  difference {int(a) - int(b):+d}"
        else:
            rel = abs(float(a) - float(b)) / max(abs(float(b)), 1e-30)
            difference = f"  relative difference {rel:.2e}"
        lines = [
            f"your training and the reference part {when} (steps count from 1), "
            f"variable {position} {name!r} (the reference's {ref_name!r}) of shape "
            f"{shape}, {where}:",
            f"  yours:     {a}",
            f"  reference: {b}",
            difference + f" (tolerance {rtol:g} relative plus {atol:g})",
        ]
        if len(found) > 1:
            others = [repr(n) for n, *_ in found[1:]]
            shown = ", ".join(others[:5]) + (", and more" if len(others) > 5 else "")
            lines.append(f"{len(others)} other variables differ {when} too: {shown}.")
        integer = np.issubdtype(np.asarray(a).dtype, np.integer)
        if integer and t > 0:
            # the hint first, right after the variable it concerns
            lines.insert(
                4,
                "An integer that differs, most likely a step counter (iterations): it "
                "advances differently in your step (an optimizer applied twice per step, "
                "or not at all?); the other differences may all follow from it.",
            )
        if t == 0:
            lines.append(
                "The states you start from differ: a variable that was not restored? "
                "(A model or optimizer left out of the tf.train.Checkpoint, restored "
                "from another path, or an optimizer not built when restored.)"
            )
            if integer:
                lines.append(
                    "It is an integer, most likely the optimizer's step counter "
                    "(iterations): reset or not restored? Adam's bias correction and a "
                    "learning-rate schedule both read it."
                )
        elif not integer:
            before = "before the first step" if t == 1 else f"after step {t - 1}"
            lines.append(
                f"Every variable compared agreed {before}, so step {t} itself "
                "differs: it reads state that is not among the variables "
                "compared (the optimizer's moments or step counter, a random generator "
                "for dropout) or computes differently (the learning rate or its "
                "schedule, the loss, training=True or False)."
            )
        raise AssertionError("\n".join(lines))
    return None


# --------------------------------------------------------------------------------------
# schedule()
# --------------------------------------------------------------------------------------


def schedule(mine, reference, steps: int = 100, *, rtol: float = 1e-5) -> None:
    """Check a learning-rate schedule against a reference, e.g. its Keras twin.

    Args:
        mine: your schedule, a callable ``step -> learning rate``. It is called the way a
            Keras optimizer calls a schedule: with the number of updates done so far, as an
            int64 scalar tensor (0 for the first update).
        reference: the reference schedule, e.g.
            ``keras.optimizers.schedules.CosineDecay(0.1, decay_steps=100)``, called the
            same way.
        steps: the steps compared are 0, 1, ..., steps - 1.
        rtol: the relative tolerance (see below).

    Speed: a schedule written with TensorFlow ops usually accepts a vector of steps; it
    is then called once with all the steps, and the result is used only if it has one
    rate per step and equals the scalar calls at six probe steps (0, 1, a third, a half,
    the last two) to 4 float32 ulps (a vectorised kernel may round differently).
    Otherwise (a Python ``if`` on the step, another shape, an error, a probe that
    differs) it is called once per step, as an optimizer would.

    What is compared: the two rates at every step, as float64 numbers. A step passes if
    ``|yours - reference| <= rtol * |reference| + 1e-6 * max_s |reference(s)|``: Keras
    computes in float32 (relative rounding about 1e-7 per operation, so 1e-5 leaves room
    for a different order of operations), and the absolute term (a millionth of the
    largest rate) keeps a rate that decays to nearly 0 from failing on rounding alone.

    Raises:
        AssertionError: naming the first step that differs, both rates and the relative
            difference, and a pattern where one is clear: your schedule one step ahead of
            or behind the reference (counting steps from 1, or the boundary test ``<`` for
            ``<=``), or a constant factor (the initial rate).
        ValueError: if a schedule does not return a scalar.
    """

    def at(fn, who, s):
        v = tf.convert_to_tensor(fn(tf.constant(s, tf.int64)))
        if v.shape.num_elements() != 1:
            raise ValueError(f"{who} returned shape {v.shape} at step {s}, not a scalar")
        return float(tf.reshape(v, []))

    def vectorized(fn, who):
        """All steps from one call on a vector of steps, if fn accepts one and its
        values agree with scalar calls at a few steps (to 4 float32 ulps: vectorised
        kernels may round differently); else None."""
        try:
            v = tf.convert_to_tensor(fn(tf.range(steps + 1, dtype=tf.int64)))
        except Exception:
            return None
        if tuple(v.shape) != (steps + 1,):
            return None
        out = np.asarray(v, np.float64)
        for s in sorted({0, 1, steps // 3, steps // 2, steps - 1, steps} - {-1}):
            scalar = at(fn, who, s)
            if not abs(scalar - out[s]) <= 4 * _EPS32 * abs(scalar):
                return None
        return out

    def values(fn, who):
        out = vectorized(fn, who)
        if out is not None:
            return out
        return np.array([at(fn, who, s) for s in range(steps + 1)])

    theirs_all = values(reference, "the reference")
    mine_all = values(mine, "your schedule")
    theirs, yours = theirs_all[:steps], mine_all[:steps]
    atol = 1e-6 * np.abs(theirs_all).max(initial=0.0)

    def close(a, b):
        return np.abs(a - b) <= rtol * np.abs(b) + atol

    ok = close(yours, theirs)
    if ok.all():
        return None
    s = int(np.argmin(ok))
    lines = [
        f"your schedule and the reference part at step {s} (the step passed to the "
        "schedule: the number of updates done so far, 0 for the first):",
        f"  yours:     {float(yours[s])!r}",
        f"  reference: {float(theirs[s])!r}",
        f"  relative difference {abs(yours[s] - theirs[s]) / max(abs(theirs[s]), 1e-300):.2e} "
        f"(tolerance {rtol:g} relative plus {atol:.1e})",
    ]
    if s > 0:
        lines.append(f"Steps 0 to {s - 1} agree.")
    if close(yours[: steps - 1], theirs_all[1:steps]).all():
        lines.append(
            "Your schedule is one step ahead everywhere: yours(step) = reference(step + 1). "
            "Counting steps from 1 instead of 0, or a boundary test < where the reference "
            "has <=?"
        )
    elif steps > 1 and close(yours[1:], theirs[:-1]).all():
        lines.append(
            "Your schedule is one step behind everywhere: yours(step) = reference(step - 1). "
            "Subtracting 1 from the step, or a boundary test <= where the reference has <?"
        )
    else:
        nonzero = np.abs(theirs) > atol
        c = (
            _uniform(yours[nonzero] / theirs[nonzero], rel=rtol * 10)
            if nonzero.any()
            else None
        )
        if c is not None:
            lines.append(
                f"Yours is {c:.6g} times the reference at every step: the initial rate?"
            )
        elif ok[s:].sum() > 0 and not ok[s : s + 1].any():
            bad = np.flatnonzero(~ok)
            lines.append(
                f"{bad.size} of {steps} steps differ, the first {s}, the last {bad[-1]}: a "
                "boundary (< or <=), a staircase (floor) or a warm-up?"
            )
    raise AssertionError("\n".join(lines))


# --------------------------------------------------------------------------------------
# custom_gradient()
# --------------------------------------------------------------------------------------


def custom_gradient(mine, forward, backward, x, *, rtol: float = 1e-6) -> None:
    """Check a function with a gradient of your choosing (``tf.custom_gradient``): its
    values against a reference function, and what the tape back-propagates through it
    against the gradient you meant it to have.

    Args:
        mine: your function, a tensor of the shape of ``x`` -> a tensor (any shape),
            typically decorated with ``@tf.custom_gradient``.
        forward: the reference for the values, called the same way, e.g. ``tf.round``.
        backward: the gradient you intend, as a vector-Jacobian product:
            ``backward(x, upstream)`` returns the gradient of ``sum(upstream * mine(x))``
            with respect to ``x``, a tensor of the shape of ``x``; ``upstream`` has the
            shape of ``mine(x)``. For a straight-through estimator it is
            ``lambda x, upstream: upstream``.
        x: the input, an array or a tensor; a floating dtype is kept (Python numbers
            and lists become float32).
        rtol: the tolerance (see below).

    What is compared: (1) ``mine(x)`` with ``forward(x)``, entry by entry; (2) for a
    fixed random ``upstream`` (standard normal, seeded: random so that a gradient that
    ignores it or moves entries around shows), the tape's gradient of
    ``sum(upstream * mine(x))`` with respect to ``x`` with ``backward(x, upstream)``.
    An entry passes if ``|yours - reference| <= rtol * (|reference| + max |reference|)``:
    relative, with an absolute part (``rtol`` times the largest reference entry) so that
    entries near zero do not fail on float32 rounding.

    Raises:
        AssertionError: if a value differs (the first entry that does, both values, the
            input there); if the tape gives ``None`` (no gradient flows through your
            function); or if a gradient entry differs (the worst entry, both values, and
            a pattern where one is clear: the upstream gradient ignored, a constant
            factor or the opposite sign (the same at every entry, zeros included),
            zero everywhere).
        ValueError: if ``mine(x)`` and ``forward(x)`` have different shapes, or
            ``backward`` returns a shape other than that of ``x``.
    """
    x_t = tf.convert_to_tensor(x)
    if not x_t.dtype.is_floating:
        x_t = tf.cast(x_t, tf.float32)
    shape = tuple(x_t.shape)

    def close(a, b):
        return np.abs(a - b) <= rtol * (np.abs(b) + np.abs(b).max(initial=0.0))

    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = tf.convert_to_tensor(mine(x_t))
    yours = np.asarray(out, np.float64)
    theirs = np.asarray(forward(x_t), np.float64)
    if yours.shape != theirs.shape:
        raise ValueError(
            f"your function returned shape {yours.shape}, the reference {theirs.shape}"
        )
    ok = close(yours, theirs)
    if not ok.all():
        flat = int(np.argmin(ok.reshape(-1)))
        index = np.unravel_index(flat, yours.shape)
        where = _fmt_index(index) or "(the scalar)"
        x_there = np.asarray(x_t).reshape(-1)[flat] if yours.shape == shape else None
        raise AssertionError(
            f"the values differ at entry {where} ({int((~ok).sum())} of {ok.size} "
            "entries differ):\n"
            f"  yours:     {float(yours[index])!r}\n"
            f"  reference: {float(theirs[index])!r}\n"
            + (f"  input there: {float(x_there)!r}\n" if x_there is not None else "")
            + "The value is what the forward pass returns: with tf.custom_gradient, the "
            "first element of the pair (value, grad) your function returns."
        )
    upstream = tf.constant(
        np.random.default_rng(19).normal(size=tuple(out.shape)), dtype=out.dtype
    )
    with tape:
        weighted = tf.reduce_sum(upstream * out)
    taped = tape.gradient(weighted, x_t)
    if taped is None:
        raise AssertionError(
            "the tape gives no gradient through your function (None). Possible causes: "
            "an operation without a gradient (tf.round, tf.floor, tf.argmax, a cast to "
            "an integer) on the path, outside @tf.custom_gradient (wrap the function and "
            "return the pair (value, grad), where grad(upstream) returns the gradient "
            "you want); your grad function returns None; or a computation outside "
            "TensorFlow (NumPy, .numpy()), which the tape does not record."
        )
    got = np.asarray(taped, np.float64)
    want = np.asarray(backward(x_t, upstream), np.float64)
    if want.shape != shape:
        raise ValueError(
            f"backward returned shape {want.shape}, but x has shape {shape}: a gradient "
            "has the shape of what it differentiates"
        )
    ok = close(got, want)
    if ok.all():
        return None
    index = np.unravel_index(int(np.argmax(np.abs(got - want))), shape)
    where = _fmt_index(index) or "(the scalar)"
    lines = [
        f"the gradient through your function differs at entry {where} "
        f"({int((~ok).sum())} of {ok.size} entries differ), for a random upstream "
        "gradient:",
        f"  yours (the tape through your function): {float(got[index])!r}",
        f"  intended (backward(x, upstream)):       {float(want[index])!r}",
    ]
    with_ones = np.asarray(backward(x_t, tf.ones_like(upstream)), np.float64)
    # A constant factor c (or -1) needs the same c at every entry: zero where the
    # intended gradient is zero, and c itself away from 1 (else it is not a factor).
    nonzero = np.abs(want) > 0
    c = _uniform(got[nonzero] / want[nonzero], rel=rtol * 10) if nonzero.any() else None
    if c is not None and (np.any(got[~nonzero] != 0) or abs(c - 1) <= 10 * rtol):
        c = None
    if not np.any(got):
        lines.append(
            "Your gradient is zero everywhere: an operation with a zero gradient (tf.sign, "
            "a step function) on the path, or a grad function that returns zeros?"
        )
    elif close(got, with_ones).all():
        lines.append(
            "Yours is the intended gradient for an upstream gradient of ones: your grad "
            "function ignores `upstream`. By the chain rule it must pass it on (multiply "
            "by it), not replace it."
        )
    elif c is not None and abs(c + 1) < 10 * rtol:
        lines.append("Every entry has the opposite sign: a minus sign?")
    elif c is not None:
        lines.append(
            f"Every entry is {c:.6g} times the intended one: a constant factor?"
        )
    elif close(got, want)[nonzero].all() and not nonzero.all():
        lines.append(
            "Yours agrees where the intended gradient is non-zero, but is non-zero at "
            f"{int((~ok & ~nonzero).sum())} entries where it should be 0: a missing mask "
            "(a clipped straight-through estimator passes the gradient only where "
            "|x| <= 1)?"
        )
    raise AssertionError("\n".join(lines))


__all__ += ["custom_gradient"]
