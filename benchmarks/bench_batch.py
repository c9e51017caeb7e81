"""Throughput of ``bgclear batch``: Ray (embedded, 1 and 2 workers; a two-node local cluster) against
the plain process pool and a loop over ``bgclear remove``.

Commands (from the repository root, with the venv active and the 'ray' extra installed):

    python benchmarks/bench_batch.py --count 200 --size 4000x3000             # the full run (hours on 2 cores)
    python benchmarks/bench_batch.py --count 12 --loop-count 6 --size 4000x3000 --json benchmarks/results/batch.json
    python benchmarks/bench_batch.py --count 4 --size 1200x900 --segmenter u2netp   # a quick smoke run
    python benchmarks/bench_batch.py --count 24 --configs pool-1 --engine onnxruntime --precision f32   # per engine

Each configuration processes the same ``--count`` photos (synthetic, made here, JPEG,
``--size`` pixels) into a fresh folder with the default options (ISNet, guided
refiner, transparent PNG). Images per minute are wall-clock, start-up included
(model loading, Ray start); ``steady`` excludes the time to the first finished image.
Peak RSS: the largest worker process (``ru_maxrss`` from the job report) and the
peak of everything the configuration runs (driver, Ray processes, workers) summed,
sampled every 0.5 s; for the cluster, per node. The 1-minute load average before
and after each configuration is recorded, since other work shares the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

PYTHON = sys.executable
BGCLEAR = str(Path(PYTHON).with_name("bgclear"))
RAY = str(Path(PYTHON).with_name("ray"))


def make_photo(path: Path, width: int, height: int, seed: int) -> None:
    """A product-like photo: a textured oval object on a soft gradient, with sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([200 + 30 * yy / height, 200 + 20 * xx / width, 210 - 20 * yy / height], -1)
    cx, cy = width * (0.45 + 0.1 * rng.random()), height * (0.5 + 0.1 * rng.random())
    r = np.hypot((xx - cx) / (width * (0.18 + 0.08 * rng.random())), (yy - cy) / (height * (0.28 + 0.1 * rng.random())))
    alpha = np.clip((1 - r) * 40, 0, 1)[..., None]
    period = 20 + 30 * rng.random()
    fg = np.stack([120 + 60 * np.sin(xx / period), 60 + 40 * np.cos(yy / (period * 0.7)), 40 + 30 * rng.random() + 0 * xx], -1)
    pixels = alpha * fg + (1 - alpha) * background + rng.normal(0, 4, (height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


class TreeRss:
    """Peak of the summed RSS of some processes and all their descendants, sampled in a thread."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5) -> None:
        import psutil

        self.psutil = psutil
        self.roots = roots
        self.peak = {name: 0.0 for name in roots}
        self.peak_total = 0.0
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _tree_mb(self, pid: int) -> float:
        try:
            root = self.psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except self.psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            with contextlib.suppress(self.psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self.stop.is_set():
            sizes = {name: self._tree_mb(pid) for name, pid in self.roots.items()}
            for name, size in sizes.items():
                self.peak[name] = max(self.peak[name], size)
            self.peak_total = max(self.peak_total, sum(sizes.values()))
            self.stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@contextlib.contextmanager
def local_cluster(cpus_per_node: int = 1, object_store_mb: int = 256):
    """Two raylets on this machine (127.0.0.2 head, 127.0.0.3), token auth, own temp dirs; stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="bgbc-", dir="/tmp"))
    ports = []
    for host in ("127.0.0.2", "127.0.0.1"):
        with socket.socket() as s:
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
    port, client_port = ports
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    common = ["--block", "--num-cpus", str(cpus_per_node), "--object-store-memory", str(object_store_mb * 2**20),
              "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    try:
        for name, args in (
            ("head", ["--head", "--node-ip-address", "127.0.0.2", "--port", str(port), "--include-dashboard", "false",
                      "--ray-client-server-port", str(client_port)]),
            ("node2", ["--address", f"127.0.0.2:{port}", "--node-ip-address", "127.0.0.3"]),
        ):
            log = base / f"{name}.log"
            procs.append(subprocess.Popen([RAY, "start", *args, "--temp-dir", str(base / name), *common],
                                          stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True))
            deadline = time.monotonic() + 180
            while "Ray runtime started" not in log.read_text(errors="replace"):
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text(errors="replace")[-3000:])
                time.sleep(0.5)
        yield f"127.0.0.2:{port}", {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}, \
            {"head": procs[0].pid, "node2": procs[1].pid}
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def run_batch(src: Path, dst: Path, args: list[str], env: dict[str, str] | None = None,
              cluster_roots: dict[str, int] | None = None) -> dict:
    cmd = [PYTHON, "-m", "bgclear.distributed", str(src), str(dst), "--no-progress", *args]
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    with TreeRss({"driver": proc.pid, **(cluster_roots or {})}) as rss:
        _out, err = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    report = json.loads((dst / "bgclear-batch-report.json").read_text())
    return {
        "images": report["counts"]["done"], "seconds": round(seconds, 1),
        "images_per_minute": round(report["counts"]["done"] * 60 / seconds, 2),
        "steady_images_per_minute": report["steady_images_per_minute"],
        "seconds_per_image_per_worker": report["seconds_per_image_per_worker"],
        "workers": report["workers"], "nodes": report["nodes"],
        "worker_peak_rss_mb": max((w["peak_rss_mb"] for w in report["workers_detail"]), default=0),
        "nodes_detail": report["nodes_detail"],
        "peak_rss_total_mb": round(rss.peak_total), "peak_rss_mb_by_root": {k: round(v) for k, v in rss.peak.items()},
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def run_loop(files: list[Path], dst: Path, segmenter: str) -> dict:
    """A shell-style loop: one `bgclear remove` process per photo (model loaded every time)."""
    dst.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    for path in files:
        subprocess.run([BGCLEAR, "remove", str(path), "-o", str(dst / (path.stem + ".png")), "--segmenter", segmenter],
                       check=True, capture_output=True)
    seconds = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"images": len(files), "seconds": round(seconds, 1), "images_per_minute": round(len(files) * 60 / seconds, 2),
            "workers": 1, "nodes": 1, "worker_peak_rss_mb": round(peak, 1), "peak_rss_total_mb": round(peak),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


CONFIGS = ("loop", "pool-1", "pool-2", "ray-1", "ray-2", "cluster-2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="photos per configuration")
    parser.add_argument("--loop-count", type=int, default=None, help="photos for the remove loop [--count]")
    parser.add_argument("--size", default="4000x3000", help="WxH of each photo (4000x3000 = 12 MP)")
    parser.add_argument("--segmenter", default="isnet")
    parser.add_argument("--engine", default="auto", help="inference engine for every configuration but the loop")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [a temporary one]")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    src = work / "photos"
    src.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(args.count):
        path = src / f"photo{i:04d}.jpg"
        if not path.exists():
            make_photo(path, width, height, seed=i)
        files.append(path)
    machine = {"cpus": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    results: dict[str, dict] = {}
    common = ["--segmenter", args.segmenter, "--engine", args.engine, "--precision", args.precision]
    for name in args.configs:
        dst = work / f"out-{name}"
        shutil.rmtree(dst, ignore_errors=True)
        print(f"{name} ...", file=sys.stderr, flush=True)
        if name == "loop":
            results[name] = run_loop(files[: args.loop_count or args.count], dst, args.segmenter)
        elif name.startswith("pool-"):
            results[name] = run_batch(src, dst, [*common, "--backend", "local", "-j", name[-1]])
        elif name.startswith("ray-"):
            results[name] = run_batch(src, dst, [*common, "--backend", "ray", "-j", name[-1]], env={"RAY_ADDRESS": ""})
        else:
            with local_cluster() as (address, env, roots):
                results[name] = run_batch(src, dst, [*common, "--address", address], env=env, cluster_roots=roots)
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    summary = {"machine": machine, "count": args.count, "size": args.size, "segmenter": args.segmenter,
               "engine": args.engine, "precision": args.precision,
               "results": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"| config | images | workers | nodes | seconds | images/min | steady img/min | worker peak RSS MB | all processes peak RSS MB | load before/after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['images']} | {r['workers']} | {r['nodes']} | {r['seconds']} | {r['images_per_minute']} | "
              f"{r.get('steady_images_per_minute', '')} | {r['worker_peak_rss_mb']} | {r['peak_rss_total_mb']} | "
              f"{r['load_before']}/{r['load_after']} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
