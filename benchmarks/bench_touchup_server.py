"""What a touch-up click costs the server on a 12 MP photo: the edit handle against sending the photo again.

    python benchmarks/bench_touchup_server.py [--segmenter isnet] [--megapixels 12] [--rounds 3] [--json out.json]

The page's sequence, against a ``python -m bgclear.server`` process:

1. the upload: ``POST /v1/remove?edit=true``, full-resolution PNG (decode, segmentation, matting);
2. the first click through the handle (``POST /v1/remove/{edit_id}``, ``size=preview``): it pays
   MobileSAM's image encoder once;
3. ``--rounds`` rounds, each one more click through the handle and one more click by the full
   path (the photo sent again with all the points, as after ``edit_expired``), interleaved so
   that load from other work on the machine falls on both alike;
4. the download: the full-resolution PNG with the points, through the handle;
5. a click on a replica that never saw the photo: the full path, nothing cached.

Times are measured by the client; the server's own stage times come from ``Server-Timing``.
The photo is made at run time (as in bench_server.py) and never written to the repo.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import Server, jpeg_of, source_photo  # noqa: E402


def stages(response: httpx.Response) -> dict[str, float]:
    """Server-Timing as {stage: seconds}."""
    out = {}
    for part in response.headers.get("Server-Timing", "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = round(float(dur) / 1000, 3)
    return out


def timed(client: httpx.Client, url: str, **kwargs) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    r = client.post(url, **kwargs)
    took = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    return took, r


def point(size: tuple[int, int], fx: float, fy: float) -> str:
    return f"{round(size[0] * fx)},{round(size[1] * fy)}"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", default="isnet")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    photo, origin = source_photo()
    data, size = jpeg_of(photo, args.megapixels)
    other, _ = jpeg_of(ImageOps.mirror(photo), args.megapixels)  # unseen pixels: a cold replica
    base = [("keep", point(size, 0.5, 0.5))]
    rows: dict[str, list[dict]] = {"upload": [], "first_click": [], "edit_click": [], "full_click": [],
                                   "download": [], "cold_replica_click": []}
    server = Server(args.segmenter)
    try:
        with httpx.Client(base_url=server.url, timeout=900) as client:
            took, r = timed(client, "/v1/remove", params={"edit": "true"}, content=data)
            rows["upload"].append({"seconds": took, "server": stages(r)})
            handle = r.headers["X-Edit-Id"]
            edit_url = f"/v1/remove/{handle}"
            took, r = timed(client, edit_url, params=[*base, ("size", "preview")])
            rows["first_click"].append({"seconds": took, "server": stages(r)})
            for i in range(args.rounds):
                # A new point each time, so that neither path finds that click's answer cached.
                edit_point = ("drop", point(size, 0.05 + 0.04 * i, 0.08))
                full_point = ("drop", point(size, 0.95 - 0.04 * i, 0.08))
                took, r = timed(client, edit_url, params=[*base, edit_point, ("size", "preview")])
                rows["edit_click"].append({"seconds": took, "server": stages(r)})
                took, r = timed(client, "/v1/remove", params=[*base, full_point, ("size", "preview"), ("edit", "true")],
                                content=data)
                rows["full_click"].append({"seconds": took, "server": stages(r)})
            took, r = timed(client, edit_url, params=base)
            rows["download"].append({"seconds": took, "server": stages(r), "bytes": len(r.content)})
            took, r = timed(client, "/v1/remove", params=[*base, ("size", "preview")], content=other)
            rows["cold_replica_click"].append({"seconds": took, "server": stages(r)})
            memory = server.memory_mb()
    finally:
        server.stop()

    summary = {name: round(statistics.median(r["seconds"] for r in runs), 3) for name, runs in rows.items()}
    report = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"), "photo": f"{size[0]}x{size[1]} JPEG ({origin})",
              "jpeg_bytes": len(data), "segmenter": args.segmenter, "median_seconds": summary,
              "edit_over_full": round(summary["edit_click"] / summary["full_click"], 3), "server_memory": memory,
              "runs": rows}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    for name, runs in rows.items():
        for run in runs:
            print(f"{name:>20} {run['seconds']:7.2f} s  {run['server']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
