"""The book's structure: chapter pairs in step, the table of contents and chapters/ in agreement,
and every chapter carrying the parts a reader expects (learning goals, summary, exercises)."""

import ast
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
MARKDOWN = sorted(CHAPTERS.glob("*.md"))


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *_toc_files(toc.get("parts", []) + toc.get("chapters", []))]


def _cells(path: Path):
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip(), cell.metadata.get("tags", [])) for cell in notebook.cells]


def test_there_are_chapters():
    assert MARKDOWN, "chapters/ has no .md files"


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_every_chapter_is_a_pair_in_step(md):
    py = md.with_suffix(".py")
    assert py.exists(), f"{md.name} has no paired {py.name}: run `jupytext --sync {md.relative_to(ROOT)}`"
    assert _cells(md) == _cells(py), f"{md.name} and {py.name} differ: run `jupytext --sync` on the one you edited"


def test_every_script_has_its_notebook():
    for py in CHAPTERS.glob("*.py"):
        assert py.with_suffix(".md").exists(), f"{py.name} has no paired .md"


def test_toc_and_chapters_agree():
    listed = toc_files()
    for name in listed:
        assert (ROOT / f"{name}.md").exists(), f"_toc.yml lists {name}, which does not exist"
    in_toc = {name for name in listed if name.startswith("chapters/")}
    on_disk = {f"chapters/{md.stem}" for md in MARKDOWN}
    assert on_disk - in_toc == set(), f"chapters not in _toc.yml: {sorted(on_disk - in_toc)}"
    assert len(listed) == len(set(listed)), "a page is listed twice in _toc.yml"


def test_chapter_files_are_numbered_in_toc_order():
    chapters = [name for name in toc_files() if name.startswith("chapters/")]
    numbered = [name for name in chapters if name.split("/")[1][:2].isdigit()]
    assert numbered == sorted(numbered)


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_chapter_has_goals_summary_and_exercises(md):
    text = md.read_text()
    assert text.startswith("---\njupytext:"), f"{md.name} lacks the MyST notebook header"
    stem = md.stem
    if stem[:2].isdigit():
        assert ":::{admonition} What you will learn" in text, f"{md.name} has no 'What you will learn' box"
        assert "\n## Summary" in text, f"{md.name} has no Summary section"
        assert "{exercise}" in text and "{solution" in text, f"{md.name} has no exercises with solutions"
        assert ":class: dropdown" in text, f"{md.name}: solutions should be hidden in a dropdown"


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_first_code_cell_sets_up_the_book(md):
    code = [source for kind, source, _ in _cells(md) if kind == "code"]
    assert code and code[0].startswith("import gdbook"), f"{md.name}: the first code cell must import gdbook"
    assert "gdbook.setup(" in code[0], f"{md.name}: the first code cell must call gdbook.setup()"


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_cells_that_raise_on_purpose_are_checked_afterwards(md):
    cells = [cell for cell in _cells(md) if cell[0] == "code"]
    for index, (_, source, tags) in enumerate(cells):
        if "raises-exception" in tags:
            assert "expect_error(" in source, f"{md.name}: a raises-exception cell must use gdbook.expect_error"
            assert index + 1 < len(cells) and "assert" in cells[index + 1][1], (
                f"{md.name}: the cell after a raises-exception cell must assert on the error"
            )


def _is_expect_error_block(node: ast.stmt, source: str) -> bool:
    """A ``with gdbook.expect_error(...)`` that re-raises in a notebook (no ``reraise=`` given)."""
    if not isinstance(node, ast.With):
        return False
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call) and "expect_error" in ast.get_source_segment(source, call.func):
            return not any(keyword.arg == "reraise" for keyword in call.keywords)
    return False


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_an_expected_error_ends_its_cell(md):
    """In the book the error stops its cell, so code after the ``with expect_error`` block would
    never run there (while a script, where the error is caught, would run it): nothing may follow it,
    and the cell must be tagged raises-exception."""
    for kind, source, tags in _cells(md):
        if kind != "code" or "expect_error(" not in source:
            continue
        body = ast.parse(source).body
        for position, node in enumerate(body):
            if _is_expect_error_block(node, source):
                assert position == len(body) - 1, (
                    f"{md.name}: move the code after the expect_error block to the next cell:\n{source[:200]}"
                )
                assert "raises-exception" in tags, f"{md.name}: tag this cell raises-exception:\n{source[:200]}"


TIMERS = ("perf_counter(", "time.time(", "process_time(", "monotonic(")


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_cells_that_time_are_not_compared(md):
    """Wall-clock times differ between runs: a cell that measures one is tagged nbval-ignore-output,
    so the reproducibility check (strict nbval against the build, see conftest.py) skips its output."""
    for kind, source, tags in _cells(md):
        if kind == "code" and any(timer in source for timer in TIMERS):
            assert "nbval-ignore-output" in tags, (
                f"{md.name}: tag this timing cell nbval-ignore-output:\n{source[:200]}"
            )


def _timed_names(cells) -> set[str]:
    """Names holding a time: assigned from a timer, or from such a name (one step on). A name that is
    also assigned from something else anywhere in the chapter is left out (generic names like `t`)."""
    assignments = []
    for kind, source, _ in cells:
        if kind != "code":
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {
                    n.id
                    for t in targets
                    for n in ast.walk(t)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                }
                names_in_value = [n for n in ast.walk(node.value) if isinstance(n, ast.Name)]
                bound = {n.id for n in names_in_value if isinstance(n.ctx, ast.Store)}
                used = {n.id for n in names_in_value if isinstance(n.ctx, ast.Load)} - bound
                timer = any(t in (ast.get_source_segment(source, node.value) or "") for t in TIMERS)
                assignments.append((names, used, timer))
    seeds = {name for names, _, timer in assignments if timer for name in names}
    timed = seeds | {name for names, used, _ in assignments if used & seeds for name in names}
    untimed = {name for names, used, timer in assignments if not timer and not used & seeds for name in names}
    return timed - untimed


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_cells_that_print_a_time_are_not_compared(md):
    """A time measured in one cell and printed in another differs between runs just the same: the
    printing cell is tagged nbval-ignore-output too (a CI run found one that was not)."""
    cells = list(_cells(md))
    timed = _timed_names(cells)
    for kind, source, tags in cells:
        if kind != "code" or "nbval-ignore-output" in tags:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                used = {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
                assert not used & timed, (
                    f"{md.name}: this cell prints {sorted(used & timed)}, computed from a timer; "
                    f"tag it nbval-ignore-output:\n{source[:200]}"
                )


def _markdown_lines_opening_a_list_inside_math(text: str) -> list[str]:
    """Lines of Markdown prose that start with '+ ', '- ' or '* ' while an inline $...$ is open:
    Markdown reads them as list items and the equation breaks (the browser test finds the raw TeX)."""
    bad, in_code, open_dollars = [], False, 0
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
            continue
        if in_code or line.strip() == "$$":
            open_dollars = 0
            continue
        if open_dollars % 2 == 1 and line.lstrip()[:2] in {"+ ", "- ", "* "}:
            bad.append(line)
        open_dollars = 0 if not line.strip() else open_dollars + line.replace("$$", "").count("$")
    return bad


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.name)
def test_no_line_of_inline_math_starts_like_a_list_item(md):
    bad = _markdown_lines_opening_a_list_inside_math(md.read_text())
    assert bad == [], f"{md.name}: rewrap so that these lines do not start with '+ ', '- ' or '* ': {bad}"
