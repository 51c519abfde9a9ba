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
#   mystnb:
#     execution_mode: force
# ---

# %% [markdown]
# (app-build)=
# # How this book is built
#
# This book is a set of [MyST Markdown notebooks](https://mystmd.org) built with
# [Jupyter Book](https://jupyterbook.org) 1.x. Nothing in it is pasted in from an earlier run: every
# output, figure and animation is produced by executing the chapters when the book is built, every
# number the text states comes from a cell's computation, and every claim a number decides is checked by
# an `assert` in a cell.
#
# ## The pieces
#
# Chapters as pairs
# : Each chapter is a pair of files kept in step by [jupytext](https://jupytext.readthedocs.io):
#   `chapters/NN_name.md`, a MyST notebook that the book builds, and `chapters/NN_name.py`, the same cells
#   as a percent-format script for editors, linters and diffs. The pairing is configured once, in
#   `jupytext.toml`; `jupytext --sync chapters/*.md` brings a pair back in step after an edit. Each script
#   also runs on its own: `python chapters/01_gradient.py`.
#
# A helper package
# : What several chapters share (loading the MNIST copy in `data/`, seeding, the plot style, contour
#   plots and animations, showing an error on purpose) lives in the small package `gdbook`, which has its
#   own unit tests. The subject matter (an optimizer, a training loop) is always written out in the chapter
#   that teaches it.
#
# Determinism
# : Every chapter starts with `gdbook.setup()`: fixed seeds for Python, NumPy and TensorFlow, and
#   TensorFlow's op determinism switched on, so two builds print the same numbers.
#
# Numbers in the prose
# : A number that depends on the run (an accuracy, a loss, a ratio measured in a cell) is never typed
#   into the text. The cell that computes it hands it to the page with
#   [myst-nb's `glue`](https://myst-nb.readthedocs.io/en/latest/render/glue.html)
#   (`glue("ch6_test_acc", acc, display=False)` in the cell, `` {glue:text}`ch6_test_acc:.2%` `` in the
#   sentence), or prints it just above the sentence. A claim a number can decide (`about 91%`,
#   `never rises above its start`, `agree exactly`) has an `assert` that holds it at the precision the
#   sentence gives. After a build, `tests/test_prose_numbers.py` reads every executed chapter, takes the
#   numbers of its prose (decimals, exponents, percentages, `a × 10^k`, integers from a thousand up; not
#   those inside roles, code or labels) and fails on any that no code or output of that chapter backs at
#   the precision stated, naming the chapter, the cell and the sentence. A number that needs no
#   computation (a data set's size, a result a cited paper reports) is listed in
#   `tests/prose_numbers_allowlist.toml` with its reason; the list is kept short, and an entry that no
#   longer matches anything fails the test too. What the test cannot catch is a wrong sentence with no
#   number in it, or a number that happens to be backed by an unrelated one elsewhere in its chapter:
#   those are caught by the asserts next to the claims and by reading the book with the outputs beside
#   the prose.
#
# Execution and its cache
# : `jupyter-book build .` executes each chapter in a fresh kernel and stores the result in
#   `_build/.jupyter_cache`; a chapter is executed again only when its code changes. A cell that raises
#   fails the build, unless it is tagged `raises-exception` (those cells show TensorFlow's errors on
#   purpose, and the next cell asserts on the message).
#
# Tests
# : `pytest` runs the unit tests of `gdbook`, checks the book's structure (pairs in step, the table of
#   contents matching `chapters/`, every chapter with goals, a summary and exercises, timing cells marked,
#   nothing after an expected error in its cell), runs every chapter through [nbval](https://nbval.readthedocs.io) so that every `assert` in the book
#   is a test, runs the chapters that show errors on purpose as plain scripts, and, when a build and a
#   browser are at hand, checks the built site in headless Chromium (no JavaScript errors, every image and
#   animation loads, every equation typeset, navigation and search work). After a build, nbval runs in
#   strict mode: each cell must print exactly what it printed in the build, which checks that two
#   executions of the book agree (wall-clock timings are the only outputs exempt).
#
# Continuous integration
# : `.ci/run` starts from a clean clone: a fresh virtual environment, the pinned `requirements.txt`,
#   `ruff`, a strict build (`jupyter-book build . -n -W --keep-going`: any warning, broken reference or
#   failing notebook fails it), a warm rebuild that must take under 30 seconds, then `pytest` against
#   that build, and it prints how long each chapter took to execute, next to its budget (the table
#   below). Shared machines run the same chapter up to twice as fast or as slow from one hour to the
#   next, so a chapter over its budget is reported, and CI fails at twice the budget. The
#   same steps publish the site (`.github/workflows/pages.yml`).
#
# ## Execution status
#
# How long each page took to execute in the build you are reading, and whether it succeeded:
#
# ```{nb-exec-table}
# ```
#
# Each chapter's time in this build, next to the budget CI holds it to (`.ci/exec_times.py`, on two
# CPU cores; a chapter that teaches mechanics gets half a minute to a minute, the convolutional network
# two):

# %%
import gdbook

gdbook.setup()

import importlib.util

spec = importlib.util.spec_from_file_location(
    "exec_times", gdbook.repo_root() / ".ci" / "exec_times.py"
)
exec_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exec_times)
print(f"{'chapter':<22} {'seconds':>8} {'budget':>7}")
for name, seconds, budget in exec_times.table():
    shown = "cached elsewhere" if seconds is None else f"{seconds:8.1f}"
    print(f"{name:<22} {shown:>8} {budget:7d}")

# %% [markdown]
# ### Whole-book build times
#
# CI (`.ci/run`) times a cold build (every chapter executed, from an empty cache) and a warm rebuild
# (nothing changed, so nothing is executed), writes both to `_build/build-times.json`, and rebuilds this
# page, which is executed on every build rather than taken from the cache, to show them:

# %%
import json

times_file = gdbook.repo_root() / "_build" / "build-times.json"
if times_file.exists():
    build_times = json.loads(times_file.read_text())
    print(f"cold build (every chapter executed): {build_times['cold_seconds']:6.0f} s")
    print(f"warm rebuild (nothing changed):      {build_times['warm_seconds']:6.0f} s")
    assert build_times["warm_seconds"] < 30, "the execution cache should make rebuilds fast"
else:
    print("not measured for this build: `bash .ci/run` measures and records them")

# %% [markdown]
# ## When strict mode fails on your machine
#
# Strict mode compares two executions on the same machine: the outputs of your own build with those of
# the test run that follows it. The numbers printed on the published site come from CI's machine, and
# yours may differ from them in the last digits, because TensorFlow's CPU kernels depend on the
# processor. On x86 TensorFlow uses oneDNN, which picks its kernels by instruction set (AVX2, AVX-512,
# AMX) and accumulates sums in a different order than TensorFlow's own Eigen kernels; the environment
# variable `TF_ENABLE_ONEDNN_OPTS=0` switches oneDNN off. The cell below computes the same convolution
# and matrix product in a subprocess with oneDNN off and compares them with this build's values:

# %%
import os
import subprocess
import sys

import numpy as np
from myst_nb import glue

PROBE = """
import numpy as np, tensorflow as tf
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 28, 28, 1)).astype("float32")
k = rng.standard_normal((5, 5, 1, 32)).astype("float32")
a = rng.standard_normal((300, 500)).astype("float32")
conv = tf.nn.conv2d(x, k, 1, "SAME").numpy().ravel()
np.save("{out}", np.concatenate([conv, tf.matmul(a, a.T).numpy().ravel()]))
"""


def probe(onednn: str, out: str) -> np.ndarray:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-c", PROBE.format(out=out)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    return np.load(out)


# %% [markdown]
# Both runs in fresh processes, one with oneDNN on (TensorFlow's default here) and one with it off:

# %%
import tempfile

with tempfile.TemporaryDirectory() as folder:
    with_onednn = probe("1", f"{folder}/on.npy")
    without = probe("0", f"{folder}/off.npy")
    again = probe("1", f"{folder}/again.npy")
differ = np.mean(with_onednn != without)
largest = np.max(np.abs(with_onednn - without)) / np.max(np.abs(without))
print(f"values that differ: {differ:.1%}; largest difference {largest:.1e} of the largest value")
assert np.array_equal(with_onednn, again), "the same settings must give the same bits"
glue("a2_onednn_differ", differ, display=False)

# %% [markdown]
# On this build's machine {glue:text}`a2_onednn_differ:.0%` of the values differ in their last bits
# between the two settings, while two runs with the same setting agree bit for bit. So if strict mode
# fails for you: first make sure you compare against a build made on your machine (`_build/` copied from
# elsewhere will not match), then run `GDBOOK_NBVAL=lax pytest`, which executes every cell and every
# assert without comparing outputs. An assert that fails on your machine and not in CI is a real finding
# (a tolerance that is too tight for your CPU): report it with your processor's model.
#
# ## Versions
#
# The packages this build ran with, next to the versions `requirements.in` pins (the book's direct
# dependencies), and how many of the whole locked tree in `requirements.txt` (generated from
# `requirements.in`, see the README) are installed at their locked versions. If you run the book with
# other versions, the numbers may differ in the last digits, and an assert may tell you so.

# %%
import platform
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

print(f"Python {sys.version.split()[0]} on {platform.platform()}")


def pinned_requirements(path: Path) -> list[Requirement]:
    """The requirements of `path` that apply to this platform (environment markers evaluated)."""
    wanted = []
    for line in path.read_text().splitlines():
        # A locked line ends in a continuation backslash; hashes are on the lines below it.
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(
            default_environment()
        ):
            wanted.append(requirement)
    return wanted


requirements = pinned_requirements(gdbook.repo_root() / "requirements.in")
print(f"{'package':<18} {'pinned':<14} {'installed':<14}")
for requirement in requirements:
    pinned = ",".join(str(spec) for spec in requirement.specifier)
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    mark = (
        ""
        if requirement.specifier.contains(installed, prereleases=True)
        else "  <- differs"
    )
    print(f"{requirement.name:<18} {pinned:<14} {installed:<14}{mark}")


# %% [markdown]
# The whole tree, as `requirements.txt` locks it, with the one package of `requirements-nodeps.txt`
# (installed without its dependencies, see the README):

# %%
def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


locked = pinned_requirements(gdbook.repo_root() / "requirements.txt")
locked += pinned_requirements(gdbook.repo_root() / "requirements-nodeps.txt")
differs = [
    (r.name, str(r.specifier), installed_version(r.name))
    for r in locked
    if not r.specifier.contains(installed_version(r.name) or "0", prereleases=True)
]
print(f"{len(locked)} packages locked for this platform, {len(differs)} installed otherwise")
for name, locked_at, installed in differs:
    print(f"  {name:<28} locked {locked_at:<14} installed {installed}")

# %% [markdown]
# ## External links
#
# The book links to few places outside itself; this cell collects every web address in the book's
# sources (chapters, landing page, bibliography), so that they are listed in one place and can be
# checked by hand.

# %%
import re

URL = re.compile(r"https?://[^\s)>\]\"'`},]+")
sources = [gdbook.repo_root() / "intro.md", gdbook.repo_root() / "references.bib"]
sources += sorted((gdbook.repo_root() / "chapters").glob("*.md"))
links: dict[str, list[str]] = {}
for source in sources:
    for url in URL.findall(source.read_text()):
        links.setdefault(url.rstrip("."), []).append(source.name)
for url, where in sorted(links.items()):
    print(f"{url:<45} {', '.join(sorted(set(where)))}")
assert links, "no external links found: the pattern is broken"

# %% [markdown]
# ## Building it yourself
#
# ```bash
# python3 -m venv .venv && source .venv/bin/activate
# pip install -r requirements.txt                 # the locked tree
# pip install --no-deps -r requirements-nodeps.txt && pip install --no-deps -e .   # tf-keras, gdbook
# jupyter-book build .                       # the site, in _build/html
# jupyter-book build . -n -W --keep-going    # the strict build CI runs
# pytest                                     # every test, every chapter through nbval
# bash .ci/run                               # all of CI, in a fresh virtual environment
# ```
