"""The modules exported from chapter cells marked `# @save` (gdbook/export.py) match their chapters."""

from pathlib import Path

from gdbook import export


def test_exported_modules_match_their_chapters():
    stale = export.export(check=True)
    assert not stale, f"re-run `python -m gdbook.export`: {[str(p) for p in stale]} differ"


def test_optimizers_are_exported_from_chapter_4():
    modules = export.collect()
    optimizers = export.ROOT / "gdbook" / "optimizers.py"
    assert optimizers in modules
    assert modules[optimizers][0] == ["chapters/04_optimizers.md"]


def test_marker_names_any_module(tmp_path: Path):
    chapter = tmp_path / "chapters" / "01_x.md"
    chapter.parent.mkdir()
    (tmp_path / "gdbook").mkdir()
    chapter.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "# T\n\n```{code-cell} ipython3\n# @save gdbook.hvp\ndef f():\n    return 1\n```\n\n"
        "```{code-cell} ipython3\nf()\n```\n"
    )
    assert export.export(tmp_path) == [tmp_path / "gdbook" / "hvp.py"]
    text = (tmp_path / "gdbook" / "hvp.py").read_text()
    assert "def f():\n    return 1\n" in text and "f()\n" not in text.replace("def f():", "")
    assert export.export(tmp_path, check=True) == []
