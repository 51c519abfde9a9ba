"""Every number in a chapter's prose is backed by the executed chapter (see ``prose_numbers.py``).

Runs on the last build's executed notebooks (``_build/jupyter_execute/chapters``); without a build
it is skipped, except under ``GDBOOK_NBVAL=strict`` (CI), where a missing build is a failure.
"""

import os
from pathlib import Path

import pytest

import prose_numbers as pn

CHAPTERS = sorted((pn.ROOT / "chapters").glob("*.md"))


def executed(md: Path) -> Path:
    return pn.EXECUTED / f"{md.stem}.ipynb"


def _require_build(path: Path) -> None:
    if not path.exists():
        if os.environ.get("GDBOOK_NBVAL") == "strict":
            pytest.fail(f"no executed {path.name}: build the book first (`jupyter-book build .`)")
        pytest.skip("the book has not been built: run `jupyter-book build .` first")
    if path.stat().st_mtime < pn.ROOT.joinpath("chapters", f"{path.stem}.md").stat().st_mtime:
        pytest.skip(f"{path.name} is older than its chapter: rebuild the book")


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_every_prose_number_is_backed(md):
    path = executed(md)
    _require_build(path)
    allowlist = [a for a in pn.load_allowlist() if a.chapter == md.stem]
    findings, _ = pn.split(pn.audit(path), allowlist)
    assert not findings, (
        f"{len(findings)} number(s) in the prose of {md.name} that no cell computes or prints; "
        "glue them from the cell that computes them, print and assert them, or allowlist a "
        "definition with its reason in tests/prose_numbers_allowlist.toml:\n" + "\n".join(f"  {f}" for f in findings)
    )


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_allowlist_entries_are_still_needed(md):
    path = executed(md)
    _require_build(path)
    allowlist = [a for a in pn.load_allowlist() if a.chapter == md.stem]
    _, unused = pn.split(pn.audit(path), allowlist)
    assert not unused, f"allowlist entries for {md.stem} that match nothing any more: {unused}"


def test_allowlist_is_short_and_explained():
    allowlist = pn.load_allowlist()
    assert len(allowlist) <= pn.MAX_ALLOWED, f"{len(allowlist)} allowlisted numbers (at most {pn.MAX_ALLOWED})"
    chapters = {md.stem for md in CHAPTERS}
    for entry in allowlist:
        assert entry.chapter in chapters, f"allowlist names an unknown chapter: {entry}"
    assert len(set(allowlist)) == len(allowlist), "an allowlist entry is listed twice"


def _notebook(markdown: str, code: str = "", output: str = "") -> dict:
    return {
        "cells": [
            {"cell_type": "code", "source": code, "outputs": [{"output_type": "stream", "text": output}]},
            {"cell_type": "markdown", "source": markdown},
        ]
    }


@pytest.mark.parametrize(
    ("prose", "output", "ok"),
    [
        ("reaches about 91% accuracy", "0.9104", True),
        ("reaches about 92% accuracy", "0.9104", False),
        ("the loss is 2.303 at the start", "2.302585", True),
        ("about 1e-9", "2.6e-08", False),
        ("about 3 × 10^-8", "2.6e-08", True),
        ("60,000 images", "", False),
        ("the accuracy {glue:text}`acc:.2%` and `x = 0.5`", "", True),
        ("see step 3 of 2 layers in 2016", "", True),
    ],
)
def test_audit_on_small_notebooks(tmp_path, prose, output, ok):
    import json

    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(_notebook(prose, output=output)))
    assert (pn.audit(path) == []) is ok


def test_allowlist_covers_and_reports_stale_entries(tmp_path):
    import json

    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(_notebook("60,000 images and 0.25 of them")))
    findings = pn.audit(path)
    assert [f.token for f in findings] == ["60,000", "0.25"]
    allow = [pn.Allowed("99_x", "60,000", "MNIST's size, a definition"), pn.Allowed("99_x", "7.5", "stale")]
    rest, unused = pn.split(findings, allow)
    assert [f.token for f in rest] == ["0.25"]
    assert unused == [allow[1]]
