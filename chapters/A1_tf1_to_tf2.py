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
# (app-tf1-to-tf2)=
# # From TF1 to TF2
#
# The source documents this book reproduces were written for TensorFlow 1. Most of their programs stop at
# their first TF1 line on TensorFlow 2: `tf.Session`, `tf.placeholder` and `tf.log` no longer exist under those
# names, `tf.contrib` and the MNIST tutorial reader were deleted, and the optimizers moved to Keras. Three
# changes explain nearly every row of the table below:
#
# 1. **Eager execution is the default.** An operation runs when Python reaches it, so there is no graph to
#    build first, no session to run it in, no placeholder to feed and no initializer to call. A graph is
#    still available, on request, by decorating a function with `tf.function`.
# 2. **The namespace was tidied.** Hundreds of top-level names moved into submodules (`tf.log` became
#    `tf.math.log`), arguments were renamed (`reduction_indices` became `axis`), and `tf.train`'s optimizers
#    and schedules gave way to `keras.optimizers`.
# 3. **The TF1 API was frozen, not thrown away.** Most of it lives on, unchanged, under `tf.compat.v1`.
#    Not all: `tf.contrib` and the tutorials were never moved there, the Estimator API was removed in
#    TensorFlow 2.16, and since that version `tf.keras` is Keras 3, which dropped every TF1 API, so the
#    parts of `tf.compat.v1` that were built on Keras (`tf.compat.v1.layers`, the RNN cells of
#    `tf.compat.v1.nn.rnn_cell`) now raise. {ref}`A section below <app-tf1-keras3>` shows each.
#
# Throughout the book, the sources' programs are run "TF1" style through `tf.compat.v1` inside an explicit
# `with tf.Graph().as_default():` block, next to the TF2 way. This appendix collects every TF1 API that the
# sources use, with its `tf.compat.v1` spelling, its TF2 replacement and the section of the book where both
# are shown, and then checks the whole table against the installed TensorFlow. Three sections after it
# cover what a port meets beyond renaming: the removals that came with TensorFlow 2.16 and Keras 3,
# checkpoints written by TF1, and the semantics of `tf.function`, which replaces the graph.

# %%
import gdbook

gdbook.setup()  # quiet TF logs, seeds, op determinism, plot style

import numpy as np
import tensorflow as tf

# %% [markdown]
# The other imports: Keras, `inspect` and `importlib` to look names and arguments up, and `IPython.display`
# to render the table.

# %%
import contextlib
import importlib
import importlib.util
import inspect
import io
import math
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

import keras
from IPython.display import Markdown
from packaging.version import Version

print("TensorFlow", tf.__version__, "| Keras", keras.__version__)


# %% [markdown]
# (app-tf1-table)=
# ## The table
#
# Each row below is one entry of a Python list, and the table is generated from that list (open the cell to
# see it), so the table and the checks in the next section cannot drift apart. In the first column, ✓ marks
# a name that still exists under the same spelling in the installed TensorFlow 2 and ✗ one that does not;
# both marks are computed, not typed. A name that still exists does not always mean the same thing: the
# second column says where it changed. Below each TF1 name, "`tf.compat.v1` ✓" means that the TF1 function
# still runs under the TF1 name with `tf.` replaced by `tf.compat.v1.` (`tf.log` becomes
# `tf.compat.v1.log`, `tf.train.AdamOptimizer` becomes `tf.compat.v1.train.AdamOptimizer`), a rule the
# next section checks row by row; **gone** means there is no such copy.


# %% mystnb={"markdown_format": "myst"} tags=["hide-input"]
class Row(NamedTuple):
    """One TF1 API of the source documents. Several spellings are separated by ' | ';
    `name(keyword=)` means the function must accept that keyword argument."""

    tf1: str  # as the source documents write it
    compat: str  # the tf.compat.v1 spelling that still runs; "" if gone
    tf2: str  # the TF2 way ("" if nothing is needed)
    note: str  # what changed, in a few words
    where: str  # the section of the book where both are shown


ROWS = [
    Row("tf.Graph", "tf.compat.v1.Graph", "tf.function",
        "`tf.function` traces Python into a graph; `tf.Graph` itself remains",
        "[2 · Graph mode](02_tf_gradients.md#graph-mode-then-and-now)"),
    Row("tf.Session", "tf.compat.v1.Session", "tf.function",
        "call the function, or just run eagerly; no session",
        "[2 · Graph mode](02_tf_gradients.md#graph-mode-then-and-now)"),
    Row("tf.placeholder", "tf.compat.v1.placeholder",
        "tf.function(input_signature=) | tf.TensorSpec",
        "inputs are function arguments; `feed_dict` is gone",
        "[2 · Graph mode](02_tf_gradients.md#graph-mode-then-and-now)"),
    Row("tf.global_variables_initializer", "tf.compat.v1.global_variables_initializer", "",
        "nothing: a `tf.Variable` holds its value from creation",
        "[2 · Graph mode](02_tf_gradients.md#graph-mode-then-and-now)"),
    Row("tf.local_variables_initializer", "tf.compat.v1.local_variables_initializer", "",
        "nothing: TF2 has no collection of local variables",
        "[4 · Momentum](04_optimizers.md#momentum-three-ways-on-the-sources-trace)"),
    Row("tf.enable_eager_execution", "tf.compat.v1.enable_eager_execution", "",
        "nothing: eager is the default",
        "{ref}`3 · What the tape records <tape-records>`"),
    Row("tf.get_variable", "tf.compat.v1.get_variable",
        "tf.Variable | keras.layers.Layer.add_weight",
        "no variable scopes or name-based sharing: keep a Python reference",
        "[2 · Lists of ys and xs](02_tf_gradients.md#lists-of-ys-and-xs)"),
    Row("tf.trainable_variables", "tf.compat.v1.trainable_variables",
        "tf.Module.trainable_variables | keras.Model.trainable_variables",
        "no global collection: ask the model or module",
        "[2 · A tiny linear system](02_tf_gradients.md#a-tiny-linear-system-solved-by-hand-in-graph-mode)"),
    Row("tf.assign", "tf.compat.v1.assign", "tf.Variable.assign",
        "a method of the variable, run at once",
        "[4 · Two assignments](04_optimizers.md#why-the-source-runs-the-two-assignments-separately)"),
    Row("tf.assign_add", "tf.compat.v1.assign_add", "tf.Variable.assign_add",
        "a method of the variable, run at once",
        "[4 · Adagrad](04_optimizers.md#the-adagrad-mystery-solved)"),
    Row("tf.group", "tf.compat.v1.group", "tf.group",
        "rarely needed: eager code and `tf.function` run stateful ops in program order",
        "[4 · Two assignments](04_optimizers.md#why-the-source-runs-the-two-assignments-separately)"),
    Row("tf.gradients", "tf.compat.v1.gradients", "tf.GradientTape.gradient",
        "`tf.gradients` still exists but raises outside a `tf.function`",
        "[2 · Graph mode](02_tf_gradients.md#graph-mode-then-and-now), "
        "{ref}`3 <tape-records>`"),
    Row("tf.gradients(grad_ys=)", "tf.compat.v1.gradients(grad_ys=)",
        "tf.GradientTape.gradient(output_gradients=)",
        "renamed argument",
        "[2 · grad_ys](02_tf_gradients.md#grad_ys-weighting-the-outputs)"),
    Row("tf.gradients(stop_gradients=)", "tf.compat.v1.gradients(stop_gradients=)",
        "tf.stop_gradient",
        "no tape argument: stop the flow in the forward pass",
        "[2 · stop_gradients](02_tf_gradients.md#stop_gradients-versus-tfstop_gradient-partial-and-total-derivatives)"),
    Row("tf.train.GradientDescentOptimizer", "tf.compat.v1.train.GradientDescentOptimizer",
        "keras.optimizers.SGD",
        "`minimize` needs a callable loss and `var_list`; or `apply_gradients`",
        "[6 · TF1 graph](06_softmax.md#a-tf1-a-graph-placeholders-and-a-session), {ref}`below <app-tf1-worked>`"),
    Row("tf.train.MomentumOptimizer", "tf.compat.v1.train.MomentumOptimizer",
        "keras.optimizers.SGD(momentum=)",
        "momentum has no default in TF1; same trajectory at a constant rate",
        "[4 · Momentum](04_optimizers.md#momentum-three-ways-on-the-sources-trace)"),
    Row("tf.train.AdagradOptimizer", "tf.compat.v1.train.AdagradOptimizer",
        "keras.optimizers.Adagrad(initial_accumulator_value=, epsilon=)",
        "accumulator starts at 0.1 in both; Keras adds `epsilon` inside the root",
        "[4 · Adagrad](04_optimizers.md#the-adagrad-mystery-solved)"),
    Row("tf.train.AdamOptimizer", "tf.compat.v1.train.AdamOptimizer",
        "keras.optimizers.Adam(beta_1=, beta_2=)",
        "`beta1` became `beta_1`; a different default `epsilon`",
        "[4 · Conventions](04_optimizers.md#the-conventions-that-differ)"),
    Row("tf.train.Optimizer.minimize(global_step=)",
        "tf.compat.v1.train.Optimizer.minimize(global_step=)",
        "keras.optimizers.Optimizer.iterations",
        "the optimizer counts its own steps",
        "[5 · A decaying rate](05_schedules.md#a-decaying-rate-in-the-source-document-tf1)"),
    Row("tf.train.exponential_decay", "tf.compat.v1.train.exponential_decay",
        "keras.optimizers.schedules.ExponentialDecay",
        "a schedule object, called with the step",
        "[5 · Ten schedules](05_schedules.md#ten-schedules-by-hand-in-tf1-and-in-keras)"),
    Row("tf.train.natural_exp_decay", "tf.compat.v1.train.natural_exp_decay",
        "keras.optimizers.schedules.ExponentialDecay",
        "with decay rate $e^{-k}$ (no class of its own)",
        "[5 · Ten schedules](05_schedules.md#ten-schedules-by-hand-in-tf1-and-in-keras)"),
    Row("tf.train.inverse_time_decay", "tf.compat.v1.train.inverse_time_decay",
        "keras.optimizers.schedules.InverseTimeDecay",
        "a schedule object, called with the step",
        "[5 · Ten schedules](05_schedules.md#ten-schedules-by-hand-in-tf1-and-in-keras)"),
    Row("tf.nn.l2_loss", "tf.compat.v1.nn.l2_loss", "tf.nn.l2_loss | keras.regularizers.L2",
        "unchanged; $\\tfrac12\\sum w^2$, so `L2(beta / 2)` is `beta * l2_loss`",
        "[5 · L2](05_schedules.md#l2-regularization-three-conventions)"),
    Row("tf.contrib.layers.l2_regularizer", "", "keras.regularizers.L2",
        "`tf.contrib` was removed; `L2(scale / 2)` gives the same penalty",
        "[5 · L2](05_schedules.md#l2-regularization-three-conventions)"),
    Row("tensorflow.examples.tutorials.mnist", "",
        "keras.datasets.mnist.load_data | tf.data.Dataset.batch",
        "its `input_data.read_data_sets` and `next_batch` were removed; this book ships its own copy",
        "[6 · The data](06_softmax.md#the-data)"),
    Row("tf.log", "tf.compat.v1.log", "tf.math.log",
        "moved; `log(softmax)` is unstable, use the logits",
        "[6 · A numerical trap](06_softmax.md#a-numerical-trap-in-the-textbook-loss)"),
    Row("tf.reduce_sum(reduction_indices=)", "tf.compat.v1.reduce_sum(reduction_indices=)",
        "tf.reduce_sum(axis=)",
        "renamed argument; the old name raises `TypeError`",
        "[8 · Log of 0](08_debugging.md#log-of-0), {ref}`below <app-tf1-worked>`"),
    Row("tf.summary.scalar | tf.summary.histogram", "tf.compat.v1.summary.scalar | "
        "tf.compat.v1.summary.histogram",
        "tf.summary.scalar(step=) | tf.summary.histogram(step=) | tf.summary.write",
        "same names, new meaning: they write at once to the default writer",
        "[8 · Logging gradients](08_debugging.md#logging-gradients)"),
    Row("tf.summary.merge_all | tf.summary.FileWriter",
        "tf.compat.v1.summary.merge_all | tf.compat.v1.summary.FileWriter",
        "tf.summary.create_file_writer",
        "no summary ops to merge: make a writer the default",
        "[8 · Logging gradients](08_debugging.md#logging-gradients)"),
    Row("tf.truncated_normal", "tf.compat.v1.truncated_normal",
        "tf.random.truncated_normal | keras.initializers.TruncatedNormal",
        "moved; as an initializer, a Keras class",
        "[7 · The source's network](07_cnn.md#the-sources-network)"),
    Row("tf.nn.dropout(keep_prob=)", "tf.compat.v1.nn.dropout(keep_prob=)",
        "tf.nn.dropout(rate=) | keras.layers.Dropout",
        "`rate` is the share dropped: `1 - keep_prob`",
        "[7 · TF1 graph](07_cnn.md#tf1-the-same-network-as-a-graph)"),
    Row("tf.train.NewCheckpointReader", "tf.compat.v1.train.NewCheckpointReader",
        "tf.train.load_checkpoint",
        "name-based TF1 checkpoints stay readable",
        "{ref}`below <app-tf1-checkpoints>`"),
]  # fmt: skip


def spellings(cell):
    """The API spellings in one cell of the table."""
    return [s.strip() for s in cell.split("|") if s.strip()]


def resolve(spelling):
    """The object a spelling names, e.g. 'tf.reduce_sum(axis=)'; raises if it does not exist.

    The dotted name is walked attribute by attribute from `tf`, `keras` or `tensorflow`
    (importing submodules that are not attributes yet); each `keyword=` in parentheses must
    be a named parameter of the callable (a catch-all **kwargs does not count)."""
    match = re.fullmatch(r"([\w.]+)(?:\((.*)\))?", spelling)
    path, keywords = match[1], re.findall(r"(\w+)=", match[2] or "")
    root, *parts = path.split(".")
    obj = {"tf": tf, "keras": keras, "tensorflow": tf}[root]
    module_name = "tensorflow" if root != "keras" else "keras"
    for part in parts:
        module_name += "." + part
        if not hasattr(obj, part) and inspect.ismodule(obj):
            obj = importlib.import_module(module_name)  # raises ModuleNotFoundError
        else:
            obj = getattr(obj, part)  # raises AttributeError
    target = obj.__init__ if inspect.isclass(obj) else obj
    parameters = inspect.signature(target).parameters if keywords else {}
    for keyword in keywords:
        if keyword not in parameters:
            raise TypeError(f"{path} has no argument {keyword!r}")
    return obj


def exists(spelling):
    try:
        resolve(spelling)
    except (AttributeError, ModuleNotFoundError, TypeError):
        return False
    return True


def breakable(spelling, longest=30):
    """`spelling` in backticks; a long one in two pieces that may wrap (before '(' or after the last dot)."""
    if len(spelling) <= longest:
        return f"`{spelling}`"
    cut = spelling.find("(") if "(" in spelling else spelling.rfind(".") + 1
    return f"`{spelling[:cut]}`<wbr>`{spelling[cut:]}`"


def code(cell, marks=False):
    """Markdown for one cell: each spelling in backticks, with ✓/✗ if asked."""
    return "<br>".join(
        breakable(s) + (" ✓" if exists(s) else " ✗") * marks for s in spellings(cell)
    )


def compat_of(tf1_spelling):
    """The rule every row follows: the TF1 name with `tf.` replaced by `tf.compat.v1.`."""
    return tf1_spelling.replace("tf.", "tf.compat.v1.", 1)


def table_markdown(rows):
    lines = [
        "| TF1, as in the sources | TF2: the replacement, what changed, where the book shows it |",
        "| --- | --- |",
    ]
    for row in rows:
        compat = "`tf.compat.v1` ✓" if row.compat else "`tf.compat.v1`: **gone**"
        tf2 = code(row.tf2) + "<br>" if row.tf2 else ""
        lines.append(
            f"| {code(row.tf1, marks=True)}<br>{compat} | {tf2}{row.note}; {row.where} |"
        )
    return "\n".join(lines)


table = table_markdown(ROWS)
Markdown(table)

# %% [markdown]
# Two words of caution. A `tf.compat.v1` function keeps its TF1 behaviour and is meant for use inside a
# graph; in eager code many of them raise or do something different (a placeholder cannot be created
# eagerly, for example). And a TF2 replacement is the idiomatic way to do the same job, which does not
# mean the same numbers: several have different defaults, which the linked sections measure.
#
# Besides these, the sources use many operations that crossed over unchanged. The list below is checked too,
# so that "unchanged" is a measured claim rather than a hope:

# %%
UNCHANGED = """tf.constant tf.Variable tf.zeros tf.matmul tf.add tf.multiply tf.square tf.pow tf.sqrt
tf.reshape tf.reduce_mean tf.reduce_sum(axis=) tf.argmax tf.equal tf.cast tf.float32 tf.nn.softmax
tf.nn.relu tf.nn.conv2d tf.nn.max_pool(ksize=) tf.stop_gradient tf.name_scope tf.GradientTape
tf.random.normal tf.data.Dataset.from_tensor_slices""".split()
missing_unchanged = [name for name in UNCHANGED if not exists(name)]
print(
    f"{len(UNCHANGED)} operations used as written; missing in TF {tf.__version__}:",
    missing_unchanged or "none",
)
assert not missing_unchanged

# %% [markdown]
# (app-tf1-checks)=
# ## Checking the table
#
# `resolve` (in the table's cell) walks a dotted name one attribute at a time, importing a submodule
# when the attribute is not there yet, and checks that every `keyword=` is a named parameter of the
# function. With it, three claims of the table become asserts. First, every TF1 name with a ✓ in the
# `tf.compat.v1.*` column exists under `tf.compat.v1`, with the arguments the sources pass:

# %%
compat_spellings = [s for row in ROWS for s in spellings(row.compat)]
compat_missing = [s for s in compat_spellings if not exists(s)]
print("\n".join(compat_spellings))
print(
    f"{len(compat_spellings)} tf.compat.v1 spellings checked, missing: {compat_missing or 'none'}"
)
assert not compat_missing
for row in ROWS:
    if row.compat:  # the rule the table relies on
        assert spellings(row.compat) == [compat_of(s) for s in spellings(row.tf1)], row

# %% [markdown]
# Second, every TF2 replacement exists, with the arguments the table names:

# %%
tf2_spellings = [s for row in ROWS for s in spellings(row.tf2)]
tf2_missing = [s for s in tf2_spellings if not exists(s)]
print(f"{len(tf2_spellings)} TF2 spellings checked, missing: {tf2_missing or 'none'}")
assert not tf2_missing

# %% [markdown]
# Third, the rows marked **gone** really are gone: their TF1 spelling fails in TF2, and `tf.compat.v1` has
# no copy of the module they came from either.

# %%
gone = [row.tf1 for row in ROWS if not row.compat]
for spelling in gone:
    try:
        resolve(spelling)
    except (AttributeError, ModuleNotFoundError) as err:
        print(f"{spelling}: {type(err).__name__}: {err}")
    else:
        raise AssertionError(f"{spelling} still exists")
assert not hasattr(tf.compat.v1, "contrib") and not hasattr(tf.compat.v1, "examples")

# %% [markdown]
# The TF1 import line of both MNIST programs in the sources is the first thing a reader of the old posts
# runs into. It fails before any TensorFlow code runs:

# %% tags=["raises-exception"]
with gdbook.expect_error(ModuleNotFoundError) as tutorial_reader:
    from tensorflow.examples.tutorials.mnist import input_data  # noqa: F401

# %% [markdown]
# The package `tensorflow.examples` is no longer installed with TensorFlow at all:

# %%
print(tutorial_reader.message)
assert "No module named 'tensorflow.examples" in tutorial_reader.message
assert importlib.util.find_spec("tensorflow.examples") is None

# %% [markdown]
# The renamed arguments fail differently. `tf.reduce_sum` still exists, so the source's loss gets as far as
# the call and then stops on the keyword:

# %% tags=["raises-exception"]
probabilities = tf.constant([[0.25, 0.75], [0.5, 0.5]])
with gdbook.expect_error(TypeError) as old_keyword:
    tf.reduce_sum(probabilities, reduction_indices=[1])

# %% [markdown]
# The message names the keyword, and the `tf.compat.v1` function still takes it, with the same result
# as `axis=1`:

# %%
print(old_keyword.message)
assert "reduction_indices" in old_keyword.message
by_old_keyword = tf.compat.v1.reduce_sum(probabilities, reduction_indices=[1])
by_axis = tf.reduce_sum(probabilities, axis=1)
print("reduction_indices=[1]:", by_old_keyword.numpy(), " axis=1:", by_axis.numpy())
assert np.array_equal(by_old_keyword.numpy(), by_axis.numpy())


# %% [markdown]
# ### Defaults that moved with the optimizers
#
# The table says that Keras' Adagrad adds an `epsilon` and that Adam's default `epsilon` changed. Both
# claims can be read off the constructors' signatures, which we compare for the four optimizers of the
# sources (TF1 argument names on the first line, Keras names on the second; "required" means the argument
# has no default):


# %%
def defaults(cls):
    return {
        name: ("required" if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "kwargs", "name", "use_locking")
    }


OPTIMIZER_PAIRS = {
    "GradientDescent / SGD": (
        tf.compat.v1.train.GradientDescentOptimizer,
        keras.optimizers.SGD,
    ),
    "Momentum / SGD": (tf.compat.v1.train.MomentumOptimizer, keras.optimizers.SGD),
    "Adagrad / Adagrad": (
        tf.compat.v1.train.AdagradOptimizer,
        keras.optimizers.Adagrad,
    ),
    "Adam / Adam": (tf.compat.v1.train.AdamOptimizer, keras.optimizers.Adam),
}
SHARED = ["learning_rate", "momentum", "initial_accumulator_value", "beta1", "beta_1",
          "beta2", "beta_2", "epsilon"]  # fmt: skip
for pair, (tf1_class, keras_class) in OPTIMIZER_PAIRS.items():
    tf1_defaults, keras_defaults = defaults(tf1_class), defaults(keras_class)
    shown_tf1 = {k: v for k, v in tf1_defaults.items() if k in SHARED}
    shown_keras = {k: v for k, v in keras_defaults.items() if k in SHARED}
    print(f"{pair:22s} TF1 {shown_tf1}\n{'':22s} Keras {shown_keras}")

# %% [markdown]
# Three of the four TF1 optimizers demand a learning rate, while every Keras optimizer has a default (which
# differs from class to class, so always pass it). Momentum's `momentum` was required and now defaults to
# 0, which is plain gradient descent: forgetting it in a port silently switches momentum off. Adagrad's
# accumulator starts at 0.1 on both sides; the source's hand-written Adagrad started it at 0, and
# {ref}`the optimizer chapter <ch-optimizers>` shows that this alone explains the source's "close but not
# equal" Adagrad. Keras also adds an `epsilon` of $10^{-7}$ inside the square root, which TF1 does not
# have. Adam's `epsilon` went from $10^{-8}$ to $10^{-7}$.

# %%
tf1_adagrad, keras_adagrad = (defaults(c) for c in OPTIMIZER_PAIRS["Adagrad / Adagrad"])
tf1_adam, keras_adam = (defaults(c) for c in OPTIMIZER_PAIRS["Adam / Adam"])
tf1_momentum = defaults(tf.compat.v1.train.MomentumOptimizer)
tf1_rate_required = [
    pair for pair, (tf1_class, _) in OPTIMIZER_PAIRS.items()
    if defaults(tf1_class)["learning_rate"] == "required"
]  # fmt: skip
print("TF1 optimizers that require a learning rate:", tf1_rate_required)
assert len(tf1_rate_required) == 3
assert all(
    defaults(keras_class)["learning_rate"] != "required"
    for _, keras_class in OPTIMIZER_PAIRS.values()
)
assert tf1_momentum["momentum"] == "required"
assert defaults(keras.optimizers.SGD)["momentum"] == 0.0
assert (
    tf1_adagrad["initial_accumulator_value"]
    == keras_adagrad["initial_accumulator_value"]
    == 0.1
)
assert "epsilon" not in tf1_adagrad and keras_adagrad["epsilon"] == 1e-7
assert tf1_adam["epsilon"] == 1e-8 and keras_adam["epsilon"] == 1e-7
assert (tf1_adam["beta1"], tf1_adam["beta2"]) == (
    keras_adam["beta_1"],
    keras_adam["beta_2"],
)

# %% [markdown]
# (app-tf1-worked)=
# ## A worked example: the source's softmax step, twice
#
# The first MNIST program of the sources, reduced to its core: softmax regression, the cross-entropy
# written with `tf.log` and `reduction_indices`, and gradient descent with learning rate 0.1. We take a
# batch of 100 training images and run five steps, once as the TF1 program (through `tf.compat.v1`, in a
# graph, with a placeholder, an initializer and a session) and once rewritten for TF2.

# %%
mnist = gdbook.load_mnist("flat", one_hot_labels=True)
batch_images, batch_labels = mnist.x_train[:100], mnist.y_train[:100]
LEARNING_RATE, STEPS = 0.1, 5
print("batch:", batch_images.shape, batch_labels.shape, batch_images.dtype)

# %% [markdown]
# **TF1.** Every line is the source's, with `tf.` replaced by `tf.compat.v1.` where the name moved. The
# session runs the training op and fetches the loss in the same call, and the loss it returns is the one
# *before* the update. A session orders operations only by their data dependencies, so this holds here
# because of how the graph is wired: the update needs the gradient, and the gradient is computed from the
# same reads of `W` and `b` as the loss. It is not a general promise about fetches in one `sess.run`.

# %%
tf1 = tf.compat.v1  # TF1
graph = tf.Graph()
with graph.as_default():
    x = tf1.placeholder(tf.float32, [None, 784])
    y = tf1.placeholder(tf.float32, [None, 10])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    y_pred = tf.nn.softmax(tf.matmul(x, W) + b)
    cross_entropy = tf.reduce_mean(
        -tf1.reduce_sum(y * tf1.log(y_pred), reduction_indices=[1])
    )
    train_step = tf1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(
        cross_entropy
    )
    init = tf1.global_variables_initializer()

tf1_losses = []
with tf1.Session(graph=graph) as sess:
    sess.run(init)
    for _ in range(STEPS):
        _, loss_value = sess.run(
            [train_step, cross_entropy], {x: batch_images, y: batch_labels}
        )
        tf1_losses.append(loss_value)
    tf1_W, tf1_b = sess.run([W, b])
print("TF1 losses:", np.array(tf1_losses))

# %% [markdown]
# **TF2.** The graph, the placeholders, the initializer and the session disappear. The model is a
# function of its inputs, the variables are initialised when created, `tf.math.log` and `axis=1` replace
# the old spellings, a `GradientTape` records the forward pass, and Keras' `SGD` applies the update.
# `tf.function` traces the step into a graph once, as the TF1 program did.

# %%
W2 = tf.Variable(tf.zeros([784, 10]))
b2 = tf.Variable(tf.zeros([10]))
optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)


@tf.function
def train_step_tf2(images, labels):
    with tf.GradientTape() as tape:
        probabilities = tf.nn.softmax(tf.matmul(images, W2) + b2)
        loss = tf.reduce_mean(
            -tf.reduce_sum(labels * tf.math.log(probabilities), axis=1)
        )
    optimizer.apply_gradients(zip(tape.gradient(loss, [W2, b2]), [W2, b2], strict=True))
    return loss


tf2_losses = [train_step_tf2(batch_images, batch_labels).numpy() for _ in range(STEPS)]
print("TF2 losses:", np.array(tf2_losses))

# %% [markdown]
# Before the first step every logit is zero, the softmax is uniform over ten classes and the loss is
# exactly $\log 10$. After that the two programs agree step for step, in the loss and in every weight:

# %%
loss_gap = np.max(np.abs(np.array(tf1_losses) - np.array(tf2_losses)))
weight_gap = max(np.max(np.abs(tf1_W - W2.numpy())), np.max(np.abs(tf1_b - b2.numpy())))
print(f"first loss {tf1_losses[0]:.7f}, log 10 = {math.log(10):.7f}")
print(f"max |TF1 - TF2|: losses {loss_gap:.1e}, weights {weight_gap:.1e}")
assert math.isclose(tf1_losses[0], math.log(10), rel_tol=1e-6)
assert tf1_losses[-1] < tf1_losses[0]
assert loss_gap == 0.0 and weight_gap == 0.0

# %% [markdown]
# The agreement is exact, not just close: both programs execute the same float32 kernels in the same order
# (`tf.gradients` and the tape share the registered gradient of every operation, and both optimizers
# subtract the learning rate times the gradient). The rewrite is mechanical:
#
# | TF1 (the source) | TF2 |
# | --- | --- |
# | `graph = tf.Graph()`, `with graph.as_default():` | `@tf.function` on the step |
# | `x = tf.placeholder(...)`, `feed_dict={x: ...}` | an argument of the function |
# | `tf.log(p)`, `reduce_sum(..., reduction_indices=[1])` | `tf.math.log(p)`, `reduce_sum(..., axis=1)` |
# | `GradientDescentOptimizer(0.1).minimize(loss)` | `GradientTape` + `SGD(0.1).apply_gradients` |
# | `sess.run(tf.global_variables_initializer())` | (nothing) |
# | `sess.run([train_step, loss], feed_dict)` | `train_step_tf2(images, labels)` |
#
# The loss itself is the one thing *not* to carry over: {ref}`the chapter on softmax regression <ch-softmax>` shows how
# `log(softmax(z))` returns `inf` or `NaN` once a probability underflows, and why
# `tf.nn.softmax_cross_entropy_with_logits` is the TF2 (and the correct) way to write it.
#
# ## Letting a tool do the renaming
#
# TensorFlow installs a converter, `tf_upgrade_v2`, that rewrites TF1 source code. We feed it the source's
# program, shortened, and read what it did:

# %%
from tensorflow.tools.compatibility import ast_edits, tf_upgrade_v2

SOURCE_PROGRAM = """\
import tensorflow as tf
from tensorflow.examples.tutorials.mnist import input_data
mnist = input_data.read_data_sets('MNIST_data', one_hot=True)
x = tf.placeholder(tf.float32, [None, 784])
cross_entropy = tf.reduce_mean(-tf.reduce_sum(y * tf.log(y_pred), reduction_indices=[1]))
train_step = tf.train.GradientDescentOptimizer(0.1).minimize(cross_entropy)
regularizer = tf.contrib.layers.l2_regularizer(0.01)
h_drop = tf.nn.dropout(h, keep_prob)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
"""
upgrader = ast_edits.ASTCodeUpgrader(tf_upgrade_v2.TFAPIChangeSpec())
converted = io.StringIO()
with contextlib.redirect_stdout(
    io.StringIO()
):  # it also prints its report line by line
    _, report, errors = upgrader.process_opened_file(
        "source.py", io.StringIO(SOURCE_PROGRAM), "converted.py", converted
    )
upgraded_program = converted.getvalue()
print(upgraded_program)

# %% [markdown]
# It does the mechanical part of the table well: `tf.log` became `tf.math.log`, `reduction_indices`
# became `axis`, `keep_prob` became `rate=1 - keep_prob`, the `tf.contrib` regularizer became a Keras one
# with half the scale, and everything graph-shaped was moved to `tf.compat.v1`. What it leaves alone is as
# instructive: the session and the placeholders are *kept* (it does not restructure a program into
# functions), and the deleted tutorial reader passes through untouched, without an error, so the converted
# program still dies on its second line.

# %%
assert not errors
assert "tf.math.log(y_pred)" in upgraded_program and "axis=[1]" in upgraded_program
assert "rate=1 - (keep_prob)" in upgraded_program
assert "tf.keras.regularizers.l2(0.5 * (0.01))" in upgraded_program
assert "tf.compat.v1.Session()" in upgraded_program
assert "from tensorflow.examples.tutorials.mnist import input_data" in upgraded_program
assert "input_data" not in report and "examples" not in report

# %% [markdown]
# (app-tf1-keras3)=
# ## What else is gone: Estimators, and TF1 code built on Keras
#
# Two removals came after the first TF2 releases, both in TensorFlow 2.16. The **Estimator** API
# (`tf.estimator`, with its `model_fn`, `input_fn` and `train_and_evaluate`), the high-level training loop
# of late TF1, is no longer part of TensorFlow, and its package `tensorflow_estimator` is not installed with
# it:

# %% tags=["raises-exception"]
with gdbook.expect_error(AttributeError) as no_estimator:
    tf.estimator.Estimator

# %% [markdown]
# The attribute is simply missing, as it is in every TensorFlow from 2.16 on:

# %%
print(no_estimator.message)
assert "has no attribute 'estimator'" in no_estimator.message
assert importlib.util.find_spec("tensorflow_estimator") is None
assert Version(tf.__version__) >= Version("2.16")

# %% [markdown]
# The second change is Keras. Before TensorFlow 2.16, `tf.keras` was Keras 2, which still carried TF1
# machinery: the layers behind `tf.compat.v1.layers` and the cells of `tf.compat.v1.nn.rnn_cell` were Keras 2
# classes. From 2.16 on, `tf.keras` is whatever `import keras` gives, and that is Keras 3, a multi-backend
# rewrite that runs on TensorFlow, JAX or PyTorch and has no TF1 APIs at all. The installed `tf.keras` is
# an alias of Keras 3:

# %%
print("tf.keras is the module", tf.keras.__name__, "| keras", keras.__version__)
assert (
    keras.__version__.startswith("3.") and tf.keras.__name__ == "keras._tf_keras.keras"
)
assert tf.keras.layers.Dense is keras.layers.Dense

# %% [markdown]
# So a TF1 model written with `tf.layers.dense`, which the table's rule would send to
# `tf.compat.v1.layers.dense`, stops at its first layer, even inside a graph:

# %% tags=["raises-exception"]
with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, 784])
    with gdbook.expect_error(AttributeError) as no_layers:
        tf.compat.v1.layers.dense(inputs, 10)

# %% [markdown]
# The message names Keras 3 as the cause:

# %%
print(no_layers.message)
assert no_layers.message == "`dense` is not available with Keras 3."

# %% [markdown]
# A TF1 recurrent network stops at its cell, for the same reason:

# %% tags=["raises-exception"]
with gdbook.expect_error(AttributeError) as no_rnn_cell:
    tf.compat.v1.nn.rnn_cell.BasicRNNCell(32)

# %%
print(no_rnn_cell.message)
assert no_rnn_cell.message == "`BasicRNNCell` is not available with Keras 3."

# %% [markdown]
# For code that cannot be rewritten yet there is a way back. Keras 2 lives on as the separate package
# `tf_keras`, and with the environment variable `TF_USE_LEGACY_KERAS=1` set before TensorFlow is imported,
# `tf.keras` (and with it `tf.compat.v1.layers` and the RNN cells) is routed to it. The routing is a few lines
# of TensorFlow's lazy loader:

# %%
from tensorflow.python.util import lazy_loader

routing = inspect.getsource(lazy_loader.KerasLazyLoader._initialize)
legacy_branch = routing[
    routing.index("if os.environ") : routing.index("except ImportError")
]
print(legacy_branch)
assert (
    '"TF_USE_LEGACY_KERAS"' in legacy_branch
    and "tf_keras.api._v2.keras" in legacy_branch
)

# %% [markdown]
# This book installs `tf_keras` (without its dependencies, see the README), because
# {ref}`the table of optimizer conventions <ch-optimizers-conventions>` runs Keras 2's optimizers next to
# Keras 3's. Importing it changes nothing here: `tf.keras` stays Keras 3.

# %%
import tf_keras

print("tf_keras", tf_keras.__version__, "| tf.keras is", tf.keras.__name__)
assert Version(tf_keras.__version__).major == 2
assert tf.keras.__name__ == "keras._tf_keras.keras"

# %% [markdown]
# The variable is read when TensorFlow is imported and when `tf.keras` is first used, and this
# kernel has done both, so we set it in a fresh Python process. There `tf.keras` is Keras 2, and the
# TF1 layers and RNN cells that failed above exist again:

# %%
import os
import subprocess
import sys

legacy_probe = """
import tensorflow as tf
print(tf.keras.__name__)
print(type(tf.compat.v1.nn.rnn_cell.BasicRNNCell(4)).__module__)
print(tf.compat.v1.layers.dense.__module__)
"""
legacy_env = os.environ | {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
legacy = subprocess.run(
    [sys.executable, "-c", legacy_probe],
    env=legacy_env,
    capture_output=True,
    text=True,
    check=True,
)
legacy_lines = legacy.stdout.split()
print("\n".join(legacy_lines))
assert legacy_lines[0] == "tf_keras.api._v2.keras"
assert all(line.startswith("tf_keras.") for line in legacy_lines)

# %% [markdown]
# This book takes the other road: the TF1 programs of the sources use only the parts of `tf.compat.v1`
# that do not depend on Keras, and everything Keras is written for Keras 3.
#
# (app-tf1-checkpoints)=
# ## Checkpoints: names versus objects
#
# A TF1 `tf.compat.v1.train.Saver` writes a **name-based** checkpoint: a map from each variable's global
# name (`"W"`, `"b"`, or `"layer1/weights"` inside a variable scope) to its value. TF2's `tf.train.Checkpoint`
# writes an **object-based** one: the keys are paths through the Python objects that own the variables
# (`model.dense.kernel`), and the names of the variables play no part. A TF1 checkpoint, saved from a graph
# and a session:

# %%
checkpoint_dir = Path(tempfile.mkdtemp(prefix="gdbook-a1-"))
with tf.Graph().as_default():
    W_saved = tf.compat.v1.get_variable(
        "W", initializer=tf.constant([[1.0, 2.0], [3.0, 4.0]])
    )
    b_saved = tf.compat.v1.get_variable("b", initializer=tf.constant([0.5, -0.5]))
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        tf1_checkpoint = saver.save(sess, str(checkpoint_dir / "tf1_model"))
print("TF1 checkpoint:", tf.train.list_variables(tf1_checkpoint))

# %% [markdown]
# `tf.train.load_checkpoint` opens any checkpoint and reads a tensor by its key. That is the dependable way
# to move TF1 weights into TF2 variables: read each one by its TF1 name and assign it to whatever variable
# now holds it, under whatever name. Then we save them again, object-based:

# %%
reader = tf.train.load_checkpoint(tf1_checkpoint)
kernel, bias = tf.Variable(tf.zeros([2, 2])), tf.Variable(tf.zeros([2]))
kernel.assign(reader.get_tensor("W"))
bias.assign(reader.get_tensor("b"))
tf2_checkpoint = tf.train.Checkpoint(kernel=kernel, bias=bias).save(
    str(checkpoint_dir / "tf2_model")
)
print("TF2 checkpoint:", tf.train.list_variables(tf2_checkpoint))
restored = tf.Variable(tf.zeros([2, 2]))
tf.train.Checkpoint(kernel=restored).read(tf2_checkpoint).expect_partial()
print("read back:", restored.numpy().tolist())
assert np.array_equal(restored.numpy(), [[1.0, 2.0], [3.0, 4.0]])
assert np.array_equal(bias.numpy(), [0.5, -0.5])

# %% [markdown]
# The object-based keys (`kernel/.ATTRIBUTES/VARIABLE_VALUE`) come from the attribute names given to
# `tf.train.Checkpoint`, plus a `save_counter` and the object graph that lets `read` match objects to
# objects. `tf.train.Checkpoint.restore` can also read a name-based checkpoint directly, matching by variable
# name, a mode its deprecation notice (in `tensorflow/python/checkpoint/checkpoint.py`) calls "somewhat
# fragile": it works when the TF2 variable happens to carry the TF1 name, and with the default name nothing
# matches.

# %%
named_W = tf.Variable(tf.zeros([2, 2]), name="W")
tf.train.Checkpoint(kernel=named_W).restore(tf1_checkpoint).assert_consumed()
print("variable named 'W':", named_W.numpy().tolist())
status = tf.train.Checkpoint(kernel=tf.Variable(tf.zeros([2, 2]))).restore(
    tf1_checkpoint
)
with gdbook.expect_error(AssertionError, reraise=False) as nothing_matched:
    status.assert_consumed()
print(type(status).__name__, "|", nothing_matched.message.splitlines()[0])
assert np.array_equal(named_W.numpy(), [[1.0, 2.0], [3.0, 4.0]])
assert "not restored" in nothing_matched.message
for path in checkpoint_dir.iterdir():
    path.unlink()
checkpoint_dir.rmdir()

# %% [markdown]
# (app-tf1-function)=
# ## `tf.function`: what tracing means for TF1 code
#
# A TF1 program builds its graph once, by running Python once, and then runs the graph many times. A
# `tf.function` does the same thing implicitly: the first call **traces** the Python function into a graph,
# later calls run the graph. Three consequences surprise people moving graph code to TF2. First, a new trace
# is made whenever the call does not fit an existing one: a tensor of a new shape or dtype, or a different
# Python value. Second, Python code inside the function (a `print`, appending to a list) runs only while
# tracing; only TensorFlow operations run on every call. Third, a `tf.Variable` may be created only on the
# first trace, never on later calls. Retracing first: a function called five times, with two scalar
# tensors, a vector, and two Python numbers:

# %%
traces, calls = [], tf.Variable(0)


@tf.function
def double(x):
    traces.append(x)  # Python: runs when tracing
    calls.assign_add(1)  # TensorFlow: runs on every call
    return 2 * x


for argument in [tf.constant(1.0), tf.constant(2.0), tf.constant([1.0, 2.0]), 3, 4]:
    double(argument)
print(f"{int(calls.numpy())} calls, {double.experimental_get_tracing_count()} traces")
print("what each trace saw:", traces)
assert (
    int(calls.numpy()) == 5
    and double.experimental_get_tracing_count() == len(traces) == 4
)


# %% [markdown]
# The two scalar tensors share one trace; the vector needs a second; each Python number is a constant of
# its own trace, so `3` and `4` make two more. Passing Python numbers that change (a step counter, a learning
# rate) to a `tf.function` therefore retraces on every call; pass them as tensors. The list, a Python side
# effect, grew once per trace, not once per call, while the variable counted every call: a TF1 programmer
# would say the list was filled at graph-construction time.
#
# Variables are the third point. TF1 code often creates its variables inside the function that builds the
# model. As a `tf.function`, such a function fails at its very first call:


# %% tags=["raises-exception"]
@tf.function
def scaled(x):
    scale = tf.Variable(2.0)
    return scale * x


with gdbook.expect_error(ValueError) as new_variable:
    scaled(tf.constant(1.0))

# %% [markdown]
# The reason is in the first call itself (`polymorphic_function.py`): when the first trace creates
# variables, TensorFlow initializes them and then traces the function a second time with variable creation
# forbidden, to get the graph it will run from then on. That second trace reaches `tf.Variable` again:

# %%
print(new_variable.message.strip().splitlines()[-1][:160])
assert "only supports singleton tf.Variables created on the first call" in (
    new_variable.message
)


# %% [markdown]
# The fix is the TF2 habit the table already recommends: create variables once, outside the function, or
# in an object that creates them on first use and keeps them, such as a Keras layer or a `tf.Module` like
# this one:


# %%
class Scaled(tf.Module):
    def __init__(self):
        self.scale = None

    @tf.function
    def __call__(self, x):
        if self.scale is None:
            # runs during the first trace only
            self.scale = tf.Variable(2.0)
        return self.scale * x


scaled_once = Scaled()
print(
    scaled_once(tf.constant(1.0)).numpy(), scaled_once(tf.constant([1.0, 2.0])).numpy()
)
assert len(scaled_once.variables) == 1

# %% [markdown]
# ## Why not `disable_eager_execution`?
#
# `tf.compat.v1.disable_eager_execution()` switches the whole process back to TF1 behaviour, after which
# the sources' programs (with `tf.compat.v1.` prefixes) run as printed. The book does not use it, because it
# is global and one-way in practice: every later cell, including every TF2 cell, would then build graph
# nodes instead of computing values, and `GradientTape` code would need a session. A
# `with tf.Graph().as_default():` block gives the same TF1 semantics to exactly the lines inside it, so a
# chapter can put a TF1 program and its TF2 rewrite side by side, as above. Outside the block, eager
# execution is untouched:

# %%
with tf.Graph().as_default():
    inside = tf.executing_eagerly()
print("eager inside a graph block:", inside, "| outside:", tf.executing_eagerly())
assert not inside and tf.executing_eagerly()
