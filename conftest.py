"""Collect every chapter (``chapters/*.md``, MyST notebooks) as an nbval notebook.

nbval only knows ``.ipynb`` files; the book keeps its notebooks as MyST Markdown. Here each
chapter is read with jupytext when pytest collects it, and nbval runs every code cell in a
fresh kernel (``--nbval-lax``: a cell fails only if it raises, so each assert in the book is a
test). Cells tagged ``raises-exception`` may raise.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import jupytext
import nbformat
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parent
CHAPTERS = ROOT / "chapters"


def is_chapter(path: Path) -> bool:
    return path.suffix == ".md" and path.parent == CHAPTERS and path.read_text().startswith("---\njupytext:")


class MystNotebook(IPyNbFile):
    """An nbval notebook read from a MyST Markdown file through jupytext."""

    def collect(self):
        notebook = jupytext.read(self.path)
        with mock.patch.object(nbformat, "read", lambda *args, **kwargs: notebook):
            yield from super().collect()


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
