"""Find the numbers in a chapter's prose that no code or output of the executed chapter backs.

The book promises that every number its text states is computed. This module checks the part of
that promise a program can check: each number written in a chapter's Markdown cells must be backed
by a number in the same chapter's code or outputs that rounds to it at the precision the prose gives
("91.0%" is backed by a printed 0.9104; "about 1e-9" is not backed by a printed 2.6e-08).

What counts as a prose number: a decimal ("0.5", "2.303"), an exponent ("1e-7", "3 × 10^-4",
"10^{-8}"), a percentage ("91%"), or an integer of 1000 or more ("60,000") that is not a year.
Small integers ("two layers", "step 3") are not checked. Text inside roles and inline code
(``{glue:text}`acc:.2%` ``, ``{eq}`eq-x` ``, ```x = 0.5```), labels, URLs, and display-math
equation labels is skipped: a glued number is backed by construction, because glue takes it from
the cell that computes it.

What backs a number: any number in a code cell's source or outputs (text, HTML, LaTeX, glue
payloads), including hidden cells. Percentages are compared both as given and divided by 100.

Numbers that need no computation (a data set's size, a paper's reported result next to its
citation, a float32 constant) are listed in ``tests/prose_numbers_allowlist.toml``, each with its
reason. An allowlist entry that matches nothing is an error too, so the list cannot rot.

What this cannot catch: a wrong sentence with no number in it, and a number that is backed by a
coincidence elsewhere in the chapter. Those are for the asserts and for a reader.

Usage::

    python tests/prose_numbers.py [EXECUTED.ipynb ...]   # default: the last build's chapters
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_build" / "jupyter_execute" / "chapters"
ALLOWLIST = Path(__file__).resolve().parent / "prose_numbers_allowlist.toml"
MAX_ALLOWED = 30

NUM = re.compile(
    r"(?<![\w.])[-−]?\d+(?:\.\d+)?\s*(?:\\times|×|·)\s*10\^\{?[-−]?\d+\}?"
    r"|(?<![\w.^{])10\^\{?[-−]?\d+\}?"
    r"|(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-−+]?\d+)?(?:\s*%)?"
)
# Roles ({glue:text}`x`, {eq}`y`), inline code, targets "(label)=", equation labels "$$ (label)",
# URLs and Markdown link targets carry no prose numbers.
SKIP = re.compile(
    r"\{[a-z:-]+\}`[^`]*`"
    r"|`[^`\n]*`"
    r"|\(\w[\w-]*\)="
    r"|\$\$\s*\([\w-]+\)"
    r"|https?://\S+"
    r"|\]\([^)]*\)"
    r"|^:[\w-]+:.*$",
    re.MULTILINE,
)
# Directive lines of a fence (```{exercise} ... :label: ex-1) are not prose either.
FENCE_OPTION = re.compile(r"^\s*(?:`{3,}|:{3,})\{[^}]*\}.*$", re.MULTILINE)


@dataclass(frozen=True)
class Number:
    token: str
    value: float
    decimals: int
    exponent: int
    percent: bool


@dataclass(frozen=True)
class Finding:
    chapter: str
    cell: int
    token: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.chapter}, cell {self.cell}: {self.token!r} in: {self.sentence}"


def parse(token: str) -> Number | None:
    t = token.replace("−", "-").replace(",", "").strip()
    percent = t.endswith("%")
    t = t.rstrip("%").strip()
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(?:\\times|×|·)\s*10\^\{?(-?\d+)\}?", t)
    if m:
        mantissa, exponent = m.group(1), int(m.group(2))
    elif re.fullmatch(r"10\^\{?-?\d+\}?", t):
        mantissa, exponent = "1", int(re.sub(r"[^\d-]", "", t[2:]))
    else:
        m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?:[eE]([-+]?\d+))?", t)
        if not m:
            return None
        mantissa = m.group(1)
        exponent = int(m.group(2)) if m.group(2) else 0
    if abs(exponent) > 300:
        return None
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return Number(token.strip(), float(mantissa) * 10.0**exponent, decimals, exponent, percent)


def worth_checking(n: Number) -> bool:
    if n.percent or n.exponent != 0 or n.decimals > 0 or "^" in n.token or "e" in n.token.lower():
        return True
    return abs(n.value) >= 1000 and not (1900 <= abs(n.value) <= 2100 and "," not in n.token)


def backed(n: Number, evidence: list[float]) -> bool:
    """Some evidence rounds to ``n`` at the precision ``n`` is written with."""
    candidates = [(n.value / 100, 0.01), (n.value, 1.0)] if n.percent else [(n.value, 1.0)]
    for target, unit in candidates:
        half_step = 0.5 * 10.0 ** (n.exponent - n.decimals) * unit * (1 + 1e-9)
        if target == 0:
            half_step = max(half_step, 1e-12)
        if any(abs(abs(e) - abs(target)) <= half_step for e in evidence):
            return True
    return False


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _cell_outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            text = out["text"]
            parts.append("".join(text) if isinstance(text, list) else text)
        for mime in ("text/plain", "text/html", "text/markdown", "text/latex"):
            data = out.get("data", {}).get(mime)
            if data is not None:
                parts.append("".join(data) if isinstance(data, list) else data)
        if out.get("output_type") == "error":
            parts.append(out.get("evalue", ""))
    return "\n".join(parts)


def evidence_of(notebook: dict) -> list[float]:
    text = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            text += [_cell_source(cell), _cell_outputs(cell)]
    values = []
    for token in NUM.findall("\n".join(text)):
        n = parse(token)
        if n is not None:
            values.append(n.value)
    return values


def prose_of(markdown: str) -> str:
    return SKIP.sub(" ", FENCE_OPTION.sub(" ", markdown))


def _sentence(text: str, start: int, end: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n\n", 0, start), start - 160)
    right_candidates = [i for i in (text.find(". ", end), text.find("\n\n", end)) if i != -1]
    right = min([*right_candidates, end + 120])
    return " ".join(text[max(0, left + 1) : right + 1].split())


def audit(path: Path) -> list[Finding]:
    """Every prose number in the executed notebook at ``path`` that nothing in it backs."""
    notebook = json.loads(path.read_text())
    evidence = evidence_of(notebook)
    chapter = path.stem
    findings = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = prose_of(_cell_source(cell))
        for m in NUM.finditer(text):
            n = parse(m.group(0))
            if n is None or not worth_checking(n) or backed(n, evidence):
                continue
            findings.append(Finding(chapter, index, n.token, _sentence(text, m.start(), m.end())))
    return findings


@dataclass(frozen=True)
class Allowed:
    chapter: str
    number: str
    reason: str


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowed]:
    entries = tomllib.loads(path.read_text()).get("allow", [])
    allowed = []
    for entry in entries:
        missing = {"chapter", "number", "reason"} - set(entry)
        if missing:
            raise ValueError(f"{path.name}: entry {entry} lacks {sorted(missing)}")
        if len(entry["reason"].strip()) < 10:
            raise ValueError(f"{path.name}: give {entry['number']!r} in {entry['chapter']} a real reason")
        allowed.append(Allowed(entry["chapter"], entry["number"], entry["reason"]))
    return allowed


def _same(token: str, listed: str) -> bool:
    return token.replace("−", "-").replace(" ", "") == listed.replace("−", "-").replace(" ", "")


def split(findings: list[Finding], allowlist: list[Allowed]) -> tuple[list[Finding], list[Allowed]]:
    """(findings no allowlist entry covers, allowlist entries that cover nothing)."""
    used = set()
    open_findings = []
    for f in findings:
        hits = [a for a in allowlist if a.chapter == f.chapter and _same(f.token, a.number)]
        used.update(hits)
        if not hits:
            open_findings.append(f)
    return open_findings, [a for a in allowlist if a not in used]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(EXECUTED.glob("*.ipynb"))
    if not paths:
        print("no executed chapters: run `jupyter-book build .` first, or name notebooks")
        return 2
    allowlist = load_allowlist()
    total = 0
    for path in paths:
        rows, _ = split(audit(path), allowlist)
        total += len(rows)
        print(f"{path.name}: {len(rows)} prose number(s) nothing backs")
        for f in rows:
            print(f"  cell {f.cell:3d}  {f.token:>12}  {f.sentence}")
    print(f"{total} in all")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
