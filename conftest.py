"""Run every chapter (``chapters/*.md``, MyST notebooks) through nbval.

nbval only knows ``.ipynb`` files; the book keeps its notebooks as MyST Markdown. Each chapter is
read with jupytext when pytest collects it, and nbval runs every code cell in a fresh kernel.
Cells tagged ``raises-exception`` may raise; any other exception fails the test, so every
``assert`` in the book is a test.

Two modes, chosen by the environment variable ``GDBOOK_NBVAL``:

``auto`` (the default)
    If the book has been built (``jupyter-book build .``) and the build's execution cache holds this
    chapter's current code, nbval runs in *strict* mode against those outputs: every cell must also
    print exactly what it printed in the build (after the sanitizing patterns in
    ``tests/nbval_sanitize.cfg``; cells tagged ``nbval-ignore-output``, such as wall-clock timings,
    are run but not compared). That checks that two executions of the book agree. Without a
    matching build record, *lax* mode: the cells run, and only exceptions fail.
``lax``
    Always lax.
``strict``
    Always strict; a chapter without a matching build record fails (CI uses this after its build).

In strict mode the chapter is run as a reader runs the notebook the site offers for download: the
site's copy (``_build/html/_sources/chapters/NN_name.ipynb``) must exist and hold exactly the code
that is executed, and the kernel starts in a fresh temporary folder outside the repository, so the
chapter must find the helper package and the data from anywhere.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import jupytext
import nbformat
import pytest
from nbval.kernel import RunningKernel
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parent
CHAPTERS = ROOT / "chapters"
BUILD_CACHE = ROOT / "_build" / ".jupyter_cache"
SITE_SOURCES = ROOT / "_build" / "html" / "_sources" / "chapters"
SANITIZE_FILE = ROOT / "tests" / "nbval_sanitize.cfg"
MODES = ("auto", "lax", "strict")


def nbval_mode() -> str:
    mode = os.environ.get("GDBOOK_NBVAL", "auto")
    if mode not in MODES:
        raise pytest.UsageError(f"GDBOOK_NBVAL must be one of {MODES}, not {mode!r}")
    return mode


def is_chapter(path: Path) -> bool:
    return path.suffix == ".md" and path.parent == CHAPTERS and path.read_text().startswith("---\njupytext:")


def executed_every_build(notebook: nbformat.NotebookNode) -> bool:
    """Pages with ``mystnb: execution_mode: force`` are executed by every build, never cached."""
    return notebook.metadata.get("mystnb", {}).get("execution_mode") == "force"


def built_notebook(notebook: nbformat.NotebookNode):
    """The notebook with the outputs of the last build, if the build cache has its current code."""
    if not BUILD_CACHE.is_dir():
        return None
    from jupyter_cache import get_cache

    try:
        _, merged = get_cache(BUILD_CACHE).merge_match_into_notebook(notebook)
    except KeyError:  # no record for this code: the chapter changed since the build
        return None
    return merged


def sanitize_patterns(path: Path = SANITIZE_FILE) -> dict[str, str]:
    """``regex`` / ``replace`` pairs, in the format of nbval's ``--nbval-sanitize-with`` files."""
    patterns: dict[str, str] = {}
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for regex_line, replace_line in zip(lines[::2], lines[1::2], strict=True):
        regex = regex_line.split(":", 1)[1].strip()
        re.compile(regex)
        patterns[regex] = replace_line.split(":", 1)[1].strip()
    return patterns


class MystNotebook(IPyNbFile):
    """An nbval notebook read from a MyST Markdown file through jupytext."""

    def collect(self):
        notebook = jupytext.read(self.path)
        mode = nbval_mode()
        if executed_every_build(notebook):
            mode = "lax"  # no cached outputs to compare with: the build runs this page afresh each time
        reference = None if mode == "lax" else built_notebook(notebook)
        if mode == "strict" and reference is None:
            raise pytest.UsageError(
                f"GDBOOK_NBVAL=strict: no build of the current {self.path.name} in {BUILD_CACHE}; "
                "run `jupyter-book build .` first"
            )
        self.outside_repo = False
        if reference is not None:
            notebook = reference
            self.compare_outputs = True  # strict: each cell's output must match the build's
            self.outside_repo = mode == "strict"
            if self.outside_repo:
                check_download_matches(self.path, notebook)
        with mock.patch.object(nbformat, "read", lambda *args, **kwargs: notebook):
            yield from super().collect()

    def setup(self):
        if self.outside_repo:
            folder = tempfile.mkdtemp(prefix=f"gdbook-{self.path.stem}-")
            self.addfinalizer(functools.partial(shutil.rmtree, folder, ignore_errors=True))
            kernel = functools.partial(RunningKernel, cwd=folder)
            with mock.patch("nbval.plugin.RunningKernel", lambda name, cwd=None, **kw: kernel(name, **kw)):
                super().setup()
        else:
            super().setup()
        self.sanitize_patterns.update(sanitize_patterns())


def code_cells(notebook) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


def check_download_matches(md: Path, executed: nbformat.NotebookNode) -> None:
    """The site's downloadable notebook of ``md`` exists and has the code that is run."""
    download = SITE_SOURCES / f"{md.stem}.ipynb"
    if not download.is_file():
        raise pytest.UsageError(f"the site offers no notebook for {md.name}: {download} is missing")
    offered = nbformat.read(download, as_version=4)
    if code_cells(offered) != code_cells(executed):
        raise pytest.UsageError(f"{download} is not the current {md.name}: rebuild the book")


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
