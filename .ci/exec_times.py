"""Print how long each chapter took to execute in the last `jupyter-book build` (from its cache)
and fail if any chapter in the table of contents has no successful execution recorded."""

import sys
from pathlib import Path

from jupyter_cache import get_cache

root = Path(__file__).resolve().parent.parent
cache = get_cache(root / "_build" / ".jupyter_cache")
records = {Path(record.uri).resolve(): record for record in cache.list_cache_records()}

total = 0.0
missing = []
print(f"{'chapter':<32} {'seconds':>8}")
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
    total += seconds
    print(f"{md.name:<32} {seconds:8.1f}")
print(f"{'total':<32} {total:8.1f}")
if missing:
    sys.exit(f"no successful execution recorded for: {', '.join(missing)}")
