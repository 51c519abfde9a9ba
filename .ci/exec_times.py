"""Print how long each chapter took to execute in the last `jupyter-book build` (from its cache),
against its time budget, and fail if any chapter has no successful execution recorded.

Budgets: the MNIST chapters have the ones their issue set (Chapter 6 one minute, Chapter 7 five
minutes, on 2 CPU cores); every other chapter teaches mechanics and gets one minute. The same machine
runs the same chapter up to twice as fast or as slow from one hour to the next (other tenants), so a
chapter over its budget is reported, and CI fails only at twice the budget: that is a regression, not
noise.
"""

import sys
from pathlib import Path

from jupyter_cache import get_cache

root = Path(__file__).resolve().parent.parent
cache = get_cache(root / "_build" / ".jupyter_cache")
records = {Path(record.uri).resolve(): record for record in cache.list_cache_records()}

BUDGET_SECONDS = {"06_softmax.md": 60, "07_cnn.md": 300}
DEFAULT_BUDGET_SECONDS = 60

total = 0.0
missing, over, far_over = [], [], []
print(f"{'chapter':<32} {'seconds':>8} {'budget':>8}")
for md in sorted((root / "chapters").glob("*.md")):
    if "execution_mode: force" in md.read_text().split("\n---", 1)[0]:
        print(f"{md.name:<32} {'every build, not cached':>8}")
        continue
    record = records.get(md.resolve())
    if record is None:
        missing.append(md.name)
        print(f"{md.name:<32} {'not executed':>8}")
        continue
    seconds = float(record.data.get("execution_seconds", 0.0))
    budget = BUDGET_SECONDS.get(md.name, DEFAULT_BUDGET_SECONDS)
    total += seconds
    flag = "" if seconds <= budget else "  OVER BUDGET"
    print(f"{md.name:<32} {seconds:8.1f} {budget:8d}{flag}")
    if seconds > budget:
        over.append(md.name)
    if seconds > 2 * budget:
        far_over.append(md.name)
print(f"{'total':<32} {total:8.1f}")
if over:
    print(f"over budget (machine noise if under twice the budget): {', '.join(over)}")
if missing:
    sys.exit(f"no successful execution recorded for: {', '.join(missing)}")
if far_over:
    sys.exit(f"more than twice the time budget: {', '.join(far_over)}")
