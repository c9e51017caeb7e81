"""A sample of the hostile corpus through a real server process (u2netp), one request at a time.

Every case gets a 2xx with a correct cutout or a 4xx JSON error (never a 5xx, never a
dropped connection), an ordinary photo still gets its cutout right after each case, the
server logs no traceback, and its RSS stays bounded while it eats the sample (bombs are
refused from their header). The whole corpus: ``benchmarks/hostile_server.py``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hostile_check import normal_request_ok, server_check  # noqa: E402
from hostile_corpus import build_corpus  # noqa: E402
from server_fixtures import disc_image, start_server  # noqa: E402

#: Generous: the server idles near 300 MB; a bomb that got its pixel buffer would need gigabytes.
RSS_BOUND_MB = 1500


def sample_cases():
    cases = build_corpus()
    keep = [c for i, c in enumerate(cases) if not c.heavy and (i % 9 == 0 or c.category in ("bomb", "notimage", "polyglot"))]
    return keep


def rss_mb(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 1e6
    except psutil.Error:
        return 0.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    server = start_server(tmp_path_factory.mktemp("hostile") / "server.log")
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(server.proc.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    normal = disc_image(160, 120, "PNG")
    results, normal_failures = [], []
    cases = sample_cases()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for case in cases:
                results.append(server_check(client, case))
                if not normal_request_ok(client, normal):
                    normal_failures.append(case.name)
        yield {"results": results, "normal_failures": normal_failures, "peak": peak, "server": server,
               "alive": server.proc.poll() is None, "log": server.log()}
    finally:
        stop.set()
        server.stop()


def test_sample_is_substantial() -> None:
    assert len(sample_cases()) >= 150


def test_no_5xx_no_dropped_connection_and_correct_answers(run) -> None:
    fails = [(r.name, r.status, r.detail) for r in run["results"] if r.verdict != "pass"]
    assert fails == []
    assert all(0 < r.status < 500 for r in run["results"])


def test_the_server_answers_a_normal_request_after_every_case(run) -> None:
    assert run["alive"]
    assert run["normal_failures"] == []
    assert "Traceback" not in run["log"]


def test_server_memory_stays_bounded(run) -> None:
    assert 0 < run["peak"][0] < RSS_BOUND_MB
