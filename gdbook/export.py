"""Write package modules from the chapter cells that define them (d2l's ``#@save``, generalised).

Code that a later chapter reuses is written once, in the chapter that teaches it. A code cell whose
first line is ``# @save gdbook.some_module`` belongs to that module: this script collects the marked
cells of every chapter (chapters in file-name order, cells in page order), drops the marker line, and
writes ``gdbook/some_module.py`` with a header saying where it came from. Any chapter may export to
any module named in its markers, and several chapters may add to the same module.

Usage::

    python -m gdbook.export            # (re)write every exported module
    python -m gdbook.export --check    # exit 1 if a module differs from its chapters

``tests/test_export.py`` runs the check, so a chapter edited without re-exporting fails the tests.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^#\s*@save\s+(gdbook(?:\.\w+)+)\s*$")


def _code_cells(chapter: Path) -> list[str]:
    """The sources of a chapter's code cells, in order (via jupytext, as the book reads it)."""
    import jupytext

    notebook = jupytext.read(chapter)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def collect(root: Path = ROOT) -> dict[Path, tuple[list[str], list[str]]]:
    """{module path: (source chapters, cell bodies)} for every ``# @save`` marker in the book."""
    modules: dict[Path, tuple[list[str], list[str]]] = {}
    for chapter in sorted((root / "chapters").glob("*.md")):
        for source in _code_cells(chapter):
            first, _, body = source.partition("\n")
            match = MARKER.match(first.strip())
            if not match:
                continue
            path = root.joinpath(*match.group(1).split(".")).with_suffix(".py")
            chapters, bodies = modules.setdefault(path, ([], []))
            name = chapter.relative_to(root).as_posix()
            if name not in chapters:
                chapters.append(name)
            bodies.append(body.strip("\n"))
    return modules


def render(chapters: list[str], bodies: list[str]) -> str:
    """The text of one exported module."""
    header = (
        f"# Generated from {', '.join(chapters)} by `python -m gdbook.export`.\n"
        "# Do not edit: change the cells marked `# @save` in the chapter and re-export.\n"
    )
    return header + "\n\n\n".join(bodies) + "\n"


def export(root: Path = ROOT, check: bool = False) -> list[Path]:
    """Write (or, with ``check``, compare) every exported module; returns the modules that differ."""
    stale = []
    for path, (chapters, bodies) in collect(root).items():
        text = render(chapters, bodies)
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    return stale


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = export(check=check)
    for path in stale:
        verb = "differs from its chapters" if check else "written"
        print(f"{path.relative_to(ROOT)}: {verb}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
