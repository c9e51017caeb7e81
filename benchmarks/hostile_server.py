"""The whole hostile corpus (tests/hostile_corpus.py) through a running server process.

Starts ``python -m bgclear.server`` (segmenter u2netp by default) on a loopback port,
POSTs every case, and checks: a 2xx with a correct cutout or a 4xx JSON error, never
a 5xx, never a dropped connection, and an ordinary photo still gets its cutout after
each case (or every --normal-every cases). The server's RSS (with its children) is
sampled with psutil throughout; its peak is reported.

    .venv/bin/python benchmarks/hostile_server.py [--heavy] [--normal-every 1] [--segmenter u2netp]

Loopback only; the number of requests is bounded by the corpus size.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile_check import normal_request_ok, server_check  # noqa: E402
from hostile_corpus import build_corpus  # noqa: E402
from server_fixtures import disc_image, start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 1e6
    except psutil.Error:
        return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heavy", action="store_true", help="also send the tens-of-megapixel cases")
    ap.add_argument("--normal-every", type=int, default=1)
    ap.add_argument("--segmenter", default="u2netp")
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    cases = [c for c in build_corpus() if args.filter in c.name and (args.heavy or not c.heavy)]
    normal = disc_image(160, 120, "PNG")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        extra = [] if args.segmenter == "u2netp" else ["--segmenter", args.segmenter]
        server = start_server(log_path, *extra, timeout=120)
        pid = server.proc.pid
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_mb(pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        results, normal_fail = [], []
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                assert normal_request_ok(client, normal)
                rss_start = rss_mb(pid)
                sampler.start()
                t = time.perf_counter()
                for i, case in enumerate(cases):
                    results.append(server_check(client, case))
                    if (i + 1) % args.normal_every == 0 and not normal_request_ok(client, normal):
                        normal_fail.append(case.name)
                    if (i + 1) % 100 == 0:
                        print(f"  {i + 1}/{len(cases)}  rss {rss_mb(pid):.0f} MB", flush=True)
                took = time.perf_counter() - t
                final_ok = normal_request_ok(client, normal)
                rss_end = rss_mb(pid)
        finally:
            stop.set()
            alive = server.proc.poll() is None
            server.stop()
            log = server.log()
    statuses = collections.Counter(r.status for r in results)
    fails = [r for r in results if r.verdict != "pass"]
    five = sum(1 for r in results if r.status >= 500)
    dropped = sum(1 for r in results if r.status == 0)
    print(f"\n{len(results)} cases in {took:.0f}s (heavy: {args.heavy}); statuses {dict(sorted(statuses.items()))}")
    print(f"5xx: {five}   dropped connections: {dropped}   normal request failed after: {len(normal_fail)}   "
          f"server alive at the end: {alive}   final normal request ok: {final_ok}")
    print(f"server RSS: after warm-up {rss_start:.0f} MB, peak {max(samples or [0]):.0f} MB, end {rss_end:.0f} MB")
    print(f"'Traceback' in the server log: {'Traceback' in log}")
    print(f"FAILURES: {len(fails)}")
    for r in fails[:50]:
        print(f"--- {r.name}: {r.status} {r.detail}")
    for n in normal_fail[:20]:
        print(f"--- normal request failed after {n}")
    bad = fails or normal_fail or not alive or not final_ok or five or dropped
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
