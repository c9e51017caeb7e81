"""End-to-end server benchmark: API latency vs calling the engine directly, throughput, memory.

    python benchmarks/bench_server.py [--json out.json] [--segmenter isnet]

1. Latency of one 12 MP photo: ``Session.remove`` + PNG encode in this process,
   then ``POST /v1/remove`` to a ``python -m bgclear.server`` process, measured
   by the client (upload, queue, work, download).
2. Throughput with 1, 2 and 4 concurrent clients sending the same 12 MP photo.
3. Server memory: peak RSS (VmHWM) and current RSS of a fresh server after 10 and
   after 200 requests of a smaller photo (0.5 MP, so the run stays short), to
   show whether memory grows with the number of requests.

The 12 MP photo is made at run time by upscaling a photo from ../shared/eval
(or a generated picture when that folder is absent); nothing is written to the repo.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EVAL_PHOTO = REPO.parent / "shared" / "eval" / "alphamatting_train_lowres" / "image" / "GT04.png"


def source_photo() -> tuple[Image.Image, str]:
    if EVAL_PHOTO.exists():
        return Image.open(EVAL_PHOTO).convert("RGB"), f"shared/eval {EVAL_PHOTO.name}"
    yy, xx = np.mgrid[0:600, 0:800]
    img = np.dstack([120 + 60 * np.sin(xx / 40), 140 + 50 * np.cos(yy / 30), 160 + 0 * xx])
    inside = (xx - 400) ** 2 + (yy - 300) ** 2 < 180**2
    img[inside] = (200, 60, 40)
    return Image.fromarray(img.astype(np.uint8)), "generated"


def jpeg_of(img: Image.Image, megapixels: float) -> tuple[bytes, tuple[int, int]]:
    scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    size = (round(img.width * scale), round(img.height * scale))
    buf = io.BytesIO()
    img.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
    return buf.getvalue(), size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a free loopback port."""

    def __init__(self, segmenter: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bgclear.server", "--port", str(self.port), "--segmenter", segmenter,
             "--log-level", "warning", *args], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1200):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).json()["status"] == "ready":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError("server did not start:\n" + self.log.read().decode(errors="replace"))

    def memory_mb(self) -> dict[str, float]:
        """VmHWM (peak resident set) and VmRSS (now) of the server process, in MB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024
        return {"peak_rss_mb": round(fields["VmHWM"], 1), "rss_mb": round(fields["VmRSS"], 1)}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def post(client: httpx.Client, url: str, data: bytes) -> float:
    started = time.perf_counter()
    r = client.post(f"{url}/v1/remove", files={"image_file": ("photo.jpg", data)})
    took = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
    return took


def bench_direct(segmenter: str, data: bytes, repeats: int) -> list[float]:
    from bgclear import Session

    # The same ONNX thread count as the server process (one cutout at a time on this machine).
    os.environ.setdefault("BGCLEAR_THREADS", str(os.cpu_count() or 1))
    session = Session(segmenter=segmenter)
    session.remove(data).encode("png")  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.remove(data).encode("png")
        times.append(time.perf_counter() - started)
    return times


def bench_throughput(url: str, data: bytes, clients: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = [total]

    def client_loop() -> None:
        with httpx.Client(timeout=600) as c:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                took = post(c, url, data)
                with lock:
                    latencies.append(took)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client_loop) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": total, "wall_s": round(wall, 2),
            "images_per_min": round(60 * total / wall, 2),
            "p50_s": round(statistics.median(latencies), 2), "max_s": round(max(latencies), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segmenter", default="isnet")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs for the latency numbers")
    parser.add_argument("--soak", type=int, default=200, help="requests in the memory run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    photo, origin = source_photo()
    big, big_size = jpeg_of(photo, 12.0)
    small, small_size = jpeg_of(photo, 0.5)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"), "segmenter": args.segmenter, "photo": origin,
        "load_avg_at_start": os.getloadavg(),
        "photo_12mp": {"size": big_size, "jpeg_bytes": len(big)},
    }
    print(f"12 MP photo: {big_size[0]}x{big_size[1]} JPEG {len(big) / 1e6:.1f} MB (from {origin})", flush=True)

    direct = bench_direct(args.segmenter, big, args.repeats)
    results["direct_s"] = [round(t, 2) for t in direct]
    print(f"direct remove()+encode: median {statistics.median(direct):.2f}s {results['direct_s']}", flush=True)

    server = Server(args.segmenter)
    try:
        with httpx.Client(timeout=600) as c:
            post(c, server.url, big)  # warm-up
            api = [post(c, server.url, big) for _ in range(args.repeats)]
        results["api_s"] = [round(t, 2) for t in api]
        print(f"API (client-measured): median {statistics.median(api):.2f}s {results['api_s']}", flush=True)
        results["throughput"] = []
        for clients in (1, 2, 4):
            row = bench_throughput(server.url, big, clients, total=max(4, 2 * clients))
            results["throughput"].append(row)
            print(f"throughput: {row}", flush=True)
        results["memory_12mp"] = server.memory_mb()
        print(f"server memory after the 12 MP runs: {results['memory_12mp']}", flush=True)
    finally:
        server.stop()

    server = Server(args.segmenter)
    try:
        results["memory_soak"] = {"photo": {"size": small_size, "jpeg_bytes": len(small)}}
        results["memory_soak"]["at_start"] = server.memory_mb()
        with httpx.Client(timeout=600) as c, ThreadPoolExecutor(2) as pool:
            def send(_: int) -> float:
                return post(c, server.url, small)

            list(pool.map(send, range(10)))
            results["memory_soak"]["after_10"] = server.memory_mb()
            print(f"after 10 requests: {results['memory_soak']['after_10']}", flush=True)
            list(pool.map(send, range(args.soak - 10)))
            results["memory_soak"][f"after_{args.soak}"] = server.memory_mb()
            print(f"after {args.soak} requests: {results['memory_soak'][f'after_{args.soak}']}", flush=True)
    finally:
        server.stop()

    results["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
