"""bgclear against rembg: matting quality on the evaluation data and speed at 12 MP, in one run.

Exact commands (from the repository root; rembg gets its OWN virtual environment so
that its pinned dependencies never touch bgclear's)::

    python3 -m venv /tmp/rembg-venv
    /tmp/rembg-venv/bin/pip install "rembg[cpu]"          # rembg 2.0.86 when this was written
    .venv/bin/python benchmarks/compare_rembg.py \\
        --rembg-python /tmp/rembg-venv/bin/python \\
        --json /tmp/compare_rembg.json | tee /tmp/compare_rembg.md

Quick smoke test (2 images per dataset, 1 timed run, 1 MP photo)::

    .venv/bin/python benchmarks/compare_rembg.py --rembg-python /tmp/rembg-venv/bin/python \\
        --limit 2 --repeat 1 --size 1200x900

What it measures
----------------
1. Quality on ``../shared/eval`` (or ``--eval-dir`` / ``$BGCLEAR_EVAL_DIR``; layout
   ``<dataset>/{image,alpha,trimap}/NAME.png``). Every method is scored with bgclear's own
   metric code (``bgclear.evaluation.metrics.all_metrics``) against the same ground truth:

   * bgclear rows come straight from ``bgclear.evaluation.run.evaluate(root, "isnet",
     ("none", "guided", "closed-form"))`` -- the code path of ``bgclear eval``;
     ``isnet+guided`` is the default pipeline, ``isnet+none`` the raw segmentation.
   * rembg rows: ``rembg.remove(png_bytes, session=new_session(model), alpha_matting=...)``
     run in a subprocess under ``--rembg-python``; the alpha channel of the RGBA PNG it
     returns is written to a temporary folder (outside the repo) and scored here.
     Methods: u2net plain, u2net + alpha matting (rembg's default thresholds 240/10/erode
     10), isnet-general-use plain (a control for the preprocessing difference, see below)
     and isnet-general-use + alpha matting.

2. Speed at ``--size`` (default 4000x3000 = 12 MP): one JPEG made at run time from
   examples/cat.png with ``bench_engine.make_photo``; end to end (file in -> PNG bytes
   out), one warm-up then the median of ``--repeat`` (3) runs, each method in its own
   subprocess so that its peak RSS is its own (see "Peak RSS" below). A run that
   takes longer than ``--run-timeout`` (300 s) is killed and reported as timed out; a
   child whose resident memory passes ``--mem-limit-gb`` is killed too (the machine is
   shared). bgclear: ``Session().remove(path).encode("png")``; rembg:
   ``remove(Path(path).read_bytes(), session=...)`` which returns PNG bytes.

No downloads
------------
rembg's sessions look for ``<home>/models/<name>/<name>.onnx`` and then
``<home>/<name>.onnx`` with ``home = $U2NET_HOME`` (when set) and only call
``pooch.retrieve`` (download + md5/sha256 check) when neither exists. This script makes a
fresh ``U2NET_HOME`` in its temporary folder (or uses ``--u2net-home``) holding symlinks
``u2net.onnx`` -> bgclear's u2net.onnx and ``isnet-general-use.onnx`` -> bgclear's
isnet-general-fp16w.onnx, replaces ``pooch.retrieve`` in the child by a function that
raises, and points the child's HTTP(S) proxy at a closed local port, so an attempted
download fails loudly instead of happening. rembg 2.0.86's default model is
``bria-rmbg`` (a hub download, not obtainable here), so "rembg default" below means
u2net, its default for most of its history, named explicitly.

rembg's alpha-matting fallback
------------------------------
``remove(..., alpha_matting=True)`` catches any ValueError from pymatting -- no pixel of the
mask above 240 (or below 10) after the 10-px erosion, or conjugate gradient not
converging -- and silently returns the raw mask (colour-decontaminated) instead. The
child wraps ``rembg.bg.alpha_matting_cutout`` to record each such fallback; they are
listed under the quality tables and counted in the speed table.

Peak RSS
--------
Reported as the child's ``VmHWM`` (/proc/<pid>/status: the resident high-water mark of
the process image, which starts afresh at ``exec``), sent by the child after every run
and polled by the parent (so a killed child has one too). ``ru_maxrss`` from ``wait4`` is
kept in the JSON but not used: Linux carries the RSS high-water mark of the pre-``exec``
image into ``ru_maxrss``, and that image is a copy of this (parent) process, which holds
about 1.5 GB after the quality part -- so every child's ``ru_maxrss`` was at least that.

Notes on the rembg ISNet row
----------------------------
rembg's ``isnet-general-use`` session feeds ``(x / max(x) - 0.5) / 1.0`` (the image divided
by its own maximum, usually 255), resized with LANCZOS, and min-max stretches the first
output; bgclear feeds ``(x - 128) / 256`` (area-resized), takes the output named
``output`` as is. The input scales differ by < 0.5 % for images that reach 255; the
"rembg isnet (plain)" row against "bgclear isnet+none" shows what the differences amount to.

The evaluation data are for internal evaluation only: the JSON (per-image rows) goes
under /tmp by default; only aggregate numbers may be quoted elsewhere.
"""

from __future__ import annotations

# Only the standard library at module level: this file also runs as the child under
# rembg's interpreter, where bgclear is not installed.
import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENT = "@@compare_rembg "  # prefix of the child's protocol lines on stdout
U2NET_MD5_REMBG = "60024c5c889badc19c04ad937298a77b"  # the md5 rembg's u2net session pins

REMBG_QUALITY_METHODS = [
    # (label, rembg model name, alpha_matting)
    ("rembg u2net (plain)", "u2net", False),
    ("rembg u2net + alpha matting", "u2net", True),
    ("rembg isnet-general-use (plain)", "isnet-general-use", False),
    ("rembg isnet-general-use + alpha matting", "isnet-general-use", True),
]
BGCLEAR_LABELS = {
    "isnet+none": "bgclear isnet raw (refiner none)",
    "isnet+guided": "bgclear default (isnet+guided)",
    "isnet+closed-form": "bgclear isnet+closed-form",
}


# --------------------------------------------------------------------------- child side


def _hwm_kib(pid: int | str = "self") -> int:
    """Resident high-water mark (VmHWM) of a process in KiB; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _emit(**event) -> None:
    event["hwm_kib"] = _hwm_kib()
    sys.stdout.write(EVENT + json.dumps(event) + "\n")
    sys.stdout.flush()


def _rembg_setup() -> dict:
    """Import rembg with downloads disabled; returns version info."""
    import importlib.metadata as md

    import pooch

    def _no_download(url, *a, **k):
        raise RuntimeError(f"rembg tried to download a model ({url.rsplit('/', 1)[-1]}); "
                           "place the file in U2NET_HOME instead")

    pooch.retrieve = _no_download
    import rembg.bg  # noqa: F401

    versions = {}
    for pkg in ("rembg", "onnxruntime", "pymatting", "numpy", "pillow", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return versions


def _rembg_session(model: str):
    """A rembg session for ``model`` plus the file it loaded (resolved, no network)."""
    from rembg import new_session
    from rembg.sessions import sessions

    path = sessions[model].download_models()  # returns the existing file; pooch is disabled
    return new_session(model), os.path.realpath(path)


class _FallbackSpy:
    """Wraps rembg.bg.alpha_matting_cutout to record when rembg silently falls back.

    rembg catches ValueError from pymatting (no foreground or no background left in
    the trimap, or conjugate gradient not converging) and returns the raw mask with
    decontaminated colours instead of a matted alpha.
    """

    def __init__(self) -> None:
        import rembg.bg as bg

        self.bg = bg
        self.original = bg.alpha_matting_cutout
        self.last_error: str | None = None
        bg.alpha_matting_cutout = self

    def __call__(self, *a, **k):
        try:
            return self.original(*a, **k)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise

    def take(self) -> str | None:
        err, self.last_error = self.last_error, None
        return err


def child_quality(job: dict) -> None:
    """Under rembg's python: write rembg's alpha for every image to job['out_dir']."""
    from PIL import Image

    versions = _rembg_setup()
    from rembg import remove

    t = time.perf_counter()
    session, model_file = _rembg_session(job["model"])
    _emit(event="loaded", load_s=time.perf_counter() - t, model_file=model_file, versions=versions,
          input_name=session.inner_session.get_inputs()[0].name)
    spy = _FallbackSpy()
    out_dir = Path(job["out_dir"])
    for key, path in job["images"]:
        _emit(event="start", item=key)
        data = Path(path).read_bytes()
        t = time.perf_counter()
        png = remove(data, session=session, alpha_matting=job["alpha_matting"])
        seconds = time.perf_counter() - t
        fallback = spy.take()
        rgba = Image.open(io.BytesIO(png))
        rgba.getchannel("A").save(out_dir / f"{key}.png")
        _emit(event="done", item=key, seconds=seconds, fallback=fallback)


def child_speed(job: dict) -> None:
    """One method, one photo: load, warm up, then job['repeat'] timed runs."""
    photo = Path(job["photo"])
    if job["tool"] == "bgclear":
        from bgclear import Session

        t = time.perf_counter()
        session = Session()
        info = {"load_s": time.perf_counter() - t, "segmenter": session.segmenter_name,
                "refiner": session.refiner_name}

        def once():
            return session.remove(photo).encode("png"), None
    else:
        versions = _rembg_setup()
        from rembg import remove

        t = time.perf_counter()
        session, model_file = _rembg_session(job["model"])
        info = {"load_s": time.perf_counter() - t, "model_file": model_file, "versions": versions}
        spy = _FallbackSpy()

        def once():
            png = remove(photo.read_bytes(), session=session, alpha_matting=job["alpha_matting"])
            return png, spy.take()

    _emit(event="loaded", **info)
    for i in range(job["repeat"] + 1):
        _emit(event="start", item=i)
        t = time.perf_counter()
        png, fallback = once()
        seconds = time.perf_counter() - t
        _emit(event="done", item=i, seconds=seconds, png_bytes=len(png), fallback=fallback)


# --------------------------------------------------------------------------- parent side


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(cmd: list[str], env: dict, item_timeout: float, mem_limit_kib: int, on_event=None,
              load_timeout: float = 900.0) -> dict:
    """Run a child speaking the event protocol; enforce per-item timeout and memory cap.

    The load phase (imports, session creation) has its own, longer ``load_timeout``.

    Returns {"status": ok|timeout|memory|error, "events": [...], "peak_rss_mb", "wall_s", "stderr"}.
    The peak RSS is the child's own VmHWM (reported by it, or polled here); ``ru_maxrss``
    from ``wait4`` is returned too but includes this process's RSS at fork time.
    """
    err_file = tempfile.TemporaryFile(mode="w+")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err_file, text=True)
    events: queue.Queue = queue.Queue()

    def reader():
        for line in proc.stdout:
            if line.startswith(EVENT):
                events.put(json.loads(line[len(EVENT):]))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    got: list[dict] = []
    status, detail = "ok", None
    item_started, in_item, limit = t0, True, load_timeout  # the load phase first
    rusage = None
    hwm_polled = 0
    while True:
        pid, wstatus, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rusage = ru
            proc.returncode = os.waitstatus_to_exitcode(wstatus)
            break
        while not events.empty():
            ev = events.get()
            got.append(ev)
            if on_event:
                on_event(ev)
            if ev["event"] == "start":
                item_started, in_item, limit = time.monotonic(), True, item_timeout
            elif ev["event"] in ("done", "loaded"):
                in_item = False
        now = time.monotonic()
        if in_item and now - item_started > limit:
            what = "one item" if any(e["event"] == "start" for e in got) else "loading"
            status, detail = "timeout", f"{what} took more than {limit:.0f} s"
        hwm_polled = max(hwm_polled, _hwm_kib(proc.pid))
        if status == "ok" and mem_limit_kib and _rss_kib(proc.pid) > mem_limit_kib:
            status, detail = "memory", f"resident memory passed {mem_limit_kib / 2**20:.1f} GiB"
        if status != "ok":
            proc.kill()
            _, wstatus, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(wstatus)
            break
        time.sleep(0.1)
    th.join(timeout=5)
    while not events.empty():
        got.append(events.get())
    err_file.seek(0)
    stderr = err_file.read()
    err_file.close()
    if status == "ok" and proc.returncode != 0:
        status, detail = "error", f"exit code {proc.returncode}"
    return {"status": status, "detail": detail, "events": got, "returncode": proc.returncode,
            "peak_rss_mb": max([hwm_polled] + [e.get("hwm_kib", 0) for e in got]) / 1024 or None,
            "ru_maxrss_mb": rusage.ru_maxrss / 1024 if rusage else None,
            "wall_s": time.monotonic() - t0, "stderr": stderr[-4000:]}


def _child_cmd(python: str, mode: str, job: dict, workdir: Path, tag: str) -> list[str]:
    job_file = workdir / f"job_{tag}.json"
    job_file.write_text(json.dumps(job))
    return [python, str(Path(__file__).resolve()), mode, str(job_file)]


def prepare_u2net_home(home: Path, models_dir: Path) -> dict:
    """Symlink bgclear's model files under the names rembg looks for."""
    home.mkdir(parents=True, exist_ok=True)
    placed = {}
    for name, ours in (("u2net.onnx", "u2net.onnx"), ("isnet-general-use.onnx", "isnet-general-fp16w.onnx")):
        src, dst = models_dir / ours, home / name
        if not src.exists():
            placed[name] = f"missing: {src}"
            continue
        if dst.is_symlink() or not dst.exists():
            if dst.is_symlink():
                dst.unlink()
            dst.symlink_to(src)
            placed[name] = f"symlink -> {src}"
        else:
            placed[name] = f"existing file {dst} (left as is)"
    return placed


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def machine_info() -> dict:
    cpu, logical = None, 0
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("processor"):
                    logical += 1
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or "unknown", "cores_cpuinfo": logical, "cores_usable": len(os.sched_getaffinity(0)),
            "memory": mem, "python": platform.python_version(), "platform": platform.platform()}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# ---- quality


def quality(args, workdir: Path, rembg_env: dict | None, notes: list[str]) -> dict:
    import numpy as np
    from PIL import Image

    from bgclear.evaluation.metrics import all_metrics
    from bgclear.evaluation.run import evaluate, find_samples
    from bgclear.stages.trimap import UNKNOWN

    samples = find_samples(args.eval_dir, args.limit)
    if not samples:
        raise SystemExit(f"no samples under {args.eval_dir}")
    _log(f"quality: {len(samples)} images under {args.eval_dir}")

    t = time.perf_counter()
    ours = evaluate(args.eval_dir, segmenter="isnet", refiners=("none", "guided", "closed-form"),
                    limit=args.limit, progress=lambda s: _log(f"  bgclear {s.dataset}/{s.name}"))
    _log(f"bgclear evaluate: {time.perf_counter() - t:.0f} s")
    rows = []
    for r in ours["rows"]:
        rows.append({**r, "method": BGCLEAR_LABELS.get(r["method"], "bgclear " + r["method"]),
                     "seconds": r["seconds_segment"] + r["seconds_refine"]})

    methods_info = {}
    if rembg_env is not None:
        images = [(f"{s.dataset}__{s.name}", str(s.image)) for s in samples]
        for label, model, am in REMBG_QUALITY_METHODS:
            out_dir = workdir / "rembg_alpha" / label.replace(" ", "_").replace("+", "p")
            out_dir.mkdir(parents=True)
            job = {"model": model, "alpha_matting": am, "images": images, "out_dir": str(out_dir)}
            cmd = _child_cmd(args.rembg_python, "--child-quality", job, workdir, f"q_{len(methods_info)}")
            _log(f"{label}: running {len(images)} images")
            res = run_child(cmd, rembg_env, args.run_timeout, int(args.mem_limit_gb * 2**20), load_timeout=args.load_timeout,
                            on_event=lambda ev: ev["event"] == "done" and _log(f"  {label} {ev['item']} {ev['seconds']:.1f}s"
                                                                              + (" FALLBACK" if ev.get("fallback") else "")))
            loaded = next((e for e in res["events"] if e["event"] == "loaded"), None)
            done = {e["item"]: e for e in res["events"] if e["event"] == "done"}
            info = {"status": res["status"], "detail": res["detail"], "images_done": len(done),
                    "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"], "ru_maxrss_mb": res["ru_maxrss_mb"],
                    "model_file": loaded and loaded.get("model_file"), "versions": loaded and loaded.get("versions"),
                    "input_name": loaded and loaded.get("input_name"),
                    "fallbacks": {k: e["fallback"] for k, e in done.items() if e.get("fallback")}}
            if res["status"] != "ok":
                info["stderr_tail"] = res["stderr"][-1500:]
                notes.append(f"{label}: {res['status']} ({res['detail']}) after {len(done)}/{len(images)} images; "
                             f"stderr: {res['stderr'].strip().splitlines()[-1] if res['stderr'].strip() else '-'}")
            methods_info[label] = info
            for s in samples:
                key = f"{s.dataset}__{s.name}"
                if key not in done:
                    continue
                pred = np.asarray(Image.open(out_dir / f"{key}.png").convert("L"), np.float32) / 255.0
                gt = np.asarray(Image.open(s.alpha).convert("L"), np.float32) / 255.0
                unknown = (np.asarray(Image.open(s.trimap).convert("L")) == UNKNOWN) if s.trimap else None
                if pred.shape != gt.shape:
                    notes.append(f"{label} {key}: output {pred.shape} != ground truth {gt.shape}; skipped")
                    continue
                rows.append({"dataset": s.dataset, "name": s.name, "method": label, "seconds": done[key]["seconds"],
                             "fallback": done[key].get("fallback"), **all_metrics(pred, gt, unknown)})
    return {"rows": rows, "rembg_methods": methods_info,
            "datasets": list(dict.fromkeys(s.dataset for s in samples)), "n_images": len(samples)}


def _summary(rows: list[dict]) -> dict:
    from bgclear.evaluation.run import summarise

    summary = summarise(rows)  # bgclear's own aggregation: mean over images
    for method, groups in summary.items():
        for group in groups:
            rs = [r for r in rows if r["method"] == method and (group == "overall" or r["dataset"] == group)]
            groups[group]["seconds"] = statistics.mean(r["seconds"] for r in rs)
            groups[group].pop("seconds_refine", None)
    return summary


QUALITY_COLS = [("sad", "SAD", 1, 2), ("mse", "MSE×1e3", 1e3, 2), ("grad", "Grad", 1, 2), ("conn", "Conn", 1, 2),
                ("iou", "IoU", 1, 3), ("sad_unknown", "SAD-u", 1, 2), ("grad_unknown", "Grad-u", 1, 2)]


def quality_tables(summary: dict, datasets: list[str], order: list[str]) -> str:
    out = []
    for group in datasets + ["overall"]:
        methods = [m for m in order if m in summary and group in summary[m]]
        if not methods:
            continue
        best = {}
        for key, _, _, _ in QUALITY_COLS:
            vals = [summary[m][group][key] for m in methods if key in summary[m][group]]
            if vals:
                best[key] = max(vals) if key == "iou" else min(vals)
        n = max(summary[m][group]["n"] for m in methods)
        out.append(f"\n**{group}** ({n} images; lower is better except IoU; best in bold)\n")
        out.append("| method | n | " + " | ".join(c[1] for c in QUALITY_COLS) + " | s/img |")
        out.append("|---|---:|" + "---:|" * (len(QUALITY_COLS) + 1))
        for m in methods:
            g = summary[m][group]
            cells = []
            for key, _, k, digits in QUALITY_COLS:
                if key not in g:
                    cells.append("–")
                    continue
                txt = f"{g[key] * k:.{digits}f}"
                cells.append(f"**{txt}**" if round(g[key], 12) == round(best[key], 12) else txt)
            out.append(f"| {m} | {g['n']} | " + " | ".join(cells) + f" | {g['seconds']:.2f} |")
    return "\n".join(out)


# ---- speed


def speed(args, workdir: Path, rembg_env: dict | None) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import make_photo

    w, h = (int(v) for v in args.size.lower().split("x"))
    photo = make_photo(args.source, (w, h), workdir / f"photo_{w}x{h}.jpg")
    _log(f"speed: {photo.name} ({w * h / 1e6:.1f} MP, {photo.stat().st_size / 1e6:.1f} MB JPEG)")
    methods = [("bgclear default (isnet+guided)", sys.executable, {"tool": "bgclear"}, dict(os.environ))]
    if rembg_env is not None:
        methods += [
            ("rembg u2net (default, plain)", args.rembg_python, {"tool": "rembg", "model": "u2net", "alpha_matting": False}, rembg_env),
            ("rembg u2net + alpha matting", args.rembg_python, {"tool": "rembg", "model": "u2net", "alpha_matting": True}, rembg_env),
        ]
    results = []
    for i, (label, python, job, env) in enumerate(methods):
        job = {**job, "photo": str(photo), "repeat": args.repeat}
        _log(f"speed: {label}")
        res = run_child(_child_cmd(python, "--child-speed", job, workdir, f"s_{i}"), env, args.run_timeout,
                        int(args.mem_limit_gb * 2**20), load_timeout=args.load_timeout,
                        on_event=lambda ev: ev["event"] == "done" and _log(f"  run {ev['item']}: {ev['seconds']:.1f}s"))
        loaded = next((e for e in res["events"] if e["event"] == "loaded"), {})
        runs = [e for e in res["events"] if e["event"] == "done"]
        timed = [e["seconds"] for e in runs[1:]]
        entry = {"method": label, "status": res["status"], "detail": res["detail"], "load_s": loaded.get("load_s"),
                 "warmup_s": runs[0]["seconds"] if runs else None, "runs_s": timed,
                 "median_s": statistics.median(timed) if len(timed) == args.repeat else None,
                 "peak_rss_mb": res["peak_rss_mb"], "ru_maxrss_mb": res["ru_maxrss_mb"], "png_mb": runs[-1]["png_bytes"] / 1e6 if runs else None,
                 "fallbacks": [e["fallback"] for e in runs if e.get("fallback")],
                 "model_file": loaded.get("model_file"), "versions": loaded.get("versions"),
                 "child_wall_s": res["wall_s"]}
        if res["status"] != "ok":
            entry["stderr_tail"] = res["stderr"][-1500:]
        results.append(entry)
    return results


def speed_table(results: list[dict], size: str, repeat: int, timeout: float) -> str:
    lines = [f"| method ({size}, file in → PNG bytes out) | median of {repeat} (s) | runs (s) | warm-up (s) | "
             "session load (s) | peak RSS, VmHWM (MB) | PNG (MB) | status |",
             "|---|---:|---|---:|---:|---:|---:|---|"]

    def f(v, d=1):
        return "–" if v is None else f"{v:.{d}f}"

    for r in results:
        if r["status"] == "ok":
            status = "ok"
        elif r["status"] == "timeout":
            status = f"timed out ({r['detail']}; killed)"
        else:
            status = f"{r['status']}: {r['detail']}"
        if r["fallbacks"]:
            status += f"; alpha matting fell back to the raw mask in {len(r['fallbacks'])} run(s)"
        median = f(r["median_s"], 2) if r["median_s"] is not None else ("timed out" if r["status"] == "timeout" else "–")
        lines.append(f"| {r['method']} | {median} | {', '.join(f'{s:.2f}' for s in r['runs_s']) or '–'} | "
                     f"{f(r['warmup_s'], 2)} | {f(r['load_s'], 2)} | {f(r['peak_rss_mb'], 0)} | {f(r['png_mb'])} | {status} |")
    return "\n".join(lines)


# ---- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rembg-python", help="python of a separate venv with rembg installed (skip rembg without it)")
    ap.add_argument("--eval-dir", type=Path, help="evaluation data (default: $BGCLEAR_EVAL_DIR or ../shared/eval)")
    ap.add_argument("--models-dir", type=Path, help="bgclear's model cache (default: bgclear's cache_dir())")
    ap.add_argument("--u2net-home", type=Path, help="rembg model folder to use (default: a fresh one in the temp dir)")
    ap.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "compare_rembg.json")
    ap.add_argument("--size", default="4000x3000", help="speed photo size WxH (default 12 MP)")
    ap.add_argument("--source", type=Path, default=REPO / "examples" / "cat.png")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up (median reported)")
    ap.add_argument("--run-timeout", type=float, default=300.0, help="seconds one run (or one image) may take")
    ap.add_argument("--load-timeout", type=float, default=900.0, help="seconds a child may take to import and load")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0, help="kill a child whose RSS passes this (0: no cap)")
    ap.add_argument("--limit", type=int, help="images per dataset (smoke tests)")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary folder (rembg alphas, photo)")
    ap.add_argument("--child-quality", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-speed", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_quality:
        return child_quality(json.loads(args.child_quality.read_text()))
    if args.child_speed:
        return child_speed(json.loads(args.child_speed.read_text()))

    import bgclear
    from bgclear.evaluation.run import default_eval_dir
    from bgclear.models.registry import cache_dir

    args.eval_dir = args.eval_dir or default_eval_dir()
    args.models_dir = args.models_dir or cache_dir()
    t_start = time.perf_counter()
    started = _dt.datetime.now().astimezone()
    load_start = _loadavg()
    machine = machine_info()
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"

    workdir = Path(tempfile.mkdtemp(prefix="compare_rembg_"))
    notes: list[str] = []
    rembg_env = None
    placed: dict = {}
    model_md5 = {}
    if args.rembg_python:
        home = args.u2net_home or workdir / "u2net_home"
        placed = prepare_u2net_home(home, args.models_dir)
        for name in ("u2net.onnx", "isnet-general-fp16w.onnx"):
            if (args.models_dir / name).exists():
                model_md5[name] = _md5(args.models_dir / name)
        rembg_env = {**os.environ, "U2NET_HOME": str(home), "MPLBACKEND": "Agg",
                     # belt and braces: any HTTP(S) request goes to a closed local port
                     "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                     "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
        rembg_env.pop("REMBG_HOME", None)
        # pymatting compiles its numba kernels (cache=True) on the first import in a fresh
        # venv: minutes on 2 busy cores. Do it once here, untimed, so no measured child pays it.
        t = time.perf_counter()
        prep = subprocess.run([args.rembg_python, "-c", "import rembg.bg"], env=rembg_env,
                              capture_output=True, text=True, timeout=1800)
        first_import_s = time.perf_counter() - t
        if prep.returncode != 0:
            raise SystemExit(f"cannot import rembg with {args.rembg_python}:\n{prep.stderr[-2000:]}")
        notes.append(f"first `import rembg.bg` (untimed preparation, numba cache): {first_import_s:.1f} s")
    else:
        notes.append("--rembg-python not given: rembg rows skipped")

    header = [
        "# bgclear vs rembg",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}; bgclear {bgclear.__version__} (git {commit})",
        f"- machine: {machine['cpu']}, {machine['cores_usable']} usable cores ({machine['cores_cpuinfo']} in "
        f"/proc/cpuinfo), {machine['memory']} RAM; Python {machine['python']}",
        f"- load average at start (1/5/15 min): {load_start}",
    ]
    print("\n".join(header), flush=True)

    result: dict = {"date": started.isoformat(), "machine": machine, "bgclear": bgclear.__version__, "git": commit,
                    "load_start": load_start, "eval_dir": str(args.eval_dir), "u2net_home": placed,
                    "model_md5": model_md5, "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if not args.skip_quality:
            q = quality(args, workdir, rembg_env, notes)
            summary = _summary(q["rows"])
            order = ["bgclear isnet raw (refiner none)", "bgclear default (isnet+guided)", "bgclear isnet+closed-form"]
            order += [m[0] for m in REMBG_QUALITY_METHODS]
            result["quality"] = {"summary": summary, "rows": q["rows"], "rembg_methods": q["rembg_methods"]}
            versions = next((i["versions"] for i in q["rembg_methods"].values() if i.get("versions")), None)
            if versions:
                result["rembg_versions"] = versions
            print("\n## Quality (bgclear's metrics; SAD, Grad, Conn in thousands as usual)")
            print(quality_tables(summary, q["datasets"], order))
            fb_lines = []
            for label, info in q["rembg_methods"].items():
                if "alpha matting" in label:
                    fb = info["fallbacks"]
                    fb_lines.append(f"- {label}: rembg fell back to the raw mask (pymatting raised) on "
                                    f"{len(fb)}/{info['images_done']} images"
                                    + (": " + "; ".join(f"{k.split('__')[-1]} ({v})" for k, v in fb.items()) if fb else ""))
            if fb_lines:
                print("\n" + "\n".join(fb_lines))
        if not args.skip_speed:
            sp = speed(args, workdir, rembg_env)
            result["speed"] = sp
            print(f"\n## Speed ({args.size}, {args.source.name} upscaled, JPEG q92; one warm-up, median of {args.repeat})\n")
            print(speed_table(sp, args.size, args.repeat, args.run_timeout))
            if not result.get("rembg_versions"):
                result["rembg_versions"] = next((r["versions"] for r in sp if r.get("versions")), None)
    finally:
        wall = time.perf_counter() - t_start
        load_end = _loadavg()
        result.update(load_end=load_end, wall_s=wall, notes=notes)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str))
        if not args.keep_temp:
            shutil.rmtree(workdir, ignore_errors=True)

    footer = ["", "## Set-up"]
    if result.get("rembg_versions"):
        footer.append("- rembg side: " + ", ".join(f"{k} {v}" for k, v in result["rembg_versions"].items()))
    for name, how in placed.items():
        footer.append(f"- U2NET_HOME/{name}: {how}")
    for name, digest in model_md5.items():
        same = " (= the md5 rembg pins for u2net.onnx)" if digest == U2NET_MD5_REMBG else ""
        footer.append(f"- md5 {name}: {digest}{same}")
    if result.get("quality"):
        for label, info in result["quality"]["rembg_methods"].items():
            footer.append(f"- {label}: loaded {info['model_file']} (input '{info['input_name']}'), {info['status']}, "
                          f"{info['images_done']} images, {info['wall_s']:.0f} s, peak RSS {info['peak_rss_mb'] or 0:.0f} MB")
    footer += [f"- note: {n}" for n in notes]
    footer += [
        "- bgclear s/img = segmentation + refinement (from `evaluate`, image decode excluded); rembg s/img = the "
        "whole `remove()` call (PNG decode, segmentation, matting, PNG encode).",
        "- rembg writes 8-bit alpha, scored as /255; bgclear's rows are scored on its float alpha.",
        "- PNG: bgclear encodes at zlib level 1 on all cores, rembg with Pillow's default (level 6).",
        f"- load average at end: {load_end} (start: {load_start}); other processes share the cores.",
        f"- wall time of the whole run: {wall / 60:.1f} min; JSON: {args.json}",
    ]
    print("\n".join(footer))


if __name__ == "__main__":
    main()
