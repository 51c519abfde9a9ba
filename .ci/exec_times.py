"""Print how long each chapter took to execute in the last `jupyter-book build` (from its cache),
against its time budget, and fail if any chapter has no successful execution recorded.

Budgets, in seconds on two idle CPU cores, are the ones the book's issues set: Chapters 1-3 teach
mechanics and get 30 s, Chapters 4-5 45 s, the softmax regression (6) 30 s, the convolutional network
(7) 120 s, debugging (8) and Appendix A1 60 s, more than one device (9) 90 s. The same machine runs
the same chapter up to twice as fast or as slow from one hour to the next (other tenants), so a
chapter over its budget is reported, and CI fails only at twice the budget: that is a regression, not
noise. Appendix A2 prints the same table for the build the reader is looking at (it imports
`table` from this file).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUDGET_SECONDS = {
    "01_gradient.md": 30,
    "02_tf_gradients.md": 30,
    "03_tape.md": 30,
    "04_optimizers.md": 45,
    "05_schedules.md": 45,
    "06_softmax.md": 30,
    "07_cnn.md": 120,
    "08_debugging.md": 60,
    "09_devices.md": 90,
    "A1_tf1_to_tf2.md": 60,
}
DEFAULT_BUDGET_SECONDS = 60


def table(root: Path = ROOT) -> list[tuple[str, float | None, int]]:
    """(chapter file, seconds its last build execution took or None if none, budget in seconds)."""
    from jupyter_cache import get_cache

    cache = get_cache(root / "_build" / ".jupyter_cache")
    records = {Path(record.uri).resolve(): record for record in cache.list_cache_records()}
    rows = []
    for md in sorted((root / "chapters").glob("*.md")):
        if "execution_mode: force" in md.read_text().split("\n---", 1)[0]:
            continue
        record = records.get(md.resolve())
        seconds = None if record is None else float(record.data.get("execution_seconds", 0.0))
        rows.append((md.name, seconds, BUDGET_SECONDS.get(md.name, DEFAULT_BUDGET_SECONDS)))
    return rows


def main() -> None:
    total = 0.0
    missing, over, far_over = [], [], []
    print(f"{'chapter':<32} {'seconds':>8} {'budget':>8}")
    for name, seconds, budget in table():
        if seconds is None:
            missing.append(name)
            print(f"{name:<32} {'not executed':>8}")
            continue
        total += seconds
        flag = "" if seconds <= budget else "  OVER BUDGET"
        print(f"{name:<32} {seconds:8.1f} {budget:8d}{flag}")
        if seconds > budget:
            over.append(name)
        if seconds > 2 * budget:
            far_over.append(name)
    print(f"{'total':<32} {total:8.1f}")
    if over:
        print(f"over budget (machine noise if under twice the budget): {', '.join(over)}")
    if missing:
        sys.exit(f"no successful execution recorded for: {', '.join(missing)}")
    if far_over:
        sys.exit(f"more than twice the time budget: {', '.join(far_over)}")


if __name__ == "__main__":
    main()
