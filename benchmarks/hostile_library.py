"""The whole hostile corpus (tests/hostile_corpus.py) through the library, each case in a
worker subprocess with a time bound: every case must give a correct cutout or an InputError.

    .venv/bin/python benchmarks/hostile_library.py              # decode every case, full remove() on the "ok" ones
    .venv/bin/python benchmarks/hostile_library.py --decode-only
    .venv/bin/python benchmarks/hostile_library.py --full-all   # remove() on every case (slow)

Exits 1 if any case fails (another exception, a hang, a crash, a wrong expectation).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile_check import run_pool  # noqa: E402
from hostile_corpus import build_corpus, summary  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--decode-only", action="store_true")
    ap.add_argument("--full-all", action="store_true")
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--json", type=Path, help="write every result here")
    args = ap.parse_args()
    cases = [c for c in build_corpus() if args.filter in c.name]
    full: set[str] | bool = False
    if args.full_all:
        full = True
    elif not args.decode_only:
        full = {c.name for c in cases if c.expect != "refuse" and not c.heavy}
    print(f"{len(cases)} cases: {summary(cases)}", flush=True)
    t = time.perf_counter()
    results = run_pool(cases, workers=args.workers, timeout=args.timeout, full=full, progress=True)
    took = time.perf_counter() - t
    outcomes = collections.Counter(r.outcome for r in results)
    fails = [r for r in results if r.verdict != "pass"]
    slow = sorted(results, key=lambda r: -r.seconds)[:5]
    print(f"\n{len(results)} cases in {took:.0f}s with {args.workers} workers; full remove() on "
          f"{len(full) if isinstance(full, set) else (len(cases) if full else 0)}")
    print("outcomes:", dict(outcomes.most_common()))
    print("slowest:", [(r.name, round(r.seconds, 2)) for r in slow])
    print(f"largest worker peak RSS: {max(r.peak_rss_mb for r in results):.0f} MB")
    print(f"FAILURES: {len(fails)}")
    for r in fails:
        print(f"--- {r.name}: {r.outcome}\n{r.detail}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
