"""Load and soak test of the server: a small asyncio/httpx client on loopback only.

Starts ``python -m bgclear.server`` (or uses --url, which must be a loopback address),
makes photos of mixed sizes at run time by upscaling examples/cat.png (0.3 to 24 MP by
default), and drives the server at 1x, 2x and 4x its concurrency limit (clients that
each send one request after another, honouring Retry-After on 503) for --seconds per
level. Reports per level: requests sent and answered (they must be equal), throughput,
p50/p95/p99 latency of the 200s, 503 count and whether each carried Retry-After, other
statuses; and the server's RSS (with children) sampled every --sample-every seconds:
its level after warm-up and at the end (drift must stay within 10 %).

    .venv/bin/python benchmarks/load_server.py --segmenter u2netp --seconds 120

Bounded: at most --max-requests requests per level and --seconds per level.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from server_fixtures import start_server  # noqa: E402


def make_photos(megapixels: list[float]) -> list[tuple[float, bytes]]:
    """The sample cat upscaled to each size, as JPEG (what a phone sends)."""
    cat = Image.open(REPO / "examples" / "cat.png").convert("RGB")
    aspect = cat.width / cat.height
    out = []
    for mp in megapixels:
        h = int((mp * 1e6 / aspect) ** 0.5)
        w = int(h * aspect)
        buf = io.BytesIO()
        cat.resize((w, h), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=88)
        out.append((w * h / 1e6, buf.getvalue()))
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


async def drive(url: str, photos: list[tuple[float, bytes]], clients: int, seconds: float, max_requests: int) -> dict:
    stats = {"sent": 0, "answered": 0, "errors": [], "latency": [], "status": {}, "busy": 0, "busy_retry_after": 0,
             "bytes_in": 0}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def one_client(k: int) -> None:
            i = k
            while time.monotonic() < deadline and stats["sent"] < max_requests:
                mp, data = photos[i % len(photos)]
                i += clients
                stats["sent"] += 1
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/remove", files={"image_file": ("photo.jpg", data, "image/jpeg")})
                except httpx.HTTPError as exc:
                    stats["errors"].append(f"{exc.__class__.__name__}: {exc}")
                    continue
                took = time.perf_counter() - t
                stats["answered"] += 1
                stats["status"][r.status_code] = stats["status"].get(r.status_code, 0) + 1
                if r.status_code == 200:
                    stats["latency"].append(took)
                    stats["bytes_in"] += len(data)
                elif r.status_code == 503:
                    stats["busy"] += 1
                    retry = r.headers.get("retry-after")
                    if retry and retry.isdigit():
                        stats["busy_retry_after"] += 1
                        await asyncio.sleep(min(int(retry), max(0.0, deadline - time.monotonic())))

        started = time.monotonic()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        stats["wall"] = time.monotonic() - started
    return stats


def rss_mb(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 1e6
    except psutil.Error:
        return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segmenter", default="u2netp")
    ap.add_argument("--seconds", type=float, default=600, help="per load level (the issue asks for 600)")
    ap.add_argument("--levels", default="1,2,4", help="multiples of the server's concurrency limit")
    ap.add_argument("--megapixels", default="0.3,1,2,4,8,12,24")
    ap.add_argument("--max-requests", type=int, default=5000, help="per level")
    ap.add_argument("--sample-every", type=float, default=3.0)
    ap.add_argument("--max-concurrency", type=int, default=0, help="passed to the server (0: its default)")
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3, help="requests before the RSS baseline")
    ap.add_argument("--url", default="", help="an already running server on 127.0.0.1 (else one is started)")
    args = ap.parse_args()
    photos = make_photos([float(x) for x in args.megapixels.split(",")])
    print("photos:", [(round(mp, 1), f"{len(d) / 1e6:.1f} MB") for mp, d in photos], flush=True)

    tmp = tempfile.TemporaryDirectory()
    server = None
    if args.url:
        host = urlparse(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("loopback only: --url must point at 127.0.0.1")
        url, pid = args.url, None
    else:
        extra = ["--queue-size", str(args.queue_size), "--max-bytes", "100000000", "--log-level", "warning"]
        if args.max_concurrency:
            extra += ["--max-concurrency", str(args.max_concurrency)]
        if args.segmenter != "u2netp":
            extra += ["--segmenter", args.segmenter]
        server = start_server(Path(tmp.name) / "server.log", *extra, timeout=180)
        url, pid = server.url, server.proc.pid
    limit = httpx.get(f"{url}/healthz", timeout=10).json()["max_concurrency"]
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set() and pid:
            samples.append((time.monotonic(), rss_mb(pid)))
            stop.wait(args.sample_every)

    ok = True
    try:
        # Warm-up: every photo size once, so the baseline includes the allocator's steady state.
        with httpx.Client(base_url=url, timeout=600) as c:
            for _mp, data in photos[: max(args.warmup, len(photos))]:
                c.post("/v1/remove", files={"image_file": ("photo.jpg", data, "image/jpeg")})
        baseline = rss_mb(pid) if pid else 0.0
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        print(f"server {url}: concurrency limit {limit}, queue {args.queue_size}, segmenter {args.segmenter}; "
              f"RSS after warm-up {baseline:.0f} MB", flush=True)
        for level in (int(x) for x in args.levels.split(",")):
            clients = level * limit
            s = asyncio.run(drive(url, photos, clients, args.seconds, args.max_requests))
            lat = s["latency"]
            done = len(lat)
            print(f"\n{level}x ({clients} clients, {s['wall']:.0f} s): sent {s['sent']}, answered {s['answered']} "
                  f"({'sent = answered' if s['sent'] == s['answered'] else 'LOST ' + str(s['sent'] - s['answered'])}); "
                  f"statuses {dict(sorted(s['status'].items()))}")
            print(f"  throughput {done / s['wall']:.2f} cutouts/s ({s['bytes_in'] / 1e6 / s['wall']:.1f} MB/s uploaded); "
                  f"latency p50 {percentile(lat, 50):.2f} s, p95 {percentile(lat, 95):.2f} s, p99 {percentile(lat, 99):.2f} s")
            print(f"  503: {s['busy']} (with Retry-After: {s['busy_retry_after']}); transport errors: {len(s['errors'])} "
                  f"{s['errors'][:3]}; RSS now {rss_mb(pid) if pid else 0:.0f} MB", flush=True)
            ok &= s["sent"] == s["answered"] and not s["errors"] and s["busy"] == s["busy_retry_after"]
            ok &= all(code < 500 or code == 503 for code in s["status"])
        time.sleep(args.sample_every)
        end = rss_mb(pid) if pid else 0.0
    finally:
        stop.set()
        if server is not None:
            server.stop()
        tmp.cleanup()
    if pid:
        peak = max(r for _, r in samples) if samples else 0.0
        drift = (end - baseline) / baseline * 100 if baseline else 0.0
        print(f"\nRSS: after warm-up {baseline:.0f} MB, peak {peak:.0f} MB, end {end:.0f} MB, drift {drift:+.1f} % "
              f"({len(samples)} samples every {args.sample_every:g} s)")
        print("  samples (s, MB):", [(round(t - samples[0][0]), round(r)) for t, r in samples][:: max(1, len(samples) // 20)])
        ok &= abs(drift) <= 10
    print("RESULT:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
